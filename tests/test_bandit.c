/*
 * Unit tests for models/ls_bandit: the generator (golden values, open
 * interval, reproducibility), the moments of the Gamma and Beta samplers
 * against their standard errors, Thompson sampling on a simulated
 * 3-arm problem (the acceptance criterion), the bucket fallback,
 * the exploration floor, Monte Carlo propensities against an exact
 * two-arm value, the read statistics, additive counters and argument
 * checking.
 *
 * Statistical tolerances are 5 standard errors of the estimate, so a
 * correct sampler fails one check with probability ~6e-7; the seeds are
 * fixed, so a run either passes or fails reproducibly.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_bandit.h"
#include "ls_testutil.h"
#include "ls_utf8.h"

#define SIGMAS 5.0

/* ---- helpers ---- */

static ls_bandit *mk(size_t n_arms, size_t n_buckets, double min_share,
		     uint64_t min_bucket_trials)
{
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	p.min_share = min_share;
	p.min_bucket_trials = min_bucket_trials;
	char err[256] = "";
	ls_bandit *b = ls_bandit_new(&p, n_arms, n_buckets, err, sizeof err);
	ck_assert_msg(b != NULL, "campaign rejected: %s", err);
	return b;
}

typedef struct moments {
	double mean, var, m4; /* sample mean, variance, 4th central moment */
} moments;

static moments moments_of(const double *x, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += x[i];
	double mean = s / (double)n, s2 = 0, s4 = 0;
	for (size_t i = 0; i < n; i++) {
		double d = x[i] - mean;
		s2 += d * d;
		s4 += d * d * d * d;
	}
	moments m = { mean, s2 / (double)(n - 1), s4 / (double)n };
	return m;
}

/* |got - want| <= SIGMAS * se, with a message naming what is checked. */
#define ck_within(got, want, se, what)                                       \
	ck_assert_msg(fabs((got) - (want)) <= SIGMAS * (se),                 \
		      "%s: got %.6g, want %.6g +- %.3g (5 se)", (what),      \
		      (double)(got), (double)(want), SIGMAS * (se))

