/*
 * test_config.c - the configuration loader: defaults, the shipped sample
 * file, every setting, and above all the errors: each must name the right
 * line and say what is wrong, since that is what an operator sees from
 * `switchboard check-config`.
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

#include "config/config.h"

#define SAMPLE_CONFIG SB_CONFORMANCE_DIR "/../../config/switchboard.yaml"

static int load(struct cfg *c, const char *yaml, struct cfg_error *err)
{
	cfg_defaults(c);
	return cfg_load_string(c, yaml, strlen(yaml), err);
}

static void test_defaults(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_int_equal(c.workers, 0);
	assert_string_equal(c.server_name, "Switchboard");
	assert_string_equal(c.db_path, "var/switchboard.db");
	assert_int_equal(c.ndomains, 0);
	assert_int_equal(c.nlisten, 0);
	assert_int_equal(c.t1_ms, 500);
	assert_int_equal(c.t2_ms, 4000);
	assert_int_equal(c.t4_ms, 5000);
	assert_int_equal(c.timer_c_s, 180);
	assert_int_equal(c.min_expires, 60);
	assert_int_equal(c.max_expires, 3600);
	assert_int_equal(c.default_expires, 3600);
	assert_int_equal(c.max_contacts, 10);
	assert_true(c.auth_enabled);
	assert_int_equal(c.nalgorithms, 2);
	assert_int_equal(c.algorithms[0], CFG_ALG_MD5);
	assert_int_equal(c.algorithms[1], CFG_ALG_SHA256);
	assert_int_equal(c.nonce_ttl_s, 300);
	assert_string_equal(c.secret, "");
	assert_int_equal(c.proxy_mode, CFG_PROXY_STATEFUL);
	assert_true(c.record_route);
	assert_int_equal(c.tcp_max_connections, 4096);
	assert_int_equal(c.tcp_idle_timeout_s, 600);
	assert_int_equal(c.tcp_max_per_source, 64);
	assert_int_equal(c.tcp_unauth_idle_timeout_s, 30);
	assert_int_equal(c.dns_cache_ttl_s, 60);

	assert_int_equal(cfg_finish(&c, &err), 0);
	assert_int_equal(c.nlisten, 2);
	assert_int_equal(c.listen[0].proto, SIP_PROTO_UDP);
	assert_int_equal(c.listen[1].proto, SIP_PROTO_TCP);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(c.listen[i].host, "127.0.0.1");
		assert_int_equal(c.listen[i].port, 5060);
		assert_string_equal(c.listen[i].advertise, "");
	}
	/* finishing twice adds nothing */
	assert_int_equal(cfg_finish(&c, &err), 0);
	assert_int_equal(c.nlisten, 2);
}

static void test_empty_documents(void **state)
{
	static const char *const empty[] = {"", "# nothing\n", "---\n", "~\n", "---\n...\n"};
	struct cfg c;
	struct cfg_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		assert_int_equal(load(&c, empty[i], &err), 0);
		assert_int_equal(c.t1_ms, 500);
	}
}

/* Field by field: padding makes memcmp of two structs meaningless. */
static bool same_settings(const struct cfg *a, const struct cfg *b)
{
	return a->log_level == b->log_level && a->workers == b->workers &&
	       strcmp(a->server_name, b->server_name) == 0 && a->ndomains == b->ndomains &&
	       strcmp(a->db_path, b->db_path) == 0 && a->t1_ms == b->t1_ms &&
	       a->t2_ms == b->t2_ms && a->t4_ms == b->t4_ms && a->timer_c_s == b->timer_c_s &&
	       a->min_expires == b->min_expires && a->max_expires == b->max_expires &&
	       a->default_expires == b->default_expires && a->max_contacts == b->max_contacts &&
	       a->auth_enabled == b->auth_enabled && a->nalgorithms == b->nalgorithms &&
	       memcmp(a->algorithms, b->algorithms, sizeof(a->algorithms)) == 0 &&
	       a->nonce_ttl_s == b->nonce_ttl_s && strcmp(a->secret, b->secret) == 0 &&
	       a->proxy_mode == b->proxy_mode && a->record_route == b->record_route &&
	       a->tcp_max_connections == b->tcp_max_connections &&
	       a->tcp_idle_timeout_s == b->tcp_idle_timeout_s &&
	       a->tcp_max_per_source == b->tcp_max_per_source &&
	       a->tcp_unauth_idle_timeout_s == b->tcp_unauth_idle_timeout_s &&
	       a->dns_cache_ttl_s == b->dns_cache_ttl_s;
}

