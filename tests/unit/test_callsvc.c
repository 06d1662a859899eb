/*
 * test_callsvc.c - the parsers behind call services, no network: terminal
 * type classification (explicit parameter, RFC 3840 feature tags,
 * configured and built-in User-Agent patterns, in that order) and the
 * per-user settings line (every key, bad values refused with a precise
 * reason and no change, the canonical form reading back the same), the
 * dialplan, and the CLI's changes over the file's rules (services/rules.h)
 * with a real SQLite store.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/config.h"
#include "services/dialplan.h"
#include "services/lists.h"
#include "services/rules.h"
#include "services/settings.h"
#include "services/terminal.h"
#include "store/store.h"

#include <stdlib.h>
#include <unistd.h>

static enum term_type classify(const char *params, const char *uri, const char *ua)
{
	return term_classify(sv_cstr(params), sv_cstr(uri), sv_cstr(ua), NULL, 0);
}

static void test_terminal_sources_in_order(void **state)
{
	(void)state;
	/* explicit parameter beats everything */
	assert_int_equal(
	    classify("terminal=desk;+sip.mobility=\"mobile\"", "sip:a@h", "Linphone Android"),
	    TERM_DESK);
	assert_int_equal(classify("", "sip:a@h;terminal=PC", "Yealink"), TERM_PC);
	assert_int_equal(classify("terminal=\"mobile\"", "sip:a@h", ""), TERM_MOBILE);
	/* RFC 3840 feature tags */
	assert_int_equal(classify("+sip.mobility=\"mobile\"", "sip:a@h", "Yealink"), TERM_MOBILE);
	assert_int_equal(classify("+sip.mobility=\"fixed\"", "sip:a@h", "baresip"), TERM_DESK);
	assert_int_equal(classify("+sip.automata", "sip:a@h", "baresip"), TERM_OTHER);
	/* User-Agent table: mobile builds before desktop products */
	assert_int_equal(classify("", "sip:a@h", "Linphone Android 5.2 (belle-sip)"), TERM_MOBILE);
	assert_int_equal(classify("", "sip:a@h", "Linphone Desktop/5.1"), TERM_PC);
	assert_int_equal(classify("", "sip:a@h", "baresip v2.9.0 (x86_64/linux)"), TERM_PC);
	assert_int_equal(classify("", "sip:a@h", "Yealink SIP-T46S 66.85.0.5"), TERM_DESK);
	assert_int_equal(classify("", "sip:a@h", "PolycomVVX-VVX_411-UA/6.3"), TERM_DESK);
	assert_int_equal(classify("", "sip:a@h", "Zoiper for iPhone"), TERM_MOBILE);
	assert_int_equal(classify("", "sip:a@h", "Mystery Box"), TERM_OTHER);
	assert_int_equal(classify("", "sip:a@h", ""), TERM_OTHER);
	/* a bad explicit value falls through to the next source */
	assert_int_equal(classify("terminal=fax", "sip:a@h", "snom720/10.1"), TERM_DESK);
}

/*
 * The built-in table against the User-Agents the common phones send (from
 * public SIP traces, issue threads and vendor documentation). Every one gets
 * its type; a mobile platform token wins over the desktop product's name.
 */
static void test_terminal_user_agent_table(void **state)
{
	static const struct {
		const char *ua;
		enum term_type want;
	} cases[] = {
	    /* Zoiper: 5 desktop says "Z", the mobile apps "Zoiper ... rv", Zoiper 3 its OS */
	    {"Z 5.6.6 v2.10.20.5", TERM_PC},
	    {"Z 5.4.12 v2.10.13.2-mod", TERM_PC},
	    {"Z 5.2.19 rv2.8.99", TERM_PC},
	    {"Zoiper for Windows 2.38 rev.16635", TERM_PC},
	    {"Zoiper for iOS rv2.10.20.4", TERM_MOBILE},
	    {"Zoiper for Android rv2.10.20.4", TERM_MOBILE},
	    {"Zoiper rv2.10.8.2", TERM_MOBILE},
	    {"Zoiper for iPhone", TERM_MOBILE},
	    /* Linphone desktop, Android, iOS */
	    {"Linphone Desktop/4.2.3 (Ubuntu 20.04.1 LTS, Qt 5.12.5) LinphoneCore/4.4.2", TERM_PC},
	    {"Linphone Desktop/4.2.5 (macOS 10.15, Qt 5.15.2) LinphoneCore/4.4.19", TERM_PC},
	    {"Linphone/5.2.5 (belle-sip/5.2.0)", TERM_PC},
	    {"LinphoneAndroid/4.3.1 (Mi A2 Lite) LinphoneSDK/4.4.2 (tags/4.4.2^0)", TERM_MOBILE},
	    {"LinphoneAndroid/3.2.8 (belle-sip/1.6.3)", TERM_MOBILE},
	    {"Linphone Android 5.2 (belle-sip)", TERM_MOBILE},
	    {"LinphoneiOS/4.3.0 (Bob's iPhone) LinphoneSDK/4.4.0", TERM_MOBILE},
	    {"LinphoneiOS/5.2.0 LinphoneSDK/5.3.0", TERM_MOBILE},
	    {"Linphone_iPhone6.2_iOS10.3.3/3.16.4-109-gd262e4dd (belle-sip/1.6.3)", TERM_MOBILE},
	    /* Bria desktop, iOS, Android */
	    {"Bria 3 release 3.5.5 stamp 71243", TERM_PC},
	    {"Bria 5 release 5.9.1 stamp 100123", TERM_PC},
	    {"Bria Solo release 6.5.1 stamp 110211", TERM_PC},
	    {"Bria iOS release 3.9.5 stamp 38501.38502", TERM_MOBILE},
	    {"Bria iOS release 6.12.3 stamp 112233", TERM_MOBILE},
	    {"Bria Android release 6.12.3 stamp 112233", TERM_MOBILE},
	    {"X-Lite release 5.8.3 stamp 102651", TERM_PC},
	    /* Acrobits: Groundwire and Softphone are mobile apps, SIPIS their push proxy */
	    {"Groundwire 6.2.1 rv:2006 (iPhone; iOS 17.4.1)", TERM_MOBILE},
	    {"Groundwire/6.3.5", TERM_MOBILE},
	    {"Acrobits Softphone/6.5.4 (Android 13)", TERM_MOBILE},
	    {"Acrobits SIPIS", TERM_MOBILE},
	    {"Cloud Softphone 6.1", TERM_MOBILE},
	    /* other PC softphones */
	    {"MicroSIP/3.21.3", TERM_PC},
	    {"MicroSIP/3.22.3", TERM_PC},
	    {"Telephone 1.5.2", TERM_PC},
	    {"Telephone 1.6", TERM_PC},
	    {"baresip v2.9.0 (x86_64/linux)", TERM_PC},
	    {"baresip 3.8.0", TERM_PC},
	    {"Jitsi2.10.5550Windows 10", TERM_PC},
	    {"Jitsi2.10.5550Mac OS X", TERM_PC},
	    {"Jitsi2.11.20200408Linux", TERM_PC},
	    {"Blink 6.0.4 (Windows)", TERM_PC},
	    {"Twinkle/1.10.2", TERM_PC},
	    {"PhonerLite 3.14", TERM_PC},
	    {"3CXPhone 6.0.26523.0", TERM_PC},
	    /* Grandstream Wave is the mobile app; in a desktop browser it is a PC */
	    {"Grandstream Wave 1.2.14", TERM_MOBILE},
	    {"Grandstream Wave/webrtc_chrome", TERM_PC},
	    /* desk phones and adapters */
	    {"Yealink SIP-T46S 66.85.0.5", TERM_DESK},
	    {"Yealink SIP-T54W 96.85.0.5", TERM_DESK},
	    {"Yealink SIP VP-T49G 51.80.0.100", TERM_DESK},
	    {"PolycomVVX-VVX_411-UA/6.3.0.14929", TERM_DESK},
	    {"PolycomSoundPointIP-SPIP_450-UA/4.0.15.1047", TERM_DESK},
	    {"PolycomRealPresenceTrio-Trio_8500-UA/5.9.2.7727", TERM_DESK},
	    {"Cisco-CP8845/14.2", TERM_DESK},
	    {"Cisco-CP7960G/8.0", TERM_DESK},
	    {"Cisco-CP-8841-3PCC/11.0 (00562b043615)", TERM_DESK},
	    {"Cisco/SPA504G-7.6.2", TERM_DESK},
	    {"snomD785/10.1.54.13", TERM_DESK},
	    {"snomPA1/8.7.3.19", TERM_DESK},
	    {"Fanvil X303 2.12.18.9 0c383e63963b", TERM_DESK},
	    {"Fanvil i16SV 2.4.0", TERM_DESK},
	    {"Grandstream GXP2170 1.0.11.3", TERM_DESK},
	    {"Grandstream HT802 1.0.17.5", TERM_DESK},
	    {"OBIHAI/OBi202-3.2.2.5921", TERM_DESK},
	    {"Gigaset N510 IP PRO/42.250.00.000.000", TERM_DESK},
	    {"Htek UC924 V2.0.4.4.40", TERM_DESK},
	    /* the makers' mobile apps */
	    {"Polycom RealPresence Mobile/3.10 (iPad)", TERM_MOBILE},
	    {"Yealink VC Mobile 3.2 (Android 12)", TERM_MOBILE},
	    /* iPadOS and plain platform tokens */
	    {"SomeApp 2.0 (iPadOS 17.1)", TERM_MOBILE},
	    {"iOS/16.4.1 iPhone", TERM_MOBILE},
	    {"Foo 1.0 iOS", TERM_MOBILE},
	    /* names a mobile OS without being a handset, or a word containing "ios" */
	    {"Cisco-SIPGateway/IOS-15.5.3.M1", TERM_OTHER},
	    {"Cisco-SIPGateway/IOS-17.6.5", TERM_OTHER},
	    {"Dionysos PBX 2.0", TERM_OTHER},
	    {"Asterisk PBX 20.7.0", TERM_OTHER},
	    {"FreeSWITCH-mod_sofia/1.10.9", TERM_OTHER},
	    {"Algo-8201/5.2", TERM_OTHER},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum term_type got = classify("", "sip:a@h", cases[i].ua);
		if (got != cases[i].want)
			fail_msg("'%s' is %s, not %s", cases[i].ua, term_name(got),
				 term_name(cases[i].want));
	}
}

