/*
 * leadscorectl_dlq.c - `leadscorectl dead-letters`: read the dead-letter
 * topic.
 *
 *   leadscorectl [--config PATH] dead-letters [--json] [--reason R]...
 *                [--from-beginning | --from-end | --since WHEN] [--follow]
 *                [--count N] [--timeout-ms N] [--preview N] [--summary]
 *
 * Reads kafka.topics.dead_letter with its own consumer (every partition
 * assigned, no consumer group joined, nothing committed) from the oldest
 * retained record (or --from-end, or --since a time, as `tail`), by
 * default up to the end as it was at start (--follow: on). For each
 * record it prints what the daemon's headers say (pipeline/ls_dlq.c:
 * ls.reason, ls.detail, ls.source.topic/partition/offset, and for a copy
 * cut to fit the broker ls.truncated, ls.original_size,
 * ls.original_key_size), any other header, the record's own coordinates
 * and time, the key, the value's size and a preview of its first bytes
 * (hex and printable text). Nothing in a record is trusted: a header
 * missing or garbled shows as null or as escaped text, every byte that is
 * not printable ASCII is escaped, and only bounded parts of a record are
 * shown, whatever its size. A summary (records per reason) goes to stderr
 * at the end, or alone to stdout with --summary.
 *
 * Exit codes: 0 at least one matching record, --count reached, Ctrl-C or
 * a closed stdout pipe; 1 a runtime error (configuration, the broker not
 * answering within --timeout-ms or 30 s at start, the topic missing, a
 * failed write); 2 a usage error; 3 no matching record (the topic empty
 * or everything filtered out) by the end or --timeout-ms.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ls_clock.h"
#include "ls_log.h"

#include "leadscorectl.h"
#include "leadscorectl_kafka.h"

#define DLQ_MAX_FILTERS 64
#define DLQ_DEFAULT_PREVIEW 64
#define DLQ_MAX_PREVIEW 65536
#define DLQ_KEY_SHOWN 256       /* key bytes shown */
#define DLQ_HEADER_SHOWN 1024   /* header value bytes shown */
#define DLQ_REASON_SHOWN 64     /* reason bytes kept for filters and the summary */
#define DLQ_MAX_OTHER_HEADERS 32
#define DLQ_MAX_REASONS 64      /* distinct reasons counted; the rest as "other" */

static void dlq_usage(FILE *out)
{
	fprintf(out,
"usage: leadscorectl [--config PATH] dead-letters [OPTIONS]\n"
"\n"
"Read the dead-letter topic (kafka.topics.dead_letter): for each record,\n"
"why the daemon dead-lettered it (reason, detail), where it came from\n"
"(source topic, partition, offset), its size, key and a preview of its\n"
"value (hex and printable text). By default everything retained, up to the\n"
"end as it was at start. Reads with its own consumer (all partitions\n"
"assigned, no consumer group, nothing committed). Uses kafka.brokers and\n"
"kafka.properties (security settings included) from the configuration.\n"
"\n"
"Options:\n"
"  -r, --reason R       only records with reason R (repeatable: any of them);\n"
"                       `none` matches records without an ls.reason header\n"
"  -j, --json           JSON lines instead of text\n"
"  -b, --from-beginning start at the oldest retained record (the default)\n"
"  -e, --from-end       start at the end: only new dead letters (implies\n"
"                       --follow)\n"
"  -s, --since WHEN     start at the first record stamped at or after WHEN:\n"
"                       a duration ago (30s, 15m, 2h, 7d, 500ms) or a time\n"
"                       in ms since the epoch (by the records' timestamps;\n"
"                       a broker that cannot look offsets up by time, like\n"
"                       the dev broker, is read from the start and the\n"
"                       older records skipped)\n"
"  -f, --follow         after the end, wait for new records (until Ctrl-C,\n"
"                       --count or --timeout-ms)\n"
"  -n, --count N        exit after N matching records (N >= 1)\n"
"  -w, --timeout-ms N   exit when no matching record has arrived for N ms;\n"
"                       also how long the broker may take to answer at\n"
"                       start (default 30000 for that, and no idle limit)\n"
"  -p, --preview N      value bytes to preview, 0..%d (default %d)\n"
"  -S, --summary        print only the summary, to stdout (JSON with --json)\n"
"  -c, --config PATH    configuration (also accepted before `dead-letters`)\n"
"  -h, --help           this help\n"
"\n"
"JSON fields: partition, offset, timestamp (the record's, ms since the\n"
"epoch, or null), reason, detail, source {topic, partition, offset},\n"
"key (text; bytes that are not UTF-8 escaped as \\xNN, first %d bytes),\n"
"key_size, size (value bytes), truncated (what the daemon cut to fit the\n"
"broker: \"key\", \"value\", \"key,value\", or null), original_size,\n"
"original_key_size, headers (any other header), preview_hex, preview_text\n"
"(non-printable bytes as '.'). A missing header is null; a garbled number\n"
"is shown as escaped text. Summary (JSON): {\"records\", \"matched\",\n"
"\"by_reason\": {reason: count}, \"truncated\"}.\n"
"\n"
"Text output, a block per record: TOPIC:PARTITION@OFFSET, the record's\n"
"time and reason; detail; source TOPIC:PARTITION@OFFSET; key and its size;\n"
"the value's size (and what was cut to fit, if anything); other headers;\n"
"the preview as hexdump -C lines. Without --summary the summary goes to\n"
"stderr at the end.\n"
"\n"
"Exit codes:\n"
"  0  at least one matching record; --count reached; Ctrl-C; stdout closed\n"
"  1  runtime error: configuration, broker not answering in time, topic\n"
"     missing, output failed\n"
"  2  usage error\n"
"  3  no matching record by the end (or by --timeout-ms)\n"
"\n"
"Examples:\n"
"  leadscorectl dead-letters --summary           how many, and why\n"
"  leadscorectl dead-letters --reason malformed --preview 256\n"
"  leadscorectl dead-letters --from-end          watch new dead letters\n",
		DLQ_MAX_PREVIEW, DLQ_DEFAULT_PREVIEW, DLQ_KEY_SHOWN);
}

