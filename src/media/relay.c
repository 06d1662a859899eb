/*
 * relay.c - the RTP relay of one worker: a port pool, sessions of two legs
 * and up to SDP_MAX_MEDIA streams, a socket pair (RTP, RTCP) per leg and
 * stream on the worker's event base, datagrams read with recvmmsg and
 * forwarded with sendmmsg straight out of the receive buffers.
 *
 * It exists so that media goes through the server's own process with no
 * control-protocol hop (rtpengine's ng protocol, a stalled relay daemon),
 * and so that each call's media is owned by the worker that owns its
 * dialog: no locks, no threads of its own.
 *
 * Security: a leg's socket accepts packets only from the source latched by
 * the state machine in rtp_latch_check (see media.h); everything else is
 * dropped and counted, never forwarded (RTP Bleed, CVE-2017-14114).
 */
#include "media/media.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"

#define RTP_BATCH	     32
#define RTP_MAX_PKT	     2048 /* larger datagrams are counted as malformed */
#define RTP_ROUNDS_PER_EVENT 8	  /* batches per readiness event, so other sockets run too */
#define RTP_BIND_TRIES	     8	  /* pairs tried when another process holds a port */

/* ------------------------------------------------------------ port pool */

int rtp_pool_init(struct rtp_pool *p, uint16_t lo, uint16_t hi, uint32_t quarantine_ms)
{
	memset(p, 0, sizeof(*p));
	if (lo & 1)
		lo++;
	if (lo == 0 || hi < lo || hi - lo < 1)
		return EINVAL;
	p->lo = lo;
	p->n = ((uint32_t)hi - lo + 1) / 2;
	p->quarantine_ms = quarantine_ms;
	p->fifo = calloc(p->n, sizeof(*p->fifo));
	p->released_ms = calloc(p->n, sizeof(*p->released_ms));
	p->used = calloc(p->n, 1);
	if (!p->fifo || !p->released_ms || !p->used) {
		rtp_pool_free(p);
		return ENOMEM;
	}
	for (uint32_t i = 0; i < p->n; i++)
		p->fifo[i] = i;
	p->count = p->n;
	return 0;
}

void rtp_pool_free(struct rtp_pool *p)
{
	free(p->fifo);
	free(p->released_ms);
	free(p->used);
	memset(p, 0, sizeof(*p));
}

int rtp_pool_get(struct rtp_pool *p, uint64_t now_ms, uint16_t *rtp_port)
{
	uint32_t pair;

	if (!p->count) {
		p->exhausted++;
		return ENOSPC;
	}
	pair = p->fifo[p->head];
	/* the head was released first: if it still rests, every other free pair does too */
	if (p->released_ms[pair] && now_ms < p->released_ms[pair] + p->quarantine_ms) {
		p->quarantined++;
		return EAGAIN;
	}
	p->head = (p->head + 1) % p->n;
	p->count--;
	p->used[pair] = 1;
	*rtp_port = (uint16_t)(p->lo + pair * 2);
	return 0;
}

int rtp_pool_put(struct rtp_pool *p, uint16_t rtp_port, uint64_t now_ms)
{
	uint32_t pair;

	if (rtp_port < p->lo || (rtp_port - p->lo) & 1)
		return EINVAL;
	pair = (uint32_t)(rtp_port - p->lo) / 2;
	if (pair >= p->n || !p->used[pair])
		return EINVAL;
	p->used[pair] = 0;
	p->released_ms[pair] = now_ms ? now_ms : 1;
	p->fifo[(p->head + p->count) % p->n] = pair;
	p->count++;
	return 0;
}

int rtp_pool_subrange(uint16_t lo, uint16_t hi, unsigned n, unsigned idx, uint16_t *sub_lo,
		      uint16_t *sub_hi)
{
	uint32_t pairs, per;

	if (lo & 1)
		lo++;
	if (!n || idx >= n || hi <= lo)
		return EINVAL;
	pairs = ((uint32_t)hi - lo + 1) / 2;
	per = pairs / n;
	if (per < 1)
		return EINVAL;
	*sub_lo = (uint16_t)(lo + idx * per * 2);
	*sub_hi = (uint16_t)(*sub_lo + per * 2 - 1);
	return 0;
}

