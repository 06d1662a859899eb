/*
 * sqlite.c - the embedded SQLite backend of the store, the default.
 *
 * One database file is shared by the server and the CLI, so it runs in WAL
 * mode (readers never block the writer) with a busy timeout (a CLI write
 * waits instead of failing while the server flushes). The schema carries its
 * version in PRAGMA user_version and grows only by appending migration steps,
 * so any older database is brought up to date on open. Every statement is
 * prepared once per handle: the registrar's hot path never re-parses SQL.
 */
#include "store/backend.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define STORE_SQ_BUSY_MS 5000

/*
 * Schema migrations: step i brings user_version from i to i + 1. Append new
 * steps; never edit one that has shipped.
 */
static const char *const store_sq_migrations[] = {
    "CREATE TABLE subscriber("
    " id INTEGER PRIMARY KEY,"
    " username TEXT NOT NULL,"
    " domain TEXT NOT NULL,"
    " ha1_md5 TEXT NOT NULL,"
    " ha1_sha256 TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " UNIQUE(username, domain));"
    "CREATE TABLE location("
    " id INTEGER PRIMARY KEY,"
    " aor TEXT NOT NULL,"
    " contact TEXT NOT NULL,"
    " received TEXT NOT NULL DEFAULT '',"
    " path TEXT NOT NULL DEFAULT '',"
    " instance TEXT NOT NULL DEFAULT '',"
    " user_agent TEXT NOT NULL DEFAULT '',"
    " callid TEXT NOT NULL DEFAULT '',"
    " cseq INTEGER NOT NULL DEFAULT 0,"
    " expires INTEGER NOT NULL,"
    " q INTEGER NOT NULL DEFAULT 1000,"
    " reg_id INTEGER NOT NULL DEFAULT 0,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " updated INTEGER NOT NULL,"
    " UNIQUE(aor, contact));"
    "CREATE INDEX location_expires ON location(expires);",
    /* 2: per-user call settings (services/settings.h), one canonical line */
    "ALTER TABLE subscriber ADD COLUMN settings TEXT NOT NULL DEFAULT '';",
    /* 3: messaging, presence and topic state (store_record) */
    "CREATE TABLE record("
    " kind INTEGER NOT NULL,"
    " key TEXT NOT NULL,"
    " owner TEXT NOT NULL DEFAULT '',"
    " seq INTEGER NOT NULL DEFAULT 0,"
    " expires INTEGER NOT NULL DEFAULT 0,"
    " meta TEXT NOT NULL DEFAULT '',"
    " body BLOB,"
    " PRIMARY KEY(kind, key));"
    "CREATE INDEX record_owner ON record(kind, owner, seq);",
};

#define STORE_SQ_NMIGRATIONS (sizeof(store_sq_migrations) / sizeof(store_sq_migrations[0]))

enum store_sq_stmt {
	STORE_SQ_USER_ADD,
	STORE_SQ_USER_PUT,
	STORE_SQ_USER_PASSWD,
	STORE_SQ_USER_DEL,
	STORE_SQ_USER_GET,
	STORE_SQ_USER_LIST,
	STORE_SQ_USER_SETTINGS,
	STORE_SQ_BIND_PUT,
	STORE_SQ_BIND_DEL,
	STORE_SQ_BIND_DEL_AOR,
	STORE_SQ_BIND_LIST_ALL,
	STORE_SQ_BIND_LIST_AOR,
	STORE_SQ_BIND_PURGE,
	STORE_SQ_REC_PUT,
	STORE_SQ_REC_DEL,
	STORE_SQ_REC_LIST_ALL,
	STORE_SQ_REC_LIST_OWNER,
	STORE_SQ_REC_KEYS,
	STORE_SQ_REC_PURGE,
	STORE_SQ_BEGIN,
	STORE_SQ_COMMIT,
	STORE_SQ_ROLLBACK,
	STORE_SQ_DATA_VERSION,
	STORE_SQ_COUNT
};

