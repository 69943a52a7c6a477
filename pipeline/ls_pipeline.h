/*
 * ls_pipeline.h - the micro-batch loop: Kafka -> decode -> lead state ->
 * Redis, exactly once.
 *
 * One step (ls_pipeline_step) polls up to pipeline.batch_size messages or
 * pipeline.batch_max_wait, decodes them, sends the unusable ones to the
 * dead-letter topic, loads the leads it has not cached from Redis in one
 * pipelined round trip and applies the events in record-timestamp order
 * (see Ordering). Once pipeline.commit_interval has passed since the last commit,
 * it writes every lead changed since then together with the next offset of
 * every partition read since then in one MULTI/EXEC: a lead active in many
 * batches is written once per interval. A crash anywhere replays from the
 * stored offsets onto the state they belong to.
 *
 * Ordering: within a topic-partition events are applied in offset order.
 * Input topics are co-partitioned by lead (same key = lead_id, same
 * partition count, default partitioner), so all events of a lead reach the
 * same instance; a message whose key is not its record's lead_id would
 * break that and is dead-lettered as key_mismatch. The five topics are
 * read in step by record timestamp: per partition number, a record stamped
 * later than the newest record read from a co-partitioned topic that still
 * has records to read is held back (not committed) until that topic has
 * caught up, and a batch is applied in timestamp order, so during a
 * backlog an outcome is not learned before the lead's earlier events are
 * read. Past batch_size held records their topic-partitions are paused;
 * a partition number whose slowest topic has not moved for
 * pipeline.align_stall (default 5 s; 0 turns alignment off) is read
 * unaligned until it moves (ls_align.h).
 * The interleaving is still not fixed exactly (it depends on what was
 * fetched when); lead state is built from order-independent parts (see
 * ls_lead.h) so replays still reproduce it, except for events that land
 * on either side of the grace period depending on interleaving.
 *
 * Dead letters: the original key and value, with headers ls.reason,
 * ls.detail, ls.source.topic, ls.source.partition, ls.source.offset. They
 * are flushed before the offsets that pass them are committed, so none is
 * lost (a crash between the two can produce a dead letter twice). A
 * record the dead-letter producer cannot carry whole (message.max.bytes,
 * or the broker's limit in a delivery report) goes as a truncated copy
 * with ls.truncated (key, value or key,value) and ls.original_size (and
 * ls.original_key_size); a full producer queue is waited out. So a
 * permanent per-record failure (undecodable, too large, an id over
 * pipeline.max_id_bytes) never fails a batch. Dead-letter log lines are
 * limited to pipeline.dead_letter_log_rate a second (counts stay exact)
 * (ls_dlq.h).
 *
 * ScoreChanges that can never be produced (too large, synchronously or in
 * a delivery report) are counted and skipped; the lead's score state moves
 * on as if published. Transient failures (broker down) still fail the
 * batch.
 *
 * Backpressure: when Redis fails (load or commit), uncommitted work is
 * dropped, every assigned partition is paused and the loop retries the
 * connection with capped backoff while still serving rebalances. Once
 * Redis answers, each partition is sought to its stored offset and
 * resumed. A broker outage needs nothing from us: librdkafka reconnects
 * and consumption simply waits. A transient dead-letter or ScoreChange
 * delivery failure (broker down, timed out) is handled like a Redis
 * failure (nothing is committed past an undelivered record); one that is
 * about the record (too large) is not (see Dead letters).
 *
 * Health (ls_pipeline_health_get): batches thrown away in a row since the
 * last commit, and how long records have waited uncommitted (from when
 * they were read, or from a failed batch that will read them again); an
 * empty commit right after a failure does not count as progress until
 * the replay has had time to come back.
 *
 * Rebalance: on assignment partitions start at the offsets stored in
 * Redis (the group's committed offsets are never used); on revocation the
 * batch being collected is processed and committed first, then the cache
 * is dropped, so the next owner starts exactly where this one stopped.
 *
 * Sweeps: leads that go silent reach their label timeouts and are
 * rescored as their windows age, as event time moves on (ls_sweep.h).
 *
 * Memory: the pipeline owns its cache, arena, buffers and producer, not
 * the handles it is given (consumer, store, codec) nor the strings of its
 * settings. Thread-safety:
 * the loop thread only; counters may be read racily for logging.
 */
