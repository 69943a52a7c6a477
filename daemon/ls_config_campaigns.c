/*
 * ls_config_campaigns.c - the `campaigns:` sequence of the schema: its
 * sub-table and the hooks that check one bandit campaign.
 *
 * Why a file of its own: campaigns are the one sequence that reloads
 * live (arms added and retired), and their checks (ids that go into
 * URLs and Redis hash tags, reward weights, a tier model that must
 * exist) are the schema's, not the walker's.
 */
#include "ls_config_items.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* campaigns: items are ls_campaign_spec; hooks are defined below the
 * table. */
static const char *check_campaign_id(const char *s, char *buf, size_t buflen);
static void campaign_init(void *item);
static void parse_arms(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
		       const char *disp);
static bool arms_equal(const void *a, const void *b);
static void parse_rewards(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool rewards_equal(const void *a, const void *b);
static void parse_context(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool context_equal(const void *a, const void *b);
static void campaign_finish(ls_conf_loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp);

static const ls_conf_custom arms_custom = {
	.type_name = "sequence", .parse = parse_arms, .equal = arms_equal,
};
static const ls_conf_custom rewards_custom = {
	.type_name = "map", .parse = parse_rewards, .equal = rewards_equal,
};
static const ls_conf_custom context_custom = {
	.type_name = "sequence", .parse = parse_context, .equal = context_equal,
};

#define K_OFF(m) offsetof(ls_campaign_spec, m)
#define K_SIZE(m) sizeof(((ls_campaign_spec *)0)->m)

static const ls_conf_field campaign_fields[] = {
	{ .name = "id", .type = FT_CHARS, .offset = K_OFF(id), .size = K_SIZE(id),
	  .flags = F_REQUIRED, .check = check_campaign_id,
	  .desc = "1-63 of `A-Z a-z 0-9 _ -`, unique; names the campaign in the API, Redis keys "
		  "and metrics." },
	{ .name = "arms", .type = FT_CUSTOM, .custom = &arms_custom, .flags = F_REQUIRED,
	  .desc = "The variants: 1-64 distinct ids of `A-Z a-z 0-9 _ - .`; removing one retires "
		  "it and keeps its counts in Redis." },
	{ .name = "rewards", .type = FT_CUSTOM, .custom = &rewards_custom, .def = "{CLICKED: 1}",
	  .desc = "`EmailEvent` types that reward a decision, each with a weight in (0,1]; a "
		  "decision's reward is the largest weight among its reward events (not `SENT`: "
		  "that activates)." },
	{ .name = "reward_window", .type = FT_DURATION, .offset = K_OFF(reward_window_ms),
	  .def = "72h", .min = MS_SECOND, .max = 90 * MS_DAY,
	  .desc = "Rewards count this long after activation; then a decision without one gets "
		  "`default_reward` (1s to 90d)." },
	{ .name = "activation_timeout", .type = FT_DURATION, .offset = K_OFF(activation_timeout_ms),
	  .def = "24h", .min = MS_SECOND, .max = 90 * MS_DAY,
	  .desc = "A decision made with `\"activate\": false` and never activated is forgotten "
		  "after this, without touching the posterior (1s to 90d)." },
	{ .name = "default_reward", .type = FT_NUMBER, .offset = K_OFF(default_reward),
	  .def = "0", .flags = F_UNIT,
	  .desc = "Reward of a decision whose window expired without a reward event (0 to 1)." },
	{ .name = "prior.alpha", .type = FT_NUMBER, .offset = K_OFF(prior_a), .def = "1",
	  .desc = "Beta prior alpha of every arm (> 0)." },
	{ .name = "prior.beta", .type = FT_NUMBER, .offset = K_OFF(prior_b), .def = "1",
	  .desc = "Beta prior beta of every arm (> 0)." },
	{ .name = "min_share", .type = FT_NUMBER, .offset = K_OFF(min_share), .def = "0",
	  .flags = F_UNIT,
	  .desc = "Every arm is chosen with at least this probability (0 to 1/arms); 0 is plain "
		  "Thompson sampling. Costs about arms × `min_share` × (best rate − mean rate) "
		  "reward a decision, for as long as the campaign runs; buys propensities ≥ "
		  "`min_share` for evaluating other policies offline (see "
		  "[Campaigns](#campaigns))." },
	{ .name = "context", .type = FT_CUSTOM, .custom = &context_custom, .def = "[]",
	  .desc = "Up to 8 keys whose values make a context bucket: `tier` (the lead's tier in "
		  "`tier_model`) and/or profile attributes; `[]` for none." },
	{ .name = "tier_model", .type = FT_CHARS, .offset = K_OFF(tier_model), .size = K_SIZE(tier_model),
	  .def = "conversion", .check = ls_config_check_model_name,
	  .desc = "The model whose tier the context key `tier` means." },
	{ .name = "min_bucket_trials", .type = FT_INT, .offset = K_OFF(min_bucket_trials),
	  .size = K_SIZE(min_bucket_trials), .def = "0", .min = 0, .max = 1000000000,
	  .desc = "Deprecated (`prior_trials` replaces it): a context bucket decides with the "
		  "campaign-wide posterior until it has this many resolved decisions (0 to 1e9)." },
	{ .name = "prior_trials", .type = FT_INT, .offset = K_OFF(prior_trials),
	  .size = K_SIZE(prior_trials), .def = "30", .min = 0, .max = 1000000000,
	  .desc = "A context bucket's prior: the rest of the campaign's counts, worth at most this many trials per arm, so a thin bucket starts where the campaign is and a rich one follows its own data; 0: buckets learn alone (0 to 1e9)." },
	{ .name = "refresh_trials", .type = FT_INT, .offset = K_OFF(refresh_trials),
	  .size = K_SIZE(refresh_trials), .def = "10", .min = 1, .max = 1000000,
	  .desc = "The posterior decisions use is refreshed after this many decisions resolved by this instance (HTTP rewards, expiries) (1 to 1e6)." },
	{ .name = "refresh_interval", .type = FT_DURATION, .offset = K_OFF(refresh_ms),
	  .def = "5ms", .min = 1, .max = MS_SECOND,
	  .desc = "How often the counters' version is checked for changes made elsewhere (other instances, reward events); a change refreshes the posterior (1ms to 1s)." },
	{ .name = "max_buckets", .type = FT_INT, .offset = K_OFF(max_buckets),
	  .size = K_SIZE(max_buckets), .def = "1000", .min = 1, .max = 65536,
	  .desc = "Context buckets stored with their own counters and posterior (the first to "
		  "resolve); decisions in further buckets are decided and counted campaign-wide "
		  "(1 to 65536). Bounds the campaign's counters in Redis (see "
		  "[Campaigns](#campaigns))." },
	{ .name = "propensity_draws", .type = FT_INT, .offset = K_OFF(propensity_draws),
	  .size = K_SIZE(propensity_draws), .def = "10000", .min = 100, .max = 1000000,
	  .desc = "Posterior draws that estimate the arm probabilities decisions are drawn from (100 to 1000000)." },
};

const ls_conf_seq ls_config_campaigns_seq = {
	.item_size = sizeof(ls_campaign_spec),
	.init_item = campaign_init,
	.fields = campaign_fields,
	.n_fields = COUNT(campaign_fields),
	.count_offset = offsetof(ls_config, campaigns.n),
	.items_offset = offsetof(ls_config, campaigns.specs),
	.finish_item = campaign_finish,
	.max_items = LS_CAMPAIGN_MAX,
	.empty_error = NULL,
};

/* ---------------------------------------------------------- campaigns */

static void campaign_init(void *item)
{
	ls_campaign_spec *c = item;
	memset(c, 0, sizeof *c);
	c->reward_weight[LS_EMAIL_CLICKED] = 1.0;
	c->reward_window_ms = 72 * MS_HOUR;
	c->activation_timeout_ms = 24 * MS_HOUR;
	c->prior_a = 1.0;
	c->prior_b = 1.0;
	c->min_share = 0.0;
	c->min_bucket_trials = 0;
	c->prior_trials = LS_BANDIT_DEFAULT_PRIOR_TRIALS;
	c->refresh_trials = 10;
	c->refresh_ms = 5;
	c->max_buckets = 1000;
	c->propensity_draws = 10000;
	memcpy(c->tier_model, "conversion", sizeof "conversion");
}

/*
 * Campaign and arm ids go into URLs, Redis keys (a campaign id inside a
 * hash tag, so no braces) and decision ids ("<campaign>.<hex>", so no dot
 * in campaign ids).
 */
static const char *check_id_chars(const char *s, bool dot)
{
	size_t len = strlen(s);
	if (len == 0 || len >= LS_CAMPAIGN_ID_MAX)
		return "must be 1 to 63 characters";
	for (; *s != '\0'; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || (dot && *s == '.')))
			return dot ? "must be made of A-Z, a-z, 0-9, _, - and ."
				   : "must be made of A-Z, a-z, 0-9, _ and -";
	return NULL;
}

static const char *check_campaign_id(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	return check_id_chars(s, false);
}

static const char *check_arm_id(const char *s)
{
	return check_id_chars(s, true);
}

static void parse_arms(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
		       const char *disp)
{
	ls_campaign_spec *c = base;

	(void)f;
	if (node->type == YAML_SEQUENCE_NODE && ls_conf_seq_len(node) == 0) {
		ls_conf_error(ld, node->start_mark, disp, "must list at least one arm");
		return;
	}
	ls_conf_name_list(ld, node, disp, "[subject_a, subject_b]", LS_CAMPAIGN_MAX_ARMS, check_arm_id,
		  &c->arms[0][0], LS_CAMPAIGN_ID_MAX, &c->n_arms);
}

static bool arms_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return x->n_arms == y->n_arms &&
	       ls_conf_names_equal(&x->arms[0][0], &y->arms[0][0], x->n_arms, LS_CAMPAIGN_ID_MAX);
}

