/*
 * ls_scorer.h - the models in the batch loop: learn from labels, rescore
 * touched leads, publish ScoreChange events, keep the shared models in
 * Redis exactly once.
 *
 * Per lead, what scoring remembers (ls_scorestate: last published score,
 * tier and version per model, whether its label was learned, its first
 * event time) travels in the lead's extension bytes, so it is committed
 * in the same MULTI/EXEC as the lead and the offsets and replays with
 * them.
 *
 * Labels. Before an event is applied to its lead the pipeline calls
 * ls_scorer_before_apply(): when the event is an outcome that one of a
 * model's label sets names, the lead's example is built from its features
 * as they stand *before* the event (at the event's time, without it) and
 * the model learns it; the prediction the model made just before learning
 * is the progressive-validation prediction (ls_ftrl_learn's p_before).
 * A lead is one example per model: its first label counts; after a
 * label_timeout negative only a positive is learned (a late conversion).
 * label_timeout counts from the lead's first event, on event time; it is
 * checked when the lead is touched and by the sweep below.
 *
 * Scores. After a batch is applied, ls_scorer_score() rescores each lead
 * that had an applied event, once, with every model (features at the
 * lead's watermark), and publishes a ScoreChange to kafka.topics.scores
 * (key lead_id) when ls_score_should_publish() says so, with the next
 * version (ls_scorestate_next_version) and the top 3 positive and top 3
 * negative factors. Shadow models learn and log, never publish. Delivery
 * is at least once: a ScoreChange is produced before its batch commits,
 * and the replay after a crash or failed commit publishes the lead again,
 * maybe with other content (other batch boundaries), but under versions
 * of a new epoch (ls_scorer_set_epoch), above the ones it replaces.
 *
 * Learning exactly once. Each model exists three times in an instance:
 * local (learns), committed (local as of the last commit) and the shared
 * copy in Redis. A commit appends local - committed as one ls_mlog entry
 * (with the commit's labelled predictions) to the model's log list in the
 * same transaction as leads and offsets (ls_scorer_commit_appends, then
 * ls_scorer_committed); a failed batch rolls local back to committed
 * (ls_scorer_discard). Every checkpoint_interval (and at shutdown) the
 * checkpoint folds the log into the shared model under WATCH, trims what
 * it folded, and adopts the result as local and committed: each instance
 * then scores with a model that has every instance's labels up to that
 * moment. Staleness bound: another instance's label reaches this one's
 * model within its commit interval plus this one's checkpoint interval.
 *
 * Memory: ~3 models' worth of FTRL state per configured model (local,
 * committed, and transiently the folded copy): ~12 MiB at 2^18 buckets.
 * Thread-safety: the loop thread only.
 */
#ifndef LS_SCORER_H
#define LS_SCORER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ls_codec.h"
#include "ls_eval.h"
#include "ls_ftrl.h"
#include "ls_lead.h"
#include "ls_model_spec.h"
#include "ls_store.h"

typedef struct ls_scorer ls_scorer;

/*
 * Building a model's example from a lead: the feature values, profile
 * metrics and attributes and the model's crosses. One context per thread
 * (it holds the buffers); the set, conf, spec and model are only read.
 * The context remembers, per model layout (up to LS_MODEL_MAX of them),
 * the dense index of every feature value (ls_ftrl_dense_index), resolved
 * the first time it meets the layout, so building an example looks no
 * feature up by name.
 */
typedef struct ls_example_ctx {
	const ls_feature_set *set;
	const ls_lead_conf *lead_conf;
	double *values;
	const char **num_names;
	double *num_values;
	int32_t *num_dense; /* per num_names entry, for the model being built */
	const char **cat_keys, **cat_values;
	ls_ftrl_cross crosses[LS_MODEL_MAX_CROSSES];
	ls_ftrl_example x; /* the result */
	size_t n_layouts;
	uint64_t layouts[LS_MODEL_MAX];
	int32_t *value_dense[LS_MODEL_MAX]; /* set->n_values each */
} ls_example_ctx;

int ls_example_ctx_init(ls_example_ctx *c, const ls_feature_set *set,
			const ls_lead_conf *lead_conf);
void ls_example_ctx_free(ls_example_ctx *c);
/* c->x = the example of lead at T for model (built for its layout). */
int ls_example_build(ls_example_ctx *c, const ls_model_spec *spec,
		     const ls_ftrl *model, const ls_lead *lead, int64_t T);

