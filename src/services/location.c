/*
 * location.c - the in-memory location table.
 *
 * One record per AOR, each binding one allocation holding its strings, so a
 * binding costs little more than its text. The registrar's whole update for
 * one REGISTER runs under the AOR's bucket lock: two REGISTERs for the same
 * AOR on two workers cannot interleave.
 */
#include "services/location.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/siphash.h"
#include "sip/sip.h"

_Static_assert(sizeof(((struct store_binding *)0)->callid) == LOC_MAX_CALLID &&
		   sizeof(((struct store_binding *)0)->instance) == LOC_MAX_INSTANCE &&
		   sizeof(((struct store_binding *)0)->user_agent) == LOC_MAX_UA,
	       "what a binding keeps fits the store");

#define LOC_BUCKETS		 16384
#define LOC_MAX_BINDINGS_PER_AOR 64

/* A compact copy of the REGISTER's source (a struct tp_addr is 136 bytes). */
struct loc_src {
	uint8_t proto;
	uint8_t family;
	uint16_t port;
	uint8_t ip[16];
};

struct loc_binding {
	struct loc_binding *next;
	int64_t expires;
	int64_t persisted; /* the expiry the store has for it, 0 = none */
	uint32_t cseq;
	uint32_t conn_id;
	uint32_t reg_id;
	uint16_t q;
	uint8_t terminal;
	struct loc_src src;
	uint16_t len[6]; /* contact, callid, path, instance, user_agent, params */
	char data[];
};

enum { B_CONTACT, B_CALLID, B_PATH, B_INSTANCE, B_UA, B_PARAMS, B_NFIELDS };

struct loc_aor {
	struct loc_aor *next;
	struct loc_binding *bindings;
	bool dirty;
	bool replace; /* bindings added or removed since the store was written */
	uint16_t keylen;
	char key[];
};

struct loc_bucket {
	pthread_mutex_t lock;
	struct loc_aor *head;
};

struct dirty_item {
	struct dirty_item *next;
	char aor[];
};

struct loc_table {
	struct siphash_key key; /* bucket hash: AORs come from strangers' REGISTERs and INVITEs */
	struct loc_bucket buckets[LOC_BUCKETS];
	pthread_mutex_t dirty_lock;
	unsigned expire_cursor; /* used by the one periodic caller only */
	struct dirty_item *dirty_head;
	struct dirty_item *dirty_tail;
	size_t ndirty;
};

static sv_t field(const struct loc_binding *b, int f)
{
	size_t off = 0;

	for (int i = 0; i < f; i++)
		off += b->len[i];
	return sv_make(b->data + off, b->len[f]);
}

static void src_pack(const struct tp_addr *a, struct loc_src *s)
{
	memset(s, 0, sizeof(*s));
	s->proto = (uint8_t)a->proto;
	s->family = (uint8_t)a->u.sa.sa_family;
	s->port = tp_addr_port(a);
	if (a->u.sa.sa_family == AF_INET)
		memcpy(s->ip, &a->u.in.sin_addr, 4);
	else if (a->u.sa.sa_family == AF_INET6)
		memcpy(s->ip, &a->u.in6.sin6_addr, 16);
}

static void src_unpack(const struct loc_src *s, struct tp_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->proto = (enum sip_proto)s->proto;
	if (s->family == AF_INET) {
		a->u.in.sin_family = AF_INET;
		memcpy(&a->u.in.sin_addr, s->ip, 4);
		a->len = sizeof(a->u.in);
	} else if (s->family == AF_INET6) {
		a->u.in6.sin6_family = AF_INET6;
		memcpy(&a->u.in6.sin6_addr, s->ip, 16);
		a->len = sizeof(a->u.in6);
	}
	tp_addr_set_port(a, s->port);
}

