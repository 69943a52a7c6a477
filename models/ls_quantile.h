/*
 * ls_quantile.h - a small deterministic, mergeable quantile sketch for the
 * numeric feature maps (quantile buckets learned online, see ls_ftrl.h).
 *
 * What: a relative-error sketch in the manner of DDSketch (Masson, Rim and
 * Lee, VLDB 2019): values are counted in fixed logarithmic bins, so that
 *   - the q-quantile it returns is within a relative error
 *     LS_QUANTILE_ALPHA of the true q-quantile of the values added
 *     (exact rank, approximate value), for |v| inside the covered range;
 *   - it is a pure function of the multiset of values added: order,
 *     instance and merge pattern do not change it (counts are integers
 *     and bins fixed, never collapsed by data; a value's bin is decided by
 *     exact comparisons, not by libm, so builds agree too);
 *   - counts add: a sketch of the union of two streams is the elementwise
 *     sum, so instances merge sketches as they merge models, by deltas
 *     (local - base, added to the shared copy).
 * Bins: 35 per octave (bounds 2^(i/35), relative error 0.0099), positive
 * and negative values in mirrored bins of |v|, 0 (and -0) in a counter of
 * its own. Covered range: |v| in [2^-20, 2^44), about [9.5e-7, 1.8e13];
 * a nonzero |v| below counts in the lowest bin of its sign, above in the
 * highest (its sign is kept, its magnitude is not: the error bound does
 * not hold for it). Non-finite values are ignored (the model sees them as
 * 0 elsewhere; a NaN has no rank). At most LS_QUANTILE_MAX_COUNT values.
 *
 * Rank convention: the q-quantile of N values x_0 <= ... <= x_{N-1} is
 * x_r with r = ls_quantile_rank(N, q) = floor(q (N - 1)); the sketch
 * returns a value within LS_QUANTILE_ALPHA relative of it (0 exactly when
 * x_r is 0).
 *
 * Edges (ls_quantile_edges): the cut points of n equal-mass buckets. Cut
 * k (1..n-1) goes at the boundary between two non-empty bins where the
 * count below is nearest k N / n (the lower boundary on a tie); cuts
 * that would leave the first or last bucket empty, and repeats, are
 * dropped, so there may be fewer than n - 1 (none for a constant stream).
 * A cut is written as the shortest decimal (fewest significant digits)
 * inside the bin just above it, the one nearest that bin's low end of
 * several (the largest |v| for a negative bin), and 0 for the zero
 * counter. Hence
 *   - integer data cut on integers: below about 50 a bin holds at most
 *     one integer, and it is the edge ("pricing_views_7d in [3, 6)");
 *     above, the edge is the roundest number in the bin (140 rather than
 *     139), and some of the bin's values may fall on its lower side;
 *   - a mass at 0 of at least 1/n of nonnegative data is a bucket of its
 *     own, [0, e) with e the shortest decimal in the lowest non-empty
 *     positive bin (1 for counts): "v > 0" is "v >= e";
 *   - values below 0 and at 0 are told apart by the edge 0.
 * A value v belongs to bucket k = ls_quantile_bucket(edges, n_edges, v)
 * when edges[k-1] <= v < edges[k] (v on an edge goes up).
 *
 * Encoding: appended to a caller's buffer, LEB128 varints, a format byte
 * then the non-empty bins only (gap-coded index, count), canonical (a
 * decoded sketch re-encodes to the same bytes); decoding fails (reader
 * failed, sketch empty) on anything truncated, out of range, not
 * canonical or over LS_QUANTILE_MAX_COUNT.
 *
 * Memory: a sketch owns its bins: per sign, a dense array over the range
 * of bins its values reach (grown on demand; 8 bytes a bin, 350 bins for
 * values 1..1000, at most 2 x 2240). Errors: 0 or a negative
 * LS_QUANTILE_ERR_*. Thread-safety: reads (count, value, edges, encode,
 * delta source) only read; one writer at a time.
 */
#ifndef LS_QUANTILE_H
#define LS_QUANTILE_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_varint.h"

#define LS_QUANTILE_ALPHA 0.01     /* relative error of a returned value */
#define LS_QUANTILE_MAX_BUCKETS 64 /* n of ls_quantile_edges */
/* Values a sketch holds at most (2^56: edges compare counts times n
   without overflow); an add beyond fails with ERR_INVALID. */
#define LS_QUANTILE_MAX_COUNT (UINT64_C(1) << 56)

enum {
	LS_QUANTILE_OK = 0,
	LS_QUANTILE_ERR_INVALID = -1, /* bad argument, or a delta source not
					 descended from its base */
	LS_QUANTILE_ERR_NOMEM = -2,
	LS_QUANTILE_ERR_EMPTY = -3,   /* no value added */
};

typedef struct ls_quantile ls_quantile;

ls_quantile *ls_quantile_new(void);
void ls_quantile_free(ls_quantile *q);
ls_quantile *ls_quantile_clone(const ls_quantile *q);
/* dst = src (dst's storage reused where it fits). */
int ls_quantile_copy(ls_quantile *dst, const ls_quantile *src);
void ls_quantile_reset(ls_quantile *q);

/* Count v (non-finite: ignored, LS_QUANTILE_OK). ERR_INVALID when q
   already holds LS_QUANTILE_MAX_COUNT values. */
int ls_quantile_add(ls_quantile *q, double v);
uint64_t ls_quantile_count(const ls_quantile *q);
/* The p-quantile (p in [0,1]) of the values added; ERR_EMPTY when none. */
int ls_quantile_value(const ls_quantile *q, double p, double *out);
/* The rank of the p-quantile of n values: floor(p (n - 1)), 0 when n is
   0 (p clamped to [0, 1], NaN as 0). */
uint64_t ls_quantile_rank(uint64_t n, double p);
/*
 * Up to n - 1 (n in 2..LS_QUANTILE_MAX_BUCKETS) distinct ascending edges
 * of n equal-mass buckets into edges; *n_edges receives how many (0 for
 * an empty sketch or a constant stream).
 */
int ls_quantile_edges(const ls_quantile *q, uint32_t n, double *edges,
		      size_t *n_edges);
/* The bucket of v among edges[0..n_edges) (strictly ascending): the
   number of edges <= v, so 0..n_edges. A non-finite v is taken as 0. */
size_t ls_quantile_bucket(const double *edges, size_t n_edges, double v);

/* d = local - base (d distinct from both); ERR_INVALID when some count
   of local is below base's (local does not descend from base). */
int ls_quantile_delta_into(ls_quantile *d, const ls_quantile *local,
			   const ls_quantile *base);
/* q += d (elementwise; what a merged delta does). ERR_INVALID when the
   sum would exceed LS_QUANTILE_MAX_COUNT (q unchanged). */
int ls_quantile_add_sketch(ls_quantile *q, const ls_quantile *d);
/* Equal counts in every bin. */
int ls_quantile_equal(const ls_quantile *a, const ls_quantile *b);

/* Append q's encoding to out. */
int ls_quantile_encode(const ls_quantile *q, ls_buf *out);
/* Decode one sketch from r into q (replacing it); on failure r has failed
   (ls_reader_fail_at) and q is empty. */
int ls_quantile_decode(ls_quantile *q, ls_reader *r);

#endif
