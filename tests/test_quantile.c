/*
 * Unit tests for models/ls_quantile: the relative error bound against the
 * exact quantiles of several seeded distributions (rank floor(q (N-1)));
 * determinism (shuffled orders and merge patterns give equal sketches
 * and identical bytes); merging by sum and by deltas; the edges (shortest
 * decimals, integers on integer data, a bucket of its own for a mass at
 * 0, which side a value on an edge falls); the encoding (round trip,
 * every truncation, crafted and random corruptions: each fails cleanly or
 * decodes to a sketch that re-encodes to the same bytes); non-finite
 * values; argument errors.
 *
 * The bins are not visible from here: "u and v share a bin" is asked of
 * the sketch itself (two one-value sketches are equal).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_quantile.h"
#include "ls_testutil.h"

/* ---- helpers ---- */

static double uniform01(uint64_t *st)
{
	return (double)(ls_test_splitmix64(st) >> 11) * 0x1.0p-53;
}

static double normal(uint64_t *st)
{
	double u = uniform01(st), v = uniform01(st);
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static void shuffle(double *x, size_t n, uint64_t *st)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(ls_test_splitmix64(st) % i);
		double t = x[i - 1];
		x[i - 1] = x[j];
		x[j] = t;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static ls_quantile *sketch_of(const double *x, size_t n)
{
	ls_quantile *q = ls_quantile_new();
	ck_assert_ptr_nonnull(q);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ls_quantile_add(q, x[i]), LS_QUANTILE_OK);
	return q;
}

static bool same_bin(double u, double v)
{
	ls_quantile *a = sketch_of(&u, 1), *b = sketch_of(&v, 1);
	bool eq = ls_quantile_equal(a, b);
	ls_quantile_free(a);
	ls_quantile_free(b);
	return eq;
}

static void encode(const ls_quantile *q, ls_buf *b)
{
	ls_buf_reset(b);
	ck_assert_int_eq(ls_quantile_encode(q, b), LS_QUANTILE_OK);
}

static void ck_same_bytes(const ls_quantile *a, const ls_quantile *b)
{
	ls_buf x = { 0 }, y = { 0 };
	encode(a, &x);
	encode(b, &y);
	ck_assert_uint_eq(x.len, y.len);
	ck_assert(memcmp(x.data, y.data, x.len) == 0);
	ls_buf_free(&x);
	ls_buf_free(&y);
}

/* The distributions of the error-bound and determinism tests. */
enum { D_INTS, D_LOGNORMAL, D_ZEROS, D_SIGNED, D_CONST, D_WIDE, D_COUNT };
static const char *const DNAME[D_COUNT] = {
	"ints 0..20", "log-normal", "70 % zeros", "signed normal", "constant",
	"wide 1e-6..1e13",
};

static double *gen(int d, size_t n, uint64_t seed)
{
	double *x = malloc(n * sizeof *x);
	ck_assert_ptr_nonnull(x);
	uint64_t st = seed;
	for (size_t i = 0; i < n; i++) {
		switch (d) {
		case D_INTS:
			x[i] = (double)(ls_test_splitmix64(&st) % 21);
			break;
		case D_LOGNORMAL:
			x[i] = 10.0 * exp(1.5 * normal(&st));
			break;
		case D_ZEROS:
			x[i] = uniform01(&st) < 0.7
				       ? 0.0
				       : floor(exp(2.0 * normal(&st)) + 1);
			break;
		case D_SIGNED:
			x[i] = 100.0 * normal(&st);
			break;
		case D_CONST:
			x[i] = 42.5;
			break;
		default:
			x[i] = pow(10.0, -6.0 + 19.0 * uniform01(&st));
			break;
		}
	}
	return x;
}

/* ---- (1) error bound ---- */

START_TEST(test_error_bound)
{
	const size_t n = 20000;
	for (int d = 0; d < D_COUNT; d++) {
		double *x = gen(d, n, 1000 + (uint64_t)d);
		ls_quantile *q = sketch_of(x, n);
		ck_assert_uint_eq(ls_quantile_count(q), n);
		qsort(x, n, sizeof *x, cmp_double);
		for (int i = 0; i <= 1000; i++) {
			double p = i / 1000.0;
			size_t r = (size_t)floor(p * (double)(n - 1));
			ck_assert_uint_eq(ls_quantile_rank(n, p), r);
			double got;
			ck_assert_int_eq(ls_quantile_value(q, p, &got),
					 LS_QUANTILE_OK);
			double want = x[r];
			ck_assert_msg(fabs(got - want) <= LS_QUANTILE_ALPHA *
								  fabs(want),
				      "%s p=%g: got %.17g, true %.17g",
				      DNAME[d], p, got, want);
		}
		ls_quantile_free(q);
		free(x);
	}
}
END_TEST

