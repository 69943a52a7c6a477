/*
 * ls_metrics.c - Prometheus registry and text exposition.
 *
 * Design. Families and series are never freed before the registry, and
 * both live in append-only singly linked lists whose links are published
 * with release stores. That is what lets render walk everything without
 * a lock while registration and get-or-create go on: a reader that sees a
 * node through an acquire load sees it fully built, and nothing it reads
 * afterwards changes except the value atomics. The mutexes only serialise
 * writers: the registry's for the family list and name checks, each
 * family's for its lookup table and series list.
 *
 * Values. A counter keeps two atomics: an integer for the common
 * "one more event" (a plain fetch-add, the cheapest thing the hardware
 * does) and a double, updated by compare-and-swap on its bit pattern, for
 * fractional amounts such as seconds; it renders their sum. A gauge is one
 * double. A histogram keeps per-bucket (non-cumulative) integer counts and
 * a double sum; _count is the sum of the buckets at render time, so it
 * always equals the +Inf bucket, and observe() is one fetch-add plus one
 * CAS. Memory order is relaxed throughout: each value is independent and
 * a scrape only needs some recent value.
 *
 * Each series is allocated on its own 64-byte boundary with the atomics
 * first, so two hot series updated by different threads do not share a
 * cache line.
 *
 * Lookup is an open-addressing hash table (FNV-1a over the raw label
 * values) per family, grown at half full; the escaped label text is built
 * once, at creation, so render just copies it.
 */
#include "ls_metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ls_err.h"
#include "ls_utf8.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
	       "updates must be lock-free: 64-bit atomics required");
_Static_assert(sizeof(unsigned long long) == sizeof(double),
	       "doubles are stored as their 64-bit pattern");

#define DROPPED_NAME "leadscore_metrics_series_dropped_total"
#define SERIES_ALIGN 64

static const double default_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const hist_suffix[] = { "_bucket", "_sum", "_count" };

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

/* ---------------------------------------------------------- helpers */

static double bits_to_double(unsigned long long b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

static unsigned long long double_to_bits(double d)
{
	unsigned long long b;
	memcpy(&b, &d, sizeof b);
	return b;
}

static void atomic_add_double(atomic_ullong *a, double v)
{
	unsigned long long old = atomic_load_explicit(a, memory_order_relaxed);
	unsigned long long upd;
	do {
		upd = double_to_bits(bits_to_double(old) + v);
	} while (!atomic_compare_exchange_weak_explicit(
		a, &old, upd, memory_order_relaxed, memory_order_relaxed));
}

static double load_double(const atomic_ullong *a)
{
	/* atomic_load takes a non-const pointer in C17 */
	return bits_to_double(
		atomic_load_explicit((atomic_ullong *)a, memory_order_relaxed));
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

/*
 * Go's utf8.ValidString, which Prometheus applies to label values: one
 * bad byte would make the whole scrape fail, so it is refused here.
 */
static bool utf8_valid(const char *str)
{
	return ls_utf8_valid(str, strlen(str));
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

static uint64_t hash_values(const char *const values[], size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i];
		     *p != 0; p++) {
			h ^= *p;
			h *= 0x100000001b3u;
		}
		/* 0xff never occurs in UTF-8, so ("a","b") != ("ab","") */
		h ^= 0xff;
		h *= 0x100000001b3u;
	}
	return h;
}

/* ------------------------------------------------------ text buffer */

typedef struct buf {
	char *p;
	size_t len;
	size_t cap;
	bool failed; /* sticky: one failed growth fails the render */
} buf;

