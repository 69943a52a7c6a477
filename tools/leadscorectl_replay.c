/*
 * leadscorectl_replay.c - `leadscorectl replay FILE...`: re-feed events
 * into the daemon's input topics, for backfills and incident replays.
 *
 *   leadscorectl [--config PATH] replay FILE... [--dry-run] [--json]
 *                [--format auto|jsonl|avro] [--show-rejected N] [--quiet]
 *
 * Each FILE (- is stdin) is an Avro object container file (detected by
 * its first bytes "Obj\x01"; from a pipe by its first byte 'O', which no
 * JSON line starts with; or forced with --format avro) or JSON lines
 * (--format jsonl). Every record becomes one Kafka message on the config's
 * topic for its kind (kafka.topics.email, .web, .call, .outcome,
 * .profile), key = lead_id, message timestamp = the event's ts, value =
 * plain Avro binary in leadscore's own schema for the kind (the .avsc
 * files in schemas/), which the daemon reads whatever schemas.writers
 * says: exactly what leadscore-sim writes. The producer is built from the
 * config's kafka.brokers and kafka.properties (so SASL/TLS apply), with
 * enable.idempotence=true and message.timeout.ms=30000 unless
 * kafka.properties sets them.
 *
 * JSON lines: one JSON object per line; blank lines are skipped. The
 * fields are the record's, named as in the schemas/ .avsc files:
 *   email:   event_id, lead_id, ts, type (SENT DELIVERED OPENED CLICKED
 *            REPLIED BOUNCED UNSUBSCRIBED SPAM_REPORTED), campaign_id?,
 *            variant_id?, decision_id?, url?
 *   web:     event_id, lead_id, ts, type (PAGE_VIEW FORM_SUBMIT DOWNLOAD
 *            DEMO_REQUEST), url, page_category?, duration_ms?, session_id?
 *   call:    event_id, lead_id, ts, direction (INBOUND OUTBOUND), outcome
 *            (CONNECTED NO_ANSWER VOICEMAIL BUSY MEETING_BOOKED),
 *            duration_s, sentiment?
 *   outcome: event_id, lead_id, ts, outcome (CONVERTED
 *            OPPORTUNITY_CREATED WON LOST DISQUALIFIED), value?
 *   profile: event_id, lead_id, ts, attributes {string: string},
 *            metrics {string: number}
 * (? = optional: absent or null). ts is an integer, milliseconds since
 * the epoch; enums are their symbol names; optional values are plain
 * JSON values, not Avro's {"string": ...} unions. The kind is the field
 * "source" ("email", "web", "call", "outcome", "profile") when present,
 * else inferred: direction -> call, outcome -> outcome, attributes or
 * metrics -> profile, type -> email or web by its symbol (the two enums
 * share none). So `leadscorectl tail`-style objects with "source" and a
 * record's plain fields both work.
 *
 * Avro files: the writer schema in the file's header is read; its
 * record name (EmailEvent, WebEvent, CallEvent, LeadOutcome, LeadProfile)
 * says the kind and so the topic, and it must resolve to leadscore's
 * schema for that kind (Avro schema resolution, as for schemas.writers);
 * each record is decoded through it and re-encoded. Codecs null and
 * deflate. A record is numbered 1.. in the file ("line" below).
 *
 * Rejected, reported and NOT sent (the run goes on with the next line):
 * a line that is not JSON or not an object, longer than 4 times
 * pipeline.max_record_size (at least 1 MiB), a missing or unknown field,
 * a field of the wrong type, an unknown enum symbol or kind, a value out
 * of range (negative ts or duration, sentiment outside [-1,1], NaN), an
 * empty event_id or lead_id, an encoded record over
 * pipeline.max_record_size, an id longer than pipeline.max_id_bytes, a ts
 * further ahead of now than pipeline.max_future_skew (all of which the
 * daemon would dead-letter); an Avro record that does not fit its schema
 * (with the rest of its block), a truncated or corrupt Avro file (what
 * was read before is sent). Each is printed on stderr as FILE:LINE: reason
 * (the first --show-rejected N, default 100; all are counted). A FILE that
 * cannot be opened is an error (exit 1) and the others are still replayed.
 *
 * Reasons: not_json (also duplicate keys), not_object, line_too_long,
 * unknown_kind, missing_field, unknown_field, wrong_type, bad_value,
 * future_ts, id_too_long, oversized, avro_malformed, avro_file.
 *
 * Replaying what the daemon has applied: it drops a repeated event_id only
 * within pipeline.dedupe_horizon (and the last dedupe_ids per lead), and
 * events older than the lead's watermark minus pipeline.grace as too late.
 *
 * Progress on stderr every second while records flow (records read,
 * sent, delivered, rejected, records/s; --quiet turns it off), then a
 * summary on stderr: per topic the records delivered, and rejected
 * records per reason; --json also prints it as one JSON object on stdout
 * (read, sent, delivered, failed, rejected, topics, rejected_by_reason,
 * dry_run, interrupted, seconds). --dry-run
 * validates and encodes everything and sends nothing (no broker needed).
 * Before exiting, everything produced is flushed and its delivery waited
 * for; SIGINT or SIGTERM stops reading, flushes what was produced and
 * reports (a second one stops waiting: what is undelivered then counts as
 * failed).
 *
 * Exit: 0 every record sent and delivered; 1 delivery failed for some
 * record, a file could not be opened or read, or the producer could not
 * start; 2 usage error; 3 some lines were rejected (the rest was
 * delivered); 4 stopped by a signal (what was produced was delivered).
 * When several apply: 1 before 4 before 3.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "ls_arena.h"
#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_config.h"
#include "ls_event.h"
#include "ls_kafka.h"
#include "ls_log.h"
#include "ls_settings.h"

#include "leadscorectl.h"
#include "leadscorectl_avrofile.h"

#define LINE_MIN_CAP ((size_t)1 << 20)
#define FLUSH_WAIT_MS 60000 /* after message.timeout.ms, nothing is left */
#define REPLAY_SCHEMA_ID 1  /* the file's writer schema in its own codec */

