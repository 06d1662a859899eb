/*
 * im.c - instant messages (RFC 3428) that wait for their recipient, and the
 * IM broker's topics.
 *
 * A recipient's messages form one queue and go out one at a time, oldest
 * first, each as a new MESSAGE from this server that keeps the original
 * From, To, Date and body; a 2xx removes it, anything else leaves it for
 * the recipient's next REGISTER. A message that goes out at once (a topic's
 * fan-out to a member who is online) is written to the store only when its
 * delivery fails, so a busy topic costs the database nothing.
 */
#include "services/home_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/siphash.h"
#include "core/log.h"
#include "dns/dns.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/location.h"

#define IM_MAX_TARGETS 8

/* ----------------------------------------------------------------- boxes */

static size_t box_bucket(const struct home *h, const char *aor)
{
	return (size_t)(siphash_sv(&h->key, sv_cstr(aor)) % HOME_BUCKETS);
}

static struct im_box *box_find(struct home *h, const char *aor)
{
	for (struct im_box *b = h->boxes[box_bucket(h, aor)]; b; b = b->hnext) {
		if (strcmp(b->aor, aor) == 0)
			return b;
	}
	return NULL;
}

static struct im_box *box_get(struct home *h, const char *aor)
{
	struct im_box *b = box_find(h, aor);
	size_t i;

	if (b)
		return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	snprintf(b->aor, sizeof(b->aor), "%s", aor);
	b->home = h;
	i = box_bucket(h, aor);
	b->hnext = h->boxes[i];
	h->boxes[i] = b;
	return b;
}

static void box_release_if_empty(struct im_box *b)
{
	struct home *h = b->home;
	struct im_box **pp;

	if (b->count || b->inflight || b->kick_queued)
		return;
	for (pp = &h->boxes[box_bucket(h, b->aor)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == b) {
			*pp = b->hnext;
			free(b);
			return;
		}
	}
}

static void msg_free(struct home *h, struct im_msg *m)
{
	h->msgs_total--;
	if (m->stranger)
		h->stranger_msgs--;
	if (m->src_ctr) {
		m->src_ctr->msgs--;
		home_ctr_release(h, h->by_source, m->src_ctr);
	}
	if (m->sender_ctr) {
		m->sender_ctr->msgs--;
		home_ctr_release(h, h->by_sender, m->sender_ctr);
	}
	free(m->meta);
	free(m->body);
	free(m);
}

static void msg_persist(struct home *h, const char *aor, struct im_msg *m)
{
	char key[32];

	if (m->persisted)
		return;
	snprintf(key, sizeof(key), "%020" PRIu64, m->id);
	home_rec_put(h, STORE_REC_MESSAGE, key, aor, (int64_t)m->id, m->expires, m->meta, m->body,
		     m->body_len);
	m->persisted = true;
}

static void box_append(struct home *h, struct im_box *b, struct im_msg *m)
{
	if (b->tail)
		b->tail->next = m;
	else
		b->head = m;
	b->tail = m;
	b->count++;
	b->strangers += m->stranger;
	home_interest_mark(h, b->aor); /* its next REGISTER delivers */
}

static struct im_msg *box_pop(struct im_box *b)
{
	struct im_msg *m = b->head;

	if (!m)
		return NULL;
	b->head = m->next;
	if (!b->head)
		b->tail = NULL;
	b->count--;
	b->strangers -= m->stranger;
	m->next = NULL;
	return m;
}

static void box_kick(struct home *h, struct im_box *b)
{
	if (b->kick_queued)
		return;
	b->kick_queued = true;
	b->kick_next = NULL;
	if (h->kick_tail)
		h->kick_tail->kick_next = b;
	else
		h->kick_head = b;
	h->kick_tail = b;
	if (h->started)
		event_active(&h->kick_ev, EV_TIMEOUT, 0);
}

/* -------------------------------------------------------------- delivery */

static void box_deliver(struct im_box *b);

