/*
 * uac.h - requests the server sends on its own behalf: NOTIFYs of the
 * presence and topic subscriptions, and the delivery of stored and broker
 * messages.
 *
 * A request goes out as an ordinary client transaction of the calling
 * worker (retransmissions and Timer F come from the transaction layer); its
 * caller learns one final status, always later on the same worker (never
 * from inside uac_send): the response's, 408 when none came back in
 * time, 503 when the transport reported a failure.
 */
#ifndef SB_SERVICES_UAC_H
#define SB_SERVICES_UAC_H

#include <stdint.h>

#include "core/sv.h"
#include "sip/sip.h"
#include "transport/tport.h"

struct worker;
struct uac;

struct uac_req {
	enum sip_method method; /* SIP_NOTIFY, SIP_MESSAGE */
	sv_t ruri;
	sv_t route; /* Route header values, comma-joined; "" = none */
	sv_t from;  /* full From header value, tag included */
	sv_t to;    /* full To header value */
	sv_t callid;
	uint32_t cseq;
	sv_t headers;	   /* extra header lines, each ending in CRLF */
	sv_t content_type; /* "" = no body */
	sv_t body;
	bool once; /* no retransmission over UDP: the peer has not proven its return path */
};

/* The final status of a request; resp is NULL for 408/503 made here. */
typedef void (*uac_done_fn)(void *arg, unsigned status, const struct sip_msg *resp);

/*
 * Sends rq to peer (over connection conn_id when it is still open). done
 * runs once, later, on w; *out (may be NULL) lets the caller forget the
 * request before that. Returns 0 or an errno (done does not run then).
 */
int uac_send(struct worker *w, const struct tp_addr *peer, uint32_t conn_id,
	     const struct uac_req *rq, uac_done_fn done, void *arg, struct uac **out);
/* The caller is going away: done will not run for this request. */
void uac_forget(struct uac *u);

#endif
