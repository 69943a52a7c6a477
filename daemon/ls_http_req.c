/*
 * ls_http_req.c - HTTP request parsing (see ls_http_req.h).
 *
 * Why apart from ls_http.c: the handlers there need a libmicrohttpd
 * connection to answer; the parsing does not, and as the part that reads
 * untrusted bytes it is the part the fuzzer must reach at full speed.
 */
#include "ls_http_req.h"

#include <stdio.h>
#include <string.h>

#include "ls_lead.h"

const char *ls_http_req_segment(const char *url, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(url, prefix, pl) != 0 || url[pl] == '\0' || strchr(url + pl, '/'))
		return NULL;
	return url + pl;
}

bool ls_http_req_segments(const char *url, const char *prefix, const char *suffix,
			  char *out, size_t cap)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), ul = strlen(url);
	if (ul <= pl + sl || strncmp(url, prefix, pl) != 0 || strcmp(url + ul - sl, suffix) != 0)
		return false;
	size_t n = ul - pl - sl;
	if (n >= cap || memchr(url + pl, '/', n) != NULL)
		return false;
	memcpy(out, url + pl, n);
	out[n] = '\0';
	return true;
}

json_t *ls_http_req_object(const char *body, size_t len, char *detail, size_t detaillen)
{
	if (body == NULL || len == 0) {
		snprintf(detail, detaillen, "expected a JSON object body");
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		snprintf(detail, detaillen, "line %d column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(detail, detaillen, "expected a JSON object body");
		return NULL;
	}
	return o;
}

const char ls_http_req_id_too_long[] = "lead_id is longer than pipeline.max_id_bytes";

const char *ls_http_req_decision(json_t *o, size_t max_id, ls_campaign_request *rq)
{
	json_t *lead = json_object_get(o, "lead_id"), *ctx = json_object_get(o, "context"),
	       *act = json_object_get(o, "activate");
	rq->n_context = 0;
	if (!json_is_string(lead) || json_string_length(lead) == 0)
		return "lead_id must be a non-empty string";
	if (json_string_length(lead) > max_id)
		return ls_http_req_id_too_long;
	if (act != NULL && !json_is_boolean(act))
		return "activate must be true or false";
	if (ctx != NULL && !json_is_null(ctx) && !json_is_object(ctx))
		return "context must be an object of strings";
	if (json_is_object(ctx) && json_object_size(ctx) > LS_CAMPAIGN_MAX_REQ_CONTEXT)
		return "context has more than 8 keys";
	if (json_is_object(ctx)) {
		const char *k;
		json_t *v;
		json_object_foreach(ctx, k, v) {
			if (!json_is_string(v) || strlen(k) == 0 || strlen(k) > LS_LEAD_KEY_MAX ||
			    json_string_length(v) > LS_CAMPAIGN_CTX_VALUE_MAX)
				return "context values must be strings of at most 64 bytes, keys 1 to 64 bytes";
			rq->ctx_key[rq->n_context] = k;
			rq->ctx_value[rq->n_context++] = json_string_value(v);
		}
	}
	rq->lead_id = json_string_value(lead);
	rq->activate = act == NULL || json_is_true(act);
	return NULL;
}

const char *ls_http_req_reward(json_t *o, double *reward)
{
	json_t *r = json_object_get(o, "reward");
	if (!json_is_number(r) || !(json_number_value(r) >= 0.0 && json_number_value(r) <= 1.0))
		return "reward must be a number from 0 to 1";
	*reward = json_number_value(r);
	return NULL;
}
