/*
 * ls_bandit.h - the pure core of the email-variant bandit: a seeded random
 * number generator with Beta sampling, Beta-Bernoulli posteriors per arm
 * and context bucket, Thompson sampling with a minimum exploration share,
 * Monte Carlo propensities, and the statistics the read API reports.
 *
 * What: a campaign (ls_bandit) has n arms (the email variants, 1..
 * LS_BANDIT_MAX_ARMS, identified by index; their names belong to the
 * caller) and n_buckets context buckets (segments such as a lead tier or
 * an industry, 0..LS_BANDIT_MAX_BUCKETS, also by index). For every arm it
 * keeps one counter pair per bucket and one campaign-wide pair:
 *     trials   uint64  resolved decisions: a reward arrived, or the reward
 *                      window expired and the default reward was applied
 *     rewards  double  the sum of their rewards, each in [0,1] (fractional
 *                      rewards, e.g. 0.3 for an open and 1 for a reply,
 *                      are allowed)
 * An update with a bucket adds to that bucket and to the campaign-wide
 * pair; an update with LS_BANDIT_CAMPAIGN (no context) only to the
 * campaign-wide pair. So the campaign-wide counts are every trial, and a
 * bucket's are the trials made in that context.
 *
 * Posterior. Arm i of a set of counts has the posterior
 *     Beta(prior_a + rewards_i, prior_b + max(trials_i - rewards_i, 0))
 * (a fractional reward r is the usual "r successes and 1 - r failures"
 * generalisation; the floor at 0 only absorbs rounding in rewards summed
 * as doubles). The prior is configurable, Beta(1,1) (uniform) by default.
 *
 * Hierarchical prior for buckets (empirical Bayes). With T =
 * prior_trials > 0, arm i of bucket k has the posterior
 *     Beta(prior_a + s_i R_i + r_ki,  prior_b + s_i F_i + f_ki)
 * where r_ki, f_ki are the bucket's own rewards and failures, R_i, F_i
 * those of the rest of the campaign (campaign-wide minus the bucket's)
 * and s_i = min(1, T / (R_i + F_i)): the rest of the campaign is worth at
 * most T pseudo-trials per arm, at its own mean. So a bucket starts where
 * the campaign is and, as its own trials grow past T, follows its own
 * data. With no own trials and at most T trials of the rest (s_i = 1) its
 * posterior is the campaign-wide one exactly (computed from the same
 * counts, so bit for bit: the same rng state gives the same arm and
 * probabilities); with more, the same means with T pseudo-trials' width.
 * T = 0 turns it off: a bucket's posterior is its own counts only.
 *
 * Bucket fallback. A bucket whose total trials over all arms are fewer
 * than min_bucket_trials is thin: decisions, probabilities and statistics
 * for it use the campaign-wide posterior instead (exactly: the same rng
 * state gives the same arm and the same probabilities as
 * LS_BANDIT_CAMPAIGN). From min_bucket_trials on the bucket uses its own
 * posterior (with the hierarchical prior above). The switch is per
 * bucket, not per arm, so one decision never mixes the two posteriors.
 * With the hierarchical prior the switch is no longer needed (0, the
 * default, never switches): it is kept for configs that set it.
 *
 * Policy. With m = min_share and n arms, a decision is
 *     with probability n*m:        an arm drawn uniformly from the n arms
 *     otherwise (1 - n*m):         Thompson sampling: one draw from every
 *                                  arm's posterior, the arm with the
 *                                  largest draw (ties: the lowest index)
 * so every arm has the probability (the propensity)
 *     P(arm) = m + (1 - n*m) * P_TS(arm)
 * where P_TS(arm) is the probability that the arm's posterior draw is the
 * largest, its "probability of being best". P(arm) >= m, and m must be in
 * [0, 1/n] (m = 1/n is uniform allocation).
 *
 * Propensity. P_TS has no closed form for n > 2, so it is estimated by
 * Monte Carlo: M joint posterior draws (params.mc_draws, 1000 by default)
 * with the caller's rng, P_TS_hat(arm) = count(arm is the argmax) / M. Its
 * standard error is sqrt(P_TS (1 - P_TS) / M): at most 0.016 for M = 1000
 * (at P_TS = 0.5), 0.0095 at P_TS = 0.1; the propensity's error is that
 * times (1 - n*m). The estimates of all arms sum to 1 (the counts sum to
 * M), up to the rounding of the n divisions (|sum - 1| <= n * 2^-52). The
 * propensity returned with a decision is the estimate for the arm chosen;
 * the choice and the estimate use independent draws. With m = 0 an arm
 * that was chosen can get a propensity of 0 (no draw in M made it best),
 * which inverse-propensity scoring cannot use; the campaign service
 * (ls_campaign.h) avoids that by drawing the arm from the probability
 * vector itself, see "Exact propensities" below.
 *
 * Exact propensities with m = 0. The campaign service estimates the
 * vector P_hat once per posterior and draws every decision's arm from it,
 * so the logged propensity P_hat(arm) is exactly the probability with
 * which the arm was drawn: the policy actually run is "draw from P_hat",
 * whose propensities are exact by construction. An arm whose P_TS
 * estimate is 0 (no draw of M made it best; likely when P_TS << 1/M) is
 * then never chosen until the next estimate: no decision carries a
 * propensity of 0, and IPS needs no smoothing (an arm the logging policy
 * never chose with probability 0 contributes nothing, as it should).
 * This is acceptable: P_hat is an unbiased estimate of P_TS, re-drawn
 * with every posterior change, so the allocation averaged over estimates
 * is Thompson sampling's exactly, and the arms cut off have P_TS of order
 * 1/M (1e-4 at the default M = 10,000). What the logs cannot support is
 * evaluating a target policy that puts weight on such arms; min_share > 0
 * buys that support at a cost (below).
 *
 * Cost of the floor. Exploring uniformly with probability n*m gives up,
 * per decision, about n*m*(best - mean) of reward, where best is the best
 * arm's rate and mean the arms' average, for as long as the campaign
 * runs (the floor never decays). With 3 arms, m = 0.01 and click rates
 * 4 %, 6 %, 9 %: 0.03 * (0.09 - 0.0633) = 0.0008 reward a decision, about
 * 1 % of the best arm's rate; measured in BENCHMARKS.md "Bandit learning
 * (issue 15)". Hence 0 by default.
 *
 * Cost: M * n Beta draws per propensity (each two Gamma draws), about
 * 25-60 ns a Beta draw, so ~0.1-0.2 ms for 3 arms and M = 1000.
 * P_TS only changes when counts change, so a caller may reuse a
 * probability vector until the next update to its posterior.
 *
 * Statistics (ls_bandit_stats) for the read API, per arm of the posterior
 * a decision for that bucket would use: the counts, the posterior
 * parameters, the posterior mean alpha / (alpha + beta) (exact), a central
 * 95% credible interval and the probability of being best (P_TS, Monte
 * Carlo as above, without the exploration share). The interval is by
 * sampling, not a normal approximation (which is poor for a few trials
 * or a rate near 0): `draws` posterior draws are sorted and the 2.5% and
 * 97.5% quantiles taken with linear interpolation between order
 * statistics (type 7: h = (draws - 1) q, x[floor h] + frac(h) (x[floor h +
 * 1] - x[floor h])). Each end has a Monte Carlo error of about
 * sqrt(q (1 - q) / draws) / f(x_q) for the posterior density f: about
 * 0.0005 for draws = 10,000 and a posterior from 300 trials at 10 %.
 *
 * Scale-out. Counters are additive: the counts after a set of updates are
 * the sums over the updates, whatever instance made them and in whatever
 * order, so several instances share one posterior by adding their updates
 * to shared counters (Redis HINCRBY for trials, HINCRBYFLOAT for rewards)
 * and loading them with ls_bandit_set_counts(); ls_bandit_add_counts()
 * adds a delta. Trials add exactly; rewards add exactly when every reward
 * is a multiple of a power of two (0/1 rewards, 0.25 steps, ...) and
 * otherwise up to double rounding, which depends on the order of addition
 * (ulps, far below any effect on a decision).
 *
 * Randomness. ls_rng (ls_rng.h) is xoshiro256** (Blackman and Vigna, 2018)
 * seeded through splitmix64 from one 64-bit seed: state owned by the
 * caller, so the same seed and the same calls give the same decisions
 * bit for bit, and each thread keeps its own. It gives uniform doubles in
 * (0,1) (never 0 or 1) and standard normals; on top of it here: Gamma(k,
 * 1) by Marsaglia and Tsang (2000), with the boost Gamma(k) = Gamma(k + 1)
 * U^(1/k) for k < 1, and Beta(a, b) = X / (X + Y) for X ~ Gamma(a),
 * Y ~ Gamma(b), computed through logarithms when a or b is below 1 so
 * that U^(1/k) underflowing for a tiny k cannot make it 0/0. Written here
 * because Debian packages no small C library for this: GSL has the
 * samplers but is GPL (leadscore is Apache-2.0) and a large dependency
 * for 150 lines; libc's random() / drand48() are global state or weak and
 * have no Gamma or Beta. Not cryptographic, and not meant to be.
 *
 * Memory: ls_bandit_new() and ls_bandit_clone() return a campaign the
 * caller frees with ls_bandit_free(); 16 bytes per arm and bucket plus 8
 * per bucket (about 1 MiB for 64 arms and 1,000 buckets). Nothing else
 * allocates except ls_bandit_stats() and ls_beta_interval() (a scratch
 * array of `draws` doubles, freed before they return). No I/O, no clock,
 * no global state; nothing logs, exits or asserts on input.
 *
 * Errors: functions returning int return LS_BANDIT_OK or a negative
 * ls_bandit_result (ls_bandit_result_str() names it) and leave their
 * outputs and the campaign unchanged on error. ls_bandit_new() writes a
 * reason to err.
 *
 * Thread-safety: a campaign has no locks. Decisions, probabilities,
 * statistics and the accessors only read it (they write only the rng), so
 * any number of threads, each with its own ls_rng, may use a campaign
 * nobody is updating, e.g. a snapshot made with ls_bandit_clone(). Updates
 * need the campaign to themselves.
 */
