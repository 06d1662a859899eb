/*
 * fuzz_dptext.c - libFuzzer target for the text form of the routing rules
 * (what `switchboard route` takes and the store keeps): gateway, group and
 * rule lines, rule matches, list entries, and the print/parse round trip.
 * The first byte picks the parser; the rest is its input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/dialplan.h"
#include "services/lists.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dp_rule r, r2;
	struct dp_gateway g;
	struct dp_member m;
	static struct dp_group grp;
	struct lists_cidr c;
	char err[200], out[2048], *copy;
	sv_t in;

	if (size < 1)
		return 0;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	in = sv_make(copy, size - 1);
	switch (data[0] % 5) {
	case 0:
		memset(&g, 0, sizeof(g));
		dp_gateway_parse(&g, in, err, sizeof(err));
		dp_gateway_print(&g, out, sizeof(out));
		break;
	case 1:
		memset(&grp, 0, sizeof(grp));
		dp_group_parse(&grp, in, err, sizeof(err));
		dp_member_parse(in, &m, err, sizeof(err));
		break;
	case 2:
		memset(&r, 0, sizeof(r));
		dp_rule_parse(&r, in, err, sizeof(err));
		if (dp_rule_print(&r, out, sizeof(out)) == 0) {
			/* what is stored must read back as the same rule */
			memset(&r2, 0, sizeof(r2));
			if (dp_rule_parse(&r2, sv_cstr(out), err, sizeof(err)))
				abort();
			if (r2.nroute != r.nroute || r2.nops != r.nops ||
			    r2.redirect != r.redirect ||
			    memcmp(r2.route_names, r.route_names, sizeof(r.route_names)) != 0 ||
			    memcmp(r2.ops, r.ops, sizeof(r.ops[0]) * r.nops) != 0)
				abort();
		}
		break;
	case 3:
		memset(&r, 0, sizeof(r));
		dp_rule_match_parse(in, &r, err, sizeof(err));
		dp_rule_key(&r, out, sizeof(out));
		break;
	default:
		lists_cidr_parse(in, &c);
		lists_prefix_ok(in);
		break;
	}
	free(copy);
	return 0;
}
