/*
 * ls_err.h - the one way modules write a reason for the caller.
 *
 * Every module reports errors as a return code plus a reason string in a
 * caller-provided buffer (err, errlen); err may be NULL or errlen 0 when
 * the caller does not want the text. Pure, no I/O, thread-safe.
 */
#ifndef LS_ERR_H
#define LS_ERR_H

#include <stddef.h>

/* printf into err[0..errlen) when err is non-NULL and errlen > 0. */
void ls_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
