/*
 * test_fwd.c - the middle without a whole server: the forwarding state
 * machine of proxy/fwd.c (RFC 3261 16.7, 16.8, 16.10, and the gateways'
 * outbound digest), and callee_route (proxy/callee.c: a local user's
 * terminals rung by their settings, sequential and q-value steps,
 * forwarding unconditional, on busy and on no answer).
 *
 * The fixture builds a server of one worker whose loop never runs by
 * itself: the transport's send hook (tp_table_set_send) records every
 * message that would go on the wire instead of sending it, the test injects
 * the callees' responses through the transaction layer
 * (txn_cli_dispatch, as the transport would) and fires timers at once
 * (fwd_timer_fire, the same code as their libevent callbacks). Nothing
 * waits on the clock, so each case is exact: which request went where,
 * which response the caller got, and the states of the proxy transaction
 * and of each branch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "proxy/internal.h"
#include "server/server.h"
#include "server/worker.h"
#include "services/auth.h"
#include "services/dialplan.h"
#include "services/location.h"
#include "services/rules.h"
#include "services/terminal.h"
#include "services/users.h"
#include "sip/sip.h"
#include "transport/tport.h"
#include "txn/txn.h"

#define MAX_TX	64
#define MSG_MAX 4096

#define CALLER_PORT 5070
#define GW_PORT	    5080

struct sent {
	struct tp_dest dest;
	size_t len;
	char data[MSG_MAX];
};

struct fx {
	struct server srv;
	struct worker *w;
	struct sent *tx;
	size_t ntx;
	struct sip_msg req; /* the caller's request being handled */
	char reqbuf[MSG_MAX];
	struct tp_src src; /* the caller */
	struct ptx *ptx;
	int64_t now;
};

static struct fx *g;

/* The network: everything sent is recorded here. */
static int fake_send(struct worker *w, const struct tp_dest *d, const char *data, size_t len)
{
	(void)w;
	if (g->ntx < MAX_TX && len < MSG_MAX) {
		struct sent *s = &g->tx[g->ntx++];
		s->dest = *d;
		s->len = len;
		memcpy(s->data, data, len);
		s->data[len] = '\0';
	}
	return 0;
}

static void on_msg(struct worker *w, struct sip_msg *m, int parse_err, const struct tp_src *src)
{
	(void)w;
	(void)m;
	(void)parse_err;
	(void)src;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rules_conf *rc = calloc(1, sizeof(*rc));
	struct dp_gateway *gw;
	char err[256] = "";
	unsigned line = 0;

	if (!f || !rc)
		return -1;
	f->tx = calloc(MAX_TX, sizeof(*f->tx));
	if (!f->tx)
		return -1;
	g = f;
	log_set_level(LOG_ERROR);
	cfg_defaults(&f->srv.cfg);
	f->srv.cfg.workers = 1;
	f->srv.cfg.nlisten = 1;
	f->srv.cfg.listen[0].proto = SIP_PROTO_UDP;
	strcpy(f->srv.cfg.listen[0].host, "127.0.0.1");
	/* a port of its own (our Via names it): nothing is ever sent from it */
	f->srv.cfg.listen[0].port = (uint16_t)(20000 + getpid() % 20000);
	f->srv.seed = 0x5eed5eed5eedULL;
	f->srv.nworkers = 1;
	snprintf(f->srv.cfg.domains[0], sizeof(f->srv.cfg.domains[0]), "example.com");
	f->srv.cfg.ndomains = 1;
	atomic_init(&f->srv.stopping, false);
	/* one gateway that challenges us, with our account's credentials */
	gw = &f->srv.cfg.dialplan.gw[0];
	snprintf(gw->name, sizeof(gw->name), "gw1");
	snprintf(gw->host, sizeof(gw->host), "127.0.0.3");
	gw->port = GW_PORT;
	gw->probe = false;
	snprintf(gw->cred.user, sizeof(gw->cred.user), "trunk1");
	snprintf(gw->cred.realm, sizeof(gw->cred.realm), "carrier.example");
	dp_cred_hash(&gw->cred, SV("s3cret"));
	f->srv.cfg.dialplan.ngw = 1;
	f->srv.cfg.dialplan.ring_timeout_ms = 60000; /* every gateway's ring timeout */
	if (dp_config_resolve(&f->srv.cfg.dialplan, err, sizeof(err), &line)) {
		print_error("dialplan: %s\n", err);
		return -1;
	}
	rules_conf_from_cfg(rc, &f->srv.cfg);
	if (txn_table_create(f->srv.seed, &f->srv.txns) ||
	    tp_table_create(&f->srv, on_msg, &f->srv.tp, err, sizeof(err)) ||
	    rules_slot_create(&f->srv.rules) || rules_publish(f->srv.rules, rc) ||
	    users_create(&f->srv, 1024, &f->srv.users) || loc_create(f->srv.seed, &f->srv.loc) ||
	    worker_create(&f->srv, 0, &f->w)) {
		print_error("fixture: %s\n", err);
		return -1;
	}
	free(rc);
	f->srv.workers[0] = f->w;
	tp_table_set_send(f->srv.tp, fake_send);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sip_msg_release(&f->req);
	worker_destroy(f->w); /* ends the proxy transactions still in the table */
	tp_table_destroy(f->srv.tp);
	txn_table_destroy(f->srv.txns);
	rules_slot_destroy(f->srv.rules);
	users_destroy(f->srv.users);
	loc_destroy(f->srv.loc);
	free(f->tx);
	free(f);
	g = NULL;
	return 0;
}

