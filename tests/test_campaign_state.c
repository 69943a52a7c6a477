/*
 * test_campaign_state.c - the bandit service's state in Redis: the
 * records a batch writes, the context keys it fills, bucket names and the
 * bucket cap (pure and against a real redis-server), legacy counters.
 * Fixture and conventions: see test_campaign.c and campaign_fixture.h.
 */
#include "campaign_fixture.h"

/* --------------------------------------- 9. the records a batch writes */

/*
 * Many decisions for two campaigns, interleaved, activated or not, with
 * and without context, queued while Redis is stopped (so one batch holds
 * thousands of decisions of both campaigns): every record holds the
 * fields the scripts and `leadscorectl evaluate` read, with its TTL, and
 * exactly the activated ones are pending, due at the end of their window.
 */
#define N_RECORDS 3000

static void check_record(redisContext *c, const char *prefix, const char *campaign,
			 const ls_campaign_decision *d, const char *lead, bool activated,
			 int64_t window_ms, int64_t ttl_ms)
{
	char k[256], pend[256];
	decision_key(k, sizeof k, prefix, campaign, d->decision_id);
	campaign_key(pend, sizeof pend, prefix, campaign, "pending");
	redisReply *r = ls_test_cmd_ok(c, "HGETALL %s", k);
	ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
	ck_assert_msg(r->elements == (activated ? 14u : 12u), "%s: %zu fields", k,
		      r->elements / 2);
	int seen = 0;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
		char want[64] = "";
		if (strcmp(f, "lead") == 0)
			snprintf(want, sizeof want, "%s", lead);
		else if (strcmp(f, "arm") == 0)
			snprintf(want, sizeof want, "%s", d->variant);
		else if (strcmp(f, "bkt") == 0)
			snprintf(want, sizeof want, "%s", d->bucket);
		else if (strcmp(f, "ts") == 0 || strcmp(f, "act") == 0)
			snprintf(want, sizeof want, "%" PRId64, d->ts);
		else if (strcmp(f, "win") == 0)
			snprintf(want, sizeof want, "%" PRId64, window_ms);
		else if (strcmp(f, "st") == 0)
			snprintf(want, sizeof want, "%d", activated ? 1 : 0);
		else
			ck_abort_msg("%s: unexpected field %s", k, f);
		ck_assert_msg(strcmp(v, want) == 0, "%s %s = %s, want %s", k, f, v, want);
		seen++;
	}
	ck_assert_int_eq(seen, activated ? 7 : 6);
	freeReplyObject(r);
	long long pttl = cmd_int(c, "PTTL %s", k);
	ck_assert_msg(pttl > ttl_ms - 60000 && pttl <= ttl_ms, "%s: PTTL %lld, want %" PRId64, k,
		      pttl, ttl_ms);
	r = ls_test_cmd_ok(c, "ZSCORE %s %s", pend, d->decision_id);
	if (activated) {
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		ck_assert_msg(strtoll(r->str, NULL, 10) == d->ts + window_ms, "%s due %s", k, r->str);
	} else {
		ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
	}
	freeReplyObject(r);
}

