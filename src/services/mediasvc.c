/*
 * mediasvc.c - the media relay wired into calls (see mediasvc.h): the
 * sessions' registry, the per-worker engines, the SDP rewriting of
 * forwarded messages, the end of sessions from the dialog hooks, the
 * counters copied into the dialogs and the media timeout.
 */
#include "services/mediasvc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/siphash.h"
#include "media/media.h"
#include "server/worker.h"
#include "sip/sip.h"
#include "transport/tport.h"

#define MSVC_BUCKETS 4096
#define MSVC_TICK_MS 1000
#define MSVC_MAX_PTS 16 /* payload type names kept per session, for the codec seen */

/* A payload type and its name from the SDPs ("PCMU/8000"). */
struct msvc_pt {
	uint8_t pt;
	char name[24];
};

/*
 * A call's media. The registry fields (hnext, plan, have_plan, nstreams) are
 * under ms->lock; everything else belongs to the owner worker.
 */
struct msvc_sess {
	struct msvc_sess *hnext;
	uint64_t h;
	unsigned owner;
	/* for an SDP from side X: the relay addresses the other side sends to */
	struct sdp_rewrite plan[2];
	bool have_plan[2];
	/* owner only */
	struct msvc_sess *oprev, *onext;
	struct rtp_session *rs;
	struct msvc_pt pts[MSVC_MAX_PTS];
	unsigned npts;
	bool timed_out;
	unsigned orphan_ticks; /* ticks in a row its call had no dialog (a safety net) */
	uint64_t via_hash;     /* the caller's top Via branch in the INVITE that made it */
	size_t callid_len, ftag_len;
	char key[]; /* callid NUL ftag NUL */
};

/*
 * What a worker may know of a session it does not own: a copy made under the
 * registry's lock. s may be dereferenced only on its owner.
 */
struct msvc_view {
	struct msvc_sess *s;
	unsigned owner;
	enum rtp_side sender;
	sv_t callid, ctag; /* the session's key, from the message */
	uint64_t via_hash;
	bool have_plan;
	struct sdp_rewrite plan; /* for an SDP from the sender */
};

/* One worker's part. The atomics are what it publishes for msvc_stats_get. */
struct msvc_w {
	struct msvc *ms;
	struct worker *w;
	struct rtp_engine *eng;
	struct event *tick;
	struct msvc_sess *owned;
	uint64_t foreign_closed; /* drop_foreign of the sessions already freed */
	struct buf body_req, body_resp;
	char clen_req[16], clen_resp[16];
	_Atomic uint64_t sessions, ports, created, forwarded, dropped, foreign, timeouts, errors,
	    remote;
};

struct msvc {
	struct msvc_conf c;
	char bind[64], advertise[64];
	struct sdp_ip adv_ip; /* what a stream not open (yet) is offered with, at port 0 */
	struct siphash_key key;
	struct dlg_hooks hooks;
	pthread_mutex_t lock;
	struct msvc_sess *b[MSVC_BUCKETS];
	struct msvc_w *pw; /* [c.nworkers] */
};

/* ------------------------------------------------------------ helpers */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t key_hash(const struct msvc *ms, sv_t callid, sv_t ftag)
{
	struct siphash_state st;

	siphash_init(&st, &ms->key, SIPHASH_1_3);
	siphash_update(&st, callid.p, callid.len);
	siphash_update_u64(&st, ftag.len);
	siphash_update(&st, ftag.p, ftag.len);
	return siphash_final(&st);
}

static sv_t sess_callid(const struct msvc_sess *s)
{
	return sv_make(s->key, s->callid_len);
}

static sv_t sess_ftag(const struct msvc_sess *s)
{
	return sv_make(s->key + s->callid_len + 1, s->ftag_len);
}

/* Under ms->lock. */
static struct msvc_sess *reg_find(struct msvc *ms, sv_t callid, sv_t ftag)
{
	uint64_t h;

	if (!callid.len || !ftag.len)
		return NULL;
	h = key_hash(ms, callid, ftag);
	for (struct msvc_sess *s = ms->b[h % MSVC_BUCKETS]; s; s = s->hnext) {
		if (s->h == h && sv_eq(sess_callid(s), callid) && sv_eq(sess_ftag(s), ftag))
			return s;
	}
	return NULL;
}

/* Under ms->lock. */
static void reg_remove(struct msvc *ms, struct msvc_sess *s)
{
	for (struct msvc_sess **pp = &ms->b[s->h % MSVC_BUCKETS]; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
	}
}

