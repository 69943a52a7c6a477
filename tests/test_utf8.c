/*
 * test_utf8.c - ls_utf8_valid at every boundary RFC 3629 draws (widths,
 * overlongs, surrogates, U+10FFFF, truncation, NUL) and ls_utf8_cut at
 * every cut point of mixed-width text. Links base/ only.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ls_testutil.h"
#include "ls_utf8.h"

typedef struct bytes_case {
	const char *s; /* may hold a NUL; n says how many bytes count */
	size_t n;
	bool valid;
	const char *what;
} bytes_case;

#define CASE(lit, ok, what) { lit, sizeof(lit) - 1, ok, what }

static const bytes_case cases[] = {
	CASE("", true, "empty"),
	CASE("plain ascii ~\x7f", true, "ASCII up to U+007F"),
	/* two bytes: U+0080..U+07FF */
	CASE("\xc2\x80", true, "U+0080, first two-byte"),
	CASE("\xdf\xbf", true, "U+07FF, last two-byte"),
	CASE("\xc0\x80", false, "overlong NUL"),
	CASE("\xc1\xbf", false, "overlong U+007F"),
	/* three bytes: U+0800..U+FFFF less the surrogates */
	CASE("\xe0\xa0\x80", true, "U+0800, first three-byte"),
	CASE("\xe0\x9f\xbf", false, "overlong U+07FF in three bytes"),
	CASE("\xe0\x80\x80", false, "overlong NUL in three bytes"),
	CASE("\xed\x9f\xbf", true, "U+D7FF, below the surrogates"),
	CASE("\xed\xa0\x80", false, "U+D800, first surrogate"),
	CASE("\xed\xbf\xbf", false, "U+DFFF, last surrogate"),
	CASE("\xee\x80\x80", true, "U+E000, above the surrogates"),
	CASE("\xef\xbf\xbf", true, "U+FFFF, last three-byte"),
	/* four bytes: U+10000..U+10FFFF */
	CASE("\xf0\x90\x80\x80", true, "U+10000, first four-byte"),
	CASE("\xf0\x8f\xbf\xbf", false, "overlong U+FFFF in four bytes"),
	CASE("\xf0\x80\x80\x80", false, "overlong NUL in four bytes"),
	CASE("\xf4\x8f\xbf\xbf", true, "U+10FFFF, the last code point"),
	CASE("\xf4\x90\x80\x80", false, "U+110000, past the last"),
	CASE("\xf5\x80\x80\x80", false, "lead byte F5"),
	CASE("\xf8\x88\x80\x80\x80", false, "five-byte form"),
	CASE("\xfe", false, "byte FE"),
	CASE("\xff", false, "byte FF"),
	/* continuation bytes where a lead belongs */
	CASE("\x80", false, "lone continuation 80"),
	CASE("\xbf", false, "lone continuation BF"),
	CASE("a\x80" "b", false, "continuation after ASCII"),
	/* truncated sequences, alone and at the end of valid text */
	CASE("\xc2", false, "two-byte lead alone"),
	CASE("\xe0\xa0", false, "three-byte missing one"),
	CASE("\xe2", false, "three-byte lead alone"),
	CASE("\xf0\x90\x80", false, "four-byte missing one"),
	CASE("\xf0\x90", false, "four-byte missing two"),
	CASE("ok \xc3\xa9 \xe2\x82", false, "valid text, truncated euro"),
	/* a lead followed by a non-continuation */
	CASE("\xc2" "A", false, "two-byte lead then ASCII"),
	CASE("\xe2\x82" "A", false, "three-byte, last byte ASCII"),
	CASE("\xe2\xc2\xa2", false, "three-byte lead then a lead"),
	/* NUL anywhere */
	CASE("\0", false, "NUL alone"),
	CASE("ab\0cd", false, "NUL inside"),
	CASE("\xc3\xa9\0", false, "NUL after a code point"),
	/* mixed, all valid */
	CASE("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", true, "1+2+3+4 byte mix"),
};

START_TEST(test_valid_table)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(ls_utf8_valid(cases[i].s, cases[i].n) == cases[i].valid,
			      "%s: expected %s", cases[i].what,
			      cases[i].valid ? "valid" : "invalid");
}
END_TEST

START_TEST(test_valid_counts_only_n)
{
	/* n bounds the check: bytes past it (a NUL, a bad byte) do not count,
	 * and a sequence cut by n is truncated even if the rest follows */
	ck_assert(ls_utf8_valid(NULL, 0));
	ck_assert(ls_utf8_valid("ab\0", 2));
	ck_assert(ls_utf8_valid("ab\xff", 2));
	ck_assert(!ls_utf8_valid("a\xc3\xa9", 2));
	ck_assert(ls_utf8_valid("a\xc3\xa9", 3));
	ck_assert(!ls_utf8_valid("\xf0\x9f\x98\x80", 3));
	ck_assert(ls_utf8_valid("\xf0\x9f\x98\x80", 4));
}
END_TEST

