/*
 * ls_buf.c - the byte buffer and growth rule of ls_buf.h. Doubling keeps
 * appends amortised O(1); every multiplication is checked first, because a
 * wrapped size would make realloc() shrink the buffer we are about to
 * write past.
 */
#include "ls_buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ls_buf_init(ls_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int ls_buf_reserve(ls_buf *b, size_t extra)
{
	if (extra > SIZE_MAX - b->len)
		return -1;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap < 64 ? 64 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	uint8_t *p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int ls_buf_append(ls_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (ls_buf_reserve(b, n) != 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void ls_buf_reset(ls_buf *b)
{
	b->len = 0;
}

void ls_buf_free(ls_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	ls_buf_init(b);
}

int ls_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	if (elem == 0)
		return -1;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return -1;
	void *p = realloc(*arr, ncap * elem);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}