static void test_terminal_configured_patterns_first(void **state)
{
	struct term_pattern p[] = {{"Yealink SIP-T5", TERM_PC}, {"mystery", TERM_MOBILE}};

	(void)state;
	assert_int_equal(term_classify(SV(""), SV("sip:a@h"), SV("Yealink SIP-T54W"), p, 2),
			 TERM_PC);
	assert_int_equal(term_classify(SV(""), SV("sip:a@h"), SV("Yealink SIP-T46S"), p, 2),
			 TERM_DESK);
	assert_int_equal(term_classify(SV(""), SV("sip:a@h"), SV("MYSTERY Box"), p, 2),
			 TERM_MOBILE);
}

static void apply_ok(struct uset *s, const char *word)
{
	char err[256] = "";

	if (uset_apply(s, sv_cstr(word), err, sizeof(err)))
		fail_msg("%s: %s", word, err);
}

static void apply_bad(struct uset *s, const char *word, const char *why)
{
	struct uset before = *s;
	char err[256] = "";

	assert_int_not_equal(uset_apply(s, sv_cstr(word), err, sizeof(err)), 0);
	if (!strstr(err, why))
		fail_msg("%s: error '%s' does not say '%s'", word, err, why);
	assert_memory_equal(&before, s, sizeof(before)); /* nothing changed */
}

static void test_settings_every_key(void **state)
{
	struct uset s;

	(void)state;
	uset_init(&s);
	assert_true(uset_is_default(&s));
	apply_ok(&s, "ring=sequential");
	apply_ok(&s, "order=desk:15,pc:10,mobile:20");
	apply_ok(&s, "ring_time=25");
	apply_ok(&s, "stop_on_busy=yes");
	apply_ok(&s, "forward_busy=carol");
	apply_ok(&s, "cfna=sip:vm@example.net;user=phone");
	apply_ok(&s, "noanswer_after=12");
	apply_ok(&s, "cfnr=+4930123456");
	apply_ok(&s, "forward_always=bob@example.com");
	assert_int_equal(s.ring, USET_RING_SEQUENTIAL);
	assert_int_equal(s.norder, 3);
	assert_int_equal(s.order[0].type, TERM_DESK);
	assert_int_equal(s.order[0].secs, 15);
	assert_int_equal(s.order[2].type, TERM_MOBILE);
	assert_int_equal(s.ring_time, 25);
	assert_int_equal(s.stop_on_busy, 1);
	assert_string_equal(s.fwd[USET_FWD_BUSY], "carol");
	assert_string_equal(s.fwd[USET_FWD_NOANSWER], "sip:vm@example.net;user=phone");
	assert_string_equal(s.fwd[USET_FWD_UNREGISTERED], "+4930123456");
	assert_string_equal(s.fwd[USET_FWD_ALWAYS], "bob@example.com");
	assert_int_equal(s.noanswer_after, 12);
	assert_false(uset_is_default(&s));
	apply_ok(&s, "ring=q-value");
	assert_int_equal(s.ring, USET_RING_QVALUE);
	/* empty values clear */
	apply_ok(&s, "forward_always=");
	apply_ok(&s, "stop_on_busy=");
	apply_ok(&s, "order=");
	assert_string_equal(s.fwd[USET_FWD_ALWAYS], "");
	assert_int_equal(s.stop_on_busy, -1);
	assert_int_equal(s.norder, 0);
}

static void test_settings_bad_values(void **state)
{
	struct uset s;

	(void)state;
	uset_init(&s);
	apply_ok(&s, "ring=sequential");
	apply_bad(&s, "ring=circular", "parallel, sequential or q-value");
	apply_bad(&s, "order=desk,fax", "'fax' is not a terminal type");
	apply_bad(&s, "order=desk,desk", "twice");
	apply_bad(&s, "order=desk:0", "seconds");
	apply_bad(&s, "order=desk:601", "seconds");
	apply_bad(&s, "order=desk:x", "seconds");
	apply_bad(&s, "order=desk,pc,mobile,other,desk", "twice");
	apply_bad(&s, "ring_time=-1", "seconds");
	apply_bad(&s, "stop_on_busy=perhaps", "yes or no");
	apply_bad(&s, "forward_busy=<sip:a@b>", "forward_busy");
	apply_bad(&s, "forward_busy=a b", "forward_busy");
	apply_bad(&s, "forward_busy=@example.com", "empty user");
	apply_bad(&s, "forward_busy=bob@", "empty user or domain");
	apply_bad(&s, "forward_busy=sip:", "not a valid SIP URI");
	apply_bad(&s, "colour=red", "unknown setting 'colour'");
	apply_bad(&s, "ring", "expected key=value");
	apply_bad(&s, "=x", "expected key=value");
}

