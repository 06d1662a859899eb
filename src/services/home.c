/*
 * home.c - the home worker's glue: which requests go there, the
 * write-behind of records in batches on the database thread, the loading
 * of saved state, the once-a-second sweep of expiries, and re-reading what
 * the CLI changed (topics, mailboxes) while the server runs.
 */
#include "services/home_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/siphash.h"
#include "core/log.h"
#include "server/dbq.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/pidf.h"
#include "transport/tport.h"

#define HOME_SWEEP_MS 1000

struct rec_op {
	bool del;
	int kind;
	char *key, *owner, *meta;
	void *body;
	size_t body_len;
	int64_t seq, expires;
};

struct rec_batch {
	struct dbq_job job;
	struct home *h;
	struct rec_op *ops;
	size_t n, cap;
};

/* A mailbox summary as the store holds it. */
struct snap_mailbox {
	char aor[HOME_AOR_MAX];
	unsigned new_msgs, old_msgs;
};

/* A topic member as the store holds it. */
struct snap_member {
	char topic[HOME_AOR_MAX];
	char member[HOME_AOR_MAX];
};

/* What the CLI may change, read on the database thread and applied on the home worker. */
struct home_snapshot {
	struct dbq_job job;
	struct home *h;
	uint64_t ops_done;
	char (*topics)[HOME_AOR_MAX];
	size_t ntopics;
	struct snap_member *members;
	size_t nmembers;
	struct snap_mailbox *mailboxes;
	size_t nmailboxes;
	uint64_t *msg_ids; /* the stored messages, sorted (`msg del` removes some) */
	size_t nmsgs;
	int err;
};

unsigned home_worker(const struct server *srv)
{
	(void)srv;
	return 0;
}

/* ---------------------------------------------------------------- helpers */

int home_aor_of_uri(sv_t uri, char *out, size_t len)
{
	struct sip_uri u;

	if (sip_uri_parse(uri, &u) || (u.kind != SIP_SCHEME_SIP && u.kind != SIP_SCHEME_SIPS))
		return EINVAL;
	return proxy_aor_of(&u, out, len);
}

sv_t home_meta_get(const char *meta, const char *name)
{
	size_t nl = strlen(name);
	const char *p = meta;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			sv_t v = sv_make(p + nl + 1, len - nl - 1);
			return sv_trim(v);
		}
		p = eol ? eol + 2 : NULL;
	}
	return SV_NULL;
}

static unsigned interest_bit(const struct home *h, sv_t aor)
{
	return (unsigned)(siphash_sv(&h->key, aor) % (HOME_INTEREST_WORDS * 64));
}

void home_interest_add(const struct home *h, uint64_t *bits, const char *aor)
{
	unsigned bit = interest_bit(h, sv_cstr(aor));

	bits[bit / 64] |= 1ull << (bit % 64);
}

void home_interest_mark(struct home *h, const char *aor)
{
	unsigned bit = interest_bit(h, sv_cstr(aor));

	atomic_fetch_or(&h->interest[bit / 64], 1ull << (bit % 64));
}

/* The bits of AORs no longer of interest go; one whose interest stays never reads 0. */
static void interest_rebuild(struct home *h)
{
	uint64_t *bits = h->interest_next;

	memset(h->interest_next, 0, sizeof(h->interest_next));
	im_interest(h, bits);
	pres_interest(h, bits);
	for (size_t i = 0; i < HOME_INTEREST_WORDS; i++)
		atomic_store(&h->interest[i], bits[i]);
}

/* ------------------------------------------------------------ write-behind */

static void rec_op_free(struct rec_op *op)
{
	free(op->key);
	free(op->owner);
	free(op->meta);
	free(op->body);
}

static void rec_batch_run(struct store *st, struct dbq_job *job)
{
	struct rec_batch *b = (struct rec_batch *)job;
	int err = store_begin(st);

	for (size_t i = 0; i < b->n && !err; i++) {
		struct rec_op *op = &b->ops[i];
		if (op->del) {
			int rc = store_record_del(st, op->kind, op->key);
			err = rc == ENOENT ? 0 : rc;
		} else {
			struct store_record r = {.kind = op->kind,
						 .seq = op->seq,
						 .expires = op->expires,
						 .meta = op->meta ? op->meta : "",
						 .body = op->body,
						 .body_len = op->body_len};
			snprintf(r.key, sizeof(r.key), "%s", op->key);
			snprintf(r.owner, sizeof(r.owner), "%s", op->owner ? op->owner : "");
			err = store_record_put(st, &r);
		}
	}
	if (err) {
		log_err("saving messaging/presence state: %s", store_errmsg(st));
		store_rollback(st);
	} else if (store_commit(st)) {
		log_err("saving messaging/presence state: %s", store_errmsg(st));
		store_rollback(st);
	}
	atomic_fetch_add(&b->h->ops_done, 1);
	for (size_t i = 0; i < b->n; i++)
		rec_op_free(&b->ops[i]);
	free(b->ops);
	free(b);
}

