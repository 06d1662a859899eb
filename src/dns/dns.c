/*
 * dns.c - RFC 3263 section 4 resolution of SIP URIs through c-ares on a
 * worker's libevent loop.
 *
 * Why it is built this way:
 * - One c-ares channel per resolver, and a resolver per worker, so nothing
 *   here takes a lock. c-ares tells us which sockets to watch through
 *   ARES_OPT_SOCK_STATE_CB; each socket gets a read and a write event (two
 *   events, so changing interest is an add or a del, never a re-assign of an
 *   event that may be running), and one timer follows ares_timeout() so that
 *   retransmissions and timeouts happen without polling.
 * - A resolution is a pipeline of at most three steps (NAPTR, SRV,
 *   addresses). Each step runs its lookups in parallel and the next step
 *   starts when the last of them answered: a URI costs at most three round
 *   trips, and the targets keep the order of the records, not of the answers.
 * - Nothing is freed inside the callback that reported it: finished queries
 *   and closed sockets go to lists that a deferred event empties on the next
 *   loop iteration, and dns_resolver_destroy() frees what ares_destroy()
 *   finished. The user's callback therefore never runs inside c-ares.
 * - Answers are cached per resolver: NAPTR and SRV answers raw, reparsed on
 *   every hit so that each resolution gets its own RFC 2782 weighted order;
 *   A/AAAA answers as address lists. A resolution answered wholly from the
 *   cache completes before dns_resolve_uri() returns.
 */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <ares.h>
#include <event2/event.h>

#include "core/hash.h"
#include "core/log.h"
#include "core/siphash.h"

#define DNS_C_IN    1
#define DNS_T_SRV   33
#define DNS_T_NAPTR 35
/* Not a DNS type: the cache key of an A+AAAA lookup through ares_getaddrinfo. */
#define DNS_T_ADDR 0

#define DNS_NAME_MAX 256
/* Addresses kept per host name; more than that is a load balancer's job. */
#define DNS_ADDR_MAX 8
/* SRV records considered per answer. */
#define DNS_SRV_REC_MAX	  64
#define DNS_CACHE_MAX	  4096
#define DNS_CACHE_BUCKETS 4096
/* Larger answers (over TCP) are not kept: 4096 of them must stay a few MiB. */
#define DNS_CACHE_DATA_MAX 2048
/* Negative answers are cached briefly: a new record should not wait long. */
#define DNS_NEG_TTL_MAX 30
/* A SIP transaction gives up after 32 s; DNS must fail well before that. */
#define DNS_TIMEOUT_MS 1000
#define DNS_TRIES      2

struct dns_addr {
	sa_family_t family;
	unsigned char a[16];
};

/* One question of a step, and its answer until the next step reuses the slot. */
struct dns_lookup {
	struct dns_query *q;
	uint16_t type;
	uint16_t port;
	enum sip_proto proto;
	int err;
	union {
		struct ares_naptr_reply *naptr;
		struct ares_srv_reply *srv;
	} rr;
	unsigned naddr;
	struct dns_addr addr[DNS_ADDR_MAX];
	char name[DNS_NAME_MAX];
};

enum dns_step { DNS_STEP_NAPTR, DNS_STEP_SRV, DNS_STEP_ADDR };

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next; /* every live query, so destroy can find them */
	struct dns_query *done_next;
	dns_done_fn cb;
	void *arg;
	enum dns_step step;
	enum sip_proto proto; /* from transport=, or SIP_PROTO_NONE */
	uint16_t port;	      /* explicit port, or 0 */
	bool sips;
	bool starting; /* inside dns_resolve_uri(): completion is delivered there */
	bool done;
	bool cancelled;
	int err;
	unsigned pending; /* lookups of this step not answered yet, +1 while issuing */
	unsigned nlk;
	struct dns_lookup lk[DNS_MAX_TARGETS];
	char host[DNS_NAME_MAX];
};

struct dns_sock {
	struct dns_sock *next;
	struct dns_resolver *r;
	ares_socket_t fd;
	struct event *rd, *wr;
};

struct dns_cache_ent {
	struct dns_cache_ent *hnext;
	struct dns_cache_ent *older, *newer;
	uint64_t hash;
	int64_t expires;
	uint16_t type;
	int err;
	size_t len;
	unsigned char *data;
	char name[];
};

struct dns_cache {
	struct dns_cache_ent *bucket[DNS_CACHE_BUCKETS];
	struct dns_cache_ent *oldest, *newest;
	size_t n;
	struct siphash_key key; /* names come from strangers' Request-URIs and Routes */
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	bool channel_ok;
	bool destroying;
	struct event *timer;
	struct event *defer; /* delivers finished queries, frees closed sockets */
	struct dns_sock *socks;
	struct dns_sock *dead_socks;
	struct dns_query *queries;
	struct dns_query *done_head, *done_tail;
	unsigned cache_ttl;
	uint64_t rng;
	struct dns_cache cache;
};

