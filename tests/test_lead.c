/*
 * Unit tests for models/ls_lead: dedupe (its horizon against the grace,
 * and independence of the order events arrive in), late events days
 * behind the watermark, derived features by hand, the profile maps,
 * and the blob: round trips, sizes of realistic leads, determinism across
 * a save/restore, decoding under a changed feature set, refusing old
 * versions, and fuzzing the decoder with random, truncated and bit-flipped
 * input; the ext bytes other modules keep in the blob.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ls_lead.h"
#include "ls_window.h"

#define H LS_WINDOW_MS_HOUR
#define D LS_WINDOW_MS_DAY
#define MIN LS_WINDOW_MS_MINUTE

/* 2023-11-14T22:13:20Z, a realistic epoch-ms timestamp. */
#define T0 INT64_C(1700000000000)

static ls_feature_set *mk_set(const ls_feature_spec *specs, size_t n)
{
	char err[256] = "";
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "feature set rejected: %s", err);
	return set;
}

static ls_feature_set *default_set(void)
{
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	return mk_set(specs, n);
}

/* splitmix64: a fixed sequence, so every run tests the same cases. */
static uint64_t rng = 0x243f6a8885a308d3u;
static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Event ids live in a small pool of static buffers; a lead keeps only
 * their hashes, so reuse after the apply is fine. */
static const char *idf(const char *prefix, unsigned n)
{
	static char pool[8][40];
	static unsigned next;
	char *b = pool[next++ % 8];
	snprintf(b, sizeof pool[0], "%s-%u", prefix, n);
	return b;
}

static ls_event base_event(ls_source src, const char *id, int64_t ts)
{
	ls_event e;
	memset(&e, 0, sizeof e);
	e.source = src;
	e.event_id = id;
	e.lead_id = "lead-1";
	e.ts = ts;
	return e;
}

static ls_event ev_email(const char *id, int64_t ts, ls_email_type t,
			 const char *campaign)
{
	ls_event e = base_event(LS_SOURCE_EMAIL, id, ts);
	e.u.email.type = t;
	e.u.email.campaign_id = campaign;
	return e;
}

static ls_event ev_web(const char *id, int64_t ts, ls_web_type t,
		       const char *cat, int64_t dur_ms, const char *session)
{
	ls_event e = base_event(LS_SOURCE_WEB, id, ts);
	e.u.web.type = t;
	e.u.web.url = "https://example.com/page";
	e.u.web.page_category = cat;
	e.u.web.has_duration_ms = dur_ms >= 0;
	e.u.web.duration_ms = dur_ms;
	e.u.web.session_id = session;
	return e;
}

static ls_event ev_call(const char *id, int64_t ts, ls_call_outcome o,
			int64_t dur, bool has_sent, double sent)
{
	ls_event e = base_event(LS_SOURCE_CALL, id, ts);
	e.u.call.direction = LS_CALL_OUTBOUND;
	e.u.call.outcome = o;
	e.u.call.duration_s = dur;
	e.u.call.has_sentiment = has_sent;
	e.u.call.sentiment = sent;
	return e;
}

static void apply_ok(ls_lead *l, const ls_lead_conf *c, ls_event e)
{
	int rc = ls_lead_apply(l, c, &e);
	ck_assert_msg(rc == LS_LEAD_APPLIED, "event %s ts %lld wm %lld: %s", e.event_id, (long long)e.ts, (long long)ls_lead_watermark(l),
		      ls_lead_result_str(rc));
}

/* The value called name at T. */
static double value_of(const ls_lead *l, const ls_lead_conf *c, int64_t T,
		       const char *name)
{
	double out[128];
	int n = ls_lead_features(l, c, T, out, 128);
	ck_assert_int_gt(n, 0);
	for (int i = 0; i < n; i++)
		if (strcmp(ls_feature_set_value_name(c->features, (size_t)i),
			   name) == 0)
			return out[i];
	ck_abort_msg("no feature value %s", name);
	return NAN;
}

static void encode_ok(const ls_lead *l, const ls_lead_conf *c, ls_buf *b)
{
	ck_assert_int_eq(ls_lead_encode(l, c, b), LS_LEAD_APPLIED);
}

static ls_lead *decode_ok(const ls_lead_conf *c, const ls_buf *b)
{
	ls_lead *l = NULL;
	char err[200] = "";
	int rc = ls_lead_decode(c, b->data, b->len, &l, err, sizeof err);
	ck_assert_msg(rc == LS_LEAD_APPLIED, "decode: %s", err);
	ck_assert_ptr_nonnull(l);
	return l;
}

/* ---- dedupe ---- */

START_TEST(test_dedupe_inside_and_outside_k)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.dedupe_k = 4;
	ls_lead *l = ls_lead_new(&conf);

	for (unsigned i = 0; i < 4; i++)
		apply_ok(l, &conf, ev_web(idf("w", i), T0 + i * 1000,
					  LS_WEB_PAGE_VIEW, NULL, -1, NULL));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	/* w-0 is among the 4 newest: duplicate, nothing changes */
	ls_event again = ev_web("w-0", T0, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &again), LS_LEAD_DUPLICATE);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 4);
	/* any source shares the memory: an email with the same id and ts */
	ls_event em = ev_email("w-3", T0 + 3000, LS_EMAIL_OPENED, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &em), LS_LEAD_DUPLICATE);

	apply_ok(l, &conf, ev_web(idf("w", 4), T0 + 4000, LS_WEB_PAGE_VIEW,
				  NULL, -1, NULL));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	/* w-0 now has 4 newer events: outside the memory, applied again;
	 * it does not come back into the memory (4 events are newer), so
	 * every further repeat is applied too */
	ck_assert_int_eq(ls_lead_apply(l, &conf, &again), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &again), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 7);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	/* w-1 .. w-4 are the 4 newest */
	ls_event w1 = ev_web("w-1", T0 + 1000, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ls_event w2 = ev_web("w-2", T0 + 2000, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ls_event w4 = ev_web("w-4", T0 + 4000, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &w1), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &w4), LS_LEAD_DUPLICATE);
	/* the same id with another ts is another event: applied, and it
	 * pushes w-1 out */
	ls_event em5 = ev_email("w-3", T0 + 5000, LS_EMAIL_OPENED, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &em5), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &em5), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &em), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &w1), LS_LEAD_APPLIED);

	/* ids are remembered across a save and restore */
	ls_buf b = { 0 }, b2 = { 0 };
	encode_ok(l, &conf, &b);
	ls_lead *d = decode_ok(&conf, &b);
	ck_assert_uint_eq(ls_lead_n_remembered(d), 4);
	encode_ok(d, &conf, &b2);
	ck_assert_uint_eq(b.len, b2.len);
	ck_assert_mem_eq(b.data, b2.data, b.len);
	ck_assert_int_eq(ls_lead_apply(d, &conf, &w2), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(d, &conf, &em5), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(d, &conf, &w1), LS_LEAD_APPLIED);
	/* w-0 .. w-4, w-0 twice more and w-1 once more on the original,
	 * w-1 once more here */
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 8);
	ck_assert_uint_eq(ls_lead_event_count(d, LS_SOURCE_WEB), 9);
	ls_lead_free(d);
	ls_buf_free(&b);
	ls_buf_free(&b2);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* With the horizon equal to the grace, an id is forgotten once its event
 * leaves the grace: its redelivery is too late by then, so nothing slips
 * through. */
