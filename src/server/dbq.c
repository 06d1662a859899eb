/*
 * dbq.c - the database thread: a job queue with a condition variable, and
 * the periodic write-behind, change detection and purge.
 *
 * Bindings are written in batches of up to a few thousand AORs per SQLite
 * transaction, which is what lets the registrar run at wire speed and still
 * survive a restart.
 */
#include "server/dbq.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "proxy/probe.h"
#include "server/server.h"
#include "services/flood.h"
#include "services/home.h"
#include "services/location.h"
#include "services/rules.h"
#include "services/users.h"
#include "store/store.h"

#define DBQ_FLUSH_MS	100
#define DBQ_VERSION_MS	250
#define DBQ_PURGE_S	60
#define DBQ_FLUSH_BATCH 4096
#define DBQ_BANS_MS	1000

struct dbq {
	struct server *srv;
	struct store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dbq_job *head;
	struct dbq_job *tail;
	bool stop;
	bool kicked;
	/* start-up handshake */
	bool ready;
	int start_err;
	char err[512];
	uint64_t data_version;
	const char *location;
	/* routing rules: the file's, and the last ones published (to skip equal rebuilds) */
	struct rules_conf *rules_base;
	struct rules_conf *rules_last;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_aor(void *arg, const char *aor, const struct store_binding *b, size_t n,
		     bool replace)
{
	struct store *st = arg;
	int err = replace ? store_binding_del_aor(st, aor) : 0;

	for (size_t i = 0; i < n && !err; i++)
		err = store_binding_put(st, &b[i]);
	return err;
}

static void flush_locations(struct dbq *q)
{
	size_t n;

	if (loc_dirty_count(q->srv->loc) == 0)
		return;
	do {
		if (store_begin(q->store)) {
			log_err("location write-behind: %s", store_errmsg(q->store));
			return;
		}
		n = loc_flush_dirty(q->srv->loc, write_aor, q->store, DBQ_FLUSH_BATCH);
		if (store_commit(q->store)) {
			log_err("location write-behind commit: %s", store_errmsg(q->store));
			store_rollback(q->store);
			return;
		}
	} while (n == DBQ_FLUSH_BATCH);
}

static int preload_user(void *arg, const struct store_user *su)
{
	users_put(arg, su);
	return 0;
}

static void preload_users(struct dbq *q)
{
	int err;

	if (!q->srv->cfg.auth_preload)
		return;
	users_names_begin(q->srv->users);
	err = store_user_list(q->store, SV_NULL, preload_user, q->srv->users);
	if (err)
		log_warn("subscriber preload: %s", store_errmsg(q->store));
	users_names_end(q->srv->users, err == 0); /* unknown names answered from memory */
}

/*
 * The file's routing rules with the CLI's changes, published when they differ
 * from those in force. At start a failure stops the server (the message
 * says what to fix); later the rules in force stay and the error is logged.
 */
static int reload_rules(struct dbq *q, bool at_start)
{
	struct rules_conf *c = malloc(sizeof(*c));
	char err[400];
	int rc;

	if (!c)
		return ENOMEM;
	if (!q->rules_base) {
		q->rules_base = calloc(1, sizeof(*q->rules_base));
		if (!q->rules_base) {
			free(c);
			return ENOMEM;
		}
		rules_conf_from_cfg(q->rules_base, &q->srv->cfg);
	}
	rc = rules_conf_load(q->store, q->rules_base, c, err, sizeof(err));
	if (!rc && q->rules_last && memcmp(q->rules_last, c, sizeof(*c)) == 0)
		goto out; /* another kind of change (a user's settings): nothing to rebuild */
	if (!rc)
		rc = rules_publish(q->srv->rules, c);
	if (rc) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(rc));
		if (at_start)
			snprintf(q->err, sizeof(q->err), "routing rules: %s", err);
		else
			log_err("routing rules changed in the database are not applied: %s", err);
		goto out;
	}
	log_info("routing rules%s: %zu dialplan rules, %zu gateways in %zu groups; lists: %zu "
		 "caller, %zu callee, %zu source blocks",
		 at_start ? "" : " changed", c->dp.nrules, c->dp.ngw, c->dp.ngrp,
		 c->lists.block_callers.n, c->lists.block_callees.n, c->lists.block_sources.n);
	free(q->rules_last);
	q->rules_last = c;
	c = NULL;
	if (!at_start)
		probe_rules_changed(q->srv);
