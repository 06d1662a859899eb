/*
 * rtp_load.c - a small load generator for the RTP relay (src/media/relay.c):
 * N calls on loopback, each with two fake phones; a generator thread blasts
 * 172-byte G.711-sized RTP packets from both phones of every call through
 * the relay, which runs on the main thread's event loop exactly as on a
 * worker. It reports the relay thread's CPU time per forwarded packet, i.e.
 * packets/s forwarded per core of relay CPU (not the wall-clock rate, which
 * the generator on the same 2-core machine limits).
 *
 *   cc -O2 -D_GNU_SOURCE -Isrc bench/rtp_load.c build/libsbcore.a \
 *      $(pkg-config --libs libevent_core) -lpthread -o /tmp/rtp_load
 *   /tmp/rtp_load [calls] [seconds]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "media/media.h"

#define BURST 16

struct call {
	int fd[2];	/* phone A, phone B */
	uint16_t to[2]; /* the relay port each phone sends to */
	uint16_t seq[2];
};

static struct call *calls;
static unsigned ncalls;
static atomic_int stop;
static uint64_t sent;

static double now_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int phone(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	int small = 4096;

	/* the phones never read: a small buffer keeps the kernel's drops cheap */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		exit(1);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void *generator(void *arg)
{
	uint8_t pkt[BURST][172];
	struct mmsghdr m[BURST];
	struct iovec iov[BURST];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};

	(void)arg;
	memset(pkt, 0xd5, sizeof(pkt));
	while (!atomic_load(&stop)) {
		for (unsigned c = 0; c < ncalls; c++) {
			for (unsigned side = 0; side < 2; side++) {
				struct call *k = &calls[c];
				to.sin_port = htons(k->to[side]);
				for (unsigned i = 0; i < BURST; i++) {
					uint16_t seq = k->seq[side]++;
					pkt[i][0] = 0x80;
					pkt[i][1] = 0;
					pkt[i][2] = (uint8_t)(seq >> 8);
					pkt[i][3] = (uint8_t)seq;
					memcpy(&pkt[i][4], &seq, 2);
					pkt[i][8] = (uint8_t)c;
					pkt[i][9] = (uint8_t)side;
					iov[i] = (struct iovec){pkt[i], sizeof(pkt[i])};
					m[i].msg_hdr = (struct msghdr){.msg_name = &to,
								       .msg_namelen = sizeof(to),
								       .msg_iov = &iov[i],
								       .msg_iovlen = 1};
				}
				int n = sendmmsg(k->fd[side], m, BURST, 0);
				if (n > 0)
					sent += (unsigned)n;
			}
		}
	}
	return NULL;
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	unsigned secs = argc > 2 ? (unsigned)atoi(argv[2]) : 5;
	struct rtp_config cfg = {.port_lo = 50000, .port_hi = 59999, .bind_v4 = "127.0.0.1"};
	struct event_base *base = event_base_new();
	struct rtp_engine *e;
	struct sdp_session sdp;
	struct sdp_rewrite rw;
	struct sdp_error err;
	struct rtp_session **sess;
	struct sockaddr_in sig = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	char body[256];
	pthread_t gen;

	ncalls = argc > 1 ? (unsigned)atoi(argv[1]) : 100;
	calls = calloc(ncalls, sizeof(*calls));
	sess = calloc(ncalls, sizeof(*sess));
	if (rtp_engine_new(base, &cfg, &e))
		return 1;
	for (unsigned c = 0; c < ncalls; c++) {
		uint16_t pa, pb;
		calls[c].fd[0] = phone(&pa);
		calls[c].fd[1] = phone(&pb);
		rtp_session_new(e, &sess[c]);
		for (unsigned side = 0; side < 2; side++) {
			snprintf(body, sizeof(body),
				 "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
				 "t=0 0\r\nm=audio %u RTP/AVP 0\r\n",
				 side ? pb : pa);
			if (sdp_parse(sv_cstr(body), &sdp, &err) ||
			    rtp_session_update(sess[c], side ? RTP_CALLEE : RTP_CALLER, &sdp,
					       (struct sockaddr *)&sig, &rw)) {
				fprintf(stderr, "setup failed at call %u\n", c);
				return 1;
			}
			/* the answer's plan names the caller-facing port, the offer's the callee's
			 */
			calls[c].to[side ? 0 : 1] = rw.media[0].port;
		}
	}
	struct event *end = evtimer_new(base, on_end, base);
	struct timeval tv = {.tv_sec = secs};
	evtimer_add(end, &tv);
	pthread_create(&gen, NULL, generator, NULL);
	double c0 = now_s(CLOCK_THREAD_CPUTIME_ID), w0 = now_s(CLOCK_MONOTONIC);
	event_base_dispatch(base);
	double cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0, wall = now_s(CLOCK_MONOTONIC) - w0;
	atomic_store(&stop, 1);
	pthread_join(gen, NULL);

	struct rtp_engine_stats st;
	rtp_engine_stats(e, &st);
	printf("calls %u, %.1f s: sent %llu, forwarded %llu (%.0f/s wall), dropped %llu, "
	       "batches %llu (%.1f packets per recvmmsg)\n",
	       ncalls, wall, (unsigned long long)sent, (unsigned long long)st.forwarded,
	       st.forwarded / wall, (unsigned long long)st.dropped, (unsigned long long)st.batches,
	       st.batches ? (double)st.forwarded / st.batches : 0);
	printf("relay thread CPU %.2f s: %.0f ns per forwarded packet, %.0f packets/s per core\n",
	       cpu, cpu * 1e9 / (double)st.forwarded, (double)st.forwarded / cpu);
	for (unsigned c = 0; c < ncalls; c++) {
		rtp_session_free(sess[c]);
		close(calls[c].fd[0]);
		close(calls[c].fd[1]);
	}
	event_free(end);
	rtp_engine_free(e);
	event_base_free(base);
	free(calls);
	free(sess);
	return 0;
}
