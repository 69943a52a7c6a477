/*
 * leadscorectl_kafka.c - the topic reader `tail` and `dead-letters` share,
 * and their small helpers (leadscorectl_kafka.h).
 *
 * Why assign and not subscribe: a subscription joins a group, which a
 * broker may keep for a session timeout after we leave and which shows in
 * the operator's group listings; assigning every partition at offsets we
 * chose joins nothing, commits nothing and starts reading at once (the
 * dev broker delays a new group's first join by about 3 s).
 */
#include "leadscorectl_kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ls_clock.h"
#include "ls_kafka.h"
#include "ls_settings.h"

#define CTL_ERRORS_KEPT 8 /* distinct consumer errors reported once each */
#define CTL_POLL_MS 200   /* the longest a wait goes without looking at Ctrl-C */

/* A reader of one topic; see ctl_read() and the header. */
typedef struct ctl_reader {
	rd_kafka_t *rk;
	char *topic;
	int32_t *ids;     /* partition ids, n of them */
	int64_t *high;    /* per index: high watermark at open; -1 once read to it */
	int n;
	int open;         /* partitions not yet read to their high watermark */
	int64_t since_ms; /* records stamped before this are skipped; -1: none */
	char seen[CTL_ERRORS_KEPT][160];
	int n_seen;
} ctl_reader;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void ctl_signals_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocking write to a stalled terminal gives up */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

bool ctl_interrupted(void) { return interrupted != 0; }

/* Milliseconds left before deadline, at least 1 so that librdkafka calls
   taking 0 as "do not wait" still make one attempt. */
