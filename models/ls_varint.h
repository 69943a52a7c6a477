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

/* Fixed 8-byte little-endian integers (double bits, checksums). */
uint8_t *ls_u64le_put(uint8_t *out, uint64_t v);
uint64_t ls_u64le_get(const uint8_t *d);

#endif
