/*
 * cdr.c - `switchboard cdr list|export|totals`: the billing records
 * (services/cdr.h, docs/billing.md) read from the store, like the other
 * commands, so they work whether the server runs or not. Filters: start
 * time (--from inclusive, --to exclusive), caller, account, limit.
 */
#include "cli/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "services/cdr.h"
#include "store/store.h"

static void cli_cdr_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard cdr list [FILTERS] [-c FILE | --db PATH]\n"
		"       switchboard cdr export --format csv|json [FILTERS] [-c FILE | --db PATH]\n"
		"       switchboard cdr totals --by caller|account [--from DATE] [--to DATE]\n"
		"                              [-c FILE | --db PATH]\n"
		"FILTERS: --from DATE  --to DATE  --caller WHO  --account ACCOUNT  --limit N\n"
		"Billing records, one per call attempt, oldest first. DATE: Unix seconds or ISO\n"
		"8601 (2026-12-07, 2026-12-07T18:30:00Z, 2026-12-07T19:30+01:00); --from is\n"
		"inclusive, --to exclusive, on the start time. WHO: the caller's identity\n"
		"(user@domain) or From URI. ACCOUNT: who pays (the authenticated user, or\n"
		"trusted:IP for a trusted peer; \"\" = nobody). --limit: the first N records.\n");
}

enum cli_cdr_cmd { CLI_CDR_LIST, CLI_CDR_EXPORT, CLI_CDR_TOTALS };

struct cli_cdr_q {
	int64_t from_ms, to_ms;
	const char *caller, *account, *format, *by;
	long limit; /* -1 = all */
	struct cdr_rec **recs;
	size_t n, cap;
	int err;
};

static bool cli_cdr_caller_is(const struct cdr_rec *r, const char *who)
{
	const char *u = r->from;

	if (strcmp(r->identity, who) == 0 || strcmp(r->from, who) == 0)
		return true;
	if (strncmp(u, "sip:", 4) == 0)
		u += 4;
	else if (strncmp(u, "sips:", 5) == 0)
		u += 5;
	return strcmp(u, who) == 0;
}

static int cli_cdr_take(void *arg, const struct store_record *sr)
{
	struct cli_cdr_q *q = arg;
	struct cdr_rec *r;

	if (sr->seq < q->from_ms || sr->seq >= q->to_ms)
		return 0;
	r = malloc(sizeof(*r));
	if (!r)
		return q->err = ENOMEM;
	if (cdr_rec_parse(sr->key, sr->meta, r) ||
	    (q->caller && !cli_cdr_caller_is(r, q->caller)) ||
	    (q->account && strcmp(r->account, q->account) != 0)) {
		free(r);
		return 0;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct cdr_rec **g = realloc(q->recs, cap * sizeof(*g));
		if (!g) {
			free(r);
			return q->err = ENOMEM;
		}
		q->recs = g;
		q->cap = cap;
	}
	q->recs[q->n++] = r;
	return 0;
}

