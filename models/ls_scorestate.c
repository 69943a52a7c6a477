/*
 * ls_scorestate.c - per-lead scoring state and the label, timeout and decay
 * rules; see ls_scorestate.h for the contract.
 *
 * The state is a fixed array of at most 8 records rather than a map:
 * leads are cached by the hundred thousand and a handful of models is the
 * realistic maximum, so a linear scan over one cache line or two beats any
 * structure with pointers, and the value can be copied, zeroed and kept on
 * the stack with no allocation to fail.
 *
 * Records stay in creation order in memory so that a pointer from
 * ls_scorestate_get() survives creating another record; the encoder sorts a
 * list of indices instead (n <= 8: an insertion sort), which is what makes
 * the bytes canonical whatever order the models first saw the lead in.
 *
 * The encoding spends bytes only on what exists: nothing at all for a lead
 * scoring never touched (most leads in the cache, at any time), no first_ts
 * before the first event, no score bytes before the first publication.
 * Scores are stored as full doubles because they are compared against the
 * next score to decide whether to publish (ls_score_should_publish): a
 * rounded copy would publish a lead again after every restart.
 */
#include "ls_err.h"
#include "ls_eval.h"
#include "ls_scorestate.h"
#include "ls_varint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

/* tier + 1 travels in a byte whose maximum is checked against this. */
_Static_assert(LS_TIERS_MAX <= 127, "tier must fit an int8_t");

const char *ls_scorestate_result_str(int rc)
{
	switch (rc) {
	case LS_SCORESTATE_OK:
		return "ok";
	case LS_SCORESTATE_ERR_INVALID:
		return "invalid argument";
	case LS_SCORESTATE_ERR_CORRUPT:
		return "state corrupt";
	case LS_SCORESTATE_ERR_SPACE:
		return "output too small";
	default:
		return "unknown result";
	}
}

uint32_t ls_scorestate_key(const char *model_name)
{
	if (!model_name)
		model_name = "";
	return (uint32_t)XXH3_64bits(model_name, strlen(model_name));
}

void ls_scorestate_init(ls_scorestate *s)
{
	if (!s)
		return;
	memset(s, 0, sizeof *s);
	s->first_ts = -1;
	s->n = 0;
}

static void model_init(ls_scorestate_model *r, uint32_t key)
{
	memset(r, 0, sizeof *r);
	r->key = key;
	r->label = LS_LABEL_NONE;
	r->tier = -1;
	r->version = 0;
	r->score = NAN;
}

ls_scorestate_model *ls_scorestate_get(ls_scorestate *s, uint32_t key,
				     bool create)
{
	if (!s || s->n > LS_SCORESTATE_MAX_MODELS)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->m[i].key == key)
			return &s->m[i];
	if (!create || s->n == LS_SCORESTATE_MAX_MODELS)
		return NULL;
	ls_scorestate_model *r = &s->m[s->n++];
	model_init(r, key);
	return r;
}

uint64_t ls_scorestate_next_version(uint64_t prev, uint64_t epoch)
{
	uint64_t floor = epoch << 32;
	return prev + 1 > floor ? prev + 1 : floor;
}

void ls_scorestate_retain(ls_scorestate *s, const uint32_t *keys, size_t n)
{
	if (!s || (!keys && n > 0) || s->n > LS_SCORESTATE_MAX_MODELS)
		return;
	size_t kept = 0;
	for (size_t i = 0; i < s->n; i++) {
		bool keep = false;
		for (size_t j = 0; j < n && !keep; j++)
			keep = keys[j] == s->m[i].key;
		if (keep)
			s->m[kept++] = s->m[i];
	}
	s->n = kept;
}

/* ---- encoding ---- */

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static bool is_empty(const ls_scorestate *s)
{
	return s->first_ts == -1 && s->n == 0;
}

static bool score_ok(double v)
{
	return isnan(v) || (v >= 0.0 && v <= 1.0);
}

/*
 * Check that s can be encoded and put the indices of its records in key
 * order into order[0..n). false on anything the format cannot carry.
 */
static bool sort_check(const ls_scorestate *s, uint8_t *order)
{
	if (s->first_ts < -1 || s->n > LS_SCORESTATE_MAX_MODELS)
		return false;
	for (size_t i = 0; i < s->n; i++) {
		const ls_scorestate_model *r = &s->m[i];
		if (r->label > LS_LABEL_TIMEOUT || r->tier < -1 ||
		    r->tier >= LS_TIERS_MAX || !score_ok(r->score))
			return false;
		size_t j = i;
		while (j > 0 && s->m[order[j - 1]].key > r->key) {
			order[j] = order[j - 1];
			j--;
		}
		if (j > 0 && s->m[order[j - 1]].key == r->key)
			return false; /* two records of one model */
		order[j] = (uint8_t)i;
	}
	return true;
}