static struct rec_op *rec_slot(struct home *h)
{
	struct rec_batch *b = h->batch;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->h = h;
		b->job.run = rec_batch_run;
		h->batch = b;
		if (h->started)
			event_active(&h->flush_ev, EV_TIMEOUT, 0);
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		struct rec_op *n = realloc(b->ops, ncap * sizeof(*n));
		if (!n)
			return NULL;
		b->ops = n;
		b->cap = ncap;
	}
	memset(&b->ops[b->n], 0, sizeof(b->ops[0]));
	return &b->ops[b->n++];
}

void home_rec_put(struct home *h, int kind, const char *key, const char *owner, int64_t seq,
		  int64_t expires, const char *meta, const void *body, size_t body_len)
{
	struct rec_op *op = rec_slot(h);

	if (!op) {
		log_err("out of memory saving messaging/presence state");
		return;
	}
	op->kind = kind;
	op->key = strdup(key);
	op->owner = strdup(owner ? owner : "");
	op->meta = strdup(meta ? meta : "");
	op->seq = seq;
	op->expires = expires;
	if (body_len) {
		op->body = malloc(body_len);
		if (op->body) {
			memcpy(op->body, body, body_len);
			op->body_len = body_len;
		}
	}
}

void home_rec_del(struct home *h, int kind, const char *key)
{
	struct rec_op *op = rec_slot(h);

	if (!op) {
		log_err("out of memory saving messaging/presence state");
		return;
	}
	op->del = true;
	op->kind = kind;
	op->key = strdup(key);
}

static void home_flush(struct home *h)
{
	struct rec_batch *b = h->batch;

	if (!b)
		return;
	h->batch = NULL;
	h->ops_submitted++;
	dbq_submit(h->srv->dbq, &b->job);
}

static void home_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	home_flush(arg);
}

/* --------------------------------------------------------------- loading */

static int load_one(void *arg, const struct store_record *rec)
{
	struct home *h = arg;

	switch (rec->kind) {
	case STORE_REC_MESSAGE:
		return im_load_message(h, rec);
	case STORE_REC_TOPIC:
		return im_load_topic(h, rec);
	case STORE_REC_MEMBER:
		return im_load_member(h, rec);
	case STORE_REC_PUBLICATION:
		return pres_load_pub(h, rec);
	case STORE_REC_SUBSCRIPTION:
		return pres_load_sub(h, rec);
	case STORE_REC_MAILBOX: {
		unsigned nw = 0, old = 0;
		sscanf(rec->meta, "%u %u", &nw, &old);
		pres_mailbox_set(h, rec->owner, nw, old);
		return 0;
	}
	default:
		return 0;
	}
}

int home_load(struct home *h, struct store *st)
{
	static const int order[] = {STORE_REC_TOPIC,   STORE_REC_MEMBER,
				    STORE_REC_MESSAGE, STORE_REC_PUBLICATION,
				    STORE_REC_MAILBOX, STORE_REC_SUBSCRIPTION};
	int err = 0;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && !err; i++)
		err = store_record_list(st, order[i], NULL, load_one, h);
	if (err)
		return err;
	/* what was loaded is on disk already: nothing to write back */
	if (h->batch) {
		for (size_t i = 0; i < h->batch->n; i++)
			rec_op_free(&h->batch->ops[i]);
		free(h->batch->ops);
		free(h->batch);
		h->batch = NULL;
	}
	return 0;
}

/* ------------------------------------------------------------- snapshots */

/* Appends one zeroed element to a growing array; NULL when out of memory. */
static void *snap_grow(void *v, size_t *n, size_t size, void **out)
{
	char *nv = realloc(v, (*n + 1) * size);

	if (!nv)
		return NULL;
	memset(nv + *n * size, 0, size);
	*out = nv + *n * size;
	(*n)++;
	return nv;
}

