/*
 * ls_config_models.c - the `models:` sequence of the schema: its
 * sub-table, the built-in model, the hooks that check a model, and how a
 * reload compares and applies models.
 *
 * Why a file of its own: a model is the one item whose reload is partly
 * live (thresholds and tiers move, learned state stays), so its diff and
 * live copy belong beside its rows and its default.
 *
 * models: items are ls_model_spec itself too, but most of a model's
 * defaults are not zero, so each item starts as a copy of the built-in
 * conversion model (ls_conf_seq.init_item) and the file overrides what it
 * names. Tiers and FTRL parameters are checked by the models' own
 * ls_tiers_init() and ls_ftrl_params_check(), whose messages are placed
 * at the tier min, hysteresis or ftrl key they are about.
 */
#include "ls_config_items.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* models: items are ls_model_spec itself; hooks are defined below the
 * table. */
static void model_init(void *item);
static void parse_positive(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp);
static void parse_negative(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp);
static bool positive_equal(const void *a, const void *b);
static bool negative_equal(const void *a, const void *b);
static void parse_tiers(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			const char *disp);
static bool tiers_equal(const void *a, const void *b);
static void tiers_copy(void *dst, const void *src);
static void parse_crosses(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool crosses_equal(const void *a, const void *b);
static void parse_metrics(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool metrics_equal(const void *a, const void *b);
static void model_finish(ls_conf_loader *ld, void *items, size_t index,
			 yaml_node_t *item_node, const char *disp);

static const ls_conf_custom positive_custom = {
	.type_name = "sequence", .parse = parse_positive, .equal = positive_equal,
};
static const ls_conf_custom negative_custom = {
	.type_name = "sequence", .parse = parse_negative, .equal = negative_equal,
};
static const ls_conf_custom tiers_custom = {
	.type_name = "sequence", .parse = parse_tiers, .equal = tiers_equal,
	.copy = tiers_copy,
};
static const ls_conf_custom crosses_custom = {
	.type_name = "sequence", .parse = parse_crosses, .equal = crosses_equal,
};
static const ls_conf_custom metrics_custom = {
	.type_name = "sequence", .parse = parse_metrics, .equal = metrics_equal,
};

/* Longest label timeout, decay half-life: as long as state is ever kept. */
#define MAX_MODEL_MS (3650 * MS_DAY)

#define M_OFF(m) offsetof(ls_model_spec, m)
#define M_SIZE(m) sizeof(((ls_model_spec *)0)->m)

_Static_assert(sizeof(((ls_model_spec *)0)->ftrl.n_buckets) == sizeof(int32_t),
	       "ftrl buckets are stored as a 4-byte int");
_Static_assert(LS_OUTCOME__COUNT <= 32, "outcome masks are 32 bits");

/*
 * Unlike features, most model defaults are not zero, so model_init()
 * copies ls_model_spec_default() into each item before it is walked. The
 * .def texts here are the same values written as YAML; test_config_models
 * checks that a model with only a name equals the built-in one and that
 * docs/configuration.md and models_default.yaml say so.
 */
static const ls_conf_field model_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = M_OFF(name), .size = M_SIZE(name),
	  .flags = F_REQUIRED, .check = ls_config_check_model_name,
	  .desc = "1-31 of `a-z 0-9 _`, unique; names the model in metrics, Redis keys and "
		  "`ScoreChange` records." },
	{ .name = "positive", .type = FT_CUSTOM, .offset = M_OFF(positive_mask),
	  .custom = &positive_custom, .def = "[CONVERTED, WON]",
	  .desc = "`LeadOutcome` types that make a positive example; at least one." },
	{ .name = "negative", .type = FT_CUSTOM, .offset = M_OFF(negative_mask),
	  .custom = &negative_custom, .def = "[LOST, DISQUALIFIED]",
	  .desc = "`LeadOutcome` types that make a negative example; none may also be positive; "
		  "`[]` leaves only `label_timeout`." },
	{ .name = "label_timeout", .type = FT_DURATION, .offset = M_OFF(label_timeout_ms),
	  .def = "90d", .min = 0, .max = MAX_MODEL_MS,
	  .desc = "A lead with no positive outcome for this long becomes a negative example; 0 disables (0 to 3650d)." },
	{ .name = "min_delta", .type = FT_NUMBER, .offset = M_OFF(min_delta), .def = "0.05",
	  .flags = F_UNIT | F_RELOAD,
	  .desc = "A new score is published when it moves at least this much or the tier changes (0 to 1; 0 publishes every score)." },
	{ .name = "tiers", .type = FT_CUSTOM, .custom = &tiers_custom, .flags = F_RELOAD,
	  .def = "[{name: cold, min: 0}, {name: warm, min: 0.3}, {name: hot, min: 0.7}]",
	  .desc = "1-16 tiers, lowest first, each `{name, min}`; the first `min` is 0 or left "
		  "out, the others increase inside (0,1)." },
	{ .name = "hysteresis", .type = FT_NUMBER, .offset = M_OFF(tiers.hysteresis),
	  .def = "0.02", .flags = F_UNIT | F_RELOAD,
	  .desc = "A lead changes tier only once its score is this far past a boundary; below "
		  "half of every gap between mins, the first min above 0 and 1 minus the last." },
	{ .name = "ftrl.alpha", .type = FT_NUMBER, .offset = M_OFF(ftrl.alpha), .def = "0.1",
	  .desc = "FTRL learning rate scale (> 0)." },
	{ .name = "ftrl.beta", .type = FT_NUMBER, .offset = M_OFF(ftrl.beta), .def = "0.1",
	  .desc = "FTRL learning rate smoothing (>= 0)." },
	{ .name = "ftrl.l1", .type = FT_NUMBER, .offset = M_OFF(ftrl.l1), .def = "0.3",
	  .desc = "L1 regularisation (>= 0); keeps rarely seen hashed values at weight 0." },
	{ .name = "ftrl.l2", .type = FT_NUMBER, .offset = M_OFF(ftrl.l2), .def = "0.3",
	  .desc = "L2 regularisation (>= 0)." },
	{ .name = "ftrl.buckets", .type = FT_INT, .offset = M_OFF(ftrl.n_buckets),
	  .size = M_SIZE(ftrl.n_buckets), .def = "262144",
	  .min = LS_FTRL_MIN_BUCKETS, .max = LS_FTRL_MAX_BUCKETS,
	  .desc = "Hash buckets for categorical values and crosses; a power of two, 16 to 16777216 (16 bytes each)." },
	{ .name = "ftrl.clip", .type = FT_NUMBER, .offset = M_OFF(ftrl.clip), .def = "5",
	  .desc = "Inputs are clamped to ±clip after the log1p transform and standardisation (> 0)." },
	{ .name = "crosses", .type = FT_CUSTOM, .custom = &crosses_custom,
	  .def = "[[industry, size_band], [industry, role]]",
	  .desc = "Up to 16 pairs `[a, b]` of categorical keys hashed together as one input; `[]` "
		  "for none." },
	{ .name = "metrics", .type = FT_CUSTOM, .custom = &metrics_custom,
	  .def = "[employees, annual_revenue]",
	  .desc = "Up to 32 profile metrics used as dense numeric inputs, each a name or `{name: "
		  "employees, transform: ...}` (a [numeric feature map](#numeric-feature-maps), "
		  "default `log1p`); other metrics are hashed." },
	{ .name = "decay_half_life", .type = FT_DURATION, .offset = M_OFF(decay_half_life_ms),
	  .def = "0s", .min = 0, .max = MAX_MODEL_MS, .flags = F_RELOAD,
	  .desc = "At read time the score decays toward the prior with this half-life of inactivity; 0 disables (0 to 3650d)." },
	{ .name = "eval_window", .type = FT_INT, .offset = M_OFF(eval_window),
	  .size = M_SIZE(eval_window), .def = "10000", .min = 100, .max = (int64_t)LS_EVAL_MAX_CAPACITY,
	  .desc = "Most recent labels in progressive validation (AUC, log-loss, ECE) (100 to 1048576)." },
	{ .name = "maturity", .type = FT_INT, .offset = M_OFF(maturity),
	  .size = M_SIZE(maturity), .def = "1000", .min = 0, .max = 1000000000, .flags = F_RELOAD,
	  .desc = "Labels (12 % of them positive) a model learns before it is mature (0 to 1e9; 0: always mature)." },
	{ .name = "shrink_young", .type = FT_BOOL, .offset = M_OFF(shrink_young), .def = "false",
	  .flags = F_RELOAD,
	  .desc = "While the model is not mature, publish its scores with the intercept shrunk toward its base rate." },
	{ .name = "shadow", .type = FT_BOOL, .offset = M_OFF(shadow), .def = "false",
	  .flags = F_RELOAD,
	  .desc = "Learns, scores and logs, but publishes no `ScoreChange` records." },
};

