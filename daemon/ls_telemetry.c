/*
 * ls_telemetry.c - see ls_telemetry.h. Bucket bounds are chosen for what
 * each histogram measures: a batch takes milliseconds, a Redis round trip
 * tens of microseconds to milliseconds, event-to-score is dominated by the
 * commit interval (200 ms default) and HTTP by Redis or nothing.
 */
#include "ls_telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ls_scorer.h"

static const double batch_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					0.05, 0.1, 0.25, 0.5, 1, 2.5 };
static const double redis_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					0.01, 0.025, 0.05, 0.1, 0.5, 1 };
static const double score_buckets[] = { 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
					1, 2, 5, 10, 60, 600, 3600 };
/* read to ScoreChange: a batch's work, its wait for alignment or a slow
 * Redis (the record timestamp's adds the way through the producer and
 * the broker, or all of the history when catching up) */
static const double latency_buckets[] = { 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
					  0.1, 0.2, 0.5, 1, 2, 5, 10, 60, 600, 3600 };
static const double http_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
				       0.01, 0.025, 0.05, 0.1, 0.5, 1 };

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_MODELS 8

struct ls_telemetry {
	ls_metrics *reg;
	char *topics[LS_SOURCE__COUNT];
	ls_counter_vec *consumed, *dead, *late, *published, *labels, *bandit_events;
	ls_counter_vec *skipped, *truncated;
	ls_gauge_vec *failed_in_row;
	ls_counter_vec *profile_dropped;
	ls_gauge_vec *auc, *logloss, *ece;
	ls_histogram *batch, *redis, *score, *read_to_score, *record_to_score;
	ls_histogram_vec *http;
	ls_counter_vec *http_dropped;
	ls_gauge *http_open;
	ls_pipeline_stats last;
	uint64_t last_model[MAX_MODELS][4]; /* published, positives, negatives, timeouts */
	pthread_mutex_t src_mu;
	ls_kafka_consumer *consumer;
	ls_campaign *campaigns;
};

static int reg_counter(ls_telemetry *t, ls_counter_vec **out, const char *name,
		       const char *help, const char *l1, const char *l2, char *err, size_t errlen)
{
	ls_metrics_desc d = { .name = name, .help = help, .labels = { l1, l2, NULL } };
	*out = ls_metrics_counter(t->reg, &d, err, errlen);
	return *out == NULL ? -1 : 0;
}

static int reg_gauge(ls_telemetry *t, ls_gauge_vec **out, const char *name, const char *help,
		     const char *l1, char *err, size_t errlen)
{
	ls_metrics_desc d = { .name = name, .help = help, .labels = { l1, NULL } };
	*out = ls_metrics_gauge(t->reg, &d, err, errlen);
	return *out == NULL ? -1 : 0;
}

static ls_histogram *reg_hist(ls_telemetry *t, const char *name, const char *help,
			      const double *b, size_t nb, char *err, size_t errlen)
{
	ls_metrics_desc d = { .name = name, .help = help, .buckets = b, .nbuckets = nb };
	ls_histogram_vec *v = ls_metrics_histogram(t->reg, &d, err, errlen);
	return v == NULL ? NULL : ls_histogram_vec_get(v, NULL);
}

/* consumer_lag per topic and partition from librdkafka's statistics */
static void collect_lag(ls_metrics_sink *sink, void *arg)
{
	ls_telemetry *t = arg;
	pthread_mutex_lock(&t->src_mu);
	char *js = ls_kafka_consumer_stats(t->consumer);
	pthread_mutex_unlock(&t->src_mu);
	if (js == NULL)
		return;
	json_t *root = json_loads(js, 0, NULL);
	free(js);
	json_t *topics = json_object_get(root, "topics");
	const char *tname;
	json_t *tv;
	json_object_foreach(topics, tname, tv) {
		const char *pname;
		json_t *pv;
		json_object_foreach(json_object_get(tv, "partitions"), pname, pv) {
			if (strcmp(pname, "-1") == 0)
				continue; /* librdkafka's internal unassigned partition */
			json_t *assigned = json_object_get(pv, "fetch_state");
			if (json_is_string(assigned) && strcmp(json_string_value(assigned), "none") == 0)
				continue; /* not ours */
			/* librdkafka's consumer_lag is measured from the offset
			 * committed to Kafka, and leadscore commits its offsets to
			 * Redis instead: measure from the position instead, what
			 * the application has been given (app_offset) or, before
			 * that, where fetching resumes (next_offset) */
			json_int_t hi = json_integer_value(json_object_get(pv, "hi_offset"));
			json_int_t app = json_integer_value(json_object_get(pv, "app_offset"));
			json_int_t next = json_integer_value(json_object_get(pv, "next_offset"));
			json_t *jl = json_object_get(pv, "consumer_lag");
			double lag = json_is_integer(jl) ? (double)json_integer_value(jl) : -1.0;
			if (hi >= 0 && app >= 0)
				lag = (double)(hi > app ? hi - app : 0);
			else if (hi >= 0 && next >= 0)
				lag = (double)(hi > next ? hi - next : 0);
			const char *vals[2] = { tname, pname };
			ls_metrics_emit(sink, vals, lag);
		}
	}
	json_decref(root);
}