static void box_done(void *arg, unsigned status, const struct sip_msg *resp)
{
	struct im_box *b = arg;
	struct home *h = b->home;

	(void)resp;
	b->inflight = NULL;
	if (status >= 200 && status < 300) {
		struct im_msg *m = box_pop(b);
		if (m) {
			if (m->persisted) {
				char key[32];
				snprintf(key, sizeof(key), "%020" PRIu64, m->id);
				home_rec_del(h, STORE_REC_MESSAGE, key);
			}
			msg_free(h, m);
		}
		b->target = 0;
	} else if (b->head && b->head->deleted) {
		msg_free(h, box_pop(b)); /* deleted from the CLI meanwhile: not tried again */
		b->target = 0;
	} else {
		log_debug("message for %s: contact %u answered %u", b->aor, b->target, status);
		b->target++; /* the next contact, if there is one */
	}
	box_deliver(b);
	box_release_if_empty(b);
}

static int target_peer(struct tp_table *tp, const struct loc_target *t, struct tp_addr *peer,
		       uint32_t *conn_id)
{
	struct dns_target dt;
	struct sip_uri u;
	sv_t hop = sv_cstr(t->uri);

	*conn_id = 0;
	if (t->path[0]) {
		sv_t list = sv_cstr(t->path);
		struct sip_naddr na;
		if (sip_naddr_parse(sip_list_split(&list), &na, NULL))
			return EINVAL;
		hop = na.uri;
	} else {
		switch (loc_target_reach(t, tp_conn_alive(tp, t->conn_id))) {
		case LOC_REACH_GONE:
			return ENOTCONN; /* its connection was the only way in */
		case LOC_REACH_RECEIVED:
			*peer = t->received;
			*conn_id = t->conn_id;
			return 0;
		case LOC_REACH_URI:
			break;
		}
	}
	if (sip_uri_parse(hop, &u) || dns_resolve_numeric(&u, &dt))
		return EHOSTUNREACH; /* a name would need DNS: the REGISTER's source is the way */
	return tp_addr_from_sockaddr(peer, dt.proto, &dt.addr, dt.addrlen);
}

/* Out of contacts, or none registered: what is queued waits for the next REGISTER. */
static void box_park(struct im_box *b)
{
	b->target = 0;
	for (struct im_msg *m = b->head; m; m = m->next)
		msg_persist(b->home, b->aor, m);
}

static void box_deliver(struct im_box *b)
{
	struct home *h = b->home;
	struct loc_target *t;
	struct loc_target targets[IM_MAX_TARGETS];
	struct im_msg *m = b->head;
	struct uac_req rq;
	struct tp_addr peer;
	uint32_t conn_id = 0;
	char callid[80], date[160];
	size_t n = 0;
	sv_t date_v;

	if (b->inflight || !m)
		return;
	loc_lookup(h->srv->loc, sv_cstr(b->aor), (int64_t)time(NULL), targets, IM_MAX_TARGETS, &n);
	for (;; b->target++) {
		if (b->target >= n) {
			box_park(b);
			return;
		}
		t = &targets[b->target];
		if (target_peer(h->srv->tp, t, &peer, &conn_id) == 0)
			break;
	}
	snprintf(callid, sizeof(callid), "im-%016" PRIx64 "-%" PRIu64 "@switchboard",
		 worker_next_id(h->w), m->id);
	date_v = home_meta_get(m->meta, "Date");
	snprintf(date, sizeof(date), "Date: %.*s\r\n", (int)date_v.len, date_v.p);
	rq = (struct uac_req){
	    .method = SIP_MESSAGE,
	    .ruri = sv_cstr(t->uri),
	    .route = sv_cstr(t->path),
	    .from = home_meta_get(m->meta, "From"),
	    .to = home_meta_get(m->meta, "To"),
	    .callid = sv_cstr(callid),
	    .cseq = 1,
	    .headers = date_v.len ? sv_cstr(date) : SV_NULL,
	    .content_type = home_meta_get(m->meta, "Content-Type"),
	    .body = sv_make(m->body ? m->body : "", m->body_len),
	};
	if (uac_send(h->w, &peer, conn_id, &rq, box_done, b, &b->inflight)) {
		b->target++;
		box_kick(h, b); /* the next contact, from the loop, not from here */
	}
}

