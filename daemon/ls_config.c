/*
 * ls_config.c - one table of keys drives parsing, validation, environment
 * overrides, the reload diff and the documented key list.
 *
 * Why a table: a key that is parsed but not documented, or documented but
 * not overridable from the environment, is a bug that only shows up in
 * production. With one row per key, the YAML walker, LEADSCORE_* handling,
 * ls_config_diff() and ls_config_key_at() cannot disagree, and test_config
 * checks the README table and conf/leadscore.yaml against the same rows.
 *
 * Shapes: a row is a scalar (string, int, number, duration, bool, enum,
 * log-level, or a fixed char array inside an item), a map of scalars
 * (kafka.properties, a map_desc), a sequence of mappings (schemas.writers,
 * features: a seq_desc with its own sub-table of rows and hooks for
 * per-item and whole-sequence checks, extra owned memory and equality), or
 * a custom value with its own parser (features[].windows, a list of
 * durations or {length, slices} mappings). Nested sections (kafka.topics)
 * need no declaration: a dotted row name implies them.
 *
 * features: items are ls_feature_spec itself, so what the loader fills is
 * exactly what ls_feature_set_new() reads and nothing is converted twice.
 * Checks that need one key's position (an unknown symbol, a bad duration,
 * a key the feature's kind does not use) run while walking, so the error
 * points at that key; what needs the whole list (operands, and everything
 * else ls_feature_set_new() checks) runs once every item parsed cleanly,
 * and points at the item the models layer named.
 *
 * models: items are ls_model_spec itself too, but most of a model's
 * defaults are not zero, so each item starts as a copy of the built-in
 * conversion model (seq_desc.init_item) and the file overrides what it
 * names. Tiers and FTRL parameters are checked by the models' own
 * ls_tiers_init() and ls_ftrl_params_check(), whose messages are placed
 * at the tier min, hysteresis or ftrl key they are about.
 *
 * Why libyaml's document API rather than events: every node keeps its
 * start mark, so an error found after the whole file is read (a missing
 * required key, a duplicate schema id) can still point at a line and a
 * column, and duplicate keys are found by looking at sibling pairs.
 *
 * Defaults are written as YAML text in the table and parsed by the same
 * code as the file, so the default shown in the README, the default in the
 * struct and what a user would type are the same string.
 */
#include "ls_config.h"
#include "ls_kafka.h"
#include "ls_redis.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define ENV_PREFIX "LEADSCORE_"
/* Schema files are small JSON documents; a cap stops a typo such as
 * file: /dev/zero from eating memory at start-up. */
#define MAX_SCHEMA_FILE (1024 * 1024)
/* Enough for the longest dotted key plus a sequence index. */
#define KEY_MAX 160

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

/* Enums are stored through memcpy of an int; make that assumption loud. */
_Static_assert(sizeof(ls_source) == sizeof(int), "ls_source must be int-sized");
_Static_assert(sizeof(ls_log_level) == sizeof(int), "ls_log_level must be int-sized");
_Static_assert(sizeof(ls_feature_kind) == sizeof(int), "ls_feature_kind must be int-sized");
_Static_assert(sizeof(ls_feature_agg) == sizeof(int), "ls_feature_agg must be int-sized");
_Static_assert(sizeof(ls_feature_field) == sizeof(int), "ls_feature_field must be int-sized");
/* The pipeline defaults in the table are YAML text; keep them equal to the
 * models' own defaults so ls_config_lead_conf() of a default config is
 * ls_lead_conf_default(). */
_Static_assert(LS_LEAD_DEFAULT_GRACE_MS == 30 * MS_DAY, "pipeline.grace default is 30d");
_Static_assert(LS_LEAD_DEFAULT_DEDUPE_HORIZON_MS == MS_HOUR, "pipeline.dedupe_horizon default is 1h");
_Static_assert(LS_LEAD_DEFAULT_DEDUPE_K == 32, "pipeline.dedupe_ids default is 32");
_Static_assert(LS_LEAD_DEFAULT_MAX_ATTRIBUTES == 32, "max_profile_attributes default is 32");
_Static_assert(LS_LEAD_DEFAULT_MAX_METRICS == 32, "max_profile_metrics default is 32");

typedef enum field_type {
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
	FT_CUSTOM, /* parsed, compared and named by its custom_desc */
} field_type;

static const char *const type_names[] = {
	"string", "int", "duration", "bool", "enum", "log-level", "map", "sequence",
	"number", "string", "custom",
};

enum {
	F_REQUIRED = 1u << 0, /* no default; must come from the file or env */
	F_RELOAD = 1u << 1,   /* SIGHUP applies it live */
	F_NULLABLE = 1u << 2, /* strings: YAML null means "unset" (NULL) */
	F_SECRET = 1u << 3,   /* never echo the value in an error message */
	F_POSITIVE = 1u << 4, /* numbers: must be > 0 */
	F_NONZERO = 1u << 5,  /* numbers: must not be 0 */
	F_UNIT = 1u << 6,     /* numbers: must be within 0..1 */
};

typedef struct enum_symbol {
	const char *name;
	int value;
} enum_symbol;

struct loader;
struct map_desc;
struct seq_desc;
struct custom_desc;

/* Extra validation for a string: NULL when s is fine, else the reason
 * (a static string or buf). */
typedef const char *(*string_check_fn)(const char *s, char *buf, size_t buflen);

typedef struct field {
	const char *name;     /* dotted, relative to the table's base struct */
	field_type type;
	size_t offset;        /* into the base struct (unused for maps, sequences) */
	size_t size;          /* ints: sizeof the member, 4 or 8 */
	const char *def;      /* default as YAML text; NULL when there is none */
	unsigned flags;
	int64_t min, max;     /* ints and durations (milliseconds) */
	string_check_fn check;
	const enum_symbol *symbols; /* enums: terminated by a NULL name */
	const struct map_desc *map;
	const struct seq_desc *seq;
	const struct custom_desc *custom;
	const char *desc;
} field;

/* A value no scalar parser fits (a list of windows): the row's own code. */
typedef struct custom_desc {
	const char *type_name; /* as documented in the README table */
	/* Parse node into base, reporting its own errors at their nodes. */
	void (*parse)(struct loader *ld, const field *f, void *base, yaml_node_t *node,
		      const char *disp);
	bool (*equal)(const void *a, const void *b);
	/* Copies the value from item src to item dst for a live reload;
	 * NULL for values that are never copied live. */
	void (*copy)(void *dst, const void *src);
} custom_desc;

/* A map of scalar keys to scalar values, stored as an ls_config_kv array. */
typedef struct map_desc {
	size_t count_offset; /* size_t in ls_config */
	size_t items_offset; /* ls_config_kv * in ls_config */
	string_check_fn check_key;
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
} map_desc;

/* A sequence of mappings, each described by its own sub-table. */
typedef struct seq_desc {
	size_t item_size;
	/* Fills a zeroed item with its defaults before its mapping is
	 * walked, for items whose defaults are not all zero. NULL: zero. */
	void (*init_item)(void *item);
	const field *fields;
	size_t n_fields;
	size_t count_offset; /* size_t in ls_config */
	size_t items_offset; /* item pointer in ls_config */
	/* Called once an item parsed cleanly: cross-item checks, loading
	 * files. Reports its own errors. NULL when there is nothing to do. */
	void (*finish_item)(struct loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp);
	/* Frees memory the item owns beyond its sub-table's strings. */
	void (*free_item)(void *item);
	/* Compares what the sub-table does not describe; NULL: nothing. */
	bool (*equal_item)(const void *a, const void *b);
	/* Called once when every item parsed and finished cleanly: checks
	 * across the whole list. NULL when there is nothing to do. */
	void (*finish_all)(struct loader *ld, void *items, size_t n,
			   yaml_node_t *seq_node, const char *disp);
	size_t max_items;        /* 0: no limit */
	const char *empty_error; /* NULL: [] is fine; else why it is not */
} seq_desc;

/* ------------------------------------------------------------------ */
/* Error collection                                                    */
/* ------------------------------------------------------------------ */

/* Room kept free so "(N more errors)" fits once lines start dropping. */
#define TRAILER_RESERVE 32

typedef struct errbuf {
	char *buf;
	size_t cap;
	size_t len;
	size_t n_errors;
	size_t n_dropped;
} errbuf;

static void eb_init(errbuf *eb, char *buf, size_t cap)
{
	eb->buf = buf;
	eb->cap = buf != NULL ? cap : 0;
	eb->len = 0;
	eb->n_errors = 0;
	eb->n_dropped = 0;
	if (eb->cap > 0)
		buf[0] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void eb_add(errbuf *eb, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	eb->n_errors++;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0) {
		eb->n_dropped++;
		return;
	}
	/* Whole lines only, in order: once one is dropped, drop the rest. */
	size_t len = strlen(line);
	size_t sep = eb->len > 0 ? 1 : 0;
	if (eb->n_dropped > 0 || eb->len + sep + len + 1 + TRAILER_RESERVE > eb->cap) {
		/* The first line may use the reserve: a short buffer should
		 * still show the first problem rather than only a count. */
		if (eb->n_dropped > 0 || eb->len > 0 || len + 1 > eb->cap) {
			eb->n_dropped++;
			return;
		}
	}
	if (sep)
		eb->buf[eb->len++] = '\n';
	memcpy(eb->buf + eb->len, line, len + 1);
	eb->len += len;
}

static void eb_finish(errbuf *eb)
{
	if (eb->n_dropped == 0 || eb->cap == 0)
		return;
	char tail[64];
	snprintf(tail, sizeof tail, "%s(%zu more errors)", eb->len > 0 ? "\n" : "",
		 eb->n_dropped);
	size_t tlen = strlen(tail);
	if (eb->len + tlen + 1 <= eb->cap) {
		memcpy(eb->buf + eb->len, tail, tlen + 1);
		eb->len += tlen;
	}
}

/*
 * snprintf for dotted keys. Keys are far shorter than KEY_MAX; should one
 * ever not fit, a shortened key in a message is the right outcome, so the
 * truncation is deliberate (and this wrapper says so to the compiler).
 */
__attribute__((format(printf, 3, 4)))
static void key_printf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

/* A value quoted and shortened for an error message. */
static const char *q(const char *s, char *buf, size_t buflen)
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
static int parse_number(const char *s, double *out)
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

int ls_config_parse_duration(const char *s, int64_t *ms)
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

int ls_config_parse_bool(const char *s, bool *out)
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
static const char *format_duration(int64_t ms, char *buf, size_t buflen)
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
/* Hosts, ports, URLs and other string checks                          */
/* ------------------------------------------------------------------ */

static bool host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* s[0..len) is a host name, IPv4 address or bracketed IPv6 address. */
static const char *parse_host(const char *s, size_t len, char *host, size_t hostlen)
{
	const char *from = s;
	size_t n = len;

	if (len == 0)
		return "host is empty";
	if (s[0] == '[') {
		if (len < 4 || s[len - 1] != ']')
			return "IPv6 address must be written as [address]";
		from = s + 1;
		n = len - 2;
		bool colon = false;
		for (size_t i = 0; i < n; i++) {
			if (from[i] == ':')
				colon = true;
			else if (!isxdigit((unsigned char)from[i]) && from[i] != '.')
				return "bad character in IPv6 address";
		}
		if (!colon)
			return "bad IPv6 address";
	} else {
		if (len > 253)
			return "host name is too long";
		for (size_t i = 0; i < len; i++)
			if (!host_char(s[i]))
				return "host may contain only letters, digits, '-', '.' and '_'";
	}
	if (host != NULL) {
		if (n + 1 > hostlen)
			return "host name is too long";
		memcpy(host, from, n);
		host[n] = '\0';
	}
	return NULL;
}

static const char *parse_port(const char *s, size_t len, int min, int *port)
{
	int v = 0;

	if (len == 0 || len > 5)
		return min == 0 ? "port must be a number from 0 to 65535"
				: "port must be a number from 1 to 65535";
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return "port must be a number";
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > 65535)
		return min == 0 ? "port must be a number from 0 to 65535"
				: "port must be a number from 1 to 65535";
	*port = v;
	return NULL;
}

/* Splits "host:port" / "[v6]:port" at the port colon; NULL if there is none. */
static const char *port_colon(const char *s, size_t len)
{
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL || close + 1 >= s + len || close[1] != ':')
			return NULL;
		return close + 1;
	}
	const char *colon = memchr(s, ':', len);
	if (colon == NULL)
		return NULL;
	/* A second colon means an unbracketed IPv6 address. */
	if (memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) != NULL)
		return NULL;
	return colon;
}

const char *ls_config_parse_host_port(const char *s, char *host, size_t hostlen,
				      int *port)
{
	char hbuf[256];
	int p = 0;

	if (s == NULL)
		return "expected host:port";
	if (host == NULL) {
		host = hbuf;
		hostlen = sizeof hbuf;
	}
	size_t len = strlen(s);
	const char *colon = port_colon(s, len);
	if (colon == NULL)
		return "expected host:port (IPv6 as [address]:port)";
	const char *why = parse_host(s, (size_t)(colon - s), host, hostlen);
	if (why != NULL)
		return why;
	why = parse_port(colon + 1, len - (size_t)(colon + 1 - s), 0, &p);
	if (why != NULL)
		return why;
	if (port != NULL)
		*port = p;
	return NULL;
}

/*
 * The Redis client owns the URL grammar (it also accepts a user and a
 * password); the config only asks it, so a URL that validates here always
 * connects there. Its message never quotes the URL.
 */
#define REDIS_URL_FORMS "redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]"

static const char *check_redis_url(const char *s, char *buf, size_t buflen)
{
	ls_redis_target t;
	char why[512];
	static const char prefix[] = "invalid redis url: ";

	if (ls_redis_url_parse(s, &t, why, sizeof why) == 0) {
		ls_redis_target_free(&t);
		return NULL;
	}
	const char *reason = why;
	if (strncmp(reason, prefix, sizeof prefix - 1) == 0)
		reason += sizeof prefix - 1;
	snprintf(buf, buflen, "expected " REDIS_URL_FORMS " (%s)", reason);
	return buf;
}

static const char *check_listen(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	return ls_config_parse_host_port(s, NULL, 0, NULL);
}

static const char *check_brokers(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* librdkafka does the real parsing; catch what it would only
	 * report as a connection failure much later. */
	const char *p = s;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma != NULL ? comma : p + strlen(p);
		bool empty = true;
		for (const char *c = p; c < end; c++) {
			if (iscntrl((unsigned char)*c))
				return "must not contain control characters";
			if (*c != ' ')
				empty = false;
		}
		if (empty)
			return "has an empty entry in the broker list";
		if (comma == NULL)
			return NULL;
		p = comma + 1;
	}
}

static const char *check_topic(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Kafka's own rule for topic names. */
	size_t len = strlen(s);
	if (len > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return "must be a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)";
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return "must be a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)";
	return NULL;
}

static const char *check_key_prefix(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* The lead id follows the prefix inside a {hash tag}; a brace in the
	 * prefix would move the tag and scatter a lead's keys across slots. */
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) || *s == '{' || *s == '}')
			return "must not contain whitespace, '{' or '}'";
	return NULL;
}

static const char *check_token(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Compared with an HTTP header value, which cannot carry these. */
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return "must not contain whitespace or control characters";
	return NULL;
}

static const char *check_property_key(const char *key, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	/* Two places for one setting would leave users guessing which wins. */
	if (strcmp(key, "bootstrap.servers") == 0 || strcmp(key, "metadata.broker.list") == 0)
		return "set kafka.brokers instead";
	if (strcmp(key, "group.id") == 0)
		return "set kafka.group_id instead";
	return NULL;
}

/*
 * kafka.properties are tried on a scratch librdkafka conf, in file order as
 * the daemon will apply them (a plugin.library.paths entry makes its
 * plugin's names known to the entries after it), so a misspelt name fails
 * --check-config instead of the consumer's start, and librdkafka's reason
 * for a bad value reaches the user without the value itself.
 */
static void *kafka_props_begin(void)
{
	return rd_kafka_conf_new();
}

static void kafka_props_end(void *state)
{
	if (state != NULL)
		rd_kafka_conf_destroy(state);
}

static const char *check_kafka_property(void *state, const char *key, const char *value,
					bool *at_key, char *buf, size_t buflen)
{
	char why[512];
	bool off;

	*at_key = false;
	/* The consumer sets these after kafka.properties: exactly-once needs
	 * offsets committed to Redis with the state, not by librdkafka. */
	if (strcmp(key, "enable.auto.commit") == 0 || strcmp(key, "enable.partition.eof") == 0) {
		if (ls_config_parse_bool(value, &off) != 0 || off)
			return "leadscored sets this to false (offsets are committed to Redis with the state); leave it out";
	}
	if (state == NULL)
		return "out of memory";
	switch (ls_kafka_conf_set(state, key, value, why, sizeof why)) {
	case RD_KAFKA_CONF_OK:
		return NULL;
	case RD_KAFKA_CONF_UNKNOWN: {
		char near[128];
		*at_key = true;
		if (ls_kafka_property_suggest(key, near, sizeof near) == 0)
			snprintf(buf, buflen, "unknown librdkafka property (did you mean %s?)", near);
		else
			snprintf(buf, buflen, "unknown librdkafka property");
		return buf;
	}
	default:
		snprintf(buf, buflen, "librdkafka rejects the value: %s", why);
		return buf;
	}
}

/* ------------------------------------------------------------------ */
/* The key table                                                       */
/* ------------------------------------------------------------------ */

typedef struct loader {
	const char *file; /* as given, for messages */
	char *dir;        /* directory of file for relative paths; NULL: cwd */
	yaml_document_t *doc;
	ls_config *cfg;
	errbuf *eb;
	/* Keys in the file whose values are secrets, for the permission
	 * warning once the whole file is read. */
	struct {
		char key[KEY_MAX + 128];
		yaml_mark_t mark;
	} secrets[16];
	size_t n_secrets;
	/* Where each section mapping started, so a missing required key can
	 * point at the mapping it is missing from. */
	struct {
		char path[KEY_MAX];
		yaml_mark_t mark;
	} sections[32];
	size_t n_sections;
	mode_t mode; /* of the file, from fstat; 0 when unknown */
	/* where the keys of the dead-letter room check were written */
	bool dlq_marked[3];
	yaml_mark_t dlq_marks[3];
} loader;