/* Multiplicative inverse of an odd a modulo 2^64 (Newton). */
static uint64_t inv_odd(uint64_t a)
{
	uint64_t x = a;
	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t rotr(uint64_t x, int k)
{
	return (x >> k) | (x << (64 - k));
}

/* An rng whose next output is exactly out (xoshiro256** outputs
   rotl(s1 * 5, 7) * 9; s0, s2, s3 only need not all be zero with s1). */
static void rng_forcing(ls_rng *r, uint64_t out)
{
	ls_rng_seed(r, 1);
	r->s[1] = inv_odd(5) * rotr(out * inv_odd(9), 7);
}

/* P(X_b > X_a) for X_a ~ Beta(aa, ba), X_b ~ Beta(ab, bb), integer ab
   (Evan Miller's closed form). */
static double p_b_beats_a(double aa, double ba, double ab, double bb)
{
	double lb_a = lgamma(aa) + lgamma(ba) - lgamma(aa + ba);
	double total = 0;
	for (int i = 0; i < (int)ab; i++) {
		double lb1 = lgamma(aa + i) + lgamma(ba + bb) -
			     lgamma(aa + i + ba + bb);
		double lb2 = lgamma(1.0 + i) + lgamma(bb) - lgamma(1.0 + i + bb);
		total += exp(lb1 - log(bb + i) - lb2 - lb_a);
	}
	return total;
}

/* ---- randomness ---- */

START_TEST(test_rng_golden_and_reproducible)
{
	/* Reference values of xoshiro256** seeded through splitmix64,
	   computed with an independent implementation of both. */
	static const uint64_t want0[3] = { 0x99ec5f36cb75f2b4ULL,
					   0xbf6e1f784956452aULL,
					   0x1a5f849d4933e6e0ULL };
	static const uint64_t want42[3] = { 0x15780b2e0c2ec716ULL,
					    0x6104d9866d113a7eULL,
					    0xae17533239e499a1ULL };
	ls_rng r;
	ls_rng_seed(&r, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(ls_rng_next(&r), want0[i]);
	ls_rng_seed(&r, 42);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(ls_rng_next(&r), want42[i]);

	/* same seed, same sequence through every sampler; another seed,
	   another sequence */
	ls_rng a, b, c;
	ls_rng_seed(&a, 12345);
	ls_rng_seed(&b, 12345);
	ls_rng_seed(&c, 12346);
	int differ = 0, bad = 0;
	for (int i = 0; i < 10000; i++) {
		double xa = 0, xb = 1, xc = 2, ya = 0, yb = 1, yc = 2;
		bad += ls_rng_gamma(&a, 0.3 + i % 7, &xa) != 0;
		bad += ls_rng_gamma(&b, 0.3 + i % 7, &xb) != 0;
		bad += ls_rng_gamma(&c, 0.3 + i % 7, &xc) != 0;
		bad += ls_rng_beta(&a, 0.5, 2 + i % 3, &ya) != 0;
		bad += ls_rng_beta(&b, 0.5, 2 + i % 3, &yb) != 0;
		bad += ls_rng_beta(&c, 0.5, 2 + i % 3, &yc) != 0;
		double na = ls_rng_normal(&a), nb = ls_rng_normal(&b);
		double nc = ls_rng_normal(&c);
		bad += !(xa == xb && ya == yb && na == nb);
		differ += xa != xc || ya != yc || na != nc;
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(differ, 10000);
	ck_assert(memcmp(a.s, b.s, sizeof a.s) == 0);

	/* reseeding forgets the spare normal */
	ls_rng_seed(&a, 7);
	double first = ls_rng_normal(&a);
	ls_rng_seed(&a, 7);
	ck_assert(ls_rng_normal(&a) == first);
}
END_TEST

START_TEST(test_uniform_open_interval)
{
	/* the extremes of the generator's output map inside (0,1) */
	ls_rng r;
	rng_forcing(&r, 0);
	ck_assert(ls_rng_next(&r) == 0);
	rng_forcing(&r, 0);
	double lo = ls_rng_uniform(&r);
	rng_forcing(&r, UINT64_MAX);
	double hi = ls_rng_uniform(&r);
	ck_assert(lo > 0.0 && lo == 0x1p-53);
	ck_assert(hi < 1.0 && hi == 1.0 - 0x1p-53);
	ck_assert(isfinite(log(lo)) && isfinite(log1p(-hi)));

	const size_t n = 1000000;
	ls_rng_seed(&r, 3);
	double s = 0, mn = 1, mx = 0;
	size_t below_tenth = 0, outside = 0;
	/* no ck_assert in hot loops: each one is a write to Check's pipe */
	for (size_t i = 0; i < n; i++) {
		double u = ls_rng_uniform(&r);
		outside += !(u > 0.0 && u < 1.0);
		s += u;
		mn = u < mn ? u : mn;
		mx = u > mx ? u : mx;
		below_tenth += u < 0.1;
	}
	ck_within(s / (double)n, 0.5, sqrt(1.0 / 12.0 / (double)n),
		  "uniform mean");
	ck_within((double)below_tenth / (double)n, 0.1,
		  sqrt(0.09 / (double)n), "P(U < 0.1)");
	ck_assert_uint_eq(outside, 0);
	ck_assert(mn < 1e-5 && mx > 1 - 1e-5);
}
END_TEST

START_TEST(test_normal_moments)
{
	const size_t n = 200000;
	double *x = malloc(n * sizeof *x);
	ck_assert_ptr_nonnull(x);
	ls_rng r;
	ls_rng_seed(&r, 11);
	size_t below = 0;
	for (size_t i = 0; i < n; i++) {
		x[i] = ls_rng_normal(&r);
		below += x[i] < -1.0;
	}
	moments m = moments_of(x, n);
	ck_within(m.mean, 0.0, sqrt(1.0 / (double)n), "normal mean");
	ck_within(m.var, 1.0, sqrt(2.0 / (double)n), "normal variance");
	double p = 0.15865525393145707; /* Phi(-1) */
	ck_within((double)below / (double)n, p,
		  sqrt(p * (1 - p) / (double)n), "P(Z < -1)");
	free(x);
}
END_TEST

START_TEST(test_gamma_moments)
{
	/* Gamma(k, 1): mean k, variance k, 4th central moment 3k(k + 2), so
	   the sample variance has standard error sqrt((2k^2 + 6k) / n). */
	static const double ks[] = { 0.05, 0.3, 1.0, 2.5, 10.0, 1000.0 };
	const size_t n = 200000;
	double *x = malloc(n * sizeof *x);
	ck_assert_ptr_nonnull(x);
	ls_rng r;
	ls_rng_seed(&r, 2024);
	for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
		double k = ks[j];
		size_t above1 = 0, bad = 0;
		for (size_t i = 0; i < n; i++) {
			bad += ls_rng_gamma(&r, k, &x[i]) != 0;
			bad += !(x[i] >= 0.0 && isfinite(x[i]));
			above1 += x[i] > 1.0;
		}
		ck_assert_uint_eq(bad, 0);
		moments m = moments_of(x, n);
		char what[64];
		snprintf(what, sizeof what, "Gamma(%g) mean", k);
		ck_within(m.mean, k, sqrt(k / (double)n), what);
		snprintf(what, sizeof what, "Gamma(%g) variance", k);
		ck_within(m.var, k, sqrt((2 * k * k + 6 * k) / (double)n),
			  what);
		if (k == 1.0) { /* Exp(1): P(X > 1) = 1/e */
			double p = exp(-1.0);
			ck_within((double)above1 / (double)n, p,
				  sqrt(p * (1 - p) / (double)n),
				  "Gamma(1) P(X > 1)");
		}
	}
	free(x);
}
END_TEST

START_TEST(test_beta_moments)
{
	static const double ab[][2] = {
		{ 1, 1 }, { 0.5, 0.5 }, { 2, 5 }, { 0.2, 3 },
		{ 30, 970 }, { 0.01, 0.01 }, { 4, 0.7 }, { 1e4, 2e4 },
	};
	const size_t n = 200000;
	double *x = malloc(n * sizeof *x);
	ck_assert_ptr_nonnull(x);
	ls_rng r;
	ls_rng_seed(&r, 77);
	for (size_t j = 0; j < sizeof ab / sizeof ab[0]; j++) {
		double a = ab[j][0], b = ab[j][1];
		size_t below = 0, bad = 0;
		for (size_t i = 0; i < n; i++) {
			bad += ls_rng_beta(&r, a, b, &x[i]) != 0;
			bad += !(x[i] >= 0.0 && x[i] <= 1.0);
			below += x[i] < 0.25;
		}
		ck_assert_uint_eq(bad, 0);
		double s = a + b;
		double mean = a / s, var = a * b / (s * s * (s + 1));
		moments m = moments_of(x, n);
		char what[64];
		snprintf(what, sizeof what, "Beta(%g,%g) mean", a, b);
		ck_within(m.mean, mean, sqrt(var / (double)n), what);
		snprintf(what, sizeof what, "Beta(%g,%g) variance", a, b);
		/* standard error of the sample variance from the sample's
		   own fourth moment */
		ck_within(m.var, var,
			  sqrt((m.m4 - m.var * m.var) / (double)n), what);
		ck_assert_double_eq_tol(ls_beta_mean(a, b), mean, 1e-15);
		if (a == 0.5 && b == 0.5) { /* arcsine: P(X < 1/4) = 1/3 */
			double p = 1.0 / 3.0;
			ck_within((double)below / (double)n, p,
				  sqrt(p * (1 - p) / (double)n),
				  "Beta(.5,.5) P(X < 1/4)");
		}
		if (a == 2 && b == 5) { /* CDF 1 - (1-x)^5 (1 + 5x) */
			double p = 1 - pow(0.75, 5) * 2.25;
			ck_within((double)below / (double)n, p,
				  sqrt(p * (1 - p) / (double)n),
				  "Beta(2,5) P(X < 1/4)");
		}
	}
	free(x);
}
END_TEST

/* ---- Thompson sampling ---- */

START_TEST(test_thompson_acceptance)
{
	/*
	 * The acceptance criterion: three variants converting at
	 * 10 %, 10 % and 12 %, 20,000 trials, 20 seeds; the best arm gets
	 * at least 90 % of the second half of the trials on average. Pure
	 * Thompson sampling (min_share 0), decisions without propensities,
	 * every reward resolved before the next decision.
	 */
	static const double rate[3] = { 0.10, 0.10, 0.12 };
	const int seeds = 20, trials = 20000;
	double sum_share = 0, min_share = 1;
	double t0 = ls_test_now_s();
	for (int seed = 1; seed <= seeds; seed++) {
		ls_bandit *b = mk(3, 0, 0.0, 0);
		ls_rng pol, env;
		ls_rng_seed(&pol, (uint64_t)seed);
		ls_rng_seed(&env, 1000u + (uint64_t)seed);
		int best_late = 0, bad = 0;
		for (int t = 0; t < trials; t++) {
			size_t arm = 0;
			bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &pol,
						&arm) != 0;
			double reward = ls_rng_uniform(&env) < rate[arm];
			bad += ls_bandit_update(b, LS_BANDIT_CAMPAIGN, arm,
						reward) != 0;
			if (t >= trials / 2 && arm == 2)
				best_late++;
		}
		ck_assert_int_eq(bad, 0);
		double share = (double)best_late / (trials / 2);
		sum_share += share;
		min_share = share < min_share ? share : min_share;
		ck_assert_uint_eq(ls_bandit_bucket_trials(b, LS_BANDIT_CAMPAIGN),
				  (uint64_t)trials);
		ls_bandit_free(b);
	}
	double mean_share = sum_share / seeds;
	fprintf(stderr, "thompson 10/10/12 %%: best arm %.4f of the last "
		"half on average over %d seeds (worst seed %.4f), %.2f s\n",
		mean_share, seeds, min_share, ls_test_now_s() - t0);
	ck_assert_msg(mean_share >= 0.90, "best arm share %.4f < 0.90",
		      mean_share);
}
END_TEST

START_TEST(test_ties_lowest_index)
{
	/* Posteriors so concentrated at 1 that every draw rounds to 1.0:
	   ties, which go to the lowest index. */
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	p.min_share = 0;
	p.prior_b = 1e-300;
	ls_bandit *b = ls_bandit_new(&p, 4, 0, NULL, 0);
	ck_assert_ptr_nonnull(b);
	ls_rng r;
	ls_rng_seed(&r, 5);
	int bad = 0;
	for (int i = 0; i < 1000; i++) {
		size_t arm = 99;
		bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &r, &arm) != 0;
		bad += arm != 0;
	}
	ck_assert_int_eq(bad, 0);
	ls_bandit_free(b);
}
END_TEST

