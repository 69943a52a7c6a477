/*
 * ls_testenv.c - fixtures that run real Redis and a real Kafka protocol.
 *
 * Redis runs as a child process rather than in-process because that is how
 * the daemon meets it: over a socket, with its own restarts. Each server
 * gets a private mkdtemp dir so parallel tests never share a socket, a log
 * or an RDB file, and removing the dir is the whole cleanup.
 *
 * Why the child is started with fork+execv and not posix_spawn: the child
 * must set PR_SET_PDEATHSIG before exec so that a test killed with SIGKILL
 * (a meson timeout, a crash under ASan) cannot leave redis-server running.
 * Between fork and exec the child only makes async-signal-safe calls, since
 * librdkafka threads may be running in the parent.
 *
 * The broker is librdkafka's mock cluster: it is in-process but listens on
 * real TCP sockets and speaks the Kafka wire protocol, so the clients under
 * test use exactly the code paths they use against a real cluster.
 */
#include "ls_testenv.h"

#include "ls_log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REDIS_START_TIMEOUT_MS 10000
#define REDIS_STOP_TIMEOUT_MS 5000
#define REDIS_PORT_ATTEMPTS 5
#define LOG_TAIL_BYTES 1200

/* sizeof(sockaddr_un.sun_path): the longest unix socket path plus NUL. */
#define SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct ls_test_redis {
	ls_test_redis_mode mode;
	pid_t pid; /* -1 while stopped */
	int port;  /* TCP mode only */
	char dir[PATH_MAX];
	char sock[SUN_PATH_MAX];
	char log[PATH_MAX];
	char url[PATH_MAX + 16];
	char bin[PATH_MAX];
	pid_t owner; /* process that created it; only it cleans up */
	struct ls_test_redis *next, *prev; /* live list, see live_add() */
};

struct ls_test_broker {
	rd_kafka_t *rk; /* owned; the mock cluster needs it for book keeping */
	rd_kafka_mock_cluster_t *mcluster;
	char *bootstrap;
	int broker_cnt;
};

/* ----------------------------------------------------------------- common */

const char *ls_test_err_name(ls_test_err e)
{
	switch (e) {
	case LS_TEST_OK:
		return "ok";
	case LS_TEST_EINVAL:
		return "invalid argument";
	case LS_TEST_ESYS:
		return "system error";
	case LS_TEST_ENOMEM:
		return "out of memory";
	case LS_TEST_ETIMEOUT:
		return "timeout";
	case LS_TEST_EREDIS:
		return "redis error";
	case LS_TEST_EKAFKA:
		return "kafka error";
	}
	return "unknown error";
}

__attribute__((format(printf, 4, 5)))
static ls_test_err fail(char *err, size_t errlen, ls_test_err e,
			const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return e;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return e;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* librdkafka logs through ls_log so test output has one format. */
static void rdkafka_log_cb(const rd_kafka_t *rk, int level, const char *fac,
			   const char *buf)
{
	/* the mock cluster's own handle never connects: its warning is noise */
	if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers"))
		return;
	char qbuf[1024];
	ls_log_level l = level <= 3 ? LS_LOG_ERROR :
			 level <= 4 ? LS_LOG_WARN :
			 level <= 6 ? LS_LOG_INFO : LS_LOG_DEBUG;
	ls_log(l, "rdkafka", fac, "client=%s detail=%s", rd_kafka_name(rk),
	       ls_log_quote(buf, qbuf, sizeof qbuf));
}

static bool conf_set(rd_kafka_conf_t *conf, const char *name,
		     const char *value, char *err, size_t errlen)
{
	char errstr[256];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) ==
	    RD_KAFKA_CONF_OK)
		return true;
	fail(err, errlen, LS_TEST_EKAFKA, "rd_kafka_conf_set %s=%s: %s", name,
	     value, errstr);
	return false;
}

/*
 * A config with our log callback and, when LS_TEST_RDKAFKA_DEBUG is set
 * (e.g. "cgrp,mock,protocol"), librdkafka debug contexts: the way to see
 * what a client and the mock cluster said to each other in a failed test.
 */