static void test_settings_canonical_round_trip(void **state)
{
	struct uset a, b;
	char line[USET_TEXT_MAX], line2[USET_TEXT_MAX], err[128];

	(void)state;
	uset_init(&a);
	assert_int_equal(uset_format(&a, line, sizeof(line)), 0);
	assert_string_equal(line, "");
	assert_int_equal(uset_parse(&a,
				    sv_cstr("  ring=sequential   order=desk:15,pc,mobile:20 "
					    "cfb=carol noanswer_after=9 stop_on_busy=no"),
				    err, sizeof(err)),
			 0);
	assert_int_equal(uset_format(&a, line, sizeof(line)), 0);
	assert_string_equal(line, "ring=sequential order=desk:15,pc,mobile:20 stop_on_busy=no "
				  "forward_busy=carol noanswer_after=9");
	uset_init(&b);
	assert_int_equal(uset_parse(&b, sv_cstr(line), err, sizeof(err)), 0);
	assert_int_equal(uset_format(&b, line2, sizeof(line2)), 0);
	assert_string_equal(line, line2);
	/* a bad word in a stored line stops there, keeping what came before */
	uset_init(&b);
	assert_int_not_equal(
	    uset_parse(&b, sv_cstr("ring=q-value bogus=1 cfb=x"), err, sizeof(err)), 0);
	assert_int_equal(b.ring, USET_RING_QVALUE);
	assert_string_equal(b.fwd[USET_FWD_BUSY], "");
	/* too small a buffer is an error, never a cut line */
	assert_int_equal(uset_format(&a, line, 10), ENOSPC);
}

static struct sockaddr_storage addr_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ss;
}

static bool in_nets(const struct lists_cidr *n, size_t k, const char *ip)
{
	struct sockaddr_storage ss = addr_of(ip);

	return lists_cidr_match(n, k, (struct sockaddr *)&ss);
}

static void test_lists_networks(void **state)
{
	struct lists_cidr n[3];

	(void)state;
	assert_int_equal(lists_cidr_parse(SV("192.0.2.0/24"), &n[0]), 0);
	assert_int_equal(lists_cidr_parse(SV("2001:db8::/33"), &n[1]), 0);
	assert_int_equal(lists_cidr_parse(SV("198.51.100.7"), &n[2]), 0);
	assert_true(in_nets(n, 3, "192.0.2.200"));
	assert_false(in_nets(n, 3, "192.0.3.1"));
	assert_true(in_nets(n, 3, "198.51.100.7"));
	assert_false(in_nets(n, 3, "198.51.100.8"));
	assert_true(in_nets(n, 3, "2001:db8:7fff::1"));
	assert_false(in_nets(n, 3, "2001:db8:8000::1"));
	assert_true(in_nets(n, 3, "::ffff:192.0.2.9")); /* IPv4 on a dual-stack socket */
	assert_int_equal(lists_cidr_parse(SV("0.0.0.0/0"), &n[0]), 0);
	assert_true(in_nets(n, 1, "203.0.113.1"));
	assert_false(in_nets(n, 1, "2001:db8::1"));
	assert_int_not_equal(lists_cidr_parse(SV("10.0.0.0/33"), &n[0]), 0);
	assert_int_not_equal(lists_cidr_parse(SV("10.0.0/8"), &n[0]), 0);
	assert_int_not_equal(lists_cidr_parse(SV("/8"), &n[0]), 0);
	assert_int_not_equal(lists_cidr_parse(SV("example.com"), &n[0]), 0);
	assert_int_not_equal(lists_cidr_parse(SV("10.0.0.1/"), &n[0]), 0);
}

static void test_lists_prefixes(void **state)
{
	const char pre[][LISTS_PREFIX_MAX] = {"0900", "+4990", "mallory"};
	struct uset s;
	char err[256];

	(void)state;
	assert_true(lists_prefix_match(pre, 3, SV("09001234")));
	assert_true(lists_prefix_match(pre, 3, SV("+49901")));
	assert_false(lists_prefix_match(pre, 3, SV("4990")));
	assert_false(lists_prefix_match(pre, 3, SV("090")));
	assert_true(lists_prefix_match(pre, 3, SV("mallory")));
	assert_true(lists_prefix_match_csv("a,0900,b", SV("0900555")));
	assert_false(lists_prefix_match_csv("a,0900,b", SV("c")));
	assert_true(lists_prefix_match_csv("*", SV("anyone")));
	assert_false(lists_prefix_match_csv("", SV("anyone")));
	assert_false(lists_prefix_ok(SV("a b")));
	assert_false(lists_prefix_ok(SV("a@b")));
	assert_false(lists_prefix_ok(SV("")));
	/* in the user's settings */
	uset_init(&s);
	apply_ok(&s, "block_callers=0900,+4990");
	apply_ok(&s, "allow_callers=carol");
	apply_ok(&s, "allow_only=yes");
	assert_true(s.allow_only);
	apply_bad(&s, "block_callers=0900,", "empty entry");
	apply_bad(&s, "block_callers=a@b", "not a caller prefix");
	assert_int_equal(uset_format(&s, err, sizeof(err)), 0);
	assert_string_equal(err, "block_callers=0900,+4990 allow_callers=carol allow_only=yes");
	assert_true(uset_is_default(&s)); /* lists do not change how terminals ring */
	/* redirect per user: a 302 instead of ringing */
	apply_ok(&s, "redirect=yes");
	assert_true(s.redirect);
	assert_false(uset_is_default(&s));
	assert_int_equal(uset_format(&s, err, sizeof(err)), 0);
	assert_string_equal(
	    err, "block_callers=0900,+4990 allow_callers=carol allow_only=yes redirect=yes");
	apply_bad(&s, "redirect=maybe", "redirect: 'maybe' is not yes or no");
	apply_ok(&s, "redirect=");
	assert_false(s.redirect);
}

static const char dp_yaml[] =
    "gateways:\n"
    "  - {name: a1, address: 192.0.2.1}\n"
    "  - {name: a2, address: 192.0.2.2, port: 5080}\n"
    "  - {name: a3, address: 192.0.2.3, transport: tcp}\n"
    "  - {name: b1, address: \"2001:db8::1\", probe: false}\n"
    "gateway_groups:\n"
    "  - name: carrier-a\n"
    "    gateways:\n"
    "      - {gateway: a1, priority: 1, weight: 90}\n"
    "      - {gateway: a2, priority: 1, weight: 10}\n"
    "      - {gateway: a3, priority: 2}\n"
    "  - {name: carrier-b, gateways: [b1, a1]}\n"
    "dialplan:\n"
    "  max_callee_digits: 26\n"
    "  rules:\n"
    "    - prefix: \"0\"\n"
    "      transform: [{strip: 1}, {prefix: \"+49\"}]\n"
    "      route: [carrier-a, carrier-b]\n"
    "    - prefix: \"00\"\n"
    "      transform: [{strip: 2}, {prefix: \"+\"}]\n"
    "      route: carrier-b\n"
    "    - prefix: \"0049301234567\"\n"
    "      transform: [{insert: 2, digits: \"99\"}, {delete: 0, count: 1}]\n"
    "      route: [carrier-b]\n"
    "      redirect: true\n"
    "    - regex: \"^1[0-9]{2}$\"\n"
    "      transform: [{replace: \"^1(.*)$\", with: \"+49110\\\\1\"}]\n"
    "      route: [carrier-a]\n";

static struct dp *load_dp(struct cfg *c)
{
	struct cfg_error err;
	struct dp *d = NULL;

	cfg_defaults(c);
	if (cfg_load_string(c, dp_yaml, sizeof(dp_yaml) - 1, &err) || cfg_finish(c, &err))
		fail_msg("line %u: %s", err.line, err.msg);
	assert_int_equal(dp_create(&c->dialplan, NULL, &d), 0);
	return d;
}

