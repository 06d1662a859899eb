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

#include "core/siphash.h"
#include "server/worker.h"
#include "transport/tport.h"

struct event;
struct evbuffer;

#define TP_BATCH	32
#define TP_CONN_BUCKETS 1024
#define TP_SEND_ARENA	(256 * 1024)
#define TP_SRC_BUCKETS	1024
/* workers that get a UDP port of their own (udp.worker_ports); the others hop */
#define TP_MAX_WORKER_PORTS 256
/*
 * Most bytes queued for a peer that does not read before its connection is
 * given up; less for an accepted connection that never authenticated (a
 * stranger may hold tcp.max_per_source of them and read nothing).
 */
#define TP_TCP_MAX_QUEUED	 (4 * 1024 * 1024)
#define TP_TCP_MAX_QUEUED_UNAUTH (256 * 1024)

/*
 * A connection's life. Closing never frees anything: it takes the connection
 * out of the tables, the worker's list and the event loop (no more reads,
 * and no more sends accepted), and the memory and the socket are released
 * once, later, by the worker's graveyard, outside every callback of the
 * connection (a send that fails deep inside the handler of a message that
 * conn_parse is still framing closes the connection under conn_parse's feet).
 */
enum tp_conn_state {
	TP_CONN_CONNECTING, /* connect() in progress: what is sent waits in wbuf */
	TP_CONN_OPEN,
	TP_CONN_CLOSING, /* framing lost: nothing more is read; what is queued goes out, then CLOSED
			  */
	TP_CONN_CLOSED,	 /* closed; freed by the graveyard */
};

/* A queued message whose sender waits to hear if it is lost (tp_dest.notify). */
struct tp_notice {
	uint64_t notify;
	uint64_t end;	 /* it has left once c->sent_total reaches this */
	unsigned origin; /* the worker that sent it */
};

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
	_Atomic(enum tp_conn_state) state; /* written by the owner, read by table_find */
	time_t closing_since;		   /* when it became CLOSING */
	time_t last_rx;			   /* last byte received */
	time_t partial_since;		   /* a message has been incomplete since then, 0 = none */
	_Atomic int64_t hold_until;	   /* a registration relies on this connection until then */
	/*
	 * An authenticated request or a registration came over it (set from any
	 * worker under its by-id bucket lock, see tp_conn_mark_trusted). Until
	 * then it has the shorter idle timeout and, when accepted, counts
	 * against its source's tcp.max_per_source.
	 */
	_Atomic bool trusted;
	bool accepted;	  /* a peer's connection, not one we opened */
	bool src_counted; /* accepted and counted in its source's entry (set before it is shared) */
	bool writing;	  /* the event waits for EV_WRITE */
	/* bytes accepted for it (sent or queued) and bytes handed to the kernel, since it opened */
	uint64_t queued_total;
	uint64_t sent_total;
	/* queued messages whose senders wait to hear if they are lost: told when it closes */
	struct tp_notice *notices;
	unsigned nnotices;
	unsigned capnotices;
	struct tp_conn *id_next;
	struct tp_conn *peer_next;
	struct tp_conn *w_next;
	struct tp_conn *w_prev;
};

struct tp_bucket {
	pthread_mutex_t lock;
	struct tp_conn *head;
};

/* Connections from one source address that never authenticated (srclimit.c). */
struct tp_src_entry {
	struct tp_src_entry *next;
	uint8_t key[16];    /* IPv4 as ::ffff:a.b.c.d; IPv6 by its /64 */
	unsigned untrusted; /* connections from it that did not authenticate (yet) */
	unsigned refused;   /* connections refused since the last log line about it */
	time_t logged;	    /* the last log line about it, 0 = none */
};

struct tp_src_bucket {
	pthread_mutex_t lock;
	struct tp_src_entry *head;
};