/* ------------------------------------------------------------ statistics */

#define RTP_SEQ_MOD    (1u << 16)
#define MAX_DROPOUT    3000
#define MAX_MISORDER   100
#define MIN_SEQUENTIAL 2

bool rtp_is_rtcp(const uint8_t *pkt, size_t len)
{
	/* RFC 5761 4: RTCP packet types 192..223 fall where RTP's M bit and PT are */
	return len >= 2 && pkt[1] >= 192 && pkt[1] <= 223;
}

static void seq_init(struct rtp_rx_stats *st, uint16_t seq)
{
	st->base_seq = seq;
	st->max_seq = seq;
	st->bad_seq = RTP_SEQ_MOD + 1;
	st->cycles = 0;
	st->received = 0;
}

static int64_t stats_lost_current(const struct rtp_rx_stats *st)
{
	int64_t expected;

	if (!st->have_ssrc || st->probation)
		return 0;
	expected = (int64_t)st->cycles + st->max_seq - (int64_t)st->base_seq + 1;
	return expected - (int64_t)st->received;
}

/* RFC 3550 A.1: is the sequence number plausible, and count it. */
static void seq_update(struct rtp_rx_stats *st, uint16_t seq)
{
	uint16_t udelta = (uint16_t)(seq - st->max_seq);

	if (st->probation) {
		if (seq == (uint16_t)(st->max_seq + 1)) {
			st->probation--;
			st->max_seq = seq;
			if (st->probation == 0) {
				seq_init(st, seq);
				st->received++;
			}
		} else {
			st->probation = MIN_SEQUENTIAL - 1;
			st->max_seq = seq;
		}
		return;
	}
	if (udelta < MAX_DROPOUT) {
		if (seq < st->max_seq)
			st->cycles += RTP_SEQ_MOD; /* wrapped */
		st->max_seq = seq;
	} else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
		/* a very large jump: believe it only when the next packet confirms it */
		if (seq == st->bad_seq) {
			st->lost_prior += stats_lost_current(st);
			seq_init(st, seq);
		} else {
			st->bad_seq = (seq + 1u) & (RTP_SEQ_MOD - 1);
			return;
		}
	} else {
		st->dup_or_late++; /* duplicate or reordered */
	}
	st->received++;
}

