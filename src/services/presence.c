/*
 * presence.c - the presence server: PUBLISH (RFC 3903), and subscriptions
 * (RFC 6665) to presence (RFC 3863 PIDF), to the watcher list of one's own
 * presence (RFC 3857/3858), to one's mailbox summary (RFC 3842), and to
 * broker topics.
 *
 * The server is the notifier: each subscription is a dialog it keeps (the
 * SUBSCRIBE's Call-ID and tags, the watcher's Contact and route set, where
 * the SUBSCRIBE came from) and NOTIFYs are its own requests through that
 * dialog, one in flight per subscription so they arrive in order. A
 * presentity's state is composed from all of its live publications; one
 * that publishes nothing is open while it has a registered contact.
 */
#include "services/home_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/siphash.h"
#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/location.h"
#include "services/pidf.h"
#include "services/settings.h"
#include "services/users.h"

#define PRES_ALLOW_EVENTS "Allow-Events: presence, presence.winfo, message-summary, topic\r\n"

static const char *const pres_ev_names[] = {"presence", "presence.winfo", "message-summary",
					    "topic"};

/* ------------------------------------------------------------- helpers */

static sv_t event_token(sv_t v)
{
	ptrdiff_t semi = sv_find(v, ';');
	return sv_trim(semi < 0 ? v : sv_make(v.p, (size_t)semi));
}

static int event_of(sv_t value, bool topic, enum pres_event *ev)
{
	sv_t tok = event_token(value);

	if (topic) {
		if (sv_ieq(tok, SV("topic")) || sv_ieq(tok, SV("presence")) ||
		    sv_ieq(tok, SV("conference")) || sv_ieq(tok, SV("message"))) {
			*ev = PRES_EV_TOPIC;
			return 0;
		}
		return ENOENT;
	}
	for (int i = 0; i < 3; i++) {
		if (sv_ieq(tok, sv_cstr(pres_ev_names[i]))) {
			*ev = (enum pres_event)i;
			return 0;
		}
	}
	return ENOENT;
}

/* Our Contact for a dialog with peer: the listen address a request to peer leaves from. */
static void our_contact(struct home *h, const struct tp_addr *peer, char *out, size_t len)
{
	int li = tp_listen_pick(h->srv->tp, peer->proto, peer->u.sa.sa_family);
	const struct tp_listen *l = li < 0 ? NULL : tp_listen_get(h->srv->tp, (unsigned)li);

	out[0] = '\0';
	if (l)
		snprintf(out, len, "<sip:%s:%u;transport=%s>", l->host, l->port,
			 l->proto == SIP_PROTO_TCP ? "tcp" : "udp");
}

/* The expiry a SUBSCRIBE or PUBLISH asks for, bounded; -1 after answering 423. */
static int64_t asked_expires(struct home *h, struct preq *r)
{
	const struct cfg *c = &h->srv->cfg;
	int64_t e = sip_msg_expires(r->m);
	char hdr[48];

	if (e < 0)
		return c->pres_default_expires;
	if (e > 0 && e < c->pres_min_expires) {
		snprintf(hdr, sizeof(hdr), "Min-Expires: %u\r\n", c->pres_min_expires);
		proxy_reply(r, 423, NULL, sv_cstr(hdr));
		return -1;
	}
	return e > c->pres_max_expires ? c->pres_max_expires : e;
}

static bool is_registered(struct home *h, const char *aor)
{
	struct loc_target t[1];
	size_t n = 0;

	loc_lookup(h->srv->loc, sv_cstr(aor), (int64_t)time(NULL), t, 1, &n);
	return n > 0;
}

/* ------------------------------------------------------------ resources */

static size_t res_bucket(const struct home *h, const char *key)
{
	return (size_t)(siphash_sv(&h->key, sv_cstr(key)) % HOME_BUCKETS);
}

static struct pres_res *res_find(struct home *h, const char *key, bool topic)
{
	for (struct pres_res *r = h->res[res_bucket(h, key)]; r; r = r->hnext) {
		if (r->topic == topic && strcmp(r->key, key) == 0)
			return r;
	}
	return NULL;
}

static struct pres_res *res_get(struct home *h, const char *key, bool topic)
{
	struct pres_res *r = res_find(h, key, topic);
	size_t i;

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(r->key, sizeof(r->key), "%s", key);
	r->topic = topic;
	r->open = -1;
	i = res_bucket(h, key);
	r->hnext = h->res[i];
	h->res[i] = r;
	return r;
}

/* A resource nobody watches, with nothing published and an empty mailbox, goes. */
static void res_release_if_empty(struct home *h, struct pres_res *r)
{
	if (r->subs || r->pubs || r->mwi_new || r->mwi_old)
		return;
	for (struct pres_res **pp = &h->res[res_bucket(h, r->key)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == r) {
			*pp = r->hnext;
			free(r);
			return;
		}
	}
}

/* Every resource, in a way that lets fn release the one it is given. */
static void res_each(struct home *h, void (*fn)(struct home *h, struct pres_res *r, void *arg),
		     void *arg)
{
	for (size_t i = 0; i < HOME_BUCKETS; i++) {
		for (struct pres_res *r = h->res[i], *next; r; r = next) {
			next = r->hnext;
			fn(h, r, arg);
		}
	}
}

/* --------------------------------------------------------- publications */

static struct pres_pub *pub_find(struct pres_res *r, sv_t etag)
{
	for (struct pres_pub *p = r->pubs; p; p = p->next) {
		if (sv_eq(etag, sv_cstr(p->etag)))
			return p;
	}
	return NULL;
}

static void pub_save(struct home *h, struct pres_res *r, struct pres_pub *p)
{
	home_rec_put(h, STORE_REC_PUBLICATION, p->etag, r->key, (int64_t)p->order, p->expires, "",
		     p->body, p->len);
}