void im_kick_run(struct home *h)
{
	for (unsigned i = 0; i < HOME_FANOUT_CHUNK && h->kick_head; i++) {
		struct im_box *b = h->kick_head;
		h->kick_head = b->kick_next;
		if (!h->kick_head)
			h->kick_tail = NULL;
		b->kick_queued = false;
		box_deliver(b);
		box_release_if_empty(b);
	}
	if (h->kick_head)
		event_active(&h->kick_ev, EV_TIMEOUT,
			     0); /* the rest after other work had its turn */
}

void im_registered(struct home *h, const char *aor)
{
	struct im_box *b = box_find(h, aor);

	if (b && b->count && !b->inflight) {
		b->target = 0;
		box_kick(h, b);
	}
}

/* -------------------------------------------------------- storing a message */

static struct im_msg *msg_new(struct home *h, const char *meta, sv_t body)
{
	struct im_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->id = ++h->next_msg_id;
	m->expires = (int64_t)time(NULL) + h->srv->cfg.msg_store_time_s;
	m->meta = strdup(meta);
	if (body.len) {
		m->body = malloc(body.len);
		if (m->body)
			memcpy(m->body, body.p, body.len);
		m->body_len = body.len;
	}
	if (!m->meta || (body.len && !m->body)) {
		free(m->meta);
		free(m->body);
		free(m);
		return NULL;
	}
	h->msgs_total++;
	return m;
}

/* From, To, Date and Content-Type of a received MESSAGE, as delivery will write them. */
static int msg_meta(struct worker *w, struct sip_msg *m, sv_t to_override, struct buf *meta)
{
	struct sip_hdr *from = sip_msg_hdr(m, SIP_H_FROM), *to = sip_msg_hdr(m, SIP_H_TO);
	sv_t date = sip_msg_value(m, SIP_H_DATE), ct = sip_msg_value(m, SIP_H_CONTENT_TYPE);

	if (!from || !to)
		return EINVAL;
	buf_printf(meta, "From: %.*s\r\n", (int)from->value.len, from->value.p);
	if (to_override.len)
		buf_printf(meta, "To: %.*s\r\n", (int)to_override.len, to_override.p);
	else
		buf_printf(meta, "To: %.*s\r\n", (int)to->value.len, to->value.p);
	if (date.len)
		buf_printf(meta, "Date: %.*s\r\n", (int)date.len, date.p);
	else
		buf_append_str(meta, worker_date_header(w)); /* when it reached us */
	if (ct.len)
		buf_printf(meta, "Content-Type: %.*s\r\n", (int)ct.len, ct.p);
	buf_printf(meta, "Call-ID: %.*s\r\n", (int)sip_msg_callid(m).len, sip_msg_callid(m).p);
	return meta->err ? ENOMEM : 0;
}

/* Who sent a stranger's message: its source address and its From. */
struct im_origin {
	char source[64];
	char sender[HOME_AOR_MAX];
};

/* A stranger's message counts against its source, its sender and the strangers' total. */
static void stranger_msg_count(struct home *h, struct im_msg *m, const char *source,
			       const char *sender)
{
	m->stranger = true;
	h->stranger_msgs++;
	m->src_ctr = home_ctr_get(h, h->by_source, source, true);
	if (m->src_ctr)
		m->src_ctr->msgs++;
	m->sender_ctr = home_ctr_get(h, h->by_sender, sender, true);
	if (m->sender_ctr)
		m->sender_ctr->msgs++;
}

/* The cap a new message for box b would pass (o: a stranger's); HOME_CAP_COUNT when none. */
static enum home_cap keep_cap(struct home *h, const struct im_box *b, const struct im_origin *o)
{
	const struct cfg *c = &h->srv->cfg;
	const struct home_ctr *ctr;

	if (h->msgs_total >= c->msgs_total)
		return HOME_CAP_MSGS_TOTAL;
	if (b && b->count >= c->msg_max_stored)
		return HOME_CAP_MSGS_BOX;
	if (!o)
		return HOME_CAP_COUNT;
	/* strangers get half of a box at most: its owner's friends still reach it */
	if (b && b->strangers >= (c->msg_max_stored + 1) / 2)
		return HOME_CAP_MSGS_BOX;
	if (h->stranger_msgs >= c->str_msgs)
		return HOME_CAP_MSGS;
	ctr = home_ctr_get(h, h->by_source, o->source, false);
	if (ctr && ctr->msgs >= c->str_msgs_per_source)
		return HOME_CAP_MSGS_SOURCE;
	ctr = home_ctr_get(h, h->by_sender, o->sender, false);
	if (ctr && ctr->msgs >= c->str_msgs_per_sender)
		return HOME_CAP_MSGS_SENDER;
	return HOME_CAP_COUNT;
}

