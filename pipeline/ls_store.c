/*
 * ls_store.c - the Redis state store: pipelined loads, atomic commits.
 *
 * Round trips are the cost that matters: a batch of 5,000 events touching
 * 5,000 leads is one pipeline of GETs and one transaction, never 10,000
 * request/response pairs. Every command of a pipeline is appended to
 * hiredis' output buffer first (redisAppendCommandArgv, binary-safe
 * lengths) and the replies are read afterwards; hiredis flushes the whole
 * buffer on the first read. Redis queues the replies of a normal client
 * without limit, so writing everything before reading cannot deadlock.
 *
 * Loads use one GET per lead rather than MGET: each command touches one
 * key (one slot), so the same code keeps working if leads are ever spread
 * over Cluster nodes, and one odd key (say, of the wrong type) fails its
 * own reply instead of the whole batch.
 *
 * Commit mechanism: MULTI, one SET ... PX per lead, one variadic HSET for
 * the offsets, EXEC - all appended, then sent as one pipeline. We chose
 * MULTI/EXEC over a Lua script (EVALSHA) because:
 *   - it is atomic on a single primary, which the design needs anyway;
 *   - there is no script cache to manage: EVALSHA answers NOSCRIPT after a
 *     restart, failover or SCRIPT FLUSH, which needs a fallback path that
 *     is itself easy to get wrong and hard to test;
 *   - blobs are not copied into and out of Lua strings, and a 5,000-lead
 *     commit is not limited by Lua's stack when building commands;
 *   - every write is an ordinary command in MONITOR, SLOWLOG and
 *     replication, which is what operators already know how to read.
 * Its one weakness is that EXEC does not roll back a command that fails
 * at run time. We keep that from happening rather than detect it late:
 * SET overwrites a key of any type and its PX argument is validated here
 * (TTL > 0), so the only command that can fail at run time is the HSET,
 * with WRONGTYPE when the offsets key holds another type; connect refuses
 * such a key. Errors found while queueing (syntax, OOM under maxmemory)
 * make Redis abort the whole transaction (EXECABORT): nothing is written.
 * Should an element of the EXEC array still be an error, the commit fails
 * and says loudly that it was applied in part.
 *
 * Dead servers: hiredis writes with write(2), which raises SIGPIPE when
 * the peer is gone. The daemon ignores SIGPIPE, but a store must not kill
 * a tool or test that forgot to, so every I/O section blocks SIGPIPE for
 * the calling thread and consumes a SIGPIPE it raised itself (the usual
 * pthread_sigmask + sigtimedwait recipe; three cheap syscalls per call).
 *
 * Memory: GET replies are kept (their strings are the blobs handed out)
 * until the next load or commit. Key buffers, the argv arrays of the
 * variadic commands and the reply array grow to the largest batch seen
 * and are reused, so steady-state calls allocate only inside hiredis.
 */
#include "ls_buf.h"
#include "ls_err.h"
#include "ls_store.h"

#include <errno.h>
#include <poll.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "ls_keys.h"
#include "ls_log.h"
#include "ls_redis.h"

#define COMPONENT "store"

struct ls_store {
	ls_redis_target target;
	char *prefix;
	size_t prefix_len;
	char *offsets_key;
	size_t offsets_key_len;
	char *epoch_key; /* "<prefix>epoch" */
	int64_t lead_ttl_ms;
	char ttl_str[24]; /* lead_ttl_ms in decimal, the PX argument */
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms;
	redisContext *c; /* NULL while disconnected */
	struct {
		bool sent; /* written, its replies not read yet */
		size_t queued, nw, na;
		const ls_store_append *a; /* the caller's, until the replies */
	} commit;

	/* kept replies of the last load; their strings are the blobs */
	redisReply **replies;
	size_t n_replies, replies_cap;

	/* one key at a time, copied by hiredis when appended */
	char *keybuf;
	size_t keybuf_cap;

	/* argv of the variadic commands (HSET, HMGET) and its text */
	const char **argv;
	size_t *argvlen;
	size_t argv_cap;
	char *text;
	size_t text_cap;
	size_t *text_off; /* argv[i] = text + text_off[i] once text is final */
	size_t text_off_cap;

	/* log entries of the last model read, pointing into replies */
	ls_store_blob *log_blobs;
	size_t log_blobs_cap;
};

/* ------------------------------------------------------------ helpers */

static char *dup_str(const char *s)
{
	size_t n = strlen(s);
	char *p = malloc(n + 1);
	if (p != NULL)
		memcpy(p, s, n + 1);
	return p;
}

/*
 * Block SIGPIPE for this thread around I/O; on leave, swallow a SIGPIPE
 * our own writes raised (one that was already pending is left alone).
 */
typedef struct pipe_guard {
	sigset_t old;
	bool was_pending;
} pipe_guard;

static void pipe_guard_enter(pipe_guard *g)
{
	sigset_t set, pending;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
	g->was_pending = sigpending(&pending) == 0 &&
			 sigismember(&pending, SIGPIPE) == 1;
}

