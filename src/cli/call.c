/*
 * call.c - `switchboard call list|show`: the calls in progress, asked of the
 * running server through its control socket (server/ctl.h), because live
 * dialogs are in its memory (the store only has the confirmed ones, written
 * behind). When no server runs, it says so and where it looked.
 */
#include "cli/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "server/ctl.h"

static void cli_call_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard call list [-c FILE | --db PATH]\n"
		"       switchboard call show CALL-ID [-c FILE | --db PATH]\n"
		"       switchboard call stats [-c FILE | --db PATH]\n"
		"Lists the calls in progress (dialogs the proxy follows) of the running server,\n"
		"or shows one in full, or the dialog and media relay counters, through its\n"
		"control socket (control.socket, by default\n"
		"next to the database: var/switchboard.ctl for var/switchboard.db).\n");
}

/* The control socket's path from the configuration file or --db. */
static int cli_call_path(const struct cli_opts *o, char *out, size_t len)
{
	struct cfg *c = calloc(1, sizeof(*c));
	struct cfg_error err;
	int rc = 0;

	if (!c)
		return CLI_EXIT_FAILURE;
	cfg_defaults(c);
	if (o->config) {
		rc = cfg_load_file(c, o->config, &err);
		if (!rc)
			rc = cfg_finish(c, &err);
		if (rc) {
			cli_print_cfg_error(o->config, &err);
			free(c);
			return CLI_EXIT_CONFIG;
		}
	}
	rc = ctl_path(c->ctl_socket, o->db ? o->db : c->db_path, out, len);
	free(c);
	if (rc) {
		fprintf(stderr, "call: control socket path too long\n");
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* Sends one request line; *doc gets the server's JSON answer. */
static int cli_call_ask(const char *cmd, const char *path, const char *req, json_t **doc)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {10, 0};
	char buf[65536], *all = NULL;
	size_t len = 0;
	json_error_t jerr;
	int fd, ex = CLI_EXIT_FAILURE;
	ssize_t n;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", cmd, strerror(errno));
		return CLI_EXIT_FAILURE;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int e = errno;
		if (e == ENOENT)
			fprintf(stderr, "%s: the server is not running (no control socket at %s)\n",
				cmd, path);
		else if (e == ECONNREFUSED)
			fprintf(
			    stderr,
			    "%s: the server is not running (%s is left from one that stopped)\n",
			    cmd, path);
		else if (e == EACCES || e == EPERM)
			fprintf(
			    stderr,
			    "%s: no permission to use %s (run as the user the server runs as)\n",
			    cmd, path);
		else
			fprintf(stderr, "%s: cannot reach the server at %s: %s\n", cmd, path,
				strerror(e));
		close(fd);
		return CLI_EXIT_FAILURE;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req) || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "%s: sending to %s: %s\n", cmd, path, strerror(errno));
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		char *grown = realloc(all, len + (size_t)n + 1);
		if (!grown)
			goto out;
		all = grown;
		memcpy(all + len, buf, (size_t)n);
		len += (size_t)n;
		if (len > 64u << 20)
			break;
	}
	if (n < 0) {
		fprintf(stderr, "%s: reading from %s: %s\n", cmd, path, strerror(errno));
		goto out;
	}
	*doc = all ? json_loadb(all, len, 0, &jerr) : NULL;
	if (!*doc) {
		fprintf(stderr, "%s: the server's answer is not JSON%s%s\n", cmd, all ? ": " : "",
			all ? jerr.text : " (empty)");
		goto out;
	}
	ex = CLI_EXIT_OK;
out:
	free(all);
	close(fd);
	return ex;
}