#ifndef LS_BANDIT_H
#define LS_BANDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_event.h"      /* LS_EMAIL__COUNT */
#include "ls_model_spec.h" /* LS_MODEL_KEY_MAX, LS_MODEL_NAME_MAX */
#include "ls_rng.h"

#define LS_BANDIT_MAX_ARMS 64
#define LS_BANDIT_MAX_BUCKETS 65536
/* Bounds the work of one Monte Carlo estimate (draws x arms Beta draws). */
#define LS_BANDIT_MAX_DRAWS 10000000u
/* The bucket argument meaning "no context": the campaign-wide counts. */
#define LS_BANDIT_CAMPAIGN SIZE_MAX
/* The central credible interval of ls_bandit_stats / ls_beta_interval. */
#define LS_BANDIT_CI_LEVEL 0.95

/*
 * Defaults. Beta(1,1): every rate equally likely before any trial. No
 * exploration floor (plain Thompson sampling; see "Cost of the floor").
 * No hard bucket switch. M = 1000 gives propensities within +-0.016 (one
 * standard error) at ~0.1 ms for a few arms. The library's prior_trials
 * default is 0 (buckets independent, as before the hierarchical prior);
 * campaigns (the config) default to LS_BANDIT_DEFAULT_PRIOR_TRIALS, chosen
 * by the regret benchmark (BENCHMARKS.md "Bandit learning (issue 15)").
 */