const ls_conf_seq ls_config_models_seq = {
	.item_size = sizeof(ls_model_spec),
	.init_item = model_init,
	.fields = model_fields,
	.n_fields = COUNT(model_fields),
	.count_offset = offsetof(ls_config, models.n),
	.items_offset = offsetof(ls_config, models.specs),
	.finish_item = model_finish,
	.max_items = LS_MODEL_MAX,
	.empty_error = "must list at least one model (remove the key, or leave it empty, for the built-in conversion model)",
};

/* ------------------------------------------------------------------ */
/* models hooks                                                        */
/* ------------------------------------------------------------------ */

#define OUTCOME(o) (UINT32_C(1) << (o))

static void model_init(void *item)
{
	ls_model_spec *m = item;
	*m = *ls_model_spec_default();
	memset(m->name, 0, sizeof m->name);
}

/* Model and tier names end up in metric labels and Redis keys. */
const char *ls_config_check_model_name(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return "must be a name of a-z, 0-9 and _";
	return NULL;
}

/*
 * Profile attribute and metric keys as the models hash them: "key=value"
 * and "a=x×b=y", with '|' joining colliding names in explanations, so
 * those characters (and spaces) would make names ambiguous.
 */
const char *ls_config_check_input_key(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > LS_LEAD_KEY_MAX)
		return "must be 1 to 64 bytes";
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) || *s == '=' || *s == '|')
			return "must not contain whitespace, control characters, '=' or '|'";
	return NULL;
}


