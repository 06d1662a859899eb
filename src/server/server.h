/*
 * server.h - the running server: configuration, workers, and the tables
 * they share (transactions, locations, subscriber cache, connections).
 *
 * There is no global server: every function that needs it gets it from the
 * worker it runs on (w->srv). The main thread owns start-up, signals and
 * periodic housekeeping; the database thread owns the store.
 */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/siphash.h"

#define SRV_MAX_WORKERS 64

struct worker;
struct event_base;
struct event;
struct tp_table;
struct txn_table;
struct loc_table;
struct users;
struct auth;
struct dbq;
struct srv_chores;
struct rules_slot;
struct prober;
struct keepalive;
struct home;
struct flood;
struct proxy_pipeline;
struct dlg_table;
struct cdr;
struct ctl;
struct msvc;
struct proxy_fwd_hooks;

struct server {
	struct cfg cfg;
	uint64_t seed; /* hash seed and tag entropy, random per start */
	/* signs our Record-Route (proxy/route.c): from auth.secret, else kept in the store so
	 * that the dialogs of a restarted server still route */
	struct siphash_key route_key;
	unsigned nworkers;
	struct worker *workers[SRV_MAX_WORKERS];

	struct tp_table *tp;
	struct txn_table *txns;
	struct loc_table *loc;
	struct users *users;
	struct auth *auth;
	struct dbq *dbq;
	struct srv_chores *chores; /* the modules' database chores (chores.c) */
	struct rules_slot *rules; /* dialplan, gateways, global lists in force (services/rules.h) */
	struct prober *prober;	  /* OPTIONS probes of the gateways, on worker 0 */
	struct keepalive *keepalive; /* NAT keep-alives (server/keepalive.h), on worker 0 */
	struct home *home;	     /* messaging, presence and topics, on the home worker */
	struct flood *flood;	     /* per-source budgets and bans; NULL when turned off */
	/* the request pipeline's table of handlers (proxy/proxy.h), built by pipeline.c */
	struct proxy_pipeline *pipeline;
	struct dlg_table *dlg; /* the INVITE dialogs we record-route (dialog/dialog.h) */
	struct cdr *cdr;       /* billing records (services/cdr.h), NULL when cdr.enabled is off */
	struct ctl *ctl;       /* the local control socket (server/ctl.h) */

	/* the media relay (server/media.h) and its forwarding hooks; NULL when media is off */
	struct msvc *msvc;
	struct proxy_fwd_hooks *media_hooks;

	struct event_base *main_base;
	struct event *sig_int;
	struct event *sig_term;
	struct event *tick_ev;
	atomic_bool stopping;
	/* DNS servers for tests ("IP:port"); NULL = system resolver */
	const char *dns_servers;
};

/* Builds everything from cfg (copied) and starts the workers. */
int server_start(struct server *s, const struct cfg *cfg, char *err, size_t errlen);
/* Runs the main loop until SIGINT/SIGTERM; then stops the workers. */
int server_run(struct server *s);
void server_destroy(struct server *s);
/* Registers the services' handlers on the pipeline in their phases (pipeline.c). */
int server_pipeline_build(struct server *s, struct proxy_pipeline *p);

#endif