START_TEST(test_dedupe_horizon_equal_to_grace)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.grace_ms = H;
	conf.dedupe_horizon_ms = H;
	ls_lead *l = ls_lead_new(&conf);
	ls_event first = ev_email("e-1", T0, LS_EMAIL_SENT, "c1");
	apply_ok(l, &conf, first);
	apply_ok(l, &conf, ev_email("e-2", T0 + 30 * MIN, LS_EMAIL_OPENED, "c1"));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 2);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_DUPLICATE);
	apply_ok(l, &conf, ev_email("e-3", T0 + H + 1, LS_EMAIL_CLICKED, "c1"));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 2);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_TOO_LATE);
	apply_ok(l, &conf, ev_email("e-4", T0 + D, LS_EMAIL_SENT, "c2"));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 1);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* The defaults: a 1 h horizon inside a 30 d grace. A repeat within the
 * horizon is a duplicate; one older than the horizon but within the grace
 * is applied again (counted twice): that is the documented horizon. */
START_TEST(test_dedupe_horizon_shorter_than_grace)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ck_assert_int_eq(conf.grace_ms, 30 * D);
	ck_assert_int_eq(conf.dedupe_horizon_ms, H);
	ls_lead *l = ls_lead_new(&conf);
	ls_event first = ev_email("h-1", T0, LS_EMAIL_OPENED, "c1");
	ls_event second = ev_email("h-2", T0 + 30 * MIN, LS_EMAIL_OPENED, "c1");
	apply_ok(l, &conf, first);
	apply_ok(l, &conf, second);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 2);
	/* within the horizon: a duplicate, nothing changes */
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_DUPLICATE);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_EMAIL), 2);

	/* the watermark moves 1 h + 1 ms past h-1: h-1 leaves the horizon
	 * (not the grace); h-2 is still in it */
	ls_event third = ev_email("h-3", T0 + H + 1, LS_EMAIL_OPENED, "c1");
	apply_ok(l, &conf, third);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 2);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &second), LS_LEAD_DUPLICATE);
	/* h-1's repeat is neither too late nor remembered: applied again,
	 * every time (it is below the horizon, so never remembered) */
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_EMAIL), 5);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "email_opens_24h"), 5.0);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 2);

	/* the edge: ts == watermark - horizon is remembered, one ms older
	 * is not */
	int64_t wm = ls_lead_watermark(l);
	ls_event edge = ev_email("h-edge", wm - H, LS_EMAIL_OPENED, "c1");
	ls_event below = ev_email("h-below", wm - H - 1, LS_EMAIL_OPENED, "c1");
	apply_ok(l, &conf, edge);
	apply_ok(l, &conf, below);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 3);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &edge), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &below), LS_LEAD_APPLIED);

	/* it survives a save and restore the same way */
	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ls_lead *d = decode_ok(&conf, &b);
	ck_assert_uint_eq(ls_lead_n_remembered(d), 3);
	ck_assert_int_eq(ls_lead_apply(d, &conf, &edge), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(d, &conf, &first), LS_LEAD_APPLIED);
	ls_lead_free(d);

	/* once the watermark is more than the grace past h-1, its repeat is
	 * too late; the memory is down to the new event */
	apply_ok(l, &conf, ev_email("h-4", T0 + 31 * D, LS_EMAIL_SENT, "c2"));
	ck_assert_uint_eq(ls_lead_n_remembered(l), 1);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_TOO_LATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &third), LS_LEAD_TOO_LATE);

	/* horizon 0: only events at the watermark itself are remembered */
	ls_lead_free(l);
	conf.dedupe_horizon_ms = 0;
	l = ls_lead_new(&conf);
	apply_ok(l, &conf, first);
	apply_ok(l, &conf, second);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 1);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &second), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &first), LS_LEAD_APPLIED);
	ls_buf_free(&b);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* A horizon above the grace is valid and acts as the grace: ids older
 * than the grace would only match repeats that are too late anyway, so
 * they are not kept, and the state is byte for byte that of horizon ==
 * grace. */
START_TEST(test_dedupe_horizon_above_grace)
{
	ls_feature_set *set = default_set();
	ls_lead_conf wide, same;
	ls_lead_conf_default(&wide, set);
	wide.grace_ms = H;
	wide.dedupe_horizon_ms = 3 * D;
	char err[128] = "";
	ck_assert_msg(ls_lead_conf_check(&wide, err, sizeof err), "%s", err);
	same = wide;
	same.dedupe_horizon_ms = H;
	ls_lead *a = ls_lead_new(&wide), *b = ls_lead_new(&same);
	/* a-0 .. a-5 at T0, T0 + 20 min, ..., T0 + 100 min */
	for (unsigned i = 0; i < 6; i++) {
		ls_event e = ev_web(idf("a", i), T0 + i * 20 * MIN,
				    LS_WEB_PAGE_VIEW, NULL, -1, NULL);
		apply_ok(a, &wide, e);
		apply_ok(b, &same, e);
	}
	/* watermark T0 + 100 min: ids back to T0 + 40 min, the grace, not
	 * the 3 d horizon */
	ck_assert_uint_eq(ls_lead_n_remembered(a), 4);
	ls_event a2 = ev_web("a-2", T0 + 40 * MIN, LS_WEB_PAGE_VIEW, NULL, -1,
			     NULL);
	ls_event a1 = ev_web("a-1", T0 + 20 * MIN, LS_WEB_PAGE_VIEW, NULL, -1,
			     NULL);
	ck_assert_int_eq(ls_lead_apply(a, &wide, &a2), LS_LEAD_DUPLICATE);
	/* the forgotten ones are caught anyway: too late */
	ck_assert_int_eq(ls_lead_apply(a, &wide, &a1), LS_LEAD_TOO_LATE);
	ls_buf ba = { 0 }, bb = { 0 };
	encode_ok(a, &wide, &ba);
	encode_ok(b, &same, &bb);
	ck_assert_uint_eq(ba.len, bb.len);
	ck_assert_mem_eq(ba.data, bb.data, ba.len);
	ls_buf_free(&ba);
	ls_buf_free(&bb);
	ls_lead_free(a);
	ls_lead_free(b);
	ls_feature_set_free(set);
}
END_TEST

/* A backlog read topic by topic: a lead's email events 2 days ahead of
 * its web events. With the 30 d grace the web event is applied to its
 * slices (counted in the windows that still cover it, not in those that
 * do not) and the state is that of the same events in ts order; with a
 * 1 h grace it is too late and changes nothing. */
START_TEST(test_late_days_behind)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	const int64_t now = T0 - T0 % H + 30 * MIN;
	ls_event mail = ev_email("m-1", now, LS_EMAIL_OPENED, "c1");
	ls_event web = ev_web("w-1", now - 2 * D, LS_WEB_PAGE_VIEW, "pricing",
			      45000, "s-1");

	ls_lead *l = ls_lead_new(&conf);
	apply_ok(l, &conf, mail);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &web), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_watermark(l), now);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 1);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "web_activity_7d"), 1.0);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "web_activity_1h"), 0.0);
	ck_assert_double_eq_tol(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
					 "web_sessions_7d"), 1.0, 0.1);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "days_since_last_web"), 2.0);
	/* it is older than the horizon, so not remembered: only m-1 is */
	ck_assert_uint_eq(ls_lead_n_remembered(l), 1);

	/* the same two events in ts order: the same bytes */
	ls_lead *r = ls_lead_new(&conf);
	apply_ok(r, &conf, web);
	apply_ok(r, &conf, mail);
	ls_buf bl = { 0 }, br = { 0 };
	encode_ok(l, &conf, &bl);
	encode_ok(r, &conf, &br);
	ck_assert_uint_eq(bl.len, br.len);
	ck_assert_mem_eq(bl.data, br.data, bl.len);
	ls_lead_free(r);
	ls_lead_free(l);

	/* with the old 1 h grace it is too late */
	conf.grace_ms = H;
	l = ls_lead_new(&conf);
	apply_ok(l, &conf, mail);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &web), LS_LEAD_TOO_LATE);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 0);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "web_activity_7d"), 0.0);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "days_since_last_web"), 365.0);
	ls_buf_free(&bl);
	ls_buf_free(&br);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* The memory is the dedupe_k newest events by event time (ts, then hash)
 * within the horizon, whatever order they arrived in. */
