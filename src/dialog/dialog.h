/*
 * dialog.h - the INVITE dialogs (RFC 3261 section 12) the proxy
 * record-routes: who talks to whom, in which state, since when, over which
 * route set, with which offer and answer, and for how long a session timer
 * (RFC 4028) keeps it alive.
 *
 * Why it exists: media relay, billing records, the HTTP API and failover
 * need to know about calls, and a lost BYE must never leave one open. The
 * proxy forwarding code feeds this module (an INVITE it forwards, each
 * response to it, the in-dialog requests on our signed Record-Route and
 * their responses); later layers register hooks (a list of hook tables,
 * never calls by name).
 *
 * Ownership: one table shared by every worker, a mutex per bucket, keyed by
 * Call-ID and From tag (SipHash-1-3 under a key random per process), so
 * that the dialogs of one call (the early dialogs of a forked INVITE, one
 * per To tag) sit in one bucket. In-dialog requests may arrive on any
 * worker; a lookup is one hash and one bucket lock. Each dialog records the
 * worker that handled its INVITE (its owner): the BYEs a session-timer
 * expiry sends go out through that worker.
 *
 * Hooks run on the thread that saw the event, with the dialog's bucket lock
 * held: they must not block, must copy what they keep, and must not call
 * back into this module.
 */
#ifndef SB_DIALOG_H
#define SB_DIALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sv.h"
#include "sip/sip.h"
#include "transport/tport.h"

#include <time.h>

/* Unix milliseconds, the clock dialog times are in. */
static inline int64_t dlg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct store;
struct dlg_table;

enum dlg_state {
	/* the INVITE is forwarded: not a dialog yet, but the template each To tag's dialog is
	 * copied from (a forked INVITE makes several); it leaves, without hooks, at the
	 * INVITE's final response */
	DLG_TRYING = 0,
	DLG_EARLY,	/* a provisional response with a To tag (one dialog per tag) */
	DLG_CONFIRMED,	/* a 2xx */
	DLG_TERMINATED, /* over; removed once the hooks ran */
};

enum dlg_end {
	DLG_END_NONE = 0,
	DLG_END_BYE_CALLER,    /* BYE from the caller */
	DLG_END_BYE_CALLEE,    /* BYE from the callee */
	DLG_END_CANCEL,	       /* the INVITE was cancelled (487) */
	DLG_END_FAILURE,       /* a final failure response (or one made here: 408, 480...) */
	DLG_END_FORK_LOST,     /* an early dialog of a fork whose other branch answered */
	DLG_END_SESSION_TIMER, /* RFC 4028: no refresh before the session expired */
	DLG_END_TIMEOUT,       /* dialog.timeout without in-dialog activity, or a stale early one */
	DLG_END_MEDIA_TIMEOUT, /* the relay saw no RTP from either side for media.timeout */
};

const char *dlg_state_name(enum dlg_state s);
const char *dlg_end_name(enum dlg_end e);

/*
 * What the media relay saw of a call, one direction (from that side's phone
 * to the relay): written by the relay's owner (dlg_media_set), read by the
 * hooks (billing records) and listings.
 */
struct dlg_media_dir {
	uint64_t packets, bytes, lost; /* RTP packets, their bytes, lost by sequence numbers */
	uint32_t jitter_us;	       /* RFC 3550 interarrival jitter */
	char codec[24];		       /* the codec actually used ("PCMU/8000"), "" = none seen */
};

struct dlg_media {
	bool relayed;			  /* the relay carried this call's media */
	struct dlg_media_dir from_caller; /* caller -> relay */
	struct dlg_media_dir from_callee; /* callee -> relay */
	int64_t last_rtp_ms;		  /* Unix ms of the last RTP packet either way, 0 = none */
};

/* One side of a dialog. Strings are NUL-terminated heap copies ("" when unknown). */
struct dlg_side {
	char *naddr; /* the From (caller) or To (callee) header value, tag included */
	char *tag;
	char *contact; /* its Contact URI: the remote target */
	char *route;   /* route set from us towards it, comma-joined Route values, "" = none */
	char *sdp;     /* its last SDP body (capped), "" = none */
	uint32_t cseq; /* highest CSeq of the requests it sent (0: none yet) */
	struct tp_addr addr; /* where its messages came from / went (reached through it) */
	uint32_t conn_id;    /* its TCP connection, 0 = none */
};

