/*
 * stranger.c - what strangers may make the home keep (issue 11 hole 8).
 *
 * A stranger is a sender who did not authenticate as one of our users. Its
 * presence subscriptions and stored messages are counted by source address
 * and by sender identity, so that each can be capped per source and in
 * total: state created by strangers is bounded. The tables are keyed by
 * attacker input, so their hash is keyed with a random per-process seed.
 * All of it lives on the home worker: no locks.
 */
#include "services/home_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/siphash.h"
#include "core/log.h"
#include "transport/tport.h"

#define HOME_CAP_LOG_S 60

static const char *const cap_names[HOME_CAP_COUNT] = {
    [HOME_CAP_SUBS_SOURCE] = "strangers.subscriptions_per_source",
    [HOME_CAP_SUBS] = "strangers.subscriptions",
    [HOME_CAP_MSGS_SOURCE] = "strangers.messages_per_source",
    [HOME_CAP_MSGS_SENDER] = "strangers.messages_per_sender",
    [HOME_CAP_MSGS] = "strangers.messages",
    [HOME_CAP_MSGS_TOTAL] = "strangers.stored_messages",
    [HOME_CAP_MSGS_BOX] = "messaging.max_stored",
};

static size_t ctr_bucket(const struct home *h, const char *key)
{
	/* keyed (sources and senders are the stranger's choice); "ctr" keeps the input
	 * domain apart from the other home tables' on the same key */
	struct siphash_state st;

	siphash_init(&st, &h->key, SIPHASH_1_3);
	siphash_update(&st, "ctr", 3);
	siphash_update(&st, key, strlen(key));
	return (size_t)(siphash_final(&st) % HOME_CTR_BUCKETS);
}

struct home_ctr *home_ctr_get(struct home *h, struct home_ctr **tab, const char *key, bool create)
{
	size_t i = ctr_bucket(h, key);
	struct home_ctr *c;

	for (c = tab[i]; c; c = c->next) {
		if (strcmp(c->key, key) == 0)
			return c;
	}
	if (!create)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->next = tab[i];
	tab[i] = c;
	return c;
}

void home_ctr_release(struct home *h, struct home_ctr **tab, struct home_ctr *c)
{
	if (!c || c->subs || c->msgs)
		return;
	for (struct home_ctr **pp = &tab[ctr_bucket(h, c->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			free(c);
			return;
		}
	}
}

void home_source_key(const struct tp_addr *a, char *out, size_t len)
{
	if (!tp_addr_ip(a, out, len))
		snprintf(out, len, "?");
}

void home_cap_hit(struct home *h, enum home_cap cap, const char *who)
{
	int64_t now = (int64_t)time(NULL);

	h->cap_hits[cap]++;
	if (h->cap_logged[cap] && now - h->cap_logged[cap] < HOME_CAP_LOG_S)
		return;
	h->cap_logged[cap] = now;
	log_warn("%s reached (%s): refused, %llu times so far", cap_names[cap], who,
		 (unsigned long long)h->cap_hits[cap]);
}

static void ctr_free_table(struct home_ctr **tab)
{
	for (size_t i = 0; i < HOME_CTR_BUCKETS; i++) {
		for (struct home_ctr *c = tab[i], *next; c; c = next) {
			next = c->next;
			free(c);
		}
		tab[i] = NULL;
	}
}

void home_ctr_free_all(struct home *h)
{
	ctr_free_table(h->by_source);
	ctr_free_table(h->by_sender);
}
