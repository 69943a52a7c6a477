/*
 * leadscorectl_evaluate.c - `leadscorectl evaluate CAMPAIGN`.
 *
 * Its own file because it is a program of its own inside the tool: it
 * reads the decisions topic through Kafka and the bandit's Redis hashes
 * with a raw hiredis connection, where the other commands read one
 * lead's or model's state through ls_store. It shares only the JSON
 * helpers with them; main parses its options (leadscorectl.h).
 *
 * `evaluate` estimates offline what a target policy would have earned on
 * CAMPAIGN's logged decisions (models/ls_ope.h: IPS and SNIPS with 95 %
 * intervals, ESS, weights) next to the logging policy's own mean reward
 * on the same decisions. It reads kafka.topics.decisions from the start
 * of every partition to the high watermarks taken when it starts
 * (assigned, no consumer group, nothing committed; --timeout-ms, default
 * 30 s, bounds that), keeps CAMPAIGN's BanditDecisions (the propensity
 * is the logged one), and looks each up in Redis (<prefix>{bandit:C}:d:
 * <id>, HMGET in pipelined batches of 1,000): only resolved decisions
 * (st "2") count, with reward rw / 1e6; the others are counted by why in
 * "skipped". Targets: uniform over the configured arms (the default),
 * one arm, or the current posterior policy per decision bucket, from the
 * counts hash read once, with the campaign's prior, min_share and
 * min_bucket_trials (a thin bucket uses the campaign-wide counts, as the
 * daemon decides) and propensity_draws draws from a fixed seed. --clip W
 * caps the weights (0, the default, caps nothing). Nothing is written.
 * Exit 0, 1 for an I/O error (broker, topic, Redis), 2 for a usage error
 * or a campaign, arm, clip or timeout that is not valid.
 */

#include "leadscorectl.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <xxhash.h>

#include "ls_arena.h"
#include "ls_bandit.h"
#include "ls_campaign.h"
#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_kafka.h"
#include "ls_keys.h"
#include "ls_ope.h"
#include "ls_redis.h"
#include "ls_settings.h"

#define EVAL_BATCH 1000                 /* HMGETs per pipelined round trip */
#define EVAL_DEFAULT_TIMEOUT_MS 30000
#define EVAL_MAX_TIMEOUT_MS 86400000
#define EVAL_POLL_MS 200
#define EVAL_MICRO 1000000.0
/* The posterior target's Monte Carlo draws are seeded with this (mixed
   with the bucket's name), so the same counts give the same vector. */
#define EVAL_SEED UINT64_C(0x65766f6c75617465)

/* Why a logged decision of the campaign is not evaluated; EVAL_USED when
   it is. Order = the order of the "skipped" keys in the output. */
typedef enum eval_state {
	EVAL_USED = 0,
	EVAL_DUPLICATE,      /* its decision_id was logged before */
	EVAL_RETIRED_ARM,    /* the arm is no longer configured */
	EVAL_NO_RECORD,      /* no Redis record: expired, or never activated */
	EVAL_NOT_ACTIVATED,  /* st "0" */
	EVAL_UNRESOLVED,     /* st "1": active, no reward yet */
	EVAL_BAD_RECORD,     /* a Redis record that does not match the log */
	EVAL_REJECTED,       /* ls_ope refused it: propensity or reward out of range */
	EVAL__COUNT
} eval_state;

static const char *const eval_state_names[EVAL__COUNT] = {
	"used", "duplicate", "arm_not_configured", "no_record", "not_activated",
	"unresolved", "bad_record", "rejected",
};

/* One decision of the campaign from the log. */
typedef struct eval_decision {
	char *id;      /* decision_id, malloc'd */
	int arm;       /* index into the spec's arms; -1: not configured */
	double p;      /* logged propensity */
	double r;      /* reward, once resolved */
	char *bucket;  /* the Redis record's bkt, once resolved; malloc'd */
	eval_state state;
} eval_decision;

