/*
 * users.c - the subscriber cache and its asynchronous fill.
 *
 * An entry is either ready (a user that exists, or one known not to exist)
 * or pending (a database lookup runs; the requests that need the answer wait
 * on it as copies, and are delivered again to their workers when it lands).
 * A generation number guards against a lookup that started before a flush
 * writing an answer from before the change.
 *
 * Strangers pick the names: the lookups that wait for the database are
 * capped per source address and in total (503 beyond), the names cached as
 * unknown are capped per bucket (the oldest goes), and the table's hash is
 * keyed per process. With the preload, a set of every subscriber's name
 * answers a name that is not in the database from memory, so an unknown
 * name costs what a known one costs (no timing tells them apart).
 */
#include "services/users.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/siphash.h"
#include "config/config.h"
#include "core/hash.h"
#include "core/log.h"
#include "server/dbq.h"
#include "server/server.h"
#include "server/worker.h"
#include "store/store.h"
#include "transport/tport.h"

#define USERS_BUCKETS	      8192
#define USERS_SRC_SLOTS	      4096 /* per-source counts of waiting lookups (collisions only tighten) */
#define USERS_NAMES_MIN	      1024
#define USERS_NEGATIVE_KEEP_S 2
#define USERS_BUSY_LOG_S      60

struct waiter {
	struct waiter *next;
	struct worker *w;
	struct wjob *job;
	uint32_t src_slot;
};

/* Keyed hashes of every subscriber's name, open addressing; 0 marks a free slot. */
struct names {
	size_t mask;
	size_t n;
	bool failed;		  /* out of memory while building: not published */
	struct store_stamp stamp; /* the additions' sentinel before the preload read */
	/* the sentinel as last looked at (at most once per USERS_STAMP_NS, not once per
	 * unknown name: a stranger's flood of names costs no system call per request) */
	atomic_int_fast64_t checked_ns;
	atomic_bool stale; /* it changed: the set no longer says who is missing */
	uint64_t slots[];
};

/* How long a look at the additions' sentinel holds: a subscriber added with the CLI may be
 * answered unknown for at most this long after its commit. */
#define USERS_STAMP_NS 2000000

struct uentry {
	struct uentry *next;
	bool pending;
	uint64_t gen;
	bool exists;
	char ha1_md5[33];
	char ha1_sha256[65];
	char *settings; /* NULL when the user has none: most users */
	struct waiter *waiters;
	int64_t answered; /* when a lookup answered it (s): a young one's requests may still come */
	uint16_t ulen;
	uint16_t dlen;
	char key[]; /* user '\0' domain */
};

struct ubucket {
	pthread_mutex_t lock;
	struct uentry *head;
	size_t n;
	size_t negative; /* of n, ready entries of names that do not exist */
};

struct users {
	struct server *srv;
	struct siphash_key key; /* bucket hash, random per process */
	size_t per_bucket_max;
	size_t per_bucket_negative;
	atomic_uint_fast64_t gen;
	atomic_size_t waiting;
	atomic_size_t negative;
	atomic_uint src_waiting[USERS_SRC_SLOTS];
	atomic_uint_fast64_t busy_hits;
	atomic_int_fast64_t busy_logged;
	pthread_rwlock_t names_lock;
	struct names *names;	   /* published; NULL: none (no preload, or it failed) */
	struct names *names_build; /* being filled by the preload (database thread) */
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
	u->per_bucket_negative = (srv->cfg.negative_cache + USERS_BUCKETS - 1) / USERS_BUCKETS;
	if (!u->per_bucket_negative)
		u->per_bucket_negative = 1; /* the newest stays: its requests come back for it */
	pthread_rwlock_init(&u->names_lock, NULL);
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

static void waiters_release(struct users *u, struct waiter *wt, bool deliver)
{
	struct waiter *next;

	for (; wt; wt = next) {
		next = wt->next;
		atomic_fetch_sub(&u->waiting, 1);
		atomic_fetch_sub(&u->src_waiting[wt->src_slot], 1);
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
			waiters_release(u, e->waiters, false);
			entry_free(e);
		}
		pthread_mutex_destroy(&u->buckets[i].lock);
	}
	free(u->names);
	free(u->names_build);
	pthread_rwlock_destroy(&u->names_lock);
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

/* ------------------------------------------------------------ name set */

/* The name's key in the set: another keyed hash than the bucket's, never 0. */
static uint64_t name_key(const struct users *u, sv_t user, sv_t domain)
{
	uint64_t k = hash_mix(key_hash(u, user, domain) ^ 0x6e616d6573ULL);

	return k ? k : 1;
}

static struct names *names_alloc(size_t cap)
{
	struct names *n = calloc(1, sizeof(*n) + cap * sizeof(n->slots[0]));

