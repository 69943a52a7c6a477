/*
 * Unit tests for daemon/ls_http_req: the HTTP API's path segments and the
 * decision and reward bodies, without a server (the routes end to end are
 * in tests/integration/test_http.py; tests/fuzz/fuzz_http.c fuzzes these).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_http_req.h"
#include "ls_testutil.h"

START_TEST(test_segment)
{
	ck_assert_str_eq(ls_http_req_segment("/v1/leads/lead-42", "/v1/leads/"), "lead-42");
	ck_assert_ptr_null(ls_http_req_segment("/v1/leads/", "/v1/leads/"));
	ck_assert_ptr_null(ls_http_req_segment("/v1/leads/a/b", "/v1/leads/"));
	ck_assert_ptr_null(ls_http_req_segment("/v1/lead", "/v1/leads/"));
	ck_assert_ptr_null(ls_http_req_segment("", "/v1/leads/"));
}
END_TEST

START_TEST(test_segments)
{
	char seg[16];
	ck_assert(ls_http_req_segments("/v1/decisions/d-1/reward", "/v1/decisions/", "/reward",
				       seg, sizeof seg));
	ck_assert_str_eq(seg, "d-1");
	/* empty, nested, wrong suffix, prefix and suffix overlapping */
	ck_assert(!ls_http_req_segments("/v1/decisions//reward", "/v1/decisions/", "/reward",
					seg, sizeof seg));
	ck_assert(!ls_http_req_segments("/v1/decisions/a/b/reward", "/v1/decisions/", "/reward",
					seg, sizeof seg));
	ck_assert(!ls_http_req_segments("/v1/decisions/d-1/activate", "/v1/decisions/",
					"/reward", seg, sizeof seg));
	ck_assert(!ls_http_req_segments("/v1/decisions/reward", "/v1/decisions/", "/reward",
					seg, sizeof seg));
	/* 15 bytes fit in 16, 16 do not */
	ck_assert(ls_http_req_segments("/p/123456789012345/s", "/p/", "/s", seg, sizeof seg));
	ck_assert_str_eq(seg, "123456789012345");
	ck_assert(!ls_http_req_segments("/p/1234567890123456/s", "/p/", "/s", seg, sizeof seg));
}
END_TEST

static json_t *obj(const char *s)
{
	char detail[300] = "";
	json_t *o = ls_http_req_object(s, strlen(s), detail, sizeof detail);
	ck_assert_msg(o != NULL, "%s: %s", s, detail);
	return o;
}

START_TEST(test_object)
{
	char detail[300];
	ck_assert_ptr_null(ls_http_req_object(NULL, 0, detail, sizeof detail));
	ck_assert_str_eq(detail, "expected a JSON object body");
	ck_assert_ptr_null(ls_http_req_object("[1]", 3, detail, sizeof detail));
	ck_assert_str_eq(detail, "expected a JSON object body");
	ck_assert_ptr_null(ls_http_req_object("{\"a\":1,\"a\":2}", 13, detail, sizeof detail));
	ck_assert_msg(strstr(detail, "line 1 column") == detail, "%s", detail);
	/* only len bytes are read: the body is not NUL-terminated */
	ck_assert_ptr_null(ls_http_req_object("{\"a\":1}", 6, detail, sizeof detail));
	json_decref(obj("{\"a\":1}"));
}
END_TEST

START_TEST(test_decision)
{
	ls_campaign_request rq;
	json_t *o = obj("{\"lead_id\":\"l-1\",\"context\":{\"tier\":\"hot\",\"industry\":\"saas\"},"
			"\"activate\":false}");
	memset(&rq, 0, sizeof rq);
	ck_assert_ptr_null(ls_http_req_decision(o, 512, &rq));
	ck_assert_str_eq(rq.lead_id, "l-1");
	ck_assert(!rq.activate);
	ck_assert_uint_eq(rq.n_context, 2);
	ck_assert_str_eq(rq.ctx_key[0], "tier");
	ck_assert_str_eq(rq.ctx_value[0], "hot");
	json_decref(o);

	o = obj("{\"lead_id\":\"l-1\",\"context\":null}");
	ck_assert_ptr_null(ls_http_req_decision(o, 512, &rq));
	ck_assert(rq.activate); /* the default */
	ck_assert_uint_eq(rq.n_context, 0);
	json_decref(o);

	static const char *const bad[] = {
		"{}",
		"{\"lead_id\":\"\"}",
		"{\"lead_id\":7}",
		"{\"lead_id\":\"l\",\"activate\":1}",
		"{\"lead_id\":\"l\",\"context\":[]}",
		"{\"lead_id\":\"l\",\"context\":{\"k\":1}}",
		"{\"lead_id\":\"l\",\"context\":{\"\":\"v\"}}",
		/* 9 context keys */
		"{\"lead_id\":\"l\",\"context\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":\"6\",\"g\":\"7\",\"h\":\"8\",\"i\":\"9\"}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = obj(bad[i]);
		ck_assert_msg(ls_http_req_decision(o, 512, &rq) != NULL, "accepted %s", bad[i]);
		json_decref(o);
	}
	/* 512 bytes of lead id are fine under a cap of 512, 513 are too long */
	char body[600];
	snprintf(body, sizeof body, "{\"lead_id\":\"%0512d\"}", 0);
	o = obj(body);
	ck_assert_ptr_null(ls_http_req_decision(o, 512, &rq));
	json_decref(o);
	snprintf(body, sizeof body, "{\"lead_id\":\"%0513d\"}", 0);
	o = obj(body);
	ck_assert_ptr_eq(ls_http_req_decision(o, 512, &rq), ls_http_req_id_too_long);
	json_decref(o);
}
END_TEST

START_TEST(test_reward)
{
	static const char *const good[] = { "{\"reward\":0}", "{\"reward\":1}", "{\"reward\":0.25}" };
	static const double want[] = { 0, 1, 0.25 };
	for (size_t i = 0; i < 3; i++) {
		json_t *o = obj(good[i]);
		double r = -1;
		ck_assert_ptr_null(ls_http_req_reward(o, &r));
		ck_assert(r == want[i]);
		json_decref(o);
	}
	static const char *const bad[] = { "{}", "{\"reward\":\"1\"}", "{\"reward\":-0.5}",
					   "{\"reward\":1.01}", "{\"reward\":null}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *o = obj(bad[i]);
		double r;
		ck_assert_msg(ls_http_req_reward(o, &r) != NULL, "accepted %s", bad[i]);
		json_decref(o);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http_req");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_segment);
	tcase_add_test(tc, test_segments);
	tcase_add_test(tc, test_object);
	tcase_add_test(tc, test_decision);
	tcase_add_test(tc, test_reward);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
