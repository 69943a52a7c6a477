/*
 * fuzz_lead - the lead blob decoder (models/ls_lead.c) on arbitrary bytes,
 * as read back from Redis.
 *
 * Input: byte 0 picks the configuration (mod 3): 0 the default feature
 * set and limits, 1 the default set with the smallest limits (a reload
 * that shrank them), 2 a smaller feature set (a reload that removed
 * features: records of unknown keys must be skipped); the rest is the
 * blob.
 *
 * Properties: a blob that decodes gives its features, encodes,
 * and its encoding is a fixed point (decode and encode again: the same
 * bytes). The ext bytes are decoded as the per-lead model state, as the
 * HTTP lead lookup does.
 */
#include <string.h>

#include "fuzz_common.h"
#include "ls_lead.h"
#include "ls_scorestate.h"

static ls_feature_set *full, *part;
static ls_lead_conf conf[3];

static void init(void)
{
	char err[256];
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	full = ls_feature_set_new(specs, n, err, sizeof err);
	FUZZ_CHECK(full != NULL, "%s", err);
	/* the longest prefix of the default list that is a set on its own
	 * (derived features name others, so not every prefix is) */
	for (size_t k = n - 1; part == NULL && k > 0; k--)
		part = ls_feature_set_new(specs, k, err, sizeof err);
	FUZZ_CHECK(part != NULL, "no smaller feature set");
	ls_lead_conf_default(&conf[0], full);
	ls_lead_conf_default(&conf[1], full);
	conf[1].dedupe_k = 1;
	conf[1].max_attributes = 0;
	conf[1].max_metrics = 1;
	conf[1].grace_ms = 0;
	conf[1].dedupe_horizon_ms = 0;
	ls_lead_conf_default(&conf[2], part);
	for (int i = 0; i < 3; i++)
		FUZZ_CHECK(ls_lead_conf_check(&conf[i], err, sizeof err), "%s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (full == NULL)
		init();
	if (size == 0)
		return 0;
	const ls_lead_conf *c = &conf[data[0] % 3];
	ls_lead *lead = NULL;
	char err[256];
	if (ls_lead_decode(c, data + 1, size - 1, &lead, err, sizeof err) != 0) {
		FUZZ_CHECK(lead == NULL, "a failed decode left a lead");
		return 0;
	}
	size_t nv = c->features->n_values;
	double *vals = malloc(nv * sizeof *vals + 1);
	FUZZ_CHECK(vals != NULL, "out of memory");
	FUZZ_CHECK(ls_lead_features(lead, c, LS_LEAD_AT_WATERMARK, vals, nv) == (int)nv,
		   "features");
	int64_t wm = ls_lead_watermark(lead);
	if (wm >= 0 && wm < INT64_MAX / 2)
		FUZZ_CHECK(ls_lead_features(lead, c, wm + 90 * LS_WINDOW_MS_DAY, vals, nv) == (int)nv,
			   "features 90 days on");
	free(vals);

	size_t elen;
	const uint8_t *ext = ls_lead_ext(lead, &elen);
	ls_scorestate ls;
	(void)ls_scorestate_decode(ext, elen, &ls, NULL, 0);

	ls_buf b1 = { 0 }, b2 = { 0 };
	FUZZ_CHECK(ls_lead_encode(lead, c, &b1) == 0, "a decoded lead does not encode");
	ls_lead *again = NULL;
	FUZZ_CHECK(ls_lead_decode(c, b1.data, b1.len, &again, err, sizeof err) == 0,
		   "our own blob does not decode: %s", err);
	FUZZ_CHECK(ls_lead_encode(again, c, &b2) == 0, "encode");
	FUZZ_CHECK(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0,
		   "lead blob not canonical: %zu bytes, then %zu", b1.len, b2.len);
	ls_buf_free(&b1);
	ls_buf_free(&b2);
	ls_lead_free(again);
	ls_lead_free(lead);
	return 0;
}
