/*
 * Unit tests for models/ls_ope: IPS and SNIPS values, standard errors,
 * intervals and diagnostics against hand-computed figures; clipping; the
 * all-zero-weight and empty cases; rejection and counting of bad records;
 * streaming = batch = merged chunks = a two-pass long double reference;
 * and the statistical acceptance check: over 200 seeded datasets of 5,000
 * records logged by a known policy, the 95 % intervals cover the true
 * value of two target policies in 90-99 % of the datasets and the mean
 * estimate is within 3 standard errors of the truth.
 *
 * Seeds are fixed, so every run computes the same numbers: a statistical
 * check either passes or fails reproducibly.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_bandit.h"
#include "ls_ope.h"
#include "ls_testutil.h"

#define TOL 1e-12

#define ck_close(got, want, tol, what)                                       \
	ck_assert_msg(fabs((double)(got) - (double)(want)) <= (tol),         \
		      "%s: got %.17g, want %.17g", (what), (double)(got),    \
		      (double)(want))

#define ck_nan(x, what) ck_assert_msg(isnan(x), "%s: %.17g is not NaN", \
				      (what), (double)(x))

typedef struct rec {
	double p, r, pi;
} rec;

static int run(const rec *v, size_t n, double clip, ls_ope_result *out)
{
	ls_ope acc;
	ck_assert_int_eq(ls_ope_init(&acc, clip), LS_OPE_OK);
	for (size_t i = 0; i < n; i++)
		(void)ls_ope_add(&acc, v[i].p, v[i].r, v[i].pi);
	return ls_ope_finish(&acc, out);
}

/* Two results are the same figures bit for bit (NaN equal to NaN). */
static void ck_same_estimate(const ls_ope_estimate *a,
			     const ls_ope_estimate *b)
{
	ck_assert(memcmp(a, b, sizeof *a) == 0);
}

static void ck_same_result(const ls_ope_result *a, const ls_ope_result *b)
{
	ck_assert_uint_eq(a->n, b->n);
	ck_assert_uint_eq(a->n_rejected, b->n_rejected);
	ck_assert_uint_eq(a->n_clipped, b->n_clipped);
	ck_same_estimate(&a->ips, &b->ips);
	ck_same_estimate(&a->snips, &b->snips);
	ck_assert(memcmp(&a->sum_weight, &b->sum_weight, sizeof(double)) == 0);
	ck_assert(memcmp(&a->ess, &b->ess, sizeof(double)) == 0);
	ck_assert(memcmp(&a->max_weight, &b->max_weight, sizeof(double)) == 0);
}

/*
 * Four records (p, r, pi) -> w, x = w r:
 *   (0.5,  1,   1)   w 2  x 2
 *   (0.25, 0,   0.5) w 2  x 0
 *   (0.5,  1,   0)   w 0  x 0
 *   (1,    0.5, 1)   w 1  x 0.5
 */
static const rec FOUR[] = {
	{ 0.5, 1.0, 1.0 }, { 0.25, 0.0, 0.5 }, { 0.5, 1.0, 0.0 },
	{ 1.0, 0.5, 1.0 },
};

START_TEST(test_hand_computed)
{
	ls_ope_result res;
	ck_assert_int_eq(run(FOUR, 4, 0.0, &res), LS_OPE_OK);
	ck_assert_uint_eq(res.n, 4);
	ck_assert_uint_eq(res.n_rejected, 0);
	ck_assert_uint_eq(res.n_clipped, 0);

	/* IPS: mean of x = 2.5 / 4; deviations 1.375, -0.625, -0.625,
	   -0.125, squares sum to 43/16; s^2 = 43/48; SE^2 = s^2 / 4. */
	ck_close(res.ips.value, 0.625, TOL, "ips");
	double ips_se = sqrt(43.0 / 192.0);
	ck_close(res.ips.se, ips_se, TOL, "ips se");
	ck_close(res.ips.ci_low, 0.625 - 1.959963984540054 * ips_se, TOL,
		 "ips lo");
	ck_close(res.ips.ci_high, 0.625 + 1.959963984540054 * ips_se, TOL,
		 "ips hi");

	/* SNIPS: 2.5 / 5; residuals w (r - 0.5) = 1, -1, 0, 0, sum of
	   squares 2; SE^2 = 4/3 * 2 / 5^2 = 8/75. */
	ck_close(res.snips.value, 0.5, TOL, "snips");
	double sn_se = sqrt(8.0 / 75.0);
	ck_close(res.snips.se, sn_se, TOL, "snips se");
	ck_close(res.snips.ci_low, 0.5 - LS_OPE_Z95 * sn_se, TOL, "snips lo");
	ck_close(res.snips.ci_high, 0.5 + LS_OPE_Z95 * sn_se, TOL, "snips hi");

	/* sum w 5, sum w^2 9 */
	ck_close(res.sum_weight, 5.0, TOL, "sum w");
	ck_close(res.mean_weight, 1.25, TOL, "mean w");
	ck_close(res.ess, 25.0 / 9.0, TOL, "ess");
	ck_assert_double_eq(res.max_weight, 2.0);
	ck_assert_double_eq(res.max_raw_weight, 2.0);

	/* the batch form gives the same */
	double p[4], r[4], pi[4];
	for (size_t i = 0; i < 4; i++) {
		p[i] = FOUR[i].p;
		r[i] = FOUR[i].r;
		pi[i] = FOUR[i].pi;
	}
	ls_ope_result batch;
	ck_assert_int_eq(ls_ope_evaluate(p, r, pi, 4, 0.0, &batch), LS_OPE_OK);
	ck_same_result(&res, &batch);

	/* finish does not change the accumulator: finishing twice, or
	   finishing then adding, is the same as never having finished */
	ls_ope acc;
	ck_assert_int_eq(ls_ope_init(&acc, 0.0), LS_OPE_OK);
	for (size_t i = 0; i < 2; i++)
		ck_assert_int_eq(ls_ope_add(&acc, p[i], r[i], pi[i]), LS_OPE_OK);
	ls_ope_result mid;
	ck_assert_int_eq(ls_ope_finish(&acc, &mid), LS_OPE_OK);
	ck_assert_uint_eq(mid.n, 2);
	ck_close(mid.ips.value, 1.0, TOL, "ips of two");
	for (size_t i = 2; i < 4; i++)
		ck_assert_int_eq(ls_ope_add(&acc, p[i], r[i], pi[i]), LS_OPE_OK);
	ls_ope_result end;
	ck_assert_int_eq(ls_ope_finish(&acc, &end), LS_OPE_OK);
	ck_same_result(&res, &end);
}
END_TEST

