/*
 * ls_http_guard.c - see ls_http_guard.h.
 *
 * Why the token comparison walks the given value and not the secret: the
 * client chooses and knows the length of what it sends, so a time that
 * grows with it tells it nothing; a loop over the secret, or a length
 * check that returns early, would tell it the secret's length.
 */
#include "ls_http_guard.h"

#include <netinet/in.h>
#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

const char *ls_http_guard_bearer(const char *value, size_t *len)
{
	static const char scheme[] = "bearer";
	if (value == NULL)
		return NULL;
	size_t i = 0;
	for (; scheme[i] != '\0'; i++)
		if (lower((unsigned char)value[i]) != scheme[i])
			return NULL;
	if (value[i] != ' ' && value[i] != '\t')
		return NULL; /* "Bearerx", or no credentials */
	while (value[i] == ' ' || value[i] == '\t')
		i++;
	size_t n = strlen(value + i);
	while (n > 0 && (value[i + n - 1] == ' ' || value[i + n - 1] == '\t'))
		n--;
	if (n == 0)
		return NULL;
	*len = n;
	return value + i;
}

bool ls_http_guard_token_equal(const char *given, size_t glen, const char *secret,
			       size_t slen)
{
	if (slen == 0)
		return glen == 0;
	size_t diff = glen ^ slen, j = 0;
	for (size_t i = 0; i < glen; i++) {
		diff |= (size_t)((unsigned char)given[i] ^ (unsigned char)secret[j]);
		j++;
		j &= (size_t)0 - (size_t)(j < slen); /* wraps to 0 at slen, no branch */
	}
	return diff == 0;
}

bool ls_http_guard_has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

bool ls_http_guard_loopback(const struct sockaddr *sa)
{
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(a, mapped, sizeof mapped) == 0)
			return a[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

void ls_http_guard_limits(uint64_t nofile, unsigned cfg_total, unsigned cfg_per_address,
			  ls_http_limits *out)
{
	uint64_t avail = nofile > LS_HTTP_FD_RESERVE ? nofile - LS_HTTP_FD_RESERVE : 0;
	uint64_t total = cfg_total;
	if (total == 0) {
		total = avail < LS_HTTP_DEFAULT_MAX_CONNECTIONS ? avail
								: LS_HTTP_DEFAULT_MAX_CONNECTIONS;
		if (total < LS_HTTP_MIN_CONNECTIONS)
			total = LS_HTTP_MIN_CONNECTIONS;
	}
	unsigned per = cfg_per_address;
	if (per == 0)
		per = (unsigned)(total / 8 > 0 ? total / 8 : 1);
	if (per > total)
		per = (unsigned)total;
	out->total = (unsigned)total;
	out->per_address = per;
	out->over_fds = total > avail;
}