static rd_kafka_conf_t *conf_new(char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL) {
		fail(err, errlen, LS_TEST_ENOMEM, "rd_kafka_conf_new");
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, rdkafka_log_cb);
	const char *dbg = getenv("LS_TEST_RDKAFKA_DEBUG");
	if (dbg != NULL && dbg[0] != '\0' &&
	    !conf_set(conf, "debug", dbg, err, errlen)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (dbg != NULL && dbg[0] != '\0')
		ls_log_set_level(LS_LOG_DEBUG); /* else the lines are dropped */
	return conf;
}

/* ------------------------------------------------------------------ Redis */

/*
 * Every live Redis fixture is on this list so that a test that ends by
 * exit() - which is how Check's fork mode ends a failed ck_assert - still
 * kills its servers and removes their temp dirs from an atexit handler.
 * PR_SET_PDEATHSIG covers the processes when even atexit does not run.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;
static ls_test_redis *live_head;

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void live_cleanup_at_exit(void)
{
	pthread_mutex_lock(&live_lock);
	for (ls_test_redis *r = live_head; r != NULL; r = r->next) {
		if (r->owner != getpid())
			continue; /* a forked copy of the list: not ours */
		if (r->pid > 0) {
			kill(r->pid, SIGKILL);
			while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
				;
			r->pid = -1;
		}
		nftw(r->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	}
	pthread_mutex_unlock(&live_lock);
}

static void live_init(void)
{
	if (atexit(live_cleanup_at_exit) != 0)
		ls_warn("testenv", "atexit failed: no cleanup on exit()", NULL);
}

static void live_add(ls_test_redis *r)
{
	pthread_once(&live_once, live_init);
	pthread_mutex_lock(&live_lock);
	r->owner = getpid();
	r->prev = NULL;
	r->next = live_head;
	if (live_head != NULL)
		live_head->prev = r;
	live_head = r;
	pthread_mutex_unlock(&live_lock);
}

static void live_remove(ls_test_redis *r)
{
	pthread_mutex_lock(&live_lock);
	if (r->prev != NULL)
		r->prev->next = r->next;
	else if (live_head == r)
		live_head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	pthread_mutex_unlock(&live_lock);
}

/*
 * Resolve the binary before fork: searching PATH is not something to do
 * between fork and exec in a threaded process.
 */
static void redis_find_binary(char *out, size_t outlen)
{
	const char *env = getenv("LS_REDIS_SERVER");
	if (env != NULL && env[0] != '\0') {
		snprintf(out, outlen, "%s", env);
		return;
	}
	const char *path = getenv("PATH");
	if (path != NULL) {
		const char *p = path;
		while (*p != '\0') {
			const char *colon = strchr(p, ':');
			size_t len = colon ? (size_t)(colon - p) : strlen(p);
			if (len > 0 && len < outlen) {
				int w = snprintf(out, outlen, "%.*s/redis-server",
						 (int)len, p);
				if (w > 0 && (size_t)w < outlen &&
				    access(out, X_OK) == 0)
					return;
			}
			if (colon == NULL)
				break;
			p = colon + 1;
		}
	}
	snprintf(out, outlen, "/usr/bin/redis-server");
}

/* Last bytes of redis.log on one line, for failure reasons. */
static void redis_log_tail(const ls_test_redis *r, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	out[0] = '\0';
	int fd = open(r->log, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(out, outlen, "(no redis.log: %s)", strerror(errno));
		return;
	}
	char buf[LOG_TAIL_BYTES + 1];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t start = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
	ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, start);
	close(fd);
	if (n <= 0) {
		snprintf(out, outlen, "(redis.log is empty)");
		return;
	}
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = '|';
	snprintf(out, outlen, "%s", buf);
}

