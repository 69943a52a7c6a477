/*
 * ls_config.h - the daemon's configuration: built-in defaults, a YAML file,
 * LEADSCORE_* environment overrides, validation, and the diff used by
 * SIGHUP reloads.
 *
 * What: ls_config_load() fills an ls_config in four steps: built-in
 * defaults, then the YAML file, then environment overrides, then the check
 * for required keys. Every key is described once, in a table in
 * ls_config.c; the parser, the validator, the environment overrides, the
 * reload diff and ls_config_key_at() (from which the key reference in
 * docs/configuration.md is generated) all read that table.
 *
 * Memory: a loaded ls_config owns every string and array it points to;
 * release it with ls_config_free(). Nothing points into the YAML document
 * or the environment after loading returns.
 *
 * Errors: loading returns 0, or -1 with every problem found written to the
 * caller's buffer, one per line (separated by '\n', no trailing newline):
 *   file:line:column: dotted.key: message      (1-based line and column)
 *   environment LEADSCORE_X: message
 * Lines that do not fit in the buffer are dropped whole and counted in a
 * final "(N more errors)" line when that fits. On -1 the output config
 * has already been freed and zeroed, so ls_config_free() on it is a
 * harmless no-op. Messages never echo the value of redis.url,
 * http.auth_token or any kafka.properties entry, which may hold secrets.
 * kafka.properties are tried on a scratch librdkafka conf in file order: an
 * unknown name is an error at its key, a value librdkafka rejects one at
 * the value (with librdkafka's reason, the value masked);
 * enable.auto.commit and enable.partition.eof may only be false (the
 * consumer sets them). Nothing here logs, exits or
 * asserts on input. redis.url is validated with ls_redis_url_parse() so the
 * config and the Redis client accept exactly the same URLs.
 *
 * Thread-safety: loading is not thread-safe (it reads the process
 * environment, which setenv() may change under it). A loaded config is
 * immutable by convention and may be read from any thread. The key table,
 * the parsers and ls_config_diff() touch no shared state and are safe
 * from any thread.
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_bandit.h"      /* ls_campaign_spec */
#include "ls_codec.h"       /* ls_schema_writer */
#include "ls_eval.h"
#include "ls_event.h"
#include "ls_ftrl.h"
#include "ls_kv.h"
#include "ls_lead.h"
#include "ls_log.h"
#include "ls_model_spec.h" /* ls_model_spec */
#include "ls_window.h"

/* A map entry (kafka.properties): the config owns both strings. */
typedef ls_kv ls_config_kv;

typedef struct ls_config {
	char *path; /* file it was loaded from; NULL for built-in defaults */
	/*
	 * Warnings from loading, one per line ("file:line:column: key:
	 * message", '\n'-separated): a secret (a kafka.properties password,
	 * a redis.url with a password, http.auth_token) in a file every user
	 * can read (mode & 0004). Never quotes a value. NULL when none. Not
	 * compared by ls_config_diff() nor copied by ls_config_apply_live().
	 */
	char *warnings;
	struct {
		char *brokers;  /* required (file or environment) */
		char *group_id; /* default "leadscore" */
		struct {
			char *email, *web, *call, *outcome, *profile;
			char *scores, *dead_letter, *decisions;
		} topics; /* defaults leads.<name> */
		/* kafka.properties: passed through to librdkafka verbatim */
		size_t n_properties;
		ls_config_kv *properties;
	} kafka;
	struct {
		char *url;        /* as ls_redis_url_parse() accepts: redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N] */
		char *key_prefix; /* default "ls:" */
		int64_t lead_ttl_ms;
		int64_t connect_timeout_ms;
		int64_t command_timeout_ms;
	} redis;
	struct {
		char *listen;     /* host:port, default "127.0.0.1:8080" */
		char *auth_token; /* NULL: no authentication */
		int64_t threads;  /* 0: by the CPU count */
		int64_t max_connections;             /* 0: from the fd limit */
		int64_t max_connections_per_address; /* 0: max_connections / 8 */
		int64_t request_timeout_ms;          /* whole request, not idle time */
	} http;
	struct {
		ls_log_level level;
	} log;
	struct {
		int64_t batch_size;
		int64_t batch_max_wait_ms;
		int64_t commit_interval_ms; /* state + offsets written this often */
		int64_t shutdown_timeout_ms;
		int64_t align_stall_ms;   /* 0: no event-time alignment */
		int64_t grace_ms;           /* older than watermark - grace: dropped */
		int64_t dedupe_horizon_ms;  /* ids kept back to watermark - this */
		int64_t max_future_skew_ms; /* ts further ahead of now: dead letter */
		int64_t dedupe_ids;         /* 1..LS_LEAD_MAX_DEDUPE_K */
		int64_t max_profile_attributes; /* 0..LS_LEAD_MAX_PROFILE_KEYS */
		int64_t max_profile_metrics;    /* 0..LS_LEAD_MAX_PROFILE_KEYS */
		int64_t cache_leads;        /* leads kept in process between batches */
		int64_t max_record_size;    /* bytes; larger: dead letter "oversized" */
		int64_t max_id_bytes;       /* ids longer than this: dead letter "id_too_long", HTTP 400 */
		int64_t ready_failed_batches; /* /readyz 503 after this many failed batches in a row */
		int64_t ready_stall_ms;     /* /readyz 503 when records wait this long uncommitted; 0: off */
		int64_t dead_letter_log_rate; /* dead-letter log lines per second, the rest summarised */
	} pipeline;
	struct {
		size_t n_writers;
		ls_schema_writer *writers;
	} schemas;
	/*
	 * The `features:` sequence, in file order. n == 0 means the key was
	 * absent or null and the built-in set applies (an empty sequence is
	 * rejected), so read them through ls_config_features(). The specs
	 * hold no pointers; they passed ls_feature_set_new() at load time.
	 */
	struct {
		size_t n;
		ls_feature_spec *specs;
	} features;
	struct {
		int64_t checkpoint_interval_ms; /* models and eval windows saved this often */
		int64_t rescore_interval_ms;    /* idle leads rescored this often (event time); 0: never */
	} scoring;
	/*
	 * The `models:` sequence, in file order; n == 0 means the key was
	 * absent or null and the built-in `conversion` model applies (an
	 * empty sequence is rejected). Read through ls_config_models().
	 */
	struct {
		size_t n;
		ls_model_spec *specs;
	} models;
	/* The `campaigns:` sequence, in file order; none by default. */
	struct {
		size_t n;
		ls_campaign_spec *specs;
	} campaigns;
} ls_config;