#define LS_BANDIT_DEFAULT_PRIOR_A 1.0
#define LS_BANDIT_DEFAULT_PRIOR_B 1.0
#define LS_BANDIT_DEFAULT_MIN_SHARE 0.0
#define LS_BANDIT_DEFAULT_MIN_BUCKET_TRIALS 0
#define LS_BANDIT_DEFAULT_PRIOR_TRIALS 30
#define LS_BANDIT_DEFAULT_MC_DRAWS 1000u

/* ---- campaign specs: what the config describes, the service runs ---- */

/*
 * One email-variant campaign of the `campaigns:` sequence (see docs/bandit.md
 * "Bandit"). Like a model spec it owns no memory and copies with '='. A
 * loaded spec passed every check: 1..LS_CAMPAIGN_MAX_ARMS distinct arms,
 * min_share <= 1 / n_arms, at least one reward event, a tier_model that
 * names a configured model when the context uses "tier".
 */
#define LS_CAMPAIGN_ID_MAX 64        /* campaign and arm ids, with the NUL */
#define LS_CAMPAIGN_MAX 32           /* campaigns in one config */
#define LS_CAMPAIGN_MAX_ARMS 64
#define LS_CAMPAIGN_MAX_CONTEXT 8    /* context keys per campaign */

typedef struct ls_campaign_spec {
	char id[LS_CAMPAIGN_ID_MAX];  /* [A-Za-z0-9_-]+, unique */
	size_t n_arms;
	char arms[LS_CAMPAIGN_MAX_ARMS][LS_CAMPAIGN_ID_MAX]; /* variant ids */
	/* reward of an email event type in [0,1]; 0: not a reward event */
	double reward_weight[LS_EMAIL__COUNT];
	int64_t reward_window_ms;     /* from activation; then default_reward */
	int64_t activation_timeout_ms; /* an unactivated decision lives this long */
	double default_reward;        /* applied when the window expires */
	double prior_a, prior_b;      /* Beta prior of every arm */
	double min_share;             /* exploration floor per arm */
	int64_t min_bucket_trials;    /* thinner buckets use the campaign's counts
					 (deprecated: prior_trials does it better) */
	int64_t prior_trials;         /* hierarchical prior's pseudo-trials per arm */
	int64_t refresh_trials;       /* posterior refreshed after this many
					 resolutions known to this instance... */
	int64_t refresh_ms;           /* ...or this long after "v" moved */
	int64_t max_buckets;          /* context buckets tracked; more: campaign-wide */
	int64_t propensity_draws;     /* Monte Carlo draws per probability vector */
	size_t n_context;             /* 0: one posterior for the campaign */
	char context[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX]; /* "tier" or a profile attribute */
	char tier_model[LS_MODEL_NAME_MAX]; /* whose tier "tier" means */
} ls_campaign_spec;

