/*
 * test_auth.c - digest authentication: the RFC test vectors for the response
 * computation, full challenge/response round trips as a client would do
 * them (including every way a response must be refused), the credentials
 * parser on awkward headers, and a micro-benchmark of auth_verify, which
 * runs for every REGISTER and INVITE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <cmocka.h>

#include "services/auth.h"

#define NOW	    ((time_t)1700000000)
#define TTL	    300
#define REALM	    "example.com"
#define USER	    "alice"
#define PASSWORD    "s3cret"
#define NC_SLOTS    (1u << 20) /* AUTH_NC_SLOTS in auth.c */
#define BENCH_ITERS 100000

struct fixture {
	struct auth *a;
	struct auth_hasher *h;
};

/* What a client puts in its Authorization header. */
struct client {
	enum auth_alg alg;
	const char *alg_param; /* NULL = leave algorithm out */
	const char *password;
	const char *nonce;
	const char *nc;
	const char *qop; /* NULL = RFC 2069 style, no qop/nc/cnonce */
	const char *method;
};

static int setup(void **state)
{
	static const enum auth_alg algs[] = {AUTH_ALG_SHA256, AUTH_ALG_MD5};
	static const unsigned char secret[] = "unit-test secret";
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(auth_create(secret, sizeof(secret) - 1, TTL, algs, 2, &f->a), 0);
	assert_int_equal(auth_hasher_create(&f->h), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	auth_hasher_destroy(f->h);
	auth_destroy(f->a);
	free(f);
	return 0;
}

static void ha1_of(struct auth_hasher *h, enum auth_alg alg, const char *user, const char *realm,
		   const char *password, char *out)
{
	char in[256];
	int n = snprintf(in, sizeof(in), "%s:%s:%s", user, realm, password);

	auth_hash_hex(h, alg, in, (size_t)n, out);
}

/* Copies the nonce of the first challenge line in b. */
static void nonce_of(const struct buf *b, char *out, size_t size)
{
	const char *p = memmem(b->p, b->len, "nonce=\"", 7);
	const char *end;

	assert_non_null(p);
	p += 7;
	end = memchr(p, '"', b->len - (size_t)(p - b->p));
	assert_non_null(end);
	assert_true((size_t)(end - p) < size);
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
}

static void fresh_nonce(struct fixture *f, time_t now, char *out, size_t size)
{
	struct buf b;

	buf_init(&b, 0);
	auth_challenge(f->a, f->h, &b, false, SV(REALM), false, now);
	assert_int_equal(b.err, 0);
	nonce_of(&b, out, size);
	buf_free(&b);
}

/* Builds the header value a client would send, into hdr. */
static void client_header(struct auth_hasher *h, const struct client *c, char *hdr, size_t size)
{
	char ha1[65], resp[65], alg[64] = "", qop[96] = "";
	const char *method = c->method ? c->method : "REGISTER";

	ha1_of(h, c->alg, USER, REALM, c->password, ha1);
	auth_response_hex(h, c->alg, ha1, sv_cstr(c->nonce), sv_cstr(c->qop ? c->nc : NULL),
			  sv_cstr(c->qop ? "0a4f113b" : NULL), sv_cstr(c->qop), sv_cstr(method),
			  SV("sip:" REALM), resp);
	if (c->alg_param)
		snprintf(alg, sizeof(alg), ", algorithm=%s", c->alg_param);
	if (c->qop)
		snprintf(qop, sizeof(qop), ", qop=%s, nc=%s, cnonce=\"0a4f113b\"", c->qop, c->nc);
	snprintf(hdr, size,
		 "Digest username=\"" USER "\", realm=\"" REALM "\", nonce=\"%s\", "
		 "uri=\"sip:" REALM "\", response=\"%s\"%s%s",
		 c->nonce, resp, alg, qop);
}

static enum auth_result verify(struct fixture *f, const struct client *c, const char *ha1,
			       time_t now)
{
	char hdr[1024];
	struct auth_cred cred;

	client_header(f->h, c, hdr, sizeof(hdr));
	assert_int_equal(auth_cred_parse(sv_cstr(hdr), &cred), 0);
	return auth_verify(f->a, f->h, &cred, SV("REGISTER"), ha1, now);
}

static struct client client_for(enum auth_alg alg, const char *nonce, const char *nc)
{
	return (struct client){
	    .alg = alg,
	    .alg_param = alg == AUTH_ALG_SHA256 ? "SHA-256" : NULL,
	    .password = PASSWORD,
	    .nonce = nonce,
	    .nc = nc,
	    .qop = "auth",
	};
}

/*
 * Test vectors
 */

static void test_rfc2617_vector(void **state)
{
	struct fixture *f = *state;
	char ha1[65], resp[65];

	ha1_of(f->h, AUTH_ALG_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", ha1);
	assert_string_equal(ha1, "939e7578ed9e3c518a452acee763bce9");
	auth_response_hex(f->h, AUTH_ALG_MD5, ha1, SV("dcd98b7102dd2f0e8b11d0f600bfb0c093"),
			  SV("00000001"), SV("0a4f113b"), SV("auth"), SV("GET"),
			  SV("/dir/index.html"), resp);
	assert_string_equal(resp, "6629fae49393a05397450978507c4ef1");
}

static void test_rfc7616_sha256_vector(void **state)
{
	struct fixture *f = *state;
	char ha1[65], resp[65];

	ha1_of(f->h, AUTH_ALG_SHA256, "Mufasa", "http-auth@example.org", "Circle of Life", ha1);
	auth_response_hex(f->h, AUTH_ALG_SHA256, ha1,
			  SV("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"), SV("00000001"),
			  SV("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"), SV("auth"), SV("GET"),
			  SV("/dir/index.html"), resp);
	assert_string_equal(resp,
			    "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

/* Plain hashes against known digests, and the response without qop (RFC 2069 form). */
static void test_hash_hex(void **state)
{
	struct fixture *f = *state;
	char out[65];

	auth_hash_hex(f->h, AUTH_ALG_MD5, "abc", 3, out);
	assert_string_equal(out, "900150983cd24fb0d6963f7d28e17f72");
	auth_hash_hex(f->h, AUTH_ALG_SHA256, "abc", 3, out);
	assert_string_equal(out,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	/* RFC 2617 3.5 computed without qop: MD5(HA1:nonce:HA2) */
	auth_response_hex(f->h, AUTH_ALG_MD5, "939e7578ed9e3c518a452acee763bce9",
			  SV("dcd98b7102dd2f0e8b11d0f600bfb0c093"), SV_NULL, SV_NULL, SV_NULL,
			  SV("GET"), SV("/dir/index.html"), out);
	assert_string_equal(out, "670fd8c2df070c60b045671b8b24ff02"); /* from Python's hashlib */
}

/*
 * Challenges and round trips
 */

static void test_challenge_format(void **state)
{
	struct fixture *f = *state;
	struct buf b;
	char nonce[64], expect[512];

	buf_init(&b, 0);
	auth_challenge(f->a, f->h, &b, false, SV(REALM), false, NOW);
	assert_int_equal(b.err, 0);
	nonce_of(&b, nonce, sizeof(nonce));
	assert_int_equal(strlen(nonce), 32);
	for (const char *p = nonce; *p; p++)
		assert_true(sip_is_token_char((unsigned char)*p));
	snprintf(expect, sizeof(expect),
		 "WWW-Authenticate: Digest realm=\"" REALM "\", nonce=\"%s\", qop=\"auth\", "
		 "algorithm=SHA-256\r\n"
		 "WWW-Authenticate: Digest realm=\"" REALM "\", nonce=\"%s\", qop=\"auth\", "
		 "algorithm=MD5\r\n",
		 nonce, nonce);
	assert_string_equal(buf_cstr(&b), expect);

	buf_reset(&b);
	auth_challenge(f->a, f->h, &b, true, SV("a\"b"), true, NOW);
	nonce_of(&b, nonce, sizeof(nonce));
	snprintf(expect, sizeof(expect),
		 "Proxy-Authenticate: Digest realm=\"a\\\"b\", nonce=\"%s\", qop=\"auth\", "
		 "algorithm=SHA-256, stale=true\r\n",
		 nonce);
	assert_memory_equal(buf_cstr(&b), expect, strlen(expect));
	buf_free(&b);
}

static void roundtrip(struct fixture *f, enum auth_alg alg)
{
	char nonce[64], ha1[65], bad_ha1[65];
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, alg, USER, REALM, PASSWORD, ha1);
	ha1_of(f->h, alg, USER, REALM, "wrong", bad_ha1);

	c = client_for(alg, nonce, "00000001");
	assert_int_equal(verify(f, &c, ha1, NOW + 1), AUTH_OK);
	assert_int_equal(verify(f, &c, ha1, NOW + 1), AUTH_REPLAY);
	c.nc = "00000003";
	assert_int_equal(verify(f, &c, ha1, NOW + 2), AUTH_OK);
	c.nc = "00000002"; /* behind the last one seen */
	assert_int_equal(verify(f, &c, ha1, NOW + 2), AUTH_REPLAY);

	c.nc = "00000004";
	c.password = "wrong";
	assert_int_equal(verify(f, &c, ha1, NOW + 3), AUTH_FAILED);
	assert_int_equal(verify(f, &c, bad_ha1, NOW + 3), AUTH_OK); /* the password it used */
	c.password = PASSWORD;
	c.nc = "00000005";
	assert_int_equal(verify(f, &c, NULL, NOW + 3), AUTH_FAILED);
	assert_int_equal(verify(f, &c, "", NOW + 3), AUTH_FAILED);
	assert_int_equal(verify(f, &c, ha1, NOW + 3), AUTH_OK);
}

static void test_roundtrip_md5(void **state)
{
	roundtrip(*state, AUTH_ALG_MD5);
}

static void test_roundtrip_sha256(void **state)
{
	roundtrip(*state, AUTH_ALG_SHA256);
}

/* Upper-case hex from a client, in nc and response, is still hex. */
static void test_uppercase_hex(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65], hdr[1024];
	struct auth_cred cred;
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "0000000A");
	client_header(f->h, &c, hdr, sizeof(hdr));
	for (char *p = strstr(hdr, "response=\"") + 10; *p != '"'; p++)
		*p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
	assert_int_equal(auth_cred_parse(sv_cstr(hdr), &cred), 0);
	assert_int_equal(auth_verify(f->a, f->h, &cred, SV("REGISTER"), ha1, NOW), AUTH_OK);
}

static void test_tampered_nonce(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65];
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	nonce[3] = nonce[3] == 'A' ? 'B' : 'A';
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);

	c.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093"; /* foreign, wrong length */
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.nonce = "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; /* right length, not base64url */
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
}

