/*
 * ls_campaign.c - see ls_campaign.h for the contract.
 *
 * Why one thread does all the Redis work of the decision path: decisions
 * arrive tens of thousands of times a second; writing each with its own
 * round trip would make Redis latency the decision latency and cost a
 * Redis command per decision per field. Queued decisions are written in
 * one MULTI/EXEC per batch instead, and the same thread refreshes the
 * posterior snapshot and sweeps expired reward windows, so the HTTP
 * threads only ever take two short mutexes (the queue and the snapshot
 * pointer), never across I/O.
 */
#include "ls_campaign.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_kafka.h"
#include "ls_keys.h"
#include "ls_log.h"
#include "ls_redis.h"
#include "ls_settings.h" /* TODO(issue 13): daemon/; goes when ls_campaign is built from settings */
#include "ls_utf8.h"

#define COMPONENT "bandit"
#define MICRO 1000000.0
#define RECORD_SLACK_MS INT64_C(3600000) /* records outlive their window */
#define REFRESH_MS 500                   /* snapshot at least twice a second */
#define FULL_READ_MS INT64_C(60000)      /* counters read whole at least this often */
#define TRIM_BATCH 1000                  /* fields per trim script */
#define EXPIRE_BATCH 500                 /* expiries per campaign per sweep */
#define MAX_QUEUE 1000000                /* decisions waiting for Redis */
#define STATS_DRAWS 10000u
#define BATCH_NS INT64_C(1000000)         /* a write batch at most every ms */
#define UNLOGGED_LOG_MS 10000             /* one "decision not logged" line per reason */

/* ------------------------------------------------------------- scripts */

/* KEYS: decision, pending. ARGV: now ms, decision id. */
static const char act_script[] =
	"local st = redis.call('HGET', KEYS[1], 'st')\n"
	"if not st then return -1 end\n"
	"if st ~= '0' then return 0 end\n"
	"local win = tonumber(redis.call('HGET', KEYS[1], 'win'))\n"
	"redis.call('HSET', KEYS[1], 'st', '1', 'act', ARGV[1])\n"
	"redis.call('PEXPIRE', KEYS[1], win + 3600000)\n"
	"redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + win, ARGV[2])\n"
	"return 1\n";

/*
 * KEYS: decision, counts, pending. ARGV: ts ms, reward in millionths,
 * decision id, mode ("r" a reward, "x" expiry with the default reward),
 * max_buckets. Answers 1 resolved, 2 reward raised, 0 nothing to do, -1
 * unknown, -2 not activated, -3 after the window, -4 (expiry) not due
 * yet. The first resolution in a bucket stores the bucket ("b:<bucket>",
 * "nb") while fewer than max_buckets are; in any other bucket it counts
 * campaign-wide only and the record forgets its bucket, so a raise later
 * adds where the trial went. "v" moves with every change of the counters.
 */
static const char rew_script[] =
	"local d = redis.call('HMGET', KEYS[1], 'st', 'act', 'arm', 'bkt', 'rw', 'win')\n"
	"local st, mode = d[1], ARGV[4]\n"
	"if not st then\n"
	"  if mode == 'x' then redis.call('ZREM', KEYS[3], ARGV[3]) end\n"
	"  return -1\n"
	"end\n"
	"if st == '0' then return -2 end\n"
	"local ts, r = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local due = tonumber(d[2]) + tonumber(d[6])\n"
	"if mode == 'x' then\n"
	"  if st ~= '1' then redis.call('ZREM', KEYS[3], ARGV[3]) return 0 end\n"
	"  if ts < due then return -4 end\n"
	"elseif ts > due then\n"
	"  return -3\n"
	"end\n"
	"local arm, b = d[3], d[4]\n"
	"if st == '1' then\n"
	"  redis.call('HINCRBY', KEYS[2], 'n:' .. arm .. ':', 1)\n"
	"  redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':', r)\n"
	"  if b ~= '' and redis.call('HEXISTS', KEYS[2], 'b:' .. b) == 0 then\n"
	"    if tonumber(redis.call('HGET', KEYS[2], 'nb') or '0') < tonumber(ARGV[5]) then\n"
	"      redis.call('HSET', KEYS[2], 'b:' .. b, '1')\n"
	"      redis.call('HINCRBY', KEYS[2], 'nb', 1)\n"
	"    else\n"
	"      b = ''\n"
	"    end\n"
	"  end\n"
	"  if b ~= '' then\n"
	"    redis.call('HINCRBY', KEYS[2], 'n:' .. arm .. ':' .. b, 1)\n"
	"    redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':' .. b, r)\n"
	"  end\n"
	"  redis.call('HINCRBY', KEYS[2], 'v', 1)\n"
	"  redis.call('HSET', KEYS[1], 'st', '2', 'rw', r, 'bkt', b)\n"
	"  redis.call('ZREM', KEYS[3], ARGV[3])\n"
	"  return 1\n"
	"end\n"
	"local cur = tonumber(d[5])\n"
	"if r <= cur then return 0 end\n"
	"redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':', r - cur)\n"
	"if b ~= '' then redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':' .. b, r - cur) end\n"
	"redis.call('HINCRBY', KEYS[2], 'v', 1)\n"
	"redis.call('HSET', KEYS[1], 'rw', r)\n"
	"return 2\n";

/*
 * KEYS: counts. ARGV: max_buckets, then counter fields. Deletes those of
 * buckets that are not stored, once max_buckets are (so none of them can
 * be stored any more): counters an earlier version wrote for every
 * bucket, or a raise of such a decision. Their trials are in the
 * campaign-wide counters already. Answers the number deleted.
 */
static const char trim_script[] =
	"if tonumber(redis.call('HGET', KEYS[1], 'nb') or '0') < tonumber(ARGV[1]) then return 0 end\n"
	"local n = 0\n"
	"for i = 2, #ARGV do\n"
	"  local b = string.match(ARGV[i], '^[nr]:[^:]*:(.+)$')\n"
	"  if b and redis.call('HEXISTS', KEYS[1], 'b:' .. b) == 0 then\n"
	"    n = n + redis.call('HDEL', KEYS[1], ARGV[i])\n"
	"  end\n"
	"end\n"
	"return n\n";

const char *ls_campaign_result_str(int rc)
{
	switch (rc) {
	case LS_CAMPAIGN_OK: return "ok";
	case LS_CAMPAIGN_UNKNOWN_CAMPAIGN: return "unknown campaign";
	case LS_CAMPAIGN_UNKNOWN_DECISION: return "unknown decision";
	case LS_CAMPAIGN_NOT_ACTIVATED: return "decision not activated";
	case LS_CAMPAIGN_TOO_LATE: return "reward window has passed";
	case LS_CAMPAIGN_BAD_REQUEST: return "bad request";
	case LS_CAMPAIGN_UNAVAILABLE: return "unavailable";
	case LS_CAMPAIGN_INTERNAL: return "internal error";
	default: return "unknown result";
	}
}

static const char *const outcome_names[LS_CAMPAIGN_O__COUNT] = {
	"activated", "rewarded", "ignored", "unknown_decision", "not_activated", "too_late",
};

const char *ls_campaign_outcome_name(ls_campaign_outcome o)
{
	return (unsigned)o < LS_CAMPAIGN_O__COUNT ? outcome_names[o] : "unknown";
}

ls_campaign_outcome ls_campaign_outcome_of(bool activation, long long reply)
{
	if (activation)
		return reply == 1 ? LS_CAMPAIGN_O_ACTIVATED
		       : reply == 0 ? LS_CAMPAIGN_O_IGNORED : LS_CAMPAIGN_O_UNKNOWN;
	switch (reply) {
	case 1:
	case 2: return LS_CAMPAIGN_O_REWARDED;
	case 0: return LS_CAMPAIGN_O_IGNORED;
	case -2: return LS_CAMPAIGN_O_NOT_ACTIVATED;
	case -3: return LS_CAMPAIGN_O_TOO_LATE;
	default: return LS_CAMPAIGN_O_UNKNOWN;
	}
}

/* --------------------------------------------------------------- keys */

/* "<prefix>{bandit:<campaign>}:<suffix>"; -1 when it does not fit. */
static int ckey(char *buf, size_t cap, const char *prefix, const char *campaign,
		const char *suffix)
{
	return ls_keys_bandit(buf, cap, prefix, campaign, suffix);
}

/* A decision's record: "<prefix>{bandit:<campaign>}:d:<id>". */
static int dkey(char *buf, size_t cap, const char *prefix, const char *campaign, const char *id)
{
	return ls_keys_bandit_decision(buf, cap, prefix, campaign, id);
}

/*
 * Split "<campaign>.<32 hex>" into its campaign; false for anything else
 * (the id came from a client and may be garbage).
 */
