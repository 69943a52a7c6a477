/*
 * ls_codec.c - Avro codec for leadscore's Kafka records.
 *
 * Decoding is three passes over one record:
 *
 *  1. walk: the bytes are checked against a small compiled form of the
 *     writer schema (struct wnode). Avro-C trusts the wire: it mallocs
 *     whatever a string length says and loops over whatever a block count
 *     says, so a 10-byte record claiming a 2^62-byte string would abort an
 *     ASan build and exhaust memory in a release one. The walk proves every
 *     length and count fits in the bytes that remain, every varint is at
 *     most 10 bytes, union and enum indexes are in range, strings are UTF-8
 *     without NULs, and the record ends exactly at the end of the buffer.
 *  2. Avro-C reads the now-trusted bytes into a generic value in the reader
 *     schema, through a resolved writer for Confluent-framed records. Values
 *     and resolvers are made once (per kind, per registered writer) and
 *     reset before each read.
 *  3. extraction copies the fields into the ls_event and the caller's arena
 *     and applies the value rules (non-empty ids, ranges, finite doubles).
 *
 * Two gaps in Avro-C's resolver are closed here rather than papered over:
 *  - it rejects a reader field the writer lacks even when the field has a
 *    default. All our optional fields default to null, so for such a writer
 *    we decode into a projection of the reader schema without those fields
 *    and report them as absent.
 *  - it copies enum indexes instead of matching symbols by name, so for
 *    each writer we precompute writer-index -> reader-index maps; a writer
 *    symbol we do not know is value_out_of_range.
 *
 * Encoding writes the Avro binary directly instead of building Avro-C
 * values: it is a handful of varints and strings, it avoids a malloc per
 * string field, and the tests decode every encoded record through Avro-C
 * and compare with Avro-C's own encoding, so the two cannot drift.
 */
#include "ls_codec.h"

#include <avro.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_schemas.h"
#include "ls_utf8.h"

/* Record kinds: the five inputs (same values as ls_source) and two outputs. */
enum {
	K_EMAIL = LS_SOURCE_EMAIL,
	K_WEB = LS_SOURCE_WEB,
	K_CALL = LS_SOURCE_CALL,
	K_OUTCOME = LS_SOURCE_OUTCOME,
	K_PROFILE = LS_SOURCE_PROFILE,
	K_SCORE = LS_SOURCE__COUNT,
	K_BANDIT,
	K__COUNT
};

#define MAX_FIELDS 12
/* Nesting (records, unions, arrays, maps) deeper than this is malformed;
 * it bounds both our recursion and Avro-C's on hostile recursive schemas. */
#define MAX_DEPTH 64
/* Named types per writer schema; ours have at most three. */
#define MAX_NAMED 128

/*
 * Field order of each kind as the extraction code uses it. Indexes into
 * these arrays are "canonical" field numbers; each view maps them to
 * positions in the record it decodes into, so a writer with reordered or
 * missing fields needs no special extraction code.
 */
static const char *const email_fields[] = {
	"event_id", "lead_id", "ts", "type", "campaign_id", "variant_id",
	"decision_id", "url", NULL };
enum { EM_TYPE = 3, EM_CAMPAIGN, EM_VARIANT, EM_DECISION, EM_URL };
static const char *const web_fields[] = {
	"event_id", "lead_id", "ts", "type", "url", "page_category",
	"duration_ms", "session_id", NULL };
enum { WE_TYPE = 3, WE_URL, WE_CATEGORY, WE_DURATION, WE_SESSION };
static const char *const call_fields[] = {
	"event_id", "lead_id", "ts", "direction", "outcome", "duration_s",
	"sentiment", NULL };
enum { CA_DIRECTION = 3, CA_OUTCOME, CA_DURATION, CA_SENTIMENT };
static const char *const outcome_fields[] = {
	"event_id", "lead_id", "ts", "outcome", "value", NULL };
enum { OU_OUTCOME = 3, OU_VALUE };
static const char *const profile_fields[] = {
	"event_id", "lead_id", "ts", "attributes", "metrics", NULL };
enum { PR_ATTRIBUTES = 3, PR_METRICS };
static const char *const score_fields[] = {
	"lead_id", "model", "score", "previous_score", "tier", "previous_tier",
	"version", "ts", "cause_event_id", "factors", NULL };
enum { SC_LEAD, SC_MODEL, SC_SCORE, SC_PREV_SCORE, SC_TIER, SC_PREV_TIER,
       SC_VERSION, SC_TS, SC_CAUSE, SC_FACTORS };
static const char *const bandit_fields[] = {
	"decision_id", "campaign_id", "lead_id", "variant_id", "propensity",
	"ts", "context", NULL };
enum { BD_DECISION, BD_CAMPAIGN, BD_LEAD, BD_VARIANT, BD_PROPENSITY, BD_TS,
       BD_CONTEXT };
enum { F_EVENT_ID = 0, F_LEAD_ID, F_TS };

static const char *const *const kind_fields[K__COUNT] = {
	email_fields, web_fields, call_fields, outcome_fields, profile_fields,
	score_fields, bandit_fields,
};

static const char *const kind_record_name[K__COUNT] = {
	"EmailEvent", "WebEvent", "CallEvent", "LeadOutcome", "LeadProfile",
	"ScoreChange", "BanditDecision",
};

static const char *kind_schema_json(int kind)
{
	switch (kind) {
	case K_EMAIL: return ls_schema_email_event;
	case K_WEB: return ls_schema_web_event;
	case K_CALL: return ls_schema_call_event;
	case K_OUTCOME: return ls_schema_lead_outcome;
	case K_PROFILE: return ls_schema_lead_profile;
	case K_SCORE: return ls_schema_score_change;
	case K_BANDIT: return ls_schema_bandit_decision;
	default: return NULL;
	}
}

/* Number of C enum values for an enum field, or 0 if it is not an enum. */
static int enum_limit(int kind, int field)
{
	if ((kind == K_EMAIL && field == EM_TYPE))
		return LS_EMAIL__COUNT;
	if (kind == K_WEB && field == WE_TYPE)
		return LS_WEB__COUNT;
	if (kind == K_CALL && field == CA_DIRECTION)
		return LS_CALL_DIRECTION__COUNT;
	if (kind == K_CALL && field == CA_OUTCOME)
		return LS_CALL_OUTCOME__COUNT;
	if (kind == K_OUTCOME && field == OU_OUTCOME)
		return LS_OUTCOME__COUNT;
	return 0;
}