#define STORE_SQ_BIND_COLS                                                                         \
	"aor, contact, received, path, instance, user_agent, callid, cseq, expires, q, reg_id, "   \
	"flags, updated"

static const char *const store_sq_sql[STORE_SQ_COUNT] = {
    [STORE_SQ_USER_ADD] = "INSERT INTO subscriber(username, domain, ha1_md5, ha1_sha256, "
			  "created, updated) VALUES(?1, ?2, ?3, ?4, ?5, ?5) "
			  "ON CONFLICT(username, domain) DO NOTHING",
    [STORE_SQ_USER_PUT] = "INSERT INTO subscriber(username, domain, ha1_md5, ha1_sha256, "
			  "created, updated) VALUES(?1, ?2, ?3, ?4, ?5, ?5) "
			  "ON CONFLICT(username, domain) DO UPDATE SET "
			  "ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256, "
			  "updated = excluded.updated",
    [STORE_SQ_USER_PASSWD] = "UPDATE subscriber SET ha1_md5 = ?3, ha1_sha256 = ?4, "
			     "updated = ?5 WHERE username = ?1 AND domain = ?2",
    [STORE_SQ_USER_DEL] = "DELETE FROM subscriber WHERE username = ?1 AND domain = ?2",
    [STORE_SQ_USER_GET] = "SELECT username, domain, ha1_md5, ha1_sha256, settings FROM subscriber "
			  "WHERE username = ?1 AND domain = ?2",
    [STORE_SQ_USER_LIST] = "SELECT username, domain, ha1_md5, ha1_sha256, settings FROM subscriber "
			   "WHERE ?1 = '' OR domain = ?1 ORDER BY domain, username",
    [STORE_SQ_USER_SETTINGS] = "UPDATE subscriber SET settings = ?3, updated = ?4 "
			       "WHERE username = ?1 AND domain = ?2",
    [STORE_SQ_BIND_PUT] = "INSERT INTO location(" STORE_SQ_BIND_COLS ") VALUES(?1, ?2, ?3, "
			  "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
			  "ON CONFLICT(aor, contact) DO UPDATE SET "
			  "received = excluded.received, path = excluded.path, "
			  "instance = excluded.instance, user_agent = excluded.user_agent, "
			  "callid = excluded.callid, cseq = excluded.cseq, "
			  "expires = excluded.expires, q = excluded.q, "
			  "reg_id = excluded.reg_id, flags = excluded.flags, "
			  "updated = excluded.updated",
    [STORE_SQ_BIND_DEL] = "DELETE FROM location WHERE aor = ?1 AND contact = ?2",
    [STORE_SQ_BIND_DEL_AOR] = "DELETE FROM location WHERE aor = ?1",
    [STORE_SQ_BIND_LIST_ALL] = "SELECT " STORE_SQ_BIND_COLS " FROM location "
			       "ORDER BY aor, q DESC, contact",
    [STORE_SQ_BIND_LIST_AOR] = "SELECT " STORE_SQ_BIND_COLS " FROM location WHERE aor = ?1 "
			       "ORDER BY q DESC, contact",
    [STORE_SQ_BIND_PURGE] = "DELETE FROM location WHERE expires <= ?1",
    [STORE_SQ_REC_PUT] =
	"INSERT OR REPLACE INTO record(kind, key, owner, seq, expires, meta, body) "
	"VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STORE_SQ_REC_DEL] = "DELETE FROM record WHERE kind = ?1 AND key = ?2",
    [STORE_SQ_REC_LIST_ALL] = "SELECT kind, key, owner, seq, expires, meta, body FROM record "
			      "WHERE kind = ?1 ORDER BY owner, seq, key",
    [STORE_SQ_REC_LIST_OWNER] = "SELECT kind, key, owner, seq, expires, meta, body FROM record "
				"WHERE kind = ?1 AND owner = ?2 ORDER BY seq, key",
    [STORE_SQ_REC_KEYS] = "SELECT key, seq FROM record WHERE kind = ?1",
    [STORE_SQ_REC_PURGE] = "DELETE FROM record WHERE expires > 0 AND expires <= ?1",
    [STORE_SQ_BEGIN] = "BEGIN IMMEDIATE",
    [STORE_SQ_COMMIT] = "COMMIT",
    [STORE_SQ_ROLLBACK] = "ROLLBACK",
    [STORE_SQ_DATA_VERSION] = "PRAGMA data_version",
};

