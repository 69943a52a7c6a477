/*
 * ls_codec_encode.c - the encoders: leadscore's records written as Avro
 * binary, plain or with Confluent framing.
 *
 * Its own file because encoding shares nothing with decoding but the
 * value rules (ls_codec_rules.c) and the record size limit: it writes the
 * bytes directly (see ls_codec.c's opening comment for why) and never
 * touches Avro-C.
 */
#include <string.h>

#include "ls_codec_internal.h"
#include "ls_utf8.h"

/* --- encoding -------------------------------------------------------------- */

/* Errors are sticky so the per-kind writers read as straight-line code and
 * check once at the end. */
typedef struct enc {
	ls_buf *b;
	bool oom;
	const char *bad_string; /* name of a field that is not UTF-8 */
} enc;

static void put_bytes(enc *e, const void *p, size_t n)
{
	if (!e->oom && ls_buf_append(e->b, p, n) != 0)
		e->oom = true;
}

static void put_long(enc *e, int64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	while (z >= 0x80) {
		tmp[n++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	tmp[n++] = (uint8_t)z;
	put_bytes(e, tmp, n);
}

static void put_double(enc *e, double d)
{
	uint64_t bits;
	memcpy(&bits, &d, sizeof(bits));
	uint8_t tmp[8];
	for (int i = 0; i < 8; i++)
		tmp[i] = (uint8_t)(bits >> (8 * i));
	put_bytes(e, tmp, 8);
}

static void put_string(enc *e, const char *s, const char *field)
{
	size_t n = strlen(s);
	if (!ls_utf8_valid((const uint8_t *)s, n) && e->bad_string == NULL)
		e->bad_string = field;
	if (n > INT64_MAX)
		n = 0;
	put_long(e, (int64_t)n);
	put_bytes(e, s, n);
}

/* ["null", "string"]: branch 0 for NULL. */
static void put_opt_string(enc *e, const char *s, const char *field)
{
	if (s == NULL) {
		put_long(e, 0);
		return;
	}
	put_long(e, 1);
	put_string(e, s, field);
}

static void put_opt_double(enc *e, bool has, double d)
{
	put_long(e, has ? 1 : 0);
	if (has)
		put_double(e, d);
}

static void put_string_map(enc *e, size_t n, const ls_attribute *a, const char *field)
{
	if (n > 0) {
		put_long(e, (int64_t)n);
		for (size_t i = 0; i < n; i++) {
			put_string(e, a[i].key, field);
			put_string(e, a[i].value, field);
		}
	}
	put_long(e, 0);
}

static void put_header(enc *e, int32_t id)
{
	if (id < 0)
		return;
	uint32_t u = (uint32_t)id;
	uint8_t h[5] = { 0, (uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u };
	put_bytes(e, h, sizeof(h));
}

static int enc_finish(ls_codec *c, enc *e, char *err, size_t errlen)
{
	if (e->oom) {
		e->b->len = 0;
		return set_err(err, errlen, "out of memory");
	}
	if (e->bad_string != NULL) {
		e->b->len = 0;
		return set_err(err, errlen, "%s is not valid UTF-8", e->bad_string);
	}
	if (e->b->len > c->max_record) {
		size_t n = e->b->len;
		e->b->len = 0;
		return set_err(err, errlen, "oversized: record of %zu bytes exceeds the limit of %zu",
		    n, c->max_record);
	}
	return 0;
}

static int reject(ls_buf *out, const ls_codec_error *ce, char *err, size_t errlen)
{
	out->len = 0;
	return set_err(err, errlen, "%s: %s", ls_codec_reason_name(ce->reason), ce->detail);
}

int ls_codec_encode_event(ls_codec *c, const ls_event *ev, int32_t confluent_schema_id,
                          ls_buf *out, char *err, size_t errlen)
{
	ls_codec_error ce;
	if (ls_codec_check_event(ev, &ce) != 0)
		return reject(out, &ce, err, errlen);
	out->len = 0;
	enc e = { .b = out, .oom = false, .bad_string = NULL };
	put_header(&e, confluent_schema_id);
	put_string(&e, ev->event_id, "event_id");
	put_string(&e, ev->lead_id, "lead_id");
	put_long(&e, ev->ts);
	switch (ev->source) {
	case LS_SOURCE_EMAIL:
		put_long(&e, (int64_t)ev->u.email.type);
		put_opt_string(&e, ev->u.email.campaign_id, "campaign_id");
		put_opt_string(&e, ev->u.email.variant_id, "variant_id");
		put_opt_string(&e, ev->u.email.decision_id, "decision_id");
		put_opt_string(&e, ev->u.email.url, "url");
		break;
	case LS_SOURCE_WEB:
		put_long(&e, (int64_t)ev->u.web.type);
		put_string(&e, ev->u.web.url, "url");
		put_opt_string(&e, ev->u.web.page_category, "page_category");
		put_long(&e, ev->u.web.has_duration_ms ? 1 : 0);
		if (ev->u.web.has_duration_ms)
			put_long(&e, ev->u.web.duration_ms);
		put_opt_string(&e, ev->u.web.session_id, "session_id");
		break;
	case LS_SOURCE_CALL:
		put_long(&e, (int64_t)ev->u.call.direction);
		put_long(&e, (int64_t)ev->u.call.outcome);
		put_long(&e, ev->u.call.duration_s);
		put_opt_double(&e, ev->u.call.has_sentiment, ev->u.call.sentiment);
		break;
	case LS_SOURCE_OUTCOME:
		put_long(&e, (int64_t)ev->u.outcome.outcome);
		put_opt_double(&e, ev->u.outcome.has_value, ev->u.outcome.value);
		break;
	case LS_SOURCE_PROFILE: {
		const ls_profile_event *pr = &ev->u.profile;
		put_string_map(&e, pr->n_attributes, pr->attributes, "attributes");
		if (pr->n_metrics > 0) {
			put_long(&e, (int64_t)pr->n_metrics);
			for (size_t i = 0; i < pr->n_metrics; i++) {
				put_string(&e, pr->metrics[i].key, "metrics");
				put_double(&e, pr->metrics[i].value);
			}
		}
		put_long(&e, 0);
		break;
	}
	default:
		out->len = 0;
		return set_err(err, errlen, "unknown source %d", (int)ev->source);
	}
	return enc_finish(c, &e, err, errlen);
}

int ls_codec_encode_score_change(ls_codec *c, const ls_score_change *sc,
                                 int32_t confluent_schema_id, ls_buf *out,
                                 char *err, size_t errlen)
{
	ls_codec_error ce;
	if (ls_codec_check_score_change(sc, &ce) != 0)
		return reject(out, &ce, err, errlen);
	out->len = 0;
	enc e = { .b = out, .oom = false, .bad_string = NULL };
	put_header(&e, confluent_schema_id);
	put_string(&e, sc->lead_id, "lead_id");
	put_string(&e, sc->model, "model");
	put_double(&e, sc->score);
	put_opt_double(&e, sc->has_previous_score, sc->previous_score);
	put_string(&e, sc->tier, "tier");
	put_opt_string(&e, sc->previous_tier, "previous_tier");
	put_long(&e, sc->version);
	put_long(&e, sc->ts);
	put_opt_string(&e, sc->cause_event_id, "cause_event_id");
	if (sc->n_factors > 0) {
		put_long(&e, (int64_t)sc->n_factors);
		for (size_t i = 0; i < sc->n_factors; i++) {
			put_string(&e, sc->factors[i].name, "factor name");
			put_double(&e, sc->factors[i].contribution);
		}
	}
	put_long(&e, 0);
	return enc_finish(c, &e, err, errlen);
}

int ls_codec_encode_bandit_decision(ls_codec *c, const ls_bandit_decision *bd,
                                    int32_t confluent_schema_id, ls_buf *out,
                                    char *err, size_t errlen)
{
	ls_codec_error ce;
	if (ls_codec_check_bandit_decision(bd, &ce) != 0)
		return reject(out, &ce, err, errlen);
	out->len = 0;
	enc e = { .b = out, .oom = false, .bad_string = NULL };
	put_header(&e, confluent_schema_id);
	put_string(&e, bd->decision_id, "decision_id");
	put_string(&e, bd->campaign_id, "campaign_id");
	put_string(&e, bd->lead_id, "lead_id");
	put_string(&e, bd->variant_id, "variant_id");
	put_double(&e, bd->propensity);
	put_long(&e, bd->ts);
	put_long(&e, bd->has_context ? 1 : 0);
	if (bd->has_context)
		put_string_map(&e, bd->n_context, bd->context, "context");
	return enc_finish(c, &e, err, errlen);
}
