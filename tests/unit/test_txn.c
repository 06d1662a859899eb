/*
 * test_txn.c - RFC 3261 section 17 transactions (with RFC 6026's Accepted
 * state) on real timers and real UDP sockets on 127.0.0.1.
 *
 * The fixture builds a minimal server (configuration with T1/T2/T4 of
 * 20/160/200 ms, one UDP listen address on a free port, the transaction
 * table and the transport table with a message handler of the test's own)
 * and one worker whose thread is never started: the test thread drives the
 * worker's event loop itself. A plain UDP socket, watched on the same loop,
 * plays the peer and timestamps everything it receives, so the tests can
 * check what went on the wire and when: retransmission intervals, the ACK
 * and CANCEL the client transaction builds, what the server transaction
 * retransmits or absorbs, and which callback runs when.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "sip/sip.h"
#include "transport/internal.h" /* the worker's UDP socket, to learn its port */
#include "transport/tport.h"
#include "txn/txn.h"

#define T1 20
#define T2 160
#define T4 200

#define MAX_RX	 128
#define MAX_REQ	 16
#define MAX_RESP 32
#define MSG_MAX	 4096

struct datagram {
	int64_t at_us; /* when the peer read it, relative to fx->t0 */
	size_t len;
	char data[MSG_MAX];
};

struct fx {
	struct server srv;
	struct worker *w;
	struct worker *w1; /* only the cross-worker test has a second worker */

	int peer_fd;
	uint16_t peer_port;
	uint16_t w_port;
	struct sockaddr_in w_addr;
	struct event *peer_ev;
	struct event *tick_ev;
	int64_t t0;

	/* what the peer received */
	struct datagram *rx;
	size_t nrx;
	/* requests the worker received (a copy, to parse again) */
	struct {
		size_t len;
		char data[MSG_MAX];
		struct tp_src src;
	} req[MAX_REQ];
	size_t nreq;
	/* txn_cli_dispatch results for the responses the worker received */
	int dispatch_rc[MAX_RESP];
	unsigned dispatch_worker[MAX_RESP];
	size_t ndispatch;

	/* client transaction callbacks */
	struct {
		unsigned status;
		int64_t at_us;
		struct txn_cli *t;
		unsigned worker;
		uint64_t tx_msgs; /* the worker's sent count when it was reported */
	} resp[MAX_RESP];
	size_t nresp;
	unsigned ntimeout;
	int timeout_err;
	int64_t timeout_at_us;
	unsigned ncli_terminated;
	int64_t cli_terminated_at_us;

	/* server transaction callbacks */
	unsigned nsrv_failed;
	unsigned nsrv_terminated;
	int64_t srv_failed_at_us;

	struct txn_srv st[4];
};

static struct fx *g;

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t elapsed_us(void)
{
	return mono_us() - g->t0;
}

/*
 * Callbacks
 */
static void on_msg(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src)
{
	if (parse_err)
		return;
	if (!m->request) {
		if (g->ndispatch < MAX_RESP) {
			g->dispatch_worker[g->ndispatch] = w->id;
			g->dispatch_rc[g->ndispatch++] = txn_cli_dispatch(w, m, src);
		}
		return;
	}
	if (g->nreq < MAX_REQ && m->len <= MSG_MAX) {
		memcpy(g->req[g->nreq].data, m->buf, m->len);
		g->req[g->nreq].len = m->len;
		g->req[g->nreq].src = *src;
		g->nreq++;
	}
}

static void peer_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (;;) {
		char buf[MSG_MAX];
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return;
		if (g->nrx < MAX_RX) {
			struct datagram *d = &g->rx[g->nrx++];
			d->at_us = elapsed_us();
			d->len = (size_t)n;
			memcpy(d->data, buf, (size_t)n);
		}
	}
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void cli_response(struct txn_cli *t, struct sip_msg *resp)
{
	if (g->nresp < MAX_RESP) {
		g->resp[g->nresp].status = resp->status;
		g->resp[g->nresp].at_us = elapsed_us();
		g->resp[g->nresp].t = t;
		g->resp[g->nresp].worker = t->w->id;
		g->resp[g->nresp].tx_msgs = t->w->stats.tx_msgs;
		g->nresp++;
	}
}

static void cli_timeout(struct txn_cli *t, int err)
{
	(void)t;
	g->ntimeout++;
	g->timeout_err = err;
	g->timeout_at_us = elapsed_us();
}

static void cli_terminated(struct txn_cli *t)
{
	(void)t;
	g->ncli_terminated++;
	g->cli_terminated_at_us = elapsed_us();
}

static const struct txn_cli_ops cli_ops = {
    .response = cli_response,
    .timeout = cli_timeout,
    .terminated = cli_terminated,
};

static void srv_failed(struct txn_srv *t)
{
	(void)t;
	g->nsrv_failed++;
	g->srv_failed_at_us = elapsed_us();
}

static void srv_terminated(struct txn_srv *t)
{
	(void)t;
	g->nsrv_terminated++;
}

static const struct txn_srv_ops srv_ops = {
    .failed = srv_failed,
    .terminated = srv_terminated,
};

/*
 * Fixture
 */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct timeval tv = {0, 5000};
	char err[256];

	if (!f)
		return -1;
	f->rx = calloc(MAX_RX, sizeof(*f->rx));
	if (!f->rx)
		return -1;
	g = f;
	log_set_level(LOG_ERROR);
	cfg_defaults(&f->srv.cfg);
	f->srv.cfg.t1_ms = T1;
	f->srv.cfg.t2_ms = T2;
	f->srv.cfg.t4_ms = T4;
	f->srv.cfg.workers = 1;
	f->srv.cfg.nlisten = 1;
	f->srv.cfg.listen[0].proto = SIP_PROTO_UDP;
	strcpy(f->srv.cfg.listen[0].host, "127.0.0.1");
	f->srv.cfg.listen[0].port = 0; /* the kernel picks a free port */
	f->srv.seed = 0x5eed5eed5eedULL;
	f->srv.nworkers = 1;
	atomic_init(&f->srv.stopping, false);
	if (txn_table_create(f->srv.seed, &f->srv.txns) ||
	    tp_table_create(&f->srv, on_msg, &f->srv.tp, err, sizeof(err)) ||
	    worker_create(&f->srv, 0, &f->w)) {
		print_error("fixture: %s\n", err);
		return -1;
	}
	f->srv.workers[0] = f->w;
	if (getsockname(f->w->tp->udp_fd[0], (struct sockaddr *)&f->w_addr, &alen))
		return -1;
	f->w_port = ntohs(f->w_addr.sin_port);

	f->peer_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	alen = sizeof(a);
	if (f->peer_fd < 0 || bind(f->peer_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(f->peer_fd, (struct sockaddr *)&a, &alen))
		return -1;
	f->peer_port = ntohs(a.sin_port);
	f->peer_ev = event_new(f->w->base, f->peer_fd, EV_READ | EV_PERSIST, peer_readable, f);
	f->tick_ev = event_new(f->w->base, -1, EV_PERSIST, tick, f);
	if (!f->peer_ev || !f->tick_ev)
		return -1;
	event_add(f->peer_ev, NULL);
	event_add(f->tick_ev, &tv);
	f->t0 = mono_us();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	event_free(f->peer_ev);
	event_free(f->tick_ev);
	close(f->peer_fd);
	if (f->w1)
		worker_destroy(f->w1);
	worker_destroy(f->w);
	tp_table_destroy(f->srv.tp);
	txn_table_destroy(f->srv.txns);
	free(f->rx);
	free(f);
	g = NULL;
	return 0;
}

/*
 * Driving the loop
 */
#define RUN_UNTIL(cond, max_ms)                                                                    \
	do {                                                                                       \
		int64_t deadline_ = mono_us() + (int64_t)(max_ms)*1000;                            \
		while (!(cond) && mono_us() < deadline_)                                           \
			event_base_loop(g->w->base, EVLOOP_ONCE);                                  \
	} while (0)

/*
 * The same, reaping after every pass as the worker does after each batch of
 * I/O: a client transaction is freed right after ops->terminated, so a test
 * waits for that callback, never for t->state, once t may be gone.
 */
#define RUN_UNTIL_REAPED(cond, max_ms)                                                             \
	do {                                                                                       \
		int64_t deadline_ = mono_us() + (int64_t)(max_ms)*1000;                            \
		while (!(cond) && mono_us() < deadline_) {                                         \
			event_base_loop(g->w->base, EVLOOP_ONCE);                                  \
			worker_reap(g->w);                                                         \
		}                                                                                  \
	} while (0)

static void run_ms(unsigned ms)
{
	int64_t deadline = mono_us() + (int64_t)ms * 1000;

	while (mono_us() < deadline)
		event_base_loop(g->w->base, EVLOOP_ONCE);
}

