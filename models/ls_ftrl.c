/*
 * ls_ftrl.c - FTRL-Proximal logistic regression; see ls_ftrl.h for the
 * semantics, the checkpoint format and the merge argument.
 *
 * State is two flat arrays of doubles, z and n, over every coordinate
 * (bias, dense, buckets) rather than a hash map of touched coordinates:
 * lookups are one index, the memory is fixed and known at start (4 MiB for
 * 2^18 buckets), and a checkpoint only pays for the touched coordinates
 * anyway. Doubles rather than floats because deltas subtract nearly equal
 * accumulators, and float would lose the small updates of a busy
 * coordinate.
 *
 * Weights are never stored; w_i is recomputed from (z_i, n_i) where it is
 * needed, which is what makes the checkpoint and the merge only about z
 * and n. The one exception is in memory only: the dense features'
 * weights and standardisation, which every score needs, are kept beside
 * the state and recomputed from it whenever it changes (refresh()).
 *
 * An example keeps its hashed entries sorted by index and unique, merged
 * on insertion, so learning touches each coordinate once per example (the
 * FTRL update of a coordinate assumes one gradient per step) and the order
 * of summation is fixed, which keeps results bit-reproducible.
 */
#include "ls_err.h"
#include "ls_varint.h"
#include "ls_ftrl.h"
#include "ls_quantile.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

/* Margins beyond +-35 give p within 1e-15 of 0 or 1; exp() stays finite. */
#define MARGIN_MAX 35.0
/* Variance floor in the standardisation (sd >= 0.01, see the header). */
#define VAR_FLOOR 1e-4

static const char MAGIC[4] = { 'L', 'S', 'F', 'T' };
/* Format 2 adds the numeric maps; written only when some map is not the
   zero map, so models without maps keep their version 1 bytes. */
#define FORMAT_MAPPED 2
/* Seed of a bucket's hash, plus the bucket index (see the header). */
#define BUCKET_SEED 0x4c53424b00000000ULL /* "LSBK" */
/* What ls_ram_bytes counts per sketch: ls_quantile.h promises "a few KiB
   at most" and offers no exact figure. */
#define SKETCH_BYTES 4096
/* Longest %.17g of a double ("-2.2250738585072014e-308"), with the NUL. */
#define NUM_MAX 32
/* Room for the longest bucket name of a feature name of len bytes:
   "name in [a, b)". */
#define BUCKET_NAME_MAX(len) ((len) + 2 * NUM_MAX + 16)

/*
 * A dense feature with buckets. coord[k] is bucket k's coordinate, a
 * function of the feature name and k alone (not of the edges), so a
 * bucket's weight survives a refreeze that moves its edges. The edges
 * and the bucket names are frozen: set at construction (BINS, or no edges
 * for a fresh QUANTILES sketch) and by refreeze() when the version
 * changes, never while learning. names holds the names of buckets
 * 0..n_edges, bucket k's at name_off[k] (its length name_off[k + 1] -
 * name_off[k] - 1: no strlen per example), NUL-terminated, written into
 * room sized at construction for the most buckets the map can have, so
 * that a refreeze never allocates (and apply_delta cannot fail half way).
 */
typedef struct bucketed {
	uint32_t j;       /* dense index */
	uint32_t quantiles;
	ls_quantile *sk;  /* QUANTILES: sketch of the raw values learned */
	size_t n_edges;
	double edges[LS_FTRL_MAX_EDGES];
	uint32_t coord[LS_FTRL_MAX_EDGES + 1];
	uint32_t name_off[LS_FTRL_MAX_EDGES + 2]; /* + the end */
	char *names;
	size_t names_cap;
} bucketed;

struct ls_ftrl {
	ls_ftrl_params p;
	bool is_delta;
	uint64_t version;
	uint64_t pos, neg;
	uint64_t layout;
	size_t n_dense;
	char **names;      /* n_dense owned names, in coordinate order */
	uint32_t *by_name; /* dense indices sorted by name, for lookups */
	double *s1, *s2;   /* per dense feature: sum t, sum t^2 */
	size_t dims;
	double *z, *n;
	/*
	 * Per dense feature, what every prediction and explanation needs:
	 * the standardisation's mean and sd and the weight, computed from
	 * the state above by refresh() after each change of it, with the
	 * same operations as dense_moments() and weight(), so the values are
	 * the same bits. Without it every score paid two divisions and two
	 * square roots per dense feature twice (margin and explanation).
	 */
	double *mean, *sd, *wd;
	/*
	 * Numeric maps: NULL when every map is the zero map (the model is
	 * then exactly what it was before maps existed); otherwise one per
	 * dense feature, normalised (fields the bucketing does not use are
	 * 0), and bk lists the n_bk features that have buckets, in dense
	 * order.
	 */
	ls_ftrl_numeric *maps;
	bucketed *bk;
	size_t n_bk;
};

static void refresh(ls_ftrl *m);

const char *ls_ftrl_result_str(int rc)
{
	switch (rc) {
	case LS_FTRL_OK: return "ok";
	case LS_FTRL_ERR_INVALID: return "invalid argument";
	case LS_FTRL_ERR_NOMEM: return "out of memory";
	case LS_FTRL_ERR_LAYOUT: return "model layout mismatch";
	case LS_FTRL_ERR_CORRUPT: return "checkpoint corrupt";
	case LS_FTRL_ERR_DELTA: return "delta misuse";
	default: return "unknown error";
	}
}

void ls_ftrl_params_default(ls_ftrl_params *p)
{
	p->alpha = LS_FTRL_DEFAULT_ALPHA;
	p->beta = LS_FTRL_DEFAULT_BETA;
	p->l1 = LS_FTRL_DEFAULT_L1;
	p->l2 = LS_FTRL_DEFAULT_L2;
	p->n_buckets = LS_FTRL_DEFAULT_BUCKETS;
	p->clip = LS_FTRL_DEFAULT_CLIP;
}

bool ls_ftrl_params_check(const ls_ftrl_params *p, char *err, size_t errlen)
{
	if (p == NULL) {
		ls_set_err(err, errlen, "no parameters");
		return false;
	}
	/* Written as !(x > 0) so that NaN fails too. */
	if (!(p->alpha > 0) || !isfinite(p->alpha)) {
		ls_set_err(err, errlen, "alpha must be a finite number > 0");
		return false;
	}
	if (!(p->beta >= 0) || !isfinite(p->beta)) {
		ls_set_err(err, errlen, "beta must be a finite number >= 0");
		return false;
	}
	if (!(p->l1 >= 0) || !isfinite(p->l1)) {
		ls_set_err(err, errlen, "l1 must be a finite number >= 0");
		return false;
	}
	if (!(p->l2 >= 0) || !isfinite(p->l2)) {
		ls_set_err(err, errlen, "l2 must be a finite number >= 0");
		return false;
	}
	if (!(p->clip > 0) || !isfinite(p->clip)) {
		ls_set_err(err, errlen, "clip must be a finite number > 0");
		return false;
	}
	if (p->n_buckets < LS_FTRL_MIN_BUCKETS ||
	    p->n_buckets > LS_FTRL_MAX_BUCKETS ||
	    (p->n_buckets & (p->n_buckets - 1)) != 0) {
		ls_set_err(err, errlen,
			"n_buckets must be a power of two in [%u, %u]",
			LS_FTRL_MIN_BUCKETS, LS_FTRL_MAX_BUCKETS);
		return false;
	}
	return true;
}

/* ---- model lifetime ---- */

static int cmp_names_idx(const void *a, const void *b, void *ctx)
{
	char **names = ctx;
	return strcmp(names[*(const uint32_t *)a], names[*(const uint32_t *)b]);
}

/* Sort by name with a stable, libc-independent insertion sort: n is small
   and qsort has no context argument in C17. */
static void sort_by_name(uint32_t *idx, size_t n, char **names)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t v = idx[i];
		size_t j = i;
		while (j > 0 && cmp_names_idx(&idx[j - 1], &v, names) > 0) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
}

static uint64_t hash_double(uint64_t h, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	return XXH3_64bits_withSeed(&bits, sizeof bits, h);
}

static uint64_t compute_layout(const ls_ftrl *m)
{
	uint64_t h = 0x4c534654; /* "LSFT" */
	h = hash_double(h, m->p.alpha);
	h = hash_double(h, m->p.beta);
	h = hash_double(h, m->p.l1);
	h = hash_double(h, m->p.l2);
	h = hash_double(h, m->p.clip);
	uint64_t nb = m->p.n_buckets, nd = m->n_dense;
	h = XXH3_64bits_withSeed(&nb, sizeof nb, h);
	h = XXH3_64bits_withSeed(&nd, sizeof nd, h);
	for (size_t j = 0; j < m->n_dense; j++) /* with the NUL: no ambiguity */
		h = XXH3_64bits_withSeed(m->names[j], strlen(m->names[j]) + 1,
					 h);
	if (m->maps == NULL)
		return h; /* the layout of a model without maps is unchanged */
	for (size_t j = 0; j < m->n_dense; j++) {
		const ls_ftrl_numeric *nm = &m->maps[j];
		uint64_t f[4] = { (uint64_t)nm->transform, nm->no_linear ? 1 : 0,
				  (uint64_t)nm->buckets, nm->quantiles };
		h = XXH3_64bits_withSeed(f, sizeof f, h);
		uint64_t ne = nm->n_edges;
		h = XXH3_64bits_withSeed(&ne, sizeof ne, h);
		for (size_t k = 0; k < nm->n_edges; k++)
			h = hash_double(h, nm->edges[k]);
	}
	return h;
}

