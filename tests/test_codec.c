/*
 * Unit tests for pipeline/ls_codec and pipeline/ls_arena: round trips of
 * every schema, schema evolution, framing, and above all that no byte
 * string can crash, leak or make Avro-C allocate what the wire claims.
 *
 * Hostile records are written with the small raw Avro writer below, not
 * with the codec's encoder, because the encoder refuses invalid events.
 */
#include <avro.h>
#include <check.h>
#include <math.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_arena.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_schemas.h"
#include "ls_test_writers.h"
#include "ls_testutil.h"

/* --- Avro-C allocation counter ------------------------------------------- */

static size_t avro_allocs;
static size_t avro_max_alloc;

/* Same contract as Avro-C's default allocator (realloc/free), so memory
 * allocated before it was installed can be freed through it. */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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

static void r_byte(raw *r, uint8_t v)
{
	ck_assert_uint_lt(r->n, sizeof(r->b));
	r->b[r->n++] = v;
}

static void r_varint(raw *r, uint64_t z)
{
	while (z >= 0x80) {
		r_byte(r, (uint8_t)(z | 0x80));
		z >>= 7;
	}
	r_byte(r, (uint8_t)z);
}

static void r_long(raw *r, int64_t v)
{
	r_varint(r, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static void r_str(raw *r, const char *s)
{
	size_t n = strlen(s);
	r_long(r, (int64_t)n);
	for (size_t i = 0; i < n; i++)
		r_byte(r, (uint8_t)s[i]);
}

static void r_double(raw *r, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, 8);
	for (int i = 0; i < 8; i++)
		r_byte(r, (uint8_t)(bits >> (8 * i)));
}

static void r_header(raw *r, int32_t id)
{
	uint32_t u = (uint32_t)id;
	r_byte(r, 0);
	r_byte(r, (uint8_t)(u >> 24));
	r_byte(r, (uint8_t)(u >> 16));
	r_byte(r, (uint8_t)(u >> 8));
	r_byte(r, (uint8_t)u);
}

/* A plain CallEvent with the given values. */
static raw call_raw(const char *event_id, const char *lead_id, int64_t ts, int64_t dir,
                    int64_t outcome, int64_t dur, bool has_sent, double sent)
{
	raw r = { .n = 0 };
	r_str(&r, event_id);
	r_str(&r, lead_id);
	r_long(&r, ts);
	r_long(&r, dir);
	r_long(&r, outcome);
	r_long(&r, dur);
	r_long(&r, has_sent ? 1 : 0);
	if (has_sent)
		r_double(&r, sent);
	return r;
}

/* --- fixtures ---------------------------------------------------------------- */

static ls_codec *codec;
static ls_arena arena;
static ls_buf buf;
static char err[256];

static const char *schema_json(ls_source k)
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
static int32_t own_id(ls_source k)
{
	return 100 + (int32_t)k;
}

static void setup(void)
{
	codec = ls_codec_new(err, sizeof(err));
	ck_assert_msg(codec != NULL, "ls_codec_new: %s", err);
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		ck_assert_msg(ls_codec_add_writer(codec, own_id((ls_source)k), (ls_source)k,
		    schema_json((ls_source)k), err, sizeof(err)) == 0, "add_writer: %s", err);
	ls_arena_init(&arena, 0);
	ls_buf_init(&buf);
}

static void teardown(void)
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

static ls_event sample(ls_source k, bool full)
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

static void assert_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		ck_assert_ptr_eq(a, b);
	else
		ck_assert_str_eq(a, b);
}

static void assert_event_eq(const ls_event *a, const ls_event *b)
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

static ls_score_change sample_score(bool full)
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

static ls_bandit_decision sample_decision(bool full)
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

/* Reasons a decoder may return for hostile input: anything but internal. */
static void assert_known_reason(int rc, const ls_codec_error *e)
{
	ck_assert_int_ge(rc, 0);
	ck_assert_int_lt(rc, LS_CODEC_INTERNAL);
	ck_assert_int_eq(rc, (int)e->reason);
	if (rc != 0)
		ck_assert_msg(e->detail[0] != '\0', "reason %d without detail", rc);
}

/* Every valid record of the suite, for truncation and mutation tests. */
typedef struct corpus_rec {
	int kind; /* ls_source, or 5 = score change, 6 = bandit decision */
	uint8_t *data;
	size_t len;
} corpus_rec;

static size_t build_corpus(corpus_rec *out, size_t cap)
{
	size_t n = 0;
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		for (int full = 0; full < 2; full++)
			for (int framed = 0; framed < 2; framed++) {
				ls_event ev = sample((ls_source)k, full != 0);
				ck_assert_msg(ls_codec_encode_event(codec, &ev, framed ? own_id((ls_source)k) : -1,
				    &buf, err, sizeof(err)) == 0, "%s", err);
				ck_assert_uint_lt(n, cap);
				out[n].kind = k;
				out[n].len = buf.len;
				out[n].data = malloc(buf.len);
				ck_assert_ptr_nonnull(out[n].data);
				memcpy(out[n].data, buf.data, buf.len);
				n++;
			}
	for (int full = 0; full < 2; full++)
		for (int framed = 0; framed < 2; framed++) {
			ls_score_change sc = sample_score(full != 0);
			ck_assert(ls_codec_encode_score_change(codec, &sc, framed ? 7 : -1, &buf, err, sizeof(err)) == 0);
			out[n] = (corpus_rec){ 5, malloc(buf.len), buf.len };
			ck_assert_ptr_nonnull(out[n].data);
			memcpy(out[n].data, buf.data, buf.len);
			n++;
			ls_bandit_decision bd = sample_decision(full != 0);
			ck_assert(ls_codec_encode_bandit_decision(codec, &bd, framed ? 8 : -1, &buf, err, sizeof(err)) == 0);
			out[n] = (corpus_rec){ 6, malloc(buf.len), buf.len };
			ck_assert_ptr_nonnull(out[n].data);
			memcpy(out[n].data, buf.data, buf.len);
			n++;
		}
	return n;
}

static void free_corpus(corpus_rec *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].data);
}

/* Decode p as kind k; returns the codec's return value. */
static int decode_any(int kind, const void *p, size_t len, ls_codec_error *e)
{
	if (kind < LS_SOURCE__COUNT) {
		ls_event ev;
		return ls_codec_decode(codec, (ls_source)kind, p, len, &arena, &ev, e);
	}
	if (kind == 5) {
		ls_score_change sc;
		return ls_codec_decode_score_change(codec, p, len, &arena, &sc, e);
	}
	ls_bandit_decision bd;
	return ls_codec_decode_bandit_decision(codec, p, len, &arena, &bd, e);
}

