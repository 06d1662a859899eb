/*
 * route.c - `switchboard route`: the dialplan, the gateways and the redirect
 * domains, shown, tested ("where does 0301234 go?") and changed.
 *
 * A change is kept in the store as one entry over the configuration file's
 * (services/rules.h), checked first against the whole (a group must name
 * gateways that exist...), and a running server on the same database uses
 * it within a second. The answers run the server's own matching code.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/dialplan.h"
#include "services/rules.h"
#include "store/store.h"

static void cli_route_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard route show [-c FILE] [--db PATH]\n"
		"       switchboard route test NUMBER [-c FILE] [--db PATH]\n"
		"       switchboard route gateway add|set NAME KEY=VALUE... [--password PW|-]\n"
		"       switchboard route gateway del NAME\n"
		"       switchboard route group add|set NAME GATEWAY[:PRIORITY[:WEIGHT]]...\n"
		"       switchboard route group del NAME\n"
		"       switchboard route rule add|set MATCH KEY=VALUE...\n"
		"       switchboard route rule del MATCH\n"
		"       switchboard route redirect add|del DOMAIN|*\n"
		"       switchboard route set KEY=VALUE...\n"
		"show prints the gateways, gateway groups and dialplan rules in force (the\n"
		"configuration file's with the changes made here); test prints which rule a\n"
		"called number matches, the number sent, and the gateways in the order tried.\n"
		"Gateway keys: address=HOST port=N transport=udp|tcp probe=yes|no, and for a\n"
		"gateway that challenges us auth_user=USER auth_realm=REALM with --password\n"
		"(only its hashes are stored); auth=none drops the credentials;\n"
		"timeout=DURATION (no provisional response in time: the next gateway) and\n"
		"ring_timeout=DURATION (no final answer in time after one: CANCEL), each a\n"
		"number of seconds (3), milliseconds (1500ms), off, or default.\n"
		"set changes the defaults of every gateway: timeout=DURATION|off,\n"
		"ring_timeout=DURATION|off, and probe_interval=SECONDS (0: no probes); the\n"
		"value default goes back to the configuration file's.\n"
		"A rule's MATCH is a number prefix (0301, +49) or /REGEX/; its keys:\n"
		"route=GROUP[,GROUP...] redirect=yes|no, and the transform steps, in order:\n"
		"strip=N prefix=DIGITS insert=POS:DIGITS delete=POS:COUNT replace=/REGEX/WITH/\n"
		"(transform=none drops them). add makes a new entry, set changes one (also one\n"
		"of the file's), del removes it. redirect makes INVITEs for a domain's users\n"
		"get 302 with their contacts (* = every domain). The running server applies a\n"
		"change at once.\n");
}

static bool cli_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len >= DP_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	}
	return true;
}

/* "key=value" into its halves; false when there is no '='. */
static bool cli_kv(const char *word, sv_t *key, sv_t *value)
{
	const char *eq = strchr(word, '=');

	if (!eq)
		return false;
	*key = sv_make(word, (size_t)(eq - word));
	*value = sv_cstr(eq + 1);
	return true;
}

/*
 * Showing and testing
 */

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

static const char *cli_origin(unsigned line)
{
	return line ? "" : "  [set from the CLI]";
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
	printf("%s\n", cli_origin(r->line));
}

static void cli_show_redirects(const struct cli_rules *cr)
{
	const struct rules_conf *c = cr->cur;

	printf("redirect domains (302 with the contacts):");
	if (!c->nredirect)
		printf(" -");
	for (size_t i = 0; i < c->nredirect; i++)
		printf(" %s%s", c->redirect_domains[i],
		       rules_find_redirect(cr->base, c->redirect_domains[i]) < 0 ? " [CLI]" : "");
	printf("\n");
}

/* A gateway's own timeout, when it has one (the defaults are printed once). */
static void cli_show_timeout(const char *what, const struct dp_timeout *t)
{
	char v[16];

	if (t->kind == DP_TIMEOUT_DEFAULT)
		return;
	dp_duration_print(t->kind == DP_TIMEOUT_SET ? t->ms : 0, v, sizeof(v));
	printf("%s %s%s", what, v, t->kind == DP_TIMEOUT_SET && t->ms % 1000 == 0 ? " s" : "");
}

