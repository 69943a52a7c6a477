/*
 * test_config_models.c - ls_config's scoring models (defaults, conf's
 * commented models block against the built-in model, custom models,
 * errors), campaigns, the messages of bad list items, scoring environment
 * overrides and the reload diff of models.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_config.h"
#include "ls_testutil.h"
#include "test_config_util.h"

/* Field by field, so a mismatch names the model and the member. */
static void assert_model_eq(const ls_model_spec *got, const ls_model_spec *want)
{
	const char *nm = want->name;
	ck_assert_str_eq(got->name, want->name);
	ck_assert_msg(got->positive_mask == want->positive_mask, "%s: positive %#x, want %#x",
		      nm, got->positive_mask, want->positive_mask);
	ck_assert_msg(got->negative_mask == want->negative_mask, "%s: negative %#x, want %#x",
		      nm, got->negative_mask, want->negative_mask);
	ck_assert_msg(got->label_timeout_ms == want->label_timeout_ms, "%s: label_timeout", nm);
	ck_assert_msg(got->min_delta == want->min_delta, "%s: min_delta %g, want %g", nm,
		      got->min_delta, want->min_delta);
	ck_assert_msg(got->tiers.n == want->tiers.n, "%s: %zu tiers, want %zu", nm,
		      got->tiers.n, want->tiers.n);
	for (size_t i = 0; i < want->tiers.n; i++) {
		ck_assert_str_eq(got->tiers.names[i], want->tiers.names[i]);
		if (i > 0)
			ck_assert_msg(got->tiers.bounds[i - 1] == want->tiers.bounds[i - 1],
				      "%s: boundary %zu %g, want %g", nm, i - 1,
				      got->tiers.bounds[i - 1], want->tiers.bounds[i - 1]);
	}
	ck_assert_msg(got->tiers.hysteresis == want->tiers.hysteresis, "%s: hysteresis", nm);
	ck_assert_msg(got->ftrl.alpha == want->ftrl.alpha, "%s: alpha", nm);
	ck_assert_msg(got->ftrl.beta == want->ftrl.beta, "%s: beta", nm);
	ck_assert_msg(got->ftrl.l1 == want->ftrl.l1, "%s: l1", nm);
	ck_assert_msg(got->ftrl.l2 == want->ftrl.l2, "%s: l2", nm);
	ck_assert_msg(got->ftrl.n_buckets == want->ftrl.n_buckets, "%s: buckets", nm);
	ck_assert_msg(got->ftrl.clip == want->ftrl.clip, "%s: clip", nm);
	ck_assert_msg(got->n_crosses == want->n_crosses, "%s: %zu crosses, want %zu", nm,
		      got->n_crosses, want->n_crosses);
	for (size_t i = 0; i < want->n_crosses; i++) {
		ck_assert_str_eq(got->crosses[i].a, want->crosses[i].a);
		ck_assert_str_eq(got->crosses[i].b, want->crosses[i].b);
	}
	ck_assert_msg(got->n_metrics == want->n_metrics, "%s: %zu metrics, want %zu", nm,
		      got->n_metrics, want->n_metrics);
	for (size_t i = 0; i < want->n_metrics; i++) {
		ck_assert_str_eq(got->metrics[i], want->metrics[i]);
		assert_map_eq(got->metrics[i], &got->metric_maps[i], &want->metric_maps[i]);
	}
	ck_assert_msg(got->decay_half_life_ms == want->decay_half_life_ms, "%s: decay", nm);
	ck_assert_msg(got->eval_window == want->eval_window, "%s: eval_window", nm);
	ck_assert_msg(got->shadow == want->shadow, "%s: shadow", nm);
}

#define OUT(o) (1u << (o))

/* The built-in model, written out from the issue and the models' own
 * defaults rather than read back from ls_config. */
