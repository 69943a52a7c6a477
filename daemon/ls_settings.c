/*
 * ls_settings.c - see ls_settings.h for the contract.
 *
 * Why a module of its own: the config knows every key and the modules
 * below the daemon know none; these builders are the one place that
 * maps one onto the other, so a new setting of a pipeline module is
 * wired here, not threaded through ls_config.h into pipeline/.
 */
#include "ls_settings.h"

#include <librdkafka/rdkafka.h>

#include "ls_kafka.h"

/* ---------------------------------------------- campaign service */

ls_campaign_settings ls_settings_campaign(const ls_config *cfg)
{
	ls_campaign_settings st = {
		.specs = cfg->campaigns.specs,
		.n_specs = cfg->campaigns.n,
		.key_prefix = cfg->redis.key_prefix,
		.redis_url = cfg->redis.url,
		.connect_timeout_ms = cfg->redis.connect_timeout_ms,
		.command_timeout_ms = cfg->redis.command_timeout_ms,
		.decisions_topic = cfg->kafka.topics.decisions,
		.producer_conf = NULL,
	};
	return st;
}

ls_campaign *ls_settings_campaign_start(const ls_config *cfg, char *err, size_t errlen)
{
	ls_campaign_settings st = ls_settings_campaign(cfg);
	st.producer_conf = ls_kafka_conf_new(cfg, false, err, errlen);
	if (st.producer_conf == NULL)
		return NULL;
	ls_campaign *campaign = ls_campaign_start(&st, err, errlen);
	rd_kafka_conf_destroy(st.producer_conf);
	return campaign;
}

/* ------------------------------------------ end campaign service */
