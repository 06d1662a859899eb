/*
 * tcp.c - SIP over TCP: accepting and opening connections, framing the byte
 * stream into messages by Content-Length, and writing with a queue for when
 * the socket is full.
 *
 * A connection is owned by one worker. The table indexes connections by id
 * (what a registration remembers) and by peer address (to reuse a connection
 * for a response or a new request, RFC 3261 18); other workers look a
 * connection up only to learn its owner, and post the send there.
 */
#include "transport/internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
#include "server/server.h"

/* How long a message may stay incomplete before the connection is given up. */
#define TCP_PARTIAL_TIMEOUT_S 10
/* How long the reply to a broken message may take to leave before the connection is dropped. */
#define TCP_CLOSING_TIMEOUT_S 10
#define TCP_MAX_RBUF	      (2 * SIP_MAX_MSG + 2)
#define TCP_LIMIT_LOG_S	      60

static struct tp_bucket *bucket_by_id(struct tp_table *t, uint32_t id)
{
	return &t->by_id[id % TP_CONN_BUCKETS];
}

static struct tp_bucket *bucket_by_peer(struct tp_table *t, const struct tp_addr *a)
{
	return &t->by_peer[tp_addr_hash(&t->key, a) % TP_CONN_BUCKETS];
}

static void table_insert(struct tp_table *t, struct tp_conn *c)
{
	struct tp_bucket *bi = bucket_by_id(t, c->id), *bp = bucket_by_peer(t, &c->peer);

	pthread_mutex_lock(&bi->lock);
	c->id_next = bi->head;
	bi->head = c;
	pthread_mutex_unlock(&bi->lock);
	pthread_mutex_lock(&bp->lock);
	c->peer_next = bp->head;
	bp->head = c;
	pthread_mutex_unlock(&bp->lock);
}

static void table_remove(struct tp_table *t, struct tp_conn *c)
{
	struct tp_bucket *bi = bucket_by_id(t, c->id), *bp = bucket_by_peer(t, &c->peer);
	struct tp_conn **pp;

	pthread_mutex_lock(&bi->lock);
	for (pp = &bi->head; *pp; pp = &(*pp)->id_next) {
		if (*pp == c) {
			*pp = c->id_next;
			break;
		}
	}
	pthread_mutex_unlock(&bi->lock);
	pthread_mutex_lock(&bp->lock);
	for (pp = &bp->head; *pp; pp = &(*pp)->peer_next) {
		if (*pp == c) {
			*pp = c->peer_next;
			break;
		}
	}
	pthread_mutex_unlock(&bp->lock);
}

/* Does c take new messages? Not once it is closing or closed. */
static bool conn_usable(const struct tp_conn *c)
{
	enum tp_conn_state s = c->state;

	return s == TP_CONN_CONNECTING || s == TP_CONN_OPEN;
}

/*
 * A connection that takes new messages (CONNECTING or OPEN), found by id or
 * else by peer; NULL when none. Its owner is set; only the owner may use the
 * pointer (it alone closes and frees connections), others post to it.
 * Another worker may see a connection that its owner is closing at that
 * moment as open: its posted send then finds it gone (send_job_run).
 */
static struct tp_conn *table_find(struct tp_table *t, uint32_t id, const struct tp_addr *peer,
				  unsigned *owner, uint32_t *found_id)
{
	struct tp_conn *found = NULL;

	if (id) {
		struct tp_bucket *b = bucket_by_id(t, id);
		pthread_mutex_lock(&b->lock);
		for (struct tp_conn *c = b->head; c; c = c->id_next) {
			if (c->id == id && conn_usable(c)) {
				found = c;
				*owner = c->owner;
				*found_id = c->id;
				break;
			}
		}
		pthread_mutex_unlock(&b->lock);
	}
	if (!found && peer) {
		struct tp_bucket *b = bucket_by_peer(t, peer);
		pthread_mutex_lock(&b->lock);
		for (struct tp_conn *c = b->head; c; c = c->peer_next) {
			if (tp_addr_equal(&c->peer, peer) && conn_usable(c)) {
				found = c;
				*owner = c->owner;
				*found_id = c->id;
				break;
			}
		}
		pthread_mutex_unlock(&b->lock);
	}
	return found;
}

