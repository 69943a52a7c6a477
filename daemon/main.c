/*
 * main.c - leadscored: the process around the pipeline.
 *
 * Start-up order matters: the configuration is validated completely before
 * anything connects, so a typo fails fast with file:line:column instead of
 * after a Kafka group join. Redis is connected before the consumer
 * subscribes because state must be loadable before the first partition is
 * assigned. Signals only set flags; the loop acts on them between batches,
 * so a batch is never torn in half by a signal.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ls_arena.h"
#include "ls_build.h"
#include "ls_codec.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_log.h"
#include "ls_redis.h"

#include <systemd/sd-daemon.h>

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = sig;
}

static int install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGHUP, &sa, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: leadscored [--config PATH]\n"
		"       leadscored --check-config [PATH]\n"
		"       leadscored --version | --help\n"
		"\n"
		"Real-time lead scoring: consumes email, web, call, outcome and\n"
		"profile events from Kafka, keeps per-lead feature windows in\n"
		"Redis and publishes score changes.\n"
		"\n"
		"  -c, --config PATH   configuration file (default %s)\n"
		"      --check-config [PATH]\n"
		"                      validate the configuration (PATH or --config)\n"
		"                      and exit: 0 when valid, 1 with\n"
		"                      file:line:column errors\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n"
		"\n"
		"Environment: LEADSCORE_<KEY> overrides a scalar key, the dotted\n"
		"path upper-cased with '.' as '_' (LEADSCORE_KAFKA_BROKERS,\n"
		"LEADSCORE_REDIS_URL, ...).\n"
		"Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the\n"
		"configuration (live keys apply, others are reported).\n",
		LS_DEFAULT_CONFIG);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep up to ms, waking early when a stop is requested. */