static const char *str_of(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void time_text(json_int_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm)) {
		snprintf(out, len, "-");
		return;
	}
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cli_call_list(json_t *doc)
{
	json_t *calls = json_object_get(doc, "calls"), *c;
	size_t i;

	if (!json_is_array(calls)) {
		fprintf(stderr, "call list: %s\n", str_of(doc, "error"));
		return CLI_EXIT_FAILURE;
	}
	if (json_array_size(calls) == 0) {
		printf("no calls\n");
		return CLI_EXIT_OK;
	}
	printf("%-36s  %-28s  %-28s  %-10s  %-20s  %-20s  %8s  %s\n", "CALL-ID", "CALLER", "CALLEE",
	       "STATE", "START", "ANSWER", "DURATION", "GATEWAY");
	json_array_foreach(calls, i, c)
	{
		char start[32], answer[32];
		time_text(json_integer_value(json_object_get(c, "start")), start, sizeof(start));
		time_text(json_integer_value(json_object_get(c, "answer")), answer, sizeof(answer));
		printf("%-36s  %-28s  %-28s  %-10s  %-20s  %-20s  %8lld  %s\n", str_of(c, "callid"),
		       str_of(c, "caller"), str_of(c, "callee"), str_of(c, "state"), start, answer,
		       (long long)json_integer_value(json_object_get(c, "duration")),
		       str_of(c, "gateway")[0] ? str_of(c, "gateway") : "-");
	}
	return CLI_EXIT_OK;
}

static int cli_call_show(json_t *doc, const char *callid)
{
	json_t *arr = json_object_get(doc, "call"), *c, *v;
	const char *k;
	size_t i;

	if (!json_is_array(arr)) {
		fprintf(stderr, "call show: %s: %s\n", callid, str_of(doc, "error"));
		return strcmp(str_of(doc, "error"), "no such call") == 0 ? CLI_EXIT_NOT_FOUND
									 : CLI_EXIT_FAILURE;
	}
	json_array_foreach(arr, i, c)
	{
		if (i)
			printf("\n");
		json_object_foreach(c, k, v)
		{
			if (json_is_string(v))
				printf("%-16s %s\n", k, json_string_value(v));
			else if (json_is_integer(v))
				printf("%-16s %lld\n", k, (long long)json_integer_value(v));
		}
	}
	return CLI_EXIT_OK;
}

/* "dialogs.live 3", "media.ports_in_use 4": one counter a line, for people and scripts. */
static int cli_call_stats(json_t *doc)
{
	const char *k, *k2;
	json_t *v, *v2;

	if (json_object_get(doc, "error")) {
		fprintf(stderr, "call stats: %s\n", str_of(doc, "error"));
		return CLI_EXIT_FAILURE;
	}
	json_object_foreach(doc, k, v)
	{
		if (!json_is_object(v))
			continue;
		json_object_foreach(v, k2, v2)
		{
			if (json_is_integer(v2))
				printf("%s.%s %lld\n", k, k2, (long long)json_integer_value(v2));
		}
	}
	return CLI_EXIT_OK;
}

int cli_call(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;
	char path[108], cmd[32], req[CTL_LINE_MAX + 8];
	struct cli_opts o;
	json_t *doc = NULL;
	bool list, stats;
	int ex;

	if (!verb || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
		cli_call_usage(verb ? stdout : stderr);
		return verb ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	list = strcmp(verb, "list") == 0;
	stats = strcmp(verb, "stats") == 0;
	if (stats)
		list = true; /* no argument either */
	if (!list && strcmp(verb, "show") != 0) {
		fprintf(stderr, "call: unknown command '%s' (try --help)\n", verb);
		return CLI_EXIT_USAGE;
	}
	snprintf(cmd, sizeof(cmd), "call %s", verb);
	ex = cli_parse(argc - 1, argv + 1, cmd, CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_call_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (!ex)
		ex = cli_want_args(&o, list ? 0 : 1, list ? 0 : 1, cmd);
	if (!ex && !list && (strlen(o.pos[0]) > CTL_LINE_MAX || strpbrk(o.pos[0], " \r\n"))) {
		fprintf(stderr, "%s: '%s' is not a Call-ID\n", cmd, o.pos[0]);
		ex = CLI_EXIT_USAGE;
	}
	if (!ex)
		ex = cli_call_path(&o, path, sizeof(path));
	if (ex)
		return ex;
	if (stats)
		snprintf(req, sizeof(req), "stats");
	else if (list)
		snprintf(req, sizeof(req), "calls");
	else
		snprintf(req, sizeof(req), "call %s", o.pos[0]);
	ex = cli_call_ask(cmd, path, req, &doc);
	if (!ex)
		ex = stats  ? cli_call_stats(doc)
		     : list ? cli_call_list(doc)
			    : cli_call_show(doc, o.pos[0]);
	json_decref(doc);
	return ex;
}
