/*
 * server.c - start-up and shut-down of the whole server, and the main
 * thread's loop: signals and the once-a-second housekeeping (expiring
 * registrations).
 *
 * Start-up order matters: the shared tables exist before the database
 * thread loads the stored bindings into them, and the workers (which bind
 * the sockets) start last, so no message arrives before the server can
 * handle it.
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/log.h"
#include "request/overload.h"
#include "server/keepalive.h"
#include "proxy/probe.h"
#include "proxy/proxy.h"
#include "server/calls.h"
#include "server/media.h"
#include "server/ctl.h"
#include "server/dbq.h"
#include "server/internal.h"
#include "services/home.h"
#include "services/pidf.h"
#include "server/worker.h"
#include "services/auth.h"
#include "services/cdr.h"
#include "services/flood.h"
#include "services/rules.h"
#include "services/location.h"
#include "services/users.h"
#include "transport/tport.h"
#include "txn/txn.h"

#define SRV_USER_CACHE 200000

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;

	(void)what;
	log_info("signal %d: shutting down", (int)sig);
	atomic_store(&s->stopping, true);
	event_base_loopbreak(s->main_base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	size_t n;

	(void)fd;
	(void)what;
	n = loc_expire_some(s->loc, (int64_t)time(NULL), 16);
	if (n)
		log_debug("%zu registrations expired", n);
	calls_tick(s); /* session timers, dialog.timeout */
}

static int make_auth(struct server *s, char *err, size_t errlen)
{
	enum auth_alg algs[CFG_MAX_ALGOS];
	size_t n = s->cfg.nalgorithms;
	const char *secret = s->cfg.secret;
	int rc;

	for (size_t i = 0; i < n; i++)
		algs[i] = s->cfg.algorithms[i] == CFG_ALG_SHA256 ? AUTH_ALG_SHA256 : AUTH_ALG_MD5;
	rc = auth_create(secret[0] ? (const unsigned char *)secret : NULL, strlen(secret),
			 s->cfg.nonce_ttl_s, algs, n, &s->auth);
	if (rc)
		snprintf(err, errlen, "digest authentication setup failed: %s", strerror(rc));
	return rc;
}

static unsigned worker_count(const struct cfg *c)
{
	long n = c->workers ? (long)c->workers : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > SRV_MAX_WORKERS)
		n = SRV_MAX_WORKERS;
	return (unsigned)n;
}

static void log_listeners(struct server *s)
{
	for (unsigned i = 0; i < tp_listen_count(s->tp); i++) {
		const struct tp_listen *l = tp_listen_get(s->tp, i);
		log_info("listening on %s:%s:%u", l->proto == SIP_PROTO_TCP ? "tcp" : "udp",
			 l->host, l->port);
	}
	if (s->cfg.ndomains == 0)
		log_info("no domain configured: the server's own addresses are its domain");
	for (size_t i = 0; i < s->cfg.ndomains; i++)
		log_info("serving domain %s", s->cfg.domains[i]);
}

