/*
 * core.c - the request pipeline and the response entry point.
 *
 * Phases run in the order RFC 3261 16.3-16.6 gives them; each returns an
 * enum proxy_step. Only what a phase needs is parsed: an authenticated
 * INVITE from a registered user to another touches Via, From, To, CSeq,
 * Call-ID, the Request-URI, Max-Forwards and the credentials, and nothing
 * else of the message.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "proxy/dns.h"
#include "proxy/overload.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/challenge.h"
#include "services/flood.h"
#include "services/home.h"
#include "services/lists.h"
#include "services/location.h"
#include "services/registrar.h"
#include "services/rules.h"
#include "services/settings.h"
#include "services/users.h"
#include "txn/txn.h"

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

static void classify(struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m), *to = sip_msg_to(r->m);
	const struct lists_nets *trusted = &r->srv->cfg.trusted_peers;
	struct sip_uri fu;

	r->trusted = trusted->n && lists_cidr_match(trusted->v, trusted->n, &r->src->peer.u.sa);
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

bool proxy_caller_known(const struct preq *r)
{
	return r->authenticated || r->trusted || (!r->srv->cfg.auth_enabled && r->from_local);
}

bool proxy_may_relay(const struct preq *r)
{
	return r->in_dialog || proxy_caller_known(r);
}

/*
 * ACK: for a non-2xx final it belongs to our server transaction (17.2.1);
 * a 2xx ACK is a new request routed by its Route set, statelessly, and only
 * on a route set we signed; the ACK of a 407 we sent statelessly is
 * absorbed. A stray ACK goes nowhere (there is no answer to send either).
 */
static void on_ack(struct preq *r)
{
	const struct sip_naddr *to = sip_msg_to(r->m);
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;
	char tag[32];
	struct fwd_plan plan;
	struct fwd_target tgt;
	sv_t hop;

	if (txn_key_of(r->w, r->m, true, &k) == 0 && txn_srv_find(r->w, &k, &owner, &t) == 0) {
		if (t) {
			if (t->state != TXN_ACCEPTED) {
				txn_srv_ack(t);
				return;
			}
		} else {
			tp_redeliver(r->w, owner, r->m, r->src);
			return;
		}
	}
	proxy_stateless_tag(r, tag, sizeof(tag));
	if (to && sv_eq(to->tag, sv_cstr(tag)))
		return; /* the ACK of a reply we sent statelessly */
	if (!r->in_dialog) {
		r->w->stats.rx_dropped++;
		log_debug("ACK on no route set of ours dropped");
		return;
	}
	route_plan(r, &plan);
	plan.record_route = false;
	memset(&tgt, 0, sizeof(tgt));
	hop = route_next_hop(r, &plan);
	if (hop.len) {
		if (sv_copy(hop, tgt.hop, sizeof(tgt.hop)))
			return;
	} else if (!r->ruri_myself) {
		if (sv_copy(r->ruri_override.len ? r->ruri_override : r->m->ruri_raw, tgt.hop,
			    sizeof(tgt.hop)))
			return;
	} else {
		return;
	}
	fwd_stateless(r, &plan, &tgt);
}

static void on_cancel(struct preq *r)
{
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;

	if (txn_key_of(r->w, r->m, true, &k) || txn_srv_find(r->w, &k, &owner, &t)) {
		proxy_reply(r, 481, NULL, SV_NULL);
		return;
	}
	if (!t) {
		tp_redeliver(r->w, owner, r->m, r->src);
		return;
	}
	fwd_cancel(r, fwd_ptx_of(t));
}

/* Retransmissions belong to their transaction, possibly on another worker. */
static enum proxy_step phase_transaction(struct preq *r)
{
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;

	if (txn_key_of(r->w, r->m, false, &k) || txn_srv_find(r->w, &k, &owner, &t))
		return PROXY_CONTINUE;
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

/* Requests addressed to this server itself (no user, or our address). */
static enum proxy_step phase_local(struct preq *r)
{
	struct sip_msg *m = r->m;
	struct buf unsup;
	char store[512];