/* One SRV record chosen for the address step. */
struct dns_plan {
	const char *name;
	uint16_t port;
	enum sip_proto proto;
};

struct dns_naptr_pick {
	unsigned short order, pref;
	enum sip_proto proto;
	const char *name;
};

static void dns_step_done(struct dns_query *q);

/*
 * Small helpers
 */

static int64_t dns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* xorshift64*: the SRV shuffle needs spread, not secrecy. */
static uint64_t dns_rand(struct dns_resolver *r)
{
	uint64_t x = r->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t dns_seed(const void *salt)
{
	uint64_t s = 0;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)salt;
	return s | 1;
}

static int dns_ares_err(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return ENOENT;
	case ARES_ETIMEOUT:
		return ETIMEDOUT;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return ECANCELED;
	default:
		return EIO;
	}
}

static enum sip_proto dns_default_proto(bool sips, enum sip_proto explicit_proto)
{
	if (explicit_proto != SIP_PROTO_NONE)
		return explicit_proto;
	return sips ? SIP_PROTO_TLS : SIP_PROTO_UDP;
}

static uint16_t dns_default_port(enum sip_proto proto)
{
	return (proto == SIP_PROTO_TLS || proto == SIP_PROTO_WSS) ? 5061 : 5060;
}

/* RFC 3263 4.1: maddr, when present, is the target instead of the host. */
static sv_t dns_uri_target(const struct sip_uri *uri)
{
	sv_t h = uri->maddr.len ? uri->maddr : uri->host;

	if (h.len >= 2 && h.p[0] == '[' && h.p[h.len - 1] == ']')
		h = sv_make(h.p + 1, h.len - 2);
	if (h.len > 1 && h.p[h.len - 1] == '.')
		h.len--;
	return h;
}

/* transport= as a protocol; sips with transport=tcp means TLS (RFC 3261 26.2.2). */
static int dns_uri_proto(const struct sip_uri *uri, enum sip_proto *proto)
{
	*proto = SIP_PROTO_NONE;
	if (uri->transport.len == 0)
		return 0;
	*proto = sip_proto_from_name(uri->transport);
	if (*proto == SIP_PROTO_OTHER)
		return EPROTONOSUPPORT;
	if (uri->kind == SIP_SCHEME_SIPS && *proto == SIP_PROTO_TCP)
		*proto = SIP_PROTO_TLS;
	if (uri->kind == SIP_SCHEME_SIPS && *proto == SIP_PROTO_UDP)
		return EPROTONOSUPPORT;
	return 0;
}

static void dns_target_set(struct dns_target *t, enum sip_proto proto, const struct dns_addr *a,
			   uint16_t port)
{
	memset(t, 0, sizeof(*t));
	t->proto = proto;
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->a, 4);
		t->addrlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a->a, 16);
		t->addrlen = sizeof(*sin6);
	}
}

static int dns_parse_ip(sv_t host, struct dns_addr *a)
{
	char buf[INET6_ADDRSTRLEN + 1];

	memset(a, 0, sizeof(*a));
	if (sv_copy(host, buf, sizeof(buf)))
		return ENOENT;
	if (inet_pton(AF_INET, buf, a->a) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, a->a) == 1)
		a->family = AF_INET6;
	else
		return ENOENT;
	return 0;
}

int dns_resolve_numeric(const struct sip_uri *uri, struct dns_target *t)
{
	struct dns_addr a;
	enum sip_proto proto;
	int err;

	if (!uri || !t)
		return EINVAL;
	if (uri->kind != SIP_SCHEME_SIP && uri->kind != SIP_SCHEME_SIPS)
		return EINVAL;
	err = dns_parse_ip(dns_uri_target(uri), &a);
	if (err)
		return err;
	err = dns_uri_proto(uri, &proto);
	if (err)
		return err;
	proto = dns_default_proto(uri->kind == SIP_SCHEME_SIPS, proto);
	dns_target_set(t, proto, &a, uri->port ? uri->port : dns_default_port(proto));
	return 0;
}

/*
 * Cache: a chained hash table for lookups and a FIFO list for eviction. It is
 * best effort: an allocation failure only means the next lookup asks again.
 */

static uint64_t dns_cache_hash(const struct dns_cache *c, uint16_t type, const char *name)
{
	struct siphash_state s;

	siphash_init(&s, &c->key, SIPHASH_1_3);
	siphash_update_u64(&s, type);
	siphash_update_lower(&s, name, strlen(name));
	return siphash_final(&s);
}

static struct dns_cache_ent **dns_cache_slot(struct dns_cache *c, uint16_t type, const char *name,
					     uint64_t h)
{
	struct dns_cache_ent **pp = &c->bucket[h % DNS_CACHE_BUCKETS];

	for (; *pp; pp = &(*pp)->hnext) {
		if ((*pp)->hash == h && (*pp)->type == type && !strcasecmp((*pp)->name, name))
			break;
	}
	return pp;
}