static const char *email_type_at(int i, const void *ctx)
{
	(void)ctx;
	return i < LS_EMAIL__COUNT ? ls_email_type_name((ls_email_type)i) : NULL;
}

static void parse_rewards(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_campaign_spec *c = base;
	double w[LS_EMAIL__COUNT] = { 0 };
	bool ok = true;

	(void)f;
	if (node->type != YAML_MAPPING_NODE) {
		ls_conf_error(ld, node->start_mark, disp,
			 "expected a mapping of email event types to weights such as {CLICKED: 1, OPENED: 0.2}, got %s",
			 ls_conf_is_null(node) ? "null" : ls_conf_node_kind(node));
		return;
	}
	size_t n = 0;
	for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
	     pr < node->data.mapping.pairs.top; pr++, n++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, pr->value);
		char kdisp[KEY_MAX + 80], qbuf[72];
		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) {
			ls_conf_error(ld, node->start_mark, disp, "keys must be email event types");
			ok = false;
			continue;
		}
		const char *name = (const char *)k->data.scalar.value;
		ls_conf_key_printf(kdisp, sizeof kdisp, "%s.%s", disp, name);
		int t = ls_email_type_from_name(name);
		if (t < 0) {
			char list[256];
			ls_conf_join_names(list, sizeof list, email_type_at, NULL);
			ls_conf_error(ld, k->start_mark, kdisp, "unknown email event type %s (expected one of %s)",
				 ls_conf_quote(name, qbuf, sizeof qbuf), list);
			ok = false;
			continue;
		}
		if (t == LS_EMAIL_SENT) {
			ls_conf_error(ld, k->start_mark, kdisp,
				 "SENT activates a decision and cannot reward it");
			ok = false;
			continue;
		}
		if (w[t] != 0.0) {
			ls_conf_error(ld, k->start_mark, kdisp, "%s is listed twice", ls_conf_quote(name, qbuf, sizeof qbuf));
			ok = false;
			continue;
		}
		double d;
		if (v->type != YAML_SCALAR_NODE ||
		    ls_conf_parse_number((const char *)v->data.scalar.value, &d) != 0 ||
		    !(d > 0.0 && d <= 1.0)) {
			ls_conf_error(ld, v->start_mark, kdisp, "expected a weight above 0 and at most 1");
			ok = false;
			continue;
		}
		w[t] = d;
	}
	if (ok && n == 0) {
		ls_conf_error(ld, node->start_mark, disp, "must name at least one reward event type");
		ok = false;
	}
	if (ok)
		memcpy(c->reward_weight, w, sizeof w);
}

