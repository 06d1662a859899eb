/*
 * mixer.c - a conference room's audio: every 20 ms each participant hears
 * the sum of all the others but not himself (mix-minus), with saturation,
 * muted participants left out of the sum, and a short tone when someone
 * joins or leaves.
 *
 * It exists so that a room costs a few microseconds per participant per
 * frame: the sum is computed once (in 32 bits), each participant's frame is
 * that sum minus his own contribution, and the G.711 encoding of the plain
 * sum is shared by every participant who contributed nothing (the listeners,
 * the muted, the silent) in the same codec. Each participant has a small
 * reorder buffer indexed by sequence number (MIX_REORDER frames, one frame
 * of prefill), enough for the reordering of a LAN or a good WAN; a packet
 * later than its play-out is dropped and counted. All memory is allocated at
 * mix_new; mix_put and mix_tick allocate nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <spandsp.h>

#include "media/apps.h"

#define MIX_TONE_SAMPLES (MAPP_RATE * 3 / 10) /* 300 ms */

enum mix_slot_state { MIX_FREE = 0, MIX_BUFFERING, MIX_PLAYING };

struct mix_part {
	enum mix_slot_state state;
	enum mapp_codec codec;
	bool muted;
	bool have_seq;
	uint16_t next_seq; /* the frame the next tick plays */
	uint8_t filled[MIX_REORDER];
	uint16_t slot_seq[MIX_REORDER];
	uint8_t slot[MIX_REORDER][MAPP_FRAME];
	uint8_t miss_run; /* ticks in a row without a frame */
	bool spoke;	  /* contributed to this tick's sum */
	int16_t in[MAPP_FRAME];
};

struct mix_room {
	struct mix_config cfg;
	struct mix_part *p;
	unsigned np;
	struct mapp_g711 *enc[2], *dec[2]; /* [0] PCMU, [1] PCMA */
	int16_t tone_join[MIX_TONE_SAMPLES], tone_leave[MIX_TONE_SAMPLES];
	const int16_t *tone;
	size_t tone_pos;
	struct mix_stats st;
	int32_t sum[MAPP_FRAME];
	int16_t out[MAPP_FRAME];
	uint8_t shared[2][MAPP_FRAME];
	uint8_t enc_buf[MAPP_FRAME];
};

static unsigned codec_idx(enum mapp_codec c)
{
	return c == MAPP_PCMA ? 1 : 0;
}

/* Two short tones made with spandsp's generator: rising for a join, falling for a leave. */
static int mix_make_tone(int16_t *out, int f1, int f2)
{
	tone_gen_descriptor_t *d;
	tone_gen_state_t *g;
	int got;

	d = tone_gen_descriptor_init(NULL, f1, -16, 0, 0, 120, 30, 0, 0, 0);
	if (!d)
		return ENOMEM;
	g = tone_gen_init(NULL, d);
	if (!g) {
		tone_gen_descriptor_free(d);
		return ENOMEM;
	}
	got = tone_gen(g, out, MAPP_RATE * 15 / 100);
	tone_gen_free(g);
	tone_gen_descriptor_free(d);
	memset(out + got, 0, (size_t)(MIX_TONE_SAMPLES - got) * sizeof(int16_t));
	d = tone_gen_descriptor_init(NULL, f2, -16, 0, 0, 120, 30, 0, 0, 0);
	if (!d)
		return ENOMEM;
	g = tone_gen_init(NULL, d);
	if (!g) {
		tone_gen_descriptor_free(d);
		return ENOMEM;
	}
	tone_gen(g, out + MAPP_RATE * 15 / 100, MAPP_RATE * 15 / 100);
	tone_gen_free(g);
	tone_gen_descriptor_free(d);
	return 0;
}

int mix_new(const struct mix_config *cfg, struct mix_room **out)
{
	struct mix_room *m;
	int rc = 0;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	m->cfg = *cfg;
	if (!m->cfg.max_participants)
		m->cfg.max_participants = 16;
	if (m->cfg.max_participants > 4096) {
		free(m);
		return EINVAL;
	}
	m->np = m->cfg.max_participants;
	m->p = calloc(m->np, sizeof(*m->p));
	if (!m->p) {
		rc = ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < 2; i++) {
		rc = mapp_g711_new(i ? MAPP_PCMA : MAPP_PCMU, &m->enc[i]);
		if (!rc)
			rc = mapp_g711_new(i ? MAPP_PCMA : MAPP_PCMU, &m->dec[i]);
		if (rc)
			goto fail;
	}
	rc = mix_make_tone(m->tone_join, 600, 900);
	if (!rc)
		rc = mix_make_tone(m->tone_leave, 900, 600);
	if (rc)
		goto fail;
	*out = m;
	return 0;
fail:
	mix_free(m);
	return rc;
}

void mix_free(struct mix_room *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < 2; i++) {
		mapp_g711_free(m->enc[i]);
		mapp_g711_free(m->dec[i]);
	}
	free(m->p);
	free(m);
}

static void mix_tone(struct mix_room *m, const int16_t *tone)
{
	if (!m->cfg.tones)
		return;
	m->tone = tone;
	m->tone_pos = 0;
}

int mix_join(struct mix_room *m, enum mapp_codec codec, unsigned *id)
{
	if (codec != MAPP_PCMU && codec != MAPP_PCMA)
		return EINVAL;
	for (unsigned i = 0; i < m->np; i++) {
		struct mix_part *p = &m->p[i];
		if (p->state != MIX_FREE)
			continue;
		memset(p, 0, sizeof(*p));
		p->state = MIX_BUFFERING;
		p->codec = codec;
		m->st.participants++;
		mix_tone(m, m->tone_join);
		*id = i;
		return 0;
	}
	m->st.overflow++;
	return ENOSPC;
}

