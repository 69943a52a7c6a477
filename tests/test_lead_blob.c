/*
 * Unit tests for models/ls_lead's blob codec: round trips, sizes of
 * realistic leads, determinism across a save/restore, decoding under a
 * changed feature set, refusing old versions, and fuzzing the decoder with
 * random, truncated and bit-flipped input; the ext bytes other modules
 * keep in the blob.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_lead.h"
#include "test_lead_util.h"

/* ---- realistic leads ---- */

typedef struct lead_events {
	ls_event ev[128];
	char ids[128][24];
	size_t n;
} lead_events;

static ls_event *add(lead_events *le, ls_event e)
{
	ck_assert_uint_lt(le->n, 128);
	snprintf(le->ids[le->n], sizeof le->ids[0], "evt-%08zx",
		 le->n * 2654435761u);
	e.event_id = le->ids[le->n];
	le->ev[le->n] = e;
	return &le->ev[le->n++];
}

static int cmp_ts(const void *a, const void *b)
{
	const ls_event *x = a, *y = b;
	return (x->ts > y->ts) - (x->ts < y->ts);
}

static const ls_attribute profile_attrs[] = {
	{ "company_size", "51-200" }, { "country", "DE" },
	{ "industry", "software" },    { "job_title", "VP Sales" },
	{ "source", "webinar" },
};
static const ls_metric profile_metrics[] = {
	{ "annual_revenue", 15000000 }, { "employees", 120 },
};

/*
 * "Engaged": a month of nurture. 8 sends, 5 opens, 2 clicks, 1 reply;
 * 5 web sessions of 3 pages each; a form, a download, a demo request;
 * a missed call and a connected one. 37 events plus the profile.
 */
static void lead_engaged(lead_events *le, bool profile)
{
	le->n = 0;
	const int64_t s = T0;
	static const char *const camp[] = { "spring-1", "spring-2", "webinar",
					    "case-study" };
	for (int i = 0; i < 8; i++) {
		int64_t t = s + i * 4 * D + 9 * H;
		add(le, ev_email(NULL, t, LS_EMAIL_SENT, camp[i % 4]));
		if (i % 2 == 0 || i == 7)
			add(le, ev_email(NULL, t + 3 * H + i * MIN, LS_EMAIL_OPENED,
					 camp[i % 4]));
		if (i == 2 || i == 6)
			add(le, ev_email(NULL, t + 3 * H + 2 * MIN, LS_EMAIL_CLICKED,
					 camp[i % 4]));
	}
	add(le, ev_email(NULL, s + 24 * D + 15 * H, LS_EMAIL_REPLIED, "webinar"));
	static const char *const cats[] = { "blog", "product", "pricing",
					    "docs", "product" };
	static const char *const sess[] = { "s-a1", "s-b2", "s-c3", "s-d4",
					    "s-e5" };
	static const int days[] = { 10, 15, 22, 27, 29 };
	for (int k = 0; k < 5; k++) {
		int64_t t = s + days[k] * D + 14 * H;
		for (int p = 0; p < 3; p++)
			add(le, ev_web(NULL, t + p * 2 * MIN, LS_WEB_PAGE_VIEW,
				       cats[(k + p) % 5], 20000 + p * 35000,
				       sess[k]));
	}
	add(le, ev_web(NULL, s + 15 * D + 14 * H + 7 * MIN, LS_WEB_DOWNLOAD,
		       "docs", -1, "s-b2"));
	add(le, ev_web(NULL, s + 22 * D + 14 * H + 8 * MIN, LS_WEB_FORM_SUBMIT,
		       NULL, -1, "s-c3"));
	add(le, ev_web(NULL, s + 29 * D + 14 * H + 9 * MIN, LS_WEB_DEMO_REQUEST,
		       "pricing", -1, "s-e5"));
	add(le, ev_call(NULL, s + 23 * D + 10 * H, LS_CALL_NO_ANSWER, 0, false, 0));
	add(le, ev_call(NULL, s + 24 * D + 11 * H, LS_CALL_CONNECTED, 600, true,
			0.4));
	if (profile) {
		ls_event *p = add(le, base_event(LS_SOURCE_PROFILE, NULL, s));
		p->u.profile.n_attributes = 5;
		p->u.profile.attributes = profile_attrs;
		p->u.profile.n_metrics = 2;
		p->u.profile.metrics = profile_metrics;
	}
	qsort(le->ev, le->n, sizeof(ls_event), cmp_ts);
}

/* "Cold": 10 sends over a month, one open, one bounce. */
static void lead_cold(lead_events *le)
{
	le->n = 0;
	for (int i = 0; i < 10; i++)
		add(le, ev_email(NULL, T0 + i * 3 * D + 8 * H, LS_EMAIL_SENT,
				 "newsletter"));
	add(le, ev_email(NULL, T0 + 9 * D + 20 * H, LS_EMAIL_OPENED, "newsletter"));
	add(le, ev_email(NULL, T0 + 27 * D + 8 * H + 5000, LS_EMAIL_BOUNCED,
			 "newsletter"));
	qsort(le->ev, le->n, sizeof(ls_event), cmp_ts);
}

/* "Hot week": 50 events in 7 days, ending in a burst of pricing views. */
static void lead_hot(lead_events *le)
{
	le->n = 0;
	for (int i = 0; i < 36; i++) {
		int64_t t = T0 + (i / 6) * D + (i % 6) * 25 * MIN;
		static const char *const cats[] = { "pricing", "product",
						    "docs", "pricing" };
		static const char *const sess[] = { "h1", "h2", "h3", "h4",
						    "h5", "h6" };
		add(le, ev_web(NULL, t, LS_WEB_PAGE_VIEW, cats[i % 4],
			       15000 + i * 1000, sess[i / 6]));
	}
	for (int i = 0; i < 6; i++) {
		add(le, ev_email(NULL, T0 + i * D + 7 * H, LS_EMAIL_SENT, "trial"));
		add(le, ev_email(NULL, T0 + i * D + 8 * H, LS_EMAIL_OPENED, "trial"));
	}
	add(le, ev_web(NULL, T0 + 6 * D + 3 * H, LS_WEB_DEMO_REQUEST, "pricing",
		       -1, "h6"));
	add(le, ev_call(NULL, T0 + 6 * D + 4 * H, LS_CALL_MEETING_BOOKED, 1500,
			true, 0.7));
	qsort(le->ev, le->n, sizeof(ls_event), cmp_ts);
}

