/*
 * ls_config_features.c - the `features:` sequence of the schema: its
 * sub-table and the hooks that check one feature and the whole list.
 *
 * Why a file of its own: a feature's keys depend on its kind and source,
 * and the checks for that are as long as the generic walker; here they
 * sit beside the rows they check.
 *
 * features: items are ls_feature_spec itself, so what the loader fills is
 * exactly what ls_feature_set_new() reads and nothing is converted twice.
 * Checks that need one key's position (an unknown symbol, a bad duration,
 * a key the feature's kind does not use) run while walking, so the error
 * points at that key; what needs the whole list (operands, and everything
 * else ls_feature_set_new() checks) runs once every item parsed cleanly,
 * and points at the item the models layer named.
 */
#include "ls_config_items.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Enums are stored through memcpy of an int; make that assumption loud. */
_Static_assert(sizeof(ls_feature_kind) == sizeof(int), "ls_feature_kind must be int-sized");
_Static_assert(sizeof(ls_feature_agg) == sizeof(int), "ls_feature_agg must be int-sized");
_Static_assert(sizeof(ls_feature_field) == sizeof(int), "ls_feature_field must be int-sized");

static const char *check_feature_name(const char *s, char *buf, size_t buflen);
static void parse_types(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			const char *disp);
static bool types_equal(const void *a, const void *b);
static void parse_windows(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool windows_equal(const void *a, const void *b);
static bool feature_map_equal(const void *a, const void *b);
static void feature_finish(ls_conf_loader *ld, void *items, size_t index,
			   yaml_node_t *item_node, const char *disp);
static void features_finish_all(ls_conf_loader *ld, void *items, size_t n,
				yaml_node_t *seq_node, const char *disp);

/* Symbols as an operator writes them; values as ls_window.h defines them. */
static const ls_conf_symbol kind_symbols[] = {
	{ "windowed", LS_FEATURE_WINDOWED },
	{ "velocity", LS_FEATURE_VELOCITY },
	{ "recency", LS_FEATURE_RECENCY },
	{ "difference", LS_FEATURE_DIFFERENCE },
	{ "ratio", LS_FEATURE_RATIO },
	{ "mean", LS_FEATURE_MEAN },
	{ NULL, 0 },
};

static const ls_conf_symbol source_symbols[] = {
	{ "email", LS_SOURCE_EMAIL },
	{ "web", LS_SOURCE_WEB },
	{ "call", LS_SOURCE_CALL },
	{ "outcome", LS_SOURCE_OUTCOME },
	{ "profile", LS_SOURCE_PROFILE },
	{ NULL, 0 },
};

static const ls_conf_symbol agg_symbols[] = {
	{ "count", LS_AGG_COUNT },
	{ "sum", LS_AGG_SUM },
	{ "last_seen", LS_AGG_LAST_SEEN },
	{ "distinct", LS_AGG_DISTINCT },
	{ NULL, 0 },
};

/* The Avro field names; each belongs to one source, so no prefix is
 * needed (ls_feature_set_new() rejects a field of another source). */
static const ls_conf_symbol field_symbols[] = {
	{ "duration_ms", LS_FIELD_WEB_DURATION_MS },
	{ "session_id", LS_FIELD_WEB_SESSION_ID },
	{ "duration_s", LS_FIELD_CALL_DURATION_S },
	{ "sentiment", LS_FIELD_CALL_SENTIMENT },
	{ "value", LS_FIELD_OUTCOME_VALUE },
	{ "campaign_id", LS_FIELD_EMAIL_CAMPAIGN_ID },
	{ NULL, 0 },
};

/* Longer windows than state is ever kept (redis.lead_ttl's maximum) can
 * only be typos. */
#define MAX_WINDOW_MS (3650 * MS_DAY)

static const ls_conf_custom types_custom = {
	.type_name = "sequence", .parse = parse_types, .equal = types_equal,
};

static const ls_conf_custom windows_custom = {
	.type_name = "sequence", .parse = parse_windows, .equal = windows_equal,
};

static const ls_conf_custom feature_map_custom = {
	.type_name = "string or mapping", .parse = ls_config_parse_transform, .equal = feature_map_equal,
};

#define F_OFF(m) offsetof(ls_feature_spec, m)
#define F_SIZE(m) sizeof(((ls_feature_spec *)0)->m)

/*
 * Defaults here are documentation: items start zeroed, and a zero member
 * means exactly these defaults to ls_feature_set_new() (kind windowed,
 * aggregation count, scale 1, prior 1, cap 365, unit 1d).
 */
static const ls_conf_field feature_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = F_OFF(name), .size = F_SIZE(name),
	  .flags = F_REQUIRED, .check = check_feature_name,
	  .desc = "1-47 of `a-z 0-9 _`, unique. Values are named `<name>_<window>` (velocity "
		  "`<name>_<short>_<long>`, recency `<name>`)." },
	{ .name = "kind", .type = FT_ENUM, .offset = F_OFF(kind), .def = "windowed",
	  .symbols = kind_symbols,
	  .desc = "`windowed` (aggregates events) or a derived kind: `velocity`, `recency`, "
		  "`difference`, `ratio` or `mean`." },
	{ .name = "source", .type = FT_ENUM, .offset = F_OFF(source), .symbols = source_symbols,
	  .desc = "Windowed (required): events of `email`, `web`, `call`, `outcome` or `profile`." },
	{ .name = "types", .type = FT_CUSTOM, .custom = &types_custom,
	  .desc = "Windowed: event types counted, as Avro symbols (`[OPENED, CLICKED]`; for "
		  "`call`, the call outcome); absent: every type." },
	{ .name = "page_category", .type = FT_CHARS, .offset = F_OFF(page_category),
	  .size = F_SIZE(page_category),
	  .desc = "Windowed, `web` only: count only pages of this category (exact match, at most "
		  "31 bytes)." },
	{ .name = "aggregation", .type = FT_ENUM, .offset = F_OFF(agg), .def = "count",
	  .symbols = agg_symbols,
	  .desc = "Windowed: `count`, `sum`, `last_seen` or `distinct`." },
	{ .name = "field", .type = FT_ENUM, .offset = F_OFF(field), .symbols = field_symbols,
	  .desc = "Windowed: field summed (`duration_ms`, `duration_s`, `sentiment`, `value`) or "
		  "counted distinct (`session_id`, `campaign_id`); with `count` or `last_seen`, "
		  "only events carrying it." },
	{ .name = "scale", .type = FT_NUMBER, .offset = F_OFF(scale), .def = "1",
	  .flags = F_NONZERO,
	  .desc = "Windowed `sum` only: multiplier of the reported value (`0.001` turns ms into "
		  "s); not 0." },
	{ .name = "windows", .type = FT_CUSTOM, .custom = &windows_custom,
	  .desc = "1-4 distinct lengths, e.g. `[24h, 7d]`, or `{length: 7d, slices: 28}` items "
		  "(windowed only); velocity: exactly `[short, long]`; not for recency." },
	{ .name = "a", .type = FT_CHARS, .offset = F_OFF(a), .size = F_SIZE(a),
	  .check = check_feature_name,
	  .desc = "Derived (required): the windowed feature read (numerator of `ratio` and `mean`)." },
	{ .name = "b", .type = FT_CHARS, .offset = F_OFF(b), .size = F_SIZE(b),
	  .check = check_feature_name,
	  .desc = "`difference`, `ratio`, `mean` (required): the second windowed feature "
		  "(subtracted, the denominator)." },
	{ .name = "prior", .type = FT_NUMBER, .offset = F_OFF(param), .def = "1",
	  .flags = F_POSITIVE,
	  .desc = "Velocity: smoothing pseudo-events spread over the long window (> 0)." },
	{ .name = "cap", .type = FT_NUMBER, .offset = F_OFF(param), .def = "365",
	  .flags = F_POSITIVE,
	  .desc = "Recency: largest value, and the value when never seen (> 0)." },
	{ .name = "unit", .type = FT_DURATION, .offset = F_OFF(unit_ms), .def = "1d",
	  .min = 1, .max = MAX_WINDOW_MS,
	  .desc = "Recency: unit of the value (`1d`: days since the newest event)." },
	{ .name = "floor_zero", .type = FT_BOOL, .offset = F_OFF(floor_zero), .def = "false",
	  .desc = "Difference: report `max(0, a - b)`." },
	{ .name = "transform", .type = FT_CUSTOM, .offset = F_OFF(map), .def = "log1p",
	  .custom = &feature_map_custom,
	  .desc = "How the models take every value of the feature (see [Numeric feature "
		  "maps](#numeric-feature-maps)): `linear`, `log1p`, or `{quantiles: N}` / "
		  "`{bins: [edges]}` with `linear: log1p` (default), `linear` or `none`." },
};