static void want_default_model(ls_model_spec *m)
{
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "conversion");
	m->positive_mask = OUT(LS_OUTCOME_CONVERTED) | OUT(LS_OUTCOME_WON);
	m->negative_mask = OUT(LS_OUTCOME_LOST) | OUT(LS_OUTCOME_DISQUALIFIED);
	m->label_timeout_ms = 90 * D;
	m->min_delta = 0.05;
	const char *names[] = { "cold", "warm", "hot" };
	const double bounds[] = { 0.3, 0.7 };
	char err[128];
	ck_assert_msg(ls_tiers_init(&m->tiers, names, bounds, 3, 0.02, err, sizeof err), "%s", err);
	ls_ftrl_params_default(&m->ftrl);
	m->n_crosses = 2;
	snprintf(m->crosses[0].a, sizeof m->crosses[0].a, "industry");
	snprintf(m->crosses[0].b, sizeof m->crosses[0].b, "size_band");
	snprintf(m->crosses[1].a, sizeof m->crosses[1].a, "industry");
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "role");
	m->n_metrics = 2;
	snprintf(m->metrics[0], sizeof m->metrics[0], "employees");
	snprintf(m->metrics[1], sizeof m->metrics[1], "annual_revenue");
	m->decay_half_life_ms = 0;
	m->eval_window = 10000;
	m->shadow = false;
}

START_TEST(test_models_defaults)
{
	ls_model_spec want;
	want_default_model(&want);

	/* No models: key, so the built-in model. */
	ls_config c;
	ls_config_init_defaults(&c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 5000);
	ck_assert_uint_eq(c.models.n, 0);
	size_t n = 0;
	const ls_model_spec *m = ls_config_models(&c, &n);
	ck_assert_uint_eq(n, 1);
	assert_model_eq(&m[0], &want);
	/* Ready for the models: the tiers assign, the parameters check. */
	char err[256];
	ck_assert(ls_ftrl_params_check(&m[0].ftrl, err, sizeof err));
	ck_assert_int_eq(ls_tiers_assign(&m[0].tiers, -1, 0.5), 1);
	ck_assert_str_eq(ls_tiers_name(&m[0].tiers, 2), "hot");
	ls_config_free(&c);
	ck_assert_ptr_eq(ls_config_models(NULL, &n), m);

	/* A model with only a name takes every default, and a list with
	 * it alone is the same configuration as no list. */
	load_ok("models_name_only.yaml", no_env, &c);
	ck_assert_uint_eq(c.models.n, 1);
	ck_assert_ptr_eq(ls_config_models(&c, &n), c.models.specs);
	assert_model_eq(&c.models.specs[0], &want);
	ck_assert_int_eq(ls_tiers_assign(&c.models.specs[0].tiers, -1, 0.71), 2);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_models_default_yaml)
{
	/* The built-in model written in YAML loads into exactly it... */
	ls_config c;
	ls_model_spec want;
	want_default_model(&want);
	load_ok("models_default.yaml", no_brokers_env, &c);
	size_t n = 0;
	const ls_model_spec *got = ls_config_models(&c, &n);
	ck_assert_ptr_eq(got, c.models.specs);
	ck_assert_uint_eq(n, 1);
	assert_model_eq(&got[0], &want);
	ls_config_free(&c);

	/* ...and conf/leadscore.yaml shows that same text, commented out
	 * below an empty `models:`, up to the first line that is not a
	 * comment. */
	assert_conf_block_is("models", "models_default.yaml", false);
}
END_TEST

