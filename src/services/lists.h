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

/* An IPv4 or IPv6 network: address and prefix length. */
struct lists_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

/* "192.0.2.0/24", "2001:db8::/32", "198.51.100.7" (a host); 0 or EINVAL. */
int lists_cidr_parse(sv_t text, struct lists_cidr *out);
bool lists_cidr_match(const struct lists_cidr *nets, size_t n, const struct sockaddr *sa);

/*
 * A caller or callee prefix: the start of a user part ("+49900", "0900",
 * "spam"); "*" matches everyone. A leading '+' is significant.
 */
bool lists_prefix_ok(sv_t prefix);
bool lists_prefix_match(const char (*prefixes)[LISTS_PREFIX_MAX], size_t n, sv_t user);
/* The same against a comma-separated list ("0900,+4990,anonymous"). */
bool lists_prefix_match_csv(const char *csv, sv_t user);

#endif
