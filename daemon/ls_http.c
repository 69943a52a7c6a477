/*
 * ls_http.c - the HTTP server: libmicrohttpd's callbacks, connection
 * limits, the request-timeout sweeper, routing, the operations routes
 * (/metrics, /healthz, /readyz), the published snapshot, start and stop.
 * The /v1/ handlers are in ls_http_api.c: routing decides which one runs
 * and everything before it (authentication, size, path checks) is the
 * server's; what the handlers do with the request is the API's. What
 * the two share is in ls_http_internal.h.
 *
 * ls_http.c - HTTP API.
 *
 * Why a reference count and not a read-write lock: a handler may hold
 * the snapshot while it waits on Redis; a lock held across that wait
 * would stall the batch loop's publish. The mutex only guards the pointer
 * and the counts.
 *
 * Hostile clients. libmicrohttpd's own timeout counts idle time only, so
 * a client sending one byte every few seconds keeps a connection (and a
 * file descriptor) forever, and enough of them take every descriptor the
 * process has. So: libmicrohttpd's accept policy callback refuses a
 * connection past the total or per-address limit (ls_http_conns counts
 * them from the connection notifications), a sweeper thread shuts down
 * the socket of every connection whose request has taken longer than
 * http.request_timeout in all (libmicrohttpd then sees end-of-file and
 * closes it), and libmicrohttpd's log callback is how an accept() that
 * failed for want of descriptors becomes visible: it prints nothing else.
 * Refusals are counted and logged at most once per 10 s per reason. A
 * request is authenticated, and its declared body size checked, on the
 * handler's first call, before any of its body is read.
 */
#include "ls_http.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "ls_clock.h"
#include "ls_err.h"
#include "ls_http_conns.h"
#include "ls_http_guard.h"
#include "ls_http_internal.h"
#include "ls_http_req.h"
#include "ls_log.h"

static const char *const rl_reason[RL__COUNT] = {
	"connection_limit", "address_limit", "out_of_fds", "request_timeout", "redis",
};
#define RATELOG_NS (10 * 1000000000LL)
#define SWEEP_NS (250 * 1000000LL)
/* libmicrohttpd's inactivity timeout, seconds */
#define IDLE_TIMEOUT_S 30u

/* ---------------------------------------------------- rate-limited log */

/* True when an event of kind k is to be logged now; *suppressed gets how
   many of its kind were not since the last one that was. */
bool ls_http_ratelog_due(ls_http *h, int k, uint64_t *suppressed)
{
	int64_t now = ls_clock_mono_ns();
	pthread_mutex_lock(&h->log_mu);
	ratelog *r = &h->rl[k];
	bool due = now >= r->next_ns;
	if (due) {
		*suppressed = r->suppressed;
		r->suppressed = 0;
		r->next_ns = now + RATELOG_NS;
	} else {
		r->suppressed++;
	}
	pthread_mutex_unlock(&h->log_mu);
	return due;
}

static const char *addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = NULL;
	if (sa != NULL && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa != NULL && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (a == NULL || inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "unknown");
	return buf;
}

/* n connections refused or cut for reason k (an RL_ below RL_REDIS):
   counted, and logged unless one was within the last 10 s. */
