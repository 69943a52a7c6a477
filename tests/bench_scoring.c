/*
 * bench_scoring.c - leadscore-bench-scoring: CPU cost of scoring one event.
 *
 * The models library alone, no broker, no Redis. Setup (not timed):
 *   - L leads (--leads, default 10,000) built by applying a seeded stream
 *     of 10 events per lead spread over the 7 days before a fixed time,
 *     with the mix of leadscore-bench (42 % email, 42 % web, 12 % call,
 *     2 % outcome, 2 % profile) and the default feature set (55 values);
 *   - an FTRL model with the default parameters whose dense features are
 *     the 55 value names, trained on 5,000 labelled examples (labels drawn
 *     from a logistic function of the lead's calls, web visits, emails and
 *     industry), so weights and standardisation statistics are non-zero;
 *   - a second stream of K events (--iterations, default 200,000) that
 *     continues the first one in time, each for a random lead.
 * Then each repetition (--repetitions, default 7) restores the leads from
 * their blobs (not timed) and times, each over the K events of the second
 * stream with one clock_gettime(CLOCK_MONOTONIC) pair around the loop:
 *   apply      ls_lead_apply of the event to its lead (the window update)
 *   features   ls_lead_features of that lead at its watermark (55 values)
 *   build      ls_ftrl_example_build_resolved: the 55 values (dense
 *              indices resolved once, as the daemon's scorer does) and the
 *              profile metrics (looked up by name) as numerics, the profile attributes and the event's
 *              page_category as categoricals, page_category x industry
 *   predict    ls_ftrl_predict
 *   explain    ls_ftrl_explain (top 3 positive and negative factors)
 *   learn      ls_ftrl_learn (on a copy of the model, so every repetition
 *              starts from the same weights)
 *   encode     ls_lead_encode of the lead into a reused buffer
 *   decode     ls_lead_decode of the lead's blob, then ls_lead_free (the
 *              daemon frees what it decodes, so the pair is the real cost)
 *   score      apply + features + build + predict + explain in one loop,
 *              event by event, as the daemon would run them
 *   score_prefetch  the same loop with ls_lead_prefetch() of the lead 8
 *              events ahead (struct) and 4 ahead (arrays): what the hint
 *              saves when leads are not in the CPU caches
 * predict, explain and learn cycle over a pool of min(K, L) examples built
 * from the first events of the second stream. Every figure is the median
 * ns per event over the repetitions, with the min and max as the spread;
 * shares divide each step of the score path by the sum of those steps, so
 * they hold across machines and loads better than the bare times.
 *
 * Output: one name=value line per figure. Volatile sinks keep the
 * compiler from dropping the measured work.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_event.h"
#include "ls_ftrl.h"
#include "ls_lead.h"
#include "ls_testutil.h"
#include "ls_window.h"

#define EVENTS_PER_LEAD 10
#define TRAIN_EXAMPLES 5000
#define MAX_REPETITIONS 101
#define ID_LEN 24
/* 2026-11-23T00:00:00Z: a fixed clock, so every run sees the same data */
#define T0_MS INT64_C(1795392000000)

enum step {
	STEP_APPLY,
	STEP_FEATURES,
	STEP_BUILD,
	STEP_PREDICT,
	STEP_EXPLAIN,
	STEP_LEARN,
	STEP_ENCODE,
	STEP_DECODE,
	STEP_SCORE,
	STEP_SCORE_PREFETCH,
	STEP__COUNT
};

static const char *const step_names[STEP__COUNT] = {
	"apply", "features", "build", "predict", "explain",
	"learn", "encode", "decode_free", "score_event", "score_event_prefetch",
};

static volatile double sink_d;
static volatile uint64_t sink_u;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	return ls_test_xorshift64(&rng_state);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char *const categories[] = { "pricing", "product", "docs", "blog", "careers" };
static const char *const industries[] = { "saas", "retail", "finance", "health" };
static const char *const countries[] = { "us", "de", "fr", "gb", "in", "br" };