static void cli_show_settings(const struct cli_rules *cr)
{
	const struct dp_config *d = &cr->cur->dp, *b = &cr->base->dp;
	char v[16];

	printf("settings:\n");
	dp_duration_print(d->timeout_ms, v, sizeof(v));
	printf("  timeout          %s%s (no provisional response: the next gateway)%s\n", v,
	       d->timeout_ms && d->timeout_ms % 1000 == 0 ? " s" : "",
	       d->timeout_ms != b->timeout_ms ? "  [set from the CLI]" : "");
	dp_duration_print(d->ring_timeout_ms, v, sizeof(v));
	printf("  ring_timeout     %s%s (no final answer after a provisional: CANCEL)%s\n", v,
	       d->ring_timeout_ms && d->ring_timeout_ms % 1000 == 0 ? " s" : "",
	       d->ring_timeout_ms != b->ring_timeout_ms ? "  [set from the CLI]" : "");
	if (d->probe_interval_s)
		printf("  probe_interval   %u s%s\n", d->probe_interval_s,
		       d->probe_interval_s != b->probe_interval_s ? "  [set from the CLI]" : "");
	else
		printf("  probe_interval   off%s\n",
		       d->probe_interval_s != b->probe_interval_s ? "  [set from the CLI]" : "");
}

static int cli_route_show(const struct dp_config *d)
{
	printf("gateways:\n");
	if (!d->ngw)
		printf("  (none)\n");
	for (size_t i = 0; i < d->ngw; i++) {
		const struct dp_gateway *g = &d->gw[i];
		printf("  %-16s %s:%u %s%s", g->name, g->host, g->port ? g->port : 5060,
		       g->tcp ? "tcp" : "udp", g->probe ? "" : " (not probed)");
		if (g->cred.user[0])
			printf(" auth %s realm %s", g->cred.user, g->cred.realm);
		cli_show_timeout(" timeout", &g->timeout);
		cli_show_timeout(" ring_timeout", &g->ring_timeout);
		printf("%s\n", cli_origin(g->line));
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
		printf("%s\n", cli_origin(g->line));
	}
	printf("dialplan (callee numbers up to %u digits):\n", d->max_callee_digits);
	if (!d->nrules)
		printf("  (no rules)\n");
	for (size_t i = 0; i < d->nrules; i++)
		cli_route_print_rule(d, &d->rules[i]);
	return CLI_EXIT_OK;
}

