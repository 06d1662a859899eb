/*
 * txn.h - RFC 3261 section 17 transactions, with RFC 6026's Accepted state.
 *
 * Server transactions absorb request retransmissions and retransmit the
 * last response (Timer G), wait for the ACK of a non-2xx final (H, I) and
 * linger after a non-INVITE final (J). Client transactions retransmit
 * requests (A, E), give up (B, F), send the ACK of a non-2xx final
 * themselves and linger (D, K, M).
 *
 * A transaction belongs to the worker that created it. Server transactions
 * are found through one shared table with a lock per bucket, because a
 * retransmission or a CANCEL may arrive on any worker; client transactions
 * are found through the branch we gave them, which names the owning worker
 * and a slot in that worker's array, so matching a response takes no lock.
 * A message that arrives on another worker is posted to the owner.
 *
 * The transaction user (the proxy core, or a local service) is told what
 * happens through an ops table; it owns the memory of a server transaction
 * (embedded in its own context), while client transactions are allocated
 * here and freed after ops->terminated returns.
 */
#ifndef SB_TXN_H
#define SB_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "server/worker.h"
#include "sip/sip.h"
#include "transport/tport.h"

struct worker;
struct txn_table;

#define TXN_BRANCH_MAX 96
/*
 * Our branches: "z9hG4bK" + 16 hex digits of the loop hash + "." + owner + "." + slot + "." + gen
 * + "." + 16 hex digits of a MAC (SipHash-2-4 with a key random per process) over the rest.
 * Stateless branches: "z9hG4bK" + loop hash + ".s" + 16 hex digits of a MAC over the loop hash
 * and the upstream Via (see txn_branch_stateless).
 */
#define TXN_BRANCH_PREFIX	 "z9hG4bK"
#define TXN_LOOP_HEX		 16
#define TXN_MAC_HEX		 16
#define TXN_STATELESS_BRANCH_LEN (7 + TXN_LOOP_HEX + 2 + TXN_MAC_HEX)

enum txn_state {
	TXN_IDLE = 0,
	TXN_TRYING,	/* non-INVITE server/client, before any response */
	TXN_CALLING,	/* INVITE client before any response */
	TXN_PROCEEDING, /* a provisional response was sent / received */
	TXN_COMPLETED,	/* final non-2xx (INVITE) or any final (non-INVITE) */
	TXN_CONFIRMED,	/* INVITE server: ACK received */
	TXN_ACCEPTED,	/* INVITE: 2xx sent / received (RFC 6026) */
	TXN_TERMINATED,
};

/* What identifies a server transaction (17.2.3, with the RFC 2543 fallback). */
struct txn_key {
	uint64_t hash;
	bool rfc3261;
	enum sip_method method; /* INVITE for an ACK */
	uint8_t branch_len;
	char branch[TXN_BRANCH_MAX];
};

/* The table shared by all workers; seed is mixed into the MAC key (a kernel with no randomness). */
int txn_table_create(uint64_t seed, struct txn_table **out);
void txn_table_destroy(struct txn_table *t);
int txn_worker_init(struct worker *w);
void txn_worker_fini(struct worker *w);

/*
 * Key of the server transaction a request belongs to; ACK and CANCEL give
 * the key of the INVITE they refer to when for_invite is true.
 */
int txn_key_of(struct worker *w, struct sip_msg *m, bool for_invite, struct txn_key *k);

/*
 * Server transactions
 */
struct txn_srv;

struct txn_srv_ops {
	/* No ACK came for a non-2xx final (Timer H), or the transport failed. */
	void (*failed)(struct txn_srv *t);
	/* The transaction is over: the user may free its context now. */
	void (*terminated)(struct txn_srv *t);
};

struct txn_srv {
	struct wjob reap; /* runs ops->terminated outside the timer callback */
	struct txn_srv *hnext;
	struct txn_key key;
	struct worker *w;
	const struct txn_srv_ops *ops;
	void *tu;
	enum txn_state state;
	bool invite;
	bool reliable;
	bool in_table;
	struct tp_dest reply_to;
	char *resp;
	size_t resp_len;
	unsigned status;
	unsigned g_ms;
	struct event tmr_retrans; /* G */
	struct event tmr_end;	  /* H, I, J, L */
};

/*
 * Computes the key and reply address of request m and enters the
 * transaction in the table. EEXIST when a transaction with that key already
 * exists (the request is a retransmission). t is owned by the caller.
 */
int txn_srv_init(struct worker *w, struct txn_srv *t, struct sip_msg *m, const struct tp_src *src,
		 const struct txn_srv_ops *ops, void *tu);
/* Sends a response through the transaction (keeps a copy for retransmission). */
void txn_srv_reply(struct txn_srv *t, const char *resp, size_t len, unsigned status);
/* A retransmission of the request arrived. */
void txn_srv_retransmission(struct txn_srv *t);
/* The ACK for a non-2xx final arrived. */
void txn_srv_ack(struct txn_srv *t);
/* Stops timers and leaves the table; no callback runs afterwards. */
void txn_srv_cleanup(struct txn_srv *t);

/*
 * Finds the server transaction for key. Returns 0 with *owner set; when the
 * owner is the calling worker, *t is the transaction. ENOENT when none.
 */
int txn_srv_find(struct worker *w, const struct txn_key *k, unsigned *owner, struct txn_srv **t);

