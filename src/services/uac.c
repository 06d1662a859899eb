/*
 * uac.c - building and sending the server's own requests over client
 * transactions, reduced to one "done" callback with a final status.
 */
#include "services/uac.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "server/worker.h"
#include "txn/txn.h"

struct uac {
	uac_done_fn done;
	void *arg;
	bool finished;
};

static void uac_finish(struct uac *u, unsigned status, const struct sip_msg *resp)
{
	uac_done_fn fn = u->done;

	if (u->finished)
		return;
	u->finished = true;
	u->done = NULL;
	if (fn)
		fn(u->arg, status, resp);
}

static void uac_response(struct txn_cli *t, struct sip_msg *resp)
{
	if (resp->status >= 200)
		uac_finish(t->tu, resp->status, resp);
}

static void uac_timeout(struct txn_cli *t, int err)
{
	uac_finish(t->tu, err ? 503 : 408, NULL);
}

static void uac_terminated(struct txn_cli *t)
{
	struct uac *u = t->tu;

	uac_finish(u, 503, NULL); /* ended with no final and no timeout: the send failed */
	free(u);
}

static void uac_discard(struct txn_cli *t)
{
	free(t->tu);
}

static const struct txn_cli_ops uac_ops = {
    .response = uac_response,
    .timeout = uac_timeout,
    .terminated = uac_terminated,
    .discard = uac_discard,
};

static int uac_build(struct buf *b, const struct txn_cli *t, const struct tp_listen *l,
		     const struct uac_req *rq, const char *server_name)
{
	sv_t method = sip_method_name(rq->method);

	buf_printf(b, "%.*s %.*s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=%.*s;rport\r\n",
		   (int)method.len, method.p, (int)rq->ruri.len, rq->ruri.p,
		   sip_proto_name(l->proto), l->advertise, (int)t->branch_len, t->branch);
	buf_append_str(b, "Max-Forwards: 70\r\n");
	if (rq->route.len)
		buf_printf(b, "Route: %.*s\r\n", (int)rq->route.len, rq->route.p);
	buf_printf(b, "From: %.*s\r\nTo: %.*s\r\nCall-ID: %.*s\r\nCSeq: %u %.*s\r\n",
		   (int)rq->from.len, rq->from.p, (int)rq->to.len, rq->to.p, (int)rq->callid.len,
		   rq->callid.p, rq->cseq, (int)method.len, method.p);
	buf_append_sv(b, rq->headers);
	buf_printf(b, "User-Agent: %s\r\n", server_name);
	if (rq->content_type.len)
		buf_printf(b, "Content-Type: %.*s\r\n", (int)rq->content_type.len,
			   rq->content_type.p);
	buf_printf(b, "Content-Length: %zu\r\n\r\n", rq->body.len);
	buf_append_sv(b, rq->body);
	return b->err ? ENOMEM : 0;
}

int uac_send(struct worker *w, const struct tp_addr *peer, uint32_t conn_id,
	     const struct uac_req *rq, uac_done_fn done, void *arg, struct uac **out)
{
	/* a connection a request came over: its peer port is ephemeral, never connect to it */
	struct tp_dest dest = {.peer = *peer,
			       .conn_id = conn_id,
			       .conn_only = conn_id != 0 && peer->proto != SIP_PROTO_UDP};
	const struct tp_listen *l;
	struct txn_cli *t = NULL;
	struct uac *u;
	struct buf *b = &w->req_out;
	int err;

	if (out)
		*out = NULL;
	dest.listen = tp_listen_pick(w->tpt, peer->proto, peer->u.sa.sa_family);
	l = dest.listen < 0 ? NULL : tp_listen_get(w->tpt, (unsigned)dest.listen);
	if (!l)
		return EAFNOSUPPORT;
	u = calloc(1, sizeof(*u));
	if (!u)
		return ENOMEM;
	u->done = done;
	u->arg = arg;
	err = txn_cli_create(w, rq->method, 0, &uac_ops, u, &t);
	if (err) {
		free(u);
		return err;
	}
	buf_reset(b);
	err = uac_build(b, t, l, rq, w->server_name);
	if (err) {
		txn_cli_abandon(t); /* no callback runs after this: u is ours to free */
		free(u);
		return err;
	}
	if (out)
		*out = u;
	t->no_retransmit = rq->once;
	/* a send failure ends the transaction later (deferred): done says so then */
	txn_cli_send(t, &dest, b->p, b->len);
	return 0;
}

void uac_forget(struct uac *u)
{
	if (u)
		u->done = NULL;
}