static void transform(struct dp *d, const char *in, const char *want)
{
	char out[DP_NUMBER_MAX];
	int r = dp_match(d, sv_cstr(in));

	assert_true(r >= 0);
	assert_int_equal(dp_transform(d, r, sv_cstr(in), out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void config_error(const char *yaml, unsigned line, const char *want);

/* Issue 12: outgoing call barring and source networks in the settings line. */
static void test_settings_barring_and_sources(void **state)
{
	struct uset s, again;
	char line[USET_TEXT_MAX], line2[USET_TEXT_MAX], err[256];

	(void)state;
	uset_init(&s);
	assert_true(uset_bar_empty(&s.out));
	apply_ok(&s, "bar=international,premium");
	apply_ok(&s, "block_callees=0137,+4990");
	apply_ok(&s, "allow_callees=internal,112,0800");
	apply_ok(&s, "allow_callees_only=yes");
	apply_ok(&s, "allow_sources=192.0.2.0/24,2001:db8::/32,198.51.100.7");
	apply_ok(&s, "block_sources=203.0.113.0/24");
	assert_string_equal(s.out.classes, "international,premium");
	assert_true(s.out.allow_callees_only);
	assert_false(uset_bar_empty(&s.out));
	assert_true(uset_is_default(&s)); /* barring does not change how terminals ring */
	assert_int_equal(uset_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "bar=international,premium block_callees=0137,+4990 "
				  "allow_callees=internal,112,0800 allow_callees_only=yes "
				  "allow_sources=192.0.2.0/24,2001:db8::/32,198.51.100.7 "
				  "block_sources=203.0.113.0/24");
	uset_init(&again);
	assert_int_equal(uset_parse(&again, sv_cstr(line), err, sizeof(err)), 0);
	assert_int_equal(uset_format(&again, line2, sizeof(line2)), 0);
	assert_string_equal(line, line2);
	/* precise errors, nothing changed */
	apply_bad(&s, "allow_sources=10.0.0.0/33", "'10.0.0.0/33' is not an IP address or network");
	apply_bad(&s, "allow_sources=192.0.2.0/24,example.com", "'example.com' is not an IP");
	apply_bad(&s, "block_sources=192.0.2.1,", "empty entry");
	apply_bad(&s, "block_sources=,192.0.2.1", "'' is not an IP");
	apply_bad(&s, "bar=inter national", "not a barring class name");
	apply_bad(&s, "bar=a,b;c", "'b;c' is not a barring class name");
	apply_bad(&s, "bar=abcdefghijabcdefghijabcdefghijXY", "not a barring class name");
	apply_bad(&s, "block_callees=00@x", "not a callee prefix");
	apply_bad(&s, "allow_callees_only=sometimes", "yes or no");
	/* empty values clear */
	apply_ok(&s, "bar=");
	apply_ok(&s, "block_callees=");
	apply_ok(&s, "allow_callees=");
	apply_ok(&s, "allow_callees_only=");
	apply_ok(&s, "allow_sources=");
	apply_ok(&s, "block_sources=");
	assert_true(uset_bar_empty(&s.out));
	assert_int_equal(uset_format(&s, line, sizeof(line)), 0);
	assert_string_equal(line, "");
}

static bool bar(const struct uset_bar *b, const struct lists_barring *cfg, const char *target,
		bool internal, const char *want)
{
	char why[64] = "";
	enum uset_bar_verdict v =
	    uset_bar_check(b, cfg, sv_cstr(target), internal, why, sizeof(why));

	if (v == USET_BARRED && want && strcmp(why, want) != 0)
		fail_msg("%s: barred for '%s', want '%s'", target, why, want);
	return v == USET_BARRED;
}

static void test_barring_check(void **state)
{
	static struct cfg c;
	struct cfg_error err;
	struct uset s;
	const char *yaml = "barring:\n  classes:\n    international: [\"00\"]\n"
			   "    premium: [\"0900\", \"0190\"]\n  free: [\"112\", \"110\"]\n";

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(c.barring.free.n, 1); /* 112 by default */
	assert_int_equal(cfg_load_string(&c, yaml, strlen(yaml), &err), 0);
	assert_int_equal(c.barring.nclasses, 2);
	assert_non_null(lists_bar_class_find(&c.barring, SV("PREMIUM")));
	assert_null(lists_bar_class_find(&c.barring, SV("mobile")));
	uset_init(&s);
	/* nothing set: nothing barred */
	assert_false(bar(&s.out, &c.barring, "00441234", false, NULL));
	apply_ok(&s, "bar=international,premium");
	apply_ok(&s, "block_callees=0137");
	assert_true(bar(&s.out, &c.barring, "00441234", false, "international"));
	assert_true(bar(&s.out, &c.barring, "09001234", false, "premium"));
	assert_true(bar(&s.out, &c.barring, "01901234", false, "premium"));
	assert_true(bar(&s.out, &c.barring, "01371234", false, "blocked number"));
	assert_false(bar(&s.out, &c.barring, "0301234", false, NULL));
	assert_false(bar(&s.out, &c.barring, "112", false, NULL));
	/* classes and block lists are about numbers and other domains, not our users */
	assert_false(bar(&s.out, &c.barring, "00internal", true, NULL));
	/* the user's own exceptions beat the classes */
	apply_ok(&s, "allow_callees=0043");
	assert_false(bar(&s.out, &c.barring, "00431234", false, NULL));
	assert_true(bar(&s.out, &c.barring, "00441234", false, "international"));
	/* a class the configuration does not have bars (fail closed) */
	apply_ok(&s, "bar=mobile");
	assert_true(bar(&s.out, &c.barring, "0301234", false, "mobile"));
	assert_false(bar(&s.out, &c.barring, "110", false, NULL)); /* free numbers still pass */
	/* allow-only: internal users (when listed), allowed prefixes, free numbers */
	uset_init(&s);
	apply_ok(&s, "allow_callees=internal,0800");
	apply_ok(&s, "allow_callees_only=yes");
	assert_false(bar(&s.out, &c.barring, "bob", true, NULL));
	assert_false(bar(&s.out, &c.barring, "08001234", false, NULL));
	assert_false(bar(&s.out, &c.barring, "112", false, NULL));
	assert_true(bar(&s.out, &c.barring, "0301234", false, "not an allowed number"));
	assert_true(bar(&s.out, &c.barring, "", false, "not an allowed number"));
	/* "internal" is a word, not a prefix of a number or of a name elsewhere */
	assert_true(bar(&s.out, &c.barring, "internal99", false, "not an allowed number"));
	apply_ok(&s, "allow_callees=bo");
	assert_true(bar(&s.out, &c.barring, "carol", true, "internal calls not allowed"));
	assert_false(bar(&s.out, &c.barring, "bob", true, NULL));
	/* the free list from the configuration, not from the user */
	assert_true(bar(&s.out, &c.barring, "911", false, "not an allowed number"));
}

static bool source_ok(const char *line, const char *ip)
{
	struct sockaddr_storage ss = addr_of(ip);

	return uset_line_source_allowed(sv_cstr(line), (struct sockaddr *)&ss);
}

static void test_source_allowed(void **state)
{
	(void)state;
	assert_true(source_ok("", "203.0.113.1"));
	assert_true(source_ok("ring=sequential block_sources=203.0.113.0/24", "203.0.113.1"));
	assert_true(source_ok("allow_sources=192.0.2.0/24,2001:db8::/32", "192.0.2.77"));
	assert_true(source_ok("ring=q-value allow_sources=192.0.2.0/24,2001:db8::/32 cfb=x",
			      "2001:db8:ffff::1"));
	assert_true(source_ok("allow_sources=192.0.2.0/24", "::ffff:192.0.2.9"));
	assert_false(source_ok("allow_sources=192.0.2.0/24,2001:db8::/32", "192.0.3.1"));
	assert_false(source_ok("allow_sources=192.0.2.0/24,2001:db8::/32", "2001:db9::1"));
	assert_false(source_ok("allow_sources=198.51.100.7", "198.51.100.8"));
	/* the last word counts, as when the line is parsed; an empty one is anywhere */
	assert_true(source_ok("allow_sources=10.0.0.0/8 allow_sources=", "192.0.2.1"));
	assert_false(source_ok("allow_sources= allow_sources=10.0.0.0/8", "192.0.2.1"));
	/* a line edited by hand into nonsense refuses rather than allows */
	assert_false(source_ok("allow_sources=nonsense", "192.0.2.1"));
	/* other keys that end alike are not it */
	assert_true(source_ok("xallow_sources=10.0.0.0/8", "192.0.2.1"));
}

static void test_barring_config_errors(void **state)
{
	(void)state;
	config_error("barring:\n  classes:\n    international: \"00\"\n", 3,
		     "'barring.classes.international' must be a list of prefixes");
	config_error("barring:\n  classes:\n    \"inter national\": [\"00\"]\n", 3,
		     "names must be 1 to 31 letters");
	config_error("barring:\n  classes:\n    a: [\"00\"]\n    A: [\"01\"]\n", 4,
		     "'A' appears twice");
	config_error("barring:\n  classes:\n    a: [\"0 0\"]\n", 3, "'0 0' is not a prefix");
	config_error("barring:\n  classes: [a, b]\n", 2, "a mapping of class names");
	config_error("barring:\n  free: [\"1 12\"]\n", 2, "'1 12' is not a prefix");
	config_error("barring:\n  colour: red\n", 2, "unknown key 'colour'");
}

static void test_dialplan_match_and_transform(void **state)
{
	static struct cfg c;
	struct dp *d = load_dp(&c);

	(void)state;
	assert_int_equal(c.dialplan.max_callee_digits, 26);
	assert_true(dp_is_number(SV("+4930123")));
	assert_true(dp_is_number(SV("*72#")));
	assert_false(dp_is_number(SV("alice")));
	assert_false(dp_is_number(SV("+")));
	assert_int_equal(dp_digits(SV("+4930")), 4);
	/* longest prefix wins */
	assert_int_equal(dp_match(d, SV("030123")), 0);
	assert_int_equal(dp_match(d, SV("0044207")), 1);
	assert_int_equal(dp_match(d, SV("00493012345678")), 2);
	assert_true(dp_rule(d, 2)->redirect);
	/* regex rules only when no prefix matches */
	assert_int_equal(dp_match(d, SV("110")), 3);
	assert_int_equal(dp_match(d, SV("1100")), -1);
	assert_int_equal(dp_match(d, SV("+4930")), -1);
	transform(d, "030123456", "+4930123456");
	transform(d, "00442071234567", "+442071234567");
	transform(d, "0049301234567", "09949301234567"); /* insert "99" at 2, then drop the first */
	transform(d, "112", "+4911012");
	dp_destroy(d);
}

static void test_dialplan_gateway_order(void **state)
{
	static struct cfg c;
	struct dp *d = load_dp(&c);
	unsigned gw[8], first_a1 = 0;
	size_t n;

	(void)state;
	for (uint64_t rnd = 1; rnd <= 1000; rnd++) {
		n = dp_gateways(d, 0, rnd * 7919, gw, 8);
		assert_int_equal(n,
				 4); /* a1 a2 (priority 1, by weight), a3, then b1 (a1 only once) */
		assert_true((gw[0] == 0 && gw[1] == 1) || (gw[0] == 1 && gw[1] == 0));
		assert_int_equal(gw[2], 2);
		assert_int_equal(gw[3], 3);
		first_a1 += gw[0] == 0;
	}
	/* weight 90 against 10: a1 first about nine times in ten */
	assert_in_range(first_a1, 820, 970);
	dp_gateway_set_up(d, 0, false);
	n = dp_gateways(d, 0, 5, gw, 8);
	assert_int_equal(n, 3);
	assert_int_equal(gw[0], 1);
	assert_false(dp_gateway_is_up(d, 0));
	dp_gateway_set_up(d, 0, true);
	assert_true(dp_gateway_is_up(d, 0));
	assert_true(dp_gateway(d, 3)->probe == false);
	assert_int_equal(dp_gateway(d, 1)->port, 5080);
	assert_true(dp_gateway(d, 2)->tcp);
	dp_destroy(d);
}

static void config_error(const char *yaml, unsigned line, const char *want)
{
	static struct cfg c;
	struct cfg_error err = {0};
	int rc;

	cfg_defaults(&c);
	rc = cfg_load_string(&c, yaml, strlen(yaml), &err);
	if (!rc)
		rc = cfg_finish(&c, &err);
	assert_int_not_equal(rc, 0);
	if (!strstr(err.msg, want) || err.line != line)
		fail_msg("got line %u '%s', want line %u '%s'", err.line, err.msg, line, want);
}

static void test_dialplan_config_errors(void **state)
{
	(void)state;
	config_error("gateway_groups:\n  - {name: g, gateways: [nope]}\n", 2,
		     "no gateway named 'nope'");
	config_error("gateways:\n  - {name: a, address: 192.0.2.1}\ndialplan:\n  rules:\n"
		     "    - {prefix: \"0\", route: [missing]}\n",
		     5, "no gateway group named 'missing'");
	config_error("dialplan:\n  rules:\n    - {prefix: \"0x\", route: [g]}\n", 3, "not digits");
	config_error("dialplan:\n  rules:\n    - {regex: \"(\", route: [g]}\n", 3,
		     "regular expression");
	config_error("dialplan:\n  rules:\n    - {prefix: \"1\", regex: \"1\", route: [g]}\n", 3,
		     "exactly one of");
	config_error("dialplan:\n  rules:\n    - {prefix: \"1\", transform: [{frobnicate: 1}], "
		     "route: [g]}\n",
		     3, "unknown key 'frobnicate'");
	config_error(
	    "dialplan:\n  rules:\n    - {prefix: \"1\", transform: [{insert: 1}], route: [g]}\n", 3,
	    "a transform step is one of");
	config_error("gateways:\n  - {name: a, address: \"not a host\"}\n", 2, "not a host name");
	config_error("gateways:\n  - {name: a, address: 192.0.2.1, transport: sctp}\n", 2,
		     "udp or tcp");
	config_error("dialplan:\n  max_callee_digits: 29\n", 2, "from 24 to 28");
	config_error("gateways:\n  - {name: a, address: 192.0.2.1, auth_user: t}\n", 2,
		     "credentials need");
	config_error("gateways:\n  - {name: a, address: 192.0.2.1, auth_password: x}\n", 2,
		     "credentials need");
	config_error("gateways:\n  - {name: a, address: 192.0.2.1, auth_user: t, auth_realm: r, "
		     "auth_ha1: xyz}\n",
		     2, "auth_ha1");

	/* a password is hashed at load and not kept */
	static struct cfg c;
	struct cfg_error err = {0};
	static const char yaml[] = "gateways:\n  - {name: a, address: 192.0.2.1, auth_user: t, "
				   "auth_realm: r, auth_password: pw}\n";
	char want[33];
	cfg_defaults(&c);
	assert_int_equal(cfg_load_string(&c, yaml, sizeof(yaml) - 1, &err), 0);
	store_ha1_md5(SV("t"), SV("r"), SV("pw"), want);
	assert_string_equal(c.dialplan.gw[0].cred.ha1_md5, want);
	assert_int_equal(strlen(c.dialplan.gw[0].cred.ha1_sha256), 64);
}

/* A line of "k=v" words into a gateway or a rule; the first error's text in err. */
static int gw_words(struct dp_gateway *g, const char *words, char *err, size_t len)
{
	return dp_gateway_parse(g, sv_cstr(words), err, len);
}

static int rule_words(struct dp_rule *r, const char *words, char *err, size_t len)
{
	return dp_rule_parse(r, sv_cstr(words), err, len);
}

static void test_dialplan_text_form(void **state)
{
	struct dp_gateway g = {.probe = true};
	struct dp_rule r, r2;
	struct dp_member m;
	char err[200], out[1024];

	(void)state;
	assert_int_equal(gw_words(&g,
				  "address=gw.example.net port=5080 transport=tcp probe=no "
				  "auth_user=trunk auth_realm=example.net",
				  err, sizeof(err)),
			 0);
	assert_string_equal(g.host, "gw.example.net");
	assert_int_equal(g.port, 5080);
	assert_true(g.tcp);
	assert_false(g.probe);
	dp_cred_hash(&g.cred, SV("secret"));
	assert_int_equal(strlen(g.cred.ha1_md5), 32);
	assert_int_equal(strlen(g.cred.ha1_sha256), 64);
	assert_int_equal(dp_gateway_print(&g, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "address=gw.example.net port=5080 transport=tcp probe=no "
				    "auth_user=trunk auth_realm=example.net ha1="));
	assert_null(strstr(out, "secret"));
	/* what it prints reads back the same */
	struct dp_gateway g2 = {.probe = true};
	assert_int_equal(gw_words(&g2, out, err, sizeof(err)), 0);
	assert_memory_equal(&g.cred, &g2.cred, sizeof(g.cred));
	assert_string_equal(g2.host, g.host);
	/* bad values, each with its reason */
	assert_int_equal(gw_words(&g2, "address=a/b", err, sizeof(err)), EINVAL);
	assert_non_null(strstr(err, "not a host name"));
	assert_int_equal(gw_words(&g2, "address=a..b", err, sizeof(err)), EINVAL);
	assert_int_equal(gw_words(&g2, "address=-a.example", err, sizeof(err)), EINVAL);
	assert_int_equal(gw_words(&g2, "address=sbc-1.carrier.example", err, sizeof(err)), 0);
	assert_int_equal(gw_words(&g2, "port=0", err, sizeof(err)), EINVAL);
	assert_int_equal(gw_words(&g2, "transport=sctp", err, sizeof(err)), EINVAL);
	assert_int_equal(gw_words(&g2, "ha1=XYZ", err, sizeof(err)), EINVAL);
	assert_int_equal(gw_words(&g2, "colour=red", err, sizeof(err)), ENOENT);

	assert_int_equal(dp_member_parse(SV("gw-a:2:50"), &m, err, sizeof(err)), 0);
	assert_string_equal(m.name, "gw-a");
	assert_int_equal(m.priority, 2);
	assert_int_equal(m.weight, 50);
	assert_int_equal(dp_member_parse(SV("gw-a"), &m, err, sizeof(err)), 0);
	assert_int_equal(m.weight, 1);
	assert_int_equal(dp_member_parse(SV("gw-a:1:0"), &m, err, sizeof(err)), EINVAL);
	assert_int_equal(dp_member_parse(SV("gw-a:x"), &m, err, sizeof(err)), EINVAL);

	memset(&r, 0, sizeof(r));
	assert_int_equal(dp_rule_match_parse(SV("+4930"), &r, err, sizeof(err)), 0);
	assert_string_equal(r.prefix, "+4930");
	assert_int_equal(dp_rule_match_parse(SV("/^1[0-9]{2}$/"), &r, err, sizeof(err)), 0);
	assert_string_equal(r.regex, "^1[0-9]{2}$");
	assert_int_equal(dp_rule_match_parse(SV("07x"), &r, err, sizeof(err)), EINVAL);
	assert_int_equal(dp_rule_match_parse(SV("/a(/"), &r, err, sizeof(err)), EINVAL);
	/* repetitions glibc would expand into gigabytes: refused before regcomp (fuzz_dptext) */
	assert_int_equal(
	    dp_rule_match_parse(SV("/:a++++++++++++++++++++++++++++++++/"), &r, err, sizeof(err)),
	    EINVAL);
	assert_int_equal(dp_rule_match_parse(SV("/(((0{30}){30}){30})/"), &r, err, sizeof(err)),
			 EINVAL);
	assert_int_equal(dp_rule_match_parse(SV("/^(0+)+[1-9]{2,4}[+*]$/"), &r, err, sizeof(err)),
			 0);
	/* siblings add up, only nesting multiplies: long numbers are fine */
	assert_int_equal(
	    dp_rule_match_parse(SV("/^a+b+c+d+e+f+g+h+i+j+k+l+m+n+[0-9]{10}[0-9]{50}$/"), &r, err,
				sizeof(err)),
	    0);
	assert_int_equal(rule_words(&r,
				    "route=a,b redirect=yes strip=1 prefix=+49 insert=2:99 "
				    "delete=0:1 replace=|^(.*)$|\\1#|",
				    err, sizeof(err)),
			 0);
	assert_int_equal(r.nroute, 2);
	assert_int_equal(r.nops, 5);
	assert_int_equal(r.ops[2].kind, DP_OP_INSERT);
	assert_int_equal(r.ops[2].at, 2);
	assert_string_equal(r.ops[2].text, "99");
	assert_int_equal(r.ops[4].kind, DP_OP_REPLACE);
	assert_string_equal(r.ops[4].regex, "^(.*)$");
	assert_string_equal(r.ops[4].text, "\\1#");
	assert_int_equal(dp_rule_print(&r, out, sizeof(out)), 0);
	memset(&r2, 0, sizeof(r2));
	assert_int_equal(rule_words(&r2, out, err, sizeof(err)), 0);
	assert_int_equal(r2.nops, r.nops);
	assert_memory_equal(r2.ops, r.ops, sizeof(r.ops));
	assert_memory_equal(r2.route_names, r.route_names, sizeof(r.route_names));
	assert_true(r2.redirect);
	/* the longest route list reads back whole */
	memset(&r, 0, sizeof(r));
	assert_int_equal(
	    rule_words(&r,
		       "route=gggggggggggggggggggggggggggg01,gggggggggggggggggggggggggggg02,"
		       "gggggggggggggggggggggggggggg03,gggggggggggggggggggggggggggg04,"
		       "gggggggggggggggggggggggggggg05,gggggggggggggggggggggggggggg06,"
		       "gggggggggggggggggggggggggggg07,gggggggggggggggggggggggggggg08",
		       err, sizeof(err)),
	    0);
	assert_int_equal(r.nroute, DP_MAX_ROUTE);
	assert_int_equal(dp_rule_print(&r, out, sizeof(out)), 0);
	memset(&r2, 0, sizeof(r2));
	assert_int_equal(rule_words(&r2, out, err, sizeof(err)), 0);
	assert_int_equal(r2.nroute, DP_MAX_ROUTE);
	assert_memory_equal(r2.route_names, r.route_names, sizeof(r.route_names));
	/* bad steps, each refused */
	static const char *const bad[] = {
	    "insert=3",	   "insert=3:ab",   "delete=1:0",     "strip=0", "prefix=12a",
	    "replace=/x/", "replace=/(/y/", "redirect=maybe", "route=",	 "colour=red"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&r2, 0, sizeof(r2));
		err[0] = '\0';
		assert_int_not_equal(rule_words(&r2, bad[i], err, sizeof(err)), 0);
		assert_true(err[0] != '\0');
	}
}

/* Failover and ring timeouts: the gateway's own, the dialplan's, their text forms and the store. */
static void test_dialplan_gateway_timeouts(void **state)
{
	static const char yaml[] =
	    "gateways:\n"
	    "  - {name: a, address: 192.0.2.1, timeout: 1500ms}\n"
	    "  - {name: b, address: 192.0.2.2, timeout: off, ring_timeout: 60}\n"
	    "  - {name: c, address: 192.0.2.3}\n"
	    "gateway_groups:\n"
	    "  - {name: g, gateways: [a, b, c]}\n"
	    "dialplan:\n"
	    "  gateway_timeout: 2\n"
	    "  gateway_ring_timeout: 90s\n"
	    "  rules:\n"
	    "    - {prefix: \"0\", route: g}\n";
	static struct cfg c;
	static struct rules_conf base, out;
	struct cfg_error cerr;
	struct dp_gateway g = {.probe = true}, g2;
	struct dp_config dc;
	struct dp *d = NULL;
	struct store *st;
	char err[300], text[512], path[] = "/tmp/sb-gwto-XXXXXX", db[64];
	int fd;

	(void)state;
	/* the defaults: 3 s to the first provisional, no ring timeout */
	cfg_defaults(&c);
	assert_int_equal(c.dialplan.timeout_ms, DP_TIMEOUT_DEFAULT_MS);
	assert_int_equal(c.dialplan.ring_timeout_ms, 0);
	if (cfg_load_string(&c, yaml, sizeof(yaml) - 1, &cerr) || cfg_finish(&c, &cerr))
		fail_msg("line %u: %s", cerr.line, cerr.msg);
	assert_int_equal(c.dialplan.timeout_ms, 2000);
	assert_int_equal(c.dialplan.ring_timeout_ms, 90000);
	assert_int_equal(dp_create(&c.dialplan, NULL, &d), 0);
	assert_int_equal(dp_gateway_timeout_ms(d, 0), 1500); /* its own */
	assert_int_equal(dp_gateway_ring_timeout_ms(d, 0), 90000);
	assert_int_equal(dp_gateway_timeout_ms(d, 1), 0); /* off: Timer B alone */
	assert_int_equal(dp_gateway_ring_timeout_ms(d, 1), 60000);
	assert_int_equal(dp_gateway_timeout_ms(d, 2), 2000); /* the dialplan's */
	assert_int_equal(dp_gateway_timeout_ms(d, 9), 0);    /* no such gateway */
	assert_int_equal(dp_probe_interval_s(d), 30);
	dp_destroy(d);

	/* bad values in the file: refused with the line */
	static const char *const bad_yaml[] = {
	    "dialplan:\n  gateway_timeout: 1.5\n",
	    "dialplan:\n  gateway_timeout: 50ms\n",
	    "dialplan:\n  gateway_ring_timeout: 2h\n",
	    "dialplan:\n  gateway_timeout: [1]\n",
	    "gateways:\n  - {name: a, address: 192.0.2.1, timeout: -1}\n",
	    "gateways:\n  - {name: a, address: 192.0.2.1, ring_timeout: 500ms}\n"};
	for (size_t i = 0; i < sizeof(bad_yaml) / sizeof(bad_yaml[0]); i++) {
		cfg_defaults(&c);
		assert_int_not_equal(cfg_load_string(&c, bad_yaml[i], strlen(bad_yaml[i]), &cerr),
				     0);
		assert_true(cerr.line > 0);
		assert_non_null(strstr(cerr.msg, "timeout"));
	}

	/* the gateway's text form: durations, off, default; printed back the same */
	assert_int_equal(
	    gw_words(&g, "address=192.0.2.1 timeout=2500ms ring_timeout=45s", err, sizeof(err)), 0);
	assert_int_equal(g.timeout.kind, DP_TIMEOUT_SET);
	assert_int_equal(g.timeout.ms, 2500);
	assert_int_equal(g.ring_timeout.ms, 45000);
	assert_int_equal(dp_gateway_print(&g, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "timeout=2500ms ring_timeout=45"));
	g2 = (struct dp_gateway){.probe = true};
	assert_int_equal(gw_words(&g2, text, err, sizeof(err)), 0);
	assert_memory_equal(&g2.timeout, &g.timeout, sizeof(g.timeout));
	assert_memory_equal(&g2.ring_timeout, &g.ring_timeout, sizeof(g.ring_timeout));
	assert_int_equal(gw_words(&g, "timeout=0 ring_timeout=off", err, sizeof(err)), 0);
	assert_int_equal(g.timeout.kind, DP_TIMEOUT_OFF);
	assert_int_equal(g.ring_timeout.kind, DP_TIMEOUT_OFF);
	assert_int_equal(dp_gateway_print(&g, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "timeout=off ring_timeout=off"));
	assert_int_equal(gw_words(&g, "timeout=default ring_timeout=default", err, sizeof(err)), 0);
	assert_int_equal(g.timeout.kind, DP_TIMEOUT_DEFAULT);
	assert_int_equal(dp_gateway_print(&g, text, sizeof(text)), 0);
	assert_null(strstr(text, "timeout")); /* the default is not stored */
	static const char *const bad[] = {
	    "timeout=1.5",	 "timeout=99ms", "timeout=301",		"timeout=-1",
	    "timeout=",		 "timeout=ms",	 "timeout=99999999999", "ring_timeout=999ms",
	    "ring_timeout=3601", "timeout=3sms", "timeout=+3"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		g2 = (struct dp_gateway){.probe = true};
		err[0] = '\0';
		assert_int_equal(gw_words(&g2, bad[i], err, sizeof(err)), EINVAL);
		assert_non_null(strstr(err, "duration"));
		assert_int_equal(g2.timeout.kind, DP_TIMEOUT_DEFAULT);
	}

	/* the dialplan's settings (`route set`) */
	memset(&dc, 0, sizeof(dc));
	assert_int_equal(dp_config_set(&dc, SV("timeout"), SV("2"), err, sizeof(err)), 0);
	assert_int_equal(dc.timeout_ms, 2000);
	assert_int_equal(dp_config_set(&dc, SV("gateway_ring_timeout"), SV("30"), err, sizeof(err)),
			 0);
	assert_int_equal(dc.ring_timeout_ms, 30000);
	assert_int_equal(dp_config_set(&dc, SV("probe_interval"), SV("10"), err, sizeof(err)), 0);
	assert_int_equal(dc.probe_interval_s, 10);
	assert_int_equal(dp_config_set(&dc, SV("probe_interval"), SV("3601"), err, sizeof(err)),
			 EINVAL);
	assert_int_equal(dp_config_set(&dc, SV("probe_interval"), SV("-1"), err, sizeof(err)),
			 EINVAL);
	assert_int_equal(dc.probe_interval_s, 10);
	assert_int_equal(dp_config_set(&dc, SV("colour"), SV("1"), err, sizeof(err)), ENOENT);
	assert_string_equal(dp_config_key(SV("timeout")), "gateway_timeout");
	assert_string_equal(dp_config_key(SV("ring_timeout")), "gateway_ring_timeout");
	assert_null(dp_config_key(SV("timeouts")));
	assert_int_equal(dp_config_print(&dc, "gateway_ring_timeout", text, sizeof(text)), 0);
	assert_string_equal(text, "30");
	assert_int_equal(dp_config_print(&dc, "nope", text, sizeof(text)), ENOENT);

	/* through the store: what `route set` keeps is on top of the file's */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(db, sizeof(db), "%s.db", path);
	assert_int_equal(store_open(db, &st, err, sizeof(err)), 0);
	cfg_defaults(&c);
	if (cfg_load_string(&c, yaml, sizeof(yaml) - 1, &cerr) || cfg_finish(&c, &cerr))
		fail_msg("line %u: %s", cerr.line, cerr.msg);
	rules_conf_from_cfg(&base, &c);
	assert_int_equal(rules_save_dp_setting(st, &dc, "gateway_timeout"), 0);
	assert_int_equal(rules_save_dp_setting(st, &dc, "probe_interval"), 0);
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), 0);
	assert_int_equal(out.dp.timeout_ms, 2000);
	assert_int_equal(out.dp.probe_interval_s, 10);
	assert_int_equal(out.dp.ring_timeout_ms, 90000); /* the file's */
	assert_int_equal(rules_forget(st, STORE_REC_DPSETTING, "probe_interval", false), 0);
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), 0);
	assert_int_equal(out.dp.probe_interval_s, 30);
	/* a value the store holds that does not parse is reported */
	struct store_record rec = {
	    .kind = STORE_REC_DPSETTING, .key = "gateway_timeout", .meta = "forever"};
	assert_int_equal(store_record_put(st, &rec), 0);
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), EINVAL);
	assert_non_null(strstr(err, "gateway_timeout"));
	store_close(st);
	unlink(db);
	unlink(path);
}