/* What this worker publishes: sessions, ports, engine totals. */
static void publish(struct msvc_w *pw)
{
	struct rtp_engine_stats es;
	struct rtp_pool *pool;
	uint64_t n = 0, foreign = pw->foreign_closed;

	if (!pw->eng)
		return;
	rtp_engine_stats(pw->eng, &es);
	pool = rtp_engine_pool(pw->eng);
	for (struct msvc_sess *s = pw->owned; s; s = s->onext) {
		n++;
		for (unsigned i = 0; i < rtp_session_nstreams(s->rs); i++) {
			for (int side = 0; side < 2; side++) {
				struct rtp_dir_stats ds;
				if (rtp_session_stats(s->rs, i, (enum rtp_side)side, &ds) == 0)
					foreign += ds.drop_foreign;
			}
		}
	}
	atomic_store(&pw->sessions, n);
	atomic_store(&pw->ports, (uint64_t)(pool->n - pool->count) * 2);
	atomic_store(&pw->forwarded, es.forwarded);
	atomic_store(&pw->dropped, es.dropped);
	atomic_store(&pw->foreign, foreign);
}

/* The payload type names of an SDP, kept for the codec the counters saw. */
static void learn_pts(struct msvc_sess *s, const struct sdp_session *sdp)
{
	for (unsigned i = 0; i < sdp->nmedia; i++) {
		const struct sdp_media *m = &sdp->media[i];
		sv_t rest = m->fmts;
		if (!m->rtp || !m->port)
			continue;
		while (rest.len) {
			size_t k = 0;
			unsigned pt = 0;
			struct sdp_rtpmap rm;
			bool known = false;
			while (k < rest.len && rest.p[k] == ' ')
				k++;
			rest = sv_sub(rest, k, rest.len);
			for (k = 0; k < rest.len && rest.p[k] >= '0' && rest.p[k] <= '9'; k++)
				pt = pt * 10 + (unsigned)(rest.p[k] - '0');
			if (!k)
				break;
			rest = sv_sub(rest, k, rest.len);
			if (pt > 127 || sdp_rtpmap_find(m, pt, &rm))
				continue;
			for (unsigned j = 0; j < s->npts && !known; j++)
				known = s->pts[j].pt == pt;
			if (known || s->npts >= MSVC_MAX_PTS)
				continue;
			s->pts[s->npts].pt = (uint8_t)pt;
			snprintf(s->pts[s->npts].name, sizeof(s->pts[0].name), "%.*s/%u",
				 (int)(rm.encoding.len > 15 ? 15 : rm.encoding.len), rm.encoding.p,
				 (unsigned)rm.clock);
			s->npts++;
		}
		break; /* the first audio/video stream names the call's codec */
	}
}

/*
 * A stream the relay has no leg for: offered as rejected (port 0) at the
 * relay's address, never with the phone's own address (media would bypass
 * the relay).
 */
static void reject_stream(const struct msvc *ms, struct sdp_rw_media *m)
{
	memset(m, 0, sizeof(*m));
	m->addr = ms->adv_ip;
	m->port = 0;
}

/* Owner only: the relay addresses each side's SDP is rewritten with, for the other workers. */
static void plans_refresh(struct msvc *ms, struct msvc_sess *s)
{
	struct sdp_rewrite p[2];
	unsigned n = rtp_session_nstreams(s->rs);

	memset(p, 0, sizeof(p));
	for (int side = 0; side < 2; side++) {
		p[side].nmedia = n;
		p[side].strip_ice = true;
		for (unsigned i = 0; i < n; i++) {
			/* an SDP from `side` names the leg facing the other side */
			if (rtp_session_local(s->rs, i, (enum rtp_side) !side, &p[side].media[i]))
				reject_stream(ms, &p[side].media[i]);
		}
	}
	pthread_mutex_lock(&ms->lock);
	memcpy(s->plan, p, sizeof(p));
	s->have_plan[0] = s->have_plan[1] = n > 0;
	pthread_mutex_unlock(&ms->lock);
}

/* ------------------------------------------------------------ sessions */

