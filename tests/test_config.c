/*
 * test_config.c - ls_config: defaults, the example file, every class of
 * error with its exact file:line:column, environment overrides, the
 * duration and address parsers, schema writers, feature definitions, the
 * pipeline limits handed to ls_lead, scoring models, the reload diff, and
 * the README table
 * and conf/leadscore.yaml checked against the key table (and conf's
 * commented features and models blocks against the built-in ones).
 *
 * Fixtures live in tests/data/config/ (LS_TEST_DATA); README.md and
 * conf/leadscore.yaml are read from LS_SOURCE_ROOT. Every load passes an
 * explicit environment so LEADSCORE_* variables of whoever runs the tests
 * cannot change the results.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "ls_config.h"

static char *no_env[] = { NULL };

static const char *env_dir(const char *var)
{
	const char *d = getenv(var);
	ck_assert_msg(d != NULL, "%s is not set (run under meson test)", var);
	return d;
}

static void fixture(const char *name, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "%s/config/%s", env_dir("LS_TEST_DATA"), name);
	ck_assert(n > 0 && (size_t)n < buflen);
}

static void source_file(const char *name, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "%s/%s", env_dir("LS_SOURCE_ROOT"), name);
	ck_assert(n > 0 && (size_t)n < buflen);
}

/* Load a fixture expecting failure; err receives the messages. */
static void load_bad(const char *name, char **envp, char *err, size_t errlen)
{
	char path[1024];
	ls_config c;
	fixture(name, path, sizeof path);
	int rc = ls_config_load_env(path, envp, &c, err, errlen);
	ck_assert_msg(rc == -1, "%s loaded, expected errors", name);
	/* A failed load leaves nothing to free. */
	ck_assert_ptr_null(c.path);
	ck_assert_ptr_null(c.kafka.group_id);
	ls_config_free(&c);
}

static void load_ok(const char *name, char **envp, ls_config *c)
{
	char path[1024], err[4096];
	fixture(name, path, sizeof path);
	int rc = ls_config_load_env(path, envp, c, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: unexpected errors:\n%s", name, err);
}

#define ASSERT_HAS(err, needle) \
	ck_assert_msg(strstr((err), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (err))

static size_t count_lines(const char *s)
{
	size_t n = s[0] != '\0' ? 1 : 0;
	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static void assert_defaults_except_brokers(const ls_config *c)
{
	ck_assert_str_eq(c->kafka.group_id, "leadscore");
	ck_assert_str_eq(c->kafka.topics.email, "leads.email");
	ck_assert_str_eq(c->kafka.topics.web, "leads.web");
	ck_assert_str_eq(c->kafka.topics.call, "leads.call");
	ck_assert_str_eq(c->kafka.topics.outcome, "leads.outcome");
	ck_assert_str_eq(c->kafka.topics.profile, "leads.profile");
	ck_assert_str_eq(c->kafka.topics.scores, "leads.scores");
	ck_assert_str_eq(c->kafka.topics.dead_letter, "leads.dead_letter");
	ck_assert_str_eq(c->kafka.topics.decisions, "leads.decisions");
	ck_assert_uint_eq(c->kafka.n_properties, 0);
	ck_assert_ptr_null(c->kafka.properties);
	ck_assert_str_eq(c->redis.url, "redis://127.0.0.1:6379/0");
	ck_assert_str_eq(c->redis.key_prefix, "ls:");
	ck_assert_int_eq(c->redis.lead_ttl_ms, 30LL * 24 * 3600 * 1000);
	ck_assert_int_eq(c->redis.connect_timeout_ms, 2000);
	ck_assert_int_eq(c->redis.command_timeout_ms, 5000);
	ck_assert_str_eq(c->http.listen, "127.0.0.1:8080");
	ck_assert_ptr_null(c->http.auth_token);
	ck_assert_int_eq(c->http.threads, 0);
	ck_assert_int_eq(c->http.max_connections, 0);
	ck_assert_int_eq(c->http.max_connections_per_address, 0);
	ck_assert_int_eq(c->http.request_timeout_ms, 30000);
	ck_assert_int_eq(c->log.level, LS_LOG_INFO);
	ck_assert_int_eq(c->pipeline.batch_size, 5000);
	ck_assert_int_eq(c->pipeline.batch_max_wait_ms, 100);
	ck_assert_int_eq(c->pipeline.commit_interval_ms, 200);
	ck_assert_int_eq(c->pipeline.shutdown_timeout_ms, 10000);
	ck_assert_int_eq(c->pipeline.align_stall_ms, 5000);
	ck_assert_int_eq(c->pipeline.grace_ms, 30LL * 24 * 3600 * 1000);
	ck_assert_int_eq(c->pipeline.dedupe_horizon_ms, 3600000);
	ck_assert_int_eq(c->pipeline.max_future_skew_ms, 300000);
	ck_assert_int_eq(c->pipeline.dedupe_ids, 32);
	ck_assert_int_eq(c->pipeline.max_profile_attributes, 32);
	ck_assert_int_eq(c->pipeline.max_profile_metrics, 32);
	ck_assert_int_eq(c->pipeline.cache_leads, 100000);
	ck_assert_int_eq(c->pipeline.max_record_size, 983040);
	ck_assert_int_eq(c->pipeline.max_id_bytes, 256);
	ck_assert_int_eq(c->pipeline.ready_failed_batches, 5);
	ck_assert_int_eq(c->pipeline.ready_stall_ms, 30000);
	ck_assert_int_eq(c->pipeline.dead_letter_log_rate, 10);
	ck_assert_uint_eq(c->schemas.n_writers, 0);
	ck_assert_ptr_null(c->schemas.writers);
	/* No features: key, so the built-in set. */
	ck_assert_uint_eq(c->features.n, 0);
	ck_assert_ptr_null(c->features.specs);
	size_t n = 0, nd = 0;
	ck_assert_ptr_eq(ls_config_features(c, &n), ls_features_default(&nd));
	ck_assert_uint_eq(n, nd);
	ck_assert_int_eq(c->scoring.checkpoint_interval_ms, 5000);
	ck_assert_int_eq(c->scoring.rescore_interval_ms, 3600000);
	/* No models: key, so the built-in conversion model. */
	ck_assert_uint_eq(c->models.n, 0);
	ck_assert_ptr_null(c->models.specs);
	ck_assert_str_eq(ls_config_models(c, &n)->name, "conversion");
	ck_assert_uint_eq(n, 1);
}

START_TEST(test_defaults)
{
	ls_config c;
	ls_config_init_defaults(&c);
	ck_assert_ptr_null(c.path);
	ck_assert_ptr_null(c.kafka.brokers);
	assert_defaults_except_brokers(&c);
	ls_config_free(&c);
	ck_assert_ptr_null(c.kafka.group_id);
	ls_config_free(&c); /* a freed config frees again harmlessly */
}
END_TEST

/* Dotted paths of the leaves of a YAML file; maps and sequences that are
 * keys themselves (kafka.properties) count as leaves. */
static bool is_container_key(const char *path)
{
	ls_config_key_info k;
	for (size_t i = 0; ls_config_key_at(i, &k); i++)
		if (strcmp(k.key, path) == 0)
			return strcmp(k.type, "map") == 0 || strcmp(k.type, "sequence") == 0;
	return false;
}

static void collect_leaves(yaml_document_t *doc, yaml_node_t *n, const char *prefix,
			   char (*paths)[96], size_t *np, size_t max)
{
	if (n->type == YAML_MAPPING_NODE && !is_container_key(prefix)) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			char path[96];
			snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "",
				 (const char *)k->data.scalar.value);
			collect_leaves(doc, yaml_document_get_node(doc, p->value), path, paths, np, max);
		}
		return;
	}
	ck_assert_uint_lt(*np, max);
	snprintf(paths[(*np)++], 96, "%s", prefix);
}

START_TEST(test_example_config)
{
	char path[1024], err[4096];
	ls_config c, d;

	source_file("conf/leadscore.yaml", path, sizeof path);
	int rc = ls_config_load_env(path, no_env, &c, err, sizeof err);
	ck_assert_msg(rc == 0, "conf/leadscore.yaml: %s", err);
	ck_assert_str_eq(c.path, path);
	ck_assert_str_eq(c.kafka.brokers, "localhost:9092");
	assert_defaults_except_brokers(&c);

	/* "Every key with its default": the diff against the built-in
	 * defaults is exactly kafka.brokers. */
	ls_config_init_defaults(&d);
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 1);
	ls_config_free(&d);
	ls_config_free(&c);

	/* ...and every key of the table is spelled out in the file. */
	FILE *fp = fopen(path, "rb");
	ck_assert_ptr_nonnull(fp);
	yaml_parser_t parser;
	yaml_document_t doc;
	ck_assert(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, fp);
	ck_assert(yaml_parser_load(&parser, &doc));
	static char leaves[64][96];
	size_t n = 0;
	collect_leaves(&doc, yaml_document_get_root_node(&doc), "", leaves, &n, 64);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(fp);

	size_t n_keys = 0;
	ls_config_key_info k;
	for (size_t i = 0; ls_config_key_at(i, &k); i++) {
		if (strstr(k.key, "[]") != NULL)
			continue;
		n_keys++;
		bool found = false;
		for (size_t j = 0; j < n && !found; j++)
			found = strcmp(leaves[j], k.key) == 0;
		ck_assert_msg(found, "conf/leadscore.yaml does not show %s", k.key);
	}
	ck_assert_uint_eq(n, n_keys);
}
END_TEST

