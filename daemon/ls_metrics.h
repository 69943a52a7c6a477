/*
 * ls_metrics.h - a Prometheus metrics registry and its text exposition.
 *
 * Three metric types, each a family (name, HELP, 0..4 label names) that
 * holds one series per distinct tuple of label values:
 *   counter    monotonic; integer adds and non-negative double adds
 *   gauge      a double that can be set, raised and lowered
 *   histogram  fixed ascending bucket upper bounds (+Inf implied),
 *              rendered as cumulative _bucket{le=...}, _sum and _count
 * plus callback families (counter or gauge) whose samples a function
 * emits at scrape time, e.g. Redis memory or consumer lag per partition;
 * ls_metrics_add_process() registers the standard process_* collector.
 * ls_metrics_render() writes the whole registry in the text exposition
 * format 0.0.4 (LS_METRICS_CONTENT_TYPE): # HELP and # TYPE for every
 * family, even one without series, families in registration order (the
 * dropped-series counter below last), series in creation order.
 *
 * Names: ls_metrics_* is the registry; ls_counter_*, ls_gauge_* and
 * ls_histogram_* are the three types' families (*_vec) and series.
 *
 * Use: register a family once at start-up, get-or-create its series once
 * per label tuple (ls_counter_vec_get), keep the handle, and update it on
 * the hot path:
 *     ls_counter_vec *v = ls_metrics_counter(m, &(ls_metrics_desc){
 *         .name = "leadscore_events_total", .help = "Events consumed.",
 *         .labels = {"topic"}}, err, sizeof err);
 *     ls_counter *c = ls_counter_vec_get(v, (const char *[]){"web"});
 *     ls_counter_inc(c);
 * A family without labels creates its one series at registration, so it
 * renders 0 from the first scrape.
 *
 * Cardinality: each family has a series cap (desc.max_series, default
 * LS_METRICS_DEFAULT_MAX_SERIES). Past it, get-or-create returns NULL
 * (as it does for a NULL or invalid-UTF-8 label value), and every update
 * function takes a NULL handle as a no-op, so a label bomb costs nothing
 * but lost detail. Each refusal is counted in the registry's own counter
 * leadscore_metrics_series_dropped_total{metric="<family>"}, which every
 * registry has (its name is reserved; it renders after all the others,
 * so it includes the refusals of the scrape that renders it, and shows
 * only families that refused something). Callback families apply the
 * same cap per scrape.
 *
 * Errors: registration returns NULL (or -1) with a reason in err for a
 * name or label name outside the Prometheus rules (metric
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]* without a "__"
 * prefix, no "le" on a histogram, no duplicates), a name taken by another
 * family (including a histogram's _bucket/_sum/_count), an empty or
 * non-UTF-8 HELP, bad buckets, or out of memory. Nothing here aborts.
 * The registry does not enforce naming conventions (promtool's lint: a
 * counter ends in _total, base units); follow them.
 *
 * Thread-safety: everything may be called from any thread. Registration
 * and get-or-create take a mutex (registry, family); updates on a handle
 * are lock-free C11 atomics (integer fetch-add; doubles by
 * compare-and-swap on their bit pattern). Render takes no lock that
 * updates need: it reads the append-only family and series lists and the
 * atomics, so a scrape never stalls the pipeline. A histogram's buckets,
 * _count and _sum are read one by one, so a scrape racing observations
 * may see _sum one observation apart from the buckets; _count is always
 * the +Inf bucket. Callbacks run on the rendering thread, outside any
 * registry lock; they must be safe against the threads that own their
 * data and must not call ls_metrics_render on the same registry.
 *
 * Memory: the registry owns every family and series; a handle stays valid
 * (same address) until ls_metrics_free, which the caller must not race
 * with any other call. Registration copies name, HELP, label names and
 * buckets; get-or-create copies label values. ls_metrics_render returns a
 * malloc'd string the caller frees. Callback arguments are borrowed.
 */
#ifndef LS_METRICS_H
#define LS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define LS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define LS_METRICS_MAX_LABELS 4
#define LS_METRICS_DEFAULT_MAX_SERIES 1000

typedef struct ls_metrics ls_metrics;

/* Families: never defined, only pointed to, so the types cannot mix. */
typedef struct ls_counter_vec ls_counter_vec;
typedef struct ls_gauge_vec ls_gauge_vec;
typedef struct ls_histogram_vec ls_histogram_vec;

/* Series handles, likewise. */
typedef struct ls_counter ls_counter;
typedef struct ls_gauge ls_gauge;
typedef struct ls_histogram ls_histogram;

typedef enum ls_metrics_type {
	LS_METRICS_COUNTER,
	LS_METRICS_GAUGE,
	LS_METRICS_HISTOGRAM,
} ls_metrics_type;

