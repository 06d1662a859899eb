/*
 * probe.c - OPTIONS probes of the gateways, every dialplan.probe_interval
 * seconds, as ordinary client transactions of worker 0 (so retransmission
 * and Timer F come from the transaction layer).
 *
 * Gateways given by name are resolved (RFC 3263, through the worker's
 * c-ares resolver and its cache) before each probe.
 *
 * Any final answer but 503 means the gateway is alive (404 or 405 from a
 * gateway that does not serve OPTIONS still proves it runs); a timeout, a
 * transport error or a 503 marks it down. Answers count only from the
 * address and port the probe went to (txn_cli strict_source). A gateway that is down is probed
 * like the others and comes back with its first answer.
 *
 * The interval is the rules' (dialplan.probe_interval, or `switchboard route
 * set probe_interval=N` on the running server): each new set of rules
 * re-arms the timer. With probing off, no gateway stays marked down (nothing
 * would bring it back), and the same holds for one with probe: no.
 *
 * A call whose gateway sent no provisional response in time (fwd.c) marks
 * a probed gateway down too; its next answered probe brings it back.
 *
 * The prober holds its own reference to the routing rules, so the gateway
 * indexes of the probes in flight stay valid; when the CLI changes the
 * rules, the probes in flight are dropped and every gateway is probed at
 * once against the new table (which kept the state of those that stayed).
 */
#include "proxy/probe.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/buf.h"
#include "core/log.h"
#include "dns/dns.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/dialplan.h"
#include "services/rules.h"
#include "txn/txn.h"

struct prober;

/* The callback argument of a gateway's DNS lookup (kept in the prober: no allocation). */
struct probe_dns {
	struct prober *pr;
	unsigned gw;
};

struct prober {
	struct server *srv;
	struct worker *w;
	struct event *timer;
	struct rules_view view; /* the rules the indexes below refer to */
	struct dp *dp;		/* theirs; NULL when they have no gateway */
	unsigned interval_s;	/* the timer's period now; 0 = not armed */
	struct txn_cli *inflight[DP_MAX_GATEWAYS];
	/* gateways given by name are resolved (RFC 3263) before each probe */
	struct dns_query *dq[DP_MAX_GATEWAYS];
	bool resolving[DP_MAX_GATEWAYS];
	struct probe_dns dns_arg[DP_MAX_GATEWAYS];
	uint64_t seq;
};

struct start_job {
	struct wjob base;
	struct server *srv;
};

static void probe_result(struct prober *pr, unsigned gw, bool up)
{
	struct dp *dp = pr->dp;
	const struct dp_gateway *g = dp ? dp_gateway(dp, gw) : NULL;

	if (!g)
		return;
	if (dp_gateway_is_up(dp, gw) != up)
		log_warn("gateway %s (%s) is %s", g->name, g->host,
			 up ? "up again" : "down: skipped until it answers");
	dp_gateway_set_up(dp, gw, up);
}

/* t->tu is the gateway index + 1, so a probe needs no allocation of its own. */
static unsigned probe_gw(const struct txn_cli *t)
{
	return (unsigned)((uintptr_t)t->tu - 1);
}

static void probe_response(struct txn_cli *t, struct sip_msg *resp)
{
	struct prober *pr = t->w->srv->prober;

	if (!pr || resp->status < 200)
		return;
	/* answered: the next tick may probe again while this one lingers (Timer K) */
	if (pr->inflight[probe_gw(t)] == t)
		pr->inflight[probe_gw(t)] = NULL;
	probe_result(pr, probe_gw(t), resp->status != 503);
}

static void probe_timeout(struct txn_cli *t, int err)
{
	struct prober *pr = t->w->srv->prober;

	(void)err;
	if (pr)
		probe_result(pr, probe_gw(t), false);
}

static void probe_terminated(struct txn_cli *t)
{
	struct prober *pr = t->w->srv->prober;

	if (pr && pr->inflight[probe_gw(t)] == t)
		pr->inflight[probe_gw(t)] = NULL;
}

static const struct txn_cli_ops probe_ops = {
    .response = probe_response,
    .timeout = probe_timeout,
    .terminated = probe_terminated,
};

