/*
 * leadscorectl_campaign.c - `leadscorectl campaign ID`: a campaign's arms
 * as the running daemon sees them, from its HTTP API.
 *
 *   leadscorectl [--config PATH] campaign ID [--json] [--url URL]
 *                [--timeout-ms N]
 *
 * Asks GET /v1/campaigns/{ID} (ID percent-escaped) of the daemon at
 * http.listen from the config (a wildcard host 0.0.0.0 or :: is reached
 * on loopback), or at --url BASE (e.g. http://10.0.0.5:8080), sending
 * "Authorization: Bearer <http.auth_token>" when the config sets a token
 * (LEADSCORE_HTTP_AUTH_TOKEN applies). With --url the config is read only
 * for the token, and only when it exists or --config names it.
 *
 * Prints, for the campaign-wide posterior and then per context bucket
 * (campaigns with `context:`), every arm's trials, rewards, posterior
 * mean, central 95 % credible interval, probability of being best and
 * current allocation (the probability a decision in that bucket draws
 * the arm now: Thompson sampling with the min_share floor), plus the
 * campaign's settings (min_share, min_bucket_trials, prior_trials,
 * refresh_trials, refresh_interval_ms) and the snapshot time. A bucket
 * marked "thin" has too few trials of its own and decides with the
 * campaign-wide posterior. All numbers are the daemon's own: the
 * interval and P(best) come from 10,000 joint Monte Carlo draws of the
 * Beta posteriors the decisions use (hierarchical prior included), the
 * allocation from propensity_draws draws; this command computes nothing
 * of its own, so it always agrees with the decisions. (The API does not
 * give the posteriors' Beta parameters, so exact quantiles could not be
 * computed here without re-deriving the hierarchical prior.) Trials are
 * resolved decisions (rewarded, or expired with the default reward);
 * decisions inside their reward window are not counted yet.
 *
 * Table by default; --json prints the API's JSON object unchanged on one
 * line (keys sorted). The HTTP client is libcurl.
 *
 * Exit: 0 ok; 1 the daemon is unreachable, timed out (--timeout-ms,
 * default 5000, the whole request), refused the token, or answered
 * something that is not the API's JSON; 2 usage error (also: the config's
 * http.listen has port 0, chosen at start, so --url is needed); 3 unknown
 * campaign (the API answered 404; its JSON error message is printed).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ls_build.h"
#include "ls_config.h"

#include "leadscorectl.h"

#define RESPONSE_MAX ((size_t)16 << 20) /* a campaign's JSON is far smaller */

static void campaign_usage(FILE *out)
{
	fprintf(out,
		"usage: leadscorectl [--config PATH] campaign ID [--json] [--url URL]\n"
		"                    [--timeout-ms N]\n"
		"Show a campaign's arms from the running daemon's HTTP API\n"
		"(GET /v1/campaigns/ID): per arm trials, rewards, posterior mean, central\n"
		"95 %% credible interval, P(best) and the current allocation (the\n"
		"probability a decision draws the arm now), for the campaign-wide\n"
		"posterior and each context bucket, with the campaign's settings.\n"
		"The interval and P(best) are the daemon's: 10,000 joint Monte Carlo draws\n"
		"of the Beta posteriors decisions use. A \"thin\" bucket decides with the\n"
		"campaign-wide posterior. Trials are resolved decisions (rewarded, or\n"
		"expired with the default reward): decisions still inside their reward\n"
		"window are not counted yet.\n"
		"--json fields: campaign, snapshot_ts (ms), min_share, min_bucket_trials,\n"
		"prior_trials, refresh_trials, refresh_interval_ms, buckets: [{bucket (null\n"
		"for campaign-wide), trials, uses_campaign_posterior, arms: [{variant,\n"
		"trials, rewards, posterior_mean, ci95: [low, high], p_best,\n"
		"probability (the allocation)}]}].\n"
		"\n"
		"  ID               the campaign id (any bytes; escaped in the URL)\n"
		"  --json           print the API's JSON object unchanged, on one line\n"
		"  --url URL        the daemon's base URL (default: http://<http.listen>;\n"
		"                   a wildcard host is reached on loopback)\n"
		"  --timeout-ms N   whole-request timeout, 1..600000 (default 5000)\n"
		"  -c, --config PATH  configuration: http.listen and http.auth_token (sent\n"
		"                   as a Bearer token); with --url only read when it exists\n"
		"                   or is named\n"
		"  -h, --help       this text\n"
		"\n"
		"Exit status: 0 ok; 1 daemon unreachable, timed out, token refused or an\n"
		"answer that is not the API's JSON; 2 usage error (also http.listen with\n"
		"port 0: pass --url); 3 unknown campaign (HTTP 404; the API's message is\n"
		"printed).\n");
}

