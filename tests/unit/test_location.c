/*
 * test_location.c - the location table as a data structure, no network.
 *
 * Every function takes `now`, so the tests move time by hand: registration,
 * refresh, removal and Contact: *; RFC 3261 10.3 Call-ID/CSeq ordering; the
 * dry run the registrar uses for a replayed nonce-count; max_contacts;
 * +sip.instance/reg-id; 19.1.4 URI equality when a contact is matched;
 * lookups ordered by q; expiry; and the write-behind bookkeeping (which AOR
 * is dirty, with replace or not, and what the flush callback gets).
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
#include "services/location.h"

#define T0 1700000000 /* a fixed "now" */

struct fx {
	struct loc_table *t;
	struct buf out; /* Contact lines of the last register() */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f || loc_create(0x5eed, &f->t))
		return -1;
	buf_init(&f->out, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	loc_destroy(f->t);
	buf_free(&f->out);
	free(f);
	return 0;
}

/* A contact with q=1.0 and no instance. */
static struct loc_contact C(const char *uri, uint32_t expires) {
	return (struct loc_contact){.uri = sv_cstr(uri), .expires = expires, .q = 1000};
}

static struct loc_register
R(const char *aor, const char *callid, uint32_t cseq, int64_t now, const struct loc_contact *c,
  size_t n) {
	struct loc_register r = {
	    .aor = sv_cstr(aor),
	    .callid = sv_cstr(callid),
	    .cseq = cseq,
	    .contacts = c,
	    .ncontacts = n,
	    .path = SV(""),
	    .user_agent = SV("test-ua/1.0"),
	    .now = now,
	};

	tp_addr_from_str("192.0.2.7", 5062, SIP_PROTO_UDP, &r.received);
	return r;
}

static enum loc_result
reg(struct fx *f, const struct loc_register *r)
{
	buf_reset(&f->out);
	return loc_register(f->t, r, &f->out);
}

/* REGISTER of n contacts for aor */
static enum loc_result reg_n(struct fx *f, const char *aor, const char *callid, uint32_t cseq,
			     int64_t now, const struct loc_contact *c, size_t n)
{
	struct loc_register r = R(aor, callid, cseq, now, c, n);

	return reg(f, &r);
}

/* REGISTER of one contact */
static enum loc_result reg1(struct fx *f, const char *aor, const char *callid, uint32_t cseq,
			    int64_t now, const char *uri, uint32_t expires)
{
	struct loc_contact c = C(uri, expires);

	return reg_n(f, aor, callid, cseq, now, &c, 1);
}

static size_t lookup(struct fx *f, const char *aor, int64_t now, struct loc_target *out, size_t max)
{
	size_t n = 99;

	assert_int_equal(loc_lookup(f->t, sv_cstr(aor), now, out, max, &n), 0);
	return n;
}

/* The one binding of aor (asserts there is exactly one). */
static struct loc_target one(struct fx *f, const char *aor, int64_t now)
{
	struct loc_target tg[4];

	assert_int_equal(lookup(f, aor, now, tg, 4), 1);
	return tg[0];
}

static bool out_has(struct fx *f, const char *line)
{
	return strstr(buf_cstr(&f->out), line) != NULL;
}

static unsigned count_lines(struct fx *f)
{
	unsigned n = 0;

	for (const char *p = buf_cstr(&f->out); (p = strstr(p, "Contact: ")); p++)
		n++;
	return n;
}

/*
 * Flush recorder
 */
#define REC_MAX 8
struct rec {
	int fail; /* errno to return */
	size_t calls;
	char aor[REC_MAX][256];
	size_t n[REC_MAX];
	bool replace[REC_MAX];
	struct store_binding b[REC_MAX][4];
};

static int rec_fn(void *arg, const char *aor, const struct store_binding *b, size_t n, bool replace)
{
	struct rec *r = arg;
	size_t i = r->calls++;

	if (i >= REC_MAX)
		return r->fail; /* counted, not recorded */
	snprintf(r->aor[i], sizeof(r->aor[i]), "%s", aor);
	r->n[i] = n;
	r->replace[i] = replace;
	for (size_t k = 0; k < n && k < 4; k++)
		r->b[i][k] = b[k];
	return r->fail;
}

/* One flush call handing out at most max AORs. */
static struct rec flush_max(struct fx *f, int fail, size_t max)
{
	struct rec r;

	memset(&r, 0, sizeof(r));
	r.fail = fail;
	loc_flush_dirty(f->t, rec_fn, &r, max);
	return r;
}

static struct rec flush(struct fx *f, int fail)
{
	return flush_max(f, fail, 100);
}

/*
 * Register, refresh, remove, star
 */
