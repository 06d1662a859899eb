/*
 * test_sdp.c - the SDP parser and rewriter (src/media/sdp.c): what real
 * phones send parses with the fields the relay needs, malformed bodies get
 * a precise error and line (never a crash), caps are errors, and a rewrite
 * changes exactly the c= addresses, m= ports, a=rtcp and (when asked) ICE
 * lines, keeping the rest byte for byte, including hold, rejected streams,
 * IPv6 and multipart bodies.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/media.h"

static const char baresip[] = "v=0\r\n"
			      "o=- 1452361409 2816812716 IN IP4 192.168.1.34\r\n"
			      "s=-\r\n"
			      "c=IN IP4 192.168.1.34\r\n"
			      "t=0 0\r\n"
			      "m=audio 10330 RTP/AVP 96 0 8 101\r\n"
			      "b=AS:93\r\n"
			      "a=rtpmap:96 opus/48000/2\r\n"
			      "a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
			      "a=rtpmap:0 PCMU/8000\r\n"
			      "a=rtpmap:8 PCMA/8000\r\n"
			      "a=rtpmap:101 telephone-event/8000\r\n"
			      "a=fmtp:101 0-15\r\n"
			      "a=sendrecv\r\n"
			      "a=ptime:20\r\n";

static struct sdp_session sess; /* too big for cmocka's default stack use in every test */

static void ip(const char *text, struct sdp_ip *out)
{
	assert_int_equal(sdp_ip_parse(sv_cstr(text), out), 0);
}

static void plan1(struct sdp_rewrite *rw, unsigned n, const char *addr, uint16_t port)
{
	memset(rw, 0, sizeof(*rw));
	rw->nmedia = n;
	for (unsigned i = 0; i < n; i++) {
		ip(addr, &rw->media[i].addr);
		rw->media[i].port = (uint16_t)(port + 2 * i);
	}
}

static char *rewrite(const char *body, const struct sdp_rewrite *rw)
{
	struct sdp_error err;
	struct buf out;

	assert_int_equal(sdp_parse(sv_cstr(body), &sess, &err), 0);
	buf_init(&out, 0);
	assert_int_equal(sdp_rewrite(&sess, rw, &out, &err), 0);
	return (char *)buf_cstr(&out);
}

static void test_parse_baresip(void **state)
{
	struct sdp_error err;
	struct sdp_rtpmap r;
	sv_t params;

	(void)state;
	assert_int_equal(sdp_parse(sv_cstr(baresip), &sess, &err), 0);
	assert_null(err.why);
	assert_int_equal(sess.nmedia, 1);
	const struct sdp_media *m = &sess.media[0];
	assert_true(sv_eq(m->media, SV("audio")));
	assert_int_equal(m->port, 10330);
	assert_true(sv_eq(m->proto, SV("RTP/AVP")));
	assert_true(m->rtp);
	assert_int_equal(m->nfmt, 4);
	assert_int_equal(m->ptime, 20);
	assert_int_equal(m->nrtpmap, 4);
	assert_int_equal(m->nbw, 1);
	assert_int_equal(sdp_media_dir(&sess, m), SDP_SENDRECV);
	assert_false(sdp_media_held(&sess, m));
	const struct sdp_conn *c = sdp_media_conn(&sess, m);
	assert_non_null(c);
	assert_int_equal(c->ip.family, AF_INET);
	assert_int_equal(sdp_ip_kind(&c->ip), SDP_IP_PRIVATE);
	assert_int_equal(sdp_rtpmap_find(m, 96, &r), 0);
	assert_true(sv_eq(r.encoding, SV("opus")));
	assert_int_equal(r.clock, 48000);
	assert_true(sv_eq(r.channels, SV("2")));
	assert_int_equal(sdp_rtpmap_find(m, 0, &r), 0);
	assert_int_equal(r.clock, 8000);
	/* a static payload type with no rtpmap still has its clock */
	assert_int_equal(sdp_rtpmap_find(m, 18, &r), 0);
	assert_true(sv_eq(r.encoding, SV("G729")));
	assert_int_equal(sdp_rtpmap_find(m, 97, &r), ENOENT);
	assert_int_equal(sdp_fmtp_find(m, SV("101"), &params), 0);
	assert_true(sv_eq(params, SV("0-15")));
}