typedef struct dlq_opts {
	const char *config;
	const char *reasons[DLQ_MAX_FILTERS];
	size_t n_reasons;
	bool json, summary_only;
	ctl_read_opts read;
	int64_t preview;
} dlq_opts;

/* 0, or 2 (usage) with a message; 1 (not an error) after --help. */
static int dlq_parse(int argc, char **argv, dlq_opts *o)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		CTL_READ_LONG_OPTIONS,
		{ "from-end", no_argument, NULL, 'e' },
		{ "follow", no_argument, NULL, 'f' },
		{ "preview", required_argument, NULL, 'p' },
		{ "summary", no_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "r:jbes:fn:w:p:Sc:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			if (o->n_reasons == DLQ_MAX_FILTERS) {
				fprintf(stderr, "leadscorectl: dead-letters: at most %d --reason filters\n",
					DLQ_MAX_FILTERS);
				return 2;
			}
			o->reasons[o->n_reasons++] = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'f':
			o->read.follow = true;
			break;
		case 'p':
			if (ctl_parse_nonneg(optarg, DLQ_MAX_PREVIEW, &o->preview) != 0) {
				fprintf(stderr, "leadscorectl: dead-letters: --preview: '%s' is not a number "
						"of bytes from 0 to %d\n", optarg, DLQ_MAX_PREVIEW);
				return 2;
			}
			break;
		case 'S':
			o->summary_only = true;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'h':
			dlq_usage(stdout);
			return 1;
		default:
			if (ctl_read_option("dead-letters", opt, optarg, &o->read) != 0)
				return 2;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leadscorectl: dead-letters: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return 2;
	}
	return 0;
}

/* A header's value: where it is in the record (borrowed), or absent. */
typedef struct dlq_value {
	const char *p;
	size_t n;
	bool present;
} dlq_value;

/* What a dead letter's headers say. */
typedef struct dlq_headers {
	dlq_value reason, detail, topic, partition, offset, truncated, original_size,
		original_key_size;
	/* any other headers, in record order */
	const char *other_name[DLQ_MAX_OTHER_HEADERS];
	dlq_value other[DLQ_MAX_OTHER_HEADERS];
	size_t n_other, n_other_left_out;
} dlq_headers;

static void dlq_read_headers(const rd_kafka_message_t *m, dlq_headers *h)
{
	memset(h, 0, sizeof *h);
	rd_kafka_headers_t *hdrs = NULL;
	if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL)
		return;
	static const char *const known[] = {
		"ls.reason", "ls.detail", "ls.source.topic", "ls.source.partition",
		"ls.source.offset", "ls.truncated", "ls.original_size", "ls.original_key_size",
	};
	dlq_value *slot[] = {
		&h->reason, &h->detail, &h->topic, &h->partition,
		&h->offset, &h->truncated, &h->original_size, &h->original_key_size,
	};
	const char *name;
	const void *val;
	size_t size;
	for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) ==
			   RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
		dlq_value v = { val != NULL ? val : "", val != NULL ? size : 0, true };
		bool found = false;
		for (size_t k = 0; k < sizeof known / sizeof known[0] && !found; k++) {
			if (strcmp(name, known[k]) == 0) {
				*slot[k] = v; /* the last one wins, as librdkafka's get_last */
				found = true;
			}
		}
		if (found)
			continue;
		if (h->n_other < DLQ_MAX_OTHER_HEADERS) {
			h->other_name[h->n_other] = name;
			h->other[h->n_other++] = v;
		} else {
			h->n_other_left_out++;
		}
	}
}

