/*
 * home_int.h - what the home's files share (home.c, im.c, presence.c): the
 * in-memory state, owned by the home worker, and the write-behind of
 * records. Not part of any public API.
 */
#ifndef SB_SERVICES_HOME_INT_H
#define SB_SERVICES_HOME_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "core/siphash.h"
#include "services/home.h"
#include "services/uac.h"
#include "store/store.h"

#define HOME_AOR_MAX	  (STORE_USER_MAX + STORE_DOMAIN_MAX + 2)
#define HOME_BUCKETS	  4096
#define HOME_FANOUT_CHUNK 64 /* recipients started per loop turn */

/*
 * What strangers hold, by source address or by sender identity: a count of
 * their subscriptions and stored messages, so each can be capped. An entry
 * lives while it counts something (stranger.c).
 */
struct home_ctr {
	struct home_ctr *next;
	unsigned subs;
	unsigned msgs;
	char key[HOME_AOR_MAX]; /* source IP address, or sender AOR */
};

#define HOME_CTR_BUCKETS 1024

enum home_cap {
	HOME_CAP_SUBS_SOURCE = 0,
	HOME_CAP_SUBS,
	HOME_CAP_MSGS_SOURCE,
	HOME_CAP_MSGS_SENDER,
	HOME_CAP_MSGS,
	HOME_CAP_MSGS_TOTAL,
	HOME_CAP_MSGS_BOX,
	HOME_CAP_COUNT,
};

/* A message waiting for (or on its way to) one recipient. */
struct im_msg {
	struct im_msg *next;
	uint64_t id; /* store key "<id>", and the order of arrival */
	int64_t expires;
	char *meta; /* "From: ...\r\nTo: ...\r\nDate: ...\r\nContent-Type: ...\r\n" */
	char *body;
	size_t body_len;
	bool persisted;
	bool deleted; /* deleted from the CLI while its delivery runs: not tried again */
	/* a stranger's message, and what it counts against */
	bool stranger;
	struct home_ctr *src_ctr, *sender_ctr;
};

/* One recipient's queue. */
struct im_box {
	struct im_box *hnext;
	struct im_box *kick_next; /* on the fan-out list */
	bool kick_queued;
	char aor[HOME_AOR_MAX];
	struct im_msg *head, *tail;
	unsigned count;
	unsigned strangers; /* of count, strangers' messages: at most half the box */
	struct uac *inflight;
	unsigned target; /* which binding the current attempt uses */
	struct home *home;
};

struct im_topic {
	struct im_topic *next;
	char key[HOME_AOR_MAX]; /* "name@domain" */
	char **members;		/* AORs "user@domain" */
	size_t n, cap;
	int64_t created;
};

struct pres_res;

struct pres_pub {
	struct pres_pub *next; /* in its presentity's list */
	char etag[24];
	int64_t expires;
	uint64_t order; /* later publications win a tuple id */
	char *body;
	size_t len;
};

enum pres_event {
	PRES_EV_PRESENCE = 0,
	PRES_EV_WINFO,
	PRES_EV_MWI,
	PRES_EV_TOPIC,
};

enum pres_state {
	PRES_PENDING = 0,
	PRES_ACTIVE,
	PRES_TERMINATED,
};

