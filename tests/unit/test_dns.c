/*
 * test_dns.c - RFC 3263 resolution against a real DNS server.
 *
 * A mock resolver would only test our reading of the RFC against itself; the
 * wire format, c-ares' parsing and the event loop glue are where a resolver
 * breaks. So the tests start dnsmasq on a free loopback port with NAPTR, SRV
 * and A/AAAA records and drive the resolver on a libevent loop the way a
 * worker does. dnsmasq (Debian package dnsmasq-base) is required: without it
 * the tests fail with a message saying so instead of passing vacuously.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/dns.h"

static const char *const records[] = {
    /* NAPTR -> SRV -> A: two unusable records, TLS before TCP (preference), UDP last */
    "--naptr-record=naptr.test,5,10,u,E2U+sip,!^.*$!sip:info@naptr.test!",
    "--naptr-record=naptr.test,6,10,s,SIP+D2X,,_sip._x.naptr.test",
    "--naptr-record=naptr.test,10,50,s,SIP+D2T,,_sip._tcp.naptr.test",
    "--naptr-record=naptr.test,20,10,s,SIP+D2U,,_sip._udp.naptr.test",
    "--naptr-record=naptr.test,10,40,s,SIPS+D2T,,_sips._tcp.naptr.test",
    "--srv-host=_sip._tcp.naptr.test,tcp2.naptr.test,5071,20,0",
    "--srv-host=_sip._tcp.naptr.test,tcp1.naptr.test,5070,10,0",
    "--srv-host=_sip._udp.naptr.test,udp1.naptr.test,5080,10,0",
    "--srv-host=_sips._tcp.naptr.test,tls1.naptr.test,5090,10,0",
    "--host-record=tcp1.naptr.test,10.0.0.1",
    "--host-record=tcp2.naptr.test,10.0.0.4",
    "--host-record=udp1.naptr.test,10.0.0.2,fd00::2",
    "--host-record=tls1.naptr.test,10.0.0.3",
    /* SRV without NAPTR, and an A record of the domain itself */
    "--srv-host=_sip._tcp.srv.test,tcp.srv.test,5063,10,0",
    "--srv-host=_sip._udp.srv.test,udp.srv.test,5062,10,0",
    "--host-record=udp.srv.test,10.0.1.1",
    "--host-record=tcp.srv.test,10.0.1.2",
    "--host-record=srv.test,10.0.1.9",
    /* SRV priority and weight */
    "--srv-host=_sip._tcp.prio.test,p2.prio.test,5060,20,1000",
    "--srv-host=_sip._tcp.prio.test,p1a.prio.test,5060,10,50",
    "--srv-host=_sip._tcp.prio.test,p1b.prio.test,5060,10,50",
    "--host-record=p1a.prio.test,10.0.2.1",
    "--host-record=p1b.prio.test,10.0.2.2",
    "--host-record=p2.prio.test,10.0.2.3",
    "--srv-host=_sip._tcp.zero.test,w0.zero.test,5060,10,0",
    "--srv-host=_sip._tcp.zero.test,w100.zero.test,5060,10,100",
    "--host-record=w0.zero.test,10.0.4.1",
    "--host-record=w100.zero.test,10.0.4.2",
    /* no NAPTR, no SRV */
    "--host-record=plain.test,10.0.3.1,fd00::31",
};

struct dnsmasq {
	pid_t pid;
	char servers[32];
};

struct fx {
	struct event_base *base;
	struct dns_resolver *r;
};

struct result {
	bool done;
	int calls;
	int err;
	size_t n;
	char t[DNS_MAX_TARGETS][80];
};

/*
 * dnsmasq
 */

static const char *dnsmasq_path(void)
{
	static const char *const paths[] = {"/usr/sbin/dnsmasq", "/sbin/dnsmasq",
					    "/usr/bin/dnsmasq", "/usr/local/sbin/dnsmasq"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	}
	return NULL;
}

/* A socket bound to 127.0.0.1 on port (0 = any); -1 when the port is taken. */
static int bind_loopback(int type, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, type, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static uint16_t bound_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	getsockname(fd, (struct sockaddr *)&sin, &len);
	return ntohs(sin.sin_port);
}

