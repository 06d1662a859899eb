/*
 * ocload.c - the overload benchmark's load: calls offered at a fixed rate,
 * far beyond what the server can take, from a client cheap enough that the
 * server stays the bottleneck. SIPp cannot offer ten times Switchboard's
 * maximum from one core; this does, because a refused call costs it one
 * datagram in and one out.
 *
 * Both ends in one process: the UAC sends INVITE (from a foreign domain to
 * one of 1,000 registered callees: an inbound trunk call, no challenge),
 * ACKs every final, and on 200 sends ACK and BYE through the Record-Route
 * (BYE retransmitted like Timer E, so a lost BYE is one that never got its
 * 200). The UAS answers every INVITE with 200 and every BYE with 200,
 * statelessly, in a process of its own (uas_loop). Prints one JSON object: goodput (calls whose BYE got 200, per
 * second offered), INVITE->100 latency percentiles, what the refused calls
 * got, and how many established calls lost their BYE.
 *
 *   ocload SERVER_PORT UAS_PORT RATE SECONDS [CALLEES] [oc|oc-aware]
 *
 * Like any UAC it retransmits an INVITE that got no answer (Timer A: 500 ms,
 * doubling, for Timer B's 32 s), so load the server does not answer comes
 * back. With "oc" the UAC puts ;oc in its Via and reports the largest oc=
 * it was sent (RFC 7339) but does not reduce; with "oc-aware" it also
 * honours it: that share of new calls is not sent while the report is valid
 * (counted as "reduced_at_source").
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BATCH	 64
#define MAXMSG	 4096
#define BYE_T1	 500000000LL
#define BYE_MAX	 6
#define DRAIN_NS (8 * 1000000000LL)

enum call_state {
	C_NEW = 0,
	C_INVITED,
	C_REFUSED,
	C_FAILED,
	C_UP,
	C_DONE,
	C_BYE_FAILED,
	C_LOCAL, /* not sent: the server asked for less (oc-aware client) */
};

struct call {
	int64_t t_invite;
	int64_t t_100;	 /* 0 = none */
	int64_t t_first; /* first answer of any kind */
	int64_t t_bye;	 /* last BYE sent */
	int64_t t_retx;	 /* last INVITE (re)transmission */
	int64_t t_done;	 /* the BYE's 200 */
	uint8_t inv_tx;	 /* INVITE retransmissions (Timer A) */
	uint8_t state;
	uint8_t bye_tx;
	uint16_t status;
	char *route; /* Route set and target for ACK/BYE, "route\0target" */
};

struct out {
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in to[BATCH];
	char buf[BATCH][MAXMSG];
	unsigned n;
	int fd;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void flush(struct out *o)
{
	unsigned done = 0;

	while (done < o->n) {
		int k = sendmmsg(o->fd, o->mh + done, o->n - done, 0);
		if (k <= 0) {
			if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOBUFS))
				continue;
			done++; /* refused datagram: skip it */
			continue;
		}
		done += (unsigned)k;
	}
	o->n = 0;
}

/* A slot to write one datagram to `to`; send with `push`. */
static char *slot(struct out *o)
{
	if (o->n == BATCH)
		flush(o);
	return o->buf[o->n];
}

static void push(struct out *o, const struct sockaddr_in *to, size_t len)
{
	unsigned i = o->n++;

	o->to[i] = *to;
	o->iov[i] = (struct iovec){o->buf[i], len};
	o->mh[i].msg_hdr = (struct msghdr){
	    .msg_name = &o->to[i],
	    .msg_namelen = sizeof(o->to[i]),
	    .msg_iov = &o->iov[i],
	    .msg_iovlen = 1,
	};
}

static int udp_socket(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), size = 16 << 20;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bind");
		exit(2);
	}
	return fd;
}

/* The value of the first header line named name (case as we and the server write it). */
static const char *hdr(const char *msg, const char *name, size_t *len)
{
	const char *p = strstr(msg, name), *e;

	if (!p)
		return NULL;
	p += strlen(name);
	while (*p == ' ')
		p++;
	e = strstr(p, "\r\n");
	*len = e ? (size_t)(e - p) : strlen(p);
	return p;
}

