/*
 * bench_pipeline.c - leadscore-bench: end-to-end ingest throughput.
 *
 * In one run, against one broker (librdkafka's mock cluster, in process)
 * and one real redis-server (unix socket, temp dir):
 *   1. produce N Avro events over L leads to the five input topics;
 *   2. raw: a plain librdkafka consumer reads all N (the ceiling);
 *   3. pipeline: the daemon's own loop (decode, windows, Redis state and
 *      offsets committed atomically every pipeline.commit_interval)
 *      processes all N, the final commit included;
 *   4. optionally a baseline command (the Python pipeline in
 *      tools/bench_baseline.py) against the same broker and a fresh db,
 *      which must print `events_per_s=X`.
 * Rates are measured from the first message to the last, so group-join
 * time is excluded for every contestant alike. Ratios within one run are
 * what BENCHMARKS.md quotes; bare rates vary with the machine's load.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ls_codec.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_log.h"
#include "ls_pipeline.h"
#include "ls_settings.h"
#include "ls_store.h"
#include "ls_testenv.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static const char *const categories[] = { "pricing", "product", "docs", "blog", "careers" };
static const char *const topic_names[] = { "leads.email", "leads.web", "leads.call",
					   "leads.outcome", "leads.profile" };

/* A plausible mix: mostly email and web, some calls, few outcomes/profiles. */
static void make_event(ls_event *ev, long i, long leads, int64_t now, char *id,
		       char *lead, ls_attribute *attr, ls_metric *met)
{
	memset(ev, 0, sizeof *ev);
	sprintf(id, "ev-%ld", i);
	sprintf(lead, "lead-%06ld", (long)(rnd() % (uint64_t)leads));
	ev->event_id = id;
	ev->lead_id = lead;
	/* arrival order roughly follows event time, as in production */
	ev->ts = now - 7LL * 86400000 + i * 50 + (int64_t)(rnd() % 60000);
	unsigned r = (unsigned)(rnd() % 100);
	if (r < 42) {
		ev->source = LS_SOURCE_EMAIL;
		ev->u.email.type = (ls_email_type)(rnd() % 5);
		ev->u.email.campaign_id = "spring";
	} else if (r < 84) {
		ev->source = LS_SOURCE_WEB;
		ev->u.web.type = rnd() % 10 == 0 ? LS_WEB_FORM_SUBMIT : LS_WEB_PAGE_VIEW;
		ev->u.web.url = "/pricing";
		ev->u.web.page_category = categories[rnd() % 5];
		ev->u.web.has_duration_ms = true;
		ev->u.web.duration_ms = (int64_t)(rnd() % 120000);
		ev->u.web.session_id = "s-1";
	} else if (r < 96) {
		ev->source = LS_SOURCE_CALL;
		ev->u.call.direction = LS_CALL_OUTBOUND;
		ev->u.call.outcome = (ls_call_outcome)(rnd() % 5);
		ev->u.call.duration_s = (int64_t)(rnd() % 900);
		ev->u.call.has_sentiment = true;
		ev->u.call.sentiment = (double)(rnd() % 200) / 100.0 - 1.0;
	} else if (r < 98) {
		ev->source = LS_SOURCE_OUTCOME;
		ev->u.outcome.outcome = (ls_outcome_type)(rnd() % 5);
	} else {
		ev->source = LS_SOURCE_PROFILE;
		attr->key = "industry";
		attr->value = rnd() % 2 ? "saas" : "retail";
		met->key = "employees";
		met->value = (double)(rnd() % 5000);
		ev->u.profile.n_attributes = 1;
		ev->u.profile.attributes = attr;
		ev->u.profile.n_metrics = 1;
		ev->u.profile.metrics = met;
	}
}

static int produce_all(const char *bootstrap, long n, long leads)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof err)) {
		fprintf(stderr, "bench: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL) {
		fprintf(stderr, "bench: %s\n", err);
		return -1;
	}
	ls_codec *codec = ls_codec_new(err, sizeof err);
	ls_buf buf;
	ls_buf_init(&buf);
	int64_t now = (int64_t)time(NULL) * 1000;
	int rc = 0;
	for (long i = 0; i < n && codec != NULL; i++) {
		ls_event ev;
		char id[32], lead[32];
		ls_attribute attr;
		ls_metric met;
		make_event(&ev, i, leads, now - n * 50, id, lead, &attr, &met);
		ls_buf_reset(&buf);
		if (ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof err) != 0) {
			fprintf(stderr, "bench: encode: %s\n", err);
			rc = -1;
			break;
		}
		for (;;) {
			rd_kafka_resp_err_t e = rd_kafka_producev(
				rk, RD_KAFKA_V_TOPIC(topic_names[ev.source]),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_KEY(lead, strlen(lead)),
				RD_KAFKA_V_VALUE(buf.data, buf.len), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				rd_kafka_poll(rk, 10);
				continue;
			}
			if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
				fprintf(stderr, "bench: produce: %s\n", rd_kafka_err2str(e));
				rc = -1;
			}
			break;
		}
		if (rc != 0)
			break;
		rd_kafka_poll(rk, 0);
	}
	if (codec == NULL)
		rc = -1;
	if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		rc = -1;
	ls_buf_free(&buf);
	ls_codec_free(codec);
	rd_kafka_destroy(rk);
	return rc;
}

