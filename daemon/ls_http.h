/*
 * ls_http.h - the HTTP API on http.listen (libmicrohttpd, JSON by
 * jansson).
 *
 * Routes (besides GET /metrics, /healthz and /readyz):
 *   GET /v1/models/{model}  version, label counts, rolling AUC, log-loss
 *                           and ECE of the model as of the last checkpoint
 *   GET /v1/leads/{lead_id} the lead's feature values, profile and, per
 *                           model, its last published score, tier,
 *                           version and label state, and the current
 *                           model's score and top factors
 *   GET /v1/campaigns/{campaign}            the campaign's posterior per
 *                                           bucket (ls_campaign_stats_get)
 *   POST /v1/campaigns/{campaign}/decisions a decision (ls_campaign_decide)
 *   POST /v1/decisions/{id}/activate        its activation
 *   POST /v1/decisions/{id}/reward          its reward
 * Every error is JSON {"error": "...", "detail": "..."} with its status:
 * 400 (bad path or lead id; bad_path: the path decodes to a NUL or other
 * control byte; id_too_long: an id over pipeline.max_id_bytes), 401
 * (http.auth_token set and no matching "Authorization: Bearer" header,
 * any letter case), 404 (no such route, model or lead),
 * 405 (method), 413 (body too large), 503 (models not published yet or
 * Redis unavailable; the detail never names Redis's address). 400
 * bad_path, 401 and a declared Content-Length over LS_HTTP_MAX_BODY are
 * answered before any of the body is read.
 *
 * Connections: at most http.max_connections in all and
 * http.max_connections_per_address from one address (derived from the
 * soft RLIMIT_NOFILE when 0; see ls_http_guard.h); one more is accepted
 * and closed at once. A request not read and answered within
 * http.request_timeout of its connection opening or its previous
 * response has its socket shut down. Both are counted in
 * leadscore_http_connections_dropped_total and logged at most once per
 * 10 s per reason, as is accept() failing for want of descriptors.
 *
 * Threads: libmicrohttpd's internal thread pool serves requests. The
 * batch loop publishes an immutable snapshot of the models
 * (ls_http_publish); a handler takes a reference under a mutex held for a
 * pointer copy, never across I/O, and drops it when done. Lead lookups
 * and the campaign service's activations and rewards use one Redis
 * connection per worker thread, opened on first use, reopened after an
 * I/O error and closed when the thread ends. One more thread sweeps for requests over
 * their deadline every 250 ms.
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ls_campaign.h"
#include "ls_config.h"
#include "ls_telemetry.h"
#include "ls_lead.h"
#include "ls_scorer.h"
#include "ls_store.h"

typedef struct ls_http ls_http;

typedef struct ls_http_env {
	const ls_config *cfg;          /* http.listen, http.auth_token; kept */
	ls_store_settings store;       /* for lead lookups; strings kept */
	const ls_feature_set *set;     /* read by every thread */
	const ls_lead_conf *lead_conf; /* copied at start */
	ls_campaign *campaigns;        /* decisions and rewards; kept */
	ls_telemetry *telemetry;       /* GET /metrics and request timings; kept */
} ls_http_env;

/* What GET /readyz reports, set by the batch loop. */
typedef struct ls_http_health {
	bool broker_ok;  /* partitions assigned */
	int partitions;
	bool redis_ok;   /* the last Redis operation succeeded */
	bool paused;     /* consumption paused */
	bool stopping;
	/* why the batch loop is stuck ("" when it is not): failed batches in
	 * a row, or records waiting uncommitted too long */
	char pipeline[384];
} ls_http_health;

void ls_http_set_health(ls_http *h, const ls_http_health *hl);

/* Bytes of request body accepted (the decision routes need little). */
#define LS_HTTP_MAX_BODY 65536

/*
 * Listen on cfg->http.listen ("host:port"; port 0 picks a free one) and
 * serve. NULL with a reason when the address is bad or taken.
 */
ls_http *ls_http_start(const ls_http_env *env, char *err, size_t errlen);

/* The port actually bound. */
uint16_t ls_http_port(const ls_http *h);

/* The threads serving requests (http.threads, or the CPU-count default). */
unsigned ls_http_threads(const ls_http *h);

/* Replace the models snapshot handlers read (takes ownership). */
void ls_http_publish(ls_http *h, ls_scorer_snapshot *snap);

/* Stop serving, wait for the workers, free everything. NULL is ok. */
void ls_http_stop(ls_http *h);

#endif
