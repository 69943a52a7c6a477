/*
 * sim_main.c - leadscore-sim's command line, reports and main(): which
 * mode runs (the generator, simulator.c, or --feedback, sim_feedback.c),
 * with what options, and the summary it prints.
 *
 * Apart from the modes because both share it: one option table that
 * knows which options belong to which mode, one producer, one stdout
 * summary line whose hash tests compare across runs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_log.h"
#include "ls_rng.h"
#include "sim.h"

/* -------------------------------------------------------------- options */

static void sim_usage(FILE *f)
{
	fprintf(f,
		"usage: leadscore-sim [options]\n"
		"Generate a seeded, reproducible stream of lead events (email, web, call,\n"
		"profile) and outcomes decided by a hidden conversion model; write plain\n"
		"Avro to Kafka, key = lead_id, in event-time order.\n"
		"\n"
		"  --leads N          leads to simulate (default 2000, at most %d)\n"
		"  --days D           simulated days (default 30, at most %d)\n"
		"  --start T          first simulated instant: ms since the epoch or\n"
		"                     YYYY-MM-DD[THH:MM:SS[Z]] UTC (default: the current\n"
		"                     hour minus D days)\n"
		"  --seed S           random seed (default 1); same seed, same bytes\n"
		"  --brokers B        Kafka bootstrap servers (required unless --dry-run)\n"
		"  --topic-prefix P   topics P{email,web,call,outcome,profile} (default leads.)\n"
		"  --rate R           send R events/s in real time, never before an\n"
		"                     event's ts (default: as fast as possible)\n"
		"  --negatives MODE   lost: emit LOST/DISQUALIFIED for non-converting leads\n"
		"                     (default); none: emit nothing for them\n"
		"  --nonlinear        add non-linear terms to the hidden model: an inverted\n"
		"                     U in page_views_30d (10 %% of leads are heavy browsers,\n"
		"                     bots or researchers, on its far side) and a step at\n"
		"                     pricing_views_7d >= 3; --print-model shows them\n"
		"  --truth FILE       write one TSV row per decided lead: lead_id, label,\n"
		"                     p_hidden (at label time), label_ts, outcome\n"
		"  --dry-run          encode everything but send nothing\n"
		"  --print-model      print the hidden model's weights and exit\n"
		"  --help             this text\n"
		"\n"
		"Bandit feedback (instead of leads; --leads, --days, --start and\n"
		"--negatives do not apply; --seed, --brokers, --topic-prefix, --rate,\n"
		"--truth and --dry-run do):\n"
		"  --feedback FILE    read decisions (- for stdin), one per line:\n"
		"                     decision_id TAB lead_id TAB campaign_id TAB variant_id\n"
		"                     [TAB ts_ms of the send, default now]; blank and #\n"
		"                     lines skipped, a bad line stops the run (exit 2)\n"
		"                     before anything is sent. Each decision gets email\n"
		"                     events carrying its campaign_id, variant_id and\n"
		"                     decision_id, keyed by lead_id: SENT at ts_ms, then\n"
		"                     OPENED, CLICKED only after an open and REPLIED only\n"
		"                     after a click, drawn with the variant's rates; all\n"
		"                     sent in event-time order once the input is read\n"
		"  --variant-rates S  true rates per variant, absolute per decision:\n"
		"                     'A=0.30/0.10/0.02,B=...' is P(open)/P(click)/P(reply)\n"
		"                     with reply <= click <= open; a key CAMPAIGN:VARIANT\n"
		"                     applies to one campaign and wins over VARIANT\n"
		"  --variant-default O/C/R  rates of variants not in --variant-rates\n"
		"                     (default: such a variant is a bad line)\n"
		"  --feedback-no-sent no SENT events (decisions never activated)\n"
		"  --feedback-max-delay D  every event within D of its send: a number\n"
		"                     and s, m, h or d, 1m..30d (default 48h). OPENED is\n"
		"                     1 min + exponential(mean 4 h) after the send, at most\n"
		"                     D/2; CLICKED 5 s-10 min after the open (at most D/8);\n"
		"                     REPLIED 6 min-24 h after the click (at most 3D/8)\n"
		"  --reward-weights W a decision's reward is the largest weight of its\n"
		"                     events (default 'OPENED=0,CLICKED=1,REPLIED=1';\n"
		"                     unnamed types weigh 0; no event: 0)\n"
		"  With --truth FILE: one TSV row per decision in decision_id order:\n"
		"  decision_id, variant_id, expected_reward (under the variant's rates),\n"
		"  reward (realised), campaign_id, lead_id, sent (0/1), outcome (deepest\n"
		"  event or none). A decision's draws depend only on --seed and its\n"
		"  decision_id, never on other lines or their order; event_id is\n"
		"  fb-SEED-DECISION_ID-TYPE.\n"
		"\n"
		"stdout gets one summary line: events=N bytes=N decided=N positives=N\n"
		"hash=FNV1A64 (with --feedback: decisions=N events=N bytes=N\n"
		"hash=FNV1A64); counts per topic and type are logged on stderr.\n"
		"SIGINT or SIGTERM stops early: what was produced is flushed and reported.\n"
		"Exit status: 0 ok (also when stopped by a signal), 1 runtime failure\n"
		"(encoding, delivery, truth file, reading --feedback, memory), 2 usage\n"
		"error or a bad --feedback line.\n",
		SIM_MAX_LEADS, SIM_MAX_DAYS);
}

