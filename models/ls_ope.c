/*
 * ls_ope.c - IPS and SNIPS estimates of a target policy's value from
 * logged bandit decisions; see ls_ope.h for the formulas and contract.
 *
 * Everything is one pass with O(1) state, because an evaluation over a
 * campaign's history can be millions of records streamed from a log.
 * The naive one-pass form (sum x, sum x^2, then sum x^2 - n mean^2)
 * loses all precision when the variance is small against the mean, which
 * is the usual case here (rewards near 0.1, weights near 1), so:
 *
 *   IPS keeps Welford's running mean of x = w r and M2 = sum (x - mean)^2.
 *
 *   SNIPS is the mean of r weighted by w, so it keeps a running weighted
 *   mean M (West, 1979: M += (w / W) (r - M)). Its delta-method variance
 *   needs T = sum w_j^2 (r_j - M)^2 about the final M, weighted by w^2
 *   rather than w, so West's own update does not give it. But moving the
 *   centre from M to M + d changes T by -2 d A + d^2 S2, with
 *   A = sum w_j^2 (r_j - M) and S2 = sum w_j^2, and A by -d S2: keeping
 *   A next to T makes the update exact algebra, and every term stays
 *   centred (d shrinks like 1/n), so nothing cancels catastrophically.
 *   A record with w == 0 adds nothing to any of them.
 *
 *   The plain sums of w and w^2 (for the weighted mean's step, the
 *   diagnostics and ESS) are Neumaier-compensated: their error stays a
 *   few ulps whatever n, instead of growing with it.
 *
 * Merging two accumulators is the same centre-moving algebra applied to
 * both halves (Chan, Golub and LeVeque for the Welford part).
 */
#include "ls_ope.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define N_REASONS 6 /* LS_OPE_ERR_NAN .. LS_OPE_ERR_WEIGHT */

const char *ls_ope_result_str(int rc)
{
	switch (rc) {
	case LS_OPE_OK: return "ok";
	case LS_OPE_ERR_INVALID: return "invalid argument";
	case LS_OPE_ERR_NAN: return "NaN in record";
	case LS_OPE_ERR_P_NONPOS: return "propensity <= 0";
	case LS_OPE_ERR_P_ABOVE_1: return "propensity > 1";
	case LS_OPE_ERR_REWARD: return "reward outside [0,1]";
	case LS_OPE_ERR_TARGET: return "target probability outside [0,1]";
	case LS_OPE_ERR_WEIGHT: return "weight too large";
	case LS_OPE_ERR_EMPTY: return "no accepted record";
	default: return "unknown result";
	}
}

static size_t reason_index(int rc)
{
	return (size_t)(-rc - 2);
}

/* Neumaier's variant of Kahan summation: also right when x is larger
   than the running sum. The value is *s + *c. */
static void ksum_add(double *s, double *c, double x)
{
	double t = *s + x;
	if (fabs(*s) >= fabs(x))
		*c += (*s - t) + x;
	else
		*c += (x - t) + *s;
	*s = t;
}

static bool clip_ok(double clip)
{
	/* false for NaN too */
	return clip >= 0.0 && clip <= LS_OPE_MAX_WEIGHT;
}

int ls_ope_init(ls_ope *acc, double clip)
{
	if (acc == NULL || !clip_ok(clip))
		return LS_OPE_ERR_INVALID;
	memset(acc, 0, sizeof *acc);
	acc->clip = clip;
	return LS_OPE_OK;
}

static int check_record(double p, double r, double pi)
{
	if (isnan(p) || isnan(r) || isnan(pi))
		return LS_OPE_ERR_NAN;
	if (p <= 0.0)
		return LS_OPE_ERR_P_NONPOS;
	if (p > 1.0)
		return LS_OPE_ERR_P_ABOVE_1;
	if (r < 0.0 || r > 1.0)
		return LS_OPE_ERR_REWARD;
	if (pi < 0.0 || pi > 1.0)
		return LS_OPE_ERR_TARGET;
	return LS_OPE_OK;
}

