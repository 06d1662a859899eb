/*
 * lists.h - black and white lists: who may call whom.
 *
 * Global lists come from the config (calls by caller prefix, by callee
 * prefix, by source address or network); each user adds their own lists of
 * callers in their call settings, and may accept calls only from their
 * white list. The matching is here, apart from where it is applied, so the
 * config loader, the call settings and the proxy share one notion of
 * "prefix" and "network".
 */
#ifndef SB_SERVICES_LISTS_H
#define SB_SERVICES_LISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sv.h"

struct sockaddr;

#define LISTS_PREFIX_MAX 32
#define LISTS_MAX	 128 /* entries in one global list */

/* An IPv4 or IPv6 network: address and prefix length. */
struct lists_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

/* "192.0.2.0/24", "2001:db8::/32", "198.51.100.7" (a host); 0 or EINVAL. */
int lists_cidr_parse(sv_t text, struct lists_cidr *out);
/*
 * Does sa fall in one of the networks of a comma-separated list
 * ("192.0.2.0/24,2001:db8::/32")? An entry that does not parse matches
 * nothing (the settings line is checked when it is written).
 */
bool lists_cidr_match_csv(sv_t csv, const struct sockaddr *sa);
bool lists_cidr_match(const struct lists_cidr *nets, size_t n, const struct sockaddr *sa);
bool lists_cidr_equal(const struct lists_cidr *a, const struct lists_cidr *b);
/* The one text of a network: "192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32". */
void lists_cidr_format(const struct lists_cidr *c, char *out, size_t len);

/*
 * A caller or callee prefix: the start of a user part ("+49900", "0900",
 * "spam"); "*" matches everyone. A leading '+' is significant.
 */
bool lists_prefix_ok(sv_t prefix);
bool lists_prefix_match(const char (*prefixes)[LISTS_PREFIX_MAX], size_t n, sv_t user);
/* The same against a comma-separated list ("0900,+4990,anonymous"). */
bool lists_prefix_match_csv(const char *csv, sv_t user);

/* A global list of prefixes, and one of networks. */
struct lists_prefixes {
	char v[LISTS_MAX][LISTS_PREFIX_MAX];
	size_t n;
};

struct lists_nets {
	struct lists_cidr v[LISTS_MAX];
	size_t n;
};

/* The global lists: from the configuration, with the changes made by `switchboard list`. */
struct lists_global {
	struct lists_prefixes block_callers; /* From user prefixes */
	struct lists_prefixes allow_callers; /* exceptions to every block list */
	struct lists_prefixes block_callees; /* Request-URI user prefixes */
	struct lists_nets block_sources;     /* source addresses / networks */
	struct lists_nets allow_sources;     /* exceptions to every block list */
	unsigned block_status;		     /* 403 (default) or 603 */
};

enum lists_verdict {
	LISTS_NONE = 0, /* no global list says anything: the callee's own lists decide */
	LISTS_ALLOWED,	/* on a global white list: no list blocks it */
	LISTS_BLOCKED,
};

/*
 * A call or message from caller (a From user part, may be empty) to callee
 * (a Request-URI user part) from sa (NULL = unknown), against the global
 * lists: white lists first, then the block lists. *why names the list.
 * allow_callers counts only for a caller_verified identity (authenticated, or
 * from a trusted peer): a From header is anybody's to write.
 */
enum lists_verdict lists_global_check(const struct lists_global *g, sv_t caller,
				      bool caller_verified, sv_t callee, const struct sockaddr *sa,
				      const char **why);
/* True when the block lists are empty (the common case: nothing to look at). */
bool lists_global_empty(const struct lists_global *g);

/*
 * Outgoing call barring (issue 12): named classes of callee prefixes, from
 * the configuration's `barring:` section, that a user's settings bar by name
 * (bar=international,premium), and free prefixes that are never barred
 * (emergency numbers). What a user's own lists add is in services/settings.h.
 */
#define LISTS_BAR_CLASSES  16 /* classes in the configuration */
#define LISTS_BAR_NAME_MAX 32
#define LISTS_BAR_PREFIXES 32 /* prefixes in one class */

struct lists_bar_class {
	char name[LISTS_BAR_NAME_MAX];
	char v[LISTS_BAR_PREFIXES][LISTS_PREFIX_MAX];
	size_t n;
};

struct lists_barring {
	struct lists_bar_class classes[LISTS_BAR_CLASSES];
	size_t nclasses;
	struct lists_prefixes free; /* never barred: default "112" */
};

/* A class name: 1 to 31 of a-z, A-Z, 0-9, '-', '_'. */
bool lists_bar_name_ok(sv_t name);
/* The class called name (case-insensitive), or NULL. */
const struct lists_bar_class *lists_bar_class_find(const struct lists_barring *b, sv_t name);

/* The list called name ("block_callers"...) as prefixes or as networks; NULL when unknown. */
struct lists_prefixes *lists_global_prefixes(struct lists_global *g, sv_t name);
struct lists_nets *lists_global_nets(struct lists_global *g, sv_t name);

#endif
