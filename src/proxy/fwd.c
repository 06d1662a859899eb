/*
 * fwd.c - forwarding requests and responses: the proxy context that joins
 * one server transaction to its client transactions (branches), RFC 3261
 * 16.6 request forwarding, 16.7 response processing with best-response
 * selection, 16.10 CANCEL, Timer C, the gateways' failover and ring
 * timeouts, and the stateless mode of 16.11.
 *
 * A forwarded request is the received one with edits spliced in (our Via,
 * Max-Forwards, Record-Route, popped Routes, consumed credentials); the
 * plan of edits is independent of buffer positions so that a branch whose
 * destination needed a DNS lookup is built later from a copy.
 */
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/hash.h"
#include "core/log.h"
#include "dialog/dialog.h"
#include "dns/dns.h"
#include "request/overload.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/auth.h"
#include "services/dialplan.h"
#include "services/gwauth.h"
#include "services/rules.h"
#include "store/store.h"
#include "txn/txn.h"

/*
 * A branch (enum br_state in proxy/internal.h for its moves). Its timers are
 * assigned when it is made, so stopping one is always safe: Timer C (16.8),
 * and the gateway's own timer, whose meaning is the branch's state: in
 * CALLING the failover timeout ("is it there at all?", the next gateway as
 * on a 408), in PROCEEDING the ring timeout ("no final answer": CANCEL).
 */
struct ptx_branch {
	struct ptx *ptx;
	struct txn_cli *t;
	struct dns_query *dq; /* RESOLVING: the lookup, to cancel */
	enum br_state state;
	unsigned auth_answered; /* a gateway's challenges answered with our credentials */
	bool se_retried;	/* re-sent with the interval a 422 asked for (RFC 4028) */
	unsigned step;
	struct tp_dest dest; /* where it went (a gateway's challenge is answered there) */
	unsigned status;
	struct fwd_target target;
	struct buf challenge; /* WWW-/Proxy-Authenticate lines of a 401/407 */
	struct event timer_c;
	struct event gw_timer;
	unsigned gw_timeout_ms; /* the gateway's, when the branch was sent; 0 = none */
	unsigned gw_ring_ms;
	char gw_name[DP_NAME_MAX];
};

/* The proxy transaction (enum ptx_state in proxy/internal.h for its moves). */
struct ptx {
	struct txn_srv srv;
	struct worker *w;
	enum ptx_state state;
	enum step_outcome outcome; /* of the current step */
	/* what the request may do, fixed when it arrived */
	bool pstn_ok;	/* may reach a gateway the dialplan chose (proxy_caller_known) */
	bool in_dialog; /* on a route set we signed: it goes where the dialog goes */
	bool ovl_new;	/* new out-of-dialog work: a downstream server's overload report applies */
	bool dlg;	/* an initial INVITE the dialog module follows (dialog/dialog.h) */
	char *req;
	size_t req_len;
	struct tp_src src;
	struct fwd_plan plan;
	enum sip_method method;
	unsigned nbranches;
	unsigned capbranches;
	/* branches of the current step still running, and one more while the step is being
	 * started, so that a branch failing at once does not end the step under its feet */
	unsigned pending;
	struct ptx_branch **br;
	/* the search: steps tried one after the other (sequential ringing, q-value serial
	 * forking, forwarding); a single step is plain parallel forking */
	struct fwd_step *steps;
	unsigned nsteps;
	unsigned cur;
	struct event
	    step_timer; /* the current step's ring time; assigned by the first step with one */
	struct fwd_policy policy;
	char *best;
	size_t best_len;
	unsigned best_status;
	int best_rank;
	unsigned
	    local_status; /* best status generated here (408, 487, 503) when no response beats it */
	char tag[32];
	struct ptx_accepted *accepted; /* after ptx_shrink: the 2xx branches still matching */
};

/*
 * What is left of a branch that answered 2xx once the context is shrunk:
 * its client transaction in Accepted, which forwards 2xx retransmissions.
 */
struct ptx_accepted {
	struct ptx *ptx;
	struct txn_cli *t;
	struct ptx_accepted *next;
};

struct ptx *fwd_ptx_of(struct txn_srv *t)
{
	return t->tu;
}

struct txn_srv *fwd_ptx_srv(struct ptx *p)
{
	return &p->srv;
}

/*
 * Who is accountable for a call (billing records, docs/billing.md): the
 * authenticated user ("user@domain" of the From whose credentials were
 * checked), else the trusted peer ("trusted:IP"); "" when nobody is.
 */
static void call_identity(struct preq *r, char *out, size_t len)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct sip_uri u;

	out[0] = '\0';
	if (r->authenticated && from && sip_uri_parse(from->uri, &u) == 0 &&
	    u.user.len + u.host.len + 2 <= len) {
		snprintf(out, len, "%.*s@%.*s", (int)u.user.len, u.user.p, (int)u.host.len,
			 u.host.p);
	} else if (r->trusted) {
		char ip[INET6_ADDRSTRLEN] = "";
		const struct sockaddr *sa = &r->src->peer.u.sa;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &r->src->peer.u.in.sin_addr, ip, sizeof(ip));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &r->src->peer.u.in6.sin6_addr, ip, sizeof(ip));
		snprintf(out, len, "trusted:%s", ip);
	}
}

/* The final of an initial INVITE goes upstream: its early dialogs end (dialog/dialog.h). */
static void dlg_invite_final_of(struct worker *w, struct sip_msg *m, unsigned status)
{
	const struct sip_naddr *from = sip_msg_from(m);

	if (from && status >= 300)
		dlg_on_invite_final(w->srv->dlg, sip_msg_callid(m), from->tag, status,
				    dlg_now_ms());
}

/* The services' hooks on a forwarded message (proxy/proxy.h: the media relay's SDP). */
static void fwd_hooks_run(struct worker *w, struct sip_msg *m, const struct tp_addr *from,
			  const struct fwd_target *t, const struct tp_dest *dest, bool in_dialog,
			  struct sip_edit_list *l, bool response)
{
	const struct proxy_pipeline *pl = w->srv->pipeline;
	struct proxy_fwd_msg fm = {.w = w,
				   .m = m,
				   .from = from,
				   .in_dialog = in_dialog,
				   .gateway = t && t->gateway,
				   .to = dest ? &dest->peer : NULL,
				   .target_uri = t && t->has_received ? sv_cstr(t->uri) : SV_NULL};

	for (unsigned i = 0; pl && i < pl->nfwd_hooks; i++) {
		const struct proxy_fwd_hooks *h = pl->fwd_hooks[i];
		if (response ? h->response : h->request)
			(response ? h->response : h->request)(h->arg, &fm, l);
	}
}

/*
 * Building forwarded requests
 */
/* Deletes the k-th value of the header list with id (whole line when it is the only one). */
/*
 * Deletes the values [a, b) of a comma-separated header (Route), over every
 * header line they span: a line that loses all its values goes whole; one
 * that keeps some loses the deleted ones with their commas. One edit per line,
 * so popping several of our entries from one line never overlaps.
 */
static void edit_delete_values(struct sip_edit_list *l, struct sip_msg *m, enum sip_hdr_id id,
			       unsigned a, unsigned b)
{
	unsigned idx = 0;

	for (struct sip_hdr *h = sip_msg_hdr(m, id); h && idx < b; h = sip_msg_hdr_next(m, h)) {
		sv_t rest = h->value;
		const char *prev_end = NULL, *del_from = NULL, *del_to = NULL, *next = NULL;
		unsigned nv = 0, ndel = 0;

		while (sip_skip_lws(rest).len) {
			sv_t v = sip_list_split(&rest);
			unsigned k = idx + nv++;
			if (k < a) {
				prev_end = v.p + v.len;
			} else if (k < b) {
				if (!ndel++)
					del_from = v.p;
				del_to = v.p + v.len;
			} else if (!next) {
				next = v.p;
			}
		}
		idx += nv;
		if (!ndel)
			continue;
		if (ndel == nv)
			sip_edit_add(l, h->raw.p, h->raw.len, SV_NULL);
		else if (next) /* values stay after: up to the first of them */
			sip_edit_add(l, del_from, (size_t)(next - del_from), SV_NULL);
		else /* the line's last values: with the comma before them */
			sip_edit_add(l, prev_end, (size_t)(del_to - prev_end), SV_NULL);
	}
}

/* Our Route entries: the top pop_routes values, and the last one (strict-route compatibility). */
static void edit_pop_routes(struct sip_edit_list *l, struct sip_msg *m, const struct fwd_plan *plan)
{
	unsigned count = sip_hdr_count(m, SIP_H_ROUTE), top = plan->pop_routes;

	if (top > count)
		top = count;
	if (plan->pop_last_route && count && top >= count - 1) {
		edit_delete_values(l, m, SIP_H_ROUTE, 0, count); /* the two ranges meet */
		return;
	}
	if (top)
		edit_delete_values(l, m, SIP_H_ROUTE, 0, top);
	if (plan->pop_last_route && count)
		edit_delete_values(l, m, SIP_H_ROUTE, count - 1, count);
}

