/*
 * ls_window.h - feature definitions and bucketed sliding windows over
 * event time.
 *
 * What: a feature spec (ls_feature_spec) says which events a feature looks
 * at and how it aggregates them; ls_feature_set_new() validates a list of
 * specs, fills in defaults and compiles it into an immutable
 * ls_feature_set that the per-lead state (ls_lead.h) is laid out by. This
 * header also holds the slice arithmetic and the aggregation of one window,
 * which ls_lead.c applies to the slices it keeps.
 *
 * Windows. A window of length W ms is cut into N slices of width
 * w = W / N (W must be a multiple of N). Slices are aligned to the Unix
 * epoch: slice k covers event times [k*w, (k+1)*w), so idx(ts) = ts / w
 * (ts >= 0, so C division is floor division). The value of a window at a
 * reference time T is the aggregate over the slices k with
 *     idx(T) - N < k <= idx(T)
 * i.e. the window covers between (N-1)*w and N*w of history depending on
 * where T falls inside its own slice; its edges are slice edges. An event
 * exactly at a slice edge k*w belongs to slice k; an event at T - W lies in
 * slice idx(T) - N and is therefore outside the window at T.
 *
 * Windows of one feature whose slices have the same width share storage:
 * they read the same ring of slices, which is kept as long as the longest
 * of them needs (a 7 d window is the newest 28 six-hour slices of the
 * 30 d window's 120). So an event is stored once per distinct width, not
 * once per window.
 *
 * Default slice counts (spec.windows[i].slices == 0) keep the edge error at
 * a few percent of the window and give every multi-day window the same
 * width, so that they share a ring:
 *     W <= 1 h   -> 12 slices        (1 h  -> 5 min)
 *     W <= 24 h  -> 24 slices        (24 h -> 1 h)
 *     W >  24 h  -> W / 6 h slices   (7 d -> 28, 30 d -> 120: 6 h each)
 *                   when 6 h divides W and that is at most 256, else 30
 * or, when that count does not divide W, the largest count below it that
 * does (down to 1). At most LS_WINDOW_MAX_SLICES slices per window.
 *
 * Aggregations, per slice and then over the slices of a window:
 *   count     number of matching events; when spec.field is set, only
 *             events carrying that field count (e.g. calls with a
 *             sentiment score).
 *   sum       sum of a numeric field in fixed point, so sums are exact
 *             integers, independent of order and cheap to encode:
 *               web duration_ms   1 unit = 1 ms          (negative: ignored)
 *               call duration_s   1 unit = 1 s           (negative: ignored)
 *               call sentiment    1 unit = 0.001, clamped to [-1, 1]
 *               outcome value     1 unit = 0.01, clamped to +-1e15
 *             each event adds llround(x / unit) (round half away from
 *             zero); sums saturate at the int64 range. The value reported
 *             is units * unit * spec.scale (scale 0 means 1).
 *   last_seen slice keeps the greatest event ts in it. The window value is
 *             the age in seconds, max(0, T - ts_max) / 1000, of the newest
 *             matching event in the window, or W / 1000 when the window
 *             holds none (the window length is the cap).
 *   distinct  approximate number of distinct values of a string field
 *             (web session_id, email campaign_id; NULL or "" is absent):
 *             each slice keeps a 64-bit bitmap with bit
 *             XXH3_64bits(value) & 63 set; the window ORs its slices and
 *             reports the linear-counting estimate -64 * ln(z / 64) for z
 *             zero bits (0 when no bit is set, 64 * ln 64 ~= 266.2 when all
 *             are). Exact enough below ~20 values, saturates near 266.
 *
 * Derived features have no state of their own; they read windowed
 * features named in spec.a / spec.b (which must be LS_FEATURE_WINDOWED):
 *   velocity   short-window count rate over long-window count rate of
 *              feature a (an LS_AGG_COUNT feature); windows[0] is the short
 *              window S, windows[1] the long window L (S < L, both windows
 *              of a). With counts c_s, c_l and a prior of alpha
 *              pseudo-events spread evenly over L (spec.param, 0 means 1):
 *                  v = (c_s * L / S + alpha) / (c_l + alpha)
 *              Why this smoothing: it is the ratio of the two rates after
 *              adding alpha events at the long-window rate to both, so no
 *              activity gives exactly 1 (0/0 is defined), a steady rate
 *              gives exactly 1 whatever alpha, a single burst of one event
 *              is shrunk towards 1, and v stays within (0, L/S].
 *              One value named <name>_<S>_<L>, e.g. web_velocity_1h_7d.
 *   recency    time since the newest event ever applied to the lead that
 *              matched feature a (not limited to a's windows):
 *              max(0, T - last_seen) / unit_ms (unit_ms 0 means one day),
 *              capped at spec.param (0 means 365); the cap when never
 *              seen. One value named <name>, e.g. days_since_last_web.
 *   difference a - b per window in spec.windows (both operands must have a
 *              window of that length); floored at 0 when floor_zero.
 *   ratio      a / b per window, 0 when b is 0.
 *   mean       like ratio, but a must be a sum and b a count of the same
 *              source and field (e.g. mean call sentiment = sentiment sum /
 *              calls with a sentiment); 0 when the count is 0.
 * Windowed features give one value per window, <name>_<window>, with the
 * window written in the largest whole unit, except that one day is 24h:
 * 7d, 24h, 36h, 5m, 30s, 250ms.
 *
 * Memory: ls_feature_set_new() copies what it needs from the specs; the
 * caller may free them at once. The set owns its value names. Free with
 * ls_feature_set_free().
 *
 * Errors: ls_feature_set_new() returns NULL and writes one line saying
 * which feature and what is wrong to err (when errlen > 0); NULL with
 * "out of memory" on allocation failure. Nothing here logs or asserts on
 * input.
 *
 * Thread-safety: a set is immutable after creation and may be shared by
 * any number of threads. ls_features_default() returns static const data.
 * The window functions touch only their arguments.
 */