/* Where responses to request m go (RFC 3261 18.2.2, RFC 3581). */
void txn_reply_dest(struct sip_msg *m, const struct tp_src *src, struct tp_dest *d);

/*
 * Client transactions
 */
struct txn_cli;

struct txn_cli_ops {
	/* Every response for the transaction, including 2xx retransmissions while Accepted. */
	void (*response)(struct txn_cli *t, struct sip_msg *resp);
	/* No final response in time (Timer B/F), or the transport failed (err != 0). */
	void (*timeout)(struct txn_cli *t, int err);
	/* The transaction is over; it is freed after this returns. */
	void (*terminated)(struct txn_cli *t);
	/* Optional: the worker is going away with t still running; free what tu holds. */
	void (*discard)(struct txn_cli *t);
};

struct txn_cli {
	struct wjob reap;
	struct worker *w;
	const struct txn_cli_ops *ops;
	void *tu;
	uint32_t slot;
	uint32_t gen;
	enum txn_state state;
	enum sip_method method;
	bool reliable;
	bool got_provisional;
	bool cancel_sent;
	bool cancel_wanted;    /* CANCEL asked for before any provisional */
	bool cancel_elsewhere; /* CANCEL carries "Call completed elsewhere" (RFC 3326) */
	bool strict_source;    /* responses count only from dest's address and port (probes) */
	/* set before txn_cli_send: sent once even over UDP (a peer whose return path is
	 * unproven gets no more packets than it sent); Timer F still ends it */
	bool no_retransmit;
	/* req holds the ACK of a non-2xx final, not the request (Completed, 17.1.1.3); in
	 * Accepted, and in a non-INVITE's Completed, req is freed (NULL) */
	bool req_is_ack;
	unsigned last_status;
	unsigned interval_ms;
	uint8_t branch_len;
	char branch[TXN_BRANCH_MAX];
	struct tp_dest dest;
	char *req;
	size_t req_len;
	struct txn_cli *cancel;	  /* the CANCEL sent for this INVITE, if any */
	struct txn_cli *parent;	  /* for a CANCEL: the INVITE it cancels */
	struct event tmr_retrans; /* A, E */
	struct event tmr_timeout; /* B, F, D, K, M */
};

/*
 * Allocates a client transaction and its branch (loop_hash goes into the
 * branch for RFC 3261 16.6 loop detection). The caller builds the request
 * with t->branch in its top Via, then calls txn_cli_send().
 */
int txn_cli_create(struct worker *w, enum sip_method method, uint64_t loop_hash,
		   const struct txn_cli_ops *ops, void *tu, struct txn_cli **out);
/* Copies the request and sends it to dest, starting the timers. */
int txn_cli_send(struct txn_cli *t, const struct tp_dest *dest, const char *req, size_t len);
/*
 * The transport's lost hook (tp_on_lost): a request of the transaction that
 * notify names never left (its connection was refused, reset, or gone). A
 * transaction still waiting for its first answer fails now with err, as a
 * transport error (ops->timeout(t, err), 17.1.4), instead of at Timer B or F.
 */
void txn_send_lost(struct worker *w, uint64_t notify, int err);
/* Sends a CANCEL for this INVITE (now if a provisional came, else when one comes). */
void txn_cli_cancel(struct txn_cli *t, bool completed_elsewhere);
/*
 * The user gives the transaction up: no more callbacks, freed soon. An INVITE
 * whose CANCEL waits for a provisional response (9.1) stays until Timer B, so
 * that a late provisional response still gets its CANCEL.
 */
void txn_cli_abandon(struct txn_cli *t);

/*
 * A response arrived: finds its client transaction (by our branch, whose MAC
 * must verify) and runs it, or posts it to the owning worker. Returns 0 when
 * it was ours, EACCES when it is forged (a branch of ours in form whose MAC
 * does not verify, or a strict_source transaction answered from elsewhere:
 * dropped and counted in rx_forged), ENOENT when no transaction matches (a
 * stateless proxy looks at it then).
 */
int txn_cli_dispatch(struct worker *w, struct sip_msg *resp, const struct tp_src *src);

/*
 * Owner, slot and generation of one of our client-transaction branches: 1
 * when it has our form and its MAC verifies, 0 when it does not have our
 * form (somebody else's branch), -1 when it has our form but a wrong MAC
 * (forged). Costs one SipHash-2-4 of 24 bytes.
 */
int txn_branch_verify(const struct txn_table *tt, sv_t branch, unsigned *owner, uint32_t *slot,
		      uint32_t *gen);

/* Decodes the loop hash of one of our branches; false when not ours. */
bool txn_branch_loop_hash(sv_t branch, uint64_t *loop_hash);

/*
 * Stateless forwarding (RFC 3261 16.11): the branch for a request whose top
 * Via (before ours) is up (branch, host and port as received), the same for
 * every retransmission; out gets TXN_STATELESS_BRANCH_LEN characters.
 * txn_branch_stateless_check tells whether a response's top Via branch is
 * one we made for the Via below it (up, as the response carries it).
 */
void txn_branch_stateless(const struct txn_table *tt, uint64_t loop_hash, const struct sip_via *up,
			  char *out);
bool txn_branch_stateless_check(const struct txn_table *tt, sv_t branch, const struct sip_via *up);

#endif
