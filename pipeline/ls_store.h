/*
 * ls_store.h - per-lead state and per-partition offsets in Redis.
 *
 * The batch loop loads the leads of a micro-batch in one pipelined round
 * trip (ls_store_load) and, after applying the batch, writes every dirty
 * lead together with the next offset of every partition in the batch in
 * one atomic step (ls_store_commit). State and offsets therefore always
 * match: after a crash the loop seeks to the stored offsets and replays
 * onto exactly the state those offsets produced.
 *
 * Keys: the leads' state, the offsets hash and the epoch counter (and
 * whatever keys the caller's appends name); their names, types and TTLs
 * are in the table in ls_keys.h. One atomic commit spans the keys of
 * many leads and the offsets hash, i.e. many Redis Cluster slots: it
 * needs a single Redis primary (optionally with replicas), not Cluster.
 * That is the documented deployment.
 *
 * Atomicity: a commit is one MULTI/EXEC transaction (see ls_store.c for
 * why not a Lua script). Redis runs it all or not at all. If the
 * connection is lost after EXEC may have reached the server, the outcome
 * is unknown; ls_store_commit() reports that as a failure like any other.
 * The loop resolves it by reconnecting, re-reading the offsets with
 * ls_store_load_offsets() (and the leads with ls_store_load()) and
 * replaying from there: the stored offsets tell which of the two states
 * Redis holds.
 *
 * Errors: functions returning int return 0 on success or -1 with a
 * NUL-terminated reason in err[0..errlen) (err may be NULL). An I/O error
 * (connection refused or lost, timeout, EOF) frees the connection and
 * marks the store disconnected; every later call fails fast with "not
 * connected" until ls_store_connect() succeeds. An error reply from Redis
 * (e.g. WRONGTYPE) fails the call but keeps the connection, which stays
 * in step because every reply of the pipeline is read. Nothing here
 * exits, asserts on input or raises SIGPIPE: writes to a dead server are
 * guarded, whatever the process' SIGPIPE disposition.
 *
 * Memory: the store copies the settings it is given. Blobs returned by
 * ls_store_load() point into replies owned by the store and stay valid
 * until the next ls_store_load(), ls_store_commit() or ls_store_free() on
 * that store (reconnecting does not invalidate them). Data passed to
 * ls_store_commit() is only read during the call. Argument arrays and key
 * buffers are reused across calls, so a steady-state batch allocates only
 * what hiredis allocates for the commands and replies.
 *
 * Thread-safety: none. A store belongs to one thread (the batch loop);
 * other threads use their own store or connection.
 */
#ifndef LS_STORE_H
#define LS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ls_store ls_store;

typedef struct ls_store_settings {
	const char *url;            /* redis.url, as ls_redis_url_parse() accepts */
	const char *key_prefix;     /* redis.key_prefix, may be "" */
	const char *group_id;       /* kafka.group_id, names the offsets hash */
	int64_t lead_ttl_ms;        /* redis.lead_ttl, > 0 */
	int64_t connect_timeout_ms; /* 0 = none */
	int64_t command_timeout_ms; /* per read/write; 0 = none */
} ls_store_settings;

/*
 * A store for s (copied; the URL is parsed here). Does not connect.
 * Returns NULL with a reason for a bad URL, a NULL prefix or group id, a
 * TTL <= 0, negative timeouts, or out of memory.
 */
ls_store *ls_store_new(const ls_store_settings *s, char *err, size_t errlen);

/*
 * (Re)connect: drop any current connection, connect with the configured
 * timeouts, AUTH/SELECT as the URL says, PING, and check that the offsets
 * key is a hash or absent (a key of another type would make the offsets
 * write of a commit fail after the leads were written). 0 or -1.
 */
int ls_store_connect(ls_store *st, char *err, size_t errlen);

/* False before the first connect and after any I/O error until reconnect
 * (also one on the connection ls_store_redis() lent out). */
bool ls_store_connected(const ls_store *st);

struct redisContext;
/*
 * The store's connection (NULL when it has none), lent for another
 * module's commands on the store's thread, so that the thread holds one
 * Redis connection and not one per module: the HTTP workers pass theirs
 * to the campaign service. A command that fails on it leaves its err set;
 * ls_store_connected() then answers false until ls_store_connect().
 */