static sv_t last_route_uri(struct sip_msg *m)
{
	struct sip_hdr_iter it;
	sv_t elem, last = SV_NULL;
	struct sip_naddr na;

	sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
	while (sip_hdr_iter_next(&it, &elem))
		last = elem;
	if (last.len && sip_naddr_parse(last, &na, NULL) == 0)
		return na.uri;
	return SV_NULL;
}

static void print_rr(struct buf *b, const struct tp_listen *l, const char *sig)
{
	buf_append_str(b, "Record-Route: <sip:");
	/* the dialog port (udp.dialog_port): the calls' next requests never queue behind new ones
	 */
	buf_append_str(b, l->dialog_port ? l->dialog_advertise : l->advertise);
	if (l->proto == SIP_PROTO_TCP)
		buf_append_str(b, ";transport=tcp");
	buf_append_str(b, ";lr;sb=");
	buf_append_str(b, sig);
	buf_append_str(b, ">\r\n");
}

int fwd_build(struct worker *w, struct buf *out, struct sip_msg *m, const struct fwd_plan *plan,
	      const struct fwd_target *t, sv_t branch, const struct tp_dest *dest, int in_listen,
	      const struct tp_addr *from, bool in_dialog)
{
	struct tp_table *tp = w->srv->tp;
	const struct tp_listen *ol = tp_listen_get(tp, (unsigned)dest->listen);
	const struct tp_listen *il = in_listen >= 0 ? tp_listen_get(tp, (unsigned)in_listen) : NULL;
	const struct sip_via *via = sip_msg_via1(m);
	struct sip_edit_list l = {.n = 0};
	char top[2048], mfbuf[16];
	struct buf topb;
	struct sip_hdr *h;
	int64_t mf = sip_msg_max_forwards(m);
	unsigned nroutes;
	char sig[ROUTE_SIG_LEN + 1] = "";

	if (!ol || !via)
		return EINVAL;
	if (plan->record_route) {
		const struct sip_naddr *from = sip_msg_from(m);
		route_sign_contact(w->srv, m, from ? from->tag : SV_NULL, sig);
	}
	buf_init_fixed(&topb, top, sizeof(top));
	/* our Via on top */
	buf_append_str(&topb, "Via: SIP/2.0/");
	buf_append_str(&topb, sip_proto_name(ol->proto));
	buf_append_char(&topb, ' ');
	buf_append_str(&topb, tp_via_sent_by(w, (unsigned)dest->listen)); /* responses: to us */
	buf_append_str(&topb, ";branch=");
	buf_append_sv(&topb, branch);
	buf_append_str(&topb, ovl_via_support(w)); /* RFC 7339: we honour oc from downstream */
	buf_append_str(&topb, "\r\n");
	if (plan->record_route && !sip_msg_hdr(m, SIP_H_RECORD_ROUTE)) {
		/* facing the callee first; a second entry when the caller reached us elsewhere (RFC
		 * 5658) */
		print_rr(&topb, ol, sig);
		if (il && il != ol)
			print_rr(&topb, il, sig);
	}
	if (mf < 0)
		buf_append_str(&topb, "Max-Forwards: 70\r\n");
	if (plan->session_expires[0]) /* RFC 4028: the interval we ask for (dialog.h) */
		buf_append_str(&topb, plan->session_expires);
	if (t->headers[0])
		buf_append_str(&topb, t->headers); /* newest Diversion first (RFC 5806) */
	nroutes = sip_hdr_count(m, SIP_H_ROUTE) - plan->pop_routes - (plan->pop_last_route ? 1 : 0);
	if (t->path[0] && nroutes == 0) {
		buf_append_str(&topb, "Route: ");
		buf_append_str(&topb, t->path);
		buf_append_str(&topb, "\r\n");
	}
	if (topb.err)
		return topb.err;
	sip_edit_add(&l, m->headers.p, 0, buf_sv(&topb));

	if (plan->record_route && (h = sip_msg_hdr(m, SIP_H_RECORD_ROUTE))) {
		char rr[600];
		struct buf rrb;
		buf_init_fixed(&rrb, rr, sizeof(rr));
		print_rr(&rrb, ol, sig);
		if (il && il != ol)
			print_rr(&rrb, il, sig);
		/* must stay in the frame of this function: copy into the top buffer's tail */
		if (rrb.err || topb.len + rrb.len >= sizeof(top))
			return E2BIG; /* never forwarded without our Record-Route */
		memcpy(top + topb.len, rr, rrb.len);
		sip_edit_add(&l, h->raw.p, 0, sv_make(top + topb.len, rrb.len));
		topb.len += rrb.len;
	}
	/* the Request-URI */
	if (t->uri[0]) {
		sip_edit_add(&l, m->ruri_raw.p, m->ruri_raw.len, sv_cstr(t->uri));
	} else if (plan->pop_last_route) {
		sv_t u = last_route_uri(m);
		if (u.len)
			sip_edit_add(&l, m->ruri_raw.p, m->ruri_raw.len, u);
	}
	/* received / rport on the previous hop's Via */
	if (plan->via_params_len) {
		if (plan->via_drop_rport && via->rport_span.len)
			sip_edit_add(&l, via->rport_span.p, via->rport_span.len, SV_NULL);
		sip_edit_add(&l, via->raw.p + via->raw.len, 0,
			     sv_make(plan->via_params, plan->via_params_len));
	}
	/* Max-Forwards */
	if (mf >= 0 && (h = sip_msg_hdr(m, SIP_H_MAX_FORWARDS))) {
		size_t n = sv_put_u32(mfbuf, (uint32_t)(mf > 0 ? mf - 1 : 0));
		sip_edit_add(&l, h->value.p, h->value.len, sv_make(mfbuf, n));
	}
	/* our Route values */
	edit_pop_routes(&l, m, plan);
	/* the path route set goes before the Route values that stay */
	if (t->path[0] && nroutes > 0) {
		struct sip_hdr_iter it;
		sv_t elem;
		unsigned k = 0;
		sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
		while (sip_hdr_iter_next(&it, &elem)) {
			if (k++ == plan->pop_routes) {
				/* insert as a separate header line before the one holding this
				 * value */
				for (h = sip_msg_hdr(m, SIP_H_ROUTE); h;
				     h = sip_msg_hdr_next(m, h)) {
					if (elem.p >= h->raw.p && elem.p < h->raw.p + h->raw.len)
						break;
				}
				if (!h || topb.len + strlen(t->path) + 10 >= sizeof(top))
					return E2BIG; /* never forwarded without its route set */
				int n = snprintf(top + topb.len, sizeof(top) - topb.len,
						 "Route: %s\r\n", t->path);
				sip_edit_add(&l, h->raw.p, 0, sv_make(top + topb.len, (size_t)n));
				topb.len += (size_t)n;
				break;
			}
		}
	}
	/* a Contact behind NAT gets its alias (nat.c) */
	if (plan->nat_alias_len && nat_edit_contact(&l, m, plan->nat_alias, plan->nat_alias_len))
		return E2BIG;
	/* credentials meant for us are not forwarded (RFC 3261 22.3) */
	if (plan->drop_cred_realm[0]) {
		for (h = sip_msg_hdr(m, SIP_H_PROXY_AUTHORIZATION); h; h = sip_msg_hdr_next(m, h)) {
			struct auth_cred c;
			if (auth_cred_parse(h->value, &c) == 0 &&
			    sv_ieq(c.realm, sv_cstr(plan->drop_cred_realm)))
				sip_edit_add(&l, h->raw.p, h->raw.len, SV_NULL);
		}
	}
	fwd_hooks_run(w, m, from, t, dest, in_dialog, &l, false);
	return sip_edits_apply(out, m, &l); /* E2BIG, EINVAL: an error, never an edit dropped */
}

/* Does this response establish or confirm a dialog whose route set it carries? */
static bool response_makes_dialog(struct sip_msg *resp)
{
	const struct sip_cseq *cs = sip_msg_cseq(resp);
	const struct sip_naddr *to = sip_msg_to(resp);

	return resp->status > 100 && resp->status < 300 && cs && to && to->tag.len &&
	       (cs->method == SIP_INVITE || cs->method == SIP_SUBSCRIBE ||
		cs->method == SIP_REFER || cs->method == SIP_NOTIFY) &&
	       sip_msg_hdr(resp, SIP_H_RECORD_ROUTE);
}

/*
 * Our Via off the top of a response; our Record-Route entries re-signed for
 * the callee's Contact (route.c), which is where the caller's requests go.
 * With w, the Via below ours (the client's) also gets our overload state
 * when the client declared support (RFC 7339).
 */
