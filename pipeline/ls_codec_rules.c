/*
 * ls_codec_rules.c - the value rules of leadscore's records: non-empty
 * ids, known enum values, non-negative times and durations, finite numbers
 * in their ranges, no NULL where the schema has a value.
 *
 * Its own file because both directions apply the same rules: the decoders
 * check what they extracted (ls_codec.c), the encoders refuse to write a
 * record a decoder would reject (ls_codec_encode.c).
 */
#include <math.h>

#include "ls_codec_internal.h"

/* --- value rules, shared by decoders and encoders -------------------------- */

static bool finite_in(double v, double lo, double hi)
{
	return isfinite(v) && v >= lo && v <= hi;
}

int ls_codec_check_event(const ls_event *ev, ls_codec_error *err)
{
	if ((int)ev->source < 0 || ev->source >= LS_SOURCE__COUNT)
		return fail(err, LS_CODEC_WRONG_RECORD_TYPE, "unknown source %d", (int)ev->source);
	if (ev->event_id == NULL || ev->event_id[0] == '\0')
		return fail(err, LS_CODEC_MISSING_EVENT_ID, "event_id is empty");
	if (ev->lead_id == NULL || ev->lead_id[0] == '\0')
		return fail(err, LS_CODEC_MISSING_LEAD_ID, "lead_id is empty");
	if (ev->ts < 0)
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "ts %lld is negative", (long long)ev->ts);
	switch (ev->source) {
	case LS_SOURCE_EMAIL:
		if ((int)ev->u.email.type < 0 || ev->u.email.type >= LS_EMAIL__COUNT)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "email type %d", (int)ev->u.email.type);
		return 0;
	case LS_SOURCE_WEB:
		if ((int)ev->u.web.type < 0 || ev->u.web.type >= LS_WEB__COUNT)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "web type %d", (int)ev->u.web.type);
		if (ev->u.web.url == NULL)
			return fail(err, LS_CODEC_MALFORMED, "web url is missing");
		if (ev->u.web.has_duration_ms && ev->u.web.duration_ms < 0)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "duration_ms %lld is negative",
			    (long long)ev->u.web.duration_ms);
		return 0;
	case LS_SOURCE_CALL:
		if ((int)ev->u.call.direction < 0 || ev->u.call.direction >= LS_CALL_DIRECTION__COUNT)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "call direction %d",
			    (int)ev->u.call.direction);
		if ((int)ev->u.call.outcome < 0 || ev->u.call.outcome >= LS_CALL_OUTCOME__COUNT)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "call outcome %d",
			    (int)ev->u.call.outcome);
		if (ev->u.call.duration_s < 0)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "duration_s %lld is negative",
			    (long long)ev->u.call.duration_s);
		if (ev->u.call.has_sentiment && !finite_in(ev->u.call.sentiment, -1.0, 1.0))
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "sentiment %g outside [-1,1]",
			    ev->u.call.sentiment);
		return 0;
	case LS_SOURCE_OUTCOME:
		if ((int)ev->u.outcome.outcome < 0 || ev->u.outcome.outcome >= LS_OUTCOME__COUNT)
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "outcome %d",
			    (int)ev->u.outcome.outcome);
		if (ev->u.outcome.has_value && !isfinite(ev->u.outcome.value))
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "outcome value is not finite");
		return 0;
	case LS_SOURCE_PROFILE: {
		const ls_profile_event *pr = &ev->u.profile;
		if ((pr->n_attributes > 0 && pr->attributes == NULL) ||
		    (pr->n_metrics > 0 && pr->metrics == NULL))
			return fail(err, LS_CODEC_MALFORMED, "profile map array is NULL");
		for (size_t i = 0; i < pr->n_attributes; i++)
			if (pr->attributes[i].key == NULL || pr->attributes[i].value == NULL)
				return fail(err, LS_CODEC_MALFORMED, "attribute %zu has a NULL key or value", i);
		for (size_t i = 0; i < pr->n_metrics; i++) {
			if (pr->metrics[i].key == NULL)
				return fail(err, LS_CODEC_MALFORMED, "metric %zu has a NULL key", i);
			if (!isfinite(pr->metrics[i].value))
				return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "metric %s is not finite",
				    pr->metrics[i].key);
		}
		return 0;
	}
	default:
		return fail(err, LS_CODEC_WRONG_RECORD_TYPE, "unknown source %d", (int)ev->source);
	}
}

int ls_codec_check_score_change(const ls_score_change *sc, ls_codec_error *err)
{
	if (sc->lead_id == NULL || sc->lead_id[0] == '\0')
		return fail(err, LS_CODEC_MISSING_LEAD_ID, "lead_id is empty");
	if (sc->model == NULL || sc->tier == NULL)
		return fail(err, LS_CODEC_MALFORMED, "model and tier are required");
	if (!finite_in(sc->score, 0.0, 1.0))
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "score %g outside [0,1]", sc->score);
	if (sc->has_previous_score && !finite_in(sc->previous_score, 0.0, 1.0))
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "previous_score %g outside [0,1]",
		    sc->previous_score);
	if (sc->version < 0)
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "version %lld is negative",
		    (long long)sc->version);
	if (sc->ts < 0)
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "ts %lld is negative", (long long)sc->ts);
	if (sc->n_factors > 0 && sc->factors == NULL)
		return fail(err, LS_CODEC_MALFORMED, "factors array is NULL");
	for (size_t i = 0; i < sc->n_factors; i++) {
		if (sc->factors[i].name == NULL)
			return fail(err, LS_CODEC_MALFORMED, "factor %zu has no name", i);
		if (!isfinite(sc->factors[i].contribution))
			return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "factor %s is not finite",
			    sc->factors[i].name);
	}
	return 0;
}

int ls_codec_check_bandit_decision(const ls_bandit_decision *bd, ls_codec_error *err)
{
	if (bd->decision_id == NULL || bd->decision_id[0] == '\0')
		return fail(err, LS_CODEC_MALFORMED, "decision_id is empty");
	if (bd->lead_id == NULL || bd->lead_id[0] == '\0')
		return fail(err, LS_CODEC_MISSING_LEAD_ID, "lead_id is empty");
	if (bd->campaign_id == NULL || bd->variant_id == NULL)
		return fail(err, LS_CODEC_MALFORMED, "campaign_id and variant_id are required");
	if (!finite_in(bd->propensity, 0.0, 1.0))
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "propensity %g outside [0,1]",
		    bd->propensity);
	if (bd->ts < 0)
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "ts %lld is negative", (long long)bd->ts);
	if (bd->has_context && bd->n_context > 0 && bd->context == NULL)
		return fail(err, LS_CODEC_MALFORMED, "context array is NULL");
	for (size_t i = 0; bd->has_context && i < bd->n_context; i++)
		if (bd->context[i].key == NULL || bd->context[i].value == NULL)
			return fail(err, LS_CODEC_MALFORMED, "context %zu has a NULL key or value", i);
	return 0;
}
