/*
 * devbroker.c - leadscore-devbroker, a Kafka-protocol broker for development.
 *
 * Runs librdkafka's mock cluster as a standalone process so people, the demo
 * and the Python integration tests have a broker without a JVM. The mock
 * cluster listens on real TCP sockets on 127.0.0.1 and speaks the Kafka wire
 * protocol, so kcat, confluent-kafka and the daemon talk to it unchanged.
 *
 * Contract with the processes that start us: exactly one line
 * `bootstrap.servers=HOST:PORT[,...]` on stdout, flushed, once every topic
 * exists; nothing else ever goes to stdout (logs go to stderr via ls_log),
 * so a parent can read one line and know the broker is ready. SIGTERM or
 * SIGINT destroys the cluster and exits 0.
 *
 * Signals are blocked before librdkafka starts its threads and taken with
 * sigtimedwait() in main, so no signal handler runs in a librdkafka thread
 * and shutdown happens in ordinary code.
 *
 * Not a real broker: everything lives in memory and is lost on exit, and
 * each partition keeps only about its newest 5 MiB (at most 100,000 message
 * sets); older messages are dropped. See --help.
 */
#include "ls_build.h"
#include "ls_log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define DEVBROKER_MAX_TOPICS 256
#define DEVBROKER_MAX_BROKERS 16
#define DEVBROKER_MAX_PARTITIONS 10000

static const char *const devbroker_default_topics[] = {
	"leads.email",   "leads.web",    "leads.call",        "leads.outcome",
	"leads.profile", "leads.scores", "leads.dead_letter", "leads.decisions",
};

struct devbroker_opts {
	int brokers;
	int partitions;
	const char *topics[DEVBROKER_MAX_TOPICS];
	size_t topic_cnt;
	const char *bootstrap_file;
};

static void devbroker_usage(FILE *out)
{
	fprintf(out,
"Usage: leadscore-devbroker [OPTIONS]\n"
"\n"
"Run an in-memory Kafka-protocol broker (librdkafka's mock cluster) on\n"
"127.0.0.1 for development, demos and integration tests.\n"
"\n"
"Options:\n"
"  --brokers N          number of brokers, 1..%d (default 1)\n"
"  --partitions N       partitions per created topic, 1..%d (default 4)\n"
"  --topic NAME         create topic NAME; repeatable. Default: leads.email\n"
"                       leads.web leads.call leads.outcome leads.profile\n"
"                       leads.scores leads.dead_letter leads.decisions\n"
"  --bootstrap-file P   also write the bootstrap servers to file P (written\n"
"                       to a temp file and renamed, so readers never see a\n"
"                       partial line; removed again on shutdown)\n"
"  --help               show this help and exit\n"
"  --version            show the version and exit\n"
"\n"
"Once the cluster is up and every topic exists, exactly one line\n"
"  bootstrap.servers=127.0.0.1:PORT[,127.0.0.1:PORT...]\n"
"is printed on stdout. Logs go to stderr. SIGTERM or SIGINT stops the\n"
"broker and exits 0.\n"
"\n"
"Behaviour of the mock cluster worth knowing:\n"
"  - Any topic a client names that does not exist is auto-created with 4\n"
"    partitions, whatever --partitions says: a producer sending to it, a\n"
"    consumer subscribing to it, even a metadata request (kcat -L -t X).\n"
"    The mock cluster ignores allow.auto.create.topics. Name every topic\n"
"    you need with --topic to get a known partition count; listing all\n"
"    topics (kcat -L) creates none.\n"
"  - The replication factor is min(3, brokers).\n"
"  - Everything is in memory and lost on exit; each partition keeps only\n"
"    about its newest 5 MiB (at most 100,000 message sets), older\n"
"    messages are dropped.\n"
"  - Consumer groups and offset commits work; the CreateTopics admin API\n"
"    does not.\n",
		DEVBROKER_MAX_BROKERS, DEVBROKER_MAX_PARTITIONS);
}

static bool devbroker_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return false;
	*out = (int)v;
	return true;
}

/* Kafka's own rule: 1..249 characters of [a-zA-Z0-9._-], not "." or "..". */
static bool devbroker_valid_topic(const char *t)
{
	size_t len = strlen(t);
	if (len == 0 || len > 249 || strcmp(t, ".") == 0 ||
	    strcmp(t, "..") == 0)
		return false;
	for (const char *p = t; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			  c == '-';
		if (!ok)
			return false;
	}
	return true;
}

/*
 * Returns -1 to go on, or the exit status for main: 0 after --help or
 * --version, 2 for a usage error.
 */
