/*
 * test_broker_redis.c - the test environment itself works, with real parts.
 *
 * Later integration tests trust these fixtures to give them a broker that
 * delivers what was produced and a Redis that really stops, restarts empty
 * and answers on the address it promised. Each of those promises is checked
 * here against the real thing: librdkafka clients over TCP to the mock
 * cluster, hiredis over a unix socket and TCP to redis-server, and the
 * leadscore-devbroker binary as a child process.
 */
#include "ls_clock.h"
#include "ls_testenv.h"
#include "ls_testredis.h"
#include "ls_testutil.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 2048

/* ------------------------------------------------------------------ Kafka */

START_TEST(test_kafka_roundtrip_fixed_partition)
{
	char err[ERRLEN];
	ls_test_broker *b = NULL;
	ck_assert_msg(ls_test_broker_start(&b, 1, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	ck_assert_msg(ls_test_broker_create_topic(b, "leads.email", 4, err,
						  sizeof err) == LS_TEST_OK,
		      "%s", err);
	const char *bs = ls_test_broker_bootstrap(b);
	ck_assert_msg(strncmp(bs, "127.0.0.1:", 10) == 0, "bootstrap %s", bs);

	ls_test_record rec = { "lead-42", 7, "{\"opened\":true}", 15 };
	ck_assert_msg(ls_test_produce(bs, "leads.email", 2, &rec, 1, 10000,
				      err, sizeof err) == LS_TEST_OK,
		      "%s", err);

	ls_test_msg *msgs = NULL;
	size_t n = 0;
	ls_test_err e = ls_test_consume(bs, "leads.email", 1, 30000, &msgs,
					&n, err, sizeof err);
	ck_assert_msg(e == LS_TEST_OK, "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(msgs[0].topic, "leads.email");
	ck_assert_int_eq(msgs[0].partition, 2);
	ck_assert_int_eq(msgs[0].offset, 0);
	ck_assert_uint_eq(msgs[0].key_len, 7);
	ck_assert_str_eq(msgs[0].key, "lead-42");
	ck_assert_uint_eq(msgs[0].value_len, 15);
	ck_assert_str_eq(msgs[0].value, "{\"opened\":true}");
	ck_assert_int_gt(msgs[0].timestamp, 0);
	ls_test_msgs_free(msgs, n);
	ls_test_broker_destroy(b);
}
END_TEST

/*
 * Keyed records over a 3-broker cluster: everything comes back, once, and
 * every key sticks to one partition (what co-partitioning by lead_id needs).
 */
START_TEST(test_kafka_keyed_multi_broker)
{
	enum { N = 60, LEADS = 6 };
	char err[ERRLEN];
	ls_test_broker *b = NULL;
	ck_assert_msg(ls_test_broker_start(&b, 3, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	ck_assert_msg(ls_test_broker_create_topic(b, "leads.web", 4, err,
						  sizeof err) == LS_TEST_OK,
		      "%s", err);
	const char *bs = ls_test_broker_bootstrap(b);
	ck_assert_ptr_nonnull(strchr(bs, ','));

	static char keys[N][24], vals[N][24];
	ls_test_record recs[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof keys[i], "lead-%d", i % LEADS);
		snprintf(vals[i], sizeof vals[i], "event-%d", i);
		recs[i] = (ls_test_record){ keys[i], strlen(keys[i]), vals[i],
					    strlen(vals[i]) };
	}
	ck_assert_msg(ls_test_produce(bs, "leads.web", RD_KAFKA_PARTITION_UA,
				      recs, N, 10000, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);

	ls_test_msg *msgs = NULL;
	size_t n = 0;
	ck_assert_msg(ls_test_consume(bs, "leads.web", N, 30000, &msgs, &n,
				      err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_uint_eq(n, N);
	int partition_of[LEADS];
	bool seen[N];
	for (int i = 0; i < LEADS; i++)
		partition_of[i] = -1;
	memset(seen, 0, sizeof seen);
	for (size_t i = 0; i < n; i++) {
		int lead = -1, ev = -1;
		ck_assert_int_eq(sscanf(msgs[i].key, "lead-%d", &lead), 1);
		ck_assert_int_eq(sscanf(msgs[i].value, "event-%d", &ev), 1);
		ck_assert(lead >= 0 && lead < LEADS && ev >= 0 && ev < N);
		ck_assert_int_eq(ev % LEADS, lead);
		ck_assert_msg(!seen[ev], "event %d delivered twice", ev);
		seen[ev] = true;
		ck_assert(msgs[i].partition >= 0 && msgs[i].partition < 4);
		if (partition_of[lead] < 0)
			partition_of[lead] = msgs[i].partition;
		ck_assert_int_eq(partition_of[lead], msgs[i].partition);
	}
	ls_test_msgs_free(msgs, n);

	/* nothing more is there: a drain returns only what exists */
	ls_test_err e = ls_test_consume(bs, "leads.web", SIZE_MAX, 6000, &msgs,
					&n, err, sizeof err);
	ck_assert_int_eq(e, LS_TEST_ETIMEOUT);
	ck_assert_uint_eq(n, N);
	ls_test_msgs_free(msgs, n);
	ls_test_broker_destroy(b);
}
END_TEST

START_TEST(test_kafka_bad_arguments)
{
	char err[ERRLEN];
	ls_test_broker *b = NULL;
	ck_assert_int_eq(ls_test_broker_start(&b, 0, err, sizeof err),
			 LS_TEST_EINVAL);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(strstr(err, "broker count"));
	ck_assert_msg(ls_test_broker_start(&b, 1, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	ck_assert_int_eq(ls_test_broker_create_topic(b, "t", 0, err,
						     sizeof err),
			 LS_TEST_EINVAL);
	ls_test_broker_destroy(b);
	ls_test_broker_destroy(NULL);
	ck_assert_str_eq(ls_test_err_name(LS_TEST_ETIMEOUT), "timeout");
}
END_TEST

/* ------------------------------------------------------------------ Redis */

static void set_and_get(const ls_test_redis *r)
{
	char err[ERRLEN];
	redisContext *c = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	redisReply *rep = ls_test_cmd(c, "SET %s %b", "ls:{lead-1}:state", "\0\1\2", (size_t)3);
	ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
	ck_assert_str_eq(rep->str, "OK");
	freeReplyObject(rep);
	rep = ls_test_cmd(c, "GET %s", "ls:{lead-1}:state");
	ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(rep->len, 3);
	ck_assert(memcmp(rep->str, "\0\1\2", 3) == 0);
	freeReplyObject(rep);
	redisFree(c);
}

START_TEST(test_redis_unix_socket)
{
	char err[ERRLEN];
	ls_test_redis *r = NULL;
	ck_assert_msg(ls_test_redis_start(&r, LS_TEST_REDIS_UNIX, err,
					  sizeof err) == LS_TEST_OK, "%s", err);
	const char *sock = ls_test_redis_socket(r);
	ck_assert_ptr_nonnull(sock);
	ck_assert_int_eq(ls_test_redis_port(r), 0);
	struct stat st;
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	char want[PATH_MAX + 16];
	snprintf(want, sizeof want, "unix://%s", sock);
	ck_assert_str_eq(ls_test_redis_url(r), want);
	ck_assert_int_gt(ls_test_redis_pid(r), 0);

	set_and_get(r);

	/* it really is a unix socket server: no TCP listener at all */
	redisContext *c = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	redisReply *rep = ls_test_cmd(c, "CONFIG GET port");
	ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
	ck_assert_uint_eq(rep->elements, 2);
	ck_assert_str_eq(rep->element[1]->str, "0");
	freeReplyObject(rep);
	/* and nothing is persisted */
	rep = ls_test_cmd(c, "CONFIG GET save");
	ck_assert_str_eq(rep->element[1]->str, "");
	freeReplyObject(rep);
	rep = ls_test_cmd(c, "CONFIG GET appendonly");
	ck_assert_str_eq(rep->element[1]->str, "no");
	freeReplyObject(rep);
	redisFree(c);

	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", ls_test_redis_dir(r));
	pid_t pid = ls_test_redis_pid(r);
	ls_test_redis_destroy(r);
	ck_assert_int_ne(access(dir, F_OK), 0); /* temp dir removed */
	ck_assert_int_ne(kill(pid, 0), 0);      /* process gone and reaped */
	ck_assert_int_eq(errno, ESRCH);
}
END_TEST

START_TEST(test_redis_tcp)
{
	char err[ERRLEN];
	ls_test_redis *r = NULL;
	ck_assert_msg(ls_test_redis_start(&r, LS_TEST_REDIS_TCP, err,
					  sizeof err) == LS_TEST_OK, "%s", err);
	int port = ls_test_redis_port(r);
	ck_assert_int_gt(port, 0);
	ck_assert_ptr_null(ls_test_redis_socket(r));
	char want[64];
	snprintf(want, sizeof want, "redis://127.0.0.1:%d/0", port);
	ck_assert_str_eq(ls_test_redis_url(r), want);

	set_and_get(r);

	/* a plain hiredis TCP connection to the advertised port works */
	redisContext *c = redisConnect("127.0.0.1", port);
	ck_assert_ptr_nonnull(c);
	ck_assert_msg(c->err == 0, "%s", c->errstr);
	redisReply *rep = ls_test_cmd(c, "CONFIG GET bind");
	ck_assert_str_eq(rep->element[1]->str, "127.0.0.1");
	freeReplyObject(rep);
	redisFree(c);
	ls_test_redis_destroy(r);
}
END_TEST

/*
 * Looped over both modes: stop makes the address dead, restart brings it
 * back on the same address, empty, and old connections do not survive.
 */
START_TEST(test_redis_stop_restart)
{
	ls_test_redis_mode mode = _i == 0 ? LS_TEST_REDIS_UNIX :
					    LS_TEST_REDIS_TCP;
	char err[ERRLEN];
	ls_test_redis *r = NULL;
	ck_assert_msg(ls_test_redis_start(&r, mode, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	char url[PATH_MAX + 16];
	snprintf(url, sizeof url, "%s", ls_test_redis_url(r));
	pid_t pid1 = ls_test_redis_pid(r);

	redisContext *old = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(old != NULL, "%s", err);
	redisReply *rep = ls_test_cmd(old, "SET before-restart 1");
	freeReplyObject(rep);
	rep = ls_test_cmd(old, "DBSIZE");
	ck_assert_int_eq(rep->integer, 1);
	freeReplyObject(rep);

	ck_assert_msg(ls_test_redis_stop(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_int_eq(ls_test_redis_pid(r), -1);
	ck_assert_int_eq(ls_test_redis_stop(r, err, sizeof err), LS_TEST_OK);
	redisContext *none = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(none == NULL, "connected to a stopped server");
	/* the old connection sees the server gone */
	rep = redisCommand(old, "PING");
	ck_assert_ptr_null(rep);
	ck_assert_int_ne(old->err, 0);
	redisFree(old);

	ck_assert_msg(ls_test_redis_restart(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_str_eq(ls_test_redis_url(r), url);
	ck_assert_int_gt(ls_test_redis_pid(r), 0);
	ck_assert_int_ne(ls_test_redis_pid(r), pid1);

	redisContext *c = ls_test_redis_connect(r, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	rep = ls_test_cmd(c, "GET before-restart");
	ck_assert_int_eq(rep->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);
	rep = ls_test_cmd(c, "DBSIZE");
	ck_assert_int_eq(rep->integer, 0);
	freeReplyObject(rep);
	rep = ls_test_cmd(c, "SET after-restart 2");
	freeReplyObject(rep);
	redisFree(c);

	/* restart of a running server also works (stop is implied) */
	ck_assert_msg(ls_test_redis_restart(r, err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	set_and_get(r);
	ls_test_redis_destroy(r);
}
END_TEST

START_TEST(test_redis_bad_binary_reports_log)
{
	char err[ERRLEN];
	ls_test_redis *r = NULL;
	setenv("LS_REDIS_SERVER", "/nonexistent/redis-server", 1);
	ls_test_err e = ls_test_redis_start(&r, LS_TEST_REDIS_UNIX, err,
					    sizeof err);
	unsetenv("LS_REDIS_SERVER");
	ck_assert_int_eq(e, LS_TEST_EREDIS);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(err, "exec failed") != NULL, "%s", err);
}
END_TEST

/* -------------------------------------------------------------- devbroker */

struct child {
	pid_t pid;
	int out_fd; /* read end of the child's stdout */
};

static void devbroker_path(char *out, size_t outlen)
{
	const char *root = getenv("LS_BUILD_ROOT");
	ck_assert_msg(root != NULL, "LS_BUILD_ROOT is not set");
	snprintf(out, outlen, "%s/tools/leadscore-devbroker", root);
	ck_assert_msg(access(out, X_OK) == 0, "%s: %s", out, strerror(errno));
}

static struct child spawn(char *const argv[], bool quiet)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid_t parent = getpid();
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* dies with the test even when the test is killed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		dup2(p[1], STDOUT_FILENO);
		if (quiet) { /* expected usage errors: keep test logs readable */
			int nul = open("/dev/null", O_WRONLY);
			if (nul >= 0)
				dup2(nul, STDERR_FILENO);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	return (struct child){ pid, p[0] };
}

/* Read one line from fd within timeout_ms; false on EOF or timeout. */
static bool read_line(int fd, char *buf, size_t buflen, int timeout_ms)
{
	size_t n = 0;
	int64_t deadline = ls_clock_mono_ms() + timeout_ms;
	while (n + 1 < buflen) {
		int64_t left = deadline - ls_clock_mono_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = { fd, POLLIN, 0 };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return false;
		ssize_t r = read(fd, buf + n, 1);
		if (r <= 0)
			return false;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return true;
		}
		n++;
	}
	return false;
}

/* SIGTERM and reap within timeout_ms; returns the wait status or -1. */
static int terminate(pid_t pid, int timeout_ms)
{
	kill(pid, SIGTERM);
	int64_t deadline = ls_clock_mono_ms() + timeout_ms;
	int status;
	while (ls_clock_mono_ms() < deadline) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return status;
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/* Metadata over the wire from a librdkafka client. */
static const rd_kafka_metadata_t *fetch_metadata(const char *bs,
						 rd_kafka_t **rkp)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bs,
					   errstr, sizeof errstr),
			 RD_KAFKA_CONF_OK);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr,
				      sizeof errstr);
	ck_assert_msg(rk != NULL, "%s", errstr);
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
	ck_assert_msg(e == RD_KAFKA_RESP_ERR_NO_ERROR, "metadata: %s",
		      rd_kafka_err2str(e));
	*rkp = rk;
	return md;
}

static int topic_partitions(const rd_kafka_metadata_t *md, const char *name)
{
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, name) == 0)
			return md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR ?
				       md->topics[i].partition_cnt : -1;
	return 0;
}

START_TEST(test_devbroker_defaults)
{
	char bin[PATH_MAX];
	devbroker_path(bin, sizeof bin);
	char *argv[] = { bin, NULL };
	struct child ch = spawn(argv, false);

	char line[1024];
	ck_assert_msg(read_line(ch.out_fd, line, sizeof line, 15000),
		      "no bootstrap line from %s", bin);
	ck_assert_msg(strncmp(line, "bootstrap.servers=127.0.0.1:", 28) == 0,
		      "line: %s", line);
	const char *bs = line + strlen("bootstrap.servers=");
	ck_assert_ptr_null(strchr(bs, ',')); /* one broker by default */

	rd_kafka_t *rk = NULL;
	const rd_kafka_metadata_t *md = fetch_metadata(bs, &rk);
	ck_assert_int_eq(md->broker_cnt, 1);
	static const char *const topics[] = {
		"leads.email",   "leads.web",    "leads.call",
		"leads.outcome", "leads.profile", "leads.scores",
		"leads.dead_letter", "leads.decisions",
	};
	ck_assert_int_eq(md->topic_cnt, 8);
	for (size_t i = 0; i < 8; i++)
		ck_assert_msg(topic_partitions(md, topics[i]) == 4,
			      "%s has %d partitions", topics[i],
			      topic_partitions(md, topics[i]));
	rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);

	/* it serves data too, to independent clients */
	char err[ERRLEN];
	ls_test_record rec = { "lead-7", 6, "hello", 5 };
	ck_assert_msg(ls_test_produce(bs, "leads.scores", 1, &rec, 1, 10000,
				      err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ls_test_msg *msgs = NULL;
	size_t n = 0;
	ck_assert_msg(ls_test_consume(bs, "leads.scores", 1, 30000, &msgs, &n,
				      err, sizeof err) == LS_TEST_OK,
		      "%s", err);
	ck_assert_str_eq(msgs[0].key, "lead-7");
	ck_assert_str_eq(msgs[0].value, "hello");
	ck_assert_int_eq(msgs[0].partition, 1);
	ls_test_msgs_free(msgs, n);

	/* exactly one line on stdout: nothing else follows before EOF */
	int status = terminate(ch.pid, 15000);
	ck_assert_msg(status != -1, "devbroker ignored SIGTERM");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "devbroker wait status 0x%x", (unsigned)status);
	ck_assert(!read_line(ch.out_fd, line, sizeof line, 1000));
	close(ch.out_fd);
}
END_TEST

START_TEST(test_devbroker_options_and_file)
{
	char bin[PATH_MAX];
	devbroker_path(bin, sizeof bin);
	char dir[] = "/tmp/ls-devbroker-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char file[PATH_MAX];
	snprintf(file, sizeof file, "%s/bootstrap", dir);

	char *argv[] = { bin, "--brokers", "3", "--partitions", "2",
			 "--topic", "a.one", "--topic", "b.two",
			 "--bootstrap-file", file, NULL };
	struct child ch = spawn(argv, false);
	char line[1024];
	ck_assert(read_line(ch.out_fd, line, sizeof line, 15000));
	const char *bs = line + strlen("bootstrap.servers=");
	ck_assert_int_eq(strncmp(line, "bootstrap.servers=", 18), 0);

	/* the file holds the same string, written before the line */
	char content[1024] = "";
	FILE *f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(content, sizeof content, f));
	fclose(f);
	content[strcspn(content, "\n")] = '\0';
	ck_assert_str_eq(content, bs);

	rd_kafka_t *rk = NULL;
	const rd_kafka_metadata_t *md = fetch_metadata(bs, &rk);
	ck_assert_int_eq(md->broker_cnt, 3);
	ck_assert_int_eq(md->topic_cnt, 2);
	ck_assert_int_eq(topic_partitions(md, "a.one"), 2);
	ck_assert_int_eq(topic_partitions(md, "b.two"), 2);
	ck_assert_int_eq(topic_partitions(md, "leads.email"), 0);
	rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);

	int status = terminate(ch.pid, 15000);
	ck_assert(status != -1 && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0);
	close(ch.out_fd);
	/* a stale file would point readers at a dead port */
	ck_assert_int_ne(access(file, F_OK), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_devbroker_usage_errors)
{
	char bin[PATH_MAX];
	devbroker_path(bin, sizeof bin);
	char *bad[][4] = {
		{ bin, "--brokers", "0", NULL },
		{ bin, "--partitions", "x", NULL },
		{ bin, "--topic", "bad topic", NULL },
		{ bin, "--no-such-option", NULL, NULL },
		{ bin, "stray", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct child ch = spawn(bad[i], true);
		int st;
		ck_assert_int_eq(waitpid(ch.pid, &st, 0), ch.pid);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2,
			      "case %zu: status 0x%x", i, (unsigned)st);
		char line[256];
		ck_assert(!read_line(ch.out_fd, line, sizeof line, 100));
		close(ch.out_fd);
	}
	char *help[] = { bin, "--help", NULL };
	struct child ch = spawn(help, false);
	char line[256];
	ck_assert(read_line(ch.out_fd, line, sizeof line, 5000));
	ck_assert_ptr_nonnull(strstr(line, "Usage: leadscore-devbroker"));
	int st;
	ck_assert_int_eq(waitpid(ch.pid, &st, 0), ch.pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ch.out_fd);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("broker_redis");
	TCase *k = tcase_create("kafka");
	tcase_set_timeout(k, 90);
	tcase_add_test(k, test_kafka_roundtrip_fixed_partition);
	tcase_add_test(k, test_kafka_keyed_multi_broker);
	tcase_add_test(k, test_kafka_bad_arguments);
	suite_add_tcase(s, k);

	TCase *r = tcase_create("redis");
	tcase_set_timeout(r, 60);
	tcase_add_test(r, test_redis_unix_socket);
	tcase_add_test(r, test_redis_tcp);
	tcase_add_loop_test(r, test_redis_stop_restart, 0, 2);
	tcase_add_test(r, test_redis_bad_binary_reports_log);
	suite_add_tcase(s, r);

	TCase *d = tcase_create("devbroker");
	tcase_set_timeout(d, 90);
	tcase_add_test(d, test_devbroker_defaults);
	tcase_add_test(d, test_devbroker_options_and_file);
	tcase_add_test(d, test_devbroker_usage_errors);
	suite_add_tcase(s, d);
	return s;
}

int main(void)
{
	/*
	 * hiredis writes with plain write(2): a command on a connection whose
	 * server was stopped must fail with EPIPE, not kill the test.
	 */
	signal(SIGPIPE, SIG_IGN);
	return ls_test_run(suite(), CK_NORMAL);
}