struct store_sq {
	struct store base; /* first: a struct store * is a struct store_sq * */
	sqlite3 *db;
	sqlite3_stmt *stmt[STORE_SQ_COUNT];
};

static struct store_sq *store_sq(struct store *s)
{
	return (struct store_sq *)s;
}

static int store_sq_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_READONLY:
		return EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_CONSTRAINT:
		return EEXIST;
	case SQLITE_TOOBIG:
		return E2BIG;
	default:
		return EIO;
	}
}

/* Records the database's own message and maps its code to an errno. */
static int store_sq_fail(struct store_sq *q, int rc)
{
	return store_fail(&q->base, store_sq_errno(rc), "%s", sqlite3_errmsg(q->db));
}

/* ---------------------------------------------------------------- opening */

/* mkdir -p of the directory part of path; the database file itself is not created. */
static int store_sq_mkdirs(const char *path, char *err, size_t errlen)
{
	char *dir = strdup(path);
	int rc = 0;

	if (!dir) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0750) && errno != EEXIST) {
			rc = errno;
			snprintf(err, errlen, "cannot create directory '%.200s': %s", dir,
				 strerror(rc));
			goto out;
		}
		*p = '/';
	}
out:
	free(dir);
	return rc;
}

/* A new database holds password hashes: create it readable by its owner only. */
static int store_sq_create_private(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = fd < 0 ? errno : 0;

	struct stat st;

	if (fd >= 0)
		close(fd);
	if (rc == EEXIST && stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		log_warn("database %s is open to other users (mode %03o): it holds password hashes "
			 "and the route key; chmod 600 it",
			 path, (unsigned)(st.st_mode & 0777));
	if (rc == 0 || rc == EEXIST)
		return 0;
	snprintf(err, errlen, "cannot create the file: %s", strerror(rc));
	return rc;
}

static int store_sq_exec(struct store_sq *q, const char *sql)
{
	int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_sq_fail(q, rc);
}

static int store_sq_pragma_int(struct store_sq *q, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		rc = store_sq_fail(q, rc);
	sqlite3_finalize(st);
	return rc;
}

static int store_sq_apply_migrations(struct store_sq *q, int64_t from)
{
	char sql[64];
	int rc = 0;

	for (size_t i = (size_t)from; i < STORE_SQ_NMIGRATIONS && !rc; i++)
		rc = store_sq_exec(q, store_sq_migrations[i]);
	if (!rc) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %zu", STORE_SQ_NMIGRATIONS);
		rc = store_sq_exec(q, sql);
	}
	return rc;
}