START_TEST(test_decision_records)
{
	const char *P = "t9:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: rec1\n"
		 "    arms: [a, b, c]\n"
		 "    reward_window: 2h\n"
		 "    activation_timeout: 30m\n"
		 "  - id: rec2\n"
		 "    arms: [x, y]\n"
		 "    context: [industry]\n"
		 "    reward_window: 72h\n"
		 "    activation_timeout: 10m\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	ls_campaign_decision *d = calloc(N_RECORDS, sizeof *d);
	ck_assert_ptr_nonnull(d);
	char lead[32];
	/* Redis stopped meanwhile: the writer blocks on its first batch and
	   the rest pile up into one, more than one script call (1,000
	   decisions) and one ZADD (500) of rec1 */
	pid_t rp = ls_test_redis_pid(g_redis);
	ck_assert_int_eq(kill(rp, SIGSTOP), 0);
	for (size_t i = 0; i < N_RECORDS; i++) {
		snprintf(lead, sizeof lead, "L%zu", i);
		if (i % 4 != 3)
			decide(s, "rec1", lead, i % 3 != 0, NULL, NULL, &d[i]);
		else
			decide(s, "rec2", lead, i % 3 != 0, "industry", i % 8 == 3 ? "saas" : "gov",
			       &d[i]);
	}
	usleep(200000);
	ck_assert_int_eq(kill(rp, SIGCONT), 0);
	char k[256];
	for (size_t i = 0; i < N_RECORDS; i++) {
		decision_key(k, sizeof k, P, i % 4 != 3 ? "rec1" : "rec2", d[i].decision_id);
		wait_exists(c, k, true);
	}
	size_t active[2] = { 0, 0 };
	for (size_t i = 0; i < N_RECORDS; i++) {
		bool act = i % 3 != 0, one = i % 4 != 3;
		snprintf(lead, sizeof lead, "L%zu", i);
		int64_t win = one ? INT64_C(2) * 3600000 : INT64_C(72) * 3600000;
		int64_t ttl = act ? win + 3600000 : (one ? 30 : 10) * INT64_C(60000);
		check_record(c, P, one ? "rec1" : "rec2", &d[i], lead, act, win, ttl);
		active[one ? 0 : 1] += act;
	}
	char pend[256];
	campaign_key(pend, sizeof pend, P, "rec1", "pending");
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", pend), (long long)active[0]);
	campaign_key(pend, sizeof pend, P, "rec2", "pending");
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", pend), (long long)active[1]);
	free(d);
	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------- 10. context keys to fill */

/*
 * ls_campaign_context_keys() answers from the snapshot: the keys of a
 * context campaign with its tier model, 0 for a campaign without context
 * or an unknown one, and after a reconfigure the new keys once a snapshot
 * with them is published.
 */
static size_t ctx_keys(ls_campaign *s, const char *campaign,
		       char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX],
		       char tier_model[LS_MODEL_NAME_MAX])
{
	memset(keys, 0, LS_CAMPAIGN_MAX_CONTEXT * LS_MODEL_KEY_MAX);
	memset(tier_model, 0, LS_MODEL_NAME_MAX);
	return ls_campaign_context_keys(s, campaign, keys, tier_model);
}

START_TEST(test_context_keys)
{
	const char *P = "t10:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: plain\n"
		 "    arms: [a, b]\n"
		 "  - id: ctx\n"
		 "    arms: [a, b]\n"
		 "    context: [industry, tier]\n");
	ls_campaign *s = start_service(&cfg);
	char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX], tier_model[LS_MODEL_NAME_MAX];
	ck_assert_uint_eq(ctx_keys(s, "plain", keys, tier_model), 0);
	ck_assert_uint_eq(ctx_keys(s, "nope", keys, tier_model), 0);
	ck_assert_uint_eq(ctx_keys(s, "ctx", keys, tier_model), 2);
	ck_assert_str_eq(keys[0], "industry");
	ck_assert_str_eq(keys[1], "tier");
	ck_assert_str_eq(tier_model, cfg.campaigns.specs[1].tier_model);

	ls_config cfg2;
	load_cfg(&cfg2, P,
		 "  - id: plain\n"
		 "    arms: [a, b]\n"
		 "    context: [region]\n"
		 "  - id: ctx\n"
		 "    arms: [a, b]\n");
	adopt(s, &cfg2);
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	while (ctx_keys(s, "plain", keys, tier_model) != 1) {
		ck_assert_msg(ls_clock_mono_ms() < deadline, "new context keys not seen within 10 s");
		usleep(STEP_US);
	}
	ck_assert_str_eq(keys[0], "region");
	ck_assert_uint_eq(ctx_keys(s, "ctx", keys, tier_model), 0);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
	ls_config_free(&cfg2);
}
END_TEST

/* ------------------------------------- 11. bucket names and the cap (pure) */

