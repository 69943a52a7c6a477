/*
 * leadscorectl - inspect what leadscored keeps in Redis.
 *
 *   leadscorectl [--config PATH] lead LEAD_ID [--at MS]
 *   leadscorectl [--config PATH] model NAME
 *   leadscorectl [--config PATH] offsets TOPIC:PARTITION...
 *   leadscorectl [--config PATH] evaluate CAMPAIGN
 *                [--target uniform|arm:VARIANT|posterior] [--clip W] [--timeout-ms N]
 *
 * `lead` prints one JSON object (window_state_xxh3: a hash of the lead's
 * state without its scoring extension, for comparing runs): the lead's watermark, event counts per
 * source, every feature value (at the watermark, or at --at MS), its
 * profile, blob size and Redis MEMORY USAGE. It decodes the state with the
 * daemon's own code and feature set (from the same config), so what it
 * prints is what the models see. "scores" holds, per configured model,
 * what scoring remembers for the lead (ls_scorestate: last published score,
 * tier, version, label) and the score decayed toward the model's prior
 * (positives / labels of the shared model) over the time since the
 * watermark, up to --at MS or now; "first_ts" is the lead's first event
 * seen by scoring. Exit 0, 1 for an error, 3 when the lead is not stored.
 *
 * `model` prints one JSON object about a model's shared state: the
 * checkpoint and learning log are read in one MULTI/EXEC and folded
 * exactly as a checkpoint would fold them (ls_scorer_fold), so version,
 * label counts, window metrics and weights are what every instance scores
 * with after its next checkpoint. Nothing is written. Exit 0, 1 for an
 * error, 3 when NAME is not a configured model.
 *
 * `evaluate` (off-policy evaluation of a campaign's logged decisions) is
 * in leadscorectl_evaluate.c, with its description.
 */
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <xxhash.h>

#include "ls_build.h"
#include "ls_clock.h"
#include "ls_config.h"
#include "ls_ftrl.h"
#include "ls_keys.h"
#include "ls_lead.h"
#include "ls_scorestate.h"
#include "ls_log.h"
#include "ls_pipeline.h"
#include "ls_scorer.h"
#include "ls_settings.h"
#include "ls_store.h"

#include "leadscorectl.h"

#define TOP_WEIGHTS 10

static void usage(FILE *out)
{
	fprintf(out,
		"usage: leadscorectl [--config PATH] lead LEAD_ID [--at MS]\n"
		"       leadscorectl [--config PATH] model NAME\n"
		"       leadscorectl [--config PATH] offsets TOPIC:PARTITION...\n"
		"       leadscorectl [--config PATH] evaluate CAMPAIGN\n"
		"                    [--target uniform|arm:VARIANT|posterior] [--clip W]\n"
		"                    [--timeout-ms N]\n"
		"       leadscorectl [--config PATH] tail|dead-letters|campaign|replay|simulate\n"
		"                    ... (each has --help)\n"
		"  -c, --config PATH  configuration (default %s); LEADSCORE_* env applies\n"
		"\n"
		"  lead      one lead's state as the models see it (JSON): watermark, event\n"
		"            counts, every feature value (at the watermark or --at MS),\n"
		"            profile, per-model scores, blob size, Redis MEMORY USAGE\n"
		"  model     a model's shared state, folded as the next checkpoint folds\n"
		"            it (JSON): version, labels, validation metrics, top weights\n"
		"  offsets   the committed next offset of each TOPIC:PARTITION (JSON)\n"
		"  evaluate  off-policy evaluation (IPS, SNIPS) of a campaign's logged\n"
		"            decisions under a target policy (JSON)\n"
		"\n"
		"Exit status of lead, model, offsets, evaluate: 0 ok; 1 error (config,\n"
		"Redis, broker); 2 usage error (evaluate: also an unknown campaign or\n"
		"arm, a bad --clip or --timeout-ms); 3 lead not stored, or model not\n"
		"configured. The other commands document theirs in their --help.\n",
		LS_DEFAULT_CONFIG);
}