/* A port that was free a moment ago; the caller handles losing the race. */
static int free_tcp_port(char *err, size_t errlen)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(err, errlen, LS_TEST_ESYS, "socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	socklen_t len = sizeof sa;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		fail(err, errlen, LS_TEST_ESYS, "bind 127.0.0.1:0: %s",
		     strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

static ls_test_err redis_spawn(ls_test_redis *r, char *err, size_t errlen)
{
	char port[16];
	snprintf(port, sizeof port, "%d",
		 r->mode == LS_TEST_REDIS_TCP ? r->port : 0);

	char *argv[32];
	int i = 0;
	argv[i++] = r->bin;
	argv[i++] = (char *)"--port";
	argv[i++] = port;
	if (r->mode == LS_TEST_REDIS_UNIX) {
		argv[i++] = (char *)"--unixsocket";
		argv[i++] = r->sock;
		argv[i++] = (char *)"--unixsocketperm";
		argv[i++] = (char *)"700";
	} else {
		argv[i++] = (char *)"--bind";
		argv[i++] = (char *)"127.0.0.1";
	}
	argv[i++] = (char *)"--save";
	argv[i++] = (char *)"";
	argv[i++] = (char *)"--appendonly";
	argv[i++] = (char *)"no";
	argv[i++] = (char *)"--daemonize";
	argv[i++] = (char *)"no";
	argv[i++] = (char *)"--dir";
	argv[i++] = r->dir;
	argv[i++] = (char *)"--logfile";
	argv[i++] = r->log;
	argv[i] = NULL;

	/* A stale socket from a SIGKILLed server must not fool wait_ready. */
	if (r->mode == LS_TEST_REDIS_UNIX)
		unlink(r->sock);

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return fail(err, errlen, LS_TEST_ESYS, "fork: %s",
			    strerror(errno));
	if (pid == 0) {
		/* child: async-signal-safe calls only until execv */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
			_exit(126);
		if (getppid() != parent)
			_exit(126); /* the parent died before prctl */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int in = open("/dev/null", O_RDONLY);
		if (in >= 0) {
			dup2(in, STDIN_FILENO);
			close(in);
		}
		/* early errors (bad option) go to stderr, before the logfile */
		int out = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (out >= 0) {
			dup2(out, STDOUT_FILENO);
			dup2(out, STDERR_FILENO);
			close(out);
		}
		execv(r->bin, argv);
		_exit(127);
	}
	r->pid = pid;
	return LS_TEST_OK;
}

/* One PING on a fresh connection; true when the answer is PONG. */
static bool redis_ping(const ls_test_redis *r)
{
	redisContext *c = ls_test_redis_connect(r, NULL, 0);
	if (c == NULL)
		return false;
	redisReply *reply = redisCommand(c, "PING");
	bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS &&
		  strcmp(reply->str, "PONG") == 0;
	if (reply != NULL)
		freeReplyObject(reply);
	redisFree(c);
	return ok;
}

static void describe_status(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status))
		snprintf(out, outlen, "exited with status %d%s",
			 WEXITSTATUS(status),
			 WEXITSTATUS(status) == 127 ? " (exec failed)" : "");
	else if (WIFSIGNALED(status))
		snprintf(out, outlen, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, outlen, "status 0x%x", (unsigned)status);
}

/*
 * Wait until PING answers. *exited is set when the child died first (the
 * caller may retry another port); the child is reaped in every failure.
 */
static ls_test_err redis_wait_ready(ls_test_redis *r, bool *exited, char *err,
				    size_t errlen)
{
	*exited = false;
	int64_t deadline = now_ms() + REDIS_START_TIMEOUT_MS;
	char tail[LOG_TAIL_BYTES + 64];
	for (;;) {
		int status;
		pid_t w = waitpid(r->pid, &status, WNOHANG);
		if (w == r->pid) {
			char how[64];
			describe_status(status, how, sizeof how);
			r->pid = -1;
			*exited = true;
			redis_log_tail(r, tail, sizeof tail);
			return fail(err, errlen, LS_TEST_EREDIS,
				    "redis-server (%s) %s; redis.log: %s",
				    r->bin, how, tail);
		}
		if (redis_ping(r))
			return LS_TEST_OK;
		if (now_ms() >= deadline)
			break;
		sleep_ms(20);
	}
	redis_log_tail(r, tail, sizeof tail);
	fail(err, errlen, LS_TEST_ETIMEOUT,
	     "redis-server did not answer PING within %d ms; redis.log: %s",
	     REDIS_START_TIMEOUT_MS, tail);
	ls_test_redis_stop(r, NULL, 0);
	return LS_TEST_ETIMEOUT;
}

static void redis_set_url(ls_test_redis *r)
{
	if (r->mode == LS_TEST_REDIS_UNIX)
		snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
	else
		snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0",
			 r->port);
}

static bool log_says_in_use(const ls_test_redis *r)
{
	char tail[LOG_TAIL_BYTES + 64];
	redis_log_tail(r, tail, sizeof tail);
	return strstr(tail, "in use") != NULL;
}

