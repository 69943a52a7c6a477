/*
 * ls_campaign_internal.h - what the campaign service's two files share:
 * the service struct, the decision queue's items, the snapshot types, and
 * the few functions one file calls in the other. Not for other modules:
 * ls_campaign.h is the contract.
 *
 * ls_campaign.c: start/stop and the API the HTTP threads and the pipeline
 * call. ls_campaign_writer.c: the service thread (snapshots, decision
 * writes, expiry) and the snapshot reference counting both sides use.
 */
#ifndef LS_CAMPAIGN_INTERNAL_H
#define LS_CAMPAIGN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "ls_buf.h"
#include "ls_campaign.h"
#include "ls_codec.h"
#include "ls_redis.h"

#define COMPONENT "bandit"
#define MICRO 1000000.0

/* Decisions made by this process per campaign and arm: kept across
 * snapshots and reloads, found once per snapshot, bumped per decision. */
typedef struct arm_counter {
	char campaign[LS_CAMPAIGN_ID_MAX];
	char arm[LS_CAMPAIGN_ID_MAX];
	atomic_uint_fast64_t decisions;
	atomic_uint_fast64_t capped; /* of them, in a bucket past max_buckets */
} arm_counter;

#define MAX_ARM_COUNTERS (LS_CAMPAIGN_MAX * LS_CAMPAIGN_MAX_ARMS * 2)

/* One campaign in a snapshot: its spec, posterior and the probability
 * vector of every row, as decisions draw from them. */
typedef struct csnap {
	ls_campaign_spec spec;
	arm_counter *counter[LS_CAMPAIGN_MAX_ARMS];
	ls_campaign_posterior post; /* buckets in name order */
	size_t rows;     /* 1 + post.n_buckets: row 0 is campaign-wide */
	double *probs;   /* rows x n_arms */
	/* the posterior each row's vector was estimated from (rows x
	 * n_arms each): a vector is reused while its row's posterior is
	 * unchanged, and is stale (kept past a change, see csnap_build)
	 * when they differ */
	double *vec_a, *vec_b;
	bool stale;      /* some row kept a stale vector: read again soon */
	int64_t read_ms; /* monotonic time its counters were read */
} csnap;

/* A published snapshot, one csnap per configured campaign. Readers hold
 * a reference (ls_campaign_snap_take); the writer thread replaces it. */
typedef struct snap {
	atomic_int refs;
	size_t n;
	csnap *c;
	atomic_llong built_ms; /* moves on when a refresh finds nothing new */
} snap;

/* A decision queued for the writer thread, with copies of everything it
 * writes (the request's strings are gone by then). */
typedef struct dec_item {
	char id[LS_DECISION_ID_MAX];
	char campaign[LS_CAMPAIGN_ID_MAX];
	char arm[LS_CAMPAIGN_ID_MAX];
	char *lead;          /* malloc'd, with the bucket after its NUL */
	const char *bucket;  /* in lead's allocation: up to 8 context keys
				make LS_CAMPAIGN_BUCKET_MAX 2 KB, which every
				queued decision would otherwise copy */
	int64_t ts;
	double propensity;
	bool activate;
	int64_t window_ms, ttl_ms;
	size_t n_ctx;
	char ctx_key[LS_CAMPAIGN_MAX_REQ_CONTEXT][LS_MODEL_KEY_MAX];
	char ctx_val[LS_CAMPAIGN_MAX_REQ_CONTEXT][LS_CAMPAIGN_CTX_VALUE_MAX + 1];
} dec_item;

struct ls_campaign {
	char *prefix;
	ls_redis_target target;
	int64_t connect_timeout_ms, command_timeout_ms;
	redisContext *rc; /* the service thread's */
	int64_t rc_retry_ms;
	rd_kafka_t *producer;
	char *topic;
	ls_codec *codec;
	ls_buf enc;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* queue, specs, stop */
	pthread_cond_t wake, written; /* wake runs on CLOCK_MONOTONIC */
	bool stop;
	bool writer_idle;  /* the thread sleeps on an empty queue: signal it */
	bool flush_wanted; /* an activation or reward waits: write now */
	bool refresh_wanted; /* refresh_trials resolutions: refresh now */
	uint64_t resolved[LS_CAMPAIGN_MAX]; /* per specs[i], since the last refresh */
	dec_item *q;
	size_t nq, capq;
	uint64_t seq_queued, seq_done;
	ls_campaign_spec *specs;
	size_t n_specs;
	bool specs_changed;

	pthread_mutex_t snap_mu;
	snap *cur;

	ls_rng rng; /* the service thread's */

	atomic_uint_fast64_t decisions, dropped;
	atomic_uint_fast64_t unlogged[LS_CAMPAIGN_UNLOGGED__COUNT];
	atomic_llong unlogged_log_ms[LS_CAMPAIGN_UNLOGGED__COUNT]; /* last line logged */
	pthread_mutex_t counters_mu;
	arm_counter counters[MAX_ARM_COUNTERS];
	atomic_size_t n_counters;
	atomic_llong redis_memory; /* INFO memory used_memory, -1 unknown */
	int64_t last_info_ms;
};

/* "<prefix>{bandit:<campaign>}:<suffix>"; -1 when it does not fit. */
int ls_campaign_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		    const char *suffix);
/* A decision's record: "<prefix>{bandit:<campaign>}:d:<id>". */
int ls_campaign_decision_key(char *buf, size_t cap, const char *prefix, const char *campaign,
			     const char *id);

/* The published snapshot with a reference (NULL before the first); drop
   it with ls_campaign_snap_release. Any thread. */
snap *ls_campaign_snap_take(ls_campaign *s);
void ls_campaign_snap_release(snap *s);
/* campaign's entry in s (NULL: not there, or s is NULL). */
const csnap *ls_campaign_snap_find(const snap *s, const char *campaign);

/* Count one resolution of campaign's made by this process (an HTTP
   reward), and ask for a refresh once its refresh_trials are reached.
   Any thread; takes mu. */
void ls_campaign_note_resolved(ls_campaign *s, const char *campaign);

/* The service thread (arg: the ls_campaign). */
void *ls_campaign_writer_main(void *arg);
/* The decisions topic's delivery report callback (opaque: the ls_campaign). */
void ls_campaign_decision_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

#endif
