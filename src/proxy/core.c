/*
 * core.c - the request pipeline and the response entry point.
 *
 * A request walks a table of handlers (proxy.h), in the order RFC 3261
 * 16.3-16.6 gives their phases; each returns an enum proxy_step. The
 * pipeline's own steps are handlers here; the services' are registered by
 * the server, and this file knows none of them. Only what a handler needs is
 * parsed: an authenticated INVITE from a registered user to another touches
 * Via, From, To, CSeq, Call-ID, the Request-URI, Max-Forwards and the
 * credentials, and nothing else of the message.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "request/overload.h"
#include "server/server.h"
#include "server/worker.h"
#include "txn/txn.h"

/* The pipeline's state for one request: moved whole into a continuation when it waits. */
struct pctx {
	struct preq r; /* first (request.h) */
	struct fwd_plan plan;
	const struct proxy_pipeline *pipe;
};

static struct fwd_plan *plan_of(struct preq *r)
{
	return &((struct pctx *)r)->plan;
}

/* The credentials checked here (the auth handler's realm) are not forwarded. */
static void plan_realm(struct fwd_plan *plan, const struct preq *r)
{
	size_t n = strnlen(r->auth_realm, sizeof(r->auth_realm) - 1);

	memcpy(plan->drop_cred_realm, r->auth_realm, n);
	plan->drop_cred_realm[n] = '\0';
}

/* RFC 3261 18.2.1 and RFC 3581: what the request's top Via lacks about where it came from. */
static void append(char *dst, size_t *n, size_t size, const char *s, size_t len)
{
	if (*n + len < size) {
		memcpy(dst + *n, s, len);
		*n += len;
	}
}

/* RFC 3261 18.2.1 and RFC 3581: what the request's top Via lacks about where it came from. */
static void via_params_fill(struct preq *r)
{
	const struct sip_via *via = sip_msg_via1(r->m);
	char ip[64], port[8];
	size_t n = 0;
	int k;

	r->via_params_len = 0;
	r->via_drop_rport = false;
	if (!via)
		return;
	if (!via->has_rport && tp_addr_ip_is(&r->src->peer, via->host))
		return; /* the common case: nothing to add */
	tp_addr_ip(&r->src->peer, ip, sizeof(ip));
	append(r->via_params, &n, sizeof(r->via_params), ";received=", 10);
	if (r->src->peer.u.sa.sa_family == AF_INET6)
		append(r->via_params, &n, sizeof(r->via_params), "[", 1);
	append(r->via_params, &n, sizeof(r->via_params), ip, strlen(ip));
	if (r->src->peer.u.sa.sa_family == AF_INET6)
		append(r->via_params, &n, sizeof(r->via_params), "]", 1);
	if (via->has_rport && via->rport.len == 0) {
		k = snprintf(port, sizeof(port), "%u", tp_addr_port(&r->src->peer));
		append(r->via_params, &n, sizeof(r->via_params), ";rport=", 7);
		append(r->via_params, &n, sizeof(r->via_params), port, (size_t)k);
		r->via_drop_rport = true;
	}
	r->via_params_len = n;
}

static void classify(struct preq *r, const struct proxy_pipeline *p)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m), *to = sip_msg_to(r->m);
	struct sip_uri fu;

	r->trusted = p->trusted && p->trusted(r, p->trusted_arg);
	r->has_to_tag = to && to->has_tag;
	r->ruri_local = ruri && (ruri->kind == SIP_SCHEME_SIP || ruri->kind == SIP_SCHEME_SIPS) &&
			proxy_domain_is_local(r->srv, ruri->host, ruri->port);
	r->ruri_myself =
	    ruri && r->ruri_local && ruri->user.len == 0 && proxy_uri_is_myself(r->srv, ruri);
	r->from_local = false;
	if (from && sip_uri_parse(from->uri, &fu) == 0) {
		if (fu.kind == SIP_SCHEME_SIP || fu.kind == SIP_SCHEME_SIPS)
			r->from_local = proxy_domain_is_local(r->srv, fu.host, fu.port);
		else
			r->from_local = !r->trusted; /* a tel: identity is no stranger's to claim */
	}
	r->in_dialog = r->has_to_tag && route_signed(r);
	r->loop_hash = route_loop_hash(r);
}

