/*
 * ls_redis.h - Redis connection targets and connections.
 *
 * The daemon reaches Redis through one URL (`redis.url`):
 *   redis://[[user]:password@]host[:port][/db]  TCP, port 6379 and db 0 by default
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]  unix socket
 * With a user, AUTH user password (a Redis 6 ACL user); with ":password"
 * (or a bare "password@", accepted since the first release) AUTH password,
 * the default user. User and password are percent-decoded (%40 for '@',
 * %2F for '/', %3A for ':' in a user name); an '@' in a TCP password may
 * also stay raw, as the last '@' before the path ends the userinfo.
 * ls_redis_url_parse() splits it; ls_redis_connect() opens a hiredis
 * context with connect and command timeouts, authenticates and selects the
 * db, so callers get a ready connection or a reason.
 *
 * Secrets: no message from this module quotes the URL, the user or the
 * password (parse errors name only what is wrong; describe() prints the
 * host, port or path and the db).
 *
 * Memory: an ls_redis_target owns its strings (free with
 * ls_redis_target_free). Contexts are hiredis' own (redisFree).
 * Thread-safety: parsing is pure; a redisContext must be used by one thread.
 */
#ifndef LS_REDIS_H
#define LS_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct ls_redis_target {
	bool is_unix;
	char *host;     /* TCP host, NULL for unix sockets */
	int port;       /* TCP port */
	char *path;     /* unix socket path, NULL for TCP */
	int db;         /* SELECTed after connecting when non-zero */
	char *user;     /* ACL user for AUTH; NULL: the default user */
	char *password; /* AUTH when non-NULL (always non-NULL with a user) */
} ls_redis_target;

/* Parse url into *out. Returns 0, or -1 with a reason in err. */
int ls_redis_url_parse(const char *url, ls_redis_target *out, char *err,
		       size_t errlen);
void ls_redis_target_free(ls_redis_target *t);

/*
 * Connect, AUTH and SELECT. Timeouts in milliseconds (0 = none). Returns a
 * connected context or NULL with a reason in err.
 */
redisContext *ls_redis_connect(const ls_redis_target *t,
			       int64_t connect_timeout_ms,
			       int64_t command_timeout_ms, char *err,
			       size_t errlen);

/* PING the server; 0 when it answers PONG, -1 with a reason otherwise. */
int ls_redis_ping(redisContext *c, char *err, size_t errlen);

/* "host:port" or the socket path, for logs. */
const char *ls_redis_target_describe(const ls_redis_target *t, char *buf,
				     size_t buflen);

#endif