static struct mix_part *mix_get(struct mix_room *m, unsigned id)
{
	if (id >= m->np || m->p[id].state == MIX_FREE)
		return NULL;
	return &m->p[id];
}

int mix_leave(struct mix_room *m, unsigned id)
{
	struct mix_part *p = mix_get(m, id);

	if (!p)
		return ENOENT;
	p->state = MIX_FREE;
	m->st.participants--;
	mix_tone(m, m->tone_leave);
	return 0;
}

int mix_mute(struct mix_room *m, unsigned id, bool mute)
{
	struct mix_part *p = mix_get(m, id);

	if (!p)
		return ENOENT;
	p->muted = mute;
	return 0;
}

int mix_put(struct mix_room *m, unsigned id, uint16_t seq, const uint8_t *payload, size_t len)
{
	struct mix_part *p = mix_get(m, id);
	unsigned k;
	int16_t ahead;

	if (!p)
		return ENOENT;
	if (len != MAPP_FRAME)
		return EINVAL;
	if (!p->have_seq) {
		p->have_seq = true;
		p->next_seq = seq;
	}
	ahead = (int16_t)(uint16_t)(seq - p->next_seq);
	if (ahead < 0 && ahead > -MIX_REORDER && p->state == MIX_BUFFERING) {
		/* nothing played yet: an earlier packet that overtook the first one starts it */
		p->next_seq = seq;
		ahead = 0;
	}
	if (ahead < 0) {
		m->st.late++;
		return ESTALE;
	}
	if (ahead >= MIX_REORDER) {
		/* a jump (a new stream, a long loss): start again from this packet */
		m->st.reset++;
		memset(p->filled, 0, sizeof(p->filled));
		p->next_seq = seq;
		p->state = MIX_BUFFERING;
	}
	k = seq % MIX_REORDER;
	memcpy(p->slot[k], payload, MAPP_FRAME);
	p->slot_seq[k] = seq;
	p->filled[k] = 1;
	/* one frame of prefill absorbs the jitter of one tick */
	if (p->state == MIX_BUFFERING && (uint16_t)(seq - p->next_seq) >= 1)
		p->state = MIX_PLAYING;
	return 0;
}

static inline int16_t sat16(int32_t x)
{
	return x > 32767 ? 32767 : (x < -32768 ? -32768 : (int16_t)x);
}

void mix_tick(struct mix_room *m, mix_out_fn out, void *arg)
{
	bool have_shared[2] = {false, false};

	m->st.ticks++;
	memset(m->sum, 0, sizeof(m->sum));
	if (m->tone) {
		size_t n = MIX_TONE_SAMPLES - m->tone_pos;
		if (n > MAPP_FRAME)
			n = MAPP_FRAME;
		for (size_t i = 0; i < n; i++)
			m->sum[i] = m->tone[m->tone_pos + i];
		m->tone_pos += n;
		if (m->tone_pos >= MIX_TONE_SAMPLES)
			m->tone = NULL;
	}
	/* take each participant's frame for this tick, and sum */
	for (unsigned i = 0; i < m->np; i++) {
		struct mix_part *p = &m->p[i];
		unsigned k;

		p->spoke = false;
		if (p->state != MIX_PLAYING)
			continue;
		k = p->next_seq % MIX_REORDER;
		if (p->filled[k] && p->slot_seq[k] == p->next_seq) {
			p->filled[k] = 0;
			if (!p->muted) {
				mapp_g711_decode(m->dec[codec_idx(p->codec)], p->slot[k],
						 MAPP_FRAME, p->in);
				for (unsigned s = 0; s < MAPP_FRAME; s++)
					m->sum[s] += p->in[s];
				p->spoke = true;
			}
			p->miss_run = 0;
		} else {
			m->st.missing++;
			/* silence (DTX, a pause): buffer again from the next packet rather than
			 * calling everything that follows late */
			if (++p->miss_run >= MIX_REORDER) {
				p->state = MIX_BUFFERING;
				p->have_seq = false;
				p->miss_run = 0;
				memset(p->filled, 0, sizeof(p->filled));
				continue;
			}
		}
		p->next_seq++;
	}
	/* each hears the sum minus himself */
	for (unsigned i = 0; i < m->np; i++) {
		struct mix_part *p = &m->p[i];
		unsigned c;

		if (p->state == MIX_FREE)
			continue;
		c = codec_idx(p->codec);
		if (!p->spoke) {
			if (!have_shared[c]) {
				for (unsigned s = 0; s < MAPP_FRAME; s++)
					m->out[s] = sat16(m->sum[s]);
				mapp_g711_encode(m->enc[c], m->out, MAPP_FRAME, m->shared[c]);
				have_shared[c] = true;
			}
			out(arg, i, m->shared[c], MAPP_FRAME);
			continue;
		}
		for (unsigned s = 0; s < MAPP_FRAME; s++)
			m->out[s] = sat16(m->sum[s] - p->in[s]);
		mapp_g711_encode(m->enc[c], m->out, MAPP_FRAME, m->enc_buf);
		out(arg, i, m->enc_buf, MAPP_FRAME);
	}
}

void mix_stats(const struct mix_room *m, struct mix_stats *st)
{
	*st = m->st;
}
