/*
 * ls_campaign_writer.c - the campaign service's thread: snapshot refresh,
 * batched decision writes (Redis and the decisions topic), the expiry
 * sweep and Redis's memory figure. See ls_campaign.h for the contract.
 *
 * Why one thread does all the Redis work of the decision path: decisions
 * arrive tens of thousands of times a second; writing each with its own
 * round trip would make Redis latency the decision latency and cost a
 * Redis command per decision per field. Queued decisions are written in
 * one MULTI/EXEC per batch instead, and the same thread refreshes the
 * posterior snapshot and sweeps expired reward windows, so the HTTP
 * threads only ever take two short mutexes (the queue and the snapshot
 * pointer), never across I/O. Its own file because it is the only part
 * of the service that owns a connection and a thread.
 */
#include "ls_campaign_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ls_campaign_scripts.h"
#include "ls_clock.h"
#include "ls_log.h"

#define SWEEP_MS 500                     /* expiry sweep and INFO twice a second */
#define DRAW_BUDGET 300000               /* Beta draws per campaign per refresh (~15 ms) */
#define FULL_READ_MS INT64_C(60000)      /* counters read whole at least this often */
#define TRIM_BATCH 1000                  /* fields per trim script */
#define EXPIRE_BATCH 500                 /* expiries per campaign per sweep */
#define BATCH_NS INT64_C(1000000)         /* a write batch at most every ms */
#define UNLOGGED_LOG_MS 10000             /* one "decision not logged" line per reason */

static void csnap_free(csnap *c)
{
	ls_campaign_posterior_free(&c->post);
	free(c->probs);
	free(c->vec_a);
	free(c->vec_b);
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

const csnap *ls_campaign_snap_find(const snap *s, const char *campaign)
{
	for (size_t i = 0; s != NULL && i < s->n; i++)
		if (strcmp(s->c[i].spec.id, campaign) == 0)
			return &s->c[i];
	return NULL;
}
/* Bucket index of name, or SIZE_MAX when the snapshot has no such bucket. */
static size_t csnap_bucket(const csnap *c, const char *name)
{
	return ls_campaign_posterior_bucket(&c->post, name);
}

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

void ls_campaign_snap_release(snap *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		snap_free(s);
}

snap *ls_campaign_snap_take(ls_campaign *s)
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
	ls_campaign_snap_release(old);
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
	/* Whichever command found Redis gone, its used_memory is unknown now:
	 * leadscore_redis_memory_bytes disappears until Redis answers again
	 * (what alerts on an unreachable Redis look for), instead of showing
	 * the last value read. */
	atomic_store(&s->redis_memory, -1);
}