const ls_conf_seq ls_config_features_seq = {
	.item_size = sizeof(ls_feature_spec),
	.fields = feature_fields,
	.n_fields = COUNT(feature_fields),
	.count_offset = offsetof(ls_config, features.n),
	.items_offset = offsetof(ls_config, features.specs),
	.finish_item = feature_finish,
	.finish_all = features_finish_all,
	.max_items = LS_FEATURE_MAX_SPECS,
	.empty_error = "must list at least one feature (remove the key, or leave it empty, for the built-in set)",
};


/* ------------------------------------------------------------------ */
/* features hooks                                                      */
/* ------------------------------------------------------------------ */

/* ls_window.h's rule for names; the length is FT_CHARS's to check. */
static const char *check_feature_name(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return "must be a feature name of a-z, 0-9 and _";
	return NULL;
}

/* The key node (not its value) of key in map, for "this key is wrong here". */
static yaml_node_t *mapping_key(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return k;
	}
	return NULL;
}

/* Symbol i of the type enum of source s (the call outcome for calls);
 * NULL past the last, and always for profile events, which have none. */
static const char *type_symbol(ls_source s, int i)
{
	switch (s) {
	case LS_SOURCE_EMAIL: return ls_email_type_name((ls_email_type)i);
	case LS_SOURCE_WEB: return ls_web_type_name((ls_web_type)i);
	case LS_SOURCE_CALL: return ls_call_outcome_name((ls_call_outcome)i);
	case LS_SOURCE_OUTCOME: return ls_outcome_type_name((ls_outcome_type)i);
	default: return NULL;
	}
}

