/*
 * ls_pipeline.c - the batch loop.
 *
 * Why a batch is all-or-nothing: the only durable record of progress is
 * the MULTI/EXEC that writes the leads and the offsets together. Anything
 * that goes wrong before it (Redis, a dead letter not delivered, memory)
 * throws the batch away: the cache is cleared (it may hold uncommitted
 * changes) and the partitions are sought back to the stored offsets, so
 * the same messages are processed again onto the state Redis holds. No
 * partial commit exists, so there is nothing to reconcile.
 *
 * Why leads are cached: after a commit every cached lead equals its Redis
 * copy, so the next batch needs Redis only for leads it has not seen. The
 * cache is dropped on revocation (another instance may own the lead next)
 * and when it outgrows pipeline.cache_leads.
 *
 * What is not the loop lives beside it: which records may be applied now
 * (ls_align.c), what falls due without an event (ls_sweep.c), and how a
 * dead letter is made (ls_dlq.c). The state they share with the loop is
 * in ls_pipeline_internal.h.
 */
#include "ls_pipeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_clock.h"
#include "ls_log.h"
#include "ls_pipeline_internal.h"
#include "ls_scorer.h"

static const char *const own_reasons[] = { "future_timestamp", "key_mismatch", "id_too_long" };
_Static_assert(sizeof own_reasons / sizeof own_reasons[0] ==
	       LS_DLQ_REASON__COUNT - LS_CODEC_REASON__COUNT, "a name per reason");


_Static_assert(LS_EMAIL__COUNT <= LS_PIPELINE_MAX_TYPES && LS_WEB__COUNT <= LS_PIPELINE_MAX_TYPES &&
	       LS_CALL_OUTCOME__COUNT <= LS_PIPELINE_MAX_TYPES &&
	       LS_OUTCOME__COUNT <= LS_PIPELINE_MAX_TYPES, "event types fit the stats");

static int event_type_index(const ls_event *ev)
{
	switch (ev->source) {
	case LS_SOURCE_EMAIL: return (int)ev->u.email.type;
	case LS_SOURCE_WEB: return (int)ev->u.web.type;
	case LS_SOURCE_CALL: return (int)ev->u.call.outcome;
	case LS_SOURCE_OUTCOME: return (int)ev->u.outcome.outcome;
	default: return 0;
	}
}

const char *ls_pipeline_event_type_name(int src, int i)
{
	if (i < 0)
		return NULL;
	switch (src) {
	case LS_SOURCE_EMAIL: return i < LS_EMAIL__COUNT ? ls_email_type_name((ls_email_type)i) : NULL;
	case LS_SOURCE_WEB: return i < LS_WEB__COUNT ? ls_web_type_name((ls_web_type)i) : NULL;
	case LS_SOURCE_CALL:
		return i < LS_CALL_OUTCOME__COUNT ? ls_call_outcome_name((ls_call_outcome)i) : NULL;
	case LS_SOURCE_OUTCOME:
		return i < LS_OUTCOME__COUNT ? ls_outcome_type_name((ls_outcome_type)i) : NULL;
	default: return i == 0 ? "PROFILE" : NULL;
	}
}

const char *ls_pipeline_dlq_reason_name(int reason)
{
	if (reason >= 0 && reason < LS_CODEC_REASON__COUNT)
		return ls_codec_reason_name((ls_codec_reason)reason);
	if (reason >= LS_CODEC_REASON__COUNT && reason < LS_DLQ_REASON__COUNT)
		return own_reasons[reason - LS_CODEC_REASON__COUNT];
	return NULL;
}

/* Remember next_offset for (topic, partition); batches touch few partitions. */
static int note_offset(ls_pipeline *p, const char *topic, int32_t partition,
		       int64_t next)
{
	for (size_t i = 0; i < p->pend.n_offsets; i++) {
		ls_store_offset *o = &p->pend.offsets[i];
		if (o->partition == partition && strcmp(o->topic, topic) == 0) {
			if (next > o->next_offset)
				o->next_offset = next;
			return 0;
		}
	}
	if (ls_grow((void **)&p->pend.offsets, &p->pend.cap_offsets, p->pend.n_offsets + 1,
		    sizeof *p->pend.offsets) != 0 ||
	    ls_grow((void **)&p->pend.offset_topics, &p->pend.cap_offset_topics,
		    p->pend.n_offsets + 1, sizeof *p->pend.offset_topics) != 0)
		return -1;
	char *copy = strdup(topic);
	if (copy == NULL)
		return -1;
	p->pend.offset_topics[p->pend.n_offsets] = copy;
	p->pend.offsets[p->pend.n_offsets++] = (ls_store_offset){ copy, partition, next };
	return 0;
}

/* Release the batch's messages and decoded events (not pending state). */
static void drop_messages(ls_pipeline *p)
{
	for (size_t i = 0; i < p->batch.n_msgs; i++)
		rd_kafka_message_destroy(p->batch.msgs[i]);
	p->batch.n_msgs = 0;
	p->batch.n_events = 0;
	p->batch.n_misses = 0;
	ls_arena_reset(&p->batch.arena);
}

static void bandit_ops_clear(ls_pipeline *p)
{
	for (size_t i = 0; i < p->pend.n_bandit_ops; i++)
		free(p->pend.bandit_ops[i].buf);
	p->pend.n_bandit_ops = 0;
}

/* Forget what is pending since the last commit (after commit or failure). */
static void reset_pending(ls_pipeline *p)
{
	bandit_ops_clear(p);
	for (size_t i = 0; i < p->pend.n_offsets; i++)
		free(p->pend.offset_topics[i]);
	p->pend.n_offsets = 0;
	p->pend.n_dirty = 0;
	p->dlq.in_batch = 0;
	p->pend.produced = 0;
	ls_sweep_clear_stale(&p->sweep);
}

static void fly_clear(ls_pipeline *p);
static int advance_commit(ls_pipeline *p, bool wait, char *err, size_t errlen);
static int encode_for_fly(ls_pipeline *p, ls_cache_entry *e, char *err, size_t errlen);

/* Forget all work since the last commit: leads, learning, sweeps, the
 * commit on its way and the records produced for them. */

static void discard_uncommitted(ls_pipeline *p)
{
	reset_pending(p);
	fly_clear(p);
	ls_store_commit_abandon(p->store);
	ls_dlq_abandon(&p->dlq);
	ls_scorer_set_produce_opaque(p->scorer, ls_dlq_score_opaque(&p->dlq));
	ls_cache_clear(&p->cache);
	ls_scorer_discard(p->scorer);
	ls_sweep_forget_all(&p->sweep);
}

/*
 * Throw the batch away and wait for Redis: cached leads may hold
 * uncommitted changes, and the consumer has moved past uncommitted
 * offsets, so both go back to what Redis holds.
 */