typedef struct response {
	char *data;
	size_t len;
	bool too_big;
} response;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	response *r = ud;
	size_t add = size * n;
	if (add > RESPONSE_MAX - r->len) {
		r->too_big = true;
		return 0; /* aborts the transfer */
	}
	char *d = realloc(r->data, r->len + add + 1);
	if (d == NULL)
		return 0;
	memcpy(d + r->len, p, add);
	r->data = d;
	r->len += add;
	r->data[r->len] = '\0';
	return add;
}

/* The base URL from http.listen into buf: 0, 2 (port 0) or 1. */
static int base_from_listen(const char *listen, char *buf, size_t len)
{
	char host[256];
	int port;
	const char *why = ls_config_parse_host_port(listen, host, sizeof host, &port);
	if (why != NULL) {
		fprintf(stderr, "leadscorectl: http.listen '%s': %s\n", listen, why);
		return 1;
	}
	if (port == 0) {
		fprintf(stderr, "leadscorectl: http.listen has port 0 (the kernel picks one at "
				"start); pass --url http://HOST:PORT\n");
		return 2;
	}
	if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
		snprintf(host, sizeof host, "127.0.0.1");
	else if (strcmp(host, "::") == 0)
		snprintf(host, sizeof host, "::1");
	bool v6 = strchr(host, ':') != NULL;
	snprintf(buf, len, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
	return 0;
}

/* GET url into *r: 0 with *status, or 1 with the reason on stderr. */
static int http_get(const char *url, const char *token, long timeout_ms, response *r,
		    long *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
	char *auth = NULL;
	if (token != NULL && token[0] != '\0') {
		size_t n = strlen(token) + 32;
		auth = malloc(n);
		if (auth != NULL)
			snprintf(auth, n, "Authorization: Bearer %s", token);
		struct curl_slist *h = auth != NULL ? curl_slist_append(hdr, auth) : NULL;
		if (h == NULL) {
			curl_slist_free_all(hdr);
			hdr = NULL;
		}
	}
	if (c == NULL || hdr == NULL) {
		fprintf(stderr, "leadscorectl: cannot start libcurl (out of memory)\n");
		curl_slist_free_all(hdr);
		free(auth);
		curl_easy_cleanup(c);
		return 1;
	}
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "leadscorectl");
	CURLcode e = curl_easy_perform(c);
	int rc = 1;
	if (r->too_big)
		fprintf(stderr, "leadscorectl: %s: answer larger than %zu bytes\n", url,
			RESPONSE_MAX);
	else if (e == CURLE_OPERATION_TIMEDOUT)
		fprintf(stderr, "leadscorectl: %s: no complete answer within %ld ms\n", url,
			timeout_ms);
	else if (e != CURLE_OK)
		fprintf(stderr, "leadscorectl: %s: %s\n", url,
			errbuf[0] != '\0' ? errbuf : curl_easy_strerror(e));
	else
		rc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status) == CURLE_OK ? 0 : 1;
	curl_slist_free_all(hdr);
	free(auth);
	curl_easy_cleanup(c);
	return rc;
}