START_TEST(test_bucket_fallback)
{
	/* Campaign-wide, arm 0 is clearly best; bucket 0 has 10 trials all
	   favouring arm 2 (thin), bucket 1 has 200 favouring arm 2. */
	ls_bandit *b = mk(3, 2, 0.0, 100);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 0, 2000,
					      600), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 1, 2000,
					      100), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 2, 2000,
					      100), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, 0, 2, 10, 10), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, 1, 0, 50, 3), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, 1, 1, 50, 2), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, 1, 2, 100, 60), 0);
	/* bucket updates also counted campaign-wide */
	uint64_t t;
	double rw;
	ck_assert_int_eq(ls_bandit_counts(b, LS_BANDIT_CAMPAIGN, 2, &t, &rw),
			 0);
	ck_assert_uint_eq(t, 2110);
	ck_assert_double_eq(rw, 170);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, 0), 10);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, 1), 200);
	ck_assert(ls_bandit_uses_campaign(b, 0));
	ck_assert(!ls_bandit_uses_campaign(b, 1));
	ck_assert(!ls_bandit_uses_campaign(b, LS_BANDIT_CAMPAIGN));

	/* thin bucket: the same arms and probabilities as campaign-wide,
	   draw for draw */
	ls_rng r1, r2;
	ls_rng_seed(&r1, 9);
	ls_rng_seed(&r2, 9);
	int arm0 = 0, arm2_own = 0, bad = 0;
	for (int i = 0; i < 2000; i++) {
		size_t a1 = 9, a2 = 8;
		bad += ls_bandit_choose(b, 0, &r1, &a1) != 0;
		bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &r2, &a2) != 0;
		bad += a1 != a2;
		arm0 += a1 == 0;
	}
	ck_assert_int_eq(bad, 0);
	double p1[3], p2[3];
	ck_assert_int_eq(ls_bandit_probabilities(b, 0, &r1, p1, 3), 0);
	ck_assert_int_eq(ls_bandit_probabilities(b, LS_BANDIT_CAMPAIGN, &r2,
						 p2, 3), 0);
	ck_assert_mem_eq(p1, p2, sizeof p1);
	ck_assert_int_eq(arm0, 2000);

	/* bucket past the threshold: its own posterior (arm 2) */
	for (int i = 0; i < 2000; i++) {
		size_t a = 0;
		bad += ls_bandit_choose(b, 1, &r1, &a) != 0;
		arm2_own += a == 2;
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(arm2_own, 2000);

	/* the threshold is "fewer than": 99 thin, 100 own */
	ls_bandit *c = mk(2, 1, 0.0, 100);
	ck_assert_int_eq(ls_bandit_add_counts(c, LS_BANDIT_CAMPAIGN, 0, 5000,
					      2500), 0);
	ck_assert_int_eq(ls_bandit_add_counts(c, 0, 1, 99, 99), 0);
	ck_assert(ls_bandit_uses_campaign(c, 0));
	ck_assert_int_eq(ls_bandit_update(c, 0, 1, 1.0), 0);
	ck_assert(!ls_bandit_uses_campaign(c, 0));
	ls_bandit_free(c);

	/* min_bucket_trials 0: an empty bucket uses its own (prior) */
	ls_bandit *d = mk(2, 1, 0.0, 0);
	ck_assert(!ls_bandit_uses_campaign(d, 0));
	ls_bandit_free(d);
	ls_bandit_free(b);
}
END_TEST

START_TEST(test_min_share_floor)
{
	/* Arm 1 is hopeless (0 of 10,000); min_share 0.05 keeps it at
	   0.05 + 0.85 * P_TS(1) = 0.05 of decisions. */
	const double m = 0.05;
	ls_bandit *b = mk(3, 0, m, 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 0, 10000,
					      3000), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 1, 10000,
					      0), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 2, 10000,
					      3100), 0);
	ls_rng r;
	ls_rng_seed(&r, 31);
	const int n = 200000;
	int count[3] = { 0, 0, 0 }, bad = 0;
	for (int i = 0; i < n; i++) {
		size_t a = 0;
		bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &r, &a) != 0;
		count[a]++;
	}
	ck_assert_int_eq(bad, 0);
	ck_within((double)count[1] / n, m, sqrt(m * (1 - m) / n),
		  "hopeless arm share");
	/* and the policy's stated probabilities match what it does */
	double p[3];
	ck_assert_int_eq(ls_bandit_probabilities(b, LS_BANDIT_CAMPAIGN, &r, p,
						 3), 0);
	ck_assert_double_eq(p[1], m); /* P_TS(1) is 0 in every draw */
	for (int i = 0; i < 3; i++) {
		/* the frequency's standard error plus the estimate's (M) */
		double se = sqrt(p[i] * (1 - p[i]) / n) +
			    0.9 * sqrt(0.25 / LS_BANDIT_DEFAULT_MC_DRAWS);
		ck_within((double)count[i] / n, p[i], se, "arm frequency");
	}

	/* min_share = 1/n: uniform */
	ls_bandit *u = mk(4, 0, 0.25, 0);
	ck_assert_int_eq(ls_bandit_add_counts(u, LS_BANDIT_CAMPAIGN, 3, 1000,
					      900), 0);
	ck_assert_int_eq(ls_bandit_probabilities(u, LS_BANDIT_CAMPAIGN, &r, p,
						 3), LS_BANDIT_ERR_INVALID);
	double q[4];
	ck_assert_int_eq(ls_bandit_probabilities(u, LS_BANDIT_CAMPAIGN, &r, q,
						 4), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_double_eq(q[i], 0.25);
	int c3 = 0;
	for (int i = 0; i < 40000; i++) {
		size_t a = 0;
		bad += ls_bandit_choose(u, LS_BANDIT_CAMPAIGN, &r, &a) != 0;
		c3 += a == 3;
	}
	ck_assert_int_eq(bad, 0);
	ck_within(c3 / 40000.0, 0.25, sqrt(0.1875 / 40000), "uniform share");
	ls_bandit_free(u);
	ls_bandit_free(b);
}
END_TEST

