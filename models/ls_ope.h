/*
 * ls_ope.h - offline policy evaluation for the email-variant bandit:
 * estimate what a target policy pi would have earned from decisions that
 * another policy (the logging policy, ls_bandit) made and logged.
 *
 * What: each logged decision is a record of
 *     p    the logging policy's probability of the arm it chose, in (0,1]
 *          (ls_bandit_decide's propensity, >= min_share > 0)
 *     r    the reward that followed, in [0,1] (0 when the reward window
 *          expired without one)
 *     pi   the target policy's probability of that same logged arm, in
 *          [0,1] (see the target helpers at the end)
 * and has the importance weight
 *     w = pi / p,   or min(pi / p, clip) when a clip (> 0) is set
 * For n accepted records, with x_i = w_i r_i:
 *
 *   IPS    V = (1/n) sum x_i
 *          SE = s_x / sqrt(n), s_x^2 = sum (x_i - V)^2 / (n - 1)
 *          Unbiased for the target's value when every arm pi can choose
 *          had p > 0 (always so for ls_bandit with min_share > 0) and the
 *          logged p are exact, and no weight is clipped; also when the
 *          logger adapts as it learns, as long as each p is its
 *          probability at the time of that decision.
 *   SNIPS  V = sum x_i / sum w_i, the w-weighted mean of the rewards
 *          SE^2 = n / (n - 1) * sum w_i^2 (r_i - V)^2 / (sum w_i)^2
 *          (the delta method for the ratio of the means of x and w, with
 *          the residuals' variance divided by n - 1 as for IPS; so when
 *          every w_i = 1, on-policy data, IPS and SNIPS give the sample
 *          mean and the same SE). Biased by O(1/n), but always within
 *          [0,1] and usually of much lower variance than IPS.
 *   Both intervals are V +- 1.959964 SE, the normal approximation of the
 *   estimator's sampling distribution: asymptotic, so trust it only when
 *   the effective sample size below is large (hundreds or more) and the
 *   weights are not dominated by a few records. The bounds are not clipped
 *   to [0,1]. With n < 2, SE and the interval are NaN.
 *   When sum w_i == 0 (the target never picks an arm that was logged,
 *   e.g. pi == 0 on every record), SNIPS is 0/0: its value, SE and
 *   interval are NaN while IPS is 0 with SE 0. The data say nothing about
 *   the target then; ess == 0 flags it.
 *
 * Which to prefer: SNIPS for reporting a policy's value, especially when
 * the weights are heavy (a target concentrated on arms the logger rarely
 * played) or ess is small compared to n; IPS when an unbiased estimate
 * matters more than its variance (e.g. averaging many estimates), and as
 * a cross-check: IPS far from SNIPS means the weights do not average to
 * 1 in this sample. Clipping trades the variance of rare huge weights for
 * a bias towards 0 (IPS) or towards the rewards of unclipped records
 * (SNIPS); n_clipped says how often it mattered.
 *
 * Diagnostics: mean_weight = sum w / n has expectation exactly 1 (without
 * clipping) when every arm the target can pick had p > 0, so a value far
 * from 1 points at wrong propensities or a logging bug. ess = (sum w)^2 /
 * sum w^2 is Kish's effective sample size (n when all weights are equal,
 * 1 when one record carries all the weight; 0 when sum w == 0).
 * max_weight is the largest weight used (after clipping), max_raw_weight
 * the largest pi / p seen. ls_bandit's propensities are Monte Carlo
 * estimates (see ls_bandit.h): their error enters the weights too, and is
 * not in these SEs.
 *
 * Streaming: an accumulator (ls_ope) takes one record at a time and keeps
 * O(1) state, so millions of records need no storage. The IPS mean and
 * variance are Welford's running mean and sum of squared deviations; the
 * SNIPS mean is a running w-weighted mean (West, 1979) with the sum of
 * w^2 (r - mean)^2 kept about the running mean, and the weight sums are
 * Neumaier-compensated. Nothing is computed as a difference of large
 * uncentred sums, so a constant reward gives a SNIPS SE of exactly 0
 * (not rounding noise) however many records there are. ls_ope_merge()
 * combines two accumulators (Chan et al.) for data split across threads
 * or files; the result equals one accumulator over both up to rounding
 * (not bit for bit). ls_ope_finish() reads the accumulator without
 * changing it, so a caller may report and keep adding. ls_ope_evaluate()
 * is the batch form: bit for bit the same as adding the records in order.
 *
 * Validation: a record is accepted or rejected whole. A rejected record
 * changes nothing but its reject counter; ls_ope_add() returns the first
 * reason that applies, checked in this order:
 *     LS_OPE_ERR_NAN          p, r or pi is NaN
 *     LS_OPE_ERR_P_NONPOS     p <= 0 (IPS cannot use it: infinite weight)
 *     LS_OPE_ERR_P_ABOVE_1    p > 1 (+inf included)
 *     LS_OPE_ERR_REWARD       r outside [0,1] (infinities included)
 *     LS_OPE_ERR_TARGET       pi outside [0,1] (infinities included)
 *     LS_OPE_ERR_WEIGHT       no clip and pi / p > LS_OPE_MAX_WEIGHT: a p
 *                             so small (below pi * 1e-100) that the
 *                             weight would overflow the sums of squares
 * LS_OPE_ERR_INVALID is a bad argument, not a record: NULL, a clip that
 * is NaN, negative or above LS_OPE_MAX_WEIGHT, a target helper's arm out
 * of range or a vector that is not a probability vector.
 * LS_OPE_ERR_EMPTY is returned by ls_ope_finish() when no record was
 * accepted (it still fills the counters; every estimate is NaN).
 * ls_ope_result_str() names a code.
 *
 * Memory: none allocated. An accumulator is a plain struct the caller
 * owns (stack or heap, 160 bytes); its fields are private. No I/O, no
 * clock, no global state; nothing logs, exits or asserts on input.
 *
 * Thread-safety: an accumulator has no locks: one thread adds to it at a
 * time, and ls_ope_finish() may run concurrently with other readers of an
 * accumulator nobody is adding to. For parallel evaluation give each
 * thread its own accumulator and merge them. The target helpers and
 * ls_ope_evaluate() are pure and reentrant.
 */
