/*
 * proxy.h - the proxy pipeline: what happens to every message between the
 * transport and the services, as a table of handlers walked in order.
 *
 * Like nginx's phases, each handler is registered with the phase it belongs
 * to, the methods it wants (and an optional finer test), and the function
 * that handles the request. The pipeline's own steps (RFC 3261 16.3-16.6:
 * transaction matching, local UAS answers, Max-Forwards and loops, route
 * pre-processing, target determination and forwarding) are handlers like
 * the services' (flood control, registrar, authentication, lists, call
 * barring, presence and messaging, feature codes), which the server
 * registers when it assembles everything: this layer includes no service
 * header, and a new service (media, CDRs) finds its place by phase.
 *
 * A handler returns an enum proxy_step: PROXY_CONTINUE goes on with the next
 * handler that wants the request, PROXY_DONE ends it, and PROXY_SUSPENDED
 * (after proxy_wait) parks it: it resumes at the same handler, with
 * r->phase_state as that handler left it.
 */
#ifndef SB_PROXY_H
#define SB_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "request/request.h"

enum proxy_phase {
	PROXY_PHASE_ADMIT,	 /* before any work: flood budgets, overload, the home worker */
	PROXY_PHASE_STATELESS,	 /* ACK, CANCEL, the registrar: no server transaction of ours */
	PROXY_PHASE_TRANSACTION, /* retransmissions go to their server transaction */
	PROXY_PHASE_LOCAL,  /* addressed to this server itself: OPTIONS, subscription refresh */
	PROXY_PHASE_POLICY, /* 16.3: size, Max-Forwards, loops, Proxy-Require; 16.4 route plan */
	PROXY_PHASE_AUTH,   /* who sent it: digest authentication of our users */
	PROXY_PHASE_ACCESS, /* may they: black and white lists, the caller's call barring */
	PROXY_PHASE_TARGET, /* 16.5-16.6: route set, services, local users, other domains */
	PROXY_PHASE_COUNT,
};

/* wants: a bit per enum sip_method; PROXY_ALL_METHODS for every request */
#define PROXY_METHOD(m)	  (1u << (m))
#define PROXY_ALL_METHODS 0xffffffffu

struct proxy_handler {
	const char *name; /* for logs and tests */
	enum proxy_phase phase;
	int order; /* within the phase, lower first (equal: registration order) */
	uint32_t methods;
	/* a finer test (NULL: every request of those methods) */
	bool (*wants)(const struct preq *r, void *arg);
	enum proxy_step (*handle)(struct preq *r, void *arg);
	void *arg;
};

#define PROXY_MAX_HANDLERS 32

/*
 * Hooks on messages about to be forwarded, for a service that edits what
 * passes through (the media relay rewrites SDP bodies). A hook may add
 * edits to l, the forwarded message's edit list (sip/sip.h): typically the
 * body and its Content-Length. What an edit inserts must stay valid until
 * the hook's caller has applied the list (the same call on this thread).
 */
struct proxy_fwd_msg {
	struct worker *w;
	struct sip_msg *m;	    /* the request or response being forwarded */
	const struct tp_addr *from; /* where it came from; NULL = not known here */
	bool in_dialog;		    /* a request on a route set we signed */
	bool gateway;		    /* a request to a PSTN gateway the dialplan chose */
	/* a request: where the branch goes, and its target's URI (a registered Contact) */
	const struct tp_addr *to;
	sv_t target_uri;
};
struct proxy_fwd_hooks {
	/* a request on one of its branches (each branch of a fork: once per branch) */
	void (*request)(void *arg, const struct proxy_fwd_msg *fm, struct sip_edit_list *l);
	/* a response going upstream */
	void (*response)(void *arg, const struct proxy_fwd_msg *fm, struct sip_edit_list *l);
	void *arg;
};
#define PROXY_MAX_FWD_HOOKS 4

struct proxy_pipeline {
	struct proxy_handler h[PROXY_MAX_HANDLERS];
	unsigned n;
	/* per method, the handlers that want it, in order (r->at indexes this list) */
	uint8_t by_method[SIP_METHOD_COUNT][PROXY_MAX_HANDLERS];
	uint8_t nby_method[SIP_METHOD_COUNT];
	/* is r's source a trusted peer (classification, before any handler); NULL: none is */
	bool (*trusted)(const struct preq *r, void *arg);
	void *trusted_arg;
	/* hooks on forwarded messages, in registration order (not copied) */
	const struct proxy_fwd_hooks *fwd_hooks[PROXY_MAX_FWD_HOOKS];
	unsigned nfwd_hooks;
};

/* The pipeline's own handlers (transaction, local UAS, policy, route plan, target). */
void proxy_pipeline_init(struct proxy_pipeline *p);
/* Adds a handler in its place (phase, then order); 0 or ENOSPC. Before the workers start. */
int proxy_pipeline_add(struct proxy_pipeline *p, const struct proxy_handler *h);

/* Adds a table of hooks on forwarded messages; 0 or ENOSPC. Before the workers start. */
int proxy_fwd_hooks_add(struct proxy_pipeline *p, const struct proxy_fwd_hooks *h);

/* Order of the pipeline's own handlers within their phases, for services to place theirs. */
enum {
	PROXY_ORDER_FIRST = 0,
	PROXY_ORDER_CORE = 50, /* the pipeline's own check of the phase */
	PROXY_ORDER_SERVICE = 100,
	PROXY_ORDER_ROUTE = 200, /* TARGET: a local user, or another domain */
};

/* The handler a request of method m is at (r->at), for logs and tests. */
const struct proxy_handler *proxy_pipeline_at(const struct proxy_pipeline *p, enum sip_method m,
					      unsigned at);

/*
 * Runs the request from handler r->at on; r must begin a context of r->ctx_len
 * bytes (the pipeline's per-request state) and have r->resume set. For tests
 * and for the resumption of a continuation.
 */
enum proxy_step proxy_pipeline_run(const struct proxy_pipeline *p, struct preq *r);

/* The transport's message handler. */
void proxy_on_message(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src);

#endif
