/*
 * test_campaign.c - the bandit service (pipeline/ls_campaign.h) against a
 * real redis-server and librdkafka's mock broker.
 *
 * What is checked is what the header promises, read back independently:
 * counters through a side hiredis connection (HGETALL of the counts hash),
 * the posterior through ls_campaign_stats_get(), the pipeline path through
 * ls_store_commit_log() exactly as the batch loop runs it. Configs are
 * real YAML files loaded with the daemon's loader.
 *
 * Time: nothing here asserts how long anything took. A test that needs
 * the snapshot to reflect Redis waits for two snapshots built after the
 * moment in question (the second one's HGETALL was sent after the first
 * was published, so after that moment); one that needs a window to pass
 * polls for its effect. Both give up after 10 s.
 */
#include "ls_clock.h"
#include "ls_campaign.h"
#include "ls_config.h"
#include "ls_settings.h"
#include "ls_store.h"
#include "ls_testenv.h"
#include "ls_testredis.h"
#include "ls_testutil.h"

#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN 4096
#define POLL_MS 10000
#define STEP_US 50000
#define MICRO 1000000.0

static ls_test_redis *g_redis;
static ls_test_broker *g_broker;
static char g_dir[64];
static redisContext *g_api_conn; /* api_conn()'s */

/* ------------------------------------------------------------ fixture */

/* Checked fixture: runs in the forked child, in the test's own thread. */
static void env_setup(void)
{
	char err[ERRLEN];
	ck_assert_msg(ls_test_redis_start(&g_redis, LS_TEST_REDIS_UNIX, err, sizeof err) ==
		      LS_TEST_OK, "%s", err);
	ck_assert_msg(ls_test_broker_start(&g_broker, 1, err, sizeof err) == LS_TEST_OK, "%s",
		      err);
	ck_assert_msg(ls_test_broker_create_topic(g_broker, "leads.decisions", 1, err,
						  sizeof err) == LS_TEST_OK, "%s", err);
	const char *tmp = getenv("TMPDIR");
	snprintf(g_dir, sizeof g_dir, "%s/ls-camp-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void env_teardown(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/c.yaml", g_dir);
	unlink(path);
	rmdir(g_dir);
	ls_test_broker_destroy(g_broker);
	ls_test_redis_destroy(g_redis);
	g_broker = NULL;
	g_redis = NULL;
	if (g_api_conn != NULL)
		redisFree(g_api_conn);
	g_api_conn = NULL;
}

/*
 * Load a config whose `campaigns:` section is campaigns (YAML text), with
 * the fixture's broker and Redis and key prefix `prefix`. The process
 * environment is not read (an explicit empty one), so a stray LEADSCORE_*
 * variable cannot change what a test runs with.
 */
static void load_cfg(ls_config *cfg, const char *prefix, const char *campaigns)
{
	char path[128], err[ERRLEN];
	snprintf(path, sizeof path, "%s/c.yaml", g_dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"kafka:\n"
		"  brokers: \"%s\"\n"
		"redis:\n"
		"  url: \"%s\"\n"
		"  key_prefix: \"%s\"\n"
		"campaigns:\n%s",
		ls_test_broker_bootstrap(g_broker), ls_test_redis_url(g_redis), prefix, campaigns);
	ck_assert_int_eq(fclose(f), 0);
	char *const no_env[] = { NULL };
	ck_assert_msg(ls_config_load_env(path, no_env, cfg, err, sizeof err) == 0, "%s", err);
}

static ls_campaign *start_service(const ls_config *cfg)
{
	char err[ERRLEN];
	ls_campaign_settings st = ls_settings_campaign(cfg);
	ls_campaign *s = ls_campaign_start(&st, err, sizeof err);
	ck_assert_msg(s != NULL, "%s", err);
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	while (!ls_campaign_ready(s)) {
		ck_assert_msg(ls_clock_mono_ms() < deadline, "no snapshot within 10 s");
		usleep(STEP_US);
	}
	return s;
}

/*
 * The connection activations and rewards run on, as the HTTP layer passes
 * its worker's: opened on first use, reopened after an I/O error (NULL
 * while Redis is down: the service then answers UNAVAILABLE).
 */
static redisContext *api_conn(void)
{
	if (g_api_conn != NULL && g_api_conn->err == 0)
		return g_api_conn;
	if (g_api_conn != NULL)
		redisFree(g_api_conn);
	char err[ERRLEN];
	g_api_conn = ls_test_redis_connect(g_redis, err, sizeof err);
	return g_api_conn;
}

/* Adopt cfg's campaigns, as main.c does on SIGHUP. */
static void adopt(ls_campaign *s, const ls_config *cfg)
{
	ls_campaign_settings st = ls_settings_campaign(cfg);
	ls_campaign_reconfigure(s, &st);
}

/* The script call ev implies, for keys under prefix. */
static int event_op(const ls_config *cfg, const char *prefix, const ls_email_event *ev,
		    int64_t ts, ls_campaign_op *op, char *buf, size_t buflen)
{
	ls_campaign_settings st = ls_settings_campaign(cfg);
	st.key_prefix = prefix;
	return ls_campaign_event_op(&st, ev, ts, op, buf, buflen);
}

static redisContext *side(void)
{
	char err[ERRLEN];
	redisContext *c = ls_test_redis_connect(g_redis, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

static ls_store *open_store(const char *prefix)
{
	return ls_test_store_open(g_redis, prefix, "g", 60000, 5000, true);
}

/* ------------------------------------------------------------ helpers */

static void campaign_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		 const char *suffix)
{
	int n = snprintf(buf, cap, "%s{bandit:%s}:%s", prefix, campaign, suffix);
	ck_assert(n > 0 && (size_t)n < cap);
}

static void decision_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		 const char *decision_id)
{
	char suffix[LS_DECISION_ID_MAX + 4];
	snprintf(suffix, sizeof suffix, "d:%s", decision_id);
	campaign_key(buf, cap, prefix, campaign, suffix);
}

