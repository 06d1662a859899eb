/*
 * apps.h - media applications: the pieces the server needs when it ends a
 * call leg itself (voicemail, conference rooms, issue 15) rather than
 * relaying it.
 *
 *   mapp_g711_  G.711 µ-law / A-law through spandsp
 *   wav_        8 kHz mono 16-bit WAV files through libsndfile
 *   mapp_tev_   RFC 4733 telephone-event payloads, mapp_digits_ a collector
 *               that de-duplicates the retransmitted packets of one event
 *   mapp_info_  SIP INFO application/dtmf-relay bodies
 *   mapp_inband_ in-band DTMF detection (spandsp dtmf_rx)
 *   mapp_ep_    an RTP endpoint: a socket from the relay's port pool, RTP
 *               packetisation, strict source latching (the relay's rtp_latch)
 *   play_       pacing 20 ms frames of a list of sounds with a libevent timer
 *   rec_        recording what arrives, until '#', silence or a length limit
 *   mix_        a conference mixer (mix-minus, mute, join/leave tones, a small
 *               reorder buffer per participant)
 *
 * Everything runs on the event base of its owning worker and has no thread
 * of its own. Memory is allocated when an object is created (a sound loaded,
 * a recorder's whole buffer, a room's participants), never per packet.
 * Files are read and written only at setup / teardown (wav_load, wav_save),
 * never per packet.
 *
 * Layering: media depends on core, libevent, spandsp and libsndfile. It is
 * not wired into calls yet (docs/voicemail.md, docs/conference.md).
 */
#ifndef SB_MEDIA_APPS_H
#define SB_MEDIA_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/sv.h"
#include "media/media.h"

#define MAPP_RATE	   8000 /* Hz: everything here is narrowband */
#define MAPP_FRAME	   160	/* samples per 20 ms frame */
#define MAPP_FRAME_MS	   20
#define MAPP_RTP_HDR	   12
#define MAPP_ERRLEN	   160
#define MAPP_MAX_PACKET	   1500
#define MAPP_DIGITS_MAX	   32	/* digits a collector keeps before it is read */
#define MAPP_INFO_MAX_BODY 1024 /* a larger dtmf-relay body is an error */

/* ---------------------------------------------------------------- G.711 */

/* The static RTP payload types of RFC 3551. */
enum mapp_codec { MAPP_PCMU = 0, MAPP_PCMA = 8 };

struct mapp_g711;
/* 0, EINVAL (not PCMU/PCMA) or ENOMEM. */
int mapp_g711_new(enum mapp_codec codec, struct mapp_g711 **out);
void mapp_g711_free(struct mapp_g711 *g);
enum mapp_codec mapp_g711_codec(const struct mapp_g711 *g);
/* n samples to n bytes and back. */
void mapp_g711_encode(struct mapp_g711 *g, const int16_t *pcm, size_t n, uint8_t *out);
void mapp_g711_decode(struct mapp_g711 *g, const uint8_t *in, size_t n, int16_t *pcm);

/* ------------------------------------------------------------------ WAV */

/* A sound in memory: 8 kHz mono 16-bit samples. */
struct mapp_pcm {
	int16_t *s;
	size_t n;
};
/*
 * Loads a WAV file. 0; ENOENT / EACCES / EIO (cannot open or read), EINVAL
 * (not WAV, not 16-bit PCM, not 8000 Hz, not mono: why says which and what
 * the file has), E2BIG (more than max_samples), ENOMEM.
 */
int wav_load(const char *path, size_t max_samples, struct mapp_pcm *out, char why[MAPP_ERRLEN]);
/* Writes samples as an 8 kHz mono 16-bit PCM WAV file. 0 or an errno (why says). */
int wav_save(const char *path, const int16_t *s, size_t n, char why[MAPP_ERRLEN]);
void mapp_pcm_free(struct mapp_pcm *p);

/* ------------------------------------------------- RFC 4733 and digits */

/* One telephone-event block (RFC 4733 2.3). */
struct mapp_tev {
	uint8_t event;	   /* 0-9, 10 '*', 11 '#', 12-15 A-D, 16 flash... */
	bool end;	   /* E bit */
	uint8_t volume;	   /* 0..63, -dBm0 */
	uint16_t duration; /* in timestamp units */
};
/*
 * Parses a telephone-event payload: 4 bytes, or several 4-byte blocks
 * (RFC 4733 2.5.1.5 redundancy: the last block is the current event).
 * 0 or EINVAL (empty, not a multiple of 4 bytes, more than 16 blocks).
 */
int mapp_tev_parse(const uint8_t *p, size_t len, struct mapp_tev *ev);
/* Writes the 4-byte payload; the reserved bit is 0, volume is masked to 6 bits. */
void mapp_tev_build(const struct mapp_tev *ev, uint8_t out[4]);
/* '0'..'9', '*', '#', 'A'..'D' for events 0..15; 0 for others. */
char mapp_tev_digit(uint8_t event);
/* The inverse; -1 when c is not a DTMF digit. */
int mapp_tev_event(char c);

