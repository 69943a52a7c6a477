/*
 * ls_conf_field.c - typed values of the key table's rows.
 *
 * Why a seam here: what a row's value is (how "30d" parses, how two
 * configs compare, which members own memory) does not depend on where the
 * text came from; the YAML walker, the environment overrides, the reload
 * diff and the live copy all go through these functions, so a type is
 * parsed, compared and freed one way whatever the key. Members are read
 * and written through offsets, with memcpy, because a row knows only "an
 * int of this size at this offset", not the struct's type.
 */
#include "ls_conf_field.h"
#include "ls_config.h" /* ls_config_kv, the entries of an FT_MAP */
#include "ls_log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const type_names[] = {
	"string", "int", "duration", "bool", "enum", "log-level", "map", "sequence",
	"number", "string", "custom",
};

/*
 * snprintf for dotted keys. Keys are far shorter than KEY_MAX; should one
 * ever not fit, a shortened key in a message is the right outcome, so the
 * truncation is deliberate (and this wrapper says so to the compiler).
 */
__attribute__((format(printf, 3, 4)))
void ls_conf_key_printf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

/* A value qbuf and shortened for an error message. */
const char *ls_conf_quote(const char *s, char *buf, size_t buflen)
{
	return ls_log_quote(s, buf, buflen);
}

/* ------------------------------------------------------------------ */
/* Scalar parsers                                                      */
/* ------------------------------------------------------------------ */

