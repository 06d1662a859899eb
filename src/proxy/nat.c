/*
 * nat.c - signalling behind NAT (docs/nat.md). A phone behind a NAT router
 * writes its private address in its Contact; in-dialog requests sent there
 * never arrive. When we forward a request or response whose Contact is not
 * where the message came from, we add to that Contact URI an alias naming
 * the real source, signed with the Record-Route key:
 *
 *   Contact: <sip:alice@192.168.1.10:5060;sb-alias=100.64.1.2~40312~u~3f0c...>
 *
 * The other party uses that URI as its remote target, so every in-dialog
 * request it sends through our Record-Route carries the alias in its
 * Request-URI: we send the request to the address it names (for TCP over
 * the connection from there) and remove the alias, so the phone sees its
 * own Contact. The signature (SipHash keyed by the route key, over the
 * Call-ID and the address) makes an alias good only for the dialog it was
 * made for and only for an address we saw the message come from: a
 * stranger cannot make us send to an address of their choice.
 */
#include "proxy/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "server/worker.h"

#define NAT_PARAM "sb-alias"

static char proto_letter(enum sip_proto p)
{
	switch (p) {
	case SIP_PROTO_UDP:
		return 'u';
	case SIP_PROTO_TCP:
		return 't';
	case SIP_PROTO_TLS:
		return 's';
	case SIP_PROTO_WS:
		return 'w';
	case SIP_PROTO_WSS:
		return 'x';
	default:
		return 0;
	}
}

static enum sip_proto proto_of_letter(char c)
{
	switch (c) {
	case 'u':
		return SIP_PROTO_UDP;
	case 't':
		return SIP_PROTO_TCP;
	case 's':
		return SIP_PROTO_TLS;
	case 'w':
		return SIP_PROTO_WS;
	case 'x':
		return SIP_PROTO_WSS;
	default:
		return SIP_PROTO_NONE;
	}
}

static uint64_t alias_mac(const struct siphash_key *k, sv_t callid, sv_t ip, uint16_t port,
			  char proto)
{
	struct siphash_state s;
	unsigned char pb[3] = {(unsigned char)(port >> 8), (unsigned char)port,
			       (unsigned char)proto};

	siphash_init(&s, k, SIPHASH_2_4);
	siphash_update(&s, "nat-alias", 9); /* never equal to a Record-Route signature */
	siphash_update(&s, callid.p, callid.len);
	siphash_update(&s, "\0", 1);
	siphash_update_lower(&s, ip.p, ip.len);
	siphash_update(&s, "\0", 1);
	siphash_update(&s, pb, sizeof(pb));
	return siphash_final(&s);
}

bool nat_contact_differs(const struct sip_uri *c, const struct tp_addr *src)
{
	enum sip_proto proto = SIP_PROTO_UDP;
	struct tp_addr ca;
	uint16_t port = c->port;

	if (c->transport.len) {
		if (sv_ieq(c->transport, SV("tcp")))
			proto = SIP_PROTO_TCP;
		else if (sv_ieq(c->transport, SV("tls")))
			proto = SIP_PROTO_TLS;
		else if (sv_ieq(c->transport, SV("ws")))
			proto = SIP_PROTO_WS;
		else if (sv_ieq(c->transport, SV("wss")))
			proto = SIP_PROTO_WSS;
		else if (!sv_ieq(c->transport, SV("udp")))
			return false; /* something we do not speak: not ours to fix */
	} else if (c->kind == SIP_SCHEME_SIPS) {
		proto = SIP_PROTO_TLS;
	}
	if (!port)
		port = proto == SIP_PROTO_TLS || proto == SIP_PROTO_WSS ? 5061 : 5060;
	/* a host name is taken as meant: we cannot tell where it leads without DNS */
	if (tp_addr_from_sv(c->host, port, proto, &ca))
		return false;
	return !tp_addr_equal(&ca, src);
}

