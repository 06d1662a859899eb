/*
 * test_store.c - the store against a real SQLite file in a temporary
 * directory: subscriber provisioning and its errnos, HA1 values checked
 * against digests computed outside this code, schema migration, CSV import
 * (including the all-or-nothing rollback), location bindings and the data
 * version the server polls to notice CLI changes.
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
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* printf 'alice:example.com:secret' | md5sum ; ... | sha256sum */
#define ALICE_MD5    "b1726872c344b6dc8365b774f8fd6412"
#define ALICE_SHA256 "ed8925b20f9a77b8f8f8d5f8e4467fe32b866f7208ab9e4b20595e9821a0fdee"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/sb-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	/* a missing parent directory is created */
	snprintf(f->path, sizeof(f->path), "%s/var/test.db", f->dir);
	if (store_open(f->path, &f->s, err, sizeof(err))) {
		print_error("store_open: %s\n", err);
		return -1;
	}
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

	store_close(f->s);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static struct store *reopen(const struct fixture *f)
{
	struct store *s = NULL;
	char err[256];

	assert_int_equal(store_open(f->path, &s, err, sizeof(err)), 0);
	return s;
}

static void test_open(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	struct stat st;
	char err[256], loc[160];

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	snprintf(loc, sizeof(loc), "sqlite:%s/other/x.db", f->dir);
	assert_int_equal(store_open(loc, &s, err, sizeof(err)), 0);
	store_close(s);
	snprintf(loc, sizeof(loc), "%s/other/x.db", f->dir);
	assert_int_equal(stat(loc, &st), 0);

	assert_int_equal(store_open("postgres://db.example/sb", &s, err, sizeof(err)), ENOTSUP);
	assert_string_equal(err, "backend not built yet");
	assert_null(s);
	assert_int_equal(store_open("postgresql://db.example/sb", &s, err, sizeof(err)), ENOTSUP);
	assert_int_equal(store_open("redis://localhost", &s, err, sizeof(err)), ENOTSUP);
	assert_int_equal(store_open("mysql://localhost", &s, err, sizeof(err)), EINVAL);
	assert_int_equal(store_open("", &s, err, sizeof(err)), EINVAL);

	/* a file that is not a database */
	snprintf(loc, sizeof(loc), "%s/junk.db", f->dir);
	FILE *junk = fopen(loc, "w");
	assert_non_null(junk);
	for (int i = 0; i < 200; i++)
		fputs("this is not a database ", junk);
	fclose(junk);
	assert_int_equal(store_open(loc, &s, err, sizeof(err)), EIO);
	assert_non_null(strstr(err, "not a database"));
	assert_null(s);
}

static void test_users(void **state)
{
	struct fixture *f = *state;
	struct store_user u;

	assert_int_equal(store_user_add(f->s, SV("alice"), SV("Example.COM"), SV("secret")), 0);
	assert_int_equal(store_user_add(f->s, SV("alice"), SV("example.com"), SV("x")), EEXIST);
	assert_string_equal(store_errmsg(f->s), "user already exists");

	assert_int_equal(store_user_get(f->s, SV("alice"), SV("EXAMPLE.com"), &u), 0);
	assert_string_equal(u.user, "alice");
	assert_string_equal(u.domain, "example.com");
	assert_string_equal(u.ha1_md5, ALICE_MD5);
	assert_string_equal(u.ha1_sha256, ALICE_SHA256);

	/* user names are case-sensitive */
	assert_int_equal(store_user_get(f->s, SV("Alice"), SV("example.com"), &u), ENOENT);
	assert_string_equal(store_errmsg(f->s), "no such user");
	assert_int_equal(store_user_add(f->s, SV("Alice"), SV("example.com"), SV("secret")), 0);

	assert_int_equal(store_user_passwd(f->s, SV("alice"), SV("example.com"), SV("new")), 0);
	assert_int_equal(store_user_get(f->s, SV("alice"), SV("example.com"), &u), 0);
	assert_string_not_equal(u.ha1_md5, ALICE_MD5);
	assert_int_equal(store_user_passwd(f->s, SV("alice"), SV("example.com"), SV("secret")), 0);
	assert_int_equal(store_user_get(f->s, SV("alice"), SV("example.com"), &u), 0);
	assert_string_equal(u.ha1_md5, ALICE_MD5);
	assert_int_equal(store_user_passwd(f->s, SV("bob"), SV("example.com"), SV("x")), ENOENT);

	assert_int_equal(store_user_del(f->s, SV("alice"), SV("example.com")), 0);
	assert_int_equal(store_user_del(f->s, SV("alice"), SV("example.com")), ENOENT);
	assert_int_equal(store_user_get(f->s, SV("alice"), SV("example.com"), &u), ENOENT);
	assert_int_equal(store_user_get(f->s, SV("Alice"), SV("example.com"), &u), 0);
}