static void dropped(ls_http *h, int k, size_t n, const struct sockaddr *sa, const char *detail)
{
	if (h->env.telemetry != NULL)
		for (size_t i = 0; i < n; i++)
			ls_telemetry_http_dropped(h->env.telemetry, rl_reason[k]);
	uint64_t sup;
	if (!ls_http_ratelog_due(h, k, &sup))
		return;
	char a[INET6_ADDRSTRLEN + 8], q[600];
	size_t open = ls_http_conns_open(h->conns);
	switch (k) {
	case RL_CONNECTION_LIMIT:
		ls_warn(COMPONENT, "connection refused: too many connections",
			"reason=%s limit=%u open=%zu address=%s suppressed=%" PRIu64, rl_reason[k],
			ls_http_conns_total_limit(h->conns), open, addr_str(sa, a, sizeof a), sup);
		break;
	case RL_ADDRESS_LIMIT:
		ls_warn(COMPONENT, "connection refused: too many connections from one address",
			"reason=%s limit=%u address=%s open=%zu suppressed=%" PRIu64, rl_reason[k],
			ls_http_conns_address_limit(h->conns), addr_str(sa, a, sizeof a), open, sup);
		break;
	case RL_OUT_OF_FDS:
		ls_error(COMPONENT, "accept failed: out of file descriptors",
			 "reason=%s open=%zu detail=%s suppressed=%" PRIu64, rl_reason[k], open,
			 ls_log_quote(detail != NULL ? detail : "", q, sizeof q), sup);
		break;
	default:
		ls_warn(COMPONENT, "connection closed: request took longer than http.request_timeout",
			"reason=%s timeout_ms=%" PRId64 " count=%zu address=%s suppressed=%" PRIu64,
			rl_reason[k], h->request_timeout_ns / 1000000, n, addr_str(sa, a, sizeof a),
			sup);
		break;
	}
}

/* -------------------------------------------------------- snapshots */

void ls_http_ref_drop(ls_http *h, snap_ref *r)
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

snap_ref *ls_http_ref_take(ls_http *h)
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
	ls_http_ref_drop(h, old);
}

/* --------------------------------------------------------- responses */

/* The status of the response this thread queued last, for metrics. */
static _Thread_local unsigned tl_status;

enum MHD_Result ls_http_send_json(struct MHD_Connection *c, unsigned status,
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
	tl_status = status;
	enum MHD_Result rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result ls_http_send_error(struct MHD_Connection *c, unsigned status,
				  const char *error, const char *detail)
{
	json_t *o = json_pack("{s:s,s:s}", "error", error, "detail", detail);
	if (o == NULL)
		return MHD_NO;
	return ls_http_send_json(c, status, o);
}

/* ------------------------------------------------------------ routing */

static bool authorized(ls_http *h, struct MHD_Connection *c)
{
	if (h->token == NULL)
		return true;
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	size_t n = 0;
	const char *tok = ls_http_guard_bearer(a, &n);
	/* no credentials compare as empty ones: the same work either way */
	return ls_http_guard_token_equal(tok != NULL ? tok : "", tok != NULL ? n : 0, h->token,
					 h->token_len);
}

/* Some segment of url is longer than pipeline.max_id_bytes: no id is. */
static bool path_id_too_long(const ls_http *h, const char *url)
{
	size_t max = (size_t)h->env.cfg->pipeline.max_id_bytes;
	for (const char *s = url; *s != '\0';) {
		size_t n = strcspn(s, "/");
		if (n > max)
			return true;
		s += n + (s[n] == '/');
	}
	return false;
}

/* ------------------------------------------------------- operations */

static enum MHD_Result get_metrics(ls_http *h, struct MHD_Connection *c)
{
	size_t len = 0;
	char *text = h->env.telemetry != NULL ? ls_telemetry_render(h->env.telemetry, &len) : NULL;
	if (text == NULL)
		return ls_http_send_error(c, 500, "internal", "cannot render metrics");
	struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", LS_METRICS_CONTENT_TYPE);
	tl_status = 200;
	enum MHD_Result rc = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return rc;
}

void ls_http_set_health(ls_http *h, const ls_http_health *hl)
{
	pthread_mutex_lock(&h->mu);
	h->health = *hl;
	pthread_mutex_unlock(&h->mu);
}

static enum MHD_Result get_ready(ls_http *h, struct MHD_Connection *c)
{
	pthread_mutex_lock(&h->mu);
	ls_http_health hl = h->health;
	pthread_mutex_unlock(&h->mu);
	json_t *why = json_array();
	if (!hl.broker_ok)
		json_array_append_new(why, json_string("kafka: no partitions assigned (broker unreachable or group not joined)"));
	if (!hl.redis_ok)
		json_array_append_new(why, json_string("redis: unreachable; consumption is paused until it answers"));
	if (hl.paused && hl.redis_ok)
		json_array_append_new(why, json_string("consumption paused for backpressure"));
	if (hl.pipeline[0] != '\0')
		json_array_append_new(why, json_string(hl.pipeline));
	if (hl.stopping)
		json_array_append_new(why, json_string("stopping"));
	bool ready = json_array_size(why) == 0;
	json_t *o = json_pack("{s:b,s:i,s:b,s:b,s:o}", "ready", ready, "partitions", hl.partitions,
			      "redis", hl.redis_ok, "paused", hl.paused, "reasons", why);
	return ls_http_send_json(c, ready ? 200 : 503, o);
}

static enum MHD_Result route(ls_http *h, struct MHD_Connection *c, const char *url,
			     const char *method, req *rq, const char **tmpl);

/* The request's libmicrohttpd socket context: its ls_http_conn. */
static ls_http_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return i != NULL ? i->socket_context : NULL;
}

