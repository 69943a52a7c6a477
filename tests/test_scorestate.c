/*
 * Unit tests for models/ls_scorestate: model keys, get/create/full, retain,
 * the encoding against a hand-written byte vector, round trips, every
 * invalid state refused by the encoder, every corruption refused by the
 * decoder with its reason and offset, decoder fuzzing (every prefix, every
 * bit flip, every byte value at every position, random bytes: no crash,
 * and whatever is accepted re-encodes to the same bytes), the label rule
 * table, timeout edges up to INT64_MAX, outcome masks, decay by hand, and
 * the state carried in a lead's ext bytes.
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ls_lead.h"
#include "ls_scorestate.h"
#include "ls_testutil.h"
#include "ls_window.h"

/* 2023-11-14T22:13:20Z */
#define T0 INT64_C(1700000000000)
#define DAY LS_WINDOW_MS_DAY

/* The state rides in a lead's ext bytes; the largest must fit. */
_Static_assert(LS_SCORESTATE_ENCODED_MAX <= LS_LEAD_EXT_MAX,
	       "scoring state must fit a lead's ext");

/* splitmix64: a fixed sequence, so every run tests the same cases. */
static uint64_t rng = 0x13198a2e03707344u;
static uint64_t rnd(void)
{
	return ls_test_splitmix64(&rng);
}

static uint64_t bits_of(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

/* Records equal field by field (scores by bits, NaN equal to NaN). */
static void assert_model_eq(const ls_scorestate_model *a,
			    const ls_scorestate_model *b)
{
	ck_assert_uint_eq(a->key, b->key);
	ck_assert_uint_eq(a->label, b->label);
	ck_assert_int_eq(a->tier, b->tier);
	ck_assert_uint_eq(a->version, b->version);
	if (isnan(a->score))
		ck_assert(isnan(b->score));
	else
		ck_assert_uint_eq(bits_of(a->score), bits_of(b->score));
}

/* Same first_ts and the same records by key, whatever their order. */
static void assert_state_eq(const ls_scorestate *a, const ls_scorestate *b)
{
	ck_assert_int_eq(a->first_ts, b->first_ts);
	ck_assert_uint_eq(a->n, b->n);
	ls_scorestate bc = *b;
	for (size_t i = 0; i < a->n; i++) {
		ls_scorestate_model *m = ls_scorestate_get(&bc, a->m[i].key, false);
		ck_assert_ptr_nonnull(m);
		assert_model_eq(&a->m[i], m);
	}
}

static size_t encode_ok(const ls_scorestate *s, uint8_t *buf, size_t cap)
{
	size_t len = 99;
	int rc = ls_scorestate_encode(s, buf, cap, &len);
	ck_assert_msg(rc == LS_SCORESTATE_OK, "encode: %s",
		      ls_scorestate_result_str(rc));
	ck_assert_uint_eq(len, ls_scorestate_encoded_size(s));
	ck_assert_uint_le(len, LS_SCORESTATE_ENCODED_MAX);
	return len;
}

/*
 * Decode p; on success the result must re-encode to exactly p (the
 * encoding is canonical, so nothing non-canonical may be accepted). On
 * failure out must be the empty state and err must name the offset.
 */
static int try_decode(const uint8_t *p, size_t len)
{
	ls_scorestate s;
	memset(&s, 0xa5, sizeof s); /* garbage the decoder must overwrite */
	char err[160] = "";
	int rc = ls_scorestate_decode(p, len, &s, err, sizeof err);
	if (rc != LS_SCORESTATE_OK) {
		ck_assert_int_eq(rc, LS_SCORESTATE_ERR_CORRUPT);
		ck_assert_msg(strncmp(err, "scoring state corrupt at byte ", 30) ==
				      0,
			      "reason: %s", err);
		ck_assert_int_eq(s.first_ts, -1);
		ck_assert_uint_eq(s.n, 0);
		return rc;
	}
	uint8_t again[LS_SCORESTATE_ENCODED_MAX];
	size_t n = encode_ok(&s, again, sizeof again);
	ck_assert_uint_eq(n, len);
	if (len > 0)
		ck_assert_mem_eq(again, p, len);
	return rc;
}

/* Decoding p must fail as corrupt with why at byte offset at. */
static void expect_corrupt(const uint8_t *p, size_t len, size_t at,
			   const char *why)
{
	ls_scorestate s;
	char err[160] = "", want[64];
	ck_assert_int_eq(ls_scorestate_decode(p, len, &s, err, sizeof err),
			 LS_SCORESTATE_ERR_CORRUPT);
	snprintf(want, sizeof want, "scoring state corrupt at byte %zu: ", at);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 &&
			      strstr(err, why) != NULL,
		      "reason: %s (want %s%s)", err, want, why);
	/* and without an error buffer */
	ck_assert_int_eq(ls_scorestate_decode(p, len, &s, NULL, 0),
			 LS_SCORESTATE_ERR_CORRUPT);
}

/*
 * The golden state: first_ts T0, two records created in descending key
 * order (the encoder must sort them), one published (POSITIVE, tier 2,
 * version 300, score 0.75), one untouched.
 */
static void golden_state(ls_scorestate *s)
{
	ls_scorestate_init(s);
	s->first_ts = T0;
	ls_scorestate_model *a = ls_scorestate_get(s, 0x01020304u, true);
	ls_scorestate_model *b = ls_scorestate_get(s, 0x00000010u, true);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	a->label = LS_LABEL_POSITIVE;
	a->tier = 2;
	a->version = 300;
	a->score = 0.75;
}

