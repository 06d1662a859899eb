/*
 * auth.h - SIP digest authentication (RFC 2617 / RFC 3261 22, RFC 8760
 * SHA-256) against HA1 hashes, with stateless nonces.
 *
 * A nonce is an HMAC-SHA-256 over its issue time and an index, keyed by a
 * server secret: the server keeps no per-nonce state to know that a nonce is
 * its own and fresh. The one piece of state is a fixed-size table of the last
 * nonce-count seen per nonce index, so that a replayed nc is refused; when a
 * slot is reused by a newer nonce the older one just becomes stale, which
 * costs the client one extra challenge, never a failure.
 *
 * struct auth is shared by all workers (read-only but for the atomic nc
 * table); struct auth_hasher holds a worker's reusable OpenSSL contexts.
 */
#ifndef SB_SERVICES_AUTH_H
#define SB_SERVICES_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "core/sv.h"
#include "sip/sip.h"

enum auth_alg { AUTH_ALG_MD5 = 0, AUTH_ALG_SHA256, AUTH_ALG_COUNT };

struct auth;
struct auth_hasher;

/* algs: offered order, most preferred first. secret may be NULL/0 for a random one. */
int auth_create(const unsigned char *secret, size_t secret_len, unsigned nonce_ttl_s,
		const enum auth_alg *algs, size_t nalgs, struct auth **out);
void auth_destroy(struct auth *a);

int auth_hasher_create(struct auth_hasher **out);
void auth_hasher_destroy(struct auth_hasher *h);

/* Credentials from one Authorization / Proxy-Authorization header value. */
struct auth_cred {
	sv_t username;
	sv_t realm;
	sv_t nonce;
	sv_t uri;
	sv_t response;
	sv_t algorithm; /* empty = MD5 */
	sv_t cnonce;
	sv_t opaque;
	sv_t qop;
	sv_t nc;
	enum auth_alg alg;
	bool alg_known;
};

/* Parses "Digest k=v, k="v", ..." ; 0, EINVAL (malformed), ENOTSUP (not Digest). */
int auth_cred_parse(sv_t value, struct auth_cred *c);
/* The same for a WWW-/Proxy-Authenticate value (a gateway's challenge): realm and nonce needed. */
int auth_challenge_parse(sv_t value, struct auth_cred *c);

/*
 * Finds the credentials for realm among all headers with id hdr
 * (SIP_H_AUTHORIZATION or SIP_H_PROXY_AUTHORIZATION) of m. Headers of other
 * schemes or realms are skipped. 0, ENOENT (none for that realm), EINVAL.
 */
int auth_find_cred(const struct sip_msg *m, enum sip_hdr_id hdr, sv_t realm, struct auth_cred *out);

/*
 * True when the credentials' uri parameter names the Request-URI ruri (RFC
 * 3261 22.4, RFC 7616 3.4.6): the same string, or, for sip: and sips: URIs,
 * equal by the rules of RFC 3261 19.1.4. Credentials computed for another
 * Request-URI must not authorise this one.
 */
bool auth_uri_matches(sv_t cred_uri, sv_t ruri);

enum auth_result {
	AUTH_OK = 0,
	AUTH_STALE,  /* our nonce, correctly answered, but expired or its slot reused */
	AUTH_REPLAY, /* correct answer, but the nonce-count was not fresh */
	AUTH_FAILED, /* wrong response, foreign or forged nonce, bad qop/uri: same answer as unknown
			user */
};

/*
 * Checks a response against the HA1 (hex) of the credentials' algorithm.
 * method is the request's method; now is time(NULL). ha1 NULL means the user
 * does not exist: the work done is the same, so timing does not tell.
 */
enum auth_result auth_verify(struct auth *a, struct auth_hasher *h, const struct auth_cred *c,
			     sv_t method, const char *ha1, time_t now);

/*
 * Appends the challenge header lines (one per offered algorithm, all with
 * the same fresh nonce): "WWW-Authenticate: ..." or, with proxy,
 * "Proxy-Authenticate: ...", each ending in CRLF.
 */
void auth_challenge(struct auth *a, struct auth_hasher *h, struct buf *out, bool proxy, sv_t realm,
		    bool stale, time_t now);

/* The same, offering only the algorithms in alg_mask (bits 1 << enum auth_alg); all
 * offered ones when none of them is in the mask. */
void auth_challenge_for(struct auth *a, struct auth_hasher *h, struct buf *out, bool proxy,
			sv_t realm, bool stale, time_t now, unsigned alg_mask);

/* Lower-case hex digest of data with the algorithm's hash; out >= 65 bytes.
 * out is left empty ("") if OpenSSL fails (allocation). */
void auth_hash_hex(struct auth_hasher *h, enum auth_alg alg, const void *data, size_t len,
		   char *out);

/*
 * The digest "response" value a client computes, for tests and for answering
 * the challenges of gateways we authenticate to:
 * H(ha1:nonce:nc:cnonce:qop:H(method:uri)), or H(ha1:nonce:H(method:uri))
 * when qop is empty. ha1 is lower-case hex; out >= 65 bytes, lower-case hex,
 * empty ("") if OpenSSL fails.
 */
void auth_response_hex(struct auth_hasher *h, enum auth_alg alg, const char *ha1, sv_t nonce,
		       sv_t nc, sv_t cnonce, sv_t qop, sv_t method, sv_t uri, char *out);

#endif