static void spec_init(ls_campaign_spec *sp, int64_t max_buckets, int64_t min_bucket_trials)
{
	memset(sp, 0, sizeof *sp);
	snprintf(sp->id, sizeof sp->id, "p");
	sp->n_arms = 2;
	snprintf(sp->arms[0], sizeof sp->arms[0], "a");
	snprintf(sp->arms[1], sizeof sp->arms[1], "b");
	sp->prior_a = 1.0;
	sp->prior_b = 1.0;
	sp->min_bucket_trials = min_bucket_trials;
	sp->max_buckets = max_buckets;
	sp->propensity_draws = 1000;
	sp->n_context = 2;
	snprintf(sp->context[0], sizeof sp->context[0], "industry");
	snprintf(sp->context[1], sizeof sp->context[1], "note");
}

static void name_of(const ls_campaign_spec *sp, const char *industry, const char *note,
		    char *out, size_t cap)
{
	ls_campaign_request req = { .campaign = "p", .lead_id = "L" };
	if (industry != NULL) {
		req.ctx_key[req.n_context] = "industry";
		req.ctx_value[req.n_context++] = industry;
	}
	if (note != NULL) {
		req.ctx_key[req.n_context] = "note";
		req.ctx_value[req.n_context++] = note;
	}
	ls_campaign_bucket_name(sp, &req, out, cap);
}

START_TEST(test_bucket_name)
{
	ls_campaign_spec sp;
	spec_init(&sp, 10, 0);
	char name[LS_CAMPAIGN_BUCKET_MAX], want[LS_CAMPAIGN_BUCKET_MAX];
	name_of(&sp, "saas", NULL, name, sizeof name);
	ck_assert_str_eq(name, "industry=saas,note=");
	name_of(&sp, "a,b=c%", "x", name, sizeof name);
	ck_assert_str_eq(name, "industry=a%2Cb%3Dc%25,note=x");
	/* 63 x 'a' + U+00E9 is 65 bytes: the cut at 64 drops the whole e-acute */
	char v[128];
	memset(v, 'a', 63);
	memcpy(v + 63, "\xc3\xa9", 3);
	name_of(&sp, v, NULL, name, sizeof name);
	snprintf(want, sizeof want, "industry=%.63s,note=", v);
	ck_assert_str_eq(name, want);
	/* 62 + a 4-byte code point: 66 bytes, cut to 62 */
	memcpy(v + 62, "\xf0\x9f\x98\x80", 5);
	name_of(&sp, NULL, v, name, sizeof name);
	snprintf(want, sizeof want, "industry=,note=%.62s", v);
	ck_assert_str_eq(name, want);
	/* 64 bytes ending in a whole 2-byte code point stay whole */
	memset(v, 'a', 62);
	memcpy(v + 62, "\xc3\xa9", 3);
	name_of(&sp, v, NULL, name, sizeof name);
	snprintf(want, sizeof want, "industry=%s,note=", v);
	ck_assert_str_eq(name, want);
	sp.n_context = 0;
	name_of(&sp, "saas", NULL, name, sizeof name);
	ck_assert_str_eq(name, "");
}
END_TEST

/* An HGETALL reply of field/value pairs, for ls_campaign_posterior_load. */
typedef struct fake_hash {
	redisReply top, items[32];
	redisReply *ptrs[32];
} fake_hash;

static const redisReply *fake_hgetall(fake_hash *h, const char *const *kv, size_t n)
{
	memset(h, 0, sizeof *h);
	ck_assert_uint_le(n, 32);
	for (size_t i = 0; i < n; i++) {
		h->items[i].type = REDIS_REPLY_STRING;
		h->items[i].str = (char *)kv[i];
		h->items[i].len = strlen(kv[i]);
		h->ptrs[i] = &h->items[i];
	}
	h->top.type = REDIS_REPLY_ARRAY;
	h->top.elements = n;
	h->top.element = h->ptrs;
	return &h->top;
}