static void test_register_refresh_remove(void **state)
{
	struct fx *f = *state;
	struct loc_target tg;

	assert_int_equal(loc_count(f->t), 0);
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 1, T0, "sip:alice@192.0.2.7:5062", 600), LOC_OK);
	assert_int_equal(loc_count(f->t), 1);
	tg = one(f, "alice@example.com", T0);
	assert_string_equal(tg.uri, "sip:alice@192.0.2.7:5062");
	assert_int_equal(tg.expires, T0 + 600);
	assert_int_equal(tg.q, 1000);
	assert_string_equal(tg.user_agent, "test-ua/1.0");
	assert_int_equal(tp_addr_port(&tg.received), 5062);
	assert_true(tp_addr_ip_is(&tg.received, SV("192.0.2.7")));
	assert_int_equal(tg.received.proto, SIP_PROTO_UDP);
	/* AORs are exact keys */
	assert_int_equal(lookup(f, "bob@example.com", T0, &tg, 1), 0);

	/* refresh: same Call-ID, higher CSeq, new expiry */
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 2, T0 + 100, "sip:alice@192.0.2.7:5062", 900),
	    LOC_OK);
	assert_int_equal(loc_count(f->t), 1);
	assert_int_equal(one(f, "alice@example.com", T0 + 100).expires, T0 + 100 + 900);

	/* a second contact */
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-2", 1, T0 + 100, "sip:alice@198.51.100.1", 600),
	    LOC_OK);
	assert_int_equal(loc_count(f->t), 2);

	/* removal with expires 0; removing an unknown contact is fine and changes nothing */
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 3, T0 + 200, "sip:alice@192.0.2.7:5062", 0),
	    LOC_OK);
	assert_int_equal(loc_count(f->t), 1);
	assert_string_equal(one(f, "alice@example.com", T0 + 200).uri, "sip:alice@198.51.100.1");
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-9", 1, T0 + 200, "sip:nobody@192.0.2.99", 0), LOC_OK);
	assert_int_equal(loc_count(f->t), 1);

	/* a query (no Contact) lists what is there */
	struct loc_register q = R("alice@example.com", "cid-q", 1, T0 + 200, NULL, 0);
	assert_int_equal(reg(f, &q), LOC_OK);
	assert_int_equal(count_lines(f), 1);
	assert_true(out_has(f, "Contact: <sip:alice@198.51.100.1>;expires=500\r\n"));
	struct loc_register q2 = R("nobody@example.com", "cid-q", 1, T0, NULL, 0);
	assert_int_equal(reg(f, &q2), LOC_OK);
	assert_int_equal(f->out.len, 0);
}

static void test_star(void **state)
{
	struct fx *f = *state;
	struct loc_contact cs[3] = {C("sip:a@192.0.2.1", 600), C("sip:a@192.0.2.2", 600),
				    C("sip:a@192.0.2.3", 600)};
	struct loc_register r;

	assert_int_equal(reg_n(f, "a@example.com", "cid-1", 10, T0, cs, 3), LOC_OK);
	assert_int_equal(reg1(f, "b@example.com", "cid-b", 1, T0, "sip:b@192.0.2.9", 600), LOC_OK);
	assert_int_equal(loc_count(f->t), 4);

	/* Contact: * with a lower CSeq of the same Call-ID is out of order: nothing goes */
	r = R("a@example.com", "cid-1", 9, T0 + 1, NULL, 0);
	r.star = true;
	assert_int_equal(reg(f, &r), LOC_OUT_OF_ORDER);
	assert_int_equal(loc_count(f->t), 4);

	r.cseq = 11;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(f->out.len, 0); /* no binding left to list */
	assert_int_equal(loc_count(f->t), 1);
	struct loc_target tg[4];
	assert_int_equal(lookup(f, "a@example.com", T0 + 1, tg, 4), 0);
	assert_int_equal(lookup(f, "b@example.com", T0 + 1, tg, 4), 1); /* other AORs untouched */

	/* and from another Call-ID (any CSeq) too */
	assert_int_equal(reg_n(f, "a@example.com", "cid-1", 12, T0 + 2, cs, 2), LOC_OK);
	r = R("a@example.com", "cid-other", 1, T0 + 3, NULL, 0);
	r.star = true;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(lookup(f, "a@example.com", T0 + 3, tg, 4), 0);
}

/*
 * RFC 3261 10.3 step 7: Call-ID and CSeq
 */
static void test_callid_cseq_order(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com", *uri = "sip:alice@192.0.2.7";

	assert_int_equal(reg1(f, aor, "cid-1", 5, T0, uri, 600), LOC_OK);

	/* lower CSeq, same Call-ID: out of order, binding unchanged, nothing listed */
	assert_int_equal(reg1(f, aor, "cid-1", 4, T0 + 10, uri, 3600), LOC_OUT_OF_ORDER);
	assert_int_equal(one(f, aor, T0 + 10).expires, T0 + 600);
	assert_int_equal(f->out.len, 0);
	/* an out-of-order removal does not remove */
	assert_int_equal(reg1(f, aor, "cid-1", 4, T0 + 10, uri, 0), LOC_OUT_OF_ORDER);
	assert_int_equal(loc_count(f->t), 1);

	/* same Call-ID and CSeq: a retransmission, nothing changes, the bindings are listed */
	assert_int_equal(reg1(f, aor, "cid-1", 5, T0 + 20, uri, 3600), LOC_RETRANSMISSION);
	assert_int_equal(one(f, aor, T0 + 20).expires, T0 + 600);
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7>;expires=580\r\n"));

	/* a new Call-ID may use any CSeq (the phone rebooted) */
	assert_int_equal(reg1(f, aor, "cid-2", 1, T0 + 30, uri, 3600), LOC_OK);
	assert_int_equal(one(f, aor, T0 + 30).expires, T0 + 30 + 3600);
	/* and then the old Call-ID is just another Call-ID */
	assert_int_equal(reg1(f, aor, "cid-1", 2, T0 + 40, uri, 1200), LOC_OK);
	assert_int_equal(one(f, aor, T0 + 40).expires, T0 + 40 + 1200);

	/* one out-of-order contact fails the whole REGISTER: the other one is not added */
	struct loc_contact two[2] = {C("sip:alice@198.51.100.5", 600), C(uri, 600)};
	assert_int_equal(reg_n(f, aor, "cid-1", 1, T0 + 50, two, 2), LOC_OUT_OF_ORDER);
	assert_int_equal(loc_count(f->t), 1);
}

/*
 * dry_run: what a replayed nonce-count may get
 */
