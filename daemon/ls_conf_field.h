/*
 * ls_conf_field.h - the rows of a configuration key table and the typed
 * values they describe: scalar parsers, and setting, comparing, copying
 * and freeing a row's member inside the struct the table fills. Internal
 * to daemon/: only the config engine and the leadscore schema
 * (ls_config*.c) include it; it knows no leadscore key.
 *
 * A table is an array of field rows, each naming a member by offset in a
 * base struct (ls_config for the root table, one item for a sequence's
 * sub-table). Defaults are YAML text parsed by ls_conf_field_set(), the
 * same code that parses the file and the environment.
 *
 * Memory: FT_STRING members, FT_MAP arrays and FT_SEQ arrays are owned by
 * the base struct and released by ls_conf_free_fields(); everything else
 * is stored by value.
 *
 * Errors: ls_conf_field_set() returns 0, or -1 with the member unchanged
 * and the reason (without the key, and never quoting an F_SECRET value)
 * in msg. The parsers return 0 or -1.
 *
 * Thread-safety: no shared state; safe from any thread on distinct bases.
 *
 * The row-building names (FT_*, F_*, COUNT, KEY_MAX, MS_*) stay short
 * because every table row spells them; nothing outside the config files
 * includes this header.
 */
#ifndef LS_CONF_FIELD_H
#define LS_CONF_FIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* Enough for the longest dotted key plus a sequence index. */
#define KEY_MAX 160

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

typedef enum ls_conf_type {
	FT_STRING = 0,
	FT_INT,
	FT_DURATION,
	FT_BOOL,
	FT_ENUM,
	FT_LOG_LEVEL,
	FT_MAP,
	FT_SEQ,
	FT_NUMBER, /* finite decimal, stored as double */
	FT_CHARS,  /* string copied into a char[size] inside the base struct */
	FT_CUSTOM, /* parsed, compared and named by its ls_conf_custom */
} ls_conf_type;

enum {
	F_REQUIRED = 1u << 0, /* no default; must come from the file or env */
	F_RELOAD = 1u << 1,   /* SIGHUP applies it live */
	F_NULLABLE = 1u << 2, /* strings: YAML null means "unset" (NULL) */
	F_SECRET = 1u << 3,   /* never echo the value in an error message */
	F_POSITIVE = 1u << 4, /* numbers: must be > 0 */
	F_NONZERO = 1u << 5,  /* numbers: must not be 0 */
	F_UNIT = 1u << 6,     /* numbers: must be within 0..1 */
};

typedef struct ls_conf_symbol {
	const char *name;
	int value;
} ls_conf_symbol;

struct ls_conf_loader;
struct ls_conf_map;
struct ls_conf_seq;
struct ls_conf_custom;

/* Extra validation for a string: NULL when s is fine, else the reason
 * (a static string or buf). */
typedef const char *(*ls_conf_check_fn)(const char *s, char *buf, size_t buflen);

typedef struct ls_conf_field {
	const char *name;     /* dotted, relative to the table's base struct */
	ls_conf_type type;
	size_t offset;        /* into the base struct (unused for maps, sequences) */
	size_t size;          /* ints: sizeof the member, 4 or 8 */
	const char *def;      /* default as YAML text; NULL when there is none */
	unsigned flags;
	int64_t min, max;     /* ints and durations (milliseconds) */
	ls_conf_check_fn check;
	const ls_conf_symbol *symbols; /* enums: terminated by a NULL name */
	const struct ls_conf_map *map;
	const struct ls_conf_seq *seq;
	const struct ls_conf_custom *custom;
	const char *desc; /* one line of Markdown: docs/configuration.md shows it */
} ls_conf_field;

/* A value no scalar parser fits (a list of windows): the row's own code. */
typedef struct ls_conf_custom {
	const char *type_name; /* as docs/configuration.md names it */
	/* Parse node into base, reporting its own errors at their nodes. */
	void (*parse)(struct ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
		      const char *disp);
	bool (*equal)(const void *a, const void *b);
	/* Copies the value from item src to item dst for a live reload;
	 * NULL for values that are never copied live. */
	void (*copy)(void *dst, const void *src);
} ls_conf_custom;