out:
	free(c);
	return rc;
}

/* The bans in the store as in force: written behind, lifted when deleted from the CLI. */
static void sync_bans(struct dbq *q)
{
	struct timespec ts;

	if (!q->srv->flood)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	flood_sync(q->srv->flood, q->store, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
		   (int64_t)time(NULL));
}

static void check_changes(struct dbq *q)
{
	uint64_t v;

	if (store_data_version(q->store, &v))
		return;
	if (v != q->data_version) {
		q->data_version = v;
		log_debug("database changed by another process: reloading subscribers");
		users_flush(q->srv->users);
		preload_users(q);
		home_store_changed(q->srv);
		reload_rules(q, false);
		sync_bans(q); /* `switchboard ban del` lifts a ban */
	}
}

static void purge(struct dbq *q)
{
	size_t n = 0;

	if (store_binding_purge(q->store, (int64_t)time(NULL), &n) == 0 && n)
		log_debug("purged %zu expired bindings from the store", n);
	n = 0;
	if (store_record_purge(q->store, (int64_t)time(NULL), &n) == 0 && n)
		log_debug("purged %zu expired messages and subscriptions from the store", n);
}

static int load_binding(void *arg, const struct store_binding *b)
{
	struct dbq *q = arg;

	return loc_load(q->srv->loc, b, (int64_t)time(NULL));
}

static void run_jobs(struct dbq *q, struct dbq_job *list)
{
	struct dbq_job *next;

	for (; list; list = next) {
		next = list->next;
		list->run(q->store, list);
		/* run() either freed the job or handed it back through reply_to */
	}
}

static int route_key_found(void *arg, const struct store_record *r)
{
	struct siphash_key *k = arg;
	uint64_t v[2] = {0, 0};

	if (strlen(r->meta) != 32)
		return 0;
	for (int i = 0; i < 32; i++) {
		char c = r->meta[i];
		unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
						    : 16;
		if (d == 16)
			return 0;
		v[i / 16] = v[i / 16] << 4 | d;
	}
	k->k0 = v[0];
	k->k1 = v[1];
	return 0;
}

/*
 * The Record-Route key: derived from auth.secret when one is configured (every
 * node of a cluster signs alike), else random once and kept in the store, so
 * the route sets of calls in progress verify after a restart.
 */
static int load_route_key(struct dbq *q)
{
	struct siphash_key *k = &q->srv->route_key;
	const char *secret = q->srv->cfg.secret;
	struct store_record rec;
	char hex[33];
	int err;

	memset(k, 0, sizeof(*k));
	if (secret[0]) {
		struct siphash_key fixed = {0x726f7574652d6b65ULL, 0x792d736574746572ULL};
		k->k0 = siphash24(&fixed, secret, strlen(secret));
		fixed.k1 ^= 1;
		k->k1 = siphash24(&fixed, secret, strlen(secret));
		return 0;
	}
	err = store_record_list(q->store, STORE_REC_SECRET, NULL, route_key_found, k);
	if (err || k->k0 || k->k1)
		return err;
	if (getrandom(k, sizeof(*k), 0) != (ssize_t)sizeof(*k))
		return EIO;
	memset(&rec, 0, sizeof(rec));
	rec.kind = STORE_REC_SECRET;
	snprintf(rec.key, sizeof(rec.key), "route");
	snprintf(hex, sizeof(hex), "%016llx%016llx", (unsigned long long)k->k0,
		 (unsigned long long)k->k1);
	rec.meta = hex;
	return store_record_put(q->store, &rec);
}

