/*
 * Unit tests for pipeline/ls_codec on hostile input: that no byte string
 * can crash, leak or make Avro-C allocate what the wire claims, and that
 * every value rule is enforced by the decoders and the encoders alike.
 *
 * Hostile records are written with the raw Avro writer of
 * test_codec_util.h, not with the codec's encoder, because the encoder
 * refuses invalid events.
 */
#include <avro.h>
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_arena.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_schemas.h"
#include "ls_testutil.h"
#include "test_codec_util.h"

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

static Suite *codec_hostile_suite(void)
{
	Suite *s = suite_create("codec-hostile");
	TCase *tc = tcase_create("codec");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 110);
	tcase_add_test(tc, test_every_truncation_is_malformed);
	tcase_add_test(tc, test_trailing_bytes_are_malformed);
	tcase_add_test(tc, test_byte_flips_never_crash);
	tcase_add_test(tc, test_random_buffers_never_crash);
	tcase_add_test(tc, test_huge_lengths_do_not_allocate);
	tcase_add_test(tc, test_bad_strings_and_indexes);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_values_out_of_range);
	tcase_add_test(tc, test_missing_ids);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(codec_hostile_suite(), CK_ENV);
}