struct pres_sub {
	struct pres_sub *rnext; /* in its resource's list */
	struct pres_sub *dnext; /* in its dialog bucket (by Call-ID) */
	struct pres_res *res;	/* what it watches */
	struct home *home;
	uint64_t id;
	enum pres_event ev;
	enum pres_state state;
	char event_name[32];	    /* as the watcher wrote it */
	char watcher[HOME_AOR_MAX]; /* watcher AOR */
	char callid[256];
	char local_tag[40];
	char remote_tag[128];
	char local_uri[STORE_URI_MAX];	 /* our side: the SUBSCRIBE's To, no tag */
	char remote_from[STORE_URI_MAX]; /* their From, with its tag */
	char contact[STORE_URI_MAX];	 /* remote target */
	char route[STORE_URI_MAX];	 /* route set from Record-Route */
	struct tp_addr peer;		 /* where the SUBSCRIBE came from */
	uint32_t conn_id;
	uint32_t cseq;
	uint32_t remote_cseq;
	int64_t expires;
	/* NOTIFY in flight; another change waits for its answer */
	struct uac *inflight;
	bool again;
	bool final_pending; /* the next NOTIFY ends the subscription */
	char reason[24];    /* Subscription-State reason of the final NOTIFY */
	uint32_t winfo_version;
	/* a stranger's subscription (src_ctr counts it): its NOTIFYs go once, not
	 * retransmitted, and no more of them than it sent SUBSCRIBEs (credit) until it
	 * answered one (proven) */
	struct home_ctr *src_ctr;
	bool proven;
	unsigned credit;
	/* to a presentity that does not exist: kept in memory only (never stored) so it
	 * answers like a real one, and counted like one */
	bool phantom;
};

/*
 * A resource: a presentity (its publications, its mailbox) or a topic, with
 * the subscriptions to it, so that a change touches only its own watchers.
 */
struct pres_res {
	struct pres_res *hnext;
	char key[HOME_AOR_MAX]; /* presentity AOR or topic key */
	bool topic;
	struct pres_pub *pubs;
	struct pres_sub *subs;
	int open; /* registration-derived state last notified: -1 none yet, 0 closed, 1 open */
	unsigned mwi_new, mwi_old;
};

#define HOME_INTEREST_WORDS 1024 /* 65536 bits: AORs a REGISTER must tell the home about */

struct home {
	struct server *srv;
	struct siphash_key key; /* the tables below are keyed by strangers' AORs and Call-IDs */
	struct worker *w;	/* the home worker */
	/* offline messages */
	struct im_box *boxes[HOME_BUCKETS];
	uint64_t next_msg_id;
	struct im_box *kick_head, *kick_tail;
	struct event kick_ev;
	/* broker */
	struct im_topic *topics;
	/* presence, by resource and by dialog */
	struct pres_res *res[HOME_BUCKETS];
	struct pres_sub *dialogs[HOME_BUCKETS];
	uint64_t next_sub_id;
	uint64_t pub_order;
	/*
	 * A bit per AOR hash with messages waiting or presence watchers: the
	 * registrar reads it without a lock and posts to the home only on a hit
	 * (a false hit costs one post). Set at once, rebuilt by the sweep.
	 */
	atomic_ullong interest[HOME_INTEREST_WORDS];
	uint64_t interest_next[HOME_INTEREST_WORDS]; /* the sweep's rebuild, then copied over */
	/* write-behind */
	struct rec_batch *batch;
	struct event flush_ev;
	uint64_t ops_submitted;
	atomic_ullong ops_done; /* batches the database thread has written */
	bool snapshot_wanted;
	struct event sweep_ev;
	bool started;
	/* strangers' state (stranger.c): per source address and per sender identity */
	struct home_ctr *by_source[HOME_CTR_BUCKETS];
	struct home_ctr *by_sender[HOME_CTR_BUCKETS];
	unsigned stranger_subs, stranger_msgs, msgs_total;
	uint64_t cap_hits[HOME_CAP_COUNT];
	int64_t cap_logged[HOME_CAP_COUNT]; /* when a hit was last logged */
};

/* home.c: write-behind of records, in order, many per database transaction */
void home_rec_put(struct home *h, int kind, const char *key, const char *owner, int64_t seq,
		  int64_t expires, const char *meta, const void *body, size_t body_len);
