/*
 * ls_lead_codec.c - the lead blob: ls_lead_encode(), ls_lead_decode() and
 * ls_lead_blob_bound(); the format is documented in ls_lead.h.
 *
 * Why a file of its own: the codec is half of what a lead is, and it
 * changes for other reasons than the state does. A new section of the
 * blob, a stricter check in the decoder or a tighter bound touches only
 * this file; a new window rule or profile limit touches only ls_lead.c.
 * Both see the struct through ls_lead_internal.h, and the decoder builds
 * its lead with ls_lead_new() and keeps the state's invariants (sorted
 * rings, pruned dedupe memory). What keeps the halves from drifting apart
 * is the canonical encoding (ls_lead.h): the round-trip tests and
 * fuzz_lead check that a decoded lead encodes to the same bytes.
 */
#include "ls_err.h"
#include "ls_varint.h"
#include "ls_lead.h"
#include "ls_lead_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		/* the set bits, lowest first: one step per bit, not 64 */
		for (uint64_t v = s->v; v != 0; v &= v - 1)
			put_u8(b, (uint8_t)__builtin_ctzll(v));
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
	ls_lead_prefetch(lead, true); /* as in ls_lead_apply_counted */
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