/* Why a record was rejected: the summary's keys. */
typedef enum reject_reason {
	R_NONE, /* not rejected */
	R_NOT_JSON,
	R_NOT_OBJECT,
	R_TOO_LONG,
	R_UNKNOWN_KIND,
	R_MISSING_FIELD,
	R_UNKNOWN_FIELD,
	R_WRONG_TYPE,
	R_BAD_VALUE,
	R_FUTURE_TS,
	R_ID_TOO_LONG,
	R_OVERSIZED,
	R_AVRO_MALFORMED,
	R_AVRO_FILE,
	R__COUNT
} reject_reason;

static const char *const reason_names[R__COUNT] = {
	"none",		 "not_json",	 "not_object",	"line_too_long", "unknown_kind", "missing_field",
	"unknown_field", "wrong_type",	"bad_value",	 "future_ts",	 "id_too_long",
	"oversized",	 "avro_malformed", "avro_file",
};

typedef struct replay {
	const ls_config *cfg;
	const char *topics[LS_SOURCE__COUNT];
	ls_codec *codec; /* encodes what is sent */
	ls_buf buf;
	rd_kafka_t *rk;  /* NULL for --dry-run */
	bool quiet, as_json;
	long show_rejected;
	size_t line_cap;
	/* counts */
	uint64_t read, produced, delivered, failed, rejected, rejected_shown;
	uint64_t per_topic[LS_SOURCE__COUNT];   /* delivered (dry run: valid) */
	uint64_t per_reason[R__COUNT];
	char first_failure[256];
	bool file_error;
	int64_t t0_ms, last_progress_ms;
	uint64_t last_progress_n;
} replay;

static volatile sig_atomic_t replay_stop;

/* The first signal stops reading; a second one stops the wait for
 * delivery too (what is not delivered then counts as failed). */
static void on_signal(int sig)
{
	(void)sig;
	replay_stop = replay_stop < 2 ? replay_stop + 1 : 2;
}

static void replay_usage(FILE *out)
{
	fprintf(out,
		"usage: leadscorectl [--config PATH] replay FILE... [--dry-run] [--json]\n"
		"                    [--format auto|jsonl|avro] [--show-rejected N] [--quiet]\n"
		"Re-feed events into the input topics (kafka.topics.email/web/call/outcome/\n"
		"profile) for backfills and incident replays: each record is sent as plain\n"
		"Avro in leadscore's schema, key = lead_id, message timestamp = its ts.\n"
		"\n"
		"FILE (- for stdin) is an Avro object container file (detected by its\n"
		"magic Obj\\x01; the writer schema's record name EmailEvent, WebEvent,\n"
		"CallEvent, LeadOutcome or LeadProfile picks the topic and must resolve to\n"
		"leadscore's schema; codecs null and deflate) or JSON lines: one object\n"
		"per line, blank lines skipped, with the record's fields as in\n"
		"schemas/*.avsc (ts: integer ms since the epoch; enums by symbol name;\n"
		"optional fields absent or null, plain values, not Avro JSON unions):\n"
		"  email:   event_id lead_id ts type [campaign_id variant_id decision_id url]\n"
		"  web:     event_id lead_id ts type url [page_category duration_ms session_id]\n"
		"  call:    event_id lead_id ts direction outcome duration_s [sentiment]\n"
		"  outcome: event_id lead_id ts outcome [value]\n"
		"  profile: event_id lead_id ts attributes{str:str} metrics{str:number}\n"
		"The kind is \"source\": \"email\"|\"web\"|\"call\"|\"outcome\"|\"profile\" when\n"
		"given, else inferred (direction: call; outcome: outcome; attributes or\n"
		"metrics: profile; type: email or web by its symbol).\n"
		"\n"
		"A bad line is reported as FILE:LINE: reason and NOT sent; the run goes on.\n"
		"Bad: not JSON, not an object, longer than 4 x pipeline.max_record_size\n"
		"(at least 1 MiB), a missing, unknown or mistyped field, an unknown enum\n"
		"symbol or kind, a value out of range, an empty id or one longer than\n"
		"pipeline.max_id_bytes, a record over pipeline.max_record_size, a ts ahead\n"
		"of now by more than pipeline.max_future_skew; for Avro, a record that does\n"
		"not fit its schema (its block's remaining records too) or a truncated or\n"
		"corrupt file (what came before is sent). Records are numbered 1.. in an\n"
		"Avro file. Reasons: not_json (also duplicate keys), not_object,\n"
		"line_too_long, unknown_kind, missing_field, unknown_field, wrong_type,\n"
		"bad_value, future_ts, id_too_long, oversized, avro_malformed, avro_file.\n"
		"Example line (an email event, its kind inferred from type):\n"
		"  {\"event_id\":\"e1\",\"lead_id\":\"L1\",\"ts\":1709251200000,\"type\":\"OPENED\"}\n"
		"\n"
		"The daemon drops a replayed event it has applied before only within\n"
		"pipeline.dedupe_horizon (and the last pipeline.dedupe_ids ids per lead),\n"
		"and events older than the lead's watermark minus pipeline.grace as too\n"
		"late: replay what the daemon has not applied.\n"
		"\n"
		"  --dry-run          validate and encode, send nothing (no broker needed)\n"
		"  --format F         auto (default: Avro by magic, else JSON lines; from\n"
		"                     a pipe, Avro when the first byte is 'O'), jsonl or avro\n"
		"  --json             the summary as one JSON object on stdout: read, sent,\n"
		"                     delivered, failed, rejected, topics {topic: delivered},\n"
		"                     rejected_by_reason {reason: n}, dry_run, interrupted,\n"
		"                     seconds (the text summary stays on stderr)\n"
		"  --show-rejected N  print the first N rejected lines (default 100; all\n"
		"                     are counted in the summary)\n"
		"  --quiet            no progress lines (every second on stderr)\n"
		"  -c, --config PATH  configuration (kafka.*, pipeline limits)\n"
		"  -h, --help         this text\n"
		"\n"
		"Everything produced is flushed and its delivery awaited before exit;\n"
		"SIGINT/SIGTERM stop reading, flush and report (a second one stops the\n"
		"wait: undelivered records count as failed). The producer uses\n"
		"kafka.brokers and kafka.properties, with enable.idempotence=true and\n"
		"message.timeout.ms=30000 unless kafka.properties sets them.\n"
		"\n"
		"Exit status: 0 all records delivered; 1 a delivery failed, a FILE could\n"
		"not be opened or read, or the producer did not start; 2 usage error;\n"
		"3 some lines were rejected (the others were delivered); 4 stopped by a\n"
		"signal. Several: 1 before 4 before 3.\n");
}