static struct msvc_sess *sess_new(struct msvc *ms, struct msvc_w *pw, sv_t callid, sv_t ftag,
				  uint64_t via)
{
	struct msvc_sess *s = calloc(1, sizeof(*s) + callid.len + ftag.len + 2);

	if (!s)
		return NULL;
	if (rtp_session_new(pw->eng, &s->rs)) {
		free(s);
		return NULL;
	}
	s->owner = pw->w->id;
	s->callid_len = callid.len;
	s->ftag_len = ftag.len;
	memcpy(s->key, callid.p, callid.len);
	memcpy(s->key + callid.len + 1, ftag.p, ftag.len);
	s->h = key_hash(ms, callid, ftag);
	s->via_hash = via;
	s->onext = pw->owned;
	if (pw->owned)
		pw->owned->oprev = s;
	pw->owned = s;
	pthread_mutex_lock(&ms->lock);
	s->hnext = ms->b[s->h % MSVC_BUCKETS];
	ms->b[s->h % MSVC_BUCKETS] = s;
	pthread_mutex_unlock(&ms->lock);
	atomic_fetch_add(&pw->created, 1);
	return s;
}

/* Owner only: out of the registry, its sockets closed and ports released. */
static void sess_free(struct msvc *ms, struct msvc_w *pw, struct msvc_sess *s)
{
	pthread_mutex_lock(&ms->lock);
	reg_remove(ms, s);
	pthread_mutex_unlock(&ms->lock);
	for (unsigned i = 0; i < rtp_session_nstreams(s->rs); i++) {
		for (int side = 0; side < 2; side++) {
			struct rtp_dir_stats ds;
			if (rtp_session_stats(s->rs, i, (enum rtp_side)side, &ds) == 0)
				pw->foreign_closed += ds.drop_foreign;
		}
	}
	if (s->oprev)
		s->oprev->onext = s->onext;
	else
		pw->owned = s->onext;
	if (s->onext)
		s->onext->oprev = s->oprev;
	rtp_session_free(s->rs);
	free(s);
}

/* The relay's view of a call, for the dialog (billing records, `call show`). */
static void media_of(const struct msvc_sess *s, uint64_t now_mono, struct dlg_media *dm)
{
	uint64_t last = 0;

	memset(dm, 0, sizeof(*dm));
	dm->relayed = true;
	for (unsigned i = 0; i < rtp_session_nstreams(s->rs); i++) {
		for (int side = 0; side < 2; side++) {
			struct rtp_dir_stats ds;
			struct dlg_media_dir *d =
			    side == RTP_CALLER ? &dm->from_caller : &dm->from_callee;
			uint32_t j;
			if (rtp_session_stats(s->rs, i, (enum rtp_side)side, &ds))
				continue;
			d->packets += ds.rx.packets;
			d->bytes += ds.rx.bytes;
			d->lost += rtp_stats_lost(&ds.rx);
			j = rtp_stats_jitter_us(&ds.rx);
			if (j > d->jitter_us)
				d->jitter_us = j;
			if (ds.rx.last_ms > last)
				last = ds.rx.last_ms;
			for (unsigned k = 0; k < s->npts && !d->codec[0]; k++) {
				unsigned pt = s->pts[k].pt;
				if (ds.rx.pt_seen[pt / 64] & (1ull << (pt % 64)))
					snprintf(d->codec, sizeof(d->codec), "%s", s->pts[k].name);
			}
		}
	}
	if (last && last <= now_mono)
		dm->last_rtp_ms = dlg_now_ms() - (int64_t)(now_mono - last);
}

/* ------------------------------------------------------------ the owner's jobs */

/* An SDP applied to the relay by the owner, seen first on another worker. */
struct msvc_job_sdp {
	struct wjob job;
	struct msvc *ms;
	enum rtp_side side;
	bool have_from;
	struct tp_addr from;
	size_t callid_len, ftag_len, sdp_len;
	char data[]; /* callid, ftag, sdp */
};

static void job_sdp(struct worker *w, struct wjob *job)
{
	struct msvc_job_sdp *j = (struct msvc_job_sdp *)job;
	struct msvc *ms = j->ms;
	struct msvc_w *pw = &ms->pw[w->id];
	struct msvc_sess *s;
	struct sdp_session sdp;
	struct sdp_rewrite rw;
	struct sdp_error err;

	pthread_mutex_lock(&ms->lock);
	s = reg_find(ms, sv_make(j->data, j->callid_len),
		     sv_make(j->data + j->callid_len, j->ftag_len));
	pthread_mutex_unlock(&ms->lock);
	/* only the owner frees a session, and this is the owner: s stays valid */
	if (s && pw->eng && s->owner == w->id &&
	    sdp_parse(sv_make(j->data + j->callid_len + j->ftag_len, j->sdp_len), &sdp, &err) ==
		0) {
		if (rtp_session_update(s->rs, j->side, &sdp, j->have_from ? &j->from.u.sa : NULL,
				       &rw) == 0) {
			learn_pts(s, &sdp);
			plans_refresh(ms, s);
		} else {
			atomic_fetch_add(&pw->errors, 1);
		}
		publish(pw);
	}
	free(j);
}