static void pub_remove(struct home *h, struct pres_res *r, struct pres_pub *p)
{
	for (struct pres_pub **pp = &r->pubs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	home_rec_del(h, STORE_REC_PUBLICATION, p->etag);
	free(p->body);
	free(p);
}

static void new_etag(struct home *h, char *out, size_t len)
{
	snprintf(out, len, "%016" PRIx64, worker_next_id(h->w));
}

static int pub_order_cmp(const void *a, const void *b)
{
	const struct pres_pub *x = *(struct pres_pub *const *)a, *y = *(struct pres_pub *const *)b;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* The presentity's document: its publications, or its registrations when it publishes nothing. */
static int compose(struct home *h, struct pres_res *r, struct buf *out)
{
	char entity[HOME_AOR_MAX + 8];
	struct pres_pub *byage[32];
	sv_t docs[32];
	size_t n = 0;

	snprintf(entity, sizeof(entity), "sip:%s", r->key);
	if (!r->pubs) {
		struct loc_target t[1];
		size_t nb = 0;
		loc_lookup(h->srv->loc, sv_cstr(r->key), (int64_t)time(NULL), t, 1, &nb);
		r->open = nb > 0;
		return pidf_basic(entity, nb > 0, nb ? t[0].uri : NULL, NULL, out);
	}
	for (struct pres_pub *p = r->pubs; p && n < 32; p = p->next)
		byage[n++] = p;
	/* oldest first, so a later publication's tuple wins its id */
	qsort(byage, n, sizeof(byage[0]), pub_order_cmp);
	for (size_t i = 0; i < n; i++)
		docs[i] = sv_make(byage[i]->body, byage[i]->len);
	return pidf_compose(entity, docs, n, out);
}

/* -------------------------------------------------------------- NOTIFY */

static void sub_notify(struct pres_sub *s);
static void notify_event(struct pres_res *r, enum pres_event ev);

static void sub_save(struct home *h, struct pres_sub *s)
{
	char key[32], peer[96];
	struct buf meta;

	if (s->phantom)
		return; /* kept in memory only */
	snprintf(key, sizeof(key), "%" PRIu64, s->id);
	if (tp_addr_format(&s->peer, peer, sizeof(peer)))
		peer[0] = '\0';
	buf_init(&meta, 0);
	buf_printf(&meta,
		   "Event: %s\r\nEv: %d\r\nState: %d\r\nTopic: %d\r\nWatcher: %s\r\n"
		   "Call-ID: %s\r\nLocal-Tag: %s\r\nRemote-Tag: %s\r\nLocal-URI: %s\r\n"
		   "Remote-From: %s\r\nContact: %s\r\nRoute: %s\r\nPeer: %s\r\nCSeq: %u\r\n"
		   "Remote-CSeq: %u\r\nStranger: %d\r\nProven: %d\r\n",
		   s->event_name, (int)s->ev, (int)s->state, (int)s->res->topic, s->watcher,
		   s->callid, s->local_tag, s->remote_tag, s->local_uri, s->remote_from, s->contact,
		   s->route, peer, s->cseq, s->remote_cseq, s->src_ctr != NULL, s->proven);
	buf_append_char(&meta, '\0');
	if (!meta.err)
		home_rec_put(h, STORE_REC_SUBSCRIPTION, key, s->res->key, (int64_t)s->id,
			     s->expires, meta.p, NULL, 0);
	buf_free(&meta);
}

static size_t dialog_bucket(const struct home *h, sv_t callid)
{
	/* a different input domain than res_bucket's: the same key serves both */
	struct siphash_state st;

	siphash_init(&st, &h->key, SIPHASH_1_3);
	siphash_update(&st, "dlg", 3);
	siphash_update(&st, callid.p, callid.len);
	return (size_t)(siphash_final(&st) % HOME_BUCKETS);
}

static void sub_link(struct home *h, struct pres_sub *s, struct pres_res *r)
{
	size_t i = dialog_bucket(h, sv_cstr(s->callid));

	s->res = r;
	s->rnext = r->subs;
	r->subs = s;
	s->dnext = h->dialogs[i];
	h->dialogs[i] = s;
	if (!r->topic && s->ev == PRES_EV_PRESENCE)
		home_interest_mark(h, r->key); /* its REGISTERs change what the watcher sees */
}

/* A stranger's subscription counts against its source address and the total. */
static void stranger_sub_count(struct home *h, struct pres_sub *s, const struct tp_addr *peer)
{
	char key[64];

	home_source_key(peer, key, sizeof(key));
	s->src_ctr = home_ctr_get(h, h->by_source, key, true);
	if (!s->src_ctr)
		return; /* out of memory: uncounted, and treated as a local watcher's */
	s->src_ctr->subs++;
	h->stranger_subs++;
}

static void stranger_sub_uncount(struct home *h, struct pres_sub *s)
{
	if (!s->src_ctr)
		return;
	s->src_ctr->subs--;
	h->stranger_subs--;
	home_ctr_release(h, h->by_source, s->src_ctr);
	s->src_ctr = NULL;
}

static void sub_remove(struct home *h, struct pres_sub *s)
{
	struct pres_res *r = s->res;
	char key[32];

	for (struct pres_sub **pp = &r->subs; *pp; pp = &(*pp)->rnext) {
		if (*pp == s) {
			*pp = s->rnext;
			break;
		}
	}
	for (struct pres_sub **pp = &h->dialogs[dialog_bucket(h, sv_cstr(s->callid))]; *pp;
	     pp = &(*pp)->dnext) {
		if (*pp == s) {
			*pp = s->dnext;
			break;
		}
	}
	if (!s->phantom) {
		snprintf(key, sizeof(key), "%" PRIu64, s->id);
		home_rec_del(h, STORE_REC_SUBSCRIPTION, key);
	}
	stranger_sub_uncount(h, s);
	uac_forget(s->inflight);
	if (!r->topic && s->ev == PRES_EV_PRESENCE)
		notify_event(r, PRES_EV_WINFO); /* the watcher list changed */
	free(s); /* its resource stays until the sweep: a caller may be walking it */
}

static void sub_terminate(struct pres_sub *s, const char *reason)
{
	if (s->final_pending)
		return;
	s->final_pending = true;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	sub_notify(s);
}

static void notify_done(void *arg, unsigned status, const struct sip_msg *resp)
{
	struct pres_sub *s = arg;
	struct pres_res *r = s->res;
	struct home *h = s->home;

	s->inflight = NULL;
	/* the watcher answered from where we sent it: a real return path */
	if (resp)
		s->proven = true;
	if (s->state == PRES_TERMINATED || status >= 300) {
		if (status >= 300 && s->state != PRES_TERMINATED)
			log_info("subscription of %s to %s ended: NOTIFY answered %u", s->watcher,
				 r->key, status);
		sub_remove(h, s);
		res_release_if_empty(h, r); /* an answer: nothing of ours is on the stack */
		return;
	}
	if (s->again) {
		s->again = false;
		sub_notify(s);
	}
}

static void winfo_body(struct pres_sub *ws, struct buf *b)
{
	struct pres_res *r = ws->res;

	buf_printf(b,
		   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%u\" "
		   "state=\"full\">\n<watcher-list resource=\"sip:",
		   ws->winfo_version++);
	pidf_escape(b, sv_cstr(r->key));
	buf_append_str(b, "\" package=\"presence\">\n");
	for (struct pres_sub *s = r->subs; s; s = s->rnext) {
		if (s->ev != PRES_EV_PRESENCE)
			continue;
		buf_printf(b, "<watcher id=\"w%" PRIu64 "\" event=\"%s\" status=\"%s\">sip:", s->id,
			   s->state == PRES_PENDING ? "subscribe" : "approved",
			   s->state == PRES_ACTIVE    ? "active"
			   : s->state == PRES_PENDING ? "pending"
						      : "terminated");
		pidf_escape(b, sv_cstr(s->watcher));
		buf_append_str(b, "</watcher>\n");
	}
	buf_append_str(b, "</watcher-list>\n</watcherinfo>\n");
}

static void mwi_body(const struct pres_res *r, struct buf *b)
{
	buf_printf(b,
		   "Messages-Waiting: %s\r\nMessage-Account: sip:%s\r\n"
		   "Voice-Message: %u/%u (0/0)\r\n",
		   r->mwi_new ? "yes" : "no", r->key, r->mwi_new, r->mwi_old);
}

static const char *topic_body(struct home *h, struct pres_sub *s, struct buf *b)
{
	struct im_topic *t = im_topic_find(h, s->res->key);
	char entity[HOME_AOR_MAX + 8], note[64];

	snprintf(entity, sizeof(entity), "sip:%s", s->res->key);
	if (strcmp(s->event_name, "presence") == 0) {
		snprintf(note, sizeof(note), "%zu members", t ? t->n : 0);
		pidf_basic(entity, t != NULL, entity, note, b);
		return "application/pidf+xml";
	}
	buf_printf(b, "topic: %s\r\nmembers: %zu\r\n", entity, t ? t->n : 0);
	return "text/plain";
}

/* What a NOTIFY of s carries now; the Content-Type, or NULL for no body. */
static const char *sub_body(struct pres_sub *s, struct buf *body)
{
	struct home *h = s->home;

	if (s->state == PRES_PENDING || (s->state == PRES_TERMINATED && s->ev == PRES_EV_PRESENCE))
		return NULL; /* nothing to show a watcher who is not (or no longer) allowed */
	switch (s->ev) {
	case PRES_EV_PRESENCE:
		return compose(h, s->res, body) == 0 ? "application/pidf+xml" : NULL;
	case PRES_EV_WINFO:
		winfo_body(s, body);
		return "application/watcherinfo+xml";
	case PRES_EV_MWI:
		mwi_body(s->res, body);
		return "application/simple-message-summary";
	case PRES_EV_TOPIC:
		return topic_body(h, s, body);
	}
	return NULL;
}

/* Sends one NOTIFY with the given body (ct NULL: none), through the subscription's dialog. */
static void sub_send(struct pres_sub *s, const char *ct, sv_t body)
{
	struct home *h = s->home;
	char from[STORE_URI_MAX + 64], contact[160], hdrs[512];
	int64_t left = s->expires - (int64_t)time(NULL);
	struct uac_req rq;
	bool once = s->src_ctr && !s->proven;
	int n, err;

	if (s->final_pending)
		s->state = PRES_TERMINATED;
	if (once) {
		/* an unproven stranger gets no more NOTIFYs than it sent SUBSCRIBEs */
		if (!s->credit) {
			if (s->state == PRES_TERMINATED)
				sub_remove(h, s);
			return;
		}
		s->credit--;
	}
	our_contact(h, &s->peer, contact, sizeof(contact));
	if (s->state == PRES_TERMINATED)
		n = snprintf(hdrs, sizeof(hdrs), "Subscription-State: terminated;reason=%s\r\n",
			     s->reason[0] ? s->reason : "timeout");
	else
		n = snprintf(hdrs, sizeof(hdrs), "Subscription-State: %s;expires=%" PRId64 "\r\n",
			     s->state == PRES_ACTIVE ? "active" : "pending", left > 0 ? left : 0);
	snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Event: %s\r\nContact: %s\r\n", s->event_name,
		 contact);
	snprintf(from, sizeof(from), "%s;tag=%s", s->local_uri, s->local_tag);
	rq = (struct uac_req){
	    .method = SIP_NOTIFY,
	    .ruri = sv_cstr(s->contact),
	    .route = sv_cstr(s->route),
	    .from = sv_cstr(from),
	    .to = sv_cstr(s->remote_from),
	    .callid = sv_cstr(s->callid),
	    .cseq = ++s->cseq,
	    .headers = sv_cstr(hdrs),
	    .content_type = ct ? sv_cstr(ct) : SV_NULL,
	    .body = ct ? body : SV_NULL,
	    .once = once,
	};
	err = uac_send(h->w, &s->peer, s->conn_id, &rq, notify_done, s, &s->inflight);
	if (err) {
		log_warn("NOTIFY to %s not sent: %s", s->watcher, strerror(err));
		if (s->state == PRES_TERMINATED)
			sub_remove(h, s);
		return;
	}
	if (s->state != PRES_TERMINATED)
		sub_save(h, s); /* the CSeq moved */
}

static void sub_notify(struct pres_sub *s)
{
	struct buf body;
	const char *ct;

	if (s->inflight) {
		s->again = true; /* after the answer to the one on its way */
		return;
	}
	if (s->final_pending)
		s->state = PRES_TERMINATED;
	buf_init(&body, 0);
	ct = sub_body(s, &body);
	if (body.err) {
		log_err("out of memory for a NOTIFY to %s", s->watcher);
		ct = NULL;
	}
	sub_send(s, ct, buf_sv(&body));
	buf_free(&body);
}

/* A presentity changed: its document is composed once for all of its active watchers. */
static void notify_presentity(struct home *h, struct pres_res *r)
{
	struct buf body;
	const char *ct = NULL;
	bool composed = false;

	buf_init(&body, 0);
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		if (s->ev != PRES_EV_PRESENCE || s->state != PRES_ACTIVE || s->final_pending)
			continue;
		if (s->inflight) {
			s->again = true;
			continue;
		}
		if (!composed) {
			ct = compose(h, r, &body) == 0 && !body.err ? "application/pidf+xml" : NULL;
			composed = true;
		}
		sub_send(s, ct, buf_sv(&body));
	}
	buf_free(&body);
}

