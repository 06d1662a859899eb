/*
 * proxy.h - the RFC 3261 section 16 routing core: what happens to every
 * message between the transport and the services.
 *
 * A request goes through phases, in order, each returning an explicit
 * verdict (enum proxy_step): checks (16.3), the transaction layer
 * (retransmissions, ACK, CANCEL), route pre-processing (16.4), policy
 * (loop, Max-Forwards, Proxy-Require), authentication, and target
 * determination: a local service (registrar, OPTIONS), the location
 * service, or another domain. Responses go to their client transaction.
 *
 * struct preq carries one request through the phases; it lives on the stack
 * of the receiving worker and points into the received buffer.
 */
#ifndef SB_PROXY_H
#define SB_PROXY_H

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

enum proxy_step {
	PROXY_CONTINUE = 0, /* go on with the next phase */
	PROXY_DONE,	    /* the request was answered, forwarded or absorbed */
	PROXY_SUSPENDED,    /* waiting for a lookup; the request will be delivered again */
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

	/* the outgoing call barring of the caller (an INVITE out of dialog from one of our
	 * users who authenticated, issue 12), NULL when there is none */
	const struct uset_bar *caller_bar;

	struct ptx *ptx;	   /* set once the request is handled statefully */
	struct txn_srv *local_txn; /* a local service's server transaction, if it made one */
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
 * Where r comes from, for delivering it again after an asynchronous lookup:
 * a copy of r->src marked auth_verified when r passed digest verification,
 * so that the copy is not verified again (issue 11 hole 4: replays are never
 * tolerated because a request was redelivered; only this mark skips the check).
 */
static inline struct tp_src proxy_src_again(const struct preq *r)
{
	struct tp_src again = *r->src;

	again.auth_verified = r->authenticated || r->src->auth_verified;
	return again;
}

/* The transport's message handler. */
void proxy_on_message(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src);

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

struct users_entry;
/*
 * The subscriber user@domain for request r, from the cache: PROXY_CONTINUE
 * with *ue filled (ue->exists may be false), PROXY_SUSPENDED while it is read
 * from the database (r comes again), or PROXY_DONE after a 503 when the
 * database cannot answer.
 */
enum proxy_step proxy_user(struct preq *r, sv_t user, sv_t domain, struct users_entry *ue);

/* The From URI's user part ("" when there is none): the caller for the lists. */
sv_t proxy_caller_user(struct preq *r);
/* Refuses a call a list blocks: lists.block_status, counted and logged. */
void proxy_reply_blocked(struct preq *r, const char *why);
/*
 * Outgoing call barring: may payer (the caller, or the user whose forwarding
 * makes this call), with barring b, call target (a user part; internal: one
 * of our users)? When barred, the refusal is logged and counted and reason
 * gets the reply's reason phrase, "Call barred: international". b NULL: allowed.
 */
bool proxy_barred(struct worker *w, const struct uset_bar *b, const char *payer, sv_t target,
		  bool internal, char *reason, size_t len);
/* Answers a barred call: 403 with that reason phrase. */
void proxy_reply_barred(struct preq *r, const char *reason);

/* The routing rules in force for this request (the worker's view of them). */
struct rules *proxy_rules(struct preq *r);

/*
 * A server transaction for a request a local service answers itself, so a
 * retransmission gets the same answer instead of being acted on twice.
 * proxy_reply() goes through it afterwards. 0, EEXIST (a retransmission
 * raced us: drop the request) or ENOMEM.
 */
int proxy_local_txn(struct preq *r);

/* The request is re-delivered to this worker once a pending lookup completes. */
enum proxy_step proxy_suspend(struct preq *r);

/* What a Server/User-Agent header and an Allow header say about us. */
#define PROXY_ALLOW                                                                                \
	"INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, "   \
	"REFER, MESSAGE, UPDATE"
#define PROXY_SUPPORTED "path, outbound"

#endif
