/*
 * main.c - leadscored: the process around the pipeline.
 *
 * Start-up order matters: the configuration is validated completely before
 * anything connects, so a typo fails fast with file:line:column instead of
 * after a Kafka group join. Redis is connected before the consumer
 * subscribes because state must be loadable before the first partition is
 * assigned. Signals only set flags; the loop acts on them between batches,
 * so a batch is never torn in half by a signal. run() is start(), loop()
 * and stop(): stop() releases whatever start() got to, so a part that
 * cannot start needs no clean-up of its own.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ls_build.h"
#include "ls_codec.h"
#include "ls_clock.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_campaign.h"
#include "ls_http.h"
#include "ls_telemetry.h"
#include "ls_pipeline.h"
#include "ls_scorer.h"
#include "ls_settings.h"
#include "ls_log.h"
#include "ls_redis.h"
#include "ls_store.h"

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

/*
 * The drain is bounded: if closing the consumer (which commits what is
 * pending) has not finished within pipeline.shutdown_timeout, exit 1
 * anyway. Nothing is lost by it: uncommitted work is replayed from the
 * offsets in Redis at the next start.
 */
static void on_shutdown_timeout(int sig)
{
	(void)sig;
	static const char msg[] =
		"level=error component=main msg=\"shutdown timed out, exiting; uncommitted work will be replayed\"\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
	(void)w;
	_exit(1);
}

static void arm_shutdown_timer(int64_t ms)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_shutdown_timeout;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it;
	memset(&it, 0, sizeof it);
	it.it_value.tv_sec = (time_t)(ms / 1000);
	it.it_value.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	setitimer(ITIMER_REAL, &it, NULL);
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
static bool connect_store(ls_store *store, const ls_config *cfg)
{
	int64_t backoff = 100;
	char err[512], q[600];
	while (!stop_requested) {
		if (ls_store_connect(store, err, sizeof err) == 0) {
			ls_redis_target t;
			char where[300];
			if (ls_redis_url_parse(cfg->redis.url, &t, err, sizeof err) == 0) {
				ls_log(LS_LOG_INFO, "redis", "connected", "target=%s",
				       ls_log_quote(ls_redis_target_describe(&t, where, sizeof where),
						    q, sizeof q));
				ls_redis_target_free(&t);
			}
			return true;
		}
		ls_log(LS_LOG_WARN, "redis", "connect failed, retrying",
		       "retry_ms=%lld error=%s", (long long)backoff,
		       ls_log_quote(err, q, sizeof q));
		sleep_unless_stopped(backoff);
		backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
	}
	return false;
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

/*
 * Loading warnings (a secret in a file every user can read), one line
 * each: to stderr for --check-config, else to the log. They name the file,
 * position and key, never the value.
 */
static void report_warnings(const ls_config *cfg, bool to_stderr)
{
	const char *w = cfg->warnings;
	while (w != NULL && *w != '\0') {
		const char *nl = strchr(w, '\n');
		int n = nl != NULL ? (int)(nl - w) : (int)strlen(w);
		if (to_stderr) {
			fprintf(stderr, "warning: %.*s\n", n, w);
		} else {
			char line[1024], q[1100];
			snprintf(line, sizeof line, "%.*s", n, w);
			ls_log(LS_LOG_WARN, "config", "secret in a file other users can read",
			       "where=%s", ls_log_quote(line, q, sizeof q));
		}
		w = nl != NULL ? nl + 1 : NULL;
	}
}

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
	ls_config_mask_secrets(&fresh);
	report_warnings(&fresh, false);
	ls_config_diff(cfg, &fresh, report_change, &restart_needed);
	ls_config_apply_live(cfg, &fresh);
	ls_config_free(&fresh);
	ls_log_set_level(cfg->log.level);
	ls_log(LS_LOG_INFO, "config", "reloaded", "path=%s restart_needed=%s",
	       ls_log_quote(cfg->path, q, sizeof q),
	       restart_needed ? "true" : "false");
	sd_notify(0, "READY=1");
}

