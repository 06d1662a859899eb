/*
 * dialog.c - the dialog table and state machine (see dialog.h): TRYING on a
 * forwarded INVITE, EARLY per To tag of a provisional response, CONFIRMED on
 * a 2xx (the other early dialogs of the fork end), TERMINATED on a BYE, a
 * failure, a CANCEL, a session-timer expiry or dialog.timeout. Ended
 * dialogs leave the table at once; their hooks have run.
 *
 * Persistence is a journal: a change worth keeping (confirmed, refreshed,
 * ended) serializes the dialog into a record on the worker and queues it;
 * the database thread writes the queue (dlg_flush) in one transaction.
 */
#include "dialog/dialog.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/siphash.h"
#include "store/store.h"

#define DLG_BUCKETS   4096
#define DLG_MAX_HOOKS 8
#define DLG_STR_MAX   1024 /* a header value, URI or route set kept (beyond: not tracked) */
#define DLG_ROUTE_MAX 2048

struct dlg_bucket {
	pthread_mutex_t lock;
	struct dlg *head;
};

/*
 * A write or a deletion queued for the database thread. A write names the
 * dialog only: the database thread composes the record from the dialog as
 * it is when it flushes (nothing is copied on the worker), and a dialog that
 * ended before that is never written (its deletion is dropped with it).
 */
enum dlg_jop { DLG_J_PUT, DLG_J_DEL };

struct dlg_journal {
	struct dlg_journal *next;
	uint64_t id;
	uint64_t hash; /* the dialog's bucket, for a write */
	enum dlg_jop op;
};

struct dlg_table {
	struct dlg_conf conf;
	struct siphash_key key;
	struct dlg_bucket b[DLG_BUCKETS];
	const struct dlg_hooks *hooks[DLG_MAX_HOOKS];
	unsigned nhooks;
	atomic_size_t live;
	atomic_uint_fast64_t created, confirmed, terminated, cap_hits, too_long, session_expired,
	    timed_out;
	atomic_int_fast64_t cap_logged_ms;
	pthread_mutex_t jlock;
	struct dlg_journal *jhead, **jtail;
};

const char *dlg_state_name(enum dlg_state s)
{
	switch (s) {
	case DLG_TRYING:
		return "trying";
	case DLG_EARLY:
		return "early";
	case DLG_CONFIRMED:
		return "confirmed";
	case DLG_TERMINATED:
		return "terminated";
	}
	return "?";
}

const char *dlg_end_name(enum dlg_end e)
{
	static const char *const names[] = {
	    [DLG_END_NONE] = "",
	    [DLG_END_BYE_CALLER] = "bye-caller",
	    [DLG_END_BYE_CALLEE] = "bye-callee",
	    [DLG_END_CANCEL] = "cancel",
	    [DLG_END_FAILURE] = "failure",
	    [DLG_END_FORK_LOST] = "fork-lost",
	    [DLG_END_SESSION_TIMER] = "session-timer",
	    [DLG_END_TIMEOUT] = "timeout",
	    [DLG_END_MEDIA_TIMEOUT] = "media-timeout",
	};
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

int dlg_table_create(const struct dlg_conf *conf, struct dlg_table **out)
{
	struct dlg_table *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return ENOMEM;
	t->conf = *conf;
	if (!t->conf.sdp_max)
		t->conf.sdp_max = 8192;
	if (!t->conf.early_max_s)
		t->conf.early_max_s = 600;
	err = siphash_key_random(&t->key);
	if (err) {
		free(t);
		return err;
	}
	for (size_t i = 0; i < DLG_BUCKETS; i++)
		pthread_mutex_init(&t->b[i].lock, NULL);
	pthread_mutex_init(&t->jlock, NULL);
	t->jtail = &t->jhead;
	*out = t;
	return 0;
}

static void side_free(struct dlg_side *s)
{
	free(s->naddr);
	free(s->tag);
	free(s->contact);
	free(s->route);
	free(s->sdp);
}

static void dlg_free(struct dlg *d)
{
	if (!d)
		return;
	free(d->callid);
	free(d->identity);
	free(d->ruri);
	side_free(&d->caller);
	side_free(&d->callee);
	free(d);
}

static void journal_free(struct dlg_journal *j)
{
	free(j);
}

void dlg_table_destroy(struct dlg_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < DLG_BUCKETS; i++) {
		struct dlg *d = t->b[i].head, *n;
		for (; d; d = n) {
			n = d->next;
			dlg_free(d);
		}
		pthread_mutex_destroy(&t->b[i].lock);
	}
	for (struct dlg_journal *j = t->jhead, *n; j; j = n) {
		n = j->next;
		journal_free(j);
	}
	pthread_mutex_destroy(&t->jlock);
	free(t);
}

int dlg_hooks_add(struct dlg_table *t, const struct dlg_hooks *h)
{
	if (t->nhooks == DLG_MAX_HOOKS)
		return ENOSPC;
	t->hooks[t->nhooks++] = h;
	return 0;
}

const struct dlg_conf *dlg_conf_of(const struct dlg_table *t)
{
	return &t->conf;
}

void dlg_stats_get(struct dlg_table *t, struct dlg_stats *o)
{
	o->created = atomic_load(&t->created);
	o->confirmed = atomic_load(&t->confirmed);
	o->terminated = atomic_load(&t->terminated);
	o->cap_hits = atomic_load(&t->cap_hits);
	o->too_long = atomic_load(&t->too_long);
	o->session_expired = atomic_load(&t->session_expired);
	o->timed_out = atomic_load(&t->timed_out);
	o->live = atomic_load(&t->live);
}

/*
 * Small helpers
 */
static uint64_t call_hash(const struct dlg_table *t, sv_t callid, sv_t ftag)
{
	struct siphash_state s;

	siphash_init(&s, &t->key, SIPHASH_1_3);
	siphash_update(&s, callid.p, callid.len);
	siphash_update_u64(&s, callid.len);
	siphash_update(&s, ftag.p, ftag.len);
	return siphash_final(&s);
}

static struct dlg_bucket *bucket_of(struct dlg_table *t, uint64_t h)
{
	return &t->b[h & (DLG_BUCKETS - 1)];
}

/* Replaces *dst with a copy of v; E2BIG beyond cap (the old value stays), ENOMEM. */
static int set_str(char **dst, sv_t v, size_t cap)
{
	char *n;

	if (v.len > cap)
		return E2BIG;
	if (*dst && strlen(*dst) == v.len && (!v.len || memcmp(*dst, v.p, v.len) == 0))
		return 0; /* the same (a 2xx repeating its 1xx): no copy */
	n = malloc(v.len + 1);
	if (!n)
		return ENOMEM;
	if (v.len)
		memcpy(n, v.p, v.len);
	n[v.len] = '\0';
	free(*dst);
	*dst = n;
	return 0;
}

