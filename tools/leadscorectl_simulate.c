/*
 * leadscorectl_simulate.c - `leadscorectl simulate`: the event simulator
 * (leadscore-sim) pointed at the daemon's own broker and input topics.
 *
 *   leadscorectl [--config PATH] simulate [leadscore-sim options]
 *
 * Runs leadscore-sim with --brokers kafka.brokers and --topic-prefix P
 * taken from the config, every other argument passed through unchanged.
 * The simulator names its topics P{email,web,call,outcome,profile}, so
 * the config's five input topics (kafka.topics.email, .web, .call,
 * .outcome, .profile) must be exactly that for one P; when they are not
 * (e.g. email: crm.mail), the command says which topic breaks the pattern
 * and exits 2 instead of feeding topics the daemon does not read.
 * The simulator connects with bootstrap.servers only: kafka.properties
 * (SASL, TLS) are not passed, and a config that sets security properties
 * gets a warning.
 *
 * leadscore-sim is looked up beside leadscorectl (the directory of
 * /proc/self/exe: the build tree's tools/ or the install's bin/), then on
 * PATH. It replaces this process (exec), so Ctrl-C, its output and its
 * exit status are the simulator's own.
 *
 * Exit: leadscore-sim's (0 ok, 1 runtime failure, 2 usage error); before
 * it runs: 1 the config does not load or leadscore-sim cannot be run, 2
 * --brokers or --topic-prefix given (they come from the config) or the
 * topics do not follow the simulator's naming. --help prints this and
 * then leadscore-sim's own help (exit 0).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ls_config.h"

#include "leadscorectl.h"

#define SIM_NAME "leadscore-sim"

static void simulate_usage(FILE *out)
{
	fprintf(out,
		"usage: leadscorectl [--config PATH] simulate [leadscore-sim options]\n"
		"Run the event simulator against the daemon's broker and input topics:\n"
		"leadscore-sim --brokers <kafka.brokers> --topic-prefix P [options...],\n"
		"where the config's input topics are P{email,web,call,outcome,profile}\n"
		"(the default leads.* are). Other options pass through unchanged; the\n"
		"simulator's own are below. leadscore-sim is found beside leadscorectl,\n"
		"else on PATH, and runs in place of this process: its output, Ctrl-C\n"
		"and exit status are its own. kafka.properties (SASL, TLS) are not\n"
		"passed to it.\n"
		"\n"
		"  -c, --config PATH  configuration (kafka.brokers, kafka.topics.*)\n"
		"  -h, --help         this text, then leadscore-sim's help\n"
		"\n"
		"Exit status: leadscore-sim's (0 ok, 1 runtime failure, 2 usage error);\n"
		"before it starts: 1 config not loadable or leadscore-sim not runnable,\n"
		"2 --brokers/--topic-prefix given (they come from the config) or topics\n"
		"that do not follow the simulator's naming.\n"
		"\n"
		"leadscore-sim's help:\n");
}

/* The simulator beside this executable into buf: true when runnable. */
static bool sim_beside_self(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return false;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	int w = snprintf(buf, len, "%s/" SIM_NAME, self);
	return w > 0 && (size_t)w < len && access(buf, X_OK) == 0;
}

/* Replace this process with leadscore-sim args: returns only on failure. */
static int exec_sim(char **args)
{
	char path[PATH_MAX + 32];
	fflush(NULL);
	if (sim_beside_self(path, sizeof path)) {
		args[0] = path;
		execv(path, args);
	} else {
		args[0] = (char *)SIM_NAME;
		execvp(SIM_NAME, args);
	}
	fprintf(stderr, "leadscorectl: cannot run %s (beside leadscorectl or on PATH): %s\n",
		SIM_NAME, strerror(errno));
	return 1;
}

/*
 * The prefix P with topics == P{email,web,call,outcome,profile} into
 * prefix: 0, or 2 with the reason on stderr.
 */
