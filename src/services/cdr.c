/*
 * cdr.c - billing records (see cdr.h and docs/billing.md): the dialog hooks
 * that follow each call attempt (ringing, branches, answer, end), the queue
 * the database thread writes inside the dialogs' own transaction, the
 * crash records made at start, and the record's text forms (store meta,
 * CSV, JSON) that the CLI reads back.
 */
#include "services/cdr.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/siphash.h"
#include "sip/sip.h"
#include "store/store.h"

#define CDR_BUCKETS	 1024
#define CDR_LOCKS	 64 /* lock stripes over the buckets: workers rarely wait on each other */
#define CDR_HEARTBEAT_MS 1000

/* A call attempt followed from its first ringing or branch to its record. */
struct cdr_call {
	struct cdr_call *next;
	uint64_t h;
	char *key; /* Call-ID NUL From tag NUL: exact match */
	size_t keylen;
	struct cdr_rec r;
};

struct cdr_item {
	struct cdr_item *next;
	struct cdr_rec r;
};

struct cdr {
	struct cdr_conf conf;
	struct dlg_table *dlg;
	struct dlg_hooks hooks;
	struct siphash_key key;
	pthread_mutex_t locks[CDR_LOCKS]; /* calls: bucket i under locks[i % CDR_LOCKS] */
	struct cdr_call *b[CDR_BUCKETS];
	atomic_size_t ncalls;
	pthread_mutex_t qlock; /* queue */
	struct cdr_item *qhead, **qtail;
	size_t queued;
	struct cdr_item *inflight; /* written in the open transaction (database thread only) */
	size_t ninflight;
	int64_t last_beat_ms;	 /* database thread only */
	int64_t started_ms;	 /* when the database thread started */
	int64_t alive_before_ms; /* the last heartbeat of the run before, 0 = none */
	atomic_uint_fast64_t written, dropped, calls_capped, truncated, crash_records;
};

static int64_t cdr_now_ms(void)
{
	return dlg_now_ms();
}

/*
 * The record (pure)
 */
