/*
 * audio.c - G.711 and WAV files for the media applications (apps.h).
 *
 * It exists so that voicemail and conference rooms never hand-write DSP or
 * file formats: G.711 goes through spandsp, WAV files through libsndfile.
 * Only 8 kHz mono 16-bit PCM files are accepted; anything else is refused
 * with a reason naming what the file is.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>
#include <spandsp.h>

#include "media/apps.h"

struct mapp_g711 {
	g711_state_t *st;
	enum mapp_codec codec;
};

int mapp_g711_new(enum mapp_codec codec, struct mapp_g711 **out)
{
	struct mapp_g711 *g;

	*out = NULL;
	if (codec != MAPP_PCMU && codec != MAPP_PCMA)
		return EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return ENOMEM;
	g->codec = codec;
	g->st = g711_init(NULL, codec == MAPP_PCMU ? G711_ULAW : G711_ALAW);
	if (!g->st) {
		free(g);
		return ENOMEM;
	}
	*out = g;
	return 0;
}

void mapp_g711_free(struct mapp_g711 *g)
{
	if (!g)
		return;
	g711_free(g->st);
	free(g);
}

enum mapp_codec mapp_g711_codec(const struct mapp_g711 *g)
{
	return g->codec;
}

void mapp_g711_encode(struct mapp_g711 *g, const int16_t *pcm, size_t n, uint8_t *out)
{
	g711_encode(g->st, out, pcm, (int)n);
}

void mapp_g711_decode(struct mapp_g711 *g, const uint8_t *in, size_t n, int16_t *pcm)
{
	g711_decode(g->st, pcm, in, (int)n);
}

void mapp_pcm_free(struct mapp_pcm *p)
{
	free(p->s);
	p->s = NULL;
	p->n = 0;
}

static const char *wav_subtype_name(int format)
{
	switch (format & SF_FORMAT_SUBMASK) {
	case SF_FORMAT_PCM_16:
		return "16-bit PCM";
	case SF_FORMAT_PCM_S8:
	case SF_FORMAT_PCM_U8:
		return "8-bit PCM";
	case SF_FORMAT_PCM_24:
		return "24-bit PCM";
	case SF_FORMAT_PCM_32:
		return "32-bit PCM";
	case SF_FORMAT_FLOAT:
		return "32-bit float";
	case SF_FORMAT_DOUBLE:
		return "64-bit float";
	case SF_FORMAT_ULAW:
		return "G.711 u-law";
	case SF_FORMAT_ALAW:
		return "G.711 A-law";
	default:
		return "another encoding";
	}
}

int wav_load(const char *path, size_t max_samples, struct mapp_pcm *out, char why[MAPP_ERRLEN])
{
	SF_INFO info;
	SNDFILE *f;
	sf_count_t got;
	int rc = 0;
	FILE *probe;

	out->s = NULL;
	out->n = 0;
	why[0] = 0;
	/* sf_open does not keep errno: find out why it cannot be opened first */
	probe = fopen(path, "rb");
	if (!probe) {
		rc = errno;
		snprintf(why, MAPP_ERRLEN, "%s: %s", path, strerror(rc));
		return rc;
	}
	fclose(probe);
	memset(&info, 0, sizeof(info));
	f = sf_open(path, SFM_READ, &info);
	if (!f) {
		snprintf(why, MAPP_ERRLEN, "%s: not a sound file (%s)", path, sf_strerror(NULL));
		return EINVAL;
	}
	if ((info.format & SF_FORMAT_TYPEMASK) != SF_FORMAT_WAV) {
		snprintf(why, MAPP_ERRLEN, "%s: not a WAV file", path);
		rc = EINVAL;
		goto out;
	}
	if ((info.format & SF_FORMAT_SUBMASK) != SF_FORMAT_PCM_16) {
		snprintf(why, MAPP_ERRLEN, "%s: %s, need 16-bit PCM", path,
			 wav_subtype_name(info.format));
		rc = EINVAL;
		goto out;
	}
	if (info.samplerate != MAPP_RATE) {
		snprintf(why, MAPP_ERRLEN, "%s: %d Hz, need 8000 Hz", path, info.samplerate);
		rc = EINVAL;
		goto out;
	}
	if (info.channels != 1) {
		snprintf(why, MAPP_ERRLEN, "%s: %d channels, need mono", path, info.channels);
		rc = EINVAL;
		goto out;
	}
	if (info.frames < 0 || (uint64_t)info.frames > max_samples) {
		snprintf(why, MAPP_ERRLEN, "%s: %lld samples, the limit is %zu", path,
			 (long long)info.frames, max_samples);
		rc = E2BIG;
		goto out;
	}
	out->s = malloc(((size_t)info.frames ? (size_t)info.frames : 1) * sizeof(int16_t));
	if (!out->s) {
		rc = ENOMEM;
		goto out;
	}
	got = sf_readf_short(f, out->s, info.frames);
	if (got != info.frames) {
		snprintf(why, MAPP_ERRLEN, "%s: read %lld of %lld samples", path, (long long)got,
			 (long long)info.frames);
		mapp_pcm_free(out);
		rc = EIO;
		goto out;
	}
	out->n = (size_t)got;
out:
	sf_close(f);
	return rc;
}

int wav_save(const char *path, const int16_t *s, size_t n, char why[MAPP_ERRLEN])
{
	SF_INFO info = {
	    .samplerate = MAPP_RATE, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
	SNDFILE *f;
	sf_count_t put;
	int rc = 0;

	why[0] = 0;
	f = sf_open(path, SFM_WRITE, &info);
	if (!f) {
		snprintf(why, MAPP_ERRLEN, "%s: %s", path, sf_strerror(NULL));
		return EIO;
	}
	put = sf_writef_short(f, s, (sf_count_t)n);
	if (put != (sf_count_t)n) {
		snprintf(why, MAPP_ERRLEN, "%s: wrote %lld of %zu samples (%s)", path,
			 (long long)put, n, sf_strerror(f));
		rc = EIO;
	}
	if (sf_close(f) != 0 && !rc) {
		snprintf(why, MAPP_ERRLEN, "%s: close failed", path);
		rc = EIO;
	}
	return rc;
}