static ls_lead *build(const ls_lead_conf *c, const lead_events *le)
{
	ls_lead *l = ls_lead_new(c);
	ck_assert_ptr_nonnull(l);
	for (size_t i = 0; i < le->n; i++)
		apply_ok(l, c, le->ev[i]);
	return l;
}

START_TEST(test_roundtrip_and_sizes)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	lead_events *le = calloc(1, sizeof(*le));
	ck_assert_ptr_nonnull(le);
	struct {
		const char *name;
		int kind;
		size_t bound;
	} cases[] = {
		{ "engaged, 37 events / 30 d", 0, 400 },
		{ "engaged + profile (5 attrs, 2 metrics)", 1, 512 },
		{ "cold, 12 email events / 30 d", 2, 160 },
		{ "hot week, 50 events / 7 d", 3, 448 },
		{ "empty", 4, 16 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		switch (cases[c].kind) {
		case 0: lead_engaged(le, false); break;
		case 1: lead_engaged(le, true); break;
		case 2: lead_cold(le); break;
		case 3: lead_hot(le); break;
		default: le->n = 0; break;
		}
		ls_lead *l = build(&conf, le);
		ls_buf b = { 0 }, b2 = { 0 };
		encode_ok(l, &conf, &b);
		ls_lead *d = decode_ok(&conf, &b);
		encode_ok(d, &conf, &b2);
		ck_assert_uint_eq(b.len, b2.len);
		ck_assert_mem_eq(b.data, b2.data, b.len);

		/* the decoded lead computes the same values */
		double v1[128], v2[128];
		int n1 = ls_lead_features(l, &conf, LS_LEAD_AT_WATERMARK, v1, 128);
		int n2 = ls_lead_features(d, &conf, LS_LEAD_AT_WATERMARK, v2, 128);
		ck_assert_int_eq(n1, n2);
		ck_assert_mem_eq(v1, v2, (size_t)n1 * sizeof(double));

		/* The same lead under the defaults before the dedupe horizon
		 * had its own setting (1 h grace, ids kept for the grace): the
		 * new defaults must not make it bigger. */
		ls_lead_conf before = conf;
		before.grace_ms = H;
		before.dedupe_horizon_ms = H;
		ls_lead *o = build(&before, le);
		ls_buf bo = { 0 };
		encode_ok(o, &before, &bo);

		printf("lead %-42s blob %4zu bytes (1h grace: %4zu), RAM %5zu "
		       "bytes (%zu slices, %zu ids), decoded RAM %5zu\n",
		       cases[c].name, b.len, bo.len, ls_lead_ram_bytes(l),
		       ls_lead_n_slices(l), ls_lead_n_remembered(l),
		       ls_lead_ram_bytes(d));
		fflush(stdout); /* Check runs tests in a child process */
		ck_assert_uint_le(b.len, cases[c].bound);
		ck_assert_uint_le(b.len, bo.len);

		/* Shuffled (topics read out of step), the 30 d grace applies
		 * every event and gives the same bytes. */
		lead_events *sh = calloc(1, sizeof(*sh));
		ck_assert_ptr_nonnull(sh);
		*sh = *le;
		for (size_t i = sh->n; i > 1; i--) {
			size_t j = (size_t)(rnd() % i);
			ls_event t = sh->ev[i - 1];
			sh->ev[i - 1] = sh->ev[j];
			sh->ev[j] = t;
		}
		ls_lead *s2 = build(&conf, sh);
		encode_ok(s2, &conf, &b2);
		ck_assert_uint_eq(b.len, b2.len);
		ck_assert_mem_eq(b.data, b2.data, b.len);
		ls_lead_free(s2);
		free(sh);
		ls_lead_free(o);
		ls_buf_free(&bo);
		ls_lead_free(d);
		ls_lead_free(l);
		ls_buf_free(&b);
		ls_buf_free(&b2);
	}

	/* spot-check the engaged lead's values at its watermark */
	lead_engaged(le, false);
	ls_lead *l = build(&conf, le);
	int64_t T = ls_lead_watermark(l);
	ck_assert_double_eq(value_of(l, &conf, T, "email_sent_30d"), 8.0);
	ck_assert_double_eq(value_of(l, &conf, T, "email_opens_30d"), 5.0);
	ck_assert_double_eq(value_of(l, &conf, T, "sends_without_opens_30d"), 3.0);
	/* 3 pricing page views; the demo request on /pricing is no view */
	ck_assert_double_eq(value_of(l, &conf, T, "pricing_views_30d"), 3.0);
	ck_assert_double_eq(value_of(l, &conf, T, "demo_requests_7d"), 1.0);
	ck_assert_double_eq(value_of(l, &conf, T, "call_seconds_30d"), 600.0);
	ck_assert_double_eq_tol(value_of(l, &conf, T, "mean_call_sentiment_30d"),
				0.4, 1e-12);
	ck_assert_double_eq_tol(value_of(l, &conf, T, "web_sessions_30d"), 5.0,
				0.25);
	ck_assert_double_eq(value_of(l, &conf, T, "days_since_last_web"), 0.0);
	ls_lead_free(l);
	free(le);
	ls_feature_set_free(set);
}
END_TEST

/* Same events, same order: the same bytes, whether or not the lead was
 * saved and restored half way (what a crash and replay does). */
START_TEST(test_determinism_and_restore)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	lead_events *le = calloc(1, sizeof(*le));
	lead_engaged(le, true);

	ls_lead *a = build(&conf, le);
	ls_lead *b = build(&conf, le);
	ls_buf ba = { 0 }, bb = { 0 }, bc = { 0 };
	encode_ok(a, &conf, &ba);
	encode_ok(b, &conf, &bb);
	ck_assert_uint_eq(ba.len, bb.len);
	ck_assert_mem_eq(ba.data, bb.data, ba.len);

	for (size_t cut = 0; cut <= le->n; cut += 5) {
		ls_lead *c = ls_lead_new(&conf);
		for (size_t i = 0; i < cut; i++)
			apply_ok(c, &conf, le->ev[i]);
		encode_ok(c, &conf, &bc);
		ls_lead_free(c);
		c = decode_ok(&conf, &bc);
		for (size_t i = cut; i < le->n; i++)
			apply_ok(c, &conf, le->ev[i]);
		encode_ok(c, &conf, &bc);
		ck_assert_uint_eq(ba.len, bc.len);
		ck_assert_mem_eq(ba.data, bc.data, ba.len);
		ls_lead_free(c);
	}
	/* a replay of the last few events is caught by dedupe */
	for (size_t i = le->n - 3; i < le->n; i++)
		ck_assert_int_eq(ls_lead_apply(a, &conf, &le->ev[i]),
				 LS_LEAD_DUPLICATE);
	encode_ok(a, &conf, &bc);
	ck_assert_mem_eq(ba.data, bc.data, ba.len);

	ls_buf_free(&ba);
	ls_buf_free(&bb);
	ls_buf_free(&bc);
	ls_lead_free(a);
	ls_lead_free(b);
	free(le);
	ls_feature_set_free(set);
}
END_TEST