static void test_user_validation(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *user, *domain, *password, *msg;
	} bad[] = {
	    {"", "example.com", "pw", "user name is empty"},
	    {"a b", "example.com", "pw", "user name 'a b' contains whitespace"},
	    {"a\tb", "example.com", "pw", "user name 'a\tb' contains whitespace"},
	    {"a:b", "example.com", "pw", "user name 'a:b' must not contain ':'"},
	    {"a@b", "example.com", "pw", "user name 'a@b' must not contain '@'"},
	    {"a\x01", "example.com", "pw", "user name contains control characters"},
	    {"alice", "", "pw", "domain is empty"},
	    {"alice", "exa mple.com", "pw",
	     "domain 'exa mple.com' is not a valid host name or IP address"},
	    {"alice", "a..b", "pw", "domain 'a..b' is not a valid host name or IP address"},
	    {"alice", "[1.2.3.4]", "pw",
	     "domain '[1.2.3.4]' is not a valid host name or IP address"},
	    {"alice", "a_b.com", "pw", "domain 'a_b.com' is not a valid host name or IP address"},
	    {"alice", "example.com", "", "password is empty"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = store_user_add(f->s, sv_cstr(bad[i].user), sv_cstr(bad[i].domain),
					sv_cstr(bad[i].password));
		assert_int_equal(rc, EINVAL);
		assert_string_equal(store_errmsg(f->s), bad[i].msg);
	}
	assert_int_equal(store_user_add(f->s, SV("a.b-c_d+e"), SV("192.0.2.1"), SV("pw")), 0);
	assert_int_equal(store_user_add(f->s, SV("v6"), SV("[2001:DB8::1]"), SV("pw")), 0);
	assert_int_equal(store_user_del(f->s, SV("v6"), SV("[2001:db8::1]")), 0);
	assert_int_equal(store_user_del(f->s, SV("x y"), SV("example.com")), EINVAL);
}

static void test_ha1_vectors(void **state)
{
	char md5[33], sha[65];

	(void)state;
	store_ha1_md5(SV("alice"), SV("example.com"), SV("secret"), md5);
	store_ha1_sha256(SV("alice"), SV("example.com"), SV("secret"), sha);
	assert_string_equal(md5, ALICE_MD5);
	assert_string_equal(sha, ALICE_SHA256);
	/* RFC 2617 section 3.5: HA1 of Mufasa in testrealm@host.com */
	store_ha1_md5(SV("Mufasa"), SV("testrealm@host.com"), SV("Circle Of Life"), md5);
	assert_string_equal(md5, "939e7578ed9e3c518a452acee763bce9");
}

struct collected {
	char names[8][300];
	size_t n;
	size_t stop_after;
};

static int collect_user(void *arg, const struct store_user *u)
{
	struct collected *c = arg;

	if (c->n < 8)
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s@%s", u->user, u->domain);
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static void test_user_list(void **state)
{
	struct fixture *f = *state;
	struct collected c = {0};

	assert_int_equal(store_user_add(f->s, SV("zed"), SV("a.example"), SV("pw")), 0);
	assert_int_equal(store_user_add(f->s, SV("bob"), SV("b.example"), SV("pw")), 0);
	assert_int_equal(store_user_add(f->s, SV("amy"), SV("b.example"), SV("pw")), 0);
	assert_int_equal(store_user_list(f->s, SV_NULL, collect_user, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.names[0], "zed@a.example");
	assert_string_equal(c.names[1], "amy@b.example");
	assert_string_equal(c.names[2], "bob@b.example");

	c = (struct collected){0};
	assert_int_equal(store_user_list(f->s, SV("B.Example"), collect_user, &c), 0);
	assert_int_equal(c.n, 2);

	c = (struct collected){.stop_after = 1};
	assert_int_equal(store_user_list(f->s, SV_NULL, collect_user, &c), 42);
	/* the statement was reset: the handle still works */
	c = (struct collected){0};
	assert_int_equal(store_user_list(f->s, SV("a.example"), collect_user, &c), 0);
	assert_int_equal(c.n, 1);
}

static void test_migration(void **state)
{
	struct fixture *f = *state;
	struct store *s2;
	struct store_user u;
	sqlite3 *db;
	sqlite3_stmt *st;
	char err[256];
	int version = -1;

	assert_int_equal(store_user_add(f->s, SV("alice"), SV("example.com"), SV("secret")), 0);
	store_close(f->s);
	f->s = reopen(f);
	s2 = reopen(f); /* two handles, both already migrated */
	assert_int_equal(store_user_get(s2, SV("alice"), SV("example.com"), &u), 0);
	store_close(s2);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	assert_int_equal(version, 3);
	/* a database from a newer program is refused, not damaged */
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, &s2, err, sizeof(err)), EPROTO);
	assert_non_null(strstr(err, "schema version 99"));
}

