/*
 * parse.c - the first pass over a SIP message: start line, header index and
 * body framing. Nothing is copied: every field is a view into the buffer.
 *
 * This pass does only what every message needs (finding lines, naming
 * headers, reading Content-Length); the typed parsers in hdr.c and uri.c run
 * later, on demand, for the few headers a routing decision looks at.
 */
#include "sip/chartab.h"
#include "sip/sip.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

struct hdr_name {
	const char *name;
	uint8_t len;
	uint8_t id;
};

#define HN(s, id)                                                                                  \
	{                                                                                          \
		s, sizeof(s) - 1, id                                                               \
	}

/* Full names, grouped by length so the lookup compares few strings. */
static const struct hdr_name hdr_names[] = {
    HN("to", SIP_H_TO),
    HN("via", SIP_H_VIA),
    HN("from", SIP_H_FROM),
    HN("cseq", SIP_H_CSEQ),
    HN("date", SIP_H_DATE),
    HN("path", SIP_H_PATH),
    HN("route", SIP_H_ROUTE),
    HN("allow", SIP_H_ALLOW),
    HN("event", SIP_H_EVENT),
    HN("accept", SIP_H_ACCEPT),
    HN("server", SIP_H_SERVER),
    HN("reason", SIP_H_REASON),
    HN("call-id", SIP_H_CALL_ID),
    HN("contact", SIP_H_CONTACT),
    HN("expires", SIP_H_EXPIRES),
    HN("require", SIP_H_REQUIRE),
    HN("subject", SIP_H_SUBJECT),
    HN("refer-to", SIP_H_REFER_TO),
    HN("sip-etag", SIP_H_SIP_ETAG),
    HN("supported", SIP_H_SUPPORTED),
    HN("diversion", SIP_H_DIVERSION),
    HN("user-agent", SIP_H_USER_AGENT),
    HN("min-expires", SIP_H_MIN_EXPIRES),
    HN("unsupported", SIP_H_UNSUPPORTED),
    HN("retry-after", SIP_H_RETRY_AFTER),
    HN("max-forwards", SIP_H_MAX_FORWARDS),
    HN("record-route", SIP_H_RECORD_ROUTE),
    HN("content-type", SIP_H_CONTENT_TYPE),
    HN("allow-events", SIP_H_ALLOW_EVENTS),
    HN("sip-if-match", SIP_H_SIP_IF_MATCH),
    HN("history-info", SIP_H_HISTORY_INFO),
    HN("proxy-require", SIP_H_PROXY_REQUIRE),
    HN("authorization", SIP_H_AUTHORIZATION),
    HN("accept-contact", SIP_H_ACCEPT_CONTACT),
    HN("content-length", SIP_H_CONTENT_LENGTH),
    HN("www-authenticate", SIP_H_WWW_AUTHENTICATE),
    HN("content-encoding", SIP_H_CONTENT_ENCODING),
    HN("proxy-authenticate", SIP_H_PROXY_AUTHENTICATE),
    HN("subscription-state", SIP_H_SUBSCRIPTION_STATE),
    HN("proxy-authorization", SIP_H_PROXY_AUTHORIZATION),
};

static enum sip_hdr_id hdr_compact(char c)
{
	switch (sv_lower_char(c)) {
	case 'v':
		return SIP_H_VIA;
	case 'f':
		return SIP_H_FROM;
	case 't':
		return SIP_H_TO;
	case 'i':
		return SIP_H_CALL_ID;
	case 'm':
		return SIP_H_CONTACT;
	case 'l':
		return SIP_H_CONTENT_LENGTH;
	case 'c':
		return SIP_H_CONTENT_TYPE;
	case 'k':
		return SIP_H_SUPPORTED;
	case 'e':
		return SIP_H_CONTENT_ENCODING;
	case 'o':
		return SIP_H_EVENT;
	case 'u':
		return SIP_H_ALLOW_EVENTS;
	case 'r':
		return SIP_H_REFER_TO;
	case 's':
		return SIP_H_SUBJECT;
	case 'a':
		return SIP_H_ACCEPT_CONTACT;
	default:
		return SIP_H_OTHER;
	}
}

