/*
 * terminal.h - what kind of device a registration is (desk phone, PC
 * softphone, mobile), learned once when it registers.
 *
 * Sequential ringing by terminal type needs the type of every binding on
 * every call, so it is decided at REGISTER time and kept with the binding
 * (and in the store's binding flags), never recomputed on the call path.
 *
 * Sources, first match wins:
 *   1. an explicit Contact parameter the device (or its provisioning) sends:
 *      header or URI parameter "terminal=desk|pc|mobile|other";
 *   2. RFC 3840 feature tags: +sip.mobility="mobile" -> mobile,
 *      +sip.mobility="fixed" -> desk, +sip.automata -> other;
 *   3. the User-Agent, against the configured patterns and then the
 *      built-in table of common phones and softphones.
 */
#ifndef SB_SERVICES_TERMINAL_H
#define SB_SERVICES_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/sv.h"

enum term_type {
	TERM_OTHER = 0,
	TERM_DESK,
	TERM_PC,
	TERM_MOBILE,
	TERM_COUNT,
};

/* A configured User-Agent substring (case-insensitive) and the type it means. */
struct term_pattern {
	char match[64];
	enum term_type type;
};

const char *term_name(enum term_type t);
/* "desk", "pc", "mobile", "other" (case-insensitive); 0 or EINVAL. */
int term_parse(sv_t name, enum term_type *out);

/*
 * The type of one Contact: its header params (raw, after the first ';'), its
 * URI, and the REGISTER's User-Agent; patterns are checked before the
 * built-in table.
 */
enum term_type term_classify(sv_t contact_params, sv_t contact_uri, sv_t user_agent,
			     const struct term_pattern *patterns, size_t npatterns);

#endif
