/*
 * test_relay.c - the RTP relay (src/media/relay.c): the port pool (O(1),
 * exhaustion is an error, a released pair rests in quarantine), the
 * latching state machine (a third party's packets are never accepted,
 * during the window or after), RFC 3550 loss and jitter against known
 * sequences, and a real forward over loopback UDP: two fake phones on
 * 127.0.0.1 sockets talk through the relay both ways while a third party
 * on 127.0.0.3 tries to inject, and every payload byte arrives intact.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "media/media.h"

/* ------------------------------------------------------------ pool */

static void test_pool(void **state)
{
	struct rtp_pool p;
	uint16_t port, got[5];

	(void)state;
	assert_int_equal(rtp_pool_init(&p, 40001, 40011, 10000), 0); /* 40002..40011: 5 pairs */
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(rtp_pool_get(&p, 0, &got[i]), 0);
		assert_int_equal(got[i] % 2, 0);
		assert_true(got[i] >= 40002 && got[i] <= 40010);
		for (unsigned j = 0; j < i; j++)
			assert_int_not_equal(got[i], got[j]);
	}
	/* exhaustion is an error, and counted */
	assert_int_equal(rtp_pool_get(&p, 0, &port), ENOSPC);
	assert_int_equal(p.exhausted, 1);
	/* releasing: bad ports and double releases are refused */
	assert_int_equal(rtp_pool_put(&p, 40003, 1000), EINVAL);
	assert_int_equal(rtp_pool_put(&p, 50000, 1000), EINVAL);
	assert_int_equal(rtp_pool_put(&p, got[2], 1000), 0);
	assert_int_equal(rtp_pool_put(&p, got[2], 1000), EINVAL);
	assert_int_equal(rtp_pool_put(&p, got[4], 2000), 0);
	/* quarantine: nothing before 10 s have passed, then the oldest release first */
	assert_int_equal(rtp_pool_get(&p, 1000, &port), EAGAIN);
	assert_int_equal(rtp_pool_get(&p, 10999, &port), EAGAIN);
	assert_int_equal(p.quarantined, 2);
	assert_int_equal(rtp_pool_get(&p, 11000, &port), 0);
	assert_int_equal(port, got[2]);
	assert_int_equal(rtp_pool_get(&p, 11500, &port), EAGAIN); /* got[4] rests until 12000 */
	assert_int_equal(rtp_pool_get(&p, 12000, &port), 0);
	assert_int_equal(port, got[4]);
	assert_int_equal(rtp_pool_get(&p, 99999, &port), ENOSPC);
	rtp_pool_free(&p);

	/* per-worker sub-ranges never overlap and stay even-aligned */
	uint16_t lo[4], hi[4];
	for (unsigned w = 0; w < 4; w++) {
		assert_int_equal(rtp_pool_subrange(30000, 39999, 4, w, &lo[w], &hi[w]), 0);
		assert_int_equal(lo[w] % 2, 0);
		assert_int_equal(hi[w] % 2, 1);
		if (w)
			assert_true(lo[w] > hi[w - 1]);
	}
	assert_true(hi[3] <= 39999);
	assert_int_equal(rtp_pool_subrange(30000, 30003, 4, 0, &lo[0], &hi[0]), EINVAL);
	assert_int_equal(rtp_pool_subrange(30000, 39999, 4, 4, &lo[0], &hi[0]), EINVAL);
}

/* ------------------------------------------------------------ latching */

static struct sockaddr_storage sa(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sdp_ip a;

	assert_int_equal(sdp_ip_parse(sv_cstr(ip), &a), 0);
	sdp_ip_to_sockaddr(&a, port, &ss);
	return ss;
}

