/*
 * hdr.c - typed parsers for the header values routing looks at: Via,
 * name-addr (From/To/Contact/Route), CSeq, parameter lists and comma lists,
 * and the lazy accessors that run them once per message.
 *
 * The grammar is RFC 3261 section 25, read liberally where RFC 4475 says an
 * element should be tolerant (LWS and line folding around every separator)
 * and strictly where it says the message is broken (empty parameters,
 * unterminated quotes, unbracketed display names with separators).
 */
#include "sip/chartab.h"
#include "sip/internal.h"

#include <errno.h>
#include <string.h>

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

sv_t sip_skip_lws(sv_t v)
{
	size_t i = 0;

	for (;;) {
		while (i < v.len && is_wsp(v.p[i]))
			i++;
		/* a line fold: CRLF or LF followed by whitespace */
		if (i + 2 < v.len && v.p[i] == '\r' && v.p[i + 1] == '\n' && is_wsp(v.p[i + 2])) {
			i += 2;
			continue;
		}
		if (i + 1 < v.len && v.p[i] == '\n' && is_wsp(v.p[i + 1])) {
			i += 1;
			continue;
		}
		break;
	}
	return sv_sub(v, i, v.len);
}

static sv_t rtrim_lws(sv_t v)
{
	while (v.len &&
	       (is_wsp(v.p[v.len - 1]) || v.p[v.len - 1] == '\r' || v.p[v.len - 1] == '\n'))
		v.len--;
	return v;
}

/* Consumes one separator char surrounded by optional LWS; false if absent. */
static bool eat_sep(sv_t *v, char c)
{
	sv_t t = sip_skip_lws(*v);

	if (t.len == 0 || t.p[0] != c)
		return false;
	*v = sip_skip_lws(sv_sub(t, 1, t.len));
	return true;
}

static sv_t take_token(sv_t *v)
{
	size_t i = 0;

	while (i < v->len && sip_cc((unsigned char)v->p[i], SIP_CC_TOKEN))
		i++;
	sv_t tok = sv_make(v->p, i);
	*v = sv_sub(*v, i, v->len);
	return tok;
}

/* Length of a quoted-string at the front of v (including both quotes), or 0. */
static size_t quoted_len(sv_t v)
{
	if (v.len == 0 || v.p[0] != '"')
		return 0;
	for (size_t i = 1; i < v.len; i++) {
		if (v.p[i] == '\\') {
			i++;
			continue;
		}
		if (v.p[i] == '"')
			return i + 1;
	}
	return 0;
}

long sip_unquote(sv_t v, char *dst, size_t dstsize)
{
	size_t n = 0, ql = quoted_len(v);

	if (ql == 0 || ql != v.len)
		return -1;
	for (size_t i = 1; i + 1 < v.len; i++) {
		char c = v.p[i];
		if (c == '\\' && i + 2 < v.len)
			c = v.p[++i];
		if (n + 1 >= dstsize)
			return -1;
		dst[n++] = c;
	}
	if (dstsize)
		dst[n] = '\0';
	return (long)n;
}

static bool is_param_value_char(unsigned char c)
{
	return sip_is_token_char(c) || c == '[' || c == ']' || c == ':' || c == '/' || c == '@' ||
	       c == '?' || c == '&' || c == '$' || c == '(' || c == ')' || c == '{' || c == '}' ||
	       c >= 0x80;
}

int sip_param_next(sv_t *cursor, struct sip_param *p)
{
	sv_t v = sip_skip_lws(*cursor);
	size_t ql;

	if (v.len == 0) {
		*cursor = v;
		return 0;
	}
	p->name = take_token(&v);
	p->value = SV_NULL;
	p->has_value = false;
	if (p->name.len == 0)
		return -1;
	if (eat_sep(&v, '=')) {
		p->has_value = true;
		ql = quoted_len(v);
		if (ql) {
			p->value = sv_make(v.p, ql);
			v = sv_sub(v, ql, v.len);
		} else if (v.len && v.p[0] == '"') {
			return -1; /* unterminated quote */
		} else {
			size_t i = 0;
			while (i < v.len && is_param_value_char((unsigned char)v.p[i]))
				i++;
			p->value = sv_make(v.p, i);
			v = sv_sub(v, i, v.len);
			if (p->value.len == 0)
				return -1;
		}
	}
	v = sip_skip_lws(v);
	if (v.len == 0) {
		*cursor = v;
		return 1;
	}
	if (v.p[0] != ';')
		return -1;
	*cursor = sv_sub(v, 1, v.len);
	if (sip_skip_lws(*cursor).len == 0)
		return -1; /* trailing ';' with nothing after it */
	return 1;
}

