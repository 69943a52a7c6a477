/*
 * ls_mlog.c - learning-log entries.
 *
 * The checksum covers the whole entry although the delta carries its own:
 * the pairs have none, and a flipped bit in a p would otherwise decode
 * into a valid but wrong evaluation window for every instance that folds
 * the log.
 */
#include "ls_mlog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "ls_err.h"
#include "ls_varint.h"

static const uint8_t magic[4] = { 'L', 'S', 'M', 'L' };

const char *ls_mlog_result_str(int rc)
{
	switch (rc) {
	case LS_MLOG_OK:
		return "ok";
	case LS_MLOG_ERR_INVALID:
		return "invalid argument";
	case LS_MLOG_ERR_NOMEM:
		return "out of memory";
	case LS_MLOG_ERR_CORRUPT:
		return "log entry corrupt";
	default:
		return "unknown error";
	}
}

int ls_mlog_encode(const ls_mlog_pair *pairs, size_t n, const uint8_t *delta,
		   size_t dlen, ls_buf *out)
{
	if (out == NULL || n > LS_MLOG_MAX_PAIRS || (n > 0 && pairs == NULL) ||
	    (dlen > 0 && delta == NULL))
		return LS_MLOG_ERR_INVALID;
	for (size_t i = 0; i < n; i++)
		if (!(pairs[i].p >= 0.0 && pairs[i].p <= 1.0) || pairs[i].label > 1)
			return LS_MLOG_ERR_INVALID;
	size_t need = sizeof magic + 1 + 2 * LS_VARINT_MAX + n * 9 + dlen + 8;
	out->len = 0;
	if (ls_buf_reserve(out, need) != 0)
		return LS_MLOG_ERR_NOMEM;
	uint8_t *o = out->data;
	memcpy(o, magic, sizeof magic);
	o += sizeof magic;
	*o++ = LS_MLOG_FORMAT_VERSION;
	o = ls_varint_put(o, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t bits;
		memcpy(&bits, &pairs[i].p, sizeof bits);
		o = ls_u64le_put(o, bits);
		*o++ = pairs[i].label;
	}
	o = ls_varint_put(o, dlen);
	if (dlen > 0)
		memcpy(o, delta, dlen);
	o += dlen;
	o = ls_u64le_put(o, XXH3_64bits(out->data, (size_t)(o - out->data)));
	out->len = (size_t)(o - out->data);
	return LS_MLOG_OK;
}

void ls_mlog_entry_free(ls_mlog_entry *e)
{
	if (e == NULL)
		return;
	free(e->pairs);
	*e = (ls_mlog_entry){ 0 };
}

static int corrupt(ls_mlog_entry *out, char *err, size_t errlen, size_t at,
		   const char *why)
{
	ls_mlog_entry_free(out);
	ls_set_err(err, errlen, "learning-log entry: %s at byte %zu", why, at);
	return LS_MLOG_ERR_CORRUPT;
}

int ls_mlog_decode(const uint8_t *data, size_t len, ls_mlog_entry *out,
		   char *err, size_t errlen)
{
	if (out == NULL || (data == NULL && len > 0))
		return LS_MLOG_ERR_INVALID;
	*out = (ls_mlog_entry){ 0 };
	if (len < sizeof magic + 1 + 8)
		return corrupt(out, err, errlen, len, "truncated");
	if (memcmp(data, magic, sizeof magic) != 0)
		return corrupt(out, err, errlen, 0, "bad magic");
	if (data[4] != LS_MLOG_FORMAT_VERSION)
		return corrupt(out, err, errlen, 4, "unknown format version");
	size_t end = len - 8; /* the checksum */
	if (XXH3_64bits(data, end) != ls_u64le_get(data + end))
		return corrupt(out, err, errlen, end, "checksum mismatch");
	size_t off = 5;
	uint64_t n;
	const char *why = ls_varint_get(data, end, &off, &n);
	if (why != NULL)
		return corrupt(out, err, errlen, off, why);
	if (n > LS_MLOG_MAX_PAIRS || n * 9 > end - off)
		return corrupt(out, err, errlen, off, "pair count exceeds entry");
	if (n > 0) {
		out->pairs = malloc((size_t)n * sizeof *out->pairs);
		if (out->pairs == NULL)
			return LS_MLOG_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t bits = ls_u64le_get(data + off);
		double p;
		memcpy(&p, &bits, sizeof p);
		if (!(p >= 0.0 && p <= 1.0))
			return corrupt(out, err, errlen, off, "prediction outside [0,1]");
		if (data[off + 8] > 1)
			return corrupt(out, err, errlen, off + 8, "label not 0 or 1");
		out->pairs[i] = (ls_mlog_pair){ p, data[off + 8] };
		off += 9;
	}
	out->n_pairs = (size_t)n;
	uint64_t dlen;
	why = ls_varint_get(data, end, &off, &dlen);
	if (why != NULL)
		return corrupt(out, err, errlen, off, why);
	if (dlen != end - off)
		return corrupt(out, err, errlen, off, "delta length does not match entry");
	out->delta = dlen > 0 ? data + off : NULL;
	out->delta_len = (size_t)dlen;
	return LS_MLOG_OK;
}