static void test_latch_nat(void **state)
{
	struct rtp_latch l;
	struct sockaddr_storage signalled = sa("192.168.1.10", 4000);
	struct sockaddr_storage phone = sa("81.2.3.4", 61000), other_port = sa("81.2.3.4", 61002);
	struct sockaddr_storage attacker = sa("66.1.1.1", 4000),
				attacker2 = sa("192.168.1.10", 4002);
	struct sdp_ip nat;

	(void)state;
	memset(&l, 0, sizeof(l));
	/* no SDP yet: nothing enters */
	assert_int_equal(rtp_latch_check(&l, &phone, 0), RTP_DROP_IDLE);
	assert_null(rtp_latch_dest(&l));

	sdp_ip_parse(SV("81.2.3.4"), &nat);
	rtp_latch_signal(&l, &signalled, &nat, 1000, 5000);
	assert_int_equal(l.state, RTP_LATCH_OPEN);
	/* a private SDP address behind a public signalling source: wait for the phone */
	assert_null(rtp_latch_dest(&l));
	/* a third party during the window */
	assert_int_equal(rtp_latch_check(&l, &attacker, 1001), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &attacker2, 1002), RTP_DROP_FOREIGN);
	assert_int_equal(l.state, RTP_LATCH_OPEN);
	/* the phone through its NAT latches */
	assert_int_equal(rtp_latch_check(&l, &phone, 1100), RTP_ACCEPT_LATCHED);
	assert_int_equal(l.state, RTP_LATCH_LOCKED);
	assert_memory_equal(rtp_latch_dest(&l), &phone, sizeof(phone));
	/* strict afterwards: the same NAT's other port, the attacker, even inside the window */
	assert_int_equal(rtp_latch_check(&l, &other_port, 1200), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &attacker, 1300), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &attacker, 99000), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &phone, 99000), RTP_ACCEPT);

	/* a re-INVITE reopens the window: the old source still flows, a new one may latch */
	rtp_latch_signal(&l, &signalled, &nat, 100000, 5000);
	assert_int_equal(rtp_latch_check(&l, &phone, 100001), RTP_ACCEPT);
	assert_int_equal(rtp_latch_check(&l, &attacker, 100002), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &other_port, 100003), RTP_ACCEPT_LATCHED);
	assert_int_equal(rtp_latch_check(&l, &phone, 100004), RTP_DROP_FOREIGN);
	assert_memory_equal(rtp_latch_dest(&l), &other_port, sizeof(other_port));
}

static void test_latch_window_ends(void **state)
{
	struct rtp_latch l;
	struct sockaddr_storage signalled = sa("81.2.3.4", 5000), attacker = sa("66.1.1.1", 5000);

	(void)state;
	memset(&l, 0, sizeof(l));
	rtp_latch_signal(&l, &signalled, NULL, 0, 5000);
	/* a public SDP address is sent to at once */
	assert_memory_equal(rtp_latch_dest(&l), &signalled, sizeof(signalled));
	assert_int_equal(rtp_latch_check(&l, &attacker, 10), RTP_DROP_FOREIGN);
	/* the window ends with nothing learned: locked to the signalled address */
	assert_int_equal(rtp_latch_check(&l, &attacker, 5000), RTP_DROP_FOREIGN);
	assert_int_equal(l.state, RTP_LATCH_LOCKED);
	assert_int_equal(rtp_latch_check(&l, &signalled, 6000), RTP_ACCEPT);
	/* hold (c=0.0.0.0): nothing signalled, nothing to send to until a source latches */
	memset(&l, 0, sizeof(l));
	rtp_latch_signal(&l, NULL, NULL, 0, 5000);
	assert_null(rtp_latch_dest(&l));
	assert_int_equal(rtp_latch_check(&l, &attacker, 10), RTP_DROP_FOREIGN);
	assert_int_equal(rtp_latch_check(&l, &attacker, 6000), RTP_DROP_FOREIGN);
}

/* ------------------------------------------------------------ statistics */

static void rtp_hdr(uint8_t *p, unsigned pt, uint16_t seq, uint32_t ts, uint32_t ssrc)
{
	p[0] = 0x80;
	p[1] = (uint8_t)pt;
	p[2] = (uint8_t)(seq >> 8);
	p[3] = (uint8_t)seq;
	p[4] = (uint8_t)(ts >> 24);
	p[5] = (uint8_t)(ts >> 16);
	p[6] = (uint8_t)(ts >> 8);
	p[7] = (uint8_t)ts;
	p[8] = (uint8_t)(ssrc >> 24);
	p[9] = (uint8_t)(ssrc >> 16);
	p[10] = (uint8_t)(ssrc >> 8);
	p[11] = (uint8_t)ssrc;
}