	if (m->method == SIP_REGISTER && r->ruri_local && !r->has_to_tag)
		return reg_handle(r);
	if (!r->ruri_myself || sip_msg_hdr(m, SIP_H_ROUTE))
		return PROXY_CONTINUE;
	/* acting as a UAS now (RFC 4475 zeromf: Max-Forwards 0 is no reason to refuse) */
	buf_init_fixed(&unsup, store, sizeof(store));
	unsupported_list(m, SIP_H_REQUIRE, &unsup);
	if (unsup.len) {
		proxy_reply(r, 420, NULL, buf_sv(&unsup));
		return PROXY_DONE;
	}
	if (r->has_to_tag && m->method == SIP_SUBSCRIBE) {
		enum proxy_step step = home_handle_in_dialog(r); /* a subscription refresh */
		if (step != PROXY_CONTINUE)
			return step;
	}
	switch (m->method) {
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

/* 16.3: Max-Forwards, loops, Proxy-Require. */
static enum proxy_step phase_policy(struct preq *r)
{
	struct buf unsup;
	char store[512];

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
	return PROXY_CONTINUE;
}

enum proxy_step proxy_user(struct preq *r, sv_t user, sv_t domain, struct users_entry *ue)
{
	struct tp_src again = proxy_src_again(r);

	switch (
	    users_get(r->srv->users, r->w, user, domain, r->m, &again, r->src->redelivered, ue)) {
	case USERS_HIT:
		return PROXY_CONTINUE;
	case USERS_PENDING:
		return PROXY_SUSPENDED;
	case USERS_BUSY:
		proxy_reply(r, 503, "Too many subscriber lookups pending",
			    SV("Retry-After: 5\r\n"));
		return PROXY_DONE;
	default:
		proxy_reply(r, 503, "Subscriber database unavailable", SV("Retry-After: 5\r\n"));
		return PROXY_DONE;
	}
}

sv_t proxy_caller_user(struct preq *r)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct sip_uri u;

	if (!from || sip_uri_parse(from->uri, &u))
		return SV_NULL;
	return u.user;
}

void proxy_reply_blocked(struct preq *r, const char *why)
{
	sv_t caller = proxy_caller_user(r);
	unsigned st = rules_lists(proxy_rules(r))->block_status;

	r->w->stats.calls_blocked++;
	log_info("call from '%.*s' to %.*s blocked: %s", (int)caller.len, caller.p,
		 (int)r->m->ruri_raw.len, r->m->ruri_raw.p, why);
	proxy_reply(r, st, st == 603 ? "Declined" : "Call blocked", SV_NULL);
}

bool proxy_barred(struct worker *w, const struct uset_bar *b, const char *payer, sv_t target,
		  bool internal, char *reason, size_t len)
{
	char why[64];

	if (!b || uset_bar_check(b, &w->srv->cfg.barring, target, internal, why, sizeof(why)) ==
		      USET_ALLOWED)
		return false;
	w->stats.calls_barred++;
	log_info("call by %s to %s'%.*s' barred: %s", payer, internal ? "our user " : "",
		 (int)target.len, target.p, why);
	snprintf(reason, len, "Call barred: %s", why);
	return true;
}

void proxy_reply_barred(struct preq *r, const char *reason)
{
	proxy_reply(r, 403, reason, SV_NULL);
}

struct rules *proxy_rules(struct preq *r)
{
	return rules_view_get(&r->w->rules, r->srv->rules);
}

/*
 * The global black and white lists, for calls and messages from anyone. They
 * run after authentication: a white list entry for a caller counts only for
 * an identity that was checked (authenticated, or from a trusted peer); the
 * block lists apply to whatever the request claims.
 */
static enum proxy_step phase_lists(struct preq *r)
{
	const struct lists_global *g;
	const struct sip_uri *ruri;
	const char *why;

