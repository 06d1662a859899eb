/*
 * tport.c - the transport table: listen addresses, address helpers, the
 * per-worker transport state and the dispatch of sends by protocol.
 */
#include "transport/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/hash.h"
#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"

struct tp_table *tp_table_of(struct worker *w)
{
	return w->srv->tp;
}

int tp_addr_from_sv(sv_t ip, uint16_t port, enum sip_proto proto, struct tp_addr *a)
{
	char tmp[64];

	if (ip.len && ip.p[0] == '[' && ip.p[ip.len - 1] == ']')
		ip = sv_sub(ip, 1, ip.len - 2);
	if (sv_copy(ip, tmp, sizeof(tmp)))
		return EINVAL;
	return tp_addr_from_str(tmp, port, proto, a);
}

int tp_addr_from_str(const char *ip, uint16_t port, enum sip_proto proto, struct tp_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->proto = proto;
	if (inet_pton(AF_INET, ip, &a->u.in.sin_addr) == 1) {
		a->u.in.sin_family = AF_INET;
		a->u.in.sin_port = htons(port);
		a->len = sizeof(a->u.in);
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &a->u.in6.sin6_addr) == 1) {
		a->u.in6.sin6_family = AF_INET6;
		a->u.in6.sin6_port = htons(port);
		a->len = sizeof(a->u.in6);
		return 0;
	}
	return EINVAL;
}

int tp_addr_from_sockaddr(struct tp_addr *a, enum sip_proto proto, const void *sa, socklen_t len)
{
	memset(a, 0, sizeof(*a));
	a->proto = proto;
	if (len > sizeof(a->u))
		return EAFNOSUPPORT;
	memcpy(&a->u, sa, len);
	a->len = len;
	return 0;
}