static bool sim_parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static bool sim_parse_start(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long ms = strtoll(v, &end, 10);
	if (errno == 0 && end != v && *end == '\0') {
		if (ms < 0)
			return false;
		*out = ms;
		return true;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	int y, mo, d, hh = 0, mi = 0, ss = 0, n = 0;
	if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return false;
	const char *rest = v + n;
	if (*rest == 'T' || *rest == ' ') {
		int m = 0;
		if (sscanf(rest + 1, "%2d:%2d:%2d%n", &hh, &mi, &ss, &m) != 3)
			return false;
		rest += 1 + m;
	}
	if (*rest == 'Z')
		rest++;
	if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 ||
	    ss > 60 || y < 1970)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mi;
	tm.tm_sec = ss;
	time_t t = timegm(&tm);
	if (t < 0)
		return false;
	*out = (int64_t)t * 1000;
	return true;
}

/* "O/C/R": absolute P(open), P(click), P(reply) with 0 <= R <= C <= O <= 1. */
static bool sim_parse_rates(const char *v, sim_rates *r)
{
	double x[3];
	const char *p = v;
	for (int i = 0; i < 3; i++) {
		char *end;
		errno = 0;
		x[i] = strtod(p, &end);
		if (errno != 0 || end == p || !isfinite(x[i]) || *end != (i < 2 ? '/' : '\0'))
			return false;
		p = end + 1;
	}
	if (!(x[2] >= 0.0 && x[2] <= x[1] && x[1] <= x[0] && x[0] <= 1.0))
		return false;
	r->open = x[0];
	r->click = x[1];
	r->reply = x[2];
	return true;
}

/* --variant-rates 'KEY=O/C/R,...' into o->rates; the keys point into
 * o->rates_spec. false after printing what is wrong. */
static bool sim_parse_variant_rates(const char *v, sim_opts *o)
{
	free(o->rates);
	free(o->rates_spec);
	o->rates = NULL;
	o->n_rates = 0;
	o->rates_spec = strdup(v);
	size_t n = 1;
	for (const char *p = v; *p != '\0'; p++)
		n += *p == ',';
	o->rates = calloc(n, sizeof *o->rates);
	if (o->rates_spec == NULL || o->rates == NULL) {
		fprintf(stderr, "leadscore-sim: out of memory\n");
		return false;
	}
	char *save = NULL;
	for (char *e = strtok_r(o->rates_spec, ",", &save); e != NULL;
	     e = strtok_r(NULL, ",", &save)) {
		sim_rates *r = &o->rates[o->n_rates];
		char *eq = strchr(e, '=');
		if (eq == NULL || eq == e) {
			fprintf(stderr, "leadscore-sim: --variant-rates entry '%s' is not "
				"[CAMPAIGN:]VARIANT=OPEN/CLICK/REPLY\n", e);
			return false;
		}
		*eq = '\0';
		if (!sim_parse_rates(eq + 1, r)) {
			fprintf(stderr, "leadscore-sim: --variant-rates %s: '%s' is not OPEN/CLICK/REPLY "
				"with 0 <= REPLY <= CLICK <= OPEN <= 1\n", e, eq + 1);
			return false;
		}
		char *colon = strchr(e, ':');
		r->variant = e;
		if (colon != NULL) {
			*colon = '\0';
			r->campaign = e;
			r->variant = colon + 1;
			if (e[0] == '\0' || r->variant[0] == '\0') {
				fprintf(stderr, "leadscore-sim: --variant-rates: empty campaign or variant "
					"in '%s:%s'\n", e, r->variant);
				return false;
			}
		}
		for (size_t i = 0; i < o->n_rates; i++) {
			const sim_rates *q = &o->rates[i];
			bool same_campaign = q->campaign == NULL
						     ? r->campaign == NULL
						     : r->campaign != NULL && strcmp(q->campaign, r->campaign) == 0;
			if (same_campaign && strcmp(q->variant, r->variant) == 0) {
				fprintf(stderr, "leadscore-sim: --variant-rates names %s%s%s twice\n",
					r->campaign ? r->campaign : "", r->campaign ? ":" : "",
					r->variant);
				return false;
			}
		}
		o->n_rates++;
	}
	if (o->n_rates == 0) {
		fprintf(stderr, "leadscore-sim: --variant-rates is empty\n");
		return false;
	}
	return true;
}

