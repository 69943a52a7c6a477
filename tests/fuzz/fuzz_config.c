/*
 * fuzz_config - the YAML config loader (daemon/ls_config.c) with
 * environment overrides.
 *
 * Input: the YAML file up to the first NUL byte; after it, NUL-separated
 * "NAME=value" environment entries (at most 16), applied as LEADSCORE_*
 * overrides. The file is written to a private temporary directory whose
 * schemas/ links to tests/data/config/schemas, so schemas.writers entries
 * can name real writer schemas.
 *
 * Properties: what the loader accepts is usable as the daemon uses it:
 * the feature specs build a feature set, the lead conf made from the
 * config passes ls_lead_conf_check(), the live keys copy onto a second
 * load of the same file, and the diff of a config against itself is
 * empty.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "ls_config.h"

#ifndef FUZZ_CONFIG_DATA
#error "FUZZ_CONFIG_DATA must name tests/data/config"
#endif

#define MAX_ENV 16

static char dir[64];
static char path[128];
static char link_path[128];

static void cleanup(void)
{
	unlink(path);
	unlink(link_path);
	rmdir(dir);
}

static void init(void)
{
	snprintf(dir, sizeof dir, "/tmp/ls-fuzz-config-XXXXXX");
	FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof path, "%s/leadscore.yaml", dir);
	snprintf(link_path, sizeof link_path, "%s/schemas", dir);
	FUZZ_CHECK(symlink(FUZZ_CONFIG_DATA "/schemas", link_path) == 0, "symlink");
	atexit(cleanup);
}

static void write_file(const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0, "open %s", path);
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		FUZZ_CHECK(w > 0, "write");
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void count_key(const char *key, bool reloadable, void *ud)
{
	(void)key;
	(void)reloadable;
	++*(size_t *)ud;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		init();
	const uint8_t *nul = memchr(data, 0, size);
	size_t ylen = nul != NULL ? (size_t)(nul - data) : size;
	write_file(data, ylen);

	/* the environment entries, each NUL-terminated in a copy */
	char *envbuf = NULL;
	char *envp[MAX_ENV + 1];
	size_t ne = 0;
	if (nul != NULL) {
		size_t elen = size - ylen - 1;
		envbuf = malloc(elen + 1);
		FUZZ_CHECK(envbuf != NULL, "out of memory");
		memcpy(envbuf, nul + 1, elen);
		envbuf[elen] = '\0';
		for (char *s = envbuf; s < envbuf + elen && ne < MAX_ENV; s += strlen(s) + 1)
			if (*s != '\0')
				envp[ne++] = s;
	}
	envp[ne] = NULL;

	ls_config cfg, again;
	char err[2048];
	if (ls_config_load_env(path, envp, &cfg, err, sizeof err) == 0) {
		size_t nf;
		const ls_feature_spec *specs = ls_config_features(&cfg, &nf);
		ls_feature_set *set = ls_feature_set_new(specs, nf, err, sizeof err);
		FUZZ_CHECK(set != NULL, "loaded features do not build a set: %s", err);
		ls_lead_conf lc;
		ls_config_lead_conf(&cfg, set, &lc);
		FUZZ_CHECK(ls_lead_conf_check(&lc, err, sizeof err), "lead conf: %s", err);
		size_t nm = 0;
		FUZZ_CHECK(ls_config_models(&cfg, &nm) != NULL && nm > 0, "no models");
		ls_feature_set_free(set);

		size_t changed = 0;
		ls_config_diff(&cfg, &cfg, count_key, &changed);
		FUZZ_CHECK(changed == 0, "a config differs from itself in %zu keys", changed);
		FUZZ_CHECK(ls_config_load_env(path, envp, &again, err, sizeof err) == 0,
			   "the same file loads once only: %s", err);
		changed = 0;
		ls_config_diff(&cfg, &again, count_key, &changed);
		FUZZ_CHECK(changed == 0, "two loads of one file differ in %zu keys", changed);
		FUZZ_CHECK(ls_config_apply_live(&cfg, &again) == 0, "apply_live");
		ls_config_free(&again);
		ls_config_free(&cfg);
	}
	free(envbuf);
	return 0;
}