static void feed(struct rtp_rx_stats *st, uint16_t seq, uint32_t ts, uint32_t ssrc, uint64_t ns)
{
	uint8_t pkt[172];

	memset(pkt, 0xd5, sizeof(pkt));
	rtp_hdr(pkt, 0, seq, ts, ssrc);
	rtp_stats_update(st, pkt, sizeof(pkt), ns);
}

static void test_stats_loss(void **state)
{
	struct rtp_rx_stats st;

	(void)state;
	/* 1..100 with 10 missing (never the first two, which are the probation) */
	memset(&st, 0, sizeof(st));
	for (unsigned s = 1; s <= 100; s++)
		if (s < 3 || s % 10 != 5)
			feed(&st, (uint16_t)s, s * 160, 1, 0);
	assert_int_equal(st.packets, 90);
	assert_int_equal(rtp_stats_lost(&st), 10);

	/* across the 16-bit wrap: 65500 .. 65535, 0 .. 99, five missing around the wrap */
	memset(&st, 0, sizeof(st));
	for (unsigned k = 0; k < 136; k++) {
		uint16_t seq = (uint16_t)(65500 + k);
		if (seq == 65533 || seq == 65534 || seq == 65535 || seq == 0 || seq == 7)
			continue;
		feed(&st, seq, k * 160, 2, 0);
	}
	assert_int_equal(rtp_stats_lost(&st), 5);
	assert_int_equal(st.cycles, 65536);

	/* duplicates and late packets are not loss */
	memset(&st, 0, sizeof(st));
	for (unsigned s = 1; s <= 50; s++)
		feed(&st, (uint16_t)s, s * 160, 3, 0);
	feed(&st, 40, 40 * 160, 3, 0);
	feed(&st, 49, 49 * 160, 3, 0);
	assert_int_equal(rtp_stats_lost(&st), 0);
	assert_int_equal(st.dup_or_late, 2);

	/* a new SSRC (the phone restarted its stream): the old loss stays counted */
	memset(&st, 0, sizeof(st));
	for (unsigned s = 1; s <= 20; s++)
		if (s != 10)
			feed(&st, (uint16_t)s, s * 160, 4, 0);
	for (unsigned s = 1000; s <= 1020; s++)
		if (s != 1010 && s != 1011)
			feed(&st, (uint16_t)s, s * 160, 5, 0);
	assert_int_equal(rtp_stats_lost(&st), 3);

	/* a sequence jump is believed only once the next packet confirms it */
	memset(&st, 0, sizeof(st));
	for (unsigned s = 1; s <= 10; s++)
		feed(&st, (uint16_t)s, s * 160, 6, 0);
	feed(&st, 30000, 0, 6, 0); /* a stray: ignored */
	feed(&st, 11, 11 * 160, 6, 0);
	assert_int_equal(rtp_stats_lost(&st), 0);
}

static void test_stats_jitter(void **state)
{
	struct rtp_rx_stats st;
	double ref = 0;
	int64_t prev_transit = 0;
	const uint64_t t0 = 5000000000ull;
	/* arrival offsets (ms) from the 20 ms grid */
	static const int delay_ms[] = {0, 0, 3, 1, 9, 0, 0, 4, 12, 2, 0, 0, 5, 1, 0,
				       7, 0, 3, 0, 0, 6, 2, 0, 0,  1, 8, 0, 2, 0, 4};

	(void)state;
	/* a perfectly paced stream has no jitter */
	memset(&st, 0, sizeof(st));
	st.clock = 8000;
	for (unsigned s = 0; s < 100; s++)
		feed(&st, (uint16_t)s, 1234 + s * 160, 7, t0 + s * 20000000ull);
	assert_int_equal(st.jitter_q4, 0);
	assert_int_equal(rtp_stats_jitter_us(&st), 0);

	/* against the RFC 3550 6.4.1 formula in floating point */
	memset(&st, 0, sizeof(st));
	st.clock = 8000;
	for (unsigned s = 0; s < sizeof(delay_ms) / sizeof(delay_ms[0]); s++) {
		uint64_t arrival_ns = t0 + s * 20000000ull + (uint64_t)delay_ms[s] * 1000000ull;
		uint32_t ts = 1234 + s * 160;
		int64_t transit = (int64_t)(arrival_ns / 1000 * 8000 / 1000000) - ts;
		feed(&st, (uint16_t)s, ts, 8, arrival_ns);
		if (s)
			ref += (fabs((double)(transit - prev_transit)) - ref) / 16;
		prev_transit = transit;
	}
	/* J in timestamp units: the integer form of A.8 stays within one unit */
	assert_true(fabs(st.jitter_q4 / 16.0 - ref) < 1.0);
	assert_true(ref > 10);
	/* and in microseconds at 8 kHz (125 us per unit) */
	assert_true(fabs(rtp_stats_jitter_us(&st) - ref * 125) < 250);
	/* the payload types seen */
	assert_true(st.pt_seen[0] & 1);
}