void ls_ftrl_free(ls_ftrl *m)
{
	if (m == NULL)
		return;
	if (m->names != NULL)
		for (size_t j = 0; j < m->n_dense; j++)
			free(m->names[j]);
	free(m->names);
	free(m->by_name);
	free(m->s1);
	free(m->s2);
	free(m->mean);
	free(m->z);
	free(m->n);
	for (size_t b = 0; b < m->n_bk; b++) {
		ls_quantile_free(m->bk[b].sk);
		free(m->bk[b].names);
	}
	free(m->bk);
	free(m->maps);
	free(m);
}

/* ---- numeric maps ---- */

bool ls_ftrl_numeric_check(const ls_ftrl_numeric *nm, char *err, size_t errlen)
{
	if (nm == NULL) {
		ls_set_err(err, errlen, "no numeric map");
		return false;
	}
	if (nm->transform != LS_FTRL_T_LOG1P &&
	    nm->transform != LS_FTRL_T_LINEAR) {
		ls_set_err(err, errlen, "unknown transform %d",
			(int)nm->transform);
		return false;
	}
	switch (nm->buckets) {
	case LS_FTRL_B_NONE:
		return true;
	case LS_FTRL_B_BINS:
		if (nm->n_edges < 1 || nm->n_edges > LS_FTRL_MAX_EDGES) {
			ls_set_err(err, errlen, "bins: %zu edges, need 1..%d",
				nm->n_edges, LS_FTRL_MAX_EDGES);
			return false;
		}
		for (size_t k = 0; k < nm->n_edges; k++) {
			if (!isfinite(nm->edges[k])) {
				ls_set_err(err, errlen,
					"bins: edge %zu is not a finite number",
					k + 1);
				return false;
			}
			if (k > 0 && !(nm->edges[k] > nm->edges[k - 1])) {
				ls_set_err(err, errlen,
					"bins: edges must be strictly ascending "
					"(edge %zu, %g, after %g)", k + 1,
					nm->edges[k], nm->edges[k - 1]);
				return false;
			}
		}
		return true;
	case LS_FTRL_B_QUANTILES:
		if (nm->quantiles < 2 || nm->quantiles > LS_FTRL_MAX_EDGES + 1) {
			ls_set_err(err, errlen,
				"quantiles: %u buckets, need 2..%d",
				nm->quantiles, LS_FTRL_MAX_EDGES + 1);
			return false;
		}
		return true;
	default:
		ls_set_err(err, errlen, "unknown bucketing %d", (int)nm->buckets);
		return false;
	}
}

static bool map_is_zero(const ls_ftrl_numeric *nm)
{
	return nm->transform == LS_FTRL_T_LOG1P && !nm->no_linear &&
	       nm->buckets == LS_FTRL_B_NONE;
}

/* nm (checked) with the fields its bucketing does not use zeroed and -0
   edges made +0, so equal maps hash, encode and name buckets alike. */
static void map_normalise(ls_ftrl_numeric *out, const ls_ftrl_numeric *nm)
{
	memset(out, 0, sizeof *out);
	out->transform = nm->transform;
	out->no_linear = nm->no_linear;
	out->buckets = nm->buckets;
	if (nm->buckets == LS_FTRL_B_BINS) {
		out->n_edges = nm->n_edges;
		for (size_t k = 0; k < nm->n_edges; k++)
			out->edges[k] = nm->edges[k] + 0.0;
	} else if (nm->buckets == LS_FTRL_B_QUANTILES) {
		out->quantiles = nm->quantiles;
	}
}

/* The shortest %.Ng that reads back as d: 3 is "3", 10 is "10" (not
   "1e+01"), 0.1 is "0.1", 2000000 is "2e+06". */
static void fmt_num(char out[NUM_MAX], double d)
{
	char s[NUM_MAX];
	size_t best = SIZE_MAX;
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, d);
		size_t len = strlen(s);
		if (len < best && strtod(s, NULL) == d) {
			memcpy(out, s, len + 1);
			best = len;
		}
	}
}

/* Write the names of buckets 0..b->n_edges of feature name into b->names. */
static void bucket_names(bucketed *b, const char *name)
{
	size_t off = 0;
	char lo[NUM_MAX], hi[NUM_MAX];
	for (size_t k = 0; k <= b->n_edges; k++) {
		char *dst = b->names + off;
		size_t room = b->names_cap - off;
		int w;
		if (b->n_edges == 0) {
			w = snprintf(dst, room, "%s (all values)", name);
		} else if (k == 0) {
			fmt_num(hi, b->edges[0]);
			w = snprintf(dst, room, "%s < %s", name, hi);
		} else if (k == b->n_edges) {
			fmt_num(lo, b->edges[k - 1]);
			w = snprintf(dst, room, "%s >= %s", name, lo);
		} else {
			fmt_num(lo, b->edges[k - 1]);
			fmt_num(hi, b->edges[k]);
			w = snprintf(dst, room, "%s in [%s, %s)", name, lo, hi);
		}
		/* never truncated: room is BUCKET_NAME_MAX per bucket */
		b->name_off[k] = (uint32_t)off;
		off += (size_t)w + 1;
	}
	b->name_off[b->n_edges + 1] = (uint32_t)off;
}

/*
 * Freeze the QUANTILES edges of m at its sketches' current quantiles and
 * rename the buckets. An empty (or constant) sketch gives no edges: one
 * bucket that every value falls in.
 */
static void refreeze(ls_ftrl *m)
{
	for (size_t i = 0; i < m->n_bk; i++) {
		bucketed *b = &m->bk[i];
		if (b->sk == NULL)
			continue;
		size_t n = 0;
		if (ls_quantile_edges(b->sk, b->quantiles, b->edges, &n) !=
			    LS_QUANTILE_OK ||
		    n > LS_FTRL_MAX_EDGES)
			n = 0;
		b->n_edges = n;
		bucket_names(b, m->names[b->j]);
	}
}

/* The bucket of v: k when edges[k-1] <= v < edges[k] (v on an edge goes
   up). */
static size_t bucket_of(const bucketed *b, double v)
{
	size_t lo = 0, hi = b->n_edges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v >= b->edges[mid])
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Set up m's maps from maps[0..n_dense) (checked, names set): NULL or all
 * zero leaves m without maps.
 */
static int maps_init(ls_ftrl *m, const ls_ftrl_numeric *maps)
{
	size_t nb = 0;
	bool any = false;
	for (size_t j = 0; maps != NULL && j < m->n_dense; j++) {
		any = any || !map_is_zero(&maps[j]);
		if (maps[j].buckets != LS_FTRL_B_NONE)
			nb++;
	}
	if (!any)
		return LS_FTRL_OK;
	m->maps = calloc(m->n_dense, sizeof *m->maps);
	m->bk = calloc(nb > 0 ? nb : 1, sizeof *m->bk);
	if (m->maps == NULL || m->bk == NULL)
		return LS_FTRL_ERR_NOMEM;
	for (size_t j = 0; j < m->n_dense; j++) {
		map_normalise(&m->maps[j], &maps[j]);
		const ls_ftrl_numeric *nm = &m->maps[j];
		if (nm->buckets == LS_FTRL_B_NONE)
			continue;
		bucketed *b = &m->bk[m->n_bk++];
		b->j = (uint32_t)j;
		size_t len = strlen(m->names[j]);
		size_t n_b = nm->buckets == LS_FTRL_B_BINS ? nm->n_edges + 1
							   : nm->quantiles;
		for (size_t k = 0; k < n_b; k++) {
			uint64_t h = XXH3_64bits_withSeed(m->names[j], len,
							  BUCKET_SEED + k);
			b->coord[k] = (uint32_t)(1 + m->n_dense +
				(h & (uint64_t)(m->p.n_buckets - 1)));
		}
		b->names_cap = n_b * BUCKET_NAME_MAX(len);
		b->names = malloc(b->names_cap);
		if (b->names == NULL)
			return LS_FTRL_ERR_NOMEM;
		if (nm->buckets == LS_FTRL_B_BINS) {
			b->n_edges = nm->n_edges;
			memcpy(b->edges, nm->edges, nm->n_edges * sizeof *b->edges);
		} else {
			b->quantiles = nm->quantiles;
			b->sk = ls_quantile_new();
			if (b->sk == NULL)
				return LS_FTRL_ERR_NOMEM;
		}
		bucket_names(b, m->names[j]);
	}
	return LS_FTRL_OK;
}

