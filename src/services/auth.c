/*
 * auth.c - SIP digest authentication with stateless nonces (see auth.h).
 *
 * Every REGISTER and INVITE goes through auth_verify, so the hot path does
 * no allocation of its own: a worker's struct auth_hasher keeps one fetched
 * EVP_MD and one EVP_MD_CTX per algorithm, re-initialised for each digest,
 * and the nonce HMAC is computed from key blocks (K ^ ipad, K ^ opad)
 * prepared once in struct auth. One context per algorithm rather than one
 * shared: OpenSSL 3.1+ keeps the provider context when the digest does not
 * change, so nothing is allocated at all (3.0 still reallocates it inside
 * EVP_DigestInit_ex2, which we cannot avoid through EVP).
 *
 * Nonce: base64url(time[4] || index[4] || HMAC-SHA-256(secret, time||index)[0..16]),
 * 32 token characters. The index selects a slot of the nonce-count table,
 * whose 64-bit value is (index << 32) | last nc, so one compare-and-swap both
 * checks that the slot still belongs to this nonce and advances its count.
 */
#include "services/auth.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* 2^20 slots (8 MiB of calloc'd, lazily touched memory): a nonce survives
 * a million newer challenges before its slot is reused and it turns stale. */
#define AUTH_NC_BITS  20
#define AUTH_NC_SLOTS (1u << AUTH_NC_BITS)
#define AUTH_NC_MASK  (AUTH_NC_SLOTS - 1)
/* the table comes zeroed from calloc: all-zero bytes must be a valid atomic 0 */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && sizeof(_Atomic uint64_t) == sizeof(uint64_t),
	       "the nonce-count table needs lock-free 64-bit atomics");

#define AUTH_HMAC_BLOCK 64 /* SHA-256 block size */
#define AUTH_MAC_LEN	16 /* truncated HMAC carried in the nonce */
#define AUTH_NONCE_RAW	(4 + 4 + AUTH_MAC_LEN)
#define AUTH_NONCE_LEN	(AUTH_NONCE_RAW / 3 * 4) /* base64url, no padding needed */
#define AUTH_HEX_MAX	64

struct auth {
	unsigned char ipad[AUTH_HMAC_BLOCK]; /* secret ^ 0x36, the HMAC inner key block */
	unsigned char opad[AUTH_HMAC_BLOCK]; /* secret ^ 0x5c, the outer one */
	unsigned ttl;
	enum auth_alg algs[AUTH_ALG_COUNT];
	size_t nalgs;
	_Atomic uint32_t next_index;
	_Atomic uint64_t *nc; /* AUTH_NC_SLOTS slots of (index << 32) | last nc */
};

struct auth_hasher {
	EVP_MD *md[AUTH_ALG_COUNT];
	EVP_MD_CTX *ctx[AUTH_ALG_COUNT];
};

struct auth_nonce {
	uint32_t issued;
	uint32_t index;
};

static const char *const auth_alg_fetch_name[AUTH_ALG_COUNT] = {"MD5", "SHA256"};
static const char *const auth_alg_name[AUTH_ALG_COUNT] = {"MD5", "SHA-256"};
static const size_t auth_alg_hexlen[AUTH_ALG_COUNT] = {32, 64};

/*
 * Hashing
 */

/* One digest in progress; ok drops to false on the first OpenSSL failure so
 * callers can feed all pieces and check once. */
struct auth_run {
	EVP_MD_CTX *ctx;
	bool ok;
};

static struct auth_run auth_run_begin(struct auth_hasher *h, enum auth_alg alg)
{
	struct auth_run r = {h->ctx[alg], true};

	r.ok = EVP_DigestInit_ex2(r.ctx, h->md[alg], NULL) == 1;
	return r;
}

static void auth_run_add(struct auth_run *r, const void *p, size_t n)
{
	if (r->ok && n)
		r->ok = EVP_DigestUpdate(r->ctx, p, n) == 1;
}