/*
 * Helpers
 */
static void addr(struct tp_addr *a, const char *ip, uint16_t port)
{
	assert_int_equal(tp_addr_from_str(ip, port, SIP_PROTO_UDP, a), 0);
}

static struct fwd_target target(const char *hop)
{
	struct fwd_target t;

	memset(&t, 0, sizeof(t));
	snprintf(t.hop, sizeof(t.hop), "%s", hop);
	return t;
}

static void parse_request(const char *text, struct preq *r)
{
	size_t n = strlen(text);

	assert_true(n < sizeof(g->reqbuf));
	memcpy(g->reqbuf, text, n);
	sip_msg_release(&g->req);
	memset(&g->req, 0, sizeof(g->req));
	assert_int_equal(sip_parse(&g->req, g->reqbuf, n, 0), 0);
	assert_int_equal(sip_request_check(&g->req), 0);
	memset(&g->src, 0, sizeof(g->src));
	addr(&g->src.peer, "127.0.0.9", CALLER_PORT);
	memset(r, 0, sizeof(*r));
	r->w = g->w;
	r->srv = &g->srv;
	r->m = &g->req;
	r->src = &g->src;
	r->authenticated = true; /* a caller we bill: gateways are allowed */
}

#define INVITE_TEXT                                                                                \
	"INVITE sip:bob@example.com SIP/2.0\r\n"                                                   \
	"Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKcaller1\r\n"                                \
	"Max-Forwards: 70\r\n"                                                                     \
	"From: <sip:alice@example.com>;tag=a1\r\n"                                                 \
	"To: <sip:bob@example.com>\r\n"                                                            \
	"Call-ID: call1@test\r\n"                                                                  \
	"CSeq: 1 INVITE\r\n"                                                                       \
	"Contact: <sip:alice@127.0.0.9:5070>\r\n"                                                  \
	"Content-Length: 0\r\n\r\n"

/* The caller's INVITE, forked in one step to these targets. */
static struct ptx *call_steps(const struct fwd_step *steps, size_t n)
{
	struct preq r;
	struct fwd_plan plan = {.loop_hash = 0x1234};

	parse_request(INVITE_TEXT, &r);
	assert_int_equal(fwd_stateful_steps(&r, &plan, steps, n, NULL), PROXY_DONE);
	assert_non_null(r.ptx);
	tp_flush(g->w);
	g->ptx = r.ptx;
	return r.ptx;
}

static struct ptx *call(struct fwd_target *t, size_t n)
{
	struct fwd_step one = {t, n, 0, false};

	return call_steps(&one, 1);
}

static bool is_request(const struct sent *s, const char *method)
{
	size_t n = strlen(method);

	return s->len > n && memcmp(s->data, method, n) == 0 && s->data[n] == ' ';
}

static unsigned status_of(const struct sent *s)
{
	unsigned st = 0;

	if (sscanf(s->data, "SIP/2.0 %u ", &st) != 1)
		return 0;
	return st;
}

static bool sent_to(const struct sent *s, const char *ip, uint16_t port)
{
	struct tp_addr a;

	addr(&a, ip, port);
	return tp_addr_equal(&s->dest.peer, &a);
}

/* How many requests of method went to ip:port. */
static unsigned count_requests(const char *method, const char *ip, uint16_t port)
{
	unsigned n = 0;

	for (size_t i = 0; i < g->ntx; i++)
		n += is_request(&g->tx[i], method) && sent_to(&g->tx[i], ip, port);
	return n;
}

/* The k-th (0-based) request of method sent to ip:port, or fails. */
static struct sent *find_request(const char *method, const char *ip, uint16_t port, unsigned k)
{
	for (size_t i = 0; i < g->ntx; i++) {
		if (is_request(&g->tx[i], method) && sent_to(&g->tx[i], ip, port) && k-- == 0)
			return &g->tx[i];
	}
	fail_msg("no %s number %u to %s:%u among %zu messages sent", method, k, ip, port, g->ntx);
	return NULL;
}

/* The caller's response to its INVITE that is the i-th message sent, or NULL. */
static const struct sent *invite_response(size_t i)
{
	const struct sent *s = &g->tx[i];

	return sent_to(s, "127.0.0.9", CALLER_PORT) && status_of(s) &&
		       strstr(s->data, "CSeq: 1 INVITE\r\n")
		   ? s
		   : NULL;
}

/* The statuses the caller got for its INVITE, in order, into out; their number. */
static size_t caller_statuses(unsigned *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < g->ntx && n < max; i++) {
		if (invite_response(i))
			out[n++] = status_of(&g->tx[i]);
	}
	return n;
}

/* The caller's last response with this status, or fails. */
static const char *caller_response(unsigned status)
{
	for (size_t i = g->ntx; i > 0; i--) {
		if (invite_response(i - 1) && status_of(&g->tx[i - 1]) == status)
			return g->tx[i - 1].data;
	}
	fail_msg("the caller got no %u", status);
	return NULL;
}

/* 200s for the caller's CANCEL. */
static unsigned cancel_answers(void)
{
	unsigned n = 0;

	for (size_t i = 0; i < g->ntx; i++) {
		const struct sent *s = &g->tx[i];
		n += sent_to(s, "127.0.0.9", CALLER_PORT) && status_of(s) == 200 &&
		     strstr(s->data, "CSeq: 1 CANCEL\r\n") != NULL;
	}
	return n;
}

