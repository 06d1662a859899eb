/*
 * user.c - `switchboard user ...`: provisioning subscribers without SQL.
 *
 * Passwords are hashed by the store and never written anywhere; `--password -`
 * reads the password from standard input so it does not show up in `ps` or
 * in the shell history.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/settings.h"
#include "store/store.h"

struct cli_user_cmd {
	const char *name;
	int (*run)(const struct cli_opts *o, const char *cmd);
	unsigned flags;
	int min_args, max_args;
};

static void cli_user_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard user add USER@DOMAIN --password PW|- [OPTIONS]\n"
		"       switchboard user passwd USER@DOMAIN --password PW|- [OPTIONS]\n"
		"       switchboard user del USER@DOMAIN [OPTIONS]\n"
		"       switchboard user list [DOMAIN] [OPTIONS]\n"
		"       switchboard user import FILE|- [OPTIONS]\n"
		"       switchboard user set USER[@DOMAIN] KEY=VALUE... [OPTIONS]\n"
		"       switchboard user show USER[@DOMAIN] [OPTIONS]\n"
		"\n"
		"  -p, --password PW   the password; '-' reads one line from standard input\n"
		"  -c, --config FILE   take the database path from this configuration file\n"
		"      --db PATH       use this database (overrides --config)\n"
		"  -h, --help          show this help\n"
		"\n"
		"import reads CSV lines 'user,domain,password' (a header line, blank lines and\n"
		"'#' comments are skipped) in one transaction: all lines or none. Existing\n"
		"users get the new password.\n"
		"\n"
		"set changes call settings (an empty VALUE clears one); the running server\n"
		"applies them to the next call:\n"
		"  ring=parallel|sequential|q-value   order=desk:15,pc:10,mobile:20\n"
		"  ring_time=SECONDS   stop_on_busy=yes|no   noanswer_after=SECONDS\n"
		"  forward_always=TARGET   forward_busy=TARGET   forward_noanswer=TARGET\n"
		"  forward_unregistered=TARGET   (TARGET: user, user@domain, number, sip: URI)\n"
		"  block_callers=P,..  allow_callers=P,..  allow_only=yes|no  (incoming calls)\n"
		"  bar=CLASS,..  (barring.classes of -c FILE)  block_callees=P,..\n"
		"  allow_callees=P,..,internal  allow_callees_only=yes|no  (outgoing calls)\n"
		"  allow_sources=NET,..  (where the credentials count)  block_sources=NET,..\n"
		"  redirect=yes|no   (calls answered 302 with the registered contacts)\n"
		"show prints every setting and each registered terminal with its type.\n"
		"A bare USER is in the one domain of -c FILE.\n"
		"Exit status: 0 ok, 1 error, 2 bad arguments, 3 bad configuration,\n"
		"4 no such user, 5 user already exists.\n");
}

/* "alice@example.com" -> user, domain; the store checks what they contain. */
static int cli_split_aor(const char *arg, const char *cmd, sv_t *user, sv_t *domain)
{
	const char *at = strchr(arg, '@');

	if (!at) {
		fprintf(stderr, "%s %s: expected USER@DOMAIN\n", cmd, arg);
		return CLI_EXIT_USAGE;
	}
	*user = sv_make(arg, (size_t)(at - arg));
	*domain = sv_cstr(at + 1);
	return CLI_EXIT_OK;
}

/*
 * USER@DOMAIN, or a bare USER when -c FILE serves exactly one domain (the
 * phone-book way of naming people: `user set alice ring=sequential`).
 * domain_buf holds that domain.
 */
static int cli_split_user(const struct cli_opts *o, const char *cmd, sv_t *user, sv_t *domain,
			  char *domain_buf, size_t len)
{
	struct cfg *c;
	struct cfg_error err;
	int ex = CLI_EXIT_OK;

	if (strchr(o->pos[0], '@') || !o->config)
		return cli_split_aor(o->pos[0], cmd, user, domain);
	c = calloc(1, sizeof(*c));
	if (!c)
		return CLI_EXIT_FAILURE;
	cfg_defaults(c);
	if (cfg_load_file(c, o->config, &err)) {
		cli_print_cfg_error(o->config, &err);
		ex = CLI_EXIT_CONFIG;
	} else if (c->ndomains != 1) {
		fprintf(stderr, "%s %s: expected USER@DOMAIN (%s serves %zu domains)\n", cmd,
			o->pos[0], o->config, c->ndomains);
		ex = CLI_EXIT_USAGE;
	} else {
		snprintf(domain_buf, len, "%s", c->domains[0]);
		*user = sv_cstr(o->pos[0]);
		*domain = sv_cstr(domain_buf);
	}
	free(c);
	return ex;
}

/* Prints "user add alice@example.com: user already exists" and maps the errno. */
static int cli_result(const char *cmd, const char *what, struct store *s, int rc)
{
	if (!rc)
		return CLI_EXIT_OK;
	if (*what)
		fprintf(stderr, "%s %s: %s\n", cmd, what, store_errmsg(s));
	else
		fprintf(stderr, "%s: %s\n", cmd, store_errmsg(s));
	return cli_exit_for(rc);
}

