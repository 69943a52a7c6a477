/*
 * Unit tests for pipeline/ls_keys: every key family pinned to its exact
 * bytes, and the tables in ls_keys.h and docs/operations.md held to the
 * same keys. Redis already holds keys in this schema, so a change here is a
 * migration, not a refactoring: this test is meant to fail then.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_keys.h"

/* One family's builder over the arguments every family draws from. */
typedef struct args {
	const char *prefix, *name, *id;
	int32_t part;
} args;

typedef int (*builder)(char *buf, size_t cap, const args *a);

static int b_lead(char *b, size_t c, const args *a) { return ls_keys_lead(b, c, a->prefix, a->id); }
static int b_offsets(char *b, size_t c, const args *a) { return ls_keys_offsets(b, c, a->prefix, a->name); }
static int b_epoch(char *b, size_t c, const args *a) { return ls_keys_epoch(b, c, a->prefix); }
static int b_model(char *b, size_t c, const args *a) { return ls_keys_model(b, c, a->prefix, a->name); }
static int b_eval(char *b, size_t c, const args *a) { return ls_keys_model_eval(b, c, a->prefix, a->name); }
static int b_log(char *b, size_t c, const args *a) { return ls_keys_model_log(b, c, a->prefix, a->name); }
static int b_rescore(char *b, size_t c, const args *a) { return ls_keys_rescore(b, c, a->prefix, a->part); }
static int b_due(char *b, size_t c, const args *a) { return ls_keys_due(b, c, a->prefix, a->name, a->part); }
static int b_counts(char *b, size_t c, const args *a)
{
	return ls_keys_bandit(b, c, a->prefix, a->name, LS_KEYS_BANDIT_COUNTS);
}
static int b_pending(char *b, size_t c, const args *a)
{
	return ls_keys_bandit(b, c, a->prefix, a->name, LS_KEYS_BANDIT_PENDING);
}
static int b_decision(char *b, size_t c, const args *a)
{
	return ls_keys_bandit_decision(b, c, a->prefix, a->name, a->id);
}

static const struct family {
	const char *what;
	builder build;
	const char *want;   /* with prefix "ls:", name "m1", id "lead-7", part 3 */
	const char *bare;   /* with prefix "" */
} families[] = {
	{ "lead", b_lead, "ls:{lead-7}:s", "{lead-7}:s" },
	{ "offsets", b_offsets, "ls:offsets:m1", "offsets:m1" },
	{ "epoch", b_epoch, "ls:epoch", "epoch" },
	{ "model", b_model, "ls:model:m1", "model:m1" },
	{ "model eval", b_eval, "ls:model:m1:eval", "model:m1:eval" },
	{ "model log", b_log, "ls:model:m1:log", "model:m1:log" },
	{ "rescore", b_rescore, "ls:rescore:3", "rescore:3" },
	{ "due", b_due, "ls:due:m1:3", "due:m1:3" },
	{ "bandit counts", b_counts, "ls:{bandit:m1}:counts", "{bandit:m1}:counts" },
	{ "bandit pending", b_pending, "ls:{bandit:m1}:pending", "{bandit:m1}:pending" },
	{ "bandit decision", b_decision, "ls:{bandit:m1}:d:lead-7", "{bandit:m1}:d:lead-7" },
};
#define N_FAMILIES (sizeof families / sizeof families[0])

static const args std_args = { "ls:", "m1", "lead-7", 3 };

START_TEST(test_exact_bytes)
{
	const struct family *f = &families[_i];
	char buf[128];
	memset(buf, 'x', sizeof buf);
	int n = f->build(buf, sizeof buf, &std_args);
	ck_assert_msg(n == (int)strlen(f->want), "%s: length %d", f->what, n);
	ck_assert_str_eq(buf, f->want);

	args bare = std_args;
	bare.prefix = "";
	n = f->build(buf, sizeof buf, &bare);
	ck_assert_int_eq(n, (int)strlen(f->bare));
	ck_assert_str_eq(buf, f->bare);
}
END_TEST

