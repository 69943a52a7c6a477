/*
 * ls_lead.c - per-lead state: windows, dedupe, profile, and the blob.
 *
 * Layout. All of a lead's window slices live in one array, grouped by ring
 * (one ring = one window of one feature, in feature-set order) and sorted
 * by slice index inside a ring; ring_end[r] is where ring r stops. One
 * array instead of one per ring because most rings are empty: a per-ring
 * header would cost 16 bytes each (~900 bytes for the default set) before
 * a single event, and leads are cached by the hundred thousand. An insert
 * moves the tail of the array, which is a few hundred bytes for a typical
 * lead; ring_end itself is only allocated once the lead has a slice.
 *
 * Dedupe remembers (ts, hash) pairs sorted ascending in (ts, hash) order.
 * An entry is kept while it is among the dedupe_k greatest and its ts is
 * within the dedupe horizon (ts >= watermark - min(horizon, grace)); the
 * horizon is separate from the grace so that a long grace does not keep
 * ids for as long, and capped by it because a redelivery of an event
 * older than the grace is refused as too late anyway. Both rules keep an
 * upper segment of one total order, and the threshold only rises with the
 * watermark, so they commute with each other and with adding an event:
 * the memory is top_k(horizon_filter(applied set)) whatever order the
 * events came in, which is what lets a replay that interleaves the topics
 * differently write the same bytes. Both rules trim a prefix of the sorted
 * array, and for a lead that is not in a burst it stays at a few entries
 * in RAM and in the blob.
 *
 * Every allocation an event needs is made before the lead changes, so an
 * out-of-memory error leaves the lead exactly as it was.
 *
 * The ext bytes are other modules' per-lead state (the scoring models'
 * labels and last scores, ls_leadscore.h). They ride at the end of the
 * lead's blob rather than under a Redis key of their own so that the lead
 * and what the models remember about it are written in one SET: a crash
 * can never leave a lead whose events were applied but whose label was not
 * recorded, or the reverse. The lead only stores them; nothing here looks
 * inside. Their length lives in padding of the struct, so they cost a
 * pointer (8 bytes) per lead when unused.
 */
#include "ls_err.h"
#include "ls_varint.h"
#include "ls_lead.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

/* strnlen() without relying on POSIX feature macros: models/ is plain C17. */
static size_t bounded_len(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n] != '\0')
		n++;
	return n;
}

static char *dup_str(const char *s)
{
	size_t l = strlen(s) + 1;
	char *p = malloc(l);
	if (p)
		memcpy(p, s, l);
	return p;
}

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

const char *ls_lead_drop_name(int why)
{
	switch (why) {
	case LS_LEAD_DROP_BAD_KEY:
		return "bad_key";
	case LS_LEAD_DROP_BAD_VALUE:
		return "bad_value";
	case LS_LEAD_DROP_ATTRIBUTES_FULL:
		return "attributes_full";
	case LS_LEAD_DROP_METRICS_FULL:
		return "metrics_full";
	case LS_LEAD_DROP_NOT_FINITE:
		return "not_finite";
	default:
		return "unknown";
	}
}

const char *ls_lead_result_str(int rc)
{
	switch (rc) {
	case LS_LEAD_APPLIED:
		return "applied";
	case LS_LEAD_DUPLICATE:
		return "duplicate";
	case LS_LEAD_TOO_LATE:
		return "too late";
	case LS_LEAD_ERR_INVALID:
		return "invalid argument";
	case LS_LEAD_ERR_NOMEM:
		return "out of memory";
	case LS_LEAD_ERR_SET:
		return "lead belongs to another feature set";
	case LS_LEAD_ERR_CORRUPT:
		return "blob corrupt";
	case LS_LEAD_ERR_SPACE:
		return "output too small";
	default:
		return "unknown result";
	}
}

void ls_lead_conf_default(ls_lead_conf *conf, const ls_feature_set *set)
{
	if (!conf)
		return;
	conf->features = set;
	conf->grace_ms = LS_LEAD_DEFAULT_GRACE_MS;
	conf->dedupe_horizon_ms = LS_LEAD_DEFAULT_DEDUPE_HORIZON_MS;
	conf->dedupe_k = LS_LEAD_DEFAULT_DEDUPE_K;
	conf->max_attributes = LS_LEAD_DEFAULT_MAX_ATTRIBUTES;
	conf->max_metrics = LS_LEAD_DEFAULT_MAX_METRICS;
}

bool ls_lead_conf_check(const ls_lead_conf *conf, char *err, size_t errlen)
{
	if (!conf || !conf->features) {
		ls_set_err(err, errlen, "lead conf: no feature set");
		return false;
	}
	if (conf->grace_ms < 0) {
		ls_set_err(err, errlen, "lead conf: grace must be >= 0");
		return false;
	}
	/* Above the grace is allowed and acts as the grace (ls_lead.h). */
	if (conf->dedupe_horizon_ms < 0) {
		ls_set_err(err, errlen, "lead conf: dedupe horizon must be >= 0");
		return false;
	}
	if (conf->dedupe_k < 1 || conf->dedupe_k > LS_LEAD_MAX_DEDUPE_K) {
		ls_set_err(err, errlen, "lead conf: dedupe_k must be 1..%d",
			LS_LEAD_MAX_DEDUPE_K);
		return false;
	}
	if (conf->max_attributes > LS_LEAD_MAX_PROFILE_KEYS ||
	    conf->max_metrics > LS_LEAD_MAX_PROFILE_KEYS) {
		ls_set_err(err, errlen, "lead conf: profile limits must be <= %d",
			LS_LEAD_MAX_PROFILE_KEYS);
		return false;
	}
	return true;
}

static int check_use(const ls_lead *lead, const ls_lead_conf *conf)
{
	if (!lead || !ls_lead_conf_check(conf, NULL, 0))
		return LS_LEAD_ERR_INVALID;
	if (lead->fingerprint != conf->features->fingerprint)
		return LS_LEAD_ERR_SET;
	return LS_LEAD_APPLIED;
}

ls_lead *ls_lead_new(const ls_lead_conf *conf)
{
	if (!ls_lead_conf_check(conf, NULL, 0))
		return NULL;
	const ls_feature_set *set = conf->features;
	ls_lead *lead = calloc(1, sizeof(*lead));
	if (!lead)
		return NULL;
	lead->fingerprint = set->fingerprint;
	lead->watermark = -1;
	lead->n_rings = (uint32_t)set->n_rings;
	lead->n_tracked = (uint32_t)set->n_tracked;
	if (lead->n_tracked > 0) {
		lead->last_seen = malloc(lead->n_tracked * sizeof(int64_t));
		if (!lead->last_seen) {
			free(lead);
			return NULL;
		}
		for (uint32_t i = 0; i < lead->n_tracked; i++)
			lead->last_seen[i] = -1;
	}
	return lead;
}

static void free_profile(ls_lead *lead)
{
	for (uint32_t i = 0; i < lead->n_attrs; i++)
		free(lead->attrs[i].key);
	for (uint32_t i = 0; i < lead->n_metrics; i++)
		free(lead->metrics[i].key);
	free(lead->attrs);
	free(lead->metrics);
}

void ls_lead_free(ls_lead *lead)
{
	if (!lead)
		return;
	free(lead->ring_end);
	free(lead->slices);
	free(lead->last_seen);
	free(lead->seen);
	free(lead->ext);
	free_profile(lead);
	free(lead);
}

