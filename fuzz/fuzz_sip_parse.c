/*
 * fuzz_sip_parse.c - libFuzzer target for the SIP parser: the datagram and
 * the stream framing, every lazy header accessor, the request/response
 * checks, URI and Contact parsing, the RFC 7339 oc parameters of every Via,
 * and building a reply (with the oc parameters replaced), so that any input
 * that reaches the server's parser is exercised the way the server uses it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "sip/sip.h"

static void exercise(struct sip_msg *m)
{
	struct sip_hdr_iter it;
	struct sip_reply rep = {
	    .status = 400, .to_tag = SV("fuzz"), .via_params = SV(";received=1.2.3.4")};
	struct buf out;
	sv_t elem;
	struct sip_via_oc oc1;
	sv_t drop[SIP_OC_NSPANS];
	size_t ndrop = 0;

	sip_msg_via1(m);
	sip_msg_from(m);
	sip_msg_to(m);
	sip_msg_cseq(m);
	sip_msg_ruri(m);
	sip_msg_max_forwards(m);
	sip_msg_expires(m);
	if (m->request)
		sip_request_check(m);
	else
		sip_response_check(m);
	for (enum sip_hdr_id id = SIP_H_CONTACT; id <= SIP_H_RECORD_ROUTE; id++) {
		sip_hdr_iter_init(&it, m, id);
		while (sip_hdr_iter_next(&it, &elem)) {
			struct sip_naddr na;
			struct sip_uri u;
			if (sip_naddr_parse(elem, &na, NULL) == 0 && sip_uri_parse(na.uri, &u) == 0)
				sip_uri_equal(&u, &u);
		}
	}
	sip_hdr_iter_init(&it, m, SIP_H_VIA);
	while (sip_hdr_iter_next(&it, &elem)) {
		struct sip_via v;
		struct sip_via_oc oc;
		if (sip_via_parse(elem, &v, NULL) == 0 && sip_via_oc_parse(&v, &oc) == 0) {
			/* the quick scan never says no to an oc the parser finds */
			if (oc.present &&
			    !(sip_oc_maybe(v.params, false) && sip_oc_maybe(elem, false)))
				abort();
			if (oc.has_value && !sip_oc_maybe(v.params, true))
				abort();
		}
	}
	if (m->request) {
		buf_init(&out, 0);
		sip_build_reply(&out, m, &rep);
		buf_free(&out);
		/* the reply to a client that declared overload control support */
		if (sip_msg_via1(m) && sip_via_oc_parse(sip_msg_via1(m), &oc1) == 0 &&
		    oc1.present) {
			for (unsigned i = 0; i < SIP_OC_NSPANS; i++) {
				if (oc1.span[i].len)
					drop[ndrop++] = oc1.span[i];
			}
			rep.via_drop = drop;
			rep.nvia_drop = ndrop;
			rep.via_params = SV(";oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1.5");
			rep.via_drop_rport = true;
			buf_init(&out, 0);
			sip_build_reply(&out, m, &rep);
			buf_free(&out);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sip_msg *m = calloc(1, sizeof(*m));
	char *copy = malloc(size ? size : 1);
	size_t off = 0;

	if (!m || !copy)
		goto out;
	memcpy(copy, data, size);
	if (sip_parse(m, copy, size, 0) == 0)
		exercise(m);
	/* the same bytes as a TCP stream: frame message after message */
	while (off < size) {
		int err = sip_parse(m, copy + off, size - off, SIP_PARSE_STREAM);
		size_t used;
		if (err)
			break;
		exercise(m);
		used = (size_t)(m->buf - (copy + off)) + m->len;
		if (used == 0)
			break;
		off += used;
	}
out:
	if (m)
		sip_msg_release(m);
	free(m);
	free(copy);
	return 0;
}