/*
 * ACK: for a non-2xx final it belongs to our server transaction (17.2.1);
 * a 2xx ACK is a new request routed by its Route set, statelessly, and only
 * on a route set we signed; the ACK of a 407 we sent statelessly is
 * absorbed. A stray ACK goes nowhere (there is no answer to send either).
 */
static enum proxy_step on_ack(struct preq *r, void *arg)
{
	const struct sip_naddr *to = sip_msg_to(r->m);
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;
	char tag[32];
	struct fwd_plan plan;
	struct fwd_target tgt;
	sv_t hop;

	(void)arg;
	if (txn_key_of(r->w, r->m, true, &k) == 0 && txn_srv_find(r->w, &k, &owner, &t) == 0) {
		if (t) {
			if (t->state != TXN_ACCEPTED) {
				txn_srv_ack(t);
				return PROXY_DONE;
			}
		} else {
			tp_redeliver(r->w, owner, r->m, r->src);
			return PROXY_DONE;
		}
	}
	proxy_stateless_tag(r, tag, sizeof(tag));
	if (to && sv_eq(to->tag, sv_cstr(tag)))
		return PROXY_DONE; /* the ACK of a reply we sent statelessly */
	if (!r->in_dialog) {
		r->w->stats.rx_dropped++;
		log_debug("ACK on no route set of ours dropped");
		return PROXY_DONE;
	}
	route_plan(r, &plan);
	plan.record_route = false;
	memset(&tgt, 0, sizeof(tgt));
	hop = route_next_hop(r, &plan);
	if (hop.len) {
		if (sv_copy(hop, tgt.hop, sizeof(tgt.hop)))
			return PROXY_DONE;
	} else if (!r->ruri_myself) {
		if (sv_copy(r->ruri_override.len ? r->ruri_override : r->m->ruri_raw, tgt.hop,
			    sizeof(tgt.hop)))
			return PROXY_DONE;
		if (!r->ruri_override.len)
			nat_alias_target(r, &tgt); /* a phone behind NAT: where its alias says */
	} else {
		return PROXY_DONE;
	}
	fwd_stateless(r, &plan, &tgt);
	return PROXY_DONE;
}

static enum proxy_step on_cancel(struct preq *r, void *arg)
{
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;

	(void)arg;
	if (txn_key_of(r->w, r->m, true, &k) || txn_srv_find(r->w, &k, &owner, &t)) {
		if (!proxy_waiting_cancel(r)) /* an INVITE waiting for a lookup, or nothing */
			proxy_reply(r, 481, NULL, SV_NULL);
		return PROXY_DONE;
	}
	if (!t) {
		tp_redeliver(r->w, owner, r->m, r->src);
		return PROXY_DONE;
	}
	fwd_cancel(r, fwd_ptx_of(t));
	return PROXY_DONE;
}

/* Retransmissions belong to their transaction, possibly on another worker. */
static enum proxy_step phase_transaction(struct preq *r, void *arg)
{
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;

	(void)arg;
	if (txn_key_of(r->w, r->m, false, &k) || txn_srv_find(r->w, &k, &owner, &t))
		return proxy_waiting_absorb(r) ? PROXY_DONE : PROXY_CONTINUE;
	if (t)
		txn_srv_retransmission(t);
	else
		tp_redeliver(r->w, owner, r->m, r->src);
	return PROXY_DONE;
}

