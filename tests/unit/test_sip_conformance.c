/*
 * test_sip_conformance.c - every RFC 4475 and RFC 5118 torture message
 * through the parser and the request/response checks, compared with the
 * verdict the manifest's "required_behaviour" column asks of a proxy and
 * registrar.
 *
 * A verdict here is what the message layer alone decides: 0 (well formed,
 * routing decides), a status (400, 416, 505) or DROP (a response that must be
 * discarded). Decisions that need routing state (420, 483, registrar 400s)
 * are checked end to end by tests/integration/test_rfc4475.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sip/sip.h"

#define DROP 1

struct verdict {
	const char *file;
	unsigned expect;
};

static const struct verdict rfc4475[] = {
    {"wsinv.dat", 0},	   {"intmeth.dat", 0},	    {"esc01.dat", 0},
    {"escnull.dat", 0},	   {"esc02.dat", 0},	    {"lwsdisp.dat", 0},
    {"longreq.dat", 0},	   {"dblreq.dat", 0},	    {"semiuri.dat", 0},
    {"transports.dat", 0}, {"mpart01.dat", 0},	    {"unreason.dat", 0},
    {"noreason.dat", 0},   {"badinv01.dat", 400},   {"clerr.dat", 400},
    {"ncl.dat", 400},	   {"scalar02.dat", 400},   {"scalarlg.dat", DROP},
    {"quotbal.dat", 400},  {"ltgtruri.dat", 400},   {"lwsruri.dat", 400},
    {"lwsstart.dat", 400}, {"trws.dat", 400},	    {"escruri.dat", 400},
    {"baddate.dat", 0},	 /* Date plays no part in routing: accepted */
    {"regbadct.dat", 0}, /* the registrar rejects the unbracketed Contact */
    {"badaspec.dat", 400}, {"baddn.dat", 400},	    {"variants/baddn-crlf-terminated.dat", 400},
    {"badvers.dat", 505},  {"mismatch01.dat", 400}, {"mismatch02.dat", 400},
    {"bigcode.dat", DROP}, {"badbranch.dat", 0},    {"insuf.dat", 400},
    {"unkscm.dat", 416},   {"novelsc.dat", 416},    {"unksm2.dat", 0},
    {"bext01.dat", 0},	   {"invut.dat", 0},	    {"regaut01.dat", 0},
    {"multi01.dat", 400},  {"mcl01.dat", 400},	    {"bcast.dat", 0},
    {"zeromf.dat", 0},	   {"cparam01.dat", 0},	    {"cparam02.dat", 0},
    {"regescrt.dat", 0},   {"sdp01.dat", 0},	    {"inv2543.dat", 0},
    {"test.dat", 400},
};

static const struct verdict rfc5118[] = {
    {"wire/ipv6-good", 0},
    {"wire/ipv6-bad", 400},
    {"wire/port-ambiguous", 0},
    {"wire/port-unambiguous", 0},
    {"wire/via-received-param-with-delim", 0},
    {"wire/via-received-param-no-delim", 0},
    {"wire/ipv6-in-sdp", 0},
    {"wire/mult-ip-in-header", 0},
    {"wire/mult-ip-in-sdp", 0},
    {"wire/ipv4-mapped-ipv6", 0},
    {"wire/ipv6-bug-abnf-3-colons", 0},
    {"wire/ipv6-correct-abnf-2-colons", 0},
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
		free(data);
		data = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return data;
}

/* The verdict of the message layer for one datagram. */
static unsigned judge(const char *data, size_t len)
{
	struct sip_msg *m = calloc(1, sizeof(*m));
	unsigned v;
	int err;

	assert_non_null(m);
	err = sip_parse(m, data, len, 0);
	if (err) {
		v = m->request ? 400 : DROP;
	} else if (m->request) {
		v = sip_request_check(m);
	} else {
		v = sip_response_check(m) ? DROP : 0;
	}
	sip_msg_release(m);
	free(m);
	return v;
}

static void run_table(const char *dir, const struct verdict *t, size_t n)
{
	char path[512];
	int failures = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *data;
		unsigned got;

		snprintf(path, sizeof(path), "%s/%s/%s", SB_CONFORMANCE_DIR, dir, t[i].file);
		data = slurp(path, &len);
		assert_non_null(data);
		got = judge(data, len);
		if (got != t[i].expect) {
			print_message("%s: expected %u, got %u\n", t[i].file, t[i].expect, got);
			failures++;
		}
		free(data);
	}
	assert_int_equal(failures, 0);
}

static void test_rfc4475_verdicts(void **state)
{
	(void)state;
	run_table("rfc4475", rfc4475, sizeof(rfc4475) / sizeof(rfc4475[0]));
}

static void test_rfc5118_verdicts(void **state)
{
	(void)state;
	run_table("rfc5118", rfc5118, sizeof(rfc5118) / sizeof(rfc5118[0]));
}

/* Every file in the manifest has a verdict above: a new file cannot slip by. */
static void test_manifest_covered(void **state)
{
	char path[512], line[4096];
	FILE *f;
	int missing = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/rfc4475/MANIFEST.tsv", SB_CONFORMANCE_DIR);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f)); /* header */
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t');
		bool found = false;
		if (!tab)
			continue;
		*tab = '\0';
		for (size_t i = 0; i < sizeof(rfc4475) / sizeof(rfc4475[0]); i++)
			found |= strcmp(rfc4475[i].file, line) == 0;
		if (!found) {
			print_message("no verdict for %s\n", line);
			missing++;
		}
	}
	fclose(f);
	assert_int_equal(missing, 0);
}