/* ------------------------------------------------------------ counting */

/* detail may quote the input (a parser's "near '...'", a schema name):
 * bytes that are not printable ASCII are shown as '?', so a hostile file
 * cannot put escape sequences or invalid UTF-8 on the operator's terminal. */
static void reject(replay *r, reject_reason why, const char *file, uint64_t line,
		   uint64_t n, const char *detail_in)
{
	char detail[600];
	size_t k = 0;
	for (const unsigned char *c = (const unsigned char *)detail_in;
	     *c != '\0' && k < sizeof detail - 1; c++)
		detail[k++] = *c >= 0x20 && *c < 0x7f ? (char)*c : '?';
	detail[k] = '\0';
	r->rejected += n;
	r->per_reason[why] += n;
	uint64_t shown = r->rejected_shown++;
	if (shown < (uint64_t)r->show_rejected && line == 0)
		fprintf(stderr, "leadscorectl: replay: %s: %s: %s\n", file, reason_names[why],
			detail);
	else if (shown < (uint64_t)r->show_rejected)
		fprintf(stderr, "leadscorectl: replay: %s:%" PRIu64 ": %s: %s\n", file, line,
			reason_names[why], detail);
	else if (shown == (uint64_t)r->show_rejected)
		fprintf(stderr, "leadscorectl: replay: further rejected lines are counted, "
				"not shown (--show-rejected %ld)\n", r->show_rejected);
}

static void progress(replay *r, bool force)
{
	int64_t now = ls_clock_mono_ms();
	if (r->quiet || (!force && now - r->last_progress_ms < 1000))
		return;
	double dt = (double)(now - r->last_progress_ms) / 1000.0;
	uint64_t n = r->produced + r->rejected;
	fprintf(stderr,
		"leadscorectl: replay: %" PRIu64 " records read, %" PRIu64 " sent, %" PRIu64
		" delivered, %" PRIu64 " rejected, %.0f records/s\n",
		r->read, r->produced, r->delivered, r->rejected,
		dt > 0 ? (double)(n - r->last_progress_n) / dt : 0.0);
	r->last_progress_ms = now;
	r->last_progress_n = n;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	replay *r = opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		r->delivered++;
		r->per_topic[(uintptr_t)m->_private]++;
		return;
	}
	if (r->failed++ == 0)
		snprintf(r->first_failure, sizeof r->first_failure, "%s: %s",
			 rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

/* ------------------------------------------------------------- sending */

/*
 * Check ev as the daemon will, encode it and produce it: 0, or the
 * rejection reason (with detail) when the record is not sent, or -1 when
 * producing failed for good (counted as a delivery failure).
 */
static int send_event(replay *r, const ls_event *ev, char *detail, size_t dlen)
{
	/* the daemon's id_too_long rule (ls_pipeline.c), ids by kind */
	size_t max_id = (size_t)r->cfg->pipeline.max_id_bytes, n;
	const char *name = ls_event_long_id(ev, max_id, &n);
	if (name != NULL) {
		snprintf(detail, dlen, "%s is %zu bytes (pipeline.max_id_bytes %zu)", name, n,
			 max_id);
		return R_ID_TOO_LONG;
	}
	int64_t skew = r->cfg->pipeline.max_future_skew_ms;
	int64_t now = ls_clock_wall_ms();
	if (ev->ts > now && ev->ts - now > skew) {
		snprintf(detail, dlen,
			 "ts %" PRId64 " is %" PRId64 " ms ahead of now, more than "
			 "pipeline.max_future_skew (%" PRId64 " ms)",
			 ev->ts, ev->ts - now, skew);
		return R_FUTURE_TS;
	}
	char err[256];
	ls_buf_reset(&r->buf);
	if (ls_codec_encode_event(r->codec, ev, -1, &r->buf, err, sizeof err) != 0) {
		snprintf(detail, dlen, "%s", err);
		return strncmp(err, "oversized", 9) == 0 ? R_OVERSIZED : R_BAD_VALUE;
	}
	if (r->rk == NULL) {
		r->produced++;
		r->per_topic[ev->source]++;
		return 0;
	}
	const char *topic = r->topics[ev->source];
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
			r->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(ev->lead_id, strlen(ev->lead_id)),
			RD_KAFKA_V_VALUE(r->buf.data, r->buf.len), RD_KAFKA_V_TIMESTAMP(ev->ts),
			RD_KAFKA_V_OPAQUE((void *)(uintptr_t)ev->source), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(r->rk, 50);
			continue;
		}
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (r->failed++ == 0)
				snprintf(r->first_failure, sizeof r->first_failure, "%s: %s", topic,
					 rd_kafka_err2str(e));
			return -1;
		}
		break;
	}
	r->produced++;
	rd_kafka_poll(r->rk, 0);
	return 0;
}

