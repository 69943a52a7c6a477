/*
 * ls_pipeline_internal.h - the loop's state, shared by the files of the
 * pipeline module only (ls_pipeline.c, ls_sweep.c); nothing outside
 * pipeline/ includes it.
 *
 * struct ls_pipeline is grouped by lifetime: what it is built from and
 * owns for good, the seams with their own state (dead letters, alignment,
 * sweeps), the batch being applied (released after it), what is pending
 * since the last commit, the commit's reusable buffers, and the recovery,
 * progress and checkpoint bookkeeping. Growable arrays are (pointer,
 * count, capacity) triples grown with ls_grow. Thread-safety: the loop
 * thread only.
 */
#ifndef LS_PIPELINE_INTERNAL_H
#define LS_PIPELINE_INTERNAL_H

#include "ls_align.h"
#include "ls_arena.h"
#include "ls_buf.h"
#include "ls_cache.h"
#include "ls_dlq.h"
#include "ls_pipeline.h"
#include "ls_sweep.h"

struct ls_scorer;

typedef struct batch_event {
	ls_event ev; /* first: a lead's cause (&ev) leads back to its record */
	ls_cache_entry *entry;
	int64_t read_ns;   /* when the record was read (ls_clock_mono_ns) */
	int64_t record_ts; /* its Kafka timestamp (ms), -1 without one */
} batch_event;

/* A bandit script call waiting for the next commit; argv points into buf. */
typedef struct bandit_op {
	ls_campaign_op op;
	char *buf;
	long long result;
	bool activation;
} bandit_op;

struct ls_pipeline {
	ls_pipeline_settings set; /* a copy; .live replaced by ls_pipeline_reload */
	ls_pipeline_observer obs;
	/* given, not owned */
	ls_kafka_consumer *consumer;
	rd_kafka_t *rk;
	ls_store *store;
	ls_codec *codec;
	/* built from the settings, owned */
	ls_feature_set *features;
	ls_lead_conf lead_conf;
	struct ls_scorer *scorer;
	ls_cache cache;
	ls_dlq dlq;     /* dead letters; ScoreChanges share its producer */
	ls_align align; /* event-time alignment of the input topics */
	ls_sweep sweep; /* label timeouts and idle rescoring */

	/* The batch being applied; released once it is (drop_messages). */
	struct {
		rd_kafka_message_t **msgs;
		size_t n_msgs, cap_msgs;
		int64_t *read_ns; /* per message: when it was read */
		size_t cap_read_ns;
		batch_event *events;
		size_t n_events, cap_events;
		ls_cache_entry **misses; /* leads to load from Redis */
		size_t n_misses, cap_misses;
		const char **miss_ids;
		size_t cap_miss_ids;
		ls_store_blob *miss_blobs;
		size_t cap_miss_blobs;
		ls_cache_entry **touched; /* leads with an applied event this batch */
		size_t n_touched, cap_touched;
		uint64_t no;
		ls_arena arena; /* the decoded events' strings */
	} batch;

	/* Pending since the last commit; the next commit writes it. */
	struct {
		ls_cache_entry **dirty;
		size_t n_dirty, cap_dirty;
		ls_store_offset *offsets; /* .topic points into offset_topics */
		char **offset_topics;     /* owned copies: pending offsets outlive messages */
		size_t n_offsets, cap_offsets, cap_offset_topics;
		bandit_op *bandit_ops;    /* activations and rewards */
		size_t n_bandit_ops, cap_bandit_ops;
		size_t produced;          /* ScoreChange events */
	} pend;

	/*
	 * The commit on its way (at most one). Taken at the commit interval
	 * (ls_pipeline.c, take_commit): the leads are encoded into tx, the
	 * offsets and bandit calls move here, what the models learned is set
	 * aside (ls_scorer_stage). It is written to Redis once its records
	 * (ScoreChanges, dead letters: its ls_dlq generation) are delivered,
	 * and its outcome read later; meanwhile the next batches are applied
	 * and become the next commit. Nothing else uses Redis in between
	 * (sweeps wait; a load first reads the outcome).
	 */
	struct {
		bool active, sent;
		unsigned gen;
		int64_t taken_ms, sent_ns;
		/* the leads it writes: encoded a few at a time between batches,
		 * or just before a batch changes one (encode_for_fly) */
		ls_cache_entry **todo;
		size_t n_todo, next_todo, cap_todo;
		int64_t encode_budget_ns; /* per step, 1 ms (tests set 0) */
		size_t n_writes, n_ops;
		ls_store_offset *offsets;
		char **offset_topics;
		size_t n_offsets, cap_offsets, cap_offset_topics;
		bandit_op *bandit_ops;
		size_t n_bandit_ops, cap_bandit_ops;
	} fly;

	/* The commit transaction's buffers, kept between commits. */
	struct {
		ls_store_write *writes;
		size_t cap_writes;
		size_t *write_off;
		size_t cap_write_off;
		ls_buf blobs;
		ls_buf scratch;
		ls_buf opbuf;             /* keys, scores and members of commit ops */
		ls_store_append *ops;
		size_t cap_ops;
	} tx;

	/* Paused after a failed batch until Redis answers (resync). */
	struct {
		bool need;
		bool in_rebalance;
		int64_t retry_at_ms;
		int64_t backoff_ms;
		unsigned retries;
	} resync;

	/* For health and the commit interval. */
	struct {
		int64_t waiting_since_ms; /* records read and not committed since; 0: none */
		int64_t last_fail_ms;     /* when a batch was last thrown away */
		int64_t last_commit_ms;
	} progress;

	struct {
		bool restored;            /* the first checkpoint (the restore) is done */
		int64_t last_ms;
		uint64_t adopted;         /* ls_scorer_adoptions at the last one */
		uint64_t labels;          /* labels the models held after it */
		unsigned failures;        /* in a row */
		uint64_t count;           /* those that changed the models */
	} ckpt;

	ls_pipeline_stats st;
};

/* The loop's steps the sweeps share (ls_pipeline.c). */

/* Load the batch's misses from Redis in one round trip. 0 or -1. */
int ls_pipeline_load_misses(ls_pipeline *p, char *err, size_t errlen);
/* Put e on the list the next commit writes. 0 or -1 out of memory. */
int ls_pipeline_mark_dirty(ls_pipeline *p, ls_cache_entry *e);
/* Throw the work since the last commit away and pause until Redis answers. */
void ls_pipeline_fail_batch(ls_pipeline *p, const char *why);
/* Seconds since t0_ns on the monotonic clock, for the observer. */
double ls_pipeline_since_s(int64_t t0_ns);

#endif
