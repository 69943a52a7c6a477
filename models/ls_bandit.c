/*
 * ls_bandit.c - Beta-Bernoulli Thompson sampling; see ls_bandit.h for the
 * policy, the propensity estimate and the counter semantics.
 *
 * Counters are one flat array of (trials, rewards) cells, row 0 the
 * campaign-wide counts and row 1 + k bucket k, n_arms cells a row, plus
 * each row's total trials (kept up to date so that the fallback test is
 * one comparison, not a sum over arms). Flat because a campaign's shape is
 * fixed at creation: a reload of arms builds a new campaign anyway.
 *
 * The samplers are the textbook ones, chosen for being short, exact and
 * fast for every shape a posterior can have (from a prior of 0.01 to
 * billions of trials): Marsaglia-Tsang accepts at least 95 % of its
 * candidates for every shape >= 1, so a Gamma draw costs little more than
 * one normal and one uniform, and its squeeze test accepts most
 * candidates without a logarithm. Shapes below 1 go through
 * logarithms (see ls_bandit.h) because U^(1/k) underflows for small k.
 *
 * A decision copies the n posterior parameters into arrays on the stack
 * once (n <= 64), so the Monte Carlo loop does no division or branching
 * on counts, and allocates nothing.
 */
#include "ls_err.h"
#include "ls_bandit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cell {
	uint64_t trials;
	double rewards;
} cell;

struct ls_bandit {
	ls_bandit_params p;
	size_t n_arms;
	size_t n_buckets;
	cell *cells;      /* (1 + n_buckets) * n_arms; row 0 campaign-wide */
	uint64_t *totals; /* 1 + n_buckets: trials of each row over arms */
};

const char *ls_bandit_result_str(int rc)
{
	switch (rc) {
	case LS_BANDIT_OK: return "ok";
	case LS_BANDIT_ERR_INVALID: return "invalid argument";
	case LS_BANDIT_ERR_NOMEM: return "out of memory";
	case LS_BANDIT_ERR_OVERFLOW: return "counter overflow";
	default: return "unknown error";
	}
}

/* ---- randomness ---- */

/* ls_rng itself (xoshiro256**, uniforms, normals) is base/ls_rng.c. */

/* Marsaglia-Tsang for k >= 1 (d = k - 1/3 >= 2/3). */
static double gamma_mt(ls_rng *r, double k)
{
	const double d = k - 1.0 / 3.0;
	const double c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		double x, v;
		do {
			x = ls_rng_normal(r);
			v = 1.0 + c * x;
		} while (v <= 0.0);
		v = v * v * v;
		double u = ls_rng_uniform(r);
		double x2 = x * x;
		if (u < 1.0 - 0.0331 * x2 * x2)
			return d * v;
		if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
			return d * v;
	}
}

/* log of a Gamma(k) draw, any k > 0; never -inf for k < 1 underflow. */
static double log_gamma_draw(ls_rng *r, double k)
{
	if (k >= 1.0)
		return log(gamma_mt(r, k));
	double g = gamma_mt(r, k + 1.0);
	return log(g) + log(ls_rng_uniform(r)) / k;
}

static bool shape_ok(double k)
{
	return isfinite(k) && k > 0.0;
}

int ls_rng_gamma(ls_rng *r, double k, double *out)
{
	if (r == NULL || out == NULL || !shape_ok(k))
		return LS_BANDIT_ERR_INVALID;
	if (k >= 1.0) {
		*out = gamma_mt(r, k);
	} else {
		double g = gamma_mt(r, k + 1.0);
		*out = g * pow(ls_rng_uniform(r), 1.0 / k);
	}
	return LS_BANDIT_OK;
}

