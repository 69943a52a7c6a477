/*
 * fuzz_codec - the Avro codec (pipeline/ls_codec.c) on arbitrary Kafka
 * message values, plain and with Confluent framing.
 *
 * Input: byte 0 picks the decoder (mod 7): 0-4 an input topic in
 * ls_source order (email, web, call, outcome, profile), 5 ScoreChange,
 * 6 BanditDecision; the rest is the message value. Writer schemas are
 * registered as the daemon would from schemas.writers: each kind's own
 * schema under id 100 + kind, an evolved email schema (reordered fields,
 * an extra field, more enum symbols) under 300 and one with a recursive
 * record and an array of nulls under 500, so framed records go through
 * Avro schema resolution.
 *
 * Properties beyond "no crash, no leak, no UB": a record that decodes
 * re-encodes (what we read we can write), that encoding decodes, and
 * encoding it again gives the same bytes. A decoded input event is also
 * applied to a fresh lead, whose blob must decode again: the path every
 * consumed record takes.
 */
#include <string.h>

#include "fuzz_common.h"
#include "ls_codec.h"
#include "ls_lead.h"
#include "ls_schemas.h"
#include "ls_test_writers.h"

static ls_codec *codec;
static ls_feature_set *set;
static ls_lead_conf lconf;

/* at exit, so that LeakSanitizer's final check sees only real leaks */
static void cleanup(void)
{
	ls_codec_free(codec);
	ls_feature_set_free(set);
}

static void init(void)
{
	char err[256];
	codec = ls_codec_new(err, sizeof err);
	FUZZ_CHECK(codec != NULL, "%s", err);
	const char *own[LS_SOURCE__COUNT] = {
		ls_schema_email_event, ls_schema_web_event, ls_schema_call_event,
		ls_schema_lead_outcome, ls_schema_lead_profile,
	};
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		FUZZ_CHECK(ls_codec_add_writer(codec, 100 + k, (ls_source)k, own[k], err,
					       sizeof err) == 0, "%s", err);
	FUZZ_CHECK(ls_codec_add_writer(codec, 300, LS_SOURCE_EMAIL, evolved_email, err,
				       sizeof err) == 0, "%s", err);
	FUZZ_CHECK(ls_codec_add_writer(codec, 500, LS_SOURCE_EMAIL, recursive_email, err,
				       sizeof err) == 0, "%s", err);
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	set = ls_feature_set_new(specs, n, err, sizeof err);
	FUZZ_CHECK(set != NULL, "%s", err);
	ls_lead_conf_default(&lconf, set);
	atexit(cleanup);
}

static void same_bytes(const ls_buf *a, const ls_buf *b, const char *what)
{
	FUZZ_CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0,
		   "%s: re-encoding changed %zu bytes into %zu", what, a->len, b->len);
}

/* What every consumed event goes through next: a lead, and its blob. */
static void apply_to_lead(const ls_event *ev)
{
	ls_lead *lead = ls_lead_new(&lconf);
	FUZZ_CHECK(lead != NULL, "ls_lead_new");
	int rc = ls_lead_apply(lead, &lconf, ev);
	FUZZ_CHECK(rc == LS_LEAD_APPLIED, "a decoded event was not applied: %s",
		   ls_lead_result_str(rc));
	double *vals = malloc(set->n_values * sizeof *vals + 1);
	FUZZ_CHECK(vals != NULL, "out of memory");
	FUZZ_CHECK(ls_lead_features(lead, &lconf, LS_LEAD_AT_WATERMARK, vals, set->n_values) >= 0,
		   "features");
	free(vals);
	ls_buf blob = { 0 };
	FUZZ_CHECK(ls_lead_encode(lead, &lconf, &blob) == 0, "lead encode");
	ls_lead *back = NULL;
	char err[256];
	FUZZ_CHECK(ls_lead_decode(&lconf, blob.data, blob.len, &back, err, sizeof err) == 0,
		   "lead decode: %s", err);
	ls_lead_free(back);
	ls_buf_free(&blob);
	ls_lead_free(lead);
}

static void event_round_trip(const ls_event *ev, ls_arena *arena)
{
	char err[256];
	ls_buf e1, e2;
	ls_buf_init(&e1);
	ls_buf_init(&e2);
	FUZZ_CHECK(ls_codec_encode_event(codec, ev, -1, &e1, err, sizeof err) == 0,
		   "a decoded %s event does not encode: %s", ls_source_name(ev->source), err);
	ls_event again;
	ls_codec_error ce;
	int rc = ls_codec_decode(codec, ev->source, e1.data, e1.len, arena, &again, &ce);
	FUZZ_CHECK(rc == 0, "our own encoding does not decode: %s: %s",
		   ls_codec_reason_name(ce.reason), ce.detail);
	FUZZ_CHECK(ls_codec_encode_event(codec, &again, 101, &e2, err, sizeof err) == 0, "%s", err);
	/* same bytes after the 5-byte framing header */
	FUZZ_CHECK(e2.len == e1.len + 5 && memcmp(e2.data + 5, e1.data, e1.len) == 0,
		   "event re-encoding differs");
	ls_buf_free(&e1);
	ls_buf_free(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (codec == NULL)
		init();
	if (size == 0)
		return 0;
	int sel = data[0] % 7;
	const uint8_t *rec = data + 1;
	size_t len = size - 1;
	ls_arena arena;
	ls_arena_init(&arena, 0);
	ls_codec_error ce;
	char err[256];
	ls_buf e1, e2;
	ls_buf_init(&e1);
	ls_buf_init(&e2);
	if (sel < LS_SOURCE__COUNT) {
		ls_event ev;
		if (ls_codec_decode(codec, (ls_source)sel, rec, len, &arena, &ev, &ce) == 0) {
			FUZZ_CHECK(ev.source == (ls_source)sel, "source %d for topic %d",
				   (int)ev.source, sel);
			event_round_trip(&ev, &arena);
			apply_to_lead(&ev);
		}
	} else if (sel == 5) {
		ls_score_change sc, again;
		if (ls_codec_decode_score_change(codec, rec, len, &arena, &sc, &ce) == 0) {
			FUZZ_CHECK(ls_codec_encode_score_change(codec, &sc, -1, &e1, err,
								sizeof err) == 0,
				   "a decoded score change does not encode: %s", err);
			FUZZ_CHECK(ls_codec_decode_score_change(codec, e1.data, e1.len, &arena,
								&again, &ce) == 0,
				   "%s", ce.detail);
			FUZZ_CHECK(ls_codec_encode_score_change(codec, &again, -1, &e2, err,
								sizeof err) == 0, "%s", err);
			same_bytes(&e1, &e2, "score change");
		}
	} else {
		ls_bandit_decision bd, again;
		if (ls_codec_decode_bandit_decision(codec, rec, len, &arena, &bd, &ce) == 0) {
			FUZZ_CHECK(ls_codec_encode_bandit_decision(codec, &bd, -1, &e1, err,
								   sizeof err) == 0,
				   "a decoded decision does not encode: %s", err);
			FUZZ_CHECK(ls_codec_decode_bandit_decision(codec, e1.data, e1.len, &arena,
								   &again, &ce) == 0,
				   "%s", ce.detail);
			FUZZ_CHECK(ls_codec_encode_bandit_decision(codec, &again, -1, &e2, err,
								   sizeof err) == 0, "%s", err);
			same_bytes(&e1, &e2, "bandit decision");
		}
	}
	ls_buf_free(&e1);
	ls_buf_free(&e2);
	ls_arena_free(&arena);
	return 0;
}
