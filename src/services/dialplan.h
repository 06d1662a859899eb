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

struct sockaddr;

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

/*
 * What we answer a gateway's 401/407 with (outbound digest): the account and
 * its realm, and only the HA1 hashes, never the password.
 */
struct dp_cred {
	char user[64];	  /* "" = the gateway does not challenge us */
	char realm[128];  /* the realm the HA1s are for; another realm's challenge fails */
	char ha1_md5[33]; /* lower-case hex, "" = unknown */
	char ha1_sha256[65];
};

/* Fills both HA1s from the password for cred's user and realm (the password is not kept). */
void dp_cred_hash(struct dp_cred *cred, sv_t password);

/*
 * A gateway's own failover timeout (or ring timeout): the dialplan's default,
 * none at all, or its own value. Zero (DP_TIMEOUT_DEFAULT) is the default.
 */
enum dp_timeout_kind {
	DP_TIMEOUT_DEFAULT = 0, /* the dialplan's gateway_timeout / gateway_ring_timeout */
	DP_TIMEOUT_OFF,		/* none for this gateway: Timer B / Timer C alone */
	DP_TIMEOUT_SET,		/* ms below */
};

struct dp_timeout {
	enum dp_timeout_kind kind;
	unsigned ms;
};

/* Failover timeout ("no provisional response"): 100 ms to 300 s; 3 s by default. */
#define DP_TIMEOUT_MIN_MS     100u
#define DP_TIMEOUT_MAX_MS     300000u
#define DP_TIMEOUT_DEFAULT_MS 3000u
/* Ring timeout ("no final answer after a provisional"): 1 s to 1 h; none by default. */
#define DP_RING_TIMEOUT_MIN_MS	1000u
#define DP_RING_TIMEOUT_MAX_MS	3600000u
#define DP_PROBE_INTERVAL_MAX_S 3600u

struct dp_gateway {
	char name[DP_NAME_MAX];
	char host[128]; /* IP address or host name */
	uint16_t port;	/* 0 = by DNS (SRV) or 5060 */
	bool tcp;
	bool probe; /* OPTIONS probing (default on) */
	struct dp_cred cred;
	/* failover: no provisional response (100 included) within timeout -> the next gateway
	 * (like a 408); no final answer ring_timeout after the first provisional -> CANCEL */
	struct dp_timeout timeout;
	struct dp_timeout ring_timeout;
	unsigned line; /* 0 = set from the CLI (kept in the store) */
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
	unsigned timeout_ms;	    /* gateway_timeout: 3000; 0 = none (Timer B alone) */
	unsigned ring_timeout_ms;   /* gateway_ring_timeout: 0 = none (Timer C alone) */
};

struct dp;

/*
 * Resolves the names (group members to gateways, rule routes to groups) and
 * checks the regexes. EINVAL with the message and the line of the culprit.
 */
int dp_config_resolve(struct dp_config *c, char *err, size_t errlen, unsigned *line);
/* The index of the gateway or group of that name; -1 when there is none. */
int dp_config_find_gateway(const struct dp_config *c, const char *name);
int dp_config_find_group(const struct dp_config *c, const char *name);

/*
 * Builds the matcher from a resolved config. Gateways of prev (may be NULL)
 * with the same name and address keep their up/down state, so a change of
 * the rules does not forget what the probes found.
 */
int dp_create(const struct dp_config *c, const struct dp *prev, struct dp **out);
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
/*
 * The gateway a request went to: by the address it was sent to (a gateway
 * given by IP address and port, 5060 when none), or by the host of its
 * Request-URI (one given by name). -1 when it went to none of them.
 */
int dp_gateway_find(const struct dp *d, const struct sockaddr *sa, sv_t uri_host);
bool dp_gateway_is_up(const struct dp *d, unsigned gw);
/* The gateway's failover and ring timeouts in force (its own, else the dialplan's); 0 = none. */
unsigned dp_gateway_timeout_ms(const struct dp *d, unsigned gw);
unsigned dp_gateway_ring_timeout_ms(const struct dp *d, unsigned gw);
/* Seconds between OPTIONS probes (0 = none), as the rules in force say. */
unsigned dp_probe_interval_s(const struct dp *d);

/*
 * The text form of gateways, groups and rules, as `switchboard route` takes
 * them and the store keeps them: space-separated key=value words.
 *   gateway: address=HOST port=N transport=udp|tcp probe=yes|no
 *            auth_user=USER auth_realm=REALM ha1=HEX ha1_sha256=HEX
 *            timeout=DURATION|off|default ring_timeout=DURATION|off|default
 *   settings (the dialplan's, `route set`): probe_interval=SECONDS
 *            timeout=DURATION|off ring_timeout=DURATION|off
 *   (DURATION: seconds, "3" or "3s", or milliseconds, "1500ms"; 0 = off)
 *   member:  GATEWAY[:PRIORITY[:WEIGHT]]
 *   rule:    route=GROUP[,GROUP...] redirect=yes|no, then the transform steps
 *            in order: strip=N prefix=DIGITS insert=POS:DIGITS delete=POS:COUNT
 *            replace=/REGEX/WITH/ (any delimiter: replace=|^0|+49|)
 * A rule's match is its key: digits (a prefix) or /REGEX/.
 * Each setter takes one word: 0, ENOENT for an unknown key, EINVAL for a bad
 * value, with the reason in err.
 */
int dp_gateway_set(struct dp_gateway *g, sv_t key, sv_t value, char *err, size_t errlen);
int dp_member_parse(sv_t text, struct dp_member *m, char *err, size_t errlen);
int dp_rule_set(struct dp_rule *r, sv_t key, sv_t value, char *err, size_t errlen);
int dp_rule_match_parse(sv_t text, struct dp_rule *r, char *err, size_t errlen);
/*
 * A whole line of words (as dp_*_print writes it) into g or r, or the group's
 * members into grp->m; the first failure is returned (EINVAL with err).
 */
int dp_gateway_parse(struct dp_gateway *g, sv_t line, char *err, size_t errlen);
int dp_rule_parse(struct dp_rule *r, sv_t line, char *err, size_t errlen);
int dp_group_parse(struct dp_group *grp, sv_t line, char *err, size_t errlen);
/*
 * The dialplan-wide settings, one word each (probe_interval, timeout or
 * gateway_timeout, ring_timeout or gateway_ring_timeout): 0, ENOENT for an
 * unknown key, EINVAL for a bad value, with the reason in err.
 */
int dp_config_set(struct dp_config *c, sv_t key, sv_t value, char *err, size_t errlen);
/* A setting's value as dp_config_set takes it (key: the canonical name); ENOENT, ENOSPC. */
int dp_config_print(const struct dp_config *c, const char *key, char *out, size_t len);
/* The canonical name of a setting (timeout -> gateway_timeout), or NULL for none. */
const char *dp_config_key(sv_t key);
/* A duration as the text form writes it ("3", "1500ms", "off" for 0). */
void dp_duration_print(unsigned ms, char *out, size_t len);
/* Digits, '*' and '#', with a leading '+' when plus. */
bool dp_digits_ok(sv_t s, bool plus);
/* The text forms; ENOSPC, or EILSEQ when a value holds a space (a YAML regex may). */
int dp_gateway_print(const struct dp_gateway *g, char *out, size_t len);
int dp_group_print(const struct dp_group *g, char *out, size_t len);
int dp_rule_print(const struct dp_rule *r, char *out, size_t len);
/* The match as a rule key: the prefix, or /REGEX/. */
void dp_rule_key(const struct dp_rule *r, char *out, size_t len);

#endif
