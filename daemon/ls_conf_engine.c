/*
 * ls_conf_engine.c - the generic half of configuration loading: YAML
 * document walking, environment overrides, required keys, secret
 * warnings and error collection, driven by a key table.
 *
 * Why a seam here: none of this knows a leadscore key, and the schema
 * (ls_config.c and its item files) is mostly rows and checks; keeping the
 * walker apart lets each be read, and changed, on its own, as
 * librdkafka's rdkafka_conf.c keeps its property walker apart from its
 * property table.
 *
 * Why libyaml's document API rather than events: every node keeps its
 * start mark, so an error found after the whole file is read (a missing
 * required key, a duplicate schema id) can still point at a line and a
 * column, and duplicate keys are found by looking at sibling pairs.
 */
#include "ls_conf_engine.h"
#include "ls_config.h" /* ls_config_kv, the entries of an FT_MAP */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Error collection                                                    */
/* ------------------------------------------------------------------ */

/* Room kept free so "(N more errors)" fits once lines start dropping. */
#define TRAILER_RESERVE 32

void ls_conf_errors_init(ls_conf_errors *eb, char *buf, size_t cap)
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
void ls_conf_errors_add(ls_conf_errors *eb, const char *fmt, ...)
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

void ls_conf_errors_finish(ls_conf_errors *eb)
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

void ls_conf_error(ls_conf_loader *ld, yaml_mark_t mark, const char *key,
		     const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (key != NULL && key[0] != '\0')
		ls_conf_errors_add(ld->eb, "%s:%zu:%zu: %s: %s", ld->file, mark.line + 1,
		       mark.column + 1, key, msg);
	else
		ls_conf_errors_add(ld->eb, "%s:%zu:%zu: %s", ld->file, mark.line + 1,
		       mark.column + 1, msg);
}

static void note_secret(ls_conf_loader *ld, yaml_mark_t mark, const char *key)
{
	if (ld->n_secrets >= COUNT(ld->secrets))
		return;
	snprintf(ld->secrets[ld->n_secrets].key, sizeof ld->secrets[0].key, "%s", key);
	ld->secrets[ld->n_secrets].mark = mark;
	ld->n_secrets++;
}

yaml_node_t *ls_conf_mapping_value(yaml_document_t *doc, yaml_node_t *map, const char *key)
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

/* ------------------------------------------------------------------ */
/* Walking the YAML document                                           */
/* ------------------------------------------------------------------ */

const char *ls_conf_node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a sequence";
	case YAML_SCALAR_NODE: return "a scalar";
	default: return "nothing";
	}
}

/* A plain ~, null, Null, NULL or empty scalar is YAML's null. */
bool ls_conf_is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Scalar text, or NULL (with an error reported) if it holds a NUL byte. */
const char *ls_conf_scalar_text(ls_conf_loader *ld, yaml_node_t *n, const char *key)
{
	const char *s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length) {
		ls_conf_error(ld, n->start_mark, key, "value contains a NUL character");
		return NULL;
	}
	return s;
}

static void join_key(char *out, size_t outlen, const char *prefix, const char *name)
{
	if (prefix[0] == '\0')
		ls_conf_key_printf(out, outlen, "%s", name);
	else
		ls_conf_key_printf(out, outlen, "%s.%s", prefix, name);
}

static void note_section(ls_conf_loader *ld, const char *path, yaml_mark_t mark)
{
	if (ld->n_sections >= COUNT(ld->sections))
		return;
	ls_conf_key_printf(ld->sections[ld->n_sections].path, KEY_MAX, "%s", path);
	ld->sections[ld->n_sections].mark = mark;
	ld->n_sections++;
}

/* Index of the row named rel, or -1. */
static int find_field(const ls_conf_field *tbl, size_t n, const char *rel)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tbl[i].name, rel) == 0)
			return (int)i;
	return -1;
}

