/*
 * ls_settings.h - the narrow settings structs the layers below the daemon
 * are built from, filled from the loaded YAML config (ls_config). Only
 * the daemon sees ls_config; pipeline/ modules see their settings struct.
 *
 * Memory: a settings struct points into the config it was built from
 * (the config must outlive it) unless a function says otherwise.
 * Errors: as each function says. Thread-safety: the config's (read only).
 */
#ifndef LS_SETTINGS_H
#define LS_SETTINGS_H

#include <stddef.h>

#include "ls_campaign.h"
#include "ls_config.h"

/* ---------------------------------------------- campaign service */

/*
 * The campaign service's settings from cfg: campaigns, redis.key_prefix,
 * redis.url and timeouts, kafka.topics.decisions. producer_conf is NULL:
 * ls_campaign_reconfigure and ls_campaign_event_op need none. Pure.
 */
ls_campaign_settings ls_settings_campaign(const ls_config *cfg);

/*
 * Start the campaign service for cfg: ls_settings_campaign() with the
 * decision log producer's librdkafka conf (ls_kafka_conf_new: brokers,
 * kafka.properties), which is freed here once the service has its copy.
 * NULL with a reason, as ls_campaign_start.
 */
ls_campaign *ls_settings_campaign_start(const ls_config *cfg, char *err, size_t errlen);

/* ------------------------------------------ end campaign service */

#endif