START_TEST(test_propensities)
{
	/* several campaigns, several states: every probability vector sums
	   to 1 and respects the floor */
	ls_rng r;
	ls_rng_seed(&r, 4242);
	static const double shares[] = { 0.0, 0.01, 0.05, 0.1 };
	for (size_t s = 0; s < 4; s++) {
		for (size_t n = 1; n <= 8; n++) {
			if (shares[s] * (double)n > 1.0)
				continue;
			ls_bandit *b = mk(n, 1, shares[s], 0);
			for (size_t i = 0; i < n; i++)
				ck_assert_int_eq(ls_bandit_add_counts(
					b, 0, i, 50 + 10 * i, 5.0 + (double)i),
					0);
			double p[LS_BANDIT_MAX_ARMS];
			ck_assert_int_eq(ls_bandit_probabilities(
				b, 0, &r, p, LS_BANDIT_MAX_ARMS), 0);
			double sum = 0;
			for (size_t i = 0; i < n; i++) {
				ck_assert(p[i] >= shares[s]);
				ck_assert(p[i] <= 1.0);
				sum += p[i];
			}
			ck_assert_double_eq_tol(sum, 1.0, 1e-12);
			/* decide = choose, then probabilities, same rng */
			ls_rng r1 = r, r2 = r;
			size_t a1, a2;
			double prop;
			ck_assert_int_eq(ls_bandit_decide(b, 0, &r1, &a1,
							  &prop), 0);
			ck_assert_int_eq(ls_bandit_choose(b, 0, &r2, &a2), 0);
			ck_assert_int_eq(ls_bandit_probabilities(
				b, 0, &r2, p, LS_BANDIT_MAX_ARMS), 0);
			ck_assert_uint_eq(a1, a2);
			ck_assert(prop == p[a1]);
			ck_assert(prop >= shares[s]);
			ck_assert(memcmp(r1.s, r2.s, sizeof r1.s) == 0);
			ls_bandit_free(b);
		}
	}

	/* one arm: probability 1 */
	ls_bandit *one = mk(1, 0, 0.0, 0);
	size_t a;
	double prop;
	ck_assert_int_eq(ls_bandit_decide(one, LS_BANDIT_CAMPAIGN, &r, &a,
					  &prop), 0);
	ck_assert_uint_eq(a, 0);
	ck_assert_double_eq(prop, 1.0);
	ls_bandit_free(one);

	/* two arms: P_TS against the exact P(X_1 > X_0) */
	ls_bandit *two = mk(2, 0, 0.0, 0);
	ck_assert_int_eq(ls_bandit_add_counts(two, LS_BANDIT_CAMPAIGN, 0, 100,
					      10), 0);
	ck_assert_int_eq(ls_bandit_add_counts(two, LS_BANDIT_CAMPAIGN, 1, 80,
					      11), 0);
	/* Beta(11, 91) against Beta(12, 70) */
	double exact = p_b_beats_a(11, 91, 12, 70);
	const uint32_t M = 200000;
	double pb[2];
	ck_assert_int_eq(ls_bandit_prob_best(two, LS_BANDIT_CAMPAIGN, &r, M,
					     pb, 2), 0);
	ck_within(pb[1], exact, sqrt(exact * (1 - exact) / M),
		  "two-arm P_TS vs exact");
	ck_assert_double_eq_tol(pb[0] + pb[1], 1.0, 1e-15);
	/* and the default M = 1000 propensity, within its documented
	   standard error */
	ck_assert_int_eq(ls_bandit_prob_best(two, LS_BANDIT_CAMPAIGN, &r,
					     LS_BANDIT_DEFAULT_MC_DRAWS, pb,
					     2), 0);
	ck_within(pb[1], exact,
		  sqrt(exact * (1 - exact) / LS_BANDIT_DEFAULT_MC_DRAWS),
		  "two-arm P_TS, M = 1000");
	fprintf(stderr, "P(Beta(12,70) > Beta(11,91)): exact %.5f\n", exact);
	ls_bandit_free(two);

	/* three identical arms: a third each */
	ls_bandit *same = mk(3, 0, 0.0, 0);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(ls_bandit_add_counts(same, LS_BANDIT_CAMPAIGN,
						      i, 300, 45), 0);
	double p3[3];
	ck_assert_int_eq(ls_bandit_prob_best(same, LS_BANDIT_CAMPAIGN, &r, M,
					     p3, 3), 0);
	for (int i = 0; i < 3; i++)
		ck_within(p3[i], 1.0 / 3, sqrt(2.0 / 9 / M), "identical arms");
	ls_bandit_free(same);
}
END_TEST

START_TEST(test_decide_timing)
{
	/* Not a benchmark with a bound, a number for the report: one
	   decision with its M = 1000 propensity. */
	ls_bandit *b = mk(3, 0, 0.01, 0);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, i,
						      5000, 500.0 + 50 * (double)i),
				 0);
	ls_rng r;
	ls_rng_seed(&r, 8);
	const int n = 500;
	double sum = 0;
	double t0 = ls_test_now_s();
	for (int i = 0; i < n; i++) {
		size_t a;
		double p;
		ck_assert_int_eq(ls_bandit_decide(b, LS_BANDIT_CAMPAIGN, &r, &a,
						  &p), 0);
		sum += p;
	}
	double per = (ls_test_now_s() - t0) / n;
	int bad = 0;
	t0 = ls_test_now_s();
	for (int i = 0; i < 100000; i++) {
		size_t a;
		bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &r, &a) != 0;
	}
	ck_assert_int_eq(bad, 0);
	double per_choose = (ls_test_now_s() - t0) / 100000;
	fprintf(stderr, "3 arms: decide with M=1000 propensity %.1f us, "
		"choose only %.3f us\n", per * 1e6, per_choose * 1e6);
	ck_assert(sum > 0);
	ls_bandit_free(b);
}
END_TEST

/* ---- read statistics ---- */