/* dst's frozen edges and bucket names = src's (same layout). */
static void copy_frozen(bucketed *dst, const bucketed *src)
{
	dst->n_edges = src->n_edges;
	memcpy(dst->edges, src->edges, src->n_edges * sizeof *dst->edges);
	memcpy(dst->name_off, src->name_off,
	       (src->n_edges + 2) * sizeof *dst->name_off);
	memcpy(dst->names, src->names, src->name_off[src->n_edges + 1]);
}

/* dst's sketches, edges and names = src's (same layout). */
static int copy_numeric(ls_ftrl *dst, const ls_ftrl *src)
{
	for (size_t i = 0; i < src->n_bk; i++) {
		if (src->bk[i].sk != NULL &&
		    ls_quantile_copy(dst->bk[i].sk, src->bk[i].sk) !=
			    LS_QUANTILE_OK)
			return LS_FTRL_ERR_NOMEM;
		copy_frozen(&dst->bk[i], &src->bk[i]);
	}
	return LS_FTRL_OK;
}

/*
 * The common constructor: validates, copies names (given as pointers and
 * lengths so that decode can pass names straight out of its buffer).
 */
static ls_ftrl *model_alloc(const ls_ftrl_params *p, const char *const *names,
			    const size_t *lens, const ls_ftrl_numeric *maps,
			    size_t n_dense, char *err, size_t errlen, int *rc)
{
	*rc = LS_FTRL_ERR_INVALID;
	if (!ls_ftrl_params_check(p, err, errlen))
		return NULL;
	if (n_dense > LS_FTRL_MAX_DENSE) {
		ls_set_err(err, errlen, "%zu dense features, at most %d", n_dense,
			LS_FTRL_MAX_DENSE);
		return NULL;
	}
	if (n_dense > 0 && names == NULL) {
		ls_set_err(err, errlen, "dense names missing");
		return NULL;
	}
	for (size_t j = 0; j < n_dense; j++) {
		size_t len = lens != NULL ? lens[j]
			   : names[j] != NULL ? strlen(names[j]) : 0;
		if (names[j] == NULL || len == 0 || len > LS_FTRL_NAME_MAX ||
		    memchr(names[j], '\0', len) != NULL) {
			ls_set_err(err, errlen,
				"dense feature %zu: name must be 1..%d bytes",
				j, LS_FTRL_NAME_MAX);
			return NULL;
		}
		char why[160];
		if (maps != NULL &&
		    !ls_ftrl_numeric_check(&maps[j], why, sizeof why)) {
			ls_set_err(err, errlen, "dense feature '%.*s': %s",
				(int)len, names[j], why);
			return NULL;
		}
	}
	*rc = LS_FTRL_ERR_NOMEM;
	ls_ftrl *m = calloc(1, sizeof *m);
	if (m == NULL) {
		ls_set_err(err, errlen, "out of memory");
		return NULL;
	}
	m->p = *p;
	m->n_dense = n_dense;
	m->dims = 1 + n_dense + (size_t)p->n_buckets;
	size_t nd = n_dense > 0 ? n_dense : 1; /* calloc(0) may return NULL */
	m->names = calloc(nd, sizeof *m->names);
	m->by_name = calloc(nd, sizeof *m->by_name);
	m->s1 = calloc(nd, sizeof *m->s1);
	m->s2 = calloc(nd, sizeof *m->s2);
	m->mean = calloc(3 * nd, sizeof *m->mean);
	m->z = calloc(m->dims, sizeof *m->z);
	m->n = calloc(m->dims, sizeof *m->n);
	if (m->names == NULL || m->by_name == NULL || m->s1 == NULL ||
	    m->s2 == NULL || m->mean == NULL || m->z == NULL || m->n == NULL)
		goto nomem;
	m->sd = m->mean + nd;
	m->wd = m->sd + nd;
	for (size_t j = 0; j < n_dense; j++) {
		size_t len = lens != NULL ? lens[j] : strlen(names[j]);
		m->names[j] = malloc(len + 1);
		if (m->names[j] == NULL)
			goto nomem;
		memcpy(m->names[j], names[j], len);
		m->names[j][len] = '\0';
		m->by_name[j] = (uint32_t)j;
	}
	sort_by_name(m->by_name, n_dense, m->names);
	for (size_t j = 1; j < n_dense; j++) {
		if (strcmp(m->names[m->by_name[j - 1]],
			   m->names[m->by_name[j]]) == 0) {
			ls_set_err(err, errlen, "dense feature '%s' listed twice",
				m->names[m->by_name[j]]);
			*rc = LS_FTRL_ERR_INVALID;
			ls_ftrl_free(m);
			return NULL;
		}
	}
	if (maps_init(m, maps) != LS_FTRL_OK)
		goto nomem;
	m->layout = compute_layout(m);
	refresh(m);
	*rc = LS_FTRL_OK;
	return m;
nomem:
	ls_set_err(err, errlen, "out of memory");
	ls_ftrl_free(m);
	return NULL;
}

ls_ftrl *ls_ftrl_new(const ls_ftrl_params *p, const char *const *dense_names,
		     size_t n_dense, char *err, size_t errlen)
{
	int rc;
	return model_alloc(p, dense_names, NULL, NULL, n_dense, err, errlen,
			   &rc);
}

ls_ftrl *ls_ftrl_new_mapped(const ls_ftrl_params *p,
			    const char *const *dense_names,
			    const ls_ftrl_numeric *maps, size_t n_dense,
			    char *err, size_t errlen)
{
	int rc;
	return model_alloc(p, dense_names, NULL, maps, n_dense, err, errlen,
			   &rc);
}

ls_ftrl *ls_ftrl_clone(const ls_ftrl *m)
{
	if (m == NULL)
		return NULL;
	int rc;
	ls_ftrl *c = model_alloc(&m->p, (const char *const *)m->names, NULL,
				 m->maps, m->n_dense, NULL, 0, &rc);
	if (c == NULL)
		return NULL;
	if (copy_numeric(c, m) != LS_FTRL_OK) {
		ls_ftrl_free(c);
		return NULL;
	}
	c->is_delta = m->is_delta;
	c->version = m->version;
	c->pos = m->pos;
	c->neg = m->neg;
	if (m->n_dense > 0) {
		memcpy(c->s1, m->s1, m->n_dense * sizeof *c->s1);
		memcpy(c->s2, m->s2, m->n_dense * sizeof *c->s2);
	}
	memcpy(c->z, m->z, m->dims * sizeof *c->z);
	memcpy(c->n, m->n, m->dims * sizeof *c->n);
	refresh(c);
	return c;
}

int ls_ftrl_copy(ls_ftrl *dst, const ls_ftrl *src)
{
	if (dst == NULL || src == NULL)
		return LS_FTRL_ERR_INVALID;
	if (dst->layout != src->layout || dst->dims != src->dims ||
	    dst->n_dense != src->n_dense || dst->n_bk != src->n_bk)
		return LS_FTRL_ERR_LAYOUT;
	if (copy_numeric(dst, src) != LS_FTRL_OK)
		return LS_FTRL_ERR_NOMEM;
	dst->is_delta = src->is_delta;
	dst->version = src->version;
	dst->pos = src->pos;
	dst->neg = src->neg;
	if (src->n_dense > 0) {
		memcpy(dst->s1, src->s1, src->n_dense * sizeof *dst->s1);
		memcpy(dst->s2, src->s2, src->n_dense * sizeof *dst->s2);
	}
	memcpy(dst->z, src->z, src->dims * sizeof *dst->z);
	memcpy(dst->n, src->n, src->dims * sizeof *dst->n);
	if (src->n_dense > 0)
		memcpy(dst->mean, src->mean, 3 * src->n_dense * sizeof *dst->mean);
	return LS_FTRL_OK;
}

/* ---- accessors ---- */

const ls_ftrl_params *ls_ftrl_get_params(const ls_ftrl *m) { return &m->p; }
uint64_t ls_ftrl_layout(const ls_ftrl *m) { return m->layout; }
size_t ls_ftrl_n_dense(const ls_ftrl *m) { return m->n_dense; }
size_t ls_ftrl_dims(const ls_ftrl *m) { return m->dims; }
uint64_t ls_ftrl_version(const ls_ftrl *m) { return m->version; }
uint64_t ls_ftrl_positives(const ls_ftrl *m) { return m->pos; }
uint64_t ls_ftrl_negatives(const ls_ftrl *m) { return m->neg; }
bool ls_ftrl_is_delta(const ls_ftrl *m) { return m->is_delta; }

const char *ls_ftrl_dense_name(const ls_ftrl *m, size_t j)
{
	return j < m->n_dense ? m->names[j] : NULL;
}

