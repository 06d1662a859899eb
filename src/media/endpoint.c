/*
 * endpoint.c - an RTP endpoint for a call leg the server terminates itself
 * (voicemail, conference), with a player and a recorder on top.
 *
 * It exists because the relay only forwards: here the server is the phone.
 * The endpoint takes its port from the worker's relay pool (so relayed and
 * terminated calls never collide and the same quarantine applies), latches
 * the far side's source strictly with the relay's rtp_latch (only the
 * signalled source, or the SIP source's IP, in a short window), packetises
 * what it sends (random SSRC, sequence and timestamp per stream, the marker
 * on a new talk spurt) and hands on what it receives: decoded audio, and
 * RFC 4733 digits de-duplicated by the collector. The RTCP port of the pair
 * is reserved but not opened (we send no RTCP yet).
 *
 * The player paces 20 ms frames with a libevent timer; the recorder writes
 * into a buffer allocated for its whole length limit when it starts, so no
 * packet allocates and no packet touches the disk.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "media/apps.h"

struct mapp_ep {
	struct event_base *base;
	struct mapp_ep_config cfg;
	struct mapp_ep_handlers h;
	struct rtp_pool *pool;
	struct mapp_g711 *g711;
	struct event *ev;
	int fd;
	uint16_t port;
	struct rtp_latch latch;
	struct mapp_digits digits;
	/* what we send */
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
	bool marker;
	struct mapp_ep_stats st;
	int16_t pcm[MAPP_MAX_PACKET];
	uint8_t rbuf[MAPP_MAX_PACKET];
	uint8_t sbuf[MAPP_RTP_HDR + MAPP_FRAME];
};