static enum sip_hdr_id hdr_lookup(const char *name, size_t len)
{
	char first;

	if (len == 1)
		return hdr_compact(name[0]);
	first = sv_lower_char(name[0]);
	for (size_t i = 0; i < sizeof(hdr_names) / sizeof(hdr_names[0]); i++) {
		const struct hdr_name *h = &hdr_names[i];
		if (h->len > len)
			break; /* table is sorted by length */
		if (h->len == len && h->name[0] == first && strncasecmp(h->name, name, len) == 0)
			return (enum sip_hdr_id)h->id;
	}
	return SIP_H_OTHER;
}

static const char *const method_names[SIP_METHOD_COUNT] = {
    [SIP_INVITE] = "INVITE",   [SIP_ACK] = "ACK",
    [SIP_BYE] = "BYE",	       [SIP_CANCEL] = "CANCEL",
    [SIP_OPTIONS] = "OPTIONS", [SIP_REGISTER] = "REGISTER",
    [SIP_PRACK] = "PRACK",     [SIP_SUBSCRIBE] = "SUBSCRIBE",
    [SIP_NOTIFY] = "NOTIFY",   [SIP_PUBLISH] = "PUBLISH",
    [SIP_INFO] = "INFO",       [SIP_REFER] = "REFER",
    [SIP_MESSAGE] = "MESSAGE", [SIP_UPDATE] = "UPDATE",
};

enum sip_method sip_method_from_name(sv_t name)
{
	/* Methods are case-sensitive (RFC 3261 7.1). */
	for (int i = 1; i < SIP_METHOD_COUNT; i++) {
		if (name.len == strlen(method_names[i]) &&
		    memcmp(name.p, method_names[i], name.len) == 0)
			return (enum sip_method)i;
	}
	return SIP_METHOD_OTHER;
}

sv_t sip_method_name(enum sip_method m)
{
	if (m <= SIP_METHOD_OTHER || m >= SIP_METHOD_COUNT)
		return SV_NULL;
	return sv_cstr(method_names[m]);
}

bool sip_is_token_char(unsigned char c)
{
	return sip_cc(c, SIP_CC_TOKEN);
}

bool sip_is_token(sv_t v)
{
	if (v.len == 0)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!sip_is_token_char((unsigned char)v.p[i]))
			return false;
	}
	return true;
}

