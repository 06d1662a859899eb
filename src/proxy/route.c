/*
 * route.c - routing decisions that depend only on the request and the
 * server's identity: which domains and URIs are ours, the route set
 * pre-processing of RFC 3261 16.4, loop detection (16.3), and how to reach a
 * registered contact.
 */
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "server/server.h"
#include "txn/txn.h"

uint64_t route_loop_hash(struct preq *r)
{
	struct sip_msg *m = r->m;
	const struct sip_naddr *from = sip_msg_from(m), *to = sip_msg_to(m);
	const struct sip_cseq *cs = sip_msg_cseq(m);
	struct sip_hdr *route = sip_msg_hdr(m, SIP_H_ROUTE);
	uint64_t h = r->srv->seed ^ 0x100b;

	/* what decides how this element processes the request (16.6 step 8) */
	h = hash_sv(m->ruri_raw, h);
	if (from)
		h = hash_sv(from->tag, h);
	if (to)
		h = hash_sv(to->tag, h);
	h = hash_sv(sip_msg_callid(m), h);
	if (cs)
		h = hash_mix(h ^ cs->num);
	if (route)
		h = hash_sv(route->value, h);
	h = hash_sv(sip_msg_value(m, SIP_H_PROXY_REQUIRE), h);
	return h;
}

bool route_is_loop(struct preq *r)
{
	struct sip_hdr_iter it;
	sv_t elem;

	/* every Via, the top one too: when we sent the request to ourselves, it is ours */
	sip_hdr_iter_init(&it, r->m, SIP_H_VIA);
	while (sip_hdr_iter_next(&it, &elem)) {
		struct sip_via v;
		uint64_t lh;
		if (sip_via_parse(elem, &v, NULL) || !txn_branch_loop_hash(v.branch, &lh))
			continue;
		if (lh == r->loop_hash && tp_is_local_address(r->srv->tp, v.host, v.port))
			return true;
	}
	return false;
}

static bool route_value_is_myself(struct server *srv, sv_t value)
{
	struct sip_naddr na;
	struct sip_uri u;

	if (sip_naddr_parse(value, &na, NULL) || sip_uri_parse(na.uri, &u))
		return false;
	return proxy_uri_is_myself(srv, &u);
}

/* Counts Route values in order; returns the last one in *last. */
static unsigned route_values(struct sip_msg *m, sv_t *first_values, unsigned max, sv_t *last)
{
	struct sip_hdr_iter it;
	sv_t elem;
	unsigned n = 0;

	sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
	while (sip_hdr_iter_next(&it, &elem)) {
		if (n < max)
			first_values[n] = elem;
		*last = elem;
		n++;
	}
	return n;
}

void route_plan(struct preq *r, struct fwd_plan *plan)
{
	struct sip_msg *m = r->m;
	const struct sip_uri *ruri = sip_msg_ruri(m);
	sv_t vals[4], last = SV_NULL;
	unsigned n = route_values(m, vals, 4, &last), i = 0;

	memset(plan, 0, sizeof(*plan));
	memcpy(plan->via_params, r->via_params, r->via_params_len);
	plan->via_params_len = r->via_params_len;
	plan->via_drop_rport = r->via_drop_rport;
	plan->loop_hash = r->loop_hash;
	plan->record_route = r->srv->cfg.record_route;
	r->ruri_override = SV_NULL;
	/* 16.4: a strict router upstream sent us our own Record-Route as the R-URI */
	if (ruri && n && ruri->lr && !ruri->user.len && proxy_uri_is_myself(r->srv, ruri)) {
		struct sip_naddr na;
		if (sip_naddr_parse(last, &na, NULL) == 0) {
			r->ruri_override = na.uri;
			plan->pop_last_route = true;
			n--;
		}
	}
	/* pop the Route values that are ours (one, or two when we double-record-routed) */
	while (i < n && i < 4 && route_value_is_myself(r->srv, vals[i]))
		i++;
	plan->pop_routes = i;
	nat_plan_contact(r, plan); /* a Contact behind NAT gets its alias (nat.c) */
}

