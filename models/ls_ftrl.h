/*
 * ls_ftrl.h - online logistic regression trained with FTRL-Proximal, with
 * readable explanations, a compact checkpoint and additive scale-out merge.
 *
 * What: a model (ls_ftrl) scores an example (ls_ftrl_example) with
 * p = sigmoid(w . x) and learns from a labelled example one at a time.
 * Pure computation: no I/O, no clock, no global state, no randomness; the
 * same examples in the same order give bit-identical state and checkpoint
 * bytes.
 *
 * Coordinates. A model of n_dense named numeric features and n_buckets
 * hash buckets has D = 1 + n_dense + n_buckets coordinates:
 *   0                      the bias (x = 1 in every built example)
 *   1 .. n_dense           the dense numeric features, in the order of the
 *                          names given to ls_ftrl_new() (the lead's window
 *                          features and configured profile metrics)
 *   1 + n_dense + h        hashed features, h = XXH3_64bits(string) &
 *                          (n_buckets - 1), where the string is
 *                            "key=value"            a categorical value
 *                                                   (industry=saas)
 *                            "a=x×b=y"              a configured cross
 *                                                   (page_category=pricing
 *                                                    ×industry=saas)
 *                            "name"                 a numeric value whose
 *                                                   name is not dense (an
 *                                                   unconfigured metric)
 * A string is hashed, never its readable name recovered from a hash: the
 * example carries the strings, and explanations name factors from it.
 * Two strings of one example that land in the same bucket are merged into
 * one entry (values added) whose name joins both with '|', so a collision
 * shows in the explanation instead of hiding behind one name.
 *
 * Numeric transform (ls_ftrl_example_build). Every numeric value v first
 * becomes t = sign(v) * log1p(|v|). For the non-negative features - every
 * count, sum of durations, distinct estimate, age, recency, velocity and
 * ratio, i.e. all default features but the sentiment sum and mean - that
 * is log1p(v): counts and durations are heavy-tailed and log1p makes the
 * 100th page view worth less than the first. The sign is kept instead of
 * flooring at 0 because sentiment sums and means, unfloored differences
 * and some metrics are legitimately negative and max(v, 0) would erase
 * them. Non-finite values count as 0.
 * Dense features are then standardised with running statistics of t over
 * the examples the model has learned from (N = positives + negatives,
 * S1 = sum t, S2 = sum t^2 per feature):
 *     mean = S1 / N, var = max(S2 / N - mean^2, 0),
 *     x = clamp((t - mean) / sqrt(var + 1e-4), -clip, +clip)
 * and x = clamp(t, -clip, clip) while N == 0. The statistics change only in
 * ls_ftrl_learn(), never in ls_ftrl_predict(): scoring is a pure function
 * of (model, example), so a snapshot shared with HTTP threads scores the
 * same lead the same way however often it is asked. Plain sums rather than
 * Welford's (mean, M2) because sums are additive, so instance deltas merge
 * exactly (below); after log1p |t| < 45, so S2 / N - mean^2 loses at most
 * ~1e-13 absolutely, far below the 1e-4 floor. A dense value not supplied
 * to the builder is t = 0 (absent and zero are the same to the model).
 * Hashed numeric values are not standardised (there are no per-bucket
 * statistics); they enter as clamp(t, -clip, clip). Categorical values and
 * crosses enter as 1.
 *
 * Learning (McMahan et al., "Ad Click Prediction: a View from the
 * Trenches", KDD 2013, algorithm 1), per coordinate i with x_i != 0:
 *     w_i = 0                                          if |z_i| <= l1
 *         = -(z_i - sign(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)
 *     p   = sigmoid(clamp(sum_i w_i x_i, -35, 35))
 *     g_i = (p - y) x_i
 *     sigma_i = (sqrt(n_i + g_i^2) - sqrt(n_i)) / alpha
 *     z_i += g_i - sigma_i w_i,   n_i += g_i^2
 * p and every w_i are computed before any coordinate changes, with the
 * standardisation as it stood before this example; the statistics are
 * updated after. Weights are never stored: they are a function of (z, n),
 * which is all a checkpoint needs to resume with the same learning rates.
 *
 * Explanations (ls_ftrl_explain): the contributions w_i * x_i of the
 * example's features (bias excluded: it says nothing about the lead), the
 * up to LS_FTRL_TOP largest positive ones in descending order and the up
 * to LS_FTRL_TOP most negative ones in ascending order (most negative
 * first); exact ties are ordered by name. Dense names come from the model,
 * hashed names from the example.
 *
 * Checkpoint (ls_ftrl_encode), integers LEB128 varints, doubles u64 LE
 * IEEE bits:
 *   "LSFT" u8 format version (1) u8 flags (bit 0: a delta)
 *   alpha beta l1 l2 clip (5 doubles), n_buckets
 *   version positives negatives
 *   n_dense, then per dense feature: name length, name, S1, S2
 *   n_coords, then per coordinate with z or n non-zero, ascending: the
 *     index gap (index for the first, index - previous - 1 after), z, n
 *   u64 LE XXH3_64bits of every byte before it
 * So a checkpoint holds the full learner state (z and n, the
 * standardisation sums, label counts, the version) and costs ~17-20 bytes
 * per coordinate ever touched, not per bucket. Decoding then encoding
 * gives the same bytes. ls_ftrl_decode() checks the checksum, every
 * length and every value (finite, n >= 0, parameters valid) and never
 * reads outside its buffer.
 *
 * Scale-out merge. Each instance learns on the labels of its own
 * partitions, keeps the shared state it last loaded (base) and its local
 * state, and at each checkpoint:
 *     d = ls_ftrl_delta(local, base)          (local - base, every field)
 *     shared' = ls_ftrl_apply_delta(shared, d) on the freshest shared copy
 *     local = base = shared'
 * (the pipeline does the Redis read-modify-write). Why adding z and n is
 * right: n_i is a sum of squared gradients and the label counts and
 * standardisation sums are sums over examples, so over disjoint data they
 * add exactly. z_i is the sum of gradients minus the proximal terms
 * sigma_t w_t; the sum of the instances' z deltas is what one learner
 * would have accumulated from the same gradients, except that each
 * instance computed its gradients at its own weights, which lack the
 * other instances' updates since the last merge (at most one checkpoint
 * interval stale), and its sigma_t from its own smaller n. That is the
 * usual bounded-staleness approximation of asynchronous parameter-server
 * training; it does not diverge because every label is counted once. The
 * deltas are added, not averaged: "delta averaging" would divide every
 * instance's step by the number of instances, which is right when they
 * train on copies of the same data, wrong for disjoint partitions where
 * each label must move the model once. Instances score with a model that
 * has seen every label up to one checkpoint interval ago plus their own
 * since. apply_delta increments the version; an all-zero delta changes
 * nothing, not even the version.
 *
 * Memory: the model allocates D coordinates of z and n (16 bytes each)
 * plus ~60 bytes and the name per dense feature (its sums, and the mean,
 * sd and weight cached for scoring): with the default 2^18 buckets and
 * the 55 values of the default feature set 4,199,221 bytes (4.0 MiB) per
 * model, measured by test_ftrl (and an
 * instance keeps local, base and usually a published snapshot: ~12 MiB
 * per configured model). ls_ftrl_ram_bytes() reports it. An example owns
 * its arrays and strings; reuse one across leads with
 * ls_ftrl_example_reset(). ls_ftrl_explain() returns names that point
 * into the model (dense) or the example (hashed), valid until either
 * changes or is freed.
 *
 * Errors: functions return 0 (LS_FTRL_OK) or a negative ls_ftrl_result;
 * ls_ftrl_result_str() names it. Constructors that can fail for a reason
 * write it to err. Nothing logs, exits or asserts on input.
 *
 * Thread-safety: a model and an example are used by one thread at a
 * time. ls_ftrl_predict(), ls_ftrl_explain(), ls_ftrl_example_build(),
 * ls_ftrl_encode(), ls_ftrl_delta() and the accessors only read the model,
 * so an immutable snapshot (ls_ftrl_clone()) may be shared read-only by
 * any number of threads, each with its own example.
 */
