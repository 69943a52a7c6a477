/*
 * ls_config.c - one table of keys drives parsing, validation, environment
 * overrides, the reload diff and the documented key list.
 *
 * Why a table: a key that is parsed but not documented, or documented but
 * not overridable from the environment, is a bug that only shows up in
 * production. With one row per key, the YAML walker, LEADSCORE_* handling,
 * ls_config_diff() and ls_config_key_at() cannot disagree, and test_config
 * checks docs/configuration.md (generated from
 * ls_config_reference()) and conf/leadscore.yaml against the same rows.
 *
 * Shapes: a row is a scalar (string, int, number, duration, bool, enum,
 * log-level, or a fixed char array inside an item), a map of scalars
 * (kafka.properties, a ls_conf_map), a sequence of mappings (schemas.writers,
 * features: a ls_conf_seq with its own sub-table of rows and hooks for
 * per-item and whole-sequence checks, extra owned memory and equality), or
 * a custom value with its own parser (features[].windows, a list of
 * durations or {length, slices} mappings). Nested sections (kafka.topics)
 * need no declaration: a dotted row name implies them.
 *
 * Files: this one holds the root table, the string checks its rows use,
 * the schemas.writers hooks and the public entry points; the generic
 * walker and value types are ls_conf_engine.c and ls_conf_field.c; the
 * features, models and campaigns sequences, each a sub-table with its
 * hooks, are ls_config_features.c, ls_config_models.c and
 * ls_config_campaigns.c.
 *
 * Defaults are written as YAML text in the table and parsed by the same
 * code as the file, so the default shown in the docs, the default in the
 * struct and what a user would type are the same string.
 */
#include "ls_config.h"
#include "ls_config_items.h"
#include "ls_kafka.h"
#include "ls_redis.h"
#include "ls_buf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_PREFIX "LEADSCORE_"

/* Schema files are small JSON documents; a cap stops a typo such as
 * file: /dev/zero from eating memory at start-up. */
#define MAX_SCHEMA_FILE (1024 * 1024)

/* Enums are stored through memcpy of an int; make that assumption loud. */
_Static_assert(sizeof(ls_source) == sizeof(int), "ls_source must be int-sized");
_Static_assert(sizeof(ls_log_level) == sizeof(int), "ls_log_level must be int-sized");
/* The pipeline defaults in the table are YAML text; keep them equal to the
 * models' own defaults so ls_config_lead_conf() of a default config is
 * ls_lead_conf_default(). */
_Static_assert(LS_LEAD_DEFAULT_GRACE_MS == 30 * MS_DAY, "pipeline.grace default is 30d");
_Static_assert(LS_LEAD_DEFAULT_DEDUPE_HORIZON_MS == MS_HOUR, "pipeline.dedupe_horizon default is 1h");
_Static_assert(LS_LEAD_DEFAULT_DEDUPE_K == 32, "pipeline.dedupe_ids default is 32");
_Static_assert(LS_LEAD_DEFAULT_MAX_ATTRIBUTES == 32, "max_profile_attributes default is 32");
_Static_assert(LS_LEAD_DEFAULT_MAX_METRICS == 32, "max_profile_metrics default is 32");

int ls_config_parse_duration(const char *s, int64_t *ms)
{
	return ls_conf_parse_duration(s, ms);
}

int ls_config_parse_bool(const char *s, bool *out)
{
	return ls_conf_parse_bool(s, out);
}

/* ------------------------------------------------------------------ */
/* Hosts, ports, URLs and other string checks                          */
/* ------------------------------------------------------------------ */

static bool host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* s[0..len) is a host name, IPv4 address or bracketed IPv6 address. */
static const char *parse_host(const char *s, size_t len, char *host, size_t hostlen)
{
	const char *from = s;
	size_t n = len;

	if (len == 0)
		return "host is empty";
	if (s[0] == '[') {
		if (len < 4 || s[len - 1] != ']')
			return "IPv6 address must be written as [address]";
		from = s + 1;
		n = len - 2;
		bool colon = false;
		for (size_t i = 0; i < n; i++) {
			if (from[i] == ':')
				colon = true;
			else if (!isxdigit((unsigned char)from[i]) && from[i] != '.')
				return "bad character in IPv6 address";
		}
		if (!colon)
			return "bad IPv6 address";
	} else {
		if (len > 253)
			return "host name is too long";
		for (size_t i = 0; i < len; i++)
			if (!host_char(s[i]))
				return "host may contain only letters, digits, '-', '.' and '_'";
	}
	if (host != NULL) {
		if (n + 1 > hostlen)
			return "host name is too long";
		memcpy(host, from, n);
		host[n] = '\0';
	}
	return NULL;
}

static const char *parse_port(const char *s, size_t len, int min, int *port)
{
	int v = 0;

	if (len == 0 || len > 5)
		return min == 0 ? "port must be a number from 0 to 65535"
				: "port must be a number from 1 to 65535";
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return "port must be a number";
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > 65535)
		return min == 0 ? "port must be a number from 0 to 65535"
				: "port must be a number from 1 to 65535";
	*port = v;
	return NULL;
}

/* Splits "host:port" / "[v6]:port" at the port colon; NULL if there is none. */
static const char *port_colon(const char *s, size_t len)
{
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL || close + 1 >= s + len || close[1] != ':')
			return NULL;
		return close + 1;
	}
	const char *colon = memchr(s, ':', len);
	if (colon == NULL)
		return NULL;
	/* A second colon means an unbracketed IPv6 address. */
	if (memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) != NULL)
		return NULL;
	return colon;
}

