/*
 * leadscorectl_tail.c - `leadscorectl tail`: decode and follow the scores
 * topic.
 *
 *   leadscorectl [--config PATH] tail [--lead ID]... [--tier T]...
 *                [--model NAME]... [--json | --table]
 *                [--from-beginning | --since WHEN] [--count N]
 *                [--timeout-ms N]
 *
 * Reads kafka.topics.scores with its own consumer (every partition
 * assigned, no consumer group joined, no offset committed: the daemon's
 * group never notices), decodes each record as a ScoreChange with the
 * daemon's codec (plain Avro as the daemon writes it, or Confluent
 * framing) and prints those that pass the filters, as they arrive, until
 * Ctrl-C, --count or --timeout-ms ends it. The filters are exact matches;
 * a filter given several times matches any of its values, different
 * filters must all match. A record that does not decode is reported on
 * stderr with its partition and offset and skipped. It starts at the end
 * (new changes only), or --from-beginning, or --since a time (by the
 * records' timestamps; a broker that cannot look offsets up by time, like
 * the dev broker, is read from the start and older records skipped).
 *
 * Output: JSON lines (the default when stdout is not a terminal, or
 * --json), one object per ScoreChange with the record's partition and
 * offset and every field of the schema (ts as ms since the epoch,
 * previous_score, previous_tier and cause_event_id null when absent,
 * factors as [{"name", "contribution"}]); or a table (the default on a
 * terminal, or --table) with the event time, lead, model, score, tier,
 * previous score and tier, version and the largest factor, its text
 * escaped so a hostile id cannot drive the terminal.
 *
 * Exit codes: 0 --count records printed, Ctrl-C (SIGINT/SIGTERM), a
 * closed stdout pipe, or --timeout-ms after at least one record; 1 a
 * runtime error (configuration, the broker not answering within
 * --timeout-ms or 30 s at start, the topic missing, a failed write); 2 a
 * usage error; 3 --timeout-ms passed without one matching record.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ls_arena.h"
#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_log.h"

#include "leadscorectl.h"
#include "leadscorectl_kafka.h"

#define TAIL_MAX_FILTERS 64

static void tail_usage(FILE *out)
{
	fprintf(out,
"usage: leadscorectl [--config PATH] tail [OPTIONS]\n"
"\n"
"Decode and follow the scores topic (kafka.topics.scores): every ScoreChange\n"
"the daemon publishes, as it arrives. Reads with its own consumer (all\n"
"partitions assigned, no consumer group, nothing committed), so the daemon\n"
"is never disturbed. Uses kafka.brokers and kafka.properties (security\n"
"settings included) from the configuration.\n"
"\n"
"Options:\n"
"  -l, --lead ID        only this lead's changes (repeatable: any of them)\n"
"  -t, --tier T         only changes into tier T (repeatable: any of them)\n"
"  -m, --model NAME     only this model's changes (repeatable: any of them)\n"
"  -j, --json           JSON lines (the default when stdout is not a terminal)\n"
"  -T, --table          a table (the default on a terminal)\n"
"  -b, --from-beginning start at the oldest retained record, not the end\n"
"  -s, --since WHEN     start at the first record stamped at or after WHEN:\n"
"                       a duration ago (30s, 15m, 2h, 7d, 500ms) or a time\n"
"                       in ms since the epoch (by the records' timestamps;\n"
"                       a broker that cannot look offsets up by time, like\n"
"                       the dev broker, is read from the start and the\n"
"                       older records skipped)\n"
"  -n, --count N        exit after N matching records (N >= 1)\n"
"  -w, --timeout-ms N   exit when no matching record has arrived for N ms;\n"
"                       also how long the broker may take to answer at\n"
"                       start (default 30000 for that, and no idle limit)\n"
"  -c, --config PATH    configuration (also accepted before `tail`)\n"
"  -h, --help           this help\n"
"\n"
"JSON fields: partition, offset, lead_id, model, score, previous_score,\n"
"tier, previous_tier, version, ts (event time, ms since the epoch),\n"
"cause_event_id, factors [{name, contribution}]; absent optional values\n"
"are null. Table columns: event time (UTC), lead, model, score, tier,\n"
"previous score, previous tier, version, the largest factor.\n"
"A record that is not a ScoreChange is reported on stderr (topic,\n"
"partition, offset, why) and skipped.\n"
"\n"
"Exit codes:\n"
"  0  --count records printed; Ctrl-C; stdout closed (e.g. piped to head);\n"
"     or --timeout-ms passed after at least one matching record\n"
"  1  runtime error: configuration, broker not answering in time, topic\n"
"     missing, output failed\n"
"  2  usage error\n"
"  3  --timeout-ms passed without any matching record\n"
"\n"
"Examples:\n"
"  leadscorectl tail --tier hot                  watch leads turning hot\n"
"  leadscorectl tail --lead L-42 --from-beginning --timeout-ms 2000\n"
"                                                one lead's score history\n"
"  leadscorectl tail --since 15m --json | jq .score\n");
}

typedef struct tail_opts {
	const char *config;
	const char *leads[TAIL_MAX_FILTERS], *tiers[TAIL_MAX_FILTERS], *models[TAIL_MAX_FILTERS];
	size_t n_leads, n_tiers, n_models;
	int table; /* -1: by whether stdout is a terminal */
	ctl_read_opts read;
} tail_opts;

