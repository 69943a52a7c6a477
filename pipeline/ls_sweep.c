/*
 * ls_sweep.c - the sweeps: label timeouts and idle rescoring, apart from
 * the loop.
 *
 * Why a seam: a batch applies what Kafka brings; the sweeps act on what
 * does not come - a lead that went silent reaches its label_timeout, and
 * its score follows its ageing windows, only as its partition's event
 * time moves on. They own the per-partition due and rescore bookkeeping
 * and the sorted-set commands the commit adds for it, and borrow the
 * loop's cache, Redis loads and dirty list (ls_pipeline_internal.h) so
 * what they change commits with the batch.
 */
#include "ls_sweep.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_keys.h"
#include "ls_pipeline_internal.h"
#include "ls_scorer.h"

/* Sweep set s of a partition: s < LS_MODEL_MAX is model s's due set. */
#define SWEEP_RESCORE LS_MODEL_MAX
#define SWEEP_SETS (LS_MODEL_MAX + 1)

/*
 * What the sweeps know of one partition number's due and rescore sets.
 * at[] is exact for an owned partition because only its owner writes
 * them: INT64_MIN = not known (read it), INT64_MAX = empty.
 */
typedef struct ls_sweep_part {
	int assigned;           /* topic-partitions of this number we own */
	int64_t at[SWEEP_SETS]; /* earliest score not yet read since the commit */
	size_t read[SWEEP_SETS]; /* members read since the last commit */
} sweep_part;

/* The partition's event-time watermark: what label timeouts are due by. */
int ls_sweep_note_wm(ls_sweep *sw, int32_t partition, int64_t ts)
{
	if (partition < 0)
		return 0;
	size_t need = (size_t)partition + 1;
	if (need > sw->n_wm) {
		if (ls_grow((void **)&sw->wm, &sw->cap_wm, need, sizeof *sw->wm) != 0)
			return -1;
		for (size_t i = sw->n_wm; i < need; i++)
			sw->wm[i] = -1;
		sw->n_wm = need;
	}
	if (ts > sw->wm[partition])
		sw->wm[partition] = ts;
	return 0;
}

/*
 * A sweep reads its set a page of SWEEP_LIMIT leads at a time, and reads
 * on while pages come back full, up to SWEEP_PAGES pages per set and
 * batch. One page per batch was too few whenever a batch spans much event
 * time (a catch-up, a slow host, the simulator in the tests): idle leads
 * fell due faster than they were read, and their scores aged well past
 * rescore_interval. The page bound keeps one batch's extra work (and its
 * burst of ScoreChange records) bounded during a long catch-up.
 */
#define SWEEP_LIMIT 256
#define SWEEP_PAGES 8

/*
 * Why the sweeps keep each set's earliest due time in memory: a partition
 * has one owner at a time, and only its owner writes its due and rescore
 * sets (at commit, in ls_sweep_commit_ops), so the owner knows when the next member
 * falls due without asking Redis. It learns it once per assignment (and
 * after a failed batch), lowers it for every ZADD it commits, and after
 * each sweep takes the lowest score left above the watermark. A sweep
 * runs only for a partition whose event-time watermark has reached it.
 *
 * Between two commits Redis does not change, so the members a sweep has
 * read (and left to be rewritten by the next commit) are skipped by
 * offset: a backlog larger than one sweep is read on page by page.
 */
static sweep_part *sweep_slot(ls_sweep *sw, int32_t part, bool grow)
{
	if (part < 0)
		return NULL;
	size_t need = (size_t)part + 1;
	if (need > sw->n_parts) {
		if (!grow)
			return NULL;
		if (ls_grow((void **)&sw->parts, &sw->cap_parts, need, sizeof *sw->parts) != 0)
			return NULL;
		for (size_t i = sw->n_parts; i < need; i++) {
			sweep_part *s = &sw->parts[i];
			s->assigned = 0;
			for (size_t k = 0; k < SWEEP_SETS; k++) {
				s->at[k] = INT64_MIN;
				s->read[k] = 0;
			}
		}
		sw->n_parts = need;
	}
	return &sw->parts[part];
}