static void unsupported_list(struct sip_msg *m, enum sip_hdr_id id, struct buf *out)
{
	struct sip_hdr_iter it;
	sv_t tag;

	sip_hdr_iter_init(&it, m, id);
	while (sip_hdr_iter_next(&it, &tag)) {
		buf_append_str(out, out->len ? ", " : "Unsupported: ");
		buf_append_sv(out, tag);
	}
	if (out->len)
		buf_append_str(out, "\r\n");
}

/* Requests addressed to this server itself (no user, or our address), and no Route. */
static bool wants_local(const struct preq *r, void *arg)
{
	(void)arg;
	return r->ruri_myself && !sip_msg_hdr(r->m, SIP_H_ROUTE);
}

/* Acting as a UAS now (RFC 4475 zeromf: Max-Forwards 0 is no reason to refuse). */
static enum proxy_step phase_local_require(struct preq *r, void *arg)
{
	struct buf unsup;
	char store[512];

	(void)arg;
	buf_init_fixed(&unsup, store, sizeof(store));
	unsupported_list(r->m, SIP_H_REQUIRE, &unsup);
	if (unsup.len) {
		proxy_reply(r, 420, NULL, buf_sv(&unsup));
		return PROXY_DONE;
	}
	return PROXY_CONTINUE;
}

/* What no local service took: OPTIONS, and the answers for everything else. */
static enum proxy_step phase_local_answer(struct preq *r, void *arg)
{
	(void)arg;
	switch (r->m->method) {
	case SIP_OPTIONS:
		proxy_reply(r, 200, NULL,
			    SV("Allow: " PROXY_ALLOW "\r\nAccept: application/sdp, text/plain, "
			       "message/cpim, application/pidf+xml\r\nAccept-Encoding: identity\r\n"
			       "Accept-Language: en\r\nSupported: " PROXY_SUPPORTED "\r\n"));
		return PROXY_DONE;
	case SIP_METHOD_OTHER:
		proxy_reply(r, 501, NULL, SV("Allow: " PROXY_ALLOW "\r\n"));
		return PROXY_DONE;
	case SIP_ACK:
		return PROXY_DONE;
	default:
		if (r->has_to_tag)
			proxy_reply(r, 481, NULL, SV_NULL); /* 12.2.2: no such dialog here */
		else
			proxy_reply(r, 404, "No user in the Request-URI", SV_NULL);
		return PROXY_DONE;
	}
}

static bool is_dialog_creating(enum sip_method m)
{
	return m == SIP_INVITE || m == SIP_SUBSCRIBE || m == SIP_REFER || m == SIP_NOTIFY;
}

/* 16.3: Max-Forwards, loops, Proxy-Require; then 16.4: the plan of the route set. */
static enum proxy_step phase_policy(struct preq *r, void *arg)
{
	struct fwd_plan *plan = plan_of(r);
	struct buf unsup;
	char store[512];

	(void)arg;
	if (r->m->method == SIP_MESSAGE && r->m->body.len > r->srv->cfg.msg_max_size) {
		char reason[80];
		snprintf(reason, sizeof(reason), "Message body over %u bytes",
			 r->srv->cfg.msg_max_size);
		proxy_reply(r, 413, reason, SV_NULL);
		return PROXY_DONE;
	}
	if (sip_msg_max_forwards(r->m) == 0) {
		proxy_reply(r, 483, NULL, SV_NULL);
		return PROXY_DONE;
	}
	if (route_is_loop(r)) {
		proxy_reply(r, 482, NULL, SV_NULL);
		return PROXY_DONE;
	}
	buf_init_fixed(&unsup, store, sizeof(store));
	unsupported_list(r->m, SIP_H_PROXY_REQUIRE, &unsup);
	if (unsup.len) {
		proxy_reply(r, 420, NULL, buf_sv(&unsup));
		return PROXY_DONE;
	}
	route_plan(r, plan);
	plan->record_route =
	    plan->record_route && !r->has_to_tag && is_dialog_creating(r->m->method);
	return PROXY_CONTINUE;
}