int loc_create(uint64_t seed, struct loc_table **out)
{
	struct loc_table *t = calloc(1, sizeof(*t));

	if (!t)
		return ENOMEM;
	if (siphash_key_random(&t->key)) {
		free(t);
		return EAGAIN;
	}
	t->key.k0 ^= seed;
	for (unsigned i = 0; i < LOC_BUCKETS; i++)
		pthread_mutex_init(&t->buckets[i].lock, NULL);
	pthread_mutex_init(&t->dirty_lock, NULL);
	*out = t;
	return 0;
}

static void aor_free(struct loc_aor *a)
{
	struct loc_binding *b, *next;

	for (b = a->bindings; b; b = next) {
		next = b->next;
		free(b);
	}
	free(a);
}

void loc_destroy(struct loc_table *t)
{
	struct dirty_item *d, *dn;

	if (!t)
		return;
	for (unsigned i = 0; i < LOC_BUCKETS; i++) {
		struct loc_aor *a = t->buckets[i].head, *next;
		for (; a; a = next) {
			next = a->next;
			aor_free(a);
		}
		pthread_mutex_destroy(&t->buckets[i].lock);
	}
	for (d = t->dirty_head; d; d = dn) {
		dn = d->next;
		free(d);
	}
	pthread_mutex_destroy(&t->dirty_lock);
	free(t);
}

static struct loc_bucket *bucket_of(struct loc_table *t, sv_t aor)
{
	return &t->buckets[siphash_sv(&t->key, aor) % LOC_BUCKETS];
}

static struct loc_aor *aor_find(struct loc_bucket *b, sv_t aor)
{
	for (struct loc_aor *a = b->head; a; a = a->next) {
		if (a->keylen == aor.len && memcmp(a->key, aor.p, aor.len) == 0)
			return a;
	}
	return NULL;
}

static struct loc_aor *aor_get(struct loc_bucket *b, sv_t aor)
{
	struct loc_aor *a = aor_find(b, aor);

	if (a || aor.len > UINT16_MAX)
		return a;
	a = calloc(1, sizeof(*a) + aor.len + 1);
	if (!a)
		return NULL;
	a->keylen = (uint16_t)aor.len;
	memcpy(a->key, aor.p, aor.len);
	a->next = b->head;
	b->head = a;
	return a;
}

static void aor_unlink_if_empty(struct loc_bucket *b, struct loc_aor *a)
{
	if (a->bindings || a->dirty)
		return;
	for (struct loc_aor **pp = &b->head; *pp; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			free(a);
			return;
		}
	}
}

/* Caller holds the bucket lock. */
static void mark_dirty(struct loc_table *t, struct loc_aor *a)
{
	struct dirty_item *d;

	if (a->dirty)
		return;
	d = malloc(sizeof(*d) + a->keylen + 1);
	if (!d)
		return; /* the AOR stays in memory; it is written with its next change */
	memcpy(d->aor, a->key, a->keylen);
	d->aor[a->keylen] = '\0';
	d->next = NULL;
	a->dirty = true;
	pthread_mutex_lock(&t->dirty_lock);
	if (t->dirty_tail)
		t->dirty_tail->next = d;
	else
		t->dirty_head = d;
	t->dirty_tail = d;
	t->ndirty++;
	pthread_mutex_unlock(&t->dirty_lock);
}

static struct loc_binding *binding_new(const sv_t fields[B_NFIELDS])
{
	size_t total = 0;
	struct loc_binding *b;
	char *p;

	for (int i = 0; i < B_NFIELDS; i++) {
		if (fields[i].len > UINT16_MAX)
			return NULL;
		total += fields[i].len;
	}
	b = calloc(1, sizeof(*b) + total);
	if (!b)
		return NULL;
	p = b->data;
	for (int i = 0; i < B_NFIELDS; i++) {
		b->len[i] = (uint16_t)fields[i].len;
		if (fields[i].len)
			memcpy(p, fields[i].p, fields[i].len);
		p += fields[i].len;
	}
	return b;
}

/* RFC 3261 10.3 step 7: contacts are compared with the URI rules of 19.1.4. */
static bool contact_uri_eq(sv_t stored, sv_t uri)
{
	struct sip_uri a, b;

	if (sv_eq(stored, uri))
		return true;
	if (sip_uri_parse(stored, &a) || sip_uri_parse(uri, &b))
		return false;
	return sip_uri_equal(&a, &b);
}

