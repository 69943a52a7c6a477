/* Unit tests for ls_mlog: learning-log entries. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ls_ftrl.h"
#include "ls_mlog.h"

START_TEST(round_trip_pairs_and_delta)
{
	ls_mlog_pair pairs[3] = { { 0.0, 0 }, { 0.25, 1 }, { 1.0, 1 } };
	const uint8_t delta[5] = { 1, 2, 3, 4, 5 };
	ls_buf b = { 0 };
	ck_assert_int_eq(ls_mlog_encode(pairs, 3, delta, 5, &b), LS_MLOG_OK);
	/* magic+version 5, count 1, 3 x 9, length 1, delta 5, checksum 8 */
	ck_assert_uint_eq(b.len, 5 + 1 + 27 + 1 + 5 + 8);
	ck_assert_int_eq(memcmp(b.data, "LSML\x01\x03", 6), 0);
	ls_mlog_entry e;
	char err[128];
	ck_assert_int_eq(ls_mlog_decode(b.data, b.len, &e, err, sizeof err), LS_MLOG_OK);
	ck_assert_uint_eq(e.n_pairs, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert(e.pairs[i].p == pairs[i].p);
		ck_assert_uint_eq(e.pairs[i].label, pairs[i].label);
	}
	ck_assert_uint_eq(e.delta_len, 5);
	ck_assert_int_eq(memcmp(e.delta, delta, 5), 0);
	ls_mlog_entry_free(&e);
	ls_buf_free(&b);
}
END_TEST

START_TEST(empty_entry)
{
	ls_buf b = { 0 };
	ck_assert_int_eq(ls_mlog_encode(NULL, 0, NULL, 0, &b), LS_MLOG_OK);
	ck_assert_uint_eq(b.len, 5 + 1 + 1 + 8);
	ls_mlog_entry e;
	ck_assert_int_eq(ls_mlog_decode(b.data, b.len, &e, NULL, 0), LS_MLOG_OK);
	ck_assert_uint_eq(e.n_pairs, 0);
	ck_assert_ptr_null(e.pairs);
	ck_assert_uint_eq(e.delta_len, 0);
	ck_assert_ptr_null(e.delta);
	ls_mlog_entry_free(&e);
	ls_buf_free(&b);
}
END_TEST

START_TEST(encode_refuses_bad_pairs)
{
	ls_buf b = { 0 };
	ls_mlog_pair bad_p[1] = { { 1.5, 0 } };
	ls_mlog_pair nan_p[1] = { { NAN, 1 } };
	ls_mlog_pair bad_y[1] = { { 0.5, 2 } };
	ck_assert_int_eq(ls_mlog_encode(bad_p, 1, NULL, 0, &b), LS_MLOG_ERR_INVALID);
	ck_assert_int_eq(ls_mlog_encode(nan_p, 1, NULL, 0, &b), LS_MLOG_ERR_INVALID);
	ck_assert_int_eq(ls_mlog_encode(bad_y, 1, NULL, 0, &b), LS_MLOG_ERR_INVALID);
	ck_assert_int_eq(ls_mlog_encode(NULL, 1, NULL, 0, &b), LS_MLOG_ERR_INVALID);
	ck_assert_int_eq(ls_mlog_encode(NULL, 0, NULL, 3, &b), LS_MLOG_ERR_INVALID);
	ls_buf_free(&b);
}
END_TEST

/* Re-seal data[0..len) with a valid checksum so structure checks are reached. */
static void reseal(uint8_t *data, size_t len)
{
	uint64_t h = XXH3_64bits(data, len - 8);
	for (int i = 0; i < 8; i++)
		data[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
}

START_TEST(structure_errors)
{
	ls_mlog_pair pairs[1] = { { 0.5, 1 } };
	const uint8_t delta[2] = { 9, 9 };
	ls_buf b = { 0 };
	ck_assert_int_eq(ls_mlog_encode(pairs, 1, delta, 2, &b), LS_MLOG_OK);
	uint8_t *c = malloc(b.len);
	ls_mlog_entry e;
	char err[128];

	memcpy(c, b.data, b.len);
	c[0] = 'X';
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "magic"));

	memcpy(c, b.data, b.len);
	c[4] = 2;
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "version"));

	memcpy(c, b.data, b.len);
	c[5] = 2; /* two pairs announced, one present */
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);

	memcpy(c, b.data, b.len);
	c[6 + 7] = 0x7f; /* p's top byte: 0x7f.. is not in [0,1] */
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "[0,1]"));

	memcpy(c, b.data, b.len);
	c[6 + 8] = 7; /* label */
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "label"));

	memcpy(c, b.data, b.len);
	c[6 + 9] = 1; /* delta length 1, 2 bytes follow */
	reseal(c, b.len);
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "delta length"));

	memcpy(c, b.data, b.len);
	c[6 + 10] ^= 1; /* delta byte, checksum not resealed */
	ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, err, sizeof err), LS_MLOG_ERR_CORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "checksum"));
	free(c);
	ls_buf_free(&b);
}
END_TEST