#ifndef LS_FTRL_H
#define LS_FTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"

#define LS_FTRL_FORMAT_VERSION 1
#define LS_FTRL_TOP 3                 /* factors per sign in explanations */
#define LS_FTRL_NAME_MAX 255          /* dense feature name, bytes */
#define LS_FTRL_MAX_DENSE 4096
#define LS_FTRL_MIN_BUCKETS (1u << 4)
#define LS_FTRL_MAX_BUCKETS (1u << 24) /* 256 MiB of state: a sane ceiling
					   that also bounds what a corrupt
					   checkpoint can make us allocate */

/*
 * Defaults. alpha 0.1 suits inputs of unit scale (standardised and
 * clipped here). beta 0.1, l1 0.3 and l2 0.3 were chosen on leadscore-sim
 * streams of 8,000 leads (tools/model_baseline.py, seeds 1 and 2) over
 * the paper's beta 1, l1 1, l2 1: +0.003 to +0.009 AUC of the published
 * scores and a lower calibration error (0.021 against 0.055 on seed 2),
 * because with a few thousand labels heavy regularisation kept the
 * weights short of what the data supports. l1 still keeps rarely seen
 * hashed values at exactly 0. 2^18 buckets keep collisions rare (~2 %
 * for 5,000 distinct strings) at 4 MiB per model.
 */
