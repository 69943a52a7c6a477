/*
 * ls_arena.h - chunked bump allocator, one per micro-batch.
 *
 * Everything decoded from one batch (strings, profile maps, score factors)
 * is carved out of one arena and released together by ls_arena_reset()
 * when the batch is done, so the hot path does no per-field malloc/free
 * and cannot leak a field.
 *
 * Memory: the arena owns its chunks; pointers it returns stay valid until
 * the next ls_arena_reset() or ls_arena_free(). Reset keeps one chunk,
 * sized to what the last batch needed, so a steady-state batch does not
 * call malloc at all.
 *
 * Errors: allocation functions return NULL when malloc fails or a size
 * overflows; the arena is still usable afterwards.
 *
 * Thread-safety: none; an arena belongs to one thread at a time.
 */
#ifndef LS_ARENA_H
#define LS_ARENA_H

#include <stddef.h>

typedef struct ls_arena_chunk ls_arena_chunk;

typedef struct ls_arena {
	ls_arena_chunk *head;  /* chunk being carved; older ones follow */
	size_t chunk_size;     /* minimum size of a new chunk's data area */
	size_t used_total;     /* bytes handed out since the last reset */
} ls_arena;

/* Default chunk size used when ls_arena_init() is given 0. */
#define LS_ARENA_DEFAULT_CHUNK ((size_t)64 * 1024)

/* Set up an empty arena; allocates nothing until the first allocation. */
void ls_arena_init(ls_arena *a, size_t chunk_size);

/* size bytes aligned for any type (max_align_t); NULL on OOM. A size of 0
 * returns a valid, distinct pointer. */
void *ls_arena_alloc(ls_arena *a, size_t size);

/* Copy of the first n bytes of s plus a terminating NUL; NULL on OOM. s may
 * contain NULs; exactly n bytes are copied. */
char *ls_arena_strndup(ls_arena *a, const char *s, size_t n);

/* Release everything allocated since the last reset, keeping one chunk
 * large enough for that much data. */
void ls_arena_reset(ls_arena *a);

/* Release all memory; the arena may be initialised again. */
void ls_arena_free(ls_arena *a);

#endif