/* v as a JSON integer when it is a plain decimal number, else escaped
   text; null when absent. */
static json_t *header_number(const dlq_value *v)
{
	if (!v->present)
		return json_null();
	char buf[24];
	int64_t n;
	if (v->n > 0 && v->n < sizeof buf) {
		memcpy(buf, v->p, v->n);
		buf[v->n] = '\0';
		if (ctl_parse_nonneg(buf, INT64_MAX, &n) == 0)
			return json_integer(n);
	}
	return ctl_json_text(v->p, v->n, DLQ_HEADER_SHOWN);
}

static json_t *header_text(const dlq_value *v, size_t max)
{
	return v->present ? ctl_json_text(v->p, v->n, max) : json_null();
}

/* The record's reason as the filters and the summary see it: escaped,
   bounded, "none" without the header. malloc'd; NULL when out of memory. */
static char *reason_key(const dlq_headers *h)
{
	if (!h->reason.present)
		return strdup("none");
	return ctl_escape(h->reason.p, h->reason.n, DLQ_REASON_SHOWN);
}

static int64_t record_time(const rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(m, &tt);
	return tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

static const char hexdigits[] = "0123456789abcdef";

static char printable(unsigned char c) { return c >= 0x20 && c < 0x7f ? (char)c : '.'; }

static json_t *dlq_json(const rd_kafka_message_t *m, const dlq_headers *h, size_t preview)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int64_t ts = record_time(m);
	json_object_set_new(o, "partition", json_integer(m->partition));
	json_object_set_new(o, "offset", json_integer(m->offset));
	json_object_set_new(o, "timestamp", ts >= 0 ? json_integer(ts) : json_null());
	json_object_set_new(o, "reason", header_text(&h->reason, DLQ_HEADER_SHOWN));
	json_object_set_new(o, "detail", header_text(&h->detail, DLQ_HEADER_SHOWN));
	json_t *src = json_object();
	json_object_set_new(src, "topic", header_text(&h->topic, DLQ_HEADER_SHOWN));
	json_object_set_new(src, "partition", header_number(&h->partition));
	json_object_set_new(src, "offset", header_number(&h->offset));
	json_object_set_new(o, "source", src);
	json_object_set_new(o, "key", m->key != NULL ? ctl_json_text(m->key, m->key_len, DLQ_KEY_SHOWN)
						     : json_null());
	json_object_set_new(o, "key_size", json_integer(m->key != NULL ? (json_int_t)m->key_len : 0));
	size_t vlen = m->payload != NULL ? m->len : 0;
	json_object_set_new(o, "size", json_integer((json_int_t)vlen));
	json_object_set_new(o, "truncated", header_text(&h->truncated, DLQ_HEADER_SHOWN));
	json_object_set_new(o, "original_size", header_number(&h->original_size));
	json_object_set_new(o, "original_key_size", header_number(&h->original_key_size));
	json_t *other = json_object();
	for (size_t i = 0; i < h->n_other; i++) {
		/* header names are not checked by librdkafka either */
		char *name = ctl_escape(h->other_name[i], strlen(h->other_name[i]), DLQ_REASON_SHOWN);
		if (name != NULL)
			json_object_set_new(other, name, header_text(&h->other[i], DLQ_HEADER_SHOWN));
		free(name);
	}
	if (h->n_other_left_out > 0)
		json_object_set_new(other, "...", json_integer((json_int_t)h->n_other_left_out));
	json_object_set_new(o, "headers", other);
	size_t n = vlen < preview ? vlen : preview;
	char *hex = malloc(n * 2 + 1), *text = malloc(n + 1);
	if (hex == NULL || text == NULL) {
		free(hex);
		free(text);
		json_decref(o);
		return NULL;
	}
	const unsigned char *b = m->payload;
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = hexdigits[b[i] >> 4];
		hex[2 * i + 1] = hexdigits[b[i] & 15];
		text[i] = printable(b[i]);
	}
	hex[2 * n] = '\0';
	text[n] = '\0';
	json_object_set_new(o, "preview_hex", json_string(hex));
	json_object_set_new(o, "preview_text", json_string(text));
	free(hex);
	free(text);
	return o;
}