/* Beta(a, b) for valid shapes. */
static double beta_draw(ls_rng *r, double a, double b)
{
	if (a >= 1.0 && b >= 1.0) {
		double x = gamma_mt(r, a);
		double y = gamma_mt(r, b);
		return x / (x + y);
	}
	/* X / (X + Y) = 1 / (1 + exp(log Y - log X)); exp overflowing to inf
	   gives 0, as it should. */
	double lx = log_gamma_draw(r, a);
	double ly = log_gamma_draw(r, b);
	return 1.0 / (1.0 + exp(ly - lx));
}

int ls_rng_beta(ls_rng *r, double a, double b, double *out)
{
	if (r == NULL || out == NULL || !shape_ok(a) || !shape_ok(b))
		return LS_BANDIT_ERR_INVALID;
	*out = beta_draw(r, a, b);
	return LS_BANDIT_OK;
}

/* ---- Beta posteriors ---- */

double ls_beta_mean(double a, double b)
{
	if (!shape_ok(a) || !shape_ok(b))
		return NAN;
	return a / (a + b);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

/* Type-7 quantile of sorted x[0..n), n >= 2. */
static double quantile_sorted(const double *x, size_t n, double q)
{
	double h = (double)(n - 1) * q;
	double fl = floor(h);
	size_t i = (size_t)fl;
	if (i + 1 >= n)
		return x[n - 1];
	return x[i] + (h - fl) * (x[i + 1] - x[i]);
}

/* Interval from `draws` samples into scratch (draws doubles). */
static void interval_into(ls_rng *r, double a, double b, uint32_t draws,
			  double *scratch, double *lo, double *hi)
{
	for (uint32_t i = 0; i < draws; i++)
		scratch[i] = beta_draw(r, a, b);
	qsort(scratch, draws, sizeof *scratch, cmp_double);
	double tail = (1.0 - LS_BANDIT_CI_LEVEL) / 2.0;
	*lo = quantile_sorted(scratch, draws, tail);
	*hi = quantile_sorted(scratch, draws, 1.0 - tail);
}

int ls_beta_interval(ls_rng *r, double a, double b, uint32_t draws,
		     double *lo, double *hi)
{
	if (r == NULL || lo == NULL || hi == NULL || !shape_ok(a) ||
	    !shape_ok(b) || draws < 2 || draws > LS_BANDIT_MAX_DRAWS)
		return LS_BANDIT_ERR_INVALID;
	double *scratch = malloc(draws * sizeof *scratch);
	if (scratch == NULL)
		return LS_BANDIT_ERR_NOMEM;
	interval_into(r, a, b, draws, scratch, lo, hi);
	free(scratch);
	return LS_BANDIT_OK;
}

/* ---- campaigns ---- */

void ls_bandit_params_default(ls_bandit_params *p)
{
	if (p == NULL)
		return;
	p->prior_a = LS_BANDIT_DEFAULT_PRIOR_A;
	p->prior_b = LS_BANDIT_DEFAULT_PRIOR_B;
	p->min_share = LS_BANDIT_DEFAULT_MIN_SHARE;
	p->min_bucket_trials = LS_BANDIT_DEFAULT_MIN_BUCKET_TRIALS;
	p->mc_draws = LS_BANDIT_DEFAULT_MC_DRAWS;
	p->prior_trials = 0; /* see LS_BANDIT_DEFAULT_PRIOR_TRIALS */
}

/* min_share * n may exceed 1 by rounding when min_share is 1.0 / n. */
#define SHARE_SLACK 1e-12

bool ls_bandit_params_check(const ls_bandit_params *p, size_t n_arms,
			    char *err, size_t errlen)
{
	if (p == NULL) {
		ls_set_err(err, errlen, "no parameters");
		return false;
	}
	if (n_arms < 1 || n_arms > LS_BANDIT_MAX_ARMS) {
		ls_set_err(err, errlen, "arms: %zu, must be 1..%d", n_arms,
			   LS_BANDIT_MAX_ARMS);
		return false;
	}
	if (!shape_ok(p->prior_a) || !shape_ok(p->prior_b)) {
		ls_set_err(err, errlen,
			   "prior Beta(%g, %g): both must be finite and > 0",
			   p->prior_a, p->prior_b);
		return false;
	}
	if (!isfinite(p->min_share) || p->min_share < 0.0 ||
	    p->min_share * (double)n_arms > 1.0 + SHARE_SLACK) {
		ls_set_err(err, errlen,
			   "min_share %g: must be in [0, 1/%zu]", p->min_share,
			   n_arms);
		return false;
	}
	if (p->mc_draws < 1 || p->mc_draws > LS_BANDIT_MAX_DRAWS) {
		ls_set_err(err, errlen, "mc_draws %u: must be 1..%u",
			   p->mc_draws, LS_BANDIT_MAX_DRAWS);
		return false;
	}
	return true;
}

ls_bandit *ls_bandit_new(const ls_bandit_params *p, size_t n_arms,
			 size_t n_buckets, char *err, size_t errlen)
{
	if (!ls_bandit_params_check(p, n_arms, err, errlen))
		return NULL;
	if (n_buckets > LS_BANDIT_MAX_BUCKETS) {
		ls_set_err(err, errlen, "buckets: %zu, at most %d", n_buckets,
			   LS_BANDIT_MAX_BUCKETS);
		return NULL;
	}
	ls_bandit *b = calloc(1, sizeof *b);
	if (b == NULL) {
		ls_set_err(err, errlen, "out of memory");
		return NULL;
	}
	b->p = *p;
	b->n_arms = n_arms;
	b->n_buckets = n_buckets;
	b->cells = calloc((1 + n_buckets) * n_arms, sizeof *b->cells);
	b->totals = calloc(1 + n_buckets, sizeof *b->totals);
	if (b->cells == NULL || b->totals == NULL) {
		ls_bandit_free(b);
		ls_set_err(err, errlen, "out of memory");
		return NULL;
	}
	return b;
}

void ls_bandit_free(ls_bandit *b)
{
	if (b == NULL)
		return;
	free(b->cells);
	free(b->totals);
	free(b);
}

ls_bandit *ls_bandit_clone(const ls_bandit *b)
{
	if (b == NULL)
		return NULL;
	ls_bandit *c = ls_bandit_new(&b->p, b->n_arms, b->n_buckets, NULL, 0);
	if (c == NULL)
		return NULL;
	memcpy(c->cells, b->cells,
	       (1 + b->n_buckets) * b->n_arms * sizeof *b->cells);
	memcpy(c->totals, b->totals, (1 + b->n_buckets) * sizeof *b->totals);
	return c;
}

size_t ls_bandit_n_arms(const ls_bandit *b)
{
	return b == NULL ? 0 : b->n_arms;
}

size_t ls_bandit_n_buckets(const ls_bandit *b)
{
	return b == NULL ? 0 : b->n_buckets;
}

const ls_bandit_params *ls_bandit_get_params(const ls_bandit *b)
{
	return b == NULL ? NULL : &b->p;
}

/* Row of bucket (0 for the campaign), or -1 when out of range. */
static long row_of(const ls_bandit *b, size_t bucket)
{
	if (bucket == LS_BANDIT_CAMPAIGN)
		return 0;
	if (bucket >= b->n_buckets)
		return -1;
	return (long)bucket + 1;
}

static cell *cell_at(const ls_bandit *b, long row, size_t arm)
{
	return &b->cells[(size_t)row * b->n_arms + arm];
}

/* Row a decision for bucket uses: the bucket's, or 0 while it is thin. */
static long decision_row(const ls_bandit *b, size_t bucket)
{
	long row = row_of(b, bucket);
	if (row > 0 && b->totals[row] < b->p.min_bucket_trials)
		return 0;
	return row;
}

/* Slack for rewards summed as doubles elsewhere (set_counts). */
static bool rewards_ok(uint64_t trials, double rewards, double rel_slack)
{
	if (!isfinite(rewards) || rewards < 0.0)
		return false;
	double t = (double)trials;
	return rewards <= t + rel_slack * (t > 1.0 ? t : 1.0);
}

/* Add to one row, both checks done first so a failure changes nothing. */
static int add_row_check(const ls_bandit *b, long row, size_t arm,
			 uint64_t trials)
{
	const cell *c = cell_at(b, row, arm);
	if (c->trials > UINT64_MAX - trials ||
	    b->totals[row] > UINT64_MAX - trials)
		return LS_BANDIT_ERR_OVERFLOW;
	return LS_BANDIT_OK;
}

static void add_row(ls_bandit *b, long row, size_t arm, uint64_t trials,
		    double rewards)
{
	cell *c = cell_at(b, row, arm);
	c->trials += trials;
	c->rewards += rewards;
	b->totals[row] += trials;
}

int ls_bandit_add_counts(ls_bandit *b, size_t bucket, size_t arm,
			 uint64_t trials, double rewards)
{
	if (b == NULL || arm >= b->n_arms)
		return LS_BANDIT_ERR_INVALID;
	long row = row_of(b, bucket);
	if (row < 0 || !rewards_ok(trials, rewards, 0.0))
		return LS_BANDIT_ERR_INVALID;
	int rc = add_row_check(b, 0, arm, trials);
	if (rc == LS_BANDIT_OK && row > 0)
		rc = add_row_check(b, row, arm, trials);
	if (rc != LS_BANDIT_OK)
		return rc;
	add_row(b, 0, arm, trials, rewards);
	if (row > 0)
		add_row(b, row, arm, trials, rewards);
	return LS_BANDIT_OK;
}

int ls_bandit_update(ls_bandit *b, size_t bucket, size_t arm, double reward)
{
	if (!(reward >= 0.0 && reward <= 1.0)) /* NaN fails both */
		return LS_BANDIT_ERR_INVALID;
	return ls_bandit_add_counts(b, bucket, arm, 1, reward);
}

int ls_bandit_set_counts(ls_bandit *b, size_t bucket, size_t arm,
			 uint64_t trials, double rewards)
{
	if (b == NULL || arm >= b->n_arms)
		return LS_BANDIT_ERR_INVALID;
	long row = row_of(b, bucket);
	if (row < 0 || !rewards_ok(trials, rewards, 1e-9))
		return LS_BANDIT_ERR_INVALID;
	cell *c = cell_at(b, row, arm);
	uint64_t rest = b->totals[row] - c->trials;
	if (rest > UINT64_MAX - trials)
		return LS_BANDIT_ERR_OVERFLOW;
	c->trials = trials;
	c->rewards = rewards;
	b->totals[row] = rest + trials;
	return LS_BANDIT_OK;
}

int ls_bandit_counts(const ls_bandit *b, size_t bucket, size_t arm,
		     uint64_t *trials, double *rewards)
{
	if (b == NULL || arm >= b->n_arms || trials == NULL ||
	    rewards == NULL)
		return LS_BANDIT_ERR_INVALID;
	long row = row_of(b, bucket);
	if (row < 0)
		return LS_BANDIT_ERR_INVALID;
	const cell *c = cell_at(b, row, arm);
	*trials = c->trials;
	*rewards = c->rewards;
	return LS_BANDIT_OK;
}

uint64_t ls_bandit_bucket_trials(const ls_bandit *b, size_t bucket)
{
	if (b == NULL)
		return 0;
	long row = row_of(b, bucket);
	return row < 0 ? 0 : b->totals[row];
}

bool ls_bandit_uses_campaign(const ls_bandit *b, size_t bucket)
{
	if (b == NULL || bucket == LS_BANDIT_CAMPAIGN)
		return false;
	long row = row_of(b, bucket);
	return row > 0 && decision_row(b, bucket) == 0;
}

/*
 * Posterior parameters of every arm of a row. A bucket's row adds the
 * hierarchical prior's pseudo-counts (ls_bandit.h): the rest of the
 * campaign, scaled to at most prior_trials trials per arm. When the rest
 * fits unscaled, the sum prior + rest + own is the campaign-wide row's
 * prior + counts, so it is computed from those: (R - r) + r need not be
 * R in doubles, and a thin bucket must reproduce the campaign's draws
 * bit for bit.
 */
static void posterior(const ls_bandit *b, long row, double *pa, double *pb)
{
	uint64_t m = row > 0 ? b->p.prior_trials : 0;
	for (size_t i = 0; i < b->n_arms; i++) {
		const cell *c = cell_at(b, row, i);
		const cell *all = cell_at(b, 0, i);
		double succ = c->rewards, fail = (double)c->trials - c->rewards;
		if (fail < 0.0)
			fail = 0.0;
		if (m > 0) {
			/* a torn load can leave the campaign-wide pair below the
			   bucket's: then the rest is empty */
			uint64_t rest_t = all->trials > c->trials ? all->trials - c->trials : 0;
			if (rest_t == 0) {
				/* own counts only (as computed above) */
			} else if (rest_t <= m) {
				succ = all->rewards;
				fail = (double)all->trials - all->rewards;
			} else {
				double rest_r = all->rewards - c->rewards;
				if (rest_r < 0.0)
					rest_r = 0.0;
				if (rest_r > (double)rest_t)
					rest_r = (double)rest_t;
				double scale = (double)m / (double)rest_t;
				succ += scale * rest_r;
				fail += scale * ((double)rest_t - rest_r);
			}
			if (fail < 0.0)
				fail = 0.0;
		}
		pa[i] = b->p.prior_a + succ;
		pb[i] = b->p.prior_b + fail;
	}
}

int ls_bandit_posterior(const ls_bandit *b, size_t bucket, double *alpha,
			double *beta, size_t n)
{
	if (b == NULL || alpha == NULL || beta == NULL || n < b->n_arms)
		return LS_BANDIT_ERR_INVALID;
	long row = decision_row(b, bucket);
	if (row < 0)
		return LS_BANDIT_ERR_INVALID;
	posterior(b, row, alpha, beta);
	return LS_BANDIT_OK;
}

/* One Thompson draw: the argmax of one draw per arm, lowest index wins. */
static size_t thompson(ls_rng *r, const double *pa, const double *pb,
		       size_t n)
{
	size_t best = 0;
	double best_x = -1.0;
	for (size_t i = 0; i < n; i++) {
		double x = beta_draw(r, pa[i], pb[i]);
		if (x > best_x) {
			best_x = x;
			best = i;
		}
	}
	return best;
}

/* P_TS from draws joint draws into p[0..n). */
static void prob_best(ls_rng *r, const double *pa, const double *pb,
		      size_t n, uint32_t draws, double *p)
{
	uint32_t count[LS_BANDIT_MAX_ARMS] = { 0 };
	for (uint32_t m = 0; m < draws; m++)
		count[thompson(r, pa, pb, n)]++;
	for (size_t i = 0; i < n; i++)
		p[i] = (double)count[i] / (double)draws;
}

/* The exploration probability n * min_share, capped at 1 (see check). */
static double explore_share(const ls_bandit *b)
{
	double e = b->p.min_share * (double)b->n_arms;
	return e > 1.0 ? 1.0 : e;
}

int ls_bandit_choose(const ls_bandit *b, size_t bucket, ls_rng *r,
		     size_t *arm)
{
	if (b == NULL || r == NULL || arm == NULL)
		return LS_BANDIT_ERR_INVALID;
	long row = decision_row(b, bucket);
	if (row < 0)
		return LS_BANDIT_ERR_INVALID;
	double e = explore_share(b);
	if (e > 0.0 && ls_rng_uniform(r) < e) {
		/* floor(u n) < n since u <= 1 - 2^-53 and n <= 64. */
		*arm = (size_t)(ls_rng_uniform(r) * (double)b->n_arms);
		return LS_BANDIT_OK;
	}
	double pa[LS_BANDIT_MAX_ARMS], pb[LS_BANDIT_MAX_ARMS];
	posterior(b, row, pa, pb);
	*arm = thompson(r, pa, pb, b->n_arms);
	return LS_BANDIT_OK;
}

int ls_bandit_prob_best(const ls_bandit *b, size_t bucket, ls_rng *r,
			uint32_t draws, double *p_best, size_t n)
{
	if (b == NULL || r == NULL || p_best == NULL || n < b->n_arms ||
	    draws < 1 || draws > LS_BANDIT_MAX_DRAWS)
		return LS_BANDIT_ERR_INVALID;
	long row = decision_row(b, bucket);
	if (row < 0)
		return LS_BANDIT_ERR_INVALID;
	double pa[LS_BANDIT_MAX_ARMS], pb[LS_BANDIT_MAX_ARMS];
	posterior(b, row, pa, pb);
	prob_best(r, pa, pb, b->n_arms, draws, p_best);
	return LS_BANDIT_OK;
}

int ls_bandit_probabilities(const ls_bandit *b, size_t bucket, ls_rng *r,
			    double *probs, size_t n)
{
	if (b == NULL)
		return LS_BANDIT_ERR_INVALID;
	int rc = ls_bandit_prob_best(b, bucket, r, b->p.mc_draws, probs, n);
	if (rc != LS_BANDIT_OK)
		return rc;
	double e = explore_share(b);
	/* min_share, or 1/n when n * min_share rounded above 1 */
	double m = e >= 1.0 ? 1.0 / (double)b->n_arms : b->p.min_share;
	for (size_t i = 0; i < b->n_arms; i++)
		probs[i] = m + (1.0 - e) * probs[i];
	return LS_BANDIT_OK;
}

int ls_bandit_decide(const ls_bandit *b, size_t bucket, ls_rng *r,
		     size_t *arm, double *propensity)
{
	if (propensity == NULL || arm == NULL)
		return LS_BANDIT_ERR_INVALID;
	size_t a;
	int rc = ls_bandit_choose(b, bucket, r, &a);
	if (rc != LS_BANDIT_OK)
		return rc;
	double probs[LS_BANDIT_MAX_ARMS];
	rc = ls_bandit_probabilities(b, bucket, r, probs, LS_BANDIT_MAX_ARMS);
	if (rc != LS_BANDIT_OK)
		return rc;
	*arm = a;
	*propensity = probs[a];
	return LS_BANDIT_OK;
}

int ls_bandit_stats(const ls_bandit *b, size_t bucket, ls_rng *r,
		    uint32_t draws, ls_bandit_arm_stats *out, size_t n)
{
	if (b == NULL || r == NULL || out == NULL || n < b->n_arms ||
	    draws < 2 || draws > LS_BANDIT_MAX_DRAWS)
		return LS_BANDIT_ERR_INVALID;
	long row = decision_row(b, bucket);
	if (row < 0)
		return LS_BANDIT_ERR_INVALID;
	double *scratch = malloc(draws * sizeof *scratch);
	if (scratch == NULL)
		return LS_BANDIT_ERR_NOMEM;
	double pa[LS_BANDIT_MAX_ARMS], pb[LS_BANDIT_MAX_ARMS];
	double best[LS_BANDIT_MAX_ARMS];
	posterior(b, row, pa, pb);
	prob_best(r, pa, pb, b->n_arms, draws, best);
	for (size_t i = 0; i < b->n_arms; i++) {
		const cell *c = cell_at(b, row, i);
		ls_bandit_arm_stats *s = &out[i];
		s->trials = c->trials;
		s->rewards = c->rewards;
		s->alpha = pa[i];
		s->beta = pb[i];
		s->mean = pa[i] / (pa[i] + pb[i]);
		interval_into(r, pa[i], pb[i], draws, scratch, &s->ci_low,
			      &s->ci_high);
		s->p_best = best[i];
	}
	free(scratch);
	return LS_BANDIT_OK;
}