struct msvc_job_end {
	struct wjob job;
	struct msvc *ms;
	size_t callid_len, ftag_len;
	char data[];
};

static void job_end(struct worker *w, struct wjob *job)
{
	struct msvc_job_end *j = (struct msvc_job_end *)job;
	struct msvc *ms = j->ms;
	struct msvc_w *pw = &ms->pw[w->id];
	struct msvc_sess *s;

	pthread_mutex_lock(&ms->lock);
	s = reg_find(ms, sv_make(j->data, j->callid_len),
		     sv_make(j->data + j->callid_len, j->ftag_len));
	pthread_mutex_unlock(&ms->lock);
	if (s && s->owner == w->id && pw->eng) {
		sess_free(ms, pw, s);
		publish(pw);
	}
	free(j);
}

/* ------------------------------------------------------------ dialog hooks */

/* Any thread, bucket lock held: the owner frees the session (if the call has one). */
static void end_session(struct msvc *ms, const struct dlg *d)
{
	sv_t callid = sv_cstr(d->callid), ftag = sv_cstr(d->caller.tag ? d->caller.tag : "");
	struct msvc_job_end *j;
	unsigned owner;
	struct msvc_sess *s;

	pthread_mutex_lock(&ms->lock);
	s = reg_find(ms, callid, ftag);
	owner = s ? s->owner : 0;
	pthread_mutex_unlock(&ms->lock);
	if (!s || owner >= ms->c.nworkers || !ms->pw[owner].w)
		return;
	j = malloc(sizeof(*j) + callid.len + ftag.len);
	if (!j) {
		log_err("media: out of memory: the session of %s keeps its ports until the server "
			"stops",
			d->callid);
		return;
	}
	j->job.fn = job_end;
	j->ms = ms;
	j->callid_len = callid.len;
	j->ftag_len = ftag.len;
	memcpy(j->data, callid.p, callid.len);
	memcpy(j->data + callid.len, ftag.p, ftag.len);
	worker_post(ms->pw[owner].w, &j->job);
}

static void on_terminated(void *arg, const struct dlg *d, enum dlg_end why)
{
	if (d->media.relayed)
		log_info("call %s media (%s): caller sent %llu packets (%llu lost, %s), callee "
			 "sent %llu packets (%llu lost, %s)",
			 d->callid, dlg_end_name(why),
			 (unsigned long long)d->media.from_caller.packets,
			 (unsigned long long)d->media.from_caller.lost,
			 d->media.from_caller.codec[0] ? d->media.from_caller.codec : "-",
			 (unsigned long long)d->media.from_callee.packets,
			 (unsigned long long)d->media.from_callee.lost,
			 d->media.from_callee.codec[0] ? d->media.from_callee.codec : "-");
	/* a losing branch of a fork: the caller's leg goes on with the branch that answered */
	if (why != DLG_END_FORK_LOST)
		end_session(arg, d);
}

static void on_attempt_end(void *arg, const struct dlg *d, enum dlg_end why)
{
	/* DLG_END_NONE: answered, the confirmed dialog goes on (its on_terminated ends it) */
	if (why != DLG_END_NONE)
		end_session(arg, d);
}

/* ------------------------------------------------------------ the tick */

static void tick(evutil_socket_t fd, short what, void *arg)
{
	struct msvc_w *pw = arg;
	struct msvc *ms = pw->ms;
	uint64_t now = mono_ms();

	(void)fd;
	(void)what;
	for (struct msvc_sess *s = pw->owned, *next; s; s = next) {
		struct dlg_media dm;
		next = s->onext;
		media_of(s, now, &dm);
		if (dlg_media_set(ms->c.dlg, sess_callid(s), sess_ftag(s), SV_NULL, &dm) ==
		    ENOENT) {
			/* its dialog is gone and no end reached us (a hook's post failed): free */
			if (++s->orphan_ticks >= 3) {
				log_warn("media: call %.*s has no dialog any more: its relay "
					 "session is freed",
					 (int)s->callid_len, s->key);
				sess_free(ms, pw, s);
			}
			continue;
		}
		s->orphan_ticks = 0;
		if (ms->c.timeout_ms && !s->timed_out &&
		    rtp_session_timed_out(s->rs, now, ms->c.timeout_ms) &&
		    dlg_end_call(ms->c.dlg, sess_callid(s), sess_ftag(s), DLG_END_MEDIA_TIMEOUT,
				 ms->c.end, ms->c.end_arg, dlg_now_ms()) == 0) {
			/* the dialog's on_terminated posts the session's end to us */
			s->timed_out = true;
			atomic_fetch_add(&pw->timeouts, 1);
			log_info("call %.*s: no RTP either way for %u s (media.timeout): BYE to "
				 "both sides",
				 (int)s->callid_len, s->key, ms->c.timeout_ms / 1000);
		}
	}
	publish(pw);
}

