/*
 * dialplan.c - matching, transforming and gateway ordering for numbers.
 *
 * Tables are small (at most DP_MAX_RULES rules) and read-only once built,
 * so matching is a scan with no locks; only the gateways' up/down state
 * changes, as atomics written by the prober. A change from the CLI builds a
 * new table (services/rules.c); the text form of its entries is at the end.
 */
#include "services/dialplan.h"

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "store/store.h"

struct dp {
	struct dp_config cfg;
	regex_t rule_re[DP_MAX_RULES];
	bool rule_has_re[DP_MAX_RULES];
	regex_t op_re[DP_MAX_RULES][DP_MAX_OPS];
	bool op_has_re[DP_MAX_RULES][DP_MAX_OPS];
	atomic_bool down[DP_MAX_GATEWAYS];
};

int dp_config_find_gateway(const struct dp_config *c, const char *name)
{
	for (size_t i = 0; i < c->ngw; i++) {
		if (strcmp(c->gw[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

int dp_config_find_group(const struct dp_config *c, const char *name)
{
	for (size_t i = 0; i < c->ngrp; i++) {
		if (strcmp(c->grp[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* The bound of "{n}", "{n,}" or "{n,m}" at p (after '{'): the larger number, n+1 for "{n,}". */
static unsigned long regex_bound(const char **p)
{
	unsigned long n = 0, m = 0;
	bool comma = false, have_m = false;

	for (; **p && **p != '}'; (*p)++) {
		if (**p == ',') {
			comma = true;
		} else if (**p >= '0' && **p <= '9') {
			unsigned long *v = comma ? &m : &n;
			*v = *v * 10 + (unsigned long)(**p - '0');
			have_m |= comma;
			if (*v > 100000)
				return ULONG_MAX;
		}
	}
	return comma ? (have_m ? m : n + 1) : n;
}

/*
 * glibc's regcomp copies the tree of a sub-expression once per "+" and per
 * count of a bound ("{n}"), so stacked or nested ones grow it exponentially:
 * "a++++..." with forty "+" takes gigabytes. A dialplan regex needs none of
 * that; stacked repetitions are undefined in POSIX anyway. Refuses them, and
 * a regex whose expanded size (atoms, times their repetitions, through the
 * nesting of groups) passes REGEX_MAX_SIZE.
 */
#define REGEX_MAX_SIZE	20000UL
#define REGEX_MAX_DEPTH 32

static bool regex_tame(const char *re)
{
	unsigned long sum[REGEX_MAX_DEPTH] = {0}, last = 0;
	unsigned depth = 0;
	bool after_quant = false;

	for (const char *p = re; *p; p++) {
		unsigned long factor = 1;

		if (*p == '(') {
			if (++depth >= REGEX_MAX_DEPTH)
				return false;
			sum[depth] = 0;
			after_quant = false;
			continue;
		}
		if (*p == ')' && depth > 0) {
			last = sum[depth--] + 1; /* the group, as one item of its parent */
			sum[depth] += last;
			after_quant = false;
			continue;
		}
		if (*p != '*' && *p != '+' && *p != '?' && *p != '{') {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '[') { /* a bracket expression is one atom */
				const char *q = p + 1;
				q += *q == '^';
				q += *q == ']';
				while (*q && *q != ']')
					q++;
				if (!*q)
					return true; /* unbalanced: regcomp refuses it */
				p = q;
			}
			last = 1;
			sum[depth] += last;
			after_quant = false;
			continue;
		}
		if (after_quant)
			return false;
		after_quant = true;
		if (*p == '+')
			factor = 2;
		if (*p == '{') {
			p++;
			factor = regex_bound(&p);
			if (factor > REGEX_MAX_SIZE)
				return false;
			if (!*p)
				return true;
		}
		/* the item just before repeats: its copies add to the level it is in */
		if (factor > 1)
			sum[depth] += last * (factor - 1);
		last *= factor ? factor : 1;
		if (sum[depth] > REGEX_MAX_SIZE || last > REGEX_MAX_SIZE)
			return false;
	}
	return sum[0] <= REGEX_MAX_SIZE;
}

static bool regex_ok(const char *re)
{
	regex_t r;

	if (!regex_tame(re) || regcomp(&r, re, REG_EXTENDED) != 0)
		return false;
	regfree(&r);
	return true;
}

int dp_config_resolve(struct dp_config *c, char *err, size_t errlen, unsigned *line)
{
	for (size_t i = 0; i < c->ngw; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(c->gw[i].name, c->gw[j].name) == 0) {
				*line = c->gw[i].line;
				snprintf(err, errlen, "gateway '%s' is defined twice",
					 c->gw[i].name);
				return EINVAL;
			}
		}
	}
	for (size_t g = 0; g < c->ngrp; g++) {
		struct dp_group *gr = &c->grp[g];
		for (size_t j = 0; j < g; j++) {
			if (strcmp(gr->name, c->grp[j].name) == 0) {
				*line = gr->line;
				snprintf(err, errlen, "gateway group '%s' is defined twice",
					 gr->name);
				return EINVAL;
			}
		}
		for (size_t m = 0; m < gr->n; m++) {
			int k = dp_config_find_gateway(c, gr->m[m].name);
			if (k < 0) {
				*line = gr->m[m].line;
				snprintf(err, errlen, "gateway group '%s': no gateway named '%s'",
					 gr->name, gr->m[m].name);
				return EINVAL;
			}
			gr->m[m].gw = (unsigned)k;
		}
	}
	for (size_t r = 0; r < c->nrules; r++) {
		struct dp_rule *ru = &c->rules[r];
		if (ru->regex[0] && !regex_ok(ru->regex)) {
			*line = ru->line;
			snprintf(err, errlen,
				 "dialplan rule: '%s' is not a valid extended regular expression "
				 "(or stacks repetitions)",
				 ru->regex);
			return EINVAL;
		}
		for (size_t o = 0; o < ru->nops; o++) {
			if (ru->ops[o].kind == DP_OP_REPLACE && !regex_ok(ru->ops[o].regex)) {
				*line = ru->line;
				snprintf(err, errlen,
					 "dialplan rule: '%s' is not a valid extended regular "
					 "expression",
					 ru->ops[o].regex);
				return EINVAL;
			}
		}
		for (size_t k = 0; k < ru->nroute; k++) {
			int g = dp_config_find_group(c, ru->route_names[k]);
			if (g < 0) {
				*line = ru->line;
				snprintf(err, errlen, "dialplan rule: no gateway group named '%s'",
					 ru->route_names[k]);
				return EINVAL;
			}
			ru->route[k] = (unsigned)g;
		}
		if (ru->nroute == 0) {
			*line = ru->line;
			snprintf(err, errlen,
				 "dialplan rule: 'route' must name at least one gateway group");
			return EINVAL;
		}
	}
	return 0;
}

int dp_create(const struct dp_config *c, const struct dp *prev, struct dp **out)
{
	struct dp *d = calloc(1, sizeof(*d));

	if (!d)
		return ENOMEM;
	d->cfg = *c;
	for (size_t r = 0; r < c->nrules; r++) {
		const struct dp_rule *ru = &c->rules[r];
		if (ru->regex[0]) {
			if (regcomp(&d->rule_re[r], ru->regex, REG_EXTENDED) != 0)
				goto bad;
			d->rule_has_re[r] = true;
		}
		for (size_t o = 0; o < ru->nops; o++) {
			if (ru->ops[o].kind != DP_OP_REPLACE)
				continue;
			if (regcomp(&d->op_re[r][o], ru->ops[o].regex, REG_EXTENDED) != 0)
				goto bad;
			d->op_has_re[r][o] = true;
		}
	}
	for (size_t g = 0; g < DP_MAX_GATEWAYS; g++) {
		bool down = false;
		for (size_t k = 0; prev && g < c->ngw && k < prev->cfg.ngw; k++) {
			if (strcmp(prev->cfg.gw[k].name, c->gw[g].name) == 0 &&
			    strcmp(prev->cfg.gw[k].host, c->gw[g].host) == 0 &&
			    prev->cfg.gw[k].port == c->gw[g].port)
				down = atomic_load(&prev->down[k]);
		}
		atomic_init(&d->down[g], down);
	}
	*out = d;
	return 0;
bad:
	dp_destroy(d);
	return EINVAL;
}

void dp_destroy(struct dp *d)
{
	if (!d)
		return;
	for (size_t r = 0; r < DP_MAX_RULES; r++) {
		if (d->rule_has_re[r])
			regfree(&d->rule_re[r]);
		for (size_t o = 0; o < DP_MAX_OPS; o++) {
			if (d->op_has_re[r][o])
				regfree(&d->op_re[r][o]);
		}
	}
	free(d);
}

bool dp_is_number(sv_t user)
{
	size_t i = 0;

	if (user.len && user.p[0] == '+')
		i = 1;
	if (i == user.len)
		return false;
	for (; i < user.len; i++) {
		char ch = user.p[i];
		if (!((ch >= '0' && ch <= '9') || ch == '*' || ch == '#'))
			return false;
	}
	return true;
}

size_t dp_digits(sv_t number)
{
	return number.len && number.p[0] == '+' ? number.len - 1 : number.len;
}

int dp_match(const struct dp *d, sv_t number)
{
	int best = -1;
	size_t best_len = 0;
	char buf[DP_NUMBER_MAX];

	for (size_t r = 0; r < d->cfg.nrules; r++) {
		const char *pre = d->cfg.rules[r].prefix;
		size_t n = strlen(pre);
		if (!d->rule_has_re[r] && number.len >= n && memcmp(number.p, pre, n) == 0 &&
		    (best < 0 || n > best_len)) {
			best = (int)r;
			best_len = n;
		}
	}
	if (best >= 0 || number.len >= sizeof(buf))
		return best;
	memcpy(buf, number.p, number.len);
	buf[number.len] = '\0';
	for (size_t r = 0; r < d->cfg.nrules; r++) {
		if (d->rule_has_re[r] && regexec(&d->rule_re[r], buf, 0, NULL, 0) == 0)
			return (int)r;
	}
	return -1;
}

const struct dp_rule *dp_rule(const struct dp *d, int rule)
{
	return rule >= 0 && (size_t)rule < d->cfg.nrules ? &d->cfg.rules[rule] : NULL;
}

/* \1..\9 in with refer to the match's groups; \\ is a backslash. */
static int substitute(const regex_t *re, const char *with, char *num, size_t len)
{
	regmatch_t m[10];
	char out[DP_NUMBER_MAX * 2];
	size_t n = 0;

	if (regexec(re, num, 10, m, 0) != 0)
		return 0; /* no match: unchanged */
	for (regoff_t i = 0; i < m[0].rm_so && n < sizeof(out); i++)
		out[n++] = num[i];
	for (const char *w = with; *w; w++) {
		if (w[0] == '\\' && w[1] >= '0' && w[1] <= '9') {
			regmatch_t g = m[w[1] - '0'];
			w++;
			if (g.rm_so < 0)
				continue;
			for (regoff_t i = g.rm_so; i < g.rm_eo && n < sizeof(out); i++)
				out[n++] = num[i];
		} else {
			if (w[0] == '\\' && w[1] == '\\')
				w++;
			if (n < sizeof(out))
				out[n++] = *w;
		}
	}
	for (size_t i = (size_t)m[0].rm_eo; num[i] && n < sizeof(out); i++)
		out[n++] = num[i];
	if (n >= len || n >= sizeof(out))
		return ENOSPC;
	memcpy(num, out, n);
	num[n] = '\0';
	return 0;
}

int dp_transform(const struct dp *d, int rule, sv_t number, char *out, size_t len)
{
	const struct dp_rule *ru = dp_rule(d, rule);
	size_t n;

	if (!ru)
		return EINVAL;
	if (number.len >= len)
		return ENOSPC;
	memcpy(out, number.p, number.len);
	out[number.len] = '\0';
	for (size_t o = 0; o < ru->nops; o++) {
		const struct dp_op *op = &ru->ops[o];
		size_t tl = strlen(op->text), at, cnt;
		n = strlen(out);
		switch (op->kind) {
		case DP_OP_STRIP:
			cnt = op->count < n ? op->count : n;
			memmove(out, out + cnt, n - cnt + 1);
			break;
		case DP_OP_PREFIX:
		case DP_OP_INSERT:
			at = op->kind == DP_OP_PREFIX ? 0 : (op->at < n ? op->at : n);
			if (n + tl >= len)
				return ENOSPC;
			memmove(out + at + tl, out + at, n - at + 1);
			memcpy(out + at, op->text, tl);
			break;
		case DP_OP_DELETE:
			at = op->at < n ? op->at : n;
			cnt = op->count < n - at ? op->count : n - at;
			memmove(out + at, out + at + cnt, n - at - cnt + 1);
			break;
		case DP_OP_REPLACE:
			if (d->op_has_re[rule][o] &&
			    substitute(&d->op_re[rule][o], op->text, out, len))
				return ENOSPC;
			break;
		case DP_OP_UNSET:
			break;
		}
	}
	return out[0] ? 0 : EINVAL;
}

size_t dp_gateways(const struct dp *d, int rule, uint64_t rnd, unsigned *out, size_t max)
{
	const struct dp_rule *ru = dp_rule(d, rule);
	size_t n = 0;

	if (!ru)
		return 0;
	for (size_t k = 0; k < ru->nroute && n < max; k++) {
		const struct dp_group *g = &d->cfg.grp[ru->route[k]];
		bool used[DP_MAX_MEMBERS] = {false};
		for (size_t picked = 0; picked < g->n && n < max; picked++) {
			/* the lowest priority left; among those a weighted draw */
			unsigned best_prio = UINT32_MAX, total = 0;
			for (size_t m = 0; m < g->n; m++) {
				if (!used[m] && g->m[m].priority < best_prio)
					best_prio = g->m[m].priority;
			}
			for (size_t m = 0; m < g->n; m++) {
				if (!used[m] && g->m[m].priority == best_prio)
					total += g->m[m].weight ? g->m[m].weight : 1;
			}
			rnd = rnd * 6364136223846793005ULL + 1442695040888963407ULL;
			unsigned draw = total ? (unsigned)((rnd >> 33) % total) : 0;
			size_t chosen = 0;
			for (size_t m = 0; m < g->n; m++) {
				unsigned w;
				if (used[m] || g->m[m].priority != best_prio)
					continue;
				chosen = m;
				w = g->m[m].weight ? g->m[m].weight : 1;
				if (draw < w)
					break;
				draw -= w;
			}
			used[chosen] = true;
			unsigned gw = g->m[chosen].gw;
			bool dup = false;
			for (size_t i = 0; i < n; i++)
				dup |= out[i] == gw;
			if (!dup && !atomic_load(&d->down[gw]))
				out[n++] = gw;
		}
	}
	return n;
}

const struct dp_gateway *dp_gateway(const struct dp *d, unsigned gw)
{
	return gw < d->cfg.ngw ? &d->cfg.gw[gw] : NULL;
}

size_t dp_gateway_count(const struct dp *d)
{
	return d->cfg.ngw;
}

void dp_gateway_set_up(struct dp *d, unsigned gw, bool up)
{
	if (gw < DP_MAX_GATEWAYS)
		atomic_store(&d->down[gw], !up);
}

bool dp_gateway_is_up(const struct dp *d, unsigned gw)
{
	return gw < DP_MAX_GATEWAYS && !atomic_load(&d->down[gw]);
}

static unsigned timeout_in_force(const struct dp_timeout *own, unsigned dflt)
{
	switch (own->kind) {
	case DP_TIMEOUT_OFF:
		return 0;
	case DP_TIMEOUT_SET:
		return own->ms;
	default:
		return dflt;
	}
}

unsigned dp_gateway_timeout_ms(const struct dp *d, unsigned gw)
{
	const struct dp_gateway *g = dp_gateway(d, gw);

	return g ? timeout_in_force(&g->timeout, d->cfg.timeout_ms) : 0;
}

unsigned dp_gateway_ring_timeout_ms(const struct dp *d, unsigned gw)
{
	const struct dp_gateway *g = dp_gateway(d, gw);

	return g ? timeout_in_force(&g->ring_timeout, d->cfg.ring_timeout_ms) : 0;
}

unsigned dp_probe_interval_s(const struct dp *d)
{
	return d ? d->cfg.probe_interval_s : 0;
}

/*
 * The text form (`switchboard route`, the store)
 */

bool dp_digits_ok(sv_t s, bool plus)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		char ch = s.p[i];
		if (!((ch >= '0' && ch <= '9') || ch == '*' || ch == '#' ||
		      (plus && i == 0 && ch == '+')))
			return false;
	}
	return true;
}

/* An IPv4 or IPv6 address, or a host name: labels of 1 to 63 letters, digits and inner '-'. */
static bool host_ok(sv_t h)
{
	char tmp[130];
	unsigned char bin[16];
	size_t label = 0;

	if (h.len == 0 || h.len >= sizeof(tmp) || h.len > 253)
		return false;
	memcpy(tmp, h.p, h.len);
	tmp[h.len] = '\0';
	if (inet_pton(AF_INET, tmp, bin) == 1 || inet_pton(AF_INET6, tmp, bin) == 1)
		return true;
	for (size_t i = 0; i <= h.len; i++) {
		char ch = i < h.len ? h.p[i] : '.';
		if (ch == '.') {
			if (label == 0 || label > 63 || h.p[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || (ch == '-' && label > 0)))
			return false;
		label++;
	}
	return true;
}

static bool hex_ok(sv_t v, size_t len)
{
	if (v.len != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = v.p[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return true;
}

/* A value with no space or control character, copied whole into out. */
static int word_copy(sv_t key, sv_t v, char *out, size_t size, char *err, size_t errlen)
{
	for (size_t i = 0; i < v.len; i++) {
		if ((unsigned char)v.p[i] <= ' ' || v.p[i] == 0x7f) {
			snprintf(err, errlen, "%.*s: no spaces or control characters", (int)key.len,
				 key.p);
			return EINVAL;
		}
	}
	if (v.len == 0 || v.len >= size) {
		snprintf(err, errlen, "%.*s: 1 to %zu characters", (int)key.len, key.p, size - 1);
		return EINVAL;
	}
	memcpy(out, v.p, v.len);
	out[v.len] = '\0';
	return 0;
}

static int uint_in(sv_t key, sv_t v, unsigned lo, unsigned hi, unsigned *out, char *err,
		   size_t errlen)
{
	uint32_t n;

	if (sv_to_u32(v, &n) || n < lo || n > hi) {
		snprintf(err, errlen, "%.*s: '%.*s' is not a number from %u to %u", (int)key.len,
			 key.p, (int)(v.len > 32 ? 32 : v.len), v.p, lo, hi);
		return EINVAL;
	}
	*out = n;
	return 0;
}

static int yes_no(sv_t key, sv_t v, bool *out, char *err, size_t errlen)
{
	if (sv_eq(v, SV("yes")) || sv_eq(v, SV("true")) || sv_eq(v, SV("on"))) {
		*out = true;
		return 0;
	}
	if (sv_eq(v, SV("no")) || sv_eq(v, SV("false")) || sv_eq(v, SV("off"))) {
		*out = false;
		return 0;
	}
	snprintf(err, errlen, "%.*s: yes or no", (int)key.len, key.p);
	return EINVAL;
}

/*
 * A duration: seconds ("3", "3s") or milliseconds ("1500ms"), or 0 / "off"
 * for none, from lo to hi ms. Only digits and the unit: no sign, no space,
 * no fraction (an operator's "1.5" is refused with the reason, not read as 1).
 */
static int duration_parse(sv_t key, sv_t v, unsigned lo, unsigned hi, unsigned *ms, char *err,
			  size_t errlen, const char *also)
{
	uint32_t n;
	uint64_t total;
	sv_t num = v;
	unsigned mult = 1000;

	if (sv_eq(v, SV("off")) || sv_eq(v, SV("none"))) {
		*ms = 0;
		return 0;
	}
	if (v.len > 2 && sv_eq(sv_sub(v, v.len - 2, v.len), SV("ms"))) {
		num = sv_sub(v, 0, v.len - 2);
		mult = 1;
	} else if (v.len > 1 && v.p[v.len - 1] == 's') {
		num = sv_sub(v, 0, v.len - 1);
	}
	if (num.len == 0 || num.len > 10 || sv_to_u32(num, &n))
		goto bad;
	total = (uint64_t)n * mult;
	if (total == 0) {
		*ms = 0;
		return 0;
	}
	if (total < lo || total > hi)
		goto bad;
	*ms = (unsigned)total;
	return 0;
bad:
	snprintf(err, errlen,
		 "%.*s: '%.*s' is not a duration from %u %s to %u s (seconds, or milliseconds as "
		 "1500ms; 0 or off for none%s)",
		 (int)key.len, key.p, (int)(v.len > 32 ? 32 : v.len), v.p,
		 lo % 1000 ? lo : lo / 1000, lo % 1000 ? "ms" : "s", hi / 1000, also);
	return EINVAL;
}

void dp_duration_print(unsigned ms, char *out, size_t len)
{
	if (ms == 0)
		snprintf(out, len, "off");
	else if (ms % 1000 == 0)
		snprintf(out, len, "%u", ms / 1000);
	else
		snprintf(out, len, "%ums", ms);
}

/* A gateway's own timeout: a duration, "off" (none), or "default" (the dialplan's). */
static int gateway_timeout_set(sv_t key, sv_t v, unsigned lo, unsigned hi, struct dp_timeout *t,
			       char *err, size_t errlen)
{
	unsigned ms;
	int rc;

	if (sv_eq(v, SV("default"))) {
		*t = (struct dp_timeout){DP_TIMEOUT_DEFAULT, 0};
		return 0;
	}
	rc = duration_parse(key, v, lo, hi, &ms, err, errlen, "; default for the dialplan's");
	if (rc)
		return rc;
	*t = ms ? (struct dp_timeout){DP_TIMEOUT_SET, ms} : (struct dp_timeout){DP_TIMEOUT_OFF, 0};
	return 0;
}

const char *dp_config_key(sv_t key)
{
	if (sv_eq(key, SV("probe_interval")))
		return "probe_interval";
	if (sv_eq(key, SV("timeout")) || sv_eq(key, SV("gateway_timeout")))
		return "gateway_timeout";
	if (sv_eq(key, SV("ring_timeout")) || sv_eq(key, SV("gateway_ring_timeout")))
		return "gateway_ring_timeout";
	return NULL;
}

int dp_config_set(struct dp_config *c, sv_t key, sv_t v, char *err, size_t errlen)
{
	if (sv_eq(key, SV("probe_interval"))) {
		sv_t num = v.len > 1 && v.p[v.len - 1] == 's' ? sv_sub(v, 0, v.len - 1) : v;
		uint32_t n;
		if (sv_eq(v, SV("off"))) {
			c->probe_interval_s = 0;
			return 0;
		}
		if (num.len == 0 || num.len > 10 || sv_to_u32(num, &n) ||
		    n > DP_PROBE_INTERVAL_MAX_S) {
			snprintf(err, errlen,
				 "probe_interval: '%.*s' is not a number of seconds from 0 to %u "
				 "(0 or off: no probes)",
				 (int)(v.len > 32 ? 32 : v.len), v.p, DP_PROBE_INTERVAL_MAX_S);
			return EINVAL;
		}
		c->probe_interval_s = n;
		return 0;
	}
	if (sv_eq(key, SV("timeout")) || sv_eq(key, SV("gateway_timeout")))
		return duration_parse(key, v, DP_TIMEOUT_MIN_MS, DP_TIMEOUT_MAX_MS, &c->timeout_ms,
				      err, errlen, "");
	if (sv_eq(key, SV("ring_timeout")) || sv_eq(key, SV("gateway_ring_timeout")))
		return duration_parse(key, v, DP_RING_TIMEOUT_MIN_MS, DP_RING_TIMEOUT_MAX_MS,
				      &c->ring_timeout_ms, err, errlen, "");
	snprintf(err, errlen, "unknown setting '%.*s' (probe_interval, timeout, ring_timeout)",
		 (int)(key.len > 32 ? 32 : key.len), key.p);
	return ENOENT;
}

int dp_config_print(const struct dp_config *c, const char *key, char *out, size_t len)
{
	if (len < 16)
		return ENOSPC;
	if (strcmp(key, "probe_interval") == 0)
		snprintf(out, len, "%u", c->probe_interval_s);
	else if (strcmp(key, "gateway_timeout") == 0)
		dp_duration_print(c->timeout_ms, out, len);
	else if (strcmp(key, "gateway_ring_timeout") == 0)
		dp_duration_print(c->ring_timeout_ms, out, len);
	else
		return ENOENT;
	return 0;
}

int dp_gateway_set(struct dp_gateway *g, sv_t key, sv_t v, char *err, size_t errlen)
{
	unsigned n;
	int rc;

	if (sv_eq(key, SV("address"))) {
		if (!host_ok(v)) {
			snprintf(err, errlen, "address: '%.*s' is not a host name or IP address",
				 (int)(v.len > 64 ? 64 : v.len), v.p);
			return EINVAL;
		}
		return word_copy(key, v, g->host, sizeof(g->host), err, errlen);
	}
	if (sv_eq(key, SV("port"))) {
		rc = uint_in(key, v, 1, 65535, &n, err, errlen);
		if (!rc)
			g->port = (uint16_t)n;
		return rc;
	}
	if (sv_eq(key, SV("transport"))) {
		if (!sv_eq(v, SV("udp")) && !sv_eq(v, SV("tcp"))) {
			snprintf(err, errlen, "transport: udp or tcp");
			return EINVAL;
		}
		g->tcp = v.p[0] == 't';
		return 0;
	}
	if (sv_eq(key, SV("probe")))
		return yes_no(key, v, &g->probe, err, errlen);
	if (sv_eq(key, SV("auth_user")))
		return word_copy(key, v, g->cred.user, sizeof(g->cred.user), err, errlen);
	if (sv_eq(key, SV("auth_realm")))
		return word_copy(key, v, g->cred.realm, sizeof(g->cred.realm), err, errlen);
	if (sv_eq(key, SV("ha1")) || sv_eq(key, SV("ha1_sha256"))) {
		bool md5 = key.len == 3;
		if (!hex_ok(v, md5 ? 32 : 64)) {
			snprintf(err, errlen, "%.*s: %u lower-case hex digits", (int)key.len, key.p,
				 md5 ? 32u : 64u);
			return EINVAL;
		}
		return word_copy(key, v, md5 ? g->cred.ha1_md5 : g->cred.ha1_sha256,
				 md5 ? sizeof(g->cred.ha1_md5) : sizeof(g->cred.ha1_sha256), err,
				 errlen);
	}
	if (sv_eq(key, SV("timeout")))
		return gateway_timeout_set(key, v, DP_TIMEOUT_MIN_MS, DP_TIMEOUT_MAX_MS,
					   &g->timeout, err, errlen);
	if (sv_eq(key, SV("ring_timeout")))
		return gateway_timeout_set(key, v, DP_RING_TIMEOUT_MIN_MS, DP_RING_TIMEOUT_MAX_MS,
					   &g->ring_timeout, err, errlen);
	snprintf(err, errlen,
		 "unknown gateway setting '%.*s' (address, port, transport, probe, auth_user, "
		 "auth_realm, timeout, ring_timeout)",
		 (int)(key.len > 32 ? 32 : key.len), key.p);
	return ENOENT;
}

int dp_member_parse(sv_t text, struct dp_member *m, char *err, size_t errlen)
{
	ptrdiff_t c1 = sv_find(text, ':');
	sv_t name = c1 < 0 ? text : sv_sub(text, 0, (size_t)c1);
	int rc;

	memset(m, 0, sizeof(*m));
	m->weight = 1;
	rc = word_copy(SV("gateway"), name, m->name, sizeof(m->name), err, errlen);
	if (rc || c1 < 0)
		return rc;
	text = sv_sub(text, (size_t)c1 + 1, text.len);
	ptrdiff_t c2 = sv_find(text, ':');
	rc = uint_in(SV("priority"), c2 < 0 ? text : sv_sub(text, 0, (size_t)c2), 0, 1000,
		     &m->priority, err, errlen);
	if (!rc && c2 >= 0)
		rc = uint_in(SV("weight"), sv_sub(text, (size_t)c2 + 1, text.len), 1, 1000,
			     &m->weight, err, errlen);
	return rc;
}

static int op_add(struct dp_rule *r, struct dp_op **op, char *err, size_t errlen)
{
	if (r->nops >= DP_MAX_OPS) {
		snprintf(err, errlen, "a rule has at most %d transform steps", DP_MAX_OPS);
		return EINVAL;
	}
	*op = &r->ops[r->nops];
	memset(*op, 0, sizeof(**op));
	return 0;
}

/* "POS:TEXT" into at and the rest. */
static int pos_pair(sv_t key, sv_t v, unsigned *at, sv_t *rest, char *err, size_t errlen)
{
	ptrdiff_t c = sv_find(v, ':');

	if (c < 0) {
		snprintf(err, errlen, "%.*s: POSITION:%s", (int)key.len, key.p,
			 key.p[0] == 'i' ? "DIGITS" : "COUNT");
		return EINVAL;
	}
	*rest = sv_sub(v, (size_t)c + 1, v.len);
	return uint_in(key, sv_sub(v, 0, (size_t)c), 0, DP_CALLEE_DIGITS_MAX, at, err, errlen);
}

static int op_replace(sv_t v, struct dp_op *op, char *err, size_t errlen)
{
	char d = v.len ? v.p[0] : 0;
	sv_t body = v.len > 1 ? sv_sub(v, 1, v.len) : SV_NULL;
	ptrdiff_t mid = d ? sv_find(body, d) : -1;
	sv_t re, with;

	if (!d || body.len < 3 || mid <= 0 || body.p[body.len - 1] != d ||
	    (size_t)mid + 1 >= body.len) {
		snprintf(err, errlen, "replace: /REGEX/WITH/ (any delimiter, e.g. |^0|+49|)");
		return EINVAL;
	}
	re = sv_sub(body, 0, (size_t)mid);
	with = sv_sub(body, (size_t)mid + 1, body.len - (size_t)mid - 2);
	if (sv_find(with, d) >= 0) {
		snprintf(err, errlen, "replace: the delimiter '%c' appears more than three times",
			 d);
		return EINVAL;
	}
	op->kind = DP_OP_REPLACE;
	if (word_copy(SV("replace"), re, op->regex, sizeof(op->regex), err, errlen))
		return EINVAL;
	if (with.len && word_copy(SV("replace"), with, op->text, sizeof(op->text), err, errlen))
		return EINVAL;
	if (!regex_ok(op->regex)) {
		snprintf(err, errlen,
			 "replace: '%s' is not a valid extended regular expression (or stacks "
			 "repetitions)",
			 op->regex);
		return EINVAL;
	}
	return 0;
}

int dp_rule_set(struct dp_rule *r, sv_t key, sv_t v, char *err, size_t errlen)
{
	struct dp_op *op;
	sv_t rest;
	int rc;

	if (sv_eq(key, SV("route"))) {
		/* into a copy: a refused list leaves the rule's as it was */
		char names[DP_MAX_ROUTE][DP_NAME_MAX];
		size_t n = 0;
		memset(names, 0, sizeof(names));
		while (v.len) {
			ptrdiff_t c = sv_find(v, ',');
			sv_t name = c < 0 ? v : sv_sub(v, 0, (size_t)c);
			if (n >= DP_MAX_ROUTE) {
				snprintf(err, errlen, "route: at most %d gateway groups",
					 DP_MAX_ROUTE);
				return EINVAL;
			}
			rc = word_copy(key, name, names[n], DP_NAME_MAX, err, errlen);
			if (rc)
				return rc;
			n++;
			v = c < 0 ? SV_NULL : sv_sub(v, (size_t)c + 1, v.len);
		}
		if (n == 0) {
			snprintf(err, errlen, "route: one or more gateway groups, comma-separated");
			return EINVAL;
		}
		memcpy(r->route_names, names, sizeof(names));
		r->nroute = n;
		return 0;
	}
	if (sv_eq(key, SV("redirect")))
		return yes_no(key, v, &r->redirect, err, errlen);
	if (!sv_eq(key, SV("strip")) && !sv_eq(key, SV("prefix")) && !sv_eq(key, SV("insert")) &&
	    !sv_eq(key, SV("delete")) && !sv_eq(key, SV("replace"))) {
		snprintf(err, errlen,
			 "unknown rule setting '%.*s' (route, redirect, strip, prefix, insert, "
			 "delete, replace)",
			 (int)(key.len > 32 ? 32 : key.len), key.p);
		return ENOENT;
	}
	if ((rc = op_add(r, &op, err, errlen)))
		return rc;
	switch (key.p[0]) {
	case 's':
		op->kind = DP_OP_STRIP;
		rc = uint_in(key, v, 1, DP_CALLEE_DIGITS_MAX, &op->count, err, errlen);
		break;
	case 'p':
		op->kind = DP_OP_PREFIX;
		if (!dp_digits_ok(v, true)) {
			snprintf(err, errlen, "prefix: digits, with an optional leading '+'");
			rc = EINVAL;
		} else {
			rc = word_copy(key, v, op->text, sizeof(op->text), err, errlen);
		}
		break;
	case 'i':
		op->kind = DP_OP_INSERT;
		rc = pos_pair(key, v, &op->at, &rest, err, errlen);
		if (!rc && !dp_digits_ok(rest, false)) {
			snprintf(err, errlen, "insert: POSITION:DIGITS");
			rc = EINVAL;
		}
		if (!rc)
			rc = word_copy(key, rest, op->text, sizeof(op->text), err, errlen);
		break;
	case 'd':
		op->kind = DP_OP_DELETE;
		rc = pos_pair(key, v, &op->at, &rest, err, errlen);
		if (!rc)
			rc = uint_in(key, rest, 1, DP_CALLEE_DIGITS_MAX, &op->count, err, errlen);
		break;
	default:
		rc = op_replace(v, op, err, errlen);
		break;
	}
	if (!rc)
		r->nops++;
	else
		memset(op, 0, sizeof(*op)); /* a refused step leaves nothing behind */
	return rc;
}

int dp_rule_match_parse(sv_t text, struct dp_rule *r, char *err, size_t errlen)
{
	r->prefix[0] = r->regex[0] = '\0';
	if (text.len >= 2 && text.p[0] == '/' && text.p[text.len - 1] == '/') {
		if (word_copy(SV("regex"), sv_sub(text, 1, text.len - 2), r->regex,
			      sizeof(r->regex), err, errlen))
			return EINVAL;
		if (!regex_ok(r->regex)) {
			snprintf(err, errlen,
				 "'%s' is not a valid extended regular expression (or stacks "
				 "repetitions)",
				 r->regex);
			return EINVAL;
		}
		return 0;
	}
	if (!dp_digits_ok(text, true) || text.len >= sizeof(r->prefix)) {
		snprintf(
		    err, errlen,
		    "'%.*s' is neither a number prefix (up to %d digits, optional leading '+') "
		    "nor /REGEX/",
		    (int)(text.len > 40 ? 40 : text.len), text.p, DP_PREFIX_MAX - 1);
		return EINVAL;
	}
	memcpy(r->prefix, text.p, text.len);
	r->prefix[text.len] = '\0';
	return 0;
}

/* Each space-separated word of line through take(); stops at the first failure. */
static int each_word(sv_t line, int (*take)(void *obj, sv_t word, char *err, size_t errlen),
		     void *obj, char *err, size_t errlen)
{
	while (line.len) {
		ptrdiff_t sp = sv_find(line, ' ');
		sv_t w = sp < 0 ? line : sv_sub(line, 0, (size_t)sp);
		int rc = w.len ? take(obj, w, err, errlen) : 0;
		if (rc)
			return rc;
		line = sp < 0 ? SV_NULL : sv_sub(line, (size_t)sp + 1, line.len);
	}
	return 0;
}

/* "key=value" split; EINVAL when there is no '='. */
static int key_value(sv_t w, sv_t *k, sv_t *v, char *err, size_t errlen)
{
	ptrdiff_t eq = sv_find(w, '=');

	if (eq < 0) {
		snprintf(err, errlen, "'%.*s' is not KEY=VALUE", (int)(w.len > 40 ? 40 : w.len),
			 w.p);
		return EINVAL;
	}
	*k = sv_sub(w, 0, (size_t)eq);
	*v = sv_sub(w, (size_t)eq + 1, w.len);
	return 0;
}

static int gateway_word(void *obj, sv_t w, char *err, size_t errlen)
{
	sv_t k, v;
	int rc = key_value(w, &k, &v, err, errlen);

	return rc ? rc : dp_gateway_set(obj, k, v, err, errlen);
}

static int rule_word(void *obj, sv_t w, char *err, size_t errlen)
{
	sv_t k, v;
	int rc = key_value(w, &k, &v, err, errlen);

	return rc ? rc : dp_rule_set(obj, k, v, err, errlen);
}

static int member_word(void *obj, sv_t w, char *err, size_t errlen)
{
	struct dp_group *g = obj;
	int rc;

	if (g->n >= DP_MAX_MEMBERS) {
		snprintf(err, errlen, "a group has at most %d gateways", DP_MAX_MEMBERS);
		return EINVAL;
	}
	rc = dp_member_parse(w, &g->m[g->n], err, errlen);
	if (!rc)
		g->n++;
	return rc;
}

int dp_gateway_parse(struct dp_gateway *g, sv_t line, char *err, size_t errlen)
{
	return each_word(line, gateway_word, g, err, errlen);
}

int dp_rule_parse(struct dp_rule *r, sv_t line, char *err, size_t errlen)
{
	return each_word(line, rule_word, r, err, errlen);
}

int dp_group_parse(struct dp_group *grp, sv_t line, char *err, size_t errlen)
{
	return each_word(line, member_word, grp, err, errlen);
}

void dp_rule_key(const struct dp_rule *r, char *out, size_t len)
{
	if (r->prefix[0])
		snprintf(out, len, "%s", r->prefix);
	else
		snprintf(out, len, "/%s/", r->regex);
}

/* Appends one " key=value" word; EILSEQ when value holds a space. */
static int put_word(char *out, size_t len, size_t *n, const char *key, const char *value)
{
	int k;

	if (strpbrk(value, " \t\r\n"))
		return EILSEQ;
	k = snprintf(out + *n, len - *n, "%s%s=%s", *n ? " " : "", key, value);
	if (k < 0 || (size_t)k >= len - *n)
		return ENOSPC;
	*n += (size_t)k;
	return 0;
}

int dp_gateway_print(const struct dp_gateway *g, char *out, size_t len)
{
	char port[16];
	size_t n = 0;
	int rc;

	out[0] = '\0';
	snprintf(port, sizeof(port), "%u", g->port);
	rc = put_word(out, len, &n, "address", g->host);
	if (!rc && g->port)
		rc = put_word(out, len, &n, "port", port);
	if (!rc)
		rc = put_word(out, len, &n, "transport", g->tcp ? "tcp" : "udp");
	if (!rc)
		rc = put_word(out, len, &n, "probe", g->probe ? "yes" : "no");
	if (!rc && g->cred.user[0])
		rc = put_word(out, len, &n, "auth_user", g->cred.user);
	if (!rc && g->cred.realm[0])
		rc = put_word(out, len, &n, "auth_realm", g->cred.realm);
	if (!rc && g->cred.ha1_md5[0])
		rc = put_word(out, len, &n, "ha1", g->cred.ha1_md5);
	if (!rc && g->cred.ha1_sha256[0])
		rc = put_word(out, len, &n, "ha1_sha256", g->cred.ha1_sha256);
	if (!rc && g->timeout.kind != DP_TIMEOUT_DEFAULT) {
		dp_duration_print(g->timeout.kind == DP_TIMEOUT_SET ? g->timeout.ms : 0, port,
				  sizeof(port));
		rc = put_word(out, len, &n, "timeout", port);
	}
	if (!rc && g->ring_timeout.kind != DP_TIMEOUT_DEFAULT) {
		dp_duration_print(g->ring_timeout.kind == DP_TIMEOUT_SET ? g->ring_timeout.ms : 0,
				  port, sizeof(port));
		rc = put_word(out, len, &n, "ring_timeout", port);
	}
	return rc;
}

int dp_group_print(const struct dp_group *g, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < g->n; i++) {
		int k = snprintf(out + n, len - n, "%s%s:%u:%u", i ? " " : "", g->m[i].name,
				 g->m[i].priority, g->m[i].weight);
		if (k < 0 || (size_t)k >= len - n)
			return ENOSPC;
		n += (size_t)k;
	}
	return 0;
}

int dp_rule_print(const struct dp_rule *r, char *out, size_t len)
{
	/* the longest value: every route group, or a replace step */
	char v[DP_MAX_ROUTE * DP_NAME_MAX + DP_REGEX_MAX + DP_TEXT_MAX + 8];
	size_t n = 0;
	int rc = 0;

	out[0] = '\0';
	v[0] = '\0';
	for (size_t i = 0; i < r->nroute; i++) {
		size_t l = strlen(v);
		snprintf(v + l, sizeof(v) - l, "%s%s", i ? "," : "", r->route_names[i]);
	}
	if (r->nroute)
		rc = put_word(out, len, &n, "route", v);
	if (!rc && r->redirect)
		rc = put_word(out, len, &n, "redirect", "yes");
	for (size_t i = 0; i < r->nops && !rc; i++) {
		const struct dp_op *op = &r->ops[i];
		const char *delims = "/|!#%,", *d = delims;
		switch (op->kind) {
		case DP_OP_STRIP:
			snprintf(v, sizeof(v), "%u", op->count);
			rc = put_word(out, len, &n, "strip", v);
			break;
		case DP_OP_PREFIX:
			rc = put_word(out, len, &n, "prefix", op->text);
			break;
		case DP_OP_INSERT:
			snprintf(v, sizeof(v), "%u:%s", op->at, op->text);
			rc = put_word(out, len, &n, "insert", v);
			break;
		case DP_OP_DELETE:
			snprintf(v, sizeof(v), "%u:%u", op->at, op->count);
			rc = put_word(out, len, &n, "delete", v);
			break;
		case DP_OP_REPLACE:
			while (*d && (strchr(op->regex, *d) || strchr(op->text, *d)))
				d++;
			if (!*d)
				return EILSEQ;
			snprintf(v, sizeof(v), "%c%s%c%s%c", *d, op->regex, *d, op->text, *d);
			rc = put_word(out, len, &n, "replace", v);
			break;
		default:
			rc = EINVAL;
			break;
		}
	}
	return rc;
}

void dp_cred_hash(struct dp_cred *cred, sv_t password)
{
	store_ha1_md5(sv_cstr(cred->user), sv_cstr(cred->realm), password, cred->ha1_md5);
	store_ha1_sha256(sv_cstr(cred->user), sv_cstr(cred->realm), password, cred->ha1_sha256);
}

/* The address of a gateway given by number equals sa (address and port). */
static bool gateway_at(const struct dp_gateway *g, const struct sockaddr *sa)
{
	unsigned port = g->port ? g->port : 5060;
	unsigned char bin[16];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		return ntohs(a->sin_port) == port && inet_pton(AF_INET, g->host, bin) == 1 &&
		       memcmp(bin, &a->sin_addr, 4) == 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		return ntohs(a->sin6_port) == port && inet_pton(AF_INET6, g->host, bin) == 1 &&
		       memcmp(bin, &a->sin6_addr, 16) == 0;
	}
	return false;
}

int dp_gateway_find(const struct dp *d, const struct sockaddr *sa, sv_t uri_host)
{
	for (size_t i = 0; d && i < d->cfg.ngw; i++) {
		const struct dp_gateway *g = &d->cfg.gw[i];
		unsigned char bin[16];
		bool numeric =
		    inet_pton(AF_INET, g->host, bin) == 1 || inet_pton(AF_INET6, g->host, bin) == 1;
		/* by name only for one given by name: an IP gateway is that address and port */
		if ((sa && gateway_at(g, sa)) || (!numeric && sv_ieq(uri_host, sv_cstr(g->host))))
			return (int)i;
	}
	return -1;
}
