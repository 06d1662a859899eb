/*
 * udp.c - SIP over UDP: one SO_REUSEPORT socket per worker and listen
 * address, datagrams read in batches with recvmmsg, and the replies and
 * forwards produced while a batch is processed sent in one sendmmsg.
 *
 * Batching is what makes one core carry a high message rate: a batch of 32
 * datagrams costs two system calls instead of 64.
 *
 * With udp.worker_ports each worker also has a socket of its own per UDP
 * listen address, on a port no other worker shares, and names it in the Via
 * of the requests it forwards: their responses (RFC 3261 18.2.2) come back
 * to the worker that owns the client transaction, instead of to whichever
 * worker the kernel's SO_REUSEPORT hash picks (a hop through the other
 * worker's inbox: a copy, a lock, an eventfd and a second parse). The
 * requests still go out from the shared listen socket (the port phones
 * behind NAT registered with, and trunks expect), and the worker's own
 * socket takes responses only: a request sent there is dropped and counted.
 *
 * With udp.dialog_port each UDP listen address also has a dialog port,
 * shared by the workers like the listen port, which our Record-Route and the
 * Via of what we forward name (issue 11): established calls' requests and the
 * responses to what we forward arrive there, and the handler of the listen
 * port reads the dialog ports and the worker's own ports before each of its
 * batches. Under a flood of new INVITEs the listen port's buffer fills and
 * the kernel drops what does not fit, but nothing of a call already taken
 * waits behind them. Requests from anyone else on a dialog port are dropped
 * after the flood check (request/overload.c), so a flood sent there gains
 * nothing and the listen port still gets a batch in every round.
 */
#include "transport/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"

/* Budget per readiness event, so timers and TCP are not starved under flood. */
#define UDP_MAX_BATCHES_PER_EVENT 8

/* The kernel's receive time of a datagram (SO_TIMESTAMPNS), 0 when it gave none. */
static int64_t udp_rx_time(struct msghdr *mh)
{
	struct cmsghdr *c;
	struct timespec ts;

	if (mh->msg_flags & MSG_CTRUNC)
		return 0;
	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(ts))) {
			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
		}
	}
	return 0;
}

/* Which of a worker's UDP sockets a datagram came in on. */
enum udp_sock {
	UDP_MAIN,   /* the listen port, shared by the workers: everything, new requests too */
	UDP_OWN,    /* the worker's own port (udp.worker_ports): responses only */
	UDP_DIALOG, /* the dialog port (udp.dialog_port): in-dialog requests and responses */
};

/* A datagram on a worker's own port: nothing but a response is taken there. */
static bool udp_is_response(const char *p, size_t len)
{
	return len > 8 && memcmp(p, "SIP/2.0 ", 8) == 0;
}

static void udp_process_batch(struct worker *w, unsigned listen, int n, enum udp_sock kind)
{
	struct tp_worker *tw = w->tp;
	struct tp_src src;
	int parse_err;

	for (int i = 0; i < n; i++) {
		struct mmsghdr *mh = &tw->rmsg[i];
		size_t len = mh->msg_len;

		if (mh->msg_hdr.msg_flags & MSG_TRUNC || len > SIP_MAX_MSG) {
			w->stats.rx_dropped++;
			continue;
		}
		memset(&src, 0, sizeof(src));
		src.listen = listen;
		src.dialog_port = kind == UDP_DIALOG;
		if (tp_addr_from_sockaddr(&src.peer, SIP_PROTO_UDP, &tw->raddr[i],
					  mh->msg_hdr.msg_namelen)) {
			w->stats.rx_dropped++;
			continue;
		}
		src.rx_ns = udp_rx_time(&mh->msg_hdr);
		if (len == 0 ||
		    (len <= 4 && tw->riov[i].iov_base && ((char *)tw->riov[i].iov_base)[0] == '\r'))
			continue; /* keep-alive */
		if (kind == UDP_OWN && !udp_is_response(tw->riov[i].iov_base, len)) {
			w->stats.rx_dropped++;
			continue;
		}
		tp_deliver(w, tw->riov[i].iov_base, len, 0, &src, &tw->msg, &parse_err);
	}
}