void rtp_stats_update(struct rtp_rx_stats *st, const uint8_t *pkt, size_t len, uint64_t arrival_ns)
{
	uint16_t seq = (uint16_t)(pkt[2] << 8 | pkt[3]);
	uint32_t ts =
	    (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 | pkt[7];
	uint32_t ssrc =
	    (uint32_t)pkt[8] << 24 | (uint32_t)pkt[9] << 16 | (uint32_t)pkt[10] << 8 | pkt[11];
	unsigned pt = pkt[1] & 0x7f;

	st->packets++;
	st->bytes += len;
	st->pt_seen[pt >> 6] |= 1ull << (pt & 63);
	if (!st->have_ssrc || st->ssrc != ssrc) {
		/* a new source: what the old one lost stays counted */
		st->lost_prior += stats_lost_current(st);
		st->have_ssrc = true;
		st->ssrc = ssrc;
		seq_init(st, seq);
		st->max_seq = (uint16_t)(seq - 1);
		st->probation = MIN_SEQUENTIAL;
		st->have_transit = false;
	}
	seq_update(st, seq);
	if (st->clock) {
		/* RFC 3550 6.4.1 / A.8, in timestamp units, jitter kept times 16 */
		uint32_t arrival = (uint32_t)((arrival_ns / 1000) * st->clock / 1000000);
		int64_t transit = (int32_t)(arrival - ts);
		if (st->have_transit) {
			int64_t d = transit - st->transit;
			if (d < 0)
				d = -d;
			if (d > INT32_MAX)
				d = INT32_MAX;
			st->jitter_q4 = (uint32_t)((int64_t)st->jitter_q4 + d -
						   (((int64_t)st->jitter_q4 + 8) >> 4));
		}
		st->transit = transit;
		st->have_transit = true;
	}
}

uint64_t rtp_stats_lost(const struct rtp_rx_stats *st)
{
	int64_t lost = st->lost_prior + stats_lost_current(st);
	return lost > 0 ? (uint64_t)lost : 0;
}

uint32_t rtp_stats_jitter_us(const struct rtp_rx_stats *st)
{
	if (!st->clock)
		return 0;
	return (uint32_t)((uint64_t)(st->jitter_q4 >> 4) * 1000000 / st->clock);
}

/* ------------------------------------------------------------ latching */

static bool ss_same_ip(const struct sockaddr_storage *a, const struct sdp_ip *ip)
{
	struct sdp_ip x;

	if (!ip->family || sdp_ip_from_sockaddr((const struct sockaddr *)a, &x, NULL))
		return false;
	return sdp_ip_eq(&x, ip);
}

static bool ss_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct sdp_ip x, y;
	uint16_t px, py;

	if (!a->ss_family || a->ss_family != b->ss_family)
		return false;
	if (sdp_ip_from_sockaddr((const struct sockaddr *)a, &x, &px) ||
	    sdp_ip_from_sockaddr((const struct sockaddr *)b, &y, &py))
		return false;
	return px == py && sdp_ip_eq(&x, &y);
}

void rtp_latch_signal(struct rtp_latch *l, const struct sockaddr_storage *signalled,
		      const struct sdp_ip *sig_src, uint64_t now_ms, uint32_t window_ms)
{
	if (signalled)
		l->signalled = *signalled;
	else
		memset(&l->signalled, 0, sizeof(l->signalled));
	if (sig_src)
		l->sig_src = *sig_src;
	else
		memset(&l->sig_src, 0, sizeof(l->sig_src));
	/* the latched peer stays until a new source proves itself in the window */
	l->window_end_ms = now_ms + window_ms;
	l->state = RTP_LATCH_OPEN;
}

enum rtp_verdict rtp_latch_check(struct rtp_latch *l, const struct sockaddr_storage *src,
				 uint64_t now_ms)
{
	switch (l->state) {
	case RTP_LATCH_IDLE:
		return RTP_DROP_IDLE;
	case RTP_LATCH_OPEN:
		if (now_ms < l->window_end_ms) {
			/* the source latched before this SDP flows on, and does not close the
			 * window */
			if (ss_same(src, &l->peer))
				return RTP_ACCEPT;
			if (ss_same(src, &l->signalled) || ss_same_ip(src, &l->sig_src)) {
				l->peer = *src;
				l->state = RTP_LATCH_LOCKED;
				return RTP_ACCEPT_LATCHED;
			}
			return RTP_DROP_FOREIGN;
		}
		/* the window ended with nothing new: keep the old peer, else the signalled one */
		if (!l->peer.ss_family)
			l->peer = l->signalled;
		l->state = RTP_LATCH_LOCKED;
		/* fall through */
	case RTP_LATCH_LOCKED:
		return ss_same(src, &l->peer) ? RTP_ACCEPT : RTP_DROP_FOREIGN;
	}
	return RTP_DROP_FOREIGN;
}

const struct sockaddr_storage *rtp_latch_dest(const struct rtp_latch *l)
{
	struct sdp_ip ip;

	if (l->peer.ss_family)
		return &l->peer;
	if (!l->signalled.ss_family)
		return NULL;
	/* behind NAT (a private SDP address, a public signalling source): wait for the latch */
	if (l->sig_src.family && sdp_ip_kind(&l->sig_src) == SDP_IP_PUBLIC &&
	    !sdp_ip_from_sockaddr((const struct sockaddr *)&l->signalled, &ip, NULL) &&
	    sdp_ip_is_private(&ip))
		return NULL;
	return &l->signalled;
}

