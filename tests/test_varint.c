/*
 * test_varint.c - ls_varint (LEB128: round trip at every width, the
 * 10-byte maximum, overflow, non-minimal and truncated input) and
 * ls_reader (sticky first failure, its byte position and message).
 * Links base/ only.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ls_testutil.h"
#include "ls_varint.h"

static void round_trip(uint64_t v)
{
	uint8_t buf[LS_VARINT_MAX + 2];
	memset(buf, 0xaa, sizeof buf);
	uint8_t *end = ls_varint_put(buf, v);
	size_t n = (size_t)(end - buf);
	ck_assert_msg(n == ls_varint_len(v), "%llu: put %zu bytes, len says %zu",
		      (unsigned long long)v, n, ls_varint_len(v));
	ck_assert_uint_le(n, LS_VARINT_MAX);
	ck_assert_uint_eq(buf[n], 0xaa); /* nothing written past the end */
	size_t off = 0;
	uint64_t got = ~v;
	ck_assert_ptr_null(ls_varint_get(buf, n, &off, &got));
	ck_assert_uint_eq(off, n);
	ck_assert_msg(got == v, "%llu read back as %llu", (unsigned long long)v,
		      (unsigned long long)got);
}

START_TEST(test_round_trip_every_width)
{
	/* the values either side of each 7-bit boundary */
	for (unsigned k = 7; k < 64; k += 7) {
		uint64_t edge = (uint64_t)1 << k;
		ck_assert_uint_eq(ls_varint_len(edge - 1), k / 7);
		ck_assert_uint_eq(ls_varint_len(edge), k / 7 + 1);
		round_trip(edge - 1);
		round_trip(edge);
	}
	round_trip(0);
	round_trip(1);
	round_trip(UINT64_MAX);
	round_trip(UINT64_MAX - 1);
	round_trip((uint64_t)1 << 63);
	ck_assert_uint_eq(ls_varint_len(0), 1);
	ck_assert_uint_eq(ls_varint_len(UINT64_MAX), LS_VARINT_MAX);
	uint64_t seed = 0x2545f4914f6cdd1du;
	for (int i = 0; i < 10000; i++) {
		uint64_t v = ls_test_splitmix64(&seed);
		round_trip(v >> (v & 63));
	}
}
END_TEST

START_TEST(test_known_bytes)
{
	uint8_t buf[LS_VARINT_MAX];
	ck_assert_uint_eq((size_t)(ls_varint_put(buf, 300) - buf), 2);
	ck_assert_uint_eq(buf[0], 0xac);
	ck_assert_uint_eq(buf[1], 0x02);
	/* UINT64_MAX: nine 0xFF and a final 0x01 */
	ck_assert_uint_eq((size_t)(ls_varint_put(buf, UINT64_MAX) - buf), 10);
	for (int i = 0; i < 9; i++)
		ck_assert_uint_eq(buf[i], 0xff);
	ck_assert_uint_eq(buf[9], 0x01);
}
END_TEST

static void expect_fail(const uint8_t *d, size_t len, size_t start, const char *why)
{
	size_t off = start;
	uint64_t v = 77;
	const char *got = ls_varint_get(d, len, &off, &v);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, why);
	ck_assert_uint_eq(off, start); /* *off left alone */
	ck_assert_uint_eq(v, 77);      /* *v left alone */
}

START_TEST(test_overflow)
{
	/* 2^64 (bit 64 set in the tenth byte) */
	static const uint8_t over[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					0x80, 0x80, 0x80, 0x02 };
	expect_fail(over, sizeof over, 0, "varint overflows 64 bits");
	/* an eleventh byte: the tenth still says "more" */
	static const uint8_t eleven[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0x81, 0x00 };
	expect_fail(eleven, sizeof eleven, 0, "varint overflows 64 bits");
	static const uint8_t ten_ff[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0x01 };
	expect_fail(ten_ff, sizeof ten_ff, 0, "varint overflows 64 bits");
	/* the largest: tenth byte 0x01 */
	static const uint8_t max[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0x01 };
	size_t off = 0;
	uint64_t v = 0;
	ck_assert_ptr_null(ls_varint_get(max, sizeof max, &off, &v));
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_uint_eq(off, 10);
}
END_TEST

