/*
 * ls_dlq.h - the loop's producer: dead letters, and the ScoreChanges the
 * scorer publishes through the same handle.
 *
 * A dead letter carries the original key and value with the headers
 * ls.reason, ls.detail, ls.source.topic, ls.source.partition and
 * ls.source.offset. A record the producer cannot carry whole (its
 * message.max.bytes, or the broker's limit in a delivery report) goes as
 * a truncated copy with ls.truncated and ls.original_size (and
 * ls.original_key_size); a full queue is waited out. Delivery failures
 * that sending again could fix are counted in delivery_errors, which the
 * loop checks after its flush before committing past the records; a
 * ScoreChange too large for the broker is counted in skipped instead.
 *
 * Memory: an ls_dlq lives inside its owner (the callbacks keep its
 * address, so it must not move once opened) and owns the producer;
 * ls_dlq_close flushes and frees it. Errors: 0 / -1 (open: with a
 * reason). Thread-safety: the loop thread only (delivery reports run
 * from its polls and flushes).
 */
#ifndef LS_DLQ_H
#define LS_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_log.h"
#include "ls_pipeline.h"

/* librdkafka's default message.max.bytes, used when the conf cannot say. */
#define LS_DLQ_DEFAULT_MESSAGE_MAX 1000000

typedef struct ls_dlq {
	rd_kafka_t *rk;          /* NULL until opened */
	const char *topic;       /* the dead-letter topic (kept by pointer) */
	size_t max;              /* the producer's message.max.bytes */
	size_t max_id;           /* pipeline.max_id_bytes: a longer key is no id */
	int64_t log_rate;        /* dead-letter log lines a second (live) */
	ls_log_limit log;
	uint64_t skipped;        /* ScoreChanges refused for good in delivery reports */
	uint64_t delivery_errors; /* deliveries failed for a reason that may pass */
	size_t in_batch;         /* dead letters since the last commit */
	ls_pipeline_stats *st;   /* dead_lettered[], dead_letters_truncated */
	/*
	 * Generations: what was produced between two commits, so a commit
	 * can wait for its own records while the next batch produces more
	 * (ls_dlq_close_gen). Indexed by generation & 1: at most one is
	 * closed and not yet fully reported at a time.
	 */
	unsigned gen;
	uint64_t sent[2], reported[2], failed[2];
} ls_dlq;

/*
 * Close the current generation, to which n_scores ScoreChanges produced
 * with ls_dlq_score_opaque() belong (dead letters count themselves), and
 * open the next; returns the one closed. Call only when the generation
 * closed before it is fully reported (ls_dlq_gen_done).
 */
unsigned ls_dlq_close_gen(ls_dlq *d, uint64_t n_scores);
/* Every record of gen has its delivery report; *failed: a delivery failed
 * for a reason that sending again may fix. */
bool ls_dlq_gen_done(const ls_dlq *d, unsigned gen, bool *failed);
/* Give up the open and the closed generation (their batches were thrown
 * away): their late reports count for nothing; a new one opens. */
void ls_dlq_abandon(ls_dlq *d);
/* The opaque ScoreChanges of the current generation are produced with. */
void *ls_dlq_score_opaque(const ls_dlq *d);

/*
 * Create the producer from conf (consumed: freed on failure too), made
 * idempotent with linger.ms=20, with d's topic, max_id, log_rate and st
 * set by the caller beforehand. 0, or -1 with a reason.
 */
int ls_dlq_open(ls_dlq *d, rd_kafka_conf_t *conf, char *err, size_t errlen);

/*
 * Queue a dead letter of m (read from topic) with reason (LS_CODEC_* or
 * LS_DLQ_*) and detail. Anything about the record is handled here, so -1
 * means the producer stayed full for 30 s or is broken (transient).
 */
int ls_dlq_send(ls_dlq *d, const rd_kafka_message_t *m, const char *topic, int reason,
		const char *detail);

/* Serve delivery reports and log how many dead letters went unlogged. */
void ls_dlq_serve(ls_dlq *d);

/* Flush (up to 5 s; what is left is logged) and free the producer. */
void ls_dlq_close(ls_dlq *d);

#endif
