/*
 * ls_campaign.h - the email-variant bandit's service: decisions from an
 * in-memory posterior snapshot, the decision log (Redis + the decisions
 * topic), activations and rewards applied exactly once through Redis
 * scripts, expiry with the default reward, and the campaign read API.
 *
 * What lives where. Per campaign C every key shares one Redis Cluster hash
 * tag, so each script touches one slot:
 *   <prefix>{bandit:C}:counts   hash, additive counters of resolved
 *                               decisions: "n:<arm>:<bucket>" trials and
 *                               "r:<arm>:<bucket>" rewards in millionths
 *                               (integers, so HINCRBY adds them exactly
 *                               from any number of instances); bucket ""
 *                               is the campaign-wide pair. Also
 *                               "b:<bucket>" = 1 for each bucket stored,
 *                               "nb" their number and "v", bumped by every
 *                               change of the counters
 *   <prefix>{bandit:C}:d:<id>   hash, one decision: lead, arm, bucket, ts,
 *                               st (0 waiting for activation, 1 active, 2
 *                               resolved), act (activation ms), rw (its
 *                               reward so far); expires activation_timeout
 *                               after the decision until it is activated,
 *                               then reward_window + 1 h after activation
 *   <prefix>{bandit:C}:pending  zset of active, unresolved decisions by
 *                               the end of their reward window
 * A decision id is "<campaign>.<32 hex digits>" (128 random bits), so a
 * reward that names only the decision finds its campaign's keys.
 *
 * Bounded state. Context values are the clients' (or the leads'), so
 * their number has no bound; the counters' has. A bucket is stored when
 * the first decision in it resolves while fewer than max_buckets are
 * ("nb"), in the same script that counts the decision, so every instance
 * agrees on the set; a decision in any other bucket counts campaign-wide
 * only. Decisions the snapshot already knows to be past the cap (not
 * stored while "nb" >= max_buckets: the set only grows) are recorded
 * without their bucket and counted by ls_campaign_collect_capped. So the
 * counters hash holds at most 2 x arms x (1 + max_buckets) counters plus
 * max_buckets + 2 bookkeeping fields (counters of buckets that are not
 * stored, which earlier versions wrote, are deleted once max_buckets
 * are), and a snapshot refresh first reads
 * only "v" per campaign (one round trip for all of them) and the whole
 * hash only of campaigns whose "v" changed (or every 60 s, in case the
 * hash was replaced behind its back). Decision records and pending
 * entries are bounded by time, not by context values: see docs/bandit.md,
 * "Bandit state in Redis is bounded".
 *
 * Semantics. A decision counts once it is active: at once, or with
 * "activate": false when an email SENT event carrying its decision_id or
 * POST /v1/decisions/{id}/activate arrives before activation_timeout;
 * never-activated decisions expire and touch nothing. An active decision
 * is resolved exactly once, adding one trial: by its first reward event
 * within reward_window (reward = the event type's weight) or, failing
 * that, by the expiry sweep with default_reward. A later reward event in
 * the window with a larger weight raises the decision's reward to that
 * weight (adding the difference), so a decision's reward is the largest
 * weight of its reward events and never more than 1 per trial. Each step
 * is a Lua script, atomic in Redis, and idempotent: replaying the same
 * event (a crash between the script and the offset commit, a redelivery,
 * two instances) changes nothing. Event-borne activations and rewards are
 * judged against the event's ts; HTTP ones and the expiry against the
 * wall clock.
 *
 * Decisions never wait for Redis. A background thread keeps a snapshot
 * (one ls_bandit per campaign with a bucket per context value seen) and,
 * for the campaign-wide posterior and every bucket, the probability
 * vector P(arm) of the policy (Thompson sampling with the hierarchical
 * bucket prior and the min_share floor, see ls_bandit.h) from
 * propensity_draws Monte Carlo draws (vectors of unchanged posteriors
 * are reused; a budget of draws per refresh bounds the work, rows past it
 * keep their vector until the next refresh). The snapshot follows
 * resolutions: every refresh_interval (5 ms by default) one round trip
 * reads every campaign's counters version "v" and a campaign whose "v"
 * moved (another instance, a reward event in the batch loop) is read
 * again; after refresh_trials (10) resolutions this process made (HTTP
 * rewards, the expiry sweep) it refreshes at once. A decision draws its
 * arm from that vector, so the logged propensity is exactly the
 * probability with which the arm was drawn; the vector differs from exact
 * Thompson sampling by the Monte Carlo error, about sqrt(p(1-p)/M): at
 * most 0.005 for M = 10,000. The same thread writes decisions to Redis and
 * the decisions topic in batches (every millisecond or so, one MULTI/EXEC
 * per batch); an HTTP activation or reward first waits for the decisions
 * queued before it, so a client that decides and activates at once never
 * races its own decision. A decision returned but not yet written when the
 * process dies (at most one batch, ~1 ms) is lost: its rewards are then
 * answered "unknown decision".
 *
 * Errors: functions return an ls_campaign_result; ls_campaign_result_str()
 * names it. The service never exits or asserts on input.
 *
 * Thread-safety: ls_campaign_decide, _activate, _reward and _stats may be
 * called from any number of threads (each activation or reward uses the
 * Redis connection the calling thread passes).
 * ls_campaign_reconfigure and ls_campaign_stop belong to the thread that
 * started the service. The pipeline-side helpers (ls_campaign_event_op)
 * are pure.
 *
 * Memory: the service owns everything it allocates; results are copied
 * into caller structs.
 */