static void buf_put(buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->cap - b->len <= n) {
		size_t cap = b->cap != 0 ? b->cap : 4096;
		while (cap - b->len <= n) {
			if (cap > SIZE_MAX / 2) {
				b->failed = true;
				return;
			}
			cap *= 2;
		}
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/*
 * The shortest of %.15g/%.16g/%.17g that reads back as the same double
 * (%.17g always does); Prometheus's spellings for the non-finite ones.
 * printf and strtod follow LC_NUMERIC: this relies on the C locale's
 * '.', which the daemon never changes (it does not call setlocale).
 */
static void fmt_double(char *out, size_t outlen, double v)
{
	if (isnan(v)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void buf_double(buf *b, double v)
{
	char tmp[40];
	fmt_double(tmp, sizeof tmp, v);
	buf_str(b, tmp);
}

/* HELP escapes backslash and newline; label values also the quote. */
static void buf_escaped(buf *b, const char *s, bool quote)
{
	const char *run = s;
	for (; *s != '\0'; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (quote && *s == '"')
			esc = "\\\"";
		if (esc == NULL)
			continue;
		buf_put(b, run, (size_t)(s - run));
		buf_put(b, esc, 2);
		run = s + 1;
	}
	buf_put(b, run, (size_t)(s - run));
}

/* `a="x",b="y"` for the family's label names and these values. */
static void buf_labels(buf *b, const family *f, const char *const values[])
{
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i > 0)
			buf_put(b, ",", 1);
		buf_str(b, f->labels[i]);
		buf_put(b, "=\"", 2);
		buf_escaped(b, values[i], true);
		buf_put(b, "\"", 1);
	}
}

/* name+suffix{labels[,le="..."]} value\n */
static void buf_sample(buf *b, const char *name, const char *suffix,
		       const char *labels, const char *le, double v)
{
	buf_str(b, name);
	buf_str(b, suffix);
	if (labels[0] != '\0' || le != NULL) {
		buf_put(b, "{", 1);
		buf_str(b, labels);
		if (le != NULL) {
			if (labels[0] != '\0')
				buf_put(b, ",", 1);
			buf_put(b, "le=\"", 4);
			buf_str(b, le);
			buf_put(b, "\"", 1);
		}
		buf_put(b, "}", 1);
	}
	buf_put(b, " ", 1);
	buf_double(b, v);
	buf_put(b, "\n", 1);
}

/* ------------------------------------------------------------ series */

static size_t series_size(const family *f)
{
	size_t n = sizeof(series);
	if (f->type == LS_METRICS_HISTOGRAM)
		n += (f->nbounds + 1) * sizeof(atomic_ullong);
	return (n + SERIES_ALIGN - 1) / SERIES_ALIGN * SERIES_ALIGN;
}

static void series_free(series *s)
{
	if (s == NULL)
		return;
	free(s->strs);
	free(s);
}

/* A new series for values (already checked), or NULL when out of memory. */
static series *series_new(const family *f, const char *const values[],
			  uint64_t hash)
{
	series *s = aligned_alloc(SERIES_ALIGN, series_size(f));
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof *s);
	atomic_init(&s->ints, 0);
	atomic_init(&s->dbl, double_to_bits(0.0));
	atomic_init(&s->next, NULL);
	if (f->type == LS_METRICS_HISTOGRAM)
		for (size_t i = 0; i <= f->nbounds; i++)
			atomic_init(&s->buckets[i], 0);
	s->hash = hash;
	s->fam = f;

	/* values and the escaped label text in one block */
	buf b = { 0 };
	size_t off[LS_METRICS_MAX_LABELS];
	for (size_t i = 0; i < f->nlabels; i++) {
		off[i] = b.len;
		buf_put(&b, values[i], strlen(values[i]) + 1);
	}
	size_t loff = b.len;
	buf_put(&b, "", 1); /* keeps the text NUL-terminated when empty */
	b.len = loff;
	buf_labels(&b, f, values);
	if (b.failed) {
		free(b.p);
		free(s);
		return NULL;
	}
	s->strs = b.p;
	for (size_t i = 0; i < f->nlabels; i++)
		s->values[i] = b.p + off[i];
	s->labels = b.p + loff;
	return s;
}

static bool series_matches(const series *s, size_t n,
			   const char *const values[], uint64_t hash)
{
	if (s->hash != hash)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], values[i]) != 0)
			return false;
	return true;
}

/* Insert into the table (caller holds mu and has made room). */
static void table_put(series **table, size_t tcap, series *s)
{
	size_t i = (size_t)s->hash & (tcap - 1);
	while (table[i] != NULL)
		i = (i + 1) & (tcap - 1);
	table[i] = s;
}

static bool table_grow(family *f)
{
	size_t ncap = f->tcap != 0 ? f->tcap * 2 : 8;
	if (ncap < f->tcap || ncap > SIZE_MAX / sizeof(series *))
		return false;
	series **nt = calloc(ncap, sizeof *nt);
	if (nt == NULL)
		return false;
	for (size_t i = 0; i < f->tcap; i++)
		if (f->table[i] != NULL)
			table_put(nt, ncap, f->table[i]);
	free(f->table);
	f->table = nt;
	f->tcap = ncap;
	return true;
}

