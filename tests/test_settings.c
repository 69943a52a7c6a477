/*
 * Unit tests for daemon/ls_settings: which config keys reach which
 * pipeline settings struct, and that the Kafka settings make the conf
 * the config describes (our defaults, then kafka.properties in order).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_settings.h"

static void load(const char *file, ls_config *cfg)
{
	const char *dir = getenv("LS_TEST_DATA");
	ck_assert_msg(dir != NULL, "LS_TEST_DATA is not set (run under meson test)");
	char path[1024], err[1024];
	snprintf(path, sizeof path, "%s/config/%s", dir, file);
	char *no_env[] = { NULL };
	ck_assert_msg(ls_config_load_env(path, no_env, cfg, err, sizeof err) == 0, "%s", err);
}

START_TEST(kafka_settings_carry_brokers_group_topics_and_properties)
{
	ls_config cfg;
	load("properties_ok.yaml", &cfg);
	ls_kafka_settings ks = ls_settings_kafka(&cfg);
	ck_assert_str_eq(ks.brokers, "localhost:9092");
	ck_assert_str_eq(ks.group_id, "leadscore");
	ck_assert_str_eq(ks.topics.email, "leads.email");
	ck_assert_str_eq(ks.topics.web, "leads.web");
	ck_assert_str_eq(ks.topics.call, "leads.call");
	ck_assert_str_eq(ks.topics.outcome, "leads.outcome");
	ck_assert_str_eq(ks.topics.profile, "leads.profile");
	ck_assert_str_eq(ks.topics.scores, "leads.scores");
	ck_assert_str_eq(ks.topics.dead_letter, cfg.kafka.topics.dead_letter);
	ck_assert_str_eq(ks.topics.decisions, cfg.kafka.topics.decisions);
	ck_assert_uint_eq(ks.n_properties, 3);
	ck_assert_str_eq(ks.properties[2].key, "client.id");
	ck_assert_str_eq(ks.properties[2].value, "leadscore-1");

	/* the operator's client.id wins over ours; brokers are the config's */
	char err[512], val[256];
	size_t len = sizeof val;
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, true, err, sizeof err);
	ck_assert_msg(conf != NULL, "%s", err);
	ck_assert_int_eq(rd_kafka_conf_get(conf, "client.id", val, &len), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(val, "leadscore-1");
	len = sizeof val;
	ck_assert_int_eq(rd_kafka_conf_get(conf, "bootstrap.servers", val, &len), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(val, "localhost:9092");
	len = sizeof val;
	ck_assert_int_eq(rd_kafka_conf_get(conf, "fetch.wait.max.ms", val, &len), RD_KAFKA_CONF_OK);
	ck_assert_str_eq(val, "10");
	rd_kafka_conf_destroy(conf);
	ls_config_free(&cfg);
}
END_TEST

START_TEST(store_and_scorer_settings_read_their_keys)
{
	ls_config cfg;
	load("models_custom.yaml", &cfg);
	ls_store_settings ss = ls_settings_store(&cfg);
	ck_assert_str_eq(ss.url, cfg.redis.url);
	ck_assert_str_eq(ss.key_prefix, cfg.redis.key_prefix);
	ck_assert_str_eq(ss.group_id, cfg.kafka.group_id);
	ck_assert_int_eq(ss.lead_ttl_ms, cfg.redis.lead_ttl_ms);
	ck_assert_int_eq(ss.connect_timeout_ms, cfg.redis.connect_timeout_ms);
	ck_assert_int_eq(ss.command_timeout_ms, cfg.redis.command_timeout_ms);

	size_t n;
	const ls_model_spec *models = ls_config_models(&cfg, &n);
	ck_assert_uint_gt(n, 1);
	ls_scorer_settings sc = ls_settings_scorer(&cfg);
	ck_assert_ptr_eq(sc.models, models);
	ck_assert_uint_eq(sc.n_models, n);
	ck_assert_str_eq(sc.scores_topic, "leads.scores");
	ls_config_free(&cfg);
}
END_TEST

START_TEST(campaign_settings_read_their_keys)
{
	ls_config cfg;
	load("campaigns_custom.yaml", &cfg);
	ck_assert_uint_eq(cfg.campaigns.n, 2);
	ls_campaign_settings cs = ls_settings_campaign(&cfg);
	ck_assert_ptr_eq(cs.specs, cfg.campaigns.specs);
	ck_assert_uint_eq(cs.n_specs, 2);
	ck_assert_str_eq(cs.specs[0].id, "subject-lines");
	ck_assert_str_eq(cs.specs[1].id, "send_time");
	ck_assert_str_eq(cs.key_prefix, cfg.redis.key_prefix);
	ck_assert_str_eq(cs.redis_url, cfg.redis.url);
	ck_assert_int_eq(cs.connect_timeout_ms, cfg.redis.connect_timeout_ms);
	ck_assert_int_eq(cs.command_timeout_ms, cfg.redis.command_timeout_ms);
	ck_assert_str_eq(cs.kafka.brokers, "localhost:9092");
	ck_assert_str_eq(cs.kafka.topics.decisions, cfg.kafka.topics.decisions);
	ck_assert_uint_eq(cs.kafka.n_properties, cfg.kafka.n_properties);
	ls_config_free(&cfg);
}
END_TEST

static Suite *settings_suite(void)
{
	Suite *s = suite_create("settings");
	TCase *tc = tcase_create("settings");
	tcase_add_test(tc, kafka_settings_carry_brokers_group_topics_and_properties);
	tcase_add_test(tc, store_and_scorer_settings_read_their_keys);
	tcase_add_test(tc, campaign_settings_read_their_keys);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(settings_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