/* Returns the end of the line that starts at p (the position of its '\n') or NULL. */
static const char *line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* Content of a line without its CR LF. */
static sv_t line_content(const char *p, const char *nl)
{
	size_t n = (size_t)(nl - p);

	if (n && p[n - 1] == '\r')
		n--;
	return sv_make(p, n);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int parse_version(sv_t v)
{
	size_t i = 4;

	if (v.len < 7 || !sv_ieq(sv_make(v.p, 4), SV("SIP/")))
		return EBADMSG;
	if (!is_digit(v.p[i]))
		return EBADMSG;
	while (i < v.len && is_digit(v.p[i]))
		i++;
	if (i >= v.len || v.p[i] != '.')
		return EBADMSG;
	i++;
	if (i >= v.len || !is_digit(v.p[i]))
		return EBADMSG;
	while (i < v.len && is_digit(v.p[i]))
		i++;
	if (i != v.len)
		return EBADMSG;
	return 0;
}

bool sip_version_is_2_0(sv_t v)
{
	return sv_ieq(v, SV("SIP/2.0"));
}

/* Sets m->error and leaves the message marked as malformed but keeps parsing
 * the headers, so that a 400 can still be built. */
static int parse_request_line(struct sip_msg *m, sv_t line, sv_t *version)
{
	ptrdiff_t sp1, sp2;
	sv_t rest;

	m->request = true;
	sp1 = sv_find(line, ' ');
	if (sp1 <= 0) {
		m->error = "Malformed Request-Line";
		return EBADMSG;
	}
	m->method_name = sv_make(line.p, (size_t)sp1);
	if (!sip_is_token(m->method_name)) {
		m->error = "Malformed method";
		return EBADMSG;
	}
	m->method = sip_method_from_name(m->method_name);
	rest = sv_sub(line, (size_t)sp1 + 1, line.len);
	sp2 = sv_find(rest, ' ');
	if (sp2 <= 0) {
		m->error = sp2 == 0 ? "Extra whitespace in Request-Line" : "Missing SIP-Version";
		return EBADMSG;
	}
	m->ruri_raw = sv_make(rest.p, (size_t)sp2);
	*version = sv_sub(rest, (size_t)sp2 + 1, rest.len);
	for (size_t i = 0; i < m->ruri_raw.len; i++) {
		unsigned char c = (unsigned char)m->ruri_raw.p[i];
		if (c <= ' ' || c == 0x7f) {
			m->error = "Malformed Request-URI";
			return EBADMSG;
		}
	}
	if (parse_version(*version)) {
		m->error = "Malformed SIP-Version";
		return EBADMSG;
	}
	return 0;
}

static int parse_status_line(struct sip_msg *m, sv_t line)
{
	sv_t code;
	unsigned status = 0;

	m->request = false;
	if (line.len < 12 || line.p[7] != ' ' || parse_version(sv_make(line.p, 7)))
		return EBADMSG;
	if (!sip_version_is_2_0(sv_make(line.p, 7)))
		return EBADMSG;
	code = sv_sub(line, 8, 3);
	for (size_t i = 0; i < 3; i++) {
		if (!is_digit(code.p[i]))
			return EBADMSG;
		status = status * 10 + (unsigned)(code.p[i] - '0');
	}
	if (line.len > 11 && line.p[11] != ' ')
		return EBADMSG; /* more than 3 digits */
	if (status < 100 || status > 699)
		return EBADMSG;
	m->status = status;
	m->reason = line.len > 12 ? sv_sub(line, 12, line.len) : SV_NULL;
	return 0;
}

static int index_grow(struct sip_msg *m)
{
	uint16_t ncap = (uint16_t)(m->hcap * 2);
	struct sip_hdr *nh;

	if (m->hcap >= SIP_MAX_HEADERS)
		return EMSGSIZE;
	if (ncap > SIP_MAX_HEADERS)
		ncap = SIP_MAX_HEADERS;
	if (m->hdrs == m->inline_hdrs) {
		nh = malloc(sizeof(*nh) * ncap);
		if (nh)
			memcpy(nh, m->inline_hdrs, sizeof(*nh) * m->nhdrs);
	} else {
		nh = realloc(m->hdrs, sizeof(*nh) * ncap);
	}
	if (!nh)
		return ENOMEM;
	m->hdrs = nh;
	m->hcap = ncap;
	return 0;
}

static int parse_clen(struct sip_msg *m, sv_t v)
{
	uint32_t n;

	v = sv_trim(v);
	if (sv_to_u32(v, &n) || n > SIP_MAX_MSG) {
		m->error = "Bad Content-Length";
		return EBADMSG;
	}
	m->clen = n;
	m->has_clen = true;
	return 0;
}

static void msg_reset(struct sip_msg *m)
{
	if (m->hdrs && m->hdrs != m->inline_hdrs)
		free(m->hdrs);
	m->buf = NULL;
	m->len = 0;
	m->request = false;
	m->method = SIP_METHOD_OTHER;
	m->method_name = m->ruri_raw = m->version = m->reason = m->start_line = m->headers =
	    m->body = SV_NULL;
	m->status = 0;
	m->has_clen = false;
	m->clen = 0;
	m->hdrs = m->inline_hdrs;
	m->nhdrs = 0;
	m->hcap = SIP_HDR_INLINE;
	memset(m->first, 0, sizeof(m->first));
	m->dup_single = 0;
	m->parsed = 0;
	m->parse_failed = 0;
	m->max_forwards = -1;
	m->expires = -1;
	m->error = NULL;
}

void sip_msg_release(struct sip_msg *m)
{
	if (m->hdrs && m->hdrs != m->inline_hdrs)
		free(m->hdrs);
	m->hdrs = m->inline_hdrs;
	m->hcap = SIP_HDR_INLINE;
	m->nhdrs = 0;
}

/* Adds one header line to the index and links it to earlier ones of its id. */
static int index_header(struct sip_msg *m, uint16_t *last, sv_t name, sv_t value, sv_t raw)
{
	enum sip_hdr_id id = hdr_lookup(name.p, name.len);
	struct sip_hdr *h;
	int err;

	if (m->nhdrs == m->hcap && (err = index_grow(m)))
		return err;
	h = &m->hdrs[m->nhdrs++];
	h->name = name;
	h->value = value;
	h->raw = raw;
	h->id = (uint16_t)id;
	h->next = 0;
	if (id != SIP_H_OTHER) {
		if (!m->first[id]) {
			m->first[id] = m->nhdrs;
		} else {
			m->hdrs[last[id] - 1].next = m->nhdrs;
			if (id >= SIP_H_FIRST_SINGLE && id <= SIP_H_LAST_SINGLE)
				m->dup_single |= 1u << id;
		}
		last[id] = m->nhdrs;
	}
	return 0;
}

/*
 * Walks the header lines from p. Returns 0 with *body_start set, EAGAIN when
 * the empty line is not in the buffer yet, or EBADMSG.
 */
static int parse_headers(struct sip_msg *m, const char *p, const char *end, const char **body_start,
			 bool stream, int *bad)
{
	uint16_t last[SIP_H_COUNT];
	const char *hdr_begin = p;
	int err;

	memset(last, 0, sizeof(last));
	while (p < end) {
		const char *nl = line_end(p, end), *q, *vstart, *raw_end;
		sv_t line, name, value;

		if (!nl)
			return EAGAIN;
		line = line_content(p, nl);
		if (line.len == 0) {
			m->headers = sv_make(hdr_begin, (size_t)(nl + 1 - hdr_begin));
			*body_start = nl + 1;
			return 0;
		}
		if (line.p[0] == ' ' || line.p[0] == '\t') {
			if (!*bad)
				m->error = "Header continuation without a header";
			if (stream)
				return EBADMSG;
			/* a datagram: remembered, and the lines after it still indexed, for the 400
			 */
			*bad = EBADMSG;
			p = nl + 1;
			continue;
		}
		q = line.p;
		while (q < line.p + line.len && sip_cc((unsigned char)*q, SIP_CC_TOKEN))
			q++;
		name = sv_make(line.p, (size_t)(q - line.p));
		while (q < line.p + line.len && (*q == ' ' || *q == '\t'))
			q++;
		if (name.len == 0 || q == line.p + line.len || *q != ':') {
			if (!*bad)
				m->error = "Malformed header line";
			if (stream)
				return EBADMSG;
			*bad = EBADMSG;
			p = nl + 1;
			continue;
		}
		q++;
		vstart = q;
		/* Folded continuation lines belong to this header. */
		raw_end = nl + 1;
		while (raw_end < end && (*raw_end == ' ' || *raw_end == '\t')) {
			const char *nl2 = line_end(raw_end, end);
			if (!nl2)
				return EAGAIN;
			raw_end = nl2 + 1;
		}
		if (raw_end >= end)
			return EAGAIN; /* need to see the next line to know the header is complete
					*/
		value = sv_trim(sv_make(vstart, (size_t)(raw_end - vstart)));
		err = index_header(m, last, name, value, sv_make(p, (size_t)(raw_end - p)));
		if (err)
			return err;
		p = raw_end;
	}
	return EAGAIN;
}

static const char *skip_keepalive(const char *p, const char *end)
{
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	return p;
}

int sip_parse(struct sip_msg *m, const char *buf, size_t len, unsigned flags)
{
	bool stream = flags & SIP_PARSE_STREAM;
	const char *end = buf + len, *p, *nl, *body_start = NULL;
	sv_t line, version = SV_NULL;
	int line_err, err, hdr_err = 0;
	size_t avail, total;

	msg_reset(m);
	if (!stream && len > SIP_MAX_MSG)
		return EMSGSIZE;
	p = skip_keepalive(buf, end);
	m->buf = p;
	if (p == end)
		return stream ? EAGAIN : EBADMSG;
	nl = line_end(p, end);
	if (!nl) {
		if (stream && (size_t)(end - p) <= SIP_MAX_MSG)
			return EAGAIN;
		m->error = "No line end";
		return stream ? EMSGSIZE : EBADMSG;
	}
	line = line_content(p, nl);
	m->start_line = line;
	if (line.len >= 4 && sv_ieq(sv_make(line.p, 4), SV("SIP/")))
		line_err = parse_status_line(m, line);
	else
		line_err = parse_request_line(m, line, &version);

	err = parse_headers(m, nl + 1, end, &body_start, stream, &hdr_err);
	if (err == EAGAIN) {
		if (stream && (size_t)(end - p) <= SIP_MAX_MSG)
			return EAGAIN;
		if (!stream) {
			m->error = "Header section not terminated";
			err = EBADMSG;
		} else {
			return EMSGSIZE;
		}
	}
	if (err)
		return err;

	if (m->first[SIP_H_CONTENT_LENGTH]) {
		if (m->dup_single & (1u << SIP_H_CONTENT_LENGTH)) {
			m->error = "Multiple Content-Length headers";
			return EBADMSG;
		}
		err = parse_clen(m, m->hdrs[m->first[SIP_H_CONTENT_LENGTH] - 1].value);
		if (err)
			return err;
	}
	avail = (size_t)(end - body_start);
	if (!m->has_clen) {
		/* RFC 3261 18.3: on a datagram the body runs to its end; a stream needs the header.
		 */
		m->body = sv_make(body_start, stream ? 0 : avail);
	} else if (m->clen > avail) {
		if (stream) {
			total = (size_t)(body_start - p) + m->clen;
			return total > SIP_MAX_MSG ? EMSGSIZE : EAGAIN;
		}
		m->error = "Content-Length larger than the message";
		return EBADMSG;
	} else {
		m->body = sv_make(body_start, m->clen);
	}
	m->len = (size_t)(m->body.p + m->body.len - p);
	if (m->len > SIP_MAX_MSG)
		return EMSGSIZE;
	if (line_err)
		return line_err;
	if (hdr_err)
		return hdr_err;
	m->version = version;
	return 0;
}

struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id)
{
	uint16_t i = m->first[id];

	return i ? &m->hdrs[i - 1] : NULL;
}

