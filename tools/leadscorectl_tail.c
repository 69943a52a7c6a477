/*
 * leadscorectl_tail.c - `leadscorectl tail`: not built yet (issue 16 is
 * building it; this file is replaced by the command).
 */
#include <stdio.h>

#include "leadscorectl.h"

int cmd_tail(int argc, char **argv, const char *config_path)
{
	(void)argc;
	(void)argv;
	(void)config_path;
	fprintf(stderr, "leadscorectl: tail is not built yet\n");
	return 1;
}
