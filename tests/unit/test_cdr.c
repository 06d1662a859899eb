/*
 * test_cdr.c - the billing record builder (src/services/cdr.c) fed by the
 * real dialog state machine: SIP messages parsed from text go to the calls
 * the proxy makes, the cdr hooks build the records, the test takes them from
 * the queue. Covered: answered, busy 486, cancelled 487, a fork with its
 * ringing history, failover from a 503 gateway to a second one, a dialog
 * loaded after a restart; the store form read back; CSV and JSON escaping;
 * the date parser.
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

#include "core/buf.h"
#include "dialog/dialog.h"
#include "services/cdr.h"
#include "sip/sip.h"

#define T0     1700000000000LL
#define CALLID "c1@test"

struct fx {
	struct dlg_table *t;
	struct cdr *c;
	struct sip_msg msgs[16];
	char bufs[16][2048];
	unsigned nmsgs;
	struct cdr_rec *recs[8];
	size_t nrecs;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct dlg_conf dc = {.max = 100, .session_expires = 1800, .min_se = 90, .sdp_max = 1024};
	struct cdr_conf cc = {.max_calls = 10, .max_queue = 10};

	assert_non_null(f);
	assert_int_equal(dlg_table_create(&dc, &f->t), 0);
	assert_int_equal(cdr_create(&cc, &f->c), 0);
	assert_int_equal(cdr_attach(f->c, f->t), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (unsigned i = 0; i < f->nmsgs; i++)
		sip_msg_release(&f->msgs[i]);
	for (size_t i = 0; i < f->nrecs; i++)
		free(f->recs[i]);
	dlg_table_destroy(f->t);
	cdr_destroy(f->c);
	free(f);
	return 0;
}

static struct sip_msg *msg(struct fx *f, const char *head)
{
	char *b = f->bufs[f->nmsgs];
	struct sip_msg *m = &f->msgs[f->nmsgs++];
	size_t n = 0;

	for (const char *p = head; *p; p++) {
		if (*p == '\n')
			b[n++] = '\r';
		b[n++] = *p;
	}
	n += (size_t)snprintf(b + n, 2048 - n, "Content-Length: 0\r\n\r\n");
	assert_int_equal(sip_parse(m, b, n, 0), 0);
	return m;
}

static void invite(struct fx *f)
{
	struct tp_src s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(tp_addr_from_str("192.0.2.1", 5070, SIP_PROTO_UDP, &s.peer), 0);
	assert_int_equal(dlg_on_invite(f->t,
				       msg(f, "INVITE sip:0301234@example.com SIP/2.0\n"
					      "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa\n"
					      "From: \"Alice\" <sip:alice@example.com>;tag=ftag\n"
					      "To: <sip:0301234@example.com>\n"
					      "Call-ID: " CALLID "\n"
					      "CSeq: 10 INVITE\n"
					      "Contact: <sip:alice@192.0.2.1:5070>\n"),
				       &s, 0, "alice@example.com", T0),
			 0);
}

/* A response from the branch at port (gateway gw, "" = none), To tag totag ("" = none). */
static void resp(struct fx *f, unsigned status, const char *totag, uint16_t port, const char *gw,
		 int64_t at)
{
	char head[1024];
	struct tp_dest d;

	memset(&d, 0, sizeof(d));
	assert_int_equal(tp_addr_from_str("198.51.100.2", port, SIP_PROTO_UDP, &d.peer), 0);
	snprintf(head, sizeof(head),
		 "SIP/2.0 %u X\n"
		 "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa\n"
		 "From: \"Alice\" <sip:alice@example.com>;tag=ftag\n"
		 "To: <sip:0301234@example.com>%s%s\n"
		 "Call-ID: " CALLID "\n"
		 "CSeq: 10 INVITE\n"
		 "Contact: <sip:term@198.51.100.2:%u>\n",
		 status, totag[0] ? ";tag=" : "", totag, port);
	dlg_on_response(f->t, msg(f, head), &d, gw, at);
}