/* The binding a contact refers to: same instance (RFC 5626) or same URI. */
static struct loc_binding **binding_find(struct loc_aor *a, const struct loc_contact *c)
{
	for (struct loc_binding **pp = &a->bindings; *pp; pp = &(*pp)->next) {
		struct loc_binding *b = *pp;
		if (c->instance.len && sv_eq(field(b, B_INSTANCE), c->instance) &&
		    b->reg_id == c->reg_id)
			return pp;
		if (contact_uri_eq(field(b, B_CONTACT), c->uri))
			return pp;
	}
	return NULL;
}

static size_t binding_count(const struct loc_aor *a, int64_t now)
{
	size_t n = 0;

	for (const struct loc_binding *b = a->bindings; b; b = b->next)
		n += b->expires > now;
	return n;
}

/* RFC 3261 10.3 step 7: may this request change a binding that exists? */
static enum loc_result check_order(const struct loc_binding *b, const struct loc_register *r)
{
	if (!sv_eq(field(b, B_CALLID), r->callid))
		return LOC_OK;
	if (r->cseq > b->cseq)
		return LOC_OK;
	return r->cseq == b->cseq ? LOC_RETRANSMISSION : LOC_OUT_OF_ORDER;
}

static void print_contact(struct buf *out, const struct loc_binding *b, int64_t now)
{
	buf_append_str(out, "Contact: <");
	buf_append_sv(out, field(b, B_CONTACT));
	buf_append_str(out, ">;expires=");
	buf_append_u32(out, (unsigned long)(b->expires > now ? b->expires - now : 0));
	if (b->q != 1000)
		buf_printf(out, ";q=%u.%03u", b->q / 1000, b->q % 1000);
	if (b->len[B_INSTANCE]) {
		buf_append_str(out, ";+sip.instance=");
		buf_append_sv(out, field(b, B_INSTANCE));
		if (b->reg_id)
			buf_printf(out, ";reg-id=%u", b->reg_id);
	}
	buf_append_str(out, "\r\n");
}

static void drop_expired(struct loc_aor *a, int64_t now)
{
	for (struct loc_binding **pp = &a->bindings; *pp;) {
		struct loc_binding *b = *pp;
		if (b->expires <= now) {
			*pp = b->next;
			free(b);
		} else {
			pp = &b->next;
		}
	}
}

/*
 * Would applying r change the bindings? A retransmission of a REGISTER that
 * was applied would not: its contacts are there with its Call-ID and CSeq,
 * or gone if it removed them.
 */
static bool would_change(struct loc_aor *a, const struct loc_register *r)
{
	if (r->star)
		return a->bindings != NULL;
	for (size_t i = 0; i < r->ncontacts; i++) {
		const struct loc_contact *c = &r->contacts[i];
		struct loc_binding **pp = binding_find(a, c);
		if (!c->expires) {
			if (pp && (*pp)->expires > r->now)
				return true;
		} else if (!pp || !sv_eq(field(*pp, B_CALLID), r->callid) ||
			   (*pp)->cseq != r->cseq) {
			return true;
		}
	}
	return false;
}

