/*
 * ls_config_items.h - what the leadscore key table (ls_config.c) and its
 * item files (ls_config_features.c, ls_config_models.c,
 * ls_config_campaigns.c) share. Internal to daemon/.
 *
 * Each item file owns one sequence of the schema: its sub-table of rows
 * (a ls_conf_seq the root table points at) and the hooks that check an item
 * and the whole list. The models file also owns the built-in model, so
 * it answers the reload questions about models (which keys changed,
 * which move live).
 *
 * Memory and errors as in ls_conf_engine.h: hooks report through
 * ls_conf_error() and own nothing beyond the items. Thread-safety: the
 * tables are constant; the functions touch no shared state.
 */
#ifndef LS_CONFIG_ITEMS_H
#define LS_CONFIG_ITEMS_H

#include "ls_conf_engine.h"
#include "ls_config.h"

extern const ls_conf_seq ls_config_features_seq;
extern const ls_conf_seq ls_config_models_seq;
extern const ls_conf_seq ls_config_campaigns_seq;

/* Model and tier names: a-z, 0-9 and _ (a ls_conf_check_fn). */
const char *ls_config_check_model_name(const char *s, char *buf, size_t buflen);
/* Profile attribute and metric keys as the models hash them; NULL when fine. */
const char *ls_config_check_input_key(const char *s);

/*
 * The `transform` value of a feature or a profile metric (docs/configuration.md
 * "Numeric feature maps"): `linear`, `log1p`, or a mapping of
 * `quantiles: N` or `bins: [edges]` with an optional `linear: log1p |
 * linear | none`. A ls_conf_custom parse: fills the ls_ftrl_numeric at
 * f->offset of base only when the value is clean and passes
 * ls_ftrl_numeric_check(); every problem is reported at its node.
 */
void ls_config_parse_transform(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			       yaml_node_t *node, const char *disp);
/* The maps do the same thing (edges past n_edges are not compared). */
bool ls_config_transform_equal(const ls_ftrl_numeric *a, const ls_ftrl_numeric *b);

/* Once the whole file is walked: every campaign whose context uses tier
 * names an existing tier_model. ld->base is the ls_config. */
void ls_config_check_campaign_models(ls_conf_loader *ld, yaml_node_t *root);

/* The diff and live copy of the `models` row f (see ls_config_models.c). */
size_t ls_config_diff_models(const ls_conf_field *f, const ls_config *old, const ls_config *newc,
			     ls_config_diff_fn fn, void *ud);
int ls_config_apply_models_live(const ls_conf_field *f, ls_config *cfg, const ls_config *newc);

#endif