static uint64_t ep_now(const struct mapp_ep *ep)
{
	struct timespec ts;

	if (ep->cfg.now_ms)
		return ep->cfg.now_ms(ep->cfg.now_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ep_read(evutil_socket_t fd, short what, void *arg)
{
	struct mapp_ep *ep = arg;

	(void)what;
	for (unsigned burst = 0; burst < 64; burst++) {
		struct sockaddr_storage src;
		socklen_t sl = sizeof(src);
		ssize_t len = recvfrom(fd, ep->rbuf, sizeof(ep->rbuf), MSG_DONTWAIT,
				       (struct sockaddr *)&src, &sl);
		size_t hl;
		uint8_t pt;
		uint16_t seq;
		uint32_t ts;
		enum rtp_verdict v;

		if (len < 0)
			return; /* EAGAIN, or an ICMP error surfaced: nothing to do */
		ep->st.rx_packets++;
		v = rtp_latch_check(&ep->latch, &src, ep_now(ep));
		if (v == RTP_DROP_IDLE) {
			ep->st.drop_idle++;
			continue;
		}
		if (v == RTP_DROP_FOREIGN) {
			ep->st.drop_foreign++;
			continue;
		}
		if (len < MAPP_RTP_HDR || (ep->rbuf[0] >> 6) != 2 ||
		    rtp_is_rtcp(ep->rbuf, (size_t)len)) {
			ep->st.drop_malformed++;
			continue;
		}
		hl = MAPP_RTP_HDR + 4u * (ep->rbuf[0] & 0x0f);
		if (ep->rbuf[0] & 0x10) { /* header extension */
			if ((size_t)len < hl + 4) {
				ep->st.drop_malformed++;
				continue;
			}
			hl += 4 + 4u * (size_t)(ep->rbuf[hl + 2] << 8 | ep->rbuf[hl + 3]);
		}
		if (ep->rbuf[0] & 0x20) { /* padding: the last byte counts it */
			uint8_t pad = ep->rbuf[len - 1];
			if (!pad || (size_t)len < hl + pad) {
				ep->st.drop_malformed++;
				continue;
			}
			len -= pad;
		}
		if ((size_t)len < hl) {
			ep->st.drop_malformed++;
			continue;
		}
		pt = ep->rbuf[1] & 0x7f;
		seq = (uint16_t)(ep->rbuf[2] << 8 | ep->rbuf[3]);
		ts = (uint32_t)ep->rbuf[4] << 24 | (uint32_t)ep->rbuf[5] << 16 |
		     (uint32_t)ep->rbuf[6] << 8 | ep->rbuf[7];
		if (pt == (uint8_t)ep->cfg.codec) {
			size_t n = (size_t)len - hl;
			ep->st.rx_audio++;
			if (ep->h.payload) {
				ep->h.payload(ep->h.arg, ep->rbuf + hl, n, seq, ts);
				continue;
			}
			mapp_g711_decode(ep->g711, ep->rbuf + hl, n, ep->pcm);
			if (ep->h.audio)
				ep->h.audio(ep->h.arg, ep->pcm, n, seq, ts);
		} else if (ep->cfg.tev_pt && pt == ep->cfg.tev_pt) {
			struct mapp_tev tev;
			char d;
			ep->st.rx_events++;
			if (mapp_tev_parse(ep->rbuf + hl, (size_t)len - hl, &tev)) {
				ep->st.drop_malformed++;
				continue;
			}
			if (mapp_digits_rtp(&ep->digits, ts, &tev, &d) == 0) {
				char buf[2];
				mapp_digits_take(&ep->digits, buf, sizeof(buf));
				if (ep->h.digit)
					ep->h.digit(ep->h.arg, d);
			}
		} else {
			ep->st.drop_pt++;
		}
	}
}

static int ep_random(void *p, size_t n)
{
	ssize_t r = getrandom(p, n, 0);
	return r == (ssize_t)n ? 0 : (r < 0 ? errno : EIO);
}

int mapp_ep_new(struct event_base *base, const struct mapp_ep_config *cfg,
		const struct mapp_ep_handlers *h, struct mapp_ep **out)
{
	struct mapp_ep *ep;
	struct sdp_ip ip;
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t rnd[10];
	int rc;

	*out = NULL;
	if (!cfg->pool || !cfg->bind_ip || sdp_ip_parse(sv_cstr(cfg->bind_ip), &ip) || !ip.family ||
	    (cfg->tev_pt && (cfg->tev_pt < 96 || cfg->tev_pt > 127)))
		return EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return ENOMEM;
	ep->base = base;
	ep->cfg = *cfg;
	ep->cfg.bind_ip = NULL; /* parsed: no pointer kept into the caller's config */
	if (!ep->cfg.latch_window_ms)
		ep->cfg.latch_window_ms = 5000;
	if (h)
		ep->h = *h;
	ep->pool = cfg->pool;
	ep->fd = -1;
	mapp_digits_init(&ep->digits);
	rc = mapp_g711_new(cfg->codec, &ep->g711);
	if (rc)
		goto fail;
	rc = ep_random(rnd, sizeof(rnd));
	if (rc)
		goto fail;
	memcpy(&ep->ssrc, rnd, 4);
	memcpy(&ep->ts, rnd + 4, 4);
	memcpy(&ep->seq, rnd + 8, 2);
	ep->marker = true;
	ep->fd = socket(ip.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ep->fd < 0) {
		rc = errno;
		goto fail;
	}
	/* a port another process holds is put back to rest and the next one tried */
	for (unsigned tries = 0;; tries++) {
		rc = rtp_pool_get(ep->pool, ep_now(ep), &ep->port);
		if (rc)
			goto fail;
		sl = sdp_ip_to_sockaddr(&ip, ep->port, &ss);
		if (bind(ep->fd, (struct sockaddr *)&ss, sl) == 0)
			break;
		rc = errno;
		(void)rtp_pool_put(ep->pool, ep->port, ep_now(ep));
		ep->port = 0;
		if (rc != EADDRINUSE || tries >= 8)
			goto fail;
	}
	ep->ev = event_new(base, ep->fd, EV_READ | EV_PERSIST, ep_read, ep);
	if (!ep->ev || event_add(ep->ev, NULL)) {
		rc = ENOMEM;
		goto fail;
	}
	*out = ep;
	return 0;
fail:
	mapp_ep_free(ep);
	return rc;
}

void mapp_ep_free(struct mapp_ep *ep)
{
	if (!ep)
		return;
	if (ep->ev)
		event_free(ep->ev);
	if (ep->fd >= 0)
		close(ep->fd);
	if (ep->port)
		(void)rtp_pool_put(ep->pool, ep->port, ep_now(ep));
	mapp_g711_free(ep->g711);
	free(ep);
}

uint16_t mapp_ep_port(const struct mapp_ep *ep)
{
	return ep->port;
}

uint32_t mapp_ep_ssrc(const struct mapp_ep *ep)
{
	return ep->ssrc;
}

void mapp_ep_signal(struct mapp_ep *ep, const struct sockaddr_storage *remote,
		    const struct sdp_ip *sig_src)
{
	rtp_latch_signal(&ep->latch, remote, sig_src, ep_now(ep), ep->cfg.latch_window_ms);
}

enum rtp_latch_state mapp_ep_latch(const struct mapp_ep *ep)
{
	return ep->latch.state;
}

void mapp_ep_mark(struct mapp_ep *ep)
{
	ep->marker = true;
}

int mapp_ep_send_frame(struct mapp_ep *ep, const int16_t pcm[MAPP_FRAME])
{
	mapp_g711_encode(ep->g711, pcm, MAPP_FRAME, ep->sbuf + MAPP_RTP_HDR);
	return mapp_ep_send_payload(ep, ep->sbuf + MAPP_RTP_HDR, MAPP_FRAME);
}

int mapp_ep_send_payload(struct mapp_ep *ep, const uint8_t *g711, size_t len)
{
	const struct sockaddr_storage *to = rtp_latch_dest(&ep->latch);
	uint8_t *b = ep->sbuf;
	socklen_t sl;
	int rc = 0;

	if (!len || len > MAPP_FRAME)
		return EINVAL;
	if (!to || !to->ss_family) {
		ep->st.tx_no_dest++;
		rc = EDESTADDRREQ;
		goto out;
	}
	b[0] = 0x80;
	b[1] = (uint8_t)((ep->marker ? 0x80 : 0) | (uint8_t)ep->cfg.codec);
	b[2] = (uint8_t)(ep->seq >> 8);
	b[3] = (uint8_t)ep->seq;
	b[4] = (uint8_t)(ep->ts >> 24);
	b[5] = (uint8_t)(ep->ts >> 16);
	b[6] = (uint8_t)(ep->ts >> 8);
	b[7] = (uint8_t)ep->ts;
	b[8] = (uint8_t)(ep->ssrc >> 24);
	b[9] = (uint8_t)(ep->ssrc >> 16);
	b[10] = (uint8_t)(ep->ssrc >> 8);
	b[11] = (uint8_t)ep->ssrc;
	if (g711 != b + MAPP_RTP_HDR)
		memcpy(b + MAPP_RTP_HDR, g711, len);
	sl = to->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	if (sendto(ep->fd, b, MAPP_RTP_HDR + len, MSG_DONTWAIT, (const struct sockaddr *)to, sl) <
	    0) {
		ep->st.tx_errors++;
		rc = errno;
	} else {
		ep->st.tx_packets++;
	}
out:
	/* the stream's clock runs on whether or not the packet could leave */
	ep->marker = false;
	ep->seq++;
	ep->ts += (uint32_t)len;
	return rc;
}

void mapp_ep_stats(const struct mapp_ep *ep, struct mapp_ep_stats *st)
{
	*st = ep->st;
}

/* ---------------------------------------------------------------- player */

#define PLAY_MAX_SOUNDS	 16
#define PLAY_MAX_CATCHUP 5

enum play_state { PLAY_RUNNING = 0, PLAY_ENDED };

struct play {
	struct mapp_ep *ep;
	struct event *timer;
	const struct mapp_pcm *sounds;
	unsigned nsounds, cur;
	size_t pos;
	enum play_state state;
	play_done_fn done;
	void *arg;
	uint64_t start_ms, frames;
	int16_t frame[MAPP_FRAME];
};

static void play_end(struct play *p, enum play_end why)
{
	if (p->state == PLAY_ENDED)
		return;
	p->state = PLAY_ENDED;
	evtimer_del(p->timer);
	if (p->done)
		p->done(p->arg, why);
}

/* Fills the next frame; false when every sound has been played. */
static bool play_next_frame(struct play *p)
{
	size_t got = 0;

	while (got < MAPP_FRAME && p->cur < p->nsounds) {
		const struct mapp_pcm *s = &p->sounds[p->cur];
		size_t take = s->n - p->pos;
		if (take > MAPP_FRAME - got)
			take = MAPP_FRAME - got;
		if (!got && !p->pos && p->cur)
			mapp_ep_mark(p->ep); /* a new sound: a new talk spurt */
		memcpy(p->frame + got, s->s + p->pos, take * sizeof(int16_t));
		got += take;
		p->pos += take;
		if (p->pos >= s->n) {
			p->cur++;
			p->pos = 0;
		}
	}
	if (!got)
		return false;
	memset(p->frame + got, 0, (MAPP_FRAME - got) * sizeof(int16_t));
	return true;
}

static void play_tick(evutil_socket_t fd, short what, void *arg)
{
	struct play *p = arg;
	uint64_t due = (ep_now(p->ep) - p->start_ms) / MAPP_FRAME_MS + 1;

	(void)fd;
	(void)what;
	for (unsigned k = 0; p->frames < due && k < PLAY_MAX_CATCHUP; k++) {
		int rc;
		if (!play_next_frame(p)) {
			play_end(p, PLAY_DONE);
			return;
		}
		rc = mapp_ep_send_frame(p->ep, p->frame);
		p->frames++;
		if (rc && rc != EDESTADDRREQ && rc != EAGAIN && rc != ECONNREFUSED) {
			play_end(p, PLAY_SEND_ERROR);
			return;
		}
	}
	if (p->cur >= p->nsounds)
		play_end(p, PLAY_DONE);
}

int play_start(struct event_base *base, struct mapp_ep *ep, const struct mapp_pcm *sounds,
	       unsigned n, play_done_fn done, void *arg, struct play **out)
{
	struct play *p;
	struct timeval tv = {0, MAPP_FRAME_MS * 1000};

	*out = NULL;
	if (!n || n > PLAY_MAX_SOUNDS || !ep)
		return EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return ENOMEM;
	p->ep = ep;
	p->sounds = sounds;
	p->nsounds = n;
	p->done = done;
	p->arg = arg;
	p->timer = event_new(base, -1, EV_PERSIST, play_tick, p);
	if (!p->timer || evtimer_add(p->timer, &tv)) {
		play_free(p);
		return ENOMEM;
	}
	mapp_ep_mark(ep);
	p->start_ms = ep_now(ep);
	/* the first frame leaves at once, the timer paces the rest */
	*out = p;
	play_tick(-1, 0, p);
	return 0;
}

void play_stop(struct play *p)
{
	play_end(p, PLAY_STOPPED);
}

void play_free(struct play *p)
{
	if (!p)
		return;
	if (p->timer)
		event_free(p->timer);
	free(p);
}

uint64_t play_frames_sent(const struct play *p)
{
	return p->frames;
}

/* -------------------------------------------------------------- recorder */

struct rec {
	struct rec_config cfg;
	enum rec_state state;
	enum rec_end end;
	rec_done_fn done;
	void *arg;
	int16_t *s;
	size_t n, cap;
	bool have_ts;
	uint32_t next_ts;
	size_t silent; /* samples under the threshold at the end of the recording */
};

const char *rec_end_name(enum rec_end e)
{
	switch (e) {
	case REC_END_NONE:
		return "recording";
	case REC_END_DIGIT:
		return "digit";
	case REC_END_SILENCE:
		return "silence";
	case REC_END_LIMIT:
		return "length limit";
	case REC_END_STOPPED:
		return "stopped";
	}
	return "?";
}

int rec_new(const struct rec_config *cfg, rec_done_fn done, void *arg, struct rec **out)
{
	struct rec *r;

	*out = NULL;
	if (!cfg->max_ms || cfg->max_ms > 3600 * 1000)
		return EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return ENOMEM;
	r->cfg = *cfg;
	if (!r->cfg.silence_rms)
		r->cfg.silence_rms = 200;
	r->cap = (size_t)cfg->max_ms * (MAPP_RATE / 1000);
	r->s = malloc(r->cap * sizeof(int16_t));
	if (!r->s) {
		free(r);
		return ENOMEM;
	}
	r->done = done;
	r->arg = arg;
	*out = r;
	return 0;
}

void rec_free(struct rec *r)
{
	if (!r)
		return;
	free(r->s);
	free(r);
}

static void rec_finish(struct rec *r, enum rec_end why)
{
	if (r->state == REC_STOPPED)
		return;
	r->state = REC_STOPPED;
	r->end = why;
	if (why == REC_END_SILENCE && r->cfg.trim_silence)
		r->n -= r->silent < r->n ? r->silent : r->n;
	if (r->done)
		r->done(r->arg, why);
}

static bool rec_frame_silent(const struct rec *r, const int16_t *pcm, size_t n)
{
	uint64_t e = 0;

	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		e += (uint64_t)((int32_t)pcm[i] * pcm[i]);
	return (uint64_t)r->cfg.silence_rms * r->cfg.silence_rms * n > e;
}

void rec_audio(struct rec *r, const int16_t *pcm, size_t n, uint16_t seq, uint32_t ts)
{
	size_t gap = 0;

	(void)seq;
	if (r->state != REC_RECORDING)
		return;
	if (r->have_ts) {
		int32_t d = (int32_t)(ts - r->next_ts);
		if (d < 0)
			return; /* a late or duplicated packet: its place is already written */
		gap = (size_t)d;
		if (gap > MAPP_RATE) /* a jump of more than a second: a new timestamp base */
			gap = 0;
	}
	r->have_ts = true;
	r->next_ts = ts + (uint32_t)n;
	/* lost packets are silence (and count towards the silence limit) */
	while (gap && r->n < r->cap) {
		r->s[r->n++] = 0;
		r->silent++;
		gap--;
	}
	for (size_t i = 0; i < n && r->n < r->cap; i++)
		r->s[r->n++] = pcm[i];
	if (rec_frame_silent(r, pcm, n))
		r->silent += n;
	else
		r->silent = 0;
	if (r->n >= r->cap) {
		rec_finish(r, REC_END_LIMIT);
		return;
	}
	if (r->cfg.silence_ms && r->silent >= (size_t)r->cfg.silence_ms * (MAPP_RATE / 1000))
		rec_finish(r, REC_END_SILENCE);
}

void rec_digit(struct rec *r, char digit)
{
	if (r->state == REC_RECORDING && r->cfg.stop_digit && digit == r->cfg.stop_digit)
		rec_finish(r, REC_END_DIGIT);
}

void rec_stop(struct rec *r)
{
	rec_finish(r, REC_END_STOPPED);
}

enum rec_state rec_state(const struct rec *r)
{
	return r->state;
}

enum rec_end rec_end(const struct rec *r)
{
	return r->end;
}

const int16_t *rec_samples(const struct rec *r, size_t *n)
{
	*n = r->n;
	return r->s;
}