static int devbroker_parse_args(int argc, char **argv,
				struct devbroker_opts *o)
{
	enum { OPT_BROKERS = 1, OPT_PARTITIONS, OPT_TOPIC, OPT_FILE,
	       OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, OPT_BROKERS },
		{ "partitions", required_argument, NULL, OPT_PARTITIONS },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "bootstrap-file", required_argument, NULL, OPT_FILE },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	o->brokers = 1;
	o->partitions = 4;
	o->topic_cnt = 0;
	o->bootstrap_file = NULL;

	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_BROKERS:
			if (!devbroker_parse_int(optarg, 1,
						 DEVBROKER_MAX_BROKERS,
						 &o->brokers)) {
				fprintf(stderr, "leadscore-devbroker: --brokers "
					"must be 1..%d, got '%s'\n",
					DEVBROKER_MAX_BROKERS, optarg);
				return 2;
			}
			break;
		case OPT_PARTITIONS:
			if (!devbroker_parse_int(optarg, 1,
						 DEVBROKER_MAX_PARTITIONS,
						 &o->partitions)) {
				fprintf(stderr, "leadscore-devbroker: "
					"--partitions must be 1..%d, got '%s'\n",
					DEVBROKER_MAX_PARTITIONS, optarg);
				return 2;
			}
			break;
		case OPT_TOPIC:
			if (!devbroker_valid_topic(optarg)) {
				fprintf(stderr, "leadscore-devbroker: invalid "
					"topic name '%s'\n", optarg);
				return 2;
			}
			if (o->topic_cnt == DEVBROKER_MAX_TOPICS) {
				fprintf(stderr, "leadscore-devbroker: at most "
					"%d --topic options\n",
					DEVBROKER_MAX_TOPICS);
				return 2;
			}
			o->topics[o->topic_cnt++] = optarg;
			break;
		case OPT_FILE:
			if (optarg[0] == '\0') {
				fprintf(stderr, "leadscore-devbroker: "
					"--bootstrap-file needs a path\n");
				return 2;
			}
			o->bootstrap_file = optarg;
			break;
		case OPT_HELP:
			devbroker_usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("leadscore-devbroker %s (librdkafka %s)\n",
			       LS_VERSION, rd_kafka_version_str());
			return 0;
		default:
			devbroker_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leadscore-devbroker: unexpected argument "
			"'%s'\n", argv[optind]);
		devbroker_usage(stderr);
		return 2;
	}
	if (o->topic_cnt == 0) {
		size_t n = sizeof devbroker_default_topics /
			   sizeof devbroker_default_topics[0];
		for (size_t i = 0; i < n; i++)
			o->topics[i] = devbroker_default_topics[i];
		o->topic_cnt = n;
	}
	return -1;
}

/* librdkafka's own log lines, in our format on stderr. */
static void devbroker_log_cb(const rd_kafka_t *rk, int level, const char *fac,
			     const char *buf)
{
	(void)rk;
	/*
	 * The handle exists only to own the mock cluster and is never meant
	 * to connect anywhere, so its "no bootstrap.servers" warning is noise.
	 */
	if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers"))
		return;
	char qbuf[1024];
	ls_log_level l = level <= 3 ? LS_LOG_ERROR :
			 level <= 4 ? LS_LOG_WARN :
			 level <= 6 ? LS_LOG_INFO : LS_LOG_DEBUG;
	ls_log(l, "rdkafka", fac, "detail=%s",
	       ls_log_quote(buf, qbuf, sizeof qbuf));
}

/*
 * Write "bootstrap\n" to path through a temp file in the same directory and
 * rename(2), so a reader polling for the file sees all of it or nothing.
 */
static bool devbroker_write_file(const char *path, const char *bootstrap)
{
	char tmp[4096];
	int w = snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	if (w < 0 || (size_t)w >= sizeof tmp) {
		ls_error("devbroker", "bootstrap file path too long", NULL);
		return false;
	}
	char qpath[1024];
	ls_log_quote(path, qpath, sizeof qpath);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ls_error("devbroker", "cannot create bootstrap file",
			 "path=%s error=\"%s\"", qpath, strerror(errno));
		return false;
	}
	size_t len = strlen(bootstrap);
	bool ok = true;
	const char *parts[2] = { bootstrap, "\n" };
	size_t lens[2] = { len, 1 };
	for (int i = 0; i < 2 && ok; i++) {
		const char *p = parts[i];
		size_t left = lens[i];
		while (left > 0) {
			ssize_t n = write(fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ok = false;
				break;
			}
			p += n;
			left -= (size_t)n;
		}
	}
	int saved = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = false;
		saved = errno;
	}
	if (!ok) {
		unlink(tmp);
		ls_error("devbroker", "cannot write bootstrap file",
			 "path=%s error=\"%s\"", qpath, strerror(saved));
	}
	return ok;
}