/* The CLI's changes over the file's rules, through a real store. */
static void test_rules_over_the_file(void **state)
{
	static struct cfg c;
	static struct rules_conf base, out;
	struct store *st;
	struct dp_gateway g = {.probe = true};
	struct dp_group grp = {.n = 1};
	struct dp_rule r;
	char path[] = "/tmp/sb-rules-XXXXXX", db[64], err[400];
	int fd = mkstemp(path);
	struct cfg_error cerr;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(db, sizeof(db), "%s.db", path);
	assert_int_equal(store_open(db, &st, err, sizeof(err)), 0);
	cfg_defaults(&c);
	if (cfg_load_string(&c, dp_yaml, sizeof(dp_yaml) - 1, &cerr) || cfg_finish(&c, &cerr))
		fail_msg("line %u: %s", cerr.line, cerr.msg);
	rules_conf_from_cfg(&base, &c);

	/* nothing in the store: the file's rules */
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), 0);
	assert_int_equal(out.dp.ngw, base.dp.ngw);
	assert_int_equal(out.dp.nrules, base.dp.nrules);

	/* a new gateway and group, a new rule, a rule of the file hidden, list entries */
	strcpy(g.name, "z1");
	strcpy(g.host, "192.0.2.99");
	assert_int_equal(rules_save_gateway(st, &g), 0);
	strcpy(grp.name, "zgrp");
	strcpy(grp.m[0].name, "z1");
	grp.m[0].weight = 1;
	assert_int_equal(rules_save_group(st, &grp), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(dp_rule_match_parse(SV("0033"), &r, err, sizeof(err)), 0);
	assert_int_equal(rule_words(&r, "route=zgrp replace=|^00|+|", err, sizeof(err)), 0);
	assert_int_equal(rules_save_rule(st, &r), 0);
	assert_int_equal(rules_forget(st, STORE_REC_DPRULE, "00", true), 0);
	assert_int_equal(rules_save_list_item(st, "block_callers", "0900"), 0);
	assert_int_equal(rules_save_list_item(st, "block_sources", "198.51.100.0/24"), 0);
	assert_int_equal(rules_save_block_status(st, 603), 0);
	assert_int_equal(rules_save_redirect(st, "redirect.example.com"), 0);
	struct term_pattern tp = {.match = "ZedPhone", .type = TERM_MOBILE};
	assert_int_equal(rules_save_terminal(st, &tp), 0);
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), 0);
	assert_true(rules_find_redirect(&out, "redirect.example.com") >= 0);
	assert_true(rules_find_terminal(&out, "ZedPhone") >= 0);
	assert_int_equal(out.terminal_ua[rules_find_terminal(&out, "ZedPhone")].type, TERM_MOBILE);
	assert_int_equal(out.dp.ngw, base.dp.ngw + 1);
	assert_int_equal(rules_find_rule(&out.dp, "00"), -1);
	assert_true(rules_find_rule(&out.dp, "0033") >= 0);
	assert_int_equal(out.dp.rules[rules_find_rule(&out.dp, "0033")].line, 0);
	assert_int_equal(out.lists.block_callers.n, 1);
	assert_int_equal(out.lists.block_sources.n, 1);
	assert_int_equal(out.lists.block_status, 603);

	/* the snapshot matches with it; a republished one keeps a gateway's state */
	struct rules_slot *slot;
	struct rules_view v = {0};
	struct dp *d;
	char num[DP_NUMBER_MAX];
	int ri;
	assert_int_equal(rules_slot_create(&slot), 0);
	assert_int_equal(rules_publish(slot, &out), 0);
	d = rules_dp(rules_view_get(&v, slot));
	assert_true(rules_redirects(rules_view_get(&v, slot), "Redirect.Example.com"));
	assert_false(rules_redirects(rules_view_get(&v, slot), "example.com"));
	ri = dp_match(d, SV("0033123"));
	assert_int_equal(dp_transform(d, ri, SV("0033123"), num, sizeof(num)), 0);
	assert_string_equal(num, "+33123");
	/* which gateway a request went to: by address and port, or by name for a named one */
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(5060)};
	inet_pton(AF_INET, "192.0.2.99", &sin.sin_addr);
	assert_int_equal(dp_gateway_find(d, (struct sockaddr *)&sin, SV_NULL),
			 dp_config_find_gateway(&out.dp, "z1"));
	sin.sin_port = htons(5061);
	assert_int_equal(dp_gateway_find(d, (struct sockaddr *)&sin, SV("192.0.2.99")), -1);
	dp_gateway_set_up(d, (unsigned)dp_config_find_gateway(&out.dp, "z1"), false);
	assert_int_equal(rules_publish(slot, &out), 0);
	d = rules_dp(rules_view_get(&v, slot)); /* the view moves on; the old one is freed */
	assert_false(dp_gateway_is_up(d, (unsigned)dp_config_find_gateway(&out.dp, "z1")));
	rules_view_release(&v);
	rules_slot_destroy(slot);

	/* a change that no longer fits the file is reported with what is wrong */
	assert_int_equal(rules_forget(st, STORE_REC_GATEWAY, "z1", false), 0);
	assert_int_equal(rules_conf_load(st, &base, &out, err, sizeof(err)), EINVAL);
	assert_non_null(strstr(err, "no gateway named 'z1'"));

	store_close(st);
	unlink(db);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terminal_sources_in_order),
	    cmocka_unit_test(test_terminal_user_agent_table),
	    cmocka_unit_test(test_terminal_configured_patterns_first),
	    cmocka_unit_test(test_settings_every_key),
	    cmocka_unit_test(test_settings_bad_values),
	    cmocka_unit_test(test_settings_canonical_round_trip),
	    cmocka_unit_test(test_lists_networks),
	    cmocka_unit_test(test_lists_prefixes),
	    cmocka_unit_test(test_settings_barring_and_sources),
	    cmocka_unit_test(test_barring_check),
	    cmocka_unit_test(test_source_allowed),
	    cmocka_unit_test(test_barring_config_errors),
	    cmocka_unit_test(test_dialplan_match_and_transform),
	    cmocka_unit_test(test_dialplan_gateway_order),
	    cmocka_unit_test(test_dialplan_config_errors),
	    cmocka_unit_test(test_dialplan_text_form),
	    cmocka_unit_test(test_dialplan_gateway_timeouts),
	    cmocka_unit_test(test_rules_over_the_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