static void pipe_guard_leave(pipe_guard *g)
{
	if (!g->was_pending) {
		sigset_t set, pending;
		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		if (sigpending(&pending) == 0 &&
		    sigismember(&pending, SIGPIPE) == 1) {
			const struct timespec zero = { 0, 0 };
			while (sigtimedwait(&set, NULL, &zero) == -1 &&
			       errno == EINTR)
				;
		}
	}
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void release_replies(ls_store *st)
{
	for (size_t i = 0; i < st->n_replies; i++)
		freeReplyObject(st->replies[i]);
	st->n_replies = 0;
}

/* Drop the connection (and anything appended but not yet sent). */
static void drop_connection(ls_store *st)
{
	st->commit.sent = false; /* its outcome is unknown: re-read the offsets */
	if (st->c != NULL) {
		redisFree(st->c);
		st->c = NULL;
	}
}

/* An I/O error on st->c: report it, log it once, disconnect. */
static int io_fail(ls_store *st, const char *what, char *err, size_t errlen)
{
	const char *why = "connection lost";
	char reason[256];
	if (st->c != NULL && st->c->errstr[0] != '\0')
		why = st->c->errstr;
	snprintf(reason, sizeof reason, "%s: %s", what, why);
	ls_set_err(err, errlen, "%s", reason);
	char q[300];
	ls_warn(COMPONENT, "redis connection lost", "reason=%s",
		ls_log_quote(reason, q, sizeof q));
	drop_connection(st);
	return -1;
}

/* Out of memory while appending: nothing was sent yet, so dropping the
 * connection discards the half-built pipeline. */
static int oom_fail(ls_store *st, const char *what, char *err, size_t errlen)
{
	ls_set_err(err, errlen, "%s: out of memory", what);
	drop_connection(st);
	return -1;
}

static int need_connection(const ls_store *st, const char *what, char *err,
			   size_t errlen)
{
	if (st->c != NULL)
		return 0;
	ls_set_err(err, errlen, "%s: not connected to redis", what);
	return -1;
}

static redisReply *read_reply(ls_store *st)
{
	void *r = NULL;
	if (redisGetReply(st->c, &r) != REDIS_OK)
		return NULL;
	return r;
}

/*
 * Read the n replies of a pipeline sent since release_replies() into
 * st->replies[0..n) (freed at the next release). 0, or io_fail's -1 with
 * the replies read so far kept for release.
 */
static int read_replies(ls_store *st, size_t n, const char *what, char *err,
			size_t errlen)
{
	pipe_guard g;
	pipe_guard_enter(&g);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		redisReply *r = read_reply(st);
		if (r == NULL) {
			rc = io_fail(st, what, err, errlen);
			break;
		}
		st->replies[st->n_replies++] = r;
	}
	pipe_guard_leave(&g);
	return rc;
}

/* Build the lead's key in st->keybuf; NULL on OOM. */
static const char *lead_key(ls_store *st, const char *lead_id, size_t *len)
{
	size_t n = st->prefix_len + strlen(lead_id) + LS_KEYS_OVERHEAD;
	if (ls_grow((void **)&st->keybuf, &st->keybuf_cap, n, 1) != 0)
		return NULL;
	*len = (size_t)ls_keys_lead(st->keybuf, n, st->prefix, lead_id);
	return st->keybuf;
}

/*
 * Variadic command text: start with used = count = 0, text_add each
 * argument, then text_argv to point argv at the (now stable) text.
 */

