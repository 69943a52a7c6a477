/*
 * test_dead_letter.c - the batch loop's dead letters when the broker
 * refuses them, against a real redis-server and librdkafka's mock
 * cluster (in process, so the test can make its broker refuse a produce).
 *
 * The producer-side size check (message.max.bytes) is covered end to end
 * by tests/integration/test_poison.py; here the broker's own limit is
 * lower than the producer's: the broker answers MSG_SIZE_TOO_LARGE in the
 * delivery report, and the dead letter must go again, truncated (value
 * cut to a quarter each time, headers kept plus ls.truncated and
 * ls.original_size), without failing a batch, and the offset past the
 * poison record be committed. Before the fix every such report failed
 * the batch, which was replayed into the same refusal (forever, with a
 * real broker's limit; three times here, where the mock refuses three
 * requests).
 *
 * The same loop also shows that a reload reaches the running pipeline:
 * a live key changed in the configuration (pipeline.max_future_skew here)
 * applies to the next batch once the daemon's path (ls_config_apply_live,
 * ls_settings_pipeline, ls_pipeline_reload) has run.
 */
#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_lead.h"
#include "ls_pipeline.h"
#include "ls_scorer.h"
#include "ls_settings.h"
#include "ls_store.h"
#include "ls_testenv.h"
#include "ls_testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRLEN 2048
/* the Produce request's ApiKey in the Kafka protocol */
#define API_PRODUCE 0

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
	const void *v;
	size_t n;
	if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	snprintf(buf, len, "%.*s", (int)n, (const char *)v);
	return buf;
}

