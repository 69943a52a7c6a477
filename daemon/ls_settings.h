/*
 * ls_settings.h - the pipeline's settings structs, filled from a loaded
 * ls_config: the one place that knows which config keys each pipeline
 * module reads, so pipeline/ never sees ls_config.h.
 *
 * Memory: every result borrows cfg's strings and arrays (nothing is
 * allocated); it is valid until ls_config_free(cfg), and the model specs
 * only until ls_config_apply_live(cfg, ...) (take the settings again after
 * a reload). Errors: none; a loaded config has passed every check the
 * modules repeat. Thread-safety: reads cfg only, safe on an immutable cfg.
 */
#ifndef LS_SETTINGS_H
#define LS_SETTINGS_H

#include "ls_campaign.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_pipeline.h"
#include "ls_scorer.h"
#include "ls_store.h"

/* ---- store, Kafka, scorer ---- */

/* redis.* and kafka.group_id (which names the offsets hash). */
ls_store_settings ls_settings_store(const ls_config *cfg);

/* kafka.brokers, group_id, topics and properties. */
ls_kafka_settings ls_settings_kafka(const ls_config *cfg);

/* The models to run (ls_config_models()) and kafka.topics.scores. */
ls_scorer_settings ls_settings_scorer(const ls_config *cfg);

/* ---- pipeline (ls_pipeline.h) ---- */

/* The pipeline's settings from cfg: its pipeline.* keys, topics, features,
 * lead conf, and the Kafka, scorer and campaign settings it passes on. */
void ls_settings_pipeline(const ls_config *cfg, ls_pipeline_settings *out);

/* ---- campaign service ---- */

/* `campaigns:`, redis.key_prefix, redis.url and its timeouts, and the
   Kafka settings of the decision log producer (ls_settings_kafka()). */
ls_campaign_settings ls_settings_campaign(const ls_config *cfg);

#endif
