/*
 * dbq.c - the database thread: a job queue with a condition variable, and
 * the periodic work modules registered (write-behind, change detection,
 * purge), run in the order of registration.
 *
 * Batching many writes per SQLite transaction on this one thread is what
 * lets the registrar run at wire speed and still survive a restart. The
 * thread knows no module: the server assembly registers each one's chores.
 */
#include "server/dbq.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store/store.h"

#define DBQ_WAKE_MS    100
#define DBQ_VERSION_MS 250
#define DBQ_PURGE_S    60

struct dbq_start_reg {
	dbq_start_fn fn;
	void *arg;
};

struct dbq_every_reg {
	dbq_every_fn fn;
	void *arg;
	unsigned period_ms;
	int64_t last_ms;
};

struct dbq_change_reg {
	dbq_change_fn fn;
	void *arg;
};

enum dbq_state {
	DBQ_CREATED, /* registrations allowed */
	DBQ_RUNNING,
	DBQ_FAILED, /* the start failed: the thread has ended */
};

struct dbq {
	struct store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dbq_job *head;
	struct dbq_job *tail;
	enum dbq_state state;
	bool stop;
	bool kicked;
	/* start-up handshake */
	bool ready;
	int start_err;
	char err[512];
	uint64_t data_version;
	char *location;
	struct dbq_start_reg starts[DBQ_MAX_CHORES];
	struct dbq_every_reg everys[DBQ_MAX_CHORES];
	struct dbq_change_reg changes[DBQ_MAX_CHORES];
	size_t nstarts, neverys, nchanges;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dbq_on_start(struct dbq *q, dbq_start_fn fn, void *arg)
{
	if (q->state != DBQ_CREATED)
		return EBUSY;
	if (q->nstarts == DBQ_MAX_CHORES)
		return ENOSPC;
	q->starts[q->nstarts++] = (struct dbq_start_reg){fn, arg};
	return 0;
}

int dbq_every(struct dbq *q, unsigned period_ms, dbq_every_fn fn, void *arg)
{
	if (q->state != DBQ_CREATED)
		return EBUSY;
	if (q->neverys == DBQ_MAX_CHORES)
		return ENOSPC;
	q->everys[q->neverys++] = (struct dbq_every_reg){fn, arg, period_ms, 0};
	return 0;
}

int dbq_on_change(struct dbq *q, dbq_change_fn fn, void *arg)
{
	if (q->state != DBQ_CREATED)
		return EBUSY;
	if (q->nchanges == DBQ_MAX_CHORES)
		return ENOSPC;
	q->changes[q->nchanges++] = (struct dbq_change_reg){fn, arg};
	return 0;
}

void dbq_fail(struct dbq *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
}

static void check_changes(struct dbq *q)
{
	uint64_t v;

	if (store_data_version(q->store, &v) || v == q->data_version)
		return;
	q->data_version = v;
	log_debug("database changed by another process");
	for (size_t i = 0; i < q->nchanges; i++)
		q->changes[i].fn(q->changes[i].arg, q->store);
}

/* Expired rows are the store's own business, whoever wrote them. */
static void purge(struct dbq *q)
{
	size_t n = 0;

	if (store_binding_purge(q->store, (int64_t)time(NULL), &n) == 0 && n)
		log_debug("purged %zu expired bindings from the store", n);
	n = 0;
	if (store_record_purge(q->store, (int64_t)time(NULL), &n) == 0 && n)
		log_debug("purged %zu expired records from the store", n);
}

static void run_jobs(struct dbq *q, struct dbq_job *list)
{
	struct dbq_job *next;

	for (; list; list = next) {
		next = list->next;
		list->run(q->store, list);
		/* run() either freed the job or handed it back through reply_to */
	}
}

static void run_everys(struct dbq *q, int64_t now, bool kicked)
{
	for (size_t i = 0; i < q->neverys; i++) {
		struct dbq_every_reg *e = &q->everys[i];
		if (!kicked && now - e->last_ms < (int64_t)e->period_ms)
			continue;
		e->fn(e->arg, q->store, false);
		e->last_ms = now;
	}
}

static int open_and_load(struct dbq *q)
{
	int err = store_open(q->location, &q->store, q->err, sizeof(q->err));

	for (size_t i = 0; !err && i < q->nstarts; i++)
		err = q->starts[i].fn(q->starts[i].arg, q->store);
	if (!err)
		store_data_version(q->store, &q->data_version);
	return err;
}

/* Waits for work or the next wake-up; returns the jobs taken, *stop and *kicked. */
static struct dbq_job *wait_work(struct dbq *q, bool *stop, bool *kicked)
{
	struct dbq_job *list;

