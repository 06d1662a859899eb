/*
 * test_nat.c - the NAT alias of proxy/nat.c (docs/nat.md): what a Contact
 * behind NAT looks like (nat_contact_differs), an alias printed for an
 * address verifies for that dialog and gives that address back (IPv4, IPv6,
 * UDP and TCP), and every way of getting it wrong is refused: another
 * Call-ID, another key, one byte changed anywhere, another spelling of the
 * address, missing or extra fields, bad ports and transports.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/internal.h"

static struct siphash_key key(unsigned char seed)
{
	unsigned char b[16];
	struct siphash_key k;

	for (int i = 0; i < 16; i++)
		b[i] = (unsigned char)(seed + i);
	siphash_key_from_bytes(&k, b);
	return k;
}

static sv_t value_of(const char *alias)
{
	/* ";sb-alias=" then the value */
	assert_memory_equal(alias, ";sb-alias=", 10);
	return sv_cstr(alias + 10);
}

static void contact_differs(void **state)
{
	struct tp_addr src;
	struct sip_uri u;
	(void)state;

	assert_int_equal(tp_addr_from_str("100.64.1.2", 40312, SIP_PROTO_UDP, &src), 0);
	/* a private Contact behind a public source */
	assert_int_equal(sip_uri_parse(SV("sip:alice@192.168.1.10:5060"), &u), 0);
	assert_true(nat_contact_differs(&u, &src));
	/* the same address, another port (a NAT that keeps the address) */
	assert_int_equal(sip_uri_parse(SV("sip:alice@100.64.1.2:5060"), &u), 0);
	assert_true(nat_contact_differs(&u, &src));
	/* exactly where it came from */
	assert_int_equal(sip_uri_parse(SV("sip:alice@100.64.1.2:40312"), &u), 0);
	assert_false(nat_contact_differs(&u, &src));
	/* ... but over another transport */
	assert_int_equal(sip_uri_parse(SV("sip:alice@100.64.1.2:40312;transport=tcp"), &u), 0);
	assert_true(nat_contact_differs(&u, &src));
	/* a host name: taken as meant */
	assert_int_equal(sip_uri_parse(SV("sip:alice@pbx.example.com"), &u), 0);
	assert_false(nat_contact_differs(&u, &src));
	/* no port: 5060 */
	assert_int_equal(tp_addr_from_str("192.0.2.7", 5060, SIP_PROTO_UDP, &src), 0);
	assert_int_equal(sip_uri_parse(SV("sip:bob@192.0.2.7"), &u), 0);
	assert_false(nat_contact_differs(&u, &src));
	/* a TCP phone's source port is ephemeral: a Contact on 5060 is behind it */
	assert_int_equal(tp_addr_from_str("192.0.2.7", 51000, SIP_PROTO_TCP, &src), 0);
	assert_int_equal(sip_uri_parse(SV("sip:bob@192.0.2.7;transport=tcp"), &u), 0);
	assert_true(nat_contact_differs(&u, &src));
}

static void roundtrip(const char *ip, uint16_t port, enum sip_proto proto)
{
	struct siphash_key k = key(1);
	struct tp_addr src, got;
	char text[128];
	size_t n;

	assert_int_equal(tp_addr_from_str(ip, port, proto, &src), 0);
	n = nat_alias_print(&k, SV("call-1@x"), &src, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal(strlen(text), n);
	assert_int_equal(nat_alias_verify(&k, SV("call-1@x"), value_of(text), &got), 0);
	assert_true(tp_addr_equal(&got, &src));
}

static void print_verify(void **state)
{
	struct siphash_key k = key(1);
	struct tp_addr src, got;
	char text[128];
	(void)state;

	roundtrip("100.64.1.2", 40312, SIP_PROTO_UDP);
	roundtrip("198.18.0.5", 5060, SIP_PROTO_TCP);
	roundtrip("2001:db8::1", 1, SIP_PROTO_UDP);
	roundtrip("203.0.113.9", 65535, SIP_PROTO_TLS);

	assert_int_equal(tp_addr_from_str("100.64.1.2", 40312, SIP_PROTO_UDP, &src), 0);
	assert_true(nat_alias_print(&k, SV("c"), &src, text, sizeof(text)) > 0);
	assert_non_null(strstr(text, "=100.64.1.2~40312~u~"));
	/* good for its dialog only, under our key only */
	assert_int_equal(nat_alias_verify(&k, SV("d"), value_of(text), &got), EPERM);
	struct siphash_key other = key(2);
	assert_int_equal(nat_alias_verify(&other, SV("c"), value_of(text), &got), EPERM);
	/* upper-case hex is the same signature */
	for (char *p = strrchr(text, '~') + 1; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(nat_alias_verify(&k, SV("c"), value_of(text), &got), 0);
	/* too small a buffer: nothing, never a cut alias */
	assert_int_equal(nat_alias_print(&k, SV("c"), &src, text, 20), 0);
}

static void every_byte_matters(void **state)
{
	struct siphash_key k = key(7);
	struct tp_addr src, got;
	char text[128], copy[128];
	(void)state;

	assert_int_equal(tp_addr_from_str("100.64.2.3", 1234, SIP_PROTO_UDP, &src), 0);
	assert_true(nat_alias_print(&k, SV("cid"), &src, text, sizeof(text)) > 0);
	for (size_t i = 10; text[i]; i++) {
		for (int d = 1; d < 3; d++) {
			memcpy(copy, text, sizeof(copy));
			copy[i] = (char)(copy[i] + d);
			if (copy[i] >= 'A' && copy[i] <= 'F' && text[i] >= 'a' && text[i] <= 'f' &&
			    copy[i] - 'A' == text[i] - 'a')
				continue; /* case only */
			assert_int_not_equal(nat_alias_verify(&k, SV("cid"), value_of(copy), &got),
					     0);
		}
	}
}

static void malformed(void **state)
{
	struct siphash_key k = key(3);
	struct tp_addr got;
	static const char *bad[] = {
	    "",
	    "~~~",
	    "100.64.1.2",
	    "100.64.1.2~5060",
	    "100.64.1.2~5060~u",
	    "100.64.1.2~5060~u~",
	    "100.64.1.2~5060~u~0123456789abcdef~x",
	    "100.64.1.2~0~u~0123456789abcdef",
	    "100.64.1.2~65536~u~0123456789abcdef",
	    "100.64.1.2~-1~u~0123456789abcdef",
	    "100.64.1.2~5060~q~0123456789abcdef",
	    "100.64.1.2~5060~uu~0123456789abcdef",
	    "100.64.1.2~5060~u~0123456789abcde",
	    "host.example~5060~u~0123456789abcdef",
	    "100.064.1.2~5060~u~0123456789abcdef",
	    "[100.64.1.2]~5060~u~0123456789abcdef",
	    "[2001:DB8::1]~5060~u~0123456789abcdef",
	    "2001:db8::1~5060~u~0123456789abcdef",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = nat_alias_verify(&k, SV("c"), sv_cstr(bad[i]), &got);
		if (err != EINVAL)
			fail_msg("\"%s\": %d, wanted EINVAL", bad[i], err);
	}
	/* well formed, unsigned */
	assert_int_equal(
	    nat_alias_verify(&k, SV("c"), SV("100.64.1.2~5060~u~0123456789abcdef"), &got), EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(contact_differs),
	    cmocka_unit_test(print_verify),
	    cmocka_unit_test(every_byte_matters),
	    cmocka_unit_test(malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
