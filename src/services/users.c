/*
 * users.c - the subscriber cache and its asynchronous fill.
 *
 * An entry is either ready (a user that exists, or one known not to exist)
 * or pending (a database lookup runs; the requests that need the answer wait
 * on it as copies, and are delivered again to their workers when it lands).
 * A generation number guards against a lookup that started before a flush
 * writing an answer from before the change.
 */
#include "services/users.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/siphash.h"
#include "core/log.h"
#include "server/dbq.h"
#include "server/server.h"
#include "server/worker.h"
#include "store/store.h"
#include "transport/tport.h"

#define USERS_BUCKETS 8192

struct waiter {
	struct waiter *next;
	struct worker *w;
	struct wjob *job;
};

struct uentry {
	struct uentry *next;
	bool pending;
	uint64_t gen;
	bool exists;
	char ha1_md5[33];
	char ha1_sha256[65];
	char *settings; /* NULL when the user has none: most users */
	struct waiter *waiters;
	uint16_t ulen;
	uint16_t dlen;
	char key[]; /* user '\0' domain */
};

struct ubucket {
	pthread_mutex_t lock;
	struct uentry *head;
	size_t n;
};

struct users {
	struct server *srv;
	struct siphash_key key; /* bucket hash, random per process */
	size_t per_bucket_max;
	atomic_uint_fast64_t gen;
	struct ubucket buckets[USERS_BUCKETS];
};

struct lookup_job {
	struct dbq_job base;
	struct users *u;
	uint64_t gen;
	char user[STORE_USER_MAX];
	char domain[STORE_DOMAIN_MAX];
};

int users_create(struct server *srv, size_t capacity, struct users **out)
{
	struct users *u = calloc(1, sizeof(*u));

	if (!u)
		return ENOMEM;
	u->srv = srv;
	if (siphash_key_random(&u->key)) {
		free(u);
		return EAGAIN;
	}
	u->per_bucket_max = capacity / USERS_BUCKETS + 4;
	atomic_init(&u->gen, 1);
	for (unsigned i = 0; i < USERS_BUCKETS; i++)
		pthread_mutex_init(&u->buckets[i].lock, NULL);
	*out = u;
	return 0;
}

static void entry_free(struct uentry *e)
{
	free(e->settings);
	free(e);
}

static void waiters_release(struct waiter *wt, bool deliver)
{
	struct waiter *next;

	for (; wt; wt = next) {
		next = wt->next;
		if (deliver)
			worker_post(wt->w, wt->job);
		else
			free(wt->job);
		free(wt);
	}
}

void users_destroy(struct users *u)
{
	if (!u)
		return;
	for (unsigned i = 0; i < USERS_BUCKETS; i++) {
		struct uentry *e = u->buckets[i].head, *next;
		for (; e; e = next) {
			next = e->next;
			waiters_release(e->waiters, false);
			entry_free(e);
		}
		pthread_mutex_destroy(&u->buckets[i].lock);
	}
	free(u);
}

/* Keyed: user names come from strangers (an INVITE's From, a REGISTER's To). */
static uint64_t key_hash(const struct users *u, sv_t user, sv_t domain)
{
	struct siphash_state s;

	siphash_init(&s, &u->key, SIPHASH_1_3);
	siphash_update(&s, user.p, user.len);
	siphash_update_u64(&s, user.len);
	siphash_update_lower(&s, domain.p, domain.len);
	return siphash_final(&s);
}

static struct ubucket *bucket_of(struct users *u, sv_t user, sv_t domain)
{
	return &u->buckets[key_hash(u, user, domain) % USERS_BUCKETS];
}

/* Fills a ready entry from a subscriber row (settings are dropped when out of memory). */
static void entry_set(struct uentry *e, const struct store_user *su)
{
	e->exists = true;
	memcpy(e->ha1_md5, su->ha1_md5, sizeof(e->ha1_md5));
	memcpy(e->ha1_sha256, su->ha1_sha256, sizeof(e->ha1_sha256));
	free(e->settings);
	e->settings = su->settings[0] ? strdup(su->settings) : NULL;
}