static bool rewards_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return memcmp(x->reward_weight, y->reward_weight, sizeof x->reward_weight) == 0;
}

static void parse_context(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_campaign_spec *c = base;

	(void)f;
	ls_conf_name_list(ld, node, disp, "[tier, industry]", LS_CAMPAIGN_MAX_CONTEXT, ls_config_check_input_key,
		  &c->context[0][0], LS_MODEL_KEY_MAX, &c->n_context);
}

static bool context_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return x->n_context == y->n_context &&
	       ls_conf_names_equal(&x->context[0][0], &y->context[0][0], x->n_context, LS_MODEL_KEY_MAX);
}

static void campaign_finish(ls_conf_loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp)
{
	ls_campaign_spec *specs = items;
	ls_campaign_spec *c = &specs[index];
	char key[KEY_MAX + 32], qbuf[72];

	for (size_t j = 0; j < index; j++) {
		if (strcmp(specs[j].id, c->id) != 0)
			continue;
		ls_conf_key_printf(key, sizeof key, "%s.id", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "id"), key,
			 "duplicate campaign id %s (also campaigns[%zu])", ls_conf_quote(c->id, qbuf, sizeof qbuf), j);
		return;
	}
	if (c->n_arms > 0 && c->min_share * (double)c->n_arms > 1.0 + 1e-12) {
		ls_conf_key_printf(key, sizeof key, "%s.min_share", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "min_share"), key,
			 "%g per arm over %zu arms is more than 1", c->min_share, c->n_arms);
	}
	if (!(c->prior_a > 0.0 && isfinite(c->prior_a))) {
		ls_conf_key_printf(key, sizeof key, "%s.prior.alpha", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "prior"), key, "must be above 0");
	}
	if (!(c->prior_b > 0.0 && isfinite(c->prior_b))) {
		ls_conf_key_printf(key, sizeof key, "%s.prior.beta", disp);
		ls_conf_error(ld, ls_conf_value_mark(ld, item_node, "prior"), key, "must be above 0");
	}
}

