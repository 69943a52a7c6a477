/*
 * ls_metrics_internal.h - what ls_metrics.c (series, render) and
 * ls_metrics_registry.c (families, registry, collectors) share. Not for
 * any other file: the public API is ls_metrics.h.
 *
 * Memory: a registry owns its families, a family its series; both are
 * freed only by ls_metrics_free. Thread-safety: as ls_metrics.h; the
 * mutexes below serialise writers only, readers walk the lists through
 * acquire loads (see ls_metrics.c).
 */
#ifndef LS_METRICS_INTERNAL_H
#define LS_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_metrics.h"

typedef struct series {
	/* hot: the only fields written after creation */
	atomic_ullong ints;          /* counter: integer part */
	atomic_ullong dbl;           /* counter/gauge value, histogram sum (bits) */
	/* read-only after creation */
	_Atomic(struct series *) next; /* creation order */
	char *values[LS_METRICS_MAX_LABELS]; /* raw, for lookup */
	char *labels;                /* escaped `a="x",b="y"`, "" for none */
	char *strs;                  /* the one block values and labels live in */
	const struct family *fam;    /* histogram bounds */
	uint64_t hash;
	atomic_ullong buckets[];     /* histogram: nbounds + 1 (+Inf) */
} series;

typedef struct family {
	_Atomic(struct family *) next; /* registration order */
	ls_metrics_type type;
	char *name;
	char *help;
	size_t nlabels;
	char *labels[LS_METRICS_MAX_LABELS];
	size_t max_series;
	double *bounds; /* histogram */
	size_t nbounds;
	ls_metrics_collect_fn fn; /* callback family when non-NULL */
	void *arg;
	atomic_ullong dropped;

	pthread_mutex_t mu; /* guards everything below */
	series **table;
	size_t tcap; /* power of two, or 0 */
	size_t count;
	_Atomic(series *) head;
	series *tail;
} family;

struct ls_metrics {
	pthread_mutex_t mu; /* guards registration */
	_Atomic(family *) head;
	family *tail;
	family *dropped; /* the self-metric; rendered last, see render */
};

/* Its Prometheus TYPE word. */
const char *ls_metrics_type_name(ls_metrics_type t);

/* Is str valid UTF-8, as Prometheus requires of label values and HELP? */
bool ls_metrics_utf8_valid(const char *str);

/* FNV-1a over n raw label values: the series lookup hash. */
uint64_t ls_metrics_hash_values(const char *const values[], size_t n);

/* A new series of f for values (already checked), or NULL when out of
 * memory; free with ls_metrics_series_free (NULL is a no-op). */
series *ls_metrics_series_new(const family *f, const char *const values[],
			      uint64_t hash);
void ls_metrics_series_free(series *s);

/* Publish s at the end of f's creation-order list (caller holds f->mu,
 * or f is not yet published). */
void ls_metrics_series_append(family *f, series *s);

#endif