/*
 * Zero cfg and fill in the built-in defaults (kafka.brokers stays NULL).
 * The result owns its strings and must be released with ls_config_free().
 * If memory runs out, string keys with a default may be left NULL;
 * ls_config_load() detects that and fails with "out of memory".
 */
void ls_config_init_defaults(ls_config *cfg);

/*
 * Load path into *out: defaults, then the file, then LEADSCORE_*
 * variables from the process environment, then the required-key check.
 * path may be NULL to load no file (defaults and environment only).
 * Returns 0, or -1 with all errors in err (see the contract above).
 */
int ls_config_load(const char *path, ls_config *out, char *err, size_t errlen);

/*
 * As ls_config_load(), but read overrides from envp ("NAME=value" strings,
 * NULL-terminated) instead of the process environment; envp NULL means
 * the process environment. Tests pass an explicit array.
 */
int ls_config_load_env(const char *path, char *const *envp, ls_config *out,
		       char *err, size_t errlen);

/*
 * Apply LEADSCORE_* overrides from envp (NULL: the process environment) to
 * an already initialised config. Variables that match no key are ignored.
 * Returns 0, or -1 with every bad value listed in err; keys whose value
 * was bad keep their previous value. Does not check required keys.
 */
int ls_config_apply_env(ls_config *cfg, char *const *envp, char *err,
			size_t errlen);

/* Release everything cfg owns and zero it. NULL and zeroed configs are fine. */
void ls_config_free(ls_config *cfg);

/*
 * Parse "<digits><unit>" with unit ms, s, m, h or d ("500ms", "30s",
 * "15m", "24h", "7d") into milliseconds; a bare 0 is 0 ms. Rejects any
 * other number without a unit, signs, spaces, junk and values that
 * overflow int64 milliseconds. 0 or -1.
 */
int ls_config_parse_duration(const char *s, int64_t *ms);

/* "true" or "false", any letter case. 0 or -1. */
int ls_config_parse_bool(const char *s, bool *out);

/*
 * Parse "host:port" (IPv6 hosts as "[::1]:8080") for http.listen. host
 * receives the host without brackets; port 0 asks the kernel for a free
 * port. Returns NULL on success, else a static reason.
 */
const char *ls_config_parse_host_port(const char *s, char *host, size_t hostlen,
				      int *port);

/*
 * Copy the live-reloadable keys (ls_config_key_info.reloadable) from newc
 * into cfg and leave every other key of cfg as it is: the SIGHUP path,
 * after ls_config_diff() has logged what changed. cfg is modified in
 * place, so the caller must be the only thread reading it meanwhile (or
 * publish a copy). The live keys of models are copied into the model
 * specs in place (the built-in model first becomes a one-item list), so
 * pointers from ls_config_models() taken before may be stale: take them
 * again. Returns 0, or -1 if memory ran out, in which case
 * some live keys may already have been copied and the rest keep their
 * old values.
 */
int ls_config_apply_live(ls_config *cfg, const ls_config *newc);