/* Validates every contact before changing anything, so a REGISTER applies whole or not at all. */
static enum loc_result register_check(struct loc_aor *a, const struct loc_register *r,
				      bool *all_retrans)
{
	size_t adds = 0, removes = 0;

	*all_retrans = a->bindings != NULL;
	if (r->star) {
		for (struct loc_binding *b = a->bindings; b; b = b->next) {
			enum loc_result rc = check_order(b, r);
			if (rc == LOC_OUT_OF_ORDER)
				return rc;
			if (rc != LOC_RETRANSMISSION)
				*all_retrans = false;
		}
		return LOC_OK;
	}
	*all_retrans = r->ncontacts > 0;
	/* what a binding keeps must fit a target and the store (LOC_MAX_*): refused, never cut */
	if (r->callid.len >= LOC_MAX_CALLID || r->path.len >= STORE_URI_MAX)
		return LOC_TOO_LONG;
	for (size_t i = 0; i < r->ncontacts; i++) {
		const struct loc_contact *c = &r->contacts[i];
		if (c->expires &&
		    (c->uri.len >= STORE_URI_MAX || c->instance.len >= LOC_MAX_INSTANCE ||
		     c->params.len >= LOC_MAX_PARAMS))
			return LOC_TOO_LONG;
	}
	for (size_t i = 0; i < r->ncontacts; i++) {
		struct loc_binding **pp = binding_find(a, &r->contacts[i]);
		enum loc_result rc = pp ? check_order(*pp, r) : LOC_OK;
		if (rc == LOC_OUT_OF_ORDER)
			return rc;
		if (rc != LOC_RETRANSMISSION)
			*all_retrans = false;
		if (!pp && r->contacts[i].expires)
			adds++;
		else if (pp && !r->contacts[i].expires && (*pp)->expires > r->now)
			removes++;
	}
	/* the limit is on what the AOR holds once the request is applied */
	if (r->max_contacts && binding_count(a, r->now) + adds > r->max_contacts + removes)
		return LOC_TOO_MANY;
	/* and never more than loc_flush_dirty() can write in one snapshot */
	if (binding_count(a, r->now) + adds > LOC_MAX_BINDINGS_PER_AOR + removes)
		return LOC_TOO_MANY;
	return LOC_OK;
}

enum apply { APPLY_NONE, APPLY_UPDATE, APPLY_MEMBERSHIP, APPLY_NOMEM };

/*
 * Only the expiry, CSeq or Call-ID moved: the rest is what the store has. A
 * stored Call-ID and CSeq that lag behind after a crash only let a later
 * REGISTER through, which RFC 3261 10.3 allows for a new Call-ID anyway.
 */
static bool same_binding(const struct loc_binding *a, const struct loc_binding *b)
{
	if (a->conn_id != b->conn_id || a->reg_id != b->reg_id || a->q != b->q ||
	    a->terminal != b->terminal || memcmp(&a->src, &b->src, sizeof(a->src)) != 0)
		return false;
	for (int f = 0; f < B_NFIELDS; f++) {
		if (f != B_CALLID && !sv_eq(field(a, f), field(b, f)))
			return false;
	}
	return true;
}

static enum apply register_apply_one(struct loc_aor *a, const struct loc_register *r,
				     const struct loc_contact *c)
{
	struct loc_binding **pp = binding_find(a, c), *nb;
	/* User-Agent is kept for people to read: its first LOC_MAX_UA - 1 bytes (location.h) */
	sv_t ua = r->user_agent.len < LOC_MAX_UA ? r->user_agent
						 : sv_sub(r->user_agent, 0, LOC_MAX_UA - 1);
	sv_t fields[B_NFIELDS] = {c->uri, r->callid, r->path, c->instance, ua, c->params};
	enum apply how = APPLY_MEMBERSHIP;

	if (c->expires == 0) {
		if (!pp)
			return APPLY_NONE;
		struct loc_binding *old = *pp;
		*pp = old->next;
		free(old);
		return APPLY_MEMBERSHIP;
	}
	nb = binding_new(fields);
	if (!nb)
		return APPLY_NOMEM;
	nb->expires = r->now + c->expires;
	nb->cseq = r->cseq;
	nb->conn_id = r->conn_id;
	nb->reg_id = c->reg_id;
	nb->q = c->q;
	nb->terminal = c->terminal;
	src_pack(&r->received, &nb->src);
	if (pp) {
		struct loc_binding *old = *pp;
		how = APPLY_UPDATE;
		if (same_binding(old, nb)) {
			nb->persisted = old->persisted;
			/* a stored expiry that still covers 2/3 of the interval survives a crash */
			if (old->persisted >= r->now + (int64_t)c->expires * 2 / 3)
				how = APPLY_NONE;
		} else if (!sv_eq(field(old, B_CONTACT), field(nb, B_CONTACT))) {
			how = APPLY_MEMBERSHIP; /* same instance, new contact URI: the row's key
						   changes */
		}
		nb->next = old->next;
		free(old);
		*pp = nb;
	} else {
		nb->next = a->bindings;
		a->bindings = nb;
	}
	return how;
}