START_TEST(test_unknown_key)
{
	char err[4096];
	load_bad("unknown_key.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "unknown_key.yaml:3:3: kafka.topcs: unknown key (expected one of: brokers, group_id, topics, properties)");
	ASSERT_HAS(err, "unknown_key.yaml:7:1: metrics: unknown key");
	ASSERT_HAS(err, "unknown_key.yaml:9:1: pipeline.batch_size: unknown key (nest sections");
	/* All errors, one per line, nothing else. */
	ck_assert_uint_eq(count_lines(err), 3);
}
END_TEST

START_TEST(test_wrong_type)
{
	char err[4096];
	load_bad("wrong_type.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "wrong_type.yaml:4:15: pipeline.batch_size: expected an integer, got \"lots\"");
	ASSERT_HAS(err, "wrong_type.yaml:7:5: log.level: expected a log level, got a mapping");
	ASSERT_HAS(err, "wrong_type.yaml:8:7: http: expected a mapping, got a scalar");
	ASSERT_HAS(err, "wrong_type.yaml:12:15: schemas.writers[0].record: expected one of EmailEvent, WebEvent, CallEvent, LeadOutcome, LeadProfile, got \"EmailEvents\"");
	ck_assert_uint_eq(count_lines(err), 4);

	load_bad("bad_log_level.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "bad_log_level.yaml:4:10: log.level: expected one of debug, info, warn, error, got \"verbose\"");
}
END_TEST

START_TEST(test_missing_brokers)
{
	char err[4096];
	/* At the kafka mapping when it exists... */
	load_bad("missing_brokers.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "missing_brokers.yaml:3:3: kafka.brokers: required key is missing");
	ASSERT_HAS(err, "LEADSCORE_KAFKA_BROKERS");
	ck_assert_uint_eq(count_lines(err), 1);
	/* ...at 1:1 when there is no kafka section or nothing at all. */
	load_bad("no_kafka.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "no_kafka.yaml:1:1: kafka.brokers: required key is missing");
	load_bad("empty.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "empty.yaml:1:1: kafka.brokers: required key is missing");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_bad_duration)
{
	char err[4096];
	load_bad("bad_duration.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "bad_duration.yaml:4:19: pipeline.batch_max_wait: expected a duration");
	ASSERT_HAS(err, "got \"10\"");
	ASSERT_HAS(err, "bad_duration.yaml:6:13: redis.lead_ttl: expected a duration");
	ck_assert_uint_eq(count_lines(err), 2);
}
END_TEST

START_TEST(test_bad_redis_url)
{
	char err[4096];
	load_bad("bad_redis_url.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "bad_redis_url.yaml:4:8: redis.url: expected redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]");
	ASSERT_HAS(err, "bad_redis_url.yaml:6:11: http.listen: expected host:port");
	ck_assert_uint_eq(count_lines(err), 2);
}
END_TEST

START_TEST(test_out_of_range)
{
	char err[4096];
	load_bad("out_of_range.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "out_of_range.yaml:4:15: pipeline.batch_size: must be between 1 and 1000000, got 0");
	ASSERT_HAS(err, "out_of_range.yaml:5:21: pipeline.shutdown_timeout: must be between 1ms and 1h, got 2h");
	ck_assert_uint_eq(count_lines(err), 2);
}
END_TEST

START_TEST(test_duplicate_key)
{
	char err[4096];
	load_bad("duplicate_key.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "duplicate_key.yaml:4:3: kafka.brokers: duplicate key (first defined at line 2, column 3)");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_syntax_error)
{
	char err[4096];
	load_bad("syntax_error.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "syntax_error.yaml:3:12: YAML syntax error: mapping values are not allowed");
	/* The rest of the file is unknown, so no "brokers missing" noise. */
	ck_assert_uint_eq(count_lines(err), 1);

	load_bad("multi_doc.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "multi_doc.yaml:4:1: only one YAML document is allowed");

	load_bad("does_not_exist.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "does_not_exist.yaml: cannot open: No such file or directory");
}
END_TEST

START_TEST(test_env_overrides)
{
	char *env[] = {
		"PATH=/usr/bin",
		"LEADSCORE_KAFKA_BROKERS=envhost:9092",
		"LEADSCORE_KAFKA_TOPICS_EMAIL=email.v2",
		"LEADSCORE_PIPELINE_BATCH_SIZE=42",
		"LEADSCORE_PIPELINE_BATCH_MAX_WAIT=250ms",
		"LEADSCORE_REDIS_URL=unix:///run/redis.sock?db=2",
		"LEADSCORE_HTTP_AUTH_TOKEN=s3cret",
		"LEADSCORE_NOT_A_KEY=ignored",
		"LEADSCORE_KAFKA_PROPERTIES=ignored",
		NULL,
	};
	ls_config c;
	load_ok("env_base.yaml", env, &c);
	ck_assert_str_eq(c.kafka.brokers, "envhost:9092");  /* env beats file */
	ck_assert_int_eq(c.pipeline.batch_size, 42);         /* env beats file */
	ck_assert_int_eq(c.log.level, LS_LOG_DEBUG);         /* file beats default */
	ck_assert_str_eq(c.kafka.topics.email, "email.v2");
	ck_assert_str_eq(c.kafka.topics.web, "leads.web");
	ck_assert_int_eq(c.pipeline.batch_max_wait_ms, 250);
	ck_assert_str_eq(c.redis.url, "unix:///run/redis.sock?db=2");
	ck_assert_str_eq(c.http.auth_token, "s3cret");
	ck_assert_uint_eq(c.kafka.n_properties, 0);
	ls_config_free(&c);

	/* The required key may come from the environment alone. */
	char *brokers_only[] = { "LEADSCORE_KAFKA_BROKERS=b:1", NULL };
	load_ok("empty.yaml", brokers_only, &c);
	ck_assert_str_eq(c.kafka.brokers, "b:1");
	ls_config_free(&c);

	char err[1024];
	ck_assert_int_eq(ls_config_load_env(NULL, brokers_only, &c, err, sizeof err), 0);
	ck_assert_ptr_null(c.path);
	ck_assert_str_eq(c.kafka.brokers, "b:1");
	ls_config_free(&c);
	ck_assert_int_eq(ls_config_load_env(NULL, no_env, &c, err, sizeof err), -1);
	ASSERT_HAS(err, "kafka.brokers: required key is missing (no config file; set LEADSCORE_KAFKA_BROKERS)");
}
END_TEST

START_TEST(test_env_bad_values)
{
	char *env[] = {
		"LEADSCORE_PIPELINE_BATCH_SIZE=many",
		"LEADSCORE_REDIS_URL=localhost",
		"LEADSCORE_REDIS_LEAD_TTL=30",
		"LEADSCORE_LOG_LEVEL=loud",
		"LEADSCORE_KAFKA_BROKERS=",
		NULL,
	};
	char err[4096];
	load_bad("env_base.yaml", env, err, sizeof err);
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_BATCH_SIZE: expected an integer, got \"many\"");
	ASSERT_HAS(err, "environment LEADSCORE_REDIS_URL: expected redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]");
	ASSERT_HAS(err, "environment LEADSCORE_REDIS_LEAD_TTL: expected a duration");
	ASSERT_HAS(err, "environment LEADSCORE_LOG_LEVEL: expected one of debug, info, warn, error");
	ASSERT_HAS(err, "environment LEADSCORE_KAFKA_BROKERS: must not be empty");
	/* A bad override is not also reported as a missing key. */
	ck_assert_uint_eq(count_lines(err), 5);
}
END_TEST

START_TEST(test_apply_env)
{
	ls_config c;
	char err[1024];
	ls_config_init_defaults(&c);
	char *env[] = { "LEADSCORE_PIPELINE_BATCH_SIZE=7", "LEADSCORE_HTTP_LISTEN=[::1]:0", NULL };
	ck_assert_int_eq(ls_config_apply_env(&c, env, err, sizeof err), 0);
	ck_assert_int_eq(c.pipeline.batch_size, 7);
	ck_assert_str_eq(c.http.listen, "[::1]:0");

	char *bad[] = { "LEADSCORE_PIPELINE_BATCH_SIZE=2000000", NULL };
	ck_assert_int_eq(ls_config_apply_env(&c, bad, err, sizeof err), -1);
	ck_assert_str_eq(err, "environment LEADSCORE_PIPELINE_BATCH_SIZE: must be between 1 and 1000000, got 2000000");
	ck_assert_int_eq(c.pipeline.batch_size, 7); /* bad value leaves the old one */
	ls_config_free(&c);
}
END_TEST

START_TEST(test_env_names)
{
	char name[160];
	ck_assert_int_eq(ls_config_env_name("pipeline.batch_max_wait", name, sizeof name), 0);
	ck_assert_str_eq(name, "LEADSCORE_PIPELINE_BATCH_MAX_WAIT");
	ck_assert_int_eq(ls_config_env_name("kafka.topics.dead_letter", name, sizeof name), 0);
	ck_assert_str_eq(name, "LEADSCORE_KAFKA_TOPICS_DEAD_LETTER");
	ck_assert_int_eq(ls_config_env_name("kafka.brokers", name, 10), -1);

	/* No two keys may share a variable. */
	static char names[64][160];
	size_t n = 0;
	ls_config_key_info k;
	for (size_t i = 0; ls_config_key_at(i, &k); i++) {
		bool container = strcmp(k.type, "map") == 0 || strcmp(k.type, "sequence") == 0;
		ck_assert_msg(k.env_overridable == (!container && strstr(k.key, "[]") == NULL),
			      "%s: wrong env_overridable", k.key);
		if (!k.env_overridable)
			continue;
		ck_assert_int_eq(ls_config_env_name(k.key, names[n], sizeof names[n]), 0);
		for (size_t j = 0; j < n; j++)
			ck_assert_str_ne(names[j], names[n]);
		n++;
	}
	ck_assert_uint_eq(n, 41);
}
END_TEST

START_TEST(test_duration_parser)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{ "500ms", 500 }, { "0ms", 0 }, { "0s", 0 }, { "30s", 30000 },
		{ "15m", 900000 }, { "24h", 86400000 }, { "7d", 604800000 },
		{ "007s", 7000 },
		{ "9223372036854775807ms", INT64_MAX },
		{ "106751991167d", 106751991167LL * 86400000LL },
	};
	static const char *const bad[] = {
		"", "10", "ms", "s", "-5s", "+5s", " 5s", "5s ", "5 s", "1.5s", "5sec",
		"5S", "5ms5", "5d1h", "0x10s", "abc", "5us",
		"9223372036854775808ms",  /* digits overflow */
		"9223372036854776s",      /* unit multiplication overflows */
		"106751991168d",
		"99999999999999999999999999h",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int64_t ms = -1;
		ck_assert_msg(ls_config_parse_duration(good[i].s, &ms) == 0, "rejected %s", good[i].s);
		ck_assert_msg(ms == good[i].ms, "%s -> %lld", good[i].s, (long long)ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 12345;
		ck_assert_msg(ls_config_parse_duration(bad[i], &ms) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_int_eq(ms, 12345); /* untouched on failure */
	}
	int64_t ms;
	ck_assert_int_eq(ls_config_parse_duration(NULL, &ms), -1);
}
END_TEST

START_TEST(test_bool_parser)
{
	bool b = false;
	ck_assert_int_eq(ls_config_parse_bool("true", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(ls_config_parse_bool("FALSE", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(ls_config_parse_bool("yes", &b), -1);
	ck_assert_int_eq(ls_config_parse_bool("1", &b), -1);
	ck_assert_int_eq(ls_config_parse_bool("", &b), -1);
}
END_TEST

START_TEST(test_address_parsers)
{
	/* redis.url is validated by the Redis client's own parser, so a URL
	 * accepted here is one ls_redis can connect to. */
	static const char *const good_urls[] = {
		"redis://127.0.0.1:6379/0", "redis://cache.internal", "redis://[::1]:7000/3",
		"redis://:s3cret@cache:6380/1", "unix:///run/redis/redis.sock?db=5",
		"unix:///tmp/r.sock",
	};
	static const char *const bad_urls[] = {
		"localhost:6379", "http://h:1/0", "redis://", "redis://:6379",
		"redis://h:0", "redis://h:65536", "redis://h:port", "redis://h:1/x",
		"unix://", "unix://relative.sock", "unix:///tmp/r.sock?db=x",
		"unix:///tmp/r.sock?x=1",
	};
	ls_config c;
	char err[1024], var[600];
	ls_config_init_defaults(&c);
	for (size_t i = 0; i < sizeof good_urls / sizeof good_urls[0]; i++) {
		snprintf(var, sizeof var, "LEADSCORE_REDIS_URL=%s", good_urls[i]);
		char *env[] = { var, NULL };
		ck_assert_msg(ls_config_apply_env(&c, env, err, sizeof err) == 0,
			      "rejected %s: %s", good_urls[i], err);
		ck_assert_str_eq(c.redis.url, good_urls[i]);
	}
	for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
		snprintf(var, sizeof var, "LEADSCORE_REDIS_URL=%s", bad_urls[i]);
		char *env[] = { var, NULL };
		ck_assert_msg(ls_config_apply_env(&c, env, err, sizeof err) == -1,
			      "accepted \"%s\"", bad_urls[i]);
		ASSERT_HAS(err, "environment LEADSCORE_REDIS_URL: expected redis://");
	}
	/* The URL may carry a password: errors never echo the value. */
	char *pw[] = { "LEADSCORE_REDIS_URL=redis://:hunter2@cache:99999/0", NULL };
	ck_assert_int_eq(ls_config_apply_env(&c, pw, err, sizeof err), -1);
	ASSERT_HAS(err, "port must be a number from 1 to 65535");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	char *tok[] = { "LEADSCORE_HTTP_AUTH_TOKEN=two words", NULL };
	ck_assert_int_eq(ls_config_apply_env(&c, tok, err, sizeof err), -1);
	ck_assert_ptr_null(strstr(err, "words"));
	ls_config_free(&c);

	char host[64];
	int port = -1;
	ck_assert_ptr_null(ls_config_parse_host_port("0.0.0.0:8080", host, sizeof host, &port));
	ck_assert_str_eq(host, "0.0.0.0");
	ck_assert_int_eq(port, 8080);
	ck_assert_ptr_null(ls_config_parse_host_port("[::]:0", host, sizeof host, &port));
	ck_assert_str_eq(host, "::");
	ck_assert_int_eq(port, 0);
	static const char *const bad_listen[] = {
		"localhost", ":8080", "host:", "host:99999", "::1:80", "[::1]", "a b:80", "h:-1",
	};
	for (size_t i = 0; i < sizeof bad_listen / sizeof bad_listen[0]; i++)
		ck_assert_msg(ls_config_parse_host_port(bad_listen[i], host, sizeof host, &port) != NULL,
			      "accepted \"%s\"", bad_listen[i]);
}
END_TEST

START_TEST(test_schema_writers)
{
	char expect[1024];
	ls_config c;
	load_ok("writers.yaml", no_env, &c);
	ck_assert_uint_eq(c.schemas.n_writers, 2);
	const ls_schema_writer *w = c.schemas.writers;
	ck_assert_int_eq(w[0].id, 1);
	ck_assert_int_eq(w[0].record, LS_SOURCE_EMAIL);
	/* Relative to the config file's directory, not the working directory. */
	fixture("schemas/email_v1.avsc", expect, sizeof expect);
	ck_assert_str_eq(w[0].file, expect);
	ck_assert_ptr_nonnull(strstr(w[0].json, "\"name\": \"EmailEvent\""));
	ck_assert_int_eq(w[1].id, 2);
	ck_assert_int_eq(w[1].record, LS_SOURCE_OUTCOME);
	fixture("schemas/outcome_v1.avsc", expect, sizeof expect);
	ck_assert_str_eq(w[1].file, expect);
	ck_assert_ptr_nonnull(strstr(w[1].json, "LeadOutcome"));
	ls_config_free(&c);

	char err[4096];
	load_bad("writers_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "writers_bad.yaml:7:13: schemas.writers[0].file: cannot read");
	ASSERT_HAS(err, "config/schemas/nope.avsc\": No such file or directory");
	ASSERT_HAS(err, "writers_bad.yaml:11:11: schemas.writers[2].id: duplicate schema id 2 (also used by schemas.writers[1])");
	ASSERT_HAS(err, "writers_bad.yaml:14:7: schemas.writers[3].id: required key is missing");
	ck_assert_uint_eq(count_lines(err), 3);
}
END_TEST

START_TEST(test_properties_and_nulls)
{
	ls_config c;
	load_ok("properties_ok.yaml", no_env, &c);
	ck_assert_uint_eq(c.kafka.n_properties, 3);
	ck_assert_str_eq(c.kafka.properties[0].key, "enable.auto.commit");
	ck_assert_str_eq(c.kafka.properties[0].value, "false");
	ck_assert_str_eq(c.kafka.properties[1].key, "fetch.wait.max.ms");
	ck_assert_str_eq(c.kafka.properties[1].value, "10");
	ck_assert_str_eq(c.kafka.properties[2].value, "leadscore-1");
	ck_assert_ptr_null(c.http.auth_token);              /* auth_token: ~ */
	ck_assert_str_eq(c.redis.url, "redis://127.0.0.1:6379/0"); /* redis: (empty) */
	ls_config_free(&c);

	char err[4096];
	load_bad("properties_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "properties_bad.yaml:3:13: kafka.group_id: expected a string, got null");
	ASSERT_HAS(err, "properties_bad.yaml:5:5: kafka.properties.bootstrap.servers: set kafka.brokers instead");
	ASSERT_HAS(err, "properties_bad.yaml:7:7: kafka.properties.socket.timeout.ms: expected a scalar value, got a mapping");
	ASSERT_HAS(err, "properties_bad.yaml:9:5: kafka.properties.client.id: duplicate key (first defined at line 8, column 5)");
	ck_assert_uint_eq(count_lines(err), 4);
}
END_TEST

/* kafka.properties are tried on librdkafka itself: a misspelt name fails
 * at its key, a bad value at the value, and no message quotes a value. */
START_TEST(test_properties_librdkafka)
{
	char err[4096];
	load_bad("properties_librdkafka.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "properties_librdkafka.yaml:4:5: kafka.properties.sasl.pasword: unknown librdkafka property (did you mean sasl.password?)");
	ASSERT_HAS(err, "properties_librdkafka.yaml:5:24: kafka.properties.security.protocol: librdkafka rejects the value: Invalid value \"<value>\" for configuration property \"security.protocol\"");
	ASSERT_HAS(err, "properties_librdkafka.yaml:6:16: kafka.properties.linger.ms: librdkafka rejects the value: ");
	ASSERT_HAS(err, "value <value> is outside allowed range 0..900000");
	ASSERT_HAS(err, "properties_librdkafka.yaml:7:25: kafka.properties.enable.auto.commit: leadscored sets this to false");
	ASSERT_HAS(err, "properties_librdkafka.yaml:12:5: kafka.properties.zzzz.qqqq: unknown librdkafka property");
	ck_assert_ptr_null(strstr(err, "qqqq: unknown librdkafka property (did you mean"));
	ck_assert_uint_eq(count_lines(err), 5);
	ck_assert_msg(strstr(err, "Secret-77") == NULL, "a value leaked:\n%s", err);
	ck_assert_msg(strstr(err, "-5") == NULL, "a value leaked:\n%s", err);
}
END_TEST

/* Write text to a fresh file with mode, return its path (static). */
static const char *write_conf(const char *text, mode_t mode)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/ls_test_config_XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static const char secrets_yaml[] =
	"kafka:\n"
	"  brokers: localhost:9092\n"
	"  properties:\n"
	"    sasl.password: Sasl-Secret-8841\n"
	"    sasl.username: app\n"
	"    client.id: plain\n"
	"redis:\n"
	"  url: redis://app:Redis-Secret-8842@cache:6379/0\n"
	"http:\n"
	"  auth_token: Token-Secret-8843\n";

static void collect(const char *secret, void *ud)
{
	char *buf = ud;
	strcat(buf, secret);
	strcat(buf, "|");
}

/* A secret in a file every user can read draws one warning per key, at
 * the key, naming it but not its value; group-readable is fine. */
START_TEST(test_secret_permissions)
{
	ls_config c;
	char err[4096];
	const char *path = write_conf(secrets_yaml, 0644);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(c.warnings);
	char want[256];
	snprintf(want, sizeof want, "%s:4:5: kafka.properties.sasl.password: holds a secret, but the file is readable by every user (mode 0644); chmod o-r the file", path);
	ASSERT_HAS(c.warnings, want);
	snprintf(want, sizeof want, "%s:8:8: redis.url: holds a secret", path);
	ASSERT_HAS(c.warnings, want);
	ASSERT_HAS(c.warnings, "or set LEADSCORE_REDIS_URL in the environment instead");
	snprintf(want, sizeof want, "%s:10:15: http.auth_token: holds a secret", path);
	ASSERT_HAS(c.warnings, want);
	ck_assert_uint_eq(count_lines(c.warnings), 3);
	ck_assert_msg(strstr(c.warnings, "Secret-88") == NULL, "%s", c.warnings);
	/* what the daemon masks in its log */
	char all[512] = "";
	ls_config_secrets(&c, collect, all);
	ck_assert_str_eq(all, "Sasl-Secret-8841|Token-Secret-8843|"
			      "redis://app:Redis-Secret-8842@cache:6379/0|Redis-Secret-8842|");
	ls_config_free(&c);
	unlink(path);

	path = write_conf(secrets_yaml, 0604);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(c.warnings);
	ls_config_free(&c);
	unlink(path);

	/* root:leadscore 0640 is the intended layout */
	path = write_conf(secrets_yaml, 0640);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, err, sizeof err), 0);
	ck_assert_ptr_null(c.warnings);
	ls_config_free(&c);
	unlink(path);

	/* a bare "word@" has always been a password for the default user */
	path = write_conf("kafka:\n  brokers: b:1\nredis:\n  url: redis://Bare-Secret-8845@cache/0\n", 0644);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, err, sizeof err), 0);
	ck_assert_ptr_nonnull(c.warnings);
	ASSERT_HAS(c.warnings, ":4:8: redis.url: holds a secret");
	ck_assert_ptr_null(strstr(c.warnings, "Bare-Secret"));
	ls_config_free(&c);
	unlink(path);

	/* nothing secret: nothing to say, whatever the mode */
	path = write_conf("kafka:\n  brokers: b:1\n  properties:\n    sasl.username: app\n"
			  "redis:\n  url: redis://cache/0\n", 0644);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, err, sizeof err), 0);
	ck_assert_ptr_null(c.warnings);
	ls_config_free(&c);
	unlink(path);

	/* a secret from the environment is not the file's */
	path = write_conf("kafka:\n  brokers: b:1\n", 0644);
	char *env[] = { "LEADSCORE_HTTP_AUTH_TOKEN=Env-Secret-8844", NULL };
	ck_assert_int_eq(ls_config_load_env(path, env, &c, err, sizeof err), 0);
	ck_assert_ptr_null(c.warnings);
	ls_config_free(&c);
	unlink(path);
}
END_TEST

START_TEST(test_error_buffer)
{
	/* unknown_key.yaml has three errors. A buffer with room for the
	 * first line and a little more keeps that line whole, drops the
	 * others whole and says how many it dropped. */
	char full[4096];
	load_bad("unknown_key.yaml", no_env, full, sizeof full);
	ck_assert_uint_eq(count_lines(full), 3);
	size_t first_len = strcspn(full, "\n");

	char err[4096];
	size_t errlen = first_len + 40;
	ck_assert_uint_lt(errlen, sizeof err);
	memset(err, 'x', sizeof err);
	load_bad("unknown_key.yaml", no_env, err, errlen);
	ck_assert_uint_lt(strlen(err), errlen);
	ck_assert_int_eq(strncmp(err, full, first_len + 1), 0);
	ck_assert_str_eq(err + first_len + 1, "(2 more errors)");
	ck_assert_int_eq(err[errlen], 'x'); /* nothing written past errlen */

	/* No buffer, or one too small for any line, still fails cleanly. */
	char path[1024];
	ls_config c;
	fixture("unknown_key.yaml", path, sizeof path);
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, NULL, 0), -1);
	char tiny[8];
	ck_assert_int_eq(ls_config_load_env(path, no_env, &c, tiny, sizeof tiny), -1);
	ck_assert_uint_lt(strlen(tiny), sizeof tiny);
}
END_TEST

typedef struct diff_seen {
	size_t n;
	char keys[16][96];
	bool reload[16];
} diff_seen;

static void on_diff(const char *key, bool reloadable, void *ud)
{
	diff_seen *s = ud;
	ck_assert_uint_lt(s->n, 16);
	snprintf(s->keys[s->n], sizeof s->keys[s->n], "%s", key);
	s->reload[s->n] = reloadable;
	s->n++;
}

static int diff_find(const diff_seen *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->reload[i] ? 1 : 0;
	return -1;
}

START_TEST(test_diff)
{
	ls_config a, b;
	diff_seen s;

	load_ok("env_base.yaml", no_env, &a);
	char *env[] = {
		"LEADSCORE_LOG_LEVEL=warn",
		"LEADSCORE_PIPELINE_BATCH_SIZE=200",
		"LEADSCORE_PIPELINE_BATCH_MAX_WAIT=250ms",
		"LEADSCORE_PIPELINE_SHUTDOWN_TIMEOUT=30s",
		"LEADSCORE_REDIS_LEAD_TTL=7d",
		"LEADSCORE_KAFKA_BROKERS=other:9092",
		"LEADSCORE_KAFKA_GROUP_ID=g2",
		"LEADSCORE_KAFKA_TOPICS_SCORES=s2",
		"LEADSCORE_REDIS_URL=redis://other:6379/1",
		"LEADSCORE_REDIS_KEY_PREFIX=lx:",
		"LEADSCORE_HTTP_LISTEN=0.0.0.0:9090",
		NULL,
	};
	load_ok("env_base.yaml", env, &b);
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 11);
	ck_assert_uint_eq(s.n, 11);
	ck_assert_int_eq(diff_find(&s, "log.level"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.batch_size"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.batch_max_wait"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.shutdown_timeout"), 1);
	ck_assert_int_eq(diff_find(&s, "redis.lead_ttl"), 1);
	ck_assert_int_eq(diff_find(&s, "kafka.brokers"), 0);
	ck_assert_int_eq(diff_find(&s, "kafka.group_id"), 0);
	ck_assert_int_eq(diff_find(&s, "kafka.topics.scores"), 0);
	ck_assert_int_eq(diff_find(&s, "redis.url"), 0);
	ck_assert_int_eq(diff_find(&s, "redis.key_prefix"), 0);
	ck_assert_int_eq(diff_find(&s, "http.listen"), 0);
	ck_assert_uint_eq(ls_config_diff(&a, &a, on_diff, &s), 0);

	/* SIGHUP: the live keys move over, the restart-only ones stay. */
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ck_assert_int_eq(a.log.level, LS_LOG_WARN);
	ck_assert_int_eq(a.pipeline.batch_size, 200);
	ck_assert_int_eq(a.pipeline.batch_max_wait_ms, 250);
	ck_assert_int_eq(a.pipeline.shutdown_timeout_ms, 30000);
	ck_assert_int_eq(a.redis.lead_ttl_ms, 7LL * 24 * 3600 * 1000);
	ck_assert_str_eq(a.kafka.brokers, "filehost:9092");
	ck_assert_str_eq(a.redis.url, "redis://127.0.0.1:6379/0");
	ck_assert_str_eq(a.http.listen, "127.0.0.1:8080");
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 6);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_msg(!s.reload[i], "%s still differs after apply_live", s.keys[i]);
	ls_config_free(&a);
	ls_config_free(&b);

	/* Maps and sequences: deep comparison, one key each, restart. */
	load_ok("writers.yaml", no_env, &a);
	load_ok("writers.yaml", no_env, &b);
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_config_free(&b);
	load_ok("properties_ok.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 2);
	ck_assert_int_eq(diff_find(&s, "kafka.properties"), 0);
	ck_assert_int_eq(diff_find(&s, "schemas.writers"), 0);
	ls_config_free(&a);
	ls_config_free(&b);
}
END_TEST


static char *slurp(const char *path);

/* Field by field, so a mismatch names the feature and the member. */
static void assert_spec_eq(const ls_feature_spec *got, const ls_feature_spec *want)
{
	const char *nm = want->name;
	ck_assert_str_eq(got->name, want->name);
	ck_assert_msg(got->kind == want->kind, "%s: kind %d, want %d", nm, got->kind, want->kind);
	ck_assert_msg(got->source == want->source, "%s: source %d, want %d", nm, got->source,
		      want->source);
	ck_assert_msg(got->type_mask == want->type_mask, "%s: type_mask %#x, want %#x", nm,
		      got->type_mask, want->type_mask);
	ck_assert_msg(strcmp(got->page_category, want->page_category) == 0,
		      "%s: page_category \"%s\", want \"%s\"", nm, got->page_category,
		      want->page_category);
	ck_assert_msg(got->agg == want->agg, "%s: agg %d, want %d", nm, got->agg, want->agg);
	ck_assert_msg(got->field == want->field, "%s: field %d, want %d", nm, got->field,
		      want->field);
	ck_assert_msg(got->scale == want->scale, "%s: scale %g, want %g", nm, got->scale,
		      want->scale);
	ck_assert_msg(got->n_windows == want->n_windows, "%s: %zu windows, want %zu", nm,
		      got->n_windows, want->n_windows);
	for (size_t w = 0; w < want->n_windows; w++) {
		ck_assert_msg(got->windows[w].length_ms == want->windows[w].length_ms,
			      "%s: window %zu length %lld, want %lld", nm, w,
			      (long long)got->windows[w].length_ms,
			      (long long)want->windows[w].length_ms);
		ck_assert_msg(got->windows[w].slices == want->windows[w].slices,
			      "%s: window %zu slices %u, want %u", nm, w,
			      got->windows[w].slices, want->windows[w].slices);
	}
	ck_assert_msg(strcmp(got->a, want->a) == 0, "%s: a \"%s\", want \"%s\"", nm, got->a, want->a);
	ck_assert_msg(strcmp(got->b, want->b) == 0, "%s: b \"%s\", want \"%s\"", nm, got->b, want->b);
	ck_assert_msg(got->param == want->param, "%s: param %g, want %g", nm, got->param,
		      want->param);
	ck_assert_msg(got->unit_ms == want->unit_ms, "%s: unit_ms %lld, want %lld", nm,
		      (long long)got->unit_ms, (long long)want->unit_ms);
	ck_assert_msg(got->floor_zero == want->floor_zero, "%s: floor_zero", nm);
}

static char *no_brokers_env[] = { "LEADSCORE_KAFKA_BROKERS=b:1", NULL };

START_TEST(test_features_default_yaml)
{
	/* The built-in set written in YAML loads into exactly the built-in
	 * specs... */
	ls_config c;
	load_ok("features_default.yaml", no_brokers_env, &c);
	size_t nd = 0, n = 0;
	const ls_feature_spec *want = ls_features_default(&nd);
	const ls_feature_spec *got = ls_config_features(&c, &n);
	ck_assert_ptr_eq(got, c.features.specs);
	ck_assert_uint_eq(n, nd);
	for (size_t i = 0; i < nd; i++)
		assert_spec_eq(&got[i], &want[i]);
	ls_config_free(&c);

	/* ...and conf/leadscore.yaml shows that same text, commented out
	 * below an empty `features:`, so the two cannot drift apart. */
	char path[1024];
	fixture("features_default.yaml", path, sizeof path);
	static char fixture_text[65536];
	snprintf(fixture_text, sizeof fixture_text, "%s", slurp(path));
	source_file("conf/leadscore.yaml", path, sizeof path);
	char *conf = slurp(path);
	char *block = strstr(conf, "\nfeatures:\n");
	ck_assert_msg(block != NULL, "conf/leadscore.yaml has no empty features: line");
	block++;
	static char uncommented[65536];
	size_t len = 0;
	char *line = strchr(block, '\n') + 1;
	len += (size_t)snprintf(uncommented, sizeof uncommented, "features:\n");
	while (line[0] == '#') {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		const char *text = line + 1;
		if (*text == ' ')
			text++;
		len += (size_t)snprintf(uncommented + len, sizeof uncommented - len, "%.*s\n",
					(int)(nl - text), text);
		ck_assert_uint_lt(len, sizeof uncommented);
		line = nl + 1;
	}
	ck_assert_msg(line[0] == '\0', "conf/leadscore.yaml: text after the features block");
	ck_assert_str_eq(uncommented, fixture_text);
}
END_TEST

static const ls_feature_spec *spec_named(const ls_config *c, const char *name)
{
	for (size_t i = 0; i < c->features.n; i++)
		if (strcmp(c->features.specs[i].name, name) == 0)
			return &c->features.specs[i];
	ck_abort_msg("no feature %s", name);
	return NULL;
}

#define H 3600000LL
#define D (24 * H)

START_TEST(test_features_custom)
{
	ls_config c;
	load_ok("features_custom.yaml", no_env, &c);
	ck_assert_uint_eq(c.features.n, 14);
	/* File order is kept: it is the order of the values. */
	ck_assert_str_eq(c.features.specs[0].name, "ratio_first");
	ck_assert_str_eq(c.features.specs[13].name, "late_calls");

	ls_feature_spec w;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "ratio_first");
	w.kind = LS_FEATURE_RATIO;
	snprintf(w.a, sizeof w.a, "late_calls");
	snprintf(w.b, sizeof w.b, "opens");
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "ratio_first"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "opens");
	w.source = LS_SOURCE_EMAIL;
	w.type_mask = 1u << LS_EMAIL_OPENED | 1u << LS_EMAIL_CLICKED;
	w.n_windows = 3;
	w.windows[0].length_ms = H;
	w.windows[1].length_ms = 7 * D;
	w.windows[1].slices = 7;
	w.windows[2].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "opens"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "pricing_last_seen");
	w.source = LS_SOURCE_WEB;
	w.type_mask = 1u << LS_WEB_PAGE_VIEW;
	snprintf(w.page_category, sizeof w.page_category, "pricing");
	w.agg = LS_AGG_LAST_SEEN;
	w.n_windows = 1;
	w.windows[0].length_ms = 24 * H;
	assert_spec_eq(spec_named(&c, "pricing_last_seen"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "deal_value");
	w.source = LS_SOURCE_OUTCOME;
	w.type_mask = 1u << LS_OUTCOME_WON;
	w.agg = LS_AGG_SUM;
	w.field = LS_FIELD_OUTCOME_VALUE;
	w.scale = 0.5;
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "deal_value"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "open_velocity");
	w.kind = LS_FEATURE_VELOCITY;
	snprintf(w.a, sizeof w.a, "opens");
	w.param = 2.5;
	w.n_windows = 2;
	w.windows[0].length_ms = H;
	w.windows[1].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "open_velocity"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "hours_since_open");
	w.kind = LS_FEATURE_RECENCY;
	snprintf(w.a, sizeof w.a, "opens");
	w.unit_ms = H;
	w.param = 720;
	assert_spec_eq(spec_named(&c, "hours_since_open"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "opens_minus_outcomes");
	w.kind = LS_FEATURE_DIFFERENCE;
	snprintf(w.a, sizeof w.a, "opens");
	snprintf(w.b, sizeof w.b, "outcomes");
	w.floor_zero = true;
	w.n_windows = 1;
	w.windows[0].length_ms = 30 * D;
	assert_spec_eq(spec_named(&c, "opens_minus_outcomes"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "sentiment_calls");
	w.source = LS_SOURCE_CALL;
	w.type_mask = 1u << LS_CALL_CONNECTED;
	w.field = LS_FIELD_CALL_SENTIMENT;
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "sentiment_calls"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "mean_sentiment");
	w.kind = LS_FEATURE_MEAN;
	snprintf(w.a, sizeof w.a, "sentiment_sum");
	snprintf(w.b, sizeof w.b, "sentiment_calls");
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "mean_sentiment"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "sessions");
	w.source = LS_SOURCE_WEB;
	w.agg = LS_AGG_DISTINCT;
	w.field = LS_FIELD_WEB_SESSION_ID;
	w.n_windows = 1;
	w.windows[0].length_ms = 90 * 60000LL;
	w.windows[0].slices = 3;
	assert_spec_eq(spec_named(&c, "sessions"), &w);

	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "profile_updates");
	w.source = LS_SOURCE_PROFILE;
	w.n_windows = 1;
	w.windows[0].length_ms = 7 * D;
	assert_spec_eq(spec_named(&c, "profile_updates"), &w);

	/* What the config accepted, the models compile. */
	size_t n = 0;
	char err[256];
	const ls_feature_spec *specs = ls_config_features(&c, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ck_assert_int_ge(ls_feature_set_find(set, "open_velocity"), 0);
	bool found = false;
	for (size_t i = 0; i < set->n_values; i++)
		found = found || strcmp(ls_feature_set_value_name(set, i), "open_velocity_1h_30d") == 0;
	ck_assert(found);

	/* A feature list is one restart-only key in the reload diff. */
	ls_config d;
	load_ok("env_base.yaml", no_env, &d);
	diff_seen s;
	memset(&s, 0, sizeof s);
	ls_config_diff(&d, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "features"), 0);
	ck_assert_int_eq(ls_config_apply_live(&d, &c), 0);
	ck_assert_uint_eq(d.features.n, 0); /* restart-only: not copied */
	ls_config_free(&d);
	load_ok("features_custom.yaml", no_env, &d);
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 0);
	d.features.specs[1].windows[1].slices = 14;
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 1);
	d.features.specs[1].windows[1].slices = 7;
	d.features.specs[1].type_mask = 1;
	ck_assert_uint_eq(ls_config_diff(&d, &c, NULL, NULL), 1);
	ls_config_free(&d);

	ls_feature_set_free(set);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_features_item_errors)
{
	char err[8192];
	load_bad("features_bad_items.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_items.yaml:5:13: features[0].source: expected one of email, web, call, outcome, profile, got \"fax\"");
	ASSERT_HAS(err, "features_bad_items.yaml:9:18: features[1].aggregation: expected one of count, sum, last_seen, distinct, got \"median\"");
	ASSERT_HAS(err, "features_bad_items.yaml:13:19: features[2].windows[1]: expected a duration such as 500ms, 30s, 15m, 24h or 7d, got \"30 days\"");
	ASSERT_HAS(err, "features_bad_items.yaml:16:14: features[3].windows: expected 1 to 4 windows, got 5");
	ASSERT_HAS(err, "features_bad_items.yaml:19:21: features[4].types[1]: unknown email event type \"VIEWED\" (expected one of SENT, DELIVERED, OPENED, CLICKED, REPLIED, BOUNCED, UNSUBSCRIBED, SPAM_REPORTED)");
	ASSERT_HAS(err, "features_bad_items.yaml:24:5: features[5].floor_zero: velocity features do not use it (only difference features do)");
	ASSERT_HAS(err, "features_bad_items.yaml:26:5: features[6].a: required key is missing (recency features need it)");
	ASSERT_HAS(err, "features_bad_items.yaml:30:20: features[7].page_category: filters web events only, and this feature's source is email");
	ASSERT_HAS(err, "features_bad_items.yaml:34:36: features[8].windows[0].slices: 7 slices do not divide the window length 1h");
	ASSERT_HAS(err, "features_bad_items.yaml:35:11: features[9].name: must be a feature name of a-z, 0-9 and _, got \"Bad-Name\"");
	ASSERT_HAS(err, "features_bad_items.yaml:38:11: features[10].name: duplicate feature name \"a5\" (also features[4])");
	ASSERT_HAS(err, "features_bad_items.yaml:43:5: features[11].scale: applies to sum features only");
	ASSERT_HAS(err, "features_bad_items.yaml:47:12: features[12].types: profile events have no type");
	ASSERT_HAS(err, "features_bad_items.yaml:51:19: features[13].windows[1]: window 7d is listed twice (also features[13].windows[0])");
	ASSERT_HAS(err, "features_bad_items.yaml:52:5: features[14].source: required key is missing (windowed features need it)");
	ASSERT_HAS(err, "features_bad_items.yaml:58:14: features[15].windows: slices apply to windowed features only");
	ASSERT_HAS(err, "features_bad_items.yaml:62:14: features[16].windows: velocity features need exactly two windows, [short, long]");
	ck_assert_uint_eq(count_lines(err), 17);
}
END_TEST

START_TEST(test_features_list_errors)
{
	char err[4096];
	/* Operands are checked once every item is clean, against the whole
	 * list. */
	load_bad("features_bad_operand.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_operand.yaml:11:8: features[1].b: unknown feature \"clicks\"");
	ASSERT_HAS(err, "features_bad_operand.yaml:19:8: features[3].a: \"vel\" is a velocity feature; operands must be windowed features");
	ck_assert_uint_eq(count_lines(err), 2);

	/* What only ls_feature_set_new() knows goes to the item it names... */
	load_bad("features_bad_model.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_model.yaml:7:5: features[1]: feature 'open_velocity': window 1 is not a window of its operands");
	ck_assert_uint_eq(count_lines(err), 1);
	/* ...or to the list when it names none. */
	load_bad("features_bad_value_name.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_bad_value_name.yaml:4:3: features: feature value name 'x_7d' repeated");
	ck_assert_uint_eq(count_lines(err), 1);

	load_bad("features_empty.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_empty.yaml:3:11: features: must list at least one feature");
	ck_assert_uint_eq(count_lines(err), 1);
	load_bad("features_shape.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "features_shape.yaml:4:3: features: expected a sequence, got a mapping");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_pipeline_limits)
{
	char *env[] = {
		"LEADSCORE_KAFKA_BROKERS=b:1",
		"LEADSCORE_PIPELINE_GRACE=0ms",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=30d",
		"LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=7d",
		"LEADSCORE_PIPELINE_DEDUPE_IDS=1024",
		"LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES=0",
		"LEADSCORE_PIPELINE_MAX_PROFILE_METRICS=1024",
		"LEADSCORE_PIPELINE_CACHE_LEADS=10000000",
		"LEADSCORE_PIPELINE_MAX_RECORD_SIZE=1024",
		NULL,
	};
	ls_config c;
	char err[4096];
	ck_assert_int_eq(ls_config_load_env(NULL, env, &c, err, sizeof err), 0);
	ck_assert_int_eq(c.pipeline.grace_ms, 0);
	ck_assert_int_eq(c.pipeline.dedupe_horizon_ms, 30 * D);
	ck_assert_int_eq(c.pipeline.max_future_skew_ms, 7 * D);
	ck_assert_int_eq(c.pipeline.dedupe_ids, 1024);
	ck_assert_int_eq(c.pipeline.max_profile_attributes, 0);
	ck_assert_int_eq(c.pipeline.max_profile_metrics, 1024);
	ck_assert_int_eq(c.pipeline.cache_leads, 10000000);
	ck_assert_int_eq(c.pipeline.max_record_size, 1024);

	/* The lead limits reach ls_lead_conf, and the extremes pass its check. */
	size_t n = 0;
	const ls_feature_spec *specs = ls_config_features(&c, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ls_lead_conf lc;
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_ptr_eq(lc.features, set);
	ck_assert_int_eq(lc.grace_ms, 0);
	/* a horizon above the grace is valid (it acts as the grace) */
	ck_assert_int_eq(lc.dedupe_horizon_ms, 30 * D);
	ck_assert_uint_eq(lc.dedupe_k, 1024);
	ck_assert_uint_eq(lc.max_attributes, 0);
	ck_assert_uint_eq(lc.max_metrics, 1024);
	ck_assert(ls_lead_conf_check(&lc, err, sizeof err));
	ls_config_free(&c);

	/* The other ends: the longest grace, no dedupe horizon. */
	char *top[] = {
		"LEADSCORE_KAFKA_BROKERS=b:1",
		"LEADSCORE_PIPELINE_GRACE=365d",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=0ms",
		NULL,
	};
	ck_assert_int_eq(ls_config_load_env(NULL, top, &c, err, sizeof err), 0);
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_int_eq(lc.grace_ms, 365 * D);
	ck_assert_int_eq(lc.dedupe_horizon_ms, 0);
	ck_assert(ls_lead_conf_check(&lc, err, sizeof err));
	ls_config_free(&c);

	/* Defaults give exactly ls_lead_conf_default(). */
	ls_config_init_defaults(&c);
	ls_lead_conf want;
	ls_lead_conf_default(&want, set);
	ls_config_lead_conf(&c, set, &lc);
	ck_assert_ptr_eq(lc.features, want.features);
	ck_assert_int_eq(lc.grace_ms, want.grace_ms);
	ck_assert_int_eq(lc.dedupe_horizon_ms, want.dedupe_horizon_ms);
	ck_assert_uint_eq(lc.dedupe_k, want.dedupe_k);
	ck_assert_uint_eq(lc.max_attributes, want.max_attributes);
	ck_assert_uint_eq(lc.max_metrics, want.max_metrics);
	ls_config_free(&c);
	ls_feature_set_free(set);

	/* Ranges, from the environment... */
	char *bad[] = {
		"LEADSCORE_PIPELINE_GRACE=366d",
		"LEADSCORE_PIPELINE_DEDUPE_HORIZON=31d",
		"LEADSCORE_PIPELINE_MAX_FUTURE_SKEW=8d",
		"LEADSCORE_PIPELINE_DEDUPE_IDS=1025",
		"LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES=1025",
		"LEADSCORE_PIPELINE_CACHE_LEADS=10000001",
		"LEADSCORE_PIPELINE_MAX_RECORD_SIZE=1023",
		NULL,
	};
	ls_config_init_defaults(&c);
	ck_assert_int_eq(ls_config_apply_env(&c, bad, err, sizeof err), -1);
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_GRACE: must be between 0ms and 365d, got 366d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_DEDUPE_HORIZON: must be between 0ms and 30d, got 31d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_FUTURE_SKEW: must be between 0ms and 7d, got 8d");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_DEDUPE_IDS: must be between 1 and 1024, got 1025");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_PROFILE_ATTRIBUTES: must be between 0 and 1024, got 1025");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_CACHE_LEADS: must be between 0 and 10000000, got 10000001");
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_RECORD_SIZE: must be between 1024 and 104857600, got 1023");
	ck_assert_uint_eq(count_lines(err), 7);
	/* Bad values keep the previous (default) value. */
	ck_assert_int_eq(c.pipeline.grace_ms, 30 * D);
	ck_assert_int_eq(c.pipeline.dedupe_horizon_ms, H);
	ck_assert_int_eq(c.pipeline.dedupe_ids, 32);
	ls_config_free(&c);

	/* ...and from the file, at the value. */
	load_bad("pipeline_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "pipeline_bad.yaml:4:10: pipeline.grace: must be between 0ms and 365d, got 366d");
	ASSERT_HAS(err, "pipeline_bad.yaml:5:20: pipeline.max_future_skew: expected a duration such as 500ms, 30s, 15m, 24h or 7d, got \"soon\"");
	ASSERT_HAS(err, "pipeline_bad.yaml:6:15: pipeline.dedupe_ids: must be between 1 and 1024, got 0");
	ASSERT_HAS(err, "pipeline_bad.yaml:7:24: pipeline.max_profile_metrics: must be between 0 and 1024, got 1025");
	ASSERT_HAS(err, "pipeline_bad.yaml:8:16: pipeline.cache_leads: must be between 0 and 10000000, got -1");
	ASSERT_HAS(err, "pipeline_bad.yaml:9:20: pipeline.max_record_size: must be between 1024 and 104857600, got 512");
	ASSERT_HAS(err, "pipeline_bad.yaml:10:19: pipeline.dedupe_horizon: must be between 0ms and 30d, got 31d");
	ck_assert_uint_eq(count_lines(err), 7);
}
END_TEST

/* Load yaml (a whole file) from a temp file with envp; rc of the load. */
static int load_text(const char *yaml, char **envp, ls_config *c, char *err, size_t errlen,
		     char *path_out, size_t path_len)
{
	char path[] = "/tmp/ls_test_config_XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(yaml, fp);
	fclose(fp);
	int rc = ls_config_load_env(path, envp, c, err, errlen);
	unlink(path);
	snprintf(path_out, path_len, "%s", path);
	return rc;
}

/*
 * A max_record_size the dead-letter producer cannot carry whole (with an
 * id of max_id_bytes and the headers) is refused, at the key that set it.
 */
START_TEST(test_dead_letter_room)
{
	ls_config c;
	char err[4096], path[64], want[256];

	/* the old default, 1 MiB, against librdkafka's 1000000 */
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 1048576\n", no_brokers_env, &c,
				   err, sizeof err, path, sizeof path), -1);
	snprintf(want, sizeof want, "%s:2:20: pipeline.max_record_size: pipeline.max_record_size "
		 "(1048576) + pipeline.max_id_bytes (256) + 1536 bytes", path);
	ASSERT_HAS(err, want);
	ASSERT_HAS(err, "exceed the producers' message.max.bytes (1000000, librdkafka's default)");
	ASSERT_HAS(err, "at most 998208");
	ck_assert_uint_eq(count_lines(err), 1);

	/* the largest that fits is accepted */
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 998208\n", no_brokers_env, &c,
				   err, sizeof err, path, sizeof path), 0);
	ls_config_free(&c);

	/* a larger message.max.bytes makes room */
	const char *big = "kafka:\n  properties:\n    message.max.bytes: \"2000000\"\n"
			  "pipeline:\n  max_record_size: 1048576\n";
	ck_assert_int_eq(load_text(big, no_brokers_env, &c, err, sizeof err, path, sizeof path), 0);
	ck_assert_int_eq(ls_config_message_max(&c), 2000000);
	ls_config_free(&c);

	/* a smaller one, with every pipeline default: blamed on the property */
	const char *small = "kafka:\n  properties:\n    message.max.bytes: \"500000\"\n";
	ck_assert_int_eq(load_text(small, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	snprintf(want, sizeof want, "%s:3:24: kafka.properties.message.max.bytes: ", path);
	ASSERT_HAS(err, want);
	ASSERT_HAS(err, "(500000)");

	/* a long id cap is blamed on max_id_bytes */
	ck_assert_int_eq(load_text("pipeline:\n  max_id_bytes: 65536\n", no_brokers_env, &c, err,
				   sizeof err, path, sizeof path), -1);
	snprintf(want, sizeof want, "%s:2:17: pipeline.max_id_bytes: ", path);
	ASSERT_HAS(err, want);

	/* the environment beats the file, and is named */
	char *env[] = { "LEADSCORE_KAFKA_BROKERS=b:1", "LEADSCORE_PIPELINE_MAX_RECORD_SIZE=999000",
			NULL };
	ck_assert_int_eq(load_text("pipeline:\n  max_record_size: 2048\n", env, &c, err,
				   sizeof err, path, sizeof path), -1);
	ASSERT_HAS(err, "environment LEADSCORE_PIPELINE_MAX_RECORD_SIZE: pipeline.max_record_size (999000)");
	ck_assert_uint_eq(count_lines(err), 1);

	/* the new keys' ranges, at the value */
	const char *bad = "pipeline:\n  max_id_bytes: 8\n  ready_failed_batches: 0\n"
			  "  ready_stall: 2h\n  dead_letter_log_rate: -1\n";
	ck_assert_int_eq(load_text(bad, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	ASSERT_HAS(err, ":2:17: pipeline.max_id_bytes: must be between 128 and 65536, got 8");
	ASSERT_HAS(err, ":3:25: pipeline.ready_failed_batches: must be between 1 and 1000000, got 0");
	ASSERT_HAS(err, ":4:16: pipeline.ready_stall: must be between 0ms and 1h, got 2h");
	ASSERT_HAS(err, ":5:25: pipeline.dead_letter_log_rate: must be between 0 and 100000, got -1");
	ck_assert_uint_eq(count_lines(err), 4);

	/* a message.max.bytes that is no number is librdkafka's to refuse,
	 * at the value and without it, before the room check reads it */
	const char *word = "kafka:\n  properties:\n    message.max.bytes: lots\n";
	ck_assert_int_eq(load_text(word, no_brokers_env, &c, err, sizeof err, path, sizeof path),
			 -1);
	ASSERT_HAS(err, ":3:24: kafka.properties.message.max.bytes");
	ck_assert_ptr_null(strstr(err, "lots"));
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_pipeline_reload)
{
	ls_config a, b;
	diff_seen s;

	load_ok("env_base.yaml", no_env, &a);
	load_ok("pipeline_live.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	/* env_base also sets batch_size and log.level, which pipeline_live
	 * leaves at their defaults. */
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 9);
	ck_assert_int_eq(diff_find(&s, "pipeline.grace"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.dedupe_horizon"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.max_future_skew"), 1);
	ck_assert_int_eq(diff_find(&s, "pipeline.dedupe_ids"), 0);
	ck_assert_int_eq(diff_find(&s, "pipeline.cache_leads"), 0);
	ck_assert_int_eq(diff_find(&s, "features"), 0);
	ck_assert_int_eq(diff_find(&s, "kafka.brokers"), 0);
	ck_assert_int_eq(diff_find(&s, "pipeline.batch_size"), 1);
	ck_assert_int_eq(diff_find(&s, "log.level"), 1);

	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ck_assert_int_eq(a.pipeline.grace_ms, 2 * H);
	ck_assert_int_eq(a.pipeline.dedupe_horizon_ms, 10 * 60000);
	ck_assert_int_eq(a.pipeline.max_future_skew_ms, 30000);
	ck_assert_int_eq(a.pipeline.dedupe_ids, 32);     /* restart-only */
	ck_assert_int_eq(a.pipeline.cache_leads, 100000); /* restart-only */
	ck_assert_uint_eq(a.features.n, 0);              /* restart-only */
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 4);
	for (size_t i = 0; i < s.n; i++)
		ck_assert_msg(!s.reload[i], "%s still differs after apply_live", s.keys[i]);

	/* The live grace and horizon reach the lead conf the pipeline
	 * rebuilds. */
	size_t n = 0;
	char err[256];
	const ls_feature_spec *specs = ls_config_features(&b, &n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "%s", err);
	ck_assert_uint_eq(set->n_features, 2);
	ls_lead_conf lc;
	ls_config_lead_conf(&a, set, &lc);
	ck_assert_int_eq(lc.grace_ms, 2 * H);
	ck_assert_int_eq(lc.dedupe_horizon_ms, 10 * 60000);
	ck_assert_uint_eq(lc.dedupe_k, 32);
	ls_feature_set_free(set);
	ls_config_free(&a);
	ls_config_free(&b);
}
END_TEST

START_TEST(test_number_values)
{
	/* scale, prior and cap: plain decimals only, and in range. */
	static const struct {
		const char *yaml;
		const char *want;
	} cases[] = {
		{ "scale: 0x10", "features[0].scale: expected a decimal number, got \"0x10\"" },
		{ "scale: inf", "features[0].scale: expected a decimal number, got \"inf\"" },
		{ "scale: 0", "features[0].scale: must not be 0" },
		{ "scale: 1e400", "features[0].scale: expected a decimal number, got \"1e400\"" },
		{ "scale: -2.5e-1", NULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[] = "/tmp/ls_test_config_XXXXXX";
		int fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		FILE *fp = fdopen(fd, "w");
		ck_assert_ptr_nonnull(fp);
		fprintf(fp, "features:\n  - name: t\n    source: web\n    aggregation: sum\n"
			    "    field: duration_ms\n    windows: [7d]\n    %s\n", cases[i].yaml);
		fclose(fp);
		ls_config c;
		char err[1024];
		int rc = ls_config_load_env(path, no_brokers_env, &c, err, sizeof err);
		unlink(path);
		if (cases[i].want == NULL) {
			ck_assert_msg(rc == 0, "%s: %s", cases[i].yaml, err);
			ck_assert(c.features.specs[0].scale == -0.25);
			ls_config_free(&c);
			continue;
		}
		ck_assert_msg(rc == -1, "accepted %s", cases[i].yaml);
		ASSERT_HAS(err, ":7:12: ");
		ASSERT_HAS(err, cases[i].want);
	}
}
END_TEST

/* Field by field, so a mismatch names the model and the member. */
static void assert_model_eq(const ls_model_spec *got, const ls_model_spec *want)
{
	const char *nm = want->name;
	ck_assert_str_eq(got->name, want->name);
	ck_assert_msg(got->positive_mask == want->positive_mask, "%s: positive %#x, want %#x",
		      nm, got->positive_mask, want->positive_mask);
	ck_assert_msg(got->negative_mask == want->negative_mask, "%s: negative %#x, want %#x",
		      nm, got->negative_mask, want->negative_mask);
	ck_assert_msg(got->label_timeout_ms == want->label_timeout_ms, "%s: label_timeout", nm);
	ck_assert_msg(got->min_delta == want->min_delta, "%s: min_delta %g, want %g", nm,
		      got->min_delta, want->min_delta);
	ck_assert_msg(got->tiers.n == want->tiers.n, "%s: %zu tiers, want %zu", nm,
		      got->tiers.n, want->tiers.n);
	for (size_t i = 0; i < want->tiers.n; i++) {
		ck_assert_str_eq(got->tiers.names[i], want->tiers.names[i]);
		if (i > 0)
			ck_assert_msg(got->tiers.bounds[i - 1] == want->tiers.bounds[i - 1],
				      "%s: boundary %zu %g, want %g", nm, i - 1,
				      got->tiers.bounds[i - 1], want->tiers.bounds[i - 1]);
	}
	ck_assert_msg(got->tiers.hysteresis == want->tiers.hysteresis, "%s: hysteresis", nm);
	ck_assert_msg(got->ftrl.alpha == want->ftrl.alpha, "%s: alpha", nm);
	ck_assert_msg(got->ftrl.beta == want->ftrl.beta, "%s: beta", nm);
	ck_assert_msg(got->ftrl.l1 == want->ftrl.l1, "%s: l1", nm);
	ck_assert_msg(got->ftrl.l2 == want->ftrl.l2, "%s: l2", nm);
	ck_assert_msg(got->ftrl.n_buckets == want->ftrl.n_buckets, "%s: buckets", nm);
	ck_assert_msg(got->ftrl.clip == want->ftrl.clip, "%s: clip", nm);
	ck_assert_msg(got->n_crosses == want->n_crosses, "%s: %zu crosses, want %zu", nm,
		      got->n_crosses, want->n_crosses);
	for (size_t i = 0; i < want->n_crosses; i++) {
		ck_assert_str_eq(got->crosses[i].a, want->crosses[i].a);
		ck_assert_str_eq(got->crosses[i].b, want->crosses[i].b);
	}
	ck_assert_msg(got->n_metrics == want->n_metrics, "%s: %zu metrics, want %zu", nm,
		      got->n_metrics, want->n_metrics);
	for (size_t i = 0; i < want->n_metrics; i++)
		ck_assert_str_eq(got->metrics[i], want->metrics[i]);
	ck_assert_msg(got->decay_half_life_ms == want->decay_half_life_ms, "%s: decay", nm);
	ck_assert_msg(got->eval_window == want->eval_window, "%s: eval_window", nm);
	ck_assert_msg(got->shadow == want->shadow, "%s: shadow", nm);
}

#define OUT(o) (1u << (o))

/* The built-in model, written out from the issue and the models' own
 * defaults rather than read back from ls_config. */
static void want_default_model(ls_model_spec *m)
{
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "conversion");
	m->positive_mask = OUT(LS_OUTCOME_CONVERTED) | OUT(LS_OUTCOME_WON);
	m->negative_mask = OUT(LS_OUTCOME_LOST) | OUT(LS_OUTCOME_DISQUALIFIED);
	m->label_timeout_ms = 90 * D;
	m->min_delta = 0.05;
	const char *names[] = { "cold", "warm", "hot" };
	const double bounds[] = { 0.3, 0.7 };
	char err[128];
	ck_assert_msg(ls_tiers_init(&m->tiers, names, bounds, 3, 0.02, err, sizeof err), "%s", err);
	ls_ftrl_params_default(&m->ftrl);
	m->n_crosses = 2;
	snprintf(m->crosses[0].a, sizeof m->crosses[0].a, "industry");
	snprintf(m->crosses[0].b, sizeof m->crosses[0].b, "size_band");
	snprintf(m->crosses[1].a, sizeof m->crosses[1].a, "industry");
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "role");
	m->n_metrics = 2;
	snprintf(m->metrics[0], sizeof m->metrics[0], "employees");
	snprintf(m->metrics[1], sizeof m->metrics[1], "annual_revenue");
	m->decay_half_life_ms = 0;
	m->eval_window = 10000;
	m->shadow = false;
}

START_TEST(test_models_defaults)
{
	ls_model_spec want;
	want_default_model(&want);

	/* No models: key, so the built-in model. */
	ls_config c;
	ls_config_init_defaults(&c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 5000);
	ck_assert_uint_eq(c.models.n, 0);
	size_t n = 0;
	const ls_model_spec *m = ls_config_models(&c, &n);
	ck_assert_uint_eq(n, 1);
	assert_model_eq(&m[0], &want);
	/* Ready for the models: the tiers assign, the parameters check. */
	char err[256];
	ck_assert(ls_ftrl_params_check(&m[0].ftrl, err, sizeof err));
	ck_assert_int_eq(ls_tiers_assign(&m[0].tiers, -1, 0.5), 1);
	ck_assert_str_eq(ls_tiers_name(&m[0].tiers, 2), "hot");
	ls_config_free(&c);
	ck_assert_ptr_eq(ls_config_models(NULL, &n), m);

	/* A model with only a name takes every default, and a list with
	 * it alone is the same configuration as no list. */
	load_ok("models_name_only.yaml", no_env, &c);
	ck_assert_uint_eq(c.models.n, 1);
	ck_assert_ptr_eq(ls_config_models(&c, &n), c.models.specs);
	assert_model_eq(&c.models.specs[0], &want);
	ck_assert_int_eq(ls_tiers_assign(&c.models.specs[0].tiers, -1, 0.71), 2);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_models_default_yaml)
{
	/* The built-in model written in YAML loads into exactly it... */
	ls_config c;
	ls_model_spec want;
	want_default_model(&want);
	load_ok("models_default.yaml", no_brokers_env, &c);
	size_t n = 0;
	const ls_model_spec *got = ls_config_models(&c, &n);
	ck_assert_ptr_eq(got, c.models.specs);
	ck_assert_uint_eq(n, 1);
	assert_model_eq(&got[0], &want);
	ls_config_free(&c);

	/* ...and conf/leadscore.yaml shows that same text, commented out
	 * below an empty `models:`, up to the first line that is not a
	 * comment. */
	char path[1024];
	fixture("models_default.yaml", path, sizeof path);
	static char fixture_text[65536];
	snprintf(fixture_text, sizeof fixture_text, "%s", slurp(path));
	source_file("conf/leadscore.yaml", path, sizeof path);
	char *conf = slurp(path);
	char *block = strstr(conf, "\nmodels:\n");
	ck_assert_msg(block != NULL, "conf/leadscore.yaml has no empty models: line");
	block++;
	static char uncommented[65536];
	size_t len = 0;
	char *line = strchr(block, '\n') + 1;
	len += (size_t)snprintf(uncommented, sizeof uncommented, "models:\n");
	while (line[0] == '#') {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		const char *text = line + 1;
		if (*text == ' ')
			text++;
		len += (size_t)snprintf(uncommented + len, sizeof uncommented - len, "%.*s\n",
					(int)(nl - text), text);
		ck_assert_uint_lt(len, sizeof uncommented);
		line = nl + 1;
	}
	ck_assert_str_eq(uncommented, fixture_text);
}
END_TEST

START_TEST(test_models_custom)
{
	ls_config c;
	load_ok("models_custom.yaml", no_env, &c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 30000);
	size_t n = 0;
	const ls_model_spec *m = ls_config_models(&c, &n);
	ck_assert_uint_eq(n, 2);

	ls_model_spec w;
	memset(&w, 0, sizeof w);
	snprintf(w.name, sizeof w.name, "conversion");
	w.positive_mask = OUT(LS_OUTCOME_CONVERTED);
	w.negative_mask = OUT(LS_OUTCOME_LOST);
	w.label_timeout_ms = 30 * D;
	w.min_delta = 0;
	w.tiers.n = 4;
	snprintf(w.tiers.names[0], sizeof w.tiers.names[0], "low");
	snprintf(w.tiers.names[1], sizeof w.tiers.names[1], "mid");
	snprintf(w.tiers.names[2], sizeof w.tiers.names[2], "high");
	snprintf(w.tiers.names[3], sizeof w.tiers.names[3], "hottest");
	w.tiers.bounds[0] = 0.25;
	w.tiers.bounds[1] = 0.5;
	w.tiers.bounds[2] = 0.9;
	w.tiers.hysteresis = 0;
	w.ftrl.alpha = 0.05;
	w.ftrl.beta = 0.5;
	w.ftrl.l1 = 0;
	w.ftrl.l2 = 2.5;
	w.ftrl.n_buckets = 1024;
	w.ftrl.clip = 3;
	w.decay_half_life_ms = 14 * D;
	w.eval_window = 1048576;
	assert_model_eq(&m[0], &w);
	ck_assert_int_eq(ls_tiers_assign(&m[0].tiers, 2, 0.95), 3);

	/* The second model names only some keys; the rest are defaults. */
	want_default_model(&w);
	snprintf(w.name, sizeof w.name, "opportunity_v2");
	w.positive_mask = OUT(LS_OUTCOME_OPPORTUNITY_CREATED) | OUT(LS_OUTCOME_WON);
	w.negative_mask = 0;
	w.shadow = true;
	w.n_crosses = 2;
	snprintf(w.crosses[0].a, sizeof w.crosses[0].a, "role");
	snprintf(w.crosses[0].b, sizeof w.crosses[0].b, "industry");
	snprintf(w.crosses[1].a, sizeof w.crosses[1].a, "industry");
	snprintf(w.crosses[1].b, sizeof w.crosses[1].b, "country");
	w.n_metrics = 1;
	assert_model_eq(&m[1], &w);

	/* The models accept what the config accepted. */
	char err[256];
	for (size_t i = 0; i < n; i++) {
		const char *dense[LS_MODEL_MAX_METRICS];
		for (size_t j = 0; j < m[i].n_metrics; j++)
			dense[j] = m[i].metrics[j];
		ls_ftrl *model = ls_ftrl_new(&m[i].ftrl, dense, m[i].n_metrics, err, sizeof err);
		ck_assert_msg(model != NULL, "%s: %s", m[i].name, err);
		ls_ftrl_free(model);
		ls_eval *ev = ls_eval_new((size_t)m[i].eval_window);
		ck_assert_ptr_nonnull(ev);
		ls_eval_free(ev);
	}
	ls_config_free(&c);
}
END_TEST

START_TEST(test_models_errors)
{
	char err[8192];
	load_bad("models_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_bad.yaml:5:27: models[0].positive[1]: unknown outcome type \"SIGNED\" (expected one of CONVERTED, OPPORTUNITY_CREATED, WON, LOST, DISQUALIFIED)");
	ASSERT_HAS(err, "models_bad.yaml:8:15: models[1].negative: WON is both a positive and a negative outcome");
	ASSERT_HAS(err, "models_bad.yaml:15:14: models[2].tiers[2].min: boundary 1 (0.4) not above boundary 0 (0.6)");
	ASSERT_HAS(err, "models_bad.yaml:18:17: models[3].hysteresis: hysteresis 0.6 not below the first boundary 0.5");
	ASSERT_HAS(err, "models_bad.yaml:22:16: models[4].ftrl.buckets: must be a power of two in [16, 16777216]");
	ASSERT_HAS(err, "models_bad.yaml:23:11: models[5].name: must be a name of a-z, 0-9 and _, got \"Bad-Name\"");
	ASSERT_HAS(err, "models_bad.yaml:24:11: models[6].name: duplicate model name \"m2\" (also models[1])");
	ASSERT_HAS(err, "models_bad.yaml:26:16: models[7].ftrl.l2: must be a finite number >= 0");
	ck_assert_uint_eq(count_lines(err), 8);

	load_bad("models_bad_more.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_bad_more.yaml:5:15: models[0].negative: no negative outcomes and label_timeout 0");
	ASSERT_HAS(err, "models_bad_more.yaml:8:16: models[1].min_delta: must be between 0 and 1, got \"1.5\"");
	ASSERT_HAS(err, "models_bad_more.yaml:10:31: models[2].tiers[0].min: the lowest tier starts at 0");
	ASSERT_HAS(err, "models_bad_more.yaml:12:15: models[3].crosses[0]: crosses \"industry\" with itself");
	ASSERT_HAS(err, "models_bad_more.yaml:14:26: models[4].metrics[1]: \"employees\" is listed twice");
	ASSERT_HAS(err, "models_bad_more.yaml:16:18: models[5].eval_window: must be between 100 and 1048576, got 50");
	ASSERT_HAS(err, "models_bad_more.yaml:18:5: models[6].shape: unknown key (expected one of: name, positive, negative, label_timeout, min_delta, tiers, hysteresis, ftrl, crosses, metrics, decay_half_life, eval_window, shadow)");
	/* The default hysteresis does not fit these tiers: the tiers are
	 * what the user wrote, so that is where it is reported. */
	ASSERT_HAS(err, "models_bad_more.yaml:20:12: models[7].tiers: hysteresis 0.02 not below 1 - the last boundary 0.99");
	ck_assert_uint_eq(count_lines(err), 8);

	load_bad("models_empty.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "models_empty.yaml:3:9: models: must list at least one model");
	ck_assert_uint_eq(count_lines(err), 1);
}
END_TEST

START_TEST(test_campaigns_custom)
{
	ls_config c;
	load_ok("campaigns_custom.yaml", no_env, &c);
	ck_assert_uint_eq(c.campaigns.n, 2);
	const ls_campaign_spec *k = &c.campaigns.specs[0];
	ck_assert_str_eq(k->id, "subject-lines");
	ck_assert_uint_eq(k->n_arms, 3);
	ck_assert_str_eq(k->arms[0], "short");
	ck_assert_str_eq(k->arms[2], "emoji_v2");
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_OPENED], 0.2);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_CLICKED], 0.6);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_REPLIED], 1.0);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_SENT], 0.0);
	ck_assert_double_eq(k->reward_weight[LS_EMAIL_BOUNCED], 0.0);
	ck_assert_int_eq(k->reward_window_ms, 48 * 3600000LL);
	ck_assert_int_eq(k->activation_timeout_ms, 6 * 3600000LL);
	ck_assert_double_eq(k->default_reward, 0.05);
	ck_assert_double_eq(k->prior_a, 2.0);
	ck_assert_double_eq(k->prior_b, 30.0);
	ck_assert_double_eq(k->min_share, 0.05);
	ck_assert_uint_eq(k->n_context, 2);
	ck_assert_str_eq(k->context[0], "tier");
	ck_assert_str_eq(k->context[1], "industry");
	ck_assert_str_eq(k->tier_model, "conversion");
	ck_assert_int_eq(k->min_bucket_trials, 250);
	ck_assert_int_eq(k->max_buckets, 64);
	ck_assert_int_eq(k->propensity_draws, 20000);

	/* Only id and arms given: the README's defaults. */
	k = &c.campaigns.specs[1];
	ck_assert_str_eq(k->id, "send_time");
	ck_assert_uint_eq(k->n_arms, 1);
	for (int t = 0; t < LS_EMAIL__COUNT; t++)
		ck_assert_double_eq(k->reward_weight[t], t == LS_EMAIL_CLICKED ? 1.0 : 0.0);
	ck_assert_int_eq(k->reward_window_ms, 72 * 3600000LL);
	ck_assert_int_eq(k->activation_timeout_ms, 24 * 3600000LL);
	ck_assert_double_eq(k->default_reward, 0.0);
	ck_assert_double_eq(k->prior_a, 1.0);
	ck_assert_double_eq(k->prior_b, 1.0);
	ck_assert_double_eq(k->min_share, 0.01);
	ck_assert_uint_eq(k->n_context, 0);
	ck_assert_str_eq(k->tier_model, "conversion");
	ck_assert_int_eq(k->min_bucket_trials, 100);
	ck_assert_int_eq(k->max_buckets, 1000);
	ck_assert_int_eq(k->propensity_draws, 10000);

	/* Campaigns are live: SIGHUP copies the whole list. */
	ls_config a;
	load_ok("env_base.yaml", no_env, &a);
	diff_seen s;
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "campaigns"), 1);
	ck_assert_int_eq(ls_config_apply_live(&a, &c), 0);
	ck_assert_uint_eq(a.campaigns.n, 2);
	ck_assert_str_eq(a.campaigns.specs[0].arms[1], "question");
	ck_assert_int_eq(a.campaigns.specs[0].propensity_draws, 20000);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &c, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "campaigns"), -1);
	ls_config_free(&a);
	ls_config_free(&c);
}
END_TEST

