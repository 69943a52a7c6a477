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
 * Fault control (--control, for chaos tests): after the bootstrap line we
 * read commands from stdin, one per line, and answer each with exactly one
 * line on stdout, `ok` or `error REASON`, flushed, in order. Each command
 * is one librdkafka mock call (broker down/up, partition leader, injected
 * request errors, round-trip time), done by the time `ok` is printed, so a
 * test can order its faults against what its clients do. Without
 * --control stdin is never read and stdout stays the one line.
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
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
	bool control;
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
"  --control            read fault-control commands on stdin (below)\n"
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
"    does not.\n"
"\n"
"Fault control (--control): after the bootstrap line, one command per line\n"
"on stdin, each answered by one line on stdout, `ok` or `error REASON`,\n"
"once it has taken effect. Brokers are numbered 1..N. EOF on stdin ends\n"
"the control channel, not the broker.\n"
"  down BROKER              close the broker's connections and refuse new\n"
"                           ones (its partitions keep it as leader)\n"
"  up BROKER                accept connections again\n"
"  leader TOPIC PART BROKER make BROKER the partition's leader (-1: none;\n"
"                           an unknown topic is created)\n"
"  errors APIKEY ERR COUNT  fail the next COUNT requests of type APIKEY, on\n"
"                           any broker, with ERR (rd_kafka_mock_push_\n"
"                           request_errors). APIKEY: a number or Produce,\n"
"                           Fetch, ListOffsets, Metadata, OffsetCommit,\n"
"                           OffsetFetch, FindCoordinator, JoinGroup,\n"
"                           Heartbeat, LeaveGroup, SyncGroup, InitProducerId.\n"
"                           ERR: a number or a librdkafka error name such\n"
"                           as NOT_LEADER_FOR_PARTITION.\n"
"  clear APIKEY             drop the errors still queued for APIKEY\n"
"  rtt BROKER MS            delay the broker's responses by MS ms\n"
"  coordinator group|transaction KEY BROKER\n"
"                           make BROKER the coordinator of KEY\n"
"  ping                     answer ok\n",
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
	       OPT_CONTROL, OPT_HELP, OPT_VERSION };
	static const struct option longopts[] = {
		{ "brokers", required_argument, NULL, OPT_BROKERS },
		{ "partitions", required_argument, NULL, OPT_PARTITIONS },
		{ "topic", required_argument, NULL, OPT_TOPIC },
		{ "bootstrap-file", required_argument, NULL, OPT_FILE },
		{ "control", no_argument, NULL, OPT_CONTROL },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	o->brokers = 1;
	o->partitions = 4;
	o->topic_cnt = 0;
	o->bootstrap_file = NULL;
	o->control = false;

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
		case OPT_CONTROL:
			o->control = true;
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

/* --- fault control ------------------------------------------------------- */

#define DEVBROKER_CTL_LINE 1024
#define DEVBROKER_CTL_ARGS 6

/* The request types a fault test is likely to aim at (Kafka API keys). */
static const struct {
	const char *name;
	int16_t key;
} devbroker_apikeys[] = {
	{ "Produce", 0 },        { "Fetch", 1 },           { "ListOffsets", 2 },
	{ "Metadata", 3 },       { "OffsetCommit", 8 },    { "OffsetFetch", 9 },
	{ "FindCoordinator", 10 }, { "JoinGroup", 11 },    { "Heartbeat", 12 },
	{ "LeaveGroup", 13 },    { "SyncGroup", 14 },      { "InitProducerId", 22 },
};

static bool devbroker_parse_apikey(const char *s, int16_t *out)
{
	size_t n = sizeof devbroker_apikeys / sizeof devbroker_apikeys[0];
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(s, devbroker_apikeys[i].name) == 0) {
			*out = devbroker_apikeys[i].key;
			return true;
		}
	}
	int v;
	if (!devbroker_parse_int(s, 0, 1000, &v))
		return false;
	*out = (int16_t)v;
	return true;
}

/* A librdkafka error code by number or by name, with or without the
 * RD_KAFKA_RESP_ERR_ prefix (the names of rd_kafka_get_err_descs()). */
