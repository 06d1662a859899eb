/*
 * overload.c - loss-based overload control (RFC 7339): the per-worker
 * queueing-delay measure and the controller that turns it into a fraction of
 * new requests to refuse, the upstream oc parameters, and the downstream
 * servers' reports. See overload.h for what it is for.
 *
 * The controller works on the admitted fraction a (1 - the reduction), once
 * per interval, from a fluid model of the worker's queue: how much the mean
 * delay grew during the interval says how loaded the worker was (rho = 1 +
 * growth / interval: a queue that grew by 50 ms in 100 ms got 1.5 times
 * what it could do), and a delay above the threshold must be drained within
 * a few intervals, so a becomes a * rho_wanted / rho (at most a quarter of
 * it at once). Below the threshold a grows by 10 % plus half a point per
 * interval. A worker pushed to ten times its capacity so converges on
 * admitting about a tenth within a few hundred milliseconds, and recovers
 * within seconds when the load goes. Which requests are refused is decided
 * by an accumulator, not a coin: exactly the fraction, spread evenly.
 */
#include "request/overload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/server.h"
#include "server/worker.h"
#include "txn/txn.h"

/* Delays beyond this are a clock step, not queueing: ignored. */
#define OVL_MAX_DELAY_NS (10 * 1000000000LL)
/* Intervals caught up at once after an idle time (enough to recover fully). */
#define OVL_MAX_STEPS 100
/* oc-validity assumed when a downstream server gives none (RFC 7339 5.2). */
#define OVL_DEFAULT_VALIDITY_MS 500

enum ovl_state { OVL_NORMAL = 0, OVL_OVERLOADED };

struct ovl_dest {
	struct tp_addr addr;
	unsigned reduction; /* 1..100 */
	int64_t expires_ns;
	uint64_t seq;
	bool has_seq;
	unsigned credit; /* percent points owed: a request is dropped for every 100 */
};

struct ovl {
	struct ovl_params p;
	enum ovl_state state;
	double delay_ns;	/* EWMA */
	int64_t last_sample_ns; /* 0 = none yet */
	int64_t interval_start; /* the control interval running, 0 = not started */
	bool sampled;		/* a delay was measured in this interval */
	double sum_ns;		/* delays measured in this interval */
	uint64_t nsum;
	double prev_mean;  /* the mean delay of the interval before, -1 = none */
	double admit;	   /* fraction of new requests taken, 0..1 */
	double credit;	   /* refusals owed: one is made each time it reaches 1 */
	uint64_t seq_last; /* last oc-seq advertised, strictly increasing */
	struct ovl_stats st;
	struct ovl_dest dest[OVL_DEST_MAX];
	unsigned ndest;
};

int64_t ovl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int ovl_create(const struct ovl_params *p, struct ovl **out)
{
	struct ovl *o = calloc(1, sizeof(*o));

	*out = NULL;
	if (!o)
		return ENOMEM;
	o->p = *p;
	if (o->p.delay_ms == 0)
		o->p.delay_ms = 1;
	o->admit = 1.0;
	o->prev_mean = -1;
	*out = o;
	return 0;
}

void ovl_destroy(struct ovl *o)
{
	free(o);
}

/* Intervals over which a delay above the threshold is to be drained. */
#define OVL_DRAIN_INTERVALS 3

/* One control interval ends: move the admitted fraction by the delay it saw. */
static void ovl_control(struct ovl *o)
{
	double target = (double)o->p.delay_ms * 1e6;
	double mean = o->nsum ? o->sum_ns / (double)o->nsum : 0; /* none: no queue */
	double rho, want, ratio;

	if (!o->sampled)
		o->delay_ns /= 2;
	o->sampled = false;
	o->sum_ns = 0;
	o->nsum = 0;
	if (o->prev_mean < 0)
		o->prev_mean = mean;
	rho = 1 + (mean - o->prev_mean) / (double)OVL_INTERVAL_NS;
	o->prev_mean = mean;
	if (mean > target && o->delay_ns > target) {
		/* over: take what drains the excess in a few intervals */
		want = 1 - (mean - target) / (OVL_DRAIN_INTERVALS * (double)OVL_INTERVAL_NS);
		if (want < 0.3)
			want = 0.3;
		if (rho < 0.5)
			rho = 0.5; /* draining fast already */
		ratio = want / rho;
		if (ratio < 0.25)
			ratio = 0.25;
		if (ratio > 1.05)
			ratio = 1.05;
		o->admit *= ratio;
		if (o->admit < 0.001)
			o->admit = 0.001; /* something always gets through to measure by */
	} else if (o->admit < 1.0 && rho <= 1.0) {
		/* under, and not filling up: give back gradually */
		o->admit = o->admit * 1.1 + 0.005;
		if (o->admit > 1.0)
			o->admit = 1.0;
	}
	if (o->admit < 1.0) {
		o->st.overloaded++;
		if (o->state == OVL_NORMAL) {
			o->state = OVL_OVERLOADED;
			log_warn(
			    "overload: queueing delay %.1f ms over %u ms, refusing %u%% of new "
			    "requests",
			    o->delay_ns / 1e6, o->p.delay_ms,
			    (unsigned)((1 - o->admit) * 100 + 0.5));
		}
	} else if (o->state == OVL_OVERLOADED) {
		o->state = OVL_NORMAL;
		o->credit = 0;
		log_warn("overload over: queueing delay %.1f ms, %" PRIu64
			 " requests refused so far",
			 o->delay_ns / 1e6, o->st.shed);
	}
}