static int response_strip_via(struct server *srv, struct worker *w, struct buf *out,
			      struct sip_msg *resp, struct worker *hw, const struct tp_addr *from)
{
	char alias[128];
	const struct sip_via *via = sip_msg_via1(resp);
	struct sip_hdr *h = sip_msg_hdr(resp, SIP_H_VIA);
	struct sip_edit_list l = {.n = 0};
	char sig[ROUTE_SIG_LEN + 1];
	sv_t rest, drop[SIP_OC_NSPANS];
	struct sip_via next;
	char text[128];
	size_t textn = 0, nd;

	if (!via || !h)
		return EINVAL;
	rest = sv_sub(h->value, (size_t)(via->raw.p + via->raw.len - h->value.p), h->value.len);
	rest = sip_skip_lws(rest);
	if (rest.len && rest.p[0] == ',') {
		sv_t after = sip_skip_lws(sv_sub(rest, 1, rest.len));
		sip_edit_add(&l, via->raw.p, (size_t)(after.p - via->raw.p), SV_NULL);
		rest = after;
	} else {
		struct sip_hdr *h2 = sip_msg_hdr_next(resp, h);
		sip_edit_add(&l, h->raw.p, h->raw.len, SV_NULL);
		rest = h2 ? h2->value : SV_NULL;
	}
	if (w && sip_oc_maybe(rest, false) && sip_via_parse(rest, &next, NULL) == 0) {
		nd = ovl_reply_via(w, &next, drop, text, sizeof(text), &textn);
		for (size_t i = 0; i < nd; i++) {
			if (sip_edit_add(&l, drop[i].p, drop[i].len, SV_NULL))
				return E2BIG;
		}
		/* the text goes at the Via's end, after the spans dropped from it */
		if (textn && sip_edit_add(&l, next.raw.p + next.raw.len, 0, sv_make(text, textn)))
			return E2BIG;
	}
	if (response_makes_dialog(resp)) {
		const struct sip_naddr *from = sip_msg_from(resp);
		struct sip_hdr_iter it;
		sv_t elem;
		route_sign_contact(srv, resp, from ? from->tag : SV_NULL, sig);
		sip_hdr_iter_init(&it, resp, SIP_H_RECORD_ROUTE);
		while (sip_hdr_iter_next(&it, &elem)) {
			sv_t old = route_sig_of(srv, elem);
			if (old.len &&
			    sip_edit_add(&l, old.p, old.len, sv_make(sig, ROUTE_SIG_LEN)))
				return E2BIG;
		}
	}
	/* a Contact behind NAT: where the caller's requests must really go (nat.c) */
	if (w && from && nat_response_contact(w, &l, resp, from, alias, sizeof(alias)))
		return E2BIG;
	fwd_hooks_run(hw, resp, from, NULL, NULL, false, &l, true);
	return sip_edits_apply(out, resp, &l);
}

/*
 * Destinations
 */
static int dest_from_target(struct worker *w, const struct fwd_target *t,
			    const struct dns_target *dt, struct tp_dest *d)
{
	memset(d, 0, sizeof(*d));
	if (dt) {
		tp_addr_from_sockaddr(&d->peer, dt->proto, &dt->addr, dt->addrlen);
	} else {
		d->peer = t->received;
		d->conn_id = t->conn_id;
		/* a registration's connection: its peer port is ephemeral, never connect to it */
		d->conn_only = !t->alias && t->received.proto != SIP_PROTO_UDP;
	}
	d->listen = tp_listen_pick(w->srv->tp, d->peer.proto, d->peer.u.sa.sa_family);
	return d->listen < 0 ? EAFNOSUPPORT : 0;
}

/*
 * The proxy context
 */
static int rank_of(unsigned st)
{
	/* 16.7 step 6: 6xx first, then the lowest class; among 4xx those that let the caller retry
	 */
	if (st >= 600)
		return 0;
	if (st >= 300 && st < 400)
		return 1;
	if (st == 401 || st == 407 || st == 415 || st == 420 || st == 484)
		return 2;
	if (st >= 400 && st < 500)
		return 3;
	return 4;
}

static void ptx_reply_local(struct ptx *p, unsigned status, const char *reason)
{
	struct worker *w = p->w;
	struct sip_msg *m = calloc(1, sizeof(*m));
	struct buf *out = &w->resp_out;
	struct sip_reply rep = {
	    .status = status,
	    .reason = sv_cstr(reason),
	    .to_tag = sv_cstr(p->tag),
	    .via_params = sv_make(p->plan.via_params, p->plan.via_params_len),
	    .via_drop_rport = p->plan.via_drop_rport,
	    .server = sv_cstr(w->srv->cfg.server_name),
	};

	char vp[sizeof(p->plan.via_params) + 128];
	sv_t drop[SIP_OC_NSPANS];
	size_t ocn;

	if (!m)
		return;
	if (sip_parse(m, p->req, p->req_len, 0) == 0) {
		memcpy(vp, p->plan.via_params, p->plan.via_params_len);
		rep.nvia_drop = ovl_reply_via(w, sip_msg_via1(m), drop, vp + p->plan.via_params_len,
					      sizeof(vp) - p->plan.via_params_len, &ocn);
		rep.via_drop = drop;
		rep.via_params = sv_make(vp, p->plan.via_params_len + ocn);
		if (p->dlg)
			dlg_invite_final_of(w, m, status);
		buf_reset(out);
		if (sip_build_reply(out, m, &rep) == 0)
			txn_srv_reply(&p->srv, out->p, out->len, status);
	}
	sip_msg_release(m);
	free(m);
}

/*
 * The two state machines (proxy/internal.h): every change of state goes
 * through ptx_move() or br_move(), which refuse a move the tables do not
 * list, log it and count it (worker stats, fwd_bad_moves): a bug, never a
 * crash of the server.
 */
#define MV(s) (1u << (s))
static const unsigned ptx_moves[PTX_NSTATES] = {
    [PTX_TRYING] = MV(PTX_RINGING) | MV(PTX_CANCELLING) | MV(PTX_ACCEPTED) | MV(PTX_COMPLETED),
    [PTX_RINGING] = MV(PTX_CANCELLING) | MV(PTX_ACCEPTED) | MV(PTX_COMPLETED),
    [PTX_CANCELLING] = MV(PTX_ACCEPTED) | MV(PTX_COMPLETED),
    [PTX_ACCEPTED] = 0,
    [PTX_COMPLETED] = 0,
};
static const unsigned br_moves[BR_NSTATES] = {
    [BR_RESOLVING] = MV(BR_CALLING) | MV(BR_DONE),
    [BR_CALLING] = MV(BR_CALLING) | MV(BR_PROCEEDING) | MV(BR_DONE),
    [BR_PROCEEDING] =
	MV(BR_CALLING) | MV(BR_CANCELLING) | MV(BR_RANG_OUT) | MV(BR_TIMED_OUT) | MV(BR_DONE),
    [BR_CANCELLING] = MV(BR_DONE),
    [BR_RANG_OUT] = MV(BR_DONE),
    [BR_TIMED_OUT] = MV(BR_DONE),
    [BR_DONE] = 0,
};
#undef MV
static const char *const ptx_state_names[PTX_NSTATES] = {"TRYING", "RINGING", "CANCELLING",
							 "ACCEPTED", "COMPLETED"};
static const char *const br_state_names[BR_NSTATES] = {
    "RESOLVING", "CALLING", "PROCEEDING", "CANCELLING", "RANG_OUT", "TIMED_OUT", "DONE"};

static bool ptx_move(struct ptx *p, enum ptx_state to)
{
	if (!(ptx_moves[p->state] & (1u << to))) {
		p->w->stats.fwd_bad_moves++;
		log_err("proxy transaction %s: %s -> %s refused (not a move of RFC 3261 16.7)",
			p->tag, ptx_state_names[p->state], ptx_state_names[to]);
		return false;
	}
	p->state = to;
	return true;
}

static bool br_move(struct ptx_branch *b, enum br_state to)
{
	if (!(br_moves[b->state] & (1u << to))) {
		b->ptx->w->stats.fwd_bad_moves++;
		log_err("proxy transaction %s, branch to %s: %s -> %s refused", b->ptx->tag,
			b->target.hop, br_state_names[b->state], br_state_names[to]);
		return false;
	}
	b->state = to;
	return true;
}

/* Searching still: no final went upstream and the caller did not cancel. */
static bool ptx_open(const struct ptx *p)
{
	return p->state == PTX_TRYING || p->state == PTX_RINGING;
}

static bool ptx_final_sent(const struct ptx *p)
{
	return p->state == PTX_ACCEPTED || p->state == PTX_COMPLETED;
}

/* The step's branches' answers so far, which only go up (enum step_outcome). */
static void step_outcome_raise(struct ptx *p, enum step_outcome o)
{
	if (o > p->outcome)
		p->outcome = o;
}