static long long cmd_int(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *r = ls_test_cmd_ok(c, fmt, arg);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

/* HGET as an integer; -1 when the field is absent. */
static long long hget_ll(redisContext *c, const char *key, const char *field)
{
	redisReply *r = ls_test_cmd_ok(c, "HGET %s %s", key, field);
	long long v = -1;
	if (r->type == REDIS_REPLY_STRING) {
		char *end;
		v = strtoll(r->str, &end, 10);
		ck_assert_msg(*end == '\0', "%s %s = %s", key, field, r->str);
	} else {
		ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
	}
	freeReplyObject(r);
	return v;
}

static size_t hlen(redisContext *c, const char *key)
{
	return (size_t)cmd_int(c, "HLEN %s", key);
}

static void wait_exists(redisContext *c, const char *key, bool want)
{
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	while ((cmd_int(c, "EXISTS %s", key) == 1) != want) {
		ck_assert_msg(ls_clock_mono_ms() < deadline, "%s still %s after 10 s", key,
			      want ? "absent" : "present");
		usleep(want ? 1000 : STEP_US);
	}
}

static bool is_decision_id(const char *id, const char *campaign)
{
	size_t n = strlen(campaign);
	if (strncmp(id, campaign, n) != 0 || id[n] != '.' || strlen(id + n + 1) != 32)
		return false;
	for (const char *p = id + n + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void decide(ls_campaign *s, const char *campaign, const char *lead, bool activate,
		   const char *ctx_key, const char *ctx_val, ls_campaign_decision *out)
{
	ls_campaign_request req = { .campaign = campaign, .lead_id = lead, .activate = activate };
	if (ctx_key != NULL) {
		req.n_context = 1;
		req.ctx_key[0] = ctx_key;
		req.ctx_value[0] = ctx_val;
	}
	int rc = ls_campaign_decide(s, &req, out);
	ck_assert_msg(rc == LS_CAMPAIGN_OK, "decide %s: %s", campaign, ls_campaign_result_str(rc));
	ck_assert_msg(is_decision_id(out->decision_id, campaign), "decision id %s",
		      out->decision_id);
}

static void reward_ok(ls_campaign *s, const char *id, double r, bool want_counted)
{
	bool counted = !want_counted;
	int rc = ls_campaign_reward(s, api_conn(), id, r, &counted);
	ck_assert_msg(rc == LS_CAMPAIGN_OK, "reward %g for %s: %s", r, id,
		      ls_campaign_result_str(rc));
	ck_assert_msg(counted == want_counted, "reward %g for %s: counted %d, want %d", r, id,
		      counted, want_counted);
}

/*
 * Statistics from a snapshot whose counters were read after this call:
 * wait for a snapshot built after now, then for the next one (its HGETALL
 * went out after the first was published).
 */
static void stats_fresh(ls_campaign *s, const char *campaign, ls_campaign_stats *out)
{
	int64_t t = ls_clock_wall_ms(), first = -1, deadline = ls_clock_mono_ms() + POLL_MS;
	for (;;) {
		int rc = ls_campaign_stats_get(s, campaign, out);
		ck_assert_msg(rc == LS_CAMPAIGN_OK, "stats %s: %s", campaign,
			      ls_campaign_result_str(rc));
		if (first >= 0 && out->snapshot_ms > first)
			return;
		if (first < 0 && out->snapshot_ms > t)
			first = out->snapshot_ms;
		free(out->buckets);
		out->buckets = NULL;
		ck_assert_msg(ls_clock_mono_ms() < deadline, "no fresh snapshot within 10 s");
		usleep(STEP_US);
	}
}

static const ls_campaign_bucket_stats *find_bucket(const ls_campaign_stats *st,
						   const char *bucket)
{
	for (size_t i = 0; i < st->n_buckets; i++)
		if (strcmp(st->buckets[i].bucket, bucket) == 0)
			return &st->buckets[i];
	return NULL;
}

static const ls_campaign_arm_stats *find_arm(const ls_campaign_bucket_stats *b,
					     const char *variant)
{
	for (size_t i = 0; i < b->n_arms; i++)
		if (strcmp(b->arms[i].variant, variant) == 0)
			return &b->arms[i];
	return NULL;
}

/* Expected counts by arm, kept by the test from what it did. */
typedef struct expect {
	size_t n;
	char arm[8][LS_CAMPAIGN_ID_MAX];
	uint64_t trials[8];
	double rewards[8];
} expect;

static void expect_add(expect *e, const char *arm, uint64_t trials, double rewards)
{
	size_t i = 0;
	while (i < e->n && strcmp(e->arm[i], arm) != 0)
		i++;
	if (i == e->n) {
		ck_assert_uint_lt(e->n, 8);
		snprintf(e->arm[i], sizeof e->arm[i], "%s", arm);
		e->trials[i] = 0;
		e->rewards[i] = 0.0;
		e->n++;
	}
	e->trials[i] += trials;
	e->rewards[i] += rewards;
}

static void expect_get(const expect *e, const char *arm, uint64_t *trials, double *rewards)
{
	*trials = 0;
	*rewards = 0.0;
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->arm[i], arm) == 0) {
			*trials = e->trials[i];
			*rewards = e->rewards[i];
		}
}

/*
 * The campaign-wide row of st and the counts hash both hold exactly e
 * (every rewards value used is a multiple of 1/4, so sums are exact).
 */
static void check_counts(const ls_campaign_stats *st, redisContext *c, const char *prefix,
			 const expect *e)
{
	const ls_campaign_bucket_stats *all = &st->buckets[0];
	ck_assert_str_eq(all->bucket, "");
	uint64_t total = 0;
	for (size_t a = 0; a < all->n_arms; a++) {
		uint64_t t;
		double r;
		expect_get(e, all->arms[a].variant, &t, &r);
		ck_assert_msg(all->arms[a].st.trials == t && all->arms[a].st.rewards == r,
			      "arm %s: snapshot (%" PRIu64 ", %.17g), expected (%" PRIu64 ", %.17g)",
			      all->arms[a].variant, all->arms[a].st.trials, all->arms[a].st.rewards,
			      t, r);
		total += t;
	}
	ck_assert_uint_eq(all->trials, total);
	if (c == NULL)
		return;
	char key[256], f[128];
	campaign_key(key, sizeof key, prefix, st->spec.id, "counts");
	for (size_t i = 0; i < e->n; i++) {
		snprintf(f, sizeof f, "n:%s:", e->arm[i]);
		long long n = hget_ll(c, key, f);
		snprintf(f, sizeof f, "r:%s:", e->arm[i]);
		long long r = hget_ll(c, key, f);
		ck_assert_msg(n == (e->trials[i] ? (long long)e->trials[i] : -1) &&
			      r == (e->trials[i] ? llround(e->rewards[i] * MICRO) : -1),
			      "redis %s arm %s: n=%lld r=%lld, expected %" PRIu64 " %.17g", key,
			      e->arm[i], n, r, e->trials[i], e->rewards[i]);
	}
}

/* ------------------------------------------------- 1. propensities */

#define N_DECISIONS 10000

typedef struct ctx_case {
	const char *value;  /* NULL: no context in the request */
	const char *bucket; /* what the decision must report */
} ctx_case;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

START_TEST(test_propensities)
{
	const char *P = "t1:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: prop\n"
		 "    arms: [a, b, c]\n"
		 "    rewards: {CLICKED: 1}\n"
		 "    context: [industry]\n"
		 "    min_bucket_trials: 2\n"
		 "    min_share: 0.05\n"
		 "    propensity_draws: 2000\n");
	ls_campaign *s = start_service(&cfg);

	/* resolved decisions make buckets: saas and fintech get their own
	   posterior (3 trials each), retail stays thin (1) */
	struct { const char *v; int n; double r; } seed[] = {
		{ "saas", 3, 1.0 }, { "fintech", 3, 0.0 }, { "retail", 1, 1.0 },
	};
	for (size_t k = 0; k < 3; k++)
		for (int i = 0; i < seed[k].n; i++) {
			ls_campaign_decision d;
			decide(s, "prop", "seed", true, "industry", seed[k].v, &d);
			reward_ok(s, d.decision_id, seed[k].r, true);
		}

	ls_campaign_stats before;
	stats_fresh(s, "prop", &before);
	ck_assert_uint_eq(before.buckets[0].trials, 7);
	ck_assert_uint_eq(before.n_buckets, 4);
	const double min_share = before.spec.min_share;
	ck_assert_double_eq(min_share, 0.05);
	for (size_t i = 0; i < before.n_buckets; i++) {
		const ls_campaign_bucket_stats *b = &before.buckets[i];
		ck_assert_uint_eq(b->n_arms, 3);
		double sum = 0.0;
		for (size_t a = 0; a < b->n_arms; a++) {
			ck_assert_double_ge(b->arms[a].probability, min_share);
			sum += b->arms[a].probability;
		}
		ck_assert_msg(fabs(sum - 1.0) <= 1e-9, "bucket '%s': probabilities sum to %.17g",
			      b->bucket, sum);
	}
	const ls_campaign_bucket_stats *saas = find_bucket(&before, "industry=saas");
	const ls_campaign_bucket_stats *fin = find_bucket(&before, "industry=fintech");
	const ls_campaign_bucket_stats *retail = find_bucket(&before, "industry=retail");
	ck_assert_ptr_nonnull(saas);
	ck_assert_ptr_nonnull(fin);
	ck_assert_ptr_nonnull(retail);
	ck_assert(!saas->fallback && !fin->fallback && retail->fallback);
	for (size_t a = 0; a < 3; a++)
		ck_assert_double_eq(retail->arms[a].probability,
				    before.buckets[0].arms[a].probability);

	static const ctx_case cases[] = {
		{ "saas", "industry=saas" }, { "fintech", "industry=fintech" },
		{ "retail", "industry=retail" }, { "media", "industry=media" },
		{ NULL, "industry=" },
	};
	const size_t n_cases = sizeof cases / sizeof cases[0];
	ls_campaign_decision *d = calloc(N_DECISIONS, sizeof *d);
	ck_assert_ptr_nonnull(d);
	for (size_t i = 0; i < N_DECISIONS; i++) {
		const ctx_case *cc = &cases[i % n_cases];
		decide(s, "prop", "lead", i % 2 == 0, cc->value ? "industry" : NULL, cc->value,
		       &d[i]);
	}

	/* nothing resolved meanwhile, so every snapshot in between had the
	   same counts and (reused, per the contract) the same vectors */
	ls_campaign_stats after;
	stats_fresh(s, "prop", &after);
	ck_assert_uint_eq(after.n_buckets, before.n_buckets);
	for (size_t i = 0; i < before.n_buckets; i++) {
		ck_assert_str_eq(after.buckets[i].bucket, before.buckets[i].bucket);
		for (size_t a = 0; a < 3; a++)
			ck_assert_msg(after.buckets[i].arms[a].probability ==
					      before.buckets[i].arms[a].probability,
				      "bucket '%s' arm %s: probability changed with no new counts",
				      before.buckets[i].bucket, before.buckets[i].arms[a].variant);
	}
	ck_assert_uint_eq(after.decisions, 7 + N_DECISIONS);

	size_t chosen[5][3] = { { 0 } };
	const char **ids = calloc(N_DECISIONS, sizeof *ids);
	ck_assert_ptr_nonnull(ids);
	for (size_t i = 0; i < N_DECISIONS; i++) {
		size_t k = i % n_cases;
		const ctx_case *cc = &cases[k];
		ck_assert_str_eq(d[i].bucket, cc->bucket);
		const ls_campaign_bucket_stats *b = find_bucket(&before, cc->bucket);
		bool fallback = b == NULL || b->fallback;
		ck_assert_msg(d[i].bucket_fallback == fallback, "decision %zu in %s: fallback %d",
			      i, cc->bucket, d[i].bucket_fallback);
		const ls_campaign_bucket_stats *row = fallback ? &before.buckets[0] : b;
		const ls_campaign_arm_stats *arm = find_arm(row, d[i].variant);
		ck_assert_msg(arm != NULL, "variant %s", d[i].variant);
		ck_assert_msg(d[i].propensity == arm->probability,
			      "decision %zu (%s, %s): propensity %.17g, snapshot %.17g", i,
			      cc->bucket, d[i].variant, d[i].propensity, arm->probability);
		ck_assert_double_ge(d[i].propensity, min_share);
		chosen[k][arm - row->arms]++;
		ids[i] = d[i].decision_id;
	}
	qsort(ids, N_DECISIONS, sizeof *ids, cmp_str);
	for (size_t i = 1; i < N_DECISIONS; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "decision id %s repeated", ids[i]);

	/* the arms really are drawn with those probabilities: every count
	   within 6 standard deviations (+1) of n p */
	for (size_t k = 0; k < n_cases; k++) {
		const ls_campaign_bucket_stats *b = find_bucket(&before, cases[k].bucket);
		const ls_campaign_bucket_stats *row = b == NULL || b->fallback ? &before.buckets[0] : b;
		double n = (double)(N_DECISIONS / n_cases);
		for (size_t a = 0; a < 3; a++) {
			double p = row->arms[a].probability;
			double dev = fabs((double)chosen[k][a] - n * p);
			ck_assert_msg(dev <= 6.0 * sqrt(n * p * (1.0 - p)) + 1.0,
				      "%s arm %s: chosen %zu of %.0f, p = %.4f", cases[k].bucket,
				      row->arms[a].variant, chosen[k][a], n, p);
		}
	}
	free(ids);
	free(d);
	free(before.buckets);
	free(after.buckets);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------- 2. exactly once, the API */

START_TEST(test_reward_exactly_once_api)
{
	const char *P = "t2:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: api\n"
		 "    arms: [a, b]\n"
		 "    rewards: {CLICKED: 1}\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	expect e = { 0 };
	ls_campaign_stats st;

	ls_campaign_decision d1;
	decide(s, "api", "L1", true, NULL, NULL, &d1);
	ck_assert_str_eq(d1.bucket, "");
	ck_assert(!d1.bucket_fallback);
	reward_ok(s, d1.decision_id, 1.0, true);
	reward_ok(s, d1.decision_id, 1.0, false);
	expect_add(&e, d1.variant, 1, 1.0);
	stats_fresh(s, "api", &st);
	check_counts(&st, c, P, &e);
	ck_assert_uint_eq(st.buckets[0].trials, 1);
	free(st.buckets);

	/* a raise: 0.25 resolves, 1.0 lifts it to 1, 0.5 is below */
	ls_campaign_decision d2;
	decide(s, "api", "L2", true, NULL, NULL, &d2);
	reward_ok(s, d2.decision_id, 0.25, true);
	reward_ok(s, d2.decision_id, 1.0, true);
	reward_ok(s, d2.decision_id, 0.5, false);
	reward_ok(s, d2.decision_id, 1.0, false);
	expect_add(&e, d2.variant, 1, 1.0);
	stats_fresh(s, "api", &st);
	check_counts(&st, c, P, &e);
	ck_assert_uint_eq(st.buckets[0].trials, 2);
	free(st.buckets);
	char k[256];
	decision_key(k, sizeof k, P, "api", d2.decision_id);
	ck_assert_int_eq(hget_ll(c, k, "st"), 2);
	ck_assert_int_eq(hget_ll(c, k, "rw"), 1000000);

	/* deferred activation over the API; a 0 reward is a trial too */
	ls_campaign_decision d3;
	decide(s, "api", "L3", false, NULL, NULL, &d3);
	bool counted = false, already = true;
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d3.decision_id, 1.0, &counted),
			 LS_CAMPAIGN_NOT_ACTIVATED);
	ck_assert_int_eq(ls_campaign_activate(s, api_conn(), d3.decision_id, &already), LS_CAMPAIGN_OK);
	ck_assert(!already);
	ck_assert_int_eq(ls_campaign_activate(s, api_conn(), d3.decision_id, &already), LS_CAMPAIGN_OK);
	ck_assert(already);
	reward_ok(s, d3.decision_id, 0.0, true);
	reward_ok(s, d3.decision_id, 0.0, false);
	expect_add(&e, d3.variant, 1, 0.0);

	/* what is refused changes nothing */
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d1.decision_id, -0.1, &counted),
			 LS_CAMPAIGN_BAD_REQUEST);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d1.decision_id, 1.5, &counted),
			 LS_CAMPAIGN_BAD_REQUEST);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d1.decision_id, NAN, &counted),
			 LS_CAMPAIGN_BAD_REQUEST);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), "api.0123456789abcdef0123456789abcdef", 1.0,
					    &counted), LS_CAMPAIGN_UNKNOWN_DECISION);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), "api.nothex", 1.0, &counted),
			 LS_CAMPAIGN_UNKNOWN_DECISION);
	ck_assert_int_eq(ls_campaign_activate(s, api_conn(), "garbage", &already),
			 LS_CAMPAIGN_UNKNOWN_DECISION);
	ls_campaign_request req = { .campaign = "nope", .lead_id = "L" };
	ls_campaign_decision dx;
	ck_assert_int_eq(ls_campaign_decide(s, &req, &dx), LS_CAMPAIGN_UNKNOWN_CAMPAIGN);
	ck_assert_int_eq(ls_campaign_stats_get(s, "nope", &st), LS_CAMPAIGN_UNKNOWN_CAMPAIGN);

	stats_fresh(s, "api", &st);
	check_counts(&st, c, P, &e);
	ck_assert_uint_eq(st.buckets[0].trials, 3);
	ck_assert_uint_eq(st.decisions, 3);
	free(st.buckets);

	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ---------------------------------- 3. exactly once, the pipeline path */

