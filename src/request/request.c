/*
 * request.c - the request layer's own functions: which domains and URIs are
 * ours, the address-of-record key, who the caller is, and the continuation
 * a request waits in while the database answers a lookup (request.h).
 *
 * Why a continuation: a request that needs a subscriber the cache does not
 * hold used to be dropped and a copy delivered again, which ran the whole
 * pipeline once more (two digest checks for an uncached caller and callee,
 * and a transport flag that skipped the nonce-count check on the copy).
 * Now the request keeps its place: the pipeline's state and the message's
 * bytes move into one allocation its worker owns, and the pipeline goes on
 * from the handler that waited.
 */
#include "request/request.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "store/store.h"
#include "txn/txn.h"

/*
 * Is host (as a URI has it: an IPv6 reference without its brackets) the configured
 * domain d (IPv6 written "[...]", see cfg_domain_norm)? IPv6 addresses are compared
 * as addresses: [2001:DB8::10] and [2001:db8:0::10] are the same host.
 */
static bool host_is_domain(sv_t host, const char *d)
{
	size_t dl = strlen(d);
	char a[INET6_ADDRSTRLEN + 1], b[INET6_ADDRSTRLEN + 1];
	struct in6_addr x, y;

	if (dl < 2 || d[0] != '[' || d[dl - 1] != ']')
		return sv_ieq(host, sv_cstr(d));
	if (host.len && host.p[0] == '[' && host.p[host.len - 1] == ']')
		host = sv_sub(host, 1, host.len - 2);
	if (sv_copy(host, a, sizeof(a)) || dl - 2 >= sizeof(b))
		return false;
	memcpy(b, d + 1, dl - 2);
	b[dl - 2] = '\0';
	return inet_pton(AF_INET6, a, &x) == 1 && inet_pton(AF_INET6, b, &y) == 1 &&
	       memcmp(&x, &y, sizeof(x)) == 0;
}

bool proxy_domain_is_local(struct server *srv, sv_t host, uint16_t port)
{
	(void)port; /* a served domain is one whatever its port (alice@example.com:5060) */
	if (host.len > 1 && host.p[host.len - 1] == '.')
		host.len--; /* the root label: example.com. is example.com */
	for (size_t i = 0; i < srv->cfg.ndomains; i++) {
		if (host_is_domain(host, srv->cfg.domains[i]))
			return true;
	}
	/* the server's own addresses always name it (they are its domain when none is configured)
	 */
	return tp_is_local_ip(srv->tp, host);
}

bool proxy_uri_is_myself(struct server *srv, const struct sip_uri *u)
{
	if (u->kind != SIP_SCHEME_SIP && u->kind != SIP_SCHEME_SIPS)
		return false;
	if (tp_is_local_address(srv->tp, u->host, u->port))
		return true;
	if (u->user.len)
		return false;
	for (size_t i = 0; i < srv->cfg.ndomains; i++) {
		if (host_is_domain(u->host, srv->cfg.domains[i]))
			return true;
	}
	return false;
}

/* Octets an AOR's user part keeps as they are; any other is written %XX. */
static bool aor_user_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-_.!~*'()&=+$,;?/", c) != NULL);
}

/*
 * "user@host", the user part in one canonical spelling: unescaped, then
 * re-escaped where an octet is not a plain user character. sip:%75ser@h and
 * sip:user@h give the same AOR, and the result is a C string with exactly one
 * '@' even when the user part holds %00 or %40 (RFC 4475 escnull, semiuri).
 */
int proxy_aor_of(const struct sip_uri *u, char *out, size_t len)
{
	char user[STORE_USER_MAX];
	size_t ulen, n = 0;

	if ((u->kind != SIP_SCHEME_SIP && u->kind != SIP_SCHEME_SIPS) ||
	    u->user.len >= sizeof(user))
		return EINVAL;
	ulen = sip_unescape(u->user, user);
	for (size_t i = 0; i < ulen; i++) {
		unsigned char c = (unsigned char)user[i];
		if (n + 4 >= len)
			return ENOSPC;
		if (aor_user_char(c))
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, len - n, "%%%02X", c);
	}
	if (n + 1 + u->host.len + (u->host_v6 ? 2 : 0) >= len)
		return ENOSPC;
	out[n++] = '@';
	if (u->host_v6)
		out[n++] = '[';
	for (size_t i = 0; i < u->host.len; i++)
		out[n++] = sv_lower_char(u->host.p[i]);
	if (u->host_v6)
		out[n++] = ']';
	out[n] = '\0';
	return 0;
}