/* add and passwd: the same steps around a different store call. */
static int cli_user_set(const struct cli_opts *o, const char *cmd,
			int (*op)(struct store *, sv_t, sv_t, sv_t))
{
	struct store *s = NULL;
	sv_t user, domain;
	char *pw = NULL;
	int ex;

	ex = cli_split_aor(o->pos[0], cmd, &user, &domain);
	if (!ex)
		ex = cli_password(o, cmd, &pw);
	if (!ex)
		ex = cli_open_store(o->config, o->db, &s);
	if (!ex)
		ex = cli_result(cmd, o->pos[0], s, op(s, user, domain, sv_cstr(pw)));
	store_close(s);
	cli_password_free(pw);
	return ex;
}

static int cli_user_add(const struct cli_opts *o, const char *cmd)
{
	return cli_user_set(o, cmd, store_user_add);
}

static int cli_user_passwd(const struct cli_opts *o, const char *cmd)
{
	return cli_user_set(o, cmd, store_user_passwd);
}

static int cli_user_del(const struct cli_opts *o, const char *cmd)
{
	struct store *s = NULL;
	sv_t user, domain;
	int ex;

	ex = cli_split_aor(o->pos[0], cmd, &user, &domain);
	if (!ex)
		ex = cli_open_store(o->config, o->db, &s);
	if (!ex)
		ex = cli_result(cmd, o->pos[0], s, store_user_del(s, user, domain));
	store_close(s);
	return ex;
}

static int cli_user_print(void *arg, const struct store_user *u)
{
	(void)arg;
	printf("%s@%s\n", u->user, u->domain);
	return 0;
}

static int cli_user_list(const struct cli_opts *o, const char *cmd)
{
	const char *domain = o->npos ? o->pos[0] : "";
	struct store *s = NULL;
	int ex;

	ex = cli_open_store(o->config, o->db, &s);
	if (!ex)
		ex = cli_result(cmd, domain, s,
				store_user_list(s, sv_cstr(domain), cli_user_print, NULL));
	store_close(s);
	return ex;
}

static int cli_import_from(struct store *s, FILE *in, const char *name, const char *cmd)
{
	size_t count = 0, bad_line = 0;
	int rc = store_user_import_csv(s, in, &count, &bad_line);

	if (rc && bad_line) {
		fprintf(stderr, "%s:%zu: %s\n", name, bad_line, store_errmsg(s));
		return CLI_EXIT_FAILURE;
	}
	if (rc) {
		fprintf(stderr, "%s %s: %s\n", cmd, name, store_errmsg(s));
		return CLI_EXIT_FAILURE;
	}
	printf("imported %zu users\n", count);
	return CLI_EXIT_OK;
}