enum loc_result loc_register(struct loc_table *t, const struct loc_register *r,
			     struct buf *contacts_out)
{
	struct loc_bucket *bk = bucket_of(t, r->aor);
	struct loc_aor *a;
	enum loc_result rc = LOC_OK;
	bool all_retrans = false, changed = false;

	pthread_mutex_lock(&bk->lock);
	a = (r->ncontacts || r->star) ? aor_get(bk, r->aor) : aor_find(bk, r->aor);
	if (!a) {
		rc = (r->ncontacts || r->star) ? LOC_NOMEM : LOC_OK;
		goto out;
	}
	drop_expired(a, r->now);
	rc = register_check(a, r, &all_retrans);
	if (rc != LOC_OK)
		goto out;
	if (r->dry_run) {
		rc = would_change(a, r) ? LOC_WOULD_CHANGE : LOC_RETRANSMISSION;
	} else if (all_retrans) {
		rc = LOC_RETRANSMISSION;
	} else if (r->star) {
		struct loc_binding *b, *next;
		for (b = a->bindings; b; b = next) {
			next = b->next;
			free(b);
		}
		a->bindings = NULL;
		changed = true;
		a->replace = true;
	} else {
		for (size_t i = 0; i < r->ncontacts && rc == LOC_OK; i++) {
			switch (register_apply_one(a, r, &r->contacts[i])) {
			case APPLY_NOMEM:
				rc = LOC_NOMEM;
				break;
			case APPLY_MEMBERSHIP:
				a->replace = true;
				changed = true;
				break;
			case APPLY_UPDATE:
				changed = true;
				break;
			case APPLY_NONE:
				break;
			}
		}
	}
	if (changed)
		mark_dirty(t, a);
	if (contacts_out && (rc == LOC_OK || rc == LOC_RETRANSMISSION)) {
		for (struct loc_binding *b = a->bindings; b; b = b->next)
			print_contact(contacts_out, b, r->now);
	}
out:
	if (a)
		aor_unlink_if_empty(bk, a);
	pthread_mutex_unlock(&bk->lock);
	return rc;
}

/* ENOSPC only for a binding longer than register_check lets in (a bug): it is then skipped. */
static int target_fill(struct loc_target *tg, const struct loc_binding *b)
{
	if (sv_copy(field(b, B_CONTACT), tg->uri, sizeof(tg->uri)) ||
	    sv_copy(field(b, B_PATH), tg->path, sizeof(tg->path)) ||
	    sv_copy(field(b, B_UA), tg->user_agent, sizeof(tg->user_agent)) ||
	    sv_copy(field(b, B_PARAMS), tg->params, sizeof(tg->params)))
		return ENOSPC;
	src_unpack(&b->src, &tg->received);
	tg->conn_id = b->conn_id;
	tg->reg_id = b->reg_id;
	tg->q = b->q;
	tg->terminal = b->terminal;
	tg->expires = b->expires;
	return 0;
}

int loc_lookup(struct loc_table *t, sv_t aor, int64_t now, struct loc_target *out, size_t max,
	       size_t *n)
{
	struct loc_bucket *bk = bucket_of(t, aor);
	struct loc_aor *a;

	*n = 0;
	pthread_mutex_lock(&bk->lock);
	a = aor_find(bk, aor);
	for (struct loc_binding *b = a ? a->bindings : NULL; b && max; b = b->next) {
		size_t i;
		if (b->expires <= now)
			continue;
		if (*n == max) {
			/* full: b only gets in by beating the last (older ones lose ties) */
			if (out[max - 1].q >= b->q)
				continue;
			i = max - 1;
		} else {
			i = (*n)++;
		}
		/* insertion sort by q, descending; newest first among equals */
		for (; i > 0 && out[i - 1].q < b->q; i--)
			out[i] = out[i - 1];
		if (target_fill(&out[i], b)) {
			log_err("location: a binding of %.*s does not fit a target: skipped",
				(int)aor.len, aor.p);
			for (; i + 1 < *n; i++)
				out[i] = out[i + 1];
			(*n)--;
		}
	}
	pthread_mutex_unlock(&bk->lock);
	return 0;
}