/*
 * Start on r->port (or the socket). fresh_port allows picking another free
 * port when the chosen one was taken between our probe and redis' bind.
 */
static ls_test_err redis_launch(ls_test_redis *r, bool fresh_port, char *err,
				size_t errlen)
{
	ls_test_err e = LS_TEST_EREDIS;
	for (int attempt = 0; attempt < REDIS_PORT_ATTEMPTS; attempt++) {
		if (r->mode == LS_TEST_REDIS_TCP && fresh_port) {
			int port = free_tcp_port(err, errlen);
			if (port < 0)
				return LS_TEST_ESYS;
			r->port = port;
		}
		redis_set_url(r);
		e = redis_spawn(r, err, errlen);
		if (e != LS_TEST_OK)
			return e;
		bool exited;
		e = redis_wait_ready(r, &exited, err, errlen);
		if (e == LS_TEST_OK)
			return LS_TEST_OK;
		/* Only a lost bind race is worth another try. */
		if (!exited || !log_says_in_use(r))
			return e;
		if (r->mode == LS_TEST_REDIS_TCP && fresh_port) {
			ls_warn("testenv", "redis port taken, retrying",
				"port=%d", r->port);
		} else {
			/* restart on a fixed address: wait for it to free */
			sleep_ms(200);
		}
	}
	return e;
}

ls_test_err ls_test_redis_start(ls_test_redis **out, ls_test_redis_mode mode,
				char *err, size_t errlen)
{
	if (out == NULL)
		return fail(err, errlen, LS_TEST_EINVAL, "out is NULL");
	*out = NULL;
	if (mode != LS_TEST_REDIS_UNIX && mode != LS_TEST_REDIS_TCP)
		return fail(err, errlen, LS_TEST_EINVAL, "bad redis mode %d",
			    (int)mode);

	ls_test_redis *r = calloc(1, sizeof *r);
	if (r == NULL)
		return fail(err, errlen, LS_TEST_ENOMEM, "calloc failed");
	r->mode = mode;
	r->pid = -1;
	redis_find_binary(r->bin, sizeof r->bin);

	/*
	 * A unix socket path is limited to 107 bytes; fall back to /tmp when
	 * $TMPDIR is too deep for "<dir>/ls-redis-XXXXXX/redis.sock".
	 */
	const char *tmp = getenv("TMPDIR");
	if (tmp == NULL || tmp[0] == '\0' ||
	    strlen(tmp) + sizeof "/ls-redis-XXXXXX/redis.sock" > SUN_PATH_MAX)
		tmp = "/tmp";
	int w = snprintf(r->dir, sizeof r->dir, "%s/ls-redis-XXXXXX", tmp);
	if (w < 0 || (size_t)w >= sizeof r->dir) {
		free(r);
		return fail(err, errlen, LS_TEST_EINVAL, "TMPDIR too long");
	}
	if (mkdtemp(r->dir) == NULL) {
		ls_test_err e = fail(err, errlen, LS_TEST_ESYS, "mkdtemp %s: %s",
				     r->dir, strerror(errno));
		free(r);
		return e;
	}
	live_add(r);
	w = snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
	bool fits = w > 0 && (size_t)w < sizeof r->log;
	if (mode == LS_TEST_REDIS_UNIX) {
		w = snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
		fits = fits && w > 0 && (size_t)w < sizeof r->sock;
	}
	if (!fits) {
		ls_test_redis_destroy(r);
		return fail(err, errlen, LS_TEST_EINVAL, "temp path too long");
	}

	ls_test_err e = redis_launch(r, true, err, errlen);
	if (e != LS_TEST_OK) {
		ls_test_redis_destroy(r);
		return e;
	}
	*out = r;
	return LS_TEST_OK;
}

ls_test_err ls_test_redis_stop(ls_test_redis *r, char *err, size_t errlen)
{
	if (r == NULL)
		return fail(err, errlen, LS_TEST_EINVAL, "redis is NULL");
	if (r->pid < 0)
		return LS_TEST_OK;

	pid_t pid = r->pid;
	r->pid = -1;
	if (kill(pid, SIGTERM) != 0 && errno != ESRCH)
		ls_warn("testenv", "kill SIGTERM failed", "pid=%d errno=%d",
			(int)pid, errno);

	int64_t deadline = now_ms() + REDIS_STOP_TIMEOUT_MS;
	int status = 0;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return fail(err, errlen, LS_TEST_ESYS, "waitpid %d: %s",
				    (int)pid, strerror(errno));
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return fail(err, errlen, LS_TEST_EREDIS,
				    "redis-server pid %d ignored SIGTERM for "
				    "%d ms; killed", (int)pid,
				    REDIS_STOP_TIMEOUT_MS);
		}
		sleep_ms(10);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return LS_TEST_OK;
	char how[64];
	describe_status(status, how, sizeof how);
	return fail(err, errlen, LS_TEST_EREDIS, "redis-server pid %d %s",
		    (int)pid, how);
}