/* Same secret, another server instance: the MAC is fine, the slot is not. */
static void test_foreign_secret_and_restart(void **state)
{
	struct fixture *f = *state;
	static const enum auth_alg md5 = AUTH_ALG_MD5;
	static const unsigned char other[] = "another secret";
	static const unsigned char same[] = "unit-test secret";
	char nonce[64], ha1[65];
	struct fixture g = {.h = f->h};
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");

	assert_int_equal(auth_create(other, sizeof(other) - 1, TTL, &md5, 1, &g.a), 0);
	assert_int_equal(verify(&g, &c, ha1, NOW), AUTH_FAILED);
	auth_destroy(g.a);

	assert_int_equal(auth_create(same, sizeof(same) - 1, TTL, &md5, 1, &g.a), 0);
	assert_int_equal(verify(&g, &c, ha1, NOW), AUTH_STALE);
	auth_destroy(g.a);
}

static void test_stale_time(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65];
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_SHA256, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_SHA256, nonce, "00000001");
	assert_int_equal(verify(f, &c, ha1, NOW + TTL + 1), AUTH_STALE);
	assert_int_equal(verify(f, &c, ha1, NOW - 5), AUTH_STALE); /* clock stepped back */
	c.password = "wrong";
	assert_int_equal(verify(f, &c, ha1, NOW + TTL + 1), AUTH_FAILED);
	c.password = PASSWORD;
	assert_int_equal(verify(f, &c, ha1, NOW + TTL), AUTH_OK); /* the last good second */
}

