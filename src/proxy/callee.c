/*
 * callee.c - a request for one of our users: which of their terminals ring,
 * in what order, and where the call goes when they do not answer.
 *
 * The callee's call settings (services/settings.h) come from the subscriber
 * cache, so a change from the CLI applies to the next call. They turn into
 * a search for fwd.c: steps of targets rung together (parallel forking is
 * one step; sequential ringing is one step per terminal type; q-value
 * ringing one per q), and a policy hook that adds steps when the search
 * runs out (forwarding on busy, on no answer, when unreachable).
 *
 * Forwarding unconditionally or when nobody is registered happens before
 * the search starts: the request is retargeted, with a Diversion header
 * (RFC 5806) naming the user who forwarded it, and the target's own
 * settings apply in turn. Every forwarding counts one hop, those already in
 * the request's Diversion headers included, and calls.max_forward_hops cuts
 * loops (A forwards to B, B to A).
 *
 * Outgoing call barring (issue 12) applies to whoever the call is made for:
 * the caller who dialled, and once forwarded, the user whose forwarding
 * sends it on (bob cannot reach a barred number by forwarding his own
 * calls there). It is checked where the target becomes known: a number
 * through the dialplan, a URI of another domain, one of our users.
 *
 * A user with no settings takes the short path: all contacts in parallel,
 * as RFC 3261 16.6 forking, with no allocation beyond fwd.c's own.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "dns/dns.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/dialplan.h"
#include "services/home.h"
#include "services/lists.h"
#include "services/access.h"
#include "services/rules.h"
#include "services/settings.h"
#include "services/users.h"

#define CALLEE_MAX_TARGETS 16
#define CALLEE_FEW_TARGETS 4
#define CALLEE_MAX_STEPS   16
#define CALLEE_AOR_MAX	   (STORE_USER_MAX + STORE_DOMAIN_MAX + 4)

/* The search for one call; the policy argument of its proxy context. */
struct callee_ctx {
	struct server *srv;
	struct worker *w;
	char aor[CALLEE_AOR_MAX]; /* whose settings govern now (changes when forwarded) */
	struct uset set;
	bool exists;
	bool pstn_ok;	   /* the caller may reach gateways (proxy_caller_known) */
	bool stranger;	   /* the caller's identity was not checked: no hint who exists */
	unsigned hops;	   /* forwardings: the request's Diversion entries and ours */
	bool hi_off;	   /* the request has History-Info of its own: we add none */
	unsigned hi_depth; /* our History-Info entries after the first (index 1.1.1...) */
	unsigned hi_cause; /* RFC 4458 cause of the forwarding being made */
	/* whose outgoing call barring applies: the caller, then each forwarding user */
	bool has_payer;
	struct uset_bar payer;
	char payer_aor[CALLEE_AOR_MAX];
	char bar_reason[96];	      /* the reason phrase of a barred call */
	char hinfo[500];	      /* our History-Info lines, in index order */
	char diversion[512];	      /* our Diversion lines, newest first */
	char external[STORE_URI_MAX]; /* a forwarding target outside our users */
};

/* What resolving the callee came to. */
enum callee_res {
	CALLEE_STEPS,	 /* ring these steps */
	CALLEE_EXTERNAL, /* forwarded to a URI that is not one of our users */
	CALLEE_SUSPEND,	 /* a subscriber lookup runs; the request comes back */
	CALLEE_REPLY,	 /* answer with status */
};

struct callee_plan {
	struct fwd_target *targets; /* heap, grouped by step */
	struct fwd_step steps[CALLEE_MAX_STEPS];
	size_t nsteps;
	unsigned status;
	const char *reason;
	bool redirect; /* a dialplan rule answers 302 to its gateways */
};

/* The callee's settings: from the cache, waiting for it only when r is given. */
static enum users_lookup settings_of(struct callee_ctx *c, struct preq *r)
{
	struct users_entry ue;
	const char *at = strchr(c->aor, '@');
	enum users_lookup rc;
	sv_t user, domain;
	char why[160];

	uset_init(&c->set);
	c->exists = true; /* unknown counts as existing: 480 rather than a wrong 404 */
	if (!at)
		return USERS_ERROR;
	user = sv_make(c->aor, (size_t)(at - c->aor));
	domain = sv_cstr(at + 1);
	if (r)
		rc = users_get(c->srv->users, r, user, domain, &ue);
	else
		rc = users_peek(c->srv->users, user, domain, &ue);
	if (rc == USERS_HIT) {
		c->exists = ue.exists;
		if (ue.settings[0] && uset_parse(&c->set, sv_cstr(ue.settings), why, sizeof(why)))
			log_warn("settings of %s: %s (the rest is ignored)", c->aor, why);
	}
	return rc;
}

