/*
 * home.h - the home of the stateful user services: offline messages
 * (RFC 3428 store-and-forward), presence (RFC 3903 PUBLISH, RFC 6665
 * SUBSCRIBE/NOTIFY with RFC 3863 PIDF, RFC 3857 watcher information,
 * RFC 3842 message summaries) and the IM broker's topics.
 *
 * Their state lives on one worker, the home worker (worker 0): requests
 * for these services that arrive on another worker are delivered to it, so
 * the state needs no locks and a topic's fan-out is one loop's work. Every
 * change is written behind to the store (store_record) in batches, and read
 * back at start-up, so a restart loses nothing. One home per node is also
 * the unit a cluster would shard by AOR.
 */
#ifndef SB_SERVICES_HOME_H
#define SB_SERVICES_HOME_H

#include <stdbool.h>

#include "request/request.h"

struct server;
struct store;
struct home;

int home_create(struct server *srv, struct home **out);
void home_destroy(struct home *h);
/* Reads the saved state; on the database thread at start-up, before the workers run. */
int home_load(struct home *h, struct store *st);
/* Starts the home's timers on the home worker (posted there at start-up). */
void home_start(struct server *srv);
/* The workers have stopped: timers off, the last writes handed to the database thread. */
void home_stop(struct home *h);

/* Is this request one for the home services (MESSAGE, PUBLISH, SUBSCRIBE to our users)? */
bool home_wants(const struct preq *r);
/* Handles it on the home worker (after authentication). */
enum proxy_step home_handle(struct preq *r);
/* An in-dialog request to this server itself: a subscription refresh. PROXY_CONTINUE if not ours.
 */
enum proxy_step home_handle_in_dialog(struct preq *r);
/* The worker requests for the home go to. */
unsigned home_worker(const struct server *srv);

/*
 * Offline messages, for the proxy's routing of a MESSAGE to a local user
 * (on the home worker). The request is stored and answered 202 (480 when
 * the user's store is full).
 */
enum proxy_step home_message_store(struct preq *r, const char *aor);
/* A stranger's MESSAGE to a name we do not have: the answer a kept one gets, nothing kept. */
enum proxy_step home_message_phantom(struct preq *r);
/* Who sent a MESSAGE, for the caps on what strangers store (taken from the request). */
struct home_sender {
	bool stranger; /* not authenticated as one of our users */
	struct tp_addr src;
};
void home_sender_of(const struct preq *r, struct home_sender *out);
/*
 * Stores a copy of a MESSAGE whose delivery failed: 0, ENOSPC (a cap is
 * reached: *status and *reason are the answer), EINVAL, ENOMEM.
 */
int home_message_keep(struct server *srv, const char *aor, sv_t request,
		      const struct home_sender *from, unsigned *status, const char **reason);
/* Messages wait for aor: a new one queues behind them, to keep the order. */
bool home_message_waiting(struct server *srv, const char *aor);

/* A REGISTER for aor succeeded (any worker): waiting messages go, presence may change. */
void home_registered(struct worker *w, sv_t aor);
/* Another process changed the store (the CLI): re-read topics and mailboxes. On the DB thread. */
void home_store_changed(struct server *srv);

#endif