/* A port free for both UDP and TCP, as dnsmasq listens on both. */
static uint16_t free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int u = bind_loopback(SOCK_DGRAM, 0), t;
		uint16_t port;
		assert_true(u >= 0);
		port = bound_port(u);
		t = bind_loopback(SOCK_STREAM, port);
		close(u);
		if (t >= 0) {
			close(t);
			return port;
		}
	}
	fail_msg("no free loopback port");
	return 0;
}

static void dnsmasq_exec(const char *path, uint16_t port, pid_t parent)
{
	const char *argv[64] = {path,
				"--conf-file=/dev/null",
				"--no-resolv",
				"--no-hosts",
				"--no-daemon",
				"--keep-in-foreground",
				"--bind-interfaces",
				"--listen-address=127.0.0.1",
				"--local=/test/",
				"--local-ttl=600"};
	size_t n = 10;
	char portarg[32];
	int devnull = open("/dev/null", O_RDWR);

	snprintf(portarg, sizeof(portarg), "--port=%u", port);
	argv[n++] = portarg;
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++)
		argv[n++] = records[i];
	argv[n] = NULL;
	/* A failed assertion or a killed test must not leave dnsmasq running. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	if (devnull >= 0 && !getenv("SB_TEST_VERBOSE")) {
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
	}
	execv(path, (char *const *)argv);
	_exit(127);
}

static void dnsmasq_start(struct dnsmasq *d)
{
	const char *path = dnsmasq_path();
	pid_t parent;
	uint16_t port;

	if (!path)
		fail_msg("dnsmasq not found: install the Debian package dnsmasq-base");
	port = free_port();
	snprintf(d->servers, sizeof(d->servers), "127.0.0.1:%u", port);
	parent = getpid();
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0)
		dnsmasq_exec(path, port, parent);
	/* dnsmasq is ready once it holds the port. */
	for (int i = 0; i < 500; i++) {
		int status, fd = bind_loopback(SOCK_DGRAM, port);
		if (fd < 0)
			return;
		close(fd);
		if (waitpid(d->pid, &status, WNOHANG) == d->pid)
			fail_msg("dnsmasq exited with status %d; run with SB_TEST_VERBOSE=1 to see "
				 "why",
				 status);
		usleep(10000);
	}
	fail_msg("dnsmasq did not bind 127.0.0.1:%u", port);
}

static void dnsmasq_stop(struct dnsmasq *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
		d->pid = 0;
	}
}

static int group_setup(void **state)
{
	struct dnsmasq *d;

	*state = NULL;
	if (!dnsmasq_path()) {
		print_error("dnsmasq not found: these tests need a real DNS server; install the "
			    "Debian package dnsmasq-base\n");
		return -1;
	}
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	dnsmasq_start(d);
	*state = d;
	return 0;
}

static int group_teardown(void **state)
{
	if (*state)
		dnsmasq_stop(*state);
	free(*state);
	return 0;
}

/*
 * Resolver and loop
 */

static void fx_open(struct fx *fx, const char *servers)
{
	fx->base = event_base_new();
	assert_non_null(fx->base);
	assert_int_equal(dns_resolver_create(fx->base, servers, 300, &fx->r), 0);
}