static void test_dry_run(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com", *uri = "sip:alice@192.0.2.7";
	struct loc_contact c = C(uri, 600), other = C("sip:alice@198.51.100.5", 600);
	struct loc_register r;

	assert_int_equal(reg1(f, aor, "cid-1", 5, T0, uri, 600), LOC_OK);
	(void)flush(f, 0);
	assert_int_equal(loc_dirty_count(f->t), 0);

	/* the very REGISTER that was applied: nothing would change, bindings listed */
	r = R(aor, "cid-1", 5, T0 + 5, &c, 1);
	r.dry_run = true;
	assert_int_equal(reg(f, &r), LOC_RETRANSMISSION);
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7>;expires=595\r\n"));

	/* a newer CSeq would refresh: WOULD_CHANGE, and nothing changes */
	r.cseq = 6;
	assert_int_equal(reg(f, &r), LOC_WOULD_CHANGE);
	assert_int_equal(f->out.len, 0);
	assert_int_equal(one(f, aor, T0 + 5).expires, T0 + 600);
	/* the stored CSeq is still 5: a real CSeq 5 is still a retransmission */
	assert_int_equal(reg1(f, aor, "cid-1", 5, T0 + 6, uri, 600), LOC_RETRANSMISSION);

	/* a new contact would be added; a removal would remove */
	r = R(aor, "cid-1", 7, T0 + 5, &other, 1);
	r.dry_run = true;
	assert_int_equal(reg(f, &r), LOC_WOULD_CHANGE);
	assert_int_equal(loc_count(f->t), 1);
	c.expires = 0;
	r = R(aor, "cid-1", 7, T0 + 5, &c, 1);
	r.dry_run = true;
	assert_int_equal(reg(f, &r), LOC_WOULD_CHANGE);
	assert_int_equal(loc_count(f->t), 1);
	/* removing what is not there would not */
	other.expires = 0;
	r = R(aor, "cid-1", 7, T0 + 5, &other, 1);
	r.dry_run = true;
	assert_int_equal(reg(f, &r), LOC_RETRANSMISSION);
	/* Contact: * would */
	r = R(aor, "cid-1", 7, T0 + 5, NULL, 0);
	r.dry_run = true;
	r.star = true;
	assert_int_equal(reg(f, &r), LOC_WOULD_CHANGE);
	assert_int_equal(loc_count(f->t), 1);
	/* an out-of-order one is still refused */
	c.expires = 600;
	r = R(aor, "cid-1", 4, T0 + 5, &c, 1);
	r.dry_run = true;
	assert_int_equal(reg(f, &r), LOC_OUT_OF_ORDER);

	/* a dry run never makes anything dirty */
	assert_int_equal(loc_dirty_count(f->t), 0);
}

/*
 * max_contacts
 */
static void test_max_contacts(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_contact ab[2] = {C("sip:a@192.0.2.1", 600), C("sip:b@192.0.2.2", 60)};
	struct loc_contact c = C("sip:c@192.0.2.3", 600);
	struct loc_register r;

	r = R(aor, "cid-1", 1, T0, ab, 2);
	r.max_contacts = 2;
	assert_int_equal(reg(f, &r), LOC_OK);

	/* a third one is too many, and nothing of the request is applied */
	struct loc_contact refresh_and_c[2] = {C("sip:a@192.0.2.1", 900), c};
	r = R(aor, "cid-1", 2, T0 + 1, refresh_and_c, 2);
	r.max_contacts = 2;
	assert_int_equal(reg(f, &r), LOC_TOO_MANY);
	assert_int_equal(loc_count(f->t), 2);
	struct loc_target tg[4];
	assert_int_equal(lookup(f, aor, T0 + 1, tg, 4), 2);
	assert_int_equal(tg[0].expires == T0 + 600 || tg[1].expires == T0 + 600, true);
	assert_true(tg[0].expires != T0 + 1 + 900 && tg[1].expires != T0 + 1 + 900);

	/* refreshing what is there is within the limit */
	r = R(aor, "cid-1", 3, T0 + 2, ab, 2);
	r.max_contacts = 2;
	assert_int_equal(reg(f, &r), LOC_OK);

	/* a swap (remove a, add c) in one REGISTER stays within the limit */
	struct loc_contact swap[2] = {C("sip:a@192.0.2.1", 0), c};
	r = R(aor, "cid-1", 4, T0 + 3, swap, 2);
	r.max_contacts = 2;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 3, tg, 4), 2);
	assert_true(strcmp(tg[0].uri, "sip:a@192.0.2.1") != 0 &&
		    strcmp(tg[1].uri, "sip:a@192.0.2.1") != 0);

	/* an expired binding does not count: b expired at T0+2+60 */
	struct loc_contact d = C("sip:d@192.0.2.4", 600);
	r = R(aor, "cid-1", 5, T0 + 100, &d, 1);
	r.max_contacts = 2;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 100, tg, 4), 2);

	/* 0 = unlimited */
	struct loc_contact many[5] = {C("sip:1@192.0.2.11", 600), C("sip:2@192.0.2.12", 600),
				      C("sip:3@192.0.2.13", 600), C("sip:4@192.0.2.14", 600),
				      C("sip:5@192.0.2.15", 600)};
	r = R(aor, "cid-1", 6, T0 + 100, many, 5);
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 100, tg, 4), 4); /* max is the caller's array */
	assert_int_equal(loc_count(f->t), 7);
}

/*
 * RFC 5626 +sip.instance / reg-id
 */