START_TEST(test_bounds_of_the_range)
{
	/* powers of two sit on bin boundaries; the ends of the range; and
	   just inside them: each within alpha of itself */
	const double v[] = { 0x1p-20, 0x1.fffffffffffffp-20 * 2.0, 0x1p-19,
			     1.0, 2.0, 0x1.fffffffffffffp+0, 3.0, 0x1p43,
			     0x1.fffffffffffffp+43, 1e-6, 1e13 };
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		for (int s = -1; s <= 1; s += 2) {
			double x = s * v[i], got;
			ls_quantile *q = sketch_of(&x, 1);
			ck_assert_int_eq(ls_quantile_value(q, 0.5, &got),
					 LS_QUANTILE_OK);
			ck_assert_msg(fabs(got - x) <= LS_QUANTILE_ALPHA * fabs(x),
				      "%.17g -> %.17g", x, got);
			ls_quantile_free(q);
		}
	}
	/* outside the range: clamped to the end bins, sign kept */
	const double out[] = { 1e-9, 5e-324, 1e20, 1.7e308 };
	for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
		for (int s = -1; s <= 1; s += 2) {
			double x = s * out[i], got;
			ls_quantile *q = sketch_of(&x, 1);
			ck_assert_int_eq(ls_quantile_value(q, 0.0, &got),
					 LS_QUANTILE_OK);
			ck_assert(got * s > 0);
			if (out[i] < 1.0)
				ck_assert(fabs(got) < 1e-6 && same_bin(x, s * 0x1p-20));
			else
				ck_assert(fabs(got) > 1.7e13 && fabs(got) < 1.8e13 &&
					  same_bin(x, s * 0x1.fffffffffffffp+43));
			ls_quantile_free(q);
		}
	}
}
END_TEST

/* ---- (6) non-finite values, zero, arguments ---- */

START_TEST(test_nonfinite_and_zero)
{
	const double v[] = { 1.0, 2.0, 0.0, -3.0 };
	ls_quantile *a = sketch_of(v, 4);
	ls_quantile *b = sketch_of(v, 4);
	ck_assert_int_eq(ls_quantile_add(b, NAN), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_add(b, INFINITY), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_add(b, -INFINITY), LS_QUANTILE_OK);
	ck_assert_uint_eq(ls_quantile_count(b), 4);
	ck_assert(ls_quantile_equal(a, b));
	ck_same_bytes(a, b);

	/* -0 is 0 */
	ck_assert(same_bin(-0.0, 0.0));
	ck_assert(!same_bin(0.0, 1e-300));
	ck_assert(!same_bin(1.0, -1.0));
	double got = 1;
	ck_assert_int_eq(ls_quantile_value(a, 0.5, &got), LS_QUANTILE_OK);
	ck_assert(got == 0.0); /* rank floor(0.5 * 3) = 1: -3, 0, 1, 2 */
	ck_assert_int_eq(ls_quantile_value(a, 0.0, &got), LS_QUANTILE_OK);
	ck_assert(got < -2.9 && got > -3.1);
	ls_quantile_free(a);
	ls_quantile_free(b);
}
END_TEST