/* ------------------------------------------------------------ SDP of forwarded messages */

static bool is_ip_literal(sv_t host)
{
	char t[64];
	struct in6_addr a;

	if (!host.len || host.len >= sizeof(t))
		return false;
	memcpy(t, host.p, host.len);
	t[host.len] = 0;
	return inet_pton(AF_INET, t, &a) == 1 || inet_pton(AF_INET6, t, &a) == 1;
}

bool msvc_nat_suspect(sv_t contact_host, sv_t sdp_addr, const struct tp_addr *from)
{
	struct sdp_ip src, ip;

	if (!from || sdp_ip_from_sockaddr(&from->u.sa, &src, NULL))
		return false;
	if (is_ip_literal(contact_host) && sdp_ip_parse(contact_host, &ip) == 0 &&
	    !sdp_ip_eq(&ip, &src))
		return true; /* the Contact is not where the request came from */
	if (sdp_addr.len && sdp_ip_parse(sdp_addr, &ip) == 0 &&
	    sdp_ip_kind(&ip) != SDP_IP_UNSPECIFIED) {
		if (!sdp_ip_eq(&ip, &src))
			return true; /* the media address is not the signalling source */
		if (sdp_ip_is_private(&ip) && !sdp_ip_is_private(&src))
			return true;
	}
	return false;
}

bool msvc_nat_callee(sv_t target_uri, const struct tp_addr *to)
{
	struct sdp_ip dst, ip;
	struct sip_uri u;

	if (!to || !target_uri.len || sdp_ip_from_sockaddr(&to->u.sa, &dst, NULL) ||
	    sip_uri_parse(target_uri, &u))
		return false;
	return is_ip_literal(u.host) && sdp_ip_parse(u.host, &ip) == 0 && !sdp_ip_eq(&ip, &dst);
}

static sv_t contact_host(struct sip_msg *m)
{
	struct sip_hdr *h = sip_msg_hdr(m, SIP_H_CONTACT);
	struct sip_naddr na;
	struct sip_uri u;

	if (h && sip_naddr_parse(h->value, &na, NULL) == 0 && sip_uri_parse(na.uri, &u) == 0)
		return u.host;
	return SV_NULL;
}

/* The SDP of m (application/sdp, or a multipart part): 0, or ENOENT / an errno. */
static int find_sdp(struct sip_msg *m, sv_t *sdp_text, struct sdp_session *sdp)
{
	struct sip_hdr *ct = sip_msg_hdr(m, SIP_H_CONTENT_TYPE);
	struct sdp_error err;
	int rc;

	if (!m->body.len || !ct)
		return ENOENT;
	rc = sdp_body_find(ct->value, m->body, sdp_text, &err);
	if (rc)
		return rc;
	rc = sdp_parse(*sdp_text, sdp, &err);
	if (rc)
		log_debug("media: SDP refused (line %u: %s): forwarded as it is", err.line,
			  err.why ? err.why : "?");
	return rc;
}

/* Replaces m's body with the rewrite of its SDP, and its Content-Length. */
static int edit_body(struct sip_msg *m, const struct sdp_session *sdp, const struct sdp_rewrite *rw,
		     struct buf *out, char *clen, struct sip_edit_list *l)
{
	struct sdp_error err;
	struct sip_hdr *h;
	int rc;
	size_t n;

	buf_reset(out);
	rc = sdp_body_rewrite(m->body, sdp, rw, out, &err);
	if (rc || out->err)
		return rc ? rc : out->err;
	if (sip_edit_add(l, m->body.p, m->body.len, buf_sv(out)))
		return E2BIG;
	h = sip_msg_hdr(m, SIP_H_CONTENT_LENGTH);
	if (h) {
		n = sv_put_u32(clen, (uint32_t)out->len);
		if (sip_edit_add(l, h->value.p, h->value.len, sv_make(clen, n)))
			return E2BIG;
	}
	return 0;
}

/*
 * An SDP from `side` of session s, on worker pw: the owner applies it to the
 * relay and rewrites with what it returns; another worker rewrites from the
 * registry's plan (a stream the owner has not opened yet is offered as
 * rejected, port 0) and posts the SDP to the owner.
 */