static bool parse_decision_id(const char *id, char campaign[LS_CAMPAIGN_ID_MAX])
{
	const char *dot = strrchr(id, '.');
	if (dot == NULL || dot == id || (size_t)(dot - id) >= LS_CAMPAIGN_ID_MAX ||
	    strlen(dot + 1) != 32)
		return false;
	for (const char *p = dot + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	for (const char *p = id; p < dot; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	memcpy(campaign, id, (size_t)(dot - id));
	campaign[dot - id] = '\0';
	return true;
}

/* ----------------------------------------------------------- snapshot */

/* Decisions made by this process per campaign and arm: kept across
 * snapshots and reloads, found once per snapshot, bumped per decision. */
typedef struct arm_counter {
	char campaign[LS_CAMPAIGN_ID_MAX];
	char arm[LS_CAMPAIGN_ID_MAX];
	atomic_uint_fast64_t decisions;
	atomic_uint_fast64_t capped; /* of them, in a bucket past max_buckets */
} arm_counter;

#define MAX_ARM_COUNTERS (LS_CAMPAIGN_MAX * LS_CAMPAIGN_MAX_ARMS * 2)

typedef struct csnap {
	ls_campaign_spec spec;
	arm_counter *counter[LS_CAMPAIGN_MAX_ARMS];
	ls_campaign_posterior post; /* buckets in name order */
	size_t rows;     /* 1 + post.n_buckets: row 0 is campaign-wide */
	double *probs;   /* rows x n_arms */
	int64_t read_ms; /* monotonic time its counters were read */
} csnap;

typedef struct snap {
	atomic_int refs;
	size_t n;
	csnap *c;
	atomic_llong built_ms; /* moves on when a refresh finds nothing new */
} snap;

static void csnap_free(csnap *c)
{
	ls_campaign_posterior_free(&c->post);
	free(c->probs);
}

static void snap_free(snap *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		csnap_free(&s->c[i]);
	free(s->c);
	free(s);
}

static const csnap *snap_find(const snap *s, const char *campaign)
{
	for (size_t i = 0; s != NULL && i < s->n; i++)
		if (strcmp(s->c[i].spec.id, campaign) == 0)
			return &s->c[i];
	return NULL;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of name in names[0..n) (sorted), or SIZE_MAX. */
static size_t bucket_index(char *const *names, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(names[mid], name);
		if (d == 0)
			return mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* Bucket index of name, or SIZE_MAX when the snapshot has no such bucket. */
static size_t csnap_bucket(const csnap *c, const char *name)
{
	return bucket_index(c->post.names, c->post.n_buckets, name);
}

/* ---------------------------------------------------------- posterior */

size_t ls_campaign_posterior_bucket(const ls_campaign_posterior *p, const char *name)
{
	return bucket_index(p->names, p->n_buckets, name);
}

size_t ls_campaign_posterior_row(const ls_campaign_posterior *p, const char *name,
				 int64_t max_buckets, bool *capped)
{
	*capped = false;
	if (name[0] == '\0')
		return 0;
	size_t bi = ls_campaign_posterior_bucket(p, name);
	if (bi == SIZE_MAX) {
		/* stored buckets are never dropped, so once max_buckets are this
		 * one never gets counters (nor does one a smaller max_buckets
		 * left out of the posterior) */
		*capped = max_buckets <= 0 || p->n_stored >= (uint64_t)max_buckets;
		return 0;
	}
	return ls_bandit_uses_campaign(p->b, bi) ? 0 : 1 + bi;
}

void ls_campaign_posterior_free(ls_campaign_posterior *p)
{
	ls_bandit_free(p->b);
	for (size_t i = 0; i < p->n_buckets; i++)
		free(p->names[i]);
	free(p->names);
	free(p->trials);
	free(p->rmicro);
	memset(p, 0, sizeof *p);
}

/* Parse "n:<arm>:<bucket>" / "r:..."; arm ids have no ':'. */
static bool parse_field(const char *f, size_t len, char *kind, const char **arm,
			size_t *arm_len, const char **bucket, size_t *bucket_len)
{
	if (len < 3 || (f[0] != 'n' && f[0] != 'r') || f[1] != ':')
		return false;
	const char *a = f + 2;
	const char *colon = memchr(a, ':', len - 2);
	if (colon == NULL)
		return false;
	*kind = f[0];
	*arm = a;
	*arm_len = (size_t)(colon - a);
	*bucket = colon + 1;
	*bucket_len = len - (size_t)(colon + 1 - f);
	return true;
}

static int arm_index(const ls_campaign_spec *sp, const char *a, size_t len)
{
	for (size_t i = 0; i < sp->n_arms; i++)
		if (strlen(sp->arms[i]) == len && memcmp(sp->arms[i], a, len) == 0)
			return (int)i;
	return -1;
}

static int posterior_load(const ls_campaign_spec *sp, const redisReply *h,
			  ls_campaign_posterior *c)
{
	size_t na = sp->n_arms, cap = 0;
	/* bucket names first: the stored ones ("b:<bucket>") when there are
	 * any, so counters of buckets that are not stored (an earlier
	 * version's, not trimmed yet) never take a stored bucket's place;
	 * else, for a hash no stored bucket has marked yet, every bucket with
	 * counters of a configured arm */
	bool marks = false;
	for (size_t i = 0; h != NULL && i + 1 < h->elements && !marks; i += 2)
		marks = h->element[i]->type == REDIS_REPLY_STRING && h->element[i]->len > 2 &&
			h->element[i]->str[0] == 'b' && h->element[i]->str[1] == ':';
	for (size_t i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i];
		char kind;
		const char *a, *b;
		size_t al, bl;
		if (f->type != REDIS_REPLY_STRING)
			continue;
		if (marks) {
			if (f->len <= 2 || f->str[0] != 'b' || f->str[1] != ':')
				continue;
			b = f->str + 2;
			bl = f->len - 2;
		} else if (!parse_field(f->str, f->len, &kind, &a, &al, &b, &bl) || bl == 0 ||
			   arm_index(sp, a, al) < 0) {
			continue;
		}
		bool seen = false;
		/* linear only while small; the sort below dedupes the rest */
		for (size_t k = c->n_buckets; k > 0 && k + 8 > c->n_buckets && !seen; k--)
			seen = strlen(c->names[k - 1]) == bl && memcmp(c->names[k - 1], b, bl) == 0;
		if (seen)
			continue;
		if (c->n_buckets == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(c->names, cap * sizeof *nn);
			if (nn == NULL)
				return -1;
			c->names = nn;
		}
		c->names[c->n_buckets] = strndup(b, bl);
		if (c->names[c->n_buckets] == NULL)
			return -1;
		c->n_buckets++;
	}
	/* name order without duplicates, at most max_buckets (beyond it
	 * buckets decide campaign-wide): the first in name order, so which
	 * ones is stable between snapshots whatever order Redis returns the
	 * fields in */
	if (c->n_buckets > 1) /* names is NULL when there are none */
		qsort(c->names, c->n_buckets, sizeof *c->names, cmp_name);
	size_t w = 0;
	for (size_t i = 0; i < c->n_buckets; i++) {
		if ((w > 0 && strcmp(c->names[w - 1], c->names[i]) == 0) ||
		    w >= (size_t)sp->max_buckets) {
			free(c->names[i]);
			continue;
		}
		c->names[w++] = c->names[i];
	}
	c->n_buckets = w;
	size_t rows = 1 + c->n_buckets;
	c->trials = calloc(rows * na, sizeof *c->trials);
	c->rmicro = calloc(rows * na, sizeof *c->rmicro);
	if (c->trials == NULL || c->rmicro == NULL)
		return -1;
	for (size_t i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i], *v = h->element[i + 1];
		char kind;
		const char *a, *b;
		size_t al, bl;
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (f->len == 2 && memcmp(f->str, "nb", 2) == 0) {
			long long x = strtoll(v->str, NULL, 10);
			c->n_stored = x > 0 ? (uint64_t)x : 0;
			continue;
		}
		if (f->len == 1 && f->str[0] == 'v') {
			c->version = strtoll(v->str, NULL, 10);
			continue;
		}
		if (!parse_field(f->str, f->len, &kind, &a, &al, &b, &bl))
			continue;
		int arm = arm_index(sp, a, al);
		if (arm < 0)
			continue; /* a retired arm: its counts wait in Redis */
		size_t row = 0;
		if (bl > 0) {
			char name[LS_CAMPAIGN_BUCKET_MAX + 1];
			if (bl >= sizeof name)
				continue;
			memcpy(name, b, bl);
			name[bl] = '\0';
			size_t bi = ls_campaign_posterior_bucket(c, name);
			if (bi == SIZE_MAX)
				continue; /* beyond max_buckets */
			row = 1 + bi;
		}
		long long x = strtoll(v->str, NULL, 10);
		if (x < 0)
			x = 0;
		if (kind == 'n')
			c->trials[row * na + (size_t)arm] = (uint64_t)x;
		else
			c->rmicro[row * na + (size_t)arm] = x;
	}
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	p.prior_a = sp->prior_a;
	p.prior_b = sp->prior_b;
	p.min_share = sp->min_share;
	p.min_bucket_trials = (uint64_t)sp->min_bucket_trials;
	p.mc_draws = (uint32_t)sp->propensity_draws;
	char err[256];
	c->b = ls_bandit_new(&p, na, c->n_buckets, err, sizeof err);
	if (c->b == NULL)
		return -1;
	for (size_t row = 0; row < rows; row++) {
		for (size_t arm = 0; arm < na; arm++) {
			uint64_t t = c->trials[row * na + arm];
			double r = (double)c->rmicro[row * na + arm] / MICRO;
			if (r > (double)t)
				r = (double)t; /* a torn read cannot break the posterior */
			(void)ls_bandit_set_counts(c->b, row == 0 ? LS_BANDIT_CAMPAIGN : row - 1,
						   arm, t, r);
		}
	}
	return 0;
}

int ls_campaign_posterior_load(const ls_campaign_spec *sp, const redisReply *hash,
			       ls_campaign_posterior *out)
{
	memset(out, 0, sizeof *out);
	if (posterior_load(sp, hash, out) == 0)
		return 0;
	ls_campaign_posterior_free(out);
	return -1;
}


/* ------------------------------------------------------------ service */

typedef struct dec_item {
	char id[LS_DECISION_ID_MAX];
	char campaign[LS_CAMPAIGN_ID_MAX];
	char arm[LS_CAMPAIGN_ID_MAX];
	char bucket[LS_CAMPAIGN_BUCKET_MAX];
	char *lead;          /* malloc'd */
	int64_t ts;
	double propensity;
	bool activate;
	int64_t window_ms, ttl_ms;
	size_t n_ctx;
	char ctx_key[LS_CAMPAIGN_MAX_REQ_CONTEXT][LS_MODEL_KEY_MAX];
	char ctx_val[LS_CAMPAIGN_MAX_REQ_CONTEXT][LS_CAMPAIGN_CTX_VALUE_MAX + 1];
} dec_item;

struct ls_campaign {
	char *prefix;
	ls_redis_target target;
	int64_t connect_timeout_ms, command_timeout_ms;
	redisContext *rc; /* the service thread's */
	int64_t rc_retry_ms;
	rd_kafka_t *producer;
	char *topic;
	ls_codec *codec;
	ls_buf enc;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* queue, specs, stop */
	pthread_cond_t wake, written; /* wake runs on CLOCK_MONOTONIC */
	bool stop;
	bool writer_idle;  /* the thread sleeps on an empty queue: signal it */
	bool flush_wanted; /* an activation or reward waits: write now */
	dec_item *q;
	size_t nq, capq;
	uint64_t seq_queued, seq_done;
	ls_campaign_spec *specs;
	size_t n_specs;
	bool specs_changed;

	pthread_mutex_t snap_mu;
	snap *cur;

	pthread_key_t conn_key;
	bool key_ok;
	ls_rng rng; /* the service thread's */

	atomic_uint_fast64_t decisions, dropped;
	atomic_uint_fast64_t unlogged[LS_CAMPAIGN_UNLOGGED__COUNT];
	atomic_llong unlogged_log_ms[LS_CAMPAIGN_UNLOGGED__COUNT]; /* last line logged */
	pthread_mutex_t counters_mu;
	arm_counter counters[MAX_ARM_COUNTERS];
	atomic_size_t n_counters;
	atomic_llong redis_memory; /* INFO memory used_memory, -1 unknown */
	pthread_mutex_t conns_mu;
	struct thread_conn_t **conns;
	size_t n_conns, cap_conns;
	int64_t last_info_ms;
};

static arm_counter *counter_for(ls_campaign *s, const char *campaign, const char *arm)
{
	pthread_mutex_lock(&s->counters_mu);
	size_t n = atomic_load(&s->n_counters);
	arm_counter *c = NULL;
	for (size_t i = 0; i < n && c == NULL; i++)
		if (strcmp(s->counters[i].campaign, campaign) == 0 &&
		    strcmp(s->counters[i].arm, arm) == 0)
			c = &s->counters[i];
	if (c == NULL && n < MAX_ARM_COUNTERS) {
		c = &s->counters[n];
		snprintf(c->campaign, sizeof c->campaign, "%s", campaign);
		snprintf(c->arm, sizeof c->arm, "%s", arm);
		atomic_store(&c->decisions, 0);
		atomic_store(&c->capped, 0);
		atomic_store(&s->n_counters, n + 1); /* published after it is filled */
	}
	pthread_mutex_unlock(&s->counters_mu);
	return c;
}

static void snap_release(snap *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		snap_free(s);
}

static snap *snap_take(ls_campaign *s)
{
	pthread_mutex_lock(&s->snap_mu);
	snap *sn = s->cur;
	if (sn != NULL)
		atomic_fetch_add(&sn->refs, 1);
	pthread_mutex_unlock(&s->snap_mu);
	return sn;
}

static void snap_publish(ls_campaign *s, snap *sn)
{
	atomic_store(&sn->refs, 1);
	pthread_mutex_lock(&s->snap_mu);
	snap *old = s->cur;
	s->cur = sn;
	pthread_mutex_unlock(&s->snap_mu);
	snap_release(old);
}

bool ls_campaign_ready(ls_campaign *s)
{
	snap *sn = snap_take(s);
	bool ok = sn != NULL;
	snap_release(sn);
	return ok;
}

static bool connected(ls_campaign *s)
{
	if (s->rc != NULL)
		return true;
	if (ls_clock_mono_ms() < s->rc_retry_ms)
		return false;
	char err[512], q[600];
	s->rc = ls_redis_connect(&s->target, s->connect_timeout_ms, s->command_timeout_ms,
				 err, sizeof err);
	if (s->rc == NULL) {
		s->rc_retry_ms = ls_clock_mono_ms() + 500;
		ls_log(LS_LOG_WARN, COMPONENT, "redis connect failed", "error=%s",
		       ls_log_quote(err, q, sizeof q));
		return false;
	}
	return true;
}

static void drop_connection(ls_campaign *s, const char *what)
{
	char q[300];
	ls_log(LS_LOG_WARN, COMPONENT, "redis failed", "during=%s error=%s", what,
	       ls_log_quote(s->rc && s->rc->err ? s->rc->errstr : "bad reply", q, sizeof q));
	if (s->rc != NULL)
		redisFree(s->rc);
	s->rc = NULL;
	s->rc_retry_ms = ls_clock_mono_ms() + 200;
}



/*
 * Build one campaign's snapshot from its counters hash (HGETALL reply),
 * reusing the probability vectors of prev (the same campaign in the last
 * snapshot) for rows whose counts did not change.
 */
static int csnap_build(ls_campaign *s, csnap *c, const ls_campaign_spec *sp,
		       const redisReply *h, const csnap *prev)
{
	memset(c, 0, sizeof *c);
	c->spec = *sp;
	size_t na = sp->n_arms;
	for (size_t a = 0; a < na; a++)
		c->counter[a] = counter_for(s, sp->id, sp->arms[a]);
	if (ls_campaign_posterior_load(sp, h, &c->post) != 0)
		return -1;
	c->read_ms = ls_clock_mono_ms();
	c->rows = 1 + c->post.n_buckets;
	c->probs = calloc(c->rows * na, sizeof *c->probs);
	if (c->probs == NULL)
		return -1;
	/* probability vectors: reuse unchanged rows of the same arms */
	bool same_arms = prev != NULL && prev->spec.n_arms == na &&
			 memcmp(prev->spec.arms, sp->arms, sizeof sp->arms) == 0 &&
			 prev->spec.min_share == sp->min_share &&
			 prev->spec.prior_a == sp->prior_a && prev->spec.prior_b == sp->prior_b &&
			 prev->spec.min_bucket_trials == sp->min_bucket_trials;
	for (size_t row = 0; row < c->rows; row++) {
		double *out = &c->probs[row * na];
		size_t bucket = row == 0 ? LS_BANDIT_CAMPAIGN : row - 1;
		if (row > 0 && ls_bandit_uses_campaign(c->post.b, bucket)) {
			memcpy(out, c->probs, na * sizeof *out);
			continue;
		}
		size_t prow = SIZE_MAX;
		if (same_arms)
			prow = row == 0 ? 0 : csnap_bucket(prev, c->post.names[row - 1]);
		if (prow != SIZE_MAX && row > 0)
			prow += 1;
		if (prow != SIZE_MAX && prow < prev->rows &&
		    memcmp(&prev->post.trials[prow * na], &c->post.trials[row * na], na * sizeof(uint64_t)) == 0 &&
		    memcmp(&prev->post.rmicro[prow * na], &c->post.rmicro[row * na], na * sizeof(int64_t)) == 0 &&
		    (row == 0 || !ls_bandit_uses_campaign(prev->post.b, prow - 1))) {
			memcpy(out, &prev->probs[prow * na], na * sizeof *out);
			continue;
		}
		if (ls_bandit_probabilities(c->post.b, bucket, &s->rng, out, na) != LS_BANDIT_OK)
			return -1;
	}
	return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Delete the counters of buckets that are not stored from campaign sp's
 * hash h (its HGETALL reply), in scripts of TRIM_BATCH fields, once
 * max_buckets are stored: a hash an earlier version filled with a
 * counter pair per context value shrinks to the bound at the first read.
 */
static void trim_unstored(ls_campaign *s, const ls_campaign_spec *sp, const redisReply *h)
{
	size_t pairs = h->elements / 2, nm = 0, sent = 0, nf = 0;
	const char **marked = malloc((pairs ? pairs : 1) * sizeof *marked);
	const char **argv = malloc((5 + TRIM_BATCH) * sizeof *argv);
	size_t *argvlen = malloc((5 + TRIM_BATCH) * sizeof *argvlen);
	char key[LS_CAMPAIGN_ID_MAX + 256], maxb[24];
	if (marked == NULL || argv == NULL || argvlen == NULL ||
	    ckey(key, sizeof key, s->prefix, sp->id, "counts") < 0)
		goto out;
	for (size_t i = 0; i < pairs; i++) {
		const redisReply *f = h->element[2 * i];
		if (f->type == REDIS_REPLY_STRING && f->len > 2 && f->str[0] == 'b' && f->str[1] == ':')
			marked[nm++] = f->str + 2;
	}
	if (nm > 1)
		qsort(marked, nm, sizeof *marked, cmp_cstr);
	snprintf(maxb, sizeof maxb, "%" PRId64, sp->max_buckets);
	argv[0] = "EVAL";
	argv[1] = trim_script;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = maxb;
	for (size_t i = 0; i <= pairs; i++) {
		if (i < pairs) {
			const redisReply *f = h->element[2 * i];
			char kind;
			const char *a, *b;
			size_t al, bl;
			if (f->type != REDIS_REPLY_STRING ||
			    !parse_field(f->str, f->len, &kind, &a, &al, &b, &bl) || bl == 0 ||
			    bsearch(&b, marked, nm, sizeof *marked, cmp_cstr) != NULL)
				continue;
			argv[5 + nf++] = f->str;
		}
		if (nf > 0 && (nf == TRIM_BATCH || i == pairs)) {
			for (size_t k = 0; k < 5 + nf; k++)
				argvlen[k] = strlen(argv[k]);
			if (redisAppendCommandArgv(s->rc, (int)(5 + nf), argv, argvlen) != REDIS_OK)
				break;
			sent++;
			nf = 0;
		}
	}
	long long trimmed = 0;
	for (size_t k = 0; k < sent; k++) {
		redisReply *r = NULL;
		if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || r == NULL) {
			drop_connection(s, "trim");
			goto out;
		}
		if (r->type == REDIS_REPLY_INTEGER)
			trimmed += r->integer;
		freeReplyObject(r);
	}
	if (trimmed > 0)
		ls_log(LS_LOG_INFO, COMPONENT, "counters of buckets past max_buckets deleted",
		       "campaign=%s fields=%lld", sp->id, trimmed);
out:
	free(marked);
	free(argv);
	free(argvlen);
}

/* A deep copy of src, for a snapshot that keeps a campaign unchanged. */
static int csnap_copy(csnap *dst, const csnap *src)
{
	memset(dst, 0, sizeof *dst);
	dst->spec = src->spec;
	memcpy(dst->counter, src->counter, sizeof dst->counter);
	dst->rows = src->rows;
	dst->read_ms = src->read_ms;
	size_t cells = src->rows * src->spec.n_arms, nb = src->post.n_buckets;
	dst->post.n_stored = src->post.n_stored;
	dst->post.version = src->post.version;
	dst->post.b = ls_bandit_clone(src->post.b);
	dst->post.names = calloc(nb ? nb : 1, sizeof *dst->post.names);
	dst->post.trials = malloc(cells * sizeof *dst->post.trials);
	dst->post.rmicro = malloc(cells * sizeof *dst->post.rmicro);
	dst->probs = malloc(cells * sizeof *dst->probs);
	if (dst->post.b == NULL || dst->post.names == NULL || dst->post.trials == NULL ||
	    dst->post.rmicro == NULL || dst->probs == NULL)
		return -1;
	dst->post.n_buckets = nb; /* names[] is zeroed: free() copes with a partial copy */
	for (size_t i = 0; i < nb; i++)
		if ((dst->post.names[i] = strdup(src->post.names[i])) == NULL)
			return -1;
	memcpy(dst->post.trials, src->post.trials, cells * sizeof *dst->post.trials);
	memcpy(dst->post.rmicro, src->post.rmicro, cells * sizeof *dst->post.rmicro);
	memcpy(dst->probs, src->probs, cells * sizeof *dst->probs);
	return 0;
}

/*
 * Whether campaign sp must be read again: prev (its entry in the current
 * snapshot) is missing or has another spec, its counters' version moved
 * (ver: "v" now, -1 unreadable), or it was read FULL_READ_MS ago (a hash
 * replaced behind the service's back, e.g. restored from a backup, may
 * carry a version it has seen).
 */
static bool needs_read(const csnap *prev, const ls_campaign_spec *sp, long long ver,
		       int64_t now_ms)
{
	return prev == NULL || memcmp(&prev->spec, sp, sizeof *sp) != 0 || ver < 0 ||
	       ver != prev->post.version || now_ms - prev->read_ms >= FULL_READ_MS;
}

/*
 * Refresh the snapshot: one round trip reads every campaign's counters
 * version ("v"), a second reads the whole counters hash (bounded by
 * max_buckets) of just the campaigns whose version moved; the others are
 * copied from the current snapshot. With nothing new, no snapshot is
 * built at all: the idle cost is one small round trip.
 */
static int refresh(ls_campaign *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->n_specs;
	ls_campaign_spec *specs = NULL;
	if (n > 0) {
		specs = malloc(n * sizeof *specs);
		if (specs != NULL)
			memcpy(specs, s->specs, n * sizeof *specs);
	}
	s->specs_changed = false;
	pthread_mutex_unlock(&s->mu);
	long long *ver = calloc(n ? n : 1, sizeof *ver);
	bool *need = calloc(n ? n : 1, sizeof *need);
	redisReply **trim = calloc(n ? n : 1, sizeof *trim);
	snap *sn = calloc(1, sizeof *sn);
	csnap *cs = calloc(n ? n : 1, sizeof *cs);
	if ((n > 0 && specs == NULL) || ver == NULL || need == NULL || trim == NULL ||
	    sn == NULL || cs == NULL) {
		free(specs);
		free(ver);
		free(need);
		free(trim);
		free(sn);
		free(cs);
		return -1;
	}
	sn->c = cs;
	int rc = -1;
	snap *prev = NULL;
	char key[LS_CAMPAIGN_ID_MAX + 256];
	if (!connected(s))
		goto out;
	for (size_t i = 0; i < n; i++)
		if (ckey(key, sizeof key, s->prefix, specs[i].id, "counts") < 0 ||
		    redisAppendCommand(s->rc, "HGET %s v", key) != REDIS_OK) {
			drop_connection(s, "refresh");
			goto out;
		}
	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || r == NULL) {
			drop_connection(s, "refresh");
			goto out;
		}
		ver[i] = r->type == REDIS_REPLY_NIL ? 0
			 : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
		freeReplyObject(r);
	}
	prev = snap_take(s);
	int64_t now = ls_clock_mono_ms();
	size_t reads = 0;
	for (size_t i = 0; i < n; i++) {
		const csnap *pc = prev != NULL && i < prev->n &&
					  strcmp(prev->c[i].spec.id, specs[i].id) == 0
				  ? &prev->c[i] : NULL;
		need[i] = needs_read(pc, &specs[i], ver[i], now);
		reads += need[i];
	}
	if (prev != NULL && prev->n == n && reads == 0) {
		/* nothing new: the current snapshot stays, as of now */
		atomic_store(&prev->built_ms, ls_clock_wall_ms());
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (need[i] && (ckey(key, sizeof key, s->prefix, specs[i].id, "counts") < 0 ||
				redisAppendCommand(s->rc, "HGETALL %s", key) != REDIS_OK)) {
			drop_connection(s, "refresh");
			goto out;
		}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		const csnap *pc = snap_find(prev, specs[i].id);
		if (!need[i]) {
			if (rc == 0 && csnap_copy(&cs[i], pc) != 0)
				rc = -1;
			sn->n = i + 1;
			continue;
		}
		redisReply *r = NULL;
		if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || r == NULL) {
			drop_connection(s, "refresh");
			/* the connection is gone: the other replies with it */
			rc = -1;
			break;
		}
		if (rc == 0 && r->type != REDIS_REPLY_ARRAY) {
			char q[300];
			ls_log(LS_LOG_WARN, COMPONENT, "counters unreadable", "campaign=%s reply=%s",
			       specs[i].id, ls_log_quote(r->type == REDIS_REPLY_ERROR ? r->str : "not a hash",
							 q, sizeof q));
		}
		if (rc == 0 && csnap_build(s, &cs[i], &specs[i],
					   r->type == REDIS_REPLY_ARRAY ? r : NULL, pc) != 0)
			rc = -1;
		sn->n = i + 1;
		/* more fields than stored buckets account for: trimmed below,
		 * once every reply of this pipeline is read */
		if (rc == 0 && r->type == REDIS_REPLY_ARRAY &&
		    cs[i].post.n_stored >= (uint64_t)specs[i].max_buckets &&
		    r->elements / 2 > 2 * cs[i].spec.n_arms * (cs[i].post.n_buckets + 1) +
					      cs[i].post.n_stored + 2) {
			trim[i] = r;
			continue;
		}
		freeReplyObject(r);
	}
	for (size_t i = 0; i < n; i++) {
		if (trim[i] != NULL && s->rc != NULL)
			trim_unstored(s, &specs[i], trim[i]);
		if (trim[i] != NULL)
			freeReplyObject(trim[i]);
	}
	if (rc == 0) {
		atomic_store(&sn->built_ms, ls_clock_wall_ms());
		snap_publish(s, sn);
		sn = NULL;
	}
