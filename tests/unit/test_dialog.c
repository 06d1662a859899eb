/*
 * test_dialog.c - the dialog state machine (src/dialog) without a server:
 * messages are parsed from text and fed to the calls the proxy makes, the
 * hooks record what they are told, the sweep runs with a clock the test
 * chooses. Covered: trying -> early -> confirmed -> terminated, forks (one
 * early dialog per To tag, the one answered confirmed, the others ended),
 * CANCEL, failure, a re-INVITE's update and refresh, session-timer expiry
 * and the BYEs it builds, dialog.timeout, the cap, Session-Expires
 * insertion, and the write-behind records loaded back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <unistd.h>

#include "core/buf.h"
#include "dialog/dialog.h"
#include "sip/sip.h"
#include "store/store.h"

#define T0 1700000000000LL

struct rec {
	int ev; /* 'E'arly, 'C'onfirmed, 'U'pdate, 'T'erminated */
	char totag[64];
	enum dlg_end why;
	char sdp[256];
};

struct fx {
	struct dlg_table *t;
	struct dlg_hooks hooks;
	struct rec recs[32];
	unsigned n;
	unsigned ended;	   /* sweep end() calls */
	unsigned attempts; /* on_attempt_end calls, and the last one's reason and status */
	enum dlg_end attempt_why;
	unsigned attempt_status;
	char bye_caller[2048], bye_callee[2048];
	struct sip_msg msgs[16];
	char bufs[16][4096];
	unsigned nmsgs;
};

static void rec_add(struct fx *f, int ev, const struct dlg *d, enum dlg_end why, sv_t sdp)
{
	struct rec *r = &f->recs[f->n++ % 32];

	r->ev = ev;
	snprintf(r->totag, sizeof(r->totag), "%s", d->callee.tag ? d->callee.tag : "");
	r->why = why;
	snprintf(r->sdp, sizeof(r->sdp), "%.*s", (int)sdp.len, sdp.p ? sdp.p : "");
}

static void on_early(void *arg, const struct dlg *d)
{
	rec_add(arg, 'E', d, DLG_END_NONE, SV_NULL);
}

static void on_confirmed(void *arg, const struct dlg *d)
{
	rec_add(arg, 'C', d, DLG_END_NONE, SV_NULL);
}

static void on_update(void *arg, const struct dlg *d, sv_t sdp)
{
	rec_add(arg, 'U', d, DLG_END_NONE, sdp);
}

static void on_terminated(void *arg, const struct dlg *d, enum dlg_end why)
{
	rec_add(arg, 'T', d, why, SV_NULL);
}

static void on_attempt_end(void *arg, const struct dlg *d, enum dlg_end why)
{
	struct fx *f = arg;

	assert_int_equal(d->state, DLG_TERMINATED);
	f->attempts++;
	f->attempt_why = why;
	f->attempt_status = d->status;
}

static struct dlg_conf conf_default(void)
{
	return (struct dlg_conf){
	    .max = 100, .session_expires = 1800, .min_se = 90, .sdp_max = 1024};
}

static int setup_with(void **state, struct dlg_conf c)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(dlg_table_create(&c, &f->t), 0);
	f->hooks = (struct dlg_hooks){.on_early = on_early,
				      .on_confirmed = on_confirmed,
				      .on_update = on_update,
				      .on_terminated = on_terminated,
				      .on_attempt_end = on_attempt_end,
				      .arg = f};
	assert_int_equal(dlg_hooks_add(f->t, &f->hooks), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, conf_default());
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (unsigned i = 0; i < f->nmsgs; i++)
		sip_msg_release(&f->msgs[i]);
	dlg_table_destroy(f->t);
	free(f);
	return 0;
}

/* Parses a message written with '\n' line ends (made CRLF here) and a body. */
static struct sip_msg *msg(struct fx *f, const char *head, const char *body)
{
	char *b = f->bufs[f->nmsgs];
	struct sip_msg *m = &f->msgs[f->nmsgs++];
	size_t n = 0;

	for (const char *p = head; *p; p++) {
		if (*p == '\n')
			b[n++] = '\r';
		b[n++] = *p;
	}
	n += (size_t)snprintf(b + n, 4096 - n, "Content-Length: %zu\r\n%s\r\n%s",
			      body ? strlen(body) : 0,
			      body ? "Content-Type: application/sdp\r\n" : "", body ? body : "");
	assert_int_equal(sip_parse(m, b, n, 0), 0);
	return m;
}