static void bye(struct fx *f, const char *totag, bool by_caller, int64_t at)
{
	char head[1024];

	if (by_caller)
		snprintf(head, sizeof(head),
			 "BYE sip:term@198.51.100.2 SIP/2.0\n"
			 "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKb\n"
			 "From: <sip:alice@example.com>;tag=ftag\n"
			 "To: <sip:0301234@example.com>;tag=%s\n"
			 "Call-ID: " CALLID "\nCSeq: 11 BYE\n",
			 totag);
	else
		snprintf(head, sizeof(head),
			 "BYE sip:alice@192.0.2.1:5070 SIP/2.0\n"
			 "Via: SIP/2.0/UDP 198.51.100.2;branch=z9hG4bKc\n"
			 "From: <sip:0301234@example.com>;tag=%s\n"
			 "To: <sip:alice@example.com>;tag=ftag\n"
			 "Call-ID: " CALLID "\nCSeq: 1 BYE\n",
			 totag);
	assert_int_equal(dlg_on_request(f->t, msg(f, head), at), 0);
}

/* The records queued so far (the test frees them). */
static size_t take(struct fx *f)
{
	size_t n = cdr_take(f->c, f->recs + f->nrecs, 8 - f->nrecs);

	f->nrecs += n;
	return n;
}

static void test_answered(void **state)
{
	struct fx *f = *state;
	struct cdr_rec *r;
	char a[80];

	invite(f);
	resp(f, 180, "b1", 5062, NULL, T0 + 300);
	resp(f, 200, "b1", 5062, NULL, T0 + 2000);
	assert_int_equal(take(f), 0); /* the call goes on: no record yet */
	bye(f, "b1", false, T0 + 62500);
	assert_int_equal(take(f), 1);
	r = f->recs[0];
	assert_string_equal(r->callid, CALLID);
	assert_string_equal(r->identity, "alice@example.com");
	assert_string_equal(r->account, "alice@example.com");
	assert_string_equal(r->from, "sip:alice@example.com");
	assert_string_equal(r->dialled, "sip:0301234@example.com");
	assert_string_equal(r->target, "sip:term@198.51.100.2:5062");
	tp_addr_format(&r->src, a, sizeof(a));
	assert_string_equal(a, "udp:192.0.2.1:5070");
	assert_int_equal(r->start_ms, T0);
	assert_int_equal(r->ring_ms, T0 + 300);
	assert_int_equal(r->answer_ms, T0 + 2000);
	assert_int_equal(r->end_ms, T0 + 62500);
	assert_int_equal(cdr_talk_ms(r), 60500);
	assert_int_equal(cdr_billable_s(r), 61);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->disp, CDR_ANSWERED);
	assert_string_equal(cdr_ended_by(r), "bye-callee");
	assert_int_equal(r->life, CDR_LIFE_WHOLE);
	assert_int_equal(r->nlegs, 1);
	assert_int_equal(r->legs[0].status, 200);
	assert_int_equal(r->legs[0].ring_ms, T0 + 300);
}

static void test_busy_and_cancelled(void **state)
{
	struct fx *f = *state;

	invite(f);
	resp(f, 486, "b1", 5062, NULL, T0 + 500);
	dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 486, T0 + 500);
	assert_int_equal(take(f), 1);
	assert_int_equal(f->recs[0]->disp, CDR_BUSY);
	assert_int_equal(f->recs[0]->status, 486);
	assert_int_equal(f->recs[0]->answer_ms, 0);
	assert_int_equal(cdr_billable_s(f->recs[0]), 0);
	assert_string_equal(cdr_ended_by(f->recs[0]), "failure");
	assert_int_equal(f->recs[0]->nlegs, 1);
	assert_int_equal(f->recs[0]->legs[0].status, 486);

	/* the same Call-ID again (a new attempt): rings, then the caller cancels */
	invite(f);
	resp(f, 180, "b2", 5064, NULL, T0 + 1000);
	resp(f, 487, "b2", 5064, NULL, T0 + 4000);
	dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 487, T0 + 4000);
	assert_int_equal(take(f), 1);
	assert_int_equal(f->recs[1]->disp, CDR_CANCELLED);
	assert_int_equal(f->recs[1]->status, 487);
	assert_int_equal(f->recs[1]->ring_ms, T0 + 1000);
	assert_int_equal(f->recs[1]->end_ms, T0 + 4000);
	assert_string_equal(cdr_ended_by(f->recs[1]), "cancel");
	assert_int_not_equal(f->recs[0]->id, f->recs[1]->id);
}

