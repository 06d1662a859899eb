/*
 * cdr.h - billing records: one record per call attempt, built from the
 * dialog layer's hooks, written durably by the database thread, read back
 * by `switchboard cdr ...` (docs/billing.md).
 *
 * Why it exists: seed 004 asks for per-call records (who called whom, when,
 * for how long, how it ended, with which media) per caller and per
 * account, and a record must never be lost on a crash. The module plugs in
 * by registering a dialog hook table (dlg_hooks_add), never by being
 * called from the proxy.
 *
 * Threads: the hooks run on any worker with a dialog bucket lock held; they
 * copy what the record needs into a per-call entry (one mutex, never held
 * while blocking) and queue finished records. The database thread writes
 * the queue inside the dialogs' own write-behind transaction (dlg_flush's
 * on_flush hook), so a finished call's record and its dialog's deletion
 * are one commit.
 */
#ifndef SB_SERVICES_CDR_H
#define SB_SERVICES_CDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "dialog/dialog.h"
#include "transport/tport.h"

struct store;
struct cdr;

#define CDR_LEGS_MAX 8 /* branches kept in a record's history (beyond: counted) */

/* How the attempt ended, for the bill. */
enum cdr_disp {
	CDR_ANSWERED = 0,
	CDR_BUSY,	/* 486, 600 */
	CDR_CANCELLED,	/* 487: the caller gave up */
	CDR_UNANSWERED, /* 408, 480: nobody answered */
	CDR_FAILED,	/* any other final >= 300 */
};

/* A branch of the attempt: a terminal that rang, or a gateway that refused. */
struct cdr_leg {
	char target[160];  /* the Contact of the terminal that answered it, "" = none */
	char totag[64];	   /* its To tag, "" = none */
	char gateway[64];  /* the gateway the branch reached, "" = none */
	struct tp_addr to; /* where the branch went */
	unsigned status;   /* its final (or 180/183 while it rang) */
	int64_t ring_ms;   /* when it started ringing, 0 = never */
};

struct cdr_rec {
	uint64_t id; /* the dialog's (or the attempt's) id: the store key */
	char callid[256];
	char identity[256]; /* authenticated user or trusted peer, "" = nobody */
	char account[256];  /* who pays: the identity ("" = nobody) */
	char from[256];	    /* the From URI */
	char dialled[256];  /* the Request-URI of the INVITE */
	char target[256];   /* the Contact of the side that answered (or rang last) */
	char gateway[64];   /* the gateway of the answering branch, "" = none */
	struct tp_addr src; /* where the INVITE came from */
	int64_t start_ms, ring_ms, answer_ms, end_ms; /* Unix ms, 0 = never */
	unsigned status;			      /* the INVITE's final */
	enum cdr_disp disp;
	enum dlg_end end; /* who or what ended it; DLG_END_NONE for a crash record */
	enum cdr_life {
		CDR_LIFE_WHOLE = 0, /* the server saw the call from start to end */
		CDR_LIFE_CRASH,	    /* in progress when the server died: ended at its last sign */
		CDR_LIFE_RECOVERED, /* went on across a restart (it replaces its crash record) */
	} life;
	bool truncated;		  /* a value was longer than its field (counted) */
	unsigned session_expires; /* RFC 4028 interval in force, 0 = none */
	struct dlg_media media;
	unsigned nlegs, legs_dropped;
	struct cdr_leg legs[CDR_LEGS_MAX];
};

struct cdr_conf {
	unsigned keep_days; /* 0 = forever */
	unsigned max_calls; /* calls followed at once (their ringing history); beyond: counted */
	size_t max_queue;   /* records waiting for the database; beyond: dropped, counted, logged */
};

struct cdr_stats {
	uint64_t written, dropped, calls_capped, truncated, crash_records;
	size_t queued, calls;
};

int cdr_create(const struct cdr_conf *conf, struct cdr **out);
void cdr_destroy(struct cdr *c);
/* Registers the hooks on the dialog table (before the workers start). */
int cdr_attach(struct cdr *c, struct dlg_table *t);
void cdr_stats_get(struct cdr *c, struct cdr_stats *out);

/*
 * On the database thread, once at start after the dialogs were loaded
 * (dlg_load): every dialog left in the store was in progress when the
 * server stopped; it gets a record ended at the crash (the last heartbeat),
 * replaced by the real one if the call goes on and ends later. Its
 * signature is a dbq start function.
 */
int cdr_db_start(void *arg, struct store *st);

/* Records taken from the queue for the caller (tests; the server writes through dlg_flush). */
size_t cdr_take(struct cdr *c, struct cdr_rec **out, size_t max);

/* Builder (pure): the parts a record is made of, from dialogs. */
void cdr_rec_from_dlg(struct cdr_rec *r, const struct dlg *d);
void cdr_rec_finish(struct cdr_rec *r, const struct dlg *d, enum dlg_end why, int64_t now_ms);
enum cdr_disp cdr_disp_of(unsigned status, bool answered);
const char *cdr_disp_name(enum cdr_disp d);
/* Talk time in ms (end - answer), and the billable seconds: that rounded up, 0 if unanswered. */
int64_t cdr_talk_ms(const struct cdr_rec *r);
int64_t cdr_billable_s(const struct cdr_rec *r);
/* "bye-caller", "crash", ...: who ended it. */
const char *cdr_ended_by(const struct cdr_rec *r);

/* The store's form: "name: value" lines, and back (EINVAL: not a record). */
int cdr_rec_meta(const struct cdr_rec *r, struct buf *out);
int cdr_rec_parse(const char *key, const char *meta, struct cdr_rec *r);

/* Exports: a CSV header line and one row (RFC 4180, spreadsheet formulas defused). */
void cdr_csv_header(struct buf *out);
void cdr_csv_row(const struct cdr_rec *r, struct buf *out);
/* One JSON object (valid UTF-8 whatever the input: invalid bytes become U+FFFD). */
void cdr_json(const struct cdr_rec *r, struct buf *out);

/*
 * A date for the filters: Unix seconds ("1700000000"), or ISO 8601 UTC
 * ("2026-12-07", "2026-12-07T18:30", "2026-12-07T18:30:05", optional "Z" or
 * "+01:00"). *ms gets Unix ms. EINVAL with a reason in why.
 */
int cdr_parse_time(const char *s, int64_t *ms, char *why, size_t whylen);
/* ISO 8601 UTC with milliseconds ("2026-12-07T18:30:05.123Z"), "" for 0. */
void cdr_format_time(int64_t ms, char *out, size_t len);

#endif