#define CALLID "c1@test"

static struct sip_msg *invite(struct fx *f, const char *extra)
{
	char head[1024];

	snprintf(head, sizeof(head),
		 "INVITE sip:bob@example.com SIP/2.0\n"
		 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\n"
		 "From: <sip:alice@example.com>;tag=ftag\n"
		 "To: <sip:bob@example.com>\n"
		 "Call-ID: " CALLID "\n"
		 "CSeq: 10 INVITE\n"
		 "Contact: <sip:alice@192.0.2.1:5060>\n%s",
		 extra ? extra : "");
	return msg(f, head, "v=0 offer\r\n");
}

static struct sip_msg *resp(struct fx *f, unsigned status, const char *totag, unsigned cseq,
			    const char *method, const char *extra, const char *body)
{
	char head[1024];

	snprintf(head, sizeof(head),
		 "SIP/2.0 %u X\n"
		 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\n"
		 "Record-Route: <sip:proxy.example.com;lr;sb=0123456789abcdef>\n"
		 "From: <sip:alice@example.com>;tag=ftag\n"
		 "To: <sip:bob@example.com>%s%s\n"
		 "Call-ID: " CALLID "\n"
		 "CSeq: %u %s\n"
		 "Contact: <sip:bob@198.51.100.2:5062>\n%s",
		 status, totag ? ";tag=" : "", totag ? totag : "", cseq, method,
		 extra ? extra : "");
	return msg(f, head, body);
}

/* An in-dialog request; by_caller: from alice (From tag ftag), else from bob. */
static struct sip_msg *indialog(struct fx *f, const char *method, unsigned cseq, bool by_caller,
				const char *totag, const char *body)
{
	char head[1024];

	if (by_caller)
		snprintf(head, sizeof(head),
			 "%s sip:bob@198.51.100.2:5062 SIP/2.0\n"
			 "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb%u\n"
			 "From: <sip:alice@example.com>;tag=ftag\n"
			 "To: <sip:bob@example.com>;tag=%s\n"
			 "Call-ID: " CALLID "\nCSeq: %u %s\n",
			 method, cseq, totag, cseq, method);
	else
		snprintf(head, sizeof(head),
			 "%s sip:alice@192.0.2.1:5060 SIP/2.0\n"
			 "Via: SIP/2.0/UDP 198.51.100.2:5062;branch=z9hG4bKc%u\n"
			 "From: <sip:bob@example.com>;tag=%s\n"
			 "To: <sip:alice@example.com>;tag=ftag\n"
			 "Call-ID: " CALLID "\nCSeq: %u %s\n",
			 method, cseq, totag, cseq, method);
	return msg(f, head, body);
}

static struct tp_src src_of(void)
{
	struct tp_src s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_addr_from_str("192.0.2.1", 5060, SIP_PROTO_UDP, &s.peer), 0);
	return s;
}

static struct tp_dest dest_of(void)
{
	struct tp_dest d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_addr_from_str("198.51.100.2", 5062, SIP_PROTO_UDP, &d.peer), 0);
	d.listen = -1;
	return d;
}

struct count {
	unsigned n[4];
	const struct dlg *last;
};

static int count_one(void *arg, const struct dlg *d)
{
	struct count *c = arg;

	c->n[d->state]++;
	c->last = d;
	return 0;
}

static struct count counts(struct fx *f)
{
	struct count c = {{0}, NULL};

	dlg_foreach(f->t, count_one, &c);
	return c;
}

static void start_call(struct fx *f)
{
	struct tp_src s = src_of();
	struct tp_dest d = dest_of();

	assert_int_equal(dlg_on_invite(f->t, invite(f, NULL), &s, 1, NULL, T0), 0);
	assert_int_equal(
	    dlg_on_response(f->t, resp(f, 180, "b1", 10, "INVITE", NULL, NULL), &d, NULL, T0 + 100),
	    0);
}

static void confirm(struct fx *f, const char *totag, const char *extra)
{
	struct tp_dest d = dest_of();

	assert_int_equal(dlg_on_response(f->t,
					 resp(f, 200, totag, 10, "INVITE", extra, "v=0 answer\r\n"),
					 &d, "gw1", T0 + 1000),
			 0);
}