/* Every truncation and every single-bit flip is refused, never misread. */
START_TEST(truncations_and_flips)
{
	ls_mlog_pair pairs[4] = { { 0.1, 0 }, { 0.9, 1 }, { 0.5, 0 }, { 0.7, 1 } };
	uint8_t delta[40];
	for (size_t i = 0; i < sizeof delta; i++)
		delta[i] = (uint8_t)(i * 37);
	ls_buf b = { 0 };
	ck_assert_int_eq(ls_mlog_encode(pairs, 4, delta, sizeof delta, &b), LS_MLOG_OK);
	ls_mlog_entry e;
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *c = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
		memcpy(c, b.data, n);
		ck_assert_int_eq(ls_mlog_decode(c, n, &e, NULL, 0), LS_MLOG_ERR_CORRUPT);
		free(c);
	}
	uint8_t *c = malloc(b.len);
	for (size_t i = 0; i < b.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			memcpy(c, b.data, b.len);
			c[i] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(ls_mlog_decode(c, b.len, &e, NULL, 0),
					 LS_MLOG_ERR_CORRUPT);
		}
	free(c);
	ls_buf_free(&b);
}
END_TEST

/* The delta slot carries a real FTRL delta that decodes back. */
START_TEST(carries_ftrl_delta)
{
	ls_ftrl_params p;
	ls_ftrl_params_default(&p);
	p.n_buckets = 16;
	const char *names[1] = { "x" };
	char err[128];
	ls_ftrl *base = ls_ftrl_new(&p, names, 1, err, sizeof err);
	ck_assert_ptr_nonnull(base);
	ls_ftrl *local = ls_ftrl_clone(base);
	ls_ftrl_example x;
	ls_ftrl_example_init(&x);
	const char *nn[1] = { "x" };
	double v[1] = { 3.0 };
	ls_ftrl_input in = { .num_names = nn, .num_values = v, .n_num = 1 };
	ck_assert_int_eq(ls_ftrl_example_build(&x, local, &in), 0);
	double pb;
	ck_assert_int_eq(ls_ftrl_learn(local, &x, 1, &pb), 0);
	ls_ftrl *d = NULL;
	ck_assert_int_eq(ls_ftrl_delta(local, base, &d), 0);
	ls_buf db = { 0 };
	ck_assert_int_eq(ls_ftrl_encode(d, &db), 0);
	ls_mlog_pair pair = { pb, 1 };
	ls_buf b = { 0 };
	ck_assert_int_eq(ls_mlog_encode(&pair, 1, db.data, db.len, &b), LS_MLOG_OK);
	ls_mlog_entry e;
	ck_assert_int_eq(ls_mlog_decode(b.data, b.len, &e, err, sizeof err), LS_MLOG_OK);
	ls_ftrl *d2 = NULL;
	ck_assert_int_eq(ls_ftrl_decode(e.delta, e.delta_len, &d2, err, sizeof err), 0);
	ck_assert_int_eq(ls_ftrl_apply_delta(base, d2), 0);
	double p1, p2;
	ck_assert_int_eq(ls_ftrl_predict(base, &x, &p1), 0);
	ck_assert_int_eq(ls_ftrl_predict(local, &x, &p2), 0);
	ck_assert_double_eq_tol(p1, p2, 1e-12);
	ck_assert_uint_eq(ls_ftrl_positives(base), 1);
	ls_ftrl_free(d2);
	ls_ftrl_free(d);
	ls_buf_free(&db);
	ls_ftrl_example_free(&x);
	ls_ftrl_free(local);
	ls_ftrl_free(base);
	ls_mlog_entry_free(&e);
	ls_buf_free(&b);
}
END_TEST

static Suite *mlog_suite(void)
{
	Suite *s = suite_create("mlog");
	TCase *tc = tcase_create("entry");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, round_trip_pairs_and_delta);
	tcase_add_test(tc, empty_entry);
	tcase_add_test(tc, encode_refuses_bad_pairs);
	tcase_add_test(tc, structure_errors);
	tcase_add_test(tc, truncations_and_flips);
	tcase_add_test(tc, carries_ftrl_delta);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mlog_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