/* The version is read again inside the write transaction: another process may have migrated. */
static int store_sq_migrate(struct store_sq *q)
{
	int64_t version = 0;
	int rc;

	rc = store_sq_pragma_int(q, "PRAGMA user_version", &version);
	if (rc || version == (int64_t)STORE_SQ_NMIGRATIONS)
		return rc;
	rc = store_sq_exec(q, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	rc = store_sq_pragma_int(q, "PRAGMA user_version", &version);
	if (!rc && (version < 0 || version > (int64_t)STORE_SQ_NMIGRATIONS))
		rc = store_fail(&q->base, EPROTO,
				"database schema version %lld is newer than this program's (%zu)",
				(long long)version, STORE_SQ_NMIGRATIONS);
	if (!rc)
		rc = store_sq_apply_migrations(q, version);
	if (!rc)
		rc = store_sq_exec(q, "COMMIT");
	if (rc)
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int store_sq_prepare_all(struct store_sq *q)
{
	for (int i = 0; i < STORE_SQ_COUNT; i++) {
		int rc = sqlite3_prepare_v3(q->db, store_sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &q->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return store_sq_fail(q, rc);
	}
	return 0;
}

static int store_sq_setup(struct store_sq *q)
{
	int rc;

	sqlite3_busy_timeout(q->db, STORE_SQ_BUSY_MS);
	rc = store_sq_exec(q, "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; "
			      "PRAGMA synchronous = NORMAL");
	if (!rc)
		rc = store_sq_migrate(q);
	if (!rc)
		rc = store_sq_prepare_all(q);
	return rc;
}

static void store_sq_close(struct store *s)
{
	struct store_sq *q = store_sq(s);

	for (int i = 0; i < STORE_SQ_COUNT; i++)
		sqlite3_finalize(q->stmt[i]);
	sqlite3_close(q->db);
	free(q);
}

static const struct store_ops store_sq_ops;

static int store_sq_prepare_file(const char *path, char *err, size_t errlen)
{
	int rc;

	if (strcmp(path, ":memory:") == 0)
		return 0;
	rc = store_sq_mkdirs(path, err, errlen);
	return rc ? rc : store_sq_create_private(path, err, errlen);
}

int store_sqlite_open(const char *path, struct store **out, char *err, size_t errlen)
{
	const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	struct store_sq *q;
	int rc;

	*out = NULL;
	if (!*path) {
		snprintf(err, errlen, "no database path given");
		return EINVAL;
	}
	rc = store_sq_prepare_file(path, err, errlen);
	if (rc)
		return rc;
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	q->base.ops = &store_sq_ops;
	rc = sqlite3_open_v2(path, &q->db, flags, NULL);
	rc = rc == SQLITE_OK ? store_sq_setup(q) : store_sq_fail(q, rc);
	if (rc)
		goto out;
	*out = &q->base;
out:
	if (rc) {
		snprintf(err, errlen, "%s", q->base.errmsg);
		store_sq_close(&q->base);
	}
	return rc;
}

/* ------------------------------------------------------------- statements */

static sqlite3_stmt *store_sq_get(struct store_sq *q, enum store_sq_stmt id)
{
	return q->stmt[id];
}

/* Leaves a statement ready for its next use, with no pointer to our buffers kept. */
static void store_sq_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no rows; *changes gets the rows it touched. */
static int store_sq_run(struct store_sq *q, sqlite3_stmt *st, size_t *changes)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		if (changes)
			*changes = (size_t)sqlite3_changes64(q->db);
		rc = 0;
	} else {
		rc = store_sq_fail(q, rc);
	}
	store_sq_done(st);
	return rc;
}

static void store_sq_text(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Copies a text column into a fixed field, truncating what another writer made too long. */
static void store_sq_col(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *v = sqlite3_column_text(st, i);
	size_t n = v ? (size_t)sqlite3_column_bytes(st, i) : 0;

	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, v, n);
	dst[n] = '\0';
}

/* ------------------------------------------------------------ subscribers */

static void store_sq_bind_user(sqlite3_stmt *st, const struct store_user *u, int64_t now)
{
	store_sq_text(st, 1, u->user);
	store_sq_text(st, 2, u->domain);
	store_sq_text(st, 3, u->ha1_md5);
	store_sq_text(st, 4, u->ha1_sha256);
	sqlite3_bind_int64(st, 5, now);
}

static int store_sq_user_write(struct store *s, enum store_sq_stmt id, const struct store_user *u,
			       int64_t now, size_t *changes)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, id);

	store_sq_bind_user(st, u, now);
	return store_sq_run(q, st, changes);
}

static int store_sq_user_add(struct store *s, const struct store_user *u, int64_t now)
{
	size_t n = 0;
	int rc = store_sq_user_write(s, STORE_SQ_USER_ADD, u, now, &n);

	if (!rc && n == 0)
		rc = store_fail(s, EEXIST, "user already exists");
	return rc;
}

static int store_sq_user_put(struct store *s, const struct store_user *u, int64_t now)
{
	return store_sq_user_write(s, STORE_SQ_USER_PUT, u, now, NULL);
}