static void test_forked_ringing_history(void **state)
{
	struct fx *f = *state;
	struct cdr_rec *r;

	invite(f);
	resp(f, 180, "desk", 5062, NULL, T0 + 100);
	resp(f, 180, "mobile", 5064, NULL, T0 + 200);
	resp(f, 200, "mobile", 5064, NULL, T0 + 3000);
	bye(f, "mobile", true, T0 + 4000);
	assert_int_equal(take(f), 1);
	r = f->recs[0];
	assert_int_equal(r->ring_ms, T0 + 100);
	assert_int_equal(r->nlegs, 2);
	assert_string_equal(r->legs[0].totag, "desk");
	assert_int_equal(r->legs[0].ring_ms, T0 + 100);
	assert_int_equal(r->legs[0].status, 180); /* rang, lost to the mobile */
	assert_string_equal(r->legs[1].totag, "mobile");
	assert_int_equal(r->legs[1].ring_ms, T0 + 200);
	assert_int_equal(r->legs[1].status, 200);
	assert_string_equal(r->target, "sip:term@198.51.100.2:5064");
	assert_string_equal(cdr_ended_by(r), "bye-caller");
}

static void test_failover(void **state)
{
	struct fx *f = *state;
	struct cdr_rec *r;
	char a[80];

	invite(f);
	resp(f, 503, "gw1tag", 5080, "gw1", T0 + 50); /* no early dialog: a branch failure */
	resp(f, 183, "gw2tag", 5090, "gw2", T0 + 400);
	resp(f, 200, "gw2tag", 5090, "gw2", T0 + 5000);
	bye(f, "gw2tag", true, T0 + 5001);
	assert_int_equal(take(f), 1);
	r = f->recs[0];
	assert_string_equal(r->gateway, "gw2");
	assert_int_equal(r->nlegs, 2);
	assert_string_equal(r->legs[0].gateway, "gw1");
	assert_int_equal(r->legs[0].status, 503);
	tp_addr_format(&r->legs[0].to, a, sizeof(a));
	assert_string_equal(a, "udp:198.51.100.2:5080");
	assert_string_equal(r->legs[1].gateway, "gw2");
	assert_int_equal(r->legs[1].status, 200);
	assert_int_equal(cdr_billable_s(r), 1); /* 1 ms of talk is a second */
}

static void test_unanswered_without_ringing(void **state)
{
	struct fx *f = *state;

	invite(f);
	dlg_on_invite_final(f->t, SV(CALLID), SV("ftag"), 408, T0 + 32000);
	assert_int_equal(take(f), 1);
	assert_int_equal(f->recs[0]->disp, CDR_UNANSWERED);
	assert_int_equal(f->recs[0]->ring_ms, 0);
	assert_int_equal(f->recs[0]->nlegs, 0);
	assert_int_equal(cdr_disp_of(480, false), CDR_UNANSWERED);
	assert_int_equal(cdr_disp_of(404, false), CDR_FAILED);
	assert_int_equal(cdr_disp_of(600, false), CDR_BUSY);
}

/* The store form read back gives the same record. */
static void test_meta_round_trip(void **state)
{
	struct fx *f = *state;
	struct cdr_rec back;
	struct buf m, x, y;
	char key[17];

	invite(f);
	resp(f, 503, "", 5080, "gw1", T0 + 50);
	resp(f, 180, "b", 5090, "gw2", T0 + 400);
	resp(f, 200, "b", 5090, "gw2", T0 + 5000);
	bye(f, "b", true, T0 + 9000);
	assert_int_equal(take(f), 1);
	f->recs[0]->media.relayed = true;
	f->recs[0]->media.from_caller.packets = 450;
	snprintf(f->recs[0]->media.from_callee.codec, sizeof(f->recs[0]->media.from_callee.codec),
		 "PCMA/8000");
	buf_init(&m, 0);
	assert_int_equal(cdr_rec_meta(f->recs[0], &m), 0);
	snprintf(key, sizeof(key), "%016llx", (unsigned long long)f->recs[0]->id);
	assert_int_equal(cdr_rec_parse(key, m.p, &back), 0);
	buf_init(&x, 0);
	buf_init(&y, 0);
	cdr_json(f->recs[0], &x);
	cdr_json(&back, &y);
	buf_cstr(&x);
	buf_cstr(&y);
	assert_string_equal(x.p, y.p);
	assert_non_null(strstr(x.p, "\"codec\":\"PCMA/8000\""));
	assert_non_null(strstr(x.p, "\"gateway\":\"gw1\""));
	assert_int_equal(cdr_rec_parse(key, "no: record\n", &back), EINVAL);
	buf_free(&m);
	buf_free(&x);
	buf_free(&y);
}

