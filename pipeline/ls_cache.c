/*
 * ls_cache.c - open-addressing hash table of lead entries.
 *
 * Linear probing over a power-of-two table kept at most half full: lookups
 * touch one or two cache lines, and there is no deletion of single entries
 * (the cache is only ever cleared as a whole), so no tombstones either.
 */
#include "ls_cache.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

void ls_cache_init(ls_cache *c) { memset(c, 0, sizeof *c); }

void ls_cache_clear(ls_cache *c)
{
	for (size_t i = 0; i < c->cap; i++) {
		ls_cache_entry *e = c->slots[i];
		if (e == NULL)
			continue;
		ls_lead_free(e->lead);
		free(e); /* lead_id lives in the same block */
		c->slots[i] = NULL;
	}
	c->count = 0;
}

void ls_cache_free(ls_cache *c)
{
	ls_cache_clear(c);
	free(c->slots);
	memset(c, 0, sizeof *c);
}

size_t ls_cache_count(const ls_cache *c) { return c->count; }

static size_t probe(ls_cache_entry *const *slots, size_t cap, uint64_t h,
		    const char *id)
{
	size_t i = (size_t)h & (cap - 1);
	while (slots[i] != NULL &&
	       (slots[i]->hash != h || strcmp(slots[i]->lead_id, id) != 0))
		i = (i + 1) & (cap - 1);
	return i;
}

ls_cache_entry *ls_cache_get(const ls_cache *c, const char *lead_id)
{
	if (c->cap == 0)
		return NULL;
	uint64_t h = XXH3_64bits(lead_id, strlen(lead_id));
	return c->slots[probe(c->slots, c->cap, h, lead_id)];
}

static int grow(ls_cache *c)
{
	size_t ncap = c->cap ? c->cap * 2 : 1024;
	ls_cache_entry **ns = calloc(ncap, sizeof *ns);
	if (ns == NULL)
		return -1;
	for (size_t i = 0; i < c->cap; i++) {
		ls_cache_entry *e = c->slots[i];
		if (e != NULL)
			ns[probe(ns, ncap, e->hash, e->lead_id)] = e;
	}
	free(c->slots);
	c->slots = ns;
	c->cap = ncap;
	return 0;
}

ls_cache_entry *ls_cache_put(ls_cache *c, const char *lead_id, bool *created)
{
	*created = false;
	if ((c->count + 1) * 2 > c->cap && grow(c) != 0)
		return NULL;
	size_t n = strlen(lead_id);
	uint64_t h = XXH3_64bits(lead_id, n);
	size_t i = probe(c->slots, c->cap, h, lead_id);
	if (c->slots[i] != NULL)
		return c->slots[i];
	/* the id right behind the entry, in one block: one allocation per
	 * lead, and the probe's strcmp reads memory next to the entry's */
	if (n > SIZE_MAX - sizeof(ls_cache_entry) - 1)
		return NULL;
	ls_cache_entry *e = calloc(1, sizeof *e + n + 1);
	if (e == NULL)
		return NULL;
	e->lead_id = (char *)(e + 1);
	memcpy(e->lead_id, lead_id, n + 1);
	e->hash = h;
	c->slots[i] = e;
	c->count++;
	*created = true;
	return e;
}
