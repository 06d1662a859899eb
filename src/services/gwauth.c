/*
 * gwauth.c - outbound digest for the dialplan's gateways (gwauth.h): picks
 * the gateway's challenge we can answer and writes our credentials for it.
 * It lived inside the proxy's forwarding code; it is the gateways' and
 * their accounts' concern, so it sits with the dialplan.
 */
#include "services/gwauth.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "core/log.h"
#include "services/auth.h"
#include "services/dialplan.h"

/* The gateway's challenge we can answer: our realm, an algorithm we have the HA1 for. */
static bool pick_challenge(const struct sip_msg *resp, const struct dp_cred *cr,
			   struct auth_cred *out, const char **ha1)
{
	enum sip_hdr_id id =
	    resp->status == 401 ? SIP_H_WWW_AUTHENTICATE : SIP_H_PROXY_AUTHENTICATE;
	bool found = false;

	for (struct sip_hdr *h = sip_msg_hdr(resp, id); h; h = sip_msg_hdr_next(resp, h)) {
		struct auth_cred c;
		if (auth_challenge_parse(h->value, &c) || !c.alg_known ||
		    !sv_ieq(c.realm, sv_cstr(cr->realm)))
			continue;
		if (c.alg == AUTH_ALG_SHA256 && cr->ha1_sha256[0]) {
			*out = c; /* the stronger one wins */
			*ha1 = cr->ha1_sha256;
			return true;
		}
		if (c.alg == AUTH_ALG_MD5 && cr->ha1_md5[0] && !found) {
			*out = c;
			*ha1 = cr->ha1_md5;
			found = true;
		}
	}
	return found;
}

/* qop="auth,auth-int": we do "auth" (the body is not ours to hash). */
static bool offers_auth(sv_t q)
{
	while (q.len) {
		ptrdiff_t c = sv_find(q, ',');
		sv_t one = sv_trim(c < 0 ? q : sv_sub(q, 0, (size_t)c));
		if (sv_ieq(one, SV("auth")))
			return true;
		q = c < 0 ? SV_NULL : sv_sub(q, (size_t)c + 1, q.len);
	}
	return false;
}

static int write_line(const struct gwauth_req *q, const struct dp_cred *cr,
		      const struct auth_cred *ch, const char *ha1, struct buf *line)
{
	bool qop = offers_auth(ch->qop);
	char cnonce[17], resp[65];
	size_t at = line->len;

	sv_hex64(cnonce, q->cnonce);
	cnonce[16] = '\0';
	auth_response_hex(q->hasher, ch->alg, ha1, ch->nonce, qop ? SV("00000001") : SV_NULL,
			  qop ? sv_make(cnonce, 16) : SV_NULL, qop ? SV("auth") : SV_NULL,
			  sip_method_name(q->method), q->uri, resp);
	if (!resp[0])
		return ENOMEM;
	buf_printf(line,
		   "%s: Digest username=\"%s\", realm=\"%s\", nonce=\"%.*s\", uri=\"%.*s\", "
		   "response=\"%s\", algorithm=%s",
		   q->challenge->status == 401 ? "Authorization" : "Proxy-Authorization", cr->user,
		   cr->realm, (int)ch->nonce.len, ch->nonce.p, (int)q->uri.len, q->uri.p, resp,
		   ch->alg == AUTH_ALG_SHA256 ? "SHA-256" : "MD5");
	if (qop)
		buf_printf(line, ", qop=auth, nc=00000001, cnonce=\"%s\"", cnonce);
	if (ch->opaque.p)
		buf_printf(line, ", opaque=\"%.*s\"", (int)ch->opaque.len, ch->opaque.p);
	buf_append_str(line, "\r\n");
	if (line->err) {
		line->len = at; /* a limit hit is an error, never a line cut short */
		line->err = 0;
		return ENOSPC;
	}
	return 0;
}

enum gwauth_verdict gwauth_answer(const struct gwauth_req *q, struct buf *line)
{
	const struct dp_gateway *g =
	    q->dp && q->gateway >= 0 ? dp_gateway(q->dp, (unsigned)q->gateway) : NULL;
	struct auth_cred ch;
	const char *ha1 = NULL;
	int err;

	if (!g || !g->cred.user[0])
		return GWAUTH_NOT_OURS;
	if (q->answered) {
		log_warn("gateway %s refused our credentials (user %s, realm %s): failing over",
			 g->name, g->cred.user, g->cred.realm);
		return GWAUTH_REFUSED;
	}
	if (!pick_challenge(q->challenge, &g->cred, &ch, &ha1)) {
		log_warn("gateway %s: no challenge for realm %s with an algorithm we have a hash "
			 "for: failing over",
			 g->name, g->cred.realm);
		return GWAUTH_REFUSED;
	}
	err = write_line(q, &g->cred, &ch, ha1, line);
	if (err) {
		log_warn("gateway %s: our credentials could not be written (%s): failing over",
			 g->name, err == ENOSPC ? "no room left for headers" : "out of memory");
		return GWAUTH_REFUSED;
	}
	return GWAUTH_ANSWER;
}