static void test_sample_file(void **state)
{
	struct cfg c, d;
	struct cfg_error err;
	int rc;

	(void)state;
	cfg_defaults(&c);
	rc = cfg_load_file(&c, SAMPLE_CONFIG, &err);
	if (rc)
		fail_msg("%s:%u:%u: %s", SAMPLE_CONFIG, err.line, err.column, err.msg);
	assert_int_equal(cfg_finish(&c, &err), 0);
	assert_int_equal(c.nlisten, 2);
	assert_int_equal(c.listen[0].proto, SIP_PROTO_UDP);
	assert_string_equal(c.listen[0].host, "127.0.0.1");
	assert_int_equal(c.listen[0].port, 5060);
	assert_int_equal(c.listen[1].proto, SIP_PROTO_TCP);
	assert_int_equal(c.ndomains, 0);
	assert_string_equal(c.db_path, "var/switchboard.db");

	/* the sample shows the defaults: apart from listen it changes nothing */
	cfg_defaults(&d);
	assert_true(same_settings(&c, &d));
}

static const char full_yaml[] =
    "log_level: debug\n"
    "workers: 4\n"
    "server_name: SB test\n"
    "domains:\n"
    "  - Example.COM\n"
    "  - 192.0.2.1\n"
    "  - \"2001:db8::1\"\n"
    "  - \"[2001:db8::2]\"\n"
    "listen:\n"
    "  - udp:192.0.2.1:5070\n"
    "  - tcp:[2001:db8::1]:5071\n"
    "  - UDP:10.0.0.1\n"
    "  - proto: tcp\n"
    "    address: 0.0.0.0\n"
    "    port: 5080\n"
    "    advertise: sip.example.com:5060\n"
    "  - { proto: udp, address: \"::\", advertise: \"[2001:db8::9]\" }\n"
    "database:\n"
    "  path: /tmp/x.db\n"
    "timers: { t1: 250, t2: 2000, t4: 2500, timer_c: 200 }\n"
    "registrar:\n"
    "  min_expires: 30\n"
    "  max_expires: 7200\n"
    "  default_expires: 600\n"
    "  max_contacts: 0\n"
    "auth:\n"
    "  enabled: false\n"
    "  algorithms: [MD5]\n"
    "  nonce_ttl: 60\n"
    "  secret: \"0123abcd\"\n"
    "proxy:\n"
    "  mode: stateless\n"
    "  record_route: no\n"
    "tcp:\n"
    "  max_connections: 10\n"
    "  idle_timeout: 30\n"
    "  max_per_source: 0\n"
    "  unauth_idle_timeout: 5\n"
    "dns:\n"
    "  cache_ttl: 0\n";

static void test_every_key(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	assert_int_equal(load(&c, full_yaml, &err), 0);
	assert_int_equal(cfg_finish(&c, &err), 0);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(c.workers, 4);
	assert_string_equal(c.server_name, "SB test");
	assert_int_equal(c.ndomains, 4);
	assert_string_equal(c.domains[0], "example.com");
	assert_string_equal(c.domains[1], "192.0.2.1");
	assert_string_equal(c.domains[2], "[2001:db8::1]");
	assert_string_equal(c.domains[3], "[2001:db8::2]");
	assert_int_equal(c.nlisten, 5);
	assert_string_equal(c.listen[1].host, "2001:db8::1");
	assert_int_equal(c.listen[1].port, 5071);
	assert_int_equal(c.listen[2].proto, SIP_PROTO_UDP);
	assert_int_equal(c.listen[2].port, 5060);
	assert_int_equal(c.listen[3].proto, SIP_PROTO_TCP);
	assert_string_equal(c.listen[3].host, "0.0.0.0");
	assert_int_equal(c.listen[3].port, 5080);
	assert_string_equal(c.listen[3].advertise, "sip.example.com:5060");
	assert_string_equal(c.listen[4].host, "::");
	assert_string_equal(c.listen[4].advertise, "[2001:db8::9]");
	assert_string_equal(c.db_path, "/tmp/x.db");
	assert_int_equal(c.t1_ms, 250);
	assert_int_equal(c.t2_ms, 2000);
	assert_int_equal(c.t4_ms, 2500);
	assert_int_equal(c.timer_c_s, 200);
	assert_int_equal(c.min_expires, 30);
	assert_int_equal(c.max_expires, 7200);
	assert_int_equal(c.default_expires, 600);
	assert_int_equal(c.max_contacts, 0);
	assert_false(c.auth_enabled);
	assert_int_equal(c.nalgorithms, 1);
	assert_int_equal(c.algorithms[0], CFG_ALG_MD5);
	assert_int_equal(c.nonce_ttl_s, 60);
	assert_string_equal(c.secret, "0123abcd");
	assert_int_equal(c.proxy_mode, CFG_PROXY_STATELESS);
	assert_false(c.record_route);
	assert_int_equal(c.tcp_max_connections, 10);
	assert_int_equal(c.tcp_idle_timeout_s, 30);
	assert_int_equal(c.tcp_max_per_source, 0);
	assert_int_equal(c.tcp_unauth_idle_timeout_s, 5);
	assert_int_equal(c.dns_cache_ttl_s, 0);
}