typedef struct eval_log {
	eval_decision *d;
	size_t n, cap;
	uint64_t records_read; /* every record up to the high watermarks */
	uint64_t undecodable;  /* of those, not a BanditDecision */
} eval_log;

static void eval_log_free(eval_log *log)
{
	for (size_t i = 0; i < log->n; i++) {
		free(log->d[i].id);
		free(log->d[i].bucket);
	}
	free(log->d);
	memset(log, 0, sizeof *log);
}

static int arm_of(const ls_campaign_spec *sp, const char *arm)
{
	for (size_t i = 0; i < sp->n_arms; i++)
		if (strcmp(sp->arms[i], arm) == 0)
			return (int)i;
	return -1;
}

static int eval_log_add(eval_log *log, const ls_campaign_spec *sp,
			const ls_bandit_decision *bd)
{
	if (log->n == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 1024;
		eval_decision *d = realloc(log->d, cap * sizeof *d);
		if (d == NULL)
			return -1;
		log->d = d;
		log->cap = cap;
	}
	eval_decision *e = &log->d[log->n];
	memset(e, 0, sizeof *e);
	e->id = strdup(bd->decision_id);
	if (e->id == NULL)
		return -1;
	e->arm = arm_of(sp, bd->variant_id);
	e->p = bd->propensity;
	e->state = e->arm < 0 ? EVAL_RETIRED_ARM : EVAL_USED;
	log->n++;
	return 0;
}


/* Milliseconds left before deadline, at least 1 so librdkafka calls that
   take 0 as "do not wait" still make one attempt. */
