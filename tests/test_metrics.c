/*
 * Unit tests for daemon/ls_metrics: the exact exposition text of a small
 * registry, float spelling and round trip, escaping, name validation,
 * the series cap and NULL handles, callback families, the process
 * collector against the kernel's own accounting, concurrent updates and
 * get-or-create, and Prometheus's linter (promtool check metrics) on a
 * full rendering.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ls_metrics.h"
#include "ls_testutil.h"

#define DROPPED_HEAD                                                          \
	"# HELP leadscore_metrics_series_dropped_total Series refused by "     \
	"get-or-create or a collector: the family's series cap was reached "  \
	"or a label value was NULL or not UTF-8.\n"                           \
	"# TYPE leadscore_metrics_series_dropped_total counter\n"

/* ---- helpers ---- */

static ls_metrics *mk(void)
{
	ls_metrics *m = ls_metrics_new();
	ck_assert_ptr_nonnull(m);
	return m;
}

static char *render(ls_metrics *m)
{
	size_t len = 0;
	char *s = ls_metrics_render(m, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, strlen(s));
	return s;
}

static ls_counter_vec *counter(ls_metrics *m, const ls_metrics_desc *d)
{
	char err[256] = "";
	ls_counter_vec *v = ls_metrics_counter(m, d, err, sizeof err);
	ck_assert_msg(v != NULL, "counter %s rejected: %s", d->name, err);
	return v;
}

static ls_gauge_vec *gauge(ls_metrics *m, const ls_metrics_desc *d)
{
	char err[256] = "";
	ls_gauge_vec *v = ls_metrics_gauge(m, d, err, sizeof err);
	ck_assert_msg(v != NULL, "gauge %s rejected: %s", d->name, err);
	return v;
}

static ls_histogram_vec *histogram(ls_metrics *m, const ls_metrics_desc *d)
{
	char err[256] = "";
	ls_histogram_vec *v = ls_metrics_histogram(m, d, err, sizeof err);
	ck_assert_msg(v != NULL, "histogram %s rejected: %s", d->name, err);
	return v;
}

/* The value on the line that starts with "series " (name plus labels). */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; *p != '\0';) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		const char *nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	ck_abort_msg("no sample %s in:\n%s", series, text);
	return NAN;
}

