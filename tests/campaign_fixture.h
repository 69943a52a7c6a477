/*
 * campaign_fixture.h - what the campaign service tests (test_campaign.c,
 * test_campaign_state.c) share: the checked fixture (a real redis-server
 * and the mock broker per test), configs loaded with the daemon's loader,
 * and helpers that read Redis back independently of the service.
 * Test code: helpers fail the test with ck_assert on anything unexpected.
 */
#ifndef CAMPAIGN_FIXTURE_H
#define CAMPAIGN_FIXTURE_H

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

/* the redis-server of the running test (its pid, to stop it) */
extern ls_test_redis *g_redis;

/* Expected counts by arm, kept by the test from what it did. */
typedef struct expect {
	size_t n;
	char arm[8][LS_CAMPAIGN_ID_MAX];
	uint64_t trials[8];
	double rewards[8];
} expect;

/* Helpers (comments at their definitions in campaign_fixture.c). */
void env_setup(void);
void env_teardown(void);
void load_cfg(ls_config *cfg, const char *prefix, const char *campaigns);
ls_campaign *start_service(const ls_config *cfg);
redisContext *api_conn(void);
void adopt(ls_campaign *s, const ls_config *cfg);
int event_op(const ls_config *cfg, const char *prefix, const ls_email_event *ev, int64_t ts, ls_campaign_op *op, char *buf, size_t buflen);
redisContext *side(void);
ls_store *open_store(const char *prefix);
void campaign_key(char *buf, size_t cap, const char *prefix, const char *campaign, const char *suffix);
void decision_key(char *buf, size_t cap, const char *prefix, const char *campaign, const char *decision_id);
long long cmd_int(redisContext *c, const char *fmt, const char *arg);
long long hget_ll(redisContext *c, const char *key, const char *field);
size_t hlen(redisContext *c, const char *key);
void wait_exists(redisContext *c, const char *key, bool want);
bool is_decision_id(const char *id, const char *campaign);
void decide(ls_campaign *s, const char *campaign, const char *lead, bool activate, const char *ctx_key, const char *ctx_val, ls_campaign_decision *out);
void reward_ok(ls_campaign *s, const char *id, double r, bool want_counted);
void stats_fresh(ls_campaign *s, const char *campaign, ls_campaign_stats *out);
const ls_campaign_bucket_stats *find_bucket(const ls_campaign_stats *st, const char *bucket);
const ls_campaign_arm_stats *find_arm(const ls_campaign_bucket_stats *b, const char *variant);
void expect_add(expect *e, const char *arm, uint64_t trials, double rewards);
void expect_get(const expect *e, const char *arm, uint64_t *trials, double *rewards);
void check_counts(const ls_campaign_stats *st, redisContext *c, const char *prefix, const expect *e);

#endif