static void notify_event(struct pres_res *r, enum pres_event ev)
{
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		if (s->ev == ev && s->state == PRES_ACTIVE)
			sub_notify(s);
	}
}

/* -------------------------------------------------------- authorisation */

/* The presentity's decision about a watcher, from its settings (watchers, watch_allow/block). */
static enum pres_state decide(const char *presentity, const char *watcher,
			      const struct users_entry *ue)
{
	const char *at = strchr(presentity, '@');
	const char *wat = strchr(watcher, '@');
	sv_t domain = at ? sv_cstr(at + 1) : SV_NULL;
	struct uset set;
	char why[128];

	if (strcmp(presentity, watcher) == 0)
		return PRES_ACTIVE;
	uset_init(&set);
	if (ue && ue->settings[0])
		uset_parse(&set, sv_cstr(ue->settings), why, sizeof(why));
	if (uset_watcher_listed(set.watch_block, sv_cstr(watcher), domain))
		return PRES_TERMINATED;
	if (uset_watcher_listed(set.watch_allow, sv_cstr(watcher), domain))
		return PRES_ACTIVE;
	switch (set.watchers) {
	case USET_WATCH_ALL:
		return PRES_ACTIVE;
	case USET_WATCH_LIST:
		return PRES_PENDING;
	default:
		return wat && at && strcasecmp(wat, at) == 0 ? PRES_ACTIVE : PRES_PENDING;
	}
}

