/*
 * ls_eval.c - rolling evaluation window, tiers, publish decision.
 *
 * The window is a ring of two parallel arrays (predictions, labels)
 * allocated once at capacity, so a label costs a store and two index
 * updates and never an allocation: labels arrive on the batch loop's hot
 * path, metrics are read every few seconds. Parallel arrays rather than an
 * array of structs because a {double, uint8_t} struct pads to 16 bytes
 * and the labels would waste 7 of them per pair.
 *
 * While the ring is filling, the oldest pair is in slot 0 and the pairs
 * occupy slots [0, n); once full every slot is used. Either way slots
 * [0, n) hold exactly the window, which lets AUC (order-free, integer
 * counts) read the storage directly. Log-loss and ECE sum floating-point
 * terms, whose result depends on the order of summation in the last bits,
 * so they walk the ring oldest-first in two segments: the same order as
 * the arrays handed to ls_eval_*_of() and as the blob, which is what makes
 * window, arrays and a restored window agree bit for bit.
 *
 * AUC: sort the positives' and the negatives' predictions separately, then
 * for each positive x (ascending) count the negatives below x (lo) and at
 * most x (hi) with two pointers that only move forward. lo + hi is twice
 * x's contribution to U (a tie counts one half), so 2U is an exact integer
 * and AUC = 2U / (2 P N) is the correctly rounded quotient, identical to a
 * brute-force pair count. The scratch array is allocated per call so that
 * the function is const and safe for concurrent readers of a snapshot.
 *
 * ECE: sum_b n_b/N |mean(p)_b - mean(y)_b| equals sum_b |S_b - Y_b| / N
 * where S_b is the bin's sum of predictions and Y_b its positive count;
 * that form needs no per-bin division and is what is computed.
 */
#include "ls_err.h"
#include "ls_varint.h"
#include "ls_eval.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

struct ls_eval {
	size_t cap;      /* slots */
	size_t head;     /* slot of the oldest pair (0 until the ring is full) */
	size_t n;        /* pairs held */
	size_t pos;      /* positives among them */
	uint64_t total;  /* pairs ever added, carried across checkpoints */
	double *p;       /* cap predictions */
	uint8_t *y;      /* cap labels, 0 or 1 */
};

const char *ls_eval_result_str(int rc)
{
	switch (rc) {
	case LS_EVAL_OK:
		return "ok";
	case LS_EVAL_ERR_INVALID:
		return "invalid argument";
	case LS_EVAL_ERR_NOMEM:
		return "out of memory";
	case LS_EVAL_ERR_CORRUPT:
		return "blob corrupt";
	case LS_EVAL_ERR_SPACE:
		return "buffer too small";
	default:
		return "unknown result";
	}
}

static bool valid_p(double p)
{
	/* Written so that NaN fails. */
	return p >= 0.0 && p <= 1.0;
}

/* ---- the window ---------------------------------------------------- */

ls_eval *ls_eval_new(size_t capacity)
{
	if (capacity == 0 || capacity > LS_EVAL_MAX_CAPACITY)
		return NULL;
	ls_eval *ev = calloc(1, sizeof *ev);
	if (!ev)
		return NULL;
	ev->p = malloc(capacity * sizeof *ev->p);
	ev->y = malloc(capacity * sizeof *ev->y);
	if (!ev->p || !ev->y) {
		ls_eval_free(ev);
		return NULL;
	}
	ev->cap = capacity;
	return ev;
}

void ls_eval_free(ls_eval *ev)
{
	if (!ev)
		return;
	free(ev->p);
	free(ev->y);
	free(ev);
}

/* Append without validation; the callers have checked p. */
static void ring_push(ls_eval *ev, double p, uint8_t y)
{
	size_t slot;
	if (ev->n < ev->cap) {
		slot = ev->n; /* head is 0 while filling */
		ev->n++;
	} else {
		slot = ev->head;
		ev->pos -= ev->y[slot];
		ev->head = ev->head + 1 == ev->cap ? 0 : ev->head + 1;
	}
	ev->p[slot] = p;
	ev->y[slot] = y;
	ev->pos += y;
}

int ls_eval_add(ls_eval *ev, double p, bool positive)
{
	if (!ev || !valid_p(p))
		return LS_EVAL_ERR_INVALID;
	ring_push(ev, p, positive ? 1 : 0);
	ev->total++;
	return LS_EVAL_OK;
}

size_t ls_eval_capacity(const ls_eval *ev)
{
	return ev ? ev->cap : 0;
}

size_t ls_eval_count(const ls_eval *ev)
{
	return ev ? ev->n : 0;
}

