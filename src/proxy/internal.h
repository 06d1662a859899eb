/*
 * internal.h - what the routing core's files share: the forwarding plan
 * (what to change in a request, independent of where its bytes are, so the
 * same plan applies to the received buffer or to a copy after a DNS wait)
 * and the description of one target.
 */
#ifndef SB_PROXY_INTERNAL_H
#define SB_PROXY_INTERNAL_H

#include "proxy/proxy.h"
#include "request/request.h"
#include "core/siphash.h"
#include "services/location.h"

/*
 * Outgoing call barring: may payer (the caller, or the user whose forwarding
 * makes this call), with barring b, call target (a user part; internal: one
 * of our users)? When barred, the refusal is logged and counted and reason
 * gets the reply's reason phrase, "Call barred: international". b NULL: allowed.
 */
bool proxy_barred(struct worker *w, const struct uset_bar *b, const char *payer, sv_t target,
		  bool internal, char *reason, size_t len);

struct txn_srv;

struct fwd_plan {
	unsigned pop_routes; /* leading Route values that are ours */
	bool pop_last_route; /* strict-router compatibility: the last Route became the R-URI */
	bool record_route;
	char drop_cred_realm[128]; /* Proxy-Authorization for this realm is consumed here */
	char via_params[96];
	size_t via_params_len;
	bool via_drop_rport;
	uint64_t loop_hash;
	/* "Session-Expires: N\r\n" (and "Min-SE: N\r\n" after a 422) added to an INVITE, "" = none
	 */
	char session_expires[64];
	/* ";sb-alias=...>" added to the Contact of a request from behind NAT (nat.c); the '>'
	 * is used only when the Contact had no angle brackets; nat_alias_len 0 = none */
	char nat_alias[120];
	size_t nat_alias_len;
};

struct fwd_target {
	char uri[STORE_URI_MAX];  /* new Request-URI; "" keeps the received one */
	char hop[STORE_URI_MAX];  /* where to send it (a Route or Path URI, or the R-URI) */
	char path[STORE_URI_MAX]; /* Route set to add (from Path), "" = none */
	bool has_received;	  /* a registered contact: how it reached us */
	bool gateway; /* routed to a PSTN gateway by the dialplan: its challenge is ours */
	struct tp_addr received;
	uint32_t conn_id;
	/* has_received over a connection that is its only way in (an RFC 5626 flow, a contact
	 * behind NAT): once the connection is gone the target is unreachable */
	bool conn_only;
	/* an in-dialog request sent where a signed NAT alias in its R-URI says (nat.c): over
	 * UDP to that address, over TCP on the connection open from there */
	bool alias;
	uint16_t q;
	uint8_t terminal;   /* enum term_type of a registered contact */
	int64_t expires;    /* when a registered contact's binding expires (unix s), 0 = not one */
	char headers[1024]; /* header lines added on top (Diversion, History-Info), "" = none */
};

/* One step of a search: targets rung together, for ring_ms at most (0 = until they answer). */
struct fwd_step {
	struct fwd_target *targets;
	size_t n;
	unsigned ring_ms;
	/* failover: tried only when every branch of the step before failed (408, 5xx,
	 * unreachable); any other answer (486, 404...) ends the search there */
	bool only_on_failure;
};

struct ptx;

/*
 * The proxy transaction (RFC 3261 16.7), as the caller sees it. Moves
 * (ptx_move() in fwd.c refuses, logs and counts any other):
 *
 *   TRYING     -> RINGING     a 180 went upstream (later 180s without a body add nothing)
 *   TRYING, RINGING -> CANCELLING   the caller's CANCEL (16.10): every branch is cancelled,
 *                                   no step starts, the final is sent when they all ended
 *   TRYING, RINGING, CANCELLING -> ACCEPTED   a 2xx went upstream (16.7 step 5); the
 *                                   branches left are cancelled ("completed elsewhere")
 *   TRYING, RINGING, CANCELLING -> COMPLETED  the final went upstream: the best response
 *                                   (16.7 step 6; a 6xx cancels the rest first), or one made
 *                                   here (408, 480, 487, 503, 202 for a stored MESSAGE)
 *
 * ACCEPTED and COMPLETED are final: every later 2xx still goes upstream at
 * once (16.7 step 5), nothing else does. Between the steps of a search
 * (sequential ringing, forwarding, gateway failover) the state stays TRYING
 * or RINGING. The context is freed with its server transaction.
 */
enum ptx_state {
	PTX_TRYING = 0,
	PTX_RINGING,
	PTX_CANCELLING,
	PTX_ACCEPTED,
	PTX_COMPLETED,
	PTX_NSTATES,
};

