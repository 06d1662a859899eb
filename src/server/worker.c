/*
 * worker.c - a worker thread's event loop, its cross-thread inbox and its
 * deferred-destruction list.
 *
 * The inbox is a mutex-protected list plus an eventfd: a poster only writes
 * the eventfd when the list was empty, so a busy worker that is already
 * draining its inbox is not woken once per job.
 */
#include "server/worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/siphash.h"
#include "dns/dns.h"
#include "request/overload.h"
#include "server/server.h"
#include "services/auth.h"
#include "transport/tport.h"
#include "txn/txn.h"

static void inbox_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wjob *list, *next;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("worker %u: inbox read: %s", w->id, strerror(errno));
	pthread_mutex_lock(&w->inbox_lock);
	list = w->inbox_head;
	w->inbox_head = w->inbox_tail = NULL;
	pthread_mutex_unlock(&w->inbox_lock);
	for (; list; list = next) {
		next = list->next;
		list->fn(w, list);
	}
	worker_reap(w);
}

static void housekeeping(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	tp_housekeeping(w);
	worker_reap(w);
}

void worker_post(struct worker *w, struct wjob *job)
{
	bool was_empty;
	uint64_t one = 1;

	job->next = NULL;
	pthread_mutex_lock(&w->inbox_lock);
	was_empty = w->inbox_head == NULL;
	if (w->inbox_tail)
		w->inbox_tail->next = job;
	else
		w->inbox_head = job;
	w->inbox_tail = job;
	pthread_mutex_unlock(&w->inbox_lock);
	if (was_empty && write(w->inbox_fd, &one, sizeof(one)) < 0)
		log_warn("worker %u: inbox wake-up: %s", w->id, strerror(errno));
}

void worker_defer(struct worker *w, struct wjob *job)
{
	job->next = w->graveyard;
	w->graveyard = job;
}

void worker_reap(struct worker *w)
{
	while (w->graveyard) {
		struct wjob *list = w->graveyard, *next;
		w->graveyard = NULL;
		for (; list; list = next) {
			next = list->next;
			list->fn(w, list);
		}
	}
}

void worker_timer_add(struct worker *w, struct event *ev, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	const struct timeval *ct;

	for (unsigned i = 0; i < w->nctimeouts; i++) {
		if (w->ctimeouts[i].ms == ms) {
			event_add(ev, w->ctimeouts[i].tv);
			return;
		}
	}
	if (ms && w->nctimeouts < sizeof(w->ctimeouts) / sizeof(w->ctimeouts[0]) &&
	    (ct = event_base_init_common_timeout(w->base, &tv))) {
		w->ctimeouts[w->nctimeouts].ms = ms;
		w->ctimeouts[w->nctimeouts].tv = ct;
		w->nctimeouts++;
		event_add(ev, ct);
		return;
	}
	event_add(ev, &tv);
}

const char *worker_date_header(struct worker *w)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != w->date_sec) {
		gmtime_r(&now, &tm);
		strftime(w->date_text, sizeof(w->date_text), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
			 &tm);
		w->date_sec = now;
	}
	return w->date_text;
}

uint64_t worker_next_id(struct worker *w)
{
	/* keyed, not merely mixed: hash_mix is invertible, so one tag or Call-ID we sent would
	 * give the seed away and every later one with it */
	const struct siphash_key k = {w->srv->seed, w->srv->seed ^ 0x6964736571756e63ULL};
	uint64_t in = ((uint64_t)w->id << 56) ^ ++w->seq;

	return siphash13(&k, &in, sizeof(in));
}

int worker_create(struct server *srv, unsigned id, struct worker **out)
{
	struct worker *w = calloc(1, sizeof(*w));
	struct event_config *ec = NULL;
	struct timeval tick = {1, 0};
	int err = ENOMEM;

	if (!w)
		return ENOMEM;
	w->srv = srv;
	w->seed = srv->seed;
	w->rules_slot = srv->rules;
	w->barring = &srv->cfg.barring;
	w->tpt = srv->tp;
	w->txns = srv->txns;
	w->cfg = &srv->cfg;
	w->server_name = srv->cfg.server_name;
	w->id = id;
	w->inbox_fd = -1;
	pthread_mutex_init(&w->inbox_lock, NULL);
	buf_init(&w->req_out, 0);
	buf_init(&w->resp_out, 0);
	buf_init(&w->txn_out, 0);
	buf_init(&w->reply_hdrs, 0);
	ec = event_config_new();
	if (!ec)
		goto out;
	/* Only this thread touches its base: no libevent locking needed. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	w->base = event_base_new_with_config(ec);
	if (!w->base)
		goto out;
	w->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->inbox_fd < 0) {
		err = errno;
		goto out;
	}
	w->inbox_ev = event_new(w->base, w->inbox_fd, EV_READ | EV_PERSIST, inbox_drain, w);
	w->housekeeping_ev = event_new(w->base, -1, EV_PERSIST, housekeeping, w);
	if (!w->inbox_ev || !w->housekeeping_ev)
		goto out;
	event_add(w->inbox_ev, NULL);
	event_add(w->housekeeping_ev, &tick);
	if ((err = auth_hasher_create(&w->hasher)))
		goto out;
	if ((err =
		 dns_resolver_create(w->base, srv->dns_servers, srv->cfg.dns_cache_ttl_s, &w->dns)))
		goto out;
	if ((err = ovl_create(&(struct ovl_params){.enabled = srv->cfg.ovl_enabled,
						   .delay_ms = srv->cfg.ovl_delay_ms,
						   .retry_after = srv->cfg.ovl_retry_after,
						   .validity_ms = srv->cfg.ovl_validity_ms},
			      &w->ovl)))
		goto out;
	if ((err = txn_worker_init(w)))
		goto out;
	if ((err = tp_worker_init(w)))
		goto out;
	err = 0;
out:
	if (ec)
		event_config_free(ec);
	if (err) {
		worker_destroy(w);
		w = NULL;
	}
	*out = w;
	return err;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int worker_start(struct worker *w)
{
	return pthread_create(&w->thread, NULL, worker_main, w);
}

static void stop_job(struct worker *w, struct wjob *job)
{
	free(job);
	event_base_loopbreak(w->base);
}

void worker_stop(struct worker *w)
{
	struct wjob *job = calloc(1, sizeof(*job));

	if (job) {
		job->fn = stop_job;
		worker_post(w, job);
	}
	pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
	struct wjob *list, *next;

	if (!w)
		return;
	/* jobs nobody will act on: with the server stopping, each only frees itself */
	list = w->inbox_head;
	w->inbox_head = w->inbox_tail = NULL;
	for (; list; list = next) {
		next = list->next;
		list->fn(w, list);
	}
	worker_reap(w);
	txn_worker_fini(w);
	tp_worker_fini(w);
	worker_reap(w);
	if (w->dns)
		dns_resolver_destroy(w->dns);
	ovl_destroy(w->ovl);
	rules_view_release(&w->rules);
	if (w->hasher)
		auth_hasher_destroy(w->hasher);
	if (w->inbox_ev)
		event_free(w->inbox_ev);
	if (w->housekeeping_ev)
		event_free(w->housekeeping_ev);
	if (w->inbox_fd >= 0)
		close(w->inbox_fd);
	if (w->base)
		event_base_free(w->base);
	buf_free(&w->req_out);
	buf_free(&w->resp_out);
	buf_free(&w->txn_out);
	buf_free(&w->reply_hdrs);
	pthread_mutex_destroy(&w->inbox_lock);
	free(w);
}