struct redisContext *ls_store_redis(ls_store *st);

/* Live reload of redis.lead_ttl; used by the next commit. ttl_ms <= 0 is
 * ignored (with a warning) and the old TTL kept. */
void ls_store_set_lead_ttl(ls_store *st, int64_t ttl_ms);

typedef struct ls_store_blob {
	const uint8_t *data; /* NULL = no such lead; non-NULL even when len is 0 */
	size_t len;
} ls_store_blob;

/*
 * Fetch the state of n leads (NUL-terminated ids; duplicates allowed) into
 * out[0..n) with one pipeline of GETs, one round trip. n may be 0. Blobs
 * point into memory owned by the store, valid until the next
 * ls_store_load/commit/free call. On -1 the contents of out are undefined.
 */
int ls_store_load(ls_store *st, const char *const *lead_ids, size_t n,
		  ls_store_blob *out, char *err, size_t errlen);

typedef struct ls_store_write {
	const char *lead_id;
	const uint8_t *data; /* may be NULL when len is 0 */
	size_t len;
} ls_store_write;

typedef struct ls_store_offset {
	const char *topic;
	int32_t partition;
	int64_t next_offset;
} ls_store_offset;

/*
 * Atomically: SET every lead blob w[0..nw) with PX lead_ttl_ms and record
 * every o[0..no) next offset in the offsets hash (later entries win for
 * duplicate leads or partitions). One MULTI/EXEC sent as one pipeline.
 * Returns 0 only when EXEC ran and every command in it succeeded. -1
 * otherwise, including the ambiguous case where the connection was lost
 * after EXEC was sent (see Atomicity above). nw = no = 0 is a no-op.
 */
int ls_store_commit(ls_store *st, const ls_store_write *w, size_t nw,
		    const ls_store_offset *o, size_t no, char *err,
		    size_t errlen);

/*
 * One more command of a commit, on a full key: `cmd key [arg] data`.
 * cmd NULL is RPUSH (append data to a list); "ZADD" with arg the score in
 * decimal and data the member; "ZREM" with data the member. Every one
 * answers an integer inside EXEC.
 */
typedef struct ls_store_append {
	const char *key;
	const uint8_t *data;
	size_t len;
	const char *cmd; /* NULL: RPUSH */
	const char *arg; /* NULL: none */
	/* argc > 0: send argv[0..argc) verbatim instead (an EVAL of the
	 * bandit's scripts); key, data, cmd and arg are then unused. It too
	 * must answer an integer. */
	int argc;
	const char *const *argv;
	const size_t *argvlen;
	long long *result; /* non-NULL: receives the integer reply */
} ls_store_append;

/*
 * ls_store_commit() that also appends a[0..na) to their lists in the same
 * transaction (the models' learning logs, see ls_mlog.h). A list key of
 * another type fails its RPUSH at run time after the SETs: connect does
 * not check model keys, so the scorer checks them when it restores.
 */
int ls_store_commit_log(ls_store *st, const ls_store_write *w, size_t nw,
			const ls_store_append *a, size_t na,
			const ls_store_offset *o, size_t no, char *err,
			size_t errlen);

/*
 * ls_store_commit_log() in two halves, so the caller can work while Redis
 * runs the transaction: _send writes it (0, or -1 with nothing sent);
 * _recv reads its outcome (blocking; 0, or -1 as ls_store_commit_log,
 * and always -1 if the connection was lost meanwhile: outcome unknown).
 * In between, a[] (the result pointers) must stay valid and no other
 * call may use the connection (it would read the commit's replies); the
 * commit's strings are copied at _send. _answered: no commit in flight,
 * or its reply has begun to arrive (so _recv will not wait long).
 */
int ls_store_commit_send(ls_store *st, const ls_store_write *w, size_t nw,
			 const ls_store_append *a, size_t na, const ls_store_offset *o, size_t no,
			 char *err, size_t errlen);
int ls_store_commit_recv(ls_store *st, char *err, size_t errlen);
bool ls_store_commit_in_flight(const ls_store *st);
/* Forget a commit in flight without reading its outcome: the connection
 * is dropped (ls_store_connect again; re-read the offsets). */
