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
 */
#include "ls_pipeline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_clock.h"
#include "ls_cache.h"
#include "ls_keys.h"
#include "ls_log.h"
#include "ls_scorer.h"
#include "ls_settings.h" /* TODO(issue 13): daemon/; goes when ls_pipeline is built from settings */

typedef struct batch_event {
	ls_event ev;
	ls_cache_entry *entry;
} batch_event;

/* Sweep set s of a partition: s < LS_MODEL_MAX is model s's due set. */
#define SWEEP_RESCORE LS_MODEL_MAX
#define SWEEP_SETS (LS_MODEL_MAX + 1)

/*
 * What the sweeps know of one partition number's due and rescore sets.
 * at[] is exact for an owned partition because only its owner writes
 * them: INT64_MIN = not known (read it), INT64_MAX = empty.
 */
typedef struct sweep_part {
	int assigned;           /* topic-partitions of this number we own */
	int64_t at[SWEEP_SETS]; /* earliest score not yet read since the commit */
	size_t read[SWEEP_SETS]; /* members read since the last commit */
} sweep_part;

/*
 * What alignment (align_batch) knows of one input topic-partition: the
 * newest record timestamp read from it, the offset after the last record
 * read, whether this step holds records of it back, whether we paused it.
 */
typedef struct tp_clock {
	int64_t newest; /* -1: nothing read since the assignment */
	int64_t next;   /* -1: unknown */
	int64_t run;    /* align_batch's running maximum */
	bool assigned;  /* ours since the last assignment or resync */
	bool holding;
	bool paused;
} tp_clock;

/* A partition number's horizon and when it last moved (stall detection). */
typedef struct part_horizon {
	int64_t at;
	int64_t moved_ms;
} part_horizon;

/* A bandit script call waiting for the next commit; argv points into buf. */
typedef struct bandit_op {
	ls_campaign_op op;
	char *buf;
	long long result;
	bool activation;
} bandit_op;

struct ls_pipeline {
	ls_pipeline_observer obs;
	const ls_config *cfg;
	bandit_op *bops;   /* activations and rewards since the last commit */
	size_t n_bops, cap_bops;
	ls_kafka_consumer *consumer;
	rd_kafka_t *rk;
	ls_store *store;
	rd_kafka_t *dlq;
	ls_codec *codec;
	ls_feature_set *features;
	ls_lead_conf lead_conf;
	ls_cache cache;
	ls_arena arena;

	rd_kafka_message_t **msgs;
	size_t n_msgs, cap_msgs;
	rd_kafka_message_t **held; /* read ahead of a co-partitioned topic */
	size_t n_held, cap_held;
	tp_clock *clocks;          /* [partition * LS_SOURCE__COUNT + source] */
	size_t n_clock_parts;
	part_horizon *horizons;    /* per partition number, n_clock_parts */
	batch_event *events;
	size_t n_events, cap_events;
	ls_cache_entry **misses;
	const char **miss_ids;
	ls_store_blob *miss_blobs;
	size_t n_misses, cap_misses;
	ls_cache_entry **dirty;
	ls_store_write *writes;
	size_t *write_off;
	size_t n_dirty, cap_dirty;
	ls_store_offset *offsets; /* .topic points into offset_topics */
	char **offset_topics;     /* owned copies: pending offsets outlive messages */
	size_t n_offsets, cap_offsets, cap_offset_topics;
	ls_buf blobs;
	ls_buf scratch;
	ls_scorer *scorer;
	ls_cache_entry **touched; /* leads with an applied event this batch */
	size_t n_touched, cap_touched;
	uint64_t batch_no;
	size_t produced_in_batch; /* ScoreChange events since the last commit */
	bool models_restored;
	int64_t *part_wm;         /* newest event time seen per input partition */
	size_t n_part_wm;
	sweep_part *sweep;        /* per partition number */
	size_t n_sweep;
	char **stale;             /* "key\0member" due entries of vanished leads */
	size_t n_stale, cap_stale;
	ls_buf opbuf;             /* keys, scores and members of commit ops */
	ls_store_append *ops;
	size_t cap_ops;
	int64_t last_checkpoint_ms;
	unsigned checkpoint_failures;
	uint64_t checkpoints;

	size_t dlq_max;        /* the dead-letter producer's message.max.bytes */
	ls_log_limit dlq_log;  /* dead-letter log lines per second */
	uint64_t dr_skipped;   /* ScoreChanges refused for good in delivery reports */
	int64_t waiting_since_ms; /* records read and not committed since; 0: none */
	int64_t last_fail_ms;  /* when a batch was last thrown away */
	size_t dlq_in_batch;   /* dead letters since the last commit */
	int64_t last_commit_ms;
	uint64_t dlq_delivery_errors;
	bool in_rebalance;
	bool need_resync;
	int64_t retry_at_ms;
	int64_t backoff_ms;
	unsigned retries;
	ls_pipeline_stats st;
};

static const char *const own_reasons[] = { "future_timestamp", "key_mismatch", "id_too_long" };
_Static_assert(sizeof own_reasons / sizeof own_reasons[0] ==
	       LS_DLQ_REASON__COUNT - LS_CODEC_REASON__COUNT, "a name per reason");

/* The message opaque of dead letters (ScoreChanges, on the same producer,
 * carry none), so a delivery report says which of the two failed. */
static char dlq_tag;

/* librdkafka counts a record's framing against message.max.bytes (under
 * 64 bytes; see LS_CONFIG_DLQ_RESERVE), and a record batch adds 61. */
#define DLQ_FRAMING 128

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