	if (r->in_dialog || (r->m->method != SIP_INVITE && r->m->method != SIP_MESSAGE))
		return PROXY_CONTINUE;
	g = rules_lists(proxy_rules(r));
	if (lists_global_empty(g))
		return PROXY_CONTINUE; /* the common case: nothing to look at */
	ruri = sip_msg_ruri(r->m);
	if (lists_global_check(g, proxy_caller_user(r), r->authenticated || r->trusted,
			       ruri ? ruri->user : SV_NULL, &r->src->peer.u.sa,
			       &why) != LISTS_BLOCKED)
		return PROXY_CONTINUE;
	proxy_reply_blocked(r, why);
	return PROXY_DONE;
}

/*
 * Who must prove who they are: every request that claims one of our users,
 * out of any dialog of ours. ACK and CANCEL cannot be challenged (they are
 * matched to a transaction or a signed route set instead); a BYE or PRACK
 * is exempt only inside a dialog of ours.
 */
static bool needs_auth(const struct preq *r)
{
	switch (r->m->method) {
	case SIP_ACK:
	case SIP_CANCEL:
	case SIP_REGISTER:
		return false;
	default:
		return r->srv->cfg.auth_enabled && r->from_local && !r->in_dialog && !r->trusted;
	}
}

/* The realm a From identity is checked in: its domain; for tel: the Request-URI's or ours. */
static int auth_realm(struct preq *r, const struct sip_uri *fu, char *realm, size_t len)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	sv_t host = fu->host;

	if (fu->kind != SIP_SCHEME_SIP && fu->kind != SIP_SCHEME_SIPS) {
		if (ruri && r->ruri_local)
			host = ruri->host;
		else if (r->srv->cfg.ndomains)
			host = sv_cstr(r->srv->cfg.domains[0]);
		else
			return EINVAL;
	}
	if (host.len && host.p[host.len - 1] == '.')
		host.len--; /* example.com. is example.com */
	if (host.len == 0 || host.len >= len)
		return EINVAL;
	for (size_t i = 0; i < host.len; i++)
		realm[i] = sv_lower_char(host.p[i]);
	realm[host.len] = '\0';
	return 0;
}

/* Initial requests of local users are authenticated with 407 (RFC 3261 22.3). */
static enum proxy_step phase_auth(struct preq *r, struct fwd_plan *plan)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct sip_uri fu;
	char realm[STORE_DOMAIN_MAX];
	enum proxy_step step;
	bool replay;

	if (!needs_auth(r))
		return PROXY_CONTINUE;
	if (sip_uri_parse(from->uri, &fu) || auth_realm(r, &fu, realm, sizeof(realm))) {
		proxy_reply(r, 403, "Caller identity cannot be authenticated", SV_NULL);
		return PROXY_DONE;
	}
	memcpy(plan->drop_cred_realm, realm, strlen(realm) + 1);
	/* a request delivered again after a lookup made once it was verified carries
	 * auth_verified; any other is verified in full, replay check included */
	step = challenge_check(r, CHALLENGE_PROXY, sv_cstr(realm), fu.user, false, &replay);
	if (step == PROXY_CONTINUE)
		r->authenticated = true;
	return step;
}

/*
 * The caller's outgoing call barring (issue 12): for a call (INVITE out of any
 * dialog) of one of our users who proved who they are, their settings from the
 * subscriber cache (authentication has just looked them up there). Routing
 * applies it wherever the call goes: a number through the dialplan, another
 * domain, one of our users (allow_callees_only).
 */
static enum proxy_step phase_caller(struct preq *r, const struct fwd_plan *plan,
				    struct uset_bar *bar)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct users_entry ue;
	struct uset *set;
	struct sip_uri fu;
	enum proxy_step step;
	char why[160];
	sv_t domain;

	if (r->in_dialog || r->m->method != SIP_INVITE || r->trusted || !r->from_local ||
	    !(r->authenticated || !r->srv->cfg.auth_enabled))
		return PROXY_CONTINUE;
	if (!from || sip_uri_parse(from->uri, &fu) || fu.user.len == 0)
		return PROXY_CONTINUE;
	/* the realm the credentials were checked in; with auth off, the From's domain */
	domain = plan->drop_cred_realm[0] ? sv_cstr(plan->drop_cred_realm) : fu.host;
	step = proxy_user(r, fu.user, domain, &ue);
	if (step != PROXY_CONTINUE || !ue.exists || !ue.settings[0])
		return step;
	set = malloc(sizeof(*set));
	if (!set) {
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		return PROXY_DONE;
	}
	uset_init(set);
	if (uset_parse(set, sv_cstr(ue.settings), why, sizeof(why)))
		log_warn("settings of %.*s@%.*s: %s (the rest is ignored)", SV_ARG(fu.user),
			 SV_ARG(domain), why);
	if (!uset_bar_empty(&set->out)) {
		*bar = set->out;
		r->caller_bar = bar;
	}
	free(set);
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
	proxy_reply_barred(r, reason);
	return true;
}