/* Written by hand from the format in ls_scorestate.h. */
static const uint8_t golden[] = {
	0x01,                               /* version 1 */
	0x01,                               /* flags: has first_ts */
	0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, /* zigzag(T0) = 2 * T0 */
	0x02,                               /* n */
	0x10, 0x00, 0x00, 0x00,             /* key 0x10 */
	0x00,                               /* label NONE */
	0x00,                               /* tier -1 + 1 */
	0x00,                               /* version 0 */
	0x00,                               /* tag 0: no score */
	0x04, 0x03, 0x02, 0x01,             /* key 0x01020304 */
	0x01,                               /* label POSITIVE */
	0x03,                               /* tier 2 + 1 */
	0xac, 0x02,                         /* version 300 */
	0x01,                               /* tag 1 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe8, 0x3f, /* 0.75 */
};

/* The largest state: every varint at 10 bytes, every record scored. */
static void max_state(ls_scorestate *s)
{
	ls_scorestate_init(s);
	s->first_ts = INT64_MAX;
	for (uint32_t i = 0; i < LS_SCORESTATE_MAX_MODELS; i++) {
		ls_scorestate_model *m =
			ls_scorestate_get(s, UINT32_MAX - 7 * i, true);
		ck_assert_ptr_nonnull(m);
		m->label = LS_LABEL_TIMEOUT;
		m->tier = LS_TIERS_MAX - 1;
		m->version = UINT64_MAX;
		m->score = 1.0;
	}
}

/* ---- keys, records ---- */

START_TEST(test_key)
{
	const char *names[] = { "", "conversion", "win", "conversion_v2" };
	for (size_t i = 0; i < 4; i++)
		ck_assert_uint_eq(ls_scorestate_key(names[i]),
				  (uint32_t)XXH3_64bits(names[i],
							strlen(names[i])));
	ck_assert_uint_eq(ls_scorestate_key(NULL), ls_scorestate_key(""));
	ck_assert_uint_ne(ls_scorestate_key("conversion"),
			  ls_scorestate_key("win"));
	/* stable: it names records in stored blobs */
	ck_assert_uint_eq(ls_scorestate_key("conversion"),
			  ls_scorestate_key("conversion"));
}
END_TEST

START_TEST(test_get_create_full)
{
	ls_scorestate s;
	memset(&s, 0xff, sizeof s);
	ls_scorestate_init(&s);
	ck_assert_int_eq(s.first_ts, -1);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_ptr_null(ls_scorestate_get(&s, 7, false));
	ck_assert_uint_eq(s.n, 0);

	ls_scorestate_model *first = ls_scorestate_get(&s, 7, true);
	ck_assert_ptr_nonnull(first);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_uint_eq(first->key, 7);
	ck_assert_uint_eq(first->label, LS_LABEL_NONE);
	ck_assert_int_eq(first->tier, -1);
	ck_assert_uint_eq(first->version, 0);
	ck_assert(isnan(first->score));
	first->version = 11;
	/* found again, create or not, without a second record */
	ck_assert_ptr_eq(ls_scorestate_get(&s, 7, false), first);
	ck_assert_ptr_eq(ls_scorestate_get(&s, 7, true), first);
	ck_assert_uint_eq(s.n, 1);

	/* fill up; the first pointer stays valid (no reordering) */
	for (uint32_t k = 100; s.n < LS_SCORESTATE_MAX_MODELS; k--)
		ck_assert_ptr_nonnull(ls_scorestate_get(&s, k, true));
	ck_assert_uint_eq(s.n, LS_SCORESTATE_MAX_MODELS);
	ck_assert_ptr_eq(ls_scorestate_get(&s, 7, false), first);
	ck_assert_uint_eq(first->version, 11);
	/* full: no new record, existing ones still found */
	ck_assert_ptr_null(ls_scorestate_get(&s, 5000, true));
	ck_assert_uint_eq(s.n, LS_SCORESTATE_MAX_MODELS);
	ck_assert_ptr_nonnull(ls_scorestate_get(&s, 100, true));
	ck_assert_ptr_nonnull(ls_scorestate_get(&s, 94, false));
	ck_assert_ptr_null(ls_scorestate_get(&s, 93, false));
	/* key 0 is a key like any other */
	ls_scorestate_init(&s);
	ck_assert_ptr_null(ls_scorestate_get(&s, 0, false));
	ck_assert_ptr_nonnull(ls_scorestate_get(&s, 0, true));
	ck_assert_uint_eq(s.n, 1);

	ck_assert_ptr_null(ls_scorestate_get(NULL, 7, true));
	ls_scorestate_init(NULL); /* no crash */
	/* a damaged n is not trusted */
	s.n = LS_SCORESTATE_MAX_MODELS + 1;
	ck_assert_ptr_null(ls_scorestate_get(&s, 0, true));
}
END_TEST