/* --reward-weights 'TYPE=W,...' over OPENED, CLICKED, REPLIED; W >= 0. */
static bool sim_parse_weights(const char *v, double *w)
{
	static const ls_email_type allowed[] = { LS_EMAIL_OPENED, LS_EMAIL_CLICKED,
						  LS_EMAIL_REPLIED };
	bool seen[LS_EMAIL__COUNT] = { false };
	for (int i = 0; i < LS_EMAIL__COUNT; i++)
		w[i] = 0.0;
	const char *p = v;
	for (;;) {
		const char *eq = strchr(p, '=');
		size_t nlen = eq ? (size_t)(eq - p) : 0;
		int type = -1;
		for (size_t i = 0; eq != NULL && i < sizeof allowed / sizeof allowed[0]; i++) {
			const char *name = ls_email_type_name(allowed[i]);
			if (strlen(name) == nlen && strncmp(p, name, nlen) == 0)
				type = (int)allowed[i];
		}
		if (type < 0) {
			fprintf(stderr, "leadscore-sim: --reward-weights wants TYPE=WEIGHT,... with "
				"TYPE one of OPENED, CLICKED, REPLIED, not '%s'\n", v);
			return false;
		}
		char *end;
		errno = 0;
		double x = strtod(eq + 1, &end);
		if (errno != 0 || end == eq + 1 || !isfinite(x) || x < 0.0 ||
		    (*end != ',' && *end != '\0') || seen[type]) {
			fprintf(stderr, "leadscore-sim: --reward-weights wants each of OPENED, "
				"CLICKED, REPLIED at most once with a weight >= 0, not '%s'\n", v);
			return false;
		}
		seen[type] = true;
		w[type] = x;
		if (*end == '\0')
			return true;
		p = end + 1;
	}
}

/* NUMBER followed by s, m, h or d; 1 minute to 30 days. */
static bool sim_parse_duration(const char *v, int64_t *ms)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno != 0 || end == v || !isfinite(x) || end[0] == '\0' || end[1] != '\0')
		return false;
	double unit = end[0] == 's' ? 1e3 : end[0] == 'm' ? 6e4 : end[0] == 'h' ? 3.6e6
				 : end[0] == 'd' ? 8.64e7 : 0.0;
	x *= unit;
	if (!(x >= 6e4 && x <= 30 * 8.64e7))
		return false;
	*ms = sim_ms(x);
	return true;
}