START_TEST(test_dedupe_newest_by_event_time)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.dedupe_k = 4;
	conf.grace_ms = H; /* and the default 1 h horizon */
	ls_lead *l = ls_lead_new(&conf);
	static const char *const tid[] = { NULL, "t-10", "t-20", "t-30",
					   "t-40", "t-50" };
	ls_event t[6]; /* t[i]: at T0 + 10 i ms, i = 1..5 */
	for (unsigned i = 1; i <= 5; i++) {
		t[i] = ev_web(tid[i], T0 + 10 * i, LS_WEB_PAGE_VIEW, NULL, -1,
			      NULL);
		apply_ok(l, &conf, t[i]);
	}
	/* remembered: the 4 greatest (ts, hash) of ts 10..50, all within the
	 * horizon: 20, 30, 40, 50 */
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	for (unsigned i = 5; i >= 2; i--)
		ck_assert_int_eq(ls_lead_apply(l, &conf, &t[i]),
				 LS_LEAD_DUPLICATE);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 5);
	/* ts 10 is outside the memory and not too late (10 >= 50 - grace):
	 * applied again, every time, since it never ranks among the 4 */
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[1]), LS_LEAD_APPLIED);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[1]), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_WEB), 7);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	for (unsigned i = 2; i <= 5; i++)
		ck_assert_int_eq(ls_lead_apply(l, &conf, &t[i]),
				 LS_LEAD_DUPLICATE);

	/* a newer event arriving out of order (ts 45 after ts 50) takes its
	 * place by event time: the memory is 30, 40, 45, 50, so 20, the
	 * smallest, went although it arrived after 45's predecessors */
	ls_event t45 = ev_web("t-45", T0 + 45, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	apply_ok(l, &conf, t45);
	ck_assert_int_eq(ls_lead_watermark(l), T0 + 50);
	ck_assert_uint_eq(ls_lead_n_remembered(l), 4);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t45), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[5]), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[4]), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[3]), LS_LEAD_DUPLICATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[2]), LS_LEAD_APPLIED);
	/* an older one out of order (ts 15) is applied but not remembered */
	ls_event t15 = ev_web("t-15", T0 + 15, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	apply_ok(l, &conf, t15);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t15), LS_LEAD_APPLIED);
	/* once the watermark leaves ts 10 more than the grace behind, its
	 * repeat is too late; ts 50 == watermark - grace is still on time
	 * and, with 4 newer events, outside the memory */
	for (unsigned i = 0; i < 4; i++)
		apply_ok(l, &conf, ev_web(idf("push", i), T0 + 50 + H - i,
					  LS_WEB_PAGE_VIEW, NULL, -1, NULL));
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[1]), LS_LEAD_TOO_LATE);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &t[5]), LS_LEAD_APPLIED);
	ls_lead_free(l);

	/* the same events in another order: the same bytes */
	ls_lead *a = ls_lead_new(&conf), *b = ls_lead_new(&conf);
	for (unsigned i = 1; i <= 5; i++)
		apply_ok(a, &conf, t[i]);
	apply_ok(a, &conf, t45);
	static const unsigned order_b[] = { 5, 1, 3, 2, 4 };
	apply_ok(b, &conf, t45);
	for (unsigned i = 0; i < 5; i++)
		apply_ok(b, &conf, t[order_b[i]]);
	ls_buf ba = { 0 }, bb = { 0 };
	encode_ok(a, &conf, &ba);
	encode_ok(b, &conf, &bb);
	ck_assert_uint_eq(ba.len, bb.len);
	ck_assert_mem_eq(ba.data, bb.data, ba.len);
	ls_lead_free(a);
	ls_lead_free(b);

	/* equal ts: the hash decides. Of 5 events at one ts, the one with
	 * the smallest hash is the one left out, in any order. */
	static const char *const tie[] = { "tie-a", "tie-b", "tie-c", "tie-d",
					   "tie-e" };
	size_t lowest = 0;
	for (size_t i = 1; i < 5; i++)
		if (XXH3_64bits(tie[i], strlen(tie[i])) <
		    XXH3_64bits(tie[lowest], strlen(tie[lowest])))
			lowest = i;
	a = ls_lead_new(&conf);
	b = ls_lead_new(&conf);
	for (size_t i = 0; i < 5; i++) {
		apply_ok(a, &conf, ev_email(tie[i], T0, LS_EMAIL_OPENED, "c"));
		apply_ok(b, &conf, ev_email(tie[4 - i], T0, LS_EMAIL_OPENED, "c"));
	}
	encode_ok(a, &conf, &ba);
	encode_ok(b, &conf, &bb);
	ck_assert_uint_eq(ba.len, bb.len);
	ck_assert_mem_eq(ba.data, bb.data, ba.len);
	for (size_t i = 0; i < 5; i++) {
		ls_event e = ev_email(tie[i], T0, LS_EMAIL_OPENED, "c");
		ck_assert_int_eq(ls_lead_apply(a, &conf, &e),
				 i == lowest ? LS_LEAD_APPLIED : LS_LEAD_DUPLICATE);
	}
	ls_buf_free(&ba);
	ls_buf_free(&bb);
	ls_lead_free(a);
	ls_lead_free(b);
	ls_feature_set_free(set);
}
END_TEST

/* ---- order independence ---- */

#define POOL_MAX 512

/* Distinct events of one lead, from every source but profile (whose merge
 * is order-dependent by design; its topic's order is fixed). */
typedef struct ev_pool {
	ls_event ev[POOL_MAX];
	char ids[POOL_MAX][24];
	size_t n;
} ev_pool;

static void random_events(ev_pool *p, size_t n, int64_t base, int64_t spread)
{
	static const char *const camp[] = { "c1", "c2", "c3", "c4", NULL };
	static const char *const cats[] = { "pricing", "blog", "docs",
					    "product", NULL };
	static const char *const sess[] = { "s1", "s2", "s3", "s4", "s5",
					    "s6", "s7", "s8" };
	ck_assert_uint_le(n, POOL_MAX);
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(p->ids[i], sizeof p->ids[0], "oi-%zu", i);
		/* every 8th event shares the ts of an earlier one, so that
		 * ties on ts (broken by the hash) are common */
		int64_t ts = i % 8 == 7 ? p->ev[i - 1 - rnd() % 7].ts
					: base + (int64_t)(rnd() %
							   (uint64_t)(spread + 1));
		ls_event e;
		switch (rnd() % 4) {
		case 0:
			e = ev_email(NULL, ts,
				     (ls_email_type)(rnd() % LS_EMAIL__COUNT),
				     camp[rnd() % 5]);
			break;
		case 1:
			e = ev_web(NULL, ts, (ls_web_type)(rnd() % LS_WEB__COUNT),
				   cats[rnd() % 5],
				   rnd() % 4 ? (int64_t)(rnd() % 600000) : -1,
				   sess[rnd() % 8]);
			break;
		case 2:
			e = ev_call(NULL, ts,
				    (ls_call_outcome)(rnd() % LS_CALL_OUTCOME__COUNT),
				    (int64_t)(rnd() % 1800), rnd() % 2,
				    (double)(rnd() % 2001) / 1000.0 - 1.0);
			break;
		default:
			e = base_event(LS_SOURCE_OUTCOME, NULL, ts);
			e.u.outcome.outcome =
				(ls_outcome_type)(rnd() % LS_OUTCOME__COUNT);
			e.u.outcome.has_value = rnd() % 2;
			e.u.outcome.value = (double)(rnd() % 10000000) / 100.0;
			break;
		}
		e.event_id = p->ids[i];
		p->ev[i] = e;
	}
}

