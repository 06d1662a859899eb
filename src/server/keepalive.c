/*
 * keepalive.c - NAT keep-alives (docs/nat.md). A phone behind NAT is
 * reached through the binding its router made for its REGISTER; a UDP
 * binding is forgotten after 30 s to a few minutes without traffic, and
 * then calls to it never arrive. Every nat.keepalive_interval seconds,
 * worker 0 sends one OPTIONS to each registered contact behind NAT (a
 * private Contact host other than the REGISTER's source, over UDP, with no
 * Path: loc_nat_some), to the address the REGISTER came from, from our
 * listening socket the phone sent it to: the router sees traffic on the
 * binding and keeps it.
 *
 * What a stranger can make us send: only registered contacts are pinged
 * (with auth on, a registration is authenticated), one OPTIONS per contact
 * per round, never retransmitted (txn_cli no_retransmit), answers counted
 * only from the address pinged (strict_source), at most nat.keepalive_max
 * per round and in flight (a round cut at the cap is logged and counted; the
 * next one goes on from where it stopped). Answers and silences are counted
 * (worker statistics); a contact that stops answering is not marked
 * unreachable (not done: its registration expires as usual).
 */
#include "server/keepalive.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/buf.h"
#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/location.h"
#include "txn/txn.h"

#define KA_BATCH 64

struct keepalive {
	struct server *srv;
	struct worker *w;
	struct event *timer;
	unsigned cursor; /* in the location table: where the next round goes on */
	size_t inflight;
	uint64_t seq;
	struct loc_nat_binding batch[KA_BATCH];
};

struct ka_job {
	struct wjob base;
	struct server *srv;
};

static void ka_response(struct txn_cli *t, struct sip_msg *resp)
{
	if (resp->status >= 200)
		t->w->stats.nat_keepalive_answered++; /* any answer: the binding works */
}

static void ka_timeout(struct txn_cli *t, int err)
{
	(void)err;
	t->w->stats.nat_keepalive_unanswered++;
}

static void ka_terminated(struct txn_cli *t)
{
	struct keepalive *ka = t->w->srv->keepalive;

	if (ka && ka->inflight)
		ka->inflight--;
}

static const struct txn_cli_ops ka_ops = {
    .response = ka_response,
    .timeout = ka_timeout,
    .terminated = ka_terminated,
};

static void ka_send(struct keepalive *ka, const struct loc_nat_binding *b)
{
	struct worker *w = ka->w;
	const struct tp_listen *l;
	struct txn_cli *t;
	struct tp_dest dest;
	char store[1024];
	struct buf msg;

	memset(&dest, 0, sizeof(dest));
	dest.peer = b->received;
	dest.listen = tp_listen_pick(ka->srv->tp, SIP_PROTO_UDP, b->received.u.sa.sa_family);
	if (dest.listen < 0 || !(l = tp_listen_get(ka->srv->tp, (unsigned)dest.listen)))
		return;
	if (txn_cli_create(w, SIP_OPTIONS, 0, &ka_ops, NULL, &t))
		return;
	t->strict_source = true; /* only the phone's own answer counts */
	t->no_retransmit = true; /* one datagram per contact and round, never more */
	buf_init_fixed(&msg, store, sizeof(store));
	buf_printf(&msg,
		   "OPTIONS %s SIP/2.0\r\n"
		   "Via: SIP/2.0/UDP %s;branch=%.*s\r\n"
		   "Max-Forwards: 70\r\n"
		   "From: <sip:keepalive@%s>;tag=%016llx\r\n"
		   "To: <%s>\r\n"
		   "Call-ID: keepalive-%016llx@switchboard\r\n"
		   "CSeq: %llu OPTIONS\r\n"
		   "User-Agent: %s\r\n"
		   "Content-Length: 0\r\n\r\n",
		   b->uri, l->advertise, (int)t->branch_len, t->branch, l->advertise,
		   (unsigned long long)worker_next_id(w), b->uri,
		   (unsigned long long)worker_next_id(w), (unsigned long long)++ka->seq,
		   ka->srv->cfg.server_name);
	if (msg.err) {
		txn_cli_abandon(t);
		return;
	}
	ka->inflight++; /* ka_terminated gives it back, also when the send failed */
	w->stats.nat_keepalive_sent++;
	txn_cli_send(t, &dest, msg.p, msg.len);
}

static void ka_tick(evutil_socket_t fd, short what, void *arg)
{
	struct keepalive *ka = arg;
	size_t max = ka->srv->cfg.nat_keepalive_max, sent = 0, n;
	int64_t now = (int64_t)time(NULL);
	bool wrapped = false;

	(void)fd;
	(void)what;
	/* a round goes to the table's end: after a round cut at the cap, the next one goes on
	 * from there (so each contact is pinged at least every second interval) */
	while (!wrapped) {
		size_t room = max > sent + ka->inflight ? max - sent - ka->inflight : 0;
		if (room > KA_BATCH)
			room = KA_BATCH;
		if (room == 0) {
			ka->w->stats.nat_keepalive_capped++;
			log_warn(
			    "NAT keep-alives: round cut at nat.keepalive_max (%zu); it goes on "
			    "from there next time",
			    max);
			break;
		}
		n = loc_nat_some(ka->srv->loc, now, &ka->cursor, &wrapped, ka->batch, room);
		for (size_t i = 0; i < n; i++)
			ka_send(ka, &ka->batch[i]);
		sent += n;
	}
	if (sent)
		log_debug("NAT keep-alives: %zu OPTIONS sent", sent);
}

static void ka_begin(struct worker *w, struct wjob *job)
{
	struct server *srv = ((struct ka_job *)job)->srv;
	struct keepalive *ka = srv->keepalive;
	struct timeval iv = {(time_t)srv->cfg.nat_keepalive_interval_s, 0};

	free(job);
	if (!ka || atomic_load(&srv->stopping))
		return;
	ka->w = w;
	ka->timer = event_new(w->base, -1, EV_PERSIST, ka_tick, ka);
	if (ka->timer)
		event_add(ka->timer, &iv);
}

int keepalive_start(struct server *srv)
{
	struct keepalive *ka;
	struct ka_job *job;

	if (!srv->cfg.nat_keepalive_interval_s)
		return 0;
	ka = calloc(1, sizeof(*ka));
	job = calloc(1, sizeof(*job));
	if (!ka || !job) {
		free(ka);
		free(job);
		return ENOMEM;
	}
	ka->srv = srv;
	srv->keepalive = ka;
	job->base.fn = ka_begin;
	job->srv = srv;
	worker_post(srv->workers[0], &job->base);
	log_info("NAT keep-alives every %u s, at most %u per round",
		 srv->cfg.nat_keepalive_interval_s, srv->cfg.nat_keepalive_max);
	return 0;
}

void keepalive_destroy(struct server *srv)
{
	struct keepalive *ka = srv->keepalive;

	if (!ka)
		return;
	srv->keepalive = NULL; /* transactions freed later see none */
	if (ka->timer)
		event_free(ka->timer);
	free(ka);
}