static void ld_error(loader *ld, yaml_mark_t mark, const char *key,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void ld_error(loader *ld, yaml_mark_t mark, const char *key,
		     const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (key != NULL && key[0] != '\0')
		eb_add(ld->eb, "%s:%zu:%zu: %s: %s", ld->file, mark.line + 1,
		       mark.column + 1, key, msg);
	else
		eb_add(ld->eb, "%s:%zu:%zu: %s", ld->file, mark.line + 1,
		       mark.column + 1, msg);
}

static bool env_overridable(const field *f);

static void note_secret(loader *ld, yaml_mark_t mark, const char *key)
{
	if (ld->n_secrets >= COUNT(ld->secrets))
		return;
	snprintf(ld->secrets[ld->n_secrets].key, sizeof ld->secrets[0].key, "%s", key);
	ld->secrets[ld->n_secrets].mark = mark;
	ld->n_secrets++;
}

static void writer_finish(loader *ld, void *items, size_t index,
			  yaml_node_t *item_node, const char *disp);
static void writer_free(void *item);
static bool writer_equal(const void *a, const void *b);

static const enum_symbol record_symbols[] = {
	{ "EmailEvent", LS_SOURCE_EMAIL },
	{ "WebEvent", LS_SOURCE_WEB },
	{ "CallEvent", LS_SOURCE_CALL },
	{ "LeadOutcome", LS_SOURCE_OUTCOME },
	{ "LeadProfile", LS_SOURCE_PROFILE },
	{ NULL, 0 },
};

#define W_OFF(m) offsetof(ls_schema_writer, m)
#define W_SIZE(m) sizeof(((ls_schema_writer *)0)->m)

static const field writer_fields[] = {
	{ .name = "id", .type = FT_INT, .offset = W_OFF(id), .size = W_SIZE(id),
	  .flags = F_REQUIRED, .min = 1, .max = INT32_MAX,
	  .desc = "Schema id producers put in the Confluent header (magic byte 0 + 4-byte id); unique across writers." },
	{ .name = "record", .type = FT_ENUM, .offset = W_OFF(record),
	  .flags = F_REQUIRED, .symbols = record_symbols,
	  .desc = "Record the writer schema is a version of: EmailEvent, WebEvent, CallEvent, LeadOutcome or LeadProfile." },
	{ .name = "file", .type = FT_STRING, .offset = W_OFF(file),
	  .flags = F_REQUIRED,
	  .desc = "Writer schema (.avsc); a relative path resolves against the config file's directory; read at load time." },
};

static const seq_desc writers_seq = {
	.item_size = sizeof(ls_schema_writer),
	.fields = writer_fields,
	.n_fields = COUNT(writer_fields),
	.count_offset = offsetof(ls_config, schemas.n_writers),
	.items_offset = offsetof(ls_config, schemas.writers),
	.finish_item = writer_finish,
	.free_item = writer_free,
	.equal_item = writer_equal,
};

static const char *check_feature_name(const char *s, char *buf, size_t buflen);
static void parse_types(loader *ld, const field *f, void *base, yaml_node_t *node,
			const char *disp);
static bool types_equal(const void *a, const void *b);
static void parse_windows(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool windows_equal(const void *a, const void *b);
static void feature_finish(loader *ld, void *items, size_t index,
			   yaml_node_t *item_node, const char *disp);
static void features_finish_all(loader *ld, void *items, size_t n,
				yaml_node_t *seq_node, const char *disp);

/* Symbols as an operator writes them; values as ls_window.h defines them. */
static const enum_symbol kind_symbols[] = {
	{ "windowed", LS_FEATURE_WINDOWED },
	{ "velocity", LS_FEATURE_VELOCITY },
	{ "recency", LS_FEATURE_RECENCY },
	{ "difference", LS_FEATURE_DIFFERENCE },
	{ "ratio", LS_FEATURE_RATIO },
	{ "mean", LS_FEATURE_MEAN },
	{ NULL, 0 },
};

static const enum_symbol source_symbols[] = {
	{ "email", LS_SOURCE_EMAIL },
	{ "web", LS_SOURCE_WEB },
	{ "call", LS_SOURCE_CALL },
	{ "outcome", LS_SOURCE_OUTCOME },
	{ "profile", LS_SOURCE_PROFILE },
	{ NULL, 0 },
};

static const enum_symbol agg_symbols[] = {
	{ "count", LS_AGG_COUNT },
	{ "sum", LS_AGG_SUM },
	{ "last_seen", LS_AGG_LAST_SEEN },
	{ "distinct", LS_AGG_DISTINCT },
	{ NULL, 0 },
};

/* The Avro field names; each belongs to one source, so no prefix is
 * needed (ls_feature_set_new() rejects a field of another source). */
static const enum_symbol field_symbols[] = {
	{ "duration_ms", LS_FIELD_WEB_DURATION_MS },
	{ "session_id", LS_FIELD_WEB_SESSION_ID },
	{ "duration_s", LS_FIELD_CALL_DURATION_S },
	{ "sentiment", LS_FIELD_CALL_SENTIMENT },
	{ "value", LS_FIELD_OUTCOME_VALUE },
	{ "campaign_id", LS_FIELD_EMAIL_CAMPAIGN_ID },
	{ NULL, 0 },
};

/* Longer windows than state is ever kept (redis.lead_ttl's maximum) can
 * only be typos. */
#define MAX_WINDOW_MS (3650 * MS_DAY)

static const custom_desc types_custom = {
	.type_name = "sequence", .parse = parse_types, .equal = types_equal,
};

static const custom_desc windows_custom = {
	.type_name = "sequence", .parse = parse_windows, .equal = windows_equal,
};

#define F_OFF(m) offsetof(ls_feature_spec, m)
#define F_SIZE(m) sizeof(((ls_feature_spec *)0)->m)

/*
 * Defaults here are documentation: items start zeroed, and a zero member
 * means exactly these defaults to ls_feature_set_new() (kind windowed,
 * aggregation count, scale 1, prior 1, cap 365, unit 1d).
 */
static const field feature_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = F_OFF(name), .size = F_SIZE(name),
	  .flags = F_REQUIRED, .check = check_feature_name,
	  .desc = "Feature name, 1-47 of a-z 0-9 _; unique. Values are named <name>_<window> (velocity <name>_<short>_<long>, recency <name>)." },
	{ .name = "kind", .type = FT_ENUM, .offset = F_OFF(kind), .def = "windowed",
	  .symbols = kind_symbols,
	  .desc = "windowed (aggregates events) or a derived kind: velocity, recency, difference, ratio, mean." },
	{ .name = "source", .type = FT_ENUM, .offset = F_OFF(source), .symbols = source_symbols,
	  .desc = "Windowed (required): events of email, web, call, outcome or profile." },
	{ .name = "types", .type = FT_CUSTOM, .custom = &types_custom,
	  .desc = "Windowed: event types counted, e.g. [OPENED, CLICKED] (Avro symbols; for call, the call outcome); absent: every type." },
	{ .name = "page_category", .type = FT_CHARS, .offset = F_OFF(page_category),
	  .size = F_SIZE(page_category),
	  .desc = "Windowed, web only: count only pages of this category (exact match, at most 31 bytes)." },
	{ .name = "aggregation", .type = FT_ENUM, .offset = F_OFF(agg), .def = "count",
	  .symbols = agg_symbols,
	  .desc = "Windowed: count, sum, last_seen or distinct." },
	{ .name = "field", .type = FT_ENUM, .offset = F_OFF(field), .symbols = field_symbols,
	  .desc = "Windowed: field summed (duration_ms, duration_s, sentiment, value) or counted distinct (session_id, campaign_id); for count and last_seen, only events carrying it." },
	{ .name = "scale", .type = FT_NUMBER, .offset = F_OFF(scale), .def = "1",
	  .flags = F_NONZERO,
	  .desc = "Windowed sum only: multiplier of the reported value (0.001 turns ms into s)." },
	{ .name = "windows", .type = FT_CUSTOM, .custom = &windows_custom,
	  .desc = "1-4 distinct window lengths, e.g. [24h, 7d] or [{length: 7d, slices: 28}]; velocity: exactly [short, long]; not for recency." },
	{ .name = "a", .type = FT_CHARS, .offset = F_OFF(a), .size = F_SIZE(a),
	  .check = check_feature_name,
	  .desc = "Derived (required): the windowed feature read (the numerator for ratio and mean)." },
	{ .name = "b", .type = FT_CHARS, .offset = F_OFF(b), .size = F_SIZE(b),
	  .check = check_feature_name,
	  .desc = "difference, ratio, mean (required): the second windowed feature (subtracted, the denominator)." },
	{ .name = "prior", .type = FT_NUMBER, .offset = F_OFF(param), .def = "1",
	  .flags = F_POSITIVE,
	  .desc = "Velocity: pseudo-events of smoothing spread over the long window (> 0)." },
	{ .name = "cap", .type = FT_NUMBER, .offset = F_OFF(param), .def = "365",
	  .flags = F_POSITIVE,
	  .desc = "Recency: largest value reported, and the value when never seen (> 0)." },
	{ .name = "unit", .type = FT_DURATION, .offset = F_OFF(unit_ms), .def = "1d",
	  .min = 1, .max = MAX_WINDOW_MS,
	  .desc = "Recency: unit of the value (1d: days since the newest event)." },
	{ .name = "floor_zero", .type = FT_BOOL, .offset = F_OFF(floor_zero), .def = "false",
	  .desc = "Difference: report max(0, a - b)." },
};

static const seq_desc features_seq = {
	.item_size = sizeof(ls_feature_spec),
	.fields = feature_fields,
	.n_fields = COUNT(feature_fields),
	.count_offset = offsetof(ls_config, features.n),
	.items_offset = offsetof(ls_config, features.specs),
	.finish_item = feature_finish,
	.finish_all = features_finish_all,
	.max_items = LS_FEATURE_MAX_SPECS,
	.empty_error = "must list at least one feature (remove the key, or leave it empty, for the built-in set)",
};

/* models: items are ls_model_spec itself; hooks are defined with the
 * features hooks below. */
static const char *check_model_name(const char *s, char *buf, size_t buflen);
static void model_init(void *item);
static void parse_positive(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp);
static void parse_negative(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp);
static bool positive_equal(const void *a, const void *b);
static bool negative_equal(const void *a, const void *b);
static void parse_tiers(loader *ld, const field *f, void *base, yaml_node_t *node,
			const char *disp);
static bool tiers_equal(const void *a, const void *b);
static void tiers_copy(void *dst, const void *src);
static void parse_crosses(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool crosses_equal(const void *a, const void *b);
static void parse_metrics(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool metrics_equal(const void *a, const void *b);
static void model_finish(loader *ld, void *items, size_t index,
			 yaml_node_t *item_node, const char *disp);

static const custom_desc positive_custom = {
	.type_name = "sequence", .parse = parse_positive, .equal = positive_equal,
};
static const custom_desc negative_custom = {
	.type_name = "sequence", .parse = parse_negative, .equal = negative_equal,
};
static const custom_desc tiers_custom = {
	.type_name = "sequence", .parse = parse_tiers, .equal = tiers_equal,
	.copy = tiers_copy,
};
static const custom_desc crosses_custom = {
	.type_name = "sequence", .parse = parse_crosses, .equal = crosses_equal,
};
static const custom_desc metrics_custom = {
	.type_name = "sequence", .parse = parse_metrics, .equal = metrics_equal,
};

/* Longest label timeout, decay half-life: as long as state is ever kept. */
#define MAX_MODEL_MS (3650 * MS_DAY)

#define M_OFF(m) offsetof(ls_model_spec, m)
#define M_SIZE(m) sizeof(((ls_model_spec *)0)->m)

_Static_assert(sizeof(((ls_model_spec *)0)->ftrl.n_buckets) == sizeof(int32_t),
	       "ftrl buckets are stored as a 4-byte int");
_Static_assert(LS_OUTCOME__COUNT <= 32, "outcome masks are 32 bits");

/*
 * Unlike features, most model defaults are not zero, so model_init()
 * copies default_model (below) into each item before it is walked. The
 * .def texts here are the same values written as YAML; test_config checks
 * that a model with only a name equals the built-in one and that the
 * README and models_default.yaml say so.
 */
static const field model_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = M_OFF(name), .size = M_SIZE(name),
	  .flags = F_REQUIRED, .check = check_model_name,
	  .desc = "Model name, 1-31 of a-z 0-9 _; unique. Names the model in metrics, Redis keys and ScoreChange records." },
	{ .name = "positive", .type = FT_CUSTOM, .offset = M_OFF(positive_mask),
	  .custom = &positive_custom, .def = "[CONVERTED, WON]",
	  .desc = "LeadOutcome types that make a positive example; at least one." },
	{ .name = "negative", .type = FT_CUSTOM, .offset = M_OFF(negative_mask),
	  .custom = &negative_custom, .def = "[LOST, DISQUALIFIED]",
	  .desc = "LeadOutcome types that make a negative example; none may also be positive; [] leaves only label_timeout." },
	{ .name = "label_timeout", .type = FT_DURATION, .offset = M_OFF(label_timeout_ms),
	  .def = "90d", .min = 0, .max = MAX_MODEL_MS,
	  .desc = "A lead with no positive outcome for this long becomes a negative example; 0 disables (0 to 3650d)." },
	{ .name = "min_delta", .type = FT_NUMBER, .offset = M_OFF(min_delta), .def = "0.05",
	  .flags = F_UNIT | F_RELOAD,
	  .desc = "A new score is published when it moves at least this much or the tier changes (0 to 1; 0 publishes every score)." },
	{ .name = "tiers", .type = FT_CUSTOM, .custom = &tiers_custom, .flags = F_RELOAD,
	  .def = "[{name: cold, min: 0}, {name: warm, min: 0.3}, {name: hot, min: 0.7}]",
	  .desc = "1-16 tiers, lowest first, each {name, min}; the first min is 0 or left out, the others increase inside (0,1)." },
	{ .name = "hysteresis", .type = FT_NUMBER, .offset = M_OFF(tiers.hysteresis),
	  .def = "0.02", .flags = F_UNIT | F_RELOAD,
	  .desc = "A lead changes tier only once its score is this far past a boundary; below half of every gap between mins." },
	{ .name = "ftrl.alpha", .type = FT_NUMBER, .offset = M_OFF(ftrl.alpha), .def = "0.1",
	  .desc = "FTRL learning rate scale (> 0)." },
	{ .name = "ftrl.beta", .type = FT_NUMBER, .offset = M_OFF(ftrl.beta), .def = "0.1",
	  .desc = "FTRL learning rate smoothing (>= 0)." },
	{ .name = "ftrl.l1", .type = FT_NUMBER, .offset = M_OFF(ftrl.l1), .def = "0.3",
	  .desc = "L1 regularisation (>= 0); keeps rarely seen hashed values at weight 0." },
	{ .name = "ftrl.l2", .type = FT_NUMBER, .offset = M_OFF(ftrl.l2), .def = "0.3",
	  .desc = "L2 regularisation (>= 0)." },
	{ .name = "ftrl.buckets", .type = FT_INT, .offset = M_OFF(ftrl.n_buckets),
	  .size = M_SIZE(ftrl.n_buckets), .def = "262144",
	  .min = LS_FTRL_MIN_BUCKETS, .max = LS_FTRL_MAX_BUCKETS,
	  .desc = "Hash buckets for categorical values and crosses; a power of two, 16 to 16777216 (16 bytes each)." },
	{ .name = "ftrl.clip", .type = FT_NUMBER, .offset = M_OFF(ftrl.clip), .def = "5",
	  .desc = "Inputs are clamped to +-clip after the log1p transform and standardisation (> 0)." },
	{ .name = "crosses", .type = FT_CUSTOM, .custom = &crosses_custom,
	  .def = "[[industry, size_band], [industry, role]]",
	  .desc = "Up to 16 pairs [a, b] of categorical keys hashed together as one input; [] for none." },
	{ .name = "metrics", .type = FT_CUSTOM, .custom = &metrics_custom,
	  .def = "[employees, annual_revenue]",
	  .desc = "Up to 32 profile metrics used as dense numeric inputs; other metrics are hashed." },
	{ .name = "decay_half_life", .type = FT_DURATION, .offset = M_OFF(decay_half_life_ms),
	  .def = "0s", .min = 0, .max = MAX_MODEL_MS, .flags = F_RELOAD,
	  .desc = "At read time the score decays toward the prior with this half-life of inactivity; 0 disables (0 to 3650d)." },
	{ .name = "eval_window", .type = FT_INT, .offset = M_OFF(eval_window),
	  .size = M_SIZE(eval_window), .def = "10000", .min = 100, .max = (int64_t)LS_EVAL_MAX_CAPACITY,
	  .desc = "Most recent labels in progressive validation (AUC, log-loss, ECE) (100 to 1048576)." },
	{ .name = "shadow", .type = FT_BOOL, .offset = M_OFF(shadow), .def = "false",
	  .flags = F_RELOAD,
	  .desc = "Learns, scores and logs, but publishes no ScoreChange records." },
};

static const seq_desc models_seq = {
	.item_size = sizeof(ls_model_spec),
	.init_item = model_init,
	.fields = model_fields,
	.n_fields = COUNT(model_fields),
	.count_offset = offsetof(ls_config, models.n),
	.items_offset = offsetof(ls_config, models.specs),
	.finish_item = model_finish,
	.max_items = LS_MODEL_MAX,
	.empty_error = "must list at least one model (remove the key, or leave it empty, for the built-in conversion model)",
};

/* campaigns: items are ls_campaign_spec; hooks are defined after the
 * models' hooks below. */
static const char *check_campaign_id(const char *s, char *buf, size_t buflen);
static void campaign_init(void *item);
static void parse_arms(loader *ld, const field *f, void *base, yaml_node_t *node,
		       const char *disp);