static void apply_sdp(struct msvc *ms, struct msvc_w *pw, const struct msvc_view *v,
		      struct sip_msg *m, sv_t sdp_text, const struct sdp_session *sdp,
		      const struct tp_addr *from, bool response, struct sip_edit_list *l)
{
	struct buf *out = response ? &pw->body_resp : &pw->body_req;
	char *clen = response ? pw->clen_resp : pw->clen_req;
	struct sdp_rewrite rw;
	int rc;

	if (v->owner == pw->w->id) {
		/* we are the owner: nobody else frees v->s */
		rc = rtp_session_update(v->s->rs, v->sender, sdp, from ? &from->u.sa : NULL, &rw);
		if (rc == 0) {
			learn_pts(v->s, sdp);
			plans_refresh(ms, v->s);
		}
		publish(pw);
	} else {
		/* another worker's session: never touched here, only its registry snapshot */
		struct msvc_job_sdp *j;
		rc = v->have_plan ? 0 : EAGAIN;
		if (v->have_plan) {
			rw = v->plan;
			for (unsigned i = rw.nmedia; i < sdp->nmedia && i < SDP_MAX_MEDIA; i++)
				reject_stream(ms, &rw.media[i]); /* not open on the owner yet */
			rw.nmedia = sdp->nmedia;
		}
		/* the owner applies it (addresses, latching window) */
		j = malloc(sizeof(*j) + v->callid.len + v->ctag.len + sdp_text.len);
		if (j) {
			j->job.fn = job_sdp;
			j->ms = ms;
			j->side = v->sender;
			j->have_from = from != NULL;
			if (from)
				j->from = *from;
			j->callid_len = v->callid.len;
			j->ftag_len = v->ctag.len;
			j->sdp_len = sdp_text.len;
			memcpy(j->data, v->callid.p, v->callid.len);
			memcpy(j->data + v->callid.len, v->ctag.p, v->ctag.len);
			memcpy(j->data + v->callid.len + v->ctag.len, sdp_text.p, sdp_text.len);
			atomic_fetch_add(&pw->remote, 1);
			worker_post(ms->pw[v->owner].w, &j->job);
		}
	}
	if (rc == 0)
		rc = edit_body(m, sdp, &rw, out, clen, l);
	if (rc) {
		atomic_fetch_add(&pw->errors, 1);
		log_warn("media: the SDP of a %s in call %.*s is not relayed: %s",
			 response ? "response" : "request", (int)v->callid.len, v->callid.p,
			 strerror(rc));
	}
}

/*
 * The session of m's call, as a snapshot taken under the registry's lock,
 * and which side sent m. The session is keyed by the caller's tag: From's
 * tag when the caller sent the request, To's tag when the callee did. A
 * request comes from its From party, a response from its To party. false
 * when the call has no session.
 */
static bool sess_of(struct msvc *ms, struct sip_msg *m, struct msvc_view *v)
{
	const struct sip_naddr *from = sip_msg_from(m), *to = sip_msg_to(m);
	struct msvc_sess *s;
	enum rtp_side from_party = RTP_CALLER;

	memset(v, 0, sizeof(*v));
	if (!from || !to)
		return false;
	v->callid = sip_msg_callid(m);
	pthread_mutex_lock(&ms->lock);
	s = reg_find(ms, v->callid, from->tag);
	v->ctag = from->tag;
	if (!s && to->tag.len) {
		s = reg_find(ms, v->callid, to->tag);
		v->ctag = to->tag;
		from_party = RTP_CALLEE;
	}
	v->sender = m->request ? from_party : (enum rtp_side) !from_party;
	if (s) {
		v->s = s;
		v->owner = s->owner;
		v->via_hash = s->via_hash;
		v->have_plan = s->have_plan[v->sender];
		if (v->have_plan)
			v->plan = s->plan[v->sender];
	}
	pthread_mutex_unlock(&ms->lock);
	return s != NULL;
}

static bool want_relay(struct msvc *ms, struct sip_msg *m, const struct msvc_branch *br,
		       sv_t sdp_addr)
{
	if (ms->c.mode == CFG_MEDIA_ALWAYS || (br->gateway && ms->c.gateways))
		return true;
	if (ms->c.mode == CFG_MEDIA_NAT)
		return msvc_nat_suspect(contact_host(m), sdp_addr, br->from) ||
		       msvc_nat_callee(br->target_uri, br->to);
	return false;
}

