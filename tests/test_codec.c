/*
 * Unit tests for pipeline/ls_codec and pipeline/ls_arena: the arena, reason
 * names and the schemas' contract, round trips of every schema (and the
 * encoder against Avro-C's own encoding), schema evolution and framing.
 * That no byte string can crash, leak or make Avro-C allocate what the
 * wire claims is test_codec_hostile.c; test_codec_util.h holds what they
 * share.
 */
#include <avro.h>
#include <check.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_arena.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_schemas.h"
#include "ls_test_writers.h"
#include "ls_testutil.h"
#include "test_codec_util.h"

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

/* ls_event_long_id: the ids each source carries, the first too long
 * named with its length, the limit itself allowed. */
START_TEST(test_event_long_id)
{
	ls_event ev;
	memset(&ev, 0, sizeof ev);
	ev.source = LS_SOURCE_EMAIL;
	ev.event_id = "e-1";
	ev.lead_id = "lead-1";
	ev.u.email.campaign_id = "c";
	ev.u.email.variant_id = "v";
	ev.u.email.decision_id = "d-123456";
	size_t n = 0;
	ck_assert_ptr_null(ls_event_long_id(&ev, 8, &n));
	ck_assert_str_eq(ls_event_long_id(&ev, 7, &n), "decision_id");
	ck_assert_uint_eq(n, 8);
	ck_assert_str_eq(ls_event_long_id(&ev, 5, &n), "lead_id");
	ck_assert_uint_eq(n, 6);
	/* a web event's session_id counts; an email's fields do not */
	ev.source = LS_SOURCE_WEB;
	ev.u.web.session_id = "session-42";
	ck_assert_str_eq(ls_event_long_id(&ev, 8, &n), "session_id");
	ck_assert_uint_eq(n, 10);
	ev.source = LS_SOURCE_PROFILE;
	ck_assert_ptr_null(ls_event_long_id(&ev, 8, &n));
	ev.event_id = "event-0123";
	ck_assert_str_eq(ls_event_long_id(&ev, 8, &n), "event_id");
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
	tcase_add_test(tc, test_event_long_id);
	tcase_add_test(tc, test_schema_contract);
	tcase_add_test(tc, test_roundtrip_events);
	tcase_add_test(tc, test_roundtrip_outputs);
	tcase_add_test(tc, test_encoder_matches_avro_c);
	tcase_add_test(tc, test_evolved_writer_resolves);
	tcase_add_test(tc, test_writer_with_recursive_and_zero_size_fields);
	tcase_add_test(tc, test_add_writer_errors);
	tcase_add_test(tc, test_unknown_schema_id_and_wrong_type);
	tcase_add_test(tc, test_decode_reuses_values_across_kinds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(codec_suite(), CK_ENV);
}