/*
 * On the handler's first call, with the headers and before the body: a
 * URL that decoded to a control byte, a /v1/ request without the token
 * and a declared body over the limit are answered now, so no body of an
 * unauthenticated client is ever read. MHD_YES and rq->answered when a
 * response was queued; MHD_YES alone to go on reading.
 */
static enum MHD_Result refuse_early(ls_http *h, struct MHD_Connection *c, const char *url,
				    req *rq)
{
	enum MHD_Result rc;
	if (ls_http_conn_take_bad_url(conn_of(c)))
		rc = ls_http_send_error(c, 400, "bad_path",
				"the path decodes to a NUL or control character");
	else if (strncmp(url, "/v1/", 4) == 0 && !authorized(h, c))
		rc = ls_http_send_error(c, 401, "unauthorized", "missing or wrong bearer token");
	else {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		char *end = NULL;
		errno = 0;
		unsigned long long n = cl != NULL ? strtoull(cl, &end, 10) : 0;
		if (cl == NULL || end == cl || (errno == 0 && n <= LS_HTTP_MAX_BODY))
			return MHD_YES;
		rc = ls_http_send_error(c, 413, "body_too_large",
				"request bodies are limited to 65536 bytes");
	}
	rq->answered = true;
	return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	ls_http *h = cls;
	req *rq = *con_cls;
	if (rq == NULL) {
		rq = calloc(1, sizeof *rq);
		if (rq == NULL)
			return MHD_NO;
		*con_cls = rq;
		/* headers only; the body (if any) follows unless refused now */
		int64_t t0 = ls_clock_mono_ns();
		tl_status = 0;
		enum MHD_Result rc = refuse_early(h, c, url, rq);
		if (rq->answered && h->env.telemetry != NULL && tl_status != 0)
			ls_telemetry_http(h->env.telemetry, "other", tl_status,
					  (double)(ls_clock_mono_ns() - t0) / 1e9);
		return rc;
	}
	if (rq->answered) {
		*upload_data_size = 0; /* a refused request's body is dropped */
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (rq->too_large || rq->body_len + n > LS_HTTP_MAX_BODY) {
			rq->too_large = true; /* read and drop the rest, then 413 */
			free(rq->body);
			rq->body = NULL;
			return MHD_YES;
		}
		char *b = realloc(rq->body, rq->body_len + n + 1);
		if (b == NULL)
			return MHD_NO;
		memcpy(b + rq->body_len, upload_data, n);
		rq->body = b;
		rq->body_len += n;
		b[rq->body_len] = '\0';
		return MHD_YES;
	}
	int64_t t0 = ls_clock_mono_ns();
	const char *tmpl = "other";
	tl_status = 0;
	enum MHD_Result rc = route(h, c, url, method, rq, &tmpl);
	if (h->env.telemetry != NULL && tl_status != 0)
		ls_telemetry_http(h->env.telemetry, tmpl, tl_status,
				  (double)(ls_clock_mono_ns() - t0) / 1e9);
	return rc;
}