size_t ls_eval_positives(const ls_eval *ev)
{
	return ev ? ev->pos : 0;
}

uint64_t ls_eval_total(const ls_eval *ev)
{
	return ev ? ev->total : 0;
}

static size_t slot_of(const ls_eval *ev, size_t i)
{
	size_t s = ev->head + i;
	return s >= ev->cap ? s - ev->cap : s;
}

bool ls_eval_at(const ls_eval *ev, size_t i, double *p, bool *positive)
{
	if (!ev || i >= ev->n)
		return false;
	size_t s = slot_of(ev, i);
	if (p)
		*p = ev->p[s];
	if (positive)
		*positive = ev->y[s] != 0;
	return true;
}

/*
 * The window oldest-first as at most two runs of slots: [head, head+len0)
 * then [0, len1).
 */
static void segments(const ls_eval *ev, size_t *len0, size_t *len1)
{
	size_t first = ev->cap - ev->head;
	*len0 = ev->n < first ? ev->n : first;
	*len1 = ev->n - *len0;
}

/* ---- AUC -------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double ls_eval_auc_of(const double *p, const uint8_t *y, size_t n)
{
	if (!p || !y || n == 0)
		return NAN;
	size_t npos = 0;
	for (size_t i = 0; i < n; i++) {
		if (!valid_p(p[i]))
			return NAN;
		npos += y[i] != 0;
	}
	size_t nneg = n - npos;
	if (npos == 0 || nneg == 0)
		return NAN;

	double *buf = malloc(n * sizeof *buf);
	if (!buf)
		return NAN;
	double *pos = buf, *neg = buf + npos;
	size_t ip = 0, in = 0;
	for (size_t i = 0; i < n; i++) {
		if (y[i])
			pos[ip++] = p[i];
		else
			neg[in++] = p[i];
	}
	qsort(pos, npos, sizeof *pos, cmp_double);
	qsort(neg, nneg, sizeof *neg, cmp_double);

	uint64_t two_u = 0;
	size_t lo = 0, hi = 0;
	for (size_t i = 0; i < npos; i++) {
		double x = pos[i];
		while (lo < nneg && neg[lo] < x)
			lo++;
		if (hi < lo)
			hi = lo;
		while (hi < nneg && neg[hi] <= x)
			hi++;
		two_u += (uint64_t)lo + (uint64_t)hi;
	}
	free(buf);
	return (double)two_u / (2.0 * (double)npos * (double)nneg);
}

double ls_eval_auc(const ls_eval *ev)
{
	if (!ev)
		return NAN;
	/* Slots [0, n) are the window (see the top of the file). */
	return ls_eval_auc_of(ev->p, ev->y, ev->n);
}

/* ---- log-loss ----------------------------------------------------------- */

static double logloss_acc(const double *p, const uint8_t *y, size_t n,
			  double acc)
{
	for (size_t i = 0; i < n; i++) {
		if (!valid_p(p[i]))
			return NAN;
		/*
		 * Clamp the probability given to what happened, not p: the
		 * double nearest 1 - 1e-15 is 1 - 9.99e-16, so clamping p
		 * would charge a certain miss on a negative 34.5396 but one
		 * on a positive 34.5388. 1 - p is exact for p >= 0.5, where
		 * it matters.
		 */
		double q = y[i] ? p[i] : 1.0 - p[i];
		if (q < LS_EVAL_P_MIN)
			q = LS_EVAL_P_MIN;
		else if (q > LS_EVAL_P_MAX)
			q = LS_EVAL_P_MAX;
		acc -= log(q);
	}
	return acc;
}

double ls_eval_logloss_of(const double *p, const uint8_t *y, size_t n)
{
	if (!p || !y || n == 0)
		return NAN;
	return logloss_acc(p, y, n, 0.0) / (double)n;
}

double ls_eval_logloss(const ls_eval *ev)
{
	if (!ev || ev->n == 0)
		return NAN;
	size_t len0, len1;
	segments(ev, &len0, &len1);
	double acc = logloss_acc(ev->p + ev->head, ev->y + ev->head, len0, 0.0);
	acc = logloss_acc(ev->p, ev->y, len1, acc);
	return acc / (double)ev->n;
}

/* ---- ECE ---------------------------------------------------------------- */

typedef struct ece_acc {
	double sum_p[LS_EVAL_ECE_BINS];
	size_t pos[LS_EVAL_ECE_BINS];
	bool bad;
} ece_acc;

/*
 * Bin of p in [0,1]: the number of edges k/10.0 (k = 1..9) that p reaches.
 * floor(10 p) is right for nearly every p, but 10 p rounds, so a p just
 * below an edge literal can land one bin high (and vice versa in
 * principle); the two comparisons make the edges exactly the literals.
 */
