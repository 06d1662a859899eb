/*
 * store.h - persistent data behind one interface: subscribers (users with
 * their HA1 hashes) and location bindings.
 *
 * The interface is synchronous and not thread-safe: a store handle belongs to
 * one thread. Workers never call it: they go through the database thread
 * (server/dbq.h), so a slow disk never stalls a SIP event loop. The CLI calls
 * it directly. SQLite is the embedded default; the backend is picked from the
 * location string so that PostgreSQL and Redis can be added behind the same
 * functions ("postgres://...", "redis://..."), without touching callers.
 */
#ifndef SB_STORE_H
#define SB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/sv.h"

#define STORE_USER_MAX	   128
#define STORE_DOMAIN_MAX   128
#define STORE_URI_MAX	   512
#define STORE_SETTINGS_MAX 1024

struct store;

struct store_user {
	char user[STORE_USER_MAX];
	char domain[STORE_DOMAIN_MAX];
	char ha1_md5[33];    /* lowercase hex MD5(user:domain:password) */
	char ha1_sha256[65]; /* lowercase hex SHA-256(user:domain:password) */
	char
	    settings[STORE_SETTINGS_MAX]; /* call settings, "key=value ..." (services/settings.h) */
};

struct store_binding {
	char aor[STORE_USER_MAX + STORE_DOMAIN_MAX + 2]; /* user@domain, lowercase domain */
	char contact[STORE_URI_MAX];			 /* the Contact URI as registered */
	char received[80];	  /* source of the REGISTER: "udp:IP:PORT" / "tcp:[IPv6]:PORT" */
	char path[STORE_URI_MAX]; /* Path header values, comma-joined, "" = none */
	char instance[160];	  /* +sip.instance value, "" = none */
	char user_agent[160];
	char callid[256];
	uint32_t cseq;
	int64_t expires; /* absolute, Unix seconds */
	uint16_t q;	 /* q-value * 1000, 0..1000; 1000 when absent */
	uint32_t reg_id; /* RFC 5626 reg-id, 0 = none */
	uint32_t flags;	 /* bits 0-2: the terminal type (services/terminal.h) */
	int64_t updated; /* Unix seconds */
};

/*
 * Opens (and creates / migrates) the store at location: a file path for
 * SQLite. On failure returns an errno and writes a one-line reason to err.
 */
int store_open(const char *location, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);
/* Human-readable reason for the last failure on this handle. */
const char *store_errmsg(struct store *s);

/*
 * Who added subscribers since: a sentinel file next to a file database
 * ("<path>-users") that every addition touches after it is committed, so a
 * server can tell from any thread, with one stat() and no database access,
 * that its picture of which names exist may be behind (the CLI added some).
 */
struct store_stamp {
	bool exists;
	uint64_t ino, size;
	int64_t mtime_ns, ctime_ns;
};
/* The stamp now; ENOTSUP when location is not a file database (no sentinel). */
int store_users_stamp(const char *location, struct store_stamp *out);
bool store_stamp_eq(const struct store_stamp *a, const struct store_stamp *b);

/* Subscribers. The password is hashed here and never stored. */
int store_user_add(struct store *s, sv_t user, sv_t domain, sv_t password);	     /* EEXIST */
int store_user_passwd(struct store *s, sv_t user, sv_t domain, sv_t password);	     /* ENOENT */
int store_user_del(struct store *s, sv_t user, sv_t domain);			     /* ENOENT */
int store_user_get(struct store *s, sv_t user, sv_t domain, struct store_user *out); /* ENOENT */
/* Replaces a user's call settings line; ENOENT. The store keeps it as given. */
int store_user_settings(struct store *s, sv_t user, sv_t domain, sv_t settings);
typedef int (*store_user_fn)(void *arg, const struct store_user *u);
int store_user_list(struct store *s, sv_t domain /* empty = all */, store_user_fn fn, void *arg);
/*
 * Bulk provisioning from CSV lines "user,domain,password" (a header line
 * "user,domain,password" is skipped; empty lines and lines starting with '#'
 * too). All or nothing: one transaction. *count gets the number imported;
 * on a bad line returns EINVAL with its number in *bad_line and a reason in
 * store_errmsg(). Existing users are updated (new password).
 */
int store_user_import_csv(struct store *s, FILE *in, size_t *count, size_t *bad_line);

/* HA1 hex of user:realm:password, for the algorithm's hash: 33 or 65 bytes out. */
void store_ha1_md5(sv_t user, sv_t realm, sv_t password, char out[33]);
void store_ha1_sha256(sv_t user, sv_t realm, sv_t password, char out[65]);

