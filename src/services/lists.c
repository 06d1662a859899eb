/*
 * lists.c - prefix and network matching for the black and white lists.
 *
 * Lists are short (tens of entries) and checked once per call, so a linear
 * scan is the right structure; a long prefix table for routing belongs to
 * the dialplan, not here.
 */
#include "services/lists.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int lists_cidr_parse(sv_t text, struct lists_cidr *out)
{
	char addr[64];
	ptrdiff_t slash = sv_find(text, '/');
	sv_t a = slash < 0 ? text : sv_make(text.p, (size_t)slash);
	unsigned max;
	uint32_t bits;

	memset(out, 0, sizeof(*out));
	if (a.len == 0 || a.len >= sizeof(addr))
		return EINVAL;
	memcpy(addr, a.p, a.len);
	addr[a.len] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return EINVAL;
	}
	out->bits = max;
	if (slash >= 0) {
		if (sv_to_u32(sv_make(text.p + slash + 1, text.len - (size_t)slash - 1), &bits) ||
		    bits > max)
			return EINVAL;
		out->bits = bits;
	}
	return 0;
}

static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool lists_cidr_match(const struct lists_cidr *nets, size_t n, const struct sockaddr *sa)
{
	const uint8_t *ip;
	uint8_t mapped[4];
	int family = sa->sa_family;

	if (family == AF_INET) {
		ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (family == AF_INET6) {
		ip = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)ip)) {
			/* an IPv4 peer on a dual-stack socket is matched by the IPv4 rules */
			memcpy(mapped, ip + 12, 4);
			ip = mapped;
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (nets[i].family == family && bits_equal(nets[i].addr, ip, nets[i].bits))
			return true;
	}
	return false;
}

bool lists_prefix_ok(sv_t prefix)
{
	if (prefix.len == 0 || prefix.len >= LISTS_PREFIX_MAX)
		return false;
	if (sv_eq(prefix, SV("*")))
		return true;
	for (size_t i = 0; i < prefix.len; i++) {
		unsigned char c = (unsigned char)prefix.p[i];
		if (c <= ' ' || c == 0x7f || c == ',' || c == '@' || c == ':' || c == '<' ||
		    c == '>' || c == '"')
			return false;
	}
	return true;
}

static bool prefix_matches(sv_t prefix, sv_t user)
{
	if (sv_eq(prefix, SV("*")))
		return true;
	return user.len >= prefix.len && memcmp(user.p, prefix.p, prefix.len) == 0;
}

bool lists_prefix_match(const char (*prefixes)[LISTS_PREFIX_MAX], size_t n, sv_t user)
{
	for (size_t i = 0; i < n; i++) {
		if (prefix_matches(sv_cstr(prefixes[i]), user))
			return true;
	}
	return false;
}

bool lists_prefix_match_csv(const char *csv, sv_t user)
{
	sv_t rest = sv_cstr(csv);

	while (rest.len) {
		ptrdiff_t comma = sv_find(rest, ',');
		sv_t item = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
		if (item.len && prefix_matches(item, user))
			return true;
		if (comma < 0)
			break;
		rest = sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
	}
	return false;
}

bool lists_global_empty(const struct lists_global *g)
{
	return !g->block_callers.n && !g->block_callees.n && !g->block_sources.n;
}

enum lists_verdict lists_global_check(const struct lists_global *g, sv_t caller,
				      bool caller_verified, sv_t callee, const struct sockaddr *sa,
				      const char **why)
{
	if (sa && lists_cidr_match(g->allow_sources.v, g->allow_sources.n, sa)) {
		*why = "source on lists.allow_sources";
		return LISTS_ALLOWED;
	}
	if (caller_verified && caller.len &&
	    lists_prefix_match(g->allow_callers.v, g->allow_callers.n, caller)) {
		*why = "caller on lists.allow_callers";
		return LISTS_ALLOWED;
	}
	if (sa && lists_cidr_match(g->block_sources.v, g->block_sources.n, sa)) {
		*why = "source address on lists.block_sources";
		return LISTS_BLOCKED;
	}
	if (lists_prefix_match(g->block_callers.v, g->block_callers.n, caller)) {
		*why = "caller on lists.block_callers";
		return LISTS_BLOCKED;
	}
	if (lists_prefix_match(g->block_callees.v, g->block_callees.n, callee)) {
		*why = "callee on lists.block_callees";
		return LISTS_BLOCKED;
	}
	*why = "no global list applies";
	return LISTS_NONE;
}

struct lists_prefixes *lists_global_prefixes(struct lists_global *g, sv_t name)
{
	if (sv_eq(name, SV("block_callers")))
		return &g->block_callers;
	if (sv_eq(name, SV("allow_callers")))
		return &g->allow_callers;
	if (sv_eq(name, SV("block_callees")))
		return &g->block_callees;
	return NULL;
}

struct lists_nets *lists_global_nets(struct lists_global *g, sv_t name)
{
	if (sv_eq(name, SV("block_sources")))
		return &g->block_sources;
	if (sv_eq(name, SV("allow_sources")))
		return &g->allow_sources;
	return NULL;
}

bool lists_cidr_equal(const struct lists_cidr *a, const struct lists_cidr *b)
{
	return a->family == b->family && a->bits == b->bits &&
	       memcmp(a->addr, b->addr, a->family == AF_INET ? 4 : 16) == 0;
}

void lists_cidr_format(const struct lists_cidr *c, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	inet_ntop(c->family, c->addr, ip, sizeof(ip));
	snprintf(out, len, "%s/%u", ip, c->bits);
}

bool lists_cidr_match_csv(sv_t csv, const struct sockaddr *sa)
{
	sv_t rest = csv;
	struct lists_cidr net;

	while (rest.len) {
		ptrdiff_t comma = sv_find(rest, ',');
		sv_t item = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
		if (item.len && lists_cidr_parse(item, &net) == 0 && lists_cidr_match(&net, 1, sa))
			return true;
		if (comma < 0)
			break;
		rest = sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
	}
	return false;
}

bool lists_bar_name_ok(sv_t name)
{
	if (name.len == 0 || name.len >= LISTS_BAR_NAME_MAX)
		return false;
	for (size_t i = 0; i < name.len; i++) {
		char c = name.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

const struct lists_bar_class *lists_bar_class_find(const struct lists_barring *b, sv_t name)
{
	for (size_t i = 0; i < b->nclasses; i++) {
		if (sv_ieq(sv_cstr(b->classes[i].name), name))
			return &b->classes[i];
	}
	return NULL;
}