/* A stream of events with the storage their strings and profile maps use. */
typedef struct stream {
	size_t n;
	ls_event *ev;
	uint32_t *lead;     /* index of the event's lead */
	char *ids;          /* n x ID_LEN */
	ls_attribute *attr; /* n x 2 */
	ls_metric *met;     /* n x 1 */
} stream;

static void stream_free(stream *s)
{
	free(s->ev);
	free(s->lead);
	free(s->ids);
	free(s->attr);
	free(s->met);
	memset(s, 0, sizeof *s);
}

/*
 * n events numbered from first, one every step_ms from start plus up to a
 * minute of jitter, each for a random one of leads (the mix of
 * leadscore-bench). Returns false when out of memory.
 */
static bool stream_make(stream *s, size_t n, size_t first, size_t leads,
			int64_t start, int64_t step_ms)
{
	s->n = n;
	s->ev = calloc(n, sizeof *s->ev);
	s->lead = calloc(n, sizeof *s->lead);
	s->ids = calloc(n, ID_LEN);
	s->attr = calloc(n * 2, sizeof *s->attr);
	s->met = calloc(n, sizeof *s->met);
	if (s->ev == NULL || s->lead == NULL || s->ids == NULL ||
	    s->attr == NULL || s->met == NULL) {
		stream_free(s);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		ls_event *ev = &s->ev[i];
		char *id = s->ids + i * ID_LEN;
		snprintf(id, ID_LEN, "ev-%zu", first + i);
		s->lead[i] = (uint32_t)(rnd() % leads);
		ev->event_id = id;
		ev->lead_id = "lead"; /* not read by the models library */
		ev->ts = start + (int64_t)i * step_ms + (int64_t)(rnd() % 60000);
		unsigned r = (unsigned)(rnd() % 100);
		if (r < 42) {
			ev->source = LS_SOURCE_EMAIL;
			ev->u.email.type = (ls_email_type)(rnd() % 5);
			ev->u.email.campaign_id = rnd() % 2 ? "spring" : "autumn";
		} else if (r < 84) {
			ev->source = LS_SOURCE_WEB;
			ev->u.web.type = rnd() % 10 == 0 ? LS_WEB_FORM_SUBMIT : LS_WEB_PAGE_VIEW;
			ev->u.web.url = "/pricing";
			ev->u.web.page_category = categories[rnd() % 5];
			ev->u.web.has_duration_ms = true;
			ev->u.web.duration_ms = (int64_t)(rnd() % 120000);
			ev->u.web.session_id = rnd() % 2 ? "s-1" : "s-2";
		} else if (r < 96) {
			ev->source = LS_SOURCE_CALL;
			ev->u.call.direction = LS_CALL_OUTBOUND;
			ev->u.call.outcome = (ls_call_outcome)(rnd() % 5);
			ev->u.call.duration_s = (int64_t)(rnd() % 900);
			ev->u.call.has_sentiment = true;
			ev->u.call.sentiment = (double)(rnd() % 200) / 100.0 - 1.0;
		} else if (r < 98) {
			ev->source = LS_SOURCE_OUTCOME;
			ev->u.outcome.outcome = (ls_outcome_type)(rnd() % 5);
		} else {
			ls_attribute *a = &s->attr[i * 2];
			ls_metric *m = &s->met[i];
			ev->source = LS_SOURCE_PROFILE;
			a[0].key = "industry";
			a[0].value = industries[rnd() % 4];
			a[1].key = "country";
			a[1].value = countries[rnd() % 6];
			m->key = "employees";
			m->value = (double)(rnd() % 5000);
			ev->u.profile.n_attributes = 2;
			ev->u.profile.attributes = a;
			ev->u.profile.n_metrics = 1;
			ev->u.profile.metrics = m;
		}
	}
	return true;
}