static double weight(const ls_ftrl_params *p, double z, double n)
{
	if (fabs(z) <= p->l1)
		return 0.0; /* the L1 prox: exactly zero, not just small */
	double s = z > 0 ? 1.0 : -1.0;
	return -(z - s * p->l1) / ((p->beta + sqrt(n)) / p->alpha + p->l2);
}

bool ls_ftrl_coord(const ls_ftrl *m, size_t i, double *z, double *n,
		   double *w)
{
	if (i >= m->dims)
		return false;
	if (z != NULL)
		*z = m->z[i];
	if (n != NULL)
		*n = m->n[i];
	if (w != NULL)
		*w = weight(&m->p, m->z[i], m->n[i]);
	return true;
}

static double clampd(double v, double lim)
{
	return v > lim ? lim : v < -lim ? -lim : v;
}

static void dense_moments(const ls_ftrl *m, size_t j, double *mean,
			  double *sd)
{
	uint64_t N = m->pos + m->neg;
	if (N == 0) {
		*mean = 0.0;
		*sd = 1.0;
		return;
	}
	double mu = m->s1[j] / (double)N;
	double var = m->s2[j] / (double)N - mu * mu;
	if (!(var > 0))
		var = 0;
	*mean = mu;
	*sd = sqrt(var + VAR_FLOOR);
}

bool ls_ftrl_dense_stats(const ls_ftrl *m, size_t j, double *mean,
			 double *sd)
{
	if (j >= m->n_dense)
		return false;
	double mu, s;
	dense_moments(m, j, &mu, &s);
	if (mean != NULL)
		*mean = mu;
	if (sd != NULL)
		*sd = s;
	return true;
}

/* The standardised, clipped input of dense feature j for transformed t. */
static double dense_x(const ls_ftrl *m, size_t j, double t)
{
	if (m->pos + m->neg == 0)
		return clampd(t, m->p.clip);
	return clampd((t - m->mean[j]) / m->sd[j], m->p.clip);
}

static void refresh(ls_ftrl *m)
{
	for (size_t j = 0; j < m->n_dense; j++) {
		dense_moments(m, j, &m->mean[j], &m->sd[j]);
		m->wd[j] = weight(&m->p, m->z[1 + j], m->n[1 + j]);
	}
}

size_t ls_ftrl_ram_bytes(const ls_ftrl *m)
{
	size_t b = sizeof *m + 2 * m->dims * sizeof(double);
	for (size_t j = 0; j < m->n_dense; j++)
		b += sizeof(char *) + sizeof(uint32_t) + 5 * sizeof(double) +
		     strlen(m->names[j]) + 1;
	if (m->maps != NULL)
		b += m->n_dense * sizeof *m->maps;
	for (size_t i = 0; i < m->n_bk; i++) {
		b += sizeof m->bk[i] + m->bk[i].names_cap;
		if (m->bk[i].sk != NULL)
			b += SKETCH_BYTES;
	}
	return b;
}

/* ---- examples ---- */

void ls_ftrl_example_init(ls_ftrl_example *x)
{
	memset(x, 0, sizeof *x);
}

void ls_ftrl_example_reset(ls_ftrl_example *x)
{
	x->layout = 0;
	x->n_dense = 0;
	x->n_entries = 0;
	x->names_len = 0;
}

void ls_ftrl_example_free(ls_ftrl_example *x)
{
	free(x->dense);
	free(x->raw);
	free(x->entries);
	free(x->names);
	ls_ftrl_example_init(x);
}

/* Empty x and lay it out for m: dense values 0, no entries. */
static int example_prepare(ls_ftrl_example *x, const ls_ftrl *m)
{
	ls_ftrl_example_reset(x);
	if (m->n_dense > x->cap_dense) {
		double *d = realloc(x->dense, m->n_dense * sizeof *d);
		if (d == NULL)
			return LS_FTRL_ERR_NOMEM;
		x->dense = d;
		d = realloc(x->raw, m->n_dense * sizeof *d);
		if (d == NULL)
			return LS_FTRL_ERR_NOMEM;
		x->raw = d;
		x->cap_dense = m->n_dense;
	}
	if (m->n_dense > 0)
		memset(x->dense, 0, m->n_dense * sizeof *x->dense);
	if (m->maps != NULL) /* only a mapped model reads raw */
		memset(x->raw, 0, m->n_dense * sizeof *x->raw);
	x->n_dense = m->n_dense;
	x->layout = m->layout;
	return LS_FTRL_OK;
}

static int arena_reserve(ls_ftrl_example *x, size_t more)
{
	if (more > SIZE_MAX / 2 - x->names_len)
		return LS_FTRL_ERR_NOMEM;
	size_t need = x->names_len + more;
	if (need <= x->names_cap)
		return LS_FTRL_OK;
	size_t cap = x->names_cap > 0 ? x->names_cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(x->names, cap);
	if (p == NULL)
		return LS_FTRL_ERR_NOMEM;
	x->names = p;
	x->names_cap = cap;
	return LS_FTRL_OK;
}

static void arena_put(ls_ftrl_example *x, const char *s, size_t len)
{
	memcpy(x->names + x->names_len, s, len);
	x->names_len += len;
}

/*
 * Insert (index, value) named by the NUL-terminated string at arena offset
 * name, keeping entries sorted and unique. On a collision the values add
 * and the name becomes "old|new".
 */
static int entry_insert(ls_ftrl_example *x, uint32_t index, uint32_t name,
			double value)
{
	size_t lo = 0, hi = x->n_entries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->entries[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < x->n_entries && x->entries[lo].index == index) {
		ls_ftrl_entry *e = &x->entries[lo];
		size_t la = strlen(x->names + e->name);
		size_t lb = strlen(x->names + name);
		if (arena_reserve(x, la + lb + 2) != LS_FTRL_OK)
			return LS_FTRL_ERR_NOMEM;
		if (x->names_len > UINT32_MAX)
			return LS_FTRL_ERR_NOMEM;
		uint32_t off = (uint32_t)x->names_len;
		/* Copy via offsets: the sources live in the same arena. */
		memmove(x->names + x->names_len, x->names + e->name, la);
		x->names_len += la;
		x->names[x->names_len++] = '|';
		memmove(x->names + x->names_len, x->names + name, lb);
		x->names_len += lb;
		x->names[x->names_len++] = '\0';
		e->name = off;
		e->value += value;
		return LS_FTRL_OK;
	}
	if (x->n_entries == x->cap_entries) {
		size_t cap = x->cap_entries > 0 ? x->cap_entries * 2 : 32;
		ls_ftrl_entry *p = realloc(x->entries, cap * sizeof *p);
		if (p == NULL)
			return LS_FTRL_ERR_NOMEM;
		x->entries = p;
		x->cap_entries = cap;
	}
	memmove(&x->entries[lo + 1], &x->entries[lo],
		(x->n_entries - lo) * sizeof *x->entries);
	x->entries[lo].index = index;
	x->entries[lo].name = name;
	x->entries[lo].value = value;
	x->n_entries++;
	return LS_FTRL_OK;
}

/*
 * Add a hashed feature whose string is the concatenation of parts[0..np)
 * (NULL parts skipped).
 */
static int add_hashed(ls_ftrl_example *x, const ls_ftrl *m,
		      const char *const *parts, size_t np, double value)
{
	size_t len = 0;
	for (size_t i = 0; i < np; i++)
		if (parts[i] != NULL)
			len += strlen(parts[i]);
	if (arena_reserve(x, len + 1) != LS_FTRL_OK ||
	    x->names_len > UINT32_MAX)
		return LS_FTRL_ERR_NOMEM;
	uint32_t off = (uint32_t)x->names_len;
	for (size_t i = 0; i < np; i++)
		if (parts[i] != NULL)
			arena_put(x, parts[i], strlen(parts[i]));
	uint64_t h = XXH3_64bits(x->names + off, len);
	x->names[x->names_len++] = '\0';
	uint32_t idx = (uint32_t)(1 + m->n_dense +
				  (h & (uint64_t)(m->p.n_buckets - 1)));
	return entry_insert(x, idx, off, value);
}

int ls_ftrl_example_add(ls_ftrl_example *x, const ls_ftrl *m,
			const char *name, double value)
{
	if (x == NULL || m == NULL || name == NULL || name[0] == '\0' ||
	    !isfinite(value))
		return LS_FTRL_ERR_INVALID;
	if (x->layout != m->layout || x->n_dense != m->n_dense) {
		if (x->n_entries > 0)
			return LS_FTRL_ERR_LAYOUT;
		int rc = example_prepare(x, m);
		if (rc != LS_FTRL_OK)
			return rc;
	}
	const char *parts[1] = { name };
	return add_hashed(x, m, parts, 1, value);
}

const char *ls_ftrl_example_entry_name(const ls_ftrl_example *x, size_t e)
{
	return e < x->n_entries ? x->names + x->entries[e].name : NULL;
}