START_TEST(test_posterior_row_cap)
{
	static const char *const kv[] = {
		"n:a:", "7", "r:a:", "3000000", "n:b:", "5", "r:b:", "1000000",
		"n:a:industry=x", "4", "r:a:industry=x", "2000000",
		"n:b:industry=y", "1", "r:b:industry=y", "0",
		"b:industry=x", "1", "b:industry=y", "1", "nb", "2", "v", "17",
		/* an earlier version's counters of a bucket that is not stored */
		"n:a:industry=a", "9", "r:a:industry=a", "0",
	};
	fake_hash fh;
	const redisReply *h = fake_hgetall(&fh, kv, sizeof kv / sizeof *kv);
	ls_campaign_spec sp;
	spec_init(&sp, 2, 3);
	ls_campaign_posterior p;
	ck_assert_int_eq(ls_campaign_posterior_load(&sp, h, &p), 0);
	ck_assert_uint_eq(p.n_buckets, 2);
	ck_assert_uint_eq(ls_campaign_posterior_bucket(&p, "industry=a"), SIZE_MAX);
	ck_assert_uint_eq(p.n_stored, 2);
	ck_assert_int_eq(p.version, 17);
	ck_assert_uint_eq(p.trials[0], 7);
	bool capped = true;
	/* x has 4 trials >= 3: its own row; y has 1: campaign-wide */
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=x", sp.max_buckets, &capped),
			  1 + ls_campaign_posterior_bucket(&p, "industry=x"));
	ck_assert(!capped);
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=y", sp.max_buckets, &capped), 0);
	ck_assert(!capped);
	/* a new bucket with max_buckets stored: past the cap */
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=z", sp.max_buckets, &capped), 0);
	ck_assert(capped);
	/* room left: new, thin, not capped */
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=z", 3, &capped), 0);
	ck_assert(!capped);
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "", sp.max_buckets, &capped), 0);
	ck_assert(!capped);
	ls_campaign_posterior_free(&p);

	/* max_buckets lowered by a reload: the posterior keeps the first in
	   name order; the one left out is past the cap */
	spec_init(&sp, 1, 0);
	ck_assert_int_eq(ls_campaign_posterior_load(&sp, h, &p), 0);
	ck_assert_uint_eq(p.n_buckets, 1);
	ck_assert_str_eq(p.names[0], "industry=x");
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=x", sp.max_buckets, &capped), 1);
	ck_assert(!capped);
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=y", sp.max_buckets, &capped), 0);
	ck_assert(capped);
	ls_campaign_posterior_free(&p);

	/* no counters yet */
	ck_assert_int_eq(ls_campaign_posterior_load(&sp, NULL, &p), 0);
	ck_assert_uint_eq(p.n_stored, 0);
	ck_assert_int_eq(p.version, 0);
	ck_assert_uint_eq(ls_campaign_posterior_row(&p, "industry=x", sp.max_buckets, &capped), 0);
	ck_assert(!capped);
	ls_campaign_posterior_free(&p);
}
END_TEST

/* -------------------------------------- 12. bounded state in Redis */

/* cmdstat_<name>'s calls in INFO commandstats, 0 when absent. */
static long long cmd_calls(redisContext *c, const char *name)
{
	redisReply *r = ls_test_cmd_ok(c, "INFO commandstats");
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	char pat[64];
	snprintf(pat, sizeof pat, "cmdstat_%s:calls=", name);
	const char *m = strstr(r->str, pat);
	long long n = m != NULL ? strtoll(m + strlen(pat), NULL, 10) : 0;
	freeReplyObject(r);
	return n;
}