static const char *type_symbol_at(int i, const void *ctx)
{
	return type_symbol(*(const ls_source *)ctx, i);
}

static const char *type_noun(ls_source s)
{
	switch (s) {
	case LS_SOURCE_EMAIL: return "email event type";
	case LS_SOURCE_WEB: return "web event type";
	case LS_SOURCE_CALL: return "call outcome";
	case LS_SOURCE_OUTCOME: return "outcome type";
	default: return "type";
	}
}

/*
 * Which symbols `types` may name depends on `source`, which may come after
 * it in the mapping; so this only checks the shape and feature_finish()
 * resolves the names once the whole item is read.
 */
static void parse_types(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			const char *disp)
{
	(void)f;
	(void)base;
	if (!ls_conf_expect_seq(ld, node, disp,
				"a sequence of event types such as [OPENED, CLICKED]"))
		return;
	size_t n = ls_conf_seq_len(node);
	if (n == 0) {
		ls_conf_error(ld, node->start_mark, disp,
			 "must not be empty (leave types out to accept every type)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		if (item->type != YAML_SCALAR_NODE || ls_conf_is_null(item))
			ls_conf_error(ld, item->start_mark, idisp, "expected an event type, got %s",
				 ls_conf_is_null(item) ? "null" : ls_conf_node_kind(item));
		else
			(void)ls_conf_scalar_text(ld, item, idisp);
	}
}

static bool types_equal(const void *a, const void *b)
{
	const ls_feature_spec *x = a, *y = b;
	return x->type_mask == y->type_mask;
}

/* Turn the checked `types` sequence into f->type_mask for f->source. */
static bool resolve_types(ls_conf_loader *ld, ls_feature_spec *f, yaml_node_t *node,
			  const char *disp)
{
	char key[KEY_MAX];
	uint32_t mask = 0;
	bool ok = true;

	ls_conf_key_printf(key, sizeof key, "%s.types", disp);
	if (type_symbol(f->source, 0) == NULL) {
		ls_conf_error(ld, node->start_mark, key, "%s events have no type",
			 ls_source_name(f->source));
		return false;
	}
	for (size_t i = 0; i < ls_conf_seq_len(node); i++) {
		char ikey[KEY_MAX + 16], qbuf[72];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, key, ikey, sizeof ikey);
		if (item == NULL)
			continue;
		const char *name = (const char *)item->data.scalar.value;
		int t = -1;
		for (int j = 0; type_symbol(f->source, j) != NULL && t < 0; j++)
			if (strcmp(type_symbol(f->source, j), name) == 0)
				t = j;
		if (t < 0) {
			char list[256];
			ls_conf_join_names(list, sizeof list, type_symbol_at, &f->source);
			ls_conf_error(ld, item->start_mark, ikey, "unknown %s %s (expected one of %s)",
				 type_noun(f->source), ls_conf_quote(name, qbuf, sizeof qbuf), list);
			ok = false;
			continue;
		}
		uint32_t bit = UINT32_C(1) << t;
		if (mask & bit) {
			ls_conf_error(ld, item->start_mark, ikey, "%s is listed twice",
				 ls_conf_quote(name, qbuf, sizeof qbuf));
			ok = false;
			continue;
		}
		mask |= bit;
	}
	if (ok)
		f->type_mask = mask;
	return ok;
}