/* One commit with the ops of evs[0..n) (each must imply an op) and an
   offset, as the batch loop makes it; results into res[0..n). */
static void commit_events(ls_store *store, const ls_config *cfg, const char *prefix,
			  const ls_email_event *evs, const int64_t *ts, size_t n,
			  long long *res, int64_t offset)
{
	ck_assert_uint_le(n, 4);
	ls_campaign_op op[4];
	char buf[4][2048];
	ls_store_append ap[4];
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(event_op(cfg, prefix, &evs[i], ts[i], &op[i], buf[i],
						      sizeof buf[i]), 1);
		ck_assert_int_eq(op[i].argc, evs[i].type == LS_EMAIL_SENT ? 7 : 11);
		res[i] = 99;
		ap[i] = (ls_store_append){ .argc = op[i].argc, .argv = op[i].argv,
					   .argvlen = op[i].argvlen, .result = &res[i] };
	}
	ls_store_offset o = { "leads.email", 0, offset };
	char err[ERRLEN];
	ck_assert_msg(ls_store_commit_log(store, NULL, 0, ap, n, &o, 1, err, sizeof err) == 0,
		      "%s", err);
}

static long long commit_one(ls_store *store, const ls_config *cfg, const char *prefix,
			    ls_email_type type, const char *id, int64_t ts)
{
	ls_email_event ev = { .type = type, .decision_id = id };
	long long r;
	commit_events(store, cfg, prefix, &ev, &ts, 1, &r, 1);
	return r;
}