/* ------------------------------------------------------ JSON to event */

typedef struct field_rule {
	const char *name;
	char type;     /* s string, i integer, n number, e enum, m map */
	bool required;
} field_rule;

#define COMMON_FIELDS { "event_id", 's', true }, { "lead_id", 's', true }, { "ts", 'i', true }

static const field_rule email_fields[] = { COMMON_FIELDS, { "type", 'e', true },
	{ "campaign_id", 's', false }, { "variant_id", 's', false },
	{ "decision_id", 's', false }, { "url", 's', false }, { NULL, 0, false } };
static const field_rule web_fields[] = { COMMON_FIELDS, { "type", 'e', true },
	{ "url", 's', true }, { "page_category", 's', false },
	{ "duration_ms", 'i', false }, { "session_id", 's', false }, { NULL, 0, false } };
static const field_rule call_fields[] = { COMMON_FIELDS, { "direction", 'e', true },
	{ "outcome", 'e', true }, { "duration_s", 'i', true }, { "sentiment", 'n', false },
	{ NULL, 0, false } };
static const field_rule outcome_fields[] = { COMMON_FIELDS, { "outcome", 'e', true },
	{ "value", 'n', false }, { NULL, 0, false } };
static const field_rule profile_fields[] = { COMMON_FIELDS, { "attributes", 'm', true },
	{ "metrics", 'm', true }, { NULL, 0, false } };

static const field_rule *const kind_fields[LS_SOURCE__COUNT] = {
	email_fields, web_fields, call_fields, outcome_fields, profile_fields,
};

/* The kind of o: its "source", else inferred from its fields; -1 with
 * detail when neither works. */
static int json_kind(const json_t *o, char *detail, size_t dlen)
{
	const json_t *src = json_object_get(o, "source");
	if (src != NULL) {
		int k = json_is_string(src) ? ls_source_from_name(json_string_value(src)) : -1;
		if (k < 0)
			snprintf(detail, dlen, "\"source\" must be one of email, web, call, "
					       "outcome, profile");
		return k;
	}
	if (json_object_get(o, "direction") != NULL)
		return LS_SOURCE_CALL;
	if (json_object_get(o, "outcome") != NULL)
		return LS_SOURCE_OUTCOME;
	if (json_object_get(o, "attributes") != NULL || json_object_get(o, "metrics") != NULL)
		return LS_SOURCE_PROFILE;
	const char *t = json_string_value(json_object_get(o, "type"));
	if (t != NULL && ls_email_type_from_name(t) >= 0)
		return LS_SOURCE_EMAIL;
	if (t != NULL && ls_web_type_from_name(t) >= 0)
		return LS_SOURCE_WEB;
	snprintf(detail, dlen, "no \"source\" and the fields fit no kind (type %s%s%s)",
		 t != NULL ? "'" : "", t != NULL ? t : "absent", t != NULL ? "'" : "");
	return -1;
}

static int enum_value(ls_source kind, const char *field, const char *sym)
{
	if (kind == LS_SOURCE_EMAIL)
		return ls_email_type_from_name(sym);
	if (kind == LS_SOURCE_WEB)
		return ls_web_type_from_name(sym);
	if (kind == LS_SOURCE_CALL && strcmp(field, "direction") == 0)
		return ls_call_direction_from_name(sym);
	if (kind == LS_SOURCE_CALL)
		return ls_call_outcome_from_name(sym);
	return ls_outcome_type_from_name(sym);
}

/* Fill ev from o (strings point into o; maps into arena): 0, or a reject
 * reason with detail. */