/* "user@domain" split for the subscriber cache; false when there is no '@'. */
static bool aor_split(const char *aor, sv_t *user, sv_t *domain)
{
	const char *at = strchr(aor, '@');

	if (!at)
		return false;
	*user = sv_make(aor, (size_t)(at - aor));
	*domain = sv_cstr(at + 1);
	return true;
}

/* ------------------------------------------------------------ PUBLISH */

static bool body_checked(struct home *h, struct preq *r)
{
	sv_t ct = event_token(sip_msg_value(r->m, SIP_H_CONTENT_TYPE));
	char why[160], reason[200];

	if (!sv_ieq(ct, SV("application/pidf+xml"))) {
		proxy_reply(r, 415, "Presence documents are application/pidf+xml",
			    SV("Accept: application/pidf+xml\r\n"));
		return false;
	}
	if (r->m->body.len > h->srv->cfg.pres_max_body) {
		proxy_reply(r, 413, "Presence document too large", SV_NULL);
		return false;
	}
	if (pidf_check(r->m->body, why, sizeof(why))) {
		snprintf(reason, sizeof(reason), "Invalid PIDF: %s", why);
		proxy_reply(r, 400, reason, SV_NULL);
		return false;
	}
	return true;
}

static void reply_published(struct preq *r, const struct pres_pub *p, int64_t e)
{
	char hdrs[96];

	snprintf(hdrs, sizeof(hdrs), "SIP-ETag: %s\r\nExpires: %" PRId64 "\r\n", p->etag, e);
	proxy_reply(r, 200, NULL, sv_cstr(hdrs));
}