START_TEST(test_valid_every_two_byte_lead)
{
	/* every lead byte against a continuation 0x80..0xBF: only C2..DF
	 * start a two-byte sequence */
	for (unsigned lead = 0x80; lead <= 0xff; lead++)
		for (unsigned cont = 0x80; cont <= 0xbf; cont++) {
			char s[2] = { (char)lead, (char)cont };
			bool want = lead >= 0xc2 && lead <= 0xdf;
			ck_assert_msg(ls_utf8_valid(s, 2) == want, "%02x %02x", lead, cont);
		}
}
END_TEST

START_TEST(test_valid_every_three_byte_second)
{
	/* the second byte decides overlong (E0) and surrogate (ED) */
	for (unsigned lead = 0xe0; lead <= 0xef; lead++)
		for (unsigned b1 = 0x00; b1 <= 0xff; b1++) {
			char s[3] = { (char)lead, (char)b1, (char)0x80 };
			bool want = b1 >= 0x80 && b1 <= 0xbf;
			if (lead == 0xe0 && b1 < 0xa0)
				want = false;
			if (lead == 0xed && b1 >= 0xa0)
				want = false;
			ck_assert_msg(ls_utf8_valid(s, 3) == want, "%02x %02x 80", lead, b1);
		}
}
END_TEST

START_TEST(test_valid_every_four_byte_second)
{
	for (unsigned lead = 0xf0; lead <= 0xf7; lead++)
		for (unsigned b1 = 0x80; b1 <= 0xbf; b1++) {
			char s[4] = { (char)lead, (char)b1, (char)0x80, (char)0x80 };
			bool want = lead <= 0xf4;
			if (lead == 0xf0 && b1 < 0x90)
				want = false;
			if (lead == 0xf4 && b1 >= 0x90)
				want = false;
			ck_assert_msg(ls_utf8_valid(s, 4) == want, "%02x %02x 80 80", lead, b1);
		}
}
END_TEST

START_TEST(test_cut_fits)
{
	ck_assert_uint_eq(ls_utf8_cut("", 0), 0);
	ck_assert_uint_eq(ls_utf8_cut("", 5), 0);
	ck_assert_uint_eq(ls_utf8_cut("abc", 3), 3);
	ck_assert_uint_eq(ls_utf8_cut("abc", 100), 3);
	ck_assert_uint_eq(ls_utf8_cut("abc", 2), 2);
	ck_assert_uint_eq(ls_utf8_cut("abc", 0), 0);
	ck_assert_uint_eq(ls_utf8_cut("\xc3\xa9", 2), 2);
}
END_TEST

START_TEST(test_cut_inside_each_width)
{
	/* "a" + é (2) + € (3) + 😀 (4) + "z": byte offsets 0 | 1 | 3 | 6 | 10 | 11 */
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
	static const size_t want[] = {
		0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11, 11, 11,
	};
	for (size_t max = 0; max < sizeof want / sizeof want[0]; max++)
		ck_assert_msg(ls_utf8_cut(s, max) == want[max], "max %zu: %zu, want %zu",
			      max, ls_utf8_cut(s, max), want[max]);
}
END_TEST

START_TEST(test_cut_every_point_is_valid_and_longest)
{
	const char *s = "\xf4\x8f\xbf\xbf" "x\xdf\xbf\xef\xbf\xbf\xc2\x80" "yz"
			"\xf0\x90\x80\x80\xe0\xa0\x80";
	size_t len = strlen(s);
	ck_assert(ls_utf8_valid(s, len));
	for (size_t max = 0; max <= len + 1; max++) {
		size_t n = ls_utf8_cut(s, max);
		ck_assert_uint_le(n, max);
		ck_assert_msg(ls_utf8_valid(s, n), "max %zu: prefix %zu not valid", max, n);
		/* longest: the next code point would not fit */
		if (n < len) {
			size_t next = n + 1;
			while (next < len && ((unsigned char)s[next] & 0xc0u) == 0x80u)
				next++;
			ck_assert_msg(next > max, "max %zu: cut at %zu, %zu fits", max, n, next);
		} else {
			ck_assert_uint_eq(n, len);
		}
	}
}
END_TEST

START_TEST(test_cut_stops_at_nul)
{
	/* s is NUL-terminated: the bytes after the NUL are never read */
	char s[8] = "ab\0\xc3\xa9";
	ck_assert_uint_eq(ls_utf8_cut(s, 1), 1);
	ck_assert_uint_eq(ls_utf8_cut(s, 2), 2);
	ck_assert_uint_eq(ls_utf8_cut(s, 7), 2);
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_valid_table);
	tcase_add_test(tc, test_valid_counts_only_n);
	tcase_add_test(tc, test_valid_every_two_byte_lead);
	tcase_add_test(tc, test_valid_every_three_byte_second);
	tcase_add_test(tc, test_valid_every_four_byte_second);
	tcase_add_test(tc, test_cut_fits);
	tcase_add_test(tc, test_cut_inside_each_width);
	tcase_add_test(tc, test_cut_every_point_is_valid_and_longest);
	tcase_add_test(tc, test_cut_stops_at_nul);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(utf8_suite(), CK_NORMAL);
}
