/*
 * test_overload.c - overload control (RFC 7339): the Via oc parameter
 * parser and the reply that replaces them, the per-worker delay measure and
 * loss-based shedding driven by a fake clock (including a simulated server
 * at 1x, 3x and 10x its capacity), the oc parameters advertised upstream and
 * the reduction of what is sent to a downstream server that reports overload.
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
#include "request/overload.h"
#include "sip/sip.h"

#define MS  1000000LL
#define SEC 1000000000LL
/* a fake clock far from 0 (0 means "no timestamp") */
#define T0 (1700000000LL * SEC)

static int parse_via(const char *text, struct sip_via *via)
{
	return sip_via_parse(sv_cstr(text), via, NULL);
}

static void test_oc_parse_request(void **state)
{
	struct sip_via via;
	struct sip_via_oc oc;

	(void)state;
	assert_int_equal(
	    parse_via("SIP/2.0/TCP p1.example.net;branch=z9hG4bK2d4790.1;oc;oc-algo=\"loss,A\"",
		      &via),
	    0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.present);
	assert_false(oc.has_value);
	assert_true(oc.loss);
	assert_false(oc.has_validity);
	assert_false(oc.has_seq);
	assert_int_equal(oc.span[SIP_OC_OC].len, 3);
	assert_memory_equal(oc.span[SIP_OC_OC].p, ";oc", 3);
	assert_int_equal(oc.span[SIP_OC_ALGO].len, strlen(";oc-algo=\"loss,A\""));

	/* the quick scan that comes before the parse */
	assert_true(sip_oc_maybe(SV(";branch=z9hG4bK2d4790.1;oc;oc-algo=\"loss,A\""), false));
	assert_false(sip_oc_maybe(SV(";branch=z9hG4bK2d4790.1;oc;oc-algo=\"loss,A\""), true));
	assert_true(sip_oc_maybe(SV("; OC = 20"), true));
	assert_true(sip_oc_maybe(SV(";rport;oc"), false));
	assert_true(sip_oc_maybe(SV("oc"), false)); /* a parsed Via's params: no leading ';' */
	assert_true(sip_oc_maybe(SV("oc;rport;oc=5"), true));
	assert_false(sip_oc_maybe(SV(";ocx=1;oc-algo=loss;rport;branch=oc"), false));
	assert_false(sip_oc_maybe(SV("SIP/2.0/UDP docs.example.com;branch=z9hG4bKa"), false));

	/* no oc at all; names that only start like it */
	assert_int_equal(parse_via("SIP/2.0/UDP h;branch=z9hG4bKa;ocx=1;rport", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_false(oc.present);
	assert_int_equal(parse_via("SIP/2.0/UDP h", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_false(oc.present);

	/* an algorithm we do not run */
	assert_int_equal(parse_via("SIP/2.0/UDP h;branch=z9hG4bKa;OC;oc-algo=\"rate\"", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.present);
	assert_false(oc.loss);
	/* a token instead of a quoted list, spaces in the list */
	assert_int_equal(parse_via("SIP/2.0/UDP h;oc;oc-algo=\"rate , LOSS\"", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.loss);
	assert_int_equal(parse_via("SIP/2.0/UDP h;oc;oc-algo=loss", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.loss);
}

static void test_oc_parse_response(void **state)
{
	struct sip_via via;
	struct sip_via_oc oc;

	(void)state;
	assert_int_equal(parse_via("SIP/2.0/TCP p1.example.net;branch=z9hG4bK2d4790.1;received="
				   "192.0.2.111;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq="
				   "1282321615.782",
				   &via),
			 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.present);
	assert_true(oc.has_value);
	assert_int_equal(oc.value, 20);
	assert_true(oc.loss);
	assert_true(oc.has_validity);
	assert_int_equal(oc.validity_ms, 500);
	assert_true(oc.has_seq);
	assert_true(oc.seq == 1282321615ULL * 100000 + 78200);
	assert_int_equal(oc.span[SIP_OC_SEQ].len, strlen(";oc-seq=1282321615.782"));

	/* a later report with a longer fraction compares by value, not by digits */
	assert_int_equal(parse_via("SIP/2.0/UDP h;oc=0;oc-seq=1282321615.7821", &via), 0);
	assert_int_equal(sip_via_oc_parse(&via, &oc), 0);
	assert_true(oc.seq == 1282321615ULL * 100000 + 78210);
	assert_int_equal(oc.value, 0);
}

static void test_oc_parse_malformed(void **state)
{
	static const char *bad[] = {
	    "SIP/2.0/UDP h;oc=101",
	    "SIP/2.0/UDP h;oc=-1",
	    "SIP/2.0/UDP h;oc=5x",
	    "SIP/2.0/UDP h;oc=1000",
	    "SIP/2.0/UDP h;oc=5;oc-validity=abc",
	    "SIP/2.0/UDP h;oc=5;oc-validity",
	    "SIP/2.0/UDP h;oc=5;oc-validity=999999999",
	    "SIP/2.0/UDP h;oc=5;oc-seq=12",
	    "SIP/2.0/UDP h;oc=5;oc-seq=.5",
	    "SIP/2.0/UDP h;oc=5;oc-seq=1.",
	    "SIP/2.0/UDP h;oc=5;oc-seq=1.123456",
	    "SIP/2.0/UDP h;oc=5;oc-seq=1234567890123.1",
	};
	struct sip_via via;
	struct sip_via_oc oc;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse_via(bad[i], &via), 0);
		if (sip_via_oc_parse(&via, &oc) != EINVAL)
			fail_msg("accepted: %s", bad[i]);
	}
}

/* A reply replaces the client's bare oc and its oc-algo list, and fills in rport. */
static void test_reply_replaces_oc(void **state)
{
	static const char req[] = "INVITE sip:bob@example.com SIP/2.0\r\n"
				  "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKabc;oc;rport;"
				  "oc-algo=\"loss,A\", SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKdef\r\n"
				  "From: <sip:alice@example.com>;tag=1\r\n"
				  "To: <sip:bob@example.com>\r\n"
				  "Call-ID: c1\r\n"
				  "CSeq: 1 INVITE\r\n"
				  "Content-Length: 0\r\n\r\n";
	struct sip_msg m = {0};
	struct sip_via_oc oc;
	sv_t drop[SIP_OC_NSPANS];
	size_t n = 0;
	struct buf out;
	const char *params = ";rport=5070;oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1.00001";
	struct sip_reply rep = {.status = 503, .to_tag = SV("t"), .via_drop_rport = true};

	(void)state;
	assert_int_equal(sip_parse(&m, req, sizeof(req) - 1, 0), 0);
	assert_int_equal(sip_via_oc_parse(sip_msg_via1(&m), &oc), 0);
	for (unsigned i = 0; i < SIP_OC_NSPANS; i++) {
		if (oc.span[i].len)
			drop[n++] = oc.span[i];
	}
	assert_int_equal(n, 2);
	rep.via_drop = drop;
	rep.nvia_drop = n;
	rep.via_params = sv_cstr(params);
	buf_init(&out, 0);
	assert_int_equal(sip_build_reply(&out, &m, &rep), 0);
	buf_append_char(&out, '\0');
	assert_non_null(strstr(out.p,
			       "Via: SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKabc;rport=5070;"
			       "oc=20;oc-algo=\"loss\";oc-validity=500;oc-seq=1.00001, "
			       "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKdef\r\n"));
	buf_free(&out);
	sip_msg_release(&m);
}

static struct ovl *make(unsigned delay_ms)
{
	struct ovl_params p = {
	    .enabled = true, .delay_ms = delay_ms, .retry_after = 2, .validity_ms = 500};
	struct ovl *o;

	assert_int_equal(ovl_create(&p, &o), 0);
	return o;
}

/* Samples of one delay, one per millisecond, from *now for ms milliseconds. */
static void feed(struct ovl *o, int64_t *now, int64_t delay, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		*now += MS;
		ovl_sample(o, *now - delay, *now);
	}
}

static unsigned shed_of(struct ovl *o, int64_t now, unsigned n)
{
	unsigned shed = 0;

	for (unsigned i = 0; i < n; i++)
		shed += ovl_admit(o, now) == OVL_SHED;
	return shed;
}

static void test_ewma_and_shedding(void **state)
{
	struct ovl *o = make(50);
	struct ovl_stats st;
	int64_t now = T0;
	unsigned red, shed;

	(void)state;
	/* under the threshold: nothing is refused */
	feed(o, &now, 10 * MS, 1000);
	ovl_stats_get(o, now, &st);
	assert_int_equal(st.reduction, 0);
	assert_true(st.delay_us > 9000 && st.delay_us < 11000);
	assert_int_equal(shed_of(o, now, 1000), 0);

	/* one slow burst shorter than the smoothing does not trigger it */
	feed(o, &now, 300 * MS, 3);
	feed(o, &now, 10 * MS, 200);
	assert_int_equal(ovl_reduction(o, now), 0);

	/* a standing delay of four times the threshold: the reduction grows each interval */
	feed(o, &now, 200 * MS, 150);
	red = ovl_reduction(o, now);
	assert_true(red > 0);
	feed(o, &now, 200 * MS, 300);
	assert_true(ovl_reduction(o, now) > red);
	red = ovl_reduction(o, now);
	assert_true(red >= 50);
	/* proportional: exactly that share of new requests is refused, spread evenly */
	shed = shed_of(o, now, 1000);
	assert_true(shed >= red * 10 - 10 && shed <= red * 10 + 10);
	ovl_stats_get(o, now, &st);
	assert_true(st.shed == shed);
	assert_true(st.overloaded > 0);
	assert_true(st.max_delay_us >= 300000);

	/* the delay goes: back to taking everything within seconds */
	feed(o, &now, 1 * MS, 3000);
	assert_int_equal(ovl_reduction(o, now), 0);
	assert_int_equal(shed_of(o, now, 1000), 0);

	/* an idle worker (no samples at all) recovers too */
	feed(o, &now, 400 * MS, 1000);
	assert_true(ovl_reduction(o, now) > 50);
	now += 10 * SEC;
	assert_int_equal(ovl_reduction(o, now), 0);

	/* a clock step (a "delay" of a minute or negative) is no measure */
	ovl_sample(o, now - 60 * SEC, now);
	ovl_sample(o, now + SEC, now);
	ovl_stats_get(o, now, &st);
	assert_true(st.delay_us < 1000);
	ovl_destroy(o);
}

static void test_disabled(void **state)
{
	struct ovl_params p = {.enabled = false, .delay_ms = 1};
	struct ovl *o;
	int64_t now = T0;

	(void)state;
	assert_int_equal(ovl_create(&p, &o), 0);
	feed(o, &now, 5 * SEC, 2000);
	assert_int_equal(shed_of(o, now, 100), 0);
	assert_int_equal(ovl_reduction(o, now), 0);
	ovl_destroy(o);
}

/*
 * A simulated worker: calls cost 1 ms of work each (capacity 1000/s), a
 * refusal costs 1 % of that, arrivals are evenly spread. Each arrival waits
 * for the work queued before it (its delay). At 1x nothing is refused; at
 * 3x and 10x the goodput stays above 90 % of capacity (at 10x the refusals
 * alone take 9 % of it) and the p99 delay stays near the 50 ms threshold
 * (the fluid model drains the excess in a few intervals; the earlier
 * multiplicative cut let it reach 120 ms).
 */
static void simulate(unsigned load_x, double *goodput, double *p99_ms, double *refused)
{
	struct ovl *o = make(50);
	int64_t now = T0, backlog = 0; /* ns of work queued */
	const int64_t call_ns = MS, shed_ns = MS / 100;
	const unsigned per_ms = load_x; /* arrivals per millisecond at load_x * 1000/s */
	unsigned long done = 0, offered = 0, nshed = 0;
	static int64_t delays[400000];
	size_t nd = 0;

	for (unsigned t = 0; t < 20000; t++) { /* 20 s */
		for (unsigned k = 0; k < per_ms; k++) {
			int64_t at = now + (int64_t)k * MS / per_ms;
			int64_t wait = backlog;
			ovl_sample(o, at, at + wait);
			if (ovl_admit(o, at + wait) == OVL_ADMIT) {
				backlog += call_ns;
				if (t >= 5000) {
					done++;
					if (nd < sizeof(delays) / sizeof(delays[0]))
						delays[nd++] = wait;
				}
			} else {
				backlog += shed_ns;
				nshed += t >= 5000;
			}
			offered += t >= 5000;
		}
		now += MS;
		backlog = backlog > MS ? backlog - MS : 0;
	}
	/* p99 of the delay of admitted calls */
	for (size_t i = 1; i < nd; i++) {
		int64_t v = delays[i];
		size_t j = i;
		if (v >= delays[i - 1])
			continue;
		while (j > 0 && delays[j - 1] > v) {
			delays[j] = delays[j - 1];
			j--;
		}
		delays[j] = v;
	}
	*goodput = (double)done / 15.0;
	*p99_ms = nd ? (double)delays[nd * 99 / 100] / 1e6 : 0;
	*refused = offered ? (double)nshed / (double)offered : 0;
	ovl_destroy(o);
}

static void test_simulated_load(void **state)
{
	double g, p99, refused;

	(void)state;
	simulate(1, &g, &p99, &refused);
	print_message("1x: goodput %.0f/s, p99 delay %.1f ms, refused %.1f %%\n", g, p99,
		      refused * 100);
	assert_true(refused == 0);
	assert_true(g >= 990);
	simulate(3, &g, &p99, &refused);
	print_message("3x: goodput %.0f/s, p99 delay %.1f ms, refused %.1f %%\n", g, p99,
		      refused * 100);
	assert_true(g >= 950);
	assert_true(p99 < 100);
	simulate(10, &g, &p99, &refused);
	print_message("10x: goodput %.0f/s, p99 delay %.1f ms, refused %.1f %%\n", g, p99,
		      refused * 100);
	assert_true(g >= 900);
	assert_true(p99 < 100);
}

static void test_oc_params(void **state)
{
	struct ovl *o = make(50);
	int64_t now = T0 + 123456789;
	char a[128], b[128];
	size_t n;

	(void)state;
	n = ovl_oc_params(o, now, a, sizeof(a));
	assert_true(n > 0);
	assert_string_equal(a, ";oc=0;oc-algo=\"loss\";oc-validity=0;oc-seq=1700000000.12345");
	/* the same instant twice: the sequence still grows */
	ovl_oc_params(o, now, b, sizeof(b));
	assert_string_equal(b, ";oc=0;oc-algo=\"loss\";oc-validity=0;oc-seq=1700000000.12346");
	feed(o, &now, 300 * MS, 500);
	ovl_oc_params(o, now, a, sizeof(a));
	assert_non_null(strstr(a, ";oc-validity=500;"));
	assert_null(strstr(a, ";oc=0;"));
	/* too small a buffer: nothing rather than a cut parameter */
	assert_int_equal(ovl_oc_params(o, now, a, 20), 0);
	ovl_destroy(o);
}

static struct sip_via_oc report(unsigned value, uint32_t validity, uint64_t seq)
{
	return (struct sip_via_oc){.present = true,
				   .has_value = true,
				   .value = value,
				   .loss = true,
				   .has_validity = true,
				   .validity_ms = validity,
				   .has_seq = true,
				   .seq = seq};
}

static unsigned dest_shed_of(struct ovl *o, const struct tp_addr *a, int64_t now, unsigned n)
{
	unsigned shed = 0;

	for (unsigned i = 0; i < n; i++)
		shed += ovl_dest_admit(o, a, now) == OVL_SHED;
	return shed;
}

static void test_downstream(void **state)
{
	struct ovl *o = make(50);
	struct tp_addr gw, other;
	struct sip_via_oc r;
	struct ovl_stats st;
	int64_t now = T0;

	(void)state;
	assert_int_equal(tp_addr_from_str("192.0.2.10", 5060, SIP_PROTO_UDP, &gw), 0);
	assert_int_equal(tp_addr_from_str("192.0.2.11", 5060, SIP_PROTO_UDP, &other), 0);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 0);

	r = report(50, 1000, 100);
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 50);
	assert_int_equal(dest_shed_of(o, &other, now, 100), 0);
	/* an older report does not undo a newer one */
	r = report(0, 1000, 99);
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 50);
	/* a newer one changes it */
	r = report(80, 1000, 101);
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 80);
	ovl_stats_get(o, now, &st);
	assert_true(st.dest_shed == 180);
	assert_int_equal(st.ndest, 1);
	/* the report runs out after its validity */
	assert_int_equal(dest_shed_of(o, &gw, now + 1001 * MS, 100), 0);
	/* oc=0 ends it at once */
	r = report(30, 1000, 200);
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 10), 3);
	r = report(0, 0, 201);
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 0);
	/* another algorithm's report, or none, is not acted on */
	r = report(50, 1000, 300);
	r.loss = false;
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 100), 0);
	/* 100 % stops everything; no validity given: 500 ms */
	r = report(100, 0, 400);
	r.has_validity = false;
	ovl_dest_update(o, &gw, &r, now);
	assert_int_equal(dest_shed_of(o, &gw, now, 10), 10);
	assert_int_equal(dest_shed_of(o, &gw, now + 499 * MS, 10), 10);
	assert_int_equal(dest_shed_of(o, &gw, now + 501 * MS, 10), 0);
	ovl_destroy(o);
}

