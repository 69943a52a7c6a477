/*
 * ls_dlq.c - dead-letter production, apart from the loop.
 *
 * Why a seam: what a dead letter is (its headers, how it is cut to fit
 * the producer's and the broker's limits, how its log lines are rate
 * limited) is about Kafka's record limits, not about the batch; the loop
 * only asks for one to be queued, and before committing checks that the
 * flush left no delivery error. The delivery reports of the ScoreChanges
 * the scorer produces on the same handle are told apart by the message
 * opaque.
 */
#include "ls_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_clock.h"

/*
 * The message opaque is a tag, not a pointer: odd, the kind in bit 1 (a
 * dead letter, or a ScoreChange produced by the scorer with
 * ls_dlq_score_opaque()) and the generation above, so a delivery report
 * says which kind failed and whose commit it holds up. A report of a
 * generation given up (ls_dlq_abandon) counts for nothing.
 */
static void *tag(unsigned gen, bool dead_letter)
{
	return (void *)(((uintptr_t)gen << 2) | (dead_letter ? 2u : 0u) | 1u);
}

static bool is_dead_letter(const void *opaque)
{
	uintptr_t v = (uintptr_t)opaque;
	return (v & 1u) != 0 && (v & 2u) != 0;
}

/* The counters' slot of the generation opaque was produced in, if it is
 * one of the two that count. */
static bool tag_slot(const ls_dlq *d, const void *opaque, unsigned *slot)
{
	uintptr_t v = (uintptr_t)opaque;
	if ((v & 1u) == 0)
		return false;
	unsigned gen = (unsigned)(v >> 2);
	if (gen != d->gen && gen != d->gen - 1u)
		return false;
	*slot = gen & 1u;
	return true;
}

void ls_dlq_abandon(ls_dlq *d)
{
	d->gen += 2;
	memset(d->sent, 0, sizeof d->sent);
	memset(d->reported, 0, sizeof d->reported);
	memset(d->failed, 0, sizeof d->failed);
}

unsigned ls_dlq_close_gen(ls_dlq *d, uint64_t n_scores)
{
	unsigned closed = d->gen;
	d->sent[closed & 1] += n_scores;
	d->gen++;
	unsigned s = d->gen & 1;
	d->sent[s] = d->reported[s] = d->failed[s] = 0;
	return closed;
}

bool ls_dlq_gen_done(const ls_dlq *d, unsigned gen, bool *failed)
{
	*failed = d->failed[gen & 1] > 0;
	return d->reported[gen & 1] >= d->sent[gen & 1];
}

void *ls_dlq_score_opaque(const ls_dlq *d) { return tag(d->gen, false); }

/* librdkafka counts a record's framing against message.max.bytes (under
 * 64 bytes; see LS_CONFIG_DLQ_RESERVE), and a record batch adds 61. */
#define DLQ_FRAMING 128

/* Errors that sending the same record again can never fix. */
static bool too_large(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

static int redeliver_truncated(ls_dlq *d, const rd_kafka_message_t *m);

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	ls_dlq *d = opaque;
	bool dead_letter = is_dead_letter(m->_private);
	unsigned slot = 0;
	bool counted = tag_slot(d, m->_private, &slot);
	if (counted)
		d->reported[slot]++;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (too_large(m->err)) {
		/* the broker's limit is below the producer's: a dead letter
		 * goes again, smaller; a ScoreChange is skipped for good */
		if (dead_letter && redeliver_truncated(d, m) == 0)
			return;
		if (!dead_letter) {
			d->skipped++;
			ls_log(LS_LOG_WARN, "pipeline", "score change too large for the broker, skipped",
			       "error=%s bytes=%zu", rd_kafka_err2name(m->err), m->len);
			return;
		}
	}
	d->delivery_errors++;
	if (counted)
		d->failed[slot]++;
	ls_log(LS_LOG_ERROR, "pipeline",
	       dead_letter ? "dead letter not delivered" : "score change not delivered",
	       "error=%s", rd_kafka_err2name(m->err));
}

/* Bytes librdkafka counts for a header: its name, value and two varints. */
static size_t header_size(const char *name, size_t value_len)
{
	return strlen(name) + value_len + 10;
}

/* The longest a dead letter's key and value may be together. */
static size_t dlq_room(const ls_dlq *d, size_t headers)
{
	return d->max > headers + DLQ_FRAMING ? d->max - headers - DLQ_FRAMING : 0;
}

/*
 * Cut key and value to room: the key first to pipeline.max_id_bytes (past
 * that it is no id of ours), then the value to what is left. Returns the
 * ls.truncated header value, or NULL when both fit whole.
 */
