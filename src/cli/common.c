/*
 * common.c - what every subcommand does the same way: option parsing, finding
 * and opening the database, and turning errors into messages and exit codes,
 * so that all commands accept the same options and fail in the same format.
 */
#include "cli/internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "store/store.h"

enum { CLI_KEY_DB = 256 };

static const struct option cli_long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"db", required_argument, NULL, CLI_KEY_DB},
    {"password", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static bool cli_opt_allowed(int opt, unsigned flags)
{
	switch (opt) {
	case 'c':
		return flags & (CLI_OPT_STORE | CLI_OPT_CONFIG);
	case CLI_KEY_DB:
		return flags & CLI_OPT_STORE;
	case 'p':
		return flags & CLI_OPT_PASSWORD;
	case 'h':
		return true;
	default:
		return false;
	}
}

/* The option as the user typed it: "--bogus" (without "=value") or "-x". */
static void cli_opt_name(char **argv, int at, int optopt_, char *out, size_t size)
{
	const char *arg = at > 0 ? argv[at - 1] : "";

	if (strncmp(arg, "--", 2) == 0)
		snprintf(out, size, "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(out, size, "-%c", optopt_ ? optopt_ : '?');
}

static int cli_usage_error(const char *cmd, const char *what, const char *name)
{
	fprintf(stderr, "%s: %s '%s' (try --help)\n", cmd, what, name);
	return CLI_EXIT_USAGE;
}

static int cli_bad_opt(char **argv, int opt, const char *cmd)
{
	char name[64];

	cli_opt_name(argv, optind, opt == ':' || opt == '?' ? optopt : opt, name, sizeof(name));
	if (opt == ':')
		return cli_usage_error(cmd, "missing value for option", name);
	if (opt == '?')
		return cli_usage_error(cmd, "unknown option", name);
	fprintf(stderr, "%s: option '%s' does not apply to this command (try --help)\n", cmd, name);
	return CLI_EXIT_USAGE;
}

static void cli_take_opt(int opt, struct cli_opts *o)
{
	if (opt == 'c')
		o->config = optarg;
	else if (opt == CLI_KEY_DB)
		o->db = optarg;
	else if (opt == 'p')
		o->password = optarg;
	else
		o->help = true;
}

static int cli_take_positionals(int argc, char **argv, const char *cmd, struct cli_opts *o)
{
	for (int i = optind; i < argc; i++) {
		if (o->npos == CLI_MAX_POS)
			return cli_usage_error(cmd, "unexpected argument", argv[i]);
		o->pos[o->npos++] = argv[i];
	}
	return CLI_EXIT_OK;
}

int cli_parse(int argc, char **argv, const char *cmd, unsigned flags, struct cli_opts *o)
{
	int opt;

	*o = (struct cli_opts){0};
	optind = 0; /* glibc: start over, this process may parse several times */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:p:h", cli_long_opts, NULL)) != -1) {
		if (opt == ':' || opt == '?' || !cli_opt_allowed(opt, flags))
			return cli_bad_opt(argv, opt, cmd);
		cli_take_opt(opt, o);
	}
	return cli_take_positionals(argc, argv, cmd, o);
}

int cli_want_args(const struct cli_opts *o, int min, int max, const char *cmd)
{
	if (o->npos < min) {
		fprintf(stderr, "%s: missing argument (try --help)\n", cmd);
		return CLI_EXIT_USAGE;
	}
	if (o->npos > max)
		return cli_usage_error(cmd, "unexpected argument", o->pos[max]);
	return CLI_EXIT_OK;
}

void cli_print_cfg_error(const char *path, const struct cfg_error *err)
{
	if (err->line && err->column)
		fprintf(stderr, "%s:%u:%u: %s\n", path, err->line, err->column, err->msg);
	else if (err->line)
		fprintf(stderr, "%s:%u: %s\n", path, err->line, err->msg);
	else
		fprintf(stderr, "%s: %s\n", path, err->msg);
}

int cli_exit_for(int err)
{
	switch (err) {
	case 0:
		return CLI_EXIT_OK;
	case ENOENT:
		return CLI_EXIT_NOT_FOUND;
	case EEXIST:
		return CLI_EXIT_EXISTS;
	case EINVAL:
		return CLI_EXIT_USAGE;
	default:
		return CLI_EXIT_FAILURE;
	}
}

/* The database path a configuration file names (or the default); CLI_EXIT_CONFIG if bad. */
static int cli_config_db_path(const char *config_path, char *out, size_t size)
{
	struct cfg c;
	struct cfg_error err;
	int rc = 0;

	cfg_defaults(&c);
	if (config_path) {
		rc = cfg_load_file(&c, config_path, &err);
		if (!rc)
			rc = cfg_finish(&c, &err);
	}
	if (rc) {
		cli_print_cfg_error(config_path, &err);
		return CLI_EXIT_CONFIG;
	}
	snprintf(out, size, "%s", c.db_path);
	return CLI_EXIT_OK;
}

int cli_open_store(const char *config_path, const char *db_path, struct store **out)
{
	char path[sizeof(((struct cfg *)0)->db_path)];
	char err[512];
	int ex, rc;

	*out = NULL;
	if (!db_path) {
		ex = cli_config_db_path(config_path, path, sizeof(path));
		if (ex)
			return ex;
		db_path = path;
	}
	rc = store_open(db_path, out, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "database '%s': %s\n", db_path, err);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

/*
 * One line from stdin, without its line end; *out is malloc'd. On a terminal
 * the password is not echoed (and a prompt says what is read).
 */
static int cli_password_stdin(const char *cmd, char **out)
{
	char *line = NULL;
	size_t cap = 0;
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	ssize_t n;

	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		fprintf(stderr, "Password: ");
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	n = getline(&line, &cap, stdin);
	if (tty)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (n < 0) {
		free(line); /* getline may allocate even when it reads nothing */
		fprintf(stderr, "%s: no password on standard input\n", cmd);
		return CLI_EXIT_USAGE;
	}
	line[strcspn(line, "\r\n")] = '\0';
	*out = line;
	return CLI_EXIT_OK;
}

int cli_password(const struct cli_opts *o, const char *cmd, char **out)
{
	*out = NULL;
	if (!o->password) {
		fprintf(stderr,
			"%s: missing --password (use '--password -' to read it from "
			"standard input)\n",
			cmd);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(o->password, "-") == 0)
		return cli_password_stdin(cmd, out);
	*out = strdup(o->password);
	if (!*out) {
		fprintf(stderr, "%s: out of memory\n", cmd);
		return CLI_EXIT_FAILURE;
	}
	return CLI_EXIT_OK;
}

void cli_password_free(char *pw)
{
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
}
