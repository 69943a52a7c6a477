/*
 * ls_http_api.c - the /v1/ API's route handlers: models, leads and
 * campaigns (decisions, activations, rewards), and the JSON they answer
 * with.
 *
 * Why apart from ls_http.c: that file is the server (libmicrohttpd's
 * callbacks, connection limits, the request-timeout sweeper, routing,
 * the operations routes, start and stop); this one is what the API
 * means: reading a lead from Redis, scoring it with the published
 * snapshot, asking the campaign service. A handler gets a request
 * already authenticated, routed and size-checked, and answers through
 * ls_http_send_json/ls_http_send_error; what the two files share is in
 * ls_http_internal.h.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ls_clock.h"
#include "ls_http_internal.h"
#include "ls_http_req.h"
#include "ls_log.h"
#include "ls_scorestate.h"
#include "ls_utf8.h"

/* --------------------------------------------------------- responses */

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/*
 * A model is mature once it has learned `maturity` labels, 12 % of them
 * positive (ls_score_maturity; by default 1,000 and 120, the bar
 * Salesforce Einstein sets before a segment gets its own model); with
 * shrink_young its scores are shrunk until then.
 */
static bool mature(const ls_model_spec *spec, const ls_scorer_model_stats *s)
{
	return ls_score_maturity(s->positives, s->negatives, spec->maturity) >= 1.0;
}

/* -------------------------------------------------------- snapshots */

/* The name of tier index tier of model as the published snapshot's specs
 * say (the config's change in place on a reload); false when unknown. */
static bool snap_tier_name(ls_http *h, const char *model, int tier, char *buf,
			   size_t buflen)
{
	snap_ref *r = ls_http_ref_take(h);
	const char *name = NULL;
	for (size_t i = 0; r != NULL && name == NULL && i < r->snap->n; i++)
		if (strcmp(r->snap->m[i].spec.name, model) == 0)
			name = ls_tiers_name(&r->snap->m[i].spec.tiers, tier);
	if (name != NULL)
		snprintf(buf, buflen, "%s", name);
	ls_http_ref_drop(h, r);
	return name != NULL;
}

/* ------------------------------------------------------------ models */

enum MHD_Result ls_http_get_model(ls_http *h, struct MHD_Connection *c,
				 const char *name)
{
	snap_ref *r = ls_http_ref_take(h);
	if (r == NULL)
		return ls_http_send_error(c, 503, "not_ready",
				  "the models have not been loaded yet");
	const ls_scorer_snapshot_model *m = NULL;
	for (size_t i = 0; i < r->snap->n; i++)
		if (strcmp(r->snap->m[i].spec.name, name) == 0)
			m = &r->snap->m[i];
	enum MHD_Result rc;
	if (m == NULL) {
		rc = ls_http_send_error(c, 404, "unknown_model", "no model of that name is configured");
	} else {
		const ls_scorer_model_stats *s = &m->stats;
		json_t *o = json_object();
		json_object_set_new(o, "model", json_string(m->spec.name));
		json_object_set_new(o, "version", json_integer((json_int_t)s->version));
		json_object_set_new(o, "positives", json_integer((json_int_t)s->positives));
		json_object_set_new(o, "negatives", json_integer((json_int_t)s->negatives));
		json_object_set_new(o, "labels_in_window", json_integer((json_int_t)s->eval_labels));
		json_object_set_new(o, "eval_window", json_integer(m->spec.eval_window));
		json_object_set_new(o, "auc", num_or_null(s->auc));
		json_object_set_new(o, "logloss", num_or_null(s->logloss));
		json_object_set_new(o, "ece", num_or_null(s->ece));
		json_object_set_new(o, "shadow", json_boolean(m->spec.shadow));
		json_object_set_new(o, "mature", json_boolean(mature(&m->spec, s)));
		rc = ls_http_send_json(c, 200, o);
	}
	ls_http_ref_drop(h, r);
	return rc;
}

/* ------------------------------------------------------------- leads */

/* This worker's Redis connection, connected; NULL with a reason. */
static ls_store *thread_store(ls_http *h, char *err, size_t errlen)
{
	ls_store *st = pthread_getspecific(h->store_key);
	if (st == NULL) {
		st = ls_store_new(&h->env.store, err, errlen);
		if (st == NULL || pthread_setspecific(h->store_key, st) != 0) {
			ls_store_free(st);
			return NULL;
		}
	}
	if (!ls_store_connected(st) && ls_store_connect(st, err, errlen) != 0)
		return NULL;
	return st;
}