out:
	snap_release(prev);
	snap_free(sn);
	free(specs);
	free(ver);
	free(need);
	free(trim);
	return rc;
}

/* Apply the default reward to decisions whose window has passed. */
static size_t expire_once(ls_campaign *s);

/* Up to 20 batches per pass: ~10,000 expiries a campaign a second. */
static void expire(ls_campaign *s)
{
	for (int i = 0; i < 20 && expire_once(s) >= EXPIRE_BATCH; i++)
		;
}

/* One batch per campaign; returns the largest batch seen. */
static size_t expire_once(ls_campaign *s)
{
	size_t most = 0;
	const snap *sn = s->cur; /* only this thread replaces it */
	if (sn == NULL || !connected(s))
		return 0;
	int64_t now = ls_clock_wall_ms();
	for (size_t i = 0; i < sn->n; i++) {
		const ls_campaign_spec *sp = &sn->c[i].spec;
		char pend[LS_CAMPAIGN_ID_MAX + 256], counts[LS_CAMPAIGN_ID_MAX + 256];
		if (ckey(pend, sizeof pend, s->prefix, sp->id, "pending") < 0 ||
		    ckey(counts, sizeof counts, s->prefix, sp->id, "counts") < 0)
			continue;
		redisReply *r = redisCommand(s->rc, "ZRANGEBYSCORE %s -inf %" PRId64 " LIMIT 0 %d",
					     pend, now, EXPIRE_BATCH);
		if (r == NULL) {
			drop_connection(s, "expiry");
			return 0;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
			freeReplyObject(r);
			continue;
		}
		char nows[24], rew[24], maxb[24];
		snprintf(nows, sizeof nows, "%" PRId64, now);
		snprintf(rew, sizeof rew, "%lld", (long long)llround(sp->default_reward * MICRO));
		snprintf(maxb, sizeof maxb, "%" PRId64, sp->max_buckets);
		size_t sent = 0;
		for (size_t k = 0; k < r->elements; k++) {
			const redisReply *m = r->element[k];
			char dk[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
			if (m->type != REDIS_REPLY_STRING || m->len >= LS_DECISION_ID_MAX ||
			    dkey(dk, sizeof dk, s->prefix, sp->id, m->str) < 0)
				continue;
			const char *argv[11] = { "EVAL", rew_script, "3", dk, counts, pend,
						 nows, rew, m->str, "x", maxb };
			size_t argvlen[11] = { 4, sizeof rew_script - 1, 1, strlen(dk), strlen(counts),
					       strlen(pend), strlen(nows), strlen(rew), m->len, 1,
					       strlen(maxb) };
			if (redisAppendCommandArgv(s->rc, 11, argv, argvlen) != REDIS_OK)
				break;
			sent++;
		}
		if (r->elements > most)
			most = r->elements;
		freeReplyObject(r);
		for (size_t k = 0; k < sent; k++) {
			redisReply *x = NULL;
			if (redisGetReply(s->rc, (void **)&x) != REDIS_OK || x == NULL) {
				drop_connection(s, "expiry");
				return 0;
			}
			freeReplyObject(x);
		}
	}
	return most;
}

/*
 * Append one ZADD of campaign's pending set with every activated decision
 * of items[from..n) of that campaign (each with its window's end), and
 * mark them zadded. 1 when a command was appended, 0 when there was none,
 * -1 when memory ran out.
 */
static int append_pending(ls_campaign *s, dec_item *items, size_t n, size_t from,
			  bool *zadded)
{
	const char *campaign = items[from].campaign;
	size_t k = 0;
	for (size_t i = from; i < n; i++)
		k += items[i].activate && !zadded[i] && strcmp(items[i].campaign, campaign) == 0;
	if (k == 0)
		return 0;
	char pend[LS_CAMPAIGN_ID_MAX + 256];
	if (ckey(pend, sizeof pend, s->prefix, campaign, "pending") < 0)
		return 0;
	const char **argv = malloc((2 + 2 * k) * sizeof *argv);
	size_t *argvlen = malloc((2 + 2 * k) * sizeof *argvlen);
	char (*due)[24] = malloc(k * sizeof *due);
	if (argv == NULL || argvlen == NULL || due == NULL) {
		free(argv);
		free(argvlen);
		free(due);
		return -1;
	}
	argv[0] = "ZADD";
	argv[1] = pend;
	size_t argc = 2, j = 0;
	for (size_t i = from; i < n; i++) {
		dec_item *d = &items[i];
		if (!d->activate || zadded[i] || strcmp(d->campaign, campaign) != 0)
			continue;
		snprintf(due[j], sizeof due[j], "%" PRId64, d->ts + d->window_ms);
		argv[argc++] = due[j++];
		argv[argc++] = d->id;
		zadded[i] = true;
	}
	for (size_t i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	redisAppendCommandArgv(s->rc, (int)argc, argv, argvlen);
	free(argv);
	free(argvlen);
	free(due);
	return 1;
}

static const char *const unlogged_names[LS_CAMPAIGN_UNLOGGED__COUNT] = {
	"redis", "encode", "produce", "delivery",
};

const char *ls_campaign_unlogged_name(ls_campaign_unlogged why)
{
	return (unsigned)why < LS_CAMPAIGN_UNLOGGED__COUNT ? unlogged_names[why] : "unknown";
}

/*
 * Count n decisions that were not logged for why, and say so: at most one
 * line per reason every UNLOGGED_LOG_MS (a broker outage fails every
 * decision), carrying the total so far. Any thread.
 */
static void note_unlogged(ls_campaign *s, ls_campaign_unlogged why, uint64_t n,
			  const char *detail)
{
	uint64_t total = atomic_fetch_add(&s->unlogged[why], n) + n;
	long long now = ls_clock_mono_ms(), last = atomic_load(&s->unlogged_log_ms[why]);
	if ((last != 0 && now - last < UNLOGGED_LOG_MS) ||
	    !atomic_compare_exchange_strong(&s->unlogged_log_ms[why], &last, now))
		return;
	char q[300];
	ls_log(LS_LOG_WARN, COMPONENT, "decision not logged",
	       "reason=%s decisions=%" PRIu64 " total=%" PRIu64 " error=%s",
	       unlogged_names[why], n, total, ls_log_quote(detail, q, sizeof q));
}

void ls_campaign_unlogged_counts(ls_campaign *s, uint64_t out[LS_CAMPAIGN_UNLOGGED__COUNT])
{
	for (int i = 0; i < LS_CAMPAIGN_UNLOGGED__COUNT; i++)
		out[i] = atomic_load(&s->unlogged[i]);
}

/* The decisions topic's delivery reports (served by rd_kafka_poll). */
static void decision_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
		note_unlogged(opaque, LS_CAMPAIGN_UNLOGGED_DELIVERY, 1, rd_kafka_err2str(m->err));
}

/*
 * Write queued decisions' records: one MULTI/EXEC with an HSET and a
 * PEXPIRE per decision and one ZADD per campaign for the activated ones
 * (a ZADD per decision was a third of Redis's commands for nothing).
 * NULL, or why they were not written.
 */
static const char *write_records(ls_campaign *s, dec_item *items, size_t n)
{
	if (!connected(s))
		return "redis unreachable";
	bool *zadded = calloc(n, sizeof *zadded);
	if (zadded == NULL)
		return "out of memory";
	const char *multi[1] = { "MULTI" };
	size_t multilen[1] = { 5 };
	redisAppendCommandArgv(s->rc, 1, multi, multilen);
	size_t expect = 2; /* MULTI, queued replies, EXEC */
	for (size_t i = 0; i < n; i++) {
		dec_item *d = &items[i];
		char dk[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
		if (dkey(dk, sizeof dk, s->prefix, d->campaign, d->id) < 0)
			continue;
		char ts[24], win[24], ttl[24];
		snprintf(ts, sizeof ts, "%" PRId64, d->ts);
		snprintf(win, sizeof win, "%" PRId64, d->window_ms);
		snprintf(ttl, sizeof ttl, "%" PRId64, d->ttl_ms);
		const char *argv[16] = { "HSET", dk, "lead", d->lead, "arm", d->arm, "bkt", d->bucket,
					 "ts", ts, "win", win, "st", d->activate ? "1" : "0",
					 "act", ts };
		size_t argvlen[16];
		int argc = d->activate ? 16 : 14;
		for (int k = 0; k < argc; k++)
			argvlen[k] = strlen(argv[k]);
		redisAppendCommandArgv(s->rc, argc, argv, argvlen);
		const char *pex[3] = { "PEXPIRE", dk, ttl };
		size_t pexlen[3] = { 7, strlen(dk), strlen(ttl) };
		redisAppendCommandArgv(s->rc, 3, pex, pexlen);
		expect += 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (!items[i].activate || zadded[i])
			continue;
		int z = append_pending(s, items, n, i, zadded);
		if (z < 0) {
			/* the transaction must not go out without its ZADDs */
			free(zadded);
			drop_connection(s, "decision write (out of memory)");
			return "out of memory";
		}
		expect += (size_t)z;
	}
	free(zadded);
	const char *exec[1] = { "EXEC" };
	size_t execlen[1] = { 4 };
	redisAppendCommandArgv(s->rc, 1, exec, execlen);
	bool ok = true;
	for (size_t i = 0; i < expect; i++) {
		redisReply *r = NULL;
		if (redisGetReply(s->rc, (void **)&r) != REDIS_OK || r == NULL) {
			drop_connection(s, "decision write");
			return "redis failed";
		}
		if (r->type == REDIS_REPLY_ERROR || (i + 1 == expect && r->type != REDIS_REPLY_ARRAY))
			ok = false;
		freeReplyObject(r);
	}
	return ok ? NULL : "transaction refused";
}

/*
 * Write queued decisions: their Redis records (write_records), then the
 * decision log, which goes out even when Redis failed (the decisions
 * were answered; offline evaluation still wants them). Every decision
 * either part loses is counted and logged by note_unlogged.
 */
static void write_batch(ls_campaign *s, dec_item *items, size_t n)
{
	if (n == 0)
		return;
	const char *why = write_records(s, items, n);
	if (why != NULL)
		note_unlogged(s, LS_CAMPAIGN_UNLOGGED_REDIS, n, why);
	for (size_t i = 0; i < n; i++) {
		dec_item *d = &items[i];
		ls_attribute ctx[LS_CAMPAIGN_MAX_REQ_CONTEXT];
		for (size_t k = 0; k < d->n_ctx; k++)
			ctx[k] = (ls_attribute){ d->ctx_key[k], d->ctx_val[k] };
		ls_bandit_decision bd = {
			.decision_id = d->id, .campaign_id = d->campaign, .lead_id = d->lead,
			.variant_id = d->arm, .propensity = d->propensity, .ts = d->ts,
			.has_context = d->n_ctx > 0, .n_context = d->n_ctx, .context = ctx,
		};
		char err[256];
		if (ls_codec_encode_bandit_decision(s->codec, &bd, -1, &s->enc, err, sizeof err) != 0) {
			note_unlogged(s, LS_CAMPAIGN_UNLOGGED_ENCODE, 1, err);
			continue;
		}
		for (int attempt = 0; attempt < 2; attempt++) {
			rd_kafka_resp_err_t e = rd_kafka_producev(
				s->producer, RD_KAFKA_V_TOPIC(s->topic),
				RD_KAFKA_V_KEY(d->lead, strlen(d->lead)),
				RD_KAFKA_V_VALUE(s->enc.data, s->enc.len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt == 1) {
				note_unlogged(s, LS_CAMPAIGN_UNLOGGED_PRODUCE, 1, rd_kafka_err2str(e));
				break;
			}
			rd_kafka_poll(s->producer, 100);
		}
	}
	rd_kafka_poll(s->producer, 0);
}

/* Redis's used_memory every 5 s, for ops (a Redis filling up is the
 * failure users of feature stores hit most). */
static void redis_info(ls_campaign *s)
{
	if (ls_clock_mono_ms() - s->last_info_ms < 5000 || !connected(s))
		return;
	s->last_info_ms = ls_clock_mono_ms();
	redisReply *r = redisCommand(s->rc, "INFO memory");
	if (r == NULL) {
		drop_connection(s, "info");
		atomic_store(&s->redis_memory, -1);
		return;
	}
	const char *m = r->type == REDIS_REPLY_STRING
				? strstr(r->str, "used_memory:") : NULL;
	atomic_store(&s->redis_memory, m != NULL ? strtoll(m + 12, NULL, 10) : -1);
	freeReplyObject(r);
}

/*
 * The writer's cadence. Under load it writes at most one batch a
 * millisecond, woken by its own timer: an HTTP thread that queues a
 * decision signals it only when it sleeps on an empty queue (the first
 * decision after a quiet spell is written at once). Signalling per
 * decision cost a futex wake and a context switch per decision, each
 * batch then held one or two decisions, and Redis paid a round trip per
 * decision; on a 2-core machine that was most of the decision's cost.
 * An activation or reward that waits for the queue (flush_wanted) is
 * written at once too.
 */
static void *service_main(void *arg)
{
	ls_campaign *s = arg;
	int64_t last_refresh = 0, next_batch_ns = 0;
	dec_item *batch = NULL;
	size_t cap_batch = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (;;) {
			int64_t now = ls_clock_mono_ns();
			int64_t refresh_at = (last_refresh + REFRESH_MS) * 1000000;
			if (s->stop || s->specs_changed || s->flush_wanted || now >= refresh_at ||
			    (s->nq > 0 && now >= next_batch_ns))
				break;
			int64_t until = s->nq > 0 && next_batch_ns < refresh_at ? next_batch_ns
										 : refresh_at;
			struct timespec ts = { .tv_sec = (time_t)(until / 1000000000),
					       .tv_nsec = (long)(until % 1000000000) };
			s->writer_idle = s->nq == 0;
			pthread_cond_timedwait(&s->wake, &s->mu, &ts);
			s->writer_idle = false;
		}
		/* take the queue: swap buffers so producers never wait on I/O */
		dec_item *q = s->q;
		size_t nq = s->nq, cap_q = s->capq;
		uint64_t upto = s->seq_queued;
		s->q = batch;
		s->capq = cap_batch;
		s->nq = 0;
		s->flush_wanted = false;
		bool stop = s->stop;
		bool changed = s->specs_changed;
		pthread_mutex_unlock(&s->mu);

		if (nq > 0)
			next_batch_ns = ls_clock_mono_ns() + BATCH_NS;
		write_batch(s, q, nq);
		for (size_t i = 0; i < nq; i++)
			free(q[i].lead);
		batch = q;
		cap_batch = cap_q;
		if (ls_clock_mono_ms() - last_refresh >= REFRESH_MS || changed) {
			last_refresh = ls_clock_mono_ms();
			(void)refresh(s);
			expire(s);
			redis_info(s);
			/* delivery reports of a quiet spell too (failures are counted) */
			rd_kafka_poll(s->producer, 0);
		}

		pthread_mutex_lock(&s->mu);
		s->seq_done = upto;
		pthread_cond_broadcast(&s->written);
		if (stop && s->nq == 0)
			break;
	}
	pthread_mutex_unlock(&s->mu);
	free(batch);
	return NULL;
}

/* ------------------------------------------------------ start and stop */

/*
 * A calling thread's connection. pthread_key_delete() frees nothing, so
 * the service also keeps every live one in conns to close them at stop;
 * a thread that ends first closes its own and leaves the list.
 */
typedef struct thread_conn_t {
	ls_campaign *s;
	redisContext *c;
} thread_conn_t;

static void conn_forget(ls_campaign *s, thread_conn_t *tc)
{
	pthread_mutex_lock(&s->conns_mu);
	for (size_t i = 0; i < s->n_conns; i++)
		if (s->conns[i] == tc) {
			s->conns[i] = s->conns[--s->n_conns];
			break;
		}
	pthread_mutex_unlock(&s->conns_mu);
}

static void conn_destroy(void *p)
{
	thread_conn_t *tc = p;
	conn_forget(tc->s, tc);
	if (tc->c != NULL)
		redisFree(tc->c);
	free(tc);
}

static void set_specs(ls_campaign *s, const ls_config *cfg)
{
	size_t n = cfg->campaigns.n;
	ls_campaign_spec *copy = NULL;
	if (n > 0) {
		copy = malloc(n * sizeof *copy);
		if (copy == NULL) {
			ls_log(LS_LOG_ERROR, COMPONENT, "out of memory, campaigns unchanged", "%s", "");
			return;
		}
		memcpy(copy, cfg->campaigns.specs, n * sizeof *copy);
	}
	pthread_mutex_lock(&s->mu);
	free(s->specs);
	s->specs = copy;
	s->n_specs = n;
	s->specs_changed = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

ls_campaign *ls_campaign_start(const ls_config *cfg, char *err, size_t errlen)
{
	ls_campaign *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->snap_mu, NULL);
	pthread_mutex_init(&s->counters_mu, NULL);
	pthread_mutex_init(&s->conns_mu, NULL);
	atomic_store(&s->redis_memory, -1);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->written, NULL);
	ls_buf_init(&s->enc);
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		seed = (uint64_t)ls_clock_wall_ms() ^ (uint64_t)(uintptr_t)s;
	ls_rng_seed(&s->rng, seed);
	s->prefix = strdup(cfg->redis.key_prefix);
	s->topic = strdup(cfg->kafka.topics.decisions);
	s->connect_timeout_ms = cfg->redis.connect_timeout_ms;
	s->command_timeout_ms = cfg->redis.command_timeout_ms;
	if (s->prefix == NULL || s->topic == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ls_redis_url_parse(cfg->redis.url, &s->target, err, errlen) != 0)
		goto fail;
	s->key_ok = pthread_key_create(&s->conn_key, conn_destroy) == 0;
	if (!s->key_ok) {
		snprintf(err, errlen, "pthread_key_create failed");
		goto fail;
	}
	s->codec = ls_codec_new(err, errlen);
	if (s->codec == NULL)
		goto fail;
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, false, err, errlen);
	if (conf == NULL)
		goto fail;
	char why[512];
	rd_kafka_conf_set_dr_msg_cb(conf, decision_delivered);
	rd_kafka_conf_set_opaque(conf, s);
	s->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
	if (s->producer == NULL) {
		snprintf(err, errlen, "decision log producer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	set_specs(s, cfg);
	if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
		snprintf(err, errlen, "cannot start the bandit thread");
		goto fail;
	}
	s->started = true;
	return s;
fail:
	ls_campaign_stop(s);
	return NULL;
}

void ls_campaign_reconfigure(ls_campaign *s, const ls_config *cfg)
{
	if (s != NULL)
		set_specs(s, cfg);
}

void ls_campaign_stop(ls_campaign *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	if (s->producer != NULL) {
		rd_kafka_flush(s->producer, 5000);
		rd_kafka_destroy(s->producer);
	}
	for (size_t i = 0; i < s->nq; i++)
		free(s->q[i].lead);
	free(s->q);
	snap_release(s->cur);
	if (s->rc != NULL)
		redisFree(s->rc);
	if (s->key_ok)
		pthread_key_delete(s->conn_key);
	/* the threads that used these are done with the service */
	for (size_t i = 0; i < s->n_conns; i++) {
		if (s->conns[i]->c != NULL)
			redisFree(s->conns[i]->c);
		free(s->conns[i]);
	}
	free(s->conns);
	pthread_mutex_destroy(&s->conns_mu);
	ls_codec_free(s->codec);
	ls_buf_free(&s->enc);
	ls_redis_target_free(&s->target);
	free(s->specs);
	free(s->prefix);
	free(s->topic);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->snap_mu);
	pthread_mutex_destroy(&s->counters_mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->written);
	free(s);
}