/* ---- a changed feature set ---- */

static const ls_feature_spec set_a[] = {
	{ .name = "web", .source = LS_SOURCE_WEB, .agg = LS_AGG_COUNT,
	  .n_windows = 2, .windows = { { H, 0 }, { 7 * D, 0 } } },
	{ .name = "opens", .source = LS_SOURCE_EMAIL,
	  .type_mask = 1u << LS_EMAIL_OPENED, .agg = LS_AGG_COUNT,
	  .n_windows = 1, .windows = { { 7 * D, 0 } } },
	{ .name = "site_s", .source = LS_SOURCE_WEB, .agg = LS_AGG_SUM,
	  .field = LS_FIELD_WEB_DURATION_MS, .scale = 0.001, .n_windows = 1,
	  .windows = { { 7 * D, 0 } } },
	{ .name = "days_since_web", .kind = LS_FEATURE_RECENCY, .a = "web" },
};

/* opens and site_s kept (site_s rescaled, which keeps its key), web
 * redefined (another window), a new feature, no recency */
static const ls_feature_spec set_b[] = {
	{ .name = "pricing", .source = LS_SOURCE_WEB,
	  .page_category = "pricing", .agg = LS_AGG_COUNT, .n_windows = 1,
	  .windows = { { 7 * D, 0 } } },
	{ .name = "site_s", .source = LS_SOURCE_WEB, .agg = LS_AGG_SUM,
	  .field = LS_FIELD_WEB_DURATION_MS, .scale = 1.0 / 60000,
	  .n_windows = 1, .windows = { { 7 * D, 0 } } },
	{ .name = "web", .source = LS_SOURCE_WEB, .agg = LS_AGG_COUNT,
	  .n_windows = 2, .windows = { { H, 0 }, { 24 * H, 0 } } },
	{ .name = "opens", .source = LS_SOURCE_EMAIL,
	  .type_mask = 1u << LS_EMAIL_OPENED, .agg = LS_AGG_COUNT,
	  .n_windows = 1, .windows = { { 7 * D, 0 } } },
};

START_TEST(test_spec_change)
{
	ls_feature_set *sa = ls_test_feature_set(set_a, 4), *sb = ls_test_feature_set(set_b, 4);
	ls_lead_conf ca, cb;
	ls_lead_conf_default(&ca, sa);
	ls_lead_conf_default(&cb, sb);
	ls_lead *l = ls_lead_new(&ca);
	apply_ok(l, &ca, ev_web("x1", T0, LS_WEB_PAGE_VIEW, "pricing", 60000, "s"));
	apply_ok(l, &ca, ev_web("x2", T0 + 1000, LS_WEB_PAGE_VIEW, "blog", 30000,
				"s"));
	apply_ok(l, &ca, ev_email("x3", T0 + 2000, LS_EMAIL_OPENED, "c"));
	int64_t T = T0 + 2000;
	ck_assert_double_eq(value_of(l, &ca, T, "web_1h"), 2.0);
	ck_assert_double_eq(value_of(l, &ca, T, "site_s_7d"), 90.0);

	/* a lead is tied to its set's layout */
	ls_event e = ev_email("x4", T, LS_EMAIL_OPENED, "c");
	ck_assert_int_eq(ls_lead_apply(l, &cb, &e), LS_LEAD_ERR_SET);
	double out[8];
	ck_assert_int_eq(ls_lead_features(l, &cb, T, out, 8), LS_LEAD_ERR_SET);

	ls_buf b = { 0 }, b2 = { 0 };
	encode_ok(l, &ca, &b);
	ls_lead *m = decode_ok(&cb, &b);
	ck_assert_double_eq(value_of(m, &cb, T, "opens_7d"), 1.0);
	ck_assert_double_eq(value_of(m, &cb, T, "site_s_7d"), 1.5); /* minutes */
	ck_assert_double_eq(value_of(m, &cb, T, "web_1h"), 0.0);  /* redefined */
	ck_assert_double_eq(value_of(m, &cb, T, "web_24h"), 0.0);
	ck_assert_double_eq(value_of(m, &cb, T, "pricing_7d"), 0.0); /* new */
	ck_assert_int_eq(ls_lead_watermark(m), T);
	ck_assert_uint_eq(ls_lead_event_count(m, LS_SOURCE_WEB), 2);
	/* new state accumulates under the new definitions */
	apply_ok(m, &cb, ev_web("x5", T + 10, LS_WEB_PAGE_VIEW, "pricing", -1,
				NULL));
	ck_assert_double_eq(value_of(m, &cb, T + 10, "pricing_7d"), 1.0);
	ck_assert_double_eq(value_of(m, &cb, T + 10, "web_24h"), 1.0);
	/* dedupe memory came along */
	ls_event x1 = ev_web("x1", T0, LS_WEB_PAGE_VIEW, "pricing", 60000, "s");
	ck_assert_int_eq(ls_lead_apply(m, &cb, &x1), LS_LEAD_DUPLICATE);

	/* and back: what A knows and B kept is still there; web restarted,
	 * recency restarted (B did not keep last_seen) */
	encode_ok(m, &cb, &b2);
	ls_lead *back = decode_ok(&ca, &b2);
	ck_assert_double_eq(value_of(back, &ca, T + 10, "opens_7d"), 1.0);
	ck_assert_double_eq(value_of(back, &ca, T + 10, "site_s_7d"), 90.0);
	ck_assert_double_eq(value_of(back, &ca, T + 10, "web_1h"), 0.0);
	ck_assert_double_eq(value_of(back, &ca, T + 10, "days_since_web"), 365.0);
	ls_lead_free(back);
	ls_lead_free(m);
	ls_buf_free(&b);
	ls_buf_free(&b2);
	ls_lead_free(l);
	ls_feature_set_free(sa);
	ls_feature_set_free(sb);
}
END_TEST

/* ---- decoder fuzzing ---- */

