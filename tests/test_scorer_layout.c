/*
 * test_scorer_layout.c - what a checkpoint does with a stored model of
 * another layout (a changed feature map, feature list, bucket count or
 * FTRL parameter): the running configuration's model replaces it, with
 * a fresh evaluation window and the old layout's log entries dropped,
 * instead of failing every checkpoint while the log grows. Real Redis
 * (ls_testenv.h), no broker.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_keys.h"
#include "ls_model_spec.h"
#include "ls_scorer.h"
#include "ls_store.h"
#include "ls_testmodels.h"
#include "ls_testredis.h"
#include "ls_testutil.h"

#define ERRLEN 1024
#define DAY INT64_C(86400000)

static ls_feature_spec page_views(const ls_ftrl_numeric *map)
{
	ls_feature_spec f = { .kind = LS_FEATURE_WINDOWED, .source = LS_SOURCE_WEB,
			      .type_mask = UINT32_C(1) << LS_WEB_PAGE_VIEW,
			      .agg = LS_AGG_COUNT, .n_windows = 1,
			      .windows = { { 30 * DAY, 0 } } };
	snprintf(f.name, sizeof f.name, "page_views");
	if (map != NULL)
		f.map = *map;
	return f;
}

/* The built-in model, small and without crosses or metrics. */
static ls_model_spec small_model(uint32_t buckets)
{
	ls_model_spec m = *ls_model_spec_default();
	m.ftrl.n_buckets = buckets;
	m.n_crosses = 0;
	m.n_metrics = 0;
	m.eval_window = 100;
	return m;
}

/* Store model blob (with 10 labels learned), an evaluation window and one
 * log entry, as an instance of spec over set would have left them. */