static void test_early_confirmed_terminated(void **state)
{
	struct fx *f = *state;
	struct count c;
	struct dlg_stats st;

	assert_int_equal(dlg_on_invite(f->t, invite(f, NULL), &(struct tp_src){0}, 0, NULL, T0), 0);
	c = counts(f);
	assert_int_equal(c.n[DLG_TRYING], 1);
	assert_int_equal(f->n, 0); /* no hook for a dialog that is not one yet */
	start_call(f);		   /* a second INVITE of the call before an answer: the same one */
	c = counts(f);
	assert_int_equal(c.n[DLG_EARLY], 1);
	assert_int_equal(f->n, 1);
	assert_int_equal(f->recs[0].ev, 'E');
	assert_string_equal(f->recs[0].totag, "b1");
	confirm(f, "b1", NULL);
	c = counts(f);
	assert_int_equal(c.n[DLG_CONFIRMED], 1);
	assert_int_equal(c.n[DLG_TRYING] + c.n[DLG_EARLY], 0); /* the template left */
	assert_string_equal(c.last->callee.tag, "b1");
	assert_string_equal(c.last->caller.tag, "ftag");
	assert_string_equal(c.last->caller.contact, "sip:alice@192.0.2.1:5060");
	assert_string_equal(c.last->callee.contact, "sip:bob@198.51.100.2:5062");
	assert_string_equal(c.last->caller.sdp, "v=0 offer\r\n");
	assert_string_equal(c.last->callee.sdp, "v=0 answer\r\n");
	assert_string_equal(c.last->gateway, "gw1");
	assert_string_equal(c.last->callee.route, ""); /* only our own Record-Route */
	assert_int_equal(c.last->status, 200);
	assert_true(c.last->answer_ms == T0 + 1000 && c.last->start_ms == T0);
	assert_int_equal(f->recs[1].ev, 'C');
	/* the attempt is over, answered; the dialog goes on */
	assert_int_equal(f->attempts, 1);
	assert_int_equal(f->attempt_why, DLG_END_NONE);
	assert_int_equal(f->attempt_status, 200);
	/* the relay's view of the call */
	{
		struct dlg_media md = {.relayed = true,
				       .from_caller = {.packets = 50, .codec = "PCMU/8000"}};

		assert_int_equal(dlg_media_set(f->t, SV(CALLID), SV("ftag"), SV("b1"), &md), 0);
		assert_int_equal(dlg_media_set(f->t, SV(CALLID), SV("ftag"), SV("zz"), &md),
				 ENOENT);
		c = counts(f);
		assert_true(c.last->media.relayed);
		assert_int_equal(c.last->media.from_caller.packets, 50);
		assert_string_equal(c.last->media.from_caller.codec, "PCMU/8000");
	}
	/* a 2xx retransmission changes nothing */
	confirm(f, "b1", NULL);
	assert_int_equal(f->n, 2);
	/* the callee hangs up */
	assert_int_equal(dlg_on_request(f->t, indialog(f, "BYE", 1, false, "b1", NULL), T0 + 5000),
			 0);
	c = counts(f);
	assert_int_equal(c.n[DLG_CONFIRMED], 0);
	assert_int_equal(f->recs[2].ev, 'T');
	assert_int_equal(f->recs[2].why, DLG_END_BYE_CALLEE);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 0);
	assert_int_equal(st.confirmed, 1);
	assert_int_equal(st.terminated, 1);
	/* a BYE for a dialog that is gone */
	assert_int_equal(dlg_on_request(f->t, indialog(f, "BYE", 2, true, "b1", NULL), T0 + 6000),
			 ENOENT);
}

