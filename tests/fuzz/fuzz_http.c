/*
 * fuzz_http - the HTTP API's request parsing (daemon/ls_http_req.c): the
 * path routing and ids of every route, and the JSON bodies of the
 * decision and reward requests, as ls_http.c calls them.
 *
 * Input: the same bytes are the request path (up to the first NUL, as
 * libmicrohttpd passes it) and the body of both POST routes.
 *
 * Properties: an id taken from a path is non-empty, has no '/', fits its
 * buffer and puts the path back together; a valid decision body gives a
 * lead id of 1 to 512 bytes (the cap the harness passes) and at most 8 context pairs within their
 * limits; a valid reward is in [0, 1].
 */
#include <string.h>

#include "fuzz_common.h"
#include "ls_http_req.h"
#include "ls_lead.h"

static const char *const one[] = { "/v1/models/", "/v1/leads/", "/v1/campaigns/" };
static const char *const two[][2] = {
	{ "/v1/campaigns/", "/decisions" },
	{ "/v1/decisions/", "/activate" },
	{ "/v1/decisions/", "/reward" },
};

static void paths(const char *url)
{
	for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
		const char *seg = ls_http_req_segment(url, one[i]);
		if (seg == NULL)
			continue;
		size_t pl = strlen(one[i]);
		FUZZ_CHECK(seg == url + pl && seg[0] != '\0' && strchr(seg, '/') == NULL,
			   "segment of %s", one[i]);
	}
	char seg[LS_DECISION_ID_MAX + 64]; /* as in ls_http.c's route() */
	for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
		memset(seg, 'x', sizeof seg);
		if (!ls_http_req_segments(url, two[i][0], two[i][1], seg, sizeof seg))
			continue;
		size_t n = strnlen(seg, sizeof seg);
		FUZZ_CHECK(n > 0 && n < sizeof seg && memchr(seg, '/', n) == NULL,
			   "segment of %s...%s", two[i][0], two[i][1]);
		size_t pl = strlen(two[i][0]);
		FUZZ_CHECK(strlen(url) == pl + n + strlen(two[i][1]) &&
			   memcmp(url + pl, seg, n) == 0, "segment is not the path's");
	}
}

static void decision(const uint8_t *data, size_t size)
{
	char detail[300];
	json_t *o = ls_http_req_object((const char *)data, size, detail, sizeof detail);
	if (o == NULL) {
		FUZZ_CHECK(memchr(detail, 0, sizeof detail) != NULL, "detail unterminated");
		return;
	}
	ls_campaign_request rq;
	memset(&rq, 0, sizeof rq);
	if (ls_http_req_decision(o, 512, &rq) == NULL) {
		size_t ll = strlen(rq.lead_id);
		FUZZ_CHECK(ll >= 1 && ll <= 512, "lead_id of %zu bytes", ll);
		FUZZ_CHECK(rq.n_context <= LS_CAMPAIGN_MAX_REQ_CONTEXT, "%zu context keys",
			   rq.n_context);
		for (size_t i = 0; i < rq.n_context; i++) {
			size_t kl = strlen(rq.ctx_key[i]);
			FUZZ_CHECK(kl >= 1 && kl <= LS_LEAD_KEY_MAX, "context key of %zu bytes", kl);
			FUZZ_CHECK(strlen(rq.ctx_value[i]) <= LS_CAMPAIGN_CTX_VALUE_MAX,
				   "context value too long");
		}
	}
	double reward = -1;
	if (ls_http_req_reward(o, &reward) == NULL)
		FUZZ_CHECK(reward >= 0.0 && reward <= 1.0, "reward %g", reward);
	json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	FUZZ_CHECK(url != NULL, "out of memory");
	memcpy(url, data, size);
	url[size] = '\0';
	paths(url);
	free(url);
	/* an exact-size copy: a read past the body is an ASan report */
	char *body = malloc(size + (size == 0));
	FUZZ_CHECK(body != NULL, "out of memory");
	memcpy(body, data, size);
	decision((const uint8_t *)body, size);
	free(body);
	return 0;
}