static bool arms_equal(const void *a, const void *b);
static void parse_rewards(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool rewards_equal(const void *a, const void *b);
static void parse_context(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp);
static bool context_equal(const void *a, const void *b);
static void campaign_finish(loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp);

static const custom_desc arms_custom = {
	.type_name = "sequence", .parse = parse_arms, .equal = arms_equal,
};
static const custom_desc rewards_custom = {
	.type_name = "map", .parse = parse_rewards, .equal = rewards_equal,
};
static const custom_desc context_custom = {
	.type_name = "sequence", .parse = parse_context, .equal = context_equal,
};

#define K_OFF(m) offsetof(ls_campaign_spec, m)
#define K_SIZE(m) sizeof(((ls_campaign_spec *)0)->m)

static const field campaign_fields[] = {
	{ .name = "id", .type = FT_CHARS, .offset = K_OFF(id), .size = K_SIZE(id),
	  .flags = F_REQUIRED, .check = check_campaign_id,
	  .desc = "Campaign id, 1-63 of A-Z a-z 0-9 _ -; unique. Names the campaign in the API, Redis keys and metrics." },
	{ .name = "arms", .type = FT_CUSTOM, .custom = &arms_custom, .flags = F_REQUIRED,
	  .desc = "The variants, 1-64 distinct ids of A-Z a-z 0-9 _ - .; removing one retires it, its counts stay in Redis." },
	{ .name = "rewards", .type = FT_CUSTOM, .custom = &rewards_custom, .def = "{CLICKED: 1}",
	  .desc = "EmailEvent types that reward a decision, with weights in (0,1]; a decision's reward is its largest weight (not SENT: that activates)." },
	{ .name = "reward_window", .type = FT_DURATION, .offset = K_OFF(reward_window_ms),
	  .def = "72h", .min = MS_SECOND, .max = 90 * MS_DAY,
	  .desc = "Rewards count this long after activation; then a decision without one gets default_reward (1s to 90d)." },
	{ .name = "activation_timeout", .type = FT_DURATION, .offset = K_OFF(activation_timeout_ms),
	  .def = "24h", .min = MS_SECOND, .max = 90 * MS_DAY,
	  .desc = "A decision made with activate: false and never activated is forgotten after this, without touching the posterior (1s to 90d)." },
	{ .name = "default_reward", .type = FT_NUMBER, .offset = K_OFF(default_reward),
	  .def = "0", .flags = F_UNIT,
	  .desc = "Reward of a decision whose window expired without a reward event (0 to 1)." },
	{ .name = "prior.alpha", .type = FT_NUMBER, .offset = K_OFF(prior_a), .def = "1",
	  .desc = "Beta prior alpha of every arm (> 0)." },
	{ .name = "prior.beta", .type = FT_NUMBER, .offset = K_OFF(prior_b), .def = "1",
	  .desc = "Beta prior beta of every arm (> 0)." },
	{ .name = "min_share", .type = FT_NUMBER, .offset = K_OFF(min_share), .def = "0.01",
	  .flags = F_UNIT,
	  .desc = "Every arm is chosen with at least this probability, for exploration and offline evaluation (0 to 1/arms)." },
	{ .name = "context", .type = FT_CUSTOM, .custom = &context_custom, .def = "[]",
	  .desc = "Up to 2 keys whose values make a context bucket: tier (the lead's tier in tier_model) and/or profile attributes; [] for none." },
	{ .name = "tier_model", .type = FT_CHARS, .offset = K_OFF(tier_model), .size = K_SIZE(tier_model),
	  .def = "conversion", .check = check_model_name,
	  .desc = "The model whose tier the context key tier means." },
	{ .name = "min_bucket_trials", .type = FT_INT, .offset = K_OFF(min_bucket_trials),
	  .size = K_SIZE(min_bucket_trials), .def = "100", .min = 0, .max = 1000000000,
	  .desc = "A context bucket decides with the campaign-wide posterior until it has this many resolved decisions (0 to 1e9)." },
	{ .name = "max_buckets", .type = FT_INT, .offset = K_OFF(max_buckets),
	  .size = K_SIZE(max_buckets), .def = "1000", .min = 1, .max = 65536,
	  .desc = "Context buckets stored with their own counters and posterior (the first to resolve); decisions in further buckets are decided and counted campaign-wide (1 to 65536)." },
	{ .name = "propensity_draws", .type = FT_INT, .offset = K_OFF(propensity_draws),
	  .size = K_SIZE(propensity_draws), .def = "10000", .min = 100, .max = 1000000,
	  .desc = "Posterior draws that estimate the arm probabilities decisions are drawn from (100 to 1000000)." },
};

static const seq_desc campaigns_seq = {
	.item_size = sizeof(ls_campaign_spec),
	.init_item = campaign_init,
	.fields = campaign_fields,
	.n_fields = COUNT(campaign_fields),
	.count_offset = offsetof(ls_config, campaigns.n),
	.items_offset = offsetof(ls_config, campaigns.specs),
	.finish_item = campaign_finish,
	.max_items = LS_CAMPAIGN_MAX,
	.empty_error = NULL,
};

static const map_desc kafka_properties_map = {
	.count_offset = offsetof(ls_config, kafka.n_properties),
	.items_offset = offsetof(ls_config, kafka.properties),
	.check_key = check_property_key,
	.begin = kafka_props_begin,
	.check_entry = check_kafka_property,
	.end = kafka_props_end,
	.secret_key = ls_kafka_property_is_secret,
};

#define C_OFF(m) offsetof(ls_config, m)
#define C_SIZE(m) sizeof(((ls_config *)0)->m)
#define TOPIC(key, member, dflt, what)                                        \
	{ .name = "kafka.topics." key, .type = FT_STRING,                     \
	  .offset = C_OFF(kafka.topics.member), .def = dflt,                  \
	  .check = check_topic, .desc = what }

static const field root_fields[] = {
	{ .name = "kafka.brokers", .type = FT_STRING, .offset = C_OFF(kafka.brokers),
	  .flags = F_REQUIRED, .check = check_brokers,
	  .desc = "Bootstrap brokers, comma-separated host:port list." },
	{ .name = "kafka.group_id", .type = FT_STRING, .offset = C_OFF(kafka.group_id),
	  .def = "leadscore",
	  .desc = "Consumer group; instances with the same group share the partitions." },
	TOPIC("email", email, "leads.email", "Input topic of EmailEvent records."),
	TOPIC("web", web, "leads.web", "Input topic of WebEvent records."),
	TOPIC("call", call, "leads.call", "Input topic of CallEvent records."),
	TOPIC("outcome", outcome, "leads.outcome", "Input topic of LeadOutcome records (labels)."),
	TOPIC("profile", profile, "leads.profile", "Input topic of LeadProfile records."),
	TOPIC("scores", scores, "leads.scores", "Output topic of ScoreChange records."),
	TOPIC("dead_letter", dead_letter, "leads.dead_letter", "Output topic for undecodable messages, with a reason header."),
	TOPIC("decisions", decisions, "leads.decisions", "Output topic of bandit decision records."),
	{ .name = "kafka.properties", .type = FT_MAP, .def = "{}",
	  .map = &kafka_properties_map,
	  .desc = "librdkafka properties passed through verbatim (e.g. security.protocol); not bootstrap.servers or group.id." },
	{ .name = "redis.url", .type = FT_STRING, .offset = C_OFF(redis.url),
	  .def = "redis://127.0.0.1:6379/0", .flags = F_SECRET, .check = check_redis_url,
	  .desc = REDIS_URL_FORMS "; user and password percent-decoded; a user authenticates as that ACL user." },
	{ .name = "redis.key_prefix", .type = FT_STRING, .offset = C_OFF(redis.key_prefix),
	  .def = "ls:", .check = check_key_prefix,
	  .desc = "Prefix of every Redis key; no whitespace or braces." },
	{ .name = "redis.lead_ttl", .type = FT_DURATION, .offset = C_OFF(redis.lead_ttl_ms),
	  .def = "30d", .flags = F_RELOAD, .min = MS_SECOND, .max = 3650 * MS_DAY,
	  .desc = "Per-lead state expires this long after the lead's last event (1s to 3650d)." },
	{ .name = "redis.connect_timeout", .type = FT_DURATION, .offset = C_OFF(redis.connect_timeout_ms),
	  .def = "2s", .min = 1, .max = 10 * MS_MINUTE,
	  .desc = "Timeout for connecting to Redis (1ms to 10m)." },
	{ .name = "redis.command_timeout", .type = FT_DURATION, .offset = C_OFF(redis.command_timeout_ms),
	  .def = "5s", .min = 1, .max = 10 * MS_MINUTE,
	  .desc = "Timeout for one Redis round trip (1ms to 10m)." },
	{ .name = "http.listen", .type = FT_STRING, .offset = C_OFF(http.listen),
	  .def = "127.0.0.1:8080", .check = check_listen,
	  .desc = "host:port of the HTTP API and metrics ([::1]:8080 for IPv6; port 0 picks a free port)." },
	{ .name = "http.auth_token", .type = FT_STRING, .offset = C_OFF(http.auth_token),
	  .flags = F_NULLABLE | F_SECRET, .check = check_token,
	  .desc = "Bearer token HTTP API clients must present; unset (null) means no authentication." },
	{ .name = "http.threads", .type = FT_INT, .offset = C_OFF(http.threads),
	  .size = C_SIZE(http.threads), .def = "0", .min = 0, .max = 64,
	  .desc = "Threads serving HTTP; 0 picks 1 below 4 CPUs, else 2 (0 to 64; see HTTP API)." },
	{ .name = "http.max_connections", .type = FT_INT, .offset = C_OFF(http.max_connections),
	  .size = C_SIZE(http.max_connections), .def = "0", .min = 0, .max = 1000000,
	  .desc = "Most HTTP connections open at once; more are closed on accept. 0: the fd limit less 256, at most 4096 (0 to 1000000)." },
	{ .name = "http.max_connections_per_address", .type = FT_INT,
	  .offset = C_OFF(http.max_connections_per_address),
	  .size = C_SIZE(http.max_connections_per_address), .def = "0", .min = 0, .max = 1000000,
	  .desc = "Most HTTP connections from one client address; 0: an eighth of max_connections (0 to 1000000)." },
	{ .name = "http.request_timeout", .type = FT_DURATION, .offset = C_OFF(http.request_timeout_ms),
	  .def = "30s", .min = MS_SECOND, .max = 60 * MS_MINUTE,
	  .desc = "A request must arrive and be answered within this time of its connection opening or its previous response, or the connection is closed (1s to 1h)." },
	{ .name = "log.level", .type = FT_LOG_LEVEL, .offset = C_OFF(log.level),
	  .def = "info", .flags = F_RELOAD,
	  .desc = "debug, info, warn or error." },
	{ .name = "pipeline.batch_size", .type = FT_INT, .offset = C_OFF(pipeline.batch_size),
	  .size = C_SIZE(pipeline.batch_size), .def = "5000", .flags = F_RELOAD,
	  .min = 1, .max = 1000000,
	  .desc = "Most messages in one micro-batch (1 to 1000000)." },
	{ .name = "pipeline.batch_max_wait", .type = FT_DURATION, .offset = C_OFF(pipeline.batch_max_wait_ms),
	  .def = "100ms", .flags = F_RELOAD, .min = 1, .max = MS_MINUTE,
	  .desc = "Longest wait to fill a micro-batch (1ms to 1m)." },
	{ .name = "pipeline.commit_interval", .type = FT_DURATION, .offset = C_OFF(pipeline.commit_interval_ms),
	  .def = "200ms", .flags = F_RELOAD, .min = 0, .max = MS_MINUTE,
	  .desc = "Changed leads and offsets are committed to Redis this often; 0 commits every batch (0 to 1m)." },
	{ .name = "pipeline.shutdown_timeout", .type = FT_DURATION, .offset = C_OFF(pipeline.shutdown_timeout_ms),
	  .def = "10s", .flags = F_RELOAD, .min = 1, .max = MS_HOUR,
	  .desc = "Longest time SIGTERM waits for the current batch to commit (1ms to 1h)." },
	{ .name = "pipeline.align_stall", .type = FT_DURATION, .offset = C_OFF(pipeline.align_stall_ms),
	  .def = "5s", .flags = F_RELOAD, .min = 0, .max = MS_HOUR,
	  .desc = "Input topics are read in step by record timestamp; a partition number whose slowest topic has not moved for this long is read unaligned until it moves; 0 turns the alignment off (0 to 1h)." },
	{ .name = "pipeline.grace", .type = FT_DURATION, .offset = C_OFF(pipeline.grace_ms),
	  .def = "30d", .flags = F_RELOAD, .min = 0, .max = 365 * MS_DAY,
	  .desc = "Events older than the lead's watermark minus this are dropped and counted (0 to 365d)." },
	{ .name = "pipeline.dedupe_horizon", .type = FT_DURATION, .offset = C_OFF(pipeline.dedupe_horizon_ms),
	  .def = "1h", .flags = F_RELOAD, .min = 0, .max = 30 * MS_DAY,
	  .desc = "Redeliveries are caught back to the lead's watermark minus this (at most the grace); older repeats are applied again (0 to 30d)." },
	{ .name = "pipeline.max_future_skew", .type = FT_DURATION, .offset = C_OFF(pipeline.max_future_skew_ms),
	  .def = "5m", .flags = F_RELOAD, .min = 0, .max = 7 * MS_DAY,
	  .desc = "Events whose ts is further ahead of the wall clock go to the dead-letter topic (0 to 7d)." },
	{ .name = "pipeline.dedupe_ids", .type = FT_INT, .offset = C_OFF(pipeline.dedupe_ids),
	  .size = C_SIZE(pipeline.dedupe_ids), .def = "32", .min = 1, .max = LS_LEAD_MAX_DEDUPE_K,
	  .desc = "Event ids remembered per lead to drop redeliveries (1 to 1024)." },
	{ .name = "pipeline.max_profile_attributes", .type = FT_INT,
	  .offset = C_OFF(pipeline.max_profile_attributes),
	  .size = C_SIZE(pipeline.max_profile_attributes), .def = "32",
	  .min = 0, .max = LS_LEAD_MAX_PROFILE_KEYS,
	  .desc = "Most profile attributes kept per lead; new keys beyond it are dropped (0 to 1024)." },
	{ .name = "pipeline.max_profile_metrics", .type = FT_INT,
	  .offset = C_OFF(pipeline.max_profile_metrics),
	  .size = C_SIZE(pipeline.max_profile_metrics), .def = "32",
	  .min = 0, .max = LS_LEAD_MAX_PROFILE_KEYS,
	  .desc = "Most profile metrics kept per lead; new keys beyond it are dropped (0 to 1024)." },
	{ .name = "pipeline.cache_leads", .type = FT_INT, .offset = C_OFF(pipeline.cache_leads),
	  .size = C_SIZE(pipeline.cache_leads), .def = "100000", .min = 0, .max = 10000000,
	  .desc = "Leads kept in process between batches; 0 reads every lead from Redis (0 to 10000000)." },
	{ .name = "pipeline.max_record_size", .type = FT_INT, .offset = C_OFF(pipeline.max_record_size),
	  .size = C_SIZE(pipeline.max_record_size), .def = "983040", .min = 1024, .max = 104857600,
	  .desc = "Larger Kafka records, in bytes, go to the dead-letter topic as oversized (1024 to 104857600); with max_id_bytes and 1536 bytes of headers it must fit the producers' message.max.bytes (kafka.properties, default 1000000)." },
	{ .name = "pipeline.max_id_bytes", .type = FT_INT, .offset = C_OFF(pipeline.max_id_bytes),
	  .size = C_SIZE(pipeline.max_id_bytes), .def = "256", .min = 128, .max = 65536,
	  .desc = "Longest id (lead_id, event_id, decision_id, campaign_id, variant_id, session_id, message key), in bytes: longer ones are dead-lettered as id_too_long, or answered 400 id_too_long over HTTP; at least 128, above the decision ids this daemon makes (128 to 65536)." },
	{ .name = "pipeline.ready_failed_batches", .type = FT_INT,
	  .offset = C_OFF(pipeline.ready_failed_batches),
	  .size = C_SIZE(pipeline.ready_failed_batches), .def = "5", .flags = F_RELOAD,
	  .min = 1, .max = 1000000,
	  .desc = "/readyz answers 503 once this many batches in a row have failed and been thrown away (1 to 1000000)." },
	{ .name = "pipeline.ready_stall", .type = FT_DURATION, .offset = C_OFF(pipeline.ready_stall_ms),
	  .def = "30s", .flags = F_RELOAD, .min = 0, .max = MS_HOUR,
	  .desc = "/readyz answers 503 when records have waited this long with nothing committed; keep it above commit_interval; 0 turns it off (0 to 1h)." },
	{ .name = "pipeline.dead_letter_log_rate", .type = FT_INT,
	  .offset = C_OFF(pipeline.dead_letter_log_rate),
	  .size = C_SIZE(pipeline.dead_letter_log_rate), .def = "10", .flags = F_RELOAD,
	  .min = 0, .max = 100000,
	  .desc = "Dead letters logged one line each per second; beyond it one summary line a second says how many were not (counts stay exact) (0 to 100000)." },
	{ .name = "schemas.writers", .type = FT_SEQ, .def = "[]", .seq = &writers_seq,
	  .desc = "Writer schemas by Confluent schema id, for producers on older or newer schema versions." },
	{ .name = "features", .type = FT_SEQ, .seq = &features_seq,
	  .desc = "Feature definitions (see Features below); absent or null: the built-in set; present: replaces it entirely." },
	{ .name = "scoring.checkpoint_interval", .type = FT_DURATION,
	  .offset = C_OFF(scoring.checkpoint_interval_ms), .def = "5s", .flags = F_RELOAD,
	  .min = MS_SECOND, .max = MS_HOUR,
	  .desc = "Model state and evaluation windows are checkpointed to Redis (and merged across instances) this often (1s to 1h)." },
	{ .name = "scoring.rescore_interval", .type = FT_DURATION,
	  .offset = C_OFF(scoring.rescore_interval_ms), .def = "1h", .flags = F_RELOAD,
	  .min = 0, .max = 30 * MS_DAY,
	  .desc = "A lead without events is rescored when event time has moved this far past its last score, as its windows age; 0 turns it off (0 to 30d)." },
	{ .name = "models", .type = FT_SEQ, .seq = &models_seq,
	  .desc = "Scoring models (see Models below); absent or null: one model named conversion with every default; present: replaces it." },
	{ .name = "campaigns", .type = FT_SEQ, .seq = &campaigns_seq, .def = "[]",
	  .flags = F_RELOAD,
	  .desc = "Email-variant bandit campaigns (see Bandit below); arms may be added or retired live." },
};

#define N_ROOT COUNT(root_fields)

/* ------------------------------------------------------------------ */
/* Setting, comparing and freeing fields                               */
/* ------------------------------------------------------------------ */

static void *at(void *base, size_t offset)
{
	return (char *)base + offset;
}

static const void *cat(const void *base, size_t offset)
{
	return (const char *)base + offset;
}

/* Pointers to arrays are read and written with memcpy because the table
 * only knows them as "a pointer at this offset", not their type. */
static void *get_ptr(const void *base, size_t offset)
{
	void *p;
	memcpy(&p, cat(base, offset), sizeof p);
	return p;
}

static void set_ptr(void *base, size_t offset, void *p)
{
	memcpy(at(base, offset), &p, sizeof p);
}

static size_t get_count(const void *base, size_t offset)
{
	size_t n;
	memcpy(&n, cat(base, offset), sizeof n);
	return n;
}

static void set_count(void *base, size_t offset, size_t n)
{
	memcpy(at(base, offset), &n, sizeof n);
}

static int64_t get_int(const field *f, const void *base)
{
	if (f->size == sizeof(int32_t)) {
		int32_t v;
		memcpy(&v, cat(base, f->offset), sizeof v);
		return v;
	}
	int64_t v;
	memcpy(&v, cat(base, f->offset), sizeof v);
	return v;
}

static void set_int(const field *f, void *base, int64_t v)
{
	/* The row's min and max keep v within the member's width. */
	if (f->size == sizeof(int32_t)) {
		int32_t v32 = (int32_t)v;
		memcpy(at(base, f->offset), &v32, sizeof v32);
		return;
	}
	memcpy(at(base, f->offset), &v, sizeof v);
}

static int get_enum(const field *f, const void *base)
{
	int v;
	memcpy(&v, cat(base, f->offset), sizeof v);
	return v;
}

static void set_enum(const field *f, void *base, int v)
{
	memcpy(at(base, f->offset), &v, sizeof v);
}

static char **str_at(const field *f, void *base)
{
	return (char **)at(base, f->offset);
}

static const char *str_get(const field *f, const void *base)
{
	const char *s;
	memcpy(&s, cat(base, f->offset), sizeof s);
	return s;
}

static const char *type_phrase(const field *f)
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

static void symbol_list(const enum_symbol *syms, char *buf, size_t buflen)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; syms[i].name != NULL; i++) {
		int n = snprintf(buf + len, buflen - len, "%s%s", i > 0 ? ", " : "", syms[i].name);
		if (n < 0 || (size_t)n >= buflen - len)
			return;
		len += (size_t)n;
	}
}