static const char *outcome_type_at(int i, const void *ctx)
{
	(void)ctx;
	return i < LS_OUTCOME__COUNT ? ls_outcome_type_name((ls_outcome_type)i) : NULL;
}

/* positive / negative: LeadOutcome symbols into the mask at f->offset. */
static void parse_outcomes(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp, bool allow_empty)
{
	if (!ls_conf_scalar_list(ld, node, disp, "[CONVERTED, WON]", LS_OUTCOME__COUNT * 2))
		return;
	if (ls_conf_seq_len(node) == 0 && !allow_empty) {
		ls_conf_error(ld, node->start_mark, disp, "must list at least one outcome");
		return;
	}
	uint32_t mask = 0;
	bool ok = true;
	for (size_t i = 0; i < ls_conf_seq_len(node); i++) {
		char idisp[KEY_MAX + 16], qbuf[72];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		const char *name = (const char *)item->data.scalar.value;
		int o = ls_outcome_type_from_name(name);
		if (o < 0) {
			char list[256];
			ls_conf_join_names(list, sizeof list, outcome_type_at, NULL);
			ls_conf_error(ld, item->start_mark, idisp, "unknown outcome type %s (expected one of %s)",
				 ls_conf_quote(name, qbuf, sizeof qbuf), list);
			ok = false;
			continue;
		}
		if (mask & OUTCOME(o)) {
			ls_conf_error(ld, item->start_mark, idisp, "%s is listed twice", ls_conf_quote(name, qbuf, sizeof qbuf));
			ok = false;
			continue;
		}
		mask |= OUTCOME(o);
	}
	if (ok)
		memcpy(ls_conf_member_at(base, f->offset), &mask, sizeof mask);
}

static void parse_positive(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp)
{
	parse_outcomes(ld, f, base, node, disp, false);
}

/* [] is allowed: label_timeout may be the only source of negatives. */
static void parse_negative(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp)
{
	parse_outcomes(ld, f, base, node, disp, true);
}