static void auth_run_sv(struct auth_run *r, sv_t v)
{
	auth_run_add(r, v.p, v.len);
}

static void auth_run_colon(struct auth_run *r)
{
	auth_run_add(r, ":", 1);
}

static bool auth_run_end(struct auth_run *r, unsigned char *md)
{
	unsigned n;

	if (r->ok)
		r->ok = EVP_DigestFinal_ex(r->ctx, md, &n) == 1;
	return r->ok;
}

static void auth_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void auth_run_end_hex(struct auth_run *r, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	int n = EVP_MD_CTX_get_size(r->ctx);

	out[0] = '\0';
	if (auth_run_end(r, md) && n > 0 && n <= AUTH_HEX_MAX / 2)
		auth_hex(md, (size_t)n, out);
}

void auth_hash_hex(struct auth_hasher *h, enum auth_alg alg, const void *data, size_t len,
		   char *out)
{
	struct auth_run r = auth_run_begin(h, alg);

	auth_run_add(&r, data, len);
	auth_run_end_hex(&r, out);
}

void auth_response_hex(struct auth_hasher *h, enum auth_alg alg, const char *ha1, sv_t nonce,
		       sv_t nc, sv_t cnonce, sv_t qop, sv_t method, sv_t uri, char *out)
{
	char ha2[AUTH_HEX_MAX + 1];
	struct auth_run r = auth_run_begin(h, alg);

	auth_run_sv(&r, method);
	auth_run_colon(&r);
	auth_run_sv(&r, uri);
	auth_run_end_hex(&r, ha2);

	r = auth_run_begin(h, alg);
	auth_run_add(&r, ha1, strlen(ha1));
	auth_run_colon(&r);
	auth_run_sv(&r, nonce);
	auth_run_colon(&r);
	if (!sv_empty(qop)) {
		auth_run_sv(&r, nc);
		auth_run_colon(&r);
		auth_run_sv(&r, cnonce);
		auth_run_colon(&r);
		auth_run_sv(&r, qop);
		auth_run_colon(&r);
	}
	auth_run_add(&r, ha2, strlen(ha2));
	auth_run_end_hex(&r, out);
	if (ha2[0] == '\0')
		out[0] = '\0';
}

/* HMAC-SHA-256 by its definition, H(K^opad || H(K^ipad || msg)), with the
 * key blocks prepared at auth_create: no keyed context to keep per hasher. */
static bool auth_hmac(const struct auth *a, struct auth_hasher *h, const void *msg, size_t len,
		      unsigned char *mac)
{
	unsigned char inner[32];
	struct auth_run r = auth_run_begin(h, AUTH_ALG_SHA256);

	auth_run_add(&r, a->ipad, sizeof(a->ipad));
	auth_run_add(&r, msg, len);
	if (!auth_run_end(&r, inner))
		return false;
	r = auth_run_begin(h, AUTH_ALG_SHA256);
	auth_run_add(&r, a->opad, sizeof(a->opad));
	auth_run_add(&r, inner, sizeof(inner));
	return auth_run_end(&r, mac);
}

int auth_hasher_create(struct auth_hasher **out)
{
	struct auth_hasher *h = calloc(1, sizeof(*h));
	int rc = ENOMEM;

	if (!h)
		goto out;
	for (int i = 0; i < AUTH_ALG_COUNT; i++) {
		h->md[i] = EVP_MD_fetch(NULL, auth_alg_fetch_name[i], NULL);
		h->ctx[i] = EVP_MD_CTX_new();
		if (!h->md[i] || !h->ctx[i]) {
			rc = h->md[i] ? ENOMEM : ENOTSUP;
			goto out;
		}
	}
	*out = h;
	h = NULL;
	rc = 0;
out:
	auth_hasher_destroy(h);
	return rc;
}

void auth_hasher_destroy(struct auth_hasher *h)
{
	if (!h)
		return;
	for (int i = 0; i < AUTH_ALG_COUNT; i++) {
		EVP_MD_CTX_free(h->ctx[i]);
		EVP_MD_free(h->md[i]);
	}
	free(h);
}