/* --- errors -------------------------------------------------------------- */

static const char *const reason_names[LS_CODEC_REASON__COUNT] = {
	"ok", "malformed", "unknown_schema_id", "wrong_record_type",
	"missing_event_id", "missing_lead_id", "value_out_of_range",
	"oversized", "internal",
};

const char *ls_codec_reason_name(ls_codec_reason r)
{
	if ((int)r < 0 || r >= LS_CODEC_REASON__COUNT)
		return NULL;
	return reason_names[r];
}

__attribute__((format(printf, 3, 4)))
static int fail(ls_codec_error *e, ls_codec_reason r, const char *fmt, ...)
{
	e->reason = r;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return (int)r;
}

__attribute__((format(printf, 3, 4)))
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- compiled writer schema for the pre-decode walk ---------------------- */

typedef struct wnode wnode;
struct wnode {
	avro_type_t type;
	const char *name;   /* named types, for messages */
	size_t n;           /* record fields, union branches, enum symbols, fixed size */
	wnode **kids;       /* record fields, union branches, or [0] = items/values */
};

typedef struct compile_state {
	ls_arena *mem;
	avro_schema_t named[MAX_NAMED];
	wnode *named_node[MAX_NAMED];
	size_t n_named;
	char *err;
	size_t errlen;
} compile_state;

static wnode *compile(compile_state *s, avro_schema_t sch);

static wnode *compile_kids(compile_state *s, wnode *n, size_t count)
{
	n->n = count;
	if (count == 0)
		return n;
	if (count > SIZE_MAX / sizeof(wnode *)) {
		set_err(s->err, s->errlen, "schema too large");
		return NULL;
	}
	n->kids = ls_arena_alloc(s->mem, count * sizeof(wnode *));
	if (n->kids == NULL) {
		set_err(s->err, s->errlen, "out of memory");
		return NULL;
	}
	return n;
}

static wnode *compile(compile_state *s, avro_schema_t sch)
{
	if (sch == NULL) {
		set_err(s->err, s->errlen, "schema has a NULL part");
		return NULL;
	}
	if (avro_typeof(sch) == AVRO_LINK)
		sch = avro_schema_link_target(sch);
	if (sch == NULL) {
		set_err(s->err, s->errlen, "schema has a dangling named reference");
		return NULL;
	}
	avro_type_t t = avro_typeof(sch);
	bool named = t == AVRO_RECORD || t == AVRO_ENUM || t == AVRO_FIXED;
	if (named) {
		/* Named types may recurse through links; reuse their node so
		 * compiling terminates and the walk follows the cycle. */
		for (size_t i = 0; i < s->n_named; i++)
			if (s->named[i] == sch)
				return s->named_node[i];
	}
	wnode *n = ls_arena_alloc(s->mem, sizeof(*n));
	if (n == NULL) {
		set_err(s->err, s->errlen, "out of memory");
		return NULL;
	}
	memset(n, 0, sizeof(*n));
	n->type = t;
	if (named) {
		if (s->n_named == MAX_NAMED) {
			set_err(s->err, s->errlen, "schema has more than %d named types", MAX_NAMED);
			return NULL;
		}
		s->named[s->n_named] = sch;
		s->named_node[s->n_named] = n;
		s->n_named++;
		n->name = avro_schema_name(sch);
	}
	switch (t) {
	case AVRO_STRING: case AVRO_BYTES: case AVRO_INT32: case AVRO_INT64:
	case AVRO_FLOAT: case AVRO_DOUBLE: case AVRO_BOOLEAN: case AVRO_NULL:
		return n;
	case AVRO_ENUM: {
		int count = avro_schema_enum_number_of_symbols(sch);
		if (count <= 0) {
			set_err(s->err, s->errlen, "enum %s has no symbols", n->name);
			return NULL;
		}
		n->n = (size_t)count;
		return n;
	}
	case AVRO_FIXED: {
		int64_t size = avro_schema_fixed_size(sch);
		if (size < 0) {
			set_err(s->err, s->errlen, "fixed %s has a negative size", n->name);
			return NULL;
		}
		n->n = (size_t)size;
		return n;
	}
	case AVRO_RECORD: {
		size_t count = avro_schema_record_size(sch);
		if (count > INT32_MAX || compile_kids(s, n, count) == NULL)
			return NULL;
		for (size_t i = 0; i < count; i++) {
			n->kids[i] = compile(s, avro_schema_record_field_get_by_index(sch, (int)i));
			if (n->kids[i] == NULL)
				return NULL;
		}
		return n;
	}
	case AVRO_UNION: {
		size_t count = avro_schema_union_size(sch);
		if (count == 0 || count > INT32_MAX) {
			set_err(s->err, s->errlen, "union has no branches");
			return NULL;
		}
		if (compile_kids(s, n, count) == NULL)
			return NULL;
		for (size_t i = 0; i < count; i++) {
			n->kids[i] = compile(s, avro_schema_union_branch(sch, (int)i));
			if (n->kids[i] == NULL)
				return NULL;
		}
		return n;
	}
	case AVRO_ARRAY:
	case AVRO_MAP:
		if (compile_kids(s, n, 1) == NULL)
			return NULL;
		n->kids[0] = compile(s, t == AVRO_ARRAY ? avro_schema_array_items(sch)
		                                      : avro_schema_map_values(sch));
		if (n->kids[0] == NULL)
			return NULL;
		return n;
	default:
		set_err(s->err, s->errlen, "unsupported Avro type %d", (int)t);
		return NULL;
	}
}

/* --- the walk ------------------------------------------------------------ */

typedef struct walk {
	const uint8_t *p;
	size_t pos;
	size_t len;
	int depth;
	ls_codec_error *err;
	/* A bad enum index leaves the structure intact, so the walk goes on
	 * to tell malformed records (which win) from out-of-range values. */
	bool value_bad;
	char value_detail[sizeof(((ls_codec_error *)0)->detail)];
} walk;

static int walk_varint(walk *w, int64_t *out, const char *what)
{
	size_t start = w->pos;
	uint64_t v = 0;
	*out = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (w->pos >= w->len)
			return fail(w->err, LS_CODEC_MALFORMED,
			    "truncated %s varint at byte %zu", what, start);
		uint8_t b = w->p[w->pos++];
		/* The 10th byte carries bit 63 only; more would overflow. */
		if (i == 9 && b > 1)
			return fail(w->err, LS_CODEC_MALFORMED,
			    "%s varint at byte %zu overflows 64 bits", what, start);
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
			return 0;
		}
	}
	return fail(w->err, LS_CODEC_MALFORMED,
	    "%s varint at byte %zu is longer than 10 bytes", what, start);
}