static enum MHD_Result route(ls_http *h, struct MHD_Connection *c, const char *url,
			     const char *method, req *rq, const char **tmpl)
{
	if (rq->too_large)
		return ls_http_send_error(c, 413, "body_too_large", "request bodies are limited to 65536 bytes");
	bool get = strcmp(method, "GET") == 0;
	if (strcmp(url, "/metrics") == 0) {
		*tmpl = "/metrics";
		return get ? get_metrics(h, c) : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	}
	if (strcmp(url, "/healthz") == 0) {
		*tmpl = "/healthz";
		return get ? ls_http_send_json(c, 200, json_pack("{s:b}", "alive", 1))
			   : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	}
	if (strcmp(url, "/readyz") == 0) {
		*tmpl = "/readyz";
		return get ? get_ready(h, c) : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	}
	if (strncmp(url, "/v1/", 4) == 0 && path_id_too_long(h, url))
		return ls_http_send_error(c, 400, "id_too_long",
				  "an id in the path is longer than pipeline.max_id_bytes");
	const char *name;
	bool is_get = strcmp(method, "GET") == 0;
	if ((name = ls_http_req_segment(url, "/v1/models/")) != NULL && (*tmpl = "/v1/models/{model}"))
		return is_get ? ls_http_get_model(h, c, name)
			      : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	if ((name = ls_http_req_segment(url, "/v1/leads/")) != NULL && (*tmpl = "/v1/leads/{lead_id}"))
		return is_get ? ls_http_get_lead(h, c, name)
			      : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	if ((name = ls_http_req_segment(url, "/v1/campaigns/")) != NULL &&
	    (*tmpl = "/v1/campaigns/{campaign}"))
		return is_get ? ls_http_get_campaign(h, c, name)
			      : ls_http_send_error(c, 405, "method_not_allowed", "use GET");
	bool is_post = strcmp(method, "POST") == 0;
	char seg[LS_DECISION_ID_MAX + 64];
	if (ls_http_req_segments(url, "/v1/campaigns/", "/decisions", seg, sizeof seg) &&
	    (*tmpl = "/v1/campaigns/{campaign}/decisions"))
		return is_post ? ls_http_post_decision(h, c, seg, rq)
			       : ls_http_send_error(c, 405, "method_not_allowed", "use POST");
	if (ls_http_req_segments(url, "/v1/decisions/", "/activate", seg, sizeof seg) &&
	    (*tmpl = "/v1/decisions/{id}/activate"))
		return is_post ? ls_http_post_activate(h, c, seg)
			       : ls_http_send_error(c, 405, "method_not_allowed", "use POST");
	if (ls_http_req_segments(url, "/v1/decisions/", "/reward", seg, sizeof seg) &&
	    (*tmpl = "/v1/decisions/{id}/reward"))
		return is_post ? ls_http_post_reward(h, c, seg, rq)
			       : ls_http_send_error(c, 405, "method_not_allowed", "use POST");
	return ls_http_send_error(c, 404, "not_found", "no such route");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	ls_http *h = cls;
	(void)toe;
	/* the next request on this connection gets its own time */
	ls_http_conns_restart(h->conns, conn_of(c), ls_clock_mono_ns());
	req *rq = *con_cls;
	if (rq != NULL)
		free(rq->body);
	free(rq);
	*con_cls = NULL;
}

/* -------------------------------------------------------- connections */

/* Accept policy: refuse past the total or per-address limit. Accepted
   and closed at once, so the client learns now instead of waiting in
   the listen backlog. */
static enum MHD_Result admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	ls_http *h = cls;
	(void)addrlen;
	ls_http_admit a = ls_http_conns_admit(h->conns, addr);
	if (a == LS_HTTP_ADMIT_OK)
		return MHD_YES;
	dropped(h, a == LS_HTTP_ADMIT_TOTAL ? RL_CONNECTION_LIMIT : RL_ADDRESS_LIMIT, 1, addr,
		NULL);
	return MHD_NO;
}

static void conn_event(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode toe)
{
	ls_http *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ai =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		const union MHD_ConnectionInfo *fi =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context = ls_http_conns_add(h->conns, ai != NULL ? ai->client_addr : NULL,
						    fi != NULL ? fi->connect_fd : -1,
						    ls_clock_mono_ns());
		if (*socket_context != NULL && h->env.telemetry != NULL)
			ls_telemetry_http_connections(h->env.telemetry, 1);
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		/* before libmicrohttpd closes the fd: the sweeper, holding the
		 * table's mutex, never shuts down a reused descriptor */
		if (*socket_context != NULL && h->env.telemetry != NULL)
			ls_telemetry_http_connections(h->env.telemetry, -1);
		ls_http_conns_remove(h->conns, *socket_context);
		*socket_context = NULL;
	}
}

