/*
 * settings.c - parsing, checking and printing a subscriber's call settings.
 *
 * The CLI checks every word before it writes it, and the server parses the
 * stored line again on a call: a line that fails to parse (written by a
 * newer version, or by hand) keeps whatever parsed before the bad word, so
 * a call is never refused for a setting.
 */
#include "services/settings.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "services/lists.h"
#include "sip/sip.h"

static const char *const uset_ring_names[] = {"parallel", "sequential", "q-value"};
static const char *const uset_fwd_keys[USET_FWD_COUNT] = {
    "forward_always", "forward_busy", "forward_noanswer", "forward_unregistered"};
/* short forms people know from PBXs */
static const char *const uset_fwd_alias[USET_FWD_COUNT] = {"cfu", "cfb", "cfna", "cfnr"};
static const char *const uset_fwd_reasons[USET_FWD_COUNT] = {"unconditional", "user-busy",
							     "no-answer", "unavailable"};

void uset_init(struct uset *s)
{
	memset(s, 0, sizeof(*s));
	s->stop_on_busy = -1;
}

bool uset_is_default(const struct uset *s)
{
	for (int k = 0; k < USET_FWD_COUNT; k++) {
		if (s->fwd[k][0])
			return false;
	}
	return s->ring == USET_RING_PARALLEL && !s->redirect;
}

const char *uset_ring_name(enum uset_ring r)
{
	return (unsigned)r < 3 ? uset_ring_names[r] : "parallel";
}

const char *uset_fwd_reason(enum uset_fwd k)
{
	return (unsigned)k < USET_FWD_COUNT ? uset_fwd_reasons[k] : "unknown";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return EINVAL;
}

static int parse_secs(sv_t v, const char *key, unsigned *out, char *err, size_t errlen)
{
	uint32_t n;

	if (sv_to_u32(v, &n) || n == 0 || n > USET_MAX_SECONDS)
		return fail(err, errlen, "%s: '%.*s' is not a number of seconds from 1 to %d", key,
			    (int)v.len, v.p, USET_MAX_SECONDS);
	*out = n;
	return 0;
}

static int parse_bool(sv_t v, const char *key, int *out, char *err, size_t errlen)
{
	if (sv_ieq(v, SV("yes")) || sv_ieq(v, SV("true")) || sv_ieq(v, SV("on")) ||
	    sv_eq(v, SV("1"))) {
		*out = 1;
		return 0;
	}
	if (sv_ieq(v, SV("no")) || sv_ieq(v, SV("false")) || sv_ieq(v, SV("off")) ||
	    sv_eq(v, SV("0"))) {
		*out = 0;
		return 0;
	}
	return fail(err, errlen, "%s: '%.*s' is not yes or no", key, (int)v.len, v.p);
}

/* "desk:15,pc,mobile:20" */
static int parse_order(sv_t v, struct uset *s, char *err, size_t errlen)
{
	struct uset_step steps[USET_MAX_ORDER];
	size_t n = 0;
	sv_t rest = v;

	while (rest.len) {
		ptrdiff_t comma = sv_find(rest, ',');
		sv_t item = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
		ptrdiff_t colon = sv_find(item, ':');
		sv_t name = colon < 0 ? item : sv_make(item.p, (size_t)colon);
		enum term_type t;

		rest = comma < 0 ? sv_make(rest.p + rest.len, 0)
				 : sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
		if (n == USET_MAX_ORDER)
			return fail(err, errlen, "order: more than %d steps", USET_MAX_ORDER);
		if (term_parse(name, &t))
			return fail(
			    err, errlen,
			    "order: '%.*s' is not a terminal type (desk, pc, mobile, other)",
			    (int)name.len, name.p);
		for (size_t i = 0; i < n; i++) {
			if (steps[i].type == t)
				return fail(err, errlen, "order: '%s' appears twice", term_name(t));
		}
		steps[n].type = t;
		steps[n].secs = 0;
		if (colon >= 0 &&
		    parse_secs(sv_make(item.p + colon + 1, item.len - (size_t)colon - 1), "order",
			       &steps[n].secs, err, errlen))
			return EINVAL;
		n++;
	}
	if (n == 0 && v.len)
		return fail(err, errlen, "order: empty step");
	memcpy(s->order, steps, sizeof(steps[0]) * n);
	s->norder = n;
	return 0;
}