/* Cluster up, topics created, line printed; false after logging why. */
static bool devbroker_start(const struct devbroker_opts *o, rd_kafka_t **rkp,
			    rd_kafka_mock_cluster_t **mcp, bool *file_written)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL) {
		ls_error("devbroker", "out of memory", NULL);
		return false;
	}
	rd_kafka_conf_set_log_cb(conf, devbroker_log_cb);
	if (rd_kafka_conf_set(conf, "client.id", "leadscore-devbroker", errstr,
			      sizeof errstr) != RD_KAFKA_CONF_OK) {
		ls_error("devbroker", "bad librdkafka config", "error=\"%s\"",
			 errstr);
		rd_kafka_conf_destroy(conf);
		return false;
	}
	/* The handle only does book keeping for the mock cluster. */
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
				      sizeof errstr);
	if (rk == NULL) {
		ls_error("devbroker", "rd_kafka_new failed", "error=\"%s\"",
			 errstr);
		rd_kafka_conf_destroy(conf);
		return false;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, o->brokers);
	if (mc == NULL) {
		ls_error("devbroker", "cannot create mock cluster",
			 "brokers=%d", o->brokers);
		rd_kafka_destroy(rk);
		return false;
	}
	*rkp = rk;
	*mcp = mc;

	int rf = o->brokers < 3 ? o->brokers : 3;
	for (size_t i = 0; i < o->topic_cnt; i++) {
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
			mc, o->topics[i], o->partitions, rf);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			ls_error("devbroker", "cannot create topic",
				 "topic=%s error=\"%s\"", o->topics[i],
				 rd_kafka_err2str(e));
			return false;
		}
		ls_info("devbroker", "topic created",
			"topic=%s partitions=%d replication_factor=%d",
			o->topics[i], o->partitions, rf);
	}

	const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
	if (bootstrap == NULL) {
		ls_error("devbroker", "mock cluster has no bootstrap", NULL);
		return false;
	}
	if (o->bootstrap_file != NULL) {
		if (!devbroker_write_file(o->bootstrap_file, bootstrap))
			return false;
		*file_written = true;
	}
	/* The one stdout line: the parent's readiness signal. */
	if (printf("bootstrap.servers=%s\n", bootstrap) < 0 ||
	    fflush(stdout) != 0) {
		ls_error("devbroker", "cannot write bootstrap line to stdout",
			 "error=\"%s\"", strerror(errno));
		return false;
	}
	ls_info("devbroker", "ready",
		"bootstrap=%s brokers=%d topics=%zu partitions=%d version=%s",
		bootstrap, o->brokers, o->topic_cnt, o->partitions,
		LS_VERSION);
	return true;
}

/* Wait for SIGTERM/SIGINT (blocked in every thread); returns its number. */
static int devbroker_wait(rd_kafka_t *rk, const sigset_t *set)
{
	for (;;) {
		struct timespec tick = { 1, 0 };
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig > 0)
			return sig;
		if (errno != EAGAIN && errno != EINTR) {
			ls_error("devbroker", "sigtimedwait failed",
				 "error=\"%s\"", strerror(errno));
			return -1;
		}
		rd_kafka_poll(rk, 0); /* serve error and log events */
	}
}

int main(int argc, char **argv)
{
	struct devbroker_opts opts;
	int rc = devbroker_parse_args(argc, argv, &opts);
	if (rc >= 0)
		return rc;

	/* Blocked before any librdkafka thread exists, so all inherit it. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		ls_error("devbroker", "cannot block signals", NULL);
		return 1;
	}
	/* A parent that closed our stdout must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	rd_kafka_t *rk = NULL;
	rd_kafka_mock_cluster_t *mc = NULL;
	bool file_written = false;
	bool ok = devbroker_start(&opts, &rk, &mc, &file_written);
	int sig = 0;
	if (ok) {
		sig = devbroker_wait(rk, &set);
		ok = sig > 0;
	}
	if (sig > 0)
		ls_info("devbroker", "stopping", "signal=%s",
			sig == SIGTERM ? "SIGTERM" : "SIGINT");
	if (mc != NULL)
		rd_kafka_mock_cluster_destroy(mc);
	if (rk != NULL)
		rd_kafka_destroy(rk);
	/* a stale file would point the next reader at a dead port */
	if (file_written)
		unlink(opts.bootstrap_file);
	if (ok)
		ls_info("devbroker", "stopped", NULL);
	return ok ? 0 : 1;
}