static int ms_left(int64_t deadline)
{
	int64_t left = deadline - ls_clock_mono_ms();
	return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Read the decisions topic from each partition's start to its high
 * watermark as of now (assign, not subscribe: no consumer group is joined
 * and no offset is committed) and keep the decisions of sp's campaign.
 * Records produced after the watermarks were taken are left for the next
 * run. 0, or -1 with a reason in err (the broker unreachable, the topic
 * missing, the deadline passed before the watermarks were reached).
 */
static int eval_read_log(const ls_config *cfg, const ls_campaign_spec *sp,
			 int64_t timeout_ms, eval_log *log, char *err, size_t errlen)
{
	const char *topic = cfg->kafka.topics.decisions;
	int64_t deadline = ls_clock_mono_ms() + timeout_ms;
	ls_kafka_settings ks = ls_settings_kafka(cfg);
	rd_kafka_conf_t *conf = ls_kafka_conf_new(&ks, true, err, errlen);
	if (conf == NULL)
		return -1;
	/* librdkafka wants a group.id even to assign(); this one never joins
	   (no subscribe) or commits, and is not the daemon's group */
	char why[512], group[512];
	snprintf(group, sizeof group, "%s.leadscorectl-evaluate", cfg->kafka.group_id);
	if (rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
	if (rk == NULL) {
		snprintf(err, errlen, "kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_poll_set_consumer(rk);
	int rc = -1;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *parts = NULL;
	int64_t *high = NULL;
	ls_codec *codec = NULL;
	ls_arena arena;
	ls_arena_init(&arena, 0);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (rkt == NULL) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		goto out;
	}
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, ms_left(deadline));
	rd_kafka_topic_destroy(rkt);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: metadata of %s: %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: topic %s: %s", topic,
			 rd_kafka_err2str(md->topic_cnt == 1 ? md->topics[0].err
							     : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto out;
	}
	int np = md->topics[0].partition_cnt;
	int32_t max_id = -1;
	for (int i = 0; i < np; i++)
		if (md->topics[0].partitions[i].id > max_id)
			max_id = md->topics[0].partitions[i].id;
	high = calloc((size_t)max_id + 2, sizeof *high);
	parts = rd_kafka_topic_partition_list_new(np > 0 ? np : 1);
	codec = ls_codec_new(err, errlen);
	if (high == NULL || parts == NULL || codec == NULL) {
		if (codec != NULL)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	int open = 0; /* partitions not yet read to their high watermark */
	for (int i = 0; i < np; i++) {
		int32_t id = md->topics[0].partitions[i].id;
		int64_t lo, hi;
		e = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, ms_left(deadline));
		if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
			snprintf(err, errlen, "kafka: watermarks of %s:%" PRId32 ": %s", topic, id,
				 rd_kafka_err2str(e));
			goto out;
		}
		high[id] = hi;
		if (hi > lo) {
			rd_kafka_topic_partition_list_add(parts, topic, id)->offset = lo;
			open++;
		}
	}
	e = rd_kafka_assign(rk, parts);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "kafka: assign %s: %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	char last_err[256] = "";
	while (open > 0) {
		if (ls_clock_mono_ms() >= deadline) {
			snprintf(err, errlen,
				 "kafka: timed out reading %s to its end (%d partitions left, %" PRIu64
				 " records read%s%s)", topic, open, log->records_read,
				 last_err[0] ? "; last error: " : "", last_err);
			goto out;
		}
		int wait = ms_left(deadline);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, wait < EVAL_POLL_MS ? wait : EVAL_POLL_MS);
		if (m == NULL)
			continue;
		int32_t id = m->partition;
		bool known = m->rkt != NULL && id >= 0 && id <= max_id &&
			     strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			/* at the partition's end as of now: at or past the
			   watermark (before it only with isolation.level
			   read_committed and a transaction still open) */
			if (known && high[id] >= 0) {
				high[id] = -1;
				open--;
			}
		} else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
			/* transient (a broker restarting) until the deadline says otherwise */
			snprintf(last_err, sizeof last_err, "%s", rd_kafka_message_errstr(m));
		} else if (known && high[id] >= 0 && m->offset < high[id]) {
			log->records_read++;
			ls_bandit_decision bd;
			ls_codec_error ce;
			ls_arena_reset(&arena);
			if (ls_codec_decode_bandit_decision(codec, m->payload, m->len, &arena, &bd, &ce) != 0) {
				if (ce.reason == LS_CODEC_INTERNAL) {
					snprintf(err, errlen, "decoding: %s", ce.detail);
					rd_kafka_message_destroy(m);
					goto out;
				}
				log->undecodable++;
			} else if (strcmp(bd.campaign_id, sp->id) == 0 &&
				   eval_log_add(log, sp, &bd) != 0) {
				snprintf(err, errlen, "out of memory");
				rd_kafka_message_destroy(m);
				goto out;
			}
			if (m->offset + 1 >= high[id]) {
				high[id] = -1;
				open--;
			}
		} else if (known && high[id] >= 0) {
			/* past the watermark: an offset gap (compaction, a
			   transaction marker) ended the range */
			high[id] = -1;
			open--;
		}
		rd_kafka_message_destroy(m);
	}
	rc = 0;
out:
	ls_arena_free(&arena);
	ls_codec_free(codec);
	if (parts != NULL)
		rd_kafka_topic_partition_list_destroy(parts);
	free(high);
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	return rc;
}

static int by_id(const void *a, const void *b)
{
	const eval_decision *x = a, *y = b;
	return strcmp(x->id, y->id);
}

/* A decision logged twice (a producer retry) is one decision: keep the
   first of each id after sorting, mark the others. */
static void eval_dedupe(eval_log *log)
{
	if (log->n > 1)
		qsort(log->d, log->n, sizeof *log->d, by_id);
	for (size_t i = 1; i < log->n; i++)
		if (strcmp(log->d[i].id, log->d[i - 1].id) == 0)
			log->d[i].state = EVAL_DUPLICATE;
}

static bool reply_str(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_STRING;
}