static bool user_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-_.!~*'()&=+$,;?/%#", c) != NULL;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("-.:[]", c) != NULL;
}

/* A local user, user@domain, a number, or a sip:/sips: URI. */
static int check_target(sv_t v, const char *key, char *err, size_t errlen)
{
	ptrdiff_t at;
	struct sip_uri u;

	if (v.len >= USET_TARGET_MAX)
		return fail(err, errlen, "%s: target longer than %d characters", key,
			    USET_TARGET_MAX - 1);
	for (size_t i = 0; i < v.len; i++) {
		if ((unsigned char)v.p[i] <= ' ' || v.p[i] == 0x7f)
			return fail(err, errlen,
				    "%s: the target contains a space or control character", key);
	}
	if (sv_istarts(v, SV("sip:")) || sv_istarts(v, SV("sips:"))) {
		if (sip_uri_parse(v, &u) || u.host.len == 0)
			return fail(err, errlen, "%s: '%.*s' is not a valid SIP URI", key,
				    (int)v.len, v.p);
		return 0;
	}
	at = sv_find(v, '@');
	for (size_t i = 0; i < v.len; i++) {
		bool ok = (at < 0 || (ptrdiff_t)i < at) ? user_char(v.p[i])
							: ((ptrdiff_t)i == at || host_char(v.p[i]));
		if (!ok)
			return fail(err, errlen, "%s: '%.*s' is not a user, a number or a SIP URI",
				    key, (int)v.len, v.p);
	}
	if (at == 0 || (at > 0 && (size_t)at + 1 == v.len))
		return fail(err, errlen, "%s: '%.*s' has an empty user or domain", key, (int)v.len,
			    v.p);
	return 0;
}

/* "0900,+4990,anonymous" */
/* A comma-separated list whose every entry ok() accepts; what is stored is v as given. */
static int parse_list(sv_t v, const char *key, bool (*ok)(sv_t item), const char *what, char *out,
		      size_t size, char *err, size_t errlen)
{
	sv_t rest = v;

	if (v.len >= size)
		return fail(err, errlen, "%s: list longer than %zu characters", key, size - 1);
	while (rest.len) {
		ptrdiff_t comma = sv_find(rest, ',');
		sv_t item = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
		if (!ok(item))
			return fail(err, errlen, "%s: '%.*s' is not %s", key, (int)item.len, item.p,
				    what);
		if (comma < 0)
			break;
		rest = sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
		if (rest.len == 0)
			return fail(err, errlen, "%s: empty entry at the end", key);
	}
	if (sv_copy(v, out, size))
		return fail(err, errlen, "%s: list longer than %zu characters", key, size - 1);
	return 0;
}

static int parse_prefixes(sv_t v, const char *key, char *out, size_t size, char *err, size_t errlen)
{
	return parse_list(v, key, lists_prefix_ok, "a caller prefix", out, size, err, errlen);
}

static bool class_ok(sv_t name)
{
	return lists_bar_name_ok(name);
}

/* A callee prefix, or "internal" (our own users). */
static bool callee_ok(sv_t p)
{
	return lists_prefix_ok(p);
}

static bool net_ok(sv_t text)
{
	struct lists_cidr c;

	return lists_cidr_parse(text, &c) == 0;
}

static int parse_nets(sv_t v, const char *key, char *out, size_t size, char *err, size_t errlen)
{
	return parse_list(v, key, net_ok,
			  "an IP address or network (192.0.2.0/24, 2001:db8::/32, 198.51.100.7)",
			  out, size, err, errlen);
}

static bool watcher_ok(sv_t w)
{
	if (w.len == 0)
		return false;
	for (size_t i = 0; i < w.len; i++) {
		unsigned char c = (unsigned char)w.p[i];
		if (c <= ' ' || c == ',' || c == '"' || c == '<' || c == '>' || c == 0x7f)
			return false;
	}
	return !(w.len == 1 && w.p[0] == '@');
}

static int parse_watchers(sv_t v, const char *key, char *out, size_t size, char *err, size_t errlen)
{
	return parse_list(v, key, watcher_ok, "a watcher (user, user@domain or @domain)", out, size,
			  err, errlen);
}