/* --- arena ------------------------------------------------------------------ */

START_TEST(test_arena_basics)
{
	ls_arena a;
	ls_arena_init(&a, 256);
	void *p1 = ls_arena_alloc(&a, 1);
	void *p2 = ls_arena_alloc(&a, 0);
	void *p3 = ls_arena_alloc(&a, 24);
	ck_assert_ptr_nonnull(p1);
	ck_assert_ptr_nonnull(p2);
	ck_assert_ptr_nonnull(p3);
	ck_assert_ptr_ne(p1, p2);
	ck_assert_uint_eq((uintptr_t)p1 % alignof(max_align_t), 0);
	ck_assert_uint_eq((uintptr_t)p2 % alignof(max_align_t), 0);
	ck_assert_uint_eq((uintptr_t)p3 % alignof(max_align_t), 0);

	char *s = ls_arena_strndup(&a, "hello world", 5);
	ck_assert_str_eq(s, "hello");
	char *z = ls_arena_strndup(&a, "a\0b", 3);
	ck_assert_int_eq(memcmp(z, "a\0b\0", 4), 0);

	/* bigger than a chunk */
	unsigned char *big = ls_arena_alloc(&a, 10000);
	ck_assert_ptr_nonnull(big);
	memset(big, 0xab, 10000);
	ck_assert_ptr_null(ls_arena_alloc(&a, SIZE_MAX - 4));
	ck_assert_ptr_null(ls_arena_strndup(&a, "x", SIZE_MAX));
	ls_arena_free(&a);
	ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(test_arena_reset_reuses_one_chunk)
{
	ls_arena a;
	ls_arena_init(&a, 128);
	/* A "batch" that spills over several chunks. */
	for (int i = 0; i < 100; i++)
		ck_assert_ptr_nonnull(ls_arena_alloc(&a, 40));
	ls_arena_reset(&a);
	ls_arena_chunk *kept = a.head;
	ck_assert_ptr_nonnull(kept);
	/* The same batch again must fit in the kept chunk: no new chunk. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 100; i++) {
			char *p = ls_arena_alloc(&a, 40);
			ck_assert_ptr_nonnull(p);
			memset(p, i, 40);
		}
		ck_assert_ptr_eq(a.head, kept);
		ls_arena_reset(&a);
		ck_assert_ptr_eq(a.head, kept);
	}
	ls_arena_free(&a);
}
END_TEST

/* --- names and schemas -------------------------------------------------------- */

START_TEST(test_reason_names)
{
	static const char *const want[] = {
		"ok", "malformed", "unknown_schema_id", "wrong_record_type",
		"missing_event_id", "missing_lead_id", "value_out_of_range",
		"oversized", "internal",
	};
	ck_assert_int_eq(LS_CODEC_REASON__COUNT, (int)(sizeof(want) / sizeof(want[0])));
	for (int r = 0; r < LS_CODEC_REASON__COUNT; r++)
		ck_assert_str_eq(ls_codec_reason_name((ls_codec_reason)r), want[r]);
	ck_assert_ptr_null(ls_codec_reason_name(LS_CODEC_REASON__COUNT));
	ck_assert_ptr_null(ls_codec_reason_name((ls_codec_reason)-1));
}
END_TEST

typedef const char *(*name_fn)(int);
static const char *email_name(int v) { return ls_email_type_name((ls_email_type)v); }
static const char *web_name(int v) { return ls_web_type_name((ls_web_type)v); }
static const char *dir_name(int v) { return ls_call_direction_name((ls_call_direction)v); }
static const char *call_name(int v) { return ls_call_outcome_name((ls_call_outcome)v); }
static const char *outcome_name(int v) { return ls_outcome_type_name((ls_outcome_type)v); }

static void check_enum(const char *json, const char *field, int count, name_fn name,
                       int (*from)(const char *))
{
	avro_schema_t s;
	ck_assert_msg(avro_schema_from_json_length(json, strlen(json), &s) == 0, "%s", avro_strerror());
	avro_schema_t e = avro_schema_record_field_get(s, field);
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(avro_typeof(e), AVRO_ENUM);
	ck_assert_int_eq(avro_schema_enum_number_of_symbols(e), count);
	for (int i = 0; i < count; i++) {
		const char *sym = avro_schema_enum_get(e, i);
		ck_assert_ptr_nonnull(name(i));
		ck_assert_str_eq(name(i), sym);
		ck_assert_int_eq(from(sym), i);
	}
	ck_assert_ptr_null(name(count));
	avro_schema_decref(s);
}

START_TEST(test_enum_tables_match_schemas)
{
	check_enum(ls_schema_email_event, "type", LS_EMAIL__COUNT, email_name, ls_email_type_from_name);
	check_enum(ls_schema_web_event, "type", LS_WEB__COUNT, web_name, ls_web_type_from_name);
	check_enum(ls_schema_call_event, "direction", LS_CALL_DIRECTION__COUNT, dir_name,
	    ls_call_direction_from_name);
	check_enum(ls_schema_call_event, "outcome", LS_CALL_OUTCOME__COUNT, call_name,
	    ls_call_outcome_from_name);
	check_enum(ls_schema_lead_outcome, "outcome", LS_OUTCOME__COUNT, outcome_name,
	    ls_outcome_type_from_name);
}
END_TEST

/* The contract in the brief: namespace, common first fields, optional
 * fields as ["null", T] with a null default, docs everywhere. Avro-C drops
 * defaults and docs, so check the JSON text too. */
START_TEST(test_schema_contract)
{
	const char *inputs[] = { ls_schema_email_event, ls_schema_web_event, ls_schema_call_event,
	                         ls_schema_lead_outcome, ls_schema_lead_profile };
	const char *all[] = { ls_schema_email_event, ls_schema_web_event, ls_schema_call_event,
	                      ls_schema_lead_outcome, ls_schema_lead_profile,
	                      ls_schema_score_change, ls_schema_bandit_decision };
	for (size_t i = 0; i < 5; i++) {
		avro_schema_t s;
		ck_assert(avro_schema_from_json_length(inputs[i], strlen(inputs[i]), &s) == 0);
		ck_assert_str_eq(avro_schema_record_field_name(s, 0), "event_id");
		ck_assert_str_eq(avro_schema_record_field_name(s, 1), "lead_id");
		ck_assert_str_eq(avro_schema_record_field_name(s, 2), "ts");
		ck_assert_int_eq(avro_typeof(avro_schema_record_field_get_by_index(s, 2)), AVRO_INT64);
		avro_schema_decref(s);
	}
	for (size_t i = 0; i < 7; i++) {
		avro_schema_t s;
		ck_assert(avro_schema_from_json_length(all[i], strlen(all[i]), &s) == 0);
		ck_assert_str_eq(avro_schema_namespace(s), "io.leadscore");
		size_t nf = avro_schema_record_size(s);
		size_t optional = 0;
		for (size_t f = 0; f < nf; f++) {
			avro_schema_t t = avro_schema_record_field_get_by_index(s, (int)f);
			if (avro_typeof(t) == AVRO_UNION) {
				ck_assert_int_eq(avro_schema_union_size(t), 2);
				ck_assert_int_eq(avro_typeof(avro_schema_union_branch(t, 0)), AVRO_NULL);
				optional++;
			}
		}
		/* Every optional field carries "default": null, and every field a doc. */
		size_t defaults = 0, docs = 0;
		for (const char *p = all[i]; (p = strstr(p, "\"default\": null")) != NULL; p++)
			defaults++;
		for (const char *p = all[i]; (p = strstr(p, "\"doc\"")) != NULL; p++)
			docs++;
		ck_assert_uint_eq(defaults, optional);
		ck_assert_uint_ge(docs, nf + 1);
		ck_assert_ptr_nonnull(strstr(all[i], "\"logicalType\": \"timestamp-millis\""));
		avro_schema_decref(s);
	}
}
END_TEST

/* --- round trips ---------------------------------------------------------------- */

START_TEST(test_roundtrip_events)
{
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		for (int full = 0; full < 2; full++)
			for (int framed = 0; framed < 2; framed++) {
				ls_event in = sample((ls_source)k, full != 0);
				int32_t id = framed ? own_id((ls_source)k) : -1;
				ck_assert_msg(ls_codec_encode_event(codec, &in, id, &buf, err, sizeof(err)) == 0,
				    "%s", err);
				ck_assert_int_eq(buf.data[0] == 0, framed != 0);
				ls_event out;
				ls_codec_error e;
				int rc = ls_codec_decode(codec, (ls_source)k, buf.data, buf.len, &arena, &out, &e);
				ck_assert_msg(rc == 0, "kind %d full %d framed %d: %s: %s", k, full, framed,
				    ls_codec_reason_name(e.reason), e.detail);
				ck_assert_int_eq(e.reason, LS_CODEC_OK);
				assert_event_eq(&in, &out);
				/* Strings are arena copies, not pointers into buf. */
				ck_assert(out.event_id != in.event_id);
				ck_assert((const uint8_t *)out.event_id < buf.data ||
				    (const uint8_t *)out.event_id >= buf.data + buf.len);
			}
	ls_arena_reset(&arena);
}
END_TEST

START_TEST(test_roundtrip_outputs)
{
	for (int full = 0; full < 2; full++)
		for (int framed = 0; framed < 2; framed++) {
			ls_codec_error e;
			ls_score_change sc = sample_score(full != 0), sc2;
			ck_assert(ls_codec_encode_score_change(codec, &sc, framed ? 77 : -1, &buf, err, sizeof(err)) == 0);
			if (framed)
				ck_assert_int_eq(buf.data[4], 77);
			ck_assert_msg(ls_codec_decode_score_change(codec, buf.data, buf.len, &arena, &sc2, &e) == 0,
			    "%s", e.detail);
			ck_assert_str_eq(sc2.lead_id, sc.lead_id);
			ck_assert_str_eq(sc2.model, sc.model);
			ck_assert_double_eq(sc2.score, sc.score);
			ck_assert_int_eq(sc2.has_previous_score, sc.has_previous_score);
			ck_assert_double_eq(sc2.previous_score, sc.previous_score);
			ck_assert_str_eq(sc2.tier, sc.tier);
			assert_str_eq(sc2.previous_tier, sc.previous_tier);
			ck_assert_int_eq(sc2.version, sc.version);
			ck_assert_int_eq(sc2.ts, sc.ts);
			assert_str_eq(sc2.cause_event_id, sc.cause_event_id);
			ck_assert_uint_eq(sc2.n_factors, sc.n_factors);
			for (size_t i = 0; i < sc.n_factors; i++) {
				ck_assert_str_eq(sc2.factors[i].name, sc.factors[i].name);
				ck_assert_double_eq(sc2.factors[i].contribution, sc.factors[i].contribution);
			}

			ls_bandit_decision bd = sample_decision(full != 0), bd2;
			ck_assert(ls_codec_encode_bandit_decision(codec, &bd, framed ? 78 : -1, &buf, err, sizeof(err)) == 0);
			ck_assert_msg(ls_codec_decode_bandit_decision(codec, buf.data, buf.len, &arena, &bd2, &e) == 0,
			    "%s", e.detail);
			ck_assert_str_eq(bd2.decision_id, bd.decision_id);
			ck_assert_str_eq(bd2.campaign_id, bd.campaign_id);
			ck_assert_str_eq(bd2.lead_id, bd.lead_id);
			ck_assert_str_eq(bd2.variant_id, bd.variant_id);
			ck_assert_double_eq(bd2.propensity, bd.propensity);
			ck_assert_int_eq(bd2.ts, bd.ts);
			ck_assert_int_eq(bd2.has_context, bd.has_context);
			ck_assert_uint_eq(bd2.n_context, bd.n_context);
			for (size_t i = 0; i < bd.n_context; i++) {
				ck_assert_str_eq(bd2.context[i].key, bd.context[i].key);
				ck_assert_str_eq(bd2.context[i].value, bd.context[i].value);
			}
		}
}
END_TEST

/* The hand-written encoder must produce exactly what Avro-C writes for the
 * same record. */
static void set_opt_string(avro_value_t *rec, const char *field, const char *s)
{
	avro_value_t f, b;
	ck_assert(avro_value_get_by_name(rec, field, &f, NULL) == 0);
	if (s == NULL) {
		ck_assert(avro_value_set_branch(&f, 0, &b) == 0);
		ck_assert(avro_value_set_null(&b) == 0);
	} else {
		ck_assert(avro_value_set_branch(&f, 1, &b) == 0);
		ck_assert(avro_value_set_string(&b, s) == 0);
	}
}

static void set_string(avro_value_t *rec, const char *field, const char *s)
{
	avro_value_t f;
	ck_assert(avro_value_get_by_name(rec, field, &f, NULL) == 0);
	ck_assert(avro_value_set_string(&f, s) == 0);
}

static void set_long(avro_value_t *rec, const char *field, int64_t v)
{
	avro_value_t f;
	ck_assert(avro_value_get_by_name(rec, field, &f, NULL) == 0);
	ck_assert(avro_value_set_long(&f, v) == 0);
}

static void set_enum(avro_value_t *rec, const char *field, int v)
{
	avro_value_t f;
	ck_assert(avro_value_get_by_name(rec, field, &f, NULL) == 0);
	ck_assert(avro_value_set_enum(&f, v) == 0);
}

/* Write v with Avro-C into w (plain). */
static size_t avro_c_write(avro_value_t *v, char *out, size_t cap)
{
	avro_writer_t wr = avro_writer_memory(out, (int64_t)cap);
	ck_assert_ptr_nonnull(wr);
	ck_assert_msg(avro_value_write(wr, v) == 0, "%s", avro_strerror());
	size_t n = (size_t)avro_writer_tell(wr);
	avro_writer_free(wr);
	return n;
}

START_TEST(test_encoder_matches_avro_c)
{
	avro_schema_t s;
	ck_assert(avro_schema_from_json_length(ls_schema_email_event, strlen(ls_schema_email_event), &s) == 0);
	avro_value_iface_t *cls = avro_generic_class_from_schema(s);
	ck_assert_ptr_nonnull(cls);
	avro_value_t v;
	ck_assert(avro_generic_value_new(cls, &v) == 0);
	for (int full = 0; full < 2; full++) {
		ls_event ev = sample(LS_SOURCE_EMAIL, full != 0);
		avro_value_reset(&v);
		set_string(&v, "event_id", ev.event_id);
		set_string(&v, "lead_id", ev.lead_id);
		set_long(&v, "ts", ev.ts);
		set_enum(&v, "type", (int)ev.u.email.type);
		set_opt_string(&v, "campaign_id", ev.u.email.campaign_id);
		set_opt_string(&v, "variant_id", ev.u.email.variant_id);
		set_opt_string(&v, "decision_id", ev.u.email.decision_id);
		set_opt_string(&v, "url", ev.u.email.url);
		char ref[512];
		size_t n = avro_c_write(&v, ref, sizeof(ref));
		ck_assert(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)) == 0);
		ck_assert_uint_eq(buf.len, n);
		ck_assert_int_eq(memcmp(buf.data, ref, n), 0);
	}
	avro_value_decref(&v);
	avro_value_iface_decref(cls);
	avro_schema_decref(s);

	/* A profile, for maps and doubles. */
	ck_assert(avro_schema_from_json_length(ls_schema_lead_profile, strlen(ls_schema_lead_profile), &s) == 0);
	cls = avro_generic_class_from_schema(s);
	ck_assert(avro_generic_value_new(cls, &v) == 0);
	ls_event ev = sample(LS_SOURCE_PROFILE, true);
	set_string(&v, "event_id", ev.event_id);
	set_string(&v, "lead_id", ev.lead_id);
	set_long(&v, "ts", ev.ts);
	avro_value_t m, e;
	ck_assert(avro_value_get_by_name(&v, "attributes", &m, NULL) == 0);
	for (size_t i = 0; i < ev.u.profile.n_attributes; i++) {
		ck_assert(avro_value_add(&m, ev.u.profile.attributes[i].key, &e, NULL, NULL) == 0);
		ck_assert(avro_value_set_string(&e, ev.u.profile.attributes[i].value) == 0);
	}
	ck_assert(avro_value_get_by_name(&v, "metrics", &m, NULL) == 0);
	for (size_t i = 0; i < ev.u.profile.n_metrics; i++) {
		ck_assert(avro_value_add(&m, ev.u.profile.metrics[i].key, &e, NULL, NULL) == 0);
		ck_assert(avro_value_set_double(&e, ev.u.profile.metrics[i].value) == 0);
	}
	char ref[512];
	size_t n = avro_c_write(&v, ref, sizeof(ref));
	ck_assert(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)) == 0);
	ck_assert_uint_eq(buf.len, n);
	ck_assert_int_eq(memcmp(buf.data, ref, n), 0);
	avro_value_decref(&v);
	avro_value_iface_decref(cls);
	avro_schema_decref(s);
}
END_TEST

