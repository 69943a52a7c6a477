/*
 * ls_model_spec.c - the built-in model. It lives beside the type, not in
 * the config, because it is a fact about scoring (the labels and tiers a
 * sales team starts from) that tests and tools below the daemon need too.
 */
#include "ls_model_spec.h"

#include <stdlib.h>

#include "ls_err.h"

#define OUTCOME(o) (UINT32_C(1) << (o))

static const ls_model_spec default_model = {
	.name = "conversion",
	.positive_mask = OUTCOME(LS_OUTCOME_CONVERTED) | OUTCOME(LS_OUTCOME_WON),
	.negative_mask = OUTCOME(LS_OUTCOME_LOST) | OUTCOME(LS_OUTCOME_DISQUALIFIED),
	.label_timeout_ms = 90 * LS_WINDOW_MS_DAY,
	.min_delta = 0.05,
	.tiers = {
		.n = 3,
		.names = { "cold", "warm", "hot" },
		.bounds = { 0.3, 0.7 },
		.hysteresis = 0.02,
	},
	.ftrl = {
		.alpha = LS_FTRL_DEFAULT_ALPHA,
		.beta = LS_FTRL_DEFAULT_BETA,
		.l1 = LS_FTRL_DEFAULT_L1,
		.l2 = LS_FTRL_DEFAULT_L2,
		.n_buckets = LS_FTRL_DEFAULT_BUCKETS,
		.clip = LS_FTRL_DEFAULT_CLIP,
	},
	/* segment interactions sales teams name first: an industry's
	 * buyers differ by company size and by seniority */
	.n_crosses = 2,
	.crosses = { { "industry", "size_band" }, { "industry", "role" } },
	.n_metrics = 2,
	.metrics = { "employees", "annual_revenue" },
	.decay_half_life_ms = 0,
	.eval_window = 10000,
	.maturity = LS_DEFAULT_MATURITY,
	.shadow = false,
};

const ls_model_spec *ls_model_spec_default(void)
{
	return &default_model;
}

ls_ftrl *ls_model_spec_new_ftrl(const ls_model_spec *spec, const ls_feature_set *set,
				char *err, size_t errlen)
{
	size_t nv = set->n_values, n = nv + spec->n_metrics;
	const char **names = malloc((n ? n : 1) * sizeof *names);
	ls_ftrl_numeric *maps = calloc(n ? n : 1, sizeof *maps);
	ls_ftrl *m = NULL;

	if (names == NULL || maps == NULL) {
		ls_set_err(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nv; i++)
		names[i] = ls_feature_set_value_name(set, i);
	/* a feature's map applies to every one of its values (windows) */
	for (size_t f = 0; f < set->n_features; f++) {
		const ls_feature_info *fi = &set->features[f];
		for (uint32_t v = 0; v < fi->n_values && fi->first_value + v < nv; v++)
			maps[fi->first_value + v] = fi->spec.map;
	}
	for (size_t i = 0; i < spec->n_metrics; i++) {
		names[nv + i] = spec->metrics[i];
		maps[nv + i] = spec->metric_maps[i];
	}
	m = ls_ftrl_new_mapped(&spec->ftrl, names, maps, n, err, errlen);
out:
	free(names);
	free(maps);
	return m;
}
