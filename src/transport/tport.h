/*
 * tport.h - moving SIP messages in and out: UDP with recvmmsg/sendmmsg
 * batching, TCP with Content-Length framing, and the table of connections.
 *
 * Every worker has its own SO_REUSEPORT socket per UDP listen address and
 * its own SO_REUSEPORT listener per TCP address, so the kernel spreads
 * datagrams and connections across workers with no shared queue. A TCP
 * connection belongs to the worker that accepted or opened it; a message for
 * it from another worker is posted to that worker (see worker_post).
 *
 * Received messages are parsed here (framing needs Content-Length anyway)
 * and handed to the server's message handler with where they came from.
 */
#ifndef SB_TRANSPORT_TPORT_H
#define SB_TRANSPORT_TPORT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/sv.h"
#include "sip/sip.h"

struct worker;
struct server;

/*
 * An address as small as IPv6 allows (no sockaddr_storage: every transaction,
 * proxy context and binding holds one or more, issue 13's memory per call).
 */
struct tp_addr {
	enum sip_proto proto;
	socklen_t len;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} u;
};

/* Where a message came from. */
struct tp_src {
	struct tp_addr peer;
	unsigned listen;  /* index of the listen address it arrived on */
	uint32_t conn_id; /* TCP connection, 0 for UDP */
	/* when the kernel received it (CLOCK_REALTIME ns, SO_TIMESTAMPNS), 0 = unknown:
	 * the start of its queueing delay (proxy/overload.h) */
	int64_t rx_ns;
	/* it came in on a dialog port (udp.dialog_port): only in-dialog requests and responses
	 * are served there (request/overload.h) */
	bool dialog_port;
};

/* Where a message goes. */
struct tp_dest {
	struct tp_addr peer;
	int listen; /* local address to send from, -1 = any of the right protocol and family */
	uint32_t conn_id; /* connection to use if still open; 0 = reuse one to peer or open one */
	/* UDP: send from the worker's own port (udp.worker_ports) when it has one, so that a
	 * peer that answers to the source port, not the Via, reaches this worker too */
	bool own_port;
	/*
	 * The connection conn_id is the only way: when it is gone the send fails
	 * (ENOTCONN) instead of opening a new one to peer. A registration's
	 * connection, whose peer is the phone's ephemeral port: nobody listens there.
	 */
	bool conn_only;
	/*
	 * Nonzero: who hears, through the table's lost hook (tp_on_lost) on the
	 * sending worker, that a message tp_send accepted never left because its
	 * connection failed (refused, reset, closed with the message still queued,
	 * or gone when a send posted to its owner arrived). The client transaction
	 * sets it (txn.c); 0 = nobody waits.
	 */
	uint64_t notify;
};

/* One local address the server listens on, as others must address it. */
struct tp_listen {
	enum sip_proto proto;
	struct tp_addr addr;
	char host[72]; /* as written in a URI: "192.0.2.1", "[2001:db8::1]" */
	uint16_t port;
	char advertise[140]; /* "host:port" written in Via and Record-Route */
	/* UDP with udp.dialog_port: the dialog port and the "host:port" naming it, written in
	 * our Record-Route and the Via of what we forward from here; 0 and "" when off */
	uint16_t dialog_port;
	char dialog_advertise[140];
};

#define TP_MAX_LISTEN 16

struct tp_table;

/*
 * Called for every message received: m is parsed (parse_err is sip_parse's
 * result: 0, EBADMSG...). m and its buffer are valid only during the call.
 */
typedef void (*tp_recv_fn)(struct worker *w, struct sip_msg *m, int parse_err,
			   const struct tp_src *src);

int tp_table_create(struct server *srv, tp_recv_fn on_msg, struct tp_table **out, char *err,
		    size_t errlen);
/*
 * A message sent with tp_dest.notify was lost after tp_send returned 0 (err:
 * ECONNREFUSED, ECONNRESET, ENOTCONN...). Runs on the worker that sent it, from
 * its inbox (never inside a transport callback). Set once before start.
 */
typedef void (*tp_lost_fn)(struct worker *w, uint64_t notify, int err);
void tp_on_lost(struct tp_table *t, tp_lost_fn fn);
void tp_table_destroy(struct tp_table *t);

