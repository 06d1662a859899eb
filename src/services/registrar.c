/*
 * registrar.c - REGISTER handling, RFC 3261 10.3: authenticate, read the
 * contacts with their expiry and q-value, apply them to the location table
 * and answer with the bindings the AOR now has. Covers the RFC 3665 flows:
 * registration after a 401, update, query, removal with "Contact: *", and
 * failures (423 with Min-Expires, 400, 403, 420).
 */
#include "services/registrar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/access.h"
#include "services/challenge.h"
#include "services/home.h"
#include "services/location.h"
#include "services/rules.h"
#include "services/terminal.h"
#include "transport/tport.h"

#define REG_MAX_CONTACTS 32

/* q-value "0.5", "1", "1.000" as thousandths; -1 when malformed */
static int parse_q(sv_t v)
{
	unsigned whole, frac = 0, digits = 0;

	if (v.len == 0 || (v.p[0] != '0' && v.p[0] != '1'))
		return -1;
	whole = (unsigned)(v.p[0] - '0');
	if (v.len > 1) {
		if (v.p[1] != '.' || v.len > 5)
			return -1;
		for (size_t i = 2; i < v.len; i++) {
			if (v.p[i] < '0' || v.p[i] > '9')
				return -1;
			frac = frac * 10 + (unsigned)(v.p[i] - '0');
			digits++;
		}
		while (digits++ < 3)
			frac *= 10;
	}
	if (whole * 1000 + frac > 1000)
		return -1;
	return (int)(whole * 1000 + frac);
}

static int64_t parse_seconds(sv_t v)
{
	uint64_t n = 0;

	if (v.len == 0)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		if (n < UINT32_MAX)
			n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	return n > UINT32_MAX ? UINT32_MAX : (int64_t)n;
}

/* Option tags of Require that we do not support, as an Unsupported header; empty if none. */
static void unsupported_tags(struct sip_msg *m, enum sip_hdr_id id, struct buf *out)
{
	struct sip_hdr_iter it;
	sv_t tag;

	sip_hdr_iter_init(&it, m, id);
	while (sip_hdr_iter_next(&it, &tag)) {
		if (sv_ieq(tag, SV("path")) || sv_ieq(tag, SV("outbound")))
			continue;
		buf_append_str(out, out->len ? ", " : "Unsupported: ");
		buf_append_sv(out, tag);
	}
	if (out->len)
		buf_append_str(out, "\r\n");
}

static bool supports_path(struct sip_msg *m)
{
	struct sip_hdr_iter it;
	sv_t tag;

	sip_hdr_iter_init(&it, m, SIP_H_SUPPORTED);
	while (sip_hdr_iter_next(&it, &tag)) {
		if (sv_ieq(tag, SV("path")))
			return true;
	}
	return false;
}

struct reg_parse {
	struct loc_contact contacts[REG_MAX_CONTACTS];
	size_t n;
	bool star;
	unsigned status; /* error to answer, 0 = fine */
	const char *reason;
};

static void contact_param(struct loc_contact *c, const struct sip_param *p, int64_t *expires,
			  struct reg_parse *rp)
{
	if (sv_ieq(p->name, SV("expires"))) {
		*expires = parse_seconds(p->value);
		if (*expires < 0) {
			rp->status = 400;
			rp->reason = "Malformed expires parameter";
		}
	} else if (sv_ieq(p->name, SV("q"))) {
		int q = parse_q(p->value);
		if (q < 0) {
			rp->status = 400;
			rp->reason = "Malformed q-value";
		} else {
			c->q = (uint16_t)q;
		}
	} else if (sv_ieq(p->name, SV("+sip.instance"))) {
		c->instance = p->value;
	} else if (sv_ieq(p->name, SV("reg-id"))) {
		int64_t id = parse_seconds(p->value);
		c->reg_id = id > 0 ? (uint32_t)id : 0;
	}
}

