/*
 * test_cache.c - ls_cache, exactly its header's contract: get/put with the
 * created flag, new entries empty and clean, entry pointers stable while
 * the table grows, clear drops every entry and its lead (ASan's leak check
 * sees a lead that is not freed), free leaves a reusable empty cache.
 * Links pipeline/ (ls_cache's home; only its object is pulled in).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_cache.h"
#include "ls_testmodels.h"
#include "ls_testutil.h"

#define MANY 5000

START_TEST(test_empty)
{
	ls_cache c;
	ls_cache_init(&c);
	ck_assert_uint_eq(ls_cache_count(&c), 0);
	ck_assert_ptr_null(ls_cache_get(&c, "lead-1"));
	ck_assert_ptr_null(ls_cache_get(&c, ""));
	ls_cache_clear(&c);
	ck_assert_uint_eq(ls_cache_count(&c), 0);
	ls_cache_free(&c);
	ls_cache_free(&c); /* free leaves an empty cache: freeing again is fine */
}
END_TEST

START_TEST(test_put_creates_empty_clean_entry)
{
	ls_cache c;
	ls_cache_init(&c);
	char id[] = "lead-42";
	bool created = false;
	ls_cache_entry *e = ls_cache_put(&c, id, &created);
	ck_assert_ptr_nonnull(e);
	ck_assert(created);
	ck_assert_uint_eq(ls_cache_count(&c), 1);
	ck_assert_ptr_null(e->lead);
	ck_assert(!e->dirty);
	ck_assert(!e->due_dirty);
	ck_assert(!e->rescore_dirty);
	/* the entry owns a copy of the id */
	ck_assert_ptr_ne(e->lead_id, id);
	ck_assert_str_eq(e->lead_id, "lead-42");
	id[5] = '9';
	ck_assert_str_eq(e->lead_id, "lead-42");
	ck_assert_ptr_eq(ls_cache_get(&c, "lead-42"), e);
	ck_assert_ptr_null(ls_cache_get(&c, "lead-92"));
	ls_cache_free(&c);
}
END_TEST

START_TEST(test_put_existing_returns_it)
{
	ls_cache c;
	ls_cache_init(&c);
	bool created;
	ls_cache_entry *a = ls_cache_put(&c, "a", &created);
	ck_assert(created);
	a->dirty = true;
	a->scored_at = 1234;
	ls_cache_entry *again = ls_cache_put(&c, "a", &created);
	ck_assert(!created);
	ck_assert_ptr_eq(again, a);
	ck_assert(again->dirty); /* state kept, not reset */
	ck_assert_int_eq(again->scored_at, 1234);
	ck_assert_uint_eq(ls_cache_count(&c), 1);
	/* ids that share a prefix are different leads */
	ls_cache_entry *ab = ls_cache_put(&c, "ab", &created);
	ck_assert(created);
	ck_assert_ptr_ne(ab, a);
	ls_cache_entry *empty = ls_cache_put(&c, "", &created);
	ck_assert(created);
	ck_assert_uint_eq(ls_cache_count(&c), 3);
	ck_assert_ptr_eq(ls_cache_get(&c, ""), empty);
	ck_assert_ptr_eq(ls_cache_get(&c, "a"), a);
	ck_assert_ptr_eq(ls_cache_get(&c, "ab"), ab);
	ls_cache_free(&c);
}
END_TEST

START_TEST(test_pointers_stable_while_growing)
{
	ls_cache c;
	ls_cache_init(&c);
	static ls_cache_entry *seen[MANY];
	char id[32];
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof id, "lead-%d", i);
		bool created;
		seen[i] = ls_cache_put(&c, id, &created);
		ck_assert_ptr_nonnull(seen[i]);
		ck_assert(created);
		seen[i]->touched_batch = (uint64_t)i;
		ck_assert_uint_eq(ls_cache_count(&c), (size_t)i + 1);
	}
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof id, "lead-%d", i);
		ls_cache_entry *e = ls_cache_get(&c, id);
		ck_assert_msg(e == seen[i], "%s moved or lost", id);
		ck_assert_str_eq(e->lead_id, id);
		ck_assert_uint_eq(e->touched_batch, (uint64_t)i);
		bool created;
		ck_assert_ptr_eq(ls_cache_put(&c, id, &created), e);
		ck_assert(!created);
	}
	ck_assert_uint_eq(ls_cache_count(&c), MANY);
	ck_assert_ptr_null(ls_cache_get(&c, "lead-5000"));
	ls_cache_free(&c);
}
END_TEST

START_TEST(test_clear_drops_entries_and_leads)
{
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	ls_feature_set *set = ls_test_feature_set(specs, n);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);

	ls_cache c;
	ls_cache_init(&c);
	char id[32];
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "lead-%d", i);
		bool created;
		ls_cache_entry *e = ls_cache_put(&c, id, &created);
		ck_assert_ptr_nonnull(e);
		if (i % 2 == 0) { /* the cache owns and frees these */
			e->lead = ls_lead_new(&conf);
			ck_assert_ptr_nonnull(e->lead);
			e->dirty = true;
		}
	}
	ls_cache_clear(&c);
	ck_assert_uint_eq(ls_cache_count(&c), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "lead-%d", i);
		ck_assert_ptr_null(ls_cache_get(&c, id));
	}
	/* after a clear the cache is usable: a put creates a fresh entry */
	bool created;
	ls_cache_entry *e = ls_cache_put(&c, "lead-0", &created);
	ck_assert(created);
	ck_assert_ptr_null(e->lead);
	ck_assert(!e->dirty);
	ck_assert_uint_eq(ls_cache_count(&c), 1);
	e->lead = ls_lead_new(&conf);
	ls_cache_free(&c); /* frees that lead too */
	ck_assert_uint_eq(ls_cache_count(&c), 0);
	ck_assert_ptr_null(ls_cache_get(&c, "lead-0"));
	ls_feature_set_free(set);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_put_creates_empty_clean_entry);
	tcase_add_test(tc, test_put_existing_returns_it);
	tcase_add_test(tc, test_pointers_stable_while_growing);
	tcase_add_test(tc, test_clear_drops_entries_and_leads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(cache_suite(), CK_NORMAL);
}
