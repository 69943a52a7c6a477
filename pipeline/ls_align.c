/*
 * ls_align.c - event-time alignment of the input topics, apart from the
 * loop.
 *
 * Why a seam: alignment only decides which of the records read may be
 * applied now and in what order, from per-topic-partition clocks and the
 * consumer's watermarks; it never touches lead state or Redis. The loop
 * hands it the records of a step and applies what it gives back.
 */
#include "ls_align.h"

#include <stdlib.h>
#include <string.h>

#include "ls_buf.h"
#include "ls_clock.h"

/*
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

/*
 * What alignment (ls_align_batch) knows of one input topic-partition: the
 * newest record timestamp read from it, the offset after the last record
 * read, whether this step holds records of it back, whether we paused it.
 */
typedef struct ls_align_clock {
	int64_t newest; /* -1: nothing read since the assignment */
	int64_t next;   /* -1: unknown */
	int64_t run;    /* ls_align_batch's running maximum */
	bool assigned;  /* ours since the last assignment or resync */
	bool holding;
	bool paused;
} tp_clock;

/* A partition number's horizon and when it last moved (stall detection). */
typedef struct ls_align_horizon {
	int64_t at;
	int64_t moved_ms;
} part_horizon;

int ls_align_source(const ls_align *a, const char *topic)
{
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		if (strcmp(a->topics[i], topic) == 0)
			return i;
	return -1;
}

static tp_clock *tp_clock_of(ls_align *a, int src, int32_t part, bool grow)
{
	if (src < 0 || part < 0)
		return NULL;
	size_t need = (size_t)part + 1;
	if (need > a->n_clock_parts) {
		if (!grow)
			return NULL;
		if (ls_grow((void **)&a->clocks, &a->cap_clocks, need * LS_SOURCE__COUNT,
			    sizeof *a->clocks) != 0 ||
		    ls_grow((void **)&a->horizons, &a->cap_horizons, need,
			    sizeof *a->horizons) != 0)
			return NULL;
		for (size_t i = a->n_clock_parts * LS_SOURCE__COUNT;
		     i < need * LS_SOURCE__COUNT; i++)
			a->clocks[i] = (tp_clock){ -1, -1, 0, false, false, false };
		for (size_t i = a->n_clock_parts; i < need; i++)
			a->horizons[i] = (part_horizon){ INT64_MAX, 0 };
		a->n_clock_parts = need;
	}
	return &a->clocks[(size_t)part * LS_SOURCE__COUNT + (size_t)src];
}

/*
 * Resume what alignment paused and no longer holds records of; with
 * pause, also pause every topic-partition that holds records back.
 */