/* A header's value as escaped text for a terminal, or "-". */
static void print_value(const char *label, const dlq_value *v)
{
	char *e = v->present ? ctl_escape(v->p, v->n, DLQ_HEADER_SHOWN) : NULL;
	printf("  %-8s %s\n", label, e != NULL ? e : "-");
	free(e);
}

static void dlq_text(const char *topic, const rd_kafka_message_t *m, const dlq_headers *h,
		     size_t preview)
{
	char t[40] = "-";
	int64_t ts = record_time(m);
	if (ts >= 0)
		ctl_format_time(ts, t, sizeof t);
	char *reason = reason_key(h);
	printf("%s:%" PRId32 "@%" PRId64 "  %s  reason=%s\n", topic, m->partition, m->offset, t,
	       reason != NULL ? reason : "?");
	free(reason);
	print_value("detail:", &h->detail);
	char *st = h->topic.present ? ctl_escape(h->topic.p, h->topic.n, DLQ_HEADER_SHOWN) : NULL;
	char *sp = h->partition.present ? ctl_escape(h->partition.p, h->partition.n, DLQ_REASON_SHOWN) : NULL;
	char *so = h->offset.present ? ctl_escape(h->offset.p, h->offset.n, DLQ_REASON_SHOWN) : NULL;
	printf("  %-8s %s:%s@%s\n", "source:", st != NULL ? st : "?", sp != NULL ? sp : "?",
	       so != NULL ? so : "?");
	free(st);
	free(sp);
	free(so);
	if (m->key != NULL) {
		char *k = ctl_escape(m->key, m->key_len, DLQ_KEY_SHOWN);
		printf("  %-8s \"%s\" (%zu bytes)\n", "key:", k != NULL ? k : "?", m->key_len);
		free(k);
	} else {
		printf("  %-8s -\n", "key:");
	}
	size_t vlen = m->payload != NULL ? m->len : 0;
	printf("  %-8s %zu bytes", "value:", vlen);
	if (h->truncated.present) {
		char *tr = ctl_escape(h->truncated.p, h->truncated.n, DLQ_REASON_SHOWN);
		char *os = h->original_size.present
				   ? ctl_escape(h->original_size.p, h->original_size.n, DLQ_REASON_SHOWN)
				   : NULL;
		printf(" (cut to fit: %s; original %s bytes)", tr != NULL ? tr : "?",
		       os != NULL ? os : "?");
		free(tr);
		free(os);
	}
	printf("\n");
	for (size_t i = 0; i < h->n_other; i++) {
		char *name = ctl_escape(h->other_name[i], strlen(h->other_name[i]), DLQ_REASON_SHOWN);
		char *v = h->other[i].present ? ctl_escape(h->other[i].p, h->other[i].n, DLQ_HEADER_SHOWN)
					      : NULL;
		printf("  header   %s: %s\n", name != NULL ? name : "?", v != NULL ? v : "");
		free(name);
		free(v);
	}
	if (h->n_other_left_out > 0)
		printf("  header   ... %zu more\n", h->n_other_left_out);
	/* hexdump -C style, 16 bytes a line */
	const unsigned char *b = m->payload;
	size_t n = vlen < preview ? vlen : preview;
	for (size_t at = 0; at < n; at += 16) {
		char hex[16 * 3 + 2], txt[17];
		size_t k = 0;
		for (size_t i = 0; i < 16; i++) {
			if (i == 8)
				hex[k++] = ' ';
			if (at + i < n) {
				hex[k++] = hexdigits[b[at + i] >> 4];
				hex[k++] = hexdigits[b[at + i] & 15];
			} else {
				hex[k++] = ' ';
				hex[k++] = ' ';
			}
			hex[k++] = ' ';
			txt[i] = at + i < n ? printable(b[at + i]) : '\0';
		}
		hex[k] = '\0';
		txt[16] = '\0';
		printf("  %08zx  %s |%s|\n", at, hex, txt);
	}
	if (n < vlen)
		printf("  ... %zu more bytes\n", vlen - n);
	printf("\n");
}

/* Records per reason, in the order first seen. */
typedef struct dlq_summary {
	char *reason[DLQ_MAX_REASONS];
	uint64_t count[DLQ_MAX_REASONS];
	size_t n;
	uint64_t other;     /* records of reasons past DLQ_MAX_REASONS */
	uint64_t read, matched, truncated;
} dlq_summary;

