/*
 * ls_testredis.h - Check helpers over a test Redis (ls_testenv.h): side
 * commands and a store opened on it.
 *
 * Unlike ls_testenv.h, whose functions return errors, these fail the
 * running Check test (ck_assert, which ends the forked test process) when
 * Redis does not answer or the store cannot be built, so they belong in
 * test bodies only, never in a fixture or a benchmark.
 *
 * Memory: a returned reply is the caller's (freeReplyObject); a returned
 * store is the caller's (ls_store_free). Thread-safety: as hiredis and
 * ls_store: one connection or store per thread.
 */
#ifndef LS_TESTREDIS_H
#define LS_TESTREDIS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ls_store.h"
#include "ls_testenv.h"

/* Runs a command on a side connection; fails the test if there is no
 * reply (the connection broke). An error reply is returned. */
redisReply *ls_test_cmd(redisContext *c, const char *fmt, ...);

/* As ls_test_cmd, and also fails the test on an error reply. */
redisReply *ls_test_cmd_ok(redisContext *c, const char *fmt, ...);

/* A store on r's address (connect timeout 1 s) with the given key prefix,
 * group id, lead TTL and command timeout; connected first when connect is
 * true. Fails the test if it cannot be built or connected. */
ls_store *ls_test_store_open(const ls_test_redis *r, const char *prefix,
			     const char *group_id, int64_t lead_ttl_ms,
			     int64_t command_timeout_ms, bool connect);

#endif