static void dns_cache_drop(struct dns_cache *c, struct dns_cache_ent **pp)
{
	struct dns_cache_ent *e = *pp;

	*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->n--;
	free(e);
}

static void dns_cache_evict_oldest(struct dns_cache *c)
{
	struct dns_cache_ent *e = c->oldest;

	dns_cache_drop(c, dns_cache_slot(c, e->type, e->name, e->hash));
}

static const struct dns_cache_ent *dns_cache_get(struct dns_cache *c, uint16_t type,
						 const char *name)
{
	struct dns_cache_ent **pp = dns_cache_slot(c, type, name, dns_cache_hash(c, type, name));

	if (!*pp)
		return NULL;
	if ((*pp)->expires <= dns_now()) {
		dns_cache_drop(c, pp);
		return NULL;
	}
	return *pp;
}

static void dns_cache_put(struct dns_cache *c, uint16_t type, const char *name, int err,
			  const void *data, size_t len, uint32_t ttl)
{
	uint64_t h = dns_cache_hash(c, type, name);
	struct dns_cache_ent **pp = dns_cache_slot(c, type, name, h), *e;
	size_t nl = strlen(name) + 1;

	if (ttl == 0 || len > DNS_CACHE_DATA_MAX)
		return;
	if (*pp)
		dns_cache_drop(c, pp);
	if (c->n >= DNS_CACHE_MAX)
		dns_cache_evict_oldest(c);
	e = malloc(sizeof(*e) + nl + len);
	if (!e)
		return;
	*e = (struct dns_cache_ent){.hash = h, .type = type, .err = err, .len = len};
	e->expires = dns_now() + ttl;
	memcpy(e->name, name, nl);
	e->data = (unsigned char *)e->name + nl;
	if (len)
		memcpy(e->data, data, len);
	pp = &c->bucket[h % DNS_CACHE_BUCKETS];
	e->hnext = *pp;
	*pp = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
}

static void dns_cache_clear(struct dns_cache *c)
{
	while (c->oldest)
		dns_cache_evict_oldest(c);
}

/* How long an answer may be kept: its TTL within the configured bound. */
static uint32_t dns_cache_ttl(const struct dns_resolver *r, int err, uint32_t ttl)
{
	uint32_t max = r->cache_ttl;

	if (err == ENOENT)
		return max < DNS_NEG_TTL_MAX ? max : DNS_NEG_TTL_MAX;
	if (err)
		return 0;
	return ttl < max ? ttl : max;
}

/*
 * Raw DNS messages: c-ares 1.18 parses NAPTR and SRV without their TTLs, so
 * the smallest TTL of the answer section is read here.
 */

static int dns_skip_name(const unsigned char *p, size_t len, size_t *off)
{
	size_t o = *off;

	while (o < len) {
		unsigned l = p[o];
		if ((l & 0xc0) == 0xc0) {
			*off = o + 2;
			return o + 2 <= len ? 0 : EBADMSG;
		}
		if (l & 0xc0)
			return EBADMSG;
		o += 1 + l;
		if (l == 0) {
			*off = o;
			return 0;
		}
	}
	return EBADMSG;
}

static unsigned dns_rd16(const unsigned char *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t dns_answer_ttl(const unsigned char *p, size_t len, uint32_t dflt)
{
	size_t off = 12;
	uint32_t ttl = dflt;
	unsigned qd, an;

	if (!p || len < 12)
		return dflt;
	qd = dns_rd16(p + 4);
	an = dns_rd16(p + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (dns_skip_name(p, len, &off))
			return dflt;
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		uint32_t t;
		if (dns_skip_name(p, len, &off) || off + 10 > len)
			break;
		t = (uint32_t)dns_rd16(p + off + 4) << 16 | dns_rd16(p + off + 6);
		if (t < ttl)
			ttl = t;
		off += 10 + dns_rd16(p + off + 8);
	}
	return ttl;
}

/*
 * Lookups
 */

static int dns_lookup_parse(struct dns_lookup *lk, const unsigned char *abuf, size_t alen)
{
	int st;

	if (lk->type == DNS_T_NAPTR)
		st = ares_parse_naptr_reply(abuf, (int)alen, &lk->rr.naptr);
	else
		st = ares_parse_srv_reply(abuf, (int)alen, &lk->rr.srv);
	return dns_ares_err(st);
}

static void dns_lookup_free_rr(struct dns_lookup *lk)
{
	if (lk->type == DNS_T_NAPTR && lk->rr.naptr)
		ares_free_data(lk->rr.naptr);
	else if (lk->type == DNS_T_SRV && lk->rr.srv)
		ares_free_data(lk->rr.srv);
	lk->rr.naptr = NULL;
	lk->rr.srv = NULL;
}

static void dns_lookup_release(struct dns_query *q)
{
	if (--q->pending == 0)
		dns_step_done(q);
}

static void dns_raw_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_lookup *lk = arg;
	struct dns_resolver *r = lk->q->r;
	uint32_t ttl;

	(void)timeouts;
	lk->err = dns_ares_err(status);
	if (!lk->err)
		lk->err = abuf && alen > 0 ? dns_lookup_parse(lk, abuf, (size_t)alen) : EIO;
	ttl = dns_cache_ttl(r, lk->err,
			    dns_answer_ttl(abuf, alen > 0 ? (size_t)alen : 0, r->cache_ttl));
	if (!r->destroying)
		dns_cache_put(&r->cache, lk->type, lk->name, lk->err, abuf,
			      lk->err ? 0 : (size_t)alen, ttl);
	dns_lookup_release(lk->q);
}