/* Classify d from its HMGET st arm bkt rw reply. */
static int eval_classify(const ls_campaign_spec *sp, eval_decision *d, const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		d->state = EVAL_BAD_RECORD; /* WRONGTYPE: not a decision's hash */
		return 0;
	}
	const redisReply *st = r->element[0], *arm = r->element[1], *bkt = r->element[2],
			 *rw = r->element[3];
	if (st->type == REDIS_REPLY_NIL) {
		d->state = EVAL_NO_RECORD;
		return 0;
	}
	if (!reply_str(st) || !reply_str(arm) || strcmp(arm->str, sp->arms[d->arm]) != 0) {
		d->state = EVAL_BAD_RECORD;
		return 0;
	}
	if (strcmp(st->str, "0") == 0) {
		d->state = EVAL_NOT_ACTIVATED;
		return 0;
	}
	if (strcmp(st->str, "2") != 0) {
		d->state = strcmp(st->str, "1") == 0 ? EVAL_UNRESOLVED : EVAL_BAD_RECORD;
		return 0;
	}
	char *end = NULL;
	long long micro = reply_str(rw) ? strtoll(rw->str, &end, 10) : -1;
	if (!reply_str(rw) || end == rw->str || *end != '\0' || !reply_str(bkt)) {
		d->state = EVAL_BAD_RECORD;
		return 0;
	}
	/* out of [0,1]: left to ls_ope, which rejects and counts it */
	d->r = (double)micro / EVAL_MICRO;
	d->bucket = strdup(bkt->str);
	if (d->bucket == NULL)
		return -1;
	d->state = EVAL_USED;
	return 0;
}

/*
 * Look up every decision still EVAL_USED in Redis, EVAL_BATCH HMGETs per
 * pipelined round trip, and classify it by its record. 0, or -1 with a
 * reason (I/O, out of memory).
 */
