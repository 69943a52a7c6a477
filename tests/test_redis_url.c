/* Unit tests for pipeline/ls_redis URL parsing (no server needed). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_redis.h"
#include "ls_testutil.h"

START_TEST(test_tcp_defaults)
{
	ls_redis_target t;
	char err[256];
	ck_assert_int_eq(ls_redis_url_parse("redis://cache.internal", &t, err, sizeof err), 0);
	ck_assert(!t.is_unix);
	ck_assert_str_eq(t.host, "cache.internal");
	ck_assert_int_eq(t.port, 6379);
	ck_assert_int_eq(t.db, 0);
	ck_assert_ptr_null(t.user);
	ck_assert_ptr_null(t.password);
	ls_redis_target_free(&t);
}
END_TEST

START_TEST(test_tcp_full)
{
	ls_redis_target t;
	char err[256];
	ck_assert_int_eq(ls_redis_url_parse("redis://user:s3cret@10.0.0.5:6380/3", &t, err, sizeof err), 0);
	ck_assert_str_eq(t.host, "10.0.0.5");
	ck_assert_int_eq(t.port, 6380);
	ck_assert_int_eq(t.db, 3);
	ck_assert_str_eq(t.user, "user");
	ck_assert_str_eq(t.password, "s3cret");
	char d[128];
	/* the password never reaches a log line */
	ck_assert_str_eq(ls_redis_target_describe(&t, d, sizeof d), "10.0.0.5:6380 db=3");
	ls_redis_target_free(&t);

	ck_assert_int_eq(ls_redis_url_parse("redis://[::1]:7000/", &t, err, sizeof err), 0);
	ck_assert_str_eq(t.host, "::1");
	ck_assert_int_eq(t.port, 7000);
	ls_redis_target_free(&t);
}
END_TEST

/* Who AUTH authenticates as: an ACL user only when the URL names one. */
START_TEST(test_userinfo)
{
	static const struct {
		const char *url, *user, *password, *host;
	} cases[] = {
		{ "redis://:pw@h", NULL, "pw", "h" },
		/* a bare password: accepted since the first release, default user */
		{ "redis://pw@h:1/2", NULL, "pw", "h" },
		{ "redis://app:pw@h", "app", "pw", "h" },
		/* percent-decoded; %3A lets a user name hold ':' */
		{ "redis://a%3Ab%40c:p%40ss%2Fw%3Ard%25@h", "a:b@c", "p@ss/w:rd%", "h" },
		{ "redis://app:p%20w@[::1]:7000/1", "app", "p w", "::1" },
		/* the last '@' before the path ends the userinfo, so a raw '@'
		 * in a password needs no escape; ':' after the first is the
		 * password's */
		{ "redis://app:p@ss:w@h:6380", "app", "p@ss:w", "h" },
		{ "redis://:%E2%82%AC@h", NULL, "\xE2\x82\xAC", "h" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ls_redis_target t;
		char err[256] = "";
		ck_assert_msg(ls_redis_url_parse(cases[i].url, &t, err, sizeof err) == 0,
			      "%s: %s", cases[i].url, err);
		if (cases[i].user == NULL)
			ck_assert_ptr_null(t.user);
		else
			ck_assert_str_eq(t.user, cases[i].user);
		ck_assert_str_eq(t.password, cases[i].password);
		ck_assert_str_eq(t.host, cases[i].host);
		ls_redis_target_free(&t);
	}

	ls_redis_target t;
	char err[256];
	ck_assert_int_eq(ls_redis_url_parse("unix://app:s%40cret@/run/r.sock?db=3", &t, err, sizeof err), 0);
	ck_assert(t.is_unix);
	ck_assert_str_eq(t.path, "/run/r.sock");
	ck_assert_str_eq(t.user, "app");
	ck_assert_str_eq(t.password, "s@cret");
	ck_assert_int_eq(t.db, 3);
	ls_redis_target_free(&t);
	ck_assert_int_eq(ls_redis_url_parse("unix://:pw@/r.sock", &t, err, sizeof err), 0);
	ck_assert_ptr_null(t.user);
	ck_assert_str_eq(t.password, "pw");
	ls_redis_target_free(&t);
}
END_TEST

/* Errors say what is wrong without quoting the URL, which holds secrets. */
START_TEST(test_errors_hide_secrets)
{
	static const char *bad[] = {
		"redis://app:Sekr1tPw@",           /* no host */
		"redis://app:Sekr1tPw@h:99999",    /* bad port */
		"redis://app:Sekr1tPw%4@h",        /* bad escape */
		"redis://app:Sekr1tPw%zz@h",
		"redis://app:Sekr1tPw%00@h",
		"redis://Sekr1tPw:@h",             /* user without a password */
		"redis://:@h",
		"unix://app:Sekr1tPw@relative.sock",
		"unix://app:Sekr1tPw@/s.sock?pw=1",
		"redis://app:Sekr1tPw@h/db",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ls_redis_target t;
		char err[256] = "";
		ck_assert_msg(ls_redis_url_parse(bad[i], &t, err, sizeof err) == -1,
			      "accepted '%s'", bad[i]);
		ck_assert_msg(strstr(err, "invalid redis url: ") == err, "%s", err);
		ck_assert_msg(strstr(err, "Sekr1tPw") == NULL, "leaks: %s", err);
		ck_assert_msg(strstr(err, "app") == NULL, "leaks the user: %s", err);
		ck_assert_ptr_null(t.user);
		ck_assert_ptr_null(t.password);
	}
}
END_TEST

START_TEST(test_unix)
{
	ls_redis_target t;
	char err[256];
	ck_assert_int_eq(ls_redis_url_parse("unix:///run/redis/redis.sock?db=2", &t, err, sizeof err), 0);
	ck_assert(t.is_unix);
	ck_assert_str_eq(t.path, "/run/redis/redis.sock");
	ck_assert_int_eq(t.db, 2);
	ls_redis_target_free(&t);
}
END_TEST

START_TEST(test_rejects)
{
	static const char *bad[] = {
		"", "http://x", "redis://", "redis://:6379", "redis://h:0",
		"redis://h:65536", "redis://h:12ab", "redis://h/x", "redis://h/-1",
		"unix://", "unix://relative.sock", "unix:///s.sock?database=1",
		"redis://[::1", "redis://h:/0",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ls_redis_target t;
		char err[256] = "";
		ck_assert_msg(ls_redis_url_parse(bad[i], &t, err, sizeof err) == -1,
			      "accepted '%s'", bad[i]);
		ck_assert_msg(strstr(err, "invalid redis url") != NULL, "%s", err);
		ck_assert_ptr_null(t.host);
		ck_assert_ptr_null(t.path);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("redis_url");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_tcp_defaults);
	tcase_add_test(tc, test_tcp_full);
	tcase_add_test(tc, test_userinfo);
	tcase_add_test(tc, test_errors_hide_secrets);
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_rejects);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