/* The caller's last status (0: none). */
static unsigned caller_final(void)
{
	unsigned st[MAX_TX];
	size_t n = caller_statuses(st, MAX_TX);

	for (size_t i = n; i > 0; i--) {
		if (st[i - 1] >= 200)
			return st[i - 1];
	}
	return 0;
}

static unsigned caller_count(unsigned status)
{
	unsigned st[MAX_TX], k = 0;
	size_t n = caller_statuses(st, MAX_TX);

	for (size_t i = 0; i < n; i++)
		k += st[i] == status;
	return k;
}

/*
 * The callee at ip:port answers the k-th INVITE it got: its Vias, From,
 * Call-ID and CSeq, a To tag, extra header lines.
 */
static void answer(const char *ip, uint16_t port, unsigned k, unsigned status, const char *extra)
{
	struct sent *req = find_request("INVITE", ip, port, k);
	struct sip_msg m, resp;
	struct buf b;
	struct tp_src src;
	char text[MSG_MAX];

	memset(&m, 0, sizeof(m));
	assert_int_equal(sip_parse(&m, req->data, req->len, 0), 0);
	buf_init(&b, 0);
	buf_printf(&b, "SIP/2.0 %u Whatever\r\n", status);
	for (struct sip_hdr *h = sip_msg_hdr(&m, SIP_H_VIA); h; h = sip_msg_hdr_next(&m, h))
		buf_append_sv(&b, h->raw);
	buf_append_sv(&b, sip_msg_hdr(&m, SIP_H_FROM)->raw);
	buf_printf(&b, "To: <sip:bob@example.com>;tag=%s%u\r\n", ip, port);
	buf_append_sv(&b, sip_msg_hdr(&m, SIP_H_CALL_ID)->raw);
	buf_append_sv(&b, sip_msg_hdr(&m, SIP_H_CSEQ)->raw);
	if (extra)
		buf_append_str(&b, extra);
	buf_append_str(&b, "Content-Length: 0\r\n\r\n");
	assert_int_equal(b.err, 0);
	assert_true(b.len < sizeof(text));
	memcpy(text, b.p, b.len);
	memset(&resp, 0, sizeof(resp));
	assert_int_equal(sip_parse(&resp, text, b.len, 0), 0);
	memset(&src, 0, sizeof(src));
	addr(&src.peer, ip, port);
	if (getenv("FWD_DEBUG"))
		print_message("%s\n---\n%s\n", req->data, text);
	assert_int_equal(txn_cli_dispatch(g->w, &resp, &src), 0);
	tp_flush(g->w);
	worker_reap(g->w);
	sip_msg_release(&resp);
	sip_msg_release(&m);
	buf_free(&b);
}

/* The caller's CANCEL for its INVITE (16.10). */
static void caller_cancel(struct ptx *p)
{
	struct preq r;

	parse_request("CANCEL sip:bob@example.com SIP/2.0\r\n"
		      "Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKcaller1\r\n"
		      "Max-Forwards: 70\r\n"
		      "From: <sip:alice@example.com>;tag=a1\r\n"
		      "To: <sip:bob@example.com>\r\n"
		      "Call-ID: call1@test\r\n"
		      "CSeq: 1 CANCEL\r\n"
		      "Content-Length: 0\r\n\r\n",
		      &r);
	fwd_cancel(&r, p);
	tp_flush(g->w);
}

static void no_bad_moves(void)
{
	assert_int_equal(g->w->stats.fwd_bad_moves, 0);
}

/*
 * Best response (16.7 step 6)
 */
static void test_best_response_prefers_4xx_over_5xx(void **state)
{
	struct fwd_target t[3] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062"),
				  target("sip:bob@127.0.0.2:5063")};
	struct ptx *p;

	(void)state;
	p = call(t, 3);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5063), 1);
	assert_int_equal(caller_count(100), 1);
	assert_int_equal(fwd_ptx_state(p), PTX_TRYING);

	answer("127.0.0.2", 5061, 0, 503, NULL);
	answer("127.0.0.2", 5062, 0, 480, NULL);
	assert_int_equal(caller_final(), 0); /* one branch still out: nothing final yet */
	assert_int_equal(fwd_branch_state(p, 0), BR_DONE);
	assert_int_equal(fwd_branch_state(p, 2), BR_CALLING);
	answer("127.0.0.2", 5063, 0, 486, NULL);
	/* 480 and 486 are of the same class: the first of them wins; 503 loses to any 4xx */
	assert_int_equal(caller_final(), 480);
	assert_int_equal(fwd_ptx_state(p), PTX_COMPLETED);
	/* every non-2xx final was acknowledged hop by hop */
	assert_int_equal(count_requests("ACK", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("ACK", "127.0.0.2", 5063), 1);
	no_bad_moves();
}

static void test_downstream_503_becomes_500(void **state)
{
	struct fwd_target t[1] = {target("sip:bob@127.0.0.2:5061")};

	(void)state;
	call(t, 1);
	answer("127.0.0.2", 5061, 0, 503, NULL);
	/* a 503 from downstream would make the caller think that we are overloaded */
	assert_int_equal(caller_final(), 500);
	assert_int_equal(caller_count(503), 0);
	no_bad_moves();
}

/*
 * 6xx: the search ends, the others are cancelled (16.7 step 5)
 */