static void ptx_forward_response(struct ptx *p, struct sip_msg *resp, sv_t extra_challenges,
				 const struct tp_addr *from)
{
	struct buf *out = &p->w->resp_out;

	if (response_strip_via(p->w->srv, p->w, out, resp, p->w, from)) {
		/* more edits than we can make: a final the caller must still get */
		log_warn("proxy transaction %s: response %u cannot be forwarded (too many edits)",
			 p->tag, resp->status);
		/* a non-2xx final comes from ptx_finish (COMPLETED already); a first 2xx that
		 * cannot go up makes the 500 the final */
		if (resp->status >= 300 ||
		    (resp->status >= 200 && !ptx_final_sent(p) && ptx_move(p, PTX_COMPLETED)))
			ptx_reply_local(p, 500, "Response could not be forwarded");
		return;
	}
	if (extra_challenges.len) {
		/* 16.7 step 7: all challenges of the forked 401/407s go to the caller */
		const char *end = out->p + out->len - resp->body.len - 2;
		size_t off = (size_t)(end - out->p);
		if (buf_reserve(out, extra_challenges.len) == 0) {
			memmove(out->p + off + extra_challenges.len, out->p + off, out->len - off);
			memcpy(out->p + off, extra_challenges.p, extra_challenges.len);
			out->len += extra_challenges.len;
		}
	}
	if (resp->status == 503) {
		/* 16.7 step 6: a 503 from downstream must not make upstream think we are overloaded
		 */
		memcpy(out->p + 8, "500", 3);
		txn_srv_reply(&p->srv, out->p, out->len, 500);
		return;
	}
	txn_srv_reply(&p->srv, out->p, out->len, resp->status);
}

/*
 * Which timers a context uses (each is assigned once, then armed and
 * stopped; one never assigned is never touched): Timer C on every INVITE
 * branch when configured (16.8), the gateway's timer on a branch to a
 * gateway (gw_name set), the step timer once a step rings for a time of
 * its own.
 */
static bool ptx_has_timer_c(const struct ptx *p)
{
	return p->method == SIP_INVITE && p->w->srv->cfg.timer_c_s;
}

static void step_timer_stop(struct ptx *p)
{
	if (event_initialized(&p->step_timer))
		evtimer_del(&p->step_timer);
}

/* Timer C and the gateway's timer: the branch has its final answer, or is given up. */
static void branch_stop_timer_c(struct ptx_branch *b)
{
	if (ptx_has_timer_c(b->ptx))
		evtimer_del(&b->timer_c);
	if (b->gw_name[0])
		evtimer_del(&b->gw_timer);
}

/* The final goes upstream now (COMPLETED): the best response, or one made here. */
static void ptx_finish(struct ptx *p)
{
	struct buf challenges;
	struct sip_msg *best;

	if (ptx_final_sent(p) || !ptx_move(p, PTX_COMPLETED))
		return;
	step_timer_stop(p);
	if (!p->best) {
		ptx_reply_local(p, p->local_status ? p->local_status : 408,
				p->local_status == 480 ? "No answer" : NULL);
		return;
	}
	best = calloc(1, sizeof(*best));
	if (!best)
		return;
	buf_init(&challenges, 0);
	if (p->best_status == 401 || p->best_status == 407) {
		for (unsigned i = 0; i < p->nbranches; i++)
			buf_append_sv(&challenges, buf_sv(&p->br[i]->challenge));
	}
	if (sip_parse(best, p->best, p->best_len, 0) == 0) {
		if (p->dlg)
			dlg_invite_final_of(p->w, best, best->status);
		/* the best response's own challenges are in it already */
		struct sip_hdr *h;
		size_t own = 0;
		for (h = sip_msg_hdr(best, SIP_H_WWW_AUTHENTICATE); h;
		     h = sip_msg_hdr_next(best, h))
			own += h->raw.len;
		for (h = sip_msg_hdr(best, SIP_H_PROXY_AUTHENTICATE); h;
		     h = sip_msg_hdr_next(best, h))
			own += h->raw.len;
		ptx_forward_response(p, best, challenges.len > own ? buf_sv(&challenges) : SV_NULL,
				     NULL);
	}
	buf_free(&challenges);
	sip_msg_release(best);
	free(best);
}

static void step_start(struct ptx *p, struct sip_msg *m);

void fwd_finish_local(struct ptx *p, unsigned status, const char *reason)
{
	if (ptx_final_sent(p) || !ptx_move(p, PTX_COMPLETED))
		return;
	step_timer_stop(p);
	ptx_reply_local(p, status, reason);
}

sv_t fwd_ptx_request(const struct ptx *p)
{
	return sv_make(p->req, p->req_len);
}

struct server *fwd_ptx_server(const struct ptx *p)
{
	return p->w->srv;
}

/*
 * A branch of the current step ended. When the step is over: the next step,
 * or what the policy adds when there is none (forwarding), or the best answer.
 */
static void ptx_shrink(struct ptx *p);

static void step_advance(struct ptx *p)
{
	if (ptx_final_sent(p) || p->pending)
		return;
	step_timer_stop(p);
	/* a 6xx ends the whole search (16.7), but for 600 Busy Everywhere: busy moves on */
	if (p->state == PTX_CANCELLING || (p->best && p->best_rank == 0 && p->best_status != 600)) {
		ptx_finish(p);
		return;
	}
	if (p->outcome == STEP_BUSY && p->policy.stop_on_busy) {
		/* the steps left are dropped; forwarding on busy may still add some */
		for (unsigned i = p->cur + 1; i < p->nsteps; i++)
			free(p->steps[i].targets);
		p->nsteps = p->cur + 1;
	}
	if (p->cur + 1 >= p->nsteps && p->policy.exhausted)
		p->policy.exhausted(p, p->policy.arg, p->best ? p->best_status : p->local_status);
	if (ptx_final_sent(p))
		return; /* the hook answered itself (fwd_finish_local) */
	if (p->cur + 1 < p->nsteps && p->steps[p->cur + 1].only_on_failure &&
	    p->outcome != STEP_FAILED) {
		ptx_finish(p); /* a real answer (busy, not found...): no failover */
		return;
	}
	if (p->cur + 1 < p->nsteps) { /* the next step, maybe one the policy just added */
		p->cur++;
		step_start(p, NULL);
		return;
	}
	ptx_finish(p);
}

static void step_done(struct ptx *p)
{
	step_advance(p);
	ptx_shrink(p); /* when the final is out and no branch is left */
}

/* The branch has its final status (DONE): one fewer pending in its step. */
static void branch_done(struct ptx_branch *b, unsigned status)
{
	branch_stop_timer_c(b);
	if (!br_move(b, BR_DONE))
		return;
	b->status = status;
	b->ptx->pending--;
}

/*
 * Cancels every branch still running but except (16.10): a branch that has
 * had a provisional response gets its CANCEL and moves to `as` (CANCELLING,
 * or RANG_OUT when its ring time ran out) until its final comes; one that
 * has had none is over for us at once (its transaction sends the CANCEL
 * when a provisional comes, 9.1), as is one still resolving.
 */
static void ptx_cancel_branches(struct ptx *p, struct ptx_branch *except, bool elsewhere,
				enum br_state as)
{
	for (unsigned i = 0; i < p->nbranches; i++) {
		struct ptx_branch *b = p->br[i];
		if (b == except || b->state == BR_DONE)
			continue;
		branch_stop_timer_c(b);
		if (b->state == BR_RESOLVING && b->dq) {
			dns_cancel(b->dq);
			b->dq = NULL;
		}
		if (b->t && p->method == SIP_INVITE)
			txn_cli_cancel(b->t, elsewhere);
		if (b->state == BR_PROCEEDING && b->t)
			br_move(b, as);
		else if (b->state != BR_CANCELLING && b->state != BR_RANG_OUT &&
			 b->state != BR_TIMED_OUT)
			branch_done(b,
				    487); /* nothing rings there: the branch is over for us now */
	}
	if (as == BR_RANG_OUT) {
		/* nobody cancelled: it is "no answer" */
		if (!p->local_status || p->local_status == 487 ||
		    rank_of(480) < rank_of(p->local_status))
			p->local_status = 480;
	} else if (!p->local_status || rank_of(487) < rank_of(p->local_status)) {
		p->local_status = 487;
	}
}

/* The current step rang long enough: what still rings is cancelled, and counts as "no answer". */
static void step_timer_expired(struct ptx *p)
{
	if (!ptx_open(p))
		return;
	step_outcome_raise(p, STEP_ANSWERED); /* rang out: no answer is not a failure */
	ptx_cancel_branches(p, NULL, false, BR_RANG_OUT);
	step_done(p);
}

static void step_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct ptx *p = arg;
	struct worker *w = p->w;

	(void)fd;
	(void)what;
	step_timer_expired(p);
	tp_flush(w);
}

static void branch_store_final(struct ptx_branch *b, struct sip_msg *resp)
{
	struct ptx *p = b->ptx;
	int rank = rank_of(resp->status);

	if (resp->status == 401 || resp->status == 407) {
		enum sip_hdr_id id =
		    resp->status == 401 ? SIP_H_WWW_AUTHENTICATE : SIP_H_PROXY_AUTHENTICATE;
		for (struct sip_hdr *h = sip_msg_hdr(resp, id); h; h = sip_msg_hdr_next(resp, h))
			buf_append_sv(&b->challenge, h->raw);
	}
	if (p->best && rank >= p->best_rank)
		return;
	char *copy = malloc(resp->len);
	if (!copy)
		return;
	memcpy(copy, resp->buf, resp->len);
	free(p->best);
	p->best = copy;
	p->best_len = resp->len;
	p->best_status = resp->status;
	p->best_rank = rank;
}