typedef enum ls_bandit_result {
	LS_BANDIT_OK = 0,
	LS_BANDIT_ERR_INVALID = -1,  /* bad argument: shape <= 0, reward
					outside [0,1], arm or bucket out of
					range, NULL, ... */
	LS_BANDIT_ERR_NOMEM = -2,
	LS_BANDIT_ERR_OVERFLOW = -3, /* a trial counter would pass
					UINT64_MAX */
} ls_bandit_result;

/* Name of a result, e.g. "invalid argument". Never NULL. */
const char *ls_bandit_result_str(int rc);

/* ---- randomness ---- */

/* ls_rng, its seed, bits, uniforms and normals: ls_rng.h. */

/*
 * *out = a draw from Gamma(shape k, scale 1) (mean k, variance k).
 * LS_BANDIT_ERR_INVALID when k is not finite and > 0. For k < 1 the draw
 * can underflow to 0 (the distribution has that much mass below 1e-308).
 */
int ls_rng_gamma(ls_rng *r, double k, double *out);
/*
 * *out = a draw from Beta(a, b) in [0,1]. LS_BANDIT_ERR_INVALID when a or
 * b is not finite and > 0.
 */
int ls_rng_beta(ls_rng *r, double a, double b, double *out);

/* ---- Beta posteriors ---- */

/* a / (a + b), or NaN when a or b is not finite and > 0. */
double ls_beta_mean(double a, double b);
/*
 * The central LS_BANDIT_CI_LEVEL credible interval of Beta(a, b) from
 * `draws` samples (2..LS_BANDIT_MAX_DRAWS), as described above.
 * LS_BANDIT_ERR_INVALID or LS_BANDIT_ERR_NOMEM.
 */
int ls_beta_interval(ls_rng *r, double a, double b, uint32_t draws,
		     double *lo, double *hi);

/* ---- campaigns ---- */

typedef struct ls_bandit_params {
	double prior_a;             /* finite, > 0 */
	double prior_b;             /* finite, > 0 */
	double min_share;           /* 0 <= min_share <= 1 / n_arms */
	uint64_t min_bucket_trials; /* 0: buckets always use their own */
	uint32_t mc_draws;          /* M, 1..LS_BANDIT_MAX_DRAWS */
	uint64_t prior_trials;      /* hierarchical prior's pseudo-trials per
				       arm; 0: buckets use only their own */
} ls_bandit_params;

typedef struct ls_bandit ls_bandit;

void ls_bandit_params_default(ls_bandit_params *p);
/* true when p suits a campaign of n_arms arms; otherwise a reason in err. */
bool ls_bandit_params_check(const ls_bandit_params *p, size_t n_arms,
			    char *err, size_t errlen);

/*
 * A campaign of n_arms arms (1..LS_BANDIT_MAX_ARMS) and n_buckets context
 * buckets (0..LS_BANDIT_MAX_BUCKETS), every counter 0. NULL with a reason
 * in err when an argument is invalid or memory runs out. To add or retire
 * arms (a config reload), build a new campaign and load the counts of the
 * arms that remain with ls_bandit_set_counts(). Free with ls_bandit_free()
 * (NULL is fine).
 */
ls_bandit *ls_bandit_new(const ls_bandit_params *p, size_t n_arms,
			 size_t n_buckets, char *err, size_t errlen);
void ls_bandit_free(ls_bandit *b);
/* A deep copy (a read-only snapshot for other threads), NULL on NOMEM. */
ls_bandit *ls_bandit_clone(const ls_bandit *b);

size_t ls_bandit_n_arms(const ls_bandit *b);
size_t ls_bandit_n_buckets(const ls_bandit *b);
const ls_bandit_params *ls_bandit_get_params(const ls_bandit *b);

/*
 * One resolved trial of arm in bucket (or LS_BANDIT_CAMPAIGN) with its
 * reward in [0,1] (0 when the reward window expired without one): adds 1
 * to trials and reward to rewards of the bucket and of the campaign-wide
 * counts. LS_BANDIT_ERR_INVALID for a NaN or out-of-range reward, arm or
 * bucket; LS_BANDIT_ERR_OVERFLOW when a counter is full.
 */
