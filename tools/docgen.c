/*
 * leadscore-docgen - print the generated parts of the reference docs.
 *
 *   leadscore-docgen config-reference
 *
 * prints the configuration key table (ls_config_reference()) that
 * scripts/gen-docs writes into docs/configuration.md between its
 * config-reference markers. Why a program and not a script reading
 * ls_config.c: the table is the one the daemon validates with, read
 * through ls_config_key_at(), so the page shows what the code does.
 *
 * Exit 0; 1 when memory runs out; 2 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_config.h"

static const char usage[] = "usage: leadscore-docgen config-reference\n"
			    "  print the configuration key table for docs/configuration.md\n"
			    "  (scripts/gen-docs writes it between the config-reference markers)\n";

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc != 2 || strcmp(argv[1], "config-reference") != 0) {
		fputs(usage, stderr);
		return 2;
	}
	char *text = ls_config_reference();
	if (text == NULL) {
		fputs("leadscore-docgen: out of memory\n", stderr);
		return 1;
	}
	int rc = fputs(text, stdout) < 0 || fflush(stdout) != 0 ? 1 : 0;
	free(text);
	return rc;
}