static void branch_send(struct ptx_branch *b, struct sip_msg *m, const struct tp_dest *dest);
static void branch_failed(struct ptx_branch *b, unsigned status);
static void branch_gw_ringing(struct ptx_branch *b);

/* The gateway (of dp, the rules in force) that a dialplan branch went to; -1 when none. */
static int branch_gateway(const struct ptx_branch *b, const struct dp *dp)
{
	struct sip_uri hop;

	if (!dp || !b->target.gateway)
		return -1;
	if (sip_uri_parse(sv_cstr(b->target.hop), &hop))
		hop.host = SV_NULL;
	return dp_gateway_find(dp, &b->dest.peer.u.sa, hop.host);
}

/*
 * A 401/407 on a branch the dialplan sent to a gateway, while the search
 * goes on: the gateways' side (services/gwauth.h) may answer it with our
 * account's credentials, once; the request then goes again to the same
 * gateway on a new branch (CALLING again). The CSeq stays the caller's (a
 * proxy cannot renumber a dialog it does not own); gateways take the new
 * branch. A caller dialling sip:x@gateway, a forwarding target or a Route
 * to it is never a dialplan branch, so never uses our account (toll fraud).
 */
static enum gwauth_verdict branch_gateway_challenge(struct ptx_branch *b, struct sip_msg *resp)
{
	struct ptx *p = b->ptx;
	struct worker *w = p->w;
	struct dp *dp;
	struct sip_msg *m = NULL;
	struct gwauth_req q;
	struct buf line;
	size_t used = strlen(b->target.headers);
	enum gwauth_verdict v = GWAUTH_REFUSED;

	if (!b->target.gateway || !ptx_open(p) ||
	    (b->state != BR_CALLING && b->state != BR_PROCEEDING))
		return GWAUTH_NOT_OURS;
	dp = rules_dp(rules_view_get(&w->rules, w->srv->rules));
	m = calloc(1, sizeof(*m));
	if (!m || sip_parse(m, p->req, p->req_len, 0))
		goto out;
	q = (struct gwauth_req){
	    .dp = dp,
	    .gateway = branch_gateway(b, dp),
	    .challenge = resp,
	    .answered = b->auth_answered,
	    .method = p->method,
	    .uri = b->target.uri[0] ? sv_cstr(b->target.uri) : m->ruri_raw,
	    .hasher = w->hasher,
	    .cnonce = worker_next_id(w) ^ w->srv->seed,
	};
	/* appended to the branch's own header lines; one byte kept for the terminator */
	buf_init_fixed(&line, b->target.headers + used, sizeof(b->target.headers) - used - 1);
	v = gwauth_answer(&q, &line);
	if (v != GWAUTH_ANSWER)
		goto out;
	b->target.headers[used + line.len] = '\0';
	b->auth_answered++;
	/* the old transaction stays to absorb the challenge's retransmissions */
	if (b->t)
		txn_cli_abandon(b->t);
	b->t = NULL;
	branch_stop_timer_c(b);
	br_move(b, BR_CALLING); /* the new transaction has had no provisional (CANCEL waits) */
	branch_send(b, m, &b->dest);
out:
	if (m) {
		sip_msg_release(m);
		free(m);
	}
	return v;
}

static void branch_provisional(struct ptx_branch *b, struct sip_msg *resp)
{
	struct ptx *p = b->ptx;
	unsigned st = resp->status;

	if (b->state == BR_CALLING) {
		br_move(b, BR_PROCEEDING);
		branch_gw_ringing(b);
	} else if (b->state != BR_PROCEEDING) {
		return; /* given up or being cancelled: the caller hears nothing of it */
	}
	if (ptx_has_timer_c(p)) /* Timer C restarts on every provisional */
		worker_timer_add(p->w, &b->timer_c, p->w->srv->cfg.timer_c_s * 1000);
	if (st == 100 || !ptx_open(p))
		return;
	/* one 180 for the caller, however many terminals ring (early media still goes) */
	if (st == 180 && resp->body.len == 0) {
		if (p->state == PTX_RINGING)
			return;
		ptx_move(p, PTX_RINGING);
	}
	ptx_forward_response(p, resp, SV_NULL, &b->dest.peer);
}

/*
 * A 422 for the Session-Expires we added (the caller asked for none): the
 * request goes again, on a new branch, with the interval the 422's Min-SE
 * asks for (RFC 4028 section 8.1); the caller never sees the 422.
 */
static bool branch_session_retry(struct ptx_branch *b, struct sip_msg *resp)
{
	struct ptx *p = b->ptx;
	struct sip_msg *m;

	if (!p->dlg || !p->plan.session_expires[0] || b->se_retried || !ptx_open(p) ||
	    (b->state != BR_CALLING && b->state != BR_PROCEEDING) ||
	    !dlg_session_expires_retry(p->w->srv->dlg, resp, p->plan.session_expires,
				       sizeof(p->plan.session_expires)))
		return false;
	m = calloc(1, sizeof(*m));
	if (!m || sip_parse(m, p->req, p->req_len, 0)) {
		free(m);
		return false;
	}
	if (b->t)
		txn_cli_abandon(b->t); /* it stays to absorb the 422's retransmissions */
	b->t = NULL;
	b->se_retried = true;
	branch_stop_timer_c(b);
	br_move(b, BR_CALLING); /* the new transaction has had no provisional (CANCEL waits) */
	branch_send(b, m, &b->dest);
	sip_msg_release(m);
	free(m);
	return true;
}

static void branch_response(struct txn_cli *t, struct sip_msg *resp)
{
	struct ptx_branch *b = t->tu;
	struct ptx *p = b->ptx;
	unsigned st = resp->status;

	ovl_response(p->w, resp, &b->dest.peer); /* its overload report, if any (RFC 7339) */
	if (p->dlg || (p->in_dialog && (p->method == SIP_INVITE || p->method == SIP_UPDATE)))
		dlg_on_response(p->w->srv->dlg, resp, &b->dest,
				b->target.gateway ? b->gw_name : NULL, dlg_now_ms());
	if (st < 200) {
		branch_provisional(b, resp);
		return;
	}
	if (st < 300) {
		/* every 2xx goes up at once, retransmissions too (16.7 step 5, RFC 6026) */
		ptx_forward_response(p, resp, SV_NULL, &b->dest.peer);
		if (!ptx_final_sent(p)) {
			ptx_move(p, PTX_ACCEPTED);
			step_timer_stop(p);
		}
		if (b->state != BR_DONE) {
			branch_done(b, st);
			ptx_cancel_branches(p, b, true, BR_CANCELLING);
		}
		ptx_shrink(p); /* b may be gone: not touched again */
		return;
	}
	if (b->state == BR_DONE)
		return;
	if (st == 422 && branch_session_retry(b, resp))
		return;
	if (st == 401 || st == 407) {
		enum gwauth_verdict a = branch_gateway_challenge(b, resp);
		if (a == GWAUTH_ANSWER)
			return;
		if (a == GWAUTH_REFUSED) {
			branch_failed(b, 503);
			return;
		}
	}
	if (b->state == BR_TIMED_OUT && st == 487) {
		branch_failed(b, 408); /* 16.8: Timer C gave it up, as if it had answered 408 */
		return;
	}
	if (b->state == BR_RANG_OUT && st == 487) {
		branch_done(b, st); /* rang out, nobody answered: "no answer" already set */
		step_done(p);
		return;
	}
	if (st == 486 || st == 600 || st == 603)
		step_outcome_raise(p, STEP_BUSY);
	else if (st != 408 && (st < 500 || st > 599))
		step_outcome_raise(p, STEP_ANSWERED);
	branch_done(b, st);
	branch_store_final(b, resp);
	if (st >= 600)
		ptx_cancel_branches(p, b, false, BR_CANCELLING);
	step_done(p);
}

static void branch_failed(struct ptx_branch *b, unsigned status)
{
	struct ptx *p = b->ptx;

	if (b->state == BR_DONE)
		return; /* its timers were stopped then */
	branch_done(b, status);
	if (!p->local_status || rank_of(status) < rank_of(p->local_status) ||
	    (p->local_status == 503 && status == 408))
		p->local_status = status;
	step_done(p);
}

static void branch_timeout(struct txn_cli *t, int err)
{
	struct ptx_branch *b = t->tu;

	branch_failed(b, err ? 503 : 408);
}

static void branch_terminated(struct txn_cli *t)
{
	struct ptx_branch *b = t->tu;

	if (b)
		b->t = NULL;
}

