/*
 * ls_settings.c - configuration to settings structs, in one place, so the
 * layers below the daemon depend on their own narrow structs only and the
 * mapping from config keys to what a module reads is visible at a glance.
 */
#include "ls_settings.h"

#include "ls_dlq.h"

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
		.n_campaigns = cfg->campaigns.n,
	};
	out->cfg = cfg;
}

/* ---- end pipeline ---- */