/* ------------------------------------------------------------ engine */

struct rtp_stream;

struct rtp_sock {
	int fd;
	struct event *ev;
	struct rtp_stream *st;
	uint8_t side; /* packets arriving here come from this side's phone */
	uint8_t comp; /* 0 RTP, 1 RTCP */
	uint16_t port;
};

struct rtp_leg {
	struct rtp_sock sock[2];
	int family; /* of its sockets, 0 while closed */
	struct rtp_latch latch[2];
	bool mux; /* this side's SDP has a=rtcp-mux */
	bool held;
	struct rtp_dir_stats st;
};

struct rtp_stream {
	struct rtp_session *sess;
	bool active;
	bool rtp; /* RTP-based: checked and counted; else forwarded as opaque UDP */
	struct rtp_leg leg[2];
	uint32_t clock[128]; /* payload type -> timestamp rate, from both SDPs */
};

struct rtp_session {
	struct rtp_engine *e;
	struct rtp_session *prev, *next;
	unsigned nstreams;
	struct rtp_stream *streams[SDP_MAX_MEDIA];
	uint64_t last_sdp_ms;
};

struct rtp_engine {
	struct event_base *base;
	struct rtp_config cfg;
	struct sdp_ip bind4, bind6, adv4, adv6;
	struct rtp_pool pool;
	struct rtp_session *sessions;
	struct rtp_engine_stats stats;
	/* receive batch */
	struct mmsghdr rmsg[RTP_BATCH];
	struct iovec riov[RTP_BATCH];
	struct sockaddr_storage raddr[RTP_BATCH];
	/* send batch: iovecs point into rbuf */
	struct mmsghdr smsg[RTP_BATCH];
	struct iovec siov[RTP_BATCH];
	int sfd[RTP_BATCH];
	struct rtp_dir_stats *sstats[RTP_BATCH];
	unsigned nsend;
	uint8_t rbuf[RTP_BATCH][RTP_MAX_PKT];
};