#ifndef LS_WINDOW_H
#define LS_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_event.h"
#include "ls_ftrl.h" /* ls_ftrl_numeric */

#define LS_FEATURE_NAME_MAX 48     /* feature name, including the NUL */
#define LS_FEATURE_CATEGORY_MAX 32 /* page_category filter, with the NUL */
#define LS_FEATURE_VALUE_NAME_MAX 96
#define LS_FEATURE_MAX_WINDOWS 4
#define LS_FEATURE_MAX_SPECS 256
#define LS_WINDOW_MAX_SLICES 256

#define LS_WINDOW_MS_MINUTE INT64_C(60000)
#define LS_WINDOW_MS_HOUR INT64_C(3600000)
#define LS_WINDOW_MS_DAY INT64_C(86400000)

typedef enum ls_feature_kind {
	LS_FEATURE_WINDOWED = 0,
	LS_FEATURE_VELOCITY,
	LS_FEATURE_RECENCY,
	LS_FEATURE_DIFFERENCE,
	LS_FEATURE_RATIO,
	LS_FEATURE_MEAN,
	LS_FEATURE_KIND__COUNT
} ls_feature_kind;

typedef enum ls_feature_agg {
	LS_AGG_COUNT = 0,
	LS_AGG_SUM,
	LS_AGG_LAST_SEEN,
	LS_AGG_DISTINCT,
	LS_AGG__COUNT
} ls_feature_agg;

typedef enum ls_feature_field {
	LS_FIELD_NONE = 0,
	LS_FIELD_WEB_DURATION_MS,  /* numeric */
	LS_FIELD_CALL_DURATION_S,  /* numeric */
	LS_FIELD_CALL_SENTIMENT,   /* numeric */
	LS_FIELD_OUTCOME_VALUE,    /* numeric */
	LS_FIELD_WEB_SESSION_ID,   /* string */
	LS_FIELD_EMAIL_CAMPAIGN_ID, /* string */
	LS_FIELD__COUNT
} ls_feature_field;

typedef struct ls_window_spec {
	int64_t length_ms; /* W > 0 */
	uint32_t slices;   /* N, 0 for the default above; must divide W */
} ls_window_spec;

/*
 * One feature as written in the configuration. Zero-initialise, then set
 * what the kind needs; the rest is ignored.
 */
typedef struct ls_feature_spec {
	char name[LS_FEATURE_NAME_MAX]; /* [a-z0-9_], unique in the set */
	ls_feature_kind kind;

	/* LS_FEATURE_WINDOWED: which events, and how they aggregate. */
	ls_source source;
	/*
	 * Bit t accepts event type t of the source: ls_email_type for email,
	 * ls_web_type for web, ls_call_outcome for calls, ls_outcome_type for
	 * outcomes (profile events have no type). 0 accepts any type.
	 */
	uint32_t type_mask;
	char page_category[LS_FEATURE_CATEGORY_MAX]; /* web only; "" = any;
							exact match */
	ls_feature_agg agg;
	ls_feature_field field; /* the summed / distinct field; for count and
				   last_seen an optional presence filter */
	double scale;           /* sum only: reported value multiplier; 0 = 1 */

	/*
	 * Windows: for windowed, difference, ratio and mean features the
	 * windows computed; for velocity [0] is the short and [1] the long
	 * window (slices ignored). Lengths must be distinct.
	 */
	size_t n_windows;
	ls_window_spec windows[LS_FEATURE_MAX_WINDOWS];

	/* Derived features: operands by name, and parameters (see above). */
	char a[LS_FEATURE_NAME_MAX];
	char b[LS_FEATURE_NAME_MAX];
	double param;     /* velocity: prior alpha (0 = 1); recency: cap (0 = 365) */
	int64_t unit_ms;  /* recency: unit of the value (0 = 1 day) */
	bool floor_zero;  /* difference: floor at 0 */

	/*
	 * How the models take every value of this feature (ls_ftrl.h); not
	 * part of the key or fingerprint: it changes no lead state.
	 */
	ls_ftrl_numeric map;
} ls_feature_spec;