/*
 * A digit collector fed by 4733 packets, INFO bodies or the in-band
 * detector. The packets of one event share their RTP timestamp (and its
 * end is sent three times): a digit is counted once, on the first packet of
 * a new timestamp; a long event continued in a new segment (2.5.1.3: same
 * event, not ended, timestamp = previous + duration) is not a new digit.
 */
struct mapp_digits {
	char buf[MAPP_DIGITS_MAX + 1];
	unsigned n;
	bool have_last;
	bool last_ended;
	uint8_t last_event;
	uint32_t last_ts;
	uint32_t last_dur;
	uint64_t dups;	   /* retransmissions and continuations ignored */
	uint64_t overflow; /* digits refused because the buffer was full */
};
void mapp_digits_init(struct mapp_digits *d);
/*
 * A 4733 packet with RTP timestamp ts. 0 with *digit set for a new digit;
 * EALREADY for a packet of an event already counted; ENOTSUP for an event
 * that is not a DTMF digit; ENOBUFS when the buffer is full (counted).
 */
int mapp_digits_rtp(struct mapp_digits *d, uint32_t ts, const struct mapp_tev *ev, char *digit);
/* A digit from elsewhere (INFO, in-band): 0, EINVAL (not a digit) or ENOBUFS. */
int mapp_digits_push(struct mapp_digits *d, char digit);
/* Takes the collected digits out (NUL-terminated); returns how many. */
unsigned mapp_digits_take(struct mapp_digits *d, char *out, size_t outlen);

/*
 * SIP INFO application/dtmf-relay body: lines "Signal=5" and "Duration=160"
 * (ms), names case-insensitive, blanks around '=' tolerated, other lines
 * ignored. Signal is one of 0-9 * # A-D (a-d), or 10 / 11 for * / #.
 * 0; EINVAL (no Signal, a bad Signal or Duration, a line with a NUL or
 * without '=') or EMSGSIZE (body over MAPP_INFO_MAX_BODY). Duration 0 when
 * absent.
 */
struct mapp_info_dtmf {
	char digit;
	uint32_t duration_ms;
};
int mapp_info_parse(sv_t body, struct mapp_info_dtmf *out, const char **why);

/* In-band DTMF (spandsp dtmf_rx) into a collector. */
struct mapp_inband;
int mapp_inband_new(struct mapp_digits *into, struct mapp_inband **out);
void mapp_inband_free(struct mapp_inband *ib);
void mapp_inband_feed(struct mapp_inband *ib, const int16_t *pcm, size_t n);

/* ------------------------------------------------------ RTP endpoint */

struct event_base;
struct mapp_ep;

/* What the endpoint received, after latching, parsing and de-duplication. */
struct mapp_ep_handlers {
	/* an audio frame (decoded), with its RTP sequence number and timestamp */
	void (*audio)(void *arg, const int16_t *pcm, size_t n, uint16_t seq, uint32_t ts);
	/* when set, audio payloads come here as they are (not decoded): the mixer's way */
	void (*payload)(void *arg, const uint8_t *g711, size_t len, uint16_t seq, uint32_t ts);
	/* a new DTMF digit (RFC 4733, de-duplicated) */
	void (*digit)(void *arg, char digit);
	void *arg;
};

struct mapp_ep_config {
	struct rtp_pool *pool;	       /* the worker's pool (see rtp_engine_pool) */
	const char *bind_ip;	       /* an IPv4 or IPv6 literal */
	enum mapp_codec codec;	       /* what we send and accept */
	uint8_t tev_pt;		       /* telephone-event payload type (96..127), 0 = none */
	uint32_t latch_window_ms;      /* 0 = 5000 */
	uint64_t (*now_ms)(void *arg); /* NULL = CLOCK_MONOTONIC */
	void *now_arg;
};

struct mapp_ep_stats {
	uint64_t rx_packets, rx_audio, rx_events;
	uint64_t drop_foreign, drop_idle, drop_malformed, drop_pt;
	uint64_t tx_packets, tx_errors, tx_no_dest;
};

/* Opens the RTP socket on a port of the pool. 0 or an errno (ENOSPC/EAGAIN from the pool). */
int mapp_ep_new(struct event_base *base, const struct mapp_ep_config *cfg,
		const struct mapp_ep_handlers *h, struct mapp_ep **out);
/* Closes the socket and releases the port. Never from one of its callbacks. */
void mapp_ep_free(struct mapp_ep *ep);
uint16_t mapp_ep_port(const struct mapp_ep *ep);
/*
 * The far side's SDP said: send to `remote`, and (sig_src, may be NULL)
 * the SIP message came from that IP. Opens the latching window.
 */
void mapp_ep_signal(struct mapp_ep *ep, const struct sockaddr_storage *remote,
		    const struct sdp_ip *sig_src);