#ifndef LS_OPE_H
#define LS_OPE_H

#include <stddef.h>
#include <stdint.h>

/* The two-sided 95 % normal quantile: Phi^-1(0.975). */
#define LS_OPE_Z95 1.959963984540054
/* How far a target probability vector's sum may be from 1. */
#define LS_OPE_VECTOR_SUM_TOL 1e-6
/* Largest unclipped weight accepted: keeps n w^2 and (n w)^2 finite for
   any n < 2^64. Far above any weight worth estimating with. */
#define LS_OPE_MAX_WEIGHT 1e100

typedef enum ls_ope_result_code {
	LS_OPE_OK = 0,
	LS_OPE_ERR_INVALID = -1,    /* bad argument (not a record) */
	LS_OPE_ERR_NAN = -2,        /* p, r or pi is NaN */
	LS_OPE_ERR_P_NONPOS = -3,   /* propensity <= 0 */
	LS_OPE_ERR_P_ABOVE_1 = -4,  /* propensity > 1 */
	LS_OPE_ERR_REWARD = -5,     /* reward outside [0,1] */
	LS_OPE_ERR_TARGET = -6,     /* target probability outside [0,1] */
	LS_OPE_ERR_WEIGHT = -7,     /* unclipped weight > LS_OPE_MAX_WEIGHT */
	LS_OPE_ERR_EMPTY = -8,      /* no accepted record to estimate from */
} ls_ope_result_code;

/* Name of a result code, e.g. "propensity <= 0". Never NULL. */
const char *ls_ope_result_str(int rc);

/* One estimator's output. se and the interval are NaN when n < 2; all
   four are NaN for SNIPS when sum w == 0. */
typedef struct ls_ope_estimate {
	double value;
	double se;
	double ci_low, ci_high; /* value -+ LS_OPE_Z95 * se */
} ls_ope_estimate;