/*
 * Server state
 */

static int auth_check_algs(const enum auth_alg *algs, size_t nalgs)
{
	unsigned seen = 0;

	if (!algs || nalgs == 0 || nalgs > AUTH_ALG_COUNT)
		return EINVAL;
	for (size_t i = 0; i < nalgs; i++) {
		if ((unsigned)algs[i] >= AUTH_ALG_COUNT || (seen & (1u << algs[i])))
			return EINVAL;
		seen |= 1u << algs[i];
	}
	return 0;
}

/* RFC 2104: a key longer than a block is hashed first, a shorter one zero-padded. */
static int auth_set_key(struct auth *a, const unsigned char *secret, size_t len)
{
	unsigned char key[AUTH_HMAC_BLOCK] = {0};
	unsigned n;
	int rc = 0;

	if (!secret || len == 0) {
		if (RAND_bytes(key, 32) != 1)
			rc = EIO;
	} else if (len > sizeof(key)) {
		if (EVP_Digest(secret, len, key, &n, EVP_sha256(), NULL) != 1)
			rc = EIO;
	} else {
		memcpy(key, secret, len);
	}
	for (size_t i = 0; i < sizeof(key); i++) {
		a->ipad[i] = key[i] ^ 0x36;
		a->opad[i] = key[i] ^ 0x5c;
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int auth_create(const unsigned char *secret, size_t secret_len, unsigned nonce_ttl_s,
		const enum auth_alg *algs, size_t nalgs, struct auth **out)
{
	struct auth *a = NULL;
	uint32_t start;
	int rc = auth_check_algs(algs, nalgs);

	if (rc)
		goto out;
	rc = ENOMEM;
	a = calloc(1, sizeof(*a));
	if (!a)
		goto out;
	/* calloc: zero pages are only touched when a slot is first written */
	a->nc = calloc(AUTH_NC_SLOTS, sizeof(*a->nc));
	if (!a->nc)
		goto out;
	rc = auth_set_key(a, secret, secret_len);
	if (rc)
		goto out;
	/* a random first index keeps a restarted server with the same secret
	 * from handing out the indexes (and slots) of its previous life */
	rc = RAND_bytes((unsigned char *)&start, sizeof(start)) == 1 ? 0 : EIO;
	if (rc)
		goto out;
	atomic_init(&a->next_index, start);
	a->ttl = nonce_ttl_s;
	memcpy(a->algs, algs, nalgs * sizeof(*algs));
	a->nalgs = nalgs;
	*out = a;
	a = NULL;
out:
	auth_destroy(a);
	return rc;
}

void auth_destroy(struct auth *a)
{
	if (!a)
		return;
	OPENSSL_cleanse(a->ipad, sizeof(a->ipad));
	OPENSSL_cleanse(a->opad, sizeof(a->opad));
	free(a->nc);
	free(a);
}

static bool auth_offers(const struct auth *a, enum auth_alg alg)
{
	for (size_t i = 0; i < a->nalgs; i++) {
		if (a->algs[i] == alg)
			return true;
	}
	return false;
}

/*
 * Nonces
 */

static const char auth_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int auth_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	return c == '_' ? 63 : -1;
}

/* n must be a multiple of 3: the nonce is, so there is never padding. */
static void auth_b64_encode(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i += 3, out += 4) {
		uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[0] = auth_b64[w >> 18];
		out[1] = auth_b64[(w >> 12) & 63];
		out[2] = auth_b64[(w >> 6) & 63];
		out[3] = auth_b64[w & 63];
	}
	*out = '\0';
}

