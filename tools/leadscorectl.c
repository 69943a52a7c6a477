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
 * what scoring remembers for the lead (ls_leadscore: last published score,
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
 * `evaluate` estimates offline what a target policy would have earned on
 * CAMPAIGN's logged decisions (models/ls_ope.h: IPS and SNIPS with 95 %
 * intervals, ESS, weights) next to the logging policy's own mean reward
 * on the same decisions. It reads kafka.topics.decisions from the start
 * of every partition to the high watermarks taken when it starts
 * (assigned, no consumer group, nothing committed; --timeout-ms, default
 * 30 s, bounds that), keeps CAMPAIGN's BanditDecisions (the propensity
 * is the logged one), and looks each up in Redis (<prefix>{bandit:C}:d:
 * <id>, HMGET in pipelined batches of 1,000): only resolved decisions
 * (st "2") count, with reward rw / 1e6; the others are counted by why in
 * "skipped". Targets: uniform over the configured arms (the default),
 * one arm, or the current posterior policy per decision bucket, from the
 * counts hash read once, with the campaign's prior, min_share and
 * min_bucket_trials (a thin bucket uses the campaign-wide counts, as the
 * daemon decides) and propensity_draws draws from a fixed seed. --clip W
 * caps the weights (0, the default, caps nothing). Nothing is written.
 * Exit 0, 1 for an I/O error (broker, topic, Redis), 2 for a usage error
 * or a campaign, arm, clip or timeout that is not valid.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <xxhash.h>

#include "ls_arena.h"
#include "ls_bandit.h"
#include "ls_build.h"
#include "ls_campaign.h"
#include "ls_codec.h"
#include "ls_clock.h"
#include "ls_config.h"
#include "ls_ftrl.h"
#include "ls_kafka.h"
#include "ls_lead.h"
#include "ls_leadscore.h"
#include "ls_log.h"
#include "ls_ope.h"
#include "ls_pipeline.h"
#include "ls_redis.h"
#include "ls_scorer.h"
#include "ls_store.h"

#define KEY_MAX 512
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
		"  -c, --config PATH  configuration (default %s); LEADSCORE_* env applies\n",
		LS_DEFAULT_CONFIG);
}

static int print_json(json_t *o)
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
static json_t *json_num(double d)
{
	return isfinite(d) ? json_real(d) : json_null();
}

