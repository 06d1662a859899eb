/*
 * terminal.c - `switchboard terminal`: the User-Agent patterns that give a
 * registration its terminal type (desk, pc, mobile, other), listed, tried
 * ("what is a Yealink?") and changed on a running server.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/rules.h"
#include "services/terminal.h"
#include "store/store.h"

static void cli_terminal_usage(FILE *to)
{
	fprintf(to, "usage: switchboard terminal list [-c FILE] [--db PATH]\n"
		    "       switchboard terminal test USER-AGENT [CONTACT-PARAMS]\n"
		    "       switchboard terminal add PATTERN desk|pc|mobile|other\n"
		    "       switchboard terminal del PATTERN\n"
		    "A registration whose User-Agent contains PATTERN gets its type; the\n"
		    "patterns are tried in order (the file's, then those added here), before\n"
		    "the built-in table, and after an explicit terminal= Contact parameter and\n"
		    "RFC 3840 feature tags. test prints the type a registration would get.\n"
		    "add replaces the type of an existing pattern. The running server uses a\n"
		    "change for the next REGISTER.\n");
}

/*
 * Terminal types by User-Agent
 */

static int cli_terminal_list(const struct cli_rules *cr)
{
	const struct rules_conf *c = cr->cur;

	printf("User-Agent patterns, tried in order before the built-in table:\n");
	if (!c->nterminal_ua)
		printf("  (none)\n");
	for (size_t i = 0; i < c->nterminal_ua; i++)
		printf("  %-32s %s%s\n", c->terminal_ua[i].match, term_name(c->terminal_ua[i].type),
		       rules_find_terminal(cr->base, c->terminal_ua[i].match) < 0 ||
			       cr->base->terminal_ua[rules_find_terminal(cr->base,
									 c->terminal_ua[i].match)]
				       .type != c->terminal_ua[i].type
			   ? "  [set from the CLI]"
			   : "");
	return CLI_EXIT_OK;
}

static int cli_terminal_change(struct cli_rules *cr, const struct cli_opts *o, bool add)
{
	struct rules_conf *c = cr->cur;
	struct term_pattern p;
	int i;

	memset(&p, 0, sizeof(p));
	if (!o->pos[0][0] || strlen(o->pos[0]) >= sizeof(p.match)) {
		fprintf(stderr, "%s: a pattern is 1 to %zu characters\n", cr->cmd,
			sizeof(p.match) - 1);
		return CLI_EXIT_USAGE;
	}
	strcpy(p.match, o->pos[0]);
	i = rules_find_terminal(c, p.match);
	if (!add) {
		if (i < 0) {
			fprintf(stderr, "%s: no pattern '%s'\n", cr->cmd, p.match);
			return CLI_EXIT_NOT_FOUND;
		}
		return cli_rules_saved(cr,
				       rules_forget(cr->st, STORE_REC_TERMINAL, p.match,
						    rules_find_terminal(cr->base, p.match) >= 0),
				       "the pattern");
	}
	if (term_parse(sv_cstr(o->pos[1]), &p.type)) {
		fprintf(stderr, "%s: '%s' is not a terminal type (desk, pc, mobile, other)\n",
			cr->cmd, o->pos[1]);
		return CLI_EXIT_USAGE;
	}
	if (i < 0 && c->nterminal_ua >= CFG_MAX_TERMINAL_UA) {
		fprintf(stderr, "%s: there are %d patterns already\n", cr->cmd,
			CFG_MAX_TERMINAL_UA);
		return CLI_EXIT_USAGE;
	}
	return cli_rules_saved(cr, rules_save_terminal(cr->st, &p), "the pattern");
}

int cli_terminal(int argc, char **argv)
{
	static const struct cli_verb verbs[] = {
	    {"list", 0, 0}, {"test", 1, 2}, {"add", 2, 2}, {"del", 1, 1}};
	struct cli_rules_cmd c;
	int ex = cli_rules_command(argc, argv, "terminal", verbs, sizeof(verbs) / sizeof(verbs[0]),
				   cli_terminal_usage, &c);

	if (!c.ready)
		return ex;
	if (c.verb == 0) {
		ex = cli_terminal_list(&c.cr);
	} else if (c.verb == 1) {
		enum term_type t = term_classify(sv_cstr(c.o.npos > 1 ? c.o.pos[1] : ""),
						 SV("sip:x@x"), sv_cstr(c.o.pos[0]),
						 c.cr.cur->terminal_ua, c.cr.cur->nterminal_ua);
		printf("%s\n", term_name(t));
	} else {
		ex = cli_terminal_change(&c.cr, &c.o, c.verb == 2);
	}
	cli_rules_close(&c.cr);
	return ex;
}
