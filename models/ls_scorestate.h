/*
 * ls_scorestate.h - what a lead remembers about each scoring model: whether
 * its label was learned, and what was last published for it.
 *
 * What: an ls_scorestate is a small fixed-size value (no heap) holding, per
 * model, the lead's label state and its last published tier, ScoreChange
 * version and score, plus the event time of the lead's first event seen by
 * scoring. The pipeline keeps it in the lead's ext bytes (ls_lead_set_ext,
 * ls_lead.h), so it is committed to Redis in the same write as the lead
 * and a crash cannot separate a lead's events from its labels. Also here:
 * the rules that read it (which label to learn, when the timeout negative
 * is due, which label an outcome gives, read-time score decay). Nothing
 * here does I/O or reads a clock: times are passed in.
 *
 * Records. Up to LS_SCORESTATE_MAX_MODELS, one per model, named by
 * ls_scorestate_key(model name): a lead's record follows the model's name
 * across restarts and config reloads (a renamed model starts afresh), and
 * the record of a model removed from the config is dropped with
 * ls_scorestate_retain(). m[0..n) is in no
 * particular order (creation order; decode gives key order); a pointer
 * from ls_scorestate_get() stays valid until ls_scorestate_retain(),
 * ls_scorestate_init() or ls_scorestate_decode() on the same state.
 *
 * Labels. A lead is one training example per model: it is learned once,
 * from the first label it gets (LS_LABEL_POSITIVE / NEGATIVE from an
 * outcome, or LS_LABEL_TIMEOUT, learned as a negative, when label_timeout
 * passes first). The one exception is a conversion after the timeout
 * negative: a late positive is learned too, since the negative was a guess
 * and the positive is the truth. A second outcome (WON after CONVERTED) is
 * not a new example. See ls_scorestate_accept_label().
 *
 * Encoding (ls_scorestate_encode), integers LEB128 varints unless noted:
 *   u8 version (1); u8 flags (bit 0: has first_ts); [zigzag first_ts]
 *   n records (<= LS_SCORESTATE_MAX_MODELS), then per record, by ascending
 *   key (no two equal):
 *     u32 LE key, u8 label (ls_label_state), u8 tier + 1 (0 = none,
 *     1..LS_TIERS_MAX), version, u8 tag then the score: tag 0 = none (NaN,
 *     nothing follows), tag 1 = u64 LE IEEE-754 bits of a score in [0,1]
 *     (+0.0 for zero; -0.0 is written as +0.0)
 * The empty state (first_ts -1, no records) encodes to 0 bytes, so a lead
 * without scoring state pays nothing in its blob, and the empty state has
 * no other encoding. The encoding is canonical: decoding and encoding
 * again gives the same bytes. A lead known to one model, with a score and
 * a small version, takes 25 bytes (epoch-ms first_ts: 6 of them; a
 * version from a replay epoch adds 4-5 more, see
 * ls_scorestate_next_version);
 * LS_SCORESTATE_ENCODED_MAX at most.
 *
 * Errors: functions returning int return an ls_scorestate_result (negative
 * on error; ls_scorestate_result_str() names it). ls_scorestate_decode() also
 * writes what is wrong at which byte offset to err. Nothing asserts on
 * input; decode never reads outside the buffer it is given.
 *
 * Thread-safety: no globals; a state is a plain value, used by one thread
 * at a time (or read by many).
 */
#ifndef LS_SCORESTATE_H
#define LS_SCORESTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_eval.h" /* LS_TIERS_MAX: tiers are ls_tiers indices */

#define LS_SCORESTATE_VERSION 1
#define LS_SCORESTATE_MAX_MODELS 8
/* The largest encoding: 3 + 10 header bytes, 25 per record. */
#define LS_SCORESTATE_ENCODED_MAX (13 + 25 * LS_SCORESTATE_MAX_MODELS)

typedef enum ls_scorestate_result {
	LS_SCORESTATE_OK = 0,
	LS_SCORESTATE_ERR_INVALID = -1, /* bad argument or state */
	LS_SCORESTATE_ERR_CORRUPT = -2, /* bytes truncated, damaged or unknown
					  version */
	LS_SCORESTATE_ERR_SPACE = -3,   /* output buffer too small */
} ls_scorestate_result;

typedef enum ls_label_state {
	LS_LABEL_NONE = 0,
	LS_LABEL_POSITIVE = 1,
	LS_LABEL_NEGATIVE = 2,
	LS_LABEL_TIMEOUT = 3, /* learned as negative because label_timeout
				 passed */
} ls_label_state;

typedef struct ls_scorestate_model {
	uint32_t key;     /* ls_scorestate_key(model name) */
	uint8_t label;    /* ls_label_state */
	int8_t tier;      /* last published tier, -1 none; < LS_TIERS_MAX */
	uint64_t version; /* last published ScoreChange version, 0 none */
	double score;     /* last published score in [0,1], NaN none */
} ls_scorestate_model;

typedef struct ls_scorestate {
	int64_t first_ts; /* event time of the lead's first event seen by
			     scoring, >= 0, or -1 none; label_timeout counts
			     from it */
	size_t n;
	ls_scorestate_model m[LS_SCORESTATE_MAX_MODELS];
} ls_scorestate;

/* Name of a result, e.g. "state corrupt". Never NULL. */
const char *ls_scorestate_result_str(int rc);

/* The low 32 bits of XXH3_64bits(model_name) (NULL hashes as ""). */
uint32_t ls_scorestate_key(const char *model_name);