/* --- schema evolution ------------------------------------------------------------ */

static size_t write_evolved(uint8_t *out, size_t cap, int sym, const char *url)
{
	avro_schema_t s;
	ck_assert(avro_schema_from_json_length(evolved_email, strlen(evolved_email), &s) == 0);
	avro_value_iface_t *cls = avro_generic_class_from_schema(s);
	avro_value_t v;
	ck_assert(avro_generic_value_new(cls, &v) == 0);
	set_string(&v, "lead_id", "lead-7");
	set_enum(&v, "type", sym);
	set_string(&v, "client", "outlook");
	set_string(&v, "event_id", "evt-77");
	set_opt_string(&v, "url", url);
	set_long(&v, "ts", 1700000000000);
	set_opt_string(&v, "campaign_id", "autumn");
	ck_assert_uint_gt(cap, 5);
	out[0] = 0;
	out[1] = out[2] = 0;
	out[3] = 0x01;
	out[4] = 0x2c; /* id 300 */
	size_t n = avro_c_write(&v, (char *)out + 5, cap - 5);
	avro_value_decref(&v);
	avro_value_iface_decref(cls);
	avro_schema_decref(s);
	return n + 5;
}

START_TEST(test_evolved_writer_resolves)
{
	ck_assert_msg(ls_codec_add_writer(codec, 300, LS_SOURCE_EMAIL, evolved_email, err, sizeof(err)) == 0,
	    "%s", err);
	uint8_t rec[512];
	size_t n = write_evolved(rec, sizeof(rec), 0 /* OPENED */, "https://x.test/a");
	ls_event ev;
	ls_codec_error e;
	int rc = ls_codec_decode(codec, LS_SOURCE_EMAIL, rec, n, &arena, &ev, &e);
	ck_assert_msg(rc == 0, "%s: %s", ls_codec_reason_name(e.reason), e.detail);
	ck_assert_str_eq(ev.event_id, "evt-77");
	ck_assert_str_eq(ev.lead_id, "lead-7");
	ck_assert_int_eq(ev.ts, 1700000000000);
	ck_assert_int_eq(ev.u.email.type, LS_EMAIL_OPENED); /* mapped by symbol name */
	ck_assert_str_eq(ev.u.email.campaign_id, "autumn");
	ck_assert_str_eq(ev.u.email.url, "https://x.test/a");
	ck_assert_ptr_null(ev.u.email.variant_id);   /* missing in writer -> default null */
	ck_assert_ptr_null(ev.u.email.decision_id);

	n = write_evolved(rec, sizeof(rec), 1 /* SENT */, NULL);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, rec, n, &arena, &ev, &e), 0);
	ck_assert_int_eq(ev.u.email.type, LS_EMAIL_SENT);
	ck_assert_ptr_null(ev.u.email.url);

	n = write_evolved(rec, sizeof(rec), 8 /* SPAM_REPORTED */, NULL);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, rec, n, &arena, &ev, &e), 0);
	ck_assert_int_eq(ev.u.email.type, LS_EMAIL_SPAM_REPORTED);

	/* A symbol our reader does not have. */
	n = write_evolved(rec, sizeof(rec), 2 /* FORWARDED */, NULL);
	rc = ls_codec_decode(codec, LS_SOURCE_EMAIL, rec, n, &arena, &ev, &e);
	ck_assert_int_eq(rc, LS_CODEC_VALUE_OUT_OF_RANGE);
	ck_assert_ptr_nonnull(strstr(e.detail, "type"));
}
END_TEST