static void decide_written(ls_campaign *s, redisContext *c, const char *prefix,
			   const char *campaign, bool activate, ls_campaign_decision *d)
{
	decide(s, campaign, "lead-p", activate, NULL, NULL, d);
	char k[256];
	decision_key(k, sizeof k, prefix, campaign, d->decision_id);
	wait_exists(c, k, true);
}

START_TEST(test_reward_exactly_once_pipeline)
{
	const char *P = "t3:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: pipe\n"
		 "    arms: [a, b]\n"
		 "    rewards: {OPENED: 0.25, CLICKED: 1}\n"
		 "    reward_window: 72h\n");
	ls_campaign *s = start_service(&cfg);
	ls_store *store = open_store(P);
	redisContext *c = side();
	expect e = { 0 };
	char k[256], pend[256];
	campaign_key(pend, sizeof pend, P, "pipe", "pending");
	const int64_t W = 72 * 3600 * 1000LL;

	/* SENT activates once, CLICKED rewards once; replays answer 0 */
	ls_campaign_decision d1;
	decide_written(s, c, P, "pipe", false, &d1);
	decision_key(k, sizeof k, P, "pipe", d1.decision_id);
	ck_assert_int_eq(hget_ll(c, k, "st"), 0);
	int64_t t1 = ls_clock_wall_ms();
	long long r = commit_one(store, &cfg, P, LS_EMAIL_SENT, d1.decision_id, t1);
	ck_assert_int_eq(r, 1);
	ck_assert_int_eq(ls_campaign_outcome_of(true, r), LS_CAMPAIGN_O_ACTIVATED);
	r = commit_one(store, &cfg, P, LS_EMAIL_SENT, d1.decision_id, t1);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(ls_campaign_outcome_of(true, r), LS_CAMPAIGN_O_IGNORED);
	ck_assert_int_eq(hget_ll(c, k, "st"), 1);
	ck_assert_int_eq(hget_ll(c, k, "act"), t1);
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", pend), 1);
	r = commit_one(store, &cfg, P, LS_EMAIL_CLICKED, d1.decision_id, t1 + 1000);
	ck_assert_int_eq(r, 1);
	ck_assert_int_eq(ls_campaign_outcome_of(false, r), LS_CAMPAIGN_O_REWARDED);
	r = commit_one(store, &cfg, P, LS_EMAIL_CLICKED, d1.decision_id, t1 + 1000);
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(ls_campaign_outcome_of(false, r), LS_CAMPAIGN_O_IGNORED);
	/* a lower weight after it and a late SENT do nothing either */
	ck_assert_int_eq(commit_one(store, &cfg, P, LS_EMAIL_OPENED, d1.decision_id, t1 + 2000), 0);
	ck_assert_int_eq(commit_one(store, &cfg, P, LS_EMAIL_SENT, d1.decision_id, t1 + 3000), 0);
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", pend), 0);
	expect_add(&e, d1.variant, 1, 1.0);
	ls_campaign_stats st;
	stats_fresh(s, "pipe", &st);
	check_counts(&st, c, P, &e);
	free(st.buckets);

	/* opened then clicked is worth 1, not 1.25; a whole batch replayed
	   (the commit outcome was lost) changes nothing */
	ls_campaign_decision d2;
	decide_written(s, c, P, "pipe", false, &d2);
	int64_t t2 = ls_clock_wall_ms();
	ls_email_event evs[3] = {
		{ .type = LS_EMAIL_SENT, .decision_id = d2.decision_id },
		{ .type = LS_EMAIL_OPENED, .decision_id = d2.decision_id },
		{ .type = LS_EMAIL_CLICKED, .decision_id = d2.decision_id },
	};
	int64_t ts[3] = { t2, t2 + 10, t2 + 20 };
	long long res[3];
	commit_events(store, &cfg, P, evs, ts, 3, res, 2);
	ck_assert_int_eq(res[0], 1);
	ck_assert_int_eq(res[1], 1);
	ck_assert_int_eq(res[2], 2);
	ck_assert_int_eq(ls_campaign_outcome_of(false, res[2]), LS_CAMPAIGN_O_REWARDED);
	commit_events(store, &cfg, P, evs, ts, 3, res, 2);
	ck_assert_int_eq(res[0], 0);
	ck_assert_int_eq(res[1], 0);
	ck_assert_int_eq(res[2], 0);
	expect_add(&e, d2.variant, 1, 1.0);

	/* windows are judged by the event's ts: a reward before activation
	   is refused, one at the window's end counts, one after it is late */
	ls_campaign_decision d3, d4;
	decide_written(s, c, P, "pipe", false, &d3);
	decide_written(s, c, P, "pipe", false, &d4);
	int64_t t3 = ls_clock_wall_ms();
	r = commit_one(store, &cfg, P, LS_EMAIL_CLICKED, d3.decision_id, t3);
	ck_assert_int_eq(r, -2);
	ck_assert_int_eq(ls_campaign_outcome_of(false, r), LS_CAMPAIGN_O_NOT_ACTIVATED);
	ck_assert_int_eq(commit_one(store, &cfg, P, LS_EMAIL_SENT, d3.decision_id, t3), 1);
	ck_assert_int_eq(commit_one(store, &cfg, P, LS_EMAIL_SENT, d4.decision_id, t3), 1);
	ck_assert_int_eq(commit_one(store, &cfg, P, LS_EMAIL_OPENED, d3.decision_id, t3 + W), 1);
	r = commit_one(store, &cfg, P, LS_EMAIL_CLICKED, d4.decision_id, t3 + W + 1);
	ck_assert_int_eq(r, -3);
	ck_assert_int_eq(ls_campaign_outcome_of(false, r), LS_CAMPAIGN_O_TOO_LATE);
	expect_add(&e, d3.variant, 1, 0.25);
	r = commit_one(store, &cfg, P, LS_EMAIL_SENT, "pipe.0123456789abcdef0123456789abcdef",
		       t3);
	ck_assert_int_eq(r, -1);
	ck_assert_int_eq(ls_campaign_outcome_of(true, r), LS_CAMPAIGN_O_UNKNOWN);

	stats_fresh(s, "pipe", &st);
	check_counts(&st, c, P, &e);
	ck_assert_uint_eq(st.buckets[0].trials, 3);
	free(st.buckets);

	/* events that imply no op */
	ls_campaign_op op;
	char buf[2048];
	ls_email_event ev = { .type = LS_EMAIL_CLICKED };
	const char *none[] = {
		NULL,
		"",
		"other.0123456789abcdef0123456789abcdef",  /* unknown campaign */
		"pipe.0123456789abcdef0123456789abcde",    /* 31 digits */
		"pipe.0123456789abcdef0123456789abcdef0",  /* 33 */
		"pipe.0123456789ABCDEF0123456789ABCDEF",   /* not lower-case hex */
		"pipe.0123456789abcdef0123456789abcdeg",
		"pipe0123456789abcdef0123456789abcdef",    /* no dot */
		".0123456789abcdef0123456789abcdef",       /* no campaign */
		"pi{pe.0123456789abcdef0123456789abcdef",
	};
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		ev.decision_id = none[i];
		ev.type = LS_EMAIL_CLICKED;
		ck_assert_msg(event_op(&cfg, P, &ev, t3, &op, buf, sizeof buf) == 0,
			      "decision id %s", none[i] ? none[i] : "(null)");
		ev.type = LS_EMAIL_SENT;
		ck_assert_msg(event_op(&cfg, P, &ev, t3, &op, buf, sizeof buf) == 0,
			      "decision id %s", none[i] ? none[i] : "(null)");
	}
	ev.decision_id = d1.decision_id;
	static const ls_email_type not_reward[] = { LS_EMAIL_DELIVERED, LS_EMAIL_REPLIED,
		LS_EMAIL_BOUNCED, LS_EMAIL_UNSUBSCRIBED, LS_EMAIL_SPAM_REPORTED };
	for (size_t i = 0; i < sizeof not_reward / sizeof not_reward[0]; i++) {
		ev.type = not_reward[i];
		ck_assert_msg(event_op(&cfg, P, &ev, t3, &op, buf, sizeof buf) == 0,
			      "type %s", ls_email_type_name(not_reward[i]));
	}
	ev.type = LS_EMAIL_CLICKED;
	ck_assert_int_eq(event_op(&cfg, P, &ev, t3, &op, buf, 16), -1);

	redisFree(c);
	ls_store_free(store);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------------ 4. expiry */

