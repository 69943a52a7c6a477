/*
 * test_bandit_replay.c - the bandit's policies evaluated offline on a log
 * of uniformly random decisions, by unbiased replay (rejection sampling,
 * Li, Chu, Langford and Wang, WSDM 2011): walk the log in order; when the
 * policy, asked in the logged context, picks the logged arm, the event
 * counts (its reward is the policy's, and the policy learns it), else it
 * is skipped. With a uniform logging policy the accepted events' average
 * reward is an unbiased estimate of the policy's own online reward per
 * decision.
 *
 * Issue 15: in such a replay the default campaign trailed plain Thompson
 * sampling (the 0.01 exploration floor, a posterior refreshed every 0.5 s)
 * and a contextual campaign trailed a plain one (buckets started from an
 * uninformed prior until min_bucket_trials, then ignored the campaign).
 * Here, for three worlds (two contexts whose best arms differ; two
 * alike; eight contexts, two of which differ, so buckets are thinner),
 * the policies are:
 *   plain       Thompson sampling, no context, no floor, posterior
 *               refreshed after every resolution (the reference)
 *   default     the campaign defaults: no floor, refreshed every 10
 *               resolutions (refresh_trials)
 *   old         the old defaults: min_share 0.01, refreshed every 500
 *               resolutions (0.5 s at 1,000 resolutions a second)
 *   ctx         context buckets with the default hierarchical prior
 *               (prior_trials, 30), refreshed every 10
 *   ctx_old     context buckets, old defaults: min_bucket_trials 100,
 *               no hierarchical prior, min_share 0.01, refreshed every 500
 * each over SEEDS logs of N_EVENTS events (different data and order;
 * the environment variables LS_REPLAY_SEEDS and LS_REPLAY_EVENTS make
 * more for the benchmark, which runs a release build; the two old
 * policies are replayed only then, to keep the test short).
 * The decisions are ls_bandit_choose() draws (Thompson sampling exactly,
 * with the floor when there is one), which is what the service's draw
 * from its Monte Carlo probability vector is in expectation.
 *
 * Asserted, with the tolerance TOL_SE standard errors of the mean of the
 * per-seed differences (at least 0.0005): default >= plain - tol;
 * ctx >= plain - tol in both worlds; ctx > plain by more than tol where
 * the best arms differ. The figures are printed for BENCHMARKS.md
 * ("Bandit learning (issue 15)"): `LS_REPLAY_SEEDS=40
 * LS_REPLAY_EVENTS=200000 build-rel/tests/test_bandit_replay`. Deterministic: fixed seeds, so it passes or fails
 * the same way every run.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_bandit.h"
#include "ls_testutil.h"

#define N_ARMS 3
#define MAX_CTX 8
#define N_EVENTS 24000 /* LS_REPLAY_EVENTS overrides (the benchmark's 200000) */
#define SEEDS 8         /* LS_REPLAY_SEEDS overrides, at most MAX_SEEDS */
#define MAX_SEEDS 64
#define TOL_SE 3.0

static size_t n_events = N_EVENTS;
static int n_seeds = SEEDS;
/* LS_REPLAY_PRIOR_TRIALS: ctx's prior_trials, for choosing the default */
static long prior_trials_override = -1;
static bool bench; /* LS_REPLAY_SEEDS or LS_REPLAY_EVENTS given */

typedef struct world {
	const char *name;
	size_t n_ctx;
	double rate[MAX_CTX][N_ARMS];
} world;

#define R_A { 0.04, 0.06, 0.09 }
#define R_B { 0.10, 0.05, 0.03 }
static const world worlds[3] = {
	{ "contexts differ", 2, { R_A, R_B } },
	{ "contexts alike", 2, { R_A, R_A } },
	/* thin buckets: 8 contexts, the last two with another best arm */
	{ "8 contexts, 2 differ", 8, { R_A, R_A, R_A, R_A, R_A, R_A, R_B, R_B } },
};