/* Wall-clock milliseconds since the epoch. */

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
	if (ls_scorer_model_keys(cfg->redis.key_prefix, spec->name, km, ke, kl,
				 KEY_MAX) != 0) {
		snprintf(err, errlen, "model %s: key names too long", spec->name);
		return -1;
	}
	size_t nv = set->n_values, n = nv + spec->n_metrics;
	const char **names = malloc((n ? n : 1) * sizeof *names);
	if (names == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < nv; i++)
		names[i] = ls_feature_set_value_name(set, i);
	for (size_t i = 0; i < spec->n_metrics; i++)
		names[nv + i] = spec->metrics[i];
	char why[512];
	ls_ftrl *fresh = ls_ftrl_new(&spec->ftrl, names, n, why, sizeof why);
	free(names);
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
			   ls_leadscore *ls, int64_t now)
{
	int64_t wm = ls_lead_watermark(lead);
	/* both non-negative: the difference cannot overflow */
	int64_t idle = wm >= 0 && now >= 0 ? now - wm : 0;
	size_t n_models;
	const ls_model_spec *specs = ls_config_models(cfg, &n_models);
	json_t *scores = json_object();
	for (size_t i = 0; i < n_models; i++) {
		const ls_model_spec *spec = &specs[i];
		const ls_leadscore_model *r =
			ls_leadscore_get(ls, ls_leadscore_key(spec->name), false);
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
					       : ls_leadscore_decay(score, prior, idle,
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

/* now: the time scores decay to (--at MS, or the wall clock). */
static int cmd_lead(ls_store *store, const ls_config *cfg, const char *lead_id,
		    int64_t at, int64_t now)
{
	char err[512];
	size_t n_specs;
	const ls_feature_spec *specs = ls_config_features(cfg, &n_specs);
	ls_feature_set *set = ls_feature_set_new(specs, n_specs, err, sizeof err);
	if (set == NULL) {
		fprintf(stderr, "leadscorectl: features: %s\n", err);
		return 1;
	}
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
	ls_leadscore ls;
	if (ls_leadscore_decode(ext, ext_len, &ls, err, sizeof err) != 0) {
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
	size_t n_specs;
	const ls_feature_spec *specs = ls_config_features(cfg, &n_specs);
	ls_feature_set *set = ls_feature_set_new(specs, n_specs, err, sizeof err);
	if (set == NULL) {
		fprintf(stderr, "leadscorectl: features: %s\n", err);
		return 1;
	}
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

/* ------------------------------------------------------------ evaluate */

#define EVAL_BATCH 1000                 /* HMGETs per pipelined round trip */
#define EVAL_DEFAULT_TIMEOUT_MS 30000
#define EVAL_MAX_TIMEOUT_MS 86400000
#define EVAL_POLL_MS 200
#define EVAL_MICRO 1000000.0
/* The posterior target's Monte Carlo draws are seeded with this (mixed
   with the bucket's name), so the same counts give the same vector. */
#define EVAL_SEED UINT64_C(0x65766f6c75617465)

typedef enum eval_target {
	EVAL_UNIFORM,
	EVAL_ARM,
	EVAL_POSTERIOR,
} eval_target;

/* Why a logged decision of the campaign is not evaluated; EVAL_USED when
   it is. Order = the order of the "skipped" keys in the output. */
typedef enum eval_state {
	EVAL_USED = 0,
	EVAL_DUPLICATE,      /* its decision_id was logged before */
	EVAL_RETIRED_ARM,    /* the arm is no longer configured */
	EVAL_NO_RECORD,      /* no Redis record: expired, or never activated */
	EVAL_NOT_ACTIVATED,  /* st "0" */
	EVAL_UNRESOLVED,     /* st "1": active, no reward yet */
	EVAL_BAD_RECORD,     /* a Redis record that does not match the log */
	EVAL_REJECTED,       /* ls_ope refused it: propensity or reward out of range */
	EVAL__COUNT
} eval_state;

static const char *const eval_state_names[EVAL__COUNT] = {
	"used", "duplicate", "arm_not_configured", "no_record", "not_activated",
	"unresolved", "bad_record", "rejected",
};

/* One decision of the campaign from the log. */
typedef struct eval_decision {
	char *id;      /* decision_id, malloc'd */
	int arm;       /* index into the spec's arms; -1: not configured */
	double p;      /* logged propensity */
	double r;      /* reward, once resolved */
	char *bucket;  /* the Redis record's bkt, once resolved; malloc'd */
	eval_state state;
} eval_decision;

typedef struct eval_log {
	eval_decision *d;
	size_t n, cap;
	uint64_t records_read; /* every record up to the high watermarks */
	uint64_t undecodable;  /* of those, not a BanditDecision */
} eval_log;

static void eval_log_free(eval_log *log)
{
	for (size_t i = 0; i < log->n; i++) {
		free(log->d[i].id);
		free(log->d[i].bucket);
	}
	free(log->d);
	memset(log, 0, sizeof *log);
}

static int arm_of(const ls_campaign_spec *sp, const char *arm)
{
	for (size_t i = 0; i < sp->n_arms; i++)
		if (strcmp(sp->arms[i], arm) == 0)
			return (int)i;
	return -1;
}

static int eval_log_add(eval_log *log, const ls_campaign_spec *sp,
			const ls_bandit_decision *bd)
{
	if (log->n == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 1024;
		eval_decision *d = realloc(log->d, cap * sizeof *d);
		if (d == NULL)
			return -1;
		log->d = d;
		log->cap = cap;
	}
	eval_decision *e = &log->d[log->n];
	memset(e, 0, sizeof *e);
	e->id = strdup(bd->decision_id);
	if (e->id == NULL)
		return -1;
	e->arm = arm_of(sp, bd->variant_id);
	e->p = bd->propensity;
	e->state = e->arm < 0 ? EVAL_RETIRED_ARM : EVAL_USED;
	log->n++;
	return 0;
}


/* Milliseconds left before deadline, at least 1 so librdkafka calls that
   take 0 as "do not wait" still make one attempt. */
static int ms_left(int64_t deadline)
{
	int64_t left = deadline - ls_clock_mono_ms();
	return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Read the decisions topic from each partition's start to its high
 * watermark as of now (assign, not subscribe: no consumer group is joined
 * and no offset is committed) and keep the decisions of sp's campaign.
 * Records produced after the watermarks were taken are left for the next
 * run. 0, or -1 with a reason in err (the broker unreachable, the topic
 * missing, the deadline passed before the watermarks were reached).
 */
static int eval_read_log(const ls_config *cfg, const ls_campaign_spec *sp,
			 int64_t timeout_ms, eval_log *log, char *err, size_t errlen)
{
	const char *topic = cfg->kafka.topics.decisions;
	int64_t deadline = ls_clock_mono_ms() + timeout_ms;
	rd_kafka_conf_t *conf = ls_kafka_conf_new(cfg, true, err, errlen);
	if (conf == NULL)
		return -1;
	/* librdkafka wants a group.id even to assign(); this one never joins
	   (no subscribe) or commits, and is not the daemon's group */
	char why[512], group[512];
	snprintf(group, sizeof group, "%s.leadscorectl-evaluate", cfg->kafka.group_id);
	if (rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
	if (rk == NULL) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_poll_set_consumer(rk);
	int rc = -1;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	int64_t *high = NULL;
	ls_codec *codec = NULL;
	ls_arena arena;
	ls_arena_init(&arena, 0);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto out;
	}
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, ms_left(deadline));
	rd_kafka_topic_destroy(rkt);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: metadata of %s: %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 rd_kafka_err2str(md->topic_cnt == 1 ? md->topics[0].err
							     : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto out;
	}
	int np = md->topics[0].partition_cnt;
	int32_t max_id = -1;
	for (int i = 0; i < np; i++)
		if (md->topics[0].partitions[i].id > max_id)
			max_id = md->topics[0].partitions[i].id;
	high = calloc((size_t)max_id + 2, sizeof *high);
	parts = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
	codec = ls_codec_new(err, errlen);
	if (high == NULL || parts == NULL || codec == NULL) {
		if (codec != NULL)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	int open = 0; /* partitions not yet read to their high watermark */
	for (int i = 0; i < np; i++) {
		int32_t id = md->topics[0].partitions[i].id;
		int64_t lo, hi;
		e = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, ms_left(deadline));
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "kafka: watermarks of %s:%" PRId32 ": %s", topic, id,
				 rd_kafka_err2str(e));
			goto out;
		}
		high[id] = hi;
		if (hi > lo) {
			rd_kafka_topic_partition_list_add(parts, topic, id)->offset = lo;
			open++;
		}
	}
	e = rd_kafka_assign(rk, parts);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: assign %s: %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	char last_err[256] = "";
	while (open > 0) {
		if (ls_clock_mono_ms() >= deadline) {
			snprintf(err, errlen,
				 "kafka: timed out reading %s to its end (%d partitions left, %" PRIu64
				 " records read%s%s)", topic, open, log->records_read,
				 last_err[0] ? "; last error: " : "", last_err);
			goto out;
		}
		int wait = ms_left(deadline);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, wait < EVAL_POLL_MS ? wait : EVAL_POLL_MS);
		if (m == NULL)
			continue;
		int32_t id = m->partition;
		bool known = m->rkt != NULL && id >= 0 && id <= max_id &&
			     strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* at the partition's end as of now: at or past the
			   watermark (before it only with isolation.level
			   read_committed and a transaction still open) */
			if (known && high[id] >= 0) {
				high[id] = -1;
				open--;
			}
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			/* transient (a broker restarting) until the deadline says otherwise */
			snprintf(last_err, sizeof last_err, "%s", rd_kafka_message_errstr(m));
		} else if (known && high[id] >= 0 && m->offset < high[id]) {
			log->records_read++;
			ls_bandit_decision bd;
			ls_codec_error ce;
			ls_arena_reset(&arena);
			if (ls_codec_decode_bandit_decision(codec, m->payload, m->len, &arena, &bd, &ce) != 0) {
				if (ce.reason == LS_CODEC_INTERNAL) {
					snprintf(err, errlen, "decoding: %s", ce.detail);
					rd_kafka_message_destroy(m);
					goto out;
				}
				log->undecodable++;
			} else if (strcmp(bd.campaign_id, sp->id) == 0 &&
				   eval_log_add(log, sp, &bd) != 0) {
				snprintf(err, errlen, "out of memory");
				rd_kafka_message_destroy(m);
				goto out;
			}
			if (m->offset + 1 >= high[id]) {
				high[id] = -1;
				open--;
			}
		} else if (known && high[id] >= 0) {
			/* past the watermark: an offset gap (compaction, a
			   transaction marker) ended the range */
			high[id] = -1;
			open--;
		}
		rd_kafka_message_destroy(m);
	}
	rc = 0;
out:
	ls_arena_free(&arena);
	ls_codec_free(codec);
	if (parts != NULL)
		rd_kafka_topic_partition_list_destroy(parts);
	free(high);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

static int by_id(const void *a, const void *b)
{
	const eval_decision *x = a, *y = b;
	return strcmp(x->id, y->id);
}

/* A decision logged twice (a producer retry) is one decision: keep the
   first of each id after sorting, mark the others. */
static void eval_dedupe(eval_log *log)
{
	if (log->n > 1)
		qsort(log->d, log->n, sizeof *log->d, by_id);
	for (size_t i = 1; i < log->n; i++)
		if (strcmp(log->d[i].id, log->d[i - 1].id) == 0)
			log->d[i].state = EVAL_DUPLICATE;
}

/* "<prefix>{bandit:<campaign>}:<suffix>"; -1 when it does not fit. */
static int eval_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		    const char *suffix)
{
	int n = snprintf(buf, cap, "%s{bandit:%s}:%s", prefix, campaign, suffix);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

static bool reply_str(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_STRING;
}

/* Classify d from its HMGET st arm bkt rw reply. */
static int eval_classify(const ls_campaign_spec *sp, eval_decision *d, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		d->state = EVAL_BAD_RECORD; /* WRONGTYPE: not a decision's hash */
		return 0;
	}
	const redisReply *st = r->element[0], *arm = r->element[1], *bkt = r->element[2],
			 *rw = r->element[3];
	if (st->type == REDIS_REPLY_NIL) {
		d->state = EVAL_NO_RECORD;
		return 0;
	}
	if (!reply_str(st) || !reply_str(arm) || strcmp(arm->str, sp->arms[d->arm]) != 0) {
		d->state = EVAL_BAD_RECORD;
		return 0;
	}
	if (strcmp(st->str, "0") == 0) {
		d->state = EVAL_NOT_ACTIVATED;
		return 0;
	}
	if (strcmp(st->str, "2") != 0) {
		d->state = strcmp(st->str, "1") == 0 ? EVAL_UNRESOLVED : EVAL_BAD_RECORD;
		return 0;
	}
	char *end = NULL;
	long long micro = reply_str(rw) ? strtoll(rw->str, &end, 10) : -1;
	if (!reply_str(rw) || end == rw->str || *end != '\0' || !reply_str(bkt)) {
		d->state = EVAL_BAD_RECORD;
		return 0;
	}
	/* out of [0,1]: left to ls_ope, which rejects and counts it */
	d->r = (double)micro / EVAL_MICRO;
	d->bucket = strdup(bkt->str);
	if (d->bucket == NULL)
		return -1;
	d->state = EVAL_USED;
	return 0;
}

/*
 * Look up every decision still EVAL_USED in Redis, EVAL_BATCH HMGETs per
 * pipelined round trip, and classify it by its record. 0, or -1 with a
 * reason (I/O, out of memory).
 */
static int eval_fetch(redisContext *rc, const char *prefix, const ls_campaign_spec *sp,
		      eval_log *log, char *err, size_t errlen)
{
	char key[KEY_MAX], suffix[LS_DECISION_ID_MAX + 3];
	size_t *idx = malloc(EVAL_BATCH * sizeof *idx);
	if (idx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rcode = -1;
	for (size_t start = 0; start < log->n;) {
		size_t nb = 0;
		for (; start < log->n && nb < EVAL_BATCH; start++) {
			eval_decision *d = &log->d[start];
			if (d->state != EVAL_USED)
				continue;
			snprintf(suffix, sizeof suffix, "d:%s", d->id);
			if (strlen(d->id) >= LS_DECISION_ID_MAX ||
			    eval_key(key, sizeof key, prefix, sp->id, suffix) < 0) {
				d->state = EVAL_BAD_RECORD; /* not an id the daemon makes */
				continue;
			}
			const char *argv[6] = { "HMGET", key, "st", "arm", "bkt", "rw" };
			size_t lens[6] = { 5, strlen(key), 2, 3, 3, 2 };
			if (redisAppendCommandArgv(rc, 6, argv, lens) != REDIS_OK) {
				snprintf(err, errlen, "redis: %s", rc->errstr);
				goto out;
			}
			idx[nb++] = start;
		}
		for (size_t k = 0; k < nb; k++) {
			redisReply *r = NULL;
			if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
				snprintf(err, errlen, "redis: %s", rc->err ? rc->errstr : "no reply");
				goto out;
			}
			int c = eval_classify(sp, &log->d[idx[k]], r);
			freeReplyObject(r);
			if (c != 0) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
	}
	rcode = 0;
out:
	free(idx);
	return rcode;
}

/* The posterior target: one probability vector per bucket of the
   evaluated decisions, names sorted for bsearch. */
typedef struct eval_posterior {
	size_t n_arms;
	size_t n;        /* buckets, names[0] = "" when used */
	char **names;    /* borrowed from the decisions */
	double *probs;   /* n * n_arms */
} eval_posterior;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void eval_posterior_free(eval_posterior *ep)
{
	free(ep->names);
	free(ep->probs);
	memset(ep, 0, sizeof *ep);
}

static const double *eval_posterior_vector(const eval_posterior *ep, const char *bucket)
{
	char *const *hit = bsearch(&bucket, ep->names, ep->n, sizeof *ep->names, cmp_str);
	return hit != NULL ? &ep->probs[(size_t)(hit - ep->names) * ep->n_arms] : NULL;
}

/*
 * Build the current posterior policy for every bucket the evaluated
 * decisions were made in: the counts hash read once (HGETALL, so every
 * bucket sees one moment) and read as the daemon reads it
 * (ls_campaign_posterior_load: a thin bucket, or one beyond max_buckets,
 * falls back to the campaign-wide counts exactly as decisions do), and
 * each bucket's vector from propensity_draws draws with a fixed seed.
 * 0, or -1 with a reason.
 */
static int eval_posterior_build(redisContext *rc, const char *prefix,
				const ls_campaign_spec *sp, const eval_log *log,
				eval_posterior *ep, char *err, size_t errlen)
{
	memset(ep, 0, sizeof *ep);
	size_t na = sp->n_arms;
	ep->n_arms = na;
	ep->names = malloc((log->n ? log->n : 1) * sizeof *ep->names);
	if (ep->names == NULL)
		goto nomem;
	for (size_t i = 0; i < log->n; i++)
		if (log->d[i].state == EVAL_USED)
			ep->names[ep->n++] = log->d[i].bucket;
	if (ep->n > 1)
		qsort(ep->names, ep->n, sizeof *ep->names, cmp_str);
	size_t w = 0;
	for (size_t i = 0; i < ep->n; i++)
		if (w == 0 || strcmp(ep->names[w - 1], ep->names[i]) != 0)
			ep->names[w++] = ep->names[i];
	ep->n = w;
	char key[KEY_MAX];
	if (eval_key(key, sizeof key, prefix, sp->id, "counts") < 0) {
		snprintf(err, errlen, "key prefix too long");
		return -1;
	}
	ep->probs = calloc((ep->n ? ep->n : 1) * na, sizeof *ep->probs);
	if (ep->probs == NULL)
		goto nomem;
	int rcode = -1;
	ls_campaign_posterior post = { 0 };
	redisReply *h = redisCommand(rc, "HGETALL %s", key);
	if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "redis: HGETALL %s: %s", key,
			 h == NULL ? rc->errstr : h->type == REDIS_REPLY_ERROR ? h->str : "not a hash");
		goto out;
	}
	/* the daemon's own reading of the counters: same buckets, same cap */
	if (ls_campaign_posterior_load(sp, h, &post) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ep->n; i++) {
		ls_rng rng;
		ls_rng_seed(&rng, EVAL_SEED ^ XXH3_64bits(ep->names[i], strlen(ep->names[i])));
		size_t bucket = ep->names[i][0] == '\0'
					? LS_BANDIT_CAMPAIGN
					: ls_campaign_posterior_bucket(&post, ep->names[i]);
		if (bucket == SIZE_MAX)
			bucket = LS_BANDIT_CAMPAIGN; /* no counts of its own: decides campaign-wide */
		int c = ls_bandit_probabilities(post.b, bucket, &rng, &ep->probs[i * na], na);
		if (c != LS_BANDIT_OK) {
			snprintf(err, errlen, "bandit probabilities: %s", ls_bandit_result_str(c));
			goto out;
		}
	}
	rcode = 0;
out:
	ls_campaign_posterior_free(&post);
	if (h != NULL)
		freeReplyObject(h);
	return rcode;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static json_t *json_estimate(const ls_ope_estimate *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "value", json_num(e->value));
	json_object_set_new(o, "se", json_num(e->se));
	json_object_set_new(o, "ci95", json_pack("[oo]", json_num(e->ci_low), json_num(e->ci_high)));
	return o;
}

