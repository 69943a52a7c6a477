/*
 * ls_http_req.h - the HTTP API's request parsing: path segments and JSON
 * bodies, apart from libmicrohttpd so that it can be fuzzed and tested
 * without a socket (tests/fuzz/fuzz_http.c).
 *
 * Pure: no I/O, no globals. Every function accepts any bytes: a url is a
 * NUL-terminated string as libmicrohttpd hands it over, a body any
 * (body, len). Reasons are static strings, or written to the caller's
 * buffer (always NUL-terminated when its length is > 0).
 *
 * Memory: ls_http_req_object() returns a JSON object the caller owns
 * (json_decref); the strings ls_http_req_decision() puts into the request
 * belong to that object and live as long as it does.
 *
 * Thread-safety: fully reentrant.
 */
#ifndef LS_HTTP_REQ_H
#define LS_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ls_campaign.h"

/* The segment after prefix (pointing into url) when url is prefix + one
 * non-empty segment without '/'; NULL otherwise. */
const char *ls_http_req_segment(const char *url, const char *prefix);

/* true when url is prefix + one non-empty segment without '/' + suffix
 * and the segment is shorter than cap: the segment is copied to out. */
bool ls_http_req_segments(const char *url, const char *prefix, const char *suffix,
			  char *out, size_t cap);

/* body[0..len) as a JSON object (duplicate keys rejected), or NULL with
 * a reason in detail ("line 1 column 5: ..."). body may be NULL when len
 * is 0. */
json_t *ls_http_req_object(const char *body, size_t len, char *detail,
			   size_t detaillen);

/* The reason ls_http_req_decision() returns for a lead_id over max_id
 * bytes (compare the pointer: answered as id_too_long, not bad_request). */
extern const char ls_http_req_id_too_long[];

/*
 * A decision request body, {"lead_id": "...", "context": {...},
 * "activate": bool}: fills rq's lead_id (1 to max_id bytes), activate
 * (default true) and context (its strings borrowed from o). NULL when
 * valid, else a reason for a 400 response (rq then holds nothing useful).
 */
const char *ls_http_req_decision(json_t *o, size_t max_id, ls_campaign_request *rq);

/* A reward body {"reward": number in [0,1]}: NULL and *reward, or a
 * reason. */
const char *ls_http_req_reward(json_t *o, double *reward);

#endif