static void store_model(ls_store *st, const ls_store_model_keys *k, const ls_model_spec *spec,
			const ls_feature_set *set, redisContext *c)
{
	char err[ERRLEN];
	ls_ftrl *m = ls_model_spec_new_ftrl(spec, set, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	ls_ftrl_example x;
	ls_ftrl_example_init(&x);
	ls_eval *ev = ls_eval_new(100);
	ck_assert_ptr_nonnull(ev);
	for (int i = 0; i < 10; i++) {
		const char *names[] = { "page_views_30d" };
		double v[] = { (double)i };
		ls_ftrl_input in = { .num_names = names, .num_values = v, .n_num = 1 };
		double p;
		ck_assert_int_eq(ls_ftrl_example_build(&x, m, &in), LS_FTRL_OK);
		ck_assert_int_eq(ls_ftrl_learn(m, &x, i >= 5, &p), LS_FTRL_OK);
		ck_assert_int_eq(ls_eval_add(ev, p, i >= 5), 0);
	}
	ls_buf mb = { 0 };
	ck_assert_int_eq(ls_ftrl_encode(m, &mb), LS_FTRL_OK);
	uint8_t eb[4096];
	size_t elen;
	ck_assert_int_eq(ls_eval_encode(ev, eb, sizeof eb, &elen), 0);
	ls_store_model_state s;
	ck_assert_msg(ls_store_model_read(st, k, true, &s, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(ls_store_model_write(st, k, mb.data, mb.len, eb, elen, 0, err,
					      sizeof err), 1);
	freeReplyObject(ls_test_cmd_ok(c, "RPUSH %s %s", k->log, "an entry of the old layout"));
	ls_buf_free(&mb);
	ls_eval_free(ev);
	ls_ftrl_example_free(&x);
	ls_ftrl_free(m);
}

/*
 * A stored model of layout old (spec_old over set_old) met by a scorer of
 * layout new: its checkpoint succeeds and leaves the new layout stored,
 * with no label of the old model, an empty evaluation window and an
 * empty log; the next checkpoint keeps it.
 */
static void check_replaced(const ls_model_spec *spec_old, const ls_feature_set *set_old,
			   const ls_model_spec *spec_new, const ls_feature_set *set_new)
{
	char err[ERRLEN], km[256], ke[256], kl[256];
	ls_test_redis *r = NULL;
	ck_assert_msg(ls_test_redis_start(&r, LS_TEST_REDIS_UNIX, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ls_store *st = ls_test_store_open(r, "t:", "g1", 30 * DAY, 2000, true);
	redisContext *c = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert(ls_keys_model(km, sizeof km, "t:", spec_new->name) >= 0);
	ck_assert(ls_keys_model_eval(ke, sizeof ke, "t:", spec_new->name) >= 0);
	ck_assert(ls_keys_model_log(kl, sizeof kl, "t:", spec_new->name) >= 0);
	ls_store_model_keys k = { km, ke, kl };
	store_model(st, &k, spec_old, set_old, c);

	ls_lead_conf lc;
	ls_lead_conf_default(&lc, set_new);
	ls_scorer_settings ss = { .models = spec_new, .n_models = 1, .scores_topic = "s" };
	ls_scorer *sc = ls_scorer_new(&ss, set_new, &lc, NULL, NULL, st, err, sizeof err);
	ck_assert_msg(sc != NULL, "%s", err);
	ls_ftrl *fresh = ls_model_spec_new_ftrl(spec_new, set_new, err, sizeof err);
	ck_assert_msg(fresh != NULL, "%s", err);
	ls_ftrl *old = ls_model_spec_new_ftrl(spec_old, set_old, err, sizeof err);
	ck_assert_msg(old != NULL, "%s", err);
	ck_assert_msg(ls_ftrl_layout(old) != ls_ftrl_layout(fresh), "the layouts must differ");

	for (int round = 0; round < 2; round++) {
		ck_assert_msg(ls_scorer_checkpoint(sc, err, sizeof err) == 0, "round %d: %s",
			      round, err);
		ls_store_model_state s;
		ck_assert_msg(ls_store_model_read(st, &k, false, &s, err, sizeof err) == 0, "%s", err);
		ck_assert_ptr_nonnull(s.model.data);
		ck_assert_uint_eq(s.n_log, 0);
		ls_ftrl *m = NULL;
		ck_assert_int_eq(ls_ftrl_decode(s.model.data, s.model.len, &m, err, sizeof err), 0);
		ck_assert_uint_eq(ls_ftrl_layout(m), ls_ftrl_layout(fresh));
		ck_assert_uint_eq(ls_ftrl_positives(m) + ls_ftrl_negatives(m), 0);
		ls_eval *ev = NULL;
		ck_assert_int_eq(ls_eval_decode(s.eval.data, s.eval.len, 100, &ev, err, sizeof err), 0);
		ck_assert_uint_eq(ls_eval_total(ev), 0);
		ls_eval_free(ev);
		ls_ftrl_free(m);
	}
	ls_scorer_model_stats stats;
	ls_scorer_stats(sc, 0, &stats);
	ck_assert_uint_eq(stats.positives + stats.negatives, 0);

	ls_ftrl_free(old);
	ls_ftrl_free(fresh);
	ls_scorer_free(sc);
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}

START_TEST(test_other_buckets_start_afresh)
{
	ls_feature_spec f = page_views(NULL);
	ls_feature_set *set = ls_test_feature_set(&f, 1);
	ls_model_spec a = small_model(16), b = small_model(32);
	check_replaced(&a, set, &b, set);
	ls_feature_set_free(set);
}
END_TEST

/* The same features and model with a map on page_views. */
START_TEST(test_other_map_starts_afresh)
{
	ls_ftrl_numeric q = { .buckets = LS_FTRL_B_QUANTILES, .quantiles = 4 };
	ls_feature_spec f = page_views(NULL), g = page_views(&q);
	ls_feature_set *plain = ls_test_feature_set(&f, 1);
	ls_feature_set *mapped = ls_test_feature_set(&g, 1);
	ls_model_spec a = small_model(16);
	check_replaced(&a, plain, &a, mapped);
	/* and back: the old configuration's instance replaces it again */
	check_replaced(&a, mapped, &a, plain);
	ls_feature_set_free(mapped);
	ls_feature_set_free(plain);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("scorer-layout");
	TCase *t = tcase_create("layout");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_other_buckets_start_afresh);
	tcase_add_test(t, test_other_map_starts_afresh);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return ls_test_run(suite(), CK_NORMAL);
}
