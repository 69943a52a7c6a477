/*
 * ls_quantile.c - the relative-error quantile sketch of ls_quantile.h.
 *
 * Bins. A DDSketch maps v > 0 to ceil(log_gamma v). Computing that with
 * libm's log would make the bin of a value near a boundary depend on the
 * libm an instance was built with, and the sketch is merged across
 * instances. So the bins here are aligned on octaves instead: 35 per
 * octave, bin boundaries 2^(i/35), and the bin of |v| is found exactly
 * with frexp (the octave) and a binary search in a table of the 35
 * mantissa boundaries, written as hexadecimal literals (each correctly
 * rounded). Nothing but exact comparisons decides a bin. gamma = 2^(1/35)
 * = 1.0200 gives a relative error (gamma - 1) / (gamma + 1) = 0.0099,
 * just inside LS_QUANTILE_ALPHA (gamma = 1.01 / 0.99 = 1.0202 would give
 * exactly 0.01).
 *
 * Range. |v| in [2^-20, 2^44) (about 9.5e-7 to 1.8e13) in 64 octaves,
 * 2240 bins per sign; a smaller |v| counts in the lowest bin and a larger
 * in the highest (clamped: sign kept, value not). Bins are fixed, so two
 * sketches of the same values hold the same counts bin for bin.
 *
 * Storage. Per sign, one dense array of counts over a range of bins that
 * grows, with a margin, to take a new bin: the values of one feature span
 * a few hundred bins (a count 1..1000 spans 350, 2.8 KiB), far from the
 * 2 x 2240 a fixed array would hold. Bins inside the range may be 0.
 */
#include "ls_quantile.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PER_OCTAVE 35
#define MIN_EXP (-20) /* lowest bin starts at 2^MIN_EXP */
#define N_OCTAVES 64
#define N_BINS (PER_OCTAVE * N_OCTAVES)
#define GROW_MARGIN 16 /* bins added beyond a new one when a range grows */
#define FORMAT_TAG 1   /* first byte of an encoding: this bin layout */

/* 2^(j/35), j = 0..34, correctly rounded. */
static const double MANT[PER_OCTAVE] = {
	0x1.0000000000000p+0, 0x1.051ed35254d7bp+0, 0x1.0a57de9c16bc7p+0,
	0x1.0faba81d4e5dfp+0, 0x1.151ab8c56eea2p+0, 0x1.1aa59c4115e7dp+0,
	0x1.204ce10811781p+0, 0x1.2611186bae675p+0, 0x1.2bf2d6a54f7dap+0,
	0x1.31f2b2e54f85dp+0, 0x1.381147622f886p+0, 0x1.3e4f316812c30p+0,
	0x1.44ad116889e7bp+0, 0x1.4b2b8b0aaf3c7p+0, 0x1.51cb453b9536cp+0,
	0x1.588cea3f093bep+0, 0x1.5f7127c0ac32ap+0, 0x1.6678aee5629f8p+0,
	0x1.6da4345d1e0adp+0, 0x1.74f47075017a0p+0, 0x1.7c6a1f29e2ce6p+0,
	0x1.8406003b2ae5cp+0, 0x1.8bc8d73e16610p+0, 0x1.93b36bb158fffp+0,
	0x1.9bc68911258c0p+0, 0x1.a402feeb9c533p+0, 0x1.ac69a0f5a241cp+0,
	0x1.b4fb472022b1ap+0, 0x1.bdb8cdadbe120p+0, 0x1.c6a31548e794dp+0,
	0x1.cfbb031a741a5p+0, 0x1.d90180e09c9e4p+0, 0x1.e2777d0676770p+0,
	0x1.ec1deabbe3c14p+0, 0x1.f5f5c20dfe5f2p+0,
};

/* Counts of bins [base, base + len) of one sign. */
typedef struct side {
	uint32_t base, len;
	uint64_t *c;
} side;

struct ls_quantile {
	uint64_t n;    /* all values counted */
	uint64_t zero; /* values == 0 */
	side neg, pos; /* bins of |v| for v < 0 and v > 0 */
};

