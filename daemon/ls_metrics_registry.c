/*
 * ls_metrics_registry.c - registering metric families, the registry's
 * lifetime, and the built-in collectors (dropped series, process_*).
 *
 * The seam. Registration is the cold path: it runs at start-up, checks
 * a description against Prometheus's naming rules and the names already
 * taken, and publishes the family for ls_metrics.c, which owns the hot
 * path (series lookup and updates) and the scrape (render). The design of
 * the shared structures - append-only lists published with release
 * stores, mutexes that only serialise writers - is described there.
 */
#include "ls_metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ls_err.h"
#include "ls_metrics_internal.h"

#define DROPPED_NAME "leadscore_metrics_series_dropped_total"

static const double default_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const hist_suffix[] = { "_bucket", "_sum", "_count" };

/* ---------------------------------------------------------- helpers */

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

static bool valid_metric_name(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  c == '_' || c == ':' || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool valid_label_name(const char *s)
{
	if (s == NULL || *s == '\0' || strncmp(s, "__", 2) == 0)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  c == '_' || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* ---------------------------------------------------------- families */

static void family_free(family *f)
{
	if (f == NULL)
		return;
	series *s = atomic_load_explicit(&f->head, memory_order_relaxed);
	while (s != NULL) {
		series *next = atomic_load_explicit(&s->next, memory_order_relaxed);
		ls_metrics_series_free(s);
		s = next;
	}
	pthread_mutex_destroy(&f->mu);
	free(f->table);
	free(f->name);
	free(f->help);
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->bounds);
	free(f);
}

const char *ls_metrics_type_name(ls_metrics_type t)
{
	switch (t) {
	case LS_METRICS_COUNTER:
		return "counter";
	case LS_METRICS_GAUGE:
		return "gauge";
	case LS_METRICS_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

/* Is a+as the same string as b+bs? (No buffer, so no length limit.) */
static bool concat_eq(const char *a, const char *as, const char *b,
		      const char *bs)
{
	for (;;) {
		if (*a == '\0' && as != NULL) {
			a = as;
			as = NULL;
			continue;
		}
		if (*b == '\0' && bs != NULL) {
			b = bs;
			bs = NULL;
			continue;
		}
		if (*a != *b)
			return false;
		if (*a == '\0')
			return true;
		a++;
		b++;
	}
}

/* Does f put a sample (or TYPE line) named base+suffix in the text? */
static bool family_emits(const family *f, const char *base, const char *suffix)
{
	if (concat_eq(f->name, NULL, base, suffix))
		return true;
	if (f->type != LS_METRICS_HISTOGRAM)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (concat_eq(f->name, hist_suffix[i], base, suffix))
			return true;
	return false;
}

/* Check d for type; the number of label names in *nlabels. */
static int desc_check(ls_metrics_type type, const ls_metrics_desc *d,
		      size_t *nlabels, char *err, size_t errlen)
{
	if (d == NULL) {
		ls_set_err(err, errlen, "no metric description");
		return -1;
	}
	if (!valid_metric_name(d->name)) {
		ls_set_err(err, errlen,
			   "metric name \"%s\": must match [a-zA-Z_:][a-zA-Z0-9_:]*",
			   d->name != NULL ? d->name : "(null)");
		return -1;
	}
	if (d->help == NULL || d->help[0] == '\0') {
		ls_set_err(err, errlen, "metric %s: HELP text is required",
			   d->name);
		return -1;
	}
	if (!ls_metrics_utf8_valid(d->help)) {
		ls_set_err(err, errlen, "metric %s: HELP is not valid UTF-8",
			   d->name);
		return -1;
	}
	size_t n = 0;
	while (n < LS_METRICS_MAX_LABELS && d->labels[n] != NULL)
		n++;
	for (size_t i = n; i < LS_METRICS_MAX_LABELS; i++) {
		if (d->labels[i] != NULL) {
			ls_set_err(err, errlen,
				   "metric %s: label names must not have NULL gaps",
				   d->name);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *l = d->labels[i];
		if (!valid_label_name(l)) {
			ls_set_err(err, errlen,
				   "metric %s: label name \"%s\": must match "
				   "[a-zA-Z_][a-zA-Z0-9_]* and not start with \"__\"",
				   d->name, l);
			return -1;
		}
		if (type == LS_METRICS_HISTOGRAM && strcmp(l, "le") == 0) {
			ls_set_err(err, errlen,
				   "metric %s: label name \"le\" is reserved for "
				   "histogram buckets", d->name);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(l, d->labels[j]) == 0) {
				ls_set_err(err, errlen,
					   "metric %s: label name \"%s\" given twice",
					   d->name, l);
				return -1;
			}
		}
	}
	if (type != LS_METRICS_HISTOGRAM) {
		if (d->buckets != NULL || d->nbuckets != 0) {
			ls_set_err(err, errlen, "metric %s: buckets given for a %s",
				   d->name, ls_metrics_type_name(type));
			return -1;
		}
	} else {
		if ((d->buckets == NULL) != (d->nbuckets == 0)) {
			ls_set_err(err, errlen,
				   "metric %s: buckets and nbuckets disagree", d->name);
			return -1;
		}
		for (size_t i = 0; i < d->nbuckets; i++) {
			double b = d->buckets[i];
			bool last = i + 1 == d->nbuckets;
			if (isnan(b) || (isinf(b) && !(last && b > 0 && i > 0))) {
				ls_set_err(err, errlen,
					   "metric %s: bucket bound %zu is not finite",
					   d->name, i);
				return -1;
			}
			if (i > 0 && !(b > d->buckets[i - 1])) {
				ls_set_err(err, errlen,
					   "metric %s: bucket bounds must be strictly "
					   "ascending (bound %zu)", d->name, i);
				return -1;
			}
		}
	}
	*nlabels = n;
	return 0;
}

/*
 * Build, check and publish a family. A label-less plain family gets its
 * one series before it is published, so render never sees it without.
 */
static family *family_add(ls_metrics *m, ls_metrics_type type,
			  const ls_metrics_desc *d, ls_metrics_collect_fn fn,
			  void *arg, char *err, size_t errlen)
{
	if (m == NULL) {
		ls_set_err(err, errlen, "no registry");
		return NULL;
	}
	size_t nlabels;
	if (desc_check(type, d, &nlabels, err, errlen) != 0)
		return NULL;
	family *f = calloc(1, sizeof *f);
	if (f == NULL)
		goto oom;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		ls_set_err(err, errlen, "metric %s: cannot create its mutex",
			   d->name);
		return NULL;
	}
	atomic_init(&f->next, NULL);
	atomic_init(&f->head, NULL);
	atomic_init(&f->dropped, 0);
	f->type = type;
	f->fn = fn;
	f->arg = arg;
	f->max_series = d->max_series != 0 ? d->max_series
					   : LS_METRICS_DEFAULT_MAX_SERIES;
	f->name = dup_str(d->name);
	f->help = dup_str(d->help);
	if (f->name == NULL || f->help == NULL)
		goto oom_free;
	for (; f->nlabels < nlabels; f->nlabels++) {
		f->labels[f->nlabels] = dup_str(d->labels[f->nlabels]);
		if (f->labels[f->nlabels] == NULL)
			goto oom_free;
	}
	if (type == LS_METRICS_HISTOGRAM) {
		const double *src = d->buckets;
		size_t n = d->nbuckets;
		if (src == NULL) {
			src = default_buckets;
			n = sizeof default_buckets / sizeof default_buckets[0];
		}
		if (n > 0 && isinf(src[n - 1]))
			n--; /* +Inf is always there */
		if (n > 0) {
			f->bounds = malloc(n * sizeof *f->bounds);
			if (f->bounds == NULL)
				goto oom_free;
			memcpy(f->bounds, src, n * sizeof *f->bounds);
		}
		f->nbounds = n;
	}
	if (fn == NULL && nlabels == 0) {
		series *s = ls_metrics_series_new(f, NULL,
						  ls_metrics_hash_values(NULL, 0));
		if (s == NULL)
			goto oom_free;
		f->count = 1;
		ls_metrics_series_append(f, s);
	}

	pthread_mutex_lock(&m->mu);
	for (family *o = atomic_load_explicit(&m->head, memory_order_relaxed);
	     o != NULL; o = atomic_load_explicit(&o->next, memory_order_relaxed)) {
		bool clash = family_emits(o, f->name, NULL);
		for (size_t i = 0; i < 3 && !clash && type == LS_METRICS_HISTOGRAM; i++)
			clash = family_emits(o, f->name, hist_suffix[i]);
		if (clash) {
			pthread_mutex_unlock(&m->mu);
			ls_set_err(err, errlen,
				   "metric %s: clashes with the registered %s %s",
				   d->name, ls_metrics_type_name(o->type), o->name);
			family_free(f);
			return NULL;
		}
	}
	if (m->tail == NULL)
		atomic_store_explicit(&m->head, f, memory_order_release);
	else
		atomic_store_explicit(&m->tail->next, f, memory_order_release);
	m->tail = f;
	pthread_mutex_unlock(&m->mu);
	return f;

oom_free:
	family_free(f);
oom:
	ls_set_err(err, errlen, "metric %s: out of memory", d->name);
	return NULL;
}

ls_counter_vec *ls_metrics_counter(ls_metrics *m, const ls_metrics_desc *d,
				   char *err, size_t errlen)
{
	return (ls_counter_vec *)family_add(m, LS_METRICS_COUNTER, d, NULL,
					    NULL, err, errlen);
}

ls_gauge_vec *ls_metrics_gauge(ls_metrics *m, const ls_metrics_desc *d,
			       char *err, size_t errlen)
{
	return (ls_gauge_vec *)family_add(m, LS_METRICS_GAUGE, d, NULL, NULL,
					  err, errlen);
}

ls_histogram_vec *ls_metrics_histogram(ls_metrics *m, const ls_metrics_desc *d,
				       char *err, size_t errlen)
{
	return (ls_histogram_vec *)family_add(m, LS_METRICS_HISTOGRAM, d, NULL,
					      NULL, err, errlen);
}

int ls_metrics_callback(ls_metrics *m, ls_metrics_type type,
			const ls_metrics_desc *d, ls_metrics_collect_fn fn,
			void *arg, char *err, size_t errlen)
{
	if (type != LS_METRICS_COUNTER && type != LS_METRICS_GAUGE) {
		ls_set_err(err, errlen,
			   "callback metrics are counters or gauges");
		return -1;
	}
	if (fn == NULL) {
		ls_set_err(err, errlen, "callback metric without a function");
		return -1;
	}
	return family_add(m, type, d, fn, arg, err, errlen) != NULL ? 0 : -1;
}

/* ---------------------------------------------------------- registry */

static void collect_dropped(ls_metrics_sink *sink, void *arg)
{
	ls_metrics *m = arg;
	for (family *f = atomic_load_explicit(&m->head, memory_order_acquire);
	     f != NULL; f = atomic_load_explicit(&f->next, memory_order_acquire)) {
		unsigned long long n =
			atomic_load_explicit(&f->dropped, memory_order_relaxed);
		if (n > 0)
			ls_metrics_emit(sink, (const char *[]){ f->name },
					(double)n);
	}
}

ls_metrics *ls_metrics_new(void)
{
	ls_metrics *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	if (pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	atomic_init(&m->head, NULL);
	/* one series per family at most, so it never needs a cap */
	ls_metrics_desc d = {
		.name = DROPPED_NAME,
		.help = "Series refused by get-or-create or a collector: the "
			"family's series cap was reached or a label value was "
			"NULL or not UTF-8.",
		.labels = { "metric" },
		.max_series = SIZE_MAX,
	};
	m->dropped = family_add(m, LS_METRICS_COUNTER, &d, collect_dropped, m,
				NULL, 0);
	if (m->dropped == NULL) {
		ls_metrics_free(m);
		return NULL;
	}
	return m;
}

void ls_metrics_free(ls_metrics *m)
{
	if (m == NULL)
		return;
	family *f = atomic_load_explicit(&m->head, memory_order_relaxed);
	while (f != NULL) {
		family *next = atomic_load_explicit(&f->next, memory_order_relaxed);
		family_free(f);
		f = next;
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* ----------------------------------------------------------- process */

/*
 * The process collector, as client_golang's and client_python's: the
 * values come from /proc/self/stat (fields after the command name, which
 * may itself hold spaces and parentheses, hence the search for the last
 * ')'), /proc/stat's btime, /proc/self/fd and RLIMIT_NOFILE.
 */
enum proc_kind {
	PROC_CPU,
	PROC_OPEN_FDS,
	PROC_MAX_FDS,
	PROC_VMEM,
	PROC_RSS,
	PROC_START,
};

typedef struct proc_stat {
	unsigned long long utime, stime, starttime, vsize, rss;
} proc_stat;

static bool read_proc_stat(proc_stat *ps)
{
	char line[4096];
	FILE *fp = fopen("/proc/self/stat", "re");
	if (fp == NULL)
		return false;
	size_t n = fread(line, 1, sizeof line - 1, fp);
	fclose(fp);
	line[n] = '\0';
	char *p = strrchr(line, ')');
	if (p == NULL)
		return false;
	/* field 3 (state) is v[0]; utime is field 14, rss field 24 */
	unsigned long long v[22];
	char *save = NULL;
	char *tok = strtok_r(p + 1, " ", &save);
	for (size_t k = 0; k < 22; k++) {
		if (tok == NULL)
			return false;
		v[k] = k == 0 ? 0 : strtoull(tok, NULL, 10);
		tok = strtok_r(NULL, " ", &save);
	}
	ps->utime = v[14 - 3];
	ps->stime = v[15 - 3];
	ps->starttime = v[22 - 3];
	ps->vsize = v[23 - 3];
	ps->rss = v[24 - 3];
	return true;
}

static bool boot_time(double *out)
{
	FILE *fp = fopen("/proc/stat", "re");
	if (fp == NULL)
		return false;
	char *line = NULL;
	size_t cap = 0;
	bool found = false;
	while (getline(&line, &cap, fp) > 0) {
		unsigned long long bt;
		if (sscanf(line, "btime %llu", &bt) == 1) {
			*out = (double)bt;
			found = true;
			break;
		}
	}
	free(line);
	fclose(fp);
	return found;
}

static bool open_fds(double *out)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return false;
	int self = dirfd(d);
	double n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) == self) /* the one used to count */
			continue;
		n++;
	}
	closedir(d);
	*out = n;
	return true;
}

static void collect_process(ls_metrics_sink *sink, void *arg)
{
	enum proc_kind kind = (enum proc_kind)(uintptr_t)arg;
	double v = 0;
	bool ok = false;
	proc_stat ps;
	long hz = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	switch (kind) {
	case PROC_CPU:
		ok = hz > 0 && read_proc_stat(&ps);
		if (ok)
			v = (double)(ps.utime + ps.stime) / (double)hz;
		break;
	case PROC_OPEN_FDS:
		ok = open_fds(&v);
		break;
	case PROC_MAX_FDS: {
		struct rlimit rl;
		ok = getrlimit(RLIMIT_NOFILE, &rl) == 0;
		if (ok)
			v = rl.rlim_cur == RLIM_INFINITY ? INFINITY
							 : (double)rl.rlim_cur;
		break;
	}
	case PROC_VMEM:
		ok = read_proc_stat(&ps);
		if (ok)
			v = (double)ps.vsize;
		break;
	case PROC_RSS:
		ok = page > 0 && read_proc_stat(&ps);
		if (ok)
			v = (double)ps.rss * (double)page;
		break;
	case PROC_START: {
		double bt;
		ok = hz > 0 && read_proc_stat(&ps) && boot_time(&bt);
		if (ok)
			v = bt + (double)ps.starttime / (double)hz;
		break;
	}
	}
	if (ok)
		ls_metrics_emit(sink, NULL, v);
}

int ls_metrics_add_process(ls_metrics *m, char *err, size_t errlen)
{
	static const struct {
		enum proc_kind kind;
		ls_metrics_type type;
		const char *name;
		const char *help;
	} defs[] = {
		{ PROC_CPU, LS_METRICS_COUNTER, "process_cpu_seconds_total",
		  "Total user and system CPU time spent in seconds." },
		{ PROC_OPEN_FDS, LS_METRICS_GAUGE, "process_open_fds",
		  "Number of open file descriptors." },
		{ PROC_MAX_FDS, LS_METRICS_GAUGE, "process_max_fds",
		  "Maximum number of open file descriptors." },
		{ PROC_VMEM, LS_METRICS_GAUGE, "process_virtual_memory_bytes",
		  "Virtual memory size in bytes." },
		{ PROC_RSS, LS_METRICS_GAUGE, "process_resident_memory_bytes",
		  "Resident memory size in bytes." },
		{ PROC_START, LS_METRICS_GAUGE, "process_start_time_seconds",
		  "Start time of the process since unix epoch in seconds." },
	};
	for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
		ls_metrics_desc d = { .name = defs[i].name, .help = defs[i].help };
		if (ls_metrics_callback(m, defs[i].type, &d, collect_process,
					(void *)(uintptr_t)defs[i].kind, err,
					errlen) != 0)
			return -1;
	}
	return 0;
}