static const char *fit_dead_letter(size_t room, size_t max_id, size_t *klen, size_t *vlen)
{
	if (*klen + *vlen <= room)
		return NULL;
	bool cut_key = false;
	if (*klen > max_id) {
		*klen = max_id;
		cut_key = true;
	}
	if (*klen > room) {
		*klen = room;
		cut_key = true;
	}
	bool cut_value = false;
	if (*klen + *vlen > room) {
		*vlen = room - *klen;
		cut_value = true;
	}
	return cut_key && cut_value ? "key,value" : cut_key ? "key" : cut_value ? "value" : NULL;
}

static void log_dead_letter(ls_dlq *d, const char *topic, int32_t partition,
			    int64_t offset, const char *reason, const char *detail,
			    const char *truncated)
{
	uint64_t rate = (uint64_t)d->log_rate, left_out = 0;
	bool log = ls_log_limit_allow(&d->log, ls_clock_mono_ms(), rate, &left_out);
	if (left_out > 0)
		ls_log(LS_LOG_WARN, "pipeline", "dead letters not logged",
		       "suppressed=%" PRIu64 " rate=%" PRIu64, left_out, rate);
	if (!log)
		return;
	char q[400];
	ls_log(LS_LOG_WARN, "pipeline", "dead-lettered",
	       "topic=%s partition=%" PRId32 " offset=%" PRId64 " reason=%s detail=%s truncated=%s",
	       topic, partition, offset, reason, ls_log_quote(detail, q, sizeof q),
	       truncated != NULL ? truncated : "no");
}

/*
 * Queue a dead letter of m. Anything about the record itself is
 * permanent and handled here (a copy too large to produce is truncated),
 * so only a producer that stays full for 30 s or a broken producer fails
 * (-1): that is transient, the batch is replayed.
 */
int ls_dlq_send(ls_dlq *d, const rd_kafka_message_t *m,
		 const char *topic, int reason, const char *detail)
{
	char part[16], off[24], vsize[24], ksize[24], det[256];
	const char *rname = ls_pipeline_dlq_reason_name(reason);
	size_t klen = m->key != NULL ? m->key_len : 0, vlen = m->payload != NULL ? m->len : 0;
	snprintf(part, sizeof part, "%" PRId32, m->partition);
	snprintf(off, sizeof off, "%" PRId64, m->offset);
	snprintf(vsize, sizeof vsize, "%zu", vlen);
	snprintf(ksize, sizeof ksize, "%zu", klen);
	snprintf(det, sizeof det, "%s", detail);
	size_t headers = header_size("ls.reason", strlen(rname)) +
			 header_size("ls.detail", strlen(det)) +
			 header_size("ls.source.topic", strlen(topic)) +
			 header_size("ls.source.partition", strlen(part)) +
			 header_size("ls.source.offset", strlen(off)) +
			 header_size("ls.truncated", 9) +
			 header_size("ls.original_size", strlen(vsize)) +
			 header_size("ls.original_key_size", strlen(ksize));
	size_t room = dlq_room(d, headers);
	size_t max_id = d->max_id;
	int64_t full_since = 0;
	for (;;) {
		size_t k = klen, v = vlen;
		const char *cut = fit_dead_letter(room, max_id, &k, &v);
		rd_kafka_headers_t *h = rd_kafka_headers_new(8);
		if (h == NULL)
			return -1;
		rd_kafka_header_add(h, "ls.reason", -1, rname, -1);
		rd_kafka_header_add(h, "ls.detail", -1, det, -1);
		rd_kafka_header_add(h, "ls.source.topic", -1, topic, -1);
		rd_kafka_header_add(h, "ls.source.partition", -1, part, -1);
		rd_kafka_header_add(h, "ls.source.offset", -1, off, -1);
		if (cut != NULL) {
			rd_kafka_header_add(h, "ls.truncated", -1, cut, -1);
			rd_kafka_header_add(h, "ls.original_size", -1, vsize, -1);
			if (k < klen)
				rd_kafka_header_add(h, "ls.original_key_size", -1, ksize, -1);
		}
		rd_kafka_resp_err_t e = rd_kafka_producev(
			d->rk, RD_KAFKA_V_TOPIC(d->topic),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(m->key, k), RD_KAFKA_V_VALUE(m->payload, v),
			RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(tag(d->gen, true)), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			d->in_batch++;
			d->sent[d->gen & 1]++;
			d->st->dead_lettered[reason]++;
			if (cut != NULL)
				d->st->dead_letters_truncated++;
			log_dead_letter(d, topic, m->partition, m->offset, rname, det, cut);
			return 0;
		}
		rd_kafka_headers_destroy(h); /* still ours when producev fails */
		if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && room > 0) {
			room /= 2; /* our reckoning of librdkafka's was short */
			continue;
		}
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			/* transient: let deliveries drain the queue */
			int64_t now = ls_clock_mono_ms();
			if (full_since == 0)
				full_since = now;
			if (now - full_since < 30000) {
				rd_kafka_poll(d->rk, 100);
				continue;
			}
		}
		ls_log(LS_LOG_ERROR, "pipeline", "cannot queue dead letter",
		       "error=%s", rd_kafka_err2name(e));
		return -1;
	}
}

