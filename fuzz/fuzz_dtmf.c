/*
 * fuzz_dtmf.c - libFuzzer target for the DTMF parsers of the media
 * applications: RFC 4733 telephone-event payloads (fed through the digit
 * collector, as a stream of packets from a phone) and SIP INFO
 * application/dtmf-relay bodies. Both are a stranger's bytes.
 *
 * Input: the first byte chooses. Even: a stream of records
 * "ts(4 bytes) len(1 byte) payload(len)" for mapp_tev_parse and
 * mapp_digits_rtp; whatever parses must build back to the same block, and
 * the collector must only ever hold DTMF digits, within its limit. Odd: the
 * rest is an INFO body for mapp_info_parse; a success is a DTMF digit with
 * a duration of at most 60 s, a failure says why.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "media/apps.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void tev_stream(const uint8_t *p, size_t n)
{
	struct mapp_digits d;
	char out[MAPP_DIGITS_MAX + 1];

	mapp_digits_init(&d);
	while (n >= 5) {
		uint32_t ts =
		    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		size_t len = p[4];
		struct mapp_tev ev, again;
		uint8_t b[4];
		char c;
		int rc;

		p += 5;
		n -= 5;
		if (len > n)
			len = n;
		rc = mapp_tev_parse(p, len, &ev);
		CHECK(rc == 0 || rc == EINVAL);
		if (rc == 0) {
			CHECK(len && len % 4 == 0);
			CHECK(ev.volume <= 63);
			mapp_tev_build(&ev, b);
			CHECK(mapp_tev_parse(b, 4, &again) == 0);
			CHECK(again.event == ev.event && again.end == ev.end &&
			      again.volume == ev.volume && again.duration == ev.duration);
			CHECK(b[0] == p[len - 4] && b[2] == p[len - 2] && b[3] == p[len - 1]);
			rc = mapp_digits_rtp(&d, ts, &ev, &c);
			CHECK(rc == 0 || rc == EALREADY || rc == ENOTSUP || rc == ENOBUFS);
			if (rc == 0)
				CHECK(mapp_tev_event(c) == ev.event);
			CHECK(d.n <= MAPP_DIGITS_MAX);
			if (d.n == MAPP_DIGITS_MAX)
				mapp_digits_take(&d, out, sizeof(out));
		}
		p += len;
		n -= len;
	}
	mapp_digits_take(&d, out, sizeof(out));
	for (size_t i = 0; out[i]; i++)
		CHECK(mapp_tev_event(out[i]) >= 0);
}

static void info_body(const uint8_t *p, size_t n)
{
	struct mapp_info_dtmf o;
	const char *why;
	int rc = mapp_info_parse((sv_t){.p = (const char *)p, .len = n}, &o, &why);

	CHECK(rc == 0 || rc == EINVAL || rc == EMSGSIZE);
	if (rc == 0) {
		CHECK(mapp_tev_event(o.digit) >= 0);
		CHECK(o.duration_ms <= 60000);
	} else {
		CHECK(why != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		info_body(data + 1, size - 1);
	else
		tev_stream(data + 1, size - 1);
	return 0;
}
