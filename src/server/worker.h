/*
 * worker.h - one worker thread: its event loop, its inbox and the per-thread
 * tools (hash contexts, DNS resolver, transaction slots) that let it handle a
 * message without locks.
 *
 * A worker owns what it creates (transactions, TCP connections) and is the
 * only thread that touches them. Another thread that needs one of them posts
 * a job to the owner's inbox; the job runs on the owner's loop. This is the
 * only way work crosses threads.
 */
#ifndef SB_SERVER_WORKER_H
#define SB_SERVER_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "services/rules.h"

struct server;
struct event_base;
struct event;
struct worker;
struct tp_worker;
struct tp_table;
struct txn_table;
struct cfg;
struct lists_barring;
struct rules_slot;
struct txn_worker;
struct auth_hasher;
struct dns_resolver;
struct ovl;
struct preq_cont;

/* A unit of work posted to a worker: embed it as the first member of the job's struct. */
struct wjob {
	struct wjob *next;
	void (*fn)(struct worker *w, struct wjob *job);
};

struct worker_stats {
	uint64_t rx_msgs;
	uint64_t tx_msgs;
	uint64_t rx_bad;     /* malformed, answered 400 or dropped */
	uint64_t rx_dropped; /* oversized, unparseable, or refused */
	uint64_t tx_errors;
	uint64_t posted;	/* jobs handed to other workers */
	uint64_t resp_hops;	/* responses received here for another worker's transaction */
	uint64_t calls_blocked; /* refused by a black or white list */
	uint64_t calls_barred;	/* outgoing calls refused by the caller's barring (issue 12) */
	uint64_t rx_forged;	/* responses dropped: branch MAC wrong, or not from where it must */
	uint64_t gw_timeouts;	/* gateway branches failed over: no provisional response in time */
	uint64_t gw_ring_timeouts;   /* gateway branches cancelled: no final answer after ringing */
	uint64_t suspended;	     /* requests that waited for a lookup (request/request.h) */
	uint64_t suspend_refused;    /* ... refused with 503: the worker held suspend_cap already */
	uint64_t rx_dport_strangers; /* out-of-dialog requests on a dialog port, dropped */
	uint64_t nat_alias_added;    /* Contacts behind NAT given an alias (proxy/nat.c) */
	uint64_t nat_alias_routed;   /* in-dialog requests sent where their alias says */
	uint64_t nat_alias_bad;	     /* ... whose alias was forged or malformed: ignored */
	uint64_t nat_keepalive_sent; /* OPTIONS to contacts behind NAT (server/keepalive.c) */
	uint64_t nat_keepalive_answered;   /* ... answered by the contact */
	uint64_t nat_keepalive_unanswered; /* ... no answer before Timer F */
	uint64_t nat_keepalive_capped;	   /* rounds cut at nat.keepalive_max */
	uint64_t fwd_bad_moves; /* proxy/branch state moves refused (proxy/internal.h): a bug */
};

struct worker {
	struct server *srv;
	unsigned id;
	/* what lower layers need of the server, copied at creation (no server.h for them) */
	uint64_t seed;		 /* the process's random seed (stateless To tags) */
	const char *server_name; /* the Server / User-Agent header value */
	pthread_t thread;
	struct event_base *base;

	pthread_mutex_t inbox_lock;
	struct wjob *inbox_head;
	struct wjob *inbox_tail;
	int inbox_fd; /* eventfd */
	struct event *inbox_ev;

	/* objects whose destruction waits until no callback of theirs is on the stack */
	struct wjob *graveyard;
	struct event *housekeeping_ev;

	struct tp_worker *tp;
	struct tp_table *tpt;	/* the transports all workers share (listen addresses) */
	struct txn_table *txns; /* the server transactions all workers share */
	const struct cfg *cfg;	/* the configuration (plain values) */
	struct txn_worker *txw;
	struct auth_hasher *hasher;
	struct dns_resolver *dns;
	struct ovl *ovl;	       /* overload control (proxy/overload.h) */
	struct rules_view rules;       /* the routing rules this worker uses (services/rules.h) */
	struct rules_slot *rules_slot; /* where the database thread publishes them */
	const struct lists_barring *barring; /* barring: the classes of numbers (config) */

	uint64_t seq;	    /* for tags and branches */
	int64_t date_sec;   /* the second date_text was made for */
	char date_text[48]; /* "Date: ..." header line, made once a second */
	/* one libevent common-timeout queue per distinct timer duration: O(1) timers */
	struct {
		unsigned ms;
		const struct timeval *tv;
	} ctimeouts[32];
	unsigned nctimeouts;

	/* requests waiting in a continuation for a lookup (request/request.h), and the cap */
	unsigned suspended;
	unsigned suspend_cap;
	/* ... by their server-transaction key, so a retransmission or a CANCEL finds them */
	struct preq_cont *waiting[64];

	/*
	 * Scratch buffers, each for building one outgoing message, named for
	 * their use so that two that can be in use at the same time are never
	 * the same buffer. One is valid from its buf_reset() until the message is
	 * handed to the transport (which sends or copies it); nothing keeps a
	 * pointer into one across a callback or an event.
	 */
	struct buf req_out;  /* a request: forwarded (proxy/fwd.c) or our own (services/uac.c) */
	struct buf resp_out; /* a response: replies (proxy/reply.c), forwarded or local (fwd.c) */
	struct buf txn_out;  /* an ACK or CANCEL of a client transaction (txn.c), which may be
			      * built inside a response callback while resp_out is in use */
	struct buf
	    reply_hdrs; /* header lines a service hands to proxy_reply, which reads them
			 * while it builds the reply in resp_out (the registrar's Contacts) */
	struct worker_stats stats;
};

int worker_create(struct server *srv, unsigned id, struct worker **out);
/* Starts the thread running the loop. */
int worker_start(struct worker *w);
/* Asks the loop to exit and joins the thread. */
void worker_stop(struct worker *w);
void worker_destroy(struct worker *w);

/*
 * Arms a timer event of w's loop for ms milliseconds. Timers of one duration
 * share a FIFO queue (libevent's common timeouts), so a worker with tens of
 * thousands of transactions pays O(1), not a heap operation, per timer.
 */
void worker_timer_add(struct worker *w, struct event *ev, unsigned ms);

/* Thread-safe: queues job on w; job->fn runs on w's thread. */
void worker_post(struct worker *w, struct wjob *job);

/*
 * Queues job->fn to run on this worker later, outside every callback now on
 * the stack: the place to free an object from inside its own callback.
 * Only from w's own thread.
 */
void worker_defer(struct worker *w, struct wjob *job);
/* Runs deferred jobs now; called by entry points before they return to the loop. */
void worker_reap(struct worker *w);

/* "Date: Sun, 22 Nov 2026 05:34:01 GMT\r\n" for now, formatted once a second. */
const char *worker_date_header(struct worker *w);

/* A per-worker unique, unpredictable-enough 64-bit value for tags and branches. */
uint64_t worker_next_id(struct worker *w);

#endif