typedef struct bandit_ctx {
	ls_metrics_sink *sink;
	bool rewards;
} bandit_ctx;

static void bandit_one(void *ud, const char *campaign, const char *arm, double decisions,
		       double rewards)
{
	bandit_ctx *b = ud;
	double v = b->rewards ? rewards : decisions;
	if (isnan(v))
		return;
	const char *vals[2] = { campaign, arm };
	ls_metrics_emit(b->sink, vals, v);
}

static void collect_bandit(ls_metrics_sink *sink, void *arg, bool rewards)
{
	ls_telemetry *t = arg;
	pthread_mutex_lock(&t->src_mu);
	if (t->campaigns != NULL) {
		bandit_ctx b = { sink, rewards };
		ls_campaign_collect(t->campaigns, bandit_one, &b);
	}
	pthread_mutex_unlock(&t->src_mu);
}

static void collect_decisions(ls_metrics_sink *sink, void *arg)
{
	collect_bandit(sink, arg, false);
}

static void collect_rewards(ls_metrics_sink *sink, void *arg)
{
	collect_bandit(sink, arg, true);
}

static void collect_capped(ls_metrics_sink *sink, void *arg)
{
	ls_telemetry *t = arg;
	pthread_mutex_lock(&t->src_mu);
	if (t->campaigns != NULL) {
		bandit_ctx b = { sink, false };
		ls_campaign_collect_capped(t->campaigns, bandit_one, &b);
	}
	pthread_mutex_unlock(&t->src_mu);
}

static void collect_unlogged(ls_metrics_sink *sink, void *arg)
{
	ls_telemetry *t = arg;
	uint64_t n[LS_CAMPAIGN_UNLOGGED__COUNT] = { 0 };
	pthread_mutex_lock(&t->src_mu);
	bool have = t->campaigns != NULL;
	if (have)
		ls_campaign_unlogged_counts(t->campaigns, n);
	pthread_mutex_unlock(&t->src_mu);
	for (int i = 0; have && i < LS_CAMPAIGN_UNLOGGED__COUNT; i++) {
		const char *vals[1] = { ls_campaign_unlogged_name((ls_campaign_unlogged)i) };
		ls_metrics_emit(sink, vals, (double)n[i]);
	}
}

static void collect_redis_memory(ls_metrics_sink *sink, void *arg)
{
	ls_telemetry *t = arg;
	pthread_mutex_lock(&t->src_mu);
	long long m = t->campaigns != NULL ? ls_campaign_redis_memory(t->campaigns) : -1;
	pthread_mutex_unlock(&t->src_mu);
	if (m >= 0)
		ls_metrics_emit(sink, NULL, (double)m);
}