size_t nat_alias_print(const struct siphash_key *k, sv_t callid, const struct tp_addr *src,
		       char *out, size_t len)
{
	char ip[64], hex[ROUTE_SIG_LEN + 1];
	char letter = proto_letter(src->proto);
	uint16_t port = tp_addr_port(src);
	int n;

	if (!letter || !tp_addr_ip(src, ip, sizeof(ip)))
		return 0;
	sv_hex64(hex, alias_mac(k, callid, sv_cstr(ip), port, letter));
	hex[ROUTE_SIG_LEN] = '\0';
	n = snprintf(out, len, ";" NAT_PARAM "=%s%s%s~%u~%c~%s",
		     src->u.sa.sa_family == AF_INET6 ? "[" : "", ip,
		     src->u.sa.sa_family == AF_INET6 ? "]" : "", (unsigned)port, letter, hex);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

int nat_alias_verify(const struct siphash_key *k, sv_t callid, sv_t value, struct tp_addr *a)
{
	sv_t f[4], rest = value, ip;
	uint32_t port;
	enum sip_proto proto;
	char want[ROUTE_SIG_LEN];
	unsigned char diff = 0;
	bool bracketed;
	size_t i;

	/* ip~port~t~mac: four fields, none empty */
	for (i = 0; i < 4; i++) {
		const char *sep = i < 3 && rest.len ? memchr(rest.p, '~', rest.len) : NULL;
		size_t n = sep ? (size_t)(sep - rest.p) : rest.len;
		if (i < 3 && !sep)
			return EINVAL;
		f[i] = sv_make(rest.p, n);
		if (!n)
			return EINVAL;
		rest = sep ? sv_sub(rest, n + 1, rest.len - n - 1) : SV_NULL;
	}
	if (f[2].len != 1 || f[3].len != ROUTE_SIG_LEN || sv_to_u32(f[1], &port) || port == 0 ||
	    port > 65535)
		return EINVAL;
	proto = proto_of_letter(f[2].p[0]);
	ip = f[0];
	bracketed = ip.len >= 2 && ip.p[0] == '[' && ip.p[ip.len - 1] == ']';
	if (bracketed)
		ip = sv_sub(ip, 1, ip.len - 2);
	if (proto == SIP_PROTO_NONE || tp_addr_from_sv(ip, (uint16_t)port, proto, a) ||
	    bracketed != (a->u.sa.sa_family == AF_INET6))
		return EINVAL;
	/* signed over the address as we print it: a different spelling is a different alias */
	{
		char canon[64];
		if (!tp_addr_ip(a, canon, sizeof(canon)) || !sv_eq(ip, sv_cstr(canon)))
			return EINVAL;
	}
	sv_hex64(want, alias_mac(k, callid, ip, (uint16_t)port, f[2].p[0]));
	for (i = 0; i < ROUTE_SIG_LEN; i++)
		diff |= (unsigned char)(sv_lower_char(f[3].p[i]) ^ want[i]);
	return diff ? EPERM : 0;
}

/*
 * The alias for a forwarded message's Contact: set when it has one that is
 * not where the message came from. text gets ";sb-alias=...>" and *n the
 * length without the '>' (a Contact without angle brackets gets them).
 */
/*
 * The usual case without parsing: a plain sip: Contact (no transport
 * parameter) whose host:port is exactly the source's IPv4 address and port,
 * over UDP. True only when that is certain; false sends the caller to the
 * full parse and comparison.
 */
static bool contact_is_source(sv_t value, const struct tp_addr *src)
{
	char hp[24], *p = hp;
	const unsigned char *ip = (const unsigned char *)&src->u.in.sin_addr;
	const char *at, *end = value.p + value.len, *t;
	unsigned port;

	if (src->proto != SIP_PROTO_UDP || src->u.sa.sa_family != AF_INET ||
	    memchr(value.p, ',', value.len) || memmem(value.p, value.len, "sips:", 5))
		return false;
	/* a transport parameter other than udp: the full comparison decides */
	t = memmem(value.p, value.len, "transport=", 10);
	if (t && (end - t < 13 || strncasecmp(t + 10, "udp", 3) != 0 ||
		  (t + 13 < end && t[13] != ';' && t[13] != '>')))
		return false;
	/* "a.b.c.d:port" without inet_ntop or printf */
	for (int i = 0; i < 4; i++) {
		unsigned v = ip[i];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : ':';
	}
	port = ntohs(src->u.in.sin_port);
	{
		char digits[6];
		int n = 0;
		do {
			digits[n++] = (char)('0' + port % 10);
			port /= 10;
		} while (port);
		while (n)
			*p++ = digits[--n];
	}
	at = memmem(value.p, value.len, hp, (size_t)(p - hp));
	if (!at || at == value.p || (at[-1] != '@' && at[-1] != ':'))
		return false;
	at += p - hp;
	return at == end || *at == '>' || *at == ';';
}

static void alias_for(const struct server *srv, struct sip_msg *m, const struct tp_addr *from,
		      char *text, size_t len, size_t *n)
{
	struct sip_hdr *h = sip_msg_hdr(m, SIP_H_CONTACT);
	struct sip_naddr na;
	struct sip_uri u;
	size_t k;

	*n = 0;
	if (!route_nat_alias_on(srv) || !h || !from || contact_is_source(h->value, from) ||
	    sip_naddr_parse(h->value, &na, NULL) || sip_uri_parse(na.uri, &u) ||
	    !nat_contact_differs(&u, from))
		return;
	if (sip_param_find(u.params, SV(NAT_PARAM), &(sv_t){0}))
		return; /* already aliased by us (a spiral) or by a proxy before us */
	k = nat_alias_print(route_key_of(srv), sip_msg_callid(m), from, text, len - 1);
	if (!k)
		return;
	text[k] = '>';
	text[k + 1] = '\0';
	*n = k;
}

void nat_plan_contact(struct preq *r, struct fwd_plan *plan)
{
	plan->nat_alias_len = 0;
	if (r->m->method == SIP_REGISTER || !(plan->record_route || r->in_dialog))
		return;
	alias_for(r->srv, r->m, &r->src->peer, plan->nat_alias, sizeof(plan->nat_alias),
		  &plan->nat_alias_len);
	if (plan->nat_alias_len)
		r->w->stats.nat_alias_added++;
}

int nat_edit_contact(struct sip_edit_list *l, struct sip_msg *m, const char *text, size_t n)
{
	struct sip_hdr *h = sip_msg_hdr(m, SIP_H_CONTACT);
	struct sip_naddr na;
	struct sip_uri u;
	const char *at;

	if (!n || !h || sip_naddr_parse(h->value, &na, NULL) || sip_uri_parse(na.uri, &u))
		return 0;
	at = u.headers.len ? u.headers.p - 1 : na.uri.p + na.uri.len;
	if (na.bracketed)
		return sip_edit_add(l, at, 0, sv_make(text, n));
	/* Contact: sip:a@b;expires=60 - the params after the URI are the header's */
	if (sip_edit_add(l, na.uri.p, 0, SV("<")))
		return E2BIG;
	return sip_edit_add(l, at, 0, sv_make(text, n + 1));
}

int nat_response_contact(struct worker *w, struct sip_edit_list *l, struct sip_msg *resp,
			 const struct tp_addr *from, char *text, size_t len)
{
	const struct sip_cseq *cs = sip_msg_cseq(resp);
	const struct sip_naddr *to = sip_msg_to(resp);
	size_t n;

	if (resp->status <= 100 || resp->status >= 300 || !cs || !to || !to->tag.len ||
	    !(cs->method == SIP_INVITE || cs->method == SIP_SUBSCRIBE || cs->method == SIP_REFER ||
	      cs->method == SIP_NOTIFY || cs->method == SIP_UPDATE))
		return 0;
	alias_for(w->srv, resp, from, text, len, &n);
	if (!n)
		return 0;
	w->stats.nat_alias_added++;
	return nat_edit_contact(l, resp, text, n);
}

bool nat_alias_target(struct preq *r, struct fwd_target *t)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	sv_t v, raw = r->m->ruri_raw;
	struct tp_addr a;
	size_t plen = sizeof(";" NAT_PARAM "=") - 1, start, end;
	int err;

	if (!r->in_dialog || !ruri || !sip_param_find(ruri->params, SV(NAT_PARAM), &v))
		return false;
	err = nat_alias_verify(route_key_of(r->srv), sip_msg_callid(r->m), v, &a);
	if (err) {
		r->w->stats.nat_alias_bad++;
		log_info("in-dialog %.*s: %s alias in the Request-URI ignored",
			 (int)r->m->method_name.len, r->m->method_name.p,
			 err == EPERM ? "forged" : "malformed");
		return false;
	}
	/* the R-URI without ";sb-alias=...": the phone sees its own Contact */
	if (v.p < raw.p + plen || v.p + v.len > raw.p + raw.len)
		return false;
	start = (size_t)(v.p - raw.p) - plen;
	end = (size_t)(v.p + v.len - raw.p);
	if (raw.p[start] != ';' || start + (raw.len - end) >= sizeof(t->uri))
		return false;
	memcpy(t->uri, raw.p, start);
	memcpy(t->uri + start, raw.p + end, raw.len - end);
	t->uri[start + raw.len - end] = '\0';
	t->has_received = true;
	t->received = a;
	t->conn_id = 0; /* TCP: the connection open to that address, reused (tp_send) */
	t->alias = true;
	r->w->stats.nat_alias_routed++;
	return true;
}