static void test_strangers(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(c.str_subs_per_source, 16);
	assert_int_equal(c.str_subs, 4096);
	assert_int_equal(c.str_msgs_per_source, 32);
	assert_int_equal(c.str_msgs_per_sender, 16);
	assert_int_equal(c.str_msgs, 4096);
	assert_int_equal(c.msgs_total, 200000);
	assert_int_equal(c.lookups_per_source, 256);
	assert_int_equal(c.lookups, 4096);
	assert_int_equal(c.negative_cache, 8192);
	assert_int_equal(load(&c,
			      "strangers:\n  subscriptions_per_source: 2\n  subscriptions: 3\n"
			      "  messages_per_source: 4\n  messages_per_sender: 5\n  messages: 6\n"
			      "  stored_messages: 7\n  lookups_per_source: 8\n  lookups: 9\n"
			      "  negative_cache: 10\n",
			      &err),
			 0);
	assert_int_equal(c.str_subs_per_source, 2);
	assert_int_equal(c.str_subs, 3);
	assert_int_equal(c.str_msgs_per_source, 4);
	assert_int_equal(c.str_msgs_per_sender, 5);
	assert_int_equal(c.str_msgs, 6);
	assert_int_equal(c.msgs_total, 7);
	assert_int_equal(c.lookups_per_source, 8);
	assert_int_equal(c.lookups, 9);
	assert_int_equal(c.negative_cache, 10);
	assert_int_equal(load(&c, "strangers:\n  lookups: 0\n", &err), EINVAL);
	assert_int_equal(load(&c, "strangers:\n  stored_messages: 0\n", &err), EINVAL);
}

static void test_algorithms(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	assert_int_equal(load(&c, "auth:\n  algorithms: [MD5, SHA-256]\n", &err), 0);
	assert_int_equal(c.nalgorithms, 2);
	assert_int_equal(c.algorithms[0], CFG_ALG_MD5);
	assert_int_equal(c.algorithms[1], CFG_ALG_SHA256);
	assert_int_equal(load(&c, "auth:\n  algorithms:\n    - sha-256\n", &err), 0);
	assert_int_equal(c.nalgorithms, 1);
	assert_int_equal(c.algorithms[0], CFG_ALG_SHA256);
}

struct bad_case {
	const char *yaml;
	unsigned line;
	const char *msg; /* exact text, or a prefix when it ends in '*' */
};