bool proxy_caller_known(const struct preq *r)
{
	return r->authenticated || r->trusted || (!r->srv->cfg.auth_enabled && r->from_local);
}

bool proxy_may_relay(const struct preq *r)
{
	return r->in_dialog || proxy_caller_known(r);
}

sv_t proxy_caller_user(struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct sip_uri u;

	if (!from || sip_uri_parse(from->uri, &u))
		return SV_NULL;
	return u.user;
}

/*
 * One suspended request: the job its lookup posts, the pipeline's state
 * (which begins with the preq), where it came from, and the message's bytes.
 * One allocation, so whoever holds the job when the server stops can free it.
 */
/*
 * A continuation's life:
 *   RESERVED  -> WAITING     the handler parked (proxy_suspended): bytes and state copied in
 *   RESERVED  -> (freed)     the handler did not wait after all (proxy_cont_free)
 *   WAITING   -> CANCELLED   a CANCEL matched it while it waited (proxy_waiting_cancel)
 *   WAITING, CANCELLED -> RUNNING   the lookup's answer came back (cont_resume)
 *   RUNNING   -> WAITING     a later handler waits again (proxy_wait), same continuation
 *   RUNNING   -> (freed)     at the end of the resume
 */
enum cont_state {
	CONT_RESERVED = 0, /* proxy_wait handed out the job; nothing copied yet */
	CONT_WAITING,	   /* handed to a lookup, not yet posted back */
	CONT_CANCELLED,	   /* waiting, and cancelled: 487 when it comes back */
	CONT_RUNNING,	   /* resumed: the pipeline runs from the handler that waited */
};

struct preq_cont {
	struct wjob job; /* first: the lookup posts it to the owning worker */
	struct worker *w;
	struct tp_src src;
	struct sip_msg msg;   /* the view of data, rebuilt at each resume */
	const char *old_base; /* where the bytes were when the request was received */
	unsigned resumes;
	enum cont_state state;
	bool keyed; /* in w->waiting under key */
	struct txn_key key;
	struct preq_cont *next_waiting;
	size_t len;				  /* message bytes */
	size_t ctx_len;				  /* pipeline state bytes */
	alignas(max_align_t) unsigned char ctx[]; /* ctx_len bytes (the preq first), then data */
};

static char *cont_data(struct preq_cont *c)
{
	return (char *)c->ctx + c->ctx_len;
}

#define WAITING_BUCKETS (sizeof(((struct worker *)0)->waiting) / sizeof(struct preq_cont *))

static bool key_same(const struct txn_key *a, const struct txn_key *b)
{
	return a->hash == b->hash && a->rfc3261 == b->rfc3261 && a->method == b->method &&
	       a->branch_len == b->branch_len && memcmp(a->branch, b->branch, a->branch_len) == 0;
}

static void waiting_remove(struct preq_cont *c)
{
	struct preq_cont **pp = &c->w->waiting[c->key.hash % WAITING_BUCKETS];

	for (; *pp; pp = &(*pp)->next_waiting) {
		if (*pp == c) {
			*pp = c->next_waiting;
			break;
		}
	}
	c->keyed = false;
}

static struct preq_cont *waiting_find(struct worker *w, const struct txn_key *k)
{
	struct preq_cont *c = w->waiting[k->hash % WAITING_BUCKETS];

	while (c && !key_same(&c->key, k))
		c = c->next_waiting;
	return c;
}

static void cont_release(struct preq_cont *c)
{
	struct preq *r = (struct preq *)c->ctx;

	if (c->keyed)
		waiting_remove(c);

	if (c->state != CONT_RESERVED) { /* ctx holds the request */
		free(r->caller_bar);
		r->caller_bar = NULL;
	}
	if (c->w && c->w->suspended)
		c->w->suspended--;
	free(c);
}

/* A pointer into the old receive buffer, moved to the same place in the copy. */
static const char *rebase(const struct preq_cont *c, const char *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)c->old_base;

	if (!p || a < b || a > b + c->len)
		return p; /* not into the message (a constant, or our own buffer) */
	return cont_data((struct preq_cont *)c) + (a - b);
}

