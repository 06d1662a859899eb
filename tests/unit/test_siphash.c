/*
 * test_siphash.c - SipHash-2-4 against the reference test vectors of the
 * SipHash paper's authors (key 00 01 .. 0f, messages 00 01 .. of length 0
 * to 63, 64-bit output), the incremental form against the one-shot form at
 * every split point, the lower-case form, SipHash-1-3's difference, and a
 * timing of the sizes the server hashes (printed, not asserted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/hash.h"
#include "core/siphash.h"

/* vectors_sip64 of the reference implementation, read as little-endian words */
static const uint64_t vectors[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
    0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
    0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
    0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL, 0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL,
    0xbed65cf21aa2ee98ULL, 0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL, 0x2f2e6163076bcfadULL,
    0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL, 0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL,
    0x7127512f72f27cceULL, 0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL, 0x9abfd8766a33735cULL,
    0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL, 0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL,
    0xf935451de4f21df2ULL, 0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL, 0xa192d576b245165aULL,
    0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL, 0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL,
    0xb78dbfaf3a8d83bdULL, 0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL, 0x958a324ceb064572ULL,
};

static void ref_key(struct siphash_key *k)
{
	unsigned char b[16];

	for (unsigned i = 0; i < 16; i++)
		b[i] = (unsigned char)i;
	siphash_key_from_bytes(k, b);
}

static void test_reference_vectors(void **state)
{
	struct siphash_key k;
	unsigned char msg[64];

	(void)state;
	ref_key(&k);
	for (unsigned i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	for (unsigned len = 0; len < 64; len++)
		assert_int_equal(siphash24(&k, msg, len), vectors[len]);
	/* the paper's appendix example: 15 bytes */
	assert_int_equal(siphash24(&k, msg, 15), 0xa129ca6149be45e5ULL);
}

static void test_incremental_equals_oneshot(void **state)
{
	struct siphash_key k;
	unsigned char msg[64];

	(void)state;
	ref_key(&k);
	for (unsigned i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	for (unsigned len = 0; len < 64; len++) {
		for (unsigned a = 0; a <= len; a++) {
			for (unsigned b = a; b <= len; b++) {
				struct siphash_state s;
				siphash_init(&s, &k, SIPHASH_2_4);
				siphash_update(&s, msg, a);
				siphash_update(&s, msg + a, b - a);
				siphash_update(&s, msg + b, len - b);
				assert_int_equal(siphash_final(&s), vectors[len]);
			}
		}
	}
}

static void test_u64_and_lower(void **state)
{
	struct siphash_key k = {0x0123456789abcdefULL, 0xfedcba9876543210ULL};
	unsigned char le[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
	struct siphash_state s;

	(void)state;
	siphash_init(&s, &k, SIPHASH_2_4);
	siphash_update_u64(&s, 0x0102030405060708ULL);
	assert_int_equal(siphash_final(&s), siphash24(&k, le, 8));
	assert_int_equal(siphash_sv_lower(&k, SV("Example.COM")),
			 siphash_sv(&k, SV("example.com")));
	assert_int_not_equal(siphash_sv(&k, SV("Example.COM")), siphash_sv(&k, SV("example.com")));
}

static void test_variants_and_keys_differ(void **state)
{
	struct siphash_key k, k2;
	unsigned char msg[24] = "z9hG4bK0123456789abcdef";

	(void)state;
	ref_key(&k);
	k2 = k;
	k2.k1 ^= 1;
	assert_int_not_equal(siphash13(&k, msg, sizeof(msg)), siphash24(&k, msg, sizeof(msg)));
	assert_int_not_equal(siphash24(&k, msg, sizeof(msg)), siphash24(&k2, msg, sizeof(msg)));
	assert_int_equal(siphash13(&k, msg, sizeof(msg)), siphash_sv(&k, sv_make((char *)msg, 24)));
	assert_int_equal(siphash_key_random(&k2), 0);
	assert_false(k2.k0 == k.k0 && k2.k1 == k.k1);
}

static double ns_per_call(uint64_t (*fn)(const struct siphash_key *, const void *, size_t),
			  const struct siphash_key *k, const unsigned char *msg, size_t len)
{
	struct timespec a, b;
	volatile uint64_t sink = 0;
	const unsigned n = 2000000;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned i = 0; i < n; i++)
		sink += fn(k, msg, len);
	clock_gettime(CLOCK_MONOTONIC, &b);
	(void)sink;
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
}

static uint64_t old_hash(const struct siphash_key *k, const void *p, size_t len)
{
	return hash_bytes(p, len, k->k0);
}

/* Not a check: prints what a MAC and a table hash cost at the sizes we use. */
static void test_timing(void **state)
{
	struct siphash_key k;
	unsigned char msg[64];

	(void)state;
	ref_key(&k);
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)('a' + i % 26);
	for (size_t len = 8; len <= 64; len *= 2) {
		print_message(
		    "%2zu bytes: siphash-2-4 %.1f ns, siphash-1-3 %.1f ns, old hash_bytes "
		    "%.1f ns\n",
		    len, ns_per_call(siphash24, &k, msg, len), ns_per_call(siphash13, &k, msg, len),
		    ns_per_call(old_hash, &k, msg, len));
	}
	print_message("24 bytes (a branch MAC): siphash-2-4 %.1f ns\n",
		      ns_per_call(siphash24, &k, msg, 24));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reference_vectors),
	    cmocka_unit_test(test_incremental_equals_oneshot),
	    cmocka_unit_test(test_u64_and_lower),
	    cmocka_unit_test(test_variants_and_keys_differ),
	    cmocka_unit_test(test_timing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