/* Runs the intervals that ended by now. */
static void ovl_step(struct ovl *o, int64_t now_ns)
{
	unsigned n = 0;

	if (o->interval_start == 0 || now_ns < o->interval_start) {
		o->interval_start = now_ns; /* first use, or the clock went back */
		return;
	}
	while (now_ns - o->interval_start >= OVL_INTERVAL_NS) {
		if (n++ < OVL_MAX_STEPS)
			ovl_control(o);
		o->interval_start += OVL_INTERVAL_NS;
		if (n >= OVL_MAX_STEPS) {
			o->interval_start = now_ns;
			break;
		}
	}
}

void ovl_sample(struct ovl *o, int64_t rx_ns, int64_t now_ns)
{
	int64_t d = now_ns - rx_ns, dt;
	double w;

	if (!o->p.enabled || d > OVL_MAX_DELAY_NS)
		return;
	if (d < 0)
		d = 0;
	ovl_step(o, now_ns);
	/* time-weighted: the same smoothing whatever the message rate */
	dt = o->last_sample_ns ? now_ns - o->last_sample_ns : OVL_TAU_NS;
	w = dt <= 0 ? 0 : (double)dt / OVL_TAU_NS;
	if (w < 1.0 / 256)
		w = 1.0 / 256;
	if (w > 1)
		w = 1;
	o->delay_ns += ((double)d - o->delay_ns) * w;
	o->last_sample_ns = now_ns;
	o->sampled = true;
	o->sum_ns += (double)d;
	o->nsum++;
	o->st.samples++;
	if ((uint64_t)d / 1000 > o->st.max_delay_us)
		o->st.max_delay_us =
		    (uint32_t)((uint64_t)d / 1000 > UINT32_MAX ? UINT32_MAX : (uint64_t)d / 1000);
}

enum ovl_verdict ovl_admit(struct ovl *o, int64_t now_ns)
{
	if (!o->p.enabled)
		return OVL_ADMIT;
	ovl_step(o, now_ns);
	if (o->admit >= 1.0)
		return OVL_ADMIT;
	o->credit += 1.0 - o->admit;
	if (o->credit < 1.0)
		return OVL_ADMIT;
	o->credit -= 1.0;
	o->st.shed++;
	return OVL_SHED;
}

unsigned ovl_reduction(struct ovl *o, int64_t now_ns)
{
	ovl_step(o, now_ns);
	return (unsigned)((1.0 - o->admit) * 100 + 0.5);
}

void ovl_stats_get(struct ovl *o, int64_t now_ns, struct ovl_stats *st)
{
	*st = o->st;
	st->reduction = ovl_reduction(o, now_ns);
	st->delay_us = (uint32_t)(o->delay_ns / 1000);
	st->ndest = 0;
	for (unsigned i = 0; i < o->ndest; i++)
		st->ndest += o->dest[i].expires_ns > now_ns;
}