/*
 * Grow *p (elements of size sz) to hold at least need; false on OOM.
 * Not ls_grow(): the capacities are uint32_t and grow by half from 4,
 * which keeps struct ls_lead and a small lead's arrays small (leads are
 * cached by the hundred thousand); the conf limits keep need far below
 * UINT32_MAX, so neither the capacity nor ncap * sz can overflow.
 */
static bool reserve(void **p, uint32_t *cap, uint32_t need, size_t sz)
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

static uint32_t ring_start(const ls_lead *lead, uint32_t r)
{
	if (!lead->ring_end || r == 0)
		return 0;
	return lead->ring_end[r - 1];
}

static uint32_t ring_stop(const ls_lead *lead, uint32_t r)
{
	if (!lead->ring_end)
		return 0;
	return lead->ring_end[r];
}

/* Drop, in every ring, the slices at or below idx(watermark) - N. */
static void evict(ls_lead *lead, const ls_feature_set *set)
{
	if (!lead->ring_end)
		return;
	uint32_t out = 0, start = 0;
	for (uint32_t r = 0; r < lead->n_rings; r++) {
		const ls_window_ring *ring = &set->rings[r];
		uint32_t end = lead->ring_end[r];
		int64_t cutoff = ls_window_slice_index(lead->watermark,
						       ring->width_ms) -
				 (int64_t)ring->slices;
		uint32_t i = start;
		while (i < end && lead->slices[i].k <= cutoff)
			i++;
		if (out != i && end > i)
			memmove(&lead->slices[out], &lead->slices[i],
				(end - i) * sizeof(ls_window_slice));
		out += end - i;
		start = end;
		lead->ring_end[r] = out;
	}
	lead->n_slices = out;
}

/* (ts, h) against a remembered entry in (ts, hash) order: <0, 0, >0. */
static int seen_cmp(int64_t ts, uint64_t h, const seen_id *s)
{
	if (ts != s->ts)
		return ts < s->ts ? -1 : 1;
	if (h != s->hash)
		return h < s->hash ? -1 : 1;
	return 0;
}

