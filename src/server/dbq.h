/*
 * dbq.h - the database thread: the one thread that owns the store handle.
 *
 * Workers never block on disk: they submit jobs here, and a job that has an
 * answer for a worker is posted back to that worker's inbox when done. The
 * thread also does the periodic database work: writing dirty location
 * bindings (write-behind, many per transaction), noticing changes made by
 * other processes (the CLI) so caches can be dropped, and purging expired
 * bindings.
 */
#ifndef SB_SERVER_DBQ_H
#define SB_SERVER_DBQ_H

#include <stddef.h>

#include "server/worker.h"

struct server;
struct store;
struct dbq;

struct dbq_job {
	struct wjob done;	 /* posted to reply_to after run (done.fn runs there) */
	struct worker *reply_to; /* NULL: nothing to post; run() frees the job */
	void (*run)(struct store *st, struct dbq_job *job);
	struct dbq_job *next;
};

/* Opens the store on the new thread; err gets the reason on failure. */
int dbq_create(struct server *srv, const char *location, struct dbq **out, char *err,
	       size_t errlen);
/* Finishes queued jobs, writes what is dirty, and stops the thread. */
void dbq_destroy(struct dbq *q);
void dbq_submit(struct dbq *q, struct dbq_job *job);
/* Wakes the thread for a write-behind flush soon (rate-limited inside). */
void dbq_kick(struct dbq *q);

#endif
