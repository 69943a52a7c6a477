/*
 * ls_align.c - reading the input topics in step by event time, apart
 * from the loop.
 *
 * Why a seam: alignment only decides which of the records read may be
 * applied now and in what order, from per-topic-partition clocks and the
 * consumer's watermarks; it never touches lead state or Redis. The loop
 * asks it for the records of a step and applies what it gives.
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
 * Why a queue per topic-partition: the first version read everything
 * from the one consumer queue, held back what ran ahead and paused a
 * topic-partition once it held too much. A pause drops librdkafka's
 * prefetched records, which are fetched again on resume, and the loop
 * waited out pipeline.batch_max_wait for records a paused partition could
 * not bring: catching up a backlog ran at a third of the unaligned rate.
 * With its own queue, a topic-partition that is ahead is simply not taken
 * from; librdkafka stops fetching it when its prefetch is full (per
 * partition: queued.min.messages, queued.max.messages.kbytes) and goes on
 * by itself when it is taken from again.
 *
 * How: per partition number, the bound is the oldest of the newest record
 * timestamps taken from the co-partitioned input topics that still have
 * records to read (the cached high watermark is past what was taken); a
 * topic with nothing left to read does not hold the others back. Records
 * stamped after their partition's bound wait in their buffer (the order
 * of a topic-partition is kept) and are offered again at the next step;
 * their offsets are not committed before they are applied, so a crash
 * replays them. The topic-partition that sets the bound can always give
 * out all it has buffered, so reading goes on. An assigned
 * topic-partition that nothing has been taken from yet holds the others
 * back from the start (at -1) unless its high watermark is known to be at
 * its start offset: otherwise the first fetch to arrive would decide.
 * Live, a topic caught up holds nothing back. A partition number whose
 * bound has not moved for pipeline.align_stall while it has records
 * waiting is read unaligned until it moves (a topic whose partition
 * cannot be fetched, or whose records were deleted, must not stop the
 * others).
 *
 * What is given out is merged in timestamp order across topic-partitions
 * (the key is the running maximum of each topic-partition's stamps, so
 * its own order is kept), so a lead's events in the same batch as its
 * outcome are applied before the outcome is learned.
 *
 * Timestamps are the Kafka record timestamps (producers set the event
 * time, as leadscore-sim does, or the log append time, which is the order
 * they were written); a record without one is never held.
 */
#include "ls_align.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_buf.h"
#include "ls_clock.h"
#include "ls_log.h"

typedef struct tp_msg {
	rd_kafka_message_t *m;
	int64_t key;     /* timestamp, made non-decreasing per topic-partition */
	int64_t read_ns; /* when it was taken from librdkafka */
} tp_msg;

/*
 * One input topic-partition: its own queue, the records taken from it and
 * not yet given out (buf[head..n)), the key of the newest one taken and
 * the offset after it.
 */
typedef struct ls_align_tp {
	rd_kafka_queue_t *q; /* NULL until librdkafka has the partition */
	tp_msg *buf;
	size_t head, n, cap;
	int64_t newest; /* -1: nothing taken since the assignment */
	int64_t next;   /* -1: unknown */
	bool assigned;  /* ours since the last assignment */
} tp_t;

/* A record given out by one ls_align_take, before the batch's sort. */
struct ls_align_out {
	rd_kafka_message_t *m;
	int64_t key;
	int64_t read_ns;
	size_t seq; /* the order taken: ties keep it */
};

