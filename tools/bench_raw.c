/*
 * bench_raw.c - leadscore-bench-raw, the ceiling for tools/bench_process.py:
 * a bare librdkafka high-level consumer that reads N messages and does
 * nothing with them.
 *
 * It joins a new consumer group (auto.offset.reset=earliest, no commits),
 * subscribes to the five input topics and consumes until it has seen
 * --events messages or --timeout seconds pass. The rate runs from the first
 * message to the last, so the group join is left out, as it is for the
 * daemon and the Python pipeline (whose rates run from their first offset
 * commit to their last). Output on stdout, one key=value per line:
 *   messages=N
 *   join_s=X            subscribe to first message
 *   messages_per_s=X    first message to last
 * Exit 0 when all N arrived, 1 otherwise, 2 on bad arguments.
 *
 * Links librdkafka only, nothing of leadscore, so it measures the broker
 * and the client library and nothing else.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static volatile sig_atomic_t bench_raw_stop;

static void bench_raw_on_signal(int sig)
{
	(void)sig;
	bench_raw_stop = 1;
}

static double bench_raw_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_raw_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[512];
	if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "leadscore-bench-raw: %s=%s: %s\n", name, value, err);
		return -1;
	}
	return 0;
}

static void bench_raw_usage(FILE *out)
{
	fprintf(out,
		"usage: leadscore-bench-raw --bootstrap HOST:PORT --events N\n"
		"                           [--group ID] [--prefix leads.] [--timeout S]\n");
}

static int bench_raw_long(const char *s, long min, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const sources[] = { "email", "web", "call", "outcome", "profile" };
	const char *bootstrap = NULL, *prefix = "leads.";
	char group[128];
	long n = 0, timeout_s = 600;
	snprintf(group, sizeof group, "bench-raw-%ld-%ld", (long)time(NULL), (long)clock());
	static const struct option opts[] = {
		{ "bootstrap", required_argument, NULL, 'b' },
		{ "events", required_argument, NULL, 'n' },
		{ "group", required_argument, NULL, 'g' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'b': bootstrap = optarg; break;
		case 'g': snprintf(group, sizeof group, "%s", optarg); break;
		case 'p': prefix = optarg; break;
		case 'n':
			if (bench_raw_long(optarg, 1, &n) != 0) {
				fprintf(stderr, "leadscore-bench-raw: --events: expected a positive integer\n");
				return 2;
			}
			break;
		case 't':
			if (bench_raw_long(optarg, 1, &timeout_s) != 0) {
				fprintf(stderr, "leadscore-bench-raw: --timeout: expected a positive integer\n");
				return 2;
			}
			break;
		case 'h': bench_raw_usage(stdout); return 0;
		default: bench_raw_usage(stderr); return 2;
		}
	}
	if (bootstrap == NULL || n < 1) {
		bench_raw_usage(stderr);
		return 2;
	}
	signal(SIGINT, bench_raw_on_signal);
	signal(SIGTERM, bench_raw_on_signal);

	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (bench_raw_set(conf, "bootstrap.servers", bootstrap) != 0 ||
	    bench_raw_set(conf, "group.id", group) != 0 ||
	    bench_raw_set(conf, "auto.offset.reset", "earliest") != 0 ||
	    bench_raw_set(conf, "enable.auto.commit", "false") != 0 ||
	    bench_raw_set(conf, "enable.auto.offset.store", "false") != 0) {
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (rk == NULL) {
		fprintf(stderr, "leadscore-bench-raw: %s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(5);
	for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
		char topic[256];
		snprintf(topic, sizeof topic, "%s%s", prefix, sources[i]);
		rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	}
	rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "leadscore-bench-raw: subscribe: %s\n", rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return 1;
	}

	double start = bench_raw_now(), first = 0, last = 0;
	double deadline = start + (double)timeout_s;
	long got = 0;
	while (got < n && !bench_raw_stop && bench_raw_now() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			last = bench_raw_now();
			if (got++ == 0)
				first = last;
		} else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			fprintf(stderr, "leadscore-bench-raw: %s\n", rd_kafka_message_errstr(m));
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);

	printf("messages=%ld\n", got);
	if (got > 0)
		printf("join_s=%.3f\n", first - start);
	if (got < n || last <= first) {
		fprintf(stderr, "leadscore-bench-raw: read %ld of %ld messages\n", got, n);
		return 1;
	}
	/* got - 1 intervals between the first message and the last */
	printf("messages_per_s=%.0f\n", (double)(got - 1) / (last - first));
	return 0;
}