bool uset_watcher_listed(const char *list, sv_t watcher, sv_t domain)
{
	sv_t rest = sv_cstr(list);
	ptrdiff_t at = sv_find(watcher, '@');
	sv_t wuser = at < 0 ? watcher : sv_make(watcher.p, (size_t)at);
	sv_t wdom = at < 0 ? domain : sv_make(watcher.p + at + 1, watcher.len - (size_t)at - 1);

	while (rest.len) {
		ptrdiff_t comma = sv_find(rest, ',');
		sv_t item = comma < 0 ? rest : sv_make(rest.p, (size_t)comma);
		ptrdiff_t iat = sv_find(item, '@');
		sv_t iuser = iat < 0 ? item : sv_make(item.p, (size_t)iat);
		sv_t idom =
		    iat < 0 ? domain : sv_make(item.p + iat + 1, item.len - (size_t)iat - 1);
		if (sv_ieq(idom, wdom) && (iuser.len == 0 || sv_eq(iuser, wuser)))
			return true;
		if (comma < 0)
			break;
		rest = sv_make(rest.p + comma + 1, rest.len - (size_t)comma - 1);
	}
	return false;
}

static int fwd_index(sv_t key)
{
	for (int i = 0; i < USET_FWD_COUNT; i++) {
		if (sv_ieq(key, sv_cstr(uset_fwd_keys[i])) ||
		    sv_ieq(key, sv_cstr(uset_fwd_alias[i])))
			return i;
	}
	return -1;
}