static void test_forks(void **state)
{
	struct fx *f = *state;
	struct tp_dest d = dest_of();
	struct count c;

	start_call(f);
	assert_int_equal(dlg_on_response(f->t,
					 resp(f, 183, "b2", 10, "INVITE", NULL, "early media"), &d,
					 NULL, T0 + 200),
			 0);
	assert_int_equal(
	    dlg_on_response(f->t, resp(f, 180, "b3", 10, "INVITE", NULL, NULL), &d, NULL, T0 + 300),
	    0);
	c = counts(f);
	assert_int_equal(c.n[DLG_EARLY], 3);  /* one per To tag */
	assert_int_equal(c.n[DLG_TRYING], 1); /* the template, until the final */
	/* one branch fails: its early dialog ends, the call goes on */
	assert_int_equal(
	    dlg_on_response(f->t, resp(f, 486, "b3", 10, "INVITE", NULL, NULL), &d, NULL, T0 + 400),
	    0);
	c = counts(f);
	assert_int_equal(c.n[DLG_EARLY], 2);
	confirm(f, "b2", NULL);
	c = counts(f);
	assert_int_equal(c.n[DLG_CONFIRMED], 1);
	assert_int_equal(c.n[DLG_EARLY] + c.n[DLG_TRYING], 0);
	assert_string_equal(c.last->callee.tag, "b2");
	/* E b1, E b2, E b3, T b3 failure, C b2, T b1 fork-lost */
	assert_int_equal(f->n, 6);
	assert_int_equal(f->recs[3].ev, 'T');
	assert_int_equal(f->recs[3].why, DLG_END_FAILURE);
	assert_int_equal(f->recs[4].ev, 'C');
	assert_string_equal(f->recs[4].totag, "b2");
	assert_int_equal(f->recs[5].ev, 'T');
	assert_string_equal(f->recs[5].totag, "b1");
	assert_int_equal(f->recs[5].why, DLG_END_FORK_LOST);
}

static void test_cancel(void **state)
{
	struct fx *f = *state;
	struct count c;

	start_call(f);
	assert_int_equal(dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 487, T0 + 2000), 0);
	c = counts(f);
	assert_int_equal(c.n[DLG_TRYING] + c.n[DLG_EARLY], 0);
	assert_int_equal(f->n, 2);
	assert_int_equal(f->recs[1].ev, 'T');
	assert_int_equal(f->recs[1].why, DLG_END_CANCEL);
	assert_int_equal(f->attempts, 1);
	assert_int_equal(f->attempt_why, DLG_END_CANCEL);
	assert_int_equal(f->attempt_status, 487);
}

static void test_failure(void **state)
{
	struct fx *f = *state;
	struct tp_src s = src_of();
	struct dlg_stats st;

	/* no provisional at all: a 404 final ends the template quietly */
	assert_int_equal(dlg_on_invite(f->t, invite(f, NULL), &s, 0, NULL, T0), 0);
	assert_int_equal(dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 404, T0 + 10), 0);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 0);
	assert_int_equal(f->n, 0);
	/* but the attempt's end is told (a billing record, ports to free) */
	assert_int_equal(f->attempts, 1);
	assert_int_equal(f->attempt_why, DLG_END_FAILURE);
	assert_int_equal(f->attempt_status, 404);
	/* ringing, then a 480 made here (no answer) */
	start_call(f);
	assert_int_equal(dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 480, T0 + 10), 0);
	assert_int_equal(f->recs[1].why, DLG_END_FAILURE);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 0);
}

