/*
 * dialplan.c - matching, transforming and gateway ordering for numbers.
 *
 * Tables are small (at most DP_MAX_RULES rules) and read-only after start,
 * so matching is a scan with no locks; only the gateways' up/down state
 * changes, as atomics written by the prober.
 */
#include "services/dialplan.h"

#include <errno.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dp {
	struct dp_config cfg;
	regex_t rule_re[DP_MAX_RULES];
	bool rule_has_re[DP_MAX_RULES];
	regex_t op_re[DP_MAX_RULES][DP_MAX_OPS];
	bool op_has_re[DP_MAX_RULES][DP_MAX_OPS];
	atomic_bool down[DP_MAX_GATEWAYS];
};

static int find_gateway(const struct dp_config *c, const char *name)
{
	for (size_t i = 0; i < c->ngw; i++) {
		if (strcmp(c->gw[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static int find_group(const struct dp_config *c, const char *name)
{
	for (size_t i = 0; i < c->ngrp; i++) {
		if (strcmp(c->grp[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static bool regex_ok(const char *re)
{
	regex_t r;

	if (regcomp(&r, re, REG_EXTENDED) != 0)
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
			int k = find_gateway(c, gr->m[m].name);
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
				 "dialplan rule: '%s' is not a valid extended regular expression",
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
			int g = find_group(c, ru->route_names[k]);
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

int dp_create(const struct dp_config *c, struct dp **out)
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
	for (size_t g = 0; g < DP_MAX_GATEWAYS; g++)
		atomic_init(&d->down[g], false);
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