static void test_rtcp_demux(void **state)
{
	uint8_t sr[8] = {0x80, 200, 0, 6}, rtp[12] = {0x80, 0, 0, 1}, rtp_m[12] = {0x80, 0x80 | 8};

	(void)state;
	assert_true(rtp_is_rtcp(sr, sizeof(sr)));
	assert_false(rtp_is_rtcp(rtp, sizeof(rtp)));
	assert_false(rtp_is_rtcp(rtp_m, sizeof(rtp_m))); /* marker bit with PCMA: 136 */
	sr[1] = 203;					 /* BYE */
	assert_true(rtp_is_rtcp(sr, sizeof(sr)));
}

/* ------------------------------------------------------------ loopback */

struct clock {
	uint64_t ms;
};

static uint64_t test_now(void *arg)
{
	return ((struct clock *)arg)->ms;
}

static int udp_sock(const char *ip, uint16_t port, uint16_t *bound)
{
	struct sockaddr_storage ss = sa(ip, port);
	socklen_t len = sizeof(struct sockaddr_in);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void send_to(int fd, uint16_t port, const void *p, size_t len)
{
	struct sockaddr_storage ss = sa("127.0.0.1", port);
	assert_int_equal(sendto(fd, p, len, 0, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)),
			 (ssize_t)len);
}

struct phone {
	int fd, rtcp_fd;
	uint16_t port, rtcp_port;
	unsigned got; /* RTP packets received with the expected payload */
	unsigned bad; /* received with a payload that is not the expected one */
	unsigned rtcp_got;
	uint8_t expect_from; /* the first payload byte the far phone writes */
};