/* Waits until the peer has received n datagrams in all. */
static void peer_wait(size_t n, unsigned max_ms)
{
	RUN_UNTIL(g->nrx >= n, max_ms);
	if (g->nrx < n)
		fail_msg("the peer received %zu datagrams, expected %zu within %u ms", g->nrx, n,
			 max_ms);
}

/* Waits until the worker has received n requests in all. */
static void req_wait(size_t n, unsigned max_ms)
{
	RUN_UNTIL(g->nreq >= n, max_ms);
	if (g->nreq < n)
		fail_msg("the worker received %zu requests, expected %zu", g->nreq, n);
}

static void peer_send(const char *data, size_t len)
{
	assert_int_equal(
	    sendto(g->peer_fd, data, len, 0, (struct sockaddr *)&g->w_addr, sizeof(g->w_addr)),
	    (ssize_t)len);
}

static void peer_send_buf(struct buf *b)
{
	peer_send(b->p, b->len);
}

static void parse_rx(size_t i, struct sip_msg *m)
{
	assert_true(i < g->nrx);
	memset(m, 0, sizeof(*m));
	assert_int_equal(sip_parse(m, g->rx[i].data, g->rx[i].len, 0), 0);
}

static void parse_req(size_t i, struct sip_msg *m)
{
	assert_true(i < g->nreq);
	memset(m, 0, sizeof(*m));
	assert_int_equal(sip_parse(m, g->req[i].data, g->req[i].len, 0), 0);
}

static bool rx_is_request(size_t i, const char *method)
{
	size_t n = strlen(method);

	return g->rx[i].len > n && memcmp(g->rx[i].data, method, n) == 0 && g->rx[i].data[n] == ' ';
}

static bool rx_is_status(size_t i, unsigned status)
{
	char line[16];

	snprintf(line, sizeof(line), "SIP/2.0 %u ", status);
	return g->rx[i].len > strlen(line) && memcmp(g->rx[i].data, line, strlen(line)) == 0;
}

static size_t rx_count_method(const char *method)
{
	size_t n = 0;

	for (size_t i = 0; i < g->nrx; i++)
		n += rx_is_request(i, method);
	return n;
}

static size_t rx_count_status(unsigned status)
{
	size_t n = 0;

	for (size_t i = 0; i < g->nrx; i++)
		n += rx_is_status(i, status);
	return n;
}

/* Index of the k-th (0-based) datagram starting with method, or -1. */
static long rx_find(const char *method, size_t k)
{
	for (size_t i = 0; i < g->nrx; i++) {
		if (rx_is_request(i, method) && k-- == 0)
			return (long)i;
	}
	return -1;
}

/* The peer answers the request it received as datagram i. */
static void peer_reply(size_t i, unsigned status, const char *to_tag)
{
	struct sip_msg m;
	struct buf b;
	struct sip_reply r = {.status = status, .to_tag = to_tag ? sv_cstr(to_tag) : SV_NULL};

	parse_rx(i, &m);
	buf_init(&b, 0);
	assert_int_equal(sip_build_reply(&b, &m, &r), 0);
	peer_send_buf(&b);
	buf_free(&b);
	sip_msg_release(&m);
}

/*
 * A timing check: not early, not much late (the upper bound leaves room for a
 * loaded machine; the lower bounds are what tell T1 from 2*T1, or a capped
 * interval from a doubled one). libevent reads CLOCK_MONOTONIC_COARSE
 * unless a base asks for precise timers (the workers do not), so a timer may
 * fire up to one jiffy (4 ms at HZ=250) early by a precise clock, and the
 * start time read by the test may lag by another (seen: 5.4 ms early under
 * ASan on a busy machine); 10 ms still tells every interval here apart.
 */
static void assert_interval(int64_t got_us, unsigned expected_ms, const char *what)
{
	int64_t lo = (int64_t)expected_ms * 1000 - 10000;
	int64_t hi = (int64_t)expected_ms * 1000 + 25000 + (int64_t)expected_ms * 250;

	if (got_us < lo || got_us > hi)
		fail_msg("%s: %.1f ms, expected %u ms (%.1f..%.1f)", what, (double)got_us / 1000,
			 expected_ms, (double)lo / 1000, (double)hi / 1000);
}

/*
 * Client side
 */
static struct tp_dest peer_dest(void)
{
	struct tp_dest d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_addr_from_str("127.0.0.1", g->peer_port, SIP_PROTO_UDP, &d.peer), 0);
	d.listen = 0;
	return d;
}

/* Builds a request with t's branch in its top Via, as a transaction user would. */
static void build_request(struct buf *b, const struct txn_cli *t, const char *method, uint32_t cseq,
			  const char *extra)
{
	buf_reset(b);
	buf_printf(
	    b,
	    "%s sip:bob@127.0.0.1:%u;transport=udp SIP/2.0\r\n"
	    "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%.*s\r\n"
	    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-upstream-1;received=192.0.2.1\r\n"
	    "Route: <sip:edge.example.com;lr>\r\n"
	    "Max-Forwards: 69\r\n"
	    "From: \"Alice\" <sip:alice@example.com>;tag=alice-tag\r\n"
	    "To: <sip:bob@example.com>\r\n"
	    "Call-ID: call-%.*s@test\r\n"
	    "CSeq: %u %s\r\n"
	    "Contact: <sip:alice@192.0.2.1:5060>\r\n"
	    "%s"
	    "Content-Length: 0\r\n\r\n",
	    method, g->peer_port, g->w_port, (int)t->branch_len, t->branch, (int)t->branch_len,
	    t->branch, cseq, method, extra ? extra : "");
	assert_int_equal(b->err, 0);
}

/* Creates a client transaction and sends its request to the peer. */
static struct txn_cli *cli_start(enum sip_method method, uint32_t cseq, struct buf *req)
{
	struct txn_cli *t = NULL;
	struct tp_dest d = peer_dest();

	assert_int_equal(txn_cli_create(g->w, method, 0x0123456789abcdefULL, &cli_ops, g, &t), 0);
	build_request(req, t, method == SIP_INVITE ? "INVITE" : "OPTIONS", cseq, NULL);
	g->t0 = mono_us();
	assert_int_equal(txn_cli_send(t, &d, req->p, req->len), 0);
	return t;
}

static sv_t hdr_value(struct sip_msg *m, enum sip_hdr_id id)
{
	return sip_msg_value(m, id);
}

static void assert_sv_equal(sv_t a, sv_t b)
{
	if (!sv_eq(a, b))
		fail_msg("'%.*s' != '%.*s'", SV_ARG(a), SV_ARG(b));
}

/* Checks an ACK or CANCEL that the client transaction built from its request (17.1.1.3, 9.1). */
static void assert_built_from(size_t i, const struct buf *req, const char *method,
			      const char *to_tag)
{
	struct sip_msg m, r;
	const struct sip_cseq *cs, *rcs;
	const struct sip_naddr *to;

	parse_rx(i, &m);
	memset(&r, 0, sizeof(r));
	assert_int_equal(sip_parse(&r, req->p, req->len, 0), 0);
	assert_true(m.request);
	assert_sv_equal(m.method_name, sv_cstr(method));
	/* same Request-URI */
	assert_sv_equal(m.ruri_raw, r.ruri_raw);
	/* one Via: the top Via of the request, same branch */
	assert_int_equal(sip_msg_hdr_count(&m, SIP_H_VIA), 1);
	assert_non_null(sip_msg_via1(&m));
	assert_sv_equal(sip_msg_via1(&m)->branch, sip_msg_via1(&r)->branch);
	assert_sv_equal(sip_msg_via1(&m)->raw, sip_msg_via1(&r)->raw);
	/* same CSeq number, the new method */
	cs = sip_msg_cseq(&m);
	rcs = sip_msg_cseq(&r);
	assert_non_null(cs);
	assert_int_equal(cs->num, rcs->num);
	assert_sv_equal(cs->method_name, sv_cstr(method));
	/* same From, Call-ID and Route set */
	assert_sv_equal(hdr_value(&m, SIP_H_FROM), hdr_value(&r, SIP_H_FROM));
	assert_sv_equal(hdr_value(&m, SIP_H_CALL_ID), hdr_value(&r, SIP_H_CALL_ID));
	assert_sv_equal(hdr_value(&m, SIP_H_ROUTE), hdr_value(&r, SIP_H_ROUTE));
	assert_true(sip_msg_max_forwards(&m) > 0);
	/* To: the response's (with its tag) for an ACK, the request's for a CANCEL */
	to = sip_msg_to(&m);
	assert_non_null(to);
	assert_sv_equal(to->uri, sip_msg_to(&r)->uri);
	if (to_tag) {
		assert_true(to->has_tag);
		assert_sv_equal(to->tag, sv_cstr(to_tag));
	} else {
		assert_false(to->has_tag);
	}
	sip_msg_release(&m);
	sip_msg_release(&r);
}