/* Decode; on success the lead must be fully usable. Returns the rc. */
static int try_decode(const ls_lead_conf *c, const uint8_t *p, size_t len)
{
	ls_lead *l = NULL;
	char err[200] = "";
	int rc = ls_lead_decode(c, p, len, &l, err, sizeof err);
	if (rc != LS_LEAD_APPLIED) {
		ck_assert_ptr_null(l);
		ck_assert_int_eq(rc, LS_LEAD_ERR_CORRUPT);
		ck_assert_msg(strncmp(err, "blob corrupt at byte ", 21) == 0,
			      "reason: %s", err);
		return rc;
	}
	double out[128];
	ck_assert_int_gt(ls_lead_features(l, c, LS_LEAD_AT_WATERMARK, out, 128), 0);
	ls_buf b = { 0 };
	encode_ok(l, c, &b);
	ls_event e = ev_web("fuzz-new", ls_lead_watermark(l) < 0
						? T0
						: ls_lead_watermark(l),
			    LS_WEB_PAGE_VIEW, "pricing", 10, "s");
	int arc = ls_lead_apply(l, c, &e);
	ck_assert(arc == LS_LEAD_APPLIED || arc == LS_LEAD_DUPLICATE);
	ls_buf_free(&b);
	ls_lead_free(l);
	return rc;
}

START_TEST(test_decode_fuzz)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	/* a smaller set that knows only some keys, and smaller limits: the
	 * decoder walks over unknown records and prunes */
	ls_feature_set *other = ls_test_feature_set(set_b, 4);
	ls_lead_conf oconf;
	ls_lead_conf_default(&oconf, other);
	oconf.dedupe_k = 2;
	oconf.max_attributes = 1;
	oconf.max_metrics = 0;
	lead_events *le = calloc(1, sizeof(*le));
	ls_buf blobs[3] = { { 0 }, { 0 }, { 0 } };
	lead_engaged(le, true);
	ls_lead *l = build(&conf, le);
	encode_ok(l, &conf, &blobs[0]);
	ls_lead_free(l);
	lead_hot(le);
	l = build(&conf, le);
	encode_ok(l, &conf, &blobs[1]);
	ls_lead_free(l);
	lead_cold(le);
	l = build(&conf, le);
	encode_ok(l, &conf, &blobs[2]);
	ls_lead_free(l);

	/* NULL and empty input */
	ls_lead *out = NULL;
	ck_assert_int_eq(ls_lead_decode(&conf, NULL, 0, &out, NULL, 0),
			 LS_LEAD_ERR_CORRUPT);
	ck_assert_int_eq(ls_lead_decode(&conf, NULL, 5, &out, NULL, 0),
			 LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_decode(NULL, blobs[0].data, blobs[0].len, &out,
					NULL, 0),
			 LS_LEAD_ERR_INVALID);

	size_t ok_flips = 0;
	for (int k = 0; k < 3; k++) {
		const ls_buf *b = &blobs[k];
		/* every truncation fails cleanly; the whole blob decodes */
		for (size_t n = 0; n < b->len; n++) {
			uint8_t *copy = malloc(n ? n : 1);
			memcpy(copy, b->data, n);
			ck_assert_int_eq(try_decode(&conf, copy, n),
					 LS_LEAD_ERR_CORRUPT);
			free(copy);
		}
		ck_assert_int_eq(try_decode(&conf, b->data, b->len),
				 LS_LEAD_APPLIED);
		ck_assert_int_eq(try_decode(&oconf, b->data, b->len),
				 LS_LEAD_APPLIED);
		/* trailing garbage is refused */
		uint8_t *longer = malloc(b->len + 1);
		memcpy(longer, b->data, b->len);
		longer[b->len] = 0;
		ck_assert_int_eq(try_decode(&conf, longer, b->len + 1),
				 LS_LEAD_ERR_CORRUPT);
		free(longer);
		/* every single bit flipped: never a crash */
		uint8_t *copy = malloc(b->len);
		for (size_t bit = 0; bit < b->len * 8; bit++) {
			memcpy(copy, b->data, b->len);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			ok_flips += try_decode(&conf, copy, b->len) ==
				    LS_LEAD_APPLIED;
			try_decode(&oconf, copy, b->len);
		}
		/* several random byte changes at once */
		for (int round = 0; round < 3000; round++) {
			memcpy(copy, b->data, b->len);
			int changes = 1 + (int)(rnd() % 4);
			for (int c = 0; c < changes; c++)
				copy[rnd() % b->len] = (uint8_t)rnd();
			try_decode(round % 2 ? &conf : &oconf, copy, b->len);
		}
		free(copy);
	}
	/* random bytes, with and without a valid version byte */
	uint8_t buf[400];
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rnd() % sizeof buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rnd();
		if (n > 0 && round % 2)
			buf[0] = LS_LEAD_BLOB_VERSION;
		if (n > 1 && round % 4 == 1)
			buf[1] = (uint8_t)(rnd() % 2);
		try_decode(round % 3 ? &conf : &oconf, buf, n);
	}
	/* flips inside hashes and counts do decode; they must stay usable */
	ck_assert_uint_gt(ok_flips, 0);
	for (int k = 0; k < 3; k++)
		ls_buf_free(&blobs[k]);
	free(le);
	ls_feature_set_free(other);
	ls_feature_set_free(set);
}
END_TEST

/* Version 1 blobs (dedupe memory by application order) were never
 * deployed: they are refused cleanly, with a reason. */
