/*
 * ls_http_conns.h - the HTTP server's table of open connections: how many
 * there are in all and per client address (to refuse one past either
 * limit), and when each one's current request began (to cut a request
 * that takes longer than http.request_timeout in all, however steadily
 * its bytes trickle in).
 *
 * A request's clock starts when its connection is opened or its previous
 * response has been sent, because libmicrohttpd shows nothing of a
 * request before its headers are complete, and a slow client is slowest
 * exactly there; idle keep-alive time therefore counts.
 *
 * Addresses are compared as 16 bytes: IPv4 and IPv4-mapped IPv6 are one
 * address. Times are monotonic nanoseconds passed in by the caller, so
 * the table itself does no I/O and reads no clock.
 *
 * Thread-safety: every function takes the table's mutex; ls_http_conns_
 * expire() calls its callback with that mutex held, and a connection is
 * removed under the same mutex, so the fd the callback receives is still
 * the connection's (it is closed only after removal). Memory: the table
 * owns its entries; an ls_http_conn is valid until removed.
 */
#ifndef LS_HTTP_CONNS_H
#define LS_HTTP_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct ls_http_conns ls_http_conns;
typedef struct ls_http_conn ls_http_conn;

typedef enum ls_http_admit {
	LS_HTTP_ADMIT_OK = 0,
	LS_HTTP_ADMIT_TOTAL,   /* the total limit is reached */
	LS_HTTP_ADMIT_ADDRESS, /* this address's limit is reached */
} ls_http_admit;

/* A table for these limits (both >= 1); NULL when out of memory. */
ls_http_conns *ls_http_conns_new(unsigned total, unsigned per_address);
/* Frees the table and every entry left in it. NULL is ok. */
void ls_http_conns_free(ls_http_conns *t);

/*
 * May a new connection from addr be accepted now? Counts only what
 * ls_http_conns_add() has added, so threads admitting at the same moment
 * may each pass: the limits can be overshot by one per accepting thread.
 */
ls_http_admit ls_http_conns_admit(ls_http_conns *t, const struct sockaddr *addr);

/* Track an accepted connection with socket fd, its request clock
   starting at now_ns. NULL when out of memory (it is then not counted). */
ls_http_conn *ls_http_conns_add(ls_http_conns *t, const struct sockaddr *addr, int fd,
				int64_t now_ns);

/* Forget a connection (before its fd is closed). NULL is ok. */
void ls_http_conns_remove(ls_http_conns *t, ls_http_conn *c);

/* Its request was answered: the next request's clock starts at now_ns. */
void ls_http_conns_restart(ls_http_conns *t, ls_http_conn *c, int64_t now_ns);

/*
 * For each connection whose request clock started before cutoff_ns and
 * that was not expired before: fn(fd, addr, arg) under the table's mutex,
 * then it is marked expired (its clock restarts only by
 * ls_http_conns_restart). Returns how many.
 */
size_t ls_http_conns_expire(ls_http_conns *t, int64_t cutoff_ns,
			    void (*fn)(int fd, const struct sockaddr *addr, void *arg),
			    void *arg);

/* Connections open now; from addr now. */
size_t ls_http_conns_open(ls_http_conns *t);
unsigned ls_http_conns_from(ls_http_conns *t, const struct sockaddr *addr);

/* The limits the table was made with. */
unsigned ls_http_conns_total_limit(const ls_http_conns *t);
unsigned ls_http_conns_address_limit(const ls_http_conns *t);

/*
 * A per-connection flag the connection's own thread sets when its
 * request's URL decoded to a control byte, and takes (reads and clears)
 * when the request reaches the handler. Not locked: one thread only.
 */
void ls_http_conn_mark_bad_url(ls_http_conn *c);
bool ls_http_conn_take_bad_url(ls_http_conn *c);

#endif
