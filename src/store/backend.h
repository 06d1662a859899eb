/*
 * backend.h - the contract between store.c and a storage backend; internal to
 * the store module, not part of its API.
 *
 * store.c owns everything that must behave the same whatever the database:
 * input validation, lowercasing domains, hashing passwords, CSV parsing and
 * picking the backend from the location string. A backend only persists
 * already-checked values, so adding PostgreSQL or Redis means one new file
 * with one ops table and one line in store.c's backend list.
 */
#ifndef SB_STORE_BACKEND_H
#define SB_STORE_BACKEND_H

#include <openssl/evp.h>

#include "store/store.h"

/*
 * Every string argument is NUL-terminated and valid; domains and AOR domains
 * are already lowercase. Failures return an errno and set s->errmsg.
 */
struct store_ops {
	void (*close)(struct store *s);
	int (*user_add)(struct store *s, const struct store_user *u, int64_t now);    /* EEXIST */
	int (*user_put)(struct store *s, const struct store_user *u, int64_t now);    /* upsert */
	int (*user_passwd)(struct store *s, const struct store_user *u, int64_t now); /* ENOENT */
	int (*user_del)(struct store *s, const char *user, const char *domain);	      /* ENOENT */
	int (*user_get)(struct store *s, const char *user, const char *domain,
			struct store_user *out); /* ENOENT */
	int (*user_list)(struct store *s, const char *domain, store_user_fn fn, void *arg);
	int (*user_settings)(struct store *s, const char *user, const char *domain,
			     const char *settings, int64_t now); /* ENOENT */
	int (*binding_put)(struct store *s, const struct store_binding *b);
	int (*binding_del)(struct store *s, const char *aor, const char *contact); /* ENOENT */
	int (*binding_del_aor)(struct store *s, const char *aor);
	int (*binding_list)(struct store *s, const char *aor, store_binding_fn fn, void *arg);
	int (*binding_purge)(struct store *s, int64_t now, size_t *purged);
	int (*record_put)(struct store *s, const struct store_record *r);
	int (*record_del)(struct store *s, int kind, const char *key); /* ENOENT */
	int (*record_list)(struct store *s, int kind, const char *owner, store_record_fn fn,
			   void *arg);
	int (*record_keys)(struct store *s, int kind, store_record_key_fn fn, void *arg);
	int (*record_purge)(struct store *s, int64_t now, size_t *purged);
	int (*begin)(struct store *s);
	int (*commit)(struct store *s);
	int (*rollback)(struct store *s);
	int (*data_version)(struct store *s, uint64_t *version);
};

/* Reused digest state, so a 100,000-line import does not fetch algorithms per line. */
struct store_hasher {
	EVP_MD_CTX *ctx;
	EVP_MD *md5;
	EVP_MD *sha256;
};

/* The part of a handle every backend shares; a backend's handle embeds it first. */
struct store {
	const struct store_ops *ops;
	struct store_hasher hasher; /* filled on first use */
	char errmsg[256];
	char users_sentinel[4096]; /* "" = none (store_users_stamp) */
	bool users_added;	   /* an addition waits for the commit to be told */
};

/* Formats s->errmsg and returns rc, so a failure is one line: return store_fail(...). */
int store_fail(struct store *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* location is the path, with any "sqlite:" prefix already removed. */
int store_sqlite_open(const char *location, struct store **out, char *err, size_t errlen);

#endif