static void cont_resume(struct worker *w, struct wjob *job)
{
	struct preq_cont *c = (struct preq_cont *)job;
	struct preq *r = (struct preq *)c->ctx;
	bool cancelled = c->state == CONT_CANCELLED;

	c->state = CONT_RUNNING;
	if (w->srv->stopping) {
		cont_release(c);
		return;
	}
	c->resumes++;
	/* the bytes are exactly one message, whatever transport brought them; they parsed
	 * and passed the request checks before, and are indexed again the same way */
	if (sip_parse(&c->msg, cont_data(c), c->len, 0) || sip_request_check(&c->msg)) {
		log_err("a suspended request no longer parses: dropped");
		sip_msg_release(&c->msg);
		cont_release(c);
		return;
	}
	r->m = &c->msg;
	r->src = &c->src;
	r->w = w;
	r->ruri_override.p = rebase(c, r->ruri_override.p);
	c->old_base = c->msg.buf;
	if (cancelled) {
		/* RFC 3261 9.2: the request a CANCEL matched gets 487, no further; through a
		 * server transaction, so the 487 is retransmitted until the ACK and a late
		 * retransmission of the INVITE gets it again instead of starting the call */
		if (proxy_local_txn(r) == 0)
			proxy_reply(r, 487, NULL, SV_NULL);
	} else
		r->resume(r);
	/* done, or waiting again (the same continuation, for another lookup) */
	sip_msg_release(&c->msg);
	if (c->state == CONT_RUNNING)
		cont_release(c);
}

struct wjob *proxy_wait(struct preq *r)
{
	struct worker *w = r->w;
	struct preq_cont *c = r->cont;

	if (c) {
		if (c->resumes >= PROXY_MAX_RESUMES) {
			errno = ELOOP;
			return NULL;
		}
		c->state = CONT_WAITING; /* it holds the request already */
		return &c->job;
	}
	if (!r->ctx_len || !r->resume) {
		errno = EINVAL; /* not run by a pipeline that can resume it */
		return NULL;
	}
	if (w->suspended >= w->suspend_cap) {
		w->stats.suspend_refused++;
		errno = EBUSY;
		return NULL;
	}
	c = malloc(sizeof(*c) + r->ctx_len + r->m->len);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->job.fn = cont_resume;
	c->w = w;
	c->ctx_len = r->ctx_len;
	c->len = r->m->len;
	c->state = CONT_RESERVED;
	w->suspended++;
	w->stats.suspended++;
	r->cont = c;
	return &c->job;
}

int proxy_suspended(struct preq *r)
{
	struct preq_cont *c = r->cont;

	if (!c || (c->state != CONT_RESERVED && c->state != CONT_WAITING))
		return EINVAL;
	if (c->state == CONT_WAITING)
		return 0; /* waiting again: r already lives in c */
	/* the first wait: the message's bytes and the pipeline's state move into c */
	c->src = *r->src;
	c->old_base = r->m->buf;
	memcpy(cont_data(c), r->m->buf, c->len);
	memcpy(c->ctx, r, c->ctx_len);
	c->state = CONT_WAITING;
	/* RFC 3261 16.2: an INVITE that may wait longer than 200 ms gets its 100 now */
	if (r->m->method == SIP_INVITE)
		proxy_reply(r, 100, NULL, SV_NULL);
	if (r->m->method != SIP_ACK && txn_key_of(r->w, r->m, false, &c->key) == 0) {
		struct preq_cont **head = &r->w->waiting[c->key.hash % WAITING_BUCKETS];
		c->next_waiting = *head;
		*head = c;
		c->keyed = true;
	}
	return 0;
}

bool proxy_waiting_absorb(struct preq *r)
{
	struct txn_key k;
	struct preq_cont *c;

	if (!r->w->suspended || r->cont || txn_key_of(r->w, r->m, false, &k))
		return false;
	c = waiting_find(r->w, &k);
	if (c && k.method == SIP_INVITE && c->state == CONT_WAITING)
		proxy_reply(r, 100, NULL, SV_NULL); /* RFC 3261 17.2.1: the provisional again */
	return c != NULL;
}

bool proxy_waiting_cancel(struct preq *r)
{
	struct preq_cont *c;
	struct txn_key k;

	if (!r->w->suspended || txn_key_of(r->w, r->m, true, &k))
		return false;
	c = waiting_find(r->w, &k);
	if (!c || c->key.method != SIP_INVITE ||
	    (c->state != CONT_WAITING && c->state != CONT_CANCELLED))
		return false;
	c->state = CONT_CANCELLED; /* a retransmitted CANCEL gets its 200 again */
	proxy_reply(r, 200, NULL, SV_NULL);
	return true;
}

void proxy_cont_free(struct preq *r)
{
	struct preq_cont *c = r->cont;

	if (!c)
		return;
	if (c->state != CONT_RESERVED) {
		c->state = CONT_RUNNING; /* the resume that runs now frees it when it returns */
		return;
	}
	/* proxy_wait was called but the handler did not wait after all */
	r->cont = NULL;
	cont_release(c);
}

unsigned proxy_resumes(const struct preq *r)
{
	return r->cont ? r->cont->resumes : 0;
}