static int text_add(ls_store *st, size_t *used, size_t *count,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int text_add(ls_store *st, size_t *used, size_t *count,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (ls_grow((void **)&st->text, &st->text_cap, *used + (size_t)n + 1,
		    1) != 0 ||
	    ls_grow((void **)&st->text_off, &st->text_off_cap, *count + 1,
		    sizeof *st->text_off) != 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(st->text + *used, (size_t)n + 1, fmt, ap);
	va_end(ap);
	st->text_off[*count] = *used;
	*used += (size_t)n + 1;
	(*count)++;
	return 0;
}

/* argv = [cmd, offsets key, text args...]; returns argc or 0 on OOM. */
static size_t text_argv(ls_store *st, const char *cmd, size_t count)
{
	size_t argc = 2 + count;
	if (argc > st->argv_cap) {
		/* argv and argvlen share one capacity */
		size_t cap = st->argv_cap, lcap = st->argv_cap;
		if (ls_grow((void **)&st->argv, &cap, argc, sizeof *st->argv) != 0 ||
		    ls_grow((void **)&st->argvlen, &lcap, cap,
			    sizeof *st->argvlen) != 0)
			return 0;
		st->argv_cap = cap < lcap ? cap : lcap;
	}
	st->argv[0] = cmd;
	st->argvlen[0] = strlen(cmd);
	st->argv[1] = st->offsets_key;
	st->argvlen[1] = st->offsets_key_len;
	for (size_t i = 0; i < count; i++) {
		st->argv[2 + i] = st->text + st->text_off[i];
		st->argvlen[2 + i] = strlen(st->argv[2 + i]);
	}
	return argc;
}

static void format_ttl(ls_store *st)
{
	snprintf(st->ttl_str, sizeof st->ttl_str, "%" PRId64, st->lead_ttl_ms);
}

/* ------------------------------------------------------------- set-up */

ls_store *ls_store_new(const ls_store_settings *s, char *err, size_t errlen)
{
	if (s == NULL || s->key_prefix == NULL || s->group_id == NULL) {
		ls_set_err(err, errlen, "store: key prefix and group id are required");
		return NULL;
	}
	if (s->lead_ttl_ms <= 0) {
		ls_set_err(err, errlen, "store: lead TTL must be positive, got %" PRId64
			" ms", s->lead_ttl_ms);
		return NULL;
	}
	if (s->connect_timeout_ms < 0 || s->command_timeout_ms < 0) {
		ls_set_err(err, errlen, "store: timeouts must not be negative");
		return NULL;
	}
	ls_store *st = calloc(1, sizeof *st);
	if (st == NULL) {
		ls_set_err(err, errlen, "store: out of memory");
		return NULL;
	}
	char why[512];
	if (ls_redis_url_parse(s->url, &st->target, why, sizeof why) != 0) {
		ls_set_err(err, errlen, "store: %s", why);
		free(st);
		return NULL;
	}
	st->prefix = dup_str(s->key_prefix);
	st->prefix_len = strlen(s->key_prefix);
	size_t klen = st->prefix_len + strlen(s->group_id) + LS_KEYS_OVERHEAD;
	st->offsets_key = malloc(klen);
	st->epoch_key = malloc(st->prefix_len + LS_KEYS_OVERHEAD);
	if (st->prefix == NULL || st->offsets_key == NULL || st->epoch_key == NULL) {
		ls_set_err(err, errlen, "store: out of memory");
		ls_store_free(st);
		return NULL;
	}
	st->offsets_key_len = (size_t)ls_keys_offsets(st->offsets_key, klen,
						      s->key_prefix, s->group_id);
	ls_keys_epoch(st->epoch_key, st->prefix_len + LS_KEYS_OVERHEAD, s->key_prefix);
	st->lead_ttl_ms = s->lead_ttl_ms;
	format_ttl(st);
	st->connect_timeout_ms = s->connect_timeout_ms;
	st->command_timeout_ms = s->command_timeout_ms;
	return st;
}

void ls_store_free(ls_store *st)
{
	if (st == NULL)
		return;
	release_replies(st);
	drop_connection(st);
	ls_redis_target_free(&st->target);
	free(st->prefix);
	free(st->offsets_key);
	free(st->epoch_key);
	free(st->replies);
	free(st->keybuf);
	free(st->argv);
	free(st->argvlen);
	free(st->text);
	free(st->text_off);
	free(st->log_blobs);
	free(st);
}

bool ls_store_connected(const ls_store *st)
{
	return st != NULL && st->c != NULL && st->c->err == 0;
}

redisContext *ls_store_redis(ls_store *st)
{
	return st->c;
}

void ls_store_set_lead_ttl(ls_store *st, int64_t ttl_ms)
{
	if (ttl_ms <= 0) {
		ls_warn(COMPONENT, "ignoring non-positive lead TTL",
			"ttl_ms=%" PRId64 " kept_ms=%" PRId64, ttl_ms,
			st->lead_ttl_ms);
		return;
	}
	st->lead_ttl_ms = ttl_ms;
	format_ttl(st);
}

const char *ls_store_offsets_key(const ls_store *st)
{
	return st->offsets_key;
}

int ls_store_lead_key(const ls_store *st, const char *lead_id, char *buf,
		      size_t buflen)
{
	return ls_keys_lead(buf, buflen, st->prefix, lead_id);
}

/* TYPE of the offsets key must be hash or none; see the header. */
static int check_offsets_type(ls_store *st, char *err, size_t errlen)
{
	const char *argv[2] = { "TYPE", st->offsets_key };
	size_t argvlen[2] = { 4, st->offsets_key_len };
	redisReply *r = redisCommandArgv(st->c, 2, argv, argvlen);
	if (r == NULL)
		return io_fail(st, "connect: TYPE", err, errlen);
	int rc = 0;
	if (r->type != REDIS_REPLY_STATUS) {
		ls_set_err(err, errlen, "connect: TYPE %s: %s", st->offsets_key,
			r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rc = -1;
	} else if (strcmp(r->str, "hash") != 0 && strcmp(r->str, "none") != 0) {
		ls_set_err(err, errlen,
			"connect: offsets key %s holds a %s, not a hash",
			st->offsets_key, r->str);
		rc = -1;
	}
	freeReplyObject(r);
	if (rc != 0)
		drop_connection(st);
	return rc;
}

int ls_store_connect(ls_store *st, char *err, size_t errlen)
{
	drop_connection(st);
	char why[512];
	pipe_guard g;
	pipe_guard_enter(&g);
	int rc = -1;
	st->c = ls_redis_connect(&st->target, st->connect_timeout_ms,
				 st->command_timeout_ms, why, sizeof why);
	if (st->c == NULL) {
		ls_set_err(err, errlen, "%s", why);
	} else if (ls_redis_ping(st->c, why, sizeof why) != 0) {
		ls_set_err(err, errlen, "connect: %s", why);
		drop_connection(st);
	} else {
		rc = check_offsets_type(st, err, errlen);
	}
	pipe_guard_leave(&g);
	if (rc == 0) {
		char where[300];
		ls_info(COMPONENT, "redis connected", "target=%s",
			ls_redis_target_describe(&st->target, where,
						 sizeof where));
	}
	return rc;
}

/* --------------------------------------------------------------- load */

int ls_store_load(ls_store *st, const char *const *lead_ids, size_t n,
		  ls_store_blob *out, char *err, size_t errlen)
{
	release_replies(st);
	if (need_connection(st, "load", err, errlen) != 0)
		return -1;
	if (n == 0)
		return 0;
	if (ls_grow((void **)&st->replies, &st->replies_cap, n,
		    sizeof *st->replies) != 0) {
		ls_set_err(err, errlen, "load: out of memory");
		return -1;
	}

	for (size_t i = 0; i < n; i++) {
		size_t klen;
		const char *key = lead_key(st, lead_ids[i], &klen);
		if (key == NULL)
			return oom_fail(st, "load", err, errlen);
		const char *argv[2] = { "GET", key };
		size_t argvlen[2] = { 3, klen };
		if (redisAppendCommandArgv(st->c, 2, argv, argvlen) != REDIS_OK)
			return oom_fail(st, "load", err, errlen);
	}

	int rc = read_replies(st, n, "load", err, errlen);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const redisReply *r = st->replies[i];
		if (r->type == REDIS_REPLY_STRING) {
			out[i].data = (const uint8_t *)r->str;
			out[i].len = r->len;
		} else if (r->type == REDIS_REPLY_NIL) {
			out[i].data = NULL;
			out[i].len = 0;
		} else if (rc == 0) {
			/* the first bad reply is the error; the others are still filled */
			ls_set_err(err, errlen, "load: GET lead %s: %s", lead_ids[i],
				r->type == REDIS_REPLY_ERROR ? r->str
							     : "unexpected reply");
			rc = -1;
		}
	}
	return rc;
}

/* ------------------------------------------------------------- commit */

/* Append HSET <offsets key> <topic>:<partition> <next> ...; 0 or -1 OOM. */
static int append_offsets_hset(ls_store *st, const ls_store_offset *o,
			       size_t no)
{
	size_t used = 0, count = 0;
	for (size_t i = 0; i < no; i++) {
		if (text_add(st, &used, &count, LS_KEYS_OFFSETS_FIELD, o[i].topic,
			     o[i].partition) != 0 ||
		    text_add(st, &used, &count, "%" PRId64,
			     o[i].next_offset) != 0)
			return -1;
	}
	size_t argc = text_argv(st, "HSET", count);
	if (argc == 0)
		return -1;
	return redisAppendCommandArgv(st->c, (int)argc, st->argv,
				      st->argvlen) == REDIS_OK
		       ? 0
		       : -1;
}

/* Read MULTI's +OK and every +QUEUED; the first error goes to err. */
static int read_queued(ls_store *st, size_t queued, bool *refused, char *err,
		       size_t errlen)
{
	for (size_t i = 0; i <= queued; i++) {
		redisReply *r = read_reply(st);
		if (r == NULL)
			return -1;
		const char *want = i == 0 ? "OK" : "QUEUED";
		if (!*refused && (r->type != REDIS_REPLY_STATUS ||
				  strcmp(r->str, want) != 0)) {
			ls_set_err(err, errlen,
				"commit aborted, nothing written: %s %zu: %s",
				i == 0 ? "MULTI" : "command", i,
				r->type == REDIS_REPLY_ERROR ? r->str
							     : "unexpected reply");
			*refused = true;
		}
		freeReplyObject(r);
	}
	return 0;
}

/* Check the EXEC reply: one +OK per SET, an integer for each RPUSH and
 * the HSET. */
static int check_exec(ls_store *st, const redisReply *r, size_t nw,
		      size_t queued, char *err, size_t errlen)
{
	if (r->type == REDIS_REPLY_ERROR) {
		ls_set_err(err, errlen, "commit aborted, nothing written: EXEC: %s",
			r->str);
		return -1;
	}
	if (r->type == REDIS_REPLY_NIL) {
		ls_set_err(err, errlen,
			"commit aborted, nothing written: EXEC returned nil");
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != queued) {
		ls_set_err(err, errlen, "commit: EXEC: unexpected reply (type %d, "
			"%zu elements for %zu commands)", r->type,
			r->type == REDIS_REPLY_ARRAY ? r->elements : (size_t)0,
			queued);
		return -1;
	}
	for (size_t i = 0; i < queued; i++) {
		const redisReply *e = r->element[i];
		bool ok = i < nw ? e->type == REDIS_REPLY_STATUS &&
					   strcmp(e->str, "OK") == 0
				 : e->type == REDIS_REPLY_INTEGER;
		if (!ok) {
			char q[300];
			const char *why = e->type == REDIS_REPLY_ERROR
						  ? e->str
						  : "unexpected reply";
			ls_set_err(err, errlen,
				"commit applied in part: command %zu of %zu "
				"failed: %s", i + 1, queued, why);
			ls_error(COMPONENT, "commit applied in part",
				 "offsets_key=%s failed_command=%zu reason=%s",
				 st->offsets_key, i + 1,
				 ls_log_quote(why, q, sizeof q));
			return -1;
		}
	}
	return 0;
}

int ls_store_commit(ls_store *st, const ls_store_write *w, size_t nw,
		    const ls_store_offset *o, size_t no, char *err,
		    size_t errlen)
{
	return ls_store_commit_log(st, w, nw, NULL, 0, o, no, err, errlen);
}

int ls_store_commit_send(ls_store *st, const ls_store_write *w, size_t nw,
			 const ls_store_append *a, size_t na, const ls_store_offset *o, size_t no,
			 char *err, size_t errlen)
{
	if (st->commit.sent) {
		ls_set_err(err, errlen, "commit: the last one was not read (a bug)");
		return -1;
	}
	release_replies(st);
	if (need_connection(st, "commit", err, errlen) != 0)
		return -1;
	if (nw == 0 && no == 0 && na == 0)
		return 0;

	const char *multi[1] = { "MULTI" };
	size_t multilen[1] = { 5 };
	if (redisAppendCommandArgv(st->c, 1, multi, multilen) != REDIS_OK)
		return oom_fail(st, "commit", err, errlen);
	for (size_t i = 0; i < nw; i++) {
		size_t klen;
		const char *key = lead_key(st, w[i].lead_id, &klen);
		if (key == NULL)
			return oom_fail(st, "commit", err, errlen);
		/* a NULL blob is written as the empty string */
		const char *data = w[i].data ? (const char *)w[i].data : "";
		size_t dlen = w[i].data ? w[i].len : 0;
		const char *argv[5] = { "SET", key, data, "PX", st->ttl_str };
		size_t argvlen[5] = { 3, klen, dlen, 2, strlen(st->ttl_str) };
		if (redisAppendCommandArgv(st->c, 5, argv, argvlen) != REDIS_OK)
			return oom_fail(st, "commit", err, errlen);
	}
	for (size_t i = 0; i < na; i++) {
		if (a[i].argc > 0) {
			if (redisAppendCommandArgv(st->c, a[i].argc, (const char **)a[i].argv,
						   a[i].argvlen) != REDIS_OK)
				return oom_fail(st, "commit", err, errlen);
			continue;
		}
		const char *cmd = a[i].cmd ? a[i].cmd : "RPUSH";
		const char *argv[4] = { cmd, a[i].key };
		size_t argvlen[4] = { strlen(cmd), strlen(a[i].key) };
		int argc = 2;
		if (a[i].arg != NULL) {
			argv[argc] = a[i].arg;
			argvlen[argc++] = strlen(a[i].arg);
		}
		argv[argc] = a[i].data ? (const char *)a[i].data : "";
		argvlen[argc++] = a[i].data ? a[i].len : 0;
		if (redisAppendCommandArgv(st->c, argc, argv, argvlen) != REDIS_OK)
			return oom_fail(st, "commit", err, errlen);
	}
	if (no > 0 && append_offsets_hset(st, o, no) != 0)
		return oom_fail(st, "commit", err, errlen);
	const char *exec[1] = { "EXEC" };
	size_t execlen[1] = { 4 };
	if (redisAppendCommandArgv(st->c, 1, exec, execlen) != REDIS_OK)
		return oom_fail(st, "commit", err, errlen);
	/* written now, read later: Redis runs it while the caller goes on */
	pipe_guard g;
	pipe_guard_enter(&g);
	int done = 0;
	while (!done)
		if (redisBufferWrite(st->c, &done) != REDIS_OK) {
			pipe_guard_leave(&g);
			return io_fail(st, "commit outcome unknown (re-read the offsets)", err, errlen);
		}
	pipe_guard_leave(&g);
	st->commit.sent = true;
	st->commit.queued = nw + na + (no > 0 ? 1 : 0);
	st->commit.nw = nw;
	st->commit.na = na;
	st->commit.a = a;
	return 0;
}

bool ls_store_commit_in_flight(const ls_store *st) { return st->commit.sent; }

void ls_store_commit_abandon(ls_store *st)
{
	if (st->commit.sent)
		drop_connection(st); /* its replies would answer the next command */
}

bool ls_store_commit_answered(const ls_store *st)
{
	if (!st->commit.sent || st->c == NULL)
		return true; /* nothing to wait for: recv says what happened */
	struct pollfd pfd = { .fd = st->c->fd, .events = POLLIN };
	return poll(&pfd, 1, 0) > 0;
}

int ls_store_commit_recv(ls_store *st, char *err, size_t errlen)
{
	if (!st->commit.sent)
		return 0;
	st->commit.sent = false;
	if (need_connection(st, "commit outcome unknown (re-read the offsets)", err, errlen) != 0)
		return -1;
	size_t queued = st->commit.queued, nw = st->commit.nw, na = st->commit.na;
	const ls_store_append *a = st->commit.a;
	pipe_guard g;
	pipe_guard_enter(&g);
	int rc = 0;
	bool refused = false;
	redisReply *r = NULL;
	if (read_queued(st, queued, &refused, err, errlen) != 0 ||
	    (r = read_reply(st)) == NULL) {
		rc = io_fail(st, "commit outcome unknown (re-read the offsets)",
			     err, errlen);
	} else if (refused) {
		rc = -1; /* EXEC answered EXECABORT; keep the first reason */
	} else {
		rc = check_exec(st, r, nw, queued, err, errlen);
	}
	for (size_t i = 0; rc == 0 && i < na; i++)
		if (a[i].result != NULL)
			*a[i].result = r->element[nw + i]->integer;
	if (r != NULL)
		freeReplyObject(r);
	pipe_guard_leave(&g);
	return rc;
}

int ls_store_commit_log(ls_store *st, const ls_store_write *w, size_t nw,
			const ls_store_append *a, size_t na,
			const ls_store_offset *o, size_t no, char *err,
			size_t errlen)
{
	if (ls_store_commit_send(st, w, nw, a, na, o, no, err, errlen) != 0)
		return -1;
	return ls_store_commit_recv(st, err, errlen);
}

/* ------------------------------------------------------------ offsets */

/* A stored next offset: decimal digits only, fits int64. */
static int parse_offset(const char *s, size_t len, int64_t *out)
{
	if (len == 0 || len > 19)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int ls_store_load_offsets(ls_store *st, ls_store_offset *o, size_t n,
			  char *err, size_t errlen)
{
	if (need_connection(st, "load offsets", err, errlen) != 0)
		return -1;
	if (n == 0)
		return 0;
	size_t used = 0, count = 0;
	for (size_t i = 0; i < n; i++)
		if (text_add(st, &used, &count, LS_KEYS_OFFSETS_FIELD, o[i].topic,
			     o[i].partition) != 0) {
			ls_set_err(err, errlen, "load offsets: out of memory");
			return -1;
		}
	size_t argc = text_argv(st, "HMGET", count);
	if (argc == 0) {
		ls_set_err(err, errlen, "load offsets: out of memory");
		return -1;
	}

	pipe_guard g;
	pipe_guard_enter(&g);
	redisReply *r = redisCommandArgv(st->c, (int)argc, st->argv,
					 st->argvlen);
	pipe_guard_leave(&g);
	if (r == NULL)
		return io_fail(st, "load offsets", err, errlen);

	int rc = 0;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		ls_set_err(err, errlen, "load offsets: HMGET %s: %s",
			st->offsets_key,
			r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const redisReply *e = r->element[i];
		if (e->type == REDIS_REPLY_NIL) {
			o[i].next_offset = -1;
		} else if (e->type != REDIS_REPLY_STRING ||
			   parse_offset(e->str, e->len, &o[i].next_offset) != 0) {
			ls_set_err(err, errlen,
				"load offsets: %s field %s:%" PRId32
				" is not an offset", st->offsets_key,
				o[i].topic, o[i].partition);
			rc = -1;
		}
	}
	freeReplyObject(r);
	return rc;
}

/* -------------------------------------------------------------- epoch */

/*
 * One INCR per (re)start of reading, nothing per event. The key is
 * global under the prefix, not per group: versions are per lead and
 * model whoever publishes them.
 */
int ls_store_next_epoch(ls_store *st, uint64_t *epoch, char *err,
			size_t errlen)
{
	if (need_connection(st, "next epoch", err, errlen) != 0)
		return -1;
	const char *argv[2] = { "INCR", st->epoch_key };
	size_t argvlen[2] = { 4, strlen(st->epoch_key) };
	pipe_guard g;
	pipe_guard_enter(&g);
	redisReply *r = redisCommandArgv(st->c, 2, argv, argvlen);
	pipe_guard_leave(&g);
	if (r == NULL)
		return io_fail(st, "next epoch", err, errlen);
	int rc = 0;
	/* the shift into a version leaves 31 bits for the epoch */
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 1 ||
	    r->integer > INT32_MAX) {
		ls_set_err(err, errlen, "next epoch: INCR %s: %s", st->epoch_key,
			r->type == REDIS_REPLY_ERROR ? r->str
						     : "not an epoch in 1..2^31-1");
		rc = -1;
	} else {
		*epoch = (uint64_t)r->integer;
	}
	freeReplyObject(r);
	return rc;
}

/* -------------------------------------------------------- memory usage */

int ls_store_memory_usage(ls_store *st, const char *lead_id,
			  long long *bytes, char *err, size_t errlen)
{
	if (need_connection(st, "memory usage", err, errlen) != 0)
		return -1;
	size_t klen;
	const char *key = lead_key(st, lead_id, &klen);
	if (key == NULL) {
		ls_set_err(err, errlen, "memory usage: out of memory");
		return -1;
	}
	const char *argv[3] = { "MEMORY", "USAGE", key };
	size_t argvlen[3] = { 6, 5, klen };
	pipe_guard g;
	pipe_guard_enter(&g);
	redisReply *r = redisCommandArgv(st->c, 3, argv, argvlen);
	pipe_guard_leave(&g);
	if (r == NULL)
		return io_fail(st, "memory usage", err, errlen);
	int rc = 0;
	if (r->type == REDIS_REPLY_INTEGER) {
		*bytes = r->integer;
	} else if (r->type == REDIS_REPLY_NIL) {
		*bytes = -1;
	} else {
		ls_set_err(err, errlen, "memory usage: %s",
			r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		rc = -1;
	}
	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------- models */

const char *ls_store_key_prefix(const ls_store *st) { return st->prefix; }

static int blob_of(const redisReply *r, ls_store_blob *b)
{
	if (r->type == REDIS_REPLY_NIL) {
		*b = (ls_store_blob){ NULL, 0 };
		return 0;
	}
	if (r->type != REDIS_REPLY_STRING)
		return -1;
	*b = (ls_store_blob){ (const uint8_t *)r->str, r->len };
	return 0;
}

static const char *reply_why(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
}

/* Point out at the GET, GET, LRANGE replies g[0..3). */
static int model_state_of(ls_store *st, redisReply *const *g,
			  ls_store_model_state *out, char *err, size_t errlen)
{
	if (blob_of(g[0], &out->model) != 0) {
		ls_set_err(err, errlen, "model read: GET model: %s", reply_why(g[0]));
		return -1;
	}
	if (blob_of(g[1], &out->eval) != 0) {
		ls_set_err(err, errlen, "model read: GET eval: %s", reply_why(g[1]));
		return -1;
	}
	if (g[2]->type != REDIS_REPLY_ARRAY) {
		ls_set_err(err, errlen, "model read: LRANGE log: %s", reply_why(g[2]));
		return -1;
	}
	size_t n = g[2]->elements;
	if (ls_grow((void **)&st->log_blobs, &st->log_blobs_cap, n ? n : 1,
		    sizeof *st->log_blobs) != 0) {
		ls_set_err(err, errlen, "model read: out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (blob_of(g[2]->element[i], &st->log_blobs[i]) != 0 ||
		    st->log_blobs[i].data == NULL) {
			ls_set_err(err, errlen, "model read: log entry %zu is not a string", i);
			return -1;
		}
	out->log = st->log_blobs;
	out->n_log = n;
	return 0;
}

int ls_store_model_read(ls_store *st, const ls_store_model_keys *k, bool watch,
			ls_store_model_state *out, char *err, size_t errlen)
{
	release_replies(st);
	*out = (ls_store_model_state){ 0 };
	if (need_connection(st, "model read", err, errlen) != 0)
		return -1;
	if (ls_grow((void **)&st->replies, &st->replies_cap, 6, sizeof *st->replies) != 0) {
		ls_set_err(err, errlen, "model read: out of memory");
		return -1;
	}
	const char *first = watch ? "WATCH" : "MULTI";
	const char *a0[2] = { first, k->model };
	size_t l0[2] = { 5, strlen(k->model) };
	const char *a1[2] = { "GET", k->model };
	size_t l1[2] = { 3, strlen(k->model) };
	const char *a2[2] = { "GET", k->eval };
	size_t l2[2] = { 3, strlen(k->eval) };
	const char *a3[4] = { "LRANGE", k->log, "0", "-1" };
	size_t l3[4] = { 6, strlen(k->log), 1, 2 };
	const char *a4[1] = { "EXEC" };
	size_t l4[1] = { 4 };
	if (redisAppendCommandArgv(st->c, watch ? 2 : 1, a0, l0) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 2, a1, l1) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 2, a2, l2) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 4, a3, l3) != REDIS_OK ||
	    (!watch && redisAppendCommandArgv(st->c, 1, a4, l4) != REDIS_OK))
		return oom_fail(st, "model read", err, errlen);
	size_t n = watch ? 4 : 5;
	int rc = read_replies(st, n, "model read", err, errlen);
	if (rc != 0)
		return rc;
	redisReply **r = st->replies;
	if (r[0]->type == REDIS_REPLY_ERROR) {
		ls_set_err(err, errlen, "model read: %s: %s", first, r[0]->str);
		return -1;
	}
	if (watch)
		return model_state_of(st, r + 1, out, err, errlen);
	redisReply *ex = r[4];
	if (ex->type != REDIS_REPLY_ARRAY || ex->elements != 3) {
		ls_set_err(err, errlen, "model read: EXEC: %s", reply_why(ex));
		return -1;
	}
	return model_state_of(st, ex->element, out, err, errlen);
}

void ls_store_unwatch(ls_store *st)
{
	if (st->c == NULL)
		return;
	pipe_guard g;
	pipe_guard_enter(&g);
	redisReply *r = redisCommand(st->c, "UNWATCH");
	if (r == NULL)
		io_fail(st, "unwatch", NULL, 0);
	else
		freeReplyObject(r);
	pipe_guard_leave(&g);
}

int ls_store_model_write(ls_store *st, const ls_store_model_keys *k,
			 const uint8_t *model, size_t model_len,
			 const uint8_t *eval, size_t eval_len, size_t n_folded,
			 char *err, size_t errlen)
{
	release_replies(st);
	if (need_connection(st, "model write", err, errlen) != 0)
		return -1;
	char start[24];
	snprintf(start, sizeof start, "%zu", n_folded);
	const char *multi[1] = { "MULTI" };
	size_t multilen[1] = { 5 };
	const char *a1[3] = { "SET", k->model, model_len ? (const char *)model : "" };
	size_t l1[3] = { 3, strlen(k->model), model_len };
	const char *a2[3] = { "SET", k->eval, eval_len ? (const char *)eval : "" };
	size_t l2[3] = { 3, strlen(k->eval), eval_len };
	const char *a3[4] = { "LTRIM", k->log, start, "-1" };
	size_t l3[4] = { 5, strlen(k->log), strlen(start), 2 };
	const char *exec[1] = { "EXEC" };
	size_t execlen[1] = { 4 };
	if (redisAppendCommandArgv(st->c, 1, multi, multilen) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 3, a1, l1) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 3, a2, l2) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 4, a3, l3) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 1, exec, execlen) != REDIS_OK)
		return oom_fail(st, "model write", err, errlen);
	pipe_guard g;
	pipe_guard_enter(&g);
	bool refused = false;
	int rc;
	redisReply *r = NULL;
	if (read_queued(st, 3, &refused, err, errlen) != 0 ||
	    (r = read_reply(st)) == NULL) {
		rc = io_fail(st, "model write outcome unknown", err, errlen);
	} else if (refused) {
		rc = -1;
	} else if (r->type == REDIS_REPLY_NIL) {
		rc = 0; /* the WATCH fired */
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
		   r->element[0]->type != REDIS_REPLY_STATUS ||
		   r->element[1]->type != REDIS_REPLY_STATUS ||
		   r->element[2]->type != REDIS_REPLY_STATUS) {
		ls_set_err(err, errlen, "model write: EXEC: unexpected reply");
		rc = -1;
	} else {
		rc = 1;
	}
	if (r != NULL)
		freeReplyObject(r);
	pipe_guard_leave(&g);
	return rc;
}