bool sip_param_find(sv_t params, sv_t name, sv_t *value)
{
	struct sip_param p;
	sv_t cur = params;

	while (sip_param_next(&cur, &p) == 1) {
		if (sv_ieq(p.name, name)) {
			if (value)
				*value = p.value;
			return true;
		}
	}
	return false;
}

sv_t sip_list_split(sv_t *v)
{
	size_t i = 0;
	int angle = 0;
	bool quoted = false;
	sv_t elem;
	const char *comma = v->len ? memchr(v->p, ',', v->len) : NULL;

	/* the usual cases, with the C library's vectorised search: no comma at all (one
	 * element), or none of '"' and '<' before the first comma (it ends the element) */
	if (!comma) {
		i = v->len;
		goto done;
	}
	if (!memchr(v->p, '"', (size_t)(comma - v->p)) &&
	    !memchr(v->p, '<', (size_t)(comma - v->p))) {
		i = (size_t)(comma - v->p);
		goto done;
	}
	for (; i < v->len; i++) {
		char c = v->p[i];
		if (quoted) {
			if (c == '\\')
				i++;
			else if (c == '"')
				quoted = false;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == '<')
			angle++;
		else if (c == '>' && angle)
			angle--;
		else if (c == ',' && !angle)
			break;
	}
done:
	elem = sv_trim(sv_make(v->p, i < v->len ? i : v->len));
	*v = i < v->len ? sv_sub(*v, i + 1, v->len) : sv_make(v->p + v->len, 0);
	return elem;
}

unsigned sip_hdr_count(const struct sip_msg *m, enum sip_hdr_id id)
{
	struct sip_hdr_iter it;
	sv_t elem;
	unsigned n = 0;

	sip_hdr_iter_init(&it, m, id);
	while (sip_hdr_iter_next(&it, &elem))
		n++;
	return n;
}

int sip_hdr_join(const struct sip_msg *m, enum sip_hdr_id id, char *out, size_t len)
{
	struct sip_hdr_iter it;
	sv_t elem;
	size_t n = 0;

	if (len == 0)
		return EMSGSIZE;
	out[0] = '\0';
	sip_hdr_iter_init(&it, m, id);
	while (sip_hdr_iter_next(&it, &elem)) {
		if (n + (n ? 1 : 0) + elem.len >= len) {
			out[0] = '\0';
			return EMSGSIZE;
		}
		if (n)
			out[n++] = ',';
		memcpy(out + n, elem.p, elem.len);
		n += elem.len;
		out[n] = '\0';
	}
	return 0;
}

void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *m, enum sip_hdr_id id)
{
	it->m = m;
	it->h = sip_msg_hdr(m, id);
	it->rest = it->h ? it->h->value : SV_NULL;
}

int sip_hdr_iter_next(struct sip_hdr_iter *it, sv_t *elem)
{
	while (it->h) {
		while (sip_skip_lws(it->rest).len) {
			sv_t e = sip_list_split(&it->rest);
			if (e.len) {
				*elem = e;
				return 1;
			}
		}
		it->h = sip_msg_hdr_next(it->m, it->h);
		it->rest = it->h ? it->h->value : SV_NULL;
	}
	return 0;
}

static int parse_port(sv_t *v, uint16_t *port)
{
	uint32_t n = 0;
	size_t i = 0;

	while (i < v->len && v->p[i] >= '0' && v->p[i] <= '9') {
		n = n * 10 + (uint32_t)(v->p[i] - '0');
		if (n > 65535)
			return EINVAL;
		i++;
	}
	if (i == 0 || n == 0)
		return EINVAL;
	*port = (uint16_t)n;
	*v = sv_sub(*v, i, v->len);
	return 0;
}