/*
 * One branch: a target and the client transaction that carries the request
 * there. Moves (br_move() refuses, logs and counts any other):
 *
 *   RESOLVING  -> CALLING      the destination is known and the request went out
 *   CALLING    -> PROCEEDING   its first provisional response (the gateway's ring timer starts)
 *   CALLING, PROCEEDING -> CALLING   a gateway's 401/407 answered with our credentials
 *                                    (services/gwauth.h): a new transaction, once
 *   PROCEEDING -> CANCELLING   CANCEL sent: the caller cancelled, or a 2xx or 6xx came elsewhere
 *   PROCEEDING -> RANG_OUT     CANCEL sent: its step's or its gateway's ring time ran out;
 *                              its 487 means "no answer" (480 to the caller)
 *   PROCEEDING -> TIMED_OUT    CANCEL sent by Timer C (16.8); its 487 counts as a 408
 *   any other  -> DONE         a final response, or given up: failed to send, cancelled before
 *                              any provisional (9.1: the transaction sends the CANCEL once one
 *                              comes), no provisional within Timer C or the gateway's failover
 *                              timeout (as a 408)
 *
 * A DONE branch still passes a 2xx upstream (every 2xx does), nothing else.
 */
enum br_state {
	BR_RESOLVING = 0,
	BR_CALLING,
	BR_PROCEEDING,
	BR_CANCELLING,
	BR_RANG_OUT,
	BR_TIMED_OUT,
	BR_DONE,
	BR_NSTATES,
};

/* What the branches of the current step came to so far; it only goes up. */
enum step_outcome {
	STEP_FAILED =
	    0,	       /* nothing but failures (408, 5xx, unreachable): the failover step may run */
	STEP_ANSWERED, /* a real answer (404, 480...) or it rang out: no failover */
	STEP_BUSY,     /* a 486/600/603 among them: a search with stop_on_busy ends */
};

/* How a search behaves; zero is plain forking. */
struct fwd_policy {
	bool stop_on_busy; /* a 486/600/603 ends the search instead of trying the next step */
	/*
	 * The steps ran out without a 2xx; the best status so far is given. The
	 * hook may add steps with fwd_add_step() (forwarding on busy or no
	 * answer): the search goes on with them, or ends when it adds none. It
	 * runs again when those run out, so it must itself bound what it adds.
	 */
	void (*exhausted)(struct ptx *p, void *arg, unsigned status);
	void *arg;
	void (*free_arg)(void *arg);
};

/* route.c */
void route_plan(struct preq *r, struct fwd_plan *plan);
uint64_t route_loop_hash(struct preq *r);
/* 482 when a Via of ours carries this request's loop hash (RFC 3261 16.3 item 4). */
bool route_is_loop(struct preq *r);
/* The first Route value left after ours are popped, or empty. */
sv_t route_next_hop(struct preq *r, const struct fwd_plan *plan);
/* Signed Record-Route (see route.c): 16 hex digits in ";sb=" */
#define ROUTE_SIG_LEN 16
void route_sign(const struct server *srv, sv_t callid, sv_t tag, sv_t host, uint16_t port,
		char out[ROUTE_SIG_LEN + 1]);
/* Signed for the host and port of m's Contact (ENOENT: none, signed for nothing usable). */
int route_sign_contact(const struct server *srv, const struct sip_msg *m, sv_t tag,
		       char out[ROUTE_SIG_LEN + 1]);
/* The key that signs our routes (and NAT aliases, nat.c); nat.contact_alias. */
const struct siphash_key *route_key_of(const struct server *srv);
bool route_nat_alias_on(const struct server *srv);
/* The signature in a Route/Record-Route value of ours (a view into it), or empty. */
sv_t route_sig_of(struct server *srv, sv_t value);
/* True when r is routed by a Record-Route we signed for its dialog and Request-URI. */
bool route_signed(struct preq *r);
/* A registered contact as a target (NAT and connection reuse decided here). */
void route_target_from_binding(struct fwd_target *t, const struct loc_target *b);
/*
 * How a branch reaches t now: where it registered from (its connection while
 * open, or its NAT source), its URI (resolved as RFC 3263 says: the connection
 * is gone), or not at all (LOC_REACH_GONE: the connection was the only way).
 */
enum loc_reach route_target_reach(struct tp_table *tp, const struct fwd_target *t);

/*
 * nat.c: Contacts behind NAT (docs/nat.md). An alias ";sb-alias=<ip>~<port>~<t>~<mac>"
 * names where a Contact's messages really came from; the MAC (the route key, over the
 * Call-ID and the address) makes it good for that dialog and that address only.
 */