/* Publish s at the end of the creation-order list (caller holds mu). */
static void series_append(family *f, series *s)
{
	if (f->tail == NULL)
		atomic_store_explicit(&f->head, s, memory_order_release);
	else
		atomic_store_explicit(&f->tail->next, s, memory_order_release);
	f->tail = s;
}

static bool values_ok(const family *f, const char *const values[])
{
	if (f->nlabels > 0 && values == NULL)
		return false;
	for (size_t i = 0; i < f->nlabels; i++)
		if (values[i] == NULL)
			return false;
	return true;
}

static void drop(family *f)
{
	atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
}

static series *family_get(family *f, const char *const values[])
{
	if (f->nlabels == 0) /* created at registration, never changes */
		return atomic_load_explicit(&f->head, memory_order_acquire);
	if (!values_ok(f, values)) {
		drop(f);
		return NULL;
	}
	uint64_t h = hash_values(values, f->nlabels);
	series *found = NULL;
	pthread_mutex_lock(&f->mu);
	if (f->tcap != 0) {
		size_t i = (size_t)h & (f->tcap - 1);
		for (; f->table[i] != NULL; i = (i + 1) & (f->tcap - 1)) {
			if (series_matches(f->table[i], f->nlabels, values, h)) {
				found = f->table[i];
				break;
			}
		}
	}
	if (found == NULL && f->count < f->max_series) {
		bool ok = true;
		for (size_t i = 0; i < f->nlabels && ok; i++)
			ok = utf8_valid(values[i]);
		if (ok && (f->count + 1) * 2 > f->tcap)
			ok = table_grow(f);
		if (ok)
			found = series_new(f, values, h);
		if (found != NULL) {
			table_put(f->table, f->tcap, found);
			f->count++;
			series_append(f, found);
		}
	}
	pthread_mutex_unlock(&f->mu);
	if (found == NULL)
		drop(f);
	return found;
}

/* ---------------------------------------------------------- families */

static void family_free(family *f)
{
	if (f == NULL)
		return;
	series *s = atomic_load_explicit(&f->head, memory_order_relaxed);
	while (s != NULL) {
		series *next = atomic_load_explicit(&s->next, memory_order_relaxed);
		series_free(s);
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

static const char *type_name(ls_metrics_type t)
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
	if (!utf8_valid(d->help)) {
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
				   d->name, type_name(type));
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
		series *s = series_new(f, NULL, hash_values(NULL, 0));
		if (s == NULL)
			goto oom_free;
		f->count = 1;
		series_append(f, s);
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
				   d->name, type_name(o->type), o->name);
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

/* -------------------------------------------------------- callbacks */

struct ls_metrics_sink {
	buf *b;
	family *f;
	size_t emitted;
};

void ls_metrics_emit(ls_metrics_sink *sink, const char *const values[],
		     double value)
{
	if (sink == NULL)
		return;
	family *f = sink->f;
	bool ok = sink->emitted < f->max_series && values_ok(f, values);
	for (size_t i = 0; i < f->nlabels && ok; i++)
		ok = utf8_valid(values[i]);
	if (!ok) {
		drop(f);
		return;
	}
	sink->emitted++;
	buf *b = sink->b;
	buf_str(b, f->name);
	if (f->nlabels > 0) {
		buf_put(b, "{", 1);
		buf_labels(b, f, values);
		buf_put(b, "}", 1);
	}
	buf_put(b, " ", 1);
	buf_double(b, value);
	buf_put(b, "\n", 1);
}

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

/* ---------------------------------------------------------- registry */

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

static void render_family(buf *b, family *f)
{
	buf_str(b, "# HELP ");
	buf_str(b, f->name);
	buf_put(b, " ", 1);
	buf_escaped(b, f->help, false);
	buf_str(b, "\n# TYPE ");
	buf_str(b, f->name);
	buf_put(b, " ", 1);
	buf_str(b, type_name(f->type));
	buf_put(b, "\n", 1);

	if (f->fn != NULL) {
		ls_metrics_sink sink = { .b = b, .f = f, .emitted = 0 };
		f->fn(&sink, f->arg);
		return;
	}
	for (series *s = atomic_load_explicit(&f->head, memory_order_acquire);
	     s != NULL; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
		double dv = load_double(&s->dbl);
		if (f->type == LS_METRICS_COUNTER) {
			unsigned long long n = atomic_load_explicit(
				&s->ints, memory_order_relaxed);
			buf_sample(b, f->name, "", s->labels, NULL, (double)n + dv);
		} else if (f->type == LS_METRICS_GAUGE) {
			buf_sample(b, f->name, "", s->labels, NULL, dv);
		} else {
			unsigned long long cum = 0;
			char le[40];
			for (size_t i = 0; i <= f->nbounds; i++) {
				cum += atomic_load_explicit(&s->buckets[i],
							    memory_order_relaxed);
				fmt_double(le, sizeof le,
					   i < f->nbounds ? f->bounds[i] : INFINITY);
				buf_sample(b, f->name, "_bucket", s->labels, le,
					   (double)cum);
			}
			buf_sample(b, f->name, "_sum", s->labels, NULL, dv);
			buf_sample(b, f->name, "_count", s->labels, NULL,
				   (double)cum);
		}
	}
}

char *ls_metrics_render(ls_metrics *m, size_t *len)
{
	if (m == NULL)
		return NULL;
	buf b = { 0 };
	buf_put(&b, "", 0); /* an empty registry is "", not NULL */
	/*
	 * The self-metric is registered first, to reserve its name, but
	 * rendered last, so it includes what the collectors just refused.
	 */
	for (family *f = atomic_load_explicit(&m->head, memory_order_acquire);
	     f != NULL; f = atomic_load_explicit(&f->next, memory_order_acquire))
		if (f != m->dropped)
			render_family(&b, f);
	render_family(&b, m->dropped);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.p;
}

/* ------------------------------------------------------------ series */

ls_counter *ls_counter_vec_get(ls_counter_vec *v, const char *const values[])
{
	return v == NULL ? NULL : (ls_counter *)family_get((family *)v, values);
}

ls_gauge *ls_gauge_vec_get(ls_gauge_vec *v, const char *const values[])
{
	return v == NULL ? NULL : (ls_gauge *)family_get((family *)v, values);
}

ls_histogram *ls_histogram_vec_get(ls_histogram_vec *v,
				   const char *const values[])
{
	return v == NULL ? NULL
			 : (ls_histogram *)family_get((family *)v, values);
}

void ls_counter_inc(ls_counter *c)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&((series *)c)->ints, 1,
					  memory_order_relaxed);
}