static void test_csv_and_json_escaping(void **state)
{
	struct cdr_rec r;
	struct buf b;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.id = 0xabc;
	snprintf(r.callid, sizeof(r.callid), "a,b\"c");
	snprintf(r.from, sizeof(r.from), "=HYPERLINK(\"x\")");
	snprintf(r.dialled, sizeof(r.dialled), "sip:line\nbreak");
	snprintf(r.account, sizeof(r.account), "bad\xff\xfe utf8 \xc3\xa9 \x01");
	snprintf(r.identity, sizeof(r.identity), "back\\slash");
	r.status = 486;
	r.disp = CDR_BUSY;
	buf_init(&b, 0);
	cdr_csv_row(&r, &b);
	buf_cstr(&b);
	assert_non_null(strstr(b.p, "0000000000000abc,\"a,b\"\"c\","));
	assert_non_null(strstr(b.p, ",\"'=HYPERLINK(\"\"x\"\")\","));
	assert_non_null(strstr(b.p, ",\"sip:line\nbreak\","));
	assert_non_null(strstr(b.p, ",486,busy,"));
	buf_reset(&b);
	cdr_csv_header(&b);
	buf_cstr(&b);
	assert_true(strncmp(b.p, "id,callid,account,identity,from,dialled", 39) == 0);
	buf_reset(&b);
	cdr_json(&r, &b);
	buf_cstr(&b);
	assert_non_null(strstr(b.p, "\"callid\":\"a,b\\\"c\""));
	assert_non_null(strstr(b.p, "\"dialled\":\"sip:line\\u000abreak\""));
	assert_non_null(strstr(b.p, "\"account\":\"bad\\ufffd\\ufffd utf8 \xc3\xa9 \\u0001\""));
	assert_non_null(strstr(b.p, "\"identity\":\"back\\\\slash\""));
	assert_non_null(strstr(b.p, "\"start\":\"\""));
	buf_free(&b);
}

static void test_parse_time(void **state)
{
	int64_t ms;
	char why[200];

	(void)state;
	assert_int_equal(cdr_parse_time("1700000000", &ms, why, sizeof(why)), 0);
	assert_int_equal(ms, 1700000000000LL);
	assert_int_equal(cdr_parse_time("2023-11-14T22:13:20Z", &ms, why, sizeof(why)), 0);
	assert_int_equal(ms, 1700000000000LL);
	assert_int_equal(cdr_parse_time("2023-11-14T23:13:20+01:00", &ms, why, sizeof(why)), 0);
	assert_int_equal(ms, 1700000000000LL);
	assert_int_equal(cdr_parse_time("2023-11-14", &ms, why, sizeof(why)), 0);
	assert_int_equal(ms, 1699920000000LL);
	assert_int_equal(cdr_parse_time("2024-02-29T00:00", &ms, why, sizeof(why)), 0);
	assert_int_equal(cdr_parse_time("2023-02-29", &ms, why, sizeof(why)), EINVAL);
	assert_non_null(strstr(why, "no such date"));
	assert_int_equal(cdr_parse_time("2023-13-01", &ms, why, sizeof(why)), EINVAL);
	assert_int_equal(cdr_parse_time("yesterday", &ms, why, sizeof(why)), EINVAL);
	assert_non_null(strstr(why, "not a date"));
	assert_int_equal(cdr_parse_time("2023-11-14T22:13:20Zjunk", &ms, why, sizeof(why)), EINVAL);
	assert_int_equal(cdr_parse_time("", &ms, why, sizeof(why)), EINVAL);
	assert_int_equal(cdr_parse_time("99999999999999999999", &ms, why, sizeof(why)), EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_answered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_and_cancelled, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forked_ringing_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unanswered_without_ringing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_round_trip, setup, teardown),
	    cmocka_unit_test(test_csv_and_json_escaping),
	    cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