/* A version 1 database (before call settings) is migrated in place; its users stay. */
static void test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct store_user u;
	sqlite3 *db;

	store_close(f->s);
	f->s = NULL;
	unlink(f->path);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(
		db,
		"CREATE TABLE subscriber(id INTEGER PRIMARY KEY, username TEXT NOT NULL,"
		" domain TEXT NOT NULL, ha1_md5 TEXT NOT NULL, ha1_sha256 TEXT NOT NULL,"
		" created INTEGER NOT NULL, updated INTEGER NOT NULL, UNIQUE(username, domain));"
		"CREATE TABLE location(id INTEGER PRIMARY KEY, aor TEXT NOT NULL,"
		" contact TEXT NOT NULL, received TEXT NOT NULL DEFAULT '',"
		" path TEXT NOT NULL DEFAULT '', instance TEXT NOT NULL DEFAULT '',"
		" user_agent TEXT NOT NULL DEFAULT '', callid TEXT NOT NULL DEFAULT '',"
		" cseq INTEGER NOT NULL DEFAULT 0, expires INTEGER NOT NULL,"
		" q INTEGER NOT NULL DEFAULT 1000, reg_id INTEGER NOT NULL DEFAULT 0,"
		" flags INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL,"
		" UNIQUE(aor, contact));"
		"CREATE INDEX location_expires ON location(expires);"
		"INSERT INTO subscriber VALUES(1, 'old', 'example.com', 'a', 'b', 1, 1);"
		"PRAGMA user_version = 1;",
		NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	f->s = reopen(f);
	assert_int_equal(store_user_get(f->s, SV("old"), SV("example.com"), &u), 0);
	assert_string_equal(u.settings, "");
	assert_int_equal(
	    store_user_settings(f->s, SV("old"), SV("example.com"), SV("ring=sequential")), 0);
	assert_int_equal(store_user_get(f->s, SV("old"), SV("example.com"), &u), 0);
	assert_string_equal(u.settings, "ring=sequential");
	assert_int_equal(
	    store_user_settings(f->s, SV("nobody"), SV("example.com"), SV("ring=q-value")), ENOENT);
	assert_int_equal(store_user_settings(f->s, SV("old"), SV("example.com"), SV("a\nb")),
			 EINVAL);
	/* a new password leaves the settings alone */
	assert_int_equal(store_user_passwd(f->s, SV("old"), SV("example.com"), SV("pw")), 0);
	assert_int_equal(store_user_get(f->s, SV("old"), SV("example.com"), &u), 0);
	assert_string_equal(u.settings, "ring=sequential");
}

static FILE *csv(const char *text)
{
	FILE *in = fmemopen((void *)text, strlen(text), "r");

	assert_non_null(in);
	return in;
}

static void test_import(void **state)
{
	struct fixture *f = *state;
	struct store_user u;
	size_t count = 99, bad = 99;
	char md5[33];
	FILE *in;

	assert_int_equal(store_user_add(f->s, SV("carol"), SV("example.com"), SV("old")), 0);
	in = csv("User, Domain ,Password\r\n"
		 "# provisioning batch 1\r\n"
		 "\r\n"
		 "alice,Example.COM,secret\r\n"
		 "  bob , example.org , p w\r\n"
		 "   \n"
		 "carol,example.com,new\n"
		 "dave,example.com,no newline at the end");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), 0);
	fclose(in);
	assert_int_equal(count, 4);
	assert_int_equal(bad, 0);

	assert_int_equal(store_user_get(f->s, SV("alice"), SV("example.com"), &u), 0);
	assert_string_equal(u.ha1_md5, ALICE_MD5);
	/* user and domain are trimmed, the password is kept exactly */
	assert_int_equal(store_user_get(f->s, SV("bob"), SV("example.org"), &u), 0);
	store_ha1_md5(SV("bob"), SV("example.org"), SV(" p w"), md5);
	assert_string_equal(u.ha1_md5, md5);
	/* an existing user gets the new password */
	assert_int_equal(store_user_get(f->s, SV("carol"), SV("example.com"), &u), 0);
	store_ha1_md5(SV("carol"), SV("example.com"), SV("new"), md5);
	assert_string_equal(u.ha1_md5, md5);
	store_ha1_md5(SV("dave"), SV("example.com"), SV("no newline at the end"), md5);
	assert_int_equal(store_user_get(f->s, SV("dave"), SV("example.com"), &u), 0);
	assert_string_equal(u.ha1_md5, md5);
}

