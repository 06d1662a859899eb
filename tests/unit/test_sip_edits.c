/*
 * test_sip_edits.c - byte edits of a received message (sip/print.c), the
 * way the proxy builds what it forwards: edits given in any order are
 * applied by position, one more than SIP_MAX_EDITS is an error and not a
 * silent drop, and an edit that overlaps another or lies outside the
 * message is an error and not skipped (issue 13, item 6).
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
#include "sip/sip.h"

static const char MSG[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
			  "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
			  "Max-Forwards: 70\r\n"
			  "From: <sip:alice@example.com>;tag=1\r\n"
			  "To: <sip:bob@example.com>\r\n"
			  "Call-ID: c1@192.0.2.1\r\n"
			  "CSeq: 1 INVITE\r\n"
			  "Content-Length: 0\r\n"
			  "\r\n";

struct fixture {
	struct sip_msg m;
	struct buf out;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(sip_parse(&f->m, MSG, sizeof(MSG) - 1, 0), 0);
	buf_init(&f->out, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sip_msg_release(&f->m);
	buf_free(&f->out);
	free(f);
	return 0;
}

static const char *find(const char *what)
{
	const char *p = strstr(MSG, what);

	assert_non_null(p);
	return p;
}

static void assert_out(struct fixture *f, const char *want)
{
	assert_int_equal(f->out.len, strlen(want));
	assert_memory_equal(f->out.p, want, f->out.len);
}

/* What a proxy does: a Via on top, Max-Forwards down, a new Request-URI; added in any order. */
static void test_edits_in_any_order_apply_by_position(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	const char *mf = find("70\r\n");
	const char *ruri = find("sip:bob@example.com SIP");

	assert_int_equal(sip_edit_add(&l, mf, 2, SV("69")), 0);
	assert_int_equal(sip_edit_add(&l, f->m.headers.p, 0, SV("Via: SIP/2.0/UDP proxy\r\n")), 0);
	assert_int_equal(sip_edit_add(&l, ruri, strlen("sip:bob@example.com"), SV("sip:bob@h")), 0);
	/* two inserts at one position keep the order they were added in */
	assert_int_equal(sip_edit_add(&l, f->m.headers.p, 0, SV("Record-Route: <sip:p;lr>\r\n")),
			 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), 0);
	assert_out(f, "INVITE sip:bob@h SIP/2.0\r\n"
		      "Via: SIP/2.0/UDP proxy\r\n"
		      "Record-Route: <sip:p;lr>\r\n"
		      "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
		      "Max-Forwards: 69\r\n"
		      "From: <sip:alice@example.com>;tag=1\r\n"
		      "To: <sip:bob@example.com>\r\n"
		      "Call-ID: c1@192.0.2.1\r\n"
		      "CSeq: 1 INVITE\r\n"
		      "Content-Length: 0\r\n"
		      "\r\n");
}

/* The 17th edit is refused, and the list remembers it: the message is not built without it. */
static void test_one_edit_too_many_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	const char *at = find("Max-Forwards");

	for (unsigned i = 0; i < SIP_MAX_EDITS; i++)
		assert_int_equal(sip_edit_add(&l, at, 0, SV("X")), 0);
	assert_int_equal(sip_edit_add(&l, at, 0, SV("Y")), E2BIG);
	assert_int_equal(l.n, SIP_MAX_EDITS);
	assert_int_equal(l.err, E2BIG);
	/* callers that do not check each add still get the error where it counts */
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), E2BIG);
	assert_int_equal(f->out.len, 0);
}

static void test_exactly_the_limit_applies(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	const char *at = find("Max-Forwards");

	for (unsigned i = 0; i < SIP_MAX_EDITS; i++)
		assert_int_equal(sip_edit_add(&l, at, 0, SV("X")), 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), 0);
	assert_non_null(memmem(f->out.p, f->out.len, "XXXXXXXXXXXXXXXXMax-Forwards", 28));
}

/* An edit that starts inside the bytes another one drops cannot both apply: an error. */
static void test_overlapping_edits_are_an_error(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	const char *line = find("Max-Forwards: 70\r\n");

	assert_int_equal(sip_edit_add(&l, line, strlen("Max-Forwards: 70\r\n"), SV_NULL), 0);
	assert_int_equal(sip_edit_add(&l, line + 14, 2, SV("69")), 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), EINVAL);
}

/* sip_apply_edits itself: unsorted edits are an error, not skipped. */
static void test_unsorted_edits_are_an_error(void **state)
{
	struct fixture *f = *state;
	struct sip_edit e[2] = {
	    {find("70\r\n"), 2, SV("69")},
	    {f->m.headers.p, 0, SV("Via: x\r\n")},
	};

	assert_int_equal(sip_apply_edits(&f->out, &f->m, e, 2), EINVAL);
}

static void test_edit_outside_the_message_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	const char *end = f->m.buf + f->m.len;

	/* deleting past the end */
	assert_int_equal(sip_edit_add(&l, end - 2, 4, SV_NULL), 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), EINVAL);
	/* an insert at the very end is inside: fine */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sip_edit_add(&l, end, 0, SV("body")), 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), 0);
	assert_int_equal(f->out.len, f->m.len + 4);
	/* a position in another buffer */
	memset(&l, 0, sizeof(l));
	assert_int_equal(sip_edit_add(&l, end + 1, 0, SV("x")), 0);
	assert_int_equal(sip_edits_apply(&f->out, &f->m, &l), EINVAL);
}

/* A full fixed-size output buffer is an error too, not a cut message. */
static void test_output_that_does_not_fit_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct sip_edit_list l = {0};
	char small[64];
	struct buf b;

	buf_init_fixed(&b, small, sizeof(small));
	assert_int_equal(sip_edit_add(&l, f->m.headers.p, 0, SV("Via: x\r\n")), 0);
	assert_int_not_equal(sip_edits_apply(&b, &f->m, &l), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_edits_in_any_order_apply_by_position, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_one_edit_too_many_is_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exactly_the_limit_applies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlapping_edits_are_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsorted_edits_are_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_edit_outside_the_message_is_an_error, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_output_that_does_not_fit_is_an_error, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