/* A map of scalar keys to scalar values, stored as an ls_config_kv array. */
typedef struct ls_conf_map {
	size_t count_offset; /* size_t in ls_config */
	size_t items_offset; /* ls_config_kv * in ls_config */
	ls_conf_check_fn check_key;
	/*
	 * Optional: each entry, in file order, checked against one state made
	 * by begin() for the whole map and released by end(). The reason is
	 * NULL when the entry is fine; *at_key says whether it is about the
	 * name (placed at the key) or the value. Reasons never quote values.
	 */
	void *(*begin)(void);
	const char *(*check_entry)(void *state, const char *key, const char *value,
				   bool *at_key, char *buf, size_t buflen);
	void (*end)(void *state);
	/* Optional: true for entry names whose values are secrets. */
	bool (*secret_key)(const char *key);
} ls_conf_map;

/* A sequence of mappings, each described by its own sub-table. */
typedef struct ls_conf_seq {
	size_t item_size;
	/* Fills a zeroed item with its defaults before its mapping is
	 * walked, for items whose defaults are not all zero. NULL: zero. */
	void (*init_item)(void *item);
	const ls_conf_field *fields;
	size_t n_fields;
	size_t count_offset; /* size_t in ls_config */
	size_t items_offset; /* item pointer in ls_config */
	/* Called once an item parsed cleanly: cross-item checks, loading
	 * files. Reports its own errors. NULL when there is nothing to do. */
	void (*finish_item)(struct ls_conf_loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp);
	/* Frees memory the item owns beyond its sub-table's strings. */
	void (*free_item)(void *item);
	/* Compares what the sub-table does not describe; NULL: nothing. */
	bool (*equal_item)(const void *a, const void *b);
	/* Called once when every item parsed and finished cleanly: checks
	 * across the whole list. NULL when there is nothing to do. */
	void (*finish_all)(struct ls_conf_loader *ld, void *items, size_t n,
			   yaml_node_t *seq_node, const char *disp);
	size_t max_items;        /* 0: no limit */
	const char *empty_error; /* NULL: [] is fine; else why it is not */
} ls_conf_seq;

/* snprintf for dotted keys, truncating on purpose (see the definition). */
void ls_conf_key_printf(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* s quoted and shortened for an error message, in buf. */
const char *ls_conf_quote(const char *s, char *buf, size_t buflen);

int ls_conf_parse_number(const char *s, double *out);
int ls_conf_parse_duration(const char *s, int64_t *ms);
int ls_conf_parse_bool(const char *s, bool *out);
const char *ls_conf_format_duration(int64_t ms, char *buf, size_t buflen);

/* The member at offset inside base. */
void *ls_conf_member_at(void *base, size_t offset);
void ls_conf_set_ptr(void *base, size_t offset, void *p);
void ls_conf_set_count(void *base, size_t offset, size_t n);
const char *ls_conf_str_get(const ls_conf_field *f, const void *base);
bool ls_conf_str_equal(const char *a, const char *b);

/* "A, B, C": name_at(0, ctx), name_at(1, ctx), ... up to the first NULL,
 * shortened at a whole name when buf is full. */
void ls_conf_join_names(char *buf, size_t buflen, const char *(*name_at)(int i, const void *ctx),
			const void *ctx);
/* "a duration", "true or false": what a row expects, for messages. */
const char *ls_conf_type_phrase(const ls_conf_field *f);
/* The type as docs/configuration.md names it ("duration", "sequence"). */
const char *ls_conf_type_name(const ls_conf_field *f);
/* Scalars can be set from the environment; maps, sequences and
 * custom values cannot. */
bool ls_conf_env_overridable(const ls_conf_field *f);

int ls_conf_field_set(const ls_conf_field *f, void *base, const char *text, bool is_null,
		      char *msg, size_t msglen);
bool ls_conf_field_equal(const ls_conf_field *f, const void *a, const void *b);
int ls_conf_field_copy(const ls_conf_field *f, void *dst, const void *src);
void ls_conf_free_map(const ls_conf_map *md, void *base);
void ls_conf_free_seq(const ls_conf_seq *sd, void *base);
void ls_conf_free_fields(const ls_conf_field *tbl, size_t n, void *base);

#endif
