/*
 * leadscore-fuzz-seeds OUTDIR - write the fuzzers' seed corpora
 * (OUTDIR/<harness>/<name>) from the project's own encoders, so the seeds
 * are valid inputs of the current formats. A program run by hand when a
 * format changes (docs/operations.md, Fuzzing); its output is committed under
 * tests/fuzz/. It also writes a dictionary of the config's key names and
 * LEADSCORE_* variables to OUTDIR/fuzz_config.dict; the config seeds are
 * copies of the YAML files in tests/data/config plus two with environment
 * entries.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ls_codec.h"
#include "ls_config.h"
#include "ls_eval.h"
#include "ls_ftrl.h"
#include "ls_lead.h"
#include "ls_scorestate.h"
#include "ls_mlog.h"

static const char *outdir;

static void die(const char *what)
{
	fprintf(stderr, "leadscore-fuzz-seeds: %s\n", what);
	exit(1);
}

/* OUTDIR/harness/name := sel (when >= 0) then p[0..n) */
static void seed(const char *harness, const char *name, int sel, const void *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", outdir, harness);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof path, "%s/%s/%s", outdir, harness, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		die(path);
	if (sel >= 0)
		fputc(sel, f);
	if (n > 0 && fwrite(p, 1, n, f) != n)
		die(path);
	if (fclose(f) != 0)
		die(path);
}

/* --- Avro by hand, for the writer schemas we have no encoder for -------- */

typedef struct raw {
	uint8_t b[512];
	size_t n;
} raw;