static int cli_cdr_order(const void *a, const void *b)
{
	const struct cdr_rec *x = *(struct cdr_rec *const *)a, *y = *(struct cdr_rec *const *)b;

	if (x->start_ms != y->start_ms)
		return x->start_ms < y->start_ms ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void cli_cdr_list(const struct cli_cdr_q *q)
{
	if (q->n == 0) {
		printf("no records\n");
		return;
	}
	printf("%-24s  %-28s  %-28s  %-10s  %6s  %10s  %8s  %s\n", "START", "CALLER", "DIALLED",
	       "RESULT", "STATUS", "DURATION", "BILLABLE", "ENDED BY");
	for (size_t i = 0; i < q->n; i++) {
		const struct cdr_rec *r = q->recs[i];
		char t[40];
		int64_t talk = cdr_talk_ms(r);
		cdr_format_time(r->start_ms, t, sizeof(t));
		printf("%-24s  %-28s  %-28s  %-10s  %6u  %6" PRId64 ".%03d  %8" PRId64 "  %s\n", t,
		       r->identity[0] ? r->identity : r->from, r->dialled, cdr_disp_name(r->disp),
		       r->status, talk / 1000, (int)(talk % 1000), cdr_billable_s(r),
		       cdr_ended_by(r));
	}
}

static int cli_cdr_export(const struct cli_cdr_q *q)
{
	struct buf b;
	bool csv = strcmp(q->format, "csv") == 0;

	buf_init(&b, 0);
	if (csv)
		cdr_csv_header(&b);
	else
		buf_append_str(&b, "[\n");
	for (size_t i = 0; i < q->n; i++) {
		if (csv) {
			cdr_csv_row(q->recs[i], &b);
		} else {
			cdr_json(q->recs[i], &b);
			buf_append_str(&b, i + 1 < q->n ? ",\n" : "\n");
		}
		if (b.err)
			break;
		fwrite(b.p, 1, b.len, stdout);
		buf_reset(&b);
	}
	if (!csv && !b.err)
		buf_append_str(&b, "]\n");
	if (b.err) {
		buf_free(&b);
		fprintf(stderr, "cdr export: out of memory\n");
		return CLI_EXIT_FAILURE;
	}
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
	return fflush(stdout) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

struct cli_cdr_total {
	const char *key;
	uint64_t calls, answered;
	int64_t billable;
};

static int cli_cdr_total_order(const void *a, const void *b)
{
	return strcmp(((const struct cli_cdr_total *)a)->key,
		      ((const struct cli_cdr_total *)b)->key);
}

static int cli_cdr_totals(const struct cli_cdr_q *q)
{
	struct cli_cdr_total *t = calloc(q->n ? q->n : 1, sizeof(*t));
	size_t nt = 0;
	bool by_account = strcmp(q->by, "account") == 0;

	if (!t) {
		fprintf(stderr, "cdr totals: out of memory\n");
		return CLI_EXIT_FAILURE;
	}
	for (size_t i = 0; i < q->n; i++) {
		const struct cdr_rec *r = q->recs[i];
		const char *key =
		    by_account ? r->account : (r->identity[0] ? r->identity : r->from);
		size_t k;
		for (k = 0; k < nt && strcmp(t[k].key, key) != 0; k++)
			;
		if (k == nt)
			t[nt++].key = key;
		t[k].calls++;
		t[k].answered += r->disp == CDR_ANSWERED;
		t[k].billable += cdr_billable_s(r);
	}
	if (nt > 1)
		qsort(t, nt, sizeof(*t), cli_cdr_total_order);
	printf("%-40s  %8s  %8s  %12s\n", by_account ? "ACCOUNT" : "CALLER", "CALLS", "ANSWERED",
	       "BILLABLE_S");
	for (size_t k = 0; k < nt; k++)
		printf("%-40s  %8" PRIu64 "  %8" PRIu64 "  %12" PRId64 "\n",
		       t[k].key[0] ? t[k].key : "(none)", t[k].calls, t[k].answered, t[k].billable);
	free(t);
	return CLI_EXIT_OK;
}

/* Takes our options out of argv (the rest goes to cli_parse); CLI_EXIT_USAGE when bad. */
static int cli_cdr_opts(int *argc, char **argv, struct cli_cdr_q *q)
{
	static const char *const names[] = {"--from",  "--to",	   "--caller", "--account",
					    "--limit", "--format", "--by"};
	int out = 0;
	char why[200];

	for (int i = 0; i < *argc; i++) {
		const char *a = argv[i], *v = NULL;
		size_t k, nl = 0;
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			nl = strlen(names[k]);
			if (strncmp(a, names[k], nl) == 0 && (a[nl] == '\0' || a[nl] == '='))
				break;
		}
		if (k == sizeof(names) / sizeof(names[0])) {
			argv[out++] = argv[i];
			continue;
		}
		if (a[nl] == '=') {
			v = a + nl + 1;
		} else if (i + 1 < *argc && strncmp(argv[i + 1], "--", 2) != 0) {
			v = argv[++i];
		} else {
			fprintf(stderr, "cdr: %s needs a value (try --help)\n", names[k]);
			return CLI_EXIT_USAGE;
		}
		switch (k) {
		case 0:
		case 1:
			if (cdr_parse_time(v, k == 0 ? &q->from_ms : &q->to_ms, why, sizeof(why))) {
				fprintf(stderr, "cdr: %s %s\n", names[k], why);
				return CLI_EXIT_USAGE;
			}
			break;
		case 2:
			q->caller = v;
			break;
		case 3:
			q->account = v;
			break;
		case 4: {
			char *end = NULL;
			errno = 0;
			q->limit = strtol(v, &end, 10);
			if (errno || !*v || *end || q->limit < 0) {
				fprintf(stderr,
					"cdr: --limit '%s': not a number of records (0 or more)\n",
					v);
				return CLI_EXIT_USAGE;
			}
			break;
		}
		case 5:
			if (strcmp(v, "csv") != 0 && strcmp(v, "json") != 0) {
				fprintf(stderr, "cdr: --format '%s': csv or json\n", v);
				return CLI_EXIT_USAGE;
			}
			q->format = v;
			break;
		case 6:
			if (strcmp(v, "caller") != 0 && strcmp(v, "account") != 0) {
				fprintf(stderr, "cdr: --by '%s': caller or account\n", v);
				return CLI_EXIT_USAGE;
			}
			q->by = v;
			break;
		}
	}
	*argc = out;
	if (q->from_ms >= q->to_ms) {
		fprintf(stderr, "cdr: --from is not before --to: no time between them\n");
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

int cli_cdr(int argc, char **argv)
{
	struct cli_cdr_q q = {.from_ms = INT64_MIN, .to_ms = INT64_MAX, .limit = -1};
	struct cli_opts o;
	struct store *st = NULL;
	enum cli_cdr_cmd cmd;
	const char *verb = argc > 1 ? argv[1] : "";
	int ex, rc;

	if (strcmp(verb, "list") == 0)
		cmd = CLI_CDR_LIST;
	else if (strcmp(verb, "export") == 0)
		cmd = CLI_CDR_EXPORT;
	else if (strcmp(verb, "totals") == 0)
		cmd = CLI_CDR_TOTALS;
	else if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
		cli_cdr_usage(stdout);
		return CLI_EXIT_OK;
	} else {
		if (verb[0])
			fprintf(stderr, "cdr: unknown command '%s'\n", verb);
		cli_cdr_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	argc--;
	argv++;
	ex = cli_cdr_opts(&argc, argv, &q);
	if (ex)
		return ex;
	ex = cli_parse(argc, argv, "cdr", CLI_OPT_STORE, &o);
	if (ex)
		return ex;
	if (o.help) {
		cli_cdr_usage(stdout);
		return CLI_EXIT_OK;
	}
	if ((ex = cli_want_args(&o, 0, 0, "cdr")))
		return ex;
	if (cmd == CLI_CDR_EXPORT && !q.format) {
		fprintf(stderr, "cdr export: --format csv or json is needed\n");
		return CLI_EXIT_USAGE;
	}
	if (cmd == CLI_CDR_TOTALS && !q.by) {
		fprintf(stderr, "cdr totals: --by caller or account is needed\n");
		return CLI_EXIT_USAGE;
	}
	if ((cmd != CLI_CDR_EXPORT && q.format) || (cmd != CLI_CDR_TOTALS && q.by) ||
	    (cmd == CLI_CDR_TOTALS && (q.caller || q.account || q.limit >= 0))) {
		fprintf(stderr, "cdr %s: an option that belongs to another command (try --help)\n",
			verb);
		return CLI_EXIT_USAGE;
	}
	ex = cli_open_store(o.config, o.db, &st);
	if (ex)
		return ex;
	rc = store_record_list(st, STORE_REC_CDR, NULL, cli_cdr_take, &q);
	if (rc || q.err) {
		fprintf(stderr, "cdr: %s\n", rc ? store_errmsg(st) : strerror(q.err));
		ex = CLI_EXIT_FAILURE;
		goto out;
	}
	if (q.n > 1)
		qsort(q.recs, q.n, sizeof(*q.recs), cli_cdr_order);
	if (q.limit >= 0 && (size_t)q.limit < q.n) {
		for (size_t i = (size_t)q.limit; i < q.n; i++)
			free(q.recs[i]);
		q.n = (size_t)q.limit;
	}
	if (cmd == CLI_CDR_LIST)
		cli_cdr_list(&q);
	else if (cmd == CLI_CDR_EXPORT)
		ex = cli_cdr_export(&q);
	else
		ex = cli_cdr_totals(&q);
out:
	for (size_t i = 0; i < q.n; i++)
		free(q.recs[i]);
	free(q.recs);
	store_close(st);
	return ex;
}
