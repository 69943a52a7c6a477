/*
 * ls_settings.c - config keys to pipeline settings.
 *
 * Why a seam here: the pipeline modules are built from narrow structs so
 * that they can be built, tested and reasoned about without the YAML
 * config; the mapping from keys to those structs is the daemon's
 * business, and keeping it in one file shows at a glance which keys reach
 * which module.
 */
#include "ls_settings.h"

#include "ls_dlq.h"

/* ---- store, Kafka, scorer ---- */

ls_store_settings ls_settings_store(const ls_config *cfg)
{
	ls_store_settings ss = {
		.url = cfg->redis.url,
		.key_prefix = cfg->redis.key_prefix,
		.group_id = cfg->kafka.group_id,
		.lead_ttl_ms = cfg->redis.lead_ttl_ms,
		.connect_timeout_ms = cfg->redis.connect_timeout_ms,
		.command_timeout_ms = cfg->redis.command_timeout_ms,
	};
	return ss;
}

ls_kafka_settings ls_settings_kafka(const ls_config *cfg)
{
	ls_kafka_settings ks = {
		.brokers = cfg->kafka.brokers,
		.group_id = cfg->kafka.group_id,
		.topics = {
			.email = cfg->kafka.topics.email,
			.web = cfg->kafka.topics.web,
			.call = cfg->kafka.topics.call,
			.outcome = cfg->kafka.topics.outcome,
			.profile = cfg->kafka.topics.profile,
			.scores = cfg->kafka.topics.scores,
			.dead_letter = cfg->kafka.topics.dead_letter,
			.decisions = cfg->kafka.topics.decisions,
		},
		.n_properties = cfg->kafka.n_properties,
		.properties = cfg->kafka.properties,
	};
	return ks;
}

ls_scorer_settings ls_settings_scorer(const ls_config *cfg)
{
	ls_scorer_settings sc = { .scores_topic = cfg->kafka.topics.scores };
	sc.models = ls_config_models(cfg, &sc.n_models);
	return sc;
}

/* ---- pipeline (ls_pipeline.h) ---- */

_Static_assert(LS_DLQ_DEFAULT_MESSAGE_MAX == LS_CONFIG_DEFAULT_MESSAGE_MAX,
	       "the producer's fallback message.max.bytes is the config's");

void ls_settings_pipeline(const ls_config *cfg, ls_pipeline_settings *out)
{
	*out = (ls_pipeline_settings){ 0 };
	out->topics[LS_SOURCE_EMAIL] = cfg->kafka.topics.email;
	out->topics[LS_SOURCE_WEB] = cfg->kafka.topics.web;
	out->topics[LS_SOURCE_CALL] = cfg->kafka.topics.call;
	out->topics[LS_SOURCE_OUTCOME] = cfg->kafka.topics.outcome;
	out->topics[LS_SOURCE_PROFILE] = cfg->kafka.topics.profile;
	out->dead_letter_topic = cfg->kafka.topics.dead_letter;
	out->features = ls_config_features(cfg, &out->n_features);
	ls_config_lead_conf(cfg, NULL, &out->lead_conf);
	out->cache_leads = cfg->pipeline.cache_leads;
	out->max_record_size = cfg->pipeline.max_record_size;
	out->max_id_bytes = cfg->pipeline.max_id_bytes;
	out->live = (struct ls_pipeline_live){
		.batch_size = cfg->pipeline.batch_size,
		.batch_max_wait_ms = cfg->pipeline.batch_max_wait_ms,
		.commit_interval_ms = cfg->pipeline.commit_interval_ms,
		.align_stall_ms = cfg->pipeline.align_stall_ms,
		.max_future_skew_ms = cfg->pipeline.max_future_skew_ms,
		.dead_letter_log_rate = cfg->pipeline.dead_letter_log_rate,
		.checkpoint_interval_ms = cfg->scoring.checkpoint_interval_ms,
		.rescore_interval_ms = cfg->scoring.rescore_interval_ms,
		.lead_ttl_ms = cfg->redis.lead_ttl_ms,
		.campaigns = ls_settings_campaign(cfg),
	};
	out->kafka = ls_settings_kafka(cfg);
	out->scorer = ls_settings_scorer(cfg);
}

/* ---- campaign service ---- */

ls_campaign_settings ls_settings_campaign(const ls_config *cfg)
{
	ls_campaign_settings cs = {
		.specs = cfg->campaigns.specs,
		.n_specs = cfg->campaigns.n,
		.key_prefix = cfg->redis.key_prefix,
		.redis_url = cfg->redis.url,
		.connect_timeout_ms = cfg->redis.connect_timeout_ms,
		.command_timeout_ms = cfg->redis.command_timeout_ms,
		.kafka = ls_settings_kafka(cfg),
	};
	return cs;
}

