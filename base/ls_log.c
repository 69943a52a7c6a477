/*
 * ls_log.c - logfmt lines on stderr.
 *
 * Why not syslog(3) or sd_journal_send(3): stderr works the same under
 * systemd (journald captures it), in a terminal, in tests and in CI, and
 * the `<N>` prefix gives journald the severity without linking to it.
 * Each line is built in a stack buffer and written with one write(2) so
 * concurrent threads never interleave partial lines.
 */
#include "ls_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LS_LOG_INFO;
static atomic_int journal_mode = -1; /* -1 unknown, 0 no, 1 yes */

static const char *const level_names[] = { "debug", "info", "warn", "error" };
/* sd-daemon priorities: debug=7, info=6, warning=4, err=3 */
static const int level_prio[] = { 7, 6, 4, 3 };

void ls_log_set_level(ls_log_level level) { atomic_store(&current_level, (int)level); }
ls_log_level ls_log_get_level(void) { return (ls_log_level)atomic_load(&current_level); }

int ls_log_level_from_name(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	if (strcmp(name, "warning") == 0)
		return LS_LOG_WARN;
	return -1;
}

const char *ls_log_level_name(ls_log_level level)
{
	if ((int)level < 0 || (int)level > 3)
		return "unknown";
	return level_names[level];
}

/*
 * systemd sets JOURNAL_STREAM=dev:ino for the stream it connected to our
 * stderr; only trust it when stderr really is that stream, so a child that
 * inherited the variable but writes to a file or terminal gets timestamps.
 */
static bool stderr_is_journal(void)
{
	int mode = atomic_load(&journal_mode);
	if (mode >= 0)
		return mode == 1;
	mode = 0;
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	if (js != NULL && fstat(STDERR_FILENO, &st) == 0) {
		unsigned long long dev = 0, ino = 0;
		if (sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
		    dev == (unsigned long long)st.st_dev &&
		    ino == (unsigned long long)st.st_ino)
			mode = 1;
	}
	atomic_store(&journal_mode, mode);
	return mode == 1;
}

const char *ls_log_quote(const char *s, char *buf, size_t buflen)
{
	size_t o = 0;
	if (buflen < 3) {
		if (buflen > 0)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (const char *p = s ? s : ""; *p != '\0' && o + 3 < buflen; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			/* keep one event on one line: no raw newlines or escapes */
			buf[o++] = '\\';
			buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : '?';
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* Registered secrets, raw and quoted: published before the count grows, so
 * a reader sees only complete entries. Append-only, never freed. */
#define MAX_SECRETS 64
static _Atomic(char *) secrets[2 * MAX_SECRETS];
static atomic_size_t n_secrets;

static bool secret_known(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(atomic_load(&secrets[i]), s) == 0)
			return true;
	return false;
}

void ls_log_add_secret(const char *s)
{
	if (s == NULL || strlen(s) < 4)
		return;
	size_t n = atomic_load(&n_secrets);
	char qbuf[1024];
	const char *q = ls_log_quote(s, qbuf, sizeof qbuf);
	/* the quoted form without its quotes, as it appears inside a value */
	char *quoted = strndup(q + 1, strlen(q) - 2);
	char *raw = strdup(s);
	if (raw == NULL || quoted == NULL || n + 2 > 2 * MAX_SECRETS) {
		free(raw);
		free(quoted);
		return;
	}
	if (!secret_known(raw, n))
		atomic_store(&secrets[n++], raw);
	else
		free(raw);
	if (!secret_known(quoted, n))
		atomic_store(&secrets[n++], quoted);
	else
		free(quoted);
	atomic_store(&n_secrets, n);
}

/* Copy line[0..n) to out with every registered secret replaced; the new
 * length (truncated to cap - 1). */
static size_t mask_secrets(const char *line, size_t n, char *out, size_t cap, size_t ns)
{
	static const char mask[] = "<redacted>";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap;) {
		size_t hit = 0;
		for (size_t k = 0; k < ns && hit == 0; k++) {
			const char *sec = atomic_load(&secrets[k]);
			size_t sl = strlen(sec);
			if (sl <= n - i && memcmp(line + i, sec, sl) == 0)
				hit = sl;
		}
		if (hit == 0) {
			out[o++] = line[i++];
			continue;
		}
		for (size_t m = 0; mask[m] != '\0' && o + 1 < cap; m++)
			out[o++] = mask[m];
		i += hit;
	}
	return o;
}

void ls_log(ls_log_level level, const char *component, const char *msg,
	    const char *fmt, ...)
{
	if ((int)level < atomic_load(&current_level))
		return;
	if ((int)level < 0 || (int)level > 3)
		level = LS_LOG_ERROR;

	char line[4096];
	size_t n = 0;
	int w;
	if (stderr_is_journal()) {
		w = snprintf(line, sizeof line, "<%d>", level_prio[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		w = snprintf(line, sizeof line,
			     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000);
	}
	if (w > 0)
		n = (size_t)w;

	char qmsg[1024];
	w = snprintf(line + n, sizeof line - n, "level=%s component=%s msg=%s",
		     level_names[level], component ? component : "-",
		     ls_log_quote(msg, qmsg, sizeof qmsg));
	if (w > 0)
		n += (size_t)w;
	if (n >= sizeof line)
		n = sizeof line - 1;

	if (fmt != NULL && fmt[0] != '\0' && n + 2 < sizeof line) {
		line[n++] = ' ';
		va_list ap;
		va_start(ap, fmt);
		w = vsnprintf(line + n, sizeof line - n, fmt, ap);
		va_end(ap);
		if (w > 0)
			n += (size_t)w;
		if (n >= sizeof line)
			n = sizeof line - 1;
	}
	char masked[4096];
	size_t ns = atomic_load(&n_secrets);
	if (ns > 0) {
		n = mask_secrets(line, n, masked, sizeof masked, ns);
		memcpy(line, masked, n);
	}
	/* never let caller-provided context break the one-line rule */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';

	const char *p = line;
	while (n > 0) {
		ssize_t r = write(STDERR_FILENO, p, n);
		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

uint64_t ls_log_limit_flush(ls_log_limit *l, int64_t now_ms)
{
	if (l->window_ms == 0 || now_ms - l->window_ms < 1000)
		return 0;
	uint64_t n = l->suppressed;
	l->window_ms = 0;
	l->in_window = 0;
	l->suppressed = 0;
	return n;
}

bool ls_log_limit_allow(ls_log_limit *l, int64_t now_ms, uint64_t per_sec,
			uint64_t *ended_suppressed)
{
	uint64_t ended = ls_log_limit_flush(l, now_ms);
	if (ended_suppressed != NULL)
		*ended_suppressed = ended;
	if (l->window_ms == 0)
		l->window_ms = now_ms != 0 ? now_ms : 1;
	if (l->in_window < per_sec) {
		l->in_window++;
		return true;
	}
	l->suppressed++;
	return false;
}