static double signed_log1p(double v)
{
	if (!isfinite(v))
		return 0.0;
	/* log1p(+-0) is +-0 (C17 F.10.3.9): most window values are 0, and
	 * skipping the call for them gives the same bits */
	if (v == 0.0)
		return v;
	return v < 0 ? -log1p(-v) : log1p(v);
}

static int find_dense(const ls_ftrl *m, const char *name)
{
	size_t lo = 0, hi = m->n_dense;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->names[m->by_name[mid]], name);
		if (c == 0)
			return (int)m->by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static bool nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static const char *cat_lookup(const ls_ftrl_input *in, const char *key)
{
	for (size_t i = 0; i < in->n_cat; i++)
		if (nonempty(in->cat_keys[i]) && nonempty(in->cat_values[i]) &&
		    strcmp(in->cat_keys[i], key) == 0)
			return in->cat_values[i];
	return NULL;
}

/* Dense feature j of a mapped model takes raw value v. */
static void set_mapped(ls_ftrl_example *x, const ls_ftrl_numeric *nm,
		       size_t j, double v)
{
	double r = isfinite(v) ? v : 0.0;
	x->raw[j] = r;
	/* no_linear: t = 0 in every example, so S1 = 0, the mean is 0 and
	   the standardised x is 0 too: the coordinate never moves */
	x->dense[j] = nm->no_linear ? 0.0
		    : nm->transform == LS_FTRL_T_LINEAR ? r
		    : signed_log1p(r);
}

/* The one-hot entry of b's bucket of the example's raw value: named by
   its range, at the coordinate of (feature, bucket index). */
static int add_bucket(ls_ftrl_example *x, const bucketed *b)
{
	size_t k = bucket_of(b, x->raw[b->j]);
	size_t len = b->name_off[k + 1] - b->name_off[k]; /* with the NUL */
	if (arena_reserve(x, len) != LS_FTRL_OK || x->names_len > UINT32_MAX)
		return LS_FTRL_ERR_NOMEM;
	uint32_t off = (uint32_t)x->names_len;
	arena_put(x, b->names + b->name_off[k], len);
	return entry_insert(x, b->coord[k], off, 1.0);
}

int ls_ftrl_dense_index(const ls_ftrl *m, const char *name)
{
	if (m == NULL || name == NULL)
		return -1;
	return find_dense(m, name);
}

static int build(ls_ftrl_example *x, const ls_ftrl *m, const ls_ftrl_input *in,
		 const int32_t *num_dense)
{
	int rc = example_prepare(x, m);
	if (rc != LS_FTRL_OK)
		return rc;
	const char *bias[1] = { "bias" };
	if (arena_reserve(x, 5) != LS_FTRL_OK)
		return LS_FTRL_ERR_NOMEM;
	arena_put(x, bias[0], 5);
	rc = entry_insert(x, 0, 0, 1.0);
	if (rc != LS_FTRL_OK)
		return rc;
	for (size_t i = 0; i < in->n_num; i++) {
		const char *name = in->num_names[i];
		if (!nonempty(name))
			continue;
		double v = in->num_values[i];
		int j = num_dense != NULL && num_dense[i] != LS_FTRL_UNRESOLVED
				? (int)num_dense[i]
				: find_dense(m, name);
		if (j >= (int)m->n_dense || j < -1)
			return LS_FTRL_ERR_INVALID;
		if (j >= 0) {
			if (m->maps == NULL)
				x->dense[j] = signed_log1p(v);
			else
				set_mapped(x, &m->maps[j], (size_t)j, v);
			continue;
		}
		double t = signed_log1p(v);
		if (t == 0.0)
			continue; /* contributes nothing and would cost a slot */
		const char *parts[1] = { name };
		rc = add_hashed(x, m, parts, 1, clampd(t, m->p.clip));
		if (rc != LS_FTRL_OK)
			return rc;
	}
	for (size_t i = 0; i < m->n_bk; i++) {
		rc = add_bucket(x, &m->bk[i]);
		if (rc != LS_FTRL_OK)
			return rc;
	}
	for (size_t i = 0; i < in->n_cat; i++) {
		if (!nonempty(in->cat_keys[i]) || !nonempty(in->cat_values[i]))
			continue;
		const char *parts[3] = { in->cat_keys[i], "=",
					 in->cat_values[i] };
		rc = add_hashed(x, m, parts, 3, 1.0);
		if (rc != LS_FTRL_OK)
			return rc;
	}
	for (size_t i = 0; i < in->n_crosses; i++) {
		const ls_ftrl_cross *c = &in->crosses[i];
		if (!nonempty(c->a) || !nonempty(c->b))
			continue;
		const char *va = cat_lookup(in, c->a);
		const char *vb = cat_lookup(in, c->b);
		if (va == NULL || vb == NULL)
			continue;
		const char *parts[7] = { c->a, "=", va, "\xc3\x97", c->b, "=",
					 vb };
		rc = add_hashed(x, m, parts, 7, 1.0);
		if (rc != LS_FTRL_OK)
			return rc;
	}
	return LS_FTRL_OK;
}

int ls_ftrl_example_build_resolved(ls_ftrl_example *x, const ls_ftrl *m,
				   const ls_ftrl_input *in,
				   const int32_t *num_dense)
{
	if (x == NULL || m == NULL || in == NULL ||
	    (in->n_num > 0 && (in->num_names == NULL || in->num_values == NULL)) ||
	    (in->n_cat > 0 && (in->cat_keys == NULL || in->cat_values == NULL)) ||
	    (in->n_crosses > 0 && in->crosses == NULL))
		return LS_FTRL_ERR_INVALID;
	int rc = build(x, m, in, num_dense);
	if (rc != LS_FTRL_OK)
		ls_ftrl_example_reset(x);
	return rc;
}

int ls_ftrl_example_build(ls_ftrl_example *x, const ls_ftrl *m,
			  const ls_ftrl_input *in)
{
	return ls_ftrl_example_build_resolved(x, m, in, NULL);
}

/* ---- scoring and learning ---- */

static int check_use(const ls_ftrl *m, const ls_ftrl_example *x)
{
	if (m == NULL || x == NULL)
		return LS_FTRL_ERR_INVALID;
	if (m->is_delta)
		return LS_FTRL_ERR_DELTA;
	if (x->layout != m->layout || x->n_dense != m->n_dense)
		return LS_FTRL_ERR_LAYOUT;
	return LS_FTRL_OK;
}

static double sigmoid(double margin)
{
	return 1.0 / (1.0 + exp(-clampd(margin, MARGIN_MAX)));
}

static double margin_of(const ls_ftrl *m, const ls_ftrl_example *x)
{
	double s = 0.0;
	for (size_t j = 0; j < m->n_dense; j++) {
		/* A zero weight (L1 keeps many) adds +-0, which leaves s as
		 * it is (s is never -0: it starts at +0, and x + -x is +0),
		 * so skipping it changes no bit and saves the division. */
		if (m->wd[j] == 0.0)
			continue;
		double v = dense_x(m, j, x->dense[j]);
		if (v != 0.0)
			s += m->wd[j] * v;
	}
	for (size_t e = 0; e < x->n_entries; e++) {
		const ls_ftrl_entry *en = &x->entries[e];
		s += weight(&m->p, m->z[en->index], m->n[en->index]) *
		     en->value;
	}
	return s;
}

int ls_ftrl_predict(const ls_ftrl *m, const ls_ftrl_example *x, double *p)
{
	int rc = check_use(m, x);
	if (rc != LS_FTRL_OK)
		return rc;
	if (p == NULL)
		return LS_FTRL_ERR_INVALID;
	*p = sigmoid(margin_of(m, x));
	return LS_FTRL_OK;
}

/* One FTRL-Proximal step of coordinate i with input v and error p - y. */
static void update(ls_ftrl *m, size_t i, double v, double err)
{
	if (v == 0.0)
		return; /* g = 0 leaves z and n exactly as they are */
	double g = err * v;
	double n = m->n[i];
	double w = weight(&m->p, m->z[i], n);
	double sigma = (sqrt(n + g * g) - sqrt(n)) / m->p.alpha;
	m->z[i] += g - sigma * w;
	m->n[i] = n + g * g;
}