START_TEST(test_not_minimal)
{
	static const uint8_t pad1[] = { 0x80, 0x00 };
	expect_fail(pad1, sizeof pad1, 0, "varint not minimal");
	static const uint8_t pad2[] = { 0x81, 0x80, 0x00 };
	expect_fail(pad2, sizeof pad2, 0, "varint not minimal");
	static const uint8_t pad9[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0xff, 0xff, 0xff, 0x00 };
	expect_fail(pad9, sizeof pad9, 0, "varint not minimal");
	/* a lone zero byte is the minimal 0 */
	static const uint8_t zero[] = { 0x00 };
	size_t off = 0;
	uint64_t v = 5;
	ck_assert_ptr_null(ls_varint_get(zero, 1, &off, &v));
	ck_assert_uint_eq(v, 0);
	ck_assert_uint_eq(off, 1);
}
END_TEST

START_TEST(test_truncated)
{
	expect_fail(NULL, 0, 0, "truncated varint");
	static const uint8_t d[] = { 0x05, 0xff, 0xff };
	expect_fail(d, sizeof d, 1, "truncated varint");
	expect_fail(d, sizeof d, 3, "truncated varint");
	/* a complete varint cut short by len */
	uint8_t buf[LS_VARINT_MAX];
	size_t n = (size_t)(ls_varint_put(buf, UINT64_MAX) - buf);
	for (size_t len = 0; len < n; len++)
		expect_fail(buf, len, 0, "truncated varint");
}
END_TEST

START_TEST(test_sequence_from_offset)
{
	uint8_t buf[4 * LS_VARINT_MAX];
	static const uint64_t vals[] = { 0, 300, UINT64_MAX, 127 };
	uint8_t *p = buf;
	for (size_t i = 0; i < 4; i++)
		p = ls_varint_put(p, vals[i]);
	size_t len = (size_t)(p - buf), off = 0;
	for (size_t i = 0; i < 4; i++) {
		uint64_t v;
		ck_assert_ptr_null(ls_varint_get(buf, len, &off, &v));
		ck_assert_uint_eq(v, vals[i]);
	}
	ck_assert_uint_eq(off, len);
	expect_fail(buf, len, len, "truncated varint");
}
END_TEST

START_TEST(test_u64le)
{
	uint8_t b[8];
	ck_assert_ptr_eq(ls_u64le_put(b, 0x0102030405060708u), b + 8);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(b[i], 8 - i);
	ck_assert_uint_eq(ls_u64le_get(b), 0x0102030405060708u);
	ls_u64le_put(b, UINT64_MAX);
	ck_assert_uint_eq(ls_u64le_get(b), UINT64_MAX);
}
END_TEST

START_TEST(test_reader_reads)
{
	uint8_t d[32];
	uint8_t *p = d;
	*p++ = 0x7e;
	*p++ = 0x34;
	*p++ = 0x12;
	p = ls_varint_put(p, 1000000);
	size_t len = (size_t)(p - d);
	char err[128] = "untouched";
	ls_reader r;
	ls_reader_init(&r, d, len, "blob", err, sizeof err);
	ck_assert(r.ok);
	ck_assert_uint_eq(ls_reader_u8(&r), 0x7e);
	ck_assert_uint_eq(ls_reader_le(&r, 2), 0x1234);
	ck_assert_uint_eq(ls_reader_varint(&r), 1000000);
	ck_assert_uint_eq(r.pos, len);
	ck_assert(r.ok);
	ck_assert_str_eq(err, "untouched");
	ck_assert_uint_eq(ls_reader_le(&r, 0), 0); /* zero bytes at the end fit */
	ck_assert(r.ok);
}
END_TEST

