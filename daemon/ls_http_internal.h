/*
 * ls_http_internal.h - what ls_http.c (the server) and ls_http_api.c
 * (the /v1/ handlers) share; not for use outside daemon/ls_http*.c.
 *
 * Memory: struct ls_http is owned by ls_http_start/ls_http_stop. A
 * snap_ref from ls_http_ref_take is the caller's until ls_http_ref_drop
 * (NULL, before the first publish, is fine for both). ls_http_send_json
 * takes the body's reference whether or not it queues it.
 *
 * Errors: the handlers and senders return libmicrohttpd's MHD_NO when no
 * response could be queued (the connection is then closed); every other
 * failure is an answered 4xx/5xx with a JSON error body.
 *
 * Thread-safety: everything here is called from libmicrohttpd's worker
 * threads at once; the snapshot pointer and counts are under h->mu, the
 * rate-limited log under h->log_mu, and a worker's Redis connection is
 * its own (h->store_key).
 */
#ifndef LS_HTTP_INTERNAL_H
#define LS_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ls_http.h"
#include "ls_http_conns.h"

#define COMPONENT "http"

/* What is logged at most once per RATELOG_NS, with a count of the rest. */
enum { RL_CONNECTION_LIMIT, RL_ADDRESS_LIMIT, RL_OUT_OF_FDS, RL_REQUEST_TIMEOUT,
       RL_REDIS, RL__COUNT };

typedef struct ratelog {
	int64_t next_ns;
	uint64_t suppressed;
} ratelog;

typedef struct snap_ref {
	ls_scorer_snapshot *snap;
	unsigned refs; /* handlers holding it, plus 1 while current */
} snap_ref;

struct ls_http {
	ls_http_env env;
	ls_http_health health; /* under mu */
	ls_lead_conf lead_conf; /* a copy: a reload changes the loop's live */
	struct MHD_Daemon *mhd;
	uint16_t port;
	unsigned threads;
	char *token; /* NULL: no authentication */
	size_t token_len;
	ls_http_conns *conns;
	int64_t request_timeout_ns;
	pthread_mutex_t log_mu; /* the ratelogs */
	ratelog rl[RL__COUNT];
	pthread_mutex_t sweep_mu;
	pthread_cond_t sweep_cv;
	pthread_t sweeper;
	bool sweeper_ok, sweep_stop;
	pthread_mutex_t mu;
	snap_ref *cur;
	pthread_key_t store_key;
	bool key_ok;
};

/* Per request: the body read so far (kept up to LS_HTTP_MAX_BODY). */
typedef struct req {
	char *body;
	size_t body_len;
	bool too_large;
	bool answered; /* refused on the first call, before the body */
} req;

/* True when an event of kind k is to be logged now; *suppressed gets how
   many of its kind were not since the last one that was. */
bool ls_http_ratelog_due(ls_http *h, int k, uint64_t *suppressed);

/* The published snapshot with a reference taken; NULL before the first. */
snap_ref *ls_http_ref_take(ls_http *h);
void ls_http_ref_drop(ls_http *h, snap_ref *r);

/* Queue body (its reference taken) as the answer with status. */
enum MHD_Result ls_http_send_json(struct MHD_Connection *c, unsigned status, json_t *body);
/* Queue {"error": error, "detail": detail} with status. */
enum MHD_Result ls_http_send_error(struct MHD_Connection *c, unsigned status,
				   const char *error, const char *detail);

/* The /v1/ handlers (ls_http_api.c), called by route() once the request
   is authenticated, its path ids checked and its body read. */
enum MHD_Result ls_http_get_model(ls_http *h, struct MHD_Connection *c, const char *name);
enum MHD_Result ls_http_get_lead(ls_http *h, struct MHD_Connection *c, const char *lead_id);
enum MHD_Result ls_http_get_campaign(ls_http *h, struct MHD_Connection *c, const char *id);
enum MHD_Result ls_http_post_decision(ls_http *h, struct MHD_Connection *c,
				      const char *campaign, const req *body);
enum MHD_Result ls_http_post_activate(ls_http *h, struct MHD_Connection *c, const char *id);
enum MHD_Result ls_http_post_reward(ls_http *h, struct MHD_Connection *c, const char *id,
				    const req *body);

#endif