struct sip_hdr *sip_msg_hdr_next(const struct sip_msg *m, const struct sip_hdr *h)
{
	return h->next ? &m->hdrs[h->next - 1] : NULL;
}

struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, sv_t name)
{
	for (uint16_t i = 0; i < m->nhdrs; i++) {
		if (sv_ieq(m->hdrs[i].name, name))
			return &m->hdrs[i];
	}
	return NULL;
}

unsigned sip_msg_hdr_count(const struct sip_msg *m, enum sip_hdr_id id)
{
	unsigned n = 0;

	for (struct sip_hdr *h = sip_msg_hdr(m, id); h; h = sip_msg_hdr_next(m, h))
		n++;
	return n;
}

enum sip_proto sip_proto_from_name(sv_t name)
{
	if (sv_ieq(name, SV("UDP")))
		return SIP_PROTO_UDP;
	if (sv_ieq(name, SV("TCP")))
		return SIP_PROTO_TCP;
	if (sv_ieq(name, SV("TLS")))
		return SIP_PROTO_TLS;
	if (sv_ieq(name, SV("WS")))
		return SIP_PROTO_WS;
	if (sv_ieq(name, SV("WSS")))
		return SIP_PROTO_WSS;
	if (sv_ieq(name, SV("SCTP")))
		return SIP_PROTO_SCTP;
	return SIP_PROTO_OTHER;
}

const char *sip_proto_name(enum sip_proto p)
{
	switch (p) {
	case SIP_PROTO_UDP:
		return "UDP";
	case SIP_PROTO_TCP:
		return "TCP";
	case SIP_PROTO_TLS:
		return "TLS";
	case SIP_PROTO_WS:
		return "WS";
	case SIP_PROTO_WSS:
		return "WSS";
	case SIP_PROTO_SCTP:
		return "SCTP";
	default:
		return "UDP";
	}
}
