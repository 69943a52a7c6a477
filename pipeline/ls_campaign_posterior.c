/*
 * ls_campaign_posterior.c - see ls_campaign_posterior.h for the contract.
 *
 * Why its own file: reading a counters hash into a posterior is the one
 * part of the campaign service that is pure, the part the fuzzer and the
 * offline evaluation share with the service, and the part most worth
 * reading without threads and Redis around it.
 */
#include "ls_campaign_posterior.h"

#include <stdlib.h>
#include <string.h>

#define MICRO 1000000.0

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of name in names[0..n) (sorted), or SIZE_MAX. */
static size_t bucket_index(char *const *names, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(names[mid], name);
		if (d == 0)
			return mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}


/* ---------------------------------------------------------- posterior */

size_t ls_campaign_posterior_bucket(const ls_campaign_posterior *p, const char *name)
{
	return bucket_index(p->names, p->n_buckets, name);
}

size_t ls_campaign_posterior_row(const ls_campaign_posterior *p, const char *name,
				 int64_t max_buckets, bool *capped)
{
	*capped = false;
	if (name[0] == '\0')
		return 0;
	size_t bi = ls_campaign_posterior_bucket(p, name);
	if (bi == SIZE_MAX) {
		/* stored buckets are never dropped, so once max_buckets are this
		 * one never gets counters (nor does one a smaller max_buckets
		 * left out of the posterior) */
		*capped = max_buckets <= 0 || p->n_stored >= (uint64_t)max_buckets;
		return 0;
	}
	return ls_bandit_uses_campaign(p->b, bi) ? 0 : 1 + bi;
}

void ls_campaign_posterior_free(ls_campaign_posterior *p)
{
	ls_bandit_free(p->b);
	for (size_t i = 0; i < p->n_buckets; i++)
		free(p->names[i]);
	free(p->names);
	free(p->trials);
	free(p->rmicro);
	memset(p, 0, sizeof *p);
}

/* Parse "n:<arm>:<bucket>" / "r:..."; arm ids have no ':'. */
bool ls_campaign_counter_field(const char *f, size_t len, char *kind, const char **arm,
			size_t *arm_len, const char **bucket, size_t *bucket_len)
{
	if (len < 3 || (f[0] != 'n' && f[0] != 'r') || f[1] != ':')
		return false;
	const char *a = f + 2;
	const char *colon = memchr(a, ':', len - 2);
	if (colon == NULL)
		return false;
	*kind = f[0];
	*arm = a;
	*arm_len = (size_t)(colon - a);
	*bucket = colon + 1;
	*bucket_len = len - (size_t)(colon + 1 - f);
	return true;
}

static int arm_index(const ls_campaign_spec *sp, const char *a, size_t len)
{
	for (size_t i = 0; i < sp->n_arms; i++)
		if (strlen(sp->arms[i]) == len && memcmp(sp->arms[i], a, len) == 0)
			return (int)i;
	return -1;
}