static long call_index(const char *msg)
{
	size_t len;
	const char *v = hdr(msg, "\r\nCall-ID:", &len);

	if (!v || len < 3 || v[0] != 'o' || v[1] != 'l')
		return -1;
	return strtol(v + 2, NULL, 10);
}

/*
 * The loopback address whose port follows `after` in s (the first "sip:" of a
 * Route, the sent-by of a Via), or dflt when there is none: where an
 * in-dialog request (its first Route, RFC 3261 12.2.1.1) and a response (its
 * top Via, 18.2.2) go, which a server's dialog port may make other than the
 * port the load is sent to.
 */
static struct sockaddr_in addr_after(const char *s, const char *after,
				     const struct sockaddr_in *dflt)
{
	struct sockaddr_in a = *dflt;
	const char *p = s ? strstr(s, after) : NULL, *e = p ? strstr(p, "\r\n") : NULL;
	long port;

	if (!p)
		return a;
	p += strlen(after);
	while (*p && *p != ':' && *p != ';' && *p != '>' && (!e || p < e))
		p++;
	if (*p != ':')
		return a;
	port = strtol(p + 1, NULL, 10);
	if (port > 0 && port < 65536)
		a.sin_port = htons((uint16_t)port);
	return a;
}

/* The UAS: 200 to INVITE (with To tag and Contact) and to BYE, statelessly, to the top Via. */
static void uas_answer(struct out *o, const char *msg, const struct sockaddr_in *from,
		       uint16_t uas_port)
{
	const char *p = strstr(msg, "\r\n") + 2;
	bool invite = strncmp(msg, "INVITE ", 7) == 0;
	char *b;
	size_t n;

	if (!invite && strncmp(msg, "BYE ", 4) != 0)
		return; /* ACK */
	b = slot(o);
	n = (size_t)snprintf(b, MAXMSG, "SIP/2.0 200 OK\r\n");
	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *e = strstr(p, "\r\n");
		size_t l = e ? (size_t)(e - p) : strlen(p);
		bool to = strncmp(p, "To:", 3) == 0;
		if (strncmp(p, "Via:", 4) == 0 || strncmp(p, "From:", 5) == 0 || to ||
		    strncmp(p, "Call-ID:", 8) == 0 || strncmp(p, "CSeq:", 5) == 0 ||
		    strncmp(p, "Record-Route:", 13) == 0) {
			if (n + l + 64 >= MAXMSG)
				return;
			memcpy(b + n, p, l);
			n += l;
			if (to && invite && !memmem(p, l, ";tag=", 5))
				n += (size_t)snprintf(b + n, MAXMSG - n, ";tag=uas");
			memcpy(b + n, "\r\n", 2);
			n += 2;
		}
		if (!e)
			break;
		p = e + 2;
	}
	if (invite)
		n += (size_t)snprintf(b + n, MAXMSG - n, "Contact: <sip:uas@127.0.0.1:%u>\r\n",
				      uas_port);
	n += (size_t)snprintf(b + n, MAXMSG - n, "Content-Length: 0\r\n\r\n");
	{
		struct sockaddr_in to = addr_after(msg, "\r\nVia: SIP/2.0/UDP ", from);
		push(o, &to, n);
	}
}

/*
 * The callee's loop, in a process of its own (forked at start) ahead of the
 * caller on the client's core (nice -10): the callee stands for another
 * machine, and a caller retransmitting into an overloaded server (hundreds of
 * thousands of datagrams a second, the kernel's drops charged to the sender)
 * must not make it late with its answers, nor let its socket overflow.
 */
static void uas_loop(int fd, struct out *so, uint16_t uport, int64_t end)
{
	static char rbuf[BATCH][MAXMSG + 1];
	struct mmsghdr rmh[BATCH];
	struct iovec riov[BATCH];
	struct sockaddr_in rfrom[BATCH];

	if (setpriority(PRIO_PROCESS, 0, -10) < 0)
		perror("setpriority (the callee runs at the caller's priority)");
	while (now_ns() < end) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (poll(&pf, 1, 10) <= 0)
			continue;
		for (int round = 0; round < 8; round++) {
			int k;
			for (int i = 0; i < BATCH; i++) {
				riov[i] = (struct iovec){rbuf[i], MAXMSG};
				rmh[i].msg_hdr = (struct msghdr){.msg_name = &rfrom[i],
								 .msg_namelen = sizeof(rfrom[i]),
								 .msg_iov = &riov[i],
								 .msg_iovlen = 1};
			}
			k = recvmmsg(fd, rmh, BATCH, MSG_DONTWAIT, NULL);
			if (k <= 0)
				break;
			for (int i = 0; i < k; i++) {
				rbuf[i][rmh[i].msg_len] = '\0';
				uas_answer(so, rbuf[i], &rfrom[i], uport);
			}
			flush(so);
		}
	}
}