int server_start(struct server *s, const struct cfg *cfg, char *err, size_t errlen)
{
	struct timeval tick = {1, 0};
	int rc;

	s->cfg = *cfg;
	atomic_init(&s->stopping, false);
	log_set_level(cfg->log_level);
	if (getrandom(&s->seed, sizeof(s->seed), 0) != sizeof(s->seed))
		s->seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	s->nworkers = worker_count(cfg);
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();

	if ((rc = loc_create(s->seed, &s->loc)) ||
	    (rc = users_create(s, SRV_USER_CACHE, &s->users)) ||
	    (rc = txn_table_create(s->seed, &s->txns))) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = make_auth(s, err, errlen)))
		return rc;
	if (cfg->flood_enabled) {
		struct flood_conf fc;
		flood_conf_from_cfg(&fc, cfg);
		if ((rc = flood_create(&fc, &s->flood))) {
			snprintf(err, errlen, "out of memory");
			return rc;
		}
	}
	if ((rc = tp_table_create(s, proxy_on_message, &s->tp, err, errlen)))
		return rc;
	tp_on_lost(s->tp, txn_send_lost); /* a request that never left fails its transaction now */
	if ((rc = home_create(s, &s->home))) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	pidf_init();
	s->pipeline = calloc(1, sizeof(*s->pipeline));
	if (!s->pipeline || (rc = server_pipeline_build(s, s->pipeline))) {
		snprintf(err, errlen, "cannot assemble the request pipeline");
		return s->pipeline ? rc : ENOMEM;
	}
	if ((rc = rules_slot_create(&s->rules))) {
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	if ((rc = calls_create(s))) {
		snprintf(err, errlen, "dialog table: %s", strerror(rc));
		return rc;
	}
	if (cfg->cdr_enabled) {
		struct cdr_conf cc = {.keep_days = cfg->cdr_keep_days, .max_calls = cfg->dlg_max};
		if ((rc = cdr_create(&cc, &s->cdr)) || (rc = cdr_attach(s->cdr, s->dlg))) {
			snprintf(err, errlen, "billing records: %s", strerror(rc));
			return rc;
		}
	}
	if ((rc = server_media_create(s, err, errlen)))
		return rc;
	/* the database thread publishes the first rules before it says it is ready */
	if ((rc = dbq_create(cfg->db_path, &s->dbq)) || (rc = srv_chores_register(s)) ||
	    (rc = calls_chores(s)) ||
	    (s->cdr && (rc = dbq_on_start(s->dbq, cdr_db_start, s->cdr)))) {
		snprintf(err, errlen, "cannot prepare the database thread: %s", strerror(rc));
		return rc;
	}
	rc = dbq_start(s->dbq, err, errlen);
	if (rc)
		return rc;
	log_info("database %s: %zu registrations loaded", cfg->db_path, loc_count(s->loc));
	for (unsigned i = 0; i < s->nworkers; i++) {
		rc = worker_create(s, i, &s->workers[i]);
		if (rc) {
			snprintf(err, errlen,
				 "cannot start worker %u: %s (is another server listening?)", i,
				 strerror(rc));
			return rc;
		}
		s->workers[i]->suspend_cap = PROXY_MAX_SUSPENDED; /* requests waiting for lookups */
		if ((rc = server_media_attach(s, s->workers[i], err, errlen)))
			return rc;
	}
	s->main_base = event_base_new();
	if (!s->main_base) {
		snprintf(err, errlen, "cannot create the main event loop");
		return ENOMEM;
	}
	s->sig_int = evsignal_new(s->main_base, SIGINT, on_signal, s);
	s->sig_term = evsignal_new(s->main_base, SIGTERM, on_signal, s);
	s->tick_ev = event_new(s->main_base, -1, EV_PERSIST, on_tick, s);
	if (!s->sig_int || !s->sig_term || !s->tick_ev) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	if ((rc = ctl_start(s, &s->ctl, err, errlen)))
		return rc;
	event_add(s->sig_int, NULL);
	event_add(s->sig_term, NULL);
	event_add(s->tick_ev, &tick);
	for (unsigned i = 0; i < s->nworkers; i++) {
		rc = worker_start(s->workers[i]);
		if (rc) {
			snprintf(err, errlen, "cannot start a worker thread: %s", strerror(rc));
			return rc;
		}
	}
	home_start(s);
	if ((rc = probe_start(s))) {
		snprintf(err, errlen, "cannot start gateway probes: %s", strerror(rc));
		return rc;
	}
	if ((rc = keepalive_start(s))) {
		snprintf(err, errlen, "cannot start NAT keep-alives: %s", strerror(rc));
		return rc;
	}
	log_listeners(s);
	log_info("switchboard %s started with %u worker%s", SB_VERSION, s->nworkers,
		 s->nworkers == 1 ? "" : "s");
	return 0;
}

int server_run(struct server *s)
{
	event_base_dispatch(s->main_base);
	return 0;
}

/* What overload control did, when it did anything. */
static void log_overload_stats(struct server *s)
{
	struct ovl_stats t = {0}, o;
	int64_t now = ovl_now();

	for (unsigned i = 0; i < s->nworkers; i++) {
		if (!s->workers[i] || !s->workers[i]->ovl)
			continue;
		ovl_stats_get(s->workers[i]->ovl, now, &o);
		t.samples += o.samples;
		t.shed += o.shed;
		t.dest_shed += o.dest_shed;
		t.overloaded += o.overloaded;
		if (o.max_delay_us > t.max_delay_us)
			t.max_delay_us = o.max_delay_us;
	}
	if (t.overloaded || t.dest_shed)
		log_info(
		    "overload: %llu requests refused, %llu not sent to overloaded servers, "
		    "%.1f s overloaded (worker-intervals), delays measured %llu, largest %.1f ms",
		    (unsigned long long)t.shed, (unsigned long long)t.dest_shed,
		    (double)t.overloaded * OVL_INTERVAL_NS / 1e9, (unsigned long long)t.samples,
		    t.max_delay_us / 1000.0);
}