/* The caller's top Via branch: which received INVITE a branch was built from. */
static uint64_t via_hash(const struct msvc *ms, struct sip_msg *m)
{
	const struct sip_via *v = sip_msg_via1(m);

	return v ? siphash_sv(&ms->key, v->branch) : 0;
}

void msvc_on_request(struct msvc *ms, struct worker *w, struct sip_msg *m,
		     const struct msvc_branch *br, bool in_dialog, struct sip_edit_list *l)
{
	const struct tp_addr *from = br->from;
	struct msvc_w *pw = &ms->pw[w->id];
	struct sdp_session sdp;
	struct msvc_view v;
	sv_t sdp_text = SV_NULL;
	bool has_sdp, found;
	const struct sip_naddr *to;

	if (!pw->eng)
		return;
	switch (m->method) {
	case SIP_INVITE:
	case SIP_ACK:
	case SIP_UPDATE:
	case SIP_PRACK:
		break;
	default:
		return;
	}
	found = sess_of(ms, m, &v);
	to = sip_msg_to(m);
	if (!in_dialog) {
		/*
		 * Out of dialog: only the INVITE of a new call, or another branch of the
		 * INVITE that made its session (the same caller's Via branch). Another
		 * request naming the call's Call-ID and tags (a stranger who learnt them)
		 * never changes where its media goes.
		 */
		if (m->method != SIP_INVITE || !to || to->tag.len)
			return;
		if (found && (v.via_hash != via_hash(ms, m) || v.owner != w->id))
			return;
	} else if (!found) {
		return; /* not a call we relay */
	}
	has_sdp = find_sdp(m, &sdp_text, &sdp) == 0;
	if (!found) {
		/* a new call: anchored or not, decided now for all its branches */
		const struct sdp_conn *c =
		    has_sdp && sdp.nmedia ? sdp_media_conn(&sdp, &sdp.media[0]) : NULL;
		const struct sip_naddr *fr = sip_msg_from(m);
		struct dlg_media dm = {.relayed = true};
		if (!fr || !want_relay(ms, m, br, c ? c->addr : SV_NULL))
			return;
		/* only calls the dialog layer follows: their end is what frees the ports */
		if (dlg_media_set(ms->c.dlg, sip_msg_callid(m), fr->tag, SV_NULL, &dm) == ENOENT) {
			log_debug("media: call %.*s is not followed as a dialog: not relayed",
				  (int)sip_msg_callid(m).len, sip_msg_callid(m).p);
			return;
		}
		v.s = sess_new(ms, pw, sip_msg_callid(m), fr->tag, via_hash(ms, m));
		if (!v.s) {
			atomic_fetch_add(&pw->errors, 1);
			log_warn("media: no relay session for call %.*s (out of memory)",
				 (int)sip_msg_callid(m).len, sip_msg_callid(m).p);
			return;
		}
		v.owner = w->id;
		v.sender = RTP_CALLER;
		v.callid = sip_msg_callid(m);
		v.ctag = fr->tag;
		publish(pw);
	}
	if (has_sdp)
		apply_sdp(ms, pw, &v, m, sdp_text, &sdp, from, false, l);
}

void msvc_on_response(struct msvc *ms, struct worker *w, struct sip_msg *m,
		      const struct tp_addr *from, struct sip_edit_list *l)
{
	struct msvc_w *pw = &ms->pw[w->id];
	const struct sip_cseq *cs;
	struct sdp_session sdp;
	struct msvc_view v;
	sv_t sdp_text;

	if (!pw->eng || m->status <= 100 || m->status >= 300 || !m->body.len)
		return;
	cs = sip_msg_cseq(m);
	if (!cs ||
	    (cs->method != SIP_INVITE && cs->method != SIP_UPDATE && cs->method != SIP_PRACK))
		return;
	/* a response to a request we forwarded (its branch MAC was checked): authentic */
	if (!sess_of(ms, m, &v) || find_sdp(m, &sdp_text, &sdp))
		return;
	apply_sdp(ms, pw, &v, m, sdp_text, &sdp, from, true, l);
}

bool msvc_bye(struct msvc *ms, struct worker *w, struct sip_msg *m, unsigned *owner)
{
	struct msvc_w *pw = &ms->pw[w->id];
	struct msvc_view v;
	struct dlg_media dm;

	if (!sess_of(ms, m, &v))
		return false;
	if (v.owner != w->id) {
		*owner = v.owner;
		return v.owner < ms->c.nworkers && ms->pw[v.owner].w;
	}
	if (!pw->eng)
		return false;
	/* the owner: nobody else frees v.s */
	media_of(v.s, mono_ms(), &dm);
	dlg_media_set(ms->c.dlg, v.callid, v.ctag, SV_NULL, &dm);
	return false;
}