START_TEST(test_campaigns_errors)
{
	char err[8192];
	load_bad("campaigns_bad.yaml", no_env, err, sizeof err);
	ASSERT_HAS(err, "campaigns_bad.yaml:5:11: campaigns[0].arms: must list at least one arm");
	ASSERT_HAS(err, "campaigns_bad.yaml:6:9: campaigns[1].id: must be made of A-Z, a-z, 0-9, _ and -, got \"bad id!\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:9:15: campaigns[2].arms[1]: \"a\" is listed twice");
	ASSERT_HAS(err, "campaigns_bad.yaml:12:24: campaigns[3].rewards.CLICKED: expected a weight above 0 and at most 1");
	ASSERT_HAS(err, "campaigns_bad.yaml:12:41: campaigns[3].rewards.SENT: SENT activates a decision and cannot reward it");
	ASSERT_HAS(err, "campaigns_bad.yaml:15:16: campaigns[4].min_share: 0.5 per arm over 3 arms is more than 1");
	ASSERT_HAS(err, "campaigns_bad.yaml:18:12: campaigns[5].prior.alpha: must be above 0");
	ASSERT_HAS(err, "campaigns_bad.yaml:21:14: campaigns[6].context: at most 2 entries, got 3");
	ASSERT_HAS(err, "campaigns_bad.yaml:25:17: campaigns[7].tier_model: context uses tier, but there is no model named \"nosuch\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:26:9: campaigns[8].id: duplicate campaign id \"share\" (also campaigns[4])");
	ASSERT_HAS(err, "campaigns_bad.yaml:30:20: campaigns[9].reward_window: must be between 1s and 90d, got 0ms");
	ASSERT_HAS(err, "campaigns_bad.yaml:31:21: campaigns[9].default_reward: must be between 0 and 1, got \"2\"");
	ASSERT_HAS(err, "campaigns_bad.yaml:32:23: campaigns[9].propensity_draws: must be between 100 and 1000000, got 10");
	ASSERT_HAS(err, "campaigns_bad.yaml:33:5: campaigns[9].colour: unknown key (expected one of: id, arms, rewards, reward_window, activation_timeout, default_reward, prior, min_share, context, tier_model, min_bucket_trials, max_buckets, propensity_draws)");
	ck_assert_uint_eq(count_lines(err), 14);
}
END_TEST