/*
 * Queues a copy of m for aor (o: a stranger's, else NULL): 0, ENOSPC (a cap
 * is reached: *cap says which), EINVAL, ENOMEM.
 */
static int im_keep(struct home *h, const char *aor, struct sip_msg *m, sv_t to_override,
		   bool persist, const struct im_origin *o, enum home_cap *cap)
{
	struct im_box *b = box_get(h, aor);
	struct im_msg *msg;
	struct buf meta;
	int err;

	if (!b)
		return ENOMEM;
	*cap = keep_cap(h, b, o);
	if (*cap != HOME_CAP_COUNT) {
		home_cap_hit(h, *cap, o ? o->source : aor);
		box_release_if_empty(b);
		return ENOSPC;
	}
	buf_init(&meta, 0);
	err = msg_meta(h->w, m, to_override, &meta);
	if (!err && o)
		buf_printf(&meta, "Stranger-Source: %s\r\nStranger-Sender: %s\r\n", o->source,
			   o->sender);
	if (!err) {
		buf_append_char(&meta, '\0');
		msg = meta.err ? NULL : msg_new(h, meta.p, m->body);
		err = msg ? 0 : ENOMEM;
	}
	buf_free(&meta);
	if (err) {
		box_release_if_empty(b);
		return err;
	}
	if (o)
		stranger_msg_count(h, msg, o->source, o->sender);
	box_append(h, b, msg);
	if (persist)
		msg_persist(h, aor, msg);
	box_kick(h, b);
	return 0;
}

/* The answer to a MESSAGE that a cap keeps out; a 503 comes with a Retry-After. */
static unsigned cap_answer(enum home_cap cap, const char **reason)
{
	switch (cap) {
	case HOME_CAP_MSGS_TOTAL:
		*reason = "Offline message store full";
		return 503;
	case HOME_CAP_MSGS:
		*reason = "Too many stored messages from unauthenticated senders";
		return 503;
	case HOME_CAP_MSGS_SOURCE:
		*reason = "Too many stored messages from this address";
		return 486;
	case HOME_CAP_MSGS_SENDER:
		*reason = "Too many stored messages from this sender";
		return 486;
	default:
		*reason = "Offline message store full";
		return 480;
	}
}

static void reply_full(struct preq *r, enum home_cap cap)
{
	const char *reason;
	unsigned st = cap_answer(cap, &reason);

	proxy_reply(r, st, reason, st == 503 ? SV("Retry-After: 600\r\n") : SV_NULL);
}

/* The origin of a stranger's message, from its source address and its From. */
static void origin_of(const struct tp_addr *src, const struct sip_msg *m, struct im_origin *o)
{
	const struct sip_naddr *from = sip_msg_from((struct sip_msg *)m);

	home_source_key(src, o->source, sizeof(o->source));
	if (!from || home_aor_of_uri(from->uri, o->sender, sizeof(o->sender)))
		snprintf(o->sender, sizeof(o->sender), "?");
}

void home_sender_of(const struct preq *r, struct home_sender *out)
{
	memset(out, 0, sizeof(*out));
	out->stranger = r->srv->home && !proxy_caller_known(r);
	out->src = r->src->peer;
}

int home_message_keep(struct server *srv, const char *aor, sv_t request,
		      const struct home_sender *from, unsigned *status, const char **reason)
{
	struct home *h = srv->home;
	enum home_cap cap = HOME_CAP_COUNT;
	struct im_origin origin;
	struct sip_msg m;
	int err;

	if (!h)
		return ENOTSUP;
	memset(&m, 0, sizeof(m));
	err = sip_parse(&m, request.p, request.len, 0);
	if (!err) {
		if (from && from->stranger)
			origin_of(&from->src, &m, &origin);
		err = im_keep(h, aor, &m, SV_NULL, true, from && from->stranger ? &origin : NULL,
			      &cap);
	}
	sip_msg_release(&m);
	if (err == ENOSPC)
		*status = cap_answer(cap, reason);
	return err;
}

