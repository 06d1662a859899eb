/*
 * check.c - `switchboard check-config`: validates a configuration file the
 * way the server would at start-up, so a change can be checked before a
 * restart, and reports the first problem as FILE:LINE:COL like a compiler
 * does, which editors can jump to.
 */
#include "cli/internal.h"

#include <stdio.h>

static void cli_check_usage(FILE *to)
{
	fprintf(to, "usage: switchboard check-config -c FILE   (or: check-config FILE)\n"
		    "Checks a configuration file; prints 'FILE: OK' or the first problem.\n");
}

int cli_check_config(int argc, char **argv)
{
	struct cli_opts o;
	struct cfg c;
	struct cfg_error err;
	const char *path;
	int ex, rc;

	ex = cli_parse(argc, argv, "check-config", CLI_OPT_CONFIG, &o);
	if (!ex && o.help) {
		cli_check_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex && !o.config && o.npos == 0) {
		fprintf(stderr, "check-config: missing -c FILE (try --help)\n");
		ex = CLI_EXIT_USAGE;
	}
	if (!ex)
		ex = cli_want_args(&o, 0, o.config ? 0 : 1, "check-config");
	if (ex)
		return ex;
	path = o.config ? o.config : o.pos[0];
	cfg_defaults(&c);
	rc = cfg_load_file(&c, path, &err);
	if (!rc)
		rc = cfg_finish(&c, &err);
	if (rc) {
		cli_print_cfg_error(path, &err);
		return CLI_EXIT_CONFIG;
	}
	printf("%s: OK\n", path);
	return CLI_EXIT_OK;
}
