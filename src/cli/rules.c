/*
 * rules.c - what `switchboard route`, `list` and `terminal` share: the
 * routing rules of a configuration file with the changes kept in the store
 * (services/rules.h), opened, checked as a whole, and a change saved, each
 * with the same messages and exit codes.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/rules.h"
#include "store/store.h"

/* Loads and checks FILE as the server would; *c is heap (it is large). */
static int cli_load_cfg(const char *path, const char *cmd, struct cfg **out)
{
	struct cfg_error err;
	struct cfg *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c) {
		fprintf(stderr, "%s: out of memory\n", cmd);
		return CLI_EXIT_FAILURE;
	}
	cfg_defaults(c);
	if ((path && cfg_load_file(c, path, &err)) || cfg_finish(c, &err)) {
		cli_print_cfg_error(path ? path : cmd, &err);
		free(c);
		return CLI_EXIT_CONFIG;
	}
	*out = c;
	return CLI_EXIT_OK;
}

void cli_rules_close(struct cli_rules *cr)
{
	if (cr->st)
		store_close(cr->st);
	free(cr->cfg);
	free(cr->base);
	free(cr->cur);
}

int cli_rules_open(const struct cli_opts *o, const char *cmd, struct cli_rules *cr)
{
	int ex;

	*cr = (struct cli_rules){.cmd = cmd};
	ex = cli_load_cfg(o->config, cmd, &cr->cfg);
	if (!ex)
		ex = cli_open_store(o->config, o->db, &cr->st);
	if (ex)
		return ex;
	cr->base = calloc(1, sizeof(*cr->base));
	cr->cur = calloc(1, sizeof(*cr->cur));
	if (!cr->base || !cr->cur) {
		fprintf(stderr, "%s: out of memory\n", cmd);
		return CLI_EXIT_FAILURE;
	}
	rules_conf_from_cfg(cr->base, cr->cfg);
	if (rules_conf_load(cr->st, cr->base, cr->cur, cr->why, sizeof(cr->why)))
		cr->bad = true;
	return CLI_EXIT_OK;
}

/* Before showing or testing: the rules must be whole. */
int cli_rules_whole(const struct cli_rules *cr)
{
	if (!cr->bad)
		return CLI_EXIT_OK;
	fprintf(stderr, "%s: %s\n", cr->cmd, cr->why);
	return CLI_EXIT_CONFIG;
}

/* After a change to cr->cur: the whole must still resolve. */
int cli_rules_check(struct cli_rules *cr)
{
	char why[300];
	unsigned line = 0;

	if (dp_config_resolve(&cr->cur->dp, why, sizeof(why), &line) == 0)
		return CLI_EXIT_OK;
	if (line)
		fprintf(stderr, "%s: refused: %s (line %u of the configuration file)\n", cr->cmd,
			why, line);
	else
		fprintf(stderr, "%s: refused: %s\n", cr->cmd, why);
	return CLI_EXIT_USAGE;
}

int cli_rules_saved(struct cli_rules *cr, int rc, const char *what)
{
	if (rc == EILSEQ) {
		fprintf(stderr, "%s: %s cannot be stored (a value holds a space)\n", cr->cmd, what);
		return CLI_EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "%s: %s\n", cr->cmd,
			rc == ENAMETOOLONG ? "too long" : store_errmsg(cr->st));
		return CLI_EXIT_FAILURE;
	}
	printf("%s: done\n", cr->cmd);
	return CLI_EXIT_OK;
}

/*
 * The common start of `list` and `terminal`: picks argv[1] among verbs,
 * parses the options and the arguments, and opens the rules. Returns an exit
 * status; c->ready says whether the command goes on (not after --help or an
 * error). When it does, cli_rules_close(&c->cr) ends it.
 */
int cli_rules_command(int argc, char **argv, const char *group, const struct cli_verb *verbs,
		      size_t nverbs, void (*usage)(FILE *), struct cli_rules_cmd *c)
{
	int ex;

	c->ready = false;
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	for (c->verb = 0; c->verb < nverbs && strcmp(argv[1], verbs[c->verb].name) != 0; c->verb++)
		;
	if (c->verb == nverbs) {
		fprintf(stderr, "%s: unknown command '%s' (try --help)\n", group, argv[1]);
		return CLI_EXIT_USAGE;
	}
	snprintf(c->name, sizeof(c->name), "%s %s", group, verbs[c->verb].name);
	ex = cli_parse(argc - 1, argv + 1, c->name, CLI_OPT_STORE, &c->o);
	if (!ex && c->o.help) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&c->o, verbs[c->verb].min, verbs[c->verb].max, c->name);
	if (!ex) {
		ex = cli_rules_open(&c->o, c->name, &c->cr);
		if (ex)
			cli_rules_close(&c->cr);
		c->ready = ex == 0;
	}
	return ex;
}