#define LS_FTRL_DEFAULT_ALPHA 0.1
#define LS_FTRL_DEFAULT_BETA 0.1
#define LS_FTRL_DEFAULT_L1 0.3
#define LS_FTRL_DEFAULT_L2 0.3
#define LS_FTRL_DEFAULT_BUCKETS (1u << 18)
#define LS_FTRL_DEFAULT_CLIP 5.0

typedef enum ls_ftrl_result {
	LS_FTRL_OK = 0,
	LS_FTRL_ERR_INVALID = -1, /* bad argument or parameter */
	LS_FTRL_ERR_NOMEM = -2,
	LS_FTRL_ERR_LAYOUT = -3,  /* example, delta or model of another layout
				     (dense names, buckets, parameters) */
	LS_FTRL_ERR_CORRUPT = -4, /* checkpoint truncated, corrupt, unknown
				     version */
	LS_FTRL_ERR_DELTA = -5,   /* a delta where a model is needed, or a
				     local state not descended from base */
} ls_ftrl_result;

typedef struct ls_ftrl_params {
	double alpha;       /* > 0: learning rate scale */
	double beta;        /* >= 0: learning rate smoothing */
	double l1;          /* >= 0 */
	double l2;          /* >= 0 */
	uint32_t n_buckets; /* power of two, MIN..MAX_BUCKETS */
	double clip;        /* > 0: |input| bound after transform */
} ls_ftrl_params;

typedef struct ls_ftrl ls_ftrl;

/* One sparse entry of an example: a coordinate, its value, its name. */
typedef struct ls_ftrl_entry {
	uint32_t index; /* coordinate (0 bias, 1 + n_dense + bucket hashed) */
	uint32_t name;  /* offset of its NUL-terminated name in names */
	double value;
} ls_ftrl_entry;

/*
 * One example. Read-only for callers except through the functions below.
 * dense[j] is the transformed value t of dense feature j (before
 * standardisation, which the model applies); entries holds the bias and
 * the hashed features (buckets included), sorted by index, one per index.
 * raw[j] is dense feature j's raw value (non-finite as 0), set only when
 * the model has numeric maps: what learning adds to its sketch.
 */