/* A number of o[key] with prec decimals, right-aligned in w columns
 * after a space; "-" when absent or null. */
static void put_num(const json_t *o, const char *key, int w, int prec)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_number(v))
		printf(" %*.*f", w, prec, json_number_value(v));
	else
		printf(" %*s", w, "-");
}

static void put_ci(const json_t *arm)
{
	const json_t *ci = json_object_get(arm, "ci95");
	const json_t *lo = json_array_get(ci, 0), *hi = json_array_get(ci, 1);
	char buf[64];
	if (json_is_number(lo) && json_is_number(hi))
		snprintf(buf, sizeof buf, "[%.4f, %.4f]", json_number_value(lo),
			 json_number_value(hi));
	else
		snprintf(buf, sizeof buf, "-");
	printf("  %-18s", buf);
}

/* Strings from the API printed without control bytes (a terminal is no
 * place for a hostile daemon's escape sequences). */
static void put_text(const char *s, int w)
{
	int n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++, n++)
		putchar(*p < 0x20 || *p == 0x7f ? '?' : *p);
	for (; n < w; n++)
		putchar(' ');
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s != NULL ? s : dflt;
}

/* The table of the API's object o: 0, or 1 when o is not its shape. */
static int print_table(const json_t *o)
{
	const json_t *buckets = json_object_get(o, "buckets");
	if (!json_is_object(o) || !json_is_array(buckets)) {
		fprintf(stderr, "leadscorectl: the answer is JSON but not a campaign "
				"(no \"buckets\" array)\n");
		return 1;
	}
	printf("campaign ");
	put_text(str_or(o, "campaign", "?"), 0);
	const json_t *snap = json_object_get(o, "snapshot_ts");
	if (json_is_integer(snap)) {
		json_int_t ms = json_integer_value(snap);
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		char when[40] = "?";
		if (ms >= 0 && gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		printf("  snapshot %s.%03dZ", when, (int)(ms >= 0 ? ms % 1000 : 0));
	}
	printf("\nsettings:");
	static const char *const settings[] = { "min_share", "min_bucket_trials", "prior_trials",
						"refresh_trials", "refresh_interval_ms" };
	for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
		const json_t *v = json_object_get(o, settings[i]);
		if (json_is_integer(v))
			printf(" %s=%" JSON_INTEGER_FORMAT, settings[i], json_integer_value(v));
		else if (json_is_number(v))
			printf(" %s=%g", settings[i], json_number_value(v));
	}
	printf("\n");
	size_t bi;
	const json_t *b;
	json_array_foreach(buckets, bi, b) {
		const json_t *name = json_object_get(b, "bucket");
		printf("\n%s", json_is_string(name) ? "bucket " : "campaign-wide");
		if (json_is_string(name))
			put_text(json_string_value(name), 0);
		printf(":");
		put_num(b, "trials", 0, 0);
		printf(" trials");
		if (json_is_true(json_object_get(b, "uses_campaign_posterior")))
			printf(" (thin: decides with the campaign-wide posterior)");
		printf("\n  %-16s %10s %10s %8s  %-18s %7s %10s\n", "variant", "trials", "rewards",
		       "mean", "95% CI", "P(best)", "allocation");
		size_t ai;
		const json_t *a;
		json_array_foreach(json_object_get(b, "arms"), ai, a) {
			printf("  ");
			put_text(str_or(a, "variant", "?"), 16);
			put_num(a, "trials", 10, 0);
			put_num(a, "rewards", 10, 2);
			put_num(a, "posterior_mean", 8, 4);
			put_ci(a);
			put_num(a, "p_best", 7, 4);
			put_num(a, "probability", 10, 4);
			printf("\n");
		}
	}
	return 0;
}

/* "what: HTTP status" and the API's error (its {"error", "detail"}
 * object) when the body is one, on stderr. */
