/*
 * ls_campaign.c - see ls_campaign.h for the contract.
 *
 * The service's API: start and stop, decisions (from the published
 * snapshot, queued for the writer thread in ls_campaign_writer.c),
 * activations and rewards over the caller's connection, the read API,
 * the pipeline's script calls and the metrics. What the two files share
 * is in ls_campaign_internal.h; the scripts are in ls_campaign_scripts.c,
 * the posterior parsing in ls_campaign_posterior.c.
 */
#include "ls_campaign_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ls_campaign_scripts.h"
#include "ls_clock.h"
#include "ls_kafka.h"
#include "ls_keys.h"
#include "ls_log.h"
#include "ls_utf8.h"

#define RECORD_SLACK_MS INT64_C(3600000) /* records outlive their window */
#define MAX_QUEUE 1000000                /* decisions waiting for Redis */
#define STATS_DRAWS 10000u

const char *ls_campaign_result_str(int rc)
{
	switch (rc) {
	case LS_CAMPAIGN_OK: return "ok";
	case LS_CAMPAIGN_UNKNOWN_CAMPAIGN: return "unknown campaign";
	case LS_CAMPAIGN_UNKNOWN_DECISION: return "unknown decision";
	case LS_CAMPAIGN_NOT_ACTIVATED: return "decision not activated";
	case LS_CAMPAIGN_TOO_LATE: return "reward window has passed";
	case LS_CAMPAIGN_BAD_REQUEST: return "bad request";
	case LS_CAMPAIGN_UNAVAILABLE: return "unavailable";
	case LS_CAMPAIGN_INTERNAL: return "internal error";
	default: return "unknown result";
	}
}

static const char *const outcome_names[LS_CAMPAIGN_O__COUNT] = {
	"activated", "rewarded", "ignored", "unknown_decision", "not_activated", "too_late",
};

const char *ls_campaign_outcome_name(ls_campaign_outcome o)
{
	return (unsigned)o < LS_CAMPAIGN_O__COUNT ? outcome_names[o] : "unknown";
}

ls_campaign_outcome ls_campaign_outcome_of(bool activation, long long reply)
{
	if (activation)
		return reply == 1 ? LS_CAMPAIGN_O_ACTIVATED
		       : reply == 0 ? LS_CAMPAIGN_O_IGNORED : LS_CAMPAIGN_O_UNKNOWN;
	switch (reply) {
	case 1:
	case 2: return LS_CAMPAIGN_O_REWARDED;
	case 0: return LS_CAMPAIGN_O_IGNORED;
	case -2: return LS_CAMPAIGN_O_NOT_ACTIVATED;
	case -3: return LS_CAMPAIGN_O_TOO_LATE;
	default: return LS_CAMPAIGN_O_UNKNOWN;
	}
}

/* --------------------------------------------------------------- keys */

/* "<prefix>{bandit:<campaign>}:<suffix>"; -1 when it does not fit. */
int ls_campaign_key(char *buf, size_t cap, const char *prefix, const char *campaign,
		    const char *suffix)
{
	return ls_keys_bandit(buf, cap, prefix, campaign, suffix);
}

/* A decision's record: "<prefix>{bandit:<campaign>}:d:<id>". */
int ls_campaign_decision_key(char *buf, size_t cap, const char *prefix, const char *campaign,
			     const char *id)
{
	return ls_keys_bandit_decision(buf, cap, prefix, campaign, id);
}

/*
 * Split "<campaign>.<32 hex>" into its campaign; false for anything else
 * (the id came from a client and may be garbage).
 */