START_TEST(test_models_custom)
{
	ls_config c;
	load_ok("models_custom.yaml", no_env, &c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 30000);
	size_t n = 0;
	const ls_model_spec *m = ls_config_models(&c, &n);
	ck_assert_uint_eq(n, 2);

	ls_model_spec w;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "conversion");
	w.positive_mask = OUT(LS_OUTCOME_CONVERTED);
	w.negative_mask = OUT(LS_OUTCOME_LOST);
	w.label_timeout_ms = 30 * D;
	w.min_delta = 0;
	w.tiers.n = 4;
	snprintf(w.tiers.names[0], sizeof w.tiers.names[0], "low");
	snprintf(w.tiers.names[1], sizeof w.tiers.names[1], "mid");
	snprintf(w.tiers.names[2], sizeof w.tiers.names[2], "high");
	snprintf(w.tiers.names[3], sizeof w.tiers.names[3], "hottest");
	w.tiers.bounds[0] = 0.25;
	w.tiers.bounds[1] = 0.5;
	w.tiers.bounds[2] = 0.9;
	w.tiers.hysteresis = 0;
	w.ftrl.alpha = 0.05;
	w.ftrl.beta = 0.5;
	w.ftrl.l1 = 0;
	w.ftrl.l2 = 2.5;
	w.ftrl.n_buckets = 1024;
	w.ftrl.clip = 3;
	w.decay_half_life_ms = 14 * D;
	w.eval_window = 1048576;
	assert_model_eq(&m[0], &w);
	ck_assert_int_eq(ls_tiers_assign(&m[0].tiers, 2, 0.95), 3);

	/* The second model names only some keys; the rest are defaults. */
	want_default_model(&w);
	snprintf(w.name, sizeof w.name, "opportunity_v2");
	w.positive_mask = OUT(LS_OUTCOME_OPPORTUNITY_CREATED) | OUT(LS_OUTCOME_WON);
	w.negative_mask = 0;
	w.shadow = true;
	w.n_crosses = 2;
	snprintf(w.crosses[0].a, sizeof w.crosses[0].a, "role");
	snprintf(w.crosses[0].b, sizeof w.crosses[0].b, "industry");
	snprintf(w.crosses[1].a, sizeof w.crosses[1].a, "industry");
	snprintf(w.crosses[1].b, sizeof w.crosses[1].b, "country");
	w.n_metrics = 1;
	assert_model_eq(&m[1], &w);

	/* The models accept what the config accepted. */
	char err[256];
	for (size_t i = 0; i < n; i++) {
		const char *dense[LS_MODEL_MAX_METRICS];
		for (size_t j = 0; j < m[i].n_metrics; j++)
			dense[j] = m[i].metrics[j];
		ls_ftrl *model = ls_ftrl_new(&m[i].ftrl, dense, m[i].n_metrics, err, sizeof err);
		ck_assert_msg(model != NULL, "%s: %s", m[i].name, err);
		ls_ftrl_free(model);
		ls_eval *ev = ls_eval_new((size_t)m[i].eval_window);
		ck_assert_ptr_nonnull(ev);
		ls_eval_free(ev);
	}
	ls_config_free(&c);
}
END_TEST