bool home_message_waiting(struct server *srv, const char *aor)
{
	struct home *h = srv->home;
	struct im_box *b = h ? box_find(h, aor) : NULL;

	return b && b->count > 0;
}

static void reply_kept(struct preq *r, int err, enum home_cap cap)
{
	switch (err) {
	case 0:
		proxy_reply(r, 202, "Accepted: stored for delivery", SV_NULL);
		break;
	case ENOSPC:
		reply_full(r, cap);
		break;
	case EINVAL:
		proxy_reply(r, 400, "Malformed From or To", SV_NULL);
		break;
	default:
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		break;
	}
}

enum proxy_step home_message_store(struct preq *r, const char *aor)
{
	struct home *h = r->srv->home;

	struct im_origin origin, *o = NULL;
	enum home_cap cap = HOME_CAP_COUNT;
	int err;

	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	if (!proxy_caller_known(r)) {
		o = &origin;
		origin_of(&r->src->peer, r->m, o);
	}
	err = im_keep(h, aor, r->m, SV_NULL, true, o, &cap);
	reply_kept(r, err, cap);
	return PROXY_DONE;
}

/*
 * A stranger's MESSAGE to a name that is not one of our users: answered as a
 * message kept for an offline user would be (the same caps first, then 202)
 * and dropped, so that the answer does not tell which names exist (as svwar
 * would read it). Our own users get the truth (404) from the caller.
 */
enum proxy_step home_message_phantom(struct preq *r)
{
	struct home *h = r->srv->home;
	struct im_origin origin;
	enum home_cap cap;

	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	origin_of(&r->src->peer, r->m, &origin);
	cap = keep_cap(h, NULL, &origin);
	if (cap != HOME_CAP_COUNT) {
		home_cap_hit(h, cap, origin.source);
		reply_full(r, cap);
	} else {
		proxy_reply(r, 202, "Accepted: stored for delivery", SV_NULL);
	}
	return PROXY_DONE;
}

/* ------------------------------------------------------------------ topics */

bool im_is_topic_uri(struct home *h, const struct sip_uri *u)
{
	return h->srv->cfg.broker_domain[0] && sv_ieq(u->host, sv_cstr(h->srv->cfg.broker_domain));
}

struct im_topic *im_topic_find(struct home *h, const char *key)
{
	for (struct im_topic *t = h->topics; t; t = t->next) {
		if (strcmp(t->key, key) == 0)
			return t;
	}
	return NULL;
}

int im_topic_create(struct home *h, const char *key, bool persist)
{
	struct im_topic *t = im_topic_find(h, key);
	char meta[64];

	if (t)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return ENOMEM;
	snprintf(t->key, sizeof(t->key), "%s", key);
	t->created = (int64_t)time(NULL);
	t->next = h->topics;
	h->topics = t;
	if (persist) {
		snprintf(meta, sizeof(meta), "Created: %" PRId64 "\r\n", t->created);
		home_rec_put(h, STORE_REC_TOPIC, key, key, t->created, 0, meta, NULL, 0);
	}
	log_info("topic sip:%s created", key);
	return 0;
}

static void member_key(char *out, size_t len, const char *topic, const char *member)
{
	snprintf(out, len, "%s %s", topic, member);
}

static int member_add(struct home *h, struct im_topic *t, const char *member, bool persist)
{
	char key[STORE_KEY_MAX];

	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->members[i], member) == 0)
			return 0;
	}
	if (t->n >= h->srv->cfg.broker_max_members)
		return ENOSPC;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		char **nm = realloc(t->members, ncap * sizeof(*nm));
		if (!nm)
			return ENOMEM;
		t->members = nm;
		t->cap = ncap;
	}
	t->members[t->n] = strdup(member);
	if (!t->members[t->n])
		return ENOMEM;
	t->n++;
	if (persist) {
		member_key(key, sizeof(key), t->key, member);
		home_rec_put(h, STORE_REC_MEMBER, key, t->key, 0, 0, "", NULL, 0);
	}
	return 0;
}

