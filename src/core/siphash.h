/*
 * siphash.h - SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed
 * pseudo-random function for short inputs.
 *
 * Used where an attacker must not predict or forge a value: the signature
 * on our Record-Route (a route set we did not issue is refused) and the keys
 * of tables that attacker input indexes. The key is 16 random bytes.
 */
#ifndef SB_CORE_SIPHASH_H
#define SB_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct siphash_key {
	uint64_t k0, k1;
};

#define SIPHASH_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPHASH_ROUND(v0, v1, v2, v3)                                                              \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = SIPHASH_ROTL(v1, 13);                                                         \
		v1 ^= v0;                                                                          \
		v0 = SIPHASH_ROTL(v0, 32);                                                         \
		v2 += v3;                                                                          \
		v3 = SIPHASH_ROTL(v3, 16);                                                         \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = SIPHASH_ROTL(v3, 21);                                                         \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = SIPHASH_ROTL(v1, 17);                                                         \
		v1 ^= v2;                                                                          \
		v2 = SIPHASH_ROTL(v2, 32);                                                         \
	} while (0)

/* A running SipHash-2-4 over pieces fed in order (the pieces' bytes, as if concatenated). */
struct siphash_state {
	uint64_t v0, v1, v2, v3;
	uint64_t tail; /* bytes not yet absorbed, little-endian */
	size_t ntail;
	size_t total;
};

static inline void siphash_init(struct siphash_state *s, const struct siphash_key *k)
{
	s->v0 = k->k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k->k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k->k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k->k1 ^ 0x7465646279746573ULL;
	s->tail = 0;
	s->ntail = 0;
	s->total = 0;
}

static inline void siphash_block(struct siphash_state *s, uint64_t m)
{
	s->v3 ^= m;
	SIPHASH_ROUND(s->v0, s->v1, s->v2, s->v3);
	SIPHASH_ROUND(s->v0, s->v1, s->v2, s->v3);
	s->v0 ^= m;
}

static inline void siphash_update(struct siphash_state *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	s->total += len;
	while (len && s->ntail) {
		s->tail |= (uint64_t)*p++ << (8 * s->ntail);
		len--;
		if (++s->ntail == 8) {
			siphash_block(s, s->tail);
			s->tail = 0;
			s->ntail = 0;
		}
	}
	while (len >= 8) {
		uint64_t m = 0;
		for (int i = 7; i >= 0; i--)
			m = m << 8 | p[i];
		siphash_block(s, m);
		p += 8;
		len -= 8;
	}
	while (len--)
		s->tail |= (uint64_t)*p++ << (8 * s->ntail++);
}

static inline uint64_t siphash_final(struct siphash_state *s)
{
	uint64_t b = ((uint64_t)s->total << 56) | s->tail;

	siphash_block(s, b);
	s->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIPHASH_ROUND(s->v0, s->v1, s->v2, s->v3);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

static inline uint64_t siphash24(const struct siphash_key *k, const void *data, size_t len)
{
	struct siphash_state s;

	siphash_init(&s, k);
	siphash_update(&s, data, len);
	return siphash_final(&s);
}

#endif