/* A stored row whose names do not fit what the home holds: left out of the snapshot, said. */
static int snap_skip(size_t *n, const struct store_record *rec)
{
	(*n)--; /* the element snap_grow added */
	log_warn("home: stored record '%.64s' of '%.64s' is longer than the home holds: ignored",
		 rec->key, rec->owner);
	return 0;
}

static int snap_row(void *arg, const struct store_record *rec)
{
	struct home_snapshot *s = arg;
	const char *sp;
	void *nv = NULL, *e = NULL;

	switch (rec->kind) {
	case STORE_REC_TOPIC:
		nv = snap_grow(s->topics, &s->ntopics, sizeof(*s->topics), &e);
		if (nv) {
			s->topics = nv;
			if (sv_copy(sv_cstr(rec->key), e, HOME_AOR_MAX))
				return snap_skip(&s->ntopics, rec);
		}
		break;
	case STORE_REC_MEMBER:
		sp = strchr(rec->key, ' '); /* "topic member" */
		if (!sp)
			return 0;
		nv = snap_grow(s->members, &s->nmembers, sizeof(*s->members), &e);
		if (nv) {
			struct snap_member *m = e;
			s->members = nv;
			if (sv_copy(sv_cstr(rec->owner), m->topic, sizeof(m->topic)) ||
			    sv_copy(sv_cstr(sp + 1), m->member, sizeof(m->member)))
				return snap_skip(&s->nmembers, rec);
		}
		break;
	case STORE_REC_MAILBOX:
		nv = snap_grow(s->mailboxes, &s->nmailboxes, sizeof(*s->mailboxes), &e);
		if (nv) {
			struct snap_mailbox *mb = e;
			s->mailboxes = nv;
			if (sv_copy(sv_cstr(rec->owner), mb->aor, sizeof(mb->aor)))
				return snap_skip(&s->nmailboxes, rec);
			if (sscanf(rec->meta, "%u %u", &mb->new_msgs, &mb->old_msgs) != 2)
				mb->new_msgs = mb->old_msgs = 0;
		}
		break;
	default:
		return 0;
	}
	return nv ? 0 : ENOMEM;
}

/* A stored message's id (its seq): only the ids are read, not the messages. */
static int snap_msg_id(void *arg, const char *key, int64_t seq)
{
	struct home_snapshot *s = arg;
	void *e = NULL, *nv = snap_grow(s->msg_ids, &s->nmsgs, sizeof(*s->msg_ids), &e);

	(void)key;
	if (!nv)
		return ENOMEM;
	s->msg_ids = nv;
	*(uint64_t *)e = (uint64_t)seq;
	return 0;
}

static void snap_free(struct home_snapshot *s)
{
	free(s->topics);
	free(s->members);
	free(s->mailboxes);
	free(s->msg_ids);
	free(s);
}

static void snap_read(struct store *st, struct dbq_job *job)
{
	struct home_snapshot *s = (struct home_snapshot *)job;

	s->ops_done = atomic_load(&s->h->ops_done);
	s->err = store_record_list(st, STORE_REC_TOPIC, NULL, snap_row, s);
	if (!s->err)
		s->err = store_record_list(st, STORE_REC_MEMBER, NULL, snap_row, s);
	if (!s->err)
		s->err = store_record_list(st, STORE_REC_MAILBOX, NULL, snap_row, s);
	if (!s->err)
		s->err = store_record_keys(st, STORE_REC_MESSAGE, snap_msg_id, s);
	if (!s->err && s->nmsgs)
		qsort(s->msg_ids, s->nmsgs, sizeof(*s->msg_ids), im_id_cmp);
	worker_post(job->reply_to, &job->done);
}

static bool snap_has_topic(const struct home_snapshot *s, const char *key)
{
	for (size_t i = 0; i < s->ntopics; i++) {
		if (strcmp(s->topics[i], key) == 0)
			return true;
	}
	return false;
}

static bool snap_has_member(const struct home_snapshot *s, const char *topic, const char *member)
{
	for (size_t i = 0; i < s->nmembers; i++) {
		if (strcmp(s->members[i].topic, topic) == 0 &&
		    strcmp(s->members[i].member, member) == 0)
			return true;
	}
	return false;
}

static bool snap_has_mailbox(const struct home_snapshot *s, const char *aor)
{
	for (size_t i = 0; i < s->nmailboxes; i++) {
		if (strcmp(s->mailboxes[i].aor, aor) == 0)
			return true;
	}
	return false;
}

struct mailbox_gone {
	struct home *h;
	const struct home_snapshot *s;
};