static void test_reinvite_update(void **state)
{
	struct fx *f = *state;
	struct tp_dest d = dest_of();
	struct count c;

	start_call(f);
	confirm(f, "b1", "Session-Expires: 100;refresher=uac\n");
	c = counts(f);
	assert_int_equal(c.last->session_expires, 100);
	assert_false(c.last->refresher_uas);
	assert_true(c.last->expires_ms == T0 + 1000 + 100000);
	/* the callee re-INVITEs with a new offer, and a new Contact */
	assert_int_equal(
	    dlg_on_request(f->t, indialog(f, "INVITE", 7, false, "b1", "v=0 bob2\r\n"), T0 + 50000),
	    0);
	c = counts(f);
	assert_string_equal(c.last->callee.sdp, "v=0 bob2\r\n");
	assert_int_equal(c.last->callee.cseq, 7);
	{
		char head[600];
		snprintf(
		    head, sizeof(head),
		    "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 198.51.100.2:5062;branch=z9hG4bKc7\n"
		    "From: <sip:bob@example.com>;tag=b1\nTo: <sip:alice@example.com>;tag=ftag\n"
		    "Call-ID: " CALLID "\nCSeq: 7 INVITE\nSession-Expires: 200;refresher=uas\n");
		assert_int_equal(
		    dlg_on_response(f->t, msg(f, head, "v=0 alice2\r\n"), &d, NULL, T0 + 50100), 0);
	}
	c = counts(f);
	assert_string_equal(c.last->caller.sdp, "v=0 alice2\r\n");
	assert_int_equal(c.last->session_expires, 200);
	assert_true(c.last->refresher_uas);
	assert_true(c.last->expires_ms == T0 + 50100 + 200000);
	assert_int_equal(f->recs[f->n - 1].ev, 'U');
	assert_string_equal(f->recs[f->n - 1].sdp, "v=0 alice2\r\n");
	/* the caller's UPDATE, answered 2xx */
	assert_int_equal(
	    dlg_on_request(f->t, indialog(f, "UPDATE", 11, true, "b1", NULL), T0 + 60000), 0);
	assert_int_equal(
	    dlg_on_response(f->t, resp(f, 200, "b1", 11, "UPDATE", "Session-Expires: 300\n", NULL),
			    &d, NULL, T0 + 60000),
	    0);
	c = counts(f);
	assert_int_equal(c.last->caller.cseq, 11);
	assert_int_equal(c.last->session_expires, 300);
	assert_int_equal(f->recs[f->n - 1].ev, 'U');
	assert_int_equal(f->recs[f->n - 1].sdp[0], '\0');
}

static void end_fn(void *arg, const struct dlg *d)
{
	struct fx *f = arg;
	struct buf b;
	struct tp_dest dest;
	char ip[64];

	f->ended++;
	buf_init(&b, 0);
	assert_int_equal(
	    dlg_build_bye(d, true, SV("Via: SIP/2.0/UDP p;branch=z9hG4bKx\r\n"), &b, &dest), 0);
	snprintf(f->bye_caller, sizeof(f->bye_caller), "%.*s", (int)b.len, b.p);
	assert_string_equal(tp_addr_ip(&dest.peer, ip, sizeof(ip)), "192.0.2.1");
	assert_int_equal(
	    dlg_build_bye(d, false, SV("Via: SIP/2.0/UDP p;branch=z9hG4bKy\r\n"), &b, &dest), 0);
	snprintf(f->bye_callee, sizeof(f->bye_callee), "%.*s", (int)b.len, b.p);
	assert_string_equal(tp_addr_ip(&dest.peer, ip, sizeof(ip)), "198.51.100.2");
	buf_free(&b);
}

static void test_session_timer_expiry(void **state)
{
	struct fx *f = *state;
	int64_t answered = T0 + 1000;
	struct count c;

	start_call(f);
	confirm(f, "b1", "Session-Expires: 90;refresher=uas\n");
	dlg_sweep(f->t, answered + 89000, end_fn, f);
	assert_int_equal(f->ended, 0);
	c = counts(f);
	assert_int_equal(c.n[DLG_CONFIRMED], 1);
	dlg_sweep(f->t, answered + 90000, end_fn, f);
	assert_int_equal(f->ended, 1);
	c = counts(f);
	assert_int_equal(c.n[DLG_CONFIRMED], 0);
	assert_int_equal(f->recs[f->n - 1].ev, 'T');
	assert_int_equal(f->recs[f->n - 1].why, DLG_END_SESSION_TIMER);
	/* to the caller: as the callee would send it; to the callee: as the caller would */
	assert_non_null(strstr(f->bye_caller, "BYE sip:alice@192.0.2.1:5060 SIP/2.0\r\n"));
	assert_non_null(strstr(f->bye_caller, "From: <sip:bob@example.com>;tag=b1\r\n"));
	assert_non_null(strstr(f->bye_caller, "To: <sip:alice@example.com>;tag=ftag\r\n"));
	assert_non_null(strstr(f->bye_caller, "CSeq: 1 BYE\r\n")); /* bob sent nothing yet */
	assert_non_null(strstr(f->bye_callee, "BYE sip:bob@198.51.100.2:5062 SIP/2.0\r\n"));
	assert_non_null(strstr(f->bye_callee, "CSeq: 11 BYE\r\n")); /* after the INVITE's 10 */
	assert_non_null(strstr(f->bye_callee, "Reason: SIP;cause=408;text=\"Session timer"));
	assert_null(strstr(f->bye_callee, "Route:"));
}