static const ev_pool *sort_pool; /* qsort has no context argument */

static int cmp_ix_ts(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int64_t tx = sort_pool->ev[x].ts, ty = sort_pool->ev[y].ts;
	if (tx != ty)
		return tx < ty ? -1 : 1;
	return (x > y) - (x < y);
}

/*
 * Permutation number k of the pool: 0 in ts order, 1 in reverse ts order,
 * 2 in generation order, any other a uniform random shuffle (no relative
 * order kept).
 */
static void permutation(const ev_pool *p, unsigned k, size_t *ix)
{
	for (size_t i = 0; i < p->n; i++)
		ix[i] = i;
	if (k == 0 || k == 1) {
		sort_pool = p;
		qsort(ix, p->n, sizeof(size_t), cmp_ix_ts);
		if (k == 1)
			for (size_t i = 0; i < p->n / 2; i++) {
				size_t t = ix[i];
				ix[i] = ix[p->n - 1 - i];
				ix[p->n - 1 - i] = t;
			}
	} else if (k > 2) {
		for (size_t i = p->n - 1; i > 0; i--) {
			size_t j = (size_t)(rnd() % (i + 1));
			size_t t = ix[i];
			ix[i] = ix[j];
			ix[j] = t;
		}
	}
}

/* Apply the pool in the order ix (only where use[i], if use is given);
 * rc[i] receives event i's result. cut > 0: save and restore the lead
 * after cut events, as a crash and replay would. */
static ls_lead *apply_in(const ls_lead_conf *c, const ev_pool *p,
			 const size_t *ix, const bool *use, int *rc, size_t cut)
{
	ls_lead *l = ls_lead_new(c);
	ck_assert_ptr_nonnull(l);
	for (size_t i = 0; i < p->n; i++) {
		if (cut > 0 && i == cut) {
			ls_buf b = { 0 };
			encode_ok(l, c, &b);
			ls_lead_free(l);
			l = decode_ok(c, &b);
			ls_buf_free(&b);
		}
		size_t e = ix[i];
		if (use && !use[e])
			continue;
		int r = ls_lead_apply(l, c, &p->ev[e]);
		ck_assert_msg(r == LS_LEAD_APPLIED || r == LS_LEAD_TOO_LATE,
			      "event %zu: %s", e, ls_lead_result_str(r));
		if (rc)
			rc[e] = r;
	}
	return l;
}

static uint64_t blob_varint(const ls_buf *b, size_t *pos)
{
	uint64_t v = 0;
	for (unsigned shift = 0; *pos < b->len; shift += 7) {
		uint8_t x = b->data[(*pos)++];
		v |= (uint64_t)(x & 0x7f) << shift;
		if (!(x & 0x80))
			break;
	}
	return v;
}

/* The bytes of the remembered ids in a blob, n_seen included (layout in
 * ls_lead.h): [*from, *to). */
static void seen_section(const ls_buf *b, size_t *from, size_t *to)
{
	size_t pos = 1; /* after the version */
	uint8_t flags = b->data[pos++];
	for (int i = 0; i < (flags & 1) + LS_SOURCE__COUNT; i++)
		blob_varint(b, &pos);
	*from = pos;
	uint64_t n = blob_varint(b, &pos);
	for (uint64_t i = 0; i < n; i++) {
		pos += 8;
		blob_varint(b, &pos);
	}
	ck_assert_uint_le(pos, b->len);
	*to = pos;
}

#define N_PERMS 50

/*
 * ~500 distinct events, none too late in any order (all within the grace
 * of the greatest ts): every permutation gives the same bytes, and so
 * does a save and restore half way. Configurations: a 1 h grace and
 * horizon with 32 ids; a 3-day grace and horizon so that late arrivals
 * straddle the 1 h and 24 h windows' eviction, with 32 ids and with a
 * memory big enough for all events; a 3-day grace with a 1 h horizon;
 * and the defaults (30 d grace, 1 h horizon, 32 ids).
 */
START_TEST(test_order_independence)
{
	ls_feature_set *set = default_set();
	ev_pool *p = calloc(1, sizeof(*p));
	size_t *ix = calloc(POOL_MAX, sizeof(size_t));
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(ix);
	struct {
		int64_t grace, horizon;
		uint32_t k;
	} confs[] = {
		{ H, H, LS_LEAD_DEFAULT_DEDUPE_K },
		{ 3 * D, 3 * D, LS_LEAD_DEFAULT_DEDUPE_K },
		{ 3 * D, 3 * D, LS_LEAD_MAX_DEDUPE_K },
		{ 3 * D, H, LS_LEAD_DEFAULT_DEDUPE_K },
		{ LS_LEAD_DEFAULT_GRACE_MS, LS_LEAD_DEFAULT_DEDUPE_HORIZON_MS,
		  LS_LEAD_DEFAULT_DEDUPE_K },
	};
	for (size_t ci = 0; ci < sizeof confs / sizeof confs[0]; ci++) {
		ls_lead_conf conf;
		ls_lead_conf_default(&conf, set);
		conf.grace_ms = confs[ci].grace;
		conf.dedupe_horizon_ms = confs[ci].horizon;
		conf.dedupe_k = confs[ci].k;
		/* ts in [base, base + grace]: never below max ts - grace */
		random_events(p, 500, T0 + 7 * H + 1234, conf.grace_ms);
		/* the memory: the top dedupe_k of those within the horizon */
		int64_t max_ts = 0;
		for (size_t i = 0; i < p->n; i++)
			max_ts = p->ev[i].ts > max_ts ? p->ev[i].ts : max_ts;
		size_t in_horizon = 0;
		for (size_t i = 0; i < p->n; i++)
			in_horizon += p->ev[i].ts >= max_ts - conf.dedupe_horizon_ms;
		size_t want_mem = in_horizon < conf.dedupe_k ? in_horizon
							      : conf.dedupe_k;
		ck_assert_uint_ge(want_mem, 1);

		ls_buf ref = { 0 }, b = { 0 };
		for (unsigned k = 0; k < N_PERMS; k++) {
			permutation(p, k, ix);
			size_t cut = k % 10 == 5 ? p->n / 2 : 0;
			ls_lead *l = apply_in(&conf, p, ix, NULL, NULL, cut);
			uint64_t total = 0;
			for (int s = 0; s < LS_SOURCE__COUNT; s++)
				total += ls_lead_event_count(l, (ls_source)s);
			ck_assert_uint_eq(total, p->n); /* none too late */
			ck_assert_uint_eq(ls_lead_n_remembered(l), want_mem);
			encode_ok(l, &conf, k == 0 ? &ref : &b);
			ls_lead_free(l);
			if (k > 0)
				ck_assert_msg(b.len == ref.len &&
						      memcmp(b.data, ref.data,
							     b.len) == 0,
					      "conf %zu permutation %u: blob "
					      "differs (%zu vs %zu bytes)",
					      ci, k, b.len, ref.len);
		}
		/* replaying every event once more: exactly the remembered
		 * ones (the top dedupe_k by (ts, hash)) are duplicates */
		ls_lead *l = apply_in(&conf, p, ix, NULL, NULL, 0);
		size_t dups = 0;
		for (size_t i = 0; i < p->n; i++) {
			int r = ls_lead_apply(l, &conf, &p->ev[i]);
			ck_assert(r == LS_LEAD_APPLIED || r == LS_LEAD_DUPLICATE);
			dups += r == LS_LEAD_DUPLICATE;
		}
		ck_assert_uint_eq(dups, ls_lead_n_remembered(l));
		ls_lead_free(l);
		ls_buf_free(&ref);
		ls_buf_free(&b);
	}
	free(ix);
	free(p);
	ls_feature_set_free(set);
}
END_TEST