static void test_6xx_cancels_the_other_branches(void **state)
{
	struct fwd_target t[3] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062"),
				  target("sip:bob@127.0.0.2:5063")};
	struct ptx *p;

	(void)state;
	p = call(t, 3);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	answer("127.0.0.2", 5062, 0, 404, NULL);
	assert_int_equal(caller_count(180), 1);
	assert_int_equal(fwd_ptx_state(p), PTX_RINGING);
	answer("127.0.0.2", 5063, 0, 603, NULL);
	/* the ringing branch gets a CANCEL (no "completed elsewhere": nobody answered) */
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_null(strstr(find_request("CANCEL", "127.0.0.2", 5061, 0)->data, "Reason:"));
	assert_int_equal(fwd_branch_state(p, 0), BR_CANCELLING);
	assert_int_equal(caller_final(), 0); /* the final waits for the cancelled branch */
	answer("127.0.0.2", 5061, 0, 487, NULL);
	assert_int_equal(caller_final(), 603);
	assert_int_equal(caller_count(487), 0);
	assert_int_equal(fwd_ptx_state(p), PTX_COMPLETED);
	no_bad_moves();
}

/*
 * CANCEL from the caller (16.10)
 */
static void test_caller_cancel(void **state)
{
	struct fwd_target t[2] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062")};
	struct ptx *p;

	(void)state;
	p = call(t, 2);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	caller_cancel(p);
	assert_int_equal(cancel_answers(), 1); /* the CANCEL's own answer */
	assert_int_equal(fwd_ptx_state(p), PTX_CANCELLING);
	/* the ringing branch is cancelled now; the silent one only once it rings (9.1) */
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5062), 0);
	assert_int_equal(fwd_branch_state(p, 0), BR_CANCELLING);
	assert_int_equal(fwd_branch_state(p, 1), BR_DONE);
	assert_int_equal(caller_final(), 0);
	answer("127.0.0.2", 5061, 0, 487, NULL);
	assert_int_equal(caller_final(), 487);
	assert_int_equal(fwd_ptx_state(p), PTX_COMPLETED);
	/* the late provisional of the silent branch: its CANCEL goes now, the caller hears
	 * nothing of it */
	answer("127.0.0.2", 5062, 0, 180, NULL);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5062), 1);
	assert_int_equal(caller_count(180), 1);
	/* a second CANCEL changes nothing */
	caller_cancel(p);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_int_equal(cancel_answers(), 2);
	assert_int_equal(caller_count(487), 1);
	no_bad_moves();
}

/*
 * Timer C (16.8)
 */
static void test_timer_c_cancels_a_ringing_branch_and_answers_408(void **state)
{
	struct fwd_target t[2] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062")};
	struct ptx *p;

	(void)state;
	p = call(t, 2);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	/* a branch that never sent a provisional: as if it had answered 408, no CANCEL */
	fwd_timer_fire(p, 1, FWD_TIMER_C);
	tp_flush(g->w);
	assert_int_equal(fwd_branch_state(p, 1), BR_DONE);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5062), 0);
	/* the ringing one: CANCEL, and its 487 counts as the 408 */
	fwd_timer_fire(p, 0, FWD_TIMER_C);
	tp_flush(g->w);
	assert_int_equal(fwd_branch_state(p, 0), BR_TIMED_OUT);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_int_equal(caller_final(), 0);
	answer("127.0.0.2", 5061, 0, 487, NULL);
	assert_int_equal(caller_final(), 408);
	assert_int_equal(caller_count(487), 0);
	assert_int_equal(fwd_ptx_state(p), PTX_COMPLETED);
	no_bad_moves();
}

static void test_timer_c_restarts_on_provisionals_and_stops_on_final(void **state)
{
	struct fwd_target t[1] = {target("sip:bob@127.0.0.2:5061")};
	struct ptx *p;

	(void)state;
	p = call(t, 1);
	answer("127.0.0.2", 5061, 0, 183, NULL);
	answer("127.0.0.2", 5061, 0, 486, NULL);
	assert_int_equal(caller_final(), 486);
	/* no Timer C is left armed on a branch with its final: firing it does nothing */
	fwd_timer_fire(p, 0, FWD_TIMER_C);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 0);
	assert_int_equal(caller_count(486), 1);
	no_bad_moves();
}

/*
 * 2xx (16.7 step 5): at once, every one of them, and the others cancelled
 */
static void test_every_2xx_goes_upstream(void **state)
{
	struct fwd_target t[2] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062")};
	struct ptx *p;

	(void)state;
	p = call(t, 2);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	answer("127.0.0.2", 5062, 0, 180, NULL);
	assert_int_equal(caller_count(180), 1); /* one 180 for the caller, however many ring */
	answer("127.0.0.2", 5061, 0, 200, NULL);
	assert_int_equal(caller_count(200), 1);
	assert_int_equal(fwd_ptx_state(p), PTX_ACCEPTED);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5062), 1);
	assert_non_null(
	    strstr(find_request("CANCEL", "127.0.0.2", 5062, 0)->data, "Call completed elsewhere"));
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 0);
	/* the other answered before the CANCEL reached it: that 200 goes up too */
	answer("127.0.0.2", 5062, 0, 200, NULL);
	assert_int_equal(caller_count(200), 2);
	/* and a retransmission of the first */
	answer("127.0.0.2", 5061, 0, 200, NULL);
	assert_int_equal(caller_count(200), 3);
	assert_int_equal(fwd_ptx_state(p), PTX_ACCEPTED);
	/* no ACK from us for a 2xx: that is the caller's */
	assert_int_equal(count_requests("ACK", "127.0.0.2", 5061), 0);
	no_bad_moves();
}

/*
 * Steps: failover only after failures
 */