typedef struct policy {
	const char *name;
	bool context;
	double min_share;
	uint64_t min_bucket_trials;
	uint64_t prior_trials;
	unsigned refresh; /* resolutions between posterior refreshes */
} policy;

enum { P_PLAIN, P_DEFAULT, P_OLD, P_CTX, P_CTX_OLD, N_POLICIES };

static const policy policies[N_POLICIES] = {
	{ "plain", false, 0.0, 0, 0, 1 },
	{ "default", false, LS_BANDIT_DEFAULT_MIN_SHARE, 0, LS_BANDIT_DEFAULT_PRIOR_TRIALS, 10 },
	{ "old", false, 0.01, 100, 0, 500 },
	{ "ctx", true, LS_BANDIT_DEFAULT_MIN_SHARE, 0, LS_BANDIT_DEFAULT_PRIOR_TRIALS, 10 },
	{ "ctx_old", true, 0.01, 100, 0, 500 },
};

typedef struct event {
	unsigned char ctx, arm;
	double reward;
} event;

/* A uniform log: context and arm uniform, reward Bernoulli(rate). */
static void make_log(const world *w, uint64_t seed, event *log)
{
	ls_rng g;
	ls_rng_seed(&g, seed);
	for (size_t i = 0; i < n_events; i++) {
		log[i].ctx = (unsigned char)(ls_rng_uniform(&g) * (double)w->n_ctx);
		log[i].arm = (unsigned char)(ls_rng_uniform(&g) * N_ARMS);
		log[i].reward = ls_rng_uniform(&g) < w->rate[log[i].ctx][log[i].arm] ? 1.0 : 0.0;
	}
}

/* The policy's average reward per accepted event over the log. */
static double replay(const policy *p, const world *w, const event *log, uint64_t seed,
		     size_t *accepted)
{
	ls_bandit_params bp;
	ls_bandit_params_default(&bp);
	bp.min_share = p->min_share;
	bp.min_bucket_trials = p->min_bucket_trials;
	bp.prior_trials = p->prior_trials;
	char err[256] = "";
	if (p->context && prior_trials_override >= 0 && p->prior_trials > 0)
		bp.prior_trials = (uint64_t)prior_trials_override;
	ls_bandit *live = ls_bandit_new(&bp, N_ARMS, p->context ? w->n_ctx : 0, err, sizeof err);
	ck_assert_msg(live != NULL, "%s", err);
	ls_bandit *snap = ls_bandit_clone(live);
	ck_assert_ptr_nonnull(snap);
	ls_rng r;
	ls_rng_seed(&r, seed ^ 0x9e3779b97f4a7c15ull);
	double total = 0;
	size_t n = 0;
	unsigned since = 0;
	for (size_t i = 0; i < n_events; i++) {
		size_t bucket = p->context ? log[i].ctx : LS_BANDIT_CAMPAIGN;
		size_t arm = 0;
		ck_assert_int_eq(ls_bandit_choose(snap, bucket, &r, &arm), LS_BANDIT_OK);
		if (arm != log[i].arm)
			continue;
		total += log[i].reward;
		n++;
		ck_assert_int_eq(ls_bandit_update(live, bucket, arm, log[i].reward), LS_BANDIT_OK);
		if (++since >= p->refresh) {
			since = 0;
			ls_bandit_free(snap);
			snap = ls_bandit_clone(live);
			ck_assert_ptr_nonnull(snap);
		}
	}
	ls_bandit_free(snap);
	ls_bandit_free(live);
	*accepted = n;
	return n > 0 ? total / (double)n : 0.0;
}

typedef struct diff_stats {
	double mean, se;
} diff_stats;

