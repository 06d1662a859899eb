/*
 * calls.c - the dialog module wired into the running server (see calls.h).
 * The BYEs of an expired dialog are built on the main thread (which runs the
 * sweep) and sent by the owning worker through a client transaction of its
 * own, so that they are retransmitted over UDP and their answers absorbed.
 */
#include "server/calls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "dialog/dialog.h"
#include "server/dbq.h"
#include "server/server.h"
#include "server/worker.h"
#include "transport/tport.h"
#include "txn/txn.h"

#define CALLS_FLUSH_MS 100

int calls_create(struct server *s)
{
	struct dlg_conf dc = {
	    .max = s->cfg.dlg_max,
	    .timeout_s = s->cfg.dlg_timeout_s,
	    .session_expires = s->cfg.dlg_session_expires,
	    .min_se = s->cfg.dlg_min_se,
	    .sdp_max = s->cfg.dlg_sdp_max,
	};

	return dlg_table_create(&dc, &s->dlg);
}

void calls_destroy(struct server *s)
{
	dlg_table_destroy(s->dlg);
	s->dlg = NULL;
}

/* One BYE on its way to the worker that sends it. */
struct calls_bye {
	struct wjob job;
	struct tp_dest dest;
	size_t via_at; /* where our Via goes: after the request line */
	size_t len;
	char msg[];
};

static void bye_response(struct txn_cli *t, struct sip_msg *resp)
{
	(void)t;
	log_debug("BYE of an expired dialog answered %u", resp->status);
}

static void bye_timeout(struct txn_cli *t, int err)
{
	(void)t;
	log_info("BYE of an expired dialog: no answer%s", err ? " (transport error)" : "");
}

static void bye_terminated(struct txn_cli *t)
{
	(void)t;
}

static const struct txn_cli_ops bye_ops = {
    .response = bye_response,
    .timeout = bye_timeout,
    .terminated = bye_terminated,
};

static void bye_send(struct worker *w, struct wjob *job)
{
	struct calls_bye *b = (struct calls_bye *)job;
	struct tp_table *tp = w->srv->tp;
	const struct tp_listen *l;
	struct txn_cli *t = NULL;
	struct buf out;
	int li;

	b->dest.listen = tp_listen_pick(tp, b->dest.peer.proto, b->dest.peer.u.sa.sa_family);
	l = b->dest.listen >= 0 ? tp_listen_get(tp, (unsigned)b->dest.listen) : NULL;
	li = b->dest.listen;
	if (!l || txn_cli_create(w, SIP_BYE, 0, &bye_ops, NULL, &t)) {
		log_warn("BYE of an expired dialog not sent: no transaction or address (%d)", li);
		free(b);
		return;
	}
	buf_init(&out, 0);
	buf_append(&out, b->msg, b->via_at);
	buf_printf(&out, "Via: SIP/2.0/%s %s;branch=%.*s;rport\r\n", sip_proto_name(l->proto),
		   l->advertise, (int)t->branch_len, t->branch);
	buf_append(&out, b->msg + b->via_at, b->len - b->via_at);
	if (out.err || txn_cli_send(t, &b->dest, out.p, out.len))
		log_warn("BYE of an expired dialog not sent");
	buf_free(&out);
	free(b);
	tp_flush(w);
}

/* dlg_sweep's end(): a BYE to each side, sent by the dialog's owner. */
void calls_send_byes(void *arg, const struct dlg *d)
{
	struct server *s = arg;
	struct worker *w = s->workers[d->owner < s->nworkers ? d->owner : 0];
	struct buf out;

	buf_init(&out, 0);
	for (int side = 0; side < 2; side++) {
		struct tp_dest dest;
		struct calls_bye *b;
		const char *eol;
		if (dlg_build_bye(d, side == 0, SV_NULL, &out, &dest)) {
			log_warn("dialog %s: no BYE to the %s (no contact known)", d->callid,
				 side == 0 ? "caller" : "callee");
			continue;
		}
		eol = memchr(out.p, '\n', out.len);
		b = malloc(sizeof(*b) + out.len);
		if (!b || !eol) {
			free(b);
			continue;
		}
		b->job.fn = bye_send;
		b->dest = dest;
		b->via_at = (size_t)(eol + 1 - out.p);
		b->len = out.len;
		memcpy(b->msg, out.p, out.len);
		worker_post(w, &b->job);
	}
	buf_free(&out);
}

void calls_tick(struct server *s)
{
	if (s->dlg)
		dlg_sweep(s->dlg, dlg_now_ms(), calls_send_byes, s);
}

int calls_db_load(void *arg, struct store *st)
{
	struct server *s = arg;

	return s->dlg ? dlg_load(s->dlg, st, dlg_now_ms()) : 0;
}

void calls_db_flush(void *arg, struct store *st, bool stopping)
{
	struct server *s = arg;

	(void)stopping;
	if (s->dlg)
		dlg_flush(s->dlg, st);
}

int calls_chores(struct server *s)
{
	int err = dbq_on_start(s->dbq, calls_db_load, s);

	if (!err)
		err = dbq_every(s->dbq, CALLS_FLUSH_MS, calls_db_flush, s);
	return err;
}
