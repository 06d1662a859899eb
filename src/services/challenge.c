/*
 * challenge.c - the glue between a request, the subscriber cache and the
 * digest module.
 *
 * An unknown user and a wrong password get the same fresh challenge, built
 * after the same amount of work (auth_verify hashes with a dummy HA1 for an
 * unknown user), so neither the answer nor its timing tells which it was.
 *
 * Every request is verified in full, the nonce-count replay check included,
 * and once: one that waits for its subscriber resumes here before
 * verification, and one that waits later (the callee's settings) resumes
 * after this phase (request/request.h), so nothing is relaxed for it.
 *
 * A user's allow_sources (issue 12) confines where their credentials count:
 * from any other address, even the right password gets what a wrong one
 * gets (the same fresh challenge, the same charge to the flood budget), so
 * a stolen password is useless from elsewhere and the answer tells nothing.
 */
#include "services/challenge.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/auth.h"
#include "services/flood.h"
#include "services/settings.h"
#include "services/users.h"

/*
 * Some deployed clients give up when any challenge is SHA-256 instead of
 * using the MD5 one next to it (RFC 8760 says to skip what they cannot do);
 * auth.md5_only_user_agents names them, and they are offered MD5 alone.
 */
static unsigned offered_algorithms(struct preq *r)
{
	sv_t ua = sip_msg_value(r->m, SIP_H_USER_AGENT);
	const struct cfg *c = &r->srv->cfg;

	for (size_t i = 0; ua.len && i < c->nmd5_only_ua; i++) {
		if (memmem(ua.p, ua.len, c->md5_only_ua[i], strlen(c->md5_only_ua[i])))
			return 1u << AUTH_ALG_MD5;
	}
	return ~0u;
}

void challenge_send(struct preq *r, enum challenge_kind kind, sv_t realm, bool stale)
{
	struct buf hdrs;
	char storage[1024];

	buf_init_fixed(&hdrs, storage, sizeof(storage));
	auth_challenge_for(r->srv->auth, r->w->hasher, &hdrs, kind == CHALLENGE_PROXY, realm, stale,
			   time(NULL), offered_algorithms(r));
	proxy_reply(r, kind == CHALLENGE_PROXY ? 407 : 401, NULL, buf_sv(&hdrs));
}

enum proxy_step challenge_check(struct preq *r, enum challenge_kind kind, sv_t realm, sv_t user,
				bool allow_replay, bool *replay)
{
	enum sip_hdr_id hdr =
	    kind == CHALLENGE_PROXY ? SIP_H_PROXY_AUTHORIZATION : SIP_H_AUTHORIZATION;
	struct users_entry ue;
	enum proxy_step step;
	struct auth_cred c;
	const char *ha1;
	enum auth_result res;
	int err;

	if (replay)
		*replay = false;
	err = auth_find_cred(r->m, hdr, realm, &c);
	if (err == ENOENT) {
		challenge_send(r, kind, realm, false);
		return PROXY_DONE;
	}
	if (err) {
		proxy_reply(r, 400, "Malformed credentials", SV_NULL);
		return PROXY_DONE;
	}
	if (r->srv->cfg.auth_check_uri && !auth_uri_matches(c.uri, r->m->ruri_raw)) {
		log_debug("digest uri '%.*s' is not the Request-URI '%.*s'", SV_ARG(c.uri),
			  SV_ARG(r->m->ruri_raw));
		proxy_reply(r, 400, "Authorization URI does not match Request-URI", SV_NULL);
		return PROXY_DONE;
	}
	if (!sv_eq(c.username, user)) {
		proxy_reply(r, 403, "Credentials do not match the user", SV_NULL);
		return PROXY_DONE;
	}
	step = users_of_request(r, c.username, realm, &ue);
	if (step != PROXY_CONTINUE)
		return step;
	ha1 = !ue.exists ? NULL : c.alg == AUTH_ALG_SHA256 ? ue.ha1_sha256 : ue.ha1_md5;
	res = auth_verify(r->srv->auth, r->w->hasher, &c, r->m->method_name, ha1, time(NULL));
	if (res != AUTH_FAILED && ue.exists && ue.settings[0] &&
	    !uset_line_source_allowed(sv_cstr(ue.settings), &r->src->peer.u.sa)) {
		/* right password, wrong network: answered as a wrong password */
		log_info("credentials of %.*s@%.*s refused: source not in the user's allow_sources",
			 SV_ARG(c.username), SV_ARG(realm));
		res = AUTH_FAILED;
	}
	switch (res) {
	case AUTH_OK:
		r->authenticated = true;
		tp_conn_mark_trusted(r->srv->tp, r->src->conn_id);
		flood_request_auth(r->srv->flood, r, true);
		return PROXY_CONTINUE;
	case AUTH_REPLAY:
		if (allow_replay && replay) {
			*replay = true;
			return PROXY_CONTINUE;
		}
		challenge_send(r, kind, realm, true);
		return PROXY_DONE;
	case AUTH_STALE:
		challenge_send(r, kind, realm, true);
		return PROXY_DONE;
	default:
		log_debug("authentication failed for %.*s@%.*s", SV_ARG(c.username), SV_ARG(realm));
		if (!flood_request_auth(r->srv->flood, r,
					false)) /* a banned source's guesses get no answer */
			challenge_send(r, kind, realm, false);
		return PROXY_DONE;
	}
}

