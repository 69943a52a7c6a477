/*
 * ls_utf8.c - see ls_utf8.h. Decodes each sequence rather than matching
 * byte-range tables, so the overlong and surrogate rules read as the
 * standard states them.
 */
#include "ls_utf8.h"

#include <stdint.h>
#include <string.h>

bool ls_utf8_valid(const void *str, size_t n)
{
	const uint8_t *s = str;
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t extra;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1;
			cp = c & 0x1fu;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2;
			cp = c & 0x0fu;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3;
			cp = c & 0x07u;
		} else {
			return false;
		}
		if (n - i <= extra)
			return false;
		for (size_t k = 1; k <= extra; k++) {
			uint8_t cc = s[i + k];
			if ((cc & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (cc & 0x3fu);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += extra + 1;
	}
	return true;
}

size_t ls_utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n <= max)
		return n;
	/* s[n] is the first byte left out: while it continues a code point,
	 * that code point's earlier bytes go too */
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0u) == 0x80u)
		n--;
	return n;
}