/* Scratch arrays for one ls_ftrl_input, reused for every event. */
typedef struct input_buf {
	size_t n_values;         /* window feature values */
	const char **num_names;  /* n_values + LS_LEAD_DEFAULT_MAX_METRICS */
	double *num_values;
	int32_t *num_dense;      /* dense indices: values resolved, metrics not */
	const char **cat_keys;   /* 1 + LS_LEAD_DEFAULT_MAX_ATTRIBUTES */
	const char **cat_values;
} input_buf;

static const ls_ftrl_cross cross = { "page_category", "industry" };

/*
 * Fill in from the lead's feature values, its profile and the event's page
 * category: what the daemon hands the builder for one event.
 */
static void input_fill(input_buf *b, ls_ftrl_input *in, const ls_lead *lead,
		       const ls_event *ev, const double *values)
{
	memcpy(b->num_values, values, b->n_values * sizeof *values);
	size_t n_num = b->n_values;
	const char *key;
	double mv;
	for (size_t i = 0; n_num < b->n_values + LS_LEAD_DEFAULT_MAX_METRICS &&
			   ls_lead_metric_at(lead, i, &key, &mv); i++) {
		b->num_names[n_num] = key;
		b->num_values[n_num++] = mv;
	}
	size_t n_cat = 0;
	if (ev->source == LS_SOURCE_WEB && ev->u.web.page_category != NULL) {
		b->cat_keys[n_cat] = "page_category";
		b->cat_values[n_cat++] = ev->u.web.page_category;
	}
	const char *value;
	for (size_t i = 0; n_cat < 1 + LS_LEAD_DEFAULT_MAX_ATTRIBUTES &&
			   ls_lead_attribute_at(lead, i, &key, &value); i++) {
		b->cat_keys[n_cat] = key;
		b->cat_values[n_cat++] = value;
	}
	in->num_names = b->num_names;
	in->num_values = b->num_values;
	in->n_num = n_num;
	in->cat_keys = b->cat_keys;
	in->cat_values = b->cat_values;
	in->n_cat = n_cat;
	in->crosses = &cross;
	in->n_crosses = 1;
}

/* The synthetic ground truth the model learns. */
static int draw_label(const ls_lead *lead)
{
	double calls = (double)ls_lead_event_count(lead, LS_SOURCE_CALL);
	double web = (double)ls_lead_event_count(lead, LS_SOURCE_WEB);
	double email = (double)ls_lead_event_count(lead, LS_SOURCE_EMAIL);
	const char *industry = ls_lead_attribute(lead, "industry");
	double s = -2.0 + 0.6 * calls + 0.15 * web - 0.1 * email;
	if (industry != NULL && strcmp(industry, "saas") == 0)
		s += 0.8;
	double p = 1.0 / (1.0 + exp(-s));
	return (double)(rnd() % 1000000) / 1e6 < p ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Replace leads[0..n) with leads decoded from blobs; false on failure. */
static bool restore(ls_lead **leads, const ls_buf *blobs, size_t n,
		    const ls_lead_conf *conf)
{
	char err[256];
	for (size_t j = 0; j < n; j++) {
		ls_lead_free(leads[j]);
		leads[j] = NULL;
		int rc = ls_lead_decode(conf, blobs[j].data, blobs[j].len, &leads[j],
					err, sizeof err);
		if (rc != LS_LEAD_APPLIED) {
			fprintf(stderr, "bench: decode: %s: %s\n", ls_lead_result_str(rc), err);
			return false;
		}
	}
	return true;
}

/* blobs[j] = leads[j]'s blob; false on failure. */
static bool snapshot(ls_lead *const *leads, ls_buf *blobs, size_t n,
		     const ls_lead_conf *conf)
{
	for (size_t j = 0; j < n; j++) {
		int rc = ls_lead_encode(leads[j], conf, &blobs[j]);
		if (rc != LS_LEAD_APPLIED) {
			fprintf(stderr, "bench: encode: %s\n", ls_lead_result_str(rc));
			return false;
		}
	}
	return true;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: leadscore-bench-scoring [--leads N] [--iterations K] "
		   "[--repetitions R]\n"
		   "  --leads N        leads built before timing (default 10000)\n"
		   "  --iterations K   events timed per step and repetition "
		   "(default 200000)\n"
		   "  --repetitions R  repetitions, the median is reported "
		   "(default 7, at most %d)\n",
		MAX_REPETITIONS);
}