static int cli_route_test(const struct dp_config *c, const char *number)
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
	if (dp_create(c, NULL, &d)) {
		fprintf(stderr, "route test: cannot build the dialplan\n");
		return CLI_EXIT_FAILURE;
	}
	if (dp_digits(num) > c->max_callee_digits) {
		printf("%s: more than %u digits: 404 Number too long\n", number,
		       c->max_callee_digits);
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
	cli_route_print_rule(c, dp_rule(d, rule));
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

/*
 * Changing gateways, groups and rules
 */

/* Applies the KEY=VALUE words of pos[from..] to g; a password hashes into its credentials. */
static int cli_gateway_words(struct cli_rules *cr, const struct cli_opts *o, int from,
			     struct dp_gateway *g, bool creds_changed)
{
	char err[200];
	char *pw = NULL;
	sv_t k, v;
	int ex;

	for (int i = from; i < o->npos; i++) {
		if (!cli_kv(o->pos[i], &k, &v)) {
			fprintf(stderr, "%s: '%s' is not KEY=VALUE\n", cr->cmd, o->pos[i]);
			return CLI_EXIT_USAGE;
		}
		if (sv_eq(k, SV("auth")) && sv_eq(v, SV("none"))) {
			memset(&g->cred, 0, sizeof(g->cred));
			continue;
		}
		if (sv_eq(k, SV("ha1")) || sv_eq(k, SV("ha1_sha256"))) {
			fprintf(stderr, "%s: give the gateway's password with --password\n",
				cr->cmd);
			return CLI_EXIT_USAGE;
		}
		if (dp_gateway_set(g, k, v, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", cr->cmd, err);
			return CLI_EXIT_USAGE;
		}
		if (sv_eq(k, SV("auth_user")) || sv_eq(k, SV("auth_realm")))
			creds_changed = true;
	}
	if (!g->host[0]) {
		fprintf(stderr, "%s: a gateway needs address=HOST\n", cr->cmd);
		return CLI_EXIT_USAGE;
	}
	if (!g->cred.user[0] != !g->cred.realm[0]) {
		fprintf(stderr, "%s: credentials need both auth_user and auth_realm\n", cr->cmd);
		return CLI_EXIT_USAGE;
	}
	if (o->password && !g->cred.user[0]) {
		fprintf(stderr, "%s: --password needs auth_user and auth_realm\n", cr->cmd);
		return CLI_EXIT_USAGE;
	}
	if (g->cred.user[0] && (creds_changed || o->password)) {
		/* the hashes cover user and realm: a change of either needs the password */
		ex = cli_password(o, cr->cmd, &pw);
		if (ex)
			return ex;
		dp_cred_hash(&g->cred, sv_cstr(pw));
		cli_password_free(pw);
	}
	return CLI_EXIT_OK;
}

/*
 * What every add/set/del of a named entry checks first: the name, and that
 * the entry exists (set, del) or does not (add). i is its index or -1.
 */
static int cli_entry_check(const struct cli_rules *cr, const char *what, const char *name,
			   const char *verb, int i)
{
	if (!cli_name_ok(name)) {
		fprintf(stderr, "%s: '%s' is not a name (1 to %d letters, digits, '-', '_', '.')\n",
			cr->cmd, name, DP_NAME_MAX - 1);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(verb, "add") == 0 && i >= 0) {
		fprintf(stderr, "%s: %s '%s' already exists (set changes it)\n", cr->cmd, what,
			name);
		return CLI_EXIT_EXISTS;
	}
	if (strcmp(verb, "add") != 0 && i < 0) {
		fprintf(stderr, "%s: no %s named '%s'\n", cr->cmd, what, name);
		return CLI_EXIT_NOT_FOUND;
	}
	return CLI_EXIT_OK;
}

static int cli_gateway(struct cli_rules *cr, const struct cli_opts *o, const char *verb)
{
	struct dp_config *d = &cr->cur->dp;
	const char *name = o->pos[0];
	int i = dp_config_find_gateway(d, name), ex;
	struct dp_gateway g;

	if ((ex = cli_entry_check(cr, "gateway", name, verb, i)))
		return ex;
	if (strcmp(verb, "del") == 0) {
		memmove(&d->gw[i], &d->gw[i + 1], (d->ngw - (size_t)i - 1) * sizeof(g));
		d->ngw--;
		if ((ex = cli_rules_check(cr)))
			return ex;
		return cli_rules_saved(
		    cr,
		    rules_forget(cr->st, STORE_REC_GATEWAY, name,
				 dp_config_find_gateway(&cr->base->dp, name) >= 0),
		    "the gateway");
	}
	if (i < 0 && d->ngw >= DP_MAX_GATEWAYS) {
		fprintf(stderr, "%s: there are %d gateways already\n", cr->cmd, DP_MAX_GATEWAYS);
		return CLI_EXIT_USAGE;
	}
	if (i >= 0) {
		g = d->gw[i];
	} else {
		memset(&g, 0, sizeof(g));
		g.probe = true;
		strcpy(g.name, name);
	}
	g.line = 0;
	if ((ex = cli_gateway_words(cr, o, 1, &g, false)))
		return ex;
	d->gw[i >= 0 ? (size_t)i : d->ngw++] = g;
	if ((ex = cli_rules_check(cr)))
		return ex;
	return cli_rules_saved(cr, rules_save_gateway(cr->st, &g), "the gateway");
}

static int cli_group(struct cli_rules *cr, const struct cli_opts *o, const char *verb)
{
	struct dp_config *d = &cr->cur->dp;
	const char *name = o->pos[0];
	int i = dp_config_find_group(d, name), ex;
	struct dp_group g;
	char err[200];

	if ((ex = cli_entry_check(cr, "gateway group", name, verb, i)))
		return ex;
	if (strcmp(verb, "del") == 0) {
		memmove(&d->grp[i], &d->grp[i + 1], (d->ngrp - (size_t)i - 1) * sizeof(g));
		d->ngrp--;
		if ((ex = cli_rules_check(cr)))
			return ex;
		return cli_rules_saved(cr,
				       rules_forget(cr->st, STORE_REC_GWGROUP, name,
						    dp_config_find_group(&cr->base->dp, name) >= 0),
				       "the group");
	}
	if (o->npos < 2) {
		fprintf(stderr, "%s: name the group's gateways: GATEWAY[:PRIORITY[:WEIGHT]]...\n",
			cr->cmd);
		return CLI_EXIT_USAGE;
	}
	if (o->npos - 1 > DP_MAX_MEMBERS) {
		fprintf(stderr, "%s: a group has at most %d gateways\n", cr->cmd, DP_MAX_MEMBERS);
		return CLI_EXIT_USAGE;
	}
	if (i < 0 && d->ngrp >= DP_MAX_GROUPS) {
		fprintf(stderr, "%s: there are %d groups already\n", cr->cmd, DP_MAX_GROUPS);
		return CLI_EXIT_USAGE;
	}
	memset(&g, 0, sizeof(g));
	strcpy(g.name, name);
	for (int k = 1; k < o->npos; k++) {
		if (dp_member_parse(sv_cstr(o->pos[k]), &g.m[g.n++], err, sizeof(err))) {
			fprintf(stderr, "%s: '%s': %s\n", cr->cmd, o->pos[k], err);
			return CLI_EXIT_USAGE;
		}
	}
	d->grp[i >= 0 ? (size_t)i : d->ngrp++] = g;
	if ((ex = cli_rules_check(cr)))
		return ex;
	return cli_rules_saved(cr, rules_save_group(cr->st, &g), "the group");
}

static int cli_rule_words(struct cli_rules *cr, const struct cli_opts *o, struct dp_rule *r)
{
	bool ops_given = false;
	char err[200];
	sv_t k, v;

	for (int i = 1; i < o->npos; i++) {
		if (!cli_kv(o->pos[i], &k, &v)) {
			fprintf(stderr, "%s: '%s' is not KEY=VALUE\n", cr->cmd, o->pos[i]);
			return CLI_EXIT_USAGE;
		}
		bool is_op = !sv_eq(k, SV("route")) && !sv_eq(k, SV("redirect"));
		if (is_op && !ops_given) {
			r->nops = 0; /* the steps given replace the rule's */
			ops_given = true;
		}
		if (sv_eq(k, SV("transform")) && sv_eq(v, SV("none")))
			continue;
		if (dp_rule_set(r, k, v, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", cr->cmd, err);
			return CLI_EXIT_USAGE;
		}
	}
	if (!r->nroute) {
		fprintf(stderr, "%s: a rule needs route=GROUP[,GROUP...]\n", cr->cmd);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

static int cli_rule(struct cli_rules *cr, const struct cli_opts *o, const char *verb)
{
	struct dp_config *d = &cr->cur->dp;
	struct dp_rule *r = calloc(1, sizeof(*r));
	char key[DP_REGEX_MAX + 2], err[200];
	int i, ex;

	if (!r)
		return CLI_EXIT_FAILURE;
	if (dp_rule_match_parse(sv_cstr(o->pos[0]), r, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", cr->cmd, err);
		ex = CLI_EXIT_USAGE;
		goto out;
	}
	dp_rule_key(r, key, sizeof(key));
	i = rules_find_rule(d, key);
	ex = CLI_EXIT_OK;
	if (strcmp(verb, "add") == 0 && i >= 0) {
		fprintf(stderr, "%s: a rule for %s exists already (route rule set changes it)\n",
			cr->cmd, key);
		ex = CLI_EXIT_EXISTS;
	} else if (strcmp(verb, "add") != 0 && i < 0) {
		fprintf(stderr, "%s: no rule for %s\n", cr->cmd, key);
		ex = CLI_EXIT_NOT_FOUND;
	} else if (i < 0 && d->nrules >= DP_MAX_RULES) {
		fprintf(stderr, "%s: there are %d rules already\n", cr->cmd, DP_MAX_RULES);
		ex = CLI_EXIT_USAGE;
	}
	if (ex)
		goto out;
	if (strcmp(verb, "del") == 0) {
		memmove(&d->rules[i], &d->rules[i + 1], (d->nrules - (size_t)i - 1) * sizeof(*r));
		d->nrules--;
		ex = cli_rules_check(cr);
		if (!ex)
			ex = cli_rules_saved(cr,
					     rules_forget(cr->st, STORE_REC_DPRULE, key,
							  rules_find_rule(&cr->base->dp, key) >= 0),
					     "the rule");
		goto out;
	}
	if (i >= 0)
		*r = d->rules[i];
	r->line = 0;
	if ((ex = cli_rule_words(cr, o, r)))
		goto out;
	d->rules[i >= 0 ? (size_t)i : d->nrules++] = *r;
	ex = cli_rules_check(cr);
	if (!ex)
		ex = cli_rules_saved(cr, rules_save_rule(cr->st, r), "the rule");
out:
	free(r);
	return ex;
}

static int cli_redirect(struct cli_rules *cr, const struct cli_opts *o, const char *verb)
{
	struct rules_conf *c = cr->cur;
	char norm[sizeof(c->redirect_domains[0])];
	int i;

	if (strcmp(verb, "set") == 0 || o->npos != 1) {
		fprintf(stderr, "%s: usage: route redirect add|del DOMAIN|*\n", cr->cmd);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(o->pos[0], "*") == 0) {
		strcpy(norm, "*");
	} else if (cfg_domain_norm(o->pos[0], norm, sizeof(norm))) {
		fprintf(stderr, "%s: '%s' is not a host name or IP address\n", cr->cmd, o->pos[0]);
		return CLI_EXIT_USAGE;
	}
	i = rules_find_redirect(c, norm);
	if (strcmp(verb, "add") == 0) {
		if (i >= 0) {
			fprintf(stderr, "%s: %s is answered with 302 already\n", cr->cmd, norm);
			return CLI_EXIT_EXISTS;
		}
		if (c->nredirect >= CFG_MAX_DOMAINS) {
			fprintf(stderr, "%s: there are %d redirect domains already\n", cr->cmd,
				CFG_MAX_DOMAINS);
			return CLI_EXIT_USAGE;
		}
		return cli_rules_saved(cr, rules_save_redirect(cr->st, norm), "the domain");
	}
	if (i < 0) {
		fprintf(stderr, "%s: %s is not a redirect domain\n", cr->cmd, norm);
		return CLI_EXIT_NOT_FOUND;
	}
	return cli_rules_saved(cr,
			       rules_forget(cr->st, STORE_REC_REDIRECT, norm,
					    rules_find_redirect(cr->base, norm) >= 0),
			       "the domain");
}

/*
 * `route set KEY=VALUE...`: the defaults of every gateway and the probe
 * interval. Every word is checked before anything is written.
 */
static int cli_route_settings(int argc, char **argv)
{
	const char *cmd = "route set";
	char err[200];
	struct cli_opts o;
	struct cli_rules cr;
	const char *keys[CLI_MAX_POS];
	bool reset[CLI_MAX_POS];
	int ex, rc = 0;

	ex = cli_parse(argc - 1, argv + 1, cmd, CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_route_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, 1, CLI_MAX_POS, cmd);
	if (ex)
		return ex;
	ex = cli_rules_open(&o, cmd, &cr);
	for (int i = 0; !ex && i < o.npos; i++) {
		char fv[32];
		sv_t k, v;
		if (!cli_kv(o.pos[i], &k, &v)) {
			fprintf(stderr, "%s: '%s' is not KEY=VALUE\n", cmd, o.pos[i]);
			ex = CLI_EXIT_USAGE;
			break;
		}
		keys[i] = dp_config_key(k);
		reset[i] = sv_eq(v, SV("default"));
		if (reset[i] && keys[i]) {
			/* back to the configuration file's value */
			dp_config_print(&cr.base->dp, keys[i], fv, sizeof(fv));
			v = sv_cstr(fv);
		}
		if (dp_config_set(&cr.cur->dp, k, v, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", cmd, err);
			ex = CLI_EXIT_USAGE;
		}
	}
	for (int i = 0; !ex && !rc && i < o.npos; i++)
		rc = reset[i] ? rules_forget(cr.st, STORE_REC_DPSETTING, keys[i], false)
			      : rules_save_dp_setting(cr.st, &cr.cur->dp, keys[i]);
	if (!ex)
		ex = cli_rules_saved(&cr, rc, "the setting");
	cli_rules_close(&cr);
	return ex;
}

/* `route gateway|group|rule|redirect add|set|del ...` */
static int cli_route_change(int argc, char **argv)
{
	const char *what = argv[1], *verb = argc > 2 ? argv[2] : "";
	char cmd[64];
	struct cli_opts o;
	struct cli_rules cr;
	bool gw = strcmp(what, "gateway") == 0;
	int ex;

	snprintf(cmd, sizeof(cmd), "route %s %s", what, verb);
	if (strcmp(verb, "add") != 0 && strcmp(verb, "set") != 0 && strcmp(verb, "del") != 0) {
		fprintf(stderr, "route %s: %s (try --help)\n", what,
			strcmp(what, "redirect") == 0 ? "add or del" : "add, set or del");
		return CLI_EXIT_USAGE;
	}
	ex = cli_parse(argc - 2, argv + 2, cmd, CLI_OPT_STORE | (gw ? CLI_OPT_PASSWORD : 0), &o);
	if (!ex && o.help) {
		cli_route_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, 1, strcmp(verb, "del") == 0 ? 1 : CLI_MAX_POS, cmd);
	if (ex)
		return ex;
	ex = cli_rules_open(&o, cmd, &cr);
	if (!ex && strcmp(what, "redirect") == 0)
		ex = cli_redirect(&cr, &o, verb);
	else if (!ex && gw)
		ex = cli_gateway(&cr, &o, verb);
	else if (!ex && strcmp(what, "group") == 0)
		ex = cli_group(&cr, &o, verb);
	else if (!ex)
		ex = cli_rule(&cr, &o, verb);
	cli_rules_close(&cr);
	return ex;
}

int cli_route(int argc, char **argv)
{
	struct cli_opts o;
	struct cli_rules cr;
	bool test;
	int ex;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_route_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "gateway") == 0 || strcmp(argv[1], "group") == 0 ||
	    strcmp(argv[1], "rule") == 0 || strcmp(argv[1], "redirect") == 0)
		return cli_route_change(argc, argv);
	if (strcmp(argv[1], "set") == 0)
		return cli_route_settings(argc, argv);
	test = strcmp(argv[1], "test") == 0;
	if (!test && strcmp(argv[1], "show") != 0) {
		fprintf(stderr, "route: unknown command '%s' (try --help)\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	ex = cli_parse(argc - 1, argv + 1, test ? "route test" : "route show", CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_route_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, test ? 1 : 0, test ? 1 : 0,
				   test ? "route test" : "route show");
	if (ex)
		return ex;
	ex = cli_rules_open(&o, test ? "route test" : "route show", &cr);
	if (!ex)
		ex = cli_rules_whole(&cr);
	if (!ex)
		ex = test ? cli_route_test(&cr.cur->dp, o.pos[0]) : cli_route_show(&cr.cur->dp);
	if (!ex && !test) {
		cli_show_redirects(&cr);
		cli_show_settings(&cr);
	}
	cli_rules_close(&cr);
	return ex;
}