START_TEST(test_arguments)
{
	ls_quantile *q = ls_quantile_new();
	double out, edges[LS_QUANTILE_MAX_BUCKETS];
	size_t ne = 99;
	ck_assert_int_eq(ls_quantile_value(q, 0.5, &out), LS_QUANTILE_ERR_EMPTY);
	ck_assert_int_eq(ls_quantile_edges(q, 4, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 0);
	ck_assert_int_eq(ls_quantile_add(q, 5.0), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_value(q, NAN, &out), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_value(q, -0.01, &out), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_value(q, 1.01, &out), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_value(q, 0.5, NULL), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_value(NULL, 0.5, &out), LS_QUANTILE_ERR_INVALID);
	const uint32_t bad_n[] = { 0, 1, LS_QUANTILE_MAX_BUCKETS + 1, 1000 };
	for (size_t i = 0; i < 4; i++) {
		ne = 99;
		ck_assert_int_eq(ls_quantile_edges(q, bad_n[i], edges, &ne),
				 LS_QUANTILE_ERR_INVALID);
		ck_assert_uint_eq(ne, 0);
	}
	ck_assert_int_eq(ls_quantile_edges(q, 4, NULL, &ne), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_edges(q, 4, edges, NULL), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_edges(NULL, 4, edges, &ne), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_add(NULL, 1.0), LS_QUANTILE_ERR_INVALID);
	ck_assert_uint_eq(ls_quantile_count(NULL), 0);
	ck_assert_int_eq(ls_quantile_copy(NULL, q), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_copy(q, NULL), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_delta_into(q, q, q), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_add_sketch(q, NULL), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_encode(q, NULL), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_equal(q, NULL), 0);
	ck_assert_ptr_null(ls_quantile_clone(NULL));
	ls_quantile_free(NULL);
	ls_quantile_reset(NULL);

	/* reset empties, keeps working */
	ls_quantile_reset(q);
	ck_assert_uint_eq(ls_quantile_count(q), 0);
	ls_quantile *e = ls_quantile_new();
	ck_assert(ls_quantile_equal(q, e));
	ck_same_bytes(q, e);
	ls_quantile_free(e);
	ls_quantile_free(q);
}
END_TEST

/* ---- (2) determinism ---- */

START_TEST(test_determinism)
{
	const size_t n = 5000;
	for (int d = 0; d < D_COUNT; d++) {
		double *x = gen(d, n, 77 + (uint64_t)d);
		ls_quantile *ref = sketch_of(x, n);
		uint64_t st = 5;
		for (int round = 0; round < 4; round++) {
			shuffle(x, n, &st);
			ls_quantile *q = sketch_of(x, n);
			ck_assert(ls_quantile_equal(ref, q));
			ck_same_bytes(ref, q);
			/* the same values in three parts merged in another
			   order */
			size_t c1 = (size_t)(ls_test_splitmix64(&st) % n);
			size_t c2 = c1 + (size_t)(ls_test_splitmix64(&st) % (n - c1));
			ls_quantile *a = sketch_of(x, c1);
			ls_quantile *b = sketch_of(x + c1, c2 - c1);
			ls_quantile *c = sketch_of(x + c2, n - c2);
			ck_assert_int_eq(ls_quantile_add_sketch(c, a), LS_QUANTILE_OK);
			ck_assert_int_eq(ls_quantile_add_sketch(b, c), LS_QUANTILE_OK);
			ck_assert(ls_quantile_equal(ref, b));
			ck_same_bytes(ref, b);
			ls_quantile_free(a);
			ls_quantile_free(b);
			ls_quantile_free(c);
			ls_quantile_free(q);
		}
		ls_quantile_free(ref);
		free(x);
	}
}
END_TEST

/* ---- (3) merge ---- */

START_TEST(test_merge_and_delta)
{
	const size_t n = 3000;
	double *a = gen(D_SIGNED, n, 1), *b = gen(D_ZEROS, n, 2),
	       *c = gen(D_LOGNORMAL, n, 3);
	double *ab = malloc(2 * n * sizeof *ab);
	double *abc = malloc(3 * n * sizeof *abc);
	memcpy(ab, a, n * sizeof *a);
	memcpy(ab + n, b, n * sizeof *b);
	memcpy(abc, ab, 2 * n * sizeof *ab);
	memcpy(abc + 2 * n, c, n * sizeof *c);

	/* the union is the sum */
	ls_quantile *sa = sketch_of(a, n), *sb = sketch_of(b, n);
	ls_quantile *sab = sketch_of(ab, 2 * n);
	ls_quantile *sum = ls_quantile_clone(sa);
	ck_assert(ls_quantile_equal(sum, sa));
	ck_assert_int_eq(ls_quantile_add_sketch(sum, sb), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(sum, sab));
	ck_same_bytes(sum, sab);

	/* an instance loads the shared sketch sa as its base, learns b; the
	   shared copy has meanwhile learned c from another instance. The
	   delta added to the shared copy gives the sketch of all three. */
	ls_quantile *base = ls_quantile_clone(sa);
	ls_quantile *local = ls_quantile_clone(base);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ls_quantile_add(local, b[i]), LS_QUANTILE_OK);
	ls_quantile *shared = ls_quantile_clone(sa);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ls_quantile_add(shared, c[i]), LS_QUANTILE_OK);
	ls_quantile *d = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_delta_into(d, local, base), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(d, sb));
	ck_same_bytes(d, sb);
	ck_assert_int_eq(ls_quantile_add_sketch(shared, d), LS_QUANTILE_OK);
	ls_quantile *sabc = sketch_of(abc, 3 * n);
	ck_assert(ls_quantile_equal(shared, sabc));
	ck_same_bytes(shared, sabc);
	/* the delta into a used sketch replaces it */
	ck_assert_int_eq(ls_quantile_delta_into(d, sab, sb), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(d, sa));
	/* local from itself: empty */
	ls_quantile *empty = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_delta_into(d, local, local), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(d, empty));
	ck_assert_uint_eq(ls_quantile_count(d), 0);

	/* not a descendant: a value of base that local lacks (a bin, the
	   zero counter, a negative bin) */
	ck_assert_int_eq(ls_quantile_delta_into(d, sb, sab), LS_QUANTILE_ERR_INVALID);
	ls_quantile *z = ls_quantile_clone(sa);
	ck_assert_int_eq(ls_quantile_add(z, 0.0), LS_QUANTILE_OK);
	ls_quantile *p = ls_quantile_clone(sa);
	ck_assert_int_eq(ls_quantile_add(p, 1.0), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_delta_into(d, p, z), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_delta_into(d, z, p), LS_QUANTILE_ERR_INVALID);
	ls_quantile *m = ls_quantile_clone(sa);
	ck_assert_int_eq(ls_quantile_add(m, -1e9), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_delta_into(d, p, m), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_delta_into(d, local, d), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_delta_into(d, d, local), LS_QUANTILE_ERR_INVALID);

	/* copy over a sketch with other bins; adding a sketch to itself */
	ck_assert_int_eq(ls_quantile_copy(m, sb), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(m, sb));
	ck_same_bytes(m, sb);
	ck_assert_int_eq(ls_quantile_copy(m, empty), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(m, empty));
	ls_quantile *twice = ls_quantile_clone(sab);
	ck_assert_int_eq(ls_quantile_add_sketch(twice, sab), LS_QUANTILE_OK);
	ls_quantile *self = ls_quantile_clone(sab);
	ck_assert_int_eq(ls_quantile_add_sketch(self, self), LS_QUANTILE_OK);
	ck_assert(ls_quantile_equal(twice, self));
	ck_assert_uint_eq(ls_quantile_count(self), 4 * n);

	ls_quantile *all[] = { sa, sb, sab, sum, base, local, shared, d, sabc,
			       empty, z, p, m, twice, self };
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		ls_quantile_free(all[i]);
	free(a);
	free(b);
	free(c);
	free(ab);
	free(abc);
}
END_TEST

