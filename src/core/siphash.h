/*
 * siphash.h - SipHash (Aumasson and Bernstein, "SipHash: a fast short-input
 * PRF", 2012), a keyed hash with a 128-bit key.
 *
 * It exists because tables keyed by what strangers send (Call-IDs,
 * branches, AORs, addresses) must not let an attacker who does not know the
 * key pick inputs that collide, and because our client-transaction branches
 * carry a MAC that a forged response cannot guess. A seed mixed into a fast
 * non-cryptographic hash does not give either: such hashes have
 * seed-independent collisions.
 *
 * SipHash-2-4 (2 compression rounds, 4 finalization rounds) is the
 * conservative PRF, used for MACs; SipHash-1-3 is the faster variant that
 * hash tables use (as CPython and Rust do). Output is 64 bits.
 */
#ifndef SB_CORE_SIPHASH_H
#define SB_CORE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/sv.h"

struct siphash_key {
	uint64_t k0, k1;
};

/* An incremental computation: init, any number of updates, final. */
struct siphash_state {
	uint64_t v0, v1, v2, v3;
	uint64_t tail;	 /* bytes not yet in a full 8-byte word, little-endian */
	uint64_t len;	 /* bytes taken so far */
	uint8_t crounds; /* compression rounds per word */
	uint8_t drounds; /* finalization rounds */
};

enum siphash_variant {
	SIPHASH_2_4 = 0, /* MACs */
	SIPHASH_1_3,	 /* hash tables */
};

/* A key from getrandom(); 0, or the errno when the kernel gave none (k is then unusable). */
int siphash_key_random(struct siphash_key *k);
/* The key as 16 bytes, little-endian k0 then k1 (the paper's byte order). */
void siphash_key_from_bytes(struct siphash_key *k, const unsigned char bytes[16]);

void siphash_init(struct siphash_state *s, const struct siphash_key *k, enum siphash_variant v);
void siphash_update(struct siphash_state *s, const void *data, size_t len);
/* The same with ASCII letters taken as lower case (host names, tokens). */
void siphash_update_lower(struct siphash_state *s, const void *data, size_t len);
/* A 64-bit number, as 8 little-endian bytes. */
void siphash_update_u64(struct siphash_state *s, uint64_t v);
uint64_t siphash_final(struct siphash_state *s);

/* One-shot forms. */
uint64_t siphash24(const struct siphash_key *k, const void *data, size_t len);
uint64_t siphash13(const struct siphash_key *k, const void *data, size_t len);

/* Table hashes: SipHash-1-3 of a view, and of a view taken as lower case. */
uint64_t siphash_sv(const struct siphash_key *k, sv_t v);
uint64_t siphash_sv_lower(const struct siphash_key *k, sv_t v);

#endif
