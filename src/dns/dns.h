/*
 * dns.h - RFC 3263 next-hop location: turns a SIP URI into an ordered list
 * of (transport, address, port) targets using NAPTR, SRV, A and AAAA lookups
 * through c-ares, driven by a worker's libevent loop.
 *
 * Each worker has its own resolver (no locks). A numeric host needs no
 * lookup and is answered by dns_resolve_numeric() at once, which is the hot
 * path for registered contacts. Answers are cached per resolver for the
 * records' TTL (bounded by the configured cache TTL).
 */
#ifndef SB_PROXY_DNS_H
#define SB_PROXY_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sip/sip.h"

struct event_base;

#define DNS_MAX_TARGETS 16

struct dns_target {
	enum sip_proto proto;
	struct sockaddr_storage addr; /* port filled in */
	socklen_t addrlen;
};

struct dns_resolver;
struct dns_query;

/*
 * Called once per dns_resolve_uri() that returned 0, unless the query was
 * cancelled first. err is 0 with n >= 1 targets in preference order, or
 * ENOENT (no such domain / no records), ETIMEDOUT, EIO. targets is only valid
 * during the call.
 */
typedef void (*dns_done_fn)(void *arg, int err, const struct dns_target *targets, size_t n);

/* servers: NULL for /etc/resolv.conf, or "IP[:port],..." (tests run their own DNS server). */
int dns_resolver_create(struct event_base *base, const char *servers, unsigned cache_ttl_s,
			struct dns_resolver **out);
void dns_resolver_destroy(struct dns_resolver *r);

/*
 * If the URI's host is an IP literal, fills *t (transport from the
 * transport= param, else UDP for sip:, TLS for sips:; port from the URI or
 * the default 5060/5061) and returns 0; otherwise ENOENT. uri_maddr
 * (maddr param) takes precedence over the host, as RFC 3263 says.
 */
int dns_resolve_numeric(const struct sip_uri *uri, struct dns_target *t);

/*
 * Starts RFC 3263 resolution of uri: transport from the transport= param,
 * else NAPTR, else SRV for _sip._udp / _sip._tcp (_sips._tcp for sips:),
 * else A/AAAA on 5060 (5061 for sips). With an explicit port, only A/AAAA.
 * The callback may run before this returns when the answer is cached.
 * *q (optional) lets the caller cancel; it stays valid until the callback
 * runs or dns_cancel() is called.
 */
int dns_resolve_uri(struct dns_resolver *r, const struct sip_uri *uri, dns_done_fn cb, void *arg,
		    struct dns_query **q);
/* The callback will not run; safe to call once per query, before it completed. */
void dns_cancel(struct dns_query *q);

#endif