/*
 * Parse text as the value of scalar row f and store it in base. is_null
 * says the YAML value was a plain null (~, null, empty). On failure the
 * member is unchanged and msg says why (without the key; the caller adds
 * the position or variable name).
 */
static int field_set(const field *f, void *base, const char *text, bool is_null,
		     char *msg, size_t msglen)
{
	char qb[72];

	if (is_null) {
		if (f->type == FT_STRING && (f->flags & F_NULLABLE)) {
			char **sp = str_at(f, base);
			free(*sp);
			*sp = NULL;
			return 0;
		}
		snprintf(msg, msglen, "expected %s, got null", type_phrase(f));
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
			snprintf(msg, msglen, "%s, got %s", why, q(text, qb, sizeof qb));
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
			snprintf(msg, msglen, "expected an integer, got %s", q(text, qb, sizeof qb));
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
		if (ls_config_parse_duration(text, &v) != 0) {
			snprintf(msg, msglen,
				 "expected a duration such as 500ms, 30s, 15m, 24h or 7d, got %s",
				 q(text, qb, sizeof qb));
			return -1;
		}
		if (v < f->min || v > f->max) {
			snprintf(msg, msglen, "must be between %s and %s, got %s",
				 format_duration(f->min, lo, sizeof lo),
				 format_duration(f->max, hi, sizeof hi),
				 format_duration(v, got, sizeof got));
			return -1;
		}
		int64_t *ip = (int64_t *)at(base, f->offset);
		*ip = v;
		return 0;
	}
	case FT_BOOL: {
		bool v;
		if (ls_config_parse_bool(text, &v) != 0) {
			snprintf(msg, msglen, "expected true or false, got %s", q(text, qb, sizeof qb));
			return -1;
		}
		bool *bp = (bool *)at(base, f->offset);
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
		symbol_list(f->symbols, list, sizeof list);
		snprintf(msg, msglen, "expected one of %s, got %s", list, q(text, qb, sizeof qb));
		return -1;
	}
	case FT_LOG_LEVEL: {
		int lvl = ls_log_level_from_name(text);
		if (lvl < 0) {
			snprintf(msg, msglen, "expected one of debug, info, warn, error, got %s",
				 q(text, qb, sizeof qb));
			return -1;
		}
		set_enum(f, base, lvl);
		return 0;
	}
	case FT_NUMBER: {
		double v;
		if (parse_number(text, &v) != 0) {
			snprintf(msg, msglen, "expected a decimal number, got %s", q(text, qb, sizeof qb));
			return -1;
		}
		if ((f->flags & F_POSITIVE) && !(v > 0.0)) {
			snprintf(msg, msglen, "must be greater than 0, got %s", q(text, qb, sizeof qb));
			return -1;
		}
		if ((f->flags & F_NONZERO) && v == 0.0) {
			snprintf(msg, msglen, "must not be 0");
			return -1;
		}
		if ((f->flags & F_UNIT) && !(v >= 0.0 && v <= 1.0)) {
			snprintf(msg, msglen, "must be between 0 and 1, got %s", q(text, qb, sizeof qb));
			return -1;
		}
		memcpy(at(base, f->offset), &v, sizeof v);
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
			snprintf(msg, msglen, "%s, got %s", why, q(text, qb, sizeof qb));
			return -1;
		}
		/* Zero the tail too, so equal values compare equal bytewise. */
		memset(at(base, f->offset), 0, f->size);
		memcpy(at(base, f->offset), text, len);
		return 0;
	}
	case FT_MAP:
	case FT_SEQ:
	case FT_CUSTOM:
		break;
	}
	snprintf(msg, msglen, "expected %s, got a single value", type_phrase(f));
	return -1;
}

static void free_fields(const field *tbl, size_t n, void *base);

static void free_map(const map_desc *md, void *base)
{
	ls_config_kv *kv = get_ptr(base, md->items_offset);
	size_t n = get_count(base, md->count_offset);
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
	set_ptr(base, md->items_offset, NULL);
	set_count(base, md->count_offset, 0);
}

static void free_seq(const seq_desc *sd, void *base)
{
	char *items = get_ptr(base, sd->items_offset);
	size_t n = get_count(base, sd->count_offset);
	for (size_t i = 0; i < n; i++) {
		void *item = items + i * sd->item_size;
		free_fields(sd->fields, sd->n_fields, item);
		if (sd->free_item != NULL)
			sd->free_item(item);
	}
	free(items);
	set_ptr(base, sd->items_offset, NULL);
	set_count(base, sd->count_offset, 0);
}

static void free_fields(const field *tbl, size_t n, void *base)
{
	for (size_t i = 0; i < n; i++) {
		const field *f = &tbl[i];
		if (f->type == FT_STRING) {
			char **sp = str_at(f, base);
			free(*sp);
			*sp = NULL;
		} else if (f->type == FT_MAP) {
			free_map(f->map, base);
		} else if (f->type == FT_SEQ) {
			free_seq(f->seq, base);
		}
	}
}

static bool str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool fields_equal(const field *tbl, size_t n, const void *a, const void *b);

static bool map_equal(const map_desc *md, const void *a, const void *b)
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

static bool seq_equal(const seq_desc *sd, const void *a, const void *b)
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

static bool field_equal(const field *f, const void *a, const void *b)
{
	switch (f->type) {
	case FT_STRING:
		return str_equal(str_get(f, a), str_get(f, b));
	case FT_INT:
		return get_int(f, a) == get_int(f, b);
	case FT_DURATION:
		return memcmp(cat(a, f->offset), cat(b, f->offset), sizeof(int64_t)) == 0;
	case FT_BOOL:
		return *(const bool *)cat(a, f->offset) == *(const bool *)cat(b, f->offset);
	case FT_ENUM:
	case FT_LOG_LEVEL:
		return get_enum(f, a) == get_enum(f, b);
	case FT_MAP:
		return map_equal(f->map, a, b);
	case FT_SEQ:
		return seq_equal(f->seq, a, b);
	case FT_NUMBER: {
		double x, y;
		memcpy(&x, cat(a, f->offset), sizeof x);
		memcpy(&y, cat(b, f->offset), sizeof y);
		return x == y;
	}
	case FT_CHARS:
		return strncmp(cat(a, f->offset), cat(b, f->offset), f->size) == 0;
	case FT_CUSTOM:
		return f->custom->equal(a, b);
	}
	return false;
}

static bool fields_equal(const field *tbl, size_t n, const void *a, const void *b)
{
	for (size_t i = 0; i < n; i++)
		if (!field_equal(&tbl[i], a, b))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* schemas.writers hooks                                               */
/* ------------------------------------------------------------------ */

static char *resolve_path(const char *dir, const char *file)
{
	if (file[0] == '/' || dir == NULL)
		return strdup(file);
	size_t dl = strlen(dir), fl = strlen(file);
	bool slash = dl > 0 && dir[dl - 1] == '/';
	char *p = malloc(dl + (slash ? 0 : 1) + fl + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, dir, dl);
	if (!slash)
		p[dl++] = '/';
	memcpy(p + dl, file, fl + 1);
	return p;
}

/* Whole file as a NUL-terminated string; NULL with errno on failure. */
static char *read_small_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (buf == NULL) {
		fclose(fp);
		errno = ENOMEM;
		return NULL;
	}
	for (;;) {
		if (len + 1 == cap) {
			if (cap > MAX_SCHEMA_FILE) {
				free(buf);
				fclose(fp);
				errno = EFBIG;
				return NULL;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				fclose(fp);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - 1 - len, fp);
		len += got;
		if (got == 0) {
			int failed = ferror(fp);
			int saved = errno;
			fclose(fp);
			if (failed) {
				free(buf);
				errno = saved != 0 ? saved : EIO;
				return NULL;
			}
			buf[len] = '\0';
			return buf;
		}
	}
}

static yaml_node_t *mapping_value(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static void writer_finish(loader *ld, void *items, size_t index,
			  yaml_node_t *item_node, const char *disp)
{
	ls_schema_writer *ws = items;
	ls_schema_writer *w = &ws[index];
	char key[KEY_MAX];

	for (size_t j = 0; j < index; j++) {
		if (ws[j].id != w->id)
			continue;
		yaml_node_t *idn = mapping_value(ld->doc, item_node, "id");
		key_printf(key, sizeof key, "%s.id", disp);
		ld_error(ld, idn != NULL ? idn->start_mark : item_node->start_mark, key,
			 "duplicate schema id %" PRId32 " (also used by schemas.writers[%zu])",
			 w->id, j);
		return;
	}

	yaml_node_t *fn = mapping_value(ld->doc, item_node, "file");
	yaml_mark_t mark = fn != NULL ? fn->start_mark : item_node->start_mark;
	key_printf(key, sizeof key, "%s.file", disp);
	char *resolved = resolve_path(ld->dir, w->file);
	if (resolved == NULL) {
		ld_error(ld, mark, key, "out of memory");
		return;
	}
	char *json = read_small_file(resolved);
	if (json == NULL) {
		char qb[300];
		ld_error(ld, mark, key, "cannot read %s: %s", q(resolved, qb, sizeof qb),
			 strerror(errno));
		free(resolved);
		return;
	}
	if (json[0] == '\0') {
		char qb[300];
		ld_error(ld, mark, key, "%s is empty", q(resolved, qb, sizeof qb));
		free(json);
		free(resolved);
		return;
	}
	free(w->file);
	w->file = resolved;
	w->json = json;
}

static void writer_free(void *item)
{
	ls_schema_writer *w = item;
	free(w->json);
	w->json = NULL;
}

static bool writer_equal(const void *a, const void *b)
{
	const ls_schema_writer *x = a, *y = b;
	return str_equal(x->json, y->json);
}

/* ------------------------------------------------------------------ */
/* Walking the YAML document                                           */
/* ------------------------------------------------------------------ */

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a sequence";
	case YAML_SCALAR_NODE: return "a scalar";
	default: return "nothing";
	}
}

/* A plain ~, null, Null, NULL or empty scalar is YAML's null. */
static bool is_null_scalar(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Scalar text, or NULL (with an error reported) if it holds a NUL byte. */
static const char *scalar_text(loader *ld, yaml_node_t *n, const char *key)
{
	const char *s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length) {
		ld_error(ld, n->start_mark, key, "value contains a NUL character");
		return NULL;
	}
	return s;
}

static void join_key(char *out, size_t outlen, const char *prefix, const char *name)
{
	if (prefix[0] == '\0')
		key_printf(out, outlen, "%s", name);
	else
		key_printf(out, outlen, "%s.%s", prefix, name);
}

static void note_section(loader *ld, const char *path, yaml_mark_t mark)
{
	if (ld->n_sections >= COUNT(ld->sections))
		return;
	key_printf(ld->sections[ld->n_sections].path, KEY_MAX, "%s", path);
	ld->sections[ld->n_sections].mark = mark;
	ld->n_sections++;
}

/* Index of the row named rel, or -1. */
static int find_field(const field *tbl, size_t n, const char *rel)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tbl[i].name, rel) == 0)
			return (int)i;
	return -1;
}

/* Does some row live under "rel."? Then rel is a section. */
static bool is_section(const field *tbl, size_t n, const char *rel)
{
	size_t len = strlen(rel);
	for (size_t i = 0; i < n; i++)
		if (strncmp(tbl[i].name, rel, len) == 0 && tbl[i].name[len] == '.')
			return true;
	return false;
}

/* "brokers, group_id, topics, properties": the keys allowed under rel. */
static void known_keys(const field *tbl, size_t n, const char *rel, char *buf, size_t buflen)
{
	size_t rlen = strlen(rel), len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *name = tbl[i].name;
		if (rlen > 0) {
			if (strncmp(name, rel, rlen) != 0 || name[rlen] != '.')
				continue;
			name += rlen + 1;
		}
		size_t clen = strcspn(name, ".");
		/* Skip components already listed (kafka.topics.* share one). */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++) {
			const char *other = tbl[j].name;
			if (rlen > 0) {
				if (strncmp(other, rel, rlen) != 0 || other[rlen] != '.')
					continue;
				other += rlen + 1;
			}
			seen = strcspn(other, ".") == clen && strncmp(other, name, clen) == 0;
		}
		if (seen)
			continue;
		int w = snprintf(buf + len, buflen - len, "%s%.*s", len > 0 ? ", " : "",
				 (int)clen, name);
		if (w < 0 || (size_t)w >= buflen - len)
			return;
		len += (size_t)w;
	}
}

static void walk_mapping(loader *ld, const field *tbl, size_t n, void *base, bool *set,
			 yaml_node_t *map, const char *rel, const char *disp);

static void walk_map_field(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp)
{
	const map_desc *md = f->map;

	if (is_null_scalar(node))
		return;
	if (node->type != YAML_MAPPING_NODE) {
		ld_error(ld, node->start_mark, disp, "expected a mapping, got %s", node_kind(node));
		return;
	}
	free_map(md, base);
	size_t cap = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
	if (cap == 0)
		return;
	ls_config_kv *kv = calloc(cap, sizeof *kv);
	if (kv == NULL) {
		ld_error(ld, node->start_mark, disp, "out of memory");
		return;
	}
	set_ptr(base, md->items_offset, kv);
	size_t count = 0;
	void *state = md->begin != NULL ? md->begin() : NULL;
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
	     p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
		char key[KEY_MAX + 128];
		if (k == NULL || v == NULL)
			continue;
		if (k->type != YAML_SCALAR_NODE || k->data.scalar.length == 0) {
			ld_error(ld, k->start_mark, disp, "keys must be non-empty scalars");
			continue;
		}
		const char *ks = scalar_text(ld, k, disp);
		if (ks == NULL)
			continue;
		join_key(key, sizeof key, disp, ks);
		yaml_node_t *first = NULL;
		for (yaml_node_pair_t *o = node->data.mapping.pairs.start; o < p && first == NULL; o++) {
			yaml_node_t *ok = yaml_document_get_node(ld->doc, o->key);
			if (ok != NULL && ok->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)ok->data.scalar.value, ks) == 0)
				first = ok;
		}
		if (first != NULL) {
			ld_error(ld, k->start_mark, key,
				 "duplicate key (first defined at line %zu, column %zu)",
				 first->start_mark.line + 1, first->start_mark.column + 1);
			continue;
		}
		char whybuf[640];
		const char *why = md->check_key != NULL ? md->check_key(ks, whybuf, sizeof whybuf) : NULL;
		if (why != NULL) {
			ld_error(ld, k->start_mark, key, "%s", why);
			continue;
		}
		if (v->type != YAML_SCALAR_NODE || is_null_scalar(v)) {
			ld_error(ld, v->start_mark, key, "expected a scalar value, got %s",
				 is_null_scalar(v) ? "null" : node_kind(v));
			continue;
		}
		const char *vs = scalar_text(ld, v, key);
		if (vs == NULL)
			continue;
		kv[count].key = strdup(ks);
		kv[count].value = strdup(vs);
		/* Count the entry before checking so free_map releases it. */
		count++;
		set_count(base, md->count_offset, count);
		if (kv[count - 1].key == NULL || kv[count - 1].value == NULL) {
			ld_error(ld, v->start_mark, key, "out of memory");
			continue;
		}
		if (md->secret_key != NULL && md->secret_key(ks))
			note_secret(ld, k->start_mark, key);
		if (md->check_entry != NULL) {
			bool at_key = false;
			why = md->check_entry(state, ks, vs, &at_key, whybuf, sizeof whybuf);
			if (why != NULL)
				ld_error(ld, at_key ? k->start_mark : v->start_mark, key, "%s", why);
		}
	}
	if (md->end != NULL)
		md->end(state);
}