const char *tp_addr_ip(const struct tp_addr *a, char *buf, size_t len)
{
	const void *src = a->u.sa.sa_family == AF_INET6 ? (const void *)&a->u.in6.sin6_addr
							: (const void *)&a->u.in.sin_addr;

	if (!inet_ntop(a->u.sa.sa_family, src, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

/* Dotted-quad IPv4 into network order; false when host is not one. */
static bool parse_ipv4(sv_t host, uint32_t *out)
{
	uint32_t addr = 0, part = 0;
	unsigned dots = 0, digits = 0;

	for (size_t i = 0; i < host.len; i++) {
		char c = host.p[i];
		if (c >= '0' && c <= '9') {
			part = part * 10 + (uint32_t)(c - '0');
			if (++digits > 3 || part > 255)
				return false;
		} else if (c == '.' && digits && dots < 3) {
			addr = addr << 8 | part;
			part = digits = 0;
			dots++;
		} else {
			return false;
		}
	}
	if (dots != 3 || !digits)
		return false;
	*out = htonl(addr << 8 | part);
	return true;
}

bool tp_addr_ip_is(const struct tp_addr *a, sv_t host)
{
	uint32_t v4;
	char ip[64];

	if (a->u.sa.sa_family == AF_INET && parse_ipv4(host, &v4))
		return v4 == a->u.in.sin_addr.s_addr;
	if (host.len > 2 && host.p[0] == '[')
		host = sv_sub(host, 1, host.len - 2);
	return sv_ieq(host, sv_cstr(tp_addr_ip(a, ip, sizeof(ip))));
}

uint16_t tp_addr_port(const struct tp_addr *a)
{
	return ntohs(a->u.sa.sa_family == AF_INET6 ? a->u.in6.sin6_port : a->u.in.sin_port);
}

void tp_addr_set_port(struct tp_addr *a, uint16_t port)
{
	if (a->u.sa.sa_family == AF_INET6)
		a->u.in6.sin6_port = htons(port);
	else
		a->u.in.sin_port = htons(port);
}

bool tp_addr_equal(const struct tp_addr *a, const struct tp_addr *b)
{
	if (a->proto != b->proto || a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_port == b->u.in.sin_port &&
		       a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
	return a->u.in6.sin6_port == b->u.in6.sin6_port &&
	       memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
}

uint64_t tp_addr_hash(const struct siphash_key *k, const struct tp_addr *a)
{
	unsigned char in[20] = {0};
	uint16_t port = tp_addr_port(a);

	/* keyed: the peer picks its port (and, over IPv6, much of its address) */
	in[0] = (unsigned char)a->proto;
	in[1] = (unsigned char)a->u.sa.sa_family;
	memcpy(in + 2, &port, 2);
	if (a->u.sa.sa_family == AF_INET) {
		memcpy(in + 4, &a->u.in.sin_addr, 4);
		return siphash13(k, in, 8);
	}
	memcpy(in + 4, &a->u.in6.sin6_addr, 16);
	return siphash13(k, in, sizeof(in));
}

static const char *proto_lower(enum sip_proto p)
{
	switch (p) {
	case SIP_PROTO_TCP:
		return "tcp";
	case SIP_PROTO_TLS:
		return "tls";
	case SIP_PROTO_WS:
		return "ws";
	case SIP_PROTO_WSS:
		return "wss";
	default:
		return "udp";
	}
}

int tp_addr_format(const struct tp_addr *a, char *buf, size_t len)
{
	char ip[64];
	int n;

	tp_addr_ip(a, ip, sizeof(ip));
	if (a->u.sa.sa_family == AF_INET6)
		n = snprintf(buf, len, "%s:[%s]:%u", proto_lower(a->proto), ip, tp_addr_port(a));
	else
		n = snprintf(buf, len, "%s:%s:%u", proto_lower(a->proto), ip, tp_addr_port(a));
	return n < 0 || (size_t)n >= len ? ENOSPC : 0;
}

int tp_addr_parse(sv_t s, struct tp_addr *a)
{
	ptrdiff_t colon = sv_find(s, ':');
	enum sip_proto proto;
	sv_t rest, host, port;
	uint32_t pn;
	size_t i;

	if (colon <= 0)
		return EINVAL;
	proto = sip_proto_from_name(sv_make(s.p, (size_t)colon));
	rest = sv_sub(s, (size_t)colon + 1, s.len);
	for (i = rest.len; i > 0 && rest.p[i - 1] != ':'; i--)
		;
	if (i == 0)
		return EINVAL;
	host = sv_make(rest.p, i - 1);
	port = sv_sub(rest, i, rest.len);
	if (sv_to_u32(port, &pn) || pn == 0 || pn > 65535)
		return EINVAL;
	return tp_addr_from_sv(host, (uint16_t)pn, proto, a);
}

unsigned tp_listen_count(const struct tp_table *t)
{
	return t->nlisten;
}

const struct tp_listen *tp_listen_get(const struct tp_table *t, unsigned i)
{
	return i < t->nlisten ? &t->listen[i] : NULL;
}

int tp_listen_pick(const struct tp_table *t, enum sip_proto proto, int family)
{
	for (unsigned i = 0; i < t->nlisten; i++) {
		const struct tp_listen *l = &t->listen[i];
		if (l->proto == proto && l->addr.u.sa.sa_family == family)
			return (int)i;
	}
	return -1;
}

static bool is_wildcard(const struct tp_addr *a)
{
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_addr.s_addr == htonl(INADDR_ANY);
	return memcmp(&a->u.in6.sin6_addr, &in6addr_any, 16) == 0;
}

static bool same_ip(const struct tp_addr *a, const struct tp_addr *b)
{
	if (a->u.sa.sa_family != b->u.sa.sa_family)
		return false;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in.sin_addr.s_addr == b->u.in.sin_addr.s_addr;
	return memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) == 0;
}

/* Is a (IP only) an address the listener l receives on? */
static bool listener_has_ip(const struct tp_table *t, const struct tp_listen *l,
			    const struct tp_addr *a)
{
	if (l->addr.u.sa.sa_family != a->u.sa.sa_family)
		return false;
	if (!is_wildcard(&l->addr))
		return same_ip(&l->addr, a);
	for (unsigned i = 0; i < t->nifaddrs; i++) {
		if (same_ip(&t->ifaddrs[i], a))
			return true;
	}
	return false;
}

/* Is port one of the workers' own ports on listen address i? */
static bool is_worker_port(const struct tp_table *t, unsigned i, uint16_t port)
{
	unsigned n =
	    t->srv->nworkers < TP_MAX_WORKER_PORTS ? t->srv->nworkers : TP_MAX_WORKER_PORTS;

	if (!t->wport[i][0])
		return false;
	for (unsigned k = 0; k < n; k++) {
		if (t->wport[i][k] == port)
			return true;
	}
	return false;
}

bool tp_is_local_address(const struct tp_table *t, sv_t host, uint16_t port)
{
	struct tp_addr a;

	if (port == 0)
		port = 5060;
	if (tp_addr_from_sv(host, port, SIP_PROTO_UDP, &a))
		return false;
	for (unsigned i = 0; i < t->nlisten; i++) {
		if ((t->listen[i].port == port || is_worker_port(t, i, port) ||
		     (t->listen[i].dialog_port && t->listen[i].dialog_port == port)) &&
		    listener_has_ip(t, &t->listen[i], &a))
			return true;
	}
	return false;
}

const char *tp_via_sent_by(const struct worker *w, unsigned listen)
{
	const struct tp_table *t = w->srv->tp;

	if (listen >= t->nlisten)
		return "";
	if (w->tp->via[listen][0])
		return w->tp->via[listen];
	/* the responses to what we forward are the work already taken: the dialog port */
	return t->listen[listen].dialog_port ? t->listen[listen].dialog_advertise
					     : t->listen[listen].advertise;
}

bool tp_is_local_ip(const struct tp_table *t, sv_t host)
{
	struct tp_addr a;

	if (tp_addr_from_sv(host, 0, SIP_PROTO_UDP, &a))
		return false;
	for (unsigned i = 0; i < t->nlisten; i++) {
		if (listener_has_ip(t, &t->listen[i], &a))
			return true;
	}
	return false;
}

static void collect_ifaddrs(struct tp_table *t)
{
	struct ifaddrs *list, *ifa;

	if (getifaddrs(&list))
		return;
	for (ifa = list; ifa && t->nifaddrs < sizeof(t->ifaddrs) / sizeof(t->ifaddrs[0]);
	     ifa = ifa->ifa_next) {
		struct tp_addr *a = &t->ifaddrs[t->nifaddrs];
		if (!ifa->ifa_addr)
			continue;
		memset(a, 0, sizeof(*a));
		if (ifa->ifa_addr->sa_family == AF_INET) {
			memcpy(&a->u.in, ifa->ifa_addr, sizeof(a->u.in));
			a->len = sizeof(a->u.in);
		} else if (ifa->ifa_addr->sa_family == AF_INET6) {
			memcpy(&a->u.in6, ifa->ifa_addr, sizeof(a->u.in6));
			a->len = sizeof(a->u.in6);
		} else {
			continue;
		}
		t->nifaddrs++;
	}
	freeifaddrs(list);
}

static int listen_setup(struct tp_listen *l, const struct cfg_listen *c, char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	l->proto = c->proto;
	l->port = c->port;
	if (tp_addr_from_str(c->host, c->port, c->proto, &l->addr)) {
		snprintf(err, errlen, "listen address '%s' is not a numeric IP address", c->host);
		return EINVAL;
	}
	if (l->addr.u.sa.sa_family == AF_INET6)
		snprintf(l->host, sizeof(l->host), "[%s]", c->host);
	else
		snprintf(l->host, sizeof(l->host), "%s", c->host);
	if (c->advertise[0])
		snprintf(l->advertise, sizeof(l->advertise), "%s", c->advertise);
	else
		snprintf(l->advertise, sizeof(l->advertise), "%s:%u", l->host, l->port);
	return 0;
}

/* udp.dialog_port on a UDP listen address: the port, and the host:port naming it. */
static int dialog_port_setup(struct tp_listen *l, unsigned cfg_port, char *err, size_t errlen)
{
	unsigned port = cfg_port == CFG_DIALOG_PORT_AUTO ? l->port + 1u : cfg_port;

	if (!cfg_port || l->proto != SIP_PROTO_UDP)
		return 0;
	/* a port the kernel picks would change at every restart, and live calls' route sets
	 * name it: the dialog port must be a fixed one */
	if (port == 0 || port > 65535 || port == l->port) {
		snprintf(err, errlen,
			 "udp.dialog_port %u for %s:%u: it must be a fixed port other than the "
			 "listen port (auto: the listen port + 1, which needs a fixed listen port)",
			 port, l->host, l->port);
		return EINVAL;
	}
	l->dialog_port = (uint16_t)port;
	snprintf(l->dialog_advertise, sizeof(l->dialog_advertise), "%.*s:%u",
		 (int)tp_advertise_host_len(l->advertise), l->advertise, port);
	return 0;
}

int tp_table_create(struct server *srv, tp_recv_fn on_msg, struct tp_table **out, char *err,
		    size_t errlen)
{
	struct tp_table *t = calloc(1, sizeof(*t));
	int rc = 0;

	if (!t)
		return ENOMEM;
	t->srv = srv;
	t->on_msg = on_msg;
	if (siphash_key_random(&t->key)) {
		free(t);
		snprintf(err, errlen, "no randomness from the kernel");
		return EAGAIN;
	}
	atomic_init(&t->next_id, 1);
	atomic_init(&t->limit_logged, 0);
	t->max_queued = TP_TCP_MAX_QUEUED;
	t->max_queued_unauth = TP_TCP_MAX_QUEUED_UNAUTH;
	t->seed = srv->seed;
	tp_src_init(t);
	for (unsigned i = 0; i < TP_CONN_BUCKETS; i++) {
		pthread_mutex_init(&t->by_id[i].lock, NULL);
		pthread_mutex_init(&t->by_peer[i].lock, NULL);
	}
	for (size_t i = 0; i < srv->cfg.nlisten && i < TP_MAX_LISTEN; i++) {
		rc = listen_setup(&t->listen[i], &srv->cfg.listen[i], err, errlen);
		if (!rc)
			rc =
			    dialog_port_setup(&t->listen[i], srv->cfg.udp_dialog_port, err, errlen);
		if (rc)
			break;
		t->nlisten++;
	}
	for (unsigned i = 0; i < t->nlisten && !rc; i++) {
		if (is_wildcard(&t->listen[i].addr)) {
			collect_ifaddrs(t);
			break;
		}
	}
	if (rc) {
		tp_table_destroy(t);
		t = NULL;
	}
	*out = t;
	return rc;
}

void tp_on_lost(struct tp_table *t, tp_lost_fn fn)
{
	t->on_lost = fn;
}

struct lost_job {
	struct wjob job;
	uint64_t notify;
	int err;
};

static void lost_run(struct worker *w, struct wjob *job)
{
	struct lost_job *lj = (struct lost_job *)job;
	struct tp_table *t = tp_table_of(w);

	if (!atomic_load(&w->srv->stopping) && t->on_lost)
		t->on_lost(w, lj->notify, lj->err);
	free(lj);
}

void tp_lost_post(struct tp_table *t, unsigned w, uint64_t notify, int err)
{
	struct lost_job *lj;

	if (!notify || !t->on_lost || w >= t->srv->nworkers || atomic_load(&t->srv->stopping))
		return;
	lj = malloc(sizeof(*lj));
	if (!lj) {
		/* its transaction still ends by Timer B or F */
		log_warn("tcp: out of memory telling a transaction its message was lost");
		return;
	}
	lj->job.fn = lost_run;
	lj->notify = notify;
	lj->err = err ? err : EIO;
	/* through the inbox even for this worker: never inside the transport's own callback */
	worker_post(t->srv->workers[w], &lj->job);
}

void tp_table_destroy(struct tp_table *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < TP_CONN_BUCKETS; i++) {
		pthread_mutex_destroy(&t->by_id[i].lock);
		pthread_mutex_destroy(&t->by_peer[i].lock);
	}
	tp_src_fini(t);
	free(t);
}

int tp_worker_init(struct worker *w)
{
	struct tp_table *t = tp_table_of(w);
	struct tp_worker *tw = calloc(1, sizeof(*tw));
	int err = 0;

	if (!tw)
		return ENOMEM;
	w->tp = tw;
	for (unsigned i = 0; i < TP_MAX_LISTEN; i++)
		tw->udp_fd[i] = tw->tcp_fd[i] = tw->wport_fd[i] = tw->dport_fd[i] = -1;
	tw->rbuf = malloc((size_t)TP_BATCH * (SIP_MAX_MSG + 1));
	tw->arena = malloc(TP_SEND_ARENA);
	if (!tw->rbuf || !tw->arena)
		return ENOMEM;
	for (unsigned i = 0; i < t->nlisten && !err; i++) {
		if (t->listen[i].proto == SIP_PROTO_UDP) {
			err = tp_udp_open(w, i);
			if (!err)
				err = tp_udp_open_worker_port(w, i);
			if (!err)
				err = tp_udp_open_dialog_port(w, i);
		} else if (t->listen[i].proto == SIP_PROTO_TCP)
			err = tp_tcp_open_listener(w, i);
	}
	return err;
}

void tp_worker_fini(struct worker *w)
{
	struct tp_worker *tw = w->tp;

	if (!tw)
		return;
	tp_tcp_close_all(w);
	for (unsigned i = 0; i < TP_MAX_LISTEN; i++) {
		if (tw->udp_ev[i])
			event_free(tw->udp_ev[i]);
		if (tw->udp_fd[i] >= 0)
			close(tw->udp_fd[i]);
		if (tw->tcp_ev[i])
			event_free(tw->tcp_ev[i]);
		if (tw->tcp_fd[i] >= 0)
			close(tw->tcp_fd[i]);
		if (tw->wport_ev[i])
			event_free(tw->wport_ev[i]);
		if (tw->wport_fd[i] >= 0)
			close(tw->wport_fd[i]);
		if (tw->dport_ev[i])
			event_free(tw->dport_ev[i]);
		if (tw->dport_fd[i] >= 0)
			close(tw->dport_fd[i]);
	}
	sip_msg_release(&tw->msg);
	free(tw->rbuf);
	free(tw->arena);
	free(tw);
	w->tp = NULL;
}

void tp_housekeeping(struct worker *w)
{
	tp_tcp_housekeeping(w, time(NULL));
}

/* The Call-ID of a message, found without parsing it (for the debug log):
 * "Call-ID" or "i" in any case, optional white space before the colon. */
static sv_t find_callid(const char *data, size_t len)
{
	const char *end = data + len, *p = data, *hdr_end = memmem(data, len, "\r\n\r\n", 4);

	if (hdr_end)
		end = hdr_end + 2;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *v, *e;
		if (!nl)
			break;
		p = v = nl + 1;
		if (end - v >= 7 && strncasecmp(v, "call-id", 7) == 0)
			v += 7;
		else if (v < end && (*v == 'i' || *v == 'I'))
			v++;
		else
			continue;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		if (v == end || *v != ':')
			continue;
		v++;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		e = v;
		while (e < end && *e != '\r' && *e != '\n')
			e++;
		return sv_make(v, (size_t)(e - v));
	}
	return SV("-");
}

static void log_msg(const char *dir, const struct tp_addr *peer, const char *data, size_t len)
{
	char addr[96];
	const char *nl = memchr(data, '\r', len < 200 ? len : 200);
	size_t first = nl ? (size_t)(nl - data) : (len < 120 ? len : 120);
	sv_t callid = find_callid(data, len);

	tp_addr_format(peer, addr, sizeof(addr));
	log_debug("%s %s %zu bytes: %.*s [%.*s]", dir, addr, len, (int)first, data, SV_ARG(callid));
}

void tp_deliver(struct worker *w, const char *buf, size_t len, unsigned flags,
		const struct tp_src *src, struct sip_msg *m, int *parse_err)
{
	int err = sip_parse(m, buf, len, flags);

	*parse_err = err;
	if (err == EAGAIN)
		return;
	w->stats.rx_msgs++;
	if (log_enabled(LOG_DEBUG))
		log_msg("recv from", &src->peer, m->buf ? m->buf : buf, m->len ? m->len : len);
	tp_table_of(w)->on_msg(w, m, err, src);
}

void tp_table_set_send(struct tp_table *t, tp_send_fn fn)
{
	t->send_fn = fn;
}

int tp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len)
{
	int err;

	if (w->srv->tp->send_fn)
		return w->srv->tp->send_fn(w, d, data, len);
	if (log_enabled(LOG_DEBUG))
		log_msg("send to", &d->peer, data, len);
	switch (d->peer.proto) {
	case SIP_PROTO_UDP:
		err = tp_udp_send(w, d, data, len);
		break;
	case SIP_PROTO_TCP:
		err = tp_tcp_send(w, d, data, len);
		break;
	default:
		err = EPROTONOSUPPORT;
		break;
	}
	if (err)
		w->stats.tx_errors++;
	else
		w->stats.tx_msgs++;
	return err;
}