static void test_failover_step_runs_after_failures_only(void **state)
{
	struct fwd_target a = target("sip:bob@127.0.0.2:5061");
	struct fwd_target b = target("sip:bob@127.0.0.2:5062");
	struct fwd_step steps[2] = {{&a, 1, 0, false}, {&b, 1, 0, true}};
	struct ptx *p;

	(void)state;
	p = call_steps(steps, 2);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0);
	answer("127.0.0.2", 5061, 0, 503, NULL); /* a failure: the failover step runs */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_int_equal(fwd_ptx_state(p), PTX_TRYING);
	answer("127.0.0.2", 5062, 0, 486, NULL);
	assert_int_equal(caller_final(), 486);
	no_bad_moves();
}

static void test_no_failover_after_a_real_answer(void **state)
{
	struct fwd_target a = target("sip:bob@127.0.0.2:5061");
	struct fwd_target b = target("sip:bob@127.0.0.2:5062");
	struct fwd_step steps[2] = {{&a, 1, 0, false}, {&b, 1, 0, true}};

	(void)state;
	call_steps(steps, 2);
	answer("127.0.0.2", 5061, 0, 486, NULL); /* busy is an answer, not a failure */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0);
	assert_int_equal(caller_final(), 486);
	no_bad_moves();
}

static void test_step_ring_time_then_next_step(void **state)
{
	struct fwd_target a = target("sip:bob@127.0.0.2:5061");
	struct fwd_target b = target("sip:bob@127.0.0.2:5062");
	struct fwd_step steps[2] = {{&a, 1, 15000, false}, {&b, 1, 0, false}};
	struct ptx *p;

	(void)state;
	p = call_steps(steps, 2);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	fwd_timer_fire(p, 0, FWD_TIMER_STEP); /* rang out */
	tp_flush(g->w);
	assert_int_equal(fwd_branch_state(p, 0), BR_RANG_OUT);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0); /* waits for its 487 */
	answer("127.0.0.2", 5061, 0, 487, NULL);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_int_equal(caller_final(), 0);
	assert_int_equal(fwd_ptx_state(p), PTX_RINGING);
	fwd_timer_fire(p, 1, FWD_TIMER_C); /* the second never answers */
	tp_flush(g->w);
	/* "no answer" from the first beats the second's timeout */
	assert_int_equal(caller_final(), 480);
	no_bad_moves();
}

/*
 * A gateway's challenge: answered with our account once, never twice
 */
static struct fwd_target gateway_target(void)
{
	struct fwd_target t = target("sip:+4930123@127.0.0.3:5080");

	snprintf(t.uri, sizeof(t.uri), "sip:+4930123@127.0.0.3:5080");
	t.gateway = true;
	return t;
}

#define GW_CHALLENGE                                                                               \
	"Proxy-Authenticate: Digest realm=\"carrier.example\", nonce=\"n0nce1\", qop=\"auth\", "   \
	"algorithm=MD5, opaque=\"op4que\"\r\n"

/* The digest response in an Authorization line is the one our account's HA1 gives. */
static void check_credentials(const char *req)
{
	const char *line = strstr(req, "Proxy-Authorization: Digest ");
	struct auth_cred c;
	struct dp_cred cr = {.user = "trunk1", .realm = "carrier.example"};
	char want[65];
	const char *eol;

	assert_non_null(line);
	eol = strstr(line, "\r\n");
	assert_non_null(eol);
	line += strlen("Proxy-Authorization: ");
	assert_int_equal(auth_cred_parse(sv_make(line, (size_t)(eol - line)), &c), 0);
	assert_true(sv_eq(c.username, SV("trunk1")));
	assert_true(sv_eq(c.realm, SV("carrier.example")));
	assert_true(sv_eq(c.nonce, SV("n0nce1")));
	assert_true(sv_eq(c.opaque, SV("op4que")));
	assert_true(sv_eq(c.uri, SV("sip:+4930123@127.0.0.3:5080")));
	dp_cred_hash(&cr, SV("s3cret"));
	auth_response_hex(g->w->hasher, AUTH_ALG_MD5, cr.ha1_md5, c.nonce, c.nc, c.cnonce, c.qop,
			  SV("INVITE"), c.uri, want);
	assert_true(sv_eq(c.response, sv_cstr(want)));
}