/* Location bindings, keyed by (aor, contact). */
int store_binding_put(struct store *s, const struct store_binding *b);
int store_binding_del(struct store *s, const char *aor, const char *contact); /* ENOENT */
int store_binding_del_aor(struct store *s, const char *aor);
typedef int (*store_binding_fn)(void *arg, const struct store_binding *b);
/* aor NULL = every binding; ordered by aor, then q descending. */
int store_binding_list(struct store *s, const char *aor, store_binding_fn fn, void *arg);
/* Deletes bindings with expires <= now; *purged gets how many. */
int store_binding_purge(struct store *s, int64_t now, size_t *purged);

/* Groups many writes in one transaction (the write-behind flusher does). */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);

/*
 * Service state (messaging, presence, topics): records of a kind, each with a
 * key unique within its kind, the AOR or topic it belongs to, an order within
 * that owner, an absolute expiry (0 = never), header-like text (meta) and an
 * opaque body. One shape for every service keeps each backend one table (or
 * one hash) long, and lets a service add a kind without a schema change.
 */
enum store_rec_kind {
	STORE_REC_MESSAGE = 1,	    /* a MESSAGE waiting for its recipient */
	STORE_REC_PUBLICATION = 2,  /* a PUBLISHed state (RFC 3903) */
	STORE_REC_SUBSCRIPTION = 3, /* a subscription dialog (RFC 6665) */
	STORE_REC_TOPIC = 4,	    /* a broker topic */
	STORE_REC_MEMBER = 5,	    /* a topic member: key "topic member" */
	STORE_REC_MAILBOX = 6,	    /* message-summary state of a mailbox (RFC 3842) */
	STORE_REC_POLICY = 7, /* a presence authorisation decision: key "presentity watcher" */
	/* routing rules changed from the CLI (services/rules.h); meta "deleted" hides one of
	 * the configuration file's */
	STORE_REC_GATEWAY = 8,	 /* key: name; meta: dp_gateway_print */
	STORE_REC_GWGROUP = 9,	 /* key: name; meta: dp_group_print */
	STORE_REC_DPRULE = 10,	 /* key: prefix or /regex/; meta: dp_rule_print */
	STORE_REC_LISTITEM = 11, /* key: "LIST ENTRY" ("block_callers 0900"), or "block_status" */
	STORE_REC_REDIRECT = 12, /* key: a domain answered with 302, or "*" */
	STORE_REC_TERMINAL = 13, /* key: a User-Agent substring; meta: its terminal type */
	STORE_REC_SECRET = 14,	 /* key: what it signs ("route"); meta: 32 hex digits */
	/* a source banned by the flood protection (services/flood.h), written by the server;
	 * key: "192.0.2.1" or "2001:db8::/64"; seq: since (Unix s); expires: until; meta "level=N"
	 */
	STORE_REC_BAN = 15,
	/* a dialplan-wide setting changed from the CLI (`route set`, services/rules.h); key:
	 * probe_interval, gateway_timeout or gateway_ring_timeout; meta: its value */
	STORE_REC_DPSETTING = 16,
	/* a confirmed dialog (src/dialog/dialog.h), written behind; key: its id (16 hex digits);
	 * owner: the caller's URI; meta: "name: value" lines; body: the caller's then the
	 * callee's SDP (their lengths in meta) */
	STORE_REC_DIALOG = 17,
	/* a billing record (services/cdr.h): key: its id (16 hex digits); owner: the account;
	 * seq: start (Unix ms); expires: cdr.keep_days after its end; meta: "name: value" lines */
	STORE_REC_CDR = 18,
	/* the server's heartbeat (key "server"; seq: Unix ms), the end of calls cut by a crash */
	STORE_REC_HEARTBEAT = 19,
	STORE_REC_LAST = STORE_REC_HEARTBEAT,
};
#define STORE_KEY_MAX  600
#define STORE_BODY_MAX (1024 * 1024)

struct store_record {
	int kind;
	char key[STORE_KEY_MAX];
	char owner[STORE_URI_MAX];
	int64_t seq;
	int64_t expires;
	const char *meta; /* NUL-terminated, "" = none */
	const void *body;
	size_t body_len;
};
typedef int (*store_record_fn)(void *arg, const struct store_record *r);
int store_record_put(struct store *s, const struct store_record *r); /* insert or replace */
int store_record_del(struct store *s, int kind, const char *key);    /* ENOENT */
/* owner NULL = all of the kind; ordered by owner, then seq, then key. */
int store_record_list(struct store *s, int kind, const char *owner, store_record_fn fn, void *arg);
/* Only the key and seq of each record of a kind (no meta, no body), in no order. */
typedef int (*store_record_key_fn)(void *arg, const char *key, int64_t seq);
int store_record_keys(struct store *s, int kind, store_record_key_fn fn, void *arg);
/* Deletes records with 0 < expires <= now; *purged gets how many. */
int store_record_purge(struct store *s, int64_t now, size_t *purged);

/*
 * A number that changes whenever another process (the CLI) has committed a
 * change since the last call on this handle; the server polls it to drop its
 * caches so a CLI change takes effect at once.
 */
int store_data_version(struct store *s, uint64_t *version);

#endif
