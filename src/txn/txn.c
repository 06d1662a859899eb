/*
 * txn.c - RFC 3261 17 transaction state machines, their timers, the shared
 * server-transaction table and the per-worker client-transaction slots.
 *
 * Timer values come from the configured T1/T2/T4. On reliable transports
 * the retransmission timers never start and the lingering timers (D, I, J,
 * K) are zero, as 17.1.1.2 / 17.2.1 say.
 */
#include "txn/txn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/siphash.h"
#include "config/config.h"
#include "server/worker.h"

#define TXN_BUCKETS	  16384
#define TXN_SLOTS_INITIAL 1024

struct txn_bucket {
	pthread_mutex_t lock;
	struct txn_srv *head;
};

struct txn_table {
	struct siphash_key key;	    /* table hashes of branches and Call-IDs */
	struct siphash_key mac_key; /* the MAC part of our branches */
	struct txn_bucket buckets[TXN_BUCKETS];
};

struct txn_worker {
	struct txn_cli **slots;
	uint32_t nslots;
	uint32_t *free_slots;
	uint32_t nfree;
	uint32_t gen;
	struct sip_msg scratch;
};

static const struct cfg *cfg_of(struct worker *w)
{
	return w->cfg;
}

static void timer_start(struct worker *w, struct event *ev, unsigned ms)
{
	worker_timer_add(w, ev, ms);
}

static void timer_stop(struct event *ev)
{
	if (event_initialized(ev))
		evtimer_del(ev);
}

/*
 * Table
 */
int txn_table_create(uint64_t seed, struct txn_table **out)
{
	struct txn_table *t = calloc(1, sizeof(*t));

	if (!t)
		return ENOMEM;
	/* random per process; the seed is mixed in for a kernel that gave no randomness */
	if (siphash_key_random(&t->key) || siphash_key_random(&t->mac_key)) {
		free(t);
		return EAGAIN;
	}
	t->mac_key.k0 ^= seed;
	for (unsigned i = 0; i < TXN_BUCKETS; i++)
		pthread_mutex_init(&t->buckets[i].lock, NULL);
	*out = t;
	return 0;
}

void txn_table_destroy(struct txn_table *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < TXN_BUCKETS; i++)
		pthread_mutex_destroy(&t->buckets[i].lock);
	free(t);
}

static struct txn_bucket *bucket_of(struct txn_table *t, uint64_t hash)
{
	return &t->buckets[hash % TXN_BUCKETS];
}

static bool key_equal(const struct txn_key *a, const struct txn_key *b)
{
	return a->hash == b->hash && a->rfc3261 == b->rfc3261 && a->method == b->method &&
	       a->branch_len == b->branch_len && memcmp(a->branch, b->branch, a->branch_len) == 0;
}

int txn_key_of(struct worker *w, struct sip_msg *m, bool for_invite, struct txn_key *k)
{
	const struct sip_via *via = sip_msg_via1(m);
	const struct sip_cseq *cs = sip_msg_cseq(m);
	const struct sip_naddr *from = sip_msg_from(m);
	struct siphash_state h;

	if (!via || !cs || !from)
		return EINVAL;
	memset(k, 0, offsetof(struct txn_key, branch));
	k->method = cs->method;
	if (for_invite && (cs->method == SIP_ACK || cs->method == SIP_CANCEL))
		k->method = SIP_INVITE;
	else if (cs->method == SIP_ACK)
		k->method = SIP_INVITE;
	/* keyed: branches and Call-IDs are the sender's choice (no crafted collisions) */
	siphash_init(&h, &w->txns->key, SIPHASH_1_3);
	/* RFC 3261 branches carry the magic cookie and more */
	if (via->branch.len > 7 && sv_istarts(via->branch, SV(TXN_BRANCH_PREFIX)) &&
	    via->branch.len <= TXN_BRANCH_MAX) {
		k->rfc3261 = true;
		k->branch_len = (uint8_t)via->branch.len;
		memcpy(k->branch, via->branch.p, via->branch.len);
		siphash_update(&h, via->branch.p, via->branch.len);
		siphash_update_lower(&h, via->host.p, via->host.len);
		siphash_update_u64(&h, via->port ^ ((uint64_t)k->method << 32));
	} else {
		/* RFC 2543: Call-ID, From tag, CSeq number and the top Via identify it */
		sv_t callid = sip_msg_callid(m);
		siphash_update(&h, callid.p, callid.len);
		siphash_update_u64(&h, callid.len);
		siphash_update(&h, from->tag.p, from->tag.len);
		siphash_update_u64(&h, from->tag.len);
		siphash_update(&h, via->raw.p, via->raw.len);
		siphash_update_u64(&h, cs->num ^ ((uint64_t)k->method << 32));
	}
	k->hash = siphash_final(&h);
	return 0;
}