void tp_flush(struct worker *w)
{
	tp_udp_flush(w);
}

struct redeliver_job {
	struct wjob job;
	struct tp_src src;
	size_t len;
	char data[];
};

static void redeliver_run(struct worker *w, struct wjob *job)
{
	struct redeliver_job *rj = (struct redeliver_job *)job;
	struct sip_msg *m = &w->tp->msg;
	int err;

	if (!w->srv->stopping) {
		/* the bytes are exactly one message, whatever transport brought them */
		err = sip_parse(m, rj->data, rj->len, 0);
		tp_table_of(w)->on_msg(w, m, err, &rj->src);
	}
	free(rj);
}

struct wjob *tp_redeliver_job(const struct sip_msg *m, const struct tp_src *src)
{
	struct redeliver_job *rj = malloc(sizeof(*rj) + m->len);

	if (!rj)
		return NULL;
	rj->job.fn = redeliver_run;
	rj->src = *src;
	rj->len = m->len;
	memcpy(rj->data, m->buf, m->len);
	return &rj->job;
}

int tp_redeliver(struct worker *w, unsigned owner, const struct sip_msg *m,
		 const struct tp_src *src)
{
	struct tp_table *t = tp_table_of(w);
	struct wjob *job;

	if (owner >= t->srv->nworkers || owner == w->id)
		return EINVAL;
	job = tp_redeliver_job(m, src);
	if (!job)
		return ENOMEM;
	w->stats.posted++;
	worker_post(t->srv->workers[owner], job);
	return 0;
}