/* Optional '-' then decimal digits, nothing else; no overflow. */
static int parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t limit = (uint64_t)INT64_MAX;
	uint64_t v = 0;

	if (*s == '-') {
		neg = true;
		limit += 1;
		s++;
	}
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (limit - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (neg)
		*out = v == limit ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

/*
 * Plain decimal: optional '-', digits, optional fraction and exponent
 * ("0.001", "2", "1e-3"). strtod() alone would also take hex, inf, nan and
 * leading spaces, none of which belong in a config file.
 */
int ls_conf_parse_number(const char *s, double *out)
{
	const char *p = s;
	bool digits = false;

	if (*p == '-')
		p++;
	for (; *p >= '0' && *p <= '9'; p++)
		digits = true;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits = true;
	}
	if (!digits)
		return -1;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0')
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int ls_conf_parse_duration(const char *s, int64_t *ms)
{
	static const struct {
		const char *unit;
		int64_t factor;
	} units[] = {
		{ "ms", 1 }, { "s", MS_SECOND }, { "m", MS_MINUTE },
		{ "h", MS_HOUR }, { "d", MS_DAY },
	};
	int64_t v = 0;
	const char *p = s;

	if (s == NULL || ms == NULL)
		return -1;
	if (*p < '0' || *p > '9')
		return -1; /* no sign, no space, no empty number */
	for (; *p >= '0' && *p <= '9'; p++) {
		int64_t d = *p - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	/* zero is zero in every unit: `align_stall: 0` means what it says */
	if (*p == '\0' && v == 0) {
		*ms = 0;
		return 0;
	}
	for (size_t i = 0; i < COUNT(units); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (v > INT64_MAX / units[i].factor)
			return -1;
		*ms = v * units[i].factor;
		return 0;
	}
	return -1;
}

int ls_conf_parse_bool(const char *s, bool *out)
{
	if (s == NULL || out == NULL)
		return -1;
	if (strcasecmp(s, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcasecmp(s, "false") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

/* The largest unit that divides ms exactly, so 30d prints as "30d". */
const char *ls_conf_format_duration(int64_t ms, char *buf, size_t buflen)
{
	if (ms != 0 && ms % MS_DAY == 0)
		snprintf(buf, buflen, "%" PRId64 "d", ms / MS_DAY);
	else if (ms != 0 && ms % MS_HOUR == 0)
		snprintf(buf, buflen, "%" PRId64 "h", ms / MS_HOUR);
	else if (ms != 0 && ms % MS_MINUTE == 0)
		snprintf(buf, buflen, "%" PRId64 "m", ms / MS_MINUTE);
	else if (ms != 0 && ms % MS_SECOND == 0)
		snprintf(buf, buflen, "%" PRId64 "s", ms / MS_SECOND);
	else
		snprintf(buf, buflen, "%" PRId64 "ms", ms);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Setting, comparing and freeing fields                               */
/* ------------------------------------------------------------------ */

void *ls_conf_member_at(void *base, size_t offset)
{
	return (char *)base + offset;
}

static const void *const_member_at(const void *base, size_t offset)
{
	return (const char *)base + offset;
}

/* Pointers to arrays are read and written with memcpy because the table
 * only knows them as "a pointer at this offset", not their type. */
static void *get_ptr(const void *base, size_t offset)
{
	void *p;
	memcpy(&p, const_member_at(base, offset), sizeof p);
	return p;
}

void ls_conf_set_ptr(void *base, size_t offset, void *p)
{
	memcpy(ls_conf_member_at(base, offset), &p, sizeof p);
}

static size_t get_count(const void *base, size_t offset)
{
	size_t n;
	memcpy(&n, const_member_at(base, offset), sizeof n);
	return n;
}

void ls_conf_set_count(void *base, size_t offset, size_t n)
{
	memcpy(ls_conf_member_at(base, offset), &n, sizeof n);
}

static int64_t get_int(const ls_conf_field *f, const void *base)
{
	if (f->size == sizeof(int32_t)) {
		int32_t v;
		memcpy(&v, const_member_at(base, f->offset), sizeof v);
		return v;
	}
	int64_t v;
	memcpy(&v, const_member_at(base, f->offset), sizeof v);
	return v;
}

static void set_int(const ls_conf_field *f, void *base, int64_t v)
{
	/* The row's min and max keep v within the member's width. */
	if (f->size == sizeof(int32_t)) {
		int32_t v32 = (int32_t)v;
		memcpy(ls_conf_member_at(base, f->offset), &v32, sizeof v32);
		return;
	}
	memcpy(ls_conf_member_at(base, f->offset), &v, sizeof v);
}

static int get_enum(const ls_conf_field *f, const void *base)
{
	int v;
	memcpy(&v, const_member_at(base, f->offset), sizeof v);
	return v;
}

static void set_enum(const ls_conf_field *f, void *base, int v)
{
	memcpy(ls_conf_member_at(base, f->offset), &v, sizeof v);
}

static char **str_at(const ls_conf_field *f, void *base)
{
	return (char **)ls_conf_member_at(base, f->offset);
}

const char *ls_conf_str_get(const ls_conf_field *f, const void *base)
{
	const char *s;
	memcpy(&s, const_member_at(base, f->offset), sizeof s);
	return s;
}

const char *ls_conf_type_phrase(const ls_conf_field *f)
{
	switch (f->type) {
	case FT_STRING: return "a string";
	case FT_INT: return "an integer";
	case FT_DURATION: return "a duration";
	case FT_BOOL: return "true or false";
	case FT_ENUM: return "an enum symbol";
	case FT_LOG_LEVEL: return "a log level";
	case FT_MAP: return "a mapping";
	case FT_SEQ: return "a sequence";
	case FT_NUMBER: return "a number";
	case FT_CHARS: return "a string";
	case FT_CUSTOM: return "a value";
	}
	return "a value";
}

const char *ls_conf_type_name(const ls_conf_field *f)
{
	return f->type == FT_CUSTOM ? f->custom->type_name : type_names[f->type];
}

void ls_conf_join_names(char *buf, size_t buflen, const char *(*name_at)(int i, const void *ctx),
			const void *ctx)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; name_at(i, ctx) != NULL; i++) {
		int n = snprintf(buf + len, buflen - len, "%s%s", i > 0 ? ", " : "", name_at(i, ctx));
		if (n < 0 || (size_t)n >= buflen - len)
			return;
		len += (size_t)n;
	}
}

static const char *symbol_at(int i, const void *ctx)
{
	const ls_conf_symbol *syms = ctx;
	return syms[i].name;
}

/*
 * Parse text as the value of scalar row f and store it in base. is_null
 * says the YAML value was a plain null (~, null, empty). On failure the
 * member is unchanged and msg says why (without the key; the caller adds
 * the position or variable name).
 */
int ls_conf_field_set(const ls_conf_field *f, void *base, const char *text, bool is_null,
		     char *msg, size_t msglen)
{
	char qbuf[72];

	if (is_null) {
		if (f->type == FT_STRING && (f->flags & F_NULLABLE)) {
			char **sp = str_at(f, base);
			free(*sp);
			*sp = NULL;
			return 0;
		}
		snprintf(msg, msglen, "expected %s, got null", ls_conf_type_phrase(f));
		return -1;
	}
	switch (f->type) {
	case FT_STRING: {
		if (text[0] == '\0') {
			snprintf(msg, msglen, "must not be empty");
			return -1;
		}
		char whybuf[384];
		const char *why = f->check != NULL ? f->check(text, whybuf, sizeof whybuf) : NULL;
		if (why != NULL && (f->flags & F_SECRET)) {
			snprintf(msg, msglen, "%s", why);
			return -1;
		}
		if (why != NULL) {
			snprintf(msg, msglen, "%s, got %s", why, ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		char *dup = strdup(text);
		if (dup == NULL) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
		char **sp = str_at(f, base);
		free(*sp);
		*sp = dup;
		return 0;
	}
	case FT_INT: {
		int64_t v;
		if (parse_int(text, &v) != 0) {
			snprintf(msg, msglen, "expected an integer, got %s", ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		if (v < f->min || v > f->max) {
			snprintf(msg, msglen, "must be between %" PRId64 " and %" PRId64 ", got %" PRId64,
				 f->min, f->max, v);
			return -1;
		}
		set_int(f, base, v);
		return 0;
	}
	case FT_DURATION: {
		int64_t v;
		char lo[32], hi[32], got[32];
		if (ls_conf_parse_duration(text, &v) != 0) {
			snprintf(msg, msglen,
				 "expected a duration such as 500ms, 30s, 15m, 24h or 7d, got %s",
				 ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		if (v < f->min || v > f->max) {
			snprintf(msg, msglen, "must be between %s and %s, got %s",
				 ls_conf_format_duration(f->min, lo, sizeof lo),
				 ls_conf_format_duration(f->max, hi, sizeof hi),
				 ls_conf_format_duration(v, got, sizeof got));
			return -1;
		}
		int64_t *ip = (int64_t *)ls_conf_member_at(base, f->offset);
		*ip = v;
		return 0;
	}
	case FT_BOOL: {
		bool v;
		if (ls_conf_parse_bool(text, &v) != 0) {
			snprintf(msg, msglen, "expected true or false, got %s", ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		bool *bp = (bool *)ls_conf_member_at(base, f->offset);
		*bp = v;
		return 0;
	}
	case FT_ENUM: {
		for (size_t i = 0; f->symbols[i].name != NULL; i++) {
			if (strcmp(f->symbols[i].name, text) == 0) {
				set_enum(f, base, f->symbols[i].value);
				return 0;
			}
		}
		char list[256];
		ls_conf_join_names(list, sizeof list, symbol_at, f->symbols);
		snprintf(msg, msglen, "expected one of %s, got %s", list, ls_conf_quote(text, qbuf, sizeof qbuf));
		return -1;
	}
	case FT_LOG_LEVEL: {
		int lvl = ls_log_level_from_name(text);
		if (lvl < 0) {
			snprintf(msg, msglen, "expected one of debug, info, warn, error, got %s",
				 ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		set_enum(f, base, lvl);
		return 0;
	}
	case FT_NUMBER: {
		double v;
		if (ls_conf_parse_number(text, &v) != 0) {
			snprintf(msg, msglen, "expected a decimal number, got %s", ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		if ((f->flags & F_POSITIVE) && !(v > 0.0)) {
			snprintf(msg, msglen, "must be greater than 0, got %s", ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		if ((f->flags & F_NONZERO) && v == 0.0) {
			snprintf(msg, msglen, "must not be 0");
			return -1;
		}
		if ((f->flags & F_UNIT) && !(v >= 0.0 && v <= 1.0)) {
			snprintf(msg, msglen, "must be between 0 and 1, got %s", ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		memcpy(ls_conf_member_at(base, f->offset), &v, sizeof v);
		return 0;
	}
	case FT_CHARS: {
		size_t len = strlen(text);
		if (len == 0) {
			snprintf(msg, msglen, "must not be empty");
			return -1;
		}
		if (len >= f->size) {
			snprintf(msg, msglen, "must be at most %zu bytes, got %zu", f->size - 1, len);
			return -1;
		}
		char whybuf[384];
		const char *why = f->check != NULL ? f->check(text, whybuf, sizeof whybuf) : NULL;
		if (why != NULL) {
			snprintf(msg, msglen, "%s, got %s", why, ls_conf_quote(text, qbuf, sizeof qbuf));
			return -1;
		}
		/* Zero the tail too, so equal values compare equal bytewise. */
		memset(ls_conf_member_at(base, f->offset), 0, f->size);
		memcpy(ls_conf_member_at(base, f->offset), text, len);
		return 0;
	}
	case FT_MAP:
	case FT_SEQ:
	case FT_CUSTOM:
		break;
	}
	snprintf(msg, msglen, "expected %s, got a single value", ls_conf_type_phrase(f));
	return -1;
}

void ls_conf_free_map(const ls_conf_map *md, void *base)
{
	ls_config_kv *kv = get_ptr(base, md->items_offset);
	size_t n = get_count(base, md->count_offset);
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
	ls_conf_set_ptr(base, md->items_offset, NULL);
	ls_conf_set_count(base, md->count_offset, 0);
}

void ls_conf_free_seq(const ls_conf_seq *sd, void *base)
{
	char *items = get_ptr(base, sd->items_offset);
	size_t n = get_count(base, sd->count_offset);
	for (size_t i = 0; i < n; i++) {
		void *item = items + i * sd->item_size;
		ls_conf_free_fields(sd->fields, sd->n_fields, item);
		if (sd->free_item != NULL)
			sd->free_item(item);
	}
	free(items);
	ls_conf_set_ptr(base, sd->items_offset, NULL);
	ls_conf_set_count(base, sd->count_offset, 0);
}

void ls_conf_free_fields(const ls_conf_field *tbl, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const ls_conf_field *f = &tbl[i];
		if (f->type == FT_STRING) {
			char **sp = str_at(f, base);
			free(*sp);
			*sp = NULL;
		} else if (f->type == FT_MAP) {
			ls_conf_free_map(f->map, base);
		} else if (f->type == FT_SEQ) {
			ls_conf_free_seq(f->seq, base);
		}
	}
}

bool ls_conf_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool fields_equal(const ls_conf_field *tbl, size_t n, const void *a, const void *b);

static bool map_equal(const ls_conf_map *md, const void *a, const void *b)
{
	size_t na = get_count(a, md->count_offset);
	size_t nb = get_count(b, md->count_offset);
	const ls_config_kv *ka = get_ptr(a, md->items_offset);
	const ls_config_kv *kb = get_ptr(b, md->items_offset);

	if (na != nb)
		return false;
	/* Keys are unique (duplicates are rejected), so compare as sets. */
	for (size_t i = 0; i < na; i++) {
		bool found = false;
		for (size_t j = 0; j < nb && !found; j++)
			found = strcmp(ka[i].key, kb[j].key) == 0 &&
				strcmp(ka[i].value, kb[j].value) == 0;
		if (!found)
			return false;
	}
	return true;
}

static bool seq_equal(const ls_conf_seq *sd, const void *a, const void *b)
{
	size_t n = get_count(a, sd->count_offset);
	const char *ia = get_ptr(a, sd->items_offset);
	const char *ib = get_ptr(b, sd->items_offset);

	if (n != get_count(b, sd->count_offset))
		return false;
	for (size_t i = 0; i < n; i++) {
		const void *x = ia + i * sd->item_size;
		const void *y = ib + i * sd->item_size;
		if (!fields_equal(sd->fields, sd->n_fields, x, y))
			return false;
		if (sd->equal_item != NULL && !sd->equal_item(x, y))
			return false;
	}
	return true;
}

bool ls_conf_field_equal(const ls_conf_field *f, const void *a, const void *b)
{
	switch (f->type) {
	case FT_STRING:
		return ls_conf_str_equal(ls_conf_str_get(f, a), ls_conf_str_get(f, b));
	case FT_INT:
		return get_int(f, a) == get_int(f, b);
	case FT_DURATION:
		return memcmp(const_member_at(a, f->offset), const_member_at(b, f->offset), sizeof(int64_t)) == 0;
	case FT_BOOL:
		return *(const bool *)const_member_at(a, f->offset) ==
		       *(const bool *)const_member_at(b, f->offset);
	case FT_ENUM:
	case FT_LOG_LEVEL:
		return get_enum(f, a) == get_enum(f, b);
	case FT_MAP:
		return map_equal(f->map, a, b);
	case FT_SEQ:
		return seq_equal(f->seq, a, b);
	case FT_NUMBER: {
		double x, y;
		memcpy(&x, const_member_at(a, f->offset), sizeof x);
		memcpy(&y, const_member_at(b, f->offset), sizeof y);
		return x == y;
	}
	case FT_CHARS:
		return strncmp(const_member_at(a, f->offset), const_member_at(b, f->offset), f->size) == 0;
	case FT_CUSTOM:
		return f->custom->equal(a, b);
	}
	return false;
}

static bool fields_equal(const ls_conf_field *tbl, size_t n, const void *a, const void *b)
{
	for (size_t i = 0; i < n; i++)
		if (!ls_conf_field_equal(&tbl[i], a, b))
			return false;
	return true;
}

bool ls_conf_env_overridable(const ls_conf_field *f)
{
	return f->type != FT_MAP && f->type != FT_SEQ && f->type != FT_CUSTOM;
}

/* Copy one scalar row's value from src to dst (both of the same base type). */
int ls_conf_field_copy(const ls_conf_field *f, void *dst, const void *src)
{
	switch (f->type) {
	case FT_STRING: {
		const char *v = ls_conf_str_get(f, src);
		char *dup = NULL;
		if (v != NULL && (dup = strdup(v)) == NULL)
			return -1;
		char **sp = str_at(f, dst);
		free(*sp);
		*sp = dup;
		return 0;
	}
	case FT_INT:
		set_int(f, dst, get_int(f, src));
		return 0;
	case FT_DURATION:
		memcpy(ls_conf_member_at(dst, f->offset), const_member_at(src, f->offset), sizeof(int64_t));
		return 0;
	case FT_BOOL:
		memcpy(ls_conf_member_at(dst, f->offset), const_member_at(src, f->offset), sizeof(bool));
		return 0;
	case FT_ENUM:
	case FT_LOG_LEVEL:
		set_enum(f, dst, get_enum(f, src));
		return 0;
	case FT_NUMBER:
		memcpy(ls_conf_member_at(dst, f->offset), const_member_at(src, f->offset), sizeof(double));
		return 0;
	case FT_CHARS:
		memcpy(ls_conf_member_at(dst, f->offset), const_member_at(src, f->offset), f->size);
		return 0;
	case FT_SEQ: {
		/* only sequences whose items own no memory are live (campaigns) */
		const ls_conf_seq *sd = f->seq;
		if (sd->free_item != NULL)
			break;
		size_t n = get_count(src, sd->count_offset);
		void *items = NULL;
		if (n > 0) {
			items = malloc(n * sd->item_size);
			if (items == NULL)
				return -1;
			memcpy(items, get_ptr(src, sd->items_offset), n * sd->item_size);
		}
		ls_conf_free_seq(sd, dst);
		ls_conf_set_ptr(dst, sd->items_offset, items);
		ls_conf_set_count(dst, sd->count_offset, n);
		return 0;
	}
	case FT_CUSTOM:
		if (f->custom->copy != NULL)
			f->custom->copy(dst, src);
		return 0;
	case FT_MAP:
		break;
	}
	/* Maps, custom values without a copy hook and sequences of items
	 * owning memory are restart-only; nothing copies them live. */
	return 0;
}

