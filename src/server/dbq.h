/*
 * dbq.h - the database thread: the one thread that owns the store handle.
 *
 * Workers never block on disk: they submit jobs here, and a job that has an
 * answer for a worker is posted back to that worker's inbox when done. The
 * thread also runs the periodic database work that modules register before
 * it starts: loading their state at start, writing behind what changed
 * (bindings, dialogs), reacting to changes other processes (the CLI) made,
 * and purging what expired. The thread knows no module by name.
 */
#ifndef SB_SERVER_DBQ_H
#define SB_SERVER_DBQ_H

#include <stdbool.h>
#include <stddef.h>

#include "server/worker.h"

struct store;
struct dbq;

struct dbq_job {
	struct wjob done;	 /* posted to reply_to after run (done.fn runs there) */
	struct worker *reply_to; /* NULL: nothing to post; run() frees the job */
	void (*run)(struct store *st, struct dbq_job *job);
	struct dbq_job *next;
};

/* At most this many registrations of each kind (a registration past it is ENOSPC). */
#define DBQ_MAX_CHORES 16

typedef int (*dbq_start_fn)(void *arg, struct store *st);
typedef void (*dbq_every_fn)(void *arg, struct store *st, bool stopping);
typedef void (*dbq_change_fn)(void *arg, struct store *st);

/* Prepares the thread for the store at location; nothing runs until dbq_start. */
int dbq_create(const char *location, struct dbq **out);
/*
 * Registrations, between dbq_create and dbq_start, run on the database thread
 * in the order they were made:
 *  - on_start: once, after the store is open; an error stops the start (the
 *    function may say why with dbq_fail, else strerror is the reason);
 *  - every: about every period_ms (the thread wakes at least every 100 ms,
 *    or sooner on dbq_kick), and once more with stopping=true at the end;
 *  - on_change: when another process changed the store (polled every 250 ms).
 */
int dbq_on_start(struct dbq *q, dbq_start_fn fn, void *arg);
int dbq_every(struct dbq *q, unsigned period_ms, dbq_every_fn fn, void *arg);
int dbq_on_change(struct dbq *q, dbq_change_fn fn, void *arg);
/* From an on_start function: the reason the start fails, for the operator. */
void dbq_fail(struct dbq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Opens the store on the new thread and runs the on_start functions; err gets the reason. */
int dbq_start(struct dbq *q, char *err, size_t errlen);
/* Finishes queued jobs, runs the every functions a last time, and stops the thread. */
void dbq_destroy(struct dbq *q);
void dbq_submit(struct dbq *q, struct dbq_job *job);
/* Wakes the thread so that the every functions run soon (rate-limited inside). */
void dbq_kick(struct dbq *q);

#endif