static void test_instance_reg_id(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_contact c1 = C("sip:alice@192.0.2.7:5062;ob", 600);
	struct loc_contact c2 = C("sip:alice@203.0.113.9:40000;ob", 600);
	struct loc_contact c3 = C("sip:alice@203.0.113.9:40001;ob", 600);
	struct loc_target tg[4];

	c1.instance = c2.instance = c3.instance =
	    SV("\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"");
	c1.reg_id = c2.reg_id = 1;
	c3.reg_id = 2;
	c1.params = c2.params =
	    SV("+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1");

	assert_int_equal(reg_n(f, aor, "cid-1", 1, T0, &c1, 1), LOC_OK);
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7:5062;ob>;expires=600;+sip.instance="
			       "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1\r\n"));
	(void)flush(f, 0);

	/* same instance and reg-id, new address (the phone moved): replaced, not added */
	assert_int_equal(reg_n(f, aor, "cid-2", 1, T0 + 10, &c2, 1), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 10, tg, 4), 1);
	assert_string_equal(tg[0].uri, "sip:alice@203.0.113.9:40000;ob");
	assert_string_equal(
	    tg[0].params,
	    "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1");
	/* the row's key changed: the store must replace, not update */
	struct rec r = flush(f, 0);
	assert_int_equal(r.calls, 1);
	assert_true(r.replace[0]);
	assert_int_equal(r.n[0], 1);
	assert_string_equal(r.b[0][0].contact, "sip:alice@203.0.113.9:40000;ob");
	assert_string_equal(r.b[0][0].instance,
			    "\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"");
	assert_int_equal(r.b[0][0].reg_id, 1);

	/* the instance match obeys Call-ID/CSeq ordering too */
	assert_int_equal(reg_n(f, aor, "cid-2", 0, T0 + 11, &c1, 1), LOC_OUT_OF_ORDER);

	/* same instance, another reg-id: a second flow, a second binding */
	assert_int_equal(reg_n(f, aor, "cid-3", 1, T0 + 12, &c3, 1), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 12, tg, 4), 2);
}

/*
 * RFC 3261 19.1.4 when matching a contact (10.3 step 7)
 */
static void test_contact_uri_equality(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_target tg[4];

	assert_int_equal(
	    reg1(f, aor, "cid-1", 1, T0, "sip:alice@Example.COM:5070;transport=udp;ob", 600),
	    LOC_OK);
	/* host case, param order and param value case: the same contact, refreshed in place */
	assert_int_equal(
	    reg1(f, aor, "cid-1", 2, T0 + 1, "sip:alice@example.com:5070;ob;transport=UDP", 900),
	    LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 1, tg, 4), 1);
	assert_int_equal(tg[0].expires, T0 + 1 + 900);
	/* %-escapes in the user part */
	assert_int_equal(
	    reg1(f, aor, "cid-1", 3, T0 + 2, "sip:%61lice@EXAMPLE.com:5070;transport=udp;ob", 1000),
	    LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 2, tg, 4), 1);
	assert_int_equal(tg[0].expires, T0 + 2 + 1000);
	/* the scheme is case-insensitive too */
	assert_int_equal(
	    reg1(f, aor, "cid-1", 4, T0 + 3, "SIP:alice@example.com:5070;transport=udp;ob", 1100),
	    LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 3, tg, 4), 1);

	/* the user part is case-sensitive: a different contact */
	assert_int_equal(
	    reg1(f, aor, "cid-1", 5, T0 + 4, "sip:Alice@example.com:5070;transport=udp;ob", 600),
	    LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 4, tg, 4), 2);
	/* a port that is present in one only differs (5060 is not "no port") */
	assert_int_equal(reg1(f, aor, "cid-1", 6, T0 + 5, "sip:bob@192.0.2.1", 600), LOC_OK);
	assert_int_equal(reg1(f, aor, "cid-1", 7, T0 + 5, "sip:bob@192.0.2.1:5060", 600), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 5, tg, 4), 4);
	/* transport present in one only differs */
	assert_int_equal(reg1(f, aor, "cid-1", 8, T0 + 5, "sip:bob@192.0.2.1;transport=tcp", 0),
			 LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 5, tg, 4), 4);

	/* a removal written differently removes the equal contact */
	assert_int_equal(
	    reg1(f, aor, "cid-1", 9, T0 + 6, "sip:alice@EXAMPLE.COM:5070;TRANSPORT=udp;ob", 0),
	    LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 6, tg, 4), 3);
	for (size_t i = 0; i < 3; i++)
		assert_null(strstr(tg[i].uri, ":alice@"));
	assert_int_equal(reg1(f, aor, "cid-1", 10, T0 + 6, "sip:B%6Fb@192.0.2.1", 0), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 6, tg, 4), 3); /* "bob" != "Bob" */
	assert_int_equal(reg1(f, aor, "cid-1", 11, T0 + 6, "sip:b%6Fb@192.0.2.1", 0), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 6, tg, 4), 2);
}

/*
 * Lookups: order by q, expired bindings skipped
 */
static void test_lookup_order(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_contact c[3] = {C("sip:mid@192.0.2.1", 600), C("sip:top@192.0.2.2", 600),
				   C("sip:low@192.0.2.3", 600)};
	struct loc_target tg[8];

	c[0].q = 500;
	c[1].q = 1000;
	c[2].q = 100;
	assert_int_equal(reg_n(f, aor, "cid-1", 1, T0, c, 3), LOC_OK);
	/* equal q: the most recent first */
	assert_int_equal(reg1(f, aor, "cid-2", 1, T0 + 1, "sip:top2@192.0.2.4", 600), LOC_OK);
	/* a short one, expired at the time of the lookup */
	struct loc_contact gone = C("sip:gone@192.0.2.5", 10);
	gone.q = 1000;
	assert_int_equal(reg_n(f, aor, "cid-3", 1, T0 + 2, &gone, 1), LOC_OK);

	assert_int_equal(lookup(f, aor, T0 + 5, tg, 8), 5);
	assert_string_equal(tg[0].uri, "sip:gone@192.0.2.5");
	assert_int_equal(lookup(f, aor, T0 + 12, tg, 8), 4);
	assert_string_equal(tg[0].uri, "sip:top2@192.0.2.4");
	assert_string_equal(tg[1].uri, "sip:top@192.0.2.2");
	assert_string_equal(tg[2].uri, "sip:mid@192.0.2.1");
	assert_int_equal(tg[2].q, 500);
	assert_string_equal(tg[3].uri, "sip:low@192.0.2.3");
	assert_int_equal(tg[3].q, 100);
	/* exactly at its expiry a binding is gone */
	assert_int_equal(lookup(f, aor, T0 + 2 + 10, tg, 8), 4);
	assert_int_equal(lookup(f, aor, T0 + 600, tg, 8), 1);
	assert_int_equal(lookup(f, aor, T0 + 601, tg, 8), 0);
}