const char *ls_config_parse_host_port(const char *s, char *host, size_t hostlen,
				      int *port)
{
	char hbuf[256];
	int p = 0;

	if (s == NULL)
		return "expected host:port";
	if (host == NULL) {
		host = hbuf;
		hostlen = sizeof hbuf;
	}
	size_t len = strlen(s);
	const char *colon = port_colon(s, len);
	if (colon == NULL)
		return "expected host:port (IPv6 as [address]:port)";
	const char *why = parse_host(s, (size_t)(colon - s), host, hostlen);
	if (why != NULL)
		return why;
	why = parse_port(colon + 1, len - (size_t)(colon + 1 - s), 0, &p);
	if (why != NULL)
		return why;
	if (port != NULL)
		*port = p;
	return NULL;
}

/*
 * The Redis client owns the URL grammar (it also accepts a user and a
 * password); the config only asks it, so a URL that validates here always
 * connects there. Its message never quotes the URL.
 */
#define REDIS_URL_FORMS "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]"

static const char *check_redis_url(const char *s, char *buf, size_t buflen)
{
	ls_redis_target t;
	char why[512];
	static const char prefix[] = "invalid redis url: ";

	if (ls_redis_url_parse(s, &t, why, sizeof why) == 0) {
		ls_redis_target_free(&t);
		return NULL;
	}
	const char *reason = why;
	if (strncmp(reason, prefix, sizeof prefix - 1) == 0)
		reason += sizeof prefix - 1;
	snprintf(buf, buflen, "expected " REDIS_URL_FORMS " (%s)", reason);
	return buf;
}

static const char *check_listen(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	return ls_config_parse_host_port(s, NULL, 0, NULL);
}

static const char *check_brokers(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* librdkafka does the real parsing; catch what it would only
	 * report as a connection failure much later. */
	const char *p = s;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma != NULL ? comma : p + strlen(p);
		bool empty = true;
		for (const char *c = p; c < end; c++) {
			if (iscntrl((unsigned char)*c))
				return "must not contain control characters";
			if (*c != ' ')
				empty = false;
		}
		if (empty)
			return "has an empty entry in the broker list";
		if (comma == NULL)
			return NULL;
		p = comma + 1;
	}
}

static const char *check_topic(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Kafka's own rule for topic names. */
	size_t len = strlen(s);
	if (len > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return "must be a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)";
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return "must be a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)";
	return NULL;
}

static const char *check_key_prefix(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* The lead id follows the prefix inside a {hash tag}; a brace in the
	 * prefix would move the tag and scatter a lead's keys across slots. */
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) || *s == '{' || *s == '}')
			return "must not contain whitespace, '{' or '}'";
	return NULL;
}

static const char *check_token(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Compared with an HTTP header value, which cannot carry these. */
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return "must not contain whitespace or control characters";
	return NULL;
}

static const char *check_property_key(const char *key, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Two places for one setting would leave users guessing which wins. */
	if (strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0)
		return "set kafka.brokers instead";
	if (strcmp(key, "group.id") == 0)
		return "set kafka.group_id instead";
	return NULL;
}

/*
 * kafka.properties are tried on a scratch librdkafka conf, in file order as
 * the daemon will apply them (a plugin.library.paths entry makes its
 * plugin's names known to the entries after it), so a misspelt name fails
 * --check-config instead of the consumer's start, and librdkafka's reason
 * for a bad value reaches the user without the value itself.
 */
static void *kafka_props_begin(void)
{
	return rd_kafka_conf_new();
}

static void kafka_props_end(void *state)
{
	if (state != NULL)
		rd_kafka_conf_destroy(state);
}

static const char *check_kafka_property(void *state, const char *key, const char *value,
					bool *at_key, char *buf, size_t buflen)
{
	char why[512];
	bool off;

	*at_key = false;
	/* The consumer sets these after kafka.properties: exactly-once needs
	 * offsets committed to Redis with the state, not by librdkafka. */
	if (strcmp(key, "enable.auto.commit") == 0 || strcmp(key, "enable.partition.eof") == 0) {
		if (ls_config_parse_bool(value, &off) != 0 || off)
			return "leadscored sets this to false (offsets are committed to Redis with the state); leave it out";
	}
	if (state == NULL)
		return "out of memory";
	switch (ls_kafka_conf_set(state, key, value, why, sizeof why)) {
	case RD_KAFKA_CONF_OK:
		return NULL;
	case RD_KAFKA_CONF_UNKNOWN: {
		char near[128];
		*at_key = true;
		if (ls_kafka_property_suggest(key, near, sizeof near) == 0)
			snprintf(buf, buflen, "unknown librdkafka property (did you mean %s?)", near);
		else
			snprintf(buf, buflen, "unknown librdkafka property");
		return buf;
	}
	default:
		snprintf(buf, buflen, "librdkafka rejects the value: %s", why);
		return buf;
	}
}

/* ------------------------------------------------------------------ */
/* The key table                                                       */
/* ------------------------------------------------------------------ */

static void writer_finish(ls_conf_loader *ld, void *items, size_t index,
			  yaml_node_t *item_node, const char *disp);
static void writer_free(void *item);
static bool writer_equal(const void *a, const void *b);

static const ls_conf_symbol record_symbols[] = {
	{ "EmailEvent", LS_SOURCE_EMAIL },
	{ "WebEvent", LS_SOURCE_WEB },
	{ "CallEvent", LS_SOURCE_CALL },
	{ "LeadOutcome", LS_SOURCE_OUTCOME },
	{ "LeadProfile", LS_SOURCE_PROFILE },
	{ NULL, 0 },
};

#define W_OFF(m) offsetof(ls_schema_writer, m)
#define W_SIZE(m) sizeof(((ls_schema_writer *)0)->m)

static const ls_conf_field writer_fields[] = {
	{ .name = "id", .type = FT_INT, .offset = W_OFF(id), .size = W_SIZE(id),
	  .flags = F_REQUIRED, .min = 1, .max = INT32_MAX,
	  .desc = "Schema id producers put in the Confluent header (magic byte 0 + 4-byte id); unique across writers." },
	{ .name = "record", .type = FT_ENUM, .offset = W_OFF(record),
	  .flags = F_REQUIRED, .symbols = record_symbols,
	  .desc = "Record the writer schema is a version of: `EmailEvent`, `WebEvent`, "
		  "`CallEvent`, `LeadOutcome` or `LeadProfile`." },
	{ .name = "file", .type = FT_STRING, .offset = W_OFF(file),
	  .flags = F_REQUIRED,
	  .desc = "Writer schema (`.avsc`); a relative path resolves against the config file's "
		  "directory; read at load time." },
};