/* SIP-If-Match: refresh, modify or remove an existing publication. */
static enum proxy_step publish_existing(struct home *h, struct preq *r, sv_t ifmatch, int64_t e,
					const char *aor)
{
	struct pres_res *res = res_find(h, aor, false);
	struct pres_pub *p = res ? pub_find(res, ifmatch) : NULL;
	int64_t now = (int64_t)time(NULL);
	sv_t body = r->m->body;

	if (!p || p->expires <= now) {
		proxy_reply(r, 412, NULL, SV_NULL);
		return PROXY_DONE;
	}
	if (body.len && !body_checked(h, r))
		return PROXY_DONE;
	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	if (e == 0) {
		pub_remove(h, res, p);
		proxy_reply(r, 200, NULL, SV("Expires: 0\r\n"));
		notify_presentity(h, res);
		res_release_if_empty(h, res);
		return PROXY_DONE;
	}
	if (body.len) {
		char *nb = malloc(body.len);
		if (!nb) {
			proxy_reply(r, 500, "Out of memory", SV_NULL);
			return PROXY_DONE;
		}
		memcpy(nb, body.p, body.len);
		free(p->body);
		p->body = nb;
		p->len = body.len;
		p->order = ++h->pub_order;
	}
	/* RFC 3903 4.1: every successful refresh or modification gets a new entity tag */
	home_rec_del(h, STORE_REC_PUBLICATION, p->etag);
	new_etag(h, p->etag, sizeof(p->etag));
	p->expires = now + e;
	pub_save(h, res, p);
	reply_published(r, p, e);
	if (body.len)
		notify_presentity(h, res);
	return PROXY_DONE;
}