int uset_apply(struct uset *s, sv_t word, char *err, size_t errlen)
{
	ptrdiff_t eq = sv_find(word, '=');
	sv_t key, v;
	int k, b;

	if (eq <= 0)
		return fail(err, errlen, "'%.*s': expected key=value", (int)word.len, word.p);
	key = sv_make(word.p, (size_t)eq);
	v = sv_make(word.p + eq + 1, word.len - (size_t)eq - 1);
	if (sv_ieq(key, SV("ring"))) {
		if (v.len == 0 || sv_ieq(v, SV("parallel")))
			s->ring = USET_RING_PARALLEL;
		else if (sv_ieq(v, SV("sequential")))
			s->ring = USET_RING_SEQUENTIAL;
		else if (sv_ieq(v, SV("q-value")) || sv_ieq(v, SV("qvalue")) || sv_ieq(v, SV("q")))
			s->ring = USET_RING_QVALUE;
		else
			return fail(err, errlen,
				    "ring: '%.*s' is not parallel, sequential or q-value",
				    (int)v.len, v.p);
		return 0;
	}
	if (sv_ieq(key, SV("order")))
		return parse_order(v, s, err, errlen);
	if (sv_ieq(key, SV("ring_time"))) {
		if (v.len == 0) {
			s->ring_time = 0;
			return 0;
		}
		return parse_secs(v, "ring_time", &s->ring_time, err, errlen);
	}
	if (sv_ieq(key, SV("noanswer_after"))) {
		if (v.len == 0) {
			s->noanswer_after = 0;
			return 0;
		}
		return parse_secs(v, "noanswer_after", &s->noanswer_after, err, errlen);
	}
	if (sv_ieq(key, SV("stop_on_busy"))) {
		if (v.len == 0) {
			s->stop_on_busy = -1;
			return 0;
		}
		if (parse_bool(v, "stop_on_busy", &b, err, errlen))
			return EINVAL;
		s->stop_on_busy = b;
		return 0;
	}
	if (sv_ieq(key, SV("block_callers")))
		return parse_prefixes(v, "block_callers", s->block_callers,
				      sizeof(s->block_callers), err, errlen);
	if (sv_ieq(key, SV("allow_callers")))
		return parse_prefixes(v, "allow_callers", s->allow_callers,
				      sizeof(s->allow_callers), err, errlen);
	if (sv_ieq(key, SV("allow_only"))) {
		b = 0;
		if (v.len && parse_bool(v, "allow_only", &b, err, errlen))
			return EINVAL;
		s->allow_only = b;
		return 0;
	}
	if (sv_ieq(key, SV("redirect"))) {
		b = 0;
		if (v.len && parse_bool(v, "redirect", &b, err, errlen))
			return EINVAL;
		s->redirect = b;
		return 0;
	}
	if (sv_ieq(key, SV("watchers"))) {
		if (v.len == 0 || sv_ieq(v, SV("domain")))
			s->watchers = USET_WATCH_DOMAIN;
		else if (sv_ieq(v, SV("all")))
			s->watchers = USET_WATCH_ALL;
		else if (sv_ieq(v, SV("list")))
			s->watchers = USET_WATCH_LIST;
		else
			return fail(err, errlen, "watchers: '%.*s' is not domain, all or list",
				    (int)v.len, v.p);
		return 0;
	}
	if (sv_ieq(key, SV("watch_allow")))
		return parse_watchers(v, "watch_allow", s->watch_allow, sizeof(s->watch_allow), err,
				      errlen);
	if (sv_ieq(key, SV("watch_block")))
		return parse_watchers(v, "watch_block", s->watch_block, sizeof(s->watch_block), err,
				      errlen);
	if (sv_ieq(key, SV("bar")))
		return parse_list(v, "bar", class_ok,
				  "a barring class name (letters, digits, '-', '_', up to 31)",
				  s->out.classes, sizeof(s->out.classes), err, errlen);
	if (sv_ieq(key, SV("block_callees")))
		return parse_list(v, "block_callees", callee_ok, "a callee prefix",
				  s->out.block_callees, sizeof(s->out.block_callees), err, errlen);
	if (sv_ieq(key, SV("allow_callees")))
		return parse_list(v, "allow_callees", callee_ok, "a callee prefix or 'internal'",
				  s->out.allow_callees, sizeof(s->out.allow_callees), err, errlen);
	if (sv_ieq(key, SV("allow_callees_only"))) {
		b = 0;
		if (v.len && parse_bool(v, "allow_callees_only", &b, err, errlen))
			return EINVAL;
		s->out.allow_callees_only = b;
		return 0;
	}
	if (sv_ieq(key, SV("allow_sources")))
		return parse_nets(v, "allow_sources", s->allow_sources, sizeof(s->allow_sources),
				  err, errlen);
	if (sv_ieq(key, SV("block_sources")))
		return parse_nets(v, "block_sources", s->block_sources, sizeof(s->block_sources),
				  err, errlen);
	k = fwd_index(key);
	if (k >= 0) {
		if (v.len && check_target(v, uset_fwd_keys[k], err, errlen))
			return EINVAL;
		if (sv_copy(v, s->fwd[k], sizeof(s->fwd[k])))
			return fail(err, errlen, "%s: longer than %zu characters", uset_fwd_keys[k],
				    sizeof(s->fwd[k]) - 1);
		return 0;
	}
	return fail(
	    err, errlen,
	    "unknown setting '%.*s' (ring, order, ring_time, stop_on_busy, forward_always, "
	    "forward_busy, forward_noanswer, noanswer_after, forward_unregistered, block_callers, "
	    "allow_callers, allow_only, redirect, watchers, watch_allow, watch_block, bar, "
	    "block_callees, allow_callees, allow_callees_only, allow_sources, block_sources)",
	    (int)key.len, key.p);
}

int uset_parse(struct uset *s, sv_t text, char *err, size_t errlen)
{
	size_t i = 0;

	while (i < text.len) {
		size_t start;
		int rc;
		while (i < text.len && (text.p[i] == ' ' || text.p[i] == '\t'))
			i++;
		start = i;
		while (i < text.len && text.p[i] != ' ' && text.p[i] != '\t')
			i++;
		if (i > start &&
		    (rc = uset_apply(s, sv_make(text.p + start, i - start), err, errlen)))
			return rc;
	}
	return 0;
}

static void put(char *out, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put(char *out, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (*n >= len)
		return;
	va_start(ap, fmt);
	k = vsnprintf(out + *n, len - *n, fmt, ap);
	va_end(ap);
	*n += k > 0 ? (size_t)k : 0;
}

static void format_order(const struct uset *s, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < s->norder; i++) {
		put(out, len, &n, "%s%s", i ? "," : "", term_name(s->order[i].type));
		if (s->order[i].secs)
			put(out, len, &n, ":%u", s->order[i].secs);
	}
}