START_TEST(test_count_limit)
{
	/* a decoded sketch holding the most values takes no more, by add or
	   by merge, and stays as it was */
	uint8_t blob[16], *p = blob;
	*p++ = 1;
	p = ls_varint_put(p, LS_QUANTILE_MAX_COUNT - 1); /* zero counter */
	p = ls_varint_put(p, 0);
	p = ls_varint_put(p, 0);
	ls_reader r;
	ls_reader_init(&r, blob, (size_t)(p - blob), "sketch", NULL, 0);
	ls_quantile *q = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_decode(q, &r), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_add(q, 1.0), LS_QUANTILE_OK);
	ck_assert_uint_eq(ls_quantile_count(q), LS_QUANTILE_MAX_COUNT);
	ls_quantile *before = ls_quantile_clone(q);
	ck_assert_int_eq(ls_quantile_add(q, 1.0), LS_QUANTILE_ERR_INVALID);
	ls_quantile *one = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_add(one, 2.0), LS_QUANTILE_OK);
	ck_assert_int_eq(ls_quantile_add_sketch(q, one), LS_QUANTILE_ERR_INVALID);
	ck_assert_int_eq(ls_quantile_add_sketch(one, q), LS_QUANTILE_ERR_INVALID);
	ck_assert(ls_quantile_equal(q, before));
	/* edges and quantiles still exact at that count: 0 holds all but
	   one value, the cut nearest 3/4 of the mass is just above it */
	double edges[4], v;
	size_t ne;
	ck_assert_int_eq(ls_quantile_edges(q, 4, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 1);
	ck_assert(edges[0] == 1.0);
	ck_assert_int_eq(ls_quantile_value(q, 1.0, &v), LS_QUANTILE_OK);
	ck_assert(fabs(v - 1.0) <= LS_QUANTILE_ALPHA);
	ls_quantile_free(q);
	ls_quantile_free(before);
	ls_quantile_free(one);
}
END_TEST

/* ---- (4) edges ---- */

/* Significant digits of the shortest %.*g that reads back as x. */
static int digits_of(double x)
{
	char s[64];
	for (int d = 1; d <= 17; d++) {
		snprintf(s, sizeof s, "%.*g", d, x);
		if (strtod(s, NULL) == x)
			return d;
	}
	return 17;
}

/* x rounded to d significant digits (down, nearest or up: dir -1, 0, 1),
   as the double nearest that decimal. */