START_TEST(test_stats)
{
	/* Arm 0: 4 rewards in 4 trials, posterior Beta(5, 1), whose
	   quantiles are q^(1/5). Arm 1: 0 of 3, Beta(1, 4), quantiles
	   1 - (1 - q)^(1/4). Arm 2: 0.5 + 0.25 + 1 in 3 trials (fractional),
	   Beta(2.75, 2.25). */
	ls_bandit *b = mk(3, 1, 0.0, 1000);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(ls_bandit_update(b, 0, 0, 1.0), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ls_bandit_update(b, 0, 1, 0.0), 0);
	ck_assert_int_eq(ls_bandit_update(b, 0, 2, 0.5), 0);
	ck_assert_int_eq(ls_bandit_update(b, 0, 2, 0.25), 0);
	ck_assert_int_eq(ls_bandit_update(b, 0, 2, 1.0), 0);

	const uint32_t M = 100000;
	ls_rng r;
	ls_rng_seed(&r, 606);
	ls_bandit_arm_stats st[3];
	/* bucket 0 is thin (10 < 1000): the campaign's counts, which here
	   are the same updates */
	ck_assert(ls_bandit_uses_campaign(b, 0));
	ck_assert_int_eq(ls_bandit_stats(b, 0, &r, M, st, 3), 0);
	ck_assert_uint_eq(st[0].trials, 4);
	ck_assert_double_eq(st[0].rewards, 4);
	ck_assert_double_eq(st[0].alpha, 5);
	ck_assert_double_eq(st[0].beta, 1);
	ck_assert_double_eq(st[0].mean, 5.0 / 6.0);
	ck_assert_double_eq(st[1].mean, 0.2);
	ck_assert_double_eq(st[2].alpha, 2.75);
	ck_assert_double_eq(st[2].beta, 2.25);
	ck_assert_double_eq(st[2].mean, 0.55);

	/* interval ends: standard error sqrt(q(1-q)/M) / f(x_q) */
	double q[2] = { 0.025, 0.975 };
	for (int k = 0; k < 2; k++) {
		double x0 = pow(q[k], 0.2);
		double f0 = 5 * pow(x0, 4);
		double got0 = k == 0 ? st[0].ci_low : st[0].ci_high;
		ck_within(got0, x0, sqrt(q[k] * (1 - q[k]) / M) / f0,
			  "Beta(5,1) quantile");
		double x1 = 1 - pow(1 - q[k], 0.25);
		double f1 = 4 * pow(1 - x1, 3);
		double got1 = k == 0 ? st[1].ci_low : st[1].ci_high;
		ck_within(got1, x1, sqrt(q[k] * (1 - q[k]) / M) / f1,
			  "Beta(1,4) quantile");
	}
	for (int i = 0; i < 3; i++)
		ck_assert(st[i].ci_low < st[i].mean &&
			  st[i].mean < st[i].ci_high);
	double sum = st[0].p_best + st[1].p_best + st[2].p_best;
	ck_assert_double_eq_tol(sum, 1.0, 1e-12);
	ck_assert(st[0].p_best > st[2].p_best && st[2].p_best > st[1].p_best);

	/* the same interval from the low-level function */
	double lo, hi;
	ck_assert_int_eq(ls_beta_interval(&r, 5, 1, M, &lo, &hi), 0);
	ck_within(lo, pow(0.025, 0.2),
		  sqrt(0.025 * 0.975 / M) / (5 * pow(0.025, 0.8)),
		  "ls_beta_interval low");
	ck_assert(hi < 1.0 && hi > lo);

	/* the campaign-wide call gives the same counts */
	ls_bandit_arm_stats sc[3];
	ck_assert_int_eq(ls_bandit_stats(b, LS_BANDIT_CAMPAIGN, &r, 100, sc,
					 3), 0);
	ck_assert_uint_eq(sc[2].trials, 3);
	ck_assert_double_eq(sc[2].rewards, 1.75);
	ls_bandit_free(b);
}
END_TEST

/* ---- counters ---- */

START_TEST(test_additive_counts)
{
	/* two instances' updates, summed, equal one instance's */
	ls_bandit *one = mk(3, 2, 0.01, 10);
	ls_bandit *x = mk(3, 2, 0.01, 10);
	ls_bandit *y = mk(3, 2, 0.01, 10);
	ls_rng r;
	ls_rng_seed(&r, 17);
	for (int i = 0; i < 5000; i++) {
		size_t arm = ls_rng_next(&r) % 3;
		size_t bucket = i % 5 == 0 ? LS_BANDIT_CAMPAIGN
					   : ls_rng_next(&r) % 2;
		double reward = (double)(ls_rng_next(&r) % 5) / 4.0;
		ck_assert_int_eq(ls_bandit_update(one, bucket, arm, reward), 0);
		ck_assert_int_eq(ls_bandit_update(i % 2 ? x : y, bucket, arm,
						  reward), 0);
	}
	/* merge y into x as a delta, per cell */
	for (size_t bk = 0; bk < 2; bk++) {
		for (size_t arm = 0; arm < 3; arm++) {
			uint64_t t;
			double rw;
			ck_assert_int_eq(ls_bandit_counts(y, bk, arm, &t, &rw),
					 0);
			ck_assert_int_eq(ls_bandit_add_counts(x, bk, arm, t, rw),
					 0);
		}
	}
	/* the context-free part of y goes campaign-wide only */
	for (size_t arm = 0; arm < 3; arm++) {
		uint64_t t, t0 = 0, t1 = 0;
		double rw, r0 = 0, r1 = 0;
		ck_assert_int_eq(ls_bandit_counts(y, LS_BANDIT_CAMPAIGN, arm, &t,
						  &rw), 0);
		ck_assert_int_eq(ls_bandit_counts(y, 0, arm, &t0, &r0), 0);
		ck_assert_int_eq(ls_bandit_counts(y, 1, arm, &t1, &r1), 0);
		ck_assert_int_eq(ls_bandit_add_counts(x, LS_BANDIT_CAMPAIGN, arm,
						      t - t0 - t1,
						      rw - r0 - r1), 0);
	}
	uint64_t total = 0;
	for (size_t bk = 0; bk < 3; bk++) {
		size_t bucket = bk == 2 ? LS_BANDIT_CAMPAIGN : bk;
		for (size_t arm = 0; arm < 3; arm++) {
			uint64_t t1, t2;
			double r1, r2;
			ck_assert_int_eq(ls_bandit_counts(one, bucket, arm, &t1,
							  &r1), 0);
			ck_assert_int_eq(ls_bandit_counts(x, bucket, arm, &t2,
							  &r2), 0);
			ck_assert_uint_eq(t1, t2);
			ck_assert(r1 == r2); /* quarter rewards add exactly */
			if (bucket == LS_BANDIT_CAMPAIGN)
				total += t1;
		}
		ck_assert_uint_eq(ls_bandit_bucket_trials(one, bucket),
				  ls_bandit_bucket_trials(x, bucket));
	}
	ck_assert_uint_eq(total, 5000);

	/* loading shared counts with set_counts, and a clone, decide like
	   the original */
	ls_bandit *loaded = mk(3, 2, 0.01, 10);
	for (size_t bk = 0; bk < 3; bk++) {
		size_t bucket = bk == 2 ? LS_BANDIT_CAMPAIGN : bk;
		for (size_t arm = 0; arm < 3; arm++) {
			uint64_t t;
			double rw;
			ck_assert_int_eq(ls_bandit_counts(one, bucket, arm, &t,
							  &rw), 0);
			ck_assert_int_eq(ls_bandit_set_counts(loaded, bucket,
							      arm, t, rw), 0);
		}
	}
	/* set_counts replaces, so setting again changes nothing */
	uint64_t t;
	double rw;
	ck_assert_int_eq(ls_bandit_counts(one, 1, 2, &t, &rw), 0);
	ck_assert_int_eq(ls_bandit_set_counts(loaded, 1, 2, t, rw), 0);
	ck_assert_uint_eq(ls_bandit_bucket_trials(loaded, 1),
			  ls_bandit_bucket_trials(one, 1));
	ls_bandit *snap = ls_bandit_clone(loaded);
	ck_assert_ptr_nonnull(snap);
	ls_rng ra, rb, rc;
	ls_rng_seed(&ra, 3);
	ls_rng_seed(&rb, 3);
	ls_rng_seed(&rc, 3);
	for (int i = 0; i < 200; i++) {
		size_t a1, a2, a3;
		double p1, p2, p3;
		size_t bucket = (size_t)(i % 2);
		ck_assert_int_eq(ls_bandit_decide(one, bucket, &ra, &a1, &p1),
				 0);
		ck_assert_int_eq(ls_bandit_decide(loaded, bucket, &rb, &a2,
						  &p2), 0);
		ck_assert_int_eq(ls_bandit_decide(snap, bucket, &rc, &a3, &p3),
				 0);
		ck_assert(a1 == a2 && a2 == a3 && p1 == p2 && p2 == p3);
	}
	/* a rounded sum from elsewhere, a hair above trials, loads */
	ck_assert_int_eq(ls_bandit_set_counts(loaded, 0, 0, 1000,
					      1000 * (1 + 1e-12)), 0);
	ck_assert_int_eq(ls_bandit_set_counts(loaded, 0, 0, 1000, 1001),
			 LS_BANDIT_ERR_INVALID);
	ls_bandit_free(snap);
	ls_bandit_free(loaded);
	ls_bandit_free(x);
	ls_bandit_free(y);
	ls_bandit_free(one);
}
END_TEST