/* Does some row live under "rel."? Then rel is a section. */
static bool is_section(const ls_conf_field *tbl, size_t n, const char *rel)
{
	size_t len = strlen(rel);
	for (size_t i = 0; i < n; i++)
		if (strncmp(tbl[i].name, rel, len) == 0 && tbl[i].name[len] == '.')
			return true;
	return false;
}

/* "brokers, group_id, topics, properties": the keys allowed under rel. */
static void known_keys(const ls_conf_field *tbl, size_t n, const char *rel, char *buf,
		       size_t buflen)
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

static void walk_map_field(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp)
{
	const ls_conf_map *md = f->map;

	if (ls_conf_is_null(node))
		return;
	if (node->type != YAML_MAPPING_NODE) {
		ls_conf_error(ld, node->start_mark, disp, "expected a mapping, got %s", ls_conf_node_kind(node));
		return;
	}
	ls_conf_free_map(md, base);
	size_t cap = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
	if (cap == 0)
		return;
	ls_config_kv *kv = calloc(cap, sizeof *kv);
	if (kv == NULL) {
		ls_conf_error(ld, node->start_mark, disp, "out of memory");
		return;
	}
	ls_conf_set_ptr(base, md->items_offset, kv);
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
			ls_conf_error(ld, k->start_mark, disp, "keys must be non-empty scalars");
			continue;
		}
		const char *ks = ls_conf_scalar_text(ld, k, disp);
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
			ls_conf_error(ld, k->start_mark, key,
				 "duplicate key (first defined at line %zu, column %zu)",
				 first->start_mark.line + 1, first->start_mark.column + 1);
			continue;
		}
		char whybuf[640];
		const char *why = md->check_key != NULL ? md->check_key(ks, whybuf, sizeof whybuf) : NULL;
		if (why != NULL) {
			ls_conf_error(ld, k->start_mark, key, "%s", why);
			continue;
		}
		if (v->type != YAML_SCALAR_NODE || ls_conf_is_null(v)) {
			ls_conf_error(ld, v->start_mark, key, "expected a scalar value, got %s",
				 ls_conf_is_null(v) ? "null" : ls_conf_node_kind(v));
			continue;
		}
		const char *vs = ls_conf_scalar_text(ld, v, key);
		if (vs == NULL)
			continue;
		kv[count].key = strdup(ks);
		kv[count].value = strdup(vs);
		/* Count the entry before checking so ls_conf_free_map releases it. */
		count++;
		ls_conf_set_count(base, md->count_offset, count);
		if (kv[count - 1].key == NULL || kv[count - 1].value == NULL) {
			ls_conf_error(ld, v->start_mark, key, "out of memory");
			continue;
		}
		if (md->secret_key != NULL && md->secret_key(ks))
			note_secret(ld, k->start_mark, key);
		if (md->check_entry != NULL) {
			bool at_key = false;
			why = md->check_entry(state, ks, vs, &at_key, whybuf, sizeof whybuf);
			if (why != NULL)
				ls_conf_error(ld, at_key ? k->start_mark : v->start_mark, key, "%s", why);
		}
	}
	if (md->end != NULL)
		md->end(state);
}