/* One window written as a mapping: {length: 7d, slices: 28}. */
static const ls_conf_field window_fields[] = {
	{ .name = "length", .type = FT_DURATION, .offset = offsetof(ls_window_spec, length_ms),
	  .flags = F_REQUIRED, .min = 1, .max = MAX_WINDOW_MS, .desc = "Window length." },
	{ .name = "slices", .type = FT_INT, .offset = offsetof(ls_window_spec, slices),
	  .size = sizeof(uint32_t), .min = 1, .max = LS_WINDOW_MAX_SLICES,
	  .desc = "Slices the window is cut into; must divide the length." },
};

_Static_assert(sizeof(((ls_window_spec *)0)->slices) == sizeof(int32_t),
	       "window slices are stored as a 4-byte int");

static void parse_windows(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_feature_spec *spec = base;

	(void)f;
	if (!ls_conf_expect_seq(ld, node, disp,
				"a sequence of windows such as [24h, 7d]"))
		return;
	size_t n = ls_conf_seq_len(node);
	if (n == 0 || n > LS_FEATURE_MAX_WINDOWS) {
		ls_conf_error(ld, node->start_mark, disp, "expected 1 to %d windows, got %zu",
			 LS_FEATURE_MAX_WINDOWS, n);
		return;
	}
	memset(spec->windows, 0, sizeof spec->windows);
	spec->n_windows = n;
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16], msg[512], lb[32];
		ls_window_spec w = { 0, 0 };
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		size_t before = ld->eb->n_errors;
		if (item->type == YAML_SCALAR_NODE) {
			const char *text = ls_conf_scalar_text(ld, item, idisp);
			if (text != NULL && ls_conf_field_set(&window_fields[0], &w, text,
						      ls_conf_is_null(item), msg, sizeof msg) != 0)
				ls_conf_error(ld, item->start_mark, idisp, "%s", msg);
		} else if (item->type == YAML_MAPPING_NODE) {
			bool set[COUNT(window_fields)] = { false };
			ls_conf_walk_mapping(ld, window_fields, COUNT(window_fields), &w, set, item, "", idisp);
			if (!set[0]) {
				char key[KEY_MAX + 32];
				ls_conf_key_printf(key, sizeof key, "%s.length", idisp);
				ls_conf_error(ld, item->start_mark, key, "required key is missing");
			}
		} else {
			ls_conf_error(ld, item->start_mark, idisp,
				 "expected a duration or a mapping of length and slices, got %s",
				 ls_conf_node_kind(item));
		}
		if (ld->eb->n_errors != before)
			continue;
		if (w.slices != 0 && w.length_ms % (int64_t)w.slices != 0) {
			yaml_node_t *sn = ls_conf_mapping_value(ld->doc, item, "slices");
			char key[KEY_MAX + 32];
			ls_conf_key_printf(key, sizeof key, "%s.slices", idisp);
			ls_conf_error(ld, sn != NULL ? sn->start_mark : item->start_mark, key,
				 "%" PRIu32 " slices do not divide the window length %s", w.slices,
				 ls_conf_format_duration(w.length_ms, lb, sizeof lb));
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (spec->windows[j].length_ms == w.length_ms) {
				ls_conf_error(ld, item->start_mark, idisp,
					 "window %s is listed twice (also %s[%zu])",
					 ls_conf_format_duration(w.length_ms, lb, sizeof lb), disp, j);
				break;
			}
		}
		spec->windows[i] = w;
	}
}