START_TEST(test_retain)
{
	ls_scorestate s;
	ls_scorestate_init(&s);
	s.first_ts = T0;
	for (uint32_t k = 1; k <= 5; k++) {
		ls_scorestate_model *m = ls_scorestate_get(&s, k, true);
		m->version = k * 10;
	}
	/* keep 4 and 2 (99 is a model with no record yet) */
	const uint32_t keep[] = { 4, 99, 2 };
	ls_scorestate_retain(&s, keep, 3);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(s.m[0].key, 2); /* order kept */
	ck_assert_uint_eq(s.m[0].version, 20);
	ck_assert_uint_eq(s.m[1].key, 4);
	ck_assert_uint_eq(s.m[1].version, 40);
	ck_assert_ptr_null(ls_scorestate_get(&s, 1, false));
	ck_assert_ptr_null(ls_scorestate_get(&s, 3, false));
	ck_assert_ptr_null(ls_scorestate_get(&s, 5, false));
	ck_assert_int_eq(s.first_ts, T0);

	/* all kept: unchanged */
	const uint32_t both[] = { 2, 4 };
	ls_scorestate before = s;
	ls_scorestate_retain(&s, both, 2);
	assert_state_eq(&before, &s);

	/* NULL keys with n > 0: refused, nothing dropped */
	ls_scorestate_retain(&s, NULL, 2);
	ck_assert_uint_eq(s.n, 2);
	ls_scorestate_retain(NULL, both, 2); /* no crash */

	/* no models any more: every record goes, first_ts stays, and the
	 * state still encodes (first_ts only) */
	ls_scorestate_retain(&s, NULL, 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(s.first_ts, T0);
	uint8_t buf[LS_SCORESTATE_ENCODED_MAX];
	ck_assert_uint_eq(encode_ok(&s, buf, sizeof buf), 2 + 6 + 1);
	/* the freed room can be used again */
	ck_assert_ptr_nonnull(ls_scorestate_get(&s, 3, true));
	ck_assert_uint_eq(s.n, 1);
}
END_TEST

/* ---- encoding ---- */

START_TEST(test_encode_golden)
{
	ls_scorestate s;
	golden_state(&s);
	uint8_t buf[LS_SCORESTATE_ENCODED_MAX];
	size_t n = encode_ok(&s, buf, sizeof buf);
	ck_assert_uint_eq(n, sizeof golden);
	ck_assert_mem_eq(buf, golden, n);
	/* exactly the size is enough */
	uint8_t exact[sizeof golden];
	size_t len = 0;
	ck_assert_int_eq(ls_scorestate_encode(&s, exact, sizeof exact, &len),
			 LS_SCORESTATE_OK);
	ck_assert_uint_eq(len, sizeof golden);
	ck_assert_mem_eq(exact, golden, sizeof golden);
	/* the size has nowhere else to go: len is required */
	ck_assert_int_eq(ls_scorestate_encode(&s, exact, sizeof exact, NULL),
			 LS_SCORESTATE_ERR_INVALID);

	/* decoded: the records in key order, the same values */
	ls_scorestate d;
	char err[160] = "";
	ck_assert_int_eq(ls_scorestate_decode(golden, sizeof golden, &d, err,
					     sizeof err),
			 LS_SCORESTATE_OK);
	ck_assert_str_eq(err, "");
	assert_state_eq(&s, &d);
	ck_assert_uint_eq(d.m[0].key, 0x10);
	ck_assert_uint_eq(d.m[1].key, 0x01020304);
	ck_assert_double_eq(d.m[1].score, 0.75);

	/* The empty state is 0 bytes, with or without a buffer. */
	ls_scorestate e;
	ls_scorestate_init(&e);
	len = 99;
	ck_assert_int_eq(ls_scorestate_encode(&e, NULL, 0, &len),
			 LS_SCORESTATE_OK);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(ls_scorestate_encoded_size(&e), 0);
	ck_assert_int_eq(ls_scorestate_decode(NULL, 0, &d, NULL, 0),
			 LS_SCORESTATE_OK);
	ck_assert_int_eq(d.first_ts, -1);
	ck_assert_uint_eq(d.n, 0);

	/* first_ts 0 is a time, not "none"; no records */
	e.first_ts = 0;
	static const uint8_t ts0[] = { 0x01, 0x01, 0x00, 0x00 };
	n = encode_ok(&e, buf, sizeof buf);
	ck_assert_uint_eq(n, sizeof ts0);
	ck_assert_mem_eq(buf, ts0, n);

	/* a record without first_ts; score 1.0 and 0.0; -0.0 written as
	 * +0.0 */
	ls_scorestate_init(&e);
	ls_scorestate_get(&e, 0xaabbccddu, true)->score = 1.0;
	static const uint8_t one[] = { 0x01, 0x00, 0x01, 0xdd, 0xcc, 0xbb, 0xaa,
				       0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
				       0x00, 0x00, 0x00, 0xf0, 0x3f };
	n = encode_ok(&e, buf, sizeof buf);
	ck_assert_uint_eq(n, sizeof one);
	ck_assert_mem_eq(buf, one, n);
	e.m[0].score = 0.0;
	uint8_t pos0[32], neg0[32];
	size_t np = encode_ok(&e, pos0, sizeof pos0);
	e.m[0].score = -0.0;
	size_t nn = encode_ok(&e, neg0, sizeof neg0);
	ck_assert_uint_eq(np, nn);
	ck_assert_mem_eq(pos0, neg0, np);
	ck_assert_uint_eq(pos0[np - 1], 0x00); /* +0.0: all bits clear */
	ck_assert_uint_eq(pos0[np - 8], 0x00);

	/* the largest state is exactly LS_SCORESTATE_ENCODED_MAX bytes */
	max_state(&s);
	ck_assert_uint_eq(ls_scorestate_encoded_size(&s),
			  LS_SCORESTATE_ENCODED_MAX);
	ck_assert_uint_eq(encode_ok(&s, buf, sizeof buf),
			  LS_SCORESTATE_ENCODED_MAX);
	ck_assert_int_eq(try_decode(buf, LS_SCORESTATE_ENCODED_MAX),
			 LS_SCORESTATE_OK);

	/* a typical lead: one model, published once (header comment) */
	ls_scorestate_init(&s);
	s.first_ts = T0;
	ls_scorestate_model *m = ls_scorestate_get(&s, 1, true);
	m->tier = 0;
	m->version = 1;
	m->score = 0.12;
	ck_assert_uint_eq(encode_ok(&s, buf, sizeof buf), 25);
}
END_TEST

START_TEST(test_roundtrip_random)
{
	uint8_t buf[LS_SCORESTATE_ENCODED_MAX], again[LS_SCORESTATE_ENCODED_MAX];
	for (int round = 0; round < 5000; round++) {
		ls_scorestate s;
		ls_scorestate_init(&s);
		if (rnd() % 4)
			s.first_ts = (int64_t)(rnd() >> (1 + rnd() % 63));
		size_t n = (size_t)(rnd() % (LS_SCORESTATE_MAX_MODELS + 1));
		for (size_t i = 0; i < n; i++) {
			/* small keys collide now and then: get() finds them */
			uint32_t key = rnd() % 2 ? (uint32_t)rnd()
						 : (uint32_t)(rnd() % 12);
			ls_scorestate_model *m = ls_scorestate_get(&s, key, true);
			ck_assert_ptr_nonnull(m);
			m->label = (uint8_t)(rnd() % 4);
			m->tier = (int8_t)((int)(rnd() % (LS_TIERS_MAX + 1)) - 1);
			m->version = rnd() >> (rnd() % 64);
			switch (rnd() % 4) {
			case 0: m->score = NAN; break;
			case 1: m->score = 0.0; break;
			case 2: m->score = 1.0; break;
			default: m->score = (double)(rnd() >> 11) / 9007199254740992.0;
			}
		}
		size_t len = encode_ok(&s, buf, sizeof buf);
		ck_assert_uint_eq(len == 0, s.first_ts == -1 && s.n == 0);
		ls_scorestate d;
		char err[160] = "";
		ck_assert_msg(ls_scorestate_decode(buf, len, &d, err, sizeof err) ==
				      LS_SCORESTATE_OK,
			      "decode: %s", err);
		assert_state_eq(&s, &d);
		for (size_t i = 1; i < d.n; i++)
			ck_assert_uint_lt(d.m[i - 1].key, d.m[i].key);
		ck_assert_uint_eq(encode_ok(&d, again, sizeof again), len);
		ck_assert_mem_eq(again, buf, len);
		/* record order in memory does not change the bytes */
		if (s.n > 1) {
			ls_scorestate_model t = s.m[0];
			s.m[0] = s.m[s.n - 1];
			s.m[s.n - 1] = t;
			ck_assert_uint_eq(encode_ok(&s, again, sizeof again), len);
			ck_assert_mem_eq(again, buf, len);
		}
	}
}
END_TEST

START_TEST(test_encode_refuses)
{
	uint8_t buf[LS_SCORESTATE_ENCODED_MAX];
	ls_scorestate s, good;
	golden_state(&good);
	size_t len;

	/* Each damaged state is refused as invalid, *len 0. */
	for (int c = 0; c < 13; c++) {
		s = good;
		switch (c) {
		case 0: s.first_ts = -2; break;
		case 1: s.first_ts = INT64_MIN; break;
		case 2: s.n = LS_SCORESTATE_MAX_MODELS + 1; break;
		case 3: s.m[1].key = s.m[0].key; break; /* two records, one key */
		case 4: s.m[0].label = 4; break;
		case 5: s.m[0].label = 255; break;
		case 6: s.m[0].tier = -2; break;
		case 7: s.m[0].tier = LS_TIERS_MAX; break;
		case 8: s.m[0].score = 1.0000000000000002; break;
		case 9: s.m[0].score = -0.1; break;
		case 10: s.m[0].score = INFINITY; break;
		case 11: s.m[0].score = -INFINITY; break;
		default: s.m[1].score = -1e-300; break;
		}
		len = 99;
		ck_assert_msg(ls_scorestate_encode(&s, buf, sizeof buf, &len) ==
				      LS_SCORESTATE_ERR_INVALID,
			      "case %d accepted", c);
		ck_assert_uint_eq(len, 0);
	}
	/* the limits themselves are fine */
	s = good;
	s.m[0].tier = LS_TIERS_MAX - 1;
	s.m[0].label = LS_LABEL_TIMEOUT;
	s.m[0].score = 1.0;
	s.first_ts = 0;
	encode_ok(&s, buf, sizeof buf);
	ck_assert_int_eq(ls_scorestate_encode(NULL, buf, sizeof buf, &len),
			 LS_SCORESTATE_ERR_INVALID);
	ck_assert_int_eq(ls_scorestate_encode(&good, NULL, 5, &len),
			 LS_SCORESTATE_ERR_INVALID);
	ck_assert_uint_eq(ls_scorestate_encoded_size(NULL), 0);

	/* every capacity short of the size: SPACE, nothing written */
	for (size_t cap = 0; cap < sizeof golden; cap++) {
		memset(buf, 0xee, sizeof buf);
		len = 99;
		ck_assert_int_eq(ls_scorestate_encode(&good, cap ? buf : NULL, cap,
						     &len),
				 LS_SCORESTATE_ERR_SPACE);
		ck_assert_uint_eq(len, 0);
		ck_assert_uint_eq(buf[0], 0xee);
	}
	/* invalid beats space: the state is checked first */
	s = good;
	s.m[0].label = 9;
	ck_assert_int_eq(ls_scorestate_encode(&s, NULL, 0, &len),
			 LS_SCORESTATE_ERR_INVALID);

	ck_assert_str_eq(ls_scorestate_result_str(LS_SCORESTATE_OK), "ok");
	ck_assert_str_eq(ls_scorestate_result_str(LS_SCORESTATE_ERR_CORRUPT),
			 "state corrupt");
	ck_assert_str_eq(ls_scorestate_result_str(LS_SCORESTATE_ERR_SPACE),
			 "output too small");
	ck_assert_str_eq(ls_scorestate_result_str(LS_SCORESTATE_ERR_INVALID),
			 "invalid argument");
	ck_assert_str_eq(ls_scorestate_result_str(42), "unknown result");
}
END_TEST

/* ---- decoding ---- */

/* golden with byte at replaced by v */
static void corrupt_byte(size_t at, uint8_t v, size_t err_at, const char *why)
{
	uint8_t p[sizeof golden];
	memcpy(p, golden, sizeof p);
	p[at] = v;
	expect_corrupt(p, sizeof p, err_at, why);
}

/* golden with the score of the second record (offset 26) set to v */
static void corrupt_score(double v, const char *why)
{
	uint8_t p[sizeof golden];
	memcpy(p, golden, sizeof p);
	uint64_t b = bits_of(v);
	for (int i = 0; i < 8; i++)
		p[26 + i] = (uint8_t)(b >> (8 * i));
	expect_corrupt(p, sizeof p, 26, why);
}

START_TEST(test_decode_rejects)
{
	/* the offsets of golden: 0 version, 1 flags, 2..7 first_ts, 8 n,
	 * 9..12 key, 13 label, 14 tier, 15 version, 16 tag,
	 * 17..20 key, 21 label, 22 tier, 23..24 version, 25 tag, 26.. score */
	ck_assert_uint_eq(sizeof golden, 34);
	corrupt_byte(0, 2, 0, "version 2 not supported");
	corrupt_byte(0, 0, 0, "version 0 not supported");
	corrupt_byte(1, 2, 1, "unknown flags");
	corrupt_byte(1, 0x81, 1, "unknown flags");
	corrupt_byte(8, 3, 34, "truncated");   /* a third record is missing */
	corrupt_byte(8, 1, 17, "trailing bytes");
	corrupt_byte(8, 9, 8, "too many models");
	corrupt_byte(13, 4, 13, "unknown label");
	corrupt_byte(13, 0xff, 13, "unknown label");
	corrupt_byte(14, LS_TIERS_MAX + 1, 14, "tier out of range");
	corrupt_byte(16, 2, 16, "unknown score tag");
	/* tag 1 makes the next record's bytes a (tiny, valid) score, and the
	 * remains a record whose key 1 is below 0x10 */
	corrupt_byte(16, 1, 25, "keys not ascending");
	corrupt_byte(25, 0, 26, "trailing bytes");
	corrupt_byte(25, 7, 25, "unknown score tag");
	corrupt_byte(15, 0x80, 15, "not minimal"); /* 0x80 0x00 */
	/* keys: equal, then descending */
	uint8_t p[sizeof golden];
	static const uint8_t same[] = { 0x10, 0, 0, 0 }, below[] = { 0x0f, 0, 0, 0 };
	memcpy(p, golden, sizeof p);
	memcpy(p + 17, same, 4);
	expect_corrupt(p, sizeof p, 17, "keys not ascending");
	memcpy(p + 17, below, 4);
	expect_corrupt(p, sizeof p, 17, "keys not ascending");
	/* scores outside [0,1], not finite, or -0.0 */
	corrupt_score(1.5, "score not in [0,1]");
	corrupt_score(-0.25, "score not in [0,1]");
	corrupt_score(-0.0, "score not in [0,1]");
	corrupt_score(INFINITY, "score not in [0,1]");
	corrupt_score(NAN, "score not in [0,1]"); /* NaN has tag 0 */
	corrupt_score(nextafter(1.0, 2.0), "score not in [0,1]");
	/* the tier and score limits themselves decode */
	memcpy(p, golden, sizeof p);
	p[14] = LS_TIERS_MAX;
	ck_assert_int_eq(try_decode(p, sizeof p), LS_SCORESTATE_OK);
	memcpy(p, golden, sizeof p);
	memset(p + 26, 0, 8); /* +0.0 */
	ck_assert_int_eq(try_decode(p, sizeof p), LS_SCORESTATE_OK);

	/* first_ts: negative (zigzag 1 = -1), over 64 bits, not minimal */
	static const uint8_t neg_ts[] = { 0x01, 0x01, 0x01, 0x00 };
	expect_corrupt(neg_ts, sizeof neg_ts, 2, "first_ts negative");
	static const uint8_t big_ts[] = { 0x01, 0x01, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
					  0x00 };
	expect_corrupt(big_ts, sizeof big_ts, 2, "overflows");
	static const uint8_t pad_ts[] = { 0x01, 0x01, 0x82, 0x00, 0x00 };
	expect_corrupt(pad_ts, sizeof pad_ts, 2, "not minimal");
	/* the empty state has one encoding: no bytes */
	static const uint8_t empty[] = { 0x01, 0x00, 0x00 };
	expect_corrupt(empty, sizeof empty, 0, "empty state");
	/* too short to be anything */
	static const uint8_t v_only[] = { 0x01 };
	expect_corrupt(v_only, sizeof v_only, 1, "truncated");

	/* arguments */
	ls_scorestate s;
	golden_state(&s);
	char err[160] = "";
	ck_assert_int_eq(ls_scorestate_decode(NULL, 3, &s, err, sizeof err),
			 LS_SCORESTATE_ERR_INVALID);
	ck_assert_uint_eq(s.n, 0); /* emptied */
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(ls_scorestate_decode(golden, sizeof golden, NULL, err,
					     sizeof err),
			 LS_SCORESTATE_ERR_INVALID);
	/* a tiny error buffer is truncated, not overrun */
	char tiny[8];
	ck_assert_int_eq(ls_scorestate_decode(empty, sizeof empty, &s, tiny,
					     sizeof tiny),
			 LS_SCORESTATE_ERR_CORRUPT);
	ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
}
END_TEST

START_TEST(test_decode_fuzz)
{
	uint8_t max[LS_SCORESTATE_ENCODED_MAX];
	ls_scorestate s;
	max_state(&s);
	size_t max_len = encode_ok(&s, max, sizeof max);
	const struct {
		const uint8_t *p;
		size_t n;
	} blobs[] = { { golden, sizeof golden }, { max, max_len } };
	size_t accepted = 0, refused = 0;
	for (size_t k = 0; k < 2; k++) {
		const uint8_t *b = blobs[k].p;
		size_t n = blobs[k].n;
		ck_assert_int_eq(try_decode(b, n), LS_SCORESTATE_OK);
		/* every prefix: refused, except 0 bytes (the empty state);
		 * copied so that ASan sees any read past the prefix */
		ck_assert_int_eq(try_decode(NULL, 0), LS_SCORESTATE_OK);
		for (size_t len = 1; len < n; len++) {
			uint8_t *copy = malloc(len);
			memcpy(copy, b, len);
			ck_assert_int_eq(try_decode(copy, len),
					 LS_SCORESTATE_ERR_CORRUPT);
			free(copy);
		}
		/* one byte more, whatever it is: refused */
		uint8_t *longer = malloc(n + 1);
		memcpy(longer, b, n);
		for (int v = 0; v < 256; v++) {
			longer[n] = (uint8_t)v;
			ck_assert_int_eq(try_decode(longer, n + 1),
					 LS_SCORESTATE_ERR_CORRUPT);
		}
		free(longer);
		/* every single bit flipped, and every value at every byte:
		 * no crash; what is accepted is canonical (try_decode) */
		uint8_t *copy = malloc(n);
		for (size_t bit = 0; bit < n * 8; bit++) {
			memcpy(copy, b, n);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			if (try_decode(copy, n) == LS_SCORESTATE_OK)
				accepted++;
			else
				refused++;
		}
		for (size_t at = 0; at < n; at++) {
			for (int v = 0; v < 256; v++) {
				memcpy(copy, b, n);
				copy[at] = (uint8_t)v;
				try_decode(copy, n);
			}
		}
		free(copy);
	}
	/* flips in keys (ascending kept), versions and score mantissas
	 * decode; flips in structure do not */
	ck_assert_uint_gt(accepted, 0);
	ck_assert_uint_gt(refused, 0);

	/* random bytes, half of them with a valid version byte */
	uint8_t buf[64];
	for (int round = 0; round < 200000; round++) {
		size_t n = (size_t)(rnd() % sizeof buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rnd();
		if (n > 0 && round % 2)
			buf[0] = LS_SCORESTATE_VERSION;
		if (n > 1 && round % 4 == 1)
			buf[1] = (uint8_t)(rnd() % 2);
		if (n > 2 && round % 8 == 1)
			buf[2] = (uint8_t)(rnd() % 3);
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, buf, n);
		try_decode(copy, n);
		free(copy);
	}
}
END_TEST

/* ---- rules ---- */

START_TEST(test_accept_label_table)
{
	enum { N = LS_LABEL_NONE, P = LS_LABEL_POSITIVE, G = LS_LABEL_NEGATIVE,
	       T = LS_LABEL_TIMEOUT };
	/* [state][observed] -> learned? and the state after */
	static const struct {
		uint8_t state;
		int observed;
		bool learn;
		uint8_t after;
	} table[] = {
		{ N, N, false, N }, { N, P, true, P },
		{ N, G, true, G },  { N, T, true, T },
		{ P, N, false, P }, { P, P, false, P }, /* WON after CONVERTED */
		{ P, G, false, P }, { P, T, false, P },
		{ G, N, false, G }, { G, P, false, G },
		{ G, G, false, G }, { G, T, false, G },
		{ T, N, false, T }, { T, P, true, P }, /* late conversion */
		{ T, G, false, T }, { T, T, false, T },
		/* out of range on either side */
		{ N, 4, false, N }, { N, -1, false, N },
		{ T, 99, false, T }, { 4, P, false, 4 },
		{ 200, G, false, 200 },
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		ls_scorestate_model r = { .key = 1, .label = table[i].state,
					 .tier = 1, .version = 5, .score = 0.5 };
		bool got = ls_scorestate_accept_label(
			&r, (ls_label_state)table[i].observed);
		ck_assert_msg(got == table[i].learn,
			      "row %zu: state %u observed %d", i,
			      table[i].state, table[i].observed);
		ck_assert_uint_eq(r.label, table[i].after);
		/* nothing else moves */
		ck_assert_uint_eq(r.key, 1);
		ck_assert_int_eq(r.tier, 1);
		ck_assert_uint_eq(r.version, 5);
		ck_assert_double_eq(r.score, 0.5);
	}
	ck_assert(!ls_scorestate_accept_label(NULL, LS_LABEL_POSITIVE));

	/* a lead's life: timeout negative, late conversion, then WON: two
	 * examples, not three */
	ls_scorestate_model r = { .label = LS_LABEL_NONE };
	int learned = 0;
	learned += ls_scorestate_accept_label(&r, LS_LABEL_TIMEOUT);
	learned += ls_scorestate_accept_label(&r, LS_LABEL_POSITIVE);
	learned += ls_scorestate_accept_label(&r, LS_LABEL_POSITIVE);
	learned += ls_scorestate_accept_label(&r, LS_LABEL_NEGATIVE);
	ck_assert_int_eq(learned, 2);
	ck_assert_uint_eq(r.label, LS_LABEL_POSITIVE);
}
END_TEST

START_TEST(test_timeout_due)
{
	ls_scorestate s;
	ls_scorestate_init(&s);
	ls_scorestate_model *r = ls_scorestate_get(&s, 1, true);
	const int64_t to = 30 * DAY;

	/* no first_ts: never */
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, to));
	s.first_ts = T0;
	/* the edge: due exactly at first_ts + timeout */
	ck_assert(!ls_scorestate_timeout_due(&s, r, T0 + to - 1, to));
	ck_assert(ls_scorestate_timeout_due(&s, r, T0 + to, to));
	ck_assert(ls_scorestate_timeout_due(&s, r, T0 + to + 1, to));
	ck_assert(!ls_scorestate_timeout_due(&s, r, T0, to));
	ck_assert(!ls_scorestate_timeout_due(&s, r, T0 - 1, to));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MIN, to));
	ck_assert(!ls_scorestate_timeout_due(&s, r, -1, to));
	/* no timeout configured */
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, 0));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, -1));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, INT64_MIN));
	/* a label already learned: never (again) */
	for (uint8_t l = LS_LABEL_POSITIVE; l <= LS_LABEL_TIMEOUT; l++) {
		r->label = l;
		ck_assert(!ls_scorestate_timeout_due(&s, r, T0 + to, to));
	}
	r->label = LS_LABEL_NONE;
	ck_assert(ls_scorestate_timeout_due(&s, r, T0 + to, to));

	/* first_ts 0 is a time */
	s.first_ts = 0;
	ck_assert(ls_scorestate_timeout_due(&s, r, to, to));
	ck_assert(!ls_scorestate_timeout_due(&s, r, to - 1, to));
	ck_assert(ls_scorestate_timeout_due(&s, r, 1, 1));

	/* near INT64_MAX: first_ts + timeout would overflow */
	s.first_ts = INT64_MAX - 10;
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, 100));
	ck_assert(ls_scorestate_timeout_due(&s, r, INT64_MAX, 10));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX - 1, 10));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, INT64_MAX));
	s.first_ts = INT64_MAX;
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, 1));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, INT64_MAX));
	s.first_ts = 0;
	ck_assert(ls_scorestate_timeout_due(&s, r, INT64_MAX, INT64_MAX));
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX - 1, INT64_MAX));
	s.first_ts = 1;
	ck_assert(!ls_scorestate_timeout_due(&s, r, INT64_MAX, INT64_MAX));

	ck_assert(!ls_scorestate_timeout_due(NULL, r, INT64_MAX, 1));
	ck_assert(!ls_scorestate_timeout_due(&s, NULL, INT64_MAX, 1));
}
END_TEST

