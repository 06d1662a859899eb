/*
 * test_pipeline.c - the proxy pipeline's table of handlers and the request
 * layer's continuation, without a whole server: handlers run in phase order,
 * only for the methods and requests they want; a handler that waits for a
 * lookup parks the request (its bytes and the pipeline's state) and it
 * resumes at that handler, with that handler's state, without running the
 * handlers before it again (counted); a worker parks at most suspend_cap
 * requests (the next one is refused, counted); a retransmission of a parked
 * request is recognised; a request parked again reuses its continuation and
 * gives up after PROXY_MAX_RESUMES.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "proxy/proxy.h"
#include "server/server.h"
#include "server/worker.h"
#include "sip/sip.h"
#include "transport/tport.h"
#include "txn/txn.h"

static const char invite[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
			     "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-test-%u\r\n"
			     "Max-Forwards: 70\r\n"
			     "From: <sip:alice@example.com>;tag=a1\r\n"
			     "To: <sip:bob@example.com>\r\n"
			     "Call-ID: c%u@192.0.2.1\r\n"
			     "CSeq: 1 INVITE\r\n"
			     "Content-Length: 0\r\n\r\n";

/* What the test handlers saw. */
struct trace {
	char order[64]; /* one letter per handler call */
	size_t n;
	unsigned calls[8];
	unsigned wait_times; /* how often handler 'w' still waits before it continues */
	unsigned state_seen; /* r->phase_state when 'w' continued */
	struct wjob *jobs[8];
	unsigned njobs;
	int wait_errno;
};

/* The pipeline's context in this test: the preq first, as proxy.h asks. */
struct tctx {
	struct preq r;
	const struct proxy_pipeline *p;
	struct trace *t;
};

/* The network: the status of every reply sent (a waiting INVITE gets 100 Trying). */
static unsigned sent_status[16];
static unsigned nsent;

static int fake_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len)
{
	unsigned st = 0;

	(void)w;
	(void)d;
	if (len > 12 && memcmp(data, "SIP/2.0 ", 8) == 0)
		st = (unsigned)atoi(data + 8);
	if (nsent < 16)
		sent_status[nsent++] = st;
	return 0;
}

static void on_msg(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src)
{
	(void)w;
	(void)m;
	(void)parse_err;
	(void)src;
}

struct fixture {
	struct server srv;
	struct worker w;
	struct proxy_pipeline p;
	struct trace t;
	struct sip_msg msgs[4];
	char bufs[4][512];
};

static enum proxy_step note(struct preq *r, void *arg)
{
	struct trace *t = ((struct tctx *)r)->t;
	char c = (char)(uintptr_t)arg;

	if (t->n + 1 < sizeof(t->order))
		t->order[t->n++] = c;
	t->calls[(c - 'a') & 7]++;
	return PROXY_CONTINUE;
}

/* 'w': waits (a lookup) wait_times times, then continues; phase_state counts its waits. */
static enum proxy_step waits(struct preq *r, void *arg)
{
	struct trace *t = ((struct tctx *)r)->t;
	struct wjob *job;

	note(r, arg);
	if (r->phase_state >= t->wait_times) {
		t->state_seen = r->phase_state;
		return PROXY_CONTINUE;
	}
	job = proxy_wait(r);
	if (!job) {
		t->wait_errno = errno;
		return PROXY_DONE; /* a real handler answers 503 here */
	}
	r->phase_state++;
	t->jobs[t->njobs++ & 7] = job; /* the lookup holds it until its answer */
	return PROXY_SUSPENDED;
}

static enum proxy_step stop(struct preq *r, void *arg)
{
	note(r, arg);
	return PROXY_DONE;
}

static bool never(const struct preq *r, void *arg)
{
	(void)r;
	(void)arg;
	return false;
}

static void resume(struct preq *r)
{
	proxy_pipeline_run(((struct tctx *)r)->p, r);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(txn_table_create(f->srv.seed, &f->srv.txns), 0);
	{
		char err[128];
		assert_int_equal(tp_table_create(&f->srv, on_msg, &f->srv.tp, err, sizeof(err)), 0);
	}
	tp_table_set_send(f->srv.tp, fake_send);
	nsent = 0;
	f->w.srv = &f->srv;
	f->w.cfg = &f->srv.cfg;
	f->w.txns = f->srv.txns;
	f->w.tpt = f->srv.tp;
	f->w.suspend_cap = PROXY_MAX_SUSPENDED;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < 4; i++)
		sip_msg_release(&f->msgs[i]);
	txn_table_destroy(f->srv.txns);
	tp_table_destroy(f->srv.tp);
	buf_free(&f->w.resp_out); /* the replies' buffer (worker_destroy's job in the server) */
	free(f);
	return 0;
}