static void clear_mailbox_if_gone(void *arg, const char *aor)
{
	struct mailbox_gone *g = arg;

	if (!snap_has_mailbox(g->s, aor))
		pres_mailbox_set(g->h, aor, 0, 0);
}

/* The store is the truth once our own writes are in it: memory follows it, writing nothing. */
static void snap_apply(struct home *h, const struct home_snapshot *s)
{
	struct mailbox_gone g = {h, s};

	for (size_t i = 0; i < s->nmailboxes; i++)
		pres_mailbox_set(h, s->mailboxes[i].aor, s->mailboxes[i].new_msgs,
				 s->mailboxes[i].old_msgs);
	pres_mailbox_each(h, clear_mailbox_if_gone, &g);
	for (size_t i = 0; i < s->ntopics; i++) {
		if (!im_topic_find(h, s->topics[i]))
			im_topic_create(h, s->topics[i], false);
	}
	for (struct im_topic *t = h->topics, *next; t; t = next) {
		next = t->next;
		if (!snap_has_topic(s, t->key)) {
			log_info("topic sip:%s was deleted", t->key);
			im_topic_delete(h, t->key, false);
		}
	}
	im_drop_deleted(h, s->msg_ids, s->nmsgs);
	for (size_t i = 0; i < s->nmembers; i++)
		im_topic_join(h, s->members[i].topic, s->members[i].member, false);
	for (struct im_topic *t = h->topics; t; t = t->next) {
		for (size_t j = 0; j < t->n;) {
			if (!snap_has_member(s, t->key, t->members[j]))
				im_topic_leave(h, t->key, t->members[j],
					       false); /* the array moves down */
			else
				j++;
		}
	}
}

static void snap_done(struct worker *w, struct wjob *job)
{
	struct home_snapshot *s = (struct home_snapshot *)job;
	struct home *h = s->h;

	if (atomic_load(&w->srv->stopping)) {
		snap_free(s);
		return;
	}
	if (s->err) {
		log_warn(
		    "re-reading topics, mailboxes and messages failed; keeping what is in memory");
	} else if (s->ops_done != h->ops_submitted || h->batch) {
		/* our own writes were still on their way: the copy is behind us; ask again */
		h->snapshot_wanted = true;
	} else {
		snap_apply(h, s);
	}
	snap_free(s);
}

static void home_request_snapshot(struct home *h)
{
	struct home_snapshot *s = calloc(1, sizeof(*s));

	if (!s)
		return;
	s->h = h;
	s->job.run = snap_read;
	s->job.reply_to = h->w;
	s->job.done.fn = snap_done;
	h->snapshot_wanted = false;
	home_flush(h);
	dbq_submit(h->srv->dbq, &s->job);
}

static void changed_job(struct worker *w, struct wjob *job)
{
	struct home *h = w->srv->home;

	free(job);
	if (atomic_load(&w->srv->stopping))
		return;
	/* the subscriber cache was re-read before this was posted: settings are current */
	pres_policy_changed(h);
	home_request_snapshot(h);
}

void home_store_changed(struct server *srv)
{
	struct wjob *job;

	if (!srv->home || !srv->home->started)
		return;
	job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->fn = changed_job;
	worker_post(srv->workers[home_worker(srv)], job);
}

/* ------------------------------------------------------------------ sweep */

static void home_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct home *h = arg;
	int64_t now = (int64_t)time(NULL);

	(void)fd;
	(void)what;
	im_sweep(h, now);
	pres_sweep(h, now);
	if (h->snapshot_wanted)
		home_request_snapshot(h);
	interest_rebuild(h);
	worker_reap(h->w);
	worker_timer_add(h->w, &h->sweep_ev, HOME_SWEEP_MS);
}

static void home_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct home *h = arg;

	(void)fd;
	(void)what;
	im_kick_run(h);
	worker_reap(h->w);
}

static void start_job(struct worker *w, struct wjob *job)
{
	struct home *h = w->srv->home;

	free(job);
	if (atomic_load(&w->srv->stopping))
		return;
	h->w = w;
	event_assign(&h->flush_ev, w->base, -1, 0, home_flush_cb, h);
	event_assign(&h->kick_ev, w->base, -1, 0, home_kick_cb, h);
	evtimer_assign(&h->sweep_ev, w->base, home_sweep_cb, h);
	worker_timer_add(w, &h->sweep_ev, HOME_SWEEP_MS);
	h->started = true;
	if (h->kick_head)
		event_active(&h->kick_ev, EV_TIMEOUT, 0);
	/* subscriptions restored from the store learn the state now */
	pres_resume(h);
}