/*
 * The same with ~500 events spread over 3 hours and a 1 h grace, so that
 * some are too late in some orders (with a 1 h and a 20 min horizon). Here the blobs of different orders
 * cannot all be identical, and this test does not ask them to be: whether
 * an event is too late depends on the watermark when it arrives, so the
 * set of events *applied* differs between orders (in ts order none is too
 * late; in a random order most of the first two hours are), and with it
 * the counts and windows. A too-late event changes nothing, though, so
 * what must hold is that the state is a function of the set of applied
 * events: each order's blob equals that of its applied events fed in ts
 * order. And the dedupe memory, which only holds events within the
 * horizon (at most the grace) of the final watermark (never too late in
 * any order), is the same bytes in every order.
 */
START_TEST(test_order_independence_too_late)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.grace_ms = H;
	conf.dedupe_horizon_ms = _i == 0 ? H : 20 * MIN; /* loop test, 0..1 */
	ev_pool *p = calloc(1, sizeof(*p));
	size_t *ix = calloc(POOL_MAX, sizeof(size_t));
	size_t *sorted = calloc(POOL_MAX, sizeof(size_t));
	int *rc = calloc(POOL_MAX, sizeof(int));
	bool *used = calloc(POOL_MAX, sizeof(bool));
	ck_assert(p && ix && sorted && rc && used);
	random_events(p, 500, T0 + 7 * H + 1234, 3 * H);
	permutation(p, 0, sorted);

	ls_buf b = { 0 }, ref = { 0 }, mem0 = { 0 };
	size_t min_late = SIZE_MAX, max_late = 0;
	for (unsigned k = 0; k < N_PERMS; k++) {
		permutation(p, k, ix);
		ls_lead *l = apply_in(&conf, p, ix, NULL, rc, 0);
		size_t late = 0;
		for (size_t i = 0; i < p->n; i++) {
			used[i] = rc[i] == LS_LEAD_APPLIED;
			late += !used[i];
		}
		if (k == 0)
			ck_assert_uint_eq(late, 0);
		min_late = late < min_late ? late : min_late;
		max_late = late > max_late ? late : max_late;
		encode_ok(l, &conf, &b);
		ls_lead_free(l);

		/* the same applied set, in ts order: the same bytes */
		l = apply_in(&conf, p, sorted, used, NULL, 0);
		encode_ok(l, &conf, &ref);
		ls_lead_free(l);
		ck_assert_msg(b.len == ref.len &&
				      memcmp(b.data, ref.data, b.len) == 0,
			      "permutation %u (%zu too late): blob differs from "
			      "its applied events in ts order", k, late);

		/* the dedupe memory is the same in every order */
		size_t from, to;
		seen_section(&b, &from, &to);
		if (k == 0) {
			mem0.len = mem0.cap = to - from;
			mem0.data = malloc(mem0.len);
			ck_assert_ptr_nonnull(mem0.data);
			memcpy(mem0.data, b.data + from, mem0.len);
			ck_assert_uint_gt(mem0.len, 1); /* it holds ids */
			continue;
		}
		ck_assert_uint_eq(to - from, mem0.len);
		ck_assert_mem_eq(b.data + from, mem0.data, mem0.len);
	}
	/* the orders did apply different sets: this is not vacuous */
	ck_assert_uint_eq(min_late, 0);
	ck_assert_uint_gt(max_late, 0);
	ls_buf_free(&b);
	ls_buf_free(&ref);
	ls_buf_free(&mem0);
	free(used);
	free(rc);
	free(sorted);
	free(ix);
	free(p);
	ls_feature_set_free(set);
}
END_TEST

/* ---- derived features by hand ---- */

START_TEST(test_velocity)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	/* no activity: exactly 1 */
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "web_velocity_1h_7d"), 1.0);
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "email_velocity_24h_30d"), 1.0);

	const int64_t now = T0 - T0 % H + 30 * MIN; /* mid-hour */
	unsigned n = 0;
	/* 4 events earlier in the week, 3 in the last hour */
	for (int d = 5; d >= 2; d--)
		apply_ok(l, &conf, ev_web(idf("v", n++), now - d * D,
					  LS_WEB_PAGE_VIEW, "blog", -1, NULL));
	for (int m = 2; m >= 0; m--)
		apply_ok(l, &conf, ev_web(idf("v", n++), now - m * 10 * MIN,
					  LS_WEB_PAGE_VIEW, "pricing", -1, NULL));
	ck_assert_double_eq(value_of(l, &conf, now, "web_activity_1h"), 3.0);
	ck_assert_double_eq(value_of(l, &conf, now, "web_activity_7d"), 7.0);
	/* (c_s * L/S + alpha) / (c_l + alpha) = (3 * 168 + 1) / (7 + 1) */
	ck_assert_double_eq_tol(value_of(l, &conf, now, "web_velocity_1h_7d"),
				505.0 / 8.0, 1e-12);
	/* two hours later the short window is empty: 1 / 8 */
	ck_assert_double_eq_tol(value_of(l, &conf, now + 2 * H,
					 "web_velocity_1h_7d"),
				1.0 / 8.0, 1e-12);
	ls_lead_free(l);

	/* a steady rate gives exactly 1: one event per hour for a week */
	l = ls_lead_new(&conf);
	const int64_t start = T0 - T0 % (7 * D);
	for (int h = 0; h < 7 * 24; h++)
		apply_ok(l, &conf, ev_web(idf("s", (unsigned)h), start + h * H + 1,
					  LS_WEB_PAGE_VIEW, NULL, -1, NULL));
	ck_assert_double_eq(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
				     "web_activity_7d"), 168.0);
	ck_assert_double_eq_tol(value_of(l, &conf, LS_LEAD_AT_WATERMARK,
					 "web_velocity_1h_7d"), 1.0, 1e-12);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

START_TEST(test_recency)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	/* never seen: the cap */
	ck_assert_double_eq(value_of(l, &conf, T0, "days_since_last_web"), 365.0);
	apply_ok(l, &conf, ev_web("r-1", T0, LS_WEB_DOWNLOAD, NULL, -1, NULL));
	apply_ok(l, &conf, ev_email("r-2", T0 + 12 * H, LS_EMAIL_SENT, "c"));
	/* a send is not the lead's engagement */
	ck_assert_double_eq(value_of(l, &conf, T0 + 12 * H,
				     "days_since_last_email"), 365.0);
	ck_assert_double_eq(value_of(l, &conf, T0 + 12 * H,
				     "days_since_last_web"), 0.5);
	ck_assert_double_eq(value_of(l, &conf, T0 + 36 * H,
				     "days_since_last_web"), 1.5);
	/* past every window, recency still knows */
	ck_assert_double_eq(value_of(l, &conf, T0 + 100 * D,
				     "days_since_last_web"), 100.0);
	ck_assert_double_eq(value_of(l, &conf, T0 + 1000 * D,
				     "days_since_last_web"), 365.0);
	/* a late event does not move it back */
	apply_ok(l, &conf, ev_web("r-3", T0 + 12 * H - 10 * MIN,
				  LS_WEB_PAGE_VIEW, NULL, -1, NULL));
	ck_assert_double_eq_tol(value_of(l, &conf, T0 + 36 * H,
					 "days_since_last_web"),
				(24 * H + 10 * MIN) / (double)D, 1e-12);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