static bool positive_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	return x->positive_mask == y->positive_mask;
}

static bool negative_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	return x->negative_mask == y->negative_mask;
}

/* One tier as written: {name: warm, min: 0.3}. */
typedef struct tier_item {
	char name[LS_TIER_NAME_MAX];
	double min;
} tier_item;

static const ls_conf_field tier_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = offsetof(tier_item, name),
	  .size = sizeof(((tier_item *)0)->name), .flags = F_REQUIRED,
	  .check = ls_config_check_model_name, .desc = "Tier name." },
	{ .name = "min", .type = FT_NUMBER, .offset = offsetof(tier_item, min),
	  .desc = "Lowest score of the tier." },
};

/*
 * The raw names and boundaries go straight into spec->tiers; whether they
 * make valid tiers with the hysteresis (which may come later in the
 * mapping) is ls_tiers_init()'s to say, in model_finish().
 */
static void parse_tiers(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			const char *disp)
{
	ls_model_spec *m = base;

	(void)f;
	if (!ls_conf_expect_seq(ld, node, disp,
				"a sequence of tiers such as [{name: cold}, {name: hot, min: 0.7}]"))
		return;
	size_t n = ls_conf_seq_len(node);
	if (n == 0 || n > LS_TIERS_MAX) {
		ls_conf_error(ld, node->start_mark, disp, "expected 1 to %d tiers, got %zu",
			 LS_TIERS_MAX, n);
		return;
	}
	double h = m->tiers.hysteresis;
	memset(&m->tiers, 0, sizeof m->tiers);
	m->tiers.hysteresis = h;
	m->tiers.n = n;
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16], key[KEY_MAX + 32];
		tier_item t;
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		memset(&t, 0, sizeof t);
		if (item->type != YAML_MAPPING_NODE) {
			ls_conf_error(ld, item->start_mark, idisp,
				 "expected a mapping of name and min, got %s", ls_conf_node_kind(item));
			continue;
		}
		size_t before = ld->eb->n_errors;
		bool set[COUNT(tier_fields)] = { false };
		ls_conf_walk_mapping(ld, tier_fields, COUNT(tier_fields), &t, set, item, "", idisp);
		if (!set[0]) {
			ls_conf_key_printf(key, sizeof key, "%s.name", idisp);
			ls_conf_error(ld, item->start_mark, key, "required key is missing");
		}
		if (ld->eb->n_errors != before)
			continue;
		ls_conf_key_printf(key, sizeof key, "%s.min", idisp);
		yaml_node_t *mn = ls_conf_mapping_value(ld->doc, item, "min");
		if (i == 0 && set[1] && t.min != 0.0) {
			ls_conf_error(ld, mn->start_mark, key,
				 "the lowest tier starts at 0; leave min out or write 0");
			continue;
		}
		if (i > 0 && !set[1]) {
			ls_conf_error(ld, item->start_mark, key, "required key is missing");
			continue;
		}
		memcpy(m->tiers.names[i], t.name, sizeof t.name);
		if (i > 0)
			m->tiers.bounds[i - 1] = t.min;
	}
}

/* The whole ls_tiers, hysteresis included: the new tiers were checked
 * against the new hysteresis, which is live as well. */
static void tiers_copy(void *dst, const void *src)
{
	((ls_model_spec *)dst)->tiers = ((const ls_model_spec *)src)->tiers;
}

static bool tiers_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	if (x->tiers.n != y->tiers.n)
		return false;
	for (size_t i = 0; i < x->tiers.n; i++) {
		if (strcmp(x->tiers.names[i], y->tiers.names[i]) != 0)
			return false;
		if (i > 0 && x->tiers.bounds[i - 1] != y->tiers.bounds[i - 1])
			return false;
	}
	return true;
}