static void walk_seq_field(ls_conf_loader *ld, const ls_conf_field *f, void *base,
			   yaml_node_t *node, const char *disp)
{
	const ls_conf_seq *sd = f->seq;

	if (ls_conf_is_null(node))
		return;
	if (node->type != YAML_SEQUENCE_NODE) {
		ls_conf_error(ld, node->start_mark, disp, "expected a sequence, got %s", ls_conf_node_kind(node));
		return;
	}
	ls_conf_free_seq(sd, base);
	size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	if (n == 0) {
		if (sd->empty_error != NULL)
			ls_conf_error(ld, node->start_mark, disp, "%s", sd->empty_error);
		return;
	}
	if (sd->max_items > 0 && n > sd->max_items) {
		ls_conf_error(ld, node->start_mark, disp, "at most %zu entries, got %zu",
			 sd->max_items, n);
		return;
	}
	size_t seq_before = ld->eb->n_errors;
	char *items = calloc(n, sd->item_size);
	bool *set = calloc(sd->n_fields, sizeof *set);
	if (items == NULL || set == NULL) {
		free(items);
		free(set);
		ls_conf_error(ld, node->start_mark, disp, "out of memory");
		return;
	}
	/* Every slot is zeroed, so ls_conf_free_seq can release a half-filled array. */
	ls_conf_set_ptr(base, sd->items_offset, items);
	ls_conf_set_count(base, sd->count_offset, n);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
		char idisp[KEY_MAX];
		if (item == NULL)
			continue;
		ls_conf_key_printf(idisp, sizeof idisp, "%s[%zu]", disp, i);
		if (item->type != YAML_MAPPING_NODE) {
			ls_conf_error(ld, item->start_mark, idisp, "expected a mapping, got %s",
				 ls_conf_node_kind(item));
			continue;
		}
		size_t before = ld->eb->n_errors;
		void *ip = items + i * sd->item_size;
		memset(set, 0, sd->n_fields * sizeof *set);
		if (sd->init_item != NULL)
			sd->init_item(ip);
		ls_conf_walk_mapping(ld, sd->fields, sd->n_fields, ip, set, item, "", idisp);
		for (size_t j = 0; j < sd->n_fields; j++) {
			if ((sd->fields[j].flags & F_REQUIRED) && !set[j]) {
				char key[KEY_MAX + 64];
				join_key(key, sizeof key, idisp, sd->fields[j].name);
				ls_conf_error(ld, item->start_mark, key, "required key is missing");
			}
		}
		if (ld->eb->n_errors == before && sd->finish_item != NULL)
			sd->finish_item(ld, items, i, item, idisp);
	}
	free(set);
	if (ld->eb->n_errors == seq_before && sd->finish_all != NULL)
		sd->finish_all(ld, items, n, node, disp);
}

/* A set F_SECRET string that holds a secret: any token; for a URL, the
 * schema's hook says (a password in it). */
static bool holds_secret(const ls_conf_loader *ld, const ls_conf_field *f, const void *base)
{
	if (f->type != FT_STRING)
		return false;
	const char *v = ls_conf_str_get(f, base);
	if (v == NULL || v[0] == '\0')
		return false;
	if (ld->table->holds_secret == NULL)
		return true;
	return ld->table->holds_secret(f, v);
}

static void walk_value(ls_conf_loader *ld, const ls_conf_field *f, void *base, yaml_node_t *node,
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
		ls_conf_error(ld, node->start_mark, disp, "expected %s, got %s", ls_conf_type_phrase(f),
			 ls_conf_node_kind(node));
		return;
	}
	const char *text = ls_conf_scalar_text(ld, node, disp);
	if (text == NULL)
		return;
	if (ls_conf_field_set(f, base, text, ls_conf_is_null(node), msg, sizeof msg) != 0)
		ls_conf_error(ld, node->start_mark, disp, "%s", msg);
	else if ((f->flags & F_SECRET) && holds_secret(ld, f, base))
		note_secret(ld, node->start_mark, disp);
}

/*
 * Walk mapping map against the rows of tbl. rel is the row-name prefix
 * this mapping stands for ("" or "kafka.topics"), disp the dotted key
 * shown in errors ("kafka.topics", "schemas.writers[2]"). set[i] becomes
 * true for every row the mapping assigns, rightly or wrongly, so a bad
 * value is not also reported as missing.
 */