static void log_stats(const ls_pipeline *p, const char *msg)
{
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);
	uint64_t consumed = 0, applied = 0, dup = 0, late = 0, dlq = 0;
	for (int i = 0; i < LS_SOURCE__COUNT; i++) {
		consumed += st->consumed[i];
		applied += st->applied[i];
		dup += st->duplicates[i];
		late += st->too_late[i];
	}
	for (int i = 0; i < LS_DLQ_REASON__COUNT; i++)
		dlq += st->dead_lettered[i];
	ls_log(LS_LOG_INFO, "main", msg,
	       "consumed=%llu applied=%llu duplicates=%llu too_late=%llu dead_lettered=%llu "
	       "commits=%llu leads_written=%llu redis_failures=%llu idle_rescored=%llu",
	       (unsigned long long)consumed, (unsigned long long)applied,
	       (unsigned long long)dup, (unsigned long long)late,
	       (unsigned long long)dlq, (unsigned long long)st->commits,
	       (unsigned long long)st->leads_written,
	       (unsigned long long)st->redis_failures,
	       (unsigned long long)st->rescored);
	const ls_scorer *sc = ls_pipeline_scorer(p);
	for (size_t i = 0; i < ls_scorer_n_models(sc); i++) {
		ls_scorer_model_stats ms;
		ls_scorer_stats(sc, i, &ms);
		ls_log(LS_LOG_INFO, "scorer", "model",
		       "model=%s version=%llu positives=%llu negatives=%llu timeouts=%llu "
		       "scored=%llu published=%llu eval_labels=%llu auc=%.4f logloss=%.4f ece=%.4f",
		       ms.name, (unsigned long long)ms.version,
		       (unsigned long long)ms.positives, (unsigned long long)ms.negatives,
		       (unsigned long long)ms.timeouts, (unsigned long long)ms.scored,
		       (unsigned long long)ms.published, (unsigned long long)ms.eval_labels,
		       ms.auc, ms.logloss, ms.ece);
	}
}

/*
 * Raise the soft fd limit to the hard one: every HTTP connection is a
 * descriptor, and the soft default (1,024) is what a flood of slow
 * clients used up. The HTTP server sizes its connection limits from the
 * result. Nothing here uses select(), so descriptors past 1,024 are safe.
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		ls_log(LS_LOG_WARN, "main", "cannot raise the fd limit", "soft=%llu hard=%llu error=%s",
		       (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
	else
		ls_log(LS_LOG_INFO, "main", "fd limit raised", "from=%llu to=%llu",
		       (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

/*
 * Why /readyz must say the loop is stuck, into buf ("" when it is not):
 * pipeline.ready_failed_batches batches in a row thrown away (a record
 * that fails every time, Redis or the broker failing every commit), or
 * records read and not committed for pipeline.ready_stall (whatever the
 * cause, e.g. Redis down for that long).
 */
static void pipeline_unready(const ls_config *cfg, const ls_pipeline *p, char *buf, size_t len)
{
	ls_pipeline_health h;
	ls_pipeline_health_get(p, &h);
	buf[0] = '\0';
	if (h.failed_in_row >= (uint64_t)cfg->pipeline.ready_failed_batches)
		snprintf(buf, len, "pipeline: %llu batches in a row failed and will be replayed "
			 "(pipeline.ready_failed_batches %lld); each failure is logged as "
			 "\"batch not committed\"",
			 (unsigned long long)h.failed_in_row,
			 (long long)cfg->pipeline.ready_failed_batches);
	else if (cfg->pipeline.ready_stall_ms > 0 && h.waiting_ms >= cfg->pipeline.ready_stall_ms)
		snprintf(buf, len, "pipeline: records have waited %lld ms with nothing committed "
			 "(pipeline.ready_stall %lld ms)",
			 (long long)h.waiting_ms, (long long)cfg->pipeline.ready_stall_ms);
}

/* What the daemon runs, in start order; stop() releases what is set. */
typedef struct running {
	ls_config *cfg;
	ls_codec *codec;
	ls_store *store;
	ls_kafka_consumer *consumer;
	ls_pipeline *pipeline;
	ls_telemetry *telemetry;
	ls_campaign *campaigns;
	ls_http *http;
} running;

/* The one failure path of start(): log why, return -1. */
static int cannot_start(const char *component, const char *msg, const char *err)
{
	char q[1100];
	ls_log(LS_LOG_ERROR, component, msg, "error=%s", ls_log_quote(err, q, sizeof q));
	return -1;
}

/*
 * Start everything in order (see the top of the file). 0: running; 1: a
 * stop was requested before Redis ever answered (a clean stop); -1: a
 * part could not start (logged). Whatever started is left in r for stop().
 */