struct tp_table {
	struct server *srv;
	struct siphash_key key; /* the connection table's peer hash */
	tp_recv_fn on_msg;
	tp_send_fn send_fn; /* a test's stand-in for the network; NULL = the sockets */
	tp_lost_fn on_lost; /* NULL: nobody is told */
	unsigned nlisten;
	struct tp_listen listen[TP_MAX_LISTEN];
	struct tp_bucket by_id[TP_CONN_BUCKETS];
	struct tp_bucket by_peer[TP_CONN_BUCKETS];
	atomic_uint next_id;
	atomic_uint nconns;
	_Atomic int64_t limit_logged; /* last log line about tcp.max_connections */
	size_t max_queued;	      /* TP_TCP_MAX_QUEUED; smaller in the fuzz target */
	size_t max_queued_unauth;     /* TP_TCP_MAX_QUEUED_UNAUTH; likewise */
	uint64_t seed;		      /* keys the per-source table */
	struct tp_src_bucket by_src[TP_SRC_BUCKETS];
	/* each worker's own UDP port per listen address (udp.worker_ports), 0 = none;
	 * written by worker_create on the main thread before any worker runs */
	uint16_t wport[TP_MAX_LISTEN][TP_MAX_WORKER_PORTS];
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
	/* udp.worker_ports: this worker's own socket per UDP listen address (responses only)
	 * and the Via sent-by naming it; -1 and "" when off */
	int wport_fd[TP_MAX_LISTEN];
	struct event *wport_ev[TP_MAX_LISTEN];
	char via[TP_MAX_LISTEN][140];
	/* udp.dialog_port: this worker's socket on each UDP listen address's dialog port
	 * (shared by the workers with SO_REUSEPORT), -1 when off; priority: the main
	 * sockets' handler reads it and the worker's own ports before every batch of its own */
	int dport_fd[TP_MAX_LISTEN];
	struct event *dport_ev[TP_MAX_LISTEN];
	bool priority; /* a dialog port or a worker's own port is open */

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
uint64_t tp_addr_hash(const struct siphash_key *k, const struct tp_addr *a);
void tp_deliver(struct worker *w, const char *buf, size_t len, unsigned flags,
		const struct tp_src *src, struct sip_msg *m, int *parse_err);

/* udp.c */
int tp_udp_open(struct worker *w, unsigned listen);
/* This worker's socket on listen address listen's dialog port (udp.dialog_port); 0 when off. */
int tp_udp_open_dialog_port(struct worker *w, unsigned listen);
/* "host" of an advertised "host:port": its length, the port (if any) left out. */
size_t tp_advertise_host_len(const char *adv);
/* This worker's own port on a UDP listen address (udp.worker_ports); 0 when off. */
int tp_udp_open_worker_port(struct worker *w, unsigned listen);
int tp_udp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
void tp_udp_flush(struct worker *w);

/* tport.c: tells w (any thread) that the message with notify was lost (tp_on_lost) */
void tp_lost_post(struct tp_table *t, unsigned w, uint64_t notify, int err);

/* tcp.c */
int tp_tcp_open_listener(struct worker *w, unsigned listen);
/*
 * Takes an accepted socket (the listener's, or a test's socketpair) as a
 * connection of w after the connection limits: on a refusal (EMFILE) or a
 * failure fd is closed. *id (may be NULL) names the connection.
 */
int tp_tcp_adopt(struct worker *w, int fd, const struct tp_addr *peer, unsigned listen,
		 uint32_t *id);
int tp_tcp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
void tp_tcp_close_all(struct worker *w);
void tp_tcp_housekeeping(struct worker *w, time_t now);

/* srclimit.c: per-source counts of connections that never authenticated */
void tp_src_init(struct tp_table *t);
void tp_src_fini(struct tp_table *t);
/* Counts one more connection from peer; EMFILE (counted, logged once a minute) over limit. */
int tp_src_acquire(struct tp_table *t, const struct tp_addr *peer, unsigned limit, time_t now);
void tp_src_release(struct tp_table *t, const struct tp_addr *peer, time_t now);

#endif