START_TEST(test_decode_rejects_v1)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	/* a version 1 lead: watermark 1000, one web event remembered as
	 * (hash, watermark - ts 0, age 0), no profile, no records */
	static const uint8_t v1[] = { 1, 1, 0xe8, 0x07, 0, 1, 0, 0, 0, 1,
				      1, 2, 3, 4, 5, 6, 7, 8, 0, 0,
				      0, 0, 0 };
	/* and an empty version 1 lead */
	static const uint8_t v1_empty[] = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	const struct {
		const uint8_t *p;
		size_t n;
	} cases[] = { { v1, sizeof v1 }, { v1_empty, sizeof v1_empty } };
	for (size_t i = 0; i < 2; i++) {
		ls_lead *keep = ls_lead_new(&conf), *l = keep;
		char err[200] = "";
		ck_assert_int_eq(ls_lead_decode(&conf, cases[i].p, cases[i].n,
						&l, err, sizeof err),
				 LS_LEAD_ERR_CORRUPT);
		ck_assert_ptr_null(l); /* reset, not left pointing anywhere */
		ls_lead_free(keep);
		ck_assert_msg(strstr(err, "blob corrupt at byte 0") == err &&
				      strstr(err, "version 1") != NULL,
			      "reason: %s", err);
		/* without an error buffer too */
		ck_assert_int_eq(ls_lead_decode(&conf, cases[i].p, cases[i].n,
						&l, NULL, 0),
				 LS_LEAD_ERR_CORRUPT);
	}
	/* a current blob whose version byte says 1 is refused the same way */
	ls_lead *l = ls_lead_new(&conf);
	apply_ok(l, &conf, ev_web("v-1", T0, LS_WEB_PAGE_VIEW, NULL, -1, NULL));
	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.data[0], LS_LEAD_BLOB_VERSION);
	ck_assert_uint_eq(LS_LEAD_BLOB_VERSION, 2);
	b.data[0] = 1;
	ls_lead *d = NULL;
	char err[200] = "";
	ck_assert_int_eq(ls_lead_decode(&conf, b.data, b.len, &d, err, sizeof err),
			 LS_LEAD_ERR_CORRUPT);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(strstr(err, "version 1"));
	ls_buf_free(&b);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/*
 * Distinct slices as the encoder wrote them before it walked only the set
 * bits: a slice of 3 sessions (the bit positions, ascending) and one of
 * 11 distinct bits (the bitmap), under one 7-day distinct feature.
 */
static const uint8_t golden_distinct[] = {
	0x02, 0x01, 0xb0, 0xad, 0xc9, 0xd1, 0xbd, 0x31, 0x00, 0x0f,
	0x00, 0x00, 0x00, 0x0c, 0xdc, 0x4b, 0x18, 0x0b, 0x85, 0x47,
	0x50, 0x3b, 0xf8, 0x55, 0x4d, 0xe2, 0xb0, 0xa5, 0x0e, 0x76,
	0x27, 0xb6, 0x90, 0x4e, 0x25, 0x8d, 0xc2, 0x9c, 0x4e, 0xe2,
	0xc3, 0xf8, 0xa8, 0x46, 0x9e, 0x98, 0xa3, 0x85, 0x9a, 0x61,
	0x79, 0x2d, 0xc0, 0x3e, 0xf1, 0x96, 0x0f, 0xce, 0x0b, 0xd6,
	0x55, 0x71, 0xd8, 0x36, 0xf0, 0xbe, 0x52, 0x1b, 0xc6, 0x1b,
	0x9e, 0x43, 0xf0, 0x2e, 0xb7, 0x12, 0x1f, 0xfd, 0x6b, 0x3e,
	0xca, 0x34, 0x88, 0x27, 0x12, 0xb3, 0xa9, 0xf0, 0xec, 0x70,
	0x9f, 0x80, 0xa0, 0x1f, 0x9f, 0xdf, 0xfe, 0x5c, 0xa6, 0xf4,
	0xd7, 0x2f, 0xb8, 0x17, 0xe0, 0xc1, 0x44, 0x38, 0x3d, 0x69,
	0x0b, 0x1b, 0xd0, 0x0f, 0x82, 0x0b, 0x51, 0x16, 0x74, 0x4b,
	0x24, 0xcc, 0xe8, 0x07, 0x59, 0xcf, 0x5c, 0xe9, 0x05, 0xd9,
	0x54, 0xeb, 0x00, 0x00, 0x00, 0x01, 0x48, 0x5a, 0xca, 0xf9,
	0x62, 0x02, 0x02, 0x03, 0x1b, 0x1c, 0x2c, 0x01, 0x0b, 0x22,
	0x00, 0x09, 0xa2, 0x10, 0x81, 0x00, 0x40,
};

START_TEST(test_distinct_golden)
{
	static const ls_feature_spec specs[] = {
		{ .name = "sessions", .source = LS_SOURCE_WEB, .agg = LS_AGG_DISTINCT,
		  .field = LS_FIELD_WEB_SESSION_ID, .n_windows = 1,
		  .windows = { { 7 * D, 7 } } },
	};
	ls_feature_set *set = ls_test_feature_set(specs, 1);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	ck_assert_ptr_nonnull(l);
	char id[15][32], sess[15][32];
	for (int i = 0; i < 15; i++) {
		snprintf(id[i], sizeof id[i], "d-%d", i);
		snprintf(sess[i], sizeof sess[i], "s-%d", i);
		ls_event e = ev_web(id[i], T0 + (i < 3 ? 0 : 2 * D) + i * 1000,
				    LS_WEB_PAGE_VIEW, NULL, -1, sess[i]);
		e.u.web.url = "u";
		apply_ok(l, &conf, e);
	}
	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, sizeof golden_distinct);
	ck_assert_mem_eq(b.data, golden_distinct, b.len);
	ls_buf_free(&b);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* ---- extension bytes ---- */

/*
 * A lead under set_a (a web view with a duration, an email open an hour
 * later, a profile event with one attribute and one metric a second after
 * that), and its blob as the encoder wrote it before the ext section
 * existed: leads without ext bytes must keep encoding to exactly these.
 */
static const uint8_t golden_no_ext[] = {
	0x02, 0x01, 0xe8, 0xb4, 0xf1, 0x80, 0xbd, 0x31, 0x01, 0x01,
	0x00, 0x00, 0x01, 0x02, 0x40, 0xb7, 0x3f, 0x32, 0x5f, 0x1a,
	0x6c, 0xf6, 0xe8, 0x07, 0x80, 0x39, 0x62, 0xcb, 0x67, 0x6e,
	0xb6, 0x07, 0x00, 0x01, 0x04, 0x70, 0x6c, 0x61, 0x6e, 0x03,
	0x70, 0x72, 0x6f, 0x01, 0x05, 0x73, 0x65, 0x61, 0x74, 0x73,
	0x00, 0x18, 0x03, 0xab, 0xe0, 0xb2, 0xee, 0x05, 0xe8, 0xe4,
	0xdb, 0x01, 0x01, 0x00, 0xdb, 0xd8, 0x36, 0x45, 0x02, 0x01,
	0x00, 0xf7, 0x34, 0x92, 0x04, 0x22, 0x01, 0x00, 0xe0, 0xd4,
	0x03,
};

static const ls_attribute golden_attrs[] = { { "plan", "pro" } };
static const ls_metric golden_metrics[] = { { "seats", 12 } };