static void parse_crosses(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_model_spec *m = base;
	ls_model_cross out[LS_MODEL_MAX_CROSSES];
	bool ok = true;

	(void)f;
	if (!ls_conf_expect_seq(ld, node, disp,
				"a sequence of pairs such as [[industry, size_band]]"))
		return;
	size_t n = ls_conf_seq_len(node);
	if (n > LS_MODEL_MAX_CROSSES) {
		ls_conf_error(ld, node->start_mark, disp, "at most %d entries, got %zu",
			 LS_MODEL_MAX_CROSSES, n);
		return;
	}
	memset(out, 0, sizeof out);
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16], qbuf[72];
		yaml_node_t *pair = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (pair == NULL)
			continue;
		if (pair->type != YAML_SEQUENCE_NODE || ls_conf_seq_len(pair) != 2) {
			ls_conf_error(ld, pair->start_mark, idisp,
				 "expected a pair of categorical keys such as [industry, size_band]");
			ok = false;
			continue;
		}
		if (!ls_conf_scalar_list(ld, pair, idisp, "[industry, size_band]", 2)) {
			ok = false;
			continue;
		}
		bool pair_ok = true;
		for (size_t j = 0; j < 2; j++) {
			yaml_node_t *k = ls_conf_seq_item(ld, pair, j);
			char kdisp[KEY_MAX + 32];
			ls_conf_key_printf(kdisp, sizeof kdisp, "%s[%zu]", idisp, j);
			const char *name = (const char *)k->data.scalar.value;
			const char *why = ls_config_check_input_key(name);
			if (why != NULL) {
				ls_conf_error(ld, k->start_mark, kdisp, "%s, got %s", why, ls_conf_quote(name, qbuf, sizeof qbuf));
				pair_ok = false;
				continue;
			}
			memcpy(j == 0 ? out[i].a : out[i].b, name, strlen(name) + 1);
		}
		if (!pair_ok) {
			ok = false;
			continue;
		}
		if (strcmp(out[i].a, out[i].b) == 0) {
			ls_conf_error(ld, pair->start_mark, idisp, "crosses %s with itself",
				 ls_conf_quote(out[i].a, qbuf, sizeof qbuf));
			ok = false;
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			bool same = (strcmp(out[j].a, out[i].a) == 0 && strcmp(out[j].b, out[i].b) == 0) ||
				    (strcmp(out[j].a, out[i].b) == 0 && strcmp(out[j].b, out[i].a) == 0);
			if (same) {
				ls_conf_error(ld, pair->start_mark, idisp, "listed twice (also %s[%zu])",
					 disp, j);
				ok = false;
				break;
			}
		}
	}
	if (!ok)
		return;
	memcpy(m->crosses, out, sizeof out);
	m->n_crosses = n;
}

static bool crosses_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	if (x->n_crosses != y->n_crosses)
		return false;
	for (size_t i = 0; i < x->n_crosses; i++)
		if (strcmp(x->crosses[i].a, y->crosses[i].a) != 0 ||
		    strcmp(x->crosses[i].b, y->crosses[i].b) != 0)
			return false;
	return true;
}


/* A metric written as a mapping: {name: employees, transform: ...}. */
typedef struct metric_item {
	char name[LS_MODEL_KEY_MAX];
	ls_ftrl_numeric map;
} metric_item;

static const char *check_metric_key(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	return ls_config_check_input_key(s);
}

static const ls_conf_custom metric_map_custom = {
	.type_name = "string or mapping", .parse = ls_config_parse_transform,
};

static const ls_conf_field metric_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = offsetof(metric_item, name),
	  .size = sizeof(((metric_item *)0)->name), .flags = F_REQUIRED,
	  .check = check_metric_key, .desc = "Profile metric key." },
	{ .name = "transform", .type = FT_CUSTOM, .offset = offsetof(metric_item, map),
	  .custom = &metric_map_custom, .desc = "Its numeric map." },
};

/*
 * Each entry is a name (the metric with the default map) or a mapping
 * {name, transform}; names are checked as input keys and must be
 * distinct. Names and maps go in only when every entry is clean.
 */