sv_t route_next_hop(struct preq *r, const struct fwd_plan *plan)
{
	struct sip_hdr_iter it;
	sv_t elem;
	unsigned i = 0, total = 0;

	sip_hdr_iter_init(&it, r->m, SIP_H_ROUTE);
	while (sip_hdr_iter_next(&it, &elem))
		total++;
	if (plan->pop_last_route)
		total--;
	sip_hdr_iter_init(&it, r->m, SIP_H_ROUTE);
	while (i < total && sip_hdr_iter_next(&it, &elem)) {
		if (i++ == plan->pop_routes) {
			struct sip_naddr na;
			if (sip_naddr_parse(elem, &na, NULL) == 0)
				return na.uri;
			return SV_NULL;
		}
	}
	return SV_NULL;
}

/* Same sizes: the copies below cannot be cut. */
_Static_assert(sizeof(((struct fwd_target *)0)->uri) == sizeof(((struct loc_target *)0)->uri) &&
		   sizeof(((struct fwd_target *)0)->path) ==
		       sizeof(((struct loc_target *)0)->path) &&
		   sizeof(((struct fwd_target *)0)->hop) == sizeof(((struct loc_target *)0)->uri),
	       "a binding's URIs fit a target's");

void route_target_from_binding(struct fwd_target *t, const struct loc_target *b)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->uri, b->uri, strlen(b->uri) + 1);
	memcpy(t->path, b->path, strlen(b->path) + 1);
	t->q = b->q;
	t->terminal = b->terminal;
	t->expires = b->expires;
	if (b->path[0]) {
		/* the first Path element is the next hop (shorter than the Path it is in) */
		sv_t list = sv_cstr(b->path);
		sv_t first = sip_list_split(&list);
		struct sip_naddr na;
		if (sip_naddr_parse(first, &na, NULL) == 0) {
			memcpy(t->hop, na.uri.p, na.uri.len);
			t->hop[na.uri.len] = '\0';
		}
		return;
	}
	memcpy(t->hop, b->uri, strlen(b->uri) + 1);
	if (!b->received.len)
		return;
	/*
	 * A contact that registered over a connection is reached over it while
	 * it is open, else at its URI, or not at all (route_target_reach); one
	 * whose address is private and differs from where the REGISTER came
	 * from is behind NAT: send to where it came from.
	 */
	if (b->received.proto != SIP_PROTO_UDP) {
		t->has_received = true;
		t->received = b->received;
		t->conn_id = b->conn_id;
		t->conn_only = loc_target_conn_only(b);
		return;
	}
	if (loc_target_reach(b, false) == LOC_REACH_RECEIVED) {
		t->has_received = true;
		t->received = b->received;
	}
}

enum loc_reach route_target_reach(struct tp_table *tp, const struct fwd_target *t)
{
	if (!t->has_received)
		return LOC_REACH_URI;
	if (t->alias || t->received.proto == SIP_PROTO_UDP || tp_conn_alive(tp, t->conn_id))
		return LOC_REACH_RECEIVED;
	/* its connection is gone: it is no destination any more (item 7 of issue 13) */
	return t->conn_only ? LOC_REACH_GONE : LOC_REACH_URI;
}

/*
 * Signed Record-Route. Our Record-Route carries ";sb=" and 16 hex digits: a
 * SipHash, keyed by the server's route key, over the dialog's Call-ID, the
 * From tag of the request that created it, and the host and port of the
 * remote target that in-dialog requests on this route set may go to. The
 * Record-Route in the request is signed for the caller's Contact (where the
 * callee's requests go); the same entry in a response carrying the callee's
 * Contact is re-signed for that Contact (RFC 3261 16.7 step 4 lets a proxy
 * rewrite its own Record-Route there), which is where the caller's requests
 * go. A request is in a dialog of ours only when its top Route is ours and
 * its signature verifies for its Call-ID, one of its tags and its
 * Request-URI: a forged To tag or a copied route set leads nowhere else.
 */
static void sig_target(struct siphash_state *s, sv_t host, uint16_t port)
{
	unsigned char pb[2] = {(unsigned char)(port >> 8), (unsigned char)port};

	if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
		host = sv_sub(host, 1, host.len - 2); /* an IPv6 reference: the address */
	siphash_update_lower(s, host.p, host.len);
	siphash_update(s, "\0", 1);
	siphash_update(s, pb, 2);
}