/* Additions, and only additions, change the sentinel a server stats (the name set's freshness). */
static void test_users_stamp(void **state)
{
	struct fixture *f = *state;
	struct store_stamp a, b, c;
	size_t count, bad;
	FILE *in;

	assert_int_equal(store_users_stamp(f->path, &a), 0);
	assert_false(a.exists);
	assert_int_equal(store_user_add(f->s, SV("alice"), SV("example.com"), SV("x")), 0);
	assert_int_equal(store_users_stamp(f->path, &b), 0);
	assert_true(b.exists);
	assert_false(store_stamp_eq(&a, &b));
	/* a change of password or settings, or a failed addition, is not an addition */
	assert_int_equal(store_user_passwd(f->s, SV("alice"), SV("example.com"), SV("y")), 0);
	assert_int_equal(store_user_add(f->s, SV("alice"), SV("example.com"), SV("x")), EEXIST);
	assert_int_equal(store_users_stamp(f->path, &c), 0);
	assert_true(store_stamp_eq(&b, &c));
	/* inside a transaction the commit tells again */
	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_user_add(f->s, SV("bob"), SV("example.com"), SV("x")), 0);
	assert_int_equal(store_users_stamp(f->path, &b), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_users_stamp(f->path, &c), 0);
	assert_false(store_stamp_eq(&b, &c));
	in = csv("carol,example.com,pw\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), 0);
	fclose(in);
	assert_int_equal(store_users_stamp(f->path, &b), 0);
	assert_false(store_stamp_eq(&b, &c));
	/* the sentinel starts again when long, and still differs */
	for (int i = 0; i < 4200; i++) {
		char name[16];
		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(store_user_add(f->s, sv_cstr(name), SV("example.com"), SV("x")),
				 0);
		assert_int_equal(store_users_stamp(f->path, &c), 0);
		assert_false(store_stamp_eq(&b, &c));
		b = c;
	}
	assert_int_equal(store_users_stamp(":memory:", &a), ENOTSUP);
	assert_int_equal(store_users_stamp("sqlite:file:x.db?mode=ro", &a), ENOTSUP);
}

