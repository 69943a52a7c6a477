/*
 * test_config_features.c - ls_config's feature definitions (conf's
 * commented features block against the built-in set, custom sets, item
 * and list errors), the pipeline limits handed to ls_lead, the dead-letter
 * room, what a reload of the pipeline keys does, and number values.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_config.h"
#include "ls_testutil.h"
#include "test_config_util.h"

/* Field by field, so a mismatch names the feature and the member. */
static void assert_spec_eq(const ls_feature_spec *got, const ls_feature_spec *want)
{
	const char *nm = want->name;
	ck_assert_str_eq(got->name, want->name);
	ck_assert_msg(got->kind == want->kind, "%s: kind %d, want %d", nm, got->kind, want->kind);
	ck_assert_msg(got->source == want->source, "%s: source %d, want %d", nm, got->source,
		      want->source);
	ck_assert_msg(got->type_mask == want->type_mask, "%s: type_mask %#x, want %#x", nm,
		      got->type_mask, want->type_mask);
	ck_assert_msg(strcmp(got->page_category, want->page_category) == 0,
		      "%s: page_category \"%s\", want \"%s\"", nm, got->page_category,
		      want->page_category);
	ck_assert_msg(got->agg == want->agg, "%s: agg %d, want %d", nm, got->agg, want->agg);
	ck_assert_msg(got->field == want->field, "%s: field %d, want %d", nm, got->field,
		      want->field);
	ck_assert_msg(got->scale == want->scale, "%s: scale %g, want %g", nm, got->scale,
		      want->scale);
	ck_assert_msg(got->n_windows == want->n_windows, "%s: %zu windows, want %zu", nm,
		      got->n_windows, want->n_windows);
	for (size_t w = 0; w < want->n_windows; w++) {
		ck_assert_msg(got->windows[w].length_ms == want->windows[w].length_ms,
			      "%s: window %zu length %lld, want %lld", nm, w,
			      (long long)got->windows[w].length_ms,
			      (long long)want->windows[w].length_ms);
		ck_assert_msg(got->windows[w].slices == want->windows[w].slices,
			      "%s: window %zu slices %u, want %u", nm, w,
			      got->windows[w].slices, want->windows[w].slices);
	}
	ck_assert_msg(strcmp(got->a, want->a) == 0, "%s: a \"%s\", want \"%s\"", nm, got->a, want->a);
	ck_assert_msg(strcmp(got->b, want->b) == 0, "%s: b \"%s\", want \"%s\"", nm, got->b, want->b);
	ck_assert_msg(got->param == want->param, "%s: param %g, want %g", nm, got->param,
		      want->param);
	ck_assert_msg(got->unit_ms == want->unit_ms, "%s: unit_ms %lld, want %lld", nm,
		      (long long)got->unit_ms, (long long)want->unit_ms);
	ck_assert_msg(got->floor_zero == want->floor_zero, "%s: floor_zero", nm);
	assert_map_eq(nm, &got->map, &want->map);
}

START_TEST(test_features_default_yaml)
{
	/* The built-in set written in YAML loads into exactly the built-in
	 * specs... */
	ls_config c;
	load_ok("features_default.yaml", no_brokers_env, &c);
	size_t nd = 0, n = 0;
	const ls_feature_spec *want = ls_features_default(&nd);
	const ls_feature_spec *got = ls_config_features(&c, &n);
	ck_assert_ptr_eq(got, c.features.specs);
	ck_assert_uint_eq(n, nd);
	for (size_t i = 0; i < nd; i++)
		assert_spec_eq(&got[i], &want[i]);
	ls_config_free(&c);

	/* ...and conf/leadscore.yaml shows that same text, commented out
	 * below an empty `features:`, so the two cannot drift apart. */
	assert_conf_block_is("features", "features_default.yaml", true);
}
END_TEST

static const ls_feature_spec *spec_named(const ls_config *c, const char *name)
{
	for (size_t i = 0; i < c->features.n; i++)
		if (strcmp(c->features.specs[i].name, name) == 0)
			return &c->features.specs[i];
	ck_abort_msg("no feature %s", name);
	return NULL;
}