static const struct sockaddr_in *g_server;
static uint16_t g_uac_port;
/* the callers' in-dialog socket (ACK, BYE and the BYE's answers): see main */
static uint16_t g_dlg_port;
static int g_oc;       /* 1: declare support, 2: and honour it */
static unsigned g_red; /* oc-aware: the server's reduction, % */
static int64_t g_red_until;
static unsigned g_red_credit;

static void send_invite(struct out *o, long i, unsigned callees)
{
	char *b = slot(o);
	int n = snprintf(b, MAXMSG,
			 "INVITE sip:c%06lu@127.0.0.1 SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKol%ld%s\r\n"
			 "Max-Forwards: 70\r\n"
			 "From: <sip:trunk%ld@carrier.example>;tag=f%ld\r\n"
			 "To: <sip:c%06lu@127.0.0.1>\r\n"
			 "Call-ID: ol%ld@ocload\r\n"
			 "CSeq: 1 INVITE\r\n"
			 "Contact: <sip:trunk@127.0.0.1:%u>\r\n"
			 "Content-Length: 0\r\n\r\n",
			 (unsigned long)(i % callees + 1), g_uac_port, i, g_oc ? ";oc" : "",
			 i % 100, i, (unsigned long)(i % callees + 1), i, g_uac_port);
	push(o, g_server, (size_t)n);
}

/* ACK of a non-2xx final: same branch, the response's To. */
static void send_ack_failure(struct out *o, long i, const char *resp, unsigned callees)
{
	size_t tl;
	const char *to = hdr(resp, "\r\nTo:", &tl);
	char *b;
	int n;

	if (!to)
		return;
	b = slot(o);
	n = snprintf(b, MAXMSG,
		     "ACK sip:c%06lu@127.0.0.1 SIP/2.0\r\n"
		     "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKol%ld\r\n"
		     "Max-Forwards: 70\r\n"
		     "From: <sip:trunk%ld@carrier.example>;tag=f%ld\r\n"
		     "To: %.*s\r\n"
		     "Call-ID: ol%ld@ocload\r\n"
		     "CSeq: 1 ACK\r\n"
		     "Content-Length: 0\r\n\r\n",
		     (unsigned long)(i % callees + 1), g_uac_port, i, i % 100, i, (int)tl, to, i);
	push(o, g_server, (size_t)n);
}

/* ACK (2xx) or BYE inside the dialog, through the Route set. */
static void send_in_dialog(struct out *o, long i, struct call *c, const char *method, int cseq,
			   unsigned callees)
{
	const char *route = c->route, *target = route + strlen(route) + 1;
	char *b = slot(o);
	int n = snprintf(b, MAXMSG,
			 "%s %s SIP/2.0\r\n"
			 "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=z9hG4bKol%ld.%s\r\n"
			 "Max-Forwards: 70\r\n"
			 "%s%s%s"
			 "From: <sip:trunk%ld@carrier.example>;tag=f%ld\r\n"
			 "To: <sip:c%06lu@127.0.0.1>;tag=uas\r\n"
			 "Call-ID: ol%ld@ocload\r\n"
			 "CSeq: %d %s\r\n"
			 "Content-Length: 0\r\n\r\n",
			 method, target, g_dlg_port, i, method, route[0] ? "Route: " : "", route,
			 route[0] ? "\r\n" : "", i % 100, i, (unsigned long)(i % callees + 1), i,
			 cseq, method);
	struct sockaddr_in to = addr_after(route[0] ? route : target, "sip:", g_server);
	push(o, &to, (size_t)n);
}