static void probe_uri(const struct dp_gateway *g, char *uri, size_t len)
{
	bool v6 = strchr(g->host, ':') != NULL;
	char port[8] = "";

	if (g->port)
		snprintf(port, sizeof(port), ":%u", g->port);
	snprintf(uri, len, "sip:%s%s%s%s%s", v6 ? "[" : "", g->host, v6 ? "]" : "", port,
		 g->tcp ? ";transport=tcp" : "");
}

static int probe_dest(struct prober *pr, const struct dns_target *dt, struct tp_dest *d)
{
	memset(d, 0, sizeof(*d));
	if (tp_addr_from_sockaddr(&d->peer, dt->proto, &dt->addr, dt->addrlen))
		return EAFNOSUPPORT;
	d->listen = tp_listen_pick(pr->srv->tp, d->peer.proto, d->peer.u.sa.sa_family);
	return d->listen < 0 ? EAFNOSUPPORT : 0;
}

static void probe_send(struct prober *pr, unsigned gw, const char *uri, const struct dns_target *dt)
{
	struct worker *w = pr->w;
	const struct tp_listen *l;
	struct txn_cli *t;
	struct tp_dest dest;
	char store[1024];
	struct buf b;

	if (pr->inflight[gw] || probe_dest(pr, dt, &dest))
		return;
	l = tp_listen_get(pr->srv->tp, (unsigned)dest.listen);
	if (!l || txn_cli_create(w, SIP_OPTIONS, 0, &probe_ops, (void *)(uintptr_t)(gw + 1), &t))
		return;
	/* only the gateway itself says whether it is up: an answer from any other address or
	 * port is dropped by the transaction layer (a forged 503 must not take it down) */
	t->strict_source = true;
	buf_init_fixed(&b, store, sizeof(store));
	buf_printf(&b,
		   "OPTIONS %s SIP/2.0\r\n"
		   "Via: SIP/2.0/%s %s;branch=%.*s\r\n"
		   "Max-Forwards: 70\r\n"
		   "From: <sip:switchboard@%s>;tag=%016llx\r\n"
		   "To: <%s>\r\n"
		   "Call-ID: probe-%016llx-%u@switchboard\r\n"
		   "CSeq: %llu OPTIONS\r\n"
		   "User-Agent: %s\r\n"
		   "Content-Length: 0\r\n\r\n",
		   uri, sip_proto_name(l->proto), l->advertise, (int)t->branch_len, t->branch,
		   l->advertise, (unsigned long long)worker_next_id(w), uri,
		   (unsigned long long)worker_next_id(w), gw, (unsigned long long)++pr->seq,
		   pr->srv->cfg.server_name);
	if (b.err || txn_cli_send(t, &dest, b.p, b.len)) {
		if (!b.err)
			return; /* txn_cli_send ended the transaction: its timeout callback said
				   "down" */
		txn_cli_abandon(t);
		return;
	}
	pr->inflight[gw] = t;
}

static void probe_dns_done(void *arg, int err, const struct dns_target *targets, size_t n)
{
	struct probe_dns *pd = arg;
	struct prober *pr = pd->pr;
	char uri[200];

	pr->resolving[pd->gw] = false;
	pr->dq[pd->gw] = NULL;
	if (err || n == 0) {
		probe_result(pr, pd->gw, false); /* a name that does not resolve is no gateway */
		return;
	}
	if (!pr->dp || !dp_gateway(pr->dp, pd->gw))
		return;
	probe_uri(dp_gateway(pr->dp, pd->gw), uri, sizeof(uri));
	probe_send(pr, pd->gw, uri, &targets[0]);
}

static void probe_one(struct prober *pr, unsigned gw)
{
	const struct dp_gateway *g = dp_gateway(pr->dp, gw);
	struct dns_target dt;
	struct dns_query *q = NULL;
	struct sip_uri u;
	char uri[200];

	if (!g->probe || pr->inflight[gw] || pr->resolving[gw])
		return;
	probe_uri(g, uri, sizeof(uri));
	if (sip_uri_parse(sv_cstr(uri), &u))
		return;
	if (dns_resolve_numeric(&u, &dt) == 0) {
		probe_send(pr, gw, uri, &dt);
		return;
	}
	pr->dns_arg[gw] = (struct probe_dns){pr, gw};
	pr->resolving[gw] = true;
	if (dns_resolve_uri(pr->w->dns, &u, probe_dns_done, &pr->dns_arg[gw], &q)) {
		pr->resolving[gw] = false;
		return;
	}
	if (pr->resolving[gw])
		pr->dq[gw] = q; /* still running: kept to cancel at the end */
}