/*
 * "tier" in a campaign's context names a model's tier; the models are
 * only all known once the whole file is walked, so this runs last.
 */
void ls_config_check_campaign_models(ls_conf_loader *ld, yaml_node_t *root)
{
	const ls_config *cfg = ld->base;
	yaml_node_t *seq = ls_conf_mapping_value(ld->doc, root, "campaigns");
	size_t nm;
	const ls_model_spec *models = ls_config_models(cfg, &nm);
	for (size_t i = 0; i < cfg->campaigns.n; i++) {
		const ls_campaign_spec *c = &cfg->campaigns.specs[i];
		bool uses_tier = false;
		for (size_t k = 0; k < c->n_context; k++)
			uses_tier |= strcmp(c->context[k], "tier") == 0;
		if (!uses_tier)
			continue;
		bool found = false;
		for (size_t m = 0; m < nm && !found; m++)
			found = strcmp(models[m].name, c->tier_model) == 0;
		if (found)
			continue;
		char disp[64], key[96], qbuf[72];
		ls_conf_key_printf(disp, sizeof disp, "campaigns[%zu]", i);
		ls_conf_key_printf(key, sizeof key, "%s.tier_model", disp);
		yaml_node_t *item = seq != NULL && seq->type == YAML_SEQUENCE_NODE
					    ? ls_conf_seq_item(ld, seq, i) : NULL;
		yaml_mark_t mark = item != NULL ? ls_conf_value_mark(ld, item, "tier_model")
						: root->start_mark;
		ls_conf_error(ld, mark, key, "context uses tier, but there is no model named %s",
			 ls_conf_quote(c->tier_model, qbuf, sizeof qbuf));
	}
}