static void test_gateway_challenge_answered_once(void **state)
{
	struct fwd_target t[1] = {gateway_target()};
	struct ptx *p;

	(void)state;
	p = call(t, 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.3", GW_PORT), 1);
	assert_null(
	    strstr(find_request("INVITE", "127.0.0.3", GW_PORT, 0)->data, "Proxy-Authorization"));
	answer("127.0.0.3", GW_PORT, 0, 407, GW_CHALLENGE);
	/* sent again with our credentials, on a new branch; the caller sees no challenge */
	assert_int_equal(count_requests("INVITE", "127.0.0.3", GW_PORT), 2);
	check_credentials(find_request("INVITE", "127.0.0.3", GW_PORT, 1)->data);
	assert_int_equal(fwd_branch_state(p, 0), BR_CALLING);
	assert_int_equal(caller_count(407), 0);
	answer("127.0.0.3", GW_PORT, 1, 180, NULL);
	answer("127.0.0.3", GW_PORT, 1, 200, NULL);
	assert_int_equal(caller_count(200), 1);
	assert_int_equal(fwd_ptx_state(p), PTX_ACCEPTED);
	no_bad_moves();
}

static void test_gateway_second_challenge_fails_over(void **state)
{
	struct fwd_target t[1] = {gateway_target()};
	struct ptx *p;

	(void)state;
	p = call(t, 1);
	answer("127.0.0.3", GW_PORT, 0, 407, GW_CHALLENGE);
	answer("127.0.0.3", GW_PORT, 1, 407, GW_CHALLENGE);
	/* refused our credentials: not a third try, the gateway failed (as a 503) */
	assert_int_equal(count_requests("INVITE", "127.0.0.3", GW_PORT), 2);
	assert_int_equal(caller_count(407), 0);
	assert_int_equal(caller_final(), 503);
	/* the final is out and no branch is left: the context keeps no branch (memory) */
	assert_int_equal(fwd_ptx_state(p), PTX_COMPLETED);
	assert_int_equal(fwd_ptx_nbranches(p), 0);
	no_bad_moves();
}

static void test_challenge_of_a_non_gateway_goes_to_the_caller(void **state)
{
	/* the gateway's own address, but not routed there by the dialplan: our account is
	 * never used (a caller dialling sip:x@gateway); fwd_may_reach refuses it before */
	struct fwd_target t[1] = {target("sip:carol@127.0.0.2:5061")};

	(void)state;
	call(t, 1);
	answer("127.0.0.2", 5061, 0, 407, GW_CHALLENGE);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 1);
	assert_int_equal(caller_final(), 407);
	assert_non_null(strstr(caller_response(407), "Proxy-Authenticate:"));
	no_bad_moves();
}

static void test_gateway_failover_timer(void **state)
{
	struct fwd_target gw = gateway_target();
	struct fwd_target b = target("sip:bob@127.0.0.2:5062");
	struct fwd_step steps[2] = {{&gw, 1, 0, false}, {&b, 1, 0, true}};
	struct ptx *p;

	(void)state;
	p = call_steps(steps, 2);
	/* no provisional within the gateway's timeout: no CANCEL (9.1), the next one */
	fwd_timer_fire(p, 0, FWD_TIMER_GW);
	tp_flush(g->w);
	assert_int_equal(fwd_branch_state(p, 0), BR_DONE);
	assert_int_equal(count_requests("CANCEL", "127.0.0.3", GW_PORT), 0);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_int_equal(g->w->stats.gw_timeouts, 1);
	/* its late provisional gets the CANCEL that waited, the caller hears nothing */
	answer("127.0.0.3", GW_PORT, 0, 180, NULL);
	assert_int_equal(count_requests("CANCEL", "127.0.0.3", GW_PORT), 1);
	assert_int_equal(caller_count(180), 0);
	answer("127.0.0.2", 5062, 0, 200, NULL);
	assert_int_equal(caller_final(), 200);
	no_bad_moves();
}

static void test_gateway_ring_timeout_is_no_answer(void **state)
{
	struct fwd_target gw = gateway_target();
	struct fwd_target b = target("sip:bob@127.0.0.2:5062");
	struct fwd_step steps[2] = {{&gw, 1, 0, false}, {&b, 1, 0, true}};
	struct ptx *p;

	(void)state;
	p = call_steps(steps, 2);
	answer("127.0.0.3", GW_PORT, 0, 180, NULL);
	assert_int_equal(caller_count(180), 1);
	/* it rang, nobody answered in time: CANCEL, and no other carrier is tried */
	fwd_timer_fire(p, 0, FWD_TIMER_GW);
	tp_flush(g->w);
	assert_int_equal(fwd_branch_state(p, 0), BR_RANG_OUT);
	assert_int_equal(count_requests("CANCEL", "127.0.0.3", GW_PORT), 1);
	assert_int_equal(g->w->stats.gw_ring_timeouts, 1);
	answer("127.0.0.3", GW_PORT, 0, 487, NULL);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0);
	assert_int_equal(caller_final(), 480);
	assert_non_null(strstr(caller_response(480), "SIP/2.0 480 No answer\r\n"));
	no_bad_moves();
}

static void test_2xx_after_the_callers_cancel_still_goes_up(void **state)
{
	struct fwd_target t[2] = {target("sip:bob@127.0.0.2:5061"),
				  target("sip:bob@127.0.0.2:5062")};
	struct ptx *p;

	(void)state;
	p = call(t, 2);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	answer("127.0.0.2", 5062, 0, 180, NULL);
	caller_cancel(p);
	assert_int_equal(fwd_ptx_state(p), PTX_CANCELLING);
	/* the callee answered before our CANCEL reached it: the caller must see the 200
	 * (and hangs up with a BYE), never a 487 after it */
	answer("127.0.0.2", 5061, 0, 200, NULL);
	assert_int_equal(fwd_ptx_state(p), PTX_ACCEPTED);
	assert_int_equal(caller_count(200), 1);
	answer("127.0.0.2", 5062, 0, 487, NULL);
	assert_int_equal(caller_count(487), 0);
	assert_int_equal(caller_final(), 200);
	no_bad_moves();
}

/*
 * A response that needs more edits than a message may take (SIP_MAX_EDITS):
 * an error the caller hears (500), never a final silently dropped.
 */
