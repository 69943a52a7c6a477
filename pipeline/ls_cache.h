/*
 * ls_cache.h - the in-process cache of lead state between batches.
 *
 * A lead touched by a batch is looked up here first and loaded from Redis
 * only on a miss, so a lead that is active across many batches costs one
 * Redis read in total instead of one per batch. Entries are marked dirty
 * when an event changes them and written back (with the offsets) at the
 * end of the batch; after a successful commit every entry is clean, so
 * dropping the whole cache is always safe between batches. That is how it
 * stays bounded (ls_cache_clear when it outgrows pipeline.cache_leads) and
 * how uncommitted work is thrown away when Redis fails or partitions are
 * revoked: the next batch reloads from Redis, which matches the offsets.
 *
 * Memory: the cache owns its entries, their id copies and their ls_lead
 * (freed with ls_lead_free). Entry pointers stay valid until
 * ls_cache_clear or ls_cache_free (the table stores pointers, so growing
 * it does not move entries). Not thread-safe: the batch loop owns it.
 */
#ifndef LS_CACHE_H
#define LS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_lead.h"

typedef struct ls_cache_entry {
	char *lead_id;
	ls_lead *lead; /* NULL until loaded */
	uint64_t hash;
	bool dirty;
	bool due_dirty;           /* label-timeout membership to rewrite */
	bool rescore_dirty;       /* idle-rescore membership to rewrite */
	bool in_fly;              /* the commit on its way writes it, not yet encoded */
	int64_t scored_at;        /* event time of its last scoring, -1 unknown */
	int32_t partition;        /* input partition the lead's events come from */
	uint64_t touched_batch;   /* pipeline batch that last applied an event */
	const struct ls_event *cause; /* that batch's last applied event */
} ls_cache_entry;

typedef struct ls_cache {
	ls_cache_entry **slots; /* open addressing, linear probing */
	size_t cap;             /* power of two */
	size_t count;
} ls_cache;

void ls_cache_init(ls_cache *c);
void ls_cache_free(ls_cache *c);

/* The entry for lead_id, or NULL. */
ls_cache_entry *ls_cache_get(const ls_cache *c, const char *lead_id);

/*
 * The entry for lead_id, created empty (lead NULL, clean) when absent;
 * *created says which. NULL on out of memory.
 */
ls_cache_entry *ls_cache_put(ls_cache *c, const char *lead_id, bool *created);

/* Drop every entry (and its lead). */
void ls_cache_clear(ls_cache *c);

size_t ls_cache_count(const ls_cache *c);

#endif