static void entry_read(const struct uentry *e, struct users_entry *out)
{
	out->exists = e->exists;
	memcpy(out->ha1_md5, e->ha1_md5, sizeof(out->ha1_md5));
	memcpy(out->ha1_sha256, e->ha1_sha256, sizeof(out->ha1_sha256));
	out->settings[0] = '\0';
	if (e->settings)
		snprintf(out->settings, sizeof(out->settings), "%s", e->settings);
}

static struct uentry *entry_find(struct ubucket *b, sv_t user, sv_t domain)
{
	for (struct uentry *e = b->head; e; e = e->next) {
		if (e->ulen == user.len && e->dlen == domain.len &&
		    memcmp(e->key, user.p, user.len) == 0 &&
		    sv_ieq(sv_make(e->key + e->ulen + 1, e->dlen), domain))
			return e;
	}
	return NULL;
}

/* Drops the ready entries of a bucket (pending ones have requests waiting on them). */
static void bucket_drop_ready(struct ubucket *b)
{
	for (struct uentry **pp = &b->head; *pp;) {
		struct uentry *e = *pp;
		if (!e->pending) {
			*pp = e->next;
			entry_free(e);
			b->n--;
		} else {
			pp = &e->next;
		}
	}
}

/* A full bucket is emptied of ready entries: the cache stays bounded without an LRU. */
static void bucket_trim(struct users *u, struct ubucket *b)
{
	if (b->n >= u->per_bucket_max)
		bucket_drop_ready(b);
}

/* A new entry at the head of b, for user@domain; NULL on ENOMEM. Bucket locked. */
static struct uentry *entry_add(struct users *u, struct ubucket *b, sv_t user, sv_t domain)
{
	struct uentry *e;

	bucket_trim(u, b);
	e = calloc(1, sizeof(*e) + user.len + domain.len + 2);
	if (!e)
		return NULL;
	e->ulen = (uint16_t)user.len;
	e->dlen = (uint16_t)domain.len;
	memcpy(e->key, user.p, user.len);
	memcpy(e->key + user.len + 1, domain.p, domain.len);
	e->next = b->head;
	b->head = e;
	b->n++;
	return e;
}

static void lookup_run(struct store *st, struct dbq_job *job);

static int lookup_submit(struct users *u, sv_t user, sv_t domain, uint64_t gen)
{
	struct lookup_job *lj = calloc(1, sizeof(*lj));

	if (!lj)
		return ENOMEM;
	lj->base.run = lookup_run;
	lj->u = u;
	lj->gen = gen;
	sv_copy(user, lj->user, sizeof(lj->user));
	sv_copy(domain, lj->domain, sizeof(lj->domain));
	dbq_submit(u->srv->dbq, &lj->base);
	return 0;
}

/* On the database thread. */
static void lookup_run(struct store *st, struct dbq_job *job)
{
	struct lookup_job *lj = (struct lookup_job *)job;
	struct users *u = lj->u;
	sv_t user = sv_cstr(lj->user), domain = sv_cstr(lj->domain);
	struct ubucket *b = bucket_of(u, user, domain);
	struct store_user su;
	struct uentry *e;
	struct waiter *wt = NULL;
	bool retry = false;
	int err = store_user_get(st, user, domain, &su);

	if (err == EINVAL)
		err = ENOENT; /* a name no subscriber can have (the store refuses it) is nobody */

	if (err && err != ENOENT)
		log_err("subscriber lookup %s@%s: %s", lj->user, lj->domain, store_errmsg(st));
	pthread_mutex_lock(&b->lock);
	e = entry_find(b, user, domain);
	if (e && e->pending) {
		if (e->gen != atomic_load(&u->gen)) {
			/* the subscribers changed while we looked: look again */
			e->gen = atomic_load(&u->gen);
			retry = true;
		} else {
			e->pending = false;
			e->exists = false;
			if (err == 0)
				entry_set(e, &su);
			wt = e->waiters;
			e->waiters = NULL;
			if (err && err != ENOENT) {
				/* database trouble is not an answer: let the next request ask again
				 */
				for (struct uentry **pp = &b->head; *pp; pp = &(*pp)->next) {
					if (*pp == e) {
						*pp = e->next;
						entry_free(e);
						b->n--;
						break;
					}
				}
			}
		}
	}
	pthread_mutex_unlock(&b->lock);
	if (retry)
		retry = lookup_submit(u, user, domain, atomic_load(&u->gen)) != 0;
	waiters_release(wt, true);
	free(lj);
}

