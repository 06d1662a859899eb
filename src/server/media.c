/*
 * media.c - the media relay assembled into the server (services/mediasvc.h):
 * created from the `media:` configuration when it asks for relaying, its
 * forwarding hooks registered on the proxy pipeline, an engine attached to
 * each worker before its thread starts and detached after it stopped. With
 * media.mode never (the default) and media.gateways off nothing is created,
 * and the proxy's forwarding runs no hook at all.
 */
#include "server/media.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"
#include "server/calls.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/mediasvc.h"
#include "transport/tport.h"

static void hook_request(void *arg, const struct proxy_fwd_msg *fm, struct sip_edit_list *l)
{
	struct msvc_branch br = {
	    .from = fm->from, .to = fm->to, .target_uri = fm->target_uri, .gateway = fm->gateway};

	msvc_on_request(arg, fm->w, fm->m, &br, fm->in_dialog, l);
}

static void hook_response(void *arg, const struct proxy_fwd_msg *fm, struct sip_edit_list *l)
{
	msvc_on_response(arg, fm->w, fm->m, fm->from, l);
}

/*
 * A BYE of a relayed call goes to the worker that owns its relay session,
 * which writes the final counters into the dialog before it ends.
 */
static enum proxy_step media_bye(struct preq *r, void *arg)
{
	unsigned owner;

	if (msvc_bye(arg, r->w, r->m, &owner) && tp_redeliver(r->w, owner, r->m, r->src) == 0)
		return PROXY_DONE;
	return PROXY_CONTINUE;
}

int server_media_create(struct server *s, char *err, size_t errlen)
{
	const struct cfg *c = &s->cfg;
	struct msvc_conf mc = {
	    .mode = c->media_mode,
	    .gateways = c->media_gateways,
	    .port_lo = (uint16_t)c->media_port_lo,
	    .port_hi = (uint16_t)c->media_port_hi,
	    .bind = c->media_bind,
	    .advertise = c->media_advertise,
	    .latch_window_ms = c->media_latch_window_ms,
	    .quarantine_ms = c->media_quarantine_ms,
	    .timeout_ms = c->media_timeout_s * 1000,
	    .nworkers = s->nworkers,
	    .dlg = s->dlg,
	    .end = calls_send_byes,
	    .end_arg = s,
	};
	int rc;

	if (c->media_mode == CFG_MEDIA_NEVER && !c->media_gateways)
		return 0;
	if (!s->dlg) {
		snprintf(err, errlen, "media relay: the dialog table is needed");
		return EINVAL;
	}
	s->media_hooks = calloc(1, sizeof(*s->media_hooks));
	if (!s->media_hooks || (rc = msvc_create(&mc, &s->msvc))) {
		snprintf(err, errlen, "media relay: out of memory");
		return ENOMEM;
	}
	s->media_hooks->request = hook_request;
	s->media_hooks->response = hook_response;
	s->media_hooks->arg = s->msvc;
	const struct proxy_handler bye = {"media-bye",
					  PROXY_PHASE_ADMIT,
					  PROXY_ORDER_SERVICE + 10,
					  PROXY_METHOD(SIP_BYE),
					  NULL,
					  media_bye,
					  s->msvc};
	if ((rc = proxy_fwd_hooks_add(s->pipeline, s->media_hooks)) ||
	    (rc = proxy_pipeline_add(s->pipeline, &bye))) {
		snprintf(err, errlen, "media relay: no room for its forwarding hooks");
		return rc;
	}
	return 0;
}

int server_media_attach(struct server *s, struct worker *w, char *err, size_t errlen)
{
	int rc;

	if (!s->msvc)
		return 0;
	rc = msvc_worker_attach(s->msvc, w);
	if (rc)
		snprintf(err, errlen,
			 "media relay on worker %u: %s (media.port_min..port_max %u..%u, bind %s)",
			 w->id,
			 rc == EINVAL ? "the port range is too small for the workers"
				      : strerror(rc),
			 s->cfg.media_port_lo, s->cfg.media_port_hi, s->cfg.media_bind);
	return rc;
}

void server_media_detach(struct server *s, struct worker *w)
{
	if (s->msvc && w)
		msvc_worker_detach(s->msvc, w);
}

void server_media_destroy(struct server *s)
{
	msvc_destroy(s->msvc);
	s->msvc = NULL;
	free(s->media_hooks);
	s->media_hooks = NULL;
}