ls_telemetry *ls_telemetry_new(const ls_config *cfg, const char *version, char *err,
			       size_t errlen)
{
	ls_telemetry *t = calloc(1, sizeof *t);
	if (t == NULL || (t->reg = ls_metrics_new()) == NULL) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->src_mu, NULL);
	const char *topics[LS_SOURCE__COUNT] = {
		cfg->kafka.topics.email, cfg->kafka.topics.web, cfg->kafka.topics.call,
		cfg->kafka.topics.outcome, cfg->kafka.topics.profile,
	};
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		if ((t->topics[i] = strdup(topics[i])) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	ls_gauge_vec *build;
	if (reg_counter(t, &t->consumed, "leadscore_events_consumed_total",
			"Events decoded and accepted from the input topics, by topic and event type.",
			"topic", "type", err, errlen) != 0 ||
	    reg_counter(t, &t->dead, "leadscore_events_dead_lettered_total",
			"Records sent to the dead-letter topic, by reason.", "reason", NULL, err,
			errlen) != 0 ||
	    reg_counter(t, &t->late, "leadscore_events_late_dropped_total",
			"Events older than the lead's watermark minus pipeline.grace, dropped.",
			"topic", NULL, err, errlen) != 0 ||
	    reg_counter(t, &t->profile_dropped, "leadscore_profile_entries_dropped_total",
			"Profile attributes and metrics not kept, by reason (a lead's caps, key or value too long, not finite).",
			"reason", NULL, err, errlen) != 0 ||
	    reg_counter(t, &t->published, "leadscore_score_changes_published_total",
			"ScoreChange records produced, by model.", "model", NULL, err, errlen) != 0 ||
	    reg_counter(t, &t->labels, "leadscore_model_labels_total",
			"Labels learned by this process, by model and label (positive, negative, timeout).",
			"model", "label", err, errlen) != 0 ||
	    reg_counter(t, &t->bandit_events, "leadscore_bandit_email_events_total",
			"Email events carrying a decision_id, by what they did to the decision.",
			"outcome", NULL, err, errlen) != 0 ||
	    reg_gauge(t, &t->auc, "leadscore_model_auc",
		      "Progressive-validation AUC over the model's evaluation window.", "model", err,
		      errlen) != 0 ||
	    reg_gauge(t, &t->logloss, "leadscore_model_logloss",
		      "Progressive-validation log-loss over the model's evaluation window.", "model",
		      err, errlen) != 0 ||
	    reg_gauge(t, &t->ece, "leadscore_model_calibration_error",
		      "Expected calibration error (10 bins) over the model's evaluation window.",
		      "model", err, errlen) != 0 ||
	    reg_counter(t, &t->skipped, "leadscore_score_changes_skipped_total",
			"ScoreChange records that can never be produced (too large), skipped.", NULL,
			NULL, err, errlen) != 0 ||
	    reg_counter(t, &t->truncated, "leadscore_dead_letters_truncated_total",
			"Dead letters sent as a truncated copy (ls.truncated header): the record was too large for the producer or broker.",
			NULL, NULL, err, errlen) != 0 ||
	    reg_gauge(t, &t->failed_in_row, "leadscore_batches_failed_consecutive",
		      "Batches thrown away (to be replayed) since the last successful commit.", NULL,
		      err, errlen) != 0 ||
	    reg_gauge(t, &build, "leadscore_build_info",
		      "Always 1; the version of the running leadscored.", "version", err,
		      errlen) != 0)
		goto fail;
	t->batch = reg_hist(t, "leadscore_batch_seconds",
			    "Time to apply one micro-batch, decode to scores.", batch_buckets,
			    N(batch_buckets), err, errlen);
	t->redis = reg_hist(t, "leadscore_redis_roundtrip_seconds",
			    "Redis round trips of the batch loop (lead loads and commits).",
			    redis_buckets, N(redis_buckets), err, errlen);
	t->score = reg_hist(t, "leadscore_event_to_score_seconds",
			    "Wall clock at ScoreChange produced minus the causing event's ts.",
			    score_buckets, N(score_buckets), err, errlen);
	t->read_to_score = reg_hist(t, "leadscore_read_to_score_seconds",
				    "From reading a record off Kafka to producing the ScoreChange it caused.",
				    latency_buckets, N(latency_buckets), err, errlen);
	t->record_to_score = reg_hist(t, "leadscore_record_to_score_seconds",
				      "From the causing record's Kafka timestamp to producing its ScoreChange.",
				      latency_buckets, N(latency_buckets), err, errlen);
	if (t->batch == NULL || t->redis == NULL || t->score == NULL ||
	    t->read_to_score == NULL || t->record_to_score == NULL)
		goto fail;
	ls_metrics_desc hd = { .name = "leadscore_http_request_seconds",
			       .help = "HTTP requests by route template and status code.",
			       .labels = { "route", "code", NULL }, .buckets = http_buckets,
			       .nbuckets = N(http_buckets) };
	if ((t->http = ls_metrics_histogram(t->reg, &hd, err, errlen)) == NULL)
		goto fail;
	ls_gauge_vec *open;
	if (reg_counter(t, &t->http_dropped, "leadscore_http_connections_dropped_total",
			"HTTP connections refused at accept (connection_limit, address_limit, out_of_fds) or closed for taking longer than http.request_timeout (request_timeout).",
			"reason", NULL, err, errlen) != 0 ||
	    reg_gauge(t, &open, "leadscore_http_connections",
		      "HTTP connections open now.", NULL, err, errlen) != 0)
		goto fail;
	t->http_open = ls_gauge_vec_get(open, NULL);
	static const char *const dropped[] = { "connection_limit", "address_limit", "out_of_fds",
					       "request_timeout" };
	for (size_t i = 0; i < N(dropped); i++) /* each shows 0 from the first scrape */
		ls_counter_vec_get(t->http_dropped, (const char *[]){ dropped[i] });
	ls_metrics_desc lag = { .name = "leadscore_consumer_lag_messages",
				.help = "Messages behind the partition's end, from librdkafka statistics (-1 unknown).",
				.labels = { "topic", "partition", NULL } };
	ls_metrics_desc dec = { .name = "leadscore_bandit_decisions_total",
				.help = "Bandit decisions made by this process, by campaign and variant.",
				.labels = { "campaign", "variant", NULL } };
	ls_metrics_desc rew = { .name = "leadscore_bandit_rewards_total",
				.help = "Sum of resolved rewards by campaign and variant, over every instance (from Redis, as of the last snapshot).",
				.labels = { "campaign", "variant", NULL } };
	ls_metrics_desc capped = { .name = "leadscore_bandit_bucket_capped_total",
				   .help = "Bandit decisions of this process whose context bucket was past max_buckets (decided and counted campaign-wide), by campaign and variant.",
				   .labels = { "campaign", "variant", NULL } };
	ls_metrics_desc unlogged = { .name = "leadscore_bandit_decisions_unlogged_total",
				     .help = "Bandit decisions of this process whose Redis record (reason redis) or decisions-topic record (encode, produce, delivery) was not written.",
				     .labels = { "reason", NULL } };
	ls_metrics_desc mem = { .name = "leadscore_redis_memory_bytes",
				.help = "Redis used_memory (INFO memory), read every 5 s." };
	if (ls_metrics_callback(t->reg, LS_METRICS_GAUGE, &lag, collect_lag, t, err, errlen) != 0 ||
	    ls_metrics_callback(t->reg, LS_METRICS_COUNTER, &dec, collect_decisions, t, err,
				errlen) != 0 ||
	    ls_metrics_callback(t->reg, LS_METRICS_COUNTER, &rew, collect_rewards, t, err,
				errlen) != 0 ||
	    ls_metrics_callback(t->reg, LS_METRICS_COUNTER, &capped, collect_capped, t, err,
				errlen) != 0 ||
	    ls_metrics_callback(t->reg, LS_METRICS_COUNTER, &unlogged, collect_unlogged, t, err,
				errlen) != 0 ||
	    ls_metrics_callback(t->reg, LS_METRICS_GAUGE, &mem, collect_redis_memory, t, err,
				errlen) != 0 ||
	    ls_metrics_add_process(t->reg, err, errlen) != 0)
		goto fail;
	const char *v[1] = { version };
	ls_gauge_set(ls_gauge_vec_get(build, v), 1.0);
	return t;
fail:
	ls_telemetry_free(t);
	return NULL;
}

