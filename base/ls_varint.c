/* ls_varint.c - see ls_varint.h. */
#include "ls_varint.h"

#include "ls_err.h"

size_t ls_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

uint8_t *ls_varint_put(uint8_t *out, uint64_t v)
{
	while (v >= 0x80) {
		*out++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*out++ = (uint8_t)v;
	return out;
}

const char *ls_varint_get(const uint8_t *d, size_t len, size_t *off,
			  uint64_t *v)
{
	uint64_t r = 0;
	size_t o = *off;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (o >= len)
			return "truncated varint";
		uint8_t b = d[o++];
		if (shift == 63 && b > 1)
			return "varint overflows 64 bits";
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if (b == 0 && shift > 0)
				return "varint not minimal";
			*off = o;
			*v = r;
			return NULL;
		}
	}
	return "varint overflows 64 bits";
}

uint8_t *ls_u64le_put(uint8_t *out, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		*out++ = (uint8_t)(v >> (8 * i));
	return out;
}

uint64_t ls_u64le_get(const uint8_t *d)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

void ls_reader_init(ls_reader *r, const uint8_t *p, size_t len,
		    const char *what, char *err, size_t errlen)
{
	*r = (ls_reader){ .p = p, .len = len, .ok = true, .what = what,
			  .err = err, .errlen = errlen };
}

void ls_reader_fail_at(ls_reader *r, size_t at, const char *why)
{
	if (r->ok)
		ls_set_err(r->err, r->errlen, "%s corrupt at byte %zu: %s", r->what,
			   at, why);
	r->ok = false;
}

uint8_t ls_reader_u8(ls_reader *r)
{
	if (!r->ok)
		return 0;
	if (r->pos >= r->len) {
		ls_reader_fail_at(r, r->pos, "truncated");
		return 0;
	}
	return r->p[r->pos++];
}

uint64_t ls_reader_le(ls_reader *r, size_t bytes)
{
	if (!r->ok)
		return 0;
	if (r->len - r->pos < bytes) {
		ls_reader_fail_at(r, r->pos, "truncated");
		return 0;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[r->pos + i] << (8 * i);
	r->pos += bytes;
	return v;
}

uint64_t ls_reader_varint(ls_reader *r)
{
	uint64_t v = 0;
	if (!r->ok)
		return 0;
	const char *why = ls_varint_get(r->p, r->len, &r->pos, &v);
	if (why != NULL) {
		ls_reader_fail_at(r, r->pos, why);
		return 0;
	}
	return v;
}