static const ls_conf_seq writers_seq = {
	.item_size = sizeof(ls_schema_writer),
	.fields = writer_fields,
	.n_fields = COUNT(writer_fields),
	.count_offset = offsetof(ls_config, schemas.n_writers),
	.items_offset = offsetof(ls_config, schemas.writers),
	.finish_item = writer_finish,
	.free_item = writer_free,
	.equal_item = writer_equal,
};

static const ls_conf_map kafka_properties_map = {
	.count_offset = offsetof(ls_config, kafka.n_properties),
	.items_offset = offsetof(ls_config, kafka.properties),
	.check_key = check_property_key,
	.begin = kafka_props_begin,
	.check_entry = check_kafka_property,
	.end = kafka_props_end,
	.secret_key = ls_kafka_property_is_secret,
};

#define C_OFF(m) offsetof(ls_config, m)
#define C_SIZE(m) sizeof(((ls_config *)0)->m)
#define TOPIC(key, member, dflt, what)                                        \
	{ .name = "kafka.topics." key, .type = FT_STRING,                     \
	  .offset = C_OFF(kafka.topics.member), .def = dflt,                  \
	  .check = check_topic, .desc = what }

static const ls_conf_field root_fields[] = {
	{ .name = "kafka.brokers", .type = FT_STRING, .offset = C_OFF(kafka.brokers),
	  .flags = F_REQUIRED, .check = check_brokers,
	  .desc = "Bootstrap brokers, comma-separated `host:port` list." },
	{ .name = "kafka.group_id", .type = FT_STRING, .offset = C_OFF(kafka.group_id),
	  .def = "leadscore",
	  .desc = "Consumer group; instances with the same group share the partitions." },
	TOPIC("email", email, "leads.email", "Input topic of `EmailEvent` records."),
	TOPIC("web", web, "leads.web", "Input topic of `WebEvent` records."),
	TOPIC("call", call, "leads.call", "Input topic of `CallEvent` records."),
	TOPIC("outcome", outcome, "leads.outcome", "Input topic of `LeadOutcome` records (labels)."),
	TOPIC("profile", profile, "leads.profile", "Input topic of `LeadProfile` records."),
	TOPIC("scores", scores, "leads.scores", "Output topic of `ScoreChange` records."),
	TOPIC("dead_letter", dead_letter, "leads.dead_letter", "Output topic for undecodable messages, with a reason header."),
	TOPIC("decisions", decisions, "leads.decisions", "Output topic of bandit decision records."),
	{ .name = "kafka.properties", .type = FT_MAP, .def = "{}",
	  .map = &kafka_properties_map,
	  .desc = "librdkafka properties passed through verbatim (e.g. `security.protocol`), each "
		  "checked by librdkafka at load; not `bootstrap.servers` or `group.id`; "
		  "`enable.auto.commit`, `enable.partition.eof` only `false`." },
	{ .name = "redis.url", .type = FT_STRING, .offset = C_OFF(redis.url),
	  .def = "redis://127.0.0.1:6379/0", .flags = F_SECRET, .check = check_redis_url,
	  .desc = "`redis://[[user]:password@]host[:port][/db]` or "
		  "`unix://[[user]:password@]/path[?db=N]`; user and password percent-decoded; "
		  "a user authenticates as that ACL user." },
	{ .name = "redis.key_prefix", .type = FT_STRING, .offset = C_OFF(redis.key_prefix),
	  .def = "ls:", .check = check_key_prefix,
	  .desc = "Prefix of every Redis key; no whitespace or braces (lead keys are "
		  "`ls:{lead_id}:…`)." },
	{ .name = "redis.lead_ttl", .type = FT_DURATION, .offset = C_OFF(redis.lead_ttl_ms),
	  .def = "30d", .flags = F_RELOAD, .min = MS_SECOND, .max = 3650 * MS_DAY,
	  .desc = "Per-lead state expires this long after the lead's last event (1s to 3650d)." },
	{ .name = "redis.connect_timeout", .type = FT_DURATION, .offset = C_OFF(redis.connect_timeout_ms),
	  .def = "2s", .min = 1, .max = 10 * MS_MINUTE,
	  .desc = "Timeout for connecting to Redis (1ms to 10m)." },
	{ .name = "redis.command_timeout", .type = FT_DURATION, .offset = C_OFF(redis.command_timeout_ms),
	  .def = "5s", .min = 1, .max = 10 * MS_MINUTE,
	  .desc = "Timeout for one Redis round trip (1ms to 10m)." },
	{ .name = "http.listen", .type = FT_STRING, .offset = C_OFF(http.listen),
	  .def = "127.0.0.1:8080", .check = check_listen,
	  .desc = "`host:port` of the HTTP API and metrics (`[::1]:8080` for IPv6; port 0 picks a "
		  "free port)." },
	{ .name = "http.auth_token", .type = FT_STRING, .offset = C_OFF(http.auth_token),
	  .flags = F_NULLABLE | F_SECRET, .check = check_token,
	  .desc = "Bearer token HTTP API clients must present; unset (`null`) means no "
		  "authentication." },
	{ .name = "http.threads", .type = FT_INT, .offset = C_OFF(http.threads),
	  .size = C_SIZE(http.threads), .def = "0", .min = 0, .max = 64,
	  .desc = "Threads serving HTTP; 0 picks 1 below 4 CPUs, else 2 (0 to 64; see [HTTP "
		  "API](http-api.md))." },
	{ .name = "http.max_connections", .type = FT_INT, .offset = C_OFF(http.max_connections),
	  .size = C_SIZE(http.max_connections), .def = "0", .min = 0, .max = 1000000,
	  .desc = "Most HTTP connections open at once; more are closed on accept. 0: the fd limit less 256, at most 4096 (0 to 1000000)." },
	{ .name = "http.max_connections_per_address", .type = FT_INT,
	  .offset = C_OFF(http.max_connections_per_address),
	  .size = C_SIZE(http.max_connections_per_address), .def = "0", .min = 0, .max = 1000000,
	  .desc = "Most HTTP connections from one client address; 0: an eighth of "
		  "`max_connections` (0 to 1000000). Raise it behind a proxy, whose address all "
		  "clients share." },
	{ .name = "http.request_timeout", .type = FT_DURATION, .offset = C_OFF(http.request_timeout_ms),
	  .def = "30s", .min = MS_SECOND, .max = 60 * MS_MINUTE,
	  .desc = "A request must arrive and be answered within this time of its connection opening or its previous response, or the connection is closed (1s to 1h)." },
	{ .name = "log.level", .type = FT_LOG_LEVEL, .offset = C_OFF(log.level),
	  .def = "info", .flags = F_RELOAD,
	  .desc = "`debug`, `info`, `warn` or `error`." },
	{ .name = "pipeline.batch_size", .type = FT_INT, .offset = C_OFF(pipeline.batch_size),
	  .size = C_SIZE(pipeline.batch_size), .def = "5000", .flags = F_RELOAD,
	  .min = 1, .max = 1000000,
	  .desc = "Most messages in one micro-batch (1 to 1000000)." },
	{ .name = "pipeline.batch_max_wait", .type = FT_DURATION, .offset = C_OFF(pipeline.batch_max_wait_ms),
	  .def = "100ms", .flags = F_RELOAD, .min = 1, .max = MS_MINUTE,
	  .desc = "Longest wait for a record when there is none; a batch is taken as soon as there is something (1ms to 1m)." },
	{ .name = "pipeline.commit_interval", .type = FT_DURATION, .offset = C_OFF(pipeline.commit_interval_ms),
	  .def = "200ms", .flags = F_RELOAD, .min = 0, .max = MS_MINUTE,
	  .desc = "Changed leads and offsets are committed to Redis this often; 0 commits every batch (0 to 1m)." },
	{ .name = "pipeline.shutdown_timeout", .type = FT_DURATION, .offset = C_OFF(pipeline.shutdown_timeout_ms),
	  .def = "10s", .flags = F_RELOAD, .min = 1, .max = MS_HOUR,
	  .desc = "Longest time SIGTERM waits for the current batch to commit (1ms to 1h)." },
	{ .name = "pipeline.align_stall", .type = FT_DURATION, .offset = C_OFF(pipeline.align_stall_ms),
	  .def = "5s", .flags = F_RELOAD, .min = 0, .max = MS_HOUR,
	  .desc = "Input topics are read in step by record timestamp; a partition number whose slowest topic has not moved for this long is read unaligned until it moves; 0 turns the alignment off (0 to 1h)." },
	{ .name = "pipeline.grace", .type = FT_DURATION, .offset = C_OFF(pipeline.grace_ms),
	  .def = "30d", .flags = F_RELOAD, .min = 0, .max = 365 * MS_DAY,
	  .desc = "Events older than the lead's watermark (its newest event time) minus this are "
		  "dropped and counted (0 to 365d). Long by default: the topics are kept in step "
		  "only while each has records to read (a stalled topic, or a producer writing "
		  "late, can bring events days behind a lead's watermark); windows take late "
		  "events at no cost." },
	{ .name = "pipeline.dedupe_horizon", .type = FT_DURATION, .offset = C_OFF(pipeline.dedupe_horizon_ms),
	  .def = "1h", .flags = F_RELOAD, .min = 0, .max = 30 * MS_DAY,
	  .desc = "Redeliveries are caught back to the lead's watermark minus this (a value above "
		  "`pipeline.grace` acts as the grace); a repeat of an older event is counted "
		  "again. Short because each id kept costs ~10 bytes of the lead's state (0 to "
		  "30d)." },
	{ .name = "pipeline.max_future_skew", .type = FT_DURATION, .offset = C_OFF(pipeline.max_future_skew_ms),
	  .def = "5m", .flags = F_RELOAD, .min = 0, .max = 7 * MS_DAY,
	  .desc = "Events whose time is further ahead of the wall clock go to the dead-letter "
		  "topic (0 to 7d)." },
	{ .name = "pipeline.dedupe_ids", .type = FT_INT, .offset = C_OFF(pipeline.dedupe_ids),
	  .size = C_SIZE(pipeline.dedupe_ids), .def = "32", .min = 1, .max = LS_LEAD_MAX_DEDUPE_K,
	  .desc = "Event ids remembered per lead to drop redeliveries (1 to 1024)." },
	{ .name = "pipeline.max_profile_attributes", .type = FT_INT,
	  .offset = C_OFF(pipeline.max_profile_attributes),
	  .size = C_SIZE(pipeline.max_profile_attributes), .def = "32",
	  .min = 0, .max = LS_LEAD_MAX_PROFILE_KEYS,
	  .desc = "Most profile attributes kept per lead; new keys beyond it are dropped and "
		  "counted in `leadscore_profile_entries_dropped_total` (0 to 1024)." },
	{ .name = "pipeline.max_profile_metrics", .type = FT_INT,
	  .offset = C_OFF(pipeline.max_profile_metrics),
	  .size = C_SIZE(pipeline.max_profile_metrics), .def = "32",
	  .min = 0, .max = LS_LEAD_MAX_PROFILE_KEYS,
	  .desc = "Most profile metrics kept per lead; new keys beyond it are dropped and counted "
		  "in `leadscore_profile_entries_dropped_total` (0 to 1024)." },
	{ .name = "pipeline.cache_leads", .type = FT_INT, .offset = C_OFF(pipeline.cache_leads),
	  .size = C_SIZE(pipeline.cache_leads), .def = "100000", .min = 0, .max = 10000000,
	  .desc = "Leads kept in process between batches; 0 reads every lead from Redis (0 to 10000000)." },
	{ .name = "pipeline.max_record_size", .type = FT_INT, .offset = C_OFF(pipeline.max_record_size),
	  .size = C_SIZE(pipeline.max_record_size), .def = "983040", .min = 1024, .max = 104857600,
	  .desc = "Kafka records larger than this many bytes go to the dead-letter topic as "
		  "`oversized` (1024 to 104857600). It plus `max_id_bytes` plus 1536 bytes of "
		  "headers must fit the producers' `message.max.bytes` (`kafka.properties`, "
		  "librdkafka's default 1000000), so that every record can be dead-lettered "
		  "whole; `--check-config` refuses more." },
	{ .name = "pipeline.max_id_bytes", .type = FT_INT, .offset = C_OFF(pipeline.max_id_bytes),
	  .size = C_SIZE(pipeline.max_id_bytes), .def = "256", .min = 128, .max = 65536,
	  .desc = "Longest id in bytes (`lead_id`, `event_id`, `decision_id`, `campaign_id`, "
		  "`variant_id`, `session_id`, the message key): a longer one is dead-lettered as "
		  "`id_too_long`; over HTTP, a longer path id or `lead_id` gets 400 "
		  "`id_too_long`; at least 128, above the decision ids this daemon makes (up to "
		  "97 bytes) (128 to 65536)." },
	{ .name = "pipeline.ready_failed_batches", .type = FT_INT,
	  .offset = C_OFF(pipeline.ready_failed_batches),
	  .size = C_SIZE(pipeline.ready_failed_batches), .def = "5", .flags = F_RELOAD,
	  .min = 1, .max = 1000000,
	  .desc = "`/readyz` answers 503 once this many batches in a row have failed and been "
		  "thrown away to be replayed (1 to 1000000)." },
	{ .name = "pipeline.ready_stall", .type = FT_DURATION, .offset = C_OFF(pipeline.ready_stall_ms),
	  .def = "30s", .flags = F_RELOAD, .min = 0, .max = MS_HOUR,
	  .desc = "`/readyz` answers 503 when records have waited this long with nothing "
		  "committed (keep it above `commit_interval`); 0 turns it off (0 to 1h)." },
	{ .name = "pipeline.dead_letter_log_rate", .type = FT_INT,
	  .offset = C_OFF(pipeline.dead_letter_log_rate),
	  .size = C_SIZE(pipeline.dead_letter_log_rate), .def = "10", .flags = F_RELOAD,
	  .min = 0, .max = 100000,
	  .desc = "Dead letters logged one line each per second; the others are summed up in one "
		  "`dead letters not logged` line with `suppressed=K` (counts stay exact) (0 to "
		  "100000)." },
	{ .name = "schemas.writers", .type = FT_SEQ, .def = "[]", .seq = &writers_seq,
	  .desc = "Writer schemas by Confluent schema id, for producers on older or newer schema versions." },
	{ .name = "features", .type = FT_SEQ, .seq = &ls_config_features_seq,
	  .desc = "Feature definitions (see [Features](#features)); absent or null (`features:` "
		  "with nothing after it): the built-in set; a list replaces it entirely." },
	{ .name = "scoring.checkpoint_interval", .type = FT_DURATION,
	  .offset = C_OFF(scoring.checkpoint_interval_ms), .def = "5s", .flags = F_RELOAD,
	  .min = MS_SECOND, .max = MS_HOUR,
	  .desc = "Model state and evaluation windows are checkpointed to Redis, and merged with "
		  "other instances' learning, this often (1s to 1h)." },
	{ .name = "scoring.rescore_interval", .type = FT_DURATION,
	  .offset = C_OFF(scoring.rescore_interval_ms), .def = "1h", .flags = F_RELOAD,
	  .min = 0, .max = 30 * MS_DAY,
	  .desc = "A lead without new events is rescored once event time has moved this far past "
		  "its last score, so its score follows its ageing windows; `0` turns it off (0 "
		  "to 30d)." },
	{ .name = "models", .type = FT_SEQ, .seq = &ls_config_models_seq,
	  .desc = "Scoring models (see [Models](#models)); absent or null: one model named "
		  "`conversion` with every default; a list replaces it. `[]` is an error." },
	{ .name = "campaigns", .type = FT_SEQ, .seq = &ls_config_campaigns_seq, .def = "[]",
	  .flags = F_RELOAD,
	  .desc = "Email-variant bandit campaigns (see [Campaigns](#campaigns)); arms may be "
		  "added or retired live, their counts stay." },
};