static void *dbq_main(void *arg)
{
	struct dbq *q = arg;
	int64_t last_flush = now_ms(), last_version = last_flush, last_purge = last_flush;
	int64_t last_bans = last_flush;
	int err;

	err = store_open(q->location, &q->store, q->err, sizeof(q->err));
	if (!err)
		err = load_route_key(q);
	if (!err)
		err = store_binding_list(q->store, NULL, load_binding, q);
	if (!err && q->srv->home)
		err = home_load(q->srv->home, q->store);
	if (!err && q->srv->flood) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
		err = flood_load(q->srv->flood, q->store,
				 (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
				 (int64_t)time(NULL));
	}
	if (!err)
		err = reload_rules(q, true);
	if (!err)
		store_data_version(q->store, &q->data_version);
	if (!err)
		preload_users(q);
	pthread_mutex_lock(&q->lock);
	q->ready = true;
	q->start_err = err;
	if (err && !q->err[0])
		snprintf(q->err, sizeof(q->err), "%s",
			 q->store ? store_errmsg(q->store) : strerror(err));
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (err)
		return NULL;

	for (;;) {
		struct dbq_job *list;
		bool stop;
		int64_t now;

		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stop && !q->kicked) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += DBQ_FLUSH_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&q->cond, &q->lock, &until) == ETIMEDOUT)
				break;
		}
		list = q->head;
		q->head = q->tail = NULL;
		stop = q->stop;
		q->kicked = false;
		pthread_mutex_unlock(&q->lock);

		run_jobs(q, list);
		now = now_ms();
		if (stop || now - last_flush >= DBQ_FLUSH_MS) {
			flush_locations(q);
			last_flush = now;
		}
		if (now - last_version >= DBQ_VERSION_MS) {
			check_changes(q);
			last_version = now;
		}
		if (q->srv->flood &&
		    (flood_dirty(q->srv->flood) || now - last_bans >= DBQ_BANS_MS)) {
			sync_bans(q);
			last_bans = now;
		}
		if (now - last_purge >= DBQ_PURGE_S * 1000) {
			purge(q);
			last_purge = now;
		}
		if (stop) {
			pthread_mutex_lock(&q->lock);
			list = q->head;
			q->head = q->tail = NULL;
			pthread_mutex_unlock(&q->lock);
			if (!list)
				break;
			run_jobs(q, list);
		}
	}
	/* a clean stop writes the refreshes that were not written yet */
	loc_mark_unpersisted(q->srv->loc);
	flush_locations(q);
	return NULL;
}

int dbq_create(struct server *srv, const char *location, struct dbq **out, char *err, size_t errlen)
{
	struct dbq *q = calloc(1, sizeof(*q));
	int rc;

	if (!q)
		return ENOMEM;
	q->srv = srv;
	q->location = location;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	rc = pthread_create(&q->thread, NULL, dbq_main, q);
	if (rc) {
		free(q);
		return rc;
	}
	pthread_mutex_lock(&q->lock);
	while (!q->ready)
		pthread_cond_wait(&q->cond, &q->lock);
	rc = q->start_err;
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		snprintf(err, errlen, "%s", q->err);
		pthread_join(q->thread, NULL);
		if (q->store)
			store_close(q->store);
		free(q->rules_base);
		free(q->rules_last);
		pthread_mutex_destroy(&q->lock);
		pthread_cond_destroy(&q->cond);
		free(q);
		return rc;
	}
	*out = q;
	return 0;
}

void dbq_destroy(struct dbq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	store_close(q->store);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->rules_base);
	free(q->rules_last);
	free(q);
}

void dbq_submit(struct dbq *q, struct dbq_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void dbq_kick(struct dbq *q)
{
	pthread_mutex_lock(&q->lock);
	if (!q->kicked) {
		q->kicked = true;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}