static void test_response_with_too_many_edits_is_a_500(void **state)
{
	struct fwd_target t[1] = {target("sip:bob@127.0.0.2:5061")};
	struct buf rr;

	(void)state;
	call(t, 1);
	/* every one of our Record-Route entries is re-signed for the callee's Contact */
	buf_init(&rr, 0);
	buf_append_str(&rr, "Contact: <sip:bob@127.0.0.2:5061>\r\n");
	for (unsigned i = 0; i < SIP_MAX_EDITS + 1; i++)
		buf_printf(&rr, "Record-Route: <sip:127.0.0.1:%u;lr;sb=0123456789abcdef>\r\n",
			   g->srv.cfg.listen[0].port);
	assert_int_equal(rr.err, 0);
	answer("127.0.0.2", 5061, 0, 200, buf_cstr(&rr));
	buf_free(&rr);
	assert_int_equal(caller_count(200), 0);
	assert_int_equal(caller_final(), 500);
	assert_int_equal(fwd_ptx_state(g->ptx), PTX_COMPLETED);
	no_bad_moves();
}

/*
 * callee_route: a local user's call by their settings
 */

/* A subscriber in the cache, as the database thread would have put it. */
static void add_user(const char *user, const char *settings)
{
	struct store_user su;

	memset(&su, 0, sizeof(su));
	snprintf(su.user, sizeof(su.user), "%s", user);
	snprintf(su.domain, sizeof(su.domain), "example.com");
	snprintf(su.settings, sizeof(su.settings), "%s", settings);
	users_put(g->srv.users, &su);
}

/* A registered terminal of user@example.com at 127.0.0.2:port. */
static void add_binding(const char *user, uint16_t port, uint16_t q, enum term_type type)
{
	struct store_binding b;

	memset(&b, 0, sizeof(b));
	snprintf(b.aor, sizeof(b.aor), "%s@example.com", user);
	snprintf(b.contact, sizeof(b.contact), "sip:%s@127.0.0.2:%u", user, port);
	snprintf(b.callid, sizeof(b.callid), "reg-%s-%u", user, port);
	b.cseq = 1;
	b.expires = (int64_t)time(NULL) + 3600;
	b.q = q;
	b.flags = (uint32_t)type;
	assert_int_equal(loc_load(g->srv.loc, &b, (int64_t)time(NULL)), 0);
}

/* The caller's INVITE for bob@example.com, routed by bob's settings. */
static struct ptx *call_bob(void)
{
	struct preq r;
	struct fwd_plan plan = {.loop_hash = 0x1234};

	parse_request(INVITE_TEXT, &r);
	r.ruri_local = true;
	assert_int_equal(callee_route(&r, &plan), PROXY_DONE);
	assert_non_null(r.ptx);
	tp_flush(g->w);
	g->ptx = r.ptx;
	return r.ptx;
}

static void test_callee_sequential_by_terminal_type(void **state)
{
	struct ptx *p;

	(void)state;
	add_user("bob", "ring=sequential order=desk:15,pc:10");
	add_binding("bob", 5062, 1000, TERM_PC);
	add_binding("bob", 5061, 1000, TERM_DESK);
	p = call_bob();
	/* the desk phone first, alone */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0);
	answer("127.0.0.2", 5061, 0, 180, NULL);
	fwd_timer_fire(p, 0, FWD_TIMER_STEP); /* its 15 s are up */
	tp_flush(g->w);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	answer("127.0.0.2", 5061, 0, 487, NULL);
	/* then the PC */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	answer("127.0.0.2", 5062, 0, 200, NULL);
	assert_int_equal(caller_final(), 200);
	assert_int_equal(caller_count(487), 0);
	no_bad_moves();
}

static void test_callee_qvalue_steps(void **state)
{
	(void)state;
	add_user("bob", "ring=q-value");
	add_binding("bob", 5061, 1000, TERM_DESK);
	add_binding("bob", 5062, 500, TERM_PC);
	add_binding("bob", 5063, 500, TERM_MOBILE);
	call_bob();
	/* highest q alone first (RFC 3261 16.6), then the equal q's together */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 0);
	answer("127.0.0.2", 5061, 0, 480, NULL);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5063), 1);
	answer("127.0.0.2", 5062, 0, 486, NULL);
	assert_int_equal(caller_final(), 0);
	answer("127.0.0.2", 5063, 0, 603, NULL);
	assert_int_equal(caller_final(), 603);
	no_bad_moves();
}

static void test_callee_forward_on_busy(void **state)
{
	struct sent *fwd;

	(void)state;
	add_user("bob", "forward_busy=carol");
	add_user("carol", "");
	add_binding("bob", 5061, 1000, TERM_DESK);
	add_binding("carol", 5064, 1000, TERM_DESK);
	call_bob();
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5064), 0);
	answer("127.0.0.2", 5061, 0, 486, NULL);
	/* busy: the call goes on to carol, saying who forwarded it and why (RFC 5806) */
	assert_int_equal(caller_final(), 0);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5064), 1);
	fwd = find_request("INVITE", "127.0.0.2", 5064, 0);
	assert_non_null(strstr(fwd->data, "Diversion: <sip:bob@example.com>;reason=user-busy"));
	assert_non_null(strstr(fwd->data, "INVITE sip:carol@127.0.0.2:5064 SIP/2.0\r\n"));
	answer("127.0.0.2", 5064, 0, 200, NULL);
	assert_int_equal(caller_final(), 200);
	no_bad_moves();
}

