/*
 * Unit tests for ls_scorer's learning path (no broker, no Redis: the
 * store is created but never connected, and nothing is published):
 * labels are learned from the lead as it stood before the label event.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_lead.h"
#include "ls_model_spec.h"
#include "ls_scorer.h"
#include "ls_store.h"
#include "ls_testmodels.h"
#include "ls_testutil.h"

#define DAY INT64_C(86400000)

typedef struct fixture {
	ls_model_spec model;
	ls_feature_set *set;
	ls_lead_conf lc;
	ls_store *store;
	ls_scorer *sc;
} fixture;

/*
 * A feature that counts the label's own outcome type, beside page views.
 * If the model ever learned a lead as it stood after its label, this
 * feature would be 1 for every positive and learn a weight; learned
 * before, it is 0 in every example.
 */
static ls_feature_spec window_feature(const char *name, ls_source src, uint32_t type)
{
	ls_feature_spec f = { .kind = LS_FEATURE_WINDOWED, .source = src,
			      .type_mask = UINT32_C(1) << type, .agg = LS_AGG_COUNT,
			      .n_windows = 1, .windows = { { 30 * DAY, 0 } } };
	snprintf(f.name, sizeof f.name, "%s", name);
	return f;
}

/* The scorer's settings: the fixture's one model. */
static ls_scorer_settings scorer_settings(fixture *f)
{
	return (ls_scorer_settings){ .models = &f->model, .n_models = 1,
				     .scores_topic = "leads.scores" };
}

static void setup(fixture *f)
{
	char err[1024];
	ls_feature_spec specs[2] = {
		window_feature("conversions", LS_SOURCE_OUTCOME, LS_OUTCOME_CONVERTED),
		window_feature("page_views", LS_SOURCE_WEB, LS_WEB_PAGE_VIEW),
	};
	f->set = ls_feature_set_new(specs, 2, err, sizeof err);
	ck_assert_msg(f->set != NULL, "%s", err);
	ls_lead_conf_default(&f->lc, f->set);
	/* the built-in model without crosses, metrics or a label timeout */
	f->model = *ls_model_spec_default();
	f->model.label_timeout_ms = 0;
	f->model.ftrl.n_buckets = 16;
	f->model.n_crosses = 0;
	f->model.n_metrics = 0;
	/* created, never connected: nothing here reaches Redis */
	ls_store_settings ss = { .url = "redis://127.0.0.1:6379/0", .key_prefix = "ls:",
				 .group_id = "leadscore", .lead_ttl_ms = 30 * DAY,
				 .connect_timeout_ms = 2000, .command_timeout_ms = 2000 };
	f->store = ls_store_new(&ss, err, sizeof err);
	ck_assert_msg(f->store != NULL, "%s", err);
	ls_scorer_settings scs = scorer_settings(f);
	f->sc = ls_scorer_new(&scs, f->set, &f->lc, NULL, NULL, f->store, err,
			      sizeof err);
	ck_assert_msg(f->sc != NULL, "%s", err);
}

static void teardown(fixture *f)
{
	ls_scorer_free(f->sc);
	ls_store_free(f->store);
	ls_feature_set_free(f->set);
}

/*
 * 200 leads: lead i views pages i % 6 times, then gets CONVERTED when it
 * viewed 3 or more pages (99 leads), LOST otherwise (101). leaky = true
 * applies the outcome before learning it: the control showing the check
 * can fail.
 */