/*
 * Report every key whose value differs between old and newc, calling fn
 * once per key with the dotted key ("pipeline.batch_size") and whether the
 * running daemon can apply the new value without a restart. Maps and
 * sequences are reported as one key ("kafka.properties", "features",
 * "schemas.writers", "campaigns"); only campaigns is live. models is
 * compared as it runs (no `models:` key is the built-in model): while the
 * list names the same models in the same order, one key per changed
 * model key ("models[conversion].min_delta"), live for min_delta, tiers,
 * hysteresis, decay_half_life and shadow; otherwise the one restart-only
 * key "models". Returns the number of keys reported.
 */
typedef void (*ls_config_diff_fn)(const char *key, bool reloadable, void *ud);
size_t ls_config_diff(const ls_config *old, const ls_config *newc,
		      ls_config_diff_fn fn, void *ud);

/*
 * The feature specs to build the feature set from: the configured ones,
 * or ls_features_default() when the file has no `features:`. *n receives
 * the count. The specs belong to cfg (or are static) and stay valid until
 * ls_config_free(cfg); pass them to ls_feature_set_new(), which validated
 * them once already while loading.
 */
const ls_feature_spec *ls_config_features(const ls_config *cfg, size_t *n);

/*
 * The models to run: the configured ones, or the built-in default (one
 * model named "conversion" with every default, see docs/configuration.md) when the file
 * has no `models:`. *n (may be NULL) receives the count. The specs belong
 * to cfg (or are static) and stay valid until ls_config_free(cfg).
 */
const ls_model_spec *ls_config_models(const ls_config *cfg, size_t *n);

/*
 * Fill *out for feature set set: ls_lead_conf_default(), then grace,
 * dedupe_horizon, dedupe_ids and the profile limits from cfg->pipeline.
 * The ranges of the pipeline keys are ls_lead_conf's, so the result
 * passes ls_lead_conf_check() whenever set is non-NULL.
 */
void ls_config_lead_conf(const ls_config *cfg, const ls_feature_set *set,
			 ls_lead_conf *out);

/*
 * Call fn once per secret value cfg holds, for ls_log_add_secret(): each
 * kafka.properties value whose name ls_kafka_property_is_secret(),
 * http.auth_token, and a redis.url with a password (the whole URL, then
 * its user-decoded password). Safe from any thread on an immutable cfg.
 */
void ls_config_secrets(const ls_config *cfg, void (*fn)(const char *secret, void *ud),
		       void *ud);

/* ls_log_add_secret() each of ls_config_secrets(): from then on no log
 * line shows them. Call from one thread at a time (see ls_log.h). */
void ls_config_mask_secrets(const ls_config *cfg);

/* One known key, as docs/configuration.md's generated table shows it. */
typedef struct ls_config_key_info {
	char key[96];             /* "redis.lead_ttl"; items: "schemas.writers[].id" */
	const char *type;         /* string, int, number, duration, bool, enum, log-level, map, sequence */
	const char *default_text; /* as written in YAML; NULL when there is none */
	bool required;            /* must be set (within each item, for item keys) */
	bool reloadable;          /* SIGHUP applies it without a restart */
	bool env_overridable;     /* has a LEADSCORE_* variable */
	const char *description;  /* one line of Markdown (`code`, in-page links) */
} ls_config_key_info;

/* Fill *info with the i-th known key (0-based); false past the last one. */
bool ls_config_key_at(size_t i, ls_config_key_info *info);

/*
 * The key reference: a Markdown table with one row per ls_config_key_at()
 * key (key, type, default, live, environment variable, description), the
 * block scripts/gen-docs writes into docs/configuration.md between
 * "<!-- config-reference:begin -->" and "<!-- config-reference:end -->"
 * and test_config compares with it byte for byte. Each row ends in '\n'.
 * Returns a malloc'd string the caller frees, or NULL if memory ran out.
 */
char *ls_config_reference(void);

/*
 * The environment variable for a dotted key: "LEADSCORE_" + the key
 * uppercased with '.' replaced by '_'. Returns 0, or -1 if buf is too small.
 */
int ls_config_env_name(const char *key, char *buf, size_t buflen);

/*
 * Bytes a dead letter needs beyond its record's value and key: librdkafka
 * counts its per-message framing (under 64 bytes) and the headers against
 * message.max.bytes, and a record batch adds 61; our ls.* headers carry a
 * topic name of up to 249 bytes and a detail of up to 255. A configuration
 * whose max_record_size + max_id_bytes + this exceeds the producer's
 * message.max.bytes is refused: a record the codec accepts could not be
 * dead-lettered whole.
 */
#define LS_CONFIG_DLQ_RESERVE 1536

/* librdkafka's default message.max.bytes. */
#define LS_CONFIG_DEFAULT_MESSAGE_MAX 1000000

/*
 * The producers' message.max.bytes: kafka.properties' value, else
 * librdkafka's default; -1 when the property is not a plain decimal
 * number (librdkafka then refuses it when the producer is created).
 */
int64_t ls_config_message_max(const ls_config *cfg);

#endif
