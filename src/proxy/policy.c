/*
 * policy.c - call policy as the routing steps of the pipeline apply it (a
 * local user's forwarding, feature codes, calls leaving the domain): the
 * caller's outgoing call barring and the routing rules in force, from the
 * services that hold them.
 */
#include "proxy/internal.h"

#include <stdio.h>

#include "core/log.h"
#include "server/worker.h"
#include "services/settings.h"

bool proxy_barred(struct worker *w, const struct uset_bar *b, const char *payer, sv_t target,
		  bool internal, char *reason, size_t len)
{
	char why[64];

	if (!b || uset_bar_check(b, w->barring, target, internal, why, sizeof(why)) ==
		      USET_ALLOWED)
		return false;
	w->stats.calls_barred++;
	log_info("call by %s to %s'%.*s' barred: %s", payer, internal ? "our user " : "",
		 (int)target.len, target.p, why);
	snprintf(reason, len, "Call barred: %s", why);
	return true;
}
