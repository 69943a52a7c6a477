/*
 * ls_varint.h - LEB128 varints, the integer encoding of every blob the
 * models write (lead state, FTRL checkpoints, evaluation windows).
 *
 * One writer and one strict reader, so all three formats agree on what a
 * valid varint is: at most 10 bytes, no overflow past 64 bits, and minimal
 * (no trailing 0x80 0x00 padding) — which keeps the blobs canonical: a
 * decoded blob re-encodes to the same bytes. Pure, thread-safe.
 */
#ifndef LS_VARINT_H
#define LS_VARINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest encoding of a uint64_t. */
#define LS_VARINT_MAX 10

/* Bytes ls_varint_put writes for v. */
size_t ls_varint_len(uint64_t v);

/* Write v at out (which has LS_VARINT_MAX bytes of room); returns the byte
 * after it. */
uint8_t *ls_varint_put(uint8_t *out, uint64_t v);

/*
 * Read the varint at d[*off] (d has len bytes). On success store it in *v,
 * advance *off and return NULL; otherwise leave *off and return a static
 * reason ("truncated varint", "varint overflows 64 bits", "varint not
 * minimal").
 */
const char *ls_varint_get(const uint8_t *d, size_t len, size_t *off,
			  uint64_t *v);

/*
 * A bounds-checked reader for the blob decoders (lead state, scoring
 * state): the first failure writes "<what> corrupt at byte N: <reason>"
 * to err and every later read fails too, so a decoder checks once per
 * step. Initialise with ls_reader_init().
 */
typedef struct ls_reader {
	const uint8_t *p;
	size_t len, pos;
	bool ok;
	const char *what; /* "blob", "scoring state" */
	char *err;        /* may be NULL */
	size_t errlen;
} ls_reader;

void ls_reader_init(ls_reader *r, const uint8_t *p, size_t len,
		    const char *what, char *err, size_t errlen);
/* Record the first failure, at byte at. */
void ls_reader_fail_at(ls_reader *r, size_t at, const char *why);
/* The next byte / bytes-byte little-endian integer / minimal varint; 0
 * once failed ("truncated", or ls_varint_get's reason, at the read's
 * start). */
uint8_t ls_reader_u8(ls_reader *r);
uint64_t ls_reader_le(ls_reader *r, size_t bytes);
uint64_t ls_reader_varint(ls_reader *r);

/* Fixed 8-byte little-endian integers (double bits, checksums). */
uint8_t *ls_u64le_put(uint8_t *out, uint64_t v);
uint64_t ls_u64le_get(const uint8_t *d);

#endif