START_TEST(test_label_of)
{
	/* outcomes as bit positions, e.g. 0 CONVERTED, 1 WON, 2 LOST,
	 * 3 DISQUALIFIED */
	const uint32_t pos = 1u << 0 | 1u << 1, neg = 1u << 2 | 1u << 3;
	ck_assert_int_eq(ls_scorestate_label_of(pos, neg, 0), LS_LABEL_POSITIVE);
	ck_assert_int_eq(ls_scorestate_label_of(pos, neg, 1), LS_LABEL_POSITIVE);
	ck_assert_int_eq(ls_scorestate_label_of(pos, neg, 2), LS_LABEL_NEGATIVE);
	ck_assert_int_eq(ls_scorestate_label_of(pos, neg, 3), LS_LABEL_NEGATIVE);
	ck_assert_int_eq(ls_scorestate_label_of(pos, neg, 4), LS_LABEL_NONE);
	/* bit 31 is usable */
	ck_assert_int_eq(ls_scorestate_label_of(1u << 31, 0, 31),
			 LS_LABEL_POSITIVE);
	ck_assert_int_eq(ls_scorestate_label_of(0, 1u << 31, 31),
			 LS_LABEL_NEGATIVE);
	/* out of range: never a shift past the width */
	ck_assert_int_eq(ls_scorestate_label_of(UINT32_MAX, UINT32_MAX, 32),
			 LS_LABEL_NONE);
	ck_assert_int_eq(ls_scorestate_label_of(UINT32_MAX, UINT32_MAX, -1),
			 LS_LABEL_NONE);
	ck_assert_int_eq(ls_scorestate_label_of(UINT32_MAX, UINT32_MAX, INT_MAX),
			 LS_LABEL_NONE);
	ck_assert_int_eq(ls_scorestate_label_of(UINT32_MAX, UINT32_MAX, INT_MIN),
			 LS_LABEL_NONE);
	/* in both masks: positive */
	ck_assert_int_eq(ls_scorestate_label_of(1u << 5, 1u << 5, 5),
			 LS_LABEL_POSITIVE);
	/* no masks: nothing */
	for (int o = 0; o < 32; o++)
		ck_assert_int_eq(ls_scorestate_label_of(0, 0, o), LS_LABEL_NONE);
}
END_TEST