static size_t ece_bin(double p)
{
	int b = (int)(p * LS_EVAL_ECE_BINS);
	if (b > LS_EVAL_ECE_BINS - 1)
		b = LS_EVAL_ECE_BINS - 1;
	if (b < LS_EVAL_ECE_BINS - 1 &&
	    p >= (double)(b + 1) / LS_EVAL_ECE_BINS)
		b++;
	else if (b > 0 && p < (double)b / LS_EVAL_ECE_BINS)
		b--;
	return (size_t)b;
}

static void ece_add(ece_acc *a, const double *p, const uint8_t *y, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!valid_p(p[i])) {
			a->bad = true;
			return;
		}
		size_t b = ece_bin(p[i]);
		a->sum_p[b] += p[i];
		a->pos[b] += y[i] != 0;
	}
}

static double ece_finish(const ece_acc *a, size_t n)
{
	if (a->bad || n == 0)
		return NAN;
	double s = 0.0;
	for (size_t b = 0; b < LS_EVAL_ECE_BINS; b++)
		s += fabs(a->sum_p[b] - (double)a->pos[b]);
	return s / (double)n;
}

double ls_eval_ece_of(const double *p, const uint8_t *y, size_t n)
{
	if (!p || !y || n == 0)
		return NAN;
	ece_acc a;
	memset(&a, 0, sizeof a);
	ece_add(&a, p, y, n);
	return ece_finish(&a, n);
}

double ls_eval_ece(const ls_eval *ev)
{
	if (!ev || ev->n == 0)
		return NAN;
	size_t len0, len1;
	segments(ev, &len0, &len1);
	ece_acc a;
	memset(&a, 0, sizeof a);
	ece_add(&a, ev->p + ev->head, ev->y + ev->head, len0);
	ece_add(&a, ev->p, ev->y, len1);
	return ece_finish(&a, ev->n);
}

/* ---- blob --------------------------------------------------------------- */




size_t ls_eval_encoded_size(const ls_eval *ev)
{
	if (!ev)
		return 0;
	return 1 + ls_varint_len(ev->cap) + ls_varint_len(ev->total) +
	       ls_varint_len(ev->n) + (ev->n + 7) / 8 + 8 * ev->n + 8;
}

int ls_eval_encode(const ls_eval *ev, uint8_t *buf, size_t cap, size_t *len)
{
	if (!ev || !buf)
		return LS_EVAL_ERR_INVALID;
	size_t need = ls_eval_encoded_size(ev);
	if (cap < need)
		return LS_EVAL_ERR_SPACE;
	uint8_t *o = buf;
	*o++ = LS_EVAL_BLOB_VERSION;
	o = ls_varint_put(o, ev->cap);
	o = ls_varint_put(o, ev->total);
	o = ls_varint_put(o, ev->n);
	size_t nbytes = (ev->n + 7) / 8;
	memset(o, 0, nbytes);
	for (size_t i = 0; i < ev->n; i++)
		if (ev->y[slot_of(ev, i)])
			o[i / 8] |= (uint8_t)(1u << (i % 8));
	o += nbytes;
	for (size_t i = 0; i < ev->n; i++) {
		uint64_t bits;
		memcpy(&bits, &ev->p[slot_of(ev, i)], sizeof bits);
		o = ls_u64le_put(o, bits);
	}
	o = ls_u64le_put(o, XXH3_64bits(buf, (size_t)(o - buf)));
	if (len)
		*len = (size_t)(o - buf);
	return LS_EVAL_OK;
}

/*
 * Read a minimal LEB128 varint from d[*off..end). Minimal so that every
 * window has one encoding; at most 10 bytes and no bits beyond 64.
 */

