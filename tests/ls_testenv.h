/*
 * ls_testenv.h - real Redis and a real Kafka-protocol broker for tests.
 *
 * Project rule: real parts, not mocks. These fixtures give a test
 *   - a private redis-server child in a fresh temp dir, on a unix socket or
 *     a free 127.0.0.1 TCP port, that can be stopped and restarted on the
 *     same address (the state goes away: nothing is persisted), and
 *   - librdkafka's mock cluster running in-process: real TCP listeners on
 *     127.0.0.1 speaking the Kafka wire protocol to any client,
 * plus small produce/consume helpers built on plain librdkafka clients.
 *
 * Contract for every function that returns ls_test_err:
 *   - LS_TEST_OK (0) on success; otherwise an error value and, when err is
 *     not NULL, a NUL-terminated human reason in err[0..errlen). Nothing
 *     here calls exit() or abort(); nothing is leaked on an error path.
 *   - Handles are owned by the caller and freed with their destroy function,
 *     which is safe on NULL and on a half-started handle.
 *
 * Processes: the redis child sets PR_SET_PDEATHSIG(SIGKILL), so it dies
 * when the thread that started it dies, even if the test is killed -9.
 * Start and stop a fixture from the same thread (Check's fork mode runs
 * each test in one thread of a child process, which is what we want).
 *
 * Retention caveat of the mock broker: each partition keeps only about
 * the newest 5 MiB (and at most 100,000 message sets); tests that need
 * to read back everything they wrote must stay under that per partition.
 *
 * Thread-safety: a handle must not be used from two threads at once. The
 * produce/consume helpers create their own clients and may run
 * concurrently with each other.
 */
#ifndef LS_TESTENV_H
#define LS_TESTENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

typedef enum ls_test_err {
	LS_TEST_OK = 0,
	LS_TEST_EINVAL,   /* bad argument */
	LS_TEST_ESYS,     /* a system call failed (errno text in the reason) */
	LS_TEST_ENOMEM,   /* allocation failed */
	LS_TEST_ETIMEOUT, /* the thing did not happen in time */
	LS_TEST_EREDIS,   /* redis-server failed or answered wrongly */
	LS_TEST_EKAFKA,   /* librdkafka or the mock cluster failed */
} ls_test_err;

/* Short stable name of an error value, e.g. "timeout". Never NULL. */
const char *ls_test_err_name(ls_test_err e);

/* ------------------------------------------------------------------ Redis */

typedef enum ls_test_redis_mode {
	LS_TEST_REDIS_UNIX = 0, /* --port 0 --unixsocket DIR/redis.sock */
	LS_TEST_REDIS_TCP,      /* --bind 127.0.0.1 --port <free port> */
} ls_test_redis_mode;

typedef struct ls_test_redis ls_test_redis;

/*
 * Create a temp dir ($TMPDIR or /tmp, "ls-redis-XXXXXX"), start redis-server
 * there with no persistence and wait up to 10 s until PING answers. The
 * binary is $LS_REDIS_SERVER if set, else redis-server from PATH, else
 * /usr/bin/redis-server. In TCP mode a free port is chosen by binding port 0;
 * a lost race for it is retried with a new port. On failure the reason
 * includes the tail of redis.log, and everything is cleaned up (*out NULL).
 */
ls_test_err ls_test_redis_start(ls_test_redis **out, ls_test_redis_mode mode,
				 char *err, size_t errlen);

/*
 * SIGTERM, wait up to 5 s, then SIGKILL; always reaps the child. The temp
 * dir stays so the server can be restarted. Stopping a stopped server is
 * a no-op returning LS_TEST_OK. Returns LS_TEST_EREDIS when the server had
 * to be killed or exited with a non-zero status (it is stopped anyway).
 */
ls_test_err ls_test_redis_stop(ls_test_redis *r, char *err, size_t errlen);

/*
 * Stop (if running) and start again on the same socket path or TCP port,
 * waiting for PING as in start. The new server starts empty.
 */
ls_test_err ls_test_redis_restart(ls_test_redis *r, char *err, size_t errlen);

/* Stop the server (if running), remove the temp dir, free r. NULL is ok. */
void ls_test_redis_destroy(ls_test_redis *r);

/*
 * A new hiredis connection (1 s connect timeout, 5 s command timeout) to the
 * server, or NULL with the reason in err. The caller frees it with
 * redisFree(). hiredis writes with plain write(2): a test that keeps using
 * a connection across ls_test_redis_stop() must ignore SIGPIPE.
 */