static void print_api_error(const char *what, const response *r, long status)
{
	json_t *o = r->data != NULL ? json_loadb(r->data, r->len, 0, NULL) : NULL;
	const char *code = str_or(o, "error", NULL), *msg = str_or(o, "detail", NULL);
	fprintf(stderr, "leadscorectl: %s: HTTP %ld", what, status);
	if (code != NULL || msg != NULL) {
		fprintf(stderr, ": ");
		if (code != NULL)
			fprintf(stderr, "%s: ", code);
		fprintf(stderr, "%s", msg != NULL ? msg : "");
	}
	fprintf(stderr, "\n");
	json_decref(o);
}

int cmd_campaign(int argc, char **argv, const char *config_path)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "url", required_argument, NULL, 'u' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false, config_named = strcmp(config_path, LS_DEFAULT_CONFIG) != 0;
	const char *url = NULL;
	long timeout_ms = 5000;
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			as_json = true;
			break;
		case 'u':
			url = optarg;
			break;
		case 't': {
			char *end;
			timeout_ms = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || timeout_ms < 1 || timeout_ms > 600000) {
				fprintf(stderr, "leadscorectl: --timeout-ms: expected 1..600000, "
						"got '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'c':
			config_path = optarg;
			config_named = true;
			break;
		case 'h':
			campaign_usage(stdout);
			return 0;
		default:
			campaign_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || argv[optind][0] == '\0') {
		campaign_usage(stderr);
		return 2;
	}
	const char *id = argv[optind];
	ls_config cfg;
	bool have_cfg = false;
	char base[600];
	int rc = 1;
	if (url == NULL || config_named || access(config_path, F_OK) == 0) {
		if (ctl_load_config(config_path, &cfg) != 0)
			return 1;
		have_cfg = true;
	}
	if (url != NULL) {
		size_t n = strlen(url);
		while (n > 0 && url[n - 1] == '/')
			n--;
		if (n == 0 || n >= sizeof base - 1) {
			fprintf(stderr, "leadscorectl: --url: expected a base URL like "
					"http://127.0.0.1:8080\n");
			rc = 2;
			goto out;
		}
		snprintf(base, sizeof base, "%.*s", (int)n, url);
	} else if ((rc = base_from_listen(cfg.http.listen, base, sizeof base)) != 0) {
		goto out;
	}
	rc = 1;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "leadscorectl: cannot start libcurl\n");
		goto out;
	}
	CURL *esc = curl_easy_init();
	char *eid = esc != NULL ? curl_easy_escape(esc, id, (int)strlen(id)) : NULL;
	size_t full_len = strlen(base) + (eid != NULL ? strlen(eid) : 0) + 32;
	char *full = eid != NULL ? malloc(full_len) : NULL;
	if (full != NULL)
		snprintf(full, full_len, "%s/v1/campaigns/%s", base, eid);
	curl_free(eid);
	curl_easy_cleanup(esc);
	if (full == NULL) {
		fprintf(stderr, "leadscorectl: out of memory\n");
		curl_global_cleanup();
		goto out;
	}
	response r = { 0 };
	long status = 0;
	if (http_get(full, have_cfg ? cfg.http.auth_token : NULL, timeout_ms, &r, &status) == 0) {
		if (status == 404) {
			print_api_error(id, &r, status);
			rc = 3;
		} else if (status != 200) {
			print_api_error(full, &r, status);
		} else {
			json_error_t je;
			json_t *o = json_loadb(r.data != NULL ? r.data : "", r.len, 0, &je);
			if (!json_is_object(o)) {
				fprintf(stderr, "leadscorectl: %s: the answer is not a JSON object "
						"(%s)\n", full, o == NULL ? je.text : "another type");
				json_decref(o);
			} else if (as_json) {
				rc = print_json(o);
			} else {
				rc = print_table(o);
				json_decref(o);
			}
		}
	}
	free(r.data);
	free(full);
	curl_global_cleanup();
out:
	if (have_cfg)
		ls_config_free(&cfg);
	return rc;
}