static const struct bad_case bad_cases[] = {
    {"workers: abc\n", 1, "'workers' must be an integer from 0 to 256, not 'abc'"},
    {"workers: 257\n", 1, "'workers' must be an integer from 0 to 256, not '257'"},
    {"workers: -1\n", 1, "'workers' must be an integer from 0 to 256, not '-1'"},
    {"workers:\n", 1, "'workers' must be an integer from 0 to 256, not empty"},
    {"workers: [1]\n", 1, "'workers' must be an integer from 0 to 256, not a list"},
    {"log_level: info\nfoo: 1\n", 2, "unknown key 'foo'"},
    {"registrar:\n  min_expires: 60\n\n  foo: 3\n", 4, "unknown key 'foo' in 'registrar'"},
    {"# comment\n\n- a\n", 3, "expected a mapping at the top level"},
    {"just a string\n", 1, "expected a mapping at the top level"},
    {"log_level: loud\n", 1, "'log_level' must be one of error, warn, info, debug, not 'loud'"},
    {"server_name: \"\"\n", 1, "'server_name' must not be empty"},
    {"server_name: \"a\\r\\nb\"\n", 1, "'server_name' must not contain control characters"},
    {"server_name: "
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
     1, "'server_name' is too long (at most 63 bytes)"},
    {"workers: 1\nworkers: 2\n", 2, "duplicate key 'workers'"},
    {"tcp:\n  idle_timeout: 1\n  idle_timeout: 2\n", 3, "duplicate key 'idle_timeout' in 'tcp'"},
    {"proxy: 5\n", 1, "'proxy' must be a mapping, not '5'"},
    {"proxy:\n  mode: fast\n", 2, "'proxy.mode' must be stateful or stateless, not 'fast'"},
    {"proxy:\n  record_route: maybe\n", 2,
     "'proxy.record_route' must be true or false, not 'maybe'"},
    {"database:\n  path:\n", 2, "'database.path' must not be empty"},
    {"timers:\n  t1: 0\n", 2, "'timers.t1' must be an integer from 1 to 60000, not '0'"},
    {"timers:\n  t1: 60001\n", 2, "'timers.t1' must be an integer from 1 to 60000, not '60001'"},
    {"timers:\n  t4: 0\n", 2, "'timers.t4' must be an integer from 1 to 600000, not '0'"},
    {"timers:\n  timer_c: 0\n", 2, "'timers.timer_c' must be an integer from 1 to 86400, not '0'"},
    {"registrar:\n  min_expires: 0\n", 2, "'registrar.min_expires' must be an integer from 1*"},
    {"auth:\n  nonce_ttl: 9\n", 2, "'auth.nonce_ttl' must be an integer from 10 to 86400, not '9'"},
    {"tcp:\n  max_connections: 0\n", 2, "'tcp.max_connections' must be an integer from 1*"},
    /* cross-field rules point at whichever of the two keys came last */
    {"timers:\n  t1: 5000\n", 2, "'timers.t1' (5000) must not be greater than 'timers.t2' (4000)"},
    {"timers:\n  t2: 400\n  t4: 1\n", 2,
     "'timers.t1' (500) must not be greater than 'timers.t2' (400)"},
    {"timers:\n  t1: 450\n  t2: 400\n", 3,
     "'timers.t1' (450) must not be greater than 'timers.t2' (400)"},
    {"registrar:\n  max_expires: 30\n", 2,
     "'registrar.min_expires' (60) must not be greater than 'registrar.max_expires' (30)"},
    {"registrar:\n  default_expires: 30\n", 2,
     "'registrar.min_expires' (60) must not be greater than 'registrar.default_expires' (30)"},
    {"registrar:\n  max_expires: 600\n", 2,
     "'registrar.default_expires' (3600) must not be greater than 'registrar.max_expires' (600)"},
    /* auth.algorithms */
    {"auth:\n  algorithms: [MD5, md5]\n", 2, "'auth.algorithms' lists 'md5' twice"},
    {"auth:\n  algorithms: []\n", 2, "'auth.algorithms' must list at least one of SHA-256, MD5"},
    {"auth:\n  algorithms:\n    - MD5\n    - SHA-1\n", 4,
     "entries of 'auth.algorithms' must be SHA-256 or MD5, not 'SHA-1'"},
    {"auth:\n  algorithms: MD5\n", 2, "'auth.algorithms' must be a list, not 'MD5'"},
    /* domains */
    {"domains:\n  - ok.example\n  - bad_domain\n", 3,
     "domain 'bad_domain' is not a valid host name or IP address"},
    {"domains: [a.example, A.example]\n", 1, "domain 'A.example' is listed twice"},
    {"domains: [\"-a.example\"]\n", 1, "domain '-a.example' is not a valid host name*"},
    {"domains: [\"a..example\"]\n", 1, "domain 'a..example' is not a valid host name*"},
    {"domains: [\"[1.2.3.4]\"]\n", 1, "domain '[1.2.3.4]' is not a valid host name*"},
    {"domains: example.com\n", 1, "'domains' must be a list, not 'example.com'"},
    /* listen */
    {"listen:\n\n  - udp:1.2.3:5060\n", 3, "listen entry 'udp:1.2.3:5060': invalid IP address"},
    {"listen:\n  - udp:example.com:5060\n", 2,
     "listen entry 'udp:example.com:5060': invalid IP address"},
    {"listen:\n  - udp:::1:5060\n", 2,
     "listen entry 'udp:::1:5060': IPv6 addresses must be in brackets, e.g. udp:[::1]:5060"},
    {"listen:\n  - tls:1.2.3.4:5061\n", 2,
     "listen entry 'tls:1.2.3.4:5061': transport 'tls' is not supported yet (use udp or tcp)"},
    {"listen:\n  - ws:1.2.3.4:80\n", 2, "listen entry 'ws:1.2.3.4:80': transport 'ws' is not*"},
    {"listen:\n  - xyz:1.2.3.4:80\n", 2,
     "listen entry 'xyz:1.2.3.4:80': unknown transport 'xyz' (use udp or tcp)"},
    {"listen:\n  - 1.2.3.4\n", 2, "listen entry '1.2.3.4': expected proto:address:port*"},
    {"listen:\n  - udp:1.2.3.4:0\n", 2,
     "listen entry 'udp:1.2.3.4:0': invalid port '0' (must be 1 to 65535)"},
    {"listen:\n  - udp:1.2.3.4:65536\n", 2, "listen entry 'udp:1.2.3.4:65536': invalid port*"},
    {"listen:\n  - udp:1.2.3.4:\n", 2, "listen entry 'udp:1.2.3.4:': invalid port ''*"},
    {"listen:\n  - udp:[::1:5060\n", 2, "listen entry 'udp:[::1:5060': invalid IP address"},
    {"listen:\n  - udp:[1.2.3.4]:5060\n", 2, "listen entry 'udp:[1.2.3.4]:5060': invalid IP*"},
    {"listen:\n  - udp:1.2.3.4:5060\n  - udp:1.2.3.4\n", 3,
     "listen entry 'udp:1.2.3.4' is listed twice"},
    {"listen:\n  - proto: udp\n    port: 5060\n", 2, "'listen' entry has no 'address'"},
    {"listen:\n  - address: 1.2.3.4\n", 2, "'listen' entry has no 'proto' (udp or tcp)"},
    {"listen:\n  - proto: udp\n    address: 1.2.3.4\n    prot: 1\n", 4,
     "unknown key 'prot' in a 'listen' entry"},
    {"listen:\n  - proto: udp\n    address: 1.2.3.4\n    port: 99999\n", 4,
     "listen entry 'udp:1.2.3.4:99999': invalid port '99999' (must be 1 to 65535)"},
    {"listen:\n  - proto: udp\n    address: 1.2.3.999\n", 3,
     "listen entry 'udp:1.2.3.999:5060': invalid IP address"},
    {"listen:\n  - proto: tls\n    address: 1.2.3.4\n", 2, "listen entry 'tls:1.2.3.4:5060'*"},
    {"listen:\n  - proto: udp\n    address: 1.2.3.4\n    advertise: \"a b\"\n", 4,
     "listen entry 'udp:1.2.3.4:5060': invalid advertise address 'a b'"},
    {"listen:\n  - proto: udp\n    address: 1.2.3.4\n    advertise: \"a.example:0\"\n", 4,
     "listen entry 'udp:1.2.3.4:5060': invalid advertise address 'a.example:0'"},
    {"listen: udp:1.2.3.4:5060\n", 1, "'listen' must be a list, not 'udp:1.2.3.4:5060'"},
    /* YAML syntax and structure */
    {"workers: 1\nlisten: [\n", 3, "YAML syntax error: did not find expected node content*"},
    {"a: b\n\tc: d\n", 2, "YAML syntax error: found a tab character that violates indentation*"},
    {"registrar:\n  min_expires: 1\n max_expires: 2\n", 3, "YAML syntax error: *"},
    {"workers: *nope\n", 1, "YAML syntax error: found undefined alias*"},
    {"? [a]\n: 1\n", 1, "keys must be plain names, not a list"},
    {"workers: 2\n---\nworkers: 3\n", 3, "only one YAML document is allowed*"},
};