/* Route set (Record-Route reversed) and the remote target from a 200. */
static char *dialog_of(const char *resp)
{
	const char *rr[8];
	size_t rl[8], n = 0, tl = 0, total = 0;
	const char *p = resp, *t;
	char *out, *w;

	while (n < 8 && (p = strstr(p, "\r\nRecord-Route:"))) {
		rr[n] = hdr(p, "\r\nRecord-Route:", &rl[n]);
		total += rl[n] + 2;
		n++;
		p += 2;
	}
	t = hdr(resp, "\r\nContact:", &tl);
	if (!t || tl < 3)
		return NULL;
	out = w = malloc(total + tl + 4);
	if (!out)
		return NULL;
	for (size_t k = n; k > 0; k--) {
		memcpy(w, rr[k - 1], rl[k - 1]);
		w += rl[k - 1];
		if (k > 1) {
			memcpy(w, ", ", 2);
			w += 2;
		}
	}
	*w++ = '\0';
	/* <sip:...> -> sip:... */
	if (t[0] == '<') {
		const char *e = memchr(t, '>', tl);
		t++;
		tl = e ? (size_t)(e - t) : tl - 1;
	}
	memcpy(w, t, tl);
	w[tl] = '\0';
	return out;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pctl(int64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t k = (size_t)(n * p / 100.0);
	return (double)v[k < n ? k : n - 1] / 1000.0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: ocload SERVER_PORT UAS_PORT RATE SECONDS [CALLEES] [oc]\n");
		return 2;
	}
	uint16_t sport = (uint16_t)atoi(argv[1]), uport = (uint16_t)atoi(argv[2]);
	long rate = atol(argv[3]), secs = atol(argv[4]);
	unsigned callees = argc > 5 ? (unsigned)atoi(argv[5]) : 1000;
	g_oc = argc > 6 ? (strcmp(argv[6], "oc") == 0	      ? 1
			   : strcmp(argv[6], "oc-aware") == 0 ? 2
							      : 0)
			: 0;
	long ncalls = rate * secs, sent = 0;
	struct call *calls = calloc((size_t)ncalls + 1, sizeof(*calls));
	struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(sport)};
	int ufd = udp_socket(0), sfd = udp_socket(uport), dfd = udp_socket(0);
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	static struct out uo, so, dout;
	static char rbuf[BATCH][MAXMSG + 1];
	struct mmsghdr rmh[BATCH];
	struct iovec riov[BATCH];
	struct sockaddr_in rfrom[BATCH];
	unsigned long stray = 0, oc_max = 0, oc_seen = 0, status_count[7] = {0};
	int64_t t0, end_offer, end, now, last_rx = 0;
	unsigned long retx = 0;
	pid_t uas;

	server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g_server = &server;
	getsockname(ufd, (struct sockaddr *)&me, &ml);
	g_uac_port = ntohs(me.sin_port);
	uo.fd = ufd;
	so.fd = sfd;
	/*
	 * The calls' ACK and BYE leave from a socket of their own, whose answers are read
	 * first: the callers of established calls stand for other phones than the one
	 * that is sent hundreds of thousands of 503s and 100s a second, and must not wait
	 * behind them in one socket's queue (at 10x that queue overflows here, in the load
	 * generator, and its drops were counted as BYEs lost).
	 */
	dout.fd = dfd;
	ml = sizeof(me);
	getsockname(dfd, (struct sockaddr *)&me, &ml);
	g_dlg_port = ntohs(me.sin_port);
	ml = sizeof(me);
	if (!calls)
		return 2;
	t0 = now_ns();
	end_offer = t0 + secs * 1000000000LL;
	end = end_offer + DRAIN_NS;
	fflush(stdout);
	uas = fork();
	if (uas < 0) {
		perror("fork");
		return 2;
	}
	if (uas == 0) {
		uas_loop(sfd, &so, uport, end);
		_exit(0);
	}
	close(sfd);
	for (;;) {
		struct pollfd pf[2] = {{dfd, POLLIN, 0}, {ufd, POLLIN, 0}};
		now = now_ns();
		if (now >= end)
			break;
		/* offer what is due, evenly */
		if (now < end_offer) {
			long due = (long)((double)(now - t0) * rate / 1e9);
			if (due > ncalls)
				due = ncalls;
			while (sent < due) {
				calls[sent].t_invite = calls[sent].t_retx = now;
				calls[sent].state = C_INVITED;
				if (g_oc == 2 && g_red && now < g_red_until &&
				    (g_red_credit += g_red) >= 100) {
					g_red_credit -= 100;
					calls[sent].state = C_LOCAL;
				} else {
					send_invite(&uo, sent, callees);
				}
				sent++;
			}
		}
		/* BYE retransmissions (Timer E, capped at 4 s) */
		static int64_t last_scan;
		if (now - last_scan > 100000000LL) {
			long open = 0;
			last_scan = now;
			for (long i = 0; i < sent; i++) {
				struct call *c = &calls[i];
				int64_t wait = BYE_T1 << (c->bye_tx > 3 ? 3 : c->bye_tx);
				open += c->state == C_UP;
				if (c->state == C_INVITED && !c->t_first) {
					/* Timer A until Timer B (32 s) */
					int64_t a = BYE_T1 << (c->inv_tx > 6 ? 6 : c->inv_tx);
					if (now - c->t_retx >= a &&
					    now - c->t_invite < 32000000000LL) {
						c->inv_tx++;
						c->t_retx = now;
						send_invite(&uo, i, callees);
						retx++;
					}
					continue;
				}
				if (c->state != C_UP || now - c->t_bye < wait)
					continue;
				if (c->bye_tx >= BYE_MAX) {
					c->state = C_BYE_FAILED;
					continue;
				}
				c->bye_tx++;
				c->t_bye = now;
				send_in_dialog(&dout, i, c, "BYE", 2, callees);
			}
			/* done early: nothing more can come once every call has settled */
			if (now > end_offer + 2000000000LL && open == 0 &&
			    now - last_rx > 1000000000LL)
				break;
		}
		flush(&uo);
		flush(&dout);
		flush(&so);
		if (poll(pf, 2, 1) <= 0)
			continue;
		/* the in-dialog socket first; the callee's socket is its own process's */
		for (int s = 0; s < 2; s++) {
			int fd = s == 0 ? dfd : ufd;
			for (int round = 0; round < 8; round++) {
				int k;
				for (int i = 0; i < BATCH; i++) {
					riov[i] = (struct iovec){rbuf[i], MAXMSG};
					rmh[i].msg_hdr =
					    (struct msghdr){.msg_name = &rfrom[i],
							    .msg_namelen = sizeof(rfrom[i]),
							    .msg_iov = &riov[i],
							    .msg_iovlen = 1};
				}
				k = recvmmsg(fd, rmh, BATCH, MSG_DONTWAIT, NULL);
				if (k <= 0)
					break;
				now = now_ns();
				last_rx = now;
				for (int i = 0; i < k; i++) {
					char *msg = rbuf[i];
					long ci;
					unsigned st;
					struct call *c;
					msg[rmh[i].msg_len] = '\0';
					if (strncmp(msg, "SIP/2.0 ", 8) != 0) {
						stray++;
						continue;
					}
					ci = call_index(msg);
					if (ci < 0 || ci >= sent) {
						stray++;
						continue;
					}
					c = &calls[ci];
					st = (unsigned)atoi(msg + 8);
					if (g_oc) {
						const char *q = strstr(msg, ";oc=");
						if (q) {
							unsigned long v = strtoul(q + 4, NULL, 10);
							const char *vq = strstr(q, ";oc-validity=");
							oc_seen++;
							if (v > oc_max)
								oc_max = v;
							g_red = v > 100 ? 100 : (unsigned)v;
							g_red_until =
							    now + (vq ? strtoll(vq + 13, NULL, 10)
								      : 500) *
								      1000000LL;
						}
					}
					if (strstr(msg, "\r\nCSeq: 2 BYE")) {
						if (st >= 200 && c->state == C_UP) {
							c->state = st < 300 ? C_DONE : C_BYE_FAILED;
							if (st >= 300)
								c->status = (uint16_t)st; /* why */
							c->t_done = now;
						}
						continue;
					}
					if (!c->t_first)
						c->t_first = now;
					if (st == 100) {
						if (!c->t_100)
							c->t_100 = now;
						continue;
					}
					if (st < 200)
						continue;
					if (st < 300) {
						if (c->state == C_INVITED) {
							c->route = dialog_of(msg);
							if (!c->route) {
								c->state = C_FAILED;
								continue;
							}
							c->state = C_UP;
							c->status = (uint16_t)st;
							send_in_dialog(&dout, ci, c, "ACK", 1,
								       callees);
							c->bye_tx = 1;
							c->t_bye = now;
							send_in_dialog(&dout, ci, c, "BYE", 2,
								       callees);
						} else if (c->route) {
							send_in_dialog(&dout, ci, c, "ACK", 1,
								       callees);
						}
						continue;
					}
					send_ack_failure(&uo, ci, msg, callees);
					if (c->state == C_INVITED) {
						c->state = st == 503 ? C_REFUSED : C_FAILED;
						c->status = (uint16_t)st;
						status_count[st / 100 < 7 ? st / 100 : 6]++;
					}
				}
				flush(&uo);
				flush(&dout);
				flush(&so);
				if (k < BATCH)
					break;
			}
		}
	}
	kill(uas, SIGKILL);
	waitpid(uas, NULL, 0);
	/* results */
	long bye_open = 0, bye_timeout = 0, bye_error = 0, bye_error_status = 0;
	long up = 0, done = 0, bye_lost = 0, refused = 0, failed = 0, unanswered = 0, local = 0;
	/* goodput: calls completed in the steady part of the offer (after the first second) */
	long done_window = 0;
	int64_t win_from = t0 + 1000000000LL;
	int64_t *lat100 = malloc(sizeof(int64_t) * (size_t)(sent + 1));
	int64_t *latfirst = malloc(sizeof(int64_t) * (size_t)(sent + 1));
	size_t n100 = 0, nfirst = 0;
	for (long i = 0; i < sent; i++) {
		struct call *c = &calls[i];
		if (c->t_100)
			lat100[n100++] = (c->t_100 - c->t_invite) / 1000;
		if (c->t_first)
			latfirst[nfirst++] = (c->t_first - c->t_invite) / 1000;
		switch (c->state) {
		case C_DONE:
			done++;
			up++;
			done_window += c->t_done >= win_from && c->t_done < end_offer;
			break;
		case C_UP:
		case C_BYE_FAILED:
			up++;
			bye_lost++;
			/* which way: still waiting at the end, every retransmission unanswered, or
			 * answered with an error (its status kept) */
			if (c->state == C_UP)
				bye_open++;
			else if (c->status >= 300)
				bye_error++, bye_error_status = c->status;
			else
				bye_timeout++;
			break;
		case C_REFUSED:
			refused++;
			break;
		case C_FAILED:
			failed++;
			break;
		case C_LOCAL:
			local++;
			break;
		default:
			unanswered++;
		}
		free(c->route);
	}
	qsort(lat100, n100, sizeof(int64_t), cmp64);
	qsort(latfirst, nfirst, sizeof(int64_t), cmp64);
	printf("{\"rate\": %ld, \"secs\": %ld, \"offered\": %ld, \"established\": %ld, "
	       "\"completed\": %ld, \"goodput\": %.1f, \"bye_lost\": %ld, \"refused_503\": %ld, "
	       "\"failed_other\": %ld, \"unanswered\": %ld, \"fail_4xx\": %lu, \"fail_5xx\": %lu, "
	       "\"n100\": %zu, \"p50_100_ms\": %.3f, \"p99_100_ms\": %.3f, "
	       "\"p99_first_ms\": %.3f, \"stray\": %lu, \"oc_seen\": %lu, \"oc_max\": %lu, "
	       "\"reduced_at_source\": %ld, \"invite_retransmissions\": %lu, "
	       "\"bye_open_at_end\": %ld, \"bye_timeout\": %ld, \"bye_error\": %ld, "
	       "\"bye_error_status\": %ld}\n",
	       rate, secs, sent, up, done, (double)done_window / (double)(secs - 1), bye_lost,
	       refused, failed, unanswered, status_count[4], status_count[5], n100,
	       pctl(lat100, n100, 50), pctl(lat100, n100, 99), pctl(latfirst, nfirst, 99), stray,
	       oc_seen, oc_max, local, retx, bye_open, bye_timeout, bye_error, bye_error_status);
	free(lat100);
	free(latfirst);
	free(calls);
	return 0;
}