static void fx_close(struct fx *fx)
{
	dns_resolver_destroy(fx->r);
	event_base_free(fx->base);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the loop in short slices until *flag is set or ms have passed. */
static void run_until(struct event_base *base, const bool *flag, int ms)
{
	double end = now_ms() + ms;

	while (!*flag && now_ms() < end) {
		struct timeval tv = {0, 20000};
		event_base_loopexit(base, &tv);
		event_base_loop(base, 0);
	}
}

static void run_for(struct event_base *base, int ms)
{
	bool never = false;

	run_until(base, &never, ms);
}

static void format_target(const struct dns_target *t, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (t->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&t->addr;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		assert_int_equal(t->addrlen, sizeof(*sin));
		snprintf(out, size, "%s %s:%u", sip_proto_name(t->proto), ip, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&t->addr;
		assert_int_equal(t->addr.ss_family, AF_INET6);
		assert_int_equal(t->addrlen, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "%s [%s]:%u", sip_proto_name(t->proto), ip,
			 ntohs(sin6->sin6_port));
	}
}

static void on_done(void *arg, int err, const struct dns_target *t, size_t n)
{
	struct result *res = arg;

	res->done = true;
	res->calls++;
	res->err = err;
	res->n = n;
	for (size_t i = 0; i < n && i < DNS_MAX_TARGETS; i++)
		format_target(&t[i], res->t[i], sizeof(res->t[i]));
}

static void parse_uri(const char *s, struct sip_uri *u)
{
	if (sip_uri_parse(sv_cstr(s), u) != 0)
		fail_msg("bad test URI %s", s);
}

/* Starts a resolution; returns whether it was answered before dns_resolve_uri returned. */
static bool start(struct fx *fx, const char *uri, struct result *res, struct dns_query **q)
{
	struct sip_uri u;

	memset(res, 0, sizeof(*res));
	parse_uri(uri, &u);
	assert_int_equal(dns_resolve_uri(fx->r, &u, on_done, res, q), 0);
	return res->done;
}

static void resolve(struct fx *fx, const char *uri, struct result *res)
{
	start(fx, uri, res, NULL);
	run_until(fx->base, &res->done, 10000);
	if (!res->done)
		fail_msg("%s: no answer", uri);
	assert_int_equal(res->calls, 1);
}

static void check_targets(const char *uri, const struct result *res, const char *const *want,
			  size_t n)
{
	if (res->err)
		fail_msg("%s: error %s", uri, strerror(res->err));
	for (size_t i = 0; i < res->n; i++)
		print_message("  %s -> %s\n", uri, res->t[i]);
	assert_int_equal(res->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(res->t[i], want[i]);
}

#define EXPECT(fx, uri, ...)                                                                       \
	do {                                                                                       \
		static const char *const want_[] = {__VA_ARGS__};                                  \
		struct result res_;                                                                \
		resolve(fx, uri, &res_);                                                           \
		check_targets(uri, &res_, want_, sizeof(want_) / sizeof(want_[0]));                \
	} while (0)

/*
 * Tests
 */

static void numeric_is(const char *uri, const char *want)
{
	struct sip_uri u;
	struct dns_target t;
	char got[80];

	parse_uri(uri, &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), 0);
	format_target(&t, got, sizeof(got));
	if (strcmp(got, want))
		fail_msg("%s: got %s, want %s", uri, got, want);
}

static void test_numeric(void **state)
{
	struct sip_uri u;
	struct dns_target t;

	(void)state;
	numeric_is("sip:alice@192.0.2.1", "UDP 192.0.2.1:5060");
	numeric_is("sip:192.0.2.1:5080", "UDP 192.0.2.1:5080");
	numeric_is("sips:192.0.2.1", "TLS 192.0.2.1:5061");
	numeric_is("sips:192.0.2.1;transport=tcp", "TLS 192.0.2.1:5061");
	numeric_is("sip:[2001:db8::1]", "UDP [2001:db8::1]:5060");
	numeric_is("sip:[2001:db8::1]:5070;transport=TCP", "TCP [2001:db8::1]:5070");
	numeric_is("sip:192.0.2.1;transport=tls", "TLS 192.0.2.1:5061");
	numeric_is("sip:192.0.2.1;transport=Sctp", "SCTP 192.0.2.1:5060");
	numeric_is("sip:192.0.2.1;transport=ws", "WS 192.0.2.1:5060");
	numeric_is("sip:192.0.2.1;transport=WSS", "WSS 192.0.2.1:5061");
	numeric_is("sip:bob@example.com;maddr=192.0.2.7", "UDP 192.0.2.7:5060");
	numeric_is("sip:192.0.2.1:5090;maddr=[2001:db8::7];transport=tcp",
		   "TCP [2001:db8::7]:5090");

	parse_uri("sip:bob@example.com", &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), ENOENT);
	parse_uri("sip:192.0.2.1;maddr=example.com", &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), ENOENT);
	parse_uri("sip:192.0.2.1.5", &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), ENOENT);
	parse_uri("sip:192.0.2.1;transport=foo", &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), EPROTONOSUPPORT);
	parse_uri("tel:+15551234", &u);
	assert_int_equal(dns_resolve_numeric(&u, &t), EINVAL);
}

/* A numeric host needs no resolver round trip: the callback runs at once. */
static void test_numeric_uri(void **state)
{
	struct fx fx;
	struct result res;
	struct dns_query *q = (struct dns_query *)&q;
	static const char *const want[] = {"TCP [2001:db8::1]:5070"};

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	assert_true(start(&fx, "sip:[2001:db8::1]:5070;transport=tcp", &res, &q));
	assert_null(q);
	assert_int_equal(res.calls, 1);
	check_targets("numeric", &res, want, 1);
	fx_close(&fx);
}

