/*
 * dtmf.c - DTMF digits from the three places a phone may send them:
 * RFC 4733 telephone-event RTP packets (parsed and built here, with a
 * collector that counts each event once although its end is retransmitted),
 * SIP INFO application/dtmf-relay bodies, and in-band tones (spandsp's
 * dtmf_rx, for phones that send neither).
 *
 * The parsers take bytes from strangers: every length is checked, every
 * refusal is an errno, nothing is allocated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <spandsp.h>

#include "media/apps.h"

static const char tev_digits[16] = "0123456789*#ABCD";

char mapp_tev_digit(uint8_t event)
{
	return event < 16 ? tev_digits[event] : 0;
}

int mapp_tev_event(char c)
{
	if (c >= 'a' && c <= 'd')
		c = (char)(c - 'a' + 'A');
	for (int i = 0; i < 16; i++)
		if (tev_digits[i] == c && c)
			return i;
	return -1;
}

int mapp_tev_parse(const uint8_t *p, size_t len, struct mapp_tev *ev)
{
	if (!len || len % 4 || len > 16 * 4)
		return EINVAL;
	p += len - 4; /* redundant blocks first, the current event last */
	ev->event = p[0];
	ev->end = (p[1] & 0x80) != 0;
	ev->volume = p[1] & 0x3f; /* bit 6 is reserved: ignored (2.3.3) */
	ev->duration = (uint16_t)(p[2] << 8 | p[3]);
	return 0;
}

void mapp_tev_build(const struct mapp_tev *ev, uint8_t out[4])
{
	out[0] = ev->event;
	out[1] = (uint8_t)((ev->end ? 0x80 : 0) | (ev->volume & 0x3f));
	out[2] = (uint8_t)(ev->duration >> 8);
	out[3] = (uint8_t)ev->duration;
}

void mapp_digits_init(struct mapp_digits *d)
{
	memset(d, 0, sizeof(*d));
}

int mapp_digits_push(struct mapp_digits *d, char digit)
{
	if (mapp_tev_event(digit) < 0)
		return EINVAL;
	if (d->n >= MAPP_DIGITS_MAX) {
		d->overflow++;
		return ENOBUFS;
	}
	if (digit >= 'a' && digit <= 'd')
		digit = (char)(digit - 'a' + 'A');
	d->buf[d->n++] = digit;
	d->buf[d->n] = 0;
	return 0;
}

int mapp_digits_rtp(struct mapp_digits *d, uint32_t ts, const struct mapp_tev *ev, char *digit)
{
	char c = mapp_tev_digit(ev->event);
	bool same = d->have_last && ts == d->last_ts;
	/* 2.5.1.3: a long event goes on in a new segment (new timestamp, not ended) */
	bool continued = d->have_last && !d->last_ended && ev->event == d->last_event &&
			 ts == d->last_ts + d->last_dur;
	int rc;

	*digit = 0;
	if (same || continued) {
		if (same && ev->event == d->last_event) {
			if (ev->duration > d->last_dur)
				d->last_dur = ev->duration;
			d->last_ended |= ev->end;
		} else if (continued) {
			d->last_ts = ts;
			d->last_dur = ev->duration;
			d->last_ended = ev->end;
		}
		d->dups++;
		return EALREADY;
	}
	d->have_last = true;
	d->last_ts = ts;
	d->last_event = ev->event;
	d->last_dur = ev->duration;
	d->last_ended = ev->end;
	if (!c)
		return ENOTSUP;
	rc = mapp_digits_push(d, c);
	if (rc)
		return rc;
	*digit = c;
	return 0;
}

unsigned mapp_digits_take(struct mapp_digits *d, char *out, size_t outlen)
{
	unsigned n = d->n;

	if (!outlen)
		return 0;
	if (n >= outlen)
		n = (unsigned)outlen - 1;
	memcpy(out, d->buf, n);
	out[n] = 0;
	/* what did not fit stays for the next take */
	memmove(d->buf, d->buf + n, d->n - n + 1);
	d->n -= n;
	return n;
}

/* ------------------------------------------------------ INFO dtmf-relay */

static bool info_blank(char c)
{
	return c == ' ' || c == '\t';
}