/*
 * Nobody to ring: 404 for a name that is no user, 480 for a user with no
 * terminal. A caller whose identity was not checked gets 404 for both (as
 * Kamailio's default configuration answers), so that a stranger cannot map
 * the user base (sipvicious svwar).
 */
static unsigned callee_absent_status(bool stranger, bool exists)
{
	return exists && !stranger ? 480 : 404;
}

/* Puts a Diversion for the current user on top; false when the hop limit is reached. */
static bool divert(struct callee_ctx *c, enum uset_fwd why)
{
	char line[CALLEE_AOR_MAX + 80];
	size_t old = strlen(c->diversion);
	int n;

	if (c->hops >= c->srv->cfg.max_forward_hops)
		return false;
	n = snprintf(line, sizeof(line), "Diversion: <sip:%s>;reason=%s;counter=1\r\n", c->aor,
		     uset_fwd_reason(why));
	if (n < 0 || (size_t)n + old >= sizeof(c->diversion))
		return false;
	memmove(c->diversion + n, c->diversion, old + 1);
	memcpy(c->diversion, line, (size_t)n);
	c->hops++;
	/* RFC 4458 causes: unconditional 302, user busy 486, no reply 408, not available 404 */
	c->hi_cause = why == USET_FWD_ALWAYS	 ? 302
		      : why == USET_FWD_BUSY	 ? 486
		      : why == USET_FWD_NOANSWER ? 408
						 : 404;
	if (!c->hi_off && !c->hinfo[0])
		snprintf(c->hinfo, sizeof(c->hinfo), "History-Info: <sip:%s>;index=1\r\n", c->aor);
	/* the forwarding user makes the call from here on: their barring applies */
	c->has_payer = !uset_bar_empty(&c->set.out);
	c->payer = c->set.out;
	memcpy(c->payer_aor, c->aor, sizeof(c->aor));
	return true;
}

/* The History-Info entry of a forwarding target (RFC 7044 10.1: mp names the entry it came from).
 */
static void history_add(struct callee_ctx *c, const char *uri)
{
	char index[64] = "1", parent[64];
	size_t len = strlen(c->hinfo);
	int n;

	if (c->hi_off || !c->hinfo[0] || c->hi_depth >= 20)
		return;
	for (unsigned i = 0; i < c->hi_depth; i++)
		strcat(index, ".1");
	memcpy(parent, index, sizeof(index));
	strcat(index, ".1");
	n = snprintf(c->hinfo + len, sizeof(c->hinfo) - len,
		     "History-Info: <%s%cReason=SIP%%3Bcause%%3D%u>;index=%s;mp=%s\r\n", uri,
		     strchr(uri, '?') ? '&' : '?', c->hi_cause, index, parent);
	if (n < 0 || (size_t)n >= sizeof(c->hinfo) - len) {
		c->hinfo[len] = '\0'; /* no room: the entries so far stay consistent */
		return;
	}
	c->hi_depth++;
}

/* The header lines a target of this search carries, as configured. */
static void fill_headers(const struct callee_ctx *c, char *out, size_t len)
{
	unsigned what = c->srv->cfg.forward_header;

	snprintf(out, len, "%s%s", (what & CFG_FWD_DIVERSION) ? c->diversion : "",
		 (what & CFG_FWD_HISTORY_INFO) ? c->hinfo : "");
}

/*
 * Moves the search to a forwarding target: one of our users (c->aor changes)
 * or an outside URI (c->external). A bare user or number is in the
 * forwarding user's domain.
 */
static bool target_uri(const struct callee_ctx *c, const char *target, char *uri, size_t len,
		       struct sip_uri *u)
{
	const char *domain = strchr(c->aor, '@') + 1;
	int n;

	if (strncasecmp(target, "sip:", 4) == 0 || strncasecmp(target, "sips:", 5) == 0)
		n = snprintf(uri, len, "%s", target);
	else if (strchr(target, '@'))
		n = snprintf(uri, len, "sip:%s", target);
	else
		n = snprintf(uri, len, "sip:%s@%s", target, domain);
	return n > 0 && (size_t)n < len && sip_uri_parse(sv_cstr(uri), u) == 0;
}

static bool retarget(struct callee_ctx *c, const char *target)
{
	char uri[STORE_URI_MAX], aor[CALLEE_AOR_MAX];
	struct sip_uri u;

	if (!target_uri(c, target, uri, sizeof(uri), &u))
		return false;
	history_add(c, uri);
	if (u.user.len && proxy_domain_is_local(c->srv, u.host, u.port) &&
	    proxy_aor_of(&u, aor, sizeof(aor)) == 0) {
		memcpy(c->aor, aor, sizeof(aor));
		c->external[0] = '\0';
		return true;
	}
	memcpy(c->external, uri, sizeof(uri));
	return true;
}