static void test_naptr(void **state)
{
	struct fx fx;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	EXPECT(&fx, "sip:naptr.test", "TLS 10.0.0.3:5090", "TCP 10.0.0.1:5070", "TCP 10.0.0.4:5071",
	       "UDP 10.0.0.2:5080", "UDP [fd00::2]:5080");
	EXPECT(&fx, "sips:alice@naptr.test", "TLS 10.0.0.3:5090");
	fx_close(&fx);
}

static void test_srv_without_naptr(void **state)
{
	struct fx fx;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	EXPECT(&fx, "sip:srv.test", "UDP 10.0.1.1:5062", "TCP 10.0.1.2:5063");
	EXPECT(&fx, "sip:srv.test;transport=tcp", "TCP 10.0.1.2:5063");
	EXPECT(&fx, "sip:srv.test;transport=UDP", "UDP 10.0.1.1:5062");
	/* no _sips._tcp record: the domain's own address, on 5061 */
	EXPECT(&fx, "sips:srv.test", "TLS 10.0.1.9:5061");
	/* maddr names the target instead of the host */
	EXPECT(&fx, "sip:bob@192.0.2.1;maddr=srv.test", "UDP 10.0.1.1:5062", "TCP 10.0.1.2:5063");
	fx_close(&fx);
}

static void test_srv_priority_weight(void **state)
{
	struct fx fx;
	struct result res;
	int first_a = 0, first_b = 0, first_w100 = 0;
	const int runs = 200;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	for (int i = 0; i < runs; i++) {
		resolve(&fx, "sip:prio.test;transport=tcp", &res);
		assert_int_equal(res.err, 0);
		assert_int_equal(res.n, 3);
		/* priority 20 comes last whatever its weight */
		assert_string_equal(res.t[2], "TCP 10.0.2.3:5060");
		first_a += !strcmp(res.t[0], "TCP 10.0.2.1:5060");
		first_b += !strcmp(res.t[0], "TCP 10.0.2.2:5060");
	}
	print_message("  equal weights: first %d / %d times\n", first_a, first_b);
	assert_int_equal(first_a + first_b, runs);
	assert_true(first_a > 0 && first_b > 0);

	/* weight 0 against weight 100: the 0 wins only when the draw is 0 (1 in 101) */
	for (int i = 0; i < runs; i++) {
		resolve(&fx, "sip:zero.test;transport=tcp", &res);
		assert_int_equal(res.n, 2);
		first_w100 += !strcmp(res.t[0], "TCP 10.0.4.2:5060");
	}
	print_message("  weight 100 first %d of %d times\n", first_w100, runs);
	assert_true(first_w100 >= runs * 9 / 10);
	fx_close(&fx);
}

static void test_a_fallback(void **state)
{
	struct fx fx;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	EXPECT(&fx, "sip:plain.test", "UDP 10.0.3.1:5060", "UDP [fd00::31]:5060");
	EXPECT(&fx, "sips:plain.test", "TLS 10.0.3.1:5061", "TLS [fd00::31]:5061");
	EXPECT(&fx, "sip:plain.test;transport=tcp", "TCP 10.0.3.1:5060", "TCP [fd00::31]:5060");
	EXPECT(&fx, "sip:plain.test;transport=tls", "TLS 10.0.3.1:5061", "TLS [fd00::31]:5061");
	EXPECT(&fx, "sip:plain.test;transport=ws", "WS 10.0.3.1:5060", "WS [fd00::31]:5060");
	fx_close(&fx);
}

/* An explicit port skips NAPTR and SRV even when the domain has them. */
static void test_explicit_port(void **state)
{
	struct fx fx;
	struct result res;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	EXPECT(&fx, "sip:srv.test:5999", "UDP 10.0.1.9:5999");
	EXPECT(&fx, "sip:srv.test:5999;transport=tcp", "TCP 10.0.1.9:5999");
	EXPECT(&fx, "sips:srv.test:5999", "TLS 10.0.1.9:5999");
	resolve(&fx, "sip:naptr.test:5060", &res);
	assert_int_equal(res.err, ENOENT);
	fx_close(&fx);
}