static void test_algorithm_refused(void **state)
{
	struct fixture *f = *state;
	static const enum auth_alg sha_only = AUTH_ALG_SHA256;
	char nonce[64], ha1[65];
	struct fixture g = {.h = f->h};
	struct client c;

	assert_int_equal(auth_create(NULL, 0, TTL, &sha_only, 1, &g.a), 0);
	fresh_nonce(&g, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");
	assert_int_equal(verify(&g, &c, ha1, NOW), AUTH_FAILED);
	c.alg_param = "MD5";
	assert_int_equal(verify(&g, &c, ha1, NOW), AUTH_FAILED);
	auth_destroy(g.a);

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	c.nonce = nonce;
	c.alg_param = "MD5-sess";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.alg_param = "SHA-512-256";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.alg_param = "\"\"";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.alg_param = "\"md5\""; /* quoted and lower-case, still MD5 */
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_OK);
}

static void test_qop_refused(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65];
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");
	c.qop = NULL; /* RFC 2069 response, correct but without qop */
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.qop = "auth-int";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.qop = "auth";
	c.nc = "1"; /* not 8 hex digits */
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.nc = "0000000g";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_FAILED);
	c.nc = "00000001";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_OK);
}

static void test_missing_cnonce(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65], hdr[1024];
	struct auth_cred cred;
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");
	client_header(f->h, &c, hdr, sizeof(hdr));
	assert_int_equal(auth_cred_parse(sv_cstr(hdr), &cred), 0);
	cred.cnonce = SV_NULL;
	assert_int_equal(auth_verify(f->a, f->h, &cred, SV("REGISTER"), ha1, NOW), AUTH_FAILED);
	/* the method is part of the response */
	assert_int_equal(auth_cred_parse(sv_cstr(hdr), &cred), 0);
	assert_int_equal(auth_verify(f->a, f->h, &cred, SV("INVITE"), ha1, NOW), AUTH_FAILED);
	assert_int_equal(auth_verify(f->a, f->h, &cred, SV("REGISTER"), ha1, NOW), AUTH_OK);
}

