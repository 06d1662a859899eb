/*
 * test_media_apps.c - the media applications of issue 15 (src/media/apps.h):
 * G.711 round trips, WAV files (and the precise refusal of other formats),
 * RFC 4733 parse/build and the de-duplicating digit collector, SIP INFO
 * dtmf-relay bodies, in-band DTMF detection of a generated tone sequence,
 * the player's packets received by a fake phone on a loopback socket, the
 * recorder fed by a fake phone over real UDP (stops on '#' and on silence,
 * ignores a third party), the conference mixer's mix-minus checked with a
 * Goertzel filter per frequency, and the mixer's CPU per participant.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sndfile.h>
#include <spandsp.h>

#include "media/apps.h"

static void sine(int16_t *out, size_t n, double hz, double amp, size_t phase0)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (int16_t)(amp * sin(2 * M_PI * hz * (double)(i + phase0) / MAPP_RATE));
}

/* Goertzel: the power of one frequency in a block, normalised per sample. */
static double goertzel(const int16_t *x, size_t n, double hz)
{
	double w = 2 * M_PI * hz / MAPP_RATE, c = 2 * cos(w), s1 = 0, s2 = 0;

	for (size_t i = 0; i < n; i++) {
		double s0 = x[i] + c * s1 - s2;
		s2 = s1;
		s1 = s0;
	}
	return (s1 * s1 + s2 * s2 - c * s1 * s2) / ((double)n * n);
}