static diff_stats diff_of(const double *x, const double *y)
{
	double d[MAX_SEEDS], m = 0, v = 0;
	for (int s = 0; s < n_seeds; s++) {
		d[s] = x[s] - y[s];
		m += d[s];
	}
	m /= n_seeds;
	for (int s = 0; s < n_seeds; s++)
		v += (d[s] - m) * (d[s] - m);
	diff_stats out = { m, sqrt(v / (n_seeds - 1) / n_seeds) };
	return out;
}

static double tol_of(diff_stats d)
{
	double t = TOL_SE * d.se;
	return t > 0.0005 ? t : 0.0005;
}

START_TEST(test_replay_uniform_log)
{
	const world *w = &worlds[_i];
	event *log = malloc(n_events * sizeof *log);
	ck_assert_ptr_nonnull(log);
	double avg[N_POLICIES][MAX_SEEDS];
	size_t acc_sum[N_POLICIES] = { 0 };
	for (int s = 0; s < n_seeds; s++) {
		make_log(w, 1000 + (uint64_t)s + 100 * (uint64_t)_i, log);
		for (int k = 0; k < N_POLICIES; k++) {
			size_t acc = 0;
			avg[k][s] = 0;
			if (!bench && (k == P_OLD || k == P_CTX_OLD))
				continue;
			avg[k][s] = replay(&policies[k], w, log, 7 + (uint64_t)s, &acc);
			acc_sum[k] += acc;
		}
	}
	printf("replay over a uniform log, %s (click rates per context:", w->name);
	for (size_t c = 0; c < w->n_ctx; c++)
		printf(" %.2f/%.2f/%.2f", w->rate[c][0], w->rate[c][1], w->rate[c][2]);
	printf("), %d logs of %zu events, ctx prior_trials %ld:\n", n_seeds, n_events,
	       prior_trials_override >= 0 ? prior_trials_override
					  : (long)LS_BANDIT_DEFAULT_PRIOR_TRIALS);
	for (int k = 0; k < N_POLICIES; k++) {
		if (!bench && (k == P_OLD || k == P_CTX_OLD))
			continue;
		double m = 0;
		for (int s = 0; s < n_seeds; s++)
			m += avg[k][s];
		diff_stats d = diff_of(avg[k], avg[P_PLAIN]);
		printf("  %-8s reward/decision %.5f  (accepted %zu a log)  vs plain %+.5f +- %.5f\n",
		       policies[k].name, m / n_seeds, acc_sum[k] / (size_t)n_seeds, d.mean, d.se);
	}
	fflush(stdout);
	free(log);

	diff_stats dd = diff_of(avg[P_DEFAULT], avg[P_PLAIN]);
	ck_assert_msg(dd.mean >= -tol_of(dd), "%s: default trails plain TS by %.5f (tolerance %.5f)",
		      w->name, -dd.mean, tol_of(dd));
	diff_stats dc = diff_of(avg[P_CTX], avg[P_PLAIN]);
	ck_assert_msg(dc.mean >= -tol_of(dc), "%s: contextual trails plain by %.5f (tolerance %.5f)",
		      w->name, -dc.mean, tol_of(dc));
	if (_i == 0)
		ck_assert_msg(dc.mean > tol_of(dc),
			      "%s: contextual gains only %.5f over plain (tolerance %.5f)", w->name,
			      dc.mean, tol_of(dc));
}
END_TEST

static Suite *replay_suite(void)
{
	Suite *s = suite_create("bandit_replay");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_replay_uniform_log, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *e = getenv("LS_REPLAY_SEEDS");
	if (e != NULL && atoi(e) >= 2 && atoi(e) <= MAX_SEEDS) {
		n_seeds = atoi(e);
		bench = true;
	}
	e = getenv("LS_REPLAY_EVENTS");
	if (e != NULL && atol(e) >= 1000) {
		n_events = (size_t)atol(e);
		bench = true;
	}
	e = getenv("LS_REPLAY_PRIOR_TRIALS");
	if (e != NULL && atol(e) >= 0)
		prior_trials_override = atol(e);
	return ls_test_run(replay_suite(), CK_NORMAL);
}
