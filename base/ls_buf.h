/*
 * ls_buf.h - the one growable byte buffer and the one growth rule.
 *
 * ls_buf is what every encoder writes into: Avro records, lead blobs, model
 * checkpoints, evaluation logs. The caller owns it, may reuse it across
 * records (ls_buf_reset keeps the memory) and releases it with ls_buf_free.
 * A zeroed ls_buf is a valid empty buffer.
 *
 * ls_grow is the growth rule of every hand-rolled array: capacity doubles
 * from a small start, and a size whose byte count would overflow size_t is
 * refused instead of wrapping. Both return 0, or -1 (nothing changed) when
 * memory runs out or the size cannot be represented.
 *
 * Pure apart from malloc; thread-safe on distinct buffers.
 */
#ifndef LS_BUF_H
#define LS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} ls_buf;

void ls_buf_init(ls_buf *b);
/* Make room for extra more bytes; 0 or -1 (buffer unchanged). */
int ls_buf_reserve(ls_buf *b, size_t extra);
int ls_buf_append(ls_buf *b, const void *p, size_t n);
/* Forget the contents, keep the memory. */
void ls_buf_reset(ls_buf *b);
/* Release the memory; b is then empty. NULL is a no-op. */
void ls_buf_free(ls_buf *b);

/*
 * Grow *arr, an array of elem-byte elements with room for *cap, to room for
 * at least need (doubling from 16). On success *arr and *cap are updated;
 * on -1 they are unchanged and the old array is still valid.
 */
int ls_grow(void **arr, size_t *cap, size_t need, size_t elem);

#endif