START_TEST(test_clipping)
{
	ls_ope_result res;
	/* clip 1.5: w = 1.5, 1.5, 0, 1; x = 1.5, 0, 0, 0.5 */
	ck_assert_int_eq(run(FOUR, 4, 1.5, &res), LS_OPE_OK);
	ck_assert_uint_eq(res.n_clipped, 2);
	ck_close(res.ips.value, 0.5, TOL, "ips");
	/* deviations 1, -0.5, -0.5, 0: s^2 = 1.5 / 3, SE^2 = 1/8 */
	ck_close(res.ips.se, sqrt(1.0 / 8.0), TOL, "ips se");
	ck_close(res.snips.value, 0.5, TOL, "snips"); /* 2 / 4 */
	/* residuals 0.75, -0.75, 0, 0: SE^2 = 4/3 * 1.125 / 16 = 3/32 */
	ck_close(res.snips.se, sqrt(3.0 / 32.0), TOL, "snips se");
	ck_close(res.sum_weight, 4.0, TOL, "sum w");
	ck_close(res.ess, 16.0 / 5.5, TOL, "ess");
	ck_assert_double_eq(res.max_weight, 1.5);
	ck_assert_double_eq(res.max_raw_weight, 2.0);

	/* a clip at the largest weight changes nothing and clips nothing
	   (only weights above the clip count) */
	ls_ope_result none, at;
	ck_assert_int_eq(run(FOUR, 4, 0.0, &none), LS_OPE_OK);
	ck_assert_int_eq(run(FOUR, 4, 2.0, &at), LS_OPE_OK);
	ck_assert_uint_eq(at.n_clipped, 0);
	ck_same_result(&none, &at);

	/* a clip makes a weight that would overflow usable */
	ls_ope acc;
	ck_assert_int_eq(ls_ope_init(&acc, 100.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&acc, 4.9e-324, 1.0, 1.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_finish(&acc, &res), LS_OPE_OK);
	ck_assert_uint_eq(res.n_clipped, 1);
	ck_assert_double_eq(res.max_weight, 100.0);
	ck_assert(isinf(res.max_raw_weight));
	ck_close(res.ips.value, 100.0, TOL, "clipped ips");
	ck_close(res.snips.value, 1.0, TOL, "clipped snips");
}
END_TEST

START_TEST(test_on_policy_equals_sample_mean)
{
	/* pi == p: every weight 1, so IPS and SNIPS are the sample mean of
	   the rewards, with its SE s / sqrt(n). */
	const double rw[] = { 0.0, 1.0, 0.3, 0.0, 0.0, 1.0, 0.25, 0.0 };
	const double pr[] = { 0.2, 0.5, 0.3, 0.9, 1.0, 0.01, 0.7, 0.4 };
	size_t n = sizeof rw / sizeof rw[0];
	double mean = 0, ss = 0;
	for (size_t i = 0; i < n; i++)
		mean += rw[i];
	mean /= (double)n;
	for (size_t i = 0; i < n; i++)
		ss += (rw[i] - mean) * (rw[i] - mean);
	double se = sqrt(ss / (double)(n - 1) / (double)n);

	ls_ope_result res;
	ck_assert_int_eq(ls_ope_evaluate(pr, rw, pr, n, 0.0, &res), LS_OPE_OK);
	ck_close(res.ips.value, mean, TOL, "ips");
	ck_close(res.snips.value, mean, TOL, "snips");
	ck_close(res.ips.se, se, TOL, "ips se");
	ck_close(res.snips.se, se, TOL, "snips se");
	ck_close(res.ess, (double)n, TOL, "ess");
	ck_close(res.mean_weight, 1.0, TOL, "mean w");
}
END_TEST

START_TEST(test_zero_weights_empty_single)
{
	/* the target never picks a logged arm: IPS 0 +- 0, SNIPS 0/0 */
	const rec zero[] = {
		{ 0.5, 1.0, 0.0 }, { 0.2, 0.0, 0.0 }, { 0.3, 1.0, 0.0 },
	};
	ls_ope_result res;
	ck_assert_int_eq(run(zero, 3, 0.0, &res), LS_OPE_OK);
	ck_assert_uint_eq(res.n, 3);
	ck_assert_double_eq(res.ips.value, 0.0);
	ck_assert_double_eq(res.ips.se, 0.0);
	ck_assert_double_eq(res.ips.ci_low, 0.0);
	ck_assert_double_eq(res.ips.ci_high, 0.0);
	ck_nan(res.snips.value, "snips");
	ck_nan(res.snips.se, "snips se");
	ck_nan(res.snips.ci_low, "snips lo");
	ck_nan(res.snips.ci_high, "snips hi");
	ck_assert_double_eq(res.sum_weight, 0.0);
	ck_assert_double_eq(res.mean_weight, 0.0);
	ck_assert_double_eq(res.ess, 0.0);
	ck_assert_double_eq(res.max_weight, 0.0);

	/* one weighted record among them: SNIPS is its reward, exactly,
	   with SE 0 (no spread among the weighted records) */
	const rec one[] = {
		{ 0.5, 1.0, 0.0 }, { 0.4, 0.7, 0.8 }, { 0.3, 1.0, 0.0 },
	};
	ck_assert_int_eq(run(one, 3, 0.0, &res), LS_OPE_OK);
	ck_assert_double_eq(res.snips.value, 0.7);
	ck_assert_double_eq(res.snips.se, 0.0);
	ck_close(res.ess, 1.0, TOL, "ess of one");
	ck_close(res.ips.value, 2.0 * 0.7 / 3.0, TOL, "ips");

	/* no record accepted: EMPTY, counters filled, estimates NaN */
	ls_ope acc;
	ck_assert_int_eq(ls_ope_init(&acc, 0.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_finish(&acc, &res), LS_OPE_ERR_EMPTY);
	ck_assert_uint_eq(res.n, 0);
	ck_assert_uint_eq(res.n_rejected, 0);
	ck_nan(res.ips.value, "empty ips");
	ck_nan(res.snips.value, "empty snips");
	ck_nan(res.mean_weight, "empty mean w");
	ck_nan(res.max_weight, "empty max w");
	ck_assert_double_eq(res.sum_weight, 0.0);
	ck_assert_double_eq(res.ess, 0.0);
	ck_assert_int_eq(ls_ope_add(&acc, 0.0, 1.0, 1.0), LS_OPE_ERR_P_NONPOS);
	ck_assert_int_eq(ls_ope_finish(&acc, &res), LS_OPE_ERR_EMPTY);
	ck_assert_uint_eq(res.n_rejected, 1);
	ck_assert_uint_eq(res.rejected_p_nonpos, 1);
	ck_assert_int_eq(ls_ope_evaluate(NULL, NULL, NULL, 0, 0.0, &res),
			 LS_OPE_ERR_EMPTY);

	/* one record: values, but no SE or interval from a single term */
	ck_assert_int_eq(ls_ope_add(&acc, 0.5, 0.5, 1.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_finish(&acc, &res), LS_OPE_OK);
	ck_assert_double_eq(res.ips.value, 1.0);
	ck_assert_double_eq(res.snips.value, 0.5);
	ck_nan(res.ips.se, "ips se of one");
	ck_nan(res.ips.ci_low, "ips lo of one");
	ck_nan(res.snips.se, "snips se of one");
	ck_nan(res.snips.ci_high, "snips hi of one");
	ck_assert_double_eq(res.ess, 1.0);
}
END_TEST

START_TEST(test_invalid_records)
{
	const struct {
		double p, r, pi;
		int rc;
	} bad[] = {
		{ NAN, 0.5, 0.5, LS_OPE_ERR_NAN },
		{ 0.5, NAN, 0.5, LS_OPE_ERR_NAN },
		{ 0.5, 0.5, NAN, LS_OPE_ERR_NAN },
		{ -1.0, NAN, 2.0, LS_OPE_ERR_NAN }, /* NaN is checked first */
		{ 0.0, 0.5, 0.5, LS_OPE_ERR_P_NONPOS },
		{ -0.0, 0.5, 0.5, LS_OPE_ERR_P_NONPOS },
		{ -0.1, 0.5, 0.5, LS_OPE_ERR_P_NONPOS },
		{ -INFINITY, 0.5, 0.5, LS_OPE_ERR_P_NONPOS },
		{ 0.0, 2.0, 2.0, LS_OPE_ERR_P_NONPOS }, /* p before r, pi */
		{ 1.0000001, 0.5, 0.5, LS_OPE_ERR_P_ABOVE_1 },
		{ INFINITY, 0.5, 0.5, LS_OPE_ERR_P_ABOVE_1 },
		{ 0.5, -0.01, 0.5, LS_OPE_ERR_REWARD },
		{ 0.5, 1.01, 0.5, LS_OPE_ERR_REWARD },
		{ 0.5, INFINITY, 0.5, LS_OPE_ERR_REWARD },
		{ 0.5, 2.0, 2.0, LS_OPE_ERR_REWARD }, /* r before pi */
		{ 0.5, 0.5, -1e-9, LS_OPE_ERR_TARGET },
		{ 0.5, 0.5, 1.5, LS_OPE_ERR_TARGET },
		{ 0.5, 0.5, -INFINITY, LS_OPE_ERR_TARGET },
		{ 1e-101, 0.5, 1.0, LS_OPE_ERR_WEIGHT },
		{ 4.9e-324, 0.5, 1.0, LS_OPE_ERR_WEIGHT }, /* pi / p = inf */
	};
	size_t nbad = sizeof bad / sizeof bad[0];
	uint64_t want[6] = { 0 }; /* nan, nonpos, above 1, r, pi, weight */

	/* the bad records interleaved with FOUR give exactly FOUR's result */
	ls_ope acc;
	ck_assert_int_eq(ls_ope_init(&acc, 0.0), LS_OPE_OK);
	for (size_t i = 0; i < nbad; i++) {
		if (i % 5 == 0 && i / 5 < 4) {
			const rec *g = &FOUR[i / 5];
			ck_assert_int_eq(ls_ope_add(&acc, g->p, g->r, g->pi),
					 LS_OPE_OK);
		}
		int rc = ls_ope_add(&acc, bad[i].p, bad[i].r, bad[i].pi);
		ck_assert_msg(rc == bad[i].rc, "record %zu: got %d (%s), want %d",
			      i, rc, ls_ope_result_str(rc), bad[i].rc);
		want[-bad[i].rc - 2]++;
	}
	ls_ope_result res, good;
	ck_assert_int_eq(ls_ope_finish(&acc, &res), LS_OPE_OK);
	ck_assert_int_eq(run(FOUR, 4, 0.0, &good), LS_OPE_OK);
	ck_assert_uint_eq(res.n, 4);
	ck_assert_uint_eq(res.n_rejected, nbad);
	ck_assert_uint_eq(res.rejected_nan, want[0]);
	ck_assert_uint_eq(res.rejected_p_nonpos, want[1]);
	ck_assert_uint_eq(res.rejected_p_above_1, want[2]);
	ck_assert_uint_eq(res.rejected_reward, want[3]);
	ck_assert_uint_eq(res.rejected_target, want[4]);
	ck_assert_uint_eq(res.rejected_weight, want[5]);
	ck_assert_uint_eq(res.rejected_nan, 4);
	ck_assert_uint_eq(res.rejected_weight, 2);
	ck_same_estimate(&res.ips, &good.ips);
	ck_same_estimate(&res.snips, &good.snips);
	ck_assert_double_eq(res.ess, good.ess);

	/* the edges themselves are valid */
	ck_assert_int_eq(ls_ope_init(&acc, 0.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&acc, 1.0, 0.0, 0.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&acc, 1.0, 1.0, 1.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&acc, 1e-100, 1.0, 1.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&acc, 5e-324, 0.0, 0.0), LS_OPE_OK);

	/* the batch form rejects and counts the same way */
	double p[3] = { 0.5, 0.0, 0.5 }, r[3] = { 1.0, 1.0, 3.0 },
	       pi[3] = { 1.0, 1.0, 1.0 };
	ck_assert_int_eq(ls_ope_evaluate(p, r, pi, 3, 0.0, &res), LS_OPE_OK);
	ck_assert_uint_eq(res.n, 1);
	ck_assert_uint_eq(res.n_rejected, 2);
	ck_assert_uint_eq(res.rejected_p_nonpos, 1);
	ck_assert_uint_eq(res.rejected_reward, 1);
	ck_assert_double_eq(res.ips.value, 2.0);

	ck_assert_str_eq(ls_ope_result_str(LS_OPE_OK), "ok");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_INVALID),
			 "invalid argument");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_NAN), "NaN in record");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_P_NONPOS),
			 "propensity <= 0");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_P_ABOVE_1),
			 "propensity > 1");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_REWARD),
			 "reward outside [0,1]");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_TARGET),
			 "target probability outside [0,1]");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_WEIGHT),
			 "weight too large");
	ck_assert_str_eq(ls_ope_result_str(LS_OPE_ERR_EMPTY),
			 "no accepted record");
	ck_assert_str_eq(ls_ope_result_str(42), "unknown result");
}
END_TEST