static void check_msg(const struct bad_case *bc, const struct cfg_error *err)
{
	size_t n = strlen(bc->msg);

	if (bc->msg[n - 1] == '*') {
		if (strncmp(err->msg, bc->msg, n - 1) != 0)
			fail_msg("yaml:\n%s\nwant prefix: %s\ngot: %s", bc->yaml, bc->msg,
				 err->msg);
	} else if (strcmp(err->msg, bc->msg) != 0) {
		fail_msg("yaml:\n%s\nwant: %s\ngot:  %s", bc->yaml, bc->msg, err->msg);
	}
}

static void test_errors(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *bc = &bad_cases[i];
		int rc = load(&c, bc->yaml, &err);

		if (rc != EINVAL)
			fail_msg("yaml:\n%s\nwant EINVAL, got %d (%s)", bc->yaml, rc, err.msg);
		check_msg(bc, &err);
		if (err.line != bc->line)
			fail_msg("yaml:\n%s\nmsg %s: want line %u, got %u", bc->yaml, err.msg,
				 bc->line, err.line);
		assert_true(err.column >= 1);
	}
}

static void test_error_column(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	assert_int_equal(load(&c, "registrar:\n  min_expires: x\n", &err), EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.column, 16);
	assert_int_equal(load(&c, "a: b\n\tc: d\n", &err), EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.column, 1);
	/* invalid UTF-8 is found by the reader, which gives an offset, not a line */
	assert_int_equal(load(&c, "workers: 1\nserver_name: \"\xc3\x28\"\n", &err), EINVAL);
	assert_int_equal(err.line, 2);
	assert_non_null(strstr(err.msg, "invalid"));
}