static ls_lead *golden_lead(const ls_lead_conf *c)
{
	ls_lead *l = ls_lead_new(c);
	ck_assert_ptr_nonnull(l);
	apply_ok(l, c, ev_web("x-1", T0, LS_WEB_PAGE_VIEW, NULL, 30000, NULL));
	ls_event e = ev_email("x-2", T0 + H, LS_EMAIL_OPENED, "c1");
	apply_ok(l, c, e);
	e = base_event(LS_SOURCE_PROFILE, "x-3", T0 + H + 1000);
	e.u.profile.n_attributes = 1;
	e.u.profile.attributes = golden_attrs;
	e.u.profile.n_metrics = 1;
	e.u.profile.metrics = golden_metrics;
	apply_ok(l, c, e);
	return l;
}

/* golden_no_ext followed by tail[0..n) */
static uint8_t *golden_plus(const uint8_t *tail, size_t n, size_t *len)
{
	*len = sizeof golden_no_ext + n;
	uint8_t *p = malloc(*len);
	ck_assert_ptr_nonnull(p);
	memcpy(p, golden_no_ext, sizeof golden_no_ext);
	if (n > 0)
		memcpy(p + sizeof golden_no_ext, tail, n);
	return p;
}

/* Decoding p must fail as corrupt with why at byte offset at. */
static void expect_corrupt(const ls_lead_conf *c, const uint8_t *p, size_t len,
			   size_t at, const char *why)
{
	ls_lead *l = NULL;
	char err[200] = "", want[64];
	ck_assert_int_eq(ls_lead_decode(c, p, len, &l, err, sizeof err),
			 LS_LEAD_ERR_CORRUPT);
	ck_assert_ptr_null(l);
	snprintf(want, sizeof want, "blob corrupt at byte %zu: ", at);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 &&
			      strstr(err, why) != NULL,
		      "reason: %s (want %s%s)", err, want, why);
}

START_TEST(test_ext_roundtrip_and_golden)
{
	ls_feature_set *set = ls_test_feature_set(set_a, 4);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = golden_lead(&conf);
	size_t n = 99;
	ck_assert_ptr_null(ls_lead_ext(l, &n));
	ck_assert_uint_eq(n, 0);

	/* without ext: the bytes of the encoder before the ext section */
	ls_buf b = { 0 }, b2 = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, sizeof golden_no_ext);
	ck_assert_mem_eq(b.data, golden_no_ext, b.len);
	ls_lead *d = decode_ok(&conf, &b);
	ck_assert_ptr_null(ls_lead_ext(d, &n));
	ck_assert_uint_eq(n, 0);
	ls_lead_free(d);

	/* with ext: the same bytes, then length 5 and the ext */
	static const uint8_t ext[] = { 'h', 'e', 'l', 'l', 'o' };
	ck_assert_int_eq(ls_lead_set_ext(l, ext, sizeof ext), LS_LEAD_APPLIED);
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, sizeof golden_no_ext + 1 + sizeof ext);
	ck_assert_mem_eq(b.data, golden_no_ext, sizeof golden_no_ext);
	ck_assert_uint_eq(b.data[sizeof golden_no_ext], 5);
	ck_assert_mem_eq(b.data + sizeof golden_no_ext + 1, ext, sizeof ext);

	/* decode: same ext, same features, same bytes again */
	d = decode_ok(&conf, &b);
	const uint8_t *got = ls_lead_ext(d, &n);
	ck_assert_uint_eq(n, sizeof ext);
	ck_assert_mem_eq(got, ext, sizeof ext);
	double v1[16], v2[16];
	int n1 = ls_lead_features(l, &conf, LS_LEAD_AT_WATERMARK, v1, 16);
	int n2 = ls_lead_features(d, &conf, LS_LEAD_AT_WATERMARK, v2, 16);
	ck_assert_int_gt(n1, 0);
	ck_assert_int_eq(n1, n2);
	ck_assert_mem_eq(v1, v2, (size_t)n1 * sizeof(double));
	ck_assert_str_eq(ls_lead_attribute(d, "plan"), "pro");
	encode_ok(d, &conf, &b2);
	ck_assert_uint_eq(b.len, b2.len);
	ck_assert_mem_eq(b.data, b2.data, b.len);
	ls_lead_free(d);

	/* under another feature set (records walked over), the ext stays */
	ls_feature_set *other = ls_test_feature_set(set_b, 4);
	ls_lead_conf oconf;
	ls_lead_conf_default(&oconf, other);
	d = decode_ok(&oconf, &b);
	got = ls_lead_ext(d, &n);
	ck_assert_uint_eq(n, sizeof ext);
	ck_assert_mem_eq(got, ext, sizeof ext);
	ls_lead_free(d);

	/* cleared: the ext-less bytes again */
	ck_assert_int_eq(ls_lead_set_ext(l, NULL, 0), LS_LEAD_APPLIED);
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, sizeof golden_no_ext);
	ck_assert_mem_eq(b.data, golden_no_ext, b.len);

	/* the largest ext: a two-byte length (4096 = 0x80 0x20) */
	uint8_t *big = malloc(LS_LEAD_EXT_MAX);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < LS_LEAD_EXT_MAX; i++)
		big[i] = (uint8_t)rnd();
	ck_assert_int_eq(ls_lead_set_ext(l, big, LS_LEAD_EXT_MAX),
			 LS_LEAD_APPLIED);
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, sizeof golden_no_ext + 2 + LS_LEAD_EXT_MAX);
	ck_assert_uint_eq(b.data[sizeof golden_no_ext], 0x80);
	ck_assert_uint_eq(b.data[sizeof golden_no_ext + 1], 0x20);
	d = decode_ok(&conf, &b);
	got = ls_lead_ext(d, &n);
	ck_assert_uint_eq(n, LS_LEAD_EXT_MAX);
	ck_assert_mem_eq(got, big, LS_LEAD_EXT_MAX);
	encode_ok(d, &conf, &b2);
	ck_assert_uint_eq(b.len, b2.len);
	ck_assert_mem_eq(b.data, b2.data, b.len);
	ls_lead_free(d);
	free(big);

	ls_buf_free(&b);
	ls_buf_free(&b2);
	ls_lead_free(l);
	ls_feature_set_free(other);
	ls_feature_set_free(set);
}
END_TEST