/*
 * BUG: loc_lookup with max smaller than the number of bindings keeps the
 * first max bindings of the list (the most recently registered) and sorts
 * those, instead of returning the max best by q. The proxy calls it with
 * max 1 (an ACK routed through the location service) and with 16 (forking).
 */
static void test_lookup_max_keeps_highest_q(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_contact best = C("sip:desk@192.0.2.1", 600),
			   worse = C("sip:mobile@192.0.2.2", 600);
	struct loc_target tg[2];

	best.q = 1000;
	worse.q = 100;
	assert_int_equal(reg_n(f, aor, "cid-1", 1, T0, &best, 1), LOC_OK);
	assert_int_equal(reg_n(f, aor, "cid-2", 1, T0 + 1, &worse, 1), LOC_OK);
	assert_int_equal(lookup(f, aor, T0 + 2, tg, 2), 2);
	assert_string_equal(tg[0].uri, "sip:desk@192.0.2.1"); /* full lookup: right */
	assert_int_equal(lookup(f, aor, T0 + 2, tg, 1), 1);
	assert_string_equal(tg[0].uri, "sip:desk@192.0.2.1"); /* "highest q first" */
}

/*
 * Expiry
 */
static void test_expire(void **state)
{
	struct fx *f = *state;
	struct loc_target tg[2];
	char aor[64], uri[64];

	/* 50 AORs over many buckets: even ones live 100 s, odd ones 1000 s */
	for (int i = 0; i < 50; i++) {
		snprintf(aor, sizeof(aor), "user%d@example.com", i);
		snprintf(uri, sizeof(uri), "sip:user%d@192.0.2.%d", i, i + 1);
		assert_int_equal(reg1(f, aor, "cid", 1, T0, uri, i % 2 ? 1000 : 100), LOC_OK);
	}
	assert_int_equal(loc_count(f->t), 50);
	(void)flush(f, 0);

	assert_int_equal(loc_expire(f->t, T0 + 99), 0);
	assert_int_equal(loc_dirty_count(f->t), 0);
	/* lookups ignore what expired before loc_expire runs; loc_count still counts it */
	assert_int_equal(lookup(f, "user0@example.com", T0 + 100, tg, 2), 0);
	assert_int_equal(loc_count(f->t), 50);
	assert_int_equal(loc_expire(f->t, T0 + 100), 25);
	assert_int_equal(loc_count(f->t), 25);
	assert_int_equal(loc_expire(f->t, T0 + 100), 0);
	/* each AOR that lost a binding is written again, replacing its rows */
	assert_int_equal(loc_dirty_count(f->t), 25);
	struct rec r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(loc_flush_dirty(f->t, rec_fn, &r, 5), 5);
	for (size_t i = 0; i < 5; i++) {
		assert_true(r.replace[i]);
		assert_int_equal(r.n[i], 0);
	}
	memset(&r, 0, sizeof(r));
	while (loc_flush_dirty(f->t, rec_fn, &r, 1))
		r.calls = 0;
	assert_int_equal(loc_dirty_count(f->t), 0);

	/* loc_expire_some: parts calls go round the whole table once */
	size_t total = 0, first;
	first = loc_expire_some(f->t, T0 + 1000, 4);
	assert_true(first <= 25);
	total += first;
	for (int i = 0; i < 3; i++)
		total += loc_expire_some(f->t, T0 + 1000, 4);
	assert_int_equal(total, 25);
	assert_int_equal(loc_count(f->t), 0);
	assert_int_equal(loc_expire_some(f->t, T0 + 1000, 4), 0);
}

/* loc_expire_some really does only part of the table per call */
static void test_expire_some_is_partial(void **state)
{
	struct fx *f = *state;
	char aor[64];
	size_t per_call[8], total = 0;
	unsigned nonzero = 0;

	for (int i = 0; i < 200; i++) {
		snprintf(aor, sizeof(aor), "u%d@example.com", i);
		assert_int_equal(reg1(f, aor, "cid", 1, T0, "sip:u@192.0.2.1", 60), LOC_OK);
	}
	for (int i = 0; i < 8; i++) {
		per_call[i] = loc_expire_some(f->t, T0 + 60, 8);
		total += per_call[i];
		nonzero += per_call[i] > 0;
		assert_true(per_call[i] < 200);
	}
	assert_int_equal(total, 200);
	assert_true(nonzero >= 4); /* 200 hashed AORs land in most eighths */
}

/*
 * Write-behind
 */