/* One recvmmsg batch from fd, handled and its replies sent; the datagrams read. */
static int udp_read_batch(struct worker *w, int fd, unsigned listen, enum udp_sock kind)
{
	struct tp_worker *tw = w->tp;
	int n;

	for (unsigned i = 0; i < TP_BATCH; i++) {
		tw->riov[i].iov_base = tw->rbuf + (size_t)i * (SIP_MAX_MSG + 1);
		tw->riov[i].iov_len = SIP_MAX_MSG + 1;
		tw->rmsg[i].msg_hdr = (struct msghdr){
		    .msg_name = &tw->raddr[i],
		    .msg_namelen = sizeof(tw->raddr[i]),
		    .msg_iov = &tw->riov[i],
		    .msg_iovlen = 1,
		    .msg_control = tw->rctl[i].buf,
		    .msg_controllen = sizeof(tw->rctl[i].buf),
		};
	}
	n = recvmmsg(fd, tw->rmsg, TP_BATCH, MSG_DONTWAIT, NULL);
	if (n <= 0) {
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			log_warn("udp recvmmsg: %s", strerror(errno));
		return 0;
	}
	udp_process_batch(w, listen, n, kind);
	tp_udp_flush(w);
	return n;
}

/*
 * Before each batch of the main socket but the first of an event (between
 * two events the loop runs the priority sockets' own events, and an idle
 * server so pays nothing): what is waiting on the dialog ports and the
 * worker's own ports (established calls' requests, responses to what
 * we forwarded), at most UDP_PRIORITY_BATCHES batches of each. Under a flood
 * of new INVITEs on the main port, that traffic so waits behind one batch at
 * most, not behind a full socket buffer. Eight batches: an admitted call
 * brings four to five datagrams there (ACK, BYE, the answers to what we
 * forward), and with fewer the dialog port's queue grew when every INVITE was
 * admitted (overload control off: measured). A flood aimed at a dialog port
 * still leaves the main socket a batch per round, and its strangers are
 * dropped after the flood check (request/overload.c), a few microseconds
 * each against tens for an INVITE.
 */
#define UDP_PRIORITY_BATCHES 8

static void udp_read_priority(struct worker *w)
{
	struct tp_worker *tw = w->tp;

	for (unsigned i = 0; i < TP_MAX_LISTEN; i++) {
		if (tw->dport_fd[i] >= 0) {
			for (int k = 0; k < UDP_PRIORITY_BATCHES; k++) {
				if (udp_read_batch(w, tw->dport_fd[i], i, UDP_DIALOG) < TP_BATCH)
					break;
			}
		}
		if (tw->wport_fd[i] >= 0) {
			for (int k = 0; k < UDP_PRIORITY_BATCHES; k++) {
				if (udp_read_batch(w, tw->wport_fd[i], i, UDP_OWN) < TP_BATCH)
					break;
			}
		}
	}
}

static void udp_readable(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct tp_worker *tw = w->tp;
	unsigned listen = 0;
	enum udp_sock kind = UDP_MAIN;

	(void)what;
	for (unsigned i = 0; i < TP_MAX_LISTEN; i++) {
		if (tw->udp_fd[i] == fd) {
			listen = i;
			break;
		}
		if (tw->wport_fd[i] == fd) {
			listen = i;
			kind = UDP_OWN;
			break;
		}
		if (tw->dport_fd[i] == fd) {
			listen = i;
			kind = UDP_DIALOG;
			break;
		}
	}
	worker_reap(w);
	tw->batching = true;
	for (int round = 0; round < UDP_MAX_BATCHES_PER_EVENT; round++) {
		/* from the second batch on: the main socket has a backlog */
		if (kind == UDP_MAIN && tw->priority && round > 0)
			udp_read_priority(w);
		if (udp_read_batch(w, (int)fd, listen, kind) < TP_BATCH)
			break;
	}
	tw->batching = false;
	tp_udp_flush(w);
	worker_reap(w);
}