static void stream(fixture *f, bool leaky)
{
	char err[512], id[32];
	for (int i = 0; i < 200; i++) {
		ls_lead *lead = ls_lead_new(&f->lc);
		ck_assert_ptr_nonnull(lead);
		int64_t t = 1700000000000 + (int64_t)i * 1000;
		int views = i % 6;
		for (int v = 0; v < views; v++) {
			snprintf(id, sizeof id, "w-%d-%d", i, v);
			ls_event ev = { .source = LS_SOURCE_WEB, .event_id = id,
					.lead_id = "x", .ts = t + v * 60000 };
			ev.u.web.type = LS_WEB_PAGE_VIEW;
			ev.u.web.url = "https://x.test/";
			bool changed = false;
			ck_assert_int_eq(ls_scorer_before_apply(f->sc, lead, &ev, &changed,
								err, sizeof err), 0);
			ck_assert_int_eq(ls_lead_apply(lead, &f->lc, &ev), LS_LEAD_APPLIED);
		}
		snprintf(id, sizeof id, "o-%d", i);
		ls_event out = { .source = LS_SOURCE_OUTCOME, .event_id = id,
				 .lead_id = "x", .ts = t + DAY };
		out.u.outcome.outcome = views >= 3 ? LS_OUTCOME_CONVERTED : LS_OUTCOME_LOST;
		bool changed = false;
		if (leaky)
			ck_assert_int_eq(ls_lead_apply(lead, &f->lc, &out), LS_LEAD_APPLIED);
		ck_assert_int_eq(ls_scorer_before_apply(f->sc, lead, &out, &changed, err,
							sizeof err), 0);
		ck_assert(changed);
		if (!leaky)
			ck_assert_int_eq(ls_lead_apply(lead, &f->lc, &out), LS_LEAD_APPLIED);
		/* the same label again (a redelivery, or WON after CONVERTED)
		 * is not a second example */
		changed = false;
		ck_assert_int_eq(ls_scorer_before_apply(f->sc, lead, &out, &changed, err,
							sizeof err), 0);
		ck_assert(!changed);
		ls_lead_free(lead);
	}
}

/* |weight| of dense feature name in the scorer's model, and its n. */
static double weight_of(fixture *f, const char *name, double *n_out)
{
	ls_scorer_snapshot *s = ls_scorer_snapshot_new(f->sc);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->n, 1);
	const ls_ftrl *m = s->m[0].model;
	double w = NAN;
	for (size_t j = 0; j < ls_ftrl_n_dense(m); j++)
		if (strcmp(ls_ftrl_dense_name(m, j), name) == 0) {
			double z;
			ck_assert(ls_ftrl_coord(m, 1 + j, &z, n_out, &w));
		}
	ck_assert_msg(!isnan(w), "no dense feature %s", name);
	ck_assert_uint_eq(s->m[0].stats.positives, 99); /* i % 6 >= 3 */
	ck_assert_uint_eq(s->m[0].stats.negatives, 101);
	ls_scorer_snapshot_free(s);
	return w;
}

START_TEST(labels_learned_before_the_label_event)
{
	fixture f;
	setup(&f);
	stream(&f, false);
	double n_conv, n_views;
	double w_conv = weight_of(&f, "conversions_30d", &n_conv);
	double w_views = weight_of(&f, "page_views_30d", &n_views);
	/* the outcome count was 0 in every example: never a gradient */
	ck_assert(w_conv == 0.0);
	ck_assert(n_conv == 0.0);
	/* while the real signal was learned */
	ck_assert_msg(w_views > 0.1, "page_views weight %g", w_views);
	teardown(&f);
}
END_TEST

/* Labels in the models (positives and negatives of the local model). */
static uint64_t labels(fixture *f)
{
	ls_scorer_model_stats st;
	ls_scorer_stats(f->sc, 0, &st);
	return st.positives + st.negatives;
}

/*
 * A commit set aside (ls_scorer_stage) while learning goes on: when it
 * lands only its labels are committed (the evaluation window gets its
 * pairs, a discard goes back to it), and no checkpoint runs meanwhile.
 */