static int ms_left(int64_t deadline)
{
	int64_t left = deadline - ls_clock_mono_ms();
	return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* The index of partition id, or -1. */
static int index_of(const ctl_reader *r, int32_t id)
{
	for (int i = 0; i < r->n; i++)
		if (r->ids[i] == id)
			return i;
	return -1;
}

static void mark_read(ctl_reader *r, int i)
{
	if (i >= 0 && r->high[i] >= 0) {
		r->high[i] = -1;
		r->open--;
	}
}

static void ctl_reader_close(ctl_reader *r)
{
	if (r == NULL)
		return;
	if (r->rk != NULL) {
		rd_kafka_consumer_close(r->rk);
		rd_kafka_destroy(r->rk);
	}
	free(r->topic);
	free(r->ids);
	free(r->high);
	free(r);
}

/* Find topic in a listing of all topics (a by-name request may create it):
   fills r->ids; 0, or -1 with a reason. */
static int find_partitions(ctl_reader *r, int64_t deadline, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;
	/* in slices, so that Ctrl-C need not wait out an unreachable broker */
	for (;;) {
		int64_t t0 = ls_clock_mono_ms();
		int slice = ms_left(deadline);
		if (slice > CTL_POLL_MS)
			slice = CTL_POLL_MS;
		e = rd_kafka_metadata(r->rk, 1, NULL, &md, slice);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (ctl_interrupted()) {
			snprintf(err, errlen, "interrupted");
			return -1;
		}
		if (ls_clock_mono_ms() >= deadline) {
			snprintf(err, errlen, "kafka: no answer from the brokers (%s)",
				 rd_kafka_err2str(e));
			return -1;
		}
		int64_t spent = ls_clock_mono_ms() - t0;
		if (spent < slice) {
			/* it failed at once: do not spin */
			struct timespec ts = { 0, (long)(slice - spent) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	const struct rd_kafka_metadata_topic *t = NULL;
	for (int i = 0; i < md->topic_cnt && t == NULL; i++)
		if (strcmp(md->topics[i].topic, r->topic) == 0)
			t = &md->topics[i];
	int rc = -1;
	if (t == NULL || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
		snprintf(err, errlen, "kafka: topic %s does not exist", r->topic);
	} else if (t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: topic %s: %s", r->topic, rd_kafka_err2str(t->err));
	} else if (t->partition_cnt <= 0) {
		snprintf(err, errlen, "kafka: topic %s has no partitions", r->topic);
	} else {
		r->n = t->partition_cnt;
		r->ids = calloc((size_t)r->n, sizeof *r->ids);
		r->high = calloc((size_t)r->n, sizeof *r->high);
		if (r->ids == NULL || r->high == NULL) {
			snprintf(err, errlen, "out of memory");
		} else {
			for (int i = 0; i < r->n; i++)
				r->ids[i] = t->partitions[i].id;
			rc = 0;
		}
	}
	rd_kafka_metadata_destroy(md);
	return rc;
}

/* The offsets to start at, into parts; 0, or -1 with a reason. */
static int start_offsets(ctl_reader *r, ctl_from from, int64_t since_ms, int64_t deadline,
			 rd_kafka_topic_partition_list_t *parts, char *err, size_t errlen)
{
	int64_t *lo = calloc((size_t)r->n, sizeof *lo);
	if (lo == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = -1;
	for (int i = 0; i < r->n; i++) {
		int64_t hi;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
			r->rk, r->topic, r->ids[i], &lo[i], &hi, ms_left(deadline));
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "kafka: watermarks of %s:%" PRId32 ": %s", r->topic,
				 r->ids[i], rd_kafka_err2str(e));
			goto out;
		}
		r->high[i] = hi;
		rd_kafka_topic_partition_list_add(parts, r->topic, r->ids[i])->offset =
			from == CTL_FROM_BEGINNING ? lo[i] : hi;
	}
	if (from == CTL_FROM_TIME) {
		rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(r->n);
		if (q == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		for (int i = 0; i < r->n; i++)
			rd_kafka_topic_partition_list_add(q, r->topic, r->ids[i])->offset = since_ms;
		rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk, q, ms_left(deadline));
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "kafka: offsets of %s by time: %s", r->topic,
				 rd_kafka_err2str(e));
			rd_kafka_topic_partition_list_destroy(q);
			goto out;
		}
		/* -1 says nothing is that recent, or (the dev broker: librdkafka's
		   mock cluster) that the broker cannot look up times: read from
		   the start then, and let ctl_reader_next skip the older records */
		for (int i = 0; i < q->cnt; i++) {
			int k = index_of(r, q->elems[i].partition);
			if (k >= 0)
				parts->elems[k].offset = q->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
								 q->elems[i].offset >= 0
							 ? q->elems[i].offset
							 : lo[k];
		}
		rd_kafka_topic_partition_list_destroy(q);
	}
	r->open = r->n;
	for (int i = 0; i < r->n; i++)
		if (parts->elems[i].offset >= r->high[i])
			mark_read(r, i);
	rc = 0;
out:
	free(lo);
	return rc;
}

/*
 * A reader of topic for command (names its group.id), starting at from
 * (since_ms: ms since the epoch, for CTL_FROM_TIME). The broker must
 * answer within timeout_ms. NULL with a reason in err: the broker not
 * reachable in time, the topic missing, a property librdkafka refuses.
 */
static ctl_reader *ctl_reader_open(const ls_config *cfg, const char *command, const char *topic,
			    ctl_from from, int64_t since_ms, int64_t timeout_ms, char *err,
			    size_t errlen)
{
	int64_t deadline = ls_clock_mono_ms() + timeout_ms;
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, true, err, errlen);
	if (conf == NULL)
		return NULL;
	char why[512], group[512];
	snprintf(group, sizeof group, "%s.leadscorectl-%s", cfg->kafka.group_id, command);
	if (rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	ctl_reader *r = calloc(1, sizeof *r);
	if (r == NULL || (r->topic = strdup(topic)) == NULL) {
		snprintf(err, errlen, "out of memory");
		rd_kafka_conf_destroy(conf);
		free(r);
		return NULL;
	}
	r->since_ms = from == CTL_FROM_TIME ? since_ms : -1;
	r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
	if (r->rk == NULL) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		ctl_reader_close(r);
		return NULL;
	}
	rd_kafka_poll_set_consumer(r->rk);
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (find_partitions(r, deadline, err, errlen) != 0)
		goto fail;
	parts = rd_kafka_topic_partition_list_new(r->n);
	if (parts == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (start_offsets(r, from, since_ms, deadline, parts, err, errlen) != 0)
		goto fail;
	rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, parts);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: assign %s: %s", topic, rd_kafka_err2str(e));
		goto fail;
	}
	rd_kafka_topic_partition_list_destroy(parts);
	return r;
