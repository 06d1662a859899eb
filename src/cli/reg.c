/*
 * reg.c - `switchboard reg list`: shows the location table as a person wants
 * to read it (time left instead of a Unix time, q as 0.0-1.0, transport
 * instead of the raw source address), to answer "is this phone registered?"
 * without opening the database by hand.
 */
#include "cli/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/terminal.h"
#include "store/store.h"

#define CLI_REG_NCOLS 7

/* One table row, every cell already formatted. */
struct cli_reg_row {
	char *cell[CLI_REG_NCOLS];
};

struct cli_reg_table {
	struct cli_reg_row *rows;
	size_t n, cap;
	size_t width[CLI_REG_NCOLS];
	time_t now;
	int err;
};

static const char *const cli_reg_header[CLI_REG_NCOLS] = {
    "AOR", "CONTACT", "EXPIRES", "Q", "TRANSPORT", "TERMINAL", "USER-AGENT",
};

static void cli_reg_usage(FILE *to)
{
	fprintf(to, "usage: switchboard reg list [AOR] [-c FILE | --db PATH]\n"
		    "Lists the registered contacts, of one address of record or of all.\n");
}

/* 1000 -> "1.0", 500 -> "0.5", 333 -> "0.333" */
static void cli_reg_q(unsigned q, char *out, size_t size)
{
	int n = snprintf(out, size, "%u.%03u", q / 1000, q % 1000);

	while (n > 3 && out[n - 1] == '0')
		out[--n] = '\0';
}

/* "udp:192.0.2.1:5060" -> "UDP"; "" -> "-" */
static void cli_reg_transport(const char *received, char *out, size_t size)
{
	size_t n = strcspn(received, ":");

	if (n == 0 || received[n] != ':' || n >= size) {
		snprintf(out, size, "-");
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(received[i] >= 'a' && received[i] <= 'z' ? received[i] - 32
									 : received[i]);
	out[n] = '\0';
}

static int cli_reg_format(const struct store_binding *b, time_t now, struct cli_reg_row *r)
{
	char expires[32], q[16], transport[16];

	if (b->expires > (int64_t)now)
		snprintf(expires, sizeof(expires), "%" PRId64, b->expires - (int64_t)now);
	else
		snprintf(expires, sizeof(expires), "expired");
	cli_reg_q(b->q, q, sizeof(q));
	cli_reg_transport(b->received, transport, sizeof(transport));
	r->cell[0] = strdup(b->aor);
	r->cell[1] = strdup(b->contact);
	r->cell[2] = strdup(expires);
	r->cell[3] = strdup(q);
	r->cell[4] = strdup(transport);
	r->cell[5] = strdup(term_name((enum term_type)(b->flags & 7)));
	r->cell[6] = strdup(b->user_agent[0] ? b->user_agent : "-");
	for (int i = 0; i < CLI_REG_NCOLS; i++) {
		if (!r->cell[i])
			return ENOMEM;
	}
	return 0;
}

static void cli_reg_free(struct cli_reg_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		for (int c = 0; c < CLI_REG_NCOLS; c++)
			free(t->rows[i].cell[c]);
	}
	free(t->rows);
}

static int cli_reg_add(void *arg, const struct store_binding *b)
{
	struct cli_reg_table *t = arg;
	struct cli_reg_row *grown;

	/* an expired binding routes nothing; the server drops it from the store soon */
	if (b->expires <= (int64_t)time(NULL))
		return 0;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		grown = realloc(t->rows, t->cap * sizeof(*grown));
		if (!grown)
			return t->err = ENOMEM;
		t->rows = grown;
	}
	t->rows[t->n] = (struct cli_reg_row){0};
	if (cli_reg_format(b, t->now, &t->rows[t->n++]))
		return t->err = ENOMEM;
	for (int c = 0; c < CLI_REG_NCOLS; c++) {
		size_t w = strlen(t->rows[t->n - 1].cell[c]);
		if (w > t->width[c])
			t->width[c] = w;
	}
	return 0;
}

static void cli_reg_print_row(const struct cli_reg_table *t, const char *const *cell)
{
	for (int c = 0; c < CLI_REG_NCOLS - 1; c++)
		printf("%-*s  ", (int)t->width[c], cell[c]);
	printf("%s\n", cell[CLI_REG_NCOLS - 1]);
}

static void cli_reg_print(const struct cli_reg_table *t)
{
	if (t->n == 0) {
		printf("no bindings\n");
		return;
	}
	cli_reg_print_row(t, cli_reg_header);
	for (size_t i = 0; i < t->n; i++)
		cli_reg_print_row(t, (const char *const *)t->rows[i].cell);
}

/* The bindings of aor (all when NULL) as a table on stdout; an exit status. */
int cli_reg_show(struct store *s, const char *aor, const char *cmd)
{
	struct cli_reg_table t = {.now = time(NULL)};
	int ex = CLI_EXIT_OK, rc;

	for (int c = 0; c < CLI_REG_NCOLS; c++)
		t.width[c] = strlen(cli_reg_header[c]);
	rc = store_binding_list(s, aor, cli_reg_add, &t);
	if (rc) {
		fprintf(stderr, "%s: %s\n", cmd, t.err ? "out of memory" : store_errmsg(s));
		ex = t.err ? CLI_EXIT_FAILURE : cli_exit_for(rc);
		goto out;
	}
	cli_reg_print(&t);
out:
	cli_reg_free(&t);
	return ex;
}

static int cli_reg_list(const struct cli_opts *o)
{
	const char *aor = o->npos ? o->pos[0] : NULL;
	struct store *s = NULL;
	int ex;

	ex = cli_open_store(o->config, o->db, &s);
	if (!ex)
		ex = cli_reg_show(s, aor, "reg list");
	store_close(s);
	return ex;
}

int cli_reg(int argc, char **argv)
{
	struct cli_opts o;
	int ex;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_reg_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "list") != 0) {
		fprintf(stderr, "reg: unknown command '%s' (try --help)\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	ex = cli_parse(argc - 1, argv + 1, "reg list", CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_reg_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, 0, 1, "reg list");
	return ex ? ex : cli_reg_list(&o);
}
