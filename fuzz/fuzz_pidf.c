/*
 * fuzz_pidf.c - libFuzzer target for the PIDF checker and composer: a
 * PUBLISH body is whatever a client sends, and what passes the check is
 * later merged with the presentity's other documents into every NOTIFY.
 */
#include <stdint.h>
#include <string.h>

#include "services/pidf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	sv_t in = sv_make((const char *)data, size);
	char why[160];
	struct buf out;

	if (!ready) {
		pidf_init();
		ready = 1;
	}
	if (pidf_check(in, why, sizeof(why)) != 0)
		return 0;
	buf_init(&out, 0);
	/* a checked document composes, alone and next to itself */
	sv_t two[2] = {in, in};
	if (pidf_compose("sip:fuzz@example.com", two, 2, &out) != 0)
		__builtin_trap();
	buf_free(&out);
	return 0;
}
