/*
 * ls_arena.c - chunked bump allocator.
 *
 * A chunk is one malloc: a small header followed by its data area. Only the
 * head chunk is carved from; when a request does not fit, a new chunk
 * (at least chunk_size, or larger for a big request) is pushed in front.
 * The unused tail of the old head is wasted, which is fine for short-lived
 * batch data and keeps alloc to a compare and an add.
 *
 * Reset frees every chunk but one. If the batch needed more than the kept
 * chunk holds, the chunks are replaced by one chunk big enough for the
 * whole batch, so the next batch of the same size fits without malloc.
 */
#include "ls_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN alignof(max_align_t)

struct ls_arena_chunk {
	ls_arena_chunk *next;
	size_t size; /* bytes in the data area */
	size_t used; /* bytes carved from the data area */
	alignas(max_align_t) unsigned char data[];
};

/* Round n up to ALIGN; 0 on overflow (callers never pass SIZE_MAX-ish sizes
 * legitimately, so 0 doubles as the error value). */
static size_t round_up(size_t n)
{
	if (n > SIZE_MAX - (ALIGN - 1))
		return 0;
	return (n + ALIGN - 1) & ~(ALIGN - 1);
}

static ls_arena_chunk *chunk_new(size_t size)
{
	if (size > SIZE_MAX - sizeof(ls_arena_chunk))
		return NULL;
	ls_arena_chunk *c = malloc(sizeof(ls_arena_chunk) + size);
	if (c == NULL)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->used = 0;
	return c;
}

void ls_arena_init(ls_arena *a, size_t chunk_size)
{
	a->head = NULL;
	a->chunk_size = round_up(chunk_size == 0 ? LS_ARENA_DEFAULT_CHUNK : chunk_size);
	if (a->chunk_size == 0)
		a->chunk_size = LS_ARENA_DEFAULT_CHUNK;
	a->used_total = 0;
}

void *ls_arena_alloc(ls_arena *a, size_t size)
{
	/* Zero-size requests still get their own slot so pointers stay
	 * distinct, as malloc(0) callers may expect. */
	size_t need = round_up(size == 0 ? 1 : size);
	if (need == 0)
		return NULL;
	ls_arena_chunk *c = a->head;
	if (c == NULL || c->size - c->used < need) {
		size_t want = need > a->chunk_size ? need : a->chunk_size;
		ls_arena_chunk *n = chunk_new(want);
		if (n == NULL)
			return NULL;
		n->next = c;
		a->head = n;
		c = n;
	}
	void *p = c->data + c->used;
	c->used += need;
	a->used_total += need;
	return p;
}

char *ls_arena_strndup(ls_arena *a, const char *s, size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *p = ls_arena_alloc(a, n + 1);
	if (p == NULL)
		return NULL;
	if (n > 0)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void free_chain(ls_arena_chunk *c)
{
	while (c != NULL) {
		ls_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
}

void ls_arena_reset(ls_arena *a)
{
	ls_arena_chunk *head = a->head;
	if (head == NULL) {
		a->used_total = 0;
		return;
	}
	if (head->next != NULL) {
		/* The batch spilled over one chunk: try to replace the chain
		 * by one chunk that holds it all. If that malloc fails, keep
		 * the largest existing chunk instead; correctness does not
		 * depend on the size. */
		ls_arena_chunk *big = chunk_new(a->used_total > a->chunk_size ?
		    a->used_total : a->chunk_size);
		if (big == NULL) {
			ls_arena_chunk *best = head;
			for (ls_arena_chunk *c = head->next; c != NULL; c = c->next)
				if (c->size > best->size)
					best = c;
			ls_arena_chunk **pp = &a->head;
			while (*pp != best)
				pp = &(*pp)->next;
			*pp = best->next;
			best->next = NULL;
			big = best;
		}
		free_chain(a->head);
		a->head = big;
	}
	a->head->used = 0;
	a->used_total = 0;
}

void ls_arena_free(ls_arena *a)
{
	free_chain(a->head);
	a->head = NULL;
	a->used_total = 0;
}