/* Bin of a finite a > 0. */
static uint32_t bin_of(double a)
{
	int e;
	double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
	m *= 2.0;                 /* exact: a = m 2^(e-1), m in [1, 2) */
	e -= 1;
	if (e < MIN_EXP)
		return 0;
	if (e >= MIN_EXP + N_OCTAVES)
		return N_BINS - 1;
	uint32_t lo = 0, hi = PER_OCTAVE; /* MANT[lo] <= m < MANT[hi] */
	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;
		if (MANT[mid] <= m)
			lo = mid;
		else
			hi = mid;
	}
	return (uint32_t)(e - MIN_EXP) * PER_OCTAVE + lo;
}

/* Bounds [*lo, *hi) of |v| in bin i. */
static void bin_bounds(uint32_t i, double *lo, double *hi)
{
	int e = (int)(i / PER_OCTAVE) + MIN_EXP;
	uint32_t j = i % PER_OCTAVE;
	*lo = ldexp(MANT[j], e);
	*hi = j + 1 < PER_OCTAVE ? ldexp(MANT[j + 1], e) : ldexp(1.0, e + 1);
}

/* The value of bin i whose relative distance to both bounds is the same,
   (hi - lo) / (hi + lo): the harmonic mean of the bounds. */
static double bin_value(uint32_t i)
{
	double lo, hi;
	bin_bounds(i, &lo, &hi);
	return 2.0 * lo * hi / (lo + hi);
}

static uint64_t side_get(const side *s, uint32_t i)
{
	return i >= s->base && i - s->base < s->len ? s->c[i - s->base] : 0;
}

/* Grow s's range to hold bins [lo, hi) (plus a margin on a side that
   grows); s is unchanged on failure. */
static int side_cover(side *s, uint32_t lo, uint32_t hi)
{
	if (s->len > 0 && lo >= s->base && hi <= s->base + s->len)
		return 0;
	bool down = s->len == 0 || lo < s->base;
	bool up = s->len == 0 || hi > s->base + s->len;
	uint32_t nlo = down ? (lo > GROW_MARGIN ? lo - GROW_MARGIN : 0) : s->base;
	uint32_t nhi = up ? (hi + GROW_MARGIN < N_BINS ? hi + GROW_MARGIN : N_BINS)
			  : s->base + s->len;
	uint64_t *c = calloc(nhi - nlo, sizeof *c);
	if (!c)
		return -1;
	if (s->len > 0)
		memcpy(c + (s->base - nlo), s->c, s->len * sizeof *c);
	free(s->c);
	s->c = c;
	s->base = nlo;
	s->len = nhi - nlo;
	return 0;
}

static void side_free(side *s)
{
	free(s->c);
	*s = (side){ 0 };
}

/* The smallest and largest non-empty bins of s; false when none. */
static bool side_span(const side *s, uint32_t *first, uint32_t *last)
{
	uint32_t a = 0, b = s->len;
	while (a < b && s->c[a] == 0)
		a++;
	while (b > a && s->c[b - 1] == 0)
		b--;
	if (a == b)
		return false;
	*first = s->base + a;
	*last = s->base + b - 1;
	return true;
}

ls_quantile *ls_quantile_new(void)
{
	return calloc(1, sizeof(ls_quantile));
}

void ls_quantile_free(ls_quantile *q)
{
	if (!q)
		return;
	side_free(&q->neg);
	side_free(&q->pos);
	free(q);
}

void ls_quantile_reset(ls_quantile *q)
{
	if (!q)
		return;
	q->n = 0;
	q->zero = 0;
	if (q->neg.len)
		memset(q->neg.c, 0, q->neg.len * sizeof *q->neg.c);
	if (q->pos.len)
		memset(q->pos.c, 0, q->pos.len * sizeof *q->pos.c);
}

/* dst = src, dst's range already covering src's non-empty bins. */
static void side_copy(side *dst, const side *src)
{
	uint32_t first, last;
	if (dst->len)
		memset(dst->c, 0, dst->len * sizeof *dst->c);
	if (side_span(src, &first, &last))
		memcpy(dst->c + (first - dst->base), src->c + (first - src->base),
		       (last - first + 1) * sizeof *dst->c);
}

/* Grow dst's range to cover src's non-empty bins. */
static int side_cover_span(side *dst, const side *src)
{
	uint32_t first, last;
	if (!side_span(src, &first, &last))
		return 0;
	return side_cover(dst, first, last + 1);
}