static double correlate(const int16_t *a, const int16_t *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;

	for (size_t i = 0; i < n; i++) {
		ab += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return aa && bb ? ab / sqrt(aa * bb) : 0;
}

/* ------------------------------------------------------------ G.711, WAV */

static void test_g711_roundtrip(void **state)
{
	int16_t in[800], back[800];
	uint8_t enc[800];

	(void)state;
	for (int c = 0; c < 2; c++) {
		struct mapp_g711 *g;
		assert_int_equal(mapp_g711_new(c ? MAPP_PCMA : MAPP_PCMU, &g), 0);
		sine(in, 800, 440, 12000, 0);
		mapp_g711_encode(g, in, 800, enc);
		mapp_g711_decode(g, enc, 800, back);
		for (int i = 0; i < 800; i++) /* logarithmic: error within ~1/16 of the value */
			assert_true(abs(in[i] - back[i]) <= abs(in[i]) / 16 + 40);
		assert_true(correlate(in, back, 800) > 0.999);
		mapp_g711_free(g);
	}
	struct mapp_g711 *g;
	assert_int_equal(mapp_g711_new((enum mapp_codec)9, &g), EINVAL);
}

static void test_wav(void **state)
{
	char path[] = "/tmp/sb-mapp-XXXXXX", why[MAPP_ERRLEN];
	int16_t in[1000];
	struct mapp_pcm pcm;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	sine(in, 1000, 700, 8000, 0);
	assert_int_equal(wav_save(path, in, 1000, why), 0);
	assert_int_equal(wav_load(path, 100000, &pcm, why), 0);
	assert_int_equal(pcm.n, 1000);
	assert_memory_equal(pcm.s, in, sizeof(in));
	mapp_pcm_free(&pcm);
	/* a limit that is hit is an error */
	assert_int_equal(wav_load(path, 999, &pcm, why), E2BIG);
	assert_non_null(strstr(why, "1000 samples"));

	/* 44.1 kHz stereo: refused, saying what the file is */
	SF_INFO info = {
	    .samplerate = 44100, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f = sf_open(path, SFM_WRITE, &info);
	assert_non_null(f);
	sf_writef_short(f, in, 500);
	sf_close(f);
	assert_int_equal(wav_load(path, 100000, &pcm, why), EINVAL);
	assert_non_null(strstr(why, "44100 Hz, need 8000 Hz"));
	/* 8 kHz mono float */
	info =
	    (SF_INFO){.samplerate = 8000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
	f = sf_open(path, SFM_WRITE, &info);
	assert_non_null(f);
	sf_writef_short(f, in, 500);
	sf_close(f);
	assert_int_equal(wav_load(path, 100000, &pcm, why), EINVAL);
	assert_non_null(strstr(why, "32-bit float, need 16-bit PCM"));
	/* 8 kHz stereo */
	info = (SF_INFO){
	    .samplerate = 8000, .channels = 2, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	f = sf_open(path, SFM_WRITE, &info);
	sf_writef_short(f, in, 500);
	sf_close(f);
	assert_int_equal(wav_load(path, 100000, &pcm, why), EINVAL);
	assert_non_null(strstr(why, "2 channels, need mono"));
	/* not a sound file at all */
	FILE *t = fopen(path, "w");
	fputs("hello, this is not RIFF", t);
	fclose(t);
	assert_int_equal(wav_load(path, 100000, &pcm, why), EINVAL);
	assert_non_null(strstr(why, "not a sound file"));
	unlink(path);
	assert_int_equal(wav_load(path, 100000, &pcm, why), ENOENT);
	assert_null(pcm.s);
}

/* The generated prompts (scripts/make-prompts.sh, built with the tests) load and play. */
static void test_prompts(void **state)
{
	char path[512], why[MAPP_ERRLEN];
	struct mapp_pcm greet, beep;

	(void)state;
	snprintf(path, sizeof(path), "%s/greeting-default.wav", SB_PROMPTS_DIR);
	if (access(path, R_OK) != 0)
		skip(); /* espeak-ng / sox absent: CMake warned */
	assert_int_equal(wav_load(path, 60 * MAPP_RATE, &greet, why), 0);
	assert_true(greet.n > 3 * MAPP_RATE); /* a sentence, not an empty file */
	snprintf(path, sizeof(path), "%s/beep.wav", SB_PROMPTS_DIR);
	assert_int_equal(wav_load(path, 60 * MAPP_RATE, &beep, why), 0);
	assert_int_equal(beep.n, 3200);
	assert_true(goertzel(beep.s, beep.n, 1000) > 1000 * goertzel(beep.s, beep.n, 400));
	mapp_pcm_free(&greet);
	mapp_pcm_free(&beep);
}

/* -------------------------------------------------------------- DTMF */

static void test_tev(void **state)
{
	struct mapp_tev ev = {.event = 11, .end = true, .volume = 10, .duration = 1280}, got;
	uint8_t b[8];

	(void)state;
	mapp_tev_build(&ev, b);
	assert_int_equal(b[0], 11);
	assert_int_equal(b[1], 0x8a);
	assert_int_equal(b[2], 0x05);
	assert_int_equal(b[3], 0x00);
	assert_int_equal(mapp_tev_parse(b, 4, &got), 0);
	assert_int_equal(got.event, 11);
	assert_true(got.end);
	assert_int_equal(got.volume, 10);
	assert_int_equal(got.duration, 1280);
	assert_int_equal(mapp_tev_digit(got.event), '#');
	/* the reserved bit is ignored; redundancy: the last block is current */
	uint8_t red[8] = {1, 0x8a, 0, 160, 5, 0x4a, 0, 80};
	assert_int_equal(mapp_tev_parse(red, 8, &got), 0);
	assert_int_equal(got.event, 5);
	assert_false(got.end);
	assert_int_equal(got.volume, 10);
	assert_int_equal(mapp_tev_parse(b, 0, &got), EINVAL);
	assert_int_equal(mapp_tev_parse(b, 3, &got), EINVAL);
	assert_int_equal(mapp_tev_parse(b, 6, &got), EINVAL);
	assert_int_equal(mapp_tev_digit(16), 0);
	assert_int_equal(mapp_tev_event('d'), 15);
	assert_int_equal(mapp_tev_event('x'), -1);
}

static void test_digits_dedupe(void **state)
{
	struct mapp_digits d;
	struct mapp_tev ev = {.event = 1};
	char c, out[8];

	(void)state;
	mapp_digits_init(&d);
	/* "1": start, two updates, the end three times: one digit */
	assert_int_equal(mapp_digits_rtp(&d, 1000, &ev, &c), 0);
	assert_int_equal(c, '1');
	ev.duration = 160;
	assert_int_equal(mapp_digits_rtp(&d, 1000, &ev, &c), EALREADY);
	ev.duration = 320;
	ev.end = true;
	for (int i = 0; i < 3; i++)
		assert_int_equal(mapp_digits_rtp(&d, 1000, &ev, &c), EALREADY);
	/* the same digit again, later: a new digit */
	ev = (struct mapp_tev){.event = 1, .end = true, .duration = 400};
	assert_int_equal(mapp_digits_rtp(&d, 3000, &ev, &c), 0); /* only its end arrived */
	/* a long "5" in two segments (2.5.1.3): one digit */
	ev = (struct mapp_tev){.event = 5, .duration = 65535};
	assert_int_equal(mapp_digits_rtp(&d, 5000, &ev, &c), 0);
	ev.duration = 800;
	ev.end = true;
	assert_int_equal(mapp_digits_rtp(&d, 5000 + 65535, &ev, &c), EALREADY);
	/* a non-digit event */
	ev = (struct mapp_tev){.event = 16, .duration = 800};
	assert_int_equal(mapp_digits_rtp(&d, 90000, &ev, &c), ENOTSUP);
	assert_int_equal(mapp_digits_take(&d, out, sizeof(out)), 3);
	assert_string_equal(out, "115");
	assert_int_equal(d.dups, 5);
	/* the buffer's limit is an error, counted */
	for (int i = 0; i < MAPP_DIGITS_MAX; i++)
		assert_int_equal(mapp_digits_push(&d, '9'), 0);
	assert_int_equal(mapp_digits_push(&d, '9'), ENOBUFS);
	assert_int_equal(d.overflow, 1);
	assert_int_equal(mapp_digits_push(&d, 'x'), EINVAL);
}

static void test_info(void **state)
{
	struct mapp_info_dtmf o;
	const char *why;

	(void)state;
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=5\r\nDuration=160\r\n"), &o, &why), 0);
	assert_int_equal(o.digit, '5');
	assert_int_equal(o.duration_ms, 160);
	assert_int_equal(mapp_info_parse(sv_cstr("signal = #\nduration= 250"), &o, &why), 0);
	assert_int_equal(o.digit, '#');
	assert_int_equal(o.duration_ms, 250);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=10\r\n"), &o, &why), 0);
	assert_int_equal(o.digit, '*');
	assert_int_equal(o.duration_ms, 0);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=11\r\nX-Foo=bar\r\n\r\n"), &o, &why), 0);
	assert_int_equal(o.digit, '#');
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=b"), &o, &why), 0);
	assert_int_equal(o.digit, 'B');

	assert_int_equal(mapp_info_parse(sv_cstr("Duration=160\r\n"), &o, &why), EINVAL);
	assert_string_equal(why, "no Signal");
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=12"), &o, &why), EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=55"), &o, &why), EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal="), &o, &why), EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=1\nSignal=2"), &o, &why), EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=1\nDuration=-5"), &o, &why), EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal=1\nDuration=99999999999"), &o, &why),
			 EINVAL);
	assert_int_equal(mapp_info_parse(sv_cstr("Signal 1"), &o, &why), EINVAL);
	assert_string_equal(why, "line without '='");
	char nul[] = "Signal=1\0";
	assert_int_equal(mapp_info_parse((sv_t){.p = nul, .len = 9}, &o, &why), EINVAL);
	static char big[MAPP_INFO_MAX_BODY + 2];
	memset(big, ' ', sizeof(big));
	memcpy(big, "Signal=1\n", 9);
	assert_int_equal(mapp_info_parse((sv_t){.p = big, .len = sizeof(big)}, &o, &why), EMSGSIZE);
}