typedef struct ls_ftrl_example {
	uint64_t layout;     /* ls_ftrl_layout() of the model it was built for */
	size_t n_dense, cap_dense;
	double *dense;
	double *raw;         /* cap_dense of them */
	size_t n_entries, cap_entries;
	ls_ftrl_entry *entries;
	size_t names_len, names_cap;
	char *names;
} ls_ftrl_example;

/* A configured cross of two categorical keys, e.g. page_category x industry. */
typedef struct ls_ftrl_cross {
	const char *a;
	const char *b;
} ls_ftrl_cross;

/*
 * What a lead offers the builder. Numeric: the window feature values with
 * their names (ls_lead_features / ls_feature_set_value_name) and the
 * profile metrics, in one list. Categorical: the profile attributes and any
 * other key/value the pipeline adds (the event's page_category). Arrays may
 * be NULL when their count is 0; NULL or "" keys and values are skipped.
 */
typedef struct ls_ftrl_input {
	const char *const *num_names;
	const double *num_values;
	size_t n_num;
	const char *const *cat_keys;
	const char *const *cat_values;
	size_t n_cat;
	const ls_ftrl_cross *crosses;
	size_t n_crosses;
} ls_ftrl_input;

/* One explanation factor. */
typedef struct ls_ftrl_factor {
	const char *name;    /* see Memory above */
	double value;        /* x_i as the model saw it */
	double contribution; /* w_i * x_i */
} ls_ftrl_factor;

/*
 * Numeric feature map of one dense feature (issue 15; see "Numeric
 * transform" above). Zero-initialised it is today's map: one linear term
 * t = sign(v) log1p(|v|), standardised, no buckets.
 *   transform  the linear term's t: LOG1P (default) or LINEAR (t = v)
 *   no_linear  drop the linear term (the coordinate stays, always 0):
 *              the buckets alone carry the feature
 *   buckets    NONE; BINS: the fixed edges; QUANTILES: n equal-mass
 *              buckets whose edges come from a quantile sketch of the
 *              feature's raw values in the examples learned
 *              (ls_quantile.h), checkpointed and merged with the model
 *              and frozen per model version
 * A bucketed value v enters as the hashed one-hot feature of its bucket
 * (keyed by feature name and bucket index, named for explanations by its
 * range: "pricing_views_7d in [3, 6)"), on the raw value v.
 */
typedef enum ls_ftrl_transform {
	LS_FTRL_T_LOG1P = 0,
	LS_FTRL_T_LINEAR = 1,
} ls_ftrl_transform;

typedef enum ls_ftrl_bucketing {
	LS_FTRL_B_NONE = 0,
	LS_FTRL_B_BINS = 1,
	LS_FTRL_B_QUANTILES = 2,
} ls_ftrl_bucketing;

#define LS_FTRL_MAX_EDGES 63 /* bins: edges; quantiles: buckets - 1 */

typedef struct ls_ftrl_numeric {
	ls_ftrl_transform transform;
	bool no_linear;
	ls_ftrl_bucketing buckets;
	uint32_t quantiles;                /* QUANTILES: 2..LS_FTRL_MAX_EDGES + 1 */
	size_t n_edges;                    /* BINS: 1..LS_FTRL_MAX_EDGES */
	double edges[LS_FTRL_MAX_EDGES];   /* BINS: finite, strictly ascending */
} ls_ftrl_numeric;

/* true when nm is usable; otherwise a reason in err. */
bool ls_ftrl_numeric_check(const ls_ftrl_numeric *nm, char *err, size_t errlen);

/* Name of a result, e.g. "checkpoint corrupt". Never NULL. */
const char *ls_ftrl_result_str(int rc);

void ls_ftrl_params_default(ls_ftrl_params *p);
/* true when p is usable; otherwise a reason in err. */
bool ls_ftrl_params_check(const ls_ftrl_params *p, char *err, size_t errlen);

