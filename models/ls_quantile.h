/*
 * ls_quantile.h - a small deterministic, mergeable quantile sketch for the
 * numeric feature maps (quantile buckets learned online, see ls_ftrl.h).
 *
 * What: a relative-error sketch in the manner of DDSketch (Masson, Rim and
 * Lee, VLDB 2019): values are counted in fixed logarithmic bins, so that
 *   - the q-quantile it returns is within a relative error
 *     LS_QUANTILE_ALPHA of the true q-quantile of the values added
 *     (exact rank, approximate value), for |v| inside the covered range
 *     (values outside are clamped to its ends; 0 has its own counter);
 *   - it is a pure function of the multiset of values added: order,
 *     instance and merge pattern do not change it (counts are integers
 *     and bins fixed, never collapsed by data);
 *   - counts add: a sketch of the union of two streams is the elementwise
 *     sum, so instances merge sketches as they merge models, by deltas
 *     (local - base, added to the shared copy).
 * Non-finite values are ignored (the model sees them as 0 elsewhere; a
 * NaN has no rank).
 *
 * Edges (ls_quantile_edges): the cut points of n equal-mass buckets,
 * chosen as the shortest decimal inside the bin that holds each
 * quantile (so "pricing_views_7d in [3, 6)" reads as written and integer
 * counts cut exactly on integers), ascending, duplicates removed (a
 * feature that is 0 for 60 % of leads has fewer distinct cuts than
 * asked). A value v belongs to bucket k when edges[k-1] <= v < edges[k].
 *
 * Encoding: appended to a caller's buffer, LEB128 varints, the non-empty
 * bins only (a sketch of integer counts uses a few dozen), decodable
 * from an ls_reader that fails on anything out of bounds or inconsistent.
 *
 * Memory: a sketch owns its bins (a few KiB at most, allocated on first
 * use of a sign). Errors: 0 or a negative LS_QUANTILE_ERR_*. Thread-safety:
 * reads (count, value, edges, encode, delta source) only read; one
 * writer at a time.
 */
#ifndef LS_QUANTILE_H
#define LS_QUANTILE_H

#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_varint.h"

#define LS_QUANTILE_ALPHA 0.01     /* relative error of a returned value */
#define LS_QUANTILE_MAX_BUCKETS 64 /* n of ls_quantile_edges */

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

int ls_quantile_add(ls_quantile *q, double v);
uint64_t ls_quantile_count(const ls_quantile *q);
/* The q-quantile (q in [0,1]) of the values added; ERR_EMPTY when none. */
int ls_quantile_value(const ls_quantile *q, double p, double *out);
/*
 * Up to n - 1 (n in 2..LS_QUANTILE_MAX_BUCKETS) distinct ascending edges
 * of n equal-mass buckets into edges; *n_edges receives how many (0 for
 * an empty sketch or a constant stream).
 */
int ls_quantile_edges(const ls_quantile *q, uint32_t n, double *edges,
		      size_t *n_edges);

/* d = local - base; ERR_INVALID when some count of local is below base's. */
int ls_quantile_delta_into(ls_quantile *d, const ls_quantile *local,
			   const ls_quantile *base);
/* q += d (elementwise; what a merged delta does). */
int ls_quantile_add_sketch(ls_quantile *q, const ls_quantile *d);
/* Equal counts in every bin. */
int ls_quantile_equal(const ls_quantile *a, const ls_quantile *b);

/* Append q's encoding to out. */
int ls_quantile_encode(const ls_quantile *q, ls_buf *out);
/* Decode one sketch from r into q (replacing it); on failure r has failed
   (ls_reader_fail_at) and q is empty. */
int ls_quantile_decode(ls_quantile *q, ls_reader *r);

#endif
