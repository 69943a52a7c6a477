/*
 * ls_lead.h - the state kept per lead: feature windows, dedupe, profile,
 * and its compact binary form for Redis.
 *
 * What: a lead folds in its events one at a time with ls_lead_apply(),
 * reports its feature values with ls_lead_features(), and round-trips
 * through ls_lead_encode() / ls_lead_decode(). Nothing here reads a clock.
 *
 * Order. The state is a function of the *set* of events applied, not of
 * the order they were applied in, except for the profile maps: window
 * slices add commutatively (counts, fixed-point sums, OR-ed bitmaps, max
 * last_seen) and are evicted by the final watermark only, the watermark
 * and last_seen are maxima, the event counts are sums, and the dedupe
 * memory is chosen by event time (step 3). So the same events applied in
 * any interleaving give byte-identical blobs, and a replay after a crash,
 * whose five topics interleave differently from the first run, reproduces
 * the state exactly. What does depend on arrival order:
 *   - which events get applied at all: whether an event is too late
 *     depends on the watermark when it arrives (step 2), and whether a
 *     repeat is caught depends on what the memory holds then (step 3).
 *     With no too-late events and no repeats, the order cannot matter.
 *   - the profile maps (last applied wins; new keys beyond the limits are
 *     dropped, so the first keys win). That is intended: profile events
 *     come from one topic, whose order within a partition is fixed, so a
 *     replay applies them in the same order as the first run.
 *   - a window sum that would leave the int64 range saturates
 *     (ls_window.h), and with contributions of both signs where it
 *     saturates depends on the order; out of reach in practice (it takes
 *     ~90 outcome values at the +-1e15 clamp in one slice). Counts only
 *     grow, so their saturation is order-free.
 *   - ls_lead_ram_bytes() (buffer capacities); it is not in the blob.
 * The ext bytes (ls_lead_set_ext) are not part of this: they are whatever
 * the caller last set, and ls_lead_apply() never touches them.
 *
 * Watermark. A lead's watermark is the greatest ts of any event applied to
 * it (any source, profile and outcome included); -1 before the first.
 * Feature values are computed at a reference time T, normally the
 * watermark (LS_LEAD_AT_WATERMARK); a caller may pass a later T (decay at
 * "now": slices age out of the windows exactly as if the watermark had
 * moved there). Slices that left a window are dropped as the watermark
 * advances, so an explicit T below the watermark sees only the slices
 * still held and may undercount: use T >= watermark.
 *
 * ls_lead_apply() decides, in this order:
 *   1. error (LS_LEAD_ERR_INVALID): ts < 0, a source or type enum out of
 *      range, a NULL event_id; nothing changes.
 *   2. too late (LS_LEAD_TOO_LATE): ts < watermark - grace_ms. Nothing
 *      changes; the caller counts it. ts == watermark - grace is on time.
 *      The grace only decides what is applied; windows do not need it
 *      small (slices add in any order, eviction follows the final
 *      watermark), so it defaults to the longest default window, 30 days:
 *      an event older than every window can still move counts and
 *      recency, nothing else. The topics of a lead are consumed without a
 *      common order, so catching up on a backlog can read one topic days
 *      ahead of another; a short grace would drop the slower topic's
 *      events.
 *   3. duplicate (LS_LEAD_DUPLICATE): the event's (ts, hash), hash =
 *      XXH3_64bits(event_id), equals that of one of the lead's remembered
 *      events. Nothing changes. A repeat is a redelivery: same event_id
 *      and same ts (the same id with another ts is another event).
 *      The lead remembers, of the events applied to it (any source) with
 *      ts >= watermark - horizon, the dedupe_k greatest in (ts, hash)
 *      order: by ts, ties broken by the unsigned 64-bit hash, where
 *      horizon = min(dedupe_horizon_ms, grace_ms). That is a function of
 *      the set of applied events, whatever order they came in. The
 *      horizon, not the grace, bounds the memory, so that a long grace
 *      does not make a lead keep dedupe_k ids (~10 blob bytes each) for
 *      a month. A dedupe_horizon_ms above grace_ms acts as grace_ms: an
 *      id older than the grace is useless, since its repeat is too late
 *      (step 2) before the memory is looked at. So a repeat is caught
 *      exactly when, as it arrives, the original is among the lead's
 *      dedupe_k newest applied events by event time (ts, then hash)
 *      within the horizon, or when it is older than the grace (too
 *      late). A repeat whose original is older than the horizon but
 *      within the grace is applied again (counted twice): the horizon is
 *      how far back redeliveries are caught, and should cover how far
 *      behind its lead's newest event a redelivered event can be. Also
 *      applied again: a repeat whose original is within the horizon but
 *      has dedupe_k newer applied events (by (ts, hash)), however recently
 *      the original arrived, and one whose original was never among the
 *      newest dedupe_k (it arrived after dedupe_k newer ones). Raising
 *      the horizon (a reload) does not bring back ids already forgotten.
 *      Distinct ids with equal ts whose 64-bit hashes collide are treated
 *      as repeats (probability ~ dedupe_k / 2^64 per event).
 *   4. applied (LS_LEAD_APPLIED): the watermark becomes max(watermark, ts)
 *      and slices that fell out of their rings are dropped; then for every
 *      windowed feature the event matches (ls_feature_match) and every one
 *      of its rings (one per distinct slice width w; N the largest slice
 *      count of the windows reading it), the event is added to slice
 *      idx(ts) if idx(ts) > idx(watermark) - N, and is a no-op for that
 *      ring otherwise (the slice is outside its windows already). Features read
 *      by a recency feature also keep last_seen = max(last_seen, ts). The
 *      event count of its source goes up by one. A profile event merges its
 *      maps into the lead's by key (last applied wins; keys it does not
 *      carry are kept; an attribute whose value is "" removes the key; a
 *      metric that is not finite is ignored). Keys longer than
 *      LS_LEAD_KEY_MAX bytes and values longer than LS_LEAD_VALUE_MAX are
 *      ignored; a new key beyond max_attributes / max_metrics is dropped
 *      (ls_lead_apply_counted() counts each by reason). These limits are
 *      what bounds the blob: see ls_lead_blob_bound().
 *   LS_LEAD_ERR_NOMEM: out of memory; the lead is unchanged (every
 *   allocation an event needs is made before any state changes).
 *
 * Feature values (ls_lead_features) are written in set order, with the
 * names ls_lead_feature_names() / ls_feature_set_value_name() give; the
 * value semantics are documented in ls_window.h.
 *
 * Blob (ls_lead_encode), all integers LEB128 varints unless noted:
 *   u8 version (2); u8 flags (bit 0: has watermark); [watermark]
 *   event count per source (5 varints, in ls_source order)
 *   n_seen (<= the events counted), then n_seen x (u64 little-endian
 *     hash, watermark - ts), strictly ascending in (ts, hash): oldest
 *     first, equal ts by ascending hash
 *   n_attributes, then n x (key length, key, value length, value), keys
 *     in strcmp order
 *   n_metrics, then n x (key length, key, u8 tag, value): tag 0 = zigzag
 *     varint of an integral value |v| <= 2^53, tag 1 = u64 LE IEEE bits
 *   n_records, then per windowed feature with state:
 *     u32 LE feature key (ls_feature_info.key)
 *     u8 flags: bit 0 last_seen present, bit 1+j ring j non-empty,
 *       bits 5-6 the aggregation (so a record of an unknown key can be
 *       walked over without a length prefix)
 *     [watermark - last_seen]
 *     per non-empty ring: n slices; then per slice ascending, its
 *     distance d: top - k for the first, k - previous - 1 after it
 *     (top = idx(watermark)), and its value. Counts share a varint with
 *     d: d*2 for a count of 1, else d*2+1 then count-2. Other values
 *     follow varint d: sum as zigzag varint, last_seen as ts - k*w,
 *     distinct as u8 popcount c then c bit positions when c <= 7, else
 *     the u64 LE bitmap.
 *   then, only when the lead has ext bytes: their length
 *     (1..LS_LEAD_EXT_MAX) and the bytes, which end the blob. A blob that
 *     ends after the records has no ext, so leads without one encode
 *     exactly as before the section existed. The decoder takes whatever
 *     follows the records as this section: a length of 0 or above the
 *     maximum, or one that does not end exactly at the end of the blob,
 *     is LS_LEAD_ERR_CORRUPT with the length's byte offset.
 * The encoding is canonical: decoding a blob and encoding the lead again
 * gives the same bytes, as long as the feature set and limits match.
 * Records are keyed by the feature key, so a blob written under another
 * feature set decodes sensibly: records of unknown keys are skipped
 * (removed or redefined features), features the blob lacks start empty.
 * With smaller limits than at encode time, the remembered events that are
 * within the horizon (step 3) and among the dedupe_k greatest (ts, hash),
 * and the first max_* profile keys are kept. The format does not depend
 * on the grace or the horizon: a blob written under any values decodes
 * under any others.
 * Versions: only version 2 is read. Version 1 (the dedupe memory as the
 * last dedupe_k applied events, with an age per entry, which depended on
 * the order of applies) is refused as LS_LEAD_ERR_CORRUPT with a reason:
 * no version 1 data was ever deployed, so there is no migration.
 *
 * Memory: a lead owns all its memory (profile strings are copied out of
 * the event); free it with ls_lead_free(). It holds no pointer to the
 * feature set, but must only be used with a set of the same layout as the
 * one it was created or decoded with (checked by fingerprint:
 * LS_LEAD_ERR_SET); to move a lead to a new set, encode it with the old
 * and decode it with the new. In RAM a lead with the default set takes
 * 184 bytes when empty, 4 bytes per ring (128) once it has a slice, then
 * 16 bytes per non-empty slice, 16 per remembered event id, its profile
 * (16 bytes per entry plus the strings) and its ext bytes;
 * ls_lead_ram_bytes() reports it.
 * Measured (test_lead): a 37-event month ~1.5-2.2 KB, a 12-event cold lead
 * ~0.6-0.7 KB, a 50-event week ~2.1 KB.
 *
 * Errors: functions return a ls_lead_result; negative values are errors
 * and ls_lead_result_str() names them. ls_lead_decode() also writes what
 * is wrong and at which byte offset to err. Nothing logs, exits or asserts
 * on input; decode never reads outside the buffer it is given.
 *
 * Thread-safety: a lead has no locks; one thread may use a lead at a time.
 * Different leads, the conf and the feature set may be used from any
 * number of threads at once (they are only read).
 */