static bool devbroker_parse_err(const char *s, rd_kafka_resp_err_t *out)
{
	int v;
	if (devbroker_parse_int(s, -200, 10000, &v)) {
		*out = (rd_kafka_resp_err_t)v;
		return true;
	}
	const char *prefix = "RD_KAFKA_RESP_ERR_";
	if (strncasecmp(s, prefix, strlen(prefix)) == 0)
		s += strlen(prefix);
	const struct rd_kafka_err_desc *descs;
	size_t n;
	rd_kafka_get_err_descs(&descs, &n);
	for (size_t i = 0; i < n; i++) {
		if (descs[i].name != NULL && strcasecmp(descs[i].name, s) == 0) {
			*out = descs[i].code;
			return true;
		}
	}
	return false;
}

/* Split line in place at blanks; returns the word count or -1 for too many. */
static int devbroker_split(char *line, char **argv, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *w = strtok_r(line, " \t\r", &save); w != NULL;
	     w = strtok_r(NULL, " \t\r", &save)) {
		if (n == max)
			return -1;
		argv[n++] = w;
	}
	return n;
}

/*
 * Run one control command; 0 with nothing in reply, or -1 with the reason
 * in reply. Broker ids are checked against --brokers here: the mock
 * cluster would take -1 as "every broker", which no command here means.
 */