/* libmicrohttpd's %HH decoding, noting a decoded NUL or control byte:
   the URL reaching the handler is a C string, and would end at the NUL. */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	size_t n = MHD_http_unescape(s);
	if (ls_http_guard_has_control(s, n))
		ls_http_conn_mark_bad_url(conn_of(c));
	return n;
}

/* libmicrohttpd's messages (MHD_USE_ERROR_LOG). Running out of
   descriptors and its own connection limit are refusals; the rest (a
   client that vanished mid-request, ...) is debug. */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	ls_http *h = cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	if (strncmp(msg, "Hit process or system resource limit", 36) == 0) {
		dropped(h, RL_OUT_OF_FDS, 1, NULL, msg);
	} else if (strncmp(msg, "Server reached connection limit", 31) == 0) {
		dropped(h, RL_CONNECTION_LIMIT, 1, NULL, NULL);
	} else {
		char q[600];
		ls_debug(COMPONENT, "libmicrohttpd", "detail=%s", ls_log_quote(msg, q, sizeof q));
	}
}

typedef struct sweep {
	size_t n;
	struct sockaddr_storage first;
} sweep;

static void cut(int fd, const struct sockaddr *addr, void *arg)
{
	sweep *s = arg;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR); /* libmicrohttpd reads end-of-file and closes it */
	if (s->n++ == 0)
		memcpy(&s->first, addr, sizeof s->first);
}

/* Every SWEEP_NS: cut the connections whose request is over time. */
static void *sweeper(void *arg)
{
	ls_http *h = arg;
	pthread_mutex_lock(&h->sweep_mu);
	while (!h->sweep_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += SWEEP_NS;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&h->sweep_cv, &h->sweep_mu, &ts);
		if (h->sweep_stop)
			break;
		pthread_mutex_unlock(&h->sweep_mu);
		sweep s = { 0 };
		ls_http_conns_expire(h->conns, ls_clock_mono_ns() - h->request_timeout_ns, cut, &s);
		if (s.n > 0)
			dropped(h, RL_REQUEST_TIMEOUT, s.n, (const struct sockaddr *)&s.first, NULL);
		pthread_mutex_lock(&h->sweep_mu);
	}
	pthread_mutex_unlock(&h->sweep_mu);
	return NULL;
}

/* The soft RLIMIT_NOFILE (main raises it to the hard limit at start). */
static uint64_t nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_C(1) << 20;
	return (uint64_t)rl.rlim_cur;
}