/* A compiled feature: the spec with defaults filled in, and its layout. */
typedef struct ls_feature_info {
	ls_feature_spec spec;
	/*
	 * Windowed only: stable key of the definition (name, source, types,
	 * category, aggregation, field, window lengths and slice counts; not
	 * scale), the first XXH3_64bits bits of a canonical byte string. Blobs
	 * key a feature's state by it, so changing a definition starts that
	 * feature fresh instead of reinterpreting old slices.
	 */
	uint32_t key;
	uint32_t ring;     /* windowed: index of its first ring */
	uint32_t n_rings;  /* windowed: rings (distinct slice widths) */
	uint8_t win_ring[LS_FEATURE_MAX_WINDOWS]; /* window -> ring - ring */
	int32_t tracked;   /* windowed: index of its last_seen slot, or -1 when
			      no recency feature reads it */
	int32_t a, b;      /* derived: operand feature indices, else -1 */
	uint8_t a_win[LS_FEATURE_MAX_WINDOWS]; /* derived: operand window index */
	uint8_t b_win[LS_FEATURE_MAX_WINDOWS]; /* for each of our windows */
	uint32_t first_value; /* index of its first value in the value list */
	uint32_t n_values;
} ls_feature_info;

/* One ring: the slices of one width of one windowed feature. */
typedef struct ls_window_ring {
	int64_t width_ms; /* w = W / N */
	uint32_t slices;  /* the largest N of the windows that read it */
	uint32_t feature; /* index in the set */
} ls_window_ring;

typedef struct ls_feature_set {
	size_t n_features;
	ls_feature_info *features;
	size_t n_rings;
	ls_window_ring *rings;
	size_t n_tracked;   /* last_seen slots a lead keeps */
	size_t n_values;    /* values ls_lead_features() produces */
	char *value_names;  /* n_values names, LS_FEATURE_VALUE_NAME_MAX apart */
	/* Hash of everything a lead's in-memory layout depends on. */
	uint64_t fingerprint;
} ls_feature_set;

/* One non-empty slice: its index k and its aggregate (see ls_window_add). */
typedef struct ls_window_slice {
	int64_t k;
	uint64_t v;
} ls_window_slice;

/*
 * The default sales feature set (static, n_out receives the count). See
 * ls_window.c for the list and why each feature is there.
 */
const ls_feature_spec *ls_features_default(size_t *n_out);

/*
 * Validate and compile n specs. Returns NULL with a reason in err on any
 * invalid spec (unknown enum, bad name, duplicate name, bad window, filter
 * not valid for the source, operand missing or of the wrong kind, ...).
 */
ls_feature_set *ls_feature_set_new(const ls_feature_spec *specs, size_t n,
				   char *err, size_t errlen);
void ls_feature_set_free(ls_feature_set *set);

/* Name of value i (0 <= i < n_values), or NULL when out of range. */
const char *ls_feature_set_value_name(const ls_feature_set *set, size_t i);

/* Index of the feature called name, or -1. */
int ls_feature_set_find(const ls_feature_set *set, const char *name);

/* Writes "7d", "24h", "5m", "30s" or "250ms" for a length; returns buf. */
const char *ls_window_label(int64_t length_ms, char *buf, size_t len);

/* Default N for a window of length_ms (> 0), as in the table above. */
uint32_t ls_window_default_slices(int64_t length_ms);

/* idx(ts) for ts >= 0 and width > 0. */
int64_t ls_window_slice_index(int64_t ts, int64_t width_ms);

/*
 * Whether event ev is counted by windowed feature f (source, type mask,
 * category and field presence). On a match *contribution receives what
 * the event adds to its slice: 1 for count, the fixed-point units for sum
 * (a match with 0 units adds nothing), ts + 1 for last_seen (so ts 0 is not
 * confused with an empty slice), the single bitmap bit for distinct.
 */
bool ls_feature_match(const ls_feature_spec *f, const ls_event *ev,
		      uint64_t *contribution);

/*
 * Merge a contribution into a slice aggregate: saturating add for count,
 * saturating signed add for sum (v holds an int64), max for last_seen, OR
 * for distinct. A slice whose aggregate becomes 0 is empty.
 */
uint64_t ls_window_add(ls_feature_agg agg, uint64_t v, uint64_t contribution);

/*
 * First position in the ascending slices s[0..n) whose k >= k, so n when
 * every slice is below k.
 */
size_t ls_window_lower_bound(const ls_window_slice *s, size_t n, int64_t k);

/*
 * Value of window `window` of windowed feature f at reference time T >= 0
 * from the ascending slices s[0..n) of its ring (slices outside the window
 * at T are skipped, so s may hold more than the window).
 */
double ls_window_value(const ls_feature_info *f, size_t window,
		       const ls_window_slice *s, size_t n, int64_t T);

/*
 * ls_window_value with top = ls_window_slice_index(T, width of the window)
 * given by the caller, who knows its ring's width_ms (the same width) and
 * can skip the division when the ring is empty: top is not read when
 * n == 0. Same value, bit for bit.
 */
double ls_window_value_at(const ls_feature_info *f, size_t window,
			  const ls_window_slice *s, size_t n, int64_t T,
			  int64_t top);

/* Linear-counting estimate for a distinct bitmap, as documented above. */
double ls_window_distinct_estimate(uint64_t bitmap);

#endif
