/*
 * ls_testredis.c - the side-command and store-opening helpers test_store,
 * test_campaign and test_broker_redis each used to copy. Kept out of
 * ls_testenv.c because these end the test on failure (Check), while the
 * fixtures there report errors and serve the benchmarks too.
 */
#include "ls_testredis.h"

#include <check.h>

#define ERRLEN 2048

static redisReply *vcmd(redisContext *c, const char *fmt, va_list ap)
{
	redisReply *r = redisvCommand(c, fmt, ap);
	ck_assert_msg(r != NULL, "side command failed: %s", c->errstr);
	return r;
}

redisReply *ls_test_cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcmd(c, fmt, ap);
	va_end(ap);
	return r;
}

redisReply *ls_test_cmd_ok(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = vcmd(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r->type != REDIS_REPLY_ERROR, "side command: %s", r->str);
	return r;
}

ls_store *ls_test_store_open(const ls_test_redis *r, const char *prefix,
			     const char *group_id, int64_t lead_ttl_ms,
			     int64_t command_timeout_ms, bool connect)
{
	char err[ERRLEN];
	ls_store_settings s = {
		.url = ls_test_redis_url(r),
		.key_prefix = prefix,
		.group_id = group_id,
		.lead_ttl_ms = lead_ttl_ms,
		.connect_timeout_ms = 1000,
		.command_timeout_ms = command_timeout_ms,
	};
	ls_store *st = ls_store_new(&s, err, sizeof err);
	ck_assert_msg(st != NULL, "%s", err);
	if (connect)
		ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	return st;
}