#define N_ROOT COUNT(root_fields)

/* ------------------------------------------------------------------ */
/* schemas.writers hooks                                               */
/* ------------------------------------------------------------------ */

static char *resolve_path(const char *dir, const char *file)
{
	if (file[0] == '/' || dir == NULL)
		return strdup(file);
	size_t dl = strlen(dir), fl = strlen(file);
	bool slash = dl > 0 && dir[dl - 1] == '/';
	char *p = malloc(dl + (slash ? 0 : 1) + fl + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, dir, dl);
	if (!slash)
		p[dl++] = '/';
	memcpy(p + dl, file, fl + 1);
	return p;
}

/* Whole file as a NUL-terminated string; NULL with errno on failure. */
static char *read_small_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL) {
		fclose(fp);
		errno = ENOMEM;
		return NULL;
	}
	for (;;) {
		if (len + 1 == cap) {
			if (cap > MAX_SCHEMA_FILE) {
				free(buf);
				fclose(fp);
				errno = EFBIG;
				return NULL;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				fclose(fp);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - 1 - len, fp);
		len += got;
		if (got == 0) {
			int failed = ferror(fp);
			int saved = errno;
			fclose(fp);
			if (failed) {
				free(buf);
				errno = saved != 0 ? saved : EIO;
				return NULL;
			}
			buf[len] = '\0';
			return buf;
		}
	}
}


