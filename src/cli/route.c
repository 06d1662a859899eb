/*
 * route.c - `switchboard route` and `switchboard list`: what the dialplan
 * and the black and white lists of a configuration do, asked before a call
 * is made ("where does 0301234 go?", "may 0900555 call bob?").
 *
 * Both read the same files the server reads and run the same matching code,
 * so the answer is the server's answer; the dialplan and the global lists
 * are edited in the YAML file, per-user lists with `user set`.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "services/dialplan.h"
#include "services/lists.h"
#include "services/settings.h"
#include "store/store.h"

static void cli_route_usage(FILE *to)
{
	fprintf(to, "usage: switchboard route show -c FILE\n"
		    "       switchboard route test NUMBER -c FILE\n"
		    "show prints the gateways, gateway groups and dialplan rules of FILE; test\n"
		    "prints which rule a called number matches, the number sent to the gateway,\n"
		    "and the gateways in the order they would be tried (all assumed up).\n");
}

static void cli_list_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard list show -c FILE\n"
		"       switchboard list check CALLER CALLEE [SOURCE-IP] [-c FILE] [--db PATH]\n"
		"show prints the global black and white lists of FILE; check says whether a\n"
		"call from CALLER (a From user part) to CALLEE (user@domain, or a user part)\n"
		"from SOURCE-IP is let through, applying the global lists and the callee's\n"
		"own (switchboard user set ... block_callers=/allow_callers=/allow_only=).\n"
		"Exit status: 0 allowed, 1 blocked, 2 usage, 3 bad configuration.\n");
}

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
	if (path && (cfg_load_file(c, path, &err) || cfg_finish(c, &err))) {
		cli_print_cfg_error(path, &err);
		free(c);
		return CLI_EXIT_CONFIG;
	}
	if (!path && cfg_finish(c, &err)) {
		free(c);
		return CLI_EXIT_CONFIG;
	}
	*out = c;
	return CLI_EXIT_OK;
}

static const char *cli_op_text(const struct dp_op *op, char *buf, size_t len)
{
	switch (op->kind) {
	case DP_OP_STRIP:
		snprintf(buf, len, "strip %u", op->count);
		break;
	case DP_OP_PREFIX:
		snprintf(buf, len, "prefix %s", op->text);
		break;
	case DP_OP_INSERT:
		snprintf(buf, len, "insert %s at %u", op->text, op->at);
		break;
	case DP_OP_DELETE:
		snprintf(buf, len, "delete %u at %u", op->count, op->at);
		break;
	case DP_OP_REPLACE:
		snprintf(buf, len, "replace /%s/ with '%s'", op->regex, op->text);
		break;
	default:
		snprintf(buf, len, "?");
		break;
	}
	return buf;
}

static void cli_route_print_rule(const struct dp_config *d, const struct dp_rule *r)
{
	char op[200];

	if (r->prefix[0])
		printf("  prefix %-16s", r->prefix);
	else
		printf("  regex  %-16s", r->regex);
	printf(" ->");
	for (size_t k = 0; k < r->nroute; k++)
		printf(" %s", d->grp[r->route[k]].name);
	if (r->redirect)
		printf(" (redirect)");
	for (size_t o = 0; o < r->nops; o++)
		printf("%s%s", o ? ", " : "; ", cli_op_text(&r->ops[o], op, sizeof(op)));
	printf("\n");
}

static int cli_route_show(const struct cfg *c)
{
	const struct dp_config *d = &c->dialplan;

	printf("gateways:\n");
	if (!d->ngw)
		printf("  (none)\n");
	for (size_t i = 0; i < d->ngw; i++) {
		const struct dp_gateway *g = &d->gw[i];
		printf("  %-16s %s:%u %s%s\n", g->name, g->host, g->port ? g->port : 5060,
		       g->tcp ? "tcp" : "udp", g->probe ? "" : " (not probed)");
	}
	printf("gateway groups:\n");
	if (!d->ngrp)
		printf("  (none)\n");
	for (size_t i = 0; i < d->ngrp; i++) {
		const struct dp_group *g = &d->grp[i];
		printf("  %-16s", g->name);
		for (size_t m = 0; m < g->n; m++)
			printf(" %s(priority %u, weight %u)", d->gw[g->m[m].gw].name,
			       g->m[m].priority, g->m[m].weight);
		printf("\n");
	}
	printf("dialplan (callee numbers up to %u digits):\n", d->max_callee_digits);
	if (!d->nrules)
		printf("  (no rules)\n");
	for (size_t i = 0; i < d->nrules; i++)
		cli_route_print_rule(d, &d->rules[i]);
	return CLI_EXIT_OK;
}

static int cli_route_test(const struct cfg *c, const char *number)
{
	struct dp *d = NULL;
	unsigned gws[32];
	char out[DP_NUMBER_MAX];
	sv_t num = sv_cstr(number);
	size_t n;
	int rule, ex = CLI_EXIT_OK;

	if (!dp_is_number(num)) {
		fprintf(
		    stderr,
		    "route test: '%s' is not a number (digits, * and #, an optional leading +)\n",
		    number);
		return CLI_EXIT_USAGE;
	}
	if (dp_create(&c->dialplan, &d)) {
		fprintf(stderr, "route test: cannot build the dialplan\n");
		return CLI_EXIT_FAILURE;
	}
	if (dp_digits(num) > c->dialplan.max_callee_digits) {
		printf("%s: more than %u digits: 404 Number too long\n", number,
		       c->dialplan.max_callee_digits);
		ex = CLI_EXIT_NOT_FOUND;
		goto out;
	}
	rule = dp_match(d, num);
	if (rule < 0) {
		printf("%s: no dialplan rule matches (a call to it gets 404 unless it is a user)\n",
		       number);
		ex = CLI_EXIT_NOT_FOUND;
		goto out;
	}
	printf("rule:");
	cli_route_print_rule(&c->dialplan, dp_rule(d, rule));
	if (dp_transform(d, rule, num, out, sizeof(out))) {
		printf("the transformation fails: 404 Number cannot be transformed\n");
		ex = CLI_EXIT_NOT_FOUND;
		goto out;
	}
	printf("number sent: %s\n", out);
	n = dp_gateways(d, rule, 1, gws, sizeof(gws) / sizeof(gws[0]));
	printf("%s, in this order (equal priorities are shuffled by weight on each call):\n",
	       dp_rule(d, rule)->redirect ? "redirected (302) to" : "tried");
	for (size_t i = 0; i < n; i++) {
		const struct dp_gateway *g = dp_gateway(d, gws[i]);
		char port[8] = "";
		bool v6 = strchr(g->host, ':') != NULL;
		if (g->port)
			snprintf(port, sizeof(port), ":%u", g->port);
		printf("  %zu. %-16s sip:%s@%s%s%s%s%s\n", i + 1, g->name, out, v6 ? "[" : "",
		       g->host, v6 ? "]" : "", port, g->tcp ? ";transport=tcp" : "");
	}
out:
	dp_destroy(d);
	return ex;
}

int cli_route(int argc, char **argv)
{
	struct cli_opts o;
	struct cfg *c = NULL;
	bool test;
	int ex;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_route_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	test = strcmp(argv[1], "test") == 0;
	if (!test && strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "route: unknown command '%s' (try --help)\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	ex = cli_parse(argc - 1, argv + 1, test ? "route test" : "route show", CLI_OPT_CONFIG, &o);
	if (!ex && o.help) {
		cli_route_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, test ? 1 : 0, test ? 1 : 0,
				   test ? "route test" : "route show");
	if (!ex && !o.config) {
		fprintf(stderr,
			"route: missing -c FILE (the dialplan is in the configuration file)\n");
		ex = CLI_EXIT_USAGE;
	}
	if (!ex)
		ex = cli_load_cfg(o.config, "route", &c);
	if (!ex)
		ex = test ? cli_route_test(c, o.pos[0]) : cli_route_show(c);
	free(c);
	return ex;
}

static void cli_print_prefixes(const char *name, const struct cfg_prefix_list *l)
{
	printf("  %-14s", name);
	if (!l->n)
		printf(" -");
	for (size_t i = 0; i < l->n; i++)
		printf(" %s", l->v[i]);
	printf("\n");
}

static void cli_print_nets(const char *name, const struct cfg_cidr_list *l)
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

static int cli_list_show(const struct cfg *c)
{
	printf("global lists (answer %u when blocked):\n", c->block_status);
	cli_print_prefixes("block_callers", &c->block_callers);
	cli_print_prefixes("allow_callers", &c->allow_callers);
	cli_print_prefixes("block_callees", &c->block_callees);
	cli_print_nets("block_sources", &c->block_sources);
	cli_print_nets("allow_sources", &c->allow_sources);
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

/* The same order as the server: global exceptions, global blocks, then the callee's lists. */
static int cli_list_check(const struct cli_opts *o, const struct cfg *c)
{
	const char *caller = o->pos[0], *callee = o->pos[1];
	const char *at = strchr(callee, '@');
	sv_t callee_user = at ? sv_make(callee, (size_t)(at - callee)) : sv_cstr(callee);
	struct sockaddr_storage ss;
	struct store *s = NULL;
	struct store_user u;
	struct uset set;
	char why[200];
	int ex;

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
		if (lists_cidr_match(c->allow_sources.v, c->allow_sources.n,
				     (struct sockaddr *)&ss))
			return cli_verdict(false, "source on lists.allow_sources", 0);
	}
	if (lists_prefix_match(c->allow_callers.v, c->allow_callers.n, sv_cstr(caller)))
		return cli_verdict(false, "caller on lists.allow_callers", 0);
	if (o->npos > 2 &&
	    lists_cidr_match(c->block_sources.v, c->block_sources.n, (struct sockaddr *)&ss))
		return cli_verdict(true, "source address on lists.block_sources", c->block_status);
	if (lists_prefix_match(c->block_callers.v, c->block_callers.n, sv_cstr(caller)))
		return cli_verdict(true, "caller on lists.block_callers", c->block_status);
	if (lists_prefix_match(c->block_callees.v, c->block_callees.n, callee_user))
		return cli_verdict(true, "callee on lists.block_callees", c->block_status);
	if (!at)
		return cli_verdict(
		    false, "no global list applies (give USER@DOMAIN for the callee's own lists)",
		    0);
	ex = cli_open_store(o->config, o->db, &s);
	if (ex)
		return ex;
	if (store_user_get(s, callee_user, sv_cstr(at + 1), &u)) {
		store_close(s);
		return cli_verdict(false, "no global list applies; the callee is not a user", 0);
	}
	store_close(s);
	uset_init(&set);
	uset_parse(&set, sv_cstr(u.settings), why, sizeof(why));
	if (set.allow_callers[0] && lists_prefix_match_csv(set.allow_callers, sv_cstr(caller)))
		return cli_verdict(false, "caller on the callee's white list", 0);
	if (set.allow_only)
		return cli_verdict(true, "not on the callee's white list (allow_only)",
				   c->block_status);
	if (lists_prefix_match_csv(set.block_callers, sv_cstr(caller)))
		return cli_verdict(true, "on the callee's black list", c->block_status);
	return cli_verdict(false, "no list applies", 0);
}

int cli_list(int argc, char **argv)
{
	struct cli_opts o;
	struct cfg *c = NULL;
	bool check;
	int ex;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_list_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	check = strcmp(argv[1], "check") == 0;
	if (!check && strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "list: unknown command '%s' (try --help)\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	ex = cli_parse(argc - 1, argv + 1, check ? "list check" : "list show", CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_list_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, check ? 2 : 0, check ? 3 : 0,
				   check ? "list check" : "list show");
	if (!ex)
		ex = cli_load_cfg(o.config, "list", &c);
	if (!ex)
		ex = check ? cli_list_check(&o, c) : cli_list_show(c);
	free(c);
	return ex;
}