ls_test_err ls_test_redis_restart(ls_test_redis *r, char *err, size_t errlen)
{
	if (r == NULL)
		return fail(err, errlen, LS_TEST_EINVAL, "redis is NULL");
	ls_test_err e = ls_test_redis_stop(r, err, errlen);
	if (e != LS_TEST_OK)
		return e;
	return redis_launch(r, false, err, errlen);
}

void ls_test_redis_destroy(ls_test_redis *r)
{
	if (r == NULL)
		return;
	char err[256];
	if (ls_test_redis_stop(r, err, sizeof err) != LS_TEST_OK)
		ls_warn("testenv", "redis stop failed", "reason=%s", err);
	live_remove(r);
	if (r->dir[0] != '\0')
		nftw(r->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(r);
}

redisContext *ls_test_redis_connect(const ls_test_redis *r, char *err,
				    size_t errlen)
{
	if (r == NULL) {
		fail(err, errlen, LS_TEST_EINVAL, "redis is NULL");
		return NULL;
	}
	struct timeval tv = { 1, 0 };
	redisContext *c = r->mode == LS_TEST_REDIS_UNIX ?
		redisConnectUnixWithTimeout(r->sock, tv) :
		redisConnectWithTimeout("127.0.0.1", r->port, tv);
	if (c == NULL) {
		fail(err, errlen, LS_TEST_ENOMEM, "hiredis: cannot allocate");
		return NULL;
	}
	if (c->err != 0) {
		fail(err, errlen, LS_TEST_EREDIS, "connect %s: %s", r->url,
		     c->errstr);
		redisFree(c);
		return NULL;
	}
	/* Without a command timeout a wedged server would hang the test. */
	if (redisSetTimeout(c, (struct timeval){ 5, 0 }) != REDIS_OK) {
		fail(err, errlen, LS_TEST_EREDIS, "redisSetTimeout: %s",
		     c->errstr);
		redisFree(c);
		return NULL;
	}
	return c;
}

const char *ls_test_redis_url(const ls_test_redis *r) { return r->url; }
ls_test_redis_mode ls_test_redis_get_mode(const ls_test_redis *r) { return r->mode; }
const char *ls_test_redis_dir(const ls_test_redis *r) { return r->dir; }
pid_t ls_test_redis_pid(const ls_test_redis *r) { return r->pid; }

const char *ls_test_redis_socket(const ls_test_redis *r)
{
	return r->mode == LS_TEST_REDIS_UNIX ? r->sock : NULL;
}

int ls_test_redis_port(const ls_test_redis *r)
{
	return r->mode == LS_TEST_REDIS_TCP ? r->port : 0;
}

/* ----------------------------------------------------------------- Broker */

ls_test_err ls_test_broker_start(ls_test_broker **out, int broker_cnt,
				 char *err, size_t errlen)
{
	if (out == NULL)
		return fail(err, errlen, LS_TEST_EINVAL, "out is NULL");
	*out = NULL;
	if (broker_cnt < 1 || broker_cnt > 16)
		return fail(err, errlen, LS_TEST_EINVAL,
			    "broker count %d not in 1..16", broker_cnt);

	ls_test_broker *b = calloc(1, sizeof *b);
	if (b == NULL)
		return fail(err, errlen, LS_TEST_ENOMEM, "calloc failed");
	b->broker_cnt = broker_cnt;

	rd_kafka_conf_t *conf = conf_new(err, errlen);
	if (conf == NULL) {
		free(b);
		return LS_TEST_EKAFKA;
	}
	if (!conf_set(conf, "client.id", "ls-test-mock-cluster", err, errlen)) {
		rd_kafka_conf_destroy(conf);
		free(b);
		return LS_TEST_EKAFKA;
	}
	char errstr[512];
	b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (b->rk == NULL) {
		rd_kafka_conf_destroy(conf); /* not taken over on failure */
		free(b);
		return fail(err, errlen, LS_TEST_EKAFKA, "rd_kafka_new: %s",
			    errstr);
	}
	b->mcluster = rd_kafka_mock_cluster_new(b->rk, broker_cnt);
	if (b->mcluster == NULL) {
		ls_test_broker_destroy(b);
		return fail(err, errlen, LS_TEST_EKAFKA,
			    "rd_kafka_mock_cluster_new(%d) failed", broker_cnt);
	}
	const char *bs = rd_kafka_mock_cluster_bootstraps(b->mcluster);
	b->bootstrap = bs != NULL ? strdup(bs) : NULL;
	if (b->bootstrap == NULL) {
		ls_test_broker_destroy(b);
		return fail(err, errlen, LS_TEST_ENOMEM, "no bootstrap string");
	}
	*out = b;
	return LS_TEST_OK;
}

ls_test_err ls_test_broker_create_topic(ls_test_broker *b, const char *topic,
					int partitions, char *err,
					size_t errlen)
{
	if (b == NULL || topic == NULL || topic[0] == '\0')
		return fail(err, errlen, LS_TEST_EINVAL, "no broker or topic");
	if (partitions < 1 || partitions > 10000)
		return fail(err, errlen, LS_TEST_EINVAL,
			    "partition count %d not in 1..10000", partitions);
	int rf = b->broker_cnt < 3 ? b->broker_cnt : 3;
	rd_kafka_resp_err_t e =
		rd_kafka_mock_topic_create(b->mcluster, topic, partitions, rf);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		return fail(err, errlen, LS_TEST_EKAFKA,
			    "create topic %s: %s", topic, rd_kafka_err2str(e));
	return LS_TEST_OK;
}

const char *ls_test_broker_bootstrap(const ls_test_broker *b)
{
	return b->bootstrap;
}

rd_kafka_mock_cluster_t *ls_test_broker_cluster(ls_test_broker *b)
{
	return b->mcluster;
}

void ls_test_broker_destroy(ls_test_broker *b)
{
	if (b == NULL)
		return;
	/* the cluster refers to rk, so it goes first */
	if (b->mcluster != NULL)
		rd_kafka_mock_cluster_destroy(b->mcluster);
	if (b->rk != NULL)
		rd_kafka_destroy(b->rk);
	free(b->bootstrap);
	free(b);
}

/* ------------------------------------------------ Produce / consume helpers */

struct delivery_state {
	size_t delivered;
	size_t failed;
	rd_kafka_resp_err_t first_err;
};

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	(void)rk;
	struct delivery_state *st = opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		st->delivered++;
		return;
	}
	if (st->failed++ == 0)
		st->first_err = m->err;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
			      char *err, size_t errlen)
{
	char errstr[512];
	rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
	if (rk == NULL) {
		rd_kafka_conf_destroy(conf);
		fail(err, errlen, LS_TEST_EKAFKA, "rd_kafka_new: %s", errstr);
	}
	return rk;
}

