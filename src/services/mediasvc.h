/*
 * mediasvc.h - the media relay wired into calls (issue 14 section 1): which
 * calls are anchored on the relay (media.mode), one relay engine per worker,
 * one relay session per call owned by the worker that handled its INVITE,
 * the SDP of every forwarded INVITE, 18x, 2xx, ACK, re-INVITE, UPDATE and
 * PRACK rewritten to name the relay, the ports freed when the attempt fails
 * or the dialog ends, the relay's counters copied into the dialog for
 * billing, and the media timeout that ends a silent call.
 *
 * Why it exists: src/media has the SDP rewriter and the relay engine, but
 * something has to decide per call, follow the offer/answer exchanges of a
 * call through the proxy, and keep the sessions' ownership straight across
 * workers. This module plugs in by registration only: the server hands its
 * msvc_on_request / msvc_on_response to the proxy's forwarding hooks, and
 * msvc_create registers the dialog hooks; nothing calls it by name.
 *
 * Threads: a session is touched (relay sockets, counters) only by its owner
 * worker. Other workers see, under one mutex, the session's registry entry:
 * the relay addresses each side's SDP is rewritten with. A message with SDP
 * that arrives on another worker (an in-dialog request) is rewritten from
 * that entry at once, and its SDP is posted to the owner's inbox, which
 * applies it to the relay (new addresses, latching window).
 */
#ifndef SB_SERVICES_MEDIASVC_H
#define SB_SERVICES_MEDIASVC_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/sv.h"
#include "dialog/dialog.h"

struct msvc;
struct worker;
struct sip_msg;
struct sip_edit_list;
struct tp_addr;

struct msvc_conf {
	enum cfg_media_mode mode;
	bool gateways;		   /* calls to PSTN gateways always relayed */
	uint16_t port_lo, port_hi; /* the whole range; each worker gets its share */
	const char *bind;	   /* IPv4 the sockets bind to */
	const char *advertise;	   /* IPv4 written in SDP (NULL or "" = bind) */
	uint32_t latch_window_ms, quarantine_ms;
	uint32_t timeout_ms; /* media timeout, 0 = off */
	unsigned nworkers;
	struct dlg_table *dlg;
	/* sends the BYEs of a dialog the media timeout ends (server/calls.h) */
	dlg_end_fn end;
	void *end_arg;
};

struct msvc_stats {
	uint64_t sessions;	 /* calls with media on the relay now */
	uint64_t ports_in_use;	 /* relay ports allocated now (RTP and RTCP) */
	uint64_t created;	 /* sessions created since start */
	uint64_t forwarded;	 /* packets forwarded */
	uint64_t dropped;	 /* packets dropped, all reasons */
	uint64_t drop_foreign;	 /* ... of which from a source latching refused */
	uint64_t media_timeouts; /* calls ended by the media timeout */
	uint64_t errors;	 /* SDP not relayed: unparseable, pool dry, too many streams */
	uint64_t remote_updates; /* SDP seen on a worker other than the session's owner */
};

/* The module, with its dialog hooks registered on c->dlg. 0 or an errno. */
int msvc_create(const struct msvc_conf *c, struct msvc **out);
/* After every worker was detached and destroyed. */
void msvc_destroy(struct msvc *ms);

/*
 * The worker's relay engine, on its event base, over its share of the port
 * range: before the worker's thread starts. 0 or an errno (EINVAL: the
 * range is too small for this many workers).
 */
int msvc_worker_attach(struct msvc *ms, struct worker *w);
/* After the worker's thread stopped: its sessions and engine are freed. */
void msvc_worker_detach(struct msvc *ms, struct worker *w);

/*
 * The proxy's forwarding hooks (proxy/proxy.h): a request on a branch, a
 * response going upstream. They may add the edits that replace the body and
 * its Content-Length; what they insert lives in w's scratch of this module
 * until the next call on that worker.
 */
struct msvc_branch {
	const struct tp_addr *from; /* where the request came from (NULL: unknown) */
	const struct tp_addr *to;   /* where this branch sends it (NULL: unknown) */
	sv_t target_uri;	    /* a registered Contact it goes to, empty when none */
	bool gateway;		    /* to a PSTN gateway the dialplan chose */
};
void msvc_on_request(struct msvc *ms, struct worker *w, struct sip_msg *m,
		     const struct msvc_branch *br, bool in_dialog, struct sip_edit_list *l);
void msvc_on_response(struct msvc *ms, struct worker *w, struct sip_msg *m,
		      const struct tp_addr *from, struct sip_edit_list *l);

/*
 * A BYE, before the dialog layer ends the call: on the owner of the call's
 * relay session, the relay's final counters go into the dialog now (the
 * billing record reads them in on_terminated) and it returns false; on
 * another worker it returns true with *owner, the worker to hand the BYE to.
 * False for a call we do not relay.
 */
bool msvc_bye(struct msvc *ms, struct worker *w, struct sip_msg *m, unsigned *owner);

/* Totals over the workers (what they published at their last change or tick). */
void msvc_stats_get(struct msvc *ms, struct msvc_stats *out);

/*
 * nat mode: does this INVITE's sender look behind NAT (its Contact host or
 * its SDP address is not where the message came from, or the SDP address is
 * private while the source is not)? Exposed for the unit test.
 */
bool msvc_nat_suspect(sv_t contact_host, sv_t sdp_addr, const struct tp_addr *from);
/* ... and the callee: its registered Contact's host is not where it registered from. */
bool msvc_nat_callee(sv_t target_uri, const struct tp_addr *to);

#endif