int ls_ftrl_learn(ls_ftrl *m, const ls_ftrl_example *x, int label,
		  double *p_before)
{
	int rc = check_use(m, x);
	if (rc != LS_FTRL_OK)
		return rc;
	if (label != 0 && label != 1)
		return LS_FTRL_ERR_INVALID;
	if ((label == 1 && m->pos == UINT64_MAX) ||
	    (label == 0 && m->neg == UINT64_MAX))
		return LS_FTRL_ERR_INVALID;
	/* First, as the only step that can fail (out of memory when a
	   sketch first sees a sign); only learning adds to sketches */
	for (size_t i = 0; i < m->n_bk; i++)
		if (m->bk[i].sk != NULL &&
		    ls_quantile_add(m->bk[i].sk, x->raw[m->bk[i].j]) !=
			    LS_QUANTILE_OK)
			return LS_FTRL_ERR_NOMEM;
	double p = sigmoid(margin_of(m, x));
	double err = p - (double)label;
	/*
	 * Each coordinate occurs once (dense indices are distinct from the
	 * sorted, unique entries), so the weight read in update() is still
	 * the one the prediction used. The standardisation is read here,
	 * before the statistics below change.
	 */
	for (size_t j = 0; j < m->n_dense; j++)
		update(m, 1 + j, dense_x(m, j, x->dense[j]), err);
	for (size_t e = 0; e < x->n_entries; e++)
		update(m, x->entries[e].index, x->entries[e].value, err);
	for (size_t j = 0; j < m->n_dense; j++) {
		double t = x->dense[j];
		m->s1[j] += t;
		m->s2[j] += t * t;
	}
	if (label == 1)
		m->pos++;
	else
		m->neg++;
	refresh(m);
	if (p_before != NULL)
		*p_before = p;
	return LS_FTRL_OK;
}

/* ---- explanations ---- */

/* Whether factor a goes before b in a list ordered by key (desc when
   sign > 0, asc when sign < 0), ties by name. */
static bool before(const ls_ftrl_factor *a, const ls_ftrl_factor *b, int sign)
{
	if (a->contribution != b->contribution)
		return sign > 0 ? a->contribution > b->contribution
				: a->contribution < b->contribution;
	return strcmp(a->name, b->name) < 0;
}

static void keep_top(ls_ftrl_factor *top, size_t *n, const ls_ftrl_factor *f,
		     int sign)
{
	size_t pos = *n;
	while (pos > 0 && before(f, &top[pos - 1], sign))
		pos--;
	if (pos >= LS_FTRL_TOP)
		return;
	size_t last = *n < LS_FTRL_TOP ? *n : LS_FTRL_TOP - 1;
	for (size_t k = last; k > pos; k--)
		top[k] = top[k - 1];
	top[pos] = *f;
	if (*n < LS_FTRL_TOP)
		(*n)++;
}

static void consider(ls_ftrl_factor *pos, size_t *np, ls_ftrl_factor *neg,
		     size_t *nn, const char *name, double v, double w)
{
	ls_ftrl_factor f = { name, v, w * v };
	if (f.contribution > 0)
		keep_top(pos, np, &f, 1);
	else if (f.contribution < 0)
		keep_top(neg, nn, &f, -1);
}

int ls_ftrl_explain(const ls_ftrl *m, const ls_ftrl_example *x,
		    ls_ftrl_factor top_pos[LS_FTRL_TOP], size_t *n_pos,
		    ls_ftrl_factor top_neg[LS_FTRL_TOP], size_t *n_neg)
{
	int rc = check_use(m, x);
	if (rc != LS_FTRL_OK)
		return rc;
	if (top_pos == NULL || top_neg == NULL || n_pos == NULL ||
	    n_neg == NULL)
		return LS_FTRL_ERR_INVALID;
	*n_pos = 0;
	*n_neg = 0;
	for (size_t j = 0; j < m->n_dense; j++) {
		if (m->wd[j] == 0.0)
			continue; /* contributes +-0: neither list */
		consider(top_pos, n_pos, top_neg, n_neg, m->names[j],
			 dense_x(m, j, x->dense[j]), m->wd[j]);
	}
	for (size_t e = 0; e < x->n_entries; e++) {
		const ls_ftrl_entry *en = &x->entries[e];
		if (en->index == 0)
			continue;
		consider(top_pos, n_pos, top_neg, n_neg, x->names + en->name,
			 en->value,
			 weight(&m->p, m->z[en->index], m->n[en->index]));
	}
	return LS_FTRL_OK;
}

/* ---- checkpoint ---- */

/* The put_* helpers assume space was reserved by the caller. */
static void put_u8(ls_buf *b, uint8_t v) { b->data[b->len++] = v; }

static void put_varint(ls_buf *b, uint64_t v)
{
	b->len = (size_t)(ls_varint_put(b->data + b->len, v) - b->data);
}

static void put_u64(ls_buf *b, uint64_t v)
{
	for (int k = 0; k < 8; k++)
		b->data[b->len++] = (uint8_t)(v >> (8 * k));
}

static void put_f64(ls_buf *b, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof bits);
	put_u64(b, bits);
}

/* The bucketed feature of dense index j, or NULL. */
static const bucketed *bucketed_of(const ls_ftrl *m, size_t j)
{
	for (size_t i = 0; i < m->n_bk; i++)
		if (m->bk[i].j == j)
			return &m->bk[i];
	return NULL;
}

/* Format 2's map of dense feature j (see the header). */
static int encode_map(const ls_ftrl *m, size_t j, ls_buf *out)
{
	const ls_ftrl_numeric *nm = &m->maps[j];
	if (ls_buf_reserve(out, 3 + 10 + LS_FTRL_MAX_EDGES * 8) != 0)
		return LS_FTRL_ERR_NOMEM;
	put_u8(out, (uint8_t)nm->transform);
	put_u8(out, nm->no_linear ? 1 : 0);
	put_u8(out, (uint8_t)nm->buckets);
	if (nm->buckets == LS_FTRL_B_BINS) {
		put_varint(out, nm->n_edges);
		for (size_t k = 0; k < nm->n_edges; k++)
			put_f64(out, nm->edges[k]);
		return LS_FTRL_OK;
	}
	if (nm->buckets != LS_FTRL_B_QUANTILES)
		return LS_FTRL_OK;
	const bucketed *b = bucketed_of(m, j);
	put_varint(out, nm->quantiles);
	if (ls_quantile_encode(b->sk, out) != LS_QUANTILE_OK ||
	    ls_buf_reserve(out, 10 + LS_FTRL_MAX_EDGES * 8) != 0)
		return LS_FTRL_ERR_NOMEM;
	put_varint(out, b->n_edges);
	for (size_t k = 0; k < b->n_edges; k++)
		put_f64(out, b->edges[k]);
	return LS_FTRL_OK;
}

int ls_ftrl_encode(const ls_ftrl *m, ls_buf *out)
{
	if (m == NULL || out == NULL)
		return LS_FTRL_ERR_INVALID;
	out->len = 0;
	/* Worst case: fixed header, names, stats, every coordinate. */
	size_t need = 6 + 5 * 8 + 4 * 10 + 10 + 8;
	for (size_t j = 0; j < m->n_dense; j++)
		need += 10 + strlen(m->names[j]) + 16;
	size_t nz = 0;
	for (size_t i = 0; i < m->dims; i++)
		if (m->z[i] != 0.0 || m->n[i] != 0.0)
			nz++;
	need += 10 + nz * (10 + 16);
	if (ls_buf_reserve(out, need) != 0)
		return LS_FTRL_ERR_NOMEM;
	for (size_t k = 0; k < sizeof MAGIC; k++)
		put_u8(out, (uint8_t)MAGIC[k]);
	put_u8(out, m->maps != NULL ? FORMAT_MAPPED : LS_FTRL_FORMAT_VERSION);
	put_u8(out, m->is_delta ? 1 : 0);
	put_f64(out, m->p.alpha);
	put_f64(out, m->p.beta);
	put_f64(out, m->p.l1);
	put_f64(out, m->p.l2);
	put_f64(out, m->p.clip);
	put_varint(out, m->p.n_buckets);
	put_varint(out, m->version);
	put_varint(out, m->pos);
	put_varint(out, m->neg);
	put_varint(out, m->n_dense);
	for (size_t j = 0; j < m->n_dense; j++) {
		size_t len = strlen(m->names[j]);
		/* after a sketch the reservation above no longer holds */
		if (m->maps != NULL && ls_buf_reserve(out, 10 + len + 16) != 0)
			return LS_FTRL_ERR_NOMEM;
		put_varint(out, len);
		memcpy(out->data + out->len, m->names[j], len);
		out->len += len;
		put_f64(out, m->s1[j]);
		put_f64(out, m->s2[j]);
		if (m->maps != NULL) {
			int rc = encode_map(m, j, out);
			if (rc != LS_FTRL_OK)
				return rc;
		}
	}
	/* a sketch may have grown the buffer past what was reserved */
	if (ls_buf_reserve(out, 10 + nz * (10 + 16) + 8) != 0)
		return LS_FTRL_ERR_NOMEM;
	put_varint(out, nz);
	size_t prev = 0;
	bool first = true;
	for (size_t i = 0; i < m->dims; i++) {
		if (m->z[i] == 0.0 && m->n[i] == 0.0)
			continue;
		put_varint(out, first ? i : i - prev - 1);
		put_f64(out, m->z[i]);
		put_f64(out, m->n[i]);
		prev = i;
		first = false;
	}
	put_u64(out, XXH3_64bits(out->data, out->len));
	return LS_FTRL_OK;
}