static int json_event(const json_t *o, ls_source kind, ls_arena *arena, ls_event *ev,
		      char *detail, size_t dlen)
{
	memset(ev, 0, sizeof *ev);
	ev->source = kind;
	const field_rule *rules = kind_fields[kind];
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)o, key, v) {
		bool known = strcmp(key, "source") == 0;
		for (const field_rule *f = rules; f->name != NULL && !known; f++)
			known = strcmp(f->name, key) == 0;
		if (!known) {
			snprintf(detail, dlen, "unknown field '%.80s' for %s events", key,
				 ls_source_name(kind));
			return R_UNKNOWN_FIELD;
		}
	}
	for (const field_rule *f = rules; f->name != NULL; f++) {
		v = json_object_get(o, f->name);
		if (v == NULL || json_is_null(v)) {
			if (f->required) {
				snprintf(detail, dlen, "missing field '%s' (%s events need it)",
					 f->name, ls_source_name(kind));
				return R_MISSING_FIELD;
			}
			continue;
		}
		const char *want = NULL;
		switch (f->type) {
		case 's':
		case 'e':
			if (!json_is_string(v))
				want = "a string";
			break;
		case 'i':
			if (!json_is_integer(v))
				want = "an integer";
			break;
		case 'n':
			if (!json_is_number(v))
				want = "a number";
			break;
		case 'm':
			if (!json_is_object(v))
				want = "an object";
			break;
		}
		if (want != NULL) {
			snprintf(detail, dlen, "field '%s' must be %s", f->name, want);
			return R_WRONG_TYPE;
		}
		const char *s = json_string_value(v);
		if (f->type == 'e') {
			int e = enum_value(kind, f->name, s);
			if (e < 0) {
				snprintf(detail, dlen, "field '%s': unknown symbol '%.64s'", f->name, s);
				return R_BAD_VALUE;
			}
			if (strcmp(f->name, "direction") == 0)
				ev->u.call.direction = (ls_call_direction)e;
			else if (kind == LS_SOURCE_CALL)
				ev->u.call.outcome = (ls_call_outcome)e;
			else if (kind == LS_SOURCE_OUTCOME)
				ev->u.outcome.outcome = (ls_outcome_type)e;
			else if (kind == LS_SOURCE_EMAIL)
				ev->u.email.type = (ls_email_type)e;
			else
				ev->u.web.type = (ls_web_type)e;
			continue;
		}
		if (strcmp(f->name, "event_id") == 0)
			ev->event_id = s;
		else if (strcmp(f->name, "lead_id") == 0)
			ev->lead_id = s;
		else if (strcmp(f->name, "ts") == 0)
			ev->ts = (int64_t)json_integer_value(v);
		else if (kind == LS_SOURCE_EMAIL && strcmp(f->name, "campaign_id") == 0)
			ev->u.email.campaign_id = s;
		else if (kind == LS_SOURCE_EMAIL && strcmp(f->name, "variant_id") == 0)
			ev->u.email.variant_id = s;
		else if (kind == LS_SOURCE_EMAIL && strcmp(f->name, "decision_id") == 0)
			ev->u.email.decision_id = s;
		else if (kind == LS_SOURCE_EMAIL && strcmp(f->name, "url") == 0)
			ev->u.email.url = s;
		else if (kind == LS_SOURCE_WEB && strcmp(f->name, "url") == 0)
			ev->u.web.url = s;
		else if (strcmp(f->name, "page_category") == 0)
			ev->u.web.page_category = s;
		else if (strcmp(f->name, "session_id") == 0)
			ev->u.web.session_id = s;
		else if (strcmp(f->name, "duration_ms") == 0) {
			ev->u.web.has_duration_ms = true;
			ev->u.web.duration_ms = (int64_t)json_integer_value(v);
		} else if (strcmp(f->name, "duration_s") == 0)
			ev->u.call.duration_s = (int64_t)json_integer_value(v);
		else if (strcmp(f->name, "sentiment") == 0) {
			ev->u.call.has_sentiment = true;
			ev->u.call.sentiment = json_number_value(v);
		} else if (strcmp(f->name, "value") == 0) {
			ev->u.outcome.has_value = true;
			ev->u.outcome.value = json_number_value(v);
		} else if (f->type == 'm') {
			bool attrs = strcmp(f->name, "attributes") == 0;
			size_t n = json_object_size(v), i = 0;
			ls_attribute *a = attrs ? ls_arena_alloc(arena, (n + 1) * sizeof *a) : NULL;
			ls_metric *m = attrs ? NULL : ls_arena_alloc(arena, (n + 1) * sizeof *m);
			if (a == NULL && m == NULL) {
				snprintf(detail, dlen, "out of memory");
				return R_BAD_VALUE;
			}
			const char *mk;
			const json_t *mv;
			json_object_foreach((json_t *)v, mk, mv) {
				if (attrs ? !json_is_string(mv) : !json_is_number(mv)) {
					snprintf(detail, dlen, "%s['%.64s'] must be %s", f->name, mk,
						 attrs ? "a string" : "a number");
					return R_WRONG_TYPE;
				}
				if (attrs)
					a[i++] = (ls_attribute){ mk, json_string_value(mv) };
				else
					m[i++] = (ls_metric){ mk, json_number_value(mv) };
			}
			if (attrs) {
				ev->u.profile.attributes = a;
				ev->u.profile.n_attributes = n;
			} else {
				ev->u.profile.metrics = m;
				ev->u.profile.n_metrics = n;
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------- the files */

/*
 * The next line of f into *line (NUL-terminated, without its newline):
 * its length, -1 at EOF, or -2 when it is longer than cap (the rest of
 * it is read and dropped).
 */
static long read_line(FILE *f, char **line, size_t *size, size_t cap)
{
	size_t n = 0;
	bool too_long = false;
	int c = EOF;
	while ((c = getc_unlocked(f)) != EOF && c != '\n') {
		if (too_long)
			continue;
		if (n + 1 >= *size) {
			size_t ns = *size != 0 ? *size * 2 : 4096;
			if (ns > cap + 2)
				ns = cap + 2; /* the cap's bytes and the NUL */
			char *p = *size >= ns ? NULL : realloc(*line, ns);
			if (p == NULL) {
				too_long = true;
				continue;
			}
			*line = p;
			*size = ns;
		}
		(*line)[n++] = (char)c;
	}
	if (c == EOF && n == 0 && !too_long)
		return -1;
	if (too_long)
		return -2;
	(*line)[n] = '\0';
	return (long)n;
}

static void replay_jsonl(replay *r, FILE *f, const char *name)
{
	char *line = NULL;
	size_t size = 0;
	uint64_t no = 0;
	ls_arena arena;
	ls_arena_init(&arena, 0);
	long n;
	char detail[512];
	while (!replay_stop && (n = read_line(f, &line, &size, r->line_cap)) != -1) {
		no++;
		progress(r, false);
		if (n == -2) {
			r->read++;
			snprintf(detail, sizeof detail, "longer than %zu bytes", r->line_cap);
			reject(r, R_TOO_LONG, name, no, 1, detail);
			continue;
		}
		size_t b = 0;
		while (b < (size_t)n && (line[b] == ' ' || line[b] == '\t' || line[b] == '\r'))
			b++;
		if (b == (size_t)n)
			continue; /* blank */
		r->read++;
		json_error_t je;
		json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
		if (o == NULL) {
			snprintf(detail, sizeof detail, "column %d: %s", je.column, je.text);
			reject(r, R_NOT_JSON, name, no, 1, detail);
			continue;
		}
		int why;
		int kind = json_is_object(o) ? json_kind(o, detail, sizeof detail) : -1;
		ls_event ev;
		if (!json_is_object(o)) {
			snprintf(detail, sizeof detail, "a JSON object per line, not this");
			why = R_NOT_OBJECT;
		} else if (kind < 0) {
			why = R_UNKNOWN_KIND;
		} else {
			why = json_event(o, (ls_source)kind, &arena, &ev, detail, sizeof detail);
			if (why == 0)
				why = send_event(r, &ev, detail, sizeof detail);
		}
		if (why > 0)
			reject(r, (reject_reason)why, name, no, 1, detail);
		json_decref(o);
		ls_arena_reset(&arena);
	}
	if (ferror(f) && !replay_stop) { /* a signal interrupts a read: not an error */
		fprintf(stderr, "leadscorectl: replay: %s: read error: %s\n", name, strerror(errno));
		r->file_error = true;
	}
	ls_arena_free(&arena);
	free(line);
}

/* The kind of an Avro container's record name, -1 when none. */
static int avro_kind(const char *name)
{
	static const char *const names[LS_SOURCE__COUNT] = {
		"EmailEvent", "WebEvent", "CallEvent", "LeadOutcome", "LeadProfile",
	};
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		if (strcmp(name, names[k]) == 0)
			return k;
	return -1;
}

static void replay_avro(replay *r, FILE *f, int64_t size, const char *name)
{
	char err[400], detail[512];
	ctl_avrofile *af = ctl_avrofile_open(f, size, err, sizeof err);
	ls_codec *dec = NULL;
	uint8_t *framed = NULL;
	size_t framed_cap = 0;
	if (af == NULL) {
		r->read++;
		reject(r, R_AVRO_FILE, name, 0, 1, err);
		return;
	}
	int kind = avro_kind(ctl_avrofile_schema_name(af));
	if (kind < 0) {
		snprintf(detail, sizeof detail, "the file's records are %.100s, not one of "
				 "EmailEvent, WebEvent, CallEvent, LeadOutcome, LeadProfile",
			 ctl_avrofile_schema_name(af));
		r->read++;
		reject(r, R_AVRO_FILE, name, 0, 1, detail);
		goto out;
	}
	dec = ls_codec_new(err, sizeof err);
	if (dec == NULL) {
		fprintf(stderr, "leadscorectl: replay: %s\n", err);
		r->file_error = true;
		goto out;
	}
	ls_codec_set_max_record_size(dec, (size_t)r->cfg->pipeline.max_record_size);
	if (ls_codec_add_writer(dec, REPLAY_SCHEMA_ID, (ls_source)kind,
				ctl_avrofile_schema_json(af), err, sizeof err) != 0) {
		snprintf(detail, sizeof detail, "the file's schema does not resolve to "
				 "leadscore's %s schema: %s", ls_source_name((ls_source)kind), err);
		r->read++;
		reject(r, R_AVRO_FILE, name, 0, 1, detail);
		goto out;
	}
	ls_arena arena;
	ls_arena_init(&arena, 0);
	for (;;) {
		if (replay_stop)
			break;
		progress(r, false);
		const uint8_t *p;
		size_t len;
		uint64_t lost;
		int rc = ctl_avrofile_next(af, &p, &len, &lost, err, sizeof err);
		uint64_t no = ctl_avrofile_record_no(af);
		if (rc == 0 || (rc == -1 && replay_stop))
			break; /* the end, or a read a signal interrupted */
		if (rc < 0) {
			r->read += lost > 0 ? lost : 1;
			/* numbered from the first record lost */
			reject(r, rc == -2 ? R_AVRO_MALFORMED : R_AVRO_FILE, name,
			       lost > 0 ? no - lost + 1 : no + 1, lost > 0 ? lost : 1, err);
			if (rc == -1)
				break;
			continue;
		}
		r->read++;
		if (len + 5 > framed_cap) {
			size_t nc = (len + 5) * 2;
			uint8_t *nb = realloc(framed, nc);
			if (nb == NULL) {
				reject(r, R_OVERSIZED, name, no, 1, "out of memory");
				continue;
			}
			framed = nb;
			framed_cap = nc;
		}
		framed[0] = 0;
		framed[1] = framed[2] = framed[3] = 0;
		framed[4] = REPLAY_SCHEMA_ID;
		memcpy(framed + 5, p, len);
		ls_event ev;
		ls_codec_error ce;
		int d = ls_codec_decode(dec, (ls_source)kind, framed, len + 5, &arena, &ev, &ce);
		if (d != 0) {
			snprintf(detail, sizeof detail, "%s: %s", ls_codec_reason_name(ce.reason),
				 ce.detail);
			reject(r, d == LS_CODEC_OVERSIZED ? R_OVERSIZED : R_BAD_VALUE, name, no, 1,
			       detail);
		} else {
			int why = send_event(r, &ev, detail, sizeof detail);
			if (why > 0)
				reject(r, (reject_reason)why, name, no, 1, detail);
		}
		ls_arena_reset(&arena);
	}
	ls_arena_free(&arena);
out:
	free(framed);
	ls_codec_free(dec);
	ctl_avrofile_close(af);
}

typedef enum file_format { FMT_AUTO, FMT_JSONL, FMT_AVRO } file_format;

static void replay_file(replay *r, const char *name, file_format fmt)
{
	bool is_stdin = strcmp(name, "-") == 0;
	FILE *f = is_stdin ? stdin : fopen(name, "rb");
	if (f == NULL) {
		fprintf(stderr, "leadscorectl: replay: %s: %s\n", name, strerror(errno));
		r->file_error = true;
		return;
	}
	int64_t size = -1;
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
		size = (int64_t)st.st_size;
	if (fmt == FMT_AUTO) {
		/* A regular file: its first four bytes, then back to the start.
		 * A pipe: one byte pushed back (all that is portable); a JSON
		 * line never starts with 'O', the magic always does. */
		char m[4];
		size_t got = 0;
		int c = EOF;
		while (got < (size >= 0 ? 4u : 1u) && (c = getc(f)) != EOF)
			m[got++] = (char)c;
		if (size >= 0) {
			fmt = got == 4 && memcmp(m, CTL_AVRO_MAGIC, 4) == 0 ? FMT_AVRO : FMT_JSONL;
			if (fseek(f, 0, SEEK_SET) != 0) {
				fprintf(stderr, "leadscorectl: replay: %s: %s\n", name,
					strerror(errno));
				r->file_error = true;
				goto out;
			}
		} else {
			fmt = got == 1 && m[0] == CTL_AVRO_MAGIC[0] ? FMT_AVRO : FMT_JSONL;
			if (got == 1)
				ungetc(c, f);
		}
	}
	if (fmt == FMT_AVRO)
		replay_avro(r, f, size, name);
	else
		replay_jsonl(r, f, name);
out:
	if (!is_stdin)
		fclose(f);
}

/* ------------------------------------------------------------ summary */

static void summary(replay *r, bool dry_run, bool interrupted)
{
	double secs = (double)(ls_clock_mono_ms() - r->t0_ms) / 1000.0;
	if (r->as_json) {
		json_t *o = json_object();
		json_t *topics = json_object(), *reasons = json_object();
		for (int k = 0; k < LS_SOURCE__COUNT; k++)
			if (r->per_topic[k] > 0)
				json_object_set_new(topics, r->topics[k],
						    json_integer((json_int_t)r->per_topic[k]));
		for (int k = 0; k < R__COUNT; k++)
			if (r->per_reason[k] > 0)
				json_object_set_new(reasons, reason_names[k],
						    json_integer((json_int_t)r->per_reason[k]));
		json_object_set_new(o, "dry_run", json_boolean(dry_run));
		json_object_set_new(o, "interrupted", json_boolean(interrupted));
		json_object_set_new(o, "read", json_integer((json_int_t)r->read));
		json_object_set_new(o, "sent", json_integer((json_int_t)r->produced));
		json_object_set_new(o, "delivered", json_integer((json_int_t)r->delivered));
		json_object_set_new(o, "failed", json_integer((json_int_t)r->failed));
		json_object_set_new(o, "rejected", json_integer((json_int_t)r->rejected));
		json_object_set_new(o, "topics", topics);
		json_object_set_new(o, "rejected_by_reason", reasons);
		json_object_set_new(o, "seconds", json_real(secs));
		print_json(o);
	}
	FILE *out = stderr;
	fprintf(out, "leadscorectl: replay: %s%s: %" PRIu64 " records read, %" PRIu64 " %s, %" PRIu64
		" rejected, %" PRIu64 " delivery failures, %.1f s\n",
		dry_run ? "dry run" : "done", interrupted ? " (interrupted)" : "", r->read,
		dry_run ? r->produced : r->delivered, dry_run ? "valid" : "delivered",
		r->rejected, r->failed, secs);
	for (int k = 0; k < LS_SOURCE__COUNT; k++)
		if (r->per_topic[k] > 0)
			fprintf(out, "leadscorectl: replay:   %-24s %" PRIu64 "\n", r->topics[k],
				r->per_topic[k]);
	for (int k = 0; k < R__COUNT; k++)
		if (r->per_reason[k] > 0)
			fprintf(out, "leadscorectl: replay:   rejected %-15s %" PRIu64 "\n",
				reason_names[k], r->per_reason[k]);
	if (r->failed > 0)
		fprintf(out, "leadscorectl: replay: first delivery failure: %s\n",
			r->first_failure);
}

/* ------------------------------------------------------------ command */

static bool has_property(const ls_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++)
		if (strcmp(cfg->kafka.properties[i].key, key) == 0)
			return true;
	return false;
}

static rd_kafka_t *make_producer(const ls_config *cfg, replay *r)
{
	char err[512];
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, false, err, sizeof err);
	if (conf == NULL) {
		fprintf(stderr, "leadscorectl: replay: kafka: %s\n", err);
		return NULL;
	}
	static const char *const defaults[][2] = {
		{ "enable.idempotence", "true" },
		{ "message.timeout.ms", "30000" },
		{ "linger.ms", "20" },
		{ "client.id", "leadscorectl-replay" },
	};
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		if (has_property(cfg, defaults[i][0]))
			continue;
		if (ls_kafka_conf_set(conf, defaults[i][0], defaults[i][1], err, sizeof err) !=
		    RD_KAFKA_CONF_OK) {
			fprintf(stderr, "leadscorectl: replay: kafka: %s\n", err);
			rd_kafka_conf_destroy(conf);
			return NULL;
		}
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, r);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL) {
		fprintf(stderr, "leadscorectl: replay: cannot create the producer: %s\n", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

int cmd_replay(int argc, char **argv, const char *config_path)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "format", required_argument, NULL, 'f' },
		{ "show-rejected", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool dry_run = false, quiet = false, as_json = false;
	long show = 100;
	file_format fmt = FMT_AUTO;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			dry_run = true;
			break;
		case 'j':
			as_json = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'f':
			if (strcmp(optarg, "auto") == 0) {
				fmt = FMT_AUTO;
			} else if (strcmp(optarg, "jsonl") == 0) {
				fmt = FMT_JSONL;
			} else if (strcmp(optarg, "avro") == 0) {
				fmt = FMT_AVRO;
			} else {
				fprintf(stderr, "leadscorectl: replay: --format: auto, jsonl or avro, "
						"not '%s'\n", optarg);
				return 2;
			}
			break;
		case 's': {
			char *end;
			show = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || show < 0) {
				fprintf(stderr, "leadscorectl: replay: --show-rejected: expected a "
						"count >= 0, got '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'c':
			config_path = optarg;
			break;
		case 'h':
			replay_usage(stdout);
			return 0;
		default:
			replay_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "leadscorectl: replay: no FILE (- for stdin)\n");
		replay_usage(stderr);
		return 2;
	}
	ls_config cfg;
	if (ctl_load_config(config_path, &cfg) != 0)
		return 1;
	/* librdkafka's notices would bury the progress; warnings stay */
	ls_log_set_level(LS_LOG_WARN);
	static replay r; /* the delivery callback's opaque: one per process */
	memset(&r, 0, sizeof r);
	r.cfg = &cfg;
	r.quiet = quiet;
	r.as_json = as_json;
	r.show_rejected = show;
	const char *topics[LS_SOURCE__COUNT] = { cfg.kafka.topics.email, cfg.kafka.topics.web,
						  cfg.kafka.topics.call, cfg.kafka.topics.outcome,
						  cfg.kafka.topics.profile };
	memcpy(r.topics, topics, sizeof topics);
	size_t max_rec = (size_t)cfg.pipeline.max_record_size;
	r.line_cap = max_rec * 4 > LINE_MIN_CAP ? max_rec * 4 : LINE_MIN_CAP;
	char err[512];
	int rc = 1;
	r.codec = ls_codec_new(err, sizeof err);
	if (r.codec == NULL) {
		fprintf(stderr, "leadscorectl: replay: %s\n", err);
		goto out;
	}
	ls_codec_set_max_record_size(r.codec, max_rec);
	if (!dry_run && (r.rk = make_producer(&cfg, &r)) == NULL)
		goto out;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r.t0_ms = r.last_progress_ms = ls_clock_mono_ms();
	for (int i = optind; i < argc && !replay_stop; i++)
		replay_file(&r, argv[i], fmt);
	bool interrupted = replay_stop != 0;
	if (r.rk != NULL) {
		/* Delivery of everything produced, also after a signal: poll
		 * until the queue is empty (message.timeout.ms bounds it). */
		int64_t deadline = ls_clock_mono_ms() + FLUSH_WAIT_MS;
		while (rd_kafka_outq_len(r.rk) > 0 && ls_clock_mono_ms() < deadline &&
		       replay_stop < 2) {
			rd_kafka_flush(r.rk, 500);
			progress(&r, false);
		}
		if (rd_kafka_outq_len(r.rk) > 0) {
			/* not delivered: counted as failed, and dropped so that
			 * rd_kafka_destroy() does not wait for them */
			rd_kafka_purge(r.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
			uint64_t left = r.produced - r.delivered - r.failed;
			if (r.failed == 0)
				snprintf(r.first_failure, sizeof r.first_failure,
					 "%" PRIu64 " records not delivered (%s)", left,
					 replay_stop >= 2 ? "a second signal stopped the wait"
							  : "still queued after the wait");
			r.failed += left;
		}
	}
	summary(&r, dry_run, interrupted);
	if (r.failed > 0 || r.file_error)
		rc = 1;
	else if (interrupted)
		rc = 4;
	else if (r.rejected > 0)
		rc = 3;
	else
		rc = 0;
out:
	if (r.rk != NULL)
		rd_kafka_destroy(r.rk);
	ls_buf_free(&r.buf);
	ls_codec_free(r.codec);
	ls_config_free(&cfg);
	return rc;
}