int ls_quantile_copy(ls_quantile *dst, const ls_quantile *src)
{
	if (!dst || !src)
		return LS_QUANTILE_ERR_INVALID;
	if (dst == src)
		return LS_QUANTILE_OK;
	/* a grown range holds the same counts, so a failure here leaves dst
	   as it was */
	if (side_cover_span(&dst->neg, &src->neg) ||
	    side_cover_span(&dst->pos, &src->pos))
		return LS_QUANTILE_ERR_NOMEM;
	side_copy(&dst->neg, &src->neg);
	side_copy(&dst->pos, &src->pos);
	dst->n = src->n;
	dst->zero = src->zero;
	return LS_QUANTILE_OK;
}

ls_quantile *ls_quantile_clone(const ls_quantile *q)
{
	if (!q)
		return NULL;
	ls_quantile *c = ls_quantile_new();
	if (c && ls_quantile_copy(c, q) != LS_QUANTILE_OK) {
		ls_quantile_free(c);
		return NULL;
	}
	return c;
}

int ls_quantile_add(ls_quantile *q, double v)
{
	if (!q)
		return LS_QUANTILE_ERR_INVALID;
	if (!isfinite(v))
		return LS_QUANTILE_OK;
	if (q->n >= LS_QUANTILE_MAX_COUNT)
		return LS_QUANTILE_ERR_INVALID;
	if (v == 0.0) { /* -0.0 too */
		q->zero++;
		q->n++;
		return LS_QUANTILE_OK;
	}
	side *s = v < 0 ? &q->neg : &q->pos;
	uint32_t i = bin_of(fabs(v));
	if (side_cover(s, i, i + 1))
		return LS_QUANTILE_ERR_NOMEM;
	s->c[i - s->base]++;
	q->n++;
	return LS_QUANTILE_OK;
}

uint64_t ls_quantile_count(const ls_quantile *q)
{
	return q ? q->n : 0;
}

/*
 * The non-empty bins in ascending order of value: the negative bins from
 * the largest |v| down, the zero counter, the positive bins up. A cursor
 * is (sign, bin): sign -1, 0, +1.
 */
typedef struct cursor {
	int sign;
	uint32_t bin;
	uint64_t count;
} cursor;

/* Advance *c to the next non-empty bin after it (start: sign -2);
   false at the end. */
static bool next_bin(const ls_quantile *q, cursor *c)
{
	if (c->sign == -2) {
		c->sign = -1;
		c->bin = q->neg.base + q->neg.len; /* one past the top */
	}
	if (c->sign == -1) {
		while (c->bin > q->neg.base && q->neg.len) {
			c->bin--;
			c->count = q->neg.c[c->bin - q->neg.base];
			if (c->count)
				return true;
		}
		c->sign = 0;
		if (q->zero) {
			c->count = q->zero;
			return true;
		}
	}
	if (c->sign == 0) {
		c->sign = 1;
		if (q->pos.len == 0)
			return false;
		c->bin = q->pos.base;
	} else {
		c->bin++;
	}
	for (; c->bin < q->pos.base + q->pos.len; c->bin++) {
		c->count = q->pos.c[c->bin - q->pos.base];
		if (c->count)
			return true;
	}
	return false;
}

static double cursor_value(const cursor *c)
{
	if (c->sign == 0)
		return 0.0;
	double v = bin_value(c->bin);
	return c->sign < 0 ? -v : v;
}

int ls_quantile_value(const ls_quantile *q, double p, double *out)
{
	if (!q || !out || !(p >= 0.0 && p <= 1.0))
		return LS_QUANTILE_ERR_INVALID;
	if (q->n == 0)
		return LS_QUANTILE_ERR_EMPTY;
	uint64_t rank = ls_quantile_rank(q->n, p);
	uint64_t seen = 0;
	cursor c = { .sign = -2 };
	while (next_bin(q, &c)) {
		seen += c.count;
		if (rank < seen) {
			*out = cursor_value(&c);
			return LS_QUANTILE_OK;
		}
	}
	return LS_QUANTILE_ERR_INVALID; /* unreachable: counts sum to n */
}

uint64_t ls_quantile_rank(uint64_t n, double p)
{
	if (n == 0 || !(p > 0.0))
		return 0;
	if (p >= 1.0)
		return n - 1;
	double r = floor(p * (double)(n - 1));
	uint64_t k = r >= (double)(n - 1) ? n - 1 : (uint64_t)r;
	return k;
}