START_TEST(test_expiry_default_reward)
{
	const char *P = "t4:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: exp\n"
		 "    arms: [a, b]\n"
		 "    reward_window: 1s\n"
		 "    default_reward: 0.5\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	expect e = { 0 };

	ls_campaign_decision d1, d2;
	decide(s, "exp", "L1", true, NULL, NULL, &d1);
	decide(s, "exp", "L2", true, NULL, NULL, &d2);
	expect_add(&e, d1.variant, 1, 0.5);
	/* d2 is rewarded at once; should this thread stall past the 1 s
	   window it is too late and expires like d1. Either way: once. */
	bool counted = false;
	int rc = ls_campaign_reward(s, api_conn(), d2.decision_id, 1.0, &counted);
	ck_assert_msg(rc == LS_CAMPAIGN_OK || rc == LS_CAMPAIGN_TOO_LATE, "%s",
		      ls_campaign_result_str(rc));
	ck_assert(rc != LS_CAMPAIGN_OK || counted);
	expect_add(&e, d2.variant, 1, rc == LS_CAMPAIGN_OK ? 1.0 : 0.5);

	/* the sweep resolves d1 after its window */
	ls_campaign_stats st;
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	for (;;) {
		ck_assert_int_eq(ls_campaign_stats_get(s, "exp", &st), LS_CAMPAIGN_OK);
		uint64_t n = st.buckets[0].trials;
		free(st.buckets);
		if (n >= 2)
			break;
		ck_assert_msg(ls_clock_mono_ms() < deadline, "not expired within 10 s (%" PRIu64 " trials)",
			      n);
		usleep(STEP_US);
	}
	stats_fresh(s, "exp", &st);
	check_counts(&st, c, P, &e);
	free(st.buckets);
	char k[256];
	campaign_key(k, sizeof k, P, "exp", "pending");
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", k), 0);
	decision_key(k, sizeof k, P, "exp", d1.decision_id);
	ck_assert_int_eq(hget_ll(c, k, "st"), 2);
	ck_assert_int_eq(hget_ll(c, k, "rw"), 500000);

	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d1.decision_id, 1.0, &counted),
			 LS_CAMPAIGN_TOO_LATE);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d2.decision_id, 1.0, &counted),
			 LS_CAMPAIGN_TOO_LATE);
	stats_fresh(s, "exp", &st);
	check_counts(&st, c, P, &e);
	free(st.buckets);

	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ----------------------------------------------- 5. never activated */