/*
 * Who must prove who they are: every request that claims one of our users,
 * out of any dialog of ours. ACK and CANCEL cannot be challenged (they are
 * matched to a transaction or a signed route set instead); a BYE or PRACK
 * is exempt only inside a dialog of ours.
 */
static bool needs_auth(const struct preq *r)
{
	switch (r->m->method) {
	case SIP_ACK:
	case SIP_CANCEL:
	case SIP_REGISTER:
		return false;
	default:
		return r->srv->cfg.auth_enabled && r->from_local && !r->in_dialog && !r->trusted;
	}
}

/* The realm a From identity is checked in: its domain; for tel: the Request-URI's or ours. */
static int auth_realm(struct preq *r, const struct sip_uri *fu, char *realm, size_t len)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	sv_t host = fu->host;

	if (fu->kind != SIP_SCHEME_SIP && fu->kind != SIP_SCHEME_SIPS) {
		if (ruri && r->ruri_local)
			host = ruri->host;
		else if (r->srv->cfg.ndomains)
			host = sv_cstr(r->srv->cfg.domains[0]);
		else
			return EINVAL;
	}
	if (host.len && host.p[host.len - 1] == '.')
		host.len--; /* example.com. is example.com */
	if (host.len == 0 || host.len >= len)
		return EINVAL;
	for (size_t i = 0; i < host.len; i++)
		realm[i] = sv_lower_char(host.p[i]);
	realm[host.len] = '\0';
	return 0;
}

/* Initial requests of local users are authenticated with 407 (RFC 3261 22.3). */
enum proxy_step challenge_phase(struct preq *r, void *arg)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct sip_uri fu;
	char realm[STORE_DOMAIN_MAX];
	enum proxy_step step;
	(void)arg;
	if (!needs_auth(r))
		return PROXY_CONTINUE;
	if (sip_uri_parse(from->uri, &fu) || auth_realm(r, &fu, realm, sizeof(realm))) {
		proxy_reply(r, 403, "Caller identity cannot be authenticated", SV_NULL);
		return PROXY_DONE;
	}
	if (strlen(realm) >= sizeof(r->auth_realm)) {
		proxy_reply(r, 403, "Caller identity cannot be authenticated", SV_NULL);
		return PROXY_DONE;
	}
	memcpy(r->auth_realm, realm, strlen(realm) + 1);
	/* verified in full, nonce-count replay check included: a request that waited for
	 * the subscriber resumes here, before verification, and is verified once */
	step = challenge_check(r, CHALLENGE_PROXY, sv_cstr(realm), fu.user, false, NULL);
	if (step == PROXY_CONTINUE)
		r->authenticated = true;
	return step;
}