/*
 * From the published snapshot, not the specs under the service mutex:
 * every decision request asks, and the answer then matches the spec the
 * decision itself uses. A campaign without context keys answers 0 without
 * copying anything.
 */
size_t ls_campaign_context_keys(ls_campaign *s, const char *campaign,
				char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX],
				char tier_model[LS_MODEL_NAME_MAX])
{
	snap *sn = snap_take(s);
	const csnap *c = snap_find(sn, campaign);
	size_t n = c != NULL ? c->spec.n_context : 0;
	if (n > 0) {
		memcpy(keys, c->spec.context, sizeof c->spec.context);
		memcpy(tier_model, c->spec.tier_model, LS_MODEL_NAME_MAX);
	}
	snap_release(sn);
	return n;
}

/* ----------------------------------------------------------- decisions */

static _Thread_local ls_rng tl_rng;
static _Thread_local bool tl_seeded;

static ls_rng *thread_rng(void)
{
	if (!tl_seeded) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
			seed = (uint64_t)ls_clock_wall_ms() ^ (uint64_t)(uintptr_t)&tl_rng;
		ls_rng_seed(&tl_rng, seed);
		tl_seeded = true;
	}
	return &tl_rng;
}

/* A key the request lacks reads as value "" ("tier="). A value is cut on a
 * code point: a byte cut could split one, and the name would then be
 * invalid UTF-8 in Redis, in the JSON answer and in the decision log. */