/* Exactly the key plus its NUL fits; one byte less is -1 and "". */
START_TEST(test_too_small)
{
	const struct family *f = &families[_i];
	size_t len = strlen(f->want);
	char buf[128];
	ck_assert_int_eq(f->build(buf, len + 1, &std_args), (int)len);
	ck_assert_str_eq(buf, f->want);
	for (size_t cap = 1; cap <= len; cap++) {
		memset(buf, 'x', sizeof buf);
		ck_assert_msg(f->build(buf, cap, &std_args) == -1, "%s: cap %zu",
			      f->what, cap);
		ck_assert_str_eq(buf, "");
		ck_assert_int_eq(buf[cap], 'x'); /* nothing past cap */
	}
	/* cap 0: nothing written at all */
	buf[0] = 'x';
	ck_assert_int_eq(f->build(buf, 0, &std_args), -1);
	ck_assert_int_eq(buf[0], 'x');
}
END_TEST

/* A buffer of the string arguments' lengths + LS_KEYS_OVERHEAD always fits. */
START_TEST(test_overhead)
{
	const struct family *f = &families[_i];
	static const char name[] = "campaign-with-a-rather-long-name";
	static const char id[] = "campaign-with-a-rather-long-name.0123456789abcdef0123456789abcdef";
	const args a = { "prefix:", name, id, INT32_MIN };
	size_t cap = strlen(a.prefix) + strlen(name) + strlen(id) + LS_KEYS_OVERHEAD;
	char buf[256];
	ck_assert_uint_le(cap, sizeof buf);
	ck_assert_msg(f->build(buf, cap, &a) > 0, "%s does not fit", f->what);
}
END_TEST

START_TEST(test_partitions)
{
	char buf[64];
	ck_assert_int_eq(ls_keys_rescore(buf, sizeof buf, "p:", 0), 11);
	ck_assert_str_eq(buf, "p:rescore:0");
	ck_assert_int_eq(ls_keys_rescore(buf, sizeof buf, "p:", INT32_MAX), 20);
	ck_assert_str_eq(buf, "p:rescore:2147483647");
	ck_assert_int_gt(ls_keys_due(buf, sizeof buf, "p:", "churn", -1), 0);
	ck_assert_str_eq(buf, "p:due:churn:-1");
}
END_TEST

START_TEST(test_offsets_field)
{
	char buf[64];
	snprintf(buf, sizeof buf, LS_KEYS_OFFSETS_FIELD, "leads.email", (int32_t)12);
	ck_assert_str_eq(buf, "leads.email:12");
}
END_TEST

/* Only the two campaign keys the scripts take exist; no other part. */
START_TEST(test_bandit_parts)
{
	char buf[64];
	ck_assert_str_eq(LS_KEYS_BANDIT_COUNTS, "counts");
	ck_assert_str_eq(LS_KEYS_BANDIT_PENDING, "pending");
	ck_assert_int_eq(ls_keys_bandit(buf, sizeof buf, "ls:", "c", "v"), -1);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(ls_keys_bandit(buf, sizeof buf, "ls:", "c", "d:x"), -1);
	ck_assert_int_eq(ls_keys_bandit(buf, sizeof buf, "ls:", "c", ""), -1);
}
END_TEST

/* The hash tag is exactly the braces' content: Redis Cluster hashes it. */
START_TEST(test_hash_tags)
{
	char a[64], b[64], c[64];
	ls_keys_bandit(a, sizeof a, "x:", "spring", LS_KEYS_BANDIT_COUNTS);
	ls_keys_bandit(b, sizeof b, "x:", "spring", LS_KEYS_BANDIT_PENDING);
	ls_keys_bandit_decision(c, sizeof c, "x:", "spring", "spring.00");
	const char *keys[] = { a, b, c };
	for (size_t i = 0; i < 3; i++) {
		const char *open = strchr(keys[i], '{'), *close = strchr(keys[i], '}');
		ck_assert_ptr_nonnull(open);
		ck_assert_ptr_nonnull(close);
		ck_assert_int_eq((int)(close - open - 1), (int)strlen("bandit:spring"));
		ck_assert_int_eq(strncmp(open + 1, "bandit:spring", 13), 0);
	}
	ls_keys_lead(a, sizeof a, "x:", "L9");
	ck_assert_int_eq(strncmp(strchr(a, '{'), "{L9}", 4), 0);
}
END_TEST

/* ------------------------------------------------- the documented tables */

/* The file at LS_SOURCE_ROOT/name, NUL-terminated (the test leaks it). */
static char *source_text(const char *name)
{
	const char *root = getenv("LS_SOURCE_ROOT");
	ck_assert_msg(root != NULL, "LS_SOURCE_ROOT is not set");
	char path[1024];
	int n = snprintf(path, sizeof path, "%s/%s", root, name);
	ck_assert(n > 0 && (size_t)n < sizeof path);
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	static char buf[4][262144];
	static size_t used;
	ck_assert_uint_lt(used, 4);
	char *text = buf[used++];
	size_t len = fread(text, 1, sizeof buf[0] - 1, f);
	ck_assert_uint_lt(len, sizeof buf[0] - 1);
	text[len] = '\0';
	fclose(f);
	return text;
}