/* Grow *arr (of elem bytes each) to hold at least want; 0 or -1. */
static int reserve(void **arr, size_t *cap, size_t want, size_t elem)
{
	if (want <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 64;
	while (ncap < want)
		ncap *= 2;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int topic_source(const ls_config *cfg, const char *topic)
{
	const char *t[LS_SOURCE__COUNT];
	t[LS_SOURCE_EMAIL] = cfg->kafka.topics.email;
	t[LS_SOURCE_WEB] = cfg->kafka.topics.web;
	t[LS_SOURCE_CALL] = cfg->kafka.topics.call;
	t[LS_SOURCE_OUTCOME] = cfg->kafka.topics.outcome;
	t[LS_SOURCE_PROFILE] = cfg->kafka.topics.profile;
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		if (strcmp(t[i], topic) == 0)
			return i;
	return -1;
}

/* Errors that sending the same record again can never fix. */
static bool too_large(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

static int redeliver_truncated(ls_pipeline *p, const rd_kafka_message_t *m);

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	ls_pipeline *p = opaque;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	bool dead_letter = m->_private == &dlq_tag;
	if (too_large(m->err)) {
		/* the broker's limit is below the producer's: a dead letter
		 * goes again, smaller; a ScoreChange is skipped for good */
		if (dead_letter && redeliver_truncated(p, m) == 0)
			return;
		if (!dead_letter) {
			p->dr_skipped++;
			ls_log(LS_LOG_WARN, "pipeline", "score change too large for the broker, skipped",
			       "error=%s bytes=%zu", rd_kafka_err2name(m->err), m->len);
			return;
		}
	}
	p->dlq_delivery_errors++;
	ls_log(LS_LOG_ERROR, "pipeline",
	       dead_letter ? "dead letter not delivered" : "score change not delivered",
	       "error=%s", rd_kafka_err2name(m->err));
}

/* Remember next_offset for (topic, partition); batches touch few partitions. */
static int note_offset(ls_pipeline *p, const char *topic, int32_t partition,
		       int64_t next)
{
	for (size_t i = 0; i < p->n_offsets; i++) {
		ls_store_offset *o = &p->offsets[i];
		if (o->partition == partition && strcmp(o->topic, topic) == 0) {
			if (next > o->next_offset)
				o->next_offset = next;
			return 0;
		}
	}
	if (reserve((void **)&p->offsets, &p->cap_offsets, p->n_offsets + 1,
		    sizeof *p->offsets) != 0 ||
	    reserve((void **)&p->offset_topics, &p->cap_offset_topics,
		    p->n_offsets + 1, sizeof *p->offset_topics) != 0)
		return -1;
	char *copy = strdup(topic);
	if (copy == NULL)
		return -1;
	p->offset_topics[p->n_offsets] = copy;
	p->offsets[p->n_offsets++] = (ls_store_offset){ copy, partition, next };
	return 0;
}

/* Bytes librdkafka counts for a header: its name, value and two varints. */
static size_t header_size(const char *name, size_t value_len)
{
	return strlen(name) + value_len + 10;
}

/* The longest a dead letter's key and value may be together. */
static size_t dlq_room(const ls_pipeline *p, size_t headers)
{
	return p->dlq_max > headers + DLQ_FRAMING ? p->dlq_max - headers - DLQ_FRAMING : 0;
}

/*
 * Cut key and value to room: the key first to pipeline.max_id_bytes (past
 * that it is no id of ours), then the value to what is left. Returns the
 * ls.truncated header value, or NULL when both fit whole.
 */
static const char *fit_dead_letter(size_t room, size_t max_id, size_t *klen, size_t *vlen)
{
	if (*klen + *vlen <= room)
		return NULL;
	bool cut_key = false;
	if (*klen > max_id) {
		*klen = max_id;
		cut_key = true;
	}
	if (*klen > room) {
		*klen = room;
		cut_key = true;
	}
	bool cut_value = false;
	if (*klen + *vlen > room) {
		*vlen = room - *klen;
		cut_value = true;
	}
	return cut_key && cut_value ? "key,value" : cut_key ? "key" : cut_value ? "value" : NULL;
}

static void log_dead_letter(ls_pipeline *p, const char *topic, int32_t partition,
			    int64_t offset, const char *reason, const char *detail,
			    const char *truncated)
{
	uint64_t rate = (uint64_t)p->cfg->pipeline.dead_letter_log_rate, left_out = 0;
	bool log = ls_log_limit_allow(&p->dlq_log, ls_clock_mono_ms(), rate, &left_out);
	if (left_out > 0)
		ls_log(LS_LOG_WARN, "pipeline", "dead letters not logged",
		       "suppressed=%" PRIu64 " rate=%" PRIu64, left_out, rate);
	if (!log)
		return;
	char q[400];
	ls_log(LS_LOG_WARN, "pipeline", "dead-lettered",
	       "topic=%s partition=%" PRId32 " offset=%" PRId64 " reason=%s detail=%s truncated=%s",
	       topic, partition, offset, reason, ls_log_quote(detail, q, sizeof q),
	       truncated != NULL ? truncated : "no");
}

/*
 * Queue a dead letter of m. Anything about the record itself is
 * permanent and handled here (a copy too large to produce is truncated),
 * so only a producer that stays full for 30 s or a broken producer fails
 * (-1): that is transient, the batch is replayed.
 */
static int dead_letter(ls_pipeline *p, const rd_kafka_message_t *m,
		       const char *topic, int reason, const char *detail)
{
	char part[16], off[24], vsize[24], ksize[24], det[256];
	const char *rname = ls_pipeline_dlq_reason_name(reason);
	size_t klen = m->key != NULL ? m->key_len : 0, vlen = m->payload != NULL ? m->len : 0;
	snprintf(part, sizeof part, "%" PRId32, m->partition);
	snprintf(off, sizeof off, "%" PRId64, m->offset);
	snprintf(vsize, sizeof vsize, "%zu", vlen);
	snprintf(ksize, sizeof ksize, "%zu", klen);
	snprintf(det, sizeof det, "%s", detail);
	size_t headers = header_size("ls.reason", strlen(rname)) +
			 header_size("ls.detail", strlen(det)) +
			 header_size("ls.source.topic", strlen(topic)) +
			 header_size("ls.source.partition", strlen(part)) +
			 header_size("ls.source.offset", strlen(off)) +
			 header_size("ls.truncated", 9) +
			 header_size("ls.original_size", strlen(vsize)) +
			 header_size("ls.original_key_size", strlen(ksize));
	size_t room = dlq_room(p, headers);
	size_t max_id = (size_t)p->cfg->pipeline.max_id_bytes;
	int64_t full_since = 0;
	for (;;) {
		size_t k = klen, v = vlen;
		const char *cut = fit_dead_letter(room, max_id, &k, &v);
		rd_kafka_headers_t *h = rd_kafka_headers_new(8);
		if (h == NULL)
			return -1;
		rd_kafka_header_add(h, "ls.reason", -1, rname, -1);
		rd_kafka_header_add(h, "ls.detail", -1, det, -1);
		rd_kafka_header_add(h, "ls.source.topic", -1, topic, -1);
		rd_kafka_header_add(h, "ls.source.partition", -1, part, -1);
		rd_kafka_header_add(h, "ls.source.offset", -1, off, -1);
		if (cut != NULL) {
			rd_kafka_header_add(h, "ls.truncated", -1, cut, -1);
			rd_kafka_header_add(h, "ls.original_size", -1, vsize, -1);
			if (k < klen)
				rd_kafka_header_add(h, "ls.original_key_size", -1, ksize, -1);
		}
		rd_kafka_resp_err_t e = rd_kafka_producev(
			p->dlq, RD_KAFKA_V_TOPIC(p->cfg->kafka.topics.dead_letter),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(m->key, k), RD_KAFKA_V_VALUE(m->payload, v),
			RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(&dlq_tag), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			p->dlq_in_batch++;
			p->st.dead_lettered[reason]++;
			if (cut != NULL)
				p->st.dead_letters_truncated++;
			log_dead_letter(p, topic, m->partition, m->offset, rname, det, cut);
			return 0;
		}
		rd_kafka_headers_destroy(h); /* still ours when producev fails */
		if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && room > 0) {
			room /= 2; /* our reckoning of librdkafka's was short */
			continue;
		}
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			/* transient: let deliveries drain the queue */
			int64_t now = ls_clock_mono_ms();
			if (full_since == 0)
				full_since = now;
			if (now - full_since < 30000) {
				rd_kafka_poll(p->dlq, 100);
				continue;
			}
		}
		ls_log(LS_LOG_ERROR, "pipeline", "cannot queue dead letter",
		       "error=%s", rd_kafka_err2name(e));
		return -1;
	}
}

/*
 * The broker refused dead letter m as too large (its limit is below the
 * producer's message.max.bytes): send it again with the value cut to a
 * quarter and the key to pipeline.max_id_bytes, its headers kept. Called
 * from a delivery report; the flush that served it waits for this one
 * too. 0, or -1 when it cannot get any smaller or cannot be queued.
 */
static int redeliver_truncated(ls_pipeline *p, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *old = NULL;
	if (rd_kafka_message_headers(m, &old) != RD_KAFKA_RESP_ERR_NO_ERROR)
		old = NULL;
	size_t max_id = (size_t)p->cfg->pipeline.max_id_bytes;
	size_t klen = m->key != NULL ? m->key_len : 0, vlen = m->len / 4;
	bool cut_key = klen > max_id;
	if (cut_key)
		klen = max_id;
	if (vlen == m->len && !cut_key)
		return -1;
	const void *val;
	size_t sz;
	bool first_cut = old == NULL || rd_kafka_header_get_last(old, "ls.truncated", &val, &sz) !=
						RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_headers_t *h = old != NULL ? rd_kafka_headers_copy(old) : rd_kafka_headers_new(8);
	if (h == NULL)
		return -1;
	char n[24];
	/* the sizes of the original record, if an earlier cut has not said them */
	if (rd_kafka_header_get_last(h, "ls.original_size", &val, &sz) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(n, sizeof n, "%zu", m->len);
		rd_kafka_header_add(h, "ls.original_size", -1, n, -1);
	}
	bool key_was_cut = rd_kafka_header_get_last(h, "ls.original_key_size", &val, &sz) ==
			   RD_KAFKA_RESP_ERR_NO_ERROR;
	if (cut_key && !key_was_cut) {
		snprintf(n, sizeof n, "%zu", m->key_len);
		rd_kafka_header_add(h, "ls.original_key_size", -1, n, -1);
	}
	rd_kafka_header_remove(h, "ls.truncated");
	rd_kafka_header_add(h, "ls.truncated", -1,
			    cut_key || key_was_cut ? "key,value" : "value", -1);
	rd_kafka_resp_err_t e = rd_kafka_producev(
		p->dlq, RD_KAFKA_V_TOPIC(p->cfg->kafka.topics.dead_letter),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, klen),
		RD_KAFKA_V_VALUE(m->payload, vlen), RD_KAFKA_V_HEADERS(h),
		RD_KAFKA_V_OPAQUE(&dlq_tag), RD_KAFKA_V_END);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_headers_destroy(h);
		return -1;
	}
	if (first_cut)
		p->st.dead_letters_truncated++;
	ls_log(LS_LOG_WARN, "pipeline", "dead letter too large for the broker, sent truncated",
	       "error=%s bytes=%zu now=%zu", rd_kafka_err2name(m->err), m->len, vlen);
	return 0;
}

/* Release the batch's messages and decoded events (not pending state). */
static void drop_messages(ls_pipeline *p)
{
	for (size_t i = 0; i < p->n_msgs; i++)
		rd_kafka_message_destroy(p->msgs[i]);
	p->n_msgs = 0;
	p->n_events = 0;
	p->n_misses = 0;
	ls_arena_reset(&p->arena);
}

/* Forget what is pending since the last commit (after commit or failure). */
static void bops_clear(ls_pipeline *p)
{
	for (size_t i = 0; i < p->n_bops; i++)
		free(p->bops[i].buf);
	p->n_bops = 0;
}

