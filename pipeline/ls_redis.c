/*
 * ls_redis.c - URL parsing and connection set-up for hiredis.
 *
 * hiredis has no URL parser of its own, and every Redis client library
 * accepts the same redis:// form, so operators can paste the URL they use
 * elsewhere. Passwords never appear in logs: describe() prints host:port.
 */
#include "ls_redis.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_range(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static int parse_int(const char *s, size_t n, long lo, long hi, long *out)
{
	char buf[32];
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
	errno = 0;
	long v = strtol(buf, NULL, 10);
	if (errno != 0 || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

void ls_redis_target_free(ls_redis_target *t)
{
	if (t == NULL)
		return;
	free(t->host);
	free(t->path);
	free(t->password);
	memset(t, 0, sizeof *t);
}

static int fail(ls_redis_target *t, char *err, size_t errlen, const char *url,
		const char *why)
{
	snprintf(err, errlen, "invalid redis url '%s': %s", url, why);
	ls_redis_target_free(t);
	return -1;
}

int ls_redis_url_parse(const char *url, ls_redis_target *out, char *err,
		       size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (url == NULL || url[0] == '\0')
		return fail(out, err, errlen, "", "empty");

	if (strncmp(url, "unix://", 7) == 0) {
		const char *path = url + 7;
		const char *q = strchr(path, '?');
		size_t plen = q ? (size_t)(q - path) : strlen(path);
		if (plen == 0 || path[0] != '/')
			return fail(out, err, errlen, url,
				    "unix:// needs an absolute socket path");
		out->is_unix = true;
		out->path = dup_range(path, plen);
		if (out->path == NULL)
			return fail(out, err, errlen, url, "out of memory");
		if (q != NULL) {
			long db;
			if (strncmp(q, "?db=", 4) != 0 ||
			    parse_int(q + 4, strlen(q + 4), 0, INT_MAX, &db) != 0)
				return fail(out, err, errlen, url,
					    "the only query allowed is ?db=N");
			out->db = (int)db;
		}
		return 0;
	}

	if (strncmp(url, "redis://", 8) != 0)
		return fail(out, err, errlen, url,
			    "expected redis://host:port/db or unix:///path");
	const char *p = url + 8;
	const char *slash = strchr(p, '/');
	const char *end = slash ? slash : p + strlen(p);

	/* userinfo: redis://:password@host or redis://user:password@host */
	const char *at = memchr(p, '@', (size_t)(end - p));
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		const char *pw = colon ? colon + 1 : p;
		out->password = dup_range(pw, (size_t)(at - pw));
		if (out->password == NULL)
			return fail(out, err, errlen, url, "out of memory");
		p = at + 1;
	}

	const char *host_end = end;
	out->port = 6379;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL)
			return fail(out, err, errlen, url, "unclosed '[' in host");
		out->host = dup_range(p + 1, (size_t)(rb - p - 1));
		host_end = rb + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		host_end = colon ? colon : end;
		out->host = dup_range(p, (size_t)(host_end - p));
	}
	if (out->host == NULL)
		return fail(out, err, errlen, url, "out of memory");
	if (out->host[0] == '\0')
		return fail(out, err, errlen, url, "missing host");
	if (host_end < end) {
		long port;
		if (*host_end != ':' ||
		    parse_int(host_end + 1, (size_t)(end - host_end - 1), 1,
			      65535, &port) != 0)
			return fail(out, err, errlen, url,
				    "port must be a number from 1 to 65535");
		out->port = (int)port;
	}
	if (slash != NULL && slash[1] != '\0') {
		long db;
		if (parse_int(slash + 1, strlen(slash + 1), 0, INT_MAX, &db) != 0)
			return fail(out, err, errlen, url,
				    "db must be a non-negative number");
		out->db = (int)db;
	}
	return 0;
}

const char *ls_redis_target_describe(const ls_redis_target *t, char *buf,
				     size_t buflen)
{
	if (t->is_unix)
		snprintf(buf, buflen, "%s db=%d", t->path, t->db);
	else
		snprintf(buf, buflen, "%s:%d db=%d", t->host, t->port, t->db);
	return buf;
}

static struct timeval ms_to_tv(int64_t ms)
{
	struct timeval tv;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* Run a command that must answer +OK; used for AUTH and SELECT. */
static int expect_ok(redisContext *c, char *err, size_t errlen,
		     const char *what, redisReply *r)
{
	if (r == NULL) {
		snprintf(err, errlen, "%s: %s", what,
			 c->errstr[0] ? c->errstr : "no reply");
		return -1;
	}
	int ok = r->type == REDIS_REPLY_STATUS;
	if (!ok)
		snprintf(err, errlen, "%s: %s", what,
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	return ok ? 0 : -1;
}

redisContext *ls_redis_connect(const ls_redis_target *t,
			       int64_t connect_timeout_ms,
			       int64_t command_timeout_ms, char *err,
			       size_t errlen)
{
	redisContext *c;
	struct timeval ctv = ms_to_tv(connect_timeout_ms);
	if (t->is_unix)
		c = connect_timeout_ms > 0 ? redisConnectUnixWithTimeout(t->path, ctv)
					   : redisConnectUnix(t->path);
	else
		c = connect_timeout_ms > 0
			    ? redisConnectWithTimeout(t->host, t->port, ctv)
			    : redisConnect(t->host, t->port);
	if (c == NULL) {
		snprintf(err, errlen, "cannot allocate a redis context");
		return NULL;
	}
	if (c->err) {
		char where[300];
		snprintf(err, errlen, "connect %s: %s",
			 ls_redis_target_describe(t, where, sizeof where),
			 c->errstr);
		redisFree(c);
		return NULL;
	}
	if (command_timeout_ms > 0 &&
	    redisSetTimeout(c, ms_to_tv(command_timeout_ms)) != REDIS_OK) {
		snprintf(err, errlen, "set timeout: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	if (t->password != NULL &&
	    expect_ok(c, err, errlen, "AUTH",
		      redisCommand(c, "AUTH %s", t->password)) != 0) {
		redisFree(c);
		return NULL;
	}
	if (t->db != 0 &&
	    expect_ok(c, err, errlen, "SELECT",
		      redisCommand(c, "SELECT %d", t->db)) != 0) {
		redisFree(c);
		return NULL;
	}
	return c;
}

int ls_redis_ping(redisContext *c, char *err, size_t errlen)
{
	redisReply *r = redisCommand(c, "PING");
	if (r == NULL) {
		snprintf(err, errlen, "PING: %s", c->errstr[0] ? c->errstr : "no reply");
		return -1;
	}
	int ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
	if (!ok)
		snprintf(err, errlen, "PING: %s",
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	freeReplyObject(r);
	return ok ? 0 : -1;
}