static bool dns_lookup_has(const struct dns_lookup *lk, const struct dns_addr *a)
{
	for (unsigned i = 0; i < lk->naddr; i++) {
		if (!memcmp(&lk->addr[i], a, sizeof(*a)))
			return true;
	}
	return false;
}

/* Keeps the addresses of one family, in answer order; returns the smallest TTL seen. */
static uint32_t dns_addr_take_family(struct dns_lookup *lk, const struct ares_addrinfo *ai,
				     int family, uint32_t ttl)
{
	for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
		struct dns_addr a = {.family = (sa_family_t)family};
		if (n->ai_family != family || lk->naddr == DNS_ADDR_MAX)
			continue;
		if (family == AF_INET)
			memcpy(a.a, &((const struct sockaddr_in *)n->ai_addr)->sin_addr, 4);
		else
			memcpy(a.a, &((const struct sockaddr_in6 *)n->ai_addr)->sin6_addr, 16);
		if (!dns_lookup_has(lk, &a))
			lk->addr[lk->naddr++] = a;
		if (n->ai_ttl >= 0 && (uint32_t)n->ai_ttl < ttl)
			ttl = (uint32_t)n->ai_ttl;
	}
	return ttl;
}

static void dns_addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_lookup *lk = arg;
	struct dns_resolver *r = lk->q->r;
	uint32_t ttl = r->cache_ttl;

	(void)timeouts;
	lk->err = dns_ares_err(status);
	if (!lk->err && ai) {
		ttl = dns_addr_take_family(lk, ai, AF_INET, ttl);
		ttl = dns_addr_take_family(lk, ai, AF_INET6, ttl);
	}
	if (!lk->err && lk->naddr == 0)
		lk->err = ENOENT;
	if (ai)
		ares_freeaddrinfo(ai);
	if (!r->destroying)
		dns_cache_put(&r->cache, DNS_T_ADDR, lk->name, lk->err, lk->addr,
			      lk->naddr * sizeof(lk->addr[0]), dns_cache_ttl(r, lk->err, ttl));
	dns_lookup_release(lk->q);
}

/* Answers lk from the cache when it can; returns true when it did. */
static bool dns_lookup_cached(struct dns_lookup *lk)
{
	const struct dns_cache_ent *e = dns_cache_get(&lk->q->r->cache, lk->type, lk->name);

	if (!e)
		return false;
	lk->err = e->err;
	if (e->err)
		return true;
	if (lk->type != DNS_T_ADDR) {
		lk->err = dns_lookup_parse(lk, e->data, e->len);
		return true;
	}
	lk->naddr = (unsigned)(e->len / sizeof(lk->addr[0]));
	memcpy(lk->addr, e->data, e->len);
	return true;
}

static void dns_lookup_start(struct dns_lookup *lk)
{
	struct dns_resolver *r = lk->q->r;
	struct ares_addrinfo_hints hints = {.ai_flags = ARES_AI_NOSORT, .ai_family = AF_UNSPEC};

	lk->q->pending++;
	if (dns_lookup_cached(lk))
		dns_lookup_release(lk->q);
	else if (lk->type == DNS_T_ADDR)
		ares_getaddrinfo(r->channel, lk->name, NULL, &hints, dns_addr_cb, lk);
	else
		ares_query(r->channel, lk->name, DNS_C_IN, lk->type, dns_raw_cb, lk);
}

/*
 * Steps: each begins, adds its lookups, then runs them. The extra pending
 * count taken by dns_step_begin() keeps a lookup answered at once (cache,
 * hosts file) from ending the step before the others were issued.
 */

static void dns_query_drop_rr(struct dns_query *q)
{
	for (unsigned i = 0; i < q->nlk; i++)
		dns_lookup_free_rr(&q->lk[i]);
}

static void dns_step_begin(struct dns_query *q, enum dns_step step)
{
	dns_query_drop_rr(q);
	q->step = step;
	q->nlk = 0;
	q->pending = 1;
}

