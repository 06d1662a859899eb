/*
 * gwauth.h - our account's answer to a PSTN gateway's digest challenge
 * (outbound digest, docs/call-services.md): a 401/407 from a gateway for
 * which the dialplan holds credentials (struct dp_cred) gets one
 * Authorization / Proxy-Authorization line of ours.
 *
 * This is the gateways' business, not RFC 3261 section 16's: the forwarding
 * core (proxy/fwd.c) only asks here when a branch the dialplan made is
 * challenged, and re-sends the request on a new branch with the line it
 * gets. Whether a branch may use our account at all (one the dialplan made,
 * for a caller we bill) is decided there, before asking.
 */
#ifndef SB_SERVICES_GWAUTH_H
#define SB_SERVICES_GWAUTH_H

#include <stdint.h>

#include "core/buf.h"
#include "core/sv.h"
#include "sip/sip.h"

struct dp;
struct auth_hasher;

enum gwauth_verdict {
	GWAUTH_NOT_OURS, /* no credentials for this gateway: the challenge is the caller's */
	GWAUTH_ANSWER,	 /* the line is made: send the request again with it */
	GWAUTH_REFUSED,	 /* ours did not do (a second challenge, another realm, no algorithm
			    we hold a hash for, no room): the gateway failed, logged */
};

struct gwauth_req {
	const struct dp *dp; /* the rules in force */
	int gateway;	     /* dp's index of the gateway the branch went to, -1 = none */
	const struct sip_msg *challenge; /* its 401 or 407 */
	unsigned answered;		 /* times this branch was answered already (once at most) */
	enum sip_method method;
	sv_t uri;		    /* the Request-URI the branch carries */
	struct auth_hasher *hasher; /* the worker's */
	uint64_t cnonce;	    /* fresh for this answer */
};

/*
 * Appends "Authorization: Digest ...\r\n" (401) or "Proxy-Authorization: ..."
 * (407) to line: SHA-256 when the gateway offers it and we have its HA1, else
 * MD5; qop=auth when offered; the opaque returned. On GWAUTH_REFUSED or
 * GWAUTH_NOT_OURS line is left as it was.
 */
enum gwauth_verdict gwauth_answer(const struct gwauth_req *q, struct buf *line);

#endif