static int cli_user_import(const struct cli_opts *o, const char *cmd)
{
	bool use_stdin = strcmp(o->pos[0], "-") == 0;
	const char *name = use_stdin ? "<stdin>" : o->pos[0];
	struct store *s = NULL;
	FILE *in = use_stdin ? stdin : fopen(o->pos[0], "r");
	int ex;

	if (!in) {
		fprintf(stderr, "%s %s: %s\n", cmd, name, strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	ex = cli_open_store(o->config, o->db, &s);
	if (!ex)
		ex = cli_import_from(s, in, name, cmd);
	store_close(s);
	if (!use_stdin)
		fclose(in);
	return ex;
}

/*
 * The user named by the first argument, opened store and parsed settings: what
 * set and show both start from. *s is to be closed by the caller.
 */
static int cli_user_settings_of(const struct cli_opts *o, const char *cmd, struct store **s,
				struct store_user *u, struct uset *set)
{
	sv_t user, domain;
	char why[256], dbuf[STORE_DOMAIN_MAX];
	int ex, rc;

	*s = NULL;
	ex = cli_split_user(o, cmd, &user, &domain, dbuf, sizeof(dbuf));
	if (!ex)
		ex = cli_open_store(o->config, o->db, s);
	if (ex)
		return ex;
	rc = store_user_get(*s, user, domain, u);
	if (rc)
		return cli_result(cmd, o->pos[0], *s, rc);
	uset_init(set);
	if (uset_parse(set, sv_cstr(u->settings), why, sizeof(why)))
		fprintf(stderr, "%s %s: stored settings partly unreadable (%s)\n", cmd, o->pos[0],
			why);
	return CLI_EXIT_OK;
}

/*
 * bar= names classes of the configuration's barring.classes: a word naming one
 * it does not have is refused here (the server would bar every call it judges).
 */
static int cli_user_check_classes(const struct cli_opts *o, const char *cmd)
{
	struct cfg *c = NULL;
	struct cfg_error err;
	int ex = CLI_EXIT_OK;

	for (int i = 1; i < o->npos; i++) {
		sv_t word = sv_cstr(o->pos[i]), rest, name;
		ptrdiff_t comma;

		if (!sv_istarts(word, SV("bar=")) || word.len == 4)
			continue;
		if (!c) {
			c = malloc(sizeof(*c));
			if (!c) {
				fprintf(stderr, "%s: out of memory\n", cmd);
				return CLI_EXIT_FAILURE;
			}
			cfg_defaults(c);
			if (o->config && cfg_load_file(c, o->config, &err)) {
				cli_print_cfg_error(o->config, &err);
				ex = CLI_EXIT_CONFIG;
				goto out;
			}
		}
		rest = sv_make(word.p + 4, word.len - 4);
		while (rest.len) {
			comma = sv_find(rest, ',');
			name = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
			rest = comma < 0
				   ? sv_make(rest.p + rest.len, 0)
				   : sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
			if (lists_bar_class_find(&c->barring, name))
				continue;
			fprintf(stderr, "%s %s: bar: '%.*s' is not a class of barring.classes", cmd,
				o->pos[0], SV_ARG(name));
			if (!o->config)
				fprintf(stderr,
					" (give the server's configuration with -c FILE)\n");
			else if (c->barring.nclasses == 0)
				fprintf(stderr, " in %s (it has none)\n", o->config);
			else {
				fprintf(stderr, " in %s (", o->config);
				for (size_t k = 0; k < c->barring.nclasses; k++)
					fprintf(stderr, "%s%s", k ? ", " : "",
						c->barring.classes[k].name);
				fprintf(stderr, ")\n");
			}
			ex = CLI_EXIT_USAGE;
			goto out;
		}
	}
out:
	free(c);
	return ex;
}

/* Every word is checked before anything is written: all of them apply, or none. */
static int cli_user_set_settings(const struct cli_opts *o, const char *cmd)
{
	struct store *s = NULL;
	struct store_user u;
	struct uset set;
	char line[STORE_SETTINGS_MAX], why[256];
	int ex;

	ex = cli_user_settings_of(o, cmd, &s, &u, &set);
	if (ex)
		goto out;
	for (int i = 1; i < o->npos; i++) {
		if (uset_apply(&set, sv_cstr(o->pos[i]), why, sizeof(why))) {
			fprintf(stderr, "%s %s: %s\n", cmd, o->pos[0], why);
			ex = CLI_EXIT_USAGE;
			goto out;
		}
	}
	ex = cli_user_check_classes(o, cmd);
	if (ex)
		goto out;
	if (uset_format(&set, line, sizeof(line))) {
		fprintf(stderr, "%s %s: settings too long\n", cmd, o->pos[0]);
		ex = CLI_EXIT_USAGE;
		goto out;
	}
	ex = cli_result(cmd, o->pos[0], s,
			store_user_settings(s, sv_cstr(u.user), sv_cstr(u.domain), sv_cstr(line)));
out:
	store_close(s);
	return ex;
}

static int cli_user_show(const struct cli_opts *o, const char *cmd)
{
	struct store *s = NULL;
	struct store_user u;
	struct uset set;
	char aor[STORE_USER_MAX + STORE_DOMAIN_MAX + 2];
	int ex;

	ex = cli_user_settings_of(o, cmd, &s, &u, &set);
	if (ex)
		goto out;
	snprintf(aor, sizeof(aor), "%s@%s", u.user, u.domain);
	printf("user %s\nsettings:\n", aor);
	uset_print(&set, stdout);
	printf("bindings:\n");
	ex = cli_reg_show(s, aor, cmd);
out:
	store_close(s);
	return ex;
}

static const struct cli_user_cmd cli_user_cmds[] = {
    {"add", cli_user_add, CLI_OPT_STORE | CLI_OPT_PASSWORD, 1, 1},
    {"passwd", cli_user_passwd, CLI_OPT_STORE | CLI_OPT_PASSWORD, 1, 1},
    {"del", cli_user_del, CLI_OPT_STORE, 1, 1},
    {"list", cli_user_list, CLI_OPT_STORE, 0, 1},
    {"import", cli_user_import, CLI_OPT_STORE, 1, 1},
    {"set", cli_user_set_settings, CLI_OPT_STORE, 2, CLI_MAX_POS},
    {"show", cli_user_show, CLI_OPT_STORE, 1, 1},
};

static const struct cli_user_cmd *cli_user_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cli_user_cmds) / sizeof(cli_user_cmds[0]); i++) {
		if (strcmp(cli_user_cmds[i].name, name) == 0)
			return &cli_user_cmds[i];
	}
	return NULL;
}

static bool cli_is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

int cli_user(int argc, char **argv)
{
	const struct cli_user_cmd *uc;
	struct cli_opts o;
	char cmd[32];
	int ex;

	if (argc < 2 || cli_is_help(argv[1])) {
		cli_user_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	uc = cli_user_find(argv[1]);
	if (!uc) {
		fprintf(stderr, "user: unknown command '%s' (try --help)\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	snprintf(cmd, sizeof(cmd), "user %s", uc->name);
	ex = cli_parse(argc - 1, argv + 1, cmd, uc->flags, &o);
	if (!ex && o.help) {
		cli_user_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, uc->min_args, uc->max_args, cmd);
	return ex ? ex : uc->run(&o, cmd);
}