/* The first remembered entry that is >= (ts, h), or n_seen. */
static uint32_t seen_lower_bound(const ls_lead *lead, int64_t ts, uint64_t h)
{
	uint32_t lo = 0, hi = lead->n_seen;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (seen_cmp(ts, h, &lead->seen[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Keep the dedupe_k greatest remembered entries among those with ts within
 * the horizon, min(dedupe_horizon_ms, grace_ms): an id older than the
 * grace could only match a repeat that is too late. The array is
 * ascending, so both rules drop a prefix: the entries older than the
 * horizon, then as many more as exceed dedupe_k.
 */
static void prune_seen(ls_lead *lead, const ls_lead_conf *conf)
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

/* Add contribution c at slice k of ring r; capacity was reserved. */
static void ring_add(ls_lead *lead, ls_feature_agg agg, uint32_t r, int64_t k,
		     uint64_t c)
{
	uint32_t start = ring_start(lead, r), end = ring_stop(lead, r);
	uint32_t pos = start + (uint32_t)ls_window_lower_bound(
					       lead->slices + start,
					       end - start, k);
	if (pos < end && lead->slices[pos].k == k) {
		uint64_t v = ls_window_add(agg, lead->slices[pos].v, c);
		if (v != 0) {
			lead->slices[pos].v = v;
			return;
		}
		/* A sum that came back to 0 is an empty slice: keep the
		 * representation canonical by removing it. */
		memmove(&lead->slices[pos], &lead->slices[pos + 1],
			(lead->n_slices - pos - 1) * sizeof(ls_window_slice));
		lead->n_slices--;
		for (uint32_t i = r; i < lead->n_rings; i++)
			lead->ring_end[i]--;
		return;
	}
	if (c == 0)
		return;
	memmove(&lead->slices[pos + 1], &lead->slices[pos],
		(lead->n_slices - pos) * sizeof(ls_window_slice));
	lead->slices[pos].k = k;
	lead->slices[pos].v = c;
	lead->n_slices++;
	for (uint32_t i = r; i < lead->n_rings; i++)
		lead->ring_end[i]++;
}

static bool event_ok(const ls_event *ev)
{
	if ((unsigned)ev->source >= LS_SOURCE__COUNT || ev->ts < 0 ||
	    !ev->event_id)
		return false;
	switch (ev->source) {
	case LS_SOURCE_EMAIL:
		return (unsigned)ev->u.email.type < LS_EMAIL__COUNT;
	case LS_SOURCE_WEB:
		return (unsigned)ev->u.web.type < LS_WEB__COUNT;
	case LS_SOURCE_CALL:
		return (unsigned)ev->u.call.outcome < LS_CALL_OUTCOME__COUNT &&
		       (unsigned)ev->u.call.direction < LS_CALL_DIRECTION__COUNT;
	case LS_SOURCE_OUTCOME:
		return (unsigned)ev->u.outcome.outcome < LS_OUTCOME__COUNT;
	case LS_SOURCE_PROFILE:
		return (ev->u.profile.n_attributes == 0 ||
			ev->u.profile.attributes) &&
		       (ev->u.profile.n_metrics == 0 || ev->u.profile.metrics);
	default:
		return false;
	}
}

/* ---- profile maps ---- */

static bool key_ok(const char *key)
{
	if (!key)
		return false;
	size_t l = bounded_len(key, LS_LEAD_KEY_MAX + 1);
	return l >= 1 && l <= LS_LEAD_KEY_MAX;
}

static bool value_ok(const char *v)
{
	return v && bounded_len(v, LS_LEAD_VALUE_MAX + 1) <= LS_LEAD_VALUE_MAX;
}

/* Position of key in the sorted attributes, or where it would go. */
static uint32_t attr_find(const ls_lead *lead, const char *key, bool *found)
{
	uint32_t lo = 0, hi = lead->n_attrs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(lead->attrs[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static uint32_t metric_find(const ls_lead *lead, const char *key, bool *found)
{
	uint32_t lo = 0, hi = lead->n_metrics;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(lead->metrics[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static char *attr_alloc(const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	char *p = malloc(kl + vl + 2);
	if (!p)
		return NULL;
	memcpy(p, key, kl + 1);
	memcpy(p + kl + 1, value, vl + 1);
	return p;
}

/*
 * Strings a profile event needs, allocated before anything changes:
 * one per attribute to set (key+value) and one per metric (its key).
 */
typedef struct profile_prep {
	char **attr_str;   /* NULL entry: entry ignored or a removal */
	char **metric_key; /* NULL entry: entry ignored */
} profile_prep;

static void prep_free(profile_prep *pp, const ls_profile_event *p)
{
	if (pp->attr_str)
		for (size_t i = 0; i < p->n_attributes; i++)
			free(pp->attr_str[i]);
	if (pp->metric_key)
		for (size_t i = 0; i < p->n_metrics; i++)
			free(pp->metric_key[i]);
	free(pp->attr_str);
	free(pp->metric_key);
	pp->attr_str = pp->metric_key = NULL;
}

static bool prep_profile(ls_lead *lead, const ls_lead_conf *conf,
			 const ls_profile_event *p, profile_prep *pp)
{
	pp->attr_str = pp->metric_key = NULL;
	if (p->n_attributes > 0) {
		pp->attr_str = calloc(p->n_attributes, sizeof(char *));
		if (!pp->attr_str)
			return false;
	}
	if (p->n_metrics > 0) {
		pp->metric_key = calloc(p->n_metrics, sizeof(char *));
		if (!pp->metric_key)
			goto oom;
	}
	for (size_t i = 0; i < p->n_attributes; i++) {
		const ls_attribute *a = &p->attributes[i];
		if (!key_ok(a->key) || !value_ok(a->value) || a->value[0] == '\0')
			continue;
		pp->attr_str[i] = attr_alloc(a->key, a->value);
		if (!pp->attr_str[i])
			goto oom;
	}
	for (size_t i = 0; i < p->n_metrics; i++) {
		const ls_metric *m = &p->metrics[i];
		if (!key_ok(m->key) || !isfinite(m->value))
			continue;
		pp->metric_key[i] = dup_str(m->key);
		if (!pp->metric_key[i])
			goto oom;
	}
	/* Room for every key to be new, capped by the limits. */
	uint32_t na = lead->n_attrs + (uint32_t)p->n_attributes;
	if (na > conf->max_attributes)
		na = conf->max_attributes > lead->n_attrs ? conf->max_attributes
							  : lead->n_attrs;
	uint32_t nm = lead->n_metrics + (uint32_t)p->n_metrics;
	if (nm > conf->max_metrics)
		nm = conf->max_metrics > lead->n_metrics ? conf->max_metrics
							 : lead->n_metrics;
	if (!reserve((void **)&lead->attrs, &lead->cap_attrs, na, sizeof(attr)) ||
	    !reserve((void **)&lead->metrics, &lead->cap_metrics, nm,
		     sizeof(metric)))
		goto oom;
	return true;
oom:
	prep_free(pp, p);
	return false;
}

/* Merge by key; takes the prepared strings (the leftovers are freed). */
static void count_drop(uint64_t *drops, ls_lead_drop why)
{
	if (drops)
		drops[why]++;
}

static void commit_profile(ls_lead *lead, const ls_lead_conf *conf,
			   const ls_profile_event *p, profile_prep *pp,
			   uint64_t *drops)
{
	for (size_t i = 0; i < p->n_attributes; i++) {
		const ls_attribute *a = &p->attributes[i];
		if (!key_ok(a->key)) {
			count_drop(drops, LS_LEAD_DROP_BAD_KEY);
			continue;
		}
		if (!value_ok(a->value)) {
			count_drop(drops, LS_LEAD_DROP_BAD_VALUE);
			continue;
		}
		bool found;
		uint32_t pos = attr_find(lead, a->key, &found);
		char *s = pp->attr_str[i];
		pp->attr_str[i] = NULL;
		if (!s) { /* "" removes the key */
			if (!found)
				continue;
			free(lead->attrs[pos].key);
			memmove(&lead->attrs[pos], &lead->attrs[pos + 1],
				(lead->n_attrs - pos - 1) * sizeof(attr));
			lead->n_attrs--;
			continue;
		}
		if (found) {
			free(lead->attrs[pos].key);
		} else {
			if (lead->n_attrs >= conf->max_attributes) {
				count_drop(drops, LS_LEAD_DROP_ATTRIBUTES_FULL);
				free(s);
				continue;
			}
			memmove(&lead->attrs[pos + 1], &lead->attrs[pos],
				(lead->n_attrs - pos) * sizeof(attr));
			lead->n_attrs++;
		}
		lead->attrs[pos].key = s;
		lead->attrs[pos].value = s + strlen(s) + 1;
	}
	for (size_t i = 0; i < p->n_metrics; i++) {
		char *k = pp->metric_key[i];
		if (!k) { /* left out by prep_profile: say why */
			count_drop(drops, key_ok(p->metrics[i].key)
						  ? LS_LEAD_DROP_NOT_FINITE
						  : LS_LEAD_DROP_BAD_KEY);
			continue;
		}
		pp->metric_key[i] = NULL;
		bool found;
		uint32_t pos = metric_find(lead, k, &found);
		if (found) {
			free(k);
			lead->metrics[pos].value = p->metrics[i].value;
			continue;
		}
		if (lead->n_metrics >= conf->max_metrics) {
			count_drop(drops, LS_LEAD_DROP_METRICS_FULL);
			free(k);
			continue;
		}
		memmove(&lead->metrics[pos + 1], &lead->metrics[pos],
			(lead->n_metrics - pos) * sizeof(metric));
		lead->metrics[pos].key = k;
		lead->metrics[pos].value = p->metrics[i].value;
		lead->n_metrics++;
	}
	prep_free(pp, p);
}

/* ---- apply ---- */

int ls_lead_apply(ls_lead *lead, const ls_lead_conf *conf, const ls_event *ev)
{
	return ls_lead_apply_counted(lead, conf, ev, NULL);
}

int ls_lead_apply_counted(ls_lead *lead, const ls_lead_conf *conf,
			  const ls_event *ev, uint64_t *drops)
{
	int rc = check_use(lead, conf);
	if (rc != LS_LEAD_APPLIED)
		return rc;
	if (!ev || !event_ok(ev))
		return LS_LEAD_ERR_INVALID;
	const ls_feature_set *set = conf->features;

	/* watermark >= 0 and grace >= 0, so the subtraction cannot wrap. */
	if (lead->watermark >= 0 && ev->ts < lead->watermark - conf->grace_ms)
		return LS_LEAD_TOO_LATE;

	/* A repeat is the same event again: same id, so same hash, and same
	 * ts. The memory holds exactly the entries the contract promises, so
	 * a lookup is all it takes. */
	uint64_t h = XXH3_64bits(ev->event_id, strlen(ev->event_id));
	uint32_t at = seen_lower_bound(lead, ev->ts, h);
	if (at < lead->n_seen && seen_cmp(ev->ts, h, &lead->seen[at]) == 0)
		return LS_LEAD_DUPLICATE;

	/* Which features match, and how many slices that may add. */
	uint64_t contrib[LS_FEATURE_MAX_SPECS];
	bool hit[LS_FEATURE_MAX_SPECS];
	uint32_t need = 0;
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		hit[f] = fi->spec.kind == LS_FEATURE_WINDOWED &&
			 ls_feature_match(&fi->spec, ev, &contrib[f]);
		if (hit[f])
			need += fi->n_rings;
	}

	/* Allocate everything before changing anything. */
	if (need > 0 && !lead->ring_end) {
		lead->ring_end = calloc(lead->n_rings, sizeof(uint32_t));
		if (!lead->ring_end)
			return LS_LEAD_ERR_NOMEM;
	}
	if (!reserve((void **)&lead->slices, &lead->cap_slices,
		     lead->n_slices + need, sizeof(ls_window_slice)))
		return LS_LEAD_ERR_NOMEM;
	if (!reserve((void **)&lead->seen, &lead->cap_seen, lead->n_seen + 1,
		     sizeof(seen_id)))
		return LS_LEAD_ERR_NOMEM;
	profile_prep pp = { NULL, NULL };
	if (ev->source == LS_SOURCE_PROFILE &&
	    !prep_profile(lead, conf, &ev->u.profile, &pp))
		return LS_LEAD_ERR_NOMEM;

	if (ev->ts > lead->watermark) {
		lead->watermark = ev->ts;
		evict(lead, set);
	}

	for (size_t f = 0; f < set->n_features; f++) {
		if (!hit[f])
			continue;
		const ls_feature_info *fi = &set->features[f];
		if (fi->tracked >= 0 && lead->last_seen[fi->tracked] < ev->ts)
			lead->last_seen[fi->tracked] = ev->ts;
		for (uint32_t j = 0; j < fi->n_rings; j++) {
			uint32_t r = fi->ring + j;
			const ls_window_ring *ring = &set->rings[r];
			int64_t k = ls_window_slice_index(ev->ts, ring->width_ms);
			int64_t top = ls_window_slice_index(lead->watermark,
							    ring->width_ms);
			if (k <= top - (int64_t)ring->slices)
				continue; /* outside this window already */
			ring_add(lead, fi->spec.agg, r, k, contrib[f]);
		}
	}

	lead->n_events[ev->source]++;
	/* Insert in order (room was reserved), then trim back to the top
	 * dedupe_k within the horizon; the new entry may be trimmed right away
	 * when dedupe_k greater ones are remembered. */
	memmove(&lead->seen[at + 1], &lead->seen[at],
		(lead->n_seen - at) * sizeof(seen_id));
	lead->seen[at].hash = h;
	lead->seen[at].ts = ev->ts;
	lead->n_seen++;
	prune_seen(lead, conf);
	if (ev->source == LS_SOURCE_PROFILE)
		commit_profile(lead, conf, &ev->u.profile, &pp, drops);
	return LS_LEAD_APPLIED;
}

/* ---- feature values ---- */

static double window_value(const ls_lead *lead, const ls_feature_set *set,
			   int f, size_t w, int64_t T)
{
	const ls_feature_info *fi = &set->features[f];
	uint32_t r = fi->ring + fi->win_ring[w];
	uint32_t start = ring_start(lead, r), end = ring_stop(lead, r);
	/* a lead without slices has slices == NULL, and NULL + 0 is undefined */
	const ls_window_slice *s = end > start ? lead->slices + start : NULL;
	return ls_window_value(fi, w, s, end - start, T);
}

int ls_lead_features(const ls_lead *lead, const ls_lead_conf *conf,
		     int64_t T, double *out, size_t n)
{
	int rc = check_use(lead, conf);
	if (rc != LS_LEAD_APPLIED)
		return rc;
	const ls_feature_set *set = conf->features;
	if (T == LS_LEAD_AT_WATERMARK)
		T = lead->watermark >= 0 ? lead->watermark : 0;
	if (T < 0)
		return LS_LEAD_ERR_INVALID;
	if (n < set->n_values || (!out && set->n_values > 0))
		return LS_LEAD_ERR_SPACE;

	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		const ls_feature_spec *s = &fi->spec;
		double *o = out + fi->first_value;
		switch (s->kind) {
		case LS_FEATURE_WINDOWED:
			for (size_t w = 0; w < s->n_windows; w++)
				o[w] = window_value(lead, set, (int)f, w, T);
			break;
		case LS_FEATURE_VELOCITY: {
			double cs = window_value(lead, set, fi->a, fi->a_win[0], T);
			double cl = window_value(lead, set, fi->a, fi->a_win[1], T);
			double ratio = (double)s->windows[1].length_ms /
				       (double)s->windows[0].length_ms;
			o[0] = (cs * ratio + s->param) / (cl + s->param);
			break;
		}
		case LS_FEATURE_RECENCY: {
			int32_t slot = set->features[fi->a].tracked;
			int64_t seen = lead->last_seen[slot];
			if (seen < 0) {
				o[0] = s->param;
				break;
			}
			double d = T > seen ? (double)(T - seen) /
						      (double)s->unit_ms
					    : 0.0;
			o[0] = d < s->param ? d : s->param;
			break;
		}
		case LS_FEATURE_DIFFERENCE:
		case LS_FEATURE_RATIO:
		case LS_FEATURE_MEAN:
			for (size_t w = 0; w < s->n_windows; w++) {
				double a = window_value(lead, set, fi->a,
							fi->a_win[w], T);
				double b = window_value(lead, set, fi->b,
							fi->b_win[w], T);
				double v;
				if (s->kind == LS_FEATURE_DIFFERENCE) {
					v = a - b;
					if (s->floor_zero && v < 0.0)
						v = 0.0;
				} else {
					v = b == 0.0 ? 0.0 : a / b;
				}
				o[w] = v;
			}
			break;
		default:
			break;
		}
	}
	return (int)set->n_values;
}

int ls_lead_feature_names(const ls_feature_set *set, const char **names,
			  size_t n)
{
	if (!set)
		return LS_LEAD_ERR_INVALID;
	if (!names)
		return (int)set->n_values;
	if (n < set->n_values)
		return LS_LEAD_ERR_SPACE;
	for (size_t i = 0; i < set->n_values; i++)
		names[i] = ls_feature_set_value_name(set, i);
	return (int)set->n_values;
}

/* ---- accessors ---- */

int64_t ls_lead_watermark(const ls_lead *lead)
{
	return lead ? lead->watermark : -1;
}

uint64_t ls_lead_event_count(const ls_lead *lead, ls_source source)
{
	if (!lead || (unsigned)source >= LS_SOURCE__COUNT)
		return 0;
	return lead->n_events[source];
}

size_t ls_lead_n_slices(const ls_lead *lead)
{
	return lead ? lead->n_slices : 0;
}

size_t ls_lead_n_remembered(const ls_lead *lead)
{
	return lead ? lead->n_seen : 0;
}

size_t ls_lead_n_attributes(const ls_lead *lead)
{
	return lead ? lead->n_attrs : 0;
}

const char *ls_lead_attribute(const ls_lead *lead, const char *key)
{
	if (!lead || !key)
		return NULL;
	bool found;
	uint32_t pos = attr_find(lead, key, &found);
	return found ? lead->attrs[pos].value : NULL;
}

bool ls_lead_attribute_at(const ls_lead *lead, size_t i, const char **key,
			  const char **value)
{
	if (!lead || i >= lead->n_attrs)
		return false;
	if (key)
		*key = lead->attrs[i].key;
	if (value)
		*value = lead->attrs[i].value;
	return true;
}

size_t ls_lead_n_metrics(const ls_lead *lead)
{
	return lead ? lead->n_metrics : 0;
}

bool ls_lead_metric(const ls_lead *lead, const char *key, double *value)
{
	if (!lead || !key)
		return false;
	bool found;
	uint32_t pos = metric_find(lead, key, &found);
	if (found && value)
		*value = lead->metrics[pos].value;
	return found;
}

bool ls_lead_metric_at(const ls_lead *lead, size_t i, const char **key,
		       double *value)
{
	if (!lead || i >= lead->n_metrics)
		return false;
	if (key)
		*key = lead->metrics[i].key;
	if (value)
		*value = lead->metrics[i].value;
	return true;
}

size_t ls_lead_ram_bytes(const ls_lead *lead)
{
	if (!lead)
		return 0;
	size_t b = sizeof(*lead);
	if (lead->ring_end)
		b += lead->n_rings * sizeof(uint32_t);
	b += (size_t)lead->cap_slices * sizeof(ls_window_slice);
	b += (size_t)lead->n_tracked * sizeof(int64_t);
	b += (size_t)lead->cap_seen * sizeof(seen_id);
	b += (size_t)lead->cap_attrs * sizeof(attr);
	for (uint32_t i = 0; i < lead->n_attrs; i++)
		b += strlen(lead->attrs[i].key) +
		     strlen(lead->attrs[i].value) + 2;
	b += (size_t)lead->cap_metrics * sizeof(metric);
	for (uint32_t i = 0; i < lead->n_metrics; i++)
		b += strlen(lead->metrics[i].key) + 1;
	b += lead->ext_len; /* allocated to the byte */
	return b;
}

/* ---- extension bytes ---- */

/*
 * The new copy is made before the old one is freed, so an allocation
 * failure leaves the lead as it was, and data may point into the lead's
 * own ext (ls_lead_ext()).
 */
int ls_lead_set_ext(ls_lead *lead, const uint8_t *data, size_t len)
{
	if (!lead || len > LS_LEAD_EXT_MAX || (!data && len > 0))
		return LS_LEAD_ERR_INVALID;
	uint8_t *p = NULL;
	if (len > 0) {
		p = malloc(len);
		if (!p)
			return LS_LEAD_ERR_NOMEM;
		memcpy(p, data, len);
	}
	free(lead->ext);
	lead->ext = p;
	lead->ext_len = (uint32_t)len;
	return LS_LEAD_APPLIED;
}

const uint8_t *ls_lead_ext(const ls_lead *lead, size_t *len)
{
	size_t n = lead ? lead->ext_len : 0;
	if (len)
		*len = n;
	return n > 0 ? lead->ext : NULL;
}

/* ---- encoding ---- */

/*
 * The put_* helpers write into space the caller reserved; each encoding
 * step reserves its worst case first, so none of them can fail.
 */
static void put_u8(ls_buf *b, uint8_t v)
{
	b->data[b->len++] = v;
}

static void put_varint(ls_buf *b, uint64_t v)
{
	b->len = (size_t)(ls_varint_put(b->data + b->len, v) - b->data);
}

static void put_le(ls_buf *b, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#define VARINT_MAX 10
#define TWO53 9007199254740992.0

static bool metric_is_int(double v)
{
	return v == trunc(v) && fabs(v) <= TWO53 && !(v == 0.0 && signbit(v));
}

/*
 * One slice: its index distance d, then its value. A count of 1 is by far
 * the most common slice, so counts share the distance's varint: d*2 alone
 * for 1, d*2+1 followed by count-2 otherwise (one byte instead of two).
 */
static void put_slice(ls_buf *b, ls_feature_agg agg, uint64_t d,
		      const ls_window_slice *s, int64_t width)
{
	if (agg == LS_AGG_COUNT) {
		put_varint(b, d << 1 | (s->v > 1));
		if (s->v > 1)
			put_varint(b, s->v - 2);
		return;
	}
	put_varint(b, d);
	switch (agg) {
	case LS_AGG_SUM:
		put_varint(b, zigzag((int64_t)s->v));
		break;
	case LS_AGG_LAST_SEEN:
		put_varint(b, (uint64_t)((int64_t)(s->v - 1) - s->k * width));
		break;
	case LS_AGG_DISTINCT: {
		int c = __builtin_popcountll(s->v);
		put_u8(b, (uint8_t)c);
		if (c > 7) {
			put_le(b, s->v, 8);
			break;
		}
		for (unsigned i = 0; i < 64; i++)
			if (s->v & (UINT64_C(1) << i))
				put_u8(b, (uint8_t)i);
		break;
	}
	default:
		break;
	}
}

static int encode_feature(const ls_lead *lead, const ls_feature_set *set,
			  const ls_feature_info *fi, ls_buf *b)
{
	uint8_t flags = 0;
	bool has_seen = fi->tracked >= 0 && lead->last_seen[fi->tracked] >= 0;
	if (has_seen)
		flags |= 1;
	size_t worst = 1 + VARINT_MAX;
	for (uint32_t j = 0; j < fi->n_rings; j++) {
		uint32_t r = fi->ring + j;
		uint32_t n = ring_stop(lead, r) - ring_start(lead, r);
		if (n > 0)
			flags |= (uint8_t)(1u << (1 + j));
		worst += VARINT_MAX + (size_t)n * (2 * VARINT_MAX);
	}
	if (flags == 0)
		return 0;

	/* The aggregation rides in the flags so that a decoder that does not
	 * know this key can still walk over the record: no length prefix. */
	flags |= (uint8_t)(fi->spec.agg << 5);
	if (ls_buf_reserve(b, 4 + worst) != 0)
		return LS_LEAD_ERR_NOMEM;
	put_le(b, fi->key, 4);
	put_u8(b, flags);
	if (has_seen)
		put_varint(b, (uint64_t)(lead->watermark -
					 lead->last_seen[fi->tracked]));
	for (uint32_t j = 0; j < fi->n_rings; j++) {
		uint32_t r = fi->ring + j;
		uint32_t start = ring_start(lead, r), end = ring_stop(lead, r);
		if (start == end)
			continue;
		int64_t width = set->rings[r].width_ms;
		int64_t top = ls_window_slice_index(lead->watermark, width);
		put_varint(b, end - start);
		for (uint32_t i = start; i < end; i++) {
			const ls_window_slice *s = &lead->slices[i];
			uint64_t d = i == start ? (uint64_t)(top - s->k)
						: (uint64_t)(s->k -
							     lead->slices[i - 1].k - 1);
			put_slice(b, fi->spec.agg, d, s, width);
		}
	}
	return 1;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * Follows ls_lead_encode() section by section, each at its largest: every
 * varint that is not bounded by a limit at VARINT_MAX, every profile
 * string at its maximum length, every ring holding all its N slices.
 * A slice is its distance varint (d < N, so the count's d*2+1 < 2N) and a
 * value of at most VARINT_MAX bytes (a distinct bitmap takes 9).
 */
size_t ls_lead_blob_bound(const ls_lead_conf *conf)
{
	if (!conf || !conf->features)
		return 0;
	const ls_feature_set *set = conf->features;
	size_t b = 2 + VARINT_MAX + LS_SOURCE__COUNT * VARINT_MAX;
	b += varint_len(conf->dedupe_k) + (size_t)conf->dedupe_k * (8 + VARINT_MAX);
	b += varint_len(conf->max_attributes) +
	     (size_t)conf->max_attributes *
		     (varint_len(LS_LEAD_KEY_MAX) + LS_LEAD_KEY_MAX +
		      varint_len(LS_LEAD_VALUE_MAX) + LS_LEAD_VALUE_MAX);
	b += varint_len(conf->max_metrics) +
	     (size_t)conf->max_metrics *
		     (varint_len(LS_LEAD_KEY_MAX) + LS_LEAD_KEY_MAX + 1 + 8);
	b += varint_len(set->n_features);
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		if (fi->spec.kind != LS_FEATURE_WINDOWED)
			continue;
		b += 4 + 1 + (fi->tracked >= 0 ? VARINT_MAX : 0);
		for (uint32_t j = 0; j < fi->n_rings; j++) {
			uint64_t n = set->rings[fi->ring + j].slices;
			b += varint_len(n) +
			     (size_t)n * (varint_len(2 * n) + VARINT_MAX);
		}
	}
	return b + varint_len(LS_LEAD_EXT_MAX) + LS_LEAD_EXT_MAX;
}

int ls_lead_encode(const ls_lead *lead, const ls_lead_conf *conf,
		   ls_buf *out)
{
	int rc = check_use(lead, conf);
	if (rc != LS_LEAD_APPLIED)
		return rc;
	if (!out)
		return LS_LEAD_ERR_INVALID;
	const ls_feature_set *set = conf->features;
	out->len = 0;

	size_t fixed = 2 + VARINT_MAX * (2 + LS_SOURCE__COUNT + 3) +
		       (size_t)lead->n_seen * (8 + VARINT_MAX);
	if (ls_buf_reserve(out, fixed) != 0)
		return LS_LEAD_ERR_NOMEM;
	put_u8(out, LS_LEAD_BLOB_VERSION);
	put_u8(out, lead->watermark >= 0 ? 1 : 0);
	if (lead->watermark >= 0)
		put_varint(out, (uint64_t)lead->watermark);
	for (int s = 0; s < LS_SOURCE__COUNT; s++)
		put_varint(out, lead->n_events[s]);
	/* Already in (ts, hash) order: the canonical one. */
	put_varint(out, lead->n_seen);
	for (uint32_t i = 0; i < lead->n_seen; i++) {
		put_le(out, lead->seen[i].hash, 8);
		put_varint(out, (uint64_t)(lead->watermark - lead->seen[i].ts));
	}

	put_varint(out, lead->n_attrs);
	for (uint32_t i = 0; i < lead->n_attrs; i++) {
		size_t kl = strlen(lead->attrs[i].key);
		size_t vl = strlen(lead->attrs[i].value);
		if (ls_buf_reserve(out, 2 * VARINT_MAX + kl + vl) != 0)
			return LS_LEAD_ERR_NOMEM;
		put_varint(out, kl);
		memcpy(out->data + out->len, lead->attrs[i].key, kl);
		out->len += kl;
		put_varint(out, vl);
		memcpy(out->data + out->len, lead->attrs[i].value, vl);
		out->len += vl;
	}
	if (ls_buf_reserve(out, VARINT_MAX) != 0)
		return LS_LEAD_ERR_NOMEM;
	put_varint(out, lead->n_metrics);
	for (uint32_t i = 0; i < lead->n_metrics; i++) {
		size_t kl = strlen(lead->metrics[i].key);
		double v = lead->metrics[i].value;
		if (ls_buf_reserve(out, 2 * VARINT_MAX + kl + 1 + 8) != 0)
			return LS_LEAD_ERR_NOMEM;
		put_varint(out, kl);
		memcpy(out->data + out->len, lead->metrics[i].key, kl);
		out->len += kl;
		if (metric_is_int(v)) {
			put_u8(out, 0);
			put_varint(out, zigzag((int64_t)v));
		} else {
			uint64_t bits;
			memcpy(&bits, &v, sizeof bits);
			put_u8(out, 1);
			put_le(out, bits, 8);
		}
	}

	/* The record count goes before the records; count them first. */
	uint64_t n_records = 0;
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		if (fi->spec.kind != LS_FEATURE_WINDOWED)
			continue;
		bool any = fi->tracked >= 0 && lead->last_seen[fi->tracked] >= 0;
		for (uint32_t j = 0; !any && j < fi->n_rings; j++) {
			uint32_t r = fi->ring + j;
			any = ring_stop(lead, r) > ring_start(lead, r);
		}
		n_records += any;
	}
	if (ls_buf_reserve(out, VARINT_MAX) != 0)
		return LS_LEAD_ERR_NOMEM;
	put_varint(out, n_records);
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		if (fi->spec.kind != LS_FEATURE_WINDOWED)
			continue;
		rc = encode_feature(lead, set, fi, out);
		if (rc < 0)
			return rc;
	}
	/* No ext, no bytes: blobs of leads without one are unchanged. */
	if (lead->ext_len > 0) {
		if (ls_buf_reserve(out, VARINT_MAX + lead->ext_len) != 0)
			return LS_LEAD_ERR_NOMEM;
		put_varint(out, lead->ext_len);
		memcpy(out->data + out->len, lead->ext, lead->ext_len);
		out->len += lead->ext_len;
	}
	return LS_LEAD_APPLIED;
}

/* ---- decoding ---- */

/*
 * A reader over the blob (ls_varint.h): every read checks the bounds and
 * fails the reader (ok = false, with a reason and the offset) instead of
 * reading past the end; once failed, every later read fails too, so the
 * decoder can check once per step.
 */
typedef ls_reader reader;

static void fail(reader *r, const char *what)
{
	ls_reader_fail_at(r, r->pos, what);
}

/* A varint that must be <= max. */
static uint64_t get_bounded(reader *r, uint64_t max, const char *what)
{
	uint64_t v = ls_reader_varint(r);
	if (r->ok && v > max)
		fail(r, what);
	return r->ok ? v : 0;
}

/* Copy a length-prefixed string of 1..max bytes without NULs into buf. */
static bool get_string(reader *r, char *buf, size_t max, bool allow_empty)
{
	uint64_t l = get_bounded(r, max, "string too long");
	if (!r->ok)
		return false;
	if (l == 0 && !allow_empty) {
		fail(r, "empty string");
		return false;
	}
	if (r->len - r->pos < l) {
		fail(r, "truncated");
		return false;
	}
	if (memchr(r->p + r->pos, 0, (size_t)l)) {
		fail(r, "NUL in string");
		return false;
	}
	memcpy(buf, r->p + r->pos, (size_t)l);
	buf[l] = '\0';
	r->pos += (size_t)l;
	return true;
}

/* Slices being decoded for one ring, before they are put in ring order. */
typedef struct ring_tmp {
	uint32_t off, n;
	bool set;
} ring_tmp;

typedef struct decode_ctx {
	reader r;
	const ls_lead_conf *conf;
	ls_lead *lead;
	ring_tmp *rt;
	ls_window_slice *tmp;
	uint32_t n_tmp, cap_tmp;
	bool *record_seen;
	bool nomem;
} decode_ctx;


/*
 * One slice of a record: the distance d to the previous slice (or to top
 * for the first) and the value, as put_slice() wrote them. width is 0 when
 * the record is being skipped (feature unknown to this set): values are
 * then read for their length only.
 */
static bool get_slice(reader *r, ls_feature_agg agg, uint64_t *d, int64_t top,
		      int64_t *k, bool first, uint64_t max_d, int64_t width,
		      int64_t watermark, uint64_t *out)
{
	uint64_t v = 1;
	if (agg == LS_AGG_COUNT) {
		uint64_t x = ls_reader_varint(r);
		*d = x >> 1;
		if (x & 1) {
			v = ls_reader_varint(r);
			if (r->ok && v > UINT64_MAX - 2)
				fail(r, "count overflows");
			v += 2;
		}
	} else {
		*d = ls_reader_varint(r);
	}
	if (!r->ok)
		return false;
	if (*d > max_d) {
		fail(r, "slice outside its window");
		return false;
	}
	if (width > 0) {
		/* top - k >= 0 throughout: compare before moving k, so a
		 * watermark near INT64_MAX cannot overflow it. */
		if (first) {
			if ((int64_t)*d > top) {
				fail(r, "slice before the epoch");
				return false;
			}
			*k = top - (int64_t)*d;
		} else {
			if ((int64_t)*d + 1 > top - *k) {
				fail(r, "slice after the watermark");
				return false;
			}
			*k += (int64_t)*d + 1;
		}
	}

	switch (agg) {
	case LS_AGG_COUNT:
		break;
	case LS_AGG_SUM:
		v = (uint64_t)unzigzag(ls_reader_varint(r));
		break;
	case LS_AGG_LAST_SEEN: {
		if (width == 0) {
			v = ls_reader_varint(r) + 1;
			break;
		}
		/* k <= idx(watermark), so k * width <= watermark fits. */
		uint64_t off = get_bounded(r, (uint64_t)width - 1,
					   "last_seen outside its slice");
		v = (uint64_t)(*k * width) + off + 1;
		if (r->ok && v - 1 > (uint64_t)watermark)
			fail(r, "last_seen after the watermark");
		break;
	}
	case LS_AGG_DISTINCT: {
		uint8_t c = ls_reader_u8(r);
		v = 0;
		if (r->ok && (c == 0 || c > 64)) {
			fail(r, "bad bitmap count");
			return false;
		}
		if (c > 7) {
			v = ls_reader_le(r, 8);
			if (r->ok && __builtin_popcountll(v) != c)
				fail(r, "bitmap count mismatch");
			break;
		}
		int prev = -1;
		for (unsigned i = 0; i < c && r->ok; i++) {
			uint8_t bit = ls_reader_u8(r);
			if (r->ok && (bit > 63 || (int)bit <= prev)) {
				fail(r, "bad bitmap position");
				break;
			}
			prev = bit;
			v |= UINT64_C(1) << (bit & 63);
		}
		break;
	}
	default:
		fail(r, "unknown aggregation");
		return false;
	}
	if (r->ok && v == 0)
		fail(r, "empty slice");
	*out = v;
	return r->ok;
}

/*
 * One record: flags, then last_seen and the non-empty windows. fi is the
 * feature the key names, or NULL to walk over a record this set does not
 * know (then only the generic bounds are checked and nothing is kept).
 */
static void decode_record(decode_ctx *c, const ls_feature_info *fi)
{
	reader *r = &c->r;
	const ls_feature_set *set = c->conf->features;
	ls_lead *lead = c->lead;
	uint8_t flags = ls_reader_u8(r);
	if (!r->ok)
		return;
	ls_feature_agg agg = (ls_feature_agg)(flags >> 5);
	size_t n_rings = fi ? fi->n_rings : LS_FEATURE_MAX_WINDOWS;
	if ((flags & 0x1f) == 0 || (flags & 0x1f) >> (1 + n_rings) ||
	    agg >= LS_AGG__COUNT || (fi && agg != fi->spec.agg)) {
		fail(r, "bad record flags");
		return;
	}
	if (flags & 1) {
		uint64_t d = get_bounded(r, (uint64_t)lead->watermark,
					 "last_seen before the epoch");
		/* A feature no recency reads any more drops its last_seen. */
		if (r->ok && fi && fi->tracked >= 0)
			lead->last_seen[fi->tracked] = lead->watermark - (int64_t)d;
	}
	for (uint32_t j = 0; j < n_rings && r->ok; j++) {
		if (!(flags & (1u << (1 + j))))
			continue;
		uint32_t ri = fi ? fi->ring + j : 0;
		uint64_t max_n = fi ? set->rings[ri].slices : LS_WINDOW_MAX_SLICES;
		int64_t width = fi ? set->rings[ri].width_ms : 0;
		int64_t top = fi ? ls_window_slice_index(lead->watermark, width)
				 : 0;
		uint64_t n = get_bounded(r, max_n, "too many slices");
		if (r->ok && n == 0)
			fail(r, "empty window flagged");
		if (!r->ok)
			return;
		if (fi && !reserve((void **)&c->tmp, &c->cap_tmp,
				   c->n_tmp + (uint32_t)n,
				   sizeof(ls_window_slice))) {
			c->nomem = true;
			fail(r, "out of memory");
			return;
		}
		if (fi) {
			c->rt[ri].off = c->n_tmp;
			c->rt[ri].n = (uint32_t)n;
			c->rt[ri].set = true;
		}
		int64_t k = 0;
		for (uint64_t i = 0; i < n && r->ok; i++) {
			uint64_t d, v;
			if (!get_slice(r, agg, &d, top, &k, i == 0,
				       i == 0 ? max_n - 1 : max_n, width,
				       lead->watermark, &v))
				return;
			if (fi) {
				c->tmp[c->n_tmp].k = k;
				c->tmp[c->n_tmp].v = v;
				c->n_tmp++;
			}
		}
	}
}

/* Put the decoded rings into the lead's one array, in ring order. */
static bool build_slices(decode_ctx *c)
{
	ls_lead *lead = c->lead;
	if (c->n_tmp == 0)
		return true;
	lead->ring_end = calloc(lead->n_rings, sizeof(uint32_t));
	lead->slices = malloc((size_t)c->n_tmp * sizeof(ls_window_slice));
	if (!lead->ring_end || !lead->slices)
		return false;
	lead->cap_slices = c->n_tmp;
	uint32_t n = 0;
	for (uint32_t ri = 0; ri < lead->n_rings; ri++) {
		if (c->rt[ri].set) {
			memcpy(&lead->slices[n], &c->tmp[c->rt[ri].off],
			       c->rt[ri].n * sizeof(ls_window_slice));
			n += c->rt[ri].n;
		}
		lead->ring_end[ri] = n;
	}
	lead->n_slices = n;
	return true;
}

static void decode_header(decode_ctx *c)
{
	reader *r = &c->r;
	ls_lead *lead = c->lead;
	uint8_t version = ls_reader_u8(r);
	if (r->ok && version != LS_LEAD_BLOB_VERSION) {
		/* Version 1 (dedupe memory in application order) was never
		 * deployed, so it is refused like any unknown version. */
		char what[96];
		snprintf(what, sizeof what,
			 "blob version %u not supported (this build reads "
			 "version %d only)",
			 (unsigned)version, LS_LEAD_BLOB_VERSION);
		r->pos = 0;
		fail(r, what);
		return;
	}
	uint8_t flags = ls_reader_u8(r);
	if (r->ok && flags > 1) {
		fail(r, "unknown flags");
		return;
	}
	if (flags & 1)
		lead->watermark = (int64_t)get_bounded(r, (uint64_t)INT64_MAX,
						       "watermark out of range");
	uint64_t count = 0;
	for (int s = 0; s < LS_SOURCE__COUNT && r->ok; s++) {
		lead->n_events[s] = ls_reader_varint(r);
		if (r->ok && lead->n_events[s] > UINT64_MAX - count)
			fail(r, "event counts overflow");
		count += lead->n_events[s];
	}

	uint64_t n_seen = get_bounded(r, LS_LEAD_MAX_DEDUPE_K,
				      "too many remembered ids");
	if (r->ok && n_seen > 0 && lead->watermark < 0)
		fail(r, "remembered ids without a watermark");
	if (r->ok && n_seen > count)
		fail(r, "more remembered ids than events");
	if (!r->ok)
		return;
	if (n_seen > 0) {
		lead->seen = malloc((size_t)n_seen * sizeof(seen_id));
		if (!lead->seen) {
			c->nomem = true;
			fail(r, "out of memory");
			return;
		}
		lead->cap_seen = (uint32_t)n_seen;
	}
	for (uint64_t i = 0; i < n_seen && r->ok; i++) {
		uint64_t h = ls_reader_le(r, 8);
		uint64_t d = get_bounded(r, (uint64_t)lead->watermark,
					 "remembered id before the epoch");
		if (!r->ok)
			return;
		int64_t ts = lead->watermark - (int64_t)d;
		/* strictly ascending in (ts, hash): canonical, no repeats */
		if (i > 0 && seen_cmp(ts, h, &lead->seen[i - 1]) <= 0) {
			fail(r, "remembered ids out of order");
			return;
		}
		lead->seen[lead->n_seen].hash = h;
		lead->seen[lead->n_seen].ts = ts;
		lead->n_seen++;
	}
	if (!r->ok)
		return;
	/* Limits may differ from encoding time: apply today's, as apply
	 * would have. */
	prune_seen(lead, c->conf);
}

static void decode_profile(decode_ctx *c)
{
	reader *r = &c->r;
	ls_lead *lead = c->lead;
	char key[LS_LEAD_KEY_MAX + 1], prev[LS_LEAD_KEY_MAX + 1];
	char value[LS_LEAD_VALUE_MAX + 1];

	uint64_t n = get_bounded(r, LS_LEAD_MAX_PROFILE_KEYS,
				 "too many attributes");
	if (!r->ok)
		return;
	uint32_t keep = n < c->conf->max_attributes ? (uint32_t)n
						     : c->conf->max_attributes;
	if (!reserve((void **)&lead->attrs, &lead->cap_attrs, keep,
		     sizeof(attr))) {
		c->nomem = true;
		fail(r, "out of memory");
		return;
	}
	for (uint64_t i = 0; i < n && r->ok; i++) {
		if (!get_string(r, key, LS_LEAD_KEY_MAX, false) ||
		    !get_string(r, value, LS_LEAD_VALUE_MAX, false))
			return;
		if (i > 0 && strcmp(prev, key) >= 0) {
			fail(r, "attribute keys out of order");
			return;
		}
		strcpy(prev, key);
		if (lead->n_attrs >= keep)
			continue;
		char *s = attr_alloc(key, value);
		if (!s) {
			c->nomem = true;
			fail(r, "out of memory");
			return;
		}
		lead->attrs[lead->n_attrs].key = s;
		lead->attrs[lead->n_attrs].value = s + strlen(s) + 1;
		lead->n_attrs++;
	}

	n = get_bounded(r, LS_LEAD_MAX_PROFILE_KEYS, "too many metrics");
	if (!r->ok)
		return;
	keep = n < c->conf->max_metrics ? (uint32_t)n : c->conf->max_metrics;
	if (!reserve((void **)&lead->metrics, &lead->cap_metrics, keep,
		     sizeof(metric))) {
		c->nomem = true;
		fail(r, "out of memory");
		return;
	}
	for (uint64_t i = 0; i < n && r->ok; i++) {
		if (!get_string(r, key, LS_LEAD_KEY_MAX, false))
			return;
		if (i > 0 && strcmp(prev, key) >= 0) {
			fail(r, "metric keys out of order");
			return;
		}
		strcpy(prev, key);
		uint8_t tag = ls_reader_u8(r);
		double v = 0.0;
		if (tag == 0) {
			int64_t iv = unzigzag(ls_reader_varint(r));
			if (r->ok && (iv > (int64_t)TWO53 || iv < -(int64_t)TWO53))
				fail(r, "metric out of range");
			v = (double)iv;
		} else if (tag == 1) {
			uint64_t bits = ls_reader_le(r, 8);
			memcpy(&v, &bits, sizeof v);
			if (r->ok && (!isfinite(v) || metric_is_int(v)))
				fail(r, "metric not canonical");
		} else {
			fail(r, "unknown metric tag");
		}
		if (!r->ok || lead->n_metrics >= keep)
			continue;
		char *k = dup_str(key);
		if (!k) {
			c->nomem = true;
			fail(r, "out of memory");
			return;
		}
		lead->metrics[lead->n_metrics].key = k;
		lead->metrics[lead->n_metrics].value = v;
		lead->n_metrics++;
	}
}

static void decode_records(decode_ctx *c)
{
	reader *r = &c->r;
	const ls_feature_set *set = c->conf->features;
	uint64_t n = ls_reader_varint(r);
	if (r->ok && n > 0 && c->lead->watermark < 0)
		fail(r, "feature state without a watermark");
	for (uint64_t i = 0; i < n && r->ok; i++) {
		uint32_t key = (uint32_t)ls_reader_le(r, 4);
		if (!r->ok)
			return;
		int f = -1;
		for (size_t j = 0; j < set->n_features; j++) {
			if (set->features[j].spec.kind == LS_FEATURE_WINDOWED &&
			    set->features[j].key == key) {
				f = (int)j;
				break;
			}
		}
		if (f < 0) { /* a feature this set no longer has */
			decode_record(c, NULL);
			continue;
		}
		if (c->record_seen[f]) {
			fail(r, "feature recorded twice");
			return;
		}
		c->record_seen[f] = true;
		decode_record(c, &set->features[f]);
	}
}

/*
 * Whatever follows the records is the ext section: a length of
 * 1..LS_LEAD_EXT_MAX that runs exactly to the end of the blob. Length 0 is
 * refused because an empty ext is written as no section at all (one
 * encoding per lead); length errors are reported at the length's offset.
 */
static void decode_ext(decode_ctx *c)
{
	reader *r = &c->r;
	if (!r->ok || r->pos == r->len)
		return;
	size_t at = r->pos;
	uint64_t n = ls_reader_varint(r);
	if (!r->ok)
		return;
	const char *why = NULL;
	if (n == 0)
		why = "empty extension section";
	else if (n > LS_LEAD_EXT_MAX)
		why = "extension too long";
	else if (n > r->len - r->pos)
		why = "extension truncated";
	else if (n < r->len - r->pos)
		why = "trailing bytes after the extension";
	if (why) {
		r->pos = at;
		fail(r, why);
		return;
	}
	c->lead->ext = malloc((size_t)n);
	if (!c->lead->ext) {
		c->nomem = true;
		fail(r, "out of memory");
		return;
	}
	memcpy(c->lead->ext, r->p + r->pos, (size_t)n);
	c->lead->ext_len = (uint32_t)n;
	r->pos += (size_t)n;
}

int ls_lead_decode(const ls_lead_conf *conf, const uint8_t *data, size_t len,
		   ls_lead **out, char *err, size_t errlen)
{
	if (out)
		*out = NULL;
	if (err && errlen > 0)
		err[0] = '\0';
	if (!out || (!data && len > 0) || !ls_lead_conf_check(conf, err, errlen))
		return LS_LEAD_ERR_INVALID;
	const ls_feature_set *set = conf->features;

	decode_ctx c;
	memset(&c, 0, sizeof c);
	ls_reader_init(&c.r, data, len, "blob", err, errlen);
	c.conf = conf;
	c.lead = ls_lead_new(conf);
	if (set->n_rings > 0)
		c.rt = calloc(set->n_rings, sizeof(ring_tmp));
	if (set->n_features > 0)
		c.record_seen = calloc(set->n_features, sizeof(bool));
	if (!c.lead || (set->n_rings > 0 && !c.rt) ||
	    (set->n_features > 0 && !c.record_seen)) {
		c.nomem = true;
		goto done;
	}

	decode_header(&c);
	if (c.r.ok)
		decode_profile(&c);
	if (c.r.ok)
		decode_records(&c);
	if (c.r.ok)
		decode_ext(&c);
	if (c.r.ok && !build_slices(&c))
		c.nomem = true;

done:
	free(c.rt);
	free(c.tmp);
	free(c.record_seen);
	if (c.nomem || !c.r.ok) {
		ls_lead_free(c.lead);
		if (c.nomem) {
			ls_set_err(err, errlen, "out of memory");
			return LS_LEAD_ERR_NOMEM;
		}
		return LS_LEAD_ERR_CORRUPT;
	}
	*out = c.lead;
	return LS_LEAD_APPLIED;
}
