/*
 * request.h - the request layer: what a service needs to handle one request
 * (the request as the pipeline classified it, replies, a local server
 * transaction, and waiting for the database without losing its place).
 *
 * It sits between the transaction layer and the services: the services
 * (registrar, authentication, presence...) include this header and nothing
 * of the proxy pipeline above them; the pipeline (src/proxy/) walks its
 * table of handlers over a struct preq. The names keep the proxy_ prefix
 * the request API always had (renaming them all would only churn the tree).
 *
 * struct preq carries one request through the phases; it lives on the stack
 * of the receiving worker and points into the received buffer, until a
 * handler waits for a lookup: then it moves, with the message's bytes and
 * the pipeline's state, into a continuation that its worker owns, and the
 * pipeline resumes at the handler that waited (proxy_wait below).
 */
#ifndef SB_REQUEST_H
#define SB_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "sip/sip.h"
#include "transport/tport.h"

struct worker;
struct server;
struct ptx;
struct txn_srv;
struct uset_bar;
struct wjob;
struct preq_cont;

enum proxy_step {
	PROXY_CONTINUE = 0, /* go on with the next handler */
	PROXY_DONE,	    /* the request was answered, forwarded or absorbed */
	PROXY_SUSPENDED,    /* waiting for a lookup (proxy_wait): resumed at this handler */
};

struct preq {
	struct worker *w;
	struct server *srv;
	struct sip_msg *m;
	const struct tp_src *src;

	/* added to the top Via of replies and of the forwarded request (RFC 3261 18.2.1, RFC 3581)
	 */
	char via_params[96];
	size_t via_params_len;
	bool via_drop_rport; /* the bare ";rport" is replaced by via_params' rport=N */

	bool ruri_local;  /* the Request-URI's host is one of our domains */
	bool ruri_myself; /* ... and names this server itself (no user, or our address) */
	/* the From claims one of our users: its domain is one of ours, or it names no domain
	 * (tel:) and does not come from a trusted peer; such a request is authenticated */
	bool from_local;
	bool has_to_tag; /* To has a tag: a dialog of a UAS here (registrar, presence) may match */
	/* in a dialog this proxy record-routed: To has a tag and the request is routed by a
	 * Record-Route we signed for this dialog and this Request-URI (route.c) */
	bool in_dialog;
	bool authenticated; /* valid digest credentials of the From user were checked */
	bool trusted;	    /* from a security.trusted_peers address */
	uint64_t loop_hash;

	/* the Request-URI to use after strict-route compatibility (RFC 3261 16.4) */
	sv_t ruri_override;

	/* the realm the caller's credentials were checked in ("" = none): those
	 * credentials are consumed here and not forwarded */
	char auth_realm[128];
	/* the outgoing call barring of the caller (an INVITE out of dialog from one of our
	 * users who authenticated, issue 12), NULL when there is none; owned by the request
	 * (a flat struct on the heap, freed with it) */
	struct uset_bar *caller_bar;

	struct ptx *ptx;	   /* set once the request is handled statefully */
	struct txn_srv *txn;	   /* the proxy context's server transaction (with ptx) */
	struct txn_srv *local_txn; /* a local service's server transaction, if it made one */

	/* where the pipeline is: the handler running, and that handler's own progress
	 * (0 when it starts; kept across a wait, so a handler resumed knows what it did) */
	unsigned at;
	unsigned phase_state;
	/* the pipeline's state around this preq (which begins it): ctx_len bytes, moved
	 * with it into a continuation; resume runs the pipeline again from r->at */
	size_t ctx_len;
	void (*resume)(struct preq *r);
	struct preq_cont *cont; /* set while the request lives in a continuation */
};

/*
 * Is the caller someone we can hold to account (and bill): an authenticated
 * user, a trusted peer, or, with authentication off, a caller of our domains?
 * Only such a caller may start a call that a PSTN gateway carries; everybody
 * else is a stranger, whose state is capped and who learns nothing of our users.
 */
