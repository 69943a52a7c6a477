/*
 * leadscorectl - inspect what leadscored keeps in Redis.
 *
 *   leadscorectl [--config PATH] lead LEAD_ID [--at MS]
 *   leadscorectl [--config PATH] offsets TOPIC:PARTITION...
 *
 * `lead` prints one JSON object: the lead's watermark, event counts per
 * source, every feature value (at the watermark, or at --at MS), its
 * profile, blob size and Redis MEMORY USAGE. It decodes the state with the
 * daemon's own code and feature set (from the same config), so what it
 * prints is what the models see. Exit 0, 1 for an error, 3 when the lead
 * is not stored.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ls_build.h"
#include "ls_config.h"
#include "ls_lead.h"
#include "ls_pipeline.h"
#include "ls_store.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: leadscorectl [--config PATH] lead LEAD_ID [--at MS]\n"
		"       leadscorectl [--config PATH] offsets TOPIC:PARTITION...\n"
		"  -c, --config PATH  configuration (default %s); LEADSCORE_* env applies\n",
		LS_DEFAULT_CONFIG);
}

static int print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
	json_decref(o);
	if (s == NULL) {
		fprintf(stderr, "leadscorectl: cannot render JSON\n");
		return 1;
	}
	puts(s);
	free(s);
	return 0;
}

static int cmd_lead(ls_store *store, const ls_config *cfg, const char *lead_id,
		    int64_t at)
{
	char err[512];
	size_t n_specs;
	const ls_feature_spec *specs = ls_config_features(cfg, &n_specs);
	ls_feature_set *set = ls_feature_set_new(specs, n_specs, err, sizeof err);
	if (set == NULL) {
		fprintf(stderr, "leadscorectl: features: %s\n", err);
		return 1;
	}
	ls_lead_conf lc;
	ls_config_lead_conf(cfg, set, &lc);
	int rc = 1;
	ls_lead *lead = NULL;
	double *values = NULL;
	ls_store_blob blob;
	if (ls_store_load(store, &lead_id, 1, &blob, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	if (blob.data == NULL) {
		fprintf(stderr, "leadscorectl: lead '%s' is not stored\n", lead_id);
		rc = 3;
		goto out;
	}
	size_t blob_len = blob.len;
	if (ls_lead_decode(&lc, blob.data, blob.len, &lead, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: corrupt state: %s\n", err);
		goto out;
	}
	int nv = ls_lead_feature_names(set, NULL, 0);
	const char **names = calloc((size_t)nv + 1, sizeof *names);
	values = calloc((size_t)nv + 1, sizeof *values);
	if (names == NULL || values == NULL) {
		free(names);
		fprintf(stderr, "leadscorectl: out of memory\n");
		goto out;
	}
	ls_lead_feature_names(set, names, (size_t)nv);
	if (ls_lead_features(lead, &lc, at, values, (size_t)nv) != nv) {
		free(names);
		fprintf(stderr, "leadscorectl: cannot compute features\n");
		goto out;
	}
	json_t *o = json_object();
	json_t *feats = json_object();
	json_t *events = json_object();
	json_t *attrs = json_object();
	json_t *metrics = json_object();
	for (int i = 0; i < nv; i++)
		json_object_set_new(feats, names[i], json_real(values[i]));
	free(names);
	for (int s = 0; s < LS_SOURCE__COUNT; s++)
		json_object_set_new(events, ls_source_name((ls_source)s),
				    json_integer((json_int_t)ls_lead_event_count(lead, (ls_source)s)));
	const char *k, *v;
	double d;
	for (size_t i = 0; ls_lead_attribute_at(lead, i, &k, &v); i++)
		json_object_set_new(attrs, k, json_string(v));
	for (size_t i = 0; ls_lead_metric_at(lead, i, &k, &d); i++)
		json_object_set_new(metrics, k, json_real(d));
	long long mem = -1;
	if (ls_store_memory_usage(store, lead_id, &mem, err, sizeof err) != 0)
		mem = -1;
	json_object_set_new(o, "lead_id", json_string(lead_id));
	json_object_set_new(o, "watermark", json_integer(ls_lead_watermark(lead)));
	json_object_set_new(o, "events", events);
	json_object_set_new(o, "features", feats);
	json_object_set_new(o, "attributes", attrs);
	json_object_set_new(o, "metrics", metrics);
	json_object_set_new(o, "blob_bytes", json_integer((json_int_t)blob_len));
	json_object_set_new(o, "redis_memory_bytes", json_integer(mem));
	rc = print_json(o);
out:
	free(values);
	ls_lead_free(lead);
	ls_feature_set_free(set);
	return rc;
}

static int cmd_offsets(ls_store *store, char **args, int n)
{
	char err[512];
	ls_store_offset *o = calloc((size_t)n + 1, sizeof *o);
	char **topics = calloc((size_t)n + 1, sizeof *topics);
	int rc = 1;
	if (o == NULL || topics == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		char *colon = strrchr(args[i], ':');
		if (colon == NULL || colon[1] == '\0') {
			fprintf(stderr, "leadscorectl: expected TOPIC:PARTITION, got '%s'\n", args[i]);
			goto out;
		}
		topics[i] = strndup(args[i], (size_t)(colon - args[i]));
		if (topics[i] == NULL)
			goto out;
		o[i].topic = topics[i];
		o[i].partition = (int32_t)strtol(colon + 1, NULL, 10);
	}
	if (ls_store_load_offsets(store, o, (size_t)n, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	json_t *j = json_object();
	for (int i = 0; i < n; i++)
		json_object_set_new(j, args[i], json_integer(o[i].next_offset));
	rc = print_json(j);
out:
	for (int i = 0; topics != NULL && i < n; i++)
		free(topics[i]);
	free(topics);
	free(o);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = LS_DEFAULT_CONFIG;
	int64_t at = LS_LEAD_AT_WATERMARK;
	int opt;
	/* GNU getopt permutes, so options may also follow the command */
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'a':
			at = strtoll(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[optind++];

	static char err[16384];
	ls_config cfg;
	if (ls_config_load(path, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s", err);
		return 1;
	}
	ls_store_settings ss = ls_pipeline_store_settings(&cfg);
	int rc = 1;
	ls_store *store = ls_store_new(&ss, err, sizeof err);
	if (store == NULL || ls_store_connect(store, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: redis: %s\n", err);
		goto out;
	}
	if (strcmp(cmd, "lead") == 0 && optind == argc - 1) {
		rc = cmd_lead(store, &cfg, argv[optind], at);
	} else if (strcmp(cmd, "offsets") == 0 && optind < argc) {
		rc = cmd_offsets(store, argv + optind, argc - optind);
	} else {
		usage(stderr);
		rc = 2;
	}
out:
	ls_store_free(store);
	ls_config_free(&cfg);
	return rc;
}
