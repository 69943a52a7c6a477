/*
 * ls_campaign_posterior.h - a campaign's posterior as decisions use it,
 * parsed from its counters hash (the HGETALL reply), and the choice of
 * the row a decision draws from.
 *
 * Pure: no I/O, no clock, no globals; the reply is only read. It sits in
 * pipeline/ and not in models/ only because its input is a hiredis reply,
 * which models/ cannot see. Used by the campaign service's snapshots, by
 * `leadscorectl evaluate` (the same posterior offline) and by the
 * posterior fuzzer.
 *
 * Memory: a loaded posterior owns its bandit, names and counters; free it
 * with ls_campaign_posterior_free(). Errors: -1 when memory runs out.
 * Thread-safety: a loaded posterior may be read from any number of
 * threads; nothing here keeps state between calls.
 */
#ifndef LS_CAMPAIGN_POSTERIOR_H
#define LS_CAMPAIGN_POSTERIOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "ls_bandit.h"

#define LS_CAMPAIGN_CTX_VALUE_MAX 64  /* bytes of a context value */
#define LS_CAMPAIGN_BUCKET_MAX \
	(LS_CAMPAIGN_MAX_CONTEXT * (LS_MODEL_KEY_MAX + 3 * LS_CAMPAIGN_CTX_VALUE_MAX + 2))

/*
 * A campaign's posterior exactly as decisions use it, from its counters
 * hash (an HGETALL reply; NULL: no counts yet), for the service's
 * snapshots and for offline evaluation: bucket names in name order
 * without duplicates, at most max_buckets of them (the first in name
 * order; further buckets decide campaign-wide): the stored buckets
 * ("b:<bucket>") when any is, else (a hash written before buckets were
 * stored) every bucket with counters; counts of retired arms
 * left out, one ls_bandit with the campaign's prior, min_share,
 * min_bucket_trials and propensity_draws. trials and rmicro hold the raw
 * counters, (1 + n_buckets) rows of n_arms, row 0 campaign-wide.
 * n_stored and version are the hash's "nb" and "v" (0 when absent).
 * 0, or -1 when memory runs out (out is then empty). Free with
 * ls_campaign_posterior_free().
 */
typedef struct ls_campaign_posterior {
	ls_bandit *b;
	size_t n_buckets;
	char **names;      /* bucket i */
	uint64_t *trials;
	int64_t *rmicro;   /* rewards in millionths */
	uint64_t n_stored; /* buckets admitted to storage, every instance's */
	long long version; /* bumped by every change of the counters */
} ls_campaign_posterior;

int ls_campaign_posterior_load(const ls_campaign_spec *sp, const redisReply *hash,
			       ls_campaign_posterior *out);
/* The bucket index of name, SIZE_MAX when it has none (campaign-wide). */
size_t ls_campaign_posterior_bucket(const ls_campaign_posterior *p, const char *name);

/*
 * The row of p a decision in bucket name (from ls_campaign_bucket_name)
 * draws from: 1 + its index when it has enough trials of its own, else 0
 * (campaign-wide). *capped is set when the bucket has no counters and
 * cannot get any: max_buckets are stored already. Pure.
 */
size_t ls_campaign_posterior_row(const ls_campaign_posterior *p, const char *name,
				 int64_t max_buckets, bool *capped);

/* Free what p holds and empty it (a zeroed or emptied p is fine). */
void ls_campaign_posterior_free(ls_campaign_posterior *p);

/*
 * Split counters field f[0..len) "n:<arm>:<bucket>" (trials) or
 * "r:<arm>:<bucket>" (rewards) into its kind ('n' or 'r'), arm and bucket
 * (pointers into f; arm ids have no ':', the bucket may be empty: the
 * campaign-wide counter). False for any other field. Pure.
 */
bool ls_campaign_counter_field(const char *f, size_t len, char *kind, const char **arm,
			       size_t *arm_len, const char **bucket, size_t *bucket_len);

#endif