static void drain(struct phone *p)
{
	uint8_t buf[2048];
	ssize_t n;

	while ((n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (n >= 12 && rtp_is_rtcp(buf, (size_t)n)) {
			p->rtcp_got++;
			continue;
		}
		/* payload: 160 bytes, each (from + seq + i) */
		bool ok = n == 172;
		uint16_t seq = (uint16_t)(buf[2] << 8 | buf[3]);
		for (unsigned i = 0; ok && i < 160; i++)
			ok = buf[12 + i] == (uint8_t)(p->expect_from + seq + i);
		if (ok)
			p->got++;
		else
			p->bad++;
	}
	if (p->rtcp_fd >= 0)
		while ((n = recv(p->rtcp_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			p->rtcp_got++;
}

static void pump(struct event_base *base, struct phone *a, struct phone *b, unsigned *cond,
		 unsigned want)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		drain(a);
		drain(b);
		if (*cond >= want)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 3000)
			break;
		usleep(500);
	}
	fail_msg("timed out waiting: %u of %u", *cond, want);
}

/* Runs the loop until the relay has dropped `want` datagrams in all: the injected ones were
 * handled. */
static void pump_drops(struct event_base *base, struct rtp_engine *e, struct phone *a,
		       struct phone *b, unsigned want)
{
	struct rtp_engine_stats es;
	unsigned dropped = 0;

	for (unsigned i = 0; i < 6000 && dropped < want; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		rtp_engine_stats(e, &es);
		dropped = (unsigned)es.dropped;
		if (dropped < want)
			usleep(500);
	}
	assert_int_equal(dropped, want);
	/* whatever was forwarded with them is in the phones' buffers by now (loopback) */
	drain(a);
	drain(b);
}

static void talk(int fd, uint16_t to, uint8_t from_byte, uint16_t seq0, unsigned n)
{
	uint8_t pkt[172];

	for (unsigned k = 0; k < n; k++) {
		uint16_t seq = (uint16_t)(seq0 + k);
		rtp_hdr(pkt, 8, seq, seq * 160u, from_byte);
		for (unsigned i = 0; i < 160; i++)
			pkt[12 + i] = (uint8_t)(from_byte + seq + i);
		send_to(fd, to, pkt, sizeof(pkt));
	}
}

static void test_loopback_forward(void **state)
{
	struct clock clk = {.ms = 1000};
	uint16_t base_port = (uint16_t)(42000 + (getpid() % 500) * 32);
	struct rtp_config cfg = {
	    .port_lo = base_port,
	    .port_hi = (uint16_t)(base_port + 31),
	    .quarantine_ms = 10000,
	    .latch_window_ms = 5000,
	    .bind_v4 = "127.0.0.1",
	    .now_ms = test_now,
	    .now_arg = &clk,
	};
	struct event_base *base = event_base_new();
	struct rtp_engine *e;
	struct rtp_session *s;
	struct phone a = {.rtcp_fd = -1, .expect_from = 0xb0}, b = {.expect_from = 0xa0};
	uint16_t att_port, a_alt_port;
	int att, a_alt;
	struct sdp_session *sdp = calloc(1, sizeof(*sdp));
	struct sdp_rewrite rw;
	struct sdp_error err;
	struct rtp_dir_stats st;
	char body[512];
	struct sockaddr_storage sig_a = sa("127.0.0.1", 5061), sig_b = sa("127.0.0.1", 5062);

	(void)state;
	assert_non_null(base);
	assert_int_equal(rtp_engine_new(base, &cfg, &e), 0);
	a.fd = udp_sock("127.0.0.1", 0, &a.port);
	b.fd = udp_sock("127.0.0.1", 0, &b.port);
	b.rtcp_fd = udp_sock("127.0.0.1", 0, &b.rtcp_port);
	att = udp_sock("127.0.0.3", 0, &att_port);
	a_alt = udp_sock("127.0.0.1", 0, &a_alt_port);
	assert_true(a.fd >= 0 && b.fd >= 0 && b.rtcp_fd >= 0 && att >= 0 && a_alt >= 0);

	/* the caller's offer */
	assert_int_equal(rtp_session_new(e, &s), 0);
	snprintf(body, sizeof(body),
		 "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio %u RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n",
		 a.port);
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLER, sdp, (struct sockaddr *)&sig_a, &rw), 0);
	assert_int_equal(rw.nmedia, 1);
	uint16_t to_b_side = rw.media[0].port; /* B sends here */
	assert_true(to_b_side >= cfg.port_lo && to_b_side <= cfg.port_hi && to_b_side % 2 == 0);
	assert_int_equal(rw.media[0].rtcp_port, to_b_side + 1);
	/* what B is offered names the relay */
	struct buf out;
	buf_init(&out, 0);
	assert_int_equal(sdp_rewrite(sdp, &rw, &out, &err), 0);
	char want[64];
	snprintf(want, sizeof(want), "m=audio %u RTP/AVP 8 0", to_b_side);
	assert_non_null(strstr(buf_cstr(&out), want));
	assert_non_null(strstr(buf_cstr(&out), "c=IN IP4 127.0.0.1"));
	buf_free(&out);
	/* the callee is not known yet: A's early packets have nowhere to go */
	assert_int_equal(rtp_session_latch(s, 0, RTP_CALLEE), RTP_LATCH_IDLE);

	/* the callee's answer, with its RTCP elsewhere (RFC 3605) */
	snprintf(body, sizeof(body),
		 "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio %u RTP/AVP 8\r\na=rtcp:%u\r\na=rtpmap:8 PCMA/8000\r\n",
		 b.port, b.rtcp_port);
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLEE, sdp, (struct sockaddr *)&sig_b, &rw), 0);
	uint16_t to_a_side = rw.media[0].port; /* A sends here */
	assert_int_not_equal(to_a_side, to_b_side);

	/* a third party injects during the window, into both sides: dropped, counted */
	talk(att, to_a_side, 0xee, 500, 5);
	talk(att, to_b_side, 0xee, 600, 5);
	clk.ms = 1100;
	pump_drops(base, e, &a, &b, 10);
	assert_int_equal(rtp_session_stats(s, 0, RTP_CALLER, &st), 0);
	assert_int_equal(st.drop_foreign, 5);
	assert_int_equal(rtp_session_stats(s, 0, RTP_CALLEE, &st), 0);
	assert_int_equal(st.drop_foreign, 5);
	assert_int_equal(a.got + a.bad + b.got + b.bad, 0);

	/* A talks: B hears every byte; A's leg latched */
	talk(a.fd, to_a_side, 0xa0, 1, 50);
	pump(base, &a, &b, &b.got, 50);
	assert_int_equal(b.bad, 0);
	assert_int_equal(rtp_session_latch(s, 0, RTP_CALLER), RTP_LATCH_LOCKED);
	/* B talks back */
	talk(b.fd, to_b_side, 0xb0, 7, 50);
	pump(base, &a, &b, &a.got, 50);
	assert_int_equal(a.bad, 0);
	/* RTCP from A reaches B's a=rtcp port */
	uint8_t sr[28] = {0x80, 200, 0, 6};
	send_to(a.fd, (uint16_t)(to_a_side + 1), sr, sizeof(sr));
	pump(base, &a, &b, &b.rtcp_got, 1);

	/* after latching: the third party, and A's own host from another port, get nowhere */
	talk(att, to_a_side, 0xee, 700, 5);
	talk(a_alt, to_a_side, 0xee, 800, 5);
	talk(att, to_b_side, 0xee, 900, 5);
	clk.ms = 9000; /* and after the window too */
	talk(att, to_a_side, 0xee, 1000, 5);
	pump_drops(base, e, &a, &b, 30);
	assert_int_equal(a.bad + b.bad, 0);
	assert_int_equal(b.got, 50);
	assert_int_equal(a.got, 50);

	/* the counters, per side and direction */
	assert_int_equal(rtp_session_stats(s, 0, RTP_CALLER, &st), 0);
	assert_int_equal(st.rx.packets, 50);
	assert_int_equal(st.rx.bytes, 50 * 172);
	assert_int_equal(rtp_stats_lost(&st.rx), 0);
	assert_int_equal(st.rtcp_rx, 1);
	assert_int_equal(st.tx_packets, 50);
	assert_int_equal(st.drop_foreign, 5 + 5 + 5 + 5);
	assert_true(st.rx.pt_seen[0] & (1ull << 8));
	assert_int_equal(st.rx.clock, 8000);
	assert_int_equal(rtp_session_stats(s, 0, RTP_CALLEE, &st), 0);
	assert_int_equal(st.rx.packets, 50);
	assert_int_equal(st.tx_packets, 51);
	assert_int_equal(st.drop_foreign, 10);

	/* media timeout: none while packets flow, then after the configured silence */
	assert_false(rtp_session_timed_out(s, 9000, 30000));
	assert_true(rtp_session_timed_out(s, 1100 + 30000, 30000));

	/* freeing the call releases its ports into quarantine */
	struct rtp_engine_stats es;
	rtp_engine_stats(e, &es);
	assert_int_equal(es.sessions, 1);
	assert_int_equal(es.sockets, 4);
	uint32_t free_before = rtp_engine_pool(e)->count;
	rtp_session_free(s);
	rtp_engine_stats(e, &es);
	assert_int_equal(es.sessions, 0);
	assert_int_equal(es.sockets, 0);
	assert_int_equal(rtp_engine_pool(e)->count, free_before + 2);

	rtp_engine_free(e);
	event_base_free(base);
	close(a.fd);
	close(b.fd);
	close(b.rtcp_fd);
	close(att);
	close(a_alt);
	free(sdp);
}