void ls_telemetry_free(ls_telemetry *t)
{
	if (t == NULL)
		return;
	ls_metrics_free(t->reg);
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		free(t->topics[i]);
	pthread_mutex_destroy(&t->src_mu);
	free(t);
}

void ls_telemetry_set_sources(ls_telemetry *t, ls_kafka_consumer *consumer,
			      ls_campaign *campaigns)
{
	pthread_mutex_lock(&t->src_mu);
	t->consumer = consumer;
	t->campaigns = campaigns;
	pthread_mutex_unlock(&t->src_mu);
}

static void obs_batch(void *ud, double s) { ls_histogram_observe(((ls_telemetry *)ud)->batch, s); }
static void obs_redis(void *ud, double s) { ls_histogram_observe(((ls_telemetry *)ud)->redis, s); }
static void obs_score(void *ud, double s) { ls_histogram_observe(((ls_telemetry *)ud)->score, s); }

static void obs_latency(void *ud, double read_s, double record_s)
{
	ls_telemetry *t = ud;
	ls_histogram_observe(t->read_to_score, read_s);
	if (record_s >= 0)
		ls_histogram_observe(t->record_to_score, record_s);
}

ls_pipeline_observer ls_telemetry_observer(ls_telemetry *t)
{
	return (ls_pipeline_observer){ .batch = obs_batch, .redis = obs_redis, .score = obs_score,
				       .latency = obs_latency, .ud = t };
}