/* A call that leaves for another domain or hop: the caller's barring by the R-URI's user. */
static bool barred_external(struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m);
	char reason[96], payer[160];

	if (!r->caller_bar)
		return false;
	snprintf(payer, sizeof(payer), "%.*s", from ? (int)from->uri.len : 0,
		 from ? from->uri.p : "");
	if (!proxy_barred(r->w, r->caller_bar, payer, ruri ? ruri->user : SV_NULL, false, reason,
			  sizeof(reason)))
		return false;
	proxy_reply(r, 403, reason, SV_NULL);
	return true;
}

static enum proxy_step forward(struct preq *r, struct fwd_plan *plan, struct fwd_target *t,
			       size_t n)
{
	if (r->srv->cfg.proxy_mode == CFG_PROXY_STATELESS)
		return fwd_stateless(r, plan, &t[0]);
	return fwd_stateful(r, plan, t, n);
}

/* 16.6: a route set or a strict router's Request-URI: to the next hop as it is. */
static enum proxy_step phase_route_set(struct preq *r, void *arg)
{
	struct fwd_plan *plan = plan_of(r);
	struct fwd_target t;
	sv_t hop;

	(void)arg;
	hop = route_next_hop(r, plan);
	if (!hop.len && !r->ruri_override.len)
		return PROXY_CONTINUE; /* the common case: no route set */
	plan_realm(plan, r);
	memset(&t, 0, sizeof(t));
	if (hop.len) {
		/* a route set: loose routing, the Request-URI stays (16.6 step 6); but a Route
		 * beyond us in a request from outside, out of any dialog, is no way around the
		 * relaying policy below */
		if (!proxy_may_relay(r)) {
			proxy_reply(r, 403, "Relaying denied", SV_NULL);
			return PROXY_DONE;
		}
		if (barred_external(r))
			return PROXY_DONE;
		if (sv_copy(hop, t.hop, sizeof(t.hop))) {
			proxy_reply(r, 414, "Route too long", SV_NULL);
			return PROXY_DONE;
		}
		return forward(r, plan, &t, 1);
	}
	if (r->ruri_override.len) {
		if (!proxy_may_relay(r)) {
			proxy_reply(r, 403, "Relaying denied", SV_NULL);
			return PROXY_DONE;
		}
		if (barred_external(r))
			return PROXY_DONE;
		if (sv_copy(r->ruri_override, t.hop, sizeof(t.hop))) {
			proxy_reply(r, 414, "Route too long", SV_NULL);
			return PROXY_DONE;
		}
		return forward(r, plan, &t, 1);
	}
	return PROXY_CONTINUE;
}

/* A local user (callee.c), or another domain for a caller who may relay. */
static enum proxy_step phase_route(struct preq *r, void *arg)
{
	struct fwd_plan *plan = plan_of(r);
	struct fwd_target t;

	(void)arg;
	plan_realm(plan, r);
	memset(&t, 0, sizeof(t));
	if (r->ruri_local &&
	    !(r->in_dialog && sip_msg_ruri(r->m)->port &&
	      !tp_is_local_address(r->srv->tp, sip_msg_ruri(r->m)->host, sip_msg_ruri(r->m)->port)))
		return callee_route(r, plan);
	if (!proxy_may_relay(r)) {
		/* not to one of our users, and nobody we know asked: we are not an open relay */
		proxy_reply(r, 403, "Relaying denied", SV_NULL);
		return PROXY_DONE;
	}
	if (barred_external(r))
		return PROXY_DONE;
	if (sv_copy(r->m->ruri_raw, t.hop, sizeof(t.hop))) {
		proxy_reply(r, 414, NULL, SV_NULL);
		return PROXY_DONE;
	}
	nat_alias_target(r, &t); /* in a dialog with a phone behind NAT: where its alias says */
	return forward(r, plan, &t, 1);
}

/* RFC 7339: an overloaded server refuses a new request before any work. */
static enum proxy_step ovl_handle(struct preq *r, void *arg)
{
	(void)arg;
	return ovl_request(r);
}

