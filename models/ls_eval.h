/*
 * ls_eval.h - progressive validation of an online model, score tiers with
 * hysteresis, and the decision whether a new score is worth publishing.
 *
 * What: a model is judged on the scores it actually published. When a
 * lead's label arrives, its last score before the label is the prediction
 * p; the pair (p, label) goes into a rolling window ls_eval that keeps the
 * W most recent pairs (W is the configured window, e.g. 10,000 labels).
 * From the window we report three metrics:
 *
 *   AUC       the probability that a random positive scores above a random
 *             negative, ties counting one half (the Mann-Whitney U statistic
 *             over P*N; the same value as the average-rank formula
 *             (R_pos - P(P+1)/2) / (P*N)). Exact: computed from integer
 *             pair counts, so it equals a brute-force count over all
 *             positive/negative pairs bit for bit. NaN when the window does
 *             not hold at least one positive and one negative (the metric is
 *             undefined, not 0.5), and NaN when the O(n) scratch array cannot
 *             be allocated.
 *   log-loss  mean of -(y ln p + (1-y) ln(1-p)), natural log, with the
 *             probability given to the observed label (p for a positive,
 *             1 - p for a negative) clamped to [1e-15, 1 - 1e-15] first,
 *             so one confident mistake costs at most -ln(1e-15) ~= 34.539
 *             instead of infinity and a single p = 0 or 1 does not turn
 *             the window's loss into inf for the next W labels. This is
 *             clamping p to [1e-15, 1 - 1e-15], made symmetric: p = 0 on a
 *             positive and p = 1 on a negative cost exactly the same.
 *             NaN when the window is empty.
 *   ECE       expected calibration error over 10 equal-width bins of p:
 *                 ECE = sum_b (n_b / N) * |mean(p)_b - mean(y)_b|
 *             over the non-empty bins b. Bin edges are the doubles 0.1,
 *             0.2, ... 0.9 (the C literals k/10.0); bin k holds
 *             edge_k <= p < edge_k+1, i.e. [0,0.1), [0.1,0.2), ...,
 *             [0.8,0.9), and the last bin is closed: [0.9,1.0]. A p equal
 *             to an edge literal goes to the upper bin (0.3 is in bin 3).
 *             NaN when the window is empty.
 *
 * Cost: ls_eval_add() is O(1) and never allocates: the window is a ring
 * allocated once at its capacity. The metrics are O(n) (log-loss, ECE) and
 * O(n log n) (AUC sorts a copy of the predictions), so they are meant to be
 * called when metrics are exported (every few seconds), not per label.
 * Memory: 9 bytes per slot (a double and a label byte), 90 KB for W=10,000.
 *
 * The metrics do not depend on the order of the pairs, and log-loss and ECE
 * are summed oldest-first, so a window gives bit-identical metrics to the
 * same W pairs in arrays (ls_eval_*_of()) and after an encode/decode round
 * trip.
 *
 * Checkpoint blob (ls_eval_encode), integers LEB128 varints unless noted:
 *   u8 version (1)
 *   capacity W (1..LS_EVAL_MAX_CAPACITY)
 *   total labels ever added (>= n; survives checkpoints)
 *   n pairs held (<= W)
 *   ceil(n/8) bytes of labels, oldest first, bit i of the window is bit
 *     (i % 8) of byte i / 8 (LSB first); unused high bits are zero
 *   n x u64 little-endian IEEE-754 bits of p, oldest first; each in [0,1]
 *   u64 little-endian XXH3_64bits of every byte before it
 * so 8 1/8 bytes a pair (about 81 KB for W=10,000). Predictions are kept as
 * full doubles because anything shorter (a float, a fixed-point fraction)
 * would make restored metrics drift from the ones exported before the
 * restart and would merge nearby predictions into ties, which moves AUC.
 * The checksum is there because flipped bits in a prediction would
 * otherwise decode into a valid but wrong window; with it, a truncated or
 * damaged blob is refused. The encoding is canonical: decode then encode
 * with the same capacity gives the same bytes.
 *
 * Tiers: ls_tiers maps a score to an ordered tier (cold < warm < hot) with
 * a hysteresis margin h so that a lead whose score wobbles around a
 * boundary does not flap between tiers; see ls_tiers_assign().
 *
 * Memory: ls_eval_new()/ls_eval_decode() return a window the caller frees
 * with ls_eval_free(). ls_tiers is a plain value with no heap memory; it
 * copies the names it is given. Nothing here does I/O, logs or asserts on
 * input.
 *
 * Errors: functions returning int return an ls_eval_result (negative on
 * error; ls_eval_result_str() names it); ls_eval_decode() and
 * ls_tiers_init() also write a one-line reason to err (when errlen > 0).
 *
 * Thread-safety: a window has no locks. One thread may add to it while no
 * other thread uses it; the const functions (metrics, encode, accessors)
 * may run concurrently on a window nobody is modifying, e.g. an immutable
 * snapshot read by HTTP handlers (they allocate their own scratch).
 * ls_tiers is read-only after ls_tiers_init() and may be shared freely.
 */