static void test_failed_load_keeps_config(void **state)
{
	struct cfg c, before;
	struct cfg_error err;

	(void)state;
	assert_int_equal(load(&c, "workers: 3\n", &err), 0);
	before = c;
	assert_int_equal(cfg_load_string(&c, "workers: 5\nfoo: 1\n", 18, &err), EINVAL);
	assert_true(same_settings(&c, &before));
	assert_int_equal(c.workers, 3);
	/* and a second load replaces lists rather than appending to them */
	assert_int_equal(cfg_load_string(&c, "listen: [udp:10.0.0.1:1]\n", 25, &err), 0);
	assert_int_equal(cfg_load_string(&c, "listen: [tcp:10.0.0.2:2]\n", 25, &err), 0);
	assert_int_equal(c.nlisten, 1);
	assert_string_equal(c.listen[0].host, "10.0.0.2");
	assert_int_equal(c.workers, 3);
}

static void test_listen_specs(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(cfg_add_listen(&c, "udp:[::1]:5060", &err), 0);
	assert_int_equal(cfg_add_listen(&c, "tcp:[fe80::1:2:3]", &err), 0);
	assert_int_equal(cfg_add_listen(&c, "TCP:0.0.0.0:1", &err), 0);
	assert_int_equal(cfg_add_listen(&c, "udp:[::]:65535", &err), 0);
	assert_int_equal(c.nlisten, 4);
	assert_int_equal(c.listen[0].proto, SIP_PROTO_UDP);
	assert_string_equal(c.listen[0].host, "::1");
	assert_int_equal(c.listen[0].port, 5060);
	assert_int_equal(c.listen[1].proto, SIP_PROTO_TCP);
	assert_string_equal(c.listen[1].host, "fe80::1:2:3");
	assert_int_equal(c.listen[1].port, 5060);
	assert_string_equal(c.listen[2].host, "0.0.0.0");
	assert_int_equal(c.listen[2].port, 1);
	assert_string_equal(c.listen[3].host, "::");
	assert_int_equal(c.listen[3].port, 65535);

	assert_int_equal(cfg_add_listen(&c, "udp:[::1]x5060", &err), EINVAL);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "listen entry 'udp:[::1]x5060': invalid IP address");
	assert_int_equal(cfg_add_listen(&c, "udp:[::1]:5060", &err), EINVAL);
	assert_int_equal(cfg_add_listen(&c, "udp:1.2.3.4:50x", &err), EINVAL);
	assert_int_equal(cfg_add_listen(&c, "udp:[]:5060", &err), EINVAL);
	assert_int_equal(cfg_add_listen(&c, "", &err), EINVAL);
	assert_int_equal(cfg_add_listen(&c, ":1.2.3.4:5060", &err), EINVAL);
	assert_string_equal(err.msg,
			    "listen entry ':1.2.3.4:5060': unknown transport '' (use udp or tcp)");
	assert_int_equal(c.nlisten, 4);
	/* NULL err is allowed */
	assert_int_equal(cfg_add_listen(&c, "bogus", NULL), EINVAL);
}

