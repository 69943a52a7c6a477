/*
 * Unit tests for daemon/ls_http_guard (bearer parsing, the token
 * comparison, control bytes, loopback, limits from the fd limit) and
 * daemon/ls_http_conns (admission per address and in all, the request
 * deadline sweep). No sockets: addresses are built by hand, times passed
 * in.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "ls_http_conns.h"
#include "ls_http_guard.h"
#include "ls_testutil.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

START_TEST(test_bearer)
{
	size_t n = 0;
	const char *t;
	static const char *const ok[] = { "Bearer abc", "bearer abc", "BEARER abc", "bEaReR abc",
					  "Bearer   abc", "Bearer\tabc", "Bearer abc  " };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t = ls_http_guard_bearer(ok[i], &n);
		ck_assert_msg(t != NULL, "%s", ok[i]);
		ck_assert_uint_eq(n, 3);
		ck_assert(memcmp(t, "abc", 3) == 0);
	}
	static const char *const bad[] = { "", "Bearer", "Bearer ", "Bearer   ", "Bearerabc",
					   "Basic abc", "Bear abc", " Bearer abc", "Beare abc" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(ls_http_guard_bearer(bad[i], &n) == NULL, "%s", bad[i]);
	ck_assert_ptr_null(ls_http_guard_bearer(NULL, &n));
}
END_TEST

START_TEST(test_token_equal)
{
	const char *s = "0123456789abcdef";
	ck_assert(ls_http_guard_token_equal(s, 16, s, 16));
	ck_assert(ls_http_guard_token_equal("0123456789abcdef", 16, s, 16));
	ck_assert(!ls_http_guard_token_equal("0123456789abcdeF", 16, s, 16));
	ck_assert(!ls_http_guard_token_equal("x123456789abcdef", 16, s, 16));
	/* a prefix, and the secret repeated, are not the secret */
	ck_assert(!ls_http_guard_token_equal(s, 15, s, 16));
	ck_assert(!ls_http_guard_token_equal("", 0, s, 16));
	ck_assert(!ls_http_guard_token_equal("0123456789abcdef0123456789abcdef", 32, s, 16));
	ck_assert(!ls_http_guard_token_equal("0123456789abcdef0", 17, s, 16));
	/* lengths that differ by a multiple of the byte width */
	char big[16 + 256 + 1];
	memset(big, 'a', sizeof big);
	ck_assert(!ls_http_guard_token_equal(big, 16 + 256, big, 16));
	ck_assert(ls_http_guard_token_equal(big, 16 + 256, big, 16 + 256));
	ck_assert(ls_http_guard_token_equal("", 0, "", 0));
	ck_assert(!ls_http_guard_token_equal("a", 1, "", 0));
}
END_TEST

START_TEST(test_control)
{
	ck_assert(!ls_http_guard_has_control("/v1/leads/abc", 13));
	ck_assert(!ls_http_guard_has_control("caf\xc3\xa9 %", 7)); /* UTF-8 and a space */
	ck_assert(ls_http_guard_has_control("abc\0def", 7));
	ck_assert(ls_http_guard_has_control("a\nb", 3));
	ck_assert(ls_http_guard_has_control("a\x7f", 2));
	ck_assert(ls_http_guard_has_control("\x1f", 1));
	ck_assert(!ls_http_guard_has_control("", 0));
}
END_TEST

START_TEST(test_loopback)
{
	struct sockaddr_storage a;
	a = v4("127.0.0.1");
	ck_assert(ls_http_guard_loopback(SA(a)));
	a = v4("127.255.0.9");
	ck_assert(ls_http_guard_loopback(SA(a)));
	a = v4("0.0.0.0");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	a = v4("10.0.0.1");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	a = v4("128.0.0.1");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	a = v6("::1");
	ck_assert(ls_http_guard_loopback(SA(a)));
	a = v6("::ffff:127.0.0.1");
	ck_assert(ls_http_guard_loopback(SA(a)));
	a = v6("::");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	a = v6("::ffff:10.0.0.1");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	a = v6("fe80::1");
	ck_assert(!ls_http_guard_loopback(SA(a)));
	ck_assert(!ls_http_guard_loopback(NULL));
}
END_TEST

START_TEST(test_limits)
{
	ls_http_limits l;
	ls_http_guard_limits(1024, 0, 0, &l); /* the soft default */
	ck_assert_uint_eq(l.total, 768);
	ck_assert_uint_eq(l.per_address, 96);
	ck_assert(!l.over_fds);
	ls_http_guard_limits(65536, 0, 0, &l); /* the unit's LimitNOFILE */
	ck_assert_uint_eq(l.total, LS_HTTP_DEFAULT_MAX_CONNECTIONS);
	ck_assert_uint_eq(l.per_address, 512);
	ck_assert(!l.over_fds);
	ls_http_guard_limits(200, 0, 0, &l); /* below the reserve: the floor */
	ck_assert_uint_eq(l.total, LS_HTTP_MIN_CONNECTIONS);
	ck_assert_uint_eq(l.per_address, 1);
	ck_assert(l.over_fds);
	ls_http_guard_limits(1024, 100, 10, &l); /* configured */
	ck_assert_uint_eq(l.total, 100);
	ck_assert_uint_eq(l.per_address, 10);
	ck_assert(!l.over_fds);
	ls_http_guard_limits(400, 1000, 0, &l); /* more than the fds carry */
	ck_assert_uint_eq(l.total, 1000);
	ck_assert_uint_eq(l.per_address, 125);
	ck_assert(l.over_fds);
	ls_http_guard_limits(1024, 100, 500, &l); /* per address above the total */
	ck_assert_uint_eq(l.per_address, 100);
}
END_TEST