static int cmp_out(const void *x, const void *y)
{
	const struct ls_align_out *a = x, *b = y;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A partition number's bound and when it last moved (stall detection). */
typedef struct ls_align_horizon {
	int64_t at;
	int64_t moved_ms;
	bool aligned; /* this step */
} part_horizon;

int ls_align_source(const ls_align *a, const char *topic)
{
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		if (strcmp(a->topics[i], topic) == 0)
			return i;
	return -1;
}

static tp_t *tp_of(ls_align *a, int src, int32_t part, bool grow)
{
	if (src < 0 || part < 0)
		return NULL;
	size_t need = (size_t)part + 1;
	if (need > a->n_parts) {
		if (!grow)
			return NULL;
		if (ls_grow((void **)&a->tps, &a->cap_tps, need * LS_SOURCE__COUNT,
			    sizeof *a->tps) != 0 ||
		    ls_grow((void **)&a->horizons, &a->cap_horizons, need,
			    sizeof *a->horizons) != 0)
			return NULL;
		for (size_t i = a->n_parts * LS_SOURCE__COUNT; i < need * LS_SOURCE__COUNT; i++)
			a->tps[i] = (tp_t){ .newest = -1, .next = -1 };
		for (size_t i = a->n_parts; i < need; i++)
			a->horizons[i] = (part_horizon){ INT64_MAX, 0, false };
		a->n_parts = need;
	}
	return &a->tps[(size_t)part * LS_SOURCE__COUNT + (size_t)src];
}

static int64_t msg_ts(const rd_kafka_message_t *m)
{
	rd_kafka_timestamp_type_t tt;
	int64_t ts = rd_kafka_message_timestamp(m, &tt);
	return tt == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

/* Append m (ours now) to t's buffer; -1 out of memory (m not taken). */
static int push(ls_align *a, tp_t *t, rd_kafka_message_t *m, int64_t read_ns)
{
	if (t->n == t->cap && t->head > 0) {
		memmove(t->buf, t->buf + t->head, (t->n - t->head) * sizeof *t->buf);
		t->n -= t->head;
		t->head = 0;
	}
	if (ls_grow((void **)&t->buf, &t->cap, t->n + 1, sizeof *t->buf) != 0)
		return -1;
	int64_t ts = msg_ts(m);
	int64_t key = ts > t->newest ? ts : t->newest;
	t->buf[t->n++] = (tp_msg){ m, key, read_ns };
	t->newest = key;
	if (m->offset + 1 > t->next)
		t->next = m->offset + 1;
	a->buffered++;
	return 0;
}

static void drop_buffer(ls_align *a, tp_t *t)
{
	for (size_t i = t->head; i < t->n; i++)
		rd_kafka_message_destroy(t->buf[i].m);
	a->buffered -= t->n - t->head;
	t->head = t->n = 0;
}

static void release_queue(tp_t *t)
{
	if (t->q == NULL)
		return;
	rd_kafka_queue_io_event_enable(t->q, -1, NULL, 0);
	rd_kafka_queue_destroy(t->q);
	t->q = NULL;
}

/* Read t from its own queue; librdkafka forwards it to the consumer queue
 * at every fetch start, so this is done again whenever a record of t
 * comes through there. */
static void split_off(ls_align *a, tp_t *t, int src, int32_t part)
{
	if (t->q == NULL) {
		t->q = rd_kafka_queue_get_partition(a->rk, a->topics[src], part);
		if (t->q == NULL)
			return; /* librdkafka does not have it yet */
		rd_kafka_queue_io_event_enable(t->q, a->wake[1], "p", 1);
	}
	rd_kafka_queue_forward(t->q, NULL);
}

static void log_consume_error(const rd_kafka_message_t *m)
{
	ls_log(LS_LOG_WARN, "kafka", "consume error", "topic=%s partition=%" PRId32 " error=%s",
	       m->rkt ? rd_kafka_topic_name(m->rkt) : "-", m->partition,
	       rd_kafka_err2name(m->err));
}

int ls_align_assigned(ls_align *a, const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		int src = ls_align_source(a, e->topic);
		if (src < 0 || e->partition < 0)
			continue;
		tp_t *t = tp_of(a, src, e->partition, true);
		if (t == NULL)
			return -1;
		drop_buffer(a, t);
		t->newest = -1;
		t->next = e->offset >= 0 ? e->offset : 0;
		t->assigned = true;
	}
	return 0;
}

void ls_align_revoked(ls_align *a, const rd_kafka_topic_partition_list_t *parts)
{
	for (int i = 0; parts != NULL && i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		tp_t *t = tp_of(a, ls_align_source(a, e->topic), e->partition, false);
		if (t == NULL)
			continue;
		drop_buffer(a, t);
		release_queue(t);
		*t = (tp_t){ .buf = t->buf, .cap = t->cap, .newest = -1, .next = -1 };
	}
}

static void drain_wake(ls_align *a)
{
	char buf[256];
	while (read(a->wake[0], buf, sizeof buf) > 0)
		;
}

int ls_align_serve(ls_align *a)
{
	if (a->rk == NULL)
		return 0;
	drain_wake(a);
	rd_kafka_message_t *m;
	while ((m = rd_kafka_consumer_poll(a->rk, 0)) != NULL) {
		if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			log_consume_error(m);
			rd_kafka_message_destroy(m);
			continue;
		}
		int src = ls_align_source(a, rd_kafka_topic_name(m->rkt));
		if (src < 0) {
			rd_kafka_message_destroy(m); /* we subscribe to nothing else */
			continue;
		}
		tp_t *t = tp_of(a, src, m->partition, true);
		if (t == NULL || push(a, t, m, ls_clock_mono_ns()) != 0) {
			rd_kafka_message_destroy(m);
			return -1;
		}
		split_off(a, t, src, m->partition);
	}
	for (size_t i = 0; i < a->n_parts * LS_SOURCE__COUNT; i++) {
		tp_t *t = &a->tps[i];
		if (t->assigned && t->q == NULL)
			split_off(a, t, (int)(i % LS_SOURCE__COUNT),
				  (int32_t)(i / LS_SOURCE__COUNT));
	}
	return 0;
}