static void dns_step_add(struct dns_query *q, uint16_t type, const char *name, enum sip_proto proto,
			 uint16_t port)
{
	struct dns_lookup *lk = &q->lk[q->nlk];

	if (q->nlk == DNS_MAX_TARGETS || strlen(name) >= sizeof(lk->name))
		return;
	memset(lk, 0, offsetof(struct dns_lookup, addr));
	lk->q = q;
	lk->type = type;
	lk->proto = proto;
	lk->port = port;
	strcpy(lk->name, name);
	q->nlk++;
}

static void dns_step_run(struct dns_query *q)
{
	unsigned n = q->nlk;

	for (unsigned i = 0; i < n; i++)
		dns_lookup_start(&q->lk[i]);
	dns_lookup_release(q);
}

static void dns_query_finish(struct dns_query *q, int err)
{
	struct dns_resolver *r = q->r;

	dns_query_drop_rr(q);
	q->err = err;
	q->done = true;
	if (q->starting)
		return;
	if (r->done_tail)
		r->done_tail->done_next = q;
	else
		r->done_head = q;
	r->done_tail = q;
	if (!r->destroying)
		event_active(r->defer, EV_TIMEOUT, 0);
}

static void dns_step_addr_host(struct dns_query *q)
{
	enum sip_proto proto = dns_default_proto(q->sips, q->proto);

	dns_step_begin(q, DNS_STEP_ADDR);
	dns_step_add(q, DNS_T_ADDR, q->host, proto, q->port ? q->port : dns_default_port(proto));
	dns_step_run(q);
}

static const char *dns_srv_prefix(enum sip_proto proto)
{
	switch (proto) {
	case SIP_PROTO_UDP:
		return "_sip._udp";
	case SIP_PROTO_TCP:
		return "_sip._tcp";
	case SIP_PROTO_TLS:
		return "_sips._tcp";
	case SIP_PROTO_SCTP:
		return "_sip._sctp";
	default:
		return NULL;
	}
}

static void dns_step_add_srv(struct dns_query *q, enum sip_proto proto)
{
	char name[DNS_NAME_MAX];
	int n = snprintf(name, sizeof(name), "%s.%s", dns_srv_prefix(proto), q->host);

	if (n > 0 && (size_t)n < sizeof(name))
		dns_step_add(q, DNS_T_SRV, name, proto, 0);
}

/* transport= given without a port: SRV for that transport (none exists for WebSockets). */
static void dns_step_srv_transport(struct dns_query *q)
{
	if (!dns_srv_prefix(q->proto)) {
		dns_step_addr_host(q);
		return;
	}
	dns_step_begin(q, DNS_STEP_SRV);
	dns_step_add_srv(q, q->proto);
	dns_step_run(q);
}

/* RFC 3263 4.1 without NAPTR: SRV for each transport we would use, UDP first. */
static void dns_step_srv_default(struct dns_query *q)
{
	dns_step_begin(q, DNS_STEP_SRV);
	if (q->sips) {
		dns_step_add_srv(q, SIP_PROTO_TLS);
	} else {
		dns_step_add_srv(q, SIP_PROTO_UDP);
		dns_step_add_srv(q, SIP_PROTO_TCP);
	}
	dns_step_run(q);
}

static void dns_step_naptr(struct dns_query *q)
{
	dns_step_begin(q, DNS_STEP_NAPTR);
	dns_step_add(q, DNS_T_NAPTR, q->host, SIP_PROTO_NONE, 0);
	dns_step_run(q);
}

static enum sip_proto dns_naptr_proto(const struct ares_naptr_reply *n, bool sips)
{
	const char *svc = (const char *)n->service;

	if (!n->flags || strcasecmp((const char *)n->flags, "s") || !svc)
		return SIP_PROTO_NONE;
	if (!n->replacement || !n->replacement[0] || !strcmp(n->replacement, "."))
		return SIP_PROTO_NONE;
	if (!strcasecmp(svc, "SIPS+D2T"))
		return SIP_PROTO_TLS;
	if (sips)
		return SIP_PROTO_NONE;
	if (!strcasecmp(svc, "SIP+D2U"))
		return SIP_PROTO_UDP;
	if (!strcasecmp(svc, "SIP+D2T"))
		return SIP_PROTO_TCP;
	return SIP_PROTO_NONE;
}

/* The usable records, by order then preference (stable for equal keys). */
static size_t dns_naptr_pick(const struct ares_naptr_reply *list, bool sips,
			     struct dns_naptr_pick *pick, size_t max)
{
	size_t n = 0;

	for (; list && n < max; list = list->next) {
		struct dns_naptr_pick p = {list->order, list->preference,
					   dns_naptr_proto(list, sips), list->replacement};
		size_t i = n;
		if (p.proto == SIP_PROTO_NONE)
			continue;
		while (i > 0 && (pick[i - 1].order > p.order ||
				 (pick[i - 1].order == p.order && pick[i - 1].pref > p.pref))) {
			pick[i] = pick[i - 1];
			i--;
		}
		pick[i] = p;
		n++;
	}
	return n;
}