static unsigned step_ms(const struct callee_ctx *c, unsigned secs)
{
	if (!secs)
		secs = c->set.ring_time ? c->set.ring_time : c->srv->cfg.ring_time_s;
	return secs * 1000;
}

static const struct uset_step default_order[] = {
    {TERM_DESK, 0}, {TERM_PC, 0}, {TERM_MOBILE, 0}, {TERM_OTHER, 0}};

/* Groups the targets into steps by the ring policy. */
static void plan_steps(const struct callee_ctx *c, const struct fwd_target *t, size_t n,
		       struct callee_plan *pl)
{
	struct fwd_target *out = pl->targets;
	size_t k = 0;

	pl->nsteps = 0;
	switch (c->set.ring) {
	case USET_RING_SEQUENTIAL: {
		const struct uset_step *order = c->set.norder ? c->set.order : default_order;
		size_t norder = c->set.norder ? c->set.norder
					      : sizeof(default_order) / sizeof(default_order[0]);
		for (size_t s = 0; s < norder && pl->nsteps < CALLEE_MAX_STEPS; s++) {
			struct fwd_step *st = &pl->steps[pl->nsteps++];
			st->targets = out + k;
			st->n = 0;
			st->ring_ms = step_ms(c, order[s].secs);
			for (size_t i = 0; i < n; i++) {
				if (t[i].terminal == order[s].type) {
					out[k++] = t[i];
					st->n++;
				}
			}
		}
		break;
	}
	case USET_RING_QVALUE:
		/* RFC 3261 16.6: highest q first, equal q together (loc_lookup sorts by q) */
		for (size_t i = 0; i < n; i++) {
			if (pl->nsteps == 0 || out[k - 1].q != t[i].q) {
				if (pl->nsteps == CALLEE_MAX_STEPS)
					break;
				pl->steps[pl->nsteps++] =
				    (struct fwd_step){out + k, 0, step_ms(c, 0), false};
			}
			out[k++] = t[i];
			pl->steps[pl->nsteps - 1].n++;
		}
		break;
	default: {
		unsigned ms = c->set.fwd[USET_FWD_NOANSWER][0]
				  ? (c->set.noanswer_after ? c->set.noanswer_after
							   : c->srv->cfg.noanswer_after_s) *
					1000
				  : 0;
		memcpy(out, t, sizeof(*t) * n);
		pl->steps[0] = (struct fwd_step){out, n, ms, false};
		pl->nsteps = 1;
		break;
	}
	}
}

/* The current user's registered terminals as a plan; 0 targets when none. */
static size_t plan_user(struct callee_ctx *c, struct callee_plan *pl)
{
	struct loc_target *b = malloc(sizeof(*b) * CALLEE_MAX_TARGETS);
	struct fwd_target *t = malloc(sizeof(*t) * CALLEE_MAX_TARGETS);
	size_t n = 0;

	pl->targets = malloc(sizeof(*pl->targets) * CALLEE_MAX_TARGETS);
	if (!b || !t || !pl->targets)
		goto out;
	loc_lookup(c->srv->loc, sv_cstr(c->aor), (int64_t)time(NULL), b, CALLEE_MAX_TARGETS, &n);
	for (size_t i = 0; i < n; i++) {
		route_target_from_binding(&t[i], &b[i]);
		fill_headers(c, t[i].headers, sizeof(t[i].headers));
	}
	if (n)
		plan_steps(c, t, n, pl);
out:
	free(b);
	free(t);
	return n;
}

static void plan_external(struct callee_ctx *c, struct callee_plan *pl)
{
	struct fwd_target *t = calloc(1, sizeof(*t));

	pl->targets = t;
	pl->nsteps = 0;
	if (!t)
		return;
	snprintf(t->uri, sizeof(t->uri), "%s", c->external);
	snprintf(t->hop, sizeof(t->hop), "%s", c->external);
	fill_headers(c, t->headers, sizeof(t->headers));
	pl->steps[0] = (struct fwd_step){t, 1, 0, false};
	pl->nsteps = 1;
}

/*
 * A number that is none of our users, by the dialplan: one step per gateway,
 * each a failover for the one before. CALLEE_STEPS with the plan, CALLEE_REPLY
 * with a status, or CALLEE_SUSPEND meaning "no rule": not a PSTN number.
 */
/* The dialplan in force now (a context lives across loop turns: never keep it). */
static struct dp *callee_dp(struct callee_ctx *c)
{
	return rules_dp(rules_view_get(&c->w->rules, c->srv->rules));
}