static void walk_seq_field(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp)
{
	const seq_desc *sd = f->seq;

	if (is_null_scalar(node))
		return;
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp, "expected a sequence, got %s", node_kind(node));
		return;
	}
	free_seq(sd, base);
	size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (n == 0) {
		if (sd->empty_error != NULL)
			ld_error(ld, node->start_mark, disp, "%s", sd->empty_error);
		return;
	}
	if (sd->max_items > 0 && n > sd->max_items) {
		ld_error(ld, node->start_mark, disp, "at most %zu entries, got %zu",
			 sd->max_items, n);
		return;
	}
	size_t seq_before = ld->eb->n_errors;
	char *items = calloc(n, sd->item_size);
	bool *set = calloc(sd->n_fields, sizeof *set);
	if (items == NULL || set == NULL) {
		free(items);
		free(set);
		ld_error(ld, node->start_mark, disp, "out of memory");
		return;
	}
	/* Every slot is zeroed, so free_seq can release a half-filled array. */
	set_ptr(base, sd->items_offset, items);
	set_count(base, sd->count_offset, n);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
		char idisp[KEY_MAX];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (item->type != YAML_MAPPING_NODE) {
			ld_error(ld, item->start_mark, idisp, "expected a mapping, got %s",
				 node_kind(item));
			continue;
		}
		size_t before = ld->eb->n_errors;
		void *ip = items + i * sd->item_size;
		memset(set, 0, sd->n_fields * sizeof *set);
		if (sd->init_item != NULL)
			sd->init_item(ip);
		walk_mapping(ld, sd->fields, sd->n_fields, ip, set, item, "", idisp);
		for (size_t j = 0; j < sd->n_fields; j++) {
			if ((sd->fields[j].flags & F_REQUIRED) && !set[j]) {
				char key[KEY_MAX + 64];
				join_key(key, sizeof key, idisp, sd->fields[j].name);
				ld_error(ld, item->start_mark, key, "required key is missing");
			}
		}
		if (ld->eb->n_errors == before && sd->finish_item != NULL)
			sd->finish_item(ld, items, i, item, idisp);
	}
	free(set);
	if (ld->eb->n_errors == seq_before && sd->finish_all != NULL)
		sd->finish_all(ld, items, n, node, disp);
}

/* A set F_SECRET string that holds a secret: any token, a URL with a password. */
static bool holds_secret(const field *f, const void *base)
{
	if (f->type != FT_STRING)
		return false;
	const char *v = str_get(f, base);
	if (v == NULL || v[0] == '\0')
		return false;
	if (f->check != check_redis_url)
		return true;
	ls_redis_target t;
	char why[256];
	if (ls_redis_url_parse(v, &t, why, sizeof why) != 0)
		return false;
	bool pw = t.password != NULL;
	ls_redis_target_free(&t);
	return pw;
}

static void walk_value(loader *ld, const field *f, void *base, yaml_node_t *node,
		       const char *disp)
{
	char msg[512];

	if (f->type == FT_MAP) {
		walk_map_field(ld, f, base, node, disp);
		return;
	}
	if (f->type == FT_SEQ) {
		walk_seq_field(ld, f, base, node, disp);
		return;
	}
	if (f->type == FT_CUSTOM) {
		f->custom->parse(ld, f, base, node, disp);
		return;
	}
	if (node->type != YAML_SCALAR_NODE) {
		ld_error(ld, node->start_mark, disp, "expected %s, got %s", type_phrase(f),
			 node_kind(node));
		return;
	}
	const char *text = scalar_text(ld, node, disp);
	if (text == NULL)
		return;
	if (field_set(f, base, text, is_null_scalar(node), msg, sizeof msg) != 0)
		ld_error(ld, node->start_mark, disp, "%s", msg);
	else if ((f->flags & F_SECRET) && holds_secret(f, base))
		note_secret(ld, node->start_mark, disp);
}

/*
 * Walk mapping map against the rows of tbl. rel is the row-name prefix
 * this mapping stands for ("" or "kafka.topics"), disp the dotted key
 * shown in errors ("kafka.topics", "schemas.writers[2]"). set[i] becomes
 * true for every row the mapping assigns, rightly or wrongly, so a bad
 * value is not also reported as missing.
 */
static void walk_mapping(loader *ld, const field *tbl, size_t n, void *base, bool *set,
			 yaml_node_t *map, const char *rel, const char *disp)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
		char rkey[KEY_MAX], dkey[KEY_MAX];
		if (k == NULL || v == NULL)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			ld_error(ld, k->start_mark, disp, "keys must be scalars, got %s",
				 node_kind(k));
			continue;
		}
		const char *ks = scalar_text(ld, k, disp);
		if (ks == NULL)
			continue;
		join_key(rkey, sizeof rkey, rel, ks);
		join_key(dkey, sizeof dkey, disp, ks);

		bool dup = false;
		yaml_mark_t first = k->start_mark;
		for (yaml_node_pair_t *o = map->data.mapping.pairs.start; o < p && !dup; o++) {
			yaml_node_t *ok = yaml_document_get_node(ld->doc, o->key);
			if (ok != NULL && ok->type == YAML_SCALAR_NODE &&
			    ok->data.scalar.length == k->data.scalar.length &&
			    memcmp(ok->data.scalar.value, k->data.scalar.value,
				   k->data.scalar.length) == 0) {
				dup = true;
				first = ok->start_mark;
			}
		}
		if (dup) {
			ld_error(ld, k->start_mark, dkey,
				 "duplicate key (first defined at line %zu, column %zu)",
				 first.line + 1, first.column + 1);
			continue;
		}

		/* A dotted key ("kafka.brokers: x" at the top) would dodge the
		 * duplicate check above, so only nesting spells a path. */
		int idx = strchr(ks, '.') == NULL && ks[0] != '\0' ? find_field(tbl, n, rkey) : -1;
		if (idx >= 0) {
			set[idx] = true;
			walk_value(ld, &tbl[idx], base, v, dkey);
			continue;
		}
		if (strchr(ks, '.') == NULL && ks[0] != '\0' && is_section(tbl, n, rkey)) {
			note_section(ld, dkey, v->start_mark);
			if (is_null_scalar(v))
				continue; /* "redis:" with every key commented out */
			if (v->type != YAML_MAPPING_NODE) {
				ld_error(ld, v->start_mark, dkey, "expected a mapping, got %s",
					 node_kind(v));
				continue;
			}
			walk_mapping(ld, tbl, n, base, set, v, rkey, dkey);
			continue;
		}
		if (strchr(ks, '.') != NULL) {
			ld_error(ld, k->start_mark, dkey,
				 "unknown key (nest sections as mappings instead of dotted keys)");
			continue;
		}
		char known[256];
		known_keys(tbl, n, rel, known, sizeof known);
		ld_error(ld, k->start_mark, dkey, "unknown key (expected one of: %s)", known);
	}
}

/* ------------------------------------------------------------------ */
/* features hooks                                                      */
/* ------------------------------------------------------------------ */

/* ls_window.h's rule for names; the length is FT_CHARS's to check. */
static const char *check_feature_name(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return "must be a feature name of a-z, 0-9 and _";
	return NULL;
}

/* The key node (not its value) of key in map, for "this key is wrong here". */
static yaml_node_t *mapping_key(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return k;
	}
	return NULL;
}

static yaml_node_t *seq_item(loader *ld, yaml_node_t *seq, size_t i)
{
	return yaml_document_get_node(ld->doc, seq->data.sequence.items.start[i]);
}

static size_t seq_len(const yaml_node_t *seq)
{
	return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

/* Symbol i of the type enum of source s (the call outcome for calls);
 * NULL past the last, and always for profile events, which have none. */
static const char *type_symbol(ls_source s, int i)
{
	switch (s) {
	case LS_SOURCE_EMAIL: return ls_email_type_name((ls_email_type)i);
	case LS_SOURCE_WEB: return ls_web_type_name((ls_web_type)i);
	case LS_SOURCE_CALL: return ls_call_outcome_name((ls_call_outcome)i);
	case LS_SOURCE_OUTCOME: return ls_outcome_type_name((ls_outcome_type)i);
	default: return NULL;
	}
}

static const char *type_noun(ls_source s)
{
	switch (s) {
	case LS_SOURCE_EMAIL: return "email event type";
	case LS_SOURCE_WEB: return "web event type";
	case LS_SOURCE_CALL: return "call outcome";
	case LS_SOURCE_OUTCOME: return "outcome type";
	default: return "type";
	}
}

/*
 * Which symbols `types` may name depends on `source`, which may come after
 * it in the mapping; so this only checks the shape and feature_finish()
 * resolves the names once the whole item is read.
 */
static void parse_types(loader *ld, const field *f, void *base, yaml_node_t *node,
			const char *disp)
{
	(void)f;
	(void)base;
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp,
			 "expected a sequence of event types such as [OPENED, CLICKED], got %s",
			 is_null_scalar(node) ? "null" : node_kind(node));
		return;
	}
	size_t n = seq_len(node);
	if (n == 0) {
		ld_error(ld, node->start_mark, disp,
			 "must not be empty (leave types out to accept every type)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (item->type != YAML_SCALAR_NODE || is_null_scalar(item))
			ld_error(ld, item->start_mark, idisp, "expected an event type, got %s",
				 is_null_scalar(item) ? "null" : node_kind(item));
		else
			(void)scalar_text(ld, item, idisp);
	}
}

static bool types_equal(const void *a, const void *b)
{
	const ls_feature_spec *x = a, *y = b;
	return x->type_mask == y->type_mask;
}

/* Turn the checked `types` sequence into f->type_mask for f->source. */
static bool resolve_types(loader *ld, ls_feature_spec *f, yaml_node_t *node, const char *disp)
{
	char key[KEY_MAX];
	uint32_t mask = 0;
	bool ok = true;

	key_printf(key, sizeof key, "%s.types", disp);
	if (type_symbol(f->source, 0) == NULL) {
		ld_error(ld, node->start_mark, key, "%s events have no type",
			 ls_source_name(f->source));
		return false;
	}
	for (size_t i = 0; i < seq_len(node); i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char ikey[KEY_MAX + 16], qb[72];
		if (item == NULL)
			continue;
		key_printf(ikey, sizeof ikey, "%s[%zu]", key, i);
		const char *name = (const char *)item->data.scalar.value;
		int t = -1;
		for (int j = 0; type_symbol(f->source, j) != NULL && t < 0; j++)
			if (strcmp(type_symbol(f->source, j), name) == 0)
				t = j;
		if (t < 0) {
			char list[256];
			size_t len = 0;
			list[0] = '\0';
			for (int j = 0; type_symbol(f->source, j) != NULL; j++) {
				int w = snprintf(list + len, sizeof list - len, "%s%s", j > 0 ? ", " : "",
						 type_symbol(f->source, j));
				if (w < 0 || (size_t)w >= sizeof list - len)
					break;
				len += (size_t)w;
			}
			ld_error(ld, item->start_mark, ikey, "unknown %s %s (expected one of %s)",
				 type_noun(f->source), q(name, qb, sizeof qb), list);
			ok = false;
			continue;
		}
		uint32_t bit = UINT32_C(1) << t;
		if (mask & bit) {
			ld_error(ld, item->start_mark, ikey, "%s is listed twice",
				 q(name, qb, sizeof qb));
			ok = false;
			continue;
		}
		mask |= bit;
	}
	if (ok)
		f->type_mask = mask;
	return ok;
}

/* One window written as a mapping: {length: 7d, slices: 28}. */
static const field window_fields[] = {
	{ .name = "length", .type = FT_DURATION, .offset = offsetof(ls_window_spec, length_ms),
	  .flags = F_REQUIRED, .min = 1, .max = MAX_WINDOW_MS, .desc = "Window length." },
	{ .name = "slices", .type = FT_INT, .offset = offsetof(ls_window_spec, slices),
	  .size = sizeof(uint32_t), .min = 1, .max = LS_WINDOW_MAX_SLICES,
	  .desc = "Slices the window is cut into; must divide the length." },
};

_Static_assert(sizeof(((ls_window_spec *)0)->slices) == sizeof(int32_t),
	       "window slices are stored as a 4-byte int");

static void parse_windows(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_feature_spec *spec = base;

	(void)f;
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp,
			 "expected a sequence of windows such as [24h, 7d], got %s",
			 is_null_scalar(node) ? "null" : node_kind(node));
		return;
	}
	size_t n = seq_len(node);
	if (n == 0 || n > LS_FEATURE_MAX_WINDOWS) {
		ld_error(ld, node->start_mark, disp, "expected 1 to %d windows, got %zu",
			 LS_FEATURE_MAX_WINDOWS, n);
		return;
	}
	memset(spec->windows, 0, sizeof spec->windows);
	spec->n_windows = n;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16], msg[512], lb[32];
		ls_window_spec w = { 0, 0 };
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		size_t before = ld->eb->n_errors;
		if (item->type == YAML_SCALAR_NODE) {
			const char *text = scalar_text(ld, item, idisp);
			if (text != NULL && field_set(&window_fields[0], &w, text,
						      is_null_scalar(item), msg, sizeof msg) != 0)
				ld_error(ld, item->start_mark, idisp, "%s", msg);
		} else if (item->type == YAML_MAPPING_NODE) {
			bool set[COUNT(window_fields)] = { false };
			walk_mapping(ld, window_fields, COUNT(window_fields), &w, set, item, "", idisp);
			if (!set[0]) {
				char key[KEY_MAX + 32];
				key_printf(key, sizeof key, "%s.length", idisp);
				ld_error(ld, item->start_mark, key, "required key is missing");
			}
		} else {
			ld_error(ld, item->start_mark, idisp,
				 "expected a duration or a mapping of length and slices, got %s",
				 node_kind(item));
		}
		if (ld->eb->n_errors != before)
			continue;
		if (w.slices != 0 && w.length_ms % (int64_t)w.slices != 0) {
			yaml_node_t *sn = mapping_value(ld->doc, item, "slices");
			char key[KEY_MAX + 32];
			key_printf(key, sizeof key, "%s.slices", idisp);
			ld_error(ld, sn != NULL ? sn->start_mark : item->start_mark, key,
				 "%" PRIu32 " slices do not divide the window length %s", w.slices,
				 format_duration(w.length_ms, lb, sizeof lb));
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (spec->windows[j].length_ms == w.length_ms) {
				ld_error(ld, item->start_mark, idisp,
					 "window %s is listed twice (also %s[%zu])",
					 format_duration(w.length_ms, lb, sizeof lb), disp, j);
				break;
			}
		}
		spec->windows[i] = w;
	}
}

static bool windows_equal(const void *a, const void *b)
{
	const ls_feature_spec *x = a, *y = b;
	if (x->n_windows != y->n_windows)
		return false;
	for (size_t i = 0; i < x->n_windows; i++)
		if (x->windows[i].length_ms != y->windows[i].length_ms ||
		    x->windows[i].slices != y->windows[i].slices)
			return false;
	return true;
}

#define KIND(k) (1u << (k))
#define KINDS_ALL ((1u << LS_FEATURE_KIND__COUNT) - 1)
#define KINDS_AB (KIND(LS_FEATURE_DIFFERENCE) | KIND(LS_FEATURE_RATIO) | KIND(LS_FEATURE_MEAN))

/*
 * Which kinds use which keys. ls_window.h says the rest of a spec "is
 * ignored"; a config key that is silently ignored is a config the daemon
 * had to guess at, so a key the kind does not use is an error here.
 */
static const struct feature_key_use {
	const char *key;
	unsigned allowed;  /* kinds that read it */
	unsigned required; /* kinds that cannot do without it */
} feature_key_uses[] = {
	{ "source", KIND(LS_FEATURE_WINDOWED), KIND(LS_FEATURE_WINDOWED) },
	{ "types", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "page_category", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "aggregation", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "field", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "scale", KIND(LS_FEATURE_WINDOWED), 0 },
	{ "windows", KINDS_ALL & ~KIND(LS_FEATURE_RECENCY), KINDS_ALL & ~KIND(LS_FEATURE_RECENCY) },
	{ "a", KINDS_ALL & ~KIND(LS_FEATURE_WINDOWED), KINDS_ALL & ~KIND(LS_FEATURE_WINDOWED) },
	{ "b", KINDS_AB, KINDS_AB },
	{ "prior", KIND(LS_FEATURE_VELOCITY), 0 },
	{ "cap", KIND(LS_FEATURE_RECENCY), 0 },
	{ "unit", KIND(LS_FEATURE_RECENCY), 0 },
	{ "floor_zero", KIND(LS_FEATURE_DIFFERENCE), 0 },
};

static const char *kind_name(ls_feature_kind k)
{
	for (size_t i = 0; kind_symbols[i].name != NULL; i++)
		if (kind_symbols[i].value == (int)k)
			return kind_symbols[i].name;
	return "unknown";
}

/* "difference, ratio or mean" */
static void kind_list(unsigned mask, char *buf, size_t buflen)
{
	size_t len = 0, total = 0, done = 0;
	for (unsigned k = 0; k < LS_FEATURE_KIND__COUNT; k++)
		total += (mask >> k) & 1u;
	buf[0] = '\0';
	for (unsigned k = 0; k < LS_FEATURE_KIND__COUNT; k++) {
		if (!((mask >> k) & 1u))
			continue;
		const char *sep = done == 0 ? "" : done + 1 == total ? " or " : ", ";
		int w = snprintf(buf + len, buflen - len, "%s%s", sep,
				 kind_name((ls_feature_kind)k));
		if (w < 0 || (size_t)w >= buflen - len)
			return;
		len += (size_t)w;
		done++;
	}
}

/* Per-item checks that need the whole item (its kind, its source). */
static void feature_finish(loader *ld, void *items, size_t index,
			   yaml_node_t *item_node, const char *disp)
{
	ls_feature_spec *specs = items;
	ls_feature_spec *f = &specs[index];
	unsigned kind = KIND(f->kind);
	char key[KEY_MAX + 32], qb[72];
	bool ok = true;

	for (size_t i = 0; i < COUNT(feature_key_uses); i++) {
		const struct feature_key_use *u = &feature_key_uses[i];
		yaml_node_t *k = mapping_key(ld->doc, item_node, u->key);
		key_printf(key, sizeof key, "%s.%s", disp, u->key);
		if (k != NULL && !(u->allowed & kind)) {
			char kinds[128];
			kind_list(u->allowed, kinds, sizeof kinds);
			ld_error(ld, k->start_mark, key,
				 "%s features do not use it (only %s features do)",
				 kind_name(f->kind), kinds);
			ok = false;
		} else if (k == NULL && (u->required & kind)) {
			ld_error(ld, item_node->start_mark, key,
				 "required key is missing (%s features need it)", kind_name(f->kind));
			ok = false;
		}
	}
	if (!ok)
		return;

	yaml_node_t *types = mapping_value(ld->doc, item_node, "types");
	if (types != NULL && !resolve_types(ld, f, types, disp))
		ok = false;
	yaml_node_t *cat_node = mapping_value(ld->doc, item_node, "page_category");
	if (cat_node != NULL && f->source != LS_SOURCE_WEB) {
		key_printf(key, sizeof key, "%s.page_category", disp);
		ld_error(ld, cat_node->start_mark, key,
			 "filters web events only, and this feature's source is %s",
			 ls_source_name(f->source));
		ok = false;
	}
	yaml_node_t *scale_key = mapping_key(ld->doc, item_node, "scale");
	if (scale_key != NULL && f->agg != LS_AGG_SUM) {
		key_printf(key, sizeof key, "%s.scale", disp);
		ld_error(ld, scale_key->start_mark, key, "applies to sum features only");
		ok = false;
	}
	yaml_node_t *wins = mapping_value(ld->doc, item_node, "windows");
	if (wins != NULL && f->kind != LS_FEATURE_WINDOWED) {
		key_printf(key, sizeof key, "%s.windows", disp);
		bool sliced = false;
		for (size_t i = 0; i < f->n_windows; i++)
			sliced = sliced || f->windows[i].slices != 0;
		if (sliced) {
			/* Derived features read their operands' slices. */
			ld_error(ld, wins->start_mark, key,
				 "slices apply to windowed features only");
			ok = false;
		} else if (f->kind == LS_FEATURE_VELOCITY && f->n_windows != 2) {
			ld_error(ld, wins->start_mark, key,
				 "velocity features need exactly two windows, [short, long]");
			ok = false;
		}
	}
	for (size_t j = 0; j < index && ok; j++) {
		if (strcmp(specs[j].name, f->name) != 0)
			continue;
		yaml_node_t *nn = mapping_value(ld->doc, item_node, "name");
		key_printf(key, sizeof key, "%s.name", disp);
		ld_error(ld, nn != NULL ? nn->start_mark : item_node->start_mark, key,
			 "duplicate feature name %s (also features[%zu])",
			 q(f->name, qb, sizeof qb), j);
	}
}