static bool any_of(const char *const *set, size_t n, const char *s)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(set[i], s) == 0)
			return true;
	return false;
}

static int add_filter(const char **set, size_t *n, const char *v, const char *what)
{
	if (*n == TAIL_MAX_FILTERS) {
		fprintf(stderr, "leadscorectl: tail: at most %d --%s filters\n",
			TAIL_MAX_FILTERS, what);
		return -1;
	}
	set[(*n)++] = v;
	return 0;
}

/* 0, or 2 (usage) with a message; 1 (not an error) after --help. */
static int tail_parse(int argc, char **argv, tail_opts *o)
{
	static const struct option opts[] = {
		{ "lead", required_argument, NULL, 'l' },
		{ "tier", required_argument, NULL, 't' },
		{ "model", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "table", no_argument, NULL, 'T' },
		CTL_READ_LONG_OPTIONS,
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "l:t:m:jTbs:n:w:c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (add_filter(o->leads, &o->n_leads, optarg, "lead") != 0)
				return 2;
			break;
		case 't':
			if (add_filter(o->tiers, &o->n_tiers, optarg, "tier") != 0)
				return 2;
			break;
		case 'm':
			if (add_filter(o->models, &o->n_models, optarg, "model") != 0)
				return 2;
			break;
		case 'j':
		case 'T':
			if (o->table >= 0 && o->table != (opt == 'T')) {
				fprintf(stderr, "leadscorectl: tail: --json and --table exclude each other\n");
				return 2;
			}
			o->table = opt == 'T';
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'h':
			tail_usage(stdout);
			return 1;
		default:
			if (ctl_read_option("tail", opt, optarg, &o->read) != 0)
				return 2;
			break;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leadscorectl: tail: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	return 0;
}

static json_t *tail_json(const rd_kafka_message_t *m, const ls_score_change *sc)
{
	json_t *o = json_object();
	json_t *fs = json_array();
	if (o == NULL || fs == NULL) {
		json_decref(o);
		json_decref(fs);
		return NULL;
	}
	for (size_t i = 0; i < sc->n_factors; i++) {
		json_t *f = json_object();
		json_object_set_new(f, "name", ctl_json_text(sc->factors[i].name,
							     strlen(sc->factors[i].name), SIZE_MAX / 8));
		json_object_set_new(f, "contribution", json_num(sc->factors[i].contribution));
		json_array_append_new(fs, f);
	}
#define TEXT(s) ((s) != NULL ? ctl_json_text((s), strlen(s), SIZE_MAX / 8) : json_null())
	json_object_set_new(o, "partition", json_integer(m->partition));
	json_object_set_new(o, "offset", json_integer(m->offset));
	json_object_set_new(o, "lead_id", TEXT(sc->lead_id));
	json_object_set_new(o, "model", TEXT(sc->model));
	json_object_set_new(o, "score", json_num(sc->score));
	json_object_set_new(o, "previous_score",
			    sc->has_previous_score ? json_num(sc->previous_score) : json_null());
	json_object_set_new(o, "tier", TEXT(sc->tier));
	json_object_set_new(o, "previous_tier", TEXT(sc->previous_tier));
	json_object_set_new(o, "version", json_integer(sc->version));
	json_object_set_new(o, "ts", json_integer(sc->ts));
	json_object_set_new(o, "cause_event_id", TEXT(sc->cause_event_id));
#undef TEXT
	json_object_set_new(o, "factors", fs);
	return o;
}

/* s escaped and cut to width columns ("~" marks a cut) into buf. */
static const char *cell(const char *s, int width, char *buf, size_t buflen)
{
	if (s == NULL)
		return "-";
	char *e = ctl_escape(s, strlen(s), buflen);
	if (e == NULL)
		return "?";
	size_t n = strlen(e);
	if (n > (size_t)width && width > 1) {
		e[width - 1] = '~';
		e[width] = '\0';
	}
	snprintf(buf, buflen, "%s", e);
	free(e);
	return buf;
}

#define TAIL_TABLE_HEADER \
	"%-24s  %-24s  %-12s  %6s  %-8s  %6s  %-8s  %8s  %s\n"

static void tail_table_header(void)
{
	printf(TAIL_TABLE_HEADER, "EVENT TIME (UTC)", "LEAD", "MODEL", "SCORE", "TIER", "PREV",
	       "PREV TIER", "VERSION", "TOP FACTOR");
}

static void tail_table_row(const ls_score_change *sc)
{
	char t[40], lead[128], model[128], tier[64], ptier[64], factor[128], fbuf[160];
	char score[32], prev[32], version[32];
	ctl_format_time(sc->ts, t, sizeof t);
	snprintf(score, sizeof score, "%.4f", sc->score);
	if (sc->has_previous_score)
		snprintf(prev, sizeof prev, "%.4f", sc->previous_score);
	else
		snprintf(prev, sizeof prev, "-");
	snprintf(version, sizeof version, "%" PRId64, sc->version);
	if (sc->n_factors > 0)
		snprintf(fbuf, sizeof fbuf, "%s %+.3f",
			 cell(sc->factors[0].name, 48, factor, sizeof factor),
			 sc->factors[0].contribution);
	else
		snprintf(fbuf, sizeof fbuf, "-");
	printf(TAIL_TABLE_HEADER, t, cell(sc->lead_id, 24, lead, sizeof lead),
	       cell(sc->model, 12, model, sizeof model), score,
	       cell(sc->tier, 8, tier, sizeof tier), prev,
	       cell(sc->previous_tier, 8, ptier, sizeof ptier), version, fbuf);
}

static bool tail_matches(const tail_opts *o, const ls_score_change *sc)
{
	return any_of(o->leads, o->n_leads, sc->lead_id) &&
	       any_of(o->tiers, o->n_tiers, sc->tier) &&
	       any_of(o->models, o->n_models, sc->model);
}

/* What the record callback needs. */
typedef struct tail_state {
	const tail_opts *o;
	const char *topic;
	ls_codec *codec;
	ls_arena arena;
	uint64_t skipped;
} tail_state;

/* ctl_record_fn: decode, filter and print one record. */
static int tail_record(void *ud, const rd_kafka_message_t *m)
{
	tail_state *ts = ud;
	ls_score_change sc;
	ls_codec_error ce;
	ls_arena_reset(&ts->arena);
	if (ls_codec_decode_score_change(ts->codec, m->payload, m->len, &ts->arena, &sc, &ce) != 0) {
		ts->skipped++;
		fprintf(stderr, "leadscorectl: tail: %s:%" PRId32 "@%" PRId64
				": not a ScoreChange (%s: %s), skipped\n",
			ts->topic, m->partition, m->offset, ls_codec_reason_name(ce.reason), ce.detail);
		return 0;
	}
	if (!tail_matches(ts->o, &sc))
		return 0;
	if (ts->o->table) {
		tail_table_row(&sc);
	} else {
		json_t *j = tail_json(m, &sc);
		if (j == NULL || print_json(j) != 0) {
			fprintf(stderr, "leadscorectl: tail: out of memory\n");
			return -1;
		}
	}
	int fr = ctl_flush_stdout();
	return fr == 0 ? 1 : fr > 0 ? 2 : -1;
}

int cmd_tail(int argc, char **argv, const char *config_path)
{
	tail_opts o;
	memset(&o, 0, sizeof o);
	o.config = config_path;
	o.table = -1;
	o.read.from = CTL_FROM_END;
	o.read.follow = true;
	int prc = tail_parse(argc, argv, &o);
	if (prc != 0)
		return prc == 1 ? 0 : prc;
	if (o.table < 0)
		o.table = isatty(STDOUT_FILENO) ? 1 : 0;

	ls_config cfg;
	if (ctl_load_config(o.config, &cfg) != 0)
		return 1;
	/* librdkafka's notices would bury the output; warnings stay */
	ls_log_set_level(LS_LOG_WARN);
	ctl_signals_install();
	char err[512];
	tail_state ts = { .o = &o, .topic = cfg.kafka.topics.scores };
	ls_arena_init(&ts.arena, 0);
	int rc = 1;
	ts.codec = ls_codec_new(err, sizeof err);
	if (ts.codec == NULL) {
		fprintf(stderr, "leadscorectl: tail: %s\n", err);
		goto out;
	}
	if (o.table) {
		tail_table_header();
		if (ctl_flush_stdout() != 0)
			goto out;
	}
	rc = ctl_read(&cfg, "tail", ts.topic, &o.read, tail_record, &ts);
	if (ts.skipped > 0)
		fprintf(stderr, "leadscorectl: tail: %" PRIu64 " record(s) skipped, not ScoreChanges\n",
			ts.skipped);
out:
	ls_codec_free(ts.codec);
	ls_arena_free(&ts.arena);
	ls_config_free(&cfg);
	return rc;
}
