/*
 * internal.h - helpers shared by the cli module's files, not part of its API:
 * the option parsing and error reporting every subcommand does the same way.
 */
#ifndef SB_CLI_INTERNAL_H
#define SB_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

/*
 * rules.c: what route, list and terminal work on: the file's routing rules,
 * those in force (with the store's changes), and the store.
 */
struct rules_conf;
struct cli_rules {
	const char *cmd;
	struct cfg *cfg;
	struct rules_conf *base;
	struct rules_conf *cur;
	struct store *st;
	bool bad; /* the store's changes do not fit the file (a change may repair it) */
	char why[400];
};
int cli_rules_open(const struct cli_opts *o, const char *cmd, struct cli_rules *cr);
void cli_rules_close(struct cli_rules *cr);
/* Before showing or testing: the rules must be whole (CLI_EXIT_CONFIG otherwise). */
int cli_rules_whole(const struct cli_rules *cr);
/* After a change to cr->cur: the whole must still resolve (CLI_EXIT_USAGE otherwise). */
int cli_rules_check(struct cli_rules *cr);
/* The exit status of saving a change (rc from rules_save_*), with its message. */
int cli_rules_saved(struct cli_rules *cr, int rc, const char *what);

/* One subcommand of `list` or `terminal`, its positional arguments from min to max. */
struct cli_verb {
	const char *name;
	int min, max;
};
/* A `list` or `terminal` command under way. */
struct cli_rules_cmd {
	struct cli_opts o;
	struct cli_rules cr;
	char name[48];
	size_t verb; /* index in the verbs given */
	bool ready;
};
int cli_rules_command(int argc, char **argv, const char *group, const struct cli_verb *verbs,
		      size_t nverbs, void (*usage)(FILE *), struct cli_rules_cmd *c);

#endif
