/*
 * fuzz_quantile - the quantile sketch of the numeric feature maps
 * (models/ls_quantile.c): its decoder, which reads sketches back from
 * model checkpoints, and its answers on arbitrary values.
 *
 * Input: byte 0 says what the rest is. Bit 0 clear: an encoded sketch.
 * Bit 0 set: values, 8 bytes each (any bit pattern: NaN, infinities,
 * subnormals, -0). Bits 1-6: n - 2 of the edges asked for (n = 2..64 after
 * a modulo).
 *
 * Properties: a sketch that decodes re-encodes to exactly the bytes read
 * (the encoding is canonical); for a sketch of values, the decode of its
 * encoding is equal to it, and every quantile is within the relative
 * error of the true one (rank floor(p (N-1)), values inside the covered
 * range); on any sketch, quantiles ascend with p, edges ascend strictly,
 * there are at most n - 1, each edge falls in its own bucket, and a delta
 * against itself is empty.
 */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "ls_quantile.h"

#define MAX_VALUES 4096

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void check_answers(const ls_quantile *q, uint32_t n)
{
	double prev = -INFINITY;
	for (int i = 0; i <= 20; i++) {
		double v;
		int rc = ls_quantile_value(q, i / 20.0, &v);
		if (ls_quantile_count(q) == 0) {
			FUZZ_CHECK(rc == LS_QUANTILE_ERR_EMPTY, "value of empty: %d", rc);
			continue;
		}
		FUZZ_CHECK(rc == LS_QUANTILE_OK && isfinite(v), "value: %d", rc);
		FUZZ_CHECK(v >= prev, "quantiles descend: %.17g after %.17g", v, prev);
		prev = v;
	}
	double edges[LS_QUANTILE_MAX_BUCKETS];
	size_t ne;
	FUZZ_CHECK(ls_quantile_edges(q, n, edges, &ne) == LS_QUANTILE_OK, "edges");
	FUZZ_CHECK(ne <= n - 1, "%zu edges for %u buckets", ne, n);
	for (size_t k = 0; k < ne; k++) {
		FUZZ_CHECK(isfinite(edges[k]), "edge %zu: %.17g", k, edges[k]);
		FUZZ_CHECK(k == 0 || edges[k] > edges[k - 1], "edges not ascending");
		FUZZ_CHECK(ls_quantile_bucket(edges, ne, edges[k]) == k + 1,
			   "edge %zu not in its bucket", k);
	}
	ls_quantile *d = ls_quantile_new();
	FUZZ_CHECK(d != NULL, "out of memory");
	FUZZ_CHECK(ls_quantile_delta_into(d, q, q) == LS_QUANTILE_OK, "delta");
	FUZZ_CHECK(ls_quantile_count(d) == 0, "delta from itself not empty");
	ls_quantile_free(d);
}

static void from_bytes(const uint8_t *data, size_t size, uint32_t n)
{
	ls_reader r;
	char err[256];
	ls_reader_init(&r, data, size, "sketch", err, sizeof err);
	ls_quantile *q = ls_quantile_new();
	FUZZ_CHECK(q != NULL, "out of memory");
	if (ls_quantile_decode(q, &r) == LS_QUANTILE_OK) {
		FUZZ_CHECK(r.ok, "decoded with a failed reader");
		ls_buf b = { 0 };
		FUZZ_CHECK(ls_quantile_encode(q, &b) == LS_QUANTILE_OK, "encode");
		FUZZ_CHECK(b.len == r.pos && memcmp(b.data, data, b.len) == 0,
			   "decode then encode changed %zu bytes into %zu", r.pos, b.len);
		ls_buf_free(&b);
		check_answers(q, n);
	} else {
		FUZZ_CHECK(!r.ok && ls_quantile_count(q) == 0, "failed decode left data");
	}
	ls_quantile_free(q);
}

static void from_values(const uint8_t *data, size_t size, uint32_t n)
{
	static double x[MAX_VALUES];
	size_t m = 0;
	ls_quantile *q = ls_quantile_new();
	FUZZ_CHECK(q != NULL, "out of memory");
	for (size_t off = 0; off + 8 <= size && m < MAX_VALUES; off += 8) {
		double v;
		memcpy(&v, data + off, 8);
		FUZZ_CHECK(ls_quantile_add(q, v) == LS_QUANTILE_OK, "add");
		if (isfinite(v))
			x[m++] = v;
	}
	FUZZ_CHECK(ls_quantile_count(q) == m, "count %llu of %zu",
		   (unsigned long long)ls_quantile_count(q), m);
	qsort(x, m, sizeof *x, cmp_double);
	for (int i = 0; i <= 20 && m > 0; i++) {
		double p = i / 20.0, v, want = x[ls_quantile_rank(m, p)];
		FUZZ_CHECK(ls_quantile_value(q, p, &v) == LS_QUANTILE_OK, "value");
		if (want == 0.0 || (fabs(want) >= 0x1p-20 && fabs(want) < 0x1p44))
			FUZZ_CHECK(fabs(v - want) <= LS_QUANTILE_ALPHA * fabs(want),
				   "p %g: %.17g for %.17g", p, v, want);
	}
	ls_buf b = { 0 };
	FUZZ_CHECK(ls_quantile_encode(q, &b) == LS_QUANTILE_OK, "encode");
	ls_reader r;
	ls_reader_init(&r, b.data, b.len, "sketch", NULL, 0);
	ls_quantile *back = ls_quantile_new();
	FUZZ_CHECK(back != NULL, "out of memory");
	FUZZ_CHECK(ls_quantile_decode(back, &r) == LS_QUANTILE_OK && r.pos == b.len,
		   "round trip");
	FUZZ_CHECK(ls_quantile_equal(q, back), "round trip changed the sketch");
	ls_buf_free(&b);
	ls_quantile_free(back);
	check_answers(q, n);
	ls_quantile_free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint32_t n = 2 + (uint32_t)((data[0] >> 1) % (LS_QUANTILE_MAX_BUCKETS - 1));
	if (data[0] & 1)
		from_values(data + 1, size - 1, n);
	else
		from_bytes(data + 1, size - 1, n);
	return 0;
}
