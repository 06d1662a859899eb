/*
 * blaster.c - load for the reflector: keeps WINDOW datagrams of SIZE bytes
 * in flight to 127.0.0.1:PORT for SECONDS and prints the echoes received
 * per second.
 *
 *   blaster PORT [SECONDS] [SIZE] [WINDOW]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static char out[65536], in[BATCH][65536];
	struct sockaddr_in a = {.sin_family = AF_INET};
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	double secs, t0, last_send;
	size_t size;
	int fd, window, inflight = 0, bufsz = 8 << 20;
	unsigned long got = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: blaster PORT [SECONDS] [SIZE] [WINDOW]\n");
		return 2;
	}
	secs = argc > 2 ? atof(argv[2]) : 10;
	size = argc > 3 ? (size_t)atoi(argv[3]) : 600;
	window = argc > 4 ? atoi(argv[4]) : 256;
	memset(out, 'x', sizeof(out));
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	a.sin_port = htons((unsigned short)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		return 1;
	}
	t0 = last_send = now();
	while (now() - t0 < secs) {
		struct pollfd p = {fd, POLLIN, 0};
		while (inflight < window) {
			if (send(fd, out, size, MSG_DONTWAIT) < 0)
				break;
			inflight++;
			last_send = now();
		}
		if (poll(&p, 1, 100) <= 0) {
			if (now() - last_send > 0.2)
				inflight = 0; /* lost datagrams: refill the window */
			continue;
		}
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){in[i], sizeof(in[i])};
			msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
		}
		int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n > 0) {
			got += (unsigned long)n;
			inflight -= n;
			if (inflight < 0)
				inflight = 0;
		}
	}
	printf("%.0f\n", got / (now() - t0));
	return 0;
}
