/*
 * ls_event.c - enum symbol tables.
 *
 * The tables are written in Avro enum order; the codec relies on the symbol
 * index on the wire being the C enum value, and test_codec checks the
 * tables against the schemas so the two cannot drift apart silently.
 */
#include "ls_event.h"

#include <string.h>

static const char *const source_names[] = {
	"email", "web", "call", "outcome", "profile",
};
static const char *const email_names[] = {
	"SENT", "DELIVERED", "OPENED", "CLICKED",
	"REPLIED", "BOUNCED", "UNSUBSCRIBED", "SPAM_REPORTED",
};
static const char *const web_names[] = {
	"PAGE_VIEW", "FORM_SUBMIT", "DOWNLOAD", "DEMO_REQUEST",
};
static const char *const direction_names[] = { "INBOUND", "OUTBOUND" };
static const char *const call_outcome_names[] = {
	"CONNECTED", "NO_ANSWER", "VOICEMAIL", "BUSY", "MEETING_BOOKED",
};
static const char *const outcome_names[] = {
	"CONVERTED", "OPPORTUNITY_CREATED", "WON", "LOST", "DISQUALIFIED",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_at(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return NULL;
	return names[v];
}

static int index_of(const char *const *names, size_t n, const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *ls_source_name(ls_source s) { return name_at(source_names, COUNT(source_names), (int)s); }
const char *ls_email_type_name(ls_email_type t) { return name_at(email_names, COUNT(email_names), (int)t); }
const char *ls_web_type_name(ls_web_type t) { return name_at(web_names, COUNT(web_names), (int)t); }
const char *ls_call_direction_name(ls_call_direction d) { return name_at(direction_names, COUNT(direction_names), (int)d); }
const char *ls_call_outcome_name(ls_call_outcome o) { return name_at(call_outcome_names, COUNT(call_outcome_names), (int)o); }
const char *ls_outcome_type_name(ls_outcome_type o) { return name_at(outcome_names, COUNT(outcome_names), (int)o); }

int ls_source_from_name(const char *name) { return index_of(source_names, COUNT(source_names), name); }
int ls_email_type_from_name(const char *name) { return index_of(email_names, COUNT(email_names), name); }
int ls_web_type_from_name(const char *name) { return index_of(web_names, COUNT(web_names), name); }
int ls_call_direction_from_name(const char *name) { return index_of(direction_names, COUNT(direction_names), name); }
int ls_call_outcome_from_name(const char *name) { return index_of(call_outcome_names, COUNT(call_outcome_names), name); }
int ls_outcome_type_from_name(const char *name) { return index_of(outcome_names, COUNT(outcome_names), name); }

const char *ls_event_long_id(const ls_event *ev, size_t max, size_t *len)
{
	const char *name[6] = { "event_id", "lead_id", NULL, NULL, NULL, NULL };
	const char *id[6] = { ev->event_id, ev->lead_id, NULL, NULL, NULL, NULL };
	if (ev->source == LS_SOURCE_EMAIL) {
		name[2] = "campaign_id", id[2] = ev->u.email.campaign_id;
		name[3] = "variant_id", id[3] = ev->u.email.variant_id;
		name[4] = "decision_id", id[4] = ev->u.email.decision_id;
	} else if (ev->source == LS_SOURCE_WEB) {
		name[2] = "session_id", id[2] = ev->u.web.session_id;
	}
	for (int i = 0; i < 6; i++) {
		size_t n = id[i] != NULL ? strlen(id[i]) : 0;
		if (n > max) {
			*len = n;
			return name[i];
		}
	}
	return NULL;
}