#ifndef LS_CAMPAIGN_H
#define LS_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ls_bandit.h"
#include "ls_campaign_posterior.h"
#include "ls_event.h"
#include "ls_kafka.h"

typedef enum ls_campaign_result {
	LS_CAMPAIGN_OK = 0,
	LS_CAMPAIGN_UNKNOWN_CAMPAIGN = -1,
	LS_CAMPAIGN_UNKNOWN_DECISION = -2, /* never made, expired or malformed id */
	LS_CAMPAIGN_NOT_ACTIVATED = -3,    /* a reward for a decision still waiting */
	LS_CAMPAIGN_TOO_LATE = -4,         /* after the reward window */
	LS_CAMPAIGN_BAD_REQUEST = -5,      /* reward outside [0,1], bad context */
	LS_CAMPAIGN_UNAVAILABLE = -6,      /* no snapshot yet, Redis unreachable */
	LS_CAMPAIGN_INTERNAL = -7,         /* out of memory */
} ls_campaign_result;

const char *ls_campaign_result_str(int rc);

/* Longest decision id, with the NUL: campaign, '.', 32 hex digits. */
#define LS_DECISION_ID_MAX (LS_CAMPAIGN_ID_MAX + 34)
/* Context entries a request may carry (logged with the decision). */
#define LS_CAMPAIGN_MAX_REQ_CONTEXT 8

typedef struct ls_campaign ls_campaign;

/*
 * What the service is built from (daemon/ls_settings.h builds it from the
 * YAML config). Pointers are only read during the call they are passed
 * to: ls_campaign_start copies the specs and strings (librdkafka copies
 * what it keeps of kafka); ls_campaign_reconfigure reads specs and
 * n_specs; ls_campaign_event_op specs, n_specs and key_prefix.
 */
typedef struct ls_campaign_settings {
	const ls_campaign_spec *specs; /* `campaigns:`, in file order */
	size_t n_specs;
	const char *key_prefix;        /* redis.key_prefix, may be "" */
	const char *redis_url;         /* redis.url: the service thread's connection */
	int64_t connect_timeout_ms;    /* 0 = none */
	int64_t command_timeout_ms;    /* per read/write; 0 = none */
	ls_kafka_settings kafka;       /* the decision log producer: brokers,
					  properties, topics.decisions */
} ls_campaign_settings;

/*
 * Start the service for st's campaigns (copied): its own Redis
 * connection, producer (st->kafka.topics.decisions) and thread. Works
 * with no campaigns too (every decision is then an unknown campaign).
 * NULL with a reason when the producer cannot be created or memory runs
 * out; Redis being down is not an error (decisions answer
 * UNAVAILABLE until the first snapshot).
 */
ls_campaign *ls_campaign_start(const ls_campaign_settings *st, char *err, size_t errlen);