static bool parse_count(const char *s, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end != '\0' || v < 1 || v > max)
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	long n_leads = 10000, iterations = 200000, reps = 7;
	static const struct option opts[] = {
		{ "leads", required_argument, NULL, 'l' },
		{ "iterations", required_argument, NULL, 'k' },
		{ "repetitions", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "l:k:r:h", opts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case 'l':
			ok = parse_count(optarg, 10000000, &n_leads);
			break;
		case 'k':
			ok = parse_count(optarg, 100000000, &iterations);
			break;
		case 'r':
			ok = parse_count(optarg, MAX_REPETITIONS, &reps);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			ok = false;
			break;
		}
		if (!ok) {
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	const size_t L = (size_t)n_leads, K = (size_t)iterations;
	const size_t R = (size_t)reps;
	const size_t P = K < L ? K : L; /* example pool */
	int status = 1;
	char err[256] = "";

	ls_feature_set *set = NULL;
	ls_lead **leads = NULL;
	ls_buf *before = NULL, *after = NULL;
	ls_buf blob = { 0 };
	stream hist = { 0 }, timed = { 0 };
	ls_ftrl *model = NULL;
	const char **value_names = NULL;
	double *values = NULL, *out = NULL;
	ls_ftrl_example *pool = NULL;
	int *labels = NULL;
	ls_ftrl_example x;
	input_buf ib = { 0 };
	ls_ftrl_example_init(&x);

	size_t n_specs;
	const ls_feature_spec *specs = ls_features_default(&n_specs);
	set = ls_feature_set_new(specs, n_specs, err, sizeof err);
	if (set == NULL) {
		fprintf(stderr, "bench: feature set: %s\n", err);
		goto done;
	}
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	const size_t NV = set->n_values;

	leads = calloc(L, sizeof *leads);
	before = calloc(L, sizeof *before);
	after = calloc(L, sizeof *after);
	value_names = calloc(NV, sizeof *value_names);
	values = calloc(L * NV, sizeof *values);
	out = calloc(NV, sizeof *out);
	pool = calloc(P, sizeof *pool);
	labels = calloc(P, sizeof *labels);
	ib.n_values = NV;
	ib.num_names = calloc(NV + LS_LEAD_DEFAULT_MAX_METRICS, sizeof *ib.num_names);
	ib.num_values = calloc(NV + LS_LEAD_DEFAULT_MAX_METRICS, sizeof *ib.num_values);
	ib.num_dense = calloc(NV + LS_LEAD_DEFAULT_MAX_METRICS, sizeof *ib.num_dense);
	ib.cat_keys = calloc(1 + LS_LEAD_DEFAULT_MAX_ATTRIBUTES, sizeof *ib.cat_keys);
	ib.cat_values = calloc(1 + LS_LEAD_DEFAULT_MAX_ATTRIBUTES, sizeof *ib.cat_values);
	if (leads == NULL || before == NULL || after == NULL || value_names == NULL ||
	    values == NULL || out == NULL || pool == NULL || labels == NULL ||
	    ib.num_names == NULL || ib.num_values == NULL || ib.num_dense == NULL ||
	    ib.cat_keys == NULL ||
	    ib.cat_values == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		goto done;
	}
	for (size_t p = 0; p < P; p++)
		ls_ftrl_example_init(&pool[p]);
	if (ls_lead_feature_names(set, value_names, NV) != (int)NV) {
		fprintf(stderr, "bench: feature names\n");
		goto done;
	}
	memcpy(ib.num_names, value_names, NV * sizeof *value_names);

	/* The history: 10 events per lead over the 7 days before T0. */
	const size_t H = L * EVENTS_PER_LEAD;
	const int64_t step_ms = 7 * LS_WINDOW_MS_DAY / (int64_t)H > 0 ?
		7 * LS_WINDOW_MS_DAY / (int64_t)H : 1;
	if (!stream_make(&hist, H, 0, L, T0_MS - 7 * LS_WINDOW_MS_DAY, step_ms) ||
	    !stream_make(&timed, K, H, L, T0_MS, step_ms)) {
		fprintf(stderr, "bench: out of memory\n");
		goto done;
	}
	for (size_t j = 0; j < L; j++) {
		leads[j] = ls_lead_new(&conf);
		if (leads[j] == NULL) {
			fprintf(stderr, "bench: out of memory\n");
			goto done;
		}
	}
	for (size_t i = 0; i < H; i++) {
		int rc = ls_lead_apply(leads[hist.lead[i]], &conf, &hist.ev[i]);
		if (rc < 0) {
			fprintf(stderr, "bench: apply: %s\n", ls_lead_result_str(rc));
			goto done;
		}
	}
	if (!snapshot(leads, before, L, &conf))
		goto done;

	/* The model, trained on examples of the history's leads. */
	ls_ftrl_params params;
	ls_ftrl_params_default(&params);
	model = ls_ftrl_new(&params, value_names, NV, err, sizeof err);
	if (model == NULL) {
		fprintf(stderr, "bench: model: %s\n", err);
		goto done;
	}
	for (size_t i = 0; i < NV + LS_LEAD_DEFAULT_MAX_METRICS; i++)
		ib.num_dense[i] = i < NV ? (int32_t)ls_ftrl_dense_index(model, value_names[i])
					 : LS_FTRL_UNRESOLVED;
	for (size_t t = 0; t < TRAIN_EXAMPLES; t++) {
		size_t j = (size_t)(rnd() % L);
		ls_event ev = { .source = LS_SOURCE_WEB };
		ev.u.web.page_category = categories[rnd() % 5];
		ls_ftrl_input in;
		if (ls_lead_features(leads[j], &conf, LS_LEAD_AT_WATERMARK, out, NV) != (int)NV)
			goto done;
		input_fill(&ib, &in, leads[j], &ev, out);
		int rc = ls_ftrl_example_build(&x, model, &in);
		if (rc == LS_FTRL_OK)
			rc = ls_ftrl_learn(model, &x, draw_label(leads[j]), NULL);
		if (rc != LS_FTRL_OK) {
			fprintf(stderr, "bench: train: %s\n", ls_ftrl_result_str(rc));
			goto done;
		}
	}
	size_t nonzero = 0;
	for (size_t i = 0; i < ls_ftrl_dims(model); i++) {
		double z, n, w;
		if (ls_ftrl_coord(model, i, &z, &n, &w) && w != 0)
			nonzero++;
	}

	/*
	 * Warm-up (not timed): apply the timed stream once, keep the leads'
	 * state after it (blobs, feature values) and the example pool.
	 */
	size_t applied = 0;
	for (size_t i = 0; i < K; i++) {
		int rc = ls_lead_apply(leads[timed.lead[i]], &conf, &timed.ev[i]);
		if (rc < 0) {
			fprintf(stderr, "bench: apply: %s\n", ls_lead_result_str(rc));
			goto done;
		}
		applied += rc == LS_LEAD_APPLIED;
	}
	if (!snapshot(leads, after, L, &conf))
		goto done;
	size_t blob_bytes = 0;
	for (size_t j = 0; j < L; j++) {
		blob_bytes += after[j].len;
		if (ls_lead_features(leads[j], &conf, LS_LEAD_AT_WATERMARK,
				     values + j * NV, NV) != (int)NV)
			goto done;
	}
	for (size_t p = 0; p < P; p++) {
		const ls_lead *lead = leads[timed.lead[p]];
		ls_ftrl_input in;
		input_fill(&ib, &in, lead, &timed.ev[p], values + timed.lead[p] * NV);
		int rc = ls_ftrl_example_build(&pool[p], model, &in);
		if (rc != LS_FTRL_OK) {
			fprintf(stderr, "bench: build: %s\n", ls_ftrl_result_str(rc));
			goto done;
		}
		labels[p] = draw_label(lead);
	}

	double ns[STEP__COUNT][MAX_REPETITIONS];
	for (size_t r = 0; r < R; r++) {
		double t0, t1;
		uint64_t acc_u = 0;
		double acc_d = 0;

		if (!restore(leads, before, L, &conf))
			goto done;
		t0 = now_ns();
		for (size_t i = 0; i < K; i++)
			acc_u += (uint64_t)ls_lead_apply(leads[timed.lead[i]], &conf,
							 &timed.ev[i]);
		t1 = now_ns();
		ns[STEP_APPLY][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			acc_u += (uint64_t)ls_lead_features(leads[timed.lead[i]], &conf,
							    LS_LEAD_AT_WATERMARK, out, NV);
			acc_d += out[i % NV];
		}
		t1 = now_ns();
		ns[STEP_FEATURES][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			uint32_t j = timed.lead[i];
			ls_ftrl_input in;
			input_fill(&ib, &in, leads[j], &timed.ev[i], values + j * NV);
			acc_u += (uint64_t)ls_ftrl_example_build_resolved(&x, model, &in,
									  ib.num_dense);
			acc_u += x.n_entries;
		}
		t1 = now_ns();
		ns[STEP_BUILD][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			double p = 0;
			acc_u += (uint64_t)ls_ftrl_predict(model, &pool[i % P], &p);
			acc_d += p;
		}
		t1 = now_ns();
		ns[STEP_PREDICT][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
			size_t n_pos = 0, n_neg = 0;
			acc_u += (uint64_t)ls_ftrl_explain(model, &pool[i % P], pos, &n_pos,
							   neg, &n_neg);
			acc_u += n_pos + n_neg;
			if (n_pos > 0)
				acc_d += pos[0].contribution;
		}
		t1 = now_ns();
		ns[STEP_EXPLAIN][r] = (t1 - t0) / (double)K;

		ls_ftrl *copy = ls_ftrl_clone(model);
		if (copy == NULL) {
			fprintf(stderr, "bench: out of memory\n");
			goto done;
		}
		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			double p = 0;
			acc_u += (uint64_t)ls_ftrl_learn(copy, &pool[i % P], labels[i % P], &p);
			acc_d += p;
		}
		t1 = now_ns();
		ls_ftrl_free(copy);
		ns[STEP_LEARN][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			acc_u += (uint64_t)ls_lead_encode(leads[timed.lead[i]], &conf, &blob);
			acc_u += blob.len;
		}
		t1 = now_ns();
		ns[STEP_ENCODE][r] = (t1 - t0) / (double)K;

		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			const ls_buf *b = &after[timed.lead[i]];
			ls_lead *d = NULL;
			acc_u += (uint64_t)ls_lead_decode(&conf, b->data, b->len, &d, err,
							  sizeof err);
			acc_u += (uint64_t)ls_lead_watermark(d);
			ls_lead_free(d);
		}
		t1 = now_ns();
		ns[STEP_DECODE][r] = (t1 - t0) / (double)K;

		/* The score path, event by event, without then with the
		 * prefetch hint; both must leave the leads alike (checked
		 * below for the second). */
		for (int pf = 0; pf < 2; pf++) {
		if (!restore(leads, before, L, &conf))
			goto done;
		t0 = now_ns();
		for (size_t i = 0; i < K; i++) {
			ls_lead *lead = leads[timed.lead[i]];
			if (pf && i + 8 < K)
				ls_lead_prefetch(leads[timed.lead[i + 8]], false);
			if (pf && i + 4 < K)
				ls_lead_prefetch(leads[timed.lead[i + 4]], true);
			ls_ftrl_input in;
			ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
			size_t n_pos = 0, n_neg = 0;
			double p = 0;
			acc_u += (uint64_t)ls_lead_apply(lead, &conf, &timed.ev[i]);
			acc_u += (uint64_t)ls_lead_features(lead, &conf, LS_LEAD_AT_WATERMARK,
							    out, NV);
			input_fill(&ib, &in, lead, &timed.ev[i], out);
			acc_u += (uint64_t)ls_ftrl_example_build_resolved(&x, model, &in,
									  ib.num_dense);
			acc_u += (uint64_t)ls_ftrl_predict(model, &x, &p);
			acc_u += (uint64_t)ls_ftrl_explain(model, &x, pos, &n_pos, neg, &n_neg);
			acc_d += p;
			acc_u += n_pos + n_neg;
		}
		t1 = now_ns();
		ns[pf ? STEP_SCORE_PREFETCH : STEP_SCORE][r] = (t1 - t0) / (double)K;
		}

		sink_u = acc_u;
		sink_d = acc_d;
	}

	/* Check the last score pass left the leads as the warm-up did. */
	for (size_t j = 0; j < L; j++) {
		if (ls_lead_encode(leads[j], &conf, &blob) != LS_LEAD_APPLIED ||
		    blob.len != after[j].len ||
		    memcmp(blob.data, after[j].data, blob.len) != 0) {
			fprintf(stderr, "bench: lead %zu differs after the score pass\n", j);
			goto done;
		}
	}

	double med[STEP__COUNT];
	printf("leads=%zu\n", L);
	printf("history_events=%zu\n", H);
	printf("iterations=%zu\n", K);
	printf("repetitions=%zu\n", R);
	printf("feature_values=%zu\n", NV);
	printf("model_dims=%zu\n", ls_ftrl_dims(model));
	printf("model_nonzero_weights=%zu\n", nonzero);
	printf("timed_events_applied=%zu\n", applied);
	printf("mean_blob_bytes=%.1f\n", (double)blob_bytes / (double)L);
	for (int s = 0; s < STEP__COUNT; s++) {
		double v[MAX_REPETITIONS];
		memcpy(v, ns[s], R * sizeof *v);
		qsort(v, R, sizeof *v, cmp_double);
		med[s] = R % 2 ? v[R / 2] : (v[R / 2 - 1] + v[R / 2]) / 2;
		printf("%s_ns=%.1f\n", step_names[s], med[s]);
		printf("%s_ns_min=%.1f\n", step_names[s], v[0]);
		printf("%s_ns_max=%.1f\n", step_names[s], v[R - 1]);
	}
	double sum = med[STEP_APPLY] + med[STEP_FEATURES] + med[STEP_BUILD] +
		     med[STEP_PREDICT] + med[STEP_EXPLAIN];
	printf("score_steps_sum_ns=%.1f\n", sum);
	for (int s = STEP_APPLY; s <= STEP_EXPLAIN; s++)
		printf("%s_share=%.3f\n", step_names[s], med[s] / sum);
	printf("score_event_per_s=%.0f\n", 1e9 / med[STEP_SCORE]);
	printf("score_event_prefetch_per_s=%.0f\n", 1e9 / med[STEP_SCORE_PREFETCH]);
	status = 0;

done:
	for (size_t j = 0; leads != NULL && j < L; j++)
		ls_lead_free(leads[j]);
	for (size_t j = 0; before != NULL && j < L; j++)
		ls_buf_free(&before[j]);
	for (size_t j = 0; after != NULL && j < L; j++)
		ls_buf_free(&after[j]);
	for (size_t p = 0; pool != NULL && p < P; p++)
		ls_ftrl_example_free(&pool[p]);
	free(leads);
	free(before);
	free(after);
	free(pool);
	free(labels);
	free(value_names);
	free(values);
	free(out);
	free(ib.num_names);
	free(ib.num_values);
	free(ib.num_dense);
	free(ib.cat_keys);
	free(ib.cat_values);
	ls_buf_free(&blob);
	ls_ftrl_example_free(&x);
	ls_ftrl_free(model);
	stream_free(&hist);
	stream_free(&timed);
	ls_feature_set_free(set);
	return status;
}