static int walk_string(walk *w, bool text, const char *what)
{
	int64_t n;
	size_t start = w->pos;
	int rc = walk_varint(w, &n, what);
	if (rc != 0)
		return rc;
	if (n < 0)
		return fail(w->err, LS_CODEC_MALFORMED,
		    "negative %s length at byte %zu", what, start);
	if ((uint64_t)n > w->len - w->pos)
		return fail(w->err, LS_CODEC_MALFORMED,
		    "%s length %lld at byte %zu exceeds the %zu bytes left",
		    what, (long long)n, start, w->len - w->pos);
	if (text && !ls_utf8_valid(w->p + w->pos, (size_t)n))
		return fail(w->err, LS_CODEC_MALFORMED,
		    "%s at byte %zu is not UTF-8 or contains NUL", what, start);
	w->pos += (size_t)n;
	return 0;
}

static int walk_node(walk *w, const wnode *n);

static int walk_blocks(walk *w, const wnode *n)
{
	bool is_map = n->type == AVRO_MAP;
	const char *what = is_map ? "map" : "array";
	/* Each item occupies at least one byte, except items of zero-byte
	 * types (null, empty records). A block may not claim more items than
	 * bytes remain, and all blocks together no more than the bytes left
	 * when the array starts, so even those cannot make Avro-C allocate
	 * more elements than the record has bytes. That rejects a valid but
	 * absurd array of many nulls, which no producer of ours writes. */
	uint64_t budget = w->len - w->pos;
	uint64_t total = 0;
	for (;;) {
		int64_t count;
		size_t start = w->pos;
		int rc = walk_varint(w, &count, what);
		if (rc != 0)
			return rc;
		if (count == 0)
			return 0;
		int64_t size = -1;
		if (count < 0) {
			if (count == INT64_MIN)
				return fail(w->err, LS_CODEC_MALFORMED,
				    "%s block count at byte %zu out of range", what, start);
			count = -count;
			rc = walk_varint(w, &size, what);
			if (rc != 0)
				return rc;
			if (size < 0 || (uint64_t)size > w->len - w->pos)
				return fail(w->err, LS_CODEC_MALFORMED,
				    "%s block size at byte %zu does not fit", what, start);
		}
		total += (uint64_t)count;
		if ((uint64_t)count > w->len - w->pos || total > budget)
			return fail(w->err, LS_CODEC_MALFORMED,
			    "%s block count %lld at byte %zu exceeds the bytes left",
			    what, (long long)count, start);
		size_t items_start = w->pos;
		for (int64_t i = 0; i < count; i++) {
			if (is_map && (rc = walk_string(w, true, "map key")) != 0)
				return rc;
			if ((rc = walk_node(w, n->kids[0])) != 0)
				return rc;
		}
		if (size >= 0 && w->pos - items_start != (size_t)size)
			return fail(w->err, LS_CODEC_MALFORMED,
			    "%s block at byte %zu is %zu bytes, header says %lld",
			    what, start, w->pos - items_start, (long long)size);
	}
}

static int walk_node(walk *w, const wnode *n)
{
	int64_t v;
	int rc;
	switch (n->type) {
	case AVRO_NULL:
		return 0;
	case AVRO_BOOLEAN:
		if (w->pos >= w->len)
			return fail(w->err, LS_CODEC_MALFORMED, "truncated boolean at byte %zu", w->pos);
		if (w->p[w->pos] > 1)
			return fail(w->err, LS_CODEC_MALFORMED, "boolean byte %u at byte %zu",
			    (unsigned)w->p[w->pos], w->pos);
		w->pos++;
		return 0;
	case AVRO_INT32: {
		size_t start = w->pos;
		if ((rc = walk_varint(w, &v, "int")) != 0)
			return rc;
		if (v < INT32_MIN || v > INT32_MAX || w->pos - start > 5)
			return fail(w->err, LS_CODEC_MALFORMED, "int at byte %zu overflows 32 bits", start);
		return 0;
	}
	case AVRO_INT64:
		return walk_varint(w, &v, "long");
	case AVRO_FLOAT:
	case AVRO_DOUBLE: {
		size_t size = n->type == AVRO_FLOAT ? 4 : 8;
		if (w->len - w->pos < size)
			return fail(w->err, LS_CODEC_MALFORMED, "truncated %s at byte %zu",
			    n->type == AVRO_FLOAT ? "float" : "double", w->pos);
		w->pos += size;
		return 0;
	}
	case AVRO_STRING:
		return walk_string(w, true, "string");
	case AVRO_BYTES:
		return walk_string(w, false, "bytes");
	case AVRO_FIXED:
		if (w->len - w->pos < n->n)
			return fail(w->err, LS_CODEC_MALFORMED, "truncated fixed %s at byte %zu",
			    n->name, w->pos);
		w->pos += n->n;
		return 0;
	case AVRO_ENUM: {
		size_t start = w->pos;
		if ((rc = walk_varint(w, &v, "enum")) != 0)
			return rc;
		if ((v < 0 || (uint64_t)v >= n->n) && !w->value_bad) {
			w->value_bad = true;
			snprintf(w->value_detail, sizeof(w->value_detail),
			    "enum %s index %lld at byte %zu outside 0..%zu",
			    n->name, (long long)v, start, n->n - 1);
		}
		return 0;
	}
	case AVRO_UNION: {
		size_t start = w->pos;
		if ((rc = walk_varint(w, &v, "union")) != 0)
			return rc;
		if (v < 0 || (uint64_t)v >= n->n)
			return fail(w->err, LS_CODEC_MALFORMED,
			    "union index %lld at byte %zu outside 0..%zu",
			    (long long)v, start, n->n - 1);
		if (++w->depth > MAX_DEPTH)
			return fail(w->err, LS_CODEC_MALFORMED, "nesting deeper than %d", MAX_DEPTH);
		rc = walk_node(w, n->kids[v]);
		w->depth--;
		return rc;
	}
	case AVRO_RECORD:
		if (++w->depth > MAX_DEPTH)
			return fail(w->err, LS_CODEC_MALFORMED, "nesting deeper than %d", MAX_DEPTH);
		for (size_t i = 0; i < n->n; i++)
			if ((rc = walk_node(w, n->kids[i])) != 0)
				return rc;
		w->depth--;
		return 0;
	case AVRO_ARRAY:
	case AVRO_MAP:
		if (++w->depth > MAX_DEPTH)
			return fail(w->err, LS_CODEC_MALFORMED, "nesting deeper than %d", MAX_DEPTH);
		rc = walk_blocks(w, n);
		w->depth--;
		return rc;
	default:
		return fail(w->err, LS_CODEC_INTERNAL, "walk reached Avro type %d", (int)n->type);
	}
}

