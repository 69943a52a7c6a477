/*
 * ls_http.c - HTTP API.
 *
 * Why a reference count and not a read-write lock: a handler may hold
 * the snapshot while it waits on Redis; a lock held across that wait
 * would stall the batch loop's publish. The mutex only guards the pointer
 * and the counts.
 */
#include "ls_http.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ls_err.h"
#include "ls_leadscore.h"
#include "ls_log.h"

#define COMPONENT "http"

typedef struct snap_ref {
	ls_scorer_snapshot *snap;
	unsigned refs; /* handlers holding it, plus 1 while current */
} snap_ref;

struct ls_http {
	ls_http_env env;
	ls_lead_conf lead_conf; /* a copy: a reload changes the loop's live */
	struct MHD_Daemon *mhd;
	uint16_t port;
	char *token; /* NULL: no authentication */
	pthread_mutex_t mu;
	snap_ref *cur;
	pthread_key_t store_key;
	bool key_ok;
};

/* Per request: the body read so far (routes with bodies come next). */
typedef struct req {
	size_t body_len;
	bool too_large;
} req;

/* -------------------------------------------------------- snapshots */

static void ref_drop(ls_http *h, snap_ref *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	bool last = --r->refs == 0;
	pthread_mutex_unlock(&h->mu);
	if (last) {
		ls_scorer_snapshot_free(r->snap);
		free(r);
	}
}

static snap_ref *ref_take(ls_http *h)
{
	pthread_mutex_lock(&h->mu);
	snap_ref *r = h->cur;
	if (r != NULL)
		r->refs++;
	pthread_mutex_unlock(&h->mu);
	return r;
}

void ls_http_publish(ls_http *h, ls_scorer_snapshot *snap)
{
	snap_ref *r = calloc(1, sizeof *r);
	if (r == NULL) {
		ls_scorer_snapshot_free(snap);
		return; /* handlers keep reading the previous one */
	}
	r->snap = snap;
	r->refs = 1;
	pthread_mutex_lock(&h->mu);
	snap_ref *old = h->cur;
	h->cur = r;
	pthread_mutex_unlock(&h->mu);
	ref_drop(h, old);
}

/* --------------------------------------------------------- responses */

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status,
				 json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
	json_decref(body);
	if (s == NULL)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status,
				  const char *error, const char *detail)
{
	json_t *o = json_pack("{s:s,s:s}", "error", error, "detail", detail);
	if (o == NULL)
		return MHD_NO;
	return send_json(c, status, o);
}

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/*
 * A model is mature once it has learned 1,000 labels of which 120
 * positive: the bar Salesforce Einstein sets before a segment gets its
 * own model. Before that its scores are published like any other, and
 * this flag tells clients to weigh them accordingly.
 */
#define MATURE_LABELS 1000
#define MATURE_POSITIVES 120

static bool mature(const ls_scorer_model_stats *s)
{
	return s->positives >= MATURE_POSITIVES &&
	       s->positives + s->negatives >= MATURE_LABELS;
}

/* ------------------------------------------------------------ models */

static enum MHD_Result get_model(ls_http *h, struct MHD_Connection *c,
				 const char *name)
{
	snap_ref *r = ref_take(h);
	if (r == NULL)
		return send_error(c, 503, "not_ready",
				  "the models have not been loaded yet");
	const ls_scorer_snapshot_model *m = NULL;
	for (size_t i = 0; i < r->snap->n; i++)
		if (strcmp(r->snap->m[i].spec->name, name) == 0)
			m = &r->snap->m[i];
	enum MHD_Result rc;
	if (m == NULL) {
		rc = send_error(c, 404, "unknown_model", "no model of that name is configured");
	} else {
		const ls_scorer_model_stats *s = &m->stats;
		json_t *o = json_object();
		json_object_set_new(o, "model", json_string(m->spec->name));
		json_object_set_new(o, "version", json_integer((json_int_t)s->version));
		json_object_set_new(o, "positives", json_integer((json_int_t)s->positives));
		json_object_set_new(o, "negatives", json_integer((json_int_t)s->negatives));
		json_object_set_new(o, "labels_in_window", json_integer((json_int_t)s->eval_labels));
		json_object_set_new(o, "eval_window", json_integer(m->spec->eval_window));
		json_object_set_new(o, "auc", num_or_null(s->auc));
		json_object_set_new(o, "logloss", num_or_null(s->logloss));
		json_object_set_new(o, "ece", num_or_null(s->ece));
		json_object_set_new(o, "shadow", json_boolean(m->spec->shadow));
		json_object_set_new(o, "mature", json_boolean(mature(s)));
		rc = send_json(c, 200, o);
	}
	ref_drop(h, r);
	return rc;
}