static int posterior_load(const ls_campaign_spec *sp, const redisReply *h,
			  ls_campaign_posterior *c)
{
	size_t na = sp->n_arms, cap = 0;
	/* bucket names first: the stored ones ("b:<bucket>") when there are
	 * any, so counters of buckets that are not stored (an earlier
	 * version's, not trimmed yet) never take a stored bucket's place;
	 * else, for a hash no stored bucket has marked yet, every bucket with
	 * counters of a configured arm */
	bool marks = false;
	for (size_t i = 0; h != NULL && i + 1 < h->elements && !marks; i += 2)
		marks = h->element[i]->type == REDIS_REPLY_STRING && h->element[i]->len > 2 &&
			h->element[i]->str[0] == 'b' && h->element[i]->str[1] == ':';
	for (size_t i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i];
		char kind;
		const char *a, *b;
		size_t al, bl;
		if (f->type != REDIS_REPLY_STRING)
			continue;
		if (marks) {
			if (f->len <= 2 || f->str[0] != 'b' || f->str[1] != ':')
				continue;
			b = f->str + 2;
			bl = f->len - 2;
		} else if (!ls_campaign_counter_field(f->str, f->len, &kind, &a, &al, &b, &bl) || bl == 0 ||
			   arm_index(sp, a, al) < 0) {
			continue;
		}
		bool seen = false;
		/* linear only while small; the sort below dedupes the rest */
		for (size_t k = c->n_buckets; k > 0 && k + 8 > c->n_buckets && !seen; k--)
			seen = strlen(c->names[k - 1]) == bl && memcmp(c->names[k - 1], b, bl) == 0;
		if (seen)
			continue;
		if (c->n_buckets == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(c->names, cap * sizeof *nn);
			if (nn == NULL)
				return -1;
			c->names = nn;
		}
		c->names[c->n_buckets] = strndup(b, bl);
		if (c->names[c->n_buckets] == NULL)
			return -1;
		c->n_buckets++;
	}
	/* name order without duplicates, at most max_buckets (beyond it
	 * buckets decide campaign-wide): the first in name order, so which
	 * ones is stable between snapshots whatever order Redis returns the
	 * fields in */
	if (c->n_buckets > 1) /* names is NULL when there are none */
		qsort(c->names, c->n_buckets, sizeof *c->names, cmp_name);
	size_t w = 0;
	for (size_t i = 0; i < c->n_buckets; i++) {
		if ((w > 0 && strcmp(c->names[w - 1], c->names[i]) == 0) ||
		    w >= (size_t)sp->max_buckets) {
			free(c->names[i]);
			continue;
		}
		c->names[w++] = c->names[i];
	}
	c->n_buckets = w;
	size_t rows = 1 + c->n_buckets;
	c->trials = calloc(rows * na, sizeof *c->trials);
	c->rmicro = calloc(rows * na, sizeof *c->rmicro);
	if (c->trials == NULL || c->rmicro == NULL)
		return -1;
	for (size_t i = 0; h != NULL && i + 1 < h->elements; i += 2) {
		const redisReply *f = h->element[i], *v = h->element[i + 1];
		char kind;
		const char *a, *b;
		size_t al, bl;
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (f->len == 2 && memcmp(f->str, "nb", 2) == 0) {
			long long x = strtoll(v->str, NULL, 10);
			c->n_stored = x > 0 ? (uint64_t)x : 0;
			continue;
		}
		if (f->len == 1 && f->str[0] == 'v') {
			c->version = strtoll(v->str, NULL, 10);
			continue;
		}
		if (!ls_campaign_counter_field(f->str, f->len, &kind, &a, &al, &b, &bl))
			continue;
		int arm = arm_index(sp, a, al);
		if (arm < 0)
			continue; /* a retired arm: its counts wait in Redis */
		size_t row = 0;
		if (bl > 0) {
			char name[LS_CAMPAIGN_BUCKET_MAX + 1];
			if (bl >= sizeof name)
				continue;
			memcpy(name, b, bl);
			name[bl] = '\0';
			size_t bi = ls_campaign_posterior_bucket(c, name);
			if (bi == SIZE_MAX)
				continue; /* beyond max_buckets */
			row = 1 + bi;
		}
		long long x = strtoll(v->str, NULL, 10);
		if (x < 0)
			x = 0;
		if (kind == 'n')
			c->trials[row * na + (size_t)arm] = (uint64_t)x;
		else
			c->rmicro[row * na + (size_t)arm] = x;
	}
	ls_bandit_params p;
	ls_bandit_params_default(&p);
	p.prior_a = sp->prior_a;
	p.prior_b = sp->prior_b;
	p.min_share = sp->min_share;
	p.min_bucket_trials = (uint64_t)sp->min_bucket_trials;
	p.mc_draws = (uint32_t)sp->propensity_draws;
	p.prior_trials = sp->prior_trials > 0 ? (uint64_t)sp->prior_trials : 0;
	char err[256];
	c->b = ls_bandit_new(&p, na, c->n_buckets, err, sizeof err);
	if (c->b == NULL)
		return -1;
	for (size_t row = 0; row < rows; row++) {
		for (size_t arm = 0; arm < na; arm++) {
			uint64_t t = c->trials[row * na + arm];
			double r = (double)c->rmicro[row * na + arm] / MICRO;
			if (r > (double)t)
				r = (double)t; /* a torn read cannot break the posterior */
			(void)ls_bandit_set_counts(c->b, row == 0 ? LS_BANDIT_CAMPAIGN : row - 1,
						   arm, t, r);
		}
	}
	return 0;
}

int ls_campaign_posterior_load(const ls_campaign_spec *sp, const redisReply *hash,
			       ls_campaign_posterior *out)
{
	memset(out, 0, sizeof *out);
	if (posterior_load(sp, hash, out) == 0)
		return 0;
	ls_campaign_posterior_free(out);
	return -1;
}

