/*
 * ls_codec.h - Avro encoding and decoding of leadscore's Kafka records.
 *
 * Decoding turns one Kafka message value into an ls_event (models/
 * ls_event.h), or into a reason the batch loop can put on a dead-letter
 * header and count. Encoding writes our own schemas (the .avsc files in
 * schemas/); it is used by tests, the event simulator, the demo and the
 * score publisher.
 *
 * Wire format. A message is either
 *   - plain Avro binary in our reader schema for the topic's kind, or
 *   - Confluent framing: byte 0x00, a 4-byte big-endian schema id, then Avro
 *     binary in that (registered) writer schema, resolved to our reader
 *     schema by Avro schema resolution.
 * The first byte tells them apart. That is unambiguous because every input
 * schema starts with event_id, a string that must not be empty: a plain
 * record starts with the string's zigzag varint length, which is 0x00 only
 * for an empty string, and an empty event_id is rejected anyway. (So a
 * plain record with an empty event_id is read as framing and rejected as
 * unknown_schema_id or malformed; missing_event_id is reported for framed
 * records.) Output records start with lead_id or decision_id, also
 * non-empty, so the same rule holds for them.
 *
 * Robustness: any byte string may be passed to a decoder. Before Avro-C
 * sees the bytes they are walked against the writer schema, so a length or
 * count that does not fit in the buffer, an over-long varint, a bad union
 * or enum index or trailing bytes are rejected without allocating.
 *
 * Memory: decoded strings and arrays are copied into the caller's arena and
 * live until the arena is reset; the decoded structs own nothing. The codec
 * owns its Avro schemas and values. ls_buf owns its bytes.
 *
 * Errors: decoders return 0 or an ls_codec_reason and fill an
 * ls_codec_error; everything else returns 0 or -1 with a message in the
 * caller's err buffer (always NUL-terminated when errlen > 0).
 *
 * Thread-safety: none. A codec keeps reusable Avro values and a reader, so
 * use one codec per thread. Different codecs may be used concurrently.
 */
#ifndef LS_CODEC_H
#define LS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ls_arena.h"
#include "ls_buf.h"
#include "ls_event.h"

typedef struct ls_codec ls_codec;

/*
 * Why a record was rejected. The names (ls_codec_reason_name) are stable:
 * they become dead-letter headers and Prometheus label values.
 */
typedef enum ls_codec_reason {
	LS_CODEC_OK = 0,
	LS_CODEC_MALFORMED,          /* "malformed": bad Avro, truncated, trailing bytes */
	LS_CODEC_UNKNOWN_SCHEMA_ID,  /* "unknown_schema_id": framed id not registered */
	LS_CODEC_WRONG_RECORD_TYPE,  /* "wrong_record_type": framed id is another kind's */
	LS_CODEC_MISSING_EVENT_ID,   /* "missing_event_id": empty event_id */
	LS_CODEC_MISSING_LEAD_ID,    /* "missing_lead_id": empty lead_id */
	LS_CODEC_VALUE_OUT_OF_RANGE, /* "value_out_of_range": negative ts or duration,
	                                NaN/inf, sentiment outside [-1,1], unknown enum */
	LS_CODEC_OVERSIZED,          /* "oversized": longer than the max record size */
	LS_CODEC_INTERNAL,           /* "internal": out of memory or an Avro-C failure
	                                not caused by the input; retry, do not dead-letter */
	LS_CODEC_REASON__COUNT
} ls_codec_reason;

typedef struct ls_codec_error {
	ls_codec_reason reason;
	char detail[160]; /* human-readable, e.g. "truncated string at byte 12" */
} ls_codec_error;

/* Stable lower-case name of a reason ("ok" for LS_CODEC_OK); NULL if out of
 * range. */
const char *ls_codec_reason_name(ls_codec_reason r);

/* Default for ls_codec_set_max_record_size: 1 MiB. */
#define LS_CODEC_DEFAULT_MAX_RECORD ((size_t)1 << 20)

/* --- output records ------------------------------------------------------ */

typedef struct ls_factor {
	const char *name;
	double contribution;
} ls_factor;