static void test_dialog_timeout(void **state)
{
	struct fx *f;
	struct dlg_conf c = conf_default();
	struct dlg_stats st;

	c.timeout_s = 60;
	setup_with(state, c);
	f = *state;
	start_call(f);
	confirm(f, "b1", NULL); /* no session timer negotiated */
	assert_int_equal(
	    dlg_on_request(f->t, indialog(f, "INFO", 11, true, "b1", NULL), T0 + 30000), 0);
	dlg_sweep(f->t, T0 + 80000, end_fn, f);
	assert_int_equal(f->ended, 0); /* 50 s since the INFO */
	dlg_sweep(f->t, T0 + 90000, end_fn, f);
	assert_int_equal(f->ended, 1);
	assert_int_equal(f->recs[f->n - 1].why, DLG_END_TIMEOUT);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.timed_out, 1);
	teardown(state);
}

static void test_stale_early_dropped(void **state)
{
	struct fx *f = *state;
	struct dlg_stats st;

	start_call(f);
	dlg_sweep(f->t, T0 + 599000, NULL, NULL);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 2);
	dlg_sweep(f->t, T0 + 600000, NULL, NULL);
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 0);
}

static void test_cap(void **state)
{
	struct fx *f;
	struct dlg_conf c = conf_default();
	struct tp_src s = src_of();
	struct dlg_stats st;
	char head[600];

	c.max = 2;
	setup_with(state, c);
	f = *state;
	for (int i = 0; i < 3; i++) {
		snprintf(head, sizeof(head),
			 "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK%d\n"
			 "From: <sip:a@example.com>;tag=t%d\nTo: <sip:bob@example.com>\n"
			 "Call-ID: cap%d\nCSeq: 1 INVITE\n",
			 i, i, i);
		assert_int_equal(dlg_on_invite(f->t, msg(f, head, NULL), &s, 0, NULL, T0),
				 i < 2 ? 0 : ENOSPC);
	}
	dlg_stats_get(f->t, &st);
	assert_int_equal(st.live, 2);
	assert_int_equal(st.cap_hits, 1);
	teardown(state);
}

static void test_session_expires_line(void **state)
{
	struct fx *f = *state;
	char line[64];

	assert_int_equal(dlg_session_expires_line(f->t, invite(f, NULL), line, sizeof(line)),
			 strlen("Session-Expires: 1800\r\n"));
	assert_string_equal(line, "Session-Expires: 1800\r\n");
	/* a 422's retry carries its Min-SE: we ask for no less */
	dlg_session_expires_line(f->t, invite(f, "Min-SE: 2400\n"), line, sizeof(line));
	assert_string_equal(line, "Session-Expires: 2400\r\n");
	/* what the UA asked for stays */
	assert_int_equal(
	    dlg_session_expires_line(f->t, invite(f, "Session-Expires: 120\n"), line, sizeof(line)),
	    0);
	assert_int_equal(dlg_session_expires_line(f->t, invite(f, "x: 120\n"), line, sizeof(line)),
			 0);
}

static void test_422_retry(void **state)
{
	struct fx *f = *state;
	char line[64] = "Session-Expires: 1800\r\n";
	size_t n = dlg_session_expires_retry(
	    f->t, resp(f, 422, "b1", 10, "INVITE", "Min-SE: 3600\n", NULL), line, sizeof(line));

	assert_int_equal(n, strlen(line));
	assert_string_equal(line, "Session-Expires: 3600\r\nMin-SE: 3600\r\n");
	/* asks for no more than we did, or absurdly much, or nothing: no retry */
	assert_int_equal(
	    dlg_session_expires_retry(
		f->t, resp(f, 422, "b1", 10, "INVITE", "Min-SE: 3600\n", NULL), line, sizeof(line)),
	    0);
	strcpy(line, "Session-Expires: 1800\r\n");
	assert_int_equal(dlg_session_expires_retry(
			     f->t, resp(f, 422, "b1", 10, "INVITE", "Min-SE: 999999\n", NULL), line,
			     sizeof(line)),
			 0);
	assert_int_equal(dlg_session_expires_retry(f->t,
						   resp(f, 422, "b1", 10, "INVITE", NULL, NULL),
						   line, sizeof(line)),
			 0);
	assert_string_equal(line, "Session-Expires: 1800\r\n");
}