static bool is_host_char(unsigned char c)
{
	return sip_cc(c, SIP_CC_HOST);
}

/* host [ ":" port ] with an optional IPv6 reference; shared by Via and URIs. */
int sip_hostport_take(sv_t *v, sv_t *host, bool *v6, uint16_t *port, bool lws_ok)
{
	size_t i = 0;

	*v6 = false;
	*port = 0;
	if (v->len && v->p[0] == '[') {
		while (i < v->len && v->p[i] != ']') {
			unsigned char c = (unsigned char)v->p[i];
			if (i > 0 && !(c == ':' || c == '.' || (c >= '0' && c <= '9') ||
				       (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
				return EINVAL;
			i++;
		}
		if (i >= v->len || i < 3)
			return EINVAL;
		*host = sv_make(v->p + 1, i - 1);
		*v6 = true;
		i++;
	} else {
		while (i < v->len && is_host_char((unsigned char)v->p[i]))
			i++;
		if (i == 0)
			return EINVAL;
		*host = sv_make(v->p, i);
	}
	*v = sv_sub(*v, i, v->len);
	if (lws_ok) {
		if (!eat_sep(v, ':'))
			return 0;
	} else {
		if (v->len == 0 || v->p[0] != ':')
			return 0;
		*v = sv_sub(*v, 1, v->len);
	}
	return parse_port(v, port);
}

/*
 * v starts at the ';' that opens a parameter list which runs to the next
 * comma outside quotes; returns the list (without the ';') and leaves *v
 * after that comma.
 */
static sv_t take_param_list(sv_t *v)
{
	sv_t rest = sv_sub(*v, 1, v->len);
	sv_t params = sip_list_split(&rest);

	*v = rest;
	return params;
}

int sip_via_parse(sv_t value, struct sip_via *via, sv_t *rest)
{
	sv_t v = sip_skip_lws(value), name;
	struct sip_param p;
	int rc;

	*via = (struct sip_via){0};
	via->raw.p = v.p;
	name = take_token(&v);
	if (!sv_ieq(name, SV("SIP")) || !eat_sep(&v, '/'))
		return EINVAL;
	via->version = take_token(&v);
	if (via->version.len == 0 || !eat_sep(&v, '/'))
		return EINVAL;
	via->transport = take_token(&v);
	if (via->transport.len == 0)
		return EINVAL;
	via->proto = sip_proto_from_name(via->transport);
	v = sip_skip_lws(v);
	if (sip_hostport_take(&v, &via->host, &via->host_v6, &via->port, true))
		return EINVAL;
	v = sip_skip_lws(v);
	via->raw.len = (size_t)(v.p - via->raw.p);
	if (v.len && v.p[0] == ';') {
		sv_t cur;
		via->params = take_param_list(&v);
		cur = via->params;
		while ((rc = sip_param_next(&cur, &p)) == 1) {
			if (sv_ieq(p.name, SV("branch"))) {
				via->branch = p.value;
				via->has_branch = true;
			} else if (sv_ieq(p.name, SV("received"))) {
				via->received = p.value;
			} else if (sv_ieq(p.name, SV("rport"))) {
				const char *start = p.name.p, *end = p.has_value
									 ? p.value.p + p.value.len
									 : p.name.p + p.name.len;
				while (start > via->raw.p && start[-1] != ';')
					start--;
				if (start > via->raw.p)
					start--;
				via->rport = p.value;
				via->rport_span = sv_make(start, (size_t)(end - start));
				via->has_rport = true;
			} else if (sv_ieq(p.name, SV("maddr"))) {
				via->maddr = p.value;
			}
		}
		if (rc < 0 || via->params.len == 0)
			return EINVAL;
		via->raw.len = (size_t)(via->params.p + via->params.len - via->raw.p);
	} else if (v.len && v.p[0] == ',') {
		v = sv_sub(v, 1, v.len);
	} else if (v.len) {
		return EINVAL;
	}
	via->raw = rtrim_lws(via->raw);
	if (rest)
		*rest = v;
	return 0;
}

static bool display_is_tokens(sv_t d)
{
	/* *(token LWS) */
	sv_t v = sip_skip_lws(d);

	while (v.len) {
		sv_t t = take_token(&v);
		if (t.len == 0)
			return false;
		v = sip_skip_lws(v);
	}
	return true;
}

static bool uri_has_space(sv_t u)
{
	for (size_t i = 0; i < u.len; i++) {
		if ((unsigned char)u.p[i] <= ' ')
			return true;
	}
	return false;
}

static int naddr_params(sv_t *v, struct sip_naddr *na)
{
	struct sip_param p;
	sv_t cur;
	int rc;

	*v = sip_skip_lws(*v);
	if (v->len == 0)
		return 0;
	if (v->p[0] == ',') {
		*v = sv_sub(*v, 1, v->len);
		return 0;
	}
	if (v->p[0] != ';')
		return EINVAL;
	na->params = take_param_list(v);
	cur = na->params;
	while ((rc = sip_param_next(&cur, &p)) == 1) {
		if (sv_ieq(p.name, SV("tag"))) {
			na->tag = p.value;
			na->has_tag = true;
		}
	}
	if (rc < 0 || na->params.len == 0)
		return EINVAL;
	return 0;
}

int sip_naddr_parse(sv_t value, struct sip_naddr *na, sv_t *rest)
{
	sv_t v = sip_skip_lws(value);
	const char *start = v.p;
	size_t ql;
	int err;

	*na = (struct sip_naddr){0};
	if (v.len == 0)
		return EINVAL;
	ql = quoted_len(v);
	if (v.p[0] == '"' && ql == 0)
		return EINVAL; /* unterminated quoted display name */
	if (ql) {
		na->display = sv_make(v.p, ql);
		v = sip_skip_lws(sv_sub(v, ql, v.len));
		if (v.len == 0 || v.p[0] != '<')
			return EINVAL;
	} else {
		/* A '<' before any ';' or ',' means a name-addr with a token display name. */
		size_t i = 0;
		while (i < v.len && v.p[i] != '<' && v.p[i] != ';' && v.p[i] != ',' &&
		       v.p[i] != '"')
			i++;
		if (i < v.len && v.p[i] == '<') {
			na->display = rtrim_lws(sv_make(v.p, i));
			if (!display_is_tokens(na->display))
				return EINVAL;
			v = sv_sub(v, i, v.len);
		} else if (i < v.len && v.p[i] == '"') {
			return EINVAL;
		}
	}
	if (v.len && v.p[0] == '<') {
		ptrdiff_t gt = sv_find(v, '>');
		if (gt < 0)
			return EINVAL;
		na->uri = sv_make(v.p + 1, (size_t)gt - 1);
		na->bracketed = true;
		if (na->uri.len == 0 || uri_has_space(na->uri))
			return EINVAL;
		v = sv_sub(v, (size_t)gt + 1, v.len);
	} else {
		/* addr-spec: the URI ends at the first ';' (header params), ',' or LWS */
		size_t i = 0;
		while (i < v.len && v.p[i] != ';' && v.p[i] != ',' && (unsigned char)v.p[i] > ' ')
			i++;
		na->uri = sv_make(v.p, i);
		if (na->uri.len == 0)
			return EINVAL;
		v = sv_sub(v, i, v.len);
	}
	na->raw = sv_make(start, (size_t)(v.p - start));
	err = naddr_params(&v, na);
	if (err)
		return err;
	if (na->params.len)
		na->raw.len = (size_t)(na->params.p + na->params.len - start);
	if (rest)
		*rest = v;
	return 0;
}

static int parse_cseq(sv_t value, struct sip_cseq *cs)
{
	sv_t v = sip_skip_lws(value), num;
	size_t i = 0;

	while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9')
		i++;
	num = sv_make(v.p, i);
	if (sv_to_u32(num, &cs->num))
		return EINVAL;
	v = sv_sub(v, i, v.len);
	if (sip_skip_lws(v).len == v.len)
		return EINVAL; /* LWS required between number and method */
	v = sip_skip_lws(v);
	cs->method_name = take_token(&v);
	if (cs->method_name.len == 0 || sip_skip_lws(v).len)
		return EINVAL;
	cs->method = sip_method_from_name(cs->method_name);
	return 0;
}

/* Lazily parsed accessors: remember success or failure in the message. */
#define LAZY(m, bit, expr)                                                                         \
	do {                                                                                       \
		if ((m)->parse_failed & (bit))                                                     \
			return NULL;                                                               \
		if (!((m)->parsed & (bit))) {                                                      \
			if (expr) {                                                                \
				(m)->parse_failed |= (bit);                                        \
				return NULL;                                                       \
			}                                                                          \
			(m)->parsed |= (bit);                                                      \
		}                                                                                  \
	} while (0)

static int via1_parse(struct sip_msg *m)
{
	struct sip_hdr *h = sip_msg_hdr(m, SIP_H_VIA);

	return h ? sip_via_parse(h->value, &m->via1, NULL) : ENOENT;
}

const struct sip_via *sip_msg_via1(struct sip_msg *m)
{
	LAZY(m, SIP_P_VIA1, via1_parse(m));
	return &m->via1;
}

static int naddr_hdr_parse(struct sip_msg *m, enum sip_hdr_id id, struct sip_naddr *na)
{
	struct sip_hdr *h = sip_msg_hdr(m, id);
	sv_t rest;
	int err;

	if (!h)
		return ENOENT;
	err = sip_naddr_parse(h->value, na, &rest);
	if (err)
		return err;
	return sip_skip_lws(rest).len ? EINVAL : 0; /* From/To hold exactly one address */
}

const struct sip_naddr *sip_msg_from(struct sip_msg *m)
{
	LAZY(m, SIP_P_FROM, naddr_hdr_parse(m, SIP_H_FROM, &m->from));
	return &m->from;
}

const struct sip_naddr *sip_msg_to(struct sip_msg *m)
{
	LAZY(m, SIP_P_TO, naddr_hdr_parse(m, SIP_H_TO, &m->to));
	return &m->to;
}

static int cseq_hdr_parse(struct sip_msg *m)
{
	struct sip_hdr *h = sip_msg_hdr(m, SIP_H_CSEQ);

	return h ? parse_cseq(h->value, &m->cseq) : ENOENT;
}

const struct sip_cseq *sip_msg_cseq(struct sip_msg *m)
{
	LAZY(m, SIP_P_CSEQ, cseq_hdr_parse(m));
	return &m->cseq;
}

const struct sip_uri *sip_msg_ruri(struct sip_msg *m)
{
	if (!m->request)
		return NULL;
	LAZY(m, SIP_P_RURI, sip_uri_parse(m->ruri_raw, &m->ruri));
	return &m->ruri;
}

sv_t sip_msg_callid(const struct sip_msg *m)
{
	return sip_msg_value(m, SIP_H_CALL_ID);
}

static int64_t parse_delta(sv_t v)
{
	uint64_t n = 0;

	v = sv_trim(v);
	if (v.len == 0)
		return -2;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -2;
		if (n < (1ull << 40))
			n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	return n > UINT32_MAX ? (int64_t)UINT32_MAX : (int64_t)n;
}

int64_t sip_msg_max_forwards(struct sip_msg *m)
{
	if (!(m->parsed & SIP_P_MAXFWD)) {
		struct sip_hdr *h = sip_msg_hdr(m, SIP_H_MAX_FORWARDS);
		m->max_forwards = h ? parse_delta(h->value) : -1;
		m->parsed |= SIP_P_MAXFWD;
	}
	return m->max_forwards;
}

int64_t sip_msg_expires(struct sip_msg *m)
{
	if (!(m->parsed & SIP_P_EXPIRES)) {
		struct sip_hdr *h = sip_msg_hdr(m, SIP_H_EXPIRES);
		m->expires = h ? parse_delta(h->value) : -1;
		m->parsed |= SIP_P_EXPIRES;
	}
	return m->expires;
}