/* A sorted-set score as Redis prints it, rounded down; 0 or -1. */
static int parse_score(const redisReply *r, int64_t *out)
{
	if (r->type != REDIS_REPLY_STRING || r->str == NULL)
		return -1;
	char *end;
	double d = strtod(r->str, &end); /* "inf" and "-inf" too */
	if (end == r->str || *end != '\0')
		return -1;
	if (d >= 9.2e18) {
		*out = INT64_MAX;
	} else if (d > -9.2e18) {
		int64_t v = (int64_t)d;
		*out = (double)v > d ? v - 1 : v;
	} else if (d <= -9.2e18) {
		*out = INT64_MIN;
	} else {
		return -1; /* NaN */
	}
	return 0;
}

int ls_store_due(ls_store *st, const char *key, int64_t max_score,
		 size_t offset, size_t limit, const char **ids, size_t *n,
		 int64_t *next, char *err, size_t errlen)
{
	release_replies(st);
	*n = 0;
	*next = INT64_MAX;
	if (need_connection(st, "due", err, errlen) != 0)
		return -1;
	if (ls_grow((void **)&st->replies, &st->replies_cap, 2, sizeof *st->replies) != 0) {
		ls_set_err(err, errlen, "due: out of memory");
		return -1;
	}
	char max[24], above[25], off[24], lim[24];
	snprintf(max, sizeof max, "%" PRId64, max_score);
	snprintf(above, sizeof above, "(%" PRId64, max_score);
	snprintf(off, sizeof off, "%zu", offset);
	snprintf(lim, sizeof lim, "%zu", limit);
	const char *argv[8] = { "ZRANGEBYSCORE", key, "-inf", max, "LIMIT", off, lim };
	size_t argvlen[8] = { 13, strlen(key), 4, strlen(max), 5, strlen(off),
			      strlen(lim) };
	/* and the lowest score left above max_score, same round trip */
	const char *argv2[8] = { "ZRANGEBYSCORE", key, above, "+inf", "WITHSCORES",
				 "LIMIT", "0", "1" };
	size_t argvlen2[8] = { 13, strlen(key), strlen(above), 4, 10, 5, 1, 1 };
	if (redisAppendCommandArgv(st->c, 7, argv, argvlen) != REDIS_OK ||
	    redisAppendCommandArgv(st->c, 8, argv2, argvlen2) != REDIS_OK)
		return oom_fail(st, "due", err, errlen);
	int rc = read_replies(st, 2, "due", err, errlen);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < 2; i++) {
		if (st->replies[i]->type != REDIS_REPLY_ARRAY) {
			ls_set_err(err, errlen, "due: ZRANGEBYSCORE %s: %s", key,
				   reply_why(st->replies[i]));
			return -1;
		}
	}
	const redisReply *r = st->replies[0];
	for (size_t i = 0; i < r->elements && i < limit; i++) {
		if (r->element[i]->type != REDIS_REPLY_STRING)
			continue;
		ids[(*n)++] = r->element[i]->str;
	}
	r = st->replies[1];
	if (r->elements >= 2 && parse_score(r->element[1], next) != 0) {
		ls_set_err(err, errlen, "due: %s: score is not a number", key);
		return -1;
	}
	return 0;
}
