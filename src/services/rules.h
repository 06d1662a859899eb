/*
 * rules.h - the routing rules in force: the dialplan, gateways and global
 * black and white lists of the configuration file, with the changes made by
 * `switchboard route` and `switchboard list` on top (kept in the store), so
 * that a change from the CLI takes effect on the running server at once.
 *
 * The same holds for the domains answered as a redirect server and the
 * User-Agent patterns that give a registration its terminal type.
 *
 * The rules in force are an immutable snapshot with a reference count. The
 * database thread builds a new one when it sees the store changed and
 * publishes it in the server's slot; each worker holds a reference in its
 * view and swaps it at its next request once the slot's generation moved.
 * A request costs one atomic load; no lock is taken on the hot path.
 *
 * The file stays the base: a change from the CLI adds or replaces an entry
 * by its name (a gateway, a group), its match (a rule) or its value (a list
 * entry); deleting an entry of the file records that it is hidden.
 */
#ifndef SB_SERVICES_RULES_H
#define SB_SERVICES_RULES_H

#include <stdint.h>

#include "config/config.h"
#include "services/dialplan.h"
#include "services/lists.h"
#include "services/terminal.h"

struct store;

struct rules_conf {
	struct dp_config dp;
	struct lists_global lists;
	char redirect_domains[CFG_MAX_DOMAINS][128]; /* normalised (cfg_domain_norm), or "*" */
	size_t nredirect;
	struct term_pattern terminal_ua[CFG_MAX_TERMINAL_UA]; /* before the built-in table */
	size_t nterminal_ua;
};

/* The file's part of the rules. */
void rules_conf_from_cfg(struct rules_conf *out, const struct cfg *c);

/*
 * base (the file's) with the store's changes applied, into out (large:
 * allocate it). 0; EINVAL with err when a change does not fit the file any
 * more (a rule routes to a group the file no longer has...); a store error.
 */
int rules_conf_load(struct store *st, const struct rules_conf *base, struct rules_conf *out,
		    char *err, size_t errlen);

/* The changes kept in the store, one entry each (the CLI writes them). */
int rules_save_gateway(struct store *st, const struct dp_gateway *g);
int rules_save_group(struct store *st, const struct dp_group *g);
int rules_save_rule(struct store *st, const struct dp_rule *r);
int rules_save_list_item(struct store *st, const char *list, const char *value);
int rules_save_block_status(struct store *st, unsigned status);
int rules_save_redirect(struct store *st, const char *domain);
int rules_save_terminal(struct store *st, const struct term_pattern *p);
/* A dialplan-wide setting (key: one of dp_config_keys) as it is in c. */
int rules_save_dp_setting(struct store *st, const struct dp_config *c, const char *key);
/*
 * Deletes an entry (kind: STORE_REC_GATEWAY...; key: its name, match or
 * "LIST VALUE"): in_file says the file has it, so it is recorded hidden;
 * otherwise the store's own entry goes.
 */
int rules_forget(struct store *st, int kind, const char *key, bool in_file);

/* Finds an entry by its match or value; -1 when there is none (gateways and groups:
 * dp_config_find_gateway, dp_config_find_group). */
int rules_find_rule(const struct dp_config *d, const char *key);
int rules_find_redirect(const struct rules_conf *c, const char *domain);
int rules_find_terminal(const struct rules_conf *c, const char *match);

struct rules;
struct rules_slot;

int rules_slot_create(struct rules_slot **out);
void rules_slot_destroy(struct rules_slot *s);
/*
 * Builds a snapshot from c (resolved: dp_config_resolve) and makes it the
 * current one. Gateways that stay keep their up/down state. One publisher at
 * a time (the start, then the database thread). 0, ENOMEM or EINVAL.
 */
int rules_publish(struct rules_slot *s, const struct rules_conf *c);

/* A worker's reference to the rules in force. */
struct rules_view {
	struct rules *r;
	uint64_t gen;
};
/* The current rules (never NULL once something was published). */
struct rules *rules_view_get(struct rules_view *v, struct rules_slot *s);
void rules_view_release(struct rules_view *v);

/* The dialplan of a snapshot: NULL when it has no rule and no gateway. */
struct dp *rules_dp(const struct rules *r);
const struct lists_global *rules_lists(const struct rules *r);
/* Whether calls to domain (lower case) are answered with 302. */
bool rules_redirects(const struct rules *r, const char *domain);
/* The configured User-Agent patterns, in order (*n gets how many). */
const struct term_pattern *rules_terminal_patterns(const struct rules *r, size_t *n);
/* Grows by one with each publication: tells a holder that its indexes are stale. */
uint64_t rules_gen(const struct rules *r);

#endif