/* versions: above the last one, and above every earlier epoch's */
START_TEST(test_next_version)
{
	const uint64_t E = (uint64_t)1 << 32;
	/* no epoch taken (the scorer alone): 1, 2, 3... */
	ck_assert_uint_eq(ls_scorestate_next_version(0, 0), 1);
	ck_assert_uint_eq(ls_scorestate_next_version(41, 0), 42);
	/* the first epoch is above what a build without epochs published */
	ck_assert_uint_eq(ls_scorestate_next_version(0, 1), E);
	ck_assert_uint_eq(ls_scorestate_next_version(41, 1), E);
	/* a later epoch starts at its floor, then counts from there */
	ck_assert_uint_eq(ls_scorestate_next_version(E, 1), E + 1);
	ck_assert_uint_eq(ls_scorestate_next_version(E + 7, 2), 2 * E);
	ck_assert_uint_eq(ls_scorestate_next_version(2 * E, 2), 2 * E + 1);
	/* a stored version above the floor (a later epoch committed by
	 * another instance) still only grows */
	ck_assert_uint_eq(ls_scorestate_next_version(9 * E, 5), 9 * E + 1);
	/* the largest epoch the store hands out fits a signed Avro long */
	ck_assert_uint_le(ls_scorestate_next_version(0, INT32_MAX), (uint64_t)INT64_MAX);
}
END_TEST