/* What the workers counted, once at the end (until the admin API shows it live). */
static void log_stats(struct server *s)
{
	struct worker_stats t = {0};

	for (unsigned i = 0; i < s->nworkers; i++) {
		const struct worker *w = s->workers[i];
		if (!w)
			continue;
		t.rx_msgs += w->stats.rx_msgs;
		t.tx_msgs += w->stats.tx_msgs;
		t.rx_bad += w->stats.rx_bad;
		t.rx_dropped += w->stats.rx_dropped;
		t.calls_blocked += w->stats.calls_blocked;
		t.calls_barred += w->stats.calls_barred;
		t.rx_forged += w->stats.rx_forged;
		t.gw_timeouts += w->stats.gw_timeouts;
		t.gw_ring_timeouts += w->stats.gw_ring_timeouts;
		t.suspended += w->stats.suspended;
		t.suspend_refused += w->stats.suspend_refused;
		t.resp_hops += w->stats.resp_hops;
		t.rx_dport_strangers += w->stats.rx_dport_strangers;
		t.nat_alias_added += w->stats.nat_alias_added;
		t.nat_alias_routed += w->stats.nat_alias_routed;
		t.nat_alias_bad += w->stats.nat_alias_bad;
		t.nat_keepalive_sent += w->stats.nat_keepalive_sent;
		t.nat_keepalive_answered += w->stats.nat_keepalive_answered;
		t.nat_keepalive_unanswered += w->stats.nat_keepalive_unanswered;
		t.nat_keepalive_capped += w->stats.nat_keepalive_capped;
	}
	log_info(
	    "messages received %llu, sent %llu, malformed %llu, dropped %llu; calls blocked "
	    "%llu, barred %llu; forged responses dropped %llu; gateway timeouts %llu (failover), "
	    "%llu (ring)",
	    (unsigned long long)t.rx_msgs, (unsigned long long)t.tx_msgs,
	    (unsigned long long)t.rx_bad, (unsigned long long)t.rx_dropped,
	    (unsigned long long)t.calls_blocked, (unsigned long long)t.calls_barred,
	    (unsigned long long)t.rx_forged, (unsigned long long)t.gw_timeouts,
	    (unsigned long long)t.gw_ring_timeouts);
	log_info("requests that waited for a lookup %llu, refused at the per-worker cap %llu",
		 (unsigned long long)t.suspended, (unsigned long long)t.suspend_refused);
	log_info("responses received by a worker other than their transaction's: %llu",
		 (unsigned long long)t.resp_hops);
	if (s->cfg.udp_dialog_port)
		log_info("out-of-dialog requests dropped on the dialog port: %llu",
			 (unsigned long long)t.rx_dport_strangers);
	log_info("NAT: contacts aliased %llu, in-dialog requests routed by alias %llu, bad aliases "
		 "ignored %llu",
		 (unsigned long long)t.nat_alias_added, (unsigned long long)t.nat_alias_routed,
		 (unsigned long long)t.nat_alias_bad);
	log_info("NAT keep-alives: sent %llu, answered %llu, unanswered %llu, rounds cut at the "
		 "cap %llu",
		 (unsigned long long)t.nat_keepalive_sent,
		 (unsigned long long)t.nat_keepalive_answered,
		 (unsigned long long)t.nat_keepalive_unanswered,
		 (unsigned long long)t.nat_keepalive_capped);
	log_overload_stats(s);
}

void server_destroy(struct server *s)
{
	atomic_store(&s->stopping, true);
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (s->workers[i] && s->workers[i]->thread)
			worker_stop(s->workers[i]);
	}
	/*
	 * No worker runs now. The database thread finishes its jobs (whose
	 * answers land in the stopped workers' inboxes) and writes what is
	 * still dirty; then the workers drain their inboxes and go.
	 */
	ctl_stop(s->ctl);
	s->ctl = NULL;
	probe_destroy(s);
	keepalive_destroy(s);
	home_stop(s->home); /* its last writes go to the database thread before that stops */
	dbq_destroy(s->dbq);
	s->dbq = NULL;
	srv_chores_destroy(s->chores);
	s->chores = NULL;
	log_stats(s);
	for (unsigned i = 0; i < s->nworkers; i++) {
		server_media_detach(s, s->workers[i]);
		worker_destroy(s->workers[i]);
		s->workers[i] = NULL;
	}
	server_media_destroy(s);
	if (s->tick_ev)
		event_free(s->tick_ev);
	if (s->sig_int)
		event_free(s->sig_int);
	if (s->sig_term)
		event_free(s->sig_term);
	if (s->main_base)
		event_base_free(s->main_base);
	tp_table_destroy(s->tp);
	txn_table_destroy(s->txns);
	users_destroy(s->users);
	loc_destroy(s->loc);
	auth_destroy(s->auth);
	rules_slot_destroy(s->rules);
	home_destroy(s->home);
	flood_destroy(s->flood);
	free(s->pipeline);
	calls_destroy(s);
	cdr_destroy(s->cdr);
	s->cdr = NULL;
	libevent_global_shutdown();
}
