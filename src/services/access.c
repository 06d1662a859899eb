/*
 * access.c - may this caller make this call: the global black and white
 * lists, and the outgoing call barring of one of our users (issue 12), as
 * handlers of the pipeline's access phase (proxy/proxy.h), after
 * authentication has said who the caller is.
 */
#include "services/access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/worker.h"
#include "services/lists.h"
#include "services/rules.h"
#include "services/settings.h"
#include "services/users.h"

void access_reply_blocked(struct preq *r, const char *why)
{
	sv_t caller = proxy_caller_user(r);
	unsigned st = rules_lists(rules_of_request(r))->block_status;

	r->w->stats.calls_blocked++;
	log_info("call from '%.*s' to %.*s blocked: %s", (int)caller.len, caller.p,
		 (int)r->m->ruri_raw.len, r->m->ruri_raw.p, why);
	proxy_reply(r, st, st == 603 ? "Declined" : "Call blocked", SV_NULL);
}

/*
 * The global black and white lists, for calls and messages from anyone. They
 * run after authentication: a white list entry for a caller counts only for
 * an identity that was checked (authenticated, or from a trusted peer); the
 * block lists apply to whatever the request claims.
 */
enum proxy_step access_lists_handle(struct preq *r, void *arg)
{
	const struct lists_global *g;
	const struct sip_uri *ruri;
	const char *why;

	(void)arg;
	if (r->in_dialog || (r->m->method != SIP_INVITE && r->m->method != SIP_MESSAGE))
		return PROXY_CONTINUE;
	g = rules_lists(rules_of_request(r));
	if (lists_global_empty(g))
		return PROXY_CONTINUE; /* the common case: nothing to look at */
	ruri = sip_msg_ruri(r->m);
	if (lists_global_check(g, proxy_caller_user(r), r->authenticated || r->trusted,
			       ruri ? ruri->user : SV_NULL, &r->src->peer.u.sa,
			       &why) != LISTS_BLOCKED)
		return PROXY_CONTINUE;
	access_reply_blocked(r, why);
	return PROXY_DONE;
}

/*
 * The caller's outgoing call barring (issue 12): for a call (INVITE out of any
 * dialog) of one of our users who proved who they are, their settings from the
 * subscriber cache (authentication has just looked them up there). Routing
 * applies it wherever the call goes: a number through the dialplan, another
 * domain, one of our users (allow_callees_only).
 */
enum proxy_step access_caller_handle(struct preq *r, void *arg)
{
	const struct sip_naddr *from = sip_msg_from(r->m);
	struct users_entry ue;
	struct uset *set;
	struct sip_uri fu;
	enum proxy_step step;
	char why[160];
	sv_t domain;

	const bool *auth_enabled = arg; /* auth.enabled: off, an unauthenticated caller is one */

	if (r->in_dialog || r->m->method != SIP_INVITE || r->trusted || !r->from_local ||
	    !(r->authenticated || !*auth_enabled))
		return PROXY_CONTINUE;
	if (!from || sip_uri_parse(from->uri, &fu) || fu.user.len == 0)
		return PROXY_CONTINUE;
	/* the realm the credentials were checked in; with auth off, the From's domain */
	domain = r->auth_realm[0] ? sv_cstr(r->auth_realm) : fu.host;
	step = users_of_request(r, fu.user, domain, &ue);
	if (step != PROXY_CONTINUE || !ue.exists || !ue.settings[0])
		return step;
	set = malloc(sizeof(*set));
	if (!set) {
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		return PROXY_DONE;
	}
	uset_init(set);
	if (uset_parse(set, sv_cstr(ue.settings), why, sizeof(why)))
		log_warn("settings of %.*s@%.*s: %s (the rest is ignored)", SV_ARG(fu.user),
			 SV_ARG(domain), why);
	if (!uset_bar_empty(&set->out)) {
		r->caller_bar = malloc(sizeof(*r->caller_bar));
		if (!r->caller_bar) {
			free(set);
			proxy_reply(r, 500, "Out of memory", SV_NULL);
			return PROXY_DONE;
		}
		*r->caller_bar = set->out; /* freed with the request (the pipeline) */
	}
	free(set);
	return PROXY_CONTINUE;
}

struct rules *rules_of_request(struct preq *r)
{
	return rules_view_get(&r->w->rules, r->w->rules_slot);
}