static sv_t str_sv(const char *s)
{
	return s ? sv_cstr(s) : SV("");
}

static bool is_sdp(struct sip_msg *m)
{
	sv_t ct = sip_msg_value(m, SIP_H_CONTENT_TYPE);

	return m->body.len && ct.len >= 15 && sv_istarts(ct, SV("application/sdp"));
}

/* The first Contact URI of m, or empty. */
static sv_t contact_uri(struct sip_msg *m)
{
	struct sip_hdr_iter it;
	struct sip_naddr na;
	sv_t elem;

	sip_hdr_iter_init(&it, m, SIP_H_CONTACT);
	if (sip_hdr_iter_next(&it, &elem) && sip_naddr_parse(elem, &na, NULL) == 0)
		return na.uri;
	return SV_NULL;
}

/*
 * Record-Route values of m, comma-joined into b: all but the last drop_tail
 * values, in order or reversed; values of ours (our signature parameter
 * ";sb=") skipped. More than DLG_ROUTES values is EMSGSIZE in b->err.
 */
#define DLG_ROUTES 32
static void routes_join(struct sip_msg *m, unsigned drop_tail, bool reverse, struct buf *b)
{
	sv_t vals[DLG_ROUTES];
	unsigned n = 0, to;
	struct sip_hdr_iter it;
	sv_t elem;

	sip_hdr_iter_init(&it, m, SIP_H_RECORD_ROUTE);
	while (sip_hdr_iter_next(&it, &elem)) {
		if (n == DLG_ROUTES) {
			b->err = EMSGSIZE;
			return;
		}
		vals[n++] = elem;
	}
	to = n > drop_tail ? n - drop_tail : 0;
	for (unsigned k = 0; k < to; k++) {
		sv_t v = vals[reverse ? to - 1 - k : k];

		if (memmem(v.p, v.len, ";sb=", 4))
			continue;
		if (b->len)
			buf_append_str(b, ", ");
		buf_append_sv(b, v);
	}
}

static void run_hooks_state(struct dlg_table *t, struct dlg *d)
{
	for (unsigned i = 0; i < t->nhooks; i++) {
		const struct dlg_hooks *h = t->hooks[i];
		if (d->state == DLG_EARLY && h->on_early)
			h->on_early(h->arg, d);
		else if (d->state == DLG_CONFIRMED && h->on_confirmed)
			h->on_confirmed(h->arg, d);
		else if (d->state == DLG_TERMINATED && h->on_terminated)
			h->on_terminated(h->arg, d, d->end);
	}
}

/*
 * Persistence journal
 */
static void journal_push(struct dlg_table *t, struct dlg_journal *j)
{
	j->next = NULL;
	pthread_mutex_lock(&t->jlock);
	*t->jtail = j;
	t->jtail = &j->next;
	pthread_mutex_unlock(&t->jlock);
}

/* One "key: value" line of a stored record; `who` (caller/callee) prefixes the key when set. */
static void meta_str(struct buf *b, const char *who, const char *key, const char *val)
{
	if (who) {
		buf_append_str(b, who);
		buf_append_char(b, '-');
	}
	buf_append_str(b, key);
	buf_append(b, ": ", 2);
	buf_append_str(b, val);
	buf_append_char(b, '\n');
}

/* The same with a number (the record is written on every answer: no printf on the worker). */
static void meta_num(struct buf *b, const char *who, const char *key, int64_t v)
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
	meta_str(b, who, key, p);
}

static void side_meta(struct buf *b, const char *who, const struct dlg_side *s)
{
	meta_str(b, who, "naddr", str_sv(s->naddr).p);
	meta_str(b, who, "tag", str_sv(s->tag).p);
	meta_str(b, who, "contact", str_sv(s->contact).p);
	meta_str(b, who, "route", str_sv(s->route).p);
	meta_num(b, who, "cseq", s->cseq);
	meta_num(b, who, "sdp-len", (int64_t)str_sv(s->sdp).len);
}

/*
 * Queues the dialog's record (a confirmed dialog: written by the database
 * thread from the dialog as it then is) or its deletion (an ended one that
 * was queued or written). Bucket locked.
 */
static void persist(struct dlg_table *t, struct dlg *d)
{
	struct dlg_journal *j;

	if (d->state == DLG_TERMINATED
		? d->stored == DLG_STORED_NO
		: d->state != DLG_CONFIRMED || d->stored == DLG_STORED_QUEUED)
		return;
	j = malloc(sizeof(*j));
	if (!j) {
		log_err("dialog %s: not written to the store (out of memory)", d->callid);
		return;
	}
	*j = (struct dlg_journal){
	    .id = d->id, .hash = d->hash, .op = d->state == DLG_TERMINATED ? DLG_J_DEL : DLG_J_PUT};
	journal_push(t, j);
	d->stored = d->state == DLG_TERMINATED ? DLG_STORED_NO : DLG_STORED_QUEUED;
}

/*
 * State changes
 */
static void remove_dialog(struct dlg_table *t, struct dlg_bucket *b, struct dlg *d)
{
	for (struct dlg **pp = &b->head; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			atomic_fetch_sub(&t->live, 1);
			return;
		}
	}
}

/* Ends d (bucket locked): hooks, journal, out of the table, freed. */
static void terminate(struct dlg_table *t, struct dlg_bucket *b, struct dlg *d, enum dlg_end why,
		      int64_t now_ms)
{
	bool was_dialog = d->state != DLG_TRYING; /* a template leaves quietly */

	d->state = DLG_TERMINATED;
	d->end = why;
	d->end_ms = now_ms;
	if (was_dialog) {
		atomic_fetch_add(&t->terminated, 1);
		log_debug("dialog %s (%s): terminated, %s", d->callid, str_sv(d->callee.tag).p,
			  dlg_end_name(why));
		run_hooks_state(t, d);
	} else {
		for (unsigned i = 0; i < t->nhooks; i++)
			if (t->hooks[i]->on_attempt_end)
				t->hooks[i]->on_attempt_end(t->hooks[i]->arg, d, why);
	}
	persist(t, d);
	remove_dialog(t, b, d);
	dlg_free(d);
}

static struct dlg *find_call(struct dlg_bucket *b, uint64_t h, sv_t callid, sv_t ftag, sv_t ttag)
{
	for (struct dlg *d = b->head; d; d = d->next) {
		if (d->hash == h && sv_eq(str_sv(d->callid), callid) &&
		    sv_eq(str_sv(d->caller.tag), ftag) && sv_eq(str_sv(d->callee.tag), ttag))
			return d;
	}
	return NULL;
}

/* Any dialog of the call (Call-ID and From tag) still before its final answer. */
static struct dlg *find_unconfirmed(struct dlg_bucket *b, uint64_t h, sv_t callid, sv_t ftag)
{
	for (struct dlg *d = b->head; d; d = d->next) {
		if (d->hash == h && d->state < DLG_CONFIRMED && sv_eq(str_sv(d->callid), callid) &&
		    sv_eq(str_sv(d->caller.tag), ftag))
			return d;
	}
	return NULL;
}