static raw recursive_record(int depth, int64_t nulls)
{
	raw r = { .n = 0 };
	r_header(&r, 500);
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 2);
	for (int i = 0; i < depth; i++)
		r_long(&r, 1);
	r_long(&r, 0);
	if (nulls != 0)
		r_long(&r, nulls);
	r_long(&r, 0);
	return r;
}

START_TEST(test_writer_with_recursive_and_zero_size_fields)
{
	ck_assert_msg(ls_codec_add_writer(codec, 500, LS_SOURCE_EMAIL, recursive_email, err, sizeof(err)) == 0,
	    "%s", err);
	ls_event ev;
	ls_codec_error e;
	raw r = recursive_record(10, 1);
	int rc = ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e);
	ck_assert_msg(rc == 0, "%s", e.detail);
	ck_assert_int_eq(ev.u.email.type, LS_EMAIL_OPENED);
	ck_assert_str_eq(ev.event_id, "e1");
	ck_assert_ptr_null(ev.u.email.campaign_id);

	r = recursive_record(200, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	ck_assert_ptr_nonnull(strstr(e.detail, "nesting"));

	avro_set_allocator(counting_alloc, NULL);
	size_t before = avro_allocs;
	r = recursive_record(1, (int64_t)1 << 40);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	ck_assert_uint_eq(avro_allocs, before);
}
END_TEST

