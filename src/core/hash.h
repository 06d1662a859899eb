/*
 * hash.h - a fast non-cryptographic hash for table lookups.
 *
 * Tables are keyed by Call-IDs, branches and AORs that arrive from the
 * network, so the hash is seeded per process (see hash_seed) to keep an
 * attacker from crafting collisions against a known function.
 */
#ifndef SB_CORE_HASH_H
#define SB_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/sv.h"

static inline uint64_t hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, p, 8);
		h = (h ^ hash_mix(w)) * 0x9e3779b97f4a7c15ULL;
		p += 8;
		len -= 8;
	}
	w = 0;
	if (len)
		memcpy(&w, p, len);
	h = (h ^ hash_mix(w ^ len)) * 0x9e3779b97f4a7c15ULL;
	return hash_mix(h);
}

/* Case-insensitive variant for host names and header tokens. */
static inline uint64_t hash_bytes_lower(const void *data, size_t len, uint64_t seed)
{
	char tmp[256];
	const char *s = data;
	uint64_t h = seed;

	while (len) {
		size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
		for (size_t i = 0; i < n; i++)
			tmp[i] = sv_lower_char(s[i]);
		h = hash_bytes(tmp, n, h);
		s += n;
		len -= n;
	}
	return h;
}

static inline uint64_t hash_sv(sv_t v, uint64_t seed)
{
	return hash_bytes(v.p, v.len, seed);
}

#endif