	pthread_mutex_lock(&q->lock);
	while (!q->head && !q->stop && !q->kicked) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += DBQ_WAKE_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&q->cond, &q->lock, &until) == ETIMEDOUT)
			break;
	}
	list = q->head;
	q->head = q->tail = NULL;
	*stop = q->stop;
	*kicked = q->kicked;
	q->kicked = false;
	pthread_mutex_unlock(&q->lock);
	return list;
}

static void *dbq_main(void *arg)
{
	struct dbq *q = arg;
	int64_t last_version = now_ms(), last_purge = last_version;
	int err = open_and_load(q);

	for (size_t i = 0; i < q->neverys; i++)
		q->everys[i].last_ms = last_version;
	pthread_mutex_lock(&q->lock);
	q->ready = true;
	q->start_err = err;
	if (err && !q->err[0])
		snprintf(q->err, sizeof(q->err), "%s",
			 q->store ? store_errmsg(q->store) : strerror(err));
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (err)
		return NULL;

	for (;;) {
		bool stop, kicked;
		struct dbq_job *list = wait_work(q, &stop, &kicked);
		int64_t now;

		run_jobs(q, list);
		now = now_ms();
		run_everys(q, now, kicked);
		if (now - last_version >= DBQ_VERSION_MS) {
			check_changes(q);
			last_version = now;
		}
		if (now - last_purge >= DBQ_PURGE_S * 1000) {
			purge(q);
			last_purge = now;
		}
		if (stop) {
			pthread_mutex_lock(&q->lock);
			list = q->head;
			q->head = q->tail = NULL;
			pthread_mutex_unlock(&q->lock);
			if (!list)
				break;
			run_jobs(q, list);
		}
	}
	/* a clean stop writes what was not written yet */
	for (size_t i = 0; i < q->neverys; i++)
		q->everys[i].fn(q->everys[i].arg, q->store, true);
	return NULL;
}

int dbq_create(const char *location, struct dbq **out)
{
	struct dbq *q = calloc(1, sizeof(*q));

	if (!q)
		return ENOMEM;
	q->location = strdup(location);
	if (!q->location) {
		free(q);
		return ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	*out = q;
	return 0;
}

int dbq_start(struct dbq *q, char *err, size_t errlen)
{
	int rc;

	if (q->state != DBQ_CREATED)
		return EBUSY;
	rc = pthread_create(&q->thread, NULL, dbq_main, q);
	if (rc) {
		snprintf(err, errlen, "cannot start the database thread: %s", strerror(rc));
		q->state = DBQ_FAILED;
		return rc;
	}
	pthread_mutex_lock(&q->lock);
	while (!q->ready)
		pthread_cond_wait(&q->cond, &q->lock);
	rc = q->start_err;
	pthread_mutex_unlock(&q->lock);
	if (rc) {
		snprintf(err, errlen, "%s", q->err);
		pthread_join(q->thread, NULL);
		q->state = DBQ_FAILED;
		return rc;
	}
	q->state = DBQ_RUNNING;
	return 0;
}

void dbq_destroy(struct dbq *q)
{
	if (!q)
		return;
	if (q->state == DBQ_RUNNING) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
	}
	if (q->store)
		store_close(q->store);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->location);
	free(q);
}

void dbq_submit(struct dbq *q, struct dbq_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		q->tail->next = job;
	else
		q->head = job;
	q->tail = job;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void dbq_kick(struct dbq *q)
{
	pthread_mutex_lock(&q->lock);
	if (!q->kicked) {
		q->kicked = true;
		pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}
