/*
 * test_store.c - the Redis state store against a real redis-server.
 *
 * Every promise of pipeline/ls_store.h is checked on the wire: values are
 * read back through a second, independent hiredis connection, TTLs with
 * PTTL, offsets with HGET. The failure cases use the real thing too: the
 * fixture stops the server mid-use, SIGSTOP freezes it mid-commit, CLIENT
 * PAUSE holds an EXEC, maxmemory makes Redis refuse a queued command.
 *
 * SIGPIPE is deliberately left at its default (terminate) here: the store
 * promises to survive writes to a dead server on its own, and a test
 * process killed by SIGPIPE fails loudly. Side connections are never used
 * across a server stop.
 */
#include "ls_clock.h"
#include "ls_store.h"
#include "ls_testenv.h"
#include "ls_testredis.h"
#include "ls_testutil.h"

#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 2048
#define TTL_MS ((int64_t)60000)

static ls_test_redis *start_redis(ls_test_redis_mode mode)
{
	char err[ERRLEN];
	ls_test_redis *r = NULL;
	ck_assert_msg(ls_test_redis_start(&r, mode, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	return r;
}

static ls_store *open_store(const ls_test_redis *r, int64_t cmd_timeout_ms)
{
	char err[ERRLEN];
	ls_store *st = ls_test_store_open(r, "t:", "g1", TTL_MS, cmd_timeout_ms, false);
	ck_assert(!ls_store_connected(st));
	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	ck_assert(ls_store_connected(st));
	return st;
}

static redisContext *side(const ls_test_redis *r)
{
	char err[ERRLEN];
	redisContext *c = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

static long long cmd_int(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *r = ls_test_cmd(c, fmt, arg);
	ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "reply type %d (%s)",
		      r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

static long long dbsize(redisContext *c)
{
	return cmd_int(c, "DBSIZE%s", "");
}

static void lead_key(const ls_store *st, const char *id, char *buf, size_t n)
{
	ck_assert_int_gt(ls_store_lead_key(st, id, buf, n), 0);
}

/* Deterministic pseudo-random blob for lead i. */
static void fill_blob(uint8_t *b, size_t len, size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u + 1u;
	for (size_t k = 0; k < len; k++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[k] = (uint8_t)x;
	}
}

/* Wait until the server has only our side connection (dead ones freed,
 * so whatever they had sent has been processed). */
static void wait_alone(redisContext *c)
{
	int64_t deadline = ls_clock_mono_ms() + 5000;
	for (;;) {
		redisReply *r = ls_test_cmd(c, "INFO clients");
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		bool alone = strstr(r->str, "connected_clients:1\r\n") != NULL;
		freeReplyObject(r);
		if (alone)
			return;
		ck_assert_msg(ls_clock_mono_ms() < deadline, "old client not freed");
		usleep(10000);
	}
}

/* ------------------------------------------------------------ settings */

START_TEST(test_new_rejects_bad_settings)
{
	char err[ERRLEN];
	ls_store_settings s = { "redis://127.0.0.1:1/0", "t:", "g", TTL_MS, 100, 100 };

	s.url = "http://x";
	ck_assert_ptr_null(ls_store_new(&s, err, sizeof err));
	ck_assert_msg(strstr(err, "invalid redis url") != NULL, "%s", err);
	s.url = "redis://127.0.0.1:1/0";
	s.lead_ttl_ms = 0;
	ck_assert_ptr_null(ls_store_new(&s, err, sizeof err));
	ck_assert_msg(strstr(err, "TTL") != NULL, "%s", err);
	s.lead_ttl_ms = TTL_MS;
	s.group_id = NULL;
	ck_assert_ptr_null(ls_store_new(&s, err, sizeof err));
	s.group_id = "g";
	s.command_timeout_ms = -1;
	ck_assert_ptr_null(ls_store_new(&s, err, sizeof err));
	s.command_timeout_ms = 100;

	ls_store *st = ls_store_new(&s, err, sizeof err);
	ck_assert_msg(st != NULL, "%s", err);
	char buf[64];
	ck_assert_int_eq(ls_store_lead_key(st, "lead-1", buf, sizeof buf), 12);
	ck_assert_str_eq(buf, "t:{lead-1}:s");
	ck_assert_int_eq(ls_store_lead_key(st, "lead-1", buf, 12), -1);
	ck_assert_str_eq(buf, "");
	ck_assert_str_eq(ls_store_offsets_key(st), "t:offsets:g");

	/* nothing listens on port 1: connect fails, calls fail fast */
	ck_assert_int_eq(ls_store_connect(st, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "127.0.0.1:1") != NULL, "%s", err);
	ck_assert(!ls_store_connected(st));
	const char *id = "x";
	ls_store_blob b;
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not connected") != NULL, "%s", err);
	ls_store_free(st);
	ls_store_free(NULL);
}
END_TEST

/* ---------------------------------------------------------- load/commit */

START_TEST(test_load_missing_and_present)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);

	/* empty batches: no round trip, no error */
	ck_assert_int_eq(ls_store_load(st, NULL, 0, NULL, err, sizeof err), 0);
	ck_assert_int_eq(ls_store_commit(st, NULL, 0, NULL, 0, err, sizeof err), 0);

	const char *none[2] = { "a", "b" };
	ls_store_blob out[5];
	ck_assert_msg(ls_store_load(st, none, 2, out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_ptr_null(out[0].data);
	ck_assert_ptr_null(out[1].data);

	ls_store_write w[2] = {
		{ "a", (const uint8_t *)"alpha", 5 },
		{ "c", (const uint8_t *)"gamma!", 6 },
	};
	ck_assert_msg(ls_store_commit(st, w, 2, NULL, 0, err, sizeof err) == 0,
		      "%s", err);

	const char *ids[5] = { "a", "b", "c", "a", "zzz" };
	ck_assert_msg(ls_store_load(st, ids, 5, out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(out[0].len, 5);
	ck_assert_mem_eq(out[0].data, "alpha", 5);
	ck_assert_ptr_null(out[1].data);
	ck_assert_uint_eq(out[2].len, 6);
	ck_assert_mem_eq(out[2].data, "gamma!", 6);
	ck_assert_uint_eq(out[3].len, 5); /* duplicate id, same answer */
	ck_assert_mem_eq(out[3].data, "alpha", 5);
	ck_assert_ptr_null(out[4].data);

	/* a key of the wrong type fails its own reply; the connection stays
	 * in step and the next call answers correctly */
	redisContext *c = side(r);
	freeReplyObject(ls_test_cmd(c, "HSET t:{b}:s f v"));
	ck_assert_int_eq(ls_store_load(st, ids, 5, out, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "WRONGTYPE") != NULL && strstr(err, "lead b"),
		      "%s", err);
	ck_assert(ls_store_connected(st));
	const char *one = "c";
	ck_assert_int_eq(ls_store_load(st, &one, 1, out, err, sizeof err), 0);
	ck_assert_mem_eq(out[0].data, "gamma!", 6);

	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

START_TEST(test_binary_blobs_roundtrip)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_TCP);
	ls_store *st = open_store(r, 5000);

	uint8_t all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)(255 - i); /* ends with a NUL */
	const uint8_t nuls[5] = { 0, 0, 'x', 0, 0 };
	ls_store_write w[3] = {
		{ "bin", all, sizeof all },
		{ "nuls", nuls, sizeof nuls },
		{ "empty", NULL, 0 },
	};
	ck_assert_msg(ls_store_commit(st, w, 3, NULL, 0, err, sizeof err) == 0,
		      "%s", err);

	const char *ids[3] = { "bin", "nuls", "empty" };
	ls_store_blob out[3];
	ck_assert_msg(ls_store_load(st, ids, 3, out, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(out[0].len, 256);
	ck_assert_mem_eq(out[0].data, all, 256);
	ck_assert_uint_eq(out[1].len, 5);
	ck_assert_mem_eq(out[1].data, nuls, 5);
	ck_assert_ptr_nonnull(out[2].data); /* present but empty */
	ck_assert_uint_eq(out[2].len, 0);

	/* the side connection sees the same bytes */
	redisContext *c = side(r);
	redisReply *g = ls_test_cmd(c, "GET t:{nuls}:s");
	ck_assert_int_eq(g->type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(g->len, 5);
	ck_assert_mem_eq(g->str, nuls, 5);
	freeReplyObject(g);
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

START_TEST(test_commit_writes_leads_and_offsets)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	redisContext *c = side(r);

	ls_store_write w[3] = {
		{ "lead-1", (const uint8_t *)"one", 3 },
		{ "lead-2", (const uint8_t *)"two", 3 },
		{ "lead-1", (const uint8_t *)"ONE", 3 }, /* later write wins */
	};
	ls_store_offset o[3] = {
		{ "leads.email", 0, 17 },
		{ "leads.web", 3, 9000000000LL },
		{ "leads.email", 0, 18 }, /* later offset wins */
	};
	ck_assert_msg(ls_store_commit(st, w, 3, o, 3, err, sizeof err) == 0,
		      "%s", err);

	char key[64];
	lead_key(st, "lead-1", key, sizeof key);
	ck_assert_str_eq(key, "t:{lead-1}:s");
	redisReply *g = ls_test_cmd(c, "GET %s", key);
	ck_assert_int_eq(g->type, REDIS_REPLY_STRING);
	ck_assert_str_eq(g->str, "ONE");
	freeReplyObject(g);
	lead_key(st, "lead-2", key, sizeof key);
	g = ls_test_cmd(c, "GET %s", key);
	ck_assert_str_eq(g->str, "two");
	freeReplyObject(g);

	long long pttl = cmd_int(c, "PTTL %s", key);
	ck_assert_int_le(pttl, TTL_MS);
	ck_assert_int_gt(pttl, TTL_MS - 10000);

	g = ls_test_cmd(c, "HGETALL %s", ls_store_offsets_key(st));
	ck_assert_int_eq(g->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(g->elements, 4);
	for (size_t i = 0; i < 4; i += 2) {
		const char *f = g->element[i]->str, *v = g->element[i + 1]->str;
		if (strcmp(f, "leads.email:0") == 0)
			ck_assert_str_eq(v, "18");
		else if (strcmp(f, "leads.web:3") == 0)
			ck_assert_str_eq(v, "9000000000");
		else
			ck_abort_msg("unexpected field %s", f);
	}
	freeReplyObject(g);
	ck_assert_int_eq(dbsize(c), 3);

	/* live TTL reload: the next write carries the new TTL */
	ls_store_set_lead_ttl(st, 0); /* ignored */
	ls_store_set_lead_ttl(st, 5000);
	ck_assert_msg(ls_store_commit(st, w, 1, NULL, 0, err, sizeof err) == 0,
		      "%s", err);
	lead_key(st, "lead-1", key, sizeof key);
	pttl = cmd_int(c, "PTTL %s", key);
	ck_assert_int_le(pttl, 5000);
	ck_assert_int_gt(pttl, 0);

	/* offsets only (a batch with no dirty lead) */
	ls_store_offset o2 = { "leads.call", 1, 5 };
	ck_assert_msg(ls_store_commit(st, NULL, 0, &o2, 1, err, sizeof err) == 0,
		      "%s", err);
	g = ls_test_cmd(c, "HGET %s leads.call:1", ls_store_offsets_key(st));
	ck_assert_str_eq(g->str, "5");
	freeReplyObject(g);

	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/*
 * A commit in two halves: written by _send, run by Redis while the caller
 * goes on, its outcome (and the results) read by _recv; a second _send
 * before that is refused, and _abandon drops the connection instead.
 */
START_TEST(test_commit_in_two_halves)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	redisContext *c = side(r);

	ls_store_write w = { "lead-1", (const uint8_t *)"one", 3 };
	ls_store_offset o = { "leads.email", 0, 17 };
	long long n = -1;
	const char *argv[3] = { "RPUSH", "t:list", "x" };
	size_t argvlen[3] = { 5, 6, 1 };
	ls_store_append a = { .argc = 3, .argv = argv, .argvlen = argvlen, .result = &n };
	ck_assert(!ls_store_commit_in_flight(st));
	ck_assert_msg(ls_store_commit_send(st, &w, 1, &a, 1, &o, 1, err, sizeof err) == 0, "%s",
		      err);
	ck_assert(ls_store_commit_in_flight(st));
	/* Redis runs it without anyone reading: the side connection sees it */
	long long have = 0;
	for (int i = 0; i < 500 && have == 0; i++) {
		have = cmd_int(c, "EXISTS %s", "t:{lead-1}:s");
		if (have == 0)
			usleep(2000);
	}
	ck_assert_int_eq(have, 1);
	ck_assert_int_eq(n, -1); /* results only once read */
	for (int i = 0; i < 500 && !ls_store_commit_answered(st); i++)
		usleep(2000);
	ck_assert(ls_store_commit_answered(st));
	/* refused while in flight, nothing more written */
	ls_store_offset o2 = { "leads.email", 0, 99 };
	ck_assert_int_eq(ls_store_commit_send(st, NULL, 0, NULL, 0, &o2, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not read") != NULL, "%s", err);
	ck_assert_msg(ls_store_commit_recv(st, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(n, 1);
	ck_assert(!ls_store_commit_in_flight(st));
	redisReply *g = ls_test_cmd(c, "HGET %s leads.email:0", ls_store_offsets_key(st));
	ck_assert_str_eq(g->str, "17");
	freeReplyObject(g);

	/* abandoned: the connection goes (its replies would answer the next
	 * command), and the store reconnects */
	ck_assert_msg(ls_store_commit_send(st, NULL, 0, NULL, 0, &o2, 1, err, sizeof err) == 0,
		      "%s", err);
	ls_store_commit_abandon(st);
	ck_assert(!ls_store_connected(st));
	ck_assert(!ls_store_commit_in_flight(st));
	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	ls_store_blob b;
	const char *id = "lead-1";
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), 0);
	ck_assert_mem_eq(b.data, "one", 3);

	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

START_TEST(test_large_commit_and_load)
{
	enum { N = 5000, LEN = 400 };
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);

	uint8_t *blobs = malloc((size_t)N * LEN);
	char (*ids)[24] = malloc(sizeof *ids * N);
	const char **idp = malloc(sizeof *idp * N);
	ls_store_write *w = malloc(sizeof *w * N);
	ls_store_blob *out = malloc(sizeof *out * N);
	ck_assert(blobs && ids && idp && w && out);
	for (size_t i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "lead-%05zu", i);
		idp[i] = ids[i];
		size_t len = LEN - (i % 7); /* varying lengths */
		fill_blob(blobs + i * LEN, len, i);
		w[i] = (ls_store_write){ ids[i], blobs + i * LEN, len };
	}
	ls_store_offset o[4] = {
		{ "leads.email", 0, 1000 }, { "leads.email", 1, 2000 },
		{ "leads.web", 0, 3000 }, { "leads.call", 7, 4000 },
	};
	ck_assert_msg(ls_store_commit(st, w, N, o, 4, err, sizeof err) == 0,
		      "%s", err);

	redisContext *c = side(r);
	ck_assert_int_eq(dbsize(c), N + 1);
	redisFree(c);

	/* twice: the second load reuses the store's buffers */
	for (int round = 0; round < 2; round++) {
		ck_assert_msg(ls_store_load(st, idp, N, out, err, sizeof err) == 0,
			      "%s", err);
		for (size_t i = 0; i < N; i++) {
			ck_assert_uint_eq(out[i].len, w[i].len);
			ck_assert_msg(memcmp(out[i].data, w[i].data, w[i].len) == 0,
				      "lead %zu differs", i);
		}
	}
	ls_store_offset back[4] = {
		{ "leads.email", 0, 0 }, { "leads.email", 1, 0 },
		{ "leads.web", 0, 0 }, { "leads.call", 7, 0 },
	};
	ck_assert_int_eq(ls_store_load_offsets(st, back, 4, err, sizeof err), 0);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(back[i].next_offset, o[i].next_offset);

	free(blobs);
	free(ids);
	free(idp);
	free(w);
	free(out);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/* 100,000 leads in one load, half present: linear work, one round trip. */
START_TEST(test_load_100k_leads)
{
	enum { N = 100000 };
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 10000);

	char (*ids)[16] = malloc(sizeof *ids * N);
	const char **idp = malloc(sizeof *idp * N);
	ls_store_write *w = malloc(sizeof *w * (N / 2));
	ls_store_blob *out = malloc(sizeof *out * N);
	ck_assert(ids && idp && w && out);
	for (size_t i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "L%zu", i);
		idp[i] = ids[i];
		if (i % 2 == 0)
			w[i / 2] = (ls_store_write){ ids[i], (const uint8_t *)ids[i],
						     strlen(ids[i]) };
	}
	ck_assert_msg(ls_store_commit(st, w, N / 2, NULL, 0, err, sizeof err) == 0,
		      "%s", err);
	int64_t t0 = ls_clock_mono_ms();
	ck_assert_msg(ls_store_load(st, idp, N, out, err, sizeof err) == 0,
		      "%s", err);
	int64_t took = ls_clock_mono_ms() - t0;
	for (size_t i = 0; i < N; i++) {
		if (i % 2 == 0) {
			ck_assert_uint_eq(out[i].len, strlen(ids[i]));
			ck_assert_mem_eq(out[i].data, ids[i], out[i].len);
		} else {
			ck_assert_ptr_null(out[i].data);
		}
	}
	/* speed is measured by the benchmark, not asserted here */
	fprintf(stderr, "load of %d leads: %" PRId64 " ms\n", N, took);
	free(ids);
	free(idp);
	free(w);
	free(out);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/* --------------------------------------------------------------- epoch */

START_TEST(test_next_epoch)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	uint64_t e = 0;
	ck_assert_msg(ls_store_next_epoch(st, &e, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(e, 1);
	ck_assert_msg(ls_store_next_epoch(st, &e, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(e, 2);

	/* shared: another instance's epoch is above ours */
	redisContext *c = side(r);
	redisReply *x = ls_test_cmd(c, "INCR t:epoch");
	ck_assert_int_eq(x->integer, 3);
	freeReplyObject(x);
	ck_assert_msg(ls_store_next_epoch(st, &e, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(e, 4);

	/* a key that is no counter, or one past what a version holds: an
	 * error, and the last epoch taken is left alone */
	freeReplyObject(ls_test_cmd(c, "SET t:epoch oops"));
	ck_assert_int_eq(ls_store_next_epoch(st, &e, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "t:epoch") != NULL, "%s", err);
	ck_assert_uint_eq(e, 4);
	freeReplyObject(ls_test_cmd(c, "SET t:epoch 2147483647"));
	ck_assert_int_eq(ls_store_next_epoch(st, &e, err, sizeof err), -1);
	ck_assert(ls_store_connected(st));

	/* Redis gone: fails (the loop's resync retries) */
	redisFree(c);
	ls_test_redis_destroy(r);
	ck_assert_int_eq(ls_store_next_epoch(st, &e, err, sizeof err), -1);
	ck_assert(!ls_store_connected(st));
	ck_assert_int_eq(ls_store_next_epoch(st, &e, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not connected") != NULL, "%s", err);
	ls_store_free(st);
}
END_TEST

/* ------------------------------------------------------------- offsets */

START_TEST(test_offsets_missing_and_bad)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);

	ls_store_offset o[3] = {
		{ "leads.email", 0, 42 }, { "leads.email", 1, 7 }, { "leads.web", 2, 0 },
	};
	/* nothing stored at all: every one -1 */
	ck_assert_msg(ls_store_load_offsets(st, o, 3, err, sizeof err) == 0,
		      "%s", err);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(o[i].next_offset, -1);
	ck_assert_int_eq(ls_store_load_offsets(st, o, 0, err, sizeof err), 0);

	ls_store_offset set[2] = { { "leads.email", 1, 123 }, { "leads.web", 2, 0 } };
	ck_assert_msg(ls_store_commit(st, NULL, 0, set, 2, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_msg(ls_store_load_offsets(st, o, 3, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(o[0].next_offset, -1);
	ck_assert_int_eq(o[1].next_offset, 123);
	ck_assert_int_eq(o[2].next_offset, 0);

	/* a value that is not an offset is an error, not a guess */
	redisContext *c = side(r);
	freeReplyObject(ls_test_cmd(c, "HSET t:offsets:g1 leads.email:1 12x"));
	ck_assert_int_eq(ls_store_load_offsets(st, o, 3, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "leads.email:1") != NULL, "%s", err);
	ck_assert(ls_store_connected(st));

	/* an offsets key of another type: connect refuses it */
	freeReplyObject(ls_test_cmd(c, "DEL t:offsets:g1"));
	freeReplyObject(ls_test_cmd(c, "SET t:offsets:g1 oops"));
	ck_assert_int_eq(ls_store_connect(st, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not a hash") != NULL, "%s", err);
	ck_assert(!ls_store_connected(st));
	freeReplyObject(ls_test_cmd(c, "DEL t:offsets:g1"));
	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);

	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

START_TEST(test_memory_usage)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	uint8_t blob[300];
	fill_blob(blob, sizeof blob, 1);
	ls_store_write w = { "lead-m", blob, sizeof blob };
	ck_assert_int_eq(ls_store_commit(st, &w, 1, NULL, 0, err, sizeof err), 0);
	long long bytes = 0;
	ck_assert_msg(ls_store_memory_usage(st, "lead-m", &bytes, err,
					    sizeof err) == 0, "%s", err);
	ck_assert_int_ge(bytes, 300);
	ck_assert_int_lt(bytes, 1024);
	ck_assert_int_eq(ls_store_memory_usage(st, "nobody", &bytes, err,
					       sizeof err), 0);
	ck_assert_int_eq(bytes, -1);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/* The sweeps' read: a page of due members and the next due score. */
START_TEST(test_due_pages_and_next_score)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	redisContext *c = side(r);
	freeReplyObject(ls_test_cmd(c, "ZADD t:due 10 a 20 b 20 c 30 d 1000000000000000 e"));
	freeReplyObject(ls_test_cmd(c, "ZADD t:frac 2.5 x -2.5 y"));
	freeReplyObject(ls_test_cmd(c, "SET t:str v"));
	const char *ids[8];
	size_t n;
	int64_t next;

	/* due by 20, two at a time: ties in member order, then the rest */
	ck_assert_msg(ls_store_due(st, "t:due", 20, 0, 2, ids, &n, &next, err,
				   sizeof err) == 0, "%s", err);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(ids[0], "a");
	ck_assert_str_eq(ids[1], "b");
	ck_assert_int_eq(next, 30);
	ck_assert_int_eq(ls_store_due(st, "t:due", 20, 2, 2, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(ids[0], "c");
	ck_assert_int_eq(next, 30);
	/* nothing due: only the next score */
	ck_assert_int_eq(ls_store_due(st, "t:due", 9, 0, 8, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(next, 10);
	/* large scores are exact */
	ck_assert_int_eq(ls_store_due(st, "t:due", 30, 0, 8, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 4);
	ck_assert_int_eq(next, INT64_C(1000000000000000));
	/* none left above, or no such key */
	ck_assert_int_eq(ls_store_due(st, "t:due", INT64_C(1000000000000000), 0, 8,
				      ids, &n, &next, err, sizeof err), 0);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(next, INT64_MAX);
	ck_assert_int_eq(ls_store_due(st, "t:none", 0, 0, 8, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(next, INT64_MAX);
	/* a score between integers rounds down: never later than it is */
	ck_assert_int_eq(ls_store_due(st, "t:frac", 0, 0, 8, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(ids[0], "y");
	ck_assert_int_eq(next, 2);
	ck_assert_int_eq(ls_store_due(st, "t:frac", -10, 0, 8, ids, &n, &next,
				      err, sizeof err), 0);
	ck_assert_int_eq(next, -3);
	/* a key of another type is an error, and the connection stays usable */
	ck_assert_int_eq(ls_store_due(st, "t:str", 0, 0, 8, ids, &n, &next, err,
				      sizeof err), -1);
	ck_assert_msg(strstr(err, "WRONGTYPE") != NULL, "%s", err);
	ck_assert(ls_store_connected(st));
	ck_assert_int_eq(ls_store_due(st, "t:due", 10, 0, 8, ids, &n, &next, err,
				      sizeof err), 0);
	ck_assert_int_eq(n, 1);
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/* ------------------------------------------------------------- failures */

/* Stop the server mid-use: -1 everywhere, no crash; restart: works. */
START_TEST(test_server_stop_and_restart)
{
	char err[ERRLEN];
	ls_test_redis_mode mode = _i == 0 ? LS_TEST_REDIS_UNIX : LS_TEST_REDIS_TCP;
	ls_test_redis *r = start_redis(mode);
	ls_store *st = open_store(r, 2000);
	ls_store_write w = { "lead-s", (const uint8_t *)"state", 5 };
	ls_store_offset o = { "leads.email", 0, 10 };
	ck_assert_int_eq(ls_store_commit(st, &w, 1, &o, 1, err, sizeof err), 0);
	const char *id = "lead-s";
	ls_store_blob b;
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), 0);
	ck_assert_mem_eq(b.data, "state", 5);

	ck_assert_msg(ls_test_redis_stop(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);

	/* the first call finds the connection dead (EPIPE, reset or EOF) */
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "load:") == err, "%s", err);
	ck_assert(!ls_store_connected(st));
	/* later calls fail fast without touching the network */
	ck_assert_int_eq(ls_store_commit(st, &w, 1, &o, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "not connected") != NULL, "%s", err);
	ck_assert_int_eq(ls_store_load_offsets(st, &o, 1, err, sizeof err), -1);
	long long bytes;
	ck_assert_int_eq(ls_store_memory_usage(st, id, &bytes, err, sizeof err), -1);
	ck_assert_int_eq(ls_store_connect(st, err, sizeof err), -1);
	ck_assert(!ls_store_connected(st));

	ck_assert_msg(ls_test_redis_restart(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	ck_assert(ls_store_connected(st));
	/* no persistence: the restarted server is empty */
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), 0);
	ck_assert_ptr_null(b.data);
	o.next_offset = 0;
	ck_assert_int_eq(ls_store_load_offsets(st, &o, 1, err, sizeof err), 0);
	ck_assert_int_eq(o.next_offset, -1);
	/* and works again */
	o.next_offset = 11;
	ck_assert_msg(ls_store_commit(st, &w, 1, &o, 1, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(ls_store_load(st, &id, 1, &b, err, sizeof err), 0);
	ck_assert_mem_eq(b.data, "state", 5);

	/* a commit into a stopped server: -1, disconnected, nothing written */
	ck_assert_msg(ls_test_redis_stop(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	o.next_offset = 12;
	ck_assert_int_eq(ls_store_commit(st, &w, 1, &o, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "commit outcome unknown") != NULL, "%s", err);
	ck_assert(!ls_store_connected(st));

	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/*
 * Redis refuses a command while queueing (maxmemory reached): EXEC
 * answers EXECABORT and nothing of the transaction is written - not the
 * leads queued before the refusal, not the offsets. The connection stays.
 */
START_TEST(test_commit_refused_writes_nothing)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	redisContext *c = side(r);

	freeReplyObject(ls_test_cmd(c, "CONFIG SET maxmemory-policy noeviction"));
	freeReplyObject(ls_test_cmd(c, "CONFIG SET maxmemory 1"));
	ls_store_write w[2] = {
		{ "lead-x", (const uint8_t *)"x", 1 },
		{ "lead-y", (const uint8_t *)"y", 1 },
	};
	ls_store_offset o = { "leads.email", 0, 99 };
	ck_assert_int_eq(ls_store_commit(st, w, 2, &o, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "nothing written") != NULL &&
		      strstr(err, "OOM") != NULL, "%s", err);
	ck_assert(ls_store_connected(st));
	ck_assert_int_eq(dbsize(c), 0);

	freeReplyObject(ls_test_cmd(c, "CONFIG SET maxmemory 0"));
	ck_assert_msg(ls_store_commit(st, w, 2, &o, 1, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(dbsize(c), 3);
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/*
 * The one non-atomic case MULTI/EXEC leaves (documented in ls_store.c):
 * an offsets key turned into another type after connect. The commit must
 * fail and say it was applied in part.
 */
START_TEST(test_commit_partial_is_reported)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 5000);
	redisContext *c = side(r);
	freeReplyObject(ls_test_cmd(c, "SET t:offsets:g1 clobbered"));
	ls_store_write w = { "lead-p", (const uint8_t *)"p", 1 };
	ls_store_offset o = { "leads.email", 0, 1 };
	ck_assert_int_eq(ls_store_commit(st, &w, 1, &o, 1, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "applied in part") != NULL &&
		      strstr(err, "WRONGTYPE") != NULL, "%s", err);
	ck_assert(ls_store_connected(st));
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/* Does Redis hold all of the commit or none of it? Returns true for all. */
static bool all_or_nothing(redisContext *c, const ls_store *st,
			   const ls_store_write *w, size_t nw,
			   const ls_store_offset *o)
{
	size_t present = 0;
	for (size_t i = 0; i < nw; i++) {
		char key[64];
		lead_key(st, w[i].lead_id, key, sizeof key);
		present += (size_t)cmd_int(c, "EXISTS %s", key);
	}
	redisReply *g = ls_test_cmd(c, "HGET %s %s:0", ls_store_offsets_key(st), o->topic);
	bool has_offset = g->type == REDIS_REPLY_STRING;
	if (has_offset)
		ck_assert_int_eq(strtoll(g->str, NULL, 10), o->next_offset);
	freeReplyObject(g);
	ck_assert_msg((present == 0 && !has_offset) ||
		      (present == nw && has_offset),
		      "half-written commit: %zu of %zu leads, offset %s",
		      present, nw, has_offset ? "written" : "missing");
	return has_offset;
}

/*
 * An EXEC held by CLIENT PAUSE WRITE: the commit times out and reports
 * failure (ambiguous from the client's side), the store disconnects, and
 * Redis drops the transaction of the dead client: nothing is written.
 */
START_TEST(test_commit_timeout_while_paused)
{
	char err[ERRLEN];
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 300);
	redisContext *c = side(r);

	ls_store_write w[3] = {
		{ "p1", (const uint8_t *)"1", 1 },
		{ "p2", (const uint8_t *)"2", 1 },
		{ "p3", (const uint8_t *)"3", 1 },
	};
	ls_store_offset o = { "leads.email", 0, 77 };
	freeReplyObject(ls_test_cmd(c, "CLIENT PAUSE 10000 WRITE"));
	int64_t t0 = ls_clock_mono_ms();
	ck_assert_int_eq(ls_store_commit(st, w, 3, &o, 1, err, sizeof err), -1);
	/* the command timeout fired: it did not wait for the pause to end */
	ck_assert_int_lt(ls_clock_mono_ms() - t0, 9000);
	ck_assert_msg(strstr(err, "commit outcome unknown") != NULL, "%s", err);
	ck_assert(!ls_store_connected(st));
	ck_assert_int_eq(dbsize(c), 0);
	wait_alone(c);
	freeReplyObject(ls_test_cmd(c, "CLIENT UNPAUSE"));
	usleep(100000);
	ck_assert(!all_or_nothing(c, st, w, 3, &o));
	ck_assert_int_eq(dbsize(c), 0);

	/* the loop's recovery: reconnect, re-read the offsets */
	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	o.next_offset = 0;
	ck_assert_int_eq(ls_store_load_offsets(st, &o, 1, err, sizeof err), 0);
	ck_assert_int_eq(o.next_offset, -1);
	redisFree(c);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

/*
 * The server freezes (SIGSTOP) mid-commit. A small commit fits in the
 * socket buffer, EXEC included: the client times out waiting and reports
 * failure, yet the frozen server still holds the whole transaction and
 * may run it when it wakes - the truly ambiguous case. A large commit
 * cannot even be written out: EXEC never leaves the client. Either way
 * Redis ends up with all of the commit or none of it, and the offsets
 * re-read after reconnecting say which.
 */
START_TEST(test_commit_while_server_frozen)
{
	enum { N = 5000, LEN = 400 };
	char err[ERRLEN];
	bool big = _i == 1;
	size_t nw = big ? N : 3;
	ls_test_redis *r = start_redis(LS_TEST_REDIS_UNIX);
	ls_store *st = open_store(r, 300);

	uint8_t *blobs = malloc((size_t)N * LEN);
	char (*ids)[24] = malloc(sizeof *ids * N);
	ls_store_write *w = malloc(sizeof *w * N);
	ck_assert(blobs && ids && w);
	for (size_t i = 0; i < nw; i++) {
		snprintf(ids[i], sizeof ids[i], "f-%zu", i);
		fill_blob(blobs + i * LEN, LEN, i);
		w[i] = (ls_store_write){ ids[i], blobs + i * LEN, LEN };
	}
	ls_store_offset o = { "leads.email", 0, 555 };

	pid_t pid = ls_test_redis_pid(r);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	int rc = ls_store_commit(st, w, nw, &o, 1, err, sizeof err);
	ck_assert_int_eq(kill(pid, SIGCONT), 0);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strstr(err, "commit outcome unknown") != NULL, "%s", err);
	ck_assert(!ls_store_connected(st));

	redisContext *c = side(r);
	wait_alone(c);
	bool applied = all_or_nothing(c, st, w, nw, &o);
	if (big)
		ck_assert_msg(!applied, "EXEC of a 2 MB commit cannot have "
			      "been sent to a frozen server");
	fprintf(stderr, "%s commit to a frozen server: %s\n",
		big ? "large" : "small", applied ? "applied" : "not applied");

	ck_assert_msg(ls_store_connect(st, err, sizeof err) == 0, "%s", err);
	ls_store_offset back = { "leads.email", 0, 0 };
	ck_assert_int_eq(ls_store_load_offsets(st, &back, 1, err, sizeof err), 0);
	ck_assert_int_eq(back.next_offset, applied ? 555 : -1);

	redisFree(c);
	free(blobs);
	free(ids);
	free(w);
	ls_store_free(st);
	ls_test_redis_destroy(r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("store");
	TCase *t = tcase_create("store");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_new_rejects_bad_settings);
	tcase_add_test(t, test_load_missing_and_present);
	tcase_add_test(t, test_binary_blobs_roundtrip);
	tcase_add_test(t, test_commit_writes_leads_and_offsets);
	tcase_add_test(t, test_commit_in_two_halves);
	tcase_add_test(t, test_large_commit_and_load);
	tcase_add_test(t, test_load_100k_leads);
	tcase_add_test(t, test_offsets_missing_and_bad);
	tcase_add_test(t, test_next_epoch);
	tcase_add_test(t, test_memory_usage);
	tcase_add_test(t, test_due_pages_and_next_score);
	suite_add_tcase(s, t);

	TCase *f = tcase_create("failures");
	tcase_set_timeout(f, 120);
	tcase_add_loop_test(f, test_server_stop_and_restart, 0, 2);
	tcase_add_test(f, test_commit_refused_writes_nothing);
	tcase_add_test(f, test_commit_partial_is_reported);
	tcase_add_test(f, test_commit_timeout_while_paused);
	tcase_add_loop_test(f, test_commit_while_server_frozen, 0, 2);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	return ls_test_run(suite(), CK_NORMAL);
}