static bool windows_equal(const void *a, const void *b)
{
	const ls_feature_spec *x = a, *y = b;
	if (x->n_windows != y->n_windows)
		return false;
	for (size_t i = 0; i < x->n_windows; i++)
		if (x->windows[i].length_ms != y->windows[i].length_ms ||
		    x->windows[i].slices != y->windows[i].slices)
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* transform: the numeric map of a feature or a profile metric         */
/* ------------------------------------------------------------------ */

/* What the mapping form says before it becomes a ls_ftrl_numeric. */
enum { LINEAR_LOG1P, LINEAR_LINEAR, LINEAR_NONE };

typedef struct transform_item {
	int32_t quantiles;
	int linear;
	size_t n_edges;
	double edges[LS_FTRL_MAX_EDGES];
} transform_item;

static const ls_conf_symbol linear_symbols[] = {
	{ "log1p", LINEAR_LOG1P },
	{ "linear", LINEAR_LINEAR },
	{ "none", LINEAR_NONE },
	{ NULL, 0 },
};

static void parse_bins(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
		       const char *disp);

static const ls_conf_custom bins_custom = { .type_name = "sequence", .parse = parse_bins };

static const ls_conf_field transform_fields[] = {
	{ .name = "quantiles", .type = FT_INT, .offset = offsetof(transform_item, quantiles),
	  .size = sizeof(int32_t), .min = 2, .max = LS_FTRL_MAX_EDGES + 1,
	  .desc = "Equal-mass buckets learned from the stream." },
	{ .name = "bins", .type = FT_CUSTOM, .custom = &bins_custom,
	  .desc = "Fixed bucket edges, ascending." },
	{ .name = "linear", .type = FT_ENUM, .offset = offsetof(transform_item, linear),
	  .symbols = linear_symbols, .desc = "The linear term beside the buckets." },
};

/* One edge, parsed and checked as any number row is. */
static const ls_conf_field edge_field = { .name = "edge", .type = FT_NUMBER, .offset = 0 };

/*
 * bins: 1 to LS_FTRL_MAX_EDGES numbers, each above the one before it, so
 * a bucket is never empty by construction. Each problem goes to its edge.
 */
static void parse_bins(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
		       const char *disp)
{
	transform_item *t = base;
	double edges[LS_FTRL_MAX_EDGES];
	bool ok = true;

	(void)f;
	if (!ls_conf_expect_seq(ld, node, disp, "a sequence of bucket edges such as [1, 5, 20]"))
		return;
	size_t n = ls_conf_seq_len(node);
	if (n == 0 || n > LS_FTRL_MAX_EDGES) {
		ls_conf_error(ld, node->start_mark, disp, "expected 1 to %d edges, got %zu",
			      LS_FTRL_MAX_EDGES, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char idisp[KEY_MAX + 16], msg[256];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL) {
			ok = false;
			continue;
		}
		if (item->type != YAML_SCALAR_NODE || ls_conf_is_null(item)) {
			ls_conf_error(ld, item->start_mark, idisp, "expected a number, got %s",
				      ls_conf_is_null(item) ? "null" : ls_conf_node_kind(item));
			ok = false;
			continue;
		}
		const char *text = ls_conf_scalar_text(ld, item, idisp);
		if (text == NULL) {
			ok = false;
			continue;
		}
		if (ls_conf_field_set(&edge_field, &edges[i], text, false, msg, sizeof msg) != 0) {
			ls_conf_error(ld, item->start_mark, idisp, "%s", msg);
			ok = false;
			continue;
		}
		if (ok && i > 0 && !(edges[i] > edges[i - 1])) {
			ls_conf_error(ld, item->start_mark, idisp,
				      "not above the edge before it (%g); edges must ascend", edges[i - 1]);
			ok = false;
		}
	}
	if (!ok)
		return;
	t->n_edges = n;
	memcpy(t->edges, edges, n * sizeof edges[0]);
}

void ls_config_parse_transform(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			       yaml_node_t *node, const char *disp)
{
	static const char expected[] =
		"linear, log1p, or a mapping such as {quantiles: 10} or {bins: [1, 5, 20]}";
	ls_ftrl_numeric nm;
	char msg[256], qbuf[72];

	memset(&nm, 0, sizeof nm);
	if (node->type == YAML_SCALAR_NODE && !ls_conf_is_null(node)) {
		const char *text = ls_conf_scalar_text(ld, node, disp);
		if (text == NULL)
			return;
		if (strcmp(text, "linear") == 0) {
			nm.transform = LS_FTRL_T_LINEAR;
		} else if (strcmp(text, "log1p") != 0) {
			ls_conf_error(ld, node->start_mark, disp, "expected %s, got %s", expected,
				      ls_conf_quote(text, qbuf, sizeof qbuf));
			return;
		}
	} else if (node->type == YAML_MAPPING_NODE) {
		transform_item t;
		bool set[COUNT(transform_fields)] = { false };
		size_t before = ld->eb->n_errors;

		memset(&t, 0, sizeof t);
		ls_conf_walk_mapping(ld, transform_fields, COUNT(transform_fields), &t, set, node,
				     "", disp);
		if (ld->eb->n_errors != before)
			return;
		if (set[0] && set[1]) {
			char key[KEY_MAX + 16];
			ls_conf_key_printf(key, sizeof key, "%s.bins", disp);
			ls_conf_error(ld, ls_conf_value_mark(ld, node, "bins"), key,
				      "quantiles and bins exclude each other; keep one");
			return;
		}
		if (!set[0] && !set[1]) {
			ls_conf_error(ld, node->start_mark, disp,
				      "needs quantiles: N or bins: [edges]");
			return;
		}
		if (set[0]) {
			nm.buckets = LS_FTRL_B_QUANTILES;
			nm.quantiles = (uint32_t)t.quantiles;
		} else {
			nm.buckets = LS_FTRL_B_BINS;
			nm.n_edges = t.n_edges;
			memcpy(nm.edges, t.edges, t.n_edges * sizeof t.edges[0]);
		}
		nm.transform = t.linear == LINEAR_LINEAR ? LS_FTRL_T_LINEAR : LS_FTRL_T_LOG1P;
		nm.no_linear = t.linear == LINEAR_NONE;
	} else {
		ls_conf_error(ld, node->start_mark, disp, "expected %s, got %s", expected,
			      ls_conf_is_null(node) ? "null" : ls_conf_node_kind(node));
		return;
	}
	/* The models have the last word on what a map may be. */
	if (!ls_ftrl_numeric_check(&nm, msg, sizeof msg)) {
		ls_conf_error(ld, node->start_mark, disp, "%s", msg);
		return;
	}
	memcpy(ls_conf_member_at(base, f->offset), &nm, sizeof nm);
}

bool ls_config_transform_equal(const ls_ftrl_numeric *a, const ls_ftrl_numeric *b)
{
	if (a->transform != b->transform || a->no_linear != b->no_linear ||
	    a->buckets != b->buckets || a->quantiles != b->quantiles || a->n_edges != b->n_edges)
		return false;
	for (size_t i = 0; i < a->n_edges && i < LS_FTRL_MAX_EDGES; i++)
		if (a->edges[i] != b->edges[i])
			return false;
	return true;
}

static bool feature_map_equal(const void *a, const void *b)
{
	const ls_feature_spec *x = a, *y = b;
	return ls_config_transform_equal(&x->map, &y->map);
}

#define KIND(k) (1u << (k))
#define KINDS_ALL ((1u << LS_FEATURE_KIND__COUNT) - 1)
#define KINDS_AB (KIND(LS_FEATURE_DIFFERENCE) | KIND(LS_FEATURE_RATIO) | KIND(LS_FEATURE_MEAN))

/*
 * Which kinds use which keys. ls_window.h says the rest of a spec "is
 * ignored"; a config key that is silently ignored is a config the daemon
 * had to guess at, so a key the kind does not use is an error here.
 */
static const struct feature_key_use {
	const char *key;
	unsigned allowed;  /* kinds that read it */
	unsigned required; /* kinds that cannot do without it */
} feature_key_uses[] = {
	{ "source", KIND(LS_FEATURE_WINDOWED), KIND(LS_FEATURE_WINDOWED) },
	{ "types", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "page_category", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "aggregation", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "field", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "scale", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "windows", KINDS_ALL & ~KIND(LS_FEATURE_RECENCY), KINDS_ALL & ~KIND(LS_FEATURE_RECENCY) },
	{ "a", KINDS_ALL & ~KIND(LS_FEATURE_WINDOWED), KINDS_ALL & ~KIND(LS_FEATURE_WINDOWED) },
	{ "b", KINDS_AB, KINDS_AB },
	{ "prior", KIND(LS_FEATURE_VELOCITY), 0 },
	{ "cap", KIND(LS_FEATURE_RECENCY), 0 },
	{ "unit", KIND(LS_FEATURE_RECENCY), 0 },
	{ "floor_zero", KIND(LS_FEATURE_DIFFERENCE), 0 },
};

static const char *kind_name(ls_feature_kind k)
{
	for (size_t i = 0; kind_symbols[i].name != NULL; i++)
		if (kind_symbols[i].value == (int)k)
			return kind_symbols[i].name;
	return "unknown";
}

/* "difference, ratio or mean" */
static void kind_list(unsigned mask, char *buf, size_t buflen)
{
	size_t len = 0, total = 0, done = 0;
	for (unsigned k = 0; k < LS_FEATURE_KIND__COUNT; k++)
		total += (mask >> k) & 1u;
	buf[0] = '\0';
	for (unsigned k = 0; k < LS_FEATURE_KIND__COUNT; k++) {
		if (!((mask >> k) & 1u))
			continue;
		const char *sep = done == 0 ? "" : done + 1 == total ? " or " : ", ";
		int w = snprintf(buf + len, buflen - len, "%s%s", sep,
				 kind_name((ls_feature_kind)k));
		if (w < 0 || (size_t)w >= buflen - len)
			return;
		len += (size_t)w;
		done++;
	}
}

/* Per-item checks that need the whole item (its kind, its source). */
static void feature_finish(ls_conf_loader *ld, void *items, size_t index,
			   yaml_node_t *item_node, const char *disp)
{
	ls_feature_spec *specs = items;
	ls_feature_spec *f = &specs[index];
	unsigned kind = KIND(f->kind);
	char key[KEY_MAX + 32], qbuf[72];
	bool ok = true;

	for (size_t i = 0; i < COUNT(feature_key_uses); i++) {
		const struct feature_key_use *u = &feature_key_uses[i];
		yaml_node_t *k = mapping_key(ld->doc, item_node, u->key);
		ls_conf_key_printf(key, sizeof key, "%s.%s", disp, u->key);
		if (k != NULL && !(u->allowed & kind)) {
			char kinds[128];
			kind_list(u->allowed, kinds, sizeof kinds);
			ls_conf_error(ld, k->start_mark, key,
				 "%s features do not use it (only %s features do)",
				 kind_name(f->kind), kinds);
			ok = false;
		} else if (k == NULL && (u->required & kind)) {
			ls_conf_error(ld, item_node->start_mark, key,
				 "required key is missing (%s features need it)", kind_name(f->kind));
			ok = false;
		}
	}
	if (!ok)
		return;

	yaml_node_t *types = ls_conf_mapping_value(ld->doc, item_node, "types");
	if (types != NULL && !resolve_types(ld, f, types, disp))
		ok = false;
	yaml_node_t *category_node = ls_conf_mapping_value(ld->doc, item_node, "page_category");
	if (category_node != NULL && f->source != LS_SOURCE_WEB) {
		ls_conf_key_printf(key, sizeof key, "%s.page_category", disp);
		ls_conf_error(ld, category_node->start_mark, key,
			 "filters web events only, and this feature's source is %s",
			 ls_source_name(f->source));
		ok = false;
	}
	yaml_node_t *scale_key = mapping_key(ld->doc, item_node, "scale");
	if (scale_key != NULL && f->agg != LS_AGG_SUM) {
		ls_conf_key_printf(key, sizeof key, "%s.scale", disp);
		ls_conf_error(ld, scale_key->start_mark, key, "applies to sum features only");
		ok = false;
	}
	yaml_node_t *wins = ls_conf_mapping_value(ld->doc, item_node, "windows");
	if (wins != NULL && f->kind != LS_FEATURE_WINDOWED) {
		ls_conf_key_printf(key, sizeof key, "%s.windows", disp);
		bool sliced = false;
		for (size_t i = 0; i < f->n_windows; i++)
			sliced = sliced || f->windows[i].slices != 0;
		if (sliced) {
			/* Derived features read their operands' slices. */
			ls_conf_error(ld, wins->start_mark, key,
				 "slices apply to windowed features only");
			ok = false;
		} else if (f->kind == LS_FEATURE_VELOCITY && f->n_windows != 2) {
			ls_conf_error(ld, wins->start_mark, key,
				 "velocity features need exactly two windows, [short, long]");
			ok = false;
		}
	}
	for (size_t j = 0; j < index && ok; j++) {
		if (strcmp(specs[j].name, f->name) != 0)
			continue;
		yaml_node_t *nn = ls_conf_mapping_value(ld->doc, item_node, "name");
		ls_conf_key_printf(key, sizeof key, "%s.name", disp);
		ls_conf_error(ld, nn != NULL ? nn->start_mark : item_node->start_mark, key,
			 "duplicate feature name %s (also features[%zu])",
			 ls_conf_quote(f->name, qbuf, sizeof qbuf), j);
	}
}

/* Operand `which` (a or b) of a derived feature must name a windowed one. */
static bool check_operand(ls_conf_loader *ld, const ls_feature_spec *specs, size_t n,
			  yaml_node_t *item, const char *idisp, const char *which,
			  const char *name)
{
	char key[KEY_MAX + 8], qbuf[72];
	yaml_node_t *v = ls_conf_mapping_value(ld->doc, item, which);
	yaml_mark_t mark = v != NULL ? v->start_mark : item->start_mark;

	ls_conf_key_printf(key, sizeof key, "%s.%s", idisp, which);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(specs[i].name, name) != 0)
			continue;
		if (specs[i].kind == LS_FEATURE_WINDOWED)
			return true;
		ls_conf_error(ld, mark, key,
			 "%s is a %s feature; operands must be windowed features",
			 ls_conf_quote(name, qbuf, sizeof qbuf), kind_name(specs[i].kind));
		return false;
	}
	ls_conf_error(ld, mark, key, "unknown feature %s", ls_conf_quote(name, qbuf, sizeof qbuf));
	return false;
}

