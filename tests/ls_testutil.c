/*
 * ls_testutil.c - the helpers the tests used to copy into each file (the
 * clock in seconds, the generators, Check's main()). One home, so a fix
 * reaches every test; kept below models/ so base/'s own tests can use it.
 */
#include "ls_testutil.h"

#include <stdlib.h>

#include "ls_clock.h"

double ls_test_now_s(void)
{
	return (double)ls_clock_mono_ns() / 1e9;
}

uint64_t ls_test_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

uint64_t ls_test_xorshift64(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

int ls_test_run(Suite *s, enum print_output mode)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, mode);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