/*
 * Build one campaign's snapshot from its counters hash (HGETALL reply),
 * reusing the probability vectors of prev (the same campaign in the last
 * snapshot) for rows whose posterior did not change.
 *
 * Why a budget. With the hierarchical prior a bucket's posterior moves
 * with the rest of the campaign, so with refreshes every few ms every
 * bucket could want a new estimate each time (propensity_draws x arms
 * Beta draws each, ~1.5 ms for 10,000 x 3). Rows are estimated in order
 * (the campaign-wide row always) until DRAW_BUDGET draws are spent; a
 * row past it keeps its previous vector, which is still exactly what its
 * decisions draw with (the logged propensities stay exact), only a few
 * ms staler, and the campaign is marked stale so the next check
 * refreshes it again. A row whose posterior equals the campaign-wide one
 * (a new bucket while the rest fits in prior_trials, or a thin one)
 * shares its vector at no cost.
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
	c->vec_a = calloc(c->rows * na, sizeof *c->vec_a);
	c->vec_b = calloc(c->rows * na, sizeof *c->vec_b);
	if (c->probs == NULL || c->vec_a == NULL || c->vec_b == NULL)
		return -1;
	/* probability vectors: reuse rows of the same arms and policy */
	bool same_arms = prev != NULL && prev->spec.n_arms == na &&
			 memcmp(prev->spec.arms, sp->arms, sizeof sp->arms) == 0 &&
			 prev->spec.min_share == sp->min_share;
	size_t ab = na * sizeof(double);
	int64_t budget = DRAW_BUDGET;
	for (size_t row = 0; row < c->rows; row++) {
		double *out = &c->probs[row * na];
		double *va = &c->vec_a[row * na], *vb = &c->vec_b[row * na];
		size_t bucket = row == 0 ? LS_BANDIT_CAMPAIGN : row - 1;
		if (ls_bandit_posterior(c->post.b, bucket, va, vb, na) != LS_BANDIT_OK)
			return -1;
		if (row > 0 && memcmp(va, c->vec_a, ab) == 0 && memcmp(vb, c->vec_b, ab) == 0) {
			memcpy(out, c->probs, ab);
			continue;
		}
		size_t prow = SIZE_MAX;
		if (same_arms)
			prow = row == 0 ? 0 : csnap_bucket(prev, c->post.names[row - 1]);
		if (prow != SIZE_MAX && row > 0)
			prow += 1;
		bool have_prev = prow != SIZE_MAX && prow < prev->rows;
		if (have_prev && memcmp(&prev->vec_a[prow * na], va, ab) == 0 &&
		    memcmp(&prev->vec_b[prow * na], vb, ab) == 0) {
			memcpy(out, &prev->probs[prow * na], ab);
			continue;
		}
		if (row > 0 && have_prev && budget <= 0) {
			memcpy(out, &prev->probs[prow * na], ab);
			memcpy(va, &prev->vec_a[prow * na], ab);
			memcpy(vb, &prev->vec_b[prow * na], ab);
			c->stale = true;
			continue;
		}
		if (ls_bandit_probabilities(c->post.b, bucket, &s->rng, out, na) != LS_BANDIT_OK)
			return -1;
		budget -= sp->propensity_draws * (int64_t)na;
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
	char key[LS_CAMPAIGN_ID_MAX + 256], max_buckets_arg[24];
	if (marked == NULL || argv == NULL || argvlen == NULL ||
	    ls_campaign_key(key, sizeof key, s->prefix, sp->id, "counts") < 0)
		goto out;
	for (size_t i = 0; i < pairs; i++) {
		const redisReply *f = h->element[2 * i];
		if (f->type == REDIS_REPLY_STRING && f->len > 2 && f->str[0] == 'b' && f->str[1] == ':')
			marked[nm++] = f->str + 2;
	}
	if (nm > 1)
		qsort(marked, nm, sizeof *marked, cmp_cstr);
	snprintf(max_buckets_arg, sizeof max_buckets_arg, "%" PRId64, sp->max_buckets);
	argv[0] = "EVAL";
	argv[1] = ls_campaign_trim_script;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = max_buckets_arg;
	for (size_t i = 0; i <= pairs; i++) {
		if (i < pairs) {
			const redisReply *f = h->element[2 * i];
			char kind;
			const char *a, *b;
			size_t al, bl;
			if (f->type != REDIS_REPLY_STRING ||
			    !ls_campaign_counter_field(f->str, f->len, &kind, &a, &al, &b, &bl) || bl == 0 ||
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
	dst->vec_a = malloc(cells * sizeof *dst->vec_a);
	dst->vec_b = malloc(cells * sizeof *dst->vec_b);
	dst->stale = src->stale;
	if (dst->post.b == NULL || dst->post.names == NULL || dst->post.trials == NULL ||
	    dst->post.rmicro == NULL || dst->probs == NULL || dst->vec_a == NULL ||
	    dst->vec_b == NULL)
		return -1;
	dst->post.n_buckets = nb; /* names[] is zeroed: free() copes with a partial copy */
	for (size_t i = 0; i < nb; i++)
		if ((dst->post.names[i] = strdup(src->post.names[i])) == NULL)
			return -1;
	memcpy(dst->post.trials, src->post.trials, cells * sizeof *dst->post.trials);
	memcpy(dst->post.rmicro, src->post.rmicro, cells * sizeof *dst->post.rmicro);
	memcpy(dst->probs, src->probs, cells * sizeof *dst->probs);
	memcpy(dst->vec_a, src->vec_a, cells * sizeof *dst->vec_a);
	memcpy(dst->vec_b, src->vec_b, cells * sizeof *dst->vec_b);
	return 0;
}

/*
 * Whether campaign sp must be read again: prev (its entry in the current
 * snapshot) is missing or has another spec, its counters' version moved
 * (ver: "v" now, -1 unreadable), some of its vectors are stale (see
 * csnap_build), or it was read FULL_READ_MS ago (a hash replaced behind
 * the service's back, e.g. restored from a backup, may carry a version
 * it has seen).
 */
static bool needs_read(const csnap *prev, const ls_campaign_spec *sp, long long ver,
		       int64_t now_ms)
{
	return prev == NULL || prev->stale || memcmp(&prev->spec, sp, sizeof *sp) != 0 || ver < 0 ||
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
	/* what resolved before this read is in it */
	s->refresh_wanted = false;
	memset(s->resolved, 0, sizeof s->resolved);
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
		if (ls_campaign_key(key, sizeof key, s->prefix, specs[i].id, "counts") < 0 ||
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
	prev = ls_campaign_snap_take(s);
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
		if (need[i] && (ls_campaign_key(key, sizeof key, s->prefix, specs[i].id, "counts") < 0 ||
				redisAppendCommand(s->rc, "HGETALL %s", key) != REDIS_OK)) {
			drop_connection(s, "refresh");
			goto out;
		}
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		const csnap *pc = ls_campaign_snap_find(prev, specs[i].id);
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
	ls_campaign_snap_release(prev);
	snap_free(sn);
	free(specs);
	free(ver);
	free(need);
	free(trim);
	return rc;
}

/* Apply the default reward to decisions whose window has passed. */
static size_t expire_once(ls_campaign *s, uint64_t *resolved);

/* Up to 20 batches per pass: ~10,000 expiries a campaign a second.
   Returns how many decisions it resolved. */
static uint64_t expire(ls_campaign *s)
{
	uint64_t resolved = 0;
	for (int i = 0; i < 20 && expire_once(s, &resolved) >= EXPIRE_BATCH; i++)
		;
	return resolved;
}

/* One batch per campaign; returns the largest batch seen and adds the
   decisions resolved to *resolved. */
static size_t expire_once(ls_campaign *s, uint64_t *resolved)
{
	size_t most = 0;
	const snap *sn = s->cur; /* only this thread replaces it */
	if (sn == NULL || !connected(s))
		return 0;
	int64_t now = ls_clock_wall_ms();
	for (size_t i = 0; i < sn->n; i++) {
		const ls_campaign_spec *sp = &sn->c[i].spec;
		char pending_key[LS_CAMPAIGN_ID_MAX + 256], counts_key[LS_CAMPAIGN_ID_MAX + 256];
		if (ls_campaign_key(pending_key, sizeof pending_key, s->prefix, sp->id, "pending") < 0 ||
		    ls_campaign_key(counts_key, sizeof counts_key, s->prefix, sp->id, "counts") < 0)
			continue;
		redisReply *r = redisCommand(s->rc, "ZRANGEBYSCORE %s -inf %" PRId64 " LIMIT 0 %d",
					     pending_key, now, EXPIRE_BATCH);
		if (r == NULL) {
			drop_connection(s, "expiry");
			return 0;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
			freeReplyObject(r);
			continue;
		}
		char now_arg[24], rew[24], max_buckets_arg[24];
		snprintf(now_arg, sizeof now_arg, "%" PRId64, now);
		snprintf(rew, sizeof rew, "%lld", (long long)llround(sp->default_reward * MICRO));
		snprintf(max_buckets_arg, sizeof max_buckets_arg, "%" PRId64, sp->max_buckets);
		size_t sent = 0;
		for (size_t k = 0; k < r->elements; k++) {
			const redisReply *m = r->element[k];
			char record_key[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
			if (m->type != REDIS_REPLY_STRING || m->len >= LS_DECISION_ID_MAX ||
			    ls_campaign_decision_key(record_key, sizeof record_key, s->prefix, sp->id,
						     m->str) < 0)
				continue;
			const char *argv[11] = { "EVAL", ls_campaign_rew_script, "3", record_key,
						 counts_key, pending_key, now_arg, rew, m->str, "x",
						 max_buckets_arg };
			size_t argvlen[11] = { 4, ls_campaign_rew_script_len, 1, strlen(record_key),
					       strlen(counts_key), strlen(pending_key), strlen(now_arg),
					       strlen(rew), m->len, 1, strlen(max_buckets_arg) };
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
			*resolved += x->type == REDIS_REPLY_INTEGER && x->integer == 1;
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
	char pending_key[LS_CAMPAIGN_ID_MAX + 256];
	if (ls_campaign_key(pending_key, sizeof pending_key, s->prefix, campaign, "pending") < 0)
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
	argv[1] = pending_key;
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
void ls_campaign_decision_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
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
		char record_key[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
		if (ls_campaign_decision_key(record_key, sizeof record_key, s->prefix, d->campaign,
					     d->id) < 0)
			continue;
		char ts[24], win[24], ttl[24];
		snprintf(ts, sizeof ts, "%" PRId64, d->ts);
		snprintf(win, sizeof win, "%" PRId64, d->window_ms);
		snprintf(ttl, sizeof ttl, "%" PRId64, d->ttl_ms);
		const char *argv[16] = { "HSET", record_key, "lead", d->lead, "arm", d->arm, "bkt", d->bucket,
					 "ts", ts, "win", win, "st", d->activate ? "1" : "0",
					 "act", ts };
		size_t argvlen[16];
		int argc = d->activate ? 16 : 14;
		for (int k = 0; k < argc; k++)
			argvlen[k] = strlen(argv[k]);
		redisAppendCommandArgv(s->rc, argc, argv, argvlen);
		const char *pex[3] = { "PEXPIRE", record_key, ttl };
		size_t pexlen[3] = { 7, strlen(record_key), strlen(ttl) };
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
		return;
	}
	const char *m = r->type == REDIS_REPLY_STRING
				? strstr(r->str, "used_memory:") : NULL;
	atomic_store(&s->redis_memory, m != NULL ? strtoll(m + 12, NULL, 10) : -1);
	freeReplyObject(r);
}

void ls_campaign_note_resolved(ls_campaign *s, const char *campaign)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_specs && i < LS_CAMPAIGN_MAX; i++) {
		if (strcmp(s->specs[i].id, campaign) != 0)
			continue;
		if (++s->resolved[i] >= (uint64_t)s->specs[i].refresh_trials && !s->refresh_wanted) {
			s->refresh_wanted = true;
			pthread_cond_signal(&s->wake);
		}
		break;
	}
	pthread_mutex_unlock(&s->mu);
}

/* The shortest refresh_interval of the campaigns, in ns (SWEEP_MS with
   none). Under mu. */
static int64_t check_every_ns(const ls_campaign *s)
{
	int64_t ms = SWEEP_MS;
	for (size_t i = 0; i < s->n_specs; i++)
		if (s->specs[i].refresh_ms > 0 && s->specs[i].refresh_ms < ms)
			ms = s->specs[i].refresh_ms;
	return ms * 1000000;
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
 *
 * The posterior follows resolutions (issue 15: a fixed 0.5 s refresh
 * left ~1,800 decisions a second on a stale posterior at replay speed):
 * the counters' versions are checked every refresh_interval (one round
 * trip for all campaigns; a campaign is read again only when its "v"
 * moved: another instance or a reward event in the batch loop), and at
 * once when this process resolved refresh_trials decisions of a campaign
 * (HTTP rewards, counted by ls_campaign_note_resolved, and the expiry
 * sweep). The sweep and Redis's memory figure stay on SWEEP_MS.
 */
void *ls_campaign_writer_main(void *arg)
{
	ls_campaign *s = arg;
	int64_t last_check_ns = 0, last_sweep_ns = 0, next_batch_ns = 0;
	dec_item *batch = NULL;
	size_t cap_batch = 0;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		for (;;) {
			int64_t now = ls_clock_mono_ns();
			int64_t check_at = last_check_ns + check_every_ns(s);
			int64_t sweep_at = last_sweep_ns + INT64_C(1000000) * SWEEP_MS;
			int64_t until = check_at < sweep_at ? check_at : sweep_at;
			if (s->stop || s->specs_changed || s->flush_wanted || s->refresh_wanted ||
			    now >= until || (s->nq > 0 && now >= next_batch_ns))
				break;
			if (s->nq > 0 && next_batch_ns < until)
				until = next_batch_ns;
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
		bool wanted = s->refresh_wanted;
		int64_t check_ns = check_every_ns(s);
		pthread_mutex_unlock(&s->mu);

		if (nq > 0)
			next_batch_ns = ls_clock_mono_ns() + BATCH_NS;
		write_batch(s, q, nq);
		for (size_t i = 0; i < nq; i++)
			free(q[i].lead);
		batch = q;
		cap_batch = cap_q;
		int64_t now = ls_clock_mono_ns();
		bool sweep = now - last_sweep_ns >= INT64_C(1000000) * SWEEP_MS || changed;
		uint64_t expired = 0;
		if (sweep) {
			last_sweep_ns = now;
			expired = expire(s);
			redis_info(s);
			/* delivery reports of a quiet spell too (failures are counted) */
			rd_kafka_poll(s->producer, 0);
		}
		if (changed || wanted || expired > 0 || now - last_check_ns >= check_ns ||
		    s->cur == NULL) {
			last_check_ns = ls_clock_mono_ns();
			(void)refresh(s);
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