/* 0 ok, 2 usage error (message printed), 3 --help/--print-model done. */
static int sim_parse(int argc, char **argv, sim_opts *o)
{
	static const struct option opts[] = {
		{ "leads", required_argument, NULL, 'l' },
		{ "days", required_argument, NULL, 'd' },
		{ "start", required_argument, NULL, 'S' },
		{ "seed", required_argument, NULL, 's' },
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic-prefix", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "negatives", required_argument, NULL, 'n' },
		{ "truth", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "nonlinear", no_argument, NULL, 'L' },
		{ "print-model", no_argument, NULL, 'M' },
		{ "feedback", required_argument, NULL, 'F' },
		{ "feedback-no-sent", no_argument, NULL, 'N' },
		{ "feedback-max-delay", required_argument, NULL, 'X' },
		{ "variant-rates", required_argument, NULL, 'V' },
		{ "variant-default", required_argument, NULL, 'E' },
		{ "reward-weights", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->leads = 2000;
	o->days = 30;
	o->seed = 1;
	o->prefix = "leads.";
	o->negatives = true;
	o->max_delay = 48 * SIM_HOUR;
	o->reward_w[LS_EMAIL_CLICKED] = 1.0;
	o->reward_w[LS_EMAIL_REPLIED] = 1.0;
	bool print_model = false;
	opterr = 0;
	int opt;
	int idx = -1;
	while ((opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		char *end;
		if (opt != 0 && idx >= 0 && strchr("ldSnL", opt) != NULL)
			o->generator_only = opts[idx].name;
		if (opt != 0 && idx >= 0 && strchr("NXVEW", opt) != NULL)
			o->feedback_only = opts[idx].name;
		idx = -1;
		switch (opt) {
		case 'l':
			if (!sim_parse_long(optarg, 1, SIM_MAX_LEADS, &o->leads)) {
				fprintf(stderr, "leadscore-sim: --leads wants 1..%d, not '%s'\n",
					SIM_MAX_LEADS, optarg);
				return 2;
			}
			break;
		case 'd':
			if (!sim_parse_long(optarg, 1, SIM_MAX_DAYS, &o->days)) {
				fprintf(stderr, "leadscore-sim: --days wants 1..%d, not '%s'\n",
					SIM_MAX_DAYS, optarg);
				return 2;
			}
			break;
		case 'S':
			if (!sim_parse_start(optarg, &o->start)) {
				fprintf(stderr,
					"leadscore-sim: --start wants ms since the epoch or "
					"YYYY-MM-DD[THH:MM:SS[Z]], not '%s'\n", optarg);
				return 2;
			}
			o->have_start = true;
			break;
		case 's':
			errno = 0;
			o->seed = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
				fprintf(stderr, "leadscore-sim: --seed wants an unsigned integer, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'b':
			o->brokers = optarg;
			break;
		case 'p':
			if (strlen(optarg) > 200) {
				fprintf(stderr, "leadscore-sim: --topic-prefix is too long\n");
				return 2;
			}
			o->prefix = optarg;
			break;
		case 'r':
			errno = 0;
			o->rate = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(o->rate > 0) ||
			    o->rate > 1e9) {
				fprintf(stderr, "leadscore-sim: --rate wants events/s > 0, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			if (strcmp(optarg, "lost") == 0) {
				o->negatives = true;
			} else if (strcmp(optarg, "none") == 0) {
				o->negatives = false;
			} else {
				fprintf(stderr, "leadscore-sim: --negatives wants lost or none, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			o->truth = optarg;
			break;
		case 'D':
			o->dry_run = true;
			break;
		case 'L':
			o->nonlinear = true;
			break;
		case 'M':
			print_model = true;
			break;
		case 'F':
			o->feedback = optarg;
			break;
		case 'N':
			o->feedback_no_sent = true;
			break;
		case 'X':
			if (!sim_parse_duration(optarg, &o->max_delay)) {
				fprintf(stderr, "leadscore-sim: --feedback-max-delay wants 1m..30d "
					"(a number and s, m, h or d), not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'V':
			if (!sim_parse_variant_rates(optarg, o))
				return 2;
			break;
		case 'E':
			if (!sim_parse_rates(optarg, &o->fallback)) {
				fprintf(stderr, "leadscore-sim: --variant-default wants OPEN/CLICK/REPLY "
					"with 0 <= REPLY <= CLICK <= OPEN <= 1, not '%s'\n", optarg);
				return 2;
			}
			o->have_fallback = true;
			break;
		case 'W':
			if (!sim_parse_weights(optarg, o->reward_w))
				return 2;
			break;
		case 'h':
			sim_usage(stdout);
			return 3;
		default:
			if (optopt != 0)
				fprintf(stderr, "leadscore-sim: bad or incomplete option -%c\n", optopt);
			else
				fprintf(stderr, "leadscore-sim: unknown option '%s'\n",
					argv[optind - 1]);
			fprintf(stderr, "try leadscore-sim --help\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leadscore-sim: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (print_model) {
		sim_print_model(o->nonlinear);
		return 3;
	}
	if (o->feedback != NULL && o->generator_only != NULL) {
		fprintf(stderr, "leadscore-sim: --%s does not apply with --feedback\n",
			o->generator_only);
		return 2;
	}
	if (o->feedback == NULL && o->feedback_only != NULL) {
		fprintf(stderr, "leadscore-sim: --%s needs --feedback\n", o->feedback_only);
		return 2;
	}
	if (!o->dry_run && (o->brokers == NULL || o->brokers[0] == '\0')) {
		fprintf(stderr, "leadscore-sim: --brokers is required (or use --dry-run)\n");
		return 2;
	}
	return 0;
}

/* ----------------------------------------------------------------- main */

static rd_kafka_t *sim_producer(const char *brokers)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL) {
		ls_error("sim", "out of memory", NULL);
		return NULL;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "200000", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err)) {
		ls_error("sim", "kafka config", "error=%s", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, sim_dr_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL)
		ls_error("sim", "cannot create producer", "error=%s", err);
	return rk;
}

/* The "topic totals" line of one topic: events, bytes and per type. */
void sim_report_topic(const sim *s, int src)
{
	static const char *const email[] = { "sent", "delivered", "opened", "clicked",
		"replied", "bounced", "unsubscribed", "spam_reported" };
	static const char *const web[] = { "page_view", "form_submit", "download",
		"demo_request" };
	static const char *const call[] = { "connected", "no_answer", "voicemail", "busy",
		"meeting_booked" };
	static const char *const outcome[] = { "converted", "opportunity_created", "won",
		"lost", "disqualified" };
	static const char *const *const names[LS_SOURCE__COUNT] = { email, web, call, outcome,
								    NULL };
	static const size_t n_names[LS_SOURCE__COUNT] = { 8, 4, 5, 5, 0 };
	char line[512];
	size_t off = 0;
	line[0] = '\0';
	for (size_t t = 0; t < n_names[src] && off < sizeof line; t++) {
		int k = snprintf(line + off, sizeof line - off, "%s%s=%" PRIu64,
				 t ? " " : "", names[src][t], s->count_type[src][t]);
		if (k < 0)
			break;
		off += (size_t)k;
	}
	ls_info("sim", "topic totals", "topic=%s events=%" PRIu64 " bytes=%" PRIu64 "%s%s",
		s->topics[src], s->count_src[src], s->bytes_src[src], off ? " " : "", line);
	/* 4 partitions (the dev broker's default) of ~5 MiB each */
	if (s->bytes_src[src] > UINT64_C(20) << 20)
		ls_warn("sim", "topic may exceed the dev broker's retention",
			"topic=%s bytes=%" PRIu64 " note=\"the dev broker keeps only "
			"~5 MiB per partition; the oldest events may be gone\"",
			s->topics[src], s->bytes_src[src]);
}

static void sim_report(const sim *s)
{
	for (int src = 0; src < LS_SOURCE__COUNT; src++)
		sim_report_topic(s, src);
	double rate = s->decided ? (double)s->positives / (double)s->decided : 0.0;
	ls_info("sim", "labels", "decided=%" PRIu64 " positives=%" PRIu64
		" label_rate=%.4f mean_p=%.4f dropped_after_decision=%" PRIu64,
		s->decided, s->positives, rate, s->decided ? s->p_sum / (double)s->decided : 0.0,
		s->dropped);
}

static void sim_free(sim *s)
{
	for (size_t i = 0; i < s->n_fb; i++)
		free(s->fb[i].line);
	free(s->fb);
	free(s->o.rates);
	free(s->o.rates_spec);
	if (s->rk != NULL)
		rd_kafka_destroy(s->rk);
	if (s->truth != NULL)
		fclose(s->truth);
	ls_codec_free(s->codec);
	ls_buf_free(&s->buf);
	free(s->heap);
	free(s->leads);
}

int main(int argc, char **argv)
{
	sim s;
	memset(&s, 0, sizeof s);
	ls_buf_init(&s.buf);
	int prc = sim_parse(argc, argv, &s.o);
	if (prc != 0) {
		sim_free(&s);
		return prc == 3 ? 0 : 2;
	}
	bool feedback = s.o.feedback != NULL;

	int64_t now = ls_clock_wall_ms();
	s.start = s.o.have_start ? s.o.start
				 : (now / SIM_HOUR) * SIM_HOUR - (int64_t)s.o.days * SIM_DAY;
	if (s.start < 0) {
		fprintf(stderr, "leadscore-sim: --start minus nothing is before 1970\n");
		sim_free(&s);
		return 2;
	}
	s.end = s.start + (int64_t)s.o.days * SIM_DAY;
	if (feedback) {
		s.start = 0;
		s.end = INT64_MAX; /* nothing is cut off: every decision's events go out */
	}
	ls_rng_seed(&s.rng, s.o.seed);
	s.hash = UINT64_C(0xcbf29ce484222325);
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		snprintf(s.topics[i], sizeof s.topics[i], "%s%s", s.o.prefix,
			 ls_source_name((ls_source)i));

	int rc = 1;
	char err[512];
	if (feedback) {
		/* all of the input first: a bad line stops the run before a send */
		rc = sim_fb_read(&s);
		if (rc != 0)
			goto out;
		rc = 1;
	} else {
		s.leads = calloc((size_t)s.o.leads, sizeof *s.leads);
		if (s.leads == NULL) {
			ls_error("sim", "out of memory", "leads=%ld", s.o.leads);
			goto out;
		}
	}
	s.codec = ls_codec_new(err, sizeof err);
	if (s.codec == NULL) {
		ls_error("sim", "cannot create codec", "error=%s", err);
		goto out;
	}
	if (s.o.truth != NULL) {
		s.truth = fopen(s.o.truth, "w");
		if (s.truth == NULL) {
			ls_error("sim", "cannot open truth file", "path=%s error=%s", s.o.truth,
				 strerror(errno));
			goto out;
		}
		fprintf(s.truth, feedback ? "decision_id\tvariant_id\texpected_reward\treward\t"
					    "campaign_id\tlead_id\tsent\toutcome\n"
					  : "lead_id\tlabel\tp_hidden\tlabel_ts\toutcome\n");
	}
	if (!s.o.dry_run) {
		s.rk = sim_producer(s.o.brokers);
		if (s.rk == NULL)
			goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sim_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (feedback)
		ls_info("sim", "starting", "feedback=%s decisions=%zu seed=%" PRIu64
			" max_delay_ms=%" PRId64 " sent=%s mode=%s rate=%g", s.o.feedback, s.n_fb,
			s.o.seed, s.o.max_delay, s.o.feedback_no_sent ? "no" : "yes",
			s.o.dry_run ? "dry-run" : "kafka", s.o.rate);
	else
		ls_info("sim", "starting", "leads=%ld days=%ld seed=%" PRIu64 " start=%" PRId64
			" end=%" PRId64 " mode=%s rate=%g nonlinear=%s", s.o.leads, s.o.days,
			s.o.seed, s.start, s.end, s.o.dry_run ? "dry-run" : "kafka", s.o.rate,
			s.o.nonlinear ? "yes" : "no");
	double t0 = sim_mono();
	int run = feedback ? sim_fb_run(&s) : sim_run(&s);
	if (s.rk != NULL) {
		rd_kafka_resp_err_t fe = rd_kafka_flush(s.rk, 60000);
		if (fe != RD_KAFKA_RESP_ERR_NO_ERROR) {
			ls_error("sim", "flush did not finish", "error=%s undelivered=%d",
				 rd_kafka_err2str(fe), rd_kafka_outq_len(s.rk));
			run = -1;
		}
		if (sim_delivery_failed > 0) {
			ls_error("sim", "delivery failed", "messages=%" PRIu64 " first_error=%s",
				 sim_delivery_failed, sim_delivery_err);
			run = -1;
		}
	}
	if (s.truth != NULL) {
		FILE *f = s.truth;
		s.truth = NULL;
		if (fclose(f) != 0) {
			ls_error("sim", "cannot write truth file", "path=%s error=%s", s.o.truth,
				 strerror(errno));
			run = -1;
		}
	}
	if (feedback)
		sim_fb_report(&s);
	else
		sim_report(&s);
	double secs = sim_mono() - t0;
	uint64_t bytes = 0;
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		bytes += s.bytes_src[i];
	ls_info("sim", sim_stop ? "interrupted" : "done",
		"events=%" PRIu64 " bytes=%" PRIu64 " seconds=%.2f events_per_s=%.0f",
		s.emitted, bytes, secs, secs > 0 ? (double)s.emitted / secs : 0.0);
	if (feedback)
		printf("decisions=%zu events=%" PRIu64 " bytes=%" PRIu64 " hash=%016" PRIx64 "\n",
		       s.n_fb, s.emitted, bytes, s.hash);
	else
		printf("events=%" PRIu64 " bytes=%" PRIu64 " decided=%" PRIu64 " positives=%" PRIu64
		       " hash=%016" PRIx64 "\n", s.emitted, bytes, s.decided, s.positives,
		       s.hash);
	fflush(stdout);
	rc = run == 0 ? 0 : 1;
out:
	sim_free(&s);
	return rc;
}