	if (n)
		n->mask = cap - 1;
	return n;
}

static void names_insert(struct names *n, uint64_t k)
{
	size_t i = (size_t)k & n->mask;

	while (n->slots[i] && n->slots[i] != k)
		i = (i + 1) & n->mask;
	if (!n->slots[i]) {
		n->slots[i] = k;
		n->n++;
	}
}

static bool names_has(const struct names *n, uint64_t k)
{
	for (size_t i = (size_t)k & n->mask;; i = (i + 1) & n->mask) {
		if (n->slots[i] == k)
			return true;
		if (!n->slots[i])
			return false;
	}
}

/* Adds a name to the set being built, growing it at half full. */
static void names_add(struct users *u, uint64_t k)
{
	struct names *n = u->names_build, *big;

	if (!n || n->failed)
		return;
	if ((n->n + 1) * 2 > n->mask + 1) {
		big = names_alloc((n->mask + 1) * 2);
		if (!big) {
			n->failed = true;
			return;
		}
		for (size_t i = 0; i <= n->mask; i++) {
			if (n->slots[i])
				names_insert(big, n->slots[i]);
		}
		free(n);
		u->names_build = n = big;
	}
	names_insert(n, k);
}

void users_names_begin(struct users *u)
{
	free(u->names_build);
	u->names_build = names_alloc(USERS_NAMES_MIN);
	/* taken before the read: an addition committed after it changes the stamp */
	if (u->names_build && store_users_stamp(u->srv->cfg.db_path, &u->names_build->stamp))
		u->names_build->failed = true; /* no sentinel: the set could not be trusted */
}

void users_names_end(struct users *u, bool ok)
{
	struct names *n = u->names_build, *old;

	u->names_build = NULL;
	if (!ok || !n || n->failed) {
		free(n);
		n = NULL; /* a partial set would call real users unknown: misses ask the database */
	}
	pthread_rwlock_wrlock(&u->names_lock);
	old = u->names;
	u->names = n;
	pthread_rwlock_unlock(&u->names_lock);
	free(old);
}

/* Does the published set still say who is missing (no subscriber added since its read)? */
static bool names_current(struct users *u, struct names *n)
{
	struct store_stamp now;
	struct timespec ts;
	int64_t t;

	if (atomic_load(&n->stale))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (t - atomic_load(&n->checked_ns) < USERS_STAMP_NS)
		return true;
	atomic_store(&n->checked_ns, t);
	if (store_users_stamp(u->srv->cfg.db_path, &now) || !store_stamp_eq(&now, &n->stamp)) {
		atomic_store(&n->stale, true); /* until the database thread reads the set again */
		return false;
	}
	return true;
}

/* Known not to exist without asking the database: the preload's set does not have it. */
static bool names_absent(struct users *u, sv_t user, sv_t domain)
{
	bool absent;

	pthread_rwlock_rdlock(&u->names_lock);
	absent = u->names && !names_has(u->names, name_key(u, user, domain)) &&
		 names_current(u, u->names);
	pthread_rwlock_unlock(&u->names_lock);
	return absent;
}

size_t users_waiting(struct users *u)
{
	return atomic_load(&u->waiting);
}

size_t users_negative(struct users *u)
{
	return atomic_load(&u->negative);
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

/* An entry leaves the cache: it no longer counts as a name known to be unknown. */
static void entry_unknown_uncount(struct users *u, struct ubucket *b, struct uentry *e)
{
	if (e->pending || e->exists)
		return;
	b->negative--;
	atomic_fetch_sub(&u->negative, 1);
}

/*
 * A lookup found no such name: e is cached as unknown, and the oldest such
 * entry of the bucket goes when the bucket has its share. One answered in
 * the last USERS_NEGATIVE_KEEP_S stays (its requests are on their way back
 * for it; going would cost them another lookup), so the share may be passed
 * for that long, by as many lookups as the caps let wait. Bucket locked.
 */
static void entry_unknown_count(struct users *u, struct ubucket *b, struct uentry *e)
{
	int64_t now = (int64_t)time(NULL);
	struct uentry **oldest = NULL;

	e->answered = now;
	b->negative++;
	atomic_fetch_add(&u->negative, 1);
	if (b->negative <= u->per_bucket_negative)
		return;
	for (struct uentry **pp = &b->head; *pp; pp = &(*pp)->next) {
		struct uentry *x = *pp;
		/* the list is newest first: the last one found is the oldest */
		if (x != e && !x->pending && !x->exists &&
		    now - x->answered >= USERS_NEGATIVE_KEEP_S)
			oldest = pp;
	}
	if (oldest) {
		struct uentry *victim = *oldest;
		*oldest = victim->next;
		entry_unknown_uncount(u, b, victim);
		entry_free(victim);
		b->n--;
	}
}

/* Drops the ready entries of a bucket (pending ones have requests waiting on them). */
static void bucket_drop_ready(struct users *u, struct ubucket *b)
{
	for (struct uentry **pp = &b->head; *pp;) {
		struct uentry *e = *pp;
		if (!e->pending) {
			*pp = e->next;
			entry_unknown_uncount(u, b, e);
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
		bucket_drop_ready(u, b);
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
	/* users_get answers longer names itself (they cannot exist) */
	if (sv_copy(user, lj->user, sizeof(lj->user)) ||
	    sv_copy(domain, lj->domain, sizeof(lj->domain))) {
		free(lj);
		return ENAMETOOLONG;
	}
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
			else if (err == ENOENT)
				entry_unknown_count(u, b, e);
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
	waiters_release(u, wt, true);
	free(lj);
}

/* The per-source slot of a request's source address (its IP, not its port). */
static uint32_t src_slot(const struct users *u, const struct tp_src *src)
{
	const struct tp_addr *a = &src->peer;
	uint64_t h;

	if (a->u.sa.sa_family == AF_INET6)
		h = siphash13(&u->key, &a->u.in6.sin6_addr, sizeof(a->u.in6.sin6_addr));
	else
		h = siphash13(&u->key, &a->u.in.sin_addr, sizeof(a->u.in.sin_addr));
	return (uint32_t)(h % USERS_SRC_SLOTS);
}

/* Too many lookups wait, from this source or in all: counted, logged once a minute. */
static bool lookups_capped(struct users *u, uint32_t slot, const struct tp_src *src)
{
	const struct cfg *c = &u->srv->cfg;
	bool total = atomic_load(&u->waiting) >= c->lookups;
	int64_t now, last;
	char ip[64];

	if (!total && atomic_load(&u->src_waiting[slot]) < c->lookups_per_source)
		return false;
	atomic_fetch_add(&u->busy_hits, 1);
	now = (int64_t)time(NULL);
	last = atomic_load(&u->busy_logged);
	if ((!last || now - last >= USERS_BUSY_LOG_S) &&
	    atomic_compare_exchange_strong(&u->busy_logged, &last, now))
		log_warn("%s reached (%s): subscriber lookup refused with 503, %llu times so far",
			 total ? "strangers.lookups" : "strangers.lookups_per_source",
			 tp_addr_ip(&src->peer, ip, sizeof(ip)),
			 (unsigned long long)atomic_load(&u->busy_hits));
	return true;
}

/* r waits on e: its continuation's job is posted back when the answer is in. */
static enum users_lookup waiter_add(struct users *u, struct uentry *e, struct preq *r,
				    uint32_t slot)
{
	struct waiter *wt = malloc(sizeof(*wt));

	if (!wt)
		return USERS_ERROR;
	wt->job = proxy_wait(r);
	if (!wt->job) {
		int err = errno;
		free(wt);
		return err == EBUSY ? USERS_BUSY : USERS_ERROR;
	}
	wt->w = r->w;
	wt->src_slot = slot;
	atomic_fetch_add(&u->waiting, 1);
	atomic_fetch_add(&u->src_waiting[slot], 1);
	wt->next = e->waiters;
	e->waiters = wt;
	return USERS_PENDING;
}

enum users_lookup users_get(struct users *u, struct preq *r, sv_t user, sv_t domain,
			    struct users_entry *out)
{
	const struct tp_src *src = r->src;
	struct ubucket *b = bucket_of(u, user, domain);
	enum users_lookup rc = USERS_PENDING;
	struct uentry *e;
	bool submit = false;
	uint64_t gen = 0;
	uint32_t slot;

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
	if (!e && names_absent(u, user, domain)) {
		/* not in the database: answered from memory, as fast as a known name, and
		 * nothing is kept for it */
		out->exists = false;
		out->settings[0] = '\0';
		rc = USERS_HIT;
		goto out;
	}
	if (proxy_resumes(r) >= PROXY_MAX_RESUMES) {
		rc = USERS_ERROR; /* the cache was dropped under it each time */
		goto out;
	}
	slot = src_slot(u, src);
	if (lookups_capped(u, slot, src)) {
		rc = USERS_BUSY;
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
	rc = waiter_add(u, e, r, slot);
out:
	pthread_mutex_unlock(&b->lock);
	if (submit && lookup_submit(u, user, domain, gen)) {
		/* a waiter may hold r's continuation now: r stays parked (until the cache is
		 * dropped and asked again, or the server stops) rather than lose it */
		log_err("subscriber lookup %.*s@%.*s: out of memory", SV_ARG(user), SV_ARG(domain));
		if (rc != USERS_PENDING)
			rc = USERS_ERROR;
	}
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
	if (e && !e->pending) {
		entry_unknown_uncount(u, b, e);
		entry_set(e, su);
	}
	names_add(u, name_key(u, user, domain)); /* a pending entry is being answered by its own
				     lookup: leave it to that one */
	pthread_mutex_unlock(&b->lock);
}

void users_flush(struct users *u)
{
	atomic_fetch_add(&u->gen, 1);
	for (unsigned i = 0; i < USERS_BUCKETS; i++) {
		struct ubucket *b = &u->buckets[i];
		pthread_mutex_lock(&b->lock);
		bucket_drop_ready(u, b);
		pthread_mutex_unlock(&b->lock);
	}
}

enum proxy_step users_of_request(struct preq *r, sv_t user, sv_t domain, struct users_entry *ue)
{
	switch (users_get(r->srv->users, r, user, domain, ue)) {
	case USERS_HIT:
		return PROXY_CONTINUE;
	case USERS_PENDING:
		return PROXY_SUSPENDED;
	case USERS_BUSY:
		proxy_reply(r, 503, "Too many subscriber lookups pending",
			    SV("Retry-After: 5\r\n"));
		return PROXY_DONE;
	default:
		proxy_reply(r, 503, "Subscriber database unavailable", SV("Retry-After: 5\r\n"));
		return PROXY_DONE;
	}
}