static int walk_record(const wnode *root, const uint8_t *p, size_t len, ls_codec_error *err)
{
	walk w = { .p = p, .pos = 0, .len = len, .depth = 0, .err = err, .value_bad = false };
	int rc = walk_node(&w, root);
	if (rc != 0)
		return rc;
	if (w.pos != len)
		return fail(err, LS_CODEC_MALFORMED, "%zu trailing bytes after the record at byte %zu",
		    len - w.pos, w.pos);
	if (w.value_bad)
		return fail(err, LS_CODEC_VALUE_OUT_OF_RANGE, "%s", w.value_detail);
	return 0;
}

/* --- views: decoded record values and how to read them --------------------- */

typedef struct view {
	int kind;
	avro_schema_t rschema;       /* schema rvalue has: the reader or a projection */
	avro_value_iface_t *riface;
	avro_value_t rvalue;
	bool has_rvalue;
	int field[MAX_FIELDS];       /* canonical field -> index in rvalue, -1 absent */
	const int *enum_map[MAX_FIELDS];  /* writer symbol -> reader symbol; NULL = same */
	size_t enum_map_len[MAX_FIELDS];
} view;

typedef struct writer {
	int32_t id;
	int kind;
	avro_schema_t wschema;
	ls_arena mem;                /* compiled walk program and enum maps */
	wnode *prog;
	view v;
	avro_value_iface_t *resolver;
	avro_value_t resolved;
	bool has_resolved;
} writer;

struct ls_codec {
	avro_schema_t reader[K__COUNT];
	ls_arena prog_mem[K__COUNT];
	wnode *prog[K__COUNT];
	view plain[K__COUNT];
	writer **writers;            /* sorted by id */
	size_t n_writers;
	size_t cap_writers;
	avro_reader_t rd;
	size_t max_record;
};

static void view_free(view *v)
{
	if (v->has_rvalue)
		avro_value_decref(&v->rvalue);
	v->has_rvalue = false;
	if (v->riface != NULL)
		avro_value_iface_decref(v->riface);
	v->riface = NULL;
	if (v->rschema != NULL)
		avro_schema_decref(v->rschema);
	v->rschema = NULL;
}

/* True when reader field schema f may be missing from a writer: a union
 * whose first branch is null, which in our schemas always has
 * "default": null (Avro-C does not keep defaults, so this is the rule). */
static bool field_defaults_to_null(avro_schema_t f)
{
	if (f == NULL || avro_typeof(f) != AVRO_UNION || avro_schema_union_size(f) == 0)
		return false;
	avro_schema_t b = avro_schema_union_branch(f, 0);
	return b != NULL && avro_typeof(b) == AVRO_NULL;
}

/* The enum schema inside a writer field: the field itself, or a union
 * branch with the given name. */
static avro_schema_t find_enum(avro_schema_t f, const char *name)
{
	if (f != NULL && avro_typeof(f) == AVRO_LINK)
		f = avro_schema_link_target(f);
	if (f == NULL)
		return NULL;
	if (avro_typeof(f) == AVRO_ENUM)
		return f;
	if (avro_typeof(f) != AVRO_UNION)
		return NULL;
	size_t n = avro_schema_union_size(f);
	for (size_t i = 0; i < n; i++) {
		avro_schema_t b = avro_schema_union_branch(f, (int)i);
		if (b != NULL && avro_typeof(b) == AVRO_LINK)
			b = avro_schema_link_target(b);
		if (b != NULL && avro_typeof(b) == AVRO_ENUM && strcmp(avro_schema_name(b), name) == 0)
			return b;
	}
	return NULL;
}

/*
 * Set up v to decode kind `kind`. With wschema == NULL it decodes the plain
 * reader schema. With a writer schema it decodes into the reader schema
 * minus the optional fields the writer lacks, and builds enum symbol maps
 * in mem.
 */
static int view_init(view *v, int kind, avro_schema_t reader, avro_schema_t wschema,
                     ls_arena *mem, char *err, size_t errlen)
{
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	const char *const *names = kind_fields[kind];
	size_t rfields = avro_schema_record_size(reader);

	bool project = false;
	if (wschema != NULL) {
		for (size_t i = 0; i < rfields; i++) {
			const char *fname = avro_schema_record_field_name(reader, (int)i);
			if (avro_schema_record_field_get_index(wschema, fname) >= 0)
				continue;
			if (!field_defaults_to_null(avro_schema_record_field_get_by_index(reader, (int)i)))
				return set_err(err, errlen,
				    "writer schema lacks field %s, which %s requires (it has no default)",
				    fname, kind_record_name[kind]);
			project = true;
		}
	}
	if (project) {
		v->rschema = avro_schema_record(avro_schema_name(reader), avro_schema_namespace(reader));
		if (v->rschema == NULL)
			return set_err(err, errlen, "projecting reader schema: %s", avro_strerror());
		for (size_t i = 0; i < rfields; i++) {
			const char *fname = avro_schema_record_field_name(reader, (int)i);
			if (avro_schema_record_field_get_index(wschema, fname) < 0)
				continue;
			if (avro_schema_record_field_append(v->rschema, fname,
			        avro_schema_record_field_get_by_index(reader, (int)i)) != 0) {
				set_err(err, errlen, "projecting reader schema: %s", avro_strerror());
				view_free(v);
				return -1;
			}
		}
	} else {
		v->rschema = avro_schema_incref(reader);
	}

	v->riface = avro_generic_class_from_schema(v->rschema);
	if (v->riface == NULL) {
		set_err(err, errlen, "reader class for %s: %s", kind_record_name[kind], avro_strerror());
		view_free(v);
		return -1;
	}
	if (avro_generic_value_new(v->riface, &v->rvalue) != 0) {
		set_err(err, errlen, "reader value for %s: %s", kind_record_name[kind], avro_strerror());
		view_free(v);
		return -1;
	}
	v->has_rvalue = true;

	for (int i = 0; i < MAX_FIELDS; i++)
		v->field[i] = -1;
	for (int i = 0; names[i] != NULL; i++) {
		v->field[i] = avro_schema_record_field_get_index(v->rschema, names[i]);
		if (v->field[i] < 0 && avro_schema_record_field_get_index(reader, names[i]) < 0) {
			/* Our own schema lost a field the code reads. */
			set_err(err, errlen, "reader schema %s has no field %s",
			    kind_record_name[kind], names[i]);
			view_free(v);
			return -1;
		}
		if (wschema == NULL || enum_limit(kind, i) == 0)
			continue;
		avro_schema_t renum = find_enum(avro_schema_record_field_get(reader, names[i]), "");
		avro_schema_t wenum = renum == NULL ? NULL :
		    find_enum(avro_schema_record_field_get(wschema, names[i]), avro_schema_name(renum));
		if (renum == NULL || wenum == NULL)
			continue; /* resolution decides; nothing to map */
		int wn = avro_schema_enum_number_of_symbols(wenum);
		if (wn <= 0)
			continue;
		int *map = ls_arena_alloc(mem, (size_t)wn * sizeof(int));
		if (map == NULL) {
			set_err(err, errlen, "out of memory");
			view_free(v);
			return -1;
		}
		for (int s = 0; s < wn; s++)
			map[s] = avro_schema_enum_get_by_name(renum, avro_schema_enum_get(wenum, s));
		v->enum_map[i] = map;
		v->enum_map_len[i] = (size_t)wn;
	}
	return 0;
}

