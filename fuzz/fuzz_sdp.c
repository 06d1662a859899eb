/*
 * fuzz_sdp.c - libFuzzer target for the SDP parser, the rewriter and the
 * multipart body search: every offer and answer of a relayed call is a
 * stranger's text that we parse, rewrite and forward.
 *
 * Input: an SDP body, or "Content-Type: <type>\n\n" followed by a body (the
 * corpus's multipart cases). Whatever parses must rewrite (to IPv4 and
 * IPv6 relay addresses, some sections kept), and the rewritten body must
 * parse again with the same sections, carrying the new ports and addresses
 * (unspecified where the original was on hold), a=rtcp rewritten and no ICE
 * attribute left when stripping was asked.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "media/media.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			__builtin_trap();                                                          \
	} while (0)

static void plan(const struct sdp_session *s, struct sdp_rewrite *rw, unsigned variant)
{
	memset(rw, 0, sizeof(*rw));
	rw->nmedia = s->nmedia;
	rw->strip_ice = variant & 1;
	for (unsigned i = 0; i < s->nmedia; i++) {
		struct sdp_rw_media *r = &rw->media[i];
		bool v6 = ((variant >> 1) + i) & 1;
		char txt[] = "203.0.113.0";
		txt[10] = (char)('1' + i % 9);
		sdp_ip_parse(v6 ? SV("2001:db8::7") : sv_cstr(txt), &r->addr);
		r->port = (uint16_t)(30000 + i * 2);
		r->rtcp_port = (variant & 4) ? 0 : (uint16_t)(31001 + i * 2);
		r->keep = (variant & 8) && i % 3 == 2;
	}
}

static void check_rewritten(const struct sdp_session *a, const struct sdp_rewrite *rw,
			    const struct sdp_session *b)
{
	CHECK(a->nmedia == b->nmedia);
	for (unsigned i = 0; i < a->nmedia; i++) {
		const struct sdp_media *ma = &a->media[i], *mb = &b->media[i];
		const struct sdp_rw_media *r = &rw->media[i];
		const struct sdp_conn *ca = sdp_media_conn(a, ma), *cb = sdp_media_conn(b, mb);
		if (ma->port == 0 || r->keep) {
			CHECK(mb->port == ma->port);
			if (ma->port && ca) {
				CHECK(cb && sv_eq(ca->addr, cb->addr));
			}
			continue;
		}
		CHECK(mb->port == r->port);
		CHECK(cb && cb->ip.family == r->addr.family);
		if (ca && sdp_ip_kind(&ca->ip) == SDP_IP_UNSPECIFIED)
			CHECK(sdp_ip_kind(&cb->ip) == SDP_IP_UNSPECIFIED);
		else
			CHECK(sdp_ip_eq(&cb->ip, &r->addr));
		CHECK(mb->has_rtcp == ma->has_rtcp);
		if (ma->has_rtcp)
			CHECK(mb->rtcp_port == (r->rtcp_port ? r->rtcp_port : r->port + 1));
		CHECK(mb->rtcp_mux == ma->rtcp_mux && mb->nfmt == ma->nfmt);
		CHECK(sv_eq(mb->fmts, ma->fmts) && mb->ptime == ma->ptime);
		CHECK(sdp_media_dir(b, mb) == sdp_media_dir(a, ma));
		CHECK(mb->nrtpmap == ma->nrtpmap && mb->nfmtp == ma->nfmtp);
		if (rw->strip_ice)
			CHECK(mb->ncand == 0 && !mb->ice_ufrag.len && !mb->end_of_candidates);
		else
			CHECK(mb->ncand == ma->ncand);
	}
	if (rw->strip_ice)
		CHECK(!b->ice_lite && !b->ice_ufrag.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sdp_session s, s2;
	sv_t in = sv_make((const char *)data, size), ct = SV("application/sdp"), sdp, sdp2;
	struct sdp_error err;
	struct sdp_rewrite rw;
	unsigned variant = size ? data[size - 1] : 0;

	if (size > 14 && memcmp(data, "Content-Type: ", 14) == 0) {
		const char *end = memmem(data, size, "\n\n", 2);
		if (!end)
			return 0;
		ct = sv_make((const char *)data + 14, (size_t)(end - (const char *)data) - 14);
		in = sv_make(end + 2, size - (size_t)(end + 2 - (const char *)data));
	}
	if (sdp_body_find(ct, in, &sdp, &err))
		return 0;
	CHECK(err.why == NULL);
	if (sdp_parse(sdp, &s, &err)) {
		CHECK(err.why != NULL);
		return 0;
	}
	for (unsigned i = 0; i < s.nmedia; i++) {
		struct sdp_rtpmap r;
		sv_t params;
		(void)sdp_rtpmap_find(&s.media[i], 0, &r);
		(void)sdp_rtpmap_find(&s.media[i], 96, &r);
		(void)sdp_fmtp_find(&s.media[i], SV("101"), &params);
		(void)sdp_media_held(&s, &s.media[i]);
	}
	plan(&s, &rw, variant);
	struct buf out;
	buf_init(&out, 0);
	int rc = sdp_body_rewrite(in, &s, &rw, &out, &err);
	if (rc) {
		/* only a body grown past the cap may fail */
		CHECK(rc == EMSGSIZE);
		buf_free(&out);
		return 0;
	}
	CHECK(sdp_body_find(ct, buf_sv(&out), &sdp2, &err) == 0);
	rc = sdp_parse(sdp2, &s2, &err);
	if (rc)
		CHECK(rc == EMSGSIZE);
	else
		check_rewritten(&s, &rw, &s2);
	buf_free(&out);
	return 0;
}
