/*
 * ls_align.h - event-time alignment of the co-partitioned input topics.
 *
 * The loop reads the five input topics independently; alignment keeps
 * them in step by record timestamp. Per partition number, the horizon is
 * the oldest of the newest timestamps read from the topics that still
 * have records to read (by the consumer's cached high watermarks). Each
 * step (ls_align_batch) holds back the records stamped past their
 * partition's horizon, with the rest of their topic-partition, and puts
 * the others in timestamp order (each topic-partition's order kept).
 * Held records are offered again first at the next step
 * (ls_align_take_held); past max_held of them their topic-partitions are
 * paused until released. A partition number whose horizon has not moved
 * for stall_ms (pipeline.align_stall) while it holds records back is read
 * unaligned until it moves; stall_ms 0 turns alignment off. Held records
 * are never committed before they are applied, so a crash replays them.
 *
 * Memory: an ls_align owns the held messages and its clocks, not the
 * consumer handle or the topic names (kept by pointer; they must outlive
 * it). Errors: 0, or -1 out of memory with nothing changed that matters
 * (the loop throws the batch away). Thread-safety: the loop thread only.
 */
#ifndef LS_ALIGN_H
#define LS_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_event.h"

typedef struct ls_align {
	rd_kafka_t *rk;              /* the consumer: watermarks, pause/resume */
	const char *const *topics;   /* input topic names by ls_source */
	rd_kafka_message_t **held;   /* read ahead of a co-partitioned topic */
	size_t n_held, cap_held;
	struct ls_align_clock *clocks; /* [partition * LS_SOURCE__COUNT + source] */
	size_t n_clock_parts, cap_clocks;
	struct ls_align_horizon *horizons; /* per partition number, n_clock_parts */
	size_t cap_horizons;
} ls_align;

/* Empty alignment over consumer rk and the LS_SOURCE__COUNT topics. */
void ls_align_init(ls_align *a, rd_kafka_t *rk, const char *const *topics);

/* The source (ls_source) whose input topic is topic, or -1. */
int ls_align_source(const ls_align *a, const char *topic);

/*
 * parts are ours from the offsets in their elements (stored in Redis, or
 * RD_KAFKA_OFFSET_BEGINNING): alignment waits for what they hold. 0 or -1.
 */
int ls_align_assigned(ls_align *a, const rd_kafka_topic_partition_list_t *parts);

/*
 * msgs[0..*n_msgs) (the held records first, then the new ones, as read):
 * keep in msgs, in timestamp order, what may be applied now (*n_msgs
 * updated) and hold the rest. 0, or -1 out of memory (nothing moved).
 */
int ls_align_batch(ls_align *a, rd_kafka_message_t **msgs, size_t *n_msgs,
		   int64_t stall_ms, size_t max_held);

/* Move the held records to dst (room for n_held); their count. */
size_t ls_align_take_held(ls_align *a, rd_kafka_message_t **dst);

/*
 * Forget the held records (destroyed: whoever reads the partition next
 * starts before them) and the clocks; resume: also resume what alignment
 * paused (on revocation; after a failed batch the resync resumes all).
 */
void ls_align_reset(ls_align *a, bool resume);

void ls_align_free(ls_align *a);

#endif