typedef struct ls_scorer_model_stats {
	const char *name;
	uint64_t version;      /* shared model version (deltas folded) */
	uint64_t positives;    /* labels the model has learned */
	uint64_t negatives;
	uint64_t timeouts;     /* negatives by label_timeout, this process */
	uint64_t scored;       /* lead scorings, this process */
	uint64_t published;    /* ScoreChange events produced, this process */
	uint64_t eval_labels;  /* pairs in the evaluation window */
	double auc, logloss, ece; /* over the window; NaN when undefined */
} ls_scorer_model_stats;

/*
 * What the scorer is built from (the daemon fills it from `models:` and
 * kafka.topics.scores, ls_settings_scorer()). Both are copied by
 * ls_scorer_new(); the settings need not outlive the call.
 */
typedef struct ls_scorer_settings {
	const ls_model_spec *models; /* n_models checked specs, in config order */
	size_t n_models;             /* 0..LS_MODEL_MAX */
	const char *scores_topic;    /* where ScoreChange events go */
} ls_scorer_settings;

/*
 * fn(ud, seconds) is called for every ScoreChange produced for an event,
 * with the wall clock minus the event's ts (event time to score
 * published; large for replayed history). NULL turns it off.
 */
void ls_scorer_set_publish_observer(ls_scorer *sc, void (*fn)(void *ud, double seconds),
				    void *ud);

/*
 * The models of s (copied) over feature set set and lead_conf (both kept
 * by pointer) publishing through producer (not owned) and keeping shared
 * state in store. NULL with a reason when a model cannot be built or s
 * has more than LS_MODEL_MAX models.
 */
ls_scorer *ls_scorer_new(const ls_scorer_settings *s, const ls_feature_set *set,
			 const ls_lead_conf *lead_conf, ls_codec *codec,
			 rd_kafka_t *producer, ls_store *store, char *err,
			 size_t errlen);

/*
 * After a live reload: copy the model specs of s (the reloaded settings),
 * so the live keys (min_delta, tiers, hysteresis, decay, shadow) apply
 * from the next score on. The models keep their learned state; the list
 * must name the same models in the same order (a list that differs needs
 * a restart, and then nothing changes here). s->scores_topic is not
 * reloadable and is ignored.
 */
void ls_scorer_reload(ls_scorer *sc, const ls_scorer_settings *s);
void ls_scorer_free(ls_scorer *sc);

/* Learn what ev labels before it is applied to lead. *changed is set when
 * the lead's scoring state changed (it must be written). 0, or -1 with a
 * reason (out of memory, corrupt state). */
int ls_scorer_before_apply(ls_scorer *sc, ls_lead *lead, const ls_event *ev,
			   bool *changed, char *err, size_t errlen);

/*
 * label_timeout sweep. A lead whose label is still open for a model with
 * a label_timeout is kept in the sorted set ls_scorer_due_key(model,
 * partition) with its deadline as score (the pipeline adds and removes it
 * at commit, from ls_scorer_due()); the pipeline reads the due members of
 * the partitions it owns against their event-time watermark and calls
 * ls_scorer_expire(), which learns the timeout negative of every model
 * whose deadline is <= now_ts (event time), with the lead's features as
 * they stood at the deadline.
 */
int ls_scorer_expire(ls_scorer *sc, ls_lead *lead, int64_t now_ts,
		     bool *changed, char *err, size_t errlen);
int64_t ls_scorer_timeout_ms(const ls_scorer *sc, size_t i);
int ls_scorer_due_key(const ls_scorer *sc, size_t i, int32_t partition,
		      char *buf, size_t cap);
/*
 * Whether applying ev to lead would teach some model its label: ev is an
 * outcome in a model's label sets that the model has not learned for
 * lead yet (after a label_timeout negative, only a positive). The
 * pipeline then publishes the score the lead had just before it, so the
 * score history does not depend on where batches were cut. False on a
 * corrupt state (ls_scorer_before_apply reports it).
 */
bool ls_scorer_is_label(const ls_scorer *sc, const ls_lead *lead,
			const ls_event *ev);
/*
 * Whether every model has learned lead's label from an outcome (positive
 * or negative; a label_timeout negative does not count, a late
 * conversion is still learned). Idle rescoring stops for such a lead: its
 * scores no longer predict anything. False without models.
 */
bool ls_scorer_settled(const ls_scorer *sc, const ls_lead *lead);
/* Whether lead belongs in model i's due set, and its deadline. */
bool ls_scorer_due(const ls_scorer *sc, const ls_lead *lead, size_t i,
		   int64_t *deadline);

/*
 * The replay epoch (ls_store_next_epoch) for the ScoreChanges published
 * from now on: versions are ls_scorestate_next_version(stored, epoch). The
 * pipeline sets a new one every time it starts reading from the stored
 * offsets again, so a replay never reuses a version published (and
 * perhaps never committed) before it. 0 (the default) adds nothing.
 */