static bool parse_decision_id(const char *id, char campaign[LS_CAMPAIGN_ID_MAX])
{
	const char *dot = strrchr(id, '.');
	if (dot == NULL || dot == id || (size_t)(dot - id) >= LS_CAMPAIGN_ID_MAX ||
	    strlen(dot + 1) != 32)
		return false;
	for (const char *p = dot + 1; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	for (const char *p = id; p < dot; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	memcpy(campaign, id, (size_t)(dot - id));
	campaign[dot - id] = '\0';
	return true;
}

bool ls_campaign_ready(ls_campaign *s)
{
	snap *sn = ls_campaign_snap_take(s);
	bool ok = sn != NULL;
	ls_campaign_snap_release(sn);
	return ok;
}

/* ------------------------------------------------------ start and stop */

static void set_specs(ls_campaign *s, const ls_campaign_settings *st)
{
	size_t n = st->n_specs;
	ls_campaign_spec *copy = NULL;
	if (n > 0) {
		copy = malloc(n * sizeof *copy);
		if (copy == NULL) {
			ls_log(LS_LOG_ERROR, COMPONENT, "out of memory, campaigns unchanged", "%s", "");
			return;
		}
		memcpy(copy, st->specs, n * sizeof *copy);
	}
	pthread_mutex_lock(&s->mu);
	free(s->specs);
	s->specs = copy;
	s->n_specs = n;
	memset(s->resolved, 0, sizeof s->resolved);
	s->specs_changed = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

ls_campaign *ls_campaign_start(const ls_campaign_settings *st, char *err, size_t errlen)
{
	ls_campaign *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->snap_mu, NULL);
	pthread_mutex_init(&s->counters_mu, NULL);
	atomic_store(&s->redis_memory, -1);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->written, NULL);
	ls_buf_init(&s->enc);
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
		seed = (uint64_t)ls_clock_wall_ms() ^ (uint64_t)(uintptr_t)s;
	ls_rng_seed(&s->rng, seed);
	s->prefix = strdup(st->key_prefix);
	s->topic = strdup(st->kafka.topics.decisions);
	s->connect_timeout_ms = st->connect_timeout_ms;
	s->command_timeout_ms = st->command_timeout_ms;
	if (s->prefix == NULL || s->topic == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ls_redis_url_parse(st->redis_url, &s->target, err, errlen) != 0)
		goto fail;
	s->codec = ls_codec_new(err, errlen);
	if (s->codec == NULL)
		goto fail;
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&st->kafka, false, err, errlen);
	if (conf == NULL)
		goto fail;
	char why[512];
	rd_kafka_conf_set_dr_msg_cb(conf, ls_campaign_decision_delivered);
	rd_kafka_conf_set_opaque(conf, s);
	s->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
	if (s->producer == NULL) {
		snprintf(err, errlen, "decision log producer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	set_specs(s, st);
	if (pthread_create(&s->thread, NULL, ls_campaign_writer_main, s) != 0) {
		snprintf(err, errlen, "cannot start the bandit thread");
		goto fail;
	}
	s->started = true;
	return s;
fail:
	ls_campaign_stop(s);
	return NULL;
}

void ls_campaign_reconfigure(ls_campaign *s, const ls_campaign_settings *st)
{
	if (s != NULL)
		set_specs(s, st);
}

void ls_campaign_stop(ls_campaign *s)
{
	if (s == NULL)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	if (s->producer != NULL) {
		rd_kafka_flush(s->producer, 5000);
		rd_kafka_destroy(s->producer);
	}
	for (size_t i = 0; i < s->nq; i++)
		free(s->q[i].lead);
	free(s->q);
	ls_campaign_snap_release(s->cur);
	if (s->rc != NULL)
		redisFree(s->rc);
	ls_codec_free(s->codec);
	ls_buf_free(&s->enc);
	ls_redis_target_free(&s->target);
	free(s->specs);
	free(s->prefix);
	free(s->topic);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->snap_mu);
	pthread_mutex_destroy(&s->counters_mu);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->written);
	free(s);
}

/*
 * From the published snapshot, not the specs under the service mutex:
 * every decision request asks, and the answer then matches the spec the
 * decision itself uses. A campaign without context keys answers 0 without
 * copying anything.
 */