START_TEST(test_add_writer_errors)
{
	/* invalid JSON */
	ck_assert_int_eq(ls_codec_add_writer(codec, 400, LS_SOURCE_EMAIL, "{\"type\": \"record\", ", err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "invalid Avro schema"));
	/* another kind's schema */
	ck_assert_int_eq(ls_codec_add_writer(codec, 401, LS_SOURCE_EMAIL, ls_schema_web_event, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "does not resolve to EmailEvent"));
	/* a required field missing */
	static const char no_lead[] =
		"{\"type\":\"record\",\"name\":\"LeadOutcome\",\"namespace\":\"io.leadscore\",\"fields\":["
		"{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":\"long\"},"
		"{\"name\":\"outcome\",\"type\":{\"type\":\"enum\",\"name\":\"LeadOutcomeType\","
		"\"symbols\":[\"WON\"]}}]}";
	ck_assert_int_eq(ls_codec_add_writer(codec, 402, LS_SOURCE_OUTCOME, no_lead, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "lead_id"));
	/* a field of an incompatible type */
	static const char bad_type[] =
		"{\"type\":\"record\",\"name\":\"LeadOutcome\",\"namespace\":\"io.leadscore\",\"fields\":["
		"{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"lead_id\",\"type\":\"string\"},"
		"{\"name\":\"ts\",\"type\":\"string\"},"
		"{\"name\":\"outcome\",\"type\":{\"type\":\"enum\",\"name\":\"LeadOutcomeType\","
		"\"symbols\":[\"WON\"]}}]}";
	ck_assert_int_eq(ls_codec_add_writer(codec, 403, LS_SOURCE_OUTCOME, bad_type, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "does not resolve"));
	/* not a record */
	ck_assert_int_eq(ls_codec_add_writer(codec, 404, LS_SOURCE_CALL, "\"string\"", err, sizeof(err)), -1);
	/* bad kind */
	ck_assert_int_eq(ls_codec_add_writer(codec, 405, LS_SOURCE__COUNT, ls_schema_call_event, err,
	    sizeof(err)), -1);
	/* same id, same schema: fine; different schema or kind: error */
	ck_assert_int_eq(ls_codec_add_writer(codec, own_id(LS_SOURCE_CALL), LS_SOURCE_CALL,
	    ls_schema_call_event, err, sizeof(err)), 0);
	ck_assert_int_eq(ls_codec_add_writer(codec, own_id(LS_SOURCE_CALL), LS_SOURCE_CALL,
	    evolved_email, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "already registered"));
	ck_assert_int_eq(ls_codec_add_writer(codec, own_id(LS_SOURCE_EMAIL), LS_SOURCE_EMAIL,
	    ls_schema_call_event, err, sizeof(err)), -1);
	/* failed registrations left nothing behind */
	ls_event ev;
	ls_codec_error e;
	raw r = { .n = 0 };
	r_header(&r, 401);
	r_str(&r, "x");
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e),
	    LS_CODEC_UNKNOWN_SCHEMA_ID);
}
END_TEST

/* --- framing errors ------------------------------------------------------------------ */

START_TEST(test_unknown_schema_id_and_wrong_type)
{
	ls_event ev = sample(LS_SOURCE_WEB, true), out;
	ls_codec_error e;
	ck_assert(ls_codec_encode_event(codec, &ev, 999, &buf, err, sizeof(err)) == 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_WEB, buf.data, buf.len, &arena, &out, &e),
	    LS_CODEC_UNKNOWN_SCHEMA_ID);
	ck_assert_int_eq(e.reason, LS_CODEC_UNKNOWN_SCHEMA_ID);
	ck_assert_ptr_nonnull(strstr(e.detail, "999"));

	/* A web record framed with the web id, read from the email topic. */
	ck_assert(ls_codec_encode_event(codec, &ev, own_id(LS_SOURCE_WEB), &buf, err, sizeof(err)) == 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, buf.data, buf.len, &arena, &out, &e),
	    LS_CODEC_WRONG_RECORD_TYPE);
	ck_assert_ptr_nonnull(strstr(e.detail, "WebEvent"));
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_WEB, buf.data, buf.len, &arena, &out, &e), 0);

	/* Negative ids are just ids (the 4 bytes are unsigned on the wire). */
	ck_assert(ls_codec_add_writer(codec, -5, LS_SOURCE_WEB, ls_schema_web_event, err, sizeof(err)) == 0);
	ck_assert(ls_codec_encode_event(codec, &ev, 0, &buf, err, sizeof(err)) == 0);
	buf.data[1] = buf.data[2] = buf.data[3] = 0xff;
	buf.data[4] = 0xfb;
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_WEB, buf.data, buf.len, &arena, &out, &e), 0);
	ck_assert_str_eq(out.u.web.url, ev.u.web.url);
}
END_TEST