/* The prefetch hint changes nothing: not the blob, not the lead. */
START_TEST(test_prefetch_changes_nothing)
{
	ls_feature_set *set = ls_test_feature_set(set_a, 4);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *empty = ls_lead_new(&conf), *l = golden_lead(&conf);
	uint8_t ext[2] = { 7, 9 };
	ck_assert_int_eq(ls_lead_set_ext(l, ext, 2), LS_LEAD_APPLIED);
	ls_buf b0 = { 0 }, b1 = { 0 }, e0 = { 0 }, e1 = { 0 };
	encode_ok(l, &conf, &b0);
	encode_ok(empty, &conf, &e0);
	ls_lead_prefetch(NULL, false);
	ls_lead_prefetch(NULL, true);
	for (int deep = 0; deep < 2; deep++) {
		ls_lead_prefetch(l, deep);
		ls_lead_prefetch(empty, deep);
	}
	encode_ok(l, &conf, &b1);
	encode_ok(empty, &conf, &e1);
	ck_assert_uint_eq(b0.len, b1.len);
	ck_assert_mem_eq(b0.data, b1.data, b0.len);
	ck_assert_uint_eq(e0.len, e1.len);
	ck_assert_mem_eq(e0.data, e1.data, e0.len);
	ls_buf_free(&b0);
	ls_buf_free(&b1);
	ls_buf_free(&e0);
	ls_buf_free(&e1);
	ls_lead_free(l);
	ls_lead_free(empty);
	ls_feature_set_free(set);
}
END_TEST

START_TEST(test_ext_set_and_clear)
{
	ls_feature_set *set = ls_test_feature_set(set_a, 4);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	size_t ram0 = ls_lead_ram_bytes(l), n = 99;

	/* a copy: changing the caller's buffer afterwards changes nothing */
	uint8_t buf[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	ck_assert_int_eq(ls_lead_set_ext(l, buf, 3), LS_LEAD_APPLIED);
	buf[0] = 99;
	const uint8_t *e = ls_lead_ext(l, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0], 1);
	ck_assert_uint_eq(e[2], 3);
	ck_assert_ptr_ne(e, buf);
	ck_assert_uint_eq(ls_lead_ram_bytes(l), ram0 + 3);
	ck_assert_ptr_eq(ls_lead_ext(l, NULL), e); /* len may be NULL */

	/* replaced, including from the lead's own bytes */
	ck_assert_int_eq(ls_lead_set_ext(l, buf, 8), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_ram_bytes(l), ram0 + 8);
	e = ls_lead_ext(l, &n);
	ck_assert_int_eq(ls_lead_set_ext(l, e + 5, 3), LS_LEAD_APPLIED);
	e = ls_lead_ext(l, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0], 6);
	ck_assert_uint_eq(e[2], 8);

	/* the same length again (the scorer's usual save): new bytes, also
	 * from an overlapping part of the lead's own */
	uint8_t same[3] = { 41, 42, 43 };
	ck_assert_int_eq(ls_lead_set_ext(l, same, 3), LS_LEAD_APPLIED);
	same[0] = 0;
	e = ls_lead_ext(l, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(e, ((const uint8_t[]){ 41, 42, 43 }), 3);
	ck_assert_int_eq(ls_lead_set_ext(l, e, 3), LS_LEAD_APPLIED);
	e = ls_lead_ext(l, &n);
	ck_assert_mem_eq(e, ((const uint8_t[]){ 41, 42, 43 }), 3);
	ck_assert_uint_eq(ls_lead_ram_bytes(l), ram0 + 3);
	ck_assert_int_eq(ls_lead_set_ext(l, buf + 5, 3), LS_LEAD_APPLIED);

	/* refused, lead unchanged: too long, NULL data, NULL lead */
	uint8_t *big = calloc(1, LS_LEAD_EXT_MAX + 1);
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(ls_lead_set_ext(l, big, LS_LEAD_EXT_MAX + 1),
			 LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_set_ext(l, big, SIZE_MAX), LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_set_ext(l, NULL, 1), LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_set_ext(NULL, buf, 1), LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_set_ext(NULL, NULL, 0), LS_LEAD_ERR_INVALID);
	e = ls_lead_ext(l, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0], 6);
	ck_assert_uint_eq(ls_lead_ram_bytes(l), ram0 + 3);
	free(big);

	/* cleared, with or without a pointer */
	ck_assert_int_eq(ls_lead_set_ext(l, buf, 0), LS_LEAD_APPLIED);
	ck_assert_ptr_null(ls_lead_ext(l, &n));
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(ls_lead_ram_bytes(l), ram0);
	ck_assert_int_eq(ls_lead_set_ext(l, buf, 1), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_set_ext(l, NULL, 0), LS_LEAD_APPLIED);
	ck_assert_ptr_null(ls_lead_ext(l, &n));
	ck_assert_uint_eq(n, 0);
	/* a cleared lead encodes like one that never had ext bytes */
	ls_lead *fresh = ls_lead_new(&conf);
	ls_buf b = { 0 }, bf = { 0 };
	encode_ok(l, &conf, &b);
	encode_ok(fresh, &conf, &bf);
	ck_assert_uint_eq(b.len, bf.len);
	ck_assert_mem_eq(b.data, bf.data, b.len);
	n = 99;
	ck_assert_ptr_null(ls_lead_ext(NULL, &n));
	ck_assert_uint_eq(n, 0);
	ls_buf_free(&b);
	ls_buf_free(&bf);
	ls_lead_free(fresh);
	ls_lead_free(l); /* frees the ext too (ASan checks) */
	l = ls_lead_new(&conf);
	ck_assert_int_eq(ls_lead_set_ext(l, buf, 4), LS_LEAD_APPLIED);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

