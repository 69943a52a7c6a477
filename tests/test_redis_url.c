/* Unit tests for pipeline/ls_redis URL parsing (no server needed). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_redis.h"

START_TEST(test_tcp_defaults)
{
	ls_redis_target t;
	char err[256];
	ck_assert_int_eq(ls_redis_url_parse("redis://cache.internal", &t, err, sizeof err), 0);
	ck_assert(!t.is_unix);
	ck_assert_str_eq(t.host, "cache.internal");
	ck_assert_int_eq(t.port, 6379);
	ck_assert_int_eq(t.db, 0);
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
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_rejects);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