static void dns_after_naptr(struct dns_query *q)
{
	struct ares_naptr_reply *list = q->lk[0].rr.naptr;
	struct dns_naptr_pick pick[DNS_MAX_TARGETS];
	int err = q->nlk ? q->lk[0].err : ENOENT;
	size_t n = 0;

	q->lk[0].rr.naptr = NULL;
	if (!err)
		n = dns_naptr_pick(list, q->sips, pick, DNS_MAX_TARGETS);
	/*
	 * RFC 3263 4.1: no usable NAPTR means SRV next. Many name servers answer a
	 * NAPTR query they do not know with REFUSED or SERVFAIL rather than
	 * NODATA: that is "no NAPTR" too. Only a timeout ends the search here,
	 * so an unreachable DNS does not cost three timeouts.
	 */
	if (err == ETIMEDOUT) {
		dns_query_finish(q, err);
	} else if (n == 0) {
		dns_step_srv_default(q);
	} else {
		dns_step_begin(q, DNS_STEP_SRV);
		for (size_t i = 0; i < n; i++)
			dns_step_add(q, DNS_T_SRV, pick[i].name, pick[i].proto, 0);
		dns_step_run(q);
	}
	if (list)
		ares_free_data(list);
}

/*
 * RFC 2782 ordering of one priority: weight-0 records first, then repeatedly
 * pick a record with probability proportional to its weight.
 */
static size_t dns_srv_shuffle(struct dns_resolver *r, struct ares_srv_reply **rec, size_t m,
			      enum sip_proto proto, struct dns_plan *plan, size_t n)
{
	for (size_t i = 0, z = 0; i < m; i++) {
		if (rec[i]->weight == 0) {
			struct ares_srv_reply *t = rec[i];
			memmove(rec + z + 1, rec + z, (i - z) * sizeof(*rec));
			rec[z++] = t;
		}
	}
	while (m > 0 && n < DNS_MAX_TARGETS) {
		uint64_t sum = 0, run = 0, pick;
		size_t k;
		for (k = 0; k < m; k++)
			sum += rec[k]->weight;
		pick = dns_rand(r) % (sum + 1);
		for (k = 0; k + 1 < m; k++) {
			run += rec[k]->weight;
			if (run >= pick)
				break;
		}
		plan[n++] = (struct dns_plan){rec[k]->host, rec[k]->port, proto};
		memmove(rec + k, rec + k + 1, (m - k - 1) * sizeof(*rec));
		m--;
	}
	return n;
}

/* Appends the records of one SRV answer to plan, by priority, shuffled within one. */
static size_t dns_srv_order(struct dns_resolver *r, struct ares_srv_reply *list,
			    enum sip_proto proto, struct dns_plan *plan, size_t n)
{
	struct ares_srv_reply *rec[DNS_SRV_REC_MAX];
	size_t m = 0;

	for (; list && m < DNS_SRV_REC_MAX; list = list->next) {
		size_t i = m;
		if (!list->host || !list->host[0] || !strcmp(list->host, "."))
			continue; /* "." means: no such service here */
		while (i > 0 && rec[i - 1]->priority > list->priority) {
			rec[i] = rec[i - 1];
			i--;
		}
		rec[i] = list;
		m++;
	}
	for (size_t i = 0, j; i < m && n < DNS_MAX_TARGETS; i = j) {
		for (j = i; j < m && rec[j]->priority == rec[i]->priority; j++)
			;
		n = dns_srv_shuffle(r, rec + i, j - i, proto, plan, n);
	}
	return n;
}

static void dns_step_addr_plan(struct dns_query *q, const struct dns_plan *plan, size_t n)
{
	dns_step_begin(q, DNS_STEP_ADDR);
	for (size_t i = 0; i < n; i++)
		dns_step_add(q, DNS_T_ADDR, plan[i].name, plan[i].proto, plan[i].port);
	dns_step_run(q);
}

/* SRV answers in lookup order -> address step; no records at all -> the host itself. */
static void dns_after_srv(struct dns_query *q)
{
	struct ares_srv_reply *lists[DNS_MAX_TARGETS] = {0};
	struct dns_plan plan[DNS_MAX_TARGETS];
	unsigned nl = q->nlk;
	size_t n = 0;
	int err = ENOENT;

	for (unsigned i = 0; i < nl; i++) {
		struct dns_lookup *lk = &q->lk[i];
		lists[i] = lk->rr.srv;
		lk->rr.srv = NULL;
		if (lk->err && lk->err != ENOENT && err == ENOENT)
			err = lk->err;
		if (lists[i])
			n = dns_srv_order(q->r, lists[i], lk->proto, plan, n);
	}
	if (n)
		dns_step_addr_plan(q, plan, n);
	else if (err == ETIMEDOUT)
		dns_query_finish(q, err);
	else
		dns_step_addr_host(q); /* no SRV (or a refused SRV query): the host itself (4.2) */
	for (unsigned i = 0; i < nl; i++) {
		if (lists[i])
			ares_free_data(lists[i]);
	}
}