int ls_eval_decode(const uint8_t *data, size_t len, size_t capacity,
		   ls_eval **out, char *err, size_t errlen)
{
	if (out)
		*out = NULL;
	if (!out || (!data && len > 0) || capacity > LS_EVAL_MAX_CAPACITY) {
		ls_set_err(err, errlen, "invalid argument");
		return LS_EVAL_ERR_INVALID;
	}
	if (len < 1) {
		ls_set_err(err, errlen, "empty blob");
		return LS_EVAL_ERR_CORRUPT;
	}
	if (data[0] != LS_EVAL_BLOB_VERSION) {
		ls_set_err(err, errlen, "at byte 0: unsupported version %u",
			(unsigned)data[0]);
		return LS_EVAL_ERR_CORRUPT;
	}
	if (len < 1 + 3 + 8) {
		ls_set_err(err, errlen, "truncated: %zu bytes", len);
		return LS_EVAL_ERR_CORRUPT;
	}
	size_t end = len - 8;
	if (XXH3_64bits(data, end) != ls_u64le_get(data + end)) {
		ls_set_err(err, errlen, "at byte %zu: checksum mismatch", end);
		return LS_EVAL_ERR_CORRUPT;
	}

	/* The checksum matched; the structure is still checked in full. */
	size_t off = 1;
	uint64_t bcap, total, n;
	if (ls_varint_get(data, end, &off, &bcap) != NULL || bcap == 0 ||
	    bcap > LS_EVAL_MAX_CAPACITY) {
		ls_set_err(err, errlen, "at byte %zu: bad capacity", off);
		return LS_EVAL_ERR_CORRUPT;
	}
	if (ls_varint_get(data, end, &off, &total) != NULL) {
		ls_set_err(err, errlen, "at byte %zu: bad total", off);
		return LS_EVAL_ERR_CORRUPT;
	}
	if (ls_varint_get(data, end, &off, &n) != NULL || n > bcap || n > total) {
		ls_set_err(err, errlen, "at byte %zu: bad pair count", off);
		return LS_EVAL_ERR_CORRUPT;
	}
	/* n <= 2^20, so none of this overflows. */
	size_t nbytes = ((size_t)n + 7) / 8;
	if (end - off != nbytes + 8 * (size_t)n) {
		ls_set_err(err, errlen,
			"at byte %zu: %zu bytes of pairs, expected %zu", off,
			end - off, nbytes + 8 * (size_t)n);
		return LS_EVAL_ERR_CORRUPT;
	}
	const uint8_t *labels = data + off;
	if ((n % 8) != 0 && (labels[nbytes - 1] >> (n % 8)) != 0) {
		ls_set_err(err, errlen, "at byte %zu: padding bits set",
			off + nbytes - 1);
		return LS_EVAL_ERR_CORRUPT;
	}
	const uint8_t *preds = labels + nbytes;
	for (size_t i = 0; i < n; i++) {
		uint64_t bits = ls_u64le_get(preds + 8 * i);
		double p;
		memcpy(&p, &bits, sizeof p);
		if (!valid_p(p)) {
			ls_set_err(err, errlen,
				"at byte %zu: prediction outside [0,1]",
				off + nbytes + 8 * i);
			return LS_EVAL_ERR_CORRUPT;
		}
	}

	size_t wcap = capacity ? capacity : (size_t)bcap;
	ls_eval *ev = ls_eval_new(wcap);
	if (!ev) {
		ls_set_err(err, errlen, "out of memory");
		return LS_EVAL_ERR_NOMEM;
	}
	/* Keep the newest wcap pairs when the window shrank. */
	size_t skip = (size_t)n > wcap ? (size_t)n - wcap : 0;
	for (size_t i = skip; i < n; i++) {
		uint64_t bits = ls_u64le_get(preds + 8 * i);
		double p;
		memcpy(&p, &bits, sizeof p);
		ring_push(ev, p, (uint8_t)((labels[i / 8] >> (i % 8)) & 1));
	}
	ev->total = total;
	*out = ev;
	return LS_EVAL_OK;
}

/* ---- tiers -------------------------------------------------------------- */