START_TEST(test_ext_decode_rejects)
{
	ls_feature_set *set = ls_test_feature_set(set_a, 4);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	const size_t g = sizeof golden_no_ext;
	size_t len;
	uint8_t *p;

	/* length 0: an empty ext is written as no section */
	static const uint8_t zero[] = { 0x00 };
	p = golden_plus(zero, sizeof zero, &len);
	expect_corrupt(&conf, p, len, g, "empty extension");
	free(p);
	/* the length runs past the end */
	static const uint8_t over[] = { 0x05, 'a', 'b', 'c' };
	p = golden_plus(over, sizeof over, &len);
	expect_corrupt(&conf, p, len, g, "extension truncated");
	free(p);
	/* bytes after the ext */
	static const uint8_t trail[] = { 0x02, 'a', 'b', 'c' };
	p = golden_plus(trail, sizeof trail, &len);
	expect_corrupt(&conf, p, len, g, "trailing bytes");
	free(p);
	/* a length cut in the middle, or not minimal */
	static const uint8_t cut[] = { 0x80 };
	p = golden_plus(cut, sizeof cut, &len);
	expect_corrupt(&conf, p, len, g, "truncated varint");
	free(p);
	static const uint8_t padded[] = { 0x81, 0x00, 'a' };
	p = golden_plus(padded, sizeof padded, &len);
	expect_corrupt(&conf, p, len, g, "not minimal");
	free(p);
	/* LS_LEAD_EXT_MAX + 1 (4097 = 0x81 0x20) bytes, all present */
	uint8_t *big = calloc(1, 2 + LS_LEAD_EXT_MAX + 1);
	ck_assert_ptr_nonnull(big);
	big[0] = 0x81;
	big[1] = 0x20;
	p = golden_plus(big, 2 + LS_LEAD_EXT_MAX + 1, &len);
	expect_corrupt(&conf, p, len, g, "extension too long");
	free(p);
	/* ... and exactly the maximum is fine */
	big[0] = 0x80;
	p = golden_plus(big, 2 + LS_LEAD_EXT_MAX, &len);
	ck_assert_int_eq(try_decode(&conf, p, len), LS_LEAD_APPLIED);
	free(p);
	free(big);

	/* Every prefix of a blob with ext fails, except the one that ends
	 * right after the records: that is a valid blob without ext. */
	ls_lead *l = golden_lead(&conf);
	static const uint8_t ext[] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xff };
	ck_assert_int_eq(ls_lead_set_ext(l, ext, sizeof ext), LS_LEAD_APPLIED);
	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.len, g + 1 + sizeof ext);
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, b.data, n);
		if (n == g) {
			ls_lead *d = NULL;
			ck_assert_int_eq(ls_lead_decode(&conf, copy, n, &d, NULL, 0),
					 LS_LEAD_APPLIED);
			size_t el = 99;
			ck_assert_ptr_null(ls_lead_ext(d, &el));
			ck_assert_uint_eq(el, 0);
			ls_lead_free(d);
		} else {
			ck_assert_int_eq(try_decode(&conf, copy, n),
					 LS_LEAD_ERR_CORRUPT);
		}
		free(copy);
	}
	/* one byte more: the length no longer reaches the end */
	uint8_t *longer = malloc(b.len + 1);
	memcpy(longer, b.data, b.len);
	longer[b.len] = 0;
	expect_corrupt(&conf, longer, b.len + 1, g, "trailing bytes");
	free(longer);
	/* every bit flipped: never a crash, and a decoded lead is usable */
	uint8_t *copy = malloc(b.len);
	for (size_t bit = 0; bit < b.len * 8; bit++) {
		memcpy(copy, b.data, b.len);
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		int rc = try_decode(&conf, copy, b.len);
		/* a flip in the length byte always breaks the section */
		if (bit / 8 == g)
			ck_assert_int_eq(rc, LS_LEAD_ERR_CORRUPT);
	}
	free(copy);
	ls_buf_free(&b);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* ls_lead_apply never touches the ext, whatever it decides. */
START_TEST(test_ext_survives_apply)
{
	ls_feature_set *set = ls_test_feature_set(set_a, 4);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	static const uint8_t ext[] = { 0xde, 0xad, 0xbe, 0xef };
	ck_assert_int_eq(ls_lead_set_ext(l, ext, sizeof ext), LS_LEAD_APPLIED);
	size_t n;

	apply_ok(l, &conf, ev_web("s-1", T0, LS_WEB_PAGE_VIEW, NULL, 1000, NULL));
	ls_event dup = ev_web("s-1", T0, LS_WEB_PAGE_VIEW, NULL, 1000, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &dup), LS_LEAD_DUPLICATE);
	ls_event late = ev_web("s-2", T0 - conf.grace_ms - 1, LS_WEB_PAGE_VIEW,
			       NULL, -1, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &late), LS_LEAD_TOO_LATE);
	ls_event bad = ev_web(NULL, T0, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &bad), LS_LEAD_ERR_INVALID);
	/* many slices: the arrays the ext sits next to grow */
	for (unsigned i = 0; i < 60; i++)
		apply_ok(l, &conf, ev_web(idf("s", i), T0 + (int64_t)i * H,
					  LS_WEB_PAGE_VIEW, NULL, 500, NULL));
	const uint8_t *e = ls_lead_ext(l, &n);
	ck_assert_uint_eq(n, sizeof ext);
	ck_assert_mem_eq(e, ext, sizeof ext);

	/* in the blob, the ext is last; through decode, apply and encode it
	 * stays */
	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_uint_eq(b.data[b.len - sizeof ext - 1], sizeof ext);
	ck_assert_mem_eq(b.data + b.len - sizeof ext, ext, sizeof ext);
	ls_lead *d = decode_ok(&conf, &b);
	apply_ok(d, &conf, ev_email("s-e", T0 + 61 * H, LS_EMAIL_OPENED, "c"));
	encode_ok(d, &conf, &b);
	ck_assert_mem_eq(b.data + b.len - sizeof ext, ext, sizeof ext);
	e = ls_lead_ext(d, &n);
	ck_assert_uint_eq(n, sizeof ext);
	ck_assert_mem_eq(e, ext, sizeof ext);

	/* the lead's state is the same as without ext: the blobs differ by
	 * the section only */
	ls_lead *plain = decode_ok(&conf, &b);
	ck_assert_int_eq(ls_lead_set_ext(plain, NULL, 0), LS_LEAD_APPLIED);
	ls_buf bp = { 0 };
	encode_ok(plain, &conf, &bp);
	ck_assert_uint_eq(bp.len + 1 + sizeof ext, b.len);
	ck_assert_mem_eq(bp.data, b.data, bp.len);

	ls_buf_free(&bp);
	ls_buf_free(&b);
	ls_lead_free(plain);
	ls_lead_free(d);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

static Suite *lead_blob_suite(void)
{
	Suite *s = suite_create("lead-blob");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 100);
	tcase_add_test(tc, test_roundtrip_and_sizes);
	tcase_add_test(tc, test_determinism_and_restore);
	tcase_add_test(tc, test_spec_change);
	tcase_add_test(tc, test_decode_fuzz);
	tcase_add_test(tc, test_decode_rejects_v1);
	tcase_add_test(tc, test_ext_roundtrip_and_golden);
	tcase_add_test(tc, test_ext_set_and_clear);
	tcase_add_test(tc, test_prefetch_changes_nothing);
	tcase_add_test(tc, test_distinct_golden);
	tcase_add_test(tc, test_ext_decode_rejects);
	tcase_add_test(tc, test_ext_survives_apply);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(lead_blob_suite(), CK_NORMAL);
}