/* Decodes exactly AUTH_NONCE_LEN characters into AUTH_NONCE_RAW bytes. */
static bool auth_b64_decode(sv_t v, unsigned char *out)
{
	if (v.len != AUTH_NONCE_LEN)
		return false;
	for (size_t i = 0; i < v.len; i += 4, out += 3) {
		uint32_t w = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = auth_b64_value(v.p[i + j]);
			if (d < 0)
				return false;
			w = w << 6 | (uint32_t)d;
		}
		out[0] = (unsigned char)(w >> 16);
		out[1] = (unsigned char)(w >> 8);
		out[2] = (unsigned char)w;
	}
	return true;
}

static void auth_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t auth_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool auth_nonce_make(const struct auth *a, struct auth_hasher *h, struct auth_nonce n,
			    char *out)
{
	unsigned char raw[AUTH_NONCE_RAW], mac[32];

	auth_put32(raw, n.issued);
	auth_put32(raw + 4, n.index);
	if (!auth_hmac(a, h, raw, 8, mac))
		return false;
	memcpy(raw + 8, mac, AUTH_MAC_LEN);
	auth_b64_encode(raw, sizeof(raw), out);
	return true;
}

/* False for anything we did not issue: garbled, foreign or forged. */
static bool auth_nonce_open(const struct auth *a, struct auth_hasher *h, sv_t v,
			    struct auth_nonce *n)
{
	unsigned char raw[AUTH_NONCE_RAW], mac[32];

	if (!auth_b64_decode(v, raw) || !auth_hmac(a, h, raw, 8, mac))
		return false;
	if (CRYPTO_memcmp(mac, raw + 8, AUTH_MAC_LEN) != 0)
		return false;
	n->issued = auth_get32(raw);
	n->index = auth_get32(raw + 4);
	return true;
}

/* Index 0 is never handed out: an untouched (zero) slot then matches no nonce. */
static uint32_t auth_next_index(struct auth *a)
{
	uint32_t i;

	do
		i = atomic_fetch_add_explicit(&a->next_index, 1, memory_order_relaxed);
	while (i == 0);
	return i;
}

/*
 * Challenges
 */

/* The realm goes inside a quoted-string: escape what would end it and drop
 * control characters, so an odd realm can never break the header. */
static void auth_append_quoted(struct buf *out, sv_t v)
{
	buf_append_char(out, '"');
	for (size_t i = 0; i < v.len; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == '"' || c == '\\')
			buf_append_char(out, '\\');
		buf_append_char(out, (char)c);
	}
	buf_append_char(out, '"');
}

static void auth_append_line(struct buf *out, bool proxy, sv_t realm, const char *nonce,
			     enum auth_alg alg, bool stale)
{
	buf_append_str(out, proxy ? "Proxy-Authenticate: Digest realm="
				  : "WWW-Authenticate: Digest realm=");
	auth_append_quoted(out, realm);
	buf_append_str(out, ", nonce=\"");
	buf_append_str(out, nonce);
	buf_append_str(out, "\", qop=\"auth\", algorithm=");
	buf_append_str(out, auth_alg_name[alg]);
	if (stale)
		buf_append_str(out, ", stale=true");
	buf_append(out, "\r\n", 2);
}

void auth_challenge(struct auth *a, struct auth_hasher *h, struct buf *out, bool proxy, sv_t realm,
		    bool stale, time_t now)
{
	auth_challenge_for(a, h, out, proxy, realm, stale, now, ~0u);
}

void auth_challenge_for(struct auth *a, struct auth_hasher *h, struct buf *out, bool proxy,
			sv_t realm, bool stale, time_t now, unsigned alg_mask)
{
	bool any = false;
	struct auth_nonce n = {(uint32_t)now, auth_next_index(a)};
	char nonce[AUTH_NONCE_LEN + 1];

	if (!auth_nonce_make(a, h, n, nonce)) {
		if (!out->err)
			out->err = EIO;
		return;
	}
	atomic_store_explicit(&a->nc[n.index & AUTH_NC_MASK], (uint64_t)n.index << 32,
			      memory_order_release);
	for (size_t i = 0; i < a->nalgs; i++)
		any |= (alg_mask >> a->algs[i]) & 1;
	for (size_t i = 0; i < a->nalgs; i++) {
		if (!any || ((alg_mask >> a->algs[i]) & 1))
			auth_append_line(out, proxy, realm, nonce, a->algs[i], stale);
	}
}