bool proxy_caller_known(const struct preq *r);
/* May it go to another domain (no open relay): the same, or a dialog of ours. */
bool proxy_may_relay(const struct preq *r);

/*
 * Waiting for the database (a real suspend). A handler that needs an answer
 * it does not have calls proxy_wait(r) for the job to hand to the lookup, and
 * returns PROXY_SUSPENDED; the pipeline then moves r, its own state and the
 * message's bytes into the continuation (proxy_suspended). When the answer
 * is in, the lookup posts the job to r's worker, which rebuilds the message
 * view and runs the pipeline again from the handler that waited: the
 * handlers before it never run twice (no digest is verified twice, no budget
 * charged twice), and nothing is relaxed because a request was resumed.
 *
 * NULL with errno: EBUSY when the worker holds PROXY_MAX_SUSPENDED requests
 * already (counted in stats.suspend_refused; answer 503 with Retry-After),
 * ELOOP after PROXY_MAX_RESUMES waits of this request (the cache was dropped
 * under it each time), ENOMEM. Called again while the request lives in its
 * continuation, it returns the same job (one continuation per request).
 */
#define PROXY_MAX_SUSPENDED 2048
#define PROXY_MAX_RESUMES   4
struct wjob *proxy_wait(struct preq *r);
/* The pipeline, after a handler returned PROXY_SUSPENDED: 0, or EINVAL when the
 * handler did not call proxy_wait (the request is then answered 500 by the caller). */
int proxy_suspended(struct preq *r);
/* The pipeline, when a resumed request is done: frees its continuation. */
void proxy_cont_free(struct preq *r);
/*
 * Requests that wait keep their server-transaction key on their worker: a
 * retransmission of one is absorbed (true: drop it, the original is in
 * progress), and a CANCEL of a waiting INVITE is answered 200 here (true)
 * while the INVITE gets 487 when its lookup returns, instead of going on.
 */
bool proxy_waiting_absorb(struct preq *r);
bool proxy_waiting_cancel(struct preq *r);
/* How many times this request was resumed. */
unsigned proxy_resumes(const struct preq *r);

/*
 * Replies generated here. Headers are full lines ending in CRLF. Through
 * the server transaction when the request has one, statelessly otherwise
 * (with a To tag that is the same for retransmissions of the request).
 */
void proxy_reply(struct preq *r, unsigned status, const char *reason, sv_t headers);
void proxy_reply_body(struct preq *r, unsigned status, const char *reason, sv_t headers,
		      sv_t content_type, sv_t body);

/* Is host[:port] one of the domains we serve (a configured domain, or our own address)? */
bool proxy_domain_is_local(struct server *srv, sv_t host, uint16_t port);
/* Does this URI address this server itself (our address, or a served domain with no user)? */
bool proxy_uri_is_myself(struct server *srv, const struct sip_uri *u);
/* The address-of-record key "user@domain" (user unescaped, domain lower-case, no port). */
int proxy_aor_of(const struct sip_uri *u, char *out, size_t len);

/* Stateless To tag for replies generated here: the same for retransmissions. */
void proxy_stateless_tag(struct preq *r, char *out, size_t len);

/* The From URI's user part ("" when there is none): the caller for the lists. */
sv_t proxy_caller_user(struct preq *r);

/*
 * A server transaction for a request a local service answers itself, so a
 * retransmission gets the same answer instead of being acted on twice.
 * proxy_reply() goes through it afterwards. 0, EEXIST (a retransmission
 * raced us: drop the request) or ENOMEM.
 */
int proxy_local_txn(struct preq *r);

/* What a Server/User-Agent header and an Allow header say about us. */
#define PROXY_ALLOW                                                                                \
	"INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, "   \
	"REFER, MESSAGE, UPDATE"
#define PROXY_SUPPORTED "path, outbound"

#endif /* SB_REQUEST_H */
