/*
 * fuzz_tcp_stream.c - libFuzzer target for a TCP connection's life in
 * transport/tcp.c: the real framing (conn_read, conn_parse), writing and
 * queueing (conn_write, the flush on EV_WRITE), the per-source limit and
 * every way a connection closes (a send that fails inside the handler of a
 * message still being framed, a full write queue, a reset peer, a framing
 * error, the housekeeping timeouts, shutdown), driven through a real worker
 * event loop.
 *
 * Connections are socketpairs adopted as accepted connections
 * (tp_tcp_adopt); the fuzzer plays the peers. The message handler answers
 * every message with replies of a chosen size, sometimes on another
 * connection, so that sends fail in all the places they can: the peer
 * stopped reading (its receive side shut down: EPIPE), it reset, or it reads
 * nothing and the write queue (kept small here) fills up.
 *
 * Input: byte 0 sets up the connections (bits 0-1: 1..4 of them; bits 2-3:
 * tcp.max_per_source 0 = none, or 1..3, so some are refused; bit 4: a small
 * socket send buffer; bit 5: IPv6 peers of one /64), byte 1 the
 * reply size, then a script of operations, each one byte and its operands:
 *   0-2  write the next 1..64 bytes (operand byte) of the stream to one peer
 *   3    a peer reads everything queued for it
 *   4    a peer shuts its receive side down (later sends fail)
 *   5    a peer closes (reset)
 *   6    new reply size (operand byte), replies per message and target
 *   7    housekeeping, the clock moved on by operand byte seconds
 * The stream bytes are split at the points the script chooses; the seed
 * corpus holds real requests and keep-alives.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "transport/internal.h"

#define FZ_MAX_CONNS 4

struct fz {
	struct server *srv;
	struct worker *w;
	unsigned nconns;
	uint32_t id[FZ_MAX_CONNS];
	int peer[FZ_MAX_CONNS]; /* -1 = closed by the fuzzer */
	size_t reply_len;
	unsigned replies;   /* per message */
	bool cross;	    /* answer on the next connection, not the message's own */
	unsigned delivered; /* messages (or broken ones) handed to the handler */
	char reply[8192 + 64];
};

static struct fz fz;

static void fz_on_msg(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src)
{
	uint32_t to = src->conn_id;

	(void)m;
	fz.delivered++;
	if (fz.cross && fz.nconns > 1) {
		for (unsigned i = 0; i < fz.nconns; i++) {
			if (fz.id[i] == src->conn_id) {
				to = fz.id[(i + 1) % fz.nconns];
				break;
			}
		}
	}
	/* a registration or credentials that verified make the connection trusted */
	if (!parse_err && (fz.delivered & 3) == 1)
		tp_conn_mark_trusted(w->srv->tp, src->conn_id);
	for (unsigned i = 0; i < (parse_err ? 1 : fz.replies); i++) {
		struct tp_dest d = {.peer = src->peer, .listen = -1, .conn_id = to};
		/* never open a connection: a closed one gets nothing (tcp.c would dial the peer) */
		if (!tp_conn_alive(w->srv->tp, to))
			return;
		tp_send(w, &d, fz.reply, fz.reply_len);
	}
}

static void fz_setup(void)
{
	struct cfg cfg;
	char err[256];

	log_set_level(LOG_ERROR);
	signal(SIGPIPE, SIG_IGN); /* as the server does: evbuffer_write has no MSG_NOSIGNAL */
	fz.srv = calloc(1, sizeof(*fz.srv));
	fz.w = calloc(1, sizeof(*fz.w));
	if (!fz.srv || !fz.w)
		abort();
	cfg_defaults(&cfg);
	fz.srv->cfg = cfg;
	fz.srv->seed = 0x5eed;
	fz.srv->nworkers = 1;
	if (tp_table_create(fz.srv, fz_on_msg, &fz.srv->tp, err, sizeof(err)))
		abort();
	/* a peer that does not read fills them at once */
	fz.srv->tp->max_queued = 4096;
	fz.srv->tp->max_queued_unauth = 2048;
	fz.w->srv = fz.srv;
	fz.w->cfg = &fz.srv->cfg;
	fz.w->tpt = fz.srv->tp;
	fz.w->id = 0;
	fz.w->base = event_base_new();
	fz.srv->workers[0] = fz.w;
	if (!fz.w->base || tp_worker_init(fz.w))
		abort();
}