/* ------------------------------------------------------------- leads */

static void store_destroy(void *p) { ls_store_free(p); }

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

/* Per model: last published score and what the current model says now. */
static json_t *lead_scores(ls_http *h, const ls_lead *lead, snap_ref *r)
{
	json_t *scores = json_object();
	ls_leadscore ls;
	size_t len;
	const uint8_t *ext = ls_lead_ext(lead, &len);
	if (ls_leadscore_decode(ext, len, &ls, NULL, 0) != 0)
		ls_leadscore_init(&ls);
	ls_example_ctx ex;
	bool have_ex = r != NULL && ls_example_ctx_init(&ex, h->env.set, h->env.lead_conf) == 0;
	size_t n = r != NULL ? r->snap->n : 0;
	size_t n_specs;
	const ls_model_spec *specs = ls_config_models(h->env.cfg, &n_specs);
	for (size_t i = 0; i < n_specs; i++) {
		const ls_model_spec *spec = &specs[i];
		json_t *o = json_object();
		ls_leadscore_model *rec = ls_leadscore_get(&ls, ls_leadscore_key(spec->name), false);
		bool has = rec != NULL && !isnan(rec->score);
		json_object_set_new(o, "score", has ? json_real(rec->score) : json_null());
		json_object_set_new(o, "tier", has && rec->tier >= 0
			? json_string(ls_tiers_name(&spec->tiers, rec->tier)) : json_null());
		json_object_set_new(o, "version", json_integer(rec ? (json_int_t)rec->version : 0));
		json_object_set_new(o, "label", json_string(label_name(rec ? rec->label : 0)));
		const ls_scorer_snapshot_model *sm = NULL;
		for (size_t j = 0; j < n; j++)
			if (r->snap->m[j].spec == spec)
				sm = &r->snap->m[j];
		double p;
		if (have_ex && sm != NULL &&
		    ls_example_build(&ex, spec, sm->model, lead, LS_LEAD_AT_WATERMARK) == 0 &&
		    ls_ftrl_predict(sm->model, &ex.x, &p) == 0) {
			json_object_set_new(o, "current_score", json_real(p));
			json_object_set_new(o, "model_mature", json_boolean(mature(&sm->stats)));
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

static enum MHD_Result get_lead(ls_http *h, struct MHD_Connection *c,
				const char *lead_id)
{
	size_t idlen = strlen(lead_id);
	if (idlen == 0 || idlen > 512)
		return send_error(c, 400, "bad_lead_id", "a lead id is 1 to 512 bytes");
	char err[512];
	ls_store *st = thread_store(h, err, sizeof err);
	if (st == NULL)
		return send_error(c, 503, "redis_unavailable", err);
	ls_store_blob blob;
	const char *ids[1] = { lead_id };
	if (ls_store_load(st, ids, 1, &blob, err, sizeof err) != 0)
		return send_error(c, 503, "redis_unavailable", err);
	if (blob.data == NULL)
		return send_error(c, 404, "unknown_lead", "no state is stored for this lead");
	ls_lead *lead = NULL;
	if (ls_lead_decode(h->env.lead_conf, blob.data, blob.len, &lead, err, sizeof err) != 0)
		return send_error(c, 500, "corrupt_state", err);
	size_t nv = h->env.set->n_values;
	double *vals = malloc((nv ? nv : 1) * sizeof *vals);
	if (vals == NULL || ls_lead_features(lead, h->env.lead_conf, LS_LEAD_AT_WATERMARK,
					     vals, nv) < 0) {
		free(vals);
		ls_lead_free(lead);
		return send_error(c, 500, "internal", "cannot compute features");
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
	snap_ref *r = ref_take(h);
	json_object_set_new(o, "scores", lead_scores(h, lead, r));
	ref_drop(h, r);
	free(vals);
	ls_lead_free(lead);
	return send_json(c, 200, o);
}

/* ------------------------------------------------------------ routing */

static bool authorized(ls_http *h, struct MHD_Connection *c)
{
	if (h->token == NULL)
		return true;
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	size_t tl = strlen(h->token);
	if (a == NULL || strncmp(a, "Bearer ", 7) != 0 || strlen(a + 7) != tl)
		return false;
	unsigned char diff = 0; /* constant time in the token's length */
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(a[7 + i] ^ h->token[i]);
	return diff == 0;
}

/* The segment after prefix, when url is prefix + one non-empty segment. */
static const char *one_segment(const char *url, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(url, prefix, pl) != 0 || url[pl] == '\0' || strchr(url + pl, '/'))
		return NULL;
	return url + pl;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	(void)upload_data;
	ls_http *h = cls;
	req *rq = *con_cls;
	if (rq == NULL) {
		rq = calloc(1, sizeof *rq);
		if (rq == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES; /* headers only; the body (if any) follows */
	}
	if (*upload_data_size > 0) {
		rq->body_len += *upload_data_size;
		rq->too_large |= rq->body_len > LS_HTTP_MAX_BODY;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_large)
		return send_error(c, 413, "body_too_large", "request bodies are limited to 65536 bytes");
	if (strncmp(url, "/v1/", 4) == 0 && !authorized(h, c))
		return send_error(c, 401, "unauthorized", "missing or wrong bearer token");
	const char *name;
	bool is_get = strcmp(method, "GET") == 0;
	if ((name = one_segment(url, "/v1/models/")) != NULL)
		return is_get ? get_model(h, c, name)
			      : send_error(c, 405, "method_not_allowed", "use GET");
	if ((name = one_segment(url, "/v1/leads/")) != NULL)
		return is_get ? get_lead(h, c, name)
			      : send_error(c, 405, "method_not_allowed", "use GET");
	return send_error(c, 404, "not_found", "no such route");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* ------------------------------------------------------------ lifecycle */

ls_http *ls_http_start(const ls_http_env *env, char *err, size_t errlen)
{
	const char *listen = env->cfg->http.listen;
	const char *colon = strrchr(listen, ':');
	if (colon == NULL || colon == listen || colon[1] == '\0') {
		ls_set_err(err, errlen, "http.listen \"%s\": expected host:port", listen);
		return NULL;
	}
	char host[256];
	size_t hl = (size_t)(colon - listen);
	if (hl >= sizeof host) {
		ls_set_err(err, errlen, "http.listen: host too long");
		return NULL;
	}
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1]:8080 */
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(host, colon + 1, &hints, &ai);
	if (gai != 0 || ai == NULL) {
		ls_set_err(err, errlen, "http.listen \"%s\": %s", listen, gai_strerror(gai));
		return NULL;
	}
	ls_http *h = calloc(1, sizeof *h);
	if (h == NULL) {
		freeaddrinfo(ai);
		ls_set_err(err, errlen, "out of memory");
		return NULL;
	}
	h->env = *env;
	h->lead_conf = *env->lead_conf;
	h->env.lead_conf = &h->lead_conf;
	pthread_mutex_init(&h->mu, NULL);
	h->key_ok = pthread_key_create(&h->store_key, store_destroy) == 0;
	if (env->cfg->http.auth_token != NULL && env->cfg->http.auth_token[0] != '\0')
		h->token = strdup(env->cfg->http.auth_token);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->mhd = h->key_ok
		? MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
				   MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				   MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
				   MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
				   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
				   MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				   MHD_OPTION_END)
		: NULL;
	freeaddrinfo(ai);
	if (h->mhd == NULL) {
		ls_set_err(err, errlen, "cannot listen on %s: %s", listen,
			   errno ? strerror(errno) : "libmicrohttpd refused");
		ls_http_stop(h);
		return NULL;
	}
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL ? info->port : 0;
	return h;
}

uint16_t ls_http_port(const ls_http *h) { return h->port; }

void ls_http_stop(ls_http *h)
{
	if (h == NULL)
		return;
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd); /* joins the workers: their stores go */
	pthread_mutex_lock(&h->mu);
	snap_ref *old = h->cur;
	h->cur = NULL;
	pthread_mutex_unlock(&h->mu);
	ref_drop(h, old);
	if (h->key_ok)
		pthread_key_delete(h->store_key);
	pthread_mutex_destroy(&h->mu);
	free(h->token);
	free(h);
}