/*
 * Verification
 */

/* Exactly 8 hex digits, as RFC 2617 writes nc-value. */
static bool auth_parse_nc(sv_t v, uint32_t *out)
{
	uint32_t n = 0;

	if (v.len != 8)
		return false;
	for (size_t i = 0; i < 8; i++) {
		char c = sv_lower_char(v.p[i]);
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (uint32_t)(c - 'a' + 10);
		else
			return false;
		n = n << 4 | d;
	}
	*out = n;
	return true;
}

/* What can be refused before any hashing; none of it depends on the user. */
static bool auth_cred_usable(const struct auth *a, const struct auth_cred *c, uint32_t *nc)
{
	return c->alg_known && auth_offers(a, c->alg) && sv_ieq(c->qop, SV("auth")) &&
	       !sv_empty(c->cnonce) && auth_parse_nc(c->nc, nc);
}

/* Copies a stored HA1 lower-cased into key; a missing or malformed one is
 * replaced by a dummy so that the work that follows is the same. */
static bool auth_load_ha1(const char *ha1, size_t hexlen, char *key)
{
	bool ok = ha1 && strnlen(ha1, hexlen + 1) == hexlen;

	for (size_t i = 0; i < hexlen; i++) {
		char c = ok ? sv_lower_char(ha1[i]) : '0';
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			ok = false;
			c = '0';
		}
		key[i] = c;
	}
	key[hexlen] = '\0';
	return ok;
}

/* Constant-time in the content; clients are allowed upper-case hex. */
static bool auth_response_matches(sv_t got, const char *expect, size_t hexlen)
{
	char lower[AUTH_HEX_MAX];

	if (got.len != hexlen || strlen(expect) != hexlen)
		return false;
	for (size_t i = 0; i < hexlen; i++)
		lower[i] = sv_lower_char(got.p[i]);
	return CRYPTO_memcmp(lower, expect, hexlen) == 0;
}

/* Runs once the response is known right: the nonce-count must move forward
 * in a slot that still belongs to this nonce. */
static enum auth_result auth_nc_advance(struct auth *a, uint32_t index, uint32_t nc)
{
	_Atomic uint64_t *slot = &a->nc[index & AUTH_NC_MASK];
	uint64_t cur = atomic_load_explicit(slot, memory_order_acquire);
	uint64_t next = (uint64_t)index << 32 | nc;

	do {
		if ((uint32_t)(cur >> 32) != index)
			return AUTH_STALE;
		if (nc <= (uint32_t)cur)
			return AUTH_REPLAY;
	} while (!atomic_compare_exchange_weak_explicit(slot, &cur, next, memory_order_acq_rel,
							memory_order_acquire));
	return AUTH_OK;
}

bool auth_uri_matches(sv_t cred_uri, sv_t ruri)
{
	struct sip_uri a, b;

	if (cred_uri.len == 0)
		return false;
	if (sv_eq(cred_uri, ruri))
		return true;
	if (sip_uri_parse(cred_uri, &a) || sip_uri_parse(ruri, &b) ||
	    (a.kind != SIP_SCHEME_SIP && a.kind != SIP_SCHEME_SIPS))
		return false;
	return sip_uri_equal(&a, &b);
}

