/*
 * serve.c - `switchboard serve`: builds the configuration from the file (if
 * any) and the command-line overrides, and runs the server in the
 * foreground. With no file at all the server still runs, on its defaults,
 * which is what containers, scripts and tests use.
 */
#include "cli/internal.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

enum { OPT_LISTEN = 256, OPT_DOMAIN, OPT_DB, OPT_WORKERS, OPT_LOG, OPT_DNS, OPT_STATELESS };

static const struct option serve_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"db", required_argument, NULL, OPT_DB},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"dns-servers", required_argument, NULL, OPT_DNS},
    {"stateless", no_argument, NULL, OPT_STATELESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void serve_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: switchboard serve [-c FILE] [--listen PROTO:IP:PORT]... [--domain DOMAIN]...\n"
	    "                         [--db PATH] [--workers N] [--log-level LEVEL] [--stateless]\n"
	    "  -c, --config FILE   YAML configuration (see config/switchboard.yaml)\n"
	    "  --listen SPEC       udp:IP:PORT or tcp:IP:PORT (IPv6 in brackets); repeatable;\n"
	    "                      replaces the configured listen addresses\n"
	    "  --domain DOMAIN     a served SIP domain; repeatable; replaces the configured ones\n"
	    "  --db PATH           SQLite database file\n"
	    "  --workers N         worker threads (0 = one per core)\n"
	    "  --log-level LEVEL   error, warn, info or debug\n"
	    "  --stateless         forward statelessly (RFC 3261 16.11)\n"
	    "  --dns-servers LIST  IP[:PORT],... instead of /etc/resolv.conf\n");
}

struct serve_args {
	const char *config;
	const char *listen[CFG_MAX_LISTEN];
	size_t nlisten;
	const char *domain[CFG_MAX_DOMAINS];
	size_t ndomain;
	const char *db;
	const char *workers;
	const char *log_level;
	const char *dns;
	bool stateless;
};

static int serve_parse(int argc, char **argv, struct serve_args *a)
{
	int opt;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+c:h", serve_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			a->config = optarg;
			break;
		case OPT_LISTEN:
			if (a->nlisten == CFG_MAX_LISTEN) {
				fprintf(stderr, "serve: at most %d --listen options\n",
					CFG_MAX_LISTEN);
				return CLI_EXIT_USAGE;
			}
			a->listen[a->nlisten++] = optarg;
			break;
		case OPT_DOMAIN:
			if (a->ndomain == CFG_MAX_DOMAINS) {
				fprintf(stderr, "serve: at most %d --domain options\n",
					CFG_MAX_DOMAINS);
				return CLI_EXIT_USAGE;
			}
			a->domain[a->ndomain++] = optarg;
			break;
		case OPT_DB:
			a->db = optarg;
			break;
		case OPT_WORKERS:
			a->workers = optarg;
			break;
		case OPT_LOG:
			a->log_level = optarg;
			break;
		case OPT_DNS:
			a->dns = optarg;
			break;
		case OPT_STATELESS:
			a->stateless = true;
			break;
		case 'h':
			serve_usage(stdout);
			exit(CLI_EXIT_OK);
		default:
			fprintf(stderr,
				"serve: unknown option or missing value '%s' (try --help)\n",
				argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "serve: unexpected argument '%s' (try --help)\n", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

static int serve_config(const struct serve_args *a, struct cfg *c)
{
	struct cfg_error err = {0};
	char *end;

	cfg_defaults(c);
	if (a->config && cfg_load_file(c, a->config, &err)) {
		cli_print_cfg_error(a->config, &err);
		return CLI_EXIT_CONFIG;
	}
	if (a->nlisten) {
		c->nlisten = 0;
		for (size_t i = 0; i < a->nlisten; i++) {
			if (cfg_add_listen(c, a->listen[i], &err)) {
				fprintf(stderr, "serve: --listen %s: %s\n", a->listen[i], err.msg);
				return CLI_EXIT_USAGE;
			}
		}
	}
	if (a->ndomain) {
		c->ndomains = 0;
		for (size_t i = 0; i < a->ndomain; i++) {
			if (cfg_add_domain(c, a->domain[i], &err)) {
				fprintf(stderr, "serve: --domain %s: %s\n", a->domain[i], err.msg);
				return CLI_EXIT_USAGE;
			}
		}
	}
	if (a->db) {
		if (strlen(a->db) >= sizeof(c->db_path)) {
			fprintf(stderr, "serve: --db: path too long\n");
			return CLI_EXIT_USAGE;
		}
		snprintf(c->db_path, sizeof(c->db_path), "%s", a->db);
	}
	if (a->workers) {
		unsigned long n = strtoul(a->workers, &end, 10);
		if (*end || end == a->workers || n > 256) {
			fprintf(stderr,
				"serve: --workers must be a number from 0 to 256, not '%s'\n",
				a->workers);
			return CLI_EXIT_USAGE;
		}
		c->workers = (unsigned)n;
	}
	if (a->log_level && log_level_parse(a->log_level, &c->log_level)) {
		fprintf(stderr, "serve: --log-level must be error, warn, info or debug, not '%s'\n",
			a->log_level);
		return CLI_EXIT_USAGE;
	}
	if (a->stateless)
		c->proxy_mode = CFG_PROXY_STATELESS;
	if (cfg_finish(c, &err)) {
		cli_print_cfg_error(a->config ? a->config : "configuration", &err);
		return CLI_EXIT_CONFIG;
	}
	return CLI_EXIT_OK;
}

int cli_serve(int argc, char **argv)
{
	struct serve_args a = {0};
	struct server *s;
	struct cfg *c;
	char err[512] = "";
	int rc;

	rc = serve_parse(argc, argv, &a);
	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	s = calloc(1, sizeof(*s));
	if (!c || !s) {
		fprintf(stderr, "serve: out of memory\n");
		free(c);
		free(s);
		return CLI_EXIT_FAILURE;
	}
	rc = serve_config(&a, c);
	if (rc == CLI_EXIT_OK) {
		s->dns_servers = a.dns;
		if (server_start(s, c, err, sizeof(err))) {
			fprintf(stderr, "serve: %s\n", err);
			rc = CLI_EXIT_FAILURE;
		} else {
			server_run(s);
		}
		server_destroy(s);
	}
	free(c);
	free(s);
	return rc;
}