/*
 * A fresh model (z = n = 0, no labels, version 0) over the dense features
 * dense_names[0..n_dense) (copied; unique, non-empty, at most
 * LS_FTRL_NAME_MAX bytes). NULL with a reason in err when invalid or out
 * of memory. Free with ls_ftrl_free().
 */
ls_ftrl *ls_ftrl_new(const ls_ftrl_params *p, const char *const *dense_names,
		     size_t n_dense, char *err, size_t errlen);
void ls_ftrl_free(ls_ftrl *m);
/*
 * ls_ftrl_new with a numeric map per dense feature (maps[j] for
 * dense_names[j]; NULL: every feature the zero map). The maps are part of
 * the layout (ls_ftrl_layout), so a checkpoint of other maps is another
 * layout.
 */
ls_ftrl *ls_ftrl_new_mapped(const ls_ftrl_params *p,
			    const char *const *dense_names,
			    const ls_ftrl_numeric *maps, size_t n_dense,
			    char *err, size_t errlen);

/* A deep copy, or NULL when out of memory. */
ls_ftrl *ls_ftrl_clone(const ls_ftrl *m);
/*
 * Overwrite dst's state with src's without allocating (the batch loop
 * keeps a committed copy in step at every commit; a fresh 4 MiB clone
 * each time cost page faults). LS_FTRL_ERR_LAYOUT when they differ.
 */
int ls_ftrl_copy(ls_ftrl *dst, const ls_ftrl *src);

/* Accessors. */
const ls_ftrl_params *ls_ftrl_get_params(const ls_ftrl *m);
/* Hash of the dense names, n_buckets and parameters: equal layouts can
   share examples and merge deltas. */
uint64_t ls_ftrl_layout(const ls_ftrl *m);
size_t ls_ftrl_n_dense(const ls_ftrl *m);
const char *ls_ftrl_dense_name(const ls_ftrl *m, size_t j); /* NULL if out */
size_t ls_ftrl_dims(const ls_ftrl *m);                      /* D */
uint64_t ls_ftrl_version(const ls_ftrl *m);
uint64_t ls_ftrl_positives(const ls_ftrl *m);
uint64_t ls_ftrl_negatives(const ls_ftrl *m);
bool ls_ftrl_is_delta(const ls_ftrl *m);
/* z, n and the lazy weight of coordinate i; false when i >= D. */
bool ls_ftrl_coord(const ls_ftrl *m, size_t i, double *z, double *n,
		   double *w);
/* Mean and standard deviation (with the 1e-4 floor) of dense feature j
   as the standardisation uses them; false when j is out of range. */
bool ls_ftrl_dense_stats(const ls_ftrl *m, size_t j, double *mean,
			 double *sd);
size_t ls_ftrl_ram_bytes(const ls_ftrl *m);

/* Examples. init zeroes, reset empties keeping capacity, free releases. */
void ls_ftrl_example_init(ls_ftrl_example *x);
void ls_ftrl_example_reset(ls_ftrl_example *x);
void ls_ftrl_example_free(ls_ftrl_example *x);

/*
 * Replace x with the example of in for model m: bias, numeric values
 * (dense by name, others hashed), categoricals and crosses, as described
 * above. A cross is added when both keys have a non-empty value in the
 * categoricals (the first occurrence of a key counts). Returns LS_FTRL_OK,
 * LS_FTRL_ERR_INVALID or LS_FTRL_ERR_NOMEM (x is then empty).
 */
int ls_ftrl_example_build(ls_ftrl_example *x, const ls_ftrl *m,
			  const ls_ftrl_input *in);

/*
 * The dense index (0..n_dense-1) of numeric name in m, or -1 when m has
 * no dense feature of that name (its values are hashed).
 */
int ls_ftrl_dense_index(const ls_ftrl *m, const char *name);

/* A num_dense entry that says: look the name up by name. */
#define LS_FTRL_UNRESOLVED (-2)