static sv_t info_trim(const char *p, size_t n)
{
	while (n && info_blank(*p)) {
		p++;
		n--;
	}
	while (n && info_blank(p[n - 1]))
		n--;
	return (sv_t){.p = p, .len = n};
}

static bool info_name_is(sv_t name, const char *want)
{
	size_t wl = strlen(want);

	if (name.len != wl)
		return false;
	for (size_t i = 0; i < wl; i++) {
		char c = name.p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != want[i])
			return false;
	}
	return true;
}

static int info_uint(sv_t v, uint32_t max, uint32_t *out)
{
	uint64_t x = 0;

	if (!v.len || v.len > 10)
		return EINVAL;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return EINVAL;
		x = x * 10 + (uint64_t)(v.p[i] - '0');
	}
	if (x > max)
		return EINVAL;
	*out = (uint32_t)x;
	return 0;
}

int mapp_info_parse(sv_t body, struct mapp_info_dtmf *out, const char **why)
{
	const char *p = body.p, *end = body.p + body.len;
	bool have_signal = false, have_dur = false;

	*why = NULL;
	out->digit = 0;
	out->duration_ms = 0;
	if (body.len > MAPP_INFO_MAX_BODY) {
		*why = "body too large";
		return EMSGSIZE;
	}
	if (body.len && memchr(body.p, 0, body.len)) {
		*why = "NUL byte in body";
		return EINVAL;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		const char *eq;
		sv_t line, name, val;

		if (le > p && le[-1] == '\r')
			le--;
		line = info_trim(p, (size_t)(le - p));
		p = eol ? eol + 1 : end;
		if (!line.len)
			continue;
		eq = memchr(line.p, '=', line.len);
		if (!eq) {
			*why = "line without '='";
			return EINVAL;
		}
		name = info_trim(line.p, (size_t)(eq - line.p));
		val = info_trim(eq + 1, (size_t)(line.p + line.len - eq - 1));
		if (info_name_is(name, "signal")) {
			uint32_t code;
			if (have_signal) {
				*why = "Signal twice";
				return EINVAL;
			}
			if (val.len == 1 && mapp_tev_event(val.p[0]) >= 0) {
				out->digit = mapp_tev_digit((uint8_t)mapp_tev_event(val.p[0]));
			} else if (info_uint(val, 11, &code) == 0 && code >= 10) {
				out->digit = code == 10 ? '*' : '#';
			} else {
				*why = "Signal is not a DTMF digit";
				return EINVAL;
			}
			have_signal = true;
		} else if (info_name_is(name, "duration")) {
			if (have_dur) {
				*why = "Duration twice";
				return EINVAL;
			}
			if (info_uint(val, 60000, &out->duration_ms)) {
				*why = "Duration is not a number of ms up to 60000";
				return EINVAL;
			}
			have_dur = true;
		}
	}
	if (!have_signal) {
		*why = "no Signal";
		return EINVAL;
	}
	return 0;
}

/* -------------------------------------------------------- in-band DTMF */

struct mapp_inband {
	dtmf_rx_state_t *rx;
	struct mapp_digits *into;
};

static void inband_digits(void *user, const char *digits, int len)
{
	struct mapp_inband *ib = user;

	for (int i = 0; i < len; i++)
		(void)mapp_digits_push(ib->into, digits[i]); /* overflow is counted there */
}

int mapp_inband_new(struct mapp_digits *into, struct mapp_inband **out)
{
	struct mapp_inband *ib = calloc(1, sizeof(*ib));

	*out = NULL;
	if (!ib)
		return ENOMEM;
	ib->into = into;
	ib->rx = dtmf_rx_init(NULL, inband_digits, ib);
	if (!ib->rx) {
		free(ib);
		return ENOMEM;
	}
	*out = ib;
	return 0;
}

void mapp_inband_free(struct mapp_inband *ib)
{
	if (!ib)
		return;
	dtmf_rx_free(ib->rx);
	free(ib);
}

void mapp_inband_feed(struct mapp_inband *ib, const int16_t *pcm, size_t n)
{
	dtmf_rx(ib->rx, pcm, (int)n);
}