/*
 * Whole-list checks: operands (which may name a later feature), then
 * ls_feature_set_new() itself, so the config accepts exactly the lists
 * the models accept. Its message names the feature as "feature 'x': ...";
 * the error goes to that item, or to the sequence if none is named.
 */
static void features_finish_all(ls_conf_loader *ld, void *items, size_t n,
				yaml_node_t *seq_node, const char *disp)
{
	ls_feature_spec *specs = items;
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		if (specs[i].kind == LS_FEATURE_WINDOWED)
			continue;
		char idisp[KEY_MAX];
		yaml_node_t *item = ls_conf_seq_entry(ld, seq_node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		if (!check_operand(ld, specs, n, item, idisp, "a", specs[i].a))
			ok = false;
		if (specs[i].b[0] != '\0' &&
		    !check_operand(ld, specs, n, item, idisp, "b", specs[i].b))
			ok = false;
	}
	if (!ok)
		return;

	char msg[512];
	ls_feature_set *set = ls_feature_set_new(specs, n, msg, sizeof msg);
	if (set != NULL) {
		ls_feature_set_free(set);
		return;
	}
	yaml_mark_t mark = seq_node->start_mark;
	char key[KEY_MAX];
	ls_conf_key_printf(key, sizeof key, "%s", disp);
	static const char prefix[] = "feature '";
	if (strncmp(msg, prefix, sizeof prefix - 1) == 0) {
		const char *name = msg + sizeof prefix - 1;
		const char *close = strchr(name, '\'');
		for (size_t i = 0; close != NULL && i < n; i++) {
			yaml_node_t *item = ls_conf_seq_item(ld, seq_node, i);
			if (item == NULL || strlen(specs[i].name) != (size_t)(close - name) ||
			    memcmp(specs[i].name, name, (size_t)(close - name)) != 0)
				continue;
			mark = item->start_mark;
			ls_conf_key_printf(key, sizeof key, "%s[%zu]", disp, i);
			break;
		}
	}
	ls_conf_error(ld, mark, key, "%s", msg);
}

const ls_feature_spec *ls_config_features(const ls_config *cfg, size_t *n)
{
	if (cfg == NULL || cfg->features.n == 0)
		return ls_features_default(n);
	if (n != NULL)
		*n = cfg->features.n;
	return cfg->features.specs;
}

