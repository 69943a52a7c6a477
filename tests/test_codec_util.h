/*
 * test_codec_util.h - fixtures the ls_codec test programs share
 * (test_codec.c, test_codec_hostile.c): a counting Avro-C allocator, the
 * raw Avro writer for hand-made records, a codec with every kind's own
 * schema registered (setup/teardown), sample records and equality checks.
 *
 * Header-only and static inline, so each test program gets its own copy.
 * Memory: setup makes the codec, arena and buffer below, teardown frees
 * them; raw records live on the stack. Errors: every helper fails the
 * running Check test. Thread-safety: none (the fixtures are static).
 */
#ifndef TEST_CODEC_UTIL_H
#define TEST_CODEC_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_arena.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_schemas.h"

/* --- Avro-C allocation counter ------------------------------------------- */

static size_t avro_allocs;
static size_t avro_max_alloc;

/* Same contract as Avro-C's default allocator (realloc/free), so memory
 * allocated before it was installed can be freed through it. */
static inline void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	(void)osize;
	if (nsize == 0) {
		free(ptr);
		return NULL;
	}
	avro_allocs++;
	if (nsize > avro_max_alloc)
		avro_max_alloc = nsize;
	return realloc(ptr, nsize);
}

/* --- raw Avro writer for hand-made records -------------------------------- */

typedef struct raw {
	uint8_t b[8192];
	size_t n;
} raw;

static inline void r_byte(raw *r, uint8_t v)
{
	ck_assert_uint_lt(r->n, sizeof(r->b));
	r->b[r->n++] = v;
}

static inline void r_varint(raw *r, uint64_t z)
{
	while (z >= 0x80) {
		r_byte(r, (uint8_t)(z | 0x80));
		z >>= 7;
	}
	r_byte(r, (uint8_t)z);
}

static inline void r_long(raw *r, int64_t v)
{
	r_varint(r, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline void r_str(raw *r, const char *s)
{
	size_t n = strlen(s);
	r_long(r, (int64_t)n);
	for (size_t i = 0; i < n; i++)
		r_byte(r, (uint8_t)s[i]);
}

static inline void r_double(raw *r, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, 8);
	for (int i = 0; i < 8; i++)
		r_byte(r, (uint8_t)(bits >> (8 * i)));
}

static inline void r_header(raw *r, int32_t id)
{
	uint32_t u = (uint32_t)id;
	r_byte(r, 0);
	r_byte(r, (uint8_t)(u >> 24));
	r_byte(r, (uint8_t)(u >> 16));
	r_byte(r, (uint8_t)(u >> 8));
	r_byte(r, (uint8_t)u);
}

/* --- fixtures ---------------------------------------------------------------- */

static ls_codec *codec;
static ls_arena arena;
static ls_buf buf;
static char err[256];

static inline const char *schema_json(ls_source k)
{
	switch (k) {
	case LS_SOURCE_EMAIL: return ls_schema_email_event;
	case LS_SOURCE_WEB: return ls_schema_web_event;
	case LS_SOURCE_CALL: return ls_schema_call_event;
	case LS_SOURCE_OUTCOME: return ls_schema_lead_outcome;
	case LS_SOURCE_PROFILE: return ls_schema_lead_profile;
	default: return NULL;
	}
}

/* Schema id under which each kind's own reader schema is registered. */
static inline int32_t own_id(ls_source k)
{
	return 100 + (int32_t)k;
}

static inline void setup(void)
{
	codec = ls_codec_new(err, sizeof(err));
	ck_assert_msg(codec != NULL, "ls_codec_new: %s", err);
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		ck_assert_msg(ls_codec_add_writer(codec, own_id((ls_source)k), (ls_source)k,
		    schema_json((ls_source)k), err, sizeof(err)) == 0, "add_writer: %s", err);
	ls_arena_init(&arena, 0);
	ls_buf_init(&buf);
}

static inline void teardown(void)
{
	ls_buf_free(&buf);
	ls_arena_free(&arena);
	ls_codec_free(codec);
	codec = NULL;
}

static const ls_attribute attrs[] = {
	{ "industry", "software" }, { "country", "DE" }, { "job_title", "CTO \xc3\xa9" },
};
static const ls_metric metrics[] = { { "employees", 250.0 }, { "annual_revenue", 1.5e7 } };
static const ls_factor factors[] = {
	{ "email opens 7d", 0.8 }, { "bounced", -1.25 }, { "demo requested", 2.0 },
};
static const ls_attribute context[] = { { "tier", "hot" }, { "industry", "retail" } };

static inline ls_event sample(ls_source k, bool full)
{
	ls_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.source = k;
	ev.event_id = "evt-0001";
	ev.lead_id = "lead-42";
	ev.ts = 1717171717123;
	switch (k) {
	case LS_SOURCE_EMAIL:
		ev.u.email.type = LS_EMAIL_CLICKED;
		if (full) {
			ev.u.email.campaign_id = "spring";
			ev.u.email.variant_id = "B";
			ev.u.email.decision_id = "dec-9";
			ev.u.email.url = "https://example.com/p?x=1";
		}
		break;
	case LS_SOURCE_WEB:
		ev.u.web.type = LS_WEB_DEMO_REQUEST;
		ev.u.web.url = "https://example.com/demo";
		if (full) {
			ev.u.web.page_category = "pricing";
			ev.u.web.session_id = "s-1";
			ev.u.web.has_duration_ms = true;
			ev.u.web.duration_ms = 12345;
		}
		break;
	case LS_SOURCE_CALL:
		ev.u.call.direction = LS_CALL_OUTBOUND;
		ev.u.call.outcome = LS_CALL_MEETING_BOOKED;
		ev.u.call.duration_s = 312;
		if (full) {
			ev.u.call.has_sentiment = true;
			ev.u.call.sentiment = -0.25;
		}
		break;
	case LS_SOURCE_OUTCOME:
		ev.u.outcome.outcome = LS_OUTCOME_WON;
		if (full) {
			ev.u.outcome.has_value = true;
			ev.u.outcome.value = 42000.5;
		}
		break;
	case LS_SOURCE_PROFILE:
		if (full) {
			ev.u.profile.n_attributes = 3;
			ev.u.profile.attributes = attrs;
			ev.u.profile.n_metrics = 2;
			ev.u.profile.metrics = metrics;
		}
		break;
	default:
		break;
	}
	return ev;
}

static inline void assert_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		ck_assert_ptr_eq(a, b);
	else
		ck_assert_str_eq(a, b);
}