static void parse_metrics(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_model_spec *m = base;
	metric_item *items;
	bool ok = true;

	(void)f;
	if (node->type != YAML_SEQUENCE_NODE) {
		ls_conf_error(ld, node->start_mark, disp, "expected a sequence such as %s, got %s",
			      "[employees, {name: annual_revenue, transform: {quantiles: 10}}]",
			      ls_conf_is_null(node) ? "null" : ls_conf_node_kind(node));
		return;
	}
	size_t n = ls_conf_seq_len(node);
	if (n > LS_MODEL_MAX_METRICS) {
		ls_conf_error(ld, node->start_mark, disp, "at most %d entries, got %zu",
			      LS_MODEL_MAX_METRICS, n);
		return;
	}
	items = calloc(n ? n : 1, sizeof *items);
	if (items == NULL) {
		ls_conf_error(ld, node->start_mark, disp, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16], qbuf[72];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		yaml_mark_t name_mark;
		if (item == NULL) {
			ok = false;
			continue;
		}
		name_mark = item->start_mark;
		if (item->type == YAML_MAPPING_NODE) {
			size_t before = ld->eb->n_errors;
			bool set[COUNT(metric_fields)] = { false };
			ls_conf_walk_mapping(ld, metric_fields, COUNT(metric_fields), &items[i], set,
					     item, "", idisp);
			if (!set[0]) {
				char key[KEY_MAX + 32];
				ls_conf_key_printf(key, sizeof key, "%s.name", idisp);
				ls_conf_error(ld, item->start_mark, key, "required key is missing");
			}
			if (ld->eb->n_errors != before) {
				ok = false;
				continue;
			}
			name_mark = ls_conf_value_mark(ld, item, "name");
		} else if (item->type == YAML_SCALAR_NODE && !ls_conf_is_null(item)) {
			const char *name = ls_conf_scalar_text(ld, item, idisp);
			if (name == NULL) {
				ok = false;
				continue;
			}
			const char *why = ls_config_check_input_key(name);
			if (why != NULL) {
				ls_conf_error(ld, item->start_mark, idisp, "%s, got %s", why,
					      ls_conf_quote(name, qbuf, sizeof qbuf));
				ok = false;
				continue;
			}
			memcpy(items[i].name, name, strlen(name) + 1);
		} else {
			ls_conf_error(ld, item->start_mark, idisp,
				      "expected a name or a mapping of name and transform, got %s",
				      ls_conf_is_null(item) ? "null" : ls_conf_node_kind(item));
			ok = false;
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(items[j].name, items[i].name) != 0)
				continue;
			ls_conf_error(ld, name_mark, idisp, "%s is listed twice",
				      ls_conf_quote(items[i].name, qbuf, sizeof qbuf));
			ok = false;
			break;
		}
	}
	if (ok) {
		memset(m->metrics, 0, sizeof m->metrics);
		memset(m->metric_maps, 0, sizeof m->metric_maps);
		for (size_t i = 0; i < n; i++) {
			memcpy(m->metrics[i], items[i].name, sizeof items[i].name);
			m->metric_maps[i] = items[i].map;
		}
		m->n_metrics = n;
	}
	free(items);
}

static bool metrics_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	if (x->n_metrics != y->n_metrics ||
	    !ls_conf_names_equal(&x->metrics[0][0], &y->metrics[0][0], x->n_metrics, LS_MODEL_KEY_MAX))
		return false;
	for (size_t i = 0; i < x->n_metrics; i++)
		if (!ls_config_transform_equal(&x->metric_maps[i], &y->metric_maps[i]))
			return false;
	return true;
}

/*
 * The tiers as ls_tiers_init() sees them. Its problems with names and
 * boundaries ("tiers: boundary 1 (...) ...") are checked first with no
 * hysteresis, so that what is left is the hysteresis's; each goes to the
 * node the user wrote it at.
 */