START_TEST(test_models_errors)
{
	char err[8192];
	load_bad("models_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_bad.yaml:5:27: models[0].positive[1]: unknown outcome type \"SIGNED\" (expected one of CONVERTED, OPPORTUNITY_CREATED, WON, LOST, DISQUALIFIED)");
	ASSERT_HAS(err, "models_bad.yaml:8:15: models[1].negative: WON is both a positive and a negative outcome");
	ASSERT_HAS(err, "models_bad.yaml:15:14: models[2].tiers[2].min: boundary 1 (0.4) not above boundary 0 (0.6)");
	ASSERT_HAS(err, "models_bad.yaml:18:17: models[3].hysteresis: hysteresis 0.6 not below the first boundary 0.5");
	ASSERT_HAS(err, "models_bad.yaml:22:16: models[4].ftrl.buckets: must be a power of two in [16, 16777216]");
	ASSERT_HAS(err, "models_bad.yaml:23:11: models[5].name: must be a name of a-z, 0-9 and _, got \"Bad-Name\"");
	ASSERT_HAS(err, "models_bad.yaml:24:11: models[6].name: duplicate model name \"m2\" (also models[1])");
	ASSERT_HAS(err, "models_bad.yaml:26:16: models[7].ftrl.l2: must be a finite number >= 0");
	ck_assert_uint_eq(count_lines(err), 8);

	load_bad("models_bad_more.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_bad_more.yaml:5:15: models[0].negative: no negative outcomes and label_timeout 0");
	ASSERT_HAS(err, "models_bad_more.yaml:8:16: models[1].min_delta: must be between 0 and 1, got \"1.5\"");
	ASSERT_HAS(err, "models_bad_more.yaml:10:31: models[2].tiers[0].min: the lowest tier starts at 0");
	ASSERT_HAS(err, "models_bad_more.yaml:12:15: models[3].crosses[0]: crosses \"industry\" with itself");
	ASSERT_HAS(err, "models_bad_more.yaml:14:26: models[4].metrics[1]: \"employees\" is listed twice");
	ASSERT_HAS(err, "models_bad_more.yaml:16:18: models[5].eval_window: must be between 100 and 1048576, got 50");
	ASSERT_HAS(err, "models_bad_more.yaml:18:5: models[6].shape: unknown key (expected one of: name, positive, negative, label_timeout, min_delta, tiers, hysteresis, ftrl, crosses, metrics, decay_half_life, eval_window, maturity, shrink_young, shadow)");
	/* The default hysteresis does not fit these tiers: the tiers are
	 * what the user wrote, so that is where it is reported. */
	ASSERT_HAS(err, "models_bad_more.yaml:20:12: models[7].tiers: hysteresis 0.02 not below 1 - the last boundary 0.99");
	ck_assert_uint_eq(count_lines(err), 8);

	load_bad("models_empty.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_empty.yaml:3:9: models: must list at least one model");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_models_metric_transform)
{
	ls_config c;
	load_ok("models_transform.yaml", no_env, &c);
	ck_assert_uint_eq(c.models.n, 2);
	const ls_model_spec *m = &c.models.specs[0];
	ck_assert_uint_eq(m->n_metrics, 4);
	ck_assert_str_eq(m->metrics[0], "employees");
	ck_assert_str_eq(m->metrics[1], "annual_revenue");
	ck_assert_str_eq(m->metrics[2], "seats");
	ck_assert_str_eq(m->metrics[3], "funding");
	ls_ftrl_numeric w[4];
	memset(w, 0, sizeof w);
	w[1].buckets = LS_FTRL_B_QUANTILES;
	w[1].quantiles = 10;
	w[2].transform = LS_FTRL_T_LINEAR;
	w[3].buckets = LS_FTRL_B_BINS;
	w[3].no_linear = true;
	w[3].n_edges = 3;
	w[3].edges[0] = 0;
	w[3].edges[1] = 1e6;
	w[3].edges[2] = 1e7;
	for (size_t i = 0; i < 4; i++)
		assert_map_eq(m->metrics[i], &m->metric_maps[i], &w[i]);

	/* Plain names are the built-in model's metrics, maps and all. */
	ls_model_spec want;
	want_default_model(&want);
	snprintf(want.name, sizeof want.name, "plain");
	assert_model_eq(&c.models.specs[1], &want);

	/* A changed map is a changed model: restart-only. */
	ls_config d;
	diff_seen s;
	load_ok("models_transform.yaml", no_env, &d);
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 0);
	d.models.specs[0].metric_maps[1].quantiles = 12;
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&c, &d, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].metrics"), 0);
	d.models.specs[0].metric_maps[1].quantiles = 10;
	d.models.specs[0].metric_maps[2].transform = LS_FTRL_T_LOG1P;
	ck_assert_uint_eq(ls_config_diff(&c, &d, NULL, NULL), 1);
	ls_config_free(&d);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_models_metric_transform_errors)
{
	char err[8192];
	load_bad("models_bad_transform.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_bad_transform.yaml:5:53: models[0].metrics[1].transform: expected linear, log1p, or a mapping such as {quantiles: 10} or {bins: [1, 5, 20]}, got \"cube\"");
	ASSERT_HAS(err, "models_bad_transform.yaml:8:9: models[1].metrics[0].name: required key is missing");
	ASSERT_HAS(err, "models_bad_transform.yaml:10:34: models[2].metrics[1]: \"employees\" is listed twice");
	ASSERT_HAS(err, "models_bad_transform.yaml:12:15: models[3].metrics[0]: expected a name or a mapping of name and transform, got a sequence");
	ASSERT_HAS(err, "models_bad_transform.yaml:14:22: models[4].metrics[0].name: must not contain whitespace, control characters, '=' or '|', got \"a b\"");
	ASSERT_HAS(err, "models_bad_transform.yaml:16:53: models[5].metrics[0].transform.bins[1]: not above the edge before it (3); edges must ascend");
	ASSERT_HAS(err, "models_bad_transform.yaml:18:31: models[6].metrics[0].scale: unknown key (expected one of: name, transform)");
	ASSERT_HAS(err, "models_bad_transform.yaml:20:14: models[7].metrics: expected a sequence such as [employees, {name: annual_revenue, transform: {quantiles: 10}}], got a scalar");
	ck_assert_uint_eq(count_lines(err), 8);
}
END_TEST