static void cp(struct cdr_rec *r, char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;

	if (n >= cap) {
		n = cap - 1;
		r->truncated = true;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static void cp_sv(struct cdr_rec *r, char *dst, size_t cap, sv_t v)
{
	size_t n = v.len;

	if (n >= cap) {
		n = cap - 1;
		r->truncated = true;
	}
	if (n)
		memcpy(dst, v.p, n);
	dst[n] = '\0';
}

/* The URI of a name-addr ("Alice" <sip:a@b>;tag=1 -> sip:a@b), or the value itself. */
static void uri_of(struct cdr_rec *r, char *dst, size_t cap, const char *naddr)
{
	struct sip_naddr na;

	if (naddr && sip_naddr_parse(sv_cstr(naddr), &na, NULL) == 0)
		cp_sv(r, dst, cap, na.uri);
	else
		cp(r, dst, cap, naddr);
}

enum cdr_disp cdr_disp_of(unsigned status, bool answered)
{
	if (answered)
		return CDR_ANSWERED;
	if (status == 486 || status == 600)
		return CDR_BUSY;
	if (status == 487)
		return CDR_CANCELLED;
	if (status == 408 || status == 480)
		return CDR_UNANSWERED;
	return CDR_FAILED;
}

const char *cdr_disp_name(enum cdr_disp d)
{
	switch (d) {
	case CDR_ANSWERED:
		return "answered";
	case CDR_BUSY:
		return "busy";
	case CDR_CANCELLED:
		return "cancelled";
	case CDR_UNANSWERED:
		return "unanswered";
	case CDR_FAILED:
		return "failed";
	}
	return "?";
}

void cdr_rec_from_dlg(struct cdr_rec *r, const struct dlg *d)
{
	r->id = d->id;
	cp(r, r->callid, sizeof(r->callid), d->callid);
	cp(r, r->identity, sizeof(r->identity), d->identity);
	cp(r, r->account, sizeof(r->account), d->identity);
	uri_of(r, r->from, sizeof(r->from), d->caller.naddr);
	cp(r, r->dialled, sizeof(r->dialled), d->ruri);
	if (d->callee.contact && d->callee.contact[0])
		cp(r, r->target, sizeof(r->target), d->callee.contact);
	if (d->gateway[0])
		cp(r, r->gateway, sizeof(r->gateway), d->gateway);
	r->src = d->caller.addr;
	r->start_ms = d->start_ms;
	if (d->answer_ms)
		r->answer_ms = d->answer_ms;
	r->status = d->status;
	if (d->session_expires)
		r->session_expires = d->session_expires;
	if (d->media.relayed || d->media.from_caller.packets || d->media.from_callee.packets)
		r->media = d->media;
}

void cdr_rec_finish(struct cdr_rec *r, const struct dlg *d, enum dlg_end why, int64_t now_ms)
{
	cdr_rec_from_dlg(r, d);
	r->end = why;
	r->end_ms = d->end_ms ? d->end_ms : now_ms;
	if (!r->target[0] && r->nlegs) /* an attempt: where it rang last */
		cp(r, r->target, sizeof(r->target), r->legs[r->nlegs - 1].target);
	r->disp = cdr_disp_of(r->status, r->answer_ms != 0);
	if (r->answer_ms && r->status >= 300)
		r->status = 200; /* a confirmed dialog's status is its 2xx */
}

int64_t cdr_talk_ms(const struct cdr_rec *r)
{
	return r->answer_ms && r->end_ms > r->answer_ms ? r->end_ms - r->answer_ms : 0;
}

int64_t cdr_billable_s(const struct cdr_rec *r)
{
	return (cdr_talk_ms(r) + 999) / 1000;
}

const char *cdr_ended_by(const struct cdr_rec *r)
{
	if (r->life == CDR_LIFE_CRASH)
		return "crash";
	return r->end == DLG_END_NONE ? "" : dlg_end_name(r->end);
}

/* The leg of To tag totag (a terminal that rang), added when new; NULL when full (counted). */
static struct cdr_leg *leg_for(struct cdr_rec *r, const char *totag)
{
	if (totag && totag[0]) {
		for (unsigned i = 0; i < r->nlegs; i++)
			if (strcmp(r->legs[i].totag, totag) == 0)
				return &r->legs[i];
	}
	if (r->nlegs == CDR_LEGS_MAX) {
		r->legs_dropped++;
		return NULL;
	}
	memset(&r->legs[r->nlegs], 0, sizeof(r->legs[0]));
	return &r->legs[r->nlegs++];
}

static void leg_from_dlg(struct cdr_rec *r, struct cdr_leg *l, const struct dlg *d)
{
	struct cdr_rec scratch = {0};

	cp(&scratch, l->totag, sizeof(l->totag), d->callee.tag);
	cp(&scratch, l->target, sizeof(l->target), d->callee.contact);
	if (d->gateway[0])
		cp(&scratch, l->gateway, sizeof(l->gateway), d->gateway);
	l->to = d->callee.addr;
	l->status = d->status;
	r->truncated |= scratch.truncated;
}

/*
 * Calls followed (hooks; bucket lock of the dialog held, our lock inside it)
 */
static uint64_t call_hash(const struct cdr *c, const struct dlg *d, char *key, size_t *len)
{
	struct siphash_state s;
	size_t a = d->callid ? strlen(d->callid) : 0, b = d->caller.tag ? strlen(d->caller.tag) : 0;

	*len = a + 1 + b;
	if (key) {
		memcpy(key, d->callid ? d->callid : "", a);
		key[a] = '\0';
		memcpy(key + a + 1, d->caller.tag ? d->caller.tag : "", b);
		key[a + 1 + b] = '\0';
	}
	siphash_init(&s, &c->key, SIPHASH_1_3);
	siphash_update(&s, d->callid ? d->callid : "", a);
	siphash_update_u64(&s, a);
	siphash_update(&s, d->caller.tag ? d->caller.tag : "", b);
	return siphash_final(&s);
}

/* Is n the call of d (its key is Call-ID NUL From tag)? */
static bool key_is(const struct cdr_call *n, const struct dlg *d)
{
	const char *cid = d->callid ? d->callid : "", *tag = d->caller.tag ? d->caller.tag : "";

	return strcmp(n->key, cid) == 0 && strcmp(n->key + strlen(cid) + 1, tag) == 0;
}

/* Locks the stripe of d's call: its hash and key length into *h and *len, for call_find. */
static pthread_mutex_t *call_lock(struct cdr *c, const struct dlg *d, uint64_t *h, size_t *len)
{
	pthread_mutex_t *m;

	*h = call_hash(c, d, NULL, len);
	m = &c->locks[(*h & (CDR_BUCKETS - 1)) % CDR_LOCKS];
	pthread_mutex_lock(m);
	return m;
}

/* The call of d (its stripe locked): found, or made when make (NULL at the cap, counted). */
static struct cdr_call *call_find(struct cdr *c, const struct dlg *d, uint64_t h, size_t len,
				  bool make, bool unlink)
{
	struct cdr_call **pp = &c->b[h & (CDR_BUCKETS - 1)], *n;
	char *key;

	for (; *pp; pp = &(*pp)->next) {
		n = *pp;
		if (n->h != h || n->keylen != len || !key_is(n, d))
			continue;
		if (unlink) {
			*pp = n->next;
			atomic_fetch_sub(&c->ncalls, 1);
		}
		return n;
	}
	if (!make)
		return NULL;
	/* the cap is checked and counted without a global lock: workers racing may pass it by
	 * at most one call each */
	if (atomic_load(&c->ncalls) >= c->conf.max_calls) {
		if (atomic_fetch_add(&c->calls_capped, 1) % 1000 == 0)
			log_warn(
			    "billing: %zu calls followed (the cap): ringing history of call %s "
			    "not kept",
			    (size_t)atomic_load(&c->ncalls), d->callid);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	key = malloc(len + 1);
	if (!n || !key) {
		free(n);
		free(key);
		return NULL;
	}
	call_hash(c, d, key, &len);
	n->h = h;
	n->key = key;
	n->keylen = len;
	n->next = c->b[h & (CDR_BUCKETS - 1)];
	c->b[h & (CDR_BUCKETS - 1)] = n;
	atomic_fetch_add(&c->ncalls, 1);
	return n;
}

static void call_free(struct cdr_call *n)
{
	if (n) {
		free(n->key);
		free(n);
	}
}

/* Hands a finished record to the database thread (it takes it; freed here when dropped). */
static void queue_push(struct cdr *c, struct cdr_item *it)
{
	const struct cdr_rec *r = &it->r;

	if (r->truncated)
		atomic_fetch_add(&c->truncated, 1);
	it->next = NULL;
	pthread_mutex_lock(&c->qlock);
	if (c->queued >= c->conf.max_queue) {
		pthread_mutex_unlock(&c->qlock);
		if (atomic_fetch_add(&c->dropped, 1) % 1000 == 0)
			log_err("billing: %zu records wait for the database (the cap): record of "
				"call %s dropped",
				c->conf.max_queue, r->callid);
		free(it);
		return;
	}
	*c->qtail = it;
	c->qtail = &it->next;
	c->queued++;
	pthread_mutex_unlock(&c->qlock);
}

static void on_early(void *arg, const struct dlg *d)
{
	struct cdr *c = arg;
	struct cdr_call *n;
	pthread_mutex_t *m;
	uint64_t h;
	size_t len;
	struct cdr_leg *l;

	m = call_lock(c, d, &h, &len);
	n = call_find(c, d, h, len, true, false);
	if (n) {
		int64_t at = d->activity_ms ? d->activity_ms : cdr_now_ms();
		if (!n->r.ring_ms)
			n->r.ring_ms = at;
		l = leg_for(&n->r, d->callee.tag);
		if (l) {
			leg_from_dlg(&n->r, l, d);
			if (!l->ring_ms)
				l->ring_ms = at;
		}
	}
	pthread_mutex_unlock(m);
}

static void on_confirmed(void *arg, const struct dlg *d)
{
	struct cdr *c = arg;
	struct cdr_call *n;
	pthread_mutex_t *m;
	uint64_t h;
	size_t len;
	struct cdr_leg *l;

	m = call_lock(c, d, &h, &len);
	n = call_find(c, d, h, len, true, false);
	if (n) {
		l = leg_for(&n->r, d->callee.tag);
		if (l)
			leg_from_dlg(&n->r, l, d);
	}
	pthread_mutex_unlock(m);
}

static void on_branch_failed(void *arg, const struct dlg *d, unsigned status, const char *gateway,
			     const struct tp_addr *dest)
{
	struct cdr *c = arg;
	struct cdr_call *n;
	pthread_mutex_t *m;
	uint64_t h;
	size_t len;
	struct cdr_leg *l;

	m = call_lock(c, d, &h, &len);
	n = call_find(c, d, h, len, true, false);
	l = n ? leg_for(&n->r, NULL) : NULL;
	if (l) {
		cp(&n->r, l->gateway, sizeof(l->gateway), gateway);
		if (dest)
			l->to = *dest;
		l->status = status;
	}
	pthread_mutex_unlock(m);
}

/* A record built, from what the call's entry gathered (n, freed here) and the dialog. */
static void record(struct cdr *c, struct cdr_call *n, const struct dlg *d, enum dlg_end why)
{
	/* built in the queue's own entry: no second copy, nothing copied under the queue's lock */
	struct cdr_item *it = malloc(sizeof(*it));
	struct cdr_rec *r = it ? &it->r : NULL;

	if (!r) {
		atomic_fetch_add(&c->dropped, 1);
		log_err("billing: out of memory: record of call %s dropped", d->callid);
		call_free(n);
		return;
	}
	bool followed = n != NULL;

	if (n)
		*r = n->r;
	else
		memset(r, 0, sizeof(*r));
	call_free(n);
	cdr_rec_finish(r, d, why, cdr_now_ms());
	if (!followed && d->answer_ms && c->started_ms && d->start_ms < c->started_ms) {
		/* loaded from the store: the call went on across a restart */
		r->life = CDR_LIFE_RECOVERED;
		if ((why == DLG_END_SESSION_TIMER || why == DLG_END_TIMEOUT) &&
		    d->activity_ms <= c->started_ms + CDR_HEARTBEAT_MS && c->alive_before_ms)
			r->end_ms =
			    c->alive_before_ms > d->answer_ms ? c->alive_before_ms : d->answer_ms;
	}
	queue_push(c, it);
}

static void on_terminated(void *arg, const struct dlg *d, enum dlg_end why)
{
	struct cdr *c = arg;
	struct cdr_call *n;
	pthread_mutex_t *m;
	uint64_t h;
	size_t len;
	struct cdr_leg *l;

	m = call_lock(c, d, &h, &len);
	if (!d->answer_ms) {
		/* an early dialog that lost or failed: its terminal's part of the history (its
		 * entry exists since on_early; none is made here, the attempt may be over) */
		n = call_find(c, d, h, len, false, false);
		l = n ? leg_for(&n->r, d->callee.tag) : NULL;
		if (l)
			leg_from_dlg(&n->r, l, d);
		pthread_mutex_unlock(m);
		return;
	}
	n = call_find(c, d, h, len, false, true);
	pthread_mutex_unlock(m);
	record(c, n, d, why);
}

static void on_attempt_end(void *arg, const struct dlg *d, enum dlg_end why)
{
	struct cdr *c = arg;
	struct cdr_call *n;
	pthread_mutex_t *m;
	uint64_t h;
	size_t len;

	if (why == DLG_END_NONE)
		return; /* answered: the confirmed dialog's end makes the record */
	m = call_lock(c, d, &h, &len);
	n = call_find(c, d, h, len, false, true);
	pthread_mutex_unlock(m);
	record(c, n, d, why);
}

/*
 * The database thread
 */
static int put_heartbeat(struct cdr *c, struct store *st, int64_t now_ms)
{
	struct store_record hb = {.kind = STORE_REC_HEARTBEAT, .seq = now_ms, .meta = ""};

	snprintf(hb.key, sizeof(hb.key), "server");
	c->last_beat_ms = now_ms;
	return store_record_put(st, &hb);
}

static int put_rec(struct cdr *c, struct store *st, const struct cdr_rec *r)
{
	struct store_record sr = {.kind = STORE_REC_CDR, .seq = r->start_ms};
	struct buf meta;
	int err;

	buf_init(&meta, 0);
	err = buf_reserve(&meta, 1536); /* a record's text, most of the time in one allocation */
	if (!err)
		err = cdr_rec_meta(r, &meta);
	if (err) {
		buf_free(&meta);
		return err;
	}
	sr.meta = meta.p;
	snprintf(sr.key, sizeof(sr.key), "%016" PRIx64, r->id);
	snprintf(sr.owner, sizeof(sr.owner), "%s", r->account);
	sr.expires = c->conf.keep_days ? r->end_ms / 1000 + (int64_t)c->conf.keep_days * 86400 : 0;
	err = store_record_put(st, &sr);
	buf_free(&meta);
	return err;
}

static int on_flush(void *arg, struct store *st, bool *begun)
{
	struct cdr *c = arg;
	int64_t now = cdr_now_ms();
	bool beat = now - c->last_beat_ms >= CDR_HEARTBEAT_MS;
	int err = 0;

	pthread_mutex_lock(&c->qlock);
	c->inflight = c->qhead;
	c->ninflight = c->queued;
	c->qhead = NULL;
	c->qtail = &c->qhead;
	c->queued = 0;
	pthread_mutex_unlock(&c->qlock);
	if (!c->inflight && !beat)
		return 0; /* nothing to write: no transaction for us */
	if (!*begun) {
		if (store_begin(st))
			return EIO;
		*begun = true;
	}
	for (struct cdr_item *it = c->inflight; it && !err; it = it->next)
		err = put_rec(c, st, &it->r);
	if (!err && beat)
		err = put_heartbeat(c, st, now);
	if (err)
		log_err("billing records not written: %s", store_errmsg(st));
	return err;
}

static void on_flush_done(void *arg, bool committed)
{
	struct cdr *c = arg;
	struct cdr_item *list = c->inflight, *n, **tail;

	c->inflight = NULL;
	if (!list)
		return;
	if (committed) {
		atomic_fetch_add(&c->written, c->ninflight);
		for (; list; list = n) {
			n = list->next;
			free(list);
		}
		return;
	}
	/* rolled back: they go first in the next transaction */
	for (tail = &list; *tail; tail = &(*tail)->next)
		;
	pthread_mutex_lock(&c->qlock);
	*tail = c->qhead;
	c->qhead = list;
	if (!*tail)
		c->qtail = tail;
	c->queued += c->ninflight;
	pthread_mutex_unlock(&c->qlock);
}

static int last_beat(void *arg, const struct store_record *r)
{
	*(int64_t *)arg = r->seq;
	return 0;
}

struct cdr_crash {
	struct cdr *c;
	struct cdr_rec *recs;
	size_t n, cap;
	int err;
};

static int crash_one(void *arg, const struct dlg *d)
{
	struct cdr_crash *k = arg;
	struct cdr_rec *r;

	if (d->state != DLG_CONFIRMED)
		return 0;
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;
		struct cdr_rec *g = realloc(k->recs, cap * sizeof(*g));
		if (!g) {
			k->err = ENOMEM;
			return 1;
		}
		k->recs = g;
		k->cap = cap;
	}
	r = &k->recs[k->n++];
	memset(r, 0, sizeof(*r));
	cdr_rec_finish(r, d, DLG_END_NONE, d->answer_ms);
	r->life = CDR_LIFE_CRASH;
	r->end_ms = k->c->alive_before_ms > d->answer_ms ? k->c->alive_before_ms : d->answer_ms;
	return 0;
}

int cdr_db_start(void *arg, struct store *st)
{
	struct cdr *c = arg;
	struct cdr_crash k = {.c = c};
	int64_t now = cdr_now_ms();
	int err;

	c->started_ms = now;
	err = store_record_list(st, STORE_REC_HEARTBEAT, NULL, last_beat, &c->alive_before_ms);
	if (err)
		return err;
	if (c->dlg)
		dlg_foreach(c->dlg, crash_one, &k);
	if (k.err) {
		free(k.recs);
		return k.err;
	}
	err = store_begin(st);
	for (size_t i = 0; i < k.n && !err; i++)
		err = put_rec(c, st, &k.recs[i]);
	if (!err)
		err = put_heartbeat(c, st, now);
	if (!err)
		err = store_commit(st);
	if (err) {
		log_err("billing: crash records not written: %s", store_errmsg(st));
		store_rollback(st);
	} else if (k.n) {
		atomic_fetch_add(&c->crash_records, k.n);
		log_warn("billing: %zu calls were in progress when the server stopped: recorded as "
			 "ended at %" PRId64 " (the last heartbeat)",
			 k.n, c->alive_before_ms);
	}
	free(k.recs);
	return err;
}

/*
 * Lifecycle
 */
int cdr_create(const struct cdr_conf *conf, struct cdr **out)
{
	struct cdr *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return ENOMEM;
	c->conf = *conf;
	if (!c->conf.max_calls)
		c->conf.max_calls = 100000;
	if (!c->conf.max_queue)
		c->conf.max_queue = 200000;
	err = siphash_key_random(&c->key);
	if (err) {
		free(c);
		return err;
	}
	for (unsigned i = 0; i < CDR_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	pthread_mutex_init(&c->qlock, NULL);
	c->qtail = &c->qhead;
	c->hooks = (struct dlg_hooks){
	    .on_early = on_early,
	    .on_confirmed = on_confirmed,
	    .on_terminated = on_terminated,
	    .on_attempt_end = on_attempt_end,
	    .on_branch_failed = on_branch_failed,
	    .on_flush = on_flush,
	    .on_flush_done = on_flush_done,
	    .arg = c,
	};
	*out = c;
	return 0;
}

void cdr_destroy(struct cdr *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CDR_BUCKETS; i++) {
		for (struct cdr_call *n = c->b[i], *x; n; n = x) {
			x = n->next;
			call_free(n);
		}
	}
	for (struct cdr_item *it = c->qhead, *x; it; it = x) {
		x = it->next;
		free(it);
	}
	for (struct cdr_item *it = c->inflight, *x; it; it = x) {
		x = it->next;
		free(it);
	}
	for (unsigned i = 0; i < CDR_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	pthread_mutex_destroy(&c->qlock);
	free(c);
}

int cdr_attach(struct cdr *c, struct dlg_table *t)
{
	c->dlg = t;
	return dlg_hooks_add(t, &c->hooks);
}

void cdr_stats_get(struct cdr *c, struct cdr_stats *o)
{
	o->written = atomic_load(&c->written);
	o->dropped = atomic_load(&c->dropped);
	o->calls_capped = atomic_load(&c->calls_capped);
	o->truncated = atomic_load(&c->truncated);
	o->crash_records = atomic_load(&c->crash_records);
	pthread_mutex_lock(&c->qlock);
	o->queued = c->queued;
	pthread_mutex_unlock(&c->qlock);
	o->calls = atomic_load(&c->ncalls);
}

size_t cdr_take(struct cdr *c, struct cdr_rec **out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&c->qlock);
	while (c->qhead && n < max) {
		struct cdr_item *it = c->qhead;
		c->qhead = it->next;
		c->queued--;
		out[n] = malloc(sizeof(**out));
		if (out[n])
			*out[n++] = it->r;
		free(it);
	}
	if (!c->qhead)
		c->qtail = &c->qhead;
	pthread_mutex_unlock(&c->qlock);
	return n;
}

/*
 * Text forms
 */
static void meta_line(struct buf *b, const char *k, const char *v)
{
	size_t n = strlen(v), start;

	buf_append_str(b, k);
	buf_append(b, ": ", 2);
	start = b->len;
	buf_append(b, v, n);
	/* values are header values: no line breaks in them, but be sure */
	if (!b->err && strpbrk(v, "\r\n")) {
		for (size_t i = start; i < start + n; i++)
			if (b->p[i] == '\n' || b->p[i] == '\r')
				b->p[i] = ' ';
	}
	buf_append_char(b, '\n');
}

/* "key: number" without printf (the database thread writes one record per call). */
static void meta_i64(struct buf *b, const char *k, int64_t v)
{
	char digits[24], *p = digits + sizeof(digits);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	*--p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	buf_append_str(b, k);
	buf_append(b, ": ", 2);
	buf_append_str(b, p);
	buf_append_char(b, '\n');
}

static void meta_dir(struct buf *b, const char *who, const struct dlg_media_dir *m)
{
	static const char *const names[2][5] = {
	    {"caller-packets", "caller-bytes", "caller-lost", "caller-jitter-us", "caller-codec"},
	    {"callee-packets", "callee-bytes", "callee-lost", "callee-jitter-us", "callee-codec"},
	};
	const char *const *n = names[strcmp(who, "caller") == 0 ? 0 : 1];
	char codec[sizeof(m->codec) + 1];

	meta_i64(b, n[0], (int64_t)m->packets);
	meta_i64(b, n[1], (int64_t)m->bytes);
	meta_i64(b, n[2], (int64_t)m->lost);
	meta_i64(b, n[3], m->jitter_us);
	memcpy(codec, m->codec, sizeof(m->codec));
	codec[sizeof(m->codec)] = '\0';
	meta_line(b, n[4], codec);
}

static void addr_text(const struct tp_addr *a, char *out, size_t len)
{
	out[0] = '\0';
	if (a->len)
		tp_addr_format(a, out, len);
}

int cdr_rec_meta(const struct cdr_rec *r, struct buf *b)
{
	char a[80];

	meta_line(b, "callid", r->callid);
	meta_line(b, "identity", r->identity);
	meta_line(b, "account", r->account);
	meta_line(b, "from", r->from);
	meta_line(b, "dialled", r->dialled);
	meta_line(b, "target", r->target);
	meta_line(b, "gateway", r->gateway);
	addr_text(&r->src, a, sizeof(a));
	meta_line(b, "source", a);
	meta_i64(b, "start", r->start_ms);
	meta_i64(b, "ringing", r->ring_ms);
	meta_i64(b, "answer", r->answer_ms);
	meta_i64(b, "end", r->end_ms);
	meta_i64(b, "status", r->status);
	meta_line(b, "disposition", cdr_disp_name(r->disp));
	meta_line(b, "ended-by", cdr_ended_by(r));
	meta_i64(b, "crash", r->life == CDR_LIFE_CRASH);
	meta_i64(b, "recovered", r->life == CDR_LIFE_RECOVERED);
	meta_i64(b, "truncated", r->truncated);
	meta_i64(b, "session-expires", r->session_expires);
	meta_i64(b, "relayed", r->media.relayed);
	meta_dir(b, "caller", &r->media.from_caller);
	meta_dir(b, "callee", &r->media.from_callee);
	meta_i64(b, "legs-dropped", r->legs_dropped);
	for (unsigned i = 0; i < r->nlegs && i < CDR_LEGS_MAX; i++) {
		const struct cdr_leg *l = &r->legs[i];
		addr_text(&l->to, a, sizeof(a));
		/* "leg: ring_ms status gateway address totag target" ("-" for empty), no printf */
		char num[48];
		int nn = snprintf(num, sizeof(num), "%" PRId64 " %u ", l->ring_ms, l->status);
		const char *f[4] = {l->gateway, a, l->totag, l->target};

		buf_append(b, "leg: ", 5);
		buf_append(b, num, nn > 0 ? (size_t)nn : 0);
		for (unsigned k = 0; k < 4; k++) {
			buf_append_str(b, f[k][0] ? f[k] : "-");
			buf_append_char(b, k < 3 ? ' ' : '\n');
		}
	}
	buf_cstr(b);
	return b->err ? ENOMEM : 0;
}

/* The value of line name in meta, or empty. */
static sv_t meta_get(const char *meta, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = meta; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len >= nl + 2 && memcmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ')
			return sv_make(p + nl + 2, len - nl - 2);
		p = eol ? eol + 1 : NULL;
	}
	return SV("");
}

static int64_t meta_num(const char *meta, const char *name)
{
	sv_t v = meta_get(meta, name);
	char tmp[24];

	if (!v.len || v.len >= sizeof(tmp))
		return 0;
	memcpy(tmp, v.p, v.len);
	tmp[v.len] = '\0';
	return strtoll(tmp, NULL, 10);
}

static void parse_dir(const char *meta, const char *who, struct dlg_media_dir *m)
{
	char k[32];
	struct cdr_rec scratch;

	snprintf(k, sizeof(k), "%s-packets", who);
	m->packets = (uint64_t)meta_num(meta, k);
	snprintf(k, sizeof(k), "%s-bytes", who);
	m->bytes = (uint64_t)meta_num(meta, k);
	snprintf(k, sizeof(k), "%s-lost", who);
	m->lost = (uint64_t)meta_num(meta, k);
	snprintf(k, sizeof(k), "%s-jitter-us", who);
	m->jitter_us = (uint32_t)meta_num(meta, k);
	snprintf(k, sizeof(k), "%s-codec", who);
	cp_sv(&scratch, m->codec, sizeof(m->codec), meta_get(meta, k));
}

/* The next space-separated word of *s ("-" is empty). */
static sv_t word(sv_t *s)
{
	size_t i = 0;
	sv_t w;

	while (i < s->len && s->p[i] == ' ')
		i++;
	*s = sv_sub(*s, i, s->len);
	for (i = 0; i < s->len && s->p[i] != ' '; i++)
		;
	w = sv_sub(*s, 0, i);
	*s = sv_sub(*s, i, s->len);
	return sv_eq(w, SV("-")) ? SV("") : w;
}

static void parse_legs(const char *meta, struct cdr_rec *r)
{
	for (const char *p = meta; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > 5 && memcmp(p, "leg: ", 5) == 0 && r->nlegs < CDR_LEGS_MAX) {
			struct cdr_leg *l = &r->legs[r->nlegs++];
			sv_t s = sv_make(p + 5, len - 5), w;
			char tmp[24];
			memset(l, 0, sizeof(*l));
			w = word(&s);
			if (w.len && w.len < sizeof(tmp)) {
				memcpy(tmp, w.p, w.len);
				tmp[w.len] = '\0';
				l->ring_ms = strtoll(tmp, NULL, 10);
			}
			w = word(&s);
			if (w.len && w.len < sizeof(tmp)) {
				memcpy(tmp, w.p, w.len);
				tmp[w.len] = '\0';
				l->status = (unsigned)strtoul(tmp, NULL, 10);
			}
			cp_sv(r, l->gateway, sizeof(l->gateway), word(&s));
			w = word(&s);
			if (w.len)
				tp_addr_parse(w, &l->to);
			cp_sv(r, l->totag, sizeof(l->totag), word(&s));
			cp_sv(r, l->target, sizeof(l->target), word(&s));
		}
		p = eol ? eol + 1 : NULL;
	}
}

