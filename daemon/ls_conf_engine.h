/*
 * ls_conf_engine.h - loads a YAML file and LEADSCORE_-style environment
 * variables into a struct described by a key table (ls_conf_field.h),
 * collecting every problem as "file:line:column: key: message". Internal
 * to daemon/: the leadscore schema (ls_config*.c) is its only user, and it
 * knows no leadscore key; the schema hands it a ls_conf_table.
 *
 * What: ls_conf_load_file() walks the document against the table (unknown
 * keys, duplicate keys, wrong shapes, each value through
 * ls_conf_field_set(), sequences through their ls_conf_seq hooks);
 * ls_conf_apply_env() applies the environment; ls_conf_check_required()
 * reports required rows set by neither; ls_conf_secret_warnings() says
 * which secrets sit in an others-readable file. The YAML helpers
 * (ls_conf_mapping_value(), ls_conf_seq_item(), ...) are for the schema's
 * hooks, which report through ls_conf_error() at the node they are about.
 *
 * Memory: the loader borrows the file name, the table and the base struct;
 * it owns dir (freed by the caller that set it). The yaml_document_t is
 * alive only during ls_conf_load_file(), so hooks must not keep node
 * pointers; yaml_mark_t values may be kept. ls_conf_secret_warnings()
 * returns a malloc'd string the caller frees.
 *
 * Errors: all go to the loader's ls_conf_errors: whole lines, in order, and a
 * final "(N more errors)" when lines had to be dropped; n_errors counts
 * all of them, so "did this step add an error" is a comparison of counts.
 *
 * Thread-safety: a loader is used by one thread. ls_conf_apply_env() with
 * envp NULL reads the process environment, which setenv() may change.
 */
#ifndef LS_CONF_ENGINE_H
#define LS_CONF_ENGINE_H

#include "ls_conf_field.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <yaml.h>

typedef struct ls_conf_errors {
	char *buf;
	size_t cap;
	size_t len;
	size_t n_errors;
	size_t n_dropped;
} ls_conf_errors;

/* The root of a schema: its rows, its environment prefix and its hooks. */
typedef struct ls_conf_table {
	const ls_conf_field *fields;
	size_t n_fields;
	const char *env_prefix; /* "LEADSCORE_": row a.b is LEADSCORE_A_B */
	/* Called once the root mapping is walked, while the document is
	 * loaded: checks across sections, positions to keep. NULL: none. */
	void (*walked)(struct ls_conf_loader *ld, yaml_node_t *root);
	/* Does this set F_SECRET string row hold a secret (a URL may have no
	 * password)? NULL: every non-empty value does. */
	bool (*holds_secret)(const ls_conf_field *f, const char *value);
} ls_conf_table;

typedef struct ls_conf_loader {
	const char *file; /* as given, for messages */
	char *dir;        /* directory of file for relative paths; NULL: cwd */
	yaml_document_t *doc;
	const ls_conf_table *table;
	void *base;       /* the struct the root table fills */
	void *user;       /* the schema's own state for its hooks */
	ls_conf_errors *eb;
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
} ls_conf_loader;

void ls_conf_errors_init(ls_conf_errors *eb, char *buf, size_t cap);
void ls_conf_errors_add(ls_conf_errors *eb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends "(N more errors)" when lines were dropped. */
void ls_conf_errors_finish(ls_conf_errors *eb);
/* "file:line:column: key: message" (no key: "file:line:column: message"). */
void ls_conf_error(ls_conf_loader *ld, yaml_mark_t mark, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The YAML helpers; node arguments belong to ld->doc. */
yaml_node_t *ls_conf_mapping_value(yaml_document_t *doc, yaml_node_t *map, const char *key);
/* Where to report a problem with key of an item: its value, else the item. */
yaml_mark_t ls_conf_value_mark(ls_conf_loader *ld, yaml_node_t *item_node, const char *key);
yaml_node_t *ls_conf_seq_item(ls_conf_loader *ld, yaml_node_t *seq, size_t i);
size_t ls_conf_seq_len(const yaml_node_t *seq);
/* Item i of seq, its key "disp[i]" written to key; NULL if there is none. */
yaml_node_t *ls_conf_seq_entry(ls_conf_loader *ld, yaml_node_t *seq, size_t i, const char *disp,
			       char *key, size_t keylen);
const char *ls_conf_node_kind(const yaml_node_t *n);
bool ls_conf_is_null(const yaml_node_t *n);
const char *ls_conf_scalar_text(ls_conf_loader *ld, yaml_node_t *n, const char *key);
/* True if node is a sequence; else reports "expected <what>, got ..." at it. */
bool ls_conf_expect_seq(ls_conf_loader *ld, yaml_node_t *node, const char *disp, const char *what);
bool ls_conf_scalar_list(ls_conf_loader *ld, yaml_node_t *node, const char *disp,
			 const char *example, size_t max);
bool ls_conf_name_list(ls_conf_loader *ld, yaml_node_t *node, const char *disp, const char *example,
		       size_t max, const char *(*check)(const char *), char *out, size_t width,
		       size_t *n);
bool ls_conf_names_equal(const char *a, const char *b, size_t n, size_t width);

/* Walks mapping map against rows tbl[0..n) into base (see the definition). */
void ls_conf_walk_mapping(ls_conf_loader *ld, const ls_conf_field *tbl, size_t n, void *base,
			  bool *set, yaml_node_t *map, const char *rel, const char *disp);

/* Parses path and walks it against ld->table into ld->base; root_set[i]
 * becomes true for each root row the file sets. False when the file could
 * not be read or parsed at all. */
bool ls_conf_load_file(ls_conf_loader *ld, const char *path, bool *root_set);
/* prefix + key upper-cased with '.' as '_'; -1 if it does not fit. */
int ls_conf_env_name(const char *prefix, const char *key, char *buf, size_t buflen);
/* envp NULL: the process environment. root_set may be NULL. */
void ls_conf_apply_env(const ls_conf_table *table, void *base, char *const *envp,
		       ls_conf_errors *eb, bool *root_set);
void ls_conf_check_required(ls_conf_loader *ld, const bool *root_set);
char *ls_conf_secret_warnings(const ls_conf_loader *ld);

#endif