ls_test_err ls_test_produce(const char *bootstrap, const char *topic,
			    int32_t partition, const ls_test_record *recs,
			    size_t n, int timeout_ms, char *err, size_t errlen)
{
	if (bootstrap == NULL || topic == NULL || (recs == NULL && n > 0))
		return fail(err, errlen, LS_TEST_EINVAL,
			    "no bootstrap, topic or records");
	if (timeout_ms < 1)
		return fail(err, errlen, LS_TEST_EINVAL, "timeout_ms < 1");
	if (n == 0)
		return LS_TEST_OK;

	struct delivery_state st = { 0, 0, RD_KAFKA_RESP_ERR_NO_ERROR };
	char tmo[32];
	snprintf(tmo, sizeof tmo, "%d", timeout_ms);
	rd_kafka_conf_t *conf = conf_new(err, errlen);
	if (conf == NULL)
		return LS_TEST_EKAFKA;
	rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
	rd_kafka_conf_set_opaque(conf, &st);
	if (!conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
	    !conf_set(conf, "client.id", "ls-test-producer", err, errlen) ||
	    !conf_set(conf, "acks", "all", err, errlen) ||
	    !conf_set(conf, "linger.ms", "1", err, errlen) ||
	    !conf_set(conf, "message.timeout.ms", tmo, err, errlen)) {
		rd_kafka_conf_destroy(conf);
		return LS_TEST_EKAFKA;
	}
	rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf, err, errlen);
	if (rk == NULL)
		return LS_TEST_EKAFKA;

	int64_t deadline = now_ms() + timeout_ms;
	ls_test_err e = LS_TEST_OK;
	for (size_t i = 0; i < n && e == LS_TEST_OK; i++) {
		const ls_test_record *rec = &recs[i];
		for (;;) {
			rd_kafka_resp_err_t pe = rd_kafka_producev(
				rk, RD_KAFKA_V_TOPIC(topic),
				RD_KAFKA_V_PARTITION(partition),
				RD_KAFKA_V_KEY(rec->key, rec->key_len),
				RD_KAFKA_V_VALUE((void *)rec->value,
						 rec->value_len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_END);
			if (pe == RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			if (pe != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				e = fail(err, errlen, LS_TEST_EKAFKA,
					 "produce record %zu to %s: %s", i,
					 topic, rd_kafka_err2str(pe));
				break;
			}
			if (now_ms() >= deadline) {
				e = fail(err, errlen, LS_TEST_ETIMEOUT,
					 "local queue full for %d ms",
					 timeout_ms);
				break;
			}
			rd_kafka_poll(rk, 50); /* serve reports to make room */
		}
	}
	if (e == LS_TEST_OK) {
		int64_t left = deadline - now_ms();
		rd_kafka_resp_err_t fe =
			rd_kafka_flush(rk, left > 0 ? (int)left : 0);
		if (st.failed > 0)
			e = fail(err, errlen, LS_TEST_EKAFKA,
				 "%zu of %zu records to %s not delivered: %s",
				 st.failed, n, topic,
				 rd_kafka_err2str(st.first_err));
		else if (fe != RD_KAFKA_RESP_ERR_NO_ERROR ||
			 st.delivered != n)
			e = fail(err, errlen, LS_TEST_ETIMEOUT,
				 "%zu of %zu records to %s delivered within "
				 "%d ms", st.delivered, n, topic, timeout_ms);
	}
	/* undelivered records are failed by destroy; don't wait for them */
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(rk, 0);
	rd_kafka_destroy(rk);
	return e;
}

static void msg_free_fields(ls_test_msg *m)
{
	free(m->topic);
	free(m->key);
	free(m->value);
	if (m->headers != NULL)
		rd_kafka_headers_destroy(m->headers);
}

void ls_test_msgs_free(ls_test_msg *msgs, size_t n)
{
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		msg_free_fields(&msgs[i]);
	free(msgs);
}

/* Heap copy of len bytes plus a NUL; NULL src gives NULL (and ok=true). */
static char *dup_bytes(const void *src, size_t len, bool *ok)
{
	if (src == NULL)
		return NULL;
	char *p = malloc(len + 1);
	if (p == NULL) {
		*ok = false;
		return NULL;
	}
	memcpy(p, src, len);
	p[len] = '\0';
	return p;
}

static bool msg_copy(ls_test_msg *dst, const rd_kafka_message_t *m)
{
	bool ok = true;
	memset(dst, 0, sizeof *dst);
	dst->topic = strdup(rd_kafka_topic_name(m->rkt));
	if (dst->topic == NULL)
		ok = false;
	dst->partition = m->partition;
	dst->offset = m->offset;
	rd_kafka_timestamp_type_t tstype;
	dst->timestamp = rd_kafka_message_timestamp(m, &tstype);
	dst->key = dup_bytes(m->key, m->key_len, &ok);
	dst->key_len = m->key != NULL ? m->key_len : 0;
	dst->value = dup_bytes(m->payload, m->len, &ok);
	dst->value_len = m->payload != NULL ? m->len : 0;
	rd_kafka_headers_t *hdrs = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    hdrs != NULL) {
		dst->headers = rd_kafka_headers_copy(hdrs);
		if (dst->headers == NULL)
			ok = false;
	}
	if (!ok)
		msg_free_fields(dst);
	return ok;
}