START_TEST(test_conns_admit)
{
	ls_http_conns *t = ls_http_conns_new(5, 2);
	ck_assert_ptr_nonnull(t);
	struct sockaddr_storage a = v4("127.0.0.2"), b = v4("127.0.0.3"),
				a6 = v6("::ffff:127.0.0.2"), c6 = v6("2001:db8::1");
	ls_http_conn *ca1, *ca2, *cb1;
	ck_assert_int_eq(ls_http_conns_admit(t, SA(a)), LS_HTTP_ADMIT_OK);
	ck_assert_ptr_nonnull(ca1 = ls_http_conns_add(t, SA(a), 10, 0));
	ck_assert_ptr_nonnull(ca2 = ls_http_conns_add(t, SA(a), 11, 0));
	/* the same address in IPv4-mapped form shares the count */
	ck_assert_int_eq(ls_http_conns_admit(t, SA(a6)), LS_HTTP_ADMIT_ADDRESS);
	ck_assert_int_eq(ls_http_conns_admit(t, SA(a)), LS_HTTP_ADMIT_ADDRESS);
	ck_assert_uint_eq(ls_http_conns_from(t, SA(a)), 2);
	ck_assert_int_eq(ls_http_conns_admit(t, SA(b)), LS_HTTP_ADMIT_OK);
	ck_assert_ptr_nonnull(cb1 = ls_http_conns_add(t, SA(b), 12, 0));
	ck_assert_ptr_nonnull(ls_http_conns_add(t, SA(c6), 13, 0));
	ck_assert_ptr_nonnull(ls_http_conns_add(t, SA(c6), 14, 0));
	ck_assert_uint_eq(ls_http_conns_open(t), 5);
	ck_assert_int_eq(ls_http_conns_admit(t, SA(b)), LS_HTTP_ADMIT_TOTAL);
	ls_http_conns_remove(t, ca1);
	ck_assert_int_eq(ls_http_conns_admit(t, SA(a)), LS_HTTP_ADMIT_OK);
	ls_http_conns_remove(t, ca2);
	ck_assert_uint_eq(ls_http_conns_from(t, SA(a)), 0); /* its node is gone */
	ls_http_conns_remove(t, cb1);
	ls_http_conns_remove(t, NULL);
	ck_assert_uint_eq(ls_http_conns_open(t), 2);
	ck_assert_uint_eq(ls_http_conns_total_limit(t), 5);
	ck_assert_uint_eq(ls_http_conns_address_limit(t), 2);
	ls_http_conns_free(t); /* frees the two left */
	ck_assert_ptr_null(ls_http_conns_new(0, 1));
}
END_TEST

typedef struct seen {
	int fds[8];
	size_t n;
} seen;

static void note(int fd, const struct sockaddr *addr, void *arg)
{
	seen *s = arg;
	ck_assert_ptr_nonnull(addr);
	s->fds[s->n++] = fd;
}

START_TEST(test_conns_expire)
{
	ls_http_conns *t = ls_http_conns_new(10, 10);
	struct sockaddr_storage a = v4("10.1.2.3");
	ls_http_conn *c1 = ls_http_conns_add(t, SA(a), 21, 100);
	ls_http_conn *c2 = ls_http_conns_add(t, SA(a), 22, 200);
	ck_assert_ptr_nonnull(c1);
	ck_assert_ptr_nonnull(c2);
	seen s = { .n = 0 };
	ck_assert_uint_eq(ls_http_conns_expire(t, 100, note, &s), 0); /* none before 100 */
	ck_assert_uint_eq(ls_http_conns_expire(t, 150, note, &s), 1);
	ck_assert_int_eq(s.fds[0], 21);
	/* once per request: not again until its clock restarts */
	ck_assert_uint_eq(ls_http_conns_expire(t, 150, note, &s), 0);
	/* c2 answered a request at 300: its next one starts then */
	ls_http_conns_restart(t, c2, 300);
	ck_assert_uint_eq(ls_http_conns_expire(t, 250, note, &s), 0);
	ck_assert_uint_eq(ls_http_conns_expire(t, 301, note, &s), 1);
	ck_assert_int_eq(s.fds[1], 22);
	ls_http_conns_restart(t, c1, 400);
	ck_assert_uint_eq(ls_http_conns_expire(t, 401, note, &s), 1);
	ck_assert_int_eq(s.fds[2], 21);
	ls_http_conns_remove(t, c1);
	ls_http_conns_remove(t, c2);
	ck_assert_uint_eq(ls_http_conns_expire(t, 1000, note, &s), 0);
	ls_http_conns_free(t);
}
END_TEST

START_TEST(test_conns_bad_url)
{
	ls_http_conns *t = ls_http_conns_new(1, 1);
	struct sockaddr_storage a = v4("127.0.0.1");
	ls_http_conn *c = ls_http_conns_add(t, SA(a), 3, 0);
	ck_assert(!ls_http_conn_take_bad_url(c));
	ls_http_conn_mark_bad_url(c);
	ck_assert(ls_http_conn_take_bad_url(c));
	ck_assert(!ls_http_conn_take_bad_url(c)); /* taken: the next request is clean */
	ck_assert(!ls_http_conn_take_bad_url(NULL));
	ls_http_conn_mark_bad_url(NULL);
	ls_http_conns_remove(t, c);
	ls_http_conns_free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("http_guard");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_bearer);
	tcase_add_test(tc, test_token_equal);
	tcase_add_test(tc, test_control);
	tcase_add_test(tc, test_loopback);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_conns_admit);
	tcase_add_test(tc, test_conns_expire);
	tcase_add_test(tc, test_conns_bad_url);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