static void add(ls_counter_vec *v, const char *a, const char *b, uint64_t now, uint64_t before)
{
	if (now <= before)
		return;
	const char *vals[2] = { a, b };
	ls_counter_add(ls_counter_vec_get(v, vals), now - before);
}

void ls_telemetry_publish(ls_telemetry *t, const ls_pipeline *p)
{
	const ls_pipeline_stats *st = ls_pipeline_stats_get(p);
	for (int s = 0; s < LS_SOURCE__COUNT; s++) {
		for (int i = 0; i < LS_PIPELINE_MAX_TYPES; i++) {
			const char *type = ls_pipeline_event_type_name(s, i);
			if (type != NULL)
				add(t->consumed, t->topics[s], type, st->consumed_type[s][i],
				    t->last.consumed_type[s][i]);
		}
		add(t->late, t->topics[s], NULL, st->too_late[s], t->last.too_late[s]);
	}
	for (int r = 0; r < LS_DLQ_REASON__COUNT; r++)
		add(t->dead, ls_pipeline_dlq_reason_name(r), NULL, st->dead_lettered[r],
		    t->last.dead_lettered[r]);
	for (int r = 0; r < LS_LEAD_DROP__COUNT; r++)
		add(t->profile_dropped, ls_lead_drop_name(r), NULL, st->profile_dropped[r],
		    t->last.profile_dropped[r]);
	for (int o = 0; o < LS_CAMPAIGN_O__COUNT; o++)
		add(t->bandit_events, ls_campaign_outcome_name((ls_campaign_outcome)o), NULL,
		    st->bandit[o], t->last.bandit[o]);
	add(t->skipped, NULL, NULL, st->score_changes_skipped, t->last.score_changes_skipped);
	add(t->truncated, NULL, NULL, st->dead_letters_truncated, t->last.dead_letters_truncated);
	ls_gauge_set(ls_gauge_vec_get(t->failed_in_row, NULL), (double)st->failed_batches_in_row);
	t->last = *st;
	const ls_scorer *sc = ls_pipeline_scorer(p);
	size_t nm = ls_scorer_n_models(sc);
	for (size_t i = 0; i < nm && i < MAX_MODELS; i++) {
		ls_scorer_model_stats ms;
		ls_scorer_stats(sc, i, &ms);
		uint64_t now[4] = { ms.published, ms.positives, ms.negatives, ms.timeouts };
		add(t->published, ms.name, NULL, now[0], t->last_model[i][0]);
		/* positives and negatives include what other instances learned
		 * (the shared model); the counter only ever moves forward */
		add(t->labels, ms.name, "positive", now[1], t->last_model[i][1]);
		add(t->labels, ms.name, "negative", now[2], t->last_model[i][2]);
		add(t->labels, ms.name, "timeout", now[3], t->last_model[i][3]);
		for (int k = 0; k < 4; k++)
			if (now[k] > t->last_model[i][k])
				t->last_model[i][k] = now[k];
		const char *v[1] = { ms.name };
		ls_gauge_set(ls_gauge_vec_get(t->auc, v), ms.auc);
		ls_gauge_set(ls_gauge_vec_get(t->logloss, v), ms.logloss);
		ls_gauge_set(ls_gauge_vec_get(t->ece, v), ms.ece);
	}
}

void ls_telemetry_http(ls_telemetry *t, const char *route, unsigned code, double seconds)
{
	char c[8];
	snprintf(c, sizeof c, "%u", code);
	const char *v[2] = { route, c };
	ls_histogram_observe(ls_histogram_vec_get(t->http, v), seconds);
}

void ls_telemetry_http_dropped(ls_telemetry *t, const char *reason)
{
	const char *v[1] = { reason };
	ls_counter_inc(ls_counter_vec_get(t->http_dropped, v));
}

void ls_telemetry_http_connections(ls_telemetry *t, double delta)
{
	ls_gauge_add(t->http_open, delta);
}

char *ls_telemetry_render(ls_telemetry *t, size_t *len)
{
	return ls_metrics_render(t->reg, len);
}