static bool model_check_tiers(ls_conf_loader *ld, ls_model_spec *m, yaml_node_t *item_node,
			      const char *disp)
{
	const char *names[LS_TIERS_MAX];
	char msg[256], key[KEY_MAX + 32];
	ls_tiers t;

	for (size_t i = 0; i < m->tiers.n; i++)
		names[i] = m->tiers.names[i];
	if (!ls_tiers_init(&t, names, m->tiers.bounds, m->tiers.n, 0.0, msg, sizeof msg)) {
		yaml_node_t *tn = ls_conf_mapping_value(ld->doc, item_node, "tiers");
		yaml_mark_t mark = tn != NULL ? tn->start_mark : item_node->start_mark;
		ls_conf_key_printf(key, sizeof key, "%s.tiers", disp);
		size_t k;
		if (tn != NULL && sscanf(msg, "tiers: boundary %zu", &k) == 1 && k + 1 < ls_conf_seq_len(tn)) {
			yaml_node_t *ti = ls_conf_seq_item(ld, tn, k + 1);
			yaml_node_t *mn = ti != NULL && ti->type == YAML_MAPPING_NODE
						  ? ls_conf_mapping_value(ld->doc, ti, "min") : NULL;
			if (mn != NULL) {
				mark = mn->start_mark;
				ls_conf_key_printf(key, sizeof key, "%s.tiers[%zu].min", disp, k + 1);
			}
		}
		const char *why = strncmp(msg, "tiers: ", 7) == 0 ? msg + 7 : msg;
		ls_conf_error(ld, mark, key, "%s", why);
		return false;
	}
	if (!ls_tiers_init(&t, names, m->tiers.bounds, m->tiers.n, m->tiers.hysteresis,
			   msg, sizeof msg)) {
		/* The default hysteresis can be too large for tiers written
		 * close together; then the tiers are what the user wrote. */
		bool written = ls_conf_mapping_value(ld->doc, item_node, "hysteresis") != NULL;
		ls_conf_key_printf(key, sizeof key, "%s.%s", disp, written ? "hysteresis" : "tiers");
		const char *why = strncmp(msg, "tiers: ", 7) == 0 ? msg + 7 : msg;
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, written ? "hysteresis" : "tiers"), key,
			 "%s", why);
		return false;
	}
	m->tiers = t;
	return true;
}

/* ls_ftrl_params_check() names the parameter first ("alpha must be ..."). */
static void model_check_ftrl(ls_conf_loader *ld, const ls_model_spec *m, yaml_node_t *item_node,
			     const char *disp)
{
	static const struct {
		const char *param, *key;
	} names[] = {
		{ "alpha", "alpha" }, { "beta", "beta" }, { "l1", "l1" }, { "l2", "l2" },
		{ "clip", "clip" }, { "n_buckets", "buckets" },
	};
	char msg[256], key[KEY_MAX + 32];

	if (ls_ftrl_params_check(&m->ftrl, msg, sizeof msg))
		return;
	yaml_node_t *fn = ls_conf_mapping_value(ld->doc, item_node, "ftrl");
	yaml_mark_t mark = fn != NULL ? fn->start_mark : item_node->start_mark;
	ls_conf_key_printf(key, sizeof key, "%s.ftrl", disp);
	for (size_t i = 0; i < COUNT(names); i++) {
		size_t len = strlen(names[i].param);
		if (strncmp(msg, names[i].param, len) != 0 || msg[len] != ' ')
			continue;
		yaml_node_t *v = fn != NULL && fn->type == YAML_MAPPING_NODE
					 ? ls_conf_mapping_value(ld->doc, fn, names[i].key) : NULL;
		if (v != NULL)
			mark = v->start_mark;
		ls_conf_key_printf(key, sizeof key, "%s.ftrl.%s", disp, names[i].key);
		/* The key names the parameter: "n_buckets must be a power
		 * of two" becomes "ftrl.buckets: must be a power of two". */
		ls_conf_error(ld, mark, key, "%s", msg + len + 1);
		return;
	}
	ls_conf_error(ld, mark, key, "%s", msg);
}