START_TEST(test_features_custom)
{
	ls_config c;
	load_ok("features_custom.yaml", no_env, &c);
	ck_assert_uint_eq(c.features.n, 14);
	/* File order is kept: it is the order of the values. */
	ck_assert_str_eq(c.features.specs[0].name, "ratio_first");
	ck_assert_str_eq(c.features.specs[13].name, "late_calls");

	ls_feature_spec w;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "ratio_first");
	w.kind = LS_FEATURE_RATIO;
	snprintf(w.a, sizeof w.a, "late_calls");
	snprintf(w.b, sizeof w.b, "opens");
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "ratio_first"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "opens");
	w.source = LS_SOURCE_EMAIL;
	w.type_mask = 1u << LS_EMAIL_OPENED | 1u << LS_EMAIL_CLICKED;
	w.n_windows = 3;
	w.windows[0].length_ms = H;
	w.windows[1].length_ms = 7 * D;
	w.windows[1].slices = 7;
	w.windows[2].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "opens"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "pricing_last_seen");
	w.source = LS_SOURCE_WEB;
	w.type_mask = 1u << LS_WEB_PAGE_VIEW;
	snprintf(w.page_category, sizeof w.page_category, "pricing");
	w.agg = LS_AGG_LAST_SEEN;
	w.n_windows = 1;
	w.windows[0].length_ms = 24 * H;
	assert_spec_eq(spec_named(&c, "pricing_last_seen"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "deal_value");
	w.source = LS_SOURCE_OUTCOME;
	w.type_mask = 1u << LS_OUTCOME_WON;
	w.agg = LS_AGG_SUM;
	w.field = LS_FIELD_OUTCOME_VALUE;
	w.scale = 0.5;
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "deal_value"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "open_velocity");
	w.kind = LS_FEATURE_VELOCITY;
	snprintf(w.a, sizeof w.a, "opens");
	w.param = 2.5;
	w.n_windows = 2;
	w.windows[0].length_ms = H;
	w.windows[1].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "open_velocity"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "hours_since_open");
	w.kind = LS_FEATURE_RECENCY;
	snprintf(w.a, sizeof w.a, "opens");
	w.unit_ms = H;
	w.param = 720;
	assert_spec_eq(spec_named(&c, "hours_since_open"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "opens_minus_outcomes");
	w.kind = LS_FEATURE_DIFFERENCE;
	snprintf(w.a, sizeof w.a, "opens");
	snprintf(w.b, sizeof w.b, "outcomes");
	w.floor_zero = true;
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "opens_minus_outcomes"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "sentiment_calls");
	w.source = LS_SOURCE_CALL;
	w.type_mask = 1u << LS_CALL_CONNECTED;
	w.field = LS_FIELD_CALL_SENTIMENT;
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "sentiment_calls"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "mean_sentiment");
	w.kind = LS_FEATURE_MEAN;
	snprintf(w.a, sizeof w.a, "sentiment_sum");
	snprintf(w.b, sizeof w.b, "sentiment_calls");
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "mean_sentiment"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "sessions");
	w.source = LS_SOURCE_WEB;
	w.agg = LS_AGG_DISTINCT;
	w.field = LS_FIELD_WEB_SESSION_ID;
	w.n_windows = 1;
	w.windows[0].length_ms = 90 * 60000LL;
	w.windows[0].slices = 3;
	assert_spec_eq(spec_named(&c, "sessions"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "profile_updates");
	w.source = LS_SOURCE_PROFILE;
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "profile_updates"), &w);

	/* What the config accepted, the models compile. */
	size_t n = 0;
	char err[256];
	const ls_feature_spec *specs = ls_config_features(&c, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ck_assert_int_ge(ls_feature_set_find(set, "open_velocity"), 0);
	bool found = false;
	for (size_t i = 0; i < set->n_values; i++)
		found = found || strcmp(ls_feature_set_value_name(set, i), "open_velocity_1h_30d") == 0;
	ck_assert(found);

	/* A feature list is one restart-only key in the reload diff. */
	ls_config d;
	load_ok("env_base.yaml", no_env, &d);
	diff_seen s;
	memset(&s, 0, sizeof s);
	ls_config_diff(&d, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "features"), 0);
	ck_assert_int_eq(ls_config_apply_live(&d, &c), 0);
	ck_assert_uint_eq(d.features.n, 0); /* restart-only: not copied */
	ls_config_free(&d);
	load_ok("features_custom.yaml", no_env, &d);
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 0);
	d.features.specs[1].windows[1].slices = 14;
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 1);
	d.features.specs[1].windows[1].slices = 7;
	d.features.specs[1].type_mask = 1;
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 1);
	ls_config_free(&d);

	ls_feature_set_free(set);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_features_item_errors)
{
	char err[8192];
	load_bad("features_bad_items.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_items.yaml:5:13: features[0].source: expected one of email, web, call, outcome, profile, got \"fax\"");
	ASSERT_HAS(err, "features_bad_items.yaml:9:18: features[1].aggregation: expected one of count, sum, last_seen, distinct, got \"median\"");
	ASSERT_HAS(err, "features_bad_items.yaml:13:19: features[2].windows[1]: expected a duration such as 500ms, 30s, 15m, 24h or 7d, got \"30 days\"");
	ASSERT_HAS(err, "features_bad_items.yaml:16:14: features[3].windows: expected 1 to 4 windows, got 5");
	ASSERT_HAS(err, "features_bad_items.yaml:19:21: features[4].types[1]: unknown email event type \"VIEWED\" (expected one of SENT, DELIVERED, OPENED, CLICKED, REPLIED, BOUNCED, UNSUBSCRIBED, SPAM_REPORTED)");
	ASSERT_HAS(err, "features_bad_items.yaml:24:5: features[5].floor_zero: velocity features do not use it (only difference features do)");
	ASSERT_HAS(err, "features_bad_items.yaml:26:5: features[6].a: required key is missing (recency features need it)");
	ASSERT_HAS(err, "features_bad_items.yaml:30:20: features[7].page_category: filters web events only, and this feature's source is email");
	ASSERT_HAS(err, "features_bad_items.yaml:34:36: features[8].windows[0].slices: 7 slices do not divide the window length 1h");
	ASSERT_HAS(err, "features_bad_items.yaml:35:11: features[9].name: must be a feature name of a-z, 0-9 and _, got \"Bad-Name\"");
	ASSERT_HAS(err, "features_bad_items.yaml:38:11: features[10].name: duplicate feature name \"a5\" (also features[4])");
	ASSERT_HAS(err, "features_bad_items.yaml:43:5: features[11].scale: applies to sum features only");
	ASSERT_HAS(err, "features_bad_items.yaml:47:12: features[12].types: profile events have no type");
	ASSERT_HAS(err, "features_bad_items.yaml:51:19: features[13].windows[1]: window 7d is listed twice (also features[13].windows[0])");
	ASSERT_HAS(err, "features_bad_items.yaml:52:5: features[14].source: required key is missing (windowed features need it)");
	ASSERT_HAS(err, "features_bad_items.yaml:58:14: features[15].windows: slices apply to windowed features only");
	ASSERT_HAS(err, "features_bad_items.yaml:62:14: features[16].windows: velocity features need exactly two windows, [short, long]");
	ck_assert_uint_eq(count_lines(err), 17);
}
END_TEST