struct bad {
	const char *body;
	int rc;
	unsigned line;
	const char *why_part;
};

#define HDR "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"

static void test_parse_errors(void **state)
{
	static const struct bad cases[] = {
	    {"", EINVAL, 0, "empty"},
	    {"v=1\r\n", EINVAL, 1, "v=0"},
	    {"v=0\r\ns=-\r\n", EINVAL, 0, "no o="},
	    {"v=0\r\no=- 1 1 IN IP4\r\ns=-\r\n", EINVAL, 2, "six fields"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n", EINVAL, 5, "bad port"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 128\r\n", EINVAL, 5, "payload type"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP\r\n", EINVAL, 5, "m="},
	    {HDR "c=IN IP5 192.0.2.1\r\n", EINVAL, 4, "address type"},
	    {HDR "c=IN IP4 ::1\r\n", EINVAL, 4, "does not match"},
	    {HDR "c=IN IP4 a_b\r\n", EINVAL, 4, "neither"},
	    {HDR "c=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.1\r\n", EINVAL, 5, "two c="},
	    {HDR "m=audio 4000 RTP/AVP 0\r\n", EINVAL, 0, "without a c="},
	    {HDR "c=IN IP4 192.0.2.1\r\n\r\nt=0 0\r\n", EINVAL, 6, "empty line"},
	    {HDR "c=IN IP4 192.0.2.1\r\nX=1\r\n", EINVAL, 5, "<letter>="},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:x\r\n", EINVAL, 6,
	     "a=rtcp"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=inactive\r\n",
	     EINVAL, 7, "two direction"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n", EINVAL, 6,
	     "encoding/clock"},
	    {HDR
	     "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=candidate:1 1 udp 1 1.2.3.4\r\n",
	     EINVAL, 6, "candidate"},
	    {HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\na=ptime:abc\r\n", EINVAL, 6,
	     "ptime"},
	    {HDR "b=AS\r\n", EINVAL, 4, "b="},
	};
	struct sdp_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = sdp_parse(sv_cstr(cases[i].body), &sess, &err);
		if (rc != cases[i].rc || err.line != cases[i].line || !err.why ||
		    !strstr(err.why, cases[i].why_part))
			fail_msg("case %zu: rc %d line %u why '%s'", i, rc, err.line,
				 err.why ? err.why : "(null)");
	}
	/* a NUL byte */
	static const char nul[] = HDR "c=IN IP4 192.0.2.1\r\ni=a\0b\r\n";
	assert_int_equal(sdp_parse(sv_make(nul, sizeof(nul) - 1), &sess, &err), EINVAL);
	assert_non_null(strstr(err.why, "NUL"));
}