/* ---- arguments ---- */

START_TEST(test_invalid_arguments)
{
	ls_rng r;
	ls_rng_seed(&r, 1);
	double out = 42;
	/* samplers: shapes must be finite and > 0 */
	ck_assert_int_eq(ls_rng_gamma(&r, 0.0, &out), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_gamma(&r, -1.0, &out), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_gamma(&r, NAN, &out), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_gamma(&r, INFINITY, &out),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_gamma(&r, 1.0, NULL), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_gamma(NULL, 1.0, &out), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_beta(&r, 0.0, 1.0, &out),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_beta(&r, 1.0, -2.0, &out),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_rng_beta(&r, NAN, 1.0, &out),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_double_eq(out, 42); /* untouched */
	ck_assert(isnan(ls_beta_mean(0, 1)));
	double lo = 7, hi = 7;
	ck_assert_int_eq(ls_beta_interval(&r, 1, 1, 1, &lo, &hi),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_beta_interval(&r, -1, 1, 100, &lo, &hi),
			 LS_BANDIT_ERR_INVALID);
	ck_assert(lo == 7 && hi == 7);

	/* campaigns */
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	char err[256];
	ck_assert_ptr_null(ls_bandit_new(&p, 0, 0, err, sizeof err));
	ck_assert_msg(strstr(err, "arms") != NULL, "%s", err);
	ck_assert_ptr_null(ls_bandit_new(&p, LS_BANDIT_MAX_ARMS + 1, 0, err,
					 sizeof err));
	ck_assert_ptr_null(ls_bandit_new(&p, 2, LS_BANDIT_MAX_BUCKETS + 1, err,
					 sizeof err));
	ck_assert_ptr_null(ls_bandit_new(NULL, 2, 0, err, sizeof err));
	p.min_share = 0.34;
	ck_assert_ptr_null(ls_bandit_new(&p, 3, 0, err, sizeof err));
	ck_assert_msg(strstr(err, "min_share") != NULL, "%s", err);
	p.min_share = 1.0 / 3.0; /* exactly 1/n is allowed */
	ls_bandit *ok = ls_bandit_new(&p, 3, 0, err, sizeof err);
	ck_assert_msg(ok != NULL, "%s", err);
	ls_bandit_free(ok);
	p.min_share = -0.01;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));
	p.min_share = NAN;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));
	ls_bandit_params_default(&p);
	ck_assert(ls_bandit_params_check(&p, LS_BANDIT_MAX_ARMS, NULL, 0));
	p.prior_a = 0;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));
	ck_assert_msg(strstr(err, "prior") != NULL, "%s", err);
	ls_bandit_params_default(&p);
	p.prior_b = INFINITY;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));
	ls_bandit_params_default(&p);
	p.mc_draws = 0;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));
	p.mc_draws = LS_BANDIT_MAX_DRAWS + 1;
	ck_assert(!ls_bandit_params_check(&p, 3, err, sizeof err));

	/* updates: reward in [0,1], arm and bucket in range; nothing
	   changes on a refusal */
	ls_bandit *b = mk(3, 2, 0.01, 10);
	ck_assert_int_eq(ls_bandit_update(b, 0, 0, -0.1), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_update(b, 0, 0, 1.1), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_update(b, 0, 0, NAN), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_update(b, 0, 3, 1.0), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_update(b, 2, 0, 1.0), LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_update(NULL, 0, 0, 1.0),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_add_counts(b, 0, 0, 2, 2.5),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_add_counts(b, 0, 0, 2, -1),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_set_counts(b, 5, 0, 2, 1),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_set_counts(b, 0, 0, 2, INFINITY),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, LS_BANDIT_CAMPAIGN), 0);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, 0), 0);
	ck_assert_int_eq(ls_bandit_update(b, 0, 0, 0.0), 0);
	ck_assert_int_eq(ls_bandit_update(b, 0, 0, 1.0), 0);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, LS_BANDIT_CAMPAIGN), 2);

	/* overflow: refused, and neither the bucket nor the campaign moves */
	ck_assert_int_eq(ls_bandit_set_counts(b, LS_BANDIT_CAMPAIGN, 1,
					      UINT64_MAX - 2, 0), 0);
	ck_assert_int_eq(ls_bandit_set_counts(b, LS_BANDIT_CAMPAIGN, 2, 3, 0),
			 LS_BANDIT_ERR_OVERFLOW);
	ck_assert_int_eq(ls_bandit_update(b, 1, 1, 1.0),
			 LS_BANDIT_ERR_OVERFLOW);
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, 1), 0);
	uint64_t t;
	double rw;
	ck_assert_int_eq(ls_bandit_counts(b, LS_BANDIT_CAMPAIGN, 1, &t, &rw),
			 0);
	ck_assert_uint_eq(t, UINT64_MAX - 2);
	ck_assert_double_eq(rw, 0);
	ck_assert_int_eq(ls_bandit_counts(b, 0, 3, &t, &rw),
			 LS_BANDIT_ERR_INVALID);

	/* decisions */
	size_t arm = 99;
	double prop = -1, probs[3];
	ck_assert_int_eq(ls_bandit_choose(b, 2, &r, &arm),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_choose(b, 0, NULL, &arm),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_decide(b, 2, &r, &arm, &prop),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_decide(b, 0, &r, &arm, NULL),
			 LS_BANDIT_ERR_INVALID);
	ck_assert(arm == 99 && prop == -1);
	ck_assert_int_eq(ls_bandit_probabilities(b, 0, &r, probs, 2),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_prob_best(b, 0, &r, 0, probs, 3),
			 LS_BANDIT_ERR_INVALID);
	ls_bandit_arm_stats st[3];
	ck_assert_int_eq(ls_bandit_stats(b, 0, &r, 1, st, 3),
			 LS_BANDIT_ERR_INVALID);
	ck_assert_int_eq(ls_bandit_stats(b, 0, &r, 100, st, 2),
			 LS_BANDIT_ERR_INVALID);
	ck_assert(!ls_bandit_uses_campaign(b, 7));
	ck_assert_uint_eq(ls_bandit_bucket_trials(b, 7), 0);
	ck_assert_uint_eq(ls_bandit_n_arms(b), 3);
	ck_assert_uint_eq(ls_bandit_n_buckets(b), 2);
	ck_assert_double_eq(ls_bandit_get_params(b)->min_share, 0.01);

	ck_assert_str_eq(ls_bandit_result_str(LS_BANDIT_OK), "ok");
	ck_assert_str_eq(ls_bandit_result_str(LS_BANDIT_ERR_INVALID),
			 "invalid argument");
	ck_assert_str_eq(ls_bandit_result_str(LS_BANDIT_ERR_NOMEM),
			 "out of memory");
	ck_assert_str_eq(ls_bandit_result_str(LS_BANDIT_ERR_OVERFLOW),
			 "counter overflow");
	ck_assert_str_eq(ls_bandit_result_str(-99), "unknown error");
	ls_bandit_free(b);
	ls_bandit_free(NULL);
	ck_assert_ptr_null(ls_bandit_clone(NULL));
}
END_TEST

