/*
 * ls_codec_walk.c - pass 1 of decoding: the compiled writer schema and the
 * walk that checks a record's bytes against it before Avro-C reads them
 * (why the walk exists is in ls_codec.c's opening comment).
 *
 * Its own file because it is a self-contained verifier: it knows the Avro
 * binary encoding and nothing of leadscore's records, and it is the part
 * of the codec hostile input reaches first, so it reads best alone.
 */
#include <avro.h>
#include <stdio.h>
#include <string.h>

#include "ls_codec_internal.h"
#include "ls_utf8.h"

/* Nesting (records, unions, arrays, maps) deeper than this is malformed;
 * it bounds both our recursion and Avro-C's on hostile recursive schemas. */
#define MAX_DEPTH 64
/* Named types per writer schema; ours have at most three. */
#define MAX_NAMED 128

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
int ls_codec_walk_record(const wnode *root, const uint8_t *p, size_t len, ls_codec_error *err)
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

int ls_codec_compile_into(ls_arena *mem, avro_schema_t sch, wnode **out, char *err, size_t errlen)
{
	compile_state s;
	memset(&s, 0, sizeof(s));
	s.mem = mem;
	s.err = err;
	s.errlen = errlen;
	*out = compile(&s, sch);
	return *out == NULL ? -1 : 0;
}