#ifndef LS_LEAD_H
#define LS_LEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"
#include "ls_event.h"
#include "ls_window.h"

#define LS_LEAD_BLOB_VERSION 2
/* The longest default window (30 d); see step 2 above. */
#define LS_LEAD_DEFAULT_GRACE_MS (30 * LS_WINDOW_MS_DAY)
/*
 * 32 remembered ids catch repeats of a lead's 32 newest events by event
 * time; with entries pruned once they leave the dedupe horizon (1 h), a
 * lead that is not bursting keeps only a few, so the blob pays 9-12 bytes
 * (the hash and a watermark-relative ts) per event of the last hour, 32
 * at most.
 */
#define LS_LEAD_DEFAULT_DEDUPE_HORIZON_MS LS_WINDOW_MS_HOUR
#define LS_LEAD_DEFAULT_DEDUPE_K 32
#define LS_LEAD_MAX_DEDUPE_K 1024
#define LS_LEAD_DEFAULT_MAX_ATTRIBUTES 32
#define LS_LEAD_DEFAULT_MAX_METRICS 32
#define LS_LEAD_MAX_PROFILE_KEYS 1024
#define LS_LEAD_KEY_MAX 64    /* bytes, without the NUL */
#define LS_LEAD_VALUE_MAX 256 /* bytes, without the NUL */
/* Opaque bytes other modules keep in the lead's blob (see Blob above). */
#define LS_LEAD_EXT_MAX 4096 /* bytes */