/* Operand `which` (a or b) of a derived feature must name a windowed one. */
static bool check_operand(loader *ld, const ls_feature_spec *specs, size_t n,
			  yaml_node_t *item, const char *idisp, const char *which,
			  const char *name)
{
	char key[KEY_MAX + 8], qb[72];
	yaml_node_t *v = mapping_value(ld->doc, item, which);
	yaml_mark_t mark = v != NULL ? v->start_mark : item->start_mark;

	key_printf(key, sizeof key, "%s.%s", idisp, which);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(specs[i].name, name) != 0)
			continue;
		if (specs[i].kind == LS_FEATURE_WINDOWED)
			return true;
		ld_error(ld, mark, key,
			 "%s is a %s feature; operands must be windowed features",
			 q(name, qb, sizeof qb), kind_name(specs[i].kind));
		return false;
	}
	ld_error(ld, mark, key, "unknown feature %s", q(name, qb, sizeof qb));
	return false;
}

/*
 * Whole-list checks: operands (which may name a later feature), then
 * ls_feature_set_new() itself, so the config accepts exactly the lists
 * the models accept. Its message names the feature as "feature 'x': ...";
 * the error goes to that item, or to the sequence if none is named.
 */
static void features_finish_all(loader *ld, void *items, size_t n,
				yaml_node_t *seq_node, const char *disp)
{
	ls_feature_spec *specs = items;
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		if (specs[i].kind == LS_FEATURE_WINDOWED)
			continue;
		yaml_node_t *item = seq_item(ld, seq_node, i);
		char idisp[KEY_MAX];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (!check_operand(ld, specs, n, item, idisp, "a", specs[i].a))
			ok = false;
		if (specs[i].b[0] != '\0' &&
		    !check_operand(ld, specs, n, item, idisp, "b", specs[i].b))
			ok = false;
	}
	if (!ok)
		return;

	char msg[512];
	ls_feature_set *set = ls_feature_set_new(specs, n, msg, sizeof msg);
	if (set != NULL) {
		ls_feature_set_free(set);
		return;
	}
	yaml_mark_t mark = seq_node->start_mark;
	char key[KEY_MAX];
	key_printf(key, sizeof key, "%s", disp);
	static const char prefix[] = "feature '";
	if (strncmp(msg, prefix, sizeof prefix - 1) == 0) {
		const char *name = msg + sizeof prefix - 1;
		const char *close = strchr(name, '\'');
		for (size_t i = 0; close != NULL && i < n; i++) {
			yaml_node_t *item = seq_item(ld, seq_node, i);
			if (item == NULL || strlen(specs[i].name) != (size_t)(close - name) ||
			    memcmp(specs[i].name, name, (size_t)(close - name)) != 0)
				continue;
			mark = item->start_mark;
			key_printf(key, sizeof key, "%s[%zu]", disp, i);
			break;
		}
	}
	ld_error(ld, mark, key, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* models hooks                                                        */
/* ------------------------------------------------------------------ */

#define OUTCOME(o) (UINT32_C(1) << (o))

/* The built-in model: used when there is no `models:` key, and the
 * starting point of every configured item (model_init). */
static const ls_model_spec default_model = {
	.name = "conversion",
	.positive_mask = OUTCOME(LS_OUTCOME_CONVERTED) | OUTCOME(LS_OUTCOME_WON),
	.negative_mask = OUTCOME(LS_OUTCOME_LOST) | OUTCOME(LS_OUTCOME_DISQUALIFIED),
	.label_timeout_ms = 90 * MS_DAY,
	.min_delta = 0.05,
	.tiers = {
		.n = 3,
		.names = { "cold", "warm", "hot" },
		.bounds = { 0.3, 0.7 },
		.hysteresis = 0.02,
	},
	.ftrl = {
		.alpha = LS_FTRL_DEFAULT_ALPHA,
		.beta = LS_FTRL_DEFAULT_BETA,
		.l1 = LS_FTRL_DEFAULT_L1,
		.l2 = LS_FTRL_DEFAULT_L2,
		.n_buckets = LS_FTRL_DEFAULT_BUCKETS,
		.clip = LS_FTRL_DEFAULT_CLIP,
	},
	/* segment interactions sales teams name first: an industry's
	 * buyers differ by company size and by seniority */
	.n_crosses = 2,
	.crosses = { { "industry", "size_band" }, { "industry", "role" } },
	.n_metrics = 2,
	.metrics = { "employees", "annual_revenue" },
	.decay_half_life_ms = 0,
	.eval_window = 10000,
	.shadow = false,
};

static void model_init(void *item)
{
	ls_model_spec *m = item;
	*m = default_model;
	memset(m->name, 0, sizeof m->name);
}

/* Model and tier names end up in metric labels and Redis keys. */
static const char *check_model_name(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return "must be a name of a-z, 0-9 and _";
	return NULL;
}

/*
 * Profile attribute and metric keys as the models hash them: "key=value"
 * and "a=x×b=y", with '|' joining colliding names in explanations, so
 * those characters (and spaces) would make names ambiguous.
 */
static const char *check_input_key(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > LS_LEAD_KEY_MAX)
		return "must be 1 to 64 bytes";
	for (; *s != '\0'; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) || *s == '=' || *s == '|')
			return "must not contain whitespace, control characters, '=' or '|'";
	return NULL;
}

/* A sequence of scalars for the list keys; false (reported) otherwise. */
static bool scalar_list(loader *ld, yaml_node_t *node, const char *disp, const char *example,
			size_t max)
{
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp, "expected a sequence such as %s, got %s",
			 example, is_null_scalar(node) ? "null" : node_kind(node));
		return false;
	}
	if (seq_len(node) > max) {
		ld_error(ld, node->start_mark, disp, "at most %zu entries, got %zu", max,
			 seq_len(node));
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < seq_len(node); i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (item->type != YAML_SCALAR_NODE || is_null_scalar(item)) {
			ld_error(ld, item->start_mark, idisp, "expected a name, got %s",
				 is_null_scalar(item) ? "null" : node_kind(item));
			ok = false;
		} else if (scalar_text(ld, item, idisp) == NULL) {
			ok = false;
		}
	}
	return ok;
}

/* positive / negative: LeadOutcome symbols into the mask at f->offset. */
static void parse_outcomes(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp, bool allow_empty)
{
	if (!scalar_list(ld, node, disp, "[CONVERTED, WON]", LS_OUTCOME__COUNT * 2))
		return;
	if (seq_len(node) == 0 && !allow_empty) {
		ld_error(ld, node->start_mark, disp, "must list at least one outcome");
		return;
	}
	uint32_t mask = 0;
	bool ok = true;
	for (size_t i = 0; i < seq_len(node); i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16], qb[72];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		const char *name = (const char *)item->data.scalar.value;
		int o = ls_outcome_type_from_name(name);
		if (o < 0) {
			char list[256];
			size_t len = 0;
			list[0] = '\0';
			for (int j = 0; j < LS_OUTCOME__COUNT; j++) {
				int w = snprintf(list + len, sizeof list - len, "%s%s", j > 0 ? ", " : "",
						 ls_outcome_type_name((ls_outcome_type)j));
				if (w < 0 || (size_t)w >= sizeof list - len)
					break;
				len += (size_t)w;
			}
			ld_error(ld, item->start_mark, idisp, "unknown outcome type %s (expected one of %s)",
				 q(name, qb, sizeof qb), list);
			ok = false;
			continue;
		}
		if (mask & OUTCOME(o)) {
			ld_error(ld, item->start_mark, idisp, "%s is listed twice", q(name, qb, sizeof qb));
			ok = false;
			continue;
		}
		mask |= OUTCOME(o);
	}
	if (ok)
		memcpy(at(base, f->offset), &mask, sizeof mask);
}

static void parse_positive(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp)
{
	parse_outcomes(ld, f, base, node, disp, false);
}

/* [] is allowed: label_timeout may be the only source of negatives. */
static void parse_negative(loader *ld, const field *f, void *base, yaml_node_t *node,
			   const char *disp)
{
	parse_outcomes(ld, f, base, node, disp, true);
}

static bool positive_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	return x->positive_mask == y->positive_mask;
}

static bool negative_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	return x->negative_mask == y->negative_mask;
}

/* One tier as written: {name: warm, min: 0.3}. */
typedef struct tier_item {
	char name[LS_TIER_NAME_MAX];
	double min;
} tier_item;

static const field tier_fields[] = {
	{ .name = "name", .type = FT_CHARS, .offset = offsetof(tier_item, name),
	  .size = sizeof(((tier_item *)0)->name), .flags = F_REQUIRED,
	  .check = check_model_name, .desc = "Tier name." },
	{ .name = "min", .type = FT_NUMBER, .offset = offsetof(tier_item, min),
	  .desc = "Lowest score of the tier." },
};

/*
 * The raw names and boundaries go straight into spec->tiers; whether they
 * make valid tiers with the hysteresis (which may come later in the
 * mapping) is ls_tiers_init()'s to say, in model_finish().
 */
static void parse_tiers(loader *ld, const field *f, void *base, yaml_node_t *node,
			const char *disp)
{
	ls_model_spec *m = base;

	(void)f;
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp,
			 "expected a sequence of tiers such as [{name: cold}, {name: hot, min: 0.7}], got %s",
			 is_null_scalar(node) ? "null" : node_kind(node));
		return;
	}
	size_t n = seq_len(node);
	if (n == 0 || n > LS_TIERS_MAX) {
		ld_error(ld, node->start_mark, disp, "expected 1 to %d tiers, got %zu",
			 LS_TIERS_MAX, n);
		return;
	}
	double h = m->tiers.hysteresis;
	memset(&m->tiers, 0, sizeof m->tiers);
	m->tiers.hysteresis = h;
	m->tiers.n = n;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16], key[KEY_MAX + 32];
		tier_item t;
		if (item == NULL)
			continue;
		memset(&t, 0, sizeof t);
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (item->type != YAML_MAPPING_NODE) {
			ld_error(ld, item->start_mark, idisp,
				 "expected a mapping of name and min, got %s", node_kind(item));
			continue;
		}
		size_t before = ld->eb->n_errors;
		bool set[COUNT(tier_fields)] = { false };
		walk_mapping(ld, tier_fields, COUNT(tier_fields), &t, set, item, "", idisp);
		if (!set[0]) {
			key_printf(key, sizeof key, "%s.name", idisp);
			ld_error(ld, item->start_mark, key, "required key is missing");
		}
		if (ld->eb->n_errors != before)
			continue;
		key_printf(key, sizeof key, "%s.min", idisp);
		yaml_node_t *mn = mapping_value(ld->doc, item, "min");
		if (i == 0 && set[1] && t.min != 0.0) {
			ld_error(ld, mn->start_mark, key,
				 "the lowest tier starts at 0; leave min out or write 0");
			continue;
		}
		if (i > 0 && !set[1]) {
			ld_error(ld, item->start_mark, key, "required key is missing");
			continue;
		}
		memcpy(m->tiers.names[i], t.name, sizeof t.name);
		if (i > 0)
			m->tiers.bounds[i - 1] = t.min;
	}
}

/* The whole ls_tiers, hysteresis included: the new tiers were checked
 * against the new hysteresis, which is live as well. */
static void tiers_copy(void *dst, const void *src)
{
	((ls_model_spec *)dst)->tiers = ((const ls_model_spec *)src)->tiers;
}

static bool tiers_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	if (x->tiers.n != y->tiers.n)
		return false;
	for (size_t i = 0; i < x->tiers.n; i++) {
		if (strcmp(x->tiers.names[i], y->tiers.names[i]) != 0)
			return false;
		if (i > 0 && x->tiers.bounds[i - 1] != y->tiers.bounds[i - 1])
			return false;
	}
	return true;
}

static void parse_crosses(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_model_spec *m = base;
	ls_model_cross out[LS_MODEL_MAX_CROSSES];
	bool ok = true;

	(void)f;
	if (node->type != YAML_SEQUENCE_NODE) {
		ld_error(ld, node->start_mark, disp,
			 "expected a sequence of pairs such as [[industry, size_band]], got %s",
			 is_null_scalar(node) ? "null" : node_kind(node));
		return;
	}
	size_t n = seq_len(node);
	if (n > LS_MODEL_MAX_CROSSES) {
		ld_error(ld, node->start_mark, disp, "at most %d entries, got %zu",
			 LS_MODEL_MAX_CROSSES, n);
		return;
	}
	memset(out, 0, sizeof out);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *pair = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16], qb[72];
		if (pair == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (pair->type != YAML_SEQUENCE_NODE || seq_len(pair) != 2) {
			ld_error(ld, pair->start_mark, idisp,
				 "expected a pair of categorical keys such as [industry, size_band]");
			ok = false;
			continue;
		}
		if (!scalar_list(ld, pair, idisp, "[industry, size_band]", 2)) {
			ok = false;
			continue;
		}
		bool pair_ok = true;
		for (size_t j = 0; j < 2; j++) {
			yaml_node_t *k = seq_item(ld, pair, j);
			char kdisp[KEY_MAX + 32];
			key_printf(kdisp, sizeof kdisp, "%s[%zu]", idisp, j);
			const char *name = (const char *)k->data.scalar.value;
			const char *why = check_input_key(name);
			if (why != NULL) {
				ld_error(ld, k->start_mark, kdisp, "%s, got %s", why, q(name, qb, sizeof qb));
				pair_ok = false;
				continue;
			}
			memcpy(j == 0 ? out[i].a : out[i].b, name, strlen(name) + 1);
		}
		if (!pair_ok) {
			ok = false;
			continue;
		}
		if (strcmp(out[i].a, out[i].b) == 0) {
			ld_error(ld, pair->start_mark, idisp, "crosses %s with itself",
				 q(out[i].a, qb, sizeof qb));
			ok = false;
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			bool same = (strcmp(out[j].a, out[i].a) == 0 && strcmp(out[j].b, out[i].b) == 0) ||
				    (strcmp(out[j].a, out[i].b) == 0 && strcmp(out[j].b, out[i].a) == 0);
			if (same) {
				ld_error(ld, pair->start_mark, idisp, "listed twice (also %s[%zu])",
					 disp, j);
				ok = false;
				break;
			}
		}
	}
	if (!ok)
		return;
	memcpy(m->crosses, out, sizeof out);
	m->n_crosses = n;
}

static bool crosses_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	if (x->n_crosses != y->n_crosses)
		return false;
	for (size_t i = 0; i < x->n_crosses; i++)
		if (strcmp(x->crosses[i].a, y->crosses[i].a) != 0 ||
		    strcmp(x->crosses[i].b, y->crosses[i].b) != 0)
			return false;
	return true;
}

/*
 * A sequence of up to max distinct names, each passing check (NULL: no
 * check), into out: max rows of width bytes (zeroed first). On success
 * *n receives the count; on any problem every one is reported at its node
 * and false returned with out and *n untouched.
 */
static bool name_list(loader *ld, yaml_node_t *node, const char *disp, const char *example,
		      size_t max, const char *(*check)(const char *), char *out, size_t width,
		      size_t *n)
{
	if (!scalar_list(ld, node, disp, example, max))
		return false;
	size_t len = seq_len(node);
	char *tmp = calloc(max ? max : 1, width);
	if (tmp == NULL) {
		ld_error(ld, node->start_mark, disp, "out of memory");
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < len; i++) {
		yaml_node_t *item = seq_item(ld, node, i);
		char idisp[KEY_MAX + 16], qb[72];
		if (item == NULL)
			continue;
		key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		const char *name = (const char *)item->data.scalar.value;
		const char *why = check != NULL ? check(name) : NULL;
		if (why == NULL && strlen(name) >= width)
			why = "too long";
		if (why != NULL) {
			ld_error(ld, item->start_mark, idisp, "%s, got %s", why, q(name, qb, sizeof qb));
			ok = false;
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(tmp + j * width, name) == 0;
		if (dup) {
			ld_error(ld, item->start_mark, idisp, "%s is listed twice", q(name, qb, sizeof qb));
			ok = false;
			continue;
		}
		memcpy(tmp + i * width, name, strlen(name) + 1);
	}
	if (ok) {
		memcpy(out, tmp, max * width);
		*n = len;
	}
	free(tmp);
	return ok;
}

/* The first n rows of width bytes of a and b hold the same names. */
static bool names_equal(const char *a, const char *b, size_t n, size_t width)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a + i * width, b + i * width) != 0)
			return false;
	return true;
}

static void parse_metrics(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_model_spec *m = base;

	(void)f;
	name_list(ld, node, disp, "[employees, annual_revenue]", LS_MODEL_MAX_METRICS,
		  check_input_key, &m->metrics[0][0], LS_MODEL_KEY_MAX, &m->n_metrics);
}

static bool metrics_equal(const void *a, const void *b)
{
	const ls_model_spec *x = a, *y = b;
	return x->n_metrics == y->n_metrics &&
	       names_equal(&x->metrics[0][0], &y->metrics[0][0], x->n_metrics, LS_MODEL_KEY_MAX);
}