int proxy_pipeline_add(struct proxy_pipeline *p, const struct proxy_handler *h)
{
	unsigned i;

	if (p->n >= PROXY_MAX_HANDLERS || h->phase >= PROXY_PHASE_COUNT || !h->handle) {
		log_err("pipeline: no room for handler %s", h->name ? h->name : "?");
		return ENOSPC;
	}
	for (i = p->n; i > 0; i--) {
		const struct proxy_handler *x = &p->h[i - 1];
		if (x->phase < h->phase || (x->phase == h->phase && x->order <= h->order))
			break;
		p->h[i] = p->h[i - 1];
	}
	p->h[i] = *h;
	p->n++;
	/* the table is built once at start: the per-method lists are rebuilt whole */
	for (unsigned m = 0; m < SIP_METHOD_COUNT; m++) {
		p->nby_method[m] = 0;
		for (unsigned k = 0; k < p->n; k++) {
			if (p->h[k].methods & PROXY_METHOD(m))
				p->by_method[m][p->nby_method[m]++] = (uint8_t)k;
		}
	}
	return 0;
}

const struct proxy_handler *proxy_pipeline_at(const struct proxy_pipeline *p, enum sip_method m,
					      unsigned at)
{
	return &p->h[p->by_method[m][at]];
}

int proxy_fwd_hooks_add(struct proxy_pipeline *p, const struct proxy_fwd_hooks *h)
{
	if (p->nfwd_hooks >= PROXY_MAX_FWD_HOOKS)
		return ENOSPC;
	p->fwd_hooks[p->nfwd_hooks++] = h;
	return 0;
}

void proxy_pipeline_init(struct proxy_pipeline *p)
{
	static const struct proxy_handler core[] = {
	    {"overload", PROXY_PHASE_ADMIT, PROXY_ORDER_CORE, PROXY_ALL_METHODS, NULL, ovl_handle,
	     NULL},
	    {"ack", PROXY_PHASE_STATELESS, PROXY_ORDER_CORE, PROXY_METHOD(SIP_ACK), NULL, on_ack,
	     NULL},
	    {"cancel", PROXY_PHASE_STATELESS, PROXY_ORDER_CORE, PROXY_METHOD(SIP_CANCEL), NULL,
	     on_cancel, NULL},
	    {"transaction", PROXY_PHASE_TRANSACTION, PROXY_ORDER_CORE, PROXY_ALL_METHODS, NULL,
	     phase_transaction, NULL},
	    {"local-require", PROXY_PHASE_LOCAL, PROXY_ORDER_CORE, PROXY_ALL_METHODS, wants_local,
	     phase_local_require, NULL},
	    {"local-answer", PROXY_PHASE_LOCAL, PROXY_ORDER_ROUTE, PROXY_ALL_METHODS, wants_local,
	     phase_local_answer, NULL},
	    {"policy", PROXY_PHASE_POLICY, PROXY_ORDER_CORE, PROXY_ALL_METHODS, NULL, phase_policy,
	     NULL},
	    {"route-set", PROXY_PHASE_TARGET, PROXY_ORDER_CORE, PROXY_ALL_METHODS, NULL,
	     phase_route_set, NULL},
	    {"features", PROXY_PHASE_TARGET, PROXY_ORDER_SERVICE + 50, PROXY_METHOD(SIP_INVITE),
	     feat_wants, feat_phase, NULL},
	    {"route", PROXY_PHASE_TARGET, PROXY_ORDER_ROUTE, PROXY_ALL_METHODS, NULL, phase_route,
	     NULL},
	};

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
		proxy_pipeline_add(p, &core[i]);
}

enum proxy_step proxy_pipeline_run(const struct proxy_pipeline *p, struct preq *r)
{
	enum sip_method m = r->m->method < SIP_METHOD_COUNT ? r->m->method : SIP_METHOD_OTHER;
	const uint8_t *list = p->by_method[m];
	enum proxy_step step = PROXY_CONTINUE;