int ls_ope_add(ls_ope *acc, double p, double r, double pi)
{
	if (acc == NULL)
		return LS_OPE_ERR_INVALID;
	int rc = check_record(p, r, pi);
	/* pi / p can overflow to inf for a subnormal p; with a clip that is
	   harmless (min(inf, clip) = clip), without one it is rejected. */
	double raw = rc == LS_OPE_OK ? pi / p : 0.0;
	if (rc == LS_OPE_OK && acc->clip == 0.0 && !(raw <= LS_OPE_MAX_WEIGHT))
		rc = LS_OPE_ERR_WEIGHT;
	if (rc != LS_OPE_OK) {
		acc->rejected[reason_index(rc)]++;
		return rc;
	}

	double w = raw;
	if (acc->clip > 0.0 && raw > acc->clip) {
		w = acc->clip;
		acc->n_clipped++;
	}
	if (raw > acc->w_raw_max)
		acc->w_raw_max = raw;
	if (w > acc->w_max)
		acc->w_max = w;

	double x = w * r;
	acc->n++;
	double dx = x - acc->x_mean;
	acc->x_mean += dx / (double)acc->n;
	acc->x_m2 += dx * (x - acc->x_mean);

	if (w > 0.0) {
		double s2_old = acc->w2_sum + acc->w2_sum_c;
		ksum_add(&acc->w_sum, &acc->w_sum_c, w);
		double w_tot = acc->w_sum + acc->w_sum_c;
		double m_old = acc->sn_mean;
		double m_new = m_old + (w / w_tot) * (r - m_old);
		double d = m_new - m_old;
		double e = r - m_new;
		double w2 = w * w;
		acc->sn_t += d * (d * s2_old - 2.0 * acc->sn_a) + w2 * e * e;
		acc->sn_a += w2 * e - d * s2_old;
		acc->sn_mean = m_new;
		ksum_add(&acc->w2_sum, &acc->w2_sum_c, w2);
	}
	return LS_OPE_OK;
}

int ls_ope_merge(ls_ope *into, const ls_ope *from)
{
	if (into == NULL || from == NULL || into == from ||
	    into->clip != from->clip)
		return LS_OPE_ERR_INVALID;

	for (size_t i = 0; i < N_REASONS; i++)
		into->rejected[i] += from->rejected[i];
	into->n_clipped += from->n_clipped;
	if (from->n == 0)
		return LS_OPE_OK;
	if (into->n == 0) {
		uint64_t rej[N_REASONS];
		memcpy(rej, into->rejected, sizeof rej);
		uint64_t clipped = into->n_clipped;
		*into = *from;
		memcpy(into->rejected, rej, sizeof rej);
		into->n_clipped = clipped;
		return LS_OPE_OK;
	}

	double na = (double)into->n, nb = (double)from->n;
	double n = na + nb;
	double dx = from->x_mean - into->x_mean;
	into->x_mean += dx * (nb / n);
	into->x_m2 += from->x_m2 + dx * dx * (na / n) * nb;
	into->n += from->n;

	double wa = into->w_sum + into->w_sum_c;
	double wb = from->w_sum + from->w_sum_c;
	double s2a = into->w2_sum + into->w2_sum_c;
	double s2b = from->w2_sum + from->w2_sum_c;
	if (wa == 0.0) {
		into->sn_mean = from->sn_mean;
		into->sn_t = from->sn_t;
		into->sn_a = from->sn_a;
	} else if (wb > 0.0) {
		double m = into->sn_mean +
			   (wb / (wa + wb)) * (from->sn_mean - into->sn_mean);
		double da = m - into->sn_mean, db = m - from->sn_mean;
		into->sn_t += da * (da * s2a - 2.0 * into->sn_a) + from->sn_t +
			      db * (db * s2b - 2.0 * from->sn_a);
		into->sn_a += from->sn_a - da * s2a - db * s2b;
		into->sn_mean = m;
	}
	ksum_add(&into->w_sum, &into->w_sum_c, from->w_sum);
	ksum_add(&into->w_sum, &into->w_sum_c, from->w_sum_c);
	ksum_add(&into->w2_sum, &into->w2_sum_c, from->w2_sum);
	ksum_add(&into->w2_sum, &into->w2_sum_c, from->w2_sum_c);
	if (from->w_max > into->w_max)
		into->w_max = from->w_max;
	if (from->w_raw_max > into->w_raw_max)
		into->w_raw_max = from->w_raw_max;
	return LS_OPE_OK;
}

static void set_interval(ls_ope_estimate *e)
{
	e->ci_low = e->value - LS_OPE_Z95 * e->se;
	e->ci_high = e->value + LS_OPE_Z95 * e->se;
}