/* 10^k, exact for k <= 22. */
static const double P10[23] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* The double nearest m 10^e (m an integer below 2^53, |e| <= 22): one
   correctly rounded operation on exact operands. */
static double decimal(double m, int e)
{
	return e >= 0 ? m * P10[e] : m / P10[-e];
}

/*
 * The shortest decimal (fewest significant digits) in [lo, hi), 0 < lo <
 * hi; of several, the smallest (largest: the largest). Every decimal of
 * at most d digits in [lo, hi) is a multiple of 10^e with e = floor(log10
 * lo) - d + 1, so the coarsest grid 10^e with a point in [lo, hi) gives
 * the shortest; the points are computed as m 10^e rounded once and
 * compared as doubles, so the result lies in [lo, hi) as a double too.
 */
static double shortest_decimal(double lo, double hi, bool largest)
{
	int e = (int)floor(log10(hi)) + 1;
	if (e > 22)
		e = 22;
	for (; e >= -22; e--) {
		double m;
		if (largest) {
			m = floor(e >= 0 ? hi / P10[e] : hi * P10[-e]);
			while (m > 0 && decimal(m, e) >= hi)
				m--;
			while (decimal(m + 1, e) < hi)
				m++;
			if (m > 0 && decimal(m, e) >= lo)
				return decimal(m, e);
		} else {
			m = ceil(e >= 0 ? lo / P10[e] : lo * P10[-e]);
			while (decimal(m, e) < lo)
				m++;
			while (m > 1 && decimal(m - 1, e) >= lo)
				m--;
			if (decimal(m, e) < hi)
				return decimal(m, e);
		}
	}
	return lo; /* unreachable for the bins' widths */
}

/*
 * The edge that starts a bucket at the bin of c: the shortest decimal in
 * that bin, the one nearest the bin's low end among equals (so an
 * integer in a bin narrower than 1 is the edge itself and goes up); 0
 * for the zero counter.
 */
static double bin_edge(const cursor *c)
{
	if (c->sign == 0)
		return 0.0;
	double lo, hi;
	bin_bounds(c->bin, &lo, &hi);
	/* v > 0 in bin: lo <= v < hi. v < 0: lo <= -v < hi, i.e. v in
	   (-hi, -lo], lowest end near -hi. */
	return c->sign > 0 ? shortest_decimal(lo, hi, false)
			   : -shortest_decimal(lo, hi, true);
}

int ls_quantile_edges(const ls_quantile *q, uint32_t n, double *edges,
		      size_t *n_edges)
{
	if (n_edges)
		*n_edges = 0;
	if (!q || !edges || !n_edges || n < 2 || n > LS_QUANTILE_MAX_BUCKETS)
		return LS_QUANTILE_ERR_INVALID;
	/* Cut k (1..n-1) wants k/n of the mass below it; it is put at the
	   boundary between two non-empty bins whose cumulative count C is
	   nearest k N / n (compared as C n against k N: below 2^62 with
	   N <= LS_QUANTILE_MAX_COUNT and n <= 64), the lower boundary on a
	   tie. A cut at either end (C = 0 or N) would leave a bucket empty
	   and is dropped, and a cut equal to the previous one too. */
	uint64_t total = q->n;
	size_t out = 0;
	uint32_t k = 1;
	uint64_t before = 0;
	cursor c = { .sign = -2 };
	bool pending = false; /* a cut waits for the next bin's edge */
	while (k < n && next_bin(q, &c)) {
		if (pending) {
			double e = bin_edge(&c);
			if (out == 0 || e > edges[out - 1])
				edges[out++] = e;
			pending = false;
		}
		uint64_t after = before + c.count;
		while (k < n && (uint64_t)k * total <= after * n) {
			uint64_t kn = (uint64_t)k * total;
			if (kn - before * n <= after * n - kn) {
				/* the lower boundary, the bin goes up */
				if (before > 0) {
					double e = bin_edge(&c);
					if (out == 0 || e > edges[out - 1])
						edges[out++] = e;
				}
			} else {
				pending = true; /* the upper boundary */
			}
			k++;
		}
		before = after;
	}
	if (pending && next_bin(q, &c)) {
		double e = bin_edge(&c);
		if (out == 0 || e > edges[out - 1])
			edges[out++] = e;
	}
	*n_edges = out;
	return LS_QUANTILE_OK;
}