static void test_write_behind_new_and_refresh(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com", *uri = "sip:alice@192.0.2.7:5062";
	struct loc_contact c = C(uri, 3600);
	struct loc_register r;
	struct rec rc;

	/* a new binding: dirty, replace */
	r = R(aor, "cid-1", 1, T0, &c, 1);
	r.path = SV("<sip:edge.example.com;lr>");
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_string_equal(rc.aor[0], aor);
	assert_true(rc.replace[0]);
	assert_int_equal(rc.n[0], 1);
	assert_string_equal(rc.b[0][0].aor, aor);
	assert_string_equal(rc.b[0][0].contact, uri);
	assert_string_equal(rc.b[0][0].callid, "cid-1");
	assert_int_equal(rc.b[0][0].cseq, 1);
	assert_int_equal(rc.b[0][0].expires, T0 + 3600);
	assert_int_equal(rc.b[0][0].q, 1000);
	assert_string_equal(rc.b[0][0].received, "udp:192.0.2.7:5062");
	assert_string_equal(rc.b[0][0].path, "<sip:edge.example.com;lr>");
	assert_string_equal(rc.b[0][0].user_agent, "test-ua/1.0");
	assert_int_equal(loc_dirty_count(f->t), 0);
	assert_int_equal(flush(f, 0).calls, 0);

	/* a pure refresh (new Call-ID, CSeq, expiry) while the stored expiry T0+3600
	 * still covers 2/3 of the new interval (T0+1000+2400 = T0+3400): not dirty */
	r = R(aor, "cid-2", 7, T0 + 1000, &c, 1);
	r.path = SV("<sip:edge.example.com;lr>");
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 0);
	assert_int_equal(one(f, aor, T0 + 1000).expires, T0 + 1000 + 3600); /* memory moved on */
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7:5062>;expires=3600\r\n"));
	/* the boundary: T0+1200+2400 == T0+3600 still covered */
	r.cseq = 8;
	r.now = T0 + 1200;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 0);

	/* no longer covered (T0+1300+2400 > T0+3600): dirty, updated in place */
	r.cseq = 9;
	r.now = T0 + 1300;
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_false(rc.replace[0]);
	assert_int_equal(rc.b[0][0].expires, T0 + 1300 + 3600);
	assert_int_equal(rc.b[0][0].cseq, 9);
	assert_string_equal(rc.b[0][0].callid, "cid-2");

	/* not a pure refresh: q changed -> dirty at once (in place) */
	c.q = 700;
	r = R(aor, "cid-2", 10, T0 + 1301, &c, 1);
	r.path = SV("<sip:edge.example.com;lr>");
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_false(rc.replace[0]);
	assert_int_equal(rc.b[0][0].q, 700);
	/* another source address is not a pure refresh either */
	r.cseq = 11;
	tp_addr_from_str("192.0.2.8", 5062, SIP_PROTO_UDP, &r.received);
	assert_int_equal(reg(f, &r), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_string_equal(rc.b[0][0].received, "udp:192.0.2.8:5062");

	/* a removal: dirty, replace, no binding left */
	c.expires = 0;
	r.cseq = 12;
	assert_int_equal(reg(f, &r), LOC_OK);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_true(rc.replace[0]);
	assert_int_equal(rc.n[0], 0);
	assert_int_equal(loc_dirty_count(f->t), 0);
}

static void test_mark_unpersisted(void **state)
{
	struct fx *f = *state;
	const char *uri = "sip:alice@192.0.2.7";
	struct rec rc;

	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 1, T0, uri, 3600), LOC_OK);
	assert_int_equal(reg1(f, "bob@example.com", "cid-b", 1, T0, "sip:bob@192.0.2.8", 3600),
			 LOC_OK);
	(void)flush(f, 0);
	loc_mark_unpersisted(f->t);
	assert_int_equal(loc_dirty_count(f->t), 0); /* everything is stored as it is */

	/* alice refreshes within 2/3: not written, so her stored expiry lags behind */
	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 2, T0 + 600, uri, 3600), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 0);
	loc_mark_unpersisted(f->t);
	assert_int_equal(loc_dirty_count(f->t), 1);
	loc_mark_unpersisted(f->t); /* once */
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_string_equal(rc.aor[0], "alice@example.com");
	assert_false(rc.replace[0]);
	assert_int_equal(rc.b[0][0].expires, T0 + 600 + 3600);
	loc_mark_unpersisted(f->t);
	assert_int_equal(loc_dirty_count(f->t), 0);
}

static void test_flush_failure_stays_dirty(void **state)
{
	struct fx *f = *state;
	const char *uri = "sip:alice@192.0.2.7";
	struct rec rc;

	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 1, T0, uri, 3600), LOC_OK);
	(void)flush(f, 0);
	/* an in-place update whose write fails */
	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 2, T0 + 2000, uri, 3600), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush_max(f, EIO, 1); /* max 1: see test_flush_failure_once_per_call */
	assert_int_equal(rc.calls, 1);
	assert_false(rc.replace[0]);
	assert_int_equal(loc_dirty_count(f->t), 1);
	/* written again in full: the store may hold anything now */
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_true(rc.replace[0]);
	assert_int_equal(rc.n[0], 1);
	assert_int_equal(rc.b[0][0].expires, T0 + 2000 + 3600);
	assert_int_equal(loc_dirty_count(f->t), 0);
	/* and nothing counts as stored after the failure until it was rewritten:
	 * a pure refresh right after the rewrite is not dirty */
	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 3, T0 + 2001, uri, 3600), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 0);

	/* the failed removal of the last binding: the AOR is still written later */
	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 4, T0 + 2002, uri, 0), LOC_OK);
	rc = flush_max(f, EIO, 1);
	assert_int_equal(rc.n[0], 0);
	assert_int_equal(loc_dirty_count(f->t), 1);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_string_equal(rc.aor[0], "alice@example.com");
	assert_true(rc.replace[0]);
	assert_int_equal(rc.n[0], 0);
	assert_int_equal(loc_dirty_count(f->t), 0);
}

/*
 * BUG: an AOR whose write fails is queued again at the tail of the dirty
 * list inside the same loc_flush_dirty() call, which then pops it again: one
 * call hands the same AOR out up to max times and returns max. The database
 * thread's flush_locations() loops `while (n == DBQ_FLUSH_BATCH)`, so one
 * AOR that cannot be written (see test_long_contact_with_real_store) keeps
 * that thread spinning for ever.
 */
static void test_flush_failure_once_per_call(void **state)
{
	struct fx *f = *state;
	struct rec rc;

	assert_int_equal(reg1(f, "alice@example.com", "cid-1", 1, T0, "sip:alice@192.0.2.7", 3600),
			 LOC_OK);
	memset(&rc, 0, sizeof(rc));
	rc.fail = EIO;
	size_t n = loc_flush_dirty(f->t, rec_fn, &rc, 100);
	assert_int_equal(loc_dirty_count(f->t), 1); /* still dirty: right */
	assert_int_equal(rc.calls, 1);		    /* handed out once per call */
	assert_int_equal(n, 1);
}

/* The flush callback of the database thread (server/dbq.c write_aor). */
static int store_write_aor(void *arg, const char *aor, const struct store_binding *b, size_t n,
			   bool replace)
{
	struct store *st = arg;
	int err = replace ? store_binding_del_aor(st, aor) : 0;

	for (size_t i = 0; i < n && !err; i++)
		err = store_binding_put(st, &b[i]);
	return err;
}

