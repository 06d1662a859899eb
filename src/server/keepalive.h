/*
 * keepalive.h - NAT keep-alives (docs/nat.md): OPTIONS to the registered
 * contacts behind NAT, so that their routers keep the binding open that
 * calls to them come in through.
 */
#ifndef SB_SERVER_KEEPALIVE_H
#define SB_SERVER_KEEPALIVE_H

struct server;

/* Starts the pinger on worker 0 (nothing when nat.keepalive_interval is 0); 0 or ENOMEM. */
int keepalive_start(struct server *srv);
/* After the workers stopped: frees it (transactions still running see none). */
void keepalive_destroy(struct server *srv);

#endif