size_t ls_quantile_bucket(const double *edges, size_t n_edges, double v)
{
	if (!isfinite(v))
		v = 0.0;
	size_t lo = 0, hi = n_edges; /* answer in [lo, hi] */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v >= edges[mid])
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* s and t hold the same counts. */
static bool side_equal(const side *s, const side *t)
{
	uint32_t lo = s->base < t->base ? s->base : t->base;
	uint32_t hi = s->base + s->len > t->base + t->len ? s->base + s->len
							    : t->base + t->len;
	if (s->len == 0)
		lo = t->base, hi = t->base + t->len;
	else if (t->len == 0)
		lo = s->base, hi = s->base + s->len;
	for (uint32_t i = lo; i < hi; i++)
		if (side_get(s, i) != side_get(t, i))
			return false;
	return true;
}

int ls_quantile_equal(const ls_quantile *a, const ls_quantile *b)
{
	if (!a || !b)
		return 0;
	return a->n == b->n && a->zero == b->zero &&
	       side_equal(&a->neg, &b->neg) && side_equal(&a->pos, &b->pos);
}

/* Every count of local is at least base's. */
static bool side_covers(const side *local, const side *base)
{
	for (uint32_t i = 0; i < base->len; i++)
		if (side_get(local, base->base + i) < base->c[i])
			return false;
	return true;
}

int ls_quantile_delta_into(ls_quantile *d, const ls_quantile *local,
			   const ls_quantile *base)
{
	if (!d || !local || !base || d == local || d == base)
		return LS_QUANTILE_ERR_INVALID;
	if (local->zero < base->zero || local->n < base->n ||
	    !side_covers(&local->neg, &base->neg) ||
	    !side_covers(&local->pos, &base->pos))
		return LS_QUANTILE_ERR_INVALID;
	int rc = ls_quantile_copy(d, local);
	if (rc != LS_QUANTILE_OK)
		return rc;
	/* d covers local's non-empty bins, and every non-empty bin of base
	   is one of local's */
	d->n -= base->n;
	d->zero -= base->zero;
	for (uint32_t i = 0; i < base->neg.len; i++)
		if (base->neg.c[i])
			d->neg.c[base->neg.base + i - d->neg.base] -= base->neg.c[i];
	for (uint32_t i = 0; i < base->pos.len; i++)
		if (base->pos.c[i])
			d->pos.c[base->pos.base + i - d->pos.base] -= base->pos.c[i];
	return LS_QUANTILE_OK;
}

static void side_add(side *s, const side *t)
{
	for (uint32_t i = 0; i < t->len; i++)
		if (t->c[i])
			s->c[t->base + i - s->base] += t->c[i];
}

int ls_quantile_add_sketch(ls_quantile *q, const ls_quantile *d)
{
	if (!q || !d)
		return LS_QUANTILE_ERR_INVALID;
	if (d->n > LS_QUANTILE_MAX_COUNT - q->n)
		return LS_QUANTILE_ERR_INVALID;
	if (q == d) {
		/* doubling in place: every count at most MAX_COUNT / 2 */
		q->n *= 2;
		q->zero *= 2;
		for (uint32_t i = 0; i < q->neg.len; i++)
			q->neg.c[i] *= 2;
		for (uint32_t i = 0; i < q->pos.len; i++)
			q->pos.c[i] *= 2;
		return LS_QUANTILE_OK;
	}
	if (side_cover_span(&q->neg, &d->neg) ||
	    side_cover_span(&q->pos, &d->pos))
		return LS_QUANTILE_ERR_NOMEM;
	side_add(&q->neg, &d->neg);
	side_add(&q->pos, &d->pos);
	q->n += d->n;
	q->zero += d->zero;
	return LS_QUANTILE_OK;
}

/*
 * Encoding: a tag byte (FORMAT_TAG: this bin layout), the zero count,
 * then per sign (negative, positive) the number of non-empty bins and,
 * for each in ascending order, the gap to it (its index for the first,
 * index - previous - 1 after) and its count (>= 1). All varints. Every
 * field is canonical (minimal varints, no empty bin listed), so a decoded
 * sketch encodes to the same bytes.
 */
static size_t side_nonempty(const side *s)
{
	size_t k = 0;
	for (uint32_t i = 0; i < s->len; i++)
		k += s->c[i] != 0;
	return k;
}