typedef struct ls_ope_result {
	uint64_t n;              /* records accepted */
	uint64_t n_rejected;     /* records rejected, the sum of: */
	uint64_t rejected_nan;
	uint64_t rejected_p_nonpos;
	uint64_t rejected_p_above_1;
	uint64_t rejected_reward;
	uint64_t rejected_target;
	uint64_t rejected_weight;
	uint64_t n_clipped;      /* accepted records whose pi / p > clip */
	ls_ope_estimate ips;
	ls_ope_estimate snips;
	double sum_weight;       /* sum w */
	double mean_weight;      /* sum w / n */
	double ess;              /* (sum w)^2 / sum w^2, 0 when sum w == 0 */
	double max_weight;       /* largest w used (after clipping) */
	double max_raw_weight;   /* largest pi / p (before clipping) */
} ls_ope_result;

/* The accumulator. Fields are private: use the functions below. */
typedef struct ls_ope {
	double clip;            /* 0: no clipping */
	uint64_t n;
	uint64_t n_clipped;
	uint64_t rejected[6];   /* by -code - 2: NAN .. WEIGHT */
	double x_mean, x_m2;    /* Welford over x = w r */
	double w_sum, w_sum_c;  /* Neumaier sum of w and its compensation */
	double w2_sum, w2_sum_c;/* the same for w^2 */
	double sn_mean;         /* w-weighted mean of r */
	double sn_t;            /* sum w^2 (r - sn_mean)^2 */
	double sn_a;            /* sum w^2 (r - sn_mean) */
	double w_max, w_raw_max;
} ls_ope;

/*
 * An empty accumulator; clip is the largest weight used (pi / p above it
 * becomes clip), 0 for none. LS_OPE_ERR_INVALID (acc untouched) when acc
 * is NULL or clip is NaN, negative or above LS_OPE_MAX_WEIGHT.
 */
int ls_ope_init(ls_ope *acc, double clip);

/*
 * Add one record: propensity p, reward r, target probability pi of the
 * logged arm. LS_OPE_OK when accepted; otherwise the reason (see above),
 * and the record is only counted as rejected. LS_OPE_ERR_INVALID when acc
 * is NULL.
 */
int ls_ope_add(ls_ope *acc, double p, double r, double pi);

/*
 * Add the records summarised in `from` to `into`, as if they had been
 * added to into one by one (reject and clip counts included). Both must
 * have the same clip; otherwise (or NULL, or from == into)
 * LS_OPE_ERR_INVALID and into is unchanged.
 */
int ls_ope_merge(ls_ope *into, const ls_ope *from);

/*
 * Fill *out with the estimates and diagnostics of everything added so far,
 * leaving acc unchanged. LS_OPE_OK; LS_OPE_ERR_EMPTY when no record was
 * accepted (counters filled, sum_weight and ess 0, every other figure NaN);
 * LS_OPE_ERR_INVALID when an argument is NULL (out unchanged).
 */
int ls_ope_finish(const ls_ope *acc, ls_ope_result *out);

/*
 * The batch form: records i in [0, n) are (p[i], r[i], pi[i]), evaluated
 * with clip as ls_ope_init + ls_ope_add in order + ls_ope_finish, and the
 * same return value as ls_ope_finish. Invalid records are rejected and
 * counted, not fatal. LS_OPE_ERR_INVALID for a bad clip, a NULL out, or a
 * NULL array with n > 0.
 */
int ls_ope_evaluate(const double *p, const double *r, const double *pi,
		    size_t n, double clip, ls_ope_result *out);

/* ---- target policies: pi of the logged arm ---- */

/* Uniform over k arms: *pi = 1 / k. LS_OPE_ERR_INVALID when k == 0. */
int ls_ope_target_uniform(size_t k, double *pi);

/*
 * Always target_arm: *pi = 1 when logged_arm == target_arm, else 0. Both
 * must be < n_arms; otherwise LS_OPE_ERR_INVALID.
 */
int ls_ope_target_fixed(size_t n_arms, size_t target_arm, size_t logged_arm,
			double *pi);

/*
 * A stochastic target given as probs[0..n_arms), e.g. from
 * ls_bandit_probabilities() for the context of the logged decision:
 * *pi = probs[logged_arm]. LS_OPE_ERR_INVALID when logged_arm >= n_arms,
 * n_arms == 0, or probs is not a probability vector (an entry NaN or
 * outside [0,1], or the sum more than LS_OPE_VECTOR_SUM_TOL from 1).
 * O(n_arms): it checks the whole vector every call.
 */
int ls_ope_target_vector(const double *probs, size_t n_arms,
			 size_t logged_arm, double *pi);

#endif