/* Take from t's queue, without waiting, until it buffers a->per_tp. */
static int fill(ls_align *a, tp_t *t)
{
	rd_kafka_message_t *got[256];
	while (t->q != NULL && t->n - t->head < a->per_tp) {
		size_t room = a->per_tp - (t->n - t->head);
		if (room > sizeof got / sizeof got[0])
			room = sizeof got / sizeof got[0];
		ssize_t k = rd_kafka_consume_batch_queue(t->q, 0, got, room);
		if (k <= 0)
			return 0;
		int64_t now = ls_clock_mono_ns();
		for (ssize_t i = 0; i < k; i++) {
			if (got[i]->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
				if (got[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					log_consume_error(got[i]);
				rd_kafka_message_destroy(got[i]);
				continue;
			}
			if (push(a, t, got[i], now) != 0) {
				for (ssize_t j = i; j < k; j++)
					rd_kafka_message_destroy(got[j]);
				return -1;
			}
		}
		if ((size_t)k < room)
			return 0;
	}
	return 0;
}

/* The bound of each partition number, and whether it is aligned now. */
static void bounds(ls_align *a, int64_t stall_ms, int64_t now)
{
	for (size_t part = 0; part < a->n_parts; part++) {
		int64_t bound = INT64_MAX;
		bool waiting = false;
		for (int s = 0; s < LS_SOURCE__COUNT; s++) {
			tp_t *t = &a->tps[part * LS_SOURCE__COUNT + (size_t)s];
			waiting |= t->n > t->head;
			if (!t->assigned && t->newest < 0)
				continue; /* not ours */
			int64_t lo = -1, hi = -1;
			if (rd_kafka_get_watermark_offsets(a->rk, a->topics[s], (int32_t)part, &lo,
							   &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
				hi = -1;
			bool behind = hi >= 0 ? t->next >= 0 && hi > t->next
					      : t->newest < 0; /* not heard from yet */
			if (behind && t->newest < bound)
				bound = t->newest;
		}
		part_horizon *h = &a->horizons[part];
		if (bound != h->at) {
			h->at = bound;
			h->moved_ms = now;
		}
		h->aligned = waiting && stall_ms > 0 && now - h->moved_ms < stall_ms;
	}
}

int ls_align_take(ls_align *a, rd_kafka_message_t **out, int64_t *read_ns, size_t max,
		  int64_t stall_ms, size_t *n_out)
{
	*n_out = 0;
	a->per_tp = max / 4 + 64;
	size_t n_tps = a->n_parts * LS_SOURCE__COUNT;
	for (size_t i = 0; i < n_tps; i++)
		if (fill(a, &a->tps[i]) != 0)
			return -1;
	if (a->buffered == 0)
		return 0;
	bounds(a, stall_ms, ls_clock_mono_ms());
	/*
	 * A partition number read unaligned (align_stall 0, or stalled)
	 * gives out its topic-partitions' records in turn, as read, the way
	 * a plain consumer would; the aligned ones merge: the smallest key
	 * among the heads that may go, ties to the lower topic-partition
	 * index, so the order depends only on what was read. Then the batch
	 * is applied in timestamp order (each topic-partition's kept).
	 */
	if (ls_grow((void **)&a->order, &a->cap_order, max > 0 ? max : 1, sizeof *a->order) != 0)
		return -1; /* nothing taken yet */
	size_t n = 0;
	bool unaligned = false;
	for (bool more = true; more && n < max;) {
		more = false;
		for (size_t i = 0; i < n_tps && n < max; i++) {
			tp_t *t = &a->tps[i];
			if (t->head == t->n || a->horizons[i / LS_SOURCE__COUNT].aligned)
				continue;
			a->order[n] = (struct ls_align_out){ t->buf[t->head].m, t->buf[t->head].key,
							     t->buf[t->head].read_ns, n };
			t->head++;
			n++;
			more = unaligned = true;
		}
	}
	while (n < max) {
		tp_t *best = NULL;
		for (size_t i = 0; i < n_tps; i++) {
			tp_t *t = &a->tps[i];
			if (t->head == t->n)
				continue;
			const part_horizon *h = &a->horizons[i / LS_SOURCE__COUNT];
			int64_t key = t->buf[t->head].key;
			if (!h->aligned || key > h->at)
				continue;
			if (best == NULL || key < best->buf[best->head].key)
				best = t;
		}
		if (best == NULL)
			break;
		a->order[n] = (struct ls_align_out){ best->buf[best->head].m, best->buf[best->head].key,
						     best->buf[best->head].read_ns, n };
		best->head++;
		n++;
	}
	if (unaligned)
		qsort(a->order, n, sizeof *a->order, cmp_out);
	for (size_t i = 0; i < n; i++) {
		out[i] = a->order[i].m;
		if (read_ns != NULL)
			read_ns[i] = a->order[i].read_ns;
	}
	for (size_t i = 0; i < n_tps; i++)
		if (a->tps[i].head == a->tps[i].n)
			a->tps[i].head = a->tps[i].n = 0;
	a->buffered -= n;
	*n_out = n;
	return 0;
}

void ls_align_wait(ls_align *a, int64_t timeout_ms)
{
	if (timeout_ms <= 0)
		return;
	struct pollfd pfd = { .fd = a->wake[0], .events = POLLIN };
	(void)poll(&pfd, 1, timeout_ms > 1000 ? 1000 : (int)timeout_ms);
}

void ls_align_reset(ls_align *a)
{
	for (size_t i = 0; i < a->n_parts * LS_SOURCE__COUNT; i++) {
		tp_t *t = &a->tps[i];
		drop_buffer(a, t);
		t->newest = -1;
		t->next = -1;
	}
	for (size_t i = 0; i < a->n_parts; i++)
		a->horizons[i] = (part_horizon){ INT64_MAX, 0, false };
}

size_t ls_align_buffered(const ls_align *a) { return a->buffered; }

int ls_align_init(ls_align *a, rd_kafka_t *rk, const char *const *topics, char *err,
		  size_t errlen)
{
	memset(a, 0, sizeof *a);
	a->rk = rk;
	a->topics = topics;
	a->per_tp = 64;
	if (pipe2(a->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		a->wake[0] = a->wake[1] = -1;
		snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
		return -1;
	}
	/* rebalances and records that still come the consumer's way wake
	 * the loop as well */
	rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(rk);
	if (cq != NULL) {
		rd_kafka_queue_io_event_enable(cq, a->wake[1], "c", 1);
		rd_kafka_queue_destroy(cq);
	}
	return 0;
}

void ls_align_detach(ls_align *a)
{
	if (a->rk == NULL)
		return;
	for (size_t i = 0; i < a->n_parts * LS_SOURCE__COUNT; i++) {
		drop_buffer(a, &a->tps[i]);
		release_queue(&a->tps[i]);
		a->tps[i].assigned = false;
	}
	rd_kafka_queue_t *cq = rd_kafka_queue_get_consumer(a->rk);
	if (cq != NULL) {
		rd_kafka_queue_io_event_enable(cq, -1, NULL, 0);
		rd_kafka_queue_destroy(cq);
	}
	a->rk = NULL;
}

void ls_align_free(ls_align *a)
{
	ls_align_detach(a);
	for (size_t i = 0; i < a->n_parts * LS_SOURCE__COUNT; i++)
		free(a->tps[i].buf);
	if (a->wake[0] >= 0)
		close(a->wake[0]);
	if (a->wake[1] >= 0)
		close(a->wake[1]);
	free(a->tps);
	free(a->horizons);
	free(a->order);
	memset(a, 0, sizeof *a);
	a->wake[0] = a->wake[1] = -1;
}