static void dns_after_addr(struct dns_query *q)
{
	int err = ENOENT;

	for (unsigned i = 0; i < q->nlk; i++) {
		if (!q->lk[i].err) {
			err = 0;
			break;
		}
		if (q->lk[i].err != ENOENT && err == ENOENT)
			err = q->lk[i].err;
	}
	dns_query_finish(q, err);
}

static void dns_step_done(struct dns_query *q)
{
	if (q->cancelled || q->r->destroying) {
		dns_query_finish(q, ECANCELED);
		return;
	}
	switch (q->step) {
	case DNS_STEP_NAPTR:
		dns_after_naptr(q);
		break;
	case DNS_STEP_SRV:
		dns_after_srv(q);
		break;
	case DNS_STEP_ADDR:
		dns_after_addr(q);
		break;
	}
}

/*
 * Queries
 */

static bool dns_target_seen(const struct dns_target *t, size_t n, const struct dns_target *x)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].proto == x->proto && t[i].addrlen == x->addrlen &&
		    !memcmp(&t[i].addr, &x->addr, x->addrlen))
			return true;
	}
	return false;
}

static size_t dns_query_targets(const struct dns_query *q, struct dns_target *t)
{
	size_t n = 0;

	for (unsigned i = 0; i < q->nlk; i++) {
		const struct dns_lookup *lk = &q->lk[i];
		for (unsigned k = 0; !lk->err && k < lk->naddr && n < DNS_MAX_TARGETS; k++) {
			dns_target_set(&t[n], lk->proto, &lk->addr[k], lk->port);
			if (!dns_target_seen(t, n, &t[n]))
				n++;
		}
	}
	return n;
}

static void dns_query_deliver(struct dns_query *q)
{
	struct dns_target t[DNS_MAX_TARGETS];
	size_t n = 0;
	int err = q->err;

	if (q->cancelled)
		return;
	if (!err)
		n = dns_query_targets(q, t);
	if (!err && n == 0)
		err = ENOENT;
	if (err == ECANCELED)
		err = EIO; /* c-ares gave up on a query nobody cancelled */
	q->cb(q->arg, err, t, n);
}

static void dns_query_free(struct dns_query *q)
{
	struct dns_resolver *r = q->r;

	if (q->prev)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	dns_query_drop_rr(q);
	free(q);
}

static int dns_query_new(struct dns_resolver *r, const struct sip_uri *uri, dns_done_fn cb,
			 void *arg, struct dns_query **out)
{
	sv_t host = dns_uri_target(uri);
	struct dns_query *q;
	int err;

	if (uri->kind != SIP_SCHEME_SIP && uri->kind != SIP_SCHEME_SIPS)
		return EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return ENOMEM;
	err = dns_uri_proto(uri, &q->proto);
	if (err)
		goto out;
	if (host.len == 0 || sv_copy(host, q->host, sizeof(q->host))) {
		err = EINVAL;
		goto out;
	}
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->sips = uri->kind == SIP_SCHEME_SIPS;
	q->port = uri->port;
	q->next = r->queries;
	if (r->queries)
		r->queries->prev = q;
	r->queries = q;
	*out = q;
out:
	if (err)
		free(q);
	return err;
}

/*
 * libevent glue
 */

static void dns_timer_update(struct dns_resolver *r)
{
	struct timeval buf, *tv;

	if (r->destroying)
		return;
	tv = ares_timeout(r->channel, NULL, &buf);
	if (tv)
		evtimer_add(r->timer, tv);
	else
		evtimer_del(r->timer);
}

static void dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	(void)fd;
	(void)what;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_update(r);
}

static void dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock *s = arg;
	struct dns_resolver *r = s->r;

	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_timer_update(r);
}

static void dns_socks_free(struct dns_sock *s)
{
	while (s) {
		struct dns_sock *next = s->next;
		if (s->rd)
			event_free(s->rd);
		if (s->wr)
			event_free(s->wr);
		free(s);
		s = next;
	}
}

static struct dns_sock *dns_sock_new(struct dns_resolver *r, ares_socket_t fd)
{
	struct dns_sock *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = r;
	s->fd = fd;
	s->rd = event_new(r->base, fd, EV_READ | EV_PERSIST, dns_sock_cb, s);
	s->wr = event_new(r->base, fd, EV_WRITE | EV_PERSIST, dns_sock_cb, s);
	if (!s->rd || !s->wr) {
		dns_socks_free(s);
		return NULL;
	}
	s->next = r->socks;
	r->socks = s;
	return s;
}

