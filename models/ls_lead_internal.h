/*
 * ls_lead_internal.h - what ls_lead.c (state) and ls_lead_codec.c (blob
 * codec) share: the layout of struct ls_lead and the few helpers both
 * sides call. Not part of the API; nothing outside models/ls_lead*.c
 * includes it (ls_lead.h is the contract).
 *
 * The helpers are static inline so that they keep their short names and
 * bodies without becoming exported symbols of the models library. They
 * follow ls_lead.c's rules: allocation failures return false or NULL and
 * leave everything unchanged; no locks (a lead belongs to one thread).
 */
#ifndef LS_LEAD_INTERNAL_H
#define LS_LEAD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_lead.h"

/* A remembered event: its ts and XXH3_64bits(event_id). */
typedef struct seen_id {
	uint64_t hash;
	int64_t ts;
} seen_id;

/* key and value share one allocation: value = key + strlen(key) + 1. */
typedef struct attr {
	char *key;
	char *value;
} attr;

typedef struct metric {
	char *key;
	double value;
} metric;

struct ls_lead {
	uint64_t fingerprint;
	int64_t watermark; /* -1 before the first event */
	uint64_t n_events[LS_SOURCE__COUNT];

	uint32_t n_rings;
	uint32_t *ring_end; /* NULL while the lead has no slice */
	ls_window_slice *slices;
	uint32_t n_slices, cap_slices;

	uint32_t n_tracked;
	uint32_t ext_len;   /* 0..LS_LEAD_EXT_MAX; fills the padding here */
	int64_t *last_seen; /* -1 = never */

	seen_id *seen; /* ascending in (ts, hash), no two equal */
	uint32_t n_seen, cap_seen;

	attr *attrs;
	uint32_t n_attrs, cap_attrs;
	metric *metrics;
	uint32_t n_metrics, cap_metrics;

	uint8_t *ext; /* other modules' bytes, NULL when ext_len is 0 */
};

static inline char *dup_str(const char *s)
{
	size_t l = strlen(s) + 1;
	char *p = malloc(l);
	if (p)
		memcpy(p, s, l);
	return p;
}

static inline int check_use(const ls_lead *lead, const ls_lead_conf *conf)
{
	if (!lead || !ls_lead_conf_check(conf, NULL, 0))
		return LS_LEAD_ERR_INVALID;
	if (lead->fingerprint != conf->features->fingerprint)
		return LS_LEAD_ERR_SET;
	return LS_LEAD_APPLIED;
}

/*
 * Grow *p (elements of size sz) to hold at least need; false on OOM.
 * Not ls_grow(): the capacities are uint32_t and grow by half from 4,
 * which keeps struct ls_lead and a small lead's arrays small (leads are
 * cached by the hundred thousand); the conf limits keep need far below
 * UINT32_MAX, so neither the capacity nor ncap * sz can overflow.
 */
static inline bool reserve(void **p, uint32_t *cap, uint32_t need, size_t sz)
{
	if (need <= *cap)
		return true;
	uint32_t ncap = *cap < 4 ? 4 : *cap + *cap / 2;
	if (ncap < need)
		ncap = need;
	void *np = realloc(*p, (size_t)ncap * sz);
	if (!np)
		return false;
	*p = np;
	*cap = ncap;
	return true;
}

static inline uint32_t ring_start(const ls_lead *lead, uint32_t r)
{
	if (!lead->ring_end || r == 0)
		return 0;
	return lead->ring_end[r - 1];
}

static inline uint32_t ring_stop(const ls_lead *lead, uint32_t r)
{
	if (!lead->ring_end)
		return 0;
	return lead->ring_end[r];
}

/* (ts, h) against a remembered entry in (ts, hash) order: <0, 0, >0. */
static inline int seen_cmp(int64_t ts, uint64_t h, const seen_id *s)
{
	if (ts != s->ts)
		return ts < s->ts ? -1 : 1;
	if (h != s->hash)
		return h < s->hash ? -1 : 1;
	return 0;
}

/*
 * Keep the dedupe_k greatest remembered entries among those with ts within
 * the horizon, min(dedupe_horizon_ms, grace_ms): an id older than the
 * grace could only match a repeat that is too late. The array is
 * ascending, so both rules drop a prefix: the entries older than the
 * horizon, then as many more as exceed dedupe_k.
 */
static inline void prune_seen(ls_lead *lead, const ls_lead_conf *conf)
{
	int64_t span = conf->dedupe_horizon_ms < conf->grace_ms
			       ? conf->dedupe_horizon_ms
			       : conf->grace_ms;
	/* watermark >= -1 and span >= 0, so this cannot wrap. */
	int64_t horizon = lead->watermark - span;
	uint32_t drop = 0;
	while (drop < lead->n_seen && lead->seen[drop].ts < horizon)
		drop++;
	if (lead->n_seen - drop > conf->dedupe_k)
		drop = lead->n_seen - conf->dedupe_k;
	if (drop == 0)
		return;
	memmove(lead->seen, lead->seen + drop,
		(lead->n_seen - drop) * sizeof(seen_id));
	lead->n_seen -= drop;
}

static inline char *attr_alloc(const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	char *p = malloc(kl + vl + 2);
	if (!p)
		return NULL;
	memcpy(p, key, kl + 1);
	memcpy(p + kl + 1, value, vl + 1);
	return p;
}

#endif
