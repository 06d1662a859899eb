/*
 * probe.h - OPTIONS probing of the PSTN gateways: a gateway that does not
 * answer (or answers 503) is marked down and skipped by the dialplan until a
 * probe is answered again.
 */
#ifndef SB_PROXY_PROBE_H
#define SB_PROXY_PROBE_H

struct server;

/* Starts probing on worker 0 (a job posted to it); no-op when probing is off. */
int probe_start(struct server *srv);
/* From any thread: the routing rules changed; worker 0 probes the new gateways at once. */
void probe_rules_changed(struct server *srv);
/* After the workers stopped: no callback of a probe touches freed state. */
void probe_destroy(struct server *srv);

#endif
