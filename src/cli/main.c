/*
 * main.c - the switchboard binary: one executable for the server and its
 * administration, dispatching on the first argument.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: switchboard COMMAND [ARGS]\n"
	       "  serve [-c FILE] [--listen PROTO:IP:PORT]... [--domain D]... [--db PATH]\n"
	       "                      run the SIP server in the foreground\n"
	       "  check-config -c FILE  check a configuration file\n"
	       "  user add|del|passwd|list|import ...   manage subscribers\n"
	       "  user set|show ...     call settings (ringing, forwarding, lists) of a user\n"
	       "  reg list [AOR]        show registrations\n"
	       "  route show|test|gateway|group|rule|redirect ...   dialplan, gateways, redirects\n"
	       "  list show|check|add|del|status ...   the global black and white lists\n"
	       "  terminal list|test|add|del ...   User-Agent patterns for terminal types\n"
	       "  msg list|del ...      stored (offline) instant messages\n"
	       "  presence list [AOR]   presence subscriptions and publications\n"
	       "  topic list|create|delete|members|add|remove ...   IM broker topics\n"
	       "  mwi set|list ...      mailbox summaries for message-summary subscribers\n"
	       "  ban list|del IP|all   sources banned by the flood protection\n"
	       "  call list|show CALL-ID   calls in progress (from the running server)\n"
	       "  cdr list|export|totals ...   billing records, one per call attempt\n"
	       "  version               print the version\n"
	       "Each command takes --help. Exit codes: 0 ok, 1 failure, 2 usage, 3 bad config,\n"
	       "4 not found, 5 already exists.\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(cmd, "serve") == 0)
		return cli_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "user") == 0)
		return cli_user(argc - 1, argv + 1);
	if (strcmp(cmd, "reg") == 0)
		return cli_reg(argc - 1, argv + 1);
	if (strcmp(cmd, "route") == 0)
		return cli_route(argc - 1, argv + 1);
	if (strcmp(cmd, "list") == 0)
		return cli_list(argc - 1, argv + 1);
	if (strcmp(cmd, "terminal") == 0)
		return cli_terminal(argc - 1, argv + 1);
	if (strcmp(cmd, "msg") == 0 || strcmp(cmd, "presence") == 0 || strcmp(cmd, "topic") == 0 ||
	    strcmp(cmd, "mwi") == 0)
		return cli_im(cmd, argc - 1, argv + 1);
	if (strcmp(cmd, "ban") == 0)
		return cli_ban(argc - 1, argv + 1);
	if (strcmp(cmd, "call") == 0)
		return cli_call(argc - 1, argv + 1);
	if (strcmp(cmd, "cdr") == 0)
		return cli_cdr(argc - 1, argv + 1);
	if (strcmp(cmd, "check-config") == 0)
		return cli_check_config(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("switchboard %s\n", SB_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	fprintf(stderr, "switchboard: unknown command '%s'\n", cmd);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