static int eval_fetch(redisContext *rc, const char *prefix, const ls_campaign_spec *sp,
		      eval_log *log, char *err, size_t errlen)
{
	char key[KEY_MAX];
	size_t *idx = malloc(EVAL_BATCH * sizeof *idx);
	if (idx == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rcode = -1;
	for (size_t start = 0; start < log->n;) {
		size_t nb = 0;
		for (; start < log->n && nb < EVAL_BATCH; start++) {
			eval_decision *d = &log->d[start];
			if (d->state != EVAL_USED)
				continue;
			if (strlen(d->id) >= LS_DECISION_ID_MAX ||
			    ls_keys_bandit_decision(key, sizeof key, prefix, sp->id, d->id) < 0) {
				d->state = EVAL_BAD_RECORD; /* not an id the daemon makes */
				continue;
			}
			const char *argv[6] = { "HMGET", key, "st", "arm", "bkt", "rw" };
			size_t lens[6] = { 5, strlen(key), 2, 3, 3, 2 };
			if (redisAppendCommandArgv(rc, 6, argv, lens) != REDIS_OK) {
				snprintf(err, errlen, "redis: %s", rc->errstr);
				goto out;
			}
			idx[nb++] = start;
		}
		for (size_t k = 0; k < nb; k++) {
			redisReply *r = NULL;
			if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
				snprintf(err, errlen, "redis: %s", rc->err ? rc->errstr : "no reply");
				goto out;
			}
			int c = eval_classify(sp, &log->d[idx[k]], r);
			freeReplyObject(r);
			if (c != 0) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
	}
	rcode = 0;
out:
	free(idx);
	return rcode;
}

/* The posterior target: one probability vector per bucket of the
   evaluated decisions, names sorted for bsearch. */
typedef struct eval_posterior {
	size_t n_arms;
	size_t n;        /* buckets, names[0] = "" when used */
	char **names;    /* borrowed from the decisions */
	double *probs;   /* n * n_arms */
} eval_posterior;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void eval_posterior_free(eval_posterior *ep)
{
	free(ep->names);
	free(ep->probs);
	memset(ep, 0, sizeof *ep);
}

static const double *eval_posterior_vector(const eval_posterior *ep, const char *bucket)
{
	char *const *hit = bsearch(&bucket, ep->names, ep->n, sizeof *ep->names, cmp_str);
	return hit != NULL ? &ep->probs[(size_t)(hit - ep->names) * ep->n_arms] : NULL;
}

/*
 * Build the current posterior policy for every bucket the evaluated
 * decisions were made in: the counts hash read once (HGETALL, so every
 * bucket sees one moment) and read as the daemon reads it
 * (ls_campaign_posterior_load: a thin bucket, or one beyond max_buckets,
 * falls back to the campaign-wide counts exactly as decisions do), and
 * each bucket's vector from propensity_draws draws with a fixed seed.
 * 0, or -1 with a reason.
 */
static int eval_posterior_build(redisContext *rc, const char *prefix,
				const ls_campaign_spec *sp, const eval_log *log,
				eval_posterior *ep, char *err, size_t errlen)
{
	memset(ep, 0, sizeof *ep);
	size_t na = sp->n_arms;
	ep->n_arms = na;
	ep->names = malloc((log->n ? log->n : 1) * sizeof *ep->names);
	if (ep->names == NULL)
		goto nomem;
	for (size_t i = 0; i < log->n; i++)
		if (log->d[i].state == EVAL_USED)
			ep->names[ep->n++] = log->d[i].bucket;
	if (ep->n > 1)
		qsort(ep->names, ep->n, sizeof *ep->names, cmp_str);
	size_t w = 0;
	for (size_t i = 0; i < ep->n; i++)
		if (w == 0 || strcmp(ep->names[w - 1], ep->names[i]) != 0)
			ep->names[w++] = ep->names[i];
	ep->n = w;
	char key[KEY_MAX];
	if (ls_keys_bandit(key, sizeof key, prefix, sp->id, LS_KEYS_BANDIT_COUNTS) < 0) {
		snprintf(err, errlen, "key prefix too long");
		return -1;
	}
	ep->probs = calloc((ep->n ? ep->n : 1) * na, sizeof *ep->probs);
	if (ep->probs == NULL)
		goto nomem;
	int rcode = -1;
	ls_campaign_posterior post = { 0 };
	redisReply *h = redisCommand(rc, "HGETALL %s", key);
	if (h == NULL || h->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "redis: HGETALL %s: %s", key,
			 h == NULL ? rc->errstr : h->type == REDIS_REPLY_ERROR ? h->str : "not a hash");
		goto out;
	}
	/* the daemon's own reading of the counters: same buckets, same cap */
	if (ls_campaign_posterior_load(sp, h, &post) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ep->n; i++) {
		ls_rng rng;
		ls_rng_seed(&rng, EVAL_SEED ^ XXH3_64bits(ep->names[i], strlen(ep->names[i])));
		size_t bucket = ep->names[i][0] == '\0'
					? LS_BANDIT_CAMPAIGN
					: ls_campaign_posterior_bucket(&post, ep->names[i]);
		if (bucket == SIZE_MAX)
			bucket = LS_BANDIT_CAMPAIGN; /* no counts of its own: decides campaign-wide */
		int c = ls_bandit_probabilities(post.b, bucket, &rng, &ep->probs[i * na], na);
		if (c != LS_BANDIT_OK) {
			snprintf(err, errlen, "bandit probabilities: %s", ls_bandit_result_str(c));
			goto out;
		}
	}
	rcode = 0;
out:
	ls_campaign_posterior_free(&post);
	if (h != NULL)
		freeReplyObject(h);
	return rcode;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static json_t *json_estimate(const ls_ope_estimate *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "value", json_num(e->value));
	json_object_set_new(o, "se", json_num(e->se));
	json_object_set_new(o, "ci95", json_pack("[oo]", json_num(e->ci_low), json_num(e->ci_high)));
	return o;
}