static size_t expire_bucket(struct loc_table *t, struct loc_bucket *bk, int64_t now)
{
	struct loc_aor *a, *next;
	size_t dropped = 0;

	pthread_mutex_lock(&bk->lock);
	for (a = bk->head; a; a = next) {
		size_t before = 0, after = 0;
		next = a->next;
		for (struct loc_binding *b = a->bindings; b; b = b->next)
			before++;
		drop_expired(a, now);
		for (struct loc_binding *b = a->bindings; b; b = b->next)
			after++;
		if (after != before) {
			dropped += before - after;
			a->replace = true;
			mark_dirty(t, a);
		}
		aor_unlink_if_empty(bk, a);
	}
	pthread_mutex_unlock(&bk->lock);
	return dropped;
}

size_t loc_expire(struct loc_table *t, int64_t now)
{
	size_t dropped = 0;

	for (unsigned i = 0; i < LOC_BUCKETS; i++)
		dropped += expire_bucket(t, &t->buckets[i], now);
	return dropped;
}

size_t loc_expire_some(struct loc_table *t, int64_t now, unsigned parts)
{
	unsigned n = parts ? LOC_BUCKETS / parts : LOC_BUCKETS;
	size_t dropped = 0;

	for (unsigned i = 0; i < n; i++) {
		dropped += expire_bucket(t, &t->buckets[t->expire_cursor], now);
		t->expire_cursor = (t->expire_cursor + 1) % LOC_BUCKETS;
	}
	return dropped;
}

size_t loc_nat_some(struct loc_table *t, int64_t now, unsigned *cursor, bool *wrapped,
		    struct loc_nat_binding *out, size_t max)
{
	size_t n = 0;

	*wrapped = false;
	while (n < max && !*wrapped) {
		struct loc_bucket *bk = &t->buckets[*cursor % LOC_BUCKETS];
		size_t before = n;
		bool full = false;

		pthread_mutex_lock(&bk->lock);
		for (struct loc_aor *a = bk->head; a && !full; a = a->next) {
			for (struct loc_binding *b = a->bindings; b && !full; b = b->next) {
				struct tp_addr recv;
				sv_t uri = field(b, B_CONTACT);
				if (b->expires <= now || b->src.proto != SIP_PROTO_UDP ||
				    field(b, B_PATH).len)
					continue;
				src_unpack(&b->src, &recv);
				if (!loc_contact_behind_nat(uri, &recv))
					continue;
				if (n == max) {
					full = true;
					break;
				}
				if (sv_copy(uri, out[n].uri, sizeof(out[n].uri)))
					continue; /* cannot be: a binding keeps no longer URI */
				out[n++].received = recv;
			}
		}
		pthread_mutex_unlock(&bk->lock);
		/* a bucket is done whole, in the next call when it did not fit in this one
		 * (one with more than max is cut: max is at least a batch of 64) */
		if (full && before > 0) {
			n = before;
			break;
		}
		*cursor = (*cursor + 1) % LOC_BUCKETS;
		*wrapped = *cursor == 0;
	}
	return n;
}

size_t loc_count(struct loc_table *t)
{
	size_t n = 0;

	for (unsigned i = 0; i < LOC_BUCKETS; i++) {
		struct loc_bucket *bk = &t->buckets[i];
		pthread_mutex_lock(&bk->lock);
		for (struct loc_aor *a = bk->head; a; a = a->next) {
			for (struct loc_binding *b = a->bindings; b; b = b->next)
				n++;
		}
		pthread_mutex_unlock(&bk->lock);
	}
	return n;
}

