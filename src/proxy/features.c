/*
 * features.c - feature codes dialled from the phone: *72<number> turns
 * unconditional forwarding on, *73 off (and the same for busy, no answer and
 * not registered), for the caller's own account.
 *
 * The change goes to the store on the database thread; the request waits
 * as a copy and is delivered again once the new settings are in the
 * subscriber cache, and is then answered: 200 with the new state, or 4xx
 * with the reason. Dialling the same code twice is harmless: a request
 * whose change is already in place is answered at once.
 *
 * A forwarding target the user's own outgoing call barring forbids (a
 * number of a barred class, issue 12) is refused when it is set, 403 with
 * the reason; the barring is checked again on every forwarded call.
 */
#include "proxy/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "server/dbq.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/settings.h"
#include "services/users.h"
#include "store/store.h"

static const struct {
	enum uset_fwd kind;
	bool on;
	const char *said;
} feat_table[CFG_FEATURE_COUNT] = {
    {USET_FWD_ALWAYS, true, "Call forwarding on"},
    {USET_FWD_ALWAYS, false, "Call forwarding off"},
    {USET_FWD_BUSY, true, "Forwarding on busy on"},
    {USET_FWD_BUSY, false, "Forwarding on busy off"},
    {USET_FWD_NOANSWER, true, "Forwarding on no answer on"},
    {USET_FWD_NOANSWER, false, "Forwarding on no answer off"},
    {USET_FWD_UNREGISTERED, true, "Forwarding when unregistered on"},
    {USET_FWD_UNREGISTERED, false, "Forwarding when unregistered off"},
};

static const char *const feat_keys[USET_FWD_COUNT] = {"forward_always", "forward_busy",
						      "forward_noanswer", "forward_unregistered"};

/* r->phase_state of the feature handler: the write was submitted, the request waits for it */
#define FEAT_WRITTEN 1u

struct feat_job {
	struct dbq_job base;
	struct server *srv;
	struct worker *w;
	struct wjob *again; /* the request's continuation, resumed when the store has the change */
	char user[STORE_USER_MAX];
	char domain[STORE_DOMAIN_MAX];
	char line[STORE_SETTINGS_MAX];
};

/* On the database thread. */
static void feat_store(struct store *st, struct dbq_job *job)
{
	struct feat_job *fj = (struct feat_job *)job;
	struct store_user su;
	int err =
	    store_user_settings(st, sv_cstr(fj->user), sv_cstr(fj->domain), sv_cstr(fj->line));

	if (!err)
		err = store_user_get(st, sv_cstr(fj->user), sv_cstr(fj->domain), &su);
	if (err)
		log_err("feature code for %s@%s: %s", fj->user, fj->domain, store_errmsg(st));
	else
		users_put(fj->srv->users, &su); /* our own write does not flush the cache */
	worker_post(fj->w, fj->again);
	free(fj);
}

/* The code dialled (longest match), or -1; *rest gets what follows it. */
static int feat_match(const struct cfg *c, sv_t user, sv_t *rest)
{
	int best = -1;
	size_t best_len = 0;

	for (int i = 0; i < CFG_FEATURE_COUNT; i++) {
		size_t n = strlen(c->feature_codes[i]);
		if (n && n > best_len && user.len >= n &&
		    memcmp(user.p, c->feature_codes[i], n) == 0) {
			best = i;
			best_len = n;
		}
	}
	if (best >= 0) {
		*rest = sv_make(user.p + best_len, user.len - best_len);
		if (rest->len && rest->p[rest->len - 1] == '#')
			rest->len--; /* "*72123#": the # only ends the dialling */
	}
	return best;
}

static enum proxy_step feat_reply(struct preq *r, unsigned status, const char *reason)
{
	char contact[200];
	const struct tp_listen *l = tp_listen_get(r->srv->tp, r->src->listen);

