/*
 * ls_kafka.c - librdkafka configuration, logging and rebalancing.
 *
 * Rebalancing is done by hand (a rebalance_cb) rather than left to
 * librdkafka because exactly-once needs two things librdkafka cannot do for
 * us: write a partition's state and offset to Redis before it is revoked,
 * and start an assigned partition at the offset stored in Redis rather than
 * at the group's committed offset.
 */
#include "ls_kafka.h"

#include <ctype.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_log.h"

struct ls_kafka_consumer {
	rd_kafka_t *rk;
	pthread_mutex_t stats_mu;
	char *stats; /* librdkafka's latest statistics JSON */
	atomic_int assigned;
	atomic_bool ever_assigned;
	ls_kafka_rebalance_fn on_assign;
	ls_kafka_rebalance_fn on_revoke;
	void (*on_close)(void *ud);
	void *ud;
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	(void)rk;
	/* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
	ls_log_level l = level <= 3 ? LS_LOG_ERROR
			 : level == 4 ? LS_LOG_WARN
			 : level <= 6 ? LS_LOG_INFO
				      : LS_LOG_DEBUG;
	ls_log(l, "rdkafka", buf, "facility=%s", fac);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)opaque;
	char q[512];
	rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)err;
	if (e == RD_KAFKA_RESP_ERR__FATAL) {
		char fatal[512];
		rd_kafka_fatal_error(rk, fatal, sizeof fatal);
		ls_log(LS_LOG_ERROR, "kafka", "fatal client error", "reason=%s",
		       ls_log_quote(fatal, q, sizeof q));
		return;
	}
	/* transport errors are retried by librdkafka; they are not fatal */
	ls_log(LS_LOG_WARN, "kafka", "client error", "error=%s reason=%s",
	       rd_kafka_err2name(e), ls_log_quote(reason, q, sizeof q));
}

/*
 * Replace each echo of value in msg by "<value>". librdkafka quotes the
 * value it rejects ("Invalid value \"x\" for ...", "dlopen() failed: x.so");
 * a short value is replaced only where it stands alone, so "0" does not
 * turn "0..900000" into noise, and a longer one wherever it appears.
 */
static void hide_value(char *msg, size_t cap, const char *value)
{
	static const char mask[] = "<value>";
	size_t vlen = strlen(value);
	if (vlen == 0)
		return;
	char out[512];
	size_t o = 0;
	const char *p = msg;
	while (*p != '\0' && o + 1 < sizeof out) {
		bool hit = strncmp(p, value, vlen) == 0;
		if (hit && vlen < 6) {
			bool before = p > msg && isalnum((unsigned char)p[-1]);
			bool after = isalnum((unsigned char)p[vlen]);
			hit = !before && !after;
		}
		if (hit) {
			size_t n = sizeof mask - 1;
			if (o + n >= sizeof out)
				break;
			memcpy(out + o, mask, n);
			o += n;
			p += vlen;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	snprintf(msg, cap, "%s", out);
}

rd_kafka_conf_res_t ls_kafka_conf_set(rd_kafka_conf_t *conf, const char *key,
				      const char *value, char *why,
				      size_t whylen)
{
	char buf[512] = "";
	rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, value, buf, sizeof buf);
	if (r != RD_KAFKA_CONF_OK) {
		size_t n = strlen(buf);
		while (n > 0 && isspace((unsigned char)buf[n - 1]))
			buf[--n] = '\0';
		hide_value(buf, sizeof buf, value);
		snprintf(why, whylen, "%s", buf);
	}
	return r;
}

bool ls_kafka_property_is_secret(const char *name)
{
	/* librdkafka's own sensitive properties that hold secrets (not
	 * paths), plus any name a plugin gives a password or a secret */
	static const char *const names[] = {
		"sasl.password", "ssl.key.password", "ssl.keystore.password",
		"ssl.key.pem", "sasl.oauthbearer.client.secret",
		"sasl.oauthbearer.config",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return strstr(name, "password") != NULL || strstr(name, "secret") != NULL;
}

/* Levenshtein distance of a and b, capped: anything above cap is cap+1. */
static size_t edit_distance(const char *a, const char *b, size_t cap)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 128 || lb > 128)
		return cap + 1;
	size_t row[129];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0], best = row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t v = diag + (a[i - 1] != b[j - 1]);
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			if (up + 1 < v)
				v = up + 1;
			row[j] = v;
			diag = up;
			if (v < best)
				best = v;
		}
		if (best > cap)
			return cap + 1;
	}
	return row[lb];
}

