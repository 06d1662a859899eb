/*
 * reflector.c - the ceiling of the machine: echoes every UDP datagram back
 * to its sender, reading and writing in batches of up to 32 with
 * recvmmsg/sendmmsg, and nothing else. No SIP server can move more
 * datagrams per second through one core than this.
 *
 *   reflector PORT [SECONDS]      prints datagrams echoed per second
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define DGRAM 2048

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char bufs[BATCH][DGRAM];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in peers[BATCH], a = {.sin_family = AF_INET};
	int fd, size = 8 << 20;
	double secs = argc > 2 ? atof(argv[2]) : 10, t0 = 0;
	unsigned long echoed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: reflector PORT [SECONDS]\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bind");
		return 1;
	}
	for (;;) {
		int n;
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){bufs[i], DGRAM};
			msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i], .msg_namelen = sizeof(peers[i]),
							  .msg_iov = &iov[i], .msg_iovlen = 1};
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		if (!t0)
			t0 = now();
		for (int i = 0; i < n; i++)
			iov[i].iov_len = msgs[i].msg_len;
		for (int sent = 0; sent < n;) {
			int k = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
			if (k <= 0)
				break;
			sent += k;
		}
		echoed += (unsigned long)n;
		if (now() - t0 >= secs)
			break;
	}
	printf("%.0f\n", echoed / (now() - t0));
	return 0;
}