int ls_ope_finish(const ls_ope *acc, ls_ope_result *out)
{
	if (acc == NULL || out == NULL)
		return LS_OPE_ERR_INVALID;

	ls_ope_result res;
	memset(&res, 0, sizeof res);
	res.n = acc->n;
	res.rejected_nan = acc->rejected[reason_index(LS_OPE_ERR_NAN)];
	res.rejected_p_nonpos = acc->rejected[reason_index(LS_OPE_ERR_P_NONPOS)];
	res.rejected_p_above_1 =
		acc->rejected[reason_index(LS_OPE_ERR_P_ABOVE_1)];
	res.rejected_reward = acc->rejected[reason_index(LS_OPE_ERR_REWARD)];
	res.rejected_target = acc->rejected[reason_index(LS_OPE_ERR_TARGET)];
	res.rejected_weight = acc->rejected[reason_index(LS_OPE_ERR_WEIGHT)];
	for (size_t i = 0; i < N_REASONS; i++)
		res.n_rejected += acc->rejected[i];
	res.n_clipped = acc->n_clipped;

	res.ips.value = res.ips.se = res.ips.ci_low = res.ips.ci_high = NAN;
	res.snips = res.ips;
	res.mean_weight = res.max_weight = res.max_raw_weight = NAN;
	double w_tot = acc->w_sum + acc->w_sum_c;
	double s2 = acc->w2_sum + acc->w2_sum_c;
	res.sum_weight = w_tot;
	res.ess = s2 > 0.0 ? w_tot * w_tot / s2 : 0.0;
	if (acc->n == 0) {
		*out = res;
		return LS_OPE_ERR_EMPTY;
	}

	double n = (double)acc->n;
	res.mean_weight = w_tot / n;
	res.max_weight = acc->w_max;
	res.max_raw_weight = acc->w_raw_max;

	res.ips.value = acc->x_mean;
	if (acc->n >= 2) {
		/* Welford's M2 is a sum of products of same-signed terms, so
		   it cannot go negative; the fmax only guards the sqrt. */
		res.ips.se = sqrt(fmax(acc->x_m2, 0.0) / (n - 1.0) / n);
		set_interval(&res.ips);
	}

	if (w_tot > 0.0) {
		res.snips.value = acc->sn_mean;
		if (acc->n >= 2) {
			double t = fmax(acc->sn_t, 0.0);
			res.snips.se = sqrt(n / (n - 1.0) * t) / w_tot;
			set_interval(&res.snips);
		}
	}
	*out = res;
	return LS_OPE_OK;
}

int ls_ope_evaluate(const double *p, const double *r, const double *pi,
		    size_t n, double clip, ls_ope_result *out)
{
	if (out == NULL || (n > 0 && (p == NULL || r == NULL || pi == NULL)))
		return LS_OPE_ERR_INVALID;
	ls_ope acc;
	if (ls_ope_init(&acc, clip) != LS_OPE_OK)
		return LS_OPE_ERR_INVALID;
	for (size_t i = 0; i < n; i++)
		(void)ls_ope_add(&acc, p[i], r[i], pi[i]); /* counted */
	return ls_ope_finish(&acc, out);
}

/* ---- target policies ---- */

int ls_ope_target_uniform(size_t k, double *pi)
{
	if (k == 0 || pi == NULL)
		return LS_OPE_ERR_INVALID;
	*pi = 1.0 / (double)k;
	return LS_OPE_OK;
}

int ls_ope_target_fixed(size_t n_arms, size_t target_arm, size_t logged_arm,
			double *pi)
{
	if (target_arm >= n_arms || logged_arm >= n_arms || pi == NULL)
		return LS_OPE_ERR_INVALID;
	*pi = logged_arm == target_arm ? 1.0 : 0.0;
	return LS_OPE_OK;
}

int ls_ope_target_vector(const double *probs, size_t n_arms,
			 size_t logged_arm, double *pi)
{
	if (probs == NULL || pi == NULL || n_arms == 0 || logged_arm >= n_arms)
		return LS_OPE_ERR_INVALID;
	double sum = 0.0;
	for (size_t i = 0; i < n_arms; i++) {
		/* written so that NaN fails too */
		if (!(probs[i] >= 0.0 && probs[i] <= 1.0))
			return LS_OPE_ERR_INVALID;
		sum += probs[i];
	}
	if (!(fabs(sum - 1.0) <= LS_OPE_VECTOR_SUM_TOL))
		return LS_OPE_ERR_INVALID;
	*pi = probs[logged_arm];
	return LS_OPE_OK;
}