static int start(running *r)
{
	const ls_config *cfg = r->cfg;
	char err[1024], q[1100];

	raise_nofile();
	r->codec = ls_codec_new(err, sizeof err);
	if (r->codec == NULL)
		return cannot_start("codec", "cannot load schemas", err);
	if (register_writers(r->codec, cfg) != 0)
		return -1;
	ls_store_settings ss = ls_settings_store(cfg);
	r->store = ls_store_new(&ss, err, sizeof err);
	if (r->store == NULL)
		return cannot_start("redis", "bad settings", err);
	if (!connect_store(r->store, cfg))
		return 1;
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	r->consumer = ls_kafka_consumer_new(&ks, err, sizeof err);
	if (r->consumer == NULL)
		return cannot_start("kafka", "cannot start consumer", err);
	ls_pipeline_settings ps;
	ls_settings_pipeline(cfg, &ps);
	r->pipeline = ls_pipeline_new(&ps, r->consumer, r->store, r->codec, err, sizeof err);
	if (r->pipeline == NULL)
		return cannot_start("pipeline", "cannot start", err);
	r->telemetry = ls_telemetry_new(cfg, LS_VERSION, err, sizeof err);
	if (r->telemetry == NULL)
		return cannot_start("metrics", "cannot start", err);
	ls_pipeline_observer obs = ls_telemetry_observer(r->telemetry);
	ls_pipeline_set_observer(r->pipeline, &obs);
	ls_campaign_settings cs = ls_settings_campaign(cfg);
	r->campaigns = ls_campaign_start(&cs, err, sizeof err);
	if (r->campaigns == NULL)
		return cannot_start("bandit", "cannot start", err);
	ls_http_env henv = {
		.cfg = cfg,
		.campaigns = r->campaigns,
		.telemetry = r->telemetry,
		.store = ls_settings_store(cfg),
		.set = ls_pipeline_features(r->pipeline),
		.lead_conf = ls_pipeline_lead_conf(r->pipeline),
	};
	r->http = ls_http_start(&henv, err, sizeof err);
	if (r->http == NULL)
		return cannot_start("http", "cannot start", err);
	ls_log(LS_LOG_INFO, "http", "listening", "listen=%s port=%u threads=%u",
	       ls_log_quote(cfg->http.listen, q, sizeof q), (unsigned)ls_http_port(r->http),
	       ls_http_threads(r->http));
	ls_telemetry_set_sources(r->telemetry, r->consumer, r->campaigns);
	ls_log(LS_LOG_INFO, "kafka", "subscribed",
	       "brokers=%s group_id=%s", ls_log_quote(cfg->kafka.brokers, q, 300),
	       ls_log_quote(cfg->kafka.group_id, q + 300, 300));
	return 0;
}

/* Batches until a stop is requested; reloads, health, models for the
 * HTTP handlers, readiness and progress between them. */
static void loop(running *r)
{
	ls_config *cfg = r->cfg;
	ls_pipeline *pipeline = r->pipeline;
	ls_kafka_consumer *consumer = r->consumer;
	uint64_t published = 0;
	int64_t telemetry_last = 0;
	bool ready = false;
	/* systemd restarts us when the loop stops pinging (WatchdogSec=) */
	uint64_t watchdog_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
	int64_t watchdog_every_ms = (int64_t)(watchdog_usec / 4000);
	int64_t watchdog_last = 0, stats_last = ls_clock_mono_ms();
	while (!stop_requested) {
		if (watchdog && ls_clock_mono_ms() - watchdog_last >= watchdog_every_ms) {
			sd_notify(0, "WATCHDOG=1");
			watchdog_last = ls_clock_mono_ms();
		}
		if (reload_requested) {
			reload_requested = 0;
			reload_config(cfg);
			ls_pipeline_settings ps;
			ls_settings_pipeline(cfg, &ps);
			ls_pipeline_reload(pipeline, &ps);
			ls_campaign_settings cs = ls_settings_campaign(cfg);
			ls_campaign_reconfigure(r->campaigns, &cs);
			published = 0; /* handlers see the new model keys now */
		}
		ls_pipeline_step(pipeline);
		if (ls_clock_mono_ms() - telemetry_last >= 250) {
			telemetry_last = ls_clock_mono_ms();
			ls_telemetry_publish(r->telemetry, pipeline);
			int parts = ls_kafka_consumer_assigned(consumer);
			ls_http_health hl = {
				.broker_ok = parts > 0, .partitions = parts,
				.redis_ok = !ls_pipeline_paused(pipeline),
				.paused = ls_pipeline_paused(pipeline),
			};
			pipeline_unready(cfg, pipeline, hl.pipeline, sizeof hl.pipeline);
			ls_http_set_health(r->http, &hl);
		}
		if (ls_pipeline_checkpoints(pipeline) != published) {
			/* handlers read models as of the last checkpoint */
			published = ls_pipeline_checkpoints(pipeline);
			ls_scorer_snapshot *snap =
				ls_scorer_snapshot_new(ls_pipeline_scorer(pipeline));
			if (snap != NULL)
				ls_http_publish(r->http, snap);
		}
		if (!ready && ls_kafka_consumer_ever_assigned(consumer) &&
		    !ls_pipeline_paused(pipeline)) {
			ready = true;
			ls_log(LS_LOG_INFO, "main", "ready",
			       "partitions=%d",
			       ls_kafka_consumer_assigned(consumer));
			sd_notify(0, "READY=1");
		}
		if (ls_clock_mono_ms() - stats_last >= 60000) {
			stats_last = ls_clock_mono_ms();
			log_stats(pipeline, "progress");
		}
	}
}