/* The empty state: first_ts -1, no records. */
void ls_scorestate_init(ls_scorestate *s);

/*
 * The record of model key. When there is none and create is true, a new
 * one (label NONE, tier -1, version 0, score NaN) is added. NULL when
 * there is none and !create, when the state is full, or s is NULL.
 */
ls_scorestate_model *ls_scorestate_get(ls_scorestate *s, uint32_t key,
				     bool create);

/*
 * The version of a lead's next ScoreChange for a model: above prev (the
 * one the lead holds: committed, or published earlier in this epoch) and
 * at least epoch << 32, so that whatever is
 * published in a later replay epoch (ls_store_next_epoch) is above
 * everything published in an earlier one, committed or not, as long as
 * fewer than 2^32 versions of one lead and model are published in one
 * epoch. Epoch 0 (none taken) adds no floor. Even the first epoch has
 * one: versions published before epochs existed (an older build killed
 * before its commit) are below it. A version is therefore a 5-6 byte
 * varint where a small one was 1 byte.
 */
uint64_t ls_scorestate_next_version(uint64_t prev, uint64_t epoch);

/*
 * Drop the records whose key is not in keys[0..n) (a model removed from
 * the config); the others keep their order. n 0 drops every record; keys
 * NULL with n > 0 is an error and changes nothing. first_ts is kept.
 */
void ls_scorestate_retain(ls_scorestate *s, const uint32_t *keys, size_t n);

/*
 * Exact size of s's encoding (0 for the empty state). Meaningful for a
 * state ls_scorestate_encode() accepts.
 */
size_t ls_scorestate_encoded_size(const ls_scorestate *s);

/*
 * Write s to buf[0..cap) (buf may be NULL when cap is 0) and its size to
 * *len (0 for the empty state). Returns LS_SCORESTATE_OK (0), like
 * ls_eval_encode(); LS_SCORESTATE_ERR_INVALID when s or len is NULL or s
 * is not encodable: first_ts < -1, n > LS_SCORESTATE_MAX_MODELS, two
 * records with one key, a label > 3, a tier outside -1..LS_TIERS_MAX-1, a
 * score neither NaN nor in [0,1]; LS_SCORESTATE_ERR_SPACE when cap is
 * smaller than ls_scorestate_encoded_size(s) (LS_SCORESTATE_ENCODED_MAX
 * always fits). On error *len is 0 and buf holds nothing useful.
 */
int ls_scorestate_encode(const ls_scorestate *s, uint8_t *buf, size_t cap,
			size_t *len);

/*
 * Read data[0..len) into *out; len 0 gives the empty state. Everything is
 * validated: version, flags, first_ts >= 0 when present, n, keys strictly
 * ascending, label <= 3, tier + 1 <= LS_TIERS_MAX, score tag 0 or 1 and a
 * tag 1 score finite, in [0,1] and not -0.0, minimal varints, no trailing
 * bytes, and no non-empty encoding of the empty state. On failure *out is
 * the empty state, LS_SCORESTATE_ERR_CORRUPT is returned and err says what
 * is wrong at which byte offset; LS_SCORESTATE_ERR_INVALID when out is NULL
 * or data is NULL with len > 0.
 */
int ls_scorestate_decode(const uint8_t *data, size_t len, ls_scorestate *out,
			char *err, size_t errlen);

/*
 * The label rule: whether label observed should be learned by the model
 * whose record is r, given what r already learned; when it should, r->label
 * becomes observed and true is returned, otherwise r is unchanged:
 *   r->label NONE:     POSITIVE, NEGATIVE or TIMEOUT is learned
 *   r->label TIMEOUT:  POSITIVE is learned (a conversion after the
 *                      timeout negative); the rest is not
 *   POSITIVE/NEGATIVE: nothing is (a lead is one example; WON after
 *                      CONVERTED is not a new one)
 * observed NONE, an out-of-range label on either side, or r NULL: false.
 */
bool ls_scorestate_accept_label(ls_scorestate_model *r, ls_label_state observed);

/*
 * Whether the timeout negative is due for r: r->label NONE,
 * s->first_ts >= 0, timeout_ms > 0 and now_ts >= first_ts + timeout_ms,
 * compared without overflow (a deadline past INT64_MAX is never reached).
 * false when s or r is NULL.
 */
bool ls_scorestate_timeout_due(const ls_scorestate *s,
			      const ls_scorestate_model *r, int64_t now_ts,
			      int64_t timeout_ms);

/*
 * Which label an outcome gives a model: POSITIVE when bit (1u << outcome)
 * is set in pos_mask, else NEGATIVE when it is set in neg_mask, else NONE
 * (also for an outcome outside 0..31).
 */
ls_label_state ls_scorestate_label_of(uint32_t pos_mask, uint32_t neg_mask,
				     int outcome);

/*
 * Read-time decay of a score toward the prior with inactivity:
 *     prior + (score - prior) * 2^(-idle_ms / half_life_ms)
 * so after one half-life the score is half way to the prior. A NaN score
 * stays NaN. Otherwise score and prior are clamped to [0,1] first, and the
 * (clamped) score is returned undecayed when half_life_ms <= 0,
 * idle_ms <= 0 or prior is NaN; the result is always in [0,1].
 */
double ls_scorestate_decay(double score, double prior, int64_t idle_ms,
			  int64_t half_life_ms);

#endif