static enum callee_res plan_gateways(struct callee_ctx *c, struct callee_plan *pl)
{
	struct dp *dp = callee_dp(c);
	const char *at = strchr(c->aor, '@');
	sv_t number = sv_make(c->aor, (size_t)(at - c->aor));
	unsigned gws[CALLEE_MAX_STEPS];
	char num[DP_NUMBER_MAX];
	size_t n;
	int rule;

	if (!dp || !dp_is_number(number) || (rule = dp_match(dp, number)) < 0)
		return CALLEE_SUSPEND;
	if (!c->pstn_ok) {
		/* toll fraud: a number on our trunks only for a caller we can bill */
		c->w->stats.calls_blocked++;
		log_info(
		    "call to %s refused: the caller is neither authenticated nor a trusted peer",
		    c->aor);
		pl->status = 403;
		pl->reason = "Calls to this number need an authenticated caller";
		return CALLEE_REPLY;
	}
	if (c->has_payer && proxy_barred(c->w, &c->payer, c->payer_aor, number, false,
					 c->bar_reason, sizeof(c->bar_reason))) {
		pl->status = 403;
		pl->reason = c->bar_reason;
		return CALLEE_REPLY;
	}
	if (dp_digits(number) > c->srv->cfg.dialplan.max_callee_digits) {
		pl->status = 404;
		pl->reason = "Number too long";
		return CALLEE_REPLY;
	}
	if (dp_transform(dp, rule, number, num, sizeof(num))) {
		pl->status = 404;
		pl->reason = "Number cannot be transformed";
		return CALLEE_REPLY;
	}
	n = dp_gateways(dp, rule, worker_next_id(c->w), gws, CALLEE_MAX_STEPS);
	if (n == 0) {
		pl->status = 503;
		pl->reason = "No gateway available";
		return CALLEE_REPLY;
	}
	pl->targets = calloc(n, sizeof(*pl->targets));
	if (!pl->targets) {
		pl->status = 500;
		pl->reason = "Out of memory";
		return CALLEE_REPLY;
	}
	for (size_t i = 0; i < n; i++) {
		const struct dp_gateway *g = dp_gateway(dp, gws[i]);
		struct fwd_target *t = &pl->targets[i];
		char port[8] = "";
		bool v6 = strchr(g->host, ':') != NULL;
		if (g->port)
			snprintf(port, sizeof(port), ":%u", g->port);
		snprintf(t->uri, sizeof(t->uri), "sip:%s@%s%s%s%s%s", num, v6 ? "[" : "", g->host,
			 v6 ? "]" : "", port, g->tcp ? ";transport=tcp" : "");
		memcpy(t->hop, t->uri, sizeof(t->hop));
		fill_headers(c, t->headers, sizeof(t->headers));
		t->gateway = true;
		pl->steps[i] = (struct fwd_step){t, 1, 0, i > 0};
	}
	pl->nsteps = n;
	pl->redirect = dp_rule(dp, rule)->redirect;
	return CALLEE_STEPS;
}

/* A call to one of our users (c->aor, who exists): barred only by allow_callees_only. */
static bool barred_internal(struct callee_ctx *c, struct callee_plan *pl)
{
	const char *at = strchr(c->aor, '@');

	if (!c->has_payer || !c->exists || !at ||
	    !proxy_barred(c->w, &c->payer, c->payer_aor, sv_make(c->aor, (size_t)(at - c->aor)),
			  true, c->bar_reason, sizeof(c->bar_reason)))
		return false;
	pl->status = 403;
	pl->reason = c->bar_reason;
	return true;
}

/* A forwarding to a URI of another domain (c->external): by its user part. */
static bool barred_external_target(struct callee_ctx *c, struct callee_plan *pl)
{
	struct sip_uri u;

	if (!c->has_payer)
		return false;
	if (sip_uri_parse(sv_cstr(c->external), &u))
		u.user = SV_NULL;
	if (!proxy_barred(c->w, &c->payer, c->payer_aor, u.user, false, c->bar_reason,
			  sizeof(c->bar_reason)))
		return false;
	pl->status = 403;
	pl->reason = c->bar_reason;
	return true;
}

/*
 * Follows unconditional forwarding and forwarding when not registered to
 * the user (or outside URI) whose terminals ring. r NULL: never wait for
 * the database (from the policy hook, with the call already running).
 */