/*
 * The decoder reads through ls_reader (ls_varint.h), the bounds-checked
 * reader every blob decoder shares: the first failure writes "checkpoint
 * corrupt at byte N: <reason>" and fails every later read.
 */
typedef ls_reader reader;

static void fail(reader *r, const char *what)
{
	ls_reader_fail_at(r, r->pos, what);
}

static double get_f64(reader *r)
{
	uint64_t bits = ls_reader_le(r, 8);
	double d;
	memcpy(&d, &bits, sizeof d);
	if (r->ok && !isfinite(d)) {
		fail(r, "non-finite number");
		return 0.0;
	}
	return d;
}

/* One dense feature's map as format 2 stores it. */
typedef struct decoded_map {
	ls_ftrl_numeric nm;
	ls_quantile *sk;                 /* QUANTILES */
	size_t n_frozen;
	double frozen[LS_FTRL_MAX_EDGES]; /* QUANTILES: the frozen edges */
} decoded_map;

/* Read n strictly ascending finite edges (the reader fails otherwise). */
static void get_edges(reader *r, double *edges, size_t n)
{
	for (size_t k = 0; k < n && r->ok; k++) {
		edges[k] = get_f64(r);
		if (r->ok && k > 0 && !(edges[k] > edges[k - 1]))
			fail(r, "edges not ascending");
	}
}

/* Format 2's map of one dense feature into dm; LS_FTRL_ERR_NOMEM, or the
   reader fails on anything invalid. */
static int decode_map(reader *r, decoded_map *dm)
{
	ls_ftrl_numeric *nm = &dm->nm;
	nm->transform = (ls_ftrl_transform)ls_reader_u8(r);
	uint8_t nl = ls_reader_u8(r);
	nm->no_linear = nl != 0;
	nm->buckets = (ls_ftrl_bucketing)ls_reader_u8(r);
	if (r->ok && (nl > 1 || nm->transform > LS_FTRL_T_LINEAR ||
		      nm->buckets > LS_FTRL_B_QUANTILES)) {
		fail(r, "bad numeric map");
		return LS_FTRL_OK;
	}
	if (nm->buckets == LS_FTRL_B_BINS) {
		uint64_t n = ls_reader_varint(r);
		if (r->ok && (n < 1 || n > LS_FTRL_MAX_EDGES))
			fail(r, "bad number of bins");
		if (!r->ok)
			return LS_FTRL_OK;
		nm->n_edges = (size_t)n;
		get_edges(r, nm->edges, nm->n_edges);
	} else if (nm->buckets == LS_FTRL_B_QUANTILES) {
		uint64_t q = ls_reader_varint(r);
		if (r->ok && (q < 2 || q > LS_FTRL_MAX_EDGES + 1))
			fail(r, "bad number of quantiles");
		if (!r->ok)
			return LS_FTRL_OK;
		nm->quantiles = (uint32_t)q;
		dm->sk = ls_quantile_new();
		if (dm->sk == NULL)
			return LS_FTRL_ERR_NOMEM;
		int q_rc = ls_quantile_decode(dm->sk, r);
		if (q_rc == LS_QUANTILE_ERR_NOMEM)
			return LS_FTRL_ERR_NOMEM;
		if (q_rc != LS_QUANTILE_OK) {
			if (r->ok)
				fail(r, "bad sketch");
			return LS_FTRL_OK;
		}
		uint64_t n = ls_reader_varint(r);
		if (r->ok && n >= q)
			fail(r, "more frozen edges than quantiles");
		if (!r->ok)
			return LS_FTRL_OK;
		dm->n_frozen = (size_t)n;
		get_edges(r, dm->frozen, dm->n_frozen);
	}
	return LS_FTRL_OK;
}

/* m (just allocated from dm's maps) takes dm's sketches and frozen
   edges: a decoded model has the edges it was encoded with. */
static void adopt_maps(ls_ftrl *m, decoded_map *dm)
{
	for (size_t i = 0; i < m->n_bk; i++) {
		bucketed *b = &m->bk[i];
		decoded_map *d = &dm[b->j];
		if (b->sk == NULL)
			continue;
		ls_quantile_free(b->sk);
		b->sk = d->sk;
		d->sk = NULL;
		b->n_edges = d->n_frozen;
		memcpy(b->edges, d->frozen, d->n_frozen * sizeof *b->edges);
		bucket_names(b, m->names[b->j]);
	}
}

static int decode_body(reader *r, ls_ftrl **out)
{
	for (size_t k = 0; k < sizeof MAGIC; k++)
		if (ls_reader_u8(r) != (uint8_t)MAGIC[k]) {
			fail(r, "not an FTRL checkpoint");
			return LS_FTRL_ERR_CORRUPT;
		}
	uint8_t format = ls_reader_u8(r);
	if (format != LS_FTRL_FORMAT_VERSION && format != FORMAT_MAPPED) {
		ls_reader_fail_at(r, r->pos - 1, "unknown format version");
		return LS_FTRL_ERR_CORRUPT;
	}
	uint8_t flags = ls_reader_u8(r);
	if (flags > 1) {
		ls_reader_fail_at(r, r->pos - 1, "unknown flags");
		return LS_FTRL_ERR_CORRUPT;
	}
	ls_ftrl_params p;
	p.alpha = get_f64(r);
	p.beta = get_f64(r);
	p.l1 = get_f64(r);
	p.l2 = get_f64(r);
	p.clip = get_f64(r);
	uint64_t nb = ls_reader_varint(r);
	uint64_t version = ls_reader_varint(r);
	uint64_t pos = ls_reader_varint(r);
	uint64_t neg = ls_reader_varint(r);
	uint64_t n_dense = ls_reader_varint(r);
	if (!r->ok)
		return LS_FTRL_ERR_CORRUPT;
	p.n_buckets = nb <= LS_FTRL_MAX_BUCKETS ? (uint32_t)nb : 0;
	if (!ls_ftrl_params_check(&p, NULL, 0)) {
		fail(r, "invalid parameters");
		return LS_FTRL_ERR_CORRUPT;
	}
	if (pos > UINT64_MAX - neg) {
		fail(r, "label counts overflow");
		return LS_FTRL_ERR_CORRUPT;
	}
	if (n_dense > LS_FTRL_MAX_DENSE) {
		fail(r, "too many dense features");
		return LS_FTRL_ERR_CORRUPT;
	}
	size_t nd = (size_t)n_dense;
	const char **names = calloc(nd > 0 ? nd : 1, sizeof *names);
	size_t *lens = calloc(nd > 0 ? nd : 1, sizeof *lens);
	double *st = calloc(nd > 0 ? 2 * nd : 1, sizeof *st);
	decoded_map *dm = NULL;
	if (format == FORMAT_MAPPED)
		dm = calloc(nd > 0 ? nd : 1, sizeof *dm);
	if (names == NULL || lens == NULL || st == NULL ||
	    (format == FORMAT_MAPPED && dm == NULL)) {
		free(names);
		free(lens);
		free(st);
		free(dm);
		return LS_FTRL_ERR_NOMEM;
	}
	ls_ftrl_numeric *maps = NULL;
	bool nomem = false;
	for (size_t j = 0; j < nd && r->ok; j++) {
		uint64_t len = ls_reader_varint(r);
		if (!r->ok)
			break;
		if (len == 0 || len > LS_FTRL_NAME_MAX || len > r->len - r->pos) {
			fail(r, "bad dense name length");
			break;
		}
		names[j] = (const char *)r->p + r->pos;
		lens[j] = (size_t)len;
		r->pos += (size_t)len;
		st[2 * j] = get_f64(r);
		st[2 * j + 1] = get_f64(r);
		if (r->ok && flags == 0 && st[2 * j + 1] < 0)
			fail(r, "negative sum of squares");
		if (r->ok && dm != NULL &&
		    decode_map(r, &dm[j]) == LS_FTRL_ERR_NOMEM) {
			nomem = true;
			break;
		}
	}
	ls_ftrl *m = NULL;
	int rc = nomem ? LS_FTRL_ERR_NOMEM : LS_FTRL_ERR_CORRUPT;
	if (r->ok && !nomem && dm != NULL) {
		/* the maps, contiguous for model_alloc; format 2 has some
		   map that is not zero (or it would be format 1) */
		maps = calloc(nd > 0 ? nd : 1, sizeof *maps);
		bool any = false;
		for (size_t j = 0; maps != NULL && j < nd; j++) {
			maps[j] = dm[j].nm;
			any = any || !map_is_zero(&maps[j]);
		}
		if (maps == NULL)
			rc = LS_FTRL_ERR_NOMEM;
		else if (!any)
			fail(r, "format 2 without a numeric map");
	}
	if (r->ok && !nomem && (dm == NULL || maps != NULL)) {
		char why[128];
		m = model_alloc(&p, names, lens, maps, nd, why, sizeof why,
				&rc);
		if (m == NULL && rc != LS_FTRL_ERR_NOMEM) {
			fail(r, "invalid dense names");
			rc = LS_FTRL_ERR_CORRUPT;
		}
	}
	free(names);
	free(lens);
	free(maps);
	if (m != NULL)
		adopt_maps(m, dm);
	for (size_t j = 0; dm != NULL && j < nd; j++)
		ls_quantile_free(dm[j].sk);
	free(dm);
	if (m == NULL) {
		free(st);
		return rc;
	}
	for (size_t j = 0; j < nd; j++) {
		m->s1[j] = st[2 * j];
		m->s2[j] = st[2 * j + 1];
	}
	free(st);
	m->is_delta = flags == 1;
	m->version = version;
	m->pos = pos;
	m->neg = neg;
	uint64_t nz = ls_reader_varint(r);
	if (r->ok && nz > m->dims)
		fail(r, "more coordinates than the model has");
	uint64_t idx = 0;
	for (uint64_t k = 0; k < nz && r->ok; k++) {
		uint64_t gap = ls_reader_varint(r);
		if (!r->ok)
			break;
		uint64_t base = k == 0 ? 0 : idx + 1;
		if (gap >= m->dims || base + gap >= m->dims) {
			fail(r, "coordinate out of range");
			break;
		}
		idx = base + gap;
		double z = get_f64(r);
		double n = get_f64(r);
		if (!r->ok)
			break;
		if (n < 0 || (z == 0.0 && n == 0.0)) {
			fail(r, "bad coordinate");
			break;
		}
		m->z[idx] = z;
		m->n[idx] = n;
	}
	if (r->ok && r->pos != r->len)
		fail(r, "trailing bytes");
	if (!r->ok) {
		ls_ftrl_free(m);
		return LS_FTRL_ERR_CORRUPT;
	}
	refresh(m);
	*out = m;
	return LS_FTRL_OK;
}

