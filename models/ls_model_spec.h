/*
 * ls_model_spec.h - what one scoring model is: its name, label sets,
 * label timeout, publishing threshold, tiers, FTRL parameters, crosses,
 * profile metrics, decay and evaluation window.
 *
 * The type and the built-in model: the config fills and checks specs
 * (daemon/ls_config.c) starting from ls_model_spec_default(),
 * the scorer runs them (pipeline/ls_scorer.c), the models take their
 * parts (ls_tiers, ls_ftrl_params). It lives beside the models so that
 * the layers below the daemon can name it without the config.
 *
 * Memory: a spec owns no memory (values and fixed-size arrays only) and
 * copies with '='. Errors: none here; a spec is checked where it is
 * built (ls_model_spec_new_ftrl reports why a model cannot be made).
 * Thread-safety: plain data.
 */
#ifndef LS_MODEL_SPEC_H
#define LS_MODEL_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_eval.h" /* ls_tiers */
#include "ls_ftrl.h" /* ls_ftrl_params */
#include "ls_lead.h" /* LS_LEAD_KEY_MAX */
#include "ls_window.h" /* ls_feature_set */

/*
 * One scoring model of the `models:` sequence (see docs/configuration.md). Every
 * member is a value or a fixed-size array, so a spec owns no memory and
 * can be copied with '='. A spec in a loaded config has passed every
 * check: tiers went through ls_tiers_init() (so it is ready for
 * ls_tiers_assign()), ftrl through ls_ftrl_params_check().
 */
#define LS_MODEL_NAME_MAX 32    /* model name, including the NUL */
#define LS_MODEL_MAX 8          /* models in one config */
#define LS_MODEL_MAX_CROSSES 16
#define LS_MODEL_MAX_METRICS 32
#define LS_MODEL_KEY_MAX (LS_LEAD_KEY_MAX + 1) /* attribute / metric name, with the NUL */
#define LS_DEFAULT_MATURITY 1000 /* labels; see ls_score_shrink */

typedef struct ls_model_cross {
	char a[LS_MODEL_KEY_MAX];
	char b[LS_MODEL_KEY_MAX];
} ls_model_cross;

typedef struct ls_model_spec {
	char name[LS_MODEL_NAME_MAX]; /* [a-z0-9_]+, unique among the models */
	uint32_t positive_mask;       /* bit 1u << ls_outcome_type: a positive label */
	uint32_t negative_mask;       /* disjoint from positive_mask */
	int64_t label_timeout_ms;     /* no positive this long after the lead's
					 first event: a negative; 0: never */
	double min_delta;             /* publish when the score moves this much (0..1) */
	ls_tiers tiers;               /* names, boundaries and hysteresis */
	ls_ftrl_params ftrl;
	size_t n_crosses;
	ls_model_cross crosses[LS_MODEL_MAX_CROSSES];
	size_t n_metrics;             /* profile metrics fed as dense inputs */
	char metrics[LS_MODEL_MAX_METRICS][LS_MODEL_KEY_MAX];
	ls_ftrl_numeric metric_maps[LS_MODEL_MAX_METRICS]; /* per metric */
	int64_t decay_half_life_ms;   /* read-time decay toward the prior; 0: none */
	int64_t eval_window;          /* labels in the progressive-validation window */
	int64_t maturity;             /* labels before the model is mature
					 (ls_score_maturity); 0: always */
	bool shrink_young;            /* publish a young model's scores shrunk
					 (ls_score_shrink); off by default */
	bool shadow;                  /* learns and logs, publishes nothing */
} ls_model_spec;

/*
 * The built-in model "conversion" (see docs/configuration.md): CONVERTED and WON
 * positive, LOST and DISQUALIFIED negative, 90-day label timeout, tiers
 * cold/warm/hot at 0.3/0.7. It runs when the configuration has no
 * `models:` key and is the starting point of every configured model.
 * Static data, ready to use; thread-safe.
 */
const ls_model_spec *ls_model_spec_default(void);

/*
 * A fresh model (ls_ftrl_new_mapped) for spec over feature set set: the
 * dense features are set's values in order, each with the map of the
 * feature it belongs to (ls_feature_spec.map), then spec's metrics with
 * their metric_maps. Every scorer of a model builds it here, so the
 * daemon, leadscorectl and the tests agree on its layout. NULL with a
 * reason in err (invalid, out of memory); the caller frees the model.
 */
ls_ftrl *ls_model_spec_new_ftrl(const ls_model_spec *spec, const ls_feature_set *set,
				char *err, size_t errlen);

#endif
