/*
 * ls_log.h - one line per event on stderr, journald-friendly.
 *
 * Format: `level=info component=kafka msg="partitions assigned" count=3`.
 * Under systemd (JOURNAL_STREAM set and matching stderr) each line is
 * prefixed with the sd-daemon priority `<N>` so journald records the right
 * severity and adds its own timestamp; elsewhere each line starts with an
 * ISO-8601 UTC timestamp. Context is passed as printf-formatted key=value
 * text; callers quote values that may contain spaces with ls_log_quote().
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */
#ifndef LS_LOG_H
#define LS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ls_log_level {
	LS_LOG_DEBUG = 0,
	LS_LOG_INFO,
	LS_LOG_WARN,
	LS_LOG_ERROR,
} ls_log_level;

/* Messages below this level are dropped. Safe to call at any time. */
void ls_log_set_level(ls_log_level level);
ls_log_level ls_log_get_level(void);

/* "debug", "info", "warn", "error"; returns -1 for anything else. */
int ls_log_level_from_name(const char *name);
const char *ls_log_level_name(ls_log_level level);

/*
 * Log msg for component. fmt (may be NULL) formats the key=value context
 * that follows the message, e.g. ls_log(LS_LOG_INFO, "main", "ready",
 * "brokers=%s", b).
 */
void ls_log(ls_log_level level, const char *component, const char *msg,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Render s as a double-quoted logfmt value into buf (escaping quotes,
 * backslashes and control characters; truncating to fit). Returns buf.
 */
const char *ls_log_quote(const char *s, char *buf, size_t buflen);

/*
 * Mask s in every line logged from now on: each occurrence, raw or as
 * ls_log_quote() escapes it, is written as <redacted>. A second line of
 * defence for secrets (passwords, tokens) that no caller should log in the
 * first place, including librdkafka's own lines. Strings shorter than 4
 * bytes are not registered (masking them would garble every line), nor
 * any after the first 64. Call from one thread at a time; ls_log() may run
 * concurrently in other threads. The copy is kept until exit.
 */
void ls_log_add_secret(const char *s);

/*
 * A per-second budget of log lines for something that can flood (dead
 * letters): at most per_sec lines in each one-second window; the lines
 * refused are counted and handed back once, after their window ends, so
 * the caller can log one summary line with how many were left out.
 * Pure (the caller passes a monotonic now_ms); one owner, not
 * thread-safe.
 */
typedef struct ls_log_limit {
	int64_t window_ms;    /* start of the current window; 0: none yet */
	uint64_t in_window;   /* lines allowed in it */
	uint64_t suppressed;  /* lines refused in it */
} ls_log_limit;

/*
 * true: log this line. *ended_suppressed (may be NULL) is set to the
 * lines refused in a window that ended before now_ms (0 if none), to be
 * summarised by the caller.
 */
bool ls_log_limit_allow(ls_log_limit *l, int64_t now_ms, uint64_t per_sec,
			uint64_t *ended_suppressed);

/* Lines refused in a window that has ended by now_ms (then forgotten); 0
 * while the window is still open. Call it when the flood may have
 * stopped, so its last summary is not held back. */
uint64_t ls_log_limit_flush(ls_log_limit *l, int64_t now_ms);

#define ls_debug(comp, msg, ...) ls_log(LS_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define ls_info(comp, msg, ...) ls_log(LS_LOG_INFO, comp, msg, __VA_ARGS__)
#define ls_warn(comp, msg, ...) ls_log(LS_LOG_WARN, comp, msg, __VA_ARGS__)
#define ls_error(comp, msg, ...) ls_log(LS_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