size_t ls_campaign_context_keys(ls_campaign *s, const char *campaign,
				char keys[LS_CAMPAIGN_MAX_CONTEXT][LS_MODEL_KEY_MAX],
				char tier_model[LS_MODEL_NAME_MAX])
{
	snap *sn = ls_campaign_snap_take(s);
	const csnap *c = ls_campaign_snap_find(sn, campaign);
	size_t n = c != NULL ? c->spec.n_context : 0;
	if (n > 0) {
		memcpy(keys, c->spec.context, sizeof c->spec.context);
		memcpy(tier_model, c->spec.tier_model, LS_MODEL_NAME_MAX);
	}
	ls_campaign_snap_release(sn);
	return n;
}

/* ----------------------------------------------------------- decisions */

static _Thread_local ls_rng tl_rng;
static _Thread_local bool tl_seeded;

static ls_rng *thread_rng(void)
{
	if (!tl_seeded) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
			seed = (uint64_t)ls_clock_wall_ms() ^ (uint64_t)(uintptr_t)&tl_rng;
		ls_rng_seed(&tl_rng, seed);
		tl_seeded = true;
	}
	return &tl_rng;
}

/* A key the request lacks reads as value "" ("tier="). A value is cut on a
 * code point: a byte cut could split one, and the name would then be
 * invalid UTF-8 in Redis, in the JSON answer and in the decision log. */
void ls_campaign_bucket_name(const ls_campaign_spec *sp, const ls_campaign_request *req,
			     char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t k = 0; k < sp->n_context; k++) {
		const char *v = "";
		for (size_t j = 0; j < req->n_context; j++)
			if (strcmp(req->ctx_key[j], sp->context[k]) == 0)
				v = req->ctx_value[j];
		int w = snprintf(out + len, cap - len, "%s%s=", k > 0 ? "," : "", sp->context[k]);
		if (w < 0 || (size_t)w >= cap - len)
			return;
		len += (size_t)w;
		/* ',' '=' and '%' in a value are %-escaped, so two different
		 * contexts can never make the same bucket name */
		size_t vl = ls_utf8_cut(v, LS_CAMPAIGN_CTX_VALUE_MAX);
		for (size_t i = 0; i < vl; i++) {
			char ch = v[i];
			bool esc = ch == ',' || ch == '=' || ch == '%';
			if (len + (esc ? 3 : 1) >= cap)
				return;
			if (esc) {
				snprintf(out + len, 4, "%%%02X", (unsigned char)ch);
				len += 3;
			} else {
				out[len++] = ch;
				out[len] = '\0';
			}
		}
	}
}

