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
 *
 * The parts live in four files: this one (record kinds, views, the codec's
 * lifecycle, passes 2 and 3 of decoding), ls_codec_walk.c (pass 1),
 * ls_codec_rules.c (the value rules both directions apply) and
 * ls_codec_encode.c; ls_codec_internal.h is what they share.
 */
#include "ls_codec.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

#include "ls_codec_internal.h"
#include "ls_schemas.h"

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
/* --- views: decoded record values and how to read them --------------------- */


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
		if (ls_codec_compile_into(&c->prog_mem[k], c->reader[k], &c->prog[k], err, errlen) != 0 ||
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
	if (ls_codec_compile_into(&w->mem, ws, &w->prog, why, sizeof(why)) != 0 ||
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

	int rc = ls_codec_walk_record(prog, p, len, err);
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
	return ls_codec_check_event(out, x->err);
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
	return ls_codec_check_score_change(out, err);
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
	return ls_codec_check_bandit_decision(out, err);
}