static int waiter_add(struct uentry *e, struct worker *w, const struct sip_msg *m,
		      const struct tp_src *src)
{
	struct waiter *wt = malloc(sizeof(*wt));
	struct tp_src again = *src;

	if (!wt)
		return ENOMEM;
	again.redelivered++;
	wt->job = tp_redeliver_job(m, &again);
	if (!wt->job) {
		free(wt);
		return ENOMEM;
	}
	wt->w = w;
	wt->next = e->waiters;
	e->waiters = wt;
	return 0;
}

enum users_lookup users_get(struct users *u, struct worker *w, sv_t user, sv_t domain,
			    const struct sip_msg *m, const struct tp_src *src, unsigned redelivered,
			    struct users_entry *out)
{
	struct ubucket *b = bucket_of(u, user, domain);
	enum users_lookup rc = USERS_PENDING;
	struct uentry *e;
	bool submit = false;
	uint64_t gen = 0;

	if (user.len == 0 || user.len >= STORE_USER_MAX || domain.len >= STORE_DOMAIN_MAX) {
		out->exists = false;
		out->settings[0] = '\0';
		return USERS_HIT; /* cannot exist */
	}
	pthread_mutex_lock(&b->lock);
	e = entry_find(b, user, domain);
	if (e && !e->pending) {
		entry_read(e, out);
		rc = USERS_HIT;
		goto out;
	}
	if (redelivered >= USERS_MAX_REDELIVERIES) {
		rc = USERS_ERROR;
		goto out;
	}
	if (!e) {
		e = entry_add(u, b, user, domain);
		if (!e) {
			rc = USERS_ERROR;
			goto out;
		}
		e->pending = true;
		e->gen = atomic_load(&u->gen);
		submit = true;
		gen = e->gen;
	}
	if (waiter_add(e, w, m, src))
		rc = USERS_ERROR;
out:
	pthread_mutex_unlock(&b->lock);
	if (submit && lookup_submit(u, user, domain, gen))
		rc = USERS_ERROR;
	return rc;
}

enum users_lookup users_peek(struct users *u, sv_t user, sv_t domain, struct users_entry *out)
{
	struct ubucket *b = bucket_of(u, user, domain);
	enum users_lookup rc = USERS_ERROR;
	struct uentry *e;

	pthread_mutex_lock(&b->lock);
	e = entry_find(b, user, domain);
	if (e && !e->pending) {
		entry_read(e, out);
		rc = USERS_HIT;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void users_put(struct users *u, const struct store_user *su)
{
	sv_t user = sv_cstr(su->user), domain = sv_cstr(su->domain);
	struct ubucket *b = bucket_of(u, user, domain);
	struct uentry *e;

	pthread_mutex_lock(&b->lock);
	e = entry_find(b, user, domain);
	if (!e)
		e = entry_add(u, b, user, domain);
	if (e && !e->pending)
		entry_set(e, su); /* a pending entry is being answered by its own lookup: leave it
				     to that one */
	pthread_mutex_unlock(&b->lock);
}

void users_flush(struct users *u)
{
	atomic_fetch_add(&u->gen, 1);
	for (unsigned i = 0; i < USERS_BUCKETS; i++) {
		struct ubucket *b = &u->buckets[i];
		pthread_mutex_lock(&b->lock);
		bucket_drop_ready(b);
		pthread_mutex_unlock(&b->lock);
	}
}