/* A nonce whose slot a million newer challenges have reused is stale. */
static void test_slot_reuse(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65], storage[1024];
	struct buf b;
	struct client c;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	c = client_for(AUTH_ALG_MD5, nonce, "00000001");
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_OK);
	for (unsigned i = 0; i < NC_SLOTS; i++) {
		buf_init_fixed(&b, storage, sizeof(storage));
		auth_challenge(f->a, f->h, &b, false, SV(REALM), false, NOW);
	}
	assert_int_equal(b.err, 0);
	c.nc = "00000002";
	assert_int_equal(verify(f, &c, ha1, NOW), AUTH_STALE);
}

/*
 * Concurrency: two workers racing on one nonce never both accept one nc.
 */

#define RACE_NC 2000

struct race {
	struct auth *a;
	struct auth_cred *cred; /* RACE_NC credentials, nc 1..RACE_NC */
	const char *ha1;
	_Atomic int ok[RACE_NC];
	_Atomic int replay;
};

static void *race_worker(void *arg)
{
	struct race *r = arg;
	struct auth_hasher *h;

	if (auth_hasher_create(&h))
		return NULL;
	for (int i = 0; i < RACE_NC; i++) {
		enum auth_result res =
		    auth_verify(r->a, h, &r->cred[i], SV("REGISTER"), r->ha1, NOW);
		if (res == AUTH_OK)
			atomic_fetch_add(&r->ok[i], 1);
		else if (res == AUTH_REPLAY)
			atomic_fetch_add(&r->replay, 1);
	}
	auth_hasher_destroy(h);
	return NULL;
}