static bool cap_hit(struct dlg_table *t, sv_t callid, int64_t now_ms)
{
	int64_t last;

	if (atomic_load(&t->live) < t->conf.max)
		return false;
	atomic_fetch_add(&t->cap_hits, 1);
	last = atomic_load(&t->cap_logged_ms);
	if (now_ms - last >= 10000 &&
	    atomic_compare_exchange_strong(&t->cap_logged_ms, &last, now_ms))
		log_warn("dialog table full (dialog.max %u): call %.*s is not tracked (%" PRIu64
			 " so far)",
			 t->conf.max, (int)callid.len, callid.p, atomic_load(&t->cap_hits));
	return true;
}

static struct dlg *dlg_new(struct dlg_table *t)
{
	struct dlg *d = calloc(1, sizeof(*d));
	struct siphash_state s;

	if (!d)
		return NULL;
	siphash_init(&s, &t->key, SIPHASH_2_4);
	siphash_update_u64(&s, atomic_fetch_add(&t->created, 1));
	siphash_update_u64(&s, (uint64_t)(uintptr_t)d);
	d->id = siphash_final(&s) | 1; /* never 0: a flush's id sets use 0 as "free" */
	return d;
}

static void side_set_sdp(struct dlg_table *t, struct dlg_side *s, struct sip_msg *m)
{
	if (!is_sdp(m))
		return;
	if (m->body.len > t->conf.sdp_max) {
		atomic_fetch_add(&t->too_long, 1);
		log_info("SDP of %zu bytes beyond dialog.sdp_max (%zu): not kept", m->body.len,
			 t->conf.sdp_max);
		return;
	}
	set_str(&s->sdp, m->body, t->conf.sdp_max);
}

int dlg_on_invite(struct dlg_table *t, struct sip_msg *m, const struct tp_src *src, unsigned owner,
		  const char *identity, int64_t now_ms)
{
	const struct sip_naddr *from = sip_msg_from(m), *to = sip_msg_to(m);
	const struct sip_cseq *cs = sip_msg_cseq(m);
	sv_t callid = sip_msg_callid(m);
	struct dlg_bucket *b;
	struct dlg *d;
	struct buf rb;
	uint64_t h;
	int err = 0;

	if (!from || !to || !cs || !from->tag.len || !callid.len)
		return EINVAL;
	h = call_hash(t, callid, from->tag);
	b = bucket_of(t, h);
	pthread_mutex_lock(&b->lock);
	d = find_unconfirmed(b, h, callid, from->tag);
	if (d) {
		/* a new INVITE of the same call before the last one's answer (a 422 retry) */
		d->invite_cseq = cs->num;
		d->caller.cseq = cs->num;
		side_set_sdp(t, &d->caller, m);
		goto out;
	}
	if (cap_hit(t, callid, now_ms)) {
		err = ENOSPC;
		goto out;
	}
	d = dlg_new(t);
	if (!d) {
		err = ENOMEM;
		goto out;
	}
	d->hash = h;
	d->state = DLG_TRYING;
	d->owner = owner;
	d->start_ms = now_ms;
	d->activity_ms = now_ms;
	d->invite_cseq = cs->num;
	d->caller.cseq = cs->num;
	d->caller.addr = src->peer;
	d->caller.conn_id = src->conn_id;
	buf_init(&rb, DLG_ROUTE_MAX);
	/* the Record-Route values of the proxies between the caller and us, nearest first */
	routes_join(m, 0, false, &rb);
	err = set_str(&d->callid, callid, DLG_STR_MAX);
	if (!err)
		err = set_str(&d->identity, str_sv(identity), DLG_STR_MAX);
	if (!err)
		err = set_str(&d->ruri, m->ruri_raw, DLG_STR_MAX);
	if (!err)
		err = set_str(&d->caller.naddr, from->raw, DLG_STR_MAX);
	if (!err)
		err = set_str(&d->caller.tag, from->tag, DLG_STR_MAX);
	if (!err)
		err = set_str(&d->caller.contact, contact_uri(m), DLG_STR_MAX);
	if (!err)
		err = set_str(&d->caller.route, rb.err ? SV_NULL : buf_sv(&rb), DLG_ROUTE_MAX);
	if (!err)
		err = rb.err ? E2BIG : 0;
	if (!err)
		err = set_str(&d->callee.naddr, to->raw, DLG_STR_MAX);
	if (!err)
		err = set_str(&d->callee.tag, SV_NULL, 0);
	buf_free(&rb);
	if (err) {
		if (err == E2BIG)
			atomic_fetch_add(&t->too_long, 1);
		dlg_free(d);
		goto out;
	}
	side_set_sdp(t, &d->caller, m);
	d->next = b->head;
	b->head = d;
	atomic_fetch_add(&t->live, 1);
out:
	pthread_mutex_unlock(&b->lock);
	return err;
}

/* The dialog for To tag ttag: found, or copied from the INVITE's TRYING template. */
static struct dlg *dialog_for_tag(struct dlg_table *t, struct dlg_bucket *b, uint64_t h,
				  sv_t callid, sv_t ftag, sv_t ttag, int64_t now_ms)
{
	struct dlg *d = find_call(b, h, callid, ftag, ttag), *proto, *n;

	if (d)
		return d;
	proto = find_call(b, h, callid, ftag, SV(""));
	if (!proto || proto->state != DLG_TRYING || cap_hit(t, callid, now_ms))
		return NULL;
	n = dlg_new(t);
	if (!n)
		return NULL;
	n->hash = h;
	n->state = DLG_TRYING;
	n->owner = proto->owner;
	n->start_ms = proto->start_ms;
	n->activity_ms = now_ms;
	n->invite_cseq = proto->invite_cseq;
	n->caller.cseq = proto->caller.cseq;
	n->caller.addr = proto->caller.addr;
	n->caller.conn_id = proto->caller.conn_id;
	if (set_str(&n->callid, str_sv(proto->callid), DLG_STR_MAX) ||
	    set_str(&n->identity, str_sv(proto->identity), DLG_STR_MAX) ||
	    set_str(&n->ruri, str_sv(proto->ruri), DLG_STR_MAX) ||
	    set_str(&n->caller.naddr, str_sv(proto->caller.naddr), DLG_STR_MAX) ||
	    set_str(&n->caller.tag, ftag, DLG_STR_MAX) ||
	    set_str(&n->caller.contact, str_sv(proto->caller.contact), DLG_STR_MAX) ||
	    set_str(&n->caller.route, str_sv(proto->caller.route), DLG_ROUTE_MAX) ||
	    set_str(&n->caller.sdp, str_sv(proto->caller.sdp), t->conf.sdp_max) ||
	    set_str(&n->callee.naddr, str_sv(proto->callee.naddr), DLG_STR_MAX) ||
	    set_str(&n->callee.tag, ttag, DLG_STR_MAX)) {
		dlg_free(n);
		return NULL;
	}
	proto->forked = true;
	n->next = b->head;
	b->head = n;
	atomic_fetch_add(&t->live, 1);
	return n;
}