static int devbroker_command(rd_kafka_mock_cluster_t *mc, int brokers,
			     char *line, char *reply, size_t replylen)
{
	char *av[DEVBROKER_CTL_ARGS];
	int ac = devbroker_split(line, av, DEVBROKER_CTL_ARGS);
	if (ac <= 0) {
		snprintf(reply, replylen, ac < 0 ? "too many words" : "empty command");
		return -1;
	}
	const char *cmd = av[0];
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	int broker, n;
	if (strcmp(cmd, "ping") == 0 && ac == 1) {
		return 0;
	} else if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) &&
		   ac == 2) {
		if (!devbroker_parse_int(av[1], 1, brokers, &broker)) {
			snprintf(reply, replylen, "broker must be 1..%d", brokers);
			return -1;
		}
		e = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, broker)
				  : rd_kafka_mock_broker_set_up(mc, broker);
	} else if (strcmp(cmd, "leader") == 0 && ac == 4) {
		int part;
		if (!devbroker_valid_topic(av[1])) {
			snprintf(reply, replylen, "invalid topic name");
			return -1;
		}
		if (!devbroker_parse_int(av[2], 0, DEVBROKER_MAX_PARTITIONS - 1,
					 &part)) {
			snprintf(reply, replylen, "bad partition");
			return -1;
		}
		if (strcmp(av[3], "-1") != 0 &&
		    !devbroker_parse_int(av[3], 1, brokers, &broker)) {
			snprintf(reply, replylen, "broker must be 1..%d or -1",
				 brokers);
			return -1;
		}
		if (strcmp(av[3], "-1") == 0)
			broker = -1;
		e = rd_kafka_mock_partition_set_leader(mc, av[1], part, broker);
	} else if (strcmp(cmd, "errors") == 0 && ac == 4) {
		int16_t key;
		rd_kafka_resp_err_t err;
		if (!devbroker_parse_apikey(av[1], &key)) {
			snprintf(reply, replylen, "unknown api key");
			return -1;
		}
		if (!devbroker_parse_err(av[2], &err)) {
			snprintf(reply, replylen, "unknown error code");
			return -1;
		}
		if (!devbroker_parse_int(av[3], 1, 100000, &n)) {
			snprintf(reply, replylen, "count must be 1..100000");
			return -1;
		}
		rd_kafka_resp_err_t *errs = malloc((size_t)n * sizeof *errs);
		if (errs == NULL) {
			snprintf(reply, replylen, "out of memory");
			return -1;
		}
		for (int i = 0; i < n; i++)
			errs[i] = err;
		rd_kafka_mock_push_request_errors_array(mc, key, (size_t)n, errs);
		free(errs);
	} else if (strcmp(cmd, "clear") == 0 && ac == 2) {
		int16_t key;
		if (!devbroker_parse_apikey(av[1], &key)) {
			snprintf(reply, replylen, "unknown api key");
			return -1;
		}
		rd_kafka_mock_clear_request_errors(mc, key);
	} else if (strcmp(cmd, "rtt") == 0 && ac == 3) {
		if (!devbroker_parse_int(av[1], 1, brokers, &broker) ||
		    !devbroker_parse_int(av[2], 0, 600000, &n)) {
			snprintf(reply, replylen,
				 "usage: rtt BROKER(1..%d) MS(0..600000)", brokers);
			return -1;
		}
		e = rd_kafka_mock_broker_set_rtt(mc, broker, n);
	} else if (strcmp(cmd, "coordinator") == 0 && ac == 4) {
		if (strcmp(av[1], "group") != 0 &&
		    strcmp(av[1], "transaction") != 0) {
			snprintf(reply, replylen, "type must be group or transaction");
			return -1;
		}
		if (!devbroker_parse_int(av[3], 1, brokers, &broker)) {
			snprintf(reply, replylen, "broker must be 1..%d", brokers);
			return -1;
		}
		e = rd_kafka_mock_coordinator_set(mc, av[1], av[2], broker);
	} else {
		snprintf(reply, replylen, "unknown command or wrong arguments "
			 "(see --help)");
		return -1;
	}
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(reply, replylen, "%s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* Reads stdin into lines for devbroker_command; owned by main's loop. */
typedef struct devbroker_ctl {
	char buf[DEVBROKER_CTL_LINE];
	size_t len;
	bool overlong; /* discarding the rest of a line that did not fit */
	bool eof;
} devbroker_ctl;

static bool devbroker_reply(const char *status, const char *reason)
{
	int w = reason != NULL ? printf("%s %s\n", status, reason)
			       : printf("%s\n", status);
	return w >= 0 && fflush(stdout) == 0;
}

/*
 * Read what stdin has and run every complete line. false only when stdout
 * is gone (nobody hears the answers any more); EOF on stdin just ends
 * control.
 */
static bool devbroker_ctl_read(devbroker_ctl *c, rd_kafka_mock_cluster_t *mc,
			       int brokers)
{
	ssize_t n = read(STDIN_FILENO, c->buf + c->len,
			 sizeof c->buf - 1 - c->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0) {
		c->eof = true;
		ls_info("devbroker", "control channel closed", NULL);
		return true;
	}
	c->len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl == NULL) {
			if (c->len == sizeof c->buf - 1) {
				c->overlong = true;
				c->len = 0;
			}
			return true;
		}
		*nl = '\0';
		size_t used = (size_t)(nl - c->buf) + 1;
		bool ok;
		if (c->overlong) {
			c->overlong = false;
			ok = devbroker_reply("error", "line too long");
		} else {
			char line[DEVBROKER_CTL_LINE], reply[256], qline[1200];
			memcpy(line, c->buf, used);
			ls_log_quote(line, qline, sizeof qline);
			if (devbroker_command(mc, brokers, line, reply,
					      sizeof reply) == 0) {
				ls_info("devbroker", "control", "command=%s",
					qline);
				ok = devbroker_reply("ok", NULL);
			} else {
				ls_warn("devbroker", "control command failed",
					"command=%s reason=\"%s\"", qline, reply);
				ok = devbroker_reply("error", reply);
			}
		}
		if (!ok)
			return false;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
}

/*
 * Wait for SIGTERM/SIGINT (blocked in every thread); returns its number,
 * or -1 on failure. With control on, serves stdin commands meanwhile.
 */
static int devbroker_wait(rd_kafka_t *rk, rd_kafka_mock_cluster_t *mc,
			  const struct devbroker_opts *o, const sigset_t *set)
{
	devbroker_ctl ctl = { .len = 0, .overlong = false, .eof = !o->control };
	for (;;) {
		if (!ctl.eof) {
			/* commands answered within 50 ms, signals too */
			struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
			int r = poll(&pfd, 1, 50);
			if (r < 0 && errno != EINTR) {
				ls_error("devbroker", "poll failed",
					 "error=\"%s\"", strerror(errno));
				return -1;
			}
			if (r > 0 && !devbroker_ctl_read(&ctl, mc, o->brokers)) {
				ls_error("devbroker", "cannot answer on stdout",
					 "error=\"%s\"", strerror(errno));
				return -1;
			}
		}
		struct timespec tick = { ctl.eof ? 1 : 0, 0 };
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
		sig = devbroker_wait(rk, mc, &opts, &set);
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