#ifndef LS_PIPELINE_H
#define LS_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_codec.h"
#include "ls_campaign.h"
#include "ls_kafka.h"
#include "ls_lead.h"
#include "ls_scorer.h"
#include "ls_store.h"

/* Dead-letter reasons: the codec's, then the pipeline's own. */
enum {
	LS_DLQ_FUTURE_TIMESTAMP = LS_CODEC_REASON__COUNT,
	LS_DLQ_KEY_MISMATCH,
	LS_DLQ_ID_TOO_LONG, /* an id or the message key over pipeline.max_id_bytes */
	LS_DLQ_REASON__COUNT
};

/* Stable name of a dead-letter reason ("malformed", "future_timestamp"…). */
const char *ls_pipeline_dlq_reason_name(int reason);

/* Event types per source: email types, web types, call outcomes,
 * outcome types, and one ("PROFILE") for profiles. */
#define LS_PIPELINE_MAX_TYPES 8
/* The name of type i of source src, NULL past the last. */
const char *ls_pipeline_event_type_name(int src, int i);

typedef struct ls_pipeline_stats {
	uint64_t consumed[LS_SOURCE__COUNT]; /* decoded and valid */
	/* the same by event type (ls_pipeline_event_type_name) */
	uint64_t consumed_type[LS_SOURCE__COUNT][LS_PIPELINE_MAX_TYPES];
	uint64_t applied[LS_SOURCE__COUNT];
	uint64_t duplicates[LS_SOURCE__COUNT];
	uint64_t too_late[LS_SOURCE__COUNT];
	/* profile entries not kept, by ls_lead_drop reason (ls_lead.h) */
	uint64_t profile_dropped[LS_LEAD_DROP__COUNT];
	uint64_t dead_lettered[LS_DLQ_REASON__COUNT];
	uint64_t batches;
	uint64_t commits;
	uint64_t leads_written;
	uint64_t redis_failures;
	uint64_t dlq_failures;
	uint64_t cache_loads; /* leads read from Redis */
	uint64_t rescored;    /* idle leads rescored as event time moved on */
	/* bandit activations and rewards carried by email events, by what
	 * the script answered (ls_campaign_outcome) */
	uint64_t bandit[LS_CAMPAIGN_O__COUNT];
	/* ScoreChanges that can never be produced (too large), skipped */
	uint64_t score_changes_skipped;
	/* dead letters sent as a truncated copy (ls.truncated header) */
	uint64_t dead_letters_truncated;
	/* batches thrown away since the last successful commit (a gauge) */
	uint64_t failed_batches_in_row;
} ls_pipeline_stats;

/* What /readyz needs to know of the loop. */
typedef struct ls_pipeline_health {
	uint64_t failed_in_row; /* batches thrown away since the last commit */
	int64_t waiting_ms;     /* records read but not committed for this long; 0: none wait */
} ls_pipeline_health;


typedef struct ls_pipeline ls_pipeline;

/*
 * Timings for metrics, called on the loop's thread (any may be NULL):
 * batch: seconds to apply one batch (decode to scores); redis: one Redis
 * round trip of the loop (lead loads, commits); score: event time to a
 * ScoreChange produced for it (wall clock minus the event's ts).
 */
typedef struct ls_pipeline_observer {
	void (*batch)(void *ud, double seconds);
	void (*redis)(void *ud, double seconds);
	void (*score)(void *ud, double seconds);
	/* a ScoreChange produced for a lead: seconds since its causing
	 * record was read, and since the record's Kafka timestamp (< 0:
	 * the record had none) */
	void (*latency)(void *ud, double read_s, double record_s);
	void *ud;
} ls_pipeline_observer;

void ls_pipeline_set_observer(ls_pipeline *p, const ls_pipeline_observer *o);

/*
 * How long a step may spend encoding the leads of the commit on its way
 * (1 ms by default; a lead a batch is about to change is encoded first
 * anyway). Tests set 0 so that every lead of a commit is changed before
 * it is encoded.
 */
void ls_pipeline_set_encode_budget(ls_pipeline *p, int64_t ns);

/*
 * What the pipeline is built from: the pipeline.* keys it reads, the
 * topics, the feature definitions and the lead conf (daemon/ls_settings.h
 * builds it from the configuration). Strings and specs are kept by
 * pointer and must outlive the pipeline.
 */