static void sweep_forget(sweep_part *s)
{
	for (size_t k = 0; k < SWEEP_SETS; k++) {
		s->at[k] = INT64_MIN;
		s->read[k] = 0;
	}
}

/* A failed batch: Redis holds what the last commit wrote, read it again. */
void ls_sweep_forget_all(ls_sweep *sw)
{
	for (size_t i = 0; i < sw->n_parts; i++)
		sweep_forget(&sw->parts[i]);
}

/* The members read since the last commit have just been rewritten. */
void ls_sweep_committed(ls_sweep *sw)
{
	for (size_t i = 0; i < sw->n_parts; i++)
		for (size_t k = 0; k < SWEEP_SETS; k++)
			sw->parts[i].read[k] = 0;
}

/* This instance is writing a member of set of part due at due. */
static void sweep_lower(ls_sweep *sw, int32_t part, size_t set, int64_t due)
{
	sweep_part *s = sweep_slot(sw, part, false);
	if (s != NULL && due < s->at[set])
		s->at[set] = due;
}

/*
 * Idle rescoring stops once a lead's last score is this far past its
 * newest event: beyond the longest default window nothing ages any more.
 */
#define RESCORE_HORIZON_MS (31 * INT64_C(86400000))

static int rescore_key(const ls_pipeline *p, int32_t part, char *buf, size_t cap)
{
	return ls_keys_rescore(buf, cap, ls_store_key_prefix(p->store), part) < 0 ? -1 : 0;
}

/*
 * When e is next due for idle rescoring: an interval after its last score
 * or event, until the horizon. False: not at all (its entry goes). A lead
 * whose outcome every model has learned is not rescored either: its
 * score predicts nothing any more, and in a stream where most leads end
 * with an outcome those rescores would be most of the sweeps' work,
 * delaying the rescores of the leads still open.
 */
static bool rescore_next(const ls_pipeline *p, const ls_cache_entry *e,
			 int64_t *due)
{
	int64_t every = p->set.live.rescore_interval_ms;
	int64_t wm = ls_lead_watermark(e->lead);
	int64_t base = e->scored_at > wm ? e->scored_at : wm;
	if (every <= 0 || wm < 0 || base - wm >= RESCORE_HORIZON_MS ||
	    ls_scorer_settled(p->scorer, e->lead))
		return false;
	*due = base + every;
	return true;
}

/* Append s (with its NUL) to opbuf; its offset, or -1. */
static long op_str(ls_pipeline *p, const char *s, size_t len)
{
	size_t off = p->tx.opbuf.len;
	if (ls_buf_append(&p->tx.opbuf, s, len) != 0 ||
	    ls_buf_append(&p->tx.opbuf, "", 1) != 0)
		return -1;
	return (long)off;
}

/*
 * The commit's extra commands: the learning-log appends, then per dirty
 * lead whose label state changed a ZADD (label still open: its deadline)
 * or ZREM in each timed-out model's due set, then the ZREMs of due
 * entries whose lead had vanished. Strings go to opbuf first and the
 * pointers are set once it stops moving.
 */
typedef struct op_off {
	long key, arg, data;
} op_off;