static const char *label_name(int label)
{
	static const char *const names[] = { "none", "positive", "negative", "timeout" };
	return label >= 0 && label <= 3 ? names[label] : "unknown";
}

/* Read-time decay toward the model's base rate over idle_ms of
 * inactivity; NaN while the model has no labels to give a base rate. */
static double decayed(const ls_model_spec *spec, const ls_ftrl *model, double score,
		      int64_t idle_ms)
{
	if (spec->decay_half_life_ms <= 0)
		return score;
	uint64_t pos = ls_ftrl_positives(model), neg = ls_ftrl_negatives(model);
	if (pos + neg == 0)
		return NAN;
	return ls_scorestate_decay(score, (double)pos / (double)(pos + neg), idle_ms,
				  spec->decay_half_life_ms);
}

/* Per model: last published score and what the current model says now. */
static json_t *lead_scores(ls_http *h, const ls_lead *lead, snap_ref *r)
{
	json_t *scores = json_object();
	ls_scorestate ls;
	size_t len;
	const uint8_t *ext = ls_lead_ext(lead, &len);
	if (ls_scorestate_decode(ext, len, &ls, NULL, 0) != 0)
		ls_scorestate_init(&ls);
	ls_example_ctx ex;
	bool have_ex = r != NULL && ls_example_ctx_init(&ex, h->env.set, h->env.lead_conf) == 0;
	int64_t wm = ls_lead_watermark(lead), now = ls_clock_wall_ms();
	int64_t idle_ms = wm >= 0 && now > wm ? now - wm : 0;
	/* the snapshot's specs, not the config's: a reload edits those */
	size_t n = r != NULL ? r->snap->n : 0;
	for (size_t i = 0; i < n; i++) {
		const ls_scorer_snapshot_model *sm = &r->snap->m[i];
		const ls_model_spec *spec = &sm->spec;
		json_t *o = json_object();
		ls_scorestate_model *rec = ls_scorestate_get(&ls, ls_scorestate_key(spec->name), false);
		bool has = rec != NULL && !isnan(rec->score);
		json_object_set_new(o, "score", has ? json_real(rec->score) : json_null());
		json_object_set_new(o, "decayed_score",
				    has ? num_or_null(decayed(spec, sm->model, rec->score, idle_ms))
					: json_null());
		/* NULL for a stored tier past a reload's shorter list */
		const char *tier = has ? ls_tiers_name(&spec->tiers, rec->tier) : NULL;
		json_object_set_new(o, "tier", tier != NULL ? json_string(tier) : json_null());
		json_object_set_new(o, "version", json_integer(rec ? (json_int_t)rec->version : 0));
		json_object_set_new(o, "label", json_string(label_name(rec ? rec->label : 0)));
		double p;
		if (have_ex &&
		    ls_example_build(&ex, spec, sm->model, lead, LS_LEAD_AT_WATERMARK) == 0 &&
		    ls_ftrl_predict(sm->model, &ex.x, &p) == 0) {
			p = ls_scorer_published(sm->model, spec, p);
			json_object_set_new(o, "current_score", json_real(p));
			json_object_set_new(o, "model_mature", json_boolean(mature(spec, &sm->stats)));
			ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
			size_t np = 0, nn = 0;
			json_t *f = json_array();
			if (ls_ftrl_explain(sm->model, &ex.x, pos, &np, neg, &nn) == 0) {
				for (size_t k = 0; k < np; k++)
					json_array_append_new(f, json_pack("{s:s,s:f}", "name", pos[k].name,
									   "contribution", pos[k].contribution));
				for (size_t k = 0; k < nn; k++)
					json_array_append_new(f, json_pack("{s:s,s:f}", "name", neg[k].name,
									   "contribution", neg[k].contribution));
			}
			json_object_set_new(o, "factors", f);
		} else {
			json_object_set_new(o, "current_score", json_null());
			json_object_set_new(o, "factors", json_null());
		}
		json_object_set_new(scores, spec->name, o);
	}
	if (have_ex)
		ls_example_ctx_free(&ex);
	return scores;
}

/* Redis failed a request: say why in the log (rate-limited; every
   request fails while Redis is down), never in the answer. */
static void log_redis_unavailable(ls_http *h, const char *err)
{
	uint64_t sup;
	if (ls_http_ratelog_due(h, RL_REDIS, &sup)) {
		char q[600];
		ls_warn(COMPONENT, "redis unavailable for an HTTP request",
			"error=%s suppressed=%" PRIu64, ls_log_quote(err, q, sizeof q), sup);
	}
}

/* 503 without the reason, which names the Redis socket or address: that
   goes to the log. */