/*
 * A documented pattern with its placeholders replaced by std_args'
 * values, so it can be compared with what the builders make.
 */
static void expand(const char *pattern, size_t len, char *out, size_t cap)
{
	static const struct {
		const char *ph, *val;
	} ph[] = {
		{ "<p>", "ls:" }, { "<lead_id>", "lead-7" }, { "<id>", "lead-7" },
		{ "<group_id>", "m1" }, { "<m>", "m1" }, { "{bandit:C}", "{bandit:m1}" },
		{ "<partition>", "3" },
	};
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = 0;
		while (k < sizeof ph / sizeof ph[0] &&
		       strncmp(pattern + i, ph[k].ph, strlen(ph[k].ph)) != 0)
			k++;
		const char *v = k < sizeof ph / sizeof ph[0] ? ph[k].val : NULL;
		size_t vl = v != NULL ? strlen(v) : 1;
		ck_assert_uint_lt(o + vl, cap);
		memcpy(out + o, v != NULL ? v : pattern + i, vl);
		o += vl;
		i += v != NULL ? strlen(ph[k].ph) : 1;
	}
	out[o] = '\0';
}

/* Each documented key matches one family; every family is documented. */
static void check_documented(const char *where, const char *const *patterns,
			     const size_t *lens, size_t n)
{
	int seen[N_FAMILIES] = { 0 };
	for (size_t i = 0; i < n; i++) {
		char key[256];
		expand(patterns[i], lens[i], key, sizeof key);
		size_t f = 0;
		while (f < N_FAMILIES && strcmp(families[f].want, key) != 0)
			f++;
		ck_assert_msg(f < N_FAMILIES, "%s documents %.*s, which no builder makes",
			      where, (int)lens[i], patterns[i]);
		seen[f]++;
	}
	for (size_t f = 0; f < N_FAMILIES; f++)
		ck_assert_msg(seen[f] == 1, "%s documents the %s key %d times", where,
			      families[f].what, seen[f]);
}

/* The table opening ls_keys.h: rows are the lines " * <p>KEY ...". */
START_TEST(test_header_table)
{
	const char *text = source_text("pipeline/ls_keys.h");
	const char *patterns[32];
	size_t lens[32], n = 0;
	for (const char *l = strstr(text, "\n * <p>"); l != NULL; l = strstr(l + 1, "\n * <p>")) {
		const char *k = l + 4;
		size_t len = strcspn(k, " \n");
		if (len == 3)
			continue; /* "<p> is ...", the legend */
		ck_assert_uint_lt(n, 32);
		patterns[n] = k;
		lens[n++] = len;
	}
	check_documented("ls_keys.h", patterns, lens, n);
}
END_TEST

/* The "Redis keys" table of docs/operations.md: the first cell of each row. */
START_TEST(test_readme_table)
{
	char *text = source_text("docs/operations.md");
	char *sec = strstr(text, "\n### Redis keys\n");
	ck_assert_msg(sec != NULL, "docs/operations.md has no \"### Redis keys\" section");
	char *end = strstr(sec + 1, "\n#");
	if (end != NULL)
		*end = '\0';
	const char *patterns[32];
	size_t lens[32], n = 0;
	for (const char *l = strstr(sec, "\n| `"); l != NULL; l = strstr(l + 1, "\n| `")) {
		const char *k = l + 4;
		ck_assert_uint_lt(n, 32);
		patterns[n] = k;
		lens[n++] = strcspn(k, "`");
	}
	check_documented("docs/operations.md", patterns, lens, n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_exact_bytes, 0, (int)N_FAMILIES);
	tcase_add_loop_test(tc, test_too_small, 0, (int)N_FAMILIES);
	tcase_add_loop_test(tc, test_overhead, 0, (int)N_FAMILIES);
	tcase_add_test(tc, test_partitions);
	tcase_add_test(tc, test_offsets_field);
	tcase_add_test(tc, test_bandit_parts);
	tcase_add_test(tc, test_hash_tags);
	tcase_add_test(tc, test_header_table);
	tcase_add_test(tc, test_readme_table);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