START_TEST(test_unactivated_changes_nothing)
{
	const char *P = "t5:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: cold\n"
		 "    arms: [a, b]\n"
		 "    activation_timeout: 1s\n");
	ls_campaign *s = start_service(&cfg);
	ls_store *store = open_store(P);
	redisContext *c = side();

	int64_t t0 = ls_clock_mono_ms();
	ls_campaign_decision d;
	decide(s, "cold", "L", false, NULL, NULL, &d);
	bool counted = false, already = false;
	int rc = ls_campaign_reward(s, api_conn(), d.decision_id, 1.0, &counted);
	if (ls_clock_mono_ms() - t0 < 900) {
		ck_assert_msg(rc == LS_CAMPAIGN_NOT_ACTIVATED, "%s", ls_campaign_result_str(rc));
	} else {
		/* stalled past the timeout: the record may be gone already */
		ck_assert_msg(rc == LS_CAMPAIGN_NOT_ACTIVATED || rc == LS_CAMPAIGN_UNKNOWN_DECISION,
			      "%s", ls_campaign_result_str(rc));
		fprintf(stderr, "test_unactivated: the reward came after the timeout (%s)\n",
			ls_campaign_result_str(rc));
	}
	char k[256], counts[256], pend[256];
	decision_key(k, sizeof k, P, "cold", d.decision_id);
	campaign_key(counts, sizeof counts, P, "cold", "counts");
	campaign_key(pend, sizeof pend, P, "cold", "pending");
	wait_exists(c, k, false);

	ck_assert_int_eq(ls_campaign_activate(s, api_conn(), d.decision_id, &already),
			 LS_CAMPAIGN_UNKNOWN_DECISION);
	ck_assert_int_eq(ls_campaign_reward(s, api_conn(), d.decision_id, 1.0, &counted),
			 LS_CAMPAIGN_UNKNOWN_DECISION);
	/* nor through the pipeline */
	ls_email_event ev = { .type = LS_EMAIL_SENT, .decision_id = d.decision_id };
	ls_campaign_op op;
	char buf[2048];
	ck_assert_int_eq(event_op(&cfg, P, &ev, ls_clock_wall_ms(), &op, buf, sizeof buf), 1);
	long long res = 99;
	ls_store_append ap = { .argc = op.argc, .argv = op.argv, .argvlen = op.argvlen,
			       .result = &res };
	char err[ERRLEN];
	ck_assert_msg(ls_store_commit_log(store, NULL, 0, &ap, 1, NULL, 0, err, sizeof err) == 0,
		      "%s", err);
	ck_assert_int_eq(res, -1);

	ck_assert_uint_eq(hlen(c, counts), 0);
	ck_assert_int_eq(cmd_int(c, "ZCARD %s", pend), 0);
	ck_assert_int_eq(cmd_int(c, "EXISTS %s", k), 0);
	ls_campaign_stats st;
	stats_fresh(s, "cold", &st);
	ck_assert_uint_eq(st.buckets[0].trials, 0);
	for (size_t a = 0; a < st.buckets[0].n_arms; a++) {
		ck_assert_uint_eq(st.buckets[0].arms[a].st.trials, 0);
		ck_assert_double_eq(st.buckets[0].arms[a].st.rewards, 0.0);
	}
	free(st.buckets);

	redisFree(c);
	ls_store_free(store);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------ 6. bucket fallback */