/* A redis-server and a broker with every topic (one partition each). */
static void start_servers(ls_test_redis **redis, ls_test_broker **broker)
{
	char err[ERRLEN];
	ck_assert_msg(ls_test_redis_start(redis, LS_TEST_REDIS_UNIX, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_msg(ls_test_broker_start(broker, 1, err, sizeof err) == LS_TEST_OK, "%s", err);
	const char *topics[] = { "leads.email", "leads.web", "leads.call", "leads.outcome",
				 "leads.profile", "leads.scores", "leads.dead_letter",
				 "leads.decisions" };
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
		ck_assert_msg(ls_test_broker_create_topic(*broker, topics[i], 1, err, sizeof err) ==
			      LS_TEST_OK, "%s", err);
}

/* A config for redis and broker plus extra LEADSCORE_* variables. */
static void load_config(const ls_test_redis *redis, ls_test_broker *broker,
			char *const *extra, ls_config *cfg)
{
	char err[ERRLEN], brokers[256], url[512];
	snprintf(brokers, sizeof brokers, "LEADSCORE_KAFKA_BROKERS=%s",
		 ls_test_broker_bootstrap(broker));
	snprintf(url, sizeof url, "LEADSCORE_REDIS_URL=%s", ls_test_redis_url(redis));
	char *env[16] = { brokers, url };
	size_t n = 2;
	for (size_t i = 0; extra[i] != NULL && n < 15; i++)
		env[n++] = extra[i];
	env[n] = NULL;
	ck_assert_msg(ls_config_load_env(NULL, env, cfg, err, sizeof err) == 0, "%s", err);
}

/* The loop as the daemon builds it from cfg, with its codec, store and
 * consumer (the caller closes the consumer, then frees the rest). */
static ls_pipeline *open_pipeline(const ls_config *cfg, ls_codec **codec, ls_store **store,
				  ls_kafka_consumer **consumer)
{
	char err[ERRLEN];
	*codec = ls_codec_new(err, sizeof err);
	ck_assert_msg(*codec != NULL, "%s", err);
	ls_store_settings ss = ls_settings_store(cfg);
	*store = ls_store_new(&ss, err, sizeof err);
	ck_assert_msg(*store != NULL, "%s", err);
	ck_assert_msg(ls_store_connect(*store, err, sizeof err) == 0, "%s", err);
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	*consumer = ls_kafka_consumer_new(&ks, err, sizeof err);
	ck_assert_msg(*consumer != NULL, "%s", err);
	ls_pipeline_settings ps;
	ls_settings_pipeline(cfg, &ps);
	ls_pipeline *p = ls_pipeline_new(&ps, *consumer, *store, *codec, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

/* Close what open_pipeline opened and free cfg: the consumer first (its
 * revocation commits through the pipeline), then the rest. */
static void close_pipeline(ls_pipeline *p, ls_kafka_consumer *consumer, ls_store *store,
			   ls_codec *codec, ls_config *cfg)
{
	ls_kafka_consumer_close(consumer); /* frees it */
	ls_pipeline_free(p);
	ls_store_free(store);
	ls_codec_free(codec);
	ls_config_free(cfg);
}

/* Servers, config and pipeline of one test (env: extra LEADSCORE_*). */
typedef struct pipe_env {
	ls_test_redis *redis;
	ls_test_broker *broker;
	ls_config cfg;
	ls_codec *codec;
	ls_store *store;
	ls_kafka_consumer *consumer;
	ls_pipeline *p;
} pipe_env;

static void env_open(pipe_env *e, char *const *env)
{
	e->redis = NULL;
	e->broker = NULL;
	start_servers(&e->redis, &e->broker);
	load_config(e->redis, e->broker, env, &e->cfg);
	e->p = open_pipeline(&e->cfg, &e->codec, &e->store, &e->consumer);
}

static void env_close(pipe_env *e)
{
	close_pipeline(e->p, e->consumer, e->store, e->codec, &e->cfg);
	ls_test_broker_destroy(e->broker);
	ls_test_redis_destroy(e->redis);
}

START_TEST(test_broker_refuses_dead_letter_it_goes_truncated)
{
	char err[ERRLEN];
	ls_test_redis *redis = NULL;
	ls_test_broker *broker = NULL;
	start_servers(&redis, &broker);
	const char *bootstrap = ls_test_broker_bootstrap(broker);

	/* a malformed record of 40,001 bytes */
	size_t vlen = 40001;
	char *value = malloc(vlen);
	ck_assert_ptr_nonnull(value);
	value[0] = 0x02;
	memset(value + 1, 'x', vlen - 1);
	ls_test_record rec = { .key = "poison", .key_len = 6, .value = value, .value_len = vlen };
	ck_assert_msg(ls_test_produce(bootstrap, "leads.web", 0, &rec, 1, 10000, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	/* the next three produce requests (the dead letter's) are refused as
	 * too large: 40,001, then 10,000, then 2,500 bytes; 625 go */
	rd_kafka_mock_push_request_errors(ls_test_broker_cluster(broker), API_PRODUCE, 3,
					  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
					  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
					  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);

	char *env[] = { "LEADSCORE_KAFKA_GROUP_ID=dlq-refused",
			"LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms", NULL };
	ls_config cfg;
	load_config(redis, broker, env, &cfg);
	ls_codec *codec;
	ls_store *store;
	ls_kafka_consumer *consumer;
	ls_pipeline *p = open_pipeline(&cfg, &codec, &store, &consumer);

	ls_store_offset off = { .topic = "leads.web", .partition = 0, .next_offset = -1 };
	int64_t deadline = ls_clock_mono_ms() + 60000;
	while (ls_clock_mono_ms() < deadline) {
		ls_pipeline_step(p);
		if (ls_store_load_offsets(store, &off, 1, err, sizeof err) == 0 &&
		    off.next_offset >= 1)
			break;
	}
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);
	ck_assert_msg(off.next_offset == 1, "offset past the poison record never committed "
		      "(stored %lld, failed batches in a row %llu)", (long long)off.next_offset,
		      (unsigned long long)st->failed_batches_in_row);
	ck_assert_uint_eq(st->dead_lettered[LS_CODEC_OVERSIZED], 0);
	ck_assert_uint_eq(st->dead_lettered[LS_CODEC_MALFORMED], 1);
	ck_assert_uint_eq(st->dead_letters_truncated, 1);
	/* never a failed batch: the refusal is the record's, not the broker's */
	ck_assert_uint_eq(st->redis_failures, 0);

	ls_test_msg *msgs = NULL;
	size_t n = 0;
	ck_assert_msg(ls_test_consume(bootstrap, "leads.dead_letter", 1, 30000, &msgs, &n, err,
				      sizeof err) == LS_TEST_OK, "%s", err);
	ck_assert_uint_eq(n, 1);
	char b[64];
	ck_assert_str_eq(header(msgs[0].headers, "ls.reason", b, sizeof b), "malformed");
	ck_assert_str_eq(header(msgs[0].headers, "ls.truncated", b, sizeof b), "value");
	ck_assert_str_eq(header(msgs[0].headers, "ls.original_size", b, sizeof b), "40001");
	ck_assert_str_eq(header(msgs[0].headers, "ls.source.topic", b, sizeof b), "leads.web");
	ck_assert_str_eq(header(msgs[0].headers, "ls.source.offset", b, sizeof b), "0");
	ck_assert_uint_eq(msgs[0].value_len, 625);
	ck_assert(memcmp(msgs[0].value, value, 625) == 0);
	ck_assert_uint_eq(msgs[0].key_len, 6);
	ls_test_msgs_free(msgs, n);

	close_pipeline(p, consumer, store, codec, &cfg);
	free(value);
	ls_test_broker_destroy(broker);
	ls_test_redis_destroy(redis);
}
END_TEST

/* A page view of lead_id stamped ts, on leads.web partition 0. */
static void produce_web(ls_test_broker *broker, const char *lead_id, const char *event_id,
			int64_t ts)
{
	char err[ERRLEN];
	ls_codec *codec = ls_codec_new(err, sizeof err);
	ck_assert_msg(codec != NULL, "%s", err);
	ls_event ev;
	memset(&ev, 0, sizeof ev);
	ev.source = LS_SOURCE_WEB;
	ev.event_id = event_id;
	ev.lead_id = lead_id;
	ev.ts = ts;
	ev.u.web.type = LS_WEB_PAGE_VIEW;
	ev.u.web.url = "/pricing";
	ls_buf buf;
	ls_buf_init(&buf);
	ck_assert_msg(ls_codec_encode_event(codec, &ev, -1, &buf, err, sizeof err) == 0, "%s", err);
	ls_test_record rec = { .key = ev.lead_id, .key_len = strlen(ev.lead_id),
			       .value = buf.data, .value_len = buf.len };
	ck_assert_msg(ls_test_produce(ls_test_broker_bootstrap(broker), "leads.web", 0, &rec, 1,
				      10000, err, sizeof err) == LS_TEST_OK, "%s", err);
	ls_buf_free(&buf);
	ls_codec_free(codec);
}

/* A web event for lead reload-lead stamped two hours from now. */
static void produce_future_event(ls_test_broker *broker, const char *event_id)
{
	produce_web(broker, "reload-lead", event_id, (int64_t)time(NULL) * 1000 + 2 * 3600 * 1000);
}

/* Step p until *counter reaches want (or a minute passes). */
static void step_until(ls_pipeline *p, const uint64_t *counter, uint64_t want)
{
	int64_t deadline = ls_clock_mono_ms() + 60000;
	while (*counter < want && ls_clock_mono_ms() < deadline)
		ls_pipeline_step(p);
}

/*
 * A commit is taken, and the next batch changes one of its leads before
 * the commit has encoded it: the commit must still write the lead as it
 * was when taken, with the offsets it carries (the later event is the
 * next commit's). With no time to encode between steps, only the
 * encoding of a lead before a batch changes it keeps the two in step.
 */
START_TEST(test_commit_on_its_way_writes_leads_as_taken)
{
	char err[ERRLEN];
	char *env[] = { "LEADSCORE_KAFKA_GROUP_ID=fly-encode",
			"LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms",
			"LEADSCORE_PIPELINE_BATCH_SIZE=1", NULL };
	pipe_env e;
	env_open(&e, env);
	ls_pipeline *p = e.p;
	ls_pipeline_set_encode_budget(p, 0);
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);

	int64_t now = (int64_t)time(NULL) * 1000;
	produce_web(e.broker, "fly-lead", "ev-1", now - 2000);
	produce_web(e.broker, "fly-lead", "ev-2", now - 1000);
	/* one record a step: the step of ev-2 lands the commit of ev-1 */
	step_until(p, &st->consumed[LS_SOURCE_WEB], 2);
	ck_assert_uint_eq(st->consumed[LS_SOURCE_WEB], 2);
	ck_assert_uint_ge(st->commits, 1);

	/* read what landed through a connection of its own (the loop's may
	 * carry the next commit) */
	ls_store_settings ss = ls_settings_store(&e.cfg);
	ls_store *side = ls_store_new(&ss, err, sizeof err);
	ck_assert_msg(side != NULL && ls_store_connect(side, err, sizeof err) == 0, "%s", err);
	ls_store_offset off = { .topic = "leads.web", .partition = 0, .next_offset = -1 };
	ck_assert_msg(ls_store_load_offsets(side, &off, 1, err, sizeof err) == 0, "%s", err);
	const char *id = "fly-lead";
	ls_store_blob b;
	ck_assert_msg(ls_store_load(side, &id, 1, &b, err, sizeof err) == 0, "%s", err);
	ck_assert_ptr_nonnull(b.data);
	ls_lead *lead = NULL;
	ck_assert_msg(ls_lead_decode(ls_pipeline_lead_conf(p), b.data, b.len, &lead, err,
				     sizeof err) == 0, "%s", err);
	/* the lead holds exactly the events below the committed offset */
	ck_assert_msg((int64_t)ls_lead_event_count(lead, LS_SOURCE_WEB) == off.next_offset,
		      "lead has %llu web events, offset committed %lld",
		      (unsigned long long)ls_lead_event_count(lead, LS_SOURCE_WEB),
		      (long long)off.next_offset);
	ls_lead_free(lead);
	ls_store_free(side);

	env_close(&e);
}
END_TEST

/* n outcome labels of fresh leads, learned by sc (not applied). */
static void learn_labels(ls_scorer *sc, const ls_lead_conf *lc, int from, int n)
{
	char err[ERRLEN], id[32];
	for (int i = from; i < from + n; i++) {
		ls_lead *lead = ls_lead_new(lc);
		ck_assert_ptr_nonnull(lead);
		snprintf(id, sizeof id, "o-%d", i);
		ls_event out = { .source = LS_SOURCE_OUTCOME, .event_id = id, .lead_id = "x",
				 .ts = (int64_t)time(NULL) * 1000 - 1000 };
		out.u.outcome.outcome = i % 3 == 0 ? LS_OUTCOME_CONVERTED : LS_OUTCOME_LOST;
		bool changed = false;
		ck_assert_msg(ls_scorer_before_apply(sc, lead, &out, &changed, err, sizeof err) == 0,
			      "%s", err);
		ck_assert(changed);
		ls_lead_free(lead);
	}
}

static uint64_t labels_of(ls_scorer *sc)
{
	ls_scorer_model_stats st;
	ls_scorer_stats(sc, 0, &st);
	return st.positives + st.negatives;
}

/*
 * A checkpoint while the models have learned since the last commit folds
 * the shared model and keeps that learning on top: nothing lost, nothing
 * counted twice, and the next commit carries it.
 */
START_TEST(test_checkpoint_keeps_learning_since_the_last_commit)
{
	char err[ERRLEN];
	char *env[] = { "LEADSCORE_KAFKA_GROUP_ID=ckpt-pending", NULL };
	pipe_env e;
	env_open(&e, env);
	ls_pipeline *p = e.p;
	ls_scorer *sc = ls_pipeline_scorer(p);
	const ls_lead_conf *lc = ls_pipeline_lead_conf(p);
	ck_assert_msg(ls_scorer_checkpoint(sc, err, sizeof err) == 0, "%s", err);

	/* 30 labels committed */
	learn_labels(sc, lc, 0, 30);
	const ls_store_append *a;
	size_t n;
	ck_assert_msg(ls_scorer_commit_appends(sc, &a, &n, err, sizeof err) == 0, "%s", err);
	ck_assert_msg(ls_store_commit_log(e.store, NULL, 0, a, n, NULL, 0, err, sizeof err) == 0,
		      "%s", err);
	ls_scorer_committed(sc);
	/* 20 more learned, not committed: the checkpoint keeps them */
	learn_labels(sc, lc, 30, 20);
	ck_assert_msg(ls_scorer_checkpoint(sc, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(labels_of(sc), 50);
	/* and they are still the next commit's: committed, a checkpoint
	 * folds 50 into the shared model */
	ck_assert_msg(ls_scorer_commit_appends(sc, &a, &n, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(ls_store_commit_log(e.store, NULL, 0, a, n, NULL, 0, err, sizeof err) == 0,
		      "%s", err);
	ls_scorer_committed(sc);
	ck_assert_msg(ls_scorer_checkpoint(sc, err, sizeof err) == 0, "%s", err);
	ls_scorer_discard(sc); /* nothing pending: the shared model stays */
	ck_assert_uint_eq(labels_of(sc), 50);
	/* a discard after a checkpoint drops only the uncommitted */
	learn_labels(sc, lc, 50, 5);
	ck_assert_msg(ls_scorer_checkpoint(sc, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(labels_of(sc), 55);
	ls_scorer_discard(sc);
	ck_assert_uint_eq(labels_of(sc), 50);

	env_close(&e);
}
END_TEST

/*
 * Quantile edges are frozen per model version, from one checkpoint to the
 * next; a backlog learns thousands of labels within one interval, so a
 * checkpoint is also due whenever the models hold twice the labels of the
 * last one (from 100 on). With an interval of an hour, 450 labels give
 * checkpoints at ~100 and ~200 learned (and ~400 when the batches fall
 * so): at least two beyond the restore. Without the rule: the restore
 * alone.
 */
START_TEST(test_checkpoint_when_the_labels_double)
{
	char err[ERRLEN];
	char *env[] = { "LEADSCORE_KAFKA_GROUP_ID=ckpt-double",
			"LEADSCORE_SCORING_CHECKPOINT_INTERVAL=1h",
			"LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms",
			"LEADSCORE_PIPELINE_BATCH_SIZE=20", NULL };
	pipe_env e;
	env_open(&e, env);
	ls_pipeline *p = e.p;
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);

	enum { N = 450 };
	static char ids[N][32];
	static ls_buf bufs[N];
	static ls_test_record recs[N];
	int64_t now = (int64_t)time(NULL) * 1000;
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "dbl-%d", i);
		ls_event ev;
		memset(&ev, 0, sizeof ev);
		ev.source = LS_SOURCE_OUTCOME;
		ev.event_id = ids[i];
		ev.lead_id = ids[i];
		ev.ts = now - 3600 * 1000 + i;
		ev.u.outcome.outcome = i % 3 == 0 ? LS_OUTCOME_CONVERTED : LS_OUTCOME_LOST;
		ls_buf_init(&bufs[i]);
		ck_assert_msg(ls_codec_encode_event(e.codec, &ev, -1, &bufs[i], err, sizeof err) == 0,
			      "%s", err);
		recs[i] = (ls_test_record){ .key = ids[i], .key_len = strlen(ids[i]),
					    .value = bufs[i].data, .value_len = bufs[i].len };
	}
	ck_assert_msg(ls_test_produce(ls_test_broker_bootstrap(e.broker), "leads.outcome", 0, recs,
				      N, 10000, err, sizeof err) == LS_TEST_OK, "%s", err);
	for (int i = 0; i < N; i++)
		ls_buf_free(&bufs[i]);
	step_until(p, &st->consumed[LS_SOURCE_OUTCOME], N);
	ck_assert_uint_eq(st->consumed[LS_SOURCE_OUTCOME], N);
	for (int i = 0; i < 50; i++) /* the commits and checkpoints after */
		ls_pipeline_step(p);
	ls_scorer_model_stats ms;
	ls_scorer_stats(ls_pipeline_scorer(p), 0, &ms);
	ck_assert_uint_eq(ms.positives + ms.negatives, N);
	ck_assert_msg(ls_pipeline_checkpoints(p) >= 3, "%llu checkpoints",
		      (unsigned long long)ls_pipeline_checkpoints(p));

	env_close(&e);
}
END_TEST

START_TEST(test_reload_reaches_the_running_pipeline)
{
	char *env[] = { "LEADSCORE_KAFKA_GROUP_ID=reload-live",
			"LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms",
			"LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=1d", NULL };
	pipe_env e;
	env_open(&e, env);
	ls_pipeline *p = e.p;
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);

	/* two hours ahead is within a day: applied */
	produce_future_event(e.broker, "ev-1");
	step_until(p, &st->consumed[LS_SOURCE_WEB], 1);
	ck_assert_uint_eq(st->consumed[LS_SOURCE_WEB], 1);
	ck_assert_uint_eq(st->dead_lettered[LS_DLQ_FUTURE_TIMESTAMP], 0);

	/* SIGHUP's path with max_future_skew now a minute */
	char *env2[] = { "LEADSCORE_KAFKA_GROUP_ID=reload-live",
			 "LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms",
			 "LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=1m", NULL };
	ls_config fresh;
	load_config(e.redis, e.broker, env2, &fresh);
	ck_assert_int_eq(ls_config_apply_live(&e.cfg, &fresh), 0);
	ls_config_free(&fresh);
	ls_pipeline_settings ps;
	ls_settings_pipeline(&e.cfg, &ps);
	ls_pipeline_reload(p, &ps);

	/* the same two hours are now too far ahead: dead-lettered */
	produce_future_event(e.broker, "ev-2");
	step_until(p, &st->dead_lettered[LS_DLQ_FUTURE_TIMESTAMP], 1);
	ck_assert_uint_eq(st->dead_lettered[LS_DLQ_FUTURE_TIMESTAMP], 1);
	ck_assert_uint_eq(st->consumed[LS_SOURCE_WEB], 1);

	env_close(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dead_letter");
	TCase *tc = tcase_create("broker");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_broker_refuses_dead_letter_it_goes_truncated);
	tcase_add_test(tc, test_reload_reaches_the_running_pipeline);
	tcase_add_test(tc, test_commit_on_its_way_writes_leads_as_taken);
	tcase_add_test(tc, test_checkpoint_keeps_learning_since_the_last_commit);
	tcase_add_test(tc, test_checkpoint_when_the_labels_double);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
