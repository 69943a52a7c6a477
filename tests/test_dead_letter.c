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
 */
#include "ls_codec.h"
#include "ls_kafka.h"
#include "ls_pipeline.h"
#include "ls_settings.h"
#include "ls_store.h"
#include "ls_testenv.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERRLEN 2048
/* the Produce request's ApiKey in the Kafka protocol */
#define API_PRODUCE 0

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *header(rd_kafka_headers_t *h, const char *name, char *buf, size_t len)
{
	const void *v;
	size_t n;
	if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	snprintf(buf, len, "%.*s", (int)n, (const char *)v);
	return buf;
}

START_TEST(test_broker_refuses_dead_letter_it_goes_truncated)
{
	char err[ERRLEN];
	ls_test_redis *redis = NULL;
	ls_test_broker *broker = NULL;
	ck_assert_msg(ls_test_redis_start(&redis, LS_TEST_REDIS_UNIX, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_msg(ls_test_broker_start(&broker, 1, err, sizeof err) == LS_TEST_OK, "%s", err);
	const char *topics[] = { "leads.email", "leads.web", "leads.call", "leads.outcome",
				 "leads.profile", "leads.scores", "leads.dead_letter",
				 "leads.decisions" };
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
		ck_assert_msg(ls_test_broker_create_topic(broker, topics[i], 1, err, sizeof err) ==
			      LS_TEST_OK, "%s", err);
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

	char brokers[256], url[512];
	snprintf(brokers, sizeof brokers, "LEADSCORE_KAFKA_BROKERS=%s", bootstrap);
	snprintf(url, sizeof url, "LEADSCORE_REDIS_URL=%s", ls_test_redis_url(redis));
	char *env[] = { brokers, url, "LEADSCORE_KAFKA_GROUP_ID=dlq-refused",
			"LEADSCORE_PIPELINE_COMMIT_INTERVAL=0ms", NULL };
	ls_config cfg;
	ck_assert_msg(ls_config_load_env(NULL, env, &cfg, err, sizeof err) == 0, "%s", err);
	ls_codec *codec = ls_codec_new(err, sizeof err);
	ck_assert_msg(codec != NULL, "%s", err);
	ls_store_settings ss = ls_settings_store(&cfg);
	ls_store *store = ls_store_new(&ss, err, sizeof err);
	ck_assert_msg(store != NULL, "%s", err);
	ck_assert_msg(ls_store_connect(store, err, sizeof err) == 0, "%s", err);
	ls_kafka_settings ks = ls_settings_kafka(&cfg);
	ls_kafka_consumer *consumer = ls_kafka_consumer_new(&ks, err, sizeof err);
	ck_assert_msg(consumer != NULL, "%s", err);
	ls_pipeline *p = ls_pipeline_new(&cfg, consumer, store, codec, err, sizeof err);
	ck_assert_msg(p != NULL, "%s", err);

	ls_store_offset off = { .topic = "leads.web", .partition = 0, .next_offset = -1 };
	int64_t deadline = mono_ms() + 60000;
	while (mono_ms() < deadline) {
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

	ls_kafka_consumer_close(consumer); /* frees it */
	ls_pipeline_free(p);
	ls_store_free(store);
	ls_codec_free(codec);
	ls_config_free(&cfg);
	free(value);
	ls_test_broker_destroy(broker);
	ls_test_redis_destroy(redis);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dead_letter");
	TCase *tc = tcase_create("broker");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_broker_refuses_dead_letter_it_goes_truncated);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