/* Intervals between consecutive datagrams from index first on. */
static void assert_retransmissions(size_t first, const unsigned *expected_ms, size_t n,
				   const char *what)
{
	char label[64];

	assert_true(g->nrx >= first + n + 1);
	for (size_t k = 0; k < n; k++) {
		snprintf(label, sizeof(label), "%s interval %zu", what, k + 1);
		assert_int_equal(g->rx[first + k + 1].len, g->rx[first].len);
		assert_memory_equal(g->rx[first + k + 1].data, g->rx[first].data, g->rx[first].len);
		assert_interval(g->rx[first + k + 1].at_us - g->rx[first + k].at_us, expected_ms[k],
				label);
	}
}

/* INVITE: Timer A doubles (T1, 2T1, 4T1... with no T2 cap) until Timer B (64*T1) times out. */
static void test_invite_timer_a_and_b(void **state)
{
	struct fx *f = *state;
	struct buf req;
	static const unsigned a[] = {T1, 2 * T1, 4 * T1, 8 * T1, 16 * T1, 32 * T1};

	buf_init(&req, 0);
	cli_start(SIP_INVITE, 1, &req);
	assert_int_equal(f->w->stats.tx_msgs, 1);
	RUN_UNTIL(f->ntimeout > 0, 64 * T1 + 1000);
	assert_int_equal(f->ntimeout, 1);
	assert_int_equal(f->timeout_err, 0);
	/* 7 transmissions: at 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1; B at 64T1 */
	assert_int_equal(f->nrx, 7);
	assert_retransmissions(0, a, 6, "Timer A");
	assert_true(rx_is_request(0, "INVITE"));
	assert_interval(f->timeout_at_us - f->rx[0].at_us, 64 * T1, "Timer B");
	assert_int_equal(f->nresp, 0);

	/* nothing more after the timeout; terminated when the worker reaps */
	RUN_UNTIL_REAPED(f->ncli_terminated > 0, 4 * T1);
	assert_int_equal(f->ncli_terminated, 1);
	run_ms(4 * T1);
	assert_int_equal(f->nrx, 7);
	assert_int_equal(f->ntimeout, 1);
	buf_free(&req);
}

/* A provisional stops Timer A. */
static void test_invite_provisional_stops_retransmissions(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 1, &req);
	peer_wait(2, 500); /* the original and one retransmission */
	peer_reply(0, 180, "callee");
	RUN_UNTIL(f->nresp > 0, 500);
	assert_int_equal(f->nresp, 1);
	assert_int_equal(f->resp[0].status, 180);
	assert_ptr_equal(f->resp[0].t, t);
	assert_int_equal(f->dispatch_rc[0], 0);
	assert_int_equal(t->state, TXN_PROCEEDING);
	uint64_t sent = f->w->stats.tx_msgs;
	size_t nrx = f->nrx;
	run_ms(16 * T1); /* Timer A would have fired 3 more times */
	assert_int_equal(f->w->stats.tx_msgs, sent);
	assert_true(f->nrx <= nrx + 1); /* at most one was on its way */
	/* a second provisional goes up too */
	peer_reply(0, 183, "callee");
	RUN_UNTIL(f->nresp > 1, 500);
	assert_int_equal(f->resp[1].status, 183);
	assert_int_equal(t->state, TXN_PROCEEDING);
	buf_free(&req);
}

/*
 * BUG: Timer B keeps running after a provisional. RFC 3261 17.1.1.2: Timer B
 * only ends a transaction still in the Calling state; in Proceeding the
 * INVITE waits for its final response (the proxy has Timer C for that).
 * Here a ringing branch is reported as timed out after 64*T1 (32 s with the
 * default T1), the proxy answers 408 upstream while the callee keeps ringing.
 */
static void test_invite_proceeding_no_timer_b(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 1, &req);
	peer_wait(1, 500);
	peer_reply(0, 180, "callee");
	RUN_UNTIL(f->nresp > 0, 500);
	assert_int_equal(t->state, TXN_PROCEEDING);
	RUN_UNTIL_REAPED(f->ncli_terminated > 0, 64 * T1 + 300);
	buf_free(&req);
	assert_int_equal(f->ntimeout, 0);
	assert_int_equal(f->ncli_terminated, 0);
	assert_int_equal(t->state, TXN_PROCEEDING);
	/* and the final response still gets through */
	peer_reply(0, 486, "callee");
	RUN_UNTIL(f->nresp > 1, 500);
	assert_int_equal(f->resp[1].status, 486);
}

/* A non-2xx final: the transaction ACKs it itself, repeats the ACK, lingers for Timer D. */
static void test_invite_non2xx_ack(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;
	long ack;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 17, &req);
	peer_wait(1, 500);
	peer_reply(0, 486, "callee-tag");
	RUN_UNTIL(rx_count_method("ACK") == 1, 500);
	assert_int_equal(f->nresp, 1);
	assert_int_equal(f->resp[0].status, 486);
	assert_int_equal(t->state, TXN_COMPLETED);
	ack = rx_find("ACK", 0);
	assert_true(ack > 0);
	assert_built_from((size_t)ack, &req, "ACK", "callee-tag");

	/* the 486 again (our ACK was lost): the ACK again, the user hears nothing */
	peer_reply(0, 486, "callee-tag");
	RUN_UNTIL(rx_count_method("ACK") == 2, 500);
	assert_int_equal(rx_count_method("ACK"), 2);
	assert_int_equal(f->nresp, 1);
	assert_built_from((size_t)rx_find("ACK", 1), &req, "ACK", "callee-tag");
	/* and no INVITE retransmission any more */
	size_t invites = rx_count_method("INVITE");
	run_ms(8 * T1);
	assert_int_equal(rx_count_method("INVITE"), invites);

	/* Timer D is at least 32 s on UDP whatever T1 (RFC 3261 17.1.1.2): the
	 * transaction is still there long after 64*T1 and still absorbs the 486 */
	run_ms(64 * T1 + 300);
	assert_int_equal(f->ncli_terminated, 0);
	assert_int_equal(f->ntimeout, 0);
	peer_reply(0, 486, "callee-tag");
	RUN_UNTIL(rx_count_method("ACK") == 3, 500);
	assert_int_equal(f->nresp, 1);
	buf_free(&req);
}

/* A 2xx: Accepted (RFC 6026); 2xx retransmissions go to the user, no ACK from here. */
static void test_invite_2xx_accepted(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 1, &req);
	peer_wait(1, 500);
	peer_reply(0, 180, "callee");
	peer_reply(0, 200, "callee");
	RUN_UNTIL(f->nresp >= 2, 500);
	assert_int_equal(f->resp[1].status, 200);
	assert_int_equal(t->state, TXN_ACCEPTED);
	peer_reply(0, 200, "callee");
	peer_reply(0, 200, "callee");
	RUN_UNTIL(f->nresp >= 4, 500);
	assert_int_equal(f->nresp, 4);
	assert_int_equal(f->resp[2].status, 200);
	assert_int_equal(f->resp[3].status, 200);
	/* a stray non-2xx in Accepted is not passed on */
	peer_reply(0, 500, "callee");
	RUN_UNTIL(f->ndispatch >= 5, 500);
	run_ms(T1);
	assert_int_equal(f->nresp, 4);
	/* the ACK of a 2xx is the user's business: nothing but INVITEs went out */
	assert_int_equal(rx_count_method("ACK"), 0);
	assert_int_equal(rx_count_method("INVITE"), f->nrx);
	size_t invites = f->nrx;
	run_ms(8 * T1);
	assert_int_equal(f->nrx, invites);

	/* Timer M (64*T1) ends it, without a timeout */
	RUN_UNTIL_REAPED(f->ncli_terminated > 0, 64 * T1 + 500);
	assert_int_equal(f->ncli_terminated, 1);
	assert_interval(f->cli_terminated_at_us - f->resp[1].at_us, 64 * T1, "Timer M");
	assert_int_equal(f->ntimeout, 0);
	buf_free(&req);
}

/*
 * What a client transaction keeps after its final answer (issue 13, memory per
 * call in flight): in Accepted and in a non-INVITE's Completed nothing of the
 * request (nothing is resent); in an INVITE's Completed only the ACK, built
 * once and resent byte for byte for every retransmitted final.
 */