/* Context values are cut to a byte budget with ls_utf8_cut: never inside
   a code point, so the cut value stays valid UTF-8. */
START_TEST(test_utf8_cut_on_code_points)
{
	char v[80];
	memset(v, 'a', 63);
	memcpy(v + 63, "\xc3\xa9", 3); /* 63 x 'a' + U+00E9: 65 bytes */
	ck_assert_uint_eq(ls_utf8_cut(v, 64), 63);
	ck_assert_uint_eq(ls_utf8_cut(v, 65), 65);
	ck_assert_uint_eq(ls_utf8_cut(v, 100), 65);
	memcpy(v + 61, "\xe2\x82\xac", 4); /* ... + U+20AC: 64 bytes */
	ck_assert_uint_eq(ls_utf8_cut(v, 64), 64);
	ck_assert_uint_eq(ls_utf8_cut(v, 63), 61);
	ck_assert_uint_eq(ls_utf8_cut(v, 62), 61);
	memcpy(v + 60, "\xf0\x9f\x98\x80", 5); /* U+1F600 at 60..63 */
	for (size_t max = 60; max < 64; max++)
		ck_assert_uint_eq(ls_utf8_cut(v, max), 60);
	ck_assert_uint_eq(ls_utf8_cut(v, 64), 64);
	ck_assert_uint_eq(ls_utf8_cut("", 64), 0);
	ck_assert_uint_eq(ls_utf8_cut("\xc3\xa9", 1), 0);
	ck_assert_uint_eq(ls_utf8_cut("abc", 0), 0);
	/* every cut of a mixed string is valid UTF-8 */
	const char *mix = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
	for (size_t max = 0; max <= strlen(mix); max++) {
		size_t n = ls_utf8_cut(mix, max);
		ck_assert_uint_le(n, max);
		ck_assert_msg(ls_utf8_valid(mix, n), "cut at %zu: %zu bytes invalid", max, n);
	}
}
END_TEST

/* ---- hierarchical prior (issue 15) ---- */

static ls_bandit *mk_hier(size_t n_arms, size_t n_buckets, uint64_t prior_trials)
{
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	p.min_share = 0.0;
	p.min_bucket_trials = 0;
	p.prior_trials = prior_trials;
	char err[256] = "";
	ls_bandit *b = ls_bandit_new(&p, n_arms, n_buckets, err, sizeof err);
	ck_assert_msg(b != NULL, "campaign rejected: %s", err);
	return b;
}