void ls_scorer_set_epoch(ls_scorer *sc, uint64_t epoch);

/*
 * Rescore lead with its features at T (LS_LEAD_AT_WATERMARK after its own
 * events; a later event time when it is rescored idle, cause NULL) and
 * publish where due; the ScoreChange carries T (or the watermark) as ts.
 * *produced counts messages queued. A ScoreChange that can never be
 * produced (too large for message.max.bytes, or not encodable) is counted
 * (ls_scorer_skipped) and skipped, the lead's score state moving on as if
 * it were published; a full producer queue is waited out (30 s at most).
 */
int ls_scorer_score(ls_scorer *sc, const char *lead_id, ls_lead *lead,
		    int64_t T, const ls_event *cause, bool *changed,
		    size_t *produced, char *err, size_t errlen);

/* The log entries of this commit (one per model that learned); valid until
 * the next call. */
int ls_scorer_commit_appends(ls_scorer *sc, const ls_store_append **a,
			     size_t *n, char *err, size_t errlen);
/*
 * The appends were taken into a commit that is now on its way: what was
 * learned up to here is set aside as that commit's (a copy of the local
 * models and their pending labels), and learning goes on locally for the
 * next commit. 0, or -1 out of memory (nothing set aside).
 */
int ls_scorer_stage(ls_scorer *sc);
/*
 * The commit that carried the appends succeeded: the set-aside state is
 * the committed one (without ls_scorer_stage: the local state is) / the
 * commit failed or the batch was dropped: everything since the last
 * successful commit is forgotten.
 */
void ls_scorer_committed(ls_scorer *sc);
void ls_scorer_discard(ls_scorer *sc);
/* ScoreChanges are produced with this opaque (delivery reports see it). */
void ls_scorer_set_produce_opaque(ls_scorer *sc, void *opaque);

/*
 * Fold the shared models' logs, save them and adopt them, keeping what
 * was learned since the last commit on top (it is the next commit's).
 * Call with no commit on its way (none staged). 0, or -1 with a reason
 * (the models are then unchanged; the log keeps everything).
 */
int ls_scorer_checkpoint(ls_scorer *sc, char *err, size_t errlen);
/*
 * Models adopted by checkpoints so far. A checkpoint that finds the
 * shared model as this instance last adopted it and no log to fold
 * (nobody learned since) writes and adopts nothing, so this tells
 * whether the models as HTTP should see them moved.
 */
uint64_t ls_scorer_adoptions(const ls_scorer *sc);

/*
 * The score model fm (of spec) publishes for its raw prediction p: shrunk
 * toward its base rate while young (ls_score_shrink, with fm's bias
 * weight and label counts). The HTTP API scores leads with the same.
 */
double ls_scorer_published(const ls_ftrl *fm, const ls_model_spec *spec, double p);
/* fm's bias weight w0. */
double ls_scorer_bias(const ls_ftrl *fm);

/*
 * An immutable copy of every model and its stats, for other threads
 * (HTTP): they may predict and explain with it concurrently, specs
 * included.
 */
typedef struct ls_scorer_snapshot_model {
	ls_model_spec spec; /* a copy: a reload changes the scorer's in place */
	ls_scorer_model_stats stats;
	ls_ftrl *model;
} ls_scorer_snapshot_model;

typedef struct ls_scorer_snapshot {
	size_t n;
	ls_scorer_snapshot_model m[LS_MODEL_MAX];
} ls_scorer_snapshot;

ls_scorer_snapshot *ls_scorer_snapshot_new(const ls_scorer *sc);
void ls_scorer_snapshot_free(ls_scorer_snapshot *s);

size_t ls_scorer_n_models(const ls_scorer *sc);
/* ScoreChanges skipped because they can never be produced. */
uint64_t ls_scorer_skipped(const ls_scorer *sc);
void ls_scorer_stats(const ls_scorer *sc, size_t i, ls_scorer_model_stats *out);

/*
 * Fold a model's shared state as read from Redis into a model and an
 * evaluation window (what a checkpoint and leadscorectl do). fresh is used
 * as the starting point when no checkpoint is stored (cloned). *skipped
 * counts log entries of another layout. 0, LS_SCORER_OTHER_LAYOUT with a
 * reason when the stored model is of another layout than fresh (the
 * configuration changed; a checkpoint then starts the shared model
 * afresh, see docs/configuration.md "Numeric feature maps"), or -1 with a reason.
 */
#define LS_SCORER_OTHER_LAYOUT (-2)
int ls_scorer_fold(const ls_store_model_state *st, const ls_ftrl *fresh,
		   size_t eval_window, ls_ftrl **model, ls_eval **eval,
		   size_t *skipped, char *err, size_t errlen);

#endif