START_TEST(test_sends_without_opens)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	unsigned n = 0;
	for (int i = 0; i < 5; i++)
		apply_ok(l, &conf, ev_email(idf("s", n++), T0 + i * D,
					    LS_EMAIL_SENT, "c"));
	for (int i = 0; i < 2; i++)
		apply_ok(l, &conf, ev_email(idf("s", n++), T0 + 4 * D + i * H,
					    LS_EMAIL_OPENED, "c"));
	int64_t T = T0 + 4 * D + 2 * H;
	ck_assert_double_eq(value_of(l, &conf, T, "email_sent_7d"), 5.0);
	ck_assert_double_eq(value_of(l, &conf, T, "sends_without_opens_7d"), 3.0);
	ck_assert_double_eq(value_of(l, &conf, T, "sends_without_opens_30d"), 3.0);
	/* more opens than sends (re-opens) floors at 0 */
	for (int i = 0; i < 4; i++)
		apply_ok(l, &conf, ev_email(idf("s", n++), T + i * MIN,
					    LS_EMAIL_OPENED, "c"));
	ck_assert_double_eq(value_of(l, &conf, T + H, "sends_without_opens_7d"),
			    0.0);
	/* 10 days on, the 7 d window has forgotten both */
	ck_assert_double_eq(value_of(l, &conf, T + 10 * D,
				     "sends_without_opens_7d"), 0.0);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

START_TEST(test_mean_sentiment)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *l = ls_lead_new(&conf);
	ck_assert_double_eq(value_of(l, &conf, T0, "mean_call_sentiment_30d"),
			    0.0);
	apply_ok(l, &conf, ev_call("c-1", T0, LS_CALL_CONNECTED, 300, true, 0.5));
	apply_ok(l, &conf, ev_call("c-2", T0 + D, LS_CALL_CONNECTED, 120, true,
				   -0.1));
	apply_ok(l, &conf, ev_call("c-3", T0 + 2 * D, LS_CALL_MEETING_BOOKED,
				   900, true, 0.3));
	/* no sentiment: counted as a call, not in the mean */
	apply_ok(l, &conf, ev_call("c-4", T0 + 3 * D, LS_CALL_NO_ANSWER, 0,
				   false, 0));
	int64_t T = T0 + 3 * D;
	ck_assert_double_eq_tol(value_of(l, &conf, T, "mean_call_sentiment_30d"),
				0.7 / 3.0, 1e-12);
	ck_assert_double_eq(value_of(l, &conf, T, "calls_30d"), 4.0);
	ck_assert_double_eq(value_of(l, &conf, T, "calls_connected_30d"), 3.0);
	ck_assert_double_eq(value_of(l, &conf, T, "meetings_booked_30d"), 1.0);
	ck_assert_double_eq(value_of(l, &conf, T, "call_seconds_30d"), 1320.0);
	ck_assert_double_eq(value_of(l, &conf, T, "days_since_last_call"), 0.0);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* ---- profile ---- */

START_TEST(test_profile_merge)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.max_attributes = 3;
	conf.max_metrics = 2;
	ls_lead *l = ls_lead_new(&conf);

	char longkey[LS_LEAD_KEY_MAX + 2];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	ls_attribute a1[] = { { "industry", "saas" }, { "country", "DE" },
			      { longkey, "ignored" } };
	ls_metric m1[] = { { "employees", 120 }, { "bad", NAN } };
	ls_event p = base_event(LS_SOURCE_PROFILE, "p-1", T0);
	p.u.profile.n_attributes = 3;
	p.u.profile.attributes = a1;
	p.u.profile.n_metrics = 2;
	p.u.profile.metrics = m1;
	apply_ok(l, &conf, p);
	ck_assert_uint_eq(ls_lead_n_attributes(l), 2);
	ck_assert_str_eq(ls_lead_attribute(l, "industry"), "saas");
	ck_assert_uint_eq(ls_lead_n_metrics(l), 1);

	/* merge by key: country replaced, industry kept, title added,
	 * region dropped (limit 3), "" removes */
	ls_attribute a2[] = { { "country", "FR" }, { "title", "VP Sales" },
			      { "region", "EMEA" } };
	ls_metric m2[] = { { "revenue", 1.5e7 }, { "employees", 130 },
			   { "third", 1 } };
	p = base_event(LS_SOURCE_PROFILE, "p-2", T0 + 1000);
	p.u.profile.n_attributes = 3;
	p.u.profile.attributes = a2;
	p.u.profile.n_metrics = 3;
	p.u.profile.metrics = m2;
	apply_ok(l, &conf, p);
	ck_assert_uint_eq(ls_lead_n_attributes(l), 3);
	ck_assert_str_eq(ls_lead_attribute(l, "country"), "FR");
	ck_assert_str_eq(ls_lead_attribute(l, "industry"), "saas");
	ck_assert_str_eq(ls_lead_attribute(l, "title"), "VP Sales");
	ck_assert_ptr_null(ls_lead_attribute(l, "region"));
	double v;
	ck_assert(ls_lead_metric(l, "employees", &v));
	ck_assert_double_eq(v, 130);
	ck_assert(ls_lead_metric(l, "revenue", &v));
	ck_assert_double_eq(v, 1.5e7);
	ck_assert(!ls_lead_metric(l, "third", &v));

	ls_attribute a3[] = { { "industry", "" } };
	p = base_event(LS_SOURCE_PROFILE, "p-3", T0 + 2000);
	p.u.profile.n_attributes = 1;
	p.u.profile.attributes = a3;
	apply_ok(l, &conf, p);
	ck_assert_ptr_null(ls_lead_attribute(l, "industry"));
	const char *k, *val;
	ck_assert(ls_lead_attribute_at(l, 0, &k, &val));
	ck_assert_str_eq(k, "country");
	ck_assert(ls_lead_attribute_at(l, 1, &k, &val));
	ck_assert_str_eq(k, "title");
	ck_assert(!ls_lead_attribute_at(l, 2, &k, &val));
	ck_assert_uint_eq(ls_lead_event_count(l, LS_SOURCE_PROFILE), 3);

	/* the profile survives a round trip, metrics with fractions too */
	ls_metric m4[] = { { "score", 0.125 }, { "employees", -3 } };
	p = base_event(LS_SOURCE_PROFILE, "p-4", T0 + 3000);
	p.u.profile.n_metrics = 2;
	p.u.profile.metrics = m4;
	apply_ok(l, &conf, p);
	ls_buf b = { 0 }, b2 = { 0 };
	encode_ok(l, &conf, &b);
	ls_lead *d = decode_ok(&conf, &b);
	ck_assert_str_eq(ls_lead_attribute(d, "country"), "FR");
	ck_assert(ls_lead_metric(d, "employees", &v));
	ck_assert_double_eq(v, -3);
	ck_assert(ls_lead_metric_at(d, 0, &k, &v));
	ck_assert_str_eq(k, "employees");
	encode_ok(d, &conf, &b2);
	ck_assert_uint_eq(b.len, b2.len);
	ck_assert_mem_eq(b.data, b2.data, b.len);
	ls_lead_free(d);
	ls_buf_free(&b);
	ls_buf_free(&b2);
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/* Over-cap profile entries are not kept and each is counted by reason;
 * the rest of the event is applied. */
