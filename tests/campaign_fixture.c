/*
 * campaign_fixture.c - the shared fixture and helpers of the campaign
 * service tests (campaign_fixture.h).
 */
#include "campaign_fixture.h"

ls_test_redis *g_redis;
static ls_test_broker *g_broker;
static char g_dir[64];
static redisContext *g_api_conn; /* api_conn()'s */

/* ------------------------------------------------------------ fixture */

/* Checked fixture: runs in the forked child, in the test's own thread. */
void env_setup(void)
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

void env_teardown(void)
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
void load_cfg(ls_config *cfg, const char *prefix, const char *campaigns)
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

ls_campaign *start_service(const ls_config *cfg)
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
redisContext *api_conn(void)
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
void adopt(ls_campaign *s, const ls_config *cfg)
{
	ls_campaign_settings st = ls_settings_campaign(cfg);
	ls_campaign_reconfigure(s, &st);
}

/* The script call ev implies, for keys under prefix. */
int event_op(const ls_config *cfg, const char *prefix, const ls_email_event *ev,
		    int64_t ts, ls_campaign_op *op, char *buf, size_t buflen)
{
	ls_campaign_settings st = ls_settings_campaign(cfg);
	st.key_prefix = prefix;
	return ls_campaign_event_op(&st, ev, ts, op, buf, buflen);
}

redisContext *side(void)
{
	char err[ERRLEN];
	redisContext *c = ls_test_redis_connect(g_redis, err, sizeof err);
	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

ls_store *open_store(const char *prefix)
{
	return ls_test_store_open(g_redis, prefix, "g", 60000, 5000, true);
}

/* ------------------------------------------------------------ helpers */

void campaign_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		 const char *suffix)
{
	int n = snprintf(buf, cap, "%s{bandit:%s}:%s", prefix, campaign, suffix);
	ck_assert(n > 0 && (size_t)n < cap);
}

void decision_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		 const char *decision_id)
{
	char suffix[LS_DECISION_ID_MAX + 4];
	snprintf(suffix, sizeof suffix, "d:%s", decision_id);
	campaign_key(buf, cap, prefix, campaign, suffix);
}

long long cmd_int(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *r = ls_test_cmd_ok(c, fmt, arg);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	long long v = r->integer;
	freeReplyObject(r);
	return v;
}

/* HGET as an integer; -1 when the field is absent. */
long long hget_ll(redisContext *c, const char *key, const char *field)
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

size_t hlen(redisContext *c, const char *key)
{
	return (size_t)cmd_int(c, "HLEN %s", key);
}

void wait_exists(redisContext *c, const char *key, bool want)
{
	int64_t deadline = ls_clock_mono_ms() + POLL_MS;
	while ((cmd_int(c, "EXISTS %s", key) == 1) != want) {
		ck_assert_msg(ls_clock_mono_ms() < deadline, "%s still %s after 10 s", key,
			      want ? "absent" : "present");
		usleep(want ? 1000 : STEP_US);
	}
}

bool is_decision_id(const char *id, const char *campaign)
{
	size_t n = strlen(campaign);
	if (strncmp(id, campaign, n) != 0 || id[n] != '.' || strlen(id + n + 1) != 32)
		return false;
	for (const char *p = id + n + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

void decide(ls_campaign *s, const char *campaign, const char *lead, bool activate,
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

void reward_ok(ls_campaign *s, const char *id, double r, bool want_counted)
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
void stats_fresh(ls_campaign *s, const char *campaign, ls_campaign_stats *out)
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

const ls_campaign_bucket_stats *find_bucket(const ls_campaign_stats *st,
						   const char *bucket)
{
	for (size_t i = 0; i < st->n_buckets; i++)
		if (strcmp(st->buckets[i].bucket, bucket) == 0)
			return &st->buckets[i];
	return NULL;
}

const ls_campaign_arm_stats *find_arm(const ls_campaign_bucket_stats *b,
					     const char *variant)
{
	for (size_t i = 0; i < b->n_arms; i++)
		if (strcmp(b->arms[i].variant, variant) == 0)
			return &b->arms[i];
	return NULL;
}


void expect_add(expect *e, const char *arm, uint64_t trials, double rewards)
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

void expect_get(const expect *e, const char *arm, uint64_t *trials, double *rewards)
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
void check_counts(const ls_campaign_stats *st, redisContext *c, const char *prefix,
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