START_TEST(test_bucket_fallback)
{
	const char *P = "t6:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: ctx\n"
		 "    arms: [a, b]\n"
		 "    context: [industry]\n"
		 "    min_bucket_trials: 3\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	const double rewards[3] = { 1.0, 0.0, 1.0 };

	for (uint64_t k = 0; k <= 3; k++) {
		ls_campaign_stats st;
		stats_fresh(s, "ctx", &st);
		const ls_campaign_bucket_stats *b = find_bucket(&st, "industry=saas");
		if (k == 0) {
			ck_assert_ptr_null(b);
		} else {
			ck_assert_ptr_nonnull(b);
			ck_assert_uint_eq(b->trials, k);
			ck_assert_msg(b->fallback == (k < 3), "%" PRIu64 " trials: fallback %d", k,
				      b->fallback);
		}
		ck_assert_uint_eq(st.buckets[0].trials, k);

		/* several decisions, so an unlucky draw cannot hide a wrong row;
		   the first is rewarded after the rest (a reward now would let a
		   newer snapshot change the probabilities compared below) */
		ls_campaign_decision first;
		for (int i = 0; i < 20; i++) {
			ls_campaign_decision d;
			decide(s, "ctx", "L", true, "industry", "saas", &d);
			if (i == 0)
				first = d;
			ck_assert_str_eq(d.bucket, "industry=saas");
			ck_assert_msg(d.bucket_fallback == (k < 3), "%" PRIu64 " trials: fallback %d",
				      k, d.bucket_fallback);
			const ls_campaign_bucket_stats *row = k < 3 ? &st.buckets[0] : b;
			const ls_campaign_arm_stats *a = find_arm(row, d.variant);
			ck_assert_ptr_nonnull(a);
			ck_assert_double_eq(d.propensity, a->probability);
		}
		if (k < 3)
			reward_ok(s, first.decision_id, rewards[k], true);
		/* other buckets stay thin; a request without the key is "industry=" */
		ls_campaign_decision d;
		decide(s, "ctx", "L", true, "industry", "retail", &d);
		ck_assert_str_eq(d.bucket, "industry=retail");
		ck_assert(d.bucket_fallback);
		decide(s, "ctx", "L", true, NULL, NULL, &d);
		ck_assert_str_eq(d.bucket, "industry=");
		ck_assert(d.bucket_fallback);
		decide(s, "ctx", "L", true, "tier", "A", &d);
		ck_assert_str_eq(d.bucket, "industry=");
		ck_assert(d.bucket_fallback);
		free(st.buckets);
	}
	char counts[256];
	campaign_key(counts, sizeof counts, P, "ctx", "counts");
	long long n = 0, r = 0;
	static const char *const arms[] = { "a", "b" };
	for (size_t i = 0; i < 2; i++) {
		char f[64];
		snprintf(f, sizeof f, "n:%s:industry=saas", arms[i]);
		long long x = hget_ll(c, counts, f);
		n += x > 0 ? x : 0;
		snprintf(f, sizeof f, "r:%s:industry=saas", arms[i]);
		x = hget_ll(c, counts, f);
		r += x > 0 ? x : 0;
	}
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(r, 2000000);

	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------------- 7. reconfigure */

static void reconfigure(ls_campaign *s, const char *prefix, const char *arms)
{
	char yaml[512];
	snprintf(yaml, sizeof yaml,
		 "  - id: rc\n"
		 "    arms: %s\n"
		 "    min_share: 0.3\n",
		 arms);
	ls_config cfg;
	load_cfg(&cfg, prefix, yaml);
	adopt(s, &cfg);
	ls_config_free(&cfg); /* the service copied it */
}

/* Wait for a snapshot with exactly these arms, then a fresh one. */
static void stats_with_arms(ls_campaign *s, const char *const *arms, size_t n,
			    ls_campaign_stats *st)
{
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	for (;;) {
		ck_assert_int_eq(ls_campaign_stats_get(s, "rc", st), LS_CAMPAIGN_OK);
		bool same = st->spec.n_arms == n && st->buckets[0].n_arms == n;
		for (size_t i = 0; same && i < n; i++)
			same = strcmp(st->buckets[0].arms[i].variant, arms[i]) == 0;
		free(st->buckets);
		if (same)
			break;
		ck_assert_msg(ls_clock_mono_ms() < deadline, "arms not adopted within 10 s");
		usleep(STEP_US);
	}
	stats_fresh(s, "rc", st);
}

START_TEST(test_reconfigure_keeps_counts)
{
	const char *P = "t7:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: rc\n"
		 "    arms: [a, b]\n"
		 "    min_share: 0.3\n");
	ls_campaign *s = start_service(&cfg);
	redisContext *c = side();
	expect e = { 0 };

	/* counts on both arms (each is drawn with probability >= 0.3) */
	size_t na = 0, nb = 0;
	for (int i = 0; i < 400 && (na < 3 || nb < 3); i++) {
		ls_campaign_decision d;
		decide(s, "rc", "L", true, NULL, NULL, &d);
		double r = (i % 3 == 0) ? 1.0 : (i % 3 == 1 ? 0.25 : 0.0);
		reward_ok(s, d.decision_id, r, true);
		expect_add(&e, d.variant, 1, r);
		if (strcmp(d.variant, "a") == 0)
			na++;
		else
			nb++;
	}
	ck_assert(na >= 3 && nb >= 3);
	/* and one decision for a, still open when a is retired */
	ls_campaign_decision open_a;
	for (int i = 0;; i++) {
		ck_assert_int_lt(i, 400);
		decide(s, "rc", "L", true, NULL, NULL, &open_a);
		if (strcmp(open_a.variant, "a") == 0)
			break;
		reward_ok(s, open_a.decision_id, 0.0, true);
		expect_add(&e, open_a.variant, 1, 0.0);
	}
	ls_campaign_stats st;
	stats_fresh(s, "rc", &st);
	check_counts(&st, c, P, &e);
	free(st.buckets);

	static const char *const abc[] = { "a", "b", "c" };
	reconfigure(s, P, "[a, b, c]");
	stats_with_arms(s, abc, 3, &st);
	check_counts(&st, c, P, &e);
	const ls_campaign_arm_stats *arm_c = find_arm(&st.buckets[0], "c");
	ck_assert_ptr_nonnull(arm_c);
	ck_assert_uint_eq(arm_c->st.trials, 0);
	ck_assert_double_eq(arm_c->st.rewards, 0.0);
	ck_assert_double_ge(arm_c->probability, 0.3);
	free(st.buckets);

	static const char *const bc[] = { "b", "c" };
	reconfigure(s, P, "[b, c]");
	stats_with_arms(s, bc, 2, &st);
	ck_assert_ptr_null(find_arm(&st.buckets[0], "a"));
	uint64_t t;
	double r;
	expect_get(&e, "b", &t, &r);
	ck_assert_uint_eq(find_arm(&st.buckets[0], "b")->st.trials, t);
	ck_assert_double_eq(find_arm(&st.buckets[0], "b")->st.rewards, r);
	ck_assert_uint_eq(find_arm(&st.buckets[0], "c")->st.trials, 0);
	free(st.buckets);
	/* a retired arm is never chosen */
	for (int i = 0; i < 200; i++) {
		ls_campaign_decision d;
		decide(s, "rc", "L", false, NULL, NULL, &d);
		ck_assert_str_ne(d.variant, "a");
	}
	/* a decision made for it still resolves, into a's counts in Redis */
	reward_ok(s, open_a.decision_id, 1.0, true);
	expect_add(&e, "a", 1, 1.0);

	reconfigure(s, P, "[a, b, c]");
	stats_with_arms(s, abc, 3, &st);
	check_counts(&st, c, P, &e);
	free(st.buckets);

	redisFree(c);
	ls_campaign_stop(s);
	ls_config_free(&cfg);
}
END_TEST