/* What to register; the registry copies what it keeps. */
typedef struct ls_metrics_desc {
	const char *name;
	const char *help;
	/* Label names in order, NULL after the last. */
	const char *labels[LS_METRICS_MAX_LABELS];
	/* Series cap; 0 means LS_METRICS_DEFAULT_MAX_SERIES. */
	size_t max_series;
	/*
	 * Histograms only: strictly ascending finite upper bounds (a final
	 * +Inf is accepted and dropped, it is always implied). NULL with
	 * nbuckets 0 gives Prometheus's defaults .005 .01 .025 .05 .1 .25 .5
	 * 1 2.5 5 10. Must be NULL/0 for other types.
	 */
	const double *buckets;
	size_t nbuckets;
} ls_metrics_desc;

/* An empty registry (holding only its dropped-series counter); NULL when
 * out of memory. */
ls_metrics *ls_metrics_new(void);

/* Free the registry, every family and every handle. NULL is ok. */
void ls_metrics_free(ls_metrics *m);

/*
 * Register a family. NULL with a reason in err (see Errors above).
 */
ls_counter_vec *ls_metrics_counter(ls_metrics *m, const ls_metrics_desc *d,
				   char *err, size_t errlen);
ls_gauge_vec *ls_metrics_gauge(ls_metrics *m, const ls_metrics_desc *d,
			       char *err, size_t errlen);
ls_histogram_vec *ls_metrics_histogram(ls_metrics *m, const ls_metrics_desc *d,
				       char *err, size_t errlen);

/*
 * Callback families. At each render, fn(sink, arg) is called and reports
 * the family's samples with ls_metrics_emit; it may emit none (e.g. when
 * Redis is down), and must emit each label tuple at most once.
 */
typedef struct ls_metrics_sink ls_metrics_sink;
typedef void (*ls_metrics_collect_fn)(ls_metrics_sink *sink, void *arg);

/* type is LS_METRICS_COUNTER or LS_METRICS_GAUGE. 0, or -1 with a reason. */
int ls_metrics_callback(ls_metrics *m, ls_metrics_type type,
			const ls_metrics_desc *d, ls_metrics_collect_fn fn,
			void *arg, char *err, size_t errlen);

/*
 * One sample from a callback: values holds one label value per label
 * name (NULL when the family has none). Refused like get-or-create past
 * the cap or with a NULL or non-UTF-8 value.
 */
void ls_metrics_emit(ls_metrics_sink *sink, const char *const values[],
		     double value);

/*
 * Register process_cpu_seconds_total, process_open_fds, process_max_fds,
 * process_virtual_memory_bytes, process_resident_memory_bytes and
 * process_start_time_seconds, read from /proc/self (and RLIMIT_NOFILE) at
 * each scrape as the Prometheus client libraries define them. A value
 * that cannot be read is left out of that scrape. 0, or -1 with a reason
 * (a second call fails: the names are taken; families registered before
 * a failure stay).
 */
int ls_metrics_add_process(ls_metrics *m, char *err, size_t errlen);

/*
 * The registry in text format 0.0.4, NUL-terminated; *len (if non-NULL)
 * gets its length. The caller frees it. NULL when out of memory.
 */
char *ls_metrics_render(ls_metrics *m, size_t *len);

/*
 * Get-or-create the series for values (one per label name, copied; NULL
 * for a family without labels). The handle lives as long as the registry.
 * NULL past the family's cap, for a NULL or non-UTF-8 value, or out of
 * memory (each counted, see Cardinality), and for a NULL family.
 */
ls_counter *ls_counter_vec_get(ls_counter_vec *v, const char *const values[]);
ls_gauge *ls_gauge_vec_get(ls_gauge_vec *v, const char *const values[]);
ls_histogram *ls_histogram_vec_get(ls_histogram_vec *v,
				   const char *const values[]);

/* Updates: lock-free; a NULL handle is a no-op. */
void ls_counter_inc(ls_counter *c);
void ls_counter_add(ls_counter *c, uint64_t n);
/* Negative and NaN amounts are ignored: a counter never goes down. */
void ls_counter_add_double(ls_counter *c, double v);

void ls_gauge_set(ls_gauge *g, double v);
void ls_gauge_add(ls_gauge *g, double v);
void ls_gauge_inc(ls_gauge *g);
void ls_gauge_dec(ls_gauge *g);

/* v goes in the first bucket whose bound is >= v; NaN is ignored. */
void ls_histogram_observe(ls_histogram *h, double v);

/* Current values (0 for a NULL handle). */
double ls_counter_value(const ls_counter *c);
double ls_gauge_value(const ls_gauge *g);
uint64_t ls_histogram_count(const ls_histogram *h);
double ls_histogram_sum(const ls_histogram *h);

#endif
