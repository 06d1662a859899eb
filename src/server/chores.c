/*
 * chores.c - what each module asks of the database thread, registered by
 * the server assembly: load its state at start, write behind what changed,
 * follow what other processes (the CLI) changed.
 *
 * The database thread (dbq.c) knows none of these by name; this file is the
 * one place that knows them all, as server.c is for start-up.
 */
#include "server/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/log.h"
#include "core/siphash.h"
#include "proxy/probe.h"
#include "server/dbq.h"
#include "server/server.h"
#include "services/flood.h"
#include "services/home.h"
#include "services/location.h"
#include "services/rules.h"
#include "services/users.h"
#include "store/store.h"

#define CHORE_FLUSH_MS	  100
#define CHORE_BANS_MS	  1000
#define CHORE_FLUSH_BATCH 4096

struct srv_chores {
	struct server *srv;
	/* routing rules: the file's, and the last ones published (to skip equal rebuilds) */
	struct rules_conf *rules_base;
	struct rules_conf *rules_last;
	int64_t last_bans_ms;
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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

/* Registrations are written behind, thousands per transaction. */
static void flush_locations(void *arg, struct store *st, bool stopping)
{
	struct srv_chores *c = arg;
	size_t n;

	if (stopping) /* a clean stop writes the refreshes that were not written yet */
		loc_mark_unpersisted(c->srv->loc);
	if (loc_dirty_count(c->srv->loc) == 0)
		return;
	do {
		if (store_begin(st)) {
			log_err("location write-behind: %s", store_errmsg(st));
			return;
		}
		n = loc_flush_dirty(c->srv->loc, write_aor, st, CHORE_FLUSH_BATCH);
		if (store_commit(st)) {
			log_err("location write-behind commit: %s", store_errmsg(st));
			store_rollback(st);
			return;
		}
	} while (n == CHORE_FLUSH_BATCH);
}

static int load_binding(void *arg, const struct store_binding *b)
{
	struct srv_chores *c = arg;

	return loc_load(c->srv->loc, b, (int64_t)time(NULL));
}

static int load_locations(void *arg, struct store *st)
{
	return store_binding_list(st, NULL, load_binding, arg);
}

static int preload_user(void *arg, const struct store_user *su)
{
	users_put(arg, su);
	return 0;
}

static void preload_users(struct srv_chores *c, struct store *st)
{
	int err;

	if (!c->srv->cfg.auth_preload)
		return;
	users_names_begin(c->srv->users);
	err = store_user_list(st, SV_NULL, preload_user, c->srv->users);
	if (err)
		log_warn("subscriber preload: %s", store_errmsg(st));
	users_names_end(c->srv->users, err == 0); /* unknown names answered from memory */
}

static int users_start(void *arg, struct store *st)
{
	preload_users(arg, st);
	return 0;
}

static void users_changed(void *arg, struct store *st)
{
	struct srv_chores *c = arg;

	log_debug("database changed by another process: reloading subscribers");
	users_flush(c->srv->users);
	preload_users(c, st);
}

/*
 * The file's routing rules with the CLI's changes, published when they differ
 * from those in force. At start a failure stops the server (the message
 * says what to fix); later the rules in force stay and the error is logged.
 */
static int reload_rules(struct srv_chores *c, struct store *st, bool at_start)
{
	struct rules_conf *rc_new = malloc(sizeof(*rc_new));
	char err[400] = "";
	int rc;

	if (!rc_new)
		return ENOMEM;
	if (!c->rules_base) {
		c->rules_base = calloc(1, sizeof(*c->rules_base));
		if (!c->rules_base) {
			free(rc_new);
			return ENOMEM;
		}
		rules_conf_from_cfg(c->rules_base, &c->srv->cfg);
	}
	rc = rules_conf_load(st, c->rules_base, rc_new, err, sizeof(err));
	if (!rc && c->rules_last && memcmp(c->rules_last, rc_new, sizeof(*rc_new)) == 0)
		goto out; /* another kind of change (a user's settings): nothing to rebuild */
	if (!rc)
		rc = rules_publish(c->srv->rules, rc_new);
	if (rc) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(rc));
		if (at_start)
			dbq_fail(c->srv->dbq, "routing rules: %s", err);
		else
			log_err("routing rules changed in the database are not applied: %s", err);
		goto out;
	}
	log_info("routing rules%s: %zu dialplan rules, %zu gateways in %zu groups; lists: %zu "
		 "caller, %zu callee, %zu source blocks",
		 at_start ? "" : " changed", rc_new->dp.nrules, rc_new->dp.ngw, rc_new->dp.ngrp,
		 rc_new->lists.block_callers.n, rc_new->lists.block_callees.n,
		 rc_new->lists.block_sources.n);
	free(c->rules_last);
	c->rules_last = rc_new;
	rc_new = NULL;
	if (!at_start)
		probe_rules_changed(c->srv);