/* ------------------------------------------------------------ life */

int msvc_create(const struct msvc_conf *c, struct msvc **out)
{
	struct msvc *ms = calloc(1, sizeof(*ms));
	int rc;

	if (!ms)
		return ENOMEM;
	ms->c = *c;
	snprintf(ms->bind, sizeof(ms->bind), "%s", c->bind ? c->bind : "");
	snprintf(ms->advertise, sizeof(ms->advertise), "%s",
		 c->advertise && c->advertise[0] ? c->advertise : ms->bind);
	ms->c.bind = ms->bind;
	ms->c.advertise = ms->advertise;
	if (sdp_ip_parse(sv_cstr(ms->advertise), &ms->adv_ip)) {
		free(ms);
		return EINVAL;
	}
	ms->pw = calloc(c->nworkers ? c->nworkers : 1, sizeof(*ms->pw));
	if (!ms->pw || (rc = siphash_key_random(&ms->key))) {
		free(ms->pw);
		free(ms);
		return ENOMEM;
	}
	pthread_mutex_init(&ms->lock, NULL);
	ms->hooks.on_terminated = on_terminated;
	ms->hooks.on_attempt_end = on_attempt_end;
	ms->hooks.arg = ms;
	if (c->dlg && (rc = dlg_hooks_add(c->dlg, &ms->hooks))) {
		msvc_destroy(ms);
		return rc;
	}
	*out = ms;
	return 0;
}

void msvc_destroy(struct msvc *ms)
{
	if (!ms)
		return;
	pthread_mutex_destroy(&ms->lock);
	free(ms->pw);
	free(ms);
}

int msvc_worker_attach(struct msvc *ms, struct worker *w)
{
	struct msvc_w *pw;
	struct rtp_config rc = {0};
	struct timeval tv = {MSVC_TICK_MS / 1000, (MSVC_TICK_MS % 1000) * 1000};
	uint16_t lo, hi;
	int err;

	if (w->id >= ms->c.nworkers)
		return EINVAL;
	pw = &ms->pw[w->id];
	err = rtp_pool_subrange(ms->c.port_lo, ms->c.port_hi, ms->c.nworkers, w->id, &lo, &hi);
	if (err)
		return err;
	rc.port_lo = lo;
	rc.port_hi = hi;
	rc.quarantine_ms = ms->c.quarantine_ms;
	rc.latch_window_ms = ms->c.latch_window_ms;
	rc.bind_v4 = ms->bind;
	rc.advertise_v4 = ms->advertise;
	err = rtp_engine_new(w->base, &rc, &pw->eng);
	if (err)
		return err;
	pw->ms = ms;
	pw->w = w;
	buf_init(&pw->body_req, SDP_MAX_BODY + 1);
	buf_init(&pw->body_resp, SDP_MAX_BODY + 1);
	pw->tick = event_new(w->base, -1, EV_PERSIST, tick, pw);
	if (!pw->tick) {
		msvc_worker_detach(ms, w);
		return ENOMEM;
	}
	event_add(pw->tick, &tv);
	publish(pw);
	return 0;
}

void msvc_worker_detach(struct msvc *ms, struct worker *w)
{
	struct msvc_w *pw;

	if (!ms || w->id >= ms->c.nworkers)
		return;
	pw = &ms->pw[w->id];
	if (pw->tick)
		event_free(pw->tick);
	pw->tick = NULL;
	while (pw->owned)
		sess_free(ms, pw, pw->owned);
	if (pw->eng)
		rtp_engine_free(pw->eng);
	pw->eng = NULL;
	buf_free(&pw->body_req);
	buf_free(&pw->body_resp);
}

void msvc_stats_get(struct msvc *ms, struct msvc_stats *o)
{
	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < ms->c.nworkers; i++) {
		struct msvc_w *pw = &ms->pw[i];
		o->sessions += atomic_load(&pw->sessions);
		o->ports_in_use += atomic_load(&pw->ports);
		o->created += atomic_load(&pw->created);
		o->forwarded += atomic_load(&pw->forwarded);
		o->dropped += atomic_load(&pw->dropped);
		o->drop_foreign += atomic_load(&pw->foreign);
		o->media_timeouts += atomic_load(&pw->timeouts);
		o->errors += atomic_load(&pw->errors);
		o->remote_updates += atomic_load(&pw->remote);
	}
}
