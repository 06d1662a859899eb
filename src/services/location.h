/*
 * location.h - the location service: which contacts each address of record
 * (AOR) has registered, in memory, shared by all workers.
 *
 * Routing reads it for every call, so it lives in a hash table with a lock
 * per bucket; the database only keeps a copy so that a restart loses no
 * registration. Every change marks its AOR dirty; the database thread
 * writes dirty AORs in batches (write-behind) through loc_flush_dirty().
 */
#ifndef SB_SERVICES_LOCATION_H
#define SB_SERVICES_LOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/sv.h"
#include "store/store.h"
#include "transport/tport.h"

struct loc_table;

/* One Contact of a REGISTER, parsed by the registrar. */
struct loc_contact {
	sv_t uri;	  /* inside the angle brackets */
	sv_t params;	  /* the header parameters, raw (feature tags, +sip.instance...) */
	uint32_t expires; /* seconds, already bounded; 0 = remove */
	uint16_t q;	  /* 0..1000 */
	sv_t instance;	  /* +sip.instance value, quotes included */
	uint32_t reg_id;
	uint8_t terminal; /* enum term_type, decided by the registrar */
};

struct loc_register {
	sv_t aor;
	sv_t callid;
	uint32_t cseq;
	bool star; /* Contact: * (remove every binding) */
	const struct loc_contact *contacts;
	size_t ncontacts;
	struct tp_addr received; /* where the REGISTER came from */
	uint32_t conn_id;	 /* its TCP connection, 0 for UDP */
	sv_t path;		 /* Path values, comma-joined, "" = none */
	sv_t user_agent;
	int64_t now;
	unsigned max_contacts; /* 0 = unlimited */
	bool dry_run;	       /* change nothing: only check and list the current bindings */
};

enum loc_result {
	LOC_OK = 0,
	LOC_RETRANSMISSION, /* same Call-ID and CSeq as stored: nothing changed */
	LOC_OUT_OF_ORDER,   /* a lower CSeq for the same Call-ID (RFC 3261 10.3 step 7) */
	LOC_TOO_MANY,	    /* more contacts than max_contacts */
	LOC_NOMEM,
	LOC_WOULD_CHANGE, /* dry_run, and applying it would change the bindings */
	LOC_TOO_LONG,	  /* longer than a binding keeps (STORE_URI_MAX, LOC_MAX_*) */
};

/*
 * What a binding keeps, at most (a target's and the store's sizes, with the
 * NUL): a REGISTER whose Contact URI, Path, Call-ID, +sip.instance or Contact
 * parameters are longer is refused (LOC_TOO_LONG), never kept cut. User-Agent
 * is for people to read (reg list): its first LOC_MAX_UA - 1 bytes are kept.
 */
#define LOC_MAX_CALLID	 256
#define LOC_MAX_INSTANCE 160
#define LOC_MAX_PARAMS	 256
#define LOC_MAX_UA	 160

/* Where a request for an AOR can go. */
struct loc_target {
	char uri[STORE_URI_MAX];
	char path[STORE_URI_MAX]; /* route set from Path, "" = none */
	char user_agent[LOC_MAX_UA];
	char params[LOC_MAX_PARAMS]; /* Contact header params as registered */
	struct tp_addr received;
	uint32_t conn_id;
	uint32_t
	    reg_id; /* RFC 5626 reg-id: over a connection, the binding is that flow; 0 = none */
	uint16_t q;
	uint8_t terminal; /* enum term_type */
	int64_t expires;
};

/*
 * Is the contact behind NAT: its URI's host a private address (RFC 1918,
 * 100.64/10, IPv6 unique-local or link-local) other than the address the
 * REGISTER came from? Nobody outside can reach that address: only where the
 * REGISTER came from (its NAT binding, or its connection) leads there.
 */
bool loc_contact_behind_nat(sv_t uri, const struct tp_addr *received);

/*
 * How a binding is reached now (RFC 5626, RFC 3261 18.1.1 and 10.3, RFC 3263).
 * A contact that registered over a connection is reached over it while it is
 * open. When it is gone, it is not a destination: an RFC 5626 flow (a reg-id)
 * or a contact behind NAT then has no way in at all; any other is reached at
 * its Contact URI as RFC 3263 resolves it (UDP when the URI names no
 * transport, a new connection to the URI's address for ;transport=tcp).
 */
enum loc_reach {
	LOC_REACH_RECEIVED, /* where it registered from: its open connection, or its NAT source */
	LOC_REACH_URI,	    /* its Contact URI (or its first Path hop), resolved */
	LOC_REACH_GONE,	    /* its connection was the only way in, and it is closed */
};
/* conn_open: is the binding's connection (t->conn_id) still open (tp_conn_alive)? */
enum loc_reach loc_target_reach(const struct loc_target *t, bool conn_open);
/* Would the binding be unreachable once its connection is gone (a flow, or behind NAT)? */
bool loc_target_conn_only(const struct loc_target *t);

/*
 * NAT keep-alives (docs/nat.md): the bindings behind NAT (loc_contact_behind_nat)
 * that registered over UDP without a Path, whose router binding only traffic
 * keeps open. loc_nat_some() fills out with up to max of them, scanning from
 * *cursor (the caller's: it goes round the table); *wrapped is set when the
 * scan passed the table's end. Returns how many it filled.
 */
struct loc_nat_binding {
	char uri[STORE_URI_MAX];
	struct tp_addr received;
};
size_t loc_nat_some(struct loc_table *t, int64_t now, unsigned *cursor, bool *wrapped,
		    struct loc_nat_binding *out, size_t max);

/* The bucket hash is SipHash with a key random per process (seed is mixed in). */
int loc_create(uint64_t seed, struct loc_table **out);
void loc_destroy(struct loc_table *t);

/*
 * Applies a REGISTER to its AOR atomically and appends the resulting
 * bindings to contacts_out as Contact header lines for the 200 response.
 */
enum loc_result loc_register(struct loc_table *t, const struct loc_register *r,
			     struct buf *contacts_out);

/* Current bindings of aor, highest q first (then most recent). */
int loc_lookup(struct loc_table *t, sv_t aor, int64_t now, struct loc_target *out, size_t max,
	       size_t *n);

/* Drops expired bindings; returns how many. */
size_t loc_expire(struct loc_table *t, int64_t now);
/*
 * The same for the next 1/parts of the table (a cursor goes round), so a
 * periodic caller spreads the work; lookups already ignore what expired.
 */
size_t loc_expire_some(struct loc_table *t, int64_t now, unsigned parts);
size_t loc_count(struct loc_table *t);

/* At start-up: one binding from the store. */
int loc_load(struct loc_table *t, const struct store_binding *b, int64_t now);

/*
 * Write-behind: for up to max dirty AORs, fn gets the AOR and a snapshot of
 * its bindings (n == 0: it has none left); replace says whether bindings were
 * added or removed since the last write (else each one can be updated in
 * place). Returns the number of AORs handed out; an AOR whose fn failed
 * stays dirty.
 */
typedef int (*loc_flush_fn)(void *arg, const char *aor, const struct store_binding *b, size_t n,
			    bool replace);
size_t loc_flush_dirty(struct loc_table *t, loc_flush_fn fn, void *arg, size_t max);
/*
 * A refresh that only moves a binding's expiry is not written at once when
 * the stored expiry still covers two thirds of the new interval (a crash
 * then loses no binding that its phone refreshes in time). Before a clean
 * stop, this marks every binding whose stored copy is behind as dirty.
 */
void loc_mark_unpersisted(struct loc_table *t);
size_t loc_dirty_count(struct loc_table *t);

#endif