/* Request i of the fixture (a distinct branch and Call-ID each), parsed and checked. */
static struct sip_msg *request(struct fixture *f, unsigned i, unsigned branch)
{
	int n = snprintf(f->bufs[i], sizeof(f->bufs[i]), invite, branch, branch);

	assert_int_equal(sip_parse(&f->msgs[i], f->bufs[i], (size_t)n, 0), 0);
	assert_int_equal(sip_request_check(&f->msgs[i]), 0);
	return &f->msgs[i];
}

static enum proxy_step run(struct fixture *f, struct tctx *c, struct sip_msg *m,
			   const struct tp_src *src)
{
	memset(c, 0, sizeof(*c));
	c->r.w = &f->w;
	c->r.srv = &f->srv;
	c->r.m = m;
	c->r.src = src;
	c->r.ctx_len = sizeof(*c);
	c->r.resume = resume;
	c->p = &f->p;
	c->t = &f->t;
	return proxy_pipeline_run(&f->p, &c->r);
}

static void add(struct fixture *f, enum proxy_phase ph, int order, char name,
		enum proxy_step (*fn)(struct preq *, void *))
{
	struct proxy_handler h = {.name = "test",
				  .phase = ph,
				  .order = order,
				  .methods = PROXY_ALL_METHODS,
				  .handle = fn,
				  .arg = (void *)(uintptr_t)name};

	assert_int_equal(proxy_pipeline_add(&f->p, &h), 0);
}

/* Handlers run by phase, then order, then registration, whatever order they came in. */
static void test_phase_order(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {0};
	struct tctx c;
	struct proxy_handler skip = {.name = "skip",
				     .phase = PROXY_PHASE_AUTH,
				     .methods = PROXY_ALL_METHODS,
				     .wants = never,
				     .handle = stop,
				     .arg = (void *)(uintptr_t)'x'};
	struct proxy_handler bye_only = {.name = "bye",
					 .phase = PROXY_PHASE_LOCAL,
					 .methods = PROXY_METHOD(SIP_BYE),
					 .handle = stop,
					 .arg = (void *)(uintptr_t)'y'};

	add(f, PROXY_PHASE_TARGET, PROXY_ORDER_ROUTE, 'f', note);
	add(f, PROXY_PHASE_AUTH, PROXY_ORDER_SERVICE, 'd', note);
	add(f, PROXY_PHASE_ADMIT, PROXY_ORDER_SERVICE, 'b', note);
	add(f, PROXY_PHASE_TARGET, PROXY_ORDER_SERVICE, 'e', note);
	add(f, PROXY_PHASE_ADMIT, PROXY_ORDER_FIRST, 'a', note);
	add(f, PROXY_PHASE_POLICY, PROXY_ORDER_CORE, 'c', note);
	assert_int_equal(proxy_pipeline_add(&f->p, &skip), 0);
	assert_int_equal(proxy_pipeline_add(&f->p, &bye_only), 0);
	assert_int_equal(f->p.n, 8);
	assert_int_equal(run(f, &c, request(f, 0, 1), &src), PROXY_CONTINUE);
	assert_string_equal(f->t.order, "abcdef"); /* 'x' wants nothing, 'y' only BYE */
}

/* A full table refuses one more (counted as an error, not dropped silently). */
static void test_table_full(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < PROXY_MAX_HANDLERS; i++)
		add(f, PROXY_PHASE_TARGET, 0, 'a', note);
	struct proxy_handler h = {.name = "one too many",
				  .phase = PROXY_PHASE_TARGET,
				  .methods = PROXY_ALL_METHODS,
				  .handle = note};
	assert_int_equal(proxy_pipeline_add(&f->p, &h), ENOSPC);
}

/* Waiting at 'w' (twice): the handlers before it run once, 'w' resumes with its state. */
static void test_suspend_resume_no_rerun(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {.conn_id = 7};
	struct tctx c;
	struct wjob *job;

	add(f, PROXY_PHASE_ADMIT, 0, 'a', note);
	add(f, PROXY_PHASE_AUTH, 0, 'b', note);
	add(f, PROXY_PHASE_ACCESS, 0, 'w', waits);
	add(f, PROXY_PHASE_TARGET, 0, 'c', note);
	f->t.wait_times = 2;
	assert_int_equal(run(f, &c, request(f, 0, 2), &src), PROXY_SUSPENDED);
	assert_int_equal(f->w.suspended, 1);
	assert_int_equal(f->w.stats.suspended, 1);
	/* the receive buffer is reused for the next datagram: the continuation has its own copy */
	memset(f->bufs[0], 'X', sizeof(f->bufs[0]));
	memset(&c, 0, sizeof(c));

	job = f->t.jobs[0];
	job->fn(&f->w, job); /* the lookup's answer, run on the owning worker */
	assert_string_equal(f->t.order, "abww");
	assert_int_equal(f->w.suspended, 1); /* waiting again: the same continuation */
	assert_ptr_equal(f->t.jobs[1], job);

	job->fn(&f->w, job);
	assert_string_equal(f->t.order, "abwwwc");
	assert_int_equal(f->t.calls['a' - 'a'], 1);
	assert_int_equal(f->t.calls['b' - 'a'], 1); /* never verified twice */
	assert_int_equal(f->t.calls['c' - 'a'], 1);
	assert_int_equal(f->t.state_seen, 2); /* the handler's own progress was kept */
	assert_int_equal(f->w.suspended, 0);
	assert_int_equal(f->w.stats.suspended, 1);
}