enum proxy_step pres_handle_publish(struct home *h, struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	char aor[HOME_AOR_MAX], who[HOME_AOR_MAX];
	sv_t ifmatch = sip_msg_value(r->m, SIP_H_SIP_IF_MATCH);
	struct pres_res *res;
	struct pres_pub *p;
	enum pres_event ev;
	int64_t e;

	if (proxy_aor_of(sip_msg_ruri(r->m), aor, sizeof(aor)) || !from ||
	    home_aor_of_uri(from->uri, who, sizeof(who))) {
		proxy_reply(r, 400, "Malformed Request-URI or From", SV_NULL);
		return PROXY_DONE;
	}
	if (event_of(sip_msg_value(r->m, SIP_H_EVENT), false, &ev) || ev != PRES_EV_PRESENCE) {
		proxy_reply(r, 489, NULL, SV("Allow-Events: presence\r\n"));
		return PROXY_DONE;
	}
	if (strcmp(aor, who) != 0 || (h->srv->cfg.auth_enabled && !r->authenticated)) {
		proxy_reply(r, 403, "Only the presentity may publish its state", SV_NULL);
		return PROXY_DONE;
	}
	e = asked_expires(h, r);
	if (e < 0)
		return PROXY_DONE;
	if (ifmatch.len)
		return publish_existing(h, r, ifmatch, e, aor);
	if (!r->m->body.len) {
		proxy_reply(r, 400, "A PUBLISH without a body needs SIP-If-Match", SV_NULL);
		return PROXY_DONE;
	}
	if (e == 0) {
		proxy_reply(r, 400, "Expires 0 needs SIP-If-Match", SV_NULL);
		return PROXY_DONE;
	}
	if (!body_checked(h, r) || proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	res = res_get(h, aor, false);
	p = res ? calloc(1, sizeof(*p)) : NULL;
	if (p)
		p->body = malloc(r->m->body.len);
	if (!p || !p->body) {
		free(p);
		if (res)
			res_release_if_empty(h, res);
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		return PROXY_DONE;
	}
	memcpy(p->body, r->m->body.p, r->m->body.len);
	p->len = r->m->body.len;
	new_etag(h, p->etag, sizeof(p->etag));
	p->expires = (int64_t)time(NULL) + e;
	p->order = ++h->pub_order;
	p->next = res->pubs;
	res->pubs = p;
	pub_save(h, res, p);
	reply_published(r, p, e);
	notify_presentity(h, res);
	return PROXY_DONE;
}

/* ---------------------------------------------------------- SUBSCRIBE */

static struct pres_sub *sub_new(struct home *h, struct preq *r, enum pres_event ev,
				const char *watcher, int64_t e)
{
	struct sip_msg *m = r->m;
	const struct sip_naddr *from = sip_msg_from(m);
	struct sip_hdr *to = sip_msg_hdr(m, SIP_H_TO), *fromh = sip_msg_hdr(m, SIP_H_FROM);
	struct sip_hdr *ch = sip_msg_hdr(m, SIP_H_CONTACT);
	struct sip_naddr cna;
	struct pres_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	/* what does not fit is refused (the caller answers), never kept cut */
	if (!ch || sip_naddr_parse(ch->value, &cna, NULL) || !from ||
	    sv_copy(cna.uri, s->contact, sizeof(s->contact)) ||
	    sv_copy(from->tag, s->remote_tag, sizeof(s->remote_tag)) ||
	    sv_copy(sip_msg_callid(m), s->callid, sizeof(s->callid)) ||
	    sv_copy(to->value, s->local_uri, sizeof(s->local_uri)) ||
	    sv_copy(fromh->value, s->remote_from, sizeof(s->remote_from)) ||
	    sv_copy(event_token(sip_msg_value(m, SIP_H_EVENT)), s->event_name,
		    sizeof(s->event_name))) {
		free(s);
		return NULL;
	}
	s->home = h;
	s->id = h->next_sub_id++;
	s->ev = ev;
	for (char *p = s->event_name; *p; p++)
		*p = sv_lower_char(*p);
	snprintf(s->watcher, sizeof(s->watcher), "%s", watcher);
	proxy_stateless_tag(r, s->local_tag, sizeof(s->local_tag));
	/* a route set we cannot hold leaves it empty: the direct way to the watcher */
	sip_hdr_join(m, SIP_H_RECORD_ROUTE, s->route, sizeof(s->route));
	s->peer = r->src->peer;
	s->conn_id = r->src->conn_id;
	s->remote_cseq = sip_msg_cseq(m)->num;
	s->expires = (int64_t)time(NULL) + e;
	return s;
}

static void reply_subscribed(struct home *h, struct preq *r, int64_t e)
{
	char hdrs[256], contact[160];

	our_contact(h, &r->src->peer, contact, sizeof(contact));
	snprintf(hdrs, sizeof(hdrs), "Expires: %" PRId64 "\r\nContact: %s\r\n", e, contact);
	proxy_reply(r, 200, NULL, sv_cstr(hdrs));
}

/* Joining or leaving a topic; false when the SUBSCRIBE was answered with an error. */
static bool subscribe_topic(struct home *h, struct preq *r, const char *topic, const char *watcher,
			    int64_t e)
{
	int err;

	if (!r->from_local || (h->srv->cfg.auth_enabled && !r->authenticated)) {
		proxy_reply(r, 403, "Topics are for this server's users", SV_NULL);
		return false;
	}
	if (e == 0) {
		im_topic_leave(h, topic, watcher, true);
		return true;
	}
	err = im_topic_join(h, topic, watcher, true);
	if (err == ENOENT)
		proxy_reply(r, 404, "No such topic", SV_NULL);
	else if (err)
		proxy_reply(r, 403, err == ENOSPC ? "Topic full" : "Cannot join", SV_NULL);
	return err == 0;
}

/* A stranger over its caps is answered 503 (true); a stranger's SUBSCRIBE otherwise goes on. */
static bool stranger_capped(struct home *h, struct preq *r)
{
	const struct cfg *c = &h->srv->cfg;
	struct home_ctr *ctr;
	char key[64];

	home_source_key(&r->src->peer, key, sizeof(key));
	ctr = home_ctr_get(h, h->by_source, key, false);
	if (h->stranger_subs >= c->str_subs) {
		home_cap_hit(h, HOME_CAP_SUBS, key);
		proxy_reply(r, 503, "Too many subscriptions from unauthenticated watchers",
			    SV("Retry-After: 300\r\n"));
		return true;
	}
	if (ctr && ctr->subs >= c->str_subs_per_source) {
		home_cap_hit(h, HOME_CAP_SUBS_SOURCE, key);
		proxy_reply(r, 503, "Too many subscriptions from this address",
			    SV("Retry-After: 300\r\n"));
		return true;
	}
	return false;
}

/* How a watcher of a presentity starts: PROXY_CONTINUE with *state, or the request is done. */
static enum proxy_step authorise(struct preq *r, const char *target, const char *watcher,
				 enum pres_state *state, bool *exists)
{
	struct users_entry ue;
	enum proxy_step step;
	sv_t user, domain;

	if (!aor_split(target, &user, &domain)) {
		proxy_reply(r, 400, "Malformed Request-URI", SV_NULL);
		return PROXY_DONE;
	}
	step = users_of_request(r, user, domain, &ue);
	if (step != PROXY_CONTINUE)
		return step;
	if (!ue.exists && r->authenticated) {
		proxy_reply(r, 404, NULL, SV_NULL);
		return PROXY_DONE;
	}
	/* an unknown presentity looks like one that has not decided: no enumeration */
	*exists = ue.exists;
	*state = ue.exists ? decide(target, watcher, &ue) : PRES_PENDING;
	if (*state == PRES_TERMINATED) {
		proxy_reply(r, 403, "Not authorised to watch this presentity", SV_NULL);
		return PROXY_DONE;
	}
	return PROXY_CONTINUE;
}

enum proxy_step pres_handle_subscribe(struct home *h, struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m);
	char target[HOME_AOR_MAX], watcher[HOME_AOR_MAX];
	bool topic = im_is_topic_uri(h, ruri);
	enum pres_state state = PRES_ACTIVE;
	bool stranger = !proxy_caller_known(r), exists = true;
	enum proxy_step step;
	enum pres_event ev;
	struct pres_res *res;
	struct pres_sub *s;
	int64_t e;

	if (event_of(sip_msg_value(r->m, SIP_H_EVENT), topic, &ev)) {
		proxy_reply(r, 489, NULL, SV(PRES_ALLOW_EVENTS));
		return PROXY_DONE;
	}
	if (proxy_aor_of(ruri, target, sizeof(target)) || !from ||
	    home_aor_of_uri(from->uri, watcher, sizeof(watcher))) {
		proxy_reply(r, 400, "Malformed Request-URI or From", SV_NULL);
		return PROXY_DONE;
	}
	if (!sip_msg_hdr(r->m, SIP_H_CONTACT)) {
		proxy_reply(r, 400, "SUBSCRIBE without Contact", SV_NULL);
		return PROXY_DONE;
	}
	e = asked_expires(h, r);
	if (e < 0)
		return PROXY_DONE;
	if (ev == PRES_EV_WINFO || ev == PRES_EV_MWI) {
		if (strcmp(target, watcher) != 0 ||
		    (h->srv->cfg.auth_enabled && !r->authenticated)) {
			proxy_reply(r, 403,
				    ev == PRES_EV_MWI ? "Only the user may watch its mailbox"
						      : "Only the user may see its watchers",
				    SV_NULL);
			return PROXY_DONE;
		}
	} else if (ev == PRES_EV_PRESENCE) {
		/* the caps first: the same answer whether the presentity exists or not */
		if (stranger && stranger_capped(h, r))
			return PROXY_DONE;
		step = authorise(r, target, watcher, &state, &exists);
		if (step != PROXY_CONTINUE)
			return step;
	}
	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	if (topic && !subscribe_topic(h, r, target, watcher, e))
		return PROXY_DONE;
	res = res_get(h, target, topic);
	s = res ? sub_new(h, r, ev, watcher, e) : NULL;
	if (!s) {
		if (res)
			res_release_if_empty(h, res);
		proxy_reply(r, 400, "Cannot keep this subscription (Contact, tags or sizes)",
			    SV_NULL);
		return PROXY_DONE;
	}
	s->state = state;
	if (stranger && ev == PRES_EV_PRESENCE) {
		stranger_sub_count(h, s, &r->src->peer);
		s->credit = 1; /* its SUBSCRIBE pays for one NOTIFY */
		s->phantom = !exists;
	}
	sub_link(h, s, res);
	reply_subscribed(h, r, e);
	if (e == 0) {
		sub_terminate(s, "timeout"); /* a fetch: one NOTIFY with the state, then the end */
	} else {
		sub_save(h, s);
		sub_notify(s);
	}
	if (!topic && ev == PRES_EV_PRESENCE)
		notify_event(res, PRES_EV_WINFO);
	return PROXY_DONE;
}