static double round_digits(double x, int d, int dir)
{
	double ax = fabs(x);
	if (ax == 0.0)
		return 0.0;
	int e = (int)floor(log10(ax)) - d + 1;
	double scale = pow(10.0, -e);
	double m = ax * scale;
	m = dir < 0 ? floor(m) : dir > 0 ? ceil(m) : nearbyint(m);
	char s[64];
	snprintf(s, sizeof s, "%.0fe%d", m, e);
	double r = strtod(s, NULL);
	return x < 0 ? -r : r;
}

/* Every edge is the shortest decimal of its bin, the lowest of equals,
   lies in a bin that holds data, and edges ascend strictly. */
static void ck_edges_shortest(const double *x, size_t n, const double *edges,
			      size_t ne)
{
	for (size_t k = 0; k < ne; k++) {
		double e = edges[k];
		if (k > 0)
			ck_assert(e > edges[k - 1]);
		bool holds = false;
		for (size_t i = 0; i < n && !holds; i++)
			holds = same_bin(x[i], e);
		ck_assert_msg(holds, "edge %.17g in an empty bin", e);
		if (e == 0.0)
			continue;
		int d = digits_of(e);
		/* no decimal of fewer digits in its bin */
		for (int dd = 1; dd < d; dd++)
			for (int dir = -1; dir <= 1; dir++) {
				double c = round_digits(e, dd, dir);
				ck_assert_msg(!same_bin(c, e),
					      "edge %.17g: %.17g is shorter", e, c);
			}
		/* and none of as many digits below it in its bin */
		char s[64];
		snprintf(s, sizeof s, "%.*e", d - 1, e);
		double ulp = pow(10.0, floor(log10(fabs(e))) - d + 1);
		double below = round_digits(e - ulp, d, 0);
		if (below != e)
			ck_assert_msg(!same_bin(below, e),
				      "edge %s: %.17g is lower", s, below);
	}
}

/* Counts of x per bucket. */
static void bucket_counts(const double *x, size_t n, const double *edges,
			  size_t ne, size_t *cnt)
{
	memset(cnt, 0, (ne + 1) * sizeof *cnt);
	for (size_t i = 0; i < n; i++)
		cnt[ls_quantile_bucket(edges, ne, x[i])]++;
}

START_TEST(test_edges_integers)
{
	/* 0..20 equally often, 21 buckets: the edges are 1..20 exactly and
	   each value is its own bucket (on its edge it goes up) */
	double x[21 * 50];
	for (size_t i = 0; i < 21 * 50; i++)
		x[i] = (double)(i % 21);
	ls_quantile *q = sketch_of(x, 21 * 50);
	double edges[LS_QUANTILE_MAX_BUCKETS];
	size_t ne;
	ck_assert_int_eq(ls_quantile_edges(q, 21, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 20);
	for (size_t k = 0; k < ne; k++)
		ck_assert(edges[k] == (double)(k + 1));
	for (int v = 0; v <= 20; v++)
		ck_assert_uint_eq(ls_quantile_bucket(edges, ne, v), (size_t)v);
	/* 4 buckets: integer edges, each bucket near a quarter */
	ck_assert_int_eq(ls_quantile_edges(q, 4, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 3);
	size_t cnt[LS_QUANTILE_MAX_BUCKETS + 1];
	bucket_counts(x, 21 * 50, edges, ne, cnt);
	ck_assert(edges[0] == 5.0 && edges[1] == 10.0 && edges[2] == 16.0);
	for (size_t k = 0; k < 4; k++)
		ck_assert_msg(cnt[k] >= 5 * 50 && cnt[k] <= 6 * 50,
			      "bucket %zu: %zu", k, cnt[k]);
	ck_edges_shortest(x, 21 * 50, edges, ne);
	ls_quantile_free(q);

	/* -10..10: edges -9..10, 0 an edge of its own */
	for (size_t i = 0; i < 21 * 50; i++)
		x[i] = (double)(int)(i % 21) - 10.0;
	q = sketch_of(x, 21 * 50);
	ck_assert_int_eq(ls_quantile_edges(q, 21, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 20);
	for (size_t k = 0; k < ne; k++)
		ck_assert_msg(edges[k] == (double)k - 9.0, "edge %zu: %.17g", k,
			      edges[k]);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, -10), 0);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, -9), 1);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, -0.5), 9);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, 0), 10);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, NAN), 10);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, 10), 20);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, 1e300), 20);
	ck_edges_shortest(x, 21 * 50, edges, ne);
	ls_quantile_free(q);

	/* larger counts (bins hold several integers): still integer edges,
	   the shortest of their bins */
	uint64_t st = 9;
	static double y[20000];
	for (size_t i = 0; i < 20000; i++)
		y[i] = floor(exp(7.0 * uniform01(&st)));
	q = sketch_of(y, 20000);
	for (uint32_t nb = 2; nb <= LS_QUANTILE_MAX_BUCKETS; nb *= 2) {
		ck_assert_int_eq(ls_quantile_edges(q, nb, edges, &ne),
				 LS_QUANTILE_OK);
		ck_assert(ne >= 1 && ne <= nb - 1);
		for (size_t k = 0; k < ne; k++)
			ck_assert_msg(edges[k] == floor(edges[k]) && edges[k] >= 1,
				      "n %u edge %.17g", nb, edges[k]);
		ck_edges_shortest(y, 20000, edges, ne);
	}
	ls_quantile_free(q);
}
END_TEST