/* A request that waits more than PROXY_MAX_RESUMES times is given up (no loop). */
static void test_resume_limit(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {0};
	struct tctx c;
	struct wjob *job;

	add(f, PROXY_PHASE_ACCESS, 0, 'w', waits);
	add(f, PROXY_PHASE_TARGET, 0, 'c', note);
	f->t.wait_times = 100;
	assert_int_equal(run(f, &c, request(f, 0, 3), &src), PROXY_SUSPENDED);
	job = f->t.jobs[0];
	for (unsigned i = 0; i < PROXY_MAX_RESUMES; i++)
		job->fn(&f->w, job);
	assert_int_equal(f->t.wait_errno, ELOOP);
	assert_int_equal(f->t.calls['c' - 'a'], 0);
	assert_int_equal(f->w.suspended, 0);
}

/* suspend_cap requests wait; the next is refused (EBUSY, counted), the first resume frees one. */
static void test_cap(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {0};
	struct tctx c;

	f->w.suspend_cap = 2;
	add(f, PROXY_PHASE_ACCESS, 0, 'w', waits);
	add(f, PROXY_PHASE_TARGET, 0, 'c', note);
	f->t.wait_times = 1;
	assert_int_equal(run(f, &c, request(f, 0, 10), &src), PROXY_SUSPENDED);
	assert_int_equal(run(f, &c, request(f, 1, 11), &src), PROXY_SUSPENDED);
	assert_int_equal(run(f, &c, request(f, 2, 12), &src), PROXY_DONE);
	assert_int_equal(f->t.wait_errno, EBUSY);
	assert_int_equal(f->w.stats.suspend_refused, 1);
	assert_int_equal(f->w.suspended, 2);

	f->t.jobs[0]->fn(&f->w, f->t.jobs[0]);
	assert_int_equal(f->w.suspended, 1);
	assert_int_equal(run(f, &c, request(f, 3, 13), &src), PROXY_SUSPENDED);
	f->t.jobs[1]->fn(&f->w, f->t.jobs[1]);
	f->t.jobs[2]->fn(&f->w, f->t.jobs[2]);
	assert_int_equal(f->w.suspended, 0);
	assert_int_equal(f->t.calls['c' - 'a'], 3);
}

/* A retransmission of a waiting request is recognised (absorbed); another request is not. */
static void test_retransmission_of_waiting(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {0};
	struct tctx c, again;

	add(f, PROXY_PHASE_ACCESS, 0, 'w', waits);
	f->t.wait_times = 1;
	assert_int_equal(run(f, &c, request(f, 0, 20), &src), PROXY_SUSPENDED);
	/* RFC 3261 16.2: the waiting INVITE got its 100 Trying at once */
	assert_int_equal(nsent, 1);
	assert_int_equal(sent_status[0], 100);
	memset(&again, 0, sizeof(again));
	again.r.w = &f->w;
	again.r.srv = &f->srv;
	again.r.src = &src;
	again.r.m = request(f, 1, 20);
	assert_true(proxy_waiting_absorb(&again.r));
	/* RFC 3261 17.2.1: its retransmission gets the provisional again */
	assert_int_equal(nsent, 2);
	assert_int_equal(sent_status[1], 100);
	again.r.m = request(f, 2, 21);
	assert_false(proxy_waiting_absorb(&again.r));
	f->t.jobs[0]->fn(&f->w, f->t.jobs[0]);
	again.r.m = request(f, 1, 20);
	assert_false(proxy_waiting_absorb(&again.r)); /* no longer waiting */
}

/* Stopping: a continuation posted back while the server stops is freed, not run. */
static void test_stopping(void **state)
{
	struct fixture *f = *state;
	struct tp_src src = {0};
	struct tctx c;

	add(f, PROXY_PHASE_ACCESS, 0, 'w', waits);
	add(f, PROXY_PHASE_TARGET, 0, 'c', note);
	f->t.wait_times = 1;
	assert_int_equal(run(f, &c, request(f, 0, 30), &src), PROXY_SUSPENDED);
	atomic_store(&f->srv.stopping, true);
	f->t.jobs[0]->fn(&f->w, f->t.jobs[0]);
	assert_int_equal(f->t.calls['c' - 'a'], 0);
	assert_int_equal(f->w.suspended, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_phase_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suspend_resume_no_rerun, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resume_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retransmission_of_waiting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stopping, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
