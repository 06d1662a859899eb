/*
 * fuzz_config.c - libFuzzer target for the YAML configuration loader: any
 * file must load or give a precise error, never crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg *c = calloc(1, sizeof(*c));
	struct cfg_error err;

	if (!c)
		return 0;
	cfg_defaults(c);
	if (cfg_load_string(c, (const char *)data, size, &err) == 0)
		cfg_finish(c, &err);
	free(c);
	return 0;
}