START_TEST(test_edges_mass_at_zero)
{
	/* 60 % zeros and counts 1..: the first edge is 1, 0 its own bucket */
	const size_t n = 10000;
	uint64_t st = 11;
	double *x = malloc(n * sizeof *x);
	for (size_t i = 0; i < n; i++)
		x[i] = i % 5 < 3 ? 0.0 : floor(exp(2.0 * uniform01(&st)));
	ls_quantile *q = sketch_of(x, n);
	double edges[LS_QUANTILE_MAX_BUCKETS];
	size_t ne, cnt[LS_QUANTILE_MAX_BUCKETS + 1];
	for (uint32_t nb = 2; nb <= 10; nb++) {
		ck_assert_int_eq(ls_quantile_edges(q, nb, edges, &ne),
				 LS_QUANTILE_OK);
		ck_assert_msg(ne >= 1 && edges[0] > 0.0 && edges[0] <= 1.0,
			      "n %u: %zu edges, first %.17g", nb, ne, edges[0]);
		bucket_counts(x, n, edges, ne, cnt);
		ck_assert_uint_eq(cnt[0], 6000); /* exactly the zeros */
		ck_edges_shortest(x, n, edges, ne);
	}
	/* a continuous positive part: the first edge still above 0 and
	   within the bin of the least positive value */
	for (size_t i = 0; i < n; i++)
		x[i] = i % 5 < 3 ? 0.0 : 0.37 + uniform01(&st);
	ls_quantile_free(q);
	q = sketch_of(x, n);
	ck_assert_int_eq(ls_quantile_edges(q, 4, edges, &ne), LS_QUANTILE_OK);
	ck_assert(ne == 2 && edges[0] > 0.0 && edges[0] < 0.38);
	bucket_counts(x, n, edges, ne, cnt);
	ck_assert(cnt[0] >= 6000 && cnt[0] < 6100);
	ck_edges_shortest(x, n, edges, ne);

	/* zero below 1/n of the mass need not be separated, but a negative
	   part is told from it by the edge 0 */
	for (size_t i = 0; i < n; i++)
		x[i] = i % 2 ? -1.0 - (double)(i % 7) : (i % 4 ? 0.0 : 5.0);
	ls_quantile_free(q);
	q = sketch_of(x, n);
	ck_assert_int_eq(ls_quantile_edges(q, 2, edges, &ne), LS_QUANTILE_OK);
	ck_assert_uint_eq(ne, 1);
	ck_assert(edges[0] == 0.0);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, 0.0), 1);
	ck_assert_uint_eq(ls_quantile_bucket(edges, ne, -0.0), 1);
	ls_quantile_free(q);
	free(x);
}
END_TEST

START_TEST(test_edges_continuous)
{
	/* log-normal and signed normal: strictly ascending shortest
	   decimals, buckets within a few percent of equal mass */
	const size_t n = 20000;
	const int ds[] = { D_LOGNORMAL, D_SIGNED, D_WIDE };
	for (size_t t = 0; t < 3; t++) {
		double *x = gen(ds[t], n, 31 + t);
		ls_quantile *q = sketch_of(x, n);
		double edges[LS_QUANTILE_MAX_BUCKETS];
		size_t ne, cnt[LS_QUANTILE_MAX_BUCKETS + 1];
		const uint32_t nbs[] = { 2, 3, 10, 64 };
		for (size_t j = 0; j < 4; j++) {
			uint32_t nb = nbs[j];
			ck_assert_int_eq(ls_quantile_edges(q, nb, edges, &ne),
					 LS_QUANTILE_OK);
			ck_assert_uint_eq(ne, nb - 1);
			bucket_counts(x, n, edges, ne, cnt);
			for (size_t k = 0; k <= ne; k++)
				ck_assert_msg(fabs((double)cnt[k] - (double)n / nb) <=
						      0.03 * (double)n,
					      "%s n %u bucket %zu: %zu",
					      DNAME[ds[t]], nb, k, cnt[k]);
			if (nb <= 10)
				ck_edges_shortest(x, n, edges, ne);
		}
		ls_quantile_free(q);
		free(x);
	}
}
END_TEST