static void writer_finish(ls_conf_loader *ld, void *items, size_t index,
			  yaml_node_t *item_node, const char *disp)
{
	ls_schema_writer *ws = items;
	ls_schema_writer *w = &ws[index];
	char key[KEY_MAX];

	for (size_t j = 0; j < index; j++) {
		if (ws[j].id != w->id)
			continue;
		yaml_node_t *idn = ls_conf_mapping_value(ld->doc, item_node, "id");
		ls_conf_key_printf(key, sizeof key, "%s.id", disp);
		ls_conf_error(ld, idn != NULL ? idn->start_mark : item_node->start_mark, key,
			 "duplicate schema id %" PRId32 " (also used by schemas.writers[%zu])",
			 w->id, j);
		return;
	}

	yaml_node_t *fn = ls_conf_mapping_value(ld->doc, item_node, "file");
	yaml_mark_t mark = fn != NULL ? fn->start_mark : item_node->start_mark;
	ls_conf_key_printf(key, sizeof key, "%s.file", disp);
	char *resolved = resolve_path(ld->dir, w->file);
	if (resolved == NULL) {
		ls_conf_error(ld, mark, key, "out of memory");
		return;
	}
	char *json = read_small_file(resolved);
	if (json == NULL) {
		char qbuf[300];
		ls_conf_error(ld, mark, key, "cannot read %s: %s", ls_conf_quote(resolved, qbuf, sizeof qbuf),
			 strerror(errno));
		free(resolved);
		return;
	}
	if (json[0] == '\0') {
		char qbuf[300];
		ls_conf_error(ld, mark, key, "%s is empty", ls_conf_quote(resolved, qbuf, sizeof qbuf));
		free(json);
		free(resolved);
		return;
	}
	free(w->file);
	w->file = resolved;
	w->json = json;
}