START_TEST(test_bucket_cap)
{
	const char *P = "t11:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: cap\n"
		 "    arms: [a, b]\n"
		 "    context: [industry]\n"
		 "    min_bucket_trials: 1\n"
		 "    max_buckets: 2\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	char counts[256];
	campaign_key(counts, sizeof counts, P, "cap", "counts");

	/* three buckets resolve; the first two are stored, the third counts
	   campaign-wide only and its record forgets it */
	ls_campaign_decision d[3];
	static const char *const vals[3] = { "x", "y", "z" };
	for (int i = 0; i < 3; i++) {
		decide(s, "cap", "L", true, "industry", vals[i], &d[i]);
		ck_assert(!d[i].bucket_capped); /* nothing stored yet */
		reward_ok(s, d[i].decision_id, 0.5, true);
	}
	ck_assert_int_eq(hget_ll(c, counts, "nb"), 2);
	ck_assert_int_eq(hget_ll(c, counts, "b:industry=x"), 1);
	ck_assert_int_eq(hget_ll(c, counts, "b:industry=y"), 1);
	ck_assert_int_eq(hget_ll(c, counts, "b:industry=z"), -1);
	ck_assert_int_eq(hget_ll(c, counts, "v"), 3);
	long long n = 0;
	for (int a = 0; a < 2; a++) {
		char f[64];
		snprintf(f, sizeof f, "n:%s:industry=z", a ? "b" : "a");
		ck_assert_int_eq(hget_ll(c, counts, f), -1);
		snprintf(f, sizeof f, "r:%s:industry=z", a ? "b" : "a");
		ck_assert_int_eq(hget_ll(c, counts, f), -1);
		snprintf(f, sizeof f, "n:%s:", a ? "b" : "a");
		long long x = hget_ll(c, counts, f);
		n += x > 0 ? x : 0;
	}
	ck_assert_int_eq(n, 3);
	char dk[256];
	decision_key(dk, sizeof dk, P, "cap", d[2].decision_id);
	redisReply *r = ls_test_cmd_ok(c, "HGET %s bkt", dk);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_str_eq(r->str, "");
	freeReplyObject(r);
	/* a larger reward for z raises the campaign-wide sum only */
	char rf[LS_CAMPAIGN_ID_MAX + 8];
	snprintf(rf, sizeof rf, "r:%s:", d[2].variant);
	long long cw = hget_ll(c, counts, rf);
	size_t fields = hlen(c, counts);
	reward_ok(s, d[2].decision_id, 1.0, true);
	ck_assert_int_eq(hget_ll(c, counts, rf), cw + 500000);
	ck_assert_int_eq(hget_ll(c, counts, "v"), 4);
	ck_assert_uint_eq(hlen(c, counts), fields);
	/* 2 x arms x (1 + max_buckets) counters at most, 2 marks, nb, v */
	ck_assert_uint_le(fields, 2 * 2 * 3 + 2 + 2);

	/* the snapshot knows the cap: a new bucket is capped, decided and
	   logged campaign-wide; a stored one is not */
	ls_campaign_stats st;
	stats_fresh(s, "cap", &st);
	ls_campaign_decision e;
	decide(s, "cap", "L", true, "industry", "w", &e);
	ck_assert(e.bucket_capped);
	ck_assert(e.bucket_fallback);
	ck_assert_str_eq(e.bucket, "industry=w");
	ck_assert_double_eq(e.propensity, find_arm(&st.buckets[0], e.variant)->probability);
	decide(s, "cap", "L", true, "industry", "x", &e);
	ck_assert(!e.bucket_capped);
	free(st.buckets);
	decision_key(dk, sizeof dk, P, "cap", e.decision_id);
	wait_exists(c, dk, true);

	/* with nothing resolving, a refresh reads one field, not the hash */
	stats_fresh(s, "cap", &st);
	free(st.buckets);
	r = ls_test_cmd_ok(c, "CONFIG RESETSTAT");
	freeReplyObject(r);
	for (int i = 0; i < 2; i++) {
		stats_fresh(s, "cap", &st);
		free(st.buckets);
	}
	ck_assert_int_eq(cmd_calls(c, "hgetall"), 0);
	ck_assert_int_gt(cmd_calls(c, "hget"), 0);

	/* a resolution moves the version: the next snapshot has it */
	reward_ok(s, e.decision_id, 1.0, true);
	stats_fresh(s, "cap", &st);
	ck_assert_int_gt(cmd_calls(c, "hgetall"), 0);
	const ls_campaign_bucket_stats *bx = find_bucket(&st, "industry=x");
	ck_assert_ptr_nonnull(bx);
	ck_assert_uint_eq(bx->trials, 2);
	free(st.buckets);

	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* A hash an earlier version filled with counters for every bucket: the
   buckets that resolve first are stored with their old counts, the rest
   are deleted once max_buckets are stored; campaign-wide counts stay. */
START_TEST(test_legacy_counters_trimmed)
{
	const char *P = "t12:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: old\n"
		 "    arms: [a, b]\n"
		 "    context: [industry]\n"
		 "    min_bucket_trials: 1\n"
		 "    max_buckets: 2\n");
	redisContext *c = side();
	char counts[256];
	campaign_key(counts, sizeof counts, P, "old", "counts");
	freeReplyObject(ls_test_cmd_ok(c, "HSET %s n:a: 20", counts));
	freeReplyObject(ls_test_cmd_ok(c, "HSET %s r:a: 5000000", counts));
	for (int i = 1; i <= 5; i++) {
		char f[64];
		snprintf(f, sizeof f, "n:a:industry=L%d", i);
		freeReplyObject(ls_test_cmd_ok(c, "HSET %s %s 4", counts, f));
		snprintf(f, sizeof f, "r:a:industry=L%d", i);
		freeReplyObject(ls_test_cmd_ok(c, "HSET %s %s 1000000", counts, f));
	}
	ls_campaign *s = start_service(&cfg);
	ls_campaign_decision d;
	decide(s, "old", "L", true, "industry", "L1", &d);
	reward_ok(s, d.decision_id, 1.0, true);
	bool a1 = strcmp(d.variant, "a") == 0;
	decide(s, "old", "L", true, "industry", "N", &d);
	reward_ok(s, d.decision_id, 1.0, true);
	bool a2 = strcmp(d.variant, "a") == 0;
	ck_assert_int_eq(hget_ll(c, counts, "nb"), 2);
	ck_assert_int_eq(hget_ll(c, counts, "n:a:industry=L1"), a1 ? 5 : 4);
	/* the next read trims L2..L5 */
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	while (hget_ll(c, counts, "n:a:industry=L5") >= 0) {
		ck_assert_msg(ls_clock_mono_ms() < deadline, "legacy counters not trimmed in 10 s");
		usleep(STEP_US);
	}
	for (int i = 2; i <= 5; i++) {
		char f[64];
		snprintf(f, sizeof f, "n:a:industry=L%d", i);
		ck_assert_int_eq(hget_ll(c, counts, f), -1);
		snprintf(f, sizeof f, "r:a:industry=L%d", i);
		ck_assert_int_eq(hget_ll(c, counts, f), -1);
	}
	ck_assert_int_eq(hget_ll(c, counts, "n:a:industry=L1"), a1 ? 5 : 4);
	ck_assert_int_eq(hget_ll(c, counts, "n:a:"), 20 + a1 + a2);
	ck_assert_uint_le(hlen(c, counts), 2 * 2 * 3 + 2 + 2);
	ls_campaign_stats st;
	stats_fresh(s, "old", &st);
	ck_assert_ptr_nonnull(find_bucket(&st, "industry=L1"));
	ck_assert_ptr_nonnull(find_bucket(&st, "industry=N"));
	ck_assert_ptr_null(find_bucket(&st, "industry=L2"));
	free(st.buckets);
	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("campaign_state");
	TCase *t = tcase_create("campaign_state");
	tcase_add_checked_fixture(t, env_setup, env_teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_decision_records);
	tcase_add_test(t, test_context_keys);
	tcase_add_test(t, test_bucket_cap);
	tcase_add_test(t, test_legacy_counters_trimmed);
	suite_add_tcase(s, t);
	TCase *pure = tcase_create("pure");
	tcase_add_test(pure, test_bucket_name);
	tcase_add_test(pure, test_posterior_row_cap);
	suite_add_tcase(s, pure);
	return s;
}

int main(void)
{
	return ls_test_run(suite(), CK_NORMAL);
}