/* ------------------------------------------- 8. two services, one Redis */

/* Reward on a service that did not make the decision: it is there once
   the deciding service has written it (within a batch, ~1 ms). */
static void reward_remote(ls_campaign *s, const char *id, double r)
{
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	for (;;) {
		bool counted = false;
		int rc = ls_campaign_reward(s, api_conn(), id, r, &counted);
		if (rc == LS_CAMPAIGN_OK) {
			ck_assert_msg(counted, "reward %g for %s not counted", r, id);
			return;
		}
		ck_assert_msg(rc == LS_CAMPAIGN_UNKNOWN_DECISION, "reward %s: %s", id,
			      ls_campaign_result_str(rc));
		ck_assert_msg(ls_clock_mono_ms() < deadline, "%s never written", id);
		usleep(1000);
	}
}

START_TEST(test_two_services_share_counts)
{
	const char *P = "t8:";
	ls_config cfg;
	load_cfg(&cfg, P,
		 "  - id: shared\n"
		 "    arms: [a, b, c]\n"
		 "    min_share: 0.1\n");
	ls_campaign *s1 = start_service(&cfg);
	ls_campaign *s2 = start_service(&cfg);
	ls_campaign *svc[2] = { s1, s2 };
	redisContext *c = side();
	expect e = { 0 };
	static const double rw[4] = { 1.0, 0.0, 0.25, 0.5 };

	const int N = 24;
	for (int i = 0; i < N; i++) {
		ls_campaign *mine = svc[i % 2], *other = svc[1 - i % 2];
		ls_campaign_decision d;
		if (i % 3 == 2) {
			/* deferred: activated on the other instance */
			decide(mine, "shared", "L", false, NULL, NULL, &d);
			int64_t deadline = ls_clock_mono_ms() + POLL_MS;
			bool already = true;
			int rc;
			while ((rc = ls_campaign_activate(other, api_conn(), d.decision_id, &already)) ==
			       LS_CAMPAIGN_UNKNOWN_DECISION) {
				ck_assert_msg(ls_clock_mono_ms() < deadline, "%s never written", d.decision_id);
				usleep(1000);
			}
			ck_assert_int_eq(rc, LS_CAMPAIGN_OK);
			ck_assert(!already);
			ck_assert_int_eq(ls_campaign_activate(mine, api_conn(), d.decision_id, &already),
					 LS_CAMPAIGN_OK);
			ck_assert(already);
		} else {
			decide(mine, "shared", "L", true, NULL, NULL, &d);
		}
		double r = rw[i % 4];
		reward_remote(other, d.decision_id, r);
		/* the same reward on the deciding instance is a repeat */
		reward_ok(mine, d.decision_id, r, false);
		reward_ok(other, d.decision_id, r, false);
		expect_add(&e, d.variant, 1, r);
	}

	for (int k = 0; k < 2; k++) {
		ls_campaign_stats st;
		stats_fresh(svc[k], "shared", &st);
		check_counts(&st, c, P, &e);
		ck_assert_uint_eq(st.buckets[0].trials, (uint64_t)N);
		ck_assert_uint_eq(st.decisions, (uint64_t)N / 2);
		free(st.buckets);
	}

	redisFree(c);
	ls_campaign_stop(s2);
	ls_campaign_stop(s1);
	ls_config_free(&cfg);
}
END_TEST

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
	Suite *s = suite_create("campaign");
	TCase *t = tcase_create("campaign");
	tcase_add_checked_fixture(t, env_setup, env_teardown);
	tcase_set_timeout(t, 120);
	tcase_add_test(t, test_propensities);
	tcase_add_test(t, test_reward_exactly_once_api);
	tcase_add_test(t, test_reward_exactly_once_pipeline);
	tcase_add_test(t, test_expiry_default_reward);
	tcase_add_test(t, test_unactivated_changes_nothing);
	tcase_add_test(t, test_bucket_fallback);
	tcase_add_test(t, test_reconfigure_keeps_counts);
	tcase_add_test(t, test_two_services_share_counts);
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
