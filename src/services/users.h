/*
 * users.h - the subscriber cache: HA1 hashes by user and domain, in memory,
 * filled from the store on demand.
 *
 * Authentication needs a subscriber for every challenged request, so the
 * lookup must not touch the database on the hot path. A miss starts one
 * asynchronous lookup on the database thread (several requests for the same
 * user wait for the same lookup); the requests are then delivered again and
 * find the answer in the cache. The cache is dropped whenever another
 * process (the CLI) changes the database, so a new password or a deleted
 * user takes effect at once.
 */
#ifndef SB_SERVICES_USERS_H
#define SB_SERVICES_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/sv.h"
#include "request/request.h"
#include "store/store.h"

struct server;
struct worker;
struct users;
struct sip_msg;
struct tp_src;
struct store_user;

struct users_entry {
	bool exists;
	char ha1_md5[33];
	char ha1_sha256[65];
	char settings[STORE_SETTINGS_MAX]; /* call settings line, "" = none (services/settings.h) */
};

enum users_lookup {
	USERS_HIT = 0, /* *out filled (exists may be false: known not to exist) */
	USERS_PENDING, /* a lookup runs; the message will be delivered again on w */
	USERS_ERROR,   /* database unavailable or out of memory */
	USERS_BUSY,    /* too many lookups wait (from this source, or in all): 503 */
};

int users_create(struct server *srv, size_t capacity, struct users **out);
void users_destroy(struct users *u);

/*
 * Looks user@domain up for request r. On a miss, r waits (proxy_wait) and
 * resumes on its worker when the answer is in the cache. A request that
 * waited PROXY_MAX_RESUMES times already gets USERS_ERROR (the cache was
 * dropped each time under it), so a request never loops; one its worker
 * has no room to park gets USERS_BUSY.
 */
enum users_lookup users_get(struct users *u, struct preq *r, sv_t user, sv_t domain,
			    struct users_entry *out);
/*
 * The same for a handler: PROXY_CONTINUE with *ue filled (ue->exists may be
 * false), PROXY_SUSPENDED while it is read from the database (r resumes at
 * the handler), or PROXY_DONE after a 503 when it cannot be answered.
 */
enum proxy_step users_of_request(struct preq *r, sv_t user, sv_t domain, struct users_entry *ue);

/* The cached answer only: USERS_HIT, or USERS_ERROR when it is not cached (nothing waits). */
enum users_lookup users_peek(struct users *u, sv_t user, sv_t domain, struct users_entry *out);

/* Forgets everything (another process changed the subscribers). */
void users_flush(struct users *u);
/* Stores a subscriber read from the store (preloading); on the database thread. */
void users_put(struct users *u, const struct store_user *su);

/*
 * The preload also fills a compact set of every subscriber's name (keyed
 * hashes), so that a name not in the database is answered from memory, as
 * fast as a preloaded one: no database round trip tells the two apart.
 * begin before the users_put of a full preload; end(ok) publishes the set
 * (ok false: the preload failed, the set is dropped and misses ask the
 * database again). On the database thread.
 */
void users_names_begin(struct users *u);
void users_names_end(struct users *u, bool ok);

/* Lookups waiting for the database, and names cached as unknown (for tests and stats). */
size_t users_waiting(struct users *u);
size_t users_negative(struct users *u);

#endif
