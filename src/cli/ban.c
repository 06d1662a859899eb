/*
 * ban.c - `switchboard ban list|del`: the flood protection's bans, which live
 * in the running server, seen and lifted through the store. The server
 * writes each ban there (a record of kind STORE_REC_BAN) within a second of
 * starting it; deleting the record makes the server lift the ban at its next
 * look at the database (a quarter of a second).
 */
#include "cli/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/flood.h"
#include "store/store.h"

static void cli_ban_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard ban list [-c FILE | --db PATH]\n"
		"       switchboard ban del IP|all [-c FILE | --db PATH]\n"
		"Lists the sources the flood protection banned (an IPv4 address or an IPv6 /64),\n"
		"or lifts a ban (IP: an address, or an IPv6 /64), or every ban.\n");
}

struct cli_ban_list {
	time_t now;
	size_t n;
};

static int cli_ban_row(void *arg, const struct store_record *r)
{
	struct cli_ban_list *l = arg;
	char since[32] = "-";
	const char *lv = strstr(r->meta, "level=");
	time_t t = (time_t)r->seq;
	struct tm tm;

	if (r->expires <= (int64_t)l->now)
		return 0; /* ended: the server deletes it soon */
	if (r->seq > 0 && gmtime_r(&t, &tm))
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (l->n++ == 0)
		printf("%-40s  %-20s  %-9s  %s\n", "SOURCE", "SINCE", "SECONDS", "BAN");
	printf("%-40s  %-20s  %-9" PRId64 "  %s\n", r->key, since, r->expires - (int64_t)l->now,
	       lv ? lv + 6 : "1");
	return 0;
}

static int cli_ban_list(struct store *s)
{
	struct cli_ban_list l = {.now = time(NULL)};
	int rc = store_record_list(s, STORE_REC_BAN, NULL, cli_ban_row, &l);

	if (rc) {
		fprintf(stderr, "ban list: %s\n", store_errmsg(s));
		return CLI_EXIT_FAILURE;
	}
	if (l.n == 0)
		printf("no bans\n");
	return CLI_EXIT_OK;
}

struct cli_ban_keys {
	char **keys;
	size_t n, cap;
	int err;
};

static int cli_ban_key(void *arg, const char *key, int64_t seq)
{
	struct cli_ban_keys *k = arg;
	char **grown;

	(void)seq;
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 16;
		grown = realloc(k->keys, k->cap * sizeof(*grown));
		if (!grown)
			return k->err = ENOMEM;
		k->keys = grown;
	}
	k->keys[k->n] = strdup(key);
	if (!k->keys[k->n])
		return k->err = ENOMEM;
	k->n++;
	return 0;
}

static int cli_ban_del_all(struct store *s)
{
	struct cli_ban_keys k = {0};
	int ex = CLI_EXIT_OK, rc;

	rc = store_record_keys(s, STORE_REC_BAN, cli_ban_key, &k);
	if (!rc && !k.err)
		rc = store_begin(s);
	for (size_t i = 0; i < k.n && !rc && !k.err; i++) {
		rc = store_record_del(s, STORE_REC_BAN, k.keys[i]);
		if (rc == ENOENT)
			rc = 0;
	}
	if (!rc && !k.err)
		rc = store_commit(s);
	if (rc || k.err) {
		fprintf(stderr, "ban del: %s\n", k.err ? "out of memory" : store_errmsg(s));
		ex = CLI_EXIT_FAILURE;
		goto out;
	}
	printf("%zu ban%s lifted\n", k.n, k.n == 1 ? "" : "s");
out:
	for (size_t i = 0; i < k.n; i++)
		free(k.keys[i]);
	free(k.keys);
	return ex;
}

static int cli_ban_del(struct store *s, const char *what)
{
	struct flood_key key;
	char text[FLOOD_KEY_TEXT];
	int rc;

	if (strcmp(what, "all") == 0)
		return cli_ban_del_all(s);
	if (flood_key_parse(what, &key)) {
		fprintf(stderr, "ban del: '%s' is not an IP address or an IPv6 /64\n", what);
		return CLI_EXIT_USAGE;
	}
	flood_key_format(&key, text);
	rc = store_record_del(s, STORE_REC_BAN, text);
	if (rc == ENOENT) {
		fprintf(stderr, "ban del: %s is not banned\n", text);
		return CLI_EXIT_NOT_FOUND;
	}
	if (rc) {
		fprintf(stderr, "ban del: %s\n", store_errmsg(s));
		return CLI_EXIT_FAILURE;
	}
	printf("ban on %s lifted\n", text);
	return CLI_EXIT_OK;
}

int cli_ban(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;
	struct store *s = NULL;
	struct cli_opts o;
	char cmd[32];
	bool list;
	int ex;

	if (!verb || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
		cli_ban_usage(verb ? stdout : stderr);
		return verb ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	list = strcmp(verb, "list") == 0;
	if (!list && strcmp(verb, "del") != 0) {
		fprintf(stderr, "ban: unknown command '%s' (try --help)\n", verb);
		return CLI_EXIT_USAGE;
	}
	snprintf(cmd, sizeof(cmd), "ban %s", verb);
	ex = cli_parse(argc - 1, argv + 1, cmd, CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_ban_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, list ? 0 : 1, list ? 0 : 1, cmd);
	if (!ex)
		ex = cli_open_store(o.config, o.db, &s);
	if (!ex)
		ex = list ? cli_ban_list(s) : cli_ban_del(s, o.pos[0]);
	store_close(s);
	return ex;
}