struct dlg {
	struct dlg *next; /* in its bucket */
	uint64_t hash;
	uint64_t id; /* unique, random: the store key */
	enum dlg_state state;
	enum dlg_end end;
	char *callid;
	char *
	    identity; /* who pays: the caller's authenticated identity or trusted peer, "" = none */
	char *ruri;   /* the dialled Request-URI of the initial INVITE */
	struct dlg_side caller, callee;
	int64_t start_ms, answer_ms, end_ms; /* Unix milliseconds; 0 = not (yet) */
	int64_t activity_ms;		     /* the last in-dialog request */
	unsigned status;		     /* the INVITE's final (or best provisional) status */
	char gateway[64];		     /* the PSTN gateway that carried it, "" = none */
	unsigned owner;			     /* the worker that handled the INVITE */
	uint32_t invite_cseq;		     /* the initial INVITE's CSeq */
	unsigned session_expires;	     /* RFC 4028 interval in s, 0 = no session timer */
	bool refresher_uas;		     /* the callee refreshes (else the caller) */
	int64_t expires_ms;		     /* session expiry, 0 = none */
	uint32_t updated_cseq;		     /* the last re-INVITE/UPDATE whose 2xx was seen */
	struct dlg_media media;		     /* what the relay saw (dlg_media_set) */
	enum dlg_stored {
		DLG_STORED_NO = 0, /* not in the store, nothing queued */
		DLG_STORED_QUEUED, /* a write is queued: the database thread composes it from
				      the dialog as it is then (a call that ended before is
				      never written) */
		DLG_STORED_YES,	   /* written (or loaded from the store) */
	} stored;
	bool forked;
	/* TRYING: a dialog was copied from it (listings show that one instead) */ /* a record
										      of it is
										      in the
										      store */
};

/* What a dialog's event tells the hooks. */
struct dlg_hooks {
	void (*on_early)(void *arg, const struct dlg *d);
	void (*on_confirmed)(void *arg, const struct dlg *d);
	/* a re-INVITE or UPDATE got a 2xx; sdp is its new body (empty: none) */
	void (*on_update)(void *arg, const struct dlg *d, sv_t sdp);
	void (*on_terminated)(void *arg, const struct dlg *d, enum dlg_end why);
	/*
	 * The call attempt is over (d is the TRYING template, copied from the
	 * INVITE; d->status its final status): after a final >= 300, a
	 * stale INVITE (why DLG_END_TIMEOUT) or a 2xx (why DLG_END_NONE: the
	 * confirmed dialog goes on and gets its own on_terminated). Runs once per
	 * INVITE the proxy tracked, so that failed attempts (busy, cancelled,
	 * unanswered) leave a record and free what their offer reserved.
	 */
	void (*on_attempt_end)(void *arg, const struct dlg *d, enum dlg_end why);
	/*
	 * A branch of the initial INVITE got a final failure (d is the TRYING
	 * template): its status, the gateway it reached ("" = none) and where
	 * it went; the call may go on (the next gateway: failover).
	 */
	void (*on_branch_failed)(void *arg, const struct dlg *d, unsigned status,
				 const char *gateway, const struct tp_addr *dest);
	/*
	 * On the database thread, inside dlg_flush's transaction, after the
	 * dialogs' journal was written: what must be durable together with the
	 * dialogs' changes (a billing record with its dialog's deletion). The
	 * transaction is begun only when something is written: a hook that
	 * writes calls store_begin first when *begun is false, and sets it (an
	 * idle server opens no transaction). An error rolls the whole
	 * transaction back. on_flush_done then tells whether it was committed.
	 */
	int (*on_flush)(void *arg, struct store *st, bool *begun);
	void (*on_flush_done)(void *arg, bool committed);
	void *arg;
};

struct dlg_conf {
	unsigned max;	    /* dialogs tracked at most (a cap that is hit is logged, counted) */
	unsigned timeout_s; /* a confirmed dialog without in-dialog requests for this long ends;
			       0 = off */
	unsigned session_expires; /* asked for in forwarded INVITEs that have none; 0 = off */
	unsigned min_se;	  /* the smallest interval we accept (RFC 4028 Min-SE) */
	size_t sdp_max;		  /* bytes of SDP kept per side */
	unsigned early_max_s;	  /* an INVITE without a final for this long is forgotten */
};

struct dlg_stats {
	uint64_t created, confirmed, terminated;
	uint64_t cap_hits;	  /* INVITEs not tracked: the table was full */
	uint64_t too_long;	  /* not tracked: a value beyond its cap */
	uint64_t session_expired; /* ended by the session timer */
	uint64_t timed_out;	  /* ended by dialog.timeout */
	size_t live;
};

int dlg_table_create(const struct dlg_conf *conf, struct dlg_table **out);
void dlg_table_destroy(struct dlg_table *t);
/* Registers a hook table (before the workers start); the table is not copied. 0 or ENOSPC. */
int dlg_hooks_add(struct dlg_table *t, const struct dlg_hooks *h);
const struct dlg_conf *dlg_conf_of(const struct dlg_table *t);
void dlg_stats_get(struct dlg_table *t, struct dlg_stats *out);

