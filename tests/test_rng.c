/*
 * Unit tests for ls_rng (base/): splitmix64 and the seeding built on it.
 * Links only the base library. The generator's output and the samplers
 * on top of it are checked against reference values in test_bandit.c;
 * these pin what other code derives seeds with (the simulator seeds one
 * stream per decision from ls_splitmix64).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "ls_rng.h"

START_TEST(splitmix64_reference)
{
	/* the published splitmix64 sequence from a counter of 0 */
	uint64_t x = 0;
	ck_assert_uint_eq(ls_splitmix64(&x), 0xe220a8397b1dcdafULL);
	ck_assert_uint_eq(ls_splitmix64(&x), 0x6e789e6aa1b965f4ULL);
	ck_assert_uint_eq(ls_splitmix64(&x), 0x06c45d188009454fULL);
	ck_assert_uint_eq(x, 3 * 0x9e3779b97f4a7c15ULL);

	/* the counter wraps instead of overflowing (computed independently) */
	x = UINT64_MAX;
	ck_assert_uint_eq(ls_splitmix64(&x), 0xe4d971771b652c20ULL);
	ck_assert_uint_eq(ls_splitmix64(&x), 0xe99ff867dbf682c9ULL);
}
END_TEST

START_TEST(seed_is_four_splitmix_outputs)
{
	const uint64_t seeds[] = { 0, 1, 42, UINT64_MAX, 0x123456789abcdefULL };
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
		ls_rng r;
		r.has_spare = true;
		r.spare = 1.0;
		ls_rng_seed(&r, seeds[i]);
		uint64_t x = seeds[i];
		for (int k = 0; k < 4; k++)
			ck_assert_uint_eq(r.s[k], ls_splitmix64(&x));
		ck_assert(!r.has_spare);
		ck_assert(r.s[0] | r.s[1] | r.s[2] | r.s[3]);
	}
	ls_rng_seed(NULL, 1); /* ignored, not a crash */
}
END_TEST

START_TEST(uniform_open_and_normal_finite)
{
	ls_rng r;
	ls_rng_seed(&r, 2026);
	double sum = 0;
	int outside = 0, infinite = 0;
	for (int i = 0; i < 100000; i++) {
		double u = ls_rng_uniform(&r);
		outside += !(u > 0.0 && u < 1.0);
		sum += u;
		infinite += !isfinite(ls_rng_normal(&r));
	}
	ck_assert_int_eq(outside, 0);
	ck_assert_int_eq(infinite, 0);
	/* mean of 1e5 uniforms: standard error 0.0009, so 0.005 is > 5 sigma */
	ck_assert_double_eq_tol(sum / 100000, 0.5, 0.005);
}
END_TEST

static Suite *rng_suite(void)
{
	Suite *s = suite_create("rng");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, splitmix64_reference);
	tcase_add_test(tc, seed_is_four_splitmix_outputs);
	tcase_add_test(tc, uniform_open_and_normal_finite);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rng_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