int print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (s == NULL) {
		fprintf(stderr, "leadscorectl: cannot render JSON\n");
		return 1;
	}
	puts(s);
	free(s);
	return 0;
}

/* A JSON number, or null when d is not finite (JSON has no NaN). */
json_t *json_num(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

/* A model's shared state as a checkpoint would fold it. */
typedef struct shared_model {
	ls_ftrl *model;
	ls_eval *eval;
	size_t skipped; /* log entries of another layout or unreadable */
	size_t n_log;   /* log entries read */
	bool stored;    /* a checkpoint exists */
} shared_model;

static void shared_model_free(shared_model *sm)
{
	ls_ftrl_free(sm->model);
	ls_eval_free(sm->eval);
	memset(sm, 0, sizeof *sm);
}

/*
 * Read spec's checkpoint, window and learning log from Redis in one
 * MULTI/EXEC and fold them into *out, starting from a fresh model built
 * exactly as the daemon builds it (the feature set's values, then the
 * spec's metrics, as dense features). 0, or -1 with a reason in err and
 * *out empty. Free *out with shared_model_free().
 */
static int load_model(ls_store *store, const ls_config *cfg,
		      const ls_feature_set *set, const ls_model_spec *spec,
		      shared_model *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	char km[KEY_MAX], ke[KEY_MAX], kl[KEY_MAX];
	const char *prefix = cfg->redis.key_prefix;
	if (ls_keys_model(km, KEY_MAX, prefix, spec->name) < 0 ||
	    ls_keys_model_eval(ke, KEY_MAX, prefix, spec->name) < 0 ||
	    ls_keys_model_log(kl, KEY_MAX, prefix, spec->name) < 0) {
		snprintf(err, errlen, "model %s: key names too long", spec->name);
		return -1;
	}
	char why[512];
	ls_ftrl *fresh = ls_model_spec_new_ftrl(spec, set, why, sizeof why);
	if (fresh == NULL) {
		snprintf(err, errlen, "model %s: %s", spec->name, why);
		return -1;
	}
	ls_store_model_keys keys = { km, ke, kl };
	ls_store_model_state st;
	int rc = -1;
	if (ls_store_model_read(store, &keys, false, &st, why, sizeof why) != 0) {
		snprintf(err, errlen, "model %s: %s", spec->name, why);
		goto out;
	}
	if (ls_scorer_fold(&st, fresh, (size_t)spec->eval_window, &out->model,
			   &out->eval, &out->skipped, why, sizeof why) != 0) {
		snprintf(err, errlen, "model %s: %s", spec->name, why);
		goto out;
	}
	out->n_log = st.n_log;
	out->stored = st.model.data != NULL;
	rc = 0;
out:
	ls_ftrl_free(fresh);
	return rc;
}

static const char *label_name(uint8_t label)
{
	switch (label) {
	case LS_LABEL_POSITIVE:
		return "positive";
	case LS_LABEL_NEGATIVE:
		return "negative";
	case LS_LABEL_TIMEOUT:
		return "timeout";
	default:
		return "none";
	}
}

/*
 * The "scores" object of `lead`: per configured model, the lead's record
 * in its scoring state ls and the score decayed over the time from the
 * watermark to now. The prior is read from the shared model only when
 * the model decays; a model that cannot be read gives a null
 * decayed_score (with a warning), not an error.
 */
static json_t *lead_scores(ls_store *store, const ls_config *cfg,
			   const ls_feature_set *set, const ls_lead *lead,
			   ls_scorestate *ls, int64_t now)
{
	int64_t wm = ls_lead_watermark(lead);
	/* both non-negative: the difference cannot overflow */
	int64_t idle = wm >= 0 && now >= 0 ? now - wm : 0;
	size_t n_models;
	const ls_model_spec *specs = ls_config_models(cfg, &n_models);
	json_t *scores = json_object();
	for (size_t i = 0; i < n_models; i++) {
		const ls_model_spec *spec = &specs[i];
		const ls_scorestate_model *r =
			ls_scorestate_get(ls, ls_scorestate_key(spec->name), false);
		double score = r != NULL ? r->score : NAN;
		const char *tier = r != NULL && r->tier >= 0
					   ? ls_tiers_name(&spec->tiers, r->tier)
					   : NULL;
		double prior = NAN;
		if (spec->decay_half_life_ms > 0 && !isnan(score)) {
			char err[1024];
			shared_model sm;
			if (load_model(store, cfg, set, spec, &sm, err, sizeof err) != 0) {
				fprintf(stderr, "leadscorectl: warning: %s\n", err);
			} else {
				uint64_t pos = ls_ftrl_positives(sm.model);
				uint64_t neg = ls_ftrl_negatives(sm.model);
				if (pos + neg > 0)
					prior = (double)pos / (double)(pos + neg);
				shared_model_free(&sm);
			}
		}
		double decayed = score;
		if (spec->decay_half_life_ms > 0)
			decayed = isnan(prior) ? NAN
					       : ls_scorestate_decay(score, prior, idle,
								    spec->decay_half_life_ms);
		json_t *o = json_object();
		json_object_set_new(o, "score", json_num(score));
		json_object_set_new(o, "tier", tier != NULL ? json_string(tier) : json_null());
		json_object_set_new(o, "version",
				    json_integer(r != NULL ? (json_int_t)r->version : 0));
		json_object_set_new(o, "label",
				    json_string(label_name(r != NULL ? r->label : LS_LABEL_NONE)));
		json_object_set_new(o, "decayed_score", json_num(decayed));
		json_object_set_new(scores, spec->name, o);
	}
	return scores;
}

/* The configured feature set, or NULL with the reason on stderr. */
static ls_feature_set *feature_set(const ls_config *cfg)
{
	char err[512];
	size_t n_specs;
	const ls_feature_spec *specs = ls_config_features(cfg, &n_specs);
	ls_feature_set *set = ls_feature_set_new(specs, n_specs, err, sizeof err);
	if (set == NULL)
		fprintf(stderr, "leadscorectl: features: %s\n", err);
	return set;
}

/* now: the time scores decay to (--at MS, or the wall clock). */
static int cmd_lead(ls_store *store, const ls_config *cfg, const char *lead_id,
		    int64_t at, int64_t now)
{
	char err[512];
	ls_feature_set *set = feature_set(cfg);
	if (set == NULL)
		return 1;
	ls_lead_conf lc;
	ls_config_lead_conf(cfg, set, &lc);
	int rc = 1;
	ls_lead *lead = NULL;
	double *values = NULL;
	ls_store_blob blob;
	if (ls_store_load(store, &lead_id, 1, &blob, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	if (blob.data == NULL) {
		fprintf(stderr, "leadscorectl: lead '%s' is not stored\n", lead_id);
		rc = 3;
		goto out;
	}
	size_t blob_len = blob.len;
	if (ls_lead_decode(&lc, blob.data, blob.len, &lead, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: corrupt state: %s\n", err);
		goto out;
	}
	size_t ext_len;
	const uint8_t *ext = ls_lead_ext(lead, &ext_len);
	ls_scorestate ls;
	if (ls_scorestate_decode(ext, ext_len, &ls, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: corrupt scoring state: %s\n", err);
		goto out;
	}
	int nv = ls_lead_feature_names(set, NULL, 0);
	const char **names = calloc((size_t)nv + 1, sizeof *names);
	values = calloc((size_t)nv + 1, sizeof *values);
	if (names == NULL || values == NULL) {
		free(names);
		fprintf(stderr, "leadscorectl: out of memory\n");
		goto out;
	}
	ls_lead_feature_names(set, names, (size_t)nv);
	if (ls_lead_features(lead, &lc, at, values, (size_t)nv) != nv) {
		free(names);
		fprintf(stderr, "leadscorectl: cannot compute features\n");
		goto out;
	}
	json_t *o = json_object();
	json_t *feats = json_object();
	json_t *events = json_object();
	json_t *attrs = json_object();
	json_t *metrics = json_object();
	for (int i = 0; i < nv; i++)
		json_object_set_new(feats, names[i], json_real(values[i]));
	free(names);
	for (int s = 0; s < LS_SOURCE__COUNT; s++)
		json_object_set_new(events, ls_source_name((ls_source)s),
				    json_integer((json_int_t)ls_lead_event_count(lead, (ls_source)s)));
	const char *k, *v;
	double d;
	for (size_t i = 0; ls_lead_attribute_at(lead, i, &k, &v); i++)
		json_object_set_new(attrs, k, json_string(v));
	for (size_t i = 0; ls_lead_metric_at(lead, i, &k, &d); i++)
		json_object_set_new(metrics, k, json_real(d));
	long long mem = -1;
	if (ls_store_memory_usage(store, lead_id, &mem, err, sizeof err) != 0)
		mem = -1;
	json_object_set_new(o, "lead_id", json_string(lead_id));
	json_object_set_new(o, "watermark", json_integer(ls_lead_watermark(lead)));
	json_object_set_new(o, "events", events);
	json_object_set_new(o, "features", feats);
	json_object_set_new(o, "attributes", attrs);
	json_object_set_new(o, "metrics", metrics);
	json_object_set_new(o, "blob_bytes", json_integer((json_int_t)blob_len));
	json_object_set_new(o, "redis_memory_bytes", json_integer(mem));
	json_object_set_new(o, "first_ts",
			    ls.first_ts >= 0 ? json_integer(ls.first_ts) : json_null());
	json_object_set_new(o, "scores", lead_scores(store, cfg, set, lead, &ls, now));
	/* The window state alone: the scoring extension depends on how
	 * events fell into batches (one score per lead per batch), the
	 * windows must not; crash tests compare this. */
	ls_buf wb = { 0 };
	char hex[17] = "";
	if (ls_lead_set_ext(lead, NULL, 0) == 0 && ls_lead_encode(lead, &lc, &wb) == 0)
		snprintf(hex, sizeof hex, "%016llx",
			 (unsigned long long)XXH3_64bits(wb.data, wb.len));
	ls_buf_free(&wb);
	json_object_set_new(o, "window_state_xxh3", json_string(hex));
	rc = print_json(o);
out:
	free(values);
	ls_lead_free(lead);
	ls_feature_set_free(set);
	return rc;
}

/* Weight of dense feature j, for ranking by |weight|. */
typedef struct dense_weight {
	size_t j;
	double w;
} dense_weight;

/* Larger |w| first; equal ones in feature order. */
static int by_abs_weight(const void *a, const void *b)
{
	const dense_weight *x = a, *y = b;
	double ax = fabs(x->w), ay = fabs(y->w);
	if (ax != ay)
		return ax > ay ? -1 : 1;
	return x->j < y->j ? -1 : x->j > y->j;
}

/*
 * The TOP_WEIGHTS dense features of m with the largest |weight|, as
 * [{"name", "weight"}]; features whose weight is exactly 0 (never learned,
 * or held at 0 by L1) are left out. NULL when out of memory.
 */
static json_t *top_weights(const ls_ftrl *m)
{
	size_t nd = ls_ftrl_n_dense(m), n = 0;
	dense_weight *dw = malloc((nd ? nd : 1) * sizeof *dw);
	if (dw == NULL)
		return NULL;
	for (size_t j = 0; j < nd; j++) {
		double z, nn, w;
		if (ls_ftrl_coord(m, 1 + j, &z, &nn, &w) && w != 0.0 && isfinite(w))
			dw[n++] = (dense_weight){ j, w };
	}
	qsort(dw, n, sizeof *dw, by_abs_weight);
	json_t *a = json_array();
	for (size_t i = 0; i < n && i < TOP_WEIGHTS; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(ls_ftrl_dense_name(m, dw[i].j)));
		json_object_set_new(o, "weight", json_real(dw[i].w));
		json_array_append_new(a, o);
	}
	free(dw);
	return a;
}

static int cmd_model(ls_store *store, const ls_config *cfg, const char *name)
{
	size_t n_models;
	const ls_model_spec *models = ls_config_models(cfg, &n_models);
	const ls_model_spec *spec = NULL;
	for (size_t i = 0; i < n_models && spec == NULL; i++)
		if (strcmp(models[i].name, name) == 0)
			spec = &models[i];
	if (spec == NULL) {
		fprintf(stderr, "leadscorectl: model '%s' is not configured\n", name);
		return 3;
	}
	char err[1024];
	ls_feature_set *set = feature_set(cfg);
	if (set == NULL)
		return 1;
	shared_model sm;
	if (load_model(store, cfg, set, spec, &sm, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		ls_feature_set_free(set);
		return 1;
	}
	json_t *top = top_weights(sm.model);
	if (top == NULL) {
		fprintf(stderr, "leadscorectl: out of memory\n");
		shared_model_free(&sm);
		ls_feature_set_free(set);
		return 1;
	}
	const ls_ftrl *m = sm.model;
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(spec->name));
	json_object_set_new(o, "stored", json_boolean(sm.stored));
	json_object_set_new(o, "log_entries", json_integer((json_int_t)sm.n_log));
	json_object_set_new(o, "skipped", json_integer((json_int_t)sm.skipped));
	json_object_set_new(o, "version", json_integer((json_int_t)ls_ftrl_version(m)));
	json_object_set_new(o, "positives", json_integer((json_int_t)ls_ftrl_positives(m)));
	json_object_set_new(o, "negatives", json_integer((json_int_t)ls_ftrl_negatives(m)));
	json_object_set_new(o, "labels_in_window",
			    json_integer((json_int_t)ls_eval_count(sm.eval)));
	json_object_set_new(o, "auc", json_num(ls_eval_auc(sm.eval)));
	json_object_set_new(o, "logloss", json_num(ls_eval_logloss(sm.eval)));
	json_object_set_new(o, "ece", json_num(ls_eval_ece(sm.eval)));
	json_object_set_new(o, "shadow", json_boolean(spec->shadow));
	json_object_set_new(o, "dense_features", json_integer((json_int_t)ls_ftrl_n_dense(m)));
	json_object_set_new(o, "buckets",
			    json_integer((json_int_t)ls_ftrl_get_params(m)->n_buckets));
	json_object_set_new(o, "ram_bytes", json_integer((json_int_t)ls_ftrl_ram_bytes(m)));
	json_object_set_new(o, "top_weights", top);
	shared_model_free(&sm);
	ls_feature_set_free(set);
	return print_json(o);
}

static int cmd_offsets(ls_store *store, char **args, int n)
{
	char err[512];
	ls_store_offset *o = calloc((size_t)n + 1, sizeof *o);
	char **topics = calloc((size_t)n + 1, sizeof *topics);
	int rc = 1;
	if (o == NULL || topics == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		char *colon = strrchr(args[i], ':');
		if (colon == NULL || colon[1] == '\0') {
			fprintf(stderr, "leadscorectl: expected TOPIC:PARTITION, got '%s'\n", args[i]);
			goto out;
		}
		topics[i] = strndup(args[i], (size_t)(colon - args[i]));
		if (topics[i] == NULL)
			goto out;
		o[i].topic = topics[i];
		o[i].partition = (int32_t)strtol(colon + 1, NULL, 10);
	}
	if (ls_store_load_offsets(store, o, (size_t)n, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	json_t *j = json_object();
	for (int i = 0; i < n; i++)
		json_object_set_new(j, args[i], json_integer(o[i].next_offset));
	rc = print_json(j);
out:
	for (int i = 0; topics != NULL && i < n; i++)
		free(topics[i]);
	free(topics);
	free(o);
	return rc;
}

int ctl_load_config(const char *path, ls_config *cfg)
{
	static char err[16384];
	if (ls_config_load(path, cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s", err);
		return 1;
	}
	/* librdkafka's lines reach stderr through ls_log */
	ls_config_mask_secrets(cfg);
	return 0;
}

/* Commands with options of their own (leadscorectl.h): each parses its
 * argv (argv[0] is the command's name) and prints its own --help. */
static const struct {
	const char *name;
	ctl_command_fn fn;
} own_commands[] = {
	{ "tail", cmd_tail },
	{ "dead-letters", cmd_dead_letters },
	{ "campaign", cmd_campaign },
	{ "replay", cmd_replay },
	{ "simulate", cmd_simulate },
};

/* The command after an optional leading --config PATH, when it is one of
 * own_commands: its index, with *path and *at set; else -1. */
static int own_command(int argc, char **argv, const char **path, int *at)
{
	int i = 1;
	if (i + 1 < argc && (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)) {
		*path = argv[i + 1];
		i += 2;
	} else if (i < argc && strncmp(argv[i], "--config=", 9) == 0) {
		*path = argv[i] + 9;
		i++;
	}
	if (i >= argc)
		return -1;
	for (size_t k = 0; k < sizeof own_commands / sizeof own_commands[0]; k++) {
		if (strcmp(argv[i], own_commands[k].name) == 0) {
			*at = i;
			return (int)k;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	{
		const char *own_path = LS_DEFAULT_CONFIG;
		int at = 0;
		int k = own_command(argc, argv, &own_path, &at);
		if (k >= 0)
			return own_commands[k].fn(argc - at, argv + at, own_path);
	}
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "at", required_argument, NULL, 'a' },
		{ "target", required_argument, NULL, 'T' },
		{ "clip", required_argument, NULL, 'C' },
		{ "timeout-ms", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = LS_DEFAULT_CONFIG;
	int64_t at = LS_LEAD_AT_WATERMARK;
	bool at_given = false;
	const char *target = NULL, *clip = NULL, *timeout = NULL;
	int opt;
	/* GNU getopt permutes, so options may also follow the command */
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'a':
			at = strtoll(optarg, NULL, 10);
			at_given = true;
			break;
		case 'T':
			target = optarg;
			break;
		case 'C':
			clip = optarg;
			break;
		case 'W':
			timeout = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind++];
	bool evaluate = strcmp(cmd, "evaluate") == 0;
	if ((evaluate && optind != argc - 1) ||
	    (!evaluate && (target != NULL || clip != NULL || timeout != NULL))) {
		usage(stderr);
		return 2;
	}

	static char err[16384];
	ls_config cfg;
	if (ctl_load_config(path, &cfg) != 0)
		return 1;
	int rc = 1;
	ls_store *store = NULL;
	if (evaluate) {
		/* librdkafka's notices would bury the answer; warnings stay */
		ls_log_set_level(LS_LOG_WARN);
		eval_opts eo;
		rc = eval_parse(&cfg, argv[optind], target, clip, timeout, &eo);
		if (rc == 0)
			rc = cmd_evaluate(&cfg, &eo);
		goto out;
	}
	ls_store_settings ss = ls_settings_store(&cfg);
	store = ls_store_new(&ss, err, sizeof err);
	if (store == NULL || ls_store_connect(store, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: redis: %s\n", err);
		goto out;
	}
	if (strcmp(cmd, "lead") == 0 && optind == argc - 1) {
		rc = cmd_lead(store, &cfg, argv[optind], at, at_given ? at : ls_clock_wall_ms());
	} else if (strcmp(cmd, "model") == 0 && optind == argc - 1) {
		rc = cmd_model(store, &cfg, argv[optind]);
	} else if (strcmp(cmd, "offsets") == 0 && optind < argc) {
		rc = cmd_offsets(store, argv + optind, argc - optind);
	} else {
		usage(stderr);
		rc = 2;
	}
out:
	ls_store_free(store);
	ls_config_free(&cfg);
	return rc;
}