static enum callee_res resolve(struct callee_ctx *c, struct preq *r, struct callee_plan *pl)
{
	/* the caller loaded c->aor's settings; a forwarding target's are loaded here */
	for (bool loaded = true;; loaded = false) {
		if (!loaded && settings_of(c, r) == USERS_PENDING)
			return CALLEE_SUSPEND;
		if (!loaded && barred_internal(c, pl))
			return CALLEE_REPLY;
		if (c->set.fwd[USET_FWD_ALWAYS][0]) {
			if (!divert(c, USET_FWD_ALWAYS)) {
				pl->status = 482;
				pl->reason = "Forwarding loop";
				return CALLEE_REPLY;
			}
			if (!retarget(c, c->set.fwd[USET_FWD_ALWAYS]))
				goto bad_target;
			if (c->external[0])
				goto external;
			continue;
		}
		if (plan_user(c, pl))
			return CALLEE_STEPS;
		free(pl->targets);
		pl->targets = NULL;
		if (c->set.fwd[USET_FWD_UNREGISTERED][0] && divert(c, USET_FWD_UNREGISTERED)) {
			if (!retarget(c, c->set.fwd[USET_FWD_UNREGISTERED]))
				goto bad_target;
			if (c->external[0])
				goto external;
			continue;
		}
		if (!c->exists) {
			enum callee_res gw = plan_gateways(c, pl);
			if (gw != CALLEE_SUSPEND)
				return gw == CALLEE_STEPS ? CALLEE_EXTERNAL : gw;
		}
		pl->status = callee_absent_status(c->stranger, c->exists);
		pl->reason = NULL;
		return CALLEE_REPLY;
	}
external:
	if (barred_external_target(c, pl))
		return CALLEE_REPLY;
	plan_external(c, pl);
	return CALLEE_EXTERNAL;
bad_target:
	log_warn("forwarding target of %s is not a usable URI", c->aor);
	pl->status = 480;
	pl->reason = "Forwarding target unusable";
	return CALLEE_REPLY;
}

/* Which forwarding a search that ran out with this status calls for. */
static int fwd_kind_for(const struct uset *s, unsigned status)
{
	if (status == 486 || status == 600 || status == 603)
		return s->fwd[USET_FWD_BUSY][0] ? USET_FWD_BUSY : -1;
	if (status == 480 || status == 487)
		return s->fwd[USET_FWD_NOANSWER][0] ? USET_FWD_NOANSWER : -1;
	if (status == 408 || status >= 500) {
		/* the terminals are gone: as if not registered, else as no answer */
		if (s->fwd[USET_FWD_UNREGISTERED][0])
			return USET_FWD_UNREGISTERED;
		return s->fwd[USET_FWD_NOANSWER][0] ? USET_FWD_NOANSWER : -1;
	}
	return -1;
}

/* fwd.c's exhausted hook: forwarding on busy, no answer, unreachable. */
static void callee_exhausted(struct ptx *p, void *arg, unsigned status)
{
	struct callee_ctx *c = arg;
	struct callee_plan pl = {0};
	int kind = c->external[0] ? -1 : fwd_kind_for(&c->set, status);

	if (kind < 0 || !divert(c, (enum uset_fwd)kind))
		return;
	if (!retarget(c, c->set.fwd[kind]))
		return;
	if (c->external[0]) {
		if (barred_external_target(c, &pl))
			return; /* the search ends with what it has */
		plan_external(c, &pl);
	} else {
		settings_of(c, NULL); /* the target's own, from the cache: the call is running */
		if (barred_internal(c, &pl) || resolve(c, NULL, &pl) == CALLEE_REPLY) {
			free(pl.targets);
			return; /* the search ends with what it has */
		}
	}
	for (size_t i = 0; i < pl.nsteps; i++) {
		if (fwd_add_step(p, &pl.steps[i]))
			break;
	}
	free(pl.targets);
}

static bool has_forwarding_after_start(const struct uset *s)
{
	return s->fwd[USET_FWD_BUSY][0] || s->fwd[USET_FWD_NOANSWER][0] ||
	       s->fwd[USET_FWD_UNREGISTERED][0];
}

/*
 * The callee's own lists; true when the call was refused. A white list entry
 * counts only for a caller whose identity was checked (one of our users who
 * authenticated, or a trusted peer): anyone can write any From.
 */
static bool user_lists_block(struct preq *r, const struct uset *s)
{
	sv_t caller;

	if (!s->allow_only && !s->block_callers[0] && !s->block_sources[0])
		return false;
	caller = proxy_caller_user(r);
	if (s->allow_callers[0] && caller.len && (r->authenticated || r->trusted) &&
	    lists_prefix_match_csv(s->allow_callers, caller))
		return false;
	if (s->block_sources[0] &&
	    lists_cidr_match_csv(sv_cstr(s->block_sources), &r->src->peer.u.sa)) {
		access_reply_blocked(r, "source network on the callee's block_sources");
		return true;
	}
	if (s->allow_only) {
		access_reply_blocked(r, "not on the callee's white list");
		return true;
	}
	if (lists_prefix_match_csv(s->block_callers, caller)) {
		access_reply_blocked(r, "on the callee's black list");
		return true;
	}
	return false;
}