/* ---------------------------------------------------------- campaigns */

static yaml_mark_t value_mark(loader *ld, yaml_node_t *item_node, const char *key);

static void campaign_init(void *item)
{
	ls_campaign_spec *c = item;
	memset(c, 0, sizeof *c);
	c->reward_weight[LS_EMAIL_CLICKED] = 1.0;
	c->reward_window_ms = 72 * MS_HOUR;
	c->activation_timeout_ms = 24 * MS_HOUR;
	c->prior_a = 1.0;
	c->prior_b = 1.0;
	c->min_share = 0.01;
	c->min_bucket_trials = 100;
	c->max_buckets = 1000;
	c->propensity_draws = 10000;
	memcpy(c->tier_model, "conversion", sizeof "conversion");
}

/*
 * Campaign and arm ids go into URLs, Redis keys (a campaign id inside a
 * hash tag, so no braces) and decision ids ("<campaign>.<hex>", so no dot
 * in campaign ids).
 */
static const char *check_id_chars(const char *s, bool dot)
{
	size_t len = strlen(s);
	if (len == 0 || len >= LS_CAMPAIGN_ID_MAX)
		return "must be 1 to 63 characters";
	for (; *s != '\0'; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-' || (dot && *s == '.')))
			return dot ? "must be made of A-Z, a-z, 0-9, _, - and ."
				   : "must be made of A-Z, a-z, 0-9, _ and -";
	return NULL;
}

static const char *check_campaign_id(const char *s, char *buf, size_t buflen)
{
	(void)buf;
	(void)buflen;
	return check_id_chars(s, false);
}

static const char *check_arm_id(const char *s)
{
	return check_id_chars(s, true);
}

static void parse_arms(loader *ld, const field *f, void *base, yaml_node_t *node,
		       const char *disp)
{
	ls_campaign_spec *c = base;

	(void)f;
	if (node->type == YAML_SEQUENCE_NODE && seq_len(node) == 0) {
		ld_error(ld, node->start_mark, disp, "must list at least one arm");
		return;
	}
	name_list(ld, node, disp, "[subject_a, subject_b]", LS_CAMPAIGN_MAX_ARMS, check_arm_id,
		  &c->arms[0][0], LS_CAMPAIGN_ID_MAX, &c->n_arms);
}

static bool arms_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return x->n_arms == y->n_arms &&
	       names_equal(&x->arms[0][0], &y->arms[0][0], x->n_arms, LS_CAMPAIGN_ID_MAX);
}

static void parse_rewards(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_campaign_spec *c = base;
	double w[LS_EMAIL__COUNT] = { 0 };
	bool ok = true;

	(void)f;
	if (node->type != YAML_MAPPING_NODE) {
		ld_error(ld, node->start_mark, disp,
			 "expected a mapping of email event types to weights such as {CLICKED: 1, OPENED: 0.2}, got %s",
			 is_null_scalar(node) ? "null" : node_kind(node));
		return;
	}
	size_t n = 0;
	for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
	     pr < node->data.mapping.pairs.top; pr++, n++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, pr->value);
		char kdisp[KEY_MAX + 80], qb[72];
		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) {
			ld_error(ld, node->start_mark, disp, "keys must be email event types");
			ok = false;
			continue;
		}
		const char *name = (const char *)k->data.scalar.value;
		key_printf(kdisp, sizeof kdisp, "%s.%s", disp, name);
		int t = ls_email_type_from_name(name);
		if (t < 0) {
			char list[256];
			size_t len = 0;
			list[0] = '\0';
			for (int j = 0; j < LS_EMAIL__COUNT; j++) {
				int wr = snprintf(list + len, sizeof list - len, "%s%s", j > 0 ? ", " : "",
						  ls_email_type_name((ls_email_type)j));
				if (wr < 0 || (size_t)wr >= sizeof list - len)
					break;
				len += (size_t)wr;
			}
			ld_error(ld, k->start_mark, kdisp, "unknown email event type %s (expected one of %s)",
				 q(name, qb, sizeof qb), list);
			ok = false;
			continue;
		}
		if (t == LS_EMAIL_SENT) {
			ld_error(ld, k->start_mark, kdisp,
				 "SENT activates a decision and cannot reward it");
			ok = false;
			continue;
		}
		if (w[t] != 0.0) {
			ld_error(ld, k->start_mark, kdisp, "%s is listed twice", q(name, qb, sizeof qb));
			ok = false;
			continue;
		}
		double d;
		if (v->type != YAML_SCALAR_NODE ||
		    parse_number((const char *)v->data.scalar.value, &d) != 0 ||
		    !(d > 0.0 && d <= 1.0)) {
			ld_error(ld, v->start_mark, kdisp, "expected a weight above 0 and at most 1");
			ok = false;
			continue;
		}
		w[t] = d;
	}
	if (ok && n == 0) {
		ld_error(ld, node->start_mark, disp, "must name at least one reward event type");
		ok = false;
	}
	if (ok)
		memcpy(c->reward_weight, w, sizeof w);
}

static bool rewards_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return memcmp(x->reward_weight, y->reward_weight, sizeof x->reward_weight) == 0;
}

static void parse_context(loader *ld, const field *f, void *base, yaml_node_t *node,
			  const char *disp)
{
	ls_campaign_spec *c = base;

	(void)f;
	name_list(ld, node, disp, "[tier, industry]", LS_CAMPAIGN_MAX_CONTEXT, check_input_key,
		  &c->context[0][0], LS_MODEL_KEY_MAX, &c->n_context);
}

static bool context_equal(const void *a, const void *b)
{
	const ls_campaign_spec *x = a, *y = b;
	return x->n_context == y->n_context &&
	       names_equal(&x->context[0][0], &y->context[0][0], x->n_context, LS_MODEL_KEY_MAX);
}

static void campaign_finish(loader *ld, void *items, size_t index,
			    yaml_node_t *item_node, const char *disp)
{
	ls_campaign_spec *specs = items;
	ls_campaign_spec *c = &specs[index];
	char key[KEY_MAX + 32], qb[72];

	for (size_t j = 0; j < index; j++) {
		if (strcmp(specs[j].id, c->id) != 0)
			continue;
		key_printf(key, sizeof key, "%s.id", disp);
		ld_error(ld, value_mark(ld, item_node, "id"), key,
			 "duplicate campaign id %s (also campaigns[%zu])", q(c->id, qb, sizeof qb), j);
		return;
	}
	if (c->n_arms > 0 && c->min_share * (double)c->n_arms > 1.0 + 1e-12) {
		key_printf(key, sizeof key, "%s.min_share", disp);
		ld_error(ld, value_mark(ld, item_node, "min_share"), key,
			 "%g per arm over %zu arms is more than 1", c->min_share, c->n_arms);
	}
	if (!(c->prior_a > 0.0 && isfinite(c->prior_a))) {
		key_printf(key, sizeof key, "%s.prior.alpha", disp);
		ld_error(ld, value_mark(ld, item_node, "prior"), key, "must be above 0");
	}
	if (!(c->prior_b > 0.0 && isfinite(c->prior_b))) {
		key_printf(key, sizeof key, "%s.prior.beta", disp);
		ld_error(ld, value_mark(ld, item_node, "prior"), key, "must be above 0");
	}
}

/*
 * "tier" in a campaign's context names a model's tier; the models are
 * only all known once the whole file is walked, so this runs last.
 */
static void check_campaign_models(loader *ld, yaml_node_t *root)
{
	yaml_node_t *seq = mapping_value(ld->doc, root, "campaigns");
	size_t nm;
	const ls_model_spec *models = ls_config_models(ld->cfg, &nm);
	for (size_t i = 0; i < ld->cfg->campaigns.n; i++) {
		const ls_campaign_spec *c = &ld->cfg->campaigns.specs[i];
		bool uses_tier = false;
		for (size_t k = 0; k < c->n_context; k++)
			uses_tier |= strcmp(c->context[k], "tier") == 0;
		if (!uses_tier)
			continue;
		bool found = false;
		for (size_t m = 0; m < nm && !found; m++)
			found = strcmp(models[m].name, c->tier_model) == 0;
		if (found)
			continue;
		char disp[64], key[96], qb[72];
		key_printf(disp, sizeof disp, "campaigns[%zu]", i);
		key_printf(key, sizeof key, "%s.tier_model", disp);
		yaml_node_t *item = seq != NULL && seq->type == YAML_SEQUENCE_NODE
					    ? seq_item(ld, seq, i) : NULL;
		yaml_mark_t mark = item != NULL ? value_mark(ld, item, "tier_model")
						: root->start_mark;
		ld_error(ld, mark, key, "context uses tier, but there is no model named %s",
			 q(c->tier_model, qb, sizeof qb));
	}
}

/* Where to report a problem with key of an item: its value, else the item. */
static yaml_mark_t value_mark(loader *ld, yaml_node_t *item_node, const char *key)
{
	yaml_node_t *v = mapping_value(ld->doc, item_node, key);
	return v != NULL ? v->start_mark : item_node->start_mark;
}

/*
 * The tiers as ls_tiers_init() sees them. Its problems with names and
 * boundaries ("tiers: boundary 1 (...) ...") are checked first with no
 * hysteresis, so that what is left is the hysteresis's; each goes to the
 * node the user wrote it at.
 */
static bool model_check_tiers(loader *ld, ls_model_spec *m, yaml_node_t *item_node,
			      const char *disp)
{
	const char *names[LS_TIERS_MAX];
	char msg[256], key[KEY_MAX + 32];
	ls_tiers t;

	for (size_t i = 0; i < m->tiers.n; i++)
		names[i] = m->tiers.names[i];
	if (!ls_tiers_init(&t, names, m->tiers.bounds, m->tiers.n, 0.0, msg, sizeof msg)) {
		yaml_node_t *tn = mapping_value(ld->doc, item_node, "tiers");
		yaml_mark_t mark = tn != NULL ? tn->start_mark : item_node->start_mark;
		key_printf(key, sizeof key, "%s.tiers", disp);
		size_t k;
		if (tn != NULL && sscanf(msg, "tiers: boundary %zu", &k) == 1 && k + 1 < seq_len(tn)) {
			yaml_node_t *ti = seq_item(ld, tn, k + 1);
			yaml_node_t *mn = ti != NULL && ti->type == YAML_MAPPING_NODE
						  ? mapping_value(ld->doc, ti, "min") : NULL;
			if (mn != NULL) {
				mark = mn->start_mark;
				key_printf(key, sizeof key, "%s.tiers[%zu].min", disp, k + 1);
			}
		}
		const char *why = strncmp(msg, "tiers: ", 7) == 0 ? msg + 7 : msg;
		ld_error(ld, mark, key, "%s", why);
		return false;
	}
	if (!ls_tiers_init(&t, names, m->tiers.bounds, m->tiers.n, m->tiers.hysteresis,
			   msg, sizeof msg)) {
		/* The default hysteresis can be too large for tiers written
		 * close together; then the tiers are what the user wrote. */
		bool written = mapping_value(ld->doc, item_node, "hysteresis") != NULL;
		key_printf(key, sizeof key, "%s.%s", disp, written ? "hysteresis" : "tiers");
		const char *why = strncmp(msg, "tiers: ", 7) == 0 ? msg + 7 : msg;
		ld_error(ld, value_mark(ld, item_node, written ? "hysteresis" : "tiers"), key,
			 "%s", why);
		return false;
	}
	m->tiers = t;
	return true;
}

/* ls_ftrl_params_check() names the parameter first ("alpha must be ..."). */
static void model_check_ftrl(loader *ld, const ls_model_spec *m, yaml_node_t *item_node,
			     const char *disp)
{
	static const struct {
		const char *param, *key;
	} names[] = {
		{ "alpha", "alpha" }, { "beta", "beta" }, { "l1", "l1" }, { "l2", "l2" },
		{ "clip", "clip" }, { "n_buckets", "buckets" },
	};
	char msg[256], key[KEY_MAX + 32];

	if (ls_ftrl_params_check(&m->ftrl, msg, sizeof msg))
		return;
	yaml_node_t *fn = mapping_value(ld->doc, item_node, "ftrl");
	yaml_mark_t mark = fn != NULL ? fn->start_mark : item_node->start_mark;
	key_printf(key, sizeof key, "%s.ftrl", disp);
	for (size_t i = 0; i < COUNT(names); i++) {
		size_t len = strlen(names[i].param);
		if (strncmp(msg, names[i].param, len) != 0 || msg[len] != ' ')
			continue;
		yaml_node_t *v = fn != NULL && fn->type == YAML_MAPPING_NODE
					 ? mapping_value(ld->doc, fn, names[i].key) : NULL;
		if (v != NULL)
			mark = v->start_mark;
		key_printf(key, sizeof key, "%s.ftrl.%s", disp, names[i].key);
		/* The key names the parameter: "n_buckets must be a power
		 * of two" becomes "ftrl.buckets: must be a power of two". */
		ld_error(ld, mark, key, "%s", msg + len + 1);
		return;
	}
	ld_error(ld, mark, key, "%s", msg);
}

/* Checks that need the whole item, and the name against earlier items. */
static void model_finish(loader *ld, void *items, size_t index,
			 yaml_node_t *item_node, const char *disp)
{
	ls_model_spec *specs = items;
	ls_model_spec *m = &specs[index];
	char key[KEY_MAX + 32], qb[72];

	for (size_t j = 0; j < index; j++) {
		if (strcmp(specs[j].name, m->name) != 0)
			continue;
		key_printf(key, sizeof key, "%s.name", disp);
		ld_error(ld, value_mark(ld, item_node, "name"), key,
			 "duplicate model name %s (also models[%zu])", q(m->name, qb, sizeof qb), j);
		return;
	}
	uint32_t both = m->positive_mask & m->negative_mask;
	if (both != 0) {
		/* Report at whichever list the user wrote, negative first. */
		bool neg = mapping_value(ld->doc, item_node, "negative") != NULL;
		int o = 0;
		while (!(both & OUTCOME(o)))
			o++;
		key_printf(key, sizeof key, "%s.%s", disp, neg ? "negative" : "positive");
		ld_error(ld, value_mark(ld, item_node, neg ? "negative" : "positive"), key,
			 "%s is both a positive and a negative outcome",
			 ls_outcome_type_name((ls_outcome_type)o));
	} else if (m->negative_mask == 0 && m->label_timeout_ms == 0) {
		key_printf(key, sizeof key, "%s.negative", disp);
		ld_error(ld, value_mark(ld, item_node, "negative"), key,
			 "no negative outcomes and label_timeout 0: the model would never see a negative example");
	}
	(void)model_check_tiers(ld, m, item_node, disp);
	model_check_ftrl(ld, m, item_node, disp);
}

static void report_parser_error(loader *ld, const yaml_parser_t *parser)
{
	const char *problem = parser->problem != NULL ? parser->problem : "unknown problem";

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		eb_add(ld->eb, "%s: out of memory while parsing", ld->file);
		return;
	case YAML_READER_ERROR:
		/* Reader errors (bad encoding, read failure) carry an offset,
		 * not a mark. */
		eb_add(ld->eb, "%s: cannot read: %s at byte %zu", ld->file, problem,
		       parser->problem_offset);
		return;
	default:
		break;
	}
	if (parser->context != NULL)
		eb_add(ld->eb, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu, column %zu)",
		       ld->file, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
		       problem, parser->context, parser->context_mark.line + 1,
		       parser->context_mark.column + 1);
	else
		eb_add(ld->eb, "%s:%zu:%zu: YAML syntax error: %s", ld->file,
		       parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
}

/*
 * Parse the file and apply it to ld->cfg. Returns false when the file
 * could not be read or parsed at all, in which case required keys are not
 * checked (they may well be in the part that failed).
 */
/*
 * The dead-letter room check (check_dlq_room) runs after the environment
 * is applied, when the YAML document is gone: remember where its keys
 * were written.
 */
static const char *const dlq_keys[3] = { "pipeline.max_record_size", "pipeline.max_id_bytes",
					 "kafka.properties.message.max.bytes" };

static void note_dlq_marks(loader *ld, yaml_node_t *root)
{
	yaml_node_t *pl = mapping_value(ld->doc, root, "pipeline");
	yaml_node_t *kf = mapping_value(ld->doc, root, "kafka");
	yaml_node_t *pr = kf != NULL && kf->type == YAML_MAPPING_NODE
				  ? mapping_value(ld->doc, kf, "properties") : NULL;
	bool pl_map = pl != NULL && pl->type == YAML_MAPPING_NODE;
	yaml_node_t *v[3] = {
		pl_map ? mapping_value(ld->doc, pl, "max_record_size") : NULL,
		pl_map ? mapping_value(ld->doc, pl, "max_id_bytes") : NULL,
		pr != NULL && pr->type == YAML_MAPPING_NODE
			? mapping_value(ld->doc, pr, "message.max.bytes") : NULL,
	};
	for (int i = 0; i < 3; i++)
		if (v[i] != NULL) {
			ld->dlq_marked[i] = true;
			ld->dlq_marks[i] = v[i]->start_mark;
		}
}

static bool env_has(char *const *envp, const char *key)
{
	char name[KEY_MAX];
	if (envp == NULL)
		envp = environ;
	if (envp == NULL || ls_config_env_name(key, name, sizeof name) != 0)
		return false;
	size_t n = strlen(name);
	for (size_t e = 0; envp[e] != NULL; e++)
		if (strncmp(envp[e], name, n) == 0 && envp[e][n] == '=')
			return true;
	return false;
}

int64_t ls_config_message_max(const ls_config *cfg)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
		if (strcmp(cfg->kafka.properties[i].key, "message.max.bytes") != 0)
			continue;
		const char *v = cfg->kafka.properties[i].value;
		char *end;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (end == v || *end != '\0' || errno != 0 || n < 0)
			return -1;
		return (int64_t)n;
	}
	return LS_CONFIG_DEFAULT_MESSAGE_MAX;
}

/*
 * Every record the codec accepts (up to max_record_size, its key up to
 * max_id_bytes) must fit a dead letter whole: otherwise a malformed
 * record of that size could only be dead-lettered truncated. Blamed on
 * the first of max_record_size, max_id_bytes, message.max.bytes that was
 * set, where it was set (the environment beats the file).
 */
