/*
 * leadscorectl_kafka.h - what `tail` and `dead-letters` share: a reader of
 * one topic that never disturbs the daemon, Ctrl-C, option parsing and
 * escaping bytes for a terminal.
 *
 * ctl_read's reader assigns every partition of its topic (it joins no
 * consumer group and commits nothing; librdkafka wants a group.id even to
 * assign, so it gets "<kafka.group_id>.leadscorectl-<command>", which
 * never joins), built from kafka.brokers and kafka.properties like the
 * daemon's clients (security settings pass through). It starts at the
 * high watermarks, the low ones or the first offsets at or after a time,
 * taken once at open, so "from the end" misses nothing produced after
 * open returns. A broker that cannot look offsets up by time (librdkafka's
 * mock cluster, the dev broker, answers -1) is read from the low
 * watermark, and records stamped before the time are skipped. Partitions
 * added to the topic later are not read. While it waits, it also watches
 * for Ctrl-C and for a stdout pipe whose reader has gone.
 *
 * The topic is looked up in a listing of all topics, not by name: asking
 * for one topic by name creates it on brokers that auto-create topics
 * (the dev broker does), and a typo must not create a topic.
 *
 * Consumer errors while reading (a broker down, a partition gone) are not
 * records: each distinct one is reported once on stderr and reading goes
 * on, as librdkafka retries.
 *
 * Errors: exit codes, or -1 / NULL, with the reason on stderr.
 * Single threaded; the interrupt flag is set from a signal handler.
 */
#ifndef LEADSCORECTL_KAFKA_H
#define LEADSCORECTL_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "ls_config.h"

/* Where a reader starts in each partition. */
typedef enum ctl_from {
	CTL_FROM_END,       /* the high watermark at open: new records only */
	CTL_FROM_BEGINNING, /* the low watermark: everything retained */
	CTL_FROM_TIME,      /* the first record stamped at or after a time */
} ctl_from;

/* How long open waits for the broker when --timeout-ms is not given. */
#define CTL_CONNECT_TIMEOUT_MS 30000

/* How a command reads: the options `tail` and `dead-letters` share. */
typedef struct ctl_read_opts {
	ctl_from from;
	int64_t since_ms;   /* CTL_FROM_TIME */
	int64_t count;      /* stop after this many matching records; 0: no limit */
	int64_t timeout_ms; /* stop when no matching record came for this long; 0: never */
	bool follow;        /* false: stop at the high watermarks taken at open */
	bool from_given;
} ctl_read_opts;

/* getopt letters of the shared options, and their long forms. */
#define CTL_READ_LONG_OPTIONS                                        \
	{ "from-beginning", no_argument, NULL, 'b' },                \
	{ "since", required_argument, NULL, 's' },                   \
	{ "count", required_argument, NULL, 'n' },                   \
	{ "timeout-ms", required_argument, NULL, 'w' }

/*
 * Take option opt (one of b, e (--from-end: also follow), s, n, w) with
 * its argument into o: 0, or 2 (a usage error) with a message naming
 * command on stderr. The starts (b, e, s) exclude each other.
 */
int ctl_read_option(const char *command, int opt, const char *arg, ctl_read_opts *o);

/*
 * Open o's reader on topic (the broker must answer within --timeout-ms,
 * else CTL_CONNECT_TIMEOUT_MS) and feed each record to fn until Ctrl-C,
 * --count, --timeout-ms, the end (unless o->follow) or fn says stop.
 * fn returns 1 for a matching record (handled), 0 for one that does not
 * match, 2 to stop (stdout closed), -1 to fail (it said why on stderr);
 * the message stays the caller's. Returns the exit code: 0; 1 for a
 * runtime error (with the reason on stderr); 3 when it ended at the end
 * or by --timeout-ms without a matching record.
 */
typedef int (*ctl_record_fn)(void *ud, const rd_kafka_message_t *m);
int ctl_read(const ls_config *cfg, const char *command, const char *topic,
	     const ctl_read_opts *o, ctl_record_fn fn, void *ud);

/* SIGINT and SIGTERM set a flag (ctl_interrupted) instead of killing, and
 * SIGPIPE is ignored (a closed stdout shows as a write error). */
void ctl_signals_install(void);
bool ctl_interrupted(void);

/* s as a count or a duration in ms: a decimal integer in [0, max]. 0, or
 * -1 when it is not one. */
int ctl_parse_nonneg(const char *s, int64_t max, int64_t *out);

/*
 * --since: "N" with a unit s, m, h or d (that long before now_ms), or a
 * time in ms since the epoch (a bare integer). 0 with *ts_ms, or -1.
 */
int ctl_parse_since(const char *s, int64_t now_ms, int64_t *ts_ms);

/*
 * Bytes p[0..n) as text safe for a terminal and for JSON: printable ASCII
 * as is, a backslash as "\\", any other byte as "\xNN". At most max input
 * bytes are rendered; "..." marks a cut. Returns a malloc'd string, NULL
 * when out of memory.
 */
char *ctl_escape(const void *p, size_t n, size_t max);

/* p[0..n) as a JSON string: as is when it is valid UTF-8 without NULs,
 * else escaped as ctl_escape() does (max bytes). NULL when out of memory. */
json_t *ctl_json_text(const void *p, size_t n, size_t max);

/* An ISO-8601 UTC time with milliseconds ("2026-12-06T19:40:01.123Z"). */
void ctl_format_time(int64_t ms, char *buf, size_t buflen);

/*
 * Flush stdout after a record: 0; 1 when stdout is a closed pipe (its
 * reader, e.g. head, stopped: not an error); -1 when writing failed
 * otherwise (the reason on stderr).
 */
int ctl_flush_stdout(void);

#endif