int tp_worker_init(struct worker *w);
void tp_worker_fini(struct worker *w);
/* Periodic: idle TCP connections. */
void tp_housekeeping(struct worker *w);

/* Sends one message. UDP sends inside a receive batch are queued and go out in one sendmmsg. */
int tp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
/*
 * A stand-in for the network (the unit tests of the routing core, which
 * record what would be sent): when set, every tp_send goes to fn and no
 * socket is written. The server never sets it (one test of a pointer per send).
 */
typedef int (*tp_send_fn)(struct worker *w, const struct tp_dest *d, const char *data, size_t len);
void tp_table_set_send(struct tp_table *t, tp_send_fn fn);
/*
 * Sends the UDP datagrams queued while a receive batch is handled. The
 * transport flushes at the end of every batch itself and sends at once outside
 * one, so nobody else needs to call it.
 */
void tp_flush(struct worker *w);
/*
 * Hands a received message to another worker, which parses it again and runs
 * the message handler on it (the message belongs to a transaction it owns).
 */
int tp_redeliver(struct worker *w, unsigned owner, const struct sip_msg *m,
		 const struct tp_src *src);
/* The same as a job to post later (from any thread) with worker_post; NULL on ENOMEM. */
struct wjob *tp_redeliver_job(const struct sip_msg *m, const struct tp_src *src);

/*
 * The sent-by ("host:port") for the top Via of a request this worker sends
 * from listen address i: with udp.worker_ports, the worker's own port, so
 * that the responses (RFC 3261 18.2.2: to the Via's sent-by) come back to the
 * worker that owns the client transaction; otherwise the listen address's.
 */
const char *tp_via_sent_by(const struct worker *w, unsigned listen);

/* The server's listen addresses (read-only after start). */
unsigned tp_listen_count(const struct tp_table *t);
const struct tp_listen *tp_listen_get(const struct tp_table *t, unsigned i);
/* The listen address to use for sending with proto to family (AF_INET/AF_INET6), or -1. */
int tp_listen_pick(const struct tp_table *t, enum sip_proto proto, int family);
/* True when host[:port] names one of our listen addresses or a worker's own port (port 0 =
 * default 5060). */
bool tp_is_local_address(const struct tp_table *t, sv_t host, uint16_t port);
/* True when host is an IP address of this server, whatever the port. */
bool tp_is_local_ip(const struct tp_table *t, sv_t host);
/* True when the connection is still open. */
bool tp_conn_alive(struct tp_table *t, uint32_t conn_id);
/* Keeps an idle connection open until `until` (a registration relies on it); trusts it. */
void tp_conn_hold(struct tp_table *t, uint32_t conn_id, int64_t until);
/*
 * An authenticated request came over the connection (0 = UDP: nothing to do):
 * from now on it has tcp.idle_timeout instead of tcp.unauth_idle_timeout and
 * no longer counts against its source's tcp.max_per_source. Any thread.
 */
void tp_conn_mark_trusted(struct tp_table *t, uint32_t conn_id);

/* Address helpers */
/* From a socket address of len bytes (recvmmsg, DNS): EAFNOSUPPORT when it is no IPv4/IPv6. */
int tp_addr_from_sockaddr(struct tp_addr *a, enum sip_proto proto, const void *sa, socklen_t len);
int tp_addr_from_str(const char *ip, uint16_t port, enum sip_proto proto, struct tp_addr *a);
int tp_addr_from_sv(sv_t ip, uint16_t port, enum sip_proto proto, struct tp_addr *a);
/* "IP" (no brackets) into buf; returns buf. */
const char *tp_addr_ip(const struct tp_addr *a, char *buf, size_t len);
uint16_t tp_addr_port(const struct tp_addr *a);
/* Does host (as written in a Via or URI) name the same IP as a? Cheap for IPv4. */
bool tp_addr_ip_is(const struct tp_addr *a, sv_t host);
void tp_addr_set_port(struct tp_addr *a, uint16_t port);
bool tp_addr_equal(const struct tp_addr *a, const struct tp_addr *b);
/* "udp:IP:PORT" / "tcp:[IPv6]:PORT" */
int tp_addr_format(const struct tp_addr *a, char *buf, size_t len);
int tp_addr_parse(sv_t s, struct tp_addr *a);

#endif