/*
 * Messages the hooks of every item file build with the engine's shared
 * helpers (a sequence expected, a list of the allowed names): the same
 * text for features, models and campaigns.
 */
START_TEST(test_item_messages)
{
	static const char yaml[] =
		"kafka:\n"
		"  brokers: localhost:9092\n"
		"features:\n"
		"  - name: f\n"
		"    source: email\n"
		"    types:\n"
		"    windows: 7d\n"
		"models:\n"
		"  - name: m\n"
		"    tiers: hot\n"
		"    crosses: {a: b}\n"
		"campaigns:\n"
		"  - id: c\n"
		"    arms: [a]\n"
		"    rewards: {VIEWED: 1}\n";
	ls_config c;
	char err[4096], path[64];

	ck_assert_int_eq(load_text(yaml, no_env, &c, err, sizeof err, path, sizeof path), -1);
	ASSERT_HAS(err, ":6:11: features[0].types: expected a sequence of event types such as [OPENED, CLICKED], got null");
	ASSERT_HAS(err, ":7:14: features[0].windows: expected a sequence of windows such as [24h, 7d], got a scalar");
	ASSERT_HAS(err, ":10:12: models[0].tiers: expected a sequence of tiers such as [{name: cold}, {name: hot, min: 0.7}], got a scalar");
	ASSERT_HAS(err, ":11:14: models[0].crosses: expected a sequence of pairs such as [[industry, size_band]], got a mapping");
	ASSERT_HAS(err, ":15:15: campaigns[0].rewards.VIEWED: unknown email event type \"VIEWED\" (expected one of SENT, DELIVERED, OPENED, CLICKED, REPLIED, BOUNCED, UNSUBSCRIBED, SPAM_REPORTED)");
	ck_assert_uint_eq(count_lines(err), 5);
}
END_TEST