static rd_kafka_t *consumer(const char *bootstrap, const char *group)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (rk == NULL)
		return NULL;
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(5);
	for (int i = 0; i < 5; i++)
		rd_kafka_topic_partition_list_add(sub, topic_names[i], RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	return rk;
}

/* The ceiling: read every message, touch its bytes, do nothing else. */
static double raw_rate(const char *bootstrap, long n)
{
	rd_kafka_t *rk = consumer(bootstrap, "bench-raw");
	if (rk == NULL)
		return -1;
	long got = 0;
	double t0 = 0, t1 = 0, deadline = now_s() + 300;
	unsigned long long sum = 0;
	while (got < n && now_s() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			if (got == 0)
				t0 = now_s();
			sum += m->len;
			got++;
			t1 = now_s();
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	if (got < n || t1 <= t0)
		return -1;
	fprintf(stderr, "raw: %ld messages, %llu bytes\n", got, sum);
	return (double)(got - 1) / (t1 - t0);
}

static int set_str(char **slot, const char *v)
{
	char *c = strdup(v);
	if (c == NULL)
		return -1;
	free(*slot);
	*slot = c;
	return 0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* Redis MEMORY USAGE of up to 1,000 leads spread over the id space. */
static void memory_per_lead(ls_store *store, long leads)
{
	long long v[1000];
	size_t n = 0;
	char err[256], id[32];
	long step = leads / 1000 > 0 ? leads / 1000 : 1;
	for (long i = 0; i < leads && n < 1000; i += step) {
		sprintf(id, "lead-%06ld", i);
		long long b;
		if (ls_store_memory_usage(store, id, &b, err, sizeof err) == 0 && b > 0)
			v[n++] = b;
	}
	if (n == 0)
		return;
	qsort(v, n, sizeof v[0], cmp_ll);
	long long sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	printf("redis_memory_per_lead_bytes leads_sampled=%zu min=%lld median=%lld mean=%.0f p95=%lld max=%lld\n",
	       n, v[0], v[n / 2], (double)sum / (double)n, v[n * 95 / 100], v[n - 1]);
}

static double pipeline_rate(const char *bootstrap, const char *redis_url, long n,
			    long batch, long leads, double *leads_written)
{
	char err[1024];
	ls_config cfg;
	ls_config_init_defaults(&cfg);
	double rate = -1;
	ls_codec *codec = NULL;
	ls_store *store = NULL;
	ls_kafka_consumer *kc = NULL;
	ls_pipeline *p = NULL;
	if (set_str(&cfg.kafka.brokers, bootstrap) || set_str(&cfg.redis.url, redis_url) ||
	    set_str(&cfg.kafka.group_id, "bench-pipe"))
		goto out;
	cfg.pipeline.batch_size = batch;
	/* the generator spreads events over 7 days: accept all of them */
	cfg.pipeline.grace_ms = 8LL * 86400000;
	codec = ls_codec_new(err, sizeof err);
	ls_store_settings ss = ls_settings_store(&cfg);
	store = ls_store_new(&ss, err, sizeof err);
	if (codec == NULL || store == NULL || ls_store_connect(store, err, sizeof err) != 0)
		goto fail;
	ls_kafka_settings ks = ls_settings_kafka(&cfg);
	kc = ls_kafka_consumer_new(&ks, err, sizeof err);
	if (kc == NULL)
		goto fail;
	p = ls_pipeline_new(&cfg, kc, store, codec, err, sizeof err);
	if (p == NULL)
		goto fail;
	long done = 0;
	double t0 = 0, t1 = 0, deadline = now_s() + 600;
	while (done < n && now_s() < deadline) {
		double ts = now_s();
		int k = ls_pipeline_step(p);
		if (k > 0) {
			if (done == 0)
				t0 = ts;
			done += k;
			t1 = now_s();
		}
	}
	/* the last interval's work counts only once it is committed */
	if (done >= n && ls_pipeline_commit(p) == 0)
		t1 = now_s();
	else
		done = 0;
	if (done >= n && t1 > t0) {
		rate = (double)done / (t1 - t0);
		*leads_written = (double)ls_pipeline_stats_get(p)->leads_written;
		memory_per_lead(store, leads);
	}
	goto out;
fail:
	fprintf(stderr, "bench: pipeline: %s\n", err);
out:
	ls_kafka_consumer_close(kc);
	ls_pipeline_free(p);
	ls_store_free(store);
	ls_codec_free(codec);
	ls_config_free(&cfg);
	return rate;
}

static double baseline_rate(const char *cmd, const char *bootstrap,
			    const char *redis_url, long n)
{
	char line[2048];
	snprintf(line, sizeof line,
		 "LS_BENCH_BOOTSTRAP='%s' LS_BENCH_REDIS_URL='%s' LS_BENCH_EVENTS=%ld %s",
		 bootstrap, redis_url, n, cmd);
	FILE *f = popen(line, "r");
	if (f == NULL)
		return -1;
	double rate = -1;
	char buf[512];
	while (fgets(buf, sizeof buf, f) != NULL) {
		fputs(buf, stderr);
		char *s = strstr(buf, "events_per_s=");
		if (s != NULL)
			rate = strtod(s + 13, NULL);
	}
	if (pclose(f) != 0)
		return -1;
	return rate;
}

int main(int argc, char **argv)
{
	long n = 200000, leads = 20000, batch = 5000;
	int partitions = 4;
	const char *baseline = NULL;
	static const struct option opts[] = {
		{ "events", required_argument, NULL, 'n' },
		{ "leads", required_argument, NULL, 'l' },
		{ "batch", required_argument, NULL, 'b' },
		{ "partitions", required_argument, NULL, 'p' },
		{ "baseline", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': n = strtol(optarg, NULL, 10); break;
		case 'l': leads = strtol(optarg, NULL, 10); break;
		case 'b': batch = strtol(optarg, NULL, 10); break;
		case 'p': partitions = (int)strtol(optarg, NULL, 10); break;
		case 'B': baseline = optarg; break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: leadscore-bench [--events N] [--leads L] [--batch B]\n"
				"                       [--partitions P] [--baseline CMD]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (n < 2 || leads < 1 || batch < 1 || partitions < 1) {
		fprintf(stderr, "bench: bad arguments\n");
		return 2;
	}
	ls_log_set_level(LS_LOG_WARN);
	char err[1024];
	ls_test_redis *redis = NULL;
	ls_test_broker *broker = NULL;
	int rc = 1;
	if (ls_test_redis_start(&redis, LS_TEST_REDIS_UNIX, err, sizeof err) != LS_TEST_OK ||
	    ls_test_broker_start(&broker, 1, err, sizeof err) != LS_TEST_OK) {
		fprintf(stderr, "bench: %s\n", err);
		goto out;
	}
	for (int i = 0; i < 5; i++)
		if (ls_test_broker_create_topic(broker, topic_names[i], partitions, err, sizeof err) != LS_TEST_OK) {
			fprintf(stderr, "bench: %s\n", err);
			goto out;
		}
	const char *bs = ls_test_broker_bootstrap(broker);
	double t = now_s();
	if (produce_all(bs, n, leads) != 0)
		goto out;
	fprintf(stderr, "produced %ld events in %.1f s\n", n, now_s() - t);

	double raw = raw_rate(bs, n);
	double written = 0;
	double pipe = pipeline_rate(bs, ls_test_redis_url(redis), n, batch, leads, &written);
	double base = -1;
	if (baseline != NULL) {
		char url[600];
		/* a fresh db so the baseline starts from empty state too */
		snprintf(url, sizeof url, "%s", ls_test_redis_url(redis));
		redisContext *c = ls_test_redis_connect(redis, err, sizeof err);
		if (c != NULL) {
			redisReply *r = redisCommand(c, "FLUSHALL");
			if (r != NULL)
				freeReplyObject(r);
			redisFree(c);
		}
		base = baseline_rate(baseline, bs, url, n);
	}
	printf("events=%ld leads=%ld partitions=%d batch=%ld\n", n, leads, partitions, batch);
	printf("raw_consume_events_per_s=%.0f\n", raw);
	printf("pipeline_events_per_s=%.0f\n", pipe);
	if (raw > 0 && pipe > 0)
		printf("pipeline_vs_raw=%.3f\n", pipe / raw);
	printf("pipeline_leads_written=%.0f\n", written);
	if (baseline != NULL) {
		printf("baseline_events_per_s=%.0f\n", base);
		if (base > 0 && pipe > 0)
			printf("pipeline_vs_baseline=%.2f\n", pipe / base);
	}
	rc = raw > 0 && pipe > 0 ? 0 : 1;
out:
	ls_test_broker_destroy(broker);
	ls_test_redis_destroy(redis);
	return rc;
}