START_TEST(test_hier_thin_bucket_is_campaign)
{
	/* 3 arms, arm 0 best campaign-wide; bucket 1 holds some of the
	   campaign's trials (favouring arm 2), bucket 0 none. Every arm's
	   rest of campaign is at most M = 500 trials: bucket 0's decision
	   distribution is the campaign's, draw for draw. */
	ls_bandit *b = mk_hier(3, 2, 500);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 0, 300, 90.3), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 1, 200, 20.1), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 2, 100, 10.7), 0);
	ck_assert_int_eq(ls_bandit_add_counts(b, 1, 2, 150, 60.9), 0);
	ck_assert(!ls_bandit_uses_campaign(b, 0)); /* no hard switch */

	double a0[3], b0[3], ac[3], bc[3];
	ck_assert_int_eq(ls_bandit_posterior(b, 0, a0, b0, 3), 0);
	ck_assert_int_eq(ls_bandit_posterior(b, LS_BANDIT_CAMPAIGN, ac, bc, 3), 0);
	ck_assert_mem_eq(a0, ac, sizeof a0);
	ck_assert_mem_eq(b0, bc, sizeof b0);

	ls_rng r1, r2;
	ls_rng_seed(&r1, 77);
	ls_rng_seed(&r2, 77);
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		size_t x = 9, y = 8;
		bad += ls_bandit_choose(b, 0, &r1, &x) != 0;
		bad += ls_bandit_choose(b, LS_BANDIT_CAMPAIGN, &r2, &y) != 0;
		bad += x != y;
	}
	ck_assert_int_eq(bad, 0);
	double p1[3], p2[3];
	ck_assert_int_eq(ls_bandit_probabilities(b, 0, &r1, p1, 3), 0);
	ck_assert_int_eq(ls_bandit_probabilities(b, LS_BANDIT_CAMPAIGN, &r2, p2, 3), 0);
	ck_assert_mem_eq(p1, p2, sizeof p1);
	ls_bandit_arm_stats s0[3], sc[3];
	ck_assert_int_eq(ls_bandit_stats(b, 0, &r1, 100, s0, 3), 0);
	ck_assert_int_eq(ls_bandit_stats(b, LS_BANDIT_CAMPAIGN, &r2, 100, sc, 3), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_double_eq(s0[i].alpha, sc[i].alpha);
		ck_assert_double_eq(s0[i].beta, sc[i].beta);
		ck_assert_uint_eq(s0[i].trials, 0); /* the bucket's own counts */
	}

	/* bucket 1's rest is the campaign minus its own, unscaled (<= M) */
	double a1[3], b1[3];
	ck_assert_int_eq(ls_bandit_posterior(b, 1, a1, b1, 3), 0);
	ck_assert_double_eq_tol(a1[2], 1 + 10.7 + 60.9, 1e-9);
	ck_assert_double_eq_tol(b1[2], 1 + (250 - 71.6), 1e-9);

	/* more rest than M: scaled to M pseudo-trials at the rest's mean */
	ls_bandit *c = mk_hier(2, 1, 100);
	ck_assert_int_eq(ls_bandit_add_counts(c, LS_BANDIT_CAMPAIGN, 0, 1000, 300), 0);
	ck_assert_int_eq(ls_bandit_add_counts(c, LS_BANDIT_CAMPAIGN, 1, 50, 5), 0);
	ck_assert_int_eq(ls_bandit_add_counts(c, 0, 0, 10, 8), 0);
	double ca[2], cb[2];
	ck_assert_int_eq(ls_bandit_posterior(c, 0, ca, cb, 2), 0);
	/* arm 0: rest 1000 trials 300 rewards -> 100 pseudo-trials at 0.3 */
	ck_assert_double_eq_tol(ca[0], 1 + 30 + 8, 1e-9);
	ck_assert_double_eq_tol(cb[0], 1 + 70 + 2, 1e-9);
	/* arm 1: rest 50 <= M, unscaled (no own trials: the campaign's) */
	ck_assert_double_eq(ca[1], 6);
	ck_assert_double_eq(cb[1], 46);
	ls_bandit_free(c);

	/* prior_trials 0: a bucket learns alone, as before */
	ls_bandit *d = mk_hier(2, 1, 0);
	ck_assert_int_eq(ls_bandit_add_counts(d, LS_BANDIT_CAMPAIGN, 0, 1000, 300), 0);
	ck_assert_int_eq(ls_bandit_posterior(d, 0, ca, cb, 2), 0);
	ck_assert(ca[0] == 1 && cb[0] == 1 && ca[1] == 1 && cb[1] == 1);
	ls_bandit_free(d);
	ls_bandit_free(b);
}
END_TEST

START_TEST(test_hier_rich_bucket_follows_its_data)
{
	/* Campaign-wide arm 0 is best (30 % vs 10 %) over 20,000 trials an
	   arm; the bucket's own data says arm 1 (25 % vs 5 %). As the
	   bucket's trials grow, its P(best) of arm 1 goes from the
	   campaign's (~0) to ~1, and its posterior means to its own rates. */
	const uint64_t M = 100;
	double pbest_arm1[4];
	const uint64_t own[4] = { 0, 20, 200, 5000 };
	for (int k = 0; k < 4; k++) {
		ls_bandit *b = mk_hier(2, 1, M);
		ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 0, 20000, 6000), 0);
		ck_assert_int_eq(ls_bandit_add_counts(b, LS_BANDIT_CAMPAIGN, 1, 20000, 2000), 0);
		ck_assert_int_eq(ls_bandit_add_counts(b, 0, 0, own[k], 0.05 * (double)own[k]), 0);
		ck_assert_int_eq(ls_bandit_add_counts(b, 0, 1, own[k], 0.25 * (double)own[k]), 0);
		ls_rng r;
		ls_rng_seed(&r, 5 + (uint64_t)k);
		double pb[2];
		ck_assert_int_eq(ls_bandit_prob_best(b, 0, &r, 20000, pb, 2), 0);
		pbest_arm1[k] = pb[1];
		if (k == 0) {
			/* no own trials: the campaign's means */
			double a[2], bb[2];
			ck_assert_int_eq(ls_bandit_posterior(b, 0, a, bb, 2), 0);
			ck_assert_double_eq_tol(a[0] / (a[0] + bb[0]), 31.0 / 102.0, 1e-12);
			ck_assert_double_eq_tol(a[1] / (a[1] + bb[1]), 11.0 / 102.0, 1e-12);
		}
		if (k == 3) {
			ls_bandit_arm_stats st[2];
			ck_assert_int_eq(ls_bandit_stats(b, 0, &r, 1000, st, 2), 0);
			ck_assert_double_eq_tol(st[0].mean, 0.05, 0.01);
			ck_assert_double_eq_tol(st[1].mean, 0.25, 0.01);
			ck_assert_uint_eq(st[1].trials, 5000);
		}
		ls_bandit_free(b);
	}
	ck_assert_msg(pbest_arm1[0] < 0.01, "no own data: P(arm 1 best) %g", pbest_arm1[0]);
	ck_assert_msg(pbest_arm1[1] < pbest_arm1[2], "%g %g", pbest_arm1[1], pbest_arm1[2]);
	ck_assert_msg(pbest_arm1[2] > 0.9 && pbest_arm1[3] > 0.999, "%g %g", pbest_arm1[2],
		      pbest_arm1[3]);
}
END_TEST

static Suite *bandit_suite(void)
{
	Suite *s = suite_create("bandit");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_rng_golden_and_reproducible);
	tcase_add_test(tc, test_uniform_open_interval);
	tcase_add_test(tc, test_normal_moments);
	tcase_add_test(tc, test_gamma_moments);
	tcase_add_test(tc, test_beta_moments);
	tcase_add_test(tc, test_thompson_acceptance);
	tcase_add_test(tc, test_ties_lowest_index);
	tcase_add_test(tc, test_bucket_fallback);
	tcase_add_test(tc, test_hier_thin_bucket_is_campaign);
	tcase_add_test(tc, test_hier_rich_bucket_follows_its_data);
	tcase_add_test(tc, test_min_share_floor);
	tcase_add_test(tc, test_propensities);
	tcase_add_test(tc, test_decide_timing);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_additive_counts);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_utf8_cut_on_code_points);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(bandit_suite(), CK_NORMAL);
}
