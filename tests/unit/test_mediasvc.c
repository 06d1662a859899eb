/*
 * test_mediasvc.c - the media service's decisions that need no running
 * server (src/services/mediasvc.c): which callers and callees `media.mode:
 * nat` relays (a Contact or SDP address that is not where the signalling
 * came from, a private media address seen from a public source, a
 * registered Contact that is not where it registered from) and which it
 * leaves alone.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/mediasvc.h"
#include "transport/tport.h"

static struct tp_addr addr(const char *ip, uint16_t port)
{
	struct tp_addr a;

	assert_int_equal(tp_addr_from_sv(sv_cstr(ip), port, SIP_PROTO_UDP, &a), 0);
	return a;
}

static void test_nat_caller(void **state)
{
	struct tp_addr pub = addr("203.0.113.7", 40123), priv = addr("192.168.1.20", 5060);

	(void)state;
	/* a phone on a public address that says so: not relayed */
	assert_false(msvc_nat_suspect(SV("203.0.113.7"), SV("203.0.113.7"), &pub));
	/* no Contact host literal, no SDP: nothing to go on */
	assert_false(msvc_nat_suspect(SV("phone.example.com"), SV_NULL, &pub));
	/* the Contact is a private address behind the NAT's public one */
	assert_true(msvc_nat_suspect(SV("192.168.1.20"), SV_NULL, &pub));
	/* the SDP names another address than the source */
	assert_true(msvc_nat_suspect(SV_NULL, SV("10.0.0.9"), &pub));
	assert_true(msvc_nat_suspect(SV("203.0.113.7"), SV("198.51.100.1"), &pub));
	/* hold (0.0.0.0) says nothing about NAT */
	assert_false(msvc_nat_suspect(SV("203.0.113.7"), SV("0.0.0.0"), &pub));
	/* a phone on a private network talking to a private server: same address, not NAT */
	assert_false(msvc_nat_suspect(SV("192.168.1.20"), SV("192.168.1.20"), &priv));
	/* IPv6 literals compare as addresses */
	{
		struct tp_addr v6 = addr("2001:db8::1", 5060);
		assert_false(msvc_nat_suspect(SV("2001:db8::1"), SV("2001:db8::1"), &v6));
		assert_true(msvc_nat_suspect(SV("2001:db8::2"), SV_NULL, &v6));
	}
	/* no source known: never a reason to relay */
	assert_false(msvc_nat_suspect(SV("192.168.1.20"), SV("10.0.0.9"), NULL));
}

static void test_nat_callee(void **state)
{
	struct tp_addr reg = addr("203.0.113.7", 40123);

	(void)state;
	/* registered from where its Contact says: direct */
	assert_false(msvc_nat_callee(SV("sip:bob@203.0.113.7:5060"), &reg));
	/* a private Contact reached through the NAT's binding */
	assert_true(msvc_nat_callee(SV("sip:bob@192.168.1.20:5060;transport=udp"), &reg));
	/* not a registered contact (no target URI), or a host name */
	assert_false(msvc_nat_callee(SV_NULL, &reg));
	assert_false(msvc_nat_callee(SV("sip:bob@phone.example.com"), &reg));
	assert_false(msvc_nat_callee(SV("sip:bob@192.168.1.20"), NULL));
	/* garbage is no reason either */
	assert_false(msvc_nat_callee(SV("not a uri"), &reg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nat_caller),
	    cmocka_unit_test(test_nat_callee),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