int ls_ftrl_decode(const uint8_t *data, size_t len, ls_ftrl **out, char *err,
		   size_t errlen)
{
	if (out == NULL)
		return LS_FTRL_ERR_INVALID;
	*out = NULL;
	if (data == NULL && len > 0)
		return LS_FTRL_ERR_INVALID;
	/* magic, version, flags, 5 doubles, 6 varints, checksum */
	if (len < 6 + 40 + 6 + 8) {
		ls_set_err(err, errlen, "checkpoint truncated (%zu bytes)", len);
		return LS_FTRL_ERR_CORRUPT;
	}
	size_t body = len - 8;
	if (XXH3_64bits(data, body) != ls_u64le_get(data + body)) {
		ls_set_err(err, errlen, "checkpoint checksum mismatch");
		return LS_FTRL_ERR_CORRUPT;
	}
	reader r;
	ls_reader_init(&r, data, body, "checkpoint", err, errlen);
	int rc = decode_body(&r, out);
	if (rc == LS_FTRL_ERR_NOMEM)
		ls_set_err(err, errlen, "out of memory");
	else if (rc != LS_FTRL_OK && r.ok)
		fail(&r, "invalid");
	return rc;
}

/* ---- scale-out merge ---- */

static int check_pair(const ls_ftrl *a, const ls_ftrl *b)
{
	if (a == NULL || b == NULL)
		return LS_FTRL_ERR_INVALID;
	if (a->layout != b->layout || a->dims != b->dims ||
	    a->n_dense != b->n_dense)
		return LS_FTRL_ERR_LAYOUT;
	return LS_FTRL_OK;
}

int ls_ftrl_delta(const ls_ftrl *local, const ls_ftrl *base, ls_ftrl **out)
{
	if (out == NULL)
		return LS_FTRL_ERR_INVALID;
	*out = NULL;
	int rc = check_pair(local, base);
	if (rc != LS_FTRL_OK)
		return rc;
	if (local->is_delta || base->is_delta || local->pos < base->pos ||
	    local->neg < base->neg)
		return LS_FTRL_ERR_DELTA;
	ls_ftrl *d = model_alloc(&local->p, (const char *const *)local->names,
				 NULL, local->maps, local->n_dense, NULL, 0,
				 &rc);
	if (d == NULL)
		return rc;
	rc = ls_ftrl_delta_into(d, local, base);
	if (rc != LS_FTRL_OK) {
		ls_ftrl_free(d);
		return rc;
	}
	*out = d;
	return LS_FTRL_OK;
}

int ls_ftrl_delta_into(ls_ftrl *d, const ls_ftrl *local, const ls_ftrl *base)
{
	if (d == NULL)
		return LS_FTRL_ERR_INVALID;
	int rc = check_pair(local, base);
	if (rc == LS_FTRL_OK)
		rc = check_pair(d, local);
	if (rc != LS_FTRL_OK)
		return rc;
	if (local->is_delta || base->is_delta || local->pos < base->pos ||
	    local->neg < base->neg)
		return LS_FTRL_ERR_DELTA;
	/* The sketches first: they are what can still fail. The delta's
	   edges are base's, the version it was learned against. */
	for (size_t i = 0; i < d->n_bk; i++) {
		bucketed *b = &d->bk[i];
		if (b->sk != NULL) {
			int q = ls_quantile_delta_into(b->sk, local->bk[i].sk,
						       base->bk[i].sk);
			if (q == LS_QUANTILE_ERR_NOMEM)
				return LS_FTRL_ERR_NOMEM;
			if (q != LS_QUANTILE_OK)
				return LS_FTRL_ERR_DELTA;
		}
		copy_frozen(b, &base->bk[i]);
	}
	d->is_delta = true;
	d->version = base->version;
	d->pos = local->pos - base->pos;
	d->neg = local->neg - base->neg;
	for (size_t j = 0; j < d->n_dense; j++) {
		d->s1[j] = local->s1[j] - base->s1[j];
		d->s2[j] = local->s2[j] - base->s2[j];
	}
	for (size_t i = 0; i < d->dims; i++) {
		d->z[i] = local->z[i] - base->z[i];
		d->n[i] = local->n[i] - base->n[i];
	}
	refresh(d);
	return LS_FTRL_OK;
}

int ls_ftrl_apply_delta(ls_ftrl *shared, const ls_ftrl *delta)
{
	int rc = check_pair(shared, delta);
	if (rc != LS_FTRL_OK)
		return rc;
	if (shared->is_delta || !delta->is_delta)
		return LS_FTRL_ERR_DELTA;
	if (shared->pos > UINT64_MAX - delta->pos ||
	    shared->neg > UINT64_MAX - delta->neg ||
	    shared->pos + delta->pos > UINT64_MAX - shared->neg - delta->neg)
		return LS_FTRL_ERR_INVALID;
	bool any = delta->pos != 0 || delta->neg != 0;
	for (size_t j = 0; j < delta->n_dense && !any; j++)
		any = delta->s1[j] != 0.0 || delta->s2[j] != 0.0;
	for (size_t i = 0; i < delta->dims && !any; i++)
		any = delta->z[i] != 0.0 || delta->n[i] != 0.0;
	for (size_t i = 0; i < delta->n_bk && !any; i++)
		any = delta->bk[i].sk != NULL &&
		      ls_quantile_count(delta->bk[i].sk) != 0;
	if (!any)
		return LS_FTRL_OK;
	/*
	 * The merged sketches are built aside and swapped in below, so that
	 * running out of memory leaves shared as it was.
	 */
	ls_quantile **merged = NULL;
	if (shared->n_bk > 0) {
		merged = calloc(shared->n_bk, sizeof *merged);
		if (merged == NULL)
			return LS_FTRL_ERR_NOMEM;
	}
	for (size_t i = 0; i < shared->n_bk; i++) {
		if (shared->bk[i].sk == NULL)
			continue;
		merged[i] = ls_quantile_clone(shared->bk[i].sk);
		if (merged[i] == NULL ||
		    ls_quantile_add_sketch(merged[i], delta->bk[i].sk) !=
			    LS_QUANTILE_OK) {
			for (size_t k = 0; k <= i; k++)
				ls_quantile_free(merged[k]);
			free(merged);
			return LS_FTRL_ERR_NOMEM;
		}
	}
	for (size_t i = 0; i < shared->n_bk; i++) {
		if (merged[i] == NULL)
			continue;
		ls_quantile_free(shared->bk[i].sk);
		shared->bk[i].sk = merged[i];
	}
	free(merged);
	shared->pos += delta->pos;
	shared->neg += delta->neg;
	for (size_t j = 0; j < shared->n_dense; j++) {
		shared->s1[j] += delta->s1[j];
		shared->s2[j] += delta->s2[j];
		if (shared->s2[j] < 0)
			shared->s2[j] = 0; /* rounding only: t^2 sums */
	}
	for (size_t i = 0; i < shared->dims; i++) {
		shared->z[i] += delta->z[i];
		double n = shared->n[i] + delta->n[i];
		shared->n[i] = n > 0 ? n : 0.0;
	}
	refresh(shared);
	shared->version++;
	refreeze(shared); /* a new version: new quantile edges */
	return LS_FTRL_OK;
}