static void test_nc_race(void **state)
{
	struct fixture *f = *state;
	char nonce[64], ha1[65], (*hdr)[512] = calloc(RACE_NC, sizeof(*hdr));
	struct race *r = calloc(1, sizeof(*r));
	pthread_t t[2];
	int total = 0;

	assert_non_null(hdr);
	assert_non_null(r);
	r->cred = calloc(RACE_NC, sizeof(*r->cred));
	assert_non_null(r->cred);
	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, AUTH_ALG_MD5, USER, REALM, PASSWORD, ha1);
	for (int i = 0; i < RACE_NC; i++) {
		char nc[9];
		snprintf(nc, sizeof(nc), "%08x", i + 1);
		struct client c = client_for(AUTH_ALG_MD5, nonce, nc);
		client_header(f->h, &c, hdr[i], sizeof(hdr[i]));
		assert_int_equal(auth_cred_parse(sv_cstr(hdr[i]), &r->cred[i]), 0);
	}
	r->a = f->a;
	r->ha1 = ha1;
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_worker, r), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACE_NC; i++) {
		assert_true(r->ok[i] <= 1);
		total += r->ok[i];
	}
	assert_int_equal(total + r->replay, 2 * RACE_NC);
	assert_true(total >= 1);
	free(r->cred);
	free(r);
	free(hdr);
}

static void test_create_errors(void **state)
{
	static const enum auth_alg dup[] = {AUTH_ALG_MD5, AUTH_ALG_MD5};
	static const enum auth_alg bad[] = {AUTH_ALG_COUNT};
	static const enum auth_alg both[] = {AUTH_ALG_MD5, AUTH_ALG_SHA256};
	static const unsigned char long_secret[100] = {1, 2, 3};
	struct auth *a = NULL;

	(void)state;
	assert_int_equal(auth_create(NULL, 0, TTL, both, 0, &a), EINVAL);
	assert_int_equal(auth_create(NULL, 0, TTL, NULL, 1, &a), EINVAL);
	assert_int_equal(auth_create(NULL, 0, TTL, dup, 2, &a), EINVAL);
	assert_int_equal(auth_create(NULL, 0, TTL, bad, 1, &a), EINVAL);
	assert_null(a);
	assert_int_equal(auth_create(long_secret, sizeof(long_secret), TTL, both, 2, &a), 0);
	auth_destroy(a);
	auth_destroy(NULL);
	auth_hasher_destroy(NULL);
}

/*
 * Credentials parsing
 */

static void assert_sv(sv_t v, const char *s)
{
	assert_int_equal(v.len, strlen(s));
	assert_memory_equal(v.p, s, v.len);
}

static void test_cred_parse_lws(void **state)
{
	struct auth_cred c;
	/* folded lines, tabs, LWS on both sides of '=' and ',', mixed case names */
	static const char hdr[] = "dIgEsT\r\n  username = \"bob\" ,realm=\"Example.COM\"\r\n\t,"
				  "  NONCE\t=\t\"abc, def\",uri=\"sip:x@y;transport=tcp\" , "
				  "response=\"0123\"\r\n ,\r\n  qop = auth ,nc=00000001 ,cnonce=c1,"
				  "algorithm=SHA-256,opaque=\"\",foo=\"bar\", baz=qux";

	(void)state;
	assert_int_equal(auth_cred_parse(SV(hdr), &c), 0);
	assert_sv(c.username, "bob");
	assert_sv(c.realm, "Example.COM");
	assert_sv(c.nonce, "abc, def");
	assert_sv(c.uri, "sip:x@y;transport=tcp");
	assert_sv(c.response, "0123");
	assert_sv(c.qop, "auth");
	assert_sv(c.nc, "00000001");
	assert_sv(c.cnonce, "c1");
	assert_sv(c.algorithm, "SHA-256");
	assert_sv(c.opaque, "");
	assert_true(c.alg_known);
	assert_int_equal(c.alg, AUTH_ALG_SHA256);
}

