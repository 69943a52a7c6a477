/*
 * ls_event.h - the decoded input events every layer above the codec sees.
 *
 * The Avro schemas (the .avsc files in schemas/) are the wire contract; this header is
 * the in-process contract. The codec (pipeline/ls_codec.h) fills these
 * structs, the windows and models read them, and nothing above the codec
 * ever touches Avro. Keeping the models free of Avro is what lets them stay
 * pure C with no I/O and be tested without a broker.
 *
 * Memory: an ls_event owns nothing. Its strings and arrays point into an
 * arena owned by whoever decoded it (one arena per micro-batch), so a whole
 * batch is freed at once. Optional fields are NULL pointers or carry a
 * has_ flag; numeric enums mirror the Avro enum symbol order exactly, so the
 * symbol index on the wire is the C value.
 */
#ifndef LS_EVENT_H
#define LS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which input stream an event came from; also selects the reader schema. */
typedef enum ls_source {
	LS_SOURCE_EMAIL = 0,
	LS_SOURCE_WEB,
	LS_SOURCE_CALL,
	LS_SOURCE_OUTCOME,
	LS_SOURCE_PROFILE,
	LS_SOURCE__COUNT
} ls_source;

typedef enum ls_email_type {
	LS_EMAIL_SENT = 0,
	LS_EMAIL_DELIVERED,
	LS_EMAIL_OPENED,
	LS_EMAIL_CLICKED,
	LS_EMAIL_REPLIED,
	LS_EMAIL_BOUNCED,
	LS_EMAIL_UNSUBSCRIBED,
	LS_EMAIL_SPAM_REPORTED,
	LS_EMAIL__COUNT
} ls_email_type;

typedef enum ls_web_type {
	LS_WEB_PAGE_VIEW = 0,
	LS_WEB_FORM_SUBMIT,
	LS_WEB_DOWNLOAD,
	LS_WEB_DEMO_REQUEST,
	LS_WEB__COUNT
} ls_web_type;

typedef enum ls_call_direction {
	LS_CALL_INBOUND = 0,
	LS_CALL_OUTBOUND,
	LS_CALL_DIRECTION__COUNT
} ls_call_direction;

typedef enum ls_call_outcome {
	LS_CALL_CONNECTED = 0,
	LS_CALL_NO_ANSWER,
	LS_CALL_VOICEMAIL,
	LS_CALL_BUSY,
	LS_CALL_MEETING_BOOKED,
	LS_CALL_OUTCOME__COUNT
} ls_call_outcome;

typedef enum ls_outcome_type {
	LS_OUTCOME_CONVERTED = 0,
	LS_OUTCOME_OPPORTUNITY_CREATED,
	LS_OUTCOME_WON,
	LS_OUTCOME_LOST,
	LS_OUTCOME_DISQUALIFIED,
	LS_OUTCOME__COUNT
} ls_outcome_type;

typedef struct ls_email_event {
	ls_email_type type;
	const char *campaign_id; /* optional: NULL when absent */
	const char *variant_id;  /* optional */
	const char *decision_id; /* optional */
	const char *url;         /* optional */
} ls_email_event;

typedef struct ls_web_event {
	ls_web_type type;
	const char *url;
	const char *page_category; /* optional */
	const char *session_id;    /* optional */
	bool has_duration_ms;
	int64_t duration_ms;
} ls_web_event;

typedef struct ls_call_event {
	ls_call_direction direction;
	ls_call_outcome outcome;
	int64_t duration_s;
	bool has_sentiment;
	double sentiment; /* -1..1 when present */
} ls_call_event;

typedef struct ls_outcome_event {
	ls_outcome_type outcome;
	bool has_value;
	double value;
} ls_outcome_event;

typedef struct ls_attribute {
	const char *key;
	const char *value;
} ls_attribute;

typedef struct ls_metric {
	const char *key;
	double value;
} ls_metric;

typedef struct ls_profile_event {
	size_t n_attributes;
	const ls_attribute *attributes;
	size_t n_metrics;
	const ls_metric *metrics;
} ls_profile_event;

typedef struct ls_event {
	ls_source source;
	const char *event_id; /* never NULL after a successful decode */
	const char *lead_id;  /* never NULL after a successful decode */
	int64_t ts;           /* event time, milliseconds since the Unix epoch */
	union {
		ls_email_event email;
		ls_web_event web;
		ls_call_event call;
		ls_outcome_event outcome;
		ls_profile_event profile;
	} u;
} ls_event;

/* Symbol names, as in the Avro enums; NULL for an out-of-range value. */
const char *ls_source_name(ls_source s);
const char *ls_email_type_name(ls_email_type t);
const char *ls_web_type_name(ls_web_type t);
const char *ls_call_direction_name(ls_call_direction d);
const char *ls_call_outcome_name(ls_call_outcome o);
const char *ls_outcome_type_name(ls_outcome_type o);

/* Reverse lookups: the enum value for a symbol, or -1 when unknown. */
int ls_source_from_name(const char *name);
int ls_email_type_from_name(const char *name);
int ls_web_type_from_name(const char *name);
int ls_call_direction_from_name(const char *name);
int ls_call_outcome_from_name(const char *name);
int ls_outcome_type_from_name(const char *name);

/*
 * The first of ev's ids (event_id, lead_id, and by source campaign_id,
 * variant_id, decision_id or session_id) longer than max bytes: its field
 * name, with its length in *len; NULL when none is. The one rule the
 * daemon dead-letters by (id_too_long) and leadscorectl replay refuses by.
 */
const char *ls_event_long_id(const ls_event *ev, size_t max, size_t *len);

#endif
