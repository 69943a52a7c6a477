/*
 * ls_telemetry.h - the daemon's Prometheus metrics: every family served at
 * GET /metrics, and how the batch loop, the bandit and the HTTP server
 * feed them (docs/metrics.md lists them all).
 *
 * How values get here. The loop's own counters (ls_pipeline_stats and the
 * scorer's per-model stats) are plain integers owned by the loop thread;
 * ls_telemetry_publish(), called by the loop, adds what changed since the
 * last call to the metric counters, which any thread may read. So a
 * scrape sees the loop as of its last publish (the loop publishes every
 * 250 ms and at shutdown). Timings are observed where they happen (the
 * pipeline observer, the HTTP handlers); consumer lag, bandit counts,
 * Redis memory and process figures are read at scrape time.
 *
 * Thread-safety: publish belongs to the loop thread; observe functions
 * and render may be called from any thread. Memory: everything belongs to
 * the telemetry object.
 */
#ifndef LS_TELEMETRY_H
#define LS_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>

#include "ls_campaign.h"
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_metrics.h"
#include "ls_pipeline.h"

typedef struct ls_telemetry ls_telemetry;

/* Every family registered; topic labels are cfg's topic names (copied).
   NULL with a reason. */
ls_telemetry *ls_telemetry_new(const ls_config *cfg, const char *version, char *err,
			       size_t errlen);
void ls_telemetry_free(ls_telemetry *t);

/* Sources read at scrape time (any may be NULL; set NULL before freeing
   a source). */
void ls_telemetry_set_sources(ls_telemetry *t, ls_kafka_consumer *consumer,
			      ls_campaign *campaigns);

/* The observer to give ls_pipeline_set_observer(). */
ls_pipeline_observer ls_telemetry_observer(ls_telemetry *t);

/* Loop thread: fold the pipeline's and scorer's counters in. */
void ls_telemetry_publish(ls_telemetry *t, const ls_pipeline *p);

/* One HTTP request: route is the route template ("/v1/leads/{id}"). */
void ls_telemetry_http(ls_telemetry *t, const char *route, unsigned code, double seconds);

/* An HTTP connection refused or cut; reason is one of connection_limit,
   address_limit, out_of_fds, request_timeout. */
void ls_telemetry_http_dropped(ls_telemetry *t, const char *reason);

/* HTTP connections opened (+1) or closed (-1). */
void ls_telemetry_http_connections(ls_telemetry *t, double delta);

/* The exposition text (malloc'd, NUL-terminated; *len its length). */
char *ls_telemetry_render(ls_telemetry *t, size_t *len);

#endif