/* --- hostile input -------------------------------------------------------------- */

START_TEST(test_every_truncation_is_malformed)
{
	corpus_rec corpus[64];
	size_t n = build_corpus(corpus, 64);
	size_t checked = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t len = 0; len < corpus[i].len; len++) {
			ls_codec_error e;
			/* A copy of exactly len bytes, so ASan sees any over-read. */
			uint8_t *p = len > 0 ? malloc(len) : NULL;
			if (len > 0) {
				ck_assert_ptr_nonnull(p);
				memcpy(p, corpus[i].data, len);
			}
			int rc = decode_any(corpus[i].kind, p, len, &e);
			ck_assert_msg(rc == LS_CODEC_MALFORMED, "record %zu prefix %zu/%zu: %s (%s)", i, len,
			    corpus[i].len, ls_codec_reason_name((ls_codec_reason)rc), e.detail);
			free(p);
			checked++;
		}
	ck_assert_uint_gt(checked, 500);
	free_corpus(corpus, n);
	ls_arena_reset(&arena);
}
END_TEST

START_TEST(test_trailing_bytes_are_malformed)
{
	ls_event ev = sample(LS_SOURCE_CALL, true), out;
	ls_codec_error e;
	ck_assert(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)) == 0);
	ck_assert(ls_buf_append(&buf, "\x00", 1) == 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, buf.data, buf.len, &arena, &out, &e),
	    LS_CODEC_MALFORMED);
	ck_assert_ptr_nonnull(strstr(e.detail, "trailing"));
}
END_TEST

START_TEST(test_byte_flips_never_crash)
{
	corpus_rec corpus[64];
	size_t n = build_corpus(corpus, 64);
	static const uint8_t masks[] = { 0x01, 0x02, 0x10, 0x40, 0x7f, 0x80, 0xff };
	size_t ok = 0, rejected = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t pos = 0; pos < corpus[i].len; pos++)
			for (size_t m = 0; m < sizeof(masks); m++) {
				uint8_t *p = malloc(corpus[i].len);
				ck_assert_ptr_nonnull(p);
				memcpy(p, corpus[i].data, corpus[i].len);
				p[pos] ^= masks[m];
				ls_codec_error e;
				int rc = decode_any(corpus[i].kind, p, corpus[i].len, &e);
				assert_known_reason(rc, &e);
				if (rc == 0)
					ok++;
				else
					rejected++;
				free(p);
				ls_arena_reset(&arena);
			}
	/* Flips inside string bodies and doubles still decode; flips in
	 * lengths and indexes do not. Both must happen. */
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_gt(rejected, 0);
	free_corpus(corpus, n);
}
END_TEST

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717u;
}

START_TEST(test_random_buffers_never_crash)
{
	corpus_rec corpus[64];
	size_t n = build_corpus(corpus, 64);
	size_t reasons[LS_CODEC_REASON__COUNT] = { 0 };
	for (int iter = 0; iter < 100000; iter++) {
		uint64_t r = rng();
		size_t len = (size_t)(r % 96);
		uint8_t *p = malloc(len > 0 ? len : 1);
		ck_assert_ptr_nonnull(p);
		int kind = (int)((r >> 8) % 7);
		switch ((r >> 16) % 4) {
		case 0: /* pure noise */
			for (size_t i = 0; i < len; i++)
				p[i] = (uint8_t)rng();
			break;
		case 1: /* noise behind a registered Confluent header */
			for (size_t i = 0; i < len; i++)
				p[i] = (uint8_t)rng();
			if (len >= 5 && kind < LS_SOURCE__COUNT) {
				p[0] = p[1] = p[2] = 0;
				p[3] = 0;
				p[4] = (uint8_t)own_id((ls_source)kind);
			}
			break;
		default: { /* a valid record with a few random bytes overwritten, maybe cut */
			const corpus_rec *c = &corpus[rng() % n];
			kind = c->kind;
			free(p);
			len = c->len - (size_t)(rng() % 3 == 0 ? rng() % c->len : 0);
			p = malloc(len > 0 ? len : 1);
			ck_assert_ptr_nonnull(p);
			memcpy(p, c->data, len);
			for (int k = (int)(rng() % 4); k >= 0 && len > 0; k--)
				p[rng() % len] = (uint8_t)rng();
			break;
		}
		}
		ls_codec_error e;
		int rc = decode_any(kind, p, len, &e);
		assert_known_reason(rc, &e);
		reasons[rc]++;
		free(p);
		if (iter % 256 == 0)
			ls_arena_reset(&arena);
	}
	ck_assert_uint_gt(reasons[LS_CODEC_MALFORMED], 1000);
	ck_assert_uint_gt(reasons[LS_CODEC_OK], 0);
	free_corpus(corpus, n);
}
END_TEST