START_TEST(test_features_list_errors)
{
	char err[4096];
	/* Operands are checked once every item is clean, against the whole
	 * list. */
	load_bad("features_bad_operand.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_operand.yaml:11:8: features[1].b: unknown feature \"clicks\"");
	ASSERT_HAS(err, "features_bad_operand.yaml:19:8: features[3].a: \"vel\" is a velocity feature; operands must be windowed features");
	ck_assert_uint_eq(count_lines(err), 2);

	/* What only ls_feature_set_new() knows goes to the item it names... */
	load_bad("features_bad_model.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_model.yaml:7:5: features[1]: feature 'open_velocity': window 1 is not a window of its operands");
	ck_assert_uint_eq(count_lines(err), 1);
	/* ...or to the list when it names none. */
	load_bad("features_bad_value_name.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_value_name.yaml:4:3: features: feature value name 'x_7d' repeated");
	ck_assert_uint_eq(count_lines(err), 1);

	load_bad("features_empty.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_empty.yaml:3:11: features: must list at least one feature");
	ck_assert_uint_eq(count_lines(err), 1);
	load_bad("features_shape.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_shape.yaml:4:3: features: expected a sequence, got a mapping");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_features_transform)
{
	ls_config c;
	load_ok("features_transform.yaml", no_env, &c);
	ck_assert_uint_eq(c.features.n, 7);
	ls_ftrl_numeric w;

	memset(&w, 0, sizeof w);
	w.transform = LS_FTRL_T_LINEAR;
	assert_map_eq("opens", &spec_named(&c, "opens")->map, &w);
	memset(&w, 0, sizeof w); /* log1p written out is the zero map */
	assert_map_eq("clicks", &spec_named(&c, "clicks")->map, &w);
	assert_map_eq("plain", &spec_named(&c, "plain")->map, &w);
	w.buckets = LS_FTRL_B_QUANTILES;
	w.quantiles = 8;
	assert_map_eq("pricing", &spec_named(&c, "pricing")->map, &w);

	memset(&w, 0, sizeof w);
	w.buckets = LS_FTRL_B_BINS;
	w.no_linear = true;
	w.n_edges = 4;
	w.edges[0] = 10;
	w.edges[1] = 60;
	w.edges[2] = 300.5;
	w.edges[3] = 1e4;
	assert_map_eq("seconds", &spec_named(&c, "seconds")->map, &w);

	memset(&w, 0, sizeof w);
	w.transform = LS_FTRL_T_LINEAR;
	w.buckets = LS_FTRL_B_QUANTILES;
	w.quantiles = 64;
	assert_map_eq("calls", &spec_named(&c, "calls")->map, &w);

	memset(&w, 0, sizeof w);
	w.buckets = LS_FTRL_B_BINS;
	w.n_edges = 3;
	w.edges[0] = -1;
	w.edges[1] = 0;
	w.edges[2] = 7;
	assert_map_eq("since_call", &spec_named(&c, "since_call")->map, &w);
	char err[256];
	for (size_t i = 0; i < c.features.n; i++)
		ck_assert_msg(ls_ftrl_numeric_check(&c.features.specs[i].map, err, sizeof err),
			      "%s: %s", c.features.specs[i].name, err);

	/* A changed map is a changed feature: restart-only, like the rest
	 * of features (the models' layout changes with it). */
	ls_config d;
	diff_seen s;
	load_ok("features_transform.yaml", no_env, &d);
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 0);
	d.features.specs[2].map.quantiles = 10;
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&c, &d, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "features"), 0);
	d.features.specs[2].map.quantiles = 8;
	d.features.specs[3].map.edges[3] = 1e5;
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 1);
	d.features.specs[3].map.edges[3] = 1e4;
	d.features.specs[3].map.no_linear = false;
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 1);
	d.features.specs[3].map.no_linear = true;
	/* edges past n_edges are not part of the map */
	d.features.specs[3].map.edges[10] = 7;
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 0);
	ls_config_free(&d);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_features_transform_errors)
{
	char err[8192];
	load_bad("features_bad_transform.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_transform.yaml:7:16: features[0].transform: expected linear, log1p, or a mapping such as {quantiles: 10} or {bins: [1, 5, 20]}, got \"sqrt\"");
	ASSERT_HAS(err, "features_bad_transform.yaml:11:28: features[1].transform.quantiles: must be between 2 and 64, got 1");
	ASSERT_HAS(err, "features_bad_transform.yaml:15:30: features[2].transform.bins[2]: not above the edge before it (5); edges must ascend");
	ASSERT_HAS(err, "features_bad_transform.yaml:19:37: features[3].transform.bins: quantiles and bins exclude each other; keep one");
	ASSERT_HAS(err, "features_bad_transform.yaml:23:16: features[4].transform: needs quantiles: N or bins: [edges]");
	ASSERT_HAS(err, "features_bad_transform.yaml:27:27: features[5].transform.bins[1]: expected a decimal number, got \"x\"");
	ASSERT_HAS(err, "features_bad_transform.yaml:31:39: features[6].transform.linear: expected one of log1p, linear, none, got \"sqrt\"");
	ASSERT_HAS(err, "features_bad_transform.yaml:35:31: features[7].transform.spread: unknown key (expected one of: quantiles, bins, linear)");
	ASSERT_HAS(err, "features_bad_transform.yaml:39:16: features[8].transform: expected linear, log1p, or a mapping such as {quantiles: 10} or {bins: [1, 5, 20]}, got a sequence");
	ASSERT_HAS(err, "features_bad_transform.yaml:43:23: features[9].transform.bins: expected 1 to 63 edges, got 0");
	ASSERT_HAS(err, "features_bad_transform.yaml:47:28: features[10].transform.quantiles: must be between 2 and 64, got 65");
	ASSERT_HAS(err, "features_bad_transform.yaml:51:15: features[11].transform: expected linear, log1p, or a mapping such as {quantiles: 10} or {bins: [1, 5, 20]}, got null");
	ck_assert_uint_eq(count_lines(err), 12);
}
END_TEST