bool tp_conn_alive(struct tp_table *t, uint32_t conn_id)
{
	unsigned owner;
	uint32_t id;

	return conn_id && table_find(t, conn_id, NULL, &owner, &id) != NULL;
}

/* Under c's by-id bucket lock, or by its owner once it is out of the table: exactly one
 * caller gives its source's count back. */
static void conn_trust(struct tp_table *t, struct tp_conn *c)
{
	if (!atomic_exchange(&c->trusted, true) && c->src_counted)
		tp_src_release(t, &c->peer, time(NULL));
}

void tp_conn_hold(struct tp_table *t, uint32_t conn_id, int64_t until)
{
	struct tp_bucket *b = bucket_by_id(t, conn_id);

	pthread_mutex_lock(&b->lock);
	for (struct tp_conn *c = b->head; c; c = c->id_next) {
		if (c->id == conn_id) {
			if (atomic_load(&c->hold_until) < until)
				atomic_store(&c->hold_until, until);
			conn_trust(t, c); /* a registration relies on it: it is trusted */
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

void tp_conn_mark_trusted(struct tp_table *t, uint32_t conn_id)
{
	struct tp_bucket *b;

	if (!conn_id)
		return; /* UDP */
	b = bucket_by_id(t, conn_id);
	pthread_mutex_lock(&b->lock);
	for (struct tp_conn *c = b->head; c; c = c->id_next) {
		if (c->id == conn_id) {
			conn_trust(t, c);
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
}

/* The graveyard's job: the only place a connection's memory and socket are released. */
static void conn_free_job(struct worker *w, struct wjob *job)
{
	struct tp_conn *c = (struct tp_conn *)job;

	(void)w;
	event_free(c->ev);
	evbuffer_free(c->wbuf);
	close(c->fd);
	free(c->rbuf);
	free(c->notices);
	free(c);
}

/* Queued messages that left for the kernel: their senders need not hear of them any more. */
static void notices_drop_sent(struct tp_conn *c)
{
	unsigned k = 0;

	for (unsigned i = 0; i < c->nnotices; i++) {
		if (c->notices[i].end > c->sent_total)
			c->notices[k++] = c->notices[i];
	}
	c->nnotices = k;
}

/* The message that ends at c->queued_total waits in the queue: its sender hears if it is lost. */
static int notice_add(struct tp_conn *c, unsigned origin, uint64_t notify)
{
	if (c->nnotices == c->capnotices) {
		unsigned ncap = c->capnotices ? c->capnotices * 2 : 4;
		struct tp_notice *nn = realloc(c->notices, ncap * sizeof(*nn));
		if (!nn)
			return ENOMEM;
		c->notices = nn;
		c->capnotices = ncap;
	}
	c->notices[c->nnotices++] =
	    (struct tp_notice){.notify = notify, .end = c->queued_total, .origin = origin};
	return 0;
}

/*
 * Closes c: out of the tables, the worker's list and the loop, its source's
 * count given back; nothing is freed here (the caller, or a callback further
 * up the stack, may still be looking at c and its buffers). Once only.
 */
static void conn_close(struct tp_conn *c, const char *why)
{
	struct worker *w = c->w;
	struct tp_table *t = tp_table_of(w);
	struct tp_worker *tw = w->tp;

	if (c->state == TP_CONN_CLOSED)
		return;
	log_debug("tcp connection %u closed: %s", c->id, why);
	c->state = TP_CONN_CLOSED;
	/* what is still queued never leaves: whoever waits for it hears so now, not at Timer B */
	for (unsigned i = 0; i < c->nnotices; i++)
		tp_lost_post(t, c->notices[i].origin, c->notices[i].notify, ENOTCONN);
	c->nnotices = 0;
	table_remove(t, c);
	conn_trust(t, c); /* out of the table: no other thread can do it now */
	if (c->w_prev)
		c->w_prev->w_next = c->w_next;
	else
		tw->conns = c->w_next;
	if (c->w_next)
		c->w_next->w_prev = c->w_prev;
	c->w_next = c->w_prev = NULL;
	event_del(c->ev);
	atomic_fetch_sub(&t->nconns, 1);
	c->job.fn = conn_free_job;
	worker_defer(w, &c->job);
}

static void conn_event(evutil_socket_t fd, short what, void *arg);

/* Waits for what the state needs: reading while connecting or open, writing while
 * connecting or something is queued. */
static void conn_arm(struct tp_conn *c)
{
	bool want_write = c->state == TP_CONN_CONNECTING || evbuffer_get_length(c->wbuf) > 0;
	short what = EV_PERSIST;

	if (c->state == TP_CONN_CONNECTING || c->state == TP_CONN_OPEN)
		what |= EV_READ;
	if (want_write)
		what |= EV_WRITE;
	if (event_initialized(c->ev) && event_pending(c->ev, EV_READ | EV_WRITE, NULL))
		event_del(c->ev);
	event_assign(c->ev, c->w->base, c->fd, what, conn_event, c);
	event_add(c->ev, NULL);
	c->writing = want_write;
}

/* src_counted: accepted, and counted in its source's entry (tp_src_acquire). */
static struct tp_conn *conn_new(struct worker *w, int fd, const struct tp_addr *peer,
				unsigned listen, bool connecting, bool src_counted)
{
	struct tp_table *t = tp_table_of(w);
	struct tp_worker *tw = w->tp;
	struct tp_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->w = w;
	c->fd = fd;
	c->owner = w->id;
	c->listen = listen;
	c->peer = *peer;
	c->peer.proto = SIP_PROTO_TCP;
	c->state = connecting ? TP_CONN_CONNECTING : TP_CONN_OPEN;
	c->last_rx = time(NULL);
	atomic_init(&c->trusted, false);
	c->accepted = !connecting;
	c->src_counted = src_counted; /* before the table insert publishes c */
	c->wbuf = evbuffer_new();
	c->ev = event_new(w->base, -1, 0, conn_event, c);
	if (!c->wbuf || !c->ev) {
		if (c->wbuf)
			evbuffer_free(c->wbuf);
		if (c->ev)
			event_free(c->ev);
		free(c);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	do {
		c->id = atomic_fetch_add(&t->next_id, 1);
	} while (c->id == 0);
	conn_arm(c);
	c->w_next = tw->conns;
	if (tw->conns)
		tw->conns->w_prev = c;
	tw->conns = c;
	atomic_fetch_add(&t->nconns, 1);
	table_insert(t, c);
	return c;
}

/*
 * Sends data now or queues it. On a failure (the peer reset the connection,
 * or it reads nothing and the queue is full) the connection is closed and the
 * error returned; a closing connection takes nothing more (EPIPE). A message
 * that has to wait in the queue and has a notify is remembered with its
 * sending worker (origin): if the connection closes before it leaves, the
 * sender is told (tp_lost_post).
 */
static int conn_write(struct tp_conn *c, const char *data, size_t len, unsigned origin,
		      uint64_t notify)
{
	struct tp_table *t = tp_table_of(c->w);
	const char *why = NULL;
	size_t limit;
	int err = 0;

	if (!conn_usable(c)) {
		err = EPIPE; /* closing: it takes nothing more, and closes by itself */
		goto out;
	}
	if (c->state == TP_CONN_OPEN && evbuffer_get_length(c->wbuf) == 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				err = errno;
				why = strerror(err);
				goto out;
			}
			n = 0;
		}
		c->queued_total += (uint64_t)n;
		c->sent_total += (uint64_t)n;
		data += n;
		len -= (size_t)n;
		if (len == 0)
			goto out;
	}
	limit = c->accepted && !atomic_load(&c->trusted) ? t->max_queued_unauth : t->max_queued;
	if (evbuffer_get_length(c->wbuf) + len > limit) {
		/* a peer that reads nothing must not eat our memory */
		err = ENOBUFS;
		why = "write queue full (the peer does not read)";
		goto out;
	}
	if (evbuffer_add(c->wbuf, data, len)) {
		err = ENOMEM;
		why = "out of memory";
		goto out;
	}
	c->queued_total += len;
	if (notify && notice_add(c, origin, notify)) {
		err = ENOMEM;
		why = "out of memory";
		goto out;
	}
	if (!c->writing)
		conn_arm(c);
out:
	if (why)
		conn_close(c, why);
	return err;
}

static void conn_flush_queue(struct tp_conn *c)
{
	while (evbuffer_get_length(c->wbuf)) {
		int n = evbuffer_write(c->wbuf, c->fd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			conn_close(c, strerror(errno));
			return;
		}
		if (n == 0)
			return;
		c->sent_total += (uint64_t)n;
		notices_drop_sent(c);
	}
	if (c->state == TP_CONN_CLOSING) {
		conn_close(c, "closed after the reply to a broken message");
		return;
	}
	conn_arm(c);
}

/* Framing is lost: the handler's reply (if any) goes out, then the connection closes. */
static void conn_closing(struct tp_conn *c)
{
	c->state = TP_CONN_CLOSING;
	c->closing_since = time(NULL);
	if (evbuffer_get_length(c->wbuf) == 0)
		conn_close(c, "framing error");
	else
		conn_arm(c); /* writing only */
}

/*
 * Frames and delivers every complete message in the read buffer. The handler
 * may close the connection (a reply that cannot be sent): the loop stops
 * there, and c stays readable until the graveyard frees it.
 */
static void conn_parse(struct tp_conn *c)
{
	struct worker *w = c->w;
	struct tp_worker *tw = w->tp;
	struct tp_src src = {.peer = c->peer, .listen = c->listen, .conn_id = c->id};
	bool broken = false;
	size_t off = 0;

	while (off < c->rlen && c->state == TP_CONN_OPEN) {
		const char *p = c->rbuf + off;
		size_t avail = c->rlen - off;
		int err;

		/* RFC 5626 keep-alive: a double-CRLF ping gets a single-CRLF pong */
		if (avail >= 4 && memcmp(p, "\r\n\r\n", 4) == 0) {
			off += 4;
			conn_write(c, "\r\n", 2, 0, 0); /* closes c on a failure */
			continue;
		}
		if (p[0] == '\r' || p[0] == '\n') {
			if (avail < 4 && memchr(p, '\n', avail) == NULL)
				break;
			off += (p[0] == '\r' && avail >= 2 && p[1] == '\n') ? 2 : 1;
			continue;
		}
		tp_deliver(w, p, avail, SIP_PARSE_STREAM, &src, &tw->msg, &err);
		if (err == EAGAIN)
			break;
		if (err) {
			broken = true;
			break;
		}
		off += (size_t)(tw->msg.buf - p) + tw->msg.len;
	}
	if (c->state == TP_CONN_CLOSED)
		return;
	if (broken) {
		c->rlen = 0;
		c->partial_since = 0;
		conn_closing(c);
		return;
	}
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	if (c->rlen == 0)
		c->partial_since = 0;
	else if (!c->partial_since)
		c->partial_since = time(NULL);
}

static int conn_grow(struct tp_conn *c)
{
	size_t ncap = c->rcap ? c->rcap * 2 : 8192;
	char *nb;

	if (c->rcap >= TCP_MAX_RBUF)
		return EMSGSIZE;
	if (ncap > TCP_MAX_RBUF)
		ncap = TCP_MAX_RBUF;
	nb = realloc(c->rbuf, ncap);
	if (!nb)
		return ENOMEM;
	c->rbuf = nb;
	c->rcap = ncap;
	return 0;
}

static void conn_read(struct tp_conn *c)
{
	for (int round = 0; round < 16 && c->state == TP_CONN_OPEN; round++) {
		ssize_t n;

		if (c->rcap - c->rlen < 2048 && conn_grow(c)) {
			c->w->stats.rx_dropped++;
			conn_close(c, "message too large");
			return;
		}
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
		if (n == 0) {
			conn_close(c, "peer closed");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(c, strerror(errno));
			return;
		}
		c->rlen += (size_t)n;
		c->last_rx = time(NULL);
		conn_parse(c);
		if (c->rlen == c->rcap)
			continue; /* buffer was full: more may be waiting */
		if ((size_t)n < 2048)
			return;
	}
}

static void conn_connected(struct tp_conn *c)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		conn_close(c, strerror(soerr));
		return;
	}
	c->state = TP_CONN_OPEN;
	conn_flush_queue(c);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct tp_conn *c = arg;
	struct worker *w = c->w;

	(void)fd;
	worker_reap(w); /* never c: a closed connection has no event left */
	if (what & EV_WRITE) {
		if (c->state == TP_CONN_CONNECTING)
			conn_connected(c);
		else if (c->state == TP_CONN_OPEN || c->state == TP_CONN_CLOSING)
			conn_flush_queue(c);
	}
	if ((what & EV_READ) && c->state == TP_CONN_OPEN)
		conn_read(c);
	/* nothing to flush: UDP sends outside a receive batch go at once; a closed connection is
	 * freed by the next reap, not here */
}

/* Logs "tcp.max_connections reached" at most once a minute for the whole server. */
static void log_conn_limit(struct tp_table *t, time_t now)
{
	int64_t last = atomic_load(&t->limit_logged);

	if (now - last >= TCP_LIMIT_LOG_S &&
	    atomic_compare_exchange_strong(&t->limit_logged, &last, (int64_t)now))
		log_warn("tcp: connection limit (tcp.max_connections %u) reached: refusing new "
			 "connections (logged once a minute)",
			 t->srv->cfg.tcp_max_connections);
}

int tp_tcp_adopt(struct worker *w, int fd, const struct tp_addr *peer, unsigned listen,
		 uint32_t *id)
{
	struct tp_table *t = tp_table_of(w);
	unsigned per_source = t->srv->cfg.tcp_max_per_source;
	time_t now = time(NULL);
	struct tp_conn *c;
	int err = 0;

	if (atomic_load(&t->nconns) >= t->srv->cfg.tcp_max_connections) {
		w->stats.rx_dropped++;
		log_conn_limit(t, now);
		err = EMFILE;
		goto out;
	}
	if (per_source && (err = tp_src_acquire(t, peer, per_source, now))) {
		w->stats.rx_dropped++;
		goto out;
	}
	c = conn_new(w, fd, peer, listen, false, per_source != 0);
	if (!c) {
		if (per_source)
			tp_src_release(t, peer, now);
		err = ENOMEM;
		goto out;
	}
	if (id)
		*id = c->id;
out:
	if (err)
		close(fd); /* refused: the peer sees the connection closed at once */
	return err;
}

static void tcp_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct worker *w = arg;
	unsigned listen = 0;

	(void)what;
	for (unsigned i = 0; i < TP_MAX_LISTEN; i++) {
		if (w->tp->tcp_fd[i] == lfd) {
			listen = i;
			break;
		}
	}
	for (int n = 0; n < 64; n++) {
		struct tp_addr peer = {.proto = SIP_PROTO_TCP, .len = sizeof(peer.u)};
		int fd = accept4(lfd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("tcp accept: %s", strerror(errno));
			return;
		}
		tp_tcp_adopt(w, fd, &peer, listen, NULL);
	}
}

int tp_tcp_open_listener(struct worker *w, unsigned li)
{
	const struct tp_listen *l = &tp_table_of(w)->listen[li];
	struct tp_worker *tw = w->tp;
	int one = 1, fd, err;

	fd = socket(l->addr.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (l->addr.u.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, &l->addr.u.sa, l->addr.len) < 0 || listen(fd, 1024) < 0) {
		err = errno;
		log_err("tcp listen %s:%u: %s", l->host, l->port, strerror(err));
		close(fd);
		return err;
	}
	tw->tcp_fd[li] = fd;
	tw->tcp_ev[li] = event_new(w->base, fd, EV_READ | EV_PERSIST, tcp_accept, w);
	if (!tw->tcp_ev[li])
		return ENOMEM;
	return event_add(tw->tcp_ev[li], NULL) ? EIO : 0;
}

static int conn_open(struct worker *w, const struct tp_dest *d, struct tp_conn **out)
{
	struct tp_table *t = tp_table_of(w);
	int li = tp_listen_pick(t, SIP_PROTO_TCP, d->peer.u.sa.sa_family);
	int fd;

	if (atomic_load(&t->nconns) >= t->srv->cfg.tcp_max_connections) {
		log_conn_limit(t, time(NULL));
		return EMFILE;
	}
	fd = socket(d->peer.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	if (connect(fd, &d->peer.u.sa, d->peer.len) < 0 && errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		return err;
	}
	/* ours, not a stranger's: not counted per source (but it earns trust like any other) */
	*out = conn_new(w, fd, &d->peer, li < 0 ? 0 : (unsigned)li, true, false);
	if (!*out) {
		close(fd);
		return ENOMEM;
	}
	return 0;
}

struct send_job {
	struct wjob job;
	uint32_t conn_id;
	unsigned origin; /* the worker that sent it (and hears if it is lost) */
	struct tp_dest dest;
	size_t len;
	char data[];
};

static int tcp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len,
		    unsigned origin);

static void send_job_run(struct worker *w, struct wjob *job)
{
	struct send_job *sj = (struct send_job *)job;
	struct tp_table *t = tp_table_of(w);
	unsigned owner = w->id;
	uint32_t id;
	struct tp_conn *c = table_find(t, sj->conn_id, NULL, &owner, &id);
	int err = 0;

	if (c && owner == w->id) {
		err = conn_write(c, sj->data, sj->len, sj->origin,
				 sj->dest.notify); /* closes c on a failure */
	} else if (!w->srv->stopping) {
		/* gone or closing in the meantime: reuse or open another one from here, unless
		 * that connection was the only way */
		sj->dest.conn_id = 0;
		err = sj->dest.conn_only ? ENOTCONN
					 : tcp_send(w, &sj->dest, sj->data, sj->len, sj->origin);
	}
	if (err)
		tp_lost_post(t, sj->origin, sj->dest.notify, err);
	free(sj);
}

int tp_tcp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len)
{
	return tcp_send(w, d, data, len, w->id);
}

