/*
 * ls_sweep.h - the sweeps: label timeouts and idle rescoring.
 *
 * A lead with an open label for a model with a label_timeout sits in that
 * model's due set of its partition (ls_scorer_due_key), scored by its
 * deadline; a lead still worth rescoring sits in the partition's
 * "rescore:" set, scored by when its windows have aged by
 * scoring.rescore_interval. Both are sorted sets in Redis, written only
 * by the partition's owner at commit (ls_sweep_commit_ops). After every
 * batch, ls_sweep_due reads the members whose score the partition's
 * event-time watermark (the newest event time applied from it) has
 * reached, a page at a time, and expires or rescores them; what that
 * changes commits with the batch.
 *
 * ls_sweep keeps, per partition number, the earliest due time of each
 * set not yet read (learned once per assignment, lowered by each ZADD it
 * commits), so nothing due costs no Redis command.
 *
 * Memory: an ls_sweep lives inside the pipeline and owns its arrays and
 * the stale entries (due entries of leads that expired, removed at the
 * next commit). Errors: 0, or -1 out of memory (ls_sweep_due: a failed
 * sweep throws the batch away, as a failed batch does). Thread-safety:
 * the loop thread only.
 */
#ifndef LS_SWEEP_H
#define LS_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_pipeline.h"
#include "ls_store.h"

typedef struct ls_sweep {
	struct ls_sweep_part *parts; /* per partition number */
	size_t n_parts, cap_parts;
	int64_t *wm;                 /* newest event time seen per input partition; -1: none */
	size_t n_wm, cap_wm;
	char **stale;                /* "key\0member" due entries of vanished leads */
	size_t n_stale, cap_stale;
} ls_sweep;

/* Note an event at ts applied from partition: it moves the watermark. */
int ls_sweep_note_wm(ls_sweep *sw, int32_t partition, int64_t ts);

/* Ownership of partition numbers, from the rebalance hooks: what another
 * instance may have written is read again. */
int ls_sweep_assigned(ls_sweep *sw, const rd_kafka_topic_partition_list_t *parts);
void ls_sweep_revoked(ls_sweep *sw, const rd_kafka_topic_partition_list_t *parts);

/* A failed batch: Redis holds what the last commit wrote, read it again. */
void ls_sweep_forget_all(ls_sweep *sw);
/* The commit went through: what was read has been rewritten. */
void ls_sweep_committed(ls_sweep *sw);
/* Forget the stale entries (after a commit removed them, or a failure). */
void ls_sweep_clear_stale(ls_sweep *sw);

/*
 * Sweep every owned partition that has something due by its watermark
 * (at most a few pages a set). 0, or -1 when the batch was thrown away.
 */
int ls_sweep_due(ls_pipeline *p);

/*
 * The commit's extra commands into the pipeline's op list: the n_appends
 * appends (learning log), then per dirty lead whose label or rescore
 * state changed a ZADD or ZREM in its due and rescore sets, then the
 * ZREMs of stale entries. *n_ops is the count. 0, or -1 with a reason.
 */
int ls_sweep_commit_ops(ls_pipeline *p, const ls_store_append *appends, size_t n_appends,
			size_t *n_ops, char *err, size_t errlen);

void ls_sweep_free(ls_sweep *sw);

#endif