/* Selected details the RFC calls out. */
static void test_wsinv_details(void **state)
{
	char path[512];
	size_t len;
	char *data;
	struct sip_msg *m = calloc(1, sizeof(*m));
	const struct sip_via *via;
	const struct sip_naddr *to, *from;

	(void)state;
	snprintf(path, sizeof(path), "%s/rfc4475/wsinv.dat", SB_CONFORMANCE_DIR);
	data = slurp(path, &len);
	assert_int_equal(sip_parse(m, data, len, 0), 0);
	assert_int_equal(m->method, SIP_INVITE);
	via = sip_msg_via1(m);
	assert_non_null(via);
	assert_true(sv_eq(via->host, SV("192.0.2.2")));
	assert_true(sv_eq(via->branch, SV("390skdjuw")));
	to = sip_msg_to(m);
	assert_non_null(to);
	assert_true(sv_eq(to->tag, SV("1918181833n")));
	from = sip_msg_from(m);
	assert_non_null(from);
	assert_true(sv_eq(from->tag, SV("98asjd8")));
	assert_int_equal(sip_msg_max_forwards(m), 68);
	assert_int_equal(sip_msg_cseq(m)->num, 9);
	assert_int_equal(m->body.len, 150);
	assert_int_equal(sip_msg_hdr_count(m, SIP_H_VIA), 2);
	sip_msg_release(m);
	free(m);
	free(data);
}

static void test_dblreq_trailing_ignored(void **state)
{
	char path[512];
	size_t len;
	char *data;
	struct sip_msg *m = calloc(1, sizeof(*m));

	(void)state;
	snprintf(path, sizeof(path), "%s/rfc4475/dblreq.dat", SB_CONFORMANCE_DIR);
	data = slurp(path, &len);
	assert_int_equal(sip_parse(m, data, len, 0), 0);
	assert_int_equal(m->method, SIP_REGISTER);
	assert_int_equal(m->body.len, 0);
	assert_true(m->len < len);
	free(m);
	free(data);
}

static void test_esc01_uri_compare(void **state)
{
	struct sip_uri a, b;

	(void)state;
	assert_int_equal(sip_uri_parse(SV("sip:%75se%72@example.com"), &a), 0);
	assert_int_equal(sip_uri_parse(SV("sip:user@EXAMPLE.com"), &b), 0);
	assert_true(sip_uri_equal(&a, &b));
	assert_int_equal(sip_uri_parse(SV("sip:user@example.com:5060"), &b), 0);
	assert_false(sip_uri_equal(&a, &b));
}

static void test_semiuri_user_part(void **state)
{
	struct sip_uri u;

	(void)state;
	assert_int_equal(sip_uri_parse(SV("sip:user;par=u%40example.net@example.com"), &u), 0);
	assert_true(sv_eq(u.user, SV("user;par=u%40example.net")));
	assert_true(sv_eq(u.host, SV("example.com")));
	assert_int_equal(u.params.len, 0);
}

static void test_ipv6_port_ambiguity(void **state)
{
	struct sip_uri u;

	(void)state;
	assert_int_equal(sip_uri_parse(SV("sip:user@[2001:db8::10:5070]"), &u), 0);
	assert_true(u.host_v6);
	assert_int_equal(u.port, 0);
	assert_int_equal(sip_uri_parse(SV("sip:user@[2001:db8::10]:5070"), &u), 0);
	assert_int_equal(u.port, 5070);
	assert_true(sv_eq(u.host, SV("2001:db8::10")));
}

/* Comma-separated header values (RFC 3261 7.3.1): a comma inside quotes or <> does not split. */
static void test_list_split(void **state)
{
	static const struct {
		const char *in;
		const char *elems[4];
	} cases[] = {
	    {"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", {"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"}},
	    {"a, b ,c", {"a", "b", "c"}},
	    {"<sip:p1;lr>, <sip:p2;lr>", {"<sip:p1;lr>", "<sip:p2;lr>"}},
	    {"<sip:a,b@x>;q=1, <sip:c>", {"<sip:a,b@x>;q=1", "<sip:c>"}},
	    {"\"Doe, John\" <sip:j@x>, <sip:k@x>", {"\"Doe, John\" <sip:j@x>", "<sip:k@x>"}},
	    {"\"a \\\" ,b\" <sip:q@x>", {"\"a \\\" ,b\" <sip:q@x>"}},
	    {"x, \"y,z\"", {"x", "\"y,z\""}},
	    {"", {""}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sv_t v = sv_cstr(cases[i].in);
		size_t k = 0;

		do {
			sv_t e = sip_list_split(&v);
			assert_true(k < 4 && cases[i].elems[k]);
			assert_int_equal(e.len, strlen(cases[i].elems[k]));
			assert_memory_equal(e.p, cases[i].elems[k], e.len);
			k++;
		} while (v.len);
		assert_true(k == 4 || !cases[i].elems[k]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4475_verdicts),
	    cmocka_unit_test(test_rfc5118_verdicts),
	    cmocka_unit_test(test_manifest_covered),
	    cmocka_unit_test(test_wsinv_details),
	    cmocka_unit_test(test_dblreq_trailing_ignored),
	    cmocka_unit_test(test_esc01_uri_compare),
	    cmocka_unit_test(test_semiuri_user_part),
	    cmocka_unit_test(test_ipv6_port_ambiguity),
	    cmocka_unit_test(test_list_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