START_TEST(test_reader_truncated_is_sticky)
{
	static const uint8_t d[] = { 1, 2, 3 };
	char err[128] = "";
	ls_reader r;
	ls_reader_init(&r, d, sizeof d, "blob", err, sizeof err);
	ck_assert_uint_eq(ls_reader_u8(&r), 1);
	ck_assert_uint_eq(ls_reader_le(&r, 4), 0); /* 2 bytes left, 4 wanted */
	ck_assert(!r.ok);
	ck_assert_str_eq(err, "blob corrupt at byte 1: truncated");
	ck_assert_uint_eq(r.pos, 1);
	/* every later read fails too, though bytes remain, and the first
	 * reason stays */
	ck_assert_uint_eq(ls_reader_u8(&r), 0);
	ck_assert_uint_eq(ls_reader_le(&r, 1), 0);
	ck_assert_uint_eq(ls_reader_varint(&r), 0);
	ck_assert_uint_eq(r.pos, 1);
	ck_assert_str_eq(err, "blob corrupt at byte 1: truncated");
	ls_reader_fail_at(&r, 2, "later");
	ck_assert_str_eq(err, "blob corrupt at byte 1: truncated");

	ls_reader_init(&r, d, sizeof d, "scoring state", err, sizeof err);
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(ls_reader_u8(&r), (unsigned)i + 1);
	ck_assert_uint_eq(ls_reader_u8(&r), 0);
	ck_assert_str_eq(err, "scoring state corrupt at byte 3: truncated");
}
END_TEST

START_TEST(test_reader_varint_fails_at_its_start)
{
	static const uint8_t d[] = { 0x07, 0x80, 0x00, 0x05 };
	char err[128] = "";
	ls_reader r;
	ls_reader_init(&r, d, sizeof d, "blob", err, sizeof err);
	ck_assert_uint_eq(ls_reader_varint(&r), 7);
	ck_assert_uint_eq(ls_reader_varint(&r), 0);
	ck_assert(!r.ok);
	ck_assert_uint_eq(r.pos, 1);
	ck_assert_str_eq(err, "blob corrupt at byte 1: varint not minimal");

	static const uint8_t t[] = { 0x01, 0x02, 0xff };
	ls_reader_init(&r, t, sizeof t, "blob", err, sizeof err);
	ck_assert_uint_eq(ls_reader_le(&r, 2), 0x0201);
	ck_assert_uint_eq(ls_reader_varint(&r), 0);
	ck_assert_str_eq(err, "blob corrupt at byte 2: truncated varint");
}
END_TEST

START_TEST(test_reader_fail_at_first_wins)
{
	static const uint8_t d[] = { 9 };
	char err[128] = "";
	ls_reader r;
	ls_reader_init(&r, d, sizeof d, "blob", err, sizeof err);
	ls_reader_fail_at(&r, 42, "bad tag");
	ck_assert(!r.ok);
	ck_assert_str_eq(err, "blob corrupt at byte 42: bad tag");
	ls_reader_fail_at(&r, 0, "second");
	ck_assert_str_eq(err, "blob corrupt at byte 42: bad tag");
	ck_assert_uint_eq(ls_reader_u8(&r), 0); /* the byte is there, but failed */

	/* no err buffer: still fails, writes nothing */
	ls_reader_init(&r, d, sizeof d, "blob", NULL, 0);
	ck_assert_uint_eq(ls_reader_le(&r, 2), 0);
	ck_assert(!r.ok);

	/* a short err buffer gets a truncated, terminated message */
	char small[8];
	ls_reader_init(&r, d, sizeof d, "blob", small, sizeof small);
	ls_reader_fail_at(&r, 0, "x");
	ck_assert_str_eq(small, "blob co");
}
END_TEST

static Suite *varint_suite(void)
{
	Suite *s = suite_create("varint");
	TCase *tc = tcase_create("varint");
	tcase_add_test(tc, test_round_trip_every_width);
	tcase_add_test(tc, test_known_bytes);
	tcase_add_test(tc, test_overflow);
	tcase_add_test(tc, test_not_minimal);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_sequence_from_offset);
	tcase_add_test(tc, test_u64le);
	suite_add_tcase(s, tc);
	TCase *tr = tcase_create("reader");
	tcase_add_test(tr, test_reader_reads);
	tcase_add_test(tr, test_reader_truncated_is_sticky);
	tcase_add_test(tr, test_reader_varint_fails_at_its_start);
	tcase_add_test(tr, test_reader_fail_at_first_wins);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	return ls_test_run(varint_suite(), CK_NORMAL);
}