	for (; r->at < p->nby_method[m]; r->at++, r->phase_state = 0) {
		const struct proxy_handler *h = &p->h[list[r->at]];
		if (h->wants && !h->wants(r, h->arg))
			continue;
		step = h->handle(r, h->arg);
		if (step != PROXY_CONTINUE)
			break;
	}
	if (step == PROXY_SUSPENDED)
		log_debug("%.*s waits at handler %s", SV_ARG(r->m->method_name),
			  proxy_pipeline_at(p, m, r->at)->name);
	if (step == PROXY_SUSPENDED && proxy_suspended(r)) {
		log_err("pipeline: %s waited without a continuation",
			proxy_pipeline_at(p, m, r->at)->name);
		proxy_reply(r, 500, "Internal error", SV_NULL);
		step = PROXY_DONE;
	}
	if (step != PROXY_SUSPENDED) {
		proxy_cont_free(r);
		if (!r->cont) {
			free(r->caller_bar); /* a continuation frees its own */
			r->caller_bar = NULL;
		}
	}
	return step;
}

/* A continuation's request, its lookup answered: on from the handler that waited. */
static void pipeline_resume(struct preq *r)
{
	struct pctx *c = (struct pctx *)r;

	log_debug("%.*s resumes at handler %s (resumed %u times)", SV_ARG(r->m->method_name),
		  proxy_pipeline_at(c->pipe, r->m->method, r->at)->name, proxy_resumes(r));
	proxy_pipeline_run(c->pipe, r);
}

static void on_request(struct worker *w, struct sip_msg *m, const struct tp_src *src)
{
	struct pctx c; /* the plan is filled by the policy handler (route_plan), not here */
	struct preq *r = &c.r;
	unsigned st = sip_request_check(m);

	c.r = (struct preq){.w = w, .srv = w->srv, .m = m, .src = src};
	if (st) {
		w->stats.rx_bad++;
		if (m->method != SIP_ACK)
			proxy_reply(r, st, m->error, SV_NULL);
		return;
	}
	c.pipe = w->srv->pipeline;
	r->ctx_len = sizeof(c);
	r->resume = pipeline_resume;
	via_params_fill(r);
	classify(r, c.pipe);
	proxy_pipeline_run(c.pipe, r);
}

static void on_response(struct worker *w, struct sip_msg *m, const struct tp_src *src)
{
	if (sip_response_check(m)) {
		w->stats.rx_bad++;
		return;
	}
	if (txn_cli_dispatch(w, m, src) == 0)
		return;
	if (w->srv->cfg.proxy_mode == CFG_PROXY_STATELESS)
		fwd_response_stateless(w, m, src);
	/* stateful: a response for no transaction of ours is dropped (RFC 6026 7.3) */
}

static void on_bad_message(struct worker *w, struct sip_msg *m, int err, const struct tp_src *src)
{
	struct preq r = {.w = w, .srv = w->srv, .m = m, .src = src};

	w->stats.rx_bad++;
	log_debug("malformed message from peer: %s", m->error ? m->error : strerror(err));
	if (err != EBADMSG || !m->request || m->method == SIP_ACK || !sip_msg_hdr(m, SIP_H_VIA) ||
	    !sip_msg_hdr(m, SIP_H_CSEQ) || !sip_msg_hdr(m, SIP_H_CALL_ID))
		return; /* nothing we could address a reply with */
	via_params_fill(&r);
	proxy_reply(&r, 400, m->error ? m->error : "Malformed message", SV_NULL);
}

void proxy_on_message(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src)
{
	if (src->rx_ns)
		ovl_sample(w->ovl, src->rx_ns, ovl_now());
	if (parse_err)
		on_bad_message(w, m, parse_err, src);
	else if (m->request)
		on_request(w, m, src);
	else
		on_response(w, m, src);
}
