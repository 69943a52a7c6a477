/*
 * bench_identity.c - leadscore-identity: a fingerprint of what the
 * per-event path computes, to compare two builds (issue 14: the CPU work
 * was cut, the results must be the same bits).
 *
 * A fixed stream (N events, default 150,000, over 3,000 leads: email,
 * web with sessions and durations, calls with sentiment, outcomes,
 * profiles with attributes, a removal, dense and other metrics; 2 % of the
 * events 40 days late) goes through ls_lead_apply, ls_lead_features (at
 * the watermark and, every 11th event, at a later time), the scorer's
 * ls_example_build with the default model spec (both crosses and
 * metrics), ls_ftrl_predict, ls_ftrl_explain, and ls_ftrl_learn on every
 * outcome (from the lead before it); every 7th event sets ext bytes of 1
 * to 3 bytes, as the scorer does. It prints XXH3 hashes of every apply
 * result, feature vector, score, prediction before learning and factor
 * (name, value, contribution), of every lead's blob (each checked to
 * decode and re-encode to itself) and of the model's checkpoint.
 * Only APIs that existed before issue 14 are used, so the same file
 * builds against an older tree: equal output, same results.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "ls_ftrl.h"
#include "ls_lead.h"
#include "ls_model_spec.h"
#include "ls_scorer.h"

static uint64_t st = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	st ^= st << 13;
	st ^= st >> 7;
	st ^= st << 17;
	return st;
}
static XXH3_state_t *hs, *hb;
static void mix(XXH3_state_t *h, const void *p, size_t n) { XXH3_64bits_update(h, p, n); }

int main(int argc, char **argv)
{
	long N = argc > 1 ? atol(argv[1]) : 150000, L = 3000;
	char err[512];
	size_t ns;
	const ls_feature_spec *specs = ls_features_default(&ns);
	ls_feature_set *set = ls_feature_set_new(specs, ns, err, sizeof err);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_model_spec spec = *ls_model_spec_default();
	spec.ftrl.n_buckets = 1u << 14;
	size_t nv = set->n_values;
	const char **names = malloc((nv + spec.n_metrics) * sizeof *names);
	for (size_t i = 0; i < nv; i++) names[i] = ls_feature_set_value_name(set, i);
	for (size_t i = 0; i < spec.n_metrics; i++) names[nv + i] = spec.metrics[i];
	ls_ftrl *m = ls_ftrl_new(&spec.ftrl, names, nv + spec.n_metrics, err, sizeof err);
	if (!set || !m) { fprintf(stderr, "%s\n", err); return 1; }
	ls_lead **leads = calloc((size_t)L, sizeof *leads);
	for (long i = 0; i < L; i++) leads[i] = ls_lead_new(&conf);
	ls_example_ctx ctx;
	ls_example_ctx_init(&ctx, set, &conf);
	hs = XXH3_createState(); XXH3_64bits_reset(hs);
	hb = XXH3_createState(); XXH3_64bits_reset(hb);
	static const char *cats[] = { "pricing", "product", "docs", "blog", "careers" };
	static const char *inds[] = { "saas", "retail", "finance", "health" };
	static const char *bands[] = { "1-10", "11-50", "51-200", "201+" };
	static const char *roles[] = { "cto", "vp", "ic" };
	static const char *camps[] = { "spring", "fall", "winter" };
	double *vals = malloc(nv * sizeof *vals);
	char id[64], sess[32];
	int64_t t0 = INT64_C(1790000000000);
	for (long i = 0; i < N; i++) {
		long li = (long)(rnd() % (uint64_t)L);
		ls_lead *lead = leads[li];
		ls_event ev; memset(&ev, 0, sizeof ev);
		snprintf(id, sizeof id, "ev-%ld", i);
		ev.event_id = id; ev.lead_id = "x";
		ev.ts = t0 + i * 20000 + (int64_t)(rnd() % 3600000) - (rnd() % 50 == 0 ? 40LL * 86400000 : 0);
		if (ev.ts < 0) ev.ts = 0;
		unsigned r = (unsigned)(rnd() % 100);
		ls_attribute at[3]; ls_metric me[3];
		if (r < 40) {
			ev.source = LS_SOURCE_EMAIL; ev.u.email.type = (ls_email_type)(rnd() % LS_EMAIL__COUNT);
			ev.u.email.campaign_id = camps[rnd() % 3];
		} else if (r < 80) {
			ev.source = LS_SOURCE_WEB; ev.u.web.type = (ls_web_type)(rnd() % LS_WEB__COUNT);
			ev.u.web.url = "/p"; ev.u.web.page_category = cats[rnd() % 5];
			ev.u.web.has_duration_ms = rnd() % 4 != 0; ev.u.web.duration_ms = (int64_t)(rnd() % 300000);
			snprintf(sess, sizeof sess, "s-%d", (int)(rnd() % 40)); ev.u.web.session_id = sess;
		} else if (r < 92) {
			ev.source = LS_SOURCE_CALL; ev.u.call.direction = (ls_call_direction)(rnd() % LS_CALL_DIRECTION__COUNT);
			ev.u.call.outcome = (ls_call_outcome)(rnd() % LS_CALL_OUTCOME__COUNT);
			ev.u.call.duration_s = (int64_t)(rnd() % 1200);
			ev.u.call.has_sentiment = rnd() % 2; ev.u.call.sentiment = (double)(rnd() % 200) / 100.0 - 1.0;
		} else if (r < 96) {
			ev.source = LS_SOURCE_OUTCOME; ev.u.outcome.outcome = (ls_outcome_type)(rnd() % LS_OUTCOME__COUNT);
			ev.u.outcome.value = (double)(rnd() % 10000);
		} else {
			ev.source = LS_SOURCE_PROFILE;
			at[0] = (ls_attribute){ "industry", inds[rnd() % 4] };
			at[1] = (ls_attribute){ "size_band", bands[rnd() % 4] };
			at[2] = (ls_attribute){ "role", rnd() % 5 == 0 ? "" : roles[rnd() % 3] };
			me[0] = (ls_metric){ "employees", (double)(rnd() % 5000) };
			me[1] = (ls_metric){ "annual_revenue", (double)(rnd() % 100000) * 1.5 };
			me[2] = (ls_metric){ "other_metric", (double)(rnd() % 7) - 3.0 };
			ev.u.profile = (ls_profile_event){ 3, at, 3, me };
		}
		if (ev.source == LS_SOURCE_OUTCOME && ls_lead_watermark(lead) >= 0) {
			if (ls_example_build(&ctx, &spec, m, lead, ev.ts > ls_lead_watermark(lead) ? ev.ts : ls_lead_watermark(lead)) != 0) return 2;
			double pb;
			int y = ev.u.outcome.outcome == LS_OUTCOME_CONVERTED || ev.u.outcome.outcome == LS_OUTCOME_WON;
			if (ls_ftrl_learn(m, &ctx.x, y, &pb) != 0) return 3;
			mix(hs, &pb, sizeof pb);
		}
		int rc = ls_lead_apply(lead, &conf, &ev);
		mix(hs, &rc, sizeof rc);
		if (rc != LS_LEAD_APPLIED) continue;
		if (ls_lead_features(lead, &conf, LS_LEAD_AT_WATERMARK, vals, nv) != (int)nv) return 4;
		mix(hs, vals, nv * sizeof *vals);
		if (ls_example_build(&ctx, &spec, m, lead, LS_LEAD_AT_WATERMARK) != 0) return 5;
		double p;
		if (ls_ftrl_predict(m, &ctx.x, &p) != 0) return 6;
		mix(hs, &p, sizeof p);
		ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
		size_t np, nn;
		if (ls_ftrl_explain(m, &ctx.x, pos, &np, neg, &nn) != 0) return 7;
		for (size_t k = 0; k < np; k++) { mix(hs, pos[k].name, strlen(pos[k].name)); mix(hs, &pos[k].contribution, 8); mix(hs, &pos[k].value, 8); }
		for (size_t k = 0; k < nn; k++) { mix(hs, neg[k].name, strlen(neg[k].name)); mix(hs, &neg[k].contribution, 8); mix(hs, &neg[k].value, 8); }
		if (i % 7 == 0) { /* the scorer's ext save */
			uint8_t ext[3] = { (uint8_t)i, (uint8_t)(i >> 8), 1 };
			ls_lead_set_ext(lead, ext, (size_t)(1 + i % 3));
		}
		/* a time later than the watermark, as idle rescoring does */
		if (i % 11 == 0) {
			if (ls_lead_features(lead, &conf, ls_lead_watermark(lead) + (int64_t)(rnd() % (40LL * 86400000)), vals, nv) != (int)nv) return 8;
			mix(hs, vals, nv * sizeof *vals);
		}
	}
	ls_buf b = { 0 };
	for (long i = 0; i < L; i++) {
		if (ls_lead_encode(leads[i], &conf, &b) != 0) return 9;
		mix(hb, b.data, b.len);
		ls_lead *d = NULL;
		if (ls_lead_decode(&conf, b.data, b.len, &d, err, sizeof err) != 0) return 10;
		ls_buf b2 = { 0 };
		ls_lead_encode(d, &conf, &b2);
		if (b2.len != b.len || memcmp(b2.data, b.data, b.len) != 0) return 11;
		ls_buf_free(&b2); ls_lead_free(d);
	}
	ls_buf mb = { 0 };
	ls_ftrl_encode(m, &mb);
	printf("scores+features+explanations=%016" PRIx64 "\nlead_blobs=%016" PRIx64 "\nmodel=%016" PRIx64 " (%zu bytes, version %" PRIu64 ", pos %" PRIu64 " neg %" PRIu64 ")\n",
	       XXH3_64bits_digest(hs), XXH3_64bits_digest(hb), XXH3_64bits(mb.data, mb.len), mb.len,
	       ls_ftrl_version(m), ls_ftrl_positives(m), ls_ftrl_negatives(m));
	return 0;
}
