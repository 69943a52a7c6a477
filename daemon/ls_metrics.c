/*
 * ls_metrics.c - Prometheus series: lookup, updates and text exposition.
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
 *
 * The seam. This file is the hot path and the scrape: get-or-create,
 * the value atomics and render. ls_metrics_registry.c is the cold path:
 * checking a description, building and publishing a family, the
 * registry's lifetime and the built-in collectors. They meet where
 * registration builds (and frees) a family's series and where render
 * names a family's type, so ls_metrics_internal.h shares only the three
 * structs and six functions.
 */
#include "ls_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_metrics_internal.h"
#include "ls_utf8.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
	       "updates must be lock-free: 64-bit atomics required");
_Static_assert(sizeof(unsigned long long) == sizeof(double),
	       "doubles are stored as their 64-bit pattern");

#define SERIES_ALIGN 64

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

/*
 * Go's utf8.ValidString, which Prometheus applies to label values: one
 * bad byte would make the whole scrape fail, so it is refused here.
 */
bool ls_metrics_utf8_valid(const char *str)
{
	return ls_utf8_valid(str, strlen(str));
}

uint64_t ls_metrics_hash_values(const char *const values[], size_t n)
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

void ls_metrics_series_free(series *s)
{
	if (s == NULL)
		return;
	free(s->strs);
	free(s);
}

/* A new series for values (already checked), or NULL when out of memory. */
series *ls_metrics_series_new(const family *f, const char *const values[],
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
void ls_metrics_series_append(family *f, series *s)
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
	uint64_t h = ls_metrics_hash_values(values, f->nlabels);
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
			ok = ls_metrics_utf8_valid(values[i]);
		if (ok && (f->count + 1) * 2 > f->tcap)
			ok = table_grow(f);
		if (ok)
			found = ls_metrics_series_new(f, values, h);
		if (found != NULL) {
			table_put(f->table, f->tcap, found);
			f->count++;
			ls_metrics_series_append(f, found);
		}
	}
	pthread_mutex_unlock(&f->mu);
	if (found == NULL)
		drop(f);
	return found;
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
		ok = ls_metrics_utf8_valid(values[i]);
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

/* ------------------------------------------------------------ render */

static void render_family(buf *b, family *f)
{
	buf_str(b, "# HELP ");
	buf_str(b, f->name);
	buf_put(b, " ", 1);
	buf_escaped(b, f->help, false);
	buf_str(b, "\n# TYPE ");
	buf_str(b, f->name);
	buf_put(b, " ", 1);
	buf_str(b, ls_metrics_type_name(f->type));
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