int tp_udp_open(struct worker *w, unsigned listen)
{
	const struct tp_listen *l = &tp_table_of(w)->listen[listen];
	struct tp_worker *tw = w->tp;
	const struct cfg *c = &w->srv->cfg;
	int one = 1, size = 8 * 1024 * 1024;
	int fd;

	/* not smaller by default with a dialog port: the overload controller needs the queue
	 * to measure, and what the kernel drops comes back as retransmissions (measured,
	 * docs/benchmarks.md "Overload control") */
	if (c->udp_main_rcvbuf)
		size = c->udp_main_rcvbuf > INT_MAX ? INT_MAX : (int)c->udp_main_rcvbuf;

	fd = socket(l->addr.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* Bursts of retransmissions must not overflow a small default buffer. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	/* the kernel's receive time of each datagram: the start of its queueing delay */
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
		log_warn("udp SO_TIMESTAMPNS: %s: no overload measure", strerror(errno));
	if (l->addr.u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &l->addr.u.sa, l->addr.len) < 0) {
		int err = errno;
		log_err("udp bind %s:%u: %s", l->host, l->port, strerror(err));
		close(fd);
		return err;
	}
	tw->udp_fd[listen] = fd;
	tw->udp_ev[listen] = event_new(w->base, fd, EV_READ | EV_PERSIST, udp_readable, w);
	if (!tw->udp_ev[listen])
		return ENOMEM;
	return event_add(tw->udp_ev[listen], NULL) ? EIO : 0;
}

