/*
 * settings.h - a subscriber's call settings: how their terminals ring and
 * where their calls are forwarded.
 *
 * They are kept in the store as one line of "key=value" words (the same
 * words `switchboard user set` takes), so the CLI and the server share one
 * parser and one canonical form, and a new setting needs no schema change.
 * The server parses them from the subscriber cache on each call to the user;
 * a user without settings costs nothing.
 *
 *   ring=parallel|sequential|q-value
 *   order=desk:15,pc:10,mobile:20   terminal types for sequential ringing,
 *                                   each with its ring time in seconds
 *   ring_time=SECONDS               ring time of a step that gives none
 *   stop_on_busy=yes|no             a busy step ends the search
 *   forward_always=TARGET           call forwarding unconditional (CFU)
 *   forward_busy=TARGET             ... on busy (CFB)
 *   forward_noanswer=TARGET         ... on no answer (CFNA)
 *   noanswer_after=SECONDS          ring time before CFNA (parallel ringing)
 *   forward_unregistered=TARGET     ... when no terminal is registered (CFNR)
 *   block_callers=P1,P2             callers (From user prefixes) refused
 *   allow_callers=P1,P2             the white list: never refused by a list
 *   allow_only=yes|no               only the white list may call
 *   redirect=yes|no                 calls (INVITE) are answered 302 with the
 *                                   registered contacts instead of proxied
 *   watchers=domain|all|list        who may see the user's presence without asking:
 *                                   the same domain (default), anyone, or only
 *                                   watch_allow; others wait as pending
 *   watch_allow=W1,W2               watchers always allowed
 *   watch_block=W1,W2               watchers always refused
 *   bar=CLASS1,CLASS2               outgoing calls barred by class (barring.classes
 *                                   of the configuration: international, premium...)
 *   block_callees=P1,P2             the user's own barred callee prefixes
 *   allow_callees=P1,internal       callees never barred; "internal" = our own users
 *   allow_callees_only=yes|no       outgoing calls only to allow_callees (and
 *                                   barring.free numbers): a restricted phone
 *   allow_sources=NET1,NET2         the user's credentials count only from these
 *                                   networks (192.0.2.0/24, 2001:db8::/32, a host)
 *   block_sources=NET1,NET2         calls to the user from these networks are refused
 *
 * A watcher W is "user" (in the user's domain), "user@domain" or "@domain".
 *
 * TARGET is a local user ("bob", "bob@example.com"), a number ("+4930123")
 * or a SIP URI; an empty value clears the setting.
 */
#ifndef SB_SERVICES_SETTINGS_H
#define SB_SERVICES_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/sv.h"
#include "services/lists.h"
#include "services/terminal.h"

#define USET_TEXT_MAX	 1024
#define USET_TARGET_MAX	 160
#define USET_MAX_ORDER	 8
#define USET_MAX_SECONDS 600
#define USET_LIST_MAX	 256

enum uset_ring {
	USET_RING_PARALLEL = 0,
	USET_RING_SEQUENTIAL,
	USET_RING_QVALUE,
};

enum uset_fwd {
	USET_FWD_ALWAYS = 0,
	USET_FWD_BUSY,
	USET_FWD_NOANSWER,
	USET_FWD_UNREGISTERED,
	USET_FWD_COUNT,
};

struct uset_step {
	enum term_type type;
	unsigned secs; /* 0 = the user's ring_time */
};

enum uset_watchers {
	USET_WATCH_DOMAIN = 0,
	USET_WATCH_ALL,
	USET_WATCH_LIST,
};

/*
 * What a user may call (issue 12): the part of the settings that governs the
 * user's own outgoing calls, checked by uset_bar_check. All "" / false: no
 * barring.
 */
struct uset_bar {
	char classes[USET_LIST_MAX];	   /* bar=: comma-separated class names */
	char block_callees[USET_LIST_MAX]; /* comma-separated callee prefixes */
	char allow_callees[USET_LIST_MAX]; /* prefixes, and "internal" for our own users */
	bool allow_callees_only;
};

struct uset {
	enum uset_ring ring;
	struct uset_step order[USET_MAX_ORDER];
	size_t norder;
	unsigned ring_time;	 /* seconds, 0 = the server's default */
	int stop_on_busy;	 /* -1 = the server's default, else 0 / 1 */
	unsigned noanswer_after; /* seconds, 0 = the server's default */
	char fwd[USET_FWD_COUNT][USET_TARGET_MAX];
	char block_callers[USET_LIST_MAX]; /* comma-separated prefixes, "" = none */
	char allow_callers[USET_LIST_MAX];
	bool allow_only;
	bool redirect; /* redirect server for this user's calls (RFC 3261 8.3.4) */
	enum uset_watchers watchers;
	char watch_allow[USET_LIST_MAX]; /* comma-separated watchers, "" = none */
	char watch_block[USET_LIST_MAX];
	struct uset_bar out;		   /* outgoing call barring */
	char allow_sources[USET_LIST_MAX]; /* comma-separated networks, "" = anywhere */
	char block_sources[USET_LIST_MAX]; /* networks whose calls to the user are refused */
};

void uset_init(struct uset *s);
/*
 * Applies one "key=value" word. EINVAL with a one-line reason in err for an
 * unknown key or a bad value (the setting is then unchanged).
 */
int uset_apply(struct uset *s, sv_t word, char *err, size_t errlen);
/* Rings as plain parallel forking, no forwarding, no redirect (the lists are checked apart). */
bool uset_is_default(const struct uset *s);
/* Parses a whole stored line (words separated by spaces) over s. */
int uset_parse(struct uset *s, sv_t text, char *err, size_t errlen);
/* The canonical line: only what differs from the defaults; "" for none. */
int uset_format(const struct uset *s, char *out, size_t len);
/* Every setting, one per line, defaults included, for `user show`. */
void uset_print(const struct uset *s, FILE *to);

const char *uset_ring_name(enum uset_ring r);
/*
 * Is watcher (an AOR "user@domain") on a watch_allow / watch_block list of
 * the user in domain? Entries are "user", "user@domain" or "@domain".
 */
bool uset_watcher_listed(const char *list, sv_t watcher, sv_t domain);
/*
 * Outgoing call barring. May a user with barring b call target (the user part
 * of the callee: a dialled number, or a user of another domain)? internal:
 * the call ends at one of our own users (then only allow_callees_only and
 * "internal" matter). In order: barring.free numbers pass; allow_callees
 * pass; allow_callees_only refuses the rest; then block_callees, then each
 * class of bar. A class the configuration does not have bars every call it
 * would judge (fail closed). On USET_BARRED *why names the reason ("blocked
 * number", the class name...).
 */
enum uset_bar_verdict { USET_ALLOWED = 0, USET_BARRED };
bool uset_bar_empty(const struct uset_bar *b);
enum uset_bar_verdict uset_bar_check(const struct uset_bar *b, const struct lists_barring *cfg,
				     sv_t target, bool internal, char *why, size_t len);
/*
 * Do the credentials of the user whose stored settings line is line count from
 * sa? True when the line has no allow_sources word, or sa is in one of its
 * networks. Reads only that word: it runs on every verified request.
 */
bool uset_line_source_allowed(sv_t line, const struct sockaddr *sa);

/* The Diversion reason (RFC 5806) of each kind of forwarding. */
const char *uset_fwd_reason(enum uset_fwd k);

#endif
