/*
 * test_config.c - ls_config's engine: defaults, the example file, every
 * class of error with its exact file:line:column, environment overrides,
 * the duration, bool and address parsers, schema writers, kafka
 * properties, secret file permissions, the error buffer, the reload diff,
 * and docs/configuration.md and conf/leadscore.yaml checked against the key
 * table. Features and the pipeline limits are test_config_features.c,
 * models and campaigns test_config_models.c; test_config_util.h holds
 * what they share.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "ls_config.h"
#include "ls_testutil.h"
#include "test_config_util.h"

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
		{ "500ms", 500 }, { "0ms", 0 }, { "0s", 0 }, { "0", 0 }, { "00", 0 },
		{ "30s", 30000 },
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


/*
 * docs/configuration.md's key reference is ls_config_reference() byte for
 * byte, between its markers: the page is generated from the table the
 * daemon validates with, and this is what keeps it so. On a mismatch the
 * message names the first line that differs and the command that mends it.
 */
START_TEST(test_config_reference_doc)
{
	static const char begin_mark[] = "<!-- config-reference:begin -->\n";
	static const char end_mark[] = "<!-- config-reference:end -->";
	char path[1024];
	source_file("docs/configuration.md", path, sizeof path);
	char *text = slurp(path);
	char *begin = strstr(text, begin_mark);
	ck_assert_msg(begin != NULL, "%s: no \"%.31s\" line", path, begin_mark);
	begin += strlen(begin_mark);
	char *end = strstr(begin, end_mark);
	ck_assert_msg(end != NULL, "%s: no \"%s\" line after the begin marker", path, end_mark);
	ck_assert_msg(strstr(end + 1, begin_mark) == NULL, "%s: a second begin marker", path);
	*end = '\0';

	ls_config_key_info k;
	for (size_t i = 0; ls_config_key_at(i, &k); i++)
		ck_assert_msg(k.description != NULL && k.description[0] != '\0',
			      "%s: no description", k.key);
	char *want = ls_config_reference();
	ck_assert_ptr_nonnull(want);
	if (strcmp(begin, want) != 0) {
		const char *g = begin, *w = want;
		size_t line = 1;
		while (*g != '\0' && *g == *w) {
			line += *g == '\n';
			g++;
			w++;
		}
		while (g > begin && g[-1] != '\n')
			g--;
		while (w > want && w[-1] != '\n')
			w--;
		static char msg[4096];
		snprintf(msg, sizeof msg,
			 "docs/configuration.md's key reference differs from the code at line %zu "
			 "of the table:\n  page: %.*s\n  code: %.*s\n"
			 "run scripts/gen-docs to regenerate it",
			 line, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
		free(want);
		ck_abort_msg("%s", msg);
	}
	free(want);
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
	tcase_add_test(tc, test_config_reference_doc);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(config_suite(), CK_NORMAL);
}