static size_t count_lines_starting(const char *text, const char *prefix)
{
	size_t n = 0, len = strlen(prefix);
	for (const char *p = text; *p != '\0';) {
		if (strncmp(p, prefix, len) == 0)
			n++;
		const char *nl = strchr(p, '\n');
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return n;
}

/* ---- exact text ---- */

START_TEST(test_render_exact)
{
	ls_metrics *m = mk();
	ls_counter_vec *req = counter(m, &(ls_metrics_desc){
		.name = "app_requests_total", .help = "Requests served." });
	ls_counter_vec *ev = counter(m, &(ls_metrics_desc){
		.name = "app_events_total", .help = "Events by topic and partition.",
		.labels = { "topic", "partition" } });
	ls_gauge_vec *depth = gauge(m, &(ls_metrics_desc){
		.name = "app_queue_depth", .help = "Items waiting." });
	ls_gauge_vec *empty = gauge(m, &(ls_metrics_desc){
		.name = "app_lag_seconds", .help = "Lag per partition.",
		.labels = { "partition" } });
	ls_histogram_vec *lat = histogram(m, &(ls_metrics_desc){
		.name = "app_latency_seconds", .help = "Batch latency.",
		.buckets = (const double[]){ 0.125, 0.5, 1 }, .nbuckets = 3 });
	ls_histogram_vec *size = histogram(m, &(ls_metrics_desc){
		.name = "app_batch_events", .help = "Events per batch.",
		.labels = { "stage" },
		.buckets = (const double[]){ 10, 100, INFINITY }, .nbuckets = 3 });
	(void)empty;

	/* label-less families render 0 before any update */
	char *text = render(m);
	ck_assert_ptr_nonnull(strstr(text, "\napp_requests_total 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "\napp_queue_depth 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "\napp_latency_seconds_count 0\n"));
	free(text);

	ls_counter *r = ls_counter_vec_get(req, NULL);
	ls_counter_inc(r);
	ls_counter_add(r, 2);
	/* created web first, so web renders first */
	ls_counter *web = ls_counter_vec_get(ev, (const char *[]){ "web", "0" });
	ls_counter *email = ls_counter_vec_get(ev, (const char *[]){ "email", "1" });
	ck_assert_ptr_nonnull(web);
	ck_assert_ptr_nonnull(email);
	ck_assert_ptr_ne(web, email);
	ls_counter_add(web, 5);
	ls_counter_inc(email);
	ls_counter_add_double(email, 0.25);
	ls_counter_add_double(email, -3);  /* ignored */
	ls_counter_add_double(email, NAN); /* ignored */
	ls_gauge *g = ls_gauge_vec_get(depth, NULL);
	ls_gauge_set(g, 2);
	ls_gauge_add(g, -4);
	ls_gauge_inc(g);
	ls_gauge_dec(g);
	ls_gauge_add(g, 0.5);
	ls_histogram *h = ls_histogram_vec_get(lat, NULL);
	ls_histogram_observe(h, 0.0625);
	ls_histogram_observe(h, 0.5); /* on a bound: counts in le="0.5" */
	ls_histogram_observe(h, 0.75);
	ls_histogram_observe(h, 2);   /* above the last bound: +Inf only */
	ls_histogram_observe(h, NAN); /* ignored */
	ls_histogram *commit = ls_histogram_vec_get(size, (const char *[]){ "commit" });
	ls_histogram_observe(commit, 100);
	ls_histogram_observe(commit, 1000);

	ck_assert_double_eq(ls_counter_value(r), 3);
	ck_assert_double_eq(ls_counter_value(email), 1.25);
	ck_assert_double_eq(ls_gauge_value(g), -1.5);
	ck_assert_uint_eq(ls_histogram_count(h), 4);
	ck_assert_double_eq(ls_histogram_sum(h), 3.3125);

	text = render(m);
	ck_assert_str_eq(text,
		"# HELP app_requests_total Requests served.\n"
		"# TYPE app_requests_total counter\n"
		"app_requests_total 3\n"
		"# HELP app_events_total Events by topic and partition.\n"
		"# TYPE app_events_total counter\n"
		"app_events_total{topic=\"web\",partition=\"0\"} 5\n"
		"app_events_total{topic=\"email\",partition=\"1\"} 1.25\n"
		"# HELP app_queue_depth Items waiting.\n"
		"# TYPE app_queue_depth gauge\n"
		"app_queue_depth -1.5\n"
		"# HELP app_lag_seconds Lag per partition.\n"
		"# TYPE app_lag_seconds gauge\n"
		"# HELP app_latency_seconds Batch latency.\n"
		"# TYPE app_latency_seconds histogram\n"
		"app_latency_seconds_bucket{le=\"0.125\"} 1\n"
		"app_latency_seconds_bucket{le=\"0.5\"} 2\n"
		"app_latency_seconds_bucket{le=\"1\"} 3\n"
		"app_latency_seconds_bucket{le=\"+Inf\"} 4\n"
		"app_latency_seconds_sum 3.3125\n"
		"app_latency_seconds_count 4\n"
		"# HELP app_batch_events Events per batch.\n"
		"# TYPE app_batch_events histogram\n"
		"app_batch_events_bucket{stage=\"commit\",le=\"10\"} 0\n"
		"app_batch_events_bucket{stage=\"commit\",le=\"100\"} 1\n"
		"app_batch_events_bucket{stage=\"commit\",le=\"+Inf\"} 2\n"
		"app_batch_events_sum{stage=\"commit\"} 1100\n"
		"app_batch_events_count{stage=\"commit\"} 2\n"
		DROPPED_HEAD);
	free(text);
	ls_metrics_free(m);
}
END_TEST

START_TEST(test_default_buckets)
{
	ls_metrics *m = mk();
	ls_histogram_vec *v = histogram(m, &(ls_metrics_desc){
		.name = "d_seconds", .help = "Defaults." });
	ls_histogram_vec *w = histogram(m, &(ls_metrics_desc){
		.name = "w_bytes", .help = "Wide bounds.",
		.buckets = (const double[]){ 1e-3, 1e6, 1e15 }, .nbuckets = 3 });
	ls_histogram_observe(ls_histogram_vec_get(v, NULL), 0.3);
	ls_histogram_observe(ls_histogram_vec_get(w, NULL), 1e6);
	char *text = render(m);
	static const char *const les[] = { "0.005", "0.01", "0.025", "0.05",
		"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" };
	for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
		char s[64];
		snprintf(s, sizeof s, "d_seconds_bucket{le=\"%s\"}", les[i]);
		ck_assert_double_eq(sample(text, s), i >= 6 ? 1 : 0);
	}
	ck_assert_uint_eq(count_lines_starting(text, "d_seconds_bucket"), 12);
	ck_assert_double_eq(sample(text, "w_bytes_bucket{le=\"0.001\"}"), 0);
	ck_assert_double_eq(sample(text, "w_bytes_bucket{le=\"1000000\"}"), 1);
	ck_assert_double_eq(sample(text, "w_bytes_bucket{le=\"1e+15\"}"), 1);
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- numbers ---- */

START_TEST(test_float_spelling)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0.1, "0.1" },
		{ 1.0 / 3, "0.3333333333333333" },    /* 16 digits suffice */
		{ 0.1 + 0.2, "0.30000000000000004" }, /* 17 needed */
		{ 1e21, "1e+21" },
		{ 1e-300, "1e-300" },
		{ 123456789012.0, "123456789012" },
		{ -0.0, "-0" },
		{ 9007199254740993.0, "9007199254740992" },
		{ INFINITY, "+Inf" },
		{ -INFINITY, "-Inf" },
		{ NAN, "NaN" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ls_metrics *m = mk();
		ls_gauge *g = ls_gauge_vec_get(gauge(m, &(ls_metrics_desc){
			.name = "x", .help = "x" }), NULL);
		ls_gauge_set(g, cases[i].v);
		char *text = render(m);
		char want[128];
		snprintf(want, sizeof want, "\nx %s\n", cases[i].text);
		ck_assert_msg(strstr(text, want) != NULL, "%s not in:\n%s", want, text);
		free(text);
		ls_metrics_free(m);
	}
}
END_TEST

