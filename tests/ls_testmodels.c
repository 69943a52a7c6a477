/*
 * ls_testmodels.c - the model builders test_lead, test_window and
 * test_scorestate each used to copy. Separate from ls_testutil.c so a
 * base/ test does not link models/.
 */
#include "ls_testmodels.h"

#include <string.h>

#include <check.h>

ls_feature_set *ls_test_feature_set(const ls_feature_spec *specs, size_t n)
{
	char err[256] = "";
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	ck_assert_msg(set != NULL, "feature set rejected: %s", err);
	return set;
}

ls_event ls_test_event(ls_source src, const char *event_id,
		       const char *lead_id, int64_t ts)
{
	ls_event e;
	memset(&e, 0, sizeof e);
	e.source = src;
	e.event_id = event_id;
	e.lead_id = lead_id;
	e.ts = ts;
	return e;
}

void ls_test_assert_same_example(const ls_ftrl_example *a,
				 const ls_ftrl_example *b)
{
	ck_assert_uint_eq(a->layout, b->layout);
	ck_assert_uint_eq(a->n_dense, b->n_dense);
	ck_assert(a->n_dense == 0 ||
		  memcmp(a->dense, b->dense, a->n_dense * sizeof *a->dense) == 0);
	ck_assert_uint_eq(a->n_entries, b->n_entries);
	for (size_t e = 0; e < a->n_entries; e++) {
		ck_assert_uint_eq(a->entries[e].index, b->entries[e].index);
		ck_assert(memcmp(&a->entries[e].value, &b->entries[e].value,
				 sizeof(double)) == 0);
		ck_assert_str_eq(ls_ftrl_example_entry_name(a, e),
				 ls_ftrl_example_entry_name(b, e));
	}
}
