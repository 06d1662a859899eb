/*
 * cli.h - the administrative subcommands of the switchboard binary: user
 * provisioning, a view of the location table and a configuration check.
 *
 * They work on the database directly, not through a running server, so they
 * also work when the server is down; the server notices their writes through
 * store_data_version(). Each command returns the process exit status, and the
 * exit codes are part of the interface so scripts can tell "no such user"
 * from "database broken".
 */
#ifndef SB_CLI_H
#define SB_CLI_H

struct store;

#define CLI_EXIT_OK	   0
#define CLI_EXIT_FAILURE   1 /* runtime or database error */
#define CLI_EXIT_USAGE	   2 /* bad arguments */
#define CLI_EXIT_CONFIG	   3 /* bad configuration file */
#define CLI_EXIT_NOT_FOUND 4
#define CLI_EXIT_EXISTS	   5

/* argv[0] is the subcommand's name ("user"); the result is the exit status. */
int cli_user(int argc, char **argv);
int cli_reg(int argc, char **argv);
int cli_check_config(int argc, char **argv);
/* What the dialplan does with a number, and what the lists do with a call (route.c). */
int cli_route(int argc, char **argv);
int cli_list(int argc, char **argv);
int cli_terminal(int argc, char **argv);
/* msg, presence, topic, mwi: messaging and presence state (im.c); group is the command. */
int cli_im(const char *group, int argc, char **argv);
/* The flood protection's bans: list, del IP|all (ban.c). */
int cli_ban(int argc, char **argv);
/* The calls in progress of the running server, through its control socket (call.c). */
int cli_call(int argc, char **argv);
/* Billing records from the store: list, export, totals (cdr.c). */
int cli_cdr(int argc, char **argv);
/* Runs the server in the foreground until SIGINT/SIGTERM. */
int cli_serve(int argc, char **argv);

/*
 * Opens the store at db_path if given, else at the database.path of the
 * configuration file config_path if given, else at the default path. Prints
 * the reason for a failure to stderr and returns the exit status to use
 * (CLI_EXIT_CONFIG for a bad configuration file, CLI_EXIT_FAILURE for a
 * database that does not open), or CLI_EXIT_OK with *out set.
 */
int cli_open_store(const char *config_path, const char *db_path, struct store **out);

#endif
