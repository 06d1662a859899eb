/*
 * probe.h - OPTIONS probing of the PSTN gateways: a gateway that does not
 * answer (or answers 503) is marked down and skipped by the dialplan until a
 * probe is answered again.
 */
#ifndef SB_PROXY_PROBE_H
#define SB_PROXY_PROBE_H

struct server;

/* Starts probing on worker 0 (a job posted to it); no-op without gateways to probe. */
int probe_start(struct server *srv);
/* After the workers stopped: no callback of a probe touches freed state. */
void probe_destroy(struct server *srv);

#endif