/* --- codec lifecycle ------------------------------------------------------ */

static int compile_into(ls_arena *mem, avro_schema_t sch, wnode **out, char *err, size_t errlen)
{
	compile_state s;
	memset(&s, 0, sizeof(s));
	s.mem = mem;
	s.err = err;
	s.errlen = errlen;
	*out = compile(&s, sch);
	return *out == NULL ? -1 : 0;
}

ls_codec *ls_codec_new(char *err, size_t errlen)
{
	ls_codec *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	c->max_record = LS_CODEC_DEFAULT_MAX_RECORD;
	for (int k = 0; k < K__COUNT; k++)
		ls_arena_init(&c->prog_mem[k], 4096);
	static const char empty[1] = { 0 };
	c->rd = avro_reader_memory(empty, 0);
	if (c->rd == NULL) {
		set_err(err, errlen, "avro reader: %s", avro_strerror());
		ls_codec_free(c);
		return NULL;
	}
	for (int k = 0; k < K__COUNT; k++) {
		const char *json = kind_schema_json(k);
		if (avro_schema_from_json_length(json, strlen(json), &c->reader[k]) != 0) {
			c->reader[k] = NULL;
			set_err(err, errlen, "embedded schema %s: %s", kind_record_name[k], avro_strerror());
			ls_codec_free(c);
			return NULL;
		}
		if (avro_typeof(c->reader[k]) != AVRO_RECORD ||
		    strcmp(avro_schema_name(c->reader[k]), kind_record_name[k]) != 0) {
			set_err(err, errlen, "embedded schema %s is not that record", kind_record_name[k]);
			ls_codec_free(c);
			return NULL;
		}
		if (compile_into(&c->prog_mem[k], c->reader[k], &c->prog[k], err, errlen) != 0 ||
		    view_init(&c->plain[k], k, c->reader[k], NULL, NULL, err, errlen) != 0) {
			ls_codec_free(c);
			return NULL;
		}
	}
	return c;
}

static void writer_free(writer *w)
{
	if (w == NULL)
		return;
	if (w->has_resolved)
		avro_value_decref(&w->resolved);
	if (w->resolver != NULL)
		avro_value_iface_decref(w->resolver);
	view_free(&w->v);
	if (w->wschema != NULL)
		avro_schema_decref(w->wschema);
	ls_arena_free(&w->mem);
	free(w);
}

void ls_codec_free(ls_codec *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_writers; i++)
		writer_free(c->writers[i]);
	free(c->writers);
	for (int k = 0; k < K__COUNT; k++) {
		view_free(&c->plain[k]);
		if (c->reader[k] != NULL)
			avro_schema_decref(c->reader[k]);
		ls_arena_free(&c->prog_mem[k]);
	}
	if (c->rd != NULL)
		avro_reader_free(c->rd);
	free(c);
}

void ls_codec_set_max_record_size(ls_codec *c, size_t max)
{
	c->max_record = max == 0 ? LS_CODEC_DEFAULT_MAX_RECORD : max;
}