static void check_dlq_room(loader *ld, char *const *envp)
{
	const ls_config *c = ld->cfg;
	int64_t max = ls_config_message_max(c);
	int64_t need = c->pipeline.max_record_size + c->pipeline.max_id_bytes + LS_CONFIG_DLQ_RESERVE;
	if (max < 0 || need <= max)
		return;
	char msg[512];
	snprintf(msg, sizeof msg,
		 "pipeline.max_record_size (%lld) + pipeline.max_id_bytes (%lld) + %d bytes of "
		 "dead-letter headers and framing exceed the producers' message.max.bytes (%lld%s): "
		 "a record that large could not be dead-lettered whole; lower max_record_size to "
		 "at most %lld or raise message.max.bytes in kafka.properties (and the broker's limit)",
		 (long long)c->pipeline.max_record_size, (long long)c->pipeline.max_id_bytes,
		 LS_CONFIG_DLQ_RESERVE, (long long)max,
		 ld->dlq_marked[2] ? "" : ", librdkafka's default",
		 (long long)(max - c->pipeline.max_id_bytes - LS_CONFIG_DLQ_RESERVE));
	for (int i = 0; i < 3; i++) {
		if (i < 2 && env_has(envp, dlq_keys[i])) {
			char name[KEY_MAX];
			if (ls_config_env_name(dlq_keys[i], name, sizeof name) == 0) {
				eb_add(ld->eb, "environment %s: %s", name, msg);
				return;
			}
		}
		if (ld->dlq_marked[i] && ld->file != NULL) {
			ld_error(ld, ld->dlq_marks[i], dlq_keys[i], "%s", msg);
			return;
		}
	}
	eb_add(ld->eb, "%s: %s", dlq_keys[0], msg);
}

static bool load_file(loader *ld, const char *path, bool *root_set)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		eb_add(ld->eb, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		fclose(fp);
		eb_add(ld->eb, "%s: out of memory", path);
		return false;
	}
	yaml_parser_set_input_file(&parser, fp);
	struct stat st;
	ld->mode = fstat(fileno(fp), &st) == 0 ? st.st_mode : 0;

	yaml_document_t doc;
	if (!yaml_parser_load(&parser, &doc)) {
		report_parser_error(ld, &parser);
		yaml_parser_delete(&parser);
		fclose(fp);
		return false;
	}
	bool ok = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root != NULL) {
		/* A second document would be silently ignored; say so instead. */
		yaml_document_t next;
		if (!yaml_parser_load(&parser, &next)) {
			report_parser_error(ld, &parser);
			ok = false;
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&next);
			if (r2 != NULL)
				eb_add(ld->eb, "%s:%zu:%zu: only one YAML document is allowed",
				       path, r2->start_mark.line + 1, r2->start_mark.column + 1);
			yaml_document_delete(&next);
		}
		ld->doc = &doc;
		if (root->type == YAML_MAPPING_NODE) {
			walk_mapping(ld, root_fields, N_ROOT, ld->cfg, root_set, root, "", "");
			check_campaign_models(ld, root);
			note_dlq_marks(ld, root);
		} else if (!is_null_scalar(root))
			eb_add(ld->eb, "%s:%zu:%zu: expected a mapping of sections at the top level, got %s",
			       path, root->start_mark.line + 1, root->start_mark.column + 1,
			       node_kind(root));
		ld->doc = NULL;
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(fp);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Environment                                                         */
/* ------------------------------------------------------------------ */

int ls_config_env_name(const char *key, char *buf, size_t buflen)
{
	size_t plen = strlen(ENV_PREFIX), klen = strlen(key);
	if (plen + klen + 1 > buflen)
		return -1;
	memcpy(buf, ENV_PREFIX, plen);
	for (size_t i = 0; i < klen; i++)
		buf[plen + i] = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
	buf[plen + klen] = '\0';
	return 0;
}

static bool env_overridable(const field *f)
{
	return f->type != FT_MAP && f->type != FT_SEQ && f->type != FT_CUSTOM;
}

static void apply_env(ls_config *cfg, char *const *envp, errbuf *eb, bool *root_set)
{
	if (envp == NULL)
		envp = environ;
	if (envp == NULL)
		return;
	for (size_t e = 0; envp[e] != NULL; e++) {
		const char *var = envp[e];
		if (strncmp(var, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
			continue;
		const char *eq = strchr(var, '=');
		if (eq == NULL)
			continue;
		size_t nlen = (size_t)(eq - var);
		for (size_t i = 0; i < N_ROOT; i++) {
			const field *f = &root_fields[i];
			char name[KEY_MAX];
			if (!env_overridable(f) || ls_config_env_name(f->name, name, sizeof name) != 0)
				continue;
			if (strlen(name) != nlen || memcmp(name, var, nlen) != 0)
				continue;
			char msg[512];
			if (field_set(f, cfg, eq + 1, false, msg, sizeof msg) != 0)
				eb_add(eb, "environment %s: %s", name, msg);
			if (root_set != NULL)
				root_set[i] = true;
			break;
		}
	}
}

int ls_config_apply_env(ls_config *cfg, char *const *envp, char *err, size_t errlen)
{
	errbuf eb;
	eb_init(&eb, err, errlen);
	apply_env(cfg, envp, &eb, NULL);
	eb_finish(&eb);
	return eb.n_errors > 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                 */
/* ------------------------------------------------------------------ */

void ls_config_init_defaults(ls_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < N_ROOT; i++) {
		const field *f = &root_fields[i];
		char msg[256];
		if (f->def == NULL || !env_overridable(f))
			continue;
		/* Built-in defaults always parse; only strdup can fail, which
		 * leaves the member NULL for ls_config_load to notice. */
		(void)field_set(f, cfg, f->def, false, msg, sizeof msg);
	}
}

static bool defaults_complete(const ls_config *cfg)
{
	for (size_t i = 0; i < N_ROOT; i++) {
		const field *f = &root_fields[i];
		if (f->type == FT_STRING && f->def != NULL && str_get(f, cfg) == NULL)
			return false;
	}
	return true;
}

/* Position of the innermost section present above key, or 1:1. */
static yaml_mark_t parent_mark(const loader *ld, const char *key)
{
	char path[KEY_MAX];
	yaml_mark_t none = { 0, 0, 0 };

	key_printf(path, sizeof path, "%s", key);
	for (;;) {
		char *dot = strrchr(path, '.');
		if (dot == NULL)
			return none;
		*dot = '\0';
		for (size_t i = 0; i < ld->n_sections; i++)
			if (strcmp(ld->sections[i].path, path) == 0)
				return ld->sections[i].mark;
	}
}

static void check_required(loader *ld, const bool *root_set)
{
	for (size_t i = 0; i < N_ROOT; i++) {
		const field *f = &root_fields[i];
		char env[KEY_MAX];
		if (!(f->flags & F_REQUIRED) || root_set[i])
			continue;
		if (ls_config_env_name(f->name, env, sizeof env) != 0)
			env[0] = '\0';
		if (ld->file == NULL)
			eb_add(ld->eb, "%s: required key is missing (no config file; set %s)",
			       f->name, env);
		else
			ld_error(ld, parent_mark(ld, f->name), f->name,
				 "required key is missing (set it here or in %s)", env);
	}
}

/*
 * One warning line per secret in a file every local user can read: a
 * password there leaks to any account, backup or support bundle that can
 * read /etc. Others-readable (mode & 0004) warns, group-readable does not:
 * root:leadscore 0640 is how an admin grants a service account its config,
 * and that group is the grant. NULL when there is nothing to say (or
 * memory ran out: a warning is not worth failing the load for).
 */
static char *secret_warnings(const loader *ld)
{
	if (ld->n_secrets == 0 || !(ld->mode & S_IROTH))
		return NULL;
	size_t cap = ld->n_secrets * 640, len = 0;
	char *out = malloc(cap);
	if (out == NULL)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < ld->n_secrets; i++) {
		const char *key = ld->secrets[i].key;
		char env[KEY_MAX + 64] = "";
		int idx = find_field(root_fields, N_ROOT, key);
		if (idx >= 0 && env_overridable(&root_fields[idx])) {
			char name[KEY_MAX];
			if (ls_config_env_name(key, name, sizeof name) == 0)
				snprintf(env, sizeof env, ", or set %s in the environment instead", name);
		}
		int n = snprintf(out + len, cap - len,
				 "%s%s:%zu:%zu: %s: holds a secret, but the file is readable by every user (mode %04o); chmod o-r the file%s",
				 len > 0 ? "\n" : "", ld->file, ld->secrets[i].mark.line + 1,
				 ld->secrets[i].mark.column + 1, key,
				 (unsigned)(ld->mode & 07777), env);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
	return out;
}

void ls_config_secrets(const ls_config *cfg, void (*fn)(const char *secret, void *ud),
		       void *ud)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++)
		if (ls_kafka_property_is_secret(cfg->kafka.properties[i].key))
			fn(cfg->kafka.properties[i].value, ud);
	if (cfg->http.auth_token != NULL)
		fn(cfg->http.auth_token, ud);
	ls_redis_target t;
	char why[256];
	if (cfg->redis.url != NULL && ls_redis_url_parse(cfg->redis.url, &t, why, sizeof why) == 0) {
		if (t.password != NULL) {
			fn(cfg->redis.url, ud);
			fn(t.password, ud);
		}
		ls_redis_target_free(&t);
	}
}

static void mask_one(const char *secret, void *ud)
{
	(void)ud;
	ls_log_add_secret(secret);
}

void ls_config_mask_secrets(const ls_config *cfg)
{
	ls_config_secrets(cfg, mask_one, NULL);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return NULL;
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	return strndup(path, len);
}

int ls_config_load_env(const char *path, char *const *envp, ls_config *out,
		       char *err, size_t errlen)
{
	errbuf eb;
	loader ld;
	bool root_set[N_ROOT] = { false };

	eb_init(&eb, err, errlen);
	memset(&ld, 0, sizeof ld);
	ld.file = path;
	ld.cfg = out;
	ld.eb = &eb;

	ls_config_init_defaults(out);
	if (!defaults_complete(out)) {
		eb_add(&eb, "%s: out of memory", path != NULL ? path : "defaults");
		goto done;
	}
	bool file_ok = true;
	if (path != NULL) {
		out->path = strdup(path);
		if (out->path == NULL) {
			eb_add(&eb, "%s: out of memory", path);
			goto done;
		}
		const char *slash = strrchr(path, '/');
		if (slash != NULL) {
			ld.dir = dir_of(path);
			if (ld.dir == NULL) {
				eb_add(&eb, "%s: out of memory", path);
				goto done;
			}
		}
		file_ok = load_file(&ld, path, root_set);
		out->warnings = secret_warnings(&ld);
	}
	apply_env(out, envp, &eb, root_set);
	if (file_ok)
		check_required(&ld, root_set);
	if (eb.n_errors == 0)
		check_dlq_room(&ld, envp);
done:
	free(ld.dir);
	eb_finish(&eb);
	if (eb.n_errors > 0) {
		ls_config_free(out);
		return -1;
	}
	return 0;
}

int ls_config_load(const char *path, ls_config *out, char *err, size_t errlen)
{
	return ls_config_load_env(path, NULL, out, err, errlen);
}

void ls_config_free(ls_config *cfg)
{
	if (cfg == NULL)
		return;
	free_fields(root_fields, N_ROOT, cfg);
	free(cfg->path);
	free(cfg->warnings);
	memset(cfg, 0, sizeof *cfg);
}

/*
 * models is compared as the daemon runs it (no `models:` key is the
 * built-in model), one key per model: a list naming the same models in
 * the same order keeps every model's learned state, so its F_RELOAD keys
 * (thresholds, tiers, decay, shadow) can move live; any other change to
 * the list, or to a model's features and learning, needs a restart.
 */
static bool models_same_names(const ls_config *a, const ls_config *b)
{
	size_t na, nb;
	const ls_model_spec *ma = ls_config_models(a, &na);
	const ls_model_spec *mb = ls_config_models(b, &nb);
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(ma[i].name, mb[i].name) != 0)
			return false;
	return true;
}

static size_t diff_models(const field *f, const ls_config *old, const ls_config *newc,
			  ls_config_diff_fn fn, void *ud)
{
	if (!models_same_names(old, newc)) {
		if (fn != NULL)
			fn(f->name, false, ud);
		return 1;
	}
	size_t n, changed = 0;
	const ls_model_spec *a = ls_config_models(old, &n);
	const ls_model_spec *b = ls_config_models(newc, NULL);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < f->seq->n_fields; k++) {
			const field *sub = &f->seq->fields[k];
			if (field_equal(sub, &a[i], &b[i]))
				continue;
			changed++;
			if (fn != NULL) {
				char key[LS_MODEL_NAME_MAX + 64];
				snprintf(key, sizeof key, "%s[%s].%s", f->name, a[i].name, sub->name);
				fn(key, (sub->flags & F_RELOAD) != 0, ud);
			}
		}
	}
	return changed;
}

size_t ls_config_diff(const ls_config *old, const ls_config *newc,
		      ls_config_diff_fn fn, void *ud)
{
	size_t changed = 0;
	for (size_t i = 0; i < N_ROOT; i++) {
		const field *f = &root_fields[i];
		if (f->seq == &models_seq) {
			changed += diff_models(f, old, newc, fn, ud);
			continue;
		}
		if (field_equal(f, old, newc))
			continue;
		changed++;
		if (fn != NULL)
			fn(f->name, (f->flags & F_RELOAD) != 0, ud);
	}
	return changed;
}

/* Copy one scalar row's value from src to dst (both of the same base type). */
static int field_copy(const field *f, void *dst, const void *src)
{
	switch (f->type) {
	case FT_STRING: {
		const char *v = str_get(f, src);
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
		memcpy(at(dst, f->offset), cat(src, f->offset), sizeof(int64_t));
		return 0;
	case FT_BOOL:
		memcpy(at(dst, f->offset), cat(src, f->offset), sizeof(bool));
		return 0;
	case FT_ENUM:
	case FT_LOG_LEVEL:
		set_enum(f, dst, get_enum(f, src));
		return 0;
	case FT_NUMBER:
		memcpy(at(dst, f->offset), cat(src, f->offset), sizeof(double));
		return 0;
	case FT_CHARS:
		memcpy(at(dst, f->offset), cat(src, f->offset), f->size);
		return 0;
	case FT_SEQ: {
		/* only sequences whose items own no memory are live (campaigns) */
		const seq_desc *sd = f->seq;
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
		free_seq(sd, dst);
		set_ptr(dst, sd->items_offset, items);
		set_count(dst, sd->count_offset, n);
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

/* A model's F_RELOAD keys, in place: the scorer keeps its learned state
 * (see diff_models). The built-in model becomes a one-item list first,
 * so the running config says what runs. */
static int apply_models_live(const field *f, ls_config *cfg, const ls_config *newc)
{
	if (!models_same_names(cfg, newc))
		return 0;
	size_t n;
	const ls_model_spec *b = ls_config_models(newc, &n);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < f->seq->n_fields; k++) {
			const field *sub = &f->seq->fields[k];
			const ls_model_spec *a = ls_config_models(cfg, NULL);
			if (!(sub->flags & F_RELOAD) || field_equal(sub, &a[i], &b[i]))
				continue;
			if (cfg->models.n == 0) {
				cfg->models.specs = malloc(sizeof *cfg->models.specs);
				if (cfg->models.specs == NULL)
					return -1;
				cfg->models.specs[0] = default_model;
				cfg->models.n = 1;
			}
			if (field_copy(sub, &cfg->models.specs[i], &b[i]) != 0)
				return -1;
		}
	}
	return 0;
}

int ls_config_apply_live(ls_config *cfg, const ls_config *newc)
{
	for (size_t i = 0; i < N_ROOT; i++) {
		const field *f = &root_fields[i];
		if (f->seq == &models_seq) {
			if (apply_models_live(f, cfg, newc) != 0)
				return -1;
			continue;
		}
		if (!(f->flags & F_RELOAD) || field_equal(f, cfg, newc))
			continue;
		if (field_copy(f, cfg, newc) != 0)
			return -1;
	}
	return 0;
}

static void fill_info(const field *f, const char *parent, bool reloadable, bool env,
		      ls_config_key_info *info)
{
	if (parent != NULL)
		key_printf(info->key, sizeof info->key, "%s[].%s", parent, f->name);
	else
		key_printf(info->key, sizeof info->key, "%s", f->name);
	info->type = f->type == FT_CUSTOM ? f->custom->type_name : type_names[f->type];
	info->default_text = f->def;
	info->required = (f->flags & F_REQUIRED) != 0;
	info->reloadable = reloadable;
	info->env_overridable = env;
	info->description = f->desc;
}

bool ls_config_key_at(size_t i, ls_config_key_info *info)
{
	size_t k = 0;
	for (size_t r = 0; r < N_ROOT; r++) {
		const field *f = &root_fields[r];
		bool reload = (f->flags & F_RELOAD) != 0;
		if (k++ == i) {
			fill_info(f, NULL, reload, env_overridable(f), info);
			return true;
		}
		if (f->type != FT_SEQ)
			continue;
		for (size_t s = 0; s < f->seq->n_fields; s++) {
			const field *sub = &f->seq->fields[s];
			if (k++ == i) {
				fill_info(sub, f->name, reload || (sub->flags & F_RELOAD) != 0,
					  false, info);
				return true;
			}
		}
	}
	return false;
}

const ls_feature_spec *ls_config_features(const ls_config *cfg, size_t *n)
{
	if (cfg == NULL || cfg->features.n == 0)
		return ls_features_default(n);
	if (n != NULL)
		*n = cfg->features.n;
	return cfg->features.specs;
}

void ls_config_lead_conf(const ls_config *cfg, const ls_feature_set *set,
			 ls_lead_conf *out)
{
	ls_lead_conf_default(out, set);
	/* The table's ranges are ls_lead_conf's, so the casts cannot truncate. */
	out->grace_ms = cfg->pipeline.grace_ms;
	out->dedupe_horizon_ms = cfg->pipeline.dedupe_horizon_ms;
	out->dedupe_k = (uint32_t)cfg->pipeline.dedupe_ids;
	out->max_attributes = (uint32_t)cfg->pipeline.max_profile_attributes;
	out->max_metrics = (uint32_t)cfg->pipeline.max_profile_metrics;
}

const ls_model_spec *ls_config_models(const ls_config *cfg, size_t *n)
{
	if (cfg == NULL || cfg->models.n == 0) {
		if (n != NULL)
			*n = 1;
		return &default_model;
	}
	if (n != NULL)
		*n = cfg->models.n;
	return cfg->models.specs;
}