int cdr_rec_parse(const char *key, const char *meta, struct cdr_rec *r)
{
	sv_t v;

	memset(r, 0, sizeof(*r));
	if (!key || !meta || !meta_get(meta, "callid").len)
		return EINVAL;
	r->id = strtoull(key, NULL, 16);
	cp_sv(r, r->callid, sizeof(r->callid), meta_get(meta, "callid"));
	cp_sv(r, r->identity, sizeof(r->identity), meta_get(meta, "identity"));
	cp_sv(r, r->account, sizeof(r->account), meta_get(meta, "account"));
	cp_sv(r, r->from, sizeof(r->from), meta_get(meta, "from"));
	cp_sv(r, r->dialled, sizeof(r->dialled), meta_get(meta, "dialled"));
	cp_sv(r, r->target, sizeof(r->target), meta_get(meta, "target"));
	cp_sv(r, r->gateway, sizeof(r->gateway), meta_get(meta, "gateway"));
	v = meta_get(meta, "source");
	if (v.len)
		tp_addr_parse(v, &r->src);
	r->start_ms = meta_num(meta, "start");
	r->ring_ms = meta_num(meta, "ringing");
	r->answer_ms = meta_num(meta, "answer");
	r->end_ms = meta_num(meta, "end");
	r->status = (unsigned)meta_num(meta, "status");
	r->disp = cdr_disp_of(r->status, r->answer_ms != 0);
	v = meta_get(meta, "ended-by");
	r->end = DLG_END_NONE;
	for (int e = DLG_END_BYE_CALLER; e <= DLG_END_MEDIA_TIMEOUT; e++)
		if (sv_eq(v, sv_cstr(dlg_end_name((enum dlg_end)e))))
			r->end = (enum dlg_end)e;
	r->life = meta_num(meta, "crash")	? CDR_LIFE_CRASH
		  : meta_num(meta, "recovered") ? CDR_LIFE_RECOVERED
						: CDR_LIFE_WHOLE;
	r->truncated |= meta_num(meta, "truncated") != 0;
	r->session_expires = (unsigned)meta_num(meta, "session-expires");
	r->media.relayed = meta_num(meta, "relayed") != 0;
	parse_dir(meta, "caller", &r->media.from_caller);
	parse_dir(meta, "callee", &r->media.from_callee);
	r->legs_dropped = (unsigned)meta_num(meta, "legs-dropped");
	parse_legs(meta, r);
	return 0;
}