START_TEST(test_invalid_arguments)
{
	ls_ope acc, other;
	ls_ope_result res;
	ck_assert_int_eq(ls_ope_init(NULL, 0.0), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_init(&acc, -1.0), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_init(&acc, NAN), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_init(&acc, INFINITY), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_init(&acc, 1e101), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_init(&acc, LS_OPE_MAX_WEIGHT), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_init(&acc, 10.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(NULL, 0.5, 0.5, 0.5), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_finish(NULL, &res), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_finish(&acc, NULL), LS_OPE_ERR_INVALID);

	ck_assert_int_eq(ls_ope_init(&other, 5.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_merge(&acc, &other), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_merge(&acc, &acc), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_merge(NULL, &acc), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_merge(&acc, NULL), LS_OPE_ERR_INVALID);

	double v[1] = { 0.5 };
	ck_assert_int_eq(ls_ope_evaluate(NULL, v, v, 1, 0.0, &res),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_evaluate(v, NULL, v, 1, 0.0, &res),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_evaluate(v, v, NULL, 1, 0.0, &res),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_evaluate(v, v, v, 1, 0.0, NULL),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_evaluate(v, v, v, 1, -2.0, &res),
			 LS_OPE_ERR_INVALID);
}
END_TEST

START_TEST(test_targets)
{
	double pi = -1;
	ck_assert_int_eq(ls_ope_target_uniform(4, &pi), LS_OPE_OK);
	ck_assert_double_eq(pi, 0.25);
	ck_assert_int_eq(ls_ope_target_uniform(1, &pi), LS_OPE_OK);
	ck_assert_double_eq(pi, 1.0);
	ck_assert_int_eq(ls_ope_target_uniform(0, &pi), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_uniform(3, NULL), LS_OPE_ERR_INVALID);

	ck_assert_int_eq(ls_ope_target_fixed(3, 2, 2, &pi), LS_OPE_OK);
	ck_assert_double_eq(pi, 1.0);
	ck_assert_int_eq(ls_ope_target_fixed(3, 2, 0, &pi), LS_OPE_OK);
	ck_assert_double_eq(pi, 0.0);
	ck_assert_int_eq(ls_ope_target_fixed(3, 3, 0, &pi), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_fixed(3, 0, 3, &pi), LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_fixed(3, 0, 0, NULL),
			 LS_OPE_ERR_INVALID);

	const double probs[3] = { 0.2, 0.3, 0.5 };
	ck_assert_int_eq(ls_ope_target_vector(probs, 3, 1, &pi), LS_OPE_OK);
	ck_assert_double_eq(pi, 0.3);
	ck_assert_int_eq(ls_ope_target_vector(probs, 3, 3, &pi),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_vector(probs, 0, 0, &pi),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_vector(NULL, 3, 0, &pi),
			 LS_OPE_ERR_INVALID);
	ck_assert_int_eq(ls_ope_target_vector(probs, 3, 0, NULL),
			 LS_OPE_ERR_INVALID);
	/* sums to 0.5: not a probability vector */
	ck_assert_int_eq(ls_ope_target_vector(probs, 2, 0, &pi),
			 LS_OPE_ERR_INVALID);
	const double neg[3] = { -0.1, 0.6, 0.5 };
	ck_assert_int_eq(ls_ope_target_vector(neg, 3, 1, &pi),
			 LS_OPE_ERR_INVALID);
	const double nan3[3] = { NAN, 0.5, 0.5 };
	ck_assert_int_eq(ls_ope_target_vector(nan3, 3, 1, &pi),
			 LS_OPE_ERR_INVALID);
	const double near[2] = { 0.5, 0.5 + 0.5e-6 };
	ck_assert_int_eq(ls_ope_target_vector(near, 2, 1, &pi), LS_OPE_OK);

	/* the bandit's own probability vector is accepted as is */
	ls_bandit_params bp;
	ls_bandit_params_default(&bp);
	char err[128] = "";
	ls_bandit *b = ls_bandit_new(&bp, 3, 0, err, sizeof err);
	ck_assert_msg(b != NULL, "%s", err);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(ls_bandit_update(b, LS_BANDIT_CAMPAIGN,
						  (size_t)i % 3,
						  i % 7 == 0 ? 1.0 : 0.0),
				 LS_BANDIT_OK);
	ls_rng rng;
	ls_rng_seed(&rng, 7);
	double bprobs[3];
	ck_assert_int_eq(ls_bandit_probabilities(b, LS_BANDIT_CAMPAIGN, &rng,
						 bprobs, 3),
			 LS_BANDIT_OK);
	for (size_t a = 0; a < 3; a++) {
		ck_assert_int_eq(ls_ope_target_vector(bprobs, 3, a, &pi),
				 LS_OPE_OK);
		ck_assert_double_eq(pi, bprobs[a]);
	}
	ls_bandit_free(b);
}
END_TEST

/* ---- streaming, batch, merge, reference ---- */

/* A random record: p in [0.01, 1], r 0/1 or fractional, pi in [0,1]
   with some exact zeros. */
static rec random_rec(ls_rng *g)
{
	rec v;
	v.p = 0.01 + 0.99 * ls_rng_uniform(g);
	double u = ls_rng_uniform(g);
	v.r = u < 0.8 ? (ls_rng_uniform(g) < 0.15 ? 1.0 : 0.0)
		      : ls_rng_uniform(g);
	v.pi = ls_rng_uniform(g) < 0.2 ? 0.0 : ls_rng_uniform(g);
	return v;
}

/* Two-pass reference in long double, straight from the formulas. */
static void reference(const rec *v, size_t n, ls_ope_result *out)
{
	long double sx = 0, sw = 0, sw2 = 0;
	for (size_t i = 0; i < n; i++) {
		long double w = (long double)v[i].pi / v[i].p;
		sx += w * v[i].r;
		sw += w;
		sw2 += w * w;
	}
	long double ips = sx / n, sn = sx / sw, dx2 = 0, e2 = 0;
	for (size_t i = 0; i < n; i++) {
		long double w = (long double)v[i].pi / v[i].p;
		long double d = w * v[i].r - ips, e = w * (v[i].r - sn);
		dx2 += d * d;
		e2 += e * e;
	}
	memset(out, 0, sizeof *out);
	out->n = n;
	out->ips.value = (double)ips;
	out->ips.se = (double)sqrtl(dx2 / (n - 1) / n);
	out->snips.value = (double)sn;
	out->snips.se = (double)(sqrtl((long double)n / (n - 1) * e2) / sw);
	out->sum_weight = (double)sw;
	out->ess = (double)(sw * sw / sw2);
}

static void ck_rel(double got, double want, double rel, const char *what)
{
	ck_assert_msg(fabs(got - want) <= rel * fabs(want),
		      "%s: got %.17g, want %.17g (rel %.3g)", what, got, want,
		      rel);
}

static void ck_matches_reference(const ls_ope_result *got,
				 const ls_ope_result *ref, double rel)
{
	ck_assert_uint_eq(got->n, ref->n);
	ck_rel(got->ips.value, ref->ips.value, rel, "ips");
	ck_rel(got->ips.se, ref->ips.se, rel, "ips se");
	ck_rel(got->snips.value, ref->snips.value, rel, "snips");
	ck_rel(got->snips.se, ref->snips.se, rel, "snips se");
	ck_rel(got->sum_weight, ref->sum_weight, rel, "sum w");
	ck_rel(got->ess, ref->ess, rel, "ess");
}

START_TEST(test_streaming_batch_merge)
{
	enum { N = 200000 };
	rec *v = malloc(N * sizeof *v);
	double *p = malloc(N * sizeof *p), *r = malloc(N * sizeof *r),
	       *pi = malloc(N * sizeof *pi);
	ck_assert(v && p && r && pi);
	ls_rng g;
	ls_rng_seed(&g, 20240601);
	for (size_t i = 0; i < N; i++) {
		v[i] = random_rec(&g);
		p[i] = v[i].p;
		r[i] = v[i].r;
		pi[i] = v[i].pi;
	}

	ls_ope_result stream, batch, ref;
	ck_assert_int_eq(run(v, N, 0.0, &stream), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_evaluate(p, r, pi, N, 0.0, &batch), LS_OPE_OK);
	ck_same_result(&stream, &batch);
	reference(v, N, &ref);
	ck_matches_reference(&stream, &ref, 1e-12);

	/* three chunks merged, one of them merged into an empty accumulator
	   and an empty one merged in, give the same up to rounding */
	size_t cut[4] = { 0, 1, 70001, N };
	ls_ope total, part;
	ck_assert_int_eq(ls_ope_init(&total, 0.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&total, 0.0, 0.5, 0.5),
			 LS_OPE_ERR_P_NONPOS);
	for (size_t k = 0; k < 3; k++) {
		ck_assert_int_eq(ls_ope_init(&part, 0.0), LS_OPE_OK);
		size_t refused = 0;
		for (size_t i = cut[k]; i < cut[k + 1]; i++)
			refused += ls_ope_add(&part, p[i], r[i], pi[i]) !=
				   LS_OPE_OK;
		ck_assert_uint_eq(refused, 0);
		ck_assert_int_eq(ls_ope_merge(&total, &part), LS_OPE_OK);
	}
	ck_assert_int_eq(ls_ope_init(&part, 0.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_add(&part, 0.5, 0.5, 7.0), LS_OPE_ERR_TARGET);
	ck_assert_int_eq(ls_ope_merge(&total, &part), LS_OPE_OK);
	ls_ope_result merged;
	ck_assert_int_eq(ls_ope_finish(&total, &merged), LS_OPE_OK);
	ck_matches_reference(&merged, &ref, 1e-12);
	ck_assert_uint_eq(merged.n_rejected, 2);
	ck_assert_uint_eq(merged.rejected_p_nonpos, 1);
	ck_assert_uint_eq(merged.rejected_target, 1);
	ck_assert_double_eq(merged.max_weight, stream.max_weight);

	/* clipping merges too */
	ls_ope a, b2;
	ck_assert_int_eq(ls_ope_init(&a, 3.0), LS_OPE_OK);
	ck_assert_int_eq(ls_ope_init(&b2, 3.0), LS_OPE_OK);
	for (size_t i = 0; i < N; i++)
		(void)ls_ope_add(i < N / 2 ? &a : &b2, p[i], r[i], pi[i]);
	ck_assert_int_eq(ls_ope_merge(&a, &b2), LS_OPE_OK);
	ls_ope_result cm, cs;
	ck_assert_int_eq(ls_ope_finish(&a, &cm), LS_OPE_OK);
	ck_assert_int_eq(run(v, N, 3.0, &cs), LS_OPE_OK);
	ck_assert_uint_eq(cm.n_clipped, cs.n_clipped);
	ck_assert_uint_gt(cs.n_clipped, 0);
	ck_matches_reference(&cm, &cs, 1e-12);

	free(v);
	free(p);
	free(r);
	free(pi);
}
END_TEST

/*
 * Rewards 0.3 and 0.3 + 1e-9 with weights from 0.01 to 100: the SNIPS
 * residuals are ~1e-9 against terms of ~1e4, so an uncentred formula
 * (sum w^2 r^2 - 2 V sum w^2 r + V^2 sum w^2) would return rounding noise
 * for the SE. The centred updates match the two-pass reference.
 */
START_TEST(test_small_variance_is_stable)
{
	enum { N = 1000000 };
	rec *v = malloc(N * sizeof *v);
	ck_assert_ptr_nonnull(v);
	ls_rng g;
	ls_rng_seed(&g, 99);
	for (size_t i = 0; i < N; i++) {
		v[i].p = 0.01 + 0.99 * ls_rng_uniform(&g);
		v[i].pi = ls_rng_uniform(&g);
		v[i].r = ls_rng_uniform(&g) < 0.5 ? 0.3 : 0.3 + 1e-9;
	}
	ls_ope_result res, ref;
	ck_assert_int_eq(run(v, N, 0.0, &res), LS_OPE_OK);
	reference(v, N, &ref);
	ck_matches_reference(&res, &ref, 1e-6);
	ck_assert(res.snips.se > 0 && res.snips.se < 1e-11);

	/* a constant reward: SNIPS is exactly it, with SE exactly 0 */
	for (size_t i = 0; i < N; i++)
		v[i].r = 0.3;
	ck_assert_int_eq(run(v, N, 0.0, &res), LS_OPE_OK);
	ck_assert_double_eq(res.snips.value, 0.3);
	ck_assert_double_eq(res.snips.se, 0.0);
	free(v);
}
END_TEST

/* ---- statistical acceptance ---- */

#define DATASETS 200
#define RECORDS 5000

static const double LOG_P[3] = { 0.2, 0.3, 0.5 };
static const double RATE[3] = { 0.10, 0.10, 0.12 };

typedef struct tally {
	unsigned covered;
	double sum, sum2; /* of the estimates */
	double sum_se;
} tally;

static void tally_add(tally *t, const ls_ope_estimate *e, double truth)
{
	if (e->ci_low <= truth && truth <= e->ci_high)
		t->covered++;
	t->sum += e->value;
	t->sum2 += e->value * e->value;
	t->sum_se += e->se;
}

static void ck_tally(const tally *t, double truth, const char *what)
{
	double k = DATASETS;
	double cover = t->covered / k;
	double mean = t->sum / k;
	double sd = sqrt((t->sum2 - k * mean * mean) / (k - 1));
	double se_mean = sd / sqrt(k);
	fprintf(stderr,
		"%-14s truth %.5f coverage %5.1f%% mean %.5f sd %.5f "
		"mean reported se %.5f |bias|/se_mean %.2f\n",
		what, truth, 100 * cover, mean, sd, t->sum_se / k,
		fabs(mean - truth) / se_mean);
	ck_assert_msg(cover >= 0.90 && cover <= 0.99,
		      "%s: 95%% interval covered the truth in %.1f%%", what,
		      100 * cover);
	ck_assert_msg(fabs(mean - truth) <= 3 * se_mean,
		      "%s: mean estimate %.5f, truth %.5f, 3 se = %.5f", what,
		      mean, truth, 3 * se_mean);
}

START_TEST(test_coverage)
{
	const double truth_fixed = RATE[2];
	const double truth_unif = (RATE[0] + RATE[1] + RATE[2]) / 3.0;
	tally t[4] = { 0 }; /* fixed IPS, fixed SNIPS, uniform IPS, SNIPS */

	for (unsigned d = 0; d < DATASETS; d++) {
		ls_rng g;
		ls_rng_seed(&g, 0x0BE0000u + d);
		ls_ope fixed, unif;
		ck_assert_int_eq(ls_ope_init(&fixed, 0.0), LS_OPE_OK);
		ck_assert_int_eq(ls_ope_init(&unif, 0.0), LS_OPE_OK);
		uint64_t n_arm2 = 0;
		/* one assertion after the loop: Check writes to a pipe for
		   every assertion, passing ones included, which would cost
		   more than the estimators here */
		int failed = 0;
		for (unsigned i = 0; i < RECORDS; i++) {
			double u = ls_rng_uniform(&g);
			size_t arm = u < LOG_P[0] ? 0
				     : u < LOG_P[0] + LOG_P[1] ? 1 : 2;
			double r = ls_rng_uniform(&g) < RATE[arm] ? 1.0 : 0.0;
			double pf, pu;
			failed |= ls_ope_target_fixed(3, 2, arm, &pf);
			failed |= ls_ope_target_uniform(3, &pu);
			failed |= ls_ope_add(&fixed, LOG_P[arm], r, pf);
			failed |= ls_ope_add(&unif, LOG_P[arm], r, pu);
			n_arm2 += arm == 2;
		}
		ck_assert_int_eq(failed, 0);
		ls_ope_result rf, ru;
		ck_assert_int_eq(ls_ope_finish(&fixed, &rf), LS_OPE_OK);
		ck_assert_int_eq(ls_ope_finish(&unif, &ru), LS_OPE_OK);
		/* "always arm 2" weighs the arm-2 records 2 each and the rest
		   0: its ESS is exactly the number of arm-2 records */
		ck_close(rf.ess, (double)n_arm2, 1e-9, "ess of fixed");
		ck_assert_double_eq(rf.max_weight, 2.0);
		ck_assert_uint_eq(rf.n, RECORDS);
		tally_add(&t[0], &rf.ips, truth_fixed);
		tally_add(&t[1], &rf.snips, truth_fixed);
		tally_add(&t[2], &ru.ips, truth_unif);
		tally_add(&t[3], &ru.snips, truth_unif);
	}
	ck_tally(&t[0], truth_fixed, "arm 2 IPS");
	ck_tally(&t[1], truth_fixed, "arm 2 SNIPS");
	ck_tally(&t[2], truth_unif, "uniform IPS");
	ck_tally(&t[3], truth_unif, "uniform SNIPS");
}
END_TEST

/*
 * End to end with the real logging policy: a Thompson-sampling campaign
 * learns while it logs (its propensities change and are Monte Carlo
 * estimates), and the uniform target is evaluated from its log. One
 * seeded dataset, so the check is the estimate within 4 of its own SEs.
 */
START_TEST(test_bandit_logged)
{
	ls_bandit_params bp;
	ls_bandit_params_default(&bp);
	bp.min_share = 0.05;
	char err[128] = "";
	ls_bandit *b = ls_bandit_new(&bp, 3, 0, err, sizeof err);
	ck_assert_msg(b != NULL, "%s", err);
	ls_rng g, world;
	ls_rng_seed(&g, 11);
	ls_rng_seed(&world, 12);
	ls_ope unif;
	ck_assert_int_eq(ls_ope_init(&unif, 0.0), LS_OPE_OK);
	const double rate[3] = { 0.05, 0.10, 0.30 };
	const double truth = (rate[0] + rate[1] + rate[2]) / 3.0;
	for (int i = 0; i < 3000; i++) {
		size_t arm;
		double prop;
		ck_assert_int_eq(ls_bandit_decide(b, LS_BANDIT_CAMPAIGN, &g,
						  &arm, &prop),
				 LS_BANDIT_OK);
		ck_assert(prop >= 0.05);
		double r = ls_rng_uniform(&world) < rate[arm] ? 1.0 : 0.0;
		ck_assert_int_eq(ls_bandit_update(b, LS_BANDIT_CAMPAIGN, arm,
						  r),
				 LS_BANDIT_OK);
		double pu;
		ck_assert_int_eq(ls_ope_target_uniform(3, &pu), LS_OPE_OK);
		ck_assert_int_eq(ls_ope_add(&unif, prop, r, pu), LS_OPE_OK);
	}
	ls_ope_result res;
	ck_assert_int_eq(ls_ope_finish(&unif, &res), LS_OPE_OK);
	fprintf(stderr,
		"bandit-logged uniform: truth %.4f IPS %.4f +- %.4f SNIPS "
		"%.4f +- %.4f mean w %.3f ess %.0f of %llu, max w %.2f\n",
		truth, res.ips.value, res.ips.se, res.snips.value,
		res.snips.se, res.mean_weight, res.ess,
		(unsigned long long)res.n, res.max_weight);
	ck_assert(fabs(res.ips.value - truth) <= 4 * res.ips.se);
	ck_assert(fabs(res.snips.value - truth) <= 4 * res.snips.se);
	/* the logger favoured the best arm, so the uniform target leans
	   on the rarely played ones: fewer effective records than logged */
	ck_assert(res.ess < 0.9 * (double)res.n);
	ls_bandit_free(b);
}
END_TEST

static Suite *ope_suite(void)
{
	Suite *s = suite_create("ope");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_hand_computed);
	tcase_add_test(tc, test_clipping);
	tcase_add_test(tc, test_on_policy_equals_sample_mean);
	tcase_add_test(tc, test_zero_weights_empty_single);
	tcase_add_test(tc, test_invalid_records);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_targets);
	tcase_add_test(tc, test_streaming_batch_merge);
	tcase_add_test(tc, test_small_variance_is_stable);
	tcase_add_test(tc, test_coverage);
	tcase_add_test(tc, test_bandit_logged);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(ope_suite(), CK_NORMAL);
}