#ifndef LS_EVAL_H
#define LS_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_EVAL_BLOB_VERSION 1
/* Bounds the allocation a blob can ask for (9.4 MB); far above any sane W. */
#define LS_EVAL_MAX_CAPACITY ((size_t)1 << 20)
#define LS_EVAL_ECE_BINS 10
/* Log-loss clamps the probability of the observed label to these. */
#define LS_EVAL_P_MIN 1e-15
#define LS_EVAL_P_MAX (1.0 - 1e-15)

typedef enum ls_eval_result {
	LS_EVAL_OK = 0,
	LS_EVAL_ERR_INVALID = -1, /* bad argument: p outside [0,1] or NaN, ... */
	LS_EVAL_ERR_NOMEM = -2,
	LS_EVAL_ERR_CORRUPT = -3, /* blob truncated, damaged or unknown version */
	LS_EVAL_ERR_SPACE = -4,   /* output buffer too small */
} ls_eval_result;

/* Name of a result, e.g. "blob corrupt". Never NULL. */
const char *ls_eval_result_str(int rc);

typedef struct ls_eval ls_eval;

/*
 * An empty window of capacity pairs (1..LS_EVAL_MAX_CAPACITY), or NULL when
 * capacity is out of range or memory runs out.
 */
ls_eval *ls_eval_new(size_t capacity);
void ls_eval_free(ls_eval *ev);

/*
 * Add one labelled prediction, evicting the oldest pair once the window is
 * full. O(1). LS_EVAL_ERR_INVALID (window unchanged) when p is NaN or
 * outside [0,1] or ev is NULL.
 */
int ls_eval_add(ls_eval *ev, double p, bool positive);

size_t ls_eval_capacity(const ls_eval *ev);
size_t ls_eval_count(const ls_eval *ev);     /* pairs held, <= capacity */
size_t ls_eval_positives(const ls_eval *ev); /* of those, label 1 */
uint64_t ls_eval_total(const ls_eval *ev);   /* pairs ever added */

/*
 * Pair i of the window, 0 the oldest; false when i >= count. For callers
 * that need the raw pairs (offline comparisons, tests).
 */
bool ls_eval_at(const ls_eval *ev, size_t i, double *p, bool *positive);

/* Metrics over the window; semantics and NaN cases above. */
double ls_eval_auc(const ls_eval *ev);
double ls_eval_logloss(const ls_eval *ev);
double ls_eval_ece(const ls_eval *ev);

/*
 * The same metrics over arrays p[0..n), y[0..n) (y nonzero = positive), for
 * offline evaluation and as the reference the window is tested against.
 * Every p must be in [0,1]; a NaN or out-of-range p gives NaN.
 */
double ls_eval_auc_of(const double *p, const uint8_t *y, size_t n);
double ls_eval_logloss_of(const double *p, const uint8_t *y, size_t n);
double ls_eval_ece_of(const double *p, const uint8_t *y, size_t n);

/* Exact size of the window's blob in bytes. */
size_t ls_eval_encoded_size(const ls_eval *ev);

/*
 * Write the blob to buf[0..cap); *len receives its size. LS_EVAL_ERR_SPACE
 * (nothing useful written) when cap < ls_eval_encoded_size(ev).
 */
int ls_eval_encode(const ls_eval *ev, uint8_t *buf, size_t cap, size_t *len);

/*
 * Build a window from data[0..len). capacity 0 keeps the blob's capacity;
 * any other value (1..LS_EVAL_MAX_CAPACITY) gives a window of that size,
 * keeping the newest pairs when the blob holds more (the window was
 * reconfigured smaller). On success *out receives a window the caller
 * frees; on failure *out is NULL, LS_EVAL_ERR_CORRUPT (or NOMEM / INVALID)
 * is returned and err says what is wrong at which byte offset. Never reads
 * outside data[0..len).
 */
int ls_eval_decode(const uint8_t *data, size_t len, size_t capacity,
		   ls_eval **out, char *err, size_t errlen);