static bool redirect_domain(struct preq *r, const char *aor)
{
	return rules_redirects(rules_of_request(r), strchr(aor, '@') + 1);
}

/*
 * May a 302 show this URI to the caller? Never a gateway's address unless the
 * dialplan routed there for a caller we can bill (docs/security.md): a
 * registered contact or a forwarding target that points at a gateway would
 * otherwise hand a stranger the trunk's address. The same test as
 * fwd_may_reach(), on the URI (a redirect sends nothing, so there is no
 * destination to compare).
 */
static bool redirect_may_show(struct callee_ctx *c, const char *uri, bool gateway)
{
	struct dp *dp = callee_dp(c);
	struct dns_target d;
	struct sip_uri u;
	int gi;

	if (gateway)
		return c->pstn_ok;
	if (!dp || dp_gateway_count(dp) == 0)
		return true;
	if (sip_uri_parse(sv_cstr(uri), &u))
		return false; /* nothing to check it by: not shown */
	gi = dp_gateway_find(
	    dp, dns_resolve_numeric(&u, &d) == 0 ? (struct sockaddr *)&d.addr : NULL, u.host);
	if (gi < 0)
		return true;
	c->w->stats.calls_blocked++;
	log_info("redirect of %s: contact at gateway %s left out of the 302", c->aor,
		 dp_gateway(dp, (unsigned)gi)->name);
	return false;
}

/*
 * 302 listing a plan's targets, highest q first; a registered contact
 * carries its q (RFC 3261 8.3.4) and, as an expires parameter, how long its
 * binding still holds (RFC 3261 21.3.3: how long the Contact is valid).
 */
static enum proxy_step redirect_to_plan(struct preq *r, struct callee_ctx *c,
					const struct callee_plan *pl)
{
	const struct fwd_target *order[CALLEE_MAX_TARGETS];
	bool with_q = !c->external[0] && !pl->redirect;
	int64_t now = (int64_t)time(NULL);
	char store[4096];
	struct buf hdrs;
	size_t n = 0;

	for (size_t s = 0; s < pl->nsteps; s++) {
		for (size_t i = 0; i < pl->steps[s].n && n < CALLEE_MAX_TARGETS; i++) {
			const struct fwd_target *t = &pl->steps[s].targets[i];
			size_t j;
			if (!redirect_may_show(c, t->uri, t->gateway))
				continue;
			j = n++;
			while (j > 0 &&
			       order[j - 1]->q < t->q) { /* stable: equal q keep their order */
				order[j] = order[j - 1];
				j--;
			}
			order[j] = t;
		}
	}
	if (n == 0) {
		/* nothing the caller may see: as if nobody were registered */
		proxy_reply(r, callee_absent_status(c->stranger, c->exists), NULL, SV_NULL);
		return PROXY_DONE;
	}
	buf_init_fixed(&hdrs, store, sizeof(store));
	for (size_t i = 0; i < n; i++) {
		buf_printf(&hdrs, "Contact: <%s>", order[i]->uri);
		if (with_q)
			buf_printf(&hdrs, ";q=%u.%03u", order[i]->q / 1000, order[i]->q % 1000);
		if (with_q && order[i]->expires > now)
			buf_printf(&hdrs, ";expires=%lld", (long long)(order[i]->expires - now));
		buf_append_str(&hdrs, "\r\n");
	}
	if (c->diversion[0]) {
		char extra[1024];
		fill_headers(c, extra, sizeof(extra));
		buf_append_str(&hdrs, extra);
	}
	if (hdrs.err)
		proxy_reply(r, 500, "Too many contacts to redirect to", SV_NULL);
	else
		proxy_reply(r, 302, NULL, buf_sv(&hdrs));
	return PROXY_DONE;
}

/*
 * Redirect server (RFC 3261 8.3.4), for a redirect domain or a user with
 * redirect=yes: 302 with where the call would have gone, highest q first;
 * unconditional forwarding and forwarding when not registered redirect to
 * their target. A user with nothing to redirect to answers as any user
 * with no terminal does (404 to strangers, 480 to our users).
 */
static enum proxy_step redirect(struct preq *r, struct callee_ctx *c)
{
	struct callee_plan pl = {0};
	enum proxy_step step;
	char store[2048], extra[1024];
	struct buf hdrs;
	enum uset_fwd kind = USET_FWD_ALWAYS;

