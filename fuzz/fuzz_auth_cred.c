/*
 * fuzz_auth_cred.c - libFuzzer target for the digest credentials parser
 * (Authorization / Proxy-Authorization values) and the verification that
 * follows it, with a correct and an unknown user; and the same input as a
 * gateway's challenge (WWW-/Proxy-Authenticate), answered as we answer one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth *a;
	static struct auth_hasher *h;
	struct auth_cred c;
	char *copy;

	if (!a) {
		enum auth_alg algs[] = {AUTH_ALG_MD5, AUTH_ALG_SHA256};
		if (auth_create((const unsigned char *)"fuzz", 4, 300, algs, 2, &a) ||
		    auth_hasher_create(&h))
			abort();
	}
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (auth_cred_parse(sv_make(copy, size), &c) == 0) {
		auth_verify(a, h, &c, SV("REGISTER"), "00000000000000000000000000000000",
			    time(NULL));
		auth_verify(a, h, &c, SV("INVITE"), NULL, time(NULL));
	}
	if (auth_challenge_parse(sv_make(copy, size), &c) == 0 && c.alg_known) {
		char resp[65];
		auth_response_hex(h, c.alg, "00000000000000000000000000000000", c.nonce,
				  SV("00000001"), SV("0a1b2c3d"), c.qop, SV("INVITE"),
				  SV("sip:+49301234@192.0.2.1"), resp);
	}
	free(copy);
	return 0;
}
