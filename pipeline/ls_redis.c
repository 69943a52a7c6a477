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
	free(t->user);
	free(t->password);
	memset(t, 0, sizeof *t);
}

/* The URL is not quoted: it may carry a password. */
static int fail(ls_redis_target *t, char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "invalid redis url: %s", why);
	ls_redis_target_free(t);
	return -1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Copy s[0..n) with %XX escapes decoded (RFC 3986), so a password may hold
 * '@', ':', '/' or any byte but NUL. NULL with *why set on a bad escape or
 * when memory runs out.
 */
static char *dup_decoded(const char *s, size_t n, const char **why)
{
	char *p = malloc(n + 1), *o = p;
	if (p == NULL) {
		*why = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) {
			*why = "bad percent-escape in the user name or password (%XX, two hex digits)";
			free(p);
			return NULL;
		}
		int c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
		if (c == 0) {
			*why = "%00 is not allowed in the user name or password";
			free(p);
			return NULL;
		}
		*o++ = (char)c;
		i += 2;
	}
	*o = '\0';
	return p;
}

/*
 * The userinfo before '@': ":password" and "password" (the form this parser
 * always accepted) authenticate as the default user, "user:password" as an
 * ACL user. Both parts are percent-decoded. 0, or -1 with *why set.
 */
static int parse_userinfo(const char *s, size_t n, ls_redis_target *out,
			  const char **why)
{
	const char *colon = memchr(s, ':', n);
	const char *pw = colon != NULL ? colon + 1 : s;
	size_t pwlen = n - (size_t)(pw - s);
	if (pwlen == 0) {
		*why = colon != NULL && colon > s
			       ? "a user name needs a password (redis://user:password@host)"
			       : "empty password (drop the '@' for no AUTH)";
		return -1;
	}
	if (colon != NULL && colon > s) {
		out->user = dup_decoded(s, (size_t)(colon - s), why);
		if (out->user == NULL)
			return -1;
	}
	out->password = dup_decoded(pw, pwlen, why);
	return out->password != NULL ? 0 : -1;
}

int ls_redis_url_parse(const char *url, ls_redis_target *out, char *err,
		       size_t errlen)
{
	const char *why = NULL;

	memset(out, 0, sizeof *out);
	if (url == NULL || url[0] == '\0')
		return fail(out, err, errlen, "empty");

	if (strncmp(url, "unix://", 7) == 0) {
		const char *path = url + 7;
		/* unix://[userinfo@]/path: the path starts at the first '/',
		 * so an '@' in the userinfo needs no escape */
		const char *slash = strchr(path, '/');
		if (slash != NULL && slash > path) {
			if (slash[-1] != '@')
				return fail(out, err, errlen,
					    "unix:// needs an absolute socket path");
			if (parse_userinfo(path, (size_t)(slash - 1 - path), out,
					   &why) != 0)
				return fail(out, err, errlen, why);
			path = slash;
		}
		const char *q = strchr(path, '?');
		size_t plen = q ? (size_t)(q - path) : strlen(path);
		if (plen == 0 || path[0] != '/')
			return fail(out, err, errlen,
				    "unix:// needs an absolute socket path");
		out->is_unix = true;
		out->path = dup_range(path, plen);
		if (out->path == NULL)
			return fail(out, err, errlen, "out of memory");
		if (q != NULL) {
			long db;
			if (strncmp(q, "?db=", 4) != 0 ||
			    parse_int(q + 4, strlen(q + 4), 0, INT_MAX, &db) != 0)
				return fail(out, err, errlen,
					    "the only query allowed is ?db=N");
			out->db = (int)db;
		}
		return 0;
	}

	if (strncmp(url, "redis://", 8) != 0)
		return fail(out, err, errlen,
			    "expected redis://host:port/db or unix:///path");
	const char *p = url + 8;
	const char *slash = strchr(p, '/');
	const char *end = slash ? slash : p + strlen(p);

	/* The last '@' ends the userinfo, so a raw '@' in a password still
	 * parses; a '/' in it must be written %2F. */
	const char *at = NULL;
	for (const char *c = p; c < end; c++)
		if (*c == '@')
			at = c;
	if (at != NULL) {
		if (parse_userinfo(p, (size_t)(at - p), out, &why) != 0)
			return fail(out, err, errlen, why);
		p = at + 1;
	}

	const char *host_end = end;
	out->port = 6379;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL)
			return fail(out, err, errlen, "unclosed '[' in host");
		out->host = dup_range(p + 1, (size_t)(rb - p - 1));
		host_end = rb + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		host_end = colon ? colon : end;
		out->host = dup_range(p, (size_t)(host_end - p));
	}
	if (out->host == NULL)
		return fail(out, err, errlen, "out of memory");
	if (out->host[0] == '\0')
		return fail(out, err, errlen, "missing host");
	if (host_end < end) {
		long port;
		if (*host_end != ':' ||
		    parse_int(host_end + 1, (size_t)(end - host_end - 1), 1,
			      65535, &port) != 0)
			return fail(out, err, errlen,
				    "port must be a number from 1 to 65535");
		out->port = (int)port;
	}
	if (slash != NULL && slash[1] != '\0') {
		long db;
		if (parse_int(slash + 1, strlen(slash + 1), 0, INT_MAX, &db) != 0)
			return fail(out, err, errlen,
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
	/* AUTH user password (Redis 6 ACLs) only with a user: a server
	 * older than 6 rejects the two-argument form. */
	redisReply *auth = NULL;
	if (t->password != NULL)
		auth = t->user != NULL
			       ? redisCommand(c, "AUTH %s %s", t->user, t->password)
			       : redisCommand(c, "AUTH %s", t->password);
	if (t->password != NULL &&
	    expect_ok(c, err, errlen, "AUTH", auth) != 0) {
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