static uint64_t engine_now_ms(const struct rtp_engine *e)
{
	struct timespec ts;

	if (e->cfg.now_ms)
		return e->cfg.now_ms(e->cfg.now_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_cfg_ip(const char *text, struct sdp_ip *ip)
{
	if (!text) {
		memset(ip, 0, sizeof(*ip));
		return 0;
	}
	return sdp_ip_parse(sv_cstr(text), ip);
}

int rtp_engine_new(struct event_base *base, const struct rtp_config *cfg, struct rtp_engine **out)
{
	struct rtp_engine *e;
	int rc;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return ENOMEM;
	e->base = base;
	e->cfg = *cfg;
	if (!e->cfg.quarantine_ms)
		e->cfg.quarantine_ms = 10000;
	if (!e->cfg.latch_window_ms)
		e->cfg.latch_window_ms = 5000;
	/* the strings are parsed now: the engine keeps no pointer into the caller's config */
	e->cfg.bind_v4 = e->cfg.bind_v6 = e->cfg.advertise_v4 = e->cfg.advertise_v6 = NULL;
	if (parse_cfg_ip(cfg->bind_v4, &e->bind4) || parse_cfg_ip(cfg->bind_v6, &e->bind6) ||
	    parse_cfg_ip(cfg->advertise_v4 ? cfg->advertise_v4 : cfg->bind_v4, &e->adv4) ||
	    parse_cfg_ip(cfg->advertise_v6 ? cfg->advertise_v6 : cfg->bind_v6, &e->adv6) ||
	    (e->bind4.family && e->bind4.family != AF_INET) ||
	    (e->bind6.family && e->bind6.family != AF_INET6) ||
	    (!e->bind4.family && !e->bind6.family)) {
		free(e);
		return EINVAL;
	}
	rc = rtp_pool_init(&e->pool, cfg->port_lo, cfg->port_hi, e->cfg.quarantine_ms);
	if (rc) {
		free(e);
		return rc;
	}
	for (unsigned i = 0; i < RTP_BATCH; i++) {
		e->riov[i] = (struct iovec){e->rbuf[i], RTP_MAX_PKT};
		e->rmsg[i].msg_hdr = (struct msghdr){
		    .msg_name = &e->raddr[i],
		    .msg_namelen = sizeof(e->raddr[i]),
		    .msg_iov = &e->riov[i],
		    .msg_iovlen = 1,
		};
	}
	*out = e;
	return 0;
}

void rtp_engine_free(struct rtp_engine *e)
{
	if (!e)
		return;
	while (e->sessions)
		rtp_session_free(e->sessions);
	rtp_pool_free(&e->pool);
	free(e);
}

void rtp_engine_stats(const struct rtp_engine *e, struct rtp_engine_stats *st)
{
	*st = e->stats;
}

struct rtp_pool *rtp_engine_pool(struct rtp_engine *e)
{
	return &e->pool;
}

/* Sends the queued datagrams, one sendmmsg per run of the same socket. */
static void engine_flush(struct rtp_engine *e)
{
	unsigned start = 0;

	while (start < e->nsend) {
		unsigned end = start;
		int fd = e->sfd[start];
		while (end < e->nsend && e->sfd[end] == fd)
			end++;
		for (unsigned done = start; done < end;) {
			int sent = sendmmsg(fd, e->smsg + done, end - done, MSG_DONTWAIT);
			if (sent <= 0) {
				if (sent < 0 && errno == EINTR)
					continue;
				/* the kernel refused this one (unreachable, full): skip it */
				e->sstats[done]->tx_errors++;
				e->sstats[done]->tx_packets--;
				e->sstats[done]->tx_bytes -= e->siov[done].iov_len;
				e->stats.forwarded--;
				done++;
				continue;
			}
			done += (unsigned)sent;
		}
		start = end;
	}
	e->nsend = 0;
}

static void engine_queue(struct rtp_engine *e, int fd, const struct sockaddr_storage *to,
			 void *data, size_t len, struct rtp_dir_stats *st)
{
	unsigned i = e->nsend++;

	e->siov[i] = (struct iovec){data, len};
	e->smsg[i].msg_hdr = (struct msghdr){
	    .msg_name = (void *)to,
	    .msg_namelen = to->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in),
	    .msg_iov = &e->siov[i],
	    .msg_iovlen = 1,
	};
	e->sfd[i] = fd;
	e->sstats[i] = st;
	st->tx_packets++;
	st->tx_bytes += len;
	e->stats.forwarded++;
}

/* One datagram from side x's phone on socket sk: check, count, queue for side y. */
static void relay_one(struct rtp_engine *e, struct rtp_sock *sk, unsigned i, uint64_t now_ms,
		      uint64_t now_ns)
{
	struct rtp_stream *st = sk->st;
	struct rtp_leg *x = &st->leg[sk->side], *y = &st->leg[!sk->side];
	uint8_t *pkt = e->rbuf[i];
	size_t len = e->rmsg[i].msg_len;
	const struct sockaddr_storage *to;
	bool rtcp = sk->comp == 1;
	unsigned out;
	enum rtp_verdict v;

	v = rtp_latch_check(&x->latch[sk->comp], &e->raddr[i], now_ms);
	if (v == RTP_DROP_FOREIGN || v == RTP_DROP_IDLE) {
		x->st.drop_foreign++;
		e->stats.dropped++;
		return;
	}
	if (e->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
		x->st.drop_malformed++;
		e->stats.dropped++;
		return;
	}
	if (st->rtp) {
		if (!rtcp && rtp_is_rtcp(pkt, len))
			rtcp = true; /* rtcp-mux */
		if (len < (rtcp ? 8u : 12u) || pkt[0] >> 6 != 2) {
			x->st.drop_malformed++; /* STUN, DTLS or garbage */
			e->stats.dropped++;
			return;
		}
		if (rtcp) {
			x->st.rtcp_rx++;
		} else {
			x->st.rx.clock = st->clock[pkt[1] & 0x7f];
			rtp_stats_update(&x->st.rx, pkt, len, now_ns);
		}
	} else {
		x->st.rx.packets++;
		x->st.rx.bytes += len;
	}
	x->st.rx.last_ms = now_ms;
	/* RTCP goes to the peer's RTCP port unless both sides multiplex */
	out = rtcp && !(x->mux && y->mux) ? 1 : 0;
	to = rtp_latch_dest(&y->latch[out]);
	if (!to || y->sock[out].fd < 0 || to->ss_family != y->family) {
		y->st.drop_no_dest++;
		e->stats.dropped++;
		return;
	}
	engine_queue(e, y->sock[out].fd, to, pkt, len, &y->st);
}

static void sock_readable(evutil_socket_t fd, short what, void *arg)
{
	struct rtp_sock *sk = arg;
	struct rtp_engine *e = sk->st->sess->e;
	uint64_t now_ms = engine_now_ms(e), now_ns = mono_ns();

	(void)what;
	for (int round = 0; round < RTP_ROUNDS_PER_EVENT; round++) {
		int n;
		for (unsigned i = 0; i < RTP_BATCH; i++)
			e->rmsg[i].msg_hdr.msg_namelen = sizeof(e->raddr[i]);
		n = recvmmsg((int)fd, e->rmsg, RTP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_debug("rtp recvmmsg: %s", strerror(errno));
			break;
		}
		e->stats.batches++;
		for (int i = 0; i < n; i++)
			relay_one(e, sk, (unsigned)i, now_ms, now_ns);
		engine_flush(e); /* before the buffers are read into again */
		if (n < RTP_BATCH)
			break;
	}
}

static void sock_close(struct rtp_engine *e, struct rtp_sock *sk)
{
	if (sk->ev) {
		event_free(sk->ev);
		sk->ev = NULL;
	}
	if (sk->fd >= 0) {
		close(sk->fd);
		sk->fd = -1;
		e->stats.sockets--;
	}
}

static void leg_close(struct rtp_engine *e, struct rtp_leg *l)
{
	uint16_t port = l->sock[0].port;

	sock_close(e, &l->sock[0]);
	sock_close(e, &l->sock[1]);
	if (l->family && port)
		rtp_pool_put(&e->pool, port, engine_now_ms(e));
	l->sock[0].port = l->sock[1].port = 0;
	l->family = 0;
	/* new ports, new phone address: nothing learned before holds */
	memset(l->latch, 0, sizeof(l->latch));
}

static int sock_open(struct rtp_engine *e, struct rtp_sock *sk, int family, uint16_t port)
{
	const struct sdp_ip *bind_ip = family == AF_INET ? &e->bind4 : &e->bind6;
	struct sockaddr_storage ss;
	socklen_t sl = sdp_ip_to_sockaddr(bind_ip, port, &ss);
	int one = 1, fd;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		int err = errno;
		close(fd);
		return err;
	}
	sk->fd = fd;
	sk->port = port;
	e->stats.sockets++;
	sk->ev = event_new(e->base, fd, EV_READ | EV_PERSIST, sock_readable, sk);
	if (!sk->ev || event_add(sk->ev, NULL))
		return ENOMEM;
	return 0;
}

