/*
 * dialplan.h - number analysis and PSTN gateway selection.
 *
 * A called number that is not one of our users is matched against the
 * dialplan rules: the longest matching prefix wins; regular-expression rules
 * are tried in order when no prefix rule matches. The rule transforms the
 * number (strip, add, insert or delete digits at any position, regex
 * substitution) and names an ordered list of gateway groups; within a group
 * gateways are tried by priority, and by weight (randomly, in proportion)
 * among equal priorities. Gateways that fail OPTIONS probes are skipped
 * until they answer again.
 *
 * The configuration part (struct dp_config) is plain data filled by the
 * config loader; struct dp is built from it at start (compiled regexes,
 * gateway state) and shared by the workers.
 */
#ifndef SB_SERVICES_DIALPLAN_H
#define SB_SERVICES_DIALPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sv.h"

#define DP_NAME_MAX	     32
#define DP_MAX_GATEWAYS	     64
#define DP_MAX_GROUPS	     32
#define DP_MAX_MEMBERS	     16
#define DP_MAX_RULES	     128
#define DP_MAX_OPS	     6
#define DP_MAX_ROUTE	     8
#define DP_PREFIX_MAX	     24
#define DP_TEXT_MAX	     32
#define DP_REGEX_MAX	     96
#define DP_NUMBER_MAX	     64 /* a transformed number, with room beyond 28 digits for a prefix */
#define DP_CALLEE_DIGITS     24
#define DP_CALLEE_DIGITS_MAX 28
#define DP_CALLER_DIGITS     20

enum dp_op_kind {
	DP_OP_STRIP = 0, /* delete count leading digits */
	DP_OP_PREFIX,	 /* add text in front */
	DP_OP_INSERT,	 /* insert text at position at */
	DP_OP_DELETE,	 /* delete count digits at position at */
	DP_OP_REPLACE,	 /* regex substitution: regex -> text (\1..\9 back-references) */
	DP_OP_UNSET,	 /* while parsing */
};

struct dp_op {
	enum dp_op_kind kind;
	unsigned at, count;
	char text[DP_TEXT_MAX];
	char regex[DP_REGEX_MAX];
};

struct dp_rule {
	char prefix[DP_PREFIX_MAX]; /* "" for a regex rule */
	char regex[DP_REGEX_MAX];
	struct dp_op ops[DP_MAX_OPS];
	size_t nops;
	char route_names[DP_MAX_ROUTE][DP_NAME_MAX];
	unsigned route[DP_MAX_ROUTE]; /* group indexes, resolved by dp_config_resolve */
	size_t nroute;
	bool redirect; /* answer 302 to the first gateway instead of proxying */
	unsigned line;
};

struct dp_gateway {
	char name[DP_NAME_MAX];
	char host[128]; /* IP address or host name */
	uint16_t port;	/* 0 = by DNS (SRV) or 5060 */
	bool tcp;
	bool probe; /* OPTIONS probing (default on) */
	unsigned line;
};

struct dp_member {
	char name[DP_NAME_MAX];
	unsigned gw; /* resolved index */
	unsigned priority;
	unsigned weight;
	unsigned line;
};

struct dp_group {
	char name[DP_NAME_MAX];
	struct dp_member m[DP_MAX_MEMBERS];
	size_t n;
	unsigned line;
};

struct dp_config {
	struct dp_gateway gw[DP_MAX_GATEWAYS];
	size_t ngw;
	struct dp_group grp[DP_MAX_GROUPS];
	size_t ngrp;
	struct dp_rule rules[DP_MAX_RULES];
	size_t nrules;
	unsigned max_callee_digits; /* 24, up to 28 */
	unsigned probe_interval_s;  /* 30; 0 = no probing */
};

struct dp;

/*
 * Resolves the names (group members to gateways, rule routes to groups) and
 * checks the regexes. EINVAL with the message and the line of the culprit.
 */
int dp_config_resolve(struct dp_config *c, char *err, size_t errlen, unsigned *line);

int dp_create(const struct dp_config *c, struct dp **out);
void dp_destroy(struct dp *d);

/* A dialable number: optional '+', then digits, '*' and '#'. */
bool dp_is_number(sv_t user);
/* Digits of a number ('+' not counted). */
size_t dp_digits(sv_t number);

/* The rule for a number, or -1. */
int dp_match(const struct dp *d, sv_t number);
const struct dp_rule *dp_rule(const struct dp *d, int rule);
/* Applies the rule's transformations; 0, or ENOSPC / EINVAL. */
int dp_transform(const struct dp *d, int rule, sv_t number, char *out, size_t len);
/*
 * The gateways to try, in order: the rule's groups in order; in a group by
 * priority, equal priorities shuffled by weight (rnd drives the draw);
 * gateways marked down are left out, each gateway at most once.
 */
size_t dp_gateways(const struct dp *d, int rule, uint64_t rnd, unsigned *out, size_t max);
const struct dp_gateway *dp_gateway(const struct dp *d, unsigned gw);
size_t dp_gateway_count(const struct dp *d);
void dp_gateway_set_up(struct dp *d, unsigned gw, bool up);
bool dp_gateway_is_up(const struct dp *d, unsigned gw);

#endif