/*
 * Tiers. n tiers (1..LS_TIERS_MAX) are separated by n-1 boundaries b_0 <
 * b_1 < ... in (0,1); without history a score s is in tier
 * #{k : s >= b_k}, so with boundaries 0.3, 0.7: cold < 0.3 <= warm < 0.7
 * <= hot.
 *
 * Hysteresis h >= 0: a lead in tier t moves up only when its score reaches
 * a boundary above t plus h, and down only when it falls below a boundary
 * under t minus h:
 *     up   = #{k : s >= b_k + h}   if up > t,   the new tier is up
 *     down = #{k : s >= b_k - h}   if down < t, the new tier is down
 * otherwise it stays in t. (up <= down always, so at most one applies.) A
 * lead may cross several tiers in one step. A score that wanders strictly
 * within +-h of a boundary never changes the tier, whichever side it
 * started on. ">=" on the way up (rather than ">") so that h = 0 gives
 * exactly the tiers without history: a score equal to a boundary is in the
 * upper tier either way.
 *
 * Validation (ls_tiers_init): names non-empty, shorter than
 * LS_TIER_NAME_MAX and distinct (they become metric labels); boundaries
 * finite, strictly increasing, inside (0,1); h finite, >= 0 and smaller
 * than half of every gap between adjacent boundaries, smaller than b_0
 * and smaller than 1 - b_last. That guarantees every tier a non-empty
 * band of scores in [0,1] that puts a lead there whatever its previous
 * tier: [b_{k-1} + h, b_k - h) for inner tiers, [0, b_0 - h) for the
 * lowest and [b_last + h, 1] for the highest; with a larger h some tier
 * could not be reached from one side.
 */
#define LS_TIERS_MAX 16
#define LS_TIER_NAME_MAX 32 /* bytes, including the NUL */

typedef struct ls_tiers {
	size_t n;                            /* number of tiers */
	char names[LS_TIERS_MAX][LS_TIER_NAME_MAX];
	double bounds[LS_TIERS_MAX - 1];     /* bounds[k]: tier k | tier k+1 */
	double hysteresis;
} ls_tiers;

/*
 * Fill t from names[0..n) (lowest tier first) and bounds[0..n-1) (NULL
 * allowed when n == 1) and hysteresis h. true on success; false with a
 * reason in err (t is then zeroed).
 */
bool ls_tiers_init(ls_tiers *t, const char *const *names, const double *bounds,
		   size_t n, double hysteresis, char *err, size_t errlen);

/*
 * The tier index for score given the lead's previous tier (-1 when the
 * lead has none yet: no hysteresis is applied). Returns -1 when score is
 * NaN or prev is not in -1..n-1. Scores outside [0,1] are compared as they
 * are (below 0 is the lowest tier, above 1 the highest).
 */
int ls_tiers_assign(const ls_tiers *t, int prev, double score);

/* Name of tier i, or NULL when i is out of range. */
const char *ls_tiers_name(const ls_tiers *t, int i);

/*
 * Whether a new score should be published: true when it is the lead's first
 * (prev_score NaN or prev_tier < 0), when the tier changed, or when
 * |new_score - prev_score| >= min_delta. The comparison allows 1e-12 of
 * slack because scores are binary fractions: 0.70 - 0.65 computes to
 * 0.04999999999999993 and should still count as a move of 0.05. min_delta
 * <= 0 publishes every score. A NaN new_score is never published.
 */
bool ls_score_should_publish(double prev_score, int prev_tier,
			     double new_score, int new_tier, double min_delta);

/*
 * Young-model shrinkage. A young FTRL model is miscalibrated above all
 * in its intercept: the bias weight starts at 0 (an untrained model says
 * 0.5 to everyone) and moves with a per-coordinate learning rate, so for
 * the first few hundred labels every score sits far from the base rate.
 * The label counts give the base rate long before the bias finds it, so
 * until the model has seen `maturity` labels its intercept is shrunk
 * toward the base rate's logit:
 *     b      = (positives + 0.5) / (positives + negatives + 1)
 *     lambda = min(1, labels / maturity, positives / ceil(0.12 maturity))
 *     p'     = sigmoid(logit(p) - (1 - lambda) (w0 - logit(b)))
 * where w0 is the model's bias weight: at lambda 0 the learned intercept
 * is replaced by logit(b), at lambda 1 (mature) p' = p. b carries half a
 * pseudo-label each way (Jeffreys), so an empty model publishes 0.5; a
 * model of rare positives stays young longer (its positives carry most
 * of what it can learn; 1,000 labels of which 120 positive is the bar
 * Salesforce Einstein sets, and the default). Only the intercept moves:
 * p' is an increasing function of p for a given model state, so one model
 * version ranks leads exactly as its raw scores do, and scores published
 * at different ages line up better (tests/test_eval.c: a young learner's
 * ECE over its first 800 labels falls by 17-49 %, its progressive AUC
 * moves by -0.005 to +0.035, on four seeds). That holds when the bias
 * carries the intercept; where one-hot inputs present in every example
 * carry part of it (the daemon's profile attributes), replacing w0
 * double-counts and calibration gets worse (docs/scoring.md "Young models"), so
 * the scorer applies this only with a model's shrink_young. The weights of the features
 * are not shrunk: FTRL's regularisation already keeps them short while
 * evidence is thin. maturity 0: no shrinkage. The model is "mature"
 * (HTTP API) exactly when lambda is 1.
 */
double ls_score_maturity(uint64_t positives, uint64_t negatives, int64_t maturity);
double ls_score_shrink(double p, double bias_weight, uint64_t positives,
		       uint64_t negatives, int64_t maturity);

#endif