static void test_rtcp_mux_and_hold(void **state)
{
	struct clock clk = {.ms = 1000};
	uint16_t base_port = (uint16_t)(58000 + (getpid() % 200) * 32);
	struct rtp_config cfg = {
	    .port_lo = base_port,
	    .port_hi = (uint16_t)(base_port + 31),
	    .bind_v4 = "127.0.0.1",
	    .now_ms = test_now,
	    .now_arg = &clk,
	};
	struct event_base *base = event_base_new();
	struct rtp_engine *e;
	struct rtp_session *s;
	struct phone a = {.rtcp_fd = -1, .expect_from = 0xb0},
		     b = {.rtcp_fd = -1, .expect_from = 0xa0};
	struct sdp_session *sdp = calloc(1, sizeof(*sdp));
	struct sdp_rewrite rw;
	struct sdp_error err;
	char body[512];
	struct sockaddr_storage sig = sa("127.0.0.1", 5060);

	(void)state;
	assert_int_equal(rtp_engine_new(base, &cfg, &e), 0);
	a.fd = udp_sock("127.0.0.1", 0, &a.port);
	b.fd = udp_sock("127.0.0.1", 0, &b.port);
	assert_int_equal(rtp_session_new(e, &s), 0);
	snprintf(body, sizeof(body),
		 "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio %u RTP/AVP 0\r\na=rtcp-mux\r\n",
		 a.port);
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLER, sdp, (struct sockaddr *)&sig, &rw), 0);
	uint16_t to_b_side = rw.media[0].port;
	snprintf(body, sizeof(body),
		 "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio %u RTP/AVP 0\r\na=rtcp-mux\r\n",
		 b.port);
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLEE, sdp, (struct sockaddr *)&sig, &rw), 0);
	uint16_t to_a_side = rw.media[0].port;

	/* both multiplex: RTCP sent on the RTP port arrives on the far RTP port */
	uint8_t sr[28] = {0x80, 200, 0, 6};
	talk(a.fd, to_a_side, 0xa0, 1, 3);
	send_to(a.fd, to_a_side, sr, sizeof(sr));
	pump(base, &a, &b, &b.rtcp_got, 1);
	pump(base, &a, &b, &b.got, 3);
	talk(b.fd, to_b_side, 0xb0, 1, 3);
	pump(base, &a, &b, &a.got, 3);
	assert_int_equal(a.bad + b.bad, 0);

	/* B puts the call on hold (sendonly): no media timeout while held */
	snprintf(body, sizeof(body),
		 "v=0\r\no=b 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio %u RTP/AVP 0\r\na=rtcp-mux\r\na=sendonly\r\n",
		 b.port);
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLEE, sdp, (struct sockaddr *)&sig, &rw), 0);
	assert_int_equal(rw.media[0].port, to_a_side); /* same ports across a re-INVITE */
	assert_false(rtp_session_timed_out(s, 1000000, 30000));

	/* a stream rejected with port 0 frees its ports */
	uint32_t before = rtp_engine_pool(e)->count;
	snprintf(body, sizeof(body),
		 "v=0\r\no=b 1 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		 "m=audio 0 RTP/AVP 0\r\n");
	assert_int_equal(sdp_parse(sv_cstr(body), sdp, &err), 0);
	assert_int_equal(rtp_session_update(s, RTP_CALLEE, sdp, (struct sockaddr *)&sig, &rw), 0);
	assert_true(rw.media[0].keep);
	assert_int_equal(rtp_engine_pool(e)->count, before + 2);

	rtp_session_free(s);
	rtp_engine_free(e);
	event_base_free(base);
	close(a.fd);
	close(b.fd);
	free(sdp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_latch_nat),
	    cmocka_unit_test(test_latch_window_ends),
	    cmocka_unit_test(test_stats_loss),
	    cmocka_unit_test(test_stats_jitter),
	    cmocka_unit_test(test_rtcp_demux),
	    cmocka_unit_test(test_loopback_forward),
	    cmocka_unit_test(test_rtcp_mux_and_hold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