static void test_cred_parse_values(void **state)
{
	struct auth_cred c;

	(void)state;
	/* no algorithm: MD5; escapes stay raw inside a quoted value */
	assert_int_equal(auth_cred_parse(SV("Digest username=\"a\\\"b\", realm=r, nonce=n, "
					    "uri=u, response=\"r\""),
					 &c),
			 0);
	assert_sv(c.username, "a\\\"b");
	assert_sv(c.realm, "r");
	assert_true(c.alg_known);
	assert_int_equal(c.alg, AUTH_ALG_MD5);
	assert_true(sv_empty(c.qop));

	assert_int_equal(auth_cred_parse(SV("Digest username=a, realm=r, nonce=n, uri=u, "
					    "response=r, algorithm=MD5-sess"),
					 &c),
			 0);
	assert_false(c.alg_known);
	assert_int_equal(auth_cred_parse(SV("Digest username=a, realm=r, nonce=n, uri=u, "
					    "response=r, algorithm=\"md5\","),
					 &c),
			 0);
	assert_true(c.alg_known);
	assert_int_equal(c.alg, AUTH_ALG_MD5);
}

static void test_cred_parse_errors(void **state)
{
	static const char *const einval[] = {
	    "Digest",
	    "Digest ",
	    "Digest realm=r, nonce=n, uri=u, response=r",      /* no username */
	    "Digest username=a, nonce=n, uri=u, response=r",   /* no realm */
	    "Digest username=a, realm=r, uri=u, response=r",   /* no nonce */
	    "Digest username=a, realm=r, nonce=n, response=r", /* no uri */
	    "Digest username=a, realm=r, nonce=n, uri=u",      /* no response */
	    "Digest username=a, username=b, realm=r, nonce=n, uri=u, response=r",
	    "Digest username=a, realm=r, nonce=n, uri=u, response=r, NC=1, nc=2",
	    "Digest username=\"a, realm=r, nonce=n, uri=u, response=r", /* open quote */
	    "Digest username=a realm=r, nonce=n, uri=u, response=r",	/* no comma */
	    "Digest username=, realm=r, nonce=n, uri=u, response=r",
	    "Digest =a, realm=r, nonce=n, uri=u, response=r",
	    "Digest username, realm=r, nonce=n, uri=u, response=r",
	    "Digest,username=a, realm=r, nonce=n, uri=u, response=r",
	};
	static const char *const enotsup[] = {
	    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
	    "Digestive username=a, realm=r, nonce=n, uri=u, response=r",
	    "",
	};
	struct auth_cred c;

	(void)state;
	for (size_t i = 0; i < sizeof(einval) / sizeof(einval[0]); i++) {
		if (auth_cred_parse(sv_cstr(einval[i]), &c) != EINVAL)
			fail_msg("not EINVAL: %s", einval[i]);
	}
	for (size_t i = 0; i < sizeof(enotsup) / sizeof(enotsup[0]); i++)
		assert_int_equal(auth_cred_parse(sv_cstr(enotsup[i]), &c), ENOTSUP);
}

#define MSG_HEAD                                                                                   \
	"REGISTER sip:example.com SIP/2.0\r\n"                                                     \
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"                              \
	"Max-Forwards: 70\r\n"                                                                     \
	"To: <sip:alice@example.com>\r\n"                                                          \
	"From: <sip:alice@example.com>;tag=1928301774\r\n"                                         \
	"Call-ID: a84b4c76e66710\r\n"                                                              \
	"CSeq: 2 REGISTER\r\n"

static int find_in(const char *text, sv_t realm, struct auth_cred *c)
{
	struct sip_msg m;
	int rc;

	memset(&m, 0, sizeof(m)); /* sip_parse frees a spilled index of a previous parse */
	assert_int_equal(sip_parse(&m, text, strlen(text), 0), 0);
	rc = auth_find_cred(&m, SIP_H_PROXY_AUTHORIZATION, realm, c);
	sip_msg_release(&m);
	return rc;
}