static const struct txn_cli_ops branch_ops = {
    .response = branch_response,
    .timeout = branch_timeout,
    .terminated = branch_terminated,
};

/* A gateway that timed out is marked down when the prober can bring it back. */
static void branch_gw_mark_down(struct ptx_branch *b)
{
	struct worker *w = b->ptx->w;
	struct dp *dp = rules_dp(rules_view_get(&w->rules, w->srv->rules));
	int gi = branch_gateway(b, dp);
	const struct dp_gateway *g = gi >= 0 ? dp_gateway(dp, (unsigned)gi) : NULL;

	if (!g || !g->probe || !dp_probe_interval_s(dp) || !dp_gateway_is_up(dp, (unsigned)gi))
		return;
	dp_gateway_set_up(dp, (unsigned)gi, false);
	log_warn("gateway %s (%s) is down: no answer to a call; skipped until it answers a probe",
		 g->name, g->host);
}

/* The gateway's timer: the failover timeout in CALLING, the ring timeout in PROCEEDING. */
static void gw_timer_expired(struct ptx_branch *b)
{
	struct ptx *p = b->ptx;
	struct worker *w = p->w;

	if (!b->t || !ptx_open(p))
		return;
	if (b->state == BR_CALLING) {
		w->stats.gw_timeouts++;
		log_warn("gateway %s sent no provisional response within %u ms: failing over",
			 b->gw_name, b->gw_timeout_ms);
		branch_gw_mark_down(b);
		/* 9.1, 16.10: no CANCEL before a provisional response. The INVITE is no longer
		 * retransmitted; a late provisional gets its CANCEL, and Timer B ends it */
		txn_cli_cancel(b->t, false);
		branch_failed(b, 408); /* as if it had answered 408: the next gateway */
	} else if (b->state == BR_PROCEEDING) {
		w->stats.gw_ring_timeouts++;
		log_info("gateway %s: no final answer %u ms after its first provisional "
			 "response: cancelled",
			 b->gw_name, b->gw_ring_ms);
		/* its 487 means "no answer" (480 for the caller); it rang: not a failure for
		 * another carrier to retry */
		step_outcome_raise(p, STEP_ANSWERED);
		if (!p->local_status || p->local_status == 487 ||
		    rank_of(480) < rank_of(p->local_status))
			p->local_status = 480;
		if (ptx_has_timer_c(p))
			evtimer_del(&b->timer_c);
		br_move(b, BR_RANG_OUT);
		txn_cli_cancel(b->t, false);
	}
}

static void gw_timer_fired(evutil_socket_t fd, short what, void *arg)
{
	struct ptx_branch *b = arg;
	struct worker *w = b->ptx->w;

	(void)fd;
	(void)what;
	gw_timer_expired(b);
	tp_flush(w);
}

/* A dialplan branch is on its way: its gateway's failover timer runs until a provisional. */
static void branch_gw_sent(struct ptx_branch *b)
{
	struct worker *w = b->ptx->w;
	struct dp *dp = rules_dp(rules_view_get(&w->rules, w->srv->rules));
	int gi = branch_gateway(b, dp);

	if (b->gw_name[0])
		evtimer_del(&b->gw_timer); /* sent again (our credentials): its timer starts over */
	b->gw_timeout_ms = 0;
	b->gw_ring_ms = 0;
	if (gi < 0 || b->ptx->method != SIP_INVITE)
		return;
	if (!b->gw_name[0])
		evtimer_assign(&b->gw_timer, w->base, gw_timer_fired, b);
	snprintf(b->gw_name, sizeof(b->gw_name), "%s", dp_gateway(dp, (unsigned)gi)->name);
	b->gw_timeout_ms = dp_gateway_timeout_ms(dp, (unsigned)gi);
	b->gw_ring_ms = dp_gateway_ring_timeout_ms(dp, (unsigned)gi);
	if (b->gw_timeout_ms)
		worker_timer_add(w, &b->gw_timer, b->gw_timeout_ms);
}

/* Its first provisional response: the gateway is there; the ring timeout starts. */
static void branch_gw_ringing(struct ptx_branch *b)
{
	if (!b->gw_name[0])
		return; /* not a gateway */
	evtimer_del(&b->gw_timer);
	if (b->gw_ring_ms)
		worker_timer_add(b->ptx->w, &b->gw_timer, b->gw_ring_ms);
}

/* 16.8: no final answer in time. */
static void timer_c_expired(struct ptx_branch *b)
{
	if (!b->t)
		return;
	if (b->state == BR_PROCEEDING) {
		/* ringing too long: cancel it; its 487 ends the branch as a 408 */
		if (b->gw_name[0])
			evtimer_del(&b->gw_timer);
		br_move(b, BR_TIMED_OUT);
		txn_cli_cancel(b->t, false);
	} else if (b->state == BR_CALLING) {
		txn_cli_abandon(b->t);
		b->t = NULL;
		branch_failed(b, 408);
	}
}

static void timer_c_fired(evutil_socket_t fd, short what, void *arg)
{
	struct ptx_branch *b = arg;
	struct worker *w = b->ptx->w;

	(void)fd;
	(void)what;
	timer_c_expired(b);
	tp_flush(w);
}

/*
 * Nothing reaches a PSTN gateway but what the dialplan sent there for a
 * caller we can bill (or a request inside a dialog of ours): not a number
 * dialled as sip:N@gateway, not a registered Contact or Path, forwarding
 * target or Route that names a gateway's address. One check here, where
 * every branch's destination is known, covers every way a target is made.
 */
bool fwd_may_reach(struct worker *w, const struct fwd_target *t, const struct tp_dest *dest,
		   bool pstn_ok, bool in_dialog)
{
	struct dp *dp = rules_dp(rules_view_get(&w->rules, w->srv->rules));
	struct sip_uri hop;
	sv_t host = SV_NULL;
	int gi;

	if (!dp || dp_gateway_count(dp) == 0 || in_dialog)
		return true;
	if (sip_uri_parse(sv_cstr(t->hop), &hop) == 0)
		host = hop.host;
	gi = dp_gateway_find(dp, &dest->peer.u.sa, host);
	if (gi < 0)
		return true;
	if (t->gateway && pstn_ok)
		return true;
	w->stats.calls_blocked++;
	log_info("request to gateway %s refused: %s", dp_gateway(dp, (unsigned)gi)->name,
		 t->gateway ? "the caller is neither authenticated nor a trusted peer"
			    : "gateways are reached through the dialplan only");
	return false;
}

static void branch_send(struct ptx_branch *b, struct sip_msg *m, const struct tp_dest *to)
{
	/* from this worker's own port (udp.worker_ports), where the answers come back; not to
	 * a phone behind NAT, which only lets in what comes from the port it registered with */
	struct tp_dest own = *to, *dest = &own;
	struct ptx *p = b->ptx;
	struct worker *w = p->w;
	struct buf *out = &w->req_out;
	struct txn_cli *t;
	int err;

	own.own_port = !b->target.has_received;
	if (!fwd_may_reach(w, &b->target, dest, p->pstn_ok, p->in_dialog)) {
		branch_failed(b, 403);
		return;
	}

	if (p->ovl_new && ovl_dest_admit(w->ovl, &dest->peer, ovl_now()) == OVL_SHED) {
		/* the server asked for less (RFC 7339): as if it had answered 503 */
		b->dest = *dest;
		branch_failed(b, 503);
		return;
	}
	err = txn_cli_create(w, p->method, p->plan.loop_hash, &branch_ops, b, &t);
	if (err) {
		branch_failed(b, 500);
		return;
	}
	b->t = t;
	b->dest = *dest;
	err = fwd_build(w, out, m, &p->plan, &b->target, sv_make(t->branch, t->branch_len), dest,
			(int)p->src.listen, &p->src.peer, p->in_dialog);
	if (err) {
		/* more edits than a request may take: our error, not the destination's */
		log_warn("proxy transaction %s: request to %s not built: %s", p->tag,
			 b->target.hop[0] ? b->target.hop : "the Request-URI", strerror(err));
		txn_cli_abandon(t);
		b->t = NULL;
		branch_failed(b, 500);
		return;
	}
	err = txn_cli_send(t, dest, out->p, out->len);
	if (err) {
		/* txn_cli_send terminated the transaction on a transport error */
		if (b->t == t)
			txn_cli_abandon(t);
		b->t = NULL;
		branch_failed(b, 503);
		return;
	}
	if (!br_move(b, BR_CALLING))
		return;
	if (p->method == SIP_INVITE && w->srv->cfg.timer_c_s)
		worker_timer_add(w, &b->timer_c, w->srv->cfg.timer_c_s * 1000);
	branch_gw_sent(b);
}