void cdr_format_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char day[32];

	out[0] = '\0';
	if (ms <= 0 || !gmtime_r(&t, &tm))
		return;
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03dZ", day, (int)(ms % 1000));
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int cdr_parse_time(const char *s, int64_t *ms, char *why, size_t whylen)
{
	size_t n = s ? strlen(s) : 0, i;
	int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (!n) {
		snprintf(why, whylen, "empty date");
		return EINVAL;
	}
	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i == n) {
		if (n > 12) {
			snprintf(why, whylen, "'%s': Unix seconds out of range", s);
			return EINVAL;
		}
		*ms = strtoll(s, NULL, 10) * 1000;
		return 0;
	}
	if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		goto bad;
	i = 10;
	if (i < n && (s[i] == 'T' || s[i] == ' ')) {
		if (n < i + 6 || !digits(s + i + 1, 2, &h) || s[i + 3] != ':' ||
		    !digits(s + i + 4, 2, &mi))
			goto bad;
		i += 6;
		if (i < n && s[i] == ':') {
			if (n < i + 3 || !digits(s + i + 1, 2, &se))
				goto bad;
			i += 3;
		}
	}
	if (i < n && s[i] == 'Z') {
		i++;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (n < i + 6 || !digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    !digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			goto bad;
		i += 6;
	}
	if (i != n)
		goto bad;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) || h > 23 ||
	    mi > 59 || se > 60) {
		snprintf(why, whylen, "'%s': no such date or time", s);
		return EINVAL;
	}
	*ms = ((days_from_civil(y, mo, d) * 86400) + h * 3600 + mi * 60 + se -
	       sign * (oh * 3600 + om * 60)) *
	      1000;
	return 0;