/* c-ares closed the socket: stop watching it now, free its events next iteration. */
static void dns_sock_retire(struct dns_resolver *r, struct dns_sock **pp)
{
	struct dns_sock *s = *pp;

	event_del(s->rd);
	event_del(s->wr);
	*pp = s->next;
	s->next = r->dead_socks;
	r->dead_socks = s;
	if (!r->destroying)
		event_active(r->defer, EV_TIMEOUT, 0);
}

static void dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock **pp = &r->socks, *s;

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	if (!readable && !writable) {
		if (*pp)
			dns_sock_retire(r, pp);
		return;
	}
	s = *pp ? *pp : dns_sock_new(r, fd);
	if (!s) {
		log_err("dns: no memory to watch a resolver socket; its queries will time out");
		return;
	}
	if (readable)
		event_add(s->rd, NULL);
	else
		event_del(s->rd);
	if (writable)
		event_add(s->wr, NULL);
	else
		event_del(s->wr);
}

static void dns_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	struct dns_query *q;

	(void)fd;
	(void)what;
	dns_socks_free(r->dead_socks);
	r->dead_socks = NULL;
	while ((q = r->done_head)) {
		r->done_head = q->done_next;
		if (!r->done_head)
			r->done_tail = NULL;
		dns_query_deliver(q);
		dns_query_free(q);
	}
}

/*
 * Public API
 */

static int dns_channel_init(struct dns_resolver *r, const char *servers)
{
	struct ares_options o = {0};
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS;
	int st;

	/* No search domains: a SIP host is a full domain name, never a relative one. */
	o.sock_state_cb = dns_sock_state_cb;
	o.sock_state_cb_data = r;
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	st = ares_init_options(&r->channel, &o, mask);
	if (st != ARES_SUCCESS)
		return st == ARES_ENOMEM ? ENOMEM : EIO;
	r->channel_ok = true;
	if (servers) {
		st = ares_set_servers_ports_csv(r->channel, servers);
		if (st != ARES_SUCCESS)
			return st == ARES_ENOMEM ? ENOMEM : EINVAL;
	}
	return 0;
}

int dns_resolver_create(struct event_base *base, const char *servers, unsigned cache_ttl_s,
			struct dns_resolver **out)
{
	struct dns_resolver *r;
	int err;

	if (!out)
		return EINVAL;
	*out = NULL;
	if (!base)
		return EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return ENOMEM;
	r->base = base;
	r->cache_ttl = cache_ttl_s;
	r->rng = dns_seed(r);
	if (siphash_key_random(&r->cache.key)) {
		r->cache.key.k0 = dns_rand(r);
		r->cache.key.k1 = dns_rand(r);
	}
	r->timer = evtimer_new(base, dns_timer_cb, r);
	r->defer = event_new(base, -1, 0, dns_defer_cb, r);
	err = r->timer && r->defer ? dns_channel_init(r, servers) : ENOMEM;
	if (err)
		goto out;
	*out = r;
out:
	if (err) {
		if (r->channel_ok)
			ares_destroy(r->channel);
		if (r->timer)
			event_free(r->timer);
		if (r->defer)
			event_free(r->defer);
		free(r);
	}
	return err;
}

/* Not from inside a dns_done_fn: the loop delivering it still uses the resolver. */
void dns_resolver_destroy(struct dns_resolver *r)
{
	if (!r)
		return;
	r->destroying = true;
	for (struct dns_query *q = r->queries; q; q = q->next)
		q->cancelled = true;
	/* Runs every pending callback with ARES_EDESTRUCTION and closes the sockets. */
	ares_destroy(r->channel);
	while (r->queries)
		dns_query_free(r->queries);
	dns_socks_free(r->socks);
	dns_socks_free(r->dead_socks);
	event_free(r->timer);
	event_free(r->defer);
	dns_cache_clear(&r->cache);
	free(r);
}

/*
 * A numeric host, or a resolution answered wholly from the cache (or the
 * hosts file), runs cb before this returns; *q is then NULL.
 */
int dns_resolve_uri(struct dns_resolver *r, const struct sip_uri *uri, dns_done_fn cb, void *arg,
		    struct dns_query **qp)
{
	struct dns_target t;
	struct dns_query *q;
	int err;

	if (qp)
		*qp = NULL;
	if (!r || !uri || !cb)
		return EINVAL;
	err = dns_resolve_numeric(uri, &t);
	if (err != ENOENT) {
		if (!err)
			cb(arg, 0, &t, 1);
		return err;
	}
	err = dns_query_new(r, uri, cb, arg, &q);
	if (err)
		return err;
	q->starting = true;
	if (q->port)
		dns_step_addr_host(q);
	else if (q->proto != SIP_PROTO_NONE)
		dns_step_srv_transport(q);
	else
		dns_step_naptr(q);
	q->starting = false;
	dns_timer_update(r);
	if (q->done) {
		dns_query_deliver(q);
		dns_query_free(q);
	} else if (qp) {
		*qp = q;
	}
	return 0;
}

void dns_cancel(struct dns_query *q)
{
	if (q)
		q->cancelled = true;
}