START_TEST(test_pipeline_limits)
{
	char *env[] = {
		"LEADSCORE_KAFKA_BROKERS=b:1",
		"LEADSCORE_PIPELINE_GRACE=0ms",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=30d",
		"LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=7d",
		"LEADSCORE_PIPELINE_DEDUPE_IDS=1024",
		"LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES=0",
		"LEADSCORE_PIPELINE_MAX_PROFILE_METRICS=1024",
		"LEADSCORE_PIPELINE_CACHE_LEADS=10000000",
		"LEADSCORE_PIPELINE_MAX_RECORD_SIZE=1024",
		NULL,
	};
	ls_config c;
	char err[4096];
	ck_assert_int_eq(ls_config_load_env(NULL, env, &c, err, sizeof err), 0);
	ck_assert_int_eq(c.pipeline.grace_ms, 0);
	ck_assert_int_eq(c.pipeline.dedupe_horizon_ms, 30 * D);
	ck_assert_int_eq(c.pipeline.max_future_skew_ms, 7 * D);
	ck_assert_int_eq(c.pipeline.dedupe_ids, 1024);
	ck_assert_int_eq(c.pipeline.max_profile_attributes, 0);
	ck_assert_int_eq(c.pipeline.max_profile_metrics, 1024);
	ck_assert_int_eq(c.pipeline.cache_leads, 10000000);
	ck_assert_int_eq(c.pipeline.max_record_size, 1024);

	/* The lead limits reach ls_lead_conf, and the extremes pass its check. */
	size_t n = 0;
	const ls_feature_spec *specs = ls_config_features(&c, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ls_lead_conf lc;
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_ptr_eq(lc.features, set);
	ck_assert_int_eq(lc.grace_ms, 0);
	/* a horizon above the grace is valid (it acts as the grace) */
	ck_assert_int_eq(lc.dedupe_horizon_ms, 30 * D);
	ck_assert_uint_eq(lc.dedupe_k, 1024);
	ck_assert_uint_eq(lc.max_attributes, 0);
	ck_assert_uint_eq(lc.max_metrics, 1024);
	ck_assert(ls_lead_conf_check(&lc, err, sizeof err));
	ls_config_free(&c);

	/* The other ends: the longest grace, no dedupe horizon. */
	char *top[] = {
		"LEADSCORE_KAFKA_BROKERS=b:1",
		"LEADSCORE_PIPELINE_GRACE=365d",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=0ms",
		NULL,
	};
	ck_assert_int_eq(ls_config_load_env(NULL, top, &c, err, sizeof err), 0);
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_int_eq(lc.grace_ms, 365 * D);
	ck_assert_int_eq(lc.dedupe_horizon_ms, 0);
	ck_assert(ls_lead_conf_check(&lc, err, sizeof err));
	ls_config_free(&c);

	/* Defaults give exactly ls_lead_conf_default(). */
	ls_config_init_defaults(&c);
	ls_lead_conf want;
	ls_lead_conf_default(&want, set);
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_ptr_eq(lc.features, want.features);
	ck_assert_int_eq(lc.grace_ms, want.grace_ms);
	ck_assert_int_eq(lc.dedupe_horizon_ms, want.dedupe_horizon_ms);
	ck_assert_uint_eq(lc.dedupe_k, want.dedupe_k);
	ck_assert_uint_eq(lc.max_attributes, want.max_attributes);
	ck_assert_uint_eq(lc.max_metrics, want.max_metrics);
	ls_config_free(&c);
	ls_feature_set_free(set);

	/* Ranges, from the environment... */
	char *bad[] = {
		"LEADSCORE_PIPELINE_GRACE=366d",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=31d",
		"LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=8d",
		"LEADSCORE_PIPELINE_DEDUPE_IDS=1025",
		"LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES=1025",
		"LEADSCORE_PIPELINE_CACHE_LEADS=10000001",
		"LEADSCORE_PIPELINE_MAX_RECORD_SIZE=1023",
		NULL,
	};
	ls_config_init_defaults(&c);
	ck_assert_int_eq(ls_config_apply_env(&c, bad, err, sizeof err), -1);
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_GRACE: must be between 0ms and 365d, got 366d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_DEDUPE_HORIZON: must be between 0ms and 30d, got 31d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_FUTURE_SKEW: must be between 0ms and 7d, got 8d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_DEDUPE_IDS: must be between 1 and 1024, got 1025");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES: must be between 0 and 1024, got 1025");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_CACHE_LEADS: must be between 0 and 10000000, got 10000001");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_RECORD_SIZE: must be between 1024 and 104857600, got 1023");
	ck_assert_uint_eq(count_lines(err), 7);
	/* Bad values keep the previous (default) value. */
	ck_assert_int_eq(c.pipeline.grace_ms, 30 * D);
	ck_assert_int_eq(c.pipeline.dedupe_horizon_ms, H);
	ck_assert_int_eq(c.pipeline.dedupe_ids, 32);
	ls_config_free(&c);

	/* ...and from the file, at the value. */
	load_bad("pipeline_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "pipeline_bad.yaml:4:10: pipeline.grace: must be between 0ms and 365d, got 366d");
	ASSERT_HAS(err, "pipeline_bad.yaml:5:20: pipeline.max_future_skew: expected a duration such as 500ms, 30s, 15m, 24h or 7d, got \"soon\"");
	ASSERT_HAS(err, "pipeline_bad.yaml:6:15: pipeline.dedupe_ids: must be between 1 and 1024, got 0");
	ASSERT_HAS(err, "pipeline_bad.yaml:7:24: pipeline.max_profile_metrics: must be between 0 and 1024, got 1025");
	ASSERT_HAS(err, "pipeline_bad.yaml:8:16: pipeline.cache_leads: must be between 0 and 10000000, got -1");
	ASSERT_HAS(err, "pipeline_bad.yaml:9:20: pipeline.max_record_size: must be between 1024 and 104857600, got 512");
	ASSERT_HAS(err, "pipeline_bad.yaml:10:19: pipeline.dedupe_horizon: must be between 0ms and 30d, got 31d");
	ck_assert_uint_eq(count_lines(err), 7);
}
END_TEST