static int leg_open(struct rtp_engine *e, struct rtp_leg *l, int family)
{
	int rc = EAFNOSUPPORT;

	if ((family == AF_INET && !e->bind4.family) || (family == AF_INET6 && !e->bind6.family))
		return EAFNOSUPPORT;
	for (int tries = 0; tries < RTP_BIND_TRIES; tries++) {
		uint16_t port;
		rc = rtp_pool_get(&e->pool, engine_now_ms(e), &port);
		if (rc)
			return rc;
		l->family = family;
		rc = sock_open(e, &l->sock[0], family, port);
		if (!rc)
			rc = sock_open(e, &l->sock[1], family, (uint16_t)(port + 1));
		if (!rc)
			return 0;
		/* another process holds one of them: put the pair back to rest, try the next */
		sock_close(e, &l->sock[0]);
		sock_close(e, &l->sock[1]);
		rtp_pool_put(&e->pool, port, engine_now_ms(e));
		l->family = 0;
		if (rc != EADDRINUSE && rc != EACCES)
			return rc;
	}
	return rc;
}

int rtp_session_new(struct rtp_engine *e, struct rtp_session **out)
{
	struct rtp_session *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return ENOMEM;
	s->e = e;
	s->next = e->sessions;
	if (e->sessions)
		e->sessions->prev = s;
	e->sessions = s;
	e->stats.sessions++;
	s->last_sdp_ms = engine_now_ms(e);
	*out = s;
	return 0;
}