void ls_pipeline_fail_batch(ls_pipeline *p, const char *why)
{
	char q[600];
	drop_messages(p);
	ls_align_reset(&p->align); /* everything is paused below, resync seeks and resumes it */
	discard_uncommitted(p);
	if (!p->resync.need) {
		ls_log(LS_LOG_WARN, "pipeline", "batch not committed, pausing consumption",
		       "reason=%s failed_in_row=%" PRIu64, ls_log_quote(why, q, sizeof q),
		       p->st.failed_batches_in_row + 1);
		p->st.redis_failures++;
	}
	p->st.failed_batches_in_row++;
	p->progress.last_fail_ms = ls_clock_mono_ms();
	/* what was read waits to be read again */
	if (p->progress.waiting_since_ms == 0)
		p->progress.waiting_since_ms = ls_clock_mono_ms();
	p->resync.need = true;
	p->resync.retry_at_ms = ls_clock_mono_ms() + p->resync.backoff_ms;
	/* Pausing inside a rebalance callback would act on the old
	 * assignment; resync seeks whatever is assigned afterwards. */
	if (!p->resync.in_rebalance) {
		rd_kafka_topic_partition_list_t *parts = NULL;
		if (rd_kafka_assignment(p->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    parts != NULL) {
			rd_kafka_pause_partitions(p->rk, parts);
			rd_kafka_topic_partition_list_destroy(parts);
		}
	}
}


_Static_assert(LS_DECISION_ID_MAX - 1 <= 128,
	       "pipeline.max_id_bytes (at least 128) takes the decision ids we make");

/*
 * An id of the event, or the message key, longer than
 * pipeline.max_id_bytes: it would go into Redis keys, ScoreChange keys
 * and HTTP paths, so it is refused here, with the id named in detail.
 */
static bool id_too_long(const ls_pipeline *p, const ls_event *ev,
			const rd_kafka_message_t *m, char *detail, size_t len)
{
	size_t max = (size_t)p->set.max_id_bytes, n;
	const char *name = ls_event_long_id(ev, max, &n);
	if (name != NULL) {
		snprintf(detail, len, "%s is %zu bytes (pipeline.max_id_bytes %zu)", name, n, max);
		return true;
	}
	if (m->key != NULL && m->key_len > max) {
		snprintf(detail, len, "message key is %zu bytes (pipeline.max_id_bytes %zu)",
			 m->key_len, max);
		return true;
	}
	return false;
}

/* Decode, validate and group the batch; queue dead letters. */
static int prepare(ls_pipeline *p, char *err, size_t errlen)
{
	int64_t now = ls_clock_wall_ms();
	int64_t skew = p->set.live.max_future_skew_ms;
	for (size_t i = 0; i < p->batch.n_msgs; i++) {
		rd_kafka_message_t *m = p->batch.msgs[i];
		const char *topic = rd_kafka_topic_name(m->rkt);
		if (note_offset(p, topic, m->partition, m->offset + 1) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		int src = ls_align_source(&p->align, topic);
		if (src < 0)
			continue;
		if (ls_grow((void **)&p->batch.events, &p->batch.cap_events, p->batch.n_events + 1,
			    sizeof *p->batch.events) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		batch_event *be = &p->batch.events[p->batch.n_events];
		be->read_ns = p->batch.read_ns[i];
		rd_kafka_timestamp_type_t tt;
		be->record_ts = rd_kafka_message_timestamp(m, &tt);
		if (tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
			be->record_ts = -1;
		ls_codec_error cerr;
		int rc = ls_codec_decode(p->codec, (ls_source)src, m->payload,
					 m->len, &p->batch.arena, &be->ev, &cerr);
		if (rc == LS_CODEC_INTERNAL) {
			snprintf(err, errlen, "codec: %s", cerr.detail);
			return -1;
		}
		if (rc != 0) {
			if (ls_dlq_send(&p->dlq, m, topic, rc, cerr.detail) != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		if (be->ev.ts > now + skew) {
			char d[160];
			snprintf(d, sizeof d, "ts %" PRId64 " is %" PRId64
				 " ms ahead of the clock (max_future_skew %" PRId64 " ms)",
				 be->ev.ts, be->ev.ts - now, skew);
			if (ls_dlq_send(&p->dlq, m, topic, LS_DLQ_FUTURE_TIMESTAMP, d) != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		char d[160];
		if (id_too_long(p, &be->ev, m, d, sizeof d)) {
			if (ls_dlq_send(&p->dlq, m, topic, LS_DLQ_ID_TOO_LONG, d) != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		size_t idlen = strlen(be->ev.lead_id);
		if (m->key == NULL || m->key_len != idlen ||
		    memcmp(m->key, be->ev.lead_id, idlen) != 0) {
			if (ls_dlq_send(&p->dlq, m, topic, LS_DLQ_KEY_MISMATCH,
					"message key is not the record's lead_id") != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		bool created;
		be->entry = ls_cache_put(&p->cache, be->ev.lead_id, &created);
		if (be->entry == NULL || ls_sweep_note_wm(&p->sweep, m->partition, be->ev.ts) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		be->entry->partition = m->partition;
		if (created) {
			if (ls_grow((void **)&p->batch.misses, &p->batch.cap_misses,
				    p->batch.n_misses + 1, sizeof *p->batch.misses) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			p->batch.misses[p->batch.n_misses++] = be->entry;
		}
		p->st.consumed[src]++;
		int ti = event_type_index(&be->ev);
		if (ti >= 0 && ti < LS_PIPELINE_MAX_TYPES)
			p->st.consumed_type[src][ti]++;
		p->batch.n_events++;
	}
	return 0;
}

/* Load every lead the cache did not have, in one round trip. */
int ls_pipeline_load_misses(ls_pipeline *p, char *err, size_t errlen)
{
	if (p->batch.n_misses == 0)
		return 0;
	if (ls_grow((void **)&p->batch.miss_ids, &p->batch.cap_miss_ids, p->batch.n_misses,
		    sizeof *p->batch.miss_ids) != 0 ||
	    ls_grow((void **)&p->batch.miss_blobs, &p->batch.cap_miss_blobs, p->batch.n_misses,
		    sizeof *p->batch.miss_blobs) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* the connection carries the commit on its way: its outcome first */
	if (p->fly.sent && advance_commit(p, true, err, errlen) != 0)
		return -1;
	const char **ids = p->batch.miss_ids;
	ls_store_blob *blobs = p->batch.miss_blobs;
	for (size_t i = 0; i < p->batch.n_misses; i++)
		ids[i] = p->batch.misses[i]->lead_id;
	char serr[512];
	int64_t t0 = ls_clock_mono_ns();
	int lrc = ls_store_load(p->store, ids, p->batch.n_misses, blobs, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, ls_pipeline_since_s(t0));
	if (lrc != 0) {
		snprintf(err, errlen, "redis load: %s", serr);
		return -1;
	}
	p->st.cache_loads += p->batch.n_misses;
	for (size_t i = 0; i < p->batch.n_misses; i++) {
		ls_cache_entry *e = p->batch.misses[i];
		if (blobs[i].data != NULL) {
			char derr[256], q[300], qi[300];
			if (ls_lead_decode(&p->lead_conf, blobs[i].data, blobs[i].len,
					   &e->lead, derr, sizeof derr) == 0)
				continue;
			/* Only a bug or foreign writes can get here; starting
			 * afresh keeps the pipeline going and the log says so. */
			ls_log(LS_LOG_ERROR, "pipeline", "corrupt lead state in Redis, starting it afresh",
			       "lead_id=%s error=%s", ls_log_quote(e->lead_id, qi, sizeof qi),
			       ls_log_quote(derr, q, sizeof q));
		}
		e->lead = ls_lead_new(&p->lead_conf);
		if (e->lead == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

int ls_pipeline_mark_dirty(ls_pipeline *p, ls_cache_entry *e)
{
	if (e->dirty)
		return 0;
	if (ls_grow((void **)&p->pend.dirty, &p->pend.cap_dirty, p->pend.n_dirty + 1,
		    sizeof *p->pend.dirty) != 0)
		return -1;
	e->dirty = true;
	p->pend.dirty[p->pend.n_dirty++] = e;
	return 0;
}

/*
 * A ScoreChange was produced for e, caused by a record of this batch:
 * how long after the record was read, and after its Kafka timestamp.
 * e->cause points into p->batch.events (apply_events), at the first
 * member of a batch_event.
 */
static void observe_latency(const ls_pipeline *p, const ls_cache_entry *e)
{
	if (p->obs.latency == NULL || e->cause == NULL)
		return;
	const batch_event *be = (const batch_event *)(const void *)e->cause;
	double rec = -1;
	if (be->record_ts >= 0) {
		int64_t ms = ls_clock_wall_ms() - be->record_ts;
		rec = ms > 0 ? (double)ms / 1e3 : 0; /* a producer's clock a little ahead */
	}
	p->obs.latency(p->obs.ud, ls_pipeline_since_s(be->read_ns), rec);
}

/*
 * Rescore every lead an applied event touched, once per batch, after the
 * whole batch is applied: a lead with ten events in a batch gets one
 * score, caused by its last event.
 */
static int score_touched(ls_pipeline *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->batch.n_touched; i++) {
		ls_cache_entry *e = p->batch.touched[i];
		bool changed = false;
		size_t produced = 0;
		if (ls_scorer_score(p->scorer, e->lead_id, e->lead,
				    LS_LEAD_AT_WATERMARK, e->cause, &changed,
				    &produced, err, errlen) != 0)
			return -1;
		e->scored_at = ls_lead_watermark(e->lead);
		e->rescore_dirty = true;
		if (ls_pipeline_mark_dirty(p, e) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		p->pend.produced += produced;
		if (produced > 0)
			observe_latency(p, e);
		if (changed && ls_pipeline_mark_dirty(p, e) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	p->batch.n_touched = 0;
	return 0;
}

/*
 * An email event carrying a decision_id activates or rewards it: queue the
 * script call for the commit transaction, so it happens exactly when the
 * event's offset is committed (and the scripts are idempotent, so a
 * replay after a lost commit outcome changes nothing).
 */
static int add_bandit_op(ls_pipeline *p, const ls_event *ev)
{
	const ls_email_event *em = &ev->u.email;
	if (em->decision_id == NULL || p->set.live.campaigns.n_specs == 0)
		return 0;
	if (ls_grow((void **)&p->pend.bandit_ops, &p->pend.cap_bandit_ops, p->pend.n_bandit_ops + 1,
		    sizeof *p->pend.bandit_ops) != 0)
		return -1;
	size_t cap = 2048 + 3 * strlen(em->decision_id) + strlen(ls_store_key_prefix(p->store));
	bandit_op *b = &p->pend.bandit_ops[p->pend.n_bandit_ops];
	memset(b, 0, sizeof *b);
	b->buf = malloc(cap);
	if (b->buf == NULL)
		return -1;
	int rc = ls_campaign_event_op(&p->set.live.campaigns, em, ev->ts, &b->op, b->buf, cap);
	if (rc != 1) {
		free(b->buf);
		return 0; /* nothing to do (or an id too long to be ours) */
	}
	b->activation = em->type == LS_EMAIL_SENT;
	p->pend.n_bandit_ops++;
	return 0;
}

/*
 * A label for a lead that this batch has already changed: publish the
 * lead's score as it stands, before the label is learned and the outcome
 * applied. Scores are otherwise computed once per lead at the end of the
 * batch, after the outcome, so the events a lead had in the same batch as
 * its outcome would never reach a score published before it: the score
 * history (what the model predicted when the outcome came) would depend
 * on where the batches were cut. Live a batch spans a fraction of a
 * second; catching up, or in the simulator, it spans hours of event time.
 */
static int score_before_label(ls_pipeline *p, ls_cache_entry *e,
			      const ls_event *ev, char *err, size_t errlen)
{
	if (e->touched_batch != p->batch.no || e->cause == NULL ||
	    !ls_scorer_is_label(p->scorer, e->lead, ev))
		return 0;
	bool changed = false;
	size_t produced = 0;
	if (ls_scorer_score(p->scorer, e->lead_id, e->lead, LS_LEAD_AT_WATERMARK,
			    e->cause, &changed, &produced, err, errlen) != 0)
		return -1;
	p->pend.produced += produced;
	if (produced > 0)
		observe_latency(p, e);
	if (changed && ls_pipeline_mark_dirty(p, e) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int apply_events(ls_pipeline *p, char *err, size_t errlen)
{
	p->batch.no++;
	p->batch.n_touched = 0;
	for (size_t i = 0; i < p->batch.n_events; i++) {
		batch_event *be = &p->batch.events[i];
		int src = (int)be->ev.source;
		bool changed = false;
		/* the commit on its way writes the lead as it was */
		if (encode_for_fly(p, be->entry, err, errlen) != 0)
			return -1;
		if (score_before_label(p, be->entry, &be->ev, err, errlen) != 0)
			return -1;
		if (ls_scorer_before_apply(p->scorer, be->entry->lead, &be->ev,
					   &changed, err, errlen) != 0)
			return -1;
		if (changed) {
			be->entry->due_dirty = true;
			if (ls_pipeline_mark_dirty(p, be->entry) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
		}
		int rc = ls_lead_apply_counted(be->entry->lead, &p->lead_conf, &be->ev,
					       p->st.profile_dropped);
		if ((rc == LS_LEAD_APPLIED || rc == LS_LEAD_TOO_LATE) &&
		    be->ev.source == LS_SOURCE_EMAIL && add_bandit_op(p, &be->ev) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		switch (rc) {
		case LS_LEAD_APPLIED:
			p->st.applied[src]++;
			if (ls_pipeline_mark_dirty(p, be->entry) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			be->entry->cause = &be->ev;
			if (be->entry->touched_batch != p->batch.no) {
				if (ls_grow((void **)&p->batch.touched, &p->batch.cap_touched,
					    p->batch.n_touched + 1, sizeof *p->batch.touched) != 0) {
					snprintf(err, errlen, "out of memory");
					return -1;
				}
				be->entry->touched_batch = p->batch.no;
				p->batch.touched[p->batch.n_touched++] = be->entry;
			}
			break;
		case LS_LEAD_DUPLICATE:
			p->st.duplicates[src]++;
			break;
		case LS_LEAD_TOO_LATE:
			p->st.too_late[src]++;
			break;
		default:
			snprintf(err, errlen, "apply: %s", ls_lead_result_str(rc));
			return -1;
		}
	}
	return score_touched(p, err, errlen);
}

/*
 * Why commits are pipelined: a commit waits twice, for the broker to
 * acknowledge the batch's ScoreChanges and dead letters (they must be
 * delivered before the offsets past their records are committed, or a
 * crash would lose them), and for Redis to run the transaction. Waiting
 * in turn took two fifths of the loop's time while catching up. So a
 * commit is taken (take_commit: everything it writes is encoded or moved
 * aside, as of now), and the loop goes on applying the next batches while
 * its records are delivered and Redis runs it (advance_commit). It is
 * still one MULTI/EXEC of leads, learning and offsets as of one point in
 * the stream; if it fails, everything since the last commit that landed
 * is thrown away and replayed, the next batches included.
 */

static void swap_ptr(void *a, void *b)
{
	void *t;
	memcpy(&t, a, sizeof t);
	memcpy(a, b, sizeof t);
	memcpy(b, &t, sizeof t);
}

static void swap_size(size_t *a, size_t *b)
{
	size_t t = *a;
	*a = *b;
	*b = t;
}

/* Forget the commit on its way (landed, failed, or thrown away). */
static void fly_clear(ls_pipeline *p)
{
	for (size_t i = p->fly.next_todo; i < p->fly.n_todo; i++)
		p->fly.todo[i]->in_fly = false;
	p->fly.n_todo = p->fly.next_todo = 0;
	for (size_t i = 0; i < p->fly.n_offsets; i++)
		free(p->fly.offset_topics[i]);
	p->fly.n_offsets = 0;
	for (size_t i = 0; i < p->fly.n_bandit_ops; i++)
		free(p->fly.bandit_ops[i].buf);
	p->fly.n_bandit_ops = 0;
	p->fly.active = p->fly.sent = false;
}

/* Anything to commit since the last commit was taken? */
static bool pending(const ls_pipeline *p)
{
	return p->pend.n_offsets > 0 || p->pend.n_dirty > 0 || p->sweep.n_stale > 0;
}

/*
 * Take the commit: encode every dirty lead, build the learning-log,
 * sweep and bandit commands, move the offsets and bandit calls aside, set
 * the models' learning aside and close the producer's generation. After
 * this the pending state is empty and the next batch may begin.
 */
static int take_commit(ls_pipeline *p, char *err, size_t errlen)
{
	/* the leads are encoded later (encode_for_fly), into one buffer */
	size_t n_w = p->pend.n_dirty > 0 ? p->pend.n_dirty : 1;
	if (ls_grow((void **)&p->tx.writes, &p->tx.cap_writes, n_w, sizeof *p->tx.writes) != 0 ||
	    ls_grow((void **)&p->tx.write_off, &p->tx.cap_write_off, n_w,
		    sizeof *p->tx.write_off) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ls_buf_reset(&p->tx.blobs);
	const ls_store_append *appends;
	size_t n_appends, n_ops;
	if (ls_scorer_commit_appends(p->scorer, &appends, &n_appends, err, errlen) != 0 ||
	    ls_sweep_commit_ops(p, appends, n_appends, &n_ops, err, errlen) != 0)
		return -1;
	if (p->pend.n_bandit_ops > 0) {
		if (ls_grow((void **)&p->tx.ops, &p->tx.cap_ops, n_ops + p->pend.n_bandit_ops,
			    sizeof *p->tx.ops) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < p->pend.n_bandit_ops; i++)
			p->tx.ops[n_ops++] = (ls_store_append){
				.argc = p->pend.bandit_ops[i].op.argc, .argv = p->pend.bandit_ops[i].op.argv,
				.argvlen = p->pend.bandit_ops[i].op.argvlen, .result = &p->pend.bandit_ops[i].result };
	}
	if (ls_scorer_stage(p->scorer) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* nothing can fail from here: the pending state becomes the commit's */
	for (size_t i = 0; i < p->pend.n_dirty; i++) {
		p->pend.dirty[i]->dirty = false;
		p->pend.dirty[i]->due_dirty = false;
		p->pend.dirty[i]->rescore_dirty = false;
		p->pend.dirty[i]->in_fly = true;
	}
	swap_ptr(&p->fly.todo, &p->pend.dirty);
	swap_size(&p->fly.n_todo, &p->pend.n_dirty);
	swap_size(&p->fly.cap_todo, &p->pend.cap_dirty);
	p->fly.next_todo = 0;
	p->fly.n_writes = 0;
	p->fly.n_ops = n_ops;
	/* the arrays move, so the ops' result pointers follow them */
	swap_ptr(&p->fly.offsets, &p->pend.offsets);
	swap_ptr(&p->fly.offset_topics, &p->pend.offset_topics);
	swap_size(&p->fly.n_offsets, &p->pend.n_offsets);
	swap_size(&p->fly.cap_offsets, &p->pend.cap_offsets);
	swap_size(&p->fly.cap_offset_topics, &p->pend.cap_offset_topics);
	swap_ptr(&p->fly.bandit_ops, &p->pend.bandit_ops);
	swap_size(&p->fly.n_bandit_ops, &p->pend.n_bandit_ops);
	swap_size(&p->fly.cap_bandit_ops, &p->pend.cap_bandit_ops);
	p->fly.gen = ls_dlq_close_gen(&p->dlq, p->pend.produced);
	ls_scorer_set_produce_opaque(p->scorer, ls_dlq_score_opaque(&p->dlq));
	p->fly.active = true;
	p->fly.sent = false;
	p->fly.taken_ms = ls_clock_mono_ms();
	p->pend.n_dirty = 0;
	p->pend.produced = 0;
	p->dlq.in_batch = 0;
	ls_sweep_clear_stale(&p->sweep);
	return 0;
}

/* Everything read has been committed (or is waiting for alignment,
 * which is progress too): nothing has been waiting since then. */
static void committed_progress(ls_pipeline *p)
{
	p->st.failed_batches_in_row = 0;
	/* since the last commit was taken, what was read has waited */
	p->progress.waiting_since_ms =
		pending(p) || ls_align_buffered(&p->align) > 0 ? p->progress.last_commit_ms : 0;
}

/*
 * Encode e into the commit on its way, as it is now: called for every
 * lead of the commit before a batch changes it, and for the rest a few
 * at a time between batches, so taking a commit does not stop the loop
 * for the time it takes to encode thousands of leads. 0, or -1 with err.
 */
static int encode_for_fly(ls_pipeline *p, ls_cache_entry *e, char *err, size_t errlen)
{
	if (!e->in_fly)
		return 0;
	int rc = ls_lead_encode(e->lead, &p->lead_conf, &p->tx.scratch);
	if (rc != 0) {
		snprintf(err, errlen, "encode: %s", ls_lead_result_str(rc));
		return -1;
	}
	size_t i = p->fly.n_writes;
	p->tx.write_off[i] = p->tx.blobs.len;
	if (ls_buf_append(&p->tx.blobs, p->tx.scratch.data, p->tx.scratch.len) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->tx.writes[i] = (ls_store_write){ .lead_id = e->lead_id, .len = p->tx.scratch.len };
	p->fly.n_writes++;
	e->in_fly = false;
	return 0;
}

/* Encode the commit's leads not encoded yet, for about budget_ns (all
 * with budget_ns < 0). 0 when all are, 1 when some are left, -1 (err). */
static int encode_some(ls_pipeline *p, int64_t budget_ns, char *err, size_t errlen)
{
	int64_t until = budget_ns >= 0 ? ls_clock_mono_ns() + budget_ns : INT64_MAX;
	for (size_t k = 0; p->fly.next_todo < p->fly.n_todo; k++) {
		if (budget_ns >= 0 && k % 64 == 0 && ls_clock_mono_ns() >= until)
			return 1;
		if (encode_for_fly(p, p->fly.todo[p->fly.next_todo], err, errlen) != 0)
			return -1;
		p->fly.next_todo++;
	}
	return 0;
}

/*
 * Move the commit on its way forward: once its records are delivered,
 * write it; once Redis answers, read the outcome and make it the
 * committed state. With wait, until it has landed; without, only as far
 * as it can go now. 0 (landed, or still on its way without wait), or -1
 * with err: the caller throws everything away (ls_pipeline_fail_batch).
 */
static int advance_commit(ls_pipeline *p, bool wait, char *err, size_t errlen)
{
	if (!p->fly.active)
		return 0;
	if (!p->fly.sent) {
		bool failed = false;
		int left_to_encode = encode_some(p, wait ? -1 : p->fly.encode_budget_ns, err, errlen);
		if (left_to_encode < 0)
			return -1;
		if (left_to_encode > 0)
			return 0; /* not wait: more next time */
		rd_kafka_poll(p->dlq.rk, 0); /* delivery reports */
		while (!ls_dlq_gen_done(&p->dlq, p->fly.gen, &failed)) {
			int64_t left = p->fly.taken_ms + 10000 - ls_clock_mono_ms();
			if (!wait && left > 0)
				return 0;
			if (left <= 0) {
				p->st.dlq_failures++;
				snprintf(err, errlen, "dead letters or scores not delivered: %s",
					 rd_kafka_err2name(RD_KAFKA_RESP_ERR__TIMED_OUT));
				return -1;
			}
			/* waiting: send what lingers now (and serve the reports) */
			rd_kafka_flush(p->dlq.rk, left < 10 ? (int)left : 10);
		}
		if (failed) {
			p->st.dlq_failures++;
			snprintf(err, errlen, "dead letters or scores not delivered: %s",
				 "delivery failed");
			return -1;
		}
		char serr[512];
		/* the blobs buffer has stopped moving */
		for (size_t i = 0; i < p->fly.n_writes; i++)
			p->tx.writes[i].data = p->tx.blobs.data + p->tx.write_off[i];
		p->fly.sent_ns = ls_clock_mono_ns();
		if (ls_store_commit_send(p->store, p->tx.writes, p->fly.n_writes, p->tx.ops,
					 p->fly.n_ops, p->fly.offsets, p->fly.n_offsets, serr,
					 sizeof serr) != 0) {
			snprintf(err, errlen, "redis commit: %s", serr);
			return -1;
		}
		p->fly.sent = true;
	}
	if (!wait && !ls_store_commit_answered(p->store))
		return 0;
	char serr[512];
	int crc = ls_store_commit_recv(p->store, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, ls_pipeline_since_s(p->fly.sent_ns));
	if (crc != 0) {
		snprintf(err, errlen, "redis commit: %s", serr);
		return -1;
	}
	ls_scorer_committed(p->scorer);
	for (size_t i = 0; i < p->fly.n_bandit_ops; i++)
		p->st.bandit[ls_campaign_outcome_of(p->fly.bandit_ops[i].activation,
						    p->fly.bandit_ops[i].result)]++;
	ls_sweep_committed(&p->sweep);
	ls_log(LS_LOG_DEBUG, "pipeline", "committed", "leads=%zu partitions=%zu",
	       p->fly.n_writes, p->fly.n_offsets);
	p->st.commits++;
	p->st.leads_written += p->fly.n_writes;
	fly_clear(p);
	committed_progress(p);
	return 0;
}

/* Nothing read since the last commit: the interval starts again. */
static void nothing_to_commit(ls_pipeline *p)
{
	p->progress.last_commit_ms = ls_clock_mono_ms();
	/* Nothing read: after a failure that is no progress until the
	 * replayed records have had time to come back, and a partition
	 * with nothing to replay (the failure was not about records)
	 * must not look stuck forever. */
	int64_t quiet = 2 * (p->set.live.commit_interval_ms + p->set.live.batch_max_wait_ms);
	if (quiet < 5000)
		quiet = 5000;
	if (p->st.failed_batches_in_row == 0 ||
	    p->progress.last_commit_ms - p->progress.last_fail_ms >= quiet)
		committed_progress(p);
}

/*
 * Commit everything up to now and wait until it has landed (revocation,
 * shutdown, an oversized cache): the cache may then be
 * cleared and the models checkpointed, as nothing is pending.
 */
static int commit_now(ls_pipeline *p)
{
	char err[600];
	if (advance_commit(p, true, err, sizeof err) != 0) {
		ls_pipeline_fail_batch(p, err);
		return -1;
	}
	if (!pending(p)) {
		nothing_to_commit(p);
	} else {
		if (take_commit(p, err, sizeof err) != 0 ||
		    advance_commit(p, true, err, sizeof err) != 0) {
			ls_pipeline_fail_batch(p, err);
			return -1;
		}
		p->progress.last_commit_ms = ls_clock_mono_ms();
		committed_progress(p);
	}
	if ((int64_t)ls_cache_count(&p->cache) > p->set.cache_leads)
		ls_cache_clear(&p->cache);
	if (p->progress.last_commit_ms - p->ckpt.last_ms >= p->set.live.checkpoint_interval_ms)
		ls_pipeline_checkpoint(p);
	return 0;
}

/* Labels the models hold now (shared ones and this instance's own). */
static uint64_t labels_held(const ls_pipeline *p)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ls_scorer_n_models(p->scorer); i++) {
		ls_scorer_model_stats s;
		ls_scorer_stats(p->scorer, i, &s);
		n += s.positives + s.negatives;
	}
	return n;
}

/*
 * A checkpoint is also due, before the interval, whenever the models
 * hold twice the labels they held at the last one (from 100 on). Quantile
 * edges are frozen per model version, i.e. from one checkpoint to the
 * next: when a backlog brings thousands of labels a second, edges frozen
 * at a checkpoint of the first hundred labels would stay that coarse for
 * a whole interval. Doubling costs log2(labels / 100) extra checkpoints
 * in a model's life.
 */
static bool labels_doubled(const ls_pipeline *p)
{
	uint64_t now = labels_held(p), then = p->ckpt.labels;
	return now >= 100 && now >= 2 * then;
}

/*
 * At the commit interval: write what is pending (dirty leads, offsets) as
 * one transaction, on its way while the loop goes on. Between commits
 * leads stay dirty in the cache, so a lead touched by many batches is
 * written once per pipeline.commit_interval, not once per batch.
 */
static int commit_pending(ls_pipeline *p)
{
	char err[600];
	/* one interval's work ahead of the commit on its way, not more: a
	 * slow commit slows the loop instead of letting pending work grow */
	if (advance_commit(p, true, err, sizeof err) != 0) {
		ls_pipeline_fail_batch(p, err);
		return -1;
	}
	/* with nothing on its way, a checkpoint keeps what the models learned
	 * since (ls_scorer_checkpoint): no need to wait for a commit of it.
	 * On the timer even when no events came: labels committed since the
	 * last one (ours, or another instance's in the shared log) reach the
	 * models HTTP serves within checkpoint_interval of the stream going
	 * quiet; with nothing learned anywhere it reads and writes nothing */
	if (ls_clock_mono_ms() - p->ckpt.last_ms >= p->set.live.checkpoint_interval_ms ||
	    labels_doubled(p))
		ls_pipeline_checkpoint(p);
	/* the sweeps wait while a commit is on its way; here, between two,
	 * they run at least once per commit however slow Redis is */
	if (ls_sweep_due(p) != 0)
		return -1;
	if (!pending(p)) {
		nothing_to_commit(p);
		return 0;
	}
	if ((int64_t)ls_cache_count(&p->cache) > p->set.cache_leads)
		return commit_now(p);
	if (take_commit(p, err, sizeof err) != 0 ||
	    advance_commit(p, false, err, sizeof err) != 0) {
		ls_pipeline_fail_batch(p, err);
		return -1;
	}
	p->progress.last_commit_ms = ls_clock_mono_ms();
	return 0;
}

int ls_pipeline_checkpoint(ls_pipeline *p)
{
	char err[600], q[700];
	p->ckpt.last_ms = ls_clock_mono_ms();
	p->ckpt.labels = labels_held(p); /* a failure waits for the next doubling or interval */
	if (p->resync.need)
		return -1;
	if (ls_scorer_checkpoint(p->scorer, err, sizeof err) != 0) {
		/* the learning log keeps every committed label, so a failed
		 * checkpoint only delays the merge; say so, not too often */
		if (p->ckpt.failures++ % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "model checkpoint failed",
			       "failures=%u error=%s", p->ckpt.failures,
			       ls_log_quote(err, q, sizeof q));
		return -1;
	}
	if (p->ckpt.failures > 0)
		ls_log(LS_LOG_INFO, "pipeline", "model checkpoint succeeded again",
		       "failures=%u", p->ckpt.failures);
	p->ckpt.failures = 0;
	p->ckpt.labels = labels_held(p); /* with the other instances' now */
	uint64_t adopted = ls_scorer_adoptions(p->scorer);
	if (adopted != p->ckpt.adopted || p->ckpt.count == 0) {
		p->ckpt.adopted = adopted;
		p->ckpt.count++;
	}
	return 0;
}

double ls_pipeline_since_s(int64_t t0_ns)
{
	return (double)(ls_clock_mono_ns() - t0_ns) / 1e9;
}

void ls_pipeline_set_encode_budget(ls_pipeline *p, int64_t ns)
{
	p->fly.encode_budget_ns = ns >= 0 ? ns : 0;
}

void ls_pipeline_set_observer(ls_pipeline *p, const ls_pipeline_observer *o)
{
	p->obs = *o;
	ls_scorer_set_publish_observer(p->scorer, o->score, o->ud);
}

/* Apply the collected batch; on failure everything pending is thrown away. */
static int process_batch(ls_pipeline *p)
{
	if (p->batch.n_msgs == 0)
		return 0;
	char err[600];
	int64_t t0 = ls_clock_mono_ns();
	if (prepare(p, err, sizeof err) != 0 ||
	    ls_pipeline_load_misses(p, err, sizeof err) != 0 ||
	    apply_events(p, err, sizeof err) != 0) {
		ls_pipeline_fail_batch(p, err);
		return -1;
	}
	if (p->obs.batch != NULL)
		p->obs.batch(p->obs.ud, ls_pipeline_since_s(t0));
	int n = (int)p->batch.n_msgs;
	p->st.batches++;
	ls_log(LS_LOG_DEBUG, "pipeline", "batch applied",
	       "messages=%d events=%zu leads_pending=%zu", n, p->batch.n_events, p->pend.n_dirty);
	drop_messages(p);
	return n;
}


int ls_pipeline_commit(ls_pipeline *p)
{
	if (p->resync.need)
		return -1;
	return commit_now(p);
}

/*
 * Before reading from the stored offsets again (an assignment, a resync):
 * a new replay epoch, so that what the replay publishes is numbered above
 * whatever was published and not committed before (ls_scorestate.h).
 */
static int take_epoch(ls_pipeline *p, char *err, size_t errlen)
{
	uint64_t epoch;
	if (ls_store_next_epoch(p->store, &epoch, err, errlen) != 0)
		return -1;
	ls_scorer_set_epoch(p->scorer, epoch);
	return 0;
}

/* Set each partition's start offset from Redis before it is assigned. */
static void on_assign(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
		      void *ud)
{
	(void)rk;
	ls_pipeline *p = ud;
	char cerr[600];
	/* the offsets and the epoch are read from Redis: the commit on its
	 * way first (the assignment may be ours already, eager or not) */
	if (advance_commit(p, true, cerr, sizeof cerr) != 0) {
		p->resync.in_rebalance = true;
		ls_pipeline_fail_batch(p, cerr);
		p->resync.in_rebalance = false;
	}
	if (ls_sweep_assigned(&p->sweep, parts) != 0) {
		p->resync.in_rebalance = true;
		ls_pipeline_fail_batch(p, "out of memory noting the assignment");
		p->resync.in_rebalance = false;
		return;
	}
	if (p->resync.need || parts->cnt == 0)
		return; /* resync will seek whatever is assigned */
	ls_store_offset *o = calloc((size_t)parts->cnt, sizeof *o);
	char err[512], q[600];
	if (o == NULL) {
		p->resync.in_rebalance = true;
		ls_pipeline_fail_batch(p, "out of memory loading offsets");
		p->resync.in_rebalance = false;
		return;
	}
	for (int i = 0; i < parts->cnt; i++) {
		o[i].topic = parts->elems[i].topic;
		o[i].partition = parts->elems[i].partition;
	}
	if (take_epoch(p, err, sizeof err) != 0 ||
	    ls_store_load_offsets(p->store, o, (size_t)parts->cnt, err, sizeof err) != 0) {
		ls_log(LS_LOG_WARN, "pipeline", "cannot read offsets from redis",
		       "error=%s", ls_log_quote(err, q, sizeof q));
		p->resync.in_rebalance = true;
		ls_pipeline_fail_batch(p, "offsets unavailable at assignment");
		p->resync.in_rebalance = false;
	} else {
		int stored = 0;
		for (int i = 0; i < parts->cnt; i++) {
			/* no stored offset: nothing of it was ever committed,
			 * so it is read from the beginning (as resync does) */
			parts->elems[i].offset = o[i].next_offset >= 0
							 ? o[i].next_offset
							 : RD_KAFKA_OFFSET_BEGINNING;
			stored += o[i].next_offset >= 0;
		}
		ls_log(LS_LOG_INFO, "pipeline", "starting at offsets stored in redis",
		       "partitions=%d with_offset=%d", parts->cnt, stored);
		if (ls_align_assigned(&p->align, parts) != 0) {
			p->resync.in_rebalance = true;
			ls_pipeline_fail_batch(p, "out of memory noting the assignment");
			p->resync.in_rebalance = false;
		}
	}
	free(o);
}

/* Commit what has been collected, then forget the cached leads. */
static void on_revoke(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
		      void *ud)
{
	ls_pipeline *p = ud;
	p->resync.in_rebalance = true;
	/*
	 * A lost assignment (our session timed out, e.g. a stall or a
	 * coordinator out of reach) may already be another member's, which
	 * replays it from the offsets in Redis: committing our pending work
	 * now would apply it a second time on top (labels learned twice, found
	 * by the chaos suite). Throw it away; the owner replays it.
	 */
	if (rd_kafka_assignment_lost(rk)) {
		if (p->batch.n_msgs > 0 || p->pend.n_offsets > 0 || p->pend.n_dirty > 0)
			ls_log(LS_LOG_WARN, "pipeline",
			       "assignment lost, uncommitted work discarded",
			       "messages=%zu leads=%zu", p->batch.n_msgs, p->pend.n_dirty);
		drop_messages(p);
		discard_uncommitted(p);
	} else if (!p->resync.need && process_batch(p) >= 0)
		commit_now(p);
	else
		drop_messages(p);
	/* buffered records are read again by the next owner (or by us after
	 * the assignment, from the stored offsets) */
	ls_align_revoked(&p->align, parts);
	p->resync.in_rebalance = false;
	ls_cache_clear(&p->cache);
	ls_sweep_revoked(&p->sweep, parts);
}

/* The consumer is going away: let go of its queues. */
static void on_close(void *ud)
{
	ls_pipeline *p = ud;
	ls_align_detach(&p->align);
}

/* Reconnect, seek every assigned partition to its stored offset, resume. */
static int resync(ls_pipeline *p)
{
	/* keep serving rebalances and the poll interval while paused;
	 * anything fetched before the seek is stale and dropped */
	ls_align_wait(&p->align, 100);
	(void)ls_align_serve(&p->align);
	ls_align_reset(&p->align);
	if (!p->resync.need || ls_clock_mono_ms() < p->resync.retry_at_ms)
		return -1;

	char err[512], q[600];
	p->resync.retries++;
	p->resync.backoff_ms = p->resync.backoff_ms * 2 > 5000 ? 5000 : p->resync.backoff_ms * 2;
	p->resync.retry_at_ms = ls_clock_mono_ms() + p->resync.backoff_ms;
	if (ls_store_connect(p->store, err, sizeof err) != 0) {
		if (p->resync.retries == 1 || p->resync.retries % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "redis still unavailable",
			       "attempts=%u error=%s", p->resync.retries,
			       ls_log_quote(err, q, sizeof q));
		return -1;
	}
	rd_kafka_topic_partition_list_t *parts = NULL;
	if (rd_kafka_assignment(p->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    parts == NULL)
		return -1;
	int rc = -1;
	ls_store_offset *o = calloc((size_t)parts->cnt + 1, sizeof *o);
	if (o == NULL)
		goto out;
	for (int i = 0; i < parts->cnt; i++) {
		o[i].topic = parts->elems[i].topic;
		o[i].partition = parts->elems[i].partition;
	}
	if (parts->cnt > 0 &&
	    (take_epoch(p, err, sizeof err) != 0 ||
	     ls_store_load_offsets(p->store, o, (size_t)parts->cnt, err, sizeof err) != 0)) {
		/* e.g. a Redis that answers but refuses writes (the epoch's
		 * INCR): say why we stay paused */
		if (p->resync.retries == 1 || p->resync.retries % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "resync failed",
			       "attempts=%u error=%s", p->resync.retries,
			       ls_log_quote(err, q, sizeof q));
		goto out;
	}
	for (int i = 0; i < parts->cnt; i++)
		parts->elems[i].offset = o[i].next_offset >= 0
						 ? o[i].next_offset
						 : RD_KAFKA_OFFSET_BEGINNING;
	if (ls_align_assigned(&p->align, parts) != 0)
		goto out;
	if (parts->cnt > 0) {
		rd_kafka_error_t *e = rd_kafka_seek_partitions(p->rk, parts, 10000);
		if (e != NULL) {
			ls_log(LS_LOG_WARN, "pipeline", "seek failed", "error=%s",
			       rd_kafka_error_string(e));
			rd_kafka_error_destroy(e);
			goto out;
		}
		rd_kafka_resume_partitions(p->rk, parts);
	}
	ls_log(LS_LOG_INFO, "pipeline", "redis available, consumption resumed",
	       "partitions=%d attempts=%u", parts->cnt, p->resync.retries);
	p->resync.need = false;
	p->resync.backoff_ms = 100;
	p->resync.retries = 0;
	rc = 0;
out:
	free(o);
	rd_kafka_topic_partition_list_destroy(parts);
	return rc;
}

int ls_pipeline_step(ls_pipeline *p)
{
	if (p->resync.need)
		return resync(p) == 0 ? 0 : -1;
	if (!p->ckpt.restored) {
		/* before anything is learned: the first checkpoint folds the
		 * shared models and adopts them */
		if (ls_pipeline_checkpoint(p) != 0) {
			ls_pipeline_fail_batch(p, "models cannot be restored from redis");
			return -1;
		}
		p->ckpt.restored = true;
		for (size_t i = 0; i < ls_scorer_n_models(p->scorer); i++) {
			ls_scorer_model_stats s;
			ls_scorer_stats(p->scorer, i, &s);
			ls_log(LS_LOG_INFO, "pipeline", "model restored",
			       "model=%s version=%" PRIu64 " positives=%" PRIu64
			       " negatives=%" PRIu64 " eval_labels=%" PRIu64,
			       s.name, s.version, s.positives, s.negatives,
			       s.eval_labels);
		}
	}

	/*
	 * A batch is what can be applied now, up to batch_size: nothing is
	 * waited for once there is something (at a low rate a record is
	 * applied as soon as it is read; catching up, batches fill by
	 * themselves), and when there is nothing, up to batch_max_wait.
	 * Rebalances run in ls_align_serve, while the batch is empty.
	 */
	size_t max = (size_t)p->set.live.batch_size;
	if (ls_grow((void **)&p->batch.msgs, &p->batch.cap_msgs, max,
		    sizeof *p->batch.msgs) != 0 ||
	    ls_grow((void **)&p->batch.read_ns, &p->batch.cap_read_ns, max,
		    sizeof *p->batch.read_ns) != 0) {
		ls_pipeline_fail_batch(p, "out of memory");
		return -1;
	}
	char cerr[600];
	if (advance_commit(p, false, cerr, sizeof cerr) != 0) {
		ls_pipeline_fail_batch(p, cerr);
		return -1;
	}
	int64_t deadline = ls_clock_mono_ms() + p->set.live.batch_max_wait_ms;
	for (;;) {
		if (ls_align_serve(&p->align) != 0) {
			ls_pipeline_fail_batch(p, "out of memory");
			return -1;
		}
		if (p->resync.need)
			return -1; /* a rebalance hook failed */
		if (ls_align_take(&p->align, p->batch.msgs, p->batch.read_ns, max,
				  p->set.live.align_stall_ms, &p->batch.n_msgs) != 0) {
			ls_pipeline_fail_batch(p, "out of memory");
			return -1;
		}
		int64_t left = deadline - ls_clock_mono_ms();
		if (p->batch.n_msgs > 0 || left <= 0)
			break;
		/* a commit on its way is looked after between waits */
		ls_align_wait(&p->align, p->fly.active && left > 2 ? 2 : left);
		if (advance_commit(p, false, cerr, sizeof cerr) != 0) {
			ls_pipeline_fail_batch(p, cerr);
			return -1;
		}
	}
	if (p->batch.n_msgs > 0 && p->progress.waiting_since_ms == 0)
		p->progress.waiting_since_ms = ls_clock_mono_ms();
	ls_dlq_serve(&p->dlq);
	int n = process_batch(p);
	p->st.score_changes_skipped = p->dlq.skipped + ls_scorer_skipped(p->scorer);
	if (n < 0)
		return -1;
	/* the sweeps read Redis, which must hold what they rewrite */
	if (!p->fly.active && ls_sweep_due(p) != 0)
		return -1;
	if (ls_clock_mono_ms() - p->progress.last_commit_ms >= p->set.live.commit_interval_ms &&
	    commit_pending(p) != 0)
		return -1;
	return n;
}

void ls_pipeline_reload(ls_pipeline *p, const ls_pipeline_settings *s)
{
	p->set.live = s->live;
	p->dlq.log_rate = s->live.dead_letter_log_rate;
	p->lead_conf.grace_ms = s->lead_conf.grace_ms;
	p->lead_conf.dedupe_horizon_ms = s->lead_conf.dedupe_horizon_ms;
	ls_store_set_lead_ttl(p->store, s->live.lead_ttl_ms);
	ls_scorer_reload(p->scorer, &s->scorer);
}

bool ls_pipeline_paused(const ls_pipeline *p) { return p->resync.need; }

void ls_pipeline_health_get(const ls_pipeline *p, ls_pipeline_health *h)
{
	h->failed_in_row = p->st.failed_batches_in_row;
	int64_t since = p->progress.waiting_since_ms;
	h->waiting_ms = since != 0 ? ls_clock_mono_ms() - since : 0;
	if (h->waiting_ms == 0 && since != 0)
		h->waiting_ms = 1;
}
struct ls_scorer *ls_pipeline_scorer(const ls_pipeline *p) { return p->scorer; }
const ls_lead_conf *ls_pipeline_lead_conf(const ls_pipeline *p) { return &p->lead_conf; }
uint64_t ls_pipeline_checkpoints(const ls_pipeline *p) { return p->ckpt.count; }
const ls_pipeline_stats *ls_pipeline_stats_get(const ls_pipeline *p) { return &p->st; }
const ls_feature_set *ls_pipeline_features(const ls_pipeline *p) { return p->features; }

ls_pipeline *ls_pipeline_new(const ls_pipeline_settings *s, ls_kafka_consumer *consumer,
			     ls_store *store, ls_codec *codec, char *err,
			     size_t errlen)
{
	ls_pipeline *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->set = *s;
	p->consumer = consumer;
	p->rk = ls_kafka_consumer_handle(consumer);
	p->store = store;
	p->codec = codec;
	p->resync.backoff_ms = 100;
	p->fly.encode_budget_ns = 1000000;
	p->progress.last_commit_ms = ls_clock_mono_ms();
	ls_cache_init(&p->cache);
	ls_arena_init(&p->batch.arena, 0);
	ls_buf_init(&p->tx.blobs);
	ls_buf_init(&p->tx.opbuf);
	if (ls_align_init(&p->align, p->rk, p->set.topics, err, errlen) != 0)
		goto fail;
	p->dlq.topic = p->set.dead_letter_topic;
	p->dlq.max_id = (size_t)p->set.max_id_bytes;
	p->dlq.log_rate = p->set.live.dead_letter_log_rate;
	p->dlq.st = &p->st;

	p->features = ls_feature_set_new(s->features, s->n_features, err, errlen);
	if (p->features == NULL)
		goto fail;
	p->lead_conf = s->lead_conf;
	p->lead_conf.features = p->features;
	if (!ls_lead_conf_check(&p->lead_conf, err, errlen))
		goto fail;
	ls_codec_set_max_record_size(codec, (size_t)s->max_record_size);

	rd_kafka_conf_t *conf = ls_kafka_conf_new(&s->kafka, false, err, errlen);
	if (conf == NULL || ls_dlq_open(&p->dlq, conf, err, errlen) != 0)
		goto fail;
	p->scorer = ls_scorer_new(&s->scorer, p->features, &p->lead_conf, codec, p->dlq.rk,
				  store, err, errlen);
	if (p->scorer == NULL)
		goto fail;
	ls_scorer_set_produce_opaque(p->scorer, ls_dlq_score_opaque(&p->dlq));
	ls_kafka_consumer_set_hooks(consumer, on_assign, on_revoke, p);
	ls_kafka_consumer_set_close_hook(consumer, on_close);
	return p;
fail:
	ls_pipeline_free(p);
	return NULL;
}

void ls_pipeline_free(ls_pipeline *p)
{
	if (p == NULL)
		return;
	drop_messages(p);
	ls_align_free(&p->align);
	reset_pending(p);
	ls_dlq_close(&p->dlq);
	ls_scorer_free(p->scorer);
	ls_cache_free(&p->cache);
	ls_arena_free(&p->batch.arena);
	ls_buf_free(&p->tx.blobs);
	ls_buf_free(&p->tx.scratch);
	ls_feature_set_free(p->features);
	free(p->batch.msgs);
	free(p->batch.read_ns);
	free(p->batch.events);
	free(p->batch.misses);
	free(p->batch.miss_ids);
	free(p->batch.miss_blobs);
	free(p->pend.dirty);
	free(p->batch.touched);
	ls_sweep_free(&p->sweep);
	free(p->tx.ops);
	bandit_ops_clear(p);
	free(p->pend.bandit_ops);
	ls_buf_free(&p->tx.opbuf);
	free(p->tx.writes);
	free(p->tx.write_off);
	free(p->pend.offsets);
	free(p->pend.offset_topics);
	fly_clear(p);
	free(p->fly.offsets);
	free(p->fly.offset_topics);
	free(p->fly.bandit_ops);
	free(p->fly.todo);
	free(p);
}
