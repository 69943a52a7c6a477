/*
 * ls_utf8.h - one UTF-8 check for every place text must be valid: Avro
 * strings (the codec), Prometheus label values and HELP (the metrics
 * registry, since one bad byte fails a whole scrape), and the simulator's
 * input lines.
 *
 * Valid means well-formed UTF-8 as RFC 3629 defines it: no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing above U+10FFFF; and no NUL byte,
 * which would silently truncate a C string. Pure, thread-safe, no
 * allocation.
 */
#ifndef LS_UTF8_H
#define LS_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* true when s[0..n) is valid UTF-8 without NUL (s may be NULL when n is 0). */
bool ls_utf8_valid(const void *s, size_t n);

/*
 * The length of the longest prefix of the NUL-terminated s that has at
 * most max bytes and ends on a code-point boundary: strlen(s) when that
 * fits, otherwise max less the bytes of a code point cut in two. For
 * valid UTF-8 the prefix is valid UTF-8 too (cutting a value to a byte
 * budget must not leave half a character behind).
 */
size_t ls_utf8_cut(const char *s, size_t max);

#endif