static struct pres_sub *dialog_find(struct home *h, struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m), *to = sip_msg_to(r->m);
	sv_t callid = sip_msg_callid(r->m);

	if (!from || !to)
		return NULL;
	for (struct pres_sub *s = h->dialogs[dialog_bucket(h, callid)]; s; s = s->dnext) {
		if (sv_eq(callid, sv_cstr(s->callid)) && sv_eq(to->tag, sv_cstr(s->local_tag)) &&
		    sv_eq(from->tag, sv_cstr(s->remote_tag)) && !s->final_pending)
			return s;
	}
	return NULL;
}

enum proxy_step pres_handle_in_dialog(struct home *h, struct preq *r)
{
	const struct sip_cseq *cseq = sip_msg_cseq(r->m);
	struct pres_sub *s = dialog_find(h, r);
	int64_t e;

	if (!s) {
		proxy_reply(r, 481, "Subscription does not exist", SV_NULL);
		return PROXY_DONE;
	}
	if (cseq && cseq->num <= s->remote_cseq) {
		proxy_reply(r, 500, "CSeq lower than the last one", SV_NULL);
		return PROXY_DONE;
	}
	e = asked_expires(h, r);
	if (e < 0 || proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	s->remote_cseq = cseq ? cseq->num : s->remote_cseq + 1;
	if (s->src_ctr && s->credit < 2)
		s->credit++; /* the refresh pays for its NOTIFY */
	reply_subscribed(h, r, e);
	if (e == 0) {
		if (s->res->topic)
			im_topic_leave(h, s->res->key, s->watcher, true);
		sub_terminate(s, "timeout");
		return PROXY_DONE;
	}
	s->expires = (int64_t)time(NULL) + e;
	sub_save(h, s);
	sub_notify(s); /* RFC 6665 4.2.1.2: a refresh gets a NOTIFY */
	return PROXY_DONE;
}

/* ------------------------------------------------------ changes, sweep */

/* A presentity that publishes nothing is as open as its registrations: tell on a change. */
static void registration_check(struct home *h, struct pres_res *r)
{
	if (r->topic || r->pubs || r->open < 0)
		return;
	if (r->open != (int)is_registered(h, r->key))
		notify_presentity(h, r);
}

void pres_registered(struct home *h, const char *aor)
{
	struct pres_res *r = res_find(h, aor, false);

	if (r)
		registration_check(h, r);
}

void pres_mailbox_set(struct home *h, const char *aor, unsigned new_msgs, unsigned old_msgs)
{
	struct pres_res *r = res_find(h, aor, false);

	if (!r && !new_msgs && !old_msgs)
		return;
	if (!r)
		r = res_get(h, aor, false);
	if (!r || (r->mwi_new == new_msgs && r->mwi_old == old_msgs))
		return;
	r->mwi_new = new_msgs;
	r->mwi_old = old_msgs;
	if (h->started)
		notify_event(r, PRES_EV_MWI);
	res_release_if_empty(h, r);
}

struct mailbox_visit {
	void (*fn)(void *arg, const char *aor);
	void *arg;
};

static void mailbox_visit(struct home *h, struct pres_res *r, void *arg)
{
	struct mailbox_visit *v = arg;

	(void)h;
	if (r->mwi_new || r->mwi_old)
		v->fn(v->arg, r->key);
}

void pres_mailbox_each(struct home *h, void (*fn)(void *arg, const char *aor), void *arg)
{
	struct mailbox_visit v = {fn, arg};

	res_each(h, mailbox_visit, &v);
}

void pres_topic_changed(struct home *h, const char *key)
{
	struct pres_res *r = res_find(h, key, true);

	if (!r || im_topic_find(h, key))
		return;
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		sub_terminate(s, "noresource");
	}
}

/* Watchers of a presentity that changed its mind (user set ... watch_allow=...). */
static void reauthorise(struct home *h, struct pres_res *r, void *arg)
{
	struct users_entry ue;
	bool changed = false;

	(void)arg;
	sv_t user, domain;

	if (r->topic || !r->subs || !aor_split(r->key, &user, &domain) ||
	    users_peek(h->srv->users, user, domain, &ue) != USERS_HIT || !ue.exists)
		return;
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		enum pres_state now;
		next = s->rnext;
		if (s->ev != PRES_EV_PRESENCE || s->final_pending)
			continue;
		now = decide(r->key, s->watcher, &ue);
		if (now == s->state)
			continue;
		changed = true;
		if (now == PRES_TERMINATED) {
			sub_terminate(s, "rejected");
		} else {
			s->state = now;
			sub_save(h, s);
			sub_notify(s);
		}
	}
	if (changed)
		notify_event(r, PRES_EV_WINFO); /* the watcher list changed */
}

void pres_policy_changed(struct home *h)
{
	res_each(h, reauthorise, NULL);
}

static void sweep_res(struct home *h, struct pres_res *r, void *arg)
{
	int64_t now = *(int64_t *)arg;
	bool published = false;

	for (struct pres_pub *p = r->pubs, *next; p; p = next) {
		next = p->next;
		if (p->expires <= now) {
			pub_remove(h, r, p);
			published = true;
		}
	}
	if (published)
		notify_presentity(h, r);
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		if (!s->final_pending && s->expires <= now)
			sub_terminate(s, "timeout");
	}
	registration_check(h, r); /* a registration that ran out */
	res_release_if_empty(h, r);
}

