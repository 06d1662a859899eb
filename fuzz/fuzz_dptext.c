/*
 * fuzz_dptext.c - libFuzzer target for the text form of the routing rules
 * (what `switchboard route` takes and the store keeps): gateway, group and
 * rule lines, rule matches, list entries, the dialplan-wide settings of
 * `route set` (timeouts, probe interval), and the print/parse round trips.
 * The first byte picks the parser; the rest is its input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services/dialplan.h"
#include "services/lists.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dp_rule r, r2;
	static struct dp_config dc, dc2;
	struct dp_gateway g, g2;
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
	switch (data[0] % 6) {
	case 0:
		memset(&g, 0, sizeof(g));
		if (dp_gateway_parse(&g, in, err, sizeof(err)) == 0 && g.host[0] &&
		    dp_gateway_print(&g, out, sizeof(out)) == 0) {
			/* what is stored reads back with the same timeouts */
			memset(&g2, 0, sizeof(g2));
			if (dp_gateway_parse(&g2, sv_cstr(out), err, sizeof(err)) ||
			    memcmp(&g2.timeout, &g.timeout, sizeof(g.timeout)) != 0 ||
			    memcmp(&g2.ring_timeout, &g.ring_timeout, sizeof(g.timeout)) != 0)
				abort();
		} else {
			dp_gateway_print(&g, out, sizeof(out));
		}
		break;
	case 5: {
		/* KEY=VALUE as `route set` takes it; each value printed reads back the same */
		ptrdiff_t eq = sv_find(in, '=');
		const char *keys[] = {"probe_interval", "gateway_timeout", "gateway_ring_timeout"};
		memset(&dc, 0, sizeof(dc));
		if (eq < 0)
			break;
		dp_config_key(sv_sub(in, 0, (size_t)eq));
		if (dp_config_set(&dc, sv_sub(in, 0, (size_t)eq),
				  sv_sub(in, (size_t)eq + 1, in.len), err, sizeof(err)))
			break;
		memset(&dc2, 0, sizeof(dc2));
		for (size_t k = 0; k < 3; k++) {
			if (dp_config_print(&dc, keys[k], out, sizeof(out)) ||
			    dp_config_set(&dc2, sv_cstr(keys[k]), sv_cstr(out), err, sizeof(err)))
				abort();
		}
		if (dc2.probe_interval_s != dc.probe_interval_s ||
		    dc2.timeout_ms != dc.timeout_ms || dc2.ring_timeout_ms != dc.ring_timeout_ms ||
		    dc.timeout_ms > DP_TIMEOUT_MAX_MS ||
		    dc.ring_timeout_ms > DP_RING_TIMEOUT_MAX_MS)
			abort();
		break;
	}
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