static void reset_pending(ls_pipeline *p)
{
	bops_clear(p);
	for (size_t i = 0; i < p->n_offsets; i++)
		free(p->offset_topics[i]);
	p->n_offsets = 0;
	p->n_dirty = 0;
	p->dlq_in_batch = 0;
	p->produced_in_batch = 0;
	for (size_t i = 0; i < p->n_stale; i++)
		free(p->stale[i]);
	p->n_stale = 0;
}

static double since_s(int64_t t0_ns);
static void sweep_forget_all(ls_pipeline *p);
static void sweep_committed(ls_pipeline *p);
static void sweep_lower(ls_pipeline *p, int32_t part, size_t set, int64_t due);
static void align_reset(ls_pipeline *p, bool resume);

/* Forget all work since the last commit: leads, learning, sweeps. */
static void discard_uncommitted(ls_pipeline *p)
{
	reset_pending(p);
	ls_cache_clear(&p->cache);
	ls_scorer_discard(p->scorer);
	sweep_forget_all(p);
}

/*
 * Throw the batch away and wait for Redis: cached leads may hold
 * uncommitted changes, and the consumer has moved past uncommitted
 * offsets, so both go back to what Redis holds.
 */
static void fail_batch(ls_pipeline *p, const char *why)
{
	char q[600];
	drop_messages(p);
	align_reset(p, false); /* everything is paused below, resync resumes it */
	discard_uncommitted(p);
	if (!p->need_resync) {
		ls_log(LS_LOG_WARN, "pipeline", "batch not committed, pausing consumption",
		       "reason=%s failed_in_row=%" PRIu64, ls_log_quote(why, q, sizeof q),
		       p->st.failed_batches_in_row + 1);
		p->st.redis_failures++;
	}
	p->st.failed_batches_in_row++;
	p->last_fail_ms = ls_clock_mono_ms();
	/* what was read waits to be read again */
	if (p->waiting_since_ms == 0)
		p->waiting_since_ms = ls_clock_mono_ms();
	p->need_resync = true;
	p->retry_at_ms = ls_clock_mono_ms() + p->backoff_ms;
	/* Pausing inside a rebalance callback would act on the old
	 * assignment; resync seeks whatever is assigned afterwards. */
	if (!p->in_rebalance) {
		rd_kafka_topic_partition_list_t *parts = NULL;
		if (rd_kafka_assignment(p->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		    parts != NULL) {
			rd_kafka_pause_partitions(p->rk, parts);
			rd_kafka_topic_partition_list_destroy(parts);
		}
	}
}

/*
 * Event-time alignment of the input topics.
 *
 * Why: the five topics are read independently, and librdkafka fetches
 * each partition by bytes, so whenever there is a backlog (a start after
 * downtime, a host slower than the producers) a topic of small records
 * runs far ahead of one of large records: a fetch of leads.outcome covers
 * days of event time while one of leads.web covers minutes. Outcomes were
 * then learned before the lead's earlier web and email events had been
 * read (examples missing their strongest features), and the sweeps ran on
 * a partition event time that the slow topics had not reached.
 *
 * How: per partition number, the horizon is the oldest of the newest
 * record timestamps read from the co-partitioned input topics that still
 * have records to read (the cached high watermark is past what we read);
 * a topic with nothing left to read does not hold the others back. A
 * record stamped after its partition's horizon is held back, with every
 * later record of its topic-partition (their order is kept), and offered
 * again at the next step; its offset is not committed before it is
 * applied, so a crash replays it. The topic-partition that sets the
 * horizon never holds anything back, so reading goes on. An assigned
 * topic-partition that nothing has been read from yet holds the others
 * back from the start (at -1) unless its high watermark is known to be at
 * its start offset: otherwise the first fetch to arrive would decide.
 * Live, a topic caught up holds nothing back, and one a few records behind
 * holds the newer records of the others for a step. Held records are
 * bounded: past batch_size of them the topic-partitions they came from
 * are paused until their records are released. A partition number whose
 * horizon has not moved for pipeline.align_stall while it holds records back is
 * not aligned until it moves again (a topic whose partition cannot be
 * fetched, or whose records were deleted, must not stop the others).
 *
 * Within a batch, records are then applied in timestamp order (each
 * topic-partition's order kept), so a lead's events in the same batch as
 * its outcome are applied before the outcome is learned.
 *
 * Timestamps are the Kafka record timestamps (producers set the event
 * time, as leadscore-sim does, or the log append time, which is the order
 * they were written); a record without one is never held.
 */

static tp_clock *tp_clock_of(ls_pipeline *p, int src, int32_t part, bool grow)
{
	if (src < 0 || part < 0)
		return NULL;
	size_t need = (size_t)part + 1;
	if (need > p->n_clock_parts) {
		if (!grow)
			return NULL;
		tp_clock *c = realloc(p->clocks, need * LS_SOURCE__COUNT * sizeof *c);
		if (c == NULL)
			return NULL;
		p->clocks = c;
		part_horizon *h = realloc(p->horizons, need * sizeof *h);
		if (h == NULL)
			return NULL;
		p->horizons = h;
		for (size_t i = p->n_clock_parts * LS_SOURCE__COUNT;
		     i < need * LS_SOURCE__COUNT; i++)
			c[i] = (tp_clock){ -1, -1, 0, false, false, false };
		for (size_t i = p->n_clock_parts; i < need; i++)
			h[i] = (part_horizon){ INT64_MAX, 0 };
		p->n_clock_parts = need;
	}
	return &p->clocks[(size_t)part * LS_SOURCE__COUNT + (size_t)src];
}

static const char *source_topic(const ls_config *cfg, int src)
{
	switch (src) {
	case LS_SOURCE_EMAIL:
		return cfg->kafka.topics.email;
	case LS_SOURCE_WEB:
		return cfg->kafka.topics.web;
	case LS_SOURCE_CALL:
		return cfg->kafka.topics.call;
	case LS_SOURCE_OUTCOME:
		return cfg->kafka.topics.outcome;
	default:
		return cfg->kafka.topics.profile;
	}
}

/*
 * Resume what alignment paused and no longer holds records of; with
 * pause, also pause every topic-partition that holds records back.
 */
static void align_pause(ls_pipeline *p, bool pause)
{
	rd_kafka_topic_partition_list_t *on = rd_kafka_topic_partition_list_new(4);
	rd_kafka_topic_partition_list_t *off = rd_kafka_topic_partition_list_new(4);
	if (on == NULL || off == NULL)
		goto out;
	for (size_t part = 0; part < p->n_clock_parts; part++)
		for (int src = 0; src < LS_SOURCE__COUNT; src++) {
			tp_clock *c = &p->clocks[part * LS_SOURCE__COUNT + (size_t)src];
			bool want = c->holding && (pause || c->paused);
			if (want == c->paused)
				continue;
			rd_kafka_topic_partition_list_add(want ? off : on,
							  source_topic(p->cfg, src),
							  (int32_t)part);
			c->paused = want;
		}
	if (off->cnt > 0)
		rd_kafka_pause_partitions(p->rk, off);
	if (on->cnt > 0)
		rd_kafka_resume_partitions(p->rk, on);
out:
	if (on != NULL)
		rd_kafka_topic_partition_list_destroy(on);
	if (off != NULL)
		rd_kafka_topic_partition_list_destroy(off);
}

/*
 * Forget what alignment knows: the held records (their offsets were not
 * committed; whoever reads the partition next starts before them) and the
 * clocks. resume: resume what alignment paused (on revocation; after a
 * failed batch resync resumes everything itself).
 */
static void align_reset(ls_pipeline *p, bool resume)
{
	for (size_t i = 0; i < p->n_held; i++)
		rd_kafka_message_destroy(p->held[i]);
	p->n_held = 0;
	if (resume) {
		for (size_t i = 0; i < p->n_clock_parts * LS_SOURCE__COUNT; i++)
			p->clocks[i].holding = false;
		align_pause(p, false);
	}
	for (size_t i = 0; i < p->n_clock_parts * LS_SOURCE__COUNT; i++)
		p->clocks[i] = (tp_clock){ -1, -1, 0, false, false, false };
	for (size_t i = 0; i < p->n_clock_parts; i++)
		p->horizons[i] = (part_horizon){ INT64_MAX, 0 };
}

/*
 * parts are ours from the offsets in their elements (stored in Redis, or
 * RD_KAFKA_OFFSET_BEGINNING): alignment waits for what they hold. 0, or
 * -1 out of memory.
 */
static int align_assigned(ls_pipeline *p,
			  const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		int src = topic_source(p->cfg, e->topic);
		if (src < 0 || e->partition < 0)
			continue;
		tp_clock *c = tp_clock_of(p, src, e->partition, true);
		if (c == NULL)
			return -1;
		c->newest = -1;
		c->next = e->offset >= 0 ? e->offset : 0;
		c->assigned = true;
	}
	return 0;
}

typedef struct timed_msg {
	int64_t key; /* timestamp, made non-decreasing per topic-partition */
	size_t idx;
	rd_kafka_message_t *m;
} timed_msg;