/* Checks that need the whole item, and the name against earlier items. */
static void model_finish(ls_conf_loader *ld, void *items, size_t index,
			 yaml_node_t *item_node, const char *disp)
{
	ls_model_spec *specs = items;
	ls_model_spec *m = &specs[index];
	char key[KEY_MAX + 32], qbuf[72];

	for (size_t j = 0; j < index; j++) {
		if (strcmp(specs[j].name, m->name) != 0)
			continue;
		ls_conf_key_printf(key, sizeof key, "%s.name", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "name"), key,
			 "duplicate model name %s (also models[%zu])", ls_conf_quote(m->name, qbuf, sizeof qbuf), j);
		return;
	}
	uint32_t both = m->positive_mask & m->negative_mask;
	if (both != 0) {
		/* Report at whichever list the user wrote, negative first. */
		bool neg = ls_conf_mapping_value(ld->doc, item_node, "negative") != NULL;
		int o = 0;
		while (!(both & OUTCOME(o)))
			o++;
		ls_conf_key_printf(key, sizeof key, "%s.%s", disp, neg ? "negative" : "positive");
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, neg ? "negative" : "positive"), key,
			 "%s is both a positive and a negative outcome",
			 ls_outcome_type_name((ls_outcome_type)o));
	} else if (m->negative_mask == 0 && m->label_timeout_ms == 0) {
		ls_conf_key_printf(key, sizeof key, "%s.negative", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "negative"), key,
			 "no negative outcomes and label_timeout 0: the model would never see a negative example");
	}
	(void)model_check_tiers(ld, m, item_node, disp);
	model_check_ftrl(ld, m, item_node, disp);
}

/*
 * models is compared as the daemon runs it (no `models:` key is the
 * built-in model), one key per model: a list naming the same models in
 * the same order keeps every model's learned state, so its F_RELOAD keys
 * (thresholds, tiers, decay, shadow) can move live; any other change to
 * the list, or to a model's features and learning, needs a restart.
 */
static bool models_same_names(const ls_config *a, const ls_config *b)
{
	size_t na, nb;
	const ls_model_spec *ma = ls_config_models(a, &na);
	const ls_model_spec *mb = ls_config_models(b, &nb);
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(ma[i].name, mb[i].name) != 0)
			return false;
	return true;
}

size_t ls_config_diff_models(const ls_conf_field *f, const ls_config *old, const ls_config *newc,
			  ls_config_diff_fn fn, void *ud)
{
	if (!models_same_names(old, newc)) {
		if (fn != NULL)
			fn(f->name, false, ud);
		return 1;
	}
	size_t n, changed = 0;
	const ls_model_spec *a = ls_config_models(old, &n);
	const ls_model_spec *b = ls_config_models(newc, NULL);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < f->seq->n_fields; k++) {
			const ls_conf_field *sub = &f->seq->fields[k];
			if (ls_conf_field_equal(sub, &a[i], &b[i]))
				continue;
			changed++;
			if (fn != NULL) {
				char key[LS_MODEL_NAME_MAX + 64];
				snprintf(key, sizeof key, "%s[%s].%s", f->name, a[i].name, sub->name);
				fn(key, (sub->flags & F_RELOAD) != 0, ud);
			}
		}
	}
	return changed;
}

/* A model's F_RELOAD keys, in place: the scorer keeps its learned state
 * (see ls_config_diff_models). The built-in model becomes a one-item list first,
 * so the running config says what runs. */
int ls_config_apply_models_live(const ls_conf_field *f, ls_config *cfg, const ls_config *newc)
{
	if (!models_same_names(cfg, newc))
		return 0;
	size_t n;
	const ls_model_spec *b = ls_config_models(newc, &n);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < f->seq->n_fields; k++) {
			const ls_conf_field *sub = &f->seq->fields[k];
			const ls_model_spec *a = ls_config_models(cfg, NULL);
			if (!(sub->flags & F_RELOAD) || ls_conf_field_equal(sub, &a[i], &b[i]))
				continue;
			if (cfg->models.n == 0) {
				cfg->models.specs = malloc(sizeof *cfg->models.specs);
				if (cfg->models.specs == NULL)
					return -1;
				cfg->models.specs[0] = *ls_model_spec_default();
				cfg->models.n = 1;
			}
			if (ls_conf_field_copy(sub, &cfg->models.specs[i], &b[i]) != 0)
				return -1;
		}
	}
	return 0;
}

const ls_model_spec *ls_config_models(const ls_config *cfg, size_t *n)
{
	if (cfg == NULL || cfg->models.n == 0) {
		if (n != NULL)
			*n = 1;
		return ls_model_spec_default();
	}
	if (n != NULL)
		*n = cfg->models.n;
	return cfg->models.specs;
}