/*
 * Profile entries that ls_lead_apply_counted() did not keep, by reason.
 * The rest of the event is applied: a profile is a partial update, and
 * which keys fit depends on what the lead already holds, not on the
 * record alone, so the record is not bad input as a whole. Values are
 * never truncated: a cut value would be stored as if it were true.
 */
typedef enum ls_lead_drop {
	LS_LEAD_DROP_BAD_KEY = 0,     /* empty, or longer than LS_LEAD_KEY_MAX */
	LS_LEAD_DROP_BAD_VALUE,       /* attribute value NULL or longer than
					 LS_LEAD_VALUE_MAX */
	LS_LEAD_DROP_ATTRIBUTES_FULL, /* a new key with max_attributes held */
	LS_LEAD_DROP_METRICS_FULL,    /* a new key with max_metrics held */
	LS_LEAD_DROP_NOT_FINITE,      /* a metric NaN or infinite */
	LS_LEAD_DROP__COUNT
} ls_lead_drop;

/* Name of a drop reason for metrics labels, e.g. "attributes_full". */
const char *ls_lead_drop_name(int why);

/* Pass as T to compute features at the lead's watermark (0 when none). */
#define LS_LEAD_AT_WATERMARK INT64_C(-1)

typedef enum ls_lead_result {
	LS_LEAD_APPLIED = 0,
	LS_LEAD_DUPLICATE = 1,
	LS_LEAD_TOO_LATE = 2,
	LS_LEAD_ERR_INVALID = -1, /* bad argument, conf or event */
	LS_LEAD_ERR_NOMEM = -2,
	LS_LEAD_ERR_SET = -3,     /* lead laid out for another feature set */
	LS_LEAD_ERR_CORRUPT = -4, /* blob truncated, corrupt or unknown version */
	LS_LEAD_ERR_SPACE = -5,   /* output array too small */
} ls_lead_result;