/* Session-Expires of m: the interval, and whether the UAS refreshes; 0 when absent. */
static unsigned session_expires_of(struct sip_msg *m, bool *refresher_uas)
{
	struct sip_hdr *h = sip_msg_hdr_by_name(m, SV("Session-Expires"));
	sv_t v, params;
	uint32_t n;
	ptrdiff_t semi;

	if (!h)
		h = sip_msg_hdr_by_name(m, SV("x"));
	if (!h)
		return 0;
	v = h->value;
	semi = sv_find(v, ';');
	params = semi < 0 ? SV_NULL : sv_sub(v, (size_t)semi + 1, v.len);
	if (semi >= 0)
		v = sv_sub(v, 0, (size_t)semi);
	if (sv_to_u32(sv_trim(v), &n) || n == 0)
		return 0;
	if (refresher_uas) {
		sv_t r;
		*refresher_uas =
		    sip_param_find(params, SV("refresher"), &r) && sv_ieq(r, SV("uas"));
	}
	return n;
}

/* A 2xx to an INVITE or UPDATE: the session interval from now on (RFC 4028 section 9). */
static void session_refresh(struct dlg_table *t, struct dlg *d, struct sip_msg *resp,
			    int64_t now_ms)
{
	bool uas = false;
	unsigned se = session_expires_of(resp, &uas);

	if (se && se < t->conf.min_se)
		se = t->conf.min_se; /* an answer below our minimum does not end the call sooner */
	d->session_expires = se;
	d->refresher_uas = uas;
	d->expires_ms = se ? now_ms + (int64_t)se * 1000 : 0;
}

/* A re-INVITE or UPDATE answered 2xx: the answering side's SDP, the session timer, the hooks. */
static void dialog_updated(struct dlg_table *t, struct dlg *d, struct dlg_side *answerer,
			   struct sip_msg *resp, uint32_t cseq, int64_t now_ms)
{
	d->updated_cseq = cseq;
	side_set_sdp(t, answerer, resp);
	session_refresh(t, d, resp, now_ms);
	for (unsigned i = 0; i < t->nhooks; i++) {
		if (t->hooks[i]->on_update)
			t->hooks[i]->on_update(t->hooks[i]->arg, d,
					       is_sdp(resp) ? resp->body : SV_NULL);
	}
	persist(t, d);
}

/* A branch's failure final: the hooks hear of it on the call's template (failover history). */
static void branch_failed(struct dlg_table *t, const struct dlg *tmpl, unsigned st, uint32_t cseq,
			  const char *gateway, const struct tp_dest *dest)
{
	if (!tmpl || tmpl->state != DLG_TRYING || tmpl->invite_cseq != cseq)
		return;
	for (unsigned i = 0; i < t->nhooks; i++)
		if (t->hooks[i]->on_branch_failed)
			t->hooks[i]->on_branch_failed(t->hooks[i]->arg, tmpl, st,
						      gateway ? gateway : "",
						      dest ? &dest->peer : NULL);
}

int dlg_on_response(struct dlg_table *t, struct sip_msg *resp, const struct tp_dest *branch_dest,
		    const char *gateway, int64_t now_ms)
{
	const struct sip_naddr *from = sip_msg_from(resp), *to = sip_msg_to(resp);
	const struct sip_cseq *cs = sip_msg_cseq(resp);
	sv_t callid = sip_msg_callid(resp);
	unsigned st = resp->status;
	struct dlg_bucket *b;
	struct dlg *d;
	uint64_t h;
	int err = 0;

	if (!from || !to || !cs || !callid.len || st <= 100)
		return EINVAL;
	if (cs->method != SIP_INVITE && cs->method != SIP_UPDATE)
		return 0;
	h = call_hash(t, callid, from->tag);
	b = bucket_of(t, h);
	pthread_mutex_lock(&b->lock);
	/* in dialog: a re-INVITE or UPDATE of the caller (From tag = ours) */
	d = to->tag.len ? find_call(b, h, callid, from->tag, to->tag) : NULL;
	if (d && d->state == DLG_CONFIRMED) {
		/* not the initial INVITE's 2xx again, nor a retransmission of this one's */
		if (st >= 200 && st < 300 && cs->num != d->invite_cseq &&
		    cs->num != d->updated_cseq) {
			dialog_updated(t, d, &d->callee, resp, cs->num, now_ms);
		}
		goto out;
	}
	if (!d && to->tag.len && cs->method == SIP_INVITE &&
	    find_unconfirmed(b, h, callid, from->tag))
		d = NULL; /* the initial INVITE's answer (the usual case): below */
	else if (!d && to->tag.len) {
		/* the callee's re-INVITE: its From tag is the dialog's To tag */
		uint64_t h1 = h, h2 = call_hash(t, callid, to->tag);
		if (h2 != h) {
			pthread_mutex_unlock(&b->lock);
			h = h2;
			b = bucket_of(t, h);
			pthread_mutex_lock(&b->lock);
		}
		d = find_call(b, h, callid, to->tag, from->tag);
		if (d && d->state == DLG_CONFIRMED && st >= 200 && st < 300 &&
		    cs->num != d->updated_cseq) {
			dialog_updated(t, d, &d->caller, resp, cs->num, now_ms);
		}
		if (d)
			goto out;
		/* not in dialog: back to the caller's bucket */
		if (h1 != h) {
			pthread_mutex_unlock(&b->lock);
			h = h1;
			b = bucket_of(t, h);
			pthread_mutex_lock(&b->lock);
		}
	}
	if (cs->method != SIP_INVITE)
		goto out;
	/* the initial INVITE */
	if (st < 300) {
		enum dlg_state before;
		struct buf rb;
		unsigned n_up;
		if (!to->tag.len)
			goto out; /* no dialog without a To tag */
		d = dialog_for_tag(t, b, h, callid, from->tag, to->tag, now_ms);
		if (!d || cs->num != d->invite_cseq) {
			err = d ? 0 : ENOENT;
			goto out;
		}
		before = d->state;
		if (before == DLG_CONFIRMED)
			goto out; /* a 2xx retransmission */
		set_str(&d->callee.naddr, to->raw, DLG_STR_MAX);
		set_str(&d->callee.contact, contact_uri(resp), DLG_STR_MAX);
		/* the proxies between us and the callee: the Record-Route values above those the
		 * INVITE brought (and ours), nearest first */
		n_up = 0;
		for (const char *p = str_sv(d->caller.route).p; *p; p++)
			n_up += *p == ',' ? 1 : 0;
		n_up += d->caller.route && d->caller.route[0] ? 1 : 0;
		buf_init(&rb, DLG_ROUTE_MAX);
		routes_join(resp, n_up, true, &rb);
		if (!rb.err)
			set_str(&d->callee.route, buf_sv(&rb), DLG_ROUTE_MAX);
		buf_free(&rb);
		if (branch_dest) {
			d->callee.addr = branch_dest->peer;
			d->callee.conn_id = branch_dest->conn_id;
		}
		if (gateway && gateway[0])
			snprintf(d->gateway, sizeof(d->gateway), "%s", gateway);
		side_set_sdp(t, &d->callee, resp);
		d->status = st;
		if (st < 200) {
			if (before == DLG_TRYING) {
				d->state = DLG_EARLY;
				run_hooks_state(t, d);
			}
			goto out;
		}
		d->state = DLG_CONFIRMED;
		d->answer_ms = now_ms;
		d->activity_ms = now_ms;
		atomic_fetch_add(&t->confirmed, 1);
		session_refresh(t, d, resp, now_ms);
		log_debug("dialog %s (%s): confirmed", d->callid, d->callee.tag);
		run_hooks_state(t, d);
		persist(t, d);
		/* the other early dialogs of the fork are over */
		for (struct dlg *o = b->head, *n; o; o = n) {
			n = o->next;
			if (o != d && o->hash == h && o->state < DLG_CONFIRMED &&
			    sv_eq(str_sv(o->callid), callid) &&
			    sv_eq(str_sv(o->caller.tag), from->tag)) {
				bool tmpl = o->state == DLG_TRYING; /* the attempt ends: answered */

				if (tmpl)
					o->status = st;
				terminate(t, b, o, tmpl ? DLG_END_NONE : DLG_END_FORK_LOST, now_ms);
			}
		}
		goto out;
	}
	/* a failure final of one branch: its early dialog ends (the call goes on until the
	 * proxy sends its own final, dlg_on_invite_final) */
	d = to->tag.len ? find_call(b, h, callid, from->tag, to->tag) : NULL;
	if (d && d->state == DLG_EARLY && d->invite_cseq == cs->num) {
		d->status = st;
		terminate(t, b, d, st == 487 ? DLG_END_CANCEL : DLG_END_FAILURE, now_ms);
	} else {
		branch_failed(t, find_call(b, h, callid, from->tag, SV("")), st, cs->num, gateway,
			      branch_dest);
	}
out:
	pthread_mutex_unlock(&b->lock);
	return err;
}