static inline void assert_event_eq(const ls_event *a, const ls_event *b)
{
	ck_assert_int_eq(a->source, b->source);
	assert_str_eq(a->event_id, b->event_id);
	assert_str_eq(a->lead_id, b->lead_id);
	ck_assert_int_eq(a->ts, b->ts);
	switch (a->source) {
	case LS_SOURCE_EMAIL:
		ck_assert_int_eq(a->u.email.type, b->u.email.type);
		assert_str_eq(a->u.email.campaign_id, b->u.email.campaign_id);
		assert_str_eq(a->u.email.variant_id, b->u.email.variant_id);
		assert_str_eq(a->u.email.decision_id, b->u.email.decision_id);
		assert_str_eq(a->u.email.url, b->u.email.url);
		break;
	case LS_SOURCE_WEB:
		ck_assert_int_eq(a->u.web.type, b->u.web.type);
		assert_str_eq(a->u.web.url, b->u.web.url);
		assert_str_eq(a->u.web.page_category, b->u.web.page_category);
		assert_str_eq(a->u.web.session_id, b->u.web.session_id);
		ck_assert_int_eq(a->u.web.has_duration_ms, b->u.web.has_duration_ms);
		ck_assert_int_eq(a->u.web.duration_ms, b->u.web.duration_ms);
		break;
	case LS_SOURCE_CALL:
		ck_assert_int_eq(a->u.call.direction, b->u.call.direction);
		ck_assert_int_eq(a->u.call.outcome, b->u.call.outcome);
		ck_assert_int_eq(a->u.call.duration_s, b->u.call.duration_s);
		ck_assert_int_eq(a->u.call.has_sentiment, b->u.call.has_sentiment);
		ck_assert_double_eq(a->u.call.sentiment, b->u.call.sentiment);
		break;
	case LS_SOURCE_OUTCOME:
		ck_assert_int_eq(a->u.outcome.outcome, b->u.outcome.outcome);
		ck_assert_int_eq(a->u.outcome.has_value, b->u.outcome.has_value);
		ck_assert_double_eq(a->u.outcome.value, b->u.outcome.value);
		break;
	case LS_SOURCE_PROFILE:
		ck_assert_uint_eq(a->u.profile.n_attributes, b->u.profile.n_attributes);
		for (size_t i = 0; i < a->u.profile.n_attributes; i++) {
			ck_assert_str_eq(a->u.profile.attributes[i].key, b->u.profile.attributes[i].key);
			ck_assert_str_eq(a->u.profile.attributes[i].value, b->u.profile.attributes[i].value);
		}
		ck_assert_uint_eq(a->u.profile.n_metrics, b->u.profile.n_metrics);
		for (size_t i = 0; i < a->u.profile.n_metrics; i++) {
			ck_assert_str_eq(a->u.profile.metrics[i].key, b->u.profile.metrics[i].key);
			ck_assert_double_eq(a->u.profile.metrics[i].value, b->u.profile.metrics[i].value);
		}
		break;
	default:
		ck_abort_msg("bad source");
	}
}

static inline ls_score_change sample_score(bool full)
{
	ls_score_change sc;
	memset(&sc, 0, sizeof(sc));
	sc.lead_id = "lead-42";
	sc.model = "conversion";
	sc.score = 0.73;
	sc.tier = "hot";
	sc.version = 17;
	sc.ts = 1717171717123;
	if (full) {
		sc.has_previous_score = true;
		sc.previous_score = 0.41;
		sc.previous_tier = "warm";
		sc.cause_event_id = "evt-0001";
		sc.n_factors = 3;
		sc.factors = factors;
	}
	return sc;
}

static inline ls_bandit_decision sample_decision(bool full)
{
	ls_bandit_decision bd;
	memset(&bd, 0, sizeof(bd));
	bd.decision_id = "dec-9";
	bd.campaign_id = "spring";
	bd.lead_id = "lead-42";
	bd.variant_id = "B";
	bd.propensity = 0.35;
	bd.ts = 1717171717999;
	if (full) {
		bd.has_context = true;
		bd.n_context = 2;
		bd.context = context;
	}
	return bd;
}

#endif