/* Adopt st's campaigns after a reload: new arms start from their stored
 * counts, retired arms stop being chosen (their counts stay in Redis). */
void ls_campaign_reconfigure(ls_campaign *s, const ls_campaign_settings *st);

/* Write what is queued, stop the thread, flush the producer, free. */
void ls_campaign_stop(ls_campaign *s);

/* True once the first snapshot is published. */
bool ls_campaign_ready(ls_campaign *s);

/* The context keys of campaign as the current snapshot has them (0 when
   unknown or before the first snapshot), for callers that fill a missing
   context from the lead's state. keys and tier_model (the model name)
   receive copies, written only when the answer is not 0. Takes no lock
   the writer holds. */
size_t ls_campaign_context_keys(ls_campaign *s, const char *campaign,
				char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX],
				char tier_model[LS_MODEL_NAME_MAX]);

typedef struct ls_campaign_request {
	const char *campaign;
	const char *lead_id;
	bool activate;
	size_t n_context;
	const char *ctx_key[LS_CAMPAIGN_MAX_REQ_CONTEXT];
	const char *ctx_value[LS_CAMPAIGN_MAX_REQ_CONTEXT];
} ls_campaign_request;

typedef struct ls_campaign_decision {
	char decision_id[LS_DECISION_ID_MAX];
	char variant[LS_CAMPAIGN_ID_MAX];
	double propensity;
	char bucket[LS_CAMPAIGN_BUCKET_MAX]; /* "" for the campaign-wide one */
	bool bucket_fallback; /* the bucket is thin: campaign-wide posterior */
	bool bucket_capped;   /* ...because it is past max_buckets */
	int64_t ts;
} ls_campaign_decision;

/* Decide for one lead and queue the decision for logging. BAD_REQUEST
   for more than LS_CAMPAIGN_MAX_REQ_CONTEXT entries or a context value
   that is not valid UTF-8. */
int ls_campaign_decide(ls_campaign *s, const ls_campaign_request *req,
		       ls_campaign_decision *out);

/*
 * Activations and rewards run their script on conn, the calling thread's
 * Redis connection (the HTTP layer passes its worker's, so a worker holds
 * one connection, not one per module). NULL (Redis is down) answers
 * UNAVAILABLE. After an I/O error conn->err is set and the call answers
 * UNAVAILABLE: the caller reconnects before its next use.
 */

/* Activate decision_id now: OK (also when already active), UNKNOWN_DECISION,
   UNAVAILABLE. *already receives whether it was active before. */
int ls_campaign_activate(ls_campaign *s, redisContext *conn, const char *decision_id,
			 bool *already);

/* Reward decision_id with reward in [0,1] now. OK, UNKNOWN_DECISION,
   NOT_ACTIVATED, TOO_LATE, BAD_REQUEST, UNAVAILABLE. *counted receives
   whether it changed the posterior (false for a repeat or a smaller one). */
int ls_campaign_reward(ls_campaign *s, redisContext *conn, const char *decision_id,
		       double reward, bool *counted);

typedef struct ls_campaign_arm_stats {
	char variant[LS_CAMPAIGN_ID_MAX];
	ls_bandit_arm_stats st;
	double probability; /* P(arm) a decision in this bucket uses now */
} ls_campaign_arm_stats;

typedef struct ls_campaign_bucket_stats {
	char bucket[LS_CAMPAIGN_BUCKET_MAX]; /* "" campaign-wide */
	bool fallback;                       /* thin: decides campaign-wide */
	uint64_t trials;
	size_t n_arms;
	ls_campaign_arm_stats arms[LS_CAMPAIGN_MAX_ARMS];
} ls_campaign_bucket_stats;

typedef struct ls_campaign_stats {
	ls_campaign_spec spec;
	int64_t snapshot_ms;  /* wall clock of the counters shown */
	uint64_t decisions;   /* made by this instance since start */
	size_t n_buckets;     /* entries in buckets, [0] campaign-wide */
	ls_campaign_bucket_stats *buckets; /* malloc'd; free() it */
} ls_campaign_stats;

/* Statistics of campaign from the current snapshot (credible intervals
   and P(best) from 10,000 draws). */
