/* Unit tests for base/ls_log: the line format operators and journald see. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ls_log.h"
#include "ls_testutil.h"

/* Redirect stderr to a temp file, run the logging, return what was written. */
static FILE *capture_begin(int *saved)
{
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	fflush(stderr);
	*saved = dup(STDERR_FILENO);
	ck_assert_int_ge(*saved, 0);
	ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
	return f;
}

static char *capture_end(FILE *f, int saved)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
	long n = ftell(f);
	ck_assert_int_ge(n, 0);
	char *buf = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	rewind(f);
	size_t got = fread(buf, 1, (size_t)n, f);
	ck_assert_uint_eq(got, (size_t)n);
	fclose(f);
	return buf;
}

START_TEST(test_format_and_context)
{
	int saved;
	FILE *f = capture_begin(&saved);
	ls_log(LS_LOG_INFO, "kafka", "partitions assigned", "count=%d", 3);
	char *out = capture_end(f, saved);
	ck_assert_ptr_nonnull(strstr(out, "ts="));
	ck_assert_ptr_nonnull(strstr(out, " level=info component=kafka msg=\"partitions assigned\" count=3\n"));
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}
END_TEST

/* Registered secrets never reach a line, raw or escaped by ls_log_quote. */
START_TEST(test_secrets_masked)
{
	char q[128];
	ls_log_add_secret("Pw-4471\"x");
	ls_log_add_secret("abc"); /* too short to mask: lines stay readable */
	int saved;
	FILE *f = capture_begin(&saved);
	ls_log(LS_LOG_WARN, "redis", "auth Pw-4471\"x failed", "error=%s again=Pw-4471\"x",
	       ls_log_quote("WRONGPASS for Pw-4471\"x", q, sizeof q));
	char *out = capture_end(f, saved);
	ck_assert_msg(strstr(out, "Pw-4471") == NULL, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "msg=\"auth <redacted> failed\""));
	ck_assert_ptr_nonnull(strstr(out, "error=\"WRONGPASS for <redacted>\" again=<redacted>\n"));
	ck_assert_ptr_nonnull(strstr(out, "level=warn"));
	free(out);
}
END_TEST

START_TEST(test_level_filter)
{
	int saved;
	ls_log_set_level(LS_LOG_WARN);
	FILE *f = capture_begin(&saved);
	ls_log(LS_LOG_INFO, "main", "hidden", NULL);
	ls_log(LS_LOG_DEBUG, "main", "hidden too", NULL);
	ls_log(LS_LOG_ERROR, "main", "shown", NULL);
	char *out = capture_end(f, saved);
	ck_assert_ptr_null(strstr(out, "hidden"));
	ck_assert_ptr_nonnull(strstr(out, "level=error component=main msg=\"shown\""));
	free(out);
	ls_log_set_level(LS_LOG_INFO);
}
END_TEST

START_TEST(test_one_line_per_event)
{
	int saved;
	FILE *f = capture_begin(&saved);
	ls_log(LS_LOG_WARN, "codec", "bad\nmessage \"quoted\"", "detail=%s", "a\nb");
	char *out = capture_end(f, saved);
	/* exactly one newline: the terminator */
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	ck_assert_ptr_nonnull(strstr(out, "msg=\"bad\\nmessage \\\"quoted\\\"\""));
	ck_assert_ptr_nonnull(strstr(out, "detail=a b"));
	free(out);
}
END_TEST

START_TEST(test_journal_prefix)
{
	int saved;
	FILE *f = capture_begin(&saved);
	struct stat st;
	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	char js[64];
	snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	ls_log(LS_LOG_WARN, "redis", "slow", NULL);
	char *out = capture_end(f, saved);
	ck_assert_str_eq(out, "<4>level=warn component=redis msg=\"slow\"\n");
	free(out);
}
END_TEST

START_TEST(test_long_lines_truncate)
{
	int saved;
	char big[10000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	FILE *f = capture_begin(&saved);
	ls_log(LS_LOG_ERROR, "main", big, "k=%s", big);
	char *out = capture_end(f, saved);
	ck_assert_uint_le(strlen(out), 4096);
	ck_assert_int_eq(out[strlen(out) - 1], '\n');
	free(out);
}
END_TEST

START_TEST(test_level_names)
{
	ck_assert_int_eq(ls_log_level_from_name("debug"), LS_LOG_DEBUG);
	ck_assert_int_eq(ls_log_level_from_name("info"), LS_LOG_INFO);
	ck_assert_int_eq(ls_log_level_from_name("warn"), LS_LOG_WARN);
	ck_assert_int_eq(ls_log_level_from_name("warning"), LS_LOG_WARN);
	ck_assert_int_eq(ls_log_level_from_name("error"), LS_LOG_ERROR);
	ck_assert_int_eq(ls_log_level_from_name("loud"), -1);
	ck_assert_int_eq(ls_log_level_from_name(NULL), -1);
	ck_assert_str_eq(ls_log_level_name(LS_LOG_WARN), "warn");
}
END_TEST

START_TEST(test_quote_small_buffer)
{
	char buf[8];
	ck_assert_str_eq(ls_log_quote("abcdefghij", buf, sizeof buf), "\"abcd\"");
	ck_assert_str_eq(ls_log_quote(NULL, buf, sizeof buf), "\"\"");
	char tiny[2];
	ck_assert_str_eq(ls_log_quote("abc", tiny, sizeof tiny), "");
}
END_TEST

START_TEST(test_log_limit)
{
	ls_log_limit l = { 0 };
	uint64_t ended = 99;
	/* 3 lines a second: the first 3 of a burst pass, the rest are counted */
	int allowed = 0;
	for (int i = 0; i < 10; i++) {
		allowed += ls_log_limit_allow(&l, 5000 + i, 3, &ended);
		ck_assert_uint_eq(ended, 0);
	}
	ck_assert_int_eq(allowed, 3);
	/* still inside the window: nothing to report yet */
	ck_assert_uint_eq(ls_log_limit_flush(&l, 5999), 0);
	/* the next line after the window ends reports the 7 left out, exactly once */
	ck_assert(ls_log_limit_allow(&l, 6000, 3, &ended));
	ck_assert_uint_eq(ended, 7);
	ck_assert(ls_log_limit_allow(&l, 6001, 3, &ended));
	ck_assert_uint_eq(ended, 0);
	/* a flood that stops is summarised by flush */
	for (int i = 0; i < 5; i++)
		ls_log_limit_allow(&l, 6002 + i, 3, NULL);
	ck_assert_uint_eq(ls_log_limit_flush(&l, 6500), 0);
	ck_assert_uint_eq(ls_log_limit_flush(&l, 7000), 4);
	ck_assert_uint_eq(ls_log_limit_flush(&l, 9000), 0);
	/* 0 lines a second: every line is counted, none logged */
	ls_log_limit z = { 0 };
	ck_assert(!ls_log_limit_allow(&z, 100, 0, NULL));
	ck_assert(!ls_log_limit_allow(&z, 200, 0, NULL));
	ck_assert_uint_eq(ls_log_limit_flush(&z, 1100), 2);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_format_and_context);
	tcase_add_test(tc, test_secrets_masked);
	tcase_add_test(tc, test_level_filter);
	tcase_add_test(tc, test_one_line_per_event);
	tcase_add_test(tc, test_journal_prefix);
	tcase_add_test(tc, test_long_lines_truncate);
	tcase_add_test(tc, test_level_names);
	tcase_add_test(tc, test_quote_small_buffer);
	tcase_add_test(tc, test_log_limit);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