/* Validate into w; the caller copies w out only when this succeeds. */
static bool tiers_build(ls_tiers *w, const char *const *names,
			const double *bounds, size_t n, double h, char *err,
			size_t errlen)
{
	if (n < 1 || n > LS_TIERS_MAX) {
		ls_set_err(err, errlen, "tiers: %zu tiers, need 1..%d", n,
			LS_TIERS_MAX);
		return false;
	}
	if (!names || (n > 1 && !bounds)) {
		ls_set_err(err, errlen, "tiers: names or boundaries missing");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!names[i] || names[i][0] == '\0') {
			ls_set_err(err, errlen, "tiers: tier %zu has an empty name",
				i);
			return false;
		}
		size_t len = strlen(names[i]);
		if (len >= LS_TIER_NAME_MAX) {
			ls_set_err(err, errlen,
				"tiers: name of tier %zu longer than %d bytes",
				i, LS_TIER_NAME_MAX - 1);
			return false;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(names[i], names[j]) == 0) {
				ls_set_err(err, errlen,
					"tiers: name \"%s\" used twice",
					names[i]);
				return false;
			}
		}
		memcpy(w->names[i], names[i], len + 1);
	}
	for (size_t k = 0; k + 1 < n; k++) {
		double b = bounds[k];
		if (!(b > 0.0 && b < 1.0)) {
			ls_set_err(err, errlen,
				"tiers: boundary %zu (%g) not inside (0,1)", k,
				b);
			return false;
		}
		if (k > 0 && !(b > bounds[k - 1])) {
			ls_set_err(err, errlen,
				"tiers: boundary %zu (%g) not above boundary "
				"%zu (%g)",
				k, b, k - 1, bounds[k - 1]);
			return false;
		}
		w->bounds[k] = b;
	}
	if (!(h >= 0.0 && isfinite(h))) {
		ls_set_err(err, errlen,
			"tiers: hysteresis %g not finite and >= 0", h);
		return false;
	}
	if (n > 1) {
		/* The lowest and highest tiers need room below / above. */
		if (!(h < bounds[0])) {
			ls_set_err(err, errlen,
				"tiers: hysteresis %g not below the first "
				"boundary %g",
				h, bounds[0]);
			return false;
		}
		if (!(h < 1.0 - bounds[n - 2])) {
			ls_set_err(err, errlen,
				"tiers: hysteresis %g not below 1 - the last "
				"boundary %g",
				h, bounds[n - 2]);
			return false;
		}
		for (size_t k = 1; k + 1 < n; k++) {
			double gap = bounds[k] - bounds[k - 1];
			if (!(2.0 * h < gap)) {
				ls_set_err(err, errlen,
					"tiers: hysteresis %g not below half "
					"the gap %g between boundaries %zu "
					"and %zu",
					h, gap, k - 1, k);
				return false;
			}
		}
	}
	w->n = n;
	w->hysteresis = h;
	return true;
}

bool ls_tiers_init(ls_tiers *t, const char *const *names, const double *bounds,
		   size_t n, double hysteresis, char *err, size_t errlen)
{
	if (!t) {
		ls_set_err(err, errlen, "tiers: no output");
		return false;
	}
	ls_tiers w;
	memset(&w, 0, sizeof w);
	bool ok = tiers_build(&w, names, bounds, n, hysteresis, err, errlen);
	if (ok)
		*t = w;
	else
		memset(t, 0, sizeof *t);
	return ok;
}

int ls_tiers_assign(const ls_tiers *t, int prev, double score)
{
	if (!t || t->n == 0 || isnan(score) || prev < -1 ||
	    prev >= (int)t->n)
		return -1;
	size_t nb = t->n - 1;
	if (prev < 0) {
		int tier = 0;
		for (size_t k = 0; k < nb; k++)
			tier += score >= t->bounds[k];
		return tier;
	}
	double h = t->hysteresis;
	int up = 0, down = 0;
	for (size_t k = 0; k < nb; k++) {
		up += score >= t->bounds[k] + h;
		down += score >= t->bounds[k] - h;
	}
	if (up > prev)
		return up;
	if (down < prev)
		return down;
	return prev;
}

const char *ls_tiers_name(const ls_tiers *t, int i)
{
	if (!t || i < 0 || (size_t)i >= t->n)
		return NULL;
	return t->names[i];
}

/* ---- publish decision ------------------------------------------------- */

bool ls_score_should_publish(double prev_score, int prev_tier,
			     double new_score, int new_tier, double min_delta)
{
	if (isnan(new_score))
		return false;
	if (isnan(prev_score) || prev_tier < 0)
		return true;
	if (new_tier != prev_tier)
		return true;
	return fabs(new_score - prev_score) >= min_delta - 1e-12;
}

double ls_score_maturity(uint64_t positives, uint64_t negatives, int64_t maturity)
{
	if (maturity <= 0)
		return 1.0;
	double labels = (double)positives + (double)negatives;
	double lambda = labels / (double)maturity;
	double need_pos = ceil(0.12 * (double)maturity);
	double by_pos = (double)positives / need_pos;
	if (by_pos < lambda)
		lambda = by_pos;
	return lambda < 1.0 ? lambda : 1.0;
}

double ls_score_shrink(double p, double bias_weight, uint64_t positives,
		       uint64_t negatives, int64_t maturity)
{
	double lambda = ls_score_maturity(positives, negatives, maturity);
	if (lambda >= 1.0 || isnan(p) || !isfinite(bias_weight))
		return p;
	/* the model clamps its logit to +-35; p is never exactly 0 or 1
	 * then, but a caller's may be: clamp so the logit stays finite */
	double q = p < 1e-15 ? 1e-15 : p > 1.0 - 1e-15 ? 1.0 - 1e-15 : p;
	double b = ((double)positives + 0.5) / ((double)positives + (double)negatives + 1.0);
	double s = log(q / (1.0 - q)) - (1.0 - lambda) * (bias_weight - log(b / (1.0 - b)));
	return 1.0 / (1.0 + exp(-s));
}