/* Every double reads back bit for bit from its rendering. */
START_TEST(test_float_round_trip)
{
	ls_metrics *m = mk();
	ls_gauge_vec *v = gauge(m, &(ls_metrics_desc){
		.name = "r", .help = "r", .labels = { "i" }, .max_series = 2000 });
	uint64_t x = 0x9e3779b97f4a7c15u;
	double vals[1000];
	for (size_t i = 0; i < 1000; i++) {
		double d;
		do {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(&d, &x, sizeof d);
		} while (!isfinite(d));
		vals[i] = d;
		char lbl[16];
		snprintf(lbl, sizeof lbl, "%zu", i);
		ls_gauge_set(ls_gauge_vec_get(v, (const char *[]){ lbl }), d);
	}
	char *text = render(m);
	for (size_t i = 0; i < 1000; i++) {
		char s[32];
		snprintf(s, sizeof s, "r{i=\"%zu\"}", i);
		double got = sample(text, s);
		ck_assert_msg(memcmp(&got, &vals[i], sizeof got) == 0,
			      "%.17g rendered as %.17g", vals[i], got);
	}
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- escaping ---- */

START_TEST(test_escaping)
{
	ls_metrics *m = mk();
	ls_counter_vec *v = counter(m, &(ls_metrics_desc){
		.name = "esc_total",
		.help = "Line one\nback\\slash \"quoted\" {braces}",
		.labels = { "v" } });
	ls_counter_inc(ls_counter_vec_get(v, (const char *[]){ "a\\b\"c\nd" }));
	ls_counter_inc(ls_counter_vec_get(v, (const char *[]){ "caf\xc3\xa9 {x=\"1\"}" }));
	ls_counter_inc(ls_counter_vec_get(v, (const char *[]){ "" }));
	char *text = render(m);
	ck_assert_str_eq(text,
		"# HELP esc_total Line one\\nback\\\\slash \"quoted\" {braces}\n"
		"# TYPE esc_total counter\n"
		"esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
		"esc_total{v=\"caf\xc3\xa9 {x=\\\"1\\\"}\"} 1\n"
		"esc_total{v=\"\"} 1\n"
		DROPPED_HEAD);
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- validation ---- */

static void expect_reject(ls_metrics *m, ls_metrics_type type,
			  const ls_metrics_desc *d, const char *why)
{
	char err[256] = "";
	void *got;
	if (type == LS_METRICS_COUNTER)
		got = ls_metrics_counter(m, d, err, sizeof err);
	else if (type == LS_METRICS_GAUGE)
		got = ls_metrics_gauge(m, d, err, sizeof err);
	else
		got = ls_metrics_histogram(m, d, err, sizeof err);
	ck_assert_msg(got == NULL, "%s: accepted", why);
	ck_assert_msg(err[0] != '\0', "%s: no reason given", why);
}

START_TEST(test_invalid_names)
{
	ls_metrics *m = mk();
	const ls_metrics_type C = LS_METRICS_COUNTER, G = LS_METRICS_GAUGE,
			      H = LS_METRICS_HISTOGRAM;
	expect_reject(m, C, NULL, "no desc");
	expect_reject(m, C, &(ls_metrics_desc){ .help = "h" }, "NULL name");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "", .help = "h" }, "empty name");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "1abc", .help = "h" }, "digit first");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "a-b", .help = "h" }, "dash");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "a b", .help = "h" }, "space");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "caf\xc3\xa9", .help = "h" }, "non-ASCII");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok" }, "NULL help");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "" }, "empty help");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "bad \xff" }, "non-UTF-8 help");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "1x" } }, "label digit first");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "__x" } }, "label __ prefix");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "a:b" } }, "label colon");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "" } }, "empty label");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "a", "b", "a" } }, "duplicate label");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "a", NULL, "b" } }, "label gap");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .labels = { "le" } }, "le on a histogram");
	expect_reject(m, G, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = (const double[]){ 1 }, .nbuckets = 1 }, "buckets on a gauge");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = (const double[]){ 1, 1 }, .nbuckets = 2 }, "equal bounds");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = (const double[]){ 2, 1 }, .nbuckets = 2 }, "descending bounds");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = (const double[]){ 1, NAN }, .nbuckets = 2 }, "NaN bound");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = (const double[]){ -INFINITY, 1 }, .nbuckets = 2 }, "-Inf bound");
	expect_reject(m, H, &(ls_metrics_desc){ .name = "ok", .help = "h", .buckets = NULL, .nbuckets = 2 }, "NULL buckets");
	expect_reject(NULL, C, &(ls_metrics_desc){ .name = "ok", .help = "h" }, "NULL registry");

	/* valid edge cases */
	counter(m, &(ls_metrics_desc){ .name = "_a:b_total", .help = "h" });
	counter(m, &(ls_metrics_desc){ .name = "le_total", .help = "h", .labels = { "le", "_x", "B9" } });
	/* names taken, by a family or by a histogram's series */
	expect_reject(m, G, &(ls_metrics_desc){ .name = "le_total", .help = "h" }, "same name");
	expect_reject(m, C, &(ls_metrics_desc){ .name = "leadscore_metrics_series_dropped_total", .help = "h" }, "self-metric name");
	histogram(m, &(ls_metrics_desc){ .name = "lat", .help = "h" });
	expect_reject(m, C, &(ls_metrics_desc){ .name = "lat_count", .help = "h" }, "a histogram's _count");
	expect_reject(m, G, &(ls_metrics_desc){ .name = "lat_bucket", .help = "h" }, "a histogram's _bucket");
	gauge(m, &(ls_metrics_desc){ .name = "size_sum", .help = "h" });
	expect_reject(m, H, &(ls_metrics_desc){ .name = "size", .help = "h" }, "histogram over a _sum");
	gauge(m, &(ls_metrics_desc){ .name = "lat_counts", .help = "h" }); /* no clash */

	char err[128] = "";
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_HISTOGRAM,
		&(ls_metrics_desc){ .name = "cb", .help = "h" }, NULL, NULL, err, sizeof err), -1);
	ck_assert_str_ne(err, "");
	err[0] = '\0';
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_GAUGE,
		&(ls_metrics_desc){ .name = "cb", .help = "h" }, NULL, NULL, err, sizeof err), -1);
	ck_assert_str_ne(err, "");

	/* the reason names the problem */
	ls_metrics_counter(m, &(ls_metrics_desc){ .name = "ok", .help = "h",
		.labels = { "__x" } }, err, sizeof err);
	ck_assert_ptr_nonnull(strstr(err, "__x"));
	/* err may be NULL */
	ck_assert_ptr_null(ls_metrics_counter(m, &(ls_metrics_desc){ .name = "1" }, NULL, 0));

	/* rejected families leave no trace in the output */
	char *text = render(m);
	ck_assert_ptr_null(strstr(text, " ok "));
	ck_assert_uint_eq(count_lines_starting(text, "# TYPE "), 6);
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- series cap and NULL handles ---- */

