/*
 * fuzz_settings.c - libFuzzer target for the call settings line and the
 * terminal classifier: both read text that users and devices control (the
 * CLI's words, a stored line, Contact parameters and User-Agents).
 */
#include <stdint.h>
#include <string.h>

#include "services/settings.h"
#include "services/terminal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sv_t in = sv_make((const char *)data, size);
	struct uset s, again;
	char line[USET_TEXT_MAX], err[256];
	size_t third = size / 3;

	uset_init(&s);
	uset_parse(&s, in, err, sizeof(err));
	if (uset_format(&s, line, sizeof(line)) == 0) {
		/* what we write we must read back the same */
		char line2[USET_TEXT_MAX];
		uset_init(&again);
		if (uset_parse(&again, sv_cstr(line), err, sizeof(err)) != 0)
			__builtin_trap();
		if (uset_format(&again, line2, sizeof(line2)) != 0 || strcmp(line, line2) != 0)
			__builtin_trap();
	}
	term_classify(sv_make(in.p, third), sv_make(in.p + third, third),
		      sv_make(in.p + 2 * third, size - 2 * third), NULL, 0);
	return 0;
}