/*
 * Drain and release whatever start() started, whether the loop ran or
 * not: leave the group (committing), checkpoint, then stop HTTP before
 * the campaign service.
 */
static void stop(running *r)
{
	const ls_config *cfg = r->cfg;
	if (stop_requested) {
		sd_notify(0, "STOPPING=1");
		ls_log(LS_LOG_INFO, "main", "stopping", "signal=%d timeout_ms=%lld",
		       (int)stop_requested,
		       (long long)cfg->pipeline.shutdown_timeout_ms);
		arm_shutdown_timer(cfg->pipeline.shutdown_timeout_ms);
	}
	if (r->http != NULL) {
		ls_http_health hl = { .stopping = true };
		ls_http_set_health(r->http, &hl);
	}
	if (r->telemetry != NULL)
		ls_telemetry_set_sources(r->telemetry, NULL, r->campaigns);
	int64_t t0 = ls_clock_mono_ms();
	/* closing revokes the partitions, which commits through the pipeline */
	ls_kafka_consumer_close(r->consumer);
	if (r->consumer != NULL)
		ls_log(LS_LOG_INFO, "kafka", "left the group", "close_ms=%lld",
		       (long long)(ls_clock_mono_ms() - t0));
	if (r->pipeline != NULL) {
		/* the revocation committed everything; fold it into the
		 * shared models so a restart resumes from them */
		ls_pipeline_checkpoint(r->pipeline);
		log_stats(r->pipeline, "stopped");
		if (r->telemetry != NULL)
			ls_telemetry_publish(r->telemetry, r->pipeline);
	}
	ls_http_stop(r->http);
	/* after HTTP: no decision can be queued behind the last write */
	if (r->telemetry != NULL)
		ls_telemetry_set_sources(r->telemetry, NULL, NULL);
	ls_campaign_stop(r->campaigns);
	ls_telemetry_free(r->telemetry);
	ls_pipeline_free(r->pipeline);
	ls_store_free(r->store);
	ls_codec_free(r->codec);
}

/* 0 after a clean stop (also one before Redis ever answered), 1 when
 * something could not start. */
static int run(ls_config *cfg)
{
	running r = { .cfg = cfg };
	int started = start(&r);
	if (started == 0)
		loop(&r);
	stop(&r);
	return started < 0 ? 1 : 0;
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
		report_warnings(&cfg, true);
		printf("%s: configuration OK\n", path);
		ls_config_free(&cfg);
		return 0;
	}
	ls_log_set_level(cfg.log.level);
	ls_config_mask_secrets(&cfg);
	if (install_signals() != 0) {
		fprintf(stderr, "leadscored: sigaction: %s\n", strerror(errno));
		ls_config_free(&cfg);
		return 1;
	}
	char q[600];
	ls_log(LS_LOG_INFO, "main", "starting", "version=%s pid=%d config=%s",
	       LS_VERSION, (int)getpid(), ls_log_quote(path, q, sizeof q));
	report_warnings(&cfg, false);
	int rc = run(&cfg);
	ls_config_free(&cfg);
	return rc;
}