/* Reports from many servers: the table stays bounded, the newest are kept. */
static void test_downstream_bounded(void **state)
{
	struct ovl *o = make(50);
	struct sip_via_oc r;
	struct tp_addr a;
	struct ovl_stats st;
	int64_t now = T0;
	char ip[32];

	(void)state;
	for (unsigned i = 0; i < OVL_DEST_MAX * 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%u", i % 250 + 1);
		assert_int_equal(
		    tp_addr_from_str(ip, (uint16_t)(5060 + i / 250), SIP_PROTO_UDP, &a), 0);
		r = report(100, 1000 + i, i + 1);
		ovl_dest_update(o, &a, &r, now);
	}
	ovl_stats_get(o, now, &st);
	assert_int_equal(st.ndest, OVL_DEST_MAX);
	/* the last one is held */
	assert_int_equal(dest_shed_of(o, &a, now, 5), 5);
	ovl_destroy(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_oc_parse_request),   cmocka_unit_test(test_oc_parse_response),
	    cmocka_unit_test(test_oc_parse_malformed), cmocka_unit_test(test_reply_replaces_oc),
	    cmocka_unit_test(test_ewma_and_shedding),  cmocka_unit_test(test_disabled),
	    cmocka_unit_test(test_simulated_load),     cmocka_unit_test(test_oc_params),
	    cmocka_unit_test(test_downstream),	       cmocka_unit_test(test_downstream_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