/* Bytes of a valid state's encoding. */
static size_t size_of(const ls_scorestate *s)
{
	if (is_empty(s))
		return 0;
	size_t n = 2 + ls_varint_len(s->n);
	if (s->first_ts >= 0)
		n += ls_varint_len(zigzag(s->first_ts));
	for (size_t i = 0; i < s->n && i < LS_SCORESTATE_MAX_MODELS; i++)
		n += 4 + 1 + 1 + ls_varint_len(s->m[i].version) + 1 +
		     (isnan(s->m[i].score) ? 0 : 8);
	return n;
}

size_t ls_scorestate_encoded_size(const ls_scorestate *s)
{
	return s ? size_of(s) : 0;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

int ls_scorestate_encode(const ls_scorestate *s, uint8_t *buf, size_t cap,
			size_t *len)
{
	uint8_t order[LS_SCORESTATE_MAX_MODELS];
	if (!len)
		return LS_SCORESTATE_ERR_INVALID;
	*len = 0;
	if (!s || !sort_check(s, order) || (!buf && cap > 0))
		return LS_SCORESTATE_ERR_INVALID;
	size_t need = size_of(s);
	if (need > cap)
		return LS_SCORESTATE_ERR_SPACE;
	if (need == 0)
		return LS_SCORESTATE_OK;

	/* Built in a local buffer with the room ls_varint_put() asks for. */
	uint8_t tmp[LS_SCORESTATE_ENCODED_MAX + LS_VARINT_MAX];
	uint8_t *p = tmp;
	*p++ = LS_SCORESTATE_VERSION;
	*p++ = s->first_ts >= 0 ? 1 : 0;
	if (s->first_ts >= 0)
		p = ls_varint_put(p, zigzag(s->first_ts));
	p = ls_varint_put(p, s->n);
	for (size_t i = 0; i < s->n; i++) {
		const ls_scorestate_model *r = &s->m[order[i]];
		p = put_le(p, r->key, 4);
		*p++ = r->label;
		*p++ = (uint8_t)(r->tier + 1);
		p = ls_varint_put(p, r->version);
		if (isnan(r->score)) {
			*p++ = 0;
			continue;
		}
		/* +0.0 for -0.0: one encoding per value */
		double v = r->score == 0.0 ? 0.0 : r->score;
		uint64_t bits;
		memcpy(&bits, &v, sizeof bits);
		*p++ = 1;
		p = put_le(p, bits, 8);
	}
	size_t n = (size_t)(p - tmp);
	if (n != need) /* size_of() and this loop disagree: a bug, not input */
		return LS_SCORESTATE_ERR_INVALID;
	memcpy(buf, tmp, n);
	*len = n;
	return LS_SCORESTATE_OK;
}

/* ---- decoding ---- */

/* The bounds-checked reader shared with ls_lead.c (ls_varint.h). */
typedef ls_reader reader;

static void fail_at(reader *r, size_t at, const char *what)
{
	ls_reader_fail_at(r, at, what);
}

/* One record; prev is the previous record's key (has_prev when any). */
static void get_record(reader *r, ls_scorestate_model *m, bool has_prev,
		       uint32_t prev)
{
	size_t at = r->pos;
	m->key = (uint32_t)ls_reader_le(r, 4);
	if (r->ok && has_prev && m->key <= prev) {
		fail_at(r, at, "model keys not ascending");
		return;
	}
	at = r->pos;
	m->label = ls_reader_u8(r);
	if (r->ok && m->label > LS_LABEL_TIMEOUT) {
		fail_at(r, at, "unknown label");
		return;
	}
	at = r->pos;
	uint8_t tier = ls_reader_u8(r);
	if (r->ok && tier > LS_TIERS_MAX) {
		fail_at(r, at, "tier out of range");
		return;
	}
	m->tier = (int8_t)(tier - 1);
	m->version = ls_reader_varint(r);
	at = r->pos;
	uint8_t tag = ls_reader_u8(r);
	if (!r->ok)
		return;
	if (tag == 0) {
		m->score = NAN;
		return;
	}
	if (tag != 1) {
		fail_at(r, at, "unknown score tag");
		return;
	}
	at = r->pos;
	uint64_t bits = ls_reader_le(r, 8);
	double v;
	memcpy(&v, &bits, sizeof v);
	if (r->ok && (!(v >= 0.0 && v <= 1.0) || signbit(v)))
		fail_at(r, at, "score not in [0,1]");
	m->score = v;
}

int ls_scorestate_decode(const uint8_t *data, size_t len, ls_scorestate *out,
			char *err, size_t errlen)
{
	if (err && errlen > 0)
		err[0] = '\0';
	if (!out || (!data && len > 0)) {
		ls_set_err(err, errlen, "scoring state: no output or no data");
		if (out)
			ls_scorestate_init(out);
		return LS_SCORESTATE_ERR_INVALID;
	}
	ls_scorestate s;
	ls_scorestate_init(&s);
	if (len == 0) {
		*out = s;
		return LS_SCORESTATE_OK;
	}
	reader r;
	ls_reader_init(&r, data, len, "scoring state", err, errlen);

	uint8_t version = ls_reader_u8(&r);
	if (version != LS_SCORESTATE_VERSION) {
		char what[80];
		snprintf(what, sizeof what,
			 "version %u not supported (this build reads %d)",
			 (unsigned)version, LS_SCORESTATE_VERSION);
		fail_at(&r, 0, what);
	}
	size_t at = r.pos;
	uint8_t flags = ls_reader_u8(&r);
	if (r.ok && flags > 1)
		fail_at(&r, at, "unknown flags");
	if (r.ok && (flags & 1)) {
		at = r.pos;
		int64_t ts = unzigzag(ls_reader_varint(&r));
		if (r.ok && ts < 0)
			fail_at(&r, at, "first_ts negative");
		s.first_ts = ts;
	}
	at = r.pos;
	uint64_t n = ls_reader_varint(&r);
	if (r.ok && n > LS_SCORESTATE_MAX_MODELS)
		fail_at(&r, at, "too many models");
	if (r.ok && n == 0 && !(flags & 1))
		fail_at(&r, 0, "empty state not encoded as 0 bytes");
	for (uint64_t i = 0; i < n && r.ok; i++) {
		get_record(&r, &s.m[i], i > 0, i > 0 ? s.m[i - 1].key : 0);
		s.n = (size_t)i + 1;
	}
	if (r.ok && r.pos != r.len)
		fail_at(&r, r.pos, "trailing bytes");
	if (!r.ok) {
		ls_scorestate_init(out);
		return LS_SCORESTATE_ERR_CORRUPT;
	}
	*out = s;
	return LS_SCORESTATE_OK;
}

/* ---- rules ---- */

bool ls_scorestate_accept_label(ls_scorestate_model *r, ls_label_state observed)
{
	int o = (int)observed; /* the enum's type may be unsigned */
	if (!r || o <= LS_LABEL_NONE || o > LS_LABEL_TIMEOUT)
		return false;
	bool learn = false;
	if (r->label == LS_LABEL_NONE)
		learn = true;
	else if (r->label == LS_LABEL_TIMEOUT)
		learn = observed == LS_LABEL_POSITIVE;
	if (learn)
		r->label = (uint8_t)observed;
	return learn;
}

bool ls_scorestate_timeout_due(const ls_scorestate *s,
			      const ls_scorestate_model *r, int64_t now_ts,
			      int64_t timeout_ms)
{
	if (!s || !r || r->label != LS_LABEL_NONE || s->first_ts < 0 ||
	    timeout_ms <= 0)
		return false;
	/* now >= first + timeout without forming the sum: first >= 0, so
	 * now - first cannot overflow once now >= first. */
	if (now_ts < s->first_ts)
		return false;
	return now_ts - s->first_ts >= timeout_ms;
}

ls_label_state ls_scorestate_label_of(uint32_t pos_mask, uint32_t neg_mask,
				     int outcome)
{
	if (outcome < 0 || outcome >= 32)
		return LS_LABEL_NONE;
	uint32_t bit = 1u << outcome;
	if (pos_mask & bit)
		return LS_LABEL_POSITIVE;
	if (neg_mask & bit)
		return LS_LABEL_NEGATIVE;
	return LS_LABEL_NONE;
}

static double clamp01(double v)
{
	return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

double ls_scorestate_decay(double score, double prior, int64_t idle_ms,
			  int64_t half_life_ms)
{
	if (isnan(score))
		return score;
	if (half_life_ms <= 0 || idle_ms <= 0 || isnan(prior))
		return clamp01(score);
	prior = clamp01(prior);
	/* exp2 of a large negative number is 0: a long-idle lead is at the
	 * prior, never below it. */
	double f = exp2(-((double)idle_ms / (double)half_life_ms));
	return clamp01(prior + (clamp01(score) - prior) * f);
}
