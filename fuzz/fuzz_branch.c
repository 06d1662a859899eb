/*
 * fuzz_branch.c - libFuzzer target for the parsers of issue 11 holes 4 and
 * 5 that read what strangers send: our branch forms (txn_branch_verify,
 * txn_branch_loop_hash, txn_branch_stateless_check against a Via parsed
 * from the input) and the digest uri against a Request-URI
 * (auth_uri_matches), and the NAT alias of an in-dialog Request-URI
 * (proxy/nat.c: nat_alias_verify, and the whole input as a Request-URI whose
 * sb-alias is looked for). Properties checked: a branch we format verifies;
 * changing any one byte of it never verifies; an alias verifies only when
 * printing the address it gives yields the same text again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/internal.h"
#include "server/server.h"
#include "services/auth.h"
#include "sip/sip.h"
#include "txn/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct server srv; /* its route_key: the alias MAC key (zero here) */
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
	/* the whole input as an alias value, and as a Request-URI carrying one */
	{
		struct tp_addr a;
		struct sip_uri u;
		sv_t v;
		char again[128];
		if (nat_alias_verify(&srv.route_key, SV("c"), all, &a) == 0) {
			/* only what we print verifies: the same text back */
			size_t n =
			    nat_alias_print(&srv.route_key, SV("c"), &a, again, sizeof(again));
			if (n < 10 || !sv_eq(sv_make(again + 10, n - 10), all))
				abort();
		}
		if (sip_uri_parse(all, &u) == 0 && sip_param_find(u.params, SV("sb-alias"), &v))
			nat_alias_verify(&srv.route_key, SV("c"), v, &a);
		/* one we print for an address taken from the input verifies */
		if (size >= 6) {
			struct tp_addr src;
			unsigned char ip[4] = {data[0], data[1], data[2], data[3]};
			char text[64];
			snprintf(text, sizeof(text), "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
			if (tp_addr_from_str(text, (uint16_t)(data[4] << 8 | data[5]) | 1,
					     SIP_PROTO_UDP, &src) == 0) {
				size_t n = nat_alias_print(&srv.route_key, all, &src, again,
							   sizeof(again));
				if (!n ||
				    nat_alias_verify(&srv.route_key, all,
						     sv_make(again + 10, n - 10), &a) ||
				    !tp_addr_equal(&a, &src))
					abort();
			}
		}
	}
	free(copy);
	return 0;
}