static void summary_add(dlq_summary *s, char *reason)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->reason[i], reason) == 0) {
			s->count[i]++;
			free(reason);
			return;
		}
	}
	if (s->n == DLQ_MAX_REASONS) {
		s->other++;
		free(reason);
		return;
	}
	s->reason[s->n] = reason;
	s->count[s->n++] = 1;
}

static void summary_free(dlq_summary *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->reason[i]);
}

static void summary_print(const dlq_summary *s, FILE *out, bool json)
{
	if (json) {
		json_t *o = json_object(), *by = json_object();
		for (size_t i = 0; i < s->n; i++)
			json_object_set_new(by, s->reason[i], json_integer((json_int_t)s->count[i]));
		if (s->other > 0)
			json_object_set_new(by, "other", json_integer((json_int_t)s->other));
		json_object_set_new(o, "records", json_integer((json_int_t)s->read));
		json_object_set_new(o, "matched", json_integer((json_int_t)s->matched));
		json_object_set_new(o, "truncated", json_integer((json_int_t)s->truncated));
		json_object_set_new(o, "by_reason", by);
		char *txt = json_dumps(o, JSON_SORT_KEYS);
		json_decref(o);
		if (txt != NULL)
			fprintf(out, "%s\n", txt);
		free(txt);
		return;
	}
	fprintf(out, "%s%" PRIu64 " dead letter(s) matched of %" PRIu64 " read",
		out == stderr ? "leadscorectl: dead-letters: " : "", s->matched, s->read);
	for (size_t i = 0; i < s->n; i++)
		fprintf(out, "%s %s %" PRIu64, i == 0 ? ":" : ",", s->reason[i], s->count[i]);
	if (s->other > 0)
		fprintf(out, ", other %" PRIu64, s->other);
	if (s->truncated > 0)
		fprintf(out, " (%" PRIu64 " cut to fit the broker)", s->truncated);
	fprintf(out, "\n");
}

static bool reason_matches(const dlq_opts *o, const char *reason)
{
	if (o->n_reasons == 0)
		return true;
	for (size_t i = 0; i < o->n_reasons; i++)
		if (strcmp(o->reasons[i], reason) == 0)
			return true;
	return false;
}

/* What the record callback needs. */
typedef struct dlq_state {
	const dlq_opts *o;
	const char *topic;
	dlq_summary sum;
} dlq_state;

/* ctl_record_fn: read the headers, filter, count and print one record. */
static int dlq_record(void *ud, const rd_kafka_message_t *m)
{
	dlq_state *ds = ud;
	const dlq_opts *o = ds->o;
	ds->sum.read++;
	dlq_headers h;
	dlq_read_headers(m, &h);
	char *reason = reason_key(&h);
	if (reason == NULL) {
		fprintf(stderr, "leadscorectl: dead-letters: out of memory\n");
		return -1;
	}
	if (!reason_matches(o, reason)) {
		free(reason);
		return 0;
	}
	ds->sum.matched++;
	if (h.truncated.present)
		ds->sum.truncated++;
	summary_add(&ds->sum, reason);
	if (o->summary_only)
		return 1;
	if (o->json) {
		json_t *j = dlq_json(m, &h, (size_t)o->preview);
		if (j == NULL || print_json(j) != 0) {
			fprintf(stderr, "leadscorectl: dead-letters: out of memory\n");
			return -1;
		}
	} else {
		dlq_text(ds->topic, m, &h, (size_t)o->preview);
	}
	int fr = ctl_flush_stdout();
	return fr == 0 ? 1 : fr > 0 ? 2 : -1;
}

int cmd_dead_letters(int argc, char **argv, const char *config_path)
{
	dlq_opts o;
	memset(&o, 0, sizeof o);
	o.config = config_path;
	o.read.from = CTL_FROM_BEGINNING;
	o.preview = DLQ_DEFAULT_PREVIEW;
	int prc = dlq_parse(argc, argv, &o);
	if (prc != 0)
		return prc == 1 ? 0 : prc;

	ls_config cfg;
	if (ctl_load_config(o.config, &cfg) != 0)
		return 1;
	/* librdkafka's notices would bury the output; warnings stay */
	ls_log_set_level(LS_LOG_WARN);
	ctl_signals_install();
	dlq_state ds = { .o = &o, .topic = cfg.kafka.topics.dead_letter };
	int rc = ctl_read(&cfg, "dead-letters", ds.topic, &o.read, dlq_record, &ds);
	if (rc != 1) {
		summary_print(&ds.sum, o.summary_only ? stdout : stderr, o.summary_only && o.json);
		if (o.summary_only && ctl_flush_stdout() < 0)
			rc = 1;
	}
	summary_free(&ds.sum);
	ls_config_free(&cfg);
	return rc;
}