int ls_bandit_update(ls_bandit *b, size_t bucket, size_t arm, double reward);

/*
 * Add a delta of trials and rewards (finite, 0 <= rewards <= trials) to
 * bucket and the campaign-wide counts (to the campaign-wide ones only
 * for LS_BANDIT_CAMPAIGN), as `trials` updates summing to `rewards` would.
 */
int ls_bandit_add_counts(ls_bandit *b, size_t bucket, size_t arm,
			 uint64_t trials, double rewards);

/*
 * Set one counter pair exactly, for loading shared counts: bucket's (not
 * touching the campaign-wide pair) or, with LS_BANDIT_CAMPAIGN, the
 * campaign-wide pair. rewards finite, >= 0 and <= trials, with a relative
 * slack of 1e-9 for sums rounded in another process.
 */
int ls_bandit_set_counts(ls_bandit *b, size_t bucket, size_t arm,
			 uint64_t trials, double rewards);

/* The counters of arm in bucket (or LS_BANDIT_CAMPAIGN), raw: no
   fallback. LS_BANDIT_ERR_INVALID when out of range. */
int ls_bandit_counts(const ls_bandit *b, size_t bucket, size_t arm,
		     uint64_t *trials, double *rewards);
/* Total trials of bucket over all arms (0 when out of range). */
uint64_t ls_bandit_bucket_trials(const ls_bandit *b, size_t bucket);
/* true when bucket is thin and decides with the campaign-wide counts
   (false for LS_BANDIT_CAMPAIGN and out-of-range buckets). */
bool ls_bandit_uses_campaign(const ls_bandit *b, size_t bucket);

/*
 * A decision without its propensity (the fast path: n Beta draws, plus
 * one uniform when min_share > 0, and one more and no Beta draw when it
 * explores): *arm receives the chosen arm.
 * LS_BANDIT_ERR_INVALID for a bad bucket or NULL argument.
 */
int ls_bandit_choose(const ls_bandit *b, size_t bucket, ls_rng *r,
		     size_t *arm);

/*
 * probs[0..n_arms) = the policy's probability of every arm, P(arm) above,
 * with P_TS estimated from params.mc_draws joint draws. n is the length of
 * probs and must be >= n_arms.
 */
int ls_bandit_probabilities(const ls_bandit *b, size_t bucket, ls_rng *r,
			    double *probs, size_t n);

/*
 * ls_bandit_choose() then ls_bandit_probabilities() with the same rng:
 * *arm and *propensity = P(*arm). The same rng state gives the same arm
 * as ls_bandit_choose().
 */
int ls_bandit_decide(const ls_bandit *b, size_t bucket, ls_rng *r,
		     size_t *arm, double *propensity);

/*
 * p_best[0..n_arms) = P_TS, the probability of being best, from `draws`
 * (1..LS_BANDIT_MAX_DRAWS) joint posterior draws; n >= n_arms.
 */
int ls_bandit_prob_best(const ls_bandit *b, size_t bucket, ls_rng *r,
			uint32_t draws, double *p_best, size_t n);

/*
 * alpha[0..n_arms), beta[0..n_arms) = the posterior Beta parameters a
 * decision for bucket uses (the campaign's while it is thin, else its own
 * with the hierarchical prior). n >= n_arms. For callers that cache work
 * per posterior (the service's probability vectors).
 */
int ls_bandit_posterior(const ls_bandit *b, size_t bucket, double *alpha,
			double *beta, size_t n);

typedef struct ls_bandit_arm_stats {
	uint64_t trials;        /* counts of the posterior used: the */
	double rewards;         /* bucket's or, while thin, the campaign's */
	double alpha, beta;     /* the posterior Beta(alpha, beta), with the
				   hierarchical prior's pseudo-counts */
	double mean;            /* alpha / (alpha + beta) */
	double ci_low, ci_high; /* central 95 % credible interval */
	double p_best;          /* P_TS */
} ls_bandit_arm_stats;

/*
 * out[0..n_arms) = the statistics of every arm for bucket, with p_best
 * and the intervals from `draws` (2..LS_BANDIT_MAX_DRAWS) draws each.
 * n >= n_arms. LS_BANDIT_ERR_INVALID or LS_BANDIT_ERR_NOMEM.
 */
int ls_bandit_stats(const ls_bandit *b, size_t bucket, ls_rng *r,
		    uint32_t draws, ls_bandit_arm_stats *out, size_t n);

#endif