START_TEST(test_series_cap)
{
	ls_metrics *m = mk();
	ls_counter_vec *v = counter(m, &(ls_metrics_desc){
		.name = "capped_total", .help = "h", .labels = { "k" },
		.max_series = 2 });
	ls_counter *a = ls_counter_vec_get(v, (const char *[]){ "a" });
	ls_counter *b = ls_counter_vec_get(v, (const char *[]){ "b" });
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_null(ls_counter_vec_get(v, (const char *[]){ "c" }));
	ck_assert_ptr_null(ls_counter_vec_get(v, (const char *[]){ "d" }));
	/* existing series are still found past the cap */
	ck_assert_ptr_eq(ls_counter_vec_get(v, (const char *[]){ "a" }), a);
	ls_counter_inc(a);

	/* refused values, also counted */
	ls_gauge_vec *g = gauge(m, &(ls_metrics_desc){
		.name = "g", .help = "h", .labels = { "k", "l" } });
	ck_assert_ptr_null(ls_gauge_vec_get(g, (const char *[]){ "x", NULL }));
	ck_assert_ptr_null(ls_gauge_vec_get(g, NULL));
	ck_assert_ptr_null(ls_gauge_vec_get(g, (const char *[]){ "x", "\xc3\x28" }));
	ck_assert_ptr_null(ls_gauge_vec_get(g, (const char *[]){ "\xed\xa0\x80", "y" })); /* surrogate */
	ck_assert_ptr_null(ls_gauge_vec_get(g, (const char *[]){ "\xc0\xaf", "y" }));     /* overlong */

	/* NULL families and handles */
	ck_assert_ptr_null(ls_counter_vec_get(NULL, NULL));
	ck_assert_ptr_null(ls_gauge_vec_get(NULL, NULL));
	ck_assert_ptr_null(ls_histogram_vec_get(NULL, NULL));
	ls_counter_inc(NULL);
	ls_counter_add(NULL, 5);
	ls_counter_add_double(NULL, 1.5);
	ls_gauge_set(NULL, 1);
	ls_gauge_add(NULL, 1);
	ls_gauge_inc(NULL);
	ls_gauge_dec(NULL);
	ls_histogram_observe(NULL, 1);
	ck_assert_double_eq(ls_counter_value(NULL), 0);
	ck_assert_double_eq(ls_gauge_value(NULL), 0);
	ck_assert_uint_eq(ls_histogram_count(NULL), 0);
	ck_assert_double_eq(ls_histogram_sum(NULL), 0);
	ls_metrics_emit(NULL, NULL, 1);
	ck_assert_ptr_null(ls_metrics_render(NULL, NULL));
	ls_metrics_free(NULL);

	char *text = render(m);
	ck_assert_str_eq(text,
		"# HELP capped_total h\n"
		"# TYPE capped_total counter\n"
		"capped_total{k=\"a\"} 1\n"
		"capped_total{k=\"b\"} 0\n"
		"# HELP g h\n"
		"# TYPE g gauge\n"
		DROPPED_HEAD
		"leadscore_metrics_series_dropped_total{metric=\"capped_total\"} 2\n"
		"leadscore_metrics_series_dropped_total{metric=\"g\"} 5\n");
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* Many series: the lookup table grows and still finds every one. */
START_TEST(test_many_series)
{
	ls_metrics *m = mk();
	ls_counter_vec *v = counter(m, &(ls_metrics_desc){
		.name = "many_total", .help = "h", .labels = { "a", "b" },
		.max_series = 5000 });
	static ls_counter *h[5000];
	for (size_t i = 0; i < 5000; i++) {
		char x[16], y[16];
		snprintf(x, sizeof x, "%zu", i / 7);
		snprintf(y, sizeof y, "%zu", i % 7);
		h[i] = ls_counter_vec_get(v, (const char *[]){ x, y });
		ck_assert_ptr_nonnull(h[i]);
		ls_counter_add(h[i], i);
	}
	/* ("1","23") and ("12","3") are different series */
	ls_counter_vec *w = counter(m, &(ls_metrics_desc){
		.name = "split_total", .help = "h", .labels = { "a", "b" } });
	ck_assert_ptr_ne(ls_counter_vec_get(w, (const char *[]){ "1", "23" }),
			 ls_counter_vec_get(w, (const char *[]){ "12", "3" }));
	for (size_t i = 0; i < 5000; i++) {
		char x[16], y[16];
		snprintf(x, sizeof x, "%zu", i / 7);
		snprintf(y, sizeof y, "%zu", i % 7);
		ck_assert_ptr_eq(ls_counter_vec_get(v, (const char *[]){ x, y }), h[i]);
		ck_assert_double_eq(ls_counter_value(h[i]), (double)i);
	}
	ck_assert_ptr_null(ls_counter_vec_get(v, (const char *[]){ "new", "x" }));
	char *text = render(m);
	ck_assert_uint_eq(count_lines_starting(text, "many_total{"), 5000);
	/* creation order */
	ck_assert_ptr_nonnull(strstr(text, "many_total{a=\"0\",b=\"0\"} 0\nmany_total{a=\"0\",b=\"1\"} 1\n"));
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- callbacks ---- */

typedef struct lag_src {
	int calls;
	int partitions;
} lag_src;

static void collect_lag(ls_metrics_sink *sink, void *arg)
{
	lag_src *src = arg;
	src->calls++;
	for (int p = 0; p < src->partitions; p++) {
		char part[16];
		snprintf(part, sizeof part, "%d", p);
		ls_metrics_emit(sink, (const char *[]){ "events.web", part },
				(double)(p * 10));
	}
}

static void collect_memory(ls_metrics_sink *sink, void *arg)
{
	(void)arg;
	ls_metrics_emit(sink, NULL, 1048576);
}

static void collect_nothing(ls_metrics_sink *sink, void *arg)
{
	(void)sink;
	(void)arg;
}

static void collect_bad(ls_metrics_sink *sink, void *arg)
{
	(void)arg;
	ls_metrics_emit(sink, NULL, 1);                       /* no values */
	ls_metrics_emit(sink, (const char *[]){ "\xff" }, 2); /* bad UTF-8 */
	ls_metrics_emit(sink, (const char *[]){ "ok\"" }, 3);
}

START_TEST(test_callbacks)
{
	ls_metrics *m = mk();
	char err[256] = "";
	lag_src lag = { .calls = 0, .partitions = 3 };
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_GAUGE, &(ls_metrics_desc){
		.name = "kafka_lag", .help = "Consumer lag in messages.",
		.labels = { "topic", "partition" }, .max_series = 2 },
		collect_lag, &lag, err, sizeof err), 0);
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_GAUGE, &(ls_metrics_desc){
		.name = "redis_used_memory_bytes", .help = "Redis memory." },
		collect_memory, NULL, err, sizeof err), 0);
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_COUNTER, &(ls_metrics_desc){
		.name = "down_total", .help = "Source unavailable." },
		collect_nothing, NULL, err, sizeof err), 0);
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_COUNTER, &(ls_metrics_desc){
		.name = "bad_total", .help = "Bad emits.", .labels = { "x" } },
		collect_bad, NULL, err, sizeof err), 0);
	/* names are checked as for other families */
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_GAUGE, &(ls_metrics_desc){
		.name = "kafka_lag", .help = "again" }, collect_nothing, NULL, err, sizeof err), -1);

	char *text = render(m);
	ck_assert_int_eq(lag.calls, 1);
	/* the third partition is past the cap of 2; bad_total refused 2 */
	ck_assert_str_eq(text,
		"# HELP kafka_lag Consumer lag in messages.\n"
		"# TYPE kafka_lag gauge\n"
		"kafka_lag{topic=\"events.web\",partition=\"0\"} 0\n"
		"kafka_lag{topic=\"events.web\",partition=\"1\"} 10\n"
		"# HELP redis_used_memory_bytes Redis memory.\n"
		"# TYPE redis_used_memory_bytes gauge\n"
		"redis_used_memory_bytes 1048576\n"
		"# HELP down_total Source unavailable.\n"
		"# TYPE down_total counter\n"
		"# HELP bad_total Bad emits.\n"
		"# TYPE bad_total counter\n"
		"bad_total{x=\"ok\\\"\"} 3\n"
		DROPPED_HEAD
		"leadscore_metrics_series_dropped_total{metric=\"kafka_lag\"} 1\n"
		"leadscore_metrics_series_dropped_total{metric=\"bad_total\"} 2\n");
	free(text);

	/* computed afresh at every scrape; the refusals accumulate */
	lag.partitions = 1;
	text = render(m);
	ck_assert_int_eq(lag.calls, 2);
	ck_assert_uint_eq(count_lines_starting(text, "kafka_lag{"), 1);
	ck_assert_double_eq(sample(text, "leadscore_metrics_series_dropped_total{metric=\"kafka_lag\"}"), 1);
	ck_assert_double_eq(sample(text, "leadscore_metrics_series_dropped_total{metric=\"bad_total\"}"), 4);
	free(text);
	ls_metrics_free(m);
}
END_TEST