static int store_sq_user_passwd(struct store *s, const struct store_user *u, int64_t now)
{
	size_t n = 0;
	int rc = store_sq_user_write(s, STORE_SQ_USER_PASSWD, u, now, &n);

	if (!rc && n == 0)
		rc = store_fail(s, ENOENT, "no such user");
	return rc;
}

static int store_sq_user_del(struct store *s, const char *user, const char *domain)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_USER_DEL);
	size_t n = 0;
	int rc;

	store_sq_text(st, 1, user);
	store_sq_text(st, 2, domain);
	rc = store_sq_run(q, st, &n);
	if (!rc && n == 0)
		rc = store_fail(s, ENOENT, "no such user");
	return rc;
}

static void store_sq_row_user(sqlite3_stmt *st, struct store_user *u)
{
	store_sq_col(st, 0, u->user, sizeof(u->user));
	store_sq_col(st, 1, u->domain, sizeof(u->domain));
	store_sq_col(st, 2, u->ha1_md5, sizeof(u->ha1_md5));
	store_sq_col(st, 3, u->ha1_sha256, sizeof(u->ha1_sha256));
	store_sq_col(st, 4, u->settings, sizeof(u->settings));
}

static int store_sq_user_settings(struct store *s, const char *user, const char *domain,
				  const char *settings, int64_t now)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_USER_SETTINGS);
	size_t n = 0;
	int rc;

	store_sq_text(st, 1, user);
	store_sq_text(st, 2, domain);
	store_sq_text(st, 3, settings);
	sqlite3_bind_int64(st, 4, now);
	rc = store_sq_run(q, st, &n);
	if (!rc && n == 0)
		rc = store_fail(s, ENOENT, "no such user");
	return rc;
}

static int store_sq_user_get(struct store *s, const char *user, const char *domain,
			     struct store_user *out)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_USER_GET);
	int rc;

	store_sq_text(st, 1, user);
	store_sq_text(st, 2, domain);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		store_sq_row_user(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = store_fail(s, ENOENT, "no such user");
	} else {
		rc = store_sq_fail(q, rc);
	}
	store_sq_done(st);
	return rc;
}

static int store_sq_user_list(struct store *s, const char *domain, store_user_fn fn, void *arg)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_USER_LIST);
	struct store_user u;
	int rc;

	store_sq_text(st, 1, domain);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_sq_row_user(st, &u);
		rc = fn(arg, &u);
		if (rc)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : store_sq_fail(q, rc);
out:
	store_sq_done(st);
	return rc;
}

/* --------------------------------------------------------------- bindings */

static int store_sq_binding_put(struct store *s, const struct store_binding *b)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_BIND_PUT);

	store_sq_text(st, 1, b->aor);
	store_sq_text(st, 2, b->contact);
	store_sq_text(st, 3, b->received);
	store_sq_text(st, 4, b->path);
	store_sq_text(st, 5, b->instance);
	store_sq_text(st, 6, b->user_agent);
	store_sq_text(st, 7, b->callid);
	sqlite3_bind_int64(st, 8, b->cseq);
	sqlite3_bind_int64(st, 9, b->expires);
	sqlite3_bind_int64(st, 10, b->q);
	sqlite3_bind_int64(st, 11, b->reg_id);
	sqlite3_bind_int64(st, 12, b->flags);
	sqlite3_bind_int64(st, 13, b->updated);
	return store_sq_run(q, st, NULL);
}

static int store_sq_binding_del(struct store *s, const char *aor, const char *contact)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_BIND_DEL);
	size_t n = 0;
	int rc;

	store_sq_text(st, 1, aor);
	store_sq_text(st, 2, contact);
	rc = store_sq_run(q, st, &n);
	if (!rc && n == 0)
		rc = store_fail(s, ENOENT, "no such binding");
	return rc;
}

static int store_sq_binding_del_aor(struct store *s, const char *aor)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_BIND_DEL_AOR);

	store_sq_text(st, 1, aor);
	return store_sq_run(q, st, NULL);
}