static void writer_free(void *item)
{
	ls_schema_writer *w = item;
	free(w->json);
	w->json = NULL;
}

static bool writer_equal(const void *a, const void *b)
{
	const ls_schema_writer *x = a, *y = b;
	return ls_conf_str_equal(x->json, y->json);
}

/*
 * The dead-letter room check (check_dlq_room) runs after the environment
 * is applied, when the YAML document is gone: remember where its keys
 * were written.
 */
static const char *const dlq_keys[3] = { "pipeline.max_record_size", "pipeline.max_id_bytes",
					 "kafka.properties.message.max.bytes" };

/* The schema's loader state (ls_conf_loader.user): where the keys of the
 * dead-letter room check were written. */
typedef struct dlq_marks {
	bool dlq_marked[3];
	yaml_mark_t dlq_marks[3];
} dlq_marks;

static void note_dlq_marks(ls_conf_loader *ld, yaml_node_t *root)
{
	dlq_marks *dm = ld->user;
	yaml_node_t *pl = ls_conf_mapping_value(ld->doc, root, "pipeline");
	yaml_node_t *kf = ls_conf_mapping_value(ld->doc, root, "kafka");
	yaml_node_t *pr = kf != NULL && kf->type == YAML_MAPPING_NODE
				  ? ls_conf_mapping_value(ld->doc, kf, "properties") : NULL;
	bool pl_map = pl != NULL && pl->type == YAML_MAPPING_NODE;
	yaml_node_t *v[3] = {
		pl_map ? ls_conf_mapping_value(ld->doc, pl, "max_record_size") : NULL,
		pl_map ? ls_conf_mapping_value(ld->doc, pl, "max_id_bytes") : NULL,
		pr != NULL && pr->type == YAML_MAPPING_NODE
			? ls_conf_mapping_value(ld->doc, pr, "message.max.bytes") : NULL,
	};
	for (int i = 0; i < 3; i++)
		if (v[i] != NULL) {
			dm->dlq_marked[i] = true;
			dm->dlq_marks[i] = v[i]->start_mark;
		}
}

static bool env_has(char *const *envp, const char *key)
{
	char name[KEY_MAX];
	if (envp == NULL)
		envp = environ;
	if (envp == NULL || ls_config_env_name(key, name, sizeof name) != 0)
		return false;
	size_t n = strlen(name);
	for (size_t e = 0; envp[e] != NULL; e++)
		if (strncmp(envp[e], name, n) == 0 && envp[e][n] == '=')
			return true;
	return false;
}

int64_t ls_config_message_max(const ls_config *cfg)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
		if (strcmp(cfg->kafka.properties[i].key, "message.max.bytes") != 0)
			continue;
		const char *v = cfg->kafka.properties[i].value;
		char *end;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (end == v || *end != '\0' || errno != 0 || n < 0)
			return -1;
		return (int64_t)n;
	}
	return LS_CONFIG_DEFAULT_MESSAGE_MAX;
}

/*
 * Every record the codec accepts (up to max_record_size, its key up to
 * max_id_bytes) must fit a dead letter whole: otherwise a malformed
 * record of that size could only be dead-lettered truncated. Blamed on
 * the first of max_record_size, max_id_bytes, message.max.bytes that was
 * set, where it was set (the environment beats the file).
 */