/* A send from worker origin (w itself, or the worker that posted it here). */
static int tcp_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len,
		    unsigned origin)
{
	struct tp_table *t = tp_table_of(w);
	unsigned owner = w->id;
	uint32_t id = 0;
	struct tp_conn *c = table_find(t, d->conn_id, d->conn_only ? NULL : &d->peer, &owner, &id);
	int err;

	if (!c && d->conn_only)
		return ENOTCONN; /* its connection was the only way, and it is gone */
	if (c && owner != w->id) {
		struct send_job *sj = malloc(sizeof(*sj) + len);
		if (!sj)
			return ENOMEM;
		sj->job.fn = send_job_run;
		sj->conn_id = id;
		sj->origin = origin;
		sj->dest = *d;
		sj->len = len;
		memcpy(sj->data, data, len);
		w->stats.posted++;
		worker_post(t->srv->workers[owner], &sj->job);
		return 0;
	}
	if (!c) {
		err = conn_open(w, d, &c);
		if (err)
			return err;
	}
	return conn_write(c, data, len, origin, d->notify); /* closes c on a failure */
}

void tp_tcp_housekeeping(struct worker *w, time_t now)
{
	const struct cfg *cfg = &w->srv->cfg;
	unsigned idle = cfg->tcp_idle_timeout_s;
	unsigned unauth =
	    cfg->tcp_unauth_idle_timeout_s < idle ? cfg->tcp_unauth_idle_timeout_s : idle;
	struct tp_conn *c = w->tp->conns, *next;

	for (; c; c = next) {
		bool trusted = atomic_load(&c->trusted);

		next = c->w_next; /* conn_close unlinks c only */
		if (c->state == TP_CONN_CLOSING) {
			if (now - c->closing_since > TCP_CLOSING_TIMEOUT_S)
				conn_close(c, "the reply to a broken message was never read");
		} else if (c->partial_since && now - c->partial_since > TCP_PARTIAL_TIMEOUT_S) {
			conn_close(c, "incomplete message timed out");
		} else if (atomic_load(&c->hold_until) >= now) {
			continue; /* a registration relies on it */
		} else if (now - c->last_rx > (trusted ? idle : unauth)) {
			conn_close(c, trusted ? "idle" : "idle, and never authenticated");
		}
	}
}

void tp_tcp_close_all(struct worker *w)
{
	while (w->tp->conns)
		conn_close(w->tp->conns, "shutdown");
}