static uint32_t store_sq_u32(sqlite3_stmt *st, int i)
{
	int64_t v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void store_sq_row_binding(sqlite3_stmt *st, struct store_binding *b)
{
	uint32_t qv = store_sq_u32(st, 9);

	store_sq_col(st, 0, b->aor, sizeof(b->aor));
	store_sq_col(st, 1, b->contact, sizeof(b->contact));
	store_sq_col(st, 2, b->received, sizeof(b->received));
	store_sq_col(st, 3, b->path, sizeof(b->path));
	store_sq_col(st, 4, b->instance, sizeof(b->instance));
	store_sq_col(st, 5, b->user_agent, sizeof(b->user_agent));
	store_sq_col(st, 6, b->callid, sizeof(b->callid));
	b->cseq = store_sq_u32(st, 7);
	b->expires = sqlite3_column_int64(st, 8);
	b->q = (uint16_t)(qv > 1000 ? 1000 : qv);
	b->reg_id = store_sq_u32(st, 10);
	b->flags = store_sq_u32(st, 11);
	b->updated = sqlite3_column_int64(st, 12);
}

/* Runs row() on each result row of st, up to its first non-zero; then resets st. */
static int store_sq_each(struct store_sq *q, sqlite3_stmt *st, int (*row)(sqlite3_stmt *, void *),
			 void *ctx)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = row(st, ctx);
		if (rc)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : store_sq_fail(q, rc);
out:
	store_sq_done(st);
	return rc;
}

struct store_sq_bindings {
	struct store_binding b;
	store_binding_fn fn;
	void *arg;
};

static int store_sq_binding_row(sqlite3_stmt *st, void *ctx)
{
	struct store_sq_bindings *c = ctx;

	store_sq_row_binding(st, &c->b);
	return c->fn(c->arg, &c->b);
}

static int store_sq_binding_list(struct store *s, const char *aor, store_binding_fn fn, void *arg)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, aor ? STORE_SQ_BIND_LIST_AOR : STORE_SQ_BIND_LIST_ALL);
	struct store_sq_bindings *c = malloc(sizeof(*c));
	int rc;

	if (!c)
		return store_fail(s, ENOMEM, "out of memory");
	c->fn = fn;
	c->arg = arg;
	if (aor)
		store_sq_text(st, 1, aor);
	rc = store_sq_each(q, st, store_sq_binding_row, c);
	free(c);
	return rc;
}

static int store_sq_binding_purge(struct store *s, int64_t now, size_t *purged)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_BIND_PURGE);

	sqlite3_bind_int64(st, 1, now);
	return store_sq_run(q, st, purged);
}

/* ---------------------------------------------------------------- records */

static int store_sq_record_put(struct store *s, const struct store_record *r)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_REC_PUT);

	sqlite3_bind_int(st, 1, r->kind);
	store_sq_text(st, 2, r->key);
	store_sq_text(st, 3, r->owner);
	sqlite3_bind_int64(st, 4, r->seq);
	sqlite3_bind_int64(st, 5, r->expires);
	store_sq_text(st, 6, r->meta ? r->meta : "");
	sqlite3_bind_blob64(st, 7, r->body_len ? r->body : "", r->body_len, SQLITE_STATIC);
	return store_sq_run(q, st, NULL);
}

static int store_sq_record_del(struct store *s, int kind, const char *key)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_REC_DEL);
	size_t n = 0;
	int rc;

	sqlite3_bind_int(st, 1, kind);
	store_sq_text(st, 2, key);
	rc = store_sq_run(q, st, &n);
	if (!rc && n == 0)
		rc = store_fail(s, ENOENT, "no such record");
	return rc;
}

struct store_sq_records {
	struct store_record r;
	store_record_fn fn;
	void *arg;
};

