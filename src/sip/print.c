/*
 * print.c - building messages: responses generated here, and forwarded
 * messages made by editing the received bytes.
 *
 * A proxy changes little in what it forwards (a Via on top, Max-Forwards,
 * a Route popped, a Record-Route added), so instead of printing a message
 * from a model it copies the received buffer once and splices the edits in
 * on the way, as Kamailio does with its "lumps".
 */
#include "sip/sip.h"

#include <errno.h>

int sip_apply_edits(struct buf *out, const struct sip_msg *m, const struct sip_edit *edits,
		    size_t n)
{
	const char *pos = m->buf, *end = m->buf + m->len;

	for (size_t i = 0; i < n; i++) {
		const struct sip_edit *e = &edits[i];
		if (e->at < pos || e->at > end || e->del > (size_t)(end - e->at))
			return EINVAL; /* overlapping, unsorted or outside m: never skipped */
		buf_append(out, pos, (size_t)(e->at - pos));
		buf_append_sv(out, e->ins);
		pos = e->at + e->del;
	}
	buf_append(out, pos, (size_t)(end - pos));
	return out->err;
}

int sip_edit_add(struct sip_edit_list *l, const char *at, size_t del, sv_t ins)
{
	if (l->n == SIP_MAX_EDITS) {
		if (!l->err)
			l->err = E2BIG;
		return E2BIG;
	}
	l->e[l->n++] = (struct sip_edit){at, del, ins};
	return 0;
}

int sip_edits_apply(struct buf *out, const struct sip_msg *m, struct sip_edit_list *l)
{
	buf_reset(out);
	if (l->err)
		return l->err;
	/* insertion sort: few edits, and it is stable (equal positions keep their order) */
	for (unsigned i = 1; i < l->n; i++) {
		struct sip_edit e = l->e[i];
		unsigned j = i;
		while (j > 0 && l->e[j - 1].at > e.at) {
			l->e[j] = l->e[j - 1];
			j--;
		}
		l->e[j] = e;
	}
	return sip_apply_edits(out, m, l->e, l->n);
}

static void copy_hdr_lines(struct buf *out, const struct sip_msg *m, enum sip_hdr_id id)
{
	for (struct sip_hdr *h = sip_msg_hdr(m, id); h; h = sip_msg_hdr_next(m, h)) {
		buf_append_sv(out, h->raw);
		/* a raw line may end in a bare LF: answer with CRLF */
		if (out->len >= 2 && out->p[out->len - 1] == '\n' && out->p[out->len - 2] != '\r') {
			out->len--;
			buf_append(out, "\r\n", 2);
		}
	}
}

/* Copies a header line inserting ins right after position at (inside the line). */
static void copy_line_insert(struct buf *out, const struct sip_hdr *h, const char *at, sv_t ins)
{
	buf_append(out, h->raw.p, (size_t)(at - h->raw.p));
	buf_append_sv(out, ins);
	buf_append(out, at, (size_t)(h->raw.p + h->raw.len - at));
	if (out->len >= 2 && out->p[out->len - 1] == '\n' && out->p[out->len - 2] != '\r') {
		out->len--;
		buf_append(out, "\r\n", 2);
	}
}

void sip_via_line_edit(struct buf *out, const struct sip_hdr *h, const struct sip_via *via,
		       const sv_t *drop, size_t ndrop, sv_t append)
{
	const char *pos = h->raw.p, *vend = via->raw.p + via->raw.len;
	const char *lend = h->raw.p + h->raw.len;

	/* each span dropped once, in the order they are written */
	for (;;) {
		const sv_t *next = NULL;
		for (size_t i = 0; i < ndrop; i++) {
			if (drop[i].len && drop[i].p >= pos && drop[i].p + drop[i].len <= vend &&
			    (!next || drop[i].p < next->p))
				next = &drop[i];
		}
		if (!next)
			break;
		buf_append(out, pos, (size_t)(next->p - pos));
		pos = next->p + next->len;
	}
	if (pos > vend)
		pos = vend;
	buf_append(out, pos, (size_t)(vend - pos));
	buf_append_sv(out, append);
	buf_append(out, vend, (size_t)(lend - vend));
	/* a raw line may end in a bare LF: answer with CRLF */
	if (out->len >= 2 && out->p[out->len - 1] == '\n' && out->p[out->len - 2] != '\r') {
		out->len--;
		buf_append(out, "\r\n", 2);
	}
}

