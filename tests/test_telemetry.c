/*
 * test_telemetry.c - ls_telemetry without a broker, Redis or pipeline:
 * every family is registered with its type from the first scrape, the
 * build_info gauge and the four drop reasons show at once, HTTP requests,
 * drops and open connections and the pipeline observer land in their
 * families, and with no sources the scrape-time families emit no samples.
 * (Consumer lag reads librdkafka's statistics through a live consumer and
 * publish needs a pipeline: the integration suites cover those.)
 * Links daemon/.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ls_config.h"
#include "ls_telemetry.h"
#include "ls_testutil.h"

typedef struct fixture {
	ls_config cfg;
	ls_telemetry *t;
} fixture;

static void setup(fixture *f)
{
	char err[256] = "";
	ls_config_init_defaults(&f->cfg);
	f->t = ls_telemetry_new(&f->cfg, "1.2.3-test", err, sizeof err);
	ck_assert_msg(f->t != NULL, "%s", err);
}

static void teardown(fixture *f)
{
	ls_telemetry_free(f->t);
	ls_config_free(&f->cfg);
}

static char *scrape(ls_telemetry *t)
{
	size_t len = 0;
	char *text = ls_telemetry_render(t, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, strlen(text));
	return text;
}

/* text holds line as a whole line */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line))
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	ck_abort_msg("no line \"%s\" in the scrape", line);
}

/* no sample line of family name (a line that starts with name, then '{'
 * or ' ') */
static void no_samples(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		ck_assert_msg(!(strncmp(p, name, n) == 0 && (p[n] == '{' || p[n] == ' ')),
			      "unexpected sample of %s", name);
		if (strchr(p, '\n') == NULL)
			break;
	}
}

static const struct {
	const char *name, *type;
} families[] = {
	{ "leadscore_events_consumed_total", "counter" },
	{ "leadscore_events_dead_lettered_total", "counter" },
	{ "leadscore_events_late_dropped_total", "counter" },
	{ "leadscore_profile_entries_dropped_total", "counter" },
	{ "leadscore_score_changes_published_total", "counter" },
	{ "leadscore_model_labels_total", "counter" },
	{ "leadscore_bandit_email_events_total", "counter" },
	{ "leadscore_model_auc", "gauge" },
	{ "leadscore_model_logloss", "gauge" },
	{ "leadscore_model_calibration_error", "gauge" },
	{ "leadscore_score_changes_skipped_total", "counter" },
	{ "leadscore_dead_letters_truncated_total", "counter" },
	{ "leadscore_batches_failed_consecutive", "gauge" },
	{ "leadscore_build_info", "gauge" },
	{ "leadscore_batch_seconds", "histogram" },
	{ "leadscore_redis_roundtrip_seconds", "histogram" },
	{ "leadscore_event_to_score_seconds", "histogram" },
	{ "leadscore_http_request_seconds", "histogram" },
	{ "leadscore_http_connections_dropped_total", "counter" },
	{ "leadscore_http_connections", "gauge" },
	{ "leadscore_consumer_lag_messages", "gauge" },
	{ "leadscore_bandit_decisions_total", "counter" },
	{ "leadscore_bandit_rewards_total", "counter" },
	{ "leadscore_bandit_bucket_capped_total", "counter" },
	{ "leadscore_bandit_decisions_unlogged_total", "counter" },
	{ "leadscore_redis_memory_bytes", "gauge" },
};

START_TEST(test_every_family_from_the_first_scrape)
{
	fixture f;
	setup(&f);
	char *text = scrape(f.t);
	char line[160];
	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
		snprintf(line, sizeof line, "# TYPE %s %s", families[i].name, families[i].type);
		has_line(text, line);
	}
	has_line(text, "leadscore_build_info{version=\"1.2.3-test\"} 1");
	has_line(text, "leadscore_http_connections 0");
	static const char *const reasons[] = { "connection_limit", "address_limit",
					       "out_of_fds", "request_timeout" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(line, sizeof line,
			 "leadscore_http_connections_dropped_total{reason=\"%s\"} 0", reasons[i]);
		has_line(text, line);
	}
	has_line(text, "leadscore_batch_seconds_count 0");
	has_line(text, "leadscore_redis_roundtrip_seconds_count 0");
	has_line(text, "leadscore_event_to_score_seconds_count 0");
	free(text);
	teardown(&f);
}
END_TEST

START_TEST(test_no_sources_no_scrape_time_samples)
{
	fixture f;
	setup(&f);
	ls_telemetry_set_sources(f.t, NULL, NULL);
	char *text = scrape(f.t);
	no_samples(text, "leadscore_consumer_lag_messages");
	no_samples(text, "leadscore_bandit_decisions_total");
	no_samples(text, "leadscore_bandit_rewards_total");
	no_samples(text, "leadscore_bandit_bucket_capped_total");
	no_samples(text, "leadscore_bandit_decisions_unlogged_total");
	no_samples(text, "leadscore_redis_memory_bytes");
	free(text);
	teardown(&f);
}
END_TEST