	if (!c->set.fwd[kind][0] && c->set.fwd[USET_FWD_UNREGISTERED][0]) {
		struct loc_target one;
		size_t nb = 0;
		loc_lookup(c->srv->loc, sv_cstr(c->aor), (int64_t)time(NULL), &one, 1, &nb);
		if (nb == 0)
			kind = USET_FWD_UNREGISTERED;
	}
	if (c->set.fwd[kind][0]) {
		/* the caller goes to the target itself, which then routes it */
		char uri[STORE_URI_MAX];
		struct sip_uri u;
		if (!target_uri(c, c->set.fwd[kind], uri, sizeof(uri), &u) || !divert(c, kind)) {
			proxy_reply(r, 480, "Forwarding target unusable", SV_NULL);
			return PROXY_DONE;
		}
		if (!redirect_may_show(c, uri, false)) {
			proxy_reply(r, callee_absent_status(c->stranger, c->exists), NULL, SV_NULL);
			return PROXY_DONE;
		}
		history_add(c, uri);
		buf_init_fixed(&hdrs, store, sizeof(store));
		buf_printf(&hdrs, "Contact: <%s>\r\n", uri);
		fill_headers(c, extra, sizeof(extra));
		buf_append_str(&hdrs, extra);
		proxy_reply(r, 302, NULL, buf_sv(&hdrs));
		return PROXY_DONE;
	}
	switch (resolve(c, r, &pl)) {
	case CALLEE_SUSPEND:
		free(pl.targets);
		return PROXY_SUSPENDED;
	case CALLEE_REPLY:
		proxy_reply(r, pl.status, pl.reason, SV_NULL);
		free(pl.targets);
		return PROXY_DONE;
	case CALLEE_EXTERNAL:
	case CALLEE_STEPS:
		break;
	}
	step = redirect_to_plan(r, c, &pl);
	free(pl.targets);
	return step;
}

/* The common case: no settings, not forwarded: every contact at once. */
/*
 * A MESSAGE none of the user's contacts took (408, 480, 5xx, or nobody
 * there) is kept for the user's next REGISTER and answered 202 (RFC 3428
 * lets a store-and-forward server accept it).
 */
struct message_arg {
	struct home_sender from; /* for the caps on what strangers store */
	char aor[];
};

static void message_exhausted(struct ptx *p, void *arg, unsigned status)
{
	struct message_arg *ma = arg;
	const char *reason = NULL;
	unsigned st = 480;
	int err;

	if (!(status == 0 || status == 408 || status == 480 || status >= 500))
		return; /* a real answer (404, 415, 486...): the sender gets it */
	err = home_message_keep(fwd_ptx_server(p), ma->aor, fwd_ptx_request(p), &ma->from, &st,
				&reason);
	if (err == 0)
		fwd_finish_local(p, 202, "Accepted: stored for delivery");
	else if (err == ENOSPC)
		fwd_finish_local(p, st, reason);
}

static enum proxy_step route_message(struct preq *r, struct fwd_plan *plan, const char *aor,
				     const struct fwd_target *t, size_t n)
{
	struct fwd_step one = {(struct fwd_target *)t, n, 0, false};
	struct fwd_policy policy = {.exhausted = message_exhausted, .free_arg = free};
	struct message_arg *ma;

	if (n == 0 || home_message_waiting(r->srv, aor))
		return home_message_store(r, aor); /* offline, or behind older messages */
	ma = malloc(sizeof(*ma) + strlen(aor) + 1);
	if (!ma) {
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		return PROXY_DONE;
	}
	home_sender_of(r, &ma->from);
	strcpy(ma->aor, aor);
	policy.arg = ma;
	return fwd_stateful_steps(r, plan, &one, 1, &policy);
}

static bool message_is_stored(const struct preq *r)
{
	return r->m->method == SIP_MESSAGE && !r->in_dialog && r->srv->home &&
	       r->srv->cfg.proxy_mode != CFG_PROXY_STATELESS;
}