START_TEST(test_profile_drops_counted)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	conf.max_attributes = 3;
	conf.max_metrics = 2;
	ls_lead *l = ls_lead_new(&conf);

	char key64[LS_LEAD_KEY_MAX + 1], key65[LS_LEAD_KEY_MAX + 2];
	char val256[LS_LEAD_VALUE_MAX + 1], val257[LS_LEAD_VALUE_MAX + 2];
	memset(key64, 'k', LS_LEAD_KEY_MAX);
	key64[LS_LEAD_KEY_MAX] = '\0';
	memset(key65, 'K', LS_LEAD_KEY_MAX + 1);
	key65[LS_LEAD_KEY_MAX + 1] = '\0';
	memset(val256, 'v', LS_LEAD_VALUE_MAX);
	val256[LS_LEAD_VALUE_MAX] = '\0';
	memset(val257, 'V', LS_LEAD_VALUE_MAX + 1);
	val257[LS_LEAD_VALUE_MAX + 1] = '\0';

	/* at the limits is kept; one byte over is dropped */
	ls_attribute a1[] = { { key64, val256 }, { key65, "x" }, { "", "x" },
			      { "long", val257 }, { "a", "1" }, { "b", "2" },
			      { "c", "3" } };
	ls_metric m1[] = { { "m1", 1 }, { "nan", NAN }, { "inf", INFINITY },
			   { key65, 2 }, { "m2", 2.5 }, { "m3", 3 } };
	ls_event p = base_event(LS_SOURCE_PROFILE, "p-1", T0);
	p.u.profile.n_attributes = 7;
	p.u.profile.attributes = a1;
	p.u.profile.n_metrics = 6;
	p.u.profile.metrics = m1;
	uint64_t drops[LS_LEAD_DROP__COUNT] = { 0 };
	ck_assert_int_eq(ls_lead_apply_counted(l, &conf, &p, drops), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_n_attributes(l), 3);
	ck_assert_str_eq(ls_lead_attribute(l, key64), val256);
	ck_assert_str_eq(ls_lead_attribute(l, "a"), "1");
	ck_assert_str_eq(ls_lead_attribute(l, "b"), "2");
	ck_assert_ptr_null(ls_lead_attribute(l, "c"));
	ck_assert_uint_eq(ls_lead_n_metrics(l), 2);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_BAD_KEY], 3); /* key65 twice, "" */
	ck_assert_uint_eq(drops[LS_LEAD_DROP_BAD_VALUE], 1);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_ATTRIBUTES_FULL], 1); /* c */
	ck_assert_uint_eq(drops[LS_LEAD_DROP_NOT_FINITE], 2);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_METRICS_FULL], 1); /* m3 */

	/* full: a known key still updates, a new one is dropped; counts add */
	ls_attribute a2[] = { { "a", "one" }, { "d", "4" } };
	ls_metric m2[] = { { "m2", 7 }, { "m4", 4 } };
	p = base_event(LS_SOURCE_PROFILE, "p-2", T0 + 1000);
	p.u.profile.n_attributes = 2;
	p.u.profile.attributes = a2;
	p.u.profile.n_metrics = 2;
	p.u.profile.metrics = m2;
	ck_assert_int_eq(ls_lead_apply_counted(l, &conf, &p, drops), LS_LEAD_APPLIED);
	ck_assert_str_eq(ls_lead_attribute(l, "a"), "one");
	double v;
	ck_assert(ls_lead_metric(l, "m2", &v));
	ck_assert_double_eq(v, 7);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_ATTRIBUTES_FULL], 2);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_METRICS_FULL], 2);

	/* a repeat is not applied, so nothing of it is counted as dropped */
	ck_assert_int_eq(ls_lead_apply_counted(l, &conf, &p, drops), LS_LEAD_DUPLICATE);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_ATTRIBUTES_FULL], 2);
	/* and without a counter array, the same event applies the same way */
	p.event_id = "p-3";
	ck_assert_int_eq(ls_lead_apply(l, &conf, &p), LS_LEAD_APPLIED);
	ck_assert_uint_eq(ls_lead_n_attributes(l), 3);

	for (int i = 0; i < LS_LEAD_DROP__COUNT; i++)
		ck_assert_str_ne(ls_lead_drop_name(i), "unknown");
	ck_assert_str_eq(ls_lead_drop_name(LS_LEAD_DROP__COUNT), "unknown");
	ls_lead_free(l);
	ls_feature_set_free(set);
}
END_TEST

/*
 * The worst a producer can do to one lead: thousands of distinct profile
 * keys at the maximum lengths, non-integral metrics, every dedupe slot
 * taken, events in every slice of every window with large values, and
 * the largest ext. Its blob stays within ls_lead_blob_bound(), the
 * number the README gives for the default limits.
 */
START_TEST(test_blob_bound_adversarial)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	size_t bound = ls_lead_blob_bound(&conf);
	ck_assert_uint_gt(bound, 0);
	ls_lead *l = ls_lead_new(&conf);
	uint64_t drops[LS_LEAD_DROP__COUNT] = { 0 };

	/* 31 days of events, every type every hour (web in every category),
	 * with distinct campaigns and sessions and large sums */
	static const char *cats[] = { "pricing", "product", "docs", "blog", "careers" };
	unsigned n = 0;
	for (int64_t ts = T0 - 31 * D; ts <= T0; ts += H) {
		char tag[32];
		snprintf(tag, sizeof tag, "x%u", n);
		for (int t = 0; t < LS_EMAIL__COUNT; t++)
			apply_ok(l, &conf, ev_email(idf("e", n++), ts, (ls_email_type)t, tag));
		for (int t = 0; t < LS_WEB__COUNT; t++)
			for (int c = 0; c < 5; c++)
				apply_ok(l, &conf, ev_web(idf("w", n++), ts, (ls_web_type)t,
							  cats[c], INT64_C(86400000), tag));
		for (int o = 0; o < LS_CALL_OUTCOME__COUNT; o++)
			apply_ok(l, &conf, ev_call(idf("c", n++), ts, (ls_call_outcome)o,
						   INT64_C(1000000000), true, -1.0));
		ls_event e = base_event(LS_SOURCE_OUTCOME, idf("o", n++), ts);
		e.u.outcome.outcome = (ls_outcome_type)(n % LS_OUTCOME__COUNT);
		e.u.outcome.has_value = true;
		e.u.outcome.value = 1e15;
		apply_ok(l, &conf, e);
	}
	/* 40 profile events of 100 new keys each, keys and values at max */
	static char keys[100][LS_LEAD_KEY_MAX + 1];
	static char vals[100][LS_LEAD_VALUE_MAX + 1];
	ls_attribute attrs[100];
	ls_metric mets[100];
	for (unsigned p = 0; p < 40; p++) {
		for (unsigned i = 0; i < 100; i++) {
			memset(keys[i], 'a' + (char)(i % 26), LS_LEAD_KEY_MAX);
			snprintf(keys[i], sizeof keys[i], "%04u-%03u", p, i);
			keys[i][strlen(keys[i])] = 'x';
			keys[i][LS_LEAD_KEY_MAX] = '\0';
			memset(vals[i], 'v', LS_LEAD_VALUE_MAX);
			vals[i][LS_LEAD_VALUE_MAX] = '\0';
			attrs[i] = (ls_attribute){ keys[i], vals[i] };
			mets[i] = (ls_metric){ keys[i], 0.1 + p * 100 + i };
		}
		ls_event e = base_event(LS_SOURCE_PROFILE, idf("p", p), T0);
		e.u.profile.n_attributes = 100;
		e.u.profile.attributes = attrs;
		e.u.profile.n_metrics = 100;
		e.u.profile.metrics = mets;
		ck_assert_int_eq(ls_lead_apply_counted(l, &conf, &e, drops),
				 LS_LEAD_APPLIED);
	}
	ck_assert_uint_eq(ls_lead_n_attributes(l), conf.max_attributes);
	ck_assert_uint_eq(ls_lead_n_metrics(l), conf.max_metrics);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_ATTRIBUTES_FULL], 4000 - conf.max_attributes);
	ck_assert_uint_eq(drops[LS_LEAD_DROP_METRICS_FULL], 4000 - conf.max_metrics);
	ck_assert_uint_eq(ls_lead_n_remembered(l), conf.dedupe_k);
	static uint8_t ext[LS_LEAD_EXT_MAX];
	memset(ext, 0xff, sizeof ext);
	ck_assert_int_eq(ls_lead_set_ext(l, ext, sizeof ext), LS_LEAD_APPLIED);

	ls_buf b = { 0 };
	encode_ok(l, &conf, &b);
	ck_assert_msg(b.len <= bound, "blob %zu bytes > bound %zu", b.len, bound);
	/* what a producer can grow is at its cap: profile keys and values at
	 * full length (metrics as 8-byte doubles), every dedupe slot (hash and
	 * a 1-byte age), the whole ext. The windows take the rest; their
	 * bound assumes 10-byte values in every slice, which counts reach
	 * only after 2^63 events. */
	size_t capped = 32 * (1 + LS_LEAD_KEY_MAX + 2 + LS_LEAD_VALUE_MAX) +
			32 * (1 + LS_LEAD_KEY_MAX + 1 + 8) + 32 * (8 + 1) +
			LS_LEAD_EXT_MAX;
	ck_assert_msg(b.len >= capped, "blob %zu bytes < %zu", b.len, capped);
	ls_buf_free(&b);
	ls_lead_free(l);

	/* the bound follows the limits */
	conf.max_attributes = 0;
	conf.max_metrics = 0;
	size_t small = ls_lead_blob_bound(&conf);
	ck_assert_uint_eq(bound - small,
			  32 * (1 + LS_LEAD_KEY_MAX + 2 + LS_LEAD_VALUE_MAX) +
				  32 * (1 + LS_LEAD_KEY_MAX + 1 + 8));
	conf.features = NULL;
	ck_assert_uint_eq(ls_lead_blob_bound(&conf), 0);
	ck_assert_uint_eq(ls_lead_blob_bound(NULL), 0);
	ls_feature_set_free(set);
}
END_TEST

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
	ls_feature_set *sa = mk_set(set_a, 4), *sb = mk_set(set_b, 4);
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
	ls_feature_set *other = mk_set(set_b, 4);
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
	ls_feature_set *set = mk_set(set_a, 4);
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
	ls_feature_set *other = mk_set(set_b, 4);
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