/* "host" of an advertised "host:port" (the port, when there is one, dropped). */
size_t tp_advertise_host_len(const char *adv)
{
	const char *colon = strrchr(adv, ':');
	size_t n = strlen(adv);

	if (!colon || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return n;
	/* an IPv6 address without brackets has colons but no port */
	if (adv[0] != '[' && memchr(adv, ':', (size_t)(colon - adv)))
		return n;
	return (size_t)(colon - adv);
}

int tp_udp_open_worker_port(struct worker *w, unsigned listen)
{
	struct tp_table *t = tp_table_of(w);
	const struct tp_listen *l = &t->listen[listen];
	const struct cfg *c = &w->srv->cfg;
	struct tp_worker *tw = w->tp;
	struct tp_addr a = l->addr;
	int size = 8 * 1024 * 1024, fd, err = 0;
	unsigned port = 0;

	/* one worker has nothing to hop to */
	if (!c->udp_worker_ports || w->srv->nworkers < 2 || w->id >= TP_MAX_WORKER_PORTS)
		return 0;
	if (c->udp_worker_port_base) {
		port = c->udp_worker_port_base + listen * w->srv->nworkers + w->id;
		if (port > 65535) {
			log_err("udp.worker_port_base %u: worker %u's port would be past 65535",
				c->udp_worker_port_base, w->id);
			return ERANGE;
		}
	}
	tp_addr_set_port(&a, (uint16_t)port);
	fd = socket(a.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (a.u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &(int){1}, sizeof(int));
	if (bind(fd, &a.u.sa, a.len) < 0 || getsockname(fd, &a.u.sa, &a.len) < 0) {
		err = errno;
		log_err("udp bind %s:%u (worker %u's own port): %s", l->host, port, w->id,
			strerror(err));
		close(fd);
		return err;
	}
	tw->wport_fd[listen] = fd;
	tw->wport_ev[listen] = event_new(w->base, fd, EV_READ | EV_PERSIST, udp_readable, w);
	if (!tw->wport_ev[listen] || event_add(tw->wport_ev[listen], NULL))
		return ENOMEM;
	t->wport[listen][w->id] = tp_addr_port(&a);
	tw->priority = true;
	snprintf(tw->via[listen], sizeof(tw->via[listen]), "%.*s:%u",
		 (int)tp_advertise_host_len(l->advertise), l->advertise, tp_addr_port(&a));
	log_info("worker %u: responses to what it forwards from %s come to port %u", w->id,
		 l->advertise, tp_addr_port(&a));
	return 0;
}

int tp_udp_open_dialog_port(struct worker *w, unsigned listen)
{
	const struct tp_listen *l = &tp_table_of(w)->listen[listen];
	struct tp_worker *tw = w->tp;
	struct tp_addr a = l->addr;
	int one = 1, size = 8 * 1024 * 1024, fd;

	if (!l->dialog_port)
		return 0;
	tp_addr_set_port(&a, l->dialog_port);
	fd = socket(a.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* a burst of BYEs (a trunk's calls ending together) must not overflow it */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
	if (a.u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &a.u.sa, a.len) < 0) {
		int err = errno;
		log_err("udp bind %s:%u (dialog port): %s", l->host, l->dialog_port, strerror(err));
		close(fd);
		return err;
	}
	tw->dport_fd[listen] = fd;
	tw->dport_ev[listen] = event_new(w->base, fd, EV_READ | EV_PERSIST, udp_readable, w);
	if (!tw->dport_ev[listen] || event_add(tw->dport_ev[listen], NULL))
		return ENOMEM;
	tw->priority = true;
	if (w->id == 0)
		log_info("established calls' requests and the responses to what we forward from %s "
			 "come to the dialog port %u",
			 l->advertise, l->dialog_port);
	return 0;
}

static int udp_pick_fd(struct worker *w, const struct tp_dest *d)
{
	struct tp_table *t = tp_table_of(w);
	int li = d->listen;

	if (li < 0 || (unsigned)li >= t->nlisten || t->listen[li].proto != SIP_PROTO_UDP ||
	    t->listen[li].addr.u.sa.sa_family != d->peer.u.sa.sa_family)
		li = tp_listen_pick(t, SIP_PROTO_UDP, d->peer.u.sa.sa_family);
	if (li >= 0 && d->own_port && w->tp->wport_fd[li] >= 0)
		return w->tp->wport_fd[li];
	return li < 0 ? -1 : w->tp->udp_fd[li];
}

void tp_udp_flush(struct worker *w)
{
	struct tp_worker *tw = w->tp;
	struct mmsghdr msgs[TP_BATCH];
	struct iovec iov[TP_BATCH];
	unsigned start = 0;

	while (start < tw->npending) {
		unsigned end = start;
		int fd = tw->pending[start].fd, sent;
		/* one sendmmsg per run of datagrams from the same socket */
		while (end < tw->npending && tw->pending[end].fd == fd) {
			struct tp_pending *p = &tw->pending[end];
			iov[end - start] = (struct iovec){tw->arena + p->off, p->len};
			msgs[end - start].msg_hdr = (struct msghdr){
			    .msg_name = &p->to.u.sa,
			    .msg_namelen = p->to.len,
			    .msg_iov = &iov[end - start],
			    .msg_iovlen = 1,
			};
			end++;
		}
		for (unsigned done = 0; done < end - start;) {
			sent = sendmmsg(fd, msgs + done, end - start - done, MSG_DONTWAIT);
			if (sent <= 0) {
				if (sent < 0 && errno == EINTR)
					continue;
				w->stats.tx_errors += end - start - done;
				/* skip the datagram the kernel refused (e.g. unreachable), keep the
				 * rest */
				done++;
				continue;
			}
			done += (unsigned)sent;
		}
		start = end;
	}
	tw->npending = 0;
	tw->arena_used = 0;
}

int tp_udp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len)
{
	struct tp_worker *tw = w->tp;
	int fd = udp_pick_fd(w, d);
	struct tp_pending *p;

	if (fd < 0)
		return EAFNOSUPPORT;
	if (len > SIP_MAX_MSG)
		return EMSGSIZE;
	if (!tw->batching) {
		if (sendto(fd, data, len, MSG_DONTWAIT, &d->peer.u.sa, d->peer.len) < 0)
			return errno;
		return 0;
	}
	if (tw->npending == TP_BATCH || tw->arena_used + len > TP_SEND_ARENA)
		tp_udp_flush(w);
	p = &tw->pending[tw->npending++];
	p->fd = fd;
	p->off = tw->arena_used;
	p->len = len;
	p->to = d->peer;
	memcpy(tw->arena + p->off, data, len);
	tw->arena_used += len;
	return 0;
}