static enum proxy_step route_plain(struct preq *r, struct fwd_plan *plan, const char *aor,
				   bool exists)
{
	struct loc_target small_b[CALLEE_FEW_TARGETS], *b = small_b;
	struct fwd_target small_t[CALLEE_FEW_TARGETS], *t = small_t;
	int64_t now = (int64_t)time(NULL);
	enum proxy_step step = PROXY_DONE;
	size_t n = 0;

	loc_lookup(r->srv->loc, sv_cstr(aor), now, b, CALLEE_FEW_TARGETS, &n);
	if (n == CALLEE_FEW_TARGETS) {
		/* most users have a few contacts: no heap unless one has more */
		b = malloc(sizeof(*b) * CALLEE_MAX_TARGETS);
		t = malloc(sizeof(*t) * CALLEE_MAX_TARGETS);
		if (!b || !t) {
			proxy_reply(r, 500, "Out of memory", SV_NULL);
			goto out;
		}
		loc_lookup(r->srv->loc, sv_cstr(aor), now, b, CALLEE_MAX_TARGETS, &n);
	}
	if (n == 0 && !exists && message_is_stored(r) && !proxy_caller_known(r)) {
		step = home_message_phantom(r); /* no enumeration by MESSAGE either */
		goto out;
	}
	if (n == 0 && !(exists && message_is_stored(r))) {
		proxy_reply(r, callee_absent_status(!proxy_caller_known(r), exists), NULL, SV_NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		route_target_from_binding(&t[i], &b[i]);
	if (message_is_stored(r))
		step = route_message(r, plan, aor, t, n);
	else if (r->srv->cfg.proxy_mode == CFG_PROXY_STATELESS)
		step = fwd_stateless(r, plan, &t[0]);
	else
		step = fwd_stateful(r, plan, t, n);
out:
	if (b != small_b)
		free(b);
	if (t != small_t)
		free(t);
	return step;
}

enum proxy_step callee_route(struct preq *r, struct fwd_plan *plan)
{
	/* every field zero, the text buffers empty: no field left to chance by its place */
	struct callee_ctx local = {0}, *c = &local, *owned = NULL;
	struct callee_plan pl = {0};
	struct fwd_policy policy = {0};
	enum proxy_step step = PROXY_DONE;

	c->srv = r->srv;
	c->w = r->w;
	c->pstn_ok = proxy_caller_known(r);
	c->stranger = !proxy_caller_known(r);
	if (r->caller_bar) {
		const struct sip_naddr *from = sip_msg_from(r->m);
		struct sip_uri fu;
		c->has_payer = true;
		c->payer = *r->caller_bar;
		if (from && sip_uri_parse(from->uri, &fu) == 0)
			proxy_aor_of(&fu, c->payer_aor, sizeof(c->payer_aor));
	}
	if (proxy_aor_of(sip_msg_ruri(r->m), c->aor, sizeof(c->aor))) {
		proxy_reply(r, 404, NULL, SV_NULL);
		goto out;
	}
	c->hops = sip_hdr_count(r->m, SIP_H_DIVERSION);
	c->hi_off = sip_msg_hdr(r->m, SIP_H_HISTORY_INFO) != NULL;
	switch (settings_of(c, r)) {
	case USERS_PENDING:
		step = PROXY_SUSPENDED;
		goto out;
	case USERS_BUSY:
		proxy_reply(r, 503, "Too many subscriber lookups pending",
			    SV("Retry-After: 5\r\n"));
		goto out;
	default:
		break;
	}
	if (!r->in_dialog && (r->m->method == SIP_INVITE || r->m->method == SIP_MESSAGE) &&
	    user_lists_block(r, &c->set)) {
		step = PROXY_DONE;
		goto out;
	}
	if (r->m->method == SIP_INVITE && !r->in_dialog && barred_internal(c, &pl)) {
		proxy_reply(r, 403, pl.reason, SV_NULL);
		goto out;
	}
	/* redirect server for the whole domain, or for this user alone (redirect=yes) */
	if (r->m->method == SIP_INVITE &&
	    (redirect_domain(r, c->aor) || (c->set.redirect && !r->in_dialog))) {
		step = redirect(r, c);
		goto out;
	}
	/* ringing policy and forwarding are for calls; other requests fork to every contact */
	if (r->srv->cfg.proxy_mode == CFG_PROXY_STATELESS || r->m->method != SIP_INVITE ||
	    (uset_is_default(&c->set) && (c->exists || !callee_dp(c)))) {
		step = route_plain(r, plan, c->aor, c->exists);
		goto out;
	}
	switch (resolve(c, r, &pl)) {
	case CALLEE_SUSPEND:
		step = PROXY_SUSPENDED;
		goto out;
	case CALLEE_REPLY:
		proxy_reply(r, pl.status, pl.reason, SV_NULL);
		goto out;
	case CALLEE_EXTERNAL:
	case CALLEE_STEPS:
		break;
	}
	if (pl.redirect) {
		step = redirect_to_plan(r, c, &pl);
		goto out;
	}
	policy.stop_on_busy =
	    c->set.stop_on_busy < 0 ? r->srv->cfg.stop_on_busy : c->set.stop_on_busy;
	if (has_forwarding_after_start(&c->set) && !c->external[0]) {
		owned = malloc(sizeof(*owned));
		if (owned) {
			*owned = *c;
			policy.exhausted = callee_exhausted;
			policy.arg = owned;
			policy.free_arg = free;
		}
	}
	step = fwd_stateful_steps(r, plan, pl.steps, pl.nsteps, &policy);
	if (r->ptx)
		owned = NULL; /* the proxy context owns it now */
out:
	free(pl.targets);
	free(owned);
	return step;
}
