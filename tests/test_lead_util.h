/*
 * test_lead_util.h - fixtures the ls_lead test programs share
 * (test_lead.c, test_lead_profile.c, test_lead_blob.c): time units, the
 * default feature set, a seeded generator, event builders and the
 * apply/encode/decode/feature assertions.
 *
 * Header-only and static inline, so each test program gets its own copy
 * and none carries helpers it does not call. Memory: the returned feature
 * set and decoded lead belong to the caller; event ids from idf() live in
 * a small static pool. Errors: every helper fails the running Check test.
 * Thread-safety: none (the generator and the id pool are static).
 */
#ifndef TEST_LEAD_UTIL_H
#define TEST_LEAD_UTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ls_lead.h"
#include "ls_testmodels.h"
#include "ls_testutil.h"
#include "ls_window.h"

#define H LS_WINDOW_MS_HOUR
#define D LS_WINDOW_MS_DAY
#define MIN LS_WINDOW_MS_MINUTE

/* 2023-11-14T22:13:20Z, a realistic epoch-ms timestamp. */
#define T0 INT64_C(1700000000000)

static inline ls_feature_set *default_set(void)
{
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	return ls_test_feature_set(specs, n);
}

/* splitmix64: a fixed sequence, so every run tests the same cases. */
static uint64_t rng = 0x243f6a8885a308d3u;
static inline uint64_t rnd(void)
{
	return ls_test_splitmix64(&rng);
}

/* Event ids live in a small pool of static buffers; a lead keeps only
 * their hashes, so reuse after the apply is fine. */
static inline const char *idf(const char *prefix, unsigned n)
{
	static char pool[8][40];
	static unsigned next;
	char *b = pool[next++ % 8];
	snprintf(b, sizeof pool[0], "%s-%u", prefix, n);
	return b;
}

static inline ls_event base_event(ls_source src, const char *id, int64_t ts)
{
	return ls_test_event(src, id, "lead-1", ts);
}

static inline ls_event ev_email(const char *id, int64_t ts, ls_email_type t,
			 const char *campaign)
{
	ls_event e = base_event(LS_SOURCE_EMAIL, id, ts);
	e.u.email.type = t;
	e.u.email.campaign_id = campaign;
	return e;
}

static inline ls_event ev_web(const char *id, int64_t ts, ls_web_type t,
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

static inline ls_event ev_call(const char *id, int64_t ts, ls_call_outcome o,
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

static inline void apply_ok(ls_lead *l, const ls_lead_conf *c, ls_event e)
{
	int rc = ls_lead_apply(l, c, &e);
	ck_assert_msg(rc == LS_LEAD_APPLIED, "event %s ts %lld wm %lld: %s", e.event_id, (long long)e.ts, (long long)ls_lead_watermark(l),
		      ls_lead_result_str(rc));
}

/* The value called name at T. */
static inline double value_of(const ls_lead *l, const ls_lead_conf *c, int64_t T,
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

static inline void encode_ok(const ls_lead *l, const ls_lead_conf *c, ls_buf *b)
{
	ck_assert_int_eq(ls_lead_encode(l, c, b), LS_LEAD_APPLIED);
}

static inline ls_lead *decode_ok(const ls_lead_conf *c, const ls_buf *b)
{
	ls_lead *l = NULL;
	char err[200] = "";
	int rc = ls_lead_decode(c, b->data, b->len, &l, err, sizeof err);
	ck_assert_msg(rc == LS_LEAD_APPLIED, "decode: %s", err);
	ck_assert_ptr_nonnull(l);
	return l;
}

#endif