START_TEST(test_scoring_env)
{
	/* The environment beats the file... */
	char *env[] = { "LEADSCORE_SCORING_CHECKPOINT_INTERVAL=2m", NULL };
	ls_config c;
	load_ok("models_custom.yaml", env, &c);
	ck_assert_int_eq(c.scoring.checkpoint_interval_ms, 2 * 60000);
	ls_config_free(&c);

	/* ...and is checked like the file. */
	char *bad[] = { "LEADSCORE_SCORING_CHECKPOINT_INTERVAL=500ms",
			"LEADSCORE_MODELS=ignored", NULL };
	char err[1024];
	load_bad("models_custom.yaml", bad, err, sizeof err);
	ck_assert_str_eq(err, "environment LEADSCORE_SCORING_CHECKPOINT_INTERVAL: must be between 1s and 1h, got 500ms");
}
END_TEST

START_TEST(test_models_diff)
{
	ls_config a, b;
	diff_seen s;

	/* Unlike features, the built-in model and a list are compared as
	 * they run: writing the default out is no change at all. */
	load_ok("env_base.yaml", no_env, &a);
	load_ok("models_name_only.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &b, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "models"), -1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), -1);
	ls_config_free(&b);

	/* Another list of models: one restart-only key. */
	load_ok("models_custom.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	ls_config_diff(&a, &b, on_diff, &s);
	ck_assert_int_eq(diff_find(&s, "models"), 0);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), -1);
	ck_assert_int_eq(diff_find(&s, "scoring.checkpoint_interval"), 1);

	/* SIGHUP: the interval moves over, the models wait for a restart. */
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ck_assert_int_eq(a.scoring.checkpoint_interval_ms, 30000);
	ck_assert_uint_eq(a.models.n, 0);
	ls_config_free(&b);

	/* The same model with new thresholds: each key by model, the
	 * thresholds live, the learning rate restart-only. */
	load_ok("models_live.yaml", no_env, &b);
	memset(&s, 0, sizeof s);
	/* (log.level and pipeline.batch_size moved with models_custom) */
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 9);
	ck_assert_int_eq(diff_find(&s, "models[conversion].min_delta"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].tiers"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].hysteresis"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].decay_half_life"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].shadow"), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].ftrl.alpha"), 0);
	ck_assert_int_eq(diff_find(&s, "scoring.checkpoint_interval"), 1);
	ck_assert_int_eq(diff_find(&s, "models"), -1);
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	size_t n = 0;
	const ls_model_spec *m0 = ls_config_models(&a, &n);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_eq(m0, a.models.specs); /* the built-in one, now a list */
	ck_assert_double_eq(m0->min_delta, 0.2);
	ck_assert_uint_eq(m0->tiers.n, 2);
	ck_assert_str_eq(ls_tiers_name(&m0->tiers, 1), "high");
	ck_assert_double_eq(m0->tiers.bounds[0], 0.4);
	ck_assert_double_eq(m0->tiers.hysteresis, 0.05);
	ck_assert_int_eq(m0->decay_half_life_ms, 7 * 86400000LL);
	ck_assert(m0->shadow);
	ck_assert_double_eq(m0->ftrl.alpha, 0.1); /* waits for a restart */
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[conversion].ftrl.alpha"), 0);

	/* And back to the built-in model's thresholds. */
	ls_config_free(&b);
	load_ok("env_base.yaml", no_env, &b);
	ck_assert_int_eq(ls_config_apply_live(&a, &b), 0);
	ls_model_spec want;
	want_default_model(&want);
	assert_model_eq(&a.models.specs[0], &want);
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_config_free(&b);
	ls_config_free(&a);

	/* Every member is compared. */
	load_ok("models_custom.yaml", no_env, &a);
	load_ok("models_custom.yaml", no_env, &b);
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_model_spec *m = &a.models.specs[1];
	m->tiers.bounds[0] = 0.31;
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[opportunity_v2].tiers"), 1);
	m->tiers.bounds[0] = b.models.specs[1].tiers.bounds[0];
	m->negative_mask = OUT(LS_OUTCOME_LOST);
	memset(&s, 0, sizeof s);
	ck_assert_uint_eq(ls_config_diff(&a, &b, on_diff, &s), 1);
	ck_assert_int_eq(diff_find(&s, "models[opportunity_v2].negative"), 0);
	m->negative_mask = 0;
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "region");
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	snprintf(m->crosses[1].b, sizeof m->crosses[1].b, "country");
	snprintf(m->metrics[0], sizeof m->metrics[0], "seats");
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	snprintf(m->metrics[0], sizeof m->metrics[0], "employees");
	m->ftrl.n_buckets = 1u << 20;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	m->ftrl.n_buckets = b.models.specs[1].ftrl.n_buckets;
	m->shadow = false;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 1);
	m->shadow = true;
	ck_assert_uint_eq(ls_config_diff(&a, &b, NULL, NULL), 0);
	ls_config_free(&a);
	ls_config_free(&b);
}
END_TEST

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	ck_assert_msg(fp != NULL, "cannot open %s", path);
	static char buf[262144]; /* README.md passed 64 KiB */
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	ck_assert(!ferror(fp));
	ck_assert_uint_lt(n, sizeof buf - 1);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* Trim spaces in place and return the start. */
