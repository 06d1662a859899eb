/*
 * terminal.c - classifying a registration as desk phone, PC or mobile.
 *
 * The built-in User-Agent table is ordered: mobile builds of softphones
 * first (their User-Agent also names the desktop product), then PC
 * softphones, then desk phone makers. It is a starting point; operators add
 * their own patterns in the config (calls.terminal_user_agents), which are
 * checked first.
 */
#include "services/terminal.h"

#include <errno.h>
#include <string.h>

#include "sip/sip.h"

static const char *const term_names[TERM_COUNT] = {"other", "desk", "pc", "mobile"};

static const struct {
	const char *match;
	enum term_type type;
} term_builtin[] = {
    /* mobiles, and mobile builds of softphones */
    {"android", TERM_MOBILE},
    {"iphone", TERM_MOBILE},
    {"ipad", TERM_MOBILE},
    {"groundwire", TERM_MOBILE},
    {"acrobits", TERM_MOBILE},
    {"csipsimple", TERM_MOBILE},
    {"sipdroid", TERM_MOBILE},
    {"mobile", TERM_MOBILE},
    /* PC softphones */
    {"baresip", TERM_PC},
    {"linphone", TERM_PC},
    {"microsip", TERM_PC},
    {"zoiper", TERM_PC},
    {"x-lite", TERM_PC},
    {"bria", TERM_PC},
    {"eyebeam", TERM_PC},
    {"jitsi", TERM_PC},
    {"ekiga", TERM_PC},
    {"blink", TERM_PC},
    {"twinkle", TERM_PC},
    {"phonerlite", TERM_PC},
    {"3cxphone", TERM_PC},
    {"windows", TERM_PC},
    /* desk phones */
    {"yealink", TERM_DESK},
    {"polycom", TERM_DESK},
    {"cisco", TERM_DESK},
    {"snom", TERM_DESK},
    {"grandstream", TERM_DESK},
    {"aastra", TERM_DESK},
    {"mitel", TERM_DESK},
    {"fanvil", TERM_DESK},
    {"gigaset", TERM_DESK},
    {"panasonic", TERM_DESK},
    {"avaya", TERM_DESK},
    {"htek", TERM_DESK},
    {"alcatel", TERM_DESK},
    {"obihai", TERM_DESK},
    {"deskphone", TERM_DESK},
};

const char *term_name(enum term_type t)
{
	return (unsigned)t < TERM_COUNT ? term_names[t] : "other";
}

int term_parse(sv_t name, enum term_type *out)
{
	for (unsigned i = 0; i < TERM_COUNT; i++) {
		if (sv_ieq(name, sv_cstr(term_names[i]))) {
			*out = (enum term_type)i;
			return 0;
		}
	}
	return EINVAL;
}

static sv_t unquote(sv_t v)
{
	if (v.len >= 2 && v.p[0] == '"' && v.p[v.len - 1] == '"')
		return sv_make(v.p + 1, v.len - 2);
	return v;
}

/* needle is lowercase; hay was lowered once by the caller (this runs on every REGISTER) */
static bool contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static bool contains_nocase(const char *hay, const char *needle)
{
	char low[64];
	size_t n = strlen(needle);

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (size_t i = 0; i < n; i++)
		low[i] = sv_lower_char(needle[i]);
	low[n] = '\0';
	return contains(hay, low);
}

/* An explicit terminal=... in header or URI params. */
static bool explicit_type(sv_t params, enum term_type *out)
{
	sv_t v;

	return sip_param_find(params, SV("terminal"), &v) && term_parse(unquote(v), out) == 0;
}

static bool feature_tag_type(sv_t params, enum term_type *out)
{
	sv_t v;

	if (sip_param_find(params, SV("+sip.mobility"), &v)) {
		v = unquote(v);
		if (sv_ieq(v, SV("mobile"))) {
			*out = TERM_MOBILE;
			return true;
		}
		if (sv_ieq(v, SV("fixed"))) {
			*out = TERM_DESK;
			return true;
		}
	}
	if (sip_param_find(params, SV("+sip.automata"), &v)) {
		*out = TERM_OTHER;
		return true;
	}
	return false;
}

enum term_type term_classify(sv_t contact_params, sv_t contact_uri, sv_t user_agent,
			     const struct term_pattern *patterns, size_t npatterns)
{
	enum term_type t;
	struct sip_uri u;
	char ua[256];

	if (explicit_type(contact_params, &t))
		return t;
	if (sip_uri_parse(contact_uri, &u) == 0 && explicit_type(u.params, &t))
		return t;
	if (feature_tag_type(contact_params, &t))
		return t;
	if (user_agent.len == 0)
		return TERM_OTHER;
	if (user_agent.len >= sizeof(ua))
		user_agent.len = sizeof(ua) - 1;
	for (size_t i = 0; i < user_agent.len; i++)
		ua[i] = user_agent.p[i] ? sv_lower_char(user_agent.p[i]) : ' ';
	ua[user_agent.len] = '\0';
	for (size_t i = 0; i < npatterns; i++) {
		if (contains_nocase(ua, patterns[i].match))
			return patterns[i].type;
	}
	for (size_t i = 0; i < sizeof(term_builtin) / sizeof(term_builtin[0]); i++) {
		if (contains(ua, term_builtin[i].match))
			return term_builtin[i].type;
	}
	return TERM_OTHER;
}
