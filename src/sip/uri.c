/*
 * uri.c - SIP, SIPS and tel URI parsing and RFC 3261 19.1.4 comparison.
 *
 * A sip: URI is split into views (user, password, host, port, params,
 * headers) without unescaping anything: escapes are resolved only when two
 * URIs are compared or a user part is looked up, so that a URI is forwarded
 * exactly as it arrived. Other schemes are accepted as opaque absolute URIs:
 * the caller decides whether it can serve them (416 otherwise).
 */
#include "sip/chartab.h"
#include "sip/internal.h"

#include <errno.h>

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_scheme_char(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t sip_unescape(sv_t src, char *dst)
{
	size_t n = 0;

	for (size_t i = 0; i < src.len; i++) {
		int hi, lo;
		if (src.p[i] == '%' && i + 2 < src.len && (hi = hexval(src.p[i + 1])) >= 0 &&
		    (lo = hexval(src.p[i + 2])) >= 0) {
			dst[n++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			dst[n++] = src.p[i];
		}
	}
	return n;
}

/* Characters RFC 3261 allows unescaped in a user part (unreserved / user-unreserved)
 * plus the escape itself; anything else makes the URI malformed. */
static bool is_user_char(unsigned char c)
{
	return sip_cc(c, SIP_CC_USER);
}

static bool is_password_char(unsigned char c)
{
	return is_user_char(c) || c == ':';
}

static bool is_paramchar(unsigned char c)
{
	return sip_cc(c, SIP_CC_PARAM);
}

static int check_params(struct sip_uri *u)
{
	sv_t v = u->params;
	size_t i = 0;

	/* uri-parameter = pname ["=" pvalue]; both non-empty, no LWS */
	while (i <= v.len) {
		size_t start = i, eq = 0;
		sv_t name, value = SV_NULL;
		while (i < v.len && v.p[i] != ';') {
			if (v.p[i] == '=' && !eq)
				eq = i;
			else if (!is_paramchar((unsigned char)v.p[i]))
				return EINVAL;
			i++;
		}
		if (eq) {
			name = sv_make(v.p + start, eq - start);
			value = sv_make(v.p + eq + 1, i - eq - 1);
			if (value.len == 0)
				return EINVAL;
		} else {
			name = sv_make(v.p + start, i - start);
		}
		if (name.len == 0)
			return EINVAL;
		if (sv_ieq(name, SV("transport")))
			u->transport = value;
		else if (sv_ieq(name, SV("maddr")))
			u->maddr = value;
		else if (sv_ieq(name, SV("user")))
			u->user_param = value;
		else if (sv_ieq(name, SV("lr")))
			u->lr = true;
		i++;
	}
	return 0;
}

static int parse_sip_uri(sv_t rest, struct sip_uri *u)
{
	const char *at = memchr(rest.p, '@', rest.len);
	sv_t v;
	size_t i;

	if (at) {
		sv_t userinfo = sv_make(rest.p, (size_t)(at - rest.p));
		ptrdiff_t colon = sv_find(userinfo, ':');
		if (colon >= 0) {
			u->user = sv_make(userinfo.p, (size_t)colon);
			u->password = sv_sub(userinfo, (size_t)colon + 1, userinfo.len);
		} else {
			u->user = userinfo;
		}
		if (u->user.len == 0)
			return EINVAL;
		for (i = 0; i < u->user.len; i++) {
			if (!is_user_char((unsigned char)u->user.p[i]))
				return EINVAL;
		}
		for (i = 0; i < u->password.len; i++) {
			if (!is_password_char((unsigned char)u->password.p[i]))
				return EINVAL;
		}
		v = sv_sub(rest, (size_t)(at - rest.p) + 1, rest.len);
	} else {
		v = rest;
	}
	if (sip_hostport_take(&v, &u->host, &u->host_v6, &u->port, false))
		return EINVAL;
	if (v.len && v.p[0] == ';') {
		ptrdiff_t q = sv_find(v, '?');
		size_t end = q >= 0 ? (size_t)q : v.len;
		u->params = sv_make(v.p + 1, end - 1);
		if (check_params(u))
			return EINVAL;
		v = sv_sub(v, end, v.len);
	}
	if (v.len && v.p[0] == '?') {
		u->headers = sv_sub(v, 1, v.len);
		if (u->headers.len == 0)
			return EINVAL;
		v = sv_sub(v, v.len, 0);
	}
	return v.len ? EINVAL : 0;
}

int sip_uri_parse(sv_t raw, struct sip_uri *u)
{
	size_t i = 0;
	sv_t rest;

	*u = (struct sip_uri){0};
	u->raw = raw;
	if (raw.len == 0 || !is_alpha(raw.p[0]))
		return EINVAL;
	while (i < raw.len && is_scheme_char(raw.p[i]))
		i++;
	if (i >= raw.len || raw.p[i] != ':')
		return EINVAL;
	u->scheme = sv_make(raw.p, i);
	rest = sv_sub(raw, i + 1, raw.len);
	for (size_t k = 0; k < rest.len; k++) {
		if ((unsigned char)rest.p[k] <= ' ' || rest.p[k] == '<' || rest.p[k] == '>' ||
		    rest.p[k] == '"')
			return EINVAL;
	}
	if (sv_ieq(u->scheme, SV("sip")))
		u->kind = SIP_SCHEME_SIP;
	else if (sv_ieq(u->scheme, SV("sips")))
		u->kind = SIP_SCHEME_SIPS;
	else if (sv_ieq(u->scheme, SV("tel")))
		u->kind = SIP_SCHEME_TEL;
	else
		u->kind = SIP_SCHEME_OTHER;

	switch (u->kind) {
	case SIP_SCHEME_SIP:
	case SIP_SCHEME_SIPS:
		return parse_sip_uri(rest, u);
	case SIP_SCHEME_TEL: {
		ptrdiff_t semi = sv_find(rest, ';');
		u->user = semi >= 0 ? sv_make(rest.p, (size_t)semi) : rest;
		u->params = semi >= 0 ? sv_sub(rest, (size_t)semi + 1, rest.len) : SV_NULL;
		return u->user.len ? 0 : EINVAL;
	}
	default:
		return rest.len ? 0 : EINVAL;
	}
}

static bool unescaped_eq(sv_t a, sv_t b, bool icase)
{
	char ba[512], bb[512];
	size_t na, nb;

	if (a.len > sizeof(ba) || b.len > sizeof(bb))
		return icase ? sv_ieq(a, b) : sv_eq(a, b);
	na = sip_unescape(a, ba);
	nb = sip_unescape(b, bb);
	return icase ? sv_ieq(sv_make(ba, na), sv_make(bb, nb))
		     : sv_eq(sv_make(ba, na), sv_make(bb, nb));
}

/* Parameters that must match when present in either URI (19.1.4). */
static const sv_t strict_params[] = {SV("user"), SV("ttl"), SV("method"), SV("maddr"),
				     SV("transport")};

static bool params_equal(sv_t pa, sv_t pb)
{
	struct sip_param p;
	sv_t cur, other;

	for (size_t i = 0; i < sizeof(strict_params) / sizeof(strict_params[0]); i++) {
		bool ina = sip_param_find(pa, strict_params[i], NULL);
		bool inb = sip_param_find(pb, strict_params[i], NULL);
		if (ina != inb)
			return false;
	}
	cur = pa;
	while (sip_param_next(&cur, &p) == 1) {
		if (sip_param_find(pb, p.name, &other) && !unescaped_eq(p.value, other, true))
			return false;
	}
	return true;
}

bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == SIP_SCHEME_OTHER)
		return sv_ieq(a->scheme, b->scheme) && sv_eq(a->raw, b->raw);
	if (!unescaped_eq(a->user, b->user, false) ||
	    !unescaped_eq(a->password, b->password, false))
		return false;
	if (!sv_ieq(a->host, b->host) || a->port != b->port)
		return false;
	if (!params_equal(a->params, b->params))
		return false;
	return unescaped_eq(a->headers, b->headers, true);
}