START_TEST(test_decay)
{
	const int64_t hl = 7 * DAY;
	/* one half-life: half way to the prior */
	ck_assert_double_eq_tol(ls_scorestate_decay(0.9, 0.1, hl, hl), 0.5,
				1e-15);
	/* two: a quarter of the way left, 0.1 + 0.8 / 4 */
	ck_assert_double_eq_tol(ls_scorestate_decay(0.9, 0.1, 2 * hl, hl), 0.3,
				1e-15);
	/* half of one: 0.1 + 0.8 / sqrt(2) */
	ck_assert_double_eq_tol(ls_scorestate_decay(0.9, 0.1, hl / 2, hl),
				0.6656854249492381, 1e-15);
	/* 3 days of a 7-day half-life: 0.2 + 0.6 * 2^(-3/7) */
	ck_assert_double_eq_tol(ls_scorestate_decay(0.8, 0.2, 3 * DAY, hl),
				0.6457982867410845, 1e-15);
	/* below the prior, it rises toward it */
	ck_assert_double_eq_tol(ls_scorestate_decay(0.0, 0.4, hl, hl), 0.2,
				1e-15);
	/* at the prior, it stays */
	ck_assert_double_eq(ls_scorestate_decay(0.3, 0.3, hl, hl), 0.3);
	/* forever idle: exactly the prior */
	ck_assert_double_eq(ls_scorestate_decay(0.9, 0.1, INT64_MAX, 1), 0.1);
	ck_assert_double_eq_tol(ls_scorestate_decay(0.9, 0.1, INT64_MAX,
						   INT64_MAX),
				0.5, 1e-15);
	/* monotone in idle time */
	double prev = 1.0;
	for (int64_t idle = 0; idle <= 10 * hl; idle += hl / 3) {
		double v = ls_scorestate_decay(0.95, 0.05, idle, hl);
		ck_assert_double_le(v, prev);
		ck_assert_double_gt(v, 0.05);
		prev = v;
	}

	/* no decay: half-life off, no idle time, no prior */
	ck_assert_double_eq(ls_scorestate_decay(0.9, 0.1, hl, 0), 0.9);
	ck_assert_double_eq(ls_scorestate_decay(0.9, 0.1, hl, -5), 0.9);
	ck_assert_double_eq(ls_scorestate_decay(0.9, 0.1, 0, hl), 0.9);
	ck_assert_double_eq(ls_scorestate_decay(0.9, 0.1, -hl, hl), 0.9);
	ck_assert_double_eq(ls_scorestate_decay(0.9, NAN, hl, hl), 0.9);
	/* NaN score stays NaN, decayed or not */
	ck_assert(isnan(ls_scorestate_decay(NAN, 0.1, hl, hl)));
	ck_assert(isnan(ls_scorestate_decay(NAN, 0.1, 0, 0)));
	/* clamped to [0,1] */
	ck_assert_double_eq(ls_scorestate_decay(1.5, 0.1, 0, hl), 1.0);
	ck_assert_double_eq(ls_scorestate_decay(-0.5, 0.1, 0, hl), 0.0);
	ck_assert_double_eq(ls_scorestate_decay(INFINITY, 0.1, 0, hl), 1.0);
	ck_assert_double_eq_tol(ls_scorestate_decay(0.8, -1.0, hl, hl), 0.4,
				1e-15);
	ck_assert_double_eq_tol(ls_scorestate_decay(0.2, 3.0, hl, hl), 0.6,
				1e-15);
	ck_assert_double_eq_tol(ls_scorestate_decay(2.0, 0.0, hl, hl), 0.5,
				1e-15);
}
END_TEST