/* Mirrors schemas/score_change.avsc. */
typedef struct ls_score_change {
	const char *lead_id;
	const char *model;
	double score;               /* 0..1 */
	bool has_previous_score;
	double previous_score;
	const char *tier;
	const char *previous_tier;  /* optional: NULL when absent */
	int64_t version;            /* >= 0, per lead and model increasing */
	int64_t ts;                 /* ms since the epoch, >= 0 */
	const char *cause_event_id; /* optional */
	size_t n_factors;
	const ls_factor *factors;
} ls_score_change;

/* Mirrors schemas/bandit_decision.avsc. */
typedef struct ls_bandit_decision {
	const char *decision_id;
	const char *campaign_id;
	const char *lead_id;
	const char *variant_id;
	double propensity;          /* 0..1 */
	int64_t ts;
	bool has_context;           /* false: context is null on the wire */
	size_t n_context;
	const ls_attribute *context;
} ls_bandit_decision;

/* --- codec --------------------------------------------------------------- */

/* Parse the embedded reader schemas. NULL with a message on failure. */
ls_codec *ls_codec_new(char *err, size_t errlen);
void ls_codec_free(ls_codec *c);

/* Records (framing included) longer than max bytes are rejected as
 * oversized; 0 restores the default. Applies to encoding too, so we never
 * produce what we would refuse to read. */
void ls_codec_set_max_record_size(ls_codec *c, size_t max);

/*
 * A writer schema registered under a Confluent schema id. file is the
 * resolved path (relative paths in the YAML resolve against the config
 * file's directory); json is the file's contents, read at load time. The
 * config (`schemas.writers`) owns both strings; ls_codec_add_writer()
 * takes id, record and json.
 */
typedef struct ls_schema_writer {
	int32_t id;
	ls_source record;
	char *file;
	char *json;
} ls_schema_writer;

/*
 * Register the writer schema behind Confluent schema id schema_id for input
 * kind `kind`. Fails (-1, message in err) when the JSON is not a valid Avro
 * schema, when it does not resolve to our reader schema for kind (Avro
 * schema resolution; reader fields the writer lacks must be optional, i.e.
 * default null), or when schema_id is already registered with a different
 * schema or kind. Registering the same schema again is a no-op.
 */
int ls_codec_add_writer(ls_codec *c, int32_t schema_id, ls_source kind,
                        const char *schema_json, char *err, size_t errlen);

/*
 * Decode one Kafka message value from a topic of kind `expected`. On 0,
 * *out is filled with strings and arrays in arena. On error, returns the
 * reason (also in err->reason, with a detail string); *out is unspecified
 * and the arena may hold partial data until its next reset. arena, out and
 * err must not be NULL; buf may be anything, including NULL with len 0.
 * Errors are checked in this order: size, framing, wire structure
 * (malformed), then values, so a truncated record with a bad enum is
 * malformed, not value_out_of_range.
 */
int ls_codec_decode(ls_codec *c, ls_source expected, const void *buf, size_t len,
                    ls_arena *arena, ls_event *out, ls_codec_error *err);

/*
 * Encode ev in our reader schema for ev->source, replacing out's contents.
 * confluent_schema_id < 0 writes plain Avro; otherwise the Confluent header
 * with that id is written first (registering the id is the caller's job).
 * The event is checked against the same rules the decoder applies, so what
 * we write we can read. 0, or -1 with a message.
 */
int ls_codec_encode_event(ls_codec *c, const ls_event *ev, int32_t confluent_schema_id,
                          ls_buf *out, char *err, size_t errlen);

/*
 * Output records. Encoders work like ls_codec_encode_event. Decoders accept
 * plain Avro or Confluent framing; a framed record's schema id is skipped,
 * not looked up, because leadscore writes these records in its own schema.
 */
int ls_codec_encode_score_change(ls_codec *c, const ls_score_change *sc,
                                 int32_t confluent_schema_id, ls_buf *out,
                                 char *err, size_t errlen);
int ls_codec_decode_score_change(ls_codec *c, const void *buf, size_t len,
                                 ls_arena *arena, ls_score_change *out,
                                 ls_codec_error *err);
int ls_codec_encode_bandit_decision(ls_codec *c, const ls_bandit_decision *bd,
                                    int32_t confluent_schema_id, ls_buf *out,
                                    char *err, size_t errlen);
int ls_codec_decode_bandit_decision(ls_codec *c, const void *buf, size_t len,
                                    ls_arena *arena, ls_bandit_decision *out,
                                    ls_codec_error *err);

#endif