static ls_test_err consumer_new(const char *bootstrap, rd_kafka_t **out,
				char *err, size_t errlen)
{
	/* pid + counter + clock: unique across calls, processes and runs */
	static atomic_uint seq;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char group[96];
	snprintf(group, sizeof group, "ls-test-%d-%u-%lld%09ld", (int)getpid(),
		 atomic_fetch_add(&seq, 1u), (long long)ts.tv_sec, ts.tv_nsec);

	rd_kafka_conf_t *conf = conf_new(err, errlen);
	if (conf == NULL)
		return LS_TEST_EKAFKA;
	/*
	 * No offset commits: the group is throwaway. The metadata refresh
	 * interval stays at its default on purpose: with the mock cluster's
	 * 3 s initial join delay, frequent refreshes made the leader see a
	 * "changed" subscription mid-join and rejoin, and librdkafka 2.0.2's
	 * mock group then waited out the session timeout (flaky 30 s stalls).
	 * A topic that does not exist yet needs no refresh: the subscribe
	 * metadata request makes the mock cluster auto-create it.
	 */
	if (!conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
	    !conf_set(conf, "client.id", "ls-test-consumer", err, errlen) ||
	    !conf_set(conf, "group.id", group, err, errlen) ||
	    !conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
	    !conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
	    !conf_set(conf, "enable.auto.offset.store", "false", err,
		      errlen)) {
		rd_kafka_conf_destroy(conf);
		return LS_TEST_EKAFKA;
	}
	rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf, err, errlen);
	if (rk == NULL)
		return LS_TEST_EKAFKA;
	rd_kafka_poll_set_consumer(rk);
	*out = rk;
	return LS_TEST_OK;
}