void ls_store_commit_abandon(ls_store *st);
bool ls_store_commit_answered(const ls_store *st);

/*
 * A model's shared state: the checkpoint, the evaluation window and the
 * learning log not yet folded into the checkpoint (oldest first). Blobs
 * point into replies owned by the store, valid like ls_store_load()'s.
 */
typedef struct ls_store_model_keys {
	const char *model; /* string: ls_ftrl_encode() of the shared model */
	const char *eval;  /* string: ls_eval_encode() of the shared window */
	const char *log;   /* list of ls_mlog entries */
} ls_store_model_keys;

typedef struct ls_store_model_state {
	ls_store_blob model; /* data NULL when absent */
	ls_store_blob eval;
	const ls_store_blob *log;
	size_t n_log;
} ls_store_model_state;

/*
 * Read the three keys as one consistent snapshot. With watch, the model
 * key is WATCHed first (the reads then happen in one pipeline), so that a
 * following ls_store_model_write() only succeeds if no other instance
 * rewrote the model in between; without, the reads run in one MULTI/EXEC
 * (read-only tools).
 */
int ls_store_model_read(ls_store *st, const ls_store_model_keys *k, bool watch,
			ls_store_model_state *out, char *err, size_t errlen);

/*
 * After a watched read: in one MULTI/EXEC set the model and eval blobs
 * and drop the first n_folded log entries (the ones folded into them;
 * entries appended since stay). Returns 1 when written, 0 when the WATCH
 * fired (another instance wrote the model first: read again), -1 on
 * error.
 */
int ls_store_model_write(ls_store *st, const ls_store_model_keys *k,
			 const uint8_t *model, size_t model_len,
			 const uint8_t *eval, size_t eval_len, size_t n_folded,
			 char *err, size_t errlen);

/*
 * Up to limit members of the sorted set key with score <= max_score,
 * lowest first, after skipping the first offset of them (ZRANGEBYSCORE
 * ... LIMIT offset limit), into ids[0..*n) (pointing into a reply valid
 * until the next call on st); in the same round trip *next = the lowest
 * score above max_score (rounded down; INT64_MAX when there is none).
 * 0 or -1.
 */
int ls_store_due(ls_store *st, const char *key, int64_t max_score,
		 size_t offset, size_t limit, const char **ids, size_t *n,
		 int64_t *next, char *err, size_t errlen);

/* Forget a WATCH when a read is not followed by a write. */
void ls_store_unwatch(ls_store *st);

/* redis.key_prefix as configured. */
const char *ls_store_key_prefix(const ls_store *st);

/*
 * Fill o[i].next_offset for each (topic, partition) from the offsets hash
 * with one HMGET; -1 when none is stored. n may be 0. A stored value that
 * is not a non-negative decimal integer is an error.
 */
int ls_store_load_offsets(ls_store *st, ls_store_offset *o, size_t n,
			  char *err, size_t errlen);

/*
 * The next replay epoch: INCR <prefix>epoch, 1 the first time. The loop
 * takes one every time it (re)starts reading from the stored offsets, so
 * that what it publishes afterwards can be told from what was published
 * (and perhaps never committed) before; see ls_scorer_set_epoch(). 0 or
 * -1 (I/O error, a key that is not an integer, or past 2^31-1).
 */
int ls_store_next_epoch(ls_store *st, uint64_t *epoch, char *err,
			size_t errlen);

/* MEMORY USAGE of the lead's key into *bytes; *bytes = -1 when the lead has
 * no key. */
int ls_store_memory_usage(ls_store *st, const char *lead_id,
			  long long *bytes, char *err, size_t errlen);

/* Close the connection and free everything, including loaded blobs. NULL
 * is ok. */
void ls_store_free(ls_store *st);

/*
 * The lead's key, "<prefix>{<lead_id>}:s", NUL-terminated into buf. Returns
 * its length, or -1 when it does not fit in buflen (buf is then left
 * empty when buflen > 0).
 */
int ls_store_lead_key(const ls_store *st, const char *lead_id, char *buf,
		      size_t buflen);

/* The offsets hash's key, "<prefix>offsets:<group_id>"; valid until free. */
const char *ls_store_offsets_key(const ls_store *st);

#endif