static void test_find_cred(void **state)
{
	static const char two[] =
	    MSG_HEAD "Proxy-Authorization: Digest username=\"alice\", realm=\"other.org\", "
		     "nonce=\"n1\", uri=\"sip:example.com\", response=\"r1\"\r\n"
		     "Authorization: Digest username=\"x\", realm=\"example.com\", "
		     "nonce=\"n0\", uri=\"sip:example.com\", response=\"r0\"\r\n"
		     "Proxy-Authorization: Basic YWxpY2U6cGFzcw==\r\n"
		     "Proxy-Authorization: Digest username=\"alice\",\r\n realm=\"example.com\", "
		     "nonce=\"n2\",\r\n\turi=\"sip:example.com\", response=\"r2\"\r\n"
		     "Content-Length: 0\r\n\r\n";
	static const char bad_ours[] =
	    MSG_HEAD "Proxy-Authorization: Digest username=\"alice\", realm=\"other.org\", "
		     "nonce=\"n1\", uri=\"sip:example.com\", response=\"r1\"\r\n"
		     "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", "
		     "nonce=\"n2\", uri=\"sip:example.com\"\r\n"
		     "Content-Length: 0\r\n\r\n";
	static const char bad_theirs[] =
	    MSG_HEAD "Proxy-Authorization: Digest realm=\"other.org\", nonce=n1\r\n"
		     "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", "
		     "nonce=\"n2\", uri=\"sip:example.com\", response=\"r2\"\r\n"
		     "Content-Length: 0\r\n\r\n";
	static const char none[] = MSG_HEAD "Content-Length: 0\r\n\r\n";
	struct auth_cred c;

	(void)state;
	assert_int_equal(find_in(two, SV("example.com"), &c), 0);
	assert_sv(c.nonce, "n2");
	assert_sv(c.response, "r2");
	assert_int_equal(find_in(two, SV("OTHER.org"), &c), 0);
	assert_sv(c.nonce, "n1");
	assert_int_equal(find_in(two, SV("third.net"), &c), ENOENT);
	assert_int_equal(find_in(bad_ours, SV("example.com"), &c), EINVAL);
	assert_int_equal(find_in(bad_ours, SV("other.org"), &c), 0);
	assert_int_equal(find_in(bad_theirs, SV("example.com"), &c), 0);
	assert_sv(c.nonce, "n2");
	assert_int_equal(find_in(none, SV("example.com"), &c), ENOENT);
}

/*
 * Micro-benchmark (printed, not asserted)
 */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void bench_alg(struct fixture *f, enum auth_alg alg, const char *name)
{
	char nonce[64], ha1[65], hdr[1024], (*nc)[9] = malloc(BENCH_ITERS * sizeof(*nc));
	char(*resp)[65] = malloc(BENCH_ITERS * sizeof(*resp));
	struct auth_cred cred;
	struct client c;
	double t0;
	int ok = 0;

	assert_non_null(nc);
	assert_non_null(resp);
	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	ha1_of(f->h, alg, USER, REALM, PASSWORD, ha1);
	c = client_for(alg, nonce, "00000001");
	client_header(f->h, &c, hdr, sizeof(hdr));
	assert_int_equal(auth_cred_parse(sv_cstr(hdr), &cred), 0);
	for (int i = 0; i < BENCH_ITERS; i++) {
		snprintf(nc[i], sizeof(nc[i]), "%08x", i + 1);
		auth_response_hex(f->h, alg, ha1, cred.nonce, sv_cstr(nc[i]), cred.cnonce, cred.qop,
				  SV("REGISTER"), cred.uri, resp[i]);
	}
	t0 = now_ns();
	for (int i = 0; i < BENCH_ITERS; i++) {
		cred.nc = sv_make(nc[i], 8);
		cred.response = sv_make(resp[i], strlen(resp[i]));
		ok += auth_verify(f->a, f->h, &cred, SV("REGISTER"), ha1, NOW) == AUTH_OK;
	}
	print_message("auth_verify %-7s: %.0f ns/verify (%d iterations)\n", name,
		      (now_ns() - t0) / BENCH_ITERS, BENCH_ITERS);
	assert_int_equal(ok, BENCH_ITERS);
	free(nc);
	free(resp);
}