/*
 * The broker refused dead letter m as too large (its limit is below the
 * producer's message.max.bytes): send it again with the value cut to a
 * quarter and the key to pipeline.max_id_bytes, its headers kept. Called
 * from a delivery report; the flush that served it waits for this one
 * too. 0, or -1 when it cannot get any smaller or cannot be queued.
 */
static int redeliver_truncated(ls_dlq *d, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *old = NULL;
	if (rd_kafka_message_headers(m, &old) != RD_KAFKA_RESP_ERR_NO_ERROR)
		old = NULL;
	size_t max_id = d->max_id;
	size_t klen = m->key != NULL ? m->key_len : 0, vlen = m->len / 4;
	bool cut_key = klen > max_id;
	if (cut_key)
		klen = max_id;
	if (vlen == m->len && !cut_key)
		return -1;
	const void *val;
	size_t sz;
	bool first_cut = old == NULL || rd_kafka_header_get_last(old, "ls.truncated", &val, &sz) !=
						RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_headers_t *h = old != NULL ? rd_kafka_headers_copy(old) : rd_kafka_headers_new(8);
	if (h == NULL)
		return -1;
	char n[24];
	/* the sizes of the original record, if an earlier cut has not said them */
	if (rd_kafka_header_get_last(h, "ls.original_size", &val, &sz) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(n, sizeof n, "%zu", m->len);
		rd_kafka_header_add(h, "ls.original_size", -1, n, -1);
	}
	bool key_was_cut = rd_kafka_header_get_last(h, "ls.original_key_size", &val, &sz) ==
			   RD_KAFKA_RESP_ERR_NO_ERROR;
	if (cut_key && !key_was_cut) {
		snprintf(n, sizeof n, "%zu", m->key_len);
		rd_kafka_header_add(h, "ls.original_key_size", -1, n, -1);
	}
	rd_kafka_header_remove(h, "ls.truncated");
	rd_kafka_header_add(h, "ls.truncated", -1,
			    cut_key || key_was_cut ? "key,value" : "value", -1);
	rd_kafka_resp_err_t e = rd_kafka_producev(
		d->rk, RD_KAFKA_V_TOPIC(d->topic),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m->key, klen),
		RD_KAFKA_V_VALUE(m->payload, vlen), RD_KAFKA_V_HEADERS(h),
		RD_KAFKA_V_OPAQUE(m->_private), RD_KAFKA_V_END);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		rd_kafka_headers_destroy(h);
		return -1;
	}
	/* the copy belongs to the original's generation */
	unsigned slot;
	if (tag_slot(d, m->_private, &slot))
		d->sent[slot]++;
	if (first_cut)
		d->st->dead_letters_truncated++;
	ls_log(LS_LOG_WARN, "pipeline", "dead letter too large for the broker, sent truncated",
	       "error=%s bytes=%zu now=%zu", rd_kafka_err2name(m->err), m->len, vlen);
	return 0;
}

int ls_dlq_open(ls_dlq *d, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
	char why[512];
	/* idempotent: retries never duplicate a dead letter within a session */
	if (rd_kafka_conf_set(conf, "enable.idempotence", "true", why, sizeof why) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", why, sizeof why) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "dead-letter producer: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	char mmb[32];
	size_t mmb_len = sizeof mmb;
	if (rd_kafka_conf_get(conf, "message.max.bytes", mmb, &mmb_len) != RD_KAFKA_CONF_OK ||
	    (d->max = (size_t)strtoull(mmb, NULL, 10)) == 0)
		d->max = LS_DLQ_DEFAULT_MESSAGE_MAX;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, d);
	d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
	if (d->rk == NULL) {
		snprintf(err, errlen, "dead-letter producer: %s", why);
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	return 0;
}

void ls_dlq_serve(ls_dlq *d)
{
	rd_kafka_poll(d->rk, 0); /* serve delivery reports */
	uint64_t left_out = ls_log_limit_flush(&d->log, ls_clock_mono_ms());
	if (left_out > 0)
		ls_log(LS_LOG_WARN, "pipeline", "dead letters not logged",
		       "suppressed=%" PRIu64 " rate=%" PRId64, left_out, d->log_rate);
}

void ls_dlq_close(ls_dlq *d)
{
	if (d->rk == NULL)
		return;
	if (rd_kafka_flush(d->rk, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		ls_log(LS_LOG_WARN, "pipeline", "dead letters left unflushed at exit",
		       "count=%d", rd_kafka_outq_len(d->rk));
	rd_kafka_destroy(d->rk);
	d->rk = NULL;
}
