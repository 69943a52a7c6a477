/*
 * Unit tests for models/ls_lead's profile maps: merging attributes and
 * metrics, the drops counted when a lead is full, and the blob bound with
 * adversarial profiles.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_lead.h"
#include "test_lead_util.h"

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
 * number docs/operations.md gives for the default limits.
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

static Suite *lead_profile_suite(void)
{
	Suite *s = suite_create("lead-profile");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 100);
	tcase_add_test(tc, test_profile_merge);
	tcase_add_test(tc, test_profile_drops_counted);
	tcase_add_test(tc, test_blob_bound_adversarial);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(lead_profile_suite(), CK_NORMAL);
}