int loc_load(struct loc_table *t, const struct store_binding *sb, int64_t now)
{
	sv_t aor = sv_cstr(sb->aor);
	struct loc_bucket *bk = bucket_of(t, aor);
	sv_t fields[B_NFIELDS] = {sv_cstr(sb->contact),	 sv_cstr(sb->callid),	  sv_cstr(sb->path),
				  sv_cstr(sb->instance), sv_cstr(sb->user_agent), SV_NULL};
	struct tp_addr recv;
	struct loc_binding *b;
	struct loc_aor *a;
	int err = 0;

	if (sb->expires <= now)
		return 0;
	if (tp_addr_parse(sv_cstr(sb->received), &recv))
		memset(&recv, 0, sizeof(recv));
	b = binding_new(fields);
	if (!b)
		return ENOMEM;
	b->expires = sb->expires;
	b->persisted = sb->expires;
	b->cseq = sb->cseq;
	b->q = sb->q;
	b->reg_id = sb->reg_id;
	b->terminal = (uint8_t)(sb->flags & 7);
	src_pack(&recv, &b->src);
	pthread_mutex_lock(&bk->lock);
	a = aor_get(bk, aor);
	if (a) {
		b->next = a->bindings;
		a->bindings = b;
	} else {
		free(b);
		err = ENOMEM;
	}
	pthread_mutex_unlock(&bk->lock);
	return err;
}

/* ENOSPC only for a binding longer than register_check lets in (a bug): it is then not written. */
static int binding_export(const struct loc_aor *a, const struct loc_binding *b,
			  struct store_binding *sb)
{
	struct tp_addr recv;

	memset(sb, 0, sizeof(*sb));
	if ((size_t)snprintf(sb->aor, sizeof(sb->aor), "%.*s", (int)a->keylen, a->key) >=
		sizeof(sb->aor) ||
	    sv_copy(field(b, B_CONTACT), sb->contact, sizeof(sb->contact)) ||
	    sv_copy(field(b, B_PATH), sb->path, sizeof(sb->path)) ||
	    sv_copy(field(b, B_INSTANCE), sb->instance, sizeof(sb->instance)) ||
	    sv_copy(field(b, B_UA), sb->user_agent, sizeof(sb->user_agent)) ||
	    sv_copy(field(b, B_CALLID), sb->callid, sizeof(sb->callid)))
		return ENOSPC;
	src_unpack(&b->src, &recv);
	if (b->src.family)
		tp_addr_format(&recv, sb->received, sizeof(sb->received));
	sb->cseq = b->cseq;
	sb->expires = b->expires;
	sb->q = b->q;
	sb->reg_id = b->reg_id;
	sb->flags = b->terminal & 7;
	return 0;
}

static struct dirty_item *dirty_pop(struct loc_table *t)
{
	struct dirty_item *d;

	pthread_mutex_lock(&t->dirty_lock);
	d = t->dirty_head;
	if (d) {
		t->dirty_head = d->next;
		if (!t->dirty_head)
			t->dirty_tail = NULL;
		t->ndirty--;
	}
	pthread_mutex_unlock(&t->dirty_lock);
	return d;
}