static void test_cli_keeps_only_what_it_needs(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *inv, *acc, *opt;
	long a0, a1;

	buf_init(&req, 0);
	/* an INVITE answered 486: the request copy becomes the ACK */
	inv = cli_start(SIP_INVITE, 21, &req);
	peer_wait(1, 500);
	assert_non_null(inv->req);
	assert_false(inv->req_is_ack);
	assert_int_equal(inv->req_len, req.len);
	peer_reply(0, 486, "busy-tag");
	RUN_UNTIL(rx_count_method("ACK") == 1, 500);
	assert_int_equal(inv->state, TXN_COMPLETED);
	assert_true(inv->req_is_ack);
	a0 = rx_find("ACK", 0);
	assert_int_equal(inv->req_len, f->rx[a0].len);
	assert_memory_equal(inv->req, f->rx[a0].data, inv->req_len);
	assert_true(inv->req_len < req.len);
	peer_reply(0, 486, "busy-tag");
	RUN_UNTIL(rx_count_method("ACK") == 2, 500);
	a1 = rx_find("ACK", 1);
	assert_int_equal(f->rx[a1].len, f->rx[a0].len);
	assert_memory_equal(f->rx[a1].data, f->rx[a0].data, f->rx[a0].len);

	/* an INVITE answered 200: Accepted keeps no copy */
	f->nrx = 0;
	acc = cli_start(SIP_INVITE, 22, &req);
	peer_wait(1, 500);
	peer_reply(0, 200, "ok-tag");
	RUN_UNTIL(acc->state == TXN_ACCEPTED, 500);
	assert_null(acc->req);
	assert_int_equal(acc->req_len, 0);
	/* 2xx retransmissions still match it and go to the user */
	size_t nresp = f->nresp;
	peer_reply(0, 200, "ok-tag");
	RUN_UNTIL(f->nresp > nresp, 500);
	assert_int_equal(f->resp[f->nresp - 1].status, 200);

	/* a non-INVITE answered: Completed keeps no copy and absorbs the final */
	f->nrx = 0;
	opt = cli_start(SIP_OPTIONS, 23, &req);
	peer_wait(1, 500);
	peer_reply(0, 200, "o-tag");
	RUN_UNTIL(opt->state == TXN_COMPLETED, 500);
	assert_null(opt->req);
	nresp = f->nresp;
	uint64_t sent = f->w->stats.tx_msgs;
	peer_reply(0, 200, "o-tag");
	run_ms(T1);
	assert_int_equal(f->nresp, nresp);
	assert_int_equal(f->w->stats.tx_msgs, sent);
	buf_free(&req);
}

/* Non-INVITE: Timer E doubles up to T2, Timer F times out at 64*T1. */
static void test_non_invite_timer_e_and_f(void **state)
{
	struct fx *f = *state;
	struct buf req;
	static const unsigned e[] = {T1, 2 * T1, 4 * T1, T2, T2, T2, T2};

	buf_init(&req, 0);
	cli_start(SIP_OPTIONS, 1, &req);
	RUN_UNTIL(f->ntimeout > 0, 64 * T1 + 1000);
	assert_int_equal(f->ntimeout, 1);
	assert_int_equal(f->timeout_err, 0);
	/* at 0, 20, 60, 140, then every 160 ms: 300, 460, ... 1260; F at 1280 */
	assert_true(f->nrx >= 9);
	assert_true(f->nrx <= 11);
	assert_retransmissions(0, e, 7, "Timer E");
	assert_interval(f->timeout_at_us - f->rx[0].at_us, 64 * T1, "Timer F");
	size_t n = f->nrx;
	RUN_UNTIL_REAPED(f->ncli_terminated > 0, 2 * T2);
	assert_int_equal(f->ncli_terminated, 1);
	run_ms(2 * T2);
	assert_int_equal(f->nrx, n);
	buf_free(&req);
}

/* Non-INVITE in Proceeding: Timer E at T2 (17.1.2.2). */
static void test_non_invite_proceeding_t2(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;

	buf_init(&req, 0);
	t = cli_start(SIP_OPTIONS, 1, &req);
	peer_wait(1, 500);
	peer_reply(0, 100, NULL);
	RUN_UNTIL(f->nresp > 0, 500);
	assert_int_equal(f->resp[0].status, 100);
	assert_int_equal(t->state, TXN_PROCEEDING);
	/* the retransmission that was due goes, and from then on they are T2 apart */
	size_t k = 0;
	while (k < f->nrx && f->rx[k].at_us <= f->resp[0].at_us)
		k++;
	peer_wait(k + 3, 4 * T2 + 300);
	static const unsigned e[] = {T2, T2};
	assert_retransmissions(k, e, 2, "Timer E in Proceeding");
	assert_true(rx_is_request(k, "OPTIONS"));
	buf_free(&req);
}

/* Non-INVITE Completed: a retransmitted final is absorbed; Timer K (T4) ends it. */
static void test_non_invite_completed(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;

	buf_init(&req, 0);
	t = cli_start(SIP_OPTIONS, 1, &req);
	peer_wait(1, 500);
	peer_reply(0, 200, "x");
	RUN_UNTIL(f->nresp > 0, 500);
	assert_int_equal(f->resp[0].status, 200);
	assert_int_equal(t->state, TXN_COMPLETED);
	int64_t completed_at = f->resp[0].at_us;
	uint64_t sent = f->w->stats.tx_msgs;
	peer_reply(0, 200, "x");
	RUN_UNTIL(f->ndispatch >= 2, 500);
	assert_int_equal(f->dispatch_rc[1], 0); /* it was ours */
	assert_int_equal(f->nresp, 1);		/* but absorbed */
	assert_int_equal(f->w->stats.tx_msgs, sent);
	/* Timer K */
	RUN_UNTIL_REAPED(f->ncli_terminated > 0, T4 + 500);
	assert_int_equal(f->ncli_terminated, 1);
	assert_interval(f->cli_terminated_at_us - completed_at, T4, "Timer K");
	assert_int_equal(f->w->stats.tx_msgs, sent); /* no OPTIONS retransmission meanwhile */
	assert_int_equal(f->ntimeout, 0);
	buf_free(&req);
}

/* CANCEL asked for before a provisional waits for one (9.1); its answers go to the CANCEL. */
static void test_cancel_deferred(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;
	long c;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 42, &req);
	peer_wait(1, 500);
	txn_cli_cancel(t, false);
	run_ms(4 * T1);
	assert_int_equal(rx_count_method("CANCEL"), 0);
	assert_null(t->cancel);

	peer_reply(0, 180, "callee");
	RUN_UNTIL(rx_count_method("CANCEL") >= 1, 500);
	assert_int_equal(f->nresp, 1);
	assert_int_equal(f->resp[0].status, 180);
	c = rx_find("CANCEL", 0);
	assert_true(c > 0);
	assert_built_from((size_t)c, &req, "CANCEL", NULL);
	{
		struct sip_msg m;
		parse_rx((size_t)c, &m);
		assert_null(sip_msg_hdr(&m, SIP_H_REASON));
		sip_msg_release(&m);
	}
	assert_non_null(t->cancel);
	assert_ptr_equal(t->cancel->parent, t);
	/* the CANCEL is a non-INVITE transaction of its own: retransmitted until answered */
	RUN_UNTIL(rx_count_method("CANCEL") >= 2, 500);
	assert_true(rx_count_method("CANCEL") >= 2);

	/* its 200 goes to the CANCEL transaction, not to the INVITE's user */
	peer_reply((size_t)c, 200, "callee");
	RUN_UNTIL(t->cancel && t->cancel->state == TXN_COMPLETED, 500);
	assert_non_null(t->cancel);
	assert_int_equal(t->cancel->state, TXN_COMPLETED);
	assert_int_equal(f->nresp, 1);
	assert_int_equal(t->state, TXN_PROCEEDING);
	size_t cancels = rx_count_method("CANCEL");
	run_ms(8 * T1);
	assert_int_equal(rx_count_method("CANCEL"), cancels);

	/* the 487 goes to the INVITE, which ACKs it */
	peer_reply(0, 487, "callee");
	RUN_UNTIL(rx_count_method("ACK") >= 1, 500);
	assert_int_equal(f->nresp, 2);
	assert_int_equal(f->resp[1].status, 487);
	assert_built_from((size_t)rx_find("ACK", 0), &req, "ACK", "callee");
	assert_int_equal(f->ntimeout, 0);
	buf_free(&req);
}

/*
 * A user that gave up an INVITE whose CANCEL waits for a provisional response
 * (a gateway's failover timeout): the transaction stays, without callbacks,
 * so that a late 180 still gets its CANCEL (RFC 3261 9.1); Timer B ends it.
 */