static void r_long(raw *r, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	while (z >= 0x80) {
		r->b[r->n++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	r->b[r->n++] = (uint8_t)z;
}

static void r_str(raw *r, const char *s)
{
	size_t n = strlen(s);
	r_long(r, (int64_t)n);
	memcpy(r->b + r->n, s, n);
	r->n += n;
}

static void r_header(raw *r, int32_t id)
{
	r->b[r->n++] = 0;
	for (int i = 3; i >= 0; i--)
		r->b[r->n++] = (uint8_t)((uint32_t)id >> (8 * i));
}

/* --- codec --------------------------------------------------------------- */

static const ls_attribute attrs[] = { { "industry", "software" }, { "country", "DE" } };
static const ls_metric metrics[] = { { "employees", 250.0 }, { "annual_revenue", 1.5e7 } };

static ls_event sample(ls_source k, int64_t ts, const char *id)
{
	ls_event ev;
	memset(&ev, 0, sizeof ev);
	ev.source = k;
	ev.event_id = id;
	ev.lead_id = "lead-42";
	ev.ts = ts;
	switch (k) {
	case LS_SOURCE_EMAIL:
		ev.u.email.type = LS_EMAIL_CLICKED;
		ev.u.email.campaign_id = "spring";
		ev.u.email.variant_id = "B";
		ev.u.email.decision_id = "dec-9";
		ev.u.email.url = "https://example.com/p?x=1";
		break;
	case LS_SOURCE_WEB:
		ev.u.web.type = LS_WEB_DEMO_REQUEST;
		ev.u.web.url = "https://example.com/demo";
		ev.u.web.page_category = "pricing";
		ev.u.web.has_duration_ms = true;
		ev.u.web.duration_ms = 12345;
		break;
	case LS_SOURCE_CALL:
		ev.u.call.direction = LS_CALL_OUTBOUND;
		ev.u.call.outcome = LS_CALL_MEETING_BOOKED;
		ev.u.call.duration_s = 312;
		ev.u.call.has_sentiment = true;
		ev.u.call.sentiment = -0.25;
		break;
	case LS_SOURCE_OUTCOME:
		ev.u.outcome.outcome = LS_OUTCOME_WON;
		ev.u.outcome.has_value = true;
		ev.u.outcome.value = 42000.5;
		break;
	default:
		ev.u.profile.n_attributes = 2;
		ev.u.profile.attributes = attrs;
		ev.u.profile.n_metrics = 2;
		ev.u.profile.metrics = metrics;
		break;
	}
	return ev;
}

static void codec_seeds(void)
{
	char err[256], name[64];
	ls_codec *c = ls_codec_new(err, sizeof err);
	if (c == NULL)
		die(err);
	ls_buf b;
	ls_buf_init(&b);
	for (int k = 0; k < LS_SOURCE__COUNT; k++) {
		ls_event ev = sample((ls_source)k, 1717171717123, "evt-0001");
		if (ls_codec_encode_event(c, &ev, -1, &b, err, sizeof err) != 0)
			die(err);
		snprintf(name, sizeof name, "%s-plain", ls_source_name((ls_source)k));
		seed("fuzz_codec", name, k, b.data, b.len);
		if (ls_codec_encode_event(c, &ev, 100 + k, &b, err, sizeof err) != 0)
			die(err);
		snprintf(name, sizeof name, "%s-framed", ls_source_name((ls_source)k));
		seed("fuzz_codec", name, k, b.data, b.len);
	}
	/* the minimal outcome: no value */
	ls_event ev = sample(LS_SOURCE_OUTCOME, 0, "e");
	ev.u.outcome.has_value = false;
	if (ls_codec_encode_event(c, &ev, -1, &b, err, sizeof err) != 0)
		die(err);
	seed("fuzz_codec", "outcome-minimal", LS_SOURCE_OUTCOME, b.data, b.len);

	ls_factor f[2] = { { "email opens 7d", 0.8 }, { "bounced", -1.25 } };
	ls_score_change sc = { .lead_id = "lead-42", .model = "conversion", .score = 0.73,
			       .has_previous_score = true, .previous_score = 0.41, .tier = "hot",
			       .previous_tier = "warm", .version = 7, .ts = 1717171717123,
			       .cause_event_id = "evt-0001", .n_factors = 2, .factors = f };
	if (ls_codec_encode_score_change(c, &sc, 7, &b, err, sizeof err) != 0)
		die(err);
	seed("fuzz_codec", "score-change", 5, b.data, b.len);
	ls_bandit_decision bd = { .decision_id = "spring.0123456789abcdef", .campaign_id = "spring",
				  .lead_id = "lead-42", .variant_id = "B", .propensity = 0.25,
				  .ts = 1717171717123, .has_context = true, .n_context = 2,
				  .context = attrs };
	if (ls_codec_encode_bandit_decision(c, &bd, -1, &b, err, sizeof err) != 0)
		die(err);
	seed("fuzz_codec", "bandit-decision", 6, b.data, b.len);

	/* the evolved writer (id 300): lead_id, type, client, event_id, url, ts,
	 * campaign_id */
	raw r = { .n = 0 };
	r_header(&r, 300);
	r_str(&r, "lead-7");
	r_long(&r, 0); /* OPENED */
	r_str(&r, "outlook");
	r_str(&r, "evt-77");
	r_long(&r, 1);
	r_str(&r, "https://x.test/a");
	r_long(&r, 1700000000000);
	r_long(&r, 1);
	r_str(&r, "autumn");
	seed("fuzz_codec", "email-evolved-writer", LS_SOURCE_EMAIL, r.b, r.n);
	/* the recursive writer (id 500): 3 hops, 2 nulls */
	r.n = 0;
	r_header(&r, 500);
	r_str(&r, "e1");
	r_str(&r, "l1");
	r_long(&r, 5);
	r_long(&r, 2);
	for (int i = 0; i < 3; i++)
		r_long(&r, 1);
	r_long(&r, 0);
	r_long(&r, 2);
	r_long(&r, 0);
	seed("fuzz_codec", "email-recursive-writer", LS_SOURCE_EMAIL, r.b, r.n);
	/* edge cases: an unknown schema id, an empty value */
	static const uint8_t unknown[] = { 0, 0, 0, 0x30, 0x39, 2, 'a' };
	seed("fuzz_codec", "unknown-schema-id", LS_SOURCE_WEB, unknown, sizeof unknown);
	seed("fuzz_codec", "empty", LS_SOURCE_CALL, NULL, 0);
	ls_buf_free(&b);
	ls_codec_free(c);
}

/* --- lead blobs ---------------------------------------------------------- */

static void lead_seeds(void)
{
	char err[256];
	size_t n;
	const ls_feature_spec *specs = ls_features_default(&n);
	ls_feature_set *set = ls_feature_set_new(specs, n, err, sizeof err);
	if (set == NULL)
		die(err);
	ls_lead_conf conf;
	ls_lead_conf_default(&conf, set);
	ls_lead *lead = ls_lead_new(&conf);
	ls_buf blob = { 0 };
	if (lead == NULL || ls_lead_encode(lead, &conf, &blob) != 0)
		die("empty lead");
	seed("fuzz_lead", "empty", 0, blob.data, blob.len);
	char id[32];
	const int64_t t0 = 1700000000000, hour = 3600000;
	for (int i = 0; i < 24; i++) {
		snprintf(id, sizeof id, "e%d", i);
		ls_event ev = sample((ls_source)(i % LS_SOURCE__COUNT), t0 + i * 7 * hour, id);
		if (ls_lead_apply(lead, &conf, &ev) < 0)
			die("apply");
	}
	ls_scorestate ls;
	ls_scorestate_init(&ls);
	ls.first_ts = t0;
	ls.n = 1;
	ls.m[0] = (ls_scorestate_model){ .key = ls_scorestate_key("conversion"), .label = 1,
					.tier = 2, .version = 3, .score = 0.8 };
	uint8_t ext[LS_SCORESTATE_ENCODED_MAX];
	size_t elen;
	if (ls_scorestate_encode(&ls, ext, sizeof ext, &elen) != 0)
		die("leadscore encode");
	if (ls_lead_encode(lead, &conf, &blob) != 0)
		die("lead encode");
	seed("fuzz_lead", "month", 0, blob.data, blob.len);
	seed("fuzz_lead", "month-small-limits", 1, blob.data, blob.len);
	seed("fuzz_lead", "month-other-set", 2, blob.data, blob.len);
	if (ls_lead_set_ext(lead, ext, elen) != 0 || ls_lead_encode(lead, &conf, &blob) != 0)
		die("lead ext");
	seed("fuzz_lead", "month-ext", 0, blob.data, blob.len);
	static const uint8_t v1[] = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	seed("fuzz_lead", "version-1", 0, v1, sizeof v1);
	ls_buf_free(&blob);
	ls_lead_free(lead);
	ls_feature_set_free(set);
}

/* --- checkpoints ----------------------------------------------------------- */

static void checkpoint_seeds(void)
{
	char err[256];
	ls_ftrl_params p;
	ls_ftrl_params_default(&p);
	p.n_buckets = 64;
	const char *names[] = { "email_opened_7d", "web_visits_30d", "call_seconds_30d" };
	ls_ftrl *m = ls_ftrl_new(&p, names, 3, err, sizeof err);
	if (m == NULL)
		die(err);
	ls_buf fb = { 0 };
	if (ls_ftrl_encode(m, &fb) != 0)
		die("ftrl encode");
	seed("fuzz_checkpoint", "ftrl-fresh", 0, fb.data, fb.len);
	ls_ftrl *base = ls_ftrl_clone(m);
	ls_ftrl_example x;
	ls_ftrl_example_init(&x);
	for (int i = 0; i < 20; i++) {
		const char *num_names[] = { "email_opened_7d", "web_visits_30d", "employees" };
		double vals[] = { i % 5, (i * 7) % 11, 250 };
		const char *ck[] = { "industry" }, *cv[] = { i % 2 ? "saas" : "retail" };
		ls_ftrl_input in = { .num_names = num_names, .num_values = vals, .n_num = 3,
				     .cat_keys = ck, .cat_values = cv, .n_cat = 1 };
		if (ls_ftrl_example_build(&x, m, &in) != 0 || ls_ftrl_learn(m, &x, i % 3 == 0, NULL) != 0)
			die("learn");
	}
	ls_ftrl_example_free(&x);
	if (ls_ftrl_encode(m, &fb) != 0)
		die("ftrl encode");
	seed("fuzz_checkpoint", "ftrl-trained", 0, fb.data, fb.len);
	seed("fuzz_checkpoint", "ftrl-trained-fixsum", 4, fb.data, fb.len);
	ls_ftrl *d = NULL;
	if (ls_ftrl_delta(m, base, &d) != 0 || ls_ftrl_encode(d, &fb) != 0)
		die("delta");
	seed("fuzz_checkpoint", "ftrl-delta", 0, fb.data, fb.len);

	ls_mlog_pair pairs[3] = { { 0.9, 1 }, { 0.2, 0 }, { 0.5, 1 } };
	ls_buf mb = { 0 };
	if (ls_mlog_encode(pairs, 3, fb.data, fb.len, &mb) != 0)
		die("mlog");
	seed("fuzz_checkpoint", "mlog-delta", 1, mb.data, mb.len);
	seed("fuzz_checkpoint", "mlog-delta-fixsum", 5, mb.data, mb.len);
	if (ls_mlog_encode(pairs, 3, NULL, 0, &mb) != 0)
		die("mlog");
	seed("fuzz_checkpoint", "mlog-pairs", 1, mb.data, mb.len);
	ls_buf_free(&mb);

	ls_eval *ev = ls_eval_new(16);
	if (ev == NULL)
		die("eval");
	for (int i = 0; i < 21; i++)
		ls_eval_add(ev, (double)(i % 10) / 9.0, i % 3 == 0);
	uint8_t eb[1024];
	size_t elen;
	if (ls_eval_encode(ev, eb, sizeof eb, &elen) != 0)
		die("eval");
	seed("fuzz_checkpoint", "eval", 2, eb, elen);
	seed("fuzz_checkpoint", "eval-fixsum", 6, eb, elen);
	seed("fuzz_checkpoint", "eval-shrink", 2 | 4 | 8, eb, elen);
	ls_eval_free(ev);

	ls_scorestate ls;
	ls_scorestate_init(&ls);
	ls.first_ts = 1700000000000;
	ls.n = 2;
	ls.m[0] = (ls_scorestate_model){ .key = 7, .label = 2, .tier = -1, .version = 0, .score = NAN };
	ls.m[1] = (ls_scorestate_model){ .key = 9, .label = 1, .tier = 1, .version = 12, .score = 0.25 };
	uint8_t lb[LS_SCORESTATE_ENCODED_MAX];
	size_t llen;
	if (ls_scorestate_encode(&ls, lb, sizeof lb, &llen) != 0)
		die("leadscore");
	seed("fuzz_checkpoint", "leadscore", 3, lb, llen);
	seed("fuzz_checkpoint", "leadscore-empty", 3, NULL, 0);

	ls_buf_free(&fb);
	ls_ftrl_free(d);
	ls_ftrl_free(base);
	ls_ftrl_free(m);
}

/* --- HTTP ------------------------------------------------------------------ */

static void http_seed(const char *name, const char *s)
{
	seed("fuzz_http", name, -1, s, strlen(s));
}

static void http_seeds(void)
{
	http_seed("path-decisions", "/v1/campaigns/spring/decisions");
	http_seed("path-activate", "/v1/decisions/spring.0123456789abcdef/activate");
	http_seed("path-reward", "/v1/decisions/spring.0123456789abcdef/reward");
	http_seed("path-lead", "/v1/leads/lead-42");
	http_seed("path-model", "/v1/models/conversion");
	http_seed("path-campaign", "/v1/campaigns/spring");
	http_seed("path-empty-id", "/v1/decisions//reward");
	http_seed("decision", "{\"lead_id\":\"lead-42\",\"context\":{\"tier\":\"hot\","
			      "\"industry\":\"saas\"},\"activate\":false}");
	http_seed("decision-min", "{\"lead_id\":\"l\"}");
	http_seed("decision-null-context", "{\"lead_id\":\"l\",\"context\":null}");
	http_seed("decision-bad", "{\"lead_id\":\"\",\"context\":[1],\"activate\":1}");
	http_seed("decision-dup", "{\"lead_id\":\"a\",\"lead_id\":\"b\"}");
	http_seed("reward", "{\"reward\":0.5}");
	http_seed("reward-int", "{\"reward\":1}");
	http_seed("reward-huge", "{\"reward\":1e400}");
	http_seed("not-object", "[\"reward\",0.5]");
}

/* --- bandit counters ------------------------------------------------------- */

static void posterior_seed(const char *name, int max_buckets, const char *lines)
{
	seed("fuzz_posterior", name, max_buckets - 1, lines, strlen(lines));
}

static void posterior_seeds(void)
{
	posterior_seed("campaign-wide", 4, "n:A:\n120\nr:A:\n30500000\nn:B:\n80\nr:B:\n"
			"12000000\nn:C:\n5\nr:C:\n0");
	posterior_seed("buckets", 2, "n:A:\n50\nr:A:\n10000000\nn:A:tier=hot\n20\n"
			"r:A:tier=hot\n9000000\nn:B:tier=hot\n3\nn:A:tier=cold\n40\n"
			"r:A:tier=cold\n1000000\nn:C:industry=saas\n12\nn:X:tier=hot\n7");
	posterior_seed("torn", 1, "n:A:\n10\nr:A:\n99000000\nn:B:\n-5\nr:B:\n"
			"9223372036854775807\nn:C:\n18446744073709551615");
	posterior_seed("empty", 1, "");
}

/* --- config dictionary ------------------------------------------------------ */

static char dict_seen[16384];
static size_t dict_len;

/* Write "s" as a dictionary entry unless it was written already. */
static void dict_entry(FILE *f, const char *s, size_t n)
{
	char e[160];
	int w = snprintf(e, sizeof e, "\"%.*s\"\n", (int)n, s);
	if (w <= 0 || (size_t)w >= sizeof e || memmem(dict_seen, dict_len, e, (size_t)w) != NULL)
		return;
	if (dict_len + (size_t)w < sizeof dict_seen) {
		memcpy(dict_seen + dict_len, e, (size_t)w);
		dict_len += (size_t)w;
	}
	fputs(e, f);
}

static void config_dict(void)
{
	char path[512];
	snprintf(path, sizeof path, "%s/fuzz_config.dict", outdir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		die(path);
	ls_config_key_info info;
	char name[128];
	for (size_t i = 0; ls_config_key_at(i, &info); i++) {
		/* every dotted component as a YAML key, and the variable */
		const char *s = info.key;
		while (*s != '\0') {
			size_t n = strcspn(s, ".[]");
			if (n > 0) {
				char k[96];
				snprintf(k, sizeof k, "%.*s:", (int)n, s);
				dict_entry(f, k, strlen(k));
			}
			s += n;
			s += strspn(s, ".[]");
		}
		if (info.env_overridable && ls_config_env_name(info.key, name, sizeof name) == 0) {
			strcat(name, "=");
			dict_entry(f, name, strlen(name));
		}
	}
	if (fclose(f) != 0)
		die(path);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: leadscore-fuzz-seeds OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	codec_seeds();
	lead_seeds();
	checkpoint_seeds();
	http_seeds();
	posterior_seeds();
	config_dict();
	return 0;
}