enum rtp_latch_state mapp_ep_latch(const struct mapp_ep *ep);
/* Sends one 20 ms frame (encoded with the endpoint's codec). 0 or an errno. */
int mapp_ep_send_frame(struct mapp_ep *ep, const int16_t pcm[MAPP_FRAME]);
/* Sends one already encoded payload (1..MAPP_FRAME bytes of the endpoint's codec). */
int mapp_ep_send_payload(struct mapp_ep *ep, const uint8_t *g711, size_t len);
/* Marks the next packet (a talk spurt starts: a new sound). */
void mapp_ep_mark(struct mapp_ep *ep);
void mapp_ep_stats(const struct mapp_ep *ep, struct mapp_ep_stats *st);
uint32_t mapp_ep_ssrc(const struct mapp_ep *ep);

/* -------------------------------------------------------------- player */

struct play;
enum play_end { PLAY_DONE = 0, PLAY_STOPPED, PLAY_SEND_ERROR };
/* Called once when the player ends; may stop but never free the player or the endpoint. */
typedef void (*play_done_fn)(void *arg, enum play_end why);
/*
 * Plays sounds[0..n) one after the other on ep, one 20 ms frame per tick of
 * a libevent timer (catching up when the loop was late, at most 5 frames at
 * once); the last frame is padded with silence. The sounds must outlive the
 * player. 0, EINVAL (n == 0 or too many) or ENOMEM.
 */
int play_start(struct event_base *base, struct mapp_ep *ep, const struct mapp_pcm *sounds,
	       unsigned n, play_done_fn done, void *arg, struct play **out);
void play_stop(struct play *p);
void play_free(struct play *p);
uint64_t play_frames_sent(const struct play *p);

/* ------------------------------------------------------------ recorder */

struct rec;
enum rec_state { REC_RECORDING = 0, REC_STOPPED };
enum rec_end { REC_END_NONE = 0, REC_END_DIGIT, REC_END_SILENCE, REC_END_LIMIT, REC_END_STOPPED };
struct rec_config {
	uint32_t max_ms;      /* length limit: the buffer is allocated for it */
	uint32_t silence_ms;  /* this long under the threshold ends it; 0 = never */
	uint32_t silence_rms; /* threshold on a frame's RMS (16-bit scale); 0 = 200 */
	char stop_digit;      /* '#' usually; 0 = none */
	bool trim_silence;    /* drop the trailing silence when it ended on silence */
};
typedef void (*rec_done_fn)(void *arg, enum rec_end why);
/*
 * Records what ep receives (ep's audio and digit handlers must forward to
 * rec_audio / rec_digit). 0, EINVAL or ENOMEM.
 */
int rec_new(const struct rec_config *cfg, rec_done_fn done, void *arg, struct rec **out);
void rec_free(struct rec *r);
/* An audio frame arrived (RTP seq/ts place it; a gap is filled with silence). */
void rec_audio(struct rec *r, const int16_t *pcm, size_t n, uint16_t seq, uint32_t ts);
void rec_digit(struct rec *r, char digit);
void rec_stop(struct rec *r);
enum rec_state rec_state(const struct rec *r);
enum rec_end rec_end(const struct rec *r);
/* The samples recorded so far. */
const int16_t *rec_samples(const struct rec *r, size_t *n);
const char *rec_end_name(enum rec_end e);

/* --------------------------------------------------------------- mixer */

#define MIX_REORDER 4 /* frames a participant's reorder buffer holds */

struct mix_room;
struct mix_config {
	unsigned max_participants; /* 0 = 16 */
	bool tones;		   /* join / leave tones */
};
struct mix_stats {
	uint64_t ticks, late, reset, missing, overflow;
	unsigned participants;
};
/* Where a participant's mixed frame goes (G.711 in its codec). */
typedef void (*mix_out_fn)(void *arg, unsigned id, const uint8_t *payload, size_t len);

int mix_new(const struct mix_config *cfg, struct mix_room **out);
void mix_free(struct mix_room *m);
/* 0 with *id set, ENOSPC when the room is full (counted in overflow). */
int mix_join(struct mix_room *m, enum mapp_codec codec, unsigned *id);
/* 0 or ENOENT. */
int mix_leave(struct mix_room *m, unsigned id);
int mix_mute(struct mix_room *m, unsigned id, bool mute);
/*
 * A participant's RTP payload (one 20 ms frame, 160 bytes of G.711) with its
 * sequence number. 0; EINVAL (wrong size); ENOENT; ESTALE (too late, counted).
 */
int mix_put(struct mix_room *m, unsigned id, uint16_t seq, const uint8_t *payload, size_t len);
/* One 20 ms tick: every participant's mix-minus frame to out. */
void mix_tick(struct mix_room *m, mix_out_fn out, void *arg);
void mix_stats(const struct mix_room *m, struct mix_stats *st);

#endif