static int cmp_timed(const void *a, const void *b)
{
	const timed_msg *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int64_t msg_ts(const rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(m, &tt);
	return tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

/*
 * p->msgs (the records held at the last step first, then the new ones, in
 * the order read): move the records read ahead of their partition's
 * horizon to p->held and put the rest in timestamp order. 0, or -1 out of
 * memory (nothing moved).
 */
static int align_batch(ls_pipeline *p)
{
	size_t n = p->n_msgs;
	if (n == 0)
		return 0;
	int *src = malloc(n * sizeof *src);
	timed_msg *t = malloc(n * sizeof *t);
	if (src == NULL || t == NULL ||
	    reserve((void **)&p->held, &p->cap_held, n, sizeof *p->held) != 0) {
		free(src);
		free(t);
		return -1;
	}
	/* what was read: newest timestamp and next offset per topic-partition */
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = p->msgs[i];
		src[i] = topic_source(p->cfg, rd_kafka_topic_name(m->rkt));
		tp_clock *c = tp_clock_of(p, src[i], m->partition, true);
		if (src[i] >= 0 && c == NULL) {
			free(src);
			free(t);
			return -1;
		}
		if (c == NULL)
			continue;
		int64_t ts = msg_ts(m);
		if (ts > c->newest)
			c->newest = ts;
		if (m->offset + 1 > c->next)
			c->next = m->offset + 1;
	}
	/* the horizon of each partition number: INT64_MAX holds nothing */
	int64_t *horizon = malloc((p->n_clock_parts ? p->n_clock_parts : 1) *
				  sizeof *horizon);
	if (horizon == NULL) {
		free(src);
		free(t);
		return -1;
	}
	int64_t now = ls_clock_mono_ms();
	for (size_t part = 0; part < p->n_clock_parts; part++) {
		horizon[part] = INT64_MAX;
		for (int s = 0; s < LS_SOURCE__COUNT; s++) {
			tp_clock *c = &p->clocks[part * LS_SOURCE__COUNT + (size_t)s];
			c->holding = false;
			if (!c->assigned && c->newest < 0)
				continue; /* not ours */
			int64_t lo = -1, hi = -1;
			if (rd_kafka_get_watermark_offsets(p->rk, source_topic(p->cfg, s),
							   (int32_t)part, &lo, &hi) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR)
				hi = -1;
			bool behind = hi >= 0 ? c->next >= 0 && hi > c->next
					      : c->newest < 0; /* not heard from yet */
			if (behind && c->newest < horizon[part])
				horizon[part] = c->newest;
		}
		part_horizon *ph = &p->horizons[part];
		if (horizon[part] != ph->at) {
			ph->at = horizon[part];
			ph->moved_ms = now;
		}
	}
	size_t kept = 0, held = 0;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = p->msgs[i];
		tp_clock *c = src[i] >= 0 ? tp_clock_of(p, src[i], m->partition, false)
					  : NULL;
		int64_t ts = msg_ts(m);
		if (c != NULL && (c->holding || (ts >= 0 && ts > horizon[m->partition])) &&
		    now - p->horizons[m->partition].moved_ms < p->cfg->pipeline.align_stall_ms) {
			c->holding = true;
			p->held[held++] = m;
			continue;
		}
		t[kept] = (timed_msg){ ts, i, m };
		kept++;
	}
	free(horizon);
	/* timestamp order across topic-partitions, offset order within one:
	 * the key is the running maximum of each topic-partition's stamps */
	for (size_t i = 0; i < p->n_clock_parts * LS_SOURCE__COUNT; i++)
		p->clocks[i].run = INT64_MIN;
	for (size_t i = 0; i < kept; i++) {
		int s = src[t[i].idx];
		tp_clock *c = s >= 0 ? tp_clock_of(p, s, t[i].m->partition, false) : NULL;
		if (c == NULL)
			continue;
		if (t[i].key > c->run)
			c->run = t[i].key;
		t[i].key = c->run;
	}
	qsort(t, kept, sizeof *t, cmp_timed);
	for (size_t i = 0; i < kept; i++)
		p->msgs[i] = t[i].m;
	p->n_msgs = kept;
	p->n_held = held;
	free(src);
	free(t);
	/* bounded: pause what holds records back once there are many */
	align_pause(p, held >= (size_t)p->cfg->pipeline.batch_size);
	return 0;
}