static void check_dlq_room(ls_conf_loader *ld, char *const *envp)
{
	const ls_config *c = ld->base;
	const dlq_marks *dm = ld->user;
	int64_t max = ls_config_message_max(c);
	int64_t need = c->pipeline.max_record_size + c->pipeline.max_id_bytes + LS_CONFIG_DLQ_RESERVE;
	if (max < 0 || need <= max)
		return;
	char msg[512];
	snprintf(msg, sizeof msg,
		 "pipeline.max_record_size (%lld) + pipeline.max_id_bytes (%lld) + %d bytes of "
		 "dead-letter headers and framing exceed the producers' message.max.bytes (%lld%s): "
		 "a record that large could not be dead-lettered whole; lower max_record_size to "
		 "at most %lld or raise message.max.bytes in kafka.properties (and the broker's limit)",
		 (long long)c->pipeline.max_record_size, (long long)c->pipeline.max_id_bytes,
		 LS_CONFIG_DLQ_RESERVE, (long long)max,
		 dm->dlq_marked[2] ? "" : ", librdkafka's default",
		 (long long)(max - c->pipeline.max_id_bytes - LS_CONFIG_DLQ_RESERVE));
	for (int i = 0; i < 3; i++) {
		if (i < 2 && env_has(envp, dlq_keys[i])) {
			char name[KEY_MAX];
			if (ls_config_env_name(dlq_keys[i], name, sizeof name) == 0) {
				ls_conf_errors_add(ld->eb, "environment %s: %s", name, msg);
				return;
			}
		}
		if (dm->dlq_marked[i] && ld->file != NULL) {
			ls_conf_error(ld, dm->dlq_marks[i], dlq_keys[i], "%s", msg);
			return;
		}
	}
	ls_conf_errors_add(ld->eb, "%s: %s", dlq_keys[0], msg);
}

/* Once the root mapping is walked, with the document still loaded. */
static void config_walked(ls_conf_loader *ld, yaml_node_t *root)
{
	ls_config_check_campaign_models(ld, root);
	note_dlq_marks(ld, root);
}

/* redis.url holds a secret only with a password; every other secret
 * string (http.auth_token) always does. */
static bool config_holds_secret(const ls_conf_field *f, const char *v)
{
	if (f->check != check_redis_url)
		return true;
	ls_redis_target t;
	char why[256];
	if (ls_redis_url_parse(v, &t, why, sizeof why) != 0)
		return false;
	bool pw = t.password != NULL;
	ls_redis_target_free(&t);
	return pw;
}

static const ls_conf_table config_table = {
	.fields = root_fields,
	.n_fields = N_ROOT,
	.env_prefix = ENV_PREFIX,
	.walked = config_walked,
	.holds_secret = config_holds_secret,
};

int ls_config_env_name(const char *key, char *buf, size_t buflen)
{
	return ls_conf_env_name(ENV_PREFIX, key, buf, buflen);
}

int ls_config_apply_env(ls_config *cfg, char *const *envp, char *err, size_t errlen)
{
	ls_conf_errors eb;
	ls_conf_errors_init(&eb, err, errlen);
	ls_conf_apply_env(&config_table, cfg, envp, &eb, NULL);
	ls_conf_errors_finish(&eb);
	return eb.n_errors > 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                 */
/* ------------------------------------------------------------------ */

void ls_config_init_defaults(ls_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < N_ROOT; i++) {
		const ls_conf_field *f = &root_fields[i];
		char msg[256];
		if (f->def == NULL || !ls_conf_env_overridable(f))
			continue;
		/* Built-in defaults always parse; only strdup can fail, which
		 * leaves the member NULL for ls_config_load to notice. */
		(void)ls_conf_field_set(f, cfg, f->def, false, msg, sizeof msg);
	}
}

static bool defaults_complete(const ls_config *cfg)
{
	for (size_t i = 0; i < N_ROOT; i++) {
		const ls_conf_field *f = &root_fields[i];
		if (f->type == FT_STRING && f->def != NULL && ls_conf_str_get(f, cfg) == NULL)
			return false;
	}
	return true;
}

void ls_config_secrets(const ls_config *cfg, void (*fn)(const char *secret, void *ud),
		       void *ud)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++)
		if (ls_kafka_property_is_secret(cfg->kafka.properties[i].key))
			fn(cfg->kafka.properties[i].value, ud);
	if (cfg->http.auth_token != NULL)
		fn(cfg->http.auth_token, ud);
	ls_redis_target t;
	char why[256];
	if (cfg->redis.url != NULL && ls_redis_url_parse(cfg->redis.url, &t, why, sizeof why) == 0) {
		if (t.password != NULL) {
			fn(cfg->redis.url, ud);
			fn(t.password, ud);
		}
		ls_redis_target_free(&t);
	}
}

static void mask_one(const char *secret, void *ud)
{
	(void)ud;
	ls_log_add_secret(secret);
}

void ls_config_mask_secrets(const ls_config *cfg)
{
	ls_config_secrets(cfg, mask_one, NULL);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return NULL;
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	return strndup(path, len);
}

int ls_config_load_env(const char *path, char *const *envp, ls_config *out,
		       char *err, size_t errlen)
{
	ls_conf_errors eb;
	ls_conf_loader ld;
	dlq_marks dm;
	bool root_set[N_ROOT] = { false };

	ls_conf_errors_init(&eb, err, errlen);
	memset(&ld, 0, sizeof ld);
	ld.file = path;
	ld.table = &config_table;
	ld.base = out;
	memset(&dm, 0, sizeof dm);
	ld.user = &dm;
	ld.eb = &eb;

	ls_config_init_defaults(out);
	if (!defaults_complete(out)) {
		ls_conf_errors_add(&eb, "%s: out of memory", path != NULL ? path : "defaults");
		goto done;
	}
	bool file_ok = true;
	if (path != NULL) {
		out->path = strdup(path);
		if (out->path == NULL) {
			ls_conf_errors_add(&eb, "%s: out of memory", path);
			goto done;
		}
		const char *slash = strrchr(path, '/');
		if (slash != NULL) {
			ld.dir = dir_of(path);
			if (ld.dir == NULL) {
				ls_conf_errors_add(&eb, "%s: out of memory", path);
				goto done;
			}
		}
		file_ok = ls_conf_load_file(&ld, path, root_set);
		out->warnings = ls_conf_secret_warnings(&ld);
	}
	ls_conf_apply_env(&config_table, out, envp, &eb, root_set);
	if (file_ok)
		ls_conf_check_required(&ld, root_set);
	if (eb.n_errors == 0)
		check_dlq_room(&ld, envp);
done:
	free(ld.dir);
	ls_conf_errors_finish(&eb);
	if (eb.n_errors > 0) {
		ls_config_free(out);
		return -1;
	}
	return 0;
}

