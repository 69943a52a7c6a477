/*
 * test_config_util.h - fixtures the ls_config test programs share
 * (test_config.c, test_config_features.c, test_config_models.c): fixture
 * and source paths, loading a fixture or a YAML text expecting success or
 * errors, the reload-diff collector, comparing numeric maps, and reading
 * a whole file.
 *
 * Header-only and static inline, so each test program gets its own copy.
 * Fixtures live in tests/data/config/ (LS_TEST_DATA); docs/configuration.md and
 * conf/leadscore.yaml are read from LS_SOURCE_ROOT. Every load passes an
 * explicit environment so LEADSCORE_* variables of whoever runs the tests
 * cannot change the results. Memory: slurp returns a static buffer; a
 * loaded ls_config belongs to the caller. Errors: every helper fails the
 * running Check test. Thread-safety: none.
 */
#ifndef TEST_CONFIG_UTIL_H
#define TEST_CONFIG_UTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_config.h"

static char *no_env[] = { NULL };

static inline const char *env_dir(const char *var)
{
	const char *d = getenv(var);
	ck_assert_msg(d != NULL, "%s is not set (run under meson test)", var);
	return d;
}

static inline void fixture(const char *name, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "%s/config/%s", env_dir("LS_TEST_DATA"), name);
	ck_assert(n > 0 && (size_t)n < buflen);
}

static inline void source_file(const char *name, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "%s/%s", env_dir("LS_SOURCE_ROOT"), name);
	ck_assert(n > 0 && (size_t)n < buflen);
}

/* Load a fixture expecting failure; err receives the messages. */
static inline void load_bad(const char *name, char **envp, char *err, size_t errlen)
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

static inline void load_ok(const char *name, char **envp, ls_config *c)
{
	char path[1024], err[4096];
	fixture(name, path, sizeof path);
	int rc = ls_config_load_env(path, envp, c, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: unexpected errors:\n%s", name, err);
}

#define ASSERT_HAS(err, needle) \
	ck_assert_msg(strstr((err), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (err))

/* A numeric map, member by member (edges up to n_edges). */
static inline void assert_map_eq(const char *nm, const ls_ftrl_numeric *got, const ls_ftrl_numeric *want)
{
	ck_assert_msg(got->transform == want->transform, "%s: transform %d, want %d", nm,
		      got->transform, want->transform);
	ck_assert_msg(got->no_linear == want->no_linear, "%s: no_linear", nm);
	ck_assert_msg(got->buckets == want->buckets, "%s: buckets %d, want %d", nm, got->buckets,
		      want->buckets);
	ck_assert_msg(got->quantiles == want->quantiles, "%s: quantiles %u, want %u", nm,
		      got->quantiles, want->quantiles);
	ck_assert_msg(got->n_edges == want->n_edges, "%s: %zu edges, want %zu", nm, got->n_edges,
		      want->n_edges);
	for (size_t i = 0; i < want->n_edges; i++)
		ck_assert_msg(got->edges[i] == want->edges[i], "%s: edge %zu %g, want %g", nm, i,
			      got->edges[i], want->edges[i]);
}

static inline size_t count_lines(const char *s)
{
	size_t n = s[0] != '\0' ? 1 : 0;
	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

typedef struct diff_seen {
	size_t n;
	char keys[16][96];
	bool reload[16];
} diff_seen;

static inline void on_diff(const char *key, bool reloadable, void *ud)
{
	diff_seen *s = ud;
	ck_assert_uint_lt(s->n, 16);
	snprintf(s->keys[s->n], sizeof s->keys[s->n], "%s", key);
	s->reload[s->n] = reloadable;
	s->n++;
}

static inline int diff_find(const diff_seen *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->reload[i] ? 1 : 0;
	return -1;
}

/* An hour and a day in ms. */
#define H 3600000LL
#define D (24 * H)

/* Not every program of this family loads with it. */
static char *no_brokers_env[] __attribute__((unused)) = { "LEADSCORE_KAFKA_BROKERS=b:1", NULL };

/* Load yaml (a whole file) from a temp file with envp; rc of the load. */
static inline int load_text(const char *yaml, char **envp, ls_config *c, char *err, size_t errlen,
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

/* Not inline (every program calls it), nor inlined: a caller copying the
 * text into a smaller buffer would otherwise see this buffer's size and
 * warn about truncation. */
__attribute__((noinline)) static char *slurp(const char *path)
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

/*
 * The block of conf/leadscore.yaml commented out below its empty `key:`
 * line, uncommented (one leading "# " or "#" off each line) and headed by
 * "key:\n", compared with fixture file `fixture_name`: the example config
 * shows the built-in default text, so the two cannot drift apart. With
 * to_end, nothing may follow the block.
 */
static inline void assert_conf_block_is(const char *key, const char *fixture_name,
					bool to_end)
{
	char path[1024];
	fixture(fixture_name, path, sizeof path);
	static char fixture_text[65536];
	snprintf(fixture_text, sizeof fixture_text, "%s", slurp(path));
	source_file("conf/leadscore.yaml", path, sizeof path);
	char *conf = slurp(path);
	char head[64];
	snprintf(head, sizeof head, "\n%s:\n", key);
	char *block = strstr(conf, head);
	ck_assert_msg(block != NULL, "conf/leadscore.yaml has no empty %s: line", key);
	block++;
	static char uncommented[65536];
	size_t len = 0;
	char *line = strchr(block, '\n') + 1;
	len += (size_t)snprintf(uncommented, sizeof uncommented, "%s:\n", key);
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
	if (to_end)
		ck_assert_msg(line[0] == '\0', "conf/leadscore.yaml: text after the %s block", key);
	ck_assert_str_eq(uncommented, fixture_text);
}

#endif