static int count_row(void *arg, const struct store_binding *b)
{
	(void)b;
	(*(size_t *)arg)++;
	return 0;
}

/*
 * BUG: a Contact URI of STORE_URI_MAX (512) characters or more is accepted
 * in memory, but binding_export() copies it with sv_copy(), which leaves an
 * empty string when it does not fit, and store_binding_put() refuses an
 * empty contact (EINVAL). The registration is never stored, and with the
 * bug of test_flush_failure_once_per_call one REGISTER with a long Contact
 * (any subscriber can send one) keeps the database thread spinning. The
 * table must either refuse such a contact or get it into the store.
 */
static void test_long_contact_with_real_store(void **state)
{
	struct fx *f = *state;
	char dir[] = "/tmp/sb-test-loc-XXXXXX", path[64], err[256], uri[700];
	struct store *st = NULL;
	size_t handed = 0, rows = 0;
	enum loc_result rc;
	int len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sb.db", dir);
	assert_int_equal(store_open(path, &st, err, sizeof(err)), 0);
	len = snprintf(uri, sizeof(uri), "sip:alice@192.0.2.7;x=");
	while (len < 600)
		uri[len++] = 'a';
	uri[len] = '\0';

	rc = reg1(f, "alice@example.com", "cid-1", 1, T0, uri, 3600);
	if (rc == LOC_OK) {
		assert_int_equal(store_begin(st), 0);
		handed = loc_flush_dirty(f->t, store_write_aor, st, 4096);
		assert_int_equal(store_commit(st), 0);
		assert_int_equal(store_binding_list(st, "alice@example.com", count_row, &rows), 0);
	}
	store_close(st);
	unlink(path);
	rmdir(dir);
	if (rc == LOC_OK) {
		/* one dirty AOR: handed out once, and stored */
		assert_int_equal(handed, 1);
		assert_int_equal(rows, 1);
	} else {
		/* refused: nothing kept, nothing to write */
		assert_int_not_equal(rc, LOC_RETRANSMISSION);
		assert_int_equal(loc_count(f->t), 0);
		assert_int_equal(loc_dirty_count(f->t), 0);
	}
}

/*
 * BUG: loc_flush_dirty() snapshots at most 64 bindings of an AOR
 * (LOC_MAX_BINDINGS_PER_AOR) but max_contacts 0 means unlimited (and any
 * value above 64 is accepted). A flush with replace=true deletes the AOR's
 * rows and writes the first 64: the others are never stored and are gone
 * after a restart. The table must refuse what it cannot write, or write it.
 */
static void test_flush_all_bindings_of_big_aor(void **state)
{
	struct fx *f = *state;
	struct loc_contact c[70];
	char uris[70][40];
	struct rec rc;
	size_t accepted = 0;

	for (int i = 0; i < 70; i++) {
		snprintf(uris[i], sizeof(uris[i]), "sip:dev%d@192.0.2.%d", i, i + 1);
		c[i] = C(uris[i], 600);
	}
	/* seven REGISTERs of ten contacts, no limit configured */
	for (int k = 0; k < 7; k++) {
		if (reg_n(f, "pbx@example.com", "cid-1", (uint32_t)k + 1, T0, &c[k * 10], 10) ==
		    LOC_OK)
			accepted += 10;
	}
	assert_int_equal(loc_count(f->t), accepted);
	rc = flush(f, 0);
	assert_int_equal(rc.calls, 1);
	assert_true(rc.replace[0]);
	assert_int_equal(rc.n[0], accepted);
}

/*
 * Loading from the store
 */
static struct store_binding SB(const char *aor, const char *contact, int64_t expires, uint16_t q) {
	struct store_binding b;

	memset(&b, 0, sizeof(b));
	snprintf(b.aor, sizeof(b.aor), "%s", aor);
	snprintf(b.contact, sizeof(b.contact), "%s", contact);
	snprintf(b.received, sizeof(b.received), "udp:192.0.2.7:5062");
	snprintf(b.callid, sizeof(b.callid), "cid-1");
	snprintf(b.user_agent, sizeof(b.user_agent), "test-ua/1.0");
	b.cseq = 4;
	b.expires = expires;
	b.q = q;
	return b;
}

static void
test_load(void **state)
{
	struct fx *f = *state;
	struct store_binding live = SB("alice@example.com", "sip:alice@192.0.2.7", T0 + 3000, 1000);
	struct store_binding low =
	    SB("alice@example.com", "sip:alice@198.51.100.1", T0 + 3000, 200);
	struct store_binding old = SB("alice@example.com", "sip:alice@203.0.113.1", T0 - 1, 1000);
	struct store_binding now = SB("bob@example.com", "sip:bob@203.0.113.2", T0, 1000);
	struct loc_target tg[4];

	assert_int_equal(loc_load(f->t, &low, T0), 0);
	assert_int_equal(loc_load(f->t, &live, T0), 0);
	assert_int_equal(loc_load(f->t, &old, T0), 0);
	assert_int_equal(loc_load(f->t, &now, T0), 0);
	assert_int_equal(loc_count(f->t), 2);	    /* expired rows are skipped */
	assert_int_equal(loc_dirty_count(f->t), 0); /* what was loaded is stored */
	assert_int_equal(lookup(f, "alice@example.com", T0, tg, 4), 2);
	assert_string_equal(tg[0].uri, "sip:alice@192.0.2.7");
	assert_int_equal(tg[0].expires, T0 + 3000);
	assert_int_equal(tg[1].q, 200);
	assert_int_equal(tp_addr_port(&tg[0].received), 5062);
	assert_int_equal(lookup(f, "bob@example.com", T0, tg, 4), 0);

	/* the stored Call-ID/CSeq order the next REGISTER */
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 3, T0 + 1, "sip:alice@192.0.2.7", 3600),
	    LOC_OUT_OF_ORDER);
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 4, T0 + 1, "sip:alice@192.0.2.7", 3600),
	    LOC_RETRANSMISSION);
	/* the stored expiry counts as persisted: a refresh it covers is not written */
	assert_int_equal(
	    reg1(f, "alice@example.com", "cid-1", 5, T0 + 1, "sip:alice@192.0.2.7", 3600), LOC_OK);
	assert_int_equal(loc_dirty_count(f->t), 0);
}

