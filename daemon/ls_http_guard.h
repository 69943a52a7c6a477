/*
 * ls_http_guard.h - what the HTTP server checks before a handler runs,
 * as pure functions: the bearer credentials of an Authorization header
 * (RFC 7235: the scheme in any letter case), a token comparison whose
 * time shows neither the secret's bytes nor its length, control bytes in
 * a percent-decoded path, whether a listen address is loopback, and how
 * many connections the process's file-descriptor limit can carry.
 *
 * No I/O, no allocation, no state: safe from any thread.
 */
#ifndef LS_HTTP_GUARD_H
#define LS_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The credentials of an Authorization header value of the Bearer scheme
 * ("Bearer", "bearer", "BEARER", ...; then one or more spaces or tabs):
 * a pointer into value and, in *len, their length without trailing
 * whitespace. NULL for NULL, another scheme or no credentials.
 */
const char *ls_http_guard_bearer(const char *value, size_t *len);

/*
 * given[0..glen) == secret[0..slen), in a time that depends on glen only:
 * every byte of given is compared (against the secret repeated), and the
 * lengths are compared without an early return, so neither the secret's
 * content nor its length can be timed. slen 0 matches glen 0 only.
 */
bool ls_http_guard_token_equal(const char *given, size_t glen, const char *secret,
			       size_t slen);

/* True when s[0..n) holds a NUL, another C0 control byte or DEL. */
bool ls_http_guard_has_control(const char *s, size_t n);

/* True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.0.0.0/104. */
bool ls_http_guard_loopback(const struct sockaddr *sa);

/* File descriptors the HTTP server leaves to everything else: Kafka
 * sockets and wake-up pipes per broker, Redis connections (one per HTTP
 * thread, the loop's, the bandit's), epoll and log descriptors. */
#define LS_HTTP_FD_RESERVE 256u
/* Most connections served when http.max_connections is 0: each may hold
 * a 32 KiB buffer pool, so this bounds the memory to 128 MiB. */
#define LS_HTTP_DEFAULT_MAX_CONNECTIONS 4096u
/* Fewest connections ever configured, whatever the fd limit says. */
#define LS_HTTP_MIN_CONNECTIONS 8u

typedef struct ls_http_limits {
	unsigned total;       /* connections open at once */
	unsigned per_address; /* of those, from one client address */
	bool over_fds;        /* total + the reserve exceeds nofile */
} ls_http_limits;

/*
 * The limits for the soft fd limit nofile. cfg_total 0 derives the total:
 * nofile less LS_HTTP_FD_RESERVE, at most LS_HTTP_DEFAULT_MAX_CONNECTIONS,
 * at least LS_HTTP_MIN_CONNECTIONS. cfg_per_address 0 derives an
 * eighth of the total (at least 1); a per-address limit above the total
 * is the total.
 */
void ls_http_guard_limits(uint64_t nofile, unsigned cfg_total, unsigned cfg_per_address,
			  ls_http_limits *out);

#endif