void home_start(struct server *srv)
{
	struct wjob *job;

	if (!srv->home)
		return;
	job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->fn = start_job;
	srv->home->w = srv->workers[home_worker(srv)];
	worker_post(srv->workers[home_worker(srv)], job);
}

/* ------------------------------------------------------------ life cycle */

int home_create(struct server *srv, struct home **out)
{
	struct home *h = calloc(1, sizeof(*h));

	if (!h)
		return ENOMEM;
	h->srv = srv;
	if (siphash_key_random(&h->key)) {
		free(h);
		return EAGAIN;
	}
	h->next_msg_id = (uint64_t)time(NULL) * 1000;
	h->next_sub_id = 1;
	*out = h;
	return 0;
}

void home_stop(struct home *h)
{
	if (!h)
		return;
	if (h->started) {
		event_del(&h->flush_ev);
		event_del(&h->kick_ev);
		event_del(&h->sweep_ev);
		h->started = false;
	}
	home_flush(h);
}

void home_destroy(struct home *h)
{
	if (!h)
		return;
	/* the workers' transactions are gone, and the requests in flight with them */
	im_free_all(h);
	pres_free_all(h);
	home_ctr_free_all(h);
	if (h->batch) {
		for (size_t i = 0; i < h->batch->n; i++)
			rec_op_free(&h->batch->ops[i]);
		free(h->batch->ops);
		free(h->batch);
	}
	free(h);
}

/* -------------------------------------------------------------- requests */

static bool home_is_broker_host(const struct server *srv, sv_t host)
{
	return srv->cfg.broker_domain[0] && sv_ieq(host, sv_cstr(srv->cfg.broker_domain));
}

bool home_wants(const struct preq *r)
{
	const struct sip_msg *m = r->m;
	const struct sip_uri *ruri;

	if (m->method != SIP_MESSAGE && m->method != SIP_PUBLISH && m->method != SIP_SUBSCRIBE)
		return false;
	ruri = &((struct sip_msg *)m)->ruri;
	if (!(m->parsed & SIP_P_RURI))
		ruri = sip_msg_ruri((struct sip_msg *)m);
	if (!ruri)
		return false;
	if (r->has_to_tag)
		return m->method == SIP_SUBSCRIBE && r->ruri_myself;
	if (home_is_broker_host(r->srv, ruri->host))
		return m->method != SIP_PUBLISH;
	return r->ruri_local && ruri->user.len > 0;
}

enum proxy_step home_handle(struct preq *r)
{
	struct home *h = r->srv->home;

	if (!h)
		return PROXY_CONTINUE;
	switch (r->m->method) {
	case SIP_MESSAGE:
		return im_handle_message(h, r);
	case SIP_PUBLISH:
		return pres_handle_publish(h, r);
	case SIP_SUBSCRIBE:
		return pres_handle_subscribe(h, r);
	default:
		return PROXY_CONTINUE;
	}
}

enum proxy_step home_handle_in_dialog(struct preq *r)
{
	struct home *h = r->srv->home;

	if (!h || r->m->method != SIP_SUBSCRIBE)
		return PROXY_CONTINUE;
	return pres_handle_in_dialog(h, r);
}

struct registered_job {
	struct wjob base;
	char aor[HOME_AOR_MAX];
};

static void registered_run(struct worker *w, struct wjob *job)
{
	struct registered_job *rj = (struct registered_job *)job;
	struct home *h = w->srv->home;

	if (!atomic_load(&w->srv->stopping) && h->started) {
		im_registered(h, rj->aor);
		pres_registered(h, rj->aor);
	}
	free(rj);
}

void home_registered(struct worker *w, sv_t aor)
{
	struct home *h = w->srv->home;
	struct registered_job *rj;
	unsigned bit;

	if (!h || !h->started)
		return;
	bit = interest_bit(h, aor);
	if (!(atomic_load_explicit(&h->interest[bit / 64], memory_order_relaxed) &
	      (1ull << (bit % 64))))
		return; /* nothing waits for this AOR: the registrar's fast path */
	rj = calloc(1, sizeof(*rj));
	if (!rj)
		return;
	if (sv_copy(aor, rj->aor, sizeof(rj->aor))) {
		log_warn("home: address of record '%.*s' too long to deliver to", (int)aor.len,
			 aor.p);
		free(rj);
		return;
	}
	rj->base.fn = registered_run;
	worker_post(w->srv->workers[home_worker(w->srv)], &rj->base);
}