enum auth_result auth_verify(struct auth *a, struct auth_hasher *h, const struct auth_cred *c,
			     sv_t method, const char *ha1, time_t now)
{
	char key[AUTH_HEX_MAX + 1], expect[AUTH_HEX_MAX + 1];
	struct auth_nonce n;
	uint32_t nc;
	size_t hexlen;
	bool user_ok, match;

	if (!auth_cred_usable(a, c, &nc) || !auth_nonce_open(a, h, c->nonce, &n))
		return AUTH_FAILED;
	hexlen = auth_alg_hexlen[c->alg];
	user_ok = auth_load_ha1(ha1, hexlen, key);
	auth_response_hex(h, c->alg, key, c->nonce, c->nc, c->cnonce, c->qop, method, c->uri,
			  expect);
	match = auth_response_matches(c->response, expect, hexlen);
	OPENSSL_cleanse(key, sizeof(key));
	if (!(user_ok & match))
		return AUTH_FAILED;
	/* unsigned: a nonce from the future (clock stepped back) is stale too */
	if ((uint32_t)now - n.issued > a->ttl)
		return AUTH_STALE;
	return auth_nc_advance(a, n.index, nc);
}

/*
 * Credentials
 */

struct auth_field {
	const char *name;
	size_t len;
	size_t off;
};

#define AUTH_FIELD(n, f) n, sizeof(n) - 1, offsetof(struct auth_cred, f)

/* The first five are required. */
static const struct auth_field auth_fields[] = {
    {AUTH_FIELD("username", username)}, {AUTH_FIELD("realm", realm)},
    {AUTH_FIELD("nonce", nonce)},	{AUTH_FIELD("uri", uri)},
    {AUTH_FIELD("response", response)}, {AUTH_FIELD("algorithm", algorithm)},
    {AUTH_FIELD("cnonce", cnonce)},	{AUTH_FIELD("opaque", opaque)},
    {AUTH_FIELD("qop", qop)},		{AUTH_FIELD("nc", nc)},
};
#define AUTH_REQUIRED	 0x1fu
#define AUTH_CHALLENGE	 0x06u /* a challenge needs realm and nonce */
#define AUTH_F_ALGORITHM (1u << 5)

/* The parser looks at every byte of a header that arrives with each request:
 * token characters (RFC 3261 25.1) from a bitmap rather than a call per byte. */
static bool auth_tchar(unsigned char c)
{
	static const uint32_t map[8] = {0, 0x03ff6ca2, 0x87fffffe, 0x47ffffff};

	return (map[c >> 5] >> (c & 31)) & 1;
}

static bool auth_is_lws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Most values are followed by no LWS at all: skip the call then. */
static void auth_skip_lws(sv_t *v)
{
	if (v->len && auth_is_lws(v->p[0]))
		*v = sip_skip_lws(*v);
}

static void auth_drop(sv_t *v, size_t n)
{
	v->p += n;
	v->len -= n;
}

static sv_t auth_take_token(sv_t *v)
{
	size_t i = 0;

	while (i < v->len && auth_tchar((unsigned char)v->p[i]))
		i++;
	sv_t tok = sv_make(v->p, i);
	auth_drop(v, i);
	return tok;
}

/* "Digest" followed by LWS (or nothing, which then lacks every param). */
static int auth_take_scheme(sv_t *v)
{
	sv_t scheme;

	auth_skip_lws(v);
	scheme = auth_take_token(v);
	if (!sv_ieq(scheme, SV("Digest")))
		return ENOTSUP;
	return v->len && !auth_is_lws(v->p[0]) ? EINVAL : 0;
}

/* A quoted-string at the front of *v: its inner bytes, escapes left as they are. */
static int auth_take_quoted(sv_t *v, sv_t *val)
{
	for (size_t i = 1; i < v->len; i++) {
		if (v->p[i] == '\\') {
			i++;
			continue;
		}
		if (v->p[i] == '"') {
			*val = sv_make(v->p + 1, i - 1);
			auth_drop(v, i + 1);
			return 0;
		}
	}
	return EINVAL;
}

/* Unquoted values are meant to be tokens; anything up to LWS or a comma is
 * taken, to be liberal with clients that leave a URI unquoted. */
static int auth_take_value(sv_t *v, sv_t *val)
{
	size_t i = 0;

	if (v->len && v->p[0] == '"')
		return auth_take_quoted(v, val);
	while (i < v->len && (unsigned char)v->p[i] > ' ' && v->p[i] != ',' && v->p[i] != '"' &&
	       v->p[i] != 0x7f)
		i++;
	if (i == 0)
		return EINVAL;
	*val = sv_make(v->p, i);
	auth_drop(v, i);
	return 0;
}