/*
 * A max_record_size the dead-letter producer cannot carry whole (with an
 * id of max_id_bytes and the headers) is refused, at the key that set it.
 */
/* A duration of 0 needs no unit: `pipeline.align_stall: 0` (alignment off,
 * as docs/configuration.md says) loads from the environment as from a file. */
START_TEST(test_zero_duration_needs_no_unit)
{
	char *env[] = { "LEADSCORE_KAFKA_BROKERS=b:1", "LEADSCORE_PIPELINE_ALIGN_STALL=0", NULL };
	char err[4096];
	ls_config c;
	ck_assert_msg(ls_config_load_env(NULL, env, &c, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(c.pipeline.align_stall_ms, 0);
	ls_config_free(&c);
	char *ten[] = { "LEADSCORE_KAFKA_BROKERS=b:1", "LEADSCORE_PIPELINE_ALIGN_STALL=10", NULL };
	ck_assert_int_eq(ls_config_load_env(NULL, ten, &c, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "LEADSCORE_PIPELINE_ALIGN_STALL"));
}
END_TEST

START_TEST(test_dead_letter_room)
{
	ls_config c;
	char err[4096], path[64], want[256];

	/* the old default, 1 MiB, against librdkafka's 1000000 */
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 1048576\n", no_brokers_env, &c,
				   err, sizeof err, path, sizeof path), -1);
	snprintf(want, sizeof want, "%s:2:20: pipeline.max_record_size: pipeline.max_record_size "
		 "(1048576) + pipeline.max_id_bytes (256) + 1536 bytes", path);
	ASSERT_HAS(err, want);
	ASSERT_HAS(err, "exceed the producers' message.max.bytes (1000000, librdkafka's default)");
	ASSERT_HAS(err, "at most 998208");
	ck_assert_uint_eq(count_lines(err), 1);

	/* the largest that fits is accepted */
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 998208\n", no_brokers_env, &c,
				   err, sizeof err, path, sizeof path), 0);
	ls_config_free(&c);

	/* a larger message.max.bytes makes room */
	const char *big = "kafka:\n  properties:\n    message.max.bytes: \"2000000\"\n"
			  "pipeline:\n  max_record_size: 1048576\n";
	ck_assert_int_eq(load_text(big, no_brokers_env, &c, err, sizeof err, path, sizeof path), 0);
	ck_assert_int_eq(ls_config_message_max(&c), 2000000);
	ls_config_free(&c);

	/* a smaller one, with every pipeline default: blamed on the property */
	const char *small = "kafka:\n  properties:\n    message.max.bytes: \"500000\"\n";
	ck_assert_int_eq(load_text(small, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	snprintf(want, sizeof want, "%s:3:24: kafka.properties.message.max.bytes: ", path);
	ASSERT_HAS(err, want);
	ASSERT_HAS(err, "(500000)");

	/* a long id cap is blamed on max_id_bytes */
	ck_assert_int_eq(load_text("pipeline:\n  max_id_bytes: 65536\n", no_brokers_env, &c, err,
				   sizeof err, path, sizeof path), -1);
	snprintf(want, sizeof want, "%s:2:17: pipeline.max_id_bytes: ", path);
	ASSERT_HAS(err, want);

	/* the environment beats the file, and is named */
	char *env[] = { "LEADSCORE_KAFKA_BROKERS=b:1", "LEADSCORE_PIPELINE_MAX_RECORD_SIZE=999000",
			NULL };
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 2048\n", env, &c, err,
				   sizeof err, path, sizeof path), -1);
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_RECORD_SIZE: pipeline.max_record_size (999000)");
	ck_assert_uint_eq(count_lines(err), 1);

	/* the new keys' ranges, at the value */
	const char *bad = "pipeline:\n  max_id_bytes: 8\n  ready_failed_batches: 0\n"
			  "  ready_stall: 2h\n  dead_letter_log_rate: -1\n";
	ck_assert_int_eq(load_text(bad, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	ASSERT_HAS(err, ":2:17: pipeline.max_id_bytes: must be between 128 and 65536, got 8");
	ASSERT_HAS(err, ":3:25: pipeline.ready_failed_batches: must be between 1 and 1000000, got 0");
	ASSERT_HAS(err, ":4:16: pipeline.ready_stall: must be between 0ms and 1h, got 2h");
	ASSERT_HAS(err, ":5:25: pipeline.dead_letter_log_rate: must be between 0 and 100000, got -1");
	ck_assert_uint_eq(count_lines(err), 4);

	/* a message.max.bytes that is no number is librdkafka's to refuse,
	 * at the value and without it, before the room check reads it */
	const char *word = "kafka:\n  properties:\n    message.max.bytes: lots\n";
	ck_assert_int_eq(load_text(word, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	ASSERT_HAS(err, ":3:24: kafka.properties.message.max.bytes");
	ck_assert_ptr_null(strstr(err, "lots"));
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_pipeline_reload)
{
	ls_config a, b;
	diff_seen s;

	load_ok("env_base.yaml", no_env, &a);
	load_ok("pipeline_live.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	/* env_base also sets batch_size and log.level, which pipeline_live
	 * leaves at their defaults. */
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 9);
	ck_assert_int_eq(diff_find(&s, "pipeline.grace"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.dedupe_horizon"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.max_future_skew"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.dedupe_ids"), 0);
	ck_assert_int_eq(diff_find(&s, "pipeline.cache_leads"), 0);
	ck_assert_int_eq(diff_find(&s, "features"), 0);
	ck_assert_int_eq(diff_find(&s, "kafka.brokers"), 0);
	ck_assert_int_eq(diff_find(&s, "pipeline.batch_size"), 1);
	ck_assert_int_eq(diff_find(&s, "log.level"), 1);

	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ck_assert_int_eq(a.pipeline.grace_ms, 2 * H);
	ck_assert_int_eq(a.pipeline.dedupe_horizon_ms, 10 * 60000);
	ck_assert_int_eq(a.pipeline.max_future_skew_ms, 30000);
	ck_assert_int_eq(a.pipeline.dedupe_ids, 32);     /* restart-only */
	ck_assert_int_eq(a.pipeline.cache_leads, 100000); /* restart-only */
	ck_assert_uint_eq(a.features.n, 0);              /* restart-only */
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 4);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_msg(!s.reload[i], "%s still differs after apply_live", s.keys[i]);

	/* The live grace and horizon reach the lead conf the pipeline
	 * rebuilds. */
	size_t n = 0;
	char err[256];
	const ls_feature_spec *specs = ls_config_features(&b, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ck_assert_uint_eq(set->n_features, 2);
	ls_lead_conf lc;
	ls_config_lead_conf(&a, set, &lc);
	ck_assert_int_eq(lc.grace_ms, 2 * H);
	ck_assert_int_eq(lc.dedupe_horizon_ms, 10 * 60000);
	ck_assert_uint_eq(lc.dedupe_k, 32);
	ls_feature_set_free(set);
	ls_config_free(&a);
	ls_config_free(&b);
}
END_TEST

START_TEST(test_number_values)
{
	/* scale, prior and cap: plain decimals only, and in range. */
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
		{ "scale: 0x10", "features[0].scale: expected a decimal number, got \"0x10\"" },
		{ "scale: inf", "features[0].scale: expected a decimal number, got \"inf\"" },
		{ "scale: 0", "features[0].scale: must not be 0" },
		{ "scale: 1e400", "features[0].scale: expected a decimal number, got \"1e400\"" },
		{ "scale: -2.5e-1", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[] = "/tmp/ls_test_config_XXXXXX";
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		FILE *fp = fdopen(fd, "w");
		ck_assert_ptr_nonnull(fp);
		fprintf(fp, "features:\n  - name: t\n    source: web\n    aggregation: sum\n"
			    "    field: duration_ms\n    windows: [7d]\n    %s\n", cases[i].yaml);
		fclose(fp);
		ls_config c;
		char err[1024];
		int rc = ls_config_load_env(path, no_brokers_env, &c, err, sizeof err);
		unlink(path);
		if (cases[i].want == NULL) {
			ck_assert_msg(rc == 0, "%s: %s", cases[i].yaml, err);
			ck_assert(c.features.specs[0].scale == -0.25);
			ls_config_free(&c);
			continue;
		}
		ck_assert_msg(rc == -1, "accepted %s", cases[i].yaml);
		ASSERT_HAS(err, ":7:12: ");
		ASSERT_HAS(err, cases[i].want);
	}
}
END_TEST

static Suite *config_features_suite(void)
{
	Suite *s = suite_create("config-features");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_features_default_yaml);
	tcase_add_test(tc, test_zero_duration_needs_no_unit);
	tcase_add_test(tc, test_features_custom);
	tcase_add_test(tc, test_features_item_errors);
	tcase_add_test(tc, test_features_list_errors);
	tcase_add_test(tc, test_features_transform);
	tcase_add_test(tc, test_features_transform_errors);
	tcase_add_test(tc, test_pipeline_limits);
	tcase_add_test(tc, test_dead_letter_room);
	tcase_add_test(tc, test_pipeline_reload);
	tcase_add_test(tc, test_number_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(config_features_suite(), CK_NORMAL);
}
