/*
 * ls_mlog.h - one entry of a model's learning log: what an instance
 * learned between two commits, as an FTRL delta plus the labelled
 * predictions it made (for progressive validation).
 *
 * Why a log. Learning must be exactly once like everything else: a label
 * whose offset is committed must be in the model, and a label replayed
 * after a crash must not be learned twice. So each commit that learned
 * anything appends one entry to the model's Redis list in the same
 * MULTI/EXEC as the leads and the offsets, and a checkpoint later folds
 * the list into the shared model (ls_ftrl_apply_delta per entry, in list
 * order) and trims what it folded. The delta is additive (ls_ftrl.h,
 * "Scale-out merge"), so the entries of several instances fold into one
 * model in any order; the pairs feed the shared evaluation window in list
 * order.
 *
 * Entry (integers LEB128 varints, doubles u64 LE IEEE bits):
 *   "LSML" u8 format version (1)
 *   n pairs (<= LS_MLOG_MAX_PAIRS), then n x (p as double bits, u8 label
 *     0 or 1), p in [0,1]
 *   delta length (0: no delta, the entry only carries pairs), delta bytes
 *     (an ls_ftrl_encode() of a delta, checked by ls_ftrl_decode())
 *   u64 LE XXH3_64bits of every byte before it
 * Decoding checks the magic, version, every length and value and the
 * checksum and never reads outside its buffer; the delta's own content is
 * left to ls_ftrl_decode().
 *
 * Pure: no I/O, no clock. Errors are negative ls_mlog_result values with
 * a reason (and byte offset) in err.
 */
#ifndef LS_MLOG_H
#define LS_MLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ls_buf.h"

#define LS_MLOG_FORMAT_VERSION 1
#define LS_MLOG_MAX_PAIRS ((size_t)1 << 20)

typedef enum ls_mlog_result {
	LS_MLOG_OK = 0,
	LS_MLOG_ERR_INVALID = -1, /* bad argument: p outside [0,1], too many pairs */
	LS_MLOG_ERR_NOMEM = -2,
	LS_MLOG_ERR_CORRUPT = -3,
} ls_mlog_result;

const char *ls_mlog_result_str(int rc);

/* One labelled prediction. */
typedef struct ls_mlog_pair {
	double p;
	uint8_t label; /* 0 or 1 */
} ls_mlog_pair;

/*
 * Replace out's contents with the entry of pairs[0..n) and delta[0..dlen)
 * (dlen may be 0, delta then may be NULL). out is the caller's (ls_buf.h)
 * and may be reused.
 */
int ls_mlog_encode(const ls_mlog_pair *pairs, size_t n, const uint8_t *delta,
		   size_t dlen, ls_buf *out);

/*
 * A decoded entry. pairs is allocated (free with ls_mlog_entry_free);
 * delta points into the buffer that was decoded.
 */
typedef struct ls_mlog_entry {
	ls_mlog_pair *pairs;
	size_t n_pairs;
	const uint8_t *delta;
	size_t delta_len;
} ls_mlog_entry;

int ls_mlog_decode(const uint8_t *data, size_t len, ls_mlog_entry *out,
		   char *err, size_t errlen);
void ls_mlog_entry_free(ls_mlog_entry *e);

#endif