/* ------------------------------------------------------------ lifecycle */
static void store_destroy(void *p) { ls_store_free(p); }

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
	pthread_mutex_init(&h->log_mu, NULL);
	pthread_mutex_init(&h->sweep_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->sweep_cv, &ca);
	pthread_condattr_destroy(&ca);
	h->key_ok = pthread_key_create(&h->store_key, store_destroy) == 0;
	if (env->cfg->http.auth_token != NULL && env->cfg->http.auth_token[0] != '\0') {
		h->token = strdup(env->cfg->http.auth_token);
		h->token_len = h->token != NULL ? strlen(h->token) : 0;
	}
	/* An API anyone on the network can call, or a token a few thousand
	 * guesses find, is a configuration to hear about, not to refuse:
	 * a firewall or a proxy may be doing the job. */
	if (h->token == NULL && !ls_http_guard_loopback(ai->ai_addr))
		ls_warn(COMPONENT, "http.listen is not a loopback address and http.auth_token is not set",
			"listen=%s hint=%s", listen,
			"\"anyone who can reach it can use the /v1/ API; set http.auth_token\"");
	if (h->token != NULL && h->token_len < 16)
		ls_warn(COMPONENT, "http.auth_token is shorter than 16 bytes",
			"hint=%s", "\"use a long random token, e.g. openssl rand -hex 32\"");
	uint64_t nofile = nofile_limit();
	ls_http_limits lim;
	ls_http_guard_limits(nofile, (unsigned)env->cfg->http.max_connections,
			     (unsigned)env->cfg->http.max_connections_per_address, &lim);
	if (lim.over_fds)
		ls_warn(COMPONENT, "http.max_connections leaves too few file descriptors",
			"max_connections=%u nofile=%" PRIu64 " reserved=%u", lim.total, nofile,
			LS_HTTP_FD_RESERVE);
	h->request_timeout_ns = env->cfg->http.request_timeout_ms * 1000000;
	h->conns = ls_http_conns_new(lim.total, lim.per_address);
	ls_info(COMPONENT, "connection limits",
		"max_connections=%u max_connections_per_address=%u request_timeout_ms=%" PRId64
		" nofile=%" PRIu64,
		lim.total, lim.per_address, env->cfg->http.request_timeout_ms, nofile);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
	/*
	 * HTTP threads (http.threads 0): 2 from 4 cores up, else 1. Each decision also costs
	 * the bandit's writer thread, Redis and the broker CPU; on a 2-core
	 * machine shared with them a second HTTP thread only added runnable
	 * threads: with wrk at 32 connections 2 threads gave fewer decisions
	 * a second and a p99 of 16-21 ms against 4.0-4.6 ms for 1 (BENCHMARKS.md).
	 * The price: an activation, reward or lead read that waits on Redis
	 * holds up the other requests of a 1-thread server meanwhile, so
	 * http.threads can say otherwise.
	 */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned pool = env->cfg->http.threads > 0 ? (unsigned)env->cfg->http.threads
						   : ncpu >= 4 ? 2u : 1u;
	h->threads = pool;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* libmicrohttpd's own limit only backs ours up (admit() can let one
	 * connection per thread past it): past its limit it stops calling
	 * accept(), and clients wait in the backlog instead of being told. */
	h->mhd = h->key_ok && h->conns != NULL
		? MHD_start_daemon(flags | MHD_USE_ERROR_LOG, 0, admit, h, handle, h,
				   /* first: options after it log through it */
				   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				   MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				   MHD_OPTION_THREAD_POOL_SIZE, pool,
				   MHD_OPTION_CONNECTION_LIMIT, lim.total + pool,
				   MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
				   MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
				   MHD_OPTION_NOTIFY_COMPLETED, completed, h,
				   MHD_OPTION_NOTIFY_CONNECTION, conn_event, h,
				   MHD_OPTION_UNESCAPE_CALLBACK, unescape, h,
				   MHD_OPTION_END)
		: NULL;
	freeaddrinfo(ai);
	if (h->mhd != NULL) {
		h->sweeper_ok = pthread_create(&h->sweeper, NULL, sweeper, h) == 0;
		if (!h->sweeper_ok) {
			ls_set_err(err, errlen, "cannot start the HTTP request-timeout thread");
			ls_http_stop(h);
			return NULL;
		}
	}
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
unsigned ls_http_threads(const ls_http *h) { return h->threads; }

void ls_http_stop(ls_http *h)
{
	if (h == NULL)
		return;
	if (h->sweeper_ok) {
		pthread_mutex_lock(&h->sweep_mu);
		h->sweep_stop = true;
		pthread_cond_signal(&h->sweep_cv);
		pthread_mutex_unlock(&h->sweep_mu);
		pthread_join(h->sweeper, NULL);
	}
	if (h->mhd != NULL)
		MHD_stop_daemon(h->mhd); /* joins the workers: their stores go */
	ls_http_conns_free(h->conns);
	pthread_mutex_lock(&h->mu);
	snap_ref *old = h->cur;
	h->cur = NULL;
	pthread_mutex_unlock(&h->mu);
	ls_http_ref_drop(h, old);
	if (h->key_ok)
		pthread_key_delete(h->store_key);
	pthread_mutex_destroy(&h->mu);
	pthread_mutex_destroy(&h->log_mu);
	pthread_mutex_destroy(&h->sweep_mu);
	pthread_cond_destroy(&h->sweep_cv);
	free(h->token);
	free(h);
}
