/*
 * srclimit.c - how many TCP connections each source address holds that
 * never carried an authenticated request (tcp.max_per_source).
 *
 * Accepting a connection costs the server memory and a file descriptor
 * before the peer has proved anything, so one address may hold only so many
 * of them. A connection that authenticates (or carries a registration) stops
 * counting: a whole office behind one NAT address keeps its hundreds of
 * registered phones, while a stranger cannot hold more than the limit.
 *
 * The table is keyed by the address (IPv4) or its /64 (IPv6, where one
 * subscriber gets a whole prefix), hashed with the server's random seed; it
 * is shared by the workers (a lock per bucket). An entry lives while its
 * source has counted connections, and for a minute after the last refusal
 * was logged, so that a refused source is logged once a minute, not once per
 * connection: the number of entries is bounded by the connections open.
 */
#include "transport/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"

#define SRC_LOG_INTERVAL_S 60

static void src_key(const struct tp_addr *a, uint8_t key[16])
{
	memset(key, 0, 16);
	if (a->u.sa.sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->u.in.sin_addr, 4);
	} else {
		memcpy(key, &a->u.in6.sin6_addr, 8);
	}
}

static struct tp_src_bucket *src_bucket(struct tp_table *t, const uint8_t key[16])
{
	return &t->by_src[hash_bytes(key, 16, t->seed) % TP_SRC_BUCKETS];
}

static bool src_stale(const struct tp_src_entry *e, time_t now)
{
	return e->untrusted == 0 && (e->logged == 0 || now - e->logged >= SRC_LOG_INTERVAL_S);
}

void tp_src_init(struct tp_table *t)
{
	for (unsigned i = 0; i < TP_SRC_BUCKETS; i++) {
		pthread_mutex_init(&t->by_src[i].lock, NULL);
		t->by_src[i].head = NULL;
	}
}

void tp_src_fini(struct tp_table *t)
{
	for (unsigned i = 0; i < TP_SRC_BUCKETS; i++) {
		struct tp_src_entry *e = t->by_src[i].head, *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
		t->by_src[i].head = NULL;
		pthread_mutex_destroy(&t->by_src[i].lock);
	}
}

int tp_src_acquire(struct tp_table *t, const struct tp_addr *peer, unsigned limit, time_t now)
{
	struct tp_src_bucket *b;
	struct tp_src_entry **pp, *e = NULL;
	uint8_t key[16];
	unsigned refused = 0, held = 0;
	int err = 0;

	src_key(peer, key);
	b = src_bucket(t, key);
	pthread_mutex_lock(&b->lock);
	for (pp = &b->head; *pp;) {
		struct tp_src_entry *x = *pp;
		if (memcmp(x->key, key, 16) == 0) {
			e = x;
			pp = &x->next;
		} else if (src_stale(x, now)) {
			*pp = x->next; /* a refused source that left more than a minute ago */
			free(x);
		} else {
			pp = &x->next;
		}
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			err = ENOMEM;
			goto out;
		}
		memcpy(e->key, key, 16);
		e->next = b->head;
		b->head = e;
	}
	if (e->untrusted >= limit) {
		err = EMFILE;
		e->refused++;
		if (e->logged == 0 || now - e->logged >= SRC_LOG_INTERVAL_S) {
			refused = e->refused;
			held = e->untrusted;
			e->refused = 0;
			e->logged = now;
		}
		goto out;
	}
	e->untrusted++;
out:
	pthread_mutex_unlock(&b->lock);
	if (refused) {
		struct tp_addr prefix = *peer;
		char ip[64];
		if (prefix.u.sa.sa_family == AF_INET6)
			memset(prefix.u.in6.sin6_addr.s6_addr + 8, 0, 8);
		log_warn(
		    "tcp: %s%s holds %u connections that never authenticated (tcp.max_per_source):"
		    " %u new connection%s refused (logged once a minute per source)",
		    tp_addr_ip(&prefix, ip, sizeof(ip)),
		    prefix.u.sa.sa_family == AF_INET6 ? "/64" : "", held, refused,
		    refused == 1 ? "" : "s");
	}
	return err;
}

void tp_src_release(struct tp_table *t, const struct tp_addr *peer, time_t now)
{
	struct tp_src_bucket *b;
	struct tp_src_entry **pp;
	uint8_t key[16];

	src_key(peer, key);
	b = src_bucket(t, key);
	pthread_mutex_lock(&b->lock);
	for (pp = &b->head; *pp; pp = &(*pp)->next) {
		struct tp_src_entry *e = *pp;
		if (memcmp(e->key, key, 16) != 0)
			continue;
		if (e->untrusted)
			e->untrusted--;
		if (src_stale(e, now)) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&b->lock);
}