out:
	free(rc_new);
	return rc;
}

static int rules_start(void *arg, struct store *st)
{
	return reload_rules(arg, st, true);
}

static void rules_changed(void *arg, struct store *st)
{
	reload_rules(arg, st, false);
}

static int home_start_load(void *arg, struct store *st)
{
	struct srv_chores *c = arg;

	return home_load(c->srv->home, st);
}

static void home_changed(void *arg, struct store *st)
{
	struct srv_chores *c = arg;

	(void)st;
	home_store_changed(c->srv);
}

static int bans_start(void *arg, struct store *st)
{
	struct srv_chores *c = arg;

	c->last_bans_ms = mono_ms();
	return flood_load(c->srv->flood, st, c->last_bans_ms, (int64_t)time(NULL));
}

/* The bans in the store as in force: written behind, lifted when deleted from the CLI. */
static void bans_sync(struct srv_chores *c, struct store *st)
{
	c->last_bans_ms = mono_ms();
	flood_sync(c->srv->flood, st, c->last_bans_ms, (int64_t)time(NULL));
}

static void bans_every(void *arg, struct store *st, bool stopping)
{
	struct srv_chores *c = arg;

	(void)stopping;
	/* a new ban is written at once; otherwise once a second (expiries, other processes) */
	if (flood_dirty(c->srv->flood) || mono_ms() - c->last_bans_ms >= CHORE_BANS_MS)
		bans_sync(c, st);
}

static void bans_changed(void *arg, struct store *st)
{
	bans_sync(arg, st); /* `switchboard ban del` lifts a ban */
}

static int route_key_found(void *arg, const struct store_record *r)
{
	struct siphash_key *k = arg;
	uint64_t v[2] = {0, 0};

	if (strlen(r->meta) != 32)
		return 0;
	for (int i = 0; i < 32; i++) {
		char ch = r->meta[i];
		unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
			     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
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
static int route_key_load(void *arg, struct store *st)
{
	struct srv_chores *c = arg;
	struct siphash_key *k = &c->srv->route_key;
	const char *secret = c->srv->cfg.secret;
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
	err = store_record_list(st, STORE_REC_SECRET, NULL, route_key_found, k);
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
	return store_record_put(st, &rec);
}

/* The order of loading matters: keys and bindings first, the rules, then the subscribers. */
int srv_chores_register(struct server *s)
{
	struct srv_chores *c = calloc(1, sizeof(*c));
	struct dbq *q = s->dbq;
	int err;

	if (!c)
		return ENOMEM;
	c->srv = s;
	s->chores = c;
	err = dbq_on_start(q, route_key_load, c);
	if (!err)
		err = dbq_on_start(q, load_locations, c);
	if (!err && s->home)
		err = dbq_on_start(q, home_start_load, c);
	if (!err && s->flood)
		err = dbq_on_start(q, bans_start, c);
	if (!err)
		err = dbq_on_start(q, rules_start, c);
	if (!err)
		err = dbq_on_start(q, users_start, c);
	if (!err)
		err = dbq_every(q, CHORE_FLUSH_MS, flush_locations, c);
	if (!err && s->flood)
		err = dbq_every(q, 0, bans_every, c);
	if (!err)
		err = dbq_on_change(q, users_changed, c);
	if (!err && s->home)
		err = dbq_on_change(q, home_changed, c);
	if (!err)
		err = dbq_on_change(q, rules_changed, c);
	if (!err && s->flood)
		err = dbq_on_change(q, bans_changed, c);
	return err;
}

void srv_chores_destroy(struct srv_chores *c)
{
	if (!c)
		return;
	free(c->rules_base);
	free(c->rules_last);
	free(c);
}
