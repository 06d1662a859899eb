/*
 * sdp.c - SDP (RFC 4566) as RFC 3264 offers and answers use it: a
 * zero-copy parser that checks every line the relay acts on, and a
 * rewriter that changes only the addresses and ports and copies the rest
 * byte for byte.
 *
 * The relay needs the body's c=, m= ports, a=rtcp, rtcp-mux, direction and
 * ICE attributes; codecs (rtpmap/fmtp) are validated here and looked up
 * lazily later (sdp_rtpmap_find scans the section again) so the session
 * struct stays small. Bodies come from strangers: every count is capped and
 * a cap that is hit is an error, never a truncation.
 */
#include "media/media.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#define SDP_FAIL(code, msg)                                                                        \
	do {                                                                                       \
		rc = (code);                                                                       \
		why = (msg);                                                                       \
		goto out;                                                                          \
	} while (0)

/* ------------------------------------------------------------ helpers */

/* Next whitespace-separated token of *v (single spaces per RFC 4566, tabs tolerated). */
static sv_t tok_next(sv_t *v)
{
	size_t i = 0, start;

	if (!v->len)
		return sv_make(v->p, 0);
	while (i < v->len && (v->p[i] == ' ' || v->p[i] == '\t'))
		i++;
	start = i;
	while (i < v->len && v->p[i] != ' ' && v->p[i] != '\t')
		i++;
	sv_t t = sv_make(v->p + start, i - start);
	*v = sv_make(v->p + i, v->len - i);
	return t;
}

static bool sv_is_digits(sv_t v)
{
	if (!v.len)
		return false;
	for (size_t i = 0; i < v.len; i++)
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
	return true;
}

static int parse_u16(sv_t v, uint16_t *out)
{
	uint32_t n;

	if (sv_to_u32(v, &n) || n > 65535)
		return EINVAL;
	*out = (uint16_t)n;
	return 0;
}

int sdp_ip_parse(sv_t text, struct sdp_ip *ip)
{
	char tmp[SDP_IP_STRLEN];

	memset(ip, 0, sizeof(*ip));
	if (!text.len || text.len >= sizeof(tmp))
		return EINVAL;
	memcpy(tmp, text.p, text.len);
	tmp[text.len] = '\0';
	if (inet_pton(AF_INET, tmp, ip->a) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, ip->a) == 1) {
		ip->family = AF_INET6;
		return 0;
	}
	return EINVAL;
}

void sdp_ip_format(const struct sdp_ip *ip, char out[SDP_IP_STRLEN])
{
	out[0] = '\0';
	if (ip->family == AF_INET || ip->family == AF_INET6)
		inet_ntop(ip->family, ip->a, out, SDP_IP_STRLEN);
}

bool sdp_ip_eq(const struct sdp_ip *a, const struct sdp_ip *b)
{
	if (a->family != b->family || !a->family)
		return false;
	return memcmp(a->a, b->a, a->family == AF_INET ? 4 : 16) == 0;
}

enum sdp_ip_kind sdp_ip_kind(const struct sdp_ip *ip)
{
	const uint8_t *a = ip->a;

	if (ip->family == AF_INET) {
		uint32_t v =
		    (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
		if (v == 0)
			return SDP_IP_UNSPECIFIED;
		if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		    (a[0] == 192 && a[1] == 168))
			return SDP_IP_PRIVATE;
		if (a[0] == 100 && (a[1] & 0xc0) == 64)
			return SDP_IP_SHARED;
		if (a[0] == 127)
			return SDP_IP_LOOPBACK;
		if (a[0] == 169 && a[1] == 254)
			return SDP_IP_LINK_LOCAL;
		if ((a[0] & 0xf0) == 224)
			return SDP_IP_MULTICAST;
		if (a[0] == 0 || (a[0] & 0xf0) == 240 || (a[0] == 192 && a[1] == 0 && a[2] == 2) ||
		    (a[0] == 198 && a[1] == 51 && a[2] == 100) ||
		    (a[0] == 203 && a[1] == 0 && a[2] == 113) ||
		    (a[0] == 198 && (a[1] & 0xfe) == 18))
			return SDP_IP_RESERVED;
		return SDP_IP_PUBLIC;
	}
	if (ip->family == AF_INET6) {
		static const uint8_t zero[16];
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a, zero, 16) == 0)
			return SDP_IP_UNSPECIFIED;
		if (memcmp(a, zero, 15) == 0 && a[15] == 1)
			return SDP_IP_LOOPBACK;
		if (memcmp(a, mapped, 12) == 0) {
			struct sdp_ip v4 = {.family = AF_INET};
			memcpy(v4.a, a + 12, 4);
			return sdp_ip_kind(&v4);
		}
		if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
			return SDP_IP_LINK_LOCAL;
		if ((a[0] & 0xfe) == 0xfc)
			return SDP_IP_ULA;
		if (a[0] == 0xff)
			return SDP_IP_MULTICAST;
		if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
			return SDP_IP_RESERVED; /* 2001:db8::/32 documentation */
		return SDP_IP_PUBLIC;
	}
	return SDP_IP_NAME;
}

