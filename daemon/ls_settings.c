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

/* ---- end of store, Kafka, scorer ---- */

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

/* ---- end of campaign service ---- */