/* Drops the probes in flight: their gateway indexes belong to older rules. */
static void probe_forget(struct prober *pr)
{
	for (unsigned i = 0; i < DP_MAX_GATEWAYS; i++) {
		if (pr->resolving[i] && pr->dq[i])
			dns_cancel(pr->dq[i]);
		if (pr->inflight[i])
			txn_cli_abandon(pr->inflight[i]);
		pr->resolving[i] = false;
		pr->dq[i] = NULL;
		pr->inflight[i] = NULL;
	}
}

/* The period the rules ask for: the timer re-armed when it changed. */
static void probe_rearm(struct prober *pr, unsigned interval_s)
{
	struct timeval iv = {(time_t)interval_s, 0};

	if (interval_s == pr->interval_s)
		return;
	if (interval_s)
		event_add(pr->timer, &iv); /* a pending timer is rescheduled */
	else
		event_del(pr->timer);
	if (pr->view.gen > 1 || pr->interval_s) {
		if (interval_s)
			log_info("gateway probes every %u s", interval_s);
		else
			log_info("gateway probes off");
	}
	pr->interval_s = interval_s;
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
	struct prober *pr = arg;
	uint64_t gen = pr->view.gen;
	struct rules *r = rules_view_get(&pr->view, pr->srv->rules);
	unsigned interval;

	(void)fd;
	(void)what;
	if (pr->view.gen != gen || !pr->dp) {
		probe_forget(pr);
		pr->dp = rules_dp(r);
	}
	interval = dp_probe_interval_s(pr->dp);
	probe_rearm(pr, interval);
	for (unsigned i = 0; pr->dp && i < dp_gateway_count(pr->dp); i++) {
		if (!interval || !dp_gateway(pr->dp, i)->probe) {
			/* not probed: nothing would ever bring it back up */
			if (!dp_gateway_is_up(pr->dp, i))
				probe_result(pr, i, true);
			continue;
		}
		probe_one(pr, i);
	}
}

static void probe_begin(struct worker *w, struct wjob *job)
{
	struct server *srv = ((struct start_job *)job)->srv;
	struct prober *pr = srv->prober;

	free(job);
	if (!pr || atomic_load(&srv->stopping))
		return;
	pr->w = w;
	pr->timer = event_new(w->base, -1, EV_PERSIST, probe_tick, pr);
	if (!pr->timer)
		return;
	/* at once: a gateway down at start is known before the first call; arms the timer */
	probe_tick(-1, 0, pr);
}

/* On worker 0: the rules changed; probe the new table now. */
static void probe_changed_job(struct worker *w, struct wjob *job)
{
	struct server *srv = ((struct start_job *)job)->srv;

	(void)w;
	free(job);
	if (!atomic_load(&srv->stopping) && srv->prober && srv->prober->timer)
		probe_tick(-1, 0, srv->prober);
}

void probe_rules_changed(struct server *srv)
{
	struct start_job *job;

	if (!srv->prober || !(job = calloc(1, sizeof(*job))))
		return;
	job->base.fn = probe_changed_job;
	job->srv = srv;
	worker_post(srv->workers[0], &job->base);
}

int probe_start(struct server *srv)
{
	struct prober *pr;
	struct start_job *job;

	/* even with no gateway yet, or probing off: the CLI may change either on the running
	 * server */
	pr = calloc(1, sizeof(*pr));
	job = calloc(1, sizeof(*job));
	if (!pr || !job) {
		free(pr);
		free(job);
		return ENOMEM;
	}
	pr->srv = srv;
	srv->prober = pr;
	job->base.fn = probe_begin;
	job->srv = srv;
	worker_post(srv->workers[0], &job->base);
	return 0;
}

void probe_destroy(struct server *srv)
{
	struct prober *pr = srv->prober;

	if (!pr)
		return;
	srv->prober = NULL; /* callbacks from transactions freed later see no prober */
	for (unsigned i = 0; i < DP_MAX_GATEWAYS; i++) {
		if (pr->resolving[i] && pr->dq[i])
			dns_cancel(pr->dq[i]);
	}
	rules_view_release(&pr->view);
	if (pr->timer)
		event_free(pr->timer);
	free(pr);
}