redisContext *ls_test_redis_connect(const ls_test_redis *r, char *err,
				    size_t errlen);

/* "unix:///tmp/ls-redis-x/redis.sock" or "redis://127.0.0.1:PORT/0". */
const char *ls_test_redis_url(const ls_test_redis *r);
ls_test_redis_mode ls_test_redis_get_mode(const ls_test_redis *r);
/* Socket path (unix mode) or NULL. */
const char *ls_test_redis_socket(const ls_test_redis *r);
/* TCP port (TCP mode) or 0. */
int ls_test_redis_port(const ls_test_redis *r);
/* The private temp dir (holds redis.log). */
const char *ls_test_redis_dir(const ls_test_redis *r);
/* The server's pid, or -1 while stopped. */
pid_t ls_test_redis_pid(const ls_test_redis *r);

/* ----------------------------------------------------------------- Broker */

typedef struct ls_test_broker ls_test_broker;

/*
 * Start a mock cluster of broker_cnt (1..16) brokers listening on
 * 127.0.0.1. The fixture owns the rd_kafka_t handle the mock cluster
 * needs for its book keeping.
 */
ls_test_err ls_test_broker_start(ls_test_broker **out, int broker_cnt,
				 char *err, size_t errlen);

/*
 * Create topic with partitions (1..10000) partitions and replication
 * factor min(3, broker_cnt). Synchronous: the topic exists on return.
 * Beware: the mock cluster auto-creates, with 4 partitions, any unknown
 * topic a client names (produce, subscribe, metadata request), ignoring
 * allow.auto.create.topics; create topics here first to get a known count.
 */
ls_test_err ls_test_broker_create_topic(ls_test_broker *b, const char *topic,
					int partitions, char *err,
					size_t errlen);

/* "127.0.0.1:PORT[,127.0.0.1:PORT...]"; valid until destroy. */
const char *ls_test_broker_bootstrap(const ls_test_broker *b);

/* The mock cluster itself, for error injection (rdkafka_mock.h). */
rd_kafka_mock_cluster_t *ls_test_broker_cluster(ls_test_broker *b);

/* Destroy the cluster and its handle; NULL is ok. */
void ls_test_broker_destroy(ls_test_broker *b);

/* ------------------------------------------------ Produce / consume helpers */

/* One record to produce. key may be NULL (no key); value may be NULL. */
typedef struct ls_test_record {
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
} ls_test_record;

/*
 * Produce n records to topic with a fresh producer (acks=all), flush, and
 * wait up to timeout_ms for every delivery report. partition is a fixed
 * partition or RD_KAFKA_PARTITION_UA to let the key choose (librdkafka's
 * default consistent_random partitioner). Fails if any record was not
 * delivered; the reason names the first delivery error.
 */
ls_test_err ls_test_produce(const char *bootstrap, const char *topic,
			    int32_t partition, const ls_test_record *recs,
			    size_t n, int timeout_ms, char *err, size_t errlen);

/*
 * One consumed message. key and value are heap copies with an extra NUL
 * after the bytes (so text can be compared with strcmp); NULL when the
 * message had none. headers is an owned copy or NULL.
 */
typedef struct ls_test_msg {
	char *topic;
	int32_t partition;
	int64_t offset;
	int64_t timestamp; /* ms since epoch, -1 if not available */
	char *key;
	size_t key_len;
	char *value;
	size_t value_len;
	rd_kafka_headers_t *headers;
} ls_test_msg;

/*
 * Subscribe a fresh consumer (unique group id per call, auto.offset.reset
 * earliest, no offset commits) to topic and collect messages until want
 * have arrived or timeout_ms has passed, then close the consumer.
 *
 * On LS_TEST_OK exactly want messages are returned. On LS_TEST_ETIMEOUT the
 * messages that did arrive (maybe none) are returned too; pass want =
 * SIZE_MAX to drain whatever arrives within timeout_ms. In both cases the
 * caller frees *out with ls_test_msgs_free(*out, *n_out). On any other
 * error *out is NULL and *n_out 0.
 *
 * Expect each call to take at least about 3 s: the mock cluster delays a
 * new group's first join by that much. Subscribing to a topic that does
 * not exist makes the mock cluster create it (4 partitions).
 */
ls_test_err ls_test_consume(const char *bootstrap, const char *topic,
			    size_t want, int timeout_ms, ls_test_msg **out,
			    size_t *n_out, char *err, size_t errlen);

/* Free n messages and the array; NULL is ok. */
void ls_test_msgs_free(ls_test_msg *msgs, size_t n);

#endif
