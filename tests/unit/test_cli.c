/*
 * test_cli.c - the user, reg and check-config subcommands as a script would
 * use them: exit codes and the exact messages, since both are interface.
 * Standard output and error are captured around each call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"

#define MAX_ARGS 16

struct fixture {
	char dir[64];
	char db[128];
	char out[8192];
	char err[8192];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sb-test-cli-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/var/sb.db", f->dir);
	*state = f;
	return 0;
}

static void remove_tree(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			remove_tree(path);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	remove_tree(f->dir);
	free(f);
	return 0;
}

static void slurp(FILE *tmp, char *buf, size_t size)
{
	size_t n;

	rewind(tmp);
	n = fread(buf, 1, size - 1, tmp);
	buf[n] = '\0';
	fclose(tmp);
}

/* Runs fn with fd 0 fed from input (if any) and fds 1 and 2 captured into f->out / f->err. */
static int run_v(struct fixture *f, const char *input, int (*fn)(int, char **), char **argv)
{
	FILE *o = tmpfile(), *e = tmpfile(), *i = tmpfile();
	int so, se, si, argc = 0, rc;

	assert_true(o && e && i);
	while (argv[argc])
		argc++;
	if (input)
		fputs(input, i);
	rewind(i);
	fflush(stdout);
	fflush(stderr);
	so = dup(1);
	se = dup(2);
	si = dup(0);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	dup2(fileno(i), 0);
	clearerr(stdin);
	rc = fn(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	dup2(si, 0);
	close(so);
	close(se);
	close(si);
	clearerr(stdin);
	fclose(i);
	slurp(o, f->out, sizeof(f->out));
	slurp(e, f->err, sizeof(f->err));
	return rc;
}

/* run(f, input, fn, "user", "add", ..., NULL): copies the strings, getopt permutes argv. */
static int run(struct fixture *f, const char *input, int (*fn)(int, char **), ...)
{
	char *argv[MAX_ARGS + 1] = {0};
	const char *a;
	va_list ap;
	int n = 0, rc;

	va_start(ap, fn);
	while ((a = va_arg(ap, const char *)) && n < MAX_ARGS)
		argv[n++] = strdup(a);
	va_end(ap);
	rc = run_v(f, input, fn, argv);
	for (int i = 0; i < n; i++)
		free(argv[i]);
	return rc;
}

static void test_user_commands(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, NULL, cli_user, "user", "add", "alice@Example.com", "--password",
			     "secret", "--db", f->db, NULL),
			 CLI_EXIT_OK);
	/* options before the positional argument work too */
	assert_int_equal(run(f, NULL, cli_user, "user", "add", "--db", f->db, "-p", "x",
			     "alice@example.com", NULL),
			 CLI_EXIT_EXISTS);
	assert_string_equal(f->err, "user add alice@example.com: user already exists\n");
	assert_int_equal(
	    run(f, NULL, cli_user, "user", "del", "bob@example.com", "--db", f->db, NULL),
	    CLI_EXIT_NOT_FOUND);
	assert_string_equal(f->err, "user del bob@example.com: no such user\n");
	assert_int_equal(run(f, "new secret\n", cli_user, "user", "passwd", "alice@example.com",
			     "--password", "-", "--db", f->db, NULL),
			 CLI_EXIT_OK);
	assert_int_equal(run(f, NULL, cli_user, "user", "passwd", "bob@example.com", "-p", "x",
			     "--db", f->db, NULL),
			 CLI_EXIT_NOT_FOUND);
	assert_int_equal(run(f, NULL, cli_user, "user", "add", "bob@example.org", "-p", "pw",
			     "--db", f->db, NULL),
			 CLI_EXIT_OK);
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "--db", f->db, NULL), CLI_EXIT_OK);
	assert_string_equal(f->out, "alice@example.com\nbob@example.org\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "EXAMPLE.ORG", "--db", f->db, NULL),
			 CLI_EXIT_OK);
	assert_string_equal(f->out, "bob@example.org\n");
	assert_int_equal(
	    run(f, NULL, cli_user, "user", "del", "alice@example.com", "--db", f->db, NULL),
	    CLI_EXIT_OK);

	/* the password read from stdin is what gets hashed */
	struct store *s;
	struct store_user u;
	char err[256], md5[33];
	assert_int_equal(store_open(f->db, &s, err, sizeof(err)), 0);
	assert_int_equal(store_user_get(s, SV("bob"), SV("example.org"), &u), 0);
	store_ha1_md5(SV("bob"), SV("example.org"), SV("pw"), md5);
	assert_string_equal(u.ha1_md5, md5);
	store_close(s);
}