void ls_campaign_bucket_name(const ls_campaign_spec *sp, const ls_campaign_request *req,
			     char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t k = 0; k < sp->n_context; k++) {
		const char *v = "";
		for (size_t j = 0; j < req->n_context; j++)
			if (strcmp(req->ctx_key[j], sp->context[k]) == 0)
				v = req->ctx_value[j];
		int w = snprintf(out + len, cap - len, "%s%s=", k > 0 ? "," : "", sp->context[k]);
		if (w < 0 || (size_t)w >= cap - len)
			return;
		len += (size_t)w;
		/* ',' '=' and '%' in a value are %-escaped, so two different
		 * contexts can never make the same bucket name */
		size_t vl = ls_utf8_cut(v, LS_CAMPAIGN_CTX_VALUE_MAX);
		for (size_t i = 0; i < vl; i++) {
			char ch = v[i];
			bool esc = ch == ',' || ch == '=' || ch == '%';
			if (len + (esc ? 3 : 1) >= cap)
				return;
			if (esc) {
				snprintf(out + len, 4, "%%%02X", (unsigned char)ch);
				len += 3;
			} else {
				out[len++] = ch;
				out[len] = '\0';
			}
		}
	}
}

int ls_campaign_decide(ls_campaign *s, const ls_campaign_request *req,
		       ls_campaign_decision *out)
{
	if (req->n_context > LS_CAMPAIGN_MAX_REQ_CONTEXT)
		return LS_CAMPAIGN_BAD_REQUEST;
	for (size_t k = 0; k < req->n_context; k++)
		if (!ls_utf8_valid(req->ctx_value[k], strlen(req->ctx_value[k])))
			return LS_CAMPAIGN_BAD_REQUEST;
	snap *sn = snap_take(s);
	if (sn == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	const csnap *c = snap_find(sn, req->campaign);
	if (c == NULL) {
		snap_release(sn);
		return LS_CAMPAIGN_UNKNOWN_CAMPAIGN;
	}
	const ls_campaign_spec *sp = &c->spec;
	size_t na = sp->n_arms;
	memset(out, 0, sizeof *out);
	ls_campaign_bucket_name(sp, req, out->bucket, sizeof out->bucket);
	size_t row = ls_campaign_posterior_row(&c->post, out->bucket, sp->max_buckets,
					       &out->bucket_capped);
	out->bucket_fallback = out->bucket[0] != '\0' && row == 0;
	const double *p = &c->probs[row * na];
	ls_rng *r = thread_rng();
	double u = ls_rng_uniform(r), acc = 0.0;
	size_t arm = na - 1;
	for (size_t i = 0; i < na; i++) {
		acc += p[i];
		if (u < acc) {
			arm = i;
			break;
		}
	}
	/* rounding can leave u above the last partial sum: take the last arm
	 * with a non-zero probability, never one the policy cannot choose */
	while (arm > 0 && p[arm] <= 0.0)
		arm--;
	memcpy(out->variant, sp->arms[arm], sizeof out->variant);
	out->propensity = p[arm];
	if (c->counter[arm] != NULL) {
		atomic_fetch_add(&c->counter[arm]->decisions, 1);
		if (out->bucket_capped)
			atomic_fetch_add(&c->counter[arm]->capped, 1);
	}
	out->ts = ls_clock_wall_ms();
	uint64_t hi = ls_rng_next(r), lo = ls_rng_next(r);
	snprintf(out->decision_id, sizeof out->decision_id, "%s.%016" PRIx64 "%016" PRIx64,
		 sp->id, hi, lo);

	dec_item d;
	memset(&d, 0, sizeof d);
	memcpy(d.id, out->decision_id, sizeof d.id);
	memcpy(d.campaign, sp->id, sizeof d.campaign);
	memcpy(d.arm, out->variant, sizeof d.arm);
	/* a bucket past the cap is not stored: the decision counts campaign-wide */
	if (!out->bucket_capped)
		memcpy(d.bucket, out->bucket, sizeof d.bucket);
	d.ts = out->ts;
	d.propensity = out->propensity;
	d.activate = req->activate;
	d.window_ms = sp->reward_window_ms;
	d.ttl_ms = req->activate ? sp->reward_window_ms + RECORD_SLACK_MS
				 : sp->activation_timeout_ms;
	d.n_ctx = req->n_context;
	for (size_t k = 0; k < req->n_context; k++) {
		snprintf(d.ctx_key[k], sizeof d.ctx_key[k], "%s", req->ctx_key[k]);
		int vl = (int)ls_utf8_cut(req->ctx_value[k], LS_CAMPAIGN_CTX_VALUE_MAX);
		snprintf(d.ctx_val[k], sizeof d.ctx_val[k], "%.*s", vl, req->ctx_value[k]);
	}
	snap_release(sn);
	d.lead = strdup(req->lead_id);
	if (d.lead == NULL)
		return LS_CAMPAIGN_INTERNAL;

	pthread_mutex_lock(&s->mu);
	if (s->nq >= MAX_QUEUE) {
		pthread_mutex_unlock(&s->mu);
		free(d.lead);
		atomic_fetch_add(&s->dropped, 1);
		return LS_CAMPAIGN_UNAVAILABLE;
	}
	if (s->nq == s->capq) {
		size_t cap = s->capq ? s->capq * 2 : 256;
		dec_item *nq = realloc(s->q, cap * sizeof *nq);
		if (nq == NULL) {
			pthread_mutex_unlock(&s->mu);
			free(d.lead);
			return LS_CAMPAIGN_INTERNAL;
		}
		s->q = nq;
		s->capq = cap;
	}
	s->q[s->nq++] = d;
	s->seq_queued++;
	if (s->writer_idle) {
		s->writer_idle = false; /* one wake is enough */
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&s->decisions, 1);
	return LS_CAMPAIGN_OK;
}

/* Wait until every decision queued so far is written (or tried). */
static void wait_written(ls_campaign *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t want = s->seq_queued;
	if (s->seq_done < want) {
		s->flush_wanted = true;
		pthread_cond_signal(&s->wake);
	}
	while (s->seq_done < want && !s->stop)
		pthread_cond_wait(&s->written, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static redisContext *thread_conn(ls_campaign *s)
{
	thread_conn_t *tc = pthread_getspecific(s->conn_key);
	if (tc == NULL) {
		tc = calloc(1, sizeof *tc);
		if (tc == NULL)
			return NULL;
		tc->s = s;
		pthread_mutex_lock(&s->conns_mu);
		if (s->n_conns == s->cap_conns) {
			size_t cap = s->cap_conns ? s->cap_conns * 2 : 8;
			thread_conn_t **n = realloc(s->conns, cap * sizeof *n);
			if (n == NULL) {
				pthread_mutex_unlock(&s->conns_mu);
				free(tc);
				return NULL;
			}
			s->conns = n;
			s->cap_conns = cap;
		}
		s->conns[s->n_conns++] = tc;
		pthread_mutex_unlock(&s->conns_mu);
		pthread_setspecific(s->conn_key, tc);
	}
	if (tc->c != NULL && tc->c->err == 0)
		return tc->c;
	if (tc->c != NULL) {
		redisFree(tc->c);
		tc->c = NULL;
	}
	char err[512], q[600];
	tc->c = ls_redis_connect(&s->target, s->connect_timeout_ms, s->command_timeout_ms, err,
				 sizeof err);
	if (tc->c == NULL)
		ls_log(LS_LOG_WARN, COMPONENT, "redis connect failed", "error=%s",
		       ls_log_quote(err, q, sizeof q));
	return tc->c;
}

/* Run a script for decision_id on this thread's connection. */
/* max_buckets of campaign in the current snapshot; 0 (store no new
   bucket) for a campaign no longer configured. */
static long long campaign_max_buckets(ls_campaign *s, const char *campaign)
{
	snap *sn = snap_take(s);
	const csnap *c = snap_find(sn, campaign);
	long long m = c != NULL ? (long long)c->spec.max_buckets : 0;
	snap_release(sn);
	return m;
}

static int run_script(ls_campaign *s, const char *decision_id, bool activation,
		      double reward, long long *reply)
{
	char campaign[LS_CAMPAIGN_ID_MAX];
	if (!parse_decision_id(decision_id, campaign))
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	wait_written(s);
	redisContext *c = thread_conn(s);
	if (c == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	char dk[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
	char pend[LS_CAMPAIGN_ID_MAX + 256], counts[LS_CAMPAIGN_ID_MAX + 256];
	char now[24], rew[24];
	if (dkey(dk, sizeof dk, s->prefix, campaign, decision_id) < 0 ||
	    ckey(pend, sizeof pend, s->prefix, campaign, "pending") < 0 ||
	    ckey(counts, sizeof counts, s->prefix, campaign, "counts") < 0)
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	snprintf(now, sizeof now, "%" PRId64, ls_clock_wall_ms());
	snprintf(rew, sizeof rew, "%lld", (long long)llround(reward * MICRO));
	redisReply *r;
	if (activation)
		r = redisCommand(c, "EVAL %s 2 %s %s %s %s", act_script, dk, pend, now,
				 decision_id);
	else
		r = redisCommand(c, "EVAL %s 3 %s %s %s %s %s %s r %lld", rew_script, dk, counts,
				 pend, now, rew, decision_id, campaign_max_buckets(s, campaign));
	if (r == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	int rc = LS_CAMPAIGN_OK;
	if (r->type != REDIS_REPLY_INTEGER) {
		char q[300];
		ls_log(LS_LOG_WARN, COMPONENT, "script failed", "reply=%s",
		       ls_log_quote(r->type == REDIS_REPLY_ERROR ? r->str : "not an integer", q,
				    sizeof q));
		rc = LS_CAMPAIGN_UNAVAILABLE;
	} else {
		*reply = r->integer;
	}
	freeReplyObject(r);
	return rc;
}

int ls_campaign_activate(ls_campaign *s, const char *decision_id, bool *already)
{
	long long x = 0;
	int rc = run_script(s, decision_id, true, 0.0, &x);
	if (rc != LS_CAMPAIGN_OK)
		return rc;
	if (x < 0)
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	*already = x == 0;
	return LS_CAMPAIGN_OK;
}

int ls_campaign_reward(ls_campaign *s, const char *decision_id, double reward,
		       bool *counted)
{
	if (!(reward >= 0.0 && reward <= 1.0))
		return LS_CAMPAIGN_BAD_REQUEST;
	long long x = 0;
	int rc = run_script(s, decision_id, false, reward, &x);
	if (rc != LS_CAMPAIGN_OK)
		return rc;
	switch (x) {
	case 1:
	case 2: *counted = true; return LS_CAMPAIGN_OK;
	case 0: *counted = false; return LS_CAMPAIGN_OK;
	case -2: return LS_CAMPAIGN_NOT_ACTIVATED;
	case -3: return LS_CAMPAIGN_TOO_LATE;
	default: return LS_CAMPAIGN_UNKNOWN_DECISION;
	}
}

/* ---------------------------------------------------------- read API */

int ls_campaign_stats_get(ls_campaign *s, const char *campaign, ls_campaign_stats *out)
{
	memset(out, 0, sizeof *out);
	snap *sn = snap_take(s);
	if (sn == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	const csnap *c = snap_find(sn, campaign);
	if (c == NULL) {
		snap_release(sn);
		return LS_CAMPAIGN_UNKNOWN_CAMPAIGN;
	}
	size_t na = c->spec.n_arms;
	out->spec = c->spec;
	out->snapshot_ms = atomic_load(&sn->built_ms);
	out->decisions = atomic_load(&s->decisions);
	out->n_buckets = c->rows;
	out->buckets = calloc(c->rows, sizeof *out->buckets);
	if (out->buckets == NULL) {
		snap_release(sn);
		return LS_CAMPAIGN_INTERNAL;
	}
	ls_rng *r = thread_rng();
	int rc = LS_CAMPAIGN_OK;
	for (size_t row = 0; row < c->rows && rc == LS_CAMPAIGN_OK; row++) {
		/* buckets in name order, campaign-wide first */
		size_t bi = row == 0 ? LS_BANDIT_CAMPAIGN : row - 1;
		ls_campaign_bucket_stats *b = &out->buckets[row];
		if (row > 0)
			snprintf(b->bucket, sizeof b->bucket, "%s", c->post.names[bi]);
		b->fallback = row > 0 && ls_bandit_uses_campaign(c->post.b, bi);
		b->trials = row == 0 ? 0 : ls_bandit_bucket_trials(c->post.b, bi);
		b->n_arms = na;
		ls_bandit_arm_stats st[LS_CAMPAIGN_MAX_ARMS];
		if (ls_bandit_stats(c->post.b, bi, r, STATS_DRAWS, st, LS_CAMPAIGN_MAX_ARMS) != LS_BANDIT_OK) {
			rc = LS_CAMPAIGN_INTERNAL;
			break;
		}
		size_t prow = row == 0 ? 0 : 1 + bi;
		if (b->fallback)
			prow = 0;
		for (size_t a = 0; a < na; a++) {
			memcpy(b->arms[a].variant, c->spec.arms[a], LS_CAMPAIGN_ID_MAX);
			b->arms[a].st = st[a];
			b->arms[a].probability = c->probs[prow * na + a];
			if (row == 0)
				b->trials += c->post.trials[a];
		}
		if (row > 0 && !b->fallback) {
			/* report the bucket's own counts, not the fallback's */
			b->trials = ls_bandit_bucket_trials(c->post.b, bi);
		}
	}
	snap_release(sn);
	if (rc != LS_CAMPAIGN_OK) {
		free(out->buckets);
		out->buckets = NULL;
	}
	return rc;
}

/* ------------------------------------------------------ pipeline side */

int ls_campaign_event_op(const ls_config *cfg, const char *key_prefix,
			 const ls_email_event *ev, int64_t ts, ls_campaign_op *op, char *buf,
			 size_t buflen)
{
	if (ev->decision_id == NULL || ev->decision_id[0] == '\0')
		return 0;
	char campaign[LS_CAMPAIGN_ID_MAX];
	if (!parse_decision_id(ev->decision_id, campaign))
		return 0;
	const ls_campaign_spec *sp = NULL;
	for (size_t i = 0; i < cfg->campaigns.n && sp == NULL; i++)
		if (strcmp(cfg->campaigns.specs[i].id, campaign) == 0)
			sp = &cfg->campaigns.specs[i];
	if (sp == NULL)
		return 0;
	bool activation = ev->type == LS_EMAIL_SENT;
	double w = activation ? 0.0 : sp->reward_weight[ev->type];
	if (!activation && w <= 0.0)
		return 0;
	/* everything the argv points to is laid out in buf */
	size_t used = 0;
	const char *parts[8];
	size_t lens[8];
	char tmp[3][LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
	if (dkey(tmp[0], sizeof tmp[0], key_prefix, campaign, ev->decision_id) < 0 ||
	    ckey(tmp[1], sizeof tmp[1], key_prefix, campaign, "counts") < 0 ||
	    ckey(tmp[2], sizeof tmp[2], key_prefix, campaign, "pending") < 0)
		return -1;
	char nums[3][24];
	snprintf(nums[0], sizeof nums[0], "%" PRId64, ts);
	snprintf(nums[1], sizeof nums[1], "%lld", (long long)llround(w * MICRO));
	snprintf(nums[2], sizeof nums[2], "%" PRId64, sp->max_buckets);
	size_t np = 0;
	parts[np++] = tmp[0];
	if (!activation)
		parts[np++] = tmp[1];
	parts[np++] = tmp[2];
	parts[np++] = nums[0];
	if (!activation)
		parts[np++] = nums[1];
	parts[np++] = ev->decision_id;
	if (!activation) {
		parts[np++] = "r";
		parts[np++] = nums[2];
	}
	const char *stored[8];
	for (size_t i = 0; i < np; i++) {
		lens[i] = strlen(parts[i]);
		if (used + lens[i] + 1 > buflen)
			return -1;
		memcpy(buf + used, parts[i], lens[i] + 1);
		stored[i] = buf + used;
		used += lens[i] + 1;
	}
	op->argc = 0;
	op->argv[op->argc] = "EVAL";
	op->argvlen[op->argc++] = 4;
	op->argv[op->argc] = activation ? act_script : rew_script;
	op->argvlen[op->argc++] = activation ? sizeof act_script - 1 : sizeof rew_script - 1;
	op->argv[op->argc] = activation ? "2" : "3";
	op->argvlen[op->argc++] = 1;
	for (size_t i = 0; i < np; i++) {
		op->argv[op->argc] = stored[i];
		op->argvlen[op->argc++] = lens[i];
	}
	return 1;
}

/* ------------------------------------------------------------ metrics */

void ls_campaign_collect(ls_campaign *s, ls_campaign_collect_fn fn, void *ud)
{
	size_t n = atomic_load(&s->n_counters);
	for (size_t i = 0; i < n; i++)
		fn(ud, s->counters[i].campaign, s->counters[i].arm,
		   (double)atomic_load(&s->counters[i].decisions), NAN);
	snap *sn = snap_take(s);
	for (size_t i = 0; sn != NULL && i < sn->n; i++) {
		const csnap *c = &sn->c[i];
		for (size_t a = 0; a < c->spec.n_arms; a++)
			fn(ud, c->spec.id, c->spec.arms[a], NAN, (double)c->post.rmicro[a] / MICRO);
	}
	snap_release(sn);
}

void ls_campaign_collect_capped(ls_campaign *s, ls_campaign_collect_fn fn, void *ud)
{
	size_t n = atomic_load(&s->n_counters);
	for (size_t i = 0; i < n; i++)
		fn(ud, s->counters[i].campaign, s->counters[i].arm,
		   (double)atomic_load(&s->counters[i].capped), NAN);
}

long long ls_campaign_redis_memory(ls_campaign *s)
{
	return atomic_load(&s->redis_memory);
}