int ls_sweep_commit_ops(ls_pipeline *p, const ls_store_append *appends,
		       size_t n_appends, size_t *n_ops, char *err, size_t errlen)
{
	size_t nm = ls_scorer_n_models(p->scorer);
	size_t max = n_appends + p->pend.n_dirty * (nm + 1) + p->sweep.n_stale;
	op_off *offs = calloc(max ? max : 1, sizeof *offs);
	if (offs == NULL ||
	    ls_grow((void **)&p->tx.ops, &p->tx.cap_ops, max ? max : 1, sizeof *p->tx.ops) != 0) {
		free(offs);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ls_buf_reset(&p->tx.opbuf);
	size_t n = 0;
	for (size_t i = 0; i < n_appends; i++)
		p->tx.ops[n++] = appends[i];
	size_t first = n;
	char key[600], num[24];
	for (size_t i = 0; i < p->pend.n_dirty; i++) {
		ls_cache_entry *e = p->pend.dirty[i];
		if (!e->due_dirty)
			continue;
		for (size_t j = 0; j < nm; j++) {
			if (ls_scorer_timeout_ms(p->scorer, j) <= 0 ||
			    ls_scorer_due_key(p->scorer, j, e->partition, key, sizeof key) != 0)
				continue;
			int64_t deadline;
			bool due = ls_scorer_due(p->scorer, e->lead, j, &deadline);
			if (due)
				sweep_lower(&p->sweep, e->partition, j, deadline);
			snprintf(num, sizeof num, "%" PRId64, due ? deadline : 0);
			offs[n] = (op_off){ op_str(p, key, strlen(key)),
					  due ? op_str(p, num, strlen(num)) : -2,
					  op_str(p, e->lead_id, strlen(e->lead_id)) };
			p->tx.ops[n++] = (ls_store_append){ .cmd = due ? "ZADD" : "ZREM" };
		}
	}
	for (size_t i = 0; i < p->pend.n_dirty && nm > 0; i++) {
		ls_cache_entry *e = p->pend.dirty[i];
		if (!e->rescore_dirty || rescore_key(p, e->partition, key, sizeof key) != 0)
			continue;
		int64_t next = 0;
		bool keep = rescore_next(p, e, &next);
		if (keep)
			sweep_lower(&p->sweep, e->partition, SWEEP_RESCORE, next);
		snprintf(num, sizeof num, "%" PRId64, next);
		offs[n] = (op_off){ op_str(p, key, strlen(key)),
				  keep ? op_str(p, num, strlen(num)) : -2,
				  op_str(p, e->lead_id, strlen(e->lead_id)) };
		p->tx.ops[n++] = (ls_store_append){ .cmd = keep ? "ZADD" : "ZREM" };
	}
	for (size_t i = 0; i < p->sweep.n_stale; i++) {
		size_t kl = strlen(p->sweep.stale[i]);
		const char *member = p->sweep.stale[i] + kl + 1;
		offs[n] = (op_off){ op_str(p, p->sweep.stale[i], kl), -2,
				  op_str(p, member, strlen(member)) };
		p->tx.ops[n++] = (ls_store_append){ .cmd = "ZREM" };
	}
	bool oom = false;
	for (size_t i = first; i < n; i++) {
		if (offs[i].key < 0 || offs[i].data < 0 || offs[i].arg == -1) {
			oom = true;
			break;
		}
		p->tx.ops[i].key = (const char *)p->tx.opbuf.data + offs[i].key;
		p->tx.ops[i].arg = offs[i].arg >= 0 ? (const char *)p->tx.opbuf.data + offs[i].arg : NULL;
		p->tx.ops[i].data = p->tx.opbuf.data + offs[i].data;
		p->tx.ops[i].len = strlen((const char *)p->tx.ops[i].data);
	}
	free(offs);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*n_ops = n;
	return 0;
}

static int add_stale(ls_sweep *sw, const char *key, const char *member)
{
	if (ls_grow((void **)&sw->stale, &sw->cap_stale, sw->n_stale + 1,
		    sizeof *sw->stale) != 0)
		return -1;
	size_t kl = strlen(key), ml = strlen(member);
	char *s = malloc(kl + ml + 2);
	if (s == NULL)
		return -1;
	memcpy(s, key, kl + 1);
	memcpy(s + kl + 1, member, ml + 1);
	sw->stale[sw->n_stale++] = s;
	return 0;
}

/*
 * Load the members of sorted set key (set of partition part) with score
 * <= the partition's event-time watermark that this sweep has not read
 * yet, at most SWEEP_LIMIT, into ents[0..*n); leads that vanished
 * (expired by redis.lead_ttl) are set aside to be removed at the next
 * commit. Learns the set's next due time.
 */
static int sweep_load(ls_pipeline *p, const char *key, int32_t part,
		      size_t set, ls_cache_entry **ents, size_t *n, char *err,
		      size_t errlen)
{
	sweep_part *sp = &p->sweep.parts[part];
	const char *ids[SWEEP_LIMIT];
	size_t got;
	int64_t next;
	char serr[512];
	*n = 0;
	int64_t t0 = ls_clock_mono_ns();
	int drc = ls_store_due(p->store, key, p->sweep.wm[part], sp->read[set],
			       SWEEP_LIMIT, ids, &got, &next, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, ls_pipeline_since_s(t0));
	if (drc != 0) {
		snprintf(err, errlen, "redis: %s", serr);
		return -1;
	}
	sp->read[set] += got;
	/* a full page: more may be due, read on at the next step */
	sp->at[set] = got == SWEEP_LIMIT ? INT64_MIN : next;
	p->batch.n_misses = 0;
	for (size_t i = 0; i < got; i++) {
		bool created;
		ents[i] = ls_cache_put(&p->cache, ids[i], &created);
		if (ents[i] == NULL ||
		    (created && ls_grow((void **)&p->batch.misses, &p->batch.cap_misses,
					p->batch.n_misses + 1, sizeof *p->batch.misses) != 0)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		ents[i]->partition = part;
		if (created)
			p->batch.misses[p->batch.n_misses++] = ents[i];
	}
	/* ids point into a store reply that the load releases */
	int rc = ls_pipeline_load_misses(p, err, errlen);
	p->batch.n_misses = 0;
	if (rc != 0)
		return -1;
	for (size_t i = 0; i < got; i++) {
		if (ls_lead_watermark(ents[i]->lead) < 0) {
			if (add_stale(&p->sweep, key, ents[i]->lead_id) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			continue;
		}
		ents[(*n)++] = ents[i];
	}
	return 0;
}

/* Label-timeout sweep of one model's due set of one partition. */
static int sweep_timeouts(ls_pipeline *p, size_t model, int32_t part,
			  char *err, size_t errlen)
{
	char key[600];
	ls_cache_entry *ents[SWEEP_LIMIT];
	size_t n;
	if (ls_scorer_due_key(p->scorer, model, part, key, sizeof key) != 0) {
		snprintf(err, errlen, "due key too long");
		return -1;
	}
	if (sweep_load(p, key, part, model, ents, &n, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		bool changed = false;
		if (ls_scorer_expire(p->scorer, ents[i]->lead, p->sweep.wm[part],
				     &changed, err, errlen) != 0)
			return -1;
		/* rewritten even when nothing was due any more, so the due set
		 * stops naming it */
		ents[i]->due_dirty = true;
		if (ls_pipeline_mark_dirty(p, ents[i]) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* Idle rescoring of one partition: scores follow ageing windows. */
static int sweep_rescore(ls_pipeline *p, int32_t part, char *err, size_t errlen)
{
	char key[600];
	ls_cache_entry *ents[SWEEP_LIMIT];
	size_t n;
	if (rescore_key(p, part, key, sizeof key) != 0) {
		snprintf(err, errlen, "rescore key too long");
		return -1;
	}
	if (sweep_load(p, key, part, SWEEP_RESCORE, ents, &n, err, errlen) != 0)
		return -1;
	int64_t wm = p->sweep.wm[part];
	for (size_t i = 0; i < n; i++) {
		ls_cache_entry *e = ents[i];
		int64_t next;
		/* scored since the last commit (its own event): its entry in
		 * Redis is stale, the commit writes the one that counts */
		if (e->rescore_dirty && (!rescore_next(p, e, &next) || next > wm))
			continue;
		if (ls_scorer_settled(p->scorer, e->lead)) {
			/* decided since it was scheduled: the commit drops it */
			e->rescore_dirty = true;
			if (ls_pipeline_mark_dirty(p, e) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			continue;
		}
		bool changed = false;
		size_t produced = 0;
		if (ls_scorer_score(p->scorer, e->lead_id, e->lead, wm, NULL, &changed,
				    &produced, err, errlen) != 0)
			return -1;
		p->pend.produced += produced;
		p->st.rescored++;
		if (wm > e->scored_at)
			e->scored_at = wm;
		e->rescore_dirty = true;
		if (ls_pipeline_mark_dirty(p, e) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

/*
 * Leads that went silent reach their label_timeout, and have their score
 * follow their ageing windows, only here: after every batch, each owned
 * partition whose event-time watermark has reached the earliest due time
 * of one of its sets has that set read up to the watermark. Nothing due:
 * no Redis command. What this learns and publishes commits like a batch.
 */
int ls_sweep_due(ls_pipeline *p)
{
	size_t nm = ls_scorer_n_models(p->scorer);
	bool rescore = p->set.live.rescore_interval_ms > 0 && nm > 0;
	bool any = false;
	for (size_t i = 0; i < p->sweep.n_parts && i < p->sweep.n_wm && !any; i++) {
		const sweep_part *s = &p->sweep.parts[i];
		int64_t wm = p->sweep.wm[i];
		if (s->assigned <= 0 || wm < 0)
			continue;
		for (size_t j = 0; j < nm; j++)
			any |= ls_scorer_timeout_ms(p->scorer, j) > 0 && s->at[j] <= wm;
		any |= rescore && s->at[SWEEP_RESCORE] <= wm;
	}
	if (!any)
		return 0;
	/* the hooks' bookkeeping says ours; the consumer has the last word */
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (rd_kafka_assignment(p->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    parts == NULL)
		return 0;
	char err[600];
	int rc = 0;
	for (int i = 0; i < parts->cnt && rc == 0; i++) {
		int32_t part = parts->elems[i].partition;
		bool seen = false;
		for (int k = 0; k < i; k++)
			seen |= parts->elems[k].partition == part;
		if (seen || part < 0 || (size_t)part >= p->sweep.n_wm ||
		    (size_t)part >= p->sweep.n_parts || p->sweep.wm[part] < 0 ||
		    p->sweep.parts[part].assigned <= 0)
			continue;
		int64_t wm = p->sweep.wm[part];
		/* a full page leaves at[] at INT64_MIN: read on */
		for (size_t j = 0; j < nm && rc == 0; j++)
			for (int pg = 0; pg < SWEEP_PAGES && rc == 0 &&
					 ls_scorer_timeout_ms(p->scorer, j) > 0 &&
					 p->sweep.parts[part].at[j] <= wm;
			     pg++)
				rc = sweep_timeouts(p, j, part, err, sizeof err);
		for (int pg = 0; pg < SWEEP_PAGES && rc == 0 && rescore &&
				 p->sweep.parts[part].at[SWEEP_RESCORE] <= wm;
		     pg++)
			rc = sweep_rescore(p, part, err, sizeof err);
	}
	rd_kafka_topic_partition_list_destroy(parts);
	if (rc != 0)
		ls_pipeline_fail_batch(p, err);
	return rc;
}

/* Ownership of partition numbers, from the rebalance hooks. */
int ls_sweep_assigned(ls_sweep *sw,
		      const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		if (parts->elems[i].partition < 0)
			continue;
		sweep_part *s = sweep_slot(sw, parts->elems[i].partition, true);
		if (s == NULL)
			return -1;
		s->assigned++;
		sweep_forget(s); /* another instance may have written it */
	}
	return 0;
}

void ls_sweep_revoked(ls_sweep *sw,
		      const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		sweep_part *s = sweep_slot(sw, parts->elems[i].partition, false);
		if (s == NULL)
			continue;
		if (s->assigned > 0)
			s->assigned--;
		sweep_forget(s);
	}
}

void ls_sweep_clear_stale(ls_sweep *sw)
{
	for (size_t i = 0; i < sw->n_stale; i++)
		free(sw->stale[i]);
	sw->n_stale = 0;
}

void ls_sweep_free(ls_sweep *sw)
{
	ls_sweep_clear_stale(sw);
	free(sw->stale);
	free(sw->parts);
	free(sw->wm);
	memset(sw, 0, sizeof *sw);
}
