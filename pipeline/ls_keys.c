/*
 * ls_keys.c - the Redis key schema (see ls_keys.h for the table).
 *
 * The keys were built by snprintf in five files and copied into
 * leadscorectl; one home means a reader finds the whole schema in one
 * table and a test pins its bytes. Keys are joined with memcpy rather
 * than snprintf because the lead key is built for every lead of every
 * batch.
 */
#include "ls_keys.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/*
 * Concatenate parts[0..n) into buf[0..cap); the length, or -1 and "".
 * len < cap holds after every part, so cap - len never wraps.
 */
static int join(char *buf, size_t cap, const char *const *parts, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(parts[i]);
		if (l >= cap - len || len + l > INT_MAX) {
			if (cap > 0)
				buf[0] = '\0';
			return -1;
		}
		memcpy(buf + len, parts[i], l);
		len += l;
	}
	buf[len] = '\0';
	return (int)len;
}

int ls_keys_lead(char *buf, size_t cap, const char *prefix, const char *lead_id)
{
	const char *p[] = { prefix, "{", lead_id, "}:s" };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_offsets(char *buf, size_t cap, const char *prefix, const char *group_id)
{
	const char *p[] = { prefix, "offsets:", group_id };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_epoch(char *buf, size_t cap, const char *prefix)
{
	const char *p[] = { prefix, "epoch" };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_model(char *buf, size_t cap, const char *prefix, const char *model)
{
	const char *p[] = { prefix, "model:", model };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_model_eval(char *buf, size_t cap, const char *prefix, const char *model)
{
	const char *p[] = { prefix, "model:", model, ":eval" };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_model_log(char *buf, size_t cap, const char *prefix, const char *model)
{
	const char *p[] = { prefix, "model:", model, ":log" };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_rescore(char *buf, size_t cap, const char *prefix, int32_t partition)
{
	char part[16];
	snprintf(part, sizeof part, "%" PRId32, partition);
	const char *p[] = { prefix, "rescore:", part };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_due(char *buf, size_t cap, const char *prefix, const char *model,
		int32_t partition)
{
	char part[16];
	snprintf(part, sizeof part, "%" PRId32, partition);
	const char *p[] = { prefix, "due:", model, ":", part };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_bandit(char *buf, size_t cap, const char *prefix, const char *campaign,
		   const char *part)
{
	if (strcmp(part, LS_KEYS_BANDIT_COUNTS) != 0 &&
	    strcmp(part, LS_KEYS_BANDIT_PENDING) != 0) {
		if (cap > 0)
			buf[0] = '\0';
		return -1;
	}
	const char *p[] = { prefix, "{bandit:", campaign, "}:", part };
	return join(buf, cap, p, sizeof p / sizeof *p);
}

int ls_keys_bandit_decision(char *buf, size_t cap, const char *prefix,
			    const char *campaign, const char *decision_id)
{
	const char *p[] = { prefix, "{bandit:", campaign, "}:d:", decision_id };
	return join(buf, cap, p, sizeof p / sizeof *p);
}
