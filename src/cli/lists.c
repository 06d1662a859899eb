/*
 * lists.c - `switchboard list`: the global black and white lists, shown,
 * tried ("may 0900555 call bob?") and changed on a running server, with the
 * server's own matching code (services/lists.h).
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "services/lists.h"
#include "services/rules.h"
#include "services/settings.h"
#include "store/store.h"

static void cli_list_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard list show [-c FILE] [--db PATH]\n"
		"       switchboard list add|del LIST VALUE... [-c FILE] [--db PATH]\n"
		"       switchboard list status 403|603 [-c FILE] [--db PATH]\n"
		"       switchboard list check CALLER CALLEE [SOURCE-IP] [-c FILE] [--db PATH]\n"
		"LIST is block_callers, allow_callers or block_callees (VALUE: a user part\n"
		"prefix such as 0900 or +44909, or * for everyone), block_sources or\n"
		"allow_sources (VALUE: an address or ADDRESS/BITS network). status sets the\n"
		"answer to a blocked call. The running server applies a change at once.\n"
		"check says whether a call from CALLER (a From user part) to CALLEE\n"
		"(user@domain, or a user part) from SOURCE-IP is let through, by the global\n"
		"lists and the callee's own (switchboard user set ... block_callers=...).\n"
		"Exit status of check: 0 allowed, 1 blocked.\n");
}

/* What a command works on: the file's rules, those in force, and the store. */

/*
 * The global lists
 */

static void cli_print_prefixes(const char *name, const struct lists_prefixes *l)
{
	printf("  %-14s", name);
	if (!l->n)
		printf(" -");
	for (size_t i = 0; i < l->n; i++)
		printf(" %s", l->v[i]);
	printf("\n");
}

static void cli_print_nets(const char *name, const struct lists_nets *l)
{
	char ip[INET6_ADDRSTRLEN];

	printf("  %-14s", name);
	if (!l->n)
		printf(" -");
	for (size_t i = 0; i < l->n; i++) {
		inet_ntop(l->v[i].family, l->v[i].addr, ip, sizeof(ip));
		printf(" %s/%u", ip, l->v[i].bits);
	}
	printf("\n");
}

static int cli_list_show(const struct lists_global *g)
{
	printf("global lists (answer %u when blocked):\n", g->block_status);
	cli_print_prefixes("block_callers", &g->block_callers);
	cli_print_prefixes("allow_callers", &g->allow_callers);
	cli_print_prefixes("block_callees", &g->block_callees);
	cli_print_nets("block_sources", &g->block_sources);
	cli_print_nets("allow_sources", &g->allow_sources);
	return CLI_EXIT_OK;
}

static int cli_verdict(bool blocked, const char *why, unsigned status)
{
	if (blocked) {
		printf("blocked (%u): %s\n", status, why);
		return CLI_EXIT_FAILURE;
	}
	printf("allowed: %s\n", why);
	return CLI_EXIT_OK;
}

/* The same order as the server: the global lists, then the callee's. */
static int cli_list_check(const struct cli_opts *o, struct cli_rules *cr)
{
	const struct lists_global *g = &cr->cur->lists;
	const char *caller = o->pos[0], *callee = o->pos[1];
	const char *at = strchr(callee, '@'), *why;
	sv_t callee_user = at ? sv_make(callee, (size_t)(at - callee)) : sv_cstr(callee);
	struct sockaddr_storage ss;
	struct store_user u;
	struct uset set;
	char err[200];
	enum lists_verdict v;

	memset(&ss, 0, sizeof(ss));
	if (o->npos > 2) {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, o->pos[2], &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, o->pos[2], &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
		} else {
			fprintf(stderr, "list check: '%s' is not an IP address\n", o->pos[2]);
			return CLI_EXIT_USAGE;
		}
	}
	v = lists_global_check(g, sv_cstr(caller), true, callee_user,
			       o->npos > 2 ? (struct sockaddr *)&ss : NULL, &why);
	if (v != LISTS_NONE)
		return cli_verdict(v == LISTS_BLOCKED, why, g->block_status);
	if (!at)
		return cli_verdict(
		    false, "no global list applies (give USER@DOMAIN for the callee's own lists)",
		    0);
	if (store_user_get(cr->st, callee_user, sv_cstr(at + 1), &u))
		return cli_verdict(false, "no global list applies; the callee is not a user", 0);
	uset_init(&set);
	uset_parse(&set, sv_cstr(u.settings), err, sizeof(err));
	if (set.allow_callers[0] && lists_prefix_match_csv(set.allow_callers, sv_cstr(caller)))
		return cli_verdict(false, "caller on the callee's white list", 0);
	if (o->npos > 2 && set.block_sources[0] &&
	    lists_cidr_match_csv(sv_cstr(set.block_sources), (struct sockaddr *)&ss))
		return cli_verdict(true, "source network on the callee's block_sources",
				   g->block_status);
	if (set.allow_only)
		return cli_verdict(true, "not on the callee's white list (allow_only)",
				   g->block_status);
	if (lists_prefix_match_csv(set.block_callers, sv_cstr(caller)))
		return cli_verdict(true, "on the callee's black list", g->block_status);
	return cli_verdict(false, "no list applies", 0);
}

/* Whether value is on list name of g; -1 when value is not a valid entry of it. */
static int cli_list_has(struct lists_global *g, const char *name, const char *value)
{
	struct lists_prefixes *pl = lists_global_prefixes(g, sv_cstr(name));
	struct lists_nets *nl = lists_global_nets(g, sv_cstr(name));
	struct lists_cidr c;

	if (pl) {
		if (!lists_prefix_ok(sv_cstr(value)))
			return -1;
		for (size_t i = 0; i < pl->n; i++) {
			if (strcmp(pl->v[i], value) == 0)
				return 1;
		}
		return 0;
	}
	if (!nl || lists_cidr_parse(sv_cstr(value), &c))
		return -1;
	for (size_t i = 0; i < nl->n; i++) {
		if (lists_cidr_equal(&nl->v[i], &c))
			return 1;
	}
	return 0;
}