static enum MHD_Result redis_unavailable(ls_http *h, struct MHD_Connection *c, const char *err)
{
	log_redis_unavailable(h, err);
	return ls_http_send_error(c, 503, "redis_unavailable", "redis unavailable");
}

enum MHD_Result ls_http_get_lead(ls_http *h, struct MHD_Connection *c,
				const char *lead_id)
{
	size_t idlen = strlen(lead_id);
	if (idlen == 0) /* longer than pipeline.max_id_bytes: refused by route() */
		return ls_http_send_error(c, 400, "bad_lead_id", "a lead id is not empty");
	char err[512];
	ls_store *st = thread_store(h, err, sizeof err);
	if (st == NULL)
		return redis_unavailable(h, c, err);
	ls_store_blob blob;
	const char *ids[1] = { lead_id };
	if (ls_store_load(st, ids, 1, &blob, err, sizeof err) != 0)
		return redis_unavailable(h, c, err);
	if (blob.data == NULL)
		return ls_http_send_error(c, 404, "unknown_lead", "no state is stored for this lead");
	ls_lead *lead = NULL;
	if (ls_lead_decode(h->env.lead_conf, blob.data, blob.len, &lead, err, sizeof err) != 0)
		return ls_http_send_error(c, 500, "corrupt_state", err);
	size_t nv = h->env.set->n_values;
	double *vals = malloc((nv ? nv : 1) * sizeof *vals);
	if (vals == NULL || ls_lead_features(lead, h->env.lead_conf, LS_LEAD_AT_WATERMARK,
					     vals, nv) < 0) {
		free(vals);
		ls_lead_free(lead);
		return ls_http_send_error(c, 500, "internal", "cannot compute features");
	}
	json_t *o = json_object();
	json_object_set_new(o, "lead_id", json_string(lead_id));
	json_object_set_new(o, "watermark", json_integer(ls_lead_watermark(lead)));
	json_t *feats = json_object();
	for (size_t i = 0; i < nv; i++)
		json_object_set_new(feats, ls_feature_set_value_name(h->env.set, i),
				    num_or_null(vals[i]));
	json_object_set_new(o, "features", feats);
	json_t *attrs = json_object(), *metrics = json_object();
	const char *k, *v;
	double d;
	for (size_t i = 0; ls_lead_attribute_at(lead, i, &k, &v); i++)
		json_object_set_new(attrs, k, json_string(v));
	for (size_t i = 0; ls_lead_metric_at(lead, i, &k, &d); i++)
		json_object_set_new(metrics, k, num_or_null(d));
	json_object_set_new(o, "attributes", attrs);
	json_object_set_new(o, "metrics", metrics);
	snap_ref *r = ls_http_ref_take(h);
	json_object_set_new(o, "scores", lead_scores(h, lead, r));
	ls_http_ref_drop(h, r);
	free(vals);
	ls_lead_free(lead);
	return ls_http_send_json(c, 200, o);
}

/* ---------------------------------------------------------- campaigns */

/* The body as a JSON object, or an error response already queued. */
static json_t *body_object(struct MHD_Connection *c, const req *rq, enum MHD_Result *sent)
{
	char detail[300];
	json_t *o = ls_http_req_object(rq->body, rq->body_len, detail, sizeof detail);
	if (o == NULL)
		*sent = ls_http_send_error(c, 400, "bad_json", detail);
	return o;
}

static enum MHD_Result campaign_error(struct MHD_Connection *c, int rc)
{
	switch (rc) {
	case LS_CAMPAIGN_UNKNOWN_CAMPAIGN:
		return ls_http_send_error(c, 404, "unknown_campaign", "no campaign of that id is configured");
	case LS_CAMPAIGN_UNKNOWN_DECISION:
		return ls_http_send_error(c, 404, "unknown_decision",
				  "no such decision (never made, or expired)");
	case LS_CAMPAIGN_NOT_ACTIVATED:
		return ls_http_send_error(c, 409, "not_activated",
				  "the decision has not been activated; activate it first");
	case LS_CAMPAIGN_TOO_LATE:
		return ls_http_send_error(c, 409, "reward_window_passed",
				  "the decision's reward window has passed");
	case LS_CAMPAIGN_BAD_REQUEST:
		return ls_http_send_error(c, 400, "bad_request", "invalid value");
	case LS_CAMPAIGN_UNAVAILABLE:
		return ls_http_send_error(c, 503, "unavailable",
				  "campaign state is not loaded or Redis is unreachable");
	default:
		return ls_http_send_error(c, 500, "internal", ls_campaign_result_str(rc));
	}
}

