/*
 * internal.h - helpers shared by the cli module's files, not part of its API:
 * the option parsing and error reporting every subcommand does the same way.
 */
#ifndef SB_CLI_INTERNAL_H
#define SB_CLI_INTERNAL_H

#include <stdbool.h>

#include "cli/cli.h"
#include "config/config.h"

#define CLI_MAX_POS 32

/* Which options a subcommand takes besides --help. */
enum cli_opt_flags {
	CLI_OPT_STORE = 1,    /* -c/--config FILE, --db PATH */
	CLI_OPT_PASSWORD = 2, /* -p/--password PW */
	CLI_OPT_CONFIG = 4,   /* -c/--config FILE only */
};

struct cli_opts {
	const char *config;
	const char *db;
	const char *password;
	bool help;
	int npos;
	char *pos[CLI_MAX_POS];
};

/*
 * Parses argv[1..] (argv[0] is the command's name, e.g. "add"); options may
 * come before or after positional arguments. Returns CLI_EXIT_OK or, after
 * printing the problem to stderr, CLI_EXIT_USAGE.
 */
int cli_parse(int argc, char **argv, const char *cmd, unsigned flags, struct cli_opts *o);
/* Checks the number of positional arguments; prints and returns CLI_EXIT_USAGE if wrong. */
int cli_want_args(const struct cli_opts *o, int min, int max, const char *cmd);
/* "FILE:LINE:COL: msg" or "FILE: msg" on stderr. */
void cli_print_cfg_error(const char *path, const struct cfg_error *err);
struct store;
/* reg.c: the bindings of aor (NULL = all) as a table on stdout; an exit status. */
int cli_reg_show(struct store *s, const char *aor, const char *cmd);

/* The password as given, or read from stdin for "-"; free with cli_password_free. */
int cli_password(const struct cli_opts *o, const char *cmd, char **out);
/* Wipes and frees it. */
void cli_password_free(char *pw);

/* The exit status for an errno from the store. */
int cli_exit_for(int err);

#endif