ls_test_err ls_test_consume(const char *bootstrap, const char *topic,
			    size_t want, int timeout_ms, ls_test_msg **out,
			    size_t *n_out, char *err, size_t errlen)
{
	if (out == NULL || n_out == NULL)
		return fail(err, errlen, LS_TEST_EINVAL, "out is NULL");
	*out = NULL;
	*n_out = 0;
	if (bootstrap == NULL || topic == NULL || timeout_ms < 0)
		return fail(err, errlen, LS_TEST_EINVAL,
			    "no bootstrap or topic, or negative timeout");

	rd_kafka_t *rk = NULL;
	ls_test_err e = consumer_new(bootstrap, &rk, err, errlen);
	if (e != LS_TEST_OK)
		return e;

	rd_kafka_topic_partition_list_t *sub =
		rd_kafka_topic_partition_list_new(1);
	if (sub == NULL) {
		rd_kafka_destroy(rk);
		return fail(err, errlen, LS_TEST_ENOMEM, "partition list");
	}
	rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t se = rd_kafka_subscribe(rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (se != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_destroy(rk);
		return fail(err, errlen, LS_TEST_EKAFKA, "subscribe %s: %s",
			    topic, rd_kafka_err2str(se));
	}

	ls_test_msg *msgs = NULL;
	size_t n = 0, cap = 0;
	char last_err[256] = "none";
	int64_t deadline = now_ms() + timeout_ms;
	e = LS_TEST_OK;
	while (n < want) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			e = fail(err, errlen, LS_TEST_ETIMEOUT,
				 "%zu of %zu messages from %s within %d ms "
				 "(last consumer error: %s)", n, want, topic,
				 timeout_ms, last_err);
			break;
		}
		rd_kafka_message_t *m =
			rd_kafka_consumer_poll(rk, left < 100 ? (int)left : 100);
		if (m == NULL)
			continue;
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			/* transient (topic not there yet, rebalance): go on */
			snprintf(last_err, sizeof last_err, "%s",
				 rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ls_test_msg *nm = realloc(msgs, ncap * sizeof *nm);
			if (nm == NULL) {
				rd_kafka_message_destroy(m);
				e = fail(err, errlen, LS_TEST_ENOMEM,
					 "realloc %zu messages", ncap);
				break;
			}
			msgs = nm;
			cap = ncap;
		}
		bool ok = msg_copy(&msgs[n], m);
		rd_kafka_message_destroy(m);
		if (!ok) {
			e = fail(err, errlen, LS_TEST_ENOMEM, "copy message");
			break;
		}
		n++;
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);

	if (e != LS_TEST_OK && e != LS_TEST_ETIMEOUT) {
		ls_test_msgs_free(msgs, n);
		return e;
	}
	*out = msgs;
	*n_out = n;
	return e;
}