static void branch_dns_done(void *arg, int err, const struct dns_target *targets, size_t n)
{
	struct ptx_branch *b = arg;
	struct ptx *p = b->ptx;
	struct sip_msg *m;
	struct tp_dest dest;

	b->dq = NULL;
	if (b->state != BR_RESOLVING)
		return;
	if (err || n == 0 || dest_from_target(p->w, &b->target, &targets[0], &dest)) {
		branch_failed(b, err == ENOENT ? 404 : 503);
		return;
	}
	m = calloc(1, sizeof(*m));
	if (!m || sip_parse(m, p->req, p->req_len, 0)) {
		free(m);
		branch_failed(b, 500);
		return;
	}
	branch_send(b, m, &dest);
	sip_msg_release(m);
	free(m);
	tp_flush(p->w);
}

static void branch_start(struct ptx_branch *b, struct sip_msg *m)
{
	struct ptx *p = b->ptx;
	struct worker *w = p->w;
	struct tp_dest dest;
	struct dns_target dt;
	struct sip_uri hop;
	struct dns_query *q = NULL;

	switch (route_target_reach(w->srv->tp, &b->target)) {
	case LOC_REACH_GONE: /* its connection was the only way in: as if not registered */
		branch_failed(b, 480);
		return;
	case LOC_REACH_RECEIVED:
		if (dest_from_target(w, &b->target, NULL, &dest) == 0)
			branch_send(b, m, &dest);
		else
			branch_failed(b, 503);
		return;
	case LOC_REACH_URI: /* its Contact URI, resolved as RFC 3263 says */
		break;
	}
	if (sip_uri_parse(sv_cstr(b->target.hop), &hop)) {
		branch_failed(b, 400);
		return;
	}
	if (dns_resolve_numeric(&hop, &dt) == 0) {
		if (dest_from_target(w, &b->target, &dt, &dest) == 0)
			branch_send(b, m, &dest);
		else
			branch_failed(b, 503);
		return;
	}
	if (dns_resolve_uri(w->dns, &hop, branch_dns_done, b, &q)) {
		branch_failed(b, 503);
		return;
	}
	if (b->state == BR_RESOLVING)
		b->dq = q; /* still running (not answered from the cache): keep it to cancel it */
}

static void accepted_response(struct txn_cli *t, struct sip_msg *resp)
{
	struct ptx_accepted *a = t->tu;

	/* a 2xx retransmission (RFC 6026) */
	ptx_forward_response(a->ptx, resp, SV_NULL, &t->dest.peer);
}

static void accepted_terminated(struct txn_cli *t)
{
	struct ptx_accepted *a = t->tu;

	a->t = NULL;
}

static const struct txn_cli_ops accepted_ops = {
    .response = accepted_response,
    .terminated = accepted_terminated,
};

/*
 * The final answer is out and no branch is pending: from now on the context
 * only lets its server transaction absorb retransmissions (and retransmit a
 * non-2xx final, which the transaction holds) and forwards 2xx
 * retransmissions of the branches that answered 2xx. The copy of the request,
 * the branches (each with its target), the steps and the best response are
 * freed now instead of after the transaction's 32 s (issue 13: memory per
 * call in flight). Called only where nothing of a branch is used afterwards.
 */
static void ptx_shrink(struct ptx *p)
{
	if (!ptx_final_sent(p) || p->pending || !p->req)
		return;
	for (unsigned i = 0; i < p->nbranches; i++) {
		struct ptx_branch *b = p->br[i];
		struct ptx_accepted *a;
		branch_stop_timer_c(b);
		if (b->state == BR_RESOLVING && b->dq)
			dns_cancel(b->dq);
		if (b->t && b->t->state == TXN_ACCEPTED && (a = malloc(sizeof(*a)))) {
			*a = (struct ptx_accepted){p, b->t, p->accepted};
			p->accepted = a;
			b->t->ops = &accepted_ops;
			b->t->tu = a;
		} else if (b->t) {
			txn_cli_abandon(b->t);
		}
		buf_free(&b->challenge);
		free(b);
	}
	free(p->br);
	p->br = NULL;
	p->nbranches = p->capbranches = 0;
	for (unsigned i = 0; i < p->nsteps; i++)
		free(p->steps[i].targets);
	free(p->steps);
	p->steps = NULL;
	p->nsteps = p->cur = 0;
	free(p->best);
	p->best = NULL;
	free(p->req);
	p->req = NULL;
	p->req_len = 0;
}

static void ptx_free(struct ptx *p)
{
	for (struct ptx_accepted *a = p->accepted, *next; a; a = next) {
		next = a->next;
		if (a->t)
			txn_cli_abandon(a->t);
		free(a);
	}
	for (unsigned i = 0; i < p->nbranches; i++) {
		struct ptx_branch *b = p->br[i];
		branch_stop_timer_c(b);
		if (b->state == BR_RESOLVING && b->dq)
			dns_cancel(b->dq);
		if (b->t)
			txn_cli_abandon(b->t);
		buf_free(&b->challenge);
		free(b);
	}
	step_timer_stop(p);
	for (unsigned i = 0; i < p->nsteps; i++)
		free(p->steps[i].targets);
	if (p->policy.free_arg)
		p->policy.free_arg(p->policy.arg);
	free(p->steps);
	free(p->br);
	free(p->best);
	free(p->req);
	free(p);
}

static void ptx_srv_terminated(struct txn_srv *t)
{
	ptx_free(t->tu);
}

static void ptx_srv_failed(struct txn_srv *t)
{
	(void)t; /* no ACK for our final (Timer H): nothing more to do than end */
}

static const struct txn_srv_ops ptx_srv_ops = {
    .failed = ptx_srv_failed,
    .terminated = ptx_srv_terminated,
};

int fwd_add_step(struct ptx *p, const struct fwd_step *step)
{
	struct fwd_step *ns = realloc(p->steps, sizeof(*ns) * (p->nsteps + 1));
	struct fwd_step *st;

	if (!ns)
		return ENOMEM;
	p->steps = ns;
	st = &p->steps[p->nsteps];
	st->targets = malloc(sizeof(*st->targets) * (step->n ? step->n : 1));
	if (!st->targets)
		return ENOMEM;
	memcpy(st->targets, step->targets, sizeof(*st->targets) * step->n);
	st->n = step->n;
	st->ring_ms = step->ring_ms;
	st->only_on_failure = step->only_on_failure;
	p->nsteps++;
	return 0;
}

static struct ptx_branch *branch_new(struct ptx *p, const struct fwd_target *t)
{
	struct ptx_branch *b;