/* ---- with a lead ---- */

/* The intended use: the state travels in the lead's ext bytes. */
START_TEST(test_in_lead_ext)
{
	static const ls_feature_spec specs[] = {
		{ .name = "web", .source = LS_SOURCE_WEB, .agg = LS_AGG_COUNT,
		  .n_windows = 1, .windows = { { LS_WINDOW_MS_HOUR, 0 } } },
	};
	char err[200] = "";
	ls_feature_set *set = ls_feature_set_new(specs, 1, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	ck_assert_ptr_nonnull(l);

	/* a lead scoring never saw: no ext, nothing in the blob */
	ls_scorestate s, d;
	ls_scorestate_init(&s);
	uint8_t buf[LS_SCORESTATE_ENCODED_MAX];
	size_t n = encode_ok(&s, buf, sizeof buf);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(ls_lead_set_ext(l, buf, n), LS_LEAD_APPLIED);
	ls_buf b0 = { 0 }, b = { 0 };
	ck_assert_int_eq(ls_lead_encode(l, &conf, &b0), LS_LEAD_APPLIED);

	/* the largest state: stored, encoded with the lead, restored */
	max_state(&s);
	n = encode_ok(&s, buf, sizeof buf);
	ck_assert_int_eq(ls_lead_set_ext(l, buf, n), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_encode(l, &conf, &b), LS_LEAD_APPLIED);
	ck_assert_uint_eq(b.len, b0.len + 2 + n); /* 213: a 2-byte length */
	ls_lead *r = NULL;
	ck_assert_int_eq(ls_lead_decode(&conf, b.data, b.len, &r, err,
					sizeof err),
			 LS_LEAD_APPLIED);
	size_t el;
	const uint8_t *ext = ls_lead_ext(r, &el);
	ck_assert_int_eq(ls_scorestate_decode(ext, el, &d, err, sizeof err),
			 LS_SCORESTATE_OK);
	assert_state_eq(&s, &d);

	ls_lead_free(r);
	ls_buf_free(&b0);
	ls_buf_free(&b);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

static Suite *leadscore_suite(void)
{
	Suite *s = suite_create("leadscore");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 100);
	tcase_add_test(tc, test_key);
	tcase_add_test(tc, test_get_create_full);
	tcase_add_test(tc, test_retain);
	tcase_add_test(tc, test_encode_golden);
	tcase_add_test(tc, test_roundtrip_random);
	tcase_add_test(tc, test_encode_refuses);
	tcase_add_test(tc, test_decode_rejects);
	tcase_add_test(tc, test_decode_fuzz);
	tcase_add_test(tc, test_accept_label_table);
	tcase_add_test(tc, test_timeout_due);
	tcase_add_test(tc, test_label_of);
	tcase_add_test(tc, test_decay);
	tcase_add_test(tc, test_next_version);
	tcase_add_test(tc, test_in_lead_ext);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(leadscore_suite(), CK_NORMAL);
}
