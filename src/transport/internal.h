/*
 * internal.h - state shared by the transport module's files (tport.c,
 * udp.c, tcp.c) and not part of its API.
 */
#ifndef SB_TRANSPORT_INTERNAL_H
#define SB_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "server/worker.h"
#include "transport/tport.h"

struct event;
struct evbuffer;

#define TP_BATCH	32
#define TP_CONN_BUCKETS 1024
#define TP_SEND_ARENA	(256 * 1024)

struct tp_conn {
	struct wjob job;  /* for deferred destruction; must stay first */
	struct worker *w; /* owner */
	uint32_t id;
	int fd;
	unsigned owner;
	unsigned listen;
	struct tp_addr peer;
	struct event *ev;
	char *rbuf;
	size_t rlen;
	size_t rcap;
	struct evbuffer *wbuf;
	time_t last_rx;		    /* last byte received */
	time_t partial_since;	    /* a message has been incomplete since then, 0 = none */
	_Atomic int64_t hold_until; /* a registration relies on this connection until then */
	bool connecting;
	bool close_after_write;
	bool writing;
	struct tp_conn *id_next;
	struct tp_conn *peer_next;
	struct tp_conn *w_next;
	struct tp_conn *w_prev;
};

struct tp_bucket {
	pthread_mutex_t lock;
	struct tp_conn *head;
};

struct tp_table {
	struct server *srv;
	tp_recv_fn on_msg;
	unsigned nlisten;
	struct tp_listen listen[TP_MAX_LISTEN];
	struct tp_bucket by_id[TP_CONN_BUCKETS];
	struct tp_bucket by_peer[TP_CONN_BUCKETS];
	atomic_uint next_id;
	atomic_uint nconns;
	/* the machine's addresses, when a listener is on a wildcard address */
	struct tp_addr ifaddrs[64];
	unsigned nifaddrs;
};

struct tp_pending {
	int fd;
	size_t off;
	size_t len;
	struct tp_addr to;
};

struct tp_worker {
	int udp_fd[TP_MAX_LISTEN];
	struct event *udp_ev[TP_MAX_LISTEN];
	int tcp_fd[TP_MAX_LISTEN];
	struct event *tcp_ev[TP_MAX_LISTEN];

	/* receive batch */
	struct mmsghdr rmsg[TP_BATCH];
	struct iovec riov[TP_BATCH];
	struct sockaddr_storage raddr[TP_BATCH];
	/* control messages: the kernel's receive timestamp of each datagram */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(struct timespec))];
	} rctl[TP_BATCH];
	char *rbuf;

	/* send batch, filled while a receive batch is processed */
	bool batching;
	unsigned npending;
	struct tp_pending pending[TP_BATCH];
	char *arena;
	size_t arena_used;

	struct sip_msg msg;    /* parse scratch */
	struct tp_conn *conns; /* owned connections */
};

/* tport.c */
struct tp_table *tp_table_of(struct worker *w);
uint64_t tp_addr_hash(const struct tp_addr *a);
void tp_deliver(struct worker *w, const char *buf, size_t len, unsigned flags,
		const struct tp_src *src, struct sip_msg *m, int *parse_err);

/* udp.c */
int tp_udp_open(struct worker *w, unsigned listen);
int tp_udp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
void tp_udp_flush(struct worker *w);

/* tcp.c */
int tp_tcp_open_listener(struct worker *w, unsigned listen);
int tp_tcp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
void tp_tcp_close_all(struct worker *w);
void tp_tcp_housekeeping(struct worker *w, time_t now);

#endif
