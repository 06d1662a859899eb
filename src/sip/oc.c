/*
 * oc.c - the RFC 7339 overload control parameters of a Via (oc, oc-algo,
 * oc-validity, oc-seq). They come from the network both ways: from a client
 * declaring support in its request, and from a downstream server telling us
 * how much to drop in its response, so the parser is strict about numbers
 * and keeps where each parameter is written for replacing it in a reply.
 */
#include "sip/sip.h"

#include <errno.h>
#include <string.h>

/* 1*max DIGIT into *out; false when v is not that. */
static bool oc_digits(sv_t v, size_t max, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > max)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return true;
}

/* oc-seq = 1*12DIGIT "." 1*5DIGIT, as one number of 1e-5 seconds. */
static bool oc_seq(sv_t v, uint64_t *out)
{
	ptrdiff_t dot = sv_find(v, '.');
	uint64_t sec, frac;
	sv_t f;

	if (dot <= 0 || !oc_digits(sv_make(v.p, (size_t)dot), 12, &sec))
		return false;
	f = sv_sub(v, (size_t)dot + 1, v.len);
	if (!oc_digits(f, 5, &frac))
		return false;
	for (size_t i = f.len; i < 5; i++)
		frac *= 10;
	*out = sec * 100000 + frac;
	return true;
}

/* Does the oc-algo value (quoted list or one token) name "loss"? */
static bool oc_algo_has_loss(sv_t v)
{
	if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
		v = sv_sub(v, 1, v.len - 2);
	while (v.len) {
		ptrdiff_t comma = sv_find(v, ',');
		size_t n = comma < 0 ? v.len : (size_t)comma;
		if (sv_ieq(sv_trim(sv_make(v.p, n)), SV("loss")))
			return true;
		v = comma < 0 ? SV_NULL : sv_sub(v, n + 1, v.len);
	}
	return false;
}

/* The parameter p as written in via, with its leading ';'. */
static sv_t oc_span(const struct sip_via *via, const struct sip_param *p)
{
	const char *start = p->name.p;
	const char *end = p->has_value ? p->value.p + p->value.len : p->name.p + p->name.len;

	while (start > via->raw.p && start[-1] != ';')
		start--;
	if (start > via->raw.p)
		start--;
	return sv_make(start, (size_t)(end - start));
}

int sip_via_oc_parse(const struct sip_via *via, struct sip_via_oc *oc)
{
	struct sip_param p;
	sv_t cur = via->params;
	uint64_t n;
	int rc, err = 0;
	bool algo_seen = false;

	*oc = (struct sip_via_oc){0};
	while ((rc = sip_param_next(&cur, &p)) == 1) {
		if (p.name.len < 2 || sv_lower_char(p.name.p[0]) != 'o' ||
		    sv_lower_char(p.name.p[1]) != 'c')
			continue; /* the common case: not ours */
		if (sv_ieq(p.name, SV("oc"))) {
			oc->present = true;
			oc->span[SIP_OC_OC] = oc_span(via, &p);
			if (p.has_value) {
				if (!oc_digits(p.value, 3, &n) || n > 100)
					err = EINVAL;
				else
					oc->value = (unsigned)n;
				oc->has_value = true;
			}
		} else if (sv_ieq(p.name, SV("oc-algo"))) {
			algo_seen = true;
			oc->loss = p.has_value && oc_algo_has_loss(p.value);
			oc->span[SIP_OC_ALGO] = oc_span(via, &p);
		} else if (sv_ieq(p.name, SV("oc-validity"))) {
			/* a day at most: longer is no overload report but a misconfiguration */
			if (!p.has_value || !oc_digits(p.value, 8, &n) || n > 86400000)
				err = EINVAL;
			else
				oc->validity_ms = (uint32_t)n;
			oc->has_validity = true;
			oc->span[SIP_OC_VALIDITY] = oc_span(via, &p);
		} else if (sv_ieq(p.name, SV("oc-seq"))) {
			if (!p.has_value || !oc_seq(p.value, &oc->seq))
				err = EINVAL;
			oc->has_seq = true;
			oc->span[SIP_OC_SEQ] = oc_span(via, &p);
		}
	}
	if (!algo_seen)
		oc->loss = true; /* RFC 7339 5.1: loss is the default algorithm */
	if (rc < 0)
		err = EINVAL;
	return err;
}

static bool oc_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool sip_oc_maybe(sv_t text, bool value)
{
	const char *p = text.p, *end = text.p + text.len;

	/* a parameter starts the text (a parsed Via's params) or follows a ';' */
	for (;;) {
		while (p < end && oc_lws(*p))
			p++;
		if (end - p >= 2 && (p[0] | 0x20) == 'o' && (p[1] | 0x20) == 'c') {
			for (p += 2; p < end && oc_lws(*p); p++)
				;
			if (p == end || *p == ';' || *p == ',')
				return !value ||
				       (p < end &&
					sip_oc_maybe(sv_make(p, (size_t)(end - p)), true));
			if (*p == '=')
				return true;
		}
		if (p >= end || !(p = memchr(p, ';', (size_t)(end - p))))
			return false;
		p++;
	}
}