int im_topic_join(struct home *h, const char *key, const char *member, bool persist)
{
	struct im_topic *t = im_topic_find(h, key);
	int err;

	if (!t) {
		if (!persist || !h->srv->cfg.broker_auto_create)
			return ENOENT;
		err = im_topic_create(h, key, true);
		if (err)
			return err;
		t = im_topic_find(h, key);
	}
	return member_add(h, t, member, persist);
}

void im_topic_leave(struct home *h, const char *key, const char *member, bool persist)
{
	struct im_topic *t = im_topic_find(h, key);
	char rkey[STORE_KEY_MAX];

	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->members[i], member) != 0)
			continue;
		free(t->members[i]);
		memmove(&t->members[i], &t->members[i + 1], (t->n - i - 1) * sizeof(char *));
		t->n--;
		if (persist) {
			member_key(rkey, sizeof(rkey), key, member);
			home_rec_del(h, STORE_REC_MEMBER, rkey);
		}
		return;
	}
}

static void topic_free(struct im_topic *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->members[i]);
	free(t->members);
	free(t);
}

void im_topic_delete(struct home *h, const char *key, bool persist)
{
	struct im_topic **pp, *t;
	char rkey[STORE_KEY_MAX];

	for (pp = &h->topics; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key, key) != 0)
			continue;
		t = *pp;
		*pp = t->next;
		for (size_t i = 0; i < t->n && persist; i++) {
			member_key(rkey, sizeof(rkey), key, t->members[i]);
			home_rec_del(h, STORE_REC_MEMBER, rkey);
		}
		if (persist)
			home_rec_del(h, STORE_REC_TOPIC, key);
		topic_free(t);
		pres_topic_changed(h, key);
		return;
	}
}

/* A MESSAGE to a topic: 202 to the sender, then one delivery per other member. */
static enum proxy_step topic_message(struct home *h, struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m);
	char key[HOME_AOR_MAX], sender[HOME_AOR_MAX], to[HOME_AOR_MAX + 16];
	struct im_topic *t;
	bool member = false;
	size_t full = 0;

	if (proxy_aor_of(ruri, key, sizeof(key)) || !from ||
	    home_aor_of_uri(from->uri, sender, sizeof(sender))) {
		proxy_reply(r, 400, "Malformed topic or From URI", SV_NULL);
		return PROXY_DONE;
	}
	t = im_topic_find(h, key);
	if (!t) {
		proxy_reply(r, 404, "No such topic", SV_NULL);
		return PROXY_DONE;
	}
	for (size_t i = 0; i < t->n && !member; i++)
		member = strcmp(t->members[i], sender) == 0;
	if (!member) {
		proxy_reply(r, 403, "Not a member of this topic", SV_NULL);
		return PROXY_DONE;
	}
	if (proxy_local_txn(r) == EEXIST)
		return PROXY_DONE;
	snprintf(to, sizeof(to), "<sip:%s>", key);
	for (size_t i = 0; i < t->n; i++) {
		int err;
		if (strcmp(t->members[i], sender) == 0)
			continue;
		/* online members get it at once and it is written only if that fails */
		enum home_cap cap;
		err = im_keep(h, t->members[i], r->m, sv_cstr(to), false, NULL, &cap);
		full += err == ENOSPC;
	}
	if (full)
		log_warn("topic %s: %zu members' stores are full; they miss a message", key, full);
	proxy_reply(r, 202, "Accepted: delivered to the topic", SV_NULL);
	return PROXY_DONE;
}

enum proxy_step im_handle_message(struct home *h, struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);

	if (ruri && im_is_topic_uri(h, ruri))
		return topic_message(h, r);
	return PROXY_CONTINUE; /* to a user: the proxy routes it (and calls back to store it) */
}

/* ------------------------------------------------------------ expiry, load */

/* Every stored message through drop(); those it returns true for are unlinked and freed. */
static void boxes_drop_each(struct home *h, bool (*drop)(struct im_box *, struct im_msg *, void *),
			    void *arg)
{
	for (size_t i = 0; i < HOME_BUCKETS; i++) {
		for (struct im_box *b = h->boxes[i], *next; b; b = next) {
			struct im_msg **pp = &b->head, *prev = NULL;
			next = b->hnext;
			while (*pp) {
				struct im_msg *m = *pp;
				if (!drop(b, m, arg)) {
					prev = m;
					pp = &m->next;
					continue;
				}
				*pp = m->next;
				if (b->tail == m)
					b->tail = prev;
				b->count--;
				b->strangers -= m->stranger;
				msg_free(h, m);
			}
			box_release_if_empty(b);
		}
	}
}