size_t loc_flush_dirty(struct loc_table *t, loc_flush_fn fn, void *arg, size_t max)
{
	struct store_binding *snap = malloc(sizeof(*snap) * LOC_MAX_BINDINGS_PER_AOR);
	size_t done = 0;

	if (!snap)
		return 0;
	while (done < max) {
		struct dirty_item *d = dirty_pop(t);
		struct loc_bucket *bk;
		struct loc_aor *a;
		bool replace = true;
		size_t n = 0;
		sv_t aor;

		if (!d)
			break;
		aor = sv_cstr(d->aor);
		bk = bucket_of(t, aor);
		pthread_mutex_lock(&bk->lock);
		a = aor_find(bk, aor);
		if (a) {
			for (struct loc_binding *b = a->bindings; b && n < LOC_MAX_BINDINGS_PER_AOR;
			     b = b->next) {
				if (binding_export(a, b, &snap[n])) {
					log_err(
					    "location: a binding of %.*s does not fit the store: "
					    "not written",
					    (int)a->keylen, a->key);
					continue;
				}
				n++;
				b->persisted = b->expires;
			}
			replace = a->replace;
			a->dirty = false;
			a->replace = false;
			aor_unlink_if_empty(bk, a);
		}
		pthread_mutex_unlock(&bk->lock);
		/* written outside the lock: a registration never waits for the disk */
		if (fn(arg, d->aor, snap, n, replace)) {
			pthread_mutex_lock(&bk->lock);
			a = aor_get(bk, aor);
			if (a) {
				for (struct loc_binding *b = a->bindings; b; b = b->next)
					b->persisted = 0;
				a->replace = true;
				mark_dirty(t, a);
			}
			pthread_mutex_unlock(&bk->lock);
			free(d);
			done++;
			break; /* queued again at the tail: not once more in this call */
		}
		free(d);
		done++;
	}
	free(snap);
	return done;
}

void loc_mark_unpersisted(struct loc_table *t)
{
	for (unsigned i = 0; i < LOC_BUCKETS; i++) {
		struct loc_bucket *bk = &t->buckets[i];
		pthread_mutex_lock(&bk->lock);
		for (struct loc_aor *a = bk->head; a; a = a->next) {
			for (struct loc_binding *b = a->bindings; b; b = b->next) {
				if (b->persisted != b->expires) {
					mark_dirty(t, a);
					break;
				}
			}
		}
		pthread_mutex_unlock(&bk->lock);
	}
}

size_t loc_dirty_count(struct loc_table *t)
{
	size_t n;

	pthread_mutex_lock(&t->dirty_lock);
	n = t->ndirty;
	pthread_mutex_unlock(&t->dirty_lock);
	return n;
}

/* RFC 1918, 100.64/10 and IPv6 unique-local / link-local (loopback is not private here) */
static bool host_is_private(sv_t host)
{
	char ip[64];
	struct in_addr a4;
	struct in6_addr a6;

	if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
		host = sv_sub(host, 1, host.len - 2);
	if (sv_copy(host, ip, sizeof(ip)))
		return false; /* longer than any address: a name, not a private address */
	if (inet_pton(AF_INET, ip, &a4) == 1) {
		uint32_t a = ntohl(a4.s_addr);
		return (a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 ||
		       (a >> 22) == (100u << 2 | 1) /* 100.64/10 */;
	}
	if (inet_pton(AF_INET6, ip, &a6) == 1)
		return (a6.s6_addr[0] & 0xfe) == 0xfc ||
		       (a6.s6_addr[0] == 0xfe && (a6.s6_addr[1] & 0xc0) == 0x80);
	return false;
}

bool loc_contact_behind_nat(sv_t uri, const struct tp_addr *received)
{
	struct sip_uri u;

	return sip_uri_parse(uri, &u) == 0 && host_is_private(u.host) &&
	       !tp_addr_ip_is(received, u.host);
}

bool loc_target_conn_only(const struct loc_target *t)
{
	return t->reg_id != 0 || loc_contact_behind_nat(sv_cstr(t->uri), &t->received);
}

enum loc_reach loc_target_reach(const struct loc_target *t, bool conn_open)
{
	if (t->path[0] || !t->received.len)
		return LOC_REACH_URI; /* through the edge proxy that added the Path */
	if (t->received.proto == SIP_PROTO_UDP)
		return loc_contact_behind_nat(sv_cstr(t->uri), &t->received) ? LOC_REACH_RECEIVED
									     : LOC_REACH_URI;
	if (t->conn_id && conn_open)
		return LOC_REACH_RECEIVED;
	return loc_target_conn_only(t) ? LOC_REACH_GONE : LOC_REACH_URI;
}