bad:
	snprintf(why, whylen,
		 "'%s': not a date (Unix seconds, or ISO 8601 such as 2026-12-07 or "
		 "2026-12-07T18:30:00Z)",
		 s);
	return EINVAL;
}

/* CSV (RFC 4180): quoted when needed; a text cell a spreadsheet would run as a formula gets a
 * leading apostrophe (OWASP CSV injection). */
static void csv_text(struct buf *b, const char *v)
{
	bool quote = strpbrk(v, ",\"\r\n") != NULL;
	bool formula = v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' ||
		       v[0] == '\r';

	if (quote || formula)
		buf_append_char(b, '"');
	if (formula)
		buf_append_char(b, '\'');
	for (const char *p = v; *p; p++) {
		if (*p == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *p);
	}
	if (quote || formula)
		buf_append_char(b, '"');
}

static const char *const cdr_cols[] = {
    "id",	   "callid",	       "account",      "identity",	  "from",
    "dialled",	   "target",	       "gateway",      "source",	  "start",
    "ringing",	   "answer",	       "end",	       "duration",	  "billable",
    "status",	   "disposition",      "ended_by",     "session_expires", "crash",
    "recovered",   "relayed",	       "caller_codec", "caller_packets",  "caller_bytes",
    "caller_lost", "caller_jitter_us", "callee_codec", "callee_packets",  "callee_bytes",
    "callee_lost", "callee_jitter_us", "history",
};