bool sdp_ip_is_private(const struct sdp_ip *ip)
{
	enum sdp_ip_kind k = sdp_ip_kind(ip);
	return k != SDP_IP_PUBLIC && k != SDP_IP_NAME;
}

int sdp_ip_from_sockaddr(const struct sockaddr *sa, struct sdp_ip *ip, uint16_t *port)
{
	memset(ip, 0, sizeof(*ip));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		ip->family = AF_INET;
		memcpy(ip->a, &in->sin_addr, 4);
		if (port)
			*port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		ip->family = AF_INET6;
		memcpy(ip->a, &in6->sin6_addr, 16);
		if (port)
			*port = ntohs(in6->sin6_port);
		return 0;
	}
	return EAFNOSUPPORT;
}

socklen_t sdp_ip_to_sockaddr(const struct sdp_ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, ip->a, 4);
		return sizeof(*in);
	}
	if (ip->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		memcpy(&in6->sin6_addr, ip->a, 16);
		return sizeof(*in6);
	}
	return 0;
}

/* ------------------------------------------------------------ lines */

struct line {
	sv_t all;  /* with its end of line */
	sv_t text; /* without it */
	sv_t eol;  /* "\r\n", "\n" or "" at the end of the body */
};

/* The line starting at *pos; false at the end of the body. */
static bool line_next(sv_t body, size_t *pos, struct line *l)
{
	size_t start = *pos, end;
	const char *nl;

	if (start >= body.len)
		return false;
	nl = memchr(body.p + start, '\n', body.len - start);
	end = nl ? (size_t)(nl - body.p) + 1 : body.len;
	l->all = sv_make(body.p + start, end - start);
	l->text = l->all;
	if (l->text.len && l->text.p[l->text.len - 1] == '\n')
		l->text.len--;
	if (l->text.len && l->text.p[l->text.len - 1] == '\r')
		l->text.len--;
	l->eol = sv_make(l->text.p + l->text.len, l->all.len - l->text.len);
	*pos = end;
	return true;
}

/* ------------------------------------------------------------ parser */

/* The reasons that are a cap being hit (E2BIG) rather than bad syntax (EINVAL). */
static const char too_many_formats[] = "m=: too many formats";
static const char too_many_attrs[] = "too many a= lines in one section";
static const char too_many_cands[] = "a=candidate: too many candidates";

static bool why_is_cap(const char *why)
{
	return why == too_many_formats || why == too_many_attrs || why == too_many_cands;
}

