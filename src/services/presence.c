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

static void our_contact(struct preq *r, char *out, size_t len)
{
	const struct tp_listen *l = tp_listen_get(r->srv->tp, r->src->listen);

	if (!l) {
		out[0] = '\0';
		return;
	}
	snprintf(out, len, "<sip:%s:%u;transport=%s>", l->host, l->port,
		 l->proto == SIP_PROTO_TCP ? "tcp" : "udp");
}

static void our_contact_for(struct home *h, const struct tp_addr *peer, char *out, size_t len)
{
	int li = tp_listen_pick(h->srv->tp, peer->proto, peer->u.sa.sa_family);
	const struct tp_listen *l = li < 0 ? NULL : tp_listen_get(h->srv->tp, (unsigned)li);

	if (!l) {
		out[0] = '\0';
		return;
	}
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

/* --------------------------------------------------------- publications */

static struct pres_pub *pub_find(struct home *h, sv_t etag, const char *aor)
{
	for (struct pres_pub *p = h->pubs; p; p = p->next) {
		if (sv_eq(etag, sv_cstr(p->etag)) && strcmp(p->aor, aor) == 0)
			return p;
	}
	return NULL;
}

static bool has_pubs(struct home *h, const char *aor)
{
	for (struct pres_pub *p = h->pubs; p; p = p->next) {
		if (strcmp(p->aor, aor) == 0)
			return true;
	}
	return false;
}

static void pub_save(struct home *h, struct pres_pub *p)
{
	char meta[64];

	snprintf(meta, sizeof(meta), "Order: %" PRIu64 "\r\n", p->order);
	home_rec_put(h, STORE_REC_PUBLICATION, p->etag, p->aor, (int64_t)p->order, p->expires, meta,
		     p->body, p->len);
}

static void pub_remove(struct home *h, struct pres_pub *p)
{
	for (struct pres_pub **pp = &h->pubs; *pp; pp = &(*pp)->next) {
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

/* The presentity's document: its publications, or its registrations when it publishes nothing. */
static int compose(struct home *h, const char *aor, struct buf *out)
{
	char entity[HOME_AOR_MAX + 8];
	sv_t docs[32];
	size_t n = 0;
	uint64_t last = 0;

	snprintf(entity, sizeof(entity), "sip:%s", aor);
	/* oldest first, so a later publication's tuple wins its id */
	while (n < sizeof(docs) / sizeof(docs[0])) {
		struct pres_pub *next = NULL;
		for (struct pres_pub *p = h->pubs; p; p = p->next) {
			if (strcmp(p->aor, aor) == 0 && p->order > last &&
			    (!next || p->order < next->order))
				next = p;
		}
		if (!next)
			break;
		docs[n++] = sv_make(next->body, next->len);
		last = next->order;
	}
	if (n)
		return pidf_compose(entity, docs, n, out);
	{
		struct loc_target t[1];
		size_t nb = 0;
		loc_lookup(h->srv->loc, sv_cstr(aor), (int64_t)time(NULL), t, 1, &nb);
		return pidf_basic(entity, nb > 0, nb ? t[0].uri : NULL, NULL, out);
	}
}

static bool is_registered(struct home *h, const char *aor)
{
	struct loc_target t[1];
	size_t n = 0;

	loc_lookup(h->srv->loc, sv_cstr(aor), (int64_t)time(NULL), t, 1, &n);
	return n > 0;
}

/* -------------------------------------------------------------- NOTIFY */

static void sub_notify(struct pres_sub *s);
static void winfo_changed(struct home *h, const char *aor);

static void sub_save(struct home *h, struct pres_sub *s)
{
	char key[32], peer[96];
	struct buf meta;

	snprintf(key, sizeof(key), "%" PRIu64, s->id);
	if (tp_addr_format(&s->peer, peer, sizeof(peer)))
		peer[0] = '\0';
	buf_init(&meta, 0);
	buf_printf(&meta,
		   "Event: %s\r\nEv: %d\r\nState: %d\r\nTopic: %d\r\nTarget: %s\r\nWatcher: %s\r\n"
		   "Call-ID: %s\r\nLocal-Tag: %s\r\nRemote-Tag: %s\r\nLocal-URI: %s\r\n"
		   "Remote-From: %s\r\nContact: %s\r\nRoute: %s\r\nPeer: %s\r\nCSeq: %u\r\n"
		   "Remote-CSeq: %u\r\n",
		   s->event_name, (int)s->ev, (int)s->state, (int)s->topic, s->target, s->watcher,
		   s->callid, s->local_tag, s->remote_tag, s->local_uri, s->remote_from, s->contact,
		   s->route, peer, s->cseq, s->remote_cseq);
	buf_append_char(&meta, '\0');
	if (!meta.err)
		home_rec_put(h, STORE_REC_SUBSCRIPTION, key, s->target, (int64_t)s->id, s->expires,
			     meta.p, NULL, 0);
	buf_free(&meta);
}

static void sub_free(struct pres_sub *s)
{
	uac_forget(s->inflight);
	free(s);
}

static void sub_remove(struct home *h, struct pres_sub *s)
{
	char key[32];
	bool presence = s->ev == PRES_EV_PRESENCE && !s->topic;

	for (struct pres_sub **pp = &h->subs; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	snprintf(key, sizeof(key), "%" PRIu64, s->id);
	home_rec_del(h, STORE_REC_SUBSCRIPTION, key);
	if (presence)
		winfo_changed(h, s->target);
	sub_free(s);
	home_interest_update(h);
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
	struct home *h = s->home;

	(void)resp;
	s->inflight = NULL;
	if (s->state == PRES_TERMINATED || status >= 300) {
		if (status >= 300 && s->state != PRES_TERMINATED)
			log_info("subscription of %s to %s ended: NOTIFY answered %u", s->watcher,
				 s->target, status);
		sub_remove(h, s);
		return;
	}
	if (s->again) {
		s->again = false;
		sub_notify(s);
	}
}

static void winfo_body(struct home *h, struct pres_sub *ws, struct buf *b)
{
	buf_printf(b,
		   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%u\" "
		   "state=\"full\">\n<watcher-list resource=\"sip:",
		   ws->winfo_version++);
	pidf_escape(b, sv_cstr(ws->target));
	buf_append_str(b, "\" package=\"presence\">\n");
	for (struct pres_sub *s = h->subs; s; s = s->next) {
		if (s->topic || s->ev != PRES_EV_PRESENCE || strcmp(s->target, ws->target) != 0)
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

static struct home_mailbox *mailbox_find(struct home *h, const char *aor)
{
	for (struct home_mailbox *mb = h->mailboxes; mb; mb = mb->next) {
		if (strcmp(mb->aor, aor) == 0)
			return mb;
	}
	return NULL;
}

static void mwi_body(struct home *h, const char *aor, struct buf *b)
{
	struct home_mailbox *mb = mailbox_find(h, aor);
	unsigned nw = mb ? mb->new_msgs : 0, old = mb ? mb->old_msgs : 0;

	buf_printf(b,
		   "Messages-Waiting: %s\r\nMessage-Account: sip:%s\r\n"
		   "Voice-Message: %u/%u (0/0)\r\n",
		   nw ? "yes" : "no", aor, nw, old);
}

static void topic_body(struct home *h, struct pres_sub *s, struct buf *b, const char **ct)
{
	struct im_topic *t = im_topic_find(h, s->target);
	char entity[HOME_AOR_MAX + 8], note[64];

	snprintf(entity, sizeof(entity), "sip:%s", s->target);
	snprintf(note, sizeof(note), "%zu members", t ? t->n : 0);
	if (strcmp(s->event_name, "presence") == 0) {
		pidf_basic(entity, t != NULL, entity, note, b);
		*ct = "application/pidf+xml";
	} else {
		buf_printf(b, "topic: %s\r\nmembers: %zu\r\n", entity, t ? t->n : 0);
		*ct = "text/plain";
	}
}

static void sub_notify(struct pres_sub *s)
{
	struct home *h = s->home;
	struct buf body, hdrs;
	char from[STORE_URI_MAX + 64], contact[160];
	const char *ct = NULL;
	int64_t left = s->expires - (int64_t)time(NULL);
	struct uac_req rq;
	int err;

	if (s->inflight) {
		s->again = true;
		return;
	}
	if (s->final_pending)
		s->state = PRES_TERMINATED;
	buf_init(&body, 0);
	buf_init(&hdrs, 0);
	if (s->state == PRES_ACTIVE ||
	    (s->state == PRES_TERMINATED && !s->topic && s->ev != PRES_EV_PRESENCE)) {
		switch (s->ev) {
		case PRES_EV_PRESENCE:
			if (compose(h, s->target, &body) == 0)
				ct = "application/pidf+xml";
			s->last_basic = is_registered(h, s->target);
			break;
		case PRES_EV_WINFO:
			winfo_body(h, s, &body);
			ct = "application/watcherinfo+xml";
			break;
		case PRES_EV_MWI:
			mwi_body(h, s->target, &body);
			ct = "application/simple-message-summary";
			break;
		case PRES_EV_TOPIC:
			topic_body(h, s, &body, &ct);
			break;
		}
	}
	if (s->state == PRES_TERMINATED)
		buf_printf(&hdrs, "Subscription-State: terminated;reason=%s\r\n",
			   s->reason[0] ? s->reason : "timeout");
	else
		buf_printf(&hdrs, "Subscription-State: %s;expires=%" PRId64 "\r\n",
			   s->state == PRES_ACTIVE ? "active" : "pending", left > 0 ? left : 0);
	our_contact_for(h, &s->peer, contact, sizeof(contact));
	buf_printf(&hdrs, "Event: %s\r\nContact: %s\r\n", s->event_name, contact);
	snprintf(from, sizeof(from), "%s;tag=%s", s->local_uri, s->local_tag);
	rq = (struct uac_req){
	    .method = "NOTIFY",
	    .ruri = sv_cstr(s->contact),
	    .route = sv_cstr(s->route),
	    .from = sv_cstr(from),
	    .to = sv_cstr(s->remote_from),
	    .callid = sv_cstr(s->callid),
	    .cseq = ++s->cseq,
	    .headers = buf_sv(&hdrs),
	    .content_type = ct ? sv_cstr(ct) : SV_NULL,
	    .body = ct ? buf_sv(&body) : SV_NULL,
	};
	err = hdrs.err || body.err ? ENOMEM : 0;
	if (!err)
		err = uac_send(h->w, &s->peer, s->conn_id, &rq, notify_done, s, &s->inflight);
	buf_free(&body);
	buf_free(&hdrs);
	if (err) {
		log_warn("NOTIFY to %s not sent: %s", s->watcher, strerror(err));
		if (s->state == PRES_TERMINATED)
			sub_remove(h, s);
		return;
	}
	if (s->state != PRES_TERMINATED)
		sub_save(h, s); /* the CSeq moved */
}

static void notify_presentity(struct home *h, const char *aor)
{
	for (struct pres_sub *s = h->subs; s; s = s->next) {
		if (!s->topic && s->ev == PRES_EV_PRESENCE && s->state == PRES_ACTIVE &&
		    strcmp(s->target, aor) == 0)
			sub_notify(s);
	}
}

static void winfo_changed(struct home *h, const char *aor)
{
	for (struct pres_sub *s = h->subs; s; s = s->next) {
		if (!s->topic && s->ev == PRES_EV_WINFO && s->state == PRES_ACTIVE &&
		    strcmp(s->target, aor) == 0)
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

static enum users_lookup user_of(struct home *h, struct preq *r, const char *aor,
				 struct users_entry *ue)
{
	const char *at = strchr(aor, '@');
	sv_t user, domain;

	if (!at)
		return USERS_ERROR;
	user = sv_make(aor, (size_t)(at - aor));
	domain = sv_cstr(at + 1);
	if (r)
		return users_get(h->srv->users, r->w, user, domain, r->m, r->src,
				 r->src->redelivered, ue);
	return users_peek(h->srv->users, user, domain, ue);
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

enum proxy_step pres_handle_publish(struct home *h, struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	char aor[HOME_AOR_MAX], who[HOME_AOR_MAX];
	sv_t ifmatch = sip_msg_value(r->m, SIP_H_SIP_IF_MATCH);
	enum pres_event ev;
	struct pres_pub *p;
	int64_t e, now = (int64_t)time(NULL);

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
	if (ifmatch.len) {
		p = pub_find(h, ifmatch, aor);
		if (!p || p->expires <= now) {
			proxy_reply(r, 412, NULL, SV_NULL);
			return PROXY_DONE;
		}
		if (r->m->body.len && !body_checked(h, r))
			return PROXY_DONE;
		if (proxy_local_txn(r) == EEXIST)
			return PROXY_DONE;
		if (e == 0) {
			pub_remove(h, p);
			proxy_reply(r, 200, NULL, SV("Expires: 0\r\n"));
			notify_presentity(h, aor);
			return PROXY_DONE;
		}
		home_rec_del(h, STORE_REC_PUBLICATION, p->etag);
		new_etag(h, p->etag, sizeof(p->etag));
		p->expires = now + e;
		if (r->m->body.len) {
			char *nb = malloc(r->m->body.len);
			if (nb) {
				memcpy(nb, r->m->body.p, r->m->body.len);
				free(p->body);
				p->body = nb;
				p->len = r->m->body.len;
				p->order = ++h->pub_order;
			}
		}
		pub_save(h, p);
		reply_published(r, p, e);
		if (r->m->body.len)
			notify_presentity(h, aor);
		return PROXY_DONE;
	}
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
	p = calloc(1, sizeof(*p));
	if (p)
		p->body = malloc(r->m->body.len);
	if (!p || !p->body) {
		free(p);
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		return PROXY_DONE;
	}
	memcpy(p->body, r->m->body.p, r->m->body.len);
	p->len = r->m->body.len;
	snprintf(p->aor, sizeof(p->aor), "%s", aor);
	new_etag(h, p->etag, sizeof(p->etag));
	p->expires = now + e;
	p->order = ++h->pub_order;
	p->next = h->pubs;
	h->pubs = p;
	pub_save(h, p);
	reply_published(r, p, e);
	notify_presentity(h, aor);
	return PROXY_DONE;
}

/* ---------------------------------------------------------- SUBSCRIBE */

static void join_route(struct sip_msg *m, char *out, size_t len)
{
	struct sip_hdr_iter it;
	sv_t v;
	size_t n = 0;

	out[0] = '\0';
	sip_hdr_iter_init(&it, m, SIP_H_RECORD_ROUTE);
	while (sip_hdr_iter_next(&it, &v)) {
		int k = snprintf(out + n, len - n, "%s%.*s", n ? ", " : "", (int)v.len, v.p);
		if (k < 0 || (size_t)k >= len - n) {
			out[0] = '\0'; /* a route set we cannot hold: the direct way */
			return;
		}
		n += (size_t)k;
	}
}

static struct pres_sub *sub_new(struct home *h, struct preq *r, enum pres_event ev, bool topic,
				const char *target, const char *watcher, int64_t e)
{
	struct sip_msg *m = r->m;
	const struct sip_naddr *from = sip_msg_from(m);
	struct sip_hdr *to = sip_msg_hdr(m, SIP_H_TO), *fromh = sip_msg_hdr(m, SIP_H_FROM);
	struct sip_hdr *ch = sip_msg_hdr(m, SIP_H_CONTACT);
	struct sip_naddr cna;
	struct pres_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (!ch || sip_naddr_parse(ch->value, &cna, NULL) || cna.uri.len >= sizeof(s->contact) ||
	    !from || from->tag.len >= sizeof(s->remote_tag) ||
	    sip_msg_callid(m).len >= sizeof(s->callid) || to->value.len >= sizeof(s->local_uri) ||
	    fromh->value.len >= sizeof(s->remote_from)) {
		free(s);
		return NULL;
	}
	s->home = h;
	s->id = h->next_sub_id++;
	s->ev = ev;
	s->topic = topic;
	s->last_basic = -1;
	sv_copy(event_token(sip_msg_value(m, SIP_H_EVENT)), s->event_name, sizeof(s->event_name));
	for (char *p = s->event_name; *p; p++)
		*p = sv_lower_char(*p);
	snprintf(s->target, sizeof(s->target), "%s", target);
	snprintf(s->watcher, sizeof(s->watcher), "%s", watcher);
	sv_copy(sip_msg_callid(m), s->callid, sizeof(s->callid));
	proxy_stateless_tag(r, s->local_tag, sizeof(s->local_tag));
	sv_copy(from->tag, s->remote_tag, sizeof(s->remote_tag));
	sv_copy(to->value, s->local_uri, sizeof(s->local_uri));
	sv_copy(fromh->value, s->remote_from, sizeof(s->remote_from));
	sv_copy(cna.uri, s->contact, sizeof(s->contact));
	join_route(m, s->route, sizeof(s->route));
	s->peer = r->src->peer;
	s->conn_id = r->src->conn_id;
	s->remote_cseq = sip_msg_cseq(m)->num;
	s->expires = (int64_t)time(NULL) + e;
	return s;
}

static void reply_subscribed(struct preq *r, int64_t e)
{
	char hdrs[256], contact[160];

	our_contact(r, contact, sizeof(contact));
	snprintf(hdrs, sizeof(hdrs), "Expires: %" PRId64 "\r\nContact: %s\r\n", e, contact);
	proxy_reply(r, 200, NULL, sv_cstr(hdrs));
}

enum proxy_step pres_handle_subscribe(struct home *h, struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m);
	char target[HOME_AOR_MAX], watcher[HOME_AOR_MAX];
	bool topic = im_is_topic_uri(h, ruri);
	enum pres_state state = PRES_ACTIVE;
	enum pres_event ev;
	struct users_entry ue;
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
	if (topic) {
		if (!r->from_local || (h->srv->cfg.auth_enabled && !r->authenticated)) {
			proxy_reply(r, 403, "Topics are for this server's users", SV_NULL);
			return PROXY_DONE;
		}
		if (e == 0) {
			im_topic_leave(h, target, watcher);
		} else {
			int err = im_topic_join(h, target, watcher);
			if (err == ENOENT) {
				proxy_reply(r, 404, "No such topic", SV_NULL);
				return PROXY_DONE;
			}
			if (err) {
				proxy_reply(r, 403, err == ENOSPC ? "Topic full" : "Cannot join",
					    SV_NULL);
				return PROXY_DONE;
			}
		}
	} else if (ev == PRES_EV_WINFO || ev == PRES_EV_MWI) {
		if (strcmp(target, watcher) != 0 ||
		    (h->srv->cfg.auth_enabled && !r->authenticated)) {
			proxy_reply(r, 403,
				    ev == PRES_EV_MWI ? "Only the user may watch its mailbox"
						      : "Only the user may see its watchers",
				    SV_NULL);
			return PROXY_DONE;
		}
	} else {
		switch (user_of(h, r, target, &ue)) {
		case USERS_PENDING:
			return PROXY_SUSPENDED;
		case USERS_ERROR:
			proxy_reply(r, 503, "Subscriber database unavailable",
				    SV("Retry-After: 5\r\n"));
			return PROXY_DONE;
		case USERS_HIT:
			break;
		}
		if (!ue.exists && r->authenticated) {
			proxy_reply(r, 404, NULL, SV_NULL);
			return PROXY_DONE;
		}
		/* an unknown presentity looks like one that has not decided: no enumeration */
		state = ue.exists ? decide(target, watcher, &ue) : PRES_PENDING;
		if (state == PRES_TERMINATED) {
			proxy_reply(r, 403, "Not authorised to watch this presentity", SV_NULL);
			return PROXY_DONE;
		}
	}
	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	s = sub_new(h, r, ev, topic, target, watcher, e);
	if (!s) {
		proxy_reply(r, 400, "Cannot keep this subscription (Contact, tags or sizes)",
			    SV_NULL);
		return PROXY_DONE;
	}
	s->state = state;
	s->next = h->subs;
	h->subs = s;
	reply_subscribed(r, e);
	if (e == 0) {
		sub_terminate(s, "timeout"); /* a fetch: one NOTIFY with the state, then the end */
	} else {
		sub_save(h, s);
		sub_notify(s);
	}
	if (!topic && ev == PRES_EV_PRESENCE)
		winfo_changed(h, target);
	home_interest_update(h);
	return PROXY_DONE;
}

enum proxy_step pres_handle_in_dialog(struct home *h, struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m), *to = sip_msg_to(r->m);
	const struct sip_cseq *cseq = sip_msg_cseq(r->m);
	sv_t callid = sip_msg_callid(r->m);
	struct pres_sub *s;
	int64_t e;

	for (s = h->subs; s; s = s->next) {
		if (sv_eq(callid, sv_cstr(s->callid)) && to &&
		    sv_eq(to->tag, sv_cstr(s->local_tag)) && from &&
		    sv_eq(from->tag, sv_cstr(s->remote_tag)) && !s->final_pending)
			break;
	}
	if (!s) {
		proxy_reply(r, 481, "Subscription does not exist", SV_NULL);
		return PROXY_DONE;
	}
	if (cseq && cseq->num <= s->remote_cseq) {
		proxy_reply(r, 500, "CSeq lower than the last one", SV_NULL);
		return PROXY_DONE;
	}
	e = asked_expires(h, r);
	if (e < 0)
		return PROXY_DONE;
	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	s->remote_cseq = cseq ? cseq->num : s->remote_cseq + 1;
	reply_subscribed(r, e);
	if (e == 0) {
		if (s->topic)
			im_topic_leave(h, s->target, s->watcher);
		sub_terminate(s, "timeout");
		return PROXY_DONE;
	}
	s->expires = (int64_t)time(NULL) + e;
	sub_save(h, s);
	sub_notify(s); /* RFC 6665 4.2.1.2: a refresh gets a NOTIFY */
	return PROXY_DONE;
}

/* ------------------------------------------------------ changes, sweep */

void pres_registered(struct home *h, const char *aor)
{
	bool reg = is_registered(h, aor);

	if (has_pubs(h, aor))
		return; /* its publications say what it is */
	for (struct pres_sub *s = h->subs; s; s = s->next) {
		if (!s->topic && s->ev == PRES_EV_PRESENCE && s->state == PRES_ACTIVE &&
		    strcmp(s->target, aor) == 0 && s->last_basic != (int)reg)
			sub_notify(s);
	}
}

void pres_mailbox_set(struct home *h, const char *aor, unsigned new_msgs, unsigned old_msgs)
{
	struct home_mailbox *mb = mailbox_find(h, aor);

	if (!mb) {
		mb = calloc(1, sizeof(*mb));
		if (!mb)
			return;
		snprintf(mb->aor, sizeof(mb->aor), "%s", aor);
		mb->next = h->mailboxes;
		h->mailboxes = mb;
	} else if (mb->new_msgs == new_msgs && mb->old_msgs == old_msgs) {
		return;
	}
	mb->new_msgs = new_msgs;
	mb->old_msgs = old_msgs;
	if (!h->started)
		return;
	for (struct pres_sub *s = h->subs; s; s = s->next) {
		if (!s->topic && s->ev == PRES_EV_MWI && s->state == PRES_ACTIVE &&
		    strcmp(s->target, aor) == 0)
			sub_notify(s);
	}
}

void pres_topic_changed(struct home *h, const char *key)
{
	bool exists = im_topic_find(h, key) != NULL;

	for (struct pres_sub *s = h->subs, *next; s; s = next) {
		next = s->next;
		if (s->topic && strcmp(s->target, key) == 0 && !exists)
			sub_terminate(s, "noresource");
	}
}

/* Watchers whose presentity changed its mind (user set ... watch_allow=...). */
static void reauthorize(struct home *h, struct pres_sub *s)
{
	struct users_entry ue;
	enum pres_state now;

	if (user_of(h, NULL, s->target, &ue) != USERS_HIT || !ue.exists)
		return;
	now = decide(s->target, s->watcher, &ue);
	if (now == s->state)
		return;
	if (now == PRES_TERMINATED) {
		sub_terminate(s, "rejected");
	} else {
		s->state = now;
		sub_save(h, s);
		sub_notify(s);
	}
	winfo_changed(h, s->target);
}

void pres_sweep(struct home *h, int64_t now)
{
	/* publications that ran out */
	for (struct pres_pub *p = h->pubs, *next; p; p = next) {
		char aor[HOME_AOR_MAX];
		next = p->next;
		if (p->expires > now)
			continue;
		snprintf(aor, sizeof(aor), "%s", p->aor);
		pub_remove(h, p);
		notify_presentity(h, aor);
	}
	for (struct pres_sub *s = h->subs, *next; s; s = next) {
		next = s->next;
		if (s->final_pending)
			continue;
		if (s->expires <= now) {
			sub_terminate(s, "timeout");
			continue;
		}
		if (s->topic || s->ev != PRES_EV_PRESENCE)
			continue;
		if (s->state != PRES_ACTIVE || s->last_basic < 0 || !has_pubs(h, s->target)) {
			if (s->state == PRES_ACTIVE && s->last_basic >= 0 &&
			    s->last_basic != (int)is_registered(h, s->target))
				sub_notify(s); /* a registration ran out */
		}
		reauthorize(h, s);
		if (s->last_basic < 0 && s->state == PRES_ACTIVE && !s->inflight)
			sub_notify(
			    s); /* restored from the store: tell the watcher where it stands */
	}
}

/* --------------------------------------------------------------- load */

int pres_load_pub(struct home *h, const struct store_record *rec)
{
	struct pres_pub *p = calloc(1, sizeof(*p));

	if (!p)
		return ENOMEM;
	p->body = malloc(rec->body_len ? rec->body_len : 1);
	if (!p->body) {
		free(p);
		return ENOMEM;
	}
	memcpy(p->body, rec->body, rec->body_len);
	p->len = rec->body_len;
	sv_copy(sv_cstr(rec->key), p->etag, sizeof(p->etag));
	sv_copy(sv_cstr(rec->owner), p->aor, sizeof(p->aor));
	p->expires = rec->expires;
	p->order = (uint64_t)rec->seq;
	if (p->order > h->pub_order)
		h->pub_order = p->order;
	p->next = h->pubs;
	h->pubs = p;
	return 0;
}

static void meta_copy(const char *meta, const char *name, char *out, size_t len)
{
	sv_copy(home_meta_get(meta, name), out, len);
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
	char peer[96];

	if (!s)
		return ENOMEM;
	s->home = h;
	s->id = (uint64_t)rec->seq;
	if (s->id >= h->next_sub_id)
		h->next_sub_id = s->id + 1;
	s->ev = (enum pres_event)meta_uint(rec->meta, "Ev");
	s->state = (enum pres_state)meta_uint(rec->meta, "State");
	s->topic = meta_uint(rec->meta, "Topic") != 0;
	meta_copy(rec->meta, "Event", s->event_name, sizeof(s->event_name));
	meta_copy(rec->meta, "Target", s->target, sizeof(s->target));
	meta_copy(rec->meta, "Watcher", s->watcher, sizeof(s->watcher));
	meta_copy(rec->meta, "Call-ID", s->callid, sizeof(s->callid));
	meta_copy(rec->meta, "Local-Tag", s->local_tag, sizeof(s->local_tag));
	meta_copy(rec->meta, "Remote-Tag", s->remote_tag, sizeof(s->remote_tag));
	meta_copy(rec->meta, "Local-URI", s->local_uri, sizeof(s->local_uri));
	meta_copy(rec->meta, "Remote-From", s->remote_from, sizeof(s->remote_from));
	meta_copy(rec->meta, "Contact", s->contact, sizeof(s->contact));
	meta_copy(rec->meta, "Route", s->route, sizeof(s->route));
	meta_copy(rec->meta, "Peer", peer, sizeof(peer));
	s->cseq = meta_uint(rec->meta, "CSeq");
	s->remote_cseq = meta_uint(rec->meta, "Remote-CSeq");
	s->expires = rec->expires;
	s->last_basic = -1;
	if ((unsigned)s->ev > PRES_EV_TOPIC || (unsigned)s->state > PRES_ACTIVE || !s->callid[0] ||
	    !s->contact[0] || tp_addr_parse(sv_cstr(peer), &s->peer)) {
		free(s);
		return 0; /* a record we cannot use: dropped */
	}
	s->next = h->subs;
	h->subs = s;
	return 0;
}

void pres_free_all(struct home *h)
{
	for (struct pres_pub *p = h->pubs, *next; p; p = next) {
		next = p->next;
		free(p->body);
		free(p);
	}
	h->pubs = NULL;
	for (struct pres_sub *s = h->subs, *next; s; s = next) {
		next = s->next;
		sub_free(s);
	}
	h->subs = NULL;
	for (struct home_mailbox *mb = h->mailboxes, *next; mb; mb = next) {
		next = mb->next;
		free(mb);
	}
	h->mailboxes = NULL;
}