/* Index of the first writer with id >= id. */
static size_t writer_pos(const ls_codec *c, int32_t id)
{
	size_t lo = 0, hi = c->n_writers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->writers[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static writer *writer_find(const ls_codec *c, int32_t id)
{
	size_t i = writer_pos(c, id);
	return i < c->n_writers && c->writers[i]->id == id ? c->writers[i] : NULL;
}

int ls_codec_add_writer(ls_codec *c, int32_t schema_id, ls_source kind,
                        const char *schema_json, char *err, size_t errlen)
{
	if ((int)kind < 0 || kind >= LS_SOURCE__COUNT)
		return set_err(err, errlen, "schema id %d: unknown source kind %d", schema_id, (int)kind);
	if (schema_json == NULL)
		return set_err(err, errlen, "schema id %d: no schema text", schema_id);
	int k = (int)kind;
	avro_schema_t ws = NULL;
	if (avro_schema_from_json_length(schema_json, strlen(schema_json), &ws) != 0 || ws == NULL)
		return set_err(err, errlen, "schema id %d: invalid Avro schema: %s",
		    schema_id, avro_strerror());

	writer *old = writer_find(c, schema_id);
	if (old != NULL) {
		bool same = old->kind == k && avro_schema_equal(old->wschema, ws);
		avro_schema_decref(ws);
		if (same)
			return 0;
		return set_err(err, errlen,
		    "schema id %d is already registered with a different schema or kind", schema_id);
	}
	if (avro_typeof(ws) != AVRO_RECORD) {
		set_err(err, errlen, "schema id %d: writer schema is a %s, not a record",
		    schema_id, avro_schema_type_name(ws));
		avro_schema_decref(ws);
		return -1;
	}

	writer *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		avro_schema_decref(ws);
		return set_err(err, errlen, "out of memory");
	}
	w->id = schema_id;
	w->kind = k;
	w->wschema = ws;
	ls_arena_init(&w->mem, 4096);

	char why[200] = "";
	if (compile_into(&w->mem, ws, &w->prog, why, sizeof(why)) != 0 ||
	    view_init(&w->v, k, c->reader[k], ws, &w->mem, why, sizeof(why)) != 0) {
		set_err(err, errlen, "schema id %d does not resolve to %s: %s",
		    schema_id, kind_record_name[k], why);
		writer_free(w);
		return -1;
	}
	w->resolver = avro_resolved_writer_new(ws, w->v.rschema);
	if (w->resolver == NULL) {
		set_err(err, errlen, "schema id %d does not resolve to %s: %s",
		    schema_id, kind_record_name[k], avro_strerror());
		writer_free(w);
		return -1;
	}
	if (avro_resolved_writer_new_value(w->resolver, &w->resolved) != 0) {
		set_err(err, errlen, "schema id %d: resolved value: %s", schema_id, avro_strerror());
		writer_free(w);
		return -1;
	}
	w->has_resolved = true;
	avro_resolved_writer_set_dest(&w->resolved, &w->v.rvalue);

	if (c->n_writers == c->cap_writers) {
		size_t cap = c->cap_writers == 0 ? 8 : c->cap_writers * 2;
		writer **nw = realloc(c->writers, cap * sizeof(*nw));
		if (nw == NULL) {
			writer_free(w);
			return set_err(err, errlen, "out of memory");
		}
		c->writers = nw;
		c->cap_writers = cap;
	}
	size_t pos = writer_pos(c, schema_id);
	memmove(&c->writers[pos + 1], &c->writers[pos], (c->n_writers - pos) * sizeof(*c->writers));
	c->writers[pos] = w;
	c->n_writers++;
	return 0;
}

/* --- decoding -------------------------------------------------------------- */

/*
 * Passes 1 and 2: frame, walk and read buf into a view's value. lookup
 * selects whether a Confluent id is looked up among the registered writers
 * (input events) or skipped (our own output records).
 */
static int decode_value(ls_codec *c, int kind, bool lookup, const void *buf, size_t len,
                        view **vout, ls_codec_error *err)
{
	const uint8_t *p = buf;
	if (p == NULL || len == 0)
		return fail(err, LS_CODEC_MALFORMED, "empty record");
	if (len > c->max_record)
		return fail(err, LS_CODEC_OVERSIZED, "record of %zu bytes exceeds the limit of %zu",
		    len, c->max_record);

	const wnode *prog = c->prog[kind];
	view *v = &c->plain[kind];
	avro_value_t *target = &v->rvalue;
	if (p[0] == 0x00) {
		if (len < 5)
			return fail(err, LS_CODEC_MALFORMED, "Confluent header truncated (%zu bytes)", len);
		int32_t id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
		                       ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
		p += 5;
		len -= 5;
		if (lookup) {
			writer *w = writer_find(c, id);
			if (w == NULL)
				return fail(err, LS_CODEC_UNKNOWN_SCHEMA_ID, "schema id %d is not registered", id);
			if (w->kind != kind)
				return fail(err, LS_CODEC_WRONG_RECORD_TYPE,
				    "schema id %d is a %s schema, this topic carries %s",
				    id, kind_record_name[w->kind], kind_record_name[kind]);
			prog = w->prog;
			v = &w->v;
			target = &w->resolved;
		}
	}

	int rc = walk_record(prog, p, len, err);
	if (rc != 0)
		return rc;

	if (avro_value_reset(&v->rvalue) != 0)
		return fail(err, LS_CODEC_INTERNAL, "reset: %s", avro_strerror());
	avro_reader_memory_set_source(c->rd, (const char *)p, (int64_t)len);
	if (avro_value_read(c->rd, target) != 0)
		return fail(err, LS_CODEC_MALFORMED, "%s", avro_strerror());
	*vout = v;
	return 0;
}

/* Pass 3 helpers. Each returns 0 or a reason with err filled. */
typedef struct xctx {
	const view *v;
	ls_arena *arena;
	ls_codec_error *err;
} xctx;

/* The value of canonical field f: 1 present, 0 null or missing, else -reason. */
static int x_get(xctx *x, int f, avro_value_t *out)
{
	int idx = x->v->field[f];
	if (idx < 0)
		return 0;
	avro_value_t rec = x->v->rvalue;
	avro_value_t fv;
	if (avro_value_get_by_index(&rec, (size_t)idx, &fv, NULL) != 0)
		return -fail(x->err, LS_CODEC_INTERNAL, "field %s: %s",
		    kind_fields[x->v->kind][f], avro_strerror());
	if (avro_value_get_type(&fv) == AVRO_UNION) {
		avro_value_t b;
		if (avro_value_get_current_branch(&fv, &b) != 0)
			return -fail(x->err, LS_CODEC_INTERNAL, "field %s: %s",
			    kind_fields[x->v->kind][f], avro_strerror());
		if (avro_value_get_type(&b) == AVRO_NULL)
			return 0;
		fv = b;
	}
	*out = fv;
	return 1;
}

static int x_copy_string(xctx *x, avro_value_t *sv, const char *what, const char **out)
{
	const char *s;
	size_t size;
	if (avro_value_get_string(sv, &s, &size) != 0)
		return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", what, avro_strerror());
	/* Avro-C counts the terminating NUL in size. */
	size_t n = size > 0 ? size - 1 : 0;
	if (n > 0 && memchr(s, 0, n) != NULL)
		return fail(x->err, LS_CODEC_MALFORMED, "%s contains a NUL byte", what);
	char *copy = ls_arena_strndup(x->arena, n > 0 ? s : "", n);
	if (copy == NULL)
		return fail(x->err, LS_CODEC_INTERNAL, "out of memory copying %s", what);
	*out = copy;
	return 0;
}

static int x_string(xctx *x, int f, const char **out)
{
	avro_value_t sv = { NULL, NULL };
	*out = NULL;
	int rc = x_get(x, f, &sv);
	if (rc <= 0)
		return -rc;
	return x_copy_string(x, &sv, kind_fields[x->v->kind][f], out);
}

static int x_long(xctx *x, int f, bool *has, int64_t *out)
{
	avro_value_t lv = { NULL, NULL };
	*has = false;
	*out = 0;
	int rc = x_get(x, f, &lv);
	if (rc <= 0)
		return -rc;
	if (avro_value_get_long(&lv, out) != 0)
		return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", kind_fields[x->v->kind][f], avro_strerror());
	*has = true;
	return 0;
}

static int x_double(xctx *x, int f, bool *has, double *out)
{
	avro_value_t dv = { NULL, NULL };
	*has = false;
	*out = 0;
	int rc = x_get(x, f, &dv);
	if (rc <= 0)
		return -rc;
	if (avro_value_get_double(&dv, out) != 0)
		return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", kind_fields[x->v->kind][f], avro_strerror());
	*has = true;
	return 0;
}

/* A required enum field, mapped from writer to reader symbols and checked
 * against the C enum. */
static int x_enum(xctx *x, int f, int *out)
{
	avro_value_t ev = { NULL, NULL };
	const char *name = kind_fields[x->v->kind][f];
	int rc = x_get(x, f, &ev);
	if (rc < 0)
		return -rc;
	if (rc == 0)
		return fail(x->err, LS_CODEC_MALFORMED, "%s is missing", name);
	int idx;
	if (avro_value_get_enum(&ev, &idx) != 0)
		return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", name, avro_strerror());
	const int *map = x->v->enum_map[f];
	if (map != NULL) {
		if (idx < 0 || (size_t)idx >= x->v->enum_map_len[f])
			return fail(x->err, LS_CODEC_VALUE_OUT_OF_RANGE, "%s index %d unknown", name, idx);
		int r = map[idx];
		if (r < 0)
			return fail(x->err, LS_CODEC_VALUE_OUT_OF_RANGE,
			    "%s: writer symbol %d is not in the reader schema", name, idx);
		idx = r;
	}
	int limit = enum_limit(x->v->kind, f);
	if (idx < 0 || (limit > 0 && idx >= limit))
		return fail(x->err, LS_CODEC_VALUE_OUT_OF_RANGE, "%s index %d outside 0..%d",
		    name, idx, limit - 1);
	*out = idx;
	return 0;
}

/* A map field (string or double values) into an arena array. */
static int x_map(xctx *x, avro_value_t *mv, const char *name, bool strings,
                 size_t *n_out, const void **arr_out)
{
	size_t n;
	*n_out = 0;
	*arr_out = NULL;
	if (avro_value_get_size(mv, &n) != 0)
		return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", name, avro_strerror());
	if (n == 0)
		return 0;
	size_t elem = strings ? sizeof(ls_attribute) : sizeof(ls_metric);
	if (n > SIZE_MAX / elem)
		return fail(x->err, LS_CODEC_MALFORMED, "%s too large", name);
	void *arr = ls_arena_alloc(x->arena, n * elem);
	if (arr == NULL)
		return fail(x->err, LS_CODEC_INTERNAL, "out of memory for %s", name);
	for (size_t i = 0; i < n; i++) {
		avro_value_t ev = { NULL, NULL };
		const char *key;
		if (avro_value_get_by_index(mv, i, &ev, &key) != 0 || key == NULL)
			return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", name, avro_strerror());
		char *k = ls_arena_strndup(x->arena, key, strlen(key));
		if (k == NULL)
			return fail(x->err, LS_CODEC_INTERNAL, "out of memory for %s", name);
		int rc;
		if (strings) {
			ls_attribute *a = (ls_attribute *)arr + i;
			a->key = k;
			if ((rc = x_copy_string(x, &ev, name, &a->value)) != 0)
				return rc;
		} else {
			ls_metric *m = (ls_metric *)arr + i;
			m->key = k;
			if (avro_value_get_double(&ev, &m->value) != 0)
				return fail(x->err, LS_CODEC_INTERNAL, "%s: %s", name, avro_strerror());
		}
	}
	*n_out = n;
	*arr_out = arr;
	return 0;
}

static int x_map_field(xctx *x, int f, bool strings, bool *has, size_t *n, const void **arr)
{
	avro_value_t mv = { NULL, NULL };
	*has = false;
	*n = 0;
	*arr = NULL;
	int rc = x_get(x, f, &mv);
	if (rc <= 0)
		return -rc;
	*has = true;
	return x_map(x, &mv, kind_fields[x->v->kind][f], strings, n, arr);
}

/* --- value rules, shared by decoders and encoders -------------------------- */

static bool finite_in(double v, double lo, double hi)
{
	return isfinite(v) && v >= lo && v <= hi;
}

static int check_event(const ls_event *ev, ls_codec_error *err)
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

static int check_score_change(const ls_score_change *sc, ls_codec_error *err)
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

static int check_bandit_decision(const ls_bandit_decision *bd, ls_codec_error *err)
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

/* --- pass 3 per kind ------------------------------------------------------- */

static int extract_event(xctx *x, ls_event *out)
{
	int rc;
	bool has;
	int e;
	memset(out, 0, sizeof(*out));
	out->source = (ls_source)x->v->kind;
	if ((rc = x_string(x, F_EVENT_ID, &out->event_id)) != 0 ||
	    (rc = x_string(x, F_LEAD_ID, &out->lead_id)) != 0 ||
	    (rc = x_long(x, F_TS, &has, &out->ts)) != 0)
		return rc;
	switch (x->v->kind) {
	case K_EMAIL: {
		ls_email_event *em = &out->u.email;
		if ((rc = x_enum(x, EM_TYPE, &e)) != 0)
			return rc;
		em->type = (ls_email_type)e;
		if ((rc = x_string(x, EM_CAMPAIGN, &em->campaign_id)) != 0 ||
		    (rc = x_string(x, EM_VARIANT, &em->variant_id)) != 0 ||
		    (rc = x_string(x, EM_DECISION, &em->decision_id)) != 0 ||
		    (rc = x_string(x, EM_URL, &em->url)) != 0)
			return rc;
		break;
	}
	case K_WEB: {
		ls_web_event *we = &out->u.web;
		if ((rc = x_enum(x, WE_TYPE, &e)) != 0)
			return rc;
		we->type = (ls_web_type)e;
		if ((rc = x_string(x, WE_URL, &we->url)) != 0 ||
		    (rc = x_string(x, WE_CATEGORY, &we->page_category)) != 0 ||
		    (rc = x_long(x, WE_DURATION, &we->has_duration_ms, &we->duration_ms)) != 0 ||
		    (rc = x_string(x, WE_SESSION, &we->session_id)) != 0)
			return rc;
		break;
	}
	case K_CALL: {
		ls_call_event *ca = &out->u.call;
		if ((rc = x_enum(x, CA_DIRECTION, &e)) != 0)
			return rc;
		ca->direction = (ls_call_direction)e;
		if ((rc = x_enum(x, CA_OUTCOME, &e)) != 0)
			return rc;
		ca->outcome = (ls_call_outcome)e;
		if ((rc = x_long(x, CA_DURATION, &has, &ca->duration_s)) != 0 ||
		    (rc = x_double(x, CA_SENTIMENT, &ca->has_sentiment, &ca->sentiment)) != 0)
			return rc;
		break;
	}
	case K_OUTCOME: {
		ls_outcome_event *ou = &out->u.outcome;
		if ((rc = x_enum(x, OU_OUTCOME, &e)) != 0)
			return rc;
		ou->outcome = (ls_outcome_type)e;
		if ((rc = x_double(x, OU_VALUE, &ou->has_value, &ou->value)) != 0)
			return rc;
		break;
	}
	case K_PROFILE: {
		ls_profile_event *pr = &out->u.profile;
		const void *arr;
		if ((rc = x_map_field(x, PR_ATTRIBUTES, true, &has, &pr->n_attributes, &arr)) != 0)
			return rc;
		pr->attributes = arr;
		if ((rc = x_map_field(x, PR_METRICS, false, &has, &pr->n_metrics, &arr)) != 0)
			return rc;
		pr->metrics = arr;
		break;
	}
	default:
		return fail(x->err, LS_CODEC_INTERNAL, "not an input kind");
	}
	return check_event(out, x->err);
}

int ls_codec_decode(ls_codec *c, ls_source expected, const void *buf, size_t len,
                    ls_arena *arena, ls_event *out, ls_codec_error *err)
{
	err->reason = LS_CODEC_OK;
	err->detail[0] = '\0';
	if ((int)expected < 0 || expected >= LS_SOURCE__COUNT)
		return fail(err, LS_CODEC_INTERNAL, "unknown source kind %d", (int)expected);
	view *v = NULL;
	int rc = decode_value(c, (int)expected, true, buf, len, &v, err);
	if (rc != 0)
		return rc;
	xctx x = { .v = v, .arena = arena, .err = err };
	return extract_event(&x, out);
}

int ls_codec_decode_score_change(ls_codec *c, const void *buf, size_t len,
                                 ls_arena *arena, ls_score_change *out,
                                 ls_codec_error *err)
{
	err->reason = LS_CODEC_OK;
	err->detail[0] = '\0';
	view *v = NULL;
	int rc = decode_value(c, K_SCORE, false, buf, len, &v, err);
	if (rc != 0)
		return rc;
	xctx x = { .v = v, .arena = arena, .err = err };
	bool has;
	memset(out, 0, sizeof(*out));
	if ((rc = x_string(&x, SC_LEAD, &out->lead_id)) != 0 ||
	    (rc = x_string(&x, SC_MODEL, &out->model)) != 0 ||
	    (rc = x_double(&x, SC_SCORE, &has, &out->score)) != 0 ||
	    (rc = x_double(&x, SC_PREV_SCORE, &out->has_previous_score, &out->previous_score)) != 0 ||
	    (rc = x_string(&x, SC_TIER, &out->tier)) != 0 ||
	    (rc = x_string(&x, SC_PREV_TIER, &out->previous_tier)) != 0 ||
	    (rc = x_long(&x, SC_VERSION, &has, &out->version)) != 0 ||
	    (rc = x_long(&x, SC_TS, &has, &out->ts)) != 0 ||
	    (rc = x_string(&x, SC_CAUSE, &out->cause_event_id)) != 0)
		return rc;

	avro_value_t arr = { NULL, NULL };
	int got = x_get(&x, SC_FACTORS, &arr);
	if (got < 0)
		return -got;
	size_t n = 0;
	if (got > 0 && avro_value_get_size(&arr, &n) != 0)
		return fail(err, LS_CODEC_INTERNAL, "factors: %s", avro_strerror());
	if (n > 0) {
		if (n > SIZE_MAX / sizeof(ls_factor))
			return fail(err, LS_CODEC_MALFORMED, "factors too large");
		ls_factor *fs = ls_arena_alloc(arena, n * sizeof(*fs));
		if (fs == NULL)
			return fail(err, LS_CODEC_INTERNAL, "out of memory for factors");
		for (size_t i = 0; i < n; i++) {
			avro_value_t fv, name, contrib;
			if (avro_value_get_by_index(&arr, i, &fv, NULL) != 0 ||
			    avro_value_get_by_name(&fv, "name", &name, NULL) != 0 ||
			    avro_value_get_by_name(&fv, "contribution", &contrib, NULL) != 0 ||
			    avro_value_get_double(&contrib, &fs[i].contribution) != 0)
				return fail(err, LS_CODEC_INTERNAL, "factor %zu: %s", i, avro_strerror());
			if ((rc = x_copy_string(&x, &name, "factor name", &fs[i].name)) != 0)
				return rc;
		}
		out->factors = fs;
		out->n_factors = n;
	}
	return check_score_change(out, err);
}

int ls_codec_decode_bandit_decision(ls_codec *c, const void *buf, size_t len,
                                    ls_arena *arena, ls_bandit_decision *out,
                                    ls_codec_error *err)
{
	err->reason = LS_CODEC_OK;
	err->detail[0] = '\0';
	view *v = NULL;
	int rc = decode_value(c, K_BANDIT, false, buf, len, &v, err);
	if (rc != 0)
		return rc;
	xctx x = { .v = v, .arena = arena, .err = err };
	bool has;
	const void *ctx;
	memset(out, 0, sizeof(*out));
	if ((rc = x_string(&x, BD_DECISION, &out->decision_id)) != 0 ||
	    (rc = x_string(&x, BD_CAMPAIGN, &out->campaign_id)) != 0 ||
	    (rc = x_string(&x, BD_LEAD, &out->lead_id)) != 0 ||
	    (rc = x_string(&x, BD_VARIANT, &out->variant_id)) != 0 ||
	    (rc = x_double(&x, BD_PROPENSITY, &has, &out->propensity)) != 0 ||
	    (rc = x_long(&x, BD_TS, &has, &out->ts)) != 0 ||
	    (rc = x_map_field(&x, BD_CONTEXT, true, &out->has_context, &out->n_context, &ctx)) != 0)
		return rc;
	out->context = ctx;
	return check_bandit_decision(out, err);
}

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
	if (check_event(ev, &ce) != 0)
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
	if (check_score_change(sc, &ce) != 0)
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
	if (check_bandit_decision(bd, &ce) != 0)
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
