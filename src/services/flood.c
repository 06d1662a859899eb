/*
 * flood.c - per-source budgets, bans and their mirror in the store.
 *
 * Why a set-associative table rather than chained buckets: the number of
 * sources is whatever an attacker can spoof, so the table never allocates
 * after start. A set of FLOOD_WAYS entries under one lock is found by a keyed
 * hash (random key per process, so nobody can aim many sources at one set);
 * a new source takes a free entry or the one idle the longest that is not
 * banned, and that eviction is counted.
 *
 * A budget is a token bucket counted in 1/window_ms of a request: it holds
 * limit * window_ms units at most, refills limit units per millisecond, and
 * one request costs window_ms units, so the arithmetic is exact for any
 * limit and window.
 */
#include "services/flood.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "config/config.h"
#include "core/siphash.h"
#include "core/log.h"
#include "server/worker.h"
#include "store/store.h"

#define FLOOD_WAYS 8
/* wrong credentials cost as much as this many requests without any */
#define FLOOD_FAIL_COST 20
/* each valid credential earns this many unauthenticated requests at once, and as many
 * more per window while it is remembered ... */
#define FLOOD_TRUST_GAIN 2
/* ... up to this many times unauth_limit */
#define FLOOD_TRUST_MAX_FACTOR 16
#define FLOOD_TRUST_MAX	       (1u << 24)
/* what was earned halves every hour: an office is still known after an outage */
#define FLOOD_TRUST_HALF_LIFE_MS (3600 * 1000LL)
#define FLOOD_LEVEL_MAX		 24

enum flood_state {
	FLOOD_ST_FREE = 0, /* an unused entry */
	FLOOD_ST_CLEAR,	   /* a source, not banned */
	FLOOD_ST_BANNED,   /* banned, not yet written to the store */
	FLOOD_ST_STORED,   /* banned, and the store has its record */
};

struct flood_entry {
	struct flood_key key;
	uint8_t state; /* enum flood_state */
	uint8_t level; /* bans in a row: the next lasts ban_time << level */
	uint32_t trust;
	uint32_t ban_id;
	uint32_t dropped; /* in this ban */
	int64_t last_seen;
	int64_t stamp;	     /* the buckets are refilled up to this time */
	int64_t trust_stamp; /* trust decayed up to this time */
	int64_t ban_until;   /* monotonic ms */
	int64_t ban_since_unix;
	int64_t ban_until_unix;
	int64_t budget_logged; /* last "over budget" log line for this source */
	int64_t tokens[FLOOD_NCLASSES];
};

struct flood_set {
	pthread_mutex_t lock;
	struct flood_entry e[FLOOD_WAYS];
};

struct flood {
	struct flood_conf c;
	int64_t window_ms;
	struct siphash_key key; /* the set of a source: its addresses are the attacker's choice */
	size_t nsets;		/* a power of two */
	struct flood_set *sets;
	atomic_uint ban_ids;
	atomic_bool dirty;
	atomic_uint_fast64_t bans, dropped_banned, dropped_budget, auth_failures, evictions, lifted;
	/* the database thread's own: bans started as of its last sync, and whether that sync
	 * left neither a ban in the table nor one in the store (then a sync with no new ban
	 * has nothing to do, and the table is not walked) */
	uint64_t synced_bans;
	bool synced_empty;
};

/* A ban as the database thread copies it out of the table. */
struct flood_snap {
	struct flood_key key;
	uint32_t ban_id;
	uint8_t state;
	uint8_t level;
	int64_t since_unix, until_unix;
};

/* What to log once the set's lock is released. */
struct flood_note {
	enum { FLOOD_NOTE_NONE, FLOOD_NOTE_BAN, FLOOD_NOTE_BUDGET } what;
	struct flood_key key;
	unsigned secs, level;
	enum flood_class cls;
};

void flood_conf_from_cfg(struct flood_conf *fc, const struct cfg *c)
{
	fc->enabled = c->flood_enabled;
	fc->window_s = c->flood_window_s;
	fc->unauth_limit = c->flood_unauth_limit;
	fc->auth_limit = c->flood_auth_limit;
	fc->dialog_limit = c->flood_dialog_limit;
	fc->ban_time_s = c->flood_ban_time_s;
	fc->ban_max_s = c->flood_ban_max_s;
	fc->table_size = c->flood_table_size;
}

