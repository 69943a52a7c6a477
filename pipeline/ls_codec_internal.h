/*
 * ls_codec_internal.h - what the files of the Avro codec share: the record
 * kinds, a decoding view, struct ls_codec, the two error helpers, and the
 * entry points of the pre-decode walk (ls_codec_walk.c) and of the value
 * rules (ls_codec_rules.c). Not part of the API; nothing outside
 * pipeline/ls_codec*.c includes it (ls_codec.h is the contract).
 *
 * Memory and errors follow ls_codec.h: a compiled walk program lives in
 * the arena it was compiled into; the walk and the value rules return 0 or
 * an ls_codec_reason with the ls_codec_error filled; compiling returns 0 or
 * -1 with a message in err. fail and set_err are static inline so they keep
 * their short names without becoming symbols of the pipeline library.
 * Thread-safety: as ls_codec.h, one codec per thread.
 */
#ifndef LS_CODEC_INTERNAL_H
#define LS_CODEC_INTERNAL_H

#include <avro.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ls_arena.h"
#include "ls_codec.h"

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

/* The compiled writer schema the walk checks a record against
 * (ls_codec_walk.c). */
typedef struct wnode wnode;

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

typedef struct writer writer;

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

__attribute__((format(printf, 3, 4)))
static inline int fail(ls_codec_error *e, ls_codec_reason r, const char *fmt, ...)
{
	e->reason = r;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return (int)r;
}

__attribute__((format(printf, 3, 4)))
static inline int set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Compile writer schema sch into *out, allocated in mem (ls_codec_walk.c). */
int ls_codec_compile_into(ls_arena *mem, avro_schema_t sch, wnode **out, char *err, size_t errlen);

/* Pass 1: walk the len bytes at p against root; 0 when Avro-C may read
 * them (ls_codec_walk.c). */
int ls_codec_walk_record(const wnode *root, const uint8_t *p, size_t len, ls_codec_error *err);

/* The value rules every decoded record passes and every encoded record
 * must pass before it is written (ls_codec_rules.c). */
int ls_codec_check_event(const ls_event *ev, ls_codec_error *err);
int ls_codec_check_score_change(const ls_score_change *sc, ls_codec_error *err);
int ls_codec_check_bandit_decision(const ls_bandit_decision *bd, ls_codec_error *err);

#endif