/*
 * ls_ftrl_example_build with the numeric names' dense indices resolved
 * in advance: num_dense[i] (for i < in->n_num) is
 * ls_ftrl_dense_index(m, in->num_names[i]), or LS_FTRL_UNRESOLVED to look
 * that name up here; NULL looks every name up. The indices depend only on
 * the layout, so a caller that builds many examples resolves them once
 * per layout instead of a string search per feature per example. Same
 * example, bit for bit, as ls_ftrl_example_build() when the indices are
 * right; LS_FTRL_ERR_INVALID for one outside -2..n_dense-1 (a wrong one
 * inside that range cannot be detected: resolve against m's layout).
 */
int ls_ftrl_example_build_resolved(ls_ftrl_example *x, const ls_ftrl *m,
				   const ls_ftrl_input *in,
				   const int32_t *num_dense);

/*
 * Low-level: add one hashed feature string with value (after any
 * transform the caller wants; non-finite is refused) to x, merging with an
 * entry already in its bucket. x must be empty or built for m.
 */
int ls_ftrl_example_add(ls_ftrl_example *x, const ls_ftrl *m,
			const char *name, double value);

/* Name of entry e of x. */
const char *ls_ftrl_example_entry_name(const ls_ftrl_example *x, size_t e);

/*
 * *p = the probability of a positive label for x. LS_FTRL_ERR_LAYOUT when
 * x was built for another layout, LS_FTRL_ERR_DELTA when m is a delta.
 */
int ls_ftrl_predict(const ls_ftrl *m, const ls_ftrl_example *x, double *p);

/*
 * Learn from x with label (0 or 1). *p_before (may be NULL) receives the
 * prediction made before the update: the progressive-validation score.
 * Errors as predict, plus LS_FTRL_ERR_INVALID for another label; the model
 * is unchanged on error.
 */
int ls_ftrl_learn(ls_ftrl *m, const ls_ftrl_example *x, int label,
		  double *p_before);

/*
 * Top factors of x, as described above. n_pos / n_neg receive how many of
 * top_pos / top_neg are filled (0..LS_FTRL_TOP). Errors as predict.
 */
int ls_ftrl_explain(const ls_ftrl *m, const ls_ftrl_example *x,
		    ls_ftrl_factor top_pos[LS_FTRL_TOP], size_t *n_pos,
		    ls_ftrl_factor top_neg[LS_FTRL_TOP], size_t *n_neg);

/*
 * Replace out's contents with m's checkpoint (a model or a delta). out is
 * the caller's (ls_buf.h) and may be reused.
 */
int ls_ftrl_encode(const ls_ftrl *m, ls_buf *out);

/*
 * Build a model (or delta) from data[0..len). On success *out receives it
 * (the caller frees); on failure *out is NULL, a reason with the byte
 * offset is written to err and LS_FTRL_ERR_CORRUPT (or NOMEM) returned.
 */
int ls_ftrl_decode(const uint8_t *data, size_t len, ls_ftrl **out, char *err,
		   size_t errlen);

/*
 * *out = local - base: z, n, standardisation sums and label counts; its
 * version is base's (the shared version the delta was learned against).
 * LS_FTRL_ERR_LAYOUT when the layouts differ, LS_FTRL_ERR_DELTA when
 * either is a delta or local has fewer labels than base.
 */
int ls_ftrl_delta(const ls_ftrl *local, const ls_ftrl *base, ls_ftrl **out);

/*
 * ls_ftrl_delta into d, a model or delta of the same layout (allocated
 * once by the caller, e.g. a clone; it becomes a delta), so that the
 * batch loop's per-commit delta allocates nothing.
 */
int ls_ftrl_delta_into(ls_ftrl *d, const ls_ftrl *local, const ls_ftrl *base);

/*
 * shared += delta (n floored at 0) and, unless the delta is all zero,
 * shared's version + 1. Errors as ls_ftrl_delta; shared is unchanged on
 * error.
 */
int ls_ftrl_apply_delta(ls_ftrl *shared, const ls_ftrl *delta);

#endif