static void test_import_bad_line(void **state)
{
	struct fixture *f = *state;
	struct store_user u;
	size_t count = 99, bad = 99;
	FILE *in;

	assert_int_equal(store_user_add(f->s, SV("carol"), SV("example.com"), SV("old")), 0);
	in = csv("user,domain,password\n"
		 "alice,example.com,secret\n"
		 "carol,example.com,new\n"
		 "# fine so far\n"
		 "bad user,example.com,pw\n"
		 "zed,example.com,pw\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), EINVAL);
	fclose(in);
	assert_int_equal(count, 0);
	assert_int_equal(bad, 5);
	assert_string_equal(store_errmsg(f->s), "user name 'bad user' contains whitespace");
	/* rolled back: nothing added, nothing changed */
	assert_int_equal(store_user_get(f->s, SV("alice"), SV("example.com"), &u), ENOENT);
	assert_int_equal(store_user_get(f->s, SV("carol"), SV("example.com"), &u), 0);
	char md5[33];
	store_ha1_md5(SV("carol"), SV("example.com"), SV("old"), md5);
	assert_string_equal(u.ha1_md5, md5);

	in = csv("alice,example.com,pw,extra\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), EINVAL);
	fclose(in);
	assert_int_equal(bad, 1);
	assert_string_equal(store_errmsg(f->s), "expected 3 fields (user,domain,password), found 4 "
						"(a password cannot contain ',')");
	in = csv("\n\nalice example.com\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), EINVAL);
	fclose(in);
	assert_int_equal(bad, 3);
	in = csv("alice,example.com,\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), EINVAL);
	fclose(in);
	assert_string_equal(store_errmsg(f->s), "password is empty");
	/* a header is only a header on the first line with content */
	in = csv("alice,example.com,pw\nuser,domain,password\n");
	assert_int_equal(store_user_import_csv(f->s, in, &count, &bad), 0);
	fclose(in);
	assert_int_equal(count, 2);
	assert_int_equal(store_user_get(f->s, SV("user"), SV("domain"), &u), 0);
	/* the handle is usable after all that */
	assert_int_equal(store_user_add(f->s, SV("erin"), SV("example.com"), SV("pw")), 0);
}

static struct store_binding binding(const char *aor, const char *contact, uint16_t q,
				    int64_t expires)
{
	struct store_binding b = {.q = q, .expires = expires, .cseq = 7, .reg_id = 1};

	snprintf(b.aor, sizeof(b.aor), "%s", aor);
	snprintf(b.contact, sizeof(b.contact), "%s", contact);
	snprintf(b.received, sizeof(b.received), "udp:192.0.2.1:5060");
	snprintf(b.user_agent, sizeof(b.user_agent), "test-phone/1.0");
	snprintf(b.callid, sizeof(b.callid), "call-%s", contact);
	return b;
}

struct bindings {
	struct store_binding b[8];
	size_t n;
};

static int collect_binding(void *arg, const struct store_binding *b)
{
	struct bindings *c = arg;

	if (c->n < 8)
		c->b[c->n] = *b;
	c->n++;
	return 0;
}

static void test_bindings(void **state)
{
	struct fixture *f = *state;
	struct store_binding b;
	struct bindings got = {0};
	size_t purged = 99;

	b = binding("bob@Example.COM", "sip:bob@192.0.2.9", 500, 2000);
	assert_int_equal(store_binding_put(f->s, &b), 0);
	b = binding("bob@example.com", "sip:bob@192.0.2.8", 1000, 1000);
	assert_int_equal(store_binding_put(f->s, &b), 0);
	b = binding("bob@example.com", "sip:bob@192.0.2.7", 500, 3000);
	assert_int_equal(store_binding_put(f->s, &b), 0);
	b = binding("alice@example.com", "sip:alice@192.0.2.1", 100, 3000);
	assert_int_equal(store_binding_put(f->s, &b), 0);

	assert_int_equal(store_binding_list(f->s, NULL, collect_binding, &got), 0);
	assert_int_equal(got.n, 4);
	assert_string_equal(got.b[0].aor, "alice@example.com");
	assert_string_equal(got.b[1].contact, "sip:bob@192.0.2.8"); /* q 1.0 first */
	assert_string_equal(got.b[2].contact, "sip:bob@192.0.2.7"); /* then by contact */
	assert_string_equal(got.b[3].contact, "sip:bob@192.0.2.9");
	assert_string_equal(got.b[3].aor, "bob@example.com");
	assert_int_equal(got.b[3].q, 500);
	assert_int_equal(got.b[3].expires, 2000);
	assert_int_equal(got.b[3].cseq, 7);
	assert_int_equal(got.b[3].reg_id, 1);
	assert_string_equal(got.b[3].received, "udp:192.0.2.1:5060");
	assert_string_equal(got.b[3].user_agent, "test-phone/1.0");
	assert_string_equal(got.b[3].callid, "call-sip:bob@192.0.2.9");
	assert_true(got.b[3].updated > 0);

	/* a re-registration of the same contact updates it in place */
	b = binding("bob@example.com", "sip:bob@192.0.2.9", 900, 5000);
	b.cseq = 8;
	assert_int_equal(store_binding_put(f->s, &b), 0);
	got = (struct bindings){0};
	assert_int_equal(store_binding_list(f->s, "bob@example.COM", collect_binding, &got), 0);
	assert_int_equal(got.n, 3);
	assert_string_equal(got.b[1].contact, "sip:bob@192.0.2.9");
	assert_int_equal(got.b[1].q, 900);
	assert_int_equal(got.b[1].cseq, 8);
	assert_int_equal(got.b[1].expires, 5000);

	assert_int_equal(store_binding_del(f->s, "bob@example.com", "sip:bob@192.0.2.9"), 0);
	assert_int_equal(store_binding_del(f->s, "bob@example.com", "sip:bob@192.0.2.9"), ENOENT);
	assert_int_equal(store_binding_purge(f->s, 1000, &purged), 0);
	assert_int_equal(purged, 1); /* .8, expires 1000 */
	assert_int_equal(store_binding_del_aor(f->s, "bob@example.com"), 0);
	got = (struct bindings){0};
	assert_int_equal(store_binding_list(f->s, NULL, collect_binding, &got), 0);
	assert_int_equal(got.n, 1);
	assert_string_equal(got.b[0].aor, "alice@example.com");

	b = binding("bob@example.com", "sip:x", 1001, 1);
	assert_int_equal(store_binding_put(f->s, &b), EINVAL);
	b = binding("bob@example.com", "", 1000, 1);
	assert_int_equal(store_binding_put(f->s, &b), EINVAL);
}

static void test_transactions(void **state)
{
	struct fixture *f = *state;
	struct store_binding b = binding("bob@example.com", "sip:bob@h", 1000, 100);
	struct bindings got = {0};

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_binding_put(f->s, &b), 0);
	assert_int_equal(store_rollback(f->s), 0);
	assert_int_equal(store_binding_list(f->s, NULL, collect_binding, &got), 0);
	assert_int_equal(got.n, 0);

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(store_binding_put(f->s, &b), 0);
	assert_int_equal(store_commit(f->s), 0);
	assert_int_equal(store_binding_list(f->s, NULL, collect_binding, &got), 0);
	assert_int_equal(got.n, 1);
	assert_int_not_equal(store_commit(f->s), 0); /* no transaction open */
}

static void test_data_version(void **state)
{
	struct fixture *f = *state;
	struct store *cli = reopen(f);
	uint64_t v1, v2, v3;

	assert_int_equal(store_data_version(f->s, &v1), 0);
	assert_int_equal(store_data_version(f->s, &v2), 0);
	assert_true(v1 == v2);
	assert_int_equal(store_user_add(cli, SV("alice"), SV("example.com"), SV("pw")), 0);
	assert_int_equal(store_data_version(f->s, &v3), 0);
	assert_true(v3 != v2);
	store_close(cli);
}

struct rec_seen {
	char keys[8][STORE_KEY_MAX];
	int64_t seqs[8];
	size_t n;
	bool had_body;
};

static int rec_row(void *arg, const struct store_record *r)
{
	struct rec_seen *c = arg;

	if (c->n < 8)
		snprintf(c->keys[c->n++], sizeof(c->keys[0]), "%s", r->key);
	c->had_body |= r->body_len > 0;
	return 0;
}

static int rec_key(void *arg, const char *key, int64_t seq)
{
	struct rec_seen *c = arg;

	if (c->n < 8) {
		c->seqs[c->n] = seq;
		snprintf(c->keys[c->n++], sizeof(c->keys[0]), "%s", key);
	}
	return 0;
}

/* Service records: replace by key, order by owner then seq, keys alone, delete, purge. */
static void test_records(void **state)
{
	struct fixture *f = *state;
	struct store_record r = {.kind = STORE_REC_MESSAGE, .meta = "From: <sip:a@x>\r\n"};
	struct rec_seen c = {.n = 0};
	size_t purged = 0;

	r.body = "hello";
	r.body_len = 5;
	for (int i = 3; i >= 1; i--) {
		snprintf(r.key, sizeof(r.key), "m%d", i);
		strcpy(r.owner, "bob@x");
		r.seq = i;
		r.expires = i == 2 ? 1 : 0; /* m2 expired long ago */
		assert_int_equal(store_record_put(f->s, &r), 0);
	}
	r.seq = 9; /* replace m1: one record still, now last */
	assert_int_equal(store_record_put(f->s, &r), 0);
	assert_int_equal(store_record_list(f->s, STORE_REC_MESSAGE, "bob@x", rec_row, &c), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.keys[0], "m2");
	assert_string_equal(c.keys[2], "m1");
	assert_true(c.had_body);
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_record_keys(f->s, STORE_REC_MESSAGE, rec_key, &c), 0);
	assert_int_equal(c.n, 3);
	for (size_t i = 0; i < c.n; i++)
		assert_int_equal(c.seqs[i], strcmp(c.keys[i], "m1") == 0 ? 9 : c.keys[i][1] - '0');
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_record_keys(f->s, STORE_REC_TOPIC, rec_key, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(store_record_purge(f->s, 100, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(store_record_del(f->s, STORE_REC_MESSAGE, "m3"), 0);
	assert_int_equal(store_record_del(f->s, STORE_REC_MESSAGE, "m3"), ENOENT);
	r.kind = 99;
	assert_int_equal(store_record_put(f->s, &r), EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_users, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_user_validation, setup, teardown),
	    cmocka_unit_test(test_ha1_vectors),
	    cmocka_unit_test_setup_teardown(test_user_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import_bad_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bindings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_users_stamp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