static const char *parse_conn(sv_t v, sv_t line, struct sdp_conn *c)
{
	sv_t nettype = tok_next(&v), addrtype = tok_next(&v), addr = tok_next(&v);
	ptrdiff_t slash;

	if (!sv_eq(nettype, SV("IN")))
		return "c=: network type is not IN";
	if (!sv_eq(addrtype, SV("IP4")) && !sv_eq(addrtype, SV("IP6")))
		return "c=: address type is not IP4 or IP6";
	if (!addr.len)
		return "c=: no address";
	if (tok_next(&v).len)
		return "c=: text after the address";
	slash = sv_find(addr, '/');
	if (slash >= 0) {
		sv_t rest = sv_make(addr.p + slash + 1, addr.len - (size_t)slash - 1);
		ptrdiff_t s2 = sv_find(rest, '/');
		if (s2 >= 0) {
			if (!sv_is_digits(sv_make(rest.p, (size_t)s2)) ||
			    !sv_is_digits(sv_make(rest.p + s2 + 1, rest.len - (size_t)s2 - 1)))
				return "c=: bad multicast suffix";
		} else if (!sv_is_digits(rest)) {
			return "c=: bad multicast suffix";
		}
		addr.len = (size_t)slash;
	}
	memset(c, 0, sizeof(*c));
	c->present = true;
	c->line = line;
	c->addrtype = addrtype;
	c->addr = addr;
	if (sdp_ip_parse(addr, &c->ip) == 0) {
		if ((c->ip.family == AF_INET) != (addrtype.p[2] == '4'))
			return "c=: address does not match its type";
	} else {
		/* a host name: letters, digits, '-', '.' */
		for (size_t i = 0; i < addr.len; i++) {
			char ch = addr.p[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
				return "c=: address is neither an IP address nor a host name";
		}
	}
	return NULL;
}

static const char *parse_media_line(sv_t v, struct sdp_media *m)
{
	sv_t port;
	ptrdiff_t slash;

	m->media = tok_next(&v);
	port = tok_next(&v);
	m->proto = tok_next(&v);
	if (!m->media.len || !port.len || !m->proto.len)
		return "m=: needs media, port, proto and formats";
	m->port_span = port;
	m->nports = 1;
	slash = sv_find(port, '/');
	if (slash >= 0) {
		uint16_t n;
		if (parse_u16(sv_make(port.p + slash + 1, port.len - (size_t)slash - 1), &n) || !n)
			return "m=: bad number of ports";
		m->nports = n;
		port.len = (size_t)slash;
	}
	if (parse_u16(port, &m->port))
		return "m=: bad port";
	m->rtp = sv_istarts(m->proto, SV("RTP/")) || sv_istarts(m->proto, SV("UDP/TLS/RTP/")) ||
		 sv_istarts(m->proto, SV("TCP/TLS/RTP/")) || sv_istarts(m->proto, SV("TCP/RTP/"));
	while (v.len && (v.p[0] == ' ' || v.p[0] == '\t'))
		v = sv_make(v.p + 1, v.len - 1);
	m->fmts = v;
	for (;;) {
		sv_t f = tok_next(&v);
		if (!f.len)
			break;
		if (m->nfmt == SDP_MAX_FORMATS)
			return too_many_formats;
		if (m->rtp) {
			uint32_t pt;
			if (sv_to_u32(f, &pt) || pt > 127)
				return "m=: an RTP format is not a payload type 0..127";
		}
		m->nfmt++;
	}
	if (!m->nfmt)
		return "m=: no formats";
	m->fmts = sv_trim(m->fmts);
	return NULL;
}

static bool is_ice_attr(sv_t name)
{
	return sv_eq(name, SV("candidate")) || sv_eq(name, SV("ice-ufrag")) ||
	       sv_eq(name, SV("ice-pwd")) || sv_eq(name, SV("end-of-candidates")) ||
	       sv_eq(name, SV("ice-options")) || sv_eq(name, SV("ice-lite")) ||
	       sv_eq(name, SV("remote-candidates")) || sv_eq(name, SV("ice-mismatch")) ||
	       sv_eq(name, SV("ice-pacing"));
}

/* Splits "a=name[:value]" text (after "a="). */
static void attr_split(sv_t a, sv_t *name, sv_t *value, bool *has_value)
{
	ptrdiff_t colon = sv_find(a, ':');

	if (colon < 0) {
		*name = a;
		*value = SV_NULL;
		*has_value = false;
	} else {
		*name = sv_make(a.p, (size_t)colon);
		*value = sv_make(a.p + colon + 1, a.len - (size_t)colon - 1);
		*has_value = true;
	}
}

static const char *parse_rtpmap(sv_t v, struct sdp_rtpmap *r)
{
	sv_t pt = tok_next(&v), enc = tok_next(&v);
	ptrdiff_t s1, s2;
	sv_t rest;
	uint32_t n;

	if (sv_to_u32(pt, &n) || n > 127)
		return "a=rtpmap: payload type is not 0..127";
	if (tok_next(&v).len)
		return "a=rtpmap: text after the encoding";
	r->pt = n;
	s1 = sv_find(enc, '/');
	if (s1 <= 0)
		return "a=rtpmap: needs encoding/clock";
	r->encoding = sv_make(enc.p, (size_t)s1);
	rest = sv_make(enc.p + s1 + 1, enc.len - (size_t)s1 - 1);
	s2 = sv_find(rest, '/');
	r->channels = SV_NULL;
	if (s2 >= 0) {
		r->channels = sv_make(rest.p + s2 + 1, rest.len - (size_t)s2 - 1);
		rest.len = (size_t)s2;
		if (!sv_is_digits(r->channels))
			return "a=rtpmap: bad channel count";
	}
	if (sv_to_u32(rest, &r->clock) || !r->clock)
		return "a=rtpmap: bad clock rate";
	return NULL;
}

static const char *parse_rtcp_attr(sv_t v, struct sdp_media *m, sv_t line)
{
	sv_t port = tok_next(&v);

	if (parse_u16(port, &m->rtcp_port))
		return "a=rtcp: bad port";
	m->has_rtcp = true;
	memset(&m->rtcp_conn, 0, sizeof(m->rtcp_conn));
	while (v.len && (v.p[0] == ' ' || v.p[0] == '\t'))
		v = sv_make(v.p + 1, v.len - 1);
	if (v.len)
		return parse_conn(v, line, &m->rtcp_conn);
	return NULL;
}

static const char *parse_candidate(sv_t v)
{
	/* foundation component transport priority address port "typ" type ... */
	sv_t f = tok_next(&v), comp = tok_next(&v), tr = tok_next(&v), prio = tok_next(&v);
	sv_t addr = tok_next(&v), port = tok_next(&v), typ = tok_next(&v), type = tok_next(&v);
	uint32_t n;
	uint16_t p;

	if (!f.len || !tr.len || !addr.len || !type.len)
		return "a=candidate: too few fields";
	if (sv_to_u32(comp, &n) || n < 1 || n > 256)
		return "a=candidate: bad component";
	if (sv_to_u32(prio, &n))
		return "a=candidate: bad priority";
	if (parse_u16(port, &p))
		return "a=candidate: bad port";
	if (!sv_eq(typ, SV("typ")))
		return "a=candidate: no typ";
	return NULL;
}

/* One a= line: in m when it is media-level, else session-level. */
static const char *parse_attr(sv_t a, sv_t line, struct sdp_session *s, struct sdp_media *m)
{
	sv_t name, value;
	bool has;
	enum sdp_dir dir = SDP_DIR_UNSET;
	uint16_t *nattr = m ? &m->nattr : &s->nattr;

	if (++*nattr > SDP_MAX_ATTRS)
		return too_many_attrs;
	attr_split(a, &name, &value, &has);
	if (!name.len)
		return "a=: empty attribute name";
	if (sv_eq(name, SV("sendrecv")))
		dir = SDP_SENDRECV;
	else if (sv_eq(name, SV("sendonly")))
		dir = SDP_SENDONLY;
	else if (sv_eq(name, SV("recvonly")))
		dir = SDP_RECVONLY;
	else if (sv_eq(name, SV("inactive")))
		dir = SDP_INACTIVE;
	if (dir != SDP_DIR_UNSET) {
		enum sdp_dir *d = m ? &m->dir : &s->dir;
		if (has)
			return "a=: a direction attribute takes no value";
		if (*d != SDP_DIR_UNSET)
			return "a=: two direction attributes in one section";
		*d = dir;
		return NULL;
	}
	if (sv_eq(name, SV("ice-ufrag")) || sv_eq(name, SV("ice-pwd"))) {
		sv_t *dst = sv_eq(name, SV("ice-ufrag")) ? (m ? &m->ice_ufrag : &s->ice_ufrag)
							 : (m ? &m->ice_pwd : &s->ice_pwd);
		if (!has || !value.len)
			return "a=ice-ufrag/ice-pwd: empty value";
		*dst = value;
		return NULL;
	}
	if (sv_eq(name, SV("ice-lite"))) {
		if (m)
			return "a=ice-lite: session-level only";
		s->ice_lite = true;
		return NULL;
	}
	if (!m)
		return NULL; /* other session-level attributes pass through */
	if (sv_eq(name, SV("rtcp-mux"))) {
		m->rtcp_mux = true;
	} else if (sv_eq(name, SV("rtcp"))) {
		if (m->has_rtcp)
			return "a=rtcp: twice in one section";
		return has ? parse_rtcp_attr(value, m, line) : "a=rtcp: no port";
	} else if (sv_eq(name, SV("rtpmap"))) {
		struct sdp_rtpmap r;
		m->nrtpmap++;
		return has ? parse_rtpmap(value, &r) : "a=rtpmap: no value";
	} else if (sv_eq(name, SV("fmtp"))) {
		sv_t v = value, f = tok_next(&v);
		m->nfmtp++;
		if (!has || !f.len)
			return "a=fmtp: no format";
	} else if (sv_eq(name, SV("ptime"))) {
		sv_t v = sv_trim(value);
		ptrdiff_t dot = sv_find(v, '.');
		if (dot >= 0) {
			if (!sv_is_digits(sv_make(v.p + dot + 1, v.len - (size_t)dot - 1)))
				return "a=ptime: bad value";
			v.len = (size_t)dot;
		}
		if (!has || sv_to_u32(v, &m->ptime) || m->ptime > 10000)
			return "a=ptime: bad value";
	} else if (sv_eq(name, SV("candidate"))) {
		if (++m->ncand > SDP_MAX_CANDIDATES)
			return too_many_cands;
		return has ? parse_candidate(value) : "a=candidate: no value";
	} else if (sv_eq(name, SV("end-of-candidates"))) {
		m->end_of_candidates = true;
	}
	return NULL;
}

int sdp_parse(sv_t body, struct sdp_session *s, struct sdp_error *err)
{
	struct line l;
	size_t pos = 0;
	unsigned lineno = 0;
	struct sdp_media *m = NULL;
	bool have_o = false, have_s = false, blank = false;
	const char *why = NULL;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	s->body = body;
	if (body.len > SDP_MAX_BODY)
		SDP_FAIL(EMSGSIZE, "body too large");
	if (memchr(body.p ? body.p : "", '\0', body.len))
		SDP_FAIL(EINVAL, "NUL byte in the body");
	while (line_next(body, &pos, &l)) {
		sv_t v;
		char type;

		lineno++;
		if (!l.text.len) {
			blank = true; /* tolerated at the end only */
			continue;
		}
		if (blank)
			SDP_FAIL(EINVAL, "empty line inside the body");
		if (l.text.len < 2 || l.text.p[1] != '=' || l.text.p[0] < 'a' || l.text.p[0] > 'z')
			SDP_FAIL(EINVAL, "a line is not <letter>=<value>");
		type = l.text.p[0];
		v = sv_make(l.text.p + 2, l.text.len - 2);
		if (lineno == 1) {
			if (type != 'v' || !sv_eq(v, SV("0")))
				SDP_FAIL(EINVAL, "the first line is not v=0");
			continue;
		}
		if (m)
			m->section.len = (size_t)(l.all.p + l.all.len - m->section.p);
		switch (type) {
		case 'v':
			SDP_FAIL(EINVAL, "a second v= line");
		case 'o': {
			sv_t t = v;
			unsigned n = 0;
			if (have_o || m)
				SDP_FAIL(EINVAL, "o= out of place");
			while (tok_next(&t).len)
				n++;
			if (n != 6)
				SDP_FAIL(EINVAL, "o= needs six fields");
			s->origin = v;
			have_o = true;
			break;
		}
		case 's':
			if (have_s || m)
				SDP_FAIL(EINVAL, "s= out of place");
			s->name = v;
			have_s = true;
			break;
		case 'c': {
			struct sdp_conn *c = m ? &m->conn : &s->conn;
			if (c->present)
				SDP_FAIL(EINVAL, "two c= lines in one section");
			why = parse_conn(v, l.all, c);
			if (why)
				SDP_FAIL(EINVAL, why);
			break;
		}
		case 'b': {
			uint16_t *nbw = m ? &m->nbw : &s->nbw;
			ptrdiff_t colon = sv_find(v, ':');
			if (++*nbw > SDP_MAX_BANDWIDTH)
				SDP_FAIL(E2BIG, "too many b= lines in one section");
			if (colon <= 0 ||
			    !sv_is_digits(sv_make(v.p + colon + 1, v.len - (size_t)colon - 1)))
				SDP_FAIL(EINVAL, "b=: needs <type>:<bandwidth>");
			break;
		}
		case 'm':
			if (!have_o)
				SDP_FAIL(EINVAL, "m= before o=");
			if (s->nmedia == SDP_MAX_MEDIA)
				SDP_FAIL(E2BIG, "too many m= sections");
			m = &s->media[s->nmedia++];
			m->line = l.all;
			m->section = l.all;
			why = parse_media_line(v, m);
			if (why)
				SDP_FAIL(why_is_cap(why) ? E2BIG : EINVAL, why);
			break;
		case 'a':
			why = parse_attr(v, l.all, s, m);
			if (why)
				SDP_FAIL(why_is_cap(why) ? E2BIG : EINVAL, why);
			break;
		default:
			/* i= u= e= p= t= r= z= k= and unknown letters pass through */
			break;
		}
	}
	if (!lineno)
		SDP_FAIL(EINVAL, "empty body");
	lineno = 0;
	if (!have_o)
		SDP_FAIL(EINVAL, "no o= line");
	if (!have_s)
		SDP_FAIL(EINVAL, "no s= line");
	for (unsigned i = 0; i < s->nmedia; i++) {
		struct sdp_media *mm = &s->media[i];
		if (mm->port && !mm->conn.present && !s->conn.present)
			SDP_FAIL(EINVAL,
				 "a media section without a c= line (none at session level)");
	}
out:
	if (err) {
		err->line = rc ? lineno : 0;
		err->why = rc ? why : NULL;
	}
	return rc;
}

const struct sdp_conn *sdp_media_conn(const struct sdp_session *s, const struct sdp_media *m)
{
	if (m->conn.present)
		return &m->conn;
	return s->conn.present ? &s->conn : NULL;
}

enum sdp_dir sdp_media_dir(const struct sdp_session *s, const struct sdp_media *m)
{
	if (m->dir != SDP_DIR_UNSET)
		return m->dir;
	return s->dir != SDP_DIR_UNSET ? s->dir : SDP_SENDRECV;
}

bool sdp_media_held(const struct sdp_session *s, const struct sdp_media *m)
{
	const struct sdp_conn *c = sdp_media_conn(s, m);
	enum sdp_dir d = sdp_media_dir(s, m);

	if (d == SDP_SENDONLY || d == SDP_INACTIVE)
		return true;
	return c && sdp_ip_kind(&c->ip) == SDP_IP_UNSPECIFIED;
}

/* Static payload types of RFC 3551 that phones send without an rtpmap. */
static const struct {
	uint8_t pt;
	const char *enc;
	uint32_t clock;
} static_pts[] = {
    {0, "PCMU", 8000},	 {3, "GSM", 8000},    {4, "G723", 8000},   {5, "DVI4", 8000},
    {6, "DVI4", 16000},	 {7, "LPC", 8000},    {8, "PCMA", 8000},   {9, "G722", 8000},
    {10, "L16", 44100},	 {11, "L16", 44100},  {12, "QCELP", 8000}, {13, "CN", 8000},
    {14, "MPA", 90000},	 {15, "G728", 8000},  {16, "DVI4", 11025}, {17, "DVI4", 22050},
    {18, "G729", 8000},	 {25, "CelB", 90000}, {26, "JPEG", 90000}, {28, "nv", 90000},
    {31, "H261", 90000}, {32, "MPV", 90000},  {33, "MP2T", 90000}, {34, "H263", 90000},
};

int sdp_rtpmap_find(const struct sdp_media *m, unsigned pt, struct sdp_rtpmap *out)
{
	struct line l;
	size_t pos = 0;

	line_next(m->section, &pos, &l);
	while (line_next(m->section, &pos, &l)) {
		sv_t name, value;
		bool has;
		if (l.text.len < 2 || l.text.p[0] != 'a' || l.text.p[1] != '=')
			continue;
		attr_split(sv_make(l.text.p + 2, l.text.len - 2), &name, &value, &has);
		if (!has || !sv_eq(name, SV("rtpmap")))
			continue;
		if (!parse_rtpmap(value, out) && out->pt == pt)
			return 0;
	}
	for (size_t i = 0; i < sizeof(static_pts) / sizeof(static_pts[0]); i++) {
		if (static_pts[i].pt == pt) {
			out->pt = pt;
			out->encoding = sv_cstr(static_pts[i].enc);
			out->clock = static_pts[i].clock;
			out->channels = SV_NULL;
			return 0;
		}
	}
	return ENOENT;
}

int sdp_fmtp_find(const struct sdp_media *m, sv_t fmt, sv_t *params)
{
	struct line l;
	size_t pos = 0;

	line_next(m->section, &pos, &l);
	while (line_next(m->section, &pos, &l)) {
		sv_t name, value, f;
		bool has;
		if (l.text.len < 2 || l.text.p[0] != 'a' || l.text.p[1] != '=')
			continue;
		attr_split(sv_make(l.text.p + 2, l.text.len - 2), &name, &value, &has);
		if (!has || !sv_eq(name, SV("fmtp")))
			continue;
		f = tok_next(&value);
		if (sv_eq(f, fmt)) {
			*params = sv_trim(value);
			return 0;
		}
	}
	return ENOENT;
}

/* ------------------------------------------------------------ rewriter */

static void put_addr(struct buf *out, const struct sdp_ip *ip)
{
	char txt[SDP_IP_STRLEN];

	sdp_ip_format(ip, txt);
	buf_append_str(out, ip->family == AF_INET6 ? "IN IP6 " : "IN IP4 ");
	buf_append_str(out, txt);
}

/* The address a rewritten c= carries: the plan's, or unspecified when the original was (hold). */
static struct sdp_ip rw_addr(const struct sdp_conn *orig, const struct sdp_rw_media *r)
{
	struct sdp_ip ip = r->addr;

	if (orig && orig->present && sdp_ip_kind(&orig->ip) == SDP_IP_UNSPECIFIED)
		memset(ip.a, 0, sizeof(ip.a));
	return ip;
}

static void put_conn(struct buf *out, const struct sdp_ip *ip, sv_t eol)
{
	buf_append_str(out, "c=");
	put_addr(out, ip);
	buf_append_sv(out, eol.len ? eol : SV("\r\n"));
}

/* Is media section i rewritten (not kept, not rejected)? */
static bool rw_active(const struct sdp_session *s, const struct sdp_rewrite *rw, unsigned i)
{
	return !rw->media[i].keep && s->media[i].port != 0;
}

int sdp_rewrite(const struct sdp_session *s, const struct sdp_rewrite *rw, struct buf *out,
		struct sdp_error *err)
{
	struct line l;
	size_t pos = 0, start_len = out->len;
	unsigned lineno = 0, sect = 0; /* 0 = session level, i + 1 = media i */
	int sess_user = -1;	       /* the media whose address the session c= takes */
	struct sdp_ip sess_ip = {0};
	bool pending_c = false; /* a c= must be inserted into the current section */
	struct sdp_ip pending_ip = {0};
	sv_t pending_line = SV_NULL; /* or this original line (a kept section) */
	const char *why = NULL;
	int rc = 0;

	if (rw->nmedia != s->nmedia)
		SDP_FAIL(EINVAL, "the plan does not have one entry per media section");
	for (unsigned i = 0; i < s->nmedia; i++) {
		const struct sdp_rw_media *r = &rw->media[i];
		if (rw_active(s, rw, i) && r->addr.family != AF_INET && r->addr.family != AF_INET6)
			SDP_FAIL(EINVAL, "the plan has no IP address for a media section");
		if (sess_user < 0 && rw_active(s, rw, i) && !s->media[i].conn.present)
			sess_user = (int)i;
	}
	if (sess_user >= 0)
		sess_ip = rw_addr(&s->conn, &rw->media[sess_user]);

	for (;;) {
		bool more = line_next(s->body, &pos, &l);
		char type = more && l.text.len >= 2 ? l.text.p[0] : 0;
		sv_t v = more && l.text.len >= 2 ? sv_make(l.text.p + 2, l.text.len - 2) : SV_NULL;

		lineno++;
		/* a pending c= goes after m= and i=, before anything else of its section */
		if (pending_c && (!more || type != 'i')) {
			if (out->len > start_len && out->p[out->len - 1] != '\n')
				buf_append_str(out, "\r\n");
			if (pending_line.len)
				buf_append_sv(out, pending_line);
			else
				put_conn(out, &pending_ip, SV("\r\n"));
			if (pending_line.len && pending_line.p[pending_line.len - 1] != '\n')
				buf_append_str(out, "\r\n");
			pending_c = false;
		}
		if (!more)
			break;
		if (type == 'm') {
			unsigned i = sect++;
			const struct sdp_media *m = &s->media[i];
			const struct sdp_rw_media *r = &rw->media[i];
			if (!rw_active(s, rw, i)) {
				buf_append_sv(out, l.all);
				/* a kept section living on a session c= that changed gets its own
				 */
				if (rw->media[i].keep && m->port && !m->conn.present &&
				    sess_user >= 0 && !sdp_ip_eq(&sess_ip, &s->conn.ip)) {
					pending_c = true;
					pending_line = s->conn.line;
				}
				continue;
			}
			buf_append(out, l.all.p, (size_t)(m->port_span.p - l.all.p));
			buf_append_u32(out, r->port);
			buf_append(
			    out, m->port_span.p + m->port_span.len,
			    (size_t)(l.all.p + l.all.len - (m->port_span.p + m->port_span.len)));
			if (!m->conn.present) {
				struct sdp_ip want = rw_addr(&s->conn, r);
				if (!sdp_ip_eq(&want, &sess_ip)) {
					pending_c = true;
					pending_line = SV_NULL;
					pending_ip = want;
				}
			}
			continue;
		}
		if (type == 'c') {
			if (sect == 0) {
				if (sess_user < 0) {
					buf_append_sv(out, l.all);
				} else {
					put_conn(out, &sess_ip, l.eol);
				}
			} else if (rw_active(s, rw, sect - 1)) {
				struct sdp_ip ip =
				    rw_addr(&s->media[sect - 1].conn, &rw->media[sect - 1]);
				put_conn(out, &ip, l.eol);
			} else {
				buf_append_sv(out, l.all);
			}
			continue;
		}
		if (type == 'a') {
			sv_t name, value;
			bool has;
			attr_split(v, &name, &value, &has);
			if (rw->strip_ice && is_ice_attr(name))
				continue;
			if (sect > 0 && rw_active(s, rw, sect - 1) && sv_eq(name, SV("rtcp"))) {
				const struct sdp_media *m = &s->media[sect - 1];
				const struct sdp_rw_media *r = &rw->media[sect - 1];
				uint32_t port = r->rtcp_port ? r->rtcp_port : (uint32_t)r->port + 1;
				buf_append_str(out, "a=rtcp:");
				buf_append_u32(out, port > 65535 ? 65535 : port);
				if (m->rtcp_conn.present) {
					struct sdp_ip ip = rw_addr(&m->rtcp_conn, r);
					buf_append_char(out, ' ');
					put_addr(out, &ip);
				}
				buf_append_sv(out, l.eol);
				continue;
			}
		}
		buf_append_sv(out, l.all);
	}
	lineno = 0;
	if (out->err)
		SDP_FAIL(out->err, "the rewritten body does not fit");
	if (out->len - start_len > SDP_MAX_BODY)
		SDP_FAIL(EMSGSIZE, "the rewritten body is too large");
out:
	if (err) {
		err->line = rc ? lineno : 0;
		err->why = rc ? why : NULL;
	}
	return rc;
}

/* ------------------------------------------------------------ bodies */

#define SDP_MAX_NEST 3

static bool ct_is(sv_t ct, sv_t type)
{
	ptrdiff_t semi = sv_find(ct, ';');
	sv_t base = sv_trim(semi >= 0 ? sv_make(ct.p, (size_t)semi) : ct);
	return sv_ieq(base, type);
}

/* The boundary parameter of a multipart Content-Type. */
static int ct_boundary(sv_t ct, sv_t *boundary)
{
	ptrdiff_t semi;

	while ((semi = sv_find(ct, ';')) >= 0) {
		sv_t p;
		ct = sv_make(ct.p + semi + 1, ct.len - (size_t)semi - 1);
		semi = sv_find(ct, ';');
		p = sv_trim(semi >= 0 ? sv_make(ct.p, (size_t)semi) : ct);
		if (sv_istarts(p, SV("boundary="))) {
			sv_t b = sv_trim(sv_make(p.p + 9, p.len - 9));
			if (b.len >= 2 && b.p[0] == '"' && b.p[b.len - 1] == '"')
				b = sv_make(b.p + 1, b.len - 2);
			if (!b.len || b.len > 70)
				return EINVAL; /* RFC 2046 5.1.1: 1 to 70 characters */
			*boundary = b;
			return 0;
		}
	}
	return EINVAL;
}

/* Finds "--boundary" at a line start at or after from; returns its offset or -1. */
static ptrdiff_t find_delim(sv_t body, size_t from, sv_t boundary)
{
	for (size_t i = from; i + 2 + boundary.len <= body.len; i++) {
		const char *hit = memchr(body.p + i, '-', body.len - i);
		if (!hit)
			return -1;
		i = (size_t)(hit - body.p);
		if (i + 2 + boundary.len > body.len)
			return -1;
		if ((i == 0 || body.p[i - 1] == '\n') && body.p[i + 1] == '-' &&
		    memcmp(body.p + i + 2, boundary.p, boundary.len) == 0)
			return (ptrdiff_t)i;
	}
	return -1;
}

static int body_find(sv_t ct, sv_t body, sv_t *sdp, const char **why, unsigned depth)
{
	sv_t boundary;
	ptrdiff_t d;

	if (ct_is(ct, SV("application/sdp"))) {
		*sdp = body;
		return 0;
	}
	if (!sv_istarts(sv_trim(ct), SV("multipart/")))
		return ENOENT;
	if (depth >= SDP_MAX_NEST) {
		*why = "multipart nested too deep";
		return E2BIG;
	}
	if (ct_boundary(ct, &boundary)) {
		*why = "multipart without a valid boundary";
		return EINVAL;
	}
	d = find_delim(body, 0, boundary);
	if (d < 0) {
		*why = "multipart: no delimiter";
		return EINVAL;
	}
	for (unsigned parts = 0;; parts++) {
		size_t p = (size_t)d + 2 + boundary.len;
		sv_t part_ct = SV("text/plain"), part;
		ptrdiff_t next;
		struct line l;
		bool has_len = false, has_enc = false;
		int rc;

		if (parts > 64) {
			*why = "multipart: too many parts";
			return E2BIG;
		}
		if (p + 2 <= body.len && body.p[p] == '-' && body.p[p + 1] == '-')
			return ENOENT; /* close delimiter */
		/* rest of the delimiter line (transport padding) */
		if (!line_next(body, &p, &l)) {
			*why = "multipart: truncated";
			return EINVAL;
		}
		for (;;) {
			if (!line_next(body, &p, &l)) {
				*why = "multipart: part headers not ended";
				return EINVAL;
			}
			if (!l.text.len)
				break;
			if (sv_istarts(l.text, SV("content-type:")))
				part_ct = sv_trim(sv_make(l.text.p + 13, l.text.len - 13));
			else if (sv_istarts(l.text, SV("content-length:")))
				has_len = true;
			else if (sv_istarts(l.text, SV("content-transfer-encoding:"))) {
				sv_t e = sv_trim(sv_make(l.text.p + 26, l.text.len - 26));
				has_enc = !sv_ieq(e, SV("7bit")) && !sv_ieq(e, SV("8bit")) &&
					  !sv_ieq(e, SV("binary"));
			}
		}
		next = find_delim(body, p, boundary);
		if (next < 0) {
			*why = "multipart: no close delimiter";
			return EINVAL;
		}
		/* the CRLF before the delimiter belongs to the delimiter */
		part = sv_make(body.p + p, (size_t)next - p);
		if (part.len && part.p[part.len - 1] == '\n')
			part.len--;
		if (part.len && part.p[part.len - 1] == '\r')
			part.len--;
		rc = body_find(part_ct, part, sdp, why, depth + 1);
		if (rc == 0 && (has_len || has_enc) && ct_is(part_ct, SV("application/sdp"))) {
			*why = has_len ? "multipart: the SDP part has a Content-Length"
				       : "multipart: the SDP part has a transfer encoding";
			return ENOTSUP;
		}
		if (rc != ENOENT)
			return rc;
		d = next;
	}
}

int sdp_body_find(sv_t content_type, sv_t body, sv_t *sdp, struct sdp_error *err)
{
	const char *why = NULL;
	int rc = body_find(content_type, body, sdp, &why, 0);

	if (err) {
		err->line = 0;
		err->why = rc ? (why ? why : "no SDP in this body") : NULL;
	}
	return rc;
}

int sdp_body_rewrite(sv_t body, const struct sdp_session *s, const struct sdp_rewrite *rw,
		     struct buf *out, struct sdp_error *err)
{
	size_t before, after;

	if (s->body.p < body.p || s->body.p + s->body.len > body.p + body.len) {
		if (err) {
			err->line = 0;
			err->why = "the SDP is not inside this body";
		}
		return EINVAL;
	}
	before = (size_t)(s->body.p - body.p);
	after = body.len - before - s->body.len;
	buf_append(out, body.p, before);
	int rc = sdp_rewrite(s, rw, out, err);
	if (rc)
		return rc;
	buf_append(out, s->body.p + s->body.len, after);
	if (out->err) {
		if (err) {
			err->line = 0;
			err->why = "the rewritten body does not fit";
		}
		return out->err;
	}
	return 0;
}
