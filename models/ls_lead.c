/*
 * ls_lead.c - per-lead state: windows, dedupe, profile. The blob that
 * stores it is ls_lead_codec.c.
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
 * labels and last scores, ls_scorestate.h). They ride at the end of the
 * lead's blob rather than under a Redis key of their own so that the lead
 * and what the models remember about it are written in one SET: a crash
 * can never leave a lead whose events were applied but whose label was not
 * recorded, or the reverse. The lead only stores them; nothing here looks
 * inside. Their length lives in padding of the struct, so they cost a
 * pointer (8 bytes) per lead when unused.
 */
#include "ls_err.h"
#include "ls_lead.h"
#include "ls_lead_internal.h"

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

/* Drop, in every ring, the slices at or below idx(watermark) - N. */
static void evict(ls_lead *lead, const ls_feature_set *set)
{
	if (!lead->ring_end)
		return;
	uint32_t out = 0, start = 0;
	for (uint32_t r = 0; r < lead->n_rings; r++) {
		const ls_window_ring *ring = &set->rings[r];
		uint32_t end = lead->ring_end[r];
		if (end == start) { /* most rings are empty: no division */
			lead->ring_end[r] = out;
			continue;
		}
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

/*
 * Position of key in a sorted array of n elements of stride bytes whose
 * first member is their char *key (attributes and metrics), or where it
 * would go.
 */
static uint32_t key_find(const void *base, uint32_t n, size_t stride, const char *key,
			 bool *found)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const char *k = *(char *const *)((const char *)base + (size_t)mid * stride);
		int c = strcmp(k, key);
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

static uint32_t attr_find(const ls_lead *lead, const char *key, bool *found)
{
	return key_find(lead->attrs, lead->n_attrs, sizeof *lead->attrs, key, found);
}

static uint32_t metric_find(const ls_lead *lead, const char *key, bool *found)
{
	return key_find(lead->metrics, lead->n_metrics, sizeof *lead->metrics, key, found);
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
	/* the struct is loaded now: start all its arrays at once, so their
	 * cache misses overlap instead of coming one after the other */
	ls_lead_prefetch(lead, true);
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
	/* a lead without slices has slices == NULL, and NULL + 0 is undefined;
	 * most rings of a lead are empty, and need no slice index */
	if (end == start)
		return ls_window_value_at(fi, w, NULL, 0, T, 0);
	/* the ring's width is its windows' length / slices, by construction */
	int64_t top = ls_window_slice_index(T, set->rings[r].width_ms);
	return ls_window_value_at(fi, w, lead->slices + start, end - start, T, top);
}

/*
 * Window value w of windowed feature a, which the first pass of
 * ls_lead_features already wrote to out (derived features read their
 * operands' windows: computing them again gave the same bits).
 */
static double operand_value(const ls_feature_set *set, const double *out,
			    int a, size_t w)
{
	return out[set->features[a].first_value + w];
}

int ls_lead_features(const ls_lead *lead, const ls_lead_conf *conf,
		     int64_t T, double *out, size_t n)
{
	int rc = check_use(lead, conf);
	if (rc != LS_LEAD_APPLIED)
		return rc;
	ls_lead_prefetch(lead, true); /* as in ls_lead_apply_counted */
	const ls_feature_set *set = conf->features;
	if (T == LS_LEAD_AT_WATERMARK)
		T = lead->watermark >= 0 ? lead->watermark : 0;
	if (T < 0)
		return LS_LEAD_ERR_INVALID;
	if (n < set->n_values || (!out && set->n_values > 0))
		return LS_LEAD_ERR_SPACE;

	/* windowed features first: the derived ones below read them */
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		if (fi->spec.kind != LS_FEATURE_WINDOWED)
			continue;
		double *o = out + fi->first_value;
		for (size_t w = 0; w < fi->spec.n_windows; w++)
			o[w] = window_value(lead, set, (int)f, w, T);
	}
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		const ls_feature_spec *s = &fi->spec;
		double *o = out + fi->first_value;
		switch (s->kind) {
		case LS_FEATURE_WINDOWED:
			break;
		case LS_FEATURE_VELOCITY: {
			double cs = operand_value(set, out, fi->a, fi->a_win[0]);
			double cl = operand_value(set, out, fi->a, fi->a_win[1]);
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
				double a = operand_value(set, out, fi->a, fi->a_win[w]);
				double b = operand_value(set, out, fi->b, fi->b_win[w]);
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

void ls_lead_prefetch(const ls_lead *lead, bool deep)
{
	if (!lead)
		return;
	if (!deep) {
		__builtin_prefetch(lead);
		__builtin_prefetch((const char *)lead + 64);
		__builtin_prefetch((const char *)lead + 128);
		return;
	}
	if (lead->ring_end) {
		__builtin_prefetch(lead->ring_end);
		__builtin_prefetch(lead->ring_end + 16);
	}
	/* the first lines of the slices; longer leads are read sequentially
	 * and the hardware prefetcher follows */
	for (uint32_t i = 0; i < lead->n_slices && i < 16; i += 4)
		__builtin_prefetch(lead->slices + i);
	if (lead->n_seen)
		__builtin_prefetch(lead->seen + lead->n_seen - 1);
	if (lead->last_seen)
		__builtin_prefetch(lead->last_seen);
	if (lead->ext)
		__builtin_prefetch(lead->ext);
}

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
	if (len > 0 && len == lead->ext_len) {
		/* the scorer saves every lead it scores, mostly at the same
		 * length: overwrite in place (memmove: data may be ext) */
		memmove(lead->ext, data, len);
		return LS_LEAD_APPLIED;
	}
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