static void test_cancel_deferred_then_abandoned(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;
	size_t invites;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 42, &req);
	peer_wait(1, 500);
	txn_cli_cancel(t, false);
	txn_cli_abandon(t);
	invites = rx_count_method("INVITE");
	run_ms(4 * T1);
	assert_int_equal(rx_count_method("INVITE"), invites); /* no more retransmissions */
	assert_int_equal(rx_count_method("CANCEL"), 0);
	peer_reply(0, 180, "callee");
	RUN_UNTIL(rx_count_method("CANCEL") >= 1, 500);
	assert_int_equal(rx_count_method("CANCEL"), 1);
	assert_int_equal(f->nresp, 0); /* abandoned: its user hears nothing */
	assert_int_equal(f->ntimeout, 0);
	buf_free(&req);
}

/* After a provisional, the CANCEL goes at once; "completed elsewhere" carries the Reason. */
static void test_cancel_after_provisional(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t;
	struct sip_msg m;
	long c;

	buf_init(&req, 0);
	t = cli_start(SIP_INVITE, 5, &req);
	peer_wait(1, 500);
	peer_reply(0, 183, "callee");
	RUN_UNTIL(f->nresp > 0, 500);
	size_t before = f->nrx;
	txn_cli_cancel(t, true);
	assert_true(f->w->stats.tx_msgs >= 2);
	RUN_UNTIL(rx_count_method("CANCEL") >= 1, 200);
	c = rx_find("CANCEL", 0);
	assert_true(c >= (long)before);
	assert_built_from((size_t)c, &req, "CANCEL", NULL);
	parse_rx((size_t)c, &m);
	assert_sv_equal(hdr_value(&m, SIP_H_REASON),
			SV("SIP;cause=200;text=\"Call completed elsewhere\""));
	sip_msg_release(&m);
	/* a second call does not send a second CANCEL */
	txn_cli_cancel(t, false);
	peer_reply((size_t)c, 200, "callee");
	RUN_UNTIL(t->cancel && t->cancel->state == TXN_COMPLETED, 500);
	run_ms(4 * T1);
	assert_int_equal(rx_count_method("CANCEL"), 1);
	buf_free(&req);
}

/* Responses are matched by our branch, its generation and the CSeq method (17.1.3). */
static void test_dispatch_matching(void **state)
{
	struct fx *f = *state;
	struct buf req, b;
	struct txn_cli *t1, *t2;
	char stale[TXN_BRANCH_MAX + 1];
	struct sip_msg m;

	buf_init(&req, 0);
	buf_init(&b, 0);
	t1 = cli_start(SIP_OPTIONS, 1, &req);
	peer_wait(1, 500);
	uint32_t slot = t1->slot;
	memcpy(stale, t1->branch, t1->branch_len);
	stale[t1->branch_len] = '\0';

	/* a CSeq method other than the transaction's does not match it */
	parse_rx(0, &m);
	const struct sip_reply r200 = {.status = 200, .to_tag = SV("x")};
	assert_int_equal(sip_build_reply(&b, &m, &r200), 0);
	sip_msg_release(&m);
	char *p = strstr(b.p, "CSeq: 1 OPTIONS");
	assert_non_null(p);
	memcpy(p, "CSeq: 1 INFO   ", 15);
	peer_send_buf(&b);
	RUN_UNTIL(f->ndispatch >= 1, 500);
	assert_int_equal(f->dispatch_rc[0], ENOENT);
	assert_int_equal(f->nresp, 0);

	/* a foreign branch, and one naming a worker that does not exist */
	const char *foreign[] = {"z9hG4bK-foreign-1", "z9hG4bK0123456789abcdef.5.0.1",
				 "z9hG4bK0123456789abcdef.0.ffffff.1", "1234"};
	for (size_t i = 0; i < 4; i++) {
		buf_reset(&b);
		buf_printf(&b,
			   "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=%s\r\n"
			   "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
			   "Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
			   f->w_port, foreign[i]);
		peer_send_buf(&b);
		RUN_UNTIL(f->ndispatch >= 2 + i, 500);
		assert_int_equal(f->dispatch_rc[1 + i], ENOENT);
	}
	assert_int_equal(f->nresp, 0);

	/* the slot is used again by a new transaction: the old branch no longer matches */
	txn_cli_abandon(t1);
	worker_reap(f->w);
	assert_int_equal(f->ncli_terminated, 0); /* abandoned: no callbacks */
	struct buf req2;
	buf_init(&req2, 0);
	size_t t2_rx = f->nrx;
	t2 = cli_start(SIP_OPTIONS, 2, &req2);
	assert_int_equal(t2->slot, slot);
	assert_false(t2->branch_len == strlen(stale) &&
		     memcmp(t2->branch, stale, t2->branch_len) == 0);
	peer_wait(t2_rx + 1, 500);
	size_t nd = f->ndispatch;
	peer_reply(0, 200, "x"); /* to the first OPTIONS: stale branch */
	RUN_UNTIL(f->ndispatch > nd, 500);
	assert_int_equal(f->dispatch_rc[nd], ENOENT);
	assert_int_equal(f->nresp, 0);
	assert_int_equal(t2->state, TXN_TRYING);
	/* its own response matches */
	peer_reply(t2_rx, 200, "x");
	RUN_UNTIL(f->nresp > 0, 500);
	assert_ptr_equal(f->resp[0].t, t2);
	buf_free(&req);
	buf_free(&req2);
	buf_free(&b);
}

/* A response that arrives on another worker is posted to the owner and handled there. */
/* Replaces t's branch in b (a response built from its request) by alt (same length). */
static void swap_branch(struct buf *b, const struct txn_cli *t, const char *alt)
{
	char *p = memmem(b->p, b->len, t->branch, t->branch_len);

	assert_non_null(p);
	assert_int_equal(strlen(alt), t->branch_len);
	memcpy(p, alt, t->branch_len);
}

/*
 * Our branches carry a MAC (issue 11 hole 5): a response whose branch is ours
 * in form but whose MAC does not verify, or whose slot or generation was
 * changed, is dropped (EACCES) before anything else; a transaction with
 * strict_source takes answers only from where its request went.
 */