typedef struct ls_lead_conf {
	const ls_feature_set *features; /* required, not owned */
	int64_t grace_ms;               /* >= 0; older than wm - grace: too late */
	int64_t dedupe_horizon_ms;      /* >= 0; ids kept back to wm - min(this,
					   grace) */
	uint32_t dedupe_k;              /* 1..LS_LEAD_MAX_DEDUPE_K */
	uint32_t max_attributes;        /* 0..LS_LEAD_MAX_PROFILE_KEYS */
	uint32_t max_metrics;           /* 0..LS_LEAD_MAX_PROFILE_KEYS */
} ls_lead_conf;

typedef struct ls_lead ls_lead;

/* Fill conf with the defaults above for feature set set. */
void ls_lead_conf_default(ls_lead_conf *conf, const ls_feature_set *set);

/* true when conf is usable; otherwise a reason in err. */
bool ls_lead_conf_check(const ls_lead_conf *conf, char *err, size_t errlen);

/* Name of a result, e.g. "too late", "blob corrupt". Never NULL. */
const char *ls_lead_result_str(int rc);

/* An empty lead, or NULL when conf is invalid or memory runs out. */
ls_lead *ls_lead_new(const ls_lead_conf *conf);
void ls_lead_free(ls_lead *lead);

/* Fold one event in; see above for the order of decisions. */
int ls_lead_apply(ls_lead *lead, const ls_lead_conf *conf,
		  const ls_event *ev);
/*
 * The same, and when drops is not NULL, adds to drops[LS_LEAD_DROP__COUNT]
 * one per profile entry of an applied event that was not kept.
 */
int ls_lead_apply_counted(ls_lead *lead, const ls_lead_conf *conf,
			  const ls_event *ev, uint64_t *drops);

/*
 * Write every feature value at T (>= 0, or LS_LEAD_AT_WATERMARK) to
 * out[0..n). Returns the number written (conf->features->n_values), or
 * LS_LEAD_ERR_SPACE when n is smaller, or another error.
 */
int ls_lead_features(const ls_lead *lead, const ls_lead_conf *conf,
		     int64_t T, double *out, size_t n);