static void sleep_unless_stopped(int64_t ms)
{
	while (ms > 0 && !stop_requested) {
		int64_t step = ms < 100 ? ms : 100;
		struct timespec ts = { 0, (long)step * 1000000L };
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

/* Retry with capped exponential backoff until connected or stopped. */
static redisContext *connect_redis(const ls_config *cfg,
				   const ls_redis_target *target)
{
	int64_t backoff = 100;
	char err[512], q[600], where[300];
	ls_redis_target_describe(target, where, sizeof where);
	while (!stop_requested) {
		redisContext *c = ls_redis_connect(target, cfg->redis.connect_timeout_ms,
						   cfg->redis.command_timeout_ms,
						   err, sizeof err);
		if (c != NULL && ls_redis_ping(c, err, sizeof err) == 0) {
			ls_log(LS_LOG_INFO, "redis", "connected", "target=%s",
			       ls_log_quote(where, q, sizeof q));
			return c;
		}
		if (c != NULL)
			redisFree(c);
		ls_log(LS_LOG_WARN, "redis", "connect failed, retrying",
		       "target=%s retry_ms=%lld error=%s",
		       ls_log_quote(where, q, 300), (long long)backoff,
		       ls_log_quote(err, q + 300, sizeof q - 300));
		sleep_unless_stopped(backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	return NULL;
}

static int register_writers(ls_codec *codec, const ls_config *cfg)
{
	char err[512];
	for (size_t i = 0; i < cfg->schemas.n_writers; i++) {
		const ls_schema_writer *w = &cfg->schemas.writers[i];
		if (ls_codec_add_writer(codec, w->id, w->record, w->json, err,
					sizeof err) != 0) {
			fprintf(stderr, "leadscored: schema %s (id %d): %s\n",
				w->file, (int)w->id, err);
			return -1;
		}
	}
	return 0;
}

/* The input source a topic carries, or -1 for a topic we did not ask for. */
static int topic_source(const ls_config *cfg, const char *topic)
{
	const char *t[LS_SOURCE__COUNT];
	t[LS_SOURCE_EMAIL] = cfg->kafka.topics.email;
	t[LS_SOURCE_WEB] = cfg->kafka.topics.web;
	t[LS_SOURCE_CALL] = cfg->kafka.topics.call;
	t[LS_SOURCE_OUTCOME] = cfg->kafka.topics.outcome;
	t[LS_SOURCE_PROFILE] = cfg->kafka.topics.profile;
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		if (strcmp(t[i], topic) == 0)
			return i;
	return -1;
}

typedef struct daemon_stats {
	unsigned long long consumed[LS_SOURCE__COUNT];
	unsigned long long decode_errors;
} daemon_stats;

static void report_change(const char *key, bool reloadable, void *ud)
{
	int *restart_needed = ud;
	if (reloadable) {
		ls_log(LS_LOG_INFO, "config", "applied live", "key=%s", key);
	} else {
		*restart_needed = 1;
		ls_log(LS_LOG_WARN, "config", "changed, needs a restart to apply",
		       "key=%s", key);
	}
}

static void reload_config(ls_config *cfg)
{
	ls_config fresh;
	char err[4096], q[4200];
	if (ls_config_load(cfg->path, &fresh, err, sizeof err) != 0) {
		ls_log(LS_LOG_ERROR, "config", "reload rejected, keeping the running configuration",
		       "errors=%s", ls_log_quote(err, q, sizeof q));
		return;
	}
	int restart_needed = 0;
	sd_notify(0, "RELOADING=1");
	ls_config_diff(cfg, &fresh, report_change, &restart_needed);
	ls_config_apply_live(cfg, &fresh);
	ls_config_free(&fresh);
	ls_log_set_level(cfg->log.level);
	ls_log(LS_LOG_INFO, "config", "reloaded", "path=%s restart_needed=%s",
	       ls_log_quote(cfg->path, q, sizeof q),
	       restart_needed ? "true" : "false");
	sd_notify(0, "READY=1");
}

static void process_batch(ls_codec *codec, ls_arena *arena,
			  const ls_config *cfg, rd_kafka_message_t **msgs,
			  size_t n, daemon_stats *st)
{
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		const char *topic = rd_kafka_topic_name(m->rkt);
		int src = topic_source(cfg, topic);
		if (src >= 0) {
			ls_event ev;
			ls_codec_error cerr;
			if (ls_codec_decode(codec, (ls_source)src, m->payload,
					    m->len, arena, &ev, &cerr) == 0) {
				st->consumed[src]++;
			} else {
				char q[400];
				st->decode_errors++;
				ls_log(LS_LOG_WARN, "codec", "undecodable event",
				       "topic=%s partition=%d offset=%lld reason=%s detail=%s",
				       topic, (int)m->partition,
				       (long long)m->offset,
				       ls_codec_reason_name(cerr.reason),
				       ls_log_quote(cerr.detail, q, sizeof q));
			}
		}
		rd_kafka_message_destroy(m);
	}
	ls_arena_reset(arena);
}

static int run(ls_config *cfg)
{
	char err[1024], q[1100];
	int rc = 1;
	ls_codec *codec = NULL;
	redisContext *redis = NULL;
	ls_kafka_consumer *consumer = NULL;
	rd_kafka_message_t **msgs = NULL;
	ls_redis_target target;
	ls_arena arena;
	daemon_stats st;

	memset(&st, 0, sizeof st);
	ls_arena_init(&arena, 0);
	if (ls_redis_url_parse(cfg->redis.url, &target, err, sizeof err) != 0) {
		ls_log(LS_LOG_ERROR, "redis", "bad url", "error=%s",
		       ls_log_quote(err, q, sizeof q));
		goto out;
	}
	codec = ls_codec_new(err, sizeof err);
	if (codec == NULL) {
		ls_log(LS_LOG_ERROR, "codec", "cannot load schemas", "error=%s",
		       ls_log_quote(err, q, sizeof q));
		goto out;
	}
	if (register_writers(codec, cfg) != 0)
		goto out;

	redis = connect_redis(cfg, &target);
	if (redis == NULL) {
		rc = 0; /* stopped before Redis ever answered: a clean stop */
		goto out;
	}
	consumer = ls_kafka_consumer_new(cfg, err, sizeof err);
	if (consumer == NULL) {
		ls_log(LS_LOG_ERROR, "kafka", "cannot start consumer", "error=%s",
		       ls_log_quote(err, q, sizeof q));
		goto out;
	}
	ls_log(LS_LOG_INFO, "kafka", "subscribed",
	       "brokers=%s group_id=%s", ls_log_quote(cfg->kafka.brokers, q, 300),
	       ls_log_quote(cfg->kafka.group_id, q + 300, 300));

	size_t cap = (size_t)cfg->pipeline.batch_size;
	msgs = calloc(cap, sizeof *msgs);
	if (msgs == NULL) {
		ls_log(LS_LOG_ERROR, "main", "out of memory", NULL);
		goto out;
	}

	bool ready = false;
	/* systemd restarts us when the loop stops pinging (WatchdogSec=) */
	uint64_t watchdog_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
	int64_t watchdog_every_ms = (int64_t)(watchdog_usec / 4000);
	int64_t watchdog_last = 0;
	while (!stop_requested) {
		if (watchdog && mono_ms() - watchdog_last >= watchdog_every_ms) {
			sd_notify(0, "WATCHDOG=1");
			watchdog_last = mono_ms();
		}
		if (reload_requested) {
			reload_requested = 0;
			reload_config(cfg);
			if ((size_t)cfg->pipeline.batch_size > cap) {
				rd_kafka_message_t **bigger = realloc(
					msgs, (size_t)cfg->pipeline.batch_size * sizeof *msgs);
				if (bigger != NULL) {
					msgs = bigger;
					cap = (size_t)cfg->pipeline.batch_size;
				}
			}
		}
		size_t max = (size_t)cfg->pipeline.batch_size < cap
				     ? (size_t)cfg->pipeline.batch_size
				     : cap;
		size_t n = ls_kafka_consumer_poll_batch(
			consumer, msgs, max, (int)cfg->pipeline.batch_max_wait_ms);
		process_batch(codec, &arena, cfg, msgs, n, &st);
		if (!ready && ls_kafka_consumer_ever_assigned(consumer)) {
			ready = true;
			ls_log(LS_LOG_INFO, "main", "ready",
			       "partitions=%d",
			       ls_kafka_consumer_assigned(consumer));
			sd_notify(0, "READY=1");
		}
	}
	rc = 0;

out:
	if (stop_requested) {
		sd_notify(0, "STOPPING=1");
		ls_log(LS_LOG_INFO, "main", "stopping", "signal=%d",
		       (int)stop_requested);
	}
	int64_t t0 = mono_ms();
	ls_kafka_consumer_close(consumer);
	if (consumer != NULL)
		ls_log(LS_LOG_INFO, "kafka", "left the group", "close_ms=%lld",
		       (long long)(mono_ms() - t0));
	free(msgs);
	if (redis != NULL)
		redisFree(redis);
	ls_redis_target_free(&target);
	ls_codec_free(codec);
	ls_arena_free(&arena);
	ls_log(LS_LOG_INFO, "main", "stopped",
	       "email=%llu web=%llu call=%llu outcome=%llu profile=%llu decode_errors=%llu",
	       st.consumed[LS_SOURCE_EMAIL], st.consumed[LS_SOURCE_WEB],
	       st.consumed[LS_SOURCE_CALL], st.consumed[LS_SOURCE_OUTCOME],
	       st.consumed[LS_SOURCE_PROFILE], st.decode_errors);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = LS_DEFAULT_CONFIG;
	bool check_only = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check_only = true;
			break;
		case 'V':
			printf("leadscored %s\n", LS_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* `leadscored --check-config FILE` reads as "check FILE" */
	if (check_only && optind == argc - 1)
		path = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "leadscored: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	ls_config cfg;
	static char err[16384];
	if (ls_config_load(path, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s%s", err,
			err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
		return 1;
	}
	if (check_only) {
		printf("%s: configuration OK\n", path);
		ls_config_free(&cfg);
		return 0;
	}
	ls_log_set_level(cfg.log.level);
	if (install_signals() != 0) {
		fprintf(stderr, "leadscored: sigaction: %s\n", strerror(errno));
		ls_config_free(&cfg);
		return 1;
	}
	char q[600];
	ls_log(LS_LOG_INFO, "main", "starting", "version=%s pid=%d config=%s",
	       LS_VERSION, (int)getpid(), ls_log_quote(path, q, sizeof q));
	int rc = run(&cfg);
	ls_config_free(&cfg);
	return rc;
}