	/* a 2xx to an INVITE needs a Contact: the server itself (its ACK and BYE end here) */
	if (status == 200 && l)
		snprintf(contact, sizeof(contact), "Contact: <sip:%s>\r\n", l->advertise);
	else
		contact[0] = '\0';
	proxy_reply(r, status, reason, sv_cstr(contact));
	return PROXY_DONE;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* The user part with %XX decoded ('#' arrives as %23 in a SIP URI); false if it does not fit. */
static bool unescape_user(sv_t in, char *out, size_t len, sv_t *res)
{
	size_t n = 0;

	for (size_t i = 0; i < in.len; i++) {
		char ch = in.p[i];
		if (ch == '%' && i + 2 < in.len && hexval(in.p[i + 1]) >= 0 &&
		    hexval(in.p[i + 2]) >= 0) {
			ch = (char)(hexval(in.p[i + 1]) * 16 + hexval(in.p[i + 2]));
			i += 2;
		}
		if (n + 1 >= len)
			return false;
		out[n++] = ch;
	}
	out[n] = '\0';
	*res = sv_make(out, n);
	return true;
}

/*
 * Would the user's barring refuse a call to target? Checked as a number or a
 * user of another domain (block_callees and the classes; whether a target is
 * one of our users, which allow_callees_only needs, is known only when a call
 * is forwarded there, so that part waits for the call).
 */
static bool feat_barred(struct preq *r, const struct uset *set, const struct sip_uri *fu,
			sv_t target, char *reason, size_t len)
{
	struct uset_bar b = set->out;
	char payer[STORE_USER_MAX + STORE_DOMAIN_MAX + 2], uri[USET_TARGET_MAX + 8];
	struct sip_uri u;
	sv_t user = target;
	ptrdiff_t at;

	if (uset_bar_empty(&b))
		return false;
	b.allow_callees_only = false;
	if (sv_istarts(target, SV("sip:")) || sv_istarts(target, SV("sips:"))) {
		snprintf(uri, sizeof(uri), "%.*s", SV_ARG(target));
		user = sip_uri_parse(sv_cstr(uri), &u) == 0 ? u.user : SV_NULL;
	} else if ((at = sv_find(target, '@')) >= 0) {
		user = sv_make(target.p, (size_t)at);
	}
	snprintf(payer, sizeof(payer), "%.*s@%.*s", SV_ARG(fu->user), SV_ARG(fu->host));
	return proxy_barred(r->w, &b, payer, user, false, reason, len);
}

enum proxy_step feat_handle(struct preq *r)
{
	const struct sip_uri *ruri = sip_msg_ruri(r->m);
	const struct sip_naddr *from = sip_msg_from(r->m);
	char word[USET_TARGET_MAX + 32], why[200], line[STORE_SETTINGS_MAX],
	    now[STORE_SETTINGS_MAX];
	struct users_entry ue;
	enum proxy_step step;
	struct feat_job *fj;
	struct sip_uri fu;
	struct uset set;
	char dialled[128];
	sv_t rest, user;
	int code;

	if (!ruri || !unescape_user(ruri->user, dialled, sizeof(dialled), &user) ||
	    (code = feat_match(&r->srv->cfg, user, &rest)) < 0)
		return PROXY_CONTINUE;
	if (!from || sip_uri_parse(from->uri, &fu) || fu.user.len == 0)
		return feat_reply(r, 403, "Feature codes are for our own users");
	if (feat_table[code].on && rest.len == 0)
		return feat_reply(r, 484, "Dial the code followed by the forwarding target");
	if (!feat_table[code].on && rest.len)
		return feat_reply(r, 484, "This code takes no number");
	step = users_of_request(r, fu.user, fu.host, &ue); /* 503 when the database is down */
	if (step != PROXY_CONTINUE)
		return step;
	if (!ue.exists)
		return feat_reply(r, 403, "Feature codes are for our own users");
	uset_init(&set);
	uset_parse(&set, sv_cstr(ue.settings), why, sizeof(why));
	uset_format(&set, now, sizeof(now));
	snprintf(word, sizeof(word), "%s=%.*s", feat_keys[feat_table[code].kind], (int)rest.len,
		 rest.p);
	if (uset_apply(&set, sv_cstr(word), why, sizeof(why)))
		return feat_reply(r, 484, "Not a valid forwarding target");
	if (feat_table[code].on && feat_barred(r, &set, &fu, rest, why, sizeof(why)))
		return feat_reply(r, 403, why);
	if (uset_format(&set, line, sizeof(line)))
		return feat_reply(r, 500, "Settings too long");
	if (strcmp(line, now) == 0)
		return feat_reply(
		    r, 200,
		    feat_table[code].said); /* in place (or delivered again after the write) */
	if (r->phase_state == FEAT_WRITTEN) /* resumed after our write, and it did not take */
		return feat_reply(r, 500, "The setting could not be saved");
	fj = calloc(1, sizeof(*fj));
	if (!fj)
		return feat_reply(r, 500, "Out of memory");
	if (sv_copy(fu.user, fj->user, sizeof(fj->user)) ||
	    sv_copy(fu.host, fj->domain, sizeof(fj->domain))) {
		free(fj);
		return feat_reply(r, 400, "User or domain too long");
	}
	if (!(fj->again = proxy_wait(r))) {
		free(fj);
		return feat_reply(r, errno == EBUSY ? 503 : 500, "The setting could not be saved");
	}
	r->phase_state = FEAT_WRITTEN; /* the request resumes here once the store has it */
	fj->base.run = feat_store;
	fj->srv = r->srv;
	fj->w = r->w;
	memcpy(fj->line, line, sizeof(line));
	dbq_submit(r->srv->dbq, &fj->base);
	log_info("feature code %s from %.*s@%.*s: %s", r->srv->cfg.feature_codes[code],
		 (int)fu.user.len, fu.user.p, (int)fu.host.len, fu.host.p,
		 line[0] ? line : "(no settings)");
	return PROXY_SUSPENDED;
}

bool feat_wants(const struct preq *r, void *arg)
{
	(void)arg;
	return r->ruri_local && !r->in_dialog && r->from_local &&
	       (r->authenticated || !r->srv->cfg.auth_enabled);
}

enum proxy_step feat_phase(struct preq *r, void *arg)
{
	(void)arg;
	return feat_handle(r);
}