int ls_config_load(const char *path, ls_config *out, char *err, size_t errlen)
{
	return ls_config_load_env(path, NULL, out, err, errlen);
}

void ls_config_free(ls_config *cfg)
{
	if (cfg == NULL)
		return;
	ls_conf_free_fields(root_fields, N_ROOT, cfg);
	free(cfg->path);
	free(cfg->warnings);
	memset(cfg, 0, sizeof *cfg);
}

size_t ls_config_diff(const ls_config *old, const ls_config *newc,
		      ls_config_diff_fn fn, void *ud)
{
	size_t changed = 0;
	for (size_t i = 0; i < N_ROOT; i++) {
		const ls_conf_field *f = &root_fields[i];
		if (f->seq == &ls_config_models_seq) {
			changed += ls_config_diff_models(f, old, newc, fn, ud);
			continue;
		}
		if (ls_conf_field_equal(f, old, newc))
			continue;
		changed++;
		if (fn != NULL)
			fn(f->name, (f->flags & F_RELOAD) != 0, ud);
	}
	return changed;
}

int ls_config_apply_live(ls_config *cfg, const ls_config *newc)
{
	for (size_t i = 0; i < N_ROOT; i++) {
		const ls_conf_field *f = &root_fields[i];
		if (f->seq == &ls_config_models_seq) {
			if (ls_config_apply_models_live(f, cfg, newc) != 0)
				return -1;
			continue;
		}
		if (!(f->flags & F_RELOAD) || ls_conf_field_equal(f, cfg, newc))
			continue;
		if (ls_conf_field_copy(f, cfg, newc) != 0)
			return -1;
	}
	return 0;
}

static void fill_info(const ls_conf_field *f, const char *parent, bool reloadable, bool env,
		      ls_config_key_info *info)
{
	if (parent != NULL)
		ls_conf_key_printf(info->key, sizeof info->key, "%s[].%s", parent, f->name);
	else
		ls_conf_key_printf(info->key, sizeof info->key, "%s", f->name);
	info->type = ls_conf_type_name(f);
	info->default_text = f->def;
	info->required = (f->flags & F_REQUIRED) != 0;
	info->reloadable = reloadable;
	info->env_overridable = env;
	info->description = f->desc;
}

bool ls_config_key_at(size_t i, ls_config_key_info *info)
{
	size_t k = 0;
	for (size_t r = 0; r < N_ROOT; r++) {
		const ls_conf_field *f = &root_fields[r];
		bool reload = (f->flags & F_RELOAD) != 0;
		if (k++ == i) {
			fill_info(f, NULL, reload, ls_conf_env_overridable(f), info);
			return true;
		}
		if (f->type != FT_SEQ)
			continue;
		for (size_t s = 0; s < f->seq->n_fields; s++) {
			const ls_conf_field *sub = &f->seq->fields[s];
			if (k++ == i) {
				fill_info(sub, f->name, reload || (sub->flags & F_RELOAD) != 0,
					  false, info);
				return true;
			}
		}
	}
	return false;
}

/* Append s to b with every '|' escaped, so a cell never splits a row. */
static int append_cell(ls_buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '|' && ls_buf_append(b, "\\", 1) != 0)
			return -1;
		if (ls_buf_append(b, s, 1) != 0)
			return -1;
	}
	return 0;
}

static int append_str(ls_buf *b, const char *s)
{
	return ls_buf_append(b, s, strlen(s));
}

char *ls_config_reference(void)
{
	ls_buf b;
	ls_buf_init(&b);
	int rc = append_str(&b, "| key | type | default | live | environment | description |\n"
				"|---|---|---|---|---|---|\n");
	ls_config_key_info k;
	for (size_t i = 0; rc == 0 && ls_config_key_at(i, &k); i++) {
		char env[160];
		rc |= append_str(&b, "| `");
		rc |= append_cell(&b, k.key);
		rc |= append_str(&b, "` | ");
		rc |= append_cell(&b, k.type);
		rc |= append_str(&b, " | ");
		if (k.required)
			rc |= append_str(&b, "(required)");
		else if (k.default_text == NULL)
			rc |= append_str(&b, "(none)");
		else {
			rc |= append_str(&b, "`");
			rc |= append_cell(&b, k.default_text);
			rc |= append_str(&b, "`");
		}
		rc |= append_str(&b, k.reloadable ? " | yes | " : " | no | ");
		if (k.env_overridable && ls_config_env_name(k.key, env, sizeof env) == 0) {
			rc |= append_str(&b, "`");
			rc |= append_str(&b, env);
			rc |= append_str(&b, "`");
		}
		rc |= append_str(&b, " | ");
		rc |= append_cell(&b, k.description != NULL ? k.description : "");
		rc |= append_str(&b, " |\n");
	}
	if (rc != 0 || ls_buf_append(&b, "", 1) != 0) {
		ls_buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

void ls_config_lead_conf(const ls_config *cfg, const ls_feature_set *set,
			 ls_lead_conf *out)
{
	ls_lead_conf_default(out, set);
	/* The table's ranges are ls_lead_conf's, so the casts cannot truncate. */
	out->grace_ms = cfg->pipeline.grace_ms;
	out->dedupe_horizon_ms = cfg->pipeline.dedupe_horizon_ms;
	out->dedupe_k = (uint32_t)cfg->pipeline.dedupe_ids;
	out->max_attributes = (uint32_t)cfg->pipeline.max_profile_attributes;
	out->max_metrics = (uint32_t)cfg->pipeline.max_profile_metrics;
}