int ls_campaign_decide(ls_campaign *s, const ls_campaign_request *req,
		       ls_campaign_decision *out)
{
	if (req->n_context > LS_CAMPAIGN_MAX_REQ_CONTEXT)
		return LS_CAMPAIGN_BAD_REQUEST;
	for (size_t k = 0; k < req->n_context; k++)
		if (!ls_utf8_valid(req->ctx_value[k], strlen(req->ctx_value[k])))
			return LS_CAMPAIGN_BAD_REQUEST;
	snap *sn = ls_campaign_snap_take(s);
	if (sn == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	const csnap *c = ls_campaign_snap_find(sn, req->campaign);
	if (c == NULL) {
		ls_campaign_snap_release(sn);
		return LS_CAMPAIGN_UNKNOWN_CAMPAIGN;
	}
	const ls_campaign_spec *sp = &c->spec;
	size_t na = sp->n_arms;
	memset(out, 0, sizeof *out);
	ls_campaign_bucket_name(sp, req, out->bucket, sizeof out->bucket);
	size_t row = ls_campaign_posterior_row(&c->post, out->bucket, sp->max_buckets,
					       &out->bucket_capped);
	out->bucket_fallback = out->bucket[0] != '\0' && row == 0;
	const double *p = &c->probs[row * na];
	ls_rng *r = thread_rng();
	double u = ls_rng_uniform(r), acc = 0.0;
	size_t arm = na - 1;
	for (size_t i = 0; i < na; i++) {
		acc += p[i];
		if (u < acc) {
			arm = i;
			break;
		}
	}
	/* rounding can leave u above the last partial sum: take the last arm
	 * with a non-zero probability, never one the policy cannot choose */
	while (arm > 0 && p[arm] <= 0.0)
		arm--;
	memcpy(out->variant, sp->arms[arm], sizeof out->variant);
	out->propensity = p[arm];
	if (c->counter[arm] != NULL) {
		atomic_fetch_add(&c->counter[arm]->decisions, 1);
		if (out->bucket_capped)
			atomic_fetch_add(&c->counter[arm]->capped, 1);
	}
	out->ts = ls_clock_wall_ms();
	uint64_t hi = ls_rng_next(r), lo = ls_rng_next(r);
	snprintf(out->decision_id, sizeof out->decision_id, "%s.%016" PRIx64 "%016" PRIx64,
		 sp->id, hi, lo);

	dec_item d;
	memset(&d, 0, sizeof d);
	memcpy(d.id, out->decision_id, sizeof d.id);
	memcpy(d.campaign, sp->id, sizeof d.campaign);
	memcpy(d.arm, out->variant, sizeof d.arm);
	d.ts = out->ts;
	d.propensity = out->propensity;
	d.activate = req->activate;
	d.window_ms = sp->reward_window_ms;
	d.ttl_ms = req->activate ? sp->reward_window_ms + RECORD_SLACK_MS
				 : sp->activation_timeout_ms;
	d.n_ctx = req->n_context;
	for (size_t k = 0; k < req->n_context; k++) {
		snprintf(d.ctx_key[k], sizeof d.ctx_key[k], "%s", req->ctx_key[k]);
		int vl = (int)ls_utf8_cut(req->ctx_value[k], LS_CAMPAIGN_CTX_VALUE_MAX);
		snprintf(d.ctx_val[k], sizeof d.ctx_val[k], "%.*s", vl, req->ctx_value[k]);
	}
	ls_campaign_snap_release(sn);
	/* a bucket past the cap is not stored: the decision counts campaign-wide */
	const char *bucket = out->bucket_capped ? "" : out->bucket;
	size_t ll = strlen(req->lead_id), bl = strlen(bucket);
	d.lead = malloc(ll + 1 + bl + 1);
	if (d.lead == NULL)
		return LS_CAMPAIGN_INTERNAL;
	memcpy(d.lead, req->lead_id, ll + 1);
	memcpy(d.lead + ll + 1, bucket, bl + 1);
	d.bucket = d.lead + ll + 1;

	pthread_mutex_lock(&s->mu);
	if (s->nq >= MAX_QUEUE) {
		pthread_mutex_unlock(&s->mu);
		free(d.lead);
		atomic_fetch_add(&s->dropped, 1);
		return LS_CAMPAIGN_UNAVAILABLE;
	}
	if (s->nq == s->capq) {
		size_t cap = s->capq ? s->capq * 2 : 256;
		dec_item *nq = realloc(s->q, cap * sizeof *nq);
		if (nq == NULL) {
			pthread_mutex_unlock(&s->mu);
			free(d.lead);
			return LS_CAMPAIGN_INTERNAL;
		}
		s->q = nq;
		s->capq = cap;
	}
	s->q[s->nq++] = d;
	s->seq_queued++;
	if (s->writer_idle) {
		s->writer_idle = false; /* one wake is enough */
		pthread_cond_signal(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&s->decisions, 1);
	return LS_CAMPAIGN_OK;
}

/* Wait until every decision queued so far is written (or tried). */
static void wait_written(ls_campaign *s)
{
	pthread_mutex_lock(&s->mu);
	uint64_t want = s->seq_queued;
	if (s->seq_done < want) {
		s->flush_wanted = true;
		pthread_cond_signal(&s->wake);
	}
	while (s->seq_done < want && !s->stop)
		pthread_cond_wait(&s->written, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

/* max_buckets of campaign in the current snapshot; 0 (store no new
   bucket) for a campaign no longer configured. */
static long long campaign_max_buckets(ls_campaign *s, const char *campaign)
{
	snap *sn = ls_campaign_snap_take(s);
	const csnap *c = ls_campaign_snap_find(sn, campaign);
	long long m = c != NULL ? (long long)c->spec.max_buckets : 0;
	ls_campaign_snap_release(sn);
	return m;
}

/* Run a script for decision_id on c, the calling thread's connection. */
static int run_script(ls_campaign *s, redisContext *c, const char *decision_id,
		      bool activation, double reward, long long *reply)
{
	char campaign[LS_CAMPAIGN_ID_MAX];
	if (!parse_decision_id(decision_id, campaign))
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	wait_written(s);
	if (c == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	char record_key[LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
	char pending_key[LS_CAMPAIGN_ID_MAX + 256], counts_key[LS_CAMPAIGN_ID_MAX + 256];
	char now[24], rew[24];
	if (ls_campaign_decision_key(record_key, sizeof record_key, s->prefix, campaign,
				     decision_id) < 0 ||
	    ls_campaign_key(pending_key, sizeof pending_key, s->prefix, campaign, "pending") < 0 ||
	    ls_campaign_key(counts_key, sizeof counts_key, s->prefix, campaign, "counts") < 0)
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	snprintf(now, sizeof now, "%" PRId64, ls_clock_wall_ms());
	snprintf(rew, sizeof rew, "%lld", (long long)llround(reward * MICRO));
	redisReply *r;
	if (activation)
		r = redisCommand(c, "EVAL %s 2 %s %s %s %s", ls_campaign_act_script, record_key,
				 pending_key, now, decision_id);
	else
		r = redisCommand(c, "EVAL %s 3 %s %s %s %s %s %s r %lld", ls_campaign_rew_script,
				 record_key, counts_key, pending_key, now, rew, decision_id,
				 campaign_max_buckets(s, campaign));
	if (r == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	int rc = LS_CAMPAIGN_OK;
	if (r->type != REDIS_REPLY_INTEGER) {
		char q[300];
		ls_log(LS_LOG_WARN, COMPONENT, "script failed", "reply=%s",
		       ls_log_quote(r->type == REDIS_REPLY_ERROR ? r->str : "not an integer", q,
				    sizeof q));
		rc = LS_CAMPAIGN_UNAVAILABLE;
	} else {
		*reply = r->integer;
	}
	freeReplyObject(r);
	return rc;
}

int ls_campaign_activate(ls_campaign *s, redisContext *conn, const char *decision_id,
			 bool *already)
{
	long long x = 0;
	int rc = run_script(s, conn, decision_id, true, 0.0, &x);
	if (rc != LS_CAMPAIGN_OK)
		return rc;
	if (x < 0)
		return LS_CAMPAIGN_UNKNOWN_DECISION;
	*already = x == 0;
	return LS_CAMPAIGN_OK;
}

int ls_campaign_reward(ls_campaign *s, redisContext *conn, const char *decision_id,
		       double reward, bool *counted)
{
	if (!(reward >= 0.0 && reward <= 1.0))
		return LS_CAMPAIGN_BAD_REQUEST;
	long long x = 0;
	int rc = run_script(s, conn, decision_id, false, reward, &x);
	if (rc != LS_CAMPAIGN_OK)
		return rc;
	switch (x) {
	case 1:
	case 2:
		*counted = true;
		char campaign[LS_CAMPAIGN_ID_MAX];
		if (parse_decision_id(decision_id, campaign))
			ls_campaign_note_resolved(s, campaign);
		return LS_CAMPAIGN_OK;
	case 0: *counted = false; return LS_CAMPAIGN_OK;
	case -2: return LS_CAMPAIGN_NOT_ACTIVATED;
	case -3: return LS_CAMPAIGN_TOO_LATE;
	default: return LS_CAMPAIGN_UNKNOWN_DECISION;
	}
}

/* ---------------------------------------------------------- read API */

int ls_campaign_stats_get(ls_campaign *s, const char *campaign, ls_campaign_stats *out)
{
	memset(out, 0, sizeof *out);
	snap *sn = ls_campaign_snap_take(s);
	if (sn == NULL)
		return LS_CAMPAIGN_UNAVAILABLE;
	const csnap *c = ls_campaign_snap_find(sn, campaign);
	if (c == NULL) {
		ls_campaign_snap_release(sn);
		return LS_CAMPAIGN_UNKNOWN_CAMPAIGN;
	}
	size_t na = c->spec.n_arms;
	out->spec = c->spec;
	out->snapshot_ms = atomic_load(&sn->built_ms);
	out->decisions = atomic_load(&s->decisions);
	out->n_buckets = c->rows;
	out->buckets = calloc(c->rows, sizeof *out->buckets);
	if (out->buckets == NULL) {
		ls_campaign_snap_release(sn);
		return LS_CAMPAIGN_INTERNAL;
	}
	ls_rng *r = thread_rng();
	int rc = LS_CAMPAIGN_OK;
	for (size_t row = 0; row < c->rows && rc == LS_CAMPAIGN_OK; row++) {
		/* buckets in name order, campaign-wide first */
		size_t bi = row == 0 ? LS_BANDIT_CAMPAIGN : row - 1;
		ls_campaign_bucket_stats *b = &out->buckets[row];
		if (row > 0)
			snprintf(b->bucket, sizeof b->bucket, "%s", c->post.names[bi]);
		b->fallback = row > 0 && ls_bandit_uses_campaign(c->post.b, bi);
		b->trials = row == 0 ? 0 : ls_bandit_bucket_trials(c->post.b, bi);
		b->n_arms = na;
		ls_bandit_arm_stats st[LS_CAMPAIGN_MAX_ARMS];
		if (ls_bandit_stats(c->post.b, bi, r, STATS_DRAWS, st, LS_CAMPAIGN_MAX_ARMS) != LS_BANDIT_OK) {
			rc = LS_CAMPAIGN_INTERNAL;
			break;
		}
		size_t prow = row == 0 ? 0 : 1 + bi;
		if (b->fallback)
			prow = 0;
		for (size_t a = 0; a < na; a++) {
			memcpy(b->arms[a].variant, c->spec.arms[a], LS_CAMPAIGN_ID_MAX);
			b->arms[a].st = st[a];
			b->arms[a].probability = c->probs[prow * na + a];
			if (row == 0)
				b->trials += c->post.trials[a];
		}
		if (row > 0 && !b->fallback) {
			/* report the bucket's own counts, not the fallback's */
			b->trials = ls_bandit_bucket_trials(c->post.b, bi);
		}
	}
	ls_campaign_snap_release(sn);
	if (rc != LS_CAMPAIGN_OK) {
		free(out->buckets);
		out->buckets = NULL;
	}
	return rc;
}

/* ------------------------------------------------------ pipeline side */

int ls_campaign_event_op(const ls_campaign_settings *st, const ls_email_event *ev, int64_t ts,
			 ls_campaign_op *op, char *buf, size_t buflen)
{
	if (ev->decision_id == NULL || ev->decision_id[0] == '\0')
		return 0;
	char campaign[LS_CAMPAIGN_ID_MAX];
	if (!parse_decision_id(ev->decision_id, campaign))
		return 0;
	const ls_campaign_spec *sp = NULL;
	for (size_t i = 0; i < st->n_specs && sp == NULL; i++)
		if (strcmp(st->specs[i].id, campaign) == 0)
			sp = &st->specs[i];
	if (sp == NULL)
		return 0;
	bool activation = ev->type == LS_EMAIL_SENT;
	double w = activation ? 0.0 : sp->reward_weight[ev->type];
	if (!activation && w <= 0.0)
		return 0;
	/* everything the argv points to is laid out in buf */
	size_t used = 0;
	const char *parts[8];
	size_t lens[8];
	char keys[3][LS_DECISION_ID_MAX + LS_CAMPAIGN_ID_MAX + 256];
	if (ls_campaign_decision_key(keys[0], sizeof keys[0], st->key_prefix, campaign,
				     ev->decision_id) < 0 ||
	    ls_campaign_key(keys[1], sizeof keys[1], st->key_prefix, campaign, "counts") < 0 ||
	    ls_campaign_key(keys[2], sizeof keys[2], st->key_prefix, campaign, "pending") < 0)
		return -1;
	char args[3][24];
	snprintf(args[0], sizeof args[0], "%" PRId64, ts);
	snprintf(args[1], sizeof args[1], "%lld", (long long)llround(w * MICRO));
	snprintf(args[2], sizeof args[2], "%" PRId64, sp->max_buckets);
	size_t np = 0;
	parts[np++] = keys[0];
	if (!activation)
		parts[np++] = keys[1];
	parts[np++] = keys[2];
	parts[np++] = args[0];
	if (!activation)
		parts[np++] = args[1];
	parts[np++] = ev->decision_id;
	if (!activation) {
		parts[np++] = "r";
		parts[np++] = args[2];
	}
	const char *stored[8];
	for (size_t i = 0; i < np; i++) {
		lens[i] = strlen(parts[i]);
		if (used + lens[i] + 1 > buflen)
			return -1;
		memcpy(buf + used, parts[i], lens[i] + 1);
		stored[i] = buf + used;
		used += lens[i] + 1;
	}
	op->argc = 0;
	op->argv[op->argc] = "EVAL";
	op->argvlen[op->argc++] = 4;
	op->argv[op->argc] = activation ? ls_campaign_act_script : ls_campaign_rew_script;
	op->argvlen[op->argc++] = activation ? ls_campaign_act_script_len : ls_campaign_rew_script_len;
	op->argv[op->argc] = activation ? "2" : "3";
	op->argvlen[op->argc++] = 1;
	for (size_t i = 0; i < np; i++) {
		op->argv[op->argc] = stored[i];
		op->argvlen[op->argc++] = lens[i];
	}
	return 1;
}

/* ------------------------------------------------------------ metrics */

void ls_campaign_collect(ls_campaign *s, ls_campaign_collect_fn fn, void *ud)
{
	size_t n = atomic_load(&s->n_counters);
	for (size_t i = 0; i < n; i++)
		fn(ud, s->counters[i].campaign, s->counters[i].arm,
		   (double)atomic_load(&s->counters[i].decisions), NAN);
	snap *sn = ls_campaign_snap_take(s);
	for (size_t i = 0; sn != NULL && i < sn->n; i++) {
		const csnap *c = &sn->c[i];
		for (size_t a = 0; a < c->spec.n_arms; a++)
			fn(ud, c->spec.id, c->spec.arms[a], NAN, (double)c->post.rmicro[a] / MICRO);
	}
	ls_campaign_snap_release(sn);
}

void ls_campaign_collect_capped(ls_campaign *s, ls_campaign_collect_fn fn, void *ud)
{
	size_t n = atomic_load(&s->n_counters);
	for (size_t i = 0; i < n; i++)
		fn(ud, s->counters[i].campaign, s->counters[i].arm,
		   (double)atomic_load(&s->counters[i].capped), NAN);
}

long long ls_campaign_redis_memory(ls_campaign *s)
{
	return atomic_load(&s->redis_memory);
}