int uset_format(const struct uset *s, char *out, size_t len)
{
	char order[128];
	size_t n = 0;

	out[0] = '\0';
	if (s->ring != USET_RING_PARALLEL)
		put(out, len, &n, " ring=%s", uset_ring_name(s->ring));
	if (s->norder) {
		format_order(s, order, sizeof(order));
		put(out, len, &n, " order=%s", order);
	}
	if (s->ring_time)
		put(out, len, &n, " ring_time=%u", s->ring_time);
	if (s->stop_on_busy >= 0)
		put(out, len, &n, " stop_on_busy=%s", s->stop_on_busy ? "yes" : "no");
	for (int k = 0; k < USET_FWD_COUNT; k++) {
		if (s->fwd[k][0])
			put(out, len, &n, " %s=%s", uset_fwd_keys[k], s->fwd[k]);
	}
	if (s->noanswer_after)
		put(out, len, &n, " noanswer_after=%u", s->noanswer_after);
	if (s->block_callers[0])
		put(out, len, &n, " block_callers=%s", s->block_callers);
	if (s->allow_callers[0])
		put(out, len, &n, " allow_callers=%s", s->allow_callers);
	if (s->allow_only)
		put(out, len, &n, " allow_only=yes");
	if (s->redirect)
		put(out, len, &n, " redirect=yes");
	if (s->watchers != USET_WATCH_DOMAIN)
		put(out, len, &n, " watchers=%s", s->watchers == USET_WATCH_ALL ? "all" : "list");
	if (s->watch_allow[0])
		put(out, len, &n, " watch_allow=%s", s->watch_allow);
	if (s->watch_block[0])
		put(out, len, &n, " watch_block=%s", s->watch_block);
	if (s->out.classes[0])
		put(out, len, &n, " bar=%s", s->out.classes);
	if (s->out.block_callees[0])
		put(out, len, &n, " block_callees=%s", s->out.block_callees);
	if (s->out.allow_callees[0])
		put(out, len, &n, " allow_callees=%s", s->out.allow_callees);
	if (s->out.allow_callees_only)
		put(out, len, &n, " allow_callees_only=yes");
	if (s->allow_sources[0])
		put(out, len, &n, " allow_sources=%s", s->allow_sources);
	if (s->block_sources[0])
		put(out, len, &n, " block_sources=%s", s->block_sources);
	if (n >= len)
		return ENOSPC;
	if (n)
		memmove(out, out + 1, n); /* the leading space, and the NUL with it */
	return 0;
}

void uset_print(const struct uset *s, FILE *to)
{
	char order[128];

	format_order(s, order, sizeof(order));
	fprintf(to, "  ring                  %s\n", uset_ring_name(s->ring));
	fprintf(to, "  order                 %s\n", s->norder ? order : "(desk,pc,mobile,other)");
	if (s->ring_time)
		fprintf(to, "  ring_time             %u s\n", s->ring_time);
	else
		fprintf(to, "  ring_time             (server default)\n");
	fprintf(to, "  stop_on_busy          %s\n",
		s->stop_on_busy < 0 ? "(server default)"
		: s->stop_on_busy   ? "yes"
				    : "no");
	for (int k = 0; k < USET_FWD_COUNT; k++)
		fprintf(to, "  %-21s %s\n", uset_fwd_keys[k], s->fwd[k][0] ? s->fwd[k] : "-");
	if (s->noanswer_after)
		fprintf(to, "  noanswer_after        %u s\n", s->noanswer_after);
	else
		fprintf(to, "  noanswer_after        (server default)\n");
	fprintf(to, "  block_callers         %s\n", s->block_callers[0] ? s->block_callers : "-");
	fprintf(to, "  allow_callers         %s\n", s->allow_callers[0] ? s->allow_callers : "-");
	fprintf(to, "  allow_only            %s\n", s->allow_only ? "yes" : "no");
	fprintf(to, "  redirect              %s\n",
		s->redirect ? "yes (302 with the contacts)" : "no");
	fprintf(to, "  watchers              %s\n",
		s->watchers == USET_WATCH_ALL	 ? "all"
		: s->watchers == USET_WATCH_LIST ? "list"
						 : "domain");
	fprintf(to, "  watch_allow           %s\n", s->watch_allow[0] ? s->watch_allow : "-");
	fprintf(to, "  watch_block           %s\n", s->watch_block[0] ? s->watch_block : "-");
	fprintf(to, "  bar                   %s\n", s->out.classes[0] ? s->out.classes : "-");
	fprintf(to, "  block_callees         %s\n",
		s->out.block_callees[0] ? s->out.block_callees : "-");
	fprintf(to, "  allow_callees         %s\n",
		s->out.allow_callees[0] ? s->out.allow_callees : "-");
	fprintf(to, "  allow_callees_only    %s\n", s->out.allow_callees_only ? "yes" : "no");
	fprintf(to, "  allow_sources         %s\n",
		s->allow_sources[0] ? s->allow_sources : "(anywhere)");
	fprintf(to, "  block_sources         %s\n", s->block_sources[0] ? s->block_sources : "-");
}

