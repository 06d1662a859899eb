/*
 * check.c - what must hold before a request or response is acted on.
 *
 * sip_parse() only frames a message; these checks decide whether it is well
 * enough formed to route (RFC 3261 8.2, 16.3) and pick the answer for one
 * that is not: 400 with a precise reason, 505 for another SIP version, 416 for
 * a scheme we cannot serve. They parse only the headers every request needs.
 */
#include "sip/internal.h"

static const char *const single_names[] = {
    [SIP_H_FROM] = "From",
    [SIP_H_TO] = "To",
    [SIP_H_CALL_ID] = "Call-ID",
    [SIP_H_CSEQ] = "CSeq",
    [SIP_H_MAX_FORWARDS] = "Max-Forwards",
    [SIP_H_CONTENT_LENGTH] = "Content-Length",
    [SIP_H_CONTENT_TYPE] = "Content-Type",
    [SIP_H_EXPIRES] = "Expires",
    [SIP_H_MIN_EXPIRES] = "Min-Expires",
};

static unsigned fail(struct sip_msg *m, unsigned status, const char *why)
{
	m->error = why;
	return status;
}

static unsigned check_common(struct sip_msg *m)
{
	static const enum sip_hdr_id required[] = {SIP_H_VIA, SIP_H_FROM, SIP_H_TO, SIP_H_CALL_ID,
						   SIP_H_CSEQ};
	static const char *const missing[] = {"Missing Via", "Missing From", "Missing To",
					      "Missing Call-ID", "Missing CSeq"};

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		if (!m->first[required[i]])
			return fail(m, 400, missing[i]);
	}
	if (m->dup_single) {
		for (int id = SIP_H_FIRST_SINGLE; id <= SIP_H_LAST_SINGLE; id++) {
			if (m->dup_single & (1u << id)) {
				m->error = single_names[id];
				return fail(m, 400, "Multiple values in a single-value header");
			}
		}
	}
	if (!sip_msg_via1(m))
		return fail(m, 400, "Malformed Via");
	if (!sip_msg_from(m))
		return fail(m, 400, "Malformed From");
	if (!sip_msg_to(m))
		return fail(m, 400, "Malformed To");
	if (!sip_msg_cseq(m))
		return fail(m, 400, "Malformed CSeq");
	if (sip_msg_callid(m).len == 0)
		return fail(m, 400, "Empty Call-ID");
	return 0;
}

unsigned sip_request_check(struct sip_msg *m)
{
	const struct sip_uri *ruri;
	unsigned st;

	if (!m->request)
		return fail(m, 400, "Not a request");
	if (!sip_version_is_2_0(m->version))
		return fail(m, 505, "Version Not Supported");
	st = check_common(m);
	if (st)
		return st;
	if (!sv_eq(m->cseq.method_name, m->method_name))
		return fail(m, 400, "CSeq method does not match the Request-Line");
	if (sip_msg_max_forwards(m) == -2)
		return fail(m, 400, "Malformed Max-Forwards");
	ruri = sip_msg_ruri(m);
	if (!ruri)
		return fail(m, 400, "Malformed Request-URI");
	if (ruri->kind == SIP_SCHEME_OTHER)
		return fail(m, 416, "Unsupported URI Scheme");
	if (ruri->headers.len)
		return fail(m, 400, "Headers in the Request-URI");
	if ((ruri->kind == SIP_SCHEME_SIP || ruri->kind == SIP_SCHEME_SIPS) && ruri->host.len == 0)
		return fail(m, 400, "Request-URI without a host");
	return 0;
}

int sip_response_check(struct sip_msg *m)
{
	if (m->request || m->status < 100 || m->status > 699)
		return -1;
	return check_common(m) ? -1 : 0;
}