START_TEST(test_huge_lengths_do_not_allocate)
{
	avro_set_allocator(counting_alloc, NULL);
	ls_event ev;
	ls_codec_error e;

	/* Sanity: a normal decode does go through the counting allocator. */
	ls_event good = sample(LS_SOURCE_EMAIL, true);
	ck_assert(ls_codec_encode_event(codec, &good, -1, &buf, err, sizeof(err)) == 0);
	size_t before = avro_allocs;
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, buf.data, buf.len, &arena, &ev, &e), 0);
	ck_assert_uint_gt(avro_allocs, before);

	/* event_id claiming 2^62 bytes, plain and framed */
	for (int framed = 0; framed < 2; framed++) {
		raw r = { .n = 0 };
		if (framed)
			r_header(&r, own_id(LS_SOURCE_EMAIL));
		r_long(&r, (int64_t)1 << 62);
		r_str(&r, "abc");
		before = avro_allocs;
		avro_max_alloc = 0;
		ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e),
		    LS_CODEC_MALFORMED);
		ck_assert_uint_eq(avro_allocs, before);
		ck_assert_uint_eq(avro_max_alloc, 0);
	}
	/* negative length, and a varint longer than 10 bytes */
	raw r = { .n = 0 };
	r_long(&r, -3);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	r.n = 0;
	for (int i = 0; i < 11; i++)
		r_byte(&r, 0xff);
	r_byte(&r, 0x01);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	ck_assert_ptr_nonnull(strstr(e.detail, "varint"));

	/* a profile whose attribute map claims 2^40 entries */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, (int64_t)1 << 40);
	r_str(&r, "k");
	r_str(&r, "v");
	r_long(&r, 0);
	r_long(&r, 0);
	before = avro_allocs;
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_PROFILE, r.b, r.n, &arena, &ev, &e),
	    LS_CODEC_MALFORMED);
	ck_assert_uint_eq(avro_allocs, before);
	/* ... and one with a negative block count whose byte size lies */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, -1);
	r_long(&r, 99);
	r_str(&r, "k");
	r_str(&r, "v");
	r_long(&r, 0);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_PROFILE, r.b, r.n, &arena, &ev, &e),
	    LS_CODEC_MALFORMED);
	/* ... while a truthful negative-count block is fine */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, -1);
	r_long(&r, 4);
	r_str(&r, "k");
	r_str(&r, "v");
	r_long(&r, 0);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_PROFILE, r.b, r.n, &arena, &ev, &e), 0);
	ck_assert_uint_eq(ev.u.profile.n_attributes, 1);
	ck_assert_str_eq(ev.u.profile.attributes[0].value, "v");

	/* a score change whose factors array claims 2^50 items */
	r.n = 0;
	r_str(&r, "l1");
	r_str(&r, "m");
	r_double(&r, 0.5);
	r_long(&r, 0);
	r_str(&r, "hot");
	r_long(&r, 0);
	r_long(&r, 1);
	r_long(&r, 1);
	r_long(&r, 0);
	r_long(&r, (int64_t)1 << 50);
	ls_score_change sc;
	before = avro_allocs;
	ck_assert_int_eq(ls_codec_decode_score_change(codec, r.b, r.n, &arena, &sc, &e), LS_CODEC_MALFORMED);
	ck_assert_uint_eq(avro_allocs, before);
}
END_TEST

START_TEST(test_bad_strings_and_indexes)
{
	ls_event ev;
	ls_codec_error e;
	/* invalid UTF-8 and an embedded NUL in lead_id */
	static const char *const bad[] = { "a\377b", "a\xc0\x80", "\xed\xa0\x80" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw r = call_raw("e1", bad[i], 5, 0, 0, 1, false, 0);
		ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, r.b, r.n, &arena, &ev, &e),
		    LS_CODEC_MALFORMED);
	}
	raw r = { .n = 0 };
	r_str(&r, "e1");
	r_long(&r, 3);
	r_byte(&r, 'a');
	r_byte(&r, 0);
	r_byte(&r, 'b');
	r_long(&r, 5);
	r_long(&r, 0);
	r_long(&r, 0);
	r_long(&r, 1);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	/* union index 2 in a two-branch union */
	r = call_raw("e1", "l1", 5, 0, 0, 1, false, 0);
	r.b[r.n - 1] = 4; /* zigzag 2 */
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MALFORMED);
	/* the encoder refuses invalid UTF-8 too */
	ls_event in = sample(LS_SOURCE_WEB, false);
	in.u.web.url = "http://x/\xff";
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "url"));
}
END_TEST

START_TEST(test_oversized)
{
	ls_event ev = sample(LS_SOURCE_EMAIL, true), out;
	ls_codec_error e;
	ck_assert(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)) == 0);
	ls_codec_set_max_record_size(codec, buf.len - 1);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, buf.data, buf.len, &arena, &out, &e),
	    LS_CODEC_OVERSIZED);
	ck_assert_str_eq(ls_codec_reason_name(e.reason), "oversized");
	ck_assert_int_eq(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "oversized"));
	ls_codec_set_max_record_size(codec, 0); /* default 1 MiB */
	ck_assert(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)) == 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, buf.data, buf.len, &arena, &out, &e), 0);

	/* Over the default: a 1 MiB + 1 byte url. */
	size_t big = LS_CODEC_DEFAULT_MAX_RECORD + 1;
	char *url = malloc(big + 1);
	ck_assert_ptr_nonnull(url);
	memset(url, 'u', big);
	url[big] = '\0';
	ev.u.email.url = url;
	ck_assert_int_eq(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof(err)), -1);
	ck_assert_uint_eq(buf.len, 0);
	uint8_t *huge = calloc(1, big);
	ck_assert_ptr_nonnull(huge);
	huge[0] = 2;
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, huge, big, &arena, &out, &e), LS_CODEC_OVERSIZED);
	free(huge);
	free(url);
}
END_TEST