static void test_dispatch_forged(void **state)
{
	struct fx *f = *state;
	struct buf req, b;
	struct txn_cli *t;
	char alt[TXN_BRANCH_MAX + 1];
	struct sip_msg m;
	const struct sip_reply r200 = {.status = 200, .to_tag = SV("x")};
	size_t nd;

	buf_init(&req, 0);
	buf_init(&b, 0);
	t = cli_start(SIP_OPTIONS, 1, &req);
	peer_wait(1, 500);
	/* ends in "." and 16 hex digits */
	assert_true(t->branch_len > TXN_MAC_HEX + 1);
	assert_int_equal(t->branch[t->branch_len - TXN_MAC_HEX - 1], '.');

	parse_rx(0, &m);
	assert_int_equal(sip_build_reply(&b, &m, &r200), 0);
	sip_msg_release(&m);

	/* 1. the MAC changed in its last digit */
	memcpy(alt, t->branch, t->branch_len);
	alt[t->branch_len] = '\0';
	alt[t->branch_len - 1] = alt[t->branch_len - 1] == '0' ? '1' : '0';
	swap_branch(&b, t, alt);
	nd = f->ndispatch;
	peer_send_buf(&b);
	RUN_UNTIL(f->ndispatch > nd, 500);
	assert_int_equal(f->dispatch_rc[nd], EACCES);

	/* 2. the generation changed, the MAC kept (a guessed neighbour of a real branch) */
	memcpy(alt, t->branch, t->branch_len);
	char *gen = alt + t->branch_len - TXN_MAC_HEX - 2; /* last digit of the generation */
	*gen = *gen == '1' ? '2' : '1';
	buf_reset(&b);
	parse_rx(0, &m);
	assert_int_equal(sip_build_reply(&b, &m, &r200), 0);
	sip_msg_release(&m);
	swap_branch(&b, t, alt);
	nd = f->ndispatch;
	peer_send_buf(&b);
	RUN_UNTIL(f->ndispatch > nd, 500);
	assert_int_equal(f->dispatch_rc[nd], EACCES);
	/* the old form (no MAC part) is not ours any more */
	buf_reset(&b);
	buf_printf(&b,
		   "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:%u;branch=%.*s\r\n"
		   "From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n"
		   "Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		   f->w_port, (int)(t->branch_len - TXN_MAC_HEX - 1), t->branch);
	nd = f->ndispatch;
	peer_send_buf(&b);
	RUN_UNTIL(f->ndispatch > nd, 500);
	assert_int_equal(f->dispatch_rc[nd], ENOENT);
	assert_int_equal(f->nresp, 0);
	assert_true(f->w->stats.rx_forged >= 2);
	assert_int_equal(t->state, TXN_TRYING);

	/* 3. strict_source: the right branch from another port is dropped */
	t->strict_source = true;
	struct tp_dest real = t->dest;
	tp_addr_set_port(&t->dest.peer, (uint16_t)(g->peer_port + 1));
	nd = f->ndispatch;
	peer_reply(0, 100, NULL);
	RUN_UNTIL(f->ndispatch > nd, 500);
	assert_int_equal(f->dispatch_rc[nd], EACCES);
	assert_int_equal(f->nresp, 0);
	t->dest = real;

	/* 4. the real answer from the real address still matches */
	peer_reply(0, 200, "x");
	RUN_UNTIL(f->nresp > 0, 500);
	assert_ptr_equal(f->resp[0].t, t);
	buf_free(&req);
	buf_free(&b);
}

/* Stateless branches: a MAC over the loop hash and the Via the response goes back to. */
static void test_branch_stateless(void **state)
{
	struct fx *f = *state;
	struct sip_via up, other;
	char br[TXN_STATELESS_BRANCH_LEN];
	uint64_t lh = 0;

	memset(&up, 0, sizeof(up));
	up.branch = SV("z9hG4bK-upstream-1");
	up.host = SV("pc1.Example.com");
	up.port = 5060;
	txn_branch_stateless(f->srv.txns, 0x1122334455667788ULL, &up, br);
	sv_t b = sv_make(br, sizeof(br));
	assert_memory_equal(br, "z9hG4bK1122334455667788.s", 25);
	assert_true(txn_branch_stateless_check(f->srv.txns, b, &up));
	/* loop detection still reads it */
	assert_true(txn_branch_loop_hash(b, &lh));
	assert_true(lh == 0x1122334455667788ULL);
	/* the host is compared as a host: case does not matter */
	other = up;
	other.host = SV("PC1.example.COM");
	assert_true(txn_branch_stateless_check(f->srv.txns, b, &other));
	/* another upstream branch, host or port: not ours */
	other = up;
	other.branch = SV("z9hG4bK-upstream-2");
	assert_false(txn_branch_stateless_check(f->srv.txns, b, &other));
	other = up;
	other.host = SV("198.51.100.7");
	assert_false(txn_branch_stateless_check(f->srv.txns, b, &other));
	other = up;
	other.port = 5061;
	assert_false(txn_branch_stateless_check(f->srv.txns, b, &other));
	/* a changed loop hash or MAC digit, a shorter branch */
	br[7] ^= 1;
	assert_false(txn_branch_stateless_check(f->srv.txns, b, &up));
	br[7] ^= 1;
	br[sizeof(br) - 1] = br[sizeof(br) - 1] == '0' ? '1' : '0';
	assert_false(txn_branch_stateless_check(f->srv.txns, b, &up));
	assert_false(txn_branch_stateless_check(f->srv.txns, sv_make(br, sizeof(br) - 1), &up));
	/* a stateful branch is no stateless one */
	assert_false(txn_branch_stateless_check(
	    f->srv.txns, SV("z9hG4bK0000000000000001.0.1.1.0123456789abcdef"), &up));
}

static void test_dispatch_other_worker(void **state)
{
	struct fx *f = *state;
	struct buf req;
	struct txn_cli *t = NULL;
	struct tp_dest d = peer_dest();

	assert_int_equal(worker_create(&f->srv, 1, &f->w1), 0);
	f->srv.workers[1] = f->w1;
	f->srv.nworkers = 2;
	buf_init(&req, 0);
	assert_int_equal(txn_cli_create(f->w1, SIP_OPTIONS, 7, &cli_ops, f, &t), 0);
	build_request(&req, t, "OPTIONS", 1, NULL); /* its Via names worker 0's port */
	assert_int_equal(txn_cli_send(t, &d, req.p, req.len), 0);
	peer_wait(1, 500);
	peer_reply(0, 200, "x"); /* arrives on worker 0 */
	RUN_UNTIL(f->ndispatch >= 1, 500);
	assert_int_equal(f->dispatch_rc[0], 0);
	assert_int_equal(f->dispatch_worker[0], 0);
	assert_int_equal(f->nresp, 0); /* not run on worker 0 */
	assert_int_equal(f->w->stats.posted, 1);
	for (int i = 0; i < 50 && f->nresp == 0; i++)
		event_base_loop(f->w1->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->nresp, 1);
	assert_int_equal(f->resp[0].worker, 1);
	assert_ptr_equal(f->resp[0].t, t);
	assert_int_equal(f->resp[0].status, 200);
	assert_int_equal(t->state, TXN_COMPLETED);
	buf_free(&req);
}

/* Our branches carry the loop hash; other branches give none. */
static void test_branch_loop_hash(void **state)
{
	struct fx *f = *state;
	struct txn_cli *t = NULL;
	uint64_t lh = 0;

	assert_int_equal(txn_cli_create(f->w, SIP_INVITE, 0xfedcba9876543210ULL, &cli_ops, f, &t),
			 0);
	assert_true(t->branch_len > 7 + TXN_LOOP_HEX);
	assert_memory_equal(t->branch, "z9hG4bKfedcba9876543210.", 24);
	assert_true(txn_branch_loop_hash(sv_make(t->branch, t->branch_len), &lh));
	assert_true(lh == 0xfedcba9876543210ULL);
	assert_true(txn_branch_loop_hash(SV("z9hG4bK0000000000000001.3.a.ff"), &lh));
	assert_true(lh == 1);

	const char *foreign[] = {
	    "z9hG4bK776asdhds",			/* too short */
	    "z9hG4bK0123456789abcdeX.0.1.1",	/* not hex */
	    "z9hG4bK0123456789ABCDEF.0.1.1",	/* upper case: not ours */
	    "z9hg4bk0123456789abcdef.0.1.1",	/* cookie spelt differently: not ours */
	    "xxxxxxx0123456789abcdef.0.1.1",	/* no cookie */
	    "0123456789abcdef0123456789abcdef", /* RFC 2543 */
	    "",
	};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
		lh = 42;
		if (txn_branch_loop_hash(sv_cstr(foreign[i]), &lh))
			fail_msg("'%s' was taken for one of our branches", foreign[i]);
	}
	txn_cli_abandon(t);
}

/*
 * BUG (minor): txn_branch_loop_hash() looks at the 16 characters after the
 * cookie only. A foreign branch made of the cookie and a long lower-case hex
 * string (a common way to make a unique branch, e.g. an MD5 or a UUID
 * without dashes) is taken for one of ours, and its first 16 digits for a
 * loop hash. Ours always have '.' after the 16 digits.
 */
static void test_branch_loop_hash_foreign_hex(void **state)
{
	uint64_t lh = 0;

	(void)state;
	assert_false(txn_branch_loop_hash(SV("z9hG4bK0123456789abcdef0123456789abcdef"), &lh));
	assert_false(txn_branch_loop_hash(SV("z9hG4bK0123456789abcdef"), &lh));
}

/*
 * Server side
 */

/* The peer sends a request (with its own Via) to the worker; returns its index in g->req. */
static size_t peer_request(const char *method, const char *branch, uint32_t cseq,
			   const char *via_extra, const char *to_tag)
{
	struct buf b;
	size_t n = g->nreq;

	buf_init(&b, 0);
	buf_printf(&b,
		   "%s sip:bob@127.0.0.1:%u SIP/2.0\r\n"
		   "Via: SIP/2.0/UDP 127.0.0.1:%u;branch=%s%s\r\n"
		   "Max-Forwards: 70\r\n"
		   "From: <sip:carol@example.com>;tag=carol-tag\r\n"
		   "To: <sip:bob@example.com>%s%s\r\n"
		   "Call-ID: srv-call@test\r\n"
		   "CSeq: %u %s\r\n"
		   "Content-Length: 0\r\n\r\n",
		   method, g->w_port, g->peer_port, branch, via_extra ? via_extra : "",
		   to_tag ? ";tag=" : "", to_tag ? to_tag : "", cseq, method);
	peer_send_buf(&b);
	buf_free(&b);
	req_wait(n + 1, 500);
	return n;
}

/* A response to request i built the way a transaction user builds it. */
static void build_response(struct buf *b, size_t i, unsigned status)
{
	struct sip_msg m;
	struct sip_reply r = {.status = status, .to_tag = SV("bob-tag")};

	parse_req(i, &m);
	buf_reset(b);
	assert_int_equal(sip_build_reply(b, &m, &r), 0);
	sip_msg_release(&m);
}

static void srv_reply(struct txn_srv *t, size_t i, unsigned status)
{
	struct buf b;

	buf_init(&b, 0);
	build_response(&b, i, status);
	txn_srv_reply(t, b.p, b.len, status);
	buf_free(&b);
}

/* Finds the server transaction of request i. */
static struct txn_srv *srv_find(size_t i, bool for_invite)
{
	struct sip_msg m;
	struct txn_key k;
	struct txn_srv *t = NULL;
	unsigned owner = 99;
	int rc;