void pres_sweep(struct home *h, int64_t now)
{
	res_each(h, sweep_res, &now);
}

static void resume_res(struct home *h, struct pres_res *r, void *arg)
{
	(void)h;
	(void)arg;
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		if (s->state == PRES_ACTIVE)
			sub_notify(s);
	}
}

void pres_resume(struct home *h)
{
	res_each(h, resume_res, NULL);
}

static void interest_res(struct home *h, struct pres_res *r, void *arg)
{
	if (r->topic)
		return;
	for (struct pres_sub *s = r->subs; s; s = s->rnext) {
		if (s->ev == PRES_EV_PRESENCE) {
			home_interest_add(h, arg, r->key);
			return;
		}
	}
}

void pres_interest(struct home *h, uint64_t *bits)
{
	res_each(h, interest_res, bits);
}

/* --------------------------------------------------------------- load */

int pres_load_pub(struct home *h, const struct store_record *rec)
{
	struct pres_res *r = res_get(h, rec->owner, false);
	struct pres_pub *p = r ? calloc(1, sizeof(*p)) : NULL;

	if (!p)
		return ENOMEM;
	p->body = malloc(rec->body_len ? rec->body_len : 1);
	if (!p->body) {
		free(p);
		return ENOMEM;
	}
	memcpy(p->body, rec->body, rec->body_len);
	p->len = rec->body_len;
	if (sv_copy(sv_cstr(rec->key), p->etag, sizeof(p->etag))) {
		log_warn("presence: stored publication '%.64s' has an entity-tag longer than we "
			 "make: ignored",
			 rec->key);
		free(p->body);
		free(p);
		return 0;
	}
	p->expires = rec->expires;
	p->order = (uint64_t)rec->seq;
	if (p->order > h->pub_order)
		h->pub_order = p->order;
	p->next = r->pubs;
	r->pubs = p;
	return 0;
}

/* ENOSPC when the stored value is longer than what we keep (then the record is not used). */
static int meta_copy(const char *meta, const char *name, char *out, size_t len)
{
	return sv_copy(home_meta_get(meta, name), out, len);
}

static unsigned meta_uint(const char *meta, const char *name)
{
	uint32_t v = 0;
	sv_to_u32(home_meta_get(meta, name), &v);
	return v;
}

int pres_load_sub(struct home *h, const struct store_record *rec)
{
	struct pres_sub *s = calloc(1, sizeof(*s));
	struct pres_res *r;
	char peer[96];

	if (!s)
		return ENOMEM;
	s->home = h;
	s->id = (uint64_t)rec->seq;
	if (s->id >= h->next_sub_id)
		h->next_sub_id = s->id + 1;
	s->ev = (enum pres_event)meta_uint(rec->meta, "Ev");
	s->state = (enum pres_state)meta_uint(rec->meta, "State");
	if (meta_copy(rec->meta, "Event", s->event_name, sizeof(s->event_name)) ||
	    meta_copy(rec->meta, "Watcher", s->watcher, sizeof(s->watcher)) ||
	    meta_copy(rec->meta, "Call-ID", s->callid, sizeof(s->callid)) ||
	    meta_copy(rec->meta, "Local-Tag", s->local_tag, sizeof(s->local_tag)) ||
	    meta_copy(rec->meta, "Remote-Tag", s->remote_tag, sizeof(s->remote_tag)) ||
	    meta_copy(rec->meta, "Local-URI", s->local_uri, sizeof(s->local_uri)) ||
	    meta_copy(rec->meta, "Remote-From", s->remote_from, sizeof(s->remote_from)) ||
	    meta_copy(rec->meta, "Contact", s->contact, sizeof(s->contact)) ||
	    meta_copy(rec->meta, "Route", s->route, sizeof(s->route)) ||
	    meta_copy(rec->meta, "Peer", peer, sizeof(peer))) {
		log_warn("presence: stored subscription %" PRIu64 " has a field longer than we "
			 "keep: dropped",
			 s->id);
		free(s);
		return 0;
	}
	s->cseq = meta_uint(rec->meta, "CSeq");
	s->remote_cseq = meta_uint(rec->meta, "Remote-CSeq");
	s->expires = rec->expires;
	if ((unsigned)s->ev > PRES_EV_TOPIC || (unsigned)s->state > PRES_ACTIVE || !s->callid[0] ||
	    !s->contact[0] || tp_addr_parse(sv_cstr(peer), &s->peer)) {
		free(s);
		return 0; /* a record we cannot use: dropped */
	}
	r = res_get(h, rec->owner, meta_uint(rec->meta, "Topic") != 0);
	if (!r) {
		free(s);
		return ENOMEM;
	}
	if (meta_uint(rec->meta, "Stranger"))
		stranger_sub_count(h, s, &s->peer);
	s->proven = meta_uint(rec->meta, "Proven") != 0;
	sub_link(h, s, r);
	return 0;
}

static void free_res(struct home *h, struct pres_res *r, void *arg)
{
	(void)h;
	(void)arg;
	for (struct pres_pub *p = r->pubs, *next; p; p = next) {
		next = p->next;
		free(p->body);
		free(p);
	}
	for (struct pres_sub *s = r->subs, *next; s; s = next) {
		next = s->rnext;
		free(s); /* the workers are gone, and the NOTIFYs in flight with them */
	}
	free(r);
}

void pres_free_all(struct home *h)
{
	res_each(h, free_res, NULL);
	memset(h->res, 0, sizeof(h->res));
	memset(h->dialogs, 0, sizeof(h->dialogs));
}