/*
 * The proxy's calls (each 0 or an errno; none of them fails the call).
 *
 * An out-of-dialog INVITE the proxy forwards statefully and record-routes:
 * a dialog in state TRYING. identity: who is accountable for the call (the
 * authenticated user, the trusted peer), NULL or "" when nobody is. ENOSPC when the cap is hit
 * (counted, logged).
 */
int dlg_on_invite(struct dlg_table *t, struct sip_msg *m, const struct tp_src *src, unsigned owner,
		  const char *identity, int64_t now_ms);
/*
 * A response to an INVITE or UPDATE the proxy forwarded (initial or in
 * dialog), with where the branch went (the callee's side) and the gateway
 * that branch reached ("" or NULL: none).
 */
int dlg_on_response(struct dlg_table *t, struct sip_msg *resp, const struct tp_dest *branch_dest,
		    const char *gateway, int64_t now_ms);
/*
 * The final response the proxy sends upstream for an initial INVITE (the
 * best of its branches, or one made here: 408, 480, 487...): every dialog
 * of the call still early ends (a 2xx confirmed its own already).
 */
int dlg_on_invite_final(struct dlg_table *t, sv_t callid, sv_t from_tag, unsigned status,
			int64_t now_ms);
/*
 * The relay's view of a call (see struct dlg_media) for the dialog callid /
 * from_tag / to_tag (to_tag empty: every dialog of the call). 0, or ENOENT.
 */
int dlg_media_set(struct dlg_table *t, sv_t callid, sv_t from_tag, sv_t to_tag,
		  const struct dlg_media *m);

/* An in-dialog request routed by our signed Record-Route (BYE, re-INVITE, UPDATE, ACK...). */
int dlg_on_request(struct dlg_table *t, struct sip_msg *m, int64_t now_ms);

/*
 * An INVITE whose Session-Expires is below our Min-SE: our Min-SE, for the
 * 422 the proxy answers (RFC 4028 section 8.1); 0 when the interval is
 * acceptable or there is none. Nobody makes us end a call sooner than that.
 */
unsigned dlg_session_too_brief(const struct dlg_table *t, struct sip_msg *m);

/*
 * The Session-Expires header line to add to a forwarded INVITE m that has
 * none ("" when none is wanted): at least Min-SE, the request's Min-SE
 * included (a 422's retry carries it). Returns its length.
 */
size_t dlg_session_expires_line(const struct dlg_table *t, struct sip_msg *m, char *out,
				size_t len);

/*
 * A 422 (Session Interval Too Small) for an INVITE to which we added
 * Session-Expires: the lines for the retry ("Session-Expires: N\r\nMin-SE:
 * N\r\n", N the 422's Min-SE) into out; their length, or 0 when the 422
 * asks for nothing larger than what out holds, or for more than a day.
 */
size_t dlg_session_expires_retry(const struct dlg_table *t, struct sip_msg *resp, char *out,
				 size_t len);

/*
 * Timers, once a second from one thread: dialogs past their session expiry
 * or dialog.timeout are terminated (hooks run) and given to end() (which
 * sends the BYEs) before they are freed; stale early ones are dropped.
 */
typedef void (*dlg_end_fn)(void *arg, const struct dlg *d);
void dlg_sweep(struct dlg_table *t, int64_t now_ms, dlg_end_fn end, void *arg);

/*
 * Ends the confirmed dialogs of a call (callid, the caller's from_tag) for
 * why (DLG_END_MEDIA_TIMEOUT: the relay saw no RTP): each is terminated
 * (hooks run) and given to end() (which sends the BYEs) before it is
 * freed, as dlg_sweep does. 0, or ENOENT when the call has no confirmed
 * dialog. Not from a hook.
 */
int dlg_end_call(struct dlg_table *t, sv_t callid, sv_t from_tag, enum dlg_end why, dlg_end_fn end,
		 void *arg, int64_t now_ms);

/* Every live dialog (bucket locks held in turn); fn returns non-zero to stop. */
typedef int (*dlg_each_fn)(void *arg, const struct dlg *d);
void dlg_foreach(struct dlg_table *t, dlg_each_fn fn, void *arg);

/*
 * A BYE that ends d towards one side (to_caller: the caller, else the
 * callee), as the other side would send it: Request-URI the side's
 * Contact, the route set, CSeq one above the last seen from the other side,
 * a Reason header. via is the complete Via line (with CRLF). Returns 0, or
 * ENOSPC. dest gets where it goes.
 */
int dlg_build_bye(const struct dlg *d, bool to_caller, sv_t via, struct buf *out,
		  struct tp_dest *dest);

/*
 * Persistence (write-behind): confirmed dialogs are written as records of
 * kind STORE_REC_DIALOG; ended ones are deleted. The database thread calls
 * dlg_flush() now and then, and dlg_load() once at start.
 */
int dlg_load(struct dlg_table *t, struct store *st, int64_t now_ms);
int dlg_flush(struct dlg_table *t, struct store *st);

#endif