void ls_conf_walk_mapping(ls_conf_loader *ld, const ls_conf_field *tbl, size_t n, void *base,
			  bool *set, yaml_node_t *map, const char *rel, const char *disp)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
		char row_name[KEY_MAX], shown_key[KEY_MAX];
		if (k == NULL || v == NULL)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			ls_conf_error(ld, k->start_mark, disp, "keys must be scalars, got %s",
				 ls_conf_node_kind(k));
			continue;
		}
		const char *ks = ls_conf_scalar_text(ld, k, disp);
		if (ks == NULL)
			continue;
		join_key(row_name, sizeof row_name, rel, ks);
		join_key(shown_key, sizeof shown_key, disp, ks);

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
			ls_conf_error(ld, k->start_mark, shown_key,
				 "duplicate key (first defined at line %zu, column %zu)",
				 first.line + 1, first.column + 1);
			continue;
		}

		/* A dotted key ("kafka.brokers: x" at the top) would dodge the
		 * duplicate check above, so only nesting spells a path. */
		int idx = strchr(ks, '.') == NULL && ks[0] != '\0' ? find_field(tbl, n, row_name) : -1;
		if (idx >= 0) {
			set[idx] = true;
			walk_value(ld, &tbl[idx], base, v, shown_key);
			continue;
		}
		if (strchr(ks, '.') == NULL && ks[0] != '\0' && is_section(tbl, n, row_name)) {
			note_section(ld, shown_key, v->start_mark);
			if (ls_conf_is_null(v))
				continue; /* "redis:" with every key commented out */
			if (v->type != YAML_MAPPING_NODE) {
				ls_conf_error(ld, v->start_mark, shown_key, "expected a mapping, got %s",
					 ls_conf_node_kind(v));
				continue;
			}
			ls_conf_walk_mapping(ld, tbl, n, base, set, v, row_name, shown_key);
			continue;
		}
		if (strchr(ks, '.') != NULL) {
			ls_conf_error(ld, k->start_mark, shown_key,
				 "unknown key (nest sections as mappings instead of dotted keys)");
			continue;
		}
		char known[256];
		known_keys(tbl, n, rel, known, sizeof known);
		ls_conf_error(ld, k->start_mark, shown_key, "unknown key (expected one of: %s)", known);
	}
}

yaml_node_t *ls_conf_seq_item(ls_conf_loader *ld, yaml_node_t *seq, size_t i)
{
	return yaml_document_get_node(ld->doc, seq->data.sequence.items.start[i]);
}