/* The partition's event-time watermark: what label timeouts are due by. */
static int note_part_wm(ls_pipeline *p, int32_t partition, int64_t ts)
{
	if (partition < 0)
		return 0;
	size_t need = (size_t)partition + 1;
	if (need > p->n_part_wm) {
		int64_t *w = realloc(p->part_wm, need * sizeof *w);
		if (w == NULL)
			return -1;
		for (size_t i = p->n_part_wm; i < need; i++)
			w[i] = -1;
		p->part_wm = w;
		p->n_part_wm = need;
	}
	if (ts > p->part_wm[partition])
		p->part_wm[partition] = ts;
	return 0;
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
	size_t max = (size_t)p->cfg->pipeline.max_id_bytes;
	const char *name[6] = { "event_id", "lead_id", NULL, NULL, NULL, NULL };
	const char *id[6] = { ev->event_id, ev->lead_id, NULL, NULL, NULL, NULL };
	if (ev->source == LS_SOURCE_EMAIL) {
		name[2] = "campaign_id", id[2] = ev->u.email.campaign_id;
		name[3] = "variant_id", id[3] = ev->u.email.variant_id;
		name[4] = "decision_id", id[4] = ev->u.email.decision_id;
	} else if (ev->source == LS_SOURCE_WEB) {
		name[2] = "session_id", id[2] = ev->u.web.session_id;
	}
	for (int i = 0; i < 6; i++) {
		size_t n = id[i] != NULL ? strlen(id[i]) : 0;
		if (n > max) {
			snprintf(detail, len, "%s is %zu bytes (pipeline.max_id_bytes %zu)", name[i],
				 n, max);
			return true;
		}
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
	int64_t skew = p->cfg->pipeline.max_future_skew_ms;
	for (size_t i = 0; i < p->n_msgs; i++) {
		rd_kafka_message_t *m = p->msgs[i];
		const char *topic = rd_kafka_topic_name(m->rkt);
		if (note_offset(p, topic, m->partition, m->offset + 1) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		int src = topic_source(p->cfg, topic);
		if (src < 0)
			continue;
		if (reserve((void **)&p->events, &p->cap_events, p->n_events + 1,
			    sizeof *p->events) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		batch_event *be = &p->events[p->n_events];
		ls_codec_error cerr;
		int rc = ls_codec_decode(p->codec, (ls_source)src, m->payload,
					 m->len, &p->arena, &be->ev, &cerr);
		if (rc == LS_CODEC_INTERNAL) {
			snprintf(err, errlen, "codec: %s", cerr.detail);
			return -1;
		}
		if (rc != 0) {
			if (dead_letter(p, m, topic, rc, cerr.detail) != 0) {
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
			if (dead_letter(p, m, topic, LS_DLQ_FUTURE_TIMESTAMP, d) != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		char d[160];
		if (id_too_long(p, &be->ev, m, d, sizeof d)) {
			if (dead_letter(p, m, topic, LS_DLQ_ID_TOO_LONG, d) != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		size_t idlen = strlen(be->ev.lead_id);
		if (m->key == NULL || m->key_len != idlen ||
		    memcmp(m->key, be->ev.lead_id, idlen) != 0) {
			if (dead_letter(p, m, topic, LS_DLQ_KEY_MISMATCH,
					"message key is not the record's lead_id") != 0) {
				snprintf(err, errlen, "dead-letter queue full");
				return -1;
			}
			continue;
		}
		bool created;
		be->entry = ls_cache_put(&p->cache, be->ev.lead_id, &created);
		if (be->entry == NULL || note_part_wm(p, m->partition, be->ev.ts) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		be->entry->partition = m->partition;
		if (created) {
			if (reserve((void **)&p->misses, &p->cap_misses,
				    p->n_misses + 1, sizeof *p->misses) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			p->misses[p->n_misses++] = be->entry;
		}
		p->st.consumed[src]++;
		int ti = event_type_index(&be->ev);
		if (ti >= 0 && ti < LS_PIPELINE_MAX_TYPES)
			p->st.consumed_type[src][ti]++;
		p->n_events++;
	}
	return 0;
}

/* Load every lead the cache did not have, in one round trip. */
static int load_misses(ls_pipeline *p, char *err, size_t errlen)
{
	if (p->n_misses == 0)
		return 0;
	size_t cap = p->cap_misses;
	/* miss_ids and miss_blobs follow misses' capacity */
	const char **ids = realloc(p->miss_ids, cap * sizeof *ids);
	if (ids == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->miss_ids = ids;
	ls_store_blob *blobs = realloc(p->miss_blobs, cap * sizeof *blobs);
	if (blobs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->miss_blobs = blobs;
	for (size_t i = 0; i < p->n_misses; i++)
		ids[i] = p->misses[i]->lead_id;
	char serr[512];
	int64_t t0 = ls_clock_mono_ns();
	int lrc = ls_store_load(p->store, ids, p->n_misses, blobs, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, since_s(t0));
	if (lrc != 0) {
		snprintf(err, errlen, "redis load: %s", serr);
		return -1;
	}
	p->st.cache_loads += p->n_misses;
	for (size_t i = 0; i < p->n_misses; i++) {
		ls_cache_entry *e = p->misses[i];
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

static int mark_dirty(ls_pipeline *p, ls_cache_entry *e)
{
	if (e->dirty)
		return 0;
	if (reserve((void **)&p->dirty, &p->cap_dirty, p->n_dirty + 1,
		    sizeof *p->dirty) != 0)
		return -1;
	e->dirty = true;
	p->dirty[p->n_dirty++] = e;
	return 0;
}

/*
 * Rescore every lead an applied event touched, once per batch, after the
 * whole batch is applied: a lead with ten events in a batch gets one
 * score, caused by its last event.
 */
static int score_touched(ls_pipeline *p, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->n_touched; i++) {
		ls_cache_entry *e = p->touched[i];
		bool changed = false;
		size_t produced = 0;
		if (ls_scorer_score(p->scorer, e->lead_id, e->lead,
				    LS_LEAD_AT_WATERMARK, e->cause, &changed,
				    &produced, err, errlen) != 0)
			return -1;
		e->scored_at = ls_lead_watermark(e->lead);
		e->rescore_dirty = true;
		if (mark_dirty(p, e) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		p->produced_in_batch += produced;
		if (changed && mark_dirty(p, e) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	p->n_touched = 0;
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
	if (em->decision_id == NULL || p->cfg->campaigns.n == 0)
		return 0;
	if (reserve((void **)&p->bops, &p->cap_bops, p->n_bops + 1, sizeof *p->bops) != 0)
		return -1;
	size_t cap = 2048 + 3 * strlen(em->decision_id) + strlen(ls_store_key_prefix(p->store));
	bandit_op *b = &p->bops[p->n_bops];
	memset(b, 0, sizeof *b);
	b->buf = malloc(cap);
	if (b->buf == NULL)
		return -1;
	ls_campaign_settings campaigns = { .specs = p->cfg->campaigns.specs,
					   .n_specs = p->cfg->campaigns.n,
					   .key_prefix = ls_store_key_prefix(p->store) };
	int rc = ls_campaign_event_op(&campaigns, em, ev->ts, &b->op, b->buf, cap);
	if (rc != 1) {
		free(b->buf);
		return 0; /* nothing to do (or an id too long to be ours) */
	}
	b->activation = em->type == LS_EMAIL_SENT;
	p->n_bops++;
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
	if (e->touched_batch != p->batch_no || e->cause == NULL ||
	    !ls_scorer_is_label(p->scorer, e->lead, ev))
		return 0;
	bool changed = false;
	size_t produced = 0;
	if (ls_scorer_score(p->scorer, e->lead_id, e->lead, LS_LEAD_AT_WATERMARK,
			    e->cause, &changed, &produced, err, errlen) != 0)
		return -1;
	p->produced_in_batch += produced;
	if (changed && mark_dirty(p, e) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int apply_events(ls_pipeline *p, char *err, size_t errlen)
{
	p->batch_no++;
	p->n_touched = 0;
	for (size_t i = 0; i < p->n_events; i++) {
		batch_event *be = &p->events[i];
		int src = (int)be->ev.source;
		bool changed = false;
		if (score_before_label(p, be->entry, &be->ev, err, errlen) != 0)
			return -1;
		if (ls_scorer_before_apply(p->scorer, be->entry->lead, &be->ev,
					   &changed, err, errlen) != 0)
			return -1;
		if (changed) {
			be->entry->due_dirty = true;
			if (mark_dirty(p, be->entry) != 0) {
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
			if (mark_dirty(p, be->entry) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			be->entry->cause = &be->ev;
			if (be->entry->touched_batch != p->batch_no) {
				if (reserve((void **)&p->touched, &p->cap_touched,
					    p->n_touched + 1, sizeof *p->touched) != 0) {
					snprintf(err, errlen, "out of memory");
					return -1;
				}
				be->entry->touched_batch = p->batch_no;
				p->touched[p->n_touched++] = be->entry;
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
	int64_t every = p->cfg->scoring.rescore_interval_ms;
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
	size_t off = p->opbuf.len;
	if (ls_buf_append(&p->opbuf, s, len) != 0 ||
	    ls_buf_append(&p->opbuf, "", 1) != 0)
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

static int build_ops(ls_pipeline *p, const ls_store_append *appends,
		     size_t n_appends, size_t *n_ops, char *err, size_t errlen)
{
	size_t nm = ls_scorer_n_models(p->scorer);
	size_t max = n_appends + p->n_dirty * (nm + 1) + p->n_stale;
	op_off *oo = calloc(max ? max : 1, sizeof *oo);
	if (oo == NULL ||
	    reserve((void **)&p->ops, &p->cap_ops, max ? max : 1, sizeof *p->ops) != 0) {
		free(oo);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ls_buf_reset(&p->opbuf);
	size_t n = 0;
	for (size_t i = 0; i < n_appends; i++)
		p->ops[n++] = appends[i];
	size_t first = n;
	char key[600], num[24];
	for (size_t i = 0; i < p->n_dirty; i++) {
		ls_cache_entry *e = p->dirty[i];
		if (!e->due_dirty)
			continue;
		for (size_t j = 0; j < nm; j++) {
			if (ls_scorer_timeout_ms(p->scorer, j) <= 0 ||
			    ls_scorer_due_key(p->scorer, j, e->partition, key, sizeof key) != 0)
				continue;
			int64_t deadline;
			bool due = ls_scorer_due(p->scorer, e->lead, j, &deadline);
			if (due)
				sweep_lower(p, e->partition, j, deadline);
			snprintf(num, sizeof num, "%" PRId64, due ? deadline : 0);
			oo[n] = (op_off){ op_str(p, key, strlen(key)),
					  due ? op_str(p, num, strlen(num)) : -2,
					  op_str(p, e->lead_id, strlen(e->lead_id)) };
			p->ops[n++] = (ls_store_append){ .cmd = due ? "ZADD" : "ZREM" };
		}
	}
	for (size_t i = 0; i < p->n_dirty && nm > 0; i++) {
		ls_cache_entry *e = p->dirty[i];
		if (!e->rescore_dirty || rescore_key(p, e->partition, key, sizeof key) != 0)
			continue;
		int64_t next = 0;
		bool keep = rescore_next(p, e, &next);
		if (keep)
			sweep_lower(p, e->partition, SWEEP_RESCORE, next);
		snprintf(num, sizeof num, "%" PRId64, next);
		oo[n] = (op_off){ op_str(p, key, strlen(key)),
				  keep ? op_str(p, num, strlen(num)) : -2,
				  op_str(p, e->lead_id, strlen(e->lead_id)) };
		p->ops[n++] = (ls_store_append){ .cmd = keep ? "ZADD" : "ZREM" };
	}
	for (size_t i = 0; i < p->n_stale; i++) {
		size_t kl = strlen(p->stale[i]);
		const char *member = p->stale[i] + kl + 1;
		oo[n] = (op_off){ op_str(p, p->stale[i], kl), -2,
				  op_str(p, member, strlen(member)) };
		p->ops[n++] = (ls_store_append){ .cmd = "ZREM" };
	}
	bool oom = false;
	for (size_t i = first; i < n; i++) {
		if (oo[i].key < 0 || oo[i].data < 0 || oo[i].arg == -1) {
			oom = true;
			break;
		}
		p->ops[i].key = (const char *)p->opbuf.data + oo[i].key;
		p->ops[i].arg = oo[i].arg >= 0 ? (const char *)p->opbuf.data + oo[i].arg : NULL;
		p->ops[i].data = p->opbuf.data + oo[i].data;
		p->ops[i].len = strlen((const char *)p->ops[i].data);
	}
	free(oo);
	if (oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*n_ops = n;
	return 0;
}

static int commit(ls_pipeline *p, char *err, size_t errlen)
{
	if (p->dlq_in_batch > 0 || p->produced_in_batch > 0) {
		uint64_t before = p->dlq_delivery_errors;
		rd_kafka_resp_err_t e = rd_kafka_flush(p->dlq, 10000);
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR || p->dlq_delivery_errors != before) {
			p->st.dlq_failures++;
			snprintf(err, errlen, "dead letters or scores not delivered: %s",
				 rd_kafka_err2name(e));
			return -1;
		}
	}
	/* Encode all dirty leads into one buffer first: the store reads the
	 * blobs during the call, and realloc may move the buffer. */
	size_t cap_w = p->cap_dirty;
	ls_store_write *w = realloc(p->writes, (cap_w ? cap_w : 1) * sizeof *w);
	size_t *off = realloc(p->write_off, (cap_w ? cap_w : 1) * sizeof *off);
	if (w == NULL || off == NULL) {
		if (w != NULL)
			p->writes = w;
		if (off != NULL)
			p->write_off = off;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->writes = w;
	p->write_off = off;
	ls_buf_reset(&p->blobs);
	for (size_t i = 0; i < p->n_dirty; i++) {
		int rc = ls_lead_encode(p->dirty[i]->lead, &p->lead_conf, &p->scratch);
		if (rc != 0) {
			snprintf(err, errlen, "encode: %s", ls_lead_result_str(rc));
			return -1;
		}
		off[i] = p->blobs.len;
		if (ls_buf_append(&p->blobs, p->scratch.data, p->scratch.len) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		w[i].lead_id = p->dirty[i]->lead_id;
		w[i].len = p->scratch.len;
	}
	for (size_t i = 0; i < p->n_dirty; i++)
		w[i].data = p->blobs.data + off[i];
	const ls_store_append *appends;
	size_t n_appends, n_ops;
	if (ls_scorer_commit_appends(p->scorer, &appends, &n_appends, err, errlen) != 0 ||
	    build_ops(p, appends, n_appends, &n_ops, err, errlen) != 0)
		return -1;
	if (p->n_bops > 0) {
		if (reserve((void **)&p->ops, &p->cap_ops, n_ops + p->n_bops, sizeof *p->ops) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < p->n_bops; i++)
			p->ops[n_ops++] = (ls_store_append){
				.argc = p->bops[i].op.argc, .argv = p->bops[i].op.argv,
				.argvlen = p->bops[i].op.argvlen, .result = &p->bops[i].result };
	}
	char serr[512];
	int64_t t0 = ls_clock_mono_ns();
	int crc = ls_store_commit_log(p->store, w, p->n_dirty, p->ops, n_ops,
				      p->offsets, p->n_offsets, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, since_s(t0));
	if (crc != 0) {
		snprintf(err, errlen, "redis commit: %s", serr);
		return -1;
	}
	return 0;
}

/* Everything read has been committed (or is held back for alignment,
 * which is progress too): nothing has been waiting since then. */
static void committed_progress(ls_pipeline *p)
{
	p->st.failed_batches_in_row = 0;
	p->waiting_since_ms = p->n_held > 0 ? p->last_commit_ms : 0;
}

/*
 * Write what is pending (dirty leads, offsets) in one transaction. Between
 * commits leads stay dirty in the cache, so a lead touched by many batches
 * is written once per pipeline.commit_interval, not once per batch.
 */
static int commit_pending(ls_pipeline *p)
{
	if (p->n_offsets == 0 && p->n_dirty == 0 && p->n_stale == 0) {
		p->last_commit_ms = ls_clock_mono_ms();
		/* Nothing read: after a failure that is no progress until the
		 * replayed records have had time to come back, and a partition
		 * with nothing to replay (the failure was not about records)
		 * must not look stuck forever. */
		int64_t quiet = 2 * (p->cfg->pipeline.commit_interval_ms +
				     p->cfg->pipeline.batch_max_wait_ms);
		if (quiet < 5000)
			quiet = 5000;
		if (p->st.failed_batches_in_row == 0 || p->last_commit_ms - p->last_fail_ms >= quiet)
			committed_progress(p);
		return 0;
	}
	char err[600];
	if (commit(p, err, sizeof err) != 0) {
		fail_batch(p, err);
		return -1;
	}
	for (size_t i = 0; i < p->n_dirty; i++) {
		p->dirty[i]->dirty = false;
		p->dirty[i]->due_dirty = false;
		p->dirty[i]->rescore_dirty = false;
	}
	ls_scorer_committed(p->scorer);
	for (size_t i = 0; i < p->n_bops; i++)
		p->st.bandit[ls_campaign_outcome_of(p->bops[i].activation, p->bops[i].result)]++;
	sweep_committed(p);
	ls_log(LS_LOG_DEBUG, "pipeline", "committed", "leads=%zu partitions=%zu",
	       p->n_dirty, p->n_offsets);
	p->st.commits++;
	p->st.leads_written += p->n_dirty;
	reset_pending(p);
	p->last_commit_ms = ls_clock_mono_ms();
	committed_progress(p);
	if ((int64_t)ls_cache_count(&p->cache) > p->cfg->pipeline.cache_leads)
		ls_cache_clear(&p->cache);
	if (p->last_commit_ms - p->last_checkpoint_ms >=
	    p->cfg->scoring.checkpoint_interval_ms)
		ls_pipeline_checkpoint(p);
	return 0;
}

int ls_pipeline_checkpoint(ls_pipeline *p)
{
	char err[600], q[700];
	p->last_checkpoint_ms = ls_clock_mono_ms();
	if (p->need_resync)
		return -1;
	if (ls_scorer_checkpoint(p->scorer, err, sizeof err) != 0) {
		/* the learning log keeps every committed label, so a failed
		 * checkpoint only delays the merge; say so, not too often */
		if (p->checkpoint_failures++ % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "model checkpoint failed",
			       "failures=%u error=%s", p->checkpoint_failures,
			       ls_log_quote(err, q, sizeof q));
		return -1;
	}
	if (p->checkpoint_failures > 0)
		ls_log(LS_LOG_INFO, "pipeline", "model checkpoint succeeded again",
		       "failures=%u", p->checkpoint_failures);
	p->checkpoint_failures = 0;
	p->checkpoints++;
	return 0;
}

static double since_s(int64_t t0_ns)
{
	return (double)(ls_clock_mono_ns() - t0_ns) / 1e9;
}

void ls_pipeline_set_observer(ls_pipeline *p, const ls_pipeline_observer *o)
{
	p->obs = *o;
	ls_scorer_set_publish_observer(p->scorer, o->score, o->ud);
}

/* Apply the collected batch; on failure everything pending is thrown away. */
static int process_batch(ls_pipeline *p)
{
	if (p->n_msgs == 0)
		return 0;
	char err[600];
	int64_t t0 = ls_clock_mono_ns();
	if (prepare(p, err, sizeof err) != 0 ||
	    load_misses(p, err, sizeof err) != 0 ||
	    apply_events(p, err, sizeof err) != 0) {
		fail_batch(p, err);
		return -1;
	}
	if (p->obs.batch != NULL)
		p->obs.batch(p->obs.ud, since_s(t0));
	int n = (int)p->n_msgs;
	p->st.batches++;
	ls_log(LS_LOG_DEBUG, "pipeline", "batch applied",
	       "messages=%d events=%zu leads_pending=%zu", n, p->n_events, p->n_dirty);
	drop_messages(p);
	return n;
}

static int add_stale(ls_pipeline *p, const char *key, const char *member)
{
	if (reserve((void **)&p->stale, &p->cap_stale, p->n_stale + 1,
		    sizeof *p->stale) != 0)
		return -1;
	size_t kl = strlen(key), ml = strlen(member);
	char *s = malloc(kl + ml + 2);
	if (s == NULL)
		return -1;
	memcpy(s, key, kl + 1);
	memcpy(s + kl + 1, member, ml + 1);
	p->stale[p->n_stale++] = s;
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
 * sets (at commit, in build_ops), so the owner knows when the next member
 * falls due without asking Redis. It learns it once per assignment (and
 * after a failed batch), lowers it for every ZADD it commits, and after
 * each sweep takes the lowest score left above the watermark. A sweep
 * runs only for a partition whose event-time watermark has reached it.
 *
 * Between two commits Redis does not change, so the members a sweep has
 * read (and left to be rewritten by the next commit) are skipped by
 * offset: a backlog larger than one sweep is read on page by page.
 */
static sweep_part *sweep_slot(ls_pipeline *p, int32_t part, bool grow)
{
	if (part < 0)
		return NULL;
	size_t need = (size_t)part + 1;
	if (need > p->n_sweep) {
		if (!grow)
			return NULL;
		sweep_part *s = realloc(p->sweep, need * sizeof *s);
		if (s == NULL)
			return NULL;
		for (size_t i = p->n_sweep; i < need; i++) {
			s[i].assigned = 0;
			for (size_t k = 0; k < SWEEP_SETS; k++) {
				s[i].at[k] = INT64_MIN;
				s[i].read[k] = 0;
			}
		}
		p->sweep = s;
		p->n_sweep = need;
	}
	return &p->sweep[part];
}

static void sweep_forget(sweep_part *s)
{
	for (size_t k = 0; k < SWEEP_SETS; k++) {
		s->at[k] = INT64_MIN;
		s->read[k] = 0;
	}
}

/* A failed batch: Redis holds what the last commit wrote, read it again. */
static void sweep_forget_all(ls_pipeline *p)
{
	for (size_t i = 0; i < p->n_sweep; i++)
		sweep_forget(&p->sweep[i]);
}

/* The members read since the last commit have just been rewritten. */
static void sweep_committed(ls_pipeline *p)
{
	for (size_t i = 0; i < p->n_sweep; i++)
		for (size_t k = 0; k < SWEEP_SETS; k++)
			p->sweep[i].read[k] = 0;
}

/* This instance is writing a member of set of part due at due. */
static void sweep_lower(ls_pipeline *p, int32_t part, size_t set, int64_t due)
{
	sweep_part *s = sweep_slot(p, part, false);
	if (s != NULL && due < s->at[set])
		s->at[set] = due;
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
	sweep_part *sp = &p->sweep[part];
	const char *ids[SWEEP_LIMIT];
	size_t got;
	int64_t next;
	char serr[512];
	*n = 0;
	int64_t t0 = ls_clock_mono_ns();
	int drc = ls_store_due(p->store, key, p->part_wm[part], sp->read[set],
			       SWEEP_LIMIT, ids, &got, &next, serr, sizeof serr);
	if (p->obs.redis != NULL)
		p->obs.redis(p->obs.ud, since_s(t0));
	if (drc != 0) {
		snprintf(err, errlen, "redis: %s", serr);
		return -1;
	}
	sp->read[set] += got;
	/* a full page: more may be due, read on at the next step */
	sp->at[set] = got == SWEEP_LIMIT ? INT64_MIN : next;
	p->n_misses = 0;
	for (size_t i = 0; i < got; i++) {
		bool created;
		ents[i] = ls_cache_put(&p->cache, ids[i], &created);
		if (ents[i] == NULL ||
		    (created && reserve((void **)&p->misses, &p->cap_misses,
					p->n_misses + 1, sizeof *p->misses) != 0)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		ents[i]->partition = part;
		if (created)
			p->misses[p->n_misses++] = ents[i];
	}
	/* ids point into a store reply that the load releases */
	int rc = load_misses(p, err, errlen);
	p->n_misses = 0;
	if (rc != 0)
		return -1;
	for (size_t i = 0; i < got; i++) {
		if (ls_lead_watermark(ents[i]->lead) < 0) {
			if (add_stale(p, key, ents[i]->lead_id) != 0) {
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
		if (ls_scorer_expire(p->scorer, ents[i]->lead, p->part_wm[part],
				     &changed, err, errlen) != 0)
			return -1;
		/* rewritten even when nothing was due any more, so the due set
		 * stops naming it */
		ents[i]->due_dirty = true;
		if (mark_dirty(p, ents[i]) != 0) {
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
	int64_t T = p->part_wm[part];
	for (size_t i = 0; i < n; i++) {
		ls_cache_entry *e = ents[i];
		int64_t next;
		/* scored since the last commit (its own event): its entry in
		 * Redis is stale, the commit writes the one that counts */
		if (e->rescore_dirty && (!rescore_next(p, e, &next) || next > T))
			continue;
		if (ls_scorer_settled(p->scorer, e->lead)) {
			/* decided since it was scheduled: the commit drops it */
			e->rescore_dirty = true;
			if (mark_dirty(p, e) != 0) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			continue;
		}
		bool changed = false;
		size_t produced = 0;
		if (ls_scorer_score(p->scorer, e->lead_id, e->lead, T, NULL, &changed,
				    &produced, err, errlen) != 0)
			return -1;
		p->produced_in_batch += produced;
		p->st.rescored++;
		if (T > e->scored_at)
			e->scored_at = T;
		e->rescore_dirty = true;
		if (mark_dirty(p, e) != 0) {
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
static int sweep_due(ls_pipeline *p)
{
	size_t nm = ls_scorer_n_models(p->scorer);
	bool rescore = p->cfg->scoring.rescore_interval_ms > 0 && nm > 0;
	bool any = false;
	for (size_t i = 0; i < p->n_sweep && i < p->n_part_wm && !any; i++) {
		const sweep_part *s = &p->sweep[i];
		int64_t wm = p->part_wm[i];
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
		if (seen || part < 0 || (size_t)part >= p->n_part_wm ||
		    (size_t)part >= p->n_sweep || p->part_wm[part] < 0 ||
		    p->sweep[part].assigned <= 0)
			continue;
		int64_t wm = p->part_wm[part];
		/* a full page leaves at[] at INT64_MIN: read on */
		for (size_t j = 0; j < nm && rc == 0; j++)
			for (int pg = 0; pg < SWEEP_PAGES && rc == 0 &&
					 ls_scorer_timeout_ms(p->scorer, j) > 0 &&
					 p->sweep[part].at[j] <= wm;
			     pg++)
				rc = sweep_timeouts(p, j, part, err, sizeof err);
		for (int pg = 0; pg < SWEEP_PAGES && rc == 0 && rescore &&
				 p->sweep[part].at[SWEEP_RESCORE] <= wm;
		     pg++)
			rc = sweep_rescore(p, part, err, sizeof err);
	}
	rd_kafka_topic_partition_list_destroy(parts);
	if (rc != 0)
		fail_batch(p, err);
	return rc;
}

/* Ownership of partition numbers, from the rebalance hooks. */
static int sweep_assigned(ls_pipeline *p,
			  const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		if (parts->elems[i].partition < 0)
			continue;
		sweep_part *s = sweep_slot(p, parts->elems[i].partition, true);
		if (s == NULL)
			return -1;
		s->assigned++;
		sweep_forget(s); /* another instance may have written it */
	}
	return 0;
}

static void sweep_revoked(ls_pipeline *p,
			  const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		sweep_part *s = sweep_slot(p, parts->elems[i].partition, false);
		if (s == NULL)
			continue;
		if (s->assigned > 0)
			s->assigned--;
		sweep_forget(s);
	}
}

int ls_pipeline_commit(ls_pipeline *p)
{
	if (p->need_resync)
		return -1;
	return commit_pending(p);
}

/*
 * Before reading from the stored offsets again (an assignment, a resync):
 * a new replay epoch, so that what the replay publishes is numbered above
 * whatever was published and not committed before (ls_leadscore.h).
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
	if (sweep_assigned(p, parts) != 0) {
		p->in_rebalance = true;
		fail_batch(p, "out of memory noting the assignment");
		p->in_rebalance = false;
		return;
	}
	if (p->need_resync || parts->cnt == 0)
		return; /* resync will seek whatever is assigned */
	ls_store_offset *o = calloc((size_t)parts->cnt, sizeof *o);
	char err[512], q[600];
	if (o == NULL) {
		p->in_rebalance = true;
		fail_batch(p, "out of memory loading offsets");
		p->in_rebalance = false;
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
		p->in_rebalance = true;
		fail_batch(p, "offsets unavailable at assignment");
		p->in_rebalance = false;
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
		if (align_assigned(p, parts) != 0) {
			p->in_rebalance = true;
			fail_batch(p, "out of memory noting the assignment");
			p->in_rebalance = false;
		}
	}
	free(o);
}

/* Commit what has been collected, then forget the cached leads. */
static void on_revoke(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
		      void *ud)
{
	ls_pipeline *p = ud;
	p->in_rebalance = true;
	/*
	 * A lost assignment (our session timed out, e.g. a stall or a
	 * coordinator out of reach) may already be another member's, which
	 * replays it from the offsets in Redis: committing our pending work
	 * now would apply it a second time on top (labels learned twice, found
	 * by the chaos suite). Throw it away; the owner replays it.
	 */
	if (rd_kafka_assignment_lost(rk)) {
		if (p->n_msgs > 0 || p->n_offsets > 0 || p->n_dirty > 0)
			ls_log(LS_LOG_WARN, "pipeline",
			       "assignment lost, uncommitted work discarded",
			       "messages=%zu leads=%zu", p->n_msgs, p->n_dirty);
		drop_messages(p);
		discard_uncommitted(p);
	} else if (!p->need_resync && process_batch(p) >= 0)
		commit_pending(p);
	else
		drop_messages(p);
	/* held records are read again by the next owner (or by us after the
	 * assignment, from the stored offsets) */
	align_reset(p, true);
	p->in_rebalance = false;
	ls_cache_clear(&p->cache);
	sweep_revoked(p, parts);
}

/* Reconnect, seek every assigned partition to its stored offset, resume. */
static int resync(ls_pipeline *p)
{
	/* keep serving rebalances and the poll interval while paused;
	 * anything fetched before the seek is stale and dropped */
	rd_kafka_message_t *m = rd_kafka_consumer_poll(p->rk, 100);
	if (m != NULL)
		rd_kafka_message_destroy(m);
	if (!p->need_resync || ls_clock_mono_ms() < p->retry_at_ms)
		return -1;

	char err[512], q[600];
	p->retries++;
	p->backoff_ms = p->backoff_ms * 2 > 5000 ? 5000 : p->backoff_ms * 2;
	p->retry_at_ms = ls_clock_mono_ms() + p->backoff_ms;
	if (ls_store_connect(p->store, err, sizeof err) != 0) {
		if (p->retries == 1 || p->retries % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "redis still unavailable",
			       "attempts=%u error=%s", p->retries,
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
		if (p->retries == 1 || p->retries % 10 == 0)
			ls_log(LS_LOG_WARN, "pipeline", "resync failed",
			       "attempts=%u error=%s", p->retries,
			       ls_log_quote(err, q, sizeof q));
		goto out;
	}
	for (int i = 0; i < parts->cnt; i++)
		parts->elems[i].offset = o[i].next_offset >= 0
						 ? o[i].next_offset
						 : RD_KAFKA_OFFSET_BEGINNING;
	if (align_assigned(p, parts) != 0)
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
	       "partitions=%d attempts=%u", parts->cnt, p->retries);
	p->need_resync = false;
	p->backoff_ms = 100;
	p->retries = 0;
	rc = 0;
out:
	free(o);
	rd_kafka_topic_partition_list_destroy(parts);
	return rc;
}

int ls_pipeline_step(ls_pipeline *p)
{
	if (p->need_resync)
		return resync(p) == 0 ? 0 : -1;
	if (!p->models_restored) {
		/* before anything is learned: the first checkpoint folds the
		 * shared models and adopts them */
		if (ls_pipeline_checkpoint(p) != 0) {
			fail_batch(p, "models cannot be restored from redis");
			return -1;
		}
		p->models_restored = true;
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

	size_t max = (size_t)p->cfg->pipeline.batch_size;
	if (reserve((void **)&p->msgs, &p->cap_msgs, p->n_held + max,
		    sizeof *p->msgs) != 0) {
		fail_batch(p, "out of memory");
		return -1;
	}
	/* the records held back at the last step come first, in their order */
	if (p->n_held > 0)
		memcpy(p->msgs, p->held, p->n_held * sizeof *p->msgs);
	p->n_msgs = p->n_held;
	p->n_held = 0;
	size_t end = p->n_msgs + max;
	int64_t deadline = ls_clock_mono_ms() + p->cfg->pipeline.batch_max_wait_ms;
	while (p->n_msgs < end) {
		int64_t left = deadline - ls_clock_mono_ms();
		rd_kafka_message_t *m =
			rd_kafka_consumer_poll(p->rk, left > 0 ? (int)left : 0);
		if (p->need_resync) {
			/* a rebalance hook failed: what we hold may start at
			 * the wrong offsets */
			if (m != NULL)
				rd_kafka_message_destroy(m);
			drop_messages(p);
			return -1;
		}
		if (m == NULL) {
			if (left <= 0)
				break;
			continue;
		}
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			ls_log(LS_LOG_WARN, "kafka", "consume error",
			       "topic=%s partition=%" PRId32 " error=%s",
			       m->rkt ? rd_kafka_topic_name(m->rkt) : "-",
			       m->partition, rd_kafka_err2name(m->err));
			rd_kafka_message_destroy(m);
			continue;
		}
		p->msgs[p->n_msgs++] = m;
	}
	if (p->n_msgs > 0 && p->waiting_since_ms == 0)
		p->waiting_since_ms = ls_clock_mono_ms();
	rd_kafka_poll(p->dlq, 0); /* serve delivery reports */
	uint64_t left_out = ls_log_limit_flush(&p->dlq_log, ls_clock_mono_ms());
	if (left_out > 0)
		ls_log(LS_LOG_WARN, "pipeline", "dead letters not logged",
		       "suppressed=%" PRIu64 " rate=%" PRId64, left_out,
		       p->cfg->pipeline.dead_letter_log_rate);
	if (align_batch(p) != 0) {
		fail_batch(p, "out of memory");
		return -1;
	}
	int n = process_batch(p);
	p->st.score_changes_skipped = p->dr_skipped + ls_scorer_skipped(p->scorer);
	if (n < 0)
		return -1;
	if (sweep_due(p) != 0)
		return -1;
	if (ls_clock_mono_ms() - p->last_commit_ms >= p->cfg->pipeline.commit_interval_ms &&
	    commit_pending(p) != 0)
		return -1;
	return n;
}

void ls_pipeline_reload(ls_pipeline *p)
{
	p->lead_conf.grace_ms = p->cfg->pipeline.grace_ms;
	p->lead_conf.dedupe_horizon_ms = p->cfg->pipeline.dedupe_horizon_ms;
	ls_store_set_lead_ttl(p->store, p->cfg->redis.lead_ttl_ms);
	ls_scorer_settings scs = ls_settings_scorer(p->cfg);
	ls_scorer_reload(p->scorer, &scs);
}

bool ls_pipeline_paused(const ls_pipeline *p) { return p->need_resync; }

void ls_pipeline_health_get(const ls_pipeline *p, ls_pipeline_health *h)
{
	h->failed_in_row = p->st.failed_batches_in_row;
	h->waiting_ms = p->waiting_since_ms != 0 ? ls_clock_mono_ms() - p->waiting_since_ms : 0;
	if (h->waiting_ms == 0 && p->waiting_since_ms != 0)
		h->waiting_ms = 1;
}
struct ls_scorer *ls_pipeline_scorer(const ls_pipeline *p) { return p->scorer; }
const ls_lead_conf *ls_pipeline_lead_conf(const ls_pipeline *p) { return &p->lead_conf; }
uint64_t ls_pipeline_checkpoints(const ls_pipeline *p) { return p->checkpoints; }
const ls_pipeline_stats *ls_pipeline_stats_get(const ls_pipeline *p) { return &p->st; }
const ls_feature_set *ls_pipeline_features(const ls_pipeline *p) { return p->features; }

ls_pipeline *ls_pipeline_new(const ls_config *cfg, ls_kafka_consumer *consumer,
			     ls_store *store, ls_codec *codec, char *err,
			     size_t errlen)
{
	ls_pipeline *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->cfg = cfg;
	p->consumer = consumer;
	p->rk = ls_kafka_consumer_handle(consumer);
	p->store = store;
	p->codec = codec;
	p->backoff_ms = 100;
	p->last_commit_ms = ls_clock_mono_ms();
	ls_cache_init(&p->cache);
	ls_arena_init(&p->arena, 0);
	ls_buf_init(&p->blobs);
	ls_buf_init(&p->opbuf);

	size_t n_specs;
	const ls_feature_spec *specs = ls_config_features(cfg, &n_specs);
	p->features = ls_feature_set_new(specs, n_specs, err, errlen);
	if (p->features == NULL)
		goto fail;
	ls_config_lead_conf(cfg, p->features, &p->lead_conf);
	if (!ls_lead_conf_check(&p->lead_conf, err, errlen))
		goto fail;
	ls_codec_set_max_record_size(codec, (size_t)cfg->pipeline.max_record_size);

	ls_kafka_settings ks = ls_settings_kafka(cfg);
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, false, err, errlen);
	if (conf == NULL)
		goto fail;
	char why[512];
	/* idempotent: retries never duplicate a dead letter within a session */
	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "linger.ms", "5", why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "dead-letter producer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	char mmb[32];
	size_t mmb_len = sizeof mmb;
	if (rd_kafka_conf_get(conf, "message.max.bytes", mmb, &mmb_len) != RD_KAFKA_CONF_OK ||
	    (p->dlq_max = (size_t)strtoull(mmb, NULL, 10)) == 0)
		p->dlq_max = LS_CONFIG_DEFAULT_MESSAGE_MAX;
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, p);
	p->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
	if (p->dlq == NULL) {
		snprintf(err, errlen, "dead-letter producer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	ls_scorer_settings scs = ls_settings_scorer(cfg);
	p->scorer = ls_scorer_new(&scs, p->features, &p->lead_conf, codec, p->dlq,
				  store, err, errlen);
	if (p->scorer == NULL)
		goto fail;
	ls_kafka_consumer_set_hooks(consumer, on_assign, on_revoke, p);
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
	for (size_t i = 0; i < p->n_held; i++)
		rd_kafka_message_destroy(p->held[i]);
	free(p->held);
	free(p->clocks);
	free(p->horizons);
	reset_pending(p);
	if (p->dlq != NULL) {
		if (rd_kafka_flush(p->dlq, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
			ls_log(LS_LOG_WARN, "pipeline", "dead letters left unflushed at exit",
			       "count=%d", rd_kafka_outq_len(p->dlq));
		rd_kafka_destroy(p->dlq);
	}
	ls_scorer_free(p->scorer);
	ls_cache_free(&p->cache);
	ls_arena_free(&p->arena);
	ls_buf_free(&p->blobs);
	ls_buf_free(&p->scratch);
	ls_feature_set_free(p->features);
	free(p->msgs);
	free(p->events);
	free(p->misses);
	free(p->miss_ids);
	free(p->miss_blobs);
	free(p->dirty);
	free(p->touched);
	free(p->part_wm);
	free(p->sweep);
	free(p->stale);
	free(p->ops);
	bops_clear(p);
	free(p->bops);
	ls_buf_free(&p->opbuf);
	free(p->writes);
	free(p->write_off);
	free(p->offsets);
	free(p->offset_topics);
	free(p);
}
