/*
 * fuzz_settings.c - libFuzzer target for the call settings line and the
 * terminal classifier: both read text that users and devices control (the
 * CLI's words, a stored line, Contact parameters and User-Agents), and
 * what the server does with a line on every call and every verified request
 * (issue 12): the barring decision and the allow_sources match.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
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
	{
		/* a fixed configuration of classes; targets cut from the input */
		static const struct lists_barring cfg = {
		    .classes = {{.name = "international", .v = {"00"}, .n = 1},
				{.name = "premium", .v = {"0900", "0190"}, .n = 2}},
		    .nclasses = 2,
		    .free = {.v = {"112"}, .n = 1}};
		struct sockaddr_in v4 = {.sin_family = AF_INET};
		struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
		char why[64];
		sv_t target = sv_make(in.p + 2 * third, size - 2 * third);
		enum uset_bar_verdict v =
		    uset_bar_check(&s.out, &cfg, target, size & 1, why, sizeof(why));
		if (v == USET_BARRED && why[0] == '\0')
			__builtin_trap(); /* a refusal always says why */
		inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
		inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
		uset_line_source_allowed(in, (const struct sockaddr *)&v4);
		uset_line_source_allowed(in, (const struct sockaddr *)&v6);
	}
	term_classify(sv_make(in.p, third), sv_make(in.p + third, third),
		      sv_make(in.p + 2 * third, size - 2 * third), NULL, 0);
	return 0;
}