static void test_callee_forward_on_no_answer(void **state)
{
	struct ptx *p;
	struct sent *fwd;

	(void)state;
	add_user("bob", "forward_noanswer=carol noanswer_after=5");
	add_user("carol", "");
	add_binding("bob", 5061, 1000, TERM_DESK);
	add_binding("carol", 5064, 1000, TERM_DESK);
	p = call_bob();
	answer("127.0.0.2", 5061, 0, 180, NULL);
	fwd_timer_fire(p, 0, FWD_TIMER_STEP); /* noanswer_after is up */
	tp_flush(g->w);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5064), 0); /* waits for the 487 */
	answer("127.0.0.2", 5061, 0, 487, NULL);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5064), 1);
	fwd = find_request("INVITE", "127.0.0.2", 5064, 0);
	assert_non_null(strstr(fwd->data, "Diversion: <sip:bob@example.com>;reason=no-answer"));
	answer("127.0.0.2", 5064, 0, 486, NULL);
	assert_int_equal(caller_final(), 486);
	assert_int_equal(caller_count(487), 0);
	no_bad_moves();
}

static void test_callee_forward_always(void **state)
{
	(void)state;
	add_user("bob", "forward_always=carol");
	add_user("carol", "");
	add_binding("bob", 5061, 1000, TERM_DESK);
	add_binding("carol", 5064, 1000, TERM_DESK);
	call_bob();
	/* bob's terminals never ring */
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 0);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5064), 1);
	assert_non_null(strstr(find_request("INVITE", "127.0.0.2", 5064, 0)->data,
			       "Diversion: <sip:bob@example.com>;reason=unconditional"));
	no_bad_moves();
}

static void test_callee_parallel_by_default(void **state)
{
	(void)state;
	add_user("bob", "");
	add_binding("bob", 5061, 1000, TERM_DESK);
	add_binding("bob", 5062, 500, TERM_PC);
	call_bob();
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5061), 1);
	assert_int_equal(count_requests("INVITE", "127.0.0.2", 5062), 1);
	assert_null(strstr(find_request("INVITE", "127.0.0.2", 5061, 0)->data, "Diversion:"));
	answer("127.0.0.2", 5062, 0, 200, NULL);
	assert_int_equal(caller_final(), 200);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 0); /* it never rang: 9.1 */
	answer("127.0.0.2", 5061, 0, 180, NULL);
	assert_int_equal(count_requests("CANCEL", "127.0.0.2", 5061), 1);
	no_bad_moves();
}

/*
 * Our own entries popped from the Route set, however they are written: two
 * values of one line (RFC 5658 double Record-Route) and one of the next line;
 * never an overlapping edit (which would refuse the request).
 */
static void forward_with_routes(const char *routes, unsigned pop, const char *want_route)
{
	char text[1024];
	struct fwd_target t[1] = {target("sip:carol@127.0.0.2:5061")};
	struct fwd_step one = {t, 1, 0, false};
	struct fwd_plan plan = {.loop_hash = 0x1234, .pop_routes = pop};
	struct preq r;
	const struct sent *sent;

	snprintf(text, sizeof(text),
		 "INVITE sip:bob@example.com SIP/2.0\r\n"
		 "Via: SIP/2.0/UDP 127.0.0.9:5070;branch=z9hG4bKcaller1\r\n"
		 "%s"
		 "Max-Forwards: 70\r\n"
		 "From: <sip:alice@example.com>;tag=a1\r\n"
		 "To: <sip:bob@example.com>\r\n"
		 "Call-ID: call1@test\r\n"
		 "CSeq: 1 INVITE\r\n"
		 "Content-Length: 0\r\n\r\n",
		 routes);
	parse_request(text, &r);
	assert_int_equal(fwd_stateful_steps(&r, &plan, &one, 1, NULL), PROXY_DONE);
	tp_flush(g->w);
	g->ptx = r.ptx;
	sent = find_request("INVITE", "127.0.0.2", 5061, 0);
	assert_non_null(sent);
	assert_null(strstr(sent->data, "us1"));
	assert_null(strstr(sent->data, "us2"));
	if (want_route)
		assert_non_null(strstr(sent->data, want_route));
	else
		assert_null(strstr(sent->data, "Route:"));
}

static void test_routes_of_ours_popped_in_one_line(void **state)
{
	(void)state;
	forward_with_routes("Route: <sip:us1;lr>, <sip:us2;lr>\r\n", 2, NULL);
}

static void test_routes_of_ours_popped_before_the_next_hop(void **state)
{
	(void)state;
	forward_with_routes("Route: <sip:us1;lr>, <sip:us2;lr>, <sip:next;lr>\r\n", 2,
			    "Route: <sip:next;lr>\r\n");
}

static void test_routes_of_ours_popped_over_two_lines(void **state)
{
	(void)state;
	forward_with_routes("Route: <sip:us1;lr>\r\nRoute: <sip:us2;lr>, <sip:next;lr>\r\n", 2,
			    "Route: <sip:next;lr>\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_best_response_prefers_4xx_over_5xx, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_downstream_503_becomes_500, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_6xx_cancels_the_other_branches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_caller_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timer_c_cancels_a_ringing_branch_and_answers_408,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_timer_c_restarts_on_provisionals_and_stops_on_final, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_2xx_goes_upstream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover_step_runs_after_failures_only, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_no_failover_after_a_real_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_step_ring_time_then_next_step, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_challenge_answered_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_second_challenge_fails_over, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_of_a_non_gateway_goes_to_the_caller,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_failover_timer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gateway_ring_timeout_is_no_answer, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_response_with_too_many_edits_is_a_500, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_2xx_after_the_callers_cancel_still_goes_up, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_callee_sequential_by_terminal_type, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_callee_qvalue_steps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callee_forward_on_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callee_forward_on_no_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callee_forward_always, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callee_parallel_by_default, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_routes_of_ours_popped_in_one_line, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_routes_of_ours_popped_before_the_next_hop, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_routes_of_ours_popped_over_two_lines, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