void cdr_csv_header(struct buf *b)
{
	for (size_t i = 0; i < sizeof(cdr_cols) / sizeof(cdr_cols[0]); i++) {
		if (i)
			buf_append_char(b, ',');
		buf_append_str(b, cdr_cols[i]);
	}
	buf_append(b, "\r\n", 2);
}

/* "503 gw1 udp:192.0.2.1:5060 - -; 200 gw2 udp:... sip:... 2026-...Z": each leg, in order. */
static void history_text(const struct cdr_rec *r, struct buf *b)
{
	char a[80], t[40];

	for (unsigned i = 0; i < r->nlegs && i < CDR_LEGS_MAX; i++) {
		const struct cdr_leg *l = &r->legs[i];
		addr_text(&l->to, a, sizeof(a));
		cdr_format_time(l->ring_ms, t, sizeof(t));
		buf_printf(b, "%s%u %s %s %s %s", i ? "; " : "", l->status,
			   l->gateway[0] ? l->gateway : "-", a[0] ? a : "-",
			   l->target[0] ? l->target : "-", t[0] ? t : "-");
	}
	if (r->legs_dropped)
		buf_printf(b, "; (%u more)", r->legs_dropped);
}

static void fmt_dur(char *out, size_t len, int64_t ms)
{
	snprintf(out, len, "%" PRId64 ".%03d", ms / 1000, (int)(ms % 1000));
}