int dlg_on_invite_final(struct dlg_table *t, sv_t callid, sv_t from_tag, unsigned status,
			int64_t now_ms)
{
	uint64_t h = call_hash(t, callid, from_tag);
	struct dlg_bucket *b = bucket_of(t, h);

	if (status < 300)
		return 0;
	pthread_mutex_lock(&b->lock);
	for (struct dlg *o = b->head, *n; o; o = n) {
		n = o->next;
		if (o->hash == h && o->state < DLG_CONFIRMED && sv_eq(str_sv(o->callid), callid) &&
		    sv_eq(str_sv(o->caller.tag), from_tag)) {
			o->status = status;
			terminate(t, b, o, status == 487 ? DLG_END_CANCEL : DLG_END_FAILURE,
				  now_ms);
		}
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int dlg_media_set(struct dlg_table *t, sv_t callid, sv_t from_tag, sv_t to_tag,
		  const struct dlg_media *m)
{
	uint64_t h = call_hash(t, callid, from_tag);
	struct dlg_bucket *b = bucket_of(t, h);
	int err = ENOENT;

	pthread_mutex_lock(&b->lock);
	for (struct dlg *d = b->head; d; d = d->next) {
		if (d->hash != h || !sv_eq(str_sv(d->callid), callid) ||
		    !sv_eq(str_sv(d->caller.tag), from_tag) ||
		    (to_tag.len && !sv_eq(str_sv(d->callee.tag), to_tag)))
			continue;
		d->media = *m;
		err = 0;
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

int dlg_on_request(struct dlg_table *t, struct sip_msg *m, int64_t now_ms)
{
	const struct sip_naddr *from = sip_msg_from(m), *to = sip_msg_to(m);
	const struct sip_cseq *cs = sip_msg_cseq(m);
	sv_t callid = sip_msg_callid(m);
	struct dlg_bucket *b;
	struct dlg_side *s;
	struct dlg *d;
	bool by_caller = true;
	uint64_t h;

	if (!from || !to || !cs || !callid.len || !to->tag.len)
		return EINVAL;
	h = call_hash(t, callid, from->tag);
	b = bucket_of(t, h);
	pthread_mutex_lock(&b->lock);
	d = find_call(b, h, callid, from->tag, to->tag);
	if (!d) {
		pthread_mutex_unlock(&b->lock);
		h = call_hash(t, callid, to->tag);
		b = bucket_of(t, h);
		pthread_mutex_lock(&b->lock);
		d = find_call(b, h, callid, to->tag, from->tag);
		by_caller = false;
	}
	if (!d) {
		pthread_mutex_unlock(&b->lock);
		return ENOENT;
	}
	s = by_caller ? &d->caller : &d->callee;
	if (m->method != SIP_ACK && m->method != SIP_CANCEL && cs->num > s->cseq)
		s->cseq = cs->num;
	d->activity_ms = now_ms;
	if (m->method == SIP_BYE) {
		terminate(t, b, d, by_caller ? DLG_END_BYE_CALLER : DLG_END_BYE_CALLEE, now_ms);
	} else if (m->method == SIP_INVITE || m->method == SIP_UPDATE || m->method == SIP_ACK) {
		side_set_sdp(t, s, m); /* an offer (or, in an ACK, an answer) */
		if (m->method == SIP_INVITE || m->method == SIP_UPDATE) {
			sv_t c = contact_uri(m);
			if (c.len)
				set_str(&s->contact, c, DLG_STR_MAX); /* a target refresh */
		}
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

unsigned dlg_session_too_brief(const struct dlg_table *t, struct sip_msg *m)
{
	unsigned se = session_expires_of(m, NULL);

	return se && t->conf.session_expires && se < t->conf.min_se ? t->conf.min_se : 0;
}

size_t dlg_session_expires_line(const struct dlg_table *t, struct sip_msg *m, char *out, size_t len)
{
	unsigned se = t->conf.session_expires, minse = t->conf.min_se;
	struct sip_hdr *h;
	uint32_t n;
	int r;

	out[0] = '\0';
	if (!se || session_expires_of(m, NULL))
		return 0;
	h = sip_msg_hdr_by_name(m, SV("Min-SE"));
	if (h) {
		sv_t v = h->value;
		ptrdiff_t semi = sv_find(v, ';');
		if (semi >= 0)
			v = sv_sub(v, 0, (size_t)semi);
		if (sv_to_u32(sv_trim(v), &n) == 0 && n > minse)
			minse = n; /* what a 422 asked for, as the caller's retry carries it */
	}
	if (se < minse)
		se = minse;
	r = snprintf(out, len, "Session-Expires: %u\r\n", se);
	if (r < 0 || (size_t)r >= len) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)r;
}

/* The number at the front of header name's value ("90;x" -> 90), 0 when none. */
static uint32_t header_u32(struct sip_msg *m, sv_t name)
{
	struct sip_hdr *h = sip_msg_hdr_by_name(m, name);
	uint32_t n;
	sv_t v;
	ptrdiff_t semi;

	if (!h)
		return 0;
	v = h->value;
	semi = sv_find(v, ';');
	if (semi >= 0)
		v = sv_sub(v, 0, (size_t)semi);
	return sv_to_u32(sv_trim(v), &n) == 0 ? n : 0;
}

size_t dlg_session_expires_retry(const struct dlg_table *t, struct sip_msg *resp, char *out,
				 size_t len)
{
	uint32_t minse = header_u32(resp, SV("Min-SE")), cur = 0;
	sv_t v = sv_cstr(out);
	int r;

	(void)t;
	if (sv_istarts(v, SV("Session-Expires: ")))
		sv_to_u32(
		    sv_sub(v, 17, (size_t)(strchr(out, '\r') ? strchr(out, '\r') - out - 17 : 0)),
		    &cur);
	if (!minse || minse <= cur || minse > 86400)
		return 0;
	r = snprintf(out, len, "Session-Expires: %u\r\nMin-SE: %u\r\n", minse, minse);
	if (r < 0 || (size_t)r >= len) {
		out[0] = '\0';
		return 0;
	}
	return (size_t)r;
}

void dlg_sweep(struct dlg_table *t, int64_t now_ms, dlg_end_fn end, void *arg)
{
	int64_t idle = (int64_t)t->conf.timeout_s * 1000,
		early = (int64_t)t->conf.early_max_s * 1000;

	for (size_t i = 0; i < DLG_BUCKETS; i++) {
		struct dlg_bucket *b = &t->b[i];
		if (!b->head)
			continue; /* a racy peek: a dialog added now is looked at next time */
		pthread_mutex_lock(&b->lock);
		for (struct dlg *d = b->head, *n; d; d = n) {
			n = d->next;
			if (d->state < DLG_CONFIRMED) {
				if (now_ms - d->start_ms >= early)
					terminate(t, b, d, DLG_END_TIMEOUT, now_ms);
				continue;
			}
			if (d->expires_ms && now_ms >= d->expires_ms) {
				atomic_fetch_add(&t->session_expired, 1);
				log_info(
				    "dialog %s: session expired (%u s without a refresh): BYE to "
				    "both sides",
				    d->callid, d->session_expires);
				d->state = DLG_TERMINATED;
				d->end = DLG_END_SESSION_TIMER;
				if (end)
					end(arg, d);
				terminate(t, b, d, DLG_END_SESSION_TIMER, now_ms);
			} else if (idle && now_ms - d->activity_ms >= idle) {
				atomic_fetch_add(&t->timed_out, 1);
				log_info(
				    "dialog %s: no in-dialog request for %u s (dialog.timeout): "
				    "BYE to both sides",
				    d->callid, t->conf.timeout_s);
				d->state = DLG_TERMINATED;
				d->end = DLG_END_TIMEOUT;
				if (end)
					end(arg, d);
				terminate(t, b, d, DLG_END_TIMEOUT, now_ms);
			}
		}
		pthread_mutex_unlock(&b->lock);
	}
}

int dlg_end_call(struct dlg_table *t, sv_t callid, sv_t from_tag, enum dlg_end why, dlg_end_fn end,
		 void *arg, int64_t now_ms)
{
	uint64_t h = call_hash(t, callid, from_tag);
	struct dlg_bucket *b = bucket_of(t, h);
	int rc = ENOENT;

	pthread_mutex_lock(&b->lock);
	for (struct dlg *d = b->head, *n; d; d = n) {
		n = d->next;
		if (d->hash != h || d->state != DLG_CONFIRMED ||
		    !sv_eq(sv_cstr(d->callid), callid) || !sv_eq(str_sv(d->caller.tag), from_tag))
			continue;
		d->state = DLG_TERMINATED;
		d->end = why;
		if (end)
			end(arg, d);
		terminate(t, b, d, why, now_ms);
		rc = 0;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void dlg_foreach(struct dlg_table *t, dlg_each_fn fn, void *arg)
{
	for (size_t i = 0; i < DLG_BUCKETS; i++) {
		struct dlg_bucket *b = &t->b[i];
		int stop = 0;
		if (!b->head)
			continue;
		pthread_mutex_lock(&b->lock);
		for (struct dlg *d = b->head; d && !stop; d = d->next)
			stop = fn(arg, d);
		pthread_mutex_unlock(&b->lock);
		if (stop)
			return;
	}
}

/* Where a request to this side goes: the first Route's numeric host, else its address. */
static void side_dest(const struct dlg_side *s, struct tp_dest *dest)
{
	memset(dest, 0, sizeof(*dest));
	dest->peer = s->addr;
	dest->conn_id = s->conn_id;
	dest->listen = -1;
	if (s->route && s->route[0]) {
		struct sip_naddr na;
		struct sip_uri u;
		sv_t rest = sv_cstr(s->route);
		struct tp_addr a;
		if (sip_naddr_parse(sip_list_split(&rest), &na, NULL) == 0 &&
		    sip_uri_parse(na.uri, &u) == 0 &&
		    tp_addr_from_sv(u.host, u.port ? u.port : 5060,
				    sv_ieq(u.transport, SV("tcp")) ? SIP_PROTO_TCP : SIP_PROTO_UDP,
				    &a) == 0) {
			dest->peer = a;
			dest->conn_id = 0;
		}
	}
}

int dlg_build_bye(const struct dlg *d, bool to_caller, sv_t via, struct buf *out,
		  struct tp_dest *dest)
{
	const struct dlg_side *to = to_caller ? &d->caller : &d->callee;
	const struct dlg_side *from = to_caller ? &d->callee : &d->caller;
	const char *ruri = to->contact && to->contact[0] ? to->contact : NULL;

	if (!ruri || !from->naddr || !to->naddr)
		return EINVAL;
	buf_reset(out);
	buf_printf(out, "BYE %s SIP/2.0\r\n", ruri);
	buf_append_sv(out, via);
	buf_append_str(out, "Max-Forwards: 70\r\n");
	if (to->route && to->route[0])
		buf_printf(out, "Route: %s\r\n", to->route);
	buf_printf(out, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %" PRIu32 " BYE\r\n",
		   from->naddr, to->naddr, d->callid, from->cseq + 1);
	if (d->end == DLG_END_SESSION_TIMER)
		buf_append_str(out, "Reason: SIP;cause=408;text=\"Session timer expired\"\r\n");
	else if (d->end == DLG_END_MEDIA_TIMEOUT)
		buf_append_str(out, "Reason: SIP;cause=408;text=\"Media timeout\"\r\n");
	else
		buf_append_str(out, "Reason: SIP;cause=408;text=\"Dialog timed out\"\r\n");
	buf_append_str(out, "Content-Length: 0\r\n\r\n");
	side_dest(to, dest);
	return out->err ? ENOSPC : 0;
}

/*
 * Persistence
 */
struct dlg_load {
	struct dlg_table *t;
	int64_t now_ms;
	size_t n;
};

static sv_t meta_get(const char *meta, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = meta; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl + 1 && memcmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ')
			return sv_make(p + nl + 2, len - nl - 2);
		p = eol ? eol + 1 : NULL;
	}
	return SV("");
}

static int64_t meta_i64(const char *meta, const char *name)
{
	sv_t v = meta_get(meta, name);
	char tmp[32];

	if (sv_copy(v, tmp, sizeof(tmp)))
		return 0;
	return strtoll(tmp, NULL, 10);
}

static int load_side(struct dlg_side *s, const char *meta, const char *who, sv_t *body,
		     size_t sdp_max)
{
	char name[32];
	int err = 0;
	int64_t sdp_len;
	sv_t addr;

#define SIDE(f, field, cap)                                                                        \
	snprintf(name, sizeof(name), "%s-%s", who, f);                                             \
	if (!err)                                                                                  \
		err = set_str(&s->field, meta_get(meta, name), cap);
	SIDE("naddr", naddr, DLG_STR_MAX)
	SIDE("tag", tag, DLG_STR_MAX)
	SIDE("contact", contact, DLG_STR_MAX)
	SIDE("route", route, DLG_ROUTE_MAX)
#undef SIDE
	snprintf(name, sizeof(name), "%s-cseq", who);
	s->cseq = (uint32_t)meta_i64(meta, name);
	snprintf(name, sizeof(name), "%s-addr", who);
	addr = meta_get(meta, name);
	if (addr.len)
		tp_addr_parse(addr, &s->addr);
	snprintf(name, sizeof(name), "%s-sdp-len", who);
	sdp_len = meta_i64(meta, name);
	if (sdp_len < 0 || (size_t)sdp_len > body->len || (size_t)sdp_len > sdp_max)
		sdp_len = 0;
	if (!err)
		err = set_str(&s->sdp, sv_sub(*body, 0, (size_t)sdp_len), sdp_max);
	*body = sv_sub(*body, (size_t)sdp_len, body->len);
	return err;
}

static int load_one(void *arg, const struct store_record *r)
{
	struct dlg_load *l = arg;
	struct dlg_table *t = l->t;
	struct dlg *d = dlg_new(t);
	sv_t body = sv_make(r->body, r->body_len);
	struct dlg_bucket *b;
	int err;

	if (!d)
		return ENOMEM;
	atomic_fetch_sub(&t->created, 1); /* dlg_new counts: a loaded one was counted before */
	d->id = strtoull(r->key, NULL, 16);
	d->state = DLG_CONFIRMED;
	d->stored = DLG_STORED_YES;
	/* an id of 0 is not one of ours */
	err = d->id ? set_str(&d->callid, meta_get(r->meta, "callid"), DLG_STR_MAX) : EINVAL;
	if (!err)
		err = set_str(&d->identity, meta_get(r->meta, "identity"), DLG_STR_MAX);
	if (!err)
		err = set_str(&d->ruri, meta_get(r->meta, "ruri"), DLG_STR_MAX);
	if (!err)
		err = load_side(&d->caller, r->meta, "caller", &body, t->conf.sdp_max);
	if (!err)
		err = load_side(&d->callee, r->meta, "callee", &body, t->conf.sdp_max);
	if (err || !d->callid[0] || !d->caller.tag[0] || !d->callee.tag[0]) {
		log_warn("dialog record %s unreadable: skipped", r->key);
		dlg_free(d);
		return 0;
	}
	d->start_ms = meta_i64(r->meta, "start");
	d->answer_ms = meta_i64(r->meta, "answer");
	d->activity_ms = l->now_ms;
	d->status = (unsigned)meta_i64(r->meta, "status");
	sv_copy(meta_get(r->meta, "gateway"), d->gateway, sizeof(d->gateway)) ? d->gateway[0] = 0
									      : 0;
	d->owner = (unsigned)meta_i64(r->meta, "owner");
	d->invite_cseq = (uint32_t)meta_i64(r->meta, "invite-cseq");
	d->session_expires = (unsigned)meta_i64(r->meta, "session-expires");
	d->refresher_uas = sv_eq(meta_get(r->meta, "refresher"), SV("uas"));
	d->expires_ms = meta_i64(r->meta, "expires");
	d->hash = call_hash(t, str_sv(d->callid), str_sv(d->caller.tag));
	b = bucket_of(t, d->hash);
	pthread_mutex_lock(&b->lock);
	if (find_call(b, d->hash, str_sv(d->callid), str_sv(d->caller.tag),
		      str_sv(d->callee.tag))) {
		pthread_mutex_unlock(&b->lock);
		dlg_free(d);
		return 0;
	}
	d->next = b->head;
	b->head = d;
	atomic_fetch_add(&t->live, 1);
	pthread_mutex_unlock(&b->lock);
	l->n++;
	return 0;
}

int dlg_load(struct dlg_table *t, struct store *st, int64_t now_ms)
{
	struct dlg_load l = {.t = t, .now_ms = now_ms};
	int err = store_record_list(st, STORE_REC_DIALOG, NULL, load_one, &l);

	if (!err && l.n)
		log_info("%zu dialogs in progress loaded from the store", l.n);
	return err;
}

/*
 * The record of a confirmed dialog (bucket locked, on the database thread):
 * "key: value" lines in r->meta (heap), both sides' SDP in r->body (heap).
 */
static int record_compose(const struct dlg *d, struct store_record *r)
{
	struct buf b, body;
	char addr[2][80];
	sv_t a = str_sv(d->caller.sdp), c = str_sv(d->callee.sdp);
	int err = 0;

	tp_addr_format(&d->caller.addr, addr[0], sizeof(addr[0]));
	tp_addr_format(&d->callee.addr, addr[1], sizeof(addr[1]));
	buf_init(&b, 1024);
	meta_str(&b, NULL, "callid", d->callid);
	meta_str(&b, NULL, "identity", str_sv(d->identity).p);
	meta_str(&b, NULL, "ruri", str_sv(d->ruri).p);
	meta_num(&b, NULL, "start", d->start_ms);
	meta_num(&b, NULL, "answer", d->answer_ms);
	meta_num(&b, NULL, "status", d->status);
	meta_str(&b, NULL, "gateway", d->gateway);
	meta_num(&b, NULL, "owner", d->owner);
	meta_num(&b, NULL, "invite-cseq", d->invite_cseq);
	meta_num(&b, NULL, "session-expires", d->session_expires);
	meta_str(&b, NULL, "refresher", d->refresher_uas ? "uas" : "uac");
	meta_num(&b, NULL, "expires", d->expires_ms);
	side_meta(&b, "caller", &d->caller);
	side_meta(&b, "callee", &d->callee);
	meta_str(&b, "caller", "addr", addr[0]);
	meta_str(&b, "callee", "addr", addr[1]);
	buf_cstr(&b);
	buf_init(&body, a.len + c.len + 1);
	buf_append(&body, a.p, a.len);
	buf_append(&body, c.p, c.len);
	buf_cstr(&body);
	if (b.err || body.err) {
		buf_free(&b);
		buf_free(&body);
		err = ENOMEM;
		goto out;
	}
	*r = (struct store_record){
	    .kind = STORE_REC_DIALOG,
	    .meta = b.p,
	    .body = body.p,
	    .body_len = a.len + c.len,
	    /* a record that outlives the server by far is purged: the
	       session expiry, or a day */
	    .expires = (d->expires_ms ? d->expires_ms : d->answer_ms) / 1000 + 86400};
	snprintf(r->key, sizeof(r->key), "%016" PRIx64, d->id);
	if (d->caller.naddr) {
		struct sip_naddr na;
		if (sip_naddr_parse(sv_cstr(d->caller.naddr), &na, NULL) == 0 &&
		    sv_copy(na.uri, r->owner, sizeof(r->owner)))
			r->owner[0] = '\0'; /* too long to be an owner: none */
	}
out:
	return err;
}

/* The ids a flush dealt with: open addressing, sized for the batch. */
struct dlg_idset {
	uint64_t *slot; /* 0 = free (ids are never 0) */
	size_t mask;
};

static int idset_init(struct dlg_idset *s, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap <<= 1;
	s->slot = calloc(cap, sizeof(*s->slot));
	s->mask = cap - 1;
	return s->slot ? 0 : ENOMEM;
}

/* Adds id; true when it was there already. */
static bool idset_add(struct dlg_idset *s, uint64_t id)
{
	size_t i = (size_t)(id ^ (id >> 29)) & s->mask;

	for (; s->slot[i]; i = (i + 1) & s->mask)
		if (s->slot[i] == id)
			return true;
	s->slot[i] = id;
	return false;
}

/*
 * One queued write: the dialog's record composed as it is now into r (its
 * meta and body to free), or *gone set when it ended before this flush (its
 * deletion, queued too, is dropped).
 */
static int flush_compose(struct dlg_table *t, const struct dlg_journal *j, struct store_record *r,
			 bool *gone)
{
	struct dlg_bucket *b = bucket_of(t, j->hash);
	struct dlg *d;
	int err = 0;

	*gone = true;
	pthread_mutex_lock(&b->lock);
	for (d = b->head; d && d->id != j->id; d = d->next)
		;
	if (d && d->state == DLG_CONFIRMED) {
		*gone = false;
		err = record_compose(d, r);
		if (!err)
			d->stored = DLG_STORED_YES;
	}
	pthread_mutex_unlock(&b->lock);
	return err;
}

/* One journal entry into the store (a transaction begun when the first one needs it). */
static int flush_one(struct dlg_table *t, struct store *st, const struct dlg_journal *j,
		     struct dlg_idset *written, struct dlg_idset *gone, bool *begun)
{
	struct store_record r = {0};
	char key[17];
	bool ended;
	int err = 0;

	if (j->op == DLG_J_PUT) {
		/* written once per flush, from the dialog as it is now */
		if (idset_add(written, j->id))
			goto out;
		err = flush_compose(t, j, &r, &ended);
		if (err || ended) {
			if (ended)
				idset_add(gone, j->id);
			goto out;
		}
	} else if (idset_add(gone, j->id)) {
		goto out; /* its write was queued in this batch and never made: nothing to delete */
	}
	if (!*begun) {
		if (store_begin(st)) {
			err = EIO;
			goto out;
		}
		*begun = true;
	}
	if (j->op == DLG_J_PUT) {
		err = store_record_put(st, &r);
	} else {
		snprintf(key, sizeof(key), "%016" PRIx64, j->id);
		err = store_record_del(st, STORE_REC_DIALOG, key);
		if (err == ENOENT)
			err = 0;
	}
out:
	free((char *)r.meta);
	free((char *)r.body);
	return err;
}

/* Does a hook write with the dialogs (dlg_hooks.on_flush)? */
static bool flush_hooked(const struct dlg_table *t)
{
	for (unsigned i = 0; i < t->nhooks; i++)
		if (t->hooks[i]->on_flush)
			return true;
	return false;
}

static void flush_done(struct dlg_table *t, bool committed)
{
	for (unsigned i = 0; i < t->nhooks; i++)
		if (t->hooks[i]->on_flush_done)
			t->hooks[i]->on_flush_done(t->hooks[i]->arg, committed);
}

int dlg_flush(struct dlg_table *t, struct store *st)
{
	struct dlg_journal *list, *n;
	struct dlg_idset written = {0}, gone = {0};
	size_t count = 0;
	bool begun = false;
	int err = 0;

	pthread_mutex_lock(&t->jlock);
	list = t->jhead;
	t->jhead = NULL;
	t->jtail = &t->jhead;
	pthread_mutex_unlock(&t->jlock);
	if (!list && !flush_hooked(t))
		return 0;
	for (struct dlg_journal *j = list; j; j = j->next)
		count++;
	if (idset_init(&written, count) || idset_init(&gone, count)) {
		err = ENOMEM;
		goto out;
	}
	for (struct dlg_journal *j = list; j && !err; j = j->next)
		err = flush_one(t, st, j, &written, &gone, &begun);
	/* what the hooks write goes in the same transaction, after the journal */
	for (unsigned i = 0; i < t->nhooks && !err; i++)
		if (t->hooks[i]->on_flush)
			err = t->hooks[i]->on_flush(t->hooks[i]->arg, st, &begun);
	if (!begun)
		goto out;
	if (err) {
		log_err("dialog write-behind: %s", store_errmsg(st));
		store_rollback(st);
		goto out;
	}
	if (store_commit(st)) {
		log_err("dialog write-behind commit: %s", store_errmsg(st));
		store_rollback(st);
		err = EIO;
	}
out:
	if (err && !begun)
		log_err("dialog write-behind: %s", strerror(err));
	for (; list; list = n) {
		n = list->next;
		journal_free(list);
	}
	free(written.slot);
	free(gone.slot);
	flush_done(t, begun && !err);
	return err;
}