static void test_user_usage_errors(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run(f, NULL, cli_user, "user", NULL), CLI_EXIT_USAGE);
	assert_int_equal(run(f, NULL, cli_user, "user", "--help", NULL), CLI_EXIT_OK);
	assert_non_null(strstr(f->out, "usage: switchboard user add"));
	assert_int_equal(run(f, NULL, cli_user, "user", "add", "--help", NULL), CLI_EXIT_OK);
	assert_int_equal(run(f, NULL, cli_user, "user", "frob", NULL), CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user: unknown command 'frob' (try --help)\n");
	assert_int_equal(
	    run(f, NULL, cli_user, "user", "add", "alice@example.com", "--db", f->db, NULL),
	    CLI_EXIT_USAGE);
	assert_non_null(strstr(f->err, "user add: missing --password"));
	assert_int_equal(
	    run(f, NULL, cli_user, "user", "add", "alice@example.com", "--password", NULL),
	    CLI_EXIT_USAGE);
	assert_string_equal(f->err,
			    "user add: missing value for option '--password' (try --help)\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "add", "a@b.c", "--bogus=1", NULL),
			 CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user add: unknown option '--bogus' (try --help)\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "del", "a@b.c", "-x", NULL),
			 CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user del: unknown option '-x' (try --help)\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "del", "a@b.c", "-p", "pw", NULL),
			 CLI_EXIT_USAGE);
	assert_int_equal(run(f, NULL, cli_user, "user", "del", NULL), CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user del: missing argument (try --help)\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "del", "a@b.c", "d@e.f", NULL),
			 CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user del: unexpected argument 'd@e.f' (try --help)\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "del", "alice", "--db", f->db, NULL),
			 CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user del alice: expected USER@DOMAIN\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "add", "a b@example.com", "-p", "pw",
			     "--db", f->db, NULL),
			 CLI_EXIT_USAGE);
	assert_string_equal(f->err,
			    "user add a b@example.com: user name 'a b' contains whitespace\n");
	assert_int_equal(
	    run(f, "", cli_user, "user", "add", "a@example.com", "-p", "-", "--db", f->db, NULL),
	    CLI_EXIT_USAGE);
	assert_string_equal(f->err, "user add: no password on standard input\n");
}

static void test_user_import(void **state)
{
	struct fixture *f = *state;
	char csv[160];
	FILE *out;

	snprintf(csv, sizeof(csv), "%s/users.csv", f->dir);
	out = fopen(csv, "w");
	assert_non_null(out);
	fputs("user,domain,password\r\nalice,example.com,a\r\n# c\r\n\r\nbob,example.com,b\r\n",
	      out);
	fclose(out);
	assert_int_equal(run(f, NULL, cli_user, "user", "import", csv, "--db", f->db, NULL),
			 CLI_EXIT_OK);
	assert_string_equal(f->out, "imported 2 users\n");

	assert_int_equal(run(f, "carol,example.com,c\nbad@user,example.com,x\n", cli_user, "user",
			     "import", "-", "--db", f->db, NULL),
			 CLI_EXIT_FAILURE);
	assert_string_equal(f->err, "<stdin>:2: user name 'bad@user' must not contain '@'\n");
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "--db", f->db, NULL), CLI_EXIT_OK);
	assert_string_equal(f->out, "alice@example.com\nbob@example.com\n");

	assert_int_equal(run(f, NULL, cli_user, "user", "import", "/nonexistent.csv", NULL),
			 CLI_EXIT_FAILURE);
	assert_string_equal(f->err, "user import /nonexistent.csv: No such file or directory\n");
}

static void put_binding(const char *db, const char *aor, const char *contact, const char *recv,
			const char *ua, int64_t expires, uint16_t q)
{
	struct store_binding b = {.expires = expires, .q = q};
	struct store *s;
	char err[256];

	snprintf(b.aor, sizeof(b.aor), "%s", aor);
	snprintf(b.contact, sizeof(b.contact), "%s", contact);
	snprintf(b.received, sizeof(b.received), "%s", recv);
	snprintf(b.user_agent, sizeof(b.user_agent), "%s", ua);
	assert_int_equal(store_open(db, &s, err, sizeof(err)), 0);
	assert_int_equal(store_binding_put(s, &b), 0);
	store_close(s);
}

#define HEADER                                                                                     \
	"AOR                CONTACT                       EXPIRES  Q    TRANSPORT  TERMINAL  "     \
	"USER-AGENT\n"