int txn_srv_find(struct worker *w, const struct txn_key *k, unsigned *owner, struct txn_srv **t)
{
	struct txn_bucket *b = bucket_of(w->txns, k->hash);
	int err = ENOENT;

	*t = NULL;
	pthread_mutex_lock(&b->lock);
	for (struct txn_srv *s = b->head; s; s = s->hnext) {
		if (key_equal(&s->key, k)) {
			*owner = s->w->id;
			if (s->w == w)
				*t = s;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

static int table_insert(struct worker *w, struct txn_srv *t)
{
	struct txn_bucket *b = bucket_of(w->txns, t->key.hash);
	int err = 0;

	pthread_mutex_lock(&b->lock);
	for (struct txn_srv *s = b->head; s; s = s->hnext) {
		if (key_equal(&s->key, &t->key)) {
			err = EEXIST;
			break;
		}
	}
	if (!err) {
		t->hnext = b->head;
		b->head = t;
		t->in_table = true;
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

static void table_remove(struct txn_srv *t)
{
	struct txn_bucket *b;

	if (!t->in_table)
		return;
	b = bucket_of(t->w->txns, t->key.hash);
	pthread_mutex_lock(&b->lock);
	for (struct txn_srv **pp = &b->head; *pp; pp = &(*pp)->hnext) {
		if (*pp == t) {
			*pp = t->hnext;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
	t->in_table = false;
}

/*
 * Server transactions
 */
void txn_reply_dest(struct sip_msg *m, const struct tp_src *src, struct tp_dest *d)
{
	const struct sip_via *via = sip_msg_via1(m);

	memset(d, 0, sizeof(*d));
	d->peer = src->peer;
	d->listen = (int)src->listen;
	d->conn_id = src->conn_id;
	if (src->peer.proto != SIP_PROTO_UDP) {
		/* reliable: back over the same connection (18.2.2); when it is gone, a new one
		 * to the received address at the sent-by port */
		if (via)
			tp_addr_set_port(&d->peer, via->port ? via->port : 5060);
		return;
	}
	if (!via)
		return;
	/* UDP: the source address; the source port only with rport (RFC 3581) */
	if (!via->has_rport)
		tp_addr_set_port(&d->peer, via->port ? via->port : 5060);
}

static void srv_reap(struct worker *w, struct wjob *job)
{
	struct txn_srv *t = (struct txn_srv *)job;

	(void)w;
	if (t->ops && t->ops->terminated)
		t->ops->terminated(t);
}

static void srv_terminate(struct txn_srv *t)
{
	if (t->state == TXN_TERMINATED)
		return;
	t->state = TXN_TERMINATED;
	txn_srv_cleanup(t);
	t->reap.fn = srv_reap;
	worker_defer(t->w, &t->reap);
}

static void srv_send_last(struct txn_srv *t)
{
	if (t->resp && tp_send(t->w, &t->reply_to, t->resp, t->resp_len) && t->reliable && t->ops &&
	    t->ops->failed)
		t->ops->failed(t);
}

static void srv_timer_g(evutil_socket_t fd, short what, void *arg)
{
	struct txn_srv *t = arg;
	const struct cfg *c = cfg_of(t->w);

	(void)fd;
	(void)what;
	if (t->state != TXN_COMPLETED)
		return;
	srv_send_last(t);
	t->g_ms = t->g_ms * 2 < c->t2_ms ? t->g_ms * 2 : c->t2_ms;
	timer_start(t->w, &t->tmr_retrans, t->g_ms);
}

static void srv_timer_end(evutil_socket_t fd, short what, void *arg)
{
	struct txn_srv *t = arg;

	(void)fd;
	(void)what;
	if (t->state == TXN_COMPLETED && t->invite) {
		/* Timer H: the ACK never came */
		if (t->ops && t->ops->failed)
			t->ops->failed(t);
	}
	srv_terminate(t); /* freed later, by the worker's next reap: not inside this callback */
}

int txn_srv_init(struct worker *w, struct txn_srv *t, struct sip_msg *m, const struct tp_src *src,
		 const struct txn_srv_ops *ops, void *tu)
{
	int err;

	memset(t, 0, sizeof(*t));
	t->w = w;
	t->ops = ops;
	t->tu = tu;
	t->invite = m->method == SIP_INVITE;
	t->state = t->invite ? TXN_PROCEEDING : TXN_TRYING;
	t->reliable = src->peer.proto != SIP_PROTO_UDP;
	txn_reply_dest(m, src, &t->reply_to);
	err = txn_key_of(w, m, false, &t->key);
	if (err)
		return err;
	event_assign(&t->tmr_retrans, w->base, -1, 0, srv_timer_g, t);
	event_assign(&t->tmr_end, w->base, -1, 0, srv_timer_end, t);
	return table_insert(w, t);
}

void txn_srv_reply(struct txn_srv *t, const char *resp, size_t len, unsigned status)
{
	const struct cfg *c = cfg_of(t->w);
	char *copy;

	if (t->state == TXN_TERMINATED || t->state == TXN_CONFIRMED)
		return;
	if (t->state == TXN_COMPLETED)
		return; /* a final was sent already */
	if (t->state == TXN_ACCEPTED && (status < 200 || status >= 300))
		return;
	if (tp_send(t->w, &t->reply_to, resp, len) && t->reliable && status >= 200 && t->ops &&
	    t->ops->failed)
		t->ops->failed(t);
	if (status >= 200 && t->invite && status < 300) {
		/* RFC 6026: 2xx retransmissions come from the TU; absorb INVITE retransmissions */
		if (t->state != TXN_ACCEPTED) {
			t->state = TXN_ACCEPTED;
			free(t->resp);
			t->resp = NULL;
			t->status = status;
			timer_start(t->w, &t->tmr_end, 64 * c->t1_ms);
		}
		return;
	}
	/* keep the response for retransmissions */
	copy = realloc(t->resp, len);
	if (copy) {
		memcpy(copy, resp, len);
		t->resp = copy;
		t->resp_len = len;
	}
	t->status = status;
	if (status < 200) {
		t->state = TXN_PROCEEDING;
		return;
	}
	t->state = TXN_COMPLETED;
	if (t->invite) {
		if (!t->reliable) {
			t->g_ms = c->t1_ms;
			timer_start(t->w, &t->tmr_retrans, t->g_ms);
		}
		timer_start(t->w, &t->tmr_end, 64 * c->t1_ms); /* H */
	} else {
		timer_start(t->w, &t->tmr_end, t->reliable ? 0 : 64 * c->t1_ms); /* J */
	}
}

void txn_srv_retransmission(struct txn_srv *t)
{
	if (t->state == TXN_PROCEEDING || t->state == TXN_COMPLETED ||
	    (t->state == TXN_TRYING && t->resp))
		srv_send_last(t);
}

void txn_srv_ack(struct txn_srv *t)
{
	const struct cfg *c = cfg_of(t->w);

	if (!t->invite || t->state != TXN_COMPLETED)
		return;
	t->state = TXN_CONFIRMED;
	timer_stop(&t->tmr_retrans);
	timer_stop(&t->tmr_end);
	timer_start(t->w, &t->tmr_end, t->reliable ? 0 : c->t4_ms); /* I */
}

void txn_srv_cleanup(struct txn_srv *t)
{
	timer_stop(&t->tmr_retrans);
	timer_stop(&t->tmr_end);
	table_remove(t);
	free(t->resp);
	t->resp = NULL;
}

/*
 * Client transactions
 */
int txn_worker_init(struct worker *w)
{
	struct txn_worker *tw = calloc(1, sizeof(*tw));

	if (!tw)
		return ENOMEM;
	w->txw = tw;
	return 0;
}

/* At shut-down: this worker's server transactions, handed to their users to free. */
static void srv_release_all(struct worker *w)
{
	struct txn_table *tt = w->txns;
	struct txn_srv *mine = NULL, *next;

	for (unsigned i = 0; i < TXN_BUCKETS; i++) {
		struct txn_bucket *b = &tt->buckets[i];
		pthread_mutex_lock(&b->lock);
		for (struct txn_srv **pp = &b->head; *pp;) {
			struct txn_srv *t = *pp;
			if (t->w == w) {
				*pp = t->hnext;
				t->in_table = false;
				t->hnext = mine;
				mine = t;
			} else {
				pp = &t->hnext;
			}
		}
		pthread_mutex_unlock(&b->lock);
	}
	for (struct txn_srv *t = mine; t; t = next) {
		next = t->hnext;
		txn_srv_cleanup(t);
		if (t->ops && t->ops->terminated)
			t->ops->terminated(t);
	}
}

void txn_worker_fini(struct worker *w)
{
	struct txn_worker *tw = w->txw;

	if (!tw)
		return;
	srv_release_all(w);
	worker_reap(w);
	for (uint32_t i = 0; i < tw->nslots; i++) {
		struct txn_cli *t = tw->slots[i];
		if (t) {
			if (t->ops && t->ops->discard)
				t->ops->discard(t);
			timer_stop(&t->tmr_retrans);
			timer_stop(&t->tmr_timeout);
			free(t->req);
			free(t);
		}
	}
	sip_msg_release(&tw->scratch);
	free(tw->slots);
	free(tw->free_slots);
	free(tw);
	w->txw = NULL;
}

static int slot_alloc(struct txn_worker *tw, struct txn_cli *t)
{
	if (tw->nfree == 0) {
		uint32_t n = tw->nslots ? tw->nslots * 2 : TXN_SLOTS_INITIAL;
		struct txn_cli **ns = realloc(tw->slots, sizeof(*ns) * n);
		uint32_t *nf;
		if (!ns)
			return ENOMEM;
		tw->slots = ns;
		nf = realloc(tw->free_slots, sizeof(*nf) * n);
		if (!nf)
			return ENOMEM;
		tw->free_slots = nf;
		for (uint32_t i = n; i > tw->nslots; i--) {
			tw->slots[i - 1] = NULL;
			tw->free_slots[tw->nfree++] = i - 1;
		}
		tw->nslots = n;
	}
	t->slot = tw->free_slots[--tw->nfree];
	t->gen = ++tw->gen;
	tw->slots[t->slot] = t;
	return 0;
}

static void cli_reap(struct worker *w, struct wjob *job)
{
	struct txn_cli *t = (struct txn_cli *)job;

	if (t->ops && t->ops->terminated)
		t->ops->terminated(t);
	w->txw->slots[t->slot] = NULL;
	w->txw->free_slots[w->txw->nfree++] = t->slot;
	if (t->cancel)
		t->cancel->parent = NULL;
	if (t->parent)
		t->parent->cancel = NULL;
	free(t->req);
	free(t);
}

static void cli_terminate(struct txn_cli *t)
{
	if (t->state == TXN_TERMINATED)
		return;
	t->state = TXN_TERMINATED;
	timer_stop(&t->tmr_retrans);
	timer_stop(&t->tmr_timeout);
	t->reap.fn = cli_reap;
	worker_defer(t->w, &t->reap);
}

static void cli_timer_retrans(evutil_socket_t fd, short what, void *arg)
{
	struct txn_cli *t = arg;
	const struct cfg *c = cfg_of(t->w);
	bool invite = t->method == SIP_INVITE;

	(void)fd;
	(void)what;
	if (invite ? t->state != TXN_CALLING
		   : (t->state != TXN_TRYING && t->state != TXN_PROCEEDING))
		return;
	tp_send(t->w, &t->dest, t->req, t->req_len);
	if (invite)
		t->interval_ms *= 2; /* A doubles without bound; B ends it */
	else if (t->state == TXN_PROCEEDING)
		t->interval_ms = c->t2_ms;
	else
		t->interval_ms = t->interval_ms * 2 < c->t2_ms ? t->interval_ms * 2 : c->t2_ms;
	timer_start(t->w, &t->tmr_retrans, t->interval_ms);
}

static void cli_timer_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct txn_cli *t = arg;
	bool waiting =
	    t->state == TXN_CALLING || t->state == TXN_TRYING || t->state == TXN_PROCEEDING;

	(void)fd;
	(void)what;
	/* B or F: no final answer; D, K, M: lingering is over */
	if (waiting && t->ops && t->ops->timeout)
		t->ops->timeout(t, 0);
	cli_terminate(t);
}

/*
 * The MAC part of a branch: SipHash-2-4, keyed per process, over what the
 * branch names. A response is matched only when it verifies, so nobody who
 * has not seen the request can forge an answer to it (or to a probe) by
 * guessing a slot and generation.
 */
static uint64_t branch_mac(const struct txn_table *tt, uint64_t loop_hash, unsigned owner,
			   uint32_t slot, uint32_t gen)
{
	unsigned char in[24];

	memcpy(in, &loop_hash, 8);
	memcpy(in + 8, &owner, 4);
	memcpy(in + 12, &slot, 4);
	memcpy(in + 16, &gen, 4);
	memcpy(in + 20, "txn1", 4); /* domain separation from the stateless MAC */
	return siphash24(&tt->mac_key, in, sizeof(in));
}

static void branch_format(struct txn_cli *t, unsigned owner, uint64_t loop_hash)
{
	char *p = t->branch;

	memcpy(p, TXN_BRANCH_PREFIX, 7);
	sv_hex64(p + 7, loop_hash);
	p += 7 + TXN_LOOP_HEX;
	*p++ = '.';
	p += sv_put_hex32(p, owner);
	*p++ = '.';
	p += sv_put_hex32(p, t->slot);
	*p++ = '.';
	p += sv_put_hex32(p, t->gen);
	*p++ = '.';
	sv_hex64(p, branch_mac(t->w->txns, loop_hash, owner, t->slot, t->gen));
	p += TXN_MAC_HEX;
	t->branch_len = (uint8_t)(p - t->branch);
}

int txn_cli_create(struct worker *w, enum sip_method method, uint64_t loop_hash,
		   const struct txn_cli_ops *ops, void *tu, struct txn_cli **out)
{
	struct txn_cli *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return ENOMEM;
	t->w = w;
	t->ops = ops;
	t->tu = tu;
	t->method = method;
	err = slot_alloc(w->txw, t);
	if (err) {
		free(t);
		return err;
	}
	branch_format(t, w->id, loop_hash);
	event_assign(&t->tmr_retrans, w->base, -1, 0, cli_timer_retrans, t);
	event_assign(&t->tmr_timeout, w->base, -1, 0, cli_timer_timeout, t);
	*out = t;
	return 0;
}

/* What the transport gives back when a message of t is lost (txn_send_lost): its slot and gen. */
static uint64_t cli_notify(const struct txn_cli *t)
{
	return (uint64_t)t->slot << 32 | t->gen; /* gen starts at 1: never 0 */
}

int txn_cli_send(struct txn_cli *t, const struct tp_dest *dest, const char *req, size_t len)
{
	const struct cfg *c = cfg_of(t->w);
	int err;

	t->req = malloc(len);
	if (!t->req)
		return ENOMEM;
	memcpy(t->req, req, len);
	t->req_len = len;
	t->dest = *dest;
	t->dest.notify = cli_notify(t);
	dest = &t->dest;
	t->reliable = dest->peer.proto != SIP_PROTO_UDP;
	t->state = t->method == SIP_INVITE ? TXN_CALLING : TXN_TRYING;
	err = tp_send(t->w, dest, req, len);
	if (err) {
		/* 17.1.4: a transport error is a failure of the transaction, like a timeout */
		cli_terminate(t);
		return err;
	}
	if (!t->reliable && !t->no_retransmit) {
		t->interval_ms = c->t1_ms;
		timer_start(t->w, &t->tmr_retrans, t->interval_ms);
	}
	timer_start(t->w, &t->tmr_timeout, 64 * c->t1_ms); /* B or F */
	return 0;
}

void txn_send_lost(struct worker *w, uint64_t notify, int err)
{
	struct txn_worker *tw = w->txw;
	uint32_t slot = (uint32_t)(notify >> 32), gen = (uint32_t)notify;
	struct txn_cli *t = slot < tw->nslots ? tw->slots[slot] : NULL;

	if (!t || t->gen != gen)
		return; /* over already, and its slot may have a new transaction */
	if (t->state != TXN_CALLING && t->state != TXN_TRYING)
		return; /* an answer came, so the request did leave (what was lost is an ACK) */
	log_debug("transaction %.*s: the request never left (%s): failed at once", t->branch_len,
		  t->branch, strerror(err));
	/* 17.1.4: a transport error is a failure of the transaction, like a timeout, but now */
	if (t->ops && t->ops->timeout)
		t->ops->timeout(t, err ? err : EIO);
	cli_terminate(t);
}

void txn_cli_abandon(struct txn_cli *t)
{
	t->ops = NULL;
	t->tu = NULL;
	if (t->state == TXN_CALLING && t->cancel_wanted)
		; /* 9.1: its CANCEL waits for a provisional response; Timer B ends it */
	else if (t->state == TXN_CALLING || t->state == TXN_TRYING || t->state == TXN_IDLE)
		cli_terminate(t);
	else if (t->state == TXN_PROCEEDING && t->method == SIP_INVITE &&
		 !evtimer_pending(&t->tmr_timeout, NULL))
		/* nobody waits for its final response any more: do not keep it for ever */
		timer_start(t->w, &t->tmr_timeout, 64 * cfg_of(t->w)->t1_ms);
}

/* Copies every header line with this id from m into out. */
static void copy_headers(struct buf *out, const struct sip_msg *m, enum sip_hdr_id id)
{
	for (struct sip_hdr *h = sip_msg_hdr(m, id); h; h = sip_msg_hdr_next(m, h))
		buf_append_sv(out, h->raw);
}

/*
 * The common part of an ACK or CANCEL built from our own request (17.1.1.3,
 * 9.1): same Request-URI, top Via, Route set, From, Call-ID and CSeq number.
 */
static int build_from_request(struct buf *out, struct sip_msg *req, sv_t method, sv_t to_line,
			      sv_t extra)
{
	const struct sip_cseq *cs = sip_msg_cseq(req);
	struct sip_hdr *via = sip_msg_hdr(req, SIP_H_VIA);

	if (!cs || !via)
		return EINVAL;
	buf_append_sv(out, method);
	buf_append_char(out, ' ');
	buf_append_sv(out, req->ruri_raw);
	buf_append_str(out, " SIP/2.0\r\n");
	buf_append_sv(out, via->raw);
	copy_headers(out, req, SIP_H_ROUTE);
	copy_headers(out, req, SIP_H_FROM);
	if (to_line.len)
		buf_append_sv(out, to_line);
	else
		copy_headers(out, req, SIP_H_TO);
	copy_headers(out, req, SIP_H_CALL_ID);
	buf_append_str(out, "CSeq: ");
	buf_append_u32(out, cs->num);
	buf_append_char(out, ' ');
	buf_append_sv(out, method);
	buf_append_str(out, "\r\nMax-Forwards: 70\r\n");
	buf_append_sv(out, extra);
	buf_append_str(out, "Content-Length: 0\r\n\r\n");
	return out->err;
}

/*
 * The ACK of a non-2xx final (17.1.1.3). It is built once, from the request
 * and the response's To, and then replaces the request: in Completed the
 * transaction needs nothing but this ACK, resent for each retransmission
 * of the final (Timer D keeps it 32 s, so a copy of the whole INVITE would
 * be held that long for nothing).
 */
static void cli_send_ack(struct txn_cli *t, struct sip_msg *resp)
{
	struct sip_msg *req = &t->w->txw->scratch;
	struct sip_hdr *to = sip_msg_hdr(resp, SIP_H_TO);
	struct buf *out = &t->w->txn_out;
	char *ack;

	if (t->req_is_ack) {
		tp_send(t->w, &t->dest, t->req, t->req_len);
		return;
	}
	if (!t->req || sip_parse(req, t->req, t->req_len, 0) || !to)
		return;
	buf_reset(out);
	if (build_from_request(out, req, SV("ACK"), to->raw, SV_NULL))
		return;
	tp_send(t->w, &t->dest, out->p, out->len);
	ack = malloc(out->len);
	if (!ack)
		return; /* the request stays: a retransmitted final gets its ACK built again */
	memcpy(ack, out->p, out->len);
	free(t->req);
	t->req = ack;
	t->req_len = out->len;
	t->req_is_ack = true;
}

/* A final answer ended what the request copy was kept for (retransmission, CANCEL). */
static void cli_drop_request(struct txn_cli *t)
{
	free(t->req);
	t->req = NULL;
	t->req_len = 0;
}

static void cli_send_cancel(struct txn_cli *t)
{
	struct sip_msg *req = &t->w->txw->scratch;
	struct buf *out = &t->w->txn_out;
	struct txn_cli *c;

	t->cancel_sent = true;
	if (!t->req || sip_parse(req, t->req, t->req_len, 0))
		return;
	buf_reset(out);
	if (build_from_request(
		out, req, SV("CANCEL"), SV_NULL,
		t->cancel_elsewhere
		    ? SV("Reason: SIP;cause=200;text=\"Call completed elsewhere\"\r\n")
		    : SV_NULL))
		return;
	c = calloc(1, sizeof(*c));
	if (!c || slot_alloc(t->w->txw, c)) {
		free(c);
		return;
	}
	c->w = t->w;
	c->method = SIP_CANCEL;
	c->parent = t;
	/* the CANCEL shares the INVITE's branch; responses reach it through t->cancel */
	memcpy(c->branch, t->branch, t->branch_len);
	c->branch_len = t->branch_len;
	event_assign(&c->tmr_retrans, t->w->base, -1, 0, cli_timer_retrans, c);
	event_assign(&c->tmr_timeout, t->w->base, -1, 0, cli_timer_timeout, c);
	t->cancel = c;
	txn_cli_send(c, &t->dest, out->p, out->len);
	/* 9.1: no final response 64*T1 after the CANCEL: the INVITE is over */
	timer_start(t->w, &t->tmr_timeout, 64 * cfg_of(t->w)->t1_ms);
}

void txn_cli_cancel(struct txn_cli *t, bool completed_elsewhere)
{
	if (t->method != SIP_INVITE || t->cancel_sent || t->state == TXN_TERMINATED)
		return;
	t->cancel_elsewhere = completed_elsewhere;
	if (t->state == TXN_PROCEEDING) {
		cli_send_cancel(t);
	} else if (t->state == TXN_CALLING) {
		/* 9.1: no CANCEL before a provisional: stop retransmitting, send it when one comes
		 */
		t->cancel_wanted = true;
		timer_stop(&t->tmr_retrans);
	}
}

static void cli_on_response(struct txn_cli *t, struct sip_msg *resp)
{
	const struct cfg *c = cfg_of(t->w);
	unsigned st = resp->status;
	bool invite = t->method == SIP_INVITE;

	switch (t->state) {
	case TXN_CALLING:
	case TXN_TRYING:
	case TXN_PROCEEDING:
		break;
	case TXN_ACCEPTED:
		/* 2xx retransmissions go up to the proxy, which forwards them statelessly */
		if (st >= 200 && st < 300 && t->ops && t->ops->response)
			t->ops->response(t, resp);
		return;
	case TXN_COMPLETED:
		/* a retransmitted final: repeat our ACK */
		if (invite && st >= 300)
			cli_send_ack(t, resp);
		return;
	default:
		return;
	}
	t->last_status = st;
	if (st < 200) {
		bool first = !t->got_provisional;
		t->got_provisional = true;
		if (t->state != TXN_PROCEEDING) {
			t->state = TXN_PROCEEDING;
			if (invite) {
				/* 17.1.1.2: A and B only run in Calling; Timer C is the TU's */
				timer_stop(&t->tmr_retrans);
				timer_stop(&t->tmr_timeout);
			}
		}
		/* a CANCEL requested before any provisional goes out now */
		if (invite && first && t->cancel_wanted) {
			t->cancel_wanted = false;
			cli_send_cancel(t);
		}
		if (t->ops && t->ops->response)
			t->ops->response(t, resp);
		return;
	}
	timer_stop(&t->tmr_retrans);
	timer_stop(&t->tmr_timeout);
	if (invite && st < 300) {
		/* the ACK of a 2xx is the caller's, and nothing is cancelled any more: Accepted
		 * matches and forwards 2xx retransmissions by the branch alone */
		t->state = TXN_ACCEPTED;
		cli_drop_request(t);
		timer_start(t->w, &t->tmr_timeout, 64 * c->t1_ms); /* M */
	} else if (invite) {
		cli_send_ack(t, resp); /* and keeps the ACK instead of the request */
		t->state = TXN_COMPLETED;
		/* D: at least 32 s on an unreliable transport, whatever T1 (17.1.1.2) */
		timer_start(t->w, &t->tmr_timeout,
			    t->reliable ? 0 : (64 * c->t1_ms > 32000 ? 64 * c->t1_ms : 32000));
	} else {
		t->state = TXN_COMPLETED;
		cli_drop_request(t); /* K absorbs retransmitted finals: nothing is resent */
		timer_start(t->w, &t->tmr_timeout, t->reliable ? 0 : c->t4_ms); /* K */
	}
	t->cancel_wanted = false;
	if (t->ops && t->ops->response)
		t->ops->response(t, resp);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Parses one '.'-terminated lower-case hex field; false when malformed. */
static bool take_hex(sv_t *v, uint64_t *out, size_t maxdigits)
{
	size_t i = 0;
	uint64_t n = 0;

	while (i < v->len && v->p[i] != '.') {
		int d = hexval(v->p[i]);
		if (d < 0 || i >= maxdigits)
			return false;
		n = n * 16 + (uint64_t)d;
		i++;
	}
	if (i == 0)
		return false;
	*out = n;
	*v = sv_sub(*v, i < v->len ? i + 1 : i, v->len);
	return true;
}

bool txn_branch_loop_hash(sv_t branch, uint64_t *loop_hash)
{
	sv_t v;

	if (branch.len <= 7 + TXN_LOOP_HEX || !sv_eq(sv_make(branch.p, 7), SV(TXN_BRANCH_PREFIX)) ||
	    branch.p[7 + TXN_LOOP_HEX] != '.')
		return false;
	v = sv_sub(branch, 7, TXN_LOOP_HEX);
	return take_hex(&v, loop_hash, TXN_LOOP_HEX) && v.len == 0;
}

/* Constant time: how many leading bytes of a MAC match tells an attacker nothing. */
static bool mac_equal(const char *a, const char *b, size_t n)
{
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int txn_branch_verify(const struct txn_table *tt, sv_t branch, unsigned *owner, uint32_t *slot,
		      uint32_t *gen)
{
	uint64_t o, s, g, loop;
	char mac[TXN_MAC_HEX];
	sv_t v, fields;

	if (branch.len < 7 + TXN_LOOP_HEX + 6 + 1 + TXN_MAC_HEX ||
	    !sv_eq(sv_make(branch.p, 7), SV(TXN_BRANCH_PREFIX)) ||
	    branch.p[7 + TXN_LOOP_HEX] != '.' || branch.p[branch.len - TXN_MAC_HEX - 1] != '.')
		return 0;
	v = sv_sub(branch, 7, TXN_LOOP_HEX);
	if (!take_hex(&v, &loop, TXN_LOOP_HEX))
		return 0;
	fields = sv_sub(branch, 7 + TXN_LOOP_HEX + 1,
			branch.len - (7 + TXN_LOOP_HEX + 1) - TXN_MAC_HEX - 1);
	v = fields;
	if (!take_hex(&v, &o, 2) || !take_hex(&v, &s, 8) || !take_hex(&v, &g, 8) || v.len ||
	    fields.p[fields.len - 1] == '.')
		return 0;
	sv_hex64(mac, branch_mac(tt, loop, (unsigned)o, (uint32_t)s, (uint32_t)g));
	if (!mac_equal(mac, branch.p + branch.len - TXN_MAC_HEX, TXN_MAC_HEX))
		return -1;
	*owner = (unsigned)o;
	*slot = (uint32_t)s;
	*gen = (uint32_t)g;
	return 1;
}

int txn_cli_dispatch(struct worker *w, struct sip_msg *resp, const struct tp_src *src)
{
	const struct sip_via *via = sip_msg_via1(resp);
	const struct sip_cseq *cs = sip_msg_cseq(resp);
	struct txn_worker *tw = w->txw;
	unsigned owner;
	uint32_t slot, gen;
	struct txn_cli *t;

	if (!via || !cs)
		return ENOENT;
	/* before anything else: a branch that is ours in form but whose MAC does not verify
	 * was made up by somebody else */
	switch (txn_branch_verify(w->txns, via->branch, &owner, &slot, &gen)) {
	case 1:
		break;
	case -1:
		w->stats.rx_forged++;
		log_debug("response %u with a forged branch %.*s dropped", resp->status,
			  SV_ARG(via->branch));
		return EACCES;
	default:
		return ENOENT;
	}
	if (owner != w->id) {	      /* tp_redeliver refuses an owner that is no worker */
		w->stats.resp_hops++; /* the hop udp.worker_ports avoids */
		return tp_redeliver(w, owner, resp, src) ? ENOENT : 0;
	}
	if (slot >= tw->nslots || !(t = tw->slots[slot]) || t->gen != gen)
		return ENOENT;
	if (cs->method == SIP_CANCEL && t->method == SIP_INVITE) {
		t = t->cancel;
		if (!t)
			return 0; /* a late answer to a CANCEL already finished */
	} else if (cs->method != t->method) {
		return ENOENT;
	}
	if (t->strict_source && !tp_addr_equal(&src->peer, &t->dest.peer)) {
		/* an answer that must come from where the request went came from elsewhere */
		w->stats.rx_forged++;
		log_debug("response %u for %.*s from an address it was not sent to: dropped",
			  resp->status, SV_ARG(via->branch));
		return EACCES;
	}
	cli_on_response(t, resp);
	return 0;
}

/* The MAC of a stateless branch: the loop hash and the Via the response goes back to. */
static uint64_t stateless_mac(const struct txn_table *tt, uint64_t loop_hash,
			      const struct sip_via *up)
{
	struct siphash_state h;

	siphash_init(&h, &tt->mac_key, SIPHASH_2_4);
	siphash_update(&h, "sls1", 4);
	siphash_update_u64(&h, loop_hash);
	siphash_update_u64(&h, up->branch.len);
	siphash_update(&h, up->branch.p, up->branch.len);
	siphash_update_u64(&h, up->port);
	siphash_update_lower(&h, up->host.p, up->host.len);
	return siphash_final(&h);
}

void txn_branch_stateless(const struct txn_table *tt, uint64_t loop_hash, const struct sip_via *up,
			  char *out)
{
	memcpy(out, TXN_BRANCH_PREFIX, 7);
	sv_hex64(out + 7, loop_hash);
	memcpy(out + 7 + TXN_LOOP_HEX, ".s", 2);
	sv_hex64(out + 7 + TXN_LOOP_HEX + 2, stateless_mac(tt, loop_hash, up));
}

bool txn_branch_stateless_check(const struct txn_table *tt, sv_t branch, const struct sip_via *up)
{
	char want[TXN_STATELESS_BRANCH_LEN];
	uint64_t loop;
	sv_t v;

	if (branch.len != TXN_STATELESS_BRANCH_LEN ||
	    !sv_eq(sv_make(branch.p, 7), SV(TXN_BRANCH_PREFIX)) ||
	    !sv_eq(sv_make(branch.p + 7 + TXN_LOOP_HEX, 2), SV(".s")))
		return false;
	v = sv_sub(branch, 7, TXN_LOOP_HEX);
	if (!take_hex(&v, &loop, TXN_LOOP_HEX))
		return false;
	txn_branch_stateless(tt, loop, up, want);
	return mac_equal(want, branch.p, TXN_STATELESS_BRANCH_LEN);
}