static bool drop_expired(struct im_box *b, struct im_msg *m, void *arg)
{
	int64_t now = *(const int64_t *)arg;

	if (m->expires > now || (m == b->head && b->inflight))
		return false;
	log_info("message for %s expired undelivered", b->aor);
	if (m->persisted) {
		char key[32];
		snprintf(key, sizeof(key), "%020" PRIu64, m->id);
		home_rec_del(b->home, STORE_REC_MESSAGE, key);
	}
	return true;
}

void im_sweep(struct home *h, int64_t now)
{
	boxes_drop_each(h, drop_expired, &now);
}

int im_id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct id_set {
	const uint64_t *ids;
	size_t n;
};

static bool drop_deleted(struct im_box *b, struct im_msg *m, void *arg)
{
	const struct id_set *set = arg;

	if (!m->persisted || bsearch(&m->id, set->ids, set->n, sizeof(*set->ids), im_id_cmp))
		return false;
	if (!m->deleted)
		log_info("stored message %020" PRIu64 " for %s deleted from the CLI", m->id,
			 b->aor);
	if (m == b->head && b->inflight) {
		m->deleted = true; /* its delivery ends it (box_done) */
		return false;
	}
	return true;
}

void im_drop_deleted(struct home *h, const uint64_t *ids, size_t n)
{
	struct id_set set = {ids, n};

	boxes_drop_each(h, drop_deleted, &set);
}

int im_load_message(struct home *h, const struct store_record *rec)
{
	struct im_box *b = box_get(h, rec->owner);
	struct im_msg *m = b ? msg_new(h, rec->meta, sv_make(rec->body, rec->body_len)) : NULL;
	sv_t source;

	if (!m)
		return ENOMEM;
	m->id = (uint64_t)rec->seq;
	m->expires = rec->expires;
	m->persisted = true;
	source = home_meta_get(rec->meta, "Stranger-Source");
	if (source.len) {
		char src[64], sender[HOME_AOR_MAX];
		if (sv_copy(source, src, sizeof(src)) ||
		    sv_copy(home_meta_get(rec->meta, "Stranger-Sender"), sender, sizeof(sender)))
			log_warn("stored message %" PRIu64 ": its stranger's source or sender is "
				 "longer than we write: not counted against that stranger",
				 m->id);
		else
			stranger_msg_count(h, m, src, sender);
	}
	if (m->id > h->next_msg_id)
		h->next_msg_id = m->id;
	box_append(h, b, m);
	return 0;
}

int im_load_topic(struct home *h, const struct store_record *rec)
{
	return im_topic_create(h, rec->key, false);
}

int im_load_member(struct home *h, const struct store_record *rec)
{
	const char *sp = strchr(rec->key, ' ');
	struct im_topic *t = im_topic_find(h, rec->owner);

	if (!sp || !t)
		return 0; /* a member of a topic that is gone */
	return member_add(h, t, sp + 1, false) == ENOMEM ? ENOMEM : 0;
}

void im_interest(struct home *h, uint64_t *bits)
{
	for (size_t i = 0; i < HOME_BUCKETS; i++) {
		for (struct im_box *b = h->boxes[i]; b; b = b->hnext) {
			if (b->count)
				home_interest_add(h, bits, b->aor);
		}
	}
}

void im_free_all(struct home *h)
{
	for (size_t i = 0; i < HOME_BUCKETS; i++) {
		for (struct im_box *b = h->boxes[i], *next; b; b = next) {
			next = b->hnext; /* a delivery in flight died with its worker */
			for (struct im_msg *m = b->head, *mn; m; m = mn) {
				mn = m->next;
				msg_free(h, m);
			}
			free(b);
		}
		h->boxes[i] = NULL;
	}
	for (struct im_topic *t = h->topics, *next; t; t = next) {
		next = t->next;
		topic_free(t);
	}
	h->topics = NULL;
}
