/*
 * leadscorectl.h - what leadscorectl.c (the commands that read Redis and
 * main) and leadscorectl_evaluate.c (the `evaluate` command) share. Tool
 * internals, not an API: the JSON helpers print to stdout and stderr,
 * eval_parse and cmd_evaluate return leadscorectl's exit codes. Single
 * threaded, like the tool.
 */
#ifndef LEADSCORECTL_H
#define LEADSCORECTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ls_config.h"

#define KEY_MAX 512 /* bytes of a Redis key name (ls_keys) */

/* Print o (consumed) as one line of JSON: 0, or 1 when it cannot render. */
int print_json(json_t *o);
/* A JSON number, or null when d is not finite (JSON has no NaN). */
json_t *json_num(double d);

/* Load and validate the configuration at path, masking its secrets in
 * logs: 0, or 1 (leadscorectl's error exit) with the reason on stderr. */
int ctl_load_config(const char *path, ls_config *cfg);

/*
 * Commands that parse their own options, one file each
 * (leadscorectl_<name>.c). argv[0] is the command's name; config_path is
 * the --config given before the command, or the default (a command may
 * accept its own --config too). Each prints its usage for --help (exit 0)
 * and documents its exit codes there and in its file's header comment;
 * common to all: 0 ok, 1 runtime error, 2 usage error.
 */
typedef int (*ctl_command_fn)(int argc, char **argv, const char *config_path);
int cmd_tail(int argc, char **argv, const char *config_path);         /* leadscorectl_tail.c */
int cmd_dead_letters(int argc, char **argv, const char *config_path); /* leadscorectl_dlq.c */
int cmd_campaign(int argc, char **argv, const char *config_path);     /* leadscorectl_campaign.c */
int cmd_replay(int argc, char **argv, const char *config_path);       /* leadscorectl_replay.c */
int cmd_simulate(int argc, char **argv, const char *config_path);     /* leadscorectl_simulate.c */

/* ------------------------------------------------------------ evaluate */

typedef enum eval_target {
	EVAL_UNIFORM,
	EVAL_ARM,
	EVAL_POSTERIOR,
} eval_target;

typedef struct eval_opts {
	const ls_campaign_spec *sp;
	eval_target target;
	size_t target_arm;      /* EVAL_ARM */
	const char *target_name;
	double clip;            /* 0: none */
	int64_t timeout_ms;
} eval_opts;

/*
 * Check evaluate's arguments against cfg: 0 with *eo filled, or 2 (a usage
 * error) with a message on stderr. *eo points into cfg.
 */
int eval_parse(const ls_config *cfg, const char *campaign, const char *target,
	       const char *clip, const char *timeout, eval_opts *eo);
/* Run evaluate and print its JSON: exit code 0, or 1 with a reason on stderr. */
int cmd_evaluate(const ls_config *cfg, const eval_opts *eo);

#endif
