/*
 * terminal.c - classifying a registration as desk phone, PC or mobile.
 *
 * The built-in User-Agent table is ordered: a few User-Agents that name a
 * mobile OS without being a handset, then mobile platform tokens and
 * mobile-only apps (a mobile build's User-Agent also names the desktop
 * product), then PC softphones, then desk phone makers, then desktop
 * operating systems. It is a starting point; operators add their own
 * patterns in the config (calls.terminal_user_agents) or from the CLI,
 * which are checked first.
 */
#include "services/terminal.h"

#include <errno.h>
#include <string.h>

#include "sip/sip.h"

static const char *const term_names[TERM_COUNT] = {"other", "desk", "pc", "mobile"};

/* How a built-in entry matches the lowered User-Agent. */
enum term_how {
	TERM_SUB = 0, /* anywhere */
	TERM_WORD,    /* with no letter right before or after ("iOS 17", "iOS10", not "bios") */
	TERM_START,   /* at the start ("PolycomVVX-...", "PolyEdge-...") */
	TERM_VERSION, /* at the start, followed by a digit ("Z 5.6.1", "Telephone 1.6") */
};

/*
 * Checked in order, first match wins; the User-Agents they were checked
 * against are in tests/unit/test_callsvc.c. A platform token (Android,
 * iPhone, iPad, iOS) beats every app name, since mobile builds of desktop
 * softphones name the product too ("Zoiper for iOS", "Bria iOS release",
 * "LinphoneAndroid/4.3"); what names a mobile OS without being one comes
 * before that ("Cisco-SIPGateway/IOS-15.5" is Cisco IOS on a router).
 */
static const struct {
	const char *match;
	enum term_type type;
	enum term_how how;
} term_builtin[] = {
    /* not a handset although the User-Agent names a mobile OS or app */
    {"cisco-sipgateway", TERM_OTHER, TERM_SUB},	    /* Cisco IOS voice gateways, CUBE */
    {"grandstream wave/webrtc", TERM_PC, TERM_SUB}, /* Wave in a desktop browser */
    /* mobile platforms */
    {"android", TERM_MOBILE, TERM_SUB}, /* also "LinphoneAndroid/4.3.1" */
    {"iphone", TERM_MOBILE, TERM_SUB},	/* "Linphone_iPhone6.2_iOS10.3.3" */
    {"ipad", TERM_MOBILE, TERM_SUB},	/* iPad, iPadOS */
    {"ipod", TERM_MOBILE, TERM_SUB},
    {"ios", TERM_MOBILE, TERM_WORD}, /* "Zoiper for iOS", "Bria iOS release" */
    {"linphoneios", TERM_MOBILE, TERM_SUB},
    /* apps that exist only for mobiles */
    {"groundwire", TERM_MOBILE, TERM_SUB},
    {"acrobits", TERM_MOBILE, TERM_SUB}, /* Acrobits Softphone, its SIPIS push proxy */
    {"cloud softphone", TERM_MOBILE, TERM_SUB},
    {"sangoma connect", TERM_MOBILE, TERM_SUB},
    {"grandstream wave", TERM_MOBILE, TERM_SUB},
    {"zoiper rv", TERM_MOBILE, TERM_SUB}, /* Zoiper 5 mobile; the desktop says "Z 5.x" */
    {"csipsimple", TERM_MOBILE, TERM_SUB},
    {"sipdroid", TERM_MOBILE, TERM_SUB},
    {"mobile", TERM_MOBILE, TERM_SUB},
    /* PC softphones */
    {"z ", TERM_PC, TERM_VERSION}, /* Zoiper 5 desktop: "Z 5.6.6 v2.10.20.5" */
    {"baresip", TERM_PC, TERM_SUB},
    {"linphone", TERM_PC, TERM_SUB},
    {"microsip", TERM_PC, TERM_SUB},
    {"zoiper", TERM_PC, TERM_SUB}, /* Zoiper 3: "Zoiper for Windows 2.38 rev.16635" */
    {"x-lite", TERM_PC, TERM_SUB},
    {"bria", TERM_PC, TERM_SUB}, /* "Bria 5 release 5.9.1 stamp", Bria Solo, Bria Teams */
    {"eyebeam", TERM_PC, TERM_SUB},
    {"jitsi", TERM_PC, TERM_SUB},
    {"ekiga", TERM_PC, TERM_SUB},
    {"blink", TERM_PC, TERM_SUB},
    {"twinkle", TERM_PC, TERM_SUB},
    {"phonerlite", TERM_PC, TERM_SUB},
    {"3cxphone", TERM_PC, TERM_SUB},
    {"jabber", TERM_PC, TERM_SUB}, /* Cisco Jabber on a desktop (the mobile builds say so) */
    {"telephone ", TERM_PC, TERM_VERSION}, /* Telephone for macOS: "Telephone 1.6" */
    /* desk phones and phone adapters */
    {"yealink", TERM_DESK, TERM_SUB},
    {"poly", TERM_DESK, TERM_START}, /* "PolycomVVX-VVX_411-UA/6.3", newer "Poly..." */
    {"cisco", TERM_DESK, TERM_SUB},
    {"snom", TERM_DESK, TERM_SUB},
    {"grandstream", TERM_DESK, TERM_SUB},
    {"aastra", TERM_DESK, TERM_SUB},
    {"mitel", TERM_DESK, TERM_SUB},
    {"fanvil", TERM_DESK, TERM_SUB},
    {"gigaset", TERM_DESK, TERM_SUB},
    {"panasonic", TERM_DESK, TERM_SUB},
    {"avaya", TERM_DESK, TERM_SUB},
    {"htek", TERM_DESK, TERM_SUB},
    {"alcatel", TERM_DESK, TERM_SUB},
    {"obihai", TERM_DESK, TERM_SUB},
    {"linksys", TERM_DESK, TERM_SUB},
    {"deskphone", TERM_DESK, TERM_SUB},
    /* what is left that names a desktop system */
    {"windows", TERM_PC, TERM_SUB},
    {"macos", TERM_PC, TERM_SUB},
    {"mac os", TERM_PC, TERM_SUB},
    {"linux", TERM_PC, TERM_SUB},
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

static bool is_letter(char c)
{
	return c >= 'a' && c <= 'z'; /* hay is lowered */
}

static bool builtin_match(const char *hay, const char *needle, enum term_how how)
{
	size_t n = strlen(needle);
	const char *at;

	switch (how) {
	case TERM_WORD:
		for (at = strstr(hay, needle); at; at = strstr(at + 1, needle)) {
			if ((at == hay || !is_letter(at[-1])) && !is_letter(at[n]))
				return true;
		}
		return false;
	case TERM_START:
		return strncmp(hay, needle, n) == 0;
	case TERM_VERSION:
		return strncmp(hay, needle, n) == 0 && hay[n] >= '0' && hay[n] <= '9';
	case TERM_SUB:
	default:
		return contains(hay, needle);
	}
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
		if (builtin_match(ua, term_builtin[i].match, term_builtin[i].how))
			return term_builtin[i].type;
	}
	return TERM_OTHER;
}