/* Is Contact URI c somewhere else than src (address, port or transport)? A host name: no. */
bool nat_contact_differs(const struct sip_uri *c, const struct tp_addr *src);
/* ";sb-alias=..." for src in the dialog callid into out; its length, 0 when it cannot be. */
size_t nat_alias_print(const struct siphash_key *k, sv_t callid, const struct tp_addr *src,
		       char *out, size_t len);
/* An alias value (after "sb-alias="): 0 and *a, EINVAL malformed, EPERM signature wrong. */
int nat_alias_verify(const struct siphash_key *k, sv_t callid, sv_t value, struct tp_addr *a);
/* route_plan's part: plan->nat_alias for r's Contact when it is behind NAT. */
void nat_plan_contact(struct preq *r, struct fwd_plan *plan);
/* The edits adding text (n bytes, and the '>' after them when needed) to m's Contact URI. */
int nat_edit_contact(struct sip_edit_list *l, struct sip_msg *m, const char *text, size_t n);
/* The same for a dialog-making or target-refreshing response from from; text keeps it. */
int nat_response_contact(struct worker *w, struct sip_edit_list *l, struct sip_msg *resp,
			 const struct tp_addr *from, char *text, size_t len);
/* An in-dialog request whose R-URI carries a valid alias: t goes there, alias removed. */
bool nat_alias_target(struct preq *r, struct fwd_target *t);

/* features.c: *72<number> and the like from our own users; PROXY_CONTINUE when not one */
enum proxy_step feat_handle(struct preq *r);
/* ... as a TARGET handler: for INVITEs of our own users who proved who they are */
bool feat_wants(const struct preq *r, void *arg);
enum proxy_step feat_phase(struct preq *r, void *arg);

/* callee.c: a request for a local user, by that user's call settings */
enum proxy_step callee_route(struct preq *r, struct fwd_plan *plan);

/* fwd.c */
enum proxy_step fwd_stateful(struct preq *r, const struct fwd_plan *plan,
			     const struct fwd_target *targets, size_t n);
/* Steps tried one after the other; targets are copied. Empty steps are skipped. */
enum proxy_step fwd_stateful_steps(struct preq *r, const struct fwd_plan *plan,
				   const struct fwd_step *steps, size_t nsteps,
				   const struct fwd_policy *policy);
/* Appends a step to a running search (from the exhausted hook); 0 or ENOMEM. */
int fwd_add_step(struct ptx *p, const struct fwd_step *step);
enum proxy_step fwd_stateless(struct preq *r, const struct fwd_plan *plan,
			      const struct fwd_target *target);
/* May a branch for t go to dest (no gateway but through the dialplan, for a caller we can bill)? */
bool fwd_may_reach(struct worker *w, const struct fwd_target *t, const struct tp_dest *dest,
		   bool pstn_ok, bool in_dialog);
/* A response that matched no client transaction (stateless mode). */
void fwd_response_stateless(struct worker *w, struct sip_msg *m, const struct tp_src *src);
/* CANCEL for an INVITE we proxy: answered here, branches cancelled. */
void fwd_cancel(struct preq *r, struct ptx *ptx);
/* Builds the forwarded request into out (from: where m came from, for the forwarding hooks). */
int fwd_build(struct worker *w, struct buf *out, struct sip_msg *m, const struct fwd_plan *plan,
	      const struct fwd_target *t, sv_t branch, const struct tp_dest *dest, int in_listen,
	      const struct tp_addr *from, bool in_dialog);

/* From the exhausted hook: ends the search with a final made here (202 for a stored MESSAGE). */
void fwd_finish_local(struct ptx *p, unsigned status, const char *reason);
/* The request the search forwards, as received. */
sv_t fwd_ptx_request(const struct ptx *p);
struct server *fwd_ptx_server(const struct ptx *p);

/* ptx access for core.c: the proxy context of a server transaction */
struct ptx *fwd_ptx_of(struct txn_srv *t);
struct txn_srv *fwd_ptx_srv(struct ptx *p);

/*
 * For the unit tests of the forwarding state machine (tests/unit/test_fwd.c):
 * the states, and a timer's expiry run at once, exactly as its libevent
 * callback runs it (FWD_TIMER_STEP ignores branch).
 */
enum fwd_timer { FWD_TIMER_C, FWD_TIMER_GW, FWD_TIMER_STEP };
enum ptx_state fwd_ptx_state(const struct ptx *p);
unsigned fwd_ptx_nbranches(const struct ptx *p);
enum br_state fwd_branch_state(const struct ptx *p, unsigned i);
void fwd_timer_fire(struct ptx *p, unsigned branch, enum fwd_timer which);

#endif