void ls_counter_add(ls_counter *c, uint64_t n)
{
	if (c != NULL)
		atomic_fetch_add_explicit(&((series *)c)->ints, n,
					  memory_order_relaxed);
}

void ls_counter_add_double(ls_counter *c, double v)
{
	if (c != NULL && v > 0) /* false for NaN too */
		atomic_add_double(&((series *)c)->dbl, v);
}

void ls_gauge_set(ls_gauge *g, double v)
{
	if (g != NULL)
		atomic_store_explicit(&((series *)g)->dbl, double_to_bits(v),
				      memory_order_relaxed);
}

void ls_gauge_add(ls_gauge *g, double v)
{
	if (g != NULL)
		atomic_add_double(&((series *)g)->dbl, v);
}

void ls_gauge_inc(ls_gauge *g)
{
	ls_gauge_add(g, 1.0);
}

void ls_gauge_dec(ls_gauge *g)
{
	ls_gauge_add(g, -1.0);
}

void ls_histogram_observe(ls_histogram *h, double v)
{
	if (h == NULL || isnan(v))
		return;
	series *s = (series *)h;
	const family *f = s->fam;
	/* first bound >= v; nbounds is the +Inf bucket */
	size_t lo = 0, hi = f->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->bounds[mid] >= v)
			hi = mid;
		else
			lo = mid + 1;
	}
	atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
	atomic_add_double(&s->dbl, v);
}

double ls_counter_value(const ls_counter *c)
{
	if (c == NULL)
		return 0;
	const series *s = (const series *)c;
	unsigned long long n =
		atomic_load_explicit((atomic_ullong *)&s->ints, memory_order_relaxed);
	return (double)n + load_double(&s->dbl);
}

double ls_gauge_value(const ls_gauge *g)
{
	return g == NULL ? 0 : load_double(&((const series *)g)->dbl);
}

uint64_t ls_histogram_count(const ls_histogram *h)
{
	if (h == NULL)
		return 0;
	series *s = (series *)h; /* atomic loads want non-const */
	uint64_t n = 0;
	for (size_t i = 0; i <= s->fam->nbounds; i++)
		n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
	return n;
}

double ls_histogram_sum(const ls_histogram *h)
{
	return h == NULL ? 0 : load_double(&((const series *)h)->dbl);
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