void home_rec_del(struct home *h, int kind, const char *key);
/* aor must reach the home when it registers (a message waits, a watcher watches). */
void home_interest_mark(struct home *h, const char *aor);
/* The same into a bit set being rebuilt (HOME_INTEREST_WORDS words). */
void home_interest_add(const struct home *h, uint64_t *bits, const char *aor);
/* The AOR key "user@domain" of a SIP URI (as the location service keys it). */
int home_aor_of_uri(sv_t uri, char *out, size_t len);
/* Header value by name from a meta text ("Name: value\r\n" lines); SV_NULL when absent. */
sv_t home_meta_get(const char *meta, const char *name);

/* stranger.c: counting and capping what strangers hold */
/* The entry for key in one of the two tables (by_source or by_sender), made when create. */
struct home_ctr *home_ctr_get(struct home *h, struct home_ctr **tab, const char *key, bool create);
/* Frees the entry when it counts nothing any more. */
void home_ctr_release(struct home *h, struct home_ctr **tab, struct home_ctr *c);
/* The source address of a request as the key of by_source ("IP", no port). */
void home_source_key(const struct tp_addr *a, char *out, size_t len);
/* A cap was hit: counted, and logged at most once a minute. */
void home_cap_hit(struct home *h, enum home_cap cap, const char *who);
void home_ctr_free_all(struct home *h);

/* im.c */
enum proxy_step im_handle_message(struct home *h, struct preq *r);
void im_registered(struct home *h, const char *aor);
void im_sweep(struct home *h, int64_t now);
/* Drops the stored messages the store no longer has (ids: those it has, sorted): `msg del`. */
void im_drop_deleted(struct home *h, const uint64_t *ids, size_t n);
/* Orders message ids (uint64_t) for qsort and bsearch. */
int im_id_cmp(const void *a, const void *b);
int im_load_message(struct home *h, const struct store_record *rec);
int im_load_topic(struct home *h, const struct store_record *rec);
int im_load_member(struct home *h, const struct store_record *rec);
void im_kick_run(struct home *h);
struct im_topic *im_topic_find(struct home *h, const char *key);
/*
 * Topics and members. persist is false when the change comes from the store
 * (loading, or the CLI's change read back): nothing to write then.
 * join: 0, ENOENT (no topic, and none may be made), ENOSPC (full).
 */
int im_topic_join(struct home *h, const char *key, const char *member, bool persist);
void im_topic_leave(struct home *h, const char *key, const char *member, bool persist);
int im_topic_create(struct home *h, const char *key, bool persist);
void im_topic_delete(struct home *h, const char *key, bool persist);
/* Marks the recipients with messages waiting in the interest bits being rebuilt. */
void im_interest(struct home *h, uint64_t *bits);
void im_free_all(struct home *h);
bool im_is_topic_uri(struct home *h, const struct sip_uri *u);

/* presence.c */
enum proxy_step pres_handle_publish(struct home *h, struct preq *r);
enum proxy_step pres_handle_subscribe(struct home *h, struct preq *r);
enum proxy_step pres_handle_in_dialog(struct home *h, struct preq *r);
void pres_registered(struct home *h, const char *aor);
void pres_sweep(struct home *h, int64_t now);
/* After a restart: each restored subscription is told where it stands. */
void pres_resume(struct home *h);
/* The subscribers' settings may have changed (the CLI): watchers are authorised again. */
void pres_policy_changed(struct home *h);
/* Marks the watched presentities in the interest bits being rebuilt. */
void pres_interest(struct home *h, uint64_t *bits);
/* The mailboxes with a summary, for re-reading them: fn(arg, aor). */
void pres_mailbox_each(struct home *h, void (*fn)(void *arg, const char *aor), void *arg);
int pres_load_pub(struct home *h, const struct store_record *rec);
int pres_load_sub(struct home *h, const struct store_record *rec);
void pres_mailbox_set(struct home *h, const char *aor, unsigned new_msgs, unsigned old_msgs);
void pres_topic_changed(struct home *h, const char *key);
void pres_free_all(struct home *h);

#endif