void route_sign(const struct server *srv, sv_t callid, sv_t tag, sv_t host, uint16_t port,
		char out[ROUTE_SIG_LEN + 1])
{
	struct siphash_state s;

	siphash_init(&s, &srv->route_key, SIPHASH_2_4);
	siphash_update(&s, callid.p, callid.len);
	siphash_update(&s, "\0", 1);
	siphash_update(&s, tag.p, tag.len);
	siphash_update(&s, "\0", 1);
	sig_target(&s, host, port);
	sv_hex64(out, siphash_final(&s));
	out[ROUTE_SIG_LEN] = '\0';
}

int route_sign_contact(const struct server *srv, const struct sip_msg *m, sv_t tag,
		       char out[ROUTE_SIG_LEN + 1])
{
	struct sip_naddr na;
	struct sip_uri u;
	struct sip_hdr *h = sip_msg_hdr((struct sip_msg *)m, SIP_H_CONTACT);
	sv_t callid = sip_msg_callid((struct sip_msg *)m);

	if (!h || sip_naddr_parse(h->value, &na, NULL) || sip_uri_parse(na.uri, &u)) {
		/* no usable Contact: a route set nobody can use (no request may follow it) */
		route_sign(srv, callid, tag, SV("\x01"), 0, out);
		return ENOENT;
	}
	route_sign(srv, callid, tag, u.host, u.port, out);
	return 0;
}

const struct siphash_key *route_key_of(const struct server *srv)
{
	return &srv->route_key;
}

bool route_nat_alias_on(const struct server *srv)
{
	return srv->cfg.nat_contact_alias;
}

/* The ";sb=" value of a Route/Record-Route URI of ours, or empty. */
sv_t route_sig_of(struct server *srv, sv_t value)
{
	struct sip_naddr na;
	struct sip_uri u;
	sv_t sig;

	if (sip_naddr_parse(value, &na, NULL) || sip_uri_parse(na.uri, &u) ||
	    !proxy_uri_is_myself(srv, &u) || !sip_param_find(u.params, SV("sb"), &sig) ||
	    sig.len != ROUTE_SIG_LEN)
		return SV_NULL;
	return sig;
}

static bool sig_matches(struct preq *r, sv_t sig, sv_t host, uint16_t port)
{
	const struct sip_naddr *from = sip_msg_from(r->m), *to = sip_msg_to(r->m);
	sv_t callid = sip_msg_callid(r->m);
	char want[ROUTE_SIG_LEN + 1];
	unsigned char diff = 0;

	for (int k = 0; k < 2; k++) {
		sv_t tag = k == 0 ? (from ? from->tag : SV_NULL) : (to ? to->tag : SV_NULL);
		if (!tag.len)
			continue;
		route_sign(r->srv, callid, tag, host, port, want);
		diff = 0;
		for (size_t i = 0; i < ROUTE_SIG_LEN; i++)
			diff |= (unsigned char)(sv_lower_char(sig.p[i]) ^ want[i]);
		if (diff == 0)
			return true;
	}
	return false;
}

bool route_signed(struct preq *r)
{
	struct sip_msg *m = r->m;
	const struct sip_uri *ruri = sip_msg_ruri(m);
	struct sip_hdr_iter it;
	sv_t first = SV_NULL, last = SV_NULL, elem, sig;
	struct sip_naddr na;
	struct sip_uri target;

	if (!ruri)
		return false;
	sip_hdr_iter_init(&it, m, SIP_H_ROUTE);
	while (sip_hdr_iter_next(&it, &elem)) {
		if (!first.len)
			first = elem;
		last = elem;
	}
	if (first.len && (sig = route_sig_of(r->srv, first)).len)
		return sig_matches(r, sig, ruri->host, ruri->port);
	/* 16.4: a strict router before us put our Record-Route into the Request-URI and the
	 * remote target into the last Route */
	if (last.len && ruri->lr && !ruri->user.len && proxy_uri_is_myself(r->srv, ruri) &&
	    sip_param_find(ruri->params, SV("sb"), &sig) && sig.len == ROUTE_SIG_LEN &&
	    sip_naddr_parse(last, &na, NULL) == 0 && sip_uri_parse(na.uri, &target) == 0)
		return sig_matches(r, sig, target.host, target.port);
	return false;
}