static void bench_parse(struct fixture *f)
{
	char nonce[64], hdr[1024];
	struct auth_cred cred;
	struct client c;
	double t0;
	int ok = 0;

	fresh_nonce(f, NOW, nonce, sizeof(nonce));
	c = client_for(AUTH_ALG_SHA256, nonce, "00000001");
	client_header(f->h, &c, hdr, sizeof(hdr));
	t0 = now_ns();
	for (int i = 0; i < BENCH_ITERS; i++)
		ok += auth_cred_parse(sv_cstr(hdr), &cred) == 0;
	print_message("auth_cred_parse   : %.0f ns/parse\n", (now_ns() - t0) / BENCH_ITERS);
	assert_int_equal(ok, BENCH_ITERS);
}

/*
 * The digest uri must name the Request-URI (RFC 3261 22.4, RFC 7616 3.4.6):
 * the same string, or equal sip:/sips: URIs (19.1.4: scheme and host case,
 * parameter order, parameters present on one side only); anything else,
 * including an empty uri, does not match.
 */
static void test_uri_matches(void **state)
{
	static const struct {
		const char *cred, *ruri;
		bool match;
	} cases[] = {
	    {"sip:bob@example.com", "sip:bob@example.com", true},
	    {"SIP:bob@EXAMPLE.com", "sip:bob@example.com", true},
	    {"sip:bob@example.com;transport=udp;lr", "sip:bob@example.com;lr;transport=UDP", true},
	    {"sip:bob@example.com;foo=1", "sip:bob@example.com", true}, /* 19.1.4: one side only */
	    {"sip:%62ob@example.com", "sip:bob@example.com", true},
	    {"tel:+15551234", "tel:+15551234", true}, /* same string */
	    {"urn:x:y", "urn:x:y", true},
	    /* another target: the attack */
	    {"sip:bob@example.com", "sip:0044123456@example.com", false},
	    {"sip:bob@example.com", "sip:bob@evil.example", false},
	    {"sip:bob@example.com", "sip:bob@example.com:5070", false},
	    {"sip:bob@example.com", "sips:bob@example.com", false},
	    {"sip:Bob@example.com", "sip:bob@example.com", false}, /* user part is case-sensitive */
	    {"sip:bob@example.com;transport=tcp", "sip:bob@example.com", false},
	    {"sip:bob@example.com;user=phone", "sip:bob@example.com", false},
	    {"tel:+15551234", "sip:+15551234@example.com", false},
	    {"TEL:+15551234", "tel:+15551234", false}, /* not sip: compared as strings only */
	    {"", "sip:bob@example.com", false},
	    {"sip:", "sip:bob@example.com", false},
	    {"*", "sip:bob@example.com", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (auth_uri_matches(sv_cstr(cases[i].cred), sv_cstr(cases[i].ruri)) !=
		    cases[i].match)
			fail_msg("uri '%s' against '%s': expected %s", cases[i].cred, cases[i].ruri,
				 cases[i].match ? "a match" : "no match");
	}
}

static void test_bench(void **state)
{
	bench_alg(*state, AUTH_ALG_MD5, "MD5");
	bench_alg(*state, AUTH_ALG_SHA256, "SHA-256");
	bench_parse(*state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rfc2617_vector, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rfc7616_sha256_vector, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hash_hex, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_challenge_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roundtrip_md5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_roundtrip_sha256, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_uppercase_hex, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tampered_nonce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_secret_and_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_algorithm_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_qop_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_cnonce, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slot_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nc_race, setup, teardown),
	    cmocka_unit_test(test_create_errors),
	    cmocka_unit_test(test_cred_parse_lws),
	    cmocka_unit_test(test_cred_parse_values),
	    cmocka_unit_test(test_cred_parse_errors),
	    cmocka_unit_test(test_find_cred),
	    cmocka_unit_test(test_uri_matches),
	    cmocka_unit_test_setup_teardown(test_bench, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
