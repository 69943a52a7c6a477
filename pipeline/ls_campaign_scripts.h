/*
 * ls_campaign_scripts.h - the campaign service's Lua scripts: activation,
 * reward (and expiry with the default reward) and the trim of counters
 * past max_buckets. Each runs atomically in Redis on one campaign's hash
 * tag and is idempotent; their KEYS and ARGV are documented beside their
 * text in ls_campaign_scripts.c.
 *
 * They are sent with EVAL every time (the text, not its SHA): no script
 * cache to lose on a Redis restart or failover, for a few kilobytes per
 * call that the batching already amortises. Memory: static strings;
 * thread-safety: read-only data.
 */
#ifndef LS_CAMPAIGN_SCRIPTS_H
#define LS_CAMPAIGN_SCRIPTS_H

#include <stddef.h>

extern const char ls_campaign_act_script[];
extern const size_t ls_campaign_act_script_len;
extern const char ls_campaign_rew_script[];
extern const size_t ls_campaign_rew_script_len;
extern const char ls_campaign_trim_script[];
extern const size_t ls_campaign_trim_script_len;

#endif
