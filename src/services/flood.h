/*
 * flood.h - flood protection per source address (R24), in the spirit of
 * Kamailio's pike but without its known failure: an office behind one NAT
 * address that re-registers all at once after an outage is not banned.
 *
 * Each source (an IPv4 address, or an IPv6 /64) has three budgets, token
 * buckets refilled over `window` seconds: requests without valid credentials
 * (none, or wrong ones), requests that carry credentials, and in-dialog
 * requests on routes this server signed. A source that showed valid
 * credentials recently earns a larger budget of the first kind, in
 * proportion to how many it showed. A source over that budget is banned for
 * ban_time seconds (doubling on repeat, up to ban_max): its requests without
 * credentials are dropped with no answer, logged once per ban and counted;
 * its requests with credentials are still checked (against their own
 * budget), and in-dialog requests and responses are never dropped by a ban.
 *
 * The sources live in one shared table of fixed size: sets of a few entries,
 * one lock per set, the set chosen by a keyed hash with a random key per
 * process; a new source in a full set takes the place of the one idle the
 * longest (counted). The database thread writes the bans to the store
 * (records of kind STORE_REC_BAN) so `switchboard ban list` sees them, and a
 * ban whose record `switchboard ban del` removed is lifted.
 */
#ifndef SB_SERVICES_FLOOD_H
#define SB_SERVICES_FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "request/request.h"

struct flood;
struct store;

struct flood_conf {
	bool enabled;
	unsigned window_s;     /* the budgets refill over this many seconds */
	unsigned unauth_limit; /* requests without valid credentials per window */
	unsigned auth_limit;   /* requests carrying credentials per window */
	unsigned dialog_limit; /* in-dialog requests on our signed routes per window */
	unsigned ban_time_s;   /* first ban; doubles on each repeat */
	unsigned ban_max_s;    /* longest ban */
	unsigned table_size;   /* sources remembered */
};

/* What a request counts against. */
enum flood_class {
	FLOOD_UNAUTH = 0, /* no credentials */
	FLOOD_AUTH,	  /* carries credentials (checked later) */
	FLOOD_DIALOG,	  /* in-dialog on a route we signed */
	FLOOD_NCLASSES,
};

enum flood_verdict {
	FLOOD_PASS = 0,
	FLOOD_DROP_BANNED, /* the source is banned and the request has no credentials */
	FLOOD_DROP_BUDGET, /* over the budget of its class (not a ban) */
};

/* A source: 4 bytes of IPv4, or the first 8 bytes (the /64) of IPv6. */
struct flood_key {
	uint8_t family; /* 4 or 6; 0 = none */
	uint8_t addr[8];
};

/* "192.0.2.1" or "2001:db8:1:2::/64" */
#define FLOOD_KEY_TEXT 48

struct flood_stats {
	uint64_t bans;		 /* bans started */
	uint64_t dropped_banned; /* requests dropped because their source was banned */
	uint64_t dropped_budget; /* requests with credentials or in dialog over their budget */
	uint64_t auth_failures;	 /* wrong credentials counted */
	uint64_t evictions;	 /* sources forgotten to make room */
	uint64_t lifted;	 /* bans lifted from the CLI */
	size_t banned_now;	 /* (flood_sync only) bans in force at the last sync */
};

/* The configuration's flood block as a flood_conf. */
struct cfg;
void flood_conf_from_cfg(struct flood_conf *fc, const struct cfg *c);

int flood_create(const struct flood_conf *c, struct flood **out);
/* Logs the totals. */
void flood_destroy(struct flood *f);

/* The key of a socket address (an IPv4-mapped IPv6 address counts as IPv4); EAFNOSUPPORT. */
int flood_key_from_sa(const struct sockaddr *sa, struct flood_key *k);
/* "192.0.2.1", "2001:db8::1" (its /64), "2001:db8::/64", "[2001:db8::1]"; 0 or EINVAL. */
int flood_key_parse(const char *text, struct flood_key *k);
void flood_key_format(const struct flood_key *k, char out[FLOOD_KEY_TEXT]);

/*
 * One request of class cls from k at now_ms (a monotonic clock): counted, and
 * the verdict. An unauthenticated request over budget starts a ban (logged).
 */
enum flood_verdict flood_account(struct flood *f, const struct flood_key *k, enum flood_class cls,
				 int64_t now_ms);
/* Valid credentials from k: k earns unauthenticated allowance. */
void flood_auth_ok(struct flood *f, const struct flood_key *k, int64_t now_ms);
/*
 * Wrong credentials from k (a wrong password, an unknown user): they count
 * heavily against the unauthenticated budget. True when k is banned (now or
 * already): the failure is not answered.
 */
bool flood_auth_failed(struct flood *f, const struct flood_key *k, int64_t now_ms);
/* Is k banned at now_ms? */
bool flood_banned(struct flood *f, const struct flood_key *k, int64_t now_ms);
/* Lifts k's ban; ENOENT when k is not banned. */
int flood_lift(struct flood *f, const struct flood_key *k);
void flood_stats_get(struct flood *f, struct flood_stats *out);

/*
 * The request path (one call each). flood_request_drop: true when r must be
 * dropped with no answer (right after classification). flood_request_auth: r
 * carried valid (ok) or wrong credentials; true when a failure must not be
 * answered because its source is banned.
 */
bool flood_request_drop(struct flood *f, struct preq *r);
bool flood_request_auth(struct flood *f, struct preq *r, bool ok);

/*
 * The database thread: brings the store's ban records in line with the bans
 * in force (writes new ones, deletes ended ones) and lifts a ban whose record
 * was deleted by `switchboard ban del`. now_ms monotonic, now_unix wall.
 */
int flood_sync(struct flood *f, struct store *st, int64_t now_ms, int64_t now_unix);
/* At start: the bans still in force in the store (a restart keeps them). */
int flood_load(struct flood *f, struct store *st, int64_t now_ms, int64_t now_unix);
/* Did a ban start since the last flood_sync? (the database thread syncs sooner) */
bool flood_dirty(struct flood *f);

#endif
