/*
 * fuzz_flood.c - libFuzzer target for the flood protection: the source text
 * `switchboard ban del` and the stored ban records give flood_key_parse
 * (what it formats it must read back the same), and a sequence of requests,
 * credentials, lifts and clock jumps from a few sources over a tiny table
 * (its budgets' arithmetic, evictions and bans must hold for any sequence).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "services/flood.h"

static void keys(const uint8_t *data, size_t size)
{
	char text[64], out[FLOOD_KEY_TEXT], out2[FLOOD_KEY_TEXT];
	struct flood_key k, k2;

	if (size >= sizeof(text))
		size = sizeof(text) - 1;
	memcpy(text, data, size);
	text[size] = '\0';
	if (flood_key_parse(text, &k))
		return;
	flood_key_format(&k, out);
	if (flood_key_parse(out, &k2) || memcmp(&k, &k2, sizeof(k)) != 0)
		__builtin_trap();
	flood_key_format(&k2, out2);
	if (strcmp(out, out2) != 0)
		__builtin_trap();
}

static void sequence(const uint8_t *data, size_t size)
{
	struct flood_conf c = {
	    .enabled = true,
	    .window_s = 1 + data[0] % 20,
	    .unauth_limit = 1 + data[1] % 50,
	    .auth_limit = 1 + data[2] % 50,
	    .dialog_limit = 1 + data[3] % 50,
	    .ban_time_s = 1 + data[4] % 100,
	    .ban_max_s = 1 + data[4] % 100 + data[5] * 100u,
	    .table_size = 64,
	};
	struct flood *f;
	struct flood_key k;
	int64_t now = 1000;
	char ip[32];

	if (flood_create(&c, &f))
		return;
	for (size_t i = 6; i + 3 <= size; i += 3) {
		uint8_t op = data[i] & 7, who = data[i + 1];
		now += (int64_t)data[i + 2] * (data[i] & 8 ? 1000 : 10);
		if (who & 128)
			snprintf(ip, sizeof(ip), "2001:db8:%x::1", who & 127);
		else
			snprintf(ip, sizeof(ip), "10.0.0.%u", who);
		if (flood_key_parse(ip, &k))
			__builtin_trap();
		switch (op) {
		case 0:
		case 1:
		case 2:
			if (flood_account(f, &k, (enum flood_class)op, now) == FLOOD_DROP_BANNED &&
			    !flood_banned(f, &k, now))
				__builtin_trap();
			break;
		case 3:
			flood_auth_ok(f, &k, now);
			break;
		case 4:
			if (flood_auth_failed(f, &k, now) && !flood_banned(f, &k, now))
				__builtin_trap();
			break;
		case 5:
			if (flood_lift(f, &k) == 0 && flood_banned(f, &k, now))
				__builtin_trap();
			break;
		default:
			flood_banned(f, &k, now);
			break;
		}
	}
	flood_destroy(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 7)
		return 0;
	if (data[0] & 1)
		keys(data + 1, size - 1);
	else
		sequence(data + 1, size - 1);
	return 0;
}
