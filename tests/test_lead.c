/*
 * Unit tests for models/ls_lead state: dedupe (its horizon against the
 * grace, and independence of the order events arrive in), late events
 * days behind the watermark, derived features by hand, and argument
 * checks. The profile maps are in test_lead_profile.c, the blob codec in
 * test_lead_blob.c; test_lead_util.h holds what they share.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ls_lead.h"
#include "test_lead_util.h"

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
	tcase_add_test(tc, test_invalid_arguments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(lead_suite(), CK_NORMAL);
}