int ls_kafka_property_suggest(const char *name, char *buf, size_t buflen)
{
	/* librdkafka lists its properties only as a table it prints; the
	 * first cell of each row is a name */
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return -1;
	rd_kafka_conf_properties_show(f);
	if (fclose(f) != 0 || text == NULL) {
		free(text);
		return -1;
	}
	size_t cap = strlen(name) / 4 + 1, best = cap + 1;
	for (char *line = text; line != NULL && *line != '\0';) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		char *bar = strchr(line, '|');
		if (bar != NULL && bar > line) {
			char *e = bar;
			while (e > line && e[-1] == ' ')
				e--;
			*e = '\0';
			size_t d = edit_distance(name, line, cap);
			if (d < best && d > 0 && line[0] != '-' &&
			    strcmp(line, "Property") != 0) {
				best = d;
				snprintf(buf, buflen, "%s", line);
			}
		}
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(text);
	return best <= cap ? 0 : -1;
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err,
	       size_t errlen)
{
	char why[512];
	/* the value is not quoted: kafka.properties hold passwords */
	if (ls_kafka_conf_set(conf, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka property %s: %s", k, why);
		return -1;
	}
	return 0;
}

rd_kafka_conf_t *ls_kafka_conf_new(const ls_kafka_settings *s, bool consumer,
				   char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL) {
		snprintf(err, errlen, "cannot allocate a librdkafka conf");
		return NULL;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	if (set(conf, "bootstrap.servers", s->brokers, err, errlen) != 0 ||
	    set(conf, "client.id", "leadscored", err, errlen) != 0)
		goto fail;
	/* A new group starts at the beginning: events produced before the
	 * daemon first joined must not be skipped. Operators may override. */
	if (consumer &&
	    set(conf, "auto.offset.reset", "earliest", err, errlen) != 0)
		goto fail;
	/* The pipeline reads every partition from its own queue (ls_align.h),
	 * which makes librdkafka's prefetch bounds per partition instead of
	 * per consumer: keep each partition's to what a few batches need. */
	if (consumer && (set(conf, "queued.min.messages", "5000", err, errlen) != 0 ||
			 set(conf, "queued.max.messages.kbytes", "2048", err, errlen) != 0))
		goto fail;
	for (size_t i = 0; i < s->n_properties; i++)
		if (set(conf, s->properties[i].key,
			s->properties[i].value, err, errlen) != 0)
			goto fail;
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static void log_partitions(const char *what,
			   const rd_kafka_topic_partition_list_t *parts)
{
	char list[1024];
	size_t o = 0;
	list[0] = '\0';
	for (int i = 0; i < parts->cnt && o + 1 < sizeof list; i++) {
		int w = snprintf(list + o, sizeof list - o, "%s%s[%d]",
				 i ? "," : "", parts->elems[i].topic,
				 (int)parts->elems[i].partition);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	ls_log(LS_LOG_INFO, "kafka", what, "count=%d partitions=%s", parts->cnt,
	       list);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	ls_kafka_consumer *c = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_error_t *error = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		log_partitions("partitions assigned", parts);
		if (c->on_assign != NULL)
			c->on_assign(rk, parts, c->ud);
		if (cooperative) {
			error = rd_kafka_incremental_assign(rk, parts);
			atomic_fetch_add(&c->assigned, parts->cnt);
		} else {
			e = rd_kafka_assign(rk, parts);
			atomic_store(&c->assigned, parts->cnt);
		}
		atomic_store(&c->ever_assigned, true);
	} else {
		log_partitions("partitions revoked", parts);
		if (c->on_revoke != NULL)
			c->on_revoke(rk, parts, c->ud);
		if (cooperative) {
			error = rd_kafka_incremental_unassign(rk, parts);
			atomic_fetch_sub(&c->assigned, parts->cnt);
		} else {
			e = rd_kafka_assign(rk, NULL);
			atomic_store(&c->assigned, 0);
		}
	}
	if (error != NULL) {
		ls_log(LS_LOG_ERROR, "kafka", "rebalance failed", "error=%s",
		       rd_kafka_error_name(error));
		rd_kafka_error_destroy(error);
	} else if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		ls_log(LS_LOG_ERROR, "kafka", "rebalance failed", "error=%s",
		       rd_kafka_err2name(e));
	}
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	(void)rk;
	(void)len;
	ls_kafka_consumer *c = opaque;
	pthread_mutex_lock(&c->stats_mu);
	free(c->stats);
	c->stats = json; /* ours to free: returning 1 keeps it */
	pthread_mutex_unlock(&c->stats_mu);
	return 1;
}

char *ls_kafka_consumer_stats(ls_kafka_consumer *c)
{
	if (c == NULL)
		return NULL;
	pthread_mutex_lock(&c->stats_mu);
	char *copy = c->stats != NULL ? strdup(c->stats) : NULL;
	pthread_mutex_unlock(&c->stats_mu);
	return copy;
}

ls_kafka_consumer *ls_kafka_consumer_new(const ls_kafka_settings *s, char *err,
					 size_t errlen)
{
	ls_kafka_consumer *c = calloc(1, sizeof *c);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rd_kafka_conf_t *conf = ls_kafka_conf_new(s, true, err, errlen);
	if (conf == NULL) {
		free(c);
		return NULL;
	}
	/* Applied after kafka.properties: exactly-once depends on them. */
	if (set(conf, "group.id", s->group_id, err, errlen) != 0 ||
	    set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
	    set(conf, "enable.partition.eof", "false", err, errlen) != 0) {
		rd_kafka_conf_destroy(conf);
		free(c);
		return NULL;
	}
	rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	rd_kafka_conf_set_opaque(conf, c);
	/* consumer lag for metrics comes from librdkafka's statistics */
	char cur[32];
	size_t curlen = sizeof cur;
	if (rd_kafka_conf_get(conf, "statistics.interval.ms", cur, &curlen) == RD_KAFKA_CONF_OK &&
	    strcmp(cur, "0") == 0 &&
	    set(conf, "statistics.interval.ms", "5000", err, errlen) != 0) {
		rd_kafka_conf_destroy(conf);
		free(c);
		return NULL;
	}
	rd_kafka_conf_set_stats_cb(conf, stats_cb);
	pthread_mutex_init(&c->stats_mu, NULL);

	char why[512];
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
	if (c->rk == NULL) {
		snprintf(err, errlen, "cannot create consumer: %s", why);
		rd_kafka_conf_destroy(conf);
		free(c);
		return NULL;
	}
	rd_kafka_poll_set_consumer(c->rk);

	const char *topics[] = {
		s->topics.email,   s->topics.web,
		s->topics.call,    s->topics.outcome,
		s->topics.profile,
	};
	size_t n = sizeof topics / sizeof topics[0];
	rd_kafka_topic_partition_list_t *sub =
		rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(sub, topics[i],
						  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
	rd_kafka_topic_partition_list_destroy(sub);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
		rd_kafka_destroy(c->rk);
		free(c);
		return NULL;
	}
	return c;
}

void ls_kafka_consumer_set_hooks(ls_kafka_consumer *c,
				 ls_kafka_rebalance_fn on_assign,
				 ls_kafka_rebalance_fn on_revoke, void *ud)
{
	c->on_assign = on_assign;
	c->on_revoke = on_revoke;
	c->ud = ud;
}

rd_kafka_t *ls_kafka_consumer_handle(ls_kafka_consumer *c) { return c->rk; }

int ls_kafka_consumer_assigned(const ls_kafka_consumer *c)
{
	return atomic_load(&c->assigned);
}

bool ls_kafka_consumer_ever_assigned(const ls_kafka_consumer *c)
{
	return atomic_load(&c->ever_assigned);
}

void ls_kafka_consumer_set_close_hook(ls_kafka_consumer *c, void (*fn)(void *ud))
{
	c->on_close = fn;
}

void ls_kafka_consumer_close(ls_kafka_consumer *c)
{
	if (c == NULL)
		return;
	rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		ls_log(LS_LOG_WARN, "kafka", "consumer close", "error=%s",
		       rd_kafka_err2name(e));
	if (c->on_close != NULL)
		c->on_close(c->ud);
	rd_kafka_destroy(c->rk);
	free(c->stats);
	pthread_mutex_destroy(&c->stats_mu);
	free(c);
}
