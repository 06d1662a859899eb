/*
 * challenge.h - digest authentication of a request as the proxy and the
 * registrar need it: find the credentials for our realm, look the user up
 * in the subscriber cache, verify, and answer with a challenge when that
 * fails, the same way whether the user exists or not.
 */
#ifndef SB_SERVICES_CHALLENGE_H
#define SB_SERVICES_CHALLENGE_H

#include "request/request.h"

enum challenge_kind {
	CHALLENGE_WWW,	 /* 401 / Authorization: a registrar or UAS */
	CHALLENGE_PROXY, /* 407 / Proxy-Authorization: a proxy */
};

/*
 * PROXY_CONTINUE when the request carries valid credentials of `user` for
 * `realm`; otherwise the request has been answered (challenge, 400, 403,
 * 503) or suspended for a subscriber lookup. With allow_replay, a correct
 * answer whose nonce-count was already used continues with *replay set
 * (the registrar accepts it for an exact retransmission only, as a dry run
 * that changes nothing). Credentials whose uri is not the Request-URI get 400.
 */
enum proxy_step challenge_check(struct preq *r, enum challenge_kind kind, sv_t realm, sv_t user,
				bool allow_replay, bool *replay);
/*
 * The pipeline's authentication phase: an initial request that claims one of
 * our users proves it (407); r->auth_realm gets the realm it was checked in.
 */
enum proxy_step challenge_phase(struct preq *r, void *arg);
/* Sends a fresh challenge (stale or not). */
void challenge_send(struct preq *r, enum challenge_kind kind, sv_t realm, bool stale);

#endif