/*
 * The keys and values fill_context adds to a request: the request points
 * into them, so the caller keeps them as long as the request (a local
 * keys[] here once went out of scope while rq still pointed into it).
 */
typedef struct filled_context {
	char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX];
	char vals[LS_CAMPAIGN_MAX_CONTEXT][LS_CAMPAIGN_CTX_VALUE_MAX + 1];
} filled_context;

/*
 * Context keys a campaign buckets by but the request left out are read
 * from the lead's stored state: its tier in tier_model and its profile
 * attributes. One Redis read, only for such requests. A stored value
 * longer than LS_CAMPAIGN_CTX_VALUE_MAX bytes is cut at a code-point
 * boundary, so the bucket name, its Redis fields and the logged context
 * stay valid UTF-8.
 */
static void fill_context(ls_http *h, const char *campaign, const char *lead_id,
			 ls_campaign_request *rq, filled_context *fc)
{
	char tier_model[LS_MODEL_NAME_MAX];
	char tier_buf[LS_TIER_NAME_MAX];
	size_t nk = ls_campaign_context_keys(h->env.campaigns, campaign, fc->keys, tier_model);
	ls_lead *lead = NULL;
	bool loaded = false;
	for (size_t k = 0; k < nk && rq->n_context < LS_CAMPAIGN_MAX_REQ_CONTEXT; k++) {
		bool given = false;
		for (size_t j = 0; j < rq->n_context && !given; j++)
			given = strcmp(rq->ctx_key[j], fc->keys[k]) == 0;
		if (given)
			continue;
		if (!loaded) {
			loaded = true;
			char err[512];
			ls_store *st = thread_store(h, err, sizeof err);
			ls_store_blob blob;
			const char *ids[1] = { lead_id };
			if (st == NULL || ls_store_load(st, ids, 1, &blob, err, sizeof err) != 0 ||
			    blob.data == NULL ||
			    ls_lead_decode(h->env.lead_conf, blob.data, blob.len, &lead, err,
					   sizeof err) != 0)
				lead = NULL;
		}
		if (lead == NULL)
			break; /* unknown lead: its bucket stays "key=" */
		const char *v = NULL;
		if (strcmp(fc->keys[k], "tier") == 0) {
			size_t len;
			const uint8_t *ext = ls_lead_ext(lead, &len);
			ls_scorestate ls;
			if (ls_scorestate_decode(ext, len, &ls, NULL, 0) == 0) {
				ls_scorestate_model *m = ls_scorestate_get(&ls, ls_scorestate_key(tier_model), false);
				if (m != NULL && snap_tier_name(h, tier_model, m->tier, tier_buf,
								sizeof tier_buf))
					v = tier_buf;
			}
		} else {
			const char *ak, *av;
			for (size_t i = 0; v == NULL && ls_lead_attribute_at(lead, i, &ak, &av); i++)
				if (strcmp(ak, fc->keys[k]) == 0)
					v = av;
		}
		if (v == NULL)
			continue;
		size_t vl = ls_utf8_cut(v, LS_CAMPAIGN_CTX_VALUE_MAX);
		memcpy(fc->vals[k], v, vl);
		fc->vals[k][vl] = '\0';
		rq->ctx_key[rq->n_context] = fc->keys[k];
		rq->ctx_value[rq->n_context++] = fc->vals[k];
	}
	ls_lead_free(lead);
}

enum MHD_Result ls_http_post_decision(ls_http *h, struct MHD_Connection *c,
				     const char *campaign, const req *body)
{
	enum MHD_Result sent;
	json_t *o = body_object(c, body, &sent);
	if (o == NULL)
		return sent;
	ls_campaign_request rq;
	memset(&rq, 0, sizeof rq);
	rq.campaign = campaign;
	const char *why = ls_http_req_decision(o, (size_t)h->env.cfg->pipeline.max_id_bytes, &rq);
	if (why == ls_http_req_id_too_long) {
		json_decref(o);
		return ls_http_send_error(c, 400, "id_too_long", why);
	}
	if (why != NULL) {
		json_decref(o);
		return ls_http_send_error(c, 400, "bad_request", why);
	}
	filled_context fc;
	fill_context(h, campaign, rq.lead_id, &rq, &fc);
	ls_campaign_decision d;
	int rc = ls_campaign_decide(h->env.campaigns, &rq, &d);
	json_decref(o);
	if (rc != LS_CAMPAIGN_OK)
		return campaign_error(c, rc);
	json_t *out = json_pack("{s:s,s:s,s:s,s:f,s:b}", "decision_id", d.decision_id,
				"campaign", campaign, "variant", d.variant,
				"propensity", d.propensity, "activated", rq.activate);
	if (out == NULL)
		return MHD_NO;
	json_object_set_new(out, "bucket", d.bucket[0] ? json_string(d.bucket) : json_null());
	return ls_http_send_json(c, 200, out);
}

