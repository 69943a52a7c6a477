/*
 * ls_testutil.h - small helpers every C test and benchmark shares.
 *
 * Needs only libc, Check and base/ (the clock), so a test of any layer,
 * base/ included, can link it. Helpers that need models/ live in
 * ls_testmodels.h; helpers that need Redis, Kafka or the pipeline live in
 * ls_testenv.h.
 *
 * Memory: nothing here allocates. Errors: none (the clock reads 0 if it
 * fails, as ls_clock does). Thread-safety: the generators update only the
 * state the caller passes; ls_test_run must run on the main thread.
 */
#ifndef LS_TESTUTIL_H
#define LS_TESTUTIL_H

#include <stdint.h>

#include <check.h>

/* Monotonic seconds, for reporting how long a loop took (never asserted). */
double ls_test_now_s(void);

/* splitmix64 step: a fixed sequence per seed, so every run tests the same
 * cases. *state is the seed and is advanced. */
uint64_t ls_test_splitmix64(uint64_t *state);

/* xorshift64 step (13, 7, 17), the benchmarks' cheap generator; *state
 * must not be 0. */
uint64_t ls_test_xorshift64(uint64_t *state);

/* Runs every test of s in mode (CK_NORMAL, CK_ENV, ...), frees it and
 * returns main()'s exit status: EXIT_SUCCESS when nothing failed. */
int ls_test_run(Suite *s, enum print_output mode);

#endif