static void test_inband(void **state)
{
	struct mapp_digits d;
	struct mapp_inband *ib;
	dtmf_tx_state_t *tx;
	int16_t frame[MAPP_FRAME];
	char out[16];

	(void)state;
	mapp_digits_init(&d);
	assert_int_equal(mapp_inband_new(&d, &ib), 0);
	tx = dtmf_tx_init(NULL);
	assert_non_null(tx);
	dtmf_tx_put(tx, "159#*0D", -1);
	for (int f = 0; f < 150; f++) { /* 3 s */
		int got = dtmf_tx(tx, frame, MAPP_FRAME);
		memset(frame + got, 0, (size_t)(MAPP_FRAME - got) * sizeof(int16_t));
		/* some line noise on top */
		for (int i = 0; i < MAPP_FRAME; i++)
			frame[i] = (int16_t)(frame[i] + (rand() % 61) - 30);
		mapp_inband_feed(ib, frame, MAPP_FRAME);
	}
	dtmf_tx_free(tx);
	mapp_digits_take(&d, out, sizeof(out));
	assert_string_equal(out, "159#*0D");
	/* a 1 kHz tone, or speech-like sines, is not a digit */
	for (int f = 0; f < 50; f++) {
		sine(frame, MAPP_FRAME, 1000, 8000, (size_t)f * MAPP_FRAME);
		mapp_inband_feed(ib, frame, MAPP_FRAME);
	}
	assert_int_equal(d.n, 0);
	mapp_inband_free(ib);
}

/* ------------------------------------------------- endpoint over loopback */

struct phone {
	int fd;
	struct sockaddr_storage addr;
	uint16_t port;
};