/* ---- process collector ---- */

static double cpu_rusage(void)
{
	struct rusage ru;
	ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

START_TEST(test_process)
{
	ls_metrics *m = mk();
	char err[256] = "";
	ck_assert_msg(ls_metrics_add_process(m, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(ls_metrics_add_process(m, err, sizeof err), -1);

	/* some CPU time to account for */
	volatile double burn = 0;
	for (long i = 0; i < 20000000; i++)
		burn += (double)i * 1e-9;
	(void)burn; /* read once, or clang's -Wunused-but-set-variable fails the build */

	double cpu0 = cpu_rusage();
	time_t now0 = time(NULL);
	char *text = render(m);
	time_t now1 = time(NULL);
	double cpu1 = cpu_rusage();

	ck_assert_ptr_nonnull(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	double cpu = sample(text, "process_cpu_seconds_total");
	double open = sample(text, "process_open_fds");
	double max = sample(text, "process_max_fds");
	double vmem = sample(text, "process_virtual_memory_bytes");
	double rss = sample(text, "process_resident_memory_bytes");
	double start = sample(text, "process_start_time_seconds");
	ck_assert_ptr_nonnull(strstr(text, "# TYPE process_open_fds gauge\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE process_start_time_seconds gauge\n"));

	/* the kernel's two views of CPU time agree (ticks truncate /proc) */
	ck_assert_msg(cpu > 0 && cpu >= cpu0 - 0.05 && cpu <= cpu1 + 0.05,
		      "cpu %g not within [%g, %g] of getrusage", cpu, cpu0, cpu1);
	ck_assert_double_gt(open, 0);
	struct rlimit rl;
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_double_eq(max, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	ck_assert_double_le(open, max);
	long page = sysconf(_SC_PAGESIZE);
	ck_assert_double_gt(rss, 0);
	ck_assert_double_eq(fmod(rss, (double)page), 0);
	ck_assert_double_ge(vmem, rss);
	/* started no later than now; btime is whole seconds, hence the slack */
	ck_assert_double_le(start, (double)now1 + 2);
	ck_assert_double_ge(start, (double)now0 - 3600);
	free(text);

	/* a new descriptor and 64 MiB of touched memory show up */
	int fd = dup(STDERR_FILENO);
	ck_assert_int_ge(fd, 0);
	size_t big = 64u << 20;
	char *mem = malloc(big);
	ck_assert_ptr_nonnull(mem);
	memset(mem, 1, big);
	text = render(m);
	ck_assert_double_eq(sample(text, "process_open_fds"), open + 1);
	ck_assert_double_ge(sample(text, "process_resident_memory_bytes"),
			    rss + (double)(big / 2));
	ck_assert_double_ge(sample(text, "process_virtual_memory_bytes"),
			    vmem + (double)(big / 2));
	free(text);
	ck_assert_int_eq(mem[big - 1], 1);
	free(mem);
	close(fd);
	ls_metrics_free(m);
}
END_TEST

/* ---- concurrency ---- */

#define N_THREADS 4
#define N_ITER 100000

typedef struct conc {
	pthread_barrier_t go;
	ls_counter_vec *cv;
	ls_gauge_vec *gv;
	ls_histogram_vec *hv;
	ls_counter *c[N_THREADS];
	ls_counter *cd[N_THREADS];
	ls_gauge *g[N_THREADS];
	ls_histogram *h[N_THREADS];
	int moved[N_THREADS]; /* a later get returned another handle */
	_Atomic int done;
	ls_metrics *m;
	int renders;
	int render_failed;
} conc;

typedef struct conc_arg {
	conc *s;
	int i;
} conc_arg;

static void *conc_worker(void *p)
{
	conc_arg *a = p;
	conc *s = a->s;
	int i = a->i;
	pthread_barrier_wait(&s->go);
	/* all threads create the same series at once */
	const char *const shared[] = { "shared", "x" };
	s->c[i] = ls_counter_vec_get(s->cv, shared);
	s->cd[i] = ls_counter_vec_get(s->cv, (const char *[]){ "shared", "double" });
	s->g[i] = ls_gauge_vec_get(s->gv, shared);
	s->h[i] = ls_histogram_vec_get(s->hv, shared);
	for (int k = 0; k < N_ITER; k++) {
		ls_counter_inc(s->c[i]);
		ls_counter_add_double(s->cd[i], 0.5);
		ls_gauge_add(s->g[i], (k & 1) ? 3.0 : -1.0);
		ls_histogram_observe(s->h[i], (k & 1) ? 0.25 : 4.0);
		if (k % 10000 == 0) {
			if (ls_counter_vec_get(s->cv, shared) != s->c[i] ||
			    ls_histogram_vec_get(s->hv, shared) != s->h[i])
				s->moved[i] = 1;
			/* other series appear while the shared ones are hot */
			char lbl[32];
			snprintf(lbl, sizeof lbl, "t%d-%d", i, k);
			ls_counter_inc(ls_counter_vec_get(s->cv, (const char *[]){ lbl, "y" }));
		}
	}
	return NULL;
}

static void *conc_render(void *p)
{
	conc *s = p;
	pthread_barrier_wait(&s->go);
	while (!s->done) {
		char *t = ls_metrics_render(s->m, NULL);
		if (t == NULL)
			s->render_failed = 1;
		free(t);
		s->renders++;
	}
	return NULL;
}

START_TEST(test_concurrency)
{
	static conc s;
	memset(&s, 0, sizeof s);
	s.m = mk();
	s.cv = counter(s.m, &(ls_metrics_desc){ .name = "c_total", .help = "h",
		.labels = { "a", "b" } });
	s.gv = gauge(s.m, &(ls_metrics_desc){ .name = "g", .help = "h",
		.labels = { "a", "b" } });
	s.hv = histogram(s.m, &(ls_metrics_desc){ .name = "h", .help = "h",
		.labels = { "a", "b" }, .buckets = (const double[]){ 1 }, .nbuckets = 1 });
	ck_assert_int_eq(pthread_barrier_init(&s.go, NULL, N_THREADS + 1), 0);
	pthread_t t[N_THREADS], r;
	conc_arg args[N_THREADS];
	for (int i = 0; i < N_THREADS; i++) {
		args[i] = (conc_arg){ &s, i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, conc_worker, &args[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&r, NULL, conc_render, &s), 0);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(t[i], NULL);
	s.done = 1;
	pthread_join(r, NULL);
	pthread_barrier_destroy(&s.go);

	for (int i = 0; i < N_THREADS; i++) {
		ck_assert_ptr_nonnull(s.c[i]);
		ck_assert_ptr_eq(s.c[i], s.c[0]);
		ck_assert_ptr_eq(s.cd[i], s.cd[0]);
		ck_assert_ptr_eq(s.g[i], s.g[0]);
		ck_assert_ptr_eq(s.h[i], s.h[0]);
		ck_assert_int_eq(s.moved[i], 0);
	}
	ck_assert_int_eq(s.render_failed, 0);
	ck_assert_int_ge(s.renders, 1);
	const double n = (double)N_THREADS * N_ITER;
	ck_assert_double_eq(ls_counter_value(s.c[0]), n);
	ck_assert_double_eq(ls_counter_value(s.cd[0]), n * 0.5);
	ck_assert_double_eq(ls_gauge_value(s.g[0]), n / 2 * 3.0 - n / 2);
	ck_assert_uint_eq(ls_histogram_count(s.h[0]), (uint64_t)n);
	ck_assert_double_eq(ls_histogram_sum(s.h[0]), n / 2 * 0.25 + n / 2 * 4.0);

	char *text = render(s.m);
	ck_assert_uint_eq(count_lines_starting(text, "c_total{a=\"shared\",b=\"x\"}"), 1);
	ck_assert_uint_eq(count_lines_starting(text, "c_total{a=\"shared\",b=\"double\"}"), 1);
	ck_assert_uint_eq(count_lines_starting(text, "g{"), 1);
	ck_assert_uint_eq(count_lines_starting(text, "h_count{"), 1);
	ck_assert_uint_eq(count_lines_starting(text, "c_total{"), 2 + N_THREADS * N_ITER / 10000);
	ck_assert_double_eq(sample(text, "c_total{a=\"shared\",b=\"x\"}"), n);
	ck_assert_double_eq(sample(text, "h_bucket{a=\"shared\",b=\"x\",le=\"1\"}"), n / 2);
	ck_assert_double_eq(sample(text, "h_bucket{a=\"shared\",b=\"x\",le=\"+Inf\"}"), n);
	ck_assert_ptr_null(strstr(text, "leadscore_metrics_series_dropped_total{"));
	free(text);
	ls_metrics_free(s.m);
}
END_TEST

/* ---- promtool ---- */

/*
 * Run `promtool check metrics` with text on stdin; its exit status, and
 * everything it printed in *out (caller frees). A missing promtool fails
 * the test: CI installs it (Debian package prometheus).
 */
static int promtool(const char *text, char **out)
{
	char in_path[] = "/tmp/ls-metrics-in-XXXXXX";
	char out_path[] = "/tmp/ls-metrics-out-XXXXXX";
	int in_fd = mkstemp(in_path);
	int out_fd = mkstemp(out_path);
	ck_assert_int_ge(in_fd, 0);
	ck_assert_int_ge(out_fd, 0);
	size_t len = strlen(text);
	ck_assert_int_eq(write(in_fd, text, len), (ssize_t)len);
	close(in_fd);
	close(out_fd);

	char cmd[256];
	snprintf(cmd, sizeof cmd,
		 "command -v promtool >/dev/null 2>&1 || exit 127; "
		 "exec promtool check metrics <%s >%s 2>&1", in_path, out_path);
	int st = system(cmd);
	FILE *f = fopen(out_path, "r");
	ck_assert_ptr_nonnull(f);
	char *buf = calloc(1, 65536);
	ck_assert_ptr_nonnull(buf);
	size_t n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	unlink(in_path);
	unlink(out_path);
	ck_assert_msg(st != -1 && WIFEXITED(st), "cannot run promtool via sh");
	int rc = WEXITSTATUS(st);
	ck_assert_msg(rc != 127,
		      "promtool not found on PATH: install the Debian package "
		      "'prometheus' (listed in scripts/debian-packages.txt)");
	*out = buf;
	return rc;
}

START_TEST(test_promtool)
{
	ls_metrics *m = mk();
	char err[256] = "";
	ck_assert_msg(ls_metrics_add_process(m, err, sizeof err) == 0, "%s", err);
	ls_counter_vec *ev = counter(m, &(ls_metrics_desc){
		.name = "leadscore_events_total",
		.help = "Events consumed, by topic.\nSecond line \\ with a backslash.",
		.labels = { "topic", "partition" } });
	ls_counter_add(ls_counter_vec_get(ev, (const char *[]){ "events.web", "0" }), 42);
	ls_counter_inc(ls_counter_vec_get(ev, (const char *[]){ "we\"ird\\\n", "1" }));
	ls_counter_inc(ls_counter_vec_get(counter(m, &(ls_metrics_desc){
		.name = "leadscore_batches_total", .help = "Batches." }), NULL));
	ls_gauge_set(ls_gauge_vec_get(gauge(m, &(ls_metrics_desc){
		.name = "leadscore_model_auc_ratio", .help = "Rolling AUC.",
		.labels = { "model" } }), (const char *[]){ "conversion" }), 0.91);
	ls_gauge_set(ls_gauge_vec_get(gauge(m, &(ls_metrics_desc){
		.name = "leadscore_watermark_lag_seconds", .help = "Event-time lag." }),
		NULL), INFINITY);
	gauge(m, &(ls_metrics_desc){ .name = "leadscore_unused_ratio",
		.help = "Never set.", .labels = { "x" } });
	ls_histogram_vec *hv = histogram(m, &(ls_metrics_desc){
		.name = "leadscore_batch_duration_seconds",
		.help = "Time to process one batch.", .labels = { "stage" },
		.buckets = (const double[]){ 0.001, 0.01, 0.1, 1, 10 }, .nbuckets = 5 });
	ls_histogram *h = ls_histogram_vec_get(hv, (const char *[]){ "commit" });
	ls_histogram_observe(h, 0.004);
	ls_histogram_observe(h, 0.1);
	ls_histogram_observe(h, 30);
	ls_histogram_observe(ls_histogram_vec_get(histogram(m, &(ls_metrics_desc){
		.name = "leadscore_scrape_seconds", .help = "Default buckets." }),
		NULL), 0.02);
	lag_src lag = { .calls = 0, .partitions = 3 };
	ck_assert_int_eq(ls_metrics_callback(m, LS_METRICS_GAUGE, &(ls_metrics_desc){
		.name = "leadscore_consumer_lag_messages", .help = "Lag.",
		.labels = { "topic", "partition" }, .max_series = 2 },
		collect_lag, &lag, err, sizeof err), 0);
	/* a refusal, so the self-metric has a sample */
	ck_assert_ptr_null(ls_counter_vec_get(ev, (const char *[]){ NULL, NULL }));

	char *text = render(m);
	ck_assert_ptr_nonnull(strstr(text, "\nprocess_resident_memory_bytes "));
	ck_assert_ptr_nonnull(strstr(text, "\nleadscore_batch_duration_seconds_bucket{stage=\"commit\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "\nleadscore_metrics_series_dropped_total{metric=\"leadscore_consumer_lag_messages\"} 1\n"));
	char *out = NULL;
	int rc = promtool(text, &out);
	ck_assert_msg(rc == 0 && out[0] == '\0',
		      "promtool check metrics: exit %d, output:\n%s\ninput:\n%s", rc, out, text);
	free(out);
	free(text);
	ls_metrics_free(m);

	/* control: the check does see problems (a counter without _total) */
	rc = promtool("# HELP foo Foo.\n# TYPE foo counter\nfoo 1\n", &out);
	ck_assert_int_ne(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "_total"));
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_render_exact);
	tcase_add_test(tc, test_default_buckets);
	tcase_add_test(tc, test_float_spelling);
	tcase_add_test(tc, test_float_round_trip);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_invalid_names);
	tcase_add_test(tc, test_series_cap);
	tcase_add_test(tc, test_many_series);
	tcase_add_test(tc, test_callbacks);
	tcase_add_test(tc, test_process);
	tcase_add_test(tc, test_concurrency);
	tcase_add_test(tc, test_promtool);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return ls_test_run(s, CK_NORMAL);
}