START_TEST(test_edges_degenerate)
{
	double edges[LS_QUANTILE_MAX_BUCKETS];
	size_t ne = 99;
	const double consts[] = { 0.0, 42.5, -3.0, 1e-9 };
	for (size_t i = 0; i < 4; i++) {
		double x[100];
		for (size_t j = 0; j < 100; j++)
			x[j] = consts[i];
		ls_quantile *q = sketch_of(x, 100);
		ck_assert_int_eq(ls_quantile_edges(q, 64, edges, &ne), LS_QUANTILE_OK);
		ck_assert_uint_eq(ne, 0);
		ls_quantile_free(q);
	}
	/* two values: one edge whatever n, at the upper one */
	const double two[] = { 3.0, 6.0, 6.0, 6.0 };
	ls_quantile *q = sketch_of(two, 4);
	for (uint32_t nb = 2; nb <= 64; nb++) {
		ck_assert_int_eq(ls_quantile_edges(q, nb, edges, &ne), LS_QUANTILE_OK);
		ck_assert_uint_eq(ne, 1);
		ck_assert(edges[0] == 6.0);
	}
	ls_quantile_free(q);
	ck_assert_uint_eq(ls_quantile_bucket(edges, 0, 5.0), 0);
}
END_TEST

/* ---- (5) encoding ---- */

static ls_quantile *decode(const uint8_t *p, size_t len, int *rc, char *err,
			   size_t errlen, size_t *end)
{
	ls_reader r;
	ls_reader_init(&r, p, len, "sketch", err, errlen);
	ls_quantile *q = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_add(q, 7.0), LS_QUANTILE_OK); /* replaced */
	*rc = ls_quantile_decode(q, &r);
	ck_assert_int_eq(*rc == LS_QUANTILE_OK, r.ok);
	if (*rc != LS_QUANTILE_OK) {
		ck_assert_uint_eq(ls_quantile_count(q), 0);
		ck_assert(err == NULL || err[0] != '\0');
	}
	if (end)
		*end = r.pos;
	return q;
}

START_TEST(test_encoding_round_trip)
{
	for (int d = 0; d <= D_COUNT; d++) {
		/* d == D_COUNT: the empty sketch */
		double *x = d < D_COUNT ? gen(d, 3000, 55 + (uint64_t)d) : NULL;
		ls_quantile *q = sketch_of(x, d < D_COUNT ? 3000 : 0);
		ls_buf b = { 0 };
		ck_assert_int_eq(ls_buf_append(&b, "xy", 2), 0);
		ck_assert_int_eq(ls_quantile_encode(q, &b), LS_QUANTILE_OK);
		ck_assert(memcmp(b.data, "xy", 2) == 0);
		int rc;
		size_t end;
		char err[128] = "";
		ls_quantile *r = decode(b.data + 2, b.len - 2, &rc, err,
					sizeof err, &end);
		ck_assert_msg(rc == LS_QUANTILE_OK, "%s", err);
		ck_assert_uint_eq(end, b.len - 2);
		ck_assert(ls_quantile_equal(q, r));
		ls_buf c = { 0 };
		encode(r, &c);
		ck_assert_uint_eq(c.len, b.len - 2);
		ck_assert(memcmp(c.data, b.data + 2, c.len) == 0);
		/* small: a few bytes a non-empty bin */
		if (d == D_INTS)
			ck_assert_uint_le(c.len, 4 + 20 * 4);

		/* every truncation fails cleanly */
		for (size_t len = 0; len < c.len; len++) {
			uint8_t *t = malloc(len ? len : 1); /* ASan sees overreads */
			memcpy(t, c.data, len);
			ls_quantile *f = decode(t, len, &rc, err, sizeof err, NULL);
			ck_assert_int_eq(rc, LS_QUANTILE_ERR_INVALID);
			ls_quantile_free(f);
			free(t);
		}
		/* every single-byte change either fails or decodes to a
		   sketch that encodes to exactly those bytes */
		static const uint8_t masks[] = { 0x01, 0x02, 0x40, 0x80, 0xff };
		ls_buf e = { 0 };
		for (size_t i = 0; i < c.len; i++)
			for (size_t m = 0; m < sizeof masks; m++) {
				uint8_t *t = malloc(c.len);
				memcpy(t, c.data, c.len);
				t[i] ^= masks[m];
				ls_quantile *f = decode(t, c.len, &rc, NULL, 0, &end);
				if (rc == LS_QUANTILE_OK) {
					encode(f, &e);
					ck_assert_uint_eq(e.len, end);
					ck_assert(memcmp(e.data, t, end) == 0);
				}
				ls_quantile_free(f);
				free(t);
			}
		ls_buf_free(&e);
		ls_buf_free(&b);
		ls_buf_free(&c);
		ls_quantile_free(q);
		ls_quantile_free(r);
		free(x);
	}
}
END_TEST