/*
 * Point names[0..n) at the value names, in the order ls_lead_features()
 * writes values; the strings belong to the set. Returns the count, or
 * LS_LEAD_ERR_SPACE when n is smaller. With names NULL, only returns the
 * count.
 */
int ls_lead_feature_names(const ls_feature_set *set, const char **names,
			  size_t n);

/*
 * The most bytes ls_lead_encode() can write for a lead under conf, whatever
 * events it was given: the limits bound every section that a producer can
 * grow (dedupe_k ids, max_attributes keys of LS_LEAD_KEY_MAX bytes with
 * values of LS_LEAD_VALUE_MAX, max_metrics, LS_LEAD_EXT_MAX ext bytes);
 * the feature set bounds the windows (N slices per ring). 0 without a
 * feature set.
 */
size_t ls_lead_blob_bound(const ls_lead_conf *conf);

/*
 * Replace out's contents with the lead's blob. out is the caller's
 * (ls_buf.h) and may be reused across leads.
 */
int ls_lead_encode(const ls_lead *lead, const ls_lead_conf *conf,
		   ls_buf *out);

/*
 * Build a lead from data[0..len). On success *out receives a new lead the
 * caller frees. On failure *out is NULL, a reason is written to err and
 * LS_LEAD_ERR_CORRUPT (or NOMEM / INVALID) returned.
 */
int ls_lead_decode(const ls_lead_conf *conf, const uint8_t *data, size_t len,
		   ls_lead **out, char *err, size_t errlen);

/* Accessors. */
int64_t ls_lead_watermark(const ls_lead *lead);

/*
 * A hint, no effect on any result: start loading lead's struct (deep =
 * false) or also the arrays the apply, features, scoring state and
 * encode read (deep = true: the struct should already be on its way, or
 * this waits for it). A batch loop that walks many leads in turn calls
 * it a few leads ahead (struct further ahead than deep), so the memory
 * latency of the next leads overlaps the work on this one. NULL is
 * ignored.
 */
void ls_lead_prefetch(const ls_lead *lead, bool deep); /* -1 before any event */
uint64_t ls_lead_event_count(const ls_lead *lead, ls_source source);
size_t ls_lead_n_slices(const ls_lead *lead);
size_t ls_lead_n_remembered(const ls_lead *lead);
size_t ls_lead_n_attributes(const ls_lead *lead);
/* The value of attribute key, or NULL. Valid until the lead changes. */
const char *ls_lead_attribute(const ls_lead *lead, const char *key);
/* Attribute i in key order; false when out of range. */
bool ls_lead_attribute_at(const ls_lead *lead, size_t i, const char **key,
			  const char **value);
size_t ls_lead_n_metrics(const ls_lead *lead);
bool ls_lead_metric(const ls_lead *lead, const char *key, double *value);
bool ls_lead_metric_at(const ls_lead *lead, size_t i, const char **key,
		       double *value);
/* Bytes of heap the lead holds, by capacity (allocator overhead aside). */
size_t ls_lead_ram_bytes(const ls_lead *lead);

/*
 * Extension bytes: state of other modules (per-lead model state,
 * ls_scorestate.h) that must be written to Redis atomically with the lead,
 * so it travels inside the lead's blob. The lead keeps an opaque copy;
 * ls_lead_apply() never changes it.
 *
 * Replace the lead's extension bytes with a copy of data[0..len) (len 0
 * clears them; data may then be NULL; it may point into the lead's own
 * ext). Returns LS_LEAD_APPLIED (0), or LS_LEAD_ERR_INVALID when lead is
 * NULL, len > LS_LEAD_EXT_MAX or data is NULL with len > 0, or
 * LS_LEAD_ERR_NOMEM. The lead is unchanged on error.
 */
int ls_lead_set_ext(ls_lead *lead, const uint8_t *data, size_t len);

/*
 * The extension bytes, their length in *len (len may be NULL); NULL and
 * *len = 0 when there are none. Owned by the lead, valid until the lead
 * changes.
 */
const uint8_t *ls_lead_ext(const ls_lead *lead, size_t *len);

#endif