static void test_nxdomain(void **state)
{
	struct fx fx;
	struct result res;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	resolve(&fx, "sip:nx.test", &res);
	assert_int_equal(res.err, ENOENT);
	assert_int_equal(res.n, 0);
	resolve(&fx, "sips:nx.test;transport=tcp", &res);
	assert_int_equal(res.err, ENOENT);
	resolve(&fx, "sip:nx.test:5070", &res);
	assert_int_equal(res.err, ENOENT);
	fx_close(&fx);
}

static void test_bad_uri(void **state)
{
	struct fx fx;
	struct sip_uri u;
	struct result res = {0};

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	parse_uri("tel:+15551234", &u);
	assert_int_equal(dns_resolve_uri(fx.r, &u, on_done, &res, NULL), EINVAL);
	parse_uri("sip:plain.test;transport=foo", &u);
	assert_int_equal(dns_resolve_uri(fx.r, &u, on_done, &res, NULL), EPROTONOSUPPORT);
	assert_int_equal(res.calls, 0);
	fx_close(&fx);
}

/* Answers stay in the cache: with the server gone, they come back at once. */
static void test_cache(void **state)
{
	struct dnsmasq d = {0};
	struct fx fx;
	struct result res;
	static const char *const naptr[] = {"TLS 10.0.0.3:5090", "TCP 10.0.0.1:5070",
					    "TCP 10.0.0.4:5071", "UDP 10.0.0.2:5080",
					    "UDP [fd00::2]:5080"};
	static const char *const plain[] = {"UDP 10.0.3.1:5060", "UDP [fd00::31]:5060"};

	(void)state;
	dnsmasq_start(&d);
	fx_open(&fx, d.servers);
	resolve(&fx, "sip:naptr.test", &res);
	check_targets("sip:naptr.test", &res, naptr, 5);
	resolve(&fx, "sip:plain.test", &res);
	check_targets("sip:plain.test", &res, plain, 2);
	resolve(&fx, "sip:nx.test", &res);
	assert_int_equal(res.err, ENOENT);
	dnsmasq_stop(&d);

	assert_true(start(&fx, "sip:naptr.test", &res, NULL));
	check_targets("sip:naptr.test (cached)", &res, naptr, 5);
	assert_true(start(&fx, "sip:plain.test", &res, NULL));
	check_targets("sip:plain.test (cached)", &res, plain, 2);
	assert_true(start(&fx, "sip:nx.test", &res, NULL));
	assert_int_equal(res.err, ENOENT);
	assert_int_equal(res.calls, 1);
	fx_close(&fx);
}

/* Caching off: the second resolution asks again, and a dead server is an error. */
static void test_cache_off(void **state)
{
	struct dnsmasq d = {0};
	struct fx fx;
	struct result res;

	(void)state;
	dnsmasq_start(&d);
	fx.base = event_base_new();
	assert_int_equal(dns_resolver_create(fx.base, d.servers, 0, &fx.r), 0);
	resolve(&fx, "sip:plain.test", &res);
	assert_int_equal(res.err, 0);
	dnsmasq_stop(&d);
	assert_false(start(&fx, "sip:plain.test", &res, NULL));
	run_until(fx.base, &res.done, 10000);
	assert_true(res.done);
	print_message("  dead server: %s\n", strerror(res.err));
	assert_int_not_equal(res.err, 0);
	fx_close(&fx);
}

static void test_cancel(void **state)
{
	struct fx fx;
	struct result res, other;
	struct dns_query *q = NULL;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	assert_false(start(&fx, "sip:naptr.test", &res, &q));
	assert_non_null(q);
	dns_cancel(q);
	/* another query in flight still completes */
	start(&fx, "sip:srv.test", &other, NULL);
	run_until(fx.base, &other.done, 5000);
	assert_int_equal(other.err, 0);
	run_for(fx.base, 200);
	assert_int_equal(res.calls, 0);
	fx_close(&fx);
}