static enum proxy_step forward(struct preq *r, struct fwd_plan *plan, struct fwd_target *t,
			       size_t n)
{
	if (r->srv->cfg.proxy_mode == CFG_PROXY_STATELESS)
		return fwd_stateless(r, plan, &t[0]);
	return fwd_stateful(r, plan, t, n);
}

static enum proxy_step phase_target(struct preq *r, struct fwd_plan *plan)
{
	struct fwd_target t;
	sv_t hop = route_next_hop(r, plan);

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
	if (!r->in_dialog && r->srv->home && home_wants(r)) {
		/* presence, subscriptions, topics; a MESSAGE to a user comes back as CONTINUE */
		enum proxy_step step = home_handle(r);
		if (step != PROXY_CONTINUE)
			return step;
	}
	if (r->ruri_local && !r->in_dialog && r->from_local && r->m->method == SIP_INVITE &&
	    (r->authenticated || !r->srv->cfg.auth_enabled)) {
		enum proxy_step step = feat_handle(r);
		if (step != PROXY_CONTINUE)
			return step;
	}
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
	return forward(r, plan, &t, 1);
}

static bool is_dialog_creating(enum sip_method m)
{
	return m == SIP_INVITE || m == SIP_SUBSCRIBE || m == SIP_REFER || m == SIP_NOTIFY;
}

static void on_request(struct worker *w, struct sip_msg *m, const struct tp_src *src)
{
	struct preq r = {.w = w, .srv = w->srv, .m = m, .src = src};
	struct fwd_plan plan;
	struct uset_bar caller_bar;
	enum proxy_step step;
	unsigned st = sip_request_check(m);

	if (st) {
		w->stats.rx_bad++;
		if (m->method != SIP_ACK)
			proxy_reply(&r, st, m->error, SV_NULL);
		return;
	}
	via_params_fill(&r);
	classify(&r);
	if (flood_request_drop(&r))
		return; /* a banned source, or over its budget: no answer */
	if (ovl_request(&r) == PROXY_DONE)
		return; /* overloaded: a new request refused before any work (RFC 7339) */
	if (w->srv->home && w->id != home_worker(w->srv) && home_wants(&r)) {
		/* the home services' state lives on one worker: the request goes there */
		tp_redeliver(w, home_worker(w->srv), m, src);
		return;
	}
	if (m->method == SIP_ACK) {
		on_ack(&r);
		return;
	}
	if (m->method == SIP_CANCEL) {
		on_cancel(&r);
		return;
	}
	if (m->method == SIP_REGISTER && r.ruri_local && !r.has_to_tag) {
		/* the registrar answers statelessly: there is no transaction to find */
		reg_handle(&r);
		return;
	}
	step = phase_transaction(&r);
	if (step == PROXY_CONTINUE)
		step = phase_local(&r);
	if (step == PROXY_CONTINUE)
		step = phase_policy(&r);
	if (step != PROXY_CONTINUE)
		return;
	route_plan(&r, &plan);
	plan.record_route = plan.record_route && !r.has_to_tag && is_dialog_creating(m->method);
	step = phase_auth(&r, &plan);
	if (step == PROXY_CONTINUE)
		step = phase_lists(&r);
	if (step == PROXY_CONTINUE)
		step = phase_caller(&r, &plan, &caller_bar);
	if (step == PROXY_CONTINUE)
		phase_target(&r, &plan);
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
	if (src->rx_ns && !src->redelivered)
		ovl_sample(w->ovl, src->rx_ns, ovl_now());
	if (parse_err)
		on_bad_message(w, m, parse_err, src);
	else if (m->request)
		on_request(w, m, src);
	else
		on_response(w, m, src);
}

enum proxy_step proxy_suspend(struct preq *r)
{
	(void)r;
	return PROXY_SUSPENDED;
}