int flood_create(const struct flood_conf *c, struct flood **out)
{
	struct flood *f = calloc(1, sizeof(*f));
	size_t n = 1;
	int rc = 0;

	if (!f)
		return ENOMEM;
	f->c = *c;
	if (f->c.window_s == 0)
		f->c.window_s = 1;
	if (f->c.ban_max_s < f->c.ban_time_s)
		f->c.ban_max_s = f->c.ban_time_s;
	f->window_ms = (int64_t)f->c.window_s * 1000;
	while (n * FLOOD_WAYS < c->table_size)
		n <<= 1;
	f->nsets = n;
	if ((rc = siphash_key_random(&f->key)))
		goto out;
	f->sets = calloc(n, sizeof(*f->sets));
	if (!f->sets) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		pthread_mutex_init(&f->sets[i].lock, NULL);
	atomic_init(&f->ban_ids, 0);
	atomic_init(&f->dirty, false);
out:
	if (rc) {
		free(f);
		f = NULL;
	}
	*out = f;
	return rc;
}

void flood_destroy(struct flood *f)
{
	struct flood_stats s;

	if (!f)
		return;
	flood_stats_get(f, &s);
	log_info("flood protection: %" PRIu64 " bans, %" PRIu64 " requests dropped from banned "
		 "sources, %" PRIu64 " over budget, %" PRIu64 " wrong credentials, %" PRIu64
		 " sources evicted, %" PRIu64 " bans lifted",
		 s.bans, s.dropped_banned, s.dropped_budget, s.auth_failures, s.evictions,
		 s.lifted);
	for (size_t i = 0; i < f->nsets; i++)
		pthread_mutex_destroy(&f->sets[i].lock);
	free(f->sets);
	free(f);
}

void flood_stats_get(struct flood *f, struct flood_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->bans = atomic_load_explicit(&f->bans, memory_order_relaxed);
	out->dropped_banned = atomic_load_explicit(&f->dropped_banned, memory_order_relaxed);
	out->dropped_budget = atomic_load_explicit(&f->dropped_budget, memory_order_relaxed);
	out->auth_failures = atomic_load_explicit(&f->auth_failures, memory_order_relaxed);
	out->evictions = atomic_load_explicit(&f->evictions, memory_order_relaxed);
	out->lifted = atomic_load_explicit(&f->lifted, memory_order_relaxed);
}

static void count(atomic_uint_fast64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* ---- keys ---- */

int flood_key_from_sa(const struct sockaddr *sa, struct flood_key *k)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		k->family = 4;
		memcpy(k->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
			k->family = 4;
			memcpy(k->addr, a + 12, 4);
		} else {
			k->family = 6;
			memcpy(k->addr, a, 8); /* the /64: one subscriber's network */
		}
		return 0;
	}
	return EAFNOSUPPORT;
}

int flood_key_parse(const char *text, struct flood_key *k)
{
	char buf[FLOOD_KEY_TEXT];
	size_t n = strlen(text);
	struct in_addr a4;
	struct in6_addr a6;
	char *slash;
	int rc = 0;

	memset(k, 0, sizeof(*k));
	if (n >= sizeof(buf) || n == 0) {
		rc = EINVAL;
		goto out;
	}
	memcpy(buf, text, n + 1);
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		k->family = 4;
		memcpy(k->addr, &a4, 4);
		goto out;
	}
	slash = strchr(buf, '/');
	if (slash) {
		if (strcmp(slash, "/64") != 0) {
			rc = EINVAL;
			goto out;
		}
		*slash = '\0';
	} else if (buf[0] == '[' && n > 2 && buf[n - 1] == ']') {
		memmove(buf, buf + 1, n - 2);
		buf[n - 2] = '\0';
	}
	if (inet_pton(AF_INET6, buf, &a6) != 1) {
		rc = EINVAL;
		goto out;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a6) && !slash) {
		k->family = 4;
		memcpy(k->addr, a6.s6_addr + 12, 4);
		goto out;
	}
	k->family = 6;
	memcpy(k->addr, a6.s6_addr, 8);
out:
	return rc;
}