int sip_build_reply(struct buf *out, struct sip_msg *m, const struct sip_reply *r)
{
	const struct sip_via *via = sip_msg_via1(m);
	const struct sip_naddr *to = sip_msg_to(m);
	struct sip_hdr *h;
	sv_t reason = r->reason.len ? r->reason : sv_cstr(sip_reason_phrase(r->status));

	buf_append_str(out, "SIP/2.0 ");
	buf_append_u32(out, r->status);
	buf_append_char(out, ' ');
	buf_append_sv(out, reason);
	buf_append(out, "\r\n", 2);

	h = sip_msg_hdr(m, SIP_H_VIA);
	if (h && via && (r->via_params.len || r->nvia_drop)) {
		sv_t drop[SIP_OC_NSPANS + 1];
		size_t n = 0;
		/* RFC 3581: the bare rport is filled in, not repeated */
		if (r->via_params.len && r->via_drop_rport && via->rport_span.len)
			drop[n++] = via->rport_span;
		for (size_t i = 0; i < r->nvia_drop && n < sizeof(drop) / sizeof(drop[0]); i++)
			drop[n++] = r->via_drop[i];
		sip_via_line_edit(out, h, via, drop, n, r->via_params);
		for (h = sip_msg_hdr_next(m, h); h; h = sip_msg_hdr_next(m, h))
			buf_append_sv(out, h->raw);
	} else {
		copy_hdr_lines(out, m, SIP_H_VIA);
	}
	copy_hdr_lines(out, m, SIP_H_FROM);
	h = sip_msg_hdr(m, SIP_H_TO);
	if (h && to && !to->has_tag && r->to_tag.len && r->status > 100) {
		char tagbuf[80];
		size_t n = 0;
		if (r->to_tag.len + 5 <= sizeof(tagbuf)) {
			memcpy(tagbuf, ";tag=", 5);
			memcpy(tagbuf + 5, r->to_tag.p, r->to_tag.len);
			n = r->to_tag.len + 5;
		}
		copy_line_insert(out, h, to->raw.p + to->raw.len, sv_make(tagbuf, n));
	} else {
		copy_hdr_lines(out, m, SIP_H_TO);
	}
	copy_hdr_lines(out, m, SIP_H_CALL_ID);
	copy_hdr_lines(out, m, SIP_H_CSEQ);
	if (r->server.len) {
		buf_append_str(out, "Server: ");
		buf_append_sv(out, r->server);
		buf_append(out, "\r\n", 2);
	}
	buf_append_sv(out, r->headers);
	if (r->body.len && r->content_type.len) {
		buf_append_str(out, "Content-Type: ");
		buf_append_sv(out, r->content_type);
		buf_append(out, "\r\n", 2);
	}
	buf_append_str(out, "Content-Length: ");
	buf_append_u32(out, r->body.len);
	buf_append(out, "\r\n\r\n", 4);
	buf_append_sv(out, r->body);
	return out->err;
}

const char *sip_reason_phrase(unsigned status)
{
	switch (status) {
	case 100:
		return "Trying";
	case 180:
		return "Ringing";
	case 181:
		return "Call Is Being Forwarded";
	case 182:
		return "Queued";
	case 183:
		return "Session Progress";
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Moved Temporarily";
	case 305:
		return "Use Proxy";
	case 380:
		return "Alternative Service";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 410:
		return "Gone";
	case 412:
		return "Conditional Request Failed";
	case 413:
		return "Request Entity Too Large";
	case 414:
		return "Request-URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Unsupported URI Scheme";
	case 420:
		return "Bad Extension";
	case 421:
		return "Extension Required";
	case 422:
		return "Session Interval Too Small";
	case 423:
		return "Interval Too Brief";
	case 429:
		return "Provide Referrer Identity";
	case 480:
		return "Temporarily Unavailable";
	case 481:
		return "Call/Transaction Does Not Exist";
	case 482:
		return "Loop Detected";
	case 483:
		return "Too Many Hops";
	case 484:
		return "Address Incomplete";
	case 485:
		return "Ambiguous";
	case 486:
		return "Busy Here";
	case 487:
		return "Request Terminated";
	case 488:
		return "Not Acceptable Here";
	case 489:
		return "Bad Event";
	case 491:
		return "Request Pending";
	case 493:
		return "Undecipherable";
	case 500:
		return "Server Internal Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Server Time-out";
	case 505:
		return "Version Not Supported";
	case 513:
		return "Message Too Large";
	case 600:
		return "Busy Everywhere";
	case 603:
		return "Decline";
	case 604:
		return "Does Not Exist Anywhere";
	case 606:
		return "Not Acceptable";
	default:
		if (status < 200)
			return "Session Progress";
		if (status < 300)
			return "OK";
		if (status < 400)
			return "Redirected";
		if (status < 500)
			return "Request Failure";
		if (status < 600)
			return "Server Failure";
		return "Global Failure";
	}
}