	parse_req(i, &m);
	assert_int_equal(txn_key_of(g->w, &m, for_invite, &k), 0);
	rc = txn_srv_find(g->w, &k, &owner, &t);
	sip_msg_release(&m);
	if (rc)
		return NULL;
	assert_int_equal(owner, 0);
	return t;
}

static int srv_init(struct txn_srv *t, size_t i)
{
	struct sip_msg m;
	int rc;

	parse_req(i, &m);
	rc = txn_srv_init(g->w, t, &m, &g->req[i].src, &srv_ops, g);
	sip_msg_release(&m);
	return rc;
}

/* The table: init, EEXIST, find (ACK and CANCEL too), 17.2.3 matching. */
static void test_srv_table(void **state)
{
	struct fx *f = *state;
	struct txn_srv dup;

	size_t inv = peer_request("INVITE", "z9hG4bK-peer-1", 1, NULL, NULL);
	assert_int_equal(srv_init(&f->st[0], inv), 0);
	assert_int_equal(f->st[0].state, TXN_PROCEEDING);
	assert_true(f->st[0].invite);
	assert_true(f->st[0].in_table);
	/* the same request again: a retransmission */
	assert_int_equal(srv_init(&dup, inv), EEXIST);
	assert_false(dup.in_table);
	assert_ptr_equal(srv_find(inv, false), &f->st[0]);
	assert_ptr_equal(srv_find(inv, true), &f->st[0]);
	/* a retransmission that really arrived again */
	size_t again = peer_request("INVITE", "z9hG4bK-peer-1", 1, NULL, NULL);
	assert_ptr_equal(srv_find(again, false), &f->st[0]);

	/* the ACK of a non-2xx final (same branch) belongs to the INVITE transaction */
	size_t ack = peer_request("ACK", "z9hG4bK-peer-1", 1, NULL, "bob-tag");
	assert_ptr_equal(srv_find(ack, true), &f->st[0]);
	assert_ptr_equal(srv_find(ack, false), &f->st[0]);
	/* a CANCEL is found as the INVITE it cancels, and is a transaction of its own */
	size_t cancel = peer_request("CANCEL", "z9hG4bK-peer-1", 1, NULL, NULL);
	assert_ptr_equal(srv_find(cancel, true), &f->st[0]);
	assert_null(srv_find(cancel, false));
	assert_int_equal(srv_init(&f->st[1], cancel), 0);
	assert_int_equal(f->st[1].state, TXN_TRYING);
	assert_ptr_equal(srv_find(cancel, false), &f->st[1]);
	assert_ptr_equal(srv_find(cancel, true), &f->st[0]);

	/* another branch, or the same branch from another sent-by, is another transaction */
	size_t other = peer_request("INVITE", "z9hG4bK-peer-2", 1, NULL, NULL);
	assert_null(srv_find(other, false));
	{
		struct buf b;
		size_t n = f->nreq;
		buf_init(&b, 0);
		buf_printf(
		    &b,
		    "INVITE sip:bob@127.0.0.1:%u SIP/2.0\r\n"
		    "Via: SIP/2.0/UDP 192.0.2.55:%u;branch=z9hG4bK-peer-1\r\n"
		    "From: <sip:carol@example.com>;tag=carol-tag\r\nTo: <sip:bob@example.com>\r\n"
		    "Call-ID: srv-call@test\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
		    "Content-Length: 0\r\n\r\n",
		    f->w_port, f->peer_port); /* same port, another host */
		peer_send_buf(&b);
		buf_free(&b);
		req_wait(n + 1, 500);
		assert_null(srv_find(n, false));
	}

	/* RFC 2543 requests (no magic cookie) are matched on Call-ID, From tag, CSeq and Via */
	size_t old1 = peer_request("OPTIONS", "1", 5, NULL, NULL);
	assert_int_equal(srv_init(&f->st[2], old1), 0);
	assert_false(f->st[2].key.rfc3261);
	size_t old2 = peer_request("OPTIONS", "1", 5, NULL, NULL);
	assert_ptr_equal(srv_find(old2, false), &f->st[2]);
	assert_int_equal(srv_init(&dup, old2), EEXIST);
	size_t old3 = peer_request("OPTIONS", "1", 6, NULL, NULL);
	assert_null(srv_find(old3, false));

	/* cleanup leaves the table, without callbacks */
	txn_srv_cleanup(&f->st[0]);
	assert_null(srv_find(inv, false));
	assert_ptr_equal(srv_find(cancel, false), &f->st[1]);
	txn_srv_cleanup(&f->st[1]);
	txn_srv_cleanup(&f->st[2]);
	assert_null(srv_find(old1, false));
	assert_int_equal(f->nsrv_terminated, 0);
	assert_int_equal(f->nsrv_failed, 0);
}

/* INVITE, non-2xx final: Timer G (T1 doubling up to T2) until the ACK, then Timer I (T4). */
static void test_srv_invite_non2xx(void **state)
{
	struct fx *f = *state;
	struct txn_srv *t = &f->st[0];
	static const unsigned gtimes[] = {T1, 2 * T1, 4 * T1, T2, T2};

	size_t inv = peer_request("INVITE", "z9hG4bK-srv-g", 1, NULL, NULL);
	assert_int_equal(srv_init(t, inv), 0);
	/* a provisional, repeated for a retransmission of the request */
	srv_reply(t, inv, 100);
	peer_wait(1, 500);
	assert_true(rx_is_status(0, 100));
	size_t again = peer_request("INVITE", "z9hG4bK-srv-g", 1, NULL, NULL);
	txn_srv_retransmission(srv_find(again, false));
	peer_wait(2, 500);
	assert_true(rx_is_status(1, 100));
	assert_int_equal(t->state, TXN_PROCEEDING);

	srv_reply(t, inv, 486);
	assert_int_equal(t->state, TXN_COMPLETED);
	peer_wait(3 + 5, 8 * T1 + 2 * T2 + 500);
	assert_true(rx_is_status(2, 486));
	assert_retransmissions(2, gtimes, 5, "Timer G");
	/* a later final from the user is not sent */
	uint64_t sent = f->w->stats.tx_msgs;
	srv_reply(t, inv, 500);
	assert_int_equal(f->w->stats.tx_msgs, sent);

	/* the ACK: found through the INVITE's key, stops Timer G */
	size_t ack = peer_request("ACK", "z9hG4bK-srv-g", 1, NULL, "bob-tag");
	assert_ptr_equal(srv_find(ack, true), t);
	txn_srv_ack(t);
	assert_int_equal(t->state, TXN_CONFIRMED);
	int64_t acked = elapsed_us();
	size_t n486 = rx_count_status(486);
	/* Confirmed absorbs ACK retransmissions */
	txn_srv_ack(t);
	assert_int_equal(t->state, TXN_CONFIRMED);
	/* Timer I (T4) ends it */
	RUN_UNTIL(t->state == TXN_TERMINATED, T4 + 500);
	assert_int_equal(t->state, TXN_TERMINATED);
	assert_interval(elapsed_us() - acked, T4, "Timer I");
	assert_int_equal(rx_count_status(486), n486);
	assert_null(srv_find(inv, false));
	assert_false(t->in_table);
	assert_int_equal(f->nsrv_failed, 0);
	/* ops->terminated runs outside the timer callback: at the worker's next reap */
	worker_reap(f->w);
	assert_int_equal(f->nsrv_terminated, 1);
	run_ms(2 * T2);
	assert_int_equal(rx_count_status(486), n486);
}

/* INVITE, non-2xx final and no ACK: Timer H (64*T1) reports the failure. */
static void test_srv_invite_timer_h(void **state)
{
	struct fx *f = *state;
	struct txn_srv *t = &f->st[0];

	size_t inv = peer_request("INVITE", "z9hG4bK-srv-h", 1, NULL, NULL);
	assert_int_equal(srv_init(t, inv), 0);
	int64_t start = elapsed_us();
	srv_reply(t, inv, 603);
	RUN_UNTIL(f->nsrv_failed > 0, 64 * T1 + 1000);
	assert_int_equal(f->nsrv_failed, 1);
	assert_interval(f->srv_failed_at_us - start, 64 * T1, "Timer H");
	assert_int_equal(t->state, TXN_TERMINATED);
	assert_null(srv_find(inv, false));
	/* 0, 20, 60, 140, 300, then every 160 ms up to 1280 */
	size_t n = rx_count_status(603);
	assert_true(n >= 10 && n <= 12);
	run_ms(2 * T2);
	assert_int_equal(rx_count_status(603), n);
	worker_reap(f->w);
	assert_int_equal(f->nsrv_terminated, 1);
	assert_int_equal(f->nsrv_failed, 1);
}