size_t ovl_oc_params(struct ovl *o, int64_t now_ns, char *buf, size_t len)
{
	unsigned red = ovl_reduction(o, now_ns);
	/* oc-seq: the time in 1e-5 s, strictly increasing per worker (RFC 7339 5.3) */
	uint64_t seq = now_ns > 0 ? (uint64_t)now_ns / 10000 : 0;
	int n;

	if (seq <= o->seq_last)
		seq = o->seq_last + 1;
	o->seq_last = seq;
	n = snprintf(buf, len, ";oc=%u;oc-algo=\"loss\";oc-validity=%u;oc-seq=%" PRIu64 ".%05u",
		     red, red ? o->p.validity_ms : 0, seq / 100000, (unsigned)(seq % 100000));
	return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

static struct ovl_dest *dest_find(struct ovl *o, const struct tp_addr *a)
{
	for (unsigned i = 0; i < o->ndest; i++) {
		if (tp_addr_equal(&o->dest[i].addr, a))
			return &o->dest[i];
	}
	return NULL;
}

void ovl_dest_update(struct ovl *o, const struct tp_addr *a, const struct sip_via_oc *oc,
		     int64_t now_ns)
{
	struct ovl_dest *d = dest_find(o, a);
	uint32_t validity = oc->has_validity ? oc->validity_ms : OVL_DEFAULT_VALIDITY_MS;

	if (!o->p.enabled || !oc->present || !oc->has_value || !oc->loss)
		return; /* no report, or for an algorithm we do not run */
	if (d && d->has_seq && oc->has_seq && oc->seq <= d->seq && d->expires_ns > now_ns)
		return; /* an older report overtaken by a newer one (RFC 7339 5.3) */
	if (oc->value == 0 || validity == 0) {
		if (d)
			*d = o->dest[--o->ndest]; /* the server is fine again */
		return;
	}
	if (!d) {
		unsigned victim = 0;
		if (o->ndest < OVL_DEST_MAX) {
			victim = o->ndest++;
		} else {
			/* full: the report that ends first goes */
			for (unsigned i = 1; i < o->ndest; i++) {
				if (o->dest[i].expires_ns < o->dest[victim].expires_ns)
					victim = i;
			}
		}
		d = &o->dest[victim];
		*d = (struct ovl_dest){.addr = *a};
	}
	d->reduction = oc->value;
	d->expires_ns = now_ns + (int64_t)validity * 1000000;
	d->seq = oc->seq;
	d->has_seq = oc->has_seq;
}

enum ovl_verdict ovl_dest_admit(struct ovl *o, const struct tp_addr *a, int64_t now_ns)
{
	struct ovl_dest *d;

	if (!o->p.enabled || o->ndest == 0)
		return OVL_ADMIT; /* the common case */
	d = dest_find(o, a);
	if (!d)
		return OVL_ADMIT;
	if (d->expires_ns <= now_ns) {
		*d = o->dest[--o->ndest]; /* the report ran out: back to full rate */
		return OVL_ADMIT;
	}
	d->credit += d->reduction;
	if (d->credit < 100)
		return OVL_ADMIT;
	d->credit -= 100;
	o->st.dest_shed++;
	return OVL_SHED;
}

/*
 * The routing core's side
 */

enum proxy_step ovl_request(struct preq *r)
{
	struct ovl *o = r->w->ovl;
	struct sip_msg *m = r->m;
	struct txn_srv *t;
	struct txn_key k;
	unsigned owner;
	char ra[40];
	int n;

	if (r->src->dialog_port && !r->in_dialog) {
		/* the dialog port serves established calls first: a request on no route set of
		 * ours (an ACK or CANCEL of a call's request carries its route set too) is a
		 * stranger's, or a confused peer's, and gets no priority over the main port's by
		 * coming here; no answer either (the flood phase before this one has charged its
		 * source) */
		r->w->stats.rx_dport_strangers++;
		return PROXY_DONE;
	}
	if (!o || !o->p.enabled || o->admit >= 1.0)
		return PROXY_CONTINUE; /* the common case: one comparison */
	if (m->method == SIP_ACK || m->method == SIP_CANCEL || r->in_dialog)
		return PROXY_CONTINUE; /* established calls and work already taken */
	/* a retransmission of a request in progress belongs to its transaction */
	if (txn_key_of(r->w, m, false, &k) == 0 && txn_srv_find(r->w, &k, &owner, &t) == 0)
		return PROXY_CONTINUE;
	if (ovl_admit(o, ovl_now()) == OVL_ADMIT)
		return PROXY_CONTINUE;
	n = o->p.retry_after ? snprintf(ra, sizeof(ra), "Retry-After: %u\r\n", o->p.retry_after)
			     : 0;
	proxy_reply(r, 503, "Overloaded", sv_make(ra, n > 0 ? (size_t)n : 0));
	return PROXY_DONE;
}

size_t ovl_reply_via(struct worker *w, const struct sip_via *via, sv_t drop[SIP_OC_NSPANS],
		     char *text, size_t textlen, size_t *textn)
{
	struct sip_via_oc oc;
	size_t n = 0;

	*textn = 0;
	if (!w->ovl || !w->ovl->p.enabled || !via || !sip_oc_maybe(via->params, false))
		return 0;
	if (sip_via_oc_parse(via, &oc) || !oc.present || !oc.loss)
		return 0; /* no support declared (or not for loss): nothing to say */
	*textn = ovl_oc_params(w->ovl, ovl_now(), text, textlen);
	if (*textn == 0)
		return 0;
	for (unsigned i = 0; i < SIP_OC_NSPANS; i++) {
		if (oc.span[i].len)
			drop[n++] = oc.span[i];
	}
	return n;
}

void ovl_response(struct worker *w, struct sip_msg *resp, const struct tp_addr *dest)
{
	const struct sip_via *via;
	struct sip_via_oc oc;

	if (!w->ovl || !w->ovl->p.enabled)
		return;
	via = sip_msg_via1(resp);
	if (via && sip_oc_maybe(via->params, true) && sip_via_oc_parse(via, &oc) == 0 &&
	    oc.has_value)
		ovl_dest_update(w->ovl, dest, &oc, ovl_now());
}

const char *ovl_via_support(const struct worker *w)
{
	return w->ovl && w->ovl->p.enabled ? ";oc;oc-algo=\"loss\"" : "";
}