static int topic_prefix(const ls_config *cfg, char *prefix, size_t len)
{
	static const char *const names[] = { "email", "web", "call", "outcome", "profile" };
	const char *topics[] = { cfg->kafka.topics.email, cfg->kafka.topics.web,
				 cfg->kafka.topics.call, cfg->kafka.topics.outcome,
				 cfg->kafka.topics.profile };
	size_t tl = strlen(topics[0]), nl = strlen(names[0]);
	if (tl < nl || strcmp(topics[0] + tl - nl, names[0]) != 0 || tl - nl >= len) {
		fprintf(stderr,
			"leadscorectl: simulate: kafka.topics.email is '%s', but the simulator "
			"writes to P{email,web,call,outcome,profile} for one prefix P; use "
			"leadscore-sim directly with topics renamed, or a config whose input "
			"topics follow that naming\n",
			topics[0]);
		return 2;
	}
	snprintf(prefix, len, "%.*s", (int)(tl - nl), topics[0]);
	for (size_t i = 1; i < sizeof names / sizeof names[0]; i++) {
		size_t pl = strlen(prefix);
		if (strncmp(topics[i], prefix, pl) != 0 || strcmp(topics[i] + pl, names[i]) != 0) {
			fprintf(stderr,
				"leadscorectl: simulate: kafka.topics.%s is '%s', not '%s%s': the "
				"simulator writes to %s{email,web,call,outcome,profile}, so the "
				"config's input topics must share that naming\n",
				names[i], topics[i], prefix, names[i], prefix);
			return 2;
		}
	}
	return 0;
}

/* Whether kafka.properties holds a connection setting the simulator
 * would not use. */
static bool has_security_properties(const ls_config *cfg)
{
	for (size_t i = 0; i < cfg->kafka.n_properties; i++) {
		const char *k = cfg->kafka.properties[i].key;
		if (strncmp(k, "security.", 9) == 0 || strncmp(k, "sasl.", 5) == 0 ||
		    strncmp(k, "ssl.", 4) == 0)
			return true;
	}
	return false;
}

int cmd_simulate(int argc, char **argv, const char *config_path)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			simulate_usage(stdout);
			char *args[] = { NULL, (char *)"--help", NULL };
			return exec_sim(args);
		}
		if (strcmp(argv[i], "--brokers") == 0 || strcmp(argv[i], "--topic-prefix") == 0 ||
		    strncmp(argv[i], "--brokers=", 10) == 0 ||
		    strncmp(argv[i], "--topic-prefix=", 15) == 0) {
			fprintf(stderr, "leadscorectl: simulate: %s comes from the config "
					"(run leadscore-sim directly to choose it)\n", argv[i]);
			return 2;
		}
	}
	ls_config cfg;
	if (ctl_load_config(config_path, &cfg) != 0)
		return 1;
	char prefix[512];
	int rc = topic_prefix(&cfg, prefix, sizeof prefix);
	if (rc != 0) {
		ls_config_free(&cfg);
		return rc;
	}
	if (has_security_properties(&cfg))
		fprintf(stderr, "leadscorectl: simulate: warning: kafka.properties sets security "
				"properties the simulator does not use (it connects with "
				"bootstrap.servers only)\n");
	/* sim, --brokers B, --topic-prefix P, the caller's arguments, NULL */
	char **args = calloc((size_t)argc + 6, sizeof *args);
	char *brokers = strdup(cfg.kafka.brokers != NULL ? cfg.kafka.brokers : "");
	char *pfx = strdup(prefix);
	ls_config_free(&cfg);
	if (args == NULL || brokers == NULL || pfx == NULL) {
		fprintf(stderr, "leadscorectl: out of memory\n");
		free(args);
		free(brokers);
		free(pfx);
		return 1;
	}
	size_t n = 1;
	args[n++] = (char *)"--brokers";
	args[n++] = brokers;
	args[n++] = (char *)"--topic-prefix";
	args[n++] = pfx;
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	rc = exec_sim(args);
	free(args);
	free(brokers);
	free(pfx);
	return rc;
}