START_TEST(staged_commit_holds_only_what_was_learned_before_it)
{
	fixture f;
	setup(&f);
	char err[512];
	stream(&f, false);
	ck_assert_uint_eq(labels(&f), 200);
	const ls_store_append *a;
	size_t n;
	ck_assert_int_eq(ls_scorer_commit_appends(f.sc, &a, &n, err, sizeof err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(ls_scorer_stage(f.sc), 0);
	/* on its way: the next batches learn */
	stream(&f, false);
	ck_assert_uint_eq(labels(&f), 400);
	ck_assert_int_eq(ls_scorer_checkpoint(f.sc, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "on its way") != NULL, "%s", err);
	ls_scorer_committed(f.sc);
	ls_scorer_model_stats st;
	ls_scorer_stats(f.sc, 0, &st);
	ck_assert_uint_eq(st.eval_labels, 200);
	/* the later learning is not committed: a discard drops it */
	ls_scorer_discard(f.sc);
	ck_assert_uint_eq(labels(&f), 200);
	/* and without a stage, a commit takes everything learned */
	stream(&f, false);
	ls_scorer_committed(f.sc);
	ls_scorer_discard(f.sc);
	ck_assert_uint_eq(labels(&f), 400);
	ls_scorer_stats(f.sc, 0, &st);
	ck_assert_uint_eq(st.eval_labels, 400);
	/* a staged commit that fails: back to the last one that landed */
	stream(&f, false);
	ck_assert_int_eq(ls_scorer_stage(f.sc), 0);
	stream(&f, false);
	ls_scorer_discard(f.sc);
	ck_assert_uint_eq(labels(&f), 400);
	teardown(&f);
}
END_TEST

START_TEST(control_leaky_order_is_detected)
{
	fixture f;
	setup(&f);
	stream(&f, true);
	double n_conv;
	double w_conv = weight_of(&f, "conversions_30d", &n_conv);
	ck_assert_msg(w_conv > 0.1, "leaked label weight %g", w_conv);
	teardown(&f);
}
END_TEST

/*
 * Idle rescoring stops once every model has learned the lead's outcome;
 * ls_scorer_is_label says which outcome is about to teach one.
 */
START_TEST(settled_after_an_outcome_label)
{
	fixture f;
	setup(&f);
	char err[512];
	ls_lead *lead = ls_lead_new(&f.lc);
	ck_assert_ptr_nonnull(lead);
	ck_assert(!ls_scorer_settled(f.sc, lead));
	ls_event ev = { .source = LS_SOURCE_WEB, .event_id = "w", .lead_id = "x",
			.ts = 1700000000000 };
	ev.u.web.type = LS_WEB_PAGE_VIEW;
	ev.u.web.url = "https://x.test/";
	bool changed = false;
	ck_assert_int_eq(ls_scorer_before_apply(f.sc, lead, &ev, &changed, err,
						sizeof err), 0);
	ck_assert_int_eq(ls_lead_apply(lead, &f.lc, &ev), LS_LEAD_APPLIED);
	ck_assert(!ls_scorer_settled(f.sc, lead)); /* open: still rescored */
	/* an outcome outside the label sets settles nothing */
	ls_event opp = { .source = LS_SOURCE_OUTCOME, .event_id = "o1",
			 .lead_id = "x", .ts = ev.ts + DAY };
	opp.u.outcome.outcome = LS_OUTCOME_OPPORTUNITY_CREATED;
	ck_assert(!ls_scorer_is_label(f.sc, lead, &opp));
	ck_assert(!ls_scorer_is_label(f.sc, lead, &ev)); /* not an outcome */
	ck_assert_int_eq(ls_scorer_before_apply(f.sc, lead, &opp, &changed, err,
						sizeof err), 0);
	ck_assert(!ls_scorer_settled(f.sc, lead));
	ls_event lost = { .source = LS_SOURCE_OUTCOME, .event_id = "o2",
			  .lead_id = "x", .ts = ev.ts + 2 * DAY };
	lost.u.outcome.outcome = LS_OUTCOME_LOST;
	ck_assert(ls_scorer_is_label(f.sc, lead, &lost));
	ck_assert_int_eq(ls_scorer_before_apply(f.sc, lead, &lost, &changed, err,
						sizeof err), 0);
	ck_assert(ls_scorer_settled(f.sc, lead));
	/* learned once: a second outcome teaches nothing */
	ck_assert(!ls_scorer_is_label(f.sc, lead, &lost));
	ls_lead_free(lead);
	teardown(&f);
}
END_TEST

/*
 * A ScoreChange the producer can never take (over its message.max.bytes)
 * is counted and skipped, not an error that would fail the batch; the
 * lead's score state moves on. The producer has no broker: the size
 * check is synchronous, and what fits is only queued (then purged).
 */
START_TEST(too_large_score_change_is_skipped)
{
	fixture f;
	setup(&f);
	char err[512];
	ls_codec *codec = ls_codec_new(err, sizeof err);
	ck_assert_msg(codec != NULL, "%s", err);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	ck_assert_int_eq(rd_kafka_conf_set(conf, "message.max.bytes", "1000", err, sizeof err),
			 RD_KAFKA_CONF_OK);
	rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	ck_assert_msg(prod != NULL, "%s", err);
	ls_scorer_settings scs = scorer_settings(&f);
	ls_scorer *sc = ls_scorer_new(&scs, f.set, &f.lc, codec, prod, f.store, err, sizeof err);
	ck_assert_msg(sc != NULL, "%s", err);

	char long_id[901];
	memset(long_id, 'L', 900);
	long_id[900] = '\0';
	const char *ids[2] = { "short", long_id };
	for (int k = 0; k < 2; k++) {
		ls_lead *lead = ls_lead_new(&f.lc);
		ck_assert_ptr_nonnull(lead);
		ls_event ev = { .source = LS_SOURCE_WEB, .event_id = "w-1", .lead_id = ids[k],
				.ts = 1700000000000 };
		ev.u.web.type = LS_WEB_PAGE_VIEW;
		ev.u.web.url = "https://x.test/";
		ck_assert_int_eq(ls_lead_apply(lead, &f.lc, &ev), LS_LEAD_APPLIED);
		bool changed = false;
		size_t produced = 0;
		ck_assert_msg(ls_scorer_score(sc, ids[k], lead, LS_LEAD_AT_WATERMARK, &ev, &changed,
					      &produced, err, sizeof err) == 0, "%s", err);
		/* the score is recorded either way */
		ck_assert(changed);
		ck_assert_uint_eq(produced, k == 0 ? 1 : 0);
		ck_assert_uint_eq(ls_scorer_skipped(sc), (uint64_t)k);
		ls_lead_free(lead);
	}
	rd_kafka_purge(prod, RD_KAFKA_PURGE_F_QUEUE);
	ls_scorer_free(sc);
	rd_kafka_destroy(prod);
	ls_codec_free(codec);
	teardown(&f);
}
END_TEST

/*
 * The scorer keeps a copy of its settings' specs: the caller's array may
 * change or go after ls_scorer_new / ls_scorer_reload. A reload naming the
 * same models takes their live keys; another list changes nothing (it
 * needs a restart).
 */
static ls_model_spec running_spec(fixture *f)
{
	ls_scorer_snapshot *s = ls_scorer_snapshot_new(f->sc);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->n, 1);
	ls_model_spec spec = s->m[0].spec;
	ls_scorer_snapshot_free(s);
	return spec;
}

START_TEST(reload_copies_the_specs_of_the_same_models)
{
	fixture f;
	setup(&f);
	ls_scorer_settings scs = scorer_settings(&f);
	ls_model_spec spec = scs.models[0];
	ck_assert(running_spec(&f).min_delta != 0.25);
	spec.min_delta = 0.25;
	spec.shadow = true;
	ls_scorer_settings next = { .models = &spec, .n_models = 1, .scores_topic = "x" };
	ls_scorer_reload(f.sc, &next);
	ck_assert(running_spec(&f).min_delta == 0.25);
	ck_assert(running_spec(&f).shadow);
	spec.min_delta = 0.5; /* the scorer's copy does not move with it */
	ck_assert(running_spec(&f).min_delta == 0.25);

	ls_model_spec other = spec;
	snprintf(other.name, sizeof other.name, "other");
	next.models = &other;
	ls_scorer_reload(f.sc, &next);
	ck_assert_str_eq(running_spec(&f).name, "conversion");
	ck_assert(running_spec(&f).min_delta == 0.25);
	ls_model_spec two[2] = { spec, spec };
	next = (ls_scorer_settings){ .models = two, .n_models = 2 };
	ls_scorer_reload(f.sc, &next);
	ck_assert(running_spec(&f).min_delta == 0.25);
	teardown(&f);
}
END_TEST

/*
 * ls_example_build resolves dense indices once per model layout: every
 * example it builds must be the one the name lookup builds, for models of
 * more layouts than the context remembers, met in turn.
 */
START_TEST(example_ctx_builds_what_the_name_lookup_builds)
{
	fixture f;
	setup(&f);
	enum { LAYOUTS = LS_MODEL_MAX + 3 };
	char err[512];
	size_t nv = f.set->n_values;
	/* names: the values then the metrics; shifted: the metrics first,
	 * so the values' dense indices differ between layouts */
	const char *names[8], *shifted[8];
	ck_assert_uint_le(nv + 2, 8);
	for (size_t i = 0; i < nv; i++)
		names[i] = shifted[2 + i] = ls_feature_set_value_name(f.set, i);
	names[nv] = shifted[0] = "employees";
	names[nv + 1] = shifted[1] = "revenue";
	ls_model_spec specs[LAYOUTS];
	ls_ftrl *models[LAYOUTS];
	for (int k = 0; k < LAYOUTS; k++) {
		specs[k] = f.model;
		specs[k].ftrl.n_buckets = 16u << k; /* another layout each */
		specs[k].n_crosses = 1;
		snprintf(specs[k].crosses[0].a, sizeof specs[k].crosses[0].a, "plan");
		snprintf(specs[k].crosses[0].b, sizeof specs[k].crosses[0].b, "industry");
		/* odd models take the metrics as dense inputs (first), even
		 * ones hash them */
		models[k] = k % 2 ? ls_ftrl_new(&specs[k].ftrl, shifted, nv + 2, err, sizeof err)
				  : ls_ftrl_new(&specs[k].ftrl, names, nv, err, sizeof err);
		ck_assert_msg(models[k] != NULL, "%s", err);
	}
	ls_lead *lead = ls_lead_new(&f.lc);
	ck_assert_ptr_nonnull(lead);
	ls_attribute attrs[] = { { "industry", "saas" }, { "plan", "pro" } };
	ls_metric mets[] = { { "employees", 120 }, { "revenue", -3.5 }, { "zeta", 0 } };
	ls_event pe = ls_test_event(LS_SOURCE_PROFILE, "p-1", "x", 1700000000000);
	pe.u.profile = (ls_profile_event){ 2, attrs, 3, mets };
	ck_assert_int_eq(ls_lead_apply(lead, &f.lc, &pe), LS_LEAD_APPLIED);
	ls_example_ctx ctx;
	ck_assert_int_eq(ls_example_ctx_init(&ctx, f.set, &f.lc), 0);
	ls_ftrl_example ref;
	ls_ftrl_example_init(&ref);
	double vals[8];
	const char *num_names[8];
	char id[32];
	for (int r = 0; r < 3 * LAYOUTS; r++) {
		snprintf(id, sizeof id, "w-%d", r);
		ls_event ev = ls_test_event(LS_SOURCE_WEB, id, "x",
					    1700000000000 + (int64_t)r * 3600000);
		ev.u.web.type = LS_WEB_PAGE_VIEW;
		ck_assert_int_eq(ls_lead_apply(lead, &f.lc, &ev), LS_LEAD_APPLIED);
		int k = (r * 5) % LAYOUTS;
		ck_assert_int_eq(ls_example_build(&ctx, &specs[k], models[k], lead,
						  LS_LEAD_AT_WATERMARK), 0);
		/* the same by name, as the builder did before */
		ck_assert_int_eq(ls_lead_features(lead, &f.lc, LS_LEAD_AT_WATERMARK, vals, nv),
				 (int)nv);
		for (size_t i = 0; i < nv; i++)
			num_names[i] = names[i];
		for (size_t i = 0; i < 3; i++)
			ck_assert(ls_lead_metric_at(lead, i, &num_names[nv + i], &vals[nv + i]));
		const char *ck[2], *cv[2];
		for (size_t i = 0; i < 2; i++)
			ck_assert(ls_lead_attribute_at(lead, i, &ck[i], &cv[i]));
		ls_ftrl_cross cr = { "plan", "industry" };
		ls_ftrl_input in = { .num_names = num_names, .num_values = vals,
				     .n_num = nv + 3, .cat_keys = ck, .cat_values = cv,
				     .n_cat = 2, .crosses = &cr, .n_crosses = 1 };
		ck_assert_int_eq(ls_ftrl_example_build(&ref, models[k], &in), LS_FTRL_OK);
		ls_test_assert_same_example(&ctx.x, &ref);
	}
	ls_ftrl_example_free(&ref);
	ls_example_ctx_free(&ctx);
	ls_lead_free(lead);
	for (int k = 0; k < LAYOUTS; k++)
		ls_ftrl_free(models[k]);
	teardown(&f);
}
END_TEST

/*
 * ls_model_spec_new_ftrl gives every window value its feature's map and
 * every metric its metric map: the same layout as ls_ftrl_new_mapped with
 * those maps written out by hand, and another than without them or with
 * a map on one window only.
 */
/* shrink_young decides whether the published score is shrunk (the
 * scorer and the HTTP API both go through ls_scorer_published). */
START_TEST(published_score_shrunk_only_with_shrink_young)
{
	ls_model_spec spec = *ls_model_spec_default();
	ls_ftrl_params fp;
	ls_ftrl_params_default(&fp);
	const char *names[] = { "x" };
	char err[256];
	ls_ftrl *m = ls_ftrl_new(&fp, names, 1, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	ls_ftrl_example x;
	ls_ftrl_example_init(&x);
	double v = 1.0;
	ls_ftrl_input in = { .num_names = names, .num_values = &v, .n_num = 1 };
	ck_assert_int_eq(ls_ftrl_example_build(&x, m, &in), LS_FTRL_OK);
	for (int i = 0; i < 40; i++) /* young: 40 labels, 10 positive */
		ck_assert_int_eq(ls_ftrl_learn(m, &x, i % 4 == 0, NULL), LS_FTRL_OK);
	double p;
	ck_assert_int_eq(ls_ftrl_predict(m, &x, &p), LS_FTRL_OK);
	ck_assert(!spec.shrink_young); /* the default */
	ck_assert_double_eq(ls_scorer_published(m, &spec, p), p);
	spec.shrink_young = true;
	double want = ls_score_shrink(p, ls_scorer_bias(m), 10, 30, spec.maturity);
	ck_assert_double_ne(want, p);
	ck_assert_double_eq(ls_scorer_published(m, &spec, p), want);
	spec.maturity = 0; /* always mature: nothing to shrink */
	ck_assert_double_eq(ls_scorer_published(m, &spec, p), p);
	ls_ftrl_example_free(&x);
	ls_ftrl_free(m);
}
END_TEST

START_TEST(model_maps_follow_features_and_metrics)
{
	char err[512];
	ls_feature_spec specs[2] = {
		window_feature("page_views", LS_SOURCE_WEB, LS_WEB_PAGE_VIEW),
		window_feature("opens", LS_SOURCE_EMAIL, LS_EMAIL_OPENED),
	};
	specs[0].n_windows = 2;
	specs[0].windows[0] = (ls_window_spec){ 7 * DAY, 0 };
	specs[0].windows[1] = (ls_window_spec){ 30 * DAY, 0 };
	specs[0].map.buckets = LS_FTRL_B_QUANTILES;
	specs[0].map.quantiles = 4;
	ls_feature_set *set = ls_test_feature_set(specs, 2);
	ck_assert_uint_eq(set->n_values, 3);
	ls_model_spec spec = *ls_model_spec_default();
	spec.ftrl.n_buckets = 16;
	ck_assert_uint_eq(spec.n_metrics, 2);
	spec.metric_maps[1].transform = LS_FTRL_T_LINEAR;

	ls_ftrl *m = ls_model_spec_new_ftrl(&spec, set, err, sizeof err);
	ck_assert_msg(m != NULL, "%s", err);
	const char *names[5];
	ls_ftrl_numeric maps[5];
	memset(maps, 0, sizeof maps);
	for (size_t i = 0; i < 3; i++)
		names[i] = ls_feature_set_value_name(set, i);
	names[3] = spec.metrics[0];
	names[4] = spec.metrics[1];
	ck_assert_str_eq(names[0], "page_views_7d");
	ck_assert_str_eq(names[1], "page_views_30d");
	ck_assert_str_eq(ls_ftrl_dense_name(m, 4), "annual_revenue");
	maps[0] = maps[1] = specs[0].map;
	maps[4] = spec.metric_maps[1];
	ls_ftrl *want = ls_ftrl_new_mapped(&spec.ftrl, names, maps, 5, err, sizeof err);
	ck_assert_msg(want != NULL, "%s", err);
	ck_assert_uint_eq(ls_ftrl_layout(m), ls_ftrl_layout(want));
	ls_ftrl_free(want);
	/* controls: the layout does see the maps */
	memset(&maps[1], 0, sizeof maps[1]);
	want = ls_ftrl_new_mapped(&spec.ftrl, names, maps, 5, err, sizeof err);
	ck_assert_uint_ne(ls_ftrl_layout(m), ls_ftrl_layout(want));
	ls_ftrl_free(want);
	want = ls_ftrl_new(&spec.ftrl, names, 5, err, sizeof err);
	ck_assert_uint_ne(ls_ftrl_layout(m), ls_ftrl_layout(want));
	ls_ftrl_free(want);
	ls_ftrl_free(m);
	ls_feature_set_free(set);
}
END_TEST

static Suite *scorer_suite(void)
{
	Suite *s = suite_create("scorer");
	TCase *tc = tcase_create("labels");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, labels_learned_before_the_label_event);
	tcase_add_test(tc, staged_commit_holds_only_what_was_learned_before_it);
	tcase_add_test(tc, control_leaky_order_is_detected);
	tcase_add_test(tc, settled_after_an_outcome_label);
	tcase_add_test(tc, too_large_score_change_is_skipped);
	tcase_add_test(tc, reload_copies_the_specs_of_the_same_models);
	tcase_add_test(tc, example_ctx_builds_what_the_name_lookup_builds);
	tcase_add_test(tc, model_maps_follow_features_and_metrics);
	tcase_add_test(tc, published_score_shrunk_only_with_shrink_young);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(scorer_suite(), CK_NORMAL);
}