START_TEST(test_ext_set_and_clear)
{
	ls_feature_set *set = mk_set(set_a, 4);
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
	ls_feature_set *set = mk_set(set_a, 4);
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
	ls_feature_set *set = mk_set(set_a, 4);
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

/* ---- arguments and configuration ---- */

START_TEST(test_invalid_arguments)
{
	ls_feature_set *set = default_set();
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	char err[128] = "";
	ck_assert(ls_lead_conf_check(&conf, err, sizeof err));
	conf.dedupe_k = 0;
	ck_assert(!ls_lead_conf_check(&conf, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "dedupe_k"));
	ck_assert_ptr_null(ls_lead_new(&conf));
	ls_lead_conf_default(&conf, set);
	conf.grace_ms = -1;
	ck_assert(!ls_lead_conf_check(&conf, err, sizeof err));
	ls_lead_conf_default(&conf, set);
	conf.dedupe_horizon_ms = -1;
	ck_assert(!ls_lead_conf_check(&conf, err, sizeof err));
	ck_assert_ptr_nonnull(strstr(err, "horizon"));
	ck_assert_ptr_null(ls_lead_new(&conf));
	ls_lead_conf_default(&conf, NULL);
	ck_assert(!ls_lead_conf_check(&conf, err, sizeof err));
	ls_lead_conf_default(&conf, set);

	ls_lead *l = ls_lead_new(&conf);
	ck_assert_int_eq(ls_lead_apply(l, &conf, NULL), LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_apply(NULL, &conf, NULL), LS_LEAD_ERR_INVALID);
	ls_event e = ev_web(NULL, T0, LS_WEB_PAGE_VIEW, NULL, -1, NULL);
	ck_assert_int_eq(ls_lead_apply(l, &conf, &e), LS_LEAD_ERR_INVALID);
	e.event_id = "ok";
	e.u.web.type = (ls_web_type)LS_WEB__COUNT;
	ck_assert_int_eq(ls_lead_apply(l, &conf, &e), LS_LEAD_ERR_INVALID);
	e.u.web.type = LS_WEB_PAGE_VIEW;
	e.source = (ls_source)LS_SOURCE__COUNT;
	ck_assert_int_eq(ls_lead_apply(l, &conf, &e), LS_LEAD_ERR_INVALID);
	e.source = LS_SOURCE_PROFILE;
	e.u.profile.n_attributes = 2;
	e.u.profile.attributes = NULL;
	ck_assert_int_eq(ls_lead_apply(l, &conf, &e), LS_LEAD_ERR_INVALID);
	ck_assert_int_eq(ls_lead_watermark(l), -1);

	double out[4];
	ck_assert_int_eq(ls_lead_features(l, &conf, T0, out, 4),
			 LS_LEAD_ERR_SPACE);
	ck_assert_int_eq(ls_lead_encode(l, &conf, NULL), LS_LEAD_ERR_INVALID);
	ck_assert_str_eq(ls_lead_result_str(LS_LEAD_ERR_CORRUPT), "blob corrupt");
	ck_assert_str_eq(ls_lead_result_str(42), "unknown result");
	ls_lead_free(l);
	ls_lead_free(NULL);
	ls_buf_free(NULL);
	ls_feature_set_free(set);
}
END_TEST

static Suite *lead_suite(void)
{
	Suite *s = suite_create("lead");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 100);
	tcase_add_test(tc, test_dedupe_inside_and_outside_k);
	tcase_add_test(tc, test_dedupe_horizon_equal_to_grace);
	tcase_add_test(tc, test_dedupe_horizon_shorter_than_grace);
	tcase_add_test(tc, test_dedupe_horizon_above_grace);
	tcase_add_test(tc, test_late_days_behind);
	tcase_add_test(tc, test_dedupe_newest_by_event_time);
	tcase_add_test(tc, test_order_independence);
	tcase_add_loop_test(tc, test_order_independence_too_late, 0, 2);
	tcase_add_test(tc, test_velocity);
	tcase_add_test(tc, test_recency);
	tcase_add_test(tc, test_sends_without_opens);
	tcase_add_test(tc, test_mean_sentiment);
	tcase_add_test(tc, test_profile_merge);
	tcase_add_test(tc, test_profile_drops_counted);
	tcase_add_test(tc, test_blob_bound_adversarial);
	tcase_add_test(tc, test_roundtrip_and_sizes);
	tcase_add_test(tc, test_determinism_and_restore);
	tcase_add_test(tc, test_spec_change);
	tcase_add_test(tc, test_decode_fuzz);
	tcase_add_test(tc, test_decode_rejects_v1);
	tcase_add_test(tc, test_ext_roundtrip_and_golden);
	tcase_add_test(tc, test_ext_set_and_clear);
	tcase_add_test(tc, test_ext_decode_rejects);
	tcase_add_test(tc, test_ext_survives_apply);
	tcase_add_test(tc, test_invalid_arguments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lead_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
