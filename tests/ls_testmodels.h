/*
 * ls_testmodels.h - test helpers that build models/ values.
 *
 * Links models/ and Check only (no pipeline/, no daemon/). Every helper
 * fails the running Check test (ck_assert) when the model rejects its
 * input, so a test body can use the result unchecked.
 *
 * Memory: a returned feature set is owned by the caller (free it with
 * ls_feature_set_free). Events point at the caller's strings and own
 * nothing. Thread-safety: none needed; no shared state.
 */
#ifndef LS_TESTMODELS_H
#define LS_TESTMODELS_H

#include <stddef.h>
#include <stdint.h>

#include "ls_event.h"
#include "ls_ftrl.h"
#include "ls_window.h"

/* A feature set from specs[0..n); fails the test if they are rejected. */
ls_feature_set *ls_test_feature_set(const ls_feature_spec *specs, size_t n);

/* A zeroed event of source src with its ids and time set; the caller
 * fills the source's union member. */
ls_event ls_test_event(ls_source src, const char *event_id,
		       const char *lead_id, int64_t ts);

/* Fails the test unless a and b are the same example, bit for bit:
 * layout, dense values, entries (index, value, name). */
void ls_test_assert_same_example(const ls_ftrl_example *a,
				 const ls_ftrl_example *b);

#endif