bool uset_bar_empty(const struct uset_bar *b)
{
	return !b->classes[0] && !b->block_callees[0] && !b->allow_callees[0] &&
	       !b->allow_callees_only;
}

/* The next entry of a comma-separated list; false at its end. */
static bool csv_next(sv_t *rest, sv_t *item)
{
	ptrdiff_t comma;

	if (rest->len == 0)
		return false;
	comma = sv_find(*rest, ',');
	*item = comma < 0 ? *rest : sv_make(rest->p, (size_t)comma);
	*rest = comma < 0 ? sv_make(rest->p + rest->len, 0)
			  : sv_make(rest->p + comma + 1, rest->len - (size_t)comma - 1);
	return true;
}

/* allow_callees: "internal" names our own users, any other entry is a prefix. */
static bool allowed_callee(const char *csv, sv_t target, bool internal)
{
	sv_t rest = sv_cstr(csv), item;

	while (csv_next(&rest, &item)) {
		if (sv_ieq(item, SV("internal"))) {
			if (internal)
				return true;
		} else if (item.len &&
			   (sv_eq(item, SV("*")) ||
			    (target.len >= item.len && memcmp(target.p, item.p, item.len) == 0))) {
			return true;
		}
	}
	return false;
}

static enum uset_bar_verdict barred(char *why, size_t len, sv_t what)
{
	if (why && len)
		snprintf(why, len, "%.*s", (int)what.len, what.p);
	return USET_BARRED;
}

enum uset_bar_verdict uset_bar_check(const struct uset_bar *b, const struct lists_barring *cfg,
				     sv_t target, bool internal, char *why, size_t len)
{
	sv_t rest, name;

	if (uset_bar_empty(b))
		return USET_ALLOWED;
	if (!internal && target.len && lists_prefix_match(cfg->free.v, cfg->free.n, target))
		return USET_ALLOWED; /* emergency numbers: always */
	if (allowed_callee(b->allow_callees, target, internal))
		return USET_ALLOWED;
	if (b->allow_callees_only)
		return barred(why, len,
			      internal ? SV("internal calls not allowed")
				       : SV("not an allowed number"));
	if (internal)
		return USET_ALLOWED; /* block lists and classes are about numbers and other domains
				      */
	if (lists_prefix_match_csv(b->block_callees, target))
		return barred(why, len, SV("blocked number"));
	rest = sv_cstr(b->classes);
	while (csv_next(&rest, &name)) {
		const struct lists_bar_class *c = lists_bar_class_find(cfg, name);
		if (!c || lists_prefix_match(c->v, c->n, target))
			return barred(why, len, name); /* an unknown class bars: fail closed */
	}
	return USET_ALLOWED;
}

bool uset_line_source_allowed(sv_t line, const struct sockaddr *sa)
{
	static const char key[] = "allow_sources=";
	sv_t nets = SV_NULL;
	bool found = false;
	size_t i = 0;

	while (i < line.len) {
		size_t start;
		while (i < line.len && (line.p[i] == ' ' || line.p[i] == '\t'))
			i++;
		start = i;
		while (i < line.len && line.p[i] != ' ' && line.p[i] != '\t')
			i++;
		if (i - start >= sizeof(key) - 1 &&
		    sv_ieq(sv_make(line.p + start, sizeof(key) - 1), SV(key))) {
			/* the last one counts, as when the whole line is parsed */
			nets = sv_make(line.p + start + sizeof(key) - 1,
				       i - start - (sizeof(key) - 1));
			found = true;
		}
	}
	if (!found || nets.len == 0)
		return true;
	return lists_cidr_match_csv(nets, sa);
}