/* INVITE, 2xx: Accepted; request retransmissions absorbed, 2xx from the user passed; Timer L. */
static void test_srv_invite_2xx_accepted(void **state)
{
	struct fx *f = *state;
	struct txn_srv *t = &f->st[0];

	size_t inv = peer_request("INVITE", "z9hG4bK-srv-2xx", 1, NULL, NULL);
	assert_int_equal(srv_init(t, inv), 0);
	srv_reply(t, inv, 180);
	srv_reply(t, inv, 200);
	int64_t accepted = elapsed_us();
	assert_int_equal(t->state, TXN_ACCEPTED);
	peer_wait(2, 500);
	assert_true(rx_is_status(0, 180));
	assert_true(rx_is_status(1, 200));

	/* a retransmitted INVITE is absorbed: no 180, no 200 from the transaction */
	uint64_t sent = f->w->stats.tx_msgs;
	size_t again = peer_request("INVITE", "z9hG4bK-srv-2xx", 1, NULL, NULL);
	assert_ptr_equal(srv_find(again, false), t);
	txn_srv_retransmission(t);
	run_ms(4 * T1);
	assert_int_equal(f->w->stats.tx_msgs, sent);
	assert_int_equal(f->nrx, 2);
	/* no Timer G for a 2xx */
	run_ms(4 * T1);
	assert_int_equal(f->nrx, 2);
	/* a provisional now is dropped; the user's 2xx retransmission goes out */
	srv_reply(t, inv, 183);
	srv_reply(t, inv, 200);
	peer_wait(3, 500);
	assert_true(rx_is_status(2, 200));
	run_ms(T1);
	assert_int_equal(f->nrx, 3);
	/* the ACK of a 2xx has its own branch: not this transaction's */
	size_t ack = peer_request("ACK", "z9hG4bK-srv-2xx-ack", 1, NULL, "bob-tag");
	assert_null(srv_find(ack, true));

	/* Timer L (64*T1) */
	RUN_UNTIL(t->state == TXN_TERMINATED, 64 * T1 + 1000);
	assert_int_equal(t->state, TXN_TERMINATED);
	assert_interval(elapsed_us() - accepted, 64 * T1, "Timer L");
	assert_null(srv_find(inv, false));
	assert_int_equal(f->nsrv_failed, 0);
	worker_reap(f->w);
	assert_int_equal(f->nsrv_terminated, 1);
}

/* Non-INVITE: Trying absorbs, the last response is repeated, Timer J (64*T1). */
static void test_srv_non_invite(void **state)
{
	struct fx *f = *state;
	struct txn_srv *t = &f->st[0];
	struct sip_msg m;

	size_t req = peer_request("OPTIONS", "z9hG4bK-srv-opt", 3, NULL, NULL);
	assert_int_equal(srv_init(t, req), 0);
	assert_int_equal(t->state, TXN_TRYING);
	/* Trying: a retransmission is absorbed */
	size_t again = peer_request("OPTIONS", "z9hG4bK-srv-opt", 3, NULL, NULL);
	assert_ptr_equal(srv_find(again, false), t);
	txn_srv_retransmission(t);
	run_ms(2 * T1);
	assert_int_equal(f->nrx, 0);
	/* Proceeding: the provisional is repeated */
	srv_reply(t, req, 100);
	assert_int_equal(t->state, TXN_PROCEEDING);
	peer_wait(1, 500);
	txn_srv_retransmission(t);
	peer_wait(2, 500);
	assert_true(rx_is_status(1, 100));
	/* Completed: the final is repeated, for each retransmission only */
	srv_reply(t, req, 200);
	int64_t completed = elapsed_us();
	assert_int_equal(t->state, TXN_COMPLETED);
	peer_wait(3, 500);
	assert_true(rx_is_status(2, 200));
	run_ms(8 * T1); /* no Timer G for non-INVITE */
	assert_int_equal(f->nrx, 3);
	txn_srv_retransmission(t);
	peer_wait(4, 500);
	assert_int_equal(f->rx[3].len, f->rx[2].len);
	assert_memory_equal(f->rx[3].data, f->rx[2].data, f->rx[2].len);
	parse_rx(3, &m);
	assert_int_equal(m.status, 200);
	assert_int_equal(sip_msg_cseq(&m)->num, 3);
	sip_msg_release(&m);

	/* Timer J */
	RUN_UNTIL(t->state == TXN_TERMINATED, 64 * T1 + 1000);
	assert_int_equal(t->state, TXN_TERMINATED);
	assert_interval(elapsed_us() - completed, 64 * T1, "Timer J");
	assert_null(srv_find(req, false));
	worker_reap(f->w);
	assert_int_equal(f->nsrv_terminated, 1);
	assert_int_equal(f->nsrv_failed, 0);
	/* now the same request would start a new transaction */
	size_t late = peer_request("OPTIONS", "z9hG4bK-srv-opt", 3, NULL, NULL);
	assert_null(srv_find(late, false));
}

/* Where responses go (18.2.2, RFC 3581): the Via port, or the source port with rport. */
static void test_srv_reply_destination(void **state)
{
	struct fx *f = *state;

	/* rport: the source port wins over the (wrong) sent-by port */
	{
		struct buf b;
		size_t n = f->nreq;
		buf_init(&b, 0);
		buf_printf(&b,
			   "OPTIONS sip:bob@127.0.0.1:%u SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-rport;rport\r\n"
			   "From: <sip:carol@example.com>;tag=c\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: rport@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
			   "Content-Length: 0\r\n\r\n",
			   f->w_port);
		peer_send_buf(&b);
		buf_free(&b);
		req_wait(n + 1, 500);
		assert_int_equal(srv_init(&f->st[0], n), 0);
		assert_int_equal(tp_addr_port(&f->st[0].reply_to.peer), f->peer_port);
		srv_reply(&f->st[0], n, 200);
		peer_wait(1, 500);
		assert_true(rx_is_status(0, 200));
	}
	/* no rport: the sent-by port */
	{
		size_t n = peer_request("OPTIONS", "z9hG4bK-norport", 1, NULL, NULL);
		assert_int_equal(srv_init(&f->st[1], n), 0);
		assert_int_equal(tp_addr_port(&f->st[1].reply_to.peer), f->peer_port);
		srv_reply(&f->st[1], n, 200);
		peer_wait(2, 500);
	}
	/* no rport, a sent-by port other than the source port: the sent-by port */
	{
		size_t n = f->nreq;
		struct buf b;
		buf_init(&b, 0);
		buf_printf(&b,
			   "OPTIONS sip:bob@127.0.0.1:%u SIP/2.0\r\n"
			   "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-sentby\r\n"
			   "From: <sip:carol@example.com>;tag=c\r\nTo: <sip:bob@example.com>\r\n"
			   "Call-ID: sentby@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
			   "Content-Length: 0\r\n\r\n",
			   f->w_port);
		peer_send_buf(&b);
		buf_free(&b);
		req_wait(n + 1, 500);
		assert_int_equal(srv_init(&f->st[2], n), 0);
		assert_int_equal(tp_addr_port(&f->st[2].reply_to.peer), 5999);
		assert_true(tp_addr_ip_is(&f->st[2].reply_to.peer, SV("127.0.0.1")));
	}
	txn_srv_cleanup(&f->st[0]);
	txn_srv_cleanup(&f->st[1]);
	txn_srv_cleanup(&f->st[2]);
}

/* At shut-down the worker hands its live server transactions to their users. */
static void test_srv_release_at_shutdown(void **state)
{
	struct fx *f = *state;

	size_t inv = peer_request("INVITE", "z9hG4bK-srv-fini", 1, NULL, NULL);
	assert_int_equal(srv_init(&f->st[0], inv), 0);
	srv_reply(&f->st[0], inv, 486);
	assert_int_equal(f->nsrv_terminated, 0);
	txn_worker_fini(f->w); /* what worker_destroy does first */
	assert_int_equal(f->nsrv_terminated, 1);
	assert_false(f->st[0].in_table);
	/* worker_destroy (teardown) calls txn_worker_fini again: harmless */
	assert_int_equal(txn_worker_init(f->w), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_invite_timer_a_and_b, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invite_provisional_stops_retransmissions, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_invite_proceeding_no_timer_b, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invite_non2xx_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invite_2xx_accepted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cli_keeps_only_what_it_needs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_invite_timer_e_and_f, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_invite_proceeding_t2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_invite_completed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_deferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_deferred_then_abandoned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_after_provisional, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dispatch_matching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dispatch_forged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_branch_stateless, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dispatch_other_worker, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_branch_loop_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_branch_loop_hash_foreign_hex, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_invite_non2xx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_invite_timer_h, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_invite_2xx_accepted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_non_invite, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_reply_destination, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_srv_release_at_shutdown, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