static void phone_open(struct phone *ph, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ph->addr;
	socklen_t sl = sizeof(*sin);
	int rcvbuf = 4 << 20;

	ph->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(ph->fd >= 0);
	setsockopt(ph->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	memset(&ph->addr, 0, sizeof(ph->addr));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	assert_int_equal(bind(ph->fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	getsockname(ph->fd, (struct sockaddr *)&ph->addr, &sl);
	ph->port = ntohs(sin->sin_port);
}

static void phone_send(struct phone *ph, uint16_t to_port, uint8_t pt, bool mark, uint16_t seq,
		       uint32_t ts, const uint8_t *payload, size_t len)
{
	uint8_t b[MAPP_RTP_HDR + 512];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(to_port)};

	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	b[0] = 0x80;
	b[1] = (uint8_t)((mark ? 0x80 : 0) | pt);
	b[2] = (uint8_t)(seq >> 8);
	b[3] = (uint8_t)seq;
	b[4] = (uint8_t)(ts >> 24);
	b[5] = (uint8_t)(ts >> 16);
	b[6] = (uint8_t)(ts >> 8);
	b[7] = (uint8_t)ts;
	memset(b + 8, 0x42, 4);
	memcpy(b + MAPP_RTP_HDR, payload, len);
	assert_int_equal(
	    sendto(ph->fd, b, MAPP_RTP_HDR + len, 0, (struct sockaddr *)&to, sizeof(to)),
	    (ssize_t)(MAPP_RTP_HDR + len));
}

struct run {
	struct event_base *base;
	int ended;
	int why;
};

static void on_play_done(void *arg, enum play_end why)
{
	struct run *r = arg;

	r->ended++;
	r->why = (int)why;
	event_base_loopbreak(r->base);
}

static void test_player(void **state)
{
	struct event_base *base = event_base_new();
	struct rtp_pool pool;
	struct mapp_ep *ep;
	struct phone ph;
	struct mapp_pcm snd[2];
	struct play *pl;
	struct run run = {.base = base};
	struct mapp_ep_config cfg = {
	    .pool = &pool, .bind_ip = "127.0.0.1", .codec = MAPP_PCMU, .tev_pt = 101};
	int16_t all[1333], got[10 * MAPP_FRAME];
	uint8_t pkt[600];
	struct mapp_g711 *g;
	uint16_t seq0 = 0;
	uint32_t ts0 = 0;
	unsigned n = 0;

	(void)state;
	assert_int_equal(rtp_pool_init(&pool, 42000, 42099, 10000), 0);
	assert_int_equal(mapp_ep_new(base, &cfg, NULL, &ep), 0);
	phone_open(&ph, "127.0.0.1");
	/* nothing signalled yet: nowhere to send */
	int16_t z[MAPP_FRAME] = {0};
	assert_int_equal(mapp_ep_send_frame(ep, z), EDESTADDRREQ);
	mapp_ep_signal(ep, &ph.addr, NULL);

	/* a prompt (1000 samples) and a beep (333 samples) */
	sine(all, 1000, 440, 10000, 0);
	sine(all + 1000, 333, 1000, 10000, 0);
	snd[0] = (struct mapp_pcm){.s = all, .n = 1000};
	snd[1] = (struct mapp_pcm){.s = all + 1000, .n = 333};
	uint64_t t0_ns;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	(void)t0_ns;
	assert_int_equal(play_start(base, ep, snd, 2, on_play_done, &run, &pl), 0);
	event_base_dispatch(base);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(run.ended, 1);
	assert_int_equal(run.why, PLAY_DONE);
	assert_int_equal(play_frames_sent(pl), 9); /* ceil(1333 / 160) */
	/* paced: 9 frames take 8 ticks of 20 ms */
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 150);

	assert_int_equal(mapp_g711_new(MAPP_PCMU, &g), 0);
	for (;;) {
		ssize_t len = recv(ph.fd, pkt, sizeof(pkt), MSG_DONTWAIT);
		uint16_t seq;
		uint32_t ts, ssrc;
		if (len < 0)
			break;
		assert_int_equal(len, MAPP_RTP_HDR + MAPP_FRAME);
		assert_int_equal(pkt[0], 0x80);
		assert_int_equal(pkt[1] & 0x7f, 0);
		seq = (uint16_t)(pkt[2] << 8 | pkt[3]);
		ts = (uint32_t)pkt[4] << 24 | (uint32_t)pkt[5] << 16 | (uint32_t)pkt[6] << 8 |
		     pkt[7];
		ssrc = (uint32_t)pkt[8] << 24 | (uint32_t)pkt[9] << 16 | (uint32_t)pkt[10] << 8 |
		       pkt[11];
		assert_int_equal(ssrc, mapp_ep_ssrc(ep));
		if (!n) {
			seq0 = seq;
			ts0 = ts;
			assert_true(pkt[1] & 0x80); /* the marker starts the talk spurt */
		} else {
			assert_int_equal(seq, (uint16_t)(seq0 + n));
			assert_int_equal(ts, ts0 + n * MAPP_FRAME);
			assert_false(pkt[1] & 0x80);
		}
		mapp_g711_decode(g, pkt + MAPP_RTP_HDR, MAPP_FRAME, got + n * MAPP_FRAME);
		n++;
	}
	assert_int_equal(n, 9);
	for (int i = 0; i < 1333; i++)
		assert_true(abs(all[i] - got[i]) <= abs(all[i]) / 16 + 40);
	for (int i = 1333; i < 9 * MAPP_FRAME; i++) /* the last frame's padding */
		assert_true(abs(got[i]) <= 8);
	mapp_g711_free(g);
	play_free(pl);
	mapp_ep_free(ep);
	close(ph.fd);
	rtp_pool_free(&pool);
	event_base_free(base);
}

struct recrun {
	struct event_base *base;
	struct rec *rec;
	int ended;
};

static void rr_audio(void *arg, const int16_t *pcm, size_t n, uint16_t seq, uint32_t ts)
{
	struct recrun *rr = arg;
	rec_audio(rr->rec, pcm, n, seq, ts);
}

static void rr_digit(void *arg, char d)
{
	struct recrun *rr = arg;
	rec_digit(rr->rec, d);
}

static void rr_done(void *arg, enum rec_end why)
{
	struct recrun *rr = arg;
	(void)why;
	rr->ended++;
	event_base_loopbreak(rr->base);
}

static void rr_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* A fake phone sends tone_frames of a 440 Hz tone, then silent frames, then maybe '#'. */
static void record_once(bool hash, struct rec **out_rec, struct mapp_ep_stats *st, int16_t *sent,
			size_t *nsent)
{
	struct event_base *base = event_base_new();
	struct rtp_pool pool;
	struct mapp_ep *ep;
	struct phone ph, evil;
	struct recrun rr = {.base = base};
	struct mapp_ep_handlers h = {.audio = rr_audio, .digit = rr_digit, .arg = &rr};
	struct mapp_ep_config cfg = {
	    .pool = &pool, .bind_ip = "127.0.0.1", .codec = MAPP_PCMA, .tev_pt = 101};
	struct rec_config rc = {.max_ms = 10000, .silence_ms = 1000, .stop_digit = '#'};
	struct mapp_g711 *g;
	uint8_t pay[MAPP_FRAME];
	uint16_t seq = 65500; /* wraps during the test */
	uint32_t ts = 4294967000u;
	struct timeval tmo = {5, 0};
	struct event *to;

	assert_int_equal(rtp_pool_init(&pool, 42100, 42199, 10000), 0);
	assert_int_equal(rec_new(&rc, rr_done, &rr, &rr.rec), 0);
	assert_int_equal(mapp_ep_new(base, &cfg, &h, &ep), 0);
	phone_open(&ph, "127.0.0.1");
	phone_open(&evil, "127.0.0.3");
	mapp_ep_signal(ep, &ph.addr, NULL);
	assert_int_equal(mapp_g711_new(MAPP_PCMA, &g), 0);
	*nsent = 0;
	/* 1 s of tone (with the third party injecting loud noise), then 0.4 s of quiet */
	for (int f = 0; f < 70; f++) {
		int16_t pcm[MAPP_FRAME];
		if (f < 50)
			sine(pcm, MAPP_FRAME, 440, 9000, (size_t)f * MAPP_FRAME);
		else
			memset(pcm, 0, sizeof(pcm));
		memcpy(sent + *nsent, pcm, sizeof(pcm));
		*nsent += MAPP_FRAME;
		mapp_g711_encode(g, pcm, MAPP_FRAME, pay);
		phone_send(&ph, mapp_ep_port(ep), 8, f == 0, seq++, ts, pay, MAPP_FRAME);
		ts += MAPP_FRAME;
		if (f % 10 == 5) {
			uint8_t noise[MAPP_FRAME];
			memset(noise, 0x55, sizeof(noise));
			phone_send(&evil, mapp_ep_port(ep), 8, false, 1, 1, noise, MAPP_FRAME);
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	if (hash) {
		/* '#': start, update, end three times (one digit), all with the same timestamp */
		struct mapp_tev ev = {.event = 11, .volume = 10};
		uint8_t b[4];
		for (int k = 0; k < 5; k++) {
			ev.duration = (uint16_t)(160 * (k + 1));
			ev.end = k >= 2;
			mapp_tev_build(&ev, b);
			phone_send(&ph, mapp_ep_port(ep), 101, k == 0, seq++, ts, b, 4);
		}
	} else {
		/* quiet goes on until the recorder gives up */
		for (int f = 0; f < 60; f++) {
			int16_t pcm[MAPP_FRAME];
			for (int i = 0; i < MAPP_FRAME; i++)
				pcm[i] = (int16_t)((rand() % 41) - 20); /* a quiet line */
			mapp_g711_encode(g, pcm, MAPP_FRAME, pay);
			phone_send(&ph, mapp_ep_port(ep), 8, false, seq++, ts, pay, MAPP_FRAME);
			ts += MAPP_FRAME;
		}
	}
	to = evtimer_new(base, rr_timeout, base);
	evtimer_add(to, &tmo);
	while (!rr.ended && evtimer_pending(to, NULL))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(to);
	assert_int_equal(rr.ended, 1);
	mapp_ep_stats(ep, st);
	*out_rec = rr.rec;
	mapp_g711_free(g);
	mapp_ep_free(ep);
	close(ph.fd);
	close(evil.fd);
	rtp_pool_free(&pool);
	event_base_free(base);
}

static void test_recorder_hash(void **state)
{
	struct rec *r;
	struct mapp_ep_stats st;
	static int16_t sent[200 * MAPP_FRAME];
	size_t nsent, n;
	const int16_t *s;

	(void)state;
	record_once(true, &r, &st, sent, &nsent);
	assert_int_equal(rec_end(r), REC_END_DIGIT);
	assert_string_equal(rec_end_name(rec_end(r)), "digit");
	s = rec_samples(r, &n);
	assert_int_equal(n, nsent);
	assert_true(correlate(s, sent, n) > 0.99);
	assert_int_equal(st.drop_foreign, 7); /* the third party never got in */
	assert_int_equal(st.rx_audio, 70);
	assert_int_equal(st.rx_events, 5);
	rec_free(r);
}

static void test_recorder_silence(void **state)
{
	struct rec *r;
	struct mapp_ep_stats st;
	static int16_t sent[200 * MAPP_FRAME];
	size_t nsent, n;
	const int16_t *s;

	(void)state;
	record_once(false, &r, &st, sent, &nsent);
	assert_int_equal(rec_end(r), REC_END_SILENCE);
	s = rec_samples(r, &n);
	/* 1 s of tone, then 1 s of silence ends it: 2 s recorded */
	assert_int_equal(n, 2 * MAPP_RATE);
	assert_true(correlate(s, sent, 50 * MAPP_FRAME) > 0.99);
	rec_free(r);
}

static void rec_limit_done(void *arg, enum rec_end why)
{
	*(int *)arg = (int)why;
}

static void test_recorder_limit_and_gaps(void **state)
{
	struct rec *r;
	struct rec_config rc = {.max_ms = 100, .silence_ms = 0, .stop_digit = '#'};
	int16_t pcm[MAPP_FRAME];
	int why = -1;
	size_t n;
	const int16_t *s;

	(void)state;
	sine(pcm, MAPP_FRAME, 300, 5000, 0);
	assert_int_equal(rec_new(&rc, rec_limit_done, &why, &r), 0);
	rec_audio(r, pcm, MAPP_FRAME, 1, 0);
	rec_audio(r, pcm, MAPP_FRAME, 3, 320); /* frame 2 lost: silence in its place */
	rec_audio(r, pcm, MAPP_FRAME, 2, 160); /* too late: dropped */
	rec_digit(r, '5');
	assert_int_equal(rec_state(r), REC_RECORDING);
	s = rec_samples(r, &n);
	assert_int_equal(n, 3 * MAPP_FRAME);
	assert_int_equal(s[MAPP_FRAME + 7], 0);
	rec_audio(r, pcm, MAPP_FRAME, 4, 480);
	rec_audio(r, pcm, MAPP_FRAME, 5, 640); /* 800 samples = 100 ms: the limit */
	assert_int_equal(why, REC_END_LIMIT);
	s = rec_samples(r, &n);
	assert_int_equal(n, 800);
	rec_free(r);
}

/* ---------------------------------------------------------------- mixer */

struct mixout {
	struct mapp_g711 *dec[2];
	enum mapp_codec codec[8];
	int16_t pcm[8][100 * MAPP_FRAME];
	size_t n[8];
};

static void mix_collect(void *arg, unsigned id, const uint8_t *payload, size_t len)
{
	struct mixout *o = arg;

	assert_int_equal(len, MAPP_FRAME);
	assert_true(id < 8);
	mapp_g711_decode(o->dec[o->codec[id] == MAPP_PCMA], payload, len, o->pcm[id] + o->n[id]);
	o->n[id] += len;
}

static void test_mixer(void **state)
{
	struct mix_config cfg = {.max_participants = 3, .tones = false};
	struct mix_room *m;
	static struct mixout o;
	const double hz[3] = {500, 1100, 1700};
	struct mapp_g711 *enc[2];
	unsigned id[3], extra;
	struct mix_stats st;

	(void)state;
	memset(&o, 0, sizeof(o));
	assert_int_equal(mapp_g711_new(MAPP_PCMU, &enc[0]), 0);
	assert_int_equal(mapp_g711_new(MAPP_PCMA, &enc[1]), 0);
	assert_int_equal(mapp_g711_new(MAPP_PCMU, &o.dec[0]), 0);
	assert_int_equal(mapp_g711_new(MAPP_PCMA, &o.dec[1]), 0);
	assert_int_equal(mix_new(&cfg, &m), 0);
	for (int i = 0; i < 3; i++) {
		o.codec[i] = i == 1 ? MAPP_PCMA : MAPP_PCMU; /* mixed codecs */
		assert_int_equal(mix_join(m, o.codec[i], &id[i]), 0);
	}
	/* the cap is an error, counted */
	assert_int_equal(mix_join(m, MAPP_PCMU, &extra), ENOSPC);
	mix_stats(m, &st);
	assert_int_equal(st.overflow, 1);
	assert_int_equal(st.participants, 3);

	/* 50 frames each, participant 2's arriving two by two in swapped order */
	for (int f = 0; f < 50; f++) {
		for (int i = 0; i < 3; i++) {
			int16_t pcm[MAPP_FRAME];
			uint8_t pay[MAPP_FRAME];
			int ff = f;
			if (i == 2)
				ff = f % 2 ? f - 1 : f + 1;
			sine(pcm, MAPP_FRAME, hz[i], 8000, (size_t)ff * MAPP_FRAME);
			mapp_g711_encode(enc[o.codec[i] == MAPP_PCMA], pcm, MAPP_FRAME, pay);
			assert_int_equal(
			    mix_put(m, id[i], (uint16_t)(7000 * i + ff), pay, MAPP_FRAME), 0);
		}
		if (f % 2)
			mix_tick(m, mix_collect, &o);
		if (f % 2)
			mix_tick(m, mix_collect, &o);
	}
	/* each hears the two others and not itself (skip the prefill frames) */
	for (int i = 0; i < 3; i++) {
		const int16_t *x = o.pcm[i] + 4 * MAPP_FRAME;
		size_t n = o.n[i] - 4 * MAPP_FRAME;
		double own = goertzel(x, n, hz[i]);
		for (int j = 0; j < 3; j++) {
			if (j == i)
				continue;
			double other = goertzel(x, n, hz[j]);
			assert_true(other > 1e5);
			assert_true(other > 1000 * own);
		}
	}
	mix_stats(m, &st);
	assert_int_equal(st.late, 0);

	/* muted: the others no longer hear participant 0 */
	assert_int_equal(mix_mute(m, id[0], true), 0);
	memset(o.n, 0, sizeof(o.n));
	for (int f = 50; f < 80; f++) {
		for (int i = 0; i < 3; i++) {
			int16_t pcm[MAPP_FRAME];
			uint8_t pay[MAPP_FRAME];
			sine(pcm, MAPP_FRAME, hz[i], 8000, (size_t)f * MAPP_FRAME);
			mapp_g711_encode(enc[o.codec[i] == MAPP_PCMA], pcm, MAPP_FRAME, pay);
			assert_int_equal(
			    mix_put(m, id[i], (uint16_t)(7000 * i + f), pay, MAPP_FRAME), 0);
		}
		mix_tick(m, mix_collect, &o);
	}
	double p0_in_1 = goertzel(o.pcm[1] + 2 * MAPP_FRAME, o.n[1] - 2 * MAPP_FRAME, hz[0]);
	double p2_in_1 = goertzel(o.pcm[1] + 2 * MAPP_FRAME, o.n[1] - 2 * MAPP_FRAME, hz[2]);
	double p1_in_0 = goertzel(o.pcm[0] + 2 * MAPP_FRAME, o.n[0] - 2 * MAPP_FRAME, hz[1]);
	assert_true(p2_in_1 > 1000 * p0_in_1);
	assert_true(p1_in_0 > 1e5); /* the muted one still hears */

	/* a late packet is refused and counted; a bad size is refused */
	uint8_t pay[MAPP_FRAME] = {0};
	assert_int_equal(mix_put(m, id[1], 7000 + 10, pay, MAPP_FRAME), ESTALE);
	assert_int_equal(mix_put(m, id[1], 7000 + 81, pay, 100), EINVAL);
	assert_int_equal(mix_put(m, 99, 1, pay, MAPP_FRAME), ENOENT);
	assert_int_equal(mix_leave(m, id[2]), 0);
	assert_int_equal(mix_leave(m, id[2]), ENOENT);
	assert_int_equal(mix_join(m, MAPP_PCMU, &extra), 0);
	mix_free(m);

	/* tones: a joiner is announced to the one already there */
	cfg.tones = true;
	assert_int_equal(mix_new(&cfg, &m), 0);
	memset(o.n, 0, sizeof(o.n));
	assert_int_equal(mix_join(m, MAPP_PCMU, &id[0]), 0);
	o.codec[id[0]] = MAPP_PCMU;
	for (int f = 0; f < 20; f++)
		mix_tick(m, mix_collect, &o);
	assert_true(goertzel(o.pcm[id[0]], 7 * MAPP_FRAME, 600) > 1e4);
	assert_true(goertzel(o.pcm[id[0]] + 8 * MAPP_FRAME, 7 * MAPP_FRAME, 900) > 1e4);
	assert_true(goertzel(o.pcm[id[0]] + 16 * MAPP_FRAME, 4 * MAPP_FRAME, 600) < 10);
	mix_free(m);
	for (int c = 0; c < 2; c++) {
		mapp_g711_free(enc[c]);
		mapp_g711_free(o.dec[c]);
	}
}

static void bench_sink(void *arg, unsigned id, const uint8_t *payload, size_t len)
{
	(void)id;
	*(uint64_t *)arg += payload[len / 2];
}

/* 10 rooms of 5, everyone talking: CPU per participant, and what one core would hold. */
static void test_mixer_cpu(void **state)
{
	enum { ROOMS = 10, PER = 5, SECONDS = 20 };
	struct mix_room *room[ROOMS];
	struct mix_config cfg = {.max_participants = PER};
	uint8_t pay[PER][MAPP_FRAME];
	struct mapp_g711 *enc;
	unsigned id[ROOMS][PER];
	uint64_t sink = 0;
	struct timespec c0, c1;

	(void)state;
	assert_int_equal(mapp_g711_new(MAPP_PCMU, &enc), 0);
	for (int i = 0; i < PER; i++) {
		int16_t pcm[MAPP_FRAME];
		sine(pcm, MAPP_FRAME, 300 + 200 * i, 6000, 0);
		mapp_g711_encode(enc, pcm, MAPP_FRAME, pay[i]);
	}
	for (int r = 0; r < ROOMS; r++) {
		assert_int_equal(mix_new(&cfg, &room[r]), 0);
		for (int i = 0; i < PER; i++)
			assert_int_equal(mix_join(room[r], MAPP_PCMU, &id[r][i]), 0);
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	for (int f = 0; f < SECONDS * 50; f++)
		for (int r = 0; r < ROOMS; r++) {
			for (int i = 0; i < PER; i++)
				mix_put(room[r], id[r][i], (uint16_t)f, pay[i], MAPP_FRAME);
			mix_tick(room[r], bench_sink, &sink);
		}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	double per = cpu / (ROOMS * PER) / SECONDS; /* CPU seconds per participant-second */
	print_message("mixer: %d rooms x %d, %d s of audio in %.3f s CPU: %.2f us CPU per "
		      "participant per 20 ms frame, %.0f participants per core (mixing only)\n",
		      ROOMS, PER, SECONDS, cpu, per * 1e6 / 50, 1 / per);
	assert_true(sink > 0);
	for (int r = 0; r < ROOMS; r++)
		mix_free(room[r]);
	mapp_g711_free(enc);
}

/*
 * The same load over loopback UDP: 10 rooms of 5, each participant a fake
 * phone sending to its own endpoint; the server side (receive, mix, send)
 * is timed, the phones' own work is not.
 */
enum { LB_ROOMS = 10, LB_PER = 5, LB_FRAMES = 250 };
struct lb_part {
	struct mix_room *room;
	unsigned id;
};
struct lb {
	struct mapp_ep *ep[LB_ROOMS][LB_PER];
	struct lb_part part[LB_ROOMS][LB_PER];
	unsigned room;
	uint64_t put_errors;
};

static void lb_payload(void *arg, const uint8_t *g711, size_t len, uint16_t seq, uint32_t ts)
{
	struct lb_part *p = arg;
	(void)ts;
	(void)mix_put(p->room, p->id, seq, g711, len);
}

static void lb_out(void *arg, unsigned id, const uint8_t *payload, size_t len)
{
	struct lb *l = arg;
	if (mapp_ep_send_payload(l->ep[l->room][id], payload, len))
		l->put_errors++;
}

static double cpu_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void test_conference_loopback_cpu(void **state)
{
	static struct lb l;
	static struct phone ph[LB_ROOMS][LB_PER];
	struct event_base *base = event_base_new();
	struct rtp_pool pool;
	struct mix_config cfg = {.max_participants = LB_PER};
	struct mix_room *room[LB_ROOMS];
	struct mapp_ep_config ec = {.pool = &pool, .bind_ip = "127.0.0.1", .codec = MAPP_PCMU};
	uint8_t pay[MAPP_FRAME], drain[512];
	double cpu = 0;
	uint64_t got = 0;

	(void)state;
	memset(pay, 0xd5, sizeof(pay));
	assert_int_equal(rtp_pool_init(&pool, 43000, 43199, 10000), 0);
	for (int r = 0; r < LB_ROOMS; r++) {
		assert_int_equal(mix_new(&cfg, &room[r]), 0);
		for (int i = 0; i < LB_PER; i++) {
			struct mapp_ep_handlers h = {.payload = lb_payload, .arg = &l.part[r][i]};
			l.part[r][i].room = room[r];
			assert_int_equal(mix_join(room[r], MAPP_PCMU, &l.part[r][i].id), 0);
			assert_int_equal(mapp_ep_new(base, &ec, &h, &l.ep[r][i]), 0);
			phone_open(&ph[r][i], "127.0.0.1");
			mapp_ep_signal(l.ep[r][i], &ph[r][i].addr, NULL);
		}
	}
	for (int f = 0; f < LB_FRAMES; f++) {
		double c0;
		for (int r = 0; r < LB_ROOMS; r++)
			for (int i = 0; i < LB_PER; i++)
				phone_send(&ph[r][i], mapp_ep_port(l.ep[r][i]), 0, false,
					   (uint16_t)f, (uint32_t)f * MAPP_FRAME, pay, MAPP_FRAME);
		c0 = cpu_now();
		event_base_loop(base, EVLOOP_NONBLOCK);
		for (unsigned r = 0; r < LB_ROOMS; r++) {
			l.room = r;
			mix_tick(room[r], lb_out, &l);
		}
		cpu += cpu_now() - c0;
		for (int r = 0; r < LB_ROOMS; r++)
			for (int i = 0; i < LB_PER; i++)
				while (recv(ph[r][i].fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
					got++;
	}
	double per = cpu / (LB_ROOMS * LB_PER) / (LB_FRAMES / 50.0);
	print_message("conference over loopback UDP: %d rooms x %d, %d frames: %.1f us CPU per "
		      "participant per frame (receive + mix + send), %.0f participants per core\n",
		      LB_ROOMS, LB_PER, LB_FRAMES, per * 1e6 / 50, 1 / per);
	/* every participant got a frame per tick once its buffer had filled */
	assert_true(got >= (uint64_t)LB_ROOMS * LB_PER * (LB_FRAMES - 2));
	assert_int_equal(l.put_errors, 0);
	for (int r = 0; r < LB_ROOMS; r++) {
		for (int i = 0; i < LB_PER; i++) {
			mapp_ep_free(l.ep[r][i]);
			close(ph[r][i].fd);
		}
		mix_free(room[r]);
	}
	rtp_pool_free(&pool);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_g711_roundtrip),
	    cmocka_unit_test(test_wav),
	    cmocka_unit_test(test_prompts),
	    cmocka_unit_test(test_tev),
	    cmocka_unit_test(test_digits_dedupe),
	    cmocka_unit_test(test_info),
	    cmocka_unit_test(test_inband),
	    cmocka_unit_test(test_player),
	    cmocka_unit_test(test_recorder_hash),
	    cmocka_unit_test(test_recorder_silence),
	    cmocka_unit_test(test_recorder_limit_and_gaps),
	    cmocka_unit_test(test_mixer),
	    cmocka_unit_test(test_mixer_cpu),
	    cmocka_unit_test(test_conference_loopback_cpu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