size_t ls_conf_seq_len(const yaml_node_t *seq)
{
	return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

yaml_node_t *ls_conf_seq_entry(ls_conf_loader *ld, yaml_node_t *seq, size_t i, const char *disp,
			       char *key, size_t keylen)
{
	yaml_node_t *item = ls_conf_seq_item(ld, seq, i);
	if (item != NULL)
		ls_conf_key_printf(key, keylen, "%s[%zu]", disp, i);
	return item;
}

bool ls_conf_expect_seq(ls_conf_loader *ld, yaml_node_t *node, const char *disp, const char *what)
{
	if (node->type == YAML_SEQUENCE_NODE)
		return true;
	ls_conf_error(ld, node->start_mark, disp, "expected %s, got %s", what,
		      ls_conf_is_null(node) ? "null" : ls_conf_node_kind(node));
	return false;
}

/* A sequence of scalars for the list keys; false (reported) otherwise. */
bool ls_conf_scalar_list(ls_conf_loader *ld, yaml_node_t *node, const char *disp,
			 const char *example, size_t max)
{
	if (node->type != YAML_SEQUENCE_NODE) {
		ls_conf_error(ld, node->start_mark, disp, "expected a sequence such as %s, got %s",
			 example, ls_conf_is_null(node) ? "null" : ls_conf_node_kind(node));
		return false;
	}
	if (ls_conf_seq_len(node) > max) {
		ls_conf_error(ld, node->start_mark, disp, "at most %zu entries, got %zu", max,
			 ls_conf_seq_len(node));
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < ls_conf_seq_len(node); i++) {
		char idisp[KEY_MAX + 16];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		if (item->type != YAML_SCALAR_NODE || ls_conf_is_null(item)) {
			ls_conf_error(ld, item->start_mark, idisp, "expected a name, got %s",
				 ls_conf_is_null(item) ? "null" : ls_conf_node_kind(item));
			ok = false;
		} else if (ls_conf_scalar_text(ld, item, idisp) == NULL) {
			ok = false;
		}
	}
	return ok;
}
/*
 * A sequence of up to max distinct names, each passing check (NULL: no
 * check), into out: max rows of width bytes (zeroed first). On success
 * *n receives the count; on any problem every one is reported at its node
 * and false returned with out and *n untouched.
 */
bool ls_conf_name_list(ls_conf_loader *ld, yaml_node_t *node, const char *disp, const char *example,
		      size_t max, const char *(*check)(const char *), char *out, size_t width,
		      size_t *n)
{
	if (!ls_conf_scalar_list(ld, node, disp, example, max))
		return false;
	size_t len = ls_conf_seq_len(node);
	char *tmp = calloc(max ? max : 1, width);
	if (tmp == NULL) {
		ls_conf_error(ld, node->start_mark, disp, "out of memory");
		return false;
	}
	bool ok = true;
	for (size_t i = 0; i < len; i++) {
		char idisp[KEY_MAX + 16], qbuf[72];
		yaml_node_t *item = ls_conf_seq_entry(ld, node, i, disp, idisp, sizeof idisp);
		if (item == NULL)
			continue;
		const char *name = (const char *)item->data.scalar.value;
		const char *why = check != NULL ? check(name) : NULL;
		if (why == NULL && strlen(name) >= width)
			why = "too long";
		if (why != NULL) {
			ls_conf_error(ld, item->start_mark, idisp, "%s, got %s", why, ls_conf_quote(name, qbuf, sizeof qbuf));
			ok = false;
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(tmp + j * width, name) == 0;
		if (dup) {
			ls_conf_error(ld, item->start_mark, idisp, "%s is listed twice", ls_conf_quote(name, qbuf, sizeof qbuf));
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
bool ls_conf_names_equal(const char *a, const char *b, size_t n, size_t width)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a + i * width, b + i * width) != 0)
			return false;
	return true;
}
/* Where to report a problem with key of an item: its value, else the item. */
yaml_mark_t ls_conf_value_mark(ls_conf_loader *ld, yaml_node_t *item_node, const char *key)
{
	yaml_node_t *v = ls_conf_mapping_value(ld->doc, item_node, key);
	return v != NULL ? v->start_mark : item_node->start_mark;
}

static void report_parser_error(ls_conf_loader *ld, const yaml_parser_t *parser)
{
	const char *problem = parser->problem != NULL ? parser->problem : "unknown problem";

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		ls_conf_errors_add(ld->eb, "%s: out of memory while parsing", ld->file);
		return;
	case YAML_READER_ERROR:
		/* Reader errors (bad encoding, read failure) carry an offset,
		 * not a mark. */
		ls_conf_errors_add(ld->eb, "%s: cannot read: %s at byte %zu", ld->file, problem,
		       parser->problem_offset);
		return;
	default:
		break;
	}
	if (parser->context != NULL)
		ls_conf_errors_add(ld->eb, "%s:%zu:%zu: YAML syntax error: %s (%s at line %zu, column %zu)",
		       ld->file, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
		       problem, parser->context, parser->context_mark.line + 1,
		       parser->context_mark.column + 1);
	else
		ls_conf_errors_add(ld->eb, "%s:%zu:%zu: YAML syntax error: %s", ld->file,
		       parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
}

/*
 * Parse the file and apply it to ld->base. Returns false when the file
 * could not be read or parsed at all, in which case required keys are not
 * checked (they may well be in the part that failed).
 */
bool ls_conf_load_file(ls_conf_loader *ld, const char *path, bool *root_set)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		ls_conf_errors_add(ld->eb, "%s: cannot open: %s", path, strerror(errno));
		return false;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		fclose(fp);
		ls_conf_errors_add(ld->eb, "%s: out of memory", path);
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
				ls_conf_errors_add(ld->eb, "%s:%zu:%zu: only one YAML document is allowed",
				       path, r2->start_mark.line + 1, r2->start_mark.column + 1);
			yaml_document_delete(&next);
		}
		ld->doc = &doc;
		if (root->type == YAML_MAPPING_NODE) {
			ls_conf_walk_mapping(ld, ld->table->fields, ld->table->n_fields, ld->base,
					     root_set, root, "", "");
			if (ld->table->walked != NULL)
				ld->table->walked(ld, root);
		} else if (!ls_conf_is_null(root))
			ls_conf_errors_add(ld->eb, "%s:%zu:%zu: expected a mapping of sections at the top level, got %s",
			       path, root->start_mark.line + 1, root->start_mark.column + 1,
			       ls_conf_node_kind(root));
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

int ls_conf_env_name(const char *prefix, const char *key, char *buf, size_t buflen)
{
	size_t plen = strlen(prefix), klen = strlen(key);
	if (plen + klen + 1 > buflen)
		return -1;
	memcpy(buf, prefix, plen);
	for (size_t i = 0; i < klen; i++)
		buf[plen + i] = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
	buf[plen + klen] = '\0';
	return 0;
}

void ls_conf_apply_env(const ls_conf_table *table, void *base, char *const *envp,
		       ls_conf_errors *eb, bool *root_set)
{
	if (envp == NULL)
		envp = environ;
	if (envp == NULL)
		return;
	for (size_t e = 0; envp[e] != NULL; e++) {
		const char *var = envp[e];
		if (strncmp(var, table->env_prefix, strlen(table->env_prefix)) != 0)
			continue;
		const char *eq = strchr(var, '=');
		if (eq == NULL)
			continue;
		size_t nlen = (size_t)(eq - var);
		for (size_t i = 0; i < table->n_fields; i++) {
			const ls_conf_field *f = &table->fields[i];
			char name[KEY_MAX];
			if (!ls_conf_env_overridable(f) ||
			    ls_conf_env_name(table->env_prefix, f->name, name, sizeof name) != 0)
				continue;
			if (strlen(name) != nlen || memcmp(name, var, nlen) != 0)
				continue;
			char msg[512];
			if (ls_conf_field_set(f, base, eq + 1, false, msg, sizeof msg) != 0)
				ls_conf_errors_add(eb, "environment %s: %s", name, msg);
			if (root_set != NULL)
				root_set[i] = true;
			break;
		}
	}
}

/* Position of the innermost section present above key, or 1:1. */
static yaml_mark_t parent_mark(const ls_conf_loader *ld, const char *key)
{
	char path[KEY_MAX];
	yaml_mark_t none = { 0, 0, 0 };

	ls_conf_key_printf(path, sizeof path, "%s", key);
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

void ls_conf_check_required(ls_conf_loader *ld, const bool *root_set)
{
	for (size_t i = 0; i < ld->table->n_fields; i++) {
		const ls_conf_field *f = &ld->table->fields[i];
		char env[KEY_MAX];
		if (!(f->flags & F_REQUIRED) || root_set[i])
			continue;
		if (ls_conf_env_name(ld->table->env_prefix, f->name, env, sizeof env) != 0)
			env[0] = '\0';
		if (ld->file == NULL)
			ls_conf_errors_add(ld->eb, "%s: required key is missing (no config file; set %s)",
			       f->name, env);
		else
			ls_conf_error(ld, parent_mark(ld, f->name), f->name,
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
char *ls_conf_secret_warnings(const ls_conf_loader *ld)
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
		int idx = find_field(ld->table->fields, ld->table->n_fields, key);
		if (idx >= 0 && ls_conf_env_overridable(&ld->table->fields[idx])) {
			char name[KEY_MAX];
			if (ls_conf_env_name(ld->table->env_prefix, key, name, sizeof name) == 0)
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