static void parse_contacts(struct preq *r, struct reg_parse *rp)
{
	const struct cfg *cfg = &r->srv->cfg;
	int64_t hdr_expires = sip_msg_expires(r->m);
	sv_t user_agent = sip_msg_value(r->m, SIP_H_USER_AGENT);
	size_t npats;
	const struct term_pattern *pats = rules_terminal_patterns(rules_of_request(r), &npats);
	struct sip_hdr_iter it;
	sv_t elem;

	if (hdr_expires == -2) {
		rp->status = 400;
		rp->reason = "Malformed Expires";
		return;
	}
	sip_hdr_iter_init(&it, r->m, SIP_H_CONTACT);
	while (!rp->status && sip_hdr_iter_next(&it, &elem)) {
		struct loc_contact *c;
		struct sip_naddr na;
		struct sip_uri u;
		struct sip_param p;
		sv_t cur;
		int64_t expires = -1;

		if (sv_eq(elem, SV("*"))) {
			rp->star = true;
			continue;
		}
		if (rp->n == REG_MAX_CONTACTS) {
			rp->status = 400;
			rp->reason = "Too many Contacts in one REGISTER";
			return;
		}
		if (sip_naddr_parse(elem, &na, NULL) || sip_uri_parse(na.uri, &u)) {
			rp->status = 400;
			rp->reason = "Malformed Contact";
			return;
		}
		if (!na.bracketed && u.headers.len) {
			/* RFC 3261 20.10: such a URI must be in angle brackets (RFC 4475 regbadct)
			 */
			rp->status = 400;
			rp->reason = "Contact URI with headers must be enclosed in <>";
			return;
		}
		c = &rp->contacts[rp->n++];
		memset(c, 0, sizeof(*c));
		c->uri = na.uri;
		c->params = na.params;
		c->q = 1000;
		cur = na.params;
		while (sip_param_next(&cur, &p) == 1)
			contact_param(c, &p, &expires, rp);
		if (expires < 0)
			expires = hdr_expires >= 0 ? hdr_expires : (int64_t)cfg->default_expires;
		if (expires > 0 && expires < cfg->min_expires) {
			rp->status = 423;
			rp->reason = NULL;
			return;
		}
		if (expires > cfg->max_expires)
			expires = cfg->max_expires;
		c->expires = (uint32_t)expires;
		if (expires)
			c->terminal =
			    (uint8_t)term_classify(c->params, c->uri, user_agent, pats, npats);
	}
	if (!rp->status && rp->star && (rp->n || hdr_expires != 0)) {
		rp->status = 400;
		rp->reason = "Contact: * needs Expires: 0 and no other Contact";
	}
}

/* The Path values, comma-joined; EMSGSIZE when they do not fit (never truncated:
 * a cut route set would send requests past the edge proxies). */
static enum proxy_step reg_answer(struct preq *r, struct loc_register *lr, struct reg_parse *rp,
				  bool replay, sv_t realm)
{
	struct buf *hdrs = &r->w->reply_hdrs; /* the reply itself is built in resp_out */
	enum loc_result res;
	char path[STORE_URI_MAX];

	buf_reset(hdrs);
	lr->ncontacts = rp->n;
	lr->contacts = rp->contacts;
	lr->star = rp->star;
	/*
	 * Credentials whose nonce-count was used already: this is a
	 * retransmission of a REGISTER that was applied (its 200 got lost), or a
	 * replay. Nothing is applied again. A retransmission changes nothing and
	 * gets the bindings as they are (RFC 3261 17.2.2: the answer of its
	 * transaction); a request that would change them is a replay and gets a
	 * fresh challenge.
	 */
	lr->dry_run = replay;
	if (sip_hdr_join(r->m, SIP_H_PATH, path, sizeof(path))) {
		proxy_reply(r, 400, "Path too long", SV_NULL);
		return PROXY_DONE;
	}
	lr->path = sv_cstr(path);
	res = loc_register(r->srv->loc, lr, hdrs);
	switch (res) {
	case LOC_OK:
	case LOC_RETRANSMISSION:
		if (path[0] && supports_path(r->m))
			buf_printf(hdrs, "Path: %s\r\n", path);
		buf_append_str(hdrs, worker_date_header(r->w));
		if (hdrs->err) {
			proxy_reply(r, 500, "Out of memory", SV_NULL);
			break;
		}
		proxy_reply(r, 200, NULL, buf_sv(hdrs));
		if (res == LOC_OK)
			home_registered(r->w, lr->aor); /* messages may wait, watchers may care */
		if (lr->conn_id && (rp->n || rp->star))
			tp_conn_hold(r->srv->tp, lr->conn_id, lr->now + r->srv->cfg.max_expires);
		break;
	case LOC_WOULD_CHANGE:
		challenge_send(r, CHALLENGE_WWW, realm, true);
		break;
	case LOC_OUT_OF_ORDER:
		proxy_reply(r, 400, "Out of order CSeq for this Call-ID", SV_NULL);
		break;
	case LOC_TOO_MANY:
		proxy_reply(r, 403, "Too many registered contacts", SV_NULL);
		break;
	case LOC_TOO_LONG:
		proxy_reply(r, 400, "Contact, Path or Call-ID too long", SV_NULL);
		break;
	default:
		proxy_reply(r, 500, "Out of memory", SV_NULL);
		break;
	}
	return PROXY_DONE;
}