	if (p->nbranches == p->capbranches) {
		unsigned ncap = p->capbranches ? p->capbranches * 2 : 4;
		struct ptx_branch **nb = realloc(p->br, sizeof(*nb) * ncap);
		if (!nb)
			return NULL;
		p->br = nb;
		p->capbranches = ncap;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->ptx = p;
	b->state = BR_RESOLVING;
	b->target = *t;
	b->step = p->cur;
	if (ptx_has_timer_c(p))
		evtimer_assign(&b->timer_c, p->w->base, timer_c_fired, b);
	buf_init(&b->challenge, 8192);
	p->br[p->nbranches++] = b;
	return b;
}

/*
 * Starts the current step's branches (skipping empty steps). m is the
 * received request when there is one at hand; later steps work from the copy.
 */
static void step_start(struct ptx *p, struct sip_msg *m)
{
	struct sip_msg *copy = NULL;
	struct fwd_step *st;

	while (p->cur < p->nsteps && p->steps[p->cur].n == 0)
		p->cur++; /* a step nobody could take: skipped at once */
	if (p->cur >= p->nsteps) {
		if (!p->local_status)
			p->local_status = 480;
		ptx_finish(p);
		return;
	}
	st = &p->steps[p->cur];
	p->outcome = STEP_FAILED;
	if (st->ring_ms && !event_initialized(&p->step_timer))
		evtimer_assign(&p->step_timer, p->w->base, step_timer_fired, p);
	if (!m) {
		copy = calloc(1, sizeof(*copy));
		if (!copy || sip_parse(copy, p->req, p->req_len, 0)) {
			free(copy);
			p->local_status = 500;
			ptx_finish(p);
			return;
		}
		m = copy;
	}
	p->pending++; /* the step's start itself: branches that fail at once wait for it */
	for (size_t i = 0; i < st->n && ptx_open(p); i++) {
		struct ptx_branch *b = branch_new(p, &st->targets[i]);
		if (!b)
			break;
		p->pending++;
		branch_start(b, m);
	}
	p->pending--;
	if (st->ring_ms && p->pending && ptx_open(p))
		worker_timer_add(p->w, &p->step_timer, st->ring_ms);
	if (copy) {
		sip_msg_release(copy);
		free(copy);
	}
	step_done(p); /* every branch of it may have failed at once */
}

enum proxy_step fwd_stateful_steps(struct preq *r, const struct fwd_plan *plan,
				   const struct fwd_step *steps, size_t nsteps,
				   const struct fwd_policy *policy)
{
	struct worker *w = r->w;
	struct sip_msg *m = r->m;
	struct ptx *p;
	int err;
	unsigned minse;

	if (w->srv->dlg && !r->in_dialog && m->method == SIP_INVITE && plan->record_route &&
	    (minse = dlg_session_too_brief(w->srv->dlg, m))) {
		char line[40];
		int n = snprintf(line, sizeof(line), "Min-SE: %u\r\n", minse);
		proxy_reply(r, 422, NULL, sv_make(line, (size_t)n));
		return PROXY_DONE;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		goto nomem;
	p->w = w;
	p->state = PTX_TRYING;
	p->req = malloc(m->len);
	if (!p->req)
		goto nomem;
	memcpy(p->req, m->buf, m->len);
	p->req_len = m->len;
	p->src = *r->src;
	p->plan = *plan;
	p->method = m->method;
	p->pstn_ok = proxy_caller_known(r);
	p->in_dialog = r->in_dialog;
	p->ovl_new = !r->in_dialog && m->method != SIP_ACK && m->method != SIP_CANCEL;
	if (policy)
		p->policy = *policy;
	for (size_t i = 0; i < nsteps; i++) {
		if (fwd_add_step(p, &steps[i]))
			goto nomem;
	}
	proxy_stateless_tag(r, p->tag, sizeof(p->tag));
	err = txn_srv_init(w, &p->srv, m, r->src, &ptx_srv_ops, p);
	if (err) {
		/* EEXIST: a retransmission that raced us; the first copy is being handled */
		txn_srv_cleanup(&p->srv);
		p->policy.free_arg = NULL; /* the caller still owns it */
		ptx_free(p);
		return PROXY_DONE;
	}
	r->ptx = p;
	r->txn = fwd_ptx_srv(p);
	if (w->srv->dlg && r->in_dialog)
		dlg_on_request(w->srv->dlg, m, dlg_now_ms());
	else if (w->srv->dlg && m->method == SIP_INVITE && plan->record_route) {
		char who[STORE_USER_MAX + STORE_DOMAIN_MAX + 16];
		call_identity(r, who, sizeof(who));
		p->dlg = dlg_on_invite(w->srv->dlg, m, r->src, w->id, who, dlg_now_ms()) == 0;
		dlg_session_expires_line(w->srv->dlg, m, p->plan.session_expires,
					 sizeof(p->plan.session_expires));
	}
	if (m->method == SIP_INVITE)
		proxy_reply(r, 100, NULL, SV_NULL);
	step_start(p, m);
	return PROXY_DONE;
nomem:
	if (p) {
		p->policy.free_arg = NULL;
		ptx_free(p);
	}
	proxy_reply(r, 500, "Out of memory", SV_NULL);
	return PROXY_DONE;
}

enum proxy_step fwd_stateful(struct preq *r, const struct fwd_plan *plan,
			     const struct fwd_target *targets, size_t n)
{
	struct fwd_step one = {(struct fwd_target *)targets, n, 0, false};

	return fwd_stateful_steps(r, plan, &one, 1, NULL);
}

void fwd_cancel(struct preq *r, struct ptx *p)
{
	proxy_reply(r, 200, NULL, SV_NULL);
	if (!ptx_open(p) || !ptx_move(p, PTX_CANCELLING)) /* and no further step starts */
		return;
	ptx_cancel_branches(p, NULL, false, BR_CANCELLING);
	step_done(p);
}

enum ptx_state fwd_ptx_state(const struct ptx *p)
{
	return p->state;
}

unsigned fwd_ptx_nbranches(const struct ptx *p)
{
	return p->nbranches;
}

enum br_state fwd_branch_state(const struct ptx *p, unsigned i)
{
	return i < p->nbranches ? p->br[i]->state : BR_NSTATES;
}

void fwd_timer_fire(struct ptx *p, unsigned i, enum fwd_timer which)
{
	struct ptx_branch *b = i < p->nbranches ? p->br[i] : NULL;

	if (which == FWD_TIMER_STEP) {
		if (event_initialized(&p->step_timer) && evtimer_pending(&p->step_timer, NULL)) {
			evtimer_del(&p->step_timer);
			step_timer_expired(p);
		}
	} else if (b && which == FWD_TIMER_C) {
		if (ptx_has_timer_c(p) && evtimer_pending(&b->timer_c, NULL)) {
			evtimer_del(&b->timer_c);
			timer_c_expired(b);
		}
	} else if (b && which == FWD_TIMER_GW) {
		if (b->gw_name[0] && evtimer_pending(&b->gw_timer, NULL)) {
			evtimer_del(&b->gw_timer);
			gw_timer_expired(b);
		}
	}
}

/*
 * Stateless forwarding (16.11)
 */
enum proxy_step fwd_stateless(struct preq *r, const struct fwd_plan *plan,
			      const struct fwd_target *target)
{
	struct worker *w = r->w;
	const struct sip_via *via = sip_msg_via1(r->m);
	struct dns_target dt;
	struct tp_dest dest;
	struct sip_uri hop;
	char branch[64];
	int n;
	enum loc_reach reach = route_target_reach(w->srv->tp, target);

	if (reach == LOC_REACH_GONE) {
		if (r->m->method != SIP_ACK)
			proxy_reply(r, 480, NULL, SV_NULL); /* its only way in is closed */
		return PROXY_DONE;
	}
	if (reach == LOC_REACH_RECEIVED) {
		if (dest_from_target(w, target, NULL, &dest))
			goto fail;
	} else {
		if (sip_uri_parse(sv_cstr(target->hop), &hop) || dns_resolve_numeric(&hop, &dt) ||
		    dest_from_target(w, target, &dt, &dest))
			goto fail; /* a stateless element cannot wait for DNS */
	}
	if (w->srv->dlg && r->in_dialog && r->m->method == SIP_ACK)
		dlg_on_request(w->srv->dlg, r->m, dlg_now_ms()); /* an answer in the ACK */
	if (!fwd_may_reach(w, target, &dest, proxy_caller_known(r), r->in_dialog)) {
		if (r->m->method != SIP_ACK)
			proxy_reply(r, 403, "Gateways are reached through the dialplan only",
				    SV_NULL);
		return PROXY_DONE;
	}
	/* the same branch for every retransmission of the request (16.11), with a MAC over the
	 * Via the response goes back to: only responses to what we sent are forwarded */
	if (!via)
		goto fail;
	txn_branch_stateless(w->srv->txns, plan->loop_hash, via, branch);
	n = TXN_STATELESS_BRANCH_LEN;
	if (fwd_build(w, &w->req_out, r->m, plan, target, sv_make(branch, (size_t)n), &dest,
		      (int)r->src->listen, &r->src->peer, r->in_dialog)) {
		/* more edits than a request may take: our error, not the destination's */
		if (r->m->method != SIP_ACK)
			proxy_reply(r, 500, "Request could not be forwarded", SV_NULL);
		return PROXY_DONE;
	}
	tp_send(w, &dest, w->req_out.p, w->req_out.len);
	return PROXY_DONE;
fail:
	if (r->m->method != SIP_ACK)
		proxy_reply(r, 503, "No route to the destination", SV_NULL);
	return PROXY_DONE;
}

void fwd_response_stateless(struct worker *w, struct sip_msg *m, const struct tp_src *src)
{
	struct sip_hdr_iter it;
	sv_t elem;
	struct sip_via next;
	const struct sip_via *top;
	struct tp_dest dest;
	char ip[64];
	bool second = false;
	uint16_t port;
	int err;

	/* the Via below ours says where the response goes (18.2.2) */
	sip_hdr_iter_init(&it, m, SIP_H_VIA);
	if (!sip_hdr_iter_next(&it, &elem) || !sip_hdr_iter_next(&it, &elem))
		return;
	second = sip_via_parse(elem, &next, NULL) == 0;
	if (!second)
		return;
	/* only a response to a request we forwarded: the top Via names one of our addresses
	 * and carries a branch we made for the Via below it (no reflection through us) */
	top = sip_msg_via1(m);
	if (!top || !tp_is_local_address(w->srv->tp, top->host, top->port) ||
	    !txn_branch_stateless_check(w->srv->txns, top->branch, &next)) {
		w->stats.rx_forged++;
		log_debug("response %u from %s whose top Via is not ours: dropped", m->status,
			  tp_addr_ip(&src->peer, ip, sizeof(ip)));
		return;
	}
	memset(&dest, 0, sizeof(dest));
	port = next.has_rport && next.rport.len ? (uint16_t)atoi(next.rport.p) : next.port;
	if (!port)
		port = 5060;
	err = tp_addr_from_sv(next.received.len ? next.received : next.host, port,
			      next.proto == SIP_PROTO_TCP ? SIP_PROTO_TCP : SIP_PROTO_UDP,
			      &dest.peer);
	if (err)
		return;
	if (dest.peer.u.sa.sa_family == AF_INET && dest.peer.u.in.sin_addr.s_addr == 0xffffffff)
		return; /* RFC 4475 bcast: never to a broadcast address */
	dest.listen = -1;
	if (response_strip_via(w->srv, NULL, &w->resp_out, m, w, &src->peer))
		return;
	tp_send(w, &dest, w->resp_out.p, w->resp_out.len);
}