static int store_sq_record_row(sqlite3_stmt *st, void *ctx)
{
	struct store_sq_records *c = ctx;
	struct store_record *r = &c->r;

	r->kind = sqlite3_column_int(st, 0);
	store_sq_col(st, 1, r->key, sizeof(r->key));
	store_sq_col(st, 2, r->owner, sizeof(r->owner));
	r->seq = sqlite3_column_int64(st, 3);
	r->expires = sqlite3_column_int64(st, 4);
	r->meta = (const char *)sqlite3_column_text(st, 5);
	if (!r->meta)
		r->meta = "";
	r->body = sqlite3_column_blob(st, 6);
	r->body_len = (size_t)sqlite3_column_bytes(st, 6);
	return c->fn(c->arg, r);
}

static int store_sq_record_list(struct store *s, int kind, const char *owner, store_record_fn fn,
				void *arg)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, owner ? STORE_SQ_REC_LIST_OWNER : STORE_SQ_REC_LIST_ALL);
	struct store_sq_records *c = malloc(sizeof(*c));
	int rc;

	if (!c)
		return store_fail(s, ENOMEM, "out of memory");
	c->fn = fn;
	c->arg = arg;
	sqlite3_bind_int(st, 1, kind);
	if (owner)
		store_sq_text(st, 2, owner);
	rc = store_sq_each(q, st, store_sq_record_row, c);
	free(c);
	return rc;
}

struct store_sq_keys {
	store_record_key_fn fn;
	void *arg;
};

static int store_sq_key_row(sqlite3_stmt *st, void *ctx)
{
	struct store_sq_keys *c = ctx;
	const char *key = (const char *)sqlite3_column_text(st, 0);

	return c->fn(c->arg, key ? key : "", sqlite3_column_int64(st, 1));
}

static int store_sq_record_keys(struct store *s, int kind, store_record_key_fn fn, void *arg)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_REC_KEYS);
	struct store_sq_keys c = {fn, arg};

	sqlite3_bind_int(st, 1, kind);
	return store_sq_each(q, st, store_sq_key_row, &c);
}

static int store_sq_record_purge(struct store *s, int64_t now, size_t *purged)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_REC_PURGE);

	sqlite3_bind_int64(st, 1, now);
	return store_sq_run(q, st, purged);
}

/* ------------------------------------------------------ transactions, misc */

static int store_sq_simple(struct store *s, enum store_sq_stmt id)
{
	struct store_sq *q = store_sq(s);

	return store_sq_run(q, store_sq_get(q, id), NULL);
}

static int store_sq_begin(struct store *s)
{
	return store_sq_simple(s, STORE_SQ_BEGIN);
}

static int store_sq_commit(struct store *s)
{
	return store_sq_simple(s, STORE_SQ_COMMIT);
}

static int store_sq_rollback(struct store *s)
{
	return store_sq_simple(s, STORE_SQ_ROLLBACK);
}

static int store_sq_data_version(struct store *s, uint64_t *version)
{
	struct store_sq *q = store_sq(s);
	sqlite3_stmt *st = store_sq_get(q, STORE_SQ_DATA_VERSION);
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*version = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = store_sq_fail(q, rc);
	}
	store_sq_done(st);
	return rc;
}

static const struct store_ops store_sq_ops = {
    .close = store_sq_close,
    .user_add = store_sq_user_add,
    .user_put = store_sq_user_put,
    .user_passwd = store_sq_user_passwd,
    .user_del = store_sq_user_del,
    .user_get = store_sq_user_get,
    .user_list = store_sq_user_list,
    .user_settings = store_sq_user_settings,
    .binding_put = store_sq_binding_put,
    .binding_del = store_sq_binding_del,
    .binding_del_aor = store_sq_binding_del_aor,
    .binding_list = store_sq_binding_list,
    .binding_purge = store_sq_binding_purge,
    .record_put = store_sq_record_put,
    .record_del = store_sq_record_del,
    .record_list = store_sq_record_list,
    .record_keys = store_sq_record_keys,
    .record_purge = store_sq_record_purge,
    .begin = store_sq_begin,
    .commit = store_sq_commit,
    .rollback = store_sq_rollback,
    .data_version = store_sq_data_version,
};