static void test_listen_limit(void **state)
{
	struct cfg c;
	struct cfg_error err;
	char spec[64];

	(void)state;
	cfg_defaults(&c);
	for (int i = 0; i < CFG_MAX_LISTEN; i++) {
		snprintf(spec, sizeof(spec), "udp:127.0.0.1:%d", 5000 + i);
		assert_int_equal(cfg_add_listen(&c, spec, &err), 0);
	}
	assert_int_equal(cfg_add_listen(&c, "udp:127.0.0.1:6000", &err), EINVAL);
	assert_string_equal(err.msg, "too many listen entries (at most 16)");
}

static void test_domains(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(cfg_add_domain(&c, "SIP.Example.Org", &err), 0);
	assert_int_equal(cfg_add_domain(&c, "::1", &err), 0);
	assert_int_equal(cfg_add_domain(&c, "[::2]", &err), 0);
	assert_int_equal(cfg_add_domain(&c, "localhost", &err), 0);
	assert_string_equal(c.domains[0], "sip.example.org");
	assert_string_equal(c.domains[1], "[::1]");
	assert_string_equal(c.domains[2], "[::2]");
	assert_int_equal(cfg_add_domain(&c, "[::1]", &err), EINVAL);
	assert_string_equal(err.msg, "domain '[::1]' is listed twice");
	assert_int_equal(cfg_add_domain(&c, "", &err), EINVAL);
	assert_int_equal(cfg_add_domain(&c, "a.example.", &err), EINVAL);
	assert_int_equal(cfg_add_domain(&c, "a b", &err), EINVAL);
	assert_int_equal(cfg_add_domain(&c, "[zz::1]", &err), EINVAL);
	assert_int_equal(c.ndomains, 4);
}

static void test_finish_cross_rules(void **state)
{
	struct cfg c;
	struct cfg_error err;

	(void)state;
	cfg_defaults(&c);
	c.t2_ms = 100;
	assert_int_equal(cfg_finish(&c, &err), EINVAL);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg,
			    "'timers.t1' (500) must not be greater than 'timers.t2' (100)");

	cfg_defaults(&c);
	c.default_expires = 7200;
	assert_int_equal(cfg_finish(&c, &err), EINVAL);
	assert_non_null(strstr(err.msg, "'registrar.default_expires' (7200)"));

	cfg_defaults(&c);
	c.nalgorithms = 0;
	assert_int_equal(cfg_finish(&c, &err), EINVAL);
	c.auth_enabled = false;
	assert_int_equal(cfg_finish(&c, &err), 0);
}

static void test_files(void **state)
{
	char path[] = "/tmp/sb-test-config-XXXXXX";
	struct cfg c;
	struct cfg_error err;
	FILE *f;
	int fd;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(cfg_load_file(&c, "/nonexistent/switchboard.yaml", &err), ENOENT);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "file not found");
	assert_int_equal(cfg_load_file(&c, "/", &err), EIO);
	assert_int_equal(err.line, 0);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("workers: 2\ntcp:\n  bogus: 1\n", f);
	fclose(f);
	assert_int_equal(cfg_load_file(&c, path, &err), EINVAL);
	assert_int_equal(err.line, 3);
	assert_string_equal(err.msg, "unknown key 'bogus' in 'tcp'");
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	 cmocka_unit_test(test_empty_documents),
	    cmocka_unit_test(test_sample_file),	 cmocka_unit_test(test_every_key),
	    cmocka_unit_test(test_algorithms),	 cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_error_column), cmocka_unit_test(test_failed_load_keeps_config),
	    cmocka_unit_test(test_listen_specs), cmocka_unit_test(test_listen_limit),
	    cmocka_unit_test(test_domains),	 cmocka_unit_test(test_finish_cross_rules),
	    cmocka_unit_test(test_files),	 cmocka_unit_test(test_strangers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