/* This worker's connection for the campaign service's scripts: the one
   its lead lookups use. NULL while Redis is down (the service then
   answers UNAVAILABLE). */
static redisContext *thread_redis(ls_http *h)
{
	char err[512];
	ls_store *st = thread_store(h, err, sizeof err);
	if (st == NULL) {
		log_redis_unavailable(h, err);
		return NULL;
	}
	return ls_store_redis(st);
}

enum MHD_Result ls_http_post_activate(ls_http *h, struct MHD_Connection *c, const char *id)
{
	bool already = false;
	int rc = ls_campaign_activate(h->env.campaigns, thread_redis(h), id, &already);
	if (rc != LS_CAMPAIGN_OK)
		return campaign_error(c, rc);
	return ls_http_send_json(c, 200, json_pack("{s:s,s:b}", "decision_id", id,
					   "already_active", already));
}

enum MHD_Result ls_http_post_reward(ls_http *h, struct MHD_Connection *c, const char *id,
				   const req *body)
{
	enum MHD_Result sent;
	json_t *o = body_object(c, body, &sent);
	if (o == NULL)
		return sent;
	double reward = 0;
	const char *why = ls_http_req_reward(o, &reward);
	json_decref(o);
	if (why != NULL)
		return ls_http_send_error(c, 400, "bad_request", why);
	bool counted = false;
	int rc = ls_campaign_reward(h->env.campaigns, thread_redis(h), id, reward, &counted);
	if (rc != LS_CAMPAIGN_OK)
		return campaign_error(c, rc);
	return ls_http_send_json(c, 200, json_pack("{s:s,s:f,s:b}", "decision_id", id, "reward", reward,
					   "counted", counted));
}

enum MHD_Result ls_http_get_campaign(ls_http *h, struct MHD_Connection *c, const char *id)
{
	ls_campaign_stats st;
	int rc = ls_campaign_stats_get(h->env.campaigns, id, &st);
	if (rc != LS_CAMPAIGN_OK)
		return campaign_error(c, rc);
	json_t *o = json_object();
	json_object_set_new(o, "campaign", json_string(st.spec.id));
	json_object_set_new(o, "snapshot_ts", json_integer(st.snapshot_ms));
	json_object_set_new(o, "min_share", json_real(st.spec.min_share));
	json_object_set_new(o, "min_bucket_trials", json_integer(st.spec.min_bucket_trials));
	json_object_set_new(o, "prior_trials", json_integer(st.spec.prior_trials));
	json_object_set_new(o, "refresh_trials", json_integer(st.spec.refresh_trials));
	json_object_set_new(o, "refresh_interval_ms", json_integer(st.spec.refresh_ms));
	json_t *buckets = json_array();
	for (size_t b = 0; b < st.n_buckets; b++) {
		const ls_campaign_bucket_stats *bs = &st.buckets[b];
		json_t *bo = json_object();
		json_object_set_new(bo, "bucket", b == 0 ? json_null() : json_string(bs->bucket));
		json_object_set_new(bo, "trials", json_integer((json_int_t)bs->trials));
		json_object_set_new(bo, "uses_campaign_posterior", json_boolean(bs->fallback));
		json_t *arms = json_array();
		for (size_t a = 0; a < bs->n_arms; a++) {
			const ls_campaign_arm_stats *as = &bs->arms[a];
			json_t *ao = json_object();
			json_object_set_new(ao, "variant", json_string(as->variant));
			json_object_set_new(ao, "trials", json_integer((json_int_t)as->st.trials));
			json_object_set_new(ao, "rewards", json_real(as->st.rewards));
			json_object_set_new(ao, "posterior_mean", num_or_null(as->st.mean));
			json_object_set_new(ao, "ci95", json_pack("[o,o]", num_or_null(as->st.ci_low),
								   num_or_null(as->st.ci_high)));
			json_object_set_new(ao, "p_best", num_or_null(as->st.p_best));
			json_object_set_new(ao, "probability", num_or_null(as->probability));
			json_array_append_new(arms, ao);
		}
		json_object_set_new(bo, "arms", arms);
		json_array_append_new(buckets, bo);
	}
	json_object_set_new(o, "buckets", buckets);
	free(st.buckets);
	return ls_http_send_json(c, 200, o);
}