static bool cli_list_full(struct lists_global *g, const char *name)
{
	struct lists_prefixes *pl = lists_global_prefixes(g, sv_cstr(name));
	struct lists_nets *nl = lists_global_nets(g, sv_cstr(name));

	return (pl ? pl->n : nl->n) >= LISTS_MAX;
}

/* An entry just saved, into the copy in hand: the next values of the command see it. */
static void cli_list_put(struct lists_global *g, const char *name, const char *value)
{
	struct lists_prefixes *pl = lists_global_prefixes(g, sv_cstr(name));
	struct lists_nets *nl = lists_global_nets(g, sv_cstr(name));

	if (pl && pl->n < LISTS_MAX && strlen(value) < sizeof(pl->v[0]))
		memcpy(pl->v[pl->n++], value, strlen(value) + 1);
	else if (nl && nl->n < LISTS_MAX && lists_cidr_parse(sv_cstr(value), &nl->v[nl->n]) == 0)
		nl->n++;
}

static int cli_list_change(const struct cli_opts *o, struct cli_rules *cr, bool add)
{
	const char *name = o->pos[0];
	bool prefixes = lists_global_prefixes(&cr->cur->lists, sv_cstr(name)) != NULL;
	int ex = CLI_EXIT_OK;

	if (!prefixes && !lists_global_nets(&cr->cur->lists, sv_cstr(name))) {
		fprintf(stderr,
			"%s: no list '%s' (block_callers, allow_callers, block_callees, "
			"block_sources, allow_sources)\n",
			cr->cmd, name);
		return CLI_EXIT_USAGE;
	}
	for (int i = 1; i < o->npos && !ex; i++) {
		char canon[64];
		struct lists_cidr net;
		const char *v = o->pos[i];
		int has = cli_list_has(&cr->cur->lists, name, v), rc;
		/* a network is kept under one text, however it was typed (10.0.0.1 = 10.0.0.1/32)
		 */
		if (!prefixes && has >= 0 && lists_cidr_parse(sv_cstr(v), &net) == 0) {
			lists_cidr_format(&net, canon, sizeof(canon));
			v = canon;
		}
		if (has < 0) {
			fprintf(stderr, "%s: '%s' is not %s\n", cr->cmd, v,
				prefixes ? "a prefix (up to 31 characters, no spaces, commas, '@', "
					   "':', '<', '>' or quotes; * for everyone)"
					 : "an IP address or ADDRESS/BITS network");
			return CLI_EXIT_USAGE;
		}
		if (add && has) {
			fprintf(stderr, "%s: '%s' is on %s already\n", cr->cmd, v, name);
			return CLI_EXIT_EXISTS;
		}
		if (!add && !has) {
			fprintf(stderr, "%s: '%s' is not on %s\n", cr->cmd, v, name);
			return CLI_EXIT_NOT_FOUND;
		}
		if (add && cli_list_full(&cr->cur->lists, name)) {
			fprintf(stderr, "%s: %s has %d entries already\n", cr->cmd, name,
				LISTS_MAX);
			return CLI_EXIT_USAGE;
		}
		if (add) {
			rc = rules_save_list_item(cr->st, name, v);
			cli_list_put(&cr->cur->lists, name, v);
		} else {
			char key[STORE_KEY_MAX];
			snprintf(key, sizeof(key), "%s %s", name, v);
			rc = rules_forget(cr->st, STORE_REC_LISTITEM, key,
					  cli_list_has(&cr->base->lists, name, v) == 1);
		}
		if (rc) {
			fprintf(stderr, "%s: %s\n", cr->cmd, store_errmsg(cr->st));
			ex = CLI_EXIT_FAILURE;
		}
	}
	if (!ex)
		printf("%s: done\n", cr->cmd);
	return ex;
}

int cli_list(int argc, char **argv)
{
	enum list_verb { LV_SHOW, LV_CHECK, LV_ADD, LV_DEL, LV_STATUS };
	static const struct cli_verb verbs[] = {{"show", 0, 0},
						{"check", 2, 3},
						{"add", 2, CLI_MAX_POS},
						{"del", 2, CLI_MAX_POS},
						{"status", 1, 1}};
	struct cli_rules_cmd c;
	int ex = cli_rules_command(argc, argv, "list", verbs, sizeof(verbs) / sizeof(verbs[0]),
				   cli_list_usage, &c);

	if (!c.ready)
		return ex;
	switch ((enum list_verb)c.verb) {
	case LV_SHOW:
		ex = cli_rules_whole(&c.cr);
		if (!ex)
			ex = cli_list_show(&c.cr.cur->lists);
		break;
	case LV_CHECK:
		ex = cli_rules_whole(&c.cr);
		if (!ex)
			ex = cli_list_check(&c.o, &c.cr);
		break;
	case LV_STATUS:
		if (strcmp(c.o.pos[0], "403") != 0 && strcmp(c.o.pos[0], "603") != 0) {
			fprintf(stderr, "list status: 403 or 603\n");
			ex = CLI_EXIT_USAGE;
		} else {
			ex = cli_rules_saved(
			    &c.cr, rules_save_block_status(c.cr.st, (unsigned)atoi(c.o.pos[0])),
			    "the status");
		}
		break;
	case LV_ADD:
	case LV_DEL:
		ex = cli_list_change(&c.o, &c.cr, c.verb == LV_ADD);
		break;
	}
	cli_rules_close(&c.cr);
	return ex;
}
