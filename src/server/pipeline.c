/*
 * pipeline.c - the server's assembly of the proxy pipeline: which service
 * handles which requests, in which phase (proxy/proxy.h). The pipeline knows
 * none of them; this is the one place that puts them in order, and the place
 * a new service (media, CDRs, an API hook) is added.
 */
#include "server/server.h"

#include <errno.h>

#include "proxy/proxy.h"
#include "server/worker.h"
#include "services/access.h"
#include "services/challenge.h"
#include "services/flood.h"
#include "services/home.h"
#include "services/lists.h"
#include "services/registrar.h"
#include "transport/tport.h"

/* security.trusted_peers: a peer whose requests need no credentials (classification). */
static bool trusted_peer(const struct preq *r, void *arg)
{
	const struct lists_nets *trusted = arg;

	return trusted->n && lists_cidr_match(trusted->v, trusted->n, &r->src->peer.u.sa);
}

/* A banned source, or over its budget: dropped with no answer. */
static enum proxy_step flood_phase(struct preq *r, void *arg)
{
	const struct server *srv = arg;

	return flood_request_drop(srv->flood, r) ? PROXY_DONE : PROXY_CONTINUE;
}

/* The home services' state lives on one worker: their requests go there. */
static bool home_elsewhere(const struct preq *r, void *arg)
{
	struct server *srv = arg;

	return r->w->id != home_worker(srv) && home_wants(r);
}

static enum proxy_step home_move(struct preq *r, void *arg)
{
	struct server *srv = arg;

	tp_redeliver(r->w, home_worker(srv), r->m, r->src);
	return PROXY_DONE;
}

/* The registrar answers statelessly: there is no transaction to find. */
static bool reg_wants(const struct preq *r, void *arg)
{
	(void)arg;
	return r->ruri_local && !r->has_to_tag;
}

static enum proxy_step reg_phase(struct preq *r, void *arg)
{
	(void)arg;
	return reg_handle(r);
}

/* A subscription refresh (in dialog, addressed to this server itself). */
static bool home_in_dialog_wants(const struct preq *r, void *arg)
{
	(void)arg;
	return r->ruri_myself && r->has_to_tag && !sip_msg_hdr(r->m, SIP_H_ROUTE);
}

static enum proxy_step home_in_dialog_phase(struct preq *r, void *arg)
{
	(void)arg;
	return home_handle_in_dialog(r);
}

/* Presence, subscriptions, topics; a MESSAGE to a user comes back as CONTINUE. */
static bool home_target_wants(const struct preq *r, void *arg)
{
	(void)arg;
	return !r->in_dialog && !r->ruri_override.len && home_wants(r);
}

static enum proxy_step home_target_phase(struct preq *r, void *arg)
{
	(void)arg;
	return home_handle(r);
}

int server_pipeline_build(struct server *s, struct proxy_pipeline *p)
{
	const struct proxy_handler flood = {
	    "flood", PROXY_PHASE_ADMIT, PROXY_ORDER_FIRST, PROXY_ALL_METHODS, NULL, flood_phase, s};
	const struct proxy_handler home_worker_h = {"home-worker",
						    PROXY_PHASE_ADMIT,
						    PROXY_ORDER_SERVICE,
						    PROXY_ALL_METHODS,
						    home_elsewhere,
						    home_move,
						    s};
	const struct proxy_handler registrar = {"registrar",
						PROXY_PHASE_STATELESS,
						PROXY_ORDER_SERVICE,
						PROXY_METHOD(SIP_REGISTER),
						reg_wants,
						reg_phase,
						NULL};
	const struct proxy_handler refresh = {"subscription-refresh",
					      PROXY_PHASE_LOCAL,
					      PROXY_ORDER_SERVICE,
					      PROXY_METHOD(SIP_SUBSCRIBE),
					      home_in_dialog_wants,
					      home_in_dialog_phase,
					      NULL};
	const struct proxy_handler auth = {
	    "auth", PROXY_PHASE_AUTH, PROXY_ORDER_SERVICE, PROXY_ALL_METHODS, NULL, challenge_phase,
	    NULL};
	const struct proxy_handler lists = {"lists",
					    PROXY_PHASE_ACCESS,
					    PROXY_ORDER_SERVICE,
					    PROXY_METHOD(SIP_INVITE) | PROXY_METHOD(SIP_MESSAGE),
					    NULL,
					    access_lists_handle,
					    NULL};
	const struct proxy_handler caller = {"caller-barring",
					     PROXY_PHASE_ACCESS,
					     PROXY_ORDER_SERVICE + 10,
					     PROXY_METHOD(SIP_INVITE),
					     NULL,
					     access_caller_handle,
					     &s->cfg.auth_enabled};
	const struct proxy_handler home = {"home",
					   PROXY_PHASE_TARGET,
					   PROXY_ORDER_SERVICE,
					   PROXY_ALL_METHODS,
					   home_target_wants,
					   home_target_phase,
					   NULL};
	int err = 0;

	proxy_pipeline_init(p);
	p->trusted = trusted_peer;
	p->trusted_arg = &s->cfg.trusted_peers;
	err = err ? err : proxy_pipeline_add(p, &flood);
	if (s->home) {
		err = err ? err : proxy_pipeline_add(p, &home_worker_h);
		err = err ? err : proxy_pipeline_add(p, &refresh);
		err = err ? err : proxy_pipeline_add(p, &home);
	}
	err = err ? err : proxy_pipeline_add(p, &registrar);
	err = err ? err : proxy_pipeline_add(p, &auth);
	err = err ? err : proxy_pipeline_add(p, &lists);
	err = err ? err : proxy_pipeline_add(p, &caller);
	return err;
}