static void test_reg_list(void **state)
{
	struct fixture *f = *state;
	int64_t now = (int64_t)time(NULL);

	assert_int_equal(run(f, NULL, cli_reg, "reg", "list", "--db", f->db, NULL), CLI_EXIT_OK);
	assert_string_equal(f->out, "no bindings\n");
	put_binding(f->db, "alice@example.com", "sip:alice@192.0.2.1", "udp:192.0.2.1:5060",
		    "Phone/1", now + 3600, 1000);
	put_binding(f->db, "alice@example.com", "sip:alice@[2001:db8::1]:5070",
		    "tcp:[2001:db8::1]:5070", "", now + 3600, 500);
	put_binding(f->db, "bob@example.com", "sip:bob@h", "", "B", now - 1, 250);
	assert_int_equal(run(f, NULL, cli_reg, "reg", "list", "--db", f->db, NULL), CLI_EXIT_OK);
	/* the header and two rows (bob's binding expired: it routes nothing, so it is not
	 * shown); expires-in varies by a second, so look at pieces */
	assert_true(strncmp(f->out, HEADER, strlen(HEADER)) == 0);
	assert_non_null(strstr(f->out, "alice@example.com  sip:alice@192.0.2.1  "));
	assert_non_null(strstr(f->out, "  1.0  UDP        other     Phone/1\n"));
	assert_non_null(strstr(f->out, "  0.5  TCP        other     -\n"));
	assert_null(strstr(f->out, "bob@"));
	assert_int_equal(
	    run(f, NULL, cli_reg, "reg", "list", "bob@EXAMPLE.com", "--db", f->db, NULL),
	    CLI_EXIT_OK);
	assert_string_equal(f->out, "no bindings\n");
	assert_int_equal(
	    run(f, NULL, cli_reg, "reg", "list", "carol@example.com", "--db", f->db, NULL),
	    CLI_EXIT_OK);
	assert_string_equal(f->out, "no bindings\n");
	assert_int_equal(run(f, NULL, cli_reg, "reg", "frob", NULL), CLI_EXIT_USAGE);
	assert_int_equal(run(f, NULL, cli_reg, "reg", NULL), CLI_EXIT_USAGE);
}

static void write_file(const char *path, const char *text)
{
	FILE *out = fopen(path, "w");

	assert_non_null(out);
	fputs(text, out);
	fclose(out);
}

static void test_check_config(void **state)
{
	struct fixture *f = *state;
	char path[160], want[256];

	snprintf(path, sizeof(path), "%s/ok.yaml", f->dir);
	write_file(path, "workers: 2\n");
	assert_int_equal(run(f, NULL, cli_check_config, "check-config", "-c", path, NULL),
			 CLI_EXIT_OK);
	snprintf(want, sizeof(want), "%s: OK\n", path);
	assert_string_equal(f->out, want);

	snprintf(path, sizeof(path), "%s/bad.yaml", f->dir);
	write_file(path, "workers: 2\nregistrar:\n  foo: 1\n");
	assert_int_equal(run(f, NULL, cli_check_config, "check-config", "--config", path, NULL),
			 CLI_EXIT_CONFIG);
	snprintf(want, sizeof(want), "%s:3:3: unknown key 'foo' in 'registrar'\n", path);
	assert_string_equal(f->err, want);

	assert_int_equal(
	    run(f, NULL, cli_check_config, "check-config", "-c", "/nonexistent.yaml", NULL),
	    CLI_EXIT_CONFIG);
	assert_string_equal(f->err, "/nonexistent.yaml: file not found\n");
	assert_int_equal(run(f, NULL, cli_check_config, "check-config", NULL), CLI_EXIT_USAGE);
	assert_int_equal(run(f, NULL, cli_check_config, "check-config", "--db", "x", NULL),
			 CLI_EXIT_USAGE);

	/* the other commands take the database from the configuration, or refuse a bad one */
	snprintf(path, sizeof(path), "%s/db.yaml", f->dir);
	snprintf(want, sizeof(want), "database:\n  path: %s\n", f->db);
	write_file(path, want);
	assert_int_equal(
	    run(f, NULL, cli_user, "user", "add", "a@example.com", "-p", "x", "-c", path, NULL),
	    CLI_EXIT_OK);
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "--db", f->db, NULL), CLI_EXIT_OK);
	assert_string_equal(f->out, "a@example.com\n");
	snprintf(path, sizeof(path), "%s/bad.yaml", f->dir);
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "-c", path, NULL), CLI_EXIT_CONFIG);
	assert_int_equal(run(f, NULL, cli_user, "user", "list", "--db", "redis://h", NULL),
			 CLI_EXIT_FAILURE);
	assert_string_equal(f->err, "database 'redis://h': backend not built yet\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_user_commands, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_usage_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_import, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reg_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check_config, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