static char *trim(char *s)
{
	while (*s == ' ')
		s++;
	size_t len = strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		s[--len] = '\0';
	return s;
}

START_TEST(test_readme_table)
{
	char path[1024];
	source_file("README.md", path, sizeof path);
	char *text = slurp(path);
	char *begin = strstr(text, "<!-- config-reference:begin -->");
	char *end = strstr(text, "<!-- config-reference:end -->");
	ck_assert_ptr_nonnull(begin);
	ck_assert_ptr_nonnull(end);
	ck_assert(begin < end);
	*end = '\0';
	char *table = strstr(begin, "| key | type | default | live | description |");
	ck_assert_msg(table != NULL, "README.md: key table header not found");

	static char rows[96][5][256];
	size_t n_rows = 0;
	char *line = strchr(table, '\n') + 1; /* skip the header */
	line = strchr(line, '\n') + 1;        /* and the |---| line */
	while (line[0] == '|') {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		ck_assert_uint_lt(n_rows, 96);
		char *cell = line + 1;
		for (int c = 0; c < 5; c++) {
			char *bar = strchr(cell, '|');
			ck_assert_msg(bar != NULL, "README row has too few cells: %s", line);
			*bar = '\0';
			snprintf(rows[n_rows][c], sizeof rows[n_rows][c], "%s", trim(cell));
			cell = bar + 1;
		}
		n_rows++;
		line = nl + 1;
	}

	ls_config_key_info k;
	size_t n_keys = 0;
	for (size_t i = 0; ls_config_key_at(i, &k); i++, n_keys++) {
		char key[128], def[160];
		snprintf(key, sizeof key, "`%s`", k.key);
		if (k.required)
			snprintf(def, sizeof def, "(required)");
		else if (k.default_text == NULL)
			snprintf(def, sizeof def, "(none)");
		else
			snprintf(def, sizeof def, "`%s`", k.default_text);
		size_t r = 0;
		while (r < n_rows && strcmp(rows[r][0], key) != 0)
			r++;
		ck_assert_msg(r < n_rows, "README.md table lacks %s", k.key);
		ck_assert_msg(strcmp(rows[r][1], k.type) == 0, "%s: README type %s, code %s",
			      k.key, rows[r][1], k.type);
		ck_assert_msg(strcmp(rows[r][2], def) == 0, "%s: README default %s, code %s",
			      k.key, rows[r][2], def);
		ck_assert_msg(strcmp(rows[r][3], k.reloadable ? "yes" : "no") == 0,
			      "%s: README live %s", k.key, rows[r][3]);
		ck_assert_msg(rows[r][4][0] != '\0', "%s: no description", k.key);
	}
	/* Same count and every code key found: nothing extra in the README. */
	ck_assert_msg(n_rows == n_keys, "README.md table has %zu rows, code has %zu keys",
		      n_rows, n_keys);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_example_config);
	tcase_add_test(tc, test_unknown_key);
	tcase_add_test(tc, test_wrong_type);
	tcase_add_test(tc, test_missing_brokers);
	tcase_add_test(tc, test_bad_duration);
	tcase_add_test(tc, test_bad_redis_url);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_duplicate_key);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_env_overrides);
	tcase_add_test(tc, test_env_bad_values);
	tcase_add_test(tc, test_apply_env);
	tcase_add_test(tc, test_env_names);
	tcase_add_test(tc, test_duration_parser);
	tcase_add_test(tc, test_bool_parser);
	tcase_add_test(tc, test_address_parsers);
	tcase_add_test(tc, test_schema_writers);
	tcase_add_test(tc, test_properties_and_nulls);
	tcase_add_test(tc, test_properties_librdkafka);
	tcase_add_test(tc, test_secret_permissions);
	tcase_add_test(tc, test_error_buffer);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_features_default_yaml);
	tcase_add_test(tc, test_features_custom);
	tcase_add_test(tc, test_features_item_errors);
	tcase_add_test(tc, test_features_list_errors);
	tcase_add_test(tc, test_pipeline_limits);
	tcase_add_test(tc, test_dead_letter_room);
	tcase_add_test(tc, test_pipeline_reload);
	tcase_add_test(tc, test_number_values);
	tcase_add_test(tc, test_models_defaults);
	tcase_add_test(tc, test_models_default_yaml);
	tcase_add_test(tc, test_models_custom);
	tcase_add_test(tc, test_models_errors);
	tcase_add_test(tc, test_campaigns_custom);
	tcase_add_test(tc, test_campaigns_errors);
	tcase_add_test(tc, test_item_messages);
	tcase_add_test(tc, test_scoring_env);
	tcase_add_test(tc, test_models_diff);
	tcase_add_test(tc, test_readme_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