enum proxy_step reg_handle(struct preq *r)
{
	struct sip_msg *m = r->m;
	const struct sip_naddr *to = sip_msg_to(m);
	struct reg_parse rp;
	struct loc_register lr;
	struct sip_uri tou;
	char aor[STORE_USER_MAX + STORE_DOMAIN_MAX + 4], realm[STORE_DOMAIN_MAX + 2];
	struct buf unsup;
	char unsup_store[512];
	enum proxy_step step;
	bool replay = false;

	if (!to || sip_uri_parse(to->uri, &tou) ||
	    (tou.kind != SIP_SCHEME_SIP && tou.kind != SIP_SCHEME_SIPS) || !tou.user.len) {
		proxy_reply(r, 400, "To must be a SIP address of record", SV_NULL);
		return PROXY_DONE;
	}
	if (!proxy_domain_is_local(r->srv, tou.host, tou.port)) {
		proxy_reply(r, 403, "Domain not served here", SV_NULL);
		return PROXY_DONE;
	}
	buf_init_fixed(&unsup, unsup_store, sizeof(unsup_store));
	unsupported_tags(m, SIP_H_REQUIRE, &unsup);
	if (unsup.len) {
		proxy_reply(r, 420, NULL, buf_sv(&unsup));
		return PROXY_DONE;
	}
	if (proxy_aor_of(&tou, aor, sizeof(aor))) {
		proxy_reply(r, 400, "Address of record too long", SV_NULL);
		return PROXY_DONE;
	}
	if (sv_copy(sv_cstr(strchr(aor, '@') + 1), realm, sizeof(realm))) {
		proxy_reply(r, 400, "Domain too long", SV_NULL);
		return PROXY_DONE;
	}
	if (r->srv->cfg.auth_enabled) {
		step = challenge_check(r, CHALLENGE_WWW, sv_cstr(realm), tou.user, true, &replay);
		if (step != PROXY_CONTINUE)
			return step;
	}
	rp.n = 0;
	rp.star = false;
	rp.status = 0;
	rp.reason = NULL;
	parse_contacts(r, &rp);
	if (rp.status == 423) {
		char mh[48];
		snprintf(mh, sizeof(mh), "Min-Expires: %u\r\n", r->srv->cfg.min_expires);
		proxy_reply(r, 423, NULL, sv_cstr(mh));
	} else if (rp.status) {
		proxy_reply(r, rp.status, rp.reason, SV_NULL);
	} else {
		memset(&lr, 0, sizeof(lr));
		lr.aor = sv_cstr(aor);
		lr.callid = sip_msg_callid(m);
		lr.cseq = sip_msg_cseq(m)->num;
		lr.received = r->src->peer;
		lr.conn_id = r->src->conn_id;
		lr.user_agent = sip_msg_value(m, SIP_H_USER_AGENT);
		lr.now = (int64_t)time(NULL);
		lr.max_contacts = r->srv->cfg.max_contacts;
		reg_answer(r, &lr, &rp, replay, sv_cstr(realm));
	}
	return PROXY_DONE;
}