START_TEST(test_campaigns_custom)
{
	ls_config c;
	load_ok("campaigns_custom.yaml", no_env, &c);
	ck_assert_uint_eq(c.campaigns.n, 2);
	const ls_campaign_spec *k = &c.campaigns.specs[0];
	ck_assert_str_eq(k->id, "subject-lines");
	ck_assert_uint_eq(k->n_arms, 3);
	ck_assert_str_eq(k->arms[0], "short");
	ck_assert_str_eq(k->arms[2], "emoji_v2");
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_OPENED], 0.2);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_CLICKED], 0.6);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_REPLIED], 1.0);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_SENT], 0.0);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_BOUNCED], 0.0);
	ck_assert_int_eq(k->reward_window_ms, 48 * 3600000LL);
	ck_assert_int_eq(k->activation_timeout_ms, 6 * 3600000LL);
	ck_assert_double_eq(k->default_reward, 0.05);
	ck_assert_double_eq(k->prior_a, 2.0);
	ck_assert_double_eq(k->prior_b, 30.0);
	ck_assert_double_eq(k->min_share, 0.05);
	ck_assert_uint_eq(k->n_context, 2);
	ck_assert_str_eq(k->context[0], "tier");
	ck_assert_str_eq(k->context[1], "industry");
	ck_assert_str_eq(k->tier_model, "conversion");
	ck_assert_int_eq(k->min_bucket_trials, 250);
	ck_assert_int_eq(k->max_buckets, 64);
	ck_assert_int_eq(k->propensity_draws, 20000);
	ck_assert_int_eq(k->prior_trials, 40);
	ck_assert_int_eq(k->refresh_trials, 3);
	ck_assert_int_eq(k->refresh_ms, 20);

	/* Only id and arms given: the documented defaults. */
	k = &c.campaigns.specs[1];
	ck_assert_str_eq(k->id, "send_time");
	ck_assert_uint_eq(k->n_arms, 1);
	for (int t = 0; t < LS_EMAIL__COUNT; t++)
		ck_assert_double_eq(k->reward_weight[t], t == LS_EMAIL_CLICKED ? 1.0 : 0.0);
	ck_assert_int_eq(k->reward_window_ms, 72 * 3600000LL);
	ck_assert_int_eq(k->activation_timeout_ms, 24 * 3600000LL);
	ck_assert_double_eq(k->default_reward, 0.0);
	ck_assert_double_eq(k->prior_a, 1.0);
	ck_assert_double_eq(k->prior_b, 1.0);
	/* issue 15: no exploration floor, no hard bucket switch by default */
	ck_assert_double_eq(k->min_share, 0.0);
	ck_assert_uint_eq(k->n_context, 0);
	ck_assert_str_eq(k->tier_model, "conversion");
	ck_assert_int_eq(k->min_bucket_trials, 0);
	ck_assert_int_eq(k->prior_trials, LS_BANDIT_DEFAULT_PRIOR_TRIALS);
	ck_assert_int_eq(k->refresh_trials, 10);
	ck_assert_int_eq(k->refresh_ms, 5);
	ck_assert_int_eq(k->max_buckets, 1000);
	ck_assert_int_eq(k->propensity_draws, 10000);

	/* Campaigns are live: SIGHUP copies the whole list. */
	ls_config a;
	load_ok("env_base.yaml", no_env, &a);
	diff_seen s;
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "campaigns"), 1);
	ck_assert_int_eq(ls_config_apply_live(&a, &c), 0);
	ck_assert_uint_eq(a.campaigns.n, 2);
	ck_assert_str_eq(a.campaigns.specs[0].arms[1], "question");
	ck_assert_int_eq(a.campaigns.specs[0].propensity_draws, 20000);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "campaigns"), -1);
	ls_config_free(&a);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_campaigns_errors)
{
	char err[8192];
	load_bad("campaigns_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "campaigns_bad.yaml:5:11: campaigns[0].arms: must list at least one arm");
	ASSERT_HAS(err, "campaigns_bad.yaml:6:9: campaigns[1].id: must be made of A-Z, a-z, 0-9, _ and -, got \"bad id!\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:9:15: campaigns[2].arms[1]: \"a\" is listed twice");
	ASSERT_HAS(err, "campaigns_bad.yaml:12:24: campaigns[3].rewards.CLICKED: expected a weight above 0 and at most 1");
	ASSERT_HAS(err, "campaigns_bad.yaml:12:41: campaigns[3].rewards.SENT: SENT activates a decision and cannot reward it");
	ASSERT_HAS(err, "campaigns_bad.yaml:15:16: campaigns[4].min_share: 0.5 per arm over 3 arms is more than 1");
	ASSERT_HAS(err, "campaigns_bad.yaml:18:12: campaigns[5].prior.alpha: must be above 0");
	ASSERT_HAS(err, "campaigns_bad.yaml:21:14: campaigns[6].context: at most 8 entries, got 9");
	ASSERT_HAS(err, "campaigns_bad.yaml:25:17: campaigns[7].tier_model: context uses tier, but there is no model named \"nosuch\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:26:9: campaigns[8].id: duplicate campaign id \"share\" (also campaigns[4])");
	ASSERT_HAS(err, "campaigns_bad.yaml:30:20: campaigns[9].reward_window: must be between 1s and 90d, got 0ms");
	ASSERT_HAS(err, "campaigns_bad.yaml:31:21: campaigns[9].default_reward: must be between 0 and 1, got \"2\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:32:23: campaigns[9].propensity_draws: must be between 100 and 1000000, got 10");
	ASSERT_HAS(err, "campaigns_bad.yaml:33:5: campaigns[9].colour: unknown key (expected one of: id, arms, rewards, reward_window, activation_timeout, default_reward, prior, min_share, context, tier_model, min_bucket_trials, prior_trials, refresh_trials, refresh_interval, max_buckets, propensity_draws)");
	ck_assert_uint_eq(count_lines(err), 14);
}
END_TEST

/*
 * Messages the hooks of every item file build with the engine's shared
 * helpers (a sequence expected, a list of the allowed names): the same
 * text for features, models and campaigns.
 */
START_TEST(test_item_messages)
{
	static const char yaml[] =
		"kafka:\n"
		"  brokers: localhost:9092\n"
		"features:\n"
		"  - name: f\n"
		"    source: email\n"
		"    types:\n"
		"    windows: 7d\n"
		"models:\n"
		"  - name: m\n"
		"    tiers: hot\n"
		"    crosses: {a: b}\n"
		"campaigns:\n"
		"  - id: c\n"
		"    arms: [a]\n"
		"    rewards: {VIEWED: 1}\n";
	ls_config c;
	char err[4096], path[64];

	ck_assert_int_eq(load_text(yaml, no_env, &c, err, sizeof err, path, sizeof path), -1);
	ASSERT_HAS(err, ":6:11: features[0].types: expected a sequence of event types such as [OPENED, CLICKED], got null");
	ASSERT_HAS(err, ":7:14: features[0].windows: expected a sequence of windows such as [24h, 7d], got a scalar");
	ASSERT_HAS(err, ":10:12: models[0].tiers: expected a sequence of tiers such as [{name: cold}, {name: hot, min: 0.7}], got a scalar");
	ASSERT_HAS(err, ":11:14: models[0].crosses: expected a sequence of pairs such as [[industry, size_band]], got a mapping");
	ASSERT_HAS(err, ":15:15: campaigns[0].rewards.VIEWED: unknown email event type \"VIEWED\" (expected one of SENT, DELIVERED, OPENED, CLICKED, REPLIED, BOUNCED, UNSUBSCRIBED, SPAM_REPORTED)");
	ck_assert_uint_eq(count_lines(err), 5);
}
END_TEST

/* Any number of context keys up to LS_CAMPAIGN_MAX_CONTEXT (issue 15:
 * [a, b, c] once failed with "at most 2 entries"). */
START_TEST(test_campaign_context_keys)
{
	static const char yaml[] =
		"kafka:\n"
		"  brokers: localhost:9092\n"
		"campaigns:\n"
		"  - id: c\n"
		"    arms: [a, b]\n"
		"    context: [industry, region, size_band]\n"
		"  - id: d\n"
		"    arms: [a]\n"
		"    context: [k1, k2, k3, k4, k5, k6, k7, k8]\n";
	ls_config c;
	char err[4096] = "", path[64];

	ck_assert_msg(load_text(yaml, no_env, &c, err, sizeof err, path, sizeof path) == 0, "%s", err);
	ck_assert_uint_eq(c.campaigns.n, 2);
	ck_assert_uint_eq(c.campaigns.specs[0].n_context, 3);
	ck_assert_str_eq(c.campaigns.specs[0].context[2], "size_band");
	ck_assert_uint_eq(c.campaigns.specs[1].n_context, LS_CAMPAIGN_MAX_CONTEXT);
	ck_assert_str_eq(c.campaigns.specs[1].context[7], "k8");
	ls_config_free(&c);
}
END_TEST

START_TEST(test_scoring_env)
{
	/* The environment beats the file... */
	char *env[] = { "LEADSCORE_SCORING_CHECKPOINT_INTERVAL=2m", NULL };
	ls_config c;
	load_ok("models_custom.yaml", env, &c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 2 * 60000);
	ls_config_free(&c);

	/* ...and is checked like the file. */
	char *bad[] = { "LEADSCORE_SCORING_CHECKPOINT_INTERVAL=500ms",
			"LEADSCORE_MODELS=ignored", NULL };
	char err[1024];
	load_bad("models_custom.yaml", bad, err, sizeof err);
	ck_assert_str_eq(err, "environment LEADSCORE_SCORING_CHECKPOINT_INTERVAL: must be between 1s and 1h, got 500ms");
}
END_TEST

START_TEST(test_models_diff)
{
	ls_config a, b;
	diff_seen s;

	/* Unlike features, the built-in model and a list are compared as
	 * they run: writing the default out is no change at all. */
	load_ok("env_base.yaml", no_env, &a);
	load_ok("models_name_only.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &b, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "models"), -1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), -1);
	ls_config_free(&b);

	/* Another list of models: one restart-only key. */
	load_ok("models_custom.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &b, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "models"), 0);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), -1);
	ck_assert_int_eq(diff_find(&s, "scoring.checkpoint_interval"), 1);

	/* SIGHUP: the interval moves over, the models wait for a restart. */
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ck_assert_int_eq(a.scoring.checkpoint_interval_ms, 30000);
	ck_assert_uint_eq(a.models.n, 0);
	ls_config_free(&b);

	/* The same model with new thresholds: each key by model, the
	 * thresholds live, the learning rate restart-only. */
	load_ok("models_live.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	/* (log.level and pipeline.batch_size moved with models_custom) */
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 9);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].tiers"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].hysteresis"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].decay_half_life"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].shadow"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].ftrl.alpha"), 0);
	ck_assert_int_eq(diff_find(&s, "scoring.checkpoint_interval"), 1);
	ck_assert_int_eq(diff_find(&s, "models"), -1);
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	size_t n = 0;
	const ls_model_spec *m0 = ls_config_models(&a, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(m0, a.models.specs); /* the built-in one, now a list */
	ck_assert_double_eq(m0->min_delta, 0.2);
	ck_assert_uint_eq(m0->tiers.n, 2);
	ck_assert_str_eq(ls_tiers_name(&m0->tiers, 1), "high");
	ck_assert_double_eq(m0->tiers.bounds[0], 0.4);
	ck_assert_double_eq(m0->tiers.hysteresis, 0.05);
	ck_assert_int_eq(m0->decay_half_life_ms, 7 * 86400000LL);
	ck_assert(m0->shadow);
	ck_assert_double_eq(m0->ftrl.alpha, 0.1); /* waits for a restart */
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].ftrl.alpha"), 0);

	/* And back to the built-in model's thresholds. */
	ls_config_free(&b);
	load_ok("env_base.yaml", no_env, &b);
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ls_model_spec want;
	want_default_model(&want);
	assert_model_eq(&a.models.specs[0], &want);
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_config_free(&b);
	ls_config_free(&a);

	/* Every member is compared. */
	load_ok("models_custom.yaml", no_env, &a);
	load_ok("models_custom.yaml", no_env, &b);
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_model_spec *m = &a.models.specs[1];
	m->tiers.bounds[0] = 0.31;
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[opportunity_v2].tiers"), 1);
	m->tiers.bounds[0] = b.models.specs[1].tiers.bounds[0];
	m->negative_mask = OUT(LS_OUTCOME_LOST);
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[opportunity_v2].negative"), 0);
	m->negative_mask = 0;
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "region");
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "country");
	snprintf(m->metrics[0], sizeof m->metrics[0], "seats");
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	snprintf(m->metrics[0], sizeof m->metrics[0], "employees");
	m->ftrl.n_buckets = 1u << 20;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	m->ftrl.n_buckets = b.models.specs[1].ftrl.n_buckets;
	m->shadow = false;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	m->shadow = true;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_config_free(&a);
	ls_config_free(&b);
}
END_TEST

static Suite *config_models_suite(void)
{
	Suite *s = suite_create("config-models");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_models_defaults);
	tcase_add_test(tc, test_models_default_yaml);
	tcase_add_test(tc, test_models_custom);
	tcase_add_test(tc, test_models_errors);
	tcase_add_test(tc, test_models_metric_transform);
	tcase_add_test(tc, test_models_metric_transform_errors);
	tcase_add_test(tc, test_campaigns_custom);
	tcase_add_test(tc, test_campaign_context_keys);
	tcase_add_test(tc, test_campaigns_errors);
	tcase_add_test(tc, test_item_messages);
	tcase_add_test(tc, test_scoring_env);
	tcase_add_test(tc, test_models_diff);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(config_models_suite(), CK_NORMAL);
}