fail:
	if (parts != NULL)
		rd_kafka_topic_partition_list_destroy(parts);
	ctl_reader_close(r);
	return NULL;
}

/* Report a consumer error once per distinct text (librdkafka repeats
   them while it retries). */
static void report_error(ctl_reader *r, const rd_kafka_message_t *m)
{
	char line[160];
	snprintf(line, sizeof line, "%s", rd_kafka_message_errstr(m));
	for (int i = 0; i < r->n_seen; i++)
		if (strcmp(r->seen[i], line) == 0)
			return;
	if (r->n_seen < CTL_ERRORS_KEPT)
		memcpy(r->seen[r->n_seen++], line, sizeof line);
	fprintf(stderr, "leadscorectl: kafka: %s: %s (still trying)\n", r->topic, line);
}

/* The next record within wait_ms: 1 with *out set (a record, never an
   error), 0 when none came. */
static int ctl_reader_next(ctl_reader *r, int wait_ms, rd_kafka_message_t **out)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, wait_ms);
	if (m == NULL)
		return 0;
	int k = index_of(r, m->partition);
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		mark_read(r, k);
	} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		report_error(r, m);
	} else {
		/* past the watermark, or at it: this partition's backlog is read */
		if (k >= 0 && r->high[k] >= 0 && m->offset + 1 >= r->high[k])
			mark_read(r, k);
		rd_kafka_timestamp_type_t tt;
		int64_t ts = rd_kafka_message_timestamp(m, &tt);
		if (r->since_ms < 0 || tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts >= r->since_ms) {
			*out = m;
			return 1;
		}
	}
	rd_kafka_message_destroy(m);
	return 0;
}

/* Every partition has been read up to its high watermark taken at open. */
static bool ctl_reader_caught_up(const ctl_reader *r) { return r->open == 0; }

#define CTL_MAX_TIMEOUT_MS INT64_C(604800000) /* a week */

int ctl_read_option(const char *command, int opt, const char *arg, ctl_read_opts *o)
{
	switch (opt) {
	case 'b':
	case 'e':
	case 's':
		if (o->from_given) {
			fprintf(stderr, "leadscorectl: %s: only one place to start "
					"(--from-beginning, --from-end, --since)\n", command);
			return 2;
		}
		o->from_given = true;
		o->from = opt == 'b' ? CTL_FROM_BEGINNING : opt == 'e' ? CTL_FROM_END : CTL_FROM_TIME;
		if (opt == 'e')
			o->follow = true;
		if (opt == 's' && ctl_parse_since(arg, ls_clock_wall_ms(), &o->since_ms) != 0) {
			fprintf(stderr, "leadscorectl: %s: --since: '%s' is neither a duration "
					"(30s, 15m, 2h, 7d, 500ms) nor ms since the epoch\n", command, arg);
			return 2;
		}
		return 0;
	case 'n':
		if (ctl_parse_nonneg(arg, INT64_MAX, &o->count) != 0 || o->count == 0) {
			fprintf(stderr, "leadscorectl: %s: --count: '%s' is not a count >= 1\n",
				command, arg);
			return 2;
		}
		return 0;
	case 'w':
		if (ctl_parse_nonneg(arg, CTL_MAX_TIMEOUT_MS, &o->timeout_ms) != 0 ||
		    o->timeout_ms == 0) {
			fprintf(stderr, "leadscorectl: %s: --timeout-ms: '%s' is not a number of ms "
					"from 1 to %" PRId64 "\n", command, arg, CTL_MAX_TIMEOUT_MS);
			return 2;
		}
		return 0;
	default:
		fprintf(stderr, "leadscorectl: %s: see leadscorectl %s --help\n", command, command);
		return 2;
	}
}

/* stdout is a pipe whose reader has gone (e.g. head exited): seen while
   waiting, so that `tail | head -n 5` ends without another record. */