int ls_campaign_stats_get(ls_campaign *s, const char *campaign,
			  ls_campaign_stats *out);

/*
 * For metrics: fn is called once per (campaign, arm) this process has
 * decided for with decisions = its decision count and rewards NaN, and
 * once per configured (campaign, arm) with decisions NaN and rewards =
 * the campaign-wide reward sum in Redis (every instance's) as of the last
 * snapshot.
 */
typedef void (*ls_campaign_collect_fn)(void *ud, const char *campaign, const char *arm,
				       double decisions, double rewards);
void ls_campaign_collect(ls_campaign *s, ls_campaign_collect_fn fn, void *ud);

/* For metrics: fn is called once per (campaign, arm) this process has
   decided for with decisions = its decisions whose bucket was past
   max_buckets (decided and counted campaign-wide), rewards NaN. */
void ls_campaign_collect_capped(ls_campaign *s, ls_campaign_collect_fn fn, void *ud);

/* Why a decision this process made was not logged. */
typedef enum ls_campaign_unlogged {
	LS_CAMPAIGN_UNLOGGED_REDIS = 0, /* its Redis record was not written */
	LS_CAMPAIGN_UNLOGGED_ENCODE,    /* its BanditDecision could not be encoded */
	LS_CAMPAIGN_UNLOGGED_PRODUCE,   /* the producer refused it */
	LS_CAMPAIGN_UNLOGGED_DELIVERY,  /* the broker never acknowledged it */
	LS_CAMPAIGN_UNLOGGED__COUNT
} ls_campaign_unlogged;

const char *ls_campaign_unlogged_name(ls_campaign_unlogged why);

/* Decisions of this process not logged since start, by reason (each is
   also logged, at most one line per reason every 10 s). */
void ls_campaign_unlogged_counts(ls_campaign *s, uint64_t out[LS_CAMPAIGN_UNLOGGED__COUNT]);

/* Redis INFO used_memory as of the last check (every 5 s); -1 unknown. */
long long ls_campaign_redis_memory(ls_campaign *s);

/*
 * A request's bucket name: "key=value" per context key of sp, joined by
 * ',' ("" when sp has none); a key the request lacks reads as value "".
 * Values are cut to LS_CAMPAIGN_CTX_VALUE_MAX bytes at a code-point
 * boundary, and ',', '=' and '%' in them are %-escaped, so two different
 * contexts never share a name (unless they differ only past the cut).
 * Pure.
 */
void ls_campaign_bucket_name(const ls_campaign_spec *sp, const ls_campaign_request *req,
			     char *out, size_t cap);

/* ---- pipeline side: activations and rewards carried by email events ---- */

/*
 * The script call an email event implies for its decision, for the
 * pipeline's commit transaction: a SENT activates, a reward type of the
 * decision's campaign rewards. Returns 1 with *op filled (its argv points
 * into buf, which must outlive the commit), 0 when the event implies
 * nothing (no decision_id, unknown campaign, not a reward type), -1 when
 * buf is too small. The result the script answers goes to *result.
 */
typedef struct ls_campaign_op {
	const char *argv[12];
	size_t argvlen[12];
	int argc;
} ls_campaign_op;

int ls_campaign_event_op(const ls_campaign_settings *st, const ls_email_event *ev, int64_t ts,
			 ls_campaign_op *op, char *buf, size_t buflen);

/* What a script answered, by kind, for counters and logs. */
typedef enum ls_campaign_outcome {
	LS_CAMPAIGN_O_ACTIVATED = 0,
	LS_CAMPAIGN_O_REWARDED,
	LS_CAMPAIGN_O_IGNORED,      /* repeat, already active, smaller reward */
	LS_CAMPAIGN_O_UNKNOWN,
	LS_CAMPAIGN_O_NOT_ACTIVATED,
	LS_CAMPAIGN_O_TOO_LATE,
	LS_CAMPAIGN_O__COUNT
} ls_campaign_outcome;

ls_campaign_outcome ls_campaign_outcome_of(bool activation, long long reply);
const char *ls_campaign_outcome_name(ls_campaign_outcome o);

#endif
