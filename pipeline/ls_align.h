/*
 * ls_align.h - reading the input topics in step by event time.
 *
 * The loop reads the five co-partitioned input topics through alignment.
 * Every assigned input topic-partition is read from its own librdkafka
 * queue (not forwarded to the consumer queue), so a topic-partition whose
 * records are not wanted yet simply stays in librdkafka's bounded
 * prefetch: nothing is paused, nothing fetched twice. Records taken from
 * a queue wait in the topic-partition's buffer until they may be applied.
 *
 * Per partition number, the bound is the oldest of the newest record
 * timestamps taken from the co-partitioned topics that still have records
 * to read (by the consumer's cached high watermarks); a topic caught up
 * does not hold the others back. ls_align_take gives out, in timestamp
 * order (each topic-partition's order kept), the buffered records stamped
 * at or before their partition's bound, so a lead's web and email events
 * are applied before an outcome stamped after them, however the topics
 * were fetched. A partition number whose bound has not moved for stall_ms
 * (pipeline.align_stall) while it has records waiting is read unaligned
 * until it moves; stall_ms 0 turns alignment off. Buffered records are
 * never committed before they are given out, so a crash replays them.
 *
 * The consumer queue still carries rebalances and errors: ls_align_serve
 * polls it (running the rebalance hooks) and files any record that came
 * that way (before a queue was split off) in its topic-partition's buffer.
 *
 * Memory: an ls_align owns the buffered messages, the partition queue
 * references and a pipe used to wait on all queues at once; not the
 * consumer handle or the topic names (kept by pointer; they must outlive
 * it). Errors: 0, or -1 out of memory with nothing given out (the loop
 * throws the batch away). Thread-safety: the loop thread only.
 */
#ifndef LS_ALIGN_H
#define LS_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_event.h"

typedef struct ls_align {
	rd_kafka_t *rk;              /* the consumer */
	const char *const *topics;   /* input topic names by ls_source */
	struct ls_align_tp *tps;     /* [partition * LS_SOURCE__COUNT + source] */
	size_t n_parts, cap_tps;
	struct ls_align_horizon *horizons; /* per partition number, n_parts */
	size_t cap_horizons;
	struct ls_align_out *order;  /* one take's records, sorted */
	size_t cap_order;
	int wake[2];                 /* a queue that became non-empty writes here */
	size_t buffered;             /* records in all buffers */
	size_t per_tp;               /* most records buffered per topic-partition */
} ls_align;

/* Empty alignment over consumer rk and the LS_SOURCE__COUNT topics; 0, or
 * -1 when the wake-up pipe cannot be made (err says why). */
int ls_align_init(ls_align *a, rd_kafka_t *rk, const char *const *topics,
		  char *err, size_t errlen);

/* The source (ls_source) whose input topic is topic, or -1. */
int ls_align_source(const ls_align *a, const char *topic);

/*
 * parts are ours from the offsets in their elements (stored in Redis, or
 * RD_KAFKA_OFFSET_BEGINNING): alignment waits for what they hold, and
 * reads them from their own queues once librdkafka has them. 0 or -1.
 */
int ls_align_assigned(ls_align *a, const rd_kafka_topic_partition_list_t *parts);

/* parts are no longer ours: their buffered records are dropped (whoever
 * reads them next starts before them) and their queues released. */
void ls_align_revoked(ls_align *a, const rd_kafka_topic_partition_list_t *parts);

/*
 * Poll the consumer queue without waiting: rebalance hooks run here, and
 * records that arrived through it go to their buffers. Call with nothing
 * taken and not yet applied. 0, or -1 out of memory.
 */
int ls_align_serve(ls_align *a);

/*
 * Move into out[0..max) what may be applied now, in timestamp order
 * (*n_out set), taking from the partition queues without waiting; with
 * read_ns, read_ns[i] is when out[i] was taken from librdkafka
 * (ls_clock_mono_ns). 0, or -1 out of memory (nothing given out).
 */
int ls_align_take(ls_align *a, rd_kafka_message_t **out, int64_t *read_ns, size_t max,
		  int64_t stall_ms, size_t *n_out);

/* Wait up to timeout_ms for a queue to receive something. */
void ls_align_wait(ls_align *a, int64_t timeout_ms);

/* Forget every buffered record (destroyed: the partitions are read again
 * from the stored offsets) and the clocks; the queues stay split off. */
void ls_align_reset(ls_align *a);

/* The consumer is closing: drop the buffers and release every reference
 * to its queues (rd_kafka_destroy waits for them); nothing is read after. */
void ls_align_detach(ls_align *a);

/* Records buffered, not yet given out. */
size_t ls_align_buffered(const ls_align *a);

void ls_align_free(ls_align *a);

#endif