/* A call that ends before the write-behind runs leaves nothing in the store; one still up is
 * written. */
static void test_short_call_not_written(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/sb-test-dialog-XXXXXX";
	char db[64], err[256];
	struct store *st;
	struct dlg_table *t2;
	struct dlg_conf c = conf_default();
	struct count c2 = {{0}, NULL};
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	assert_int_equal(store_open(db, &st, err, sizeof(err)), 0);
	start_call(f);
	confirm(f, "b1", NULL);
	confirm(f, "b1", NULL); /* a retransmitted 2xx queues nothing more */
	assert_int_equal(dlg_on_request(f->t, indialog(f, "BYE", 11, false, "b1", NULL), T0 + 3000),
			 0);
	assert_int_equal(dlg_flush(f->t, st), 0);
	assert_int_equal(dlg_flush(f->t, st), 0); /* an empty journal */
	assert_int_equal(dlg_table_create(&c, &t2), 0);
	assert_int_equal(dlg_load(t2, st, T0 + 5000), 0);
	dlg_foreach(t2, count_one, &c2);
	assert_int_equal(c2.n[DLG_CONFIRMED], 0);
	dlg_table_destroy(t2);
	store_close(st);
	unlink(db);
	snprintf(err, sizeof(err), "%s-wal", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-users", db);
	unlink(err);
}

static void test_persistence(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/sb-test-dialog-XXXXXX";
	char db[64], err[256];
	struct store *st;
	struct dlg_table *t2;
	struct dlg_conf c = conf_default();
	struct count n;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	snprintf(db, sizeof(db), "%s.db", path);
	assert_int_equal(store_open(db, &st, err, sizeof(err)), 0);
	start_call(f);
	confirm(f, "b1", "Session-Expires: 1800\n");
	assert_int_equal(dlg_flush(f->t, st), 0);
	/* a new server: the dialog comes back confirmed, with what it knew */
	assert_int_equal(dlg_table_create(&c, &t2), 0);
	assert_int_equal(dlg_load(t2, st, T0 + 5000), 0);
	{
		struct count c2 = {{0}, NULL};
		dlg_foreach(t2, count_one, &c2);
		n = c2;
	}
	assert_int_equal(n.n[DLG_CONFIRMED], 1);
	assert_string_equal(n.last->callid, CALLID);
	assert_string_equal(n.last->caller.tag, "ftag");
	assert_string_equal(n.last->callee.tag, "b1");
	assert_string_equal(n.last->caller.contact, "sip:alice@192.0.2.1:5060");
	assert_string_equal(n.last->callee.sdp, "v=0 answer\r\n");
	assert_string_equal(n.last->caller.sdp, "v=0 offer\r\n");
	assert_string_equal(n.last->gateway, "gw1");
	assert_int_equal(n.last->session_expires, 1800);
	assert_int_equal(n.last->caller.cseq, 10);
	assert_int_equal(n.last->owner, 1);
	/* its BYE ends it there, and the record goes */
	assert_int_equal(dlg_on_request(t2, indialog(f, "BYE", 12, true, "b1", NULL), T0 + 9000),
			 0);
	assert_int_equal(dlg_flush(t2, st), 0);
	dlg_table_destroy(t2);
	assert_int_equal(dlg_table_create(&c, &t2), 0);
	assert_int_equal(dlg_load(t2, st, T0 + 10000), 0);
	{
		struct count c2 = {{0}, NULL};
		dlg_foreach(t2, count_one, &c2);
		assert_int_equal(c2.n[DLG_CONFIRMED], 0);
	}
	dlg_table_destroy(t2);
	store_close(st);
	unlink(db);
	snprintf(err, sizeof(err), "%s-wal", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", db);
	unlink(err);
	snprintf(err, sizeof(err), "%s-users", db);
	unlink(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_early_confirmed_terminated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failure, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reinvite_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_session_timer_expiry, setup, teardown),
	    cmocka_unit_test(test_dialog_timeout),
	    cmocka_unit_test_setup_teardown(test_stale_early_dropped, setup, teardown),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test_setup_teardown(test_session_expires_line, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_422_retry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_call_not_written, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