/* A blob from varints; -1 ends the list, -2 is a raw byte 0x80 0x00
   (a varint 0 not minimal). */
static size_t craft(uint8_t *out, const int64_t *v)
{
	uint8_t *p = out;
	*p++ = 1; /* format */
	for (; *v != -1; v++) {
		if (*v == -2) {
			*p++ = 0x80;
			*p++ = 0x00;
		} else {
			p = ls_varint_put(p, (uint64_t)*v);
		}
	}
	return (size_t)(p - out);
}

START_TEST(test_encoding_corrupt)
{
	/* zero count, then per sign: bins, (gap, count)... */
	const int64_t good[] = { 3, 1, 10, 2, 2, 700, 1, 0, 5, -1 };
	const struct {
		const char *what;
		int64_t v[12];
	} bad[] = {
		{ "empty bin listed", { 0, 1, 5, 0, 0, -1 } },
		{ "bin out of range", { 0, 1, 2240, 1, 0, -1 } },
		{ "gap past the last bin", { 0, 0, 2, 2000, 1, 239, 1, -1 } },
		{ "more bins than the layout", { 0, 2241, -1 } },
		{ "varint not minimal", { -2, 0, 0, -1 } },
		{ "zero count too large", { (int64_t)(LS_QUANTILE_MAX_COUNT + 1), 0, 0, -1 } },
		{ "counts sum too large", { (int64_t)(LS_QUANTILE_MAX_COUNT / 2), 1, 0,
					    (int64_t)(LS_QUANTILE_MAX_COUNT / 2) + 1, 0, -1 } },
	};
	uint8_t blob[128];
	size_t len = craft(blob, good);
	int rc;
	char err[128];
	ls_quantile *q = decode(blob, len, &rc, err, sizeof err, NULL);
	ck_assert_int_eq(rc, LS_QUANTILE_OK);
	ck_assert_uint_eq(ls_quantile_count(q), 3 + 2 + 1 + 5);
	ls_quantile_free(q);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		len = craft(blob, bad[i].v);
		err[0] = '\0';
		q = decode(blob, len, &rc, err, sizeof err, NULL);
		ck_assert_msg(rc == LS_QUANTILE_ERR_INVALID, "%s decoded", bad[i].what);
		ck_assert_msg(strstr(err, "sketch corrupt at byte") == err, "%s: %s",
			      bad[i].what, err);
		ls_quantile_free(q);
	}
	/* the largest bin is fine; an unknown format byte is not */
	const int64_t last[] = { 0, 0, 1, 2239, 4, -1 };
	len = craft(blob, last);
	q = decode(blob, len, &rc, err, sizeof err, NULL);
	ck_assert_int_eq(rc, LS_QUANTILE_OK);
	ls_quantile_free(q);
	blob[0] = 2;
	q = decode(blob, len, &rc, err, sizeof err, NULL);
	ck_assert_int_eq(rc, LS_QUANTILE_ERR_INVALID);
	ck_assert(strstr(err, "format") != NULL);
	ls_quantile_free(q);
	/* a reader that has failed already fails the decode */
	ls_reader r;
	len = craft(blob, good);
	ls_reader_init(&r, blob, len, "sketch", NULL, 0);
	ls_reader_fail_at(&r, 0, "earlier");
	q = ls_quantile_new();
	ck_assert_int_eq(ls_quantile_decode(q, &r), LS_QUANTILE_ERR_INVALID);
	ck_assert_uint_eq(ls_quantile_count(q), 0);
	ls_quantile_free(q);
}
END_TEST

static Suite *quantile_suite(void)
{
	Suite *s = suite_create("quantile");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_error_bound);
	tcase_add_test(tc, test_bounds_of_the_range);
	tcase_add_test(tc, test_nonfinite_and_zero);
	tcase_add_test(tc, test_arguments);
	tcase_add_test(tc, test_determinism);
	tcase_add_test(tc, test_merge_and_delta);
	tcase_add_test(tc, test_count_limit);
	tcase_add_test(tc, test_edges_integers);
	tcase_add_test(tc, test_edges_mass_at_zero);
	tcase_add_test(tc, test_edges_continuous);
	tcase_add_test(tc, test_edges_degenerate);
	tcase_add_test(tc, test_encoding_round_trip);
	tcase_add_test(tc, test_encoding_corrupt);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(quantile_suite(), CK_NORMAL);
}