static void fz_set_reply(uint8_t size, uint8_t mode)
{
	size_t body = (size_t)size * 32;
	int n = snprintf(fz.reply, 64, "SIP/2.0 200 OK\r\nContent-Length: %zu\r\n\r\n", body);

	memset(fz.reply + n, 'x', body);
	fz.reply_len = (size_t)n + body;
	fz.replies = 1 + mode % 3;
	fz.cross = (mode & 4) != 0;
}

static void fz_loop(void)
{
	for (int i = 0; i < 3; i++)
		event_base_loop(fz.w->base, EVLOOP_NONBLOCK);
	worker_reap(fz.w);
}

static void fz_drain(int fd)
{
	char buf[16384];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tp_table *t;
	size_t pos = 2;
	unsigned want;

	if (!fz.w)
		fz_setup();
	if (size < 2)
		return 0;
	t = fz.srv->tp;
	want = 1 + (data[0] & 3);
	fz.srv->cfg.tcp_max_per_source = (data[0] >> 2) & 3;
	fz_set_reply(data[1], data[1] >> 5);
	fz.nconns = 0;
	for (unsigned i = 0; i < want; i++) {
		int sv[2];
		struct tp_addr peer;
		uint32_t id = 0;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			break;
		/* one source address (IPv6: distinct addresses of one /64) */
		if (data[0] & 0x20) {
			char ip[64];
			snprintf(ip, sizeof(ip), "2001:db8::%x", i + 1);
			tp_addr_from_str(ip, 40000, SIP_PROTO_TCP, &peer);
		} else {
			tp_addr_from_str("192.0.2.7", (uint16_t)(40000 + fz.nconns), SIP_PROTO_TCP,
					 &peer);
		}
		if (data[0] & 0x10) {
			int small = 4096;
			setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
		}
		if (tp_tcp_adopt(fz.w, sv[0], &peer, 0, &id)) {
			close(sv[1]); /* refused: tp_tcp_adopt closed sv[0] */
			continue;
		}
		fz.id[fz.nconns] = id;
		fz.peer[fz.nconns] = sv[1];
		fz.nconns++;
	}
	while (pos < size && fz.nconns) {
		uint8_t op = data[pos++];
		unsigned k = (op >> 3) % fz.nconns;
		int fd = fz.peer[k];
		size_t n;

		switch (op & 7) {
		case 0:
		case 1:
		case 2:
			n = pos < size ? 1 + data[pos++] % 64 : 0;
			if (n > size - pos)
				n = size - pos;
			if (fd >= 0 && n && send(fd, data + pos, n, MSG_NOSIGNAL) < 0 &&
			    errno != EAGAIN && errno != EPIPE && errno != ECONNRESET)
				abort();
			pos += n;
			break;
		case 3:
			if (fd >= 0)
				fz_drain(fd);
			break;
		case 4:
			if (fd >= 0)
				shutdown(fd, SHUT_RD);
			break;
		case 5:
			if (fd >= 0)
				close(fd);
			fz.peer[k] = -1;
			break;
		case 6:
			if (pos + 1 < size) {
				fz_set_reply(data[pos], data[pos + 1]);
				pos += 2;
			}
			break;
		case 7:
			tp_tcp_housekeeping(fz.w, time(NULL) + (pos < size ? data[pos++] : 0));
			break;
		}
		fz_loop();
	}
	fz_loop();
	/* shutdown: whatever is still open closes once, and everything is freed */
	tp_tcp_close_all(fz.w);
	worker_reap(fz.w);
	for (unsigned i = 0; i < fz.nconns; i++) {
		if (fz.peer[i] >= 0)
			close(fz.peer[i]);
	}
	if (atomic_load(&t->nconns) != 0 || fz.w->tp->conns) {
		fprintf(stderr, "connections left after close_all: %u\n", atomic_load(&t->nconns));
		abort();
	}
	for (unsigned i = 0; i < TP_SRC_BUCKETS; i++) {
		for (struct tp_src_entry *e = t->by_src[i].head; e; e = e->next) {
			if (e->untrusted) {
				fprintf(stderr,
					"a closed connection still counts against its source\n");
				abort();
			}
		}
	}
	return 0;
}