static bool auth_eat(sv_t *v, char c)
{
	auth_skip_lws(v);
	if (v->len == 0 || v->p[0] != c)
		return false;
	auth_drop(v, 1);
	auth_skip_lws(v);
	return true;
}

/* Next name=value; 1 with a param, 0 at the end, or -EINVAL. Empty list
 * elements (", ,") are skipped as the #rule allows. */
static int auth_next_param(sv_t *v, sv_t *name, sv_t *val)
{
	auth_skip_lws(v);
	while (auth_eat(v, ','))
		;
	if (v->len == 0)
		return 0;
	*name = auth_take_token(v);
	if (name->len == 0 || !auth_eat(v, '=') || auth_take_value(v, val))
		return -EINVAL;
	auth_skip_lws(v);
	if (v->len && !auth_eat(v, ','))
		return -EINVAL;
	return 1;
}

static int auth_store_param(struct auth_cred *c, sv_t name, sv_t val, unsigned *seen)
{
	for (size_t i = 0; i < sizeof(auth_fields) / sizeof(auth_fields[0]); i++) {
		const struct auth_field *f = &auth_fields[i];
		if (name.len != f->len || !sv_ieq(name, sv_make(f->name, f->len)))
			continue;
		if (*seen & (1u << i))
			return EINVAL;
		*seen |= 1u << i;
		*(sv_t *)((char *)c + f->off) = val;
		return 0;
	}
	return 0; /* unknown params are ignored */
}

/* Absent means MD5; algorithm="" is present but names nothing. */
static void auth_set_alg(struct auth_cred *c, bool present)
{
	c->alg_known = true;
	if (!present || sv_ieq(c->algorithm, SV("MD5")))
		c->alg = AUTH_ALG_MD5;
	else if (sv_ieq(c->algorithm, SV("SHA-256")))
		c->alg = AUTH_ALG_SHA256;
	else
		c->alg_known = false; /* the -sess variants, SHA-512-256, anything else */
}

/* Leaves what it parsed in c even on EINVAL: auth_find_cred looks at the realm. */
static int auth_cred_scan(sv_t v, struct auth_cred *c, unsigned required)
{
	sv_t name, val;
	unsigned seen = 0;
	int rc = auth_take_scheme(&v);

	while (rc == 0) {
		int more = auth_next_param(&v, &name, &val);
		if (more <= 0) {
			rc = -more;
			break;
		}
		rc = auth_store_param(c, name, val, &seen);
	}
	if (rc)
		return rc;
	if ((seen & required) != required)
		return EINVAL;
	auth_set_alg(c, seen & AUTH_F_ALGORITHM);
	return 0;
}

int auth_cred_parse(sv_t value, struct auth_cred *c)
{
	memset(c, 0, sizeof(*c));
	return auth_cred_scan(value, c, AUTH_REQUIRED);
}

int auth_challenge_parse(sv_t value, struct auth_cred *c)
{
	memset(c, 0, sizeof(*c));
	return auth_cred_scan(value, c, AUTH_CHALLENGE);
}

int auth_find_cred(const struct sip_msg *m, enum sip_hdr_id hdr, sv_t realm, struct auth_cred *out)
{
	struct auth_cred c;
	bool bad = false;

	for (struct sip_hdr *h = sip_msg_hdr(m, hdr); h; h = sip_msg_hdr_next(m, h)) {
		int rc = auth_cred_parse(h->value, &c);
		if (rc == ENOTSUP)
			continue;
		if (rc == 0 && sv_ieq(c.realm, realm)) {
			*out = c;
			return 0;
		}
		/* a broken header counts against us unless it names another realm */
		if (rc != 0 && (!c.realm.p || sv_ieq(c.realm, realm)))
			bad = true;
	}
	return bad ? EINVAL : ENOENT;
}