void cdr_csv_row(const struct cdr_rec *r, struct buf *b)
{
	char id[17], t[4][40], a[80], dur[32];
	struct buf h;
	const struct dlg_media_dir *dir[2] = {&r->media.from_caller, &r->media.from_callee};

	snprintf(id, sizeof(id), "%016" PRIx64, r->id);
	cdr_format_time(r->start_ms, t[0], sizeof(t[0]));
	cdr_format_time(r->ring_ms, t[1], sizeof(t[1]));
	cdr_format_time(r->answer_ms, t[2], sizeof(t[2]));
	cdr_format_time(r->end_ms, t[3], sizeof(t[3]));
	addr_text(&r->src, a, sizeof(a));
	fmt_dur(dur, sizeof(dur), cdr_talk_ms(r));
	buf_printf(b, "%s,", id);
	const char *texts[] = {r->callid,  r->account, r->identity, r->from,
			       r->dialled, r->target,  r->gateway,  a};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		csv_text(b, texts[i]);
		buf_append_char(b, ',');
	}
	buf_printf(b, "%s,%s,%s,%s,%s,%" PRId64 ",%u,%s,", t[0], t[1], t[2], t[3], dur,
		   cdr_billable_s(r), r->status, cdr_disp_name(r->disp));
	csv_text(b, cdr_ended_by(r));
	buf_printf(b, ",%u,%d,%d,%d", r->session_expires, r->life == CDR_LIFE_CRASH,
		   r->life == CDR_LIFE_RECOVERED, r->media.relayed);
	for (int i = 0; i < 2; i++) {
		char codec[sizeof(dir[i]->codec) + 1];
		snprintf(codec, sizeof(codec), "%.*s", (int)sizeof(dir[i]->codec), dir[i]->codec);
		buf_append_char(b, ',');
		csv_text(b, codec);
		buf_printf(b, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu32, dir[i]->packets,
			   dir[i]->bytes, dir[i]->lost, dir[i]->jitter_us);
	}
	buf_append_char(b, ',');
	buf_init(&h, 0);
	history_text(r, &h);
	buf_cstr(&h);
	csv_text(b, h.err ? "" : h.p);
	buf_free(&h);
	buf_append(b, "\r\n", 2);
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void json_str(struct buf *b, const char *v)
{
	const unsigned char *p = (const unsigned char *)v;
	size_t n = strlen(v);

	buf_append_char(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char ch = p[i];
		size_t l;
		if (ch == '"' || ch == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)ch);
			i++;
		} else if (ch < 0x20 || ch == 0x7f) {
			buf_printf(b, "\\u%04x", ch);
			i++;
		} else if ((l = utf8_len(p + i, n - i)) == 0) {
			buf_append_str(b, "\\ufffd");
			i++;
		} else {
			buf_append(b, v + i, l);
			i += l;
		}
	}
	buf_append_char(b, '"');
}

