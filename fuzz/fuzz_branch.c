/*
 * fuzz_branch.c - libFuzzer target for the parsers of issue 11 holes 4 and
 * 5 that read what strangers send: our branch forms (txn_branch_verify,
 * txn_branch_loop_hash, txn_branch_stateless_check against a Via parsed
 * from the input) and the digest uri against a Request-URI
 * (auth_uri_matches). Properties checked: a branch we format verifies;
 * changing any one byte of it never verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/auth.h"
#include "sip/sip.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct txn_table *tt;
	unsigned owner;
	uint32_t slot, gen;
	uint64_t lh;
	struct sip_via via;
	char *copy;
	size_t half;

	if (!tt && txn_table_create(0, &tt))
		abort();
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	sv_t all = sv_make(copy, size);

	/* the whole input as a branch of ours */
	txn_branch_verify(tt, all, &owner, &slot, &gen);
	txn_branch_loop_hash(all, &lh);

	/* first half: a Via value; second half: a stateless branch for it */
	half = size / 2;
	if (sip_via_parse(sv_make(copy, half), &via, NULL) == 0) {
		char br[TXN_STATELESS_BRANCH_LEN];
		txn_branch_stateless_check(tt, sv_make(copy + half, size - half), &via);
		memcpy(&lh, data + (size >= 8 ? size - 8 : 0), size >= 8 ? 8 : 0);
		txn_branch_stateless(tt, lh, &via, br);
		if (!txn_branch_stateless_check(tt, sv_make(br, sizeof(br)), &via))
			abort();
		/* one byte changed never verifies */
		if (size) {
			size_t at = data[0] % sizeof(br);
			char was = br[at];
			br[at] = (char)(was ^ (data[size - 1] | 1));
			if (txn_branch_stateless_check(tt, sv_make(br, sizeof(br)), &via))
				abort();
		}
	}

	/* the two halves as a digest uri and a Request-URI */
	auth_uri_matches(sv_make(copy, half), sv_make(copy + half, size - half));
	if (auth_uri_matches(sv_make(copy, half), sv_make(copy + half, size - half)) !=
	    auth_uri_matches(sv_make(copy, half), sv_make(copy + half, size - half)))
		abort();
	free(copy);
	return 0;
}