static uint8_t *side_put(uint8_t *p, const side *s, size_t k)
{
	p = ls_varint_put(p, k);
	uint32_t next = 0; /* the lowest index the next bin may have */
	for (uint32_t i = 0; i < s->len; i++) {
		if (!s->c[i])
			continue;
		p = ls_varint_put(p, s->base + i - next);
		p = ls_varint_put(p, s->c[i]);
		next = s->base + i + 1;
	}
	return p;
}

int ls_quantile_encode(const ls_quantile *q, ls_buf *out)
{
	if (!q || !out)
		return LS_QUANTILE_ERR_INVALID;
	size_t kn = side_nonempty(&q->neg), kp = side_nonempty(&q->pos);
	size_t room = 1 + 3 * LS_VARINT_MAX + (kn + kp) * 2 * LS_VARINT_MAX;
	if (ls_buf_reserve(out, room))
		return LS_QUANTILE_ERR_NOMEM;
	uint8_t *start = out->data + out->len, *p = start;
	*p++ = FORMAT_TAG;
	p = ls_varint_put(p, q->zero);
	p = side_put(p, &q->neg, kn);
	p = side_put(p, &q->pos, kp);
	out->len += (size_t)(p - start);
	return LS_QUANTILE_OK;
}

/* Decode one sign's bins into s (empty), adding to *total; 0 or an
   LS_QUANTILE_ERR_* with r failed. */
static int side_decode(side *s, ls_reader *r, uint64_t *total)
{
	size_t at = r->pos;
	uint64_t k = ls_reader_varint(r);
	if (!r->ok)
		return LS_QUANTILE_ERR_INVALID;
	if (k > N_BINS) {
		ls_reader_fail_at(r, at, "sketch: more bins than the layout has");
		return LS_QUANTILE_ERR_INVALID;
	}
	uint64_t next = 0;
	for (uint64_t j = 0; j < k; j++) {
		at = r->pos;
		uint64_t gap = ls_reader_varint(r);
		if (!r->ok)
			return LS_QUANTILE_ERR_INVALID;
		if (gap >= N_BINS - next) {
			ls_reader_fail_at(r, at, "sketch: bin out of range");
			return LS_QUANTILE_ERR_INVALID;
		}
		uint32_t i = (uint32_t)(next + gap);
		at = r->pos;
		uint64_t c = ls_reader_varint(r);
		if (!r->ok)
			return LS_QUANTILE_ERR_INVALID;
		if (c == 0) {
			ls_reader_fail_at(r, at, "sketch: empty bin listed");
			return LS_QUANTILE_ERR_INVALID;
		}
		if (c > LS_QUANTILE_MAX_COUNT - *total) {
			ls_reader_fail_at(r, at, "sketch: count too large");
			return LS_QUANTILE_ERR_INVALID;
		}
		if (side_cover(s, i, i + 1)) {
			ls_reader_fail_at(r, at, "sketch: out of memory");
			return LS_QUANTILE_ERR_NOMEM;
		}
		s->c[i - s->base] = c;
		*total += c;
		next = (uint64_t)i + 1;
	}
	return 0;
}

int ls_quantile_decode(ls_quantile *q, ls_reader *r)
{
	if (!r)
		return LS_QUANTILE_ERR_INVALID;
	if (!q) {
		ls_reader_fail_at(r, r->pos, "sketch: no sketch to decode into");
		return LS_QUANTILE_ERR_INVALID;
	}
	ls_quantile_reset(q);
	size_t at = r->pos;
	uint8_t tag = ls_reader_u8(r);
	if (r->ok && tag != FORMAT_TAG)
		ls_reader_fail_at(r, at, "sketch: unknown format");
	at = r->pos;
	uint64_t zero = ls_reader_varint(r);
	if (r->ok && zero > LS_QUANTILE_MAX_COUNT)
		ls_reader_fail_at(r, at, "sketch: count too large");
	uint64_t total = zero;
	int rc = r->ok ? LS_QUANTILE_OK : LS_QUANTILE_ERR_INVALID;
	if (rc == LS_QUANTILE_OK)
		rc = side_decode(&q->neg, r, &total);
	if (rc == LS_QUANTILE_OK)
		rc = side_decode(&q->pos, r, &total);
	if (rc != LS_QUANTILE_OK) {
		ls_quantile_reset(q);
		return rc;
	}
	q->zero = zero;
	q->n = total;
	return LS_QUANTILE_OK;
}