static void json_kv(struct buf *b, const char *k, const char *v)
{
	buf_printf(b, ",\"%s\":", k);
	json_str(b, v);
}

static void json_dir(struct buf *b, const char *k, const struct dlg_media_dir *m)
{
	char codec[sizeof(m->codec) + 1];

	snprintf(codec, sizeof(codec), "%.*s", (int)sizeof(m->codec), m->codec);
	buf_printf(b, ",\"%s\":{\"codec\":", k);
	json_str(b, codec);
	buf_printf(b,
		   ",\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lost\":%" PRIu64
		   ",\"jitter_us\":%" PRIu32 "}",
		   m->packets, m->bytes, m->lost, m->jitter_us);
}

void cdr_json(const struct cdr_rec *r, struct buf *b)
{
	char t[40], a[80];

	buf_printf(b, "{\"id\":\"%016" PRIx64 "\"", r->id);
	json_kv(b, "callid", r->callid);
	json_kv(b, "account", r->account);
	json_kv(b, "identity", r->identity);
	json_kv(b, "from", r->from);
	json_kv(b, "dialled", r->dialled);
	json_kv(b, "target", r->target);
	json_kv(b, "gateway", r->gateway);
	addr_text(&r->src, a, sizeof(a));
	json_kv(b, "source", a);
	cdr_format_time(r->start_ms, t, sizeof(t));
	json_kv(b, "start", t);
	cdr_format_time(r->ring_ms, t, sizeof(t));
	json_kv(b, "ringing", t);
	cdr_format_time(r->answer_ms, t, sizeof(t));
	json_kv(b, "answer", t);
	cdr_format_time(r->end_ms, t, sizeof(t));
	json_kv(b, "end", t);
	buf_printf(b, ",\"duration_ms\":%" PRId64 ",\"billable\":%" PRId64 ",\"status\":%u",
		   cdr_talk_ms(r), cdr_billable_s(r), r->status);
	json_kv(b, "disposition", cdr_disp_name(r->disp));
	json_kv(b, "ended_by", cdr_ended_by(r));
	buf_printf(b,
		   ",\"session_expires\":%u,\"crash\":%s,\"recovered\":%s,\"truncated\":%s,"
		   "\"relayed\":%s",
		   r->session_expires, r->life == CDR_LIFE_CRASH ? "true" : "false",
		   r->life == CDR_LIFE_RECOVERED ? "true" : "false",
		   r->truncated ? "true" : "false", r->media.relayed ? "true" : "false");
	json_dir(b, "from_caller", &r->media.from_caller);
	json_dir(b, "from_callee", &r->media.from_callee);
	buf_append_str(b, ",\"history\":[");
	for (unsigned i = 0; i < r->nlegs && i < CDR_LEGS_MAX; i++) {
		const struct cdr_leg *l = &r->legs[i];
		buf_append_str(b, i ? ",{" : "{");
		buf_printf(b, "\"status\":%u", l->status);
		json_kv(b, "target", l->target);
		json_kv(b, "gateway", l->gateway);
		addr_text(&l->to, a, sizeof(a));
		json_kv(b, "address", a);
		cdr_format_time(l->ring_ms, t, sizeof(t));
		json_kv(b, "ringing", t);
		buf_append_char(b, '}');
	}
	buf_printf(b, "],\"history_dropped\":%u}", r->legs_dropped);
}