/* A server that never answers keeps queries pending as long as we like. */
static int blackhole(char *servers, size_t size)
{
	int fd = bind_loopback(SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	snprintf(servers, size, "127.0.0.1:%u", bound_port(fd));
	return fd;
}

static void test_destroy_pending(void **state)
{
	char servers[32];
	int hole = blackhole(servers, sizeof(servers));
	struct fx fx;
	struct result res[4];
	struct dns_query *q = NULL;

	(void)state;
	fx_open(&fx, servers);
	start(&fx, "sip:naptr.test", &res[0], NULL);
	start(&fx, "sip:srv.test;transport=tcp", &res[1], NULL);
	start(&fx, "sip:plain.test:5060", &res[2], NULL);
	start(&fx, "sip:srv.test", &res[3], &q);
	dns_cancel(q);
	run_for(fx.base, 50);
	fx_close(&fx);
	for (int i = 0; i < 4; i++)
		assert_int_equal(res[i].calls, 0);

	/* and without the loop ever running */
	fx_open(&fx, servers);
	start(&fx, "sip:naptr.test", &res[0], NULL);
	start(&fx, "sip:plain.test;transport=udp", &res[1], NULL);
	fx_close(&fx);
	assert_int_equal(res[0].calls + res[1].calls, 0);
	close(hole);
}

static void test_timeout(void **state)
{
	char servers[32];
	int hole = blackhole(servers, sizeof(servers));
	struct fx fx;
	struct result res;
	double t0 = now_ms();

	(void)state;
	fx_open(&fx, servers);
	resolve(&fx, "sip:plain.test:5060", &res);
	print_message("  timed out after %.0f ms\n", now_ms() - t0);
	assert_int_equal(res.err, ETIMEDOUT);
	fx_close(&fx);
	close(hole);
}

/* c-ares' "f" lookup: the hosts file (or its built-in localhost) answers before DNS. */
static void test_hosts_file(void **state)
{
	struct fx fx;
	struct result res;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	resolve(&fx, "sip:localhost:5070;transport=tcp", &res);
	assert_int_equal(res.err, 0);
	assert_true(res.n >= 1);
	assert_string_equal(res.t[0], "TCP 127.0.0.1:5070");
	fx_close(&fx);
}

struct chain {
	struct fx *fx;
	struct result first, second;
};

static void on_first(void *arg, int err, const struct dns_target *t, size_t n)
{
	struct chain *c = arg;
	struct sip_uri u;

	on_done(&c->first, err, t, n);
	parse_uri("sip:srv.test", &u);
	assert_int_equal(dns_resolve_uri(c->fx->r, &u, on_done, &c->second, NULL), 0);
}

/* A callback may start the next resolution, as a proxy trying the next hop does. */
static void test_resolve_from_callback(void **state)
{
	struct fx fx;
	struct chain c = {.fx = &fx};
	struct sip_uri u;

	fx_open(&fx, ((struct dnsmasq *)*state)->servers);
	parse_uri("sip:plain.test", &u);
	assert_int_equal(dns_resolve_uri(fx.r, &u, on_first, &c, NULL), 0);
	run_until(fx.base, &c.second.done, 10000);
	assert_int_equal(c.first.calls, 1);
	assert_int_equal(c.first.err, 0);
	assert_int_equal(c.second.calls, 1);
	assert_int_equal(c.second.n, 2);
	assert_string_equal(c.second.t[0], "UDP 10.0.1.1:5062");
	fx_close(&fx);
}

static void test_create_errors(void **state)
{
	struct event_base *base = event_base_new();
	struct dns_resolver *r = (struct dns_resolver *)&r;

	(void)state;
	assert_int_equal(dns_resolver_create(base, "not an address", 60, &r), EINVAL);
	assert_null(r);
	assert_int_equal(dns_resolver_create(NULL, NULL, 60, &r), EINVAL);
	assert_int_equal(dns_resolver_create(base, NULL, 60, &r), 0);
	dns_resolver_destroy(r);
	dns_resolver_destroy(NULL);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numeric),
	    cmocka_unit_test(test_numeric_uri),
	    cmocka_unit_test(test_naptr),
	    cmocka_unit_test(test_srv_without_naptr),
	    cmocka_unit_test(test_srv_priority_weight),
	    cmocka_unit_test(test_a_fallback),
	    cmocka_unit_test(test_explicit_port),
	    cmocka_unit_test(test_nxdomain),
	    cmocka_unit_test(test_bad_uri),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_cache_off),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_destroy_pending),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_hosts_file),
	    cmocka_unit_test(test_resolve_from_callback),
	    cmocka_unit_test(test_create_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
