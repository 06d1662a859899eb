/*
 * overload.h - overload control (RFC 7339, loss-based): shed new work early
 * when a worker falls behind, and tell the servers on both sides about it.
 *
 * Each worker measures its queueing delay: how long a datagram waited
 * between the kernel receiving it (SO_TIMESTAMPNS) and the worker handling
 * it, smoothed (EWMA). Every control interval the fraction of new
 * out-of-dialog requests to refuse is adjusted: up while the delay is above
 * the threshold, down while it is below. A refused request gets 503 with
 * Retry-After right after the request line and the few headers a reply
 * needs were read: no authentication, no lookup, no transaction. ACK,
 * CANCEL, in-dialog requests and responses are always handled: established
 * calls keep working whatever the load.
 *
 * Upstream, a client that put "oc" in its Via learns the fraction in every
 * response (oc=N;oc-algo="loss";oc-validity=ms;oc-seq=s.frac), oc=0 when
 * all is well. Such a client drops that share of its new requests itself,
 * which spares the worker the receive, parse, 503 and ACK of each: at ten
 * times its capacity, answering every excess request with 503 is more than
 * a worker can do (docs/benchmarks.md). Downstream, a server that answers
 * with oc=N in our Via gets N % fewer new requests from us while its report
 * is valid; those not sent fail like a 503 from it, so a search moves on to
 * the next gateway.
 *
 * The state is per worker (struct ovl) and touched only by its worker; the
 * functions taking a clock (now_ns, CLOCK_REALTIME nanoseconds) are pure
 * apart from that state, which the unit tests drive with a fake clock.
 */
#ifndef SB_PROXY_OVERLOAD_H
#define SB_PROXY_OVERLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "request/request.h"
#include "sip/sip.h"
#include "transport/tport.h"

struct ovl;

struct ovl_params {
	bool enabled;
	uint32_t delay_ms;    /* the queueing delay the controller holds the worker under */
	uint32_t retry_after; /* seconds, in the 503 of a shed request; 0 = none */
	uint32_t validity_ms; /* oc-validity advertised while overloaded */
};

/* Control interval and EWMA time constant. */
#define OVL_INTERVAL_NS (100 * 1000000LL)
#define OVL_TAU_NS	(100 * 1000000LL)
/* Downstream servers whose reports are kept, per worker; beyond it the oldest goes. */
#define OVL_DEST_MAX 64

enum ovl_verdict { OVL_ADMIT = 0, OVL_SHED };

struct ovl_stats {
	uint64_t samples;      /* delays measured */
	uint64_t shed;	       /* new requests refused with 503 */
	uint64_t dest_shed;    /* requests not sent to a downstream server that asked for less */
	uint64_t overloaded;   /* control intervals spent shedding */
	uint32_t delay_us;     /* smoothed queueing delay now */
	uint32_t max_delay_us; /* largest single delay measured */
	unsigned reduction;    /* % of new requests refused now */
	unsigned ndest;	       /* downstream reports held */
};

int ovl_create(const struct ovl_params *p, struct ovl **out);
void ovl_destroy(struct ovl *o);

/* One measured delay: the message was received by the kernel at rx_ns. */
void ovl_sample(struct ovl *o, int64_t rx_ns, int64_t now_ns);
/* Is a new out-of-dialog request taken (or refused: OVL_SHED, counted)? */
enum ovl_verdict ovl_admit(struct ovl *o, int64_t now_ns);
/* The percentage of new requests refused now (0..100). */
unsigned ovl_reduction(struct ovl *o, int64_t now_ns);
void ovl_stats_get(struct ovl *o, int64_t now_ns, struct ovl_stats *st);
/*
 * The parameters to put in an upstream client's Via (";oc=N;oc-algo=\"loss\"
 * ;oc-validity=ms;oc-seq=s.frac") into buf; their length, 0 when they do
 * not fit.
 */
size_t ovl_oc_params(struct ovl *o, int64_t now_ns, char *buf, size_t len);

/* A downstream server's report (the oc parameters of our Via in its response). */
void ovl_dest_update(struct ovl *o, const struct tp_addr *a, const struct sip_via_oc *oc,
		     int64_t now_ns);
/* Is a new request sent to a (or dropped as the server asked: OVL_SHED, counted)? */
enum ovl_verdict ovl_dest_admit(struct ovl *o, const struct tp_addr *a, int64_t now_ns);

/* CLOCK_REALTIME in nanoseconds, the clock of the kernel's receive timestamps. */
int64_t ovl_now(void);

/*
 * The routing core's hook, right after the request checks: PROXY_DONE when
 * the request was refused (503 sent), PROXY_CONTINUE otherwise. Only new
 * out-of-dialog requests (not ACK, CANCEL, in-dialog, a redelivery or a
 * retransmission of a transaction in progress) can be refused. A request
 * that came in on a dialog port (udp.dialog_port, transport/udp.c) and is
 * not in a dialog of ours is dropped (counted in rx_dport_strangers): that
 * port is read first, for established calls only.
 */
enum proxy_step ovl_request(struct preq *r);
/*
 * For a response going upstream whose top Via is via: the spans of via to
 * drop and the text to append to it (the RFC 7339 parameters) when the
 * client declared support; returns the number of spans, and *textn 0 when
 * there is nothing to change.
 */
size_t ovl_reply_via(struct worker *w, const struct sip_via *via, sv_t drop[SIP_OC_NSPANS],
		     char *text, size_t textlen, size_t *textn);
/* A response from downstream to a request we sent to dest: its report, if any, is kept. */
void ovl_response(struct worker *w, struct sip_msg *resp, const struct tp_addr *dest);
/* What our Via in requests we forward says: ";oc;oc-algo=\"loss\"" or "". */
const char *ovl_via_support(const struct worker *w);

#endif