static void align_pause(ls_align *a, bool pause)
{
	rd_kafka_topic_partition_list_t *on = rd_kafka_topic_partition_list_new(4);
	rd_kafka_topic_partition_list_t *off = rd_kafka_topic_partition_list_new(4);
	if (on == NULL || off == NULL)
		goto out;
	for (size_t part = 0; part < a->n_clock_parts; part++)
		for (int src = 0; src < LS_SOURCE__COUNT; src++) {
			tp_clock *c = &a->clocks[part * LS_SOURCE__COUNT + (size_t)src];
			bool want = c->holding && (pause || c->paused);
			if (want == c->paused)
				continue;
			rd_kafka_topic_partition_list_add(want ? off : on,
							  a->topics[src],
							  (int32_t)part);
			c->paused = want;
		}
	if (off->cnt > 0)
		rd_kafka_pause_partitions(a->rk, off);
	if (on->cnt > 0)
		rd_kafka_resume_partitions(a->rk, on);
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
void ls_align_reset(ls_align *a, bool resume)
{
	for (size_t i = 0; i < a->n_held; i++)
		rd_kafka_message_destroy(a->held[i]);
	a->n_held = 0;
	if (resume) {
		for (size_t i = 0; i < a->n_clock_parts * LS_SOURCE__COUNT; i++)
			a->clocks[i].holding = false;
		align_pause(a, false);
	}
	for (size_t i = 0; i < a->n_clock_parts * LS_SOURCE__COUNT; i++)
		a->clocks[i] = (tp_clock){ -1, -1, 0, false, false, false };
	for (size_t i = 0; i < a->n_clock_parts; i++)
		a->horizons[i] = (part_horizon){ INT64_MAX, 0 };
}

/*
 * parts are ours from the offsets in their elements (stored in Redis, or
 * RD_KAFKA_OFFSET_BEGINNING): alignment waits for what they hold. 0, or
 * -1 out of memory.
 */
int ls_align_assigned(ls_align *a,
		      const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		int src = ls_align_source(a, e->topic);
		if (src < 0 || e->partition < 0)
			continue;
		tp_clock *c = tp_clock_of(a, src, e->partition, true);
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
 * msgs (the records held at the last step first, then the new ones, in
 * the order read): move the records read ahead of their partition's
 * horizon to a->held and put the rest in timestamp order. 0, or -1 out of
 * memory (nothing moved).
 */
int ls_align_batch(ls_align *a, rd_kafka_message_t **msgs, size_t *n_msgs,
		   int64_t stall_ms, size_t max_held)
{
	size_t n = *n_msgs;
	if (n == 0)
		return 0;
	int *src = malloc(n * sizeof *src);
	timed_msg *t = malloc(n * sizeof *t);
	if (src == NULL || t == NULL ||
	    ls_grow((void **)&a->held, &a->cap_held, n, sizeof *a->held) != 0) {
		free(src);
		free(t);
		return -1;
	}
	/* what was read: newest timestamp and next offset per topic-partition */
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		src[i] = ls_align_source(a, rd_kafka_topic_name(m->rkt));
		tp_clock *c = tp_clock_of(a, src[i], m->partition, true);
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
	int64_t *horizon = malloc((a->n_clock_parts ? a->n_clock_parts : 1) *
				  sizeof *horizon);
	if (horizon == NULL) {
		free(src);
		free(t);
		return -1;
	}
	int64_t now = ls_clock_mono_ms();
	for (size_t part = 0; part < a->n_clock_parts; part++) {
		horizon[part] = INT64_MAX;
		for (int s = 0; s < LS_SOURCE__COUNT; s++) {
			tp_clock *c = &a->clocks[part * LS_SOURCE__COUNT + (size_t)s];
			c->holding = false;
			if (!c->assigned && c->newest < 0)
				continue; /* not ours */
			int64_t lo = -1, hi = -1;
			if (rd_kafka_get_watermark_offsets(a->rk, a->topics[s],
							   (int32_t)part, &lo, &hi) !=
			    RD_KAFKA_RESP_ERR_NO_ERROR)
				hi = -1;
			bool behind = hi >= 0 ? c->next >= 0 && hi > c->next
					      : c->newest < 0; /* not heard from yet */
			if (behind && c->newest < horizon[part])
				horizon[part] = c->newest;
		}
		part_horizon *ph = &a->horizons[part];
		if (horizon[part] != ph->at) {
			ph->at = horizon[part];
			ph->moved_ms = now;
		}
	}
	size_t kept = 0, held = 0;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		tp_clock *c = src[i] >= 0 ? tp_clock_of(a, src[i], m->partition, false)
					  : NULL;
		int64_t ts = msg_ts(m);
		if (c != NULL && (c->holding || (ts >= 0 && ts > horizon[m->partition])) &&
		    now - a->horizons[m->partition].moved_ms < stall_ms) {
			c->holding = true;
			a->held[held++] = m;
			continue;
		}
		t[kept] = (timed_msg){ ts, i, m };
		kept++;
	}
	free(horizon);
	/* timestamp order across topic-partitions, offset order within one:
	 * the key is the running maximum of each topic-partition's stamps */
	for (size_t i = 0; i < a->n_clock_parts * LS_SOURCE__COUNT; i++)
		a->clocks[i].run = INT64_MIN;
	for (size_t i = 0; i < kept; i++) {
		int s = src[t[i].idx];
		tp_clock *c = s >= 0 ? tp_clock_of(a, s, t[i].m->partition, false) : NULL;
		if (c == NULL)
			continue;
		if (t[i].key > c->run)
			c->run = t[i].key;
		t[i].key = c->run;
	}
	qsort(t, kept, sizeof *t, cmp_timed);
	for (size_t i = 0; i < kept; i++)
		msgs[i] = t[i].m;
	*n_msgs = kept;
	a->n_held = held;
	free(src);
	free(t);
	/* bounded: pause what holds records back once there are many */
	align_pause(a, held >= max_held);
	return 0;
}

void ls_align_init(ls_align *a, rd_kafka_t *rk, const char *const *topics)
{
	memset(a, 0, sizeof *a);
	a->rk = rk;
	a->topics = topics;
}

size_t ls_align_take_held(ls_align *a, rd_kafka_message_t **dst)
{
	size_t n = a->n_held;
	if (n > 0)
		memcpy(dst, a->held, n * sizeof *dst);
	a->n_held = 0;
	return n;
}

void ls_align_free(ls_align *a)
{
	for (size_t i = 0; i < a->n_held; i++)
		rd_kafka_message_destroy(a->held[i]);
	free(a->held);
	free(a->clocks);
	free(a->horizons);
	memset(a, 0, sizeof *a);
}