static bool stdout_gone(void)
{
	struct pollfd pfd = { .fd = STDOUT_FILENO, .events = 0 };
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)) != 0;
}

int ctl_read(const ls_config *cfg, const char *command, const char *topic,
	     const ctl_read_opts *o, ctl_record_fn fn, void *ud)
{
	char err[1024];
	ctl_reader *r = ctl_reader_open(cfg, command, topic, o->from, o->since_ms,
					o->timeout_ms > 0 ? o->timeout_ms : CTL_CONNECT_TIMEOUT_MS,
					err, sizeof err);
	if (r == NULL) {
		if (ctl_interrupted())
			return 0; /* Ctrl-C while waiting for the broker */
		fprintf(stderr, "leadscorectl: %s: %s\n", command, err);
		return 1;
	}
	uint64_t matched = 0;
	int64_t last = ls_clock_mono_ms();
	int rc = 0;
	bool ended = false; /* at the end, or by --timeout-ms */
	while (!ctl_interrupted() && (o->count == 0 || matched < (uint64_t)o->count)) {
		if (!o->follow && ctl_reader_caught_up(r)) {
			ended = true;
			break;
		}
		int wait = CTL_POLL_MS;
		if (o->timeout_ms > 0) {
			int64_t left = last + o->timeout_ms - ls_clock_mono_ms();
			if (left <= 0) {
				ended = true;
				break;
			}
			if (left < wait)
				wait = (int)left;
		}
		rd_kafka_message_t *m = NULL;
		if (ctl_reader_next(r, wait, &m) == 0) {
			if (stdout_gone())
				break;
			continue;
		}
		int got = fn(ud, m);
		rd_kafka_message_destroy(m);
		if (got < 0) {
			rc = 1;
			break;
		}
		if (got == 2)
			break;
		if (got == 1) {
			matched++;
			last = ls_clock_mono_ms();
		}
	}
	ctl_reader_close(r);
	return rc == 0 && ended && matched == 0 ? 3 : rc;
}

int ctl_parse_nonneg(const char *s, int64_t max, int64_t *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > max)
		return -1;
	*out = (int64_t)v;
	return 0;
}

int ctl_parse_since(const char *s, int64_t now_ms, int64_t *ts_ms)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	int64_t unit;
	if (*end == '\0') {
		*ts_ms = (int64_t)v;
		return 0;
	}
	if (strcmp(end, "ms") == 0)
		unit = 1;
	else if (strcmp(end, "s") == 0)
		unit = 1000;
	else if (strcmp(end, "m") == 0)
		unit = 60000;
	else if (strcmp(end, "h") == 0)
		unit = 3600000;
	else if (strcmp(end, "d") == 0)
		unit = 86400000;
	else
		return -1;
	if (v > now_ms / unit)
		return -1; /* before the epoch */
	*ts_ms = now_ms - (int64_t)v * unit;
	return 0;
}

char *ctl_escape(const void *p, size_t n, size_t max)
{
	const unsigned char *b = p;
	size_t shown = n < max ? n : max;
	if (shown > (SIZE_MAX - 4) / 4)
		return NULL;
	char *out = malloc(shown * 4 + 4);
	if (out == NULL)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = b[i];
		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	if (shown < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

json_t *ctl_json_text(const void *p, size_t n, size_t max)
{
	if (n == 0)
		return json_string("");
	if (n <= max && memchr(p, '\0', n) == NULL) {
		json_t *s = json_stringn(p, n); /* NULL: not UTF-8 */
		if (s != NULL)
			return s;
	}
	char *e = ctl_escape(p, n, max);
	if (e == NULL)
		return NULL;
	json_t *s = json_string(e);
	free(e);
	return s;
}

void ctl_format_time(int64_t ms, char *buf, size_t buflen)
{
	time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)secs * 1000);
	struct tm tm;
	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(buf, buflen, "%" PRId64, ms);
		return;
	}
	char day[32];
	strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, buflen, "%s.%03dZ", day, frac);
}

int ctl_flush_stdout(void)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	if (errno == EPIPE)
		return 1;
	fprintf(stderr, "leadscorectl: writing output: %s\n", strerror(errno));
	return -1;
}
