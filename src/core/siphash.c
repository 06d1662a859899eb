/*
 * siphash.c - SipHash-2-4 and SipHash-1-3, written from the paper
 * (https://cr.yp.to/siphash/siphash-20120918.pdf, section 2): the state is
 * four 64-bit words initialised from the key and four constants; each
 * 8-byte little-endian message word m is xored into v3, c SipRounds run,
 * then m is xored into v0; the last word holds the remaining bytes and the
 * message length mod 256 in its top byte; finalization xors 0xff into v2,
 * runs d SipRounds and returns v0 ^ v1 ^ v2 ^ v3.
 */
#include "core/siphash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static inline void sipround(struct siphash_state *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL(s->v2, 32);
}

static inline uint64_t load_le64(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
	       (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

static inline void compress(struct siphash_state *s, uint64_t m)
{
	s->v3 ^= m;
	for (unsigned i = 0; i < s->crounds; i++)
		sipround(s);
	s->v0 ^= m;
}

int siphash_key_random(struct siphash_key *k)
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		got += (size_t)n;
	}
	siphash_key_from_bytes(k, b);
	return 0;
}

void siphash_key_from_bytes(struct siphash_key *k, const unsigned char bytes[16])
{
	k->k0 = load_le64(bytes);
	k->k1 = load_le64(bytes + 8);
}

void siphash_init(struct siphash_state *s, const struct siphash_key *k, enum siphash_variant v)
{
	s->v0 = k->k0 ^ 0x736f6d6570736575ULL; /* "somepseu" */
	s->v1 = k->k1 ^ 0x646f72616e646f6dULL; /* "dorandom" */
	s->v2 = k->k0 ^ 0x6c7967656e657261ULL; /* "lygenera" */
	s->v3 = k->k1 ^ 0x7465646279746573ULL; /* "tedbytes" */
	s->tail = 0;
	s->len = 0;
	s->crounds = v == SIPHASH_1_3 ? 1 : 2;
	s->drounds = v == SIPHASH_1_3 ? 3 : 4;
}

void siphash_update(struct siphash_state *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	unsigned fill = (unsigned)(s->len & 7);

	s->len += len;
	/* complete a word started by an earlier update */
	if (fill) {
		while (fill < 8 && len) {
			s->tail |= (uint64_t)*p++ << (8 * fill++);
			len--;
		}
		if (fill < 8)
			return;
		compress(s, s->tail);
		s->tail = 0;
	}
	for (; len >= 8; p += 8, len -= 8)
		compress(s, load_le64(p));
	for (unsigned i = 0; i < len; i++)
		s->tail |= (uint64_t)p[i] << (8 * i);
}

void siphash_update_lower(struct siphash_state *s, const void *data, size_t len)
{
	const char *p = data;
	char tmp[64];

	while (len) {
		size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
		for (size_t i = 0; i < n; i++)
			tmp[i] = sv_lower_char(p[i]);
		siphash_update(s, tmp, n);
		p += n;
		len -= n;
	}
}

void siphash_update_u64(struct siphash_state *s, uint64_t v)
{
	unsigned char b[8];

	for (unsigned i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	siphash_update(s, b, sizeof(b));
}

uint64_t siphash_final(struct siphash_state *s)
{
	compress(s, s->tail | (s->len & 0xff) << 56);
	s->v2 ^= 0xff;
	for (unsigned i = 0; i < s->drounds; i++)
		sipround(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/*
 * The one-shot forms keep the state in registers with the round counts
 * known at compile time: about twice as fast as the incremental form.
 */
#define SIPROUND(v0, v1, v2, v3)                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

static inline __attribute__((always_inline)) uint64_t oneshot(const struct siphash_key *k,
							      const void *data, size_t len,
							      const unsigned c, const unsigned d)
{
	const unsigned char *p = data;
	uint64_t v0 = k->k0 ^ 0x736f6d6570736575ULL;
	uint64_t v1 = k->k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k->k0 ^ 0x6c7967656e657261ULL;
	uint64_t v3 = k->k1 ^ 0x7465646279746573ULL;
	uint64_t m, b = (uint64_t)len << 56;
	size_t left = len & 7;
	const unsigned char *end = p + len - left;

	for (; p != end; p += 8) {
		m = load_le64(p);
		v3 ^= m;
		for (unsigned i = 0; i < c; i++)
			SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	switch (left) {
	case 7:
		b |= (uint64_t)p[6] << 48;
		/* fall through */
	case 6:
		b |= (uint64_t)p[5] << 40;
		/* fall through */
	case 5:
		b |= (uint64_t)p[4] << 32;
		/* fall through */
	case 4:
		b |= (uint64_t)p[3] << 24;
		/* fall through */
	case 3:
		b |= (uint64_t)p[2] << 16;
		/* fall through */
	case 2:
		b |= (uint64_t)p[1] << 8;
		/* fall through */
	case 1:
		b |= (uint64_t)p[0];
		break;
	default:
		break;
	}
	v3 ^= b;
	for (unsigned i = 0; i < c; i++)
		SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (unsigned i = 0; i < d; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t siphash24(const struct siphash_key *k, const void *data, size_t len)
{
	return oneshot(k, data, len, 2, 4);
}

uint64_t siphash13(const struct siphash_key *k, const void *data, size_t len)
{
	return oneshot(k, data, len, 1, 3);
}

uint64_t siphash_sv(const struct siphash_key *k, sv_t v)
{
	return siphash13(k, v.p, v.len);
}

uint64_t siphash_sv_lower(const struct siphash_key *k, sv_t v)
{
	struct siphash_state s;

	siphash_init(&s, k, SIPHASH_1_3);
	siphash_update_lower(&s, v.p, v.len);
	return siphash_final(&s);
}