int cmd_evaluate(const ls_config *cfg, const eval_opts *eo)
{
	char err[1024];
	const ls_campaign_spec *sp = eo->sp;
	eval_log log = { 0 };
	eval_posterior ep = { 0 };
	redisContext *rc = NULL;
	ls_redis_target target = { 0 };
	int rcode = 1;
	if (eval_read_log(cfg, sp, eo->timeout_ms, &log, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	eval_dedupe(&log);
	if (ls_redis_url_parse(cfg->redis.url, &target, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: redis: %s\n", err);
		goto out;
	}
	rc = ls_redis_connect(&target, cfg->redis.connect_timeout_ms,
			      cfg->redis.command_timeout_ms, err, sizeof err);
	if (rc == NULL || eval_fetch(rc, cfg->redis.key_prefix, sp, &log, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s%s\n", rc == NULL ? "redis: " : "", err);
		goto out;
	}
	if (eo->target == EVAL_POSTERIOR &&
	    eval_posterior_build(rc, cfg->redis.key_prefix, sp, &log, &ep, err, sizeof err) != 0) {
		fprintf(stderr, "leadscorectl: %s\n", err);
		goto out;
	}
	ls_ope acc, on;
	if (ls_ope_init(&acc, eo->clip) != LS_OPE_OK || ls_ope_init(&on, 0) != LS_OPE_OK) {
		fprintf(stderr, "leadscorectl: bad clip\n");
		goto out;
	}
	uint64_t counts[EVAL__COUNT] = { 0 };
	for (size_t i = 0; i < log.n; i++) {
		eval_decision *d = &log.d[i];
		if (d->state == EVAL_USED) {
			/* NaN if a helper refuses (it cannot here): then rejected, not 0 */
			double pi = NAN;
			size_t arm = (size_t)d->arm;
			if (eo->target == EVAL_UNIFORM)
				(void)ls_ope_target_uniform(sp->n_arms, &pi);
			else if (eo->target == EVAL_ARM)
				(void)ls_ope_target_fixed(sp->n_arms, eo->target_arm, arm, &pi);
			else
				(void)ls_ope_target_vector(eval_posterior_vector(&ep, d->bucket),
							   sp->n_arms, arm, &pi);
			/* the logging policy's own value: pi = p, every weight 1 */
			if (ls_ope_add(&acc, d->p, d->r, pi) == LS_OPE_OK)
				(void)ls_ope_add(&on, d->p, d->r, d->p);
			else
				d->state = EVAL_REJECTED;
		}
		counts[d->state]++;
	}
	ls_ope_result res, onres;
	(void)ls_ope_finish(&acc, &res); /* LS_OPE_ERR_EMPTY still fills it */
	(void)ls_ope_finish(&on, &onres);

	json_t *o = json_object();
	json_object_set_new(o, "campaign", json_string(sp->id));
	json_object_set_new(o, "topic", json_string(cfg->kafka.topics.decisions));
	json_object_set_new(o, "target", json_string(eo->target_name));
	json_object_set_new(o, "clip", eo->clip > 0 ? json_real(eo->clip) : json_null());
	json_t *arms = json_array();
	for (size_t i = 0; i < sp->n_arms; i++)
		json_array_append_new(arms, json_string(sp->arms[i]));
	json_object_set_new(o, "arms", arms);
	json_object_set_new(o, "records_read", json_integer((json_int_t)log.records_read));
	json_object_set_new(o, "undecodable", json_integer((json_int_t)log.undecodable));
	json_object_set_new(o, "logged", json_integer((json_int_t)log.n));
	json_object_set_new(o, "n", json_integer((json_int_t)res.n));
	json_t *sk = json_object();
	for (int s = EVAL_USED + 1; s < EVAL__COUNT; s++)
		json_object_set_new(sk, eval_state_names[s], json_integer((json_int_t)counts[s]));
	json_object_set_new(o, "skipped", sk);
	json_object_set_new(o, "ips", json_estimate(&res.ips));
	json_object_set_new(o, "snips", json_estimate(&res.snips));
	json_object_set_new(o, "logging_policy", json_estimate(&onres.ips));
	json_object_set_new(o, "ess", json_num(res.ess));
	json_object_set_new(o, "mean_weight", json_num(res.mean_weight));
	json_object_set_new(o, "max_weight", json_num(res.max_weight));
	json_object_set_new(o, "max_raw_weight", json_num(res.max_raw_weight));
	json_object_set_new(o, "n_clipped", json_integer((json_int_t)res.n_clipped));
	if (eo->target == EVAL_POSTERIOR) {
		json_t *tp = json_object();
		for (size_t i = 0; i < ep.n; i++) {
			json_t *v = json_object();
			for (size_t a = 0; a < sp->n_arms; a++)
				json_object_set_new(v, sp->arms[a], json_real(ep.probs[i * sp->n_arms + a]));
			json_object_set_new(tp, ep.names[i], v);
		}
		json_object_set_new(o, "target_probabilities", tp);
	}
	rcode = print_json(o);
out:
	if (rc != NULL)
		redisFree(rc);
	ls_redis_target_free(&target);
	eval_posterior_free(&ep);
	eval_log_free(&log);
	return rcode;
}

/*
 * Check evaluate's arguments against cfg: 0 with *eo filled, or 2 (a usage
 * error) with a message on stderr.
 */
int eval_parse(const ls_config *cfg, const char *campaign, const char *target,
	       const char *clip, const char *timeout, eval_opts *eo)
{
	memset(eo, 0, sizeof *eo);
	for (size_t i = 0; i < cfg->campaigns.n && eo->sp == NULL; i++)
		if (strcmp(cfg->campaigns.specs[i].id, campaign) == 0)
			eo->sp = &cfg->campaigns.specs[i];
	if (eo->sp == NULL) {
		fprintf(stderr, "leadscorectl: campaign '%s' is not configured\n", campaign);
		return 2;
	}
	eo->target_name = target != NULL ? target : "uniform";
	if (strcmp(eo->target_name, "uniform") == 0) {
		eo->target = EVAL_UNIFORM;
	} else if (strcmp(eo->target_name, "posterior") == 0) {
		eo->target = EVAL_POSTERIOR;
	} else if (strncmp(eo->target_name, "arm:", 4) == 0) {
		int a = arm_of(eo->sp, eo->target_name + 4);
		if (a < 0) {
			fprintf(stderr, "leadscorectl: campaign '%s' has no arm '%s'\n", campaign,
				eo->target_name + 4);
			return 2;
		}
		eo->target = EVAL_ARM;
		eo->target_arm = (size_t)a;
	} else {
		fprintf(stderr, "leadscorectl: --target must be uniform, arm:VARIANT or "
				"posterior, not '%s'\n", eo->target_name);
		return 2;
	}
	if (clip != NULL) {
		char *end;
		eo->clip = strtod(clip, &end);
		if (end == clip || *end != '\0' || !(eo->clip >= 0) || eo->clip > LS_OPE_MAX_WEIGHT) {
			fprintf(stderr, "leadscorectl: --clip must be a weight >= 0 (0: none), "
					"not '%s'\n", clip);
			return 2;
		}
	}
	eo->timeout_ms = EVAL_DEFAULT_TIMEOUT_MS;
	if (timeout != NULL) {
		char *end;
		long long t = strtoll(timeout, &end, 10);
		if (end == timeout || *end != '\0' || t <= 0 || t > EVAL_MAX_TIMEOUT_MS) {
			fprintf(stderr, "leadscorectl: --timeout-ms must be 1..%d, not '%s'\n",
				EVAL_MAX_TIMEOUT_MS, timeout);
			return 2;
		}
		eo->timeout_ms = t;
	}
	return 0;
}