typedef struct eval_opts {
	const ls_campaign_spec *sp;
	eval_target target;
	size_t target_arm;      /* EVAL_ARM */
	const char *target_name;
	double clip;            /* 0: none */
	int64_t timeout_ms;
} eval_opts;

static int cmd_evaluate(const ls_config *cfg, const eval_opts *eo)
{
	char err[1024];
	const ls_campaign_spec *sp = eo->sp;
	eval_log log = { 0 };
	eval_posterior ep = { 0 };
	redisContext *rc = NULL;
	ls_redis_target target = { 0 };
	int rcode = 1;
	if (eval_read_log(cfg, sp, eo->timeout_ms, &log, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	eval_dedupe(&log);
	if (ls_redis_url_parse(cfg->redis.url, &target, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: redis: %s\n", err);
		goto out;
	}
	rc = ls_redis_connect(&target, cfg->redis.connect_timeout_ms,
			      cfg->redis.command_timeout_ms, err, sizeof err);
	if (rc == NULL || eval_fetch(rc, cfg->redis.key_prefix, sp, &log, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s%s\n", rc == NULL ? "redis: " : "", err);
		goto out;
	}
	if (eo->target == EVAL_POSTERIOR &&
	    eval_posterior_build(rc, cfg->redis.key_prefix, sp, &log, &ep, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	ls_ope acc, on;
	if (ls_ope_init(&acc, eo->clip) != LS_OPE_OK || ls_ope_init(&on, 0) != LS_OPE_OK) {
		fprintf(stderr, "leadscorectl: bad clip\n");
		goto out;
	}
	uint64_t counts[EVAL__COUNT] = { 0 };
	for (size_t i = 0; i < log.n; i++) {
		eval_decision *d = &log.d[i];
		if (d->state == EVAL_USED) {
			/* NaN if a helper refuses (it cannot here): then rejected, not 0 */
			double pi = NAN;
			size_t arm = (size_t)d->arm;
			if (eo->target == EVAL_UNIFORM)
				(void)ls_ope_target_uniform(sp->n_arms, &pi);
			else if (eo->target == EVAL_ARM)
				(void)ls_ope_target_fixed(sp->n_arms, eo->target_arm, arm, &pi);
			else
				(void)ls_ope_target_vector(eval_posterior_vector(&ep, d->bucket),
							   sp->n_arms, arm, &pi);
			/* the logging policy's own value: pi = p, every weight 1 */
			if (ls_ope_add(&acc, d->p, d->r, pi) == LS_OPE_OK)
				(void)ls_ope_add(&on, d->p, d->r, d->p);
			else
				d->state = EVAL_REJECTED;
		}
		counts[d->state]++;
	}
	ls_ope_result res, onres;
	(void)ls_ope_finish(&acc, &res); /* LS_OPE_ERR_EMPTY still fills it */
	(void)ls_ope_finish(&on, &onres);

	json_t *o = json_object();
	json_object_set_new(o, "campaign", json_string(sp->id));
	json_object_set_new(o, "topic", json_string(cfg->kafka.topics.decisions));
	json_object_set_new(o, "target", json_string(eo->target_name));
	json_object_set_new(o, "clip", eo->clip > 0 ? json_real(eo->clip) : json_null());
	json_t *arms = json_array();
	for (size_t i = 0; i < sp->n_arms; i++)
		json_array_append_new(arms, json_string(sp->arms[i]));
	json_object_set_new(o, "arms", arms);
	json_object_set_new(o, "records_read", json_integer((json_int_t)log.records_read));
	json_object_set_new(o, "undecodable", json_integer((json_int_t)log.undecodable));
	json_object_set_new(o, "logged", json_integer((json_int_t)log.n));
	json_object_set_new(o, "n", json_integer((json_int_t)res.n));
	json_t *sk = json_object();
	for (int s = EVAL_USED + 1; s < EVAL__COUNT; s++)
		json_object_set_new(sk, eval_state_names[s], json_integer((json_int_t)counts[s]));
	json_object_set_new(o, "skipped", sk);
	json_object_set_new(o, "ips", json_estimate(&res.ips));
	json_object_set_new(o, "snips", json_estimate(&res.snips));
	json_object_set_new(o, "logging_policy", json_estimate(&onres.ips));
	json_object_set_new(o, "ess", json_num(res.ess));
	json_object_set_new(o, "mean_weight", json_num(res.mean_weight));
	json_object_set_new(o, "max_weight", json_num(res.max_weight));
	json_object_set_new(o, "max_raw_weight", json_num(res.max_raw_weight));
	json_object_set_new(o, "n_clipped", json_integer((json_int_t)res.n_clipped));
	if (eo->target == EVAL_POSTERIOR) {
		json_t *tp = json_object();
		for (size_t i = 0; i < ep.n; i++) {
			json_t *v = json_object();
			for (size_t a = 0; a < sp->n_arms; a++)
				json_object_set_new(v, sp->arms[a], json_real(ep.probs[i * sp->n_arms + a]));
			json_object_set_new(tp, ep.names[i], v);
		}
		json_object_set_new(o, "target_probabilities", tp);
	}
	rcode = print_json(o);
out:
	if (rc != NULL)
		redisFree(rc);
	ls_redis_target_free(&target);
	eval_posterior_free(&ep);
	eval_log_free(&log);
	return rcode;
}

/*
 * Check evaluate's arguments against cfg: 0 with *eo filled, or 2 (a usage
 * error) with a message on stderr.
 */
static int eval_parse(const ls_config *cfg, const char *campaign, const char *target,
		      const char *clip, const char *timeout, eval_opts *eo)
{
	memset(eo, 0, sizeof *eo);
	for (size_t i = 0; i < cfg->campaigns.n && eo->sp == NULL; i++)
		if (strcmp(cfg->campaigns.specs[i].id, campaign) == 0)
			eo->sp = &cfg->campaigns.specs[i];
	if (eo->sp == NULL) {
		fprintf(stderr, "leadscorectl: campaign '%s' is not configured\n", campaign);
		return 2;
	}
	eo->target_name = target != NULL ? target : "uniform";
	if (strcmp(eo->target_name, "uniform") == 0) {
		eo->target = EVAL_UNIFORM;
	} else if (strcmp(eo->target_name, "posterior") == 0) {
		eo->target = EVAL_POSTERIOR;
	} else if (strncmp(eo->target_name, "arm:", 4) == 0) {
		int a = arm_of(eo->sp, eo->target_name + 4);
		if (a < 0) {
			fprintf(stderr, "leadscorectl: campaign '%s' has no arm '%s'\n", campaign,
				eo->target_name + 4);
			return 2;
		}
		eo->target = EVAL_ARM;
		eo->target_arm = (size_t)a;
	} else {
		fprintf(stderr, "leadscorectl: --target must be uniform, arm:VARIANT or "
				"posterior, not '%s'\n", eo->target_name);
		return 2;
	}
	if (clip != NULL) {
		char *end;
		eo->clip = strtod(clip, &end);
		if (end == clip || *end != '\0' || !(eo->clip >= 0) || eo->clip > LS_OPE_MAX_WEIGHT) {
			fprintf(stderr, "leadscorectl: --clip must be a weight >= 0 (0: none), "
					"not '%s'\n", clip);
			return 2;
		}
	}
	eo->timeout_ms = EVAL_DEFAULT_TIMEOUT_MS;
	if (timeout != NULL) {
		char *end;
		long long t = strtoll(timeout, &end, 10);
		if (end == timeout || *end != '\0' || t <= 0 || t > EVAL_MAX_TIMEOUT_MS) {
			fprintf(stderr, "leadscorectl: --timeout-ms must be 1..%d, not '%s'\n",
				EVAL_MAX_TIMEOUT_MS, timeout);
			return 2;
		}
		eo->timeout_ms = t;
	}
	return 0;
}

int main(int argc, char **argv)
{
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
	if (ls_config_load(path, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s", err);
		return 1;
	}
	/* librdkafka's lines reach stderr through ls_log */
	ls_config_mask_secrets(&cfg);
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
	ls_store_settings ss = ls_pipeline_store_settings(&cfg);
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