typedef struct ls_pipeline_settings {
	const char *topics[LS_SOURCE__COUNT]; /* kafka.topics.*, by ls_source */
	const char *dead_letter_topic;        /* kafka.topics.dead_letter */
	const ls_feature_spec *features;      /* the feature set (read at ls_pipeline_new) */
	size_t n_features;
	/* pipeline.grace, dedupe_horizon (both live), dedupe_ids,
	 * max_profile_attributes, max_profile_metrics; .features is ignored */
	ls_lead_conf lead_conf;
	int64_t cache_leads;       /* pipeline.cache_leads */
	int64_t max_record_size;   /* pipeline.max_record_size */
	int64_t max_id_bytes;      /* pipeline.max_id_bytes */
	/* What SIGHUP changes in a running pipeline (ls_pipeline_reload). */
	struct ls_pipeline_live {
		int64_t batch_size;             /* pipeline.batch_size */
		int64_t batch_max_wait_ms;      /* pipeline.batch_max_wait */
		int64_t commit_interval_ms;     /* pipeline.commit_interval */
		int64_t align_stall_ms;         /* pipeline.align_stall; 0: no alignment */
		int64_t max_future_skew_ms;     /* pipeline.max_future_skew */
		int64_t dead_letter_log_rate;   /* pipeline.dead_letter_log_rate */
		int64_t checkpoint_interval_ms; /* scoring.checkpoint_interval */
		int64_t rescore_interval_ms;    /* scoring.rescore_interval; 0: off */
		int64_t lead_ttl_ms;            /* redis.lead_ttl, set on the store */
		/* the campaigns email events' decision ids name; none: they
		 * activate and reward nothing (specs kept by pointer) */
		ls_campaign_settings campaigns;
	} live;
	ls_kafka_settings kafka;   /* the dead-letter and ScoreChange producer */
	ls_scorer_settings scorer; /* the models (their live keys: ls_pipeline_reload) */
} ls_pipeline_settings;

/*
 * A pipeline built from s (copied; see ls_pipeline_settings for what it
 * keeps by pointer). Registers itself as the consumer's rebalance hooks
 * and creates its own producer for dead letters and ScoreChanges.
 * Returns NULL with a reason on a bad feature set or lead conf, a
 * producer that cannot be created, or out of memory.
 */
ls_pipeline *ls_pipeline_new(const ls_pipeline_settings *s, ls_kafka_consumer *consumer,
			     ls_store *store, ls_codec *codec, char *err,
			     size_t errlen);

/*
 * Pick up a reload: takes s->live, the lead conf's grace_ms and
 * dedupe_horizon_ms, and the models' live keys (through the scorer's
 * configuration); the rest of s needs a restart and is ignored.
 */
void ls_pipeline_reload(ls_pipeline *p, const ls_pipeline_settings *s);

/*
 * One batch (committing when the interval is due), or one retry of Redis
 * while paused. Returns the number of messages processed (>= 0), or -1
 * when the step failed and the pipeline is paused waiting for Redis (not
 * an error the caller must act on; the work since the last commit will be
 * redone).
 */
int ls_pipeline_step(ls_pipeline *p);

/* Commit what is pending now, whatever the interval. 0 or -1. */
int ls_pipeline_commit(ls_pipeline *p);

/*
 * Fold and save the models now (done every scoring.checkpoint_interval
 * after a commit, and by the daemon at shutdown after the last commit).
 * 0 or -1 (logged; the learning log keeps what was committed).
 */
int ls_pipeline_checkpoint(ls_pipeline *p);

/* The lead conf the loop applies (read-only for other threads). */
const ls_lead_conf *ls_pipeline_lead_conf(const ls_pipeline *p);
/* Successful model checkpoints that changed the models so far (the
   first is the restore): when it moves, the models HTTP serves are stale. */
uint64_t ls_pipeline_checkpoints(const ls_pipeline *p);

/* The models (for stats). */
struct ls_scorer *ls_pipeline_scorer(const ls_pipeline *p);

bool ls_pipeline_paused(const ls_pipeline *p);
/* The loop's health now, for /readyz (the failures themselves are logged). */
void ls_pipeline_health_get(const ls_pipeline *p, ls_pipeline_health *h);
const ls_pipeline_stats *ls_pipeline_stats_get(const ls_pipeline *p);
const ls_feature_set *ls_pipeline_features(const ls_pipeline *p);

/*
 * Close the consumer first (its revocation commits through the hooks),
 * then free the pipeline; this flushes the dead-letter producer.
 */
void ls_pipeline_free(ls_pipeline *p);

#endif
