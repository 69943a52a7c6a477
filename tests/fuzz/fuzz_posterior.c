/*
 * fuzz_posterior - a campaign's bandit counters as read back from Redis
 * (ls_campaign_posterior_load in pipeline/ls_campaign_posterior.c: the
 * HGETALL of its counters hash, fields "n:<arm>:<bucket>" and
 * "r:<arm>:<bucket>" with decimal values), then decisions, probabilities
 * and statistics on every bucket of the posterior, as the service and GET
 * /v1/campaigns/{campaign} use it.
 *
 * Input: byte 0 sets max_buckets (1 + b % 8); the rest is the hash as
 * lines, field and value alternating, each NUL-terminated in a copy as
 * hiredis hands strings over. The campaign has arms A, B and C.
 *
 * Properties: loading succeeds (bad fields are skipped, not fatal), and
 * every bucket decides an arm in range with a propensity in (0, 1] and
 * probabilities that sum to 1.
 */
#include <math.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "fuzz_common.h"
#include "ls_campaign_posterior.h"

#define MAX_FIELDS 64

static void check_bucket(const ls_bandit *b, size_t bucket, ls_rng *rng)
{
	size_t arm;
	double prop, probs[3];
	FUZZ_CHECK(ls_bandit_decide(b, bucket, rng, &arm, &prop) == 0, "decide");
	FUZZ_CHECK(arm < 3 && prop > 0.0 && prop <= 1.0, "arm %zu propensity %g", arm, prop);
	FUZZ_CHECK(ls_bandit_probabilities(b, bucket, rng, probs, 3) == 0, "probabilities");
	double sum = probs[0] + probs[1] + probs[2];
	FUZZ_CHECK(fabs(sum - 1.0) < 1e-9, "probabilities sum to %.17g", sum);
	ls_bandit_arm_stats st[3];
	FUZZ_CHECK(ls_bandit_stats(b, bucket, rng, 16, st, 3) == 0, "stats");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	ls_campaign_spec sp;
	memset(&sp, 0, sizeof sp);
	snprintf(sp.id, sizeof sp.id, "spring");
	sp.n_arms = 3;
	snprintf(sp.arms[0], sizeof sp.arms[0], "A");
	snprintf(sp.arms[1], sizeof sp.arms[1], "B");
	snprintf(sp.arms[2], sizeof sp.arms[2], "C");
	sp.prior_a = sp.prior_b = 1.0;
	sp.min_share = 0.05;
	sp.min_bucket_trials = 10;
	sp.prior_trials = 20; /* the hierarchical prior on torn / hostile counts */
	sp.max_buckets = 1 + data[0] % 8;
	sp.propensity_draws = 64;

	/* the lines, each a NUL-terminated string reply */
	char *text = malloc(size);
	FUZZ_CHECK(text != NULL, "out of memory");
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	redisReply lines[MAX_FIELDS], *elems[MAX_FIELDS];
	size_t n = 0;
	for (char *s = text; n < MAX_FIELDS;) {
		char *nl = memchr(s, '\n', (size_t)(text + size - 1 - s));
		if (nl != NULL)
			*nl = '\0';
		memset(&lines[n], 0, sizeof lines[n]);
		lines[n].type = REDIS_REPLY_STRING;
		lines[n].str = s;
		lines[n].len = strlen(s);
		elems[n] = &lines[n];
		n++;
		if (nl == NULL)
			break;
		s = nl + 1;
	}
	redisReply hash;
	memset(&hash, 0, sizeof hash);
	hash.type = REDIS_REPLY_ARRAY;
	hash.elements = n;
	hash.element = elems;

	ls_campaign_posterior p;
	FUZZ_CHECK(ls_campaign_posterior_load(&sp, &hash, &p) == 0, "load failed");
	FUZZ_CHECK(p.n_buckets <= (size_t)sp.max_buckets, "%zu buckets", p.n_buckets);
	ls_rng rng;
	ls_rng_seed(&rng, 42);
	check_bucket(p.b, LS_BANDIT_CAMPAIGN, &rng);
	for (size_t i = 0; i < p.n_buckets; i++) {
		FUZZ_CHECK(ls_campaign_posterior_bucket(&p, p.names[i]) == i, "bucket %zu", i);
		check_bucket(p.b, i, &rng);
	}
	ls_campaign_posterior_free(&p);
	free(text);
	return 0;
}
