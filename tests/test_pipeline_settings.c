/*
 * Unit tests for the Kafka and scorer modules built from settings written
 * by hand, without the config: this test links the pipeline library and
 * the layers below it only, so it stops linking if either module reaches
 * back into daemon/.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_kafka.h"
#include "ls_lead.h"
#include "ls_scorer.h"
#include "ls_store.h"
#include "ls_window.h"

static char *get(rd_kafka_conf_t *conf, const char *name, char *buf, size_t cap)
{
	size_t len = cap;
	ck_assert_int_eq(rd_kafka_conf_get(conf, name, buf, &len), RD_KAFKA_CONF_OK);
	return buf;
}

/* librdkafka reports "earliest" by its older name */
static bool earliest(const char *v)
{
	return strcmp(v, "earliest") == 0 || strcmp(v, "smallest") == 0;
}

START_TEST(kafka_conf_applies_properties_in_order_after_our_defaults)
{
	ls_kv props[] = {
		{ "client.id", "first" },
		{ "fetch.wait.max.ms", "10" },
		{ "client.id", "second" },
	};
	ls_kafka_settings ks = { .brokers = "b1:9092,b2:9092", .group_id = "g",
				 .n_properties = 3, .properties = props };
	char err[512], v[256];
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, true, err, sizeof err);
	ck_assert_msg(conf != NULL, "%s", err);
	ck_assert_str_eq(get(conf, "bootstrap.servers", v, sizeof v), "b1:9092,b2:9092");
	ck_assert_str_eq(get(conf, "client.id", v, sizeof v), "second");
	ck_assert_str_eq(get(conf, "fetch.wait.max.ms", v, sizeof v), "10");
	ck_assert_msg(earliest(get(conf, "auto.offset.reset", v, sizeof v)), "%s", v);
	rd_kafka_conf_destroy(conf);

	/* a producer's conf: no consumer default */
	conf = ls_kafka_conf_new(&ks, false, err, sizeof err);
	ck_assert_msg(conf != NULL, "%s", err);
	ck_assert_str_eq(get(conf, "client.id", v, sizeof v), "second");
	size_t len = sizeof v;
	ck_assert(rd_kafka_conf_get(conf, "auto.offset.reset", v, &len) != RD_KAFKA_CONF_OK ||
		  !earliest(v));
	rd_kafka_conf_destroy(conf);

	ls_kv bad[] = { { "no.such.property", "1" } };
	ks.properties = bad;
	ks.n_properties = 1;
	ck_assert_ptr_null(ls_kafka_conf_new(&ks, true, err, sizeof err));
	ck_assert_msg(strstr(err, "no.such.property") != NULL, "%s", err);
}
END_TEST

static void spec_init(ls_model_spec *m, const char *name)
{
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	m->positive_mask = UINT32_C(1) << LS_OUTCOME_CONVERTED;
	m->negative_mask = UINT32_C(1) << LS_OUTCOME_LOST;
	m->min_delta = 0.05;
	const char *names[] = { "cold", "hot" };
	double bounds[] = { 0.5 };
	char err[256];
	ck_assert_msg(ls_tiers_init(&m->tiers, names, bounds, 2, 0.02, err, sizeof err), "%s", err);
	m->ftrl = (ls_ftrl_params){ .alpha = LS_FTRL_DEFAULT_ALPHA, .beta = LS_FTRL_DEFAULT_BETA,
				    .l1 = LS_FTRL_DEFAULT_L1, .l2 = LS_FTRL_DEFAULT_L2,
				    .n_buckets = 16, .clip = LS_FTRL_DEFAULT_CLIP };
	m->eval_window = 100;
}

START_TEST(scorer_from_settings_copies_them_and_bounds_the_models)
{
	char err[512];
	size_t nf;
	const ls_feature_spec *fs = ls_features_default(&nf);
	ls_feature_set *set = ls_feature_set_new(fs, nf, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ls_lead_conf lc;
	ls_lead_conf_default(&lc, set);
	ls_store_settings ss = { "redis://127.0.0.1:1/0", "t:", "g", 1000, 100, 100 };
	ls_store *store = ls_store_new(&ss, err, sizeof err);
	ck_assert_msg(store != NULL, "%s", err);

	ls_model_spec specs[LS_MODEL_MAX + 1];
	for (size_t i = 0; i < LS_MODEL_MAX + 1; i++) {
		char name[16];
		snprintf(name, sizeof name, "m%zu", i);
		spec_init(&specs[i], name);
	}
	char topic[] = "scores";
	ls_scorer_settings s = { .models = specs, .n_models = 2, .scores_topic = topic };
	ls_scorer *sc = ls_scorer_new(&s, set, &lc, NULL, NULL, store, err, sizeof err);
	ck_assert_msg(sc != NULL, "%s", err);
	/* the settings need not outlive the call */
	memset(specs, 0, 2 * sizeof specs[0]);
	topic[0] = '\0';
	ck_assert_uint_eq(ls_scorer_n_models(sc), 2);
	ls_scorer_model_stats st;
	ls_scorer_stats(sc, 1, &st);
	ck_assert_str_eq(st.name, "m1");
	ls_scorer_free(sc);

	spec_init(&specs[0], "m0");
	spec_init(&specs[1], "m1");
	s.n_models = LS_MODEL_MAX + 1;
	ck_assert_ptr_null(ls_scorer_new(&s, set, &lc, NULL, NULL, store, err, sizeof err));
	ck_assert_msg(strstr(err, "at most") != NULL, "%s", err);

	ls_store_free(store);
	ls_feature_set_free(set);
}
END_TEST

static Suite *pipeline_settings_suite(void)
{
	Suite *s = suite_create("pipeline_settings");
	TCase *tc = tcase_create("settings");
	tcase_add_test(tc, kafka_conf_applies_properties_in_order_after_our_defaults);
	tcase_add_test(tc, scorer_from_settings_copies_them_and_bounds_the_models);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pipeline_settings_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