/*
 * The Contact lines of the 200
 */
static void test_contact_lines(void **state)
{
	struct fx *f = *state;
	const char *aor = "alice@example.com";
	struct loc_contact c[3] = {C("sip:alice@192.0.2.7;transport=udp", 3600),
				   C("sip:alice@198.51.100.1", 1800),
				   C("sip:alice@203.0.113.1", 120)};

	c[1].q = 500;
	c[2].q = 0;
	assert_int_equal(reg_n(f, aor, "cid-1", 1, T0, c, 3), LOC_OK);
	assert_int_equal(count_lines(f), 3);
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7;transport=udp>;expires=3600\r\n"));
	assert_true(out_has(f, "Contact: <sip:alice@198.51.100.1>;expires=1800;q=0.500\r\n"));
	assert_true(out_has(f, "Contact: <sip:alice@203.0.113.1>;expires=120;q=0.000\r\n"));

	/* 100 s later another phone registers: every binding is listed with what is left */
	struct loc_contact d = C("sip:alice@192.0.2.99", 60);
	d.q = 1000;
	assert_int_equal(reg_n(f, aor, "cid-2", 1, T0 + 100, &d, 1), LOC_OK);
	assert_int_equal(count_lines(f), 4);
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.7;transport=udp>;expires=3500\r\n"));
	assert_true(out_has(f, "Contact: <sip:alice@198.51.100.1>;expires=1700;q=0.500\r\n"));
	assert_true(out_has(f, "Contact: <sip:alice@203.0.113.1>;expires=20;q=0.000\r\n"));
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.99>;expires=60\r\n"));

	/* what expired is not listed */
	assert_int_equal(reg1(f, aor, "cid-3", 1, T0 + 130, "sip:alice@192.0.2.100", 60), LOC_OK);
	assert_int_equal(count_lines(f), 4);
	assert_false(out_has(f, "203.0.113.1"));
	assert_true(out_has(f, "Contact: <sip:alice@192.0.2.99>;expires=30\r\n"));

	/* a removal lists what remains, not the removed one */
	assert_int_equal(reg1(f, aor, "cid-1", 2, T0 + 130, "sip:alice@198.51.100.1", 0), LOC_OK);
	assert_int_equal(count_lines(f), 3);
	assert_false(out_has(f, "198.51.100.1"));
	/* no output buffer is fine */
	struct loc_register r = R(aor, "cid-1", 3, T0 + 131, c, 1);
	assert_int_equal(loc_register(f->t, &r, NULL), LOC_OK);
}

/*
 * What a binding keeps must fit a target and the store: a Call-ID,
 * +sip.instance or Contact parameters longer than that are refused, never
 * kept cut (a cut Call-ID would break the ordering of later REGISTERs, a cut
 * instance would name another device). A long User-Agent is informative: its
 * first LOC_MAX_UA - 1 bytes are kept, in memory and in the store alike.
 */
static void test_fields_longer_than_kept_are_refused(void **state)
{
	struct fx *f = *state;
	char big[600];
	struct loc_contact c = C("sip:alice@192.0.2.7:5062", 600);
	struct loc_register r;
	struct loc_target tg;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r = R("alice@example.com", "cid-1", 1, T0, &c, 1);
	r.callid = sv_make(big, LOC_MAX_CALLID);
	assert_int_equal(reg(f, &r), LOC_TOO_LONG);
	c.instance = sv_make(big, LOC_MAX_INSTANCE);
	r = R("alice@example.com", "cid-1", 1, T0, &c, 1);
	assert_int_equal(reg(f, &r), LOC_TOO_LONG);
	c = C("sip:alice@192.0.2.7:5062", 600);
	c.params = sv_make(big, LOC_MAX_PARAMS);
	r = R("alice@example.com", "cid-1", 1, T0, &c, 1);
	assert_int_equal(reg(f, &r), LOC_TOO_LONG);
	assert_int_equal(loc_count(f->t), 0);
	/* one byte less of each fits */
	c = C("sip:alice@192.0.2.7:5062", 600);
	c.instance = sv_make(big, LOC_MAX_INSTANCE - 1);
	c.params = sv_make(big, LOC_MAX_PARAMS - 1);
	r = R("alice@example.com", "cid-1", 1, T0, &c, 1);
	r.callid = sv_make(big, LOC_MAX_CALLID - 1);
	r.user_agent = sv_make(big, 300);
	assert_int_equal(reg(f, &r), LOC_OK);
	tg = one(f, "alice@example.com", T0);
	assert_int_equal(strlen(tg.params), LOC_MAX_PARAMS - 1);
	assert_int_equal(strlen(tg.user_agent), LOC_MAX_UA - 1);
	/* the store gets every field whole (the UA as kept) */
	struct rec w = flush(f, 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(strlen(w.b[0][0].callid), LOC_MAX_CALLID - 1);
	assert_int_equal(strlen(w.b[0][0].instance), LOC_MAX_INSTANCE - 1);
	assert_int_equal(strlen(w.b[0][0].user_agent), LOC_MAX_UA - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_register_refresh_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_star, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_callid_cseq_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_contacts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instance_reg_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contact_uri_equality, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_max_keeps_highest_q, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_some_is_partial, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_behind_new_and_refresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mark_unpersisted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_failure_stays_dirty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_failure_once_per_call, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_contact_with_real_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_all_bindings_of_big_aor, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contact_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fields_longer_than_kept_are_refused, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