static void stream_close(struct rtp_engine *e, struct rtp_stream *st)
{
	leg_close(e, &st->leg[0]);
	leg_close(e, &st->leg[1]);
	st->active = false;
}

void rtp_session_free(struct rtp_session *s)
{
	struct rtp_engine *e;

	if (!s)
		return;
	e = s->e;
	for (unsigned i = 0; i < s->nstreams; i++) {
		if (s->streams[i]) {
			stream_close(e, s->streams[i]);
			free(s->streams[i]);
		}
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		e->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	e->stats.sessions--;
	free(s);
}

static struct rtp_stream *stream_get(struct rtp_session *s, unsigned i)
{
	struct rtp_stream *st = s->streams[i];

	if (st)
		return st;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->sess = s;
	for (unsigned side = 0; side < 2; side++) {
		for (unsigned c = 0; c < 2; c++) {
			st->leg[side].sock[c].fd = -1;
			st->leg[side].sock[c].st = st;
			st->leg[side].sock[c].side = (uint8_t)side;
			st->leg[side].sock[c].comp = (uint8_t)c;
		}
	}
	s->streams[i] = st;
	if (s->nstreams <= i)
		s->nstreams = i + 1;
	return st;
}

/* Learns the timestamp rates of the section's payload types, for jitter. */
static void stream_learn_clocks(struct rtp_stream *st, const struct sdp_media *m)
{
	sv_t v = m->fmts;

	while (v.len) {
		size_t k = 0;
		uint32_t pt;
		struct sdp_rtpmap r;
		while (k < v.len && v.p[k] != ' ')
			k++;
		if (!sv_to_u32(sv_make(v.p, k), &pt) && pt < 128 && !sdp_rtpmap_find(m, pt, &r))
			st->clock[pt] = r.clock;
		while (k < v.len && v.p[k] == ' ')
			k++;
		v = sv_make(v.p + k, v.len - k);
	}
}

int rtp_session_update(struct rtp_session *s, enum rtp_side from, const struct sdp_session *sdp,
		       const struct sockaddr *sig_src, struct sdp_rewrite *rw)
{
	struct rtp_engine *e = s->e;
	uint64_t now = engine_now_ms(e);
	struct sdp_ip src_ip = {0};
	int rc = 0;

	memset(rw, 0, sizeof(*rw));
	if (sdp->nmedia > SDP_MAX_MEDIA)
		return E2BIG;
	if (sig_src)
		sdp_ip_from_sockaddr(sig_src, &src_ip, NULL);
	rw->nmedia = sdp->nmedia;
	rw->strip_ice = true; /* we relay plain RTP: the far side's candidates would bypass us */
	for (unsigned i = 0; i < sdp->nmedia; i++) {
		const struct sdp_media *m = &sdp->media[i];
		const struct sdp_conn *c = sdp_media_conn(sdp, m);
		struct rtp_stream *st;
		struct rtp_leg *x, *y;
		struct sockaddr_storage sig_rtp, sig_rtcp;
		int fam;

		if (!m->port || sv_istarts(m->proto, SV("TCP"))) {
			/* rejected or disabled (or a TCP stream we cannot relay): free its ports */
			rw->media[i].keep = true;
			if (i < s->nstreams && s->streams[i])
				stream_close(e, s->streams[i]);
			continue;
		}
		st = stream_get(s, i);
		if (!st)
			return ENOMEM;
		st->rtp = m->rtp;
		x = &st->leg[from];
		y = &st->leg[!from];
		fam = c && c->ip.family ? c->ip.family : (e->bind4.family ? AF_INET : AF_INET6);
		if (!x->family) {
			rc = leg_open(e, x, fam);
			if (rc)
				return rc;
		}
		if (!y->family) {
			rc = leg_open(e, y, x->family);
			if (rc)
				return rc;
		}
		st->active = true;
		memset(&sig_rtp, 0, sizeof(sig_rtp));
		memset(&sig_rtcp, 0, sizeof(sig_rtcp));
		if (c && c->ip.family && sdp_ip_kind(&c->ip) != SDP_IP_UNSPECIFIED) {
			sdp_ip_to_sockaddr(&c->ip, m->port, &sig_rtp);
			if (m->rtcp_mux)
				sig_rtcp = sig_rtp;
			else if (m->has_rtcp)
				sdp_ip_to_sockaddr(m->rtcp_conn.present && m->rtcp_conn.ip.family
						       ? &m->rtcp_conn.ip
						       : &c->ip,
						   m->rtcp_port, &sig_rtcp);
			else
				sdp_ip_to_sockaddr(&c->ip, (uint16_t)(m->port + 1), &sig_rtcp);
		}
		rtp_latch_signal(&x->latch[0], &sig_rtp, &src_ip, now, e->cfg.latch_window_ms);
		rtp_latch_signal(&x->latch[1], &sig_rtcp, &src_ip, now, e->cfg.latch_window_ms);
		x->mux = m->rtcp_mux;
		x->held = sdp_media_held(sdp, m);
		if (m->rtp)
			stream_learn_clocks(st, m);
		/* the other side sends to its own leg's sockets */
		rw->media[i].addr = y->family == AF_INET ? e->adv4 : e->adv6;
		rw->media[i].port = y->sock[0].port;
		rw->media[i].rtcp_port = y->sock[1].port;
	}
	s->last_sdp_ms = now;
	return 0;
}

int rtp_session_local(const struct rtp_session *s, unsigned i, enum rtp_side side,
		      struct sdp_rw_media *out)
{
	const struct rtp_stream *st = i < s->nstreams ? s->streams[i] : NULL;
	const struct rtp_leg *l = st && st->active ? &st->leg[side] : NULL;

	memset(out, 0, sizeof(*out));
	if (!l || !l->family)
		return ENOENT;
	out->addr = l->family == AF_INET ? s->e->adv4 : s->e->adv6;
	out->port = l->sock[0].port;
	out->rtcp_port = l->sock[1].port;
	return 0;
}

unsigned rtp_session_nstreams(const struct rtp_session *s)
{
	return s->nstreams;
}

int rtp_session_stats(const struct rtp_session *s, unsigned i, enum rtp_side side,
		      struct rtp_dir_stats *out)
{
	if (i >= s->nstreams || !s->streams[i])
		return ENOENT;
	*out = s->streams[i]->leg[side].st;
	return 0;
}

enum rtp_latch_state rtp_session_latch(const struct rtp_session *s, unsigned i, enum rtp_side side)
{
	if (i >= s->nstreams || !s->streams[i])
		return RTP_LATCH_IDLE;
	return s->streams[i]->leg[side].latch[0].state;
}

bool rtp_session_timed_out(const struct rtp_session *s, uint64_t now_ms, uint32_t timeout_ms)
{
	uint64_t last = s->last_sdp_ms;
	bool any = false;

	for (unsigned i = 0; i < s->nstreams; i++) {
		const struct rtp_stream *st = s->streams[i];
		if (!st || !st->active || st->leg[0].held || st->leg[1].held)
			continue;
		any = true;
		for (unsigned side = 0; side < 2; side++)
			if (st->leg[side].st.rx.last_ms > last)
				last = st->leg[side].st.rx.last_ms;
	}
	return any && now_ms >= last + timeout_ms;
}