void flood_key_format(const struct flood_key *k, char out[FLOOD_KEY_TEXT])
{
	struct in6_addr a6;
	size_t n;

	out[0] = '\0';
	if (k->family == 4) {
		inet_ntop(AF_INET, k->addr, out, FLOOD_KEY_TEXT);
	} else if (k->family == 6) {
		memset(&a6, 0, sizeof(a6));
		memcpy(a6.s6_addr, k->addr, 8);
		inet_ntop(AF_INET6, &a6, out, FLOOD_KEY_TEXT);
		n = strlen(out);
		snprintf(out + n, FLOOD_KEY_TEXT - n, "/64");
	}
}

static bool key_eq(const struct flood_key *a, const struct flood_key *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* ---- the table ---- */

static struct flood_set *set_of(struct flood *f, const struct flood_key *k)
{
	uint8_t raw[1 + sizeof(k->addr)];

	raw[0] = k->family;
	memcpy(raw + 1, k->addr, sizeof(k->addr));
	return &f->sets[siphash13(&f->key, raw, sizeof(raw)) & (f->nsets - 1)];
}

static bool is_banned_state(uint8_t st)
{
	return st == FLOOD_ST_BANNED || st == FLOOD_ST_STORED;
}

static int64_t limit_of(const struct flood *f, const struct flood_entry *e, enum flood_class cls)
{
	int64_t base, bonus;

	switch (cls) {
	case FLOOD_UNAUTH:
		base = f->c.unauth_limit;
		bonus = (int64_t)e->trust * FLOOD_TRUST_GAIN;
		if (bonus > base * FLOOD_TRUST_MAX_FACTOR)
			bonus = base * FLOOD_TRUST_MAX_FACTOR;
		return base + bonus;
	case FLOOD_AUTH:
		return f->c.auth_limit;
	default:
		return f->c.dialog_limit;
	}
}

static void decay_trust(struct flood_entry *e, int64_t now)
{
	int64_t el = now - e->trust_stamp, halvings;

	if (el < FLOOD_TRUST_HALF_LIFE_MS)
		return;
	halvings = el / FLOOD_TRUST_HALF_LIFE_MS;
	e->trust = halvings >= 32 ? 0 : e->trust >> halvings;
	e->trust_stamp += halvings * FLOOD_TRUST_HALF_LIFE_MS;
}

static void refill(const struct flood *f, struct flood_entry *e, int64_t now)
{
	int64_t el = now - e->stamp;

	decay_trust(e, now);
	if (el < 0)
		el = 0;
	if (el > f->window_ms)
		el = f->window_ms;
	for (int i = 0; i < FLOOD_NCLASSES; i++) {
		int64_t lim = limit_of(f, e, (enum flood_class)i), cap = lim * f->window_ms;
		int64_t t = e->tokens[i] + el * lim;
		e->tokens[i] = t > cap ? cap : t;
	}
	if (now > e->stamp)
		e->stamp = now;
}

static void fill(const struct flood *f, struct flood_entry *e)
{
	for (int i = 0; i < FLOOD_NCLASSES; i++)
		e->tokens[i] = limit_of(f, e, (enum flood_class)i) * f->window_ms;
}

static bool charge(const struct flood *f, struct flood_entry *e, enum flood_class cls,
		   unsigned cost)
{
	int64_t need = (int64_t)cost * f->window_ms;

	if (e->tokens[cls] < need)
		return false;
	e->tokens[cls] -= need;
	return true;
}

/* The entry of k in its set (locked by the caller), or NULL. */
static struct flood_entry *find(struct flood_set *s, const struct flood_key *k)
{
	for (int i = 0; i < FLOOD_WAYS; i++) {
		if (s->e[i].state != FLOOD_ST_FREE && key_eq(&s->e[i].key, k))
			return &s->e[i];
	}
	return NULL;
}

/* The entry of k, made if new: a free one, else the one idle the longest (not banned if any). */
static struct flood_entry *find_or_add(struct flood *f, struct flood_set *s,
				       const struct flood_key *k, int64_t now)
{
	struct flood_entry *e = find(s, k), *victim = NULL, *banned = NULL;

	if (e)
		return e;
	for (int i = 0; i < FLOOD_WAYS && !victim; i++) {
		if (s->e[i].state == FLOOD_ST_FREE)
			victim = &s->e[i];
	}
	for (int i = 0; i < FLOOD_WAYS && !victim; i++) {
		e = &s->e[i];
		if (is_banned_state(e->state) && now < e->ban_until) {
			if (!banned || e->last_seen < banned->last_seen)
				banned = e;
			continue;
		}
		if (!victim || e->last_seen < victim->last_seen)
			victim = e;
	}
	if (!victim)
		victim =
		    banned; /* every one of them banned: the stalest ban goes (its record ends) */
	if (victim->state != FLOOD_ST_FREE)
		count(&f->evictions);
	memset(victim, 0, sizeof(*victim));
	victim->key = *k;
	victim->state = FLOOD_ST_CLEAR;
	victim->stamp = now;
	victim->trust_stamp = now;
	victim->last_seen = now;
	fill(f, victim);
	return victim;
}

/* Is e banned at now? An ended ban is cleared here (its record goes at the next sync). */
static bool banned_now(struct flood_entry *e, int64_t now)
{
	if (!is_banned_state(e->state))
		return false;
	if (now < e->ban_until)
		return true;
	e->state = FLOOD_ST_CLEAR;
	return false;
}

static void ban_start(struct flood *f, struct flood_entry *e, int64_t now, struct flood_note *note)
{
	int64_t max_ms = (int64_t)f->c.ban_max_s * 1000, dur;

	if (e->level && now - e->ban_until > 2 * max_ms)
		e->level = 0; /* it behaved for long enough: start over */
	if (e->level < FLOOD_LEVEL_MAX)
		e->level++;
	dur = (int64_t)f->c.ban_time_s * 1000 << (e->level - 1);
	if (dur > max_ms || dur <= 0)
		dur = max_ms;
	e->state = FLOOD_ST_BANNED;
	e->ban_until = now + dur;
	e->ban_since_unix = (int64_t)time(NULL);
	e->ban_until_unix = e->ban_since_unix + (dur + 999) / 1000;
	e->ban_id = atomic_fetch_add(&f->ban_ids, 1) + 1;
	e->dropped = 0;
	e->tokens[FLOOD_UNAUTH] = 0;
	count(&f->bans);
	atomic_store(&f->dirty, true);
	note->what = FLOOD_NOTE_BAN;
	note->key = e->key;
	note->secs = (unsigned)(dur / 1000);
	note->level = e->level;
}

static void note_log(const struct flood *f, const struct flood_note *n)
{
	static const char *const names[] = {"unauthenticated", "authenticated", "in-dialog"};
	char ip[FLOOD_KEY_TEXT];

	if (n->what == FLOOD_NOTE_NONE)
		return;
	flood_key_format(&n->key, ip);
	if (n->what == FLOOD_NOTE_BAN)
		log_warn("flood: %s banned for %us (ban %u in a row): over %u unauthenticated "
			 "requests in %us; its requests without credentials are dropped",
			 ip, n->secs, n->level, f->c.unauth_limit, f->c.window_s);
	else
		log_warn("flood: %s over its budget of %u %s requests in %us: dropping the excess",
			 ip, n->cls == FLOOD_AUTH ? f->c.auth_limit : f->c.dialog_limit,
			 names[n->cls], f->c.window_s);
}

enum flood_verdict flood_account(struct flood *f, const struct flood_key *k, enum flood_class cls,
				 int64_t now_ms)
{
	struct flood_set *s = set_of(f, k);
	struct flood_note note = {.what = FLOOD_NOTE_NONE};
	enum flood_verdict v = FLOOD_PASS;
	struct flood_entry *e;

	pthread_mutex_lock(&s->lock);
	e = find_or_add(f, s, k, now_ms);
	e->last_seen = now_ms;
	refill(f, e, now_ms);
	if (cls == FLOOD_UNAUTH) {
		if (banned_now(e, now_ms)) {
			v = FLOOD_DROP_BANNED;
		} else if (!charge(f, e, cls, 1)) {
			ban_start(f, e, now_ms, &note);
			v = FLOOD_DROP_BANNED;
		}
		if (v == FLOOD_DROP_BANNED) {
			e->dropped++;
			count(&f->dropped_banned);
		}
	} else if (!charge(f, e, cls, 1)) {
		v = FLOOD_DROP_BUDGET;
		count(&f->dropped_budget);
		if (now_ms - e->budget_logged >= f->window_ms || e->budget_logged == 0) {
			e->budget_logged = now_ms;
			note =
			    (struct flood_note){.what = FLOOD_NOTE_BUDGET, .key = *k, .cls = cls};
		}
	}
	pthread_mutex_unlock(&s->lock);
	note_log(f, &note);
	return v;
}

void flood_auth_ok(struct flood *f, const struct flood_key *k, int64_t now_ms)
{
	struct flood_set *s = set_of(f, k);
	struct flood_entry *e;

	pthread_mutex_lock(&s->lock);
	e = find_or_add(f, s, k, now_ms);
	e->last_seen = now_ms;
	refill(f, e, now_ms);
	if (e->trust < FLOOD_TRUST_MAX)
		e->trust++;
	/* the credit is there at once: phones that register one after another never run dry */
	e->tokens[FLOOD_UNAUTH] += FLOOD_TRUST_GAIN * f->window_ms;
	refill(f, e, now_ms); /* (clamps to the new capacity) */
	pthread_mutex_unlock(&s->lock);
}

bool flood_auth_failed(struct flood *f, const struct flood_key *k, int64_t now_ms)
{
	struct flood_set *s = set_of(f, k);
	struct flood_note note = {.what = FLOOD_NOTE_NONE};
	struct flood_entry *e;
	bool banned;

	count(&f->auth_failures);
	pthread_mutex_lock(&s->lock);
	e = find_or_add(f, s, k, now_ms);
	e->last_seen = now_ms;
	refill(f, e, now_ms);
	banned = banned_now(e, now_ms);
	if (!banned && !charge(f, e, FLOOD_UNAUTH, FLOOD_FAIL_COST)) {
		ban_start(f, e, now_ms, &note);
		banned = true;
	}
	if (banned) {
		e->dropped++;
		count(&f->dropped_banned);
	}
	pthread_mutex_unlock(&s->lock);
	note_log(f, &note);
	return banned;
}

bool flood_banned(struct flood *f, const struct flood_key *k, int64_t now_ms)
{
	struct flood_set *s = set_of(f, k);
	struct flood_entry *e;
	bool banned;

	pthread_mutex_lock(&s->lock);
	e = find(s, k);
	banned = e && banned_now(e, now_ms);
	pthread_mutex_unlock(&s->lock);
	return banned;
}

static void lift(struct flood *f, struct flood_entry *e)
{
	e->state = FLOOD_ST_CLEAR;
	e->level = 0;
	fill(f, e);
	count(&f->lifted);
}

int flood_lift(struct flood *f, const struct flood_key *k)
{
	struct flood_set *s = set_of(f, k);
	struct flood_entry *e;
	int rc = ENOENT;

	pthread_mutex_lock(&s->lock);
	e = find(s, k);
	if (e && is_banned_state(e->state)) {
		lift(f, e);
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (!rc)
		atomic_store(&f->dirty, true);
	return rc;
}

/* ---- the request path ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool flood_request_drop(struct flood *f, struct preq *r)
{
	enum flood_class cls = FLOOD_UNAUTH;
	struct flood_key k;

	/* a security.trusted_peers address (a gateway, an upstream SBC) has no budget; a
	 * request resumed after a lookup does not come here again (request/request.h) */
	if (!f || r->trusted || flood_key_from_sa(&r->src->peer.u.sa, &k))
		return false;
	if (r->in_dialog)
		cls = FLOOD_DIALOG;
	else if (sip_msg_hdr(r->m, SIP_H_AUTHORIZATION) ||
		 sip_msg_hdr(r->m, SIP_H_PROXY_AUTHORIZATION))
		cls = FLOOD_AUTH;
	if (flood_account(f, &k, cls, mono_ms()) == FLOOD_PASS)
		return false;
	r->w->stats.rx_dropped++;
	return true;
}

bool flood_request_auth(struct flood *f, struct preq *r, bool ok)
{
	struct flood_key k;

	if (!f || flood_key_from_sa(&r->src->peer.u.sa, &k))
		return false;
	if (ok) {
		flood_auth_ok(f, &k, mono_ms());
		return false;
	}
	if (!flood_auth_failed(f, &k, mono_ms()))
		return false;
	r->w->stats.rx_dropped++;
	return true;
}

/* ---- the store's mirror (database thread) ---- */

struct flood_sync_state {
	struct flood_snap *snaps;
	size_t nsnaps, capsnaps;
	char **keys;
	bool *matched;
	size_t nkeys, capkeys;
	int err;
};

static int snap_add(struct flood_sync_state *ss, const struct flood_entry *e)
{
	if (ss->nsnaps == ss->capsnaps) {
		size_t cap = ss->capsnaps ? ss->capsnaps * 2 : 64;
		struct flood_snap *g = realloc(ss->snaps, cap * sizeof(*g));
		if (!g)
			return ENOMEM;
		ss->snaps = g;
		ss->capsnaps = cap;
	}
	ss->snaps[ss->nsnaps++] = (struct flood_snap){
	    .key = e->key,
	    .ban_id = e->ban_id,
	    .state = e->state,
	    .level = e->level,
	    .since_unix = e->ban_since_unix,
	    .until_unix = e->ban_until_unix,
	};
	return 0;
}

static int key_add(void *arg, const char *key, int64_t seq)
{
	struct flood_sync_state *ss = arg;
	char *copy;

	(void)seq;
	if (ss->nkeys == ss->capkeys) {
		size_t cap = ss->capkeys ? ss->capkeys * 2 : 64;
		char **g = realloc(ss->keys, cap * sizeof(*g));
		if (!g)
			return ss->err = ENOMEM;
		ss->keys = g;
		ss->capkeys = cap;
	}
	copy = strdup(key);
	if (!copy)
		return ss->err = ENOMEM;
	ss->keys[ss->nkeys++] = copy;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static ssize_t key_index(const struct flood_sync_state *ss, const char *text)
{
	char *const *hit;

	if (ss->nkeys == 0)
		return -1;
	hit = bsearch(&text, ss->keys, ss->nkeys, sizeof(char *), key_cmp);
	return hit ? hit - ss->keys : -1;
}

/* The ban the snapshot saw, if still the same: now in the store, or lifted. */
static bool settle(struct flood *f, const struct flood_snap *sn, bool lifted)
{
	struct flood_set *s = set_of(f, &sn->key);
	struct flood_entry *e;
	bool done = false;

	pthread_mutex_lock(&s->lock);
	e = find(s, &sn->key);
	if (e && e->state == sn->state && e->ban_id == sn->ban_id) {
		if (lifted)
			lift(f, e);
		else
			e->state = FLOOD_ST_STORED;
		done = true;
	}
	pthread_mutex_unlock(&s->lock);
	return done;
}

static int put_ban(struct store *st, const struct flood_snap *sn, const char *text)
{
	struct store_record rec;
	char meta[64];

	memset(&rec, 0, sizeof(rec));
	snprintf(meta, sizeof(meta), "level=%u", sn->level);
	rec.kind = STORE_REC_BAN;
	snprintf(rec.key, sizeof(rec.key), "%s", text);
	rec.seq = sn->since_unix;
	rec.expires = sn->until_unix;
	rec.meta = meta;
	return store_record_put(st, &rec);
}

bool flood_dirty(struct flood *f)
{
	return atomic_load(&f->dirty);
}

int flood_sync(struct flood *f, struct store *st, int64_t now_ms, int64_t now_unix)
{
	struct flood_sync_state ss = {0};
	char text[FLOOD_KEY_TEXT];
	size_t writes = 0;
	uint64_t bans = atomic_load(&f->bans);
	int rc = 0;

	(void)now_unix;
	atomic_store(&f->dirty, false);
	if (f->synced_empty && bans == f->synced_bans)
		return 0; /* no ban anywhere, and none started since */
	for (size_t i = 0; i < f->nsets && !rc; i++) {
		struct flood_set *s = &f->sets[i];
		pthread_mutex_lock(&s->lock);
		for (int j = 0; j < FLOOD_WAYS && !rc; j++) {
			if (banned_now(&s->e[j], now_ms))
				rc = snap_add(&ss, &s->e[j]);
		}
		pthread_mutex_unlock(&s->lock);
	}
	if (!rc)
		rc = store_record_keys(st, STORE_REC_BAN, key_add, &ss);
	if (ss.err)
		rc = ss.err;
	if (rc)
		goto out;
	if (ss.nkeys)
		qsort(ss.keys, ss.nkeys, sizeof(char *), key_cmp);
	ss.matched = calloc(ss.nkeys + 1, sizeof(bool));
	if (!ss.matched) {
		rc = ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ss.nsnaps; i++) {
		ssize_t at;
		flood_key_format(&ss.snaps[i].key, text);
		at = key_index(&ss, text);
		if (at >= 0)
			ss.matched[at] = true;
		writes += ss.snaps[i].state == FLOOD_ST_BANNED;
	}
	for (size_t i = 0; i < ss.nkeys; i++)
		writes += !ss.matched[i];
	if (writes == 0)
		goto settle; /* the common case: the store says what is in force */
	if ((rc = store_begin(st)))
		goto out;
	for (size_t i = 0; i < ss.nsnaps && !rc; i++) {
		if (ss.snaps[i].state == FLOOD_ST_BANNED) {
			flood_key_format(&ss.snaps[i].key, text);
			rc = put_ban(st, &ss.snaps[i], text);
		}
	}
	for (size_t i = 0; i < ss.nkeys && !rc; i++) {
		if (!ss.matched[i]) {
			rc = store_record_del(st, STORE_REC_BAN, ss.keys[i]);
			if (rc == ENOENT)
				rc = 0; /* deleted meanwhile from the CLI */
		}
	}
	if (rc || (rc = store_commit(st))) {
		log_err("flood: writing the bans to the store: %s", store_errmsg(st));
		store_rollback(st);
		atomic_store(&f->dirty, true);
		goto out;
	}
settle:
	for (size_t i = 0; i < ss.nsnaps; i++) {
		const struct flood_snap *sn = &ss.snaps[i];
		flood_key_format(&sn->key, text);
		if (sn->state == FLOOD_ST_BANNED) {
			settle(f, sn, false);
		} else if (key_index(&ss, text) < 0 && settle(f, sn, true)) {
			/* written by us before, and now gone: `switchboard ban del` */
			log_info("flood: ban on %s lifted (deleted from the store)", text);
		}
	}
	f->synced_bans = bans;
	f->synced_empty = ss.nsnaps == 0; /* the store was brought to match: empty too */
out:
	for (size_t i = 0; i < ss.nkeys; i++)
		free(ss.keys[i]);
	free(ss.keys);
	free(ss.matched);
	free(ss.snaps);
	return rc;
}

struct flood_load_state {
	struct flood *f;
	int64_t now_ms, now_unix;
	size_t n;
};

static int load_one(void *arg, const struct store_record *r)
{
	struct flood_load_state *ls = arg;
	struct flood_key k;
	struct flood_set *s;
	struct flood_entry *e;
	unsigned level = 1;
	const char *lv;

	if (r->expires <= ls->now_unix || flood_key_parse(r->key, &k))
		return 0; /* ended, or not ours: the next sync deletes it */
	lv = strstr(r->meta, "level=");
	if (lv)
		level = (unsigned)strtoul(lv + 6, NULL, 10);
	if (level < 1 || level > FLOOD_LEVEL_MAX)
		level = 1;
	s = set_of(ls->f, &k);
	pthread_mutex_lock(&s->lock);
	e = find_or_add(ls->f, s, &k, ls->now_ms);
	e->state = FLOOD_ST_STORED;
	e->level = (uint8_t)level;
	e->ban_since_unix = r->seq;
	e->ban_until_unix = r->expires;
	e->ban_until = ls->now_ms + (r->expires - ls->now_unix) * 1000;
	e->ban_id = atomic_fetch_add(&ls->f->ban_ids, 1) + 1;
	e->tokens[FLOOD_UNAUTH] = 0;
	pthread_mutex_unlock(&s->lock);
	ls->n++;
	return 0;
}

int flood_load(struct flood *f, struct store *st, int64_t now_ms, int64_t now_unix)
{
	struct flood_load_state ls = {.f = f, .now_ms = now_ms, .now_unix = now_unix};
	int rc = store_record_list(st, STORE_REC_BAN, NULL, load_one, &ls);

	if (!rc && ls.n)
		log_info("flood: %zu bans still in force from the store", ls.n);
	return rc;
}