static void test_parse_caps(void **state)
{
	struct sdp_error err;
	struct buf b;

	(void)state;
	/* SDP_MAX_MEDIA sections parse, one more is E2BIG */
	buf_init(&b, 0);
	buf_append_str(&b, HDR "c=IN IP4 192.0.2.1\r\n");
	for (unsigned i = 0; i < SDP_MAX_MEDIA; i++)
		buf_printf(&b, "m=audio %u RTP/AVP 0\r\n", 4000 + 2 * i);
	assert_int_equal(sdp_parse(buf_sv(&b), &sess, &err), 0);
	buf_append_str(&b, "m=audio 5000 RTP/AVP 0\r\n");
	assert_int_equal(sdp_parse(buf_sv(&b), &sess, &err), E2BIG);
	assert_int_equal(err.line, 5 + SDP_MAX_MEDIA);
	buf_free(&b);

	/* formats */
	buf_init(&b, 0);
	buf_append_str(&b, HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP");
	for (unsigned i = 0; i <= SDP_MAX_FORMATS; i++)
		buf_printf(&b, " %u", i);
	buf_append_str(&b, "\r\n");
	assert_int_equal(sdp_parse(buf_sv(&b), &sess, &err), E2BIG);
	buf_free(&b);

	/* candidates */
	buf_init(&b, 0);
	buf_append_str(&b, HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n");
	for (unsigned i = 0; i <= SDP_MAX_CANDIDATES; i++)
		buf_printf(&b, "a=candidate:%u 1 udp 1 192.0.2.9 %u typ host\r\n", i, 1000 + i);
	assert_int_equal(sdp_parse(buf_sv(&b), &sess, &err), E2BIG);
	assert_non_null(strstr(err.why, "candidates"));
	buf_free(&b);

	/* attributes */
	buf_init(&b, 0);
	buf_append_str(&b, HDR "c=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n");
	for (unsigned i = 0; i <= SDP_MAX_ATTRS; i++)
		buf_printf(&b, "a=x-%u\r\n", i);
	assert_int_equal(sdp_parse(buf_sv(&b), &sess, &err), E2BIG);
	buf_free(&b);

	/* body size */
	char *big = malloc(SDP_MAX_BODY + 2);
	memset(big, 'a', SDP_MAX_BODY + 1);
	big[SDP_MAX_BODY + 1] = 0;
	assert_int_equal(sdp_parse(sv_make(big, SDP_MAX_BODY + 1), &sess, &err), EMSGSIZE);
	free(big);
}

static void test_rewrite_keeps_the_rest(void **state)
{
	struct sdp_rewrite rw;

	(void)state;
	plan1(&rw, 1, "203.0.113.5", 40000);
	char *out = rewrite(baresip, &rw);
	/* only c= and the m= port change */
	const char *want = "v=0\r\n"
			   "o=- 1452361409 2816812716 IN IP4 192.168.1.34\r\n"
			   "s=-\r\n"
			   "c=IN IP4 203.0.113.5\r\n"
			   "t=0 0\r\n"
			   "m=audio 40000 RTP/AVP 96 0 8 101\r\n"
			   "b=AS:93\r\n"
			   "a=rtpmap:96 opus/48000/2\r\n"
			   "a=fmtp:96 stereo=1;sprop-stereo=1\r\n"
			   "a=rtpmap:0 PCMU/8000\r\n"
			   "a=rtpmap:8 PCMA/8000\r\n"
			   "a=rtpmap:101 telephone-event/8000\r\n"
			   "a=fmtp:101 0-15\r\n"
			   "a=sendrecv\r\n"
			   "a=ptime:20\r\n";
	assert_string_equal(out, want);
	free(out);
}

static void test_rewrite_session_c_split(void **state)
{
	/* two sections on one session c=; the relay gives them different addresses */
	static const char body[] = HDR "c=IN IP4 10.0.0.23\r\n"
				       "t=0 0\r\n"
				       "m=audio 7078 RTP/AVP 0\n" /* LF-only line kept as it is */
				       "i=voice\r\n"
				       "a=rtcp:7079\r\n"
				       "m=video 9078 RTP/AVP 96\r\n"
				       "a=rtpmap:96 VP8/90000";
	struct sdp_rewrite rw;

	(void)state;
	plan1(&rw, 2, "203.0.113.5", 40000);
	ip("2001:db8::5", &rw.media[1].addr);
	rw.media[0].rtcp_port = 40011;
	char *out = rewrite(body, &rw);
	assert_string_equal(out, HDR "c=IN IP4 203.0.113.5\r\n"
				     "t=0 0\r\n"
				     "m=audio 40000 RTP/AVP 0\n"
				     "i=voice\r\n"
				     "a=rtcp:40011\r\n"
				     "m=video 40002 RTP/AVP 96\r\n"
				     "c=IN IP6 2001:db8::5\r\n"
				     "a=rtpmap:96 VP8/90000");
	/* and it parses back with the new addresses */
	struct sdp_error err;
	assert_int_equal(sdp_parse(sv_cstr(out), &sess, &err), 0);
	assert_int_equal(sdp_media_conn(&sess, &sess.media[1])->ip.family, AF_INET6);
	assert_int_equal(sess.media[0].rtcp_port, 40011);
	free(out);
}

static void test_rewrite_hold_rejected_ipv6(void **state)
{
	static const char hold[] = HDR "c=IN IP4 0.0.0.0\r\n"
				       "t=0 0\r\n"
				       "m=audio 49172 RTP/AVP 0\r\n"
				       "a=sendonly\r\n"
				       "m=video 0 RTP/AVP 31\r\n"
				       "c=IN IP4 10.9.9.9\r\n"
				       "m=audio 5004 RTP/AVP 8\r\n"
				       "c=IN IP6 2001:db8::10\r\n"
				       "a=rtcp:5009 IN IP6 2001:db8::11\r\n";
	struct sdp_rewrite rw;

	(void)state;
	plan1(&rw, 3, "198.51.100.7", 40000);
	char *out = rewrite(hold, &rw);
	/* hold stays 0.0.0.0 and sendonly; the rejected video is untouched; IPv6 becomes IPv4 */
	assert_string_equal(out, HDR "c=IN IP4 0.0.0.0\r\n"
				     "t=0 0\r\n"
				     "m=audio 40000 RTP/AVP 0\r\n"
				     "a=sendonly\r\n"
				     "m=video 0 RTP/AVP 31\r\n"
				     "c=IN IP4 10.9.9.9\r\n"
				     "m=audio 40004 RTP/AVP 8\r\n"
				     "c=IN IP4 198.51.100.7\r\n"
				     "a=rtcp:40005 IN IP4 198.51.100.7\r\n");
	struct sdp_error err;
	assert_int_equal(sdp_parse(sv_cstr(out), &sess, &err), 0);
	assert_true(sdp_media_held(&sess, &sess.media[0]));
	free(out);
}

static void test_rewrite_strips_ice(void **state)
{
	static const char webrtc[] =
	    "v=0\r\n"
	    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
	    "s=-\r\n"
	    "t=0 0\r\n"
	    "a=ice-lite\r\n"
	    "m=audio 54609 UDP/TLS/RTP/SAVPF 111 0\r\n"
	    "c=IN IP4 203.0.113.77\r\n"
	    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
	    "a=candidate:2999745851 1 udp 2122260223 192.168.56.1 54609 typ host generation 0\r\n"
	    "a=candidate:1606961068 1 udp 1686052607 203.0.113.77 54609 typ srflx raddr "
	    "192.168.56.1 rport 54609\r\n"
	    "a=ice-ufrag:4ZcD\r\n"
	    "a=ice-pwd:2/1muCWoOi3uLifh0NuRHlM5\r\n"
	    "a=ice-options:trickle\r\n"
	    "a=mid:0\r\n"
	    "a=sendrecv\r\n"
	    "a=rtcp-mux\r\n"
	    "a=rtpmap:111 opus/48000/2\r\n"
	    "a=end-of-candidates\r\n";
	struct sdp_rewrite rw;
	struct sdp_error err;

	(void)state;
	assert_int_equal(sdp_parse(sv_cstr(webrtc), &sess, &err), 0);
	assert_int_equal(sess.media[0].ncand, 2);
	assert_true(sess.media[0].rtcp_mux && sess.media[0].end_of_candidates && sess.ice_lite);
	assert_true(sv_eq(sess.media[0].ice_ufrag, SV("4ZcD")));
	plan1(&rw, 1, "198.51.100.7", 40000);
	rw.strip_ice = true;
	char *out = rewrite(webrtc, &rw);
	/* the 0.0.0.0 of a=rtcp is kept unspecified: it says "no RTCP address" */
	assert_string_equal(out, "v=0\r\n"
				 "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
				 "s=-\r\n"
				 "t=0 0\r\n"
				 "m=audio 40000 UDP/TLS/RTP/SAVPF 111 0\r\n"
				 "c=IN IP4 198.51.100.7\r\n"
				 "a=rtcp:40001 IN IP4 0.0.0.0\r\n"
				 "a=mid:0\r\n"
				 "a=sendrecv\r\n"
				 "a=rtcp-mux\r\n"
				 "a=rtpmap:111 opus/48000/2\r\n");
	free(out);
}

static void test_rewrite_plan_mismatch(void **state)
{
	struct sdp_rewrite rw;
	struct sdp_error err;
	struct buf out;

	(void)state;
	assert_int_equal(sdp_parse(sv_cstr(baresip), &sess, &err), 0);
	plan1(&rw, 2, "198.51.100.7", 40000);
	buf_init(&out, 0);
	assert_int_equal(sdp_rewrite(&sess, &rw, &out, &err), EINVAL);
	plan1(&rw, 1, "198.51.100.7", 40000);
	rw.media[0].addr.family = 0;
	assert_int_equal(sdp_rewrite(&sess, &rw, &out, &err), EINVAL);
	/* an output buffer too small is an error, never a cut body */
	char small[64];
	struct buf fixed;
	buf_init_fixed(&fixed, small, sizeof(small));
	plan1(&rw, 1, "198.51.100.7", 40000);
	assert_int_equal(sdp_rewrite(&sess, &rw, &fixed, &err), EMSGSIZE);
	buf_free(&out);
}

static const char mp_body[] = "--unique-boundary-1\r\n"
			      "Content-Type: application/sdp\r\n"
			      "\r\n"
			      "v=0\r\n"
			      "o=Q931-SIP 1 1 IN IP4 192.0.2.2\r\n"
			      "s=-\r\n"
			      "c=IN IP4 192.0.2.2\r\n"
			      "t=0 0\r\n"
			      "m=audio 3456 RTP/AVP 0\r\n"
			      "\r\n"
			      "--unique-boundary-1\r\n"
			      "Content-Type: application/ISUP;version=nxv3\r\n"
			      "\r\n"
			      "01 00 49 00 00 03\r\n"
			      "--unique-boundary-1--\r\n";

static void test_multipart(void **state)
{
	sv_t ct = SV("multipart/mixed; boundary=\"unique-boundary-1\""), sdp;
	struct sdp_rewrite rw;
	struct sdp_error err;
	struct buf out;

	(void)state;
	assert_int_equal(sdp_body_find(ct, sv_cstr(mp_body), &sdp, &err), 0);
	assert_true(sv_istarts(sdp, SV("v=0")));
	assert_int_equal(sdp_parse(sdp, &sess, &err), 0);
	assert_int_equal(sess.media[0].port, 3456);
	plan1(&rw, 1, "198.51.100.7", 40000);
	buf_init(&out, 0);
	assert_int_equal(sdp_body_rewrite(sv_cstr(mp_body), &sess, &rw, &out, &err), 0);
	assert_string_equal(buf_cstr(&out), "--unique-boundary-1\r\n"
					    "Content-Type: application/sdp\r\n"
					    "\r\n"
					    "v=0\r\n"
					    "o=Q931-SIP 1 1 IN IP4 192.0.2.2\r\n"
					    "s=-\r\n"
					    "c=IN IP4 198.51.100.7\r\n"
					    "t=0 0\r\n"
					    "m=audio 40000 RTP/AVP 0\r\n"
					    "\r\n"
					    "--unique-boundary-1\r\n"
					    "Content-Type: application/ISUP;version=nxv3\r\n"
					    "\r\n"
					    "01 00 49 00 00 03\r\n"
					    "--unique-boundary-1--\r\n");
	buf_free(&out);

	/* plain SDP, no SDP, broken multipart, an SDP part we would have to re-frame */
	assert_int_equal(sdp_body_find(SV("Application/SDP"), sv_cstr(baresip), &sdp, &err), 0);
	assert_int_equal(sdp_body_find(SV("text/plain"), sv_cstr("hi"), &sdp, &err), ENOENT);
	assert_int_equal(sdp_body_find(SV("multipart/mixed"), sv_cstr(mp_body), &sdp, &err),
			 EINVAL);
	assert_non_null(strstr(err.why, "boundary"));
	assert_int_equal(
	    sdp_body_find(SV("multipart/mixed;boundary=zzz"), sv_cstr(mp_body), &sdp, &err),
	    EINVAL);
	static const char with_len[] = "--b\r\nContent-Type: application/sdp\r\n"
				       "Content-Length: 5\r\n\r\nv=0\r\n\r\n--b--\r\n";
	assert_int_equal(
	    sdp_body_find(SV("multipart/mixed;boundary=b"), sv_cstr(with_len), &sdp, &err),
	    ENOTSUP);
	static const char nested[] = "--a\r\nContent-Type: multipart/alternative;boundary=b\r\n\r\n"
				     "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n"
				     "\r\n--b--\r\n\r\n--a--\r\n";
	assert_int_equal(
	    sdp_body_find(SV("multipart/mixed;boundary=a"), sv_cstr(nested), &sdp, &err), 0);
	assert_true(sv_eq(sdp, SV("v=0\r\n")));
}

static void test_ip_kinds(void **state)
{
	static const struct {
		const char *ip;
		enum sdp_ip_kind kind;
	} cases[] = {
	    {"8.8.8.8", SDP_IP_PUBLIC},
	    {"0.0.0.0", SDP_IP_UNSPECIFIED},
	    {"10.1.2.3", SDP_IP_PRIVATE},
	    {"172.16.0.1", SDP_IP_PRIVATE},
	    {"172.31.255.255", SDP_IP_PRIVATE},
	    {"172.32.0.1", SDP_IP_PUBLIC},
	    {"192.168.1.1", SDP_IP_PRIVATE},
	    {"100.64.0.1", SDP_IP_SHARED},
	    {"100.127.255.254", SDP_IP_SHARED},
	    {"100.128.0.1", SDP_IP_PUBLIC},
	    {"127.0.0.1", SDP_IP_LOOPBACK},
	    {"169.254.10.1", SDP_IP_LINK_LOCAL},
	    {"224.0.0.1", SDP_IP_MULTICAST},
	    {"255.255.255.255", SDP_IP_RESERVED},
	    {"203.0.113.9", SDP_IP_RESERVED},
	    {"::", SDP_IP_UNSPECIFIED},
	    {"::1", SDP_IP_LOOPBACK},
	    {"fe80::1", SDP_IP_LINK_LOCAL},
	    {"fd12:3456::1", SDP_IP_ULA},
	    {"fc00::1", SDP_IP_ULA},
	    {"ff02::1", SDP_IP_MULTICAST},
	    {"2a00:1450::1", SDP_IP_PUBLIC},
	    {"::ffff:192.168.0.1", SDP_IP_PRIVATE},
	};
	struct sdp_ip a;
	char txt[SDP_IP_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ip(cases[i].ip, &a);
		if (sdp_ip_kind(&a) != cases[i].kind)
			fail_msg("%s: kind %d", cases[i].ip, sdp_ip_kind(&a));
		assert_int_equal(sdp_ip_is_private(&a), cases[i].kind != SDP_IP_PUBLIC);
	}
	assert_int_equal(sdp_ip_parse(SV("host.example.com"), &a), EINVAL);
	assert_int_equal(sdp_ip_parse(SV("1.2.3.4.5"), &a), EINVAL);
	ip("2001:db8::1", &a);
	sdp_ip_format(&a, txt);
	assert_string_equal(txt, "2001:db8::1");
	/* a host name in c= parses (RFC 4566) and counts as a name */
	struct sdp_error err;
	assert_int_equal(sdp_parse(sv_cstr(HDR "c=IN IP4 media.example.com\r\n"), &sess, &err), 0);
	assert_int_equal(sdp_ip_kind(&sess.conn.ip), SDP_IP_NAME);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_baresip),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_parse_caps),
	    cmocka_unit_test(test_rewrite_keeps_the_rest),
	    cmocka_unit_test(test_rewrite_session_c_split),
	    cmocka_unit_test(test_rewrite_hold_rejected_ipv6),
	    cmocka_unit_test(test_rewrite_strips_ice),
	    cmocka_unit_test(test_rewrite_plan_mismatch),
	    cmocka_unit_test(test_multipart),
	    cmocka_unit_test(test_ip_kinds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