START_TEST(test_http_requests_drops_connections)
{
	fixture f;
	setup(&f);
	ls_telemetry_http(f.t, "/v1/leads/{id}", 200, 0.003);
	ls_telemetry_http(f.t, "/v1/leads/{id}", 200, 0.2);
	ls_telemetry_http(f.t, "/v1/leads/{id}", 404, 0.00005);
	ls_telemetry_http_dropped(f.t, "connection_limit");
	ls_telemetry_http_dropped(f.t, "connection_limit");
	ls_telemetry_http_dropped(f.t, "request_timeout");
	ls_telemetry_http_connections(f.t, 1);
	ls_telemetry_http_connections(f.t, 1);
	ls_telemetry_http_connections(f.t, 1);
	ls_telemetry_http_connections(f.t, -1);
	char *text = scrape(f.t);
	has_line(text, "leadscore_http_request_seconds_count{route=\"/v1/leads/{id}\",code=\"200\"} 2");
	has_line(text, "leadscore_http_request_seconds_bucket{route=\"/v1/leads/{id}\",code=\"200\",le=\"0.005\"} 1");
	has_line(text, "leadscore_http_request_seconds_bucket{route=\"/v1/leads/{id}\",code=\"200\",le=\"0.5\"} 2");
	has_line(text, "leadscore_http_request_seconds_count{route=\"/v1/leads/{id}\",code=\"404\"} 1");
	has_line(text, "leadscore_http_request_seconds_bucket{route=\"/v1/leads/{id}\",code=\"404\",le=\"0.0001\"} 1");
	has_line(text, "leadscore_http_connections_dropped_total{reason=\"connection_limit\"} 2");
	has_line(text, "leadscore_http_connections_dropped_total{reason=\"request_timeout\"} 1");
	has_line(text, "leadscore_http_connections_dropped_total{reason=\"address_limit\"} 0");
	has_line(text, "leadscore_http_connections 2");
	free(text);
	teardown(&f);
}
END_TEST

START_TEST(test_observer_feeds_its_histograms)
{
	fixture f;
	setup(&f);
	ls_pipeline_observer o = ls_telemetry_observer(f.t);
	ck_assert_ptr_eq(o.ud, f.t);
	o.batch(o.ud, 0.002);
	o.redis(o.ud, 0.0003);
	o.redis(o.ud, 0.0003);
	o.score(o.ud, 30);
	o.score(o.ud, 30);
	o.score(o.ud, 30);
	char *text = scrape(f.t);
	has_line(text, "leadscore_batch_seconds_count 1");
	has_line(text, "leadscore_batch_seconds_bucket{le=\"0.001\"} 0");
	has_line(text, "leadscore_batch_seconds_bucket{le=\"0.0025\"} 1");
	has_line(text, "leadscore_redis_roundtrip_seconds_count 2");
	has_line(text, "leadscore_redis_roundtrip_seconds_bucket{le=\"0.00025\"} 0");
	has_line(text, "leadscore_redis_roundtrip_seconds_bucket{le=\"0.0005\"} 2");
	has_line(text, "leadscore_event_to_score_seconds_count 3");
	has_line(text, "leadscore_event_to_score_seconds_bucket{le=\"10\"} 0");
	has_line(text, "leadscore_event_to_score_seconds_bucket{le=\"60\"} 3");
	free(text);
	/* read and record latencies; a record without a timestamp (< 0) is
	 * counted in the first only */
	o.latency(o.ud, 0.003, 0.25);
	o.latency(o.ud, 0.03, -1);
	text = scrape(f.t);
	has_line(text, "leadscore_read_to_score_seconds_count 2");
	has_line(text, "leadscore_read_to_score_seconds_bucket{le=\"0.002\"} 0");
	has_line(text, "leadscore_read_to_score_seconds_bucket{le=\"0.005\"} 1");
	has_line(text, "leadscore_read_to_score_seconds_bucket{le=\"0.05\"} 2");
	has_line(text, "leadscore_record_to_score_seconds_count 1");
	has_line(text, "leadscore_record_to_score_seconds_bucket{le=\"0.2\"} 0");
	has_line(text, "leadscore_record_to_score_seconds_bucket{le=\"0.5\"} 1");
	free(text);
	teardown(&f);
}
END_TEST

static Suite *telemetry_suite(void)
{
	Suite *s = suite_create("telemetry");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_every_family_from_the_first_scrape);
	tcase_add_test(tc, test_no_sources_no_scrape_time_samples);
	tcase_add_test(tc, test_http_requests_drops_connections);
	tcase_add_test(tc, test_observer_feeds_its_histograms);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return ls_test_run(telemetry_suite(), CK_NORMAL);
}