START_TEST(test_values_out_of_range)
{
	ls_event ev;
	ls_codec_error e;
	struct { raw r; const char *what; } cases[] = {
		{ call_raw("e1", "l1", -1, 0, 0, 1, false, 0), "ts" },
		{ call_raw("e1", "l1", 5, 0, 0, -1, false, 0), "duration_s" },
		{ call_raw("e1", "l1", 5, 0, 0, 1, true, 1.5), "sentiment" },
		{ call_raw("e1", "l1", 5, 0, 0, 1, true, -1.0001), "sentiment" },
		{ call_raw("e1", "l1", 5, 0, 0, 1, true, NAN), "sentiment" },
		{ call_raw("e1", "l1", 5, 0, 0, 1, true, INFINITY), "sentiment" },
		{ call_raw("e1", "l1", 5, 2, 0, 1, false, 0), "direction" },
		{ call_raw("e1", "l1", 5, 0, 5, 1, false, 0), "outcome" },
		{ call_raw("e1", "l1", 5, -1, 0, 1, false, 0), "direction" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = ls_codec_decode(codec, LS_SOURCE_CALL, cases[i].r.b, cases[i].r.n, &arena, &ev, &e);
		ck_assert_msg(rc == LS_CODEC_VALUE_OUT_OF_RANGE, "case %zu (%s): %d %s", i, cases[i].what, rc,
		    e.detail);
	}
	/* the boundaries are allowed */
	raw ok = call_raw("e1", "l1", 0, 1, 4, 0, true, -1.0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, ok.b, ok.n, &arena, &ev, &e), 0);
	ck_assert_double_eq(ev.u.call.sentiment, -1.0);

	/* web duration_ms < 0 */
	raw r = { .n = 0 };
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 0);
	r_str(&r, "https://x");
	r_long(&r, 0);
	r_long(&r, 1);
	r_long(&r, -20);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_WEB, r.b, r.n, &arena, &ev, &e), LS_CODEC_VALUE_OUT_OF_RANGE);
	ck_assert_ptr_nonnull(strstr(e.detail, "duration_ms"));
	/* email type 8 (one past SPAM_REPORTED) */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 8);
	for (int i = 0; i < 4; i++)
		r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_EMAIL, r.b, r.n, &arena, &ev, &e), LS_CODEC_VALUE_OUT_OF_RANGE);
	/* outcome value inf */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 2);
	r_long(&r, 1);
	r_double(&r, -INFINITY);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_OUTCOME, r.b, r.n, &arena, &ev, &e), LS_CODEC_VALUE_OUT_OF_RANGE);
	/* profile metric NaN */
	r.n = 0;
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 0);
	r_long(&r, 1);
	r_str(&r, "employees");
	r_double(&r, NAN);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_PROFILE, r.b, r.n, &arena, &ev, &e), LS_CODEC_VALUE_OUT_OF_RANGE);
	/* score change: score 1.5, version -1 */
	ls_score_change sc = sample_score(false), sc2;
	sc.score = 1.5;
	ck_assert_int_eq(ls_codec_encode_score_change(codec, &sc, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "value_out_of_range"));
	r.n = 0;
	r_str(&r, "l1");
	r_str(&r, "m");
	r_double(&r, 1.5);
	r_long(&r, 0);
	r_str(&r, "hot");
	r_long(&r, 0);
	r_long(&r, 1);
	r_long(&r, 1);
	r_long(&r, 0);
	r_long(&r, 0);
	ck_assert_int_eq(ls_codec_decode_score_change(codec, r.b, r.n, &arena, &sc2, &e), LS_CODEC_VALUE_OUT_OF_RANGE);
	/* bandit: propensity NaN */
	ls_bandit_decision bd = sample_decision(false);
	bd.propensity = NAN;
	ck_assert_int_eq(ls_codec_encode_bandit_decision(codec, &bd, -1, &buf, err, sizeof(err)), -1);
	/* the encoder refuses the same values */
	ls_event in = sample(LS_SOURCE_CALL, true);
	in.u.call.sentiment = 2;
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "value_out_of_range"));
	in = sample(LS_SOURCE_CALL, true);
	in.ts = -5;
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	in = sample(LS_SOURCE_EMAIL, true);
	in.u.email.type = LS_EMAIL__COUNT;
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
}
END_TEST

START_TEST(test_missing_ids)
{
	ls_event ev;
	ls_codec_error e;
	/* Plain: an empty lead_id. */
	raw r = call_raw("e1", "", 5, 0, 0, 1, false, 0);
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, r.b, r.n, &arena, &ev, &e), LS_CODEC_MISSING_LEAD_ID);
	ck_assert_str_eq(ls_codec_reason_name(e.reason), "missing_lead_id");
	/* Framed: an empty event_id. (Plain, it would start with 0x00 and be
	 * read as Confluent framing, as the header explains.) */
	raw f = { .n = 0 };
	r_header(&f, own_id(LS_SOURCE_CALL));
	raw body = call_raw("", "l1", 5, 0, 0, 1, false, 0);
	memcpy(f.b + f.n, body.b, body.n);
	f.n += body.n;
	ck_assert_int_eq(ls_codec_decode(codec, LS_SOURCE_CALL, f.b, f.n, &arena, &ev, &e), LS_CODEC_MISSING_EVENT_ID);
	ck_assert_str_eq(ls_codec_reason_name(e.reason), "missing_event_id");
	ck_assert_int_ne(ls_codec_decode(codec, LS_SOURCE_CALL, body.b, body.n, &arena, &ev, &e), 0);
	/* The encoder refuses both, and NULLs. */
	ls_event in = sample(LS_SOURCE_OUTCOME, false);
	in.event_id = "";
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "missing_event_id"));
	in.event_id = NULL;
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	in = sample(LS_SOURCE_OUTCOME, false);
	in.lead_id = "";
	ck_assert_int_eq(ls_codec_encode_event(codec, &in, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "missing_lead_id"));
	/* Output records: empty lead_id. */
	ls_score_change sc = sample_score(true);
	sc.lead_id = "";
	ck_assert_int_eq(ls_codec_encode_score_change(codec, &sc, -1, &buf, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "missing_lead_id"));
}
END_TEST

START_TEST(test_decode_reuses_values_across_kinds)
{
	/* Interleave kinds and optional/absent fields on one codec: values
	 * are reused, so stale fields from the previous record must not leak
	 * into the next one. */
	for (int round = 0; round < 50; round++)
		for (int k = 0; k < LS_SOURCE__COUNT; k++) {
			bool full = ((round + k) % 2) == 0;
			ls_event in = sample((ls_source)k, full), out;
			ls_codec_error e;
			ck_assert(ls_codec_encode_event(codec, &in, round % 3 == 0 ? own_id((ls_source)k) : -1, &buf,
			    err, sizeof(err)) == 0);
			ck_assert_int_eq(ls_codec_decode(codec, (ls_source)k, buf.data, buf.len, &arena, &out, &e), 0);
			assert_event_eq(&in, &out);
		}
	ls_arena_reset(&arena);
}
END_TEST

static Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc = tcase_create("arena");
	tcase_add_test(tc, test_arena_basics);
	tcase_add_test(tc, test_arena_reset_reuses_one_chunk);
	suite_add_tcase(s, tc);

	tc = tcase_create("codec");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 110);
	tcase_add_test(tc, test_reason_names);
	tcase_add_test(tc, test_enum_tables_match_schemas);
	tcase_add_test(tc, test_schema_contract);
	tcase_add_test(tc, test_roundtrip_events);
	tcase_add_test(tc, test_roundtrip_outputs);
	tcase_add_test(tc, test_encoder_matches_avro_c);
	tcase_add_test(tc, test_evolved_writer_resolves);
	tcase_add_test(tc, test_writer_with_recursive_and_zero_size_fields);
	tcase_add_test(tc, test_add_writer_errors);
	tcase_add_test(tc, test_unknown_schema_id_and_wrong_type);
	tcase_add_test(tc, test_every_truncation_is_malformed);
	tcase_add_test(tc, test_trailing_bytes_are_malformed);
	tcase_add_test(tc, test_byte_flips_never_crash);
	tcase_add_test(tc, test_random_buffers_never_crash);
	tcase_add_test(tc, test_huge_lengths_do_not_allocate);
	tcase_add_test(tc, test_bad_strings_and_indexes);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_values_out_of_range);
	tcase_add_test(tc, test_missing_ids);
	tcase_add_test(tc, test_decode_reuses_values_across_kinds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(codec_suite(), CK_ENV);
}
