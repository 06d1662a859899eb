/*
 * config.c - turns the YAML configuration file into struct cfg.
 *
 * The file is small and read once at start-up, so it is loaded whole with
 * libyaml's document API and walked against a table of known keys. One table
 * drives both the type checks and the error messages, so every key gets the
 * same precise "line N: 'key' must be ..." treatment, and an unknown key (a
 * typo) is an error instead of a setting that silently does nothing. A load
 * works on a copy and only replaces the caller's struct on success, so a
 * failed reload leaves the running configuration intact.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "core/sv.h"

/* A configuration file is a few KiB; anything this big is a mistake. */
#define CFG_FILE_MAX	 (1024 * 1024)
#define CFG_SEEN_MAX	 32
#define CFG_EXPIRES_MAX	 2147483647u
#define CFG_DEFAULT_PORT 5060

enum cfg_kind {
	CFG_K_SECTION,
	CFG_K_UINT,
	CFG_K_BOOL,
	CFG_K_STR,
	CFG_K_LOG_LEVEL,
	CFG_K_PROXY_MODE,
	CFG_K_ALGS,
	CFG_K_DOMAINS,
	CFG_K_MD5_ONLY,
	CFG_K_LISTEN,
	CFG_K_TERMINALS,
	CFG_K_REDIRECT,
	CFG_K_PREFIXES,
	CFG_K_CIDRS,
	CFG_K_FWD_HEADER,
	CFG_K_FEATURES,
	CFG_K_GATEWAYS,
	CFG_K_GROUPS,
	CFG_K_RULES,
	CFG_K_BAR_CLASSES,
	CFG_K_DP_TIMEOUT,  /* dialplan.gateway_timeout / gateway_ring_timeout: dp_config_set */
	CFG_K_DIALOG_PORT, /* udp.dialog_port: off, auto or a port */
	CFG_K_MEDIA_MODE,
};

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	size_t off;		   /* of the field in struct cfg */
	size_t size;		   /* CFG_K_STR: the field's buffer size */
	unsigned min, max;	   /* CFG_K_UINT */
	bool empty_ok;		   /* CFG_K_STR */
	const struct cfg_key *sub; /* CFG_K_SECTION */
};

#define CFG_FIELD_SIZE(f) sizeof(((struct cfg *)0)->f)
#define CFG_UINT(n, f, lo, hi)                                                                     \
	{                                                                                          \
		.name = n, .kind = CFG_K_UINT, .off = offsetof(struct cfg, f), .min = lo,          \
		.max = hi                                                                          \
	}
#define CFG_BOOL(n, f)                                                                             \
	{                                                                                          \
		.name = n, .kind = CFG_K_BOOL, .off = offsetof(struct cfg, f)                      \
	}
#define CFG_STR(n, f, e)                                                                           \
	{                                                                                          \
		.name = n, .kind = CFG_K_STR, .off = offsetof(struct cfg, f),                      \
		.size = CFG_FIELD_SIZE(f), .empty_ok = e                                           \
	}
#define CFG_SPECIAL(n, k)                                                                          \
	{                                                                                          \
		.name = n, .kind = k                                                               \
	}
#define CFG_LIST(n, k, f)                                                                          \
	{                                                                                          \
		.name = n, .kind = k, .off = offsetof(struct cfg, f)                               \
	}
#define CFG_SECTION(n, t)                                                                          \
	{                                                                                          \
		.name = n, .kind = CFG_K_SECTION, .sub = t                                         \
	}

static const struct cfg_key cfg_security_keys[] = {
    CFG_LIST("trusted_peers", CFG_K_CIDRS, trusted_peers),
    {0},
};

static const struct cfg_key cfg_database_keys[] = {
    CFG_STR("path", db_path, false),
    {0},
};

static const struct cfg_key cfg_timer_keys[] = {
    CFG_UINT("t1", t1_ms, 1, 60000),
    CFG_UINT("t2", t2_ms, 1, 600000),
    CFG_UINT("t4", t4_ms, 1, 600000),
    CFG_UINT("timer_c", timer_c_s, 1, 86400),
    {0},
};

static const struct cfg_key cfg_registrar_keys[] = {
    CFG_UINT("min_expires", min_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("max_expires", max_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("default_expires", default_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("max_contacts", max_contacts, 0, 65535),
    {0},
};

static const struct cfg_key cfg_auth_keys[] = {
    CFG_BOOL("enabled", auth_enabled),
    CFG_BOOL("preload", auth_preload),
    CFG_BOOL("check_uri", auth_check_uri),
    CFG_SPECIAL("algorithms", CFG_K_ALGS),
    CFG_SPECIAL("md5_only_user_agents", CFG_K_MD5_ONLY),
    CFG_UINT("nonce_ttl", nonce_ttl_s, 10, 86400),
    CFG_STR("secret", secret, true),
    {0},
};

static const struct cfg_key cfg_proxy_keys[] = {
    CFG_SPECIAL("mode", CFG_K_PROXY_MODE),
    CFG_BOOL("record_route", record_route),
    {0},
};

static const struct cfg_key cfg_tcp_keys[] = {
    CFG_UINT("max_connections", tcp_max_connections, 1, 1000000),
    CFG_UINT("idle_timeout", tcp_idle_timeout_s, 1, 86400),
    /* issue 11: connections that never carried an authenticated request (sec-tcp) */
    CFG_UINT("max_per_source", tcp_max_per_source, 0, 1000000),
    CFG_UINT("unauth_idle_timeout", tcp_unauth_idle_timeout_s, 1, 86400),
    {0},
};

static const struct cfg_key cfg_udp_keys[] = {
    CFG_BOOL("worker_ports", udp_worker_ports),
    CFG_UINT("worker_port_base", udp_worker_port_base, 0, 65535),
    CFG_SPECIAL("dialog_port", CFG_K_DIALOG_PORT),
    CFG_UINT("main_rcvbuf", udp_main_rcvbuf, 0, 1024 * 1024 * 1024),
    {0},
};

static const struct cfg_key cfg_dns_keys[] = {
    CFG_UINT("cache_ttl", dns_cache_ttl_s, 0, 86400),
    {0},
};

static const struct cfg_key cfg_calls_keys[] = {
    CFG_UINT("ring_time", ring_time_s, 1, 600),
    CFG_UINT("noanswer_after", noanswer_after_s, 1, 600),
    CFG_BOOL("stop_on_busy", stop_on_busy),
    CFG_UINT("max_forward_hops", max_forward_hops, 1, 20),
    CFG_SPECIAL("forward_header", CFG_K_FWD_HEADER),
    CFG_SPECIAL("feature_codes", CFG_K_FEATURES),
    CFG_SPECIAL("terminal_user_agents", CFG_K_TERMINALS),
    CFG_SPECIAL("redirect_domains", CFG_K_REDIRECT),
    {0},
};

static const struct cfg_key cfg_lists_keys[] = {
    CFG_LIST("block_callers", CFG_K_PREFIXES, lists.block_callers),
    CFG_LIST("allow_callers", CFG_K_PREFIXES, lists.allow_callers),
    CFG_LIST("block_callees", CFG_K_PREFIXES, lists.block_callees),
    CFG_LIST("block_sources", CFG_K_CIDRS, lists.block_sources),
    CFG_LIST("allow_sources", CFG_K_CIDRS, lists.allow_sources),
    CFG_UINT("block_status", lists.block_status, 403, 603),
    {0},
};

static const struct cfg_key cfg_barring_keys[] = {
    CFG_SPECIAL("classes", CFG_K_BAR_CLASSES),
    CFG_LIST("free", CFG_K_PREFIXES, barring.free),
    {0},
};

static const struct cfg_key cfg_dialplan_keys[] = {
    CFG_UINT("max_callee_digits", dialplan.max_callee_digits, DP_CALLEE_DIGITS,
	     DP_CALLEE_DIGITS_MAX),
    CFG_UINT("probe_interval", dialplan.probe_interval_s, 0, 3600),
    CFG_SPECIAL("gateway_timeout", CFG_K_DP_TIMEOUT),
    CFG_SPECIAL("gateway_ring_timeout", CFG_K_DP_TIMEOUT),
    CFG_SPECIAL("rules", CFG_K_RULES),
    {0},
};

static const struct cfg_key cfg_messaging_keys[] = {
    CFG_UINT("max_size", msg_max_size, 64, 1048576),
    CFG_UINT("store_time", msg_store_time_s, 1, 31536000),
    CFG_UINT("max_stored", msg_max_stored, 0, 100000),
    {0},
};

static const struct cfg_key cfg_presence_keys[] = {
    CFG_UINT("min_expires", pres_min_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("max_expires", pres_max_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("default_expires", pres_default_expires, 1, CFG_EXPIRES_MAX),
    CFG_UINT("max_body", pres_max_body, 256, 1048576),
    {0},
};

static const struct cfg_key cfg_broker_keys[] = {
    CFG_STR("domain", broker_domain, true),
    CFG_BOOL("auto_create", broker_auto_create),
    CFG_UINT("max_members", broker_max_members, 1, 1000000),
    {0},
};

/* signalling behind NAT (docs/nat.md) */
static const struct cfg_key cfg_nat_keys[] = {
    CFG_BOOL("contact_alias", nat_contact_alias),
    CFG_UINT("keepalive_interval", nat_keepalive_interval_s, 0, 3600),
    CFG_UINT("keepalive_max", nat_keepalive_max, 1, 1000000),
    {0},
};

/* dialogs (dialog/dialog.h) */
static const struct cfg_key cfg_dialog_keys[] = {
    CFG_UINT("max", dlg_max, 1, 10000000),
    CFG_UINT("timeout", dlg_timeout_s, 0, 31536000),
    CFG_UINT("session_expires", dlg_session_expires, 0, 86400),
    CFG_UINT("min_se", dlg_min_se, 1, 86400),
    CFG_UINT("sdp_max", dlg_sdp_max, 0, 65536),
    CFG_BOOL("test_short_timers", dlg_test_short_timers),
    {0},
};

/* billing records (services/cdr.h) */
static const struct cfg_key cfg_cdr_keys[] = {
    CFG_BOOL("enabled", cdr_enabled),
    CFG_UINT("keep_days", cdr_keep_days, 0, 36500),
    {0},
};

/* the media relay (services/mediasvc.h) */
static const struct cfg_key cfg_media_keys[] = {
    CFG_SPECIAL("mode", CFG_K_MEDIA_MODE),
    CFG_UINT("port_min", media_port_lo, 1024, 65534),
    CFG_UINT("port_max", media_port_hi, 1025, 65535),
    CFG_STR("bind", media_bind, true),
    CFG_STR("advertise", media_advertise, true),
    CFG_UINT("latch_window_ms", media_latch_window_ms, 100, 60000),
    CFG_UINT("quarantine_ms", media_quarantine_ms, 0, 600000),
    CFG_UINT("timeout", media_timeout_s, 0, 86400),
    CFG_BOOL("gateways", media_gateways),
    {0},
};

static const struct cfg_key cfg_control_keys[] = {
    CFG_STR("socket", ctl_socket, true),
    {0},
};

static const struct cfg_key cfg_flood_keys[] = {
    CFG_BOOL("enabled", flood_enabled),
    CFG_UINT("window", flood_window_s, 1, 3600),
    CFG_UINT("unauth_limit", flood_unauth_limit, 1, 10000000),
    CFG_UINT("auth_limit", flood_auth_limit, 1, 10000000),
    CFG_UINT("dialog_limit", flood_dialog_limit, 1, 10000000),
    CFG_UINT("ban_time", flood_ban_time_s, 1, 86400),
    CFG_UINT("ban_max", flood_ban_max_s, 1, 31536000),
    CFG_UINT("table_size", flood_table_size, 64, 16777216),
    {0},
};

/* state strangers may create (issue 11 hole 8) */
static const struct cfg_key cfg_strangers_keys[] = {
    CFG_UINT("subscriptions_per_source", str_subs_per_source, 0, 1000000),
    CFG_UINT("subscriptions", str_subs, 0, 10000000),
    CFG_UINT("messages_per_source", str_msgs_per_source, 0, 1000000),
    CFG_UINT("messages_per_sender", str_msgs_per_sender, 0, 1000000),
    CFG_UINT("messages", str_msgs, 0, 10000000),
    CFG_UINT("stored_messages", msgs_total, 1, 100000000),
    CFG_UINT("lookups_per_source", lookups_per_source, 1, 1000000),
    CFG_UINT("lookups", lookups, 1, 10000000),
    CFG_UINT("negative_cache", negative_cache, 0, 100000000),
    {0},
};

/* overload control (RFC 7339) */
static const struct cfg_key cfg_overload_keys[] = {
    CFG_BOOL("enabled", ovl_enabled),
    CFG_UINT("delay_ms", ovl_delay_ms, 1, 60000),
    CFG_UINT("retry_after", ovl_retry_after, 0, 3600),
    CFG_UINT("validity_ms", ovl_validity_ms, 1, 3600000),
    {0},
};

static const struct cfg_key cfg_top_keys[] = {
    CFG_SPECIAL("log_level", CFG_K_LOG_LEVEL),
    CFG_UINT("workers", workers, 0, 256),
    CFG_STR("server_name", server_name, false),
    CFG_SPECIAL("domains", CFG_K_DOMAINS),
    CFG_SPECIAL("listen", CFG_K_LISTEN),
    CFG_SECTION("database", cfg_database_keys),
    CFG_SECTION("timers", cfg_timer_keys),
    CFG_SECTION("registrar", cfg_registrar_keys),
    CFG_SECTION("auth", cfg_auth_keys),
    CFG_SECTION("proxy", cfg_proxy_keys),
    CFG_SECTION("tcp", cfg_tcp_keys),
    CFG_SECTION("udp", cfg_udp_keys),
    CFG_SECTION("dns", cfg_dns_keys),
    CFG_SECTION("calls", cfg_calls_keys),
    CFG_SECTION("lists", cfg_lists_keys),
    CFG_SECTION("barring", cfg_barring_keys),
    CFG_SECTION("security", cfg_security_keys),
    CFG_SPECIAL("gateways", CFG_K_GATEWAYS),
    CFG_SPECIAL("gateway_groups", CFG_K_GROUPS),
    CFG_SECTION("dialplan", cfg_dialplan_keys),
    CFG_SECTION("messaging", cfg_messaging_keys),
    CFG_SECTION("presence", cfg_presence_keys),
    CFG_SECTION("broker", cfg_broker_keys),
    CFG_SECTION("flood", cfg_flood_keys),     /* services/flood.h */
    CFG_SECTION("dialog", cfg_dialog_keys),   /* dialog/dialog.h */
    CFG_SECTION("nat", cfg_nat_keys),	      /* docs/nat.md */
    CFG_SECTION("media", cfg_media_keys),     /* services/mediasvc.h */
    CFG_SECTION("control", cfg_control_keys), /* server/ctl.h */
    CFG_SECTION("cdr", cfg_cdr_keys),	      /* services/cdr.h */
    CFG_SECTION("strangers", cfg_strangers_keys),
    CFG_SECTION("overload", cfg_overload_keys), /* RFC 7339 */
    {0},
};

/* "lo must not be greater than hi": the rules that span two keys. */
struct cfg_rule {
	size_t lo, hi;
	const char *lo_name, *hi_name;
};

#define CFG_RULE(a, an, b, bn)                                                                     \
	{                                                                                          \
		offsetof(struct cfg, a), offsetof(struct cfg, b), an, bn                           \
	}

static const struct cfg_rule cfg_rules[] = {
    CFG_RULE(t1_ms, "timers.t1", t2_ms, "timers.t2"),
    CFG_RULE(min_expires, "registrar.min_expires", max_expires, "registrar.max_expires"),
    CFG_RULE(min_expires, "registrar.min_expires", default_expires, "registrar.default_expires"),
    CFG_RULE(default_expires, "registrar.default_expires", max_expires, "registrar.max_expires"),
    CFG_RULE(pres_min_expires, "presence.min_expires", pres_max_expires, "presence.max_expires"),
    CFG_RULE(pres_min_expires, "presence.min_expires", pres_default_expires,
	     "presence.default_expires"),
    CFG_RULE(pres_default_expires, "presence.default_expires", pres_max_expires,
	     "presence.max_expires"),
    CFG_RULE(flood_ban_time_s, "flood.ban_time", flood_ban_max_s, "flood.ban_max"),
    CFG_RULE(media_port_lo, "media.port_min", media_port_hi, "media.port_max"),
};

/* Where each integer came from, so a cross-field error can point at a line. */
struct cfg_seen {
	size_t off;
	unsigned line, column;
};

struct cfg_parse {
	yaml_document_t *doc;
	struct cfg *c;
	struct cfg_error *err;
	const char *section;	   /* NULL at the top level */
	const struct cfg_key *key; /* the list being filled, for item callbacks */
	struct cfg_seen seen[CFG_SEEN_MAX];
	size_t nseen;
};

/* Which part of a listen entry is wrong, so a mapping entry can point at it. */
enum cfg_listen_part { CFG_LP_ENTRY, CFG_LP_PROTO, CFG_LP_ADDRESS, CFG_LP_PORT };

void cfg_defaults(struct cfg *c)
{
	*c = (struct cfg){
	    .log_level = LOG_INFO,
	    .t1_ms = 500,
	    .t2_ms = 4000,
	    .t4_ms = 5000,
	    .timer_c_s = 180,
	    .min_expires = 60,
	    .max_expires = 3600,
	    .default_expires = 3600,
	    .max_contacts = 10,
	    .auth_enabled = true,
	    .auth_preload = true,
	    .auth_check_uri = true,
	    .md5_only_ua = {"baresip v0.", "baresip v1."},
	    .nmd5_only_ua = 2,
	    .algorithms = {CFG_ALG_MD5, CFG_ALG_SHA256},
	    .nalgorithms = 2,
	    .nonce_ttl_s = 300,
	    .proxy_mode = CFG_PROXY_STATEFUL,
	    .record_route = true,
	    .nat_contact_alias = true,
	    .nat_keepalive_interval_s = 25,
	    .nat_keepalive_max = 2000,
	    .tcp_max_connections = 4096,
	    .tcp_idle_timeout_s = 600,
	    .tcp_max_per_source = 64,
	    .tcp_unauth_idle_timeout_s = 30,
	    .dns_cache_ttl_s = 60,
	    .ring_time_s = 20,
	    .noanswer_after_s = 20,
	    .max_forward_hops = 5,
	    .forward_header = CFG_FWD_DIVERSION,
	    .feature_codes = {"*72", "*73", "*90", "*91", "*92", "*93", "*94", "*95"},
	    .lists.block_status = 403,
	    .barring.free = {.v = {"112"}, .n = 1},
	    .dialplan = {.max_callee_digits = DP_CALLEE_DIGITS,
			 .probe_interval_s = 30,
			 .timeout_ms = DP_TIMEOUT_DEFAULT_MS},
	    .msg_max_size = 16384,
	    .msg_store_time_s = 7 * 86400,
	    .msg_max_stored = 100,
	    .pres_min_expires = 60,
	    .pres_max_expires = 3600,
	    .pres_default_expires = 3600,
	    .pres_max_body = 65536,
	    .broker_auto_create = true,
	    .broker_max_members = 10000,
	    .dlg_max = 100000,
	    .dlg_timeout_s = 43200,
	    .dlg_session_expires = 1800,
	    .dlg_min_se = 90,
	    .dlg_sdp_max = 8192,
	    .cdr_enabled = true,
	    .media_port_lo = 30000,
	    .media_port_hi = 39999,
	    .media_latch_window_ms = 5000,
	    .media_quarantine_ms = 10000,
	    .flood_enabled = true,
	    .flood_window_s = 10,
	    .flood_unauth_limit = 1000,
	    .flood_auth_limit = 2000,
	    .flood_dialog_limit = 5000,
	    .flood_ban_time_s = 60,
	    .flood_ban_max_s = 3600,
	    .flood_table_size = 65536,
	    .str_subs_per_source = 16,
	    .str_subs = 4096,
	    .str_msgs_per_source = 32,
	    .str_msgs_per_sender = 16,
	    .str_msgs = 4096,
	    .msgs_total = 200000,
	    .lookups_per_source = 256,
	    .lookups = 4096,
	    .negative_cache = 8192,
	    .ovl_enabled = true,
	    .ovl_delay_ms = 50,
	    .ovl_retry_after = 2,
	    .ovl_validity_ms = 500,
	};
	strcpy(c->server_name, "Switchboard");
	strcpy(c->db_path, "var/switchboard.db");
}

static struct cfg_error *cfg_err_or(struct cfg_error *err, struct cfg_error *scratch)
{
	return err ? err : scratch;
}

__attribute__((format(printf, 4, 5))) static int cfg_fail(struct cfg_error *err, unsigned line,
							  unsigned column, const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	err->column = column;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return EINVAL;
}

/* ------------------------------------------------------------------ hosts */

static bool cfg_label_ok(sv_t label)
{
	if (label.len == 0 || label.len > 63)
		return false;
	if (label.p[0] == '-' || label.p[label.len - 1] == '-')
		return false;
	for (size_t i = 0; i < label.len; i++) {
		char ch = label.p[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '-';
		if (!ok)
			return false;
	}
	return true;
}

static bool cfg_hostname_ok(sv_t host)
{
	ptrdiff_t dot;

	if (host.len == 0 || host.len > 253)
		return false;
	while ((dot = sv_find(host, '.')) >= 0) {
		if (!cfg_label_ok(sv_sub(host, 0, (size_t)dot)))
			return false;
		host = sv_sub(host, (size_t)dot + 1, host.len);
	}
	return cfg_label_ok(host);
}

static bool cfg_ip_ok(int af, sv_t addr)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];

	if (sv_copy(addr, tmp, sizeof(tmp)))
		return false;
	return inet_pton(af, tmp, bin) == 1;
}

/* A host as it appears in a SIP URI: name, IPv4 or [IPv6]. */
static bool cfg_urihost_ok(sv_t host)
{
	if (host.len >= 2 && host.p[0] == '[' && host.p[host.len - 1] == ']')
		return cfg_ip_ok(AF_INET6, sv_sub(host, 1, host.len - 2));
	return cfg_hostname_ok(host);
}

static int cfg_port_parse(sv_t v, uint16_t *port)
{
	uint32_t n;

	if (sv_to_u32(v, &n) || n < 1 || n > 65535)
		return EINVAL;
	*port = (uint16_t)n;
	return 0;
}

/* host[:port] for the advertise key. */
static bool cfg_hostport_ok(sv_t v)
{
	ptrdiff_t colon;
	uint16_t port;

	if (v.len && v.p[0] == '[') {
		ptrdiff_t close = sv_find(v, ']');
		if (close < 0)
			return false;
		colon = (size_t)close + 1 < v.len ? close + 1 : -1;
		if (colon > 0 && v.p[colon] != ':')
			return false;
	} else {
		colon = sv_find(v, ':');
	}
	if (colon < 0)
		return cfg_urihost_ok(v);
	return cfg_urihost_ok(sv_sub(v, 0, (size_t)colon)) &&
	       cfg_port_parse(sv_sub(v, (size_t)colon + 1, v.len), &port) == 0;
}

/* ----------------------------------------------------------------- listen */

static int cfg_proto_parse(sv_t name, enum sip_proto *proto, char *why, size_t whylen)
{
	enum sip_proto p = sip_proto_from_name(name);

	if (p == SIP_PROTO_UDP || p == SIP_PROTO_TCP) {
		*proto = p;
		return 0;
	}
	if (p == SIP_PROTO_OTHER || name.len == 0)
		snprintf(why, whylen, "unknown transport '%.*s' (use udp or tcp)", SV_ARG(name));
	else
		snprintf(why, whylen, "transport '%.*s' is not supported yet (use udp or tcp)",
			 SV_ARG(name));
	return EINVAL;
}

/* The address and port text of a listen entry, after "proto:". */
struct cfg_addr {
	sv_t host;
	sv_t port;
	bool v6;
	bool has_port;
};

/* Splits "[v6]:port", "v4:port", "[v6]" or "v4". */
static int cfg_addr_split(sv_t rest, struct cfg_addr *a, char *why, size_t whylen)
{
	ptrdiff_t i;

	*a = (struct cfg_addr){.v6 = rest.len && rest.p[0] == '['};
	if (a->v6) {
		i = sv_find(rest, ']');
		if (i < 0 || ((size_t)i + 1 < rest.len && rest.p[i + 1] != ':')) {
			snprintf(why, whylen, "invalid IP address");
			return EINVAL;
		}
		a->host = sv_sub(rest, 1, (size_t)i - 1);
		a->has_port = (size_t)i + 1 < rest.len;
		a->port = sv_sub(rest, (size_t)i + 2, rest.len);
		return 0;
	}
	i = sv_find(rest, ':');
	if (i >= 0 && sv_find(sv_sub(rest, (size_t)i + 1, rest.len), ':') >= 0) {
		snprintf(why, whylen, "IPv6 addresses must be in brackets, e.g. udp:[::1]:5060");
		return EINVAL;
	}
	a->host = i < 0 ? rest : sv_sub(rest, 0, (size_t)i);
	a->has_port = i >= 0;
	a->port = i < 0 ? SV_NULL : sv_sub(rest, (size_t)i + 1, rest.len);
	return 0;
}

static int cfg_listen_fill(struct cfg_listen *l, const struct cfg_addr *a, char *why, size_t whylen,
			   enum cfg_listen_part *part)
{
	*part = CFG_LP_ADDRESS;
	if (!cfg_ip_ok(a->v6 ? AF_INET6 : AF_INET, a->host) ||
	    sv_copy(a->host, l->host, sizeof(l->host))) {
		snprintf(why, whylen, "invalid IP address");
		return EINVAL;
	}
	*part = CFG_LP_PORT;
	l->port = CFG_DEFAULT_PORT;
	if (a->has_port && cfg_port_parse(a->port, &l->port)) {
		snprintf(why, whylen, "invalid port '%.*s' (must be 1 to 65535)",
			 (int)(a->port.len > 16 ? 16 : a->port.len), a->port.p);
		return EINVAL;
	}
	return 0;
}

static int cfg_listen_parse(const char *spec, struct cfg_listen *l, char *why, size_t whylen,
			    enum cfg_listen_part *part)
{
	sv_t s = sv_cstr(spec);
	ptrdiff_t colon = sv_find(s, ':');
	struct cfg_addr a;
	int rc;

	*l = (struct cfg_listen){0};
	*part = CFG_LP_ENTRY;
	if (colon < 0) {
		snprintf(why, whylen, "expected proto:address:port, e.g. udp:127.0.0.1:5060");
		return EINVAL;
	}
	*part = CFG_LP_PROTO;
	rc = cfg_proto_parse(sv_sub(s, 0, (size_t)colon), &l->proto, why, whylen);
	if (rc)
		return rc;
	*part = CFG_LP_ADDRESS;
	rc = cfg_addr_split(sv_sub(s, (size_t)colon + 1, s.len), &a, why, whylen);
	if (rc)
		return rc;
	return cfg_listen_fill(l, &a, why, whylen, part);
}

static bool cfg_listen_dup(const struct cfg *c, const struct cfg_listen *l)
{
	for (size_t i = 0; i < c->nlisten; i++) {
		const struct cfg_listen *o = &c->listen[i];
		if (o->proto == l->proto && o->port == l->port && strcmp(o->host, l->host) == 0)
			return true;
	}
	return false;
}

static int cfg_listen_add_part(struct cfg *c, const char *spec, struct cfg_error *err,
			       enum cfg_listen_part *part)
{
	struct cfg_listen l;
	char why[160];

	*part = CFG_LP_ENTRY;
	if (c->nlisten >= CFG_MAX_LISTEN)
		return cfg_fail(err, 0, 0, "too many listen entries (at most %d)", CFG_MAX_LISTEN);
	if (cfg_listen_parse(spec, &l, why, sizeof(why), part))
		return cfg_fail(err, 0, 0, "listen entry '%.64s': %s", spec, why);
	*part = CFG_LP_ENTRY;
	if (cfg_listen_dup(c, &l))
		return cfg_fail(err, 0, 0, "listen entry '%.64s' is listed twice", spec);
	c->listen[c->nlisten++] = l;
	return 0;
}

int cfg_add_listen(struct cfg *c, const char *spec, struct cfg_error *err)
{
	struct cfg_error scratch;
	enum cfg_listen_part part;

	return cfg_listen_add_part(c, spec, cfg_err_or(err, &scratch), &part);
}

/* ---------------------------------------------------------------- domains */

/* Lowercase, and IPv6 in brackets, as the host part of a request URI has it. */
int cfg_domain_norm(const char *domain, char *out, size_t size)
{
	sv_t d = sv_cstr(domain);
	int n;

	if (sv_find(d, ':') >= 0 && d.p[0] != '[') {
		if (!cfg_ip_ok(AF_INET6, d))
			return EINVAL;
		n = snprintf(out, size, "[%s]", domain);
	} else {
		if (!cfg_urihost_ok(d))
			return EINVAL;
		n = snprintf(out, size, "%s", domain);
	}
	if (n < 0 || (size_t)n >= size)
		return ENAMETOOLONG;
	for (char *p = out; *p; p++)
		*p = sv_lower_char(*p);
	return 0;
}

int cfg_add_domain(struct cfg *c, const char *domain, struct cfg_error *err)
{
	struct cfg_error scratch;
	char norm[CFG_FIELD_SIZE(domains[0])];
	int rc;

	err = cfg_err_or(err, &scratch);
	if (c->ndomains >= CFG_MAX_DOMAINS)
		return cfg_fail(err, 0, 0, "too many domains (at most %d)", CFG_MAX_DOMAINS);
	rc = cfg_domain_norm(domain, norm, sizeof(norm));
	if (rc == ENAMETOOLONG)
		return cfg_fail(err, 0, 0, "domain '%.64s...' is too long (at most %zu characters)",
				domain, sizeof(norm) - 1);
	if (rc)
		return cfg_fail(err, 0, 0, "domain '%.64s' is not a valid host name or IP address",
				domain);
	for (size_t i = 0; i < c->ndomains; i++) {
		if (strcmp(c->domains[i], norm) == 0)
			return cfg_fail(err, 0, 0, "domain '%.64s' is listed twice", domain);
	}
	strcpy(c->domains[c->ndomains++], norm);
	return 0;
}

/* ------------------------------------------------------------ cross rules */

static unsigned cfg_uint_at(const struct cfg *c, size_t off)
{
	unsigned v;

	memcpy(&v, (const char *)c + off, sizeof(v));
	return v;
}

static const struct cfg_rule *cfg_cross_check(const struct cfg *c)
{
	for (size_t i = 0; i < sizeof(cfg_rules) / sizeof(cfg_rules[0]); i++) {
		const struct cfg_rule *r = &cfg_rules[i];
		if (cfg_uint_at(c, r->lo) > cfg_uint_at(c, r->hi))
			return r;
	}
	return NULL;
}

static int cfg_cross_fail(const struct cfg *c, const struct cfg_rule *r, struct cfg_error *err,
			  unsigned line, unsigned column)
{
	return cfg_fail(err, line, column, "'%s' (%u) must not be greater than '%s' (%u)",
			r->lo_name, cfg_uint_at(c, r->lo), r->hi_name, cfg_uint_at(c, r->hi));
}

static bool cfg_ipv4_literal(const char *s)
{
	struct in_addr a;

	return inet_pton(AF_INET, s, &a) == 1;
}

/*
 * media: the port range holds even-aligned RTP/RTCP pairs; the relay binds
 * to an IPv4 address (default: the first IPv4 listen host) and writes one
 * that phones can reach (default: the bind address, which must then not be
 * 0.0.0.0).
 */
static int cfg_media_check(struct cfg *c, struct cfg_error *err)
{
	if (c->media_mode == CFG_MEDIA_NEVER && !c->media_gateways)
		return 0;
	if (c->media_port_hi - c->media_port_lo + 1 < 4)
		return cfg_fail(err, 0, 0,
				"'media.port_min'..'media.port_max' (%u..%u) must hold at least "
				"two RTP/RTCP port pairs",
				c->media_port_lo, c->media_port_hi);
	if (c->media_bind[0] && !cfg_ipv4_literal(c->media_bind))
		return cfg_fail(err, 0, 0, "'media.bind' (%s) must be a numeric IPv4 address",
				c->media_bind);
	if (c->media_advertise[0] && !cfg_ipv4_literal(c->media_advertise))
		return cfg_fail(err, 0, 0, "'media.advertise' (%s) must be a numeric IPv4 address",
				c->media_advertise);
	if (!c->media_bind[0]) {
		for (size_t i = 0; i < c->nlisten; i++) {
			if (cfg_ipv4_literal(c->listen[i].host)) {
				snprintf(c->media_bind, sizeof(c->media_bind), "%s",
					 c->listen[i].host);
				break;
			}
		}
		if (!c->media_bind[0])
			return cfg_fail(err, 0, 0,
					"'media.bind' is needed: no IPv4 listen address to "
					"default to");
	}
	if (!c->media_advertise[0] && strcmp(c->media_bind, "0.0.0.0") == 0)
		return cfg_fail(err, 0, 0,
				"'media.advertise' is needed when the relay binds to 0.0.0.0 "
				"(phones must be told one address they can reach)");
	if (strcmp(c->media_advertise[0] ? c->media_advertise : c->media_bind, "0.0.0.0") == 0)
		return cfg_fail(err, 0, 0, "'media.advertise' must not be 0.0.0.0");
	return 0;
}

int cfg_finish(struct cfg *c, struct cfg_error *err)
{
	struct cfg_error scratch;
	const struct cfg_rule *r;
	int rc;

	err = cfg_err_or(err, &scratch);
	r = cfg_cross_check(c);
	if (r)
		return cfg_cross_fail(c, r, err, 0, 0);
	if (c->auth_enabled && c->nalgorithms == 0)
		return cfg_fail(err, 0, 0, "'auth.algorithms' must list at least one algorithm");
	if (c->dlg_min_se < 90 && !c->dlg_test_short_timers)
		return cfg_fail(
		    err, 0, 0,
		    "'dialog.min_se' must be at least 90 (RFC 4028); smaller values are "
		    "for tests only ('dialog.test_short_timers: true')");
	if (c->dlg_session_expires && c->dlg_session_expires < c->dlg_min_se)
		return cfg_fail(err, 0, 0,
				"'dialog.session_expires' (%u) must not be smaller than "
				"'dialog.min_se' (%u)",
				c->dlg_session_expires, c->dlg_min_se);
	if (c->lists.block_status != 403 && c->lists.block_status != 603)
		return cfg_fail(err, 0, 0, "'lists.block_status' must be 403 or 603");
	{
		char why[200];
		unsigned line = 0;
		if (dp_config_resolve(&c->dialplan, why, sizeof(why), &line))
			return cfg_fail(err, line, 0, "%s", why);
	}
	if (c->nlisten == 0) {
		rc = cfg_add_listen(c, "udp:127.0.0.1:5060", err);
		if (!rc)
			rc = cfg_add_listen(c, "tcp:127.0.0.1:5060", err);
		if (rc)
			return rc;
	}
	return cfg_media_check(c, err);
}

/* ------------------------------------------------------------- YAML nodes */

static unsigned cfg_line(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.line + 1;
}

static unsigned cfg_col(const yaml_node_t *n)
{
	return (unsigned)n->start_mark.column + 1;
}

__attribute__((format(printf, 3, 4))) static int
cfg_fail_at(struct cfg_parse *p, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	p->err->line = cfg_line(n);
	p->err->column = cfg_col(n);
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return EINVAL;
}

/* Gives an error from cfg_add_* the position of the node it came from. */
static int cfg_place(int rc, struct cfg_parse *p, const yaml_node_t *n)
{
	if (rc) {
		p->err->line = cfg_line(n);
		p->err->column = cfg_col(n);
	}
	return rc;
}

static yaml_node_t *cfg_node(struct cfg_parse *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

static const char *cfg_str(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static sv_t cfg_sv(const yaml_node_t *n)
{
	return sv_make(cfg_str(n), n->data.scalar.length);
}

static bool cfg_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
		if (strcmp(cfg_str(n), nulls[i]) == 0)
			return true;
	}
	return false;
}

static const char *cfg_type_name(const yaml_node_t *n)
{
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	return "a string";
}

static void cfg_path(const struct cfg_parse *p, const char *name, char *out, size_t size)
{
	if (p->section)
		snprintf(out, size, "%s.%s", p->section, name);
	else
		snprintf(out, size, "%s", name);
}

/* "'workers' must be an integer from 0 to 256, not 'abc'"; subject is already quoted. */
static int cfg_fail_want(struct cfg_parse *p, const char *subject, const yaml_node_t *v,
			 const char *want)
{
	if (v->type != YAML_SCALAR_NODE)
		return cfg_fail_at(p, v, "%s must be %s, not %s", subject, want, cfg_type_name(v));
	if (cfg_is_null(v))
		return cfg_fail_at(p, v, "%s must be %s, not empty", subject, want);
	return cfg_fail_at(p, v, "%s must be %s, not '%.64s'", subject, want, cfg_str(v));
}

static int cfg_fail_key(struct cfg_parse *p, const char *name, const yaml_node_t *v,
			const char *want)
{
	char path[64], subject[72];

	cfg_path(p, name, path, sizeof(path));
	snprintf(subject, sizeof(subject), "'%s'", path);
	return cfg_fail_want(p, subject, v, want);
}

static void cfg_note_seen(struct cfg_parse *p, size_t off, const yaml_node_t *v)
{
	if (p->nseen < CFG_SEEN_MAX)
		p->seen[p->nseen++] = (struct cfg_seen){off, cfg_line(v), cfg_col(v)};
}

static const struct cfg_seen *cfg_find_seen(const struct cfg_parse *p, size_t off)
{
	const struct cfg_seen *found = NULL;

	for (size_t i = 0; i < p->nseen; i++) {
		if (p->seen[i].off == off)
			found = &p->seen[i];
	}
	return found;
}

/* ---------------------------------------------------------- scalar values */

static int cfg_set_uint(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	char want[64];
	uint32_t n;

	snprintf(want, sizeof(want), "an integer from %u to %u", k->min, k->max);
	if (v->type != YAML_SCALAR_NODE || sv_to_u32(cfg_sv(v), &n) || n < k->min || n > k->max)
		return cfg_fail_key(p, k->name, v, want);
	memcpy((char *)p->c + k->off, &(unsigned){n}, sizeof(unsigned));
	cfg_note_seen(p, k->off, v);
	return 0;
}

static int cfg_bool_parse(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};

	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return EINVAL;
}

static int cfg_set_bool(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	bool b;

	if (v->type != YAML_SCALAR_NODE || cfg_bool_parse(cfg_str(v), &b))
		return cfg_fail_key(p, k->name, v, "true or false");
	memcpy((char *)p->c + k->off, &b, sizeof(b));
	return 0;
}

static bool cfg_has_ctl(sv_t s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char ch = (unsigned char)s.p[i];
		if (ch < 0x20 || ch == 0x7f)
			return true;
	}
	return false;
}

static int cfg_set_str(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	sv_t s = SV_NULL;
	char path[64];

	if (v->type != YAML_SCALAR_NODE)
		return cfg_fail_key(p, k->name, v, "a string");
	if (!cfg_is_null(v))
		s = cfg_sv(v);
	cfg_path(p, k->name, path, sizeof(path));
	if (s.len == 0 && !k->empty_ok)
		return cfg_fail_at(p, v, "'%s' must not be empty", path);
	if (cfg_has_ctl(s))
		return cfg_fail_at(p, v, "'%s' must not contain control characters", path);
	if (sv_copy(s, (char *)p->c + k->off, k->size))
		return cfg_fail_at(p, v, "'%s' is too long (at most %zu bytes)", path, k->size - 1);
	return 0;
}

static int cfg_set_log_level(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	if (v->type != YAML_SCALAR_NODE || log_level_parse(cfg_str(v), &p->c->log_level))
		return cfg_fail_key(p, k->name, v, "one of error, warn, info, debug");
	return 0;
}

static int cfg_set_proxy_mode(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	if (v->type == YAML_SCALAR_NODE && strcmp(cfg_str(v), "stateful") == 0)
		p->c->proxy_mode = CFG_PROXY_STATEFUL;
	else if (v->type == YAML_SCALAR_NODE && strcmp(cfg_str(v), "stateless") == 0)
		p->c->proxy_mode = CFG_PROXY_STATELESS;
	else
		return cfg_fail_key(p, k->name, v, "stateful or stateless");
	return 0;
}

/* udp.dialog_port: 0 or off, auto (the listen port + 1), or a port. */
static int cfg_set_dialog_port(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	const char *s = v->type == YAML_SCALAR_NODE ? cfg_str(v) : "";
	uint32_t n;

	if (strcasecmp(s, "auto") == 0)
		p->c->udp_dialog_port = CFG_DIALOG_PORT_AUTO;
	else if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0)
		p->c->udp_dialog_port = 0;
	else if (v->type == YAML_SCALAR_NODE && sv_to_u32(cfg_sv(v), &n) == 0 && n <= 65535)
		p->c->udp_dialog_port = n;
	else
		return cfg_fail_key(p, k->name, v, "0 or off, auto, or a port from 1 to 65535");
	return 0;
}

static int cfg_set_media_mode(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	const char *s = v->type == YAML_SCALAR_NODE ? cfg_str(v) : "";

	if (strcmp(s, "never") == 0)
		p->c->media_mode = CFG_MEDIA_NEVER;
	else if (strcmp(s, "always") == 0)
		p->c->media_mode = CFG_MEDIA_ALWAYS;
	else if (strcmp(s, "nat") == 0)
		p->c->media_mode = CFG_MEDIA_NAT;
	else
		return cfg_fail_key(p, k->name, v, "never, always or nat");
	return 0;
}

static int cfg_set_fwd_header(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	const char *s = v->type == YAML_SCALAR_NODE ? cfg_str(v) : "";

	if (strcmp(s, "diversion") == 0)
		p->c->forward_header = CFG_FWD_DIVERSION;
	else if (strcmp(s, "history-info") == 0)
		p->c->forward_header = CFG_FWD_HISTORY_INFO;
	else if (strcmp(s, "both") == 0)
		p->c->forward_header = CFG_FWD_DIVERSION | CFG_FWD_HISTORY_INFO;
	else
		return cfg_fail_key(p, k->name, v, "diversion, history-info or both");
	return 0;
}

/* dialplan.gateway_timeout: 3, "1500ms", 0 or off; the same words as `route set` takes. */
static int cfg_set_dp_timeout(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	char err[200];

	if (v->type != YAML_SCALAR_NODE || cfg_is_null(v))
		return cfg_fail_key(p, k->name, v, "a duration (3, 1500ms, 0 or off)");
	if (dp_config_set(&p->c->dialplan, sv_cstr(k->name), cfg_sv(v), err, sizeof(err)))
		return cfg_fail_at(p, v, "%s", err);
	return 0;
}

static const char *const cfg_feature_names[CFG_FEATURE_COUNT] = {
    "forward_always_on",       "forward_always_off",	  "forward_busy_on",
    "forward_busy_off",	       "forward_noanswer_on",	  "forward_noanswer_off",
    "forward_unregistered_on", "forward_unregistered_off"};

/* calls.feature_codes: a mapping of the names above to codes ("*72"; "" disables one). */
static int cfg_set_features(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	if (cfg_is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return cfg_fail_key(p, k->name, v, "a mapping of feature names to codes");
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key), *vn = cfg_node(p, pr->value);
		const char *code;
		int i;

		for (i = 0; i < CFG_FEATURE_COUNT; i++) {
			if (kn->type == YAML_SCALAR_NODE &&
			    strcmp(cfg_str(kn), cfg_feature_names[i]) == 0)
				break;
		}
		if (i == CFG_FEATURE_COUNT)
			return cfg_fail_at(
			    p, kn,
			    "unknown feature code '%.64s' (forward_always_on, forward_always_off, "
			    "forward_busy_on/off, forward_noanswer_on/off, "
			    "forward_unregistered_on/off)",
			    kn->type == YAML_SCALAR_NODE ? cfg_str(kn) : "?");
		code = vn->type == YAML_SCALAR_NODE && !cfg_is_null(vn) ? cfg_str(vn) : "";
		if (strlen(code) >= sizeof(p->c->feature_codes[0]) ||
		    strspn(code, "*#0123456789") != strlen(code) ||
		    (code[0] && code[0] != '*' && code[0] != '#'))
			return cfg_fail_at(
			    p, vn,
			    "feature code '%.32s' must start with * or # and have at most %zu "
			    "keypad characters",
			    code, sizeof(p->c->feature_codes[0]) - 1);
		strcpy(p->c->feature_codes[i], code);
	}
	return 0;
}

/* ------------------------------------------------------------------ lists */

/* Calls fn for each item of a list; a null value is an empty list. */
static int cfg_each_item(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v,
			 int (*fn)(struct cfg_parse *p, const yaml_node_t *item))
{
	int rc;

	if (cfg_is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return cfg_fail_key(p, k->name, v, "a list");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		rc = fn(p, cfg_node(p, *it));
		if (rc)
			return rc;
	}
	return 0;
}

static int cfg_alg_item(struct cfg_parse *p, const yaml_node_t *item)
{
	enum cfg_auth_alg alg;
	struct cfg *c = p->c;

	if (item->type == YAML_SCALAR_NODE && strcasecmp(cfg_str(item), "MD5") == 0)
		alg = CFG_ALG_MD5;
	else if (item->type == YAML_SCALAR_NODE && (strcasecmp(cfg_str(item), "SHA-256") == 0 ||
						    strcasecmp(cfg_str(item), "SHA256") == 0))
		alg = CFG_ALG_SHA256;
	else
		return cfg_fail_want(p, "entries of 'auth.algorithms'", item, "SHA-256 or MD5");
	for (size_t i = 0; i < c->nalgorithms; i++) {
		if (c->algorithms[i] == alg)
			return cfg_fail_at(p, item, "'auth.algorithms' lists '%s' twice",
					   cfg_str(item));
	}
	c->algorithms[c->nalgorithms++] = alg;
	return 0;
}

static int cfg_set_algs(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	int rc;

	p->c->nalgorithms = 0;
	rc = cfg_each_item(p, k, v, cfg_alg_item);
	if (!rc && p->c->nalgorithms == 0)
		return cfg_fail_at(p, v,
				   "'auth.algorithms' must list at least one of SHA-256, MD5");
	return rc;
}

static int cfg_md5_only_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct cfg *c = p->c;
	const char *v;

	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'auth.md5_only_user_agents'", item,
				     "a User-Agent substring");
	v = cfg_str(item);
	if (c->nmd5_only_ua >= CFG_MAX_QUIRKS)
		return cfg_fail_at(p, item, "'auth.md5_only_user_agents' has more than %d entries",
				   CFG_MAX_QUIRKS);
	if (!v[0] || strlen(v) >= sizeof(c->md5_only_ua[0]))
		return cfg_fail_at(
		    p, item, "'auth.md5_only_user_agents' entries must be 1 to %zu characters",
		    sizeof(c->md5_only_ua[0]) - 1);
	strcpy(c->md5_only_ua[c->nmd5_only_ua++], v);
	return 0;
}

static int cfg_set_md5_only(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	p->c->nmd5_only_ua = 0;
	return cfg_each_item(p, k, v, cfg_md5_only_item);
}

/* calls.terminal_user_agents: a mapping "User-Agent substring: desk|pc|mobile|other", in order. */
static int cfg_set_terminals(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	struct cfg *c = p->c;

	c->nterminal_ua = 0;
	if (cfg_is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return cfg_fail_key(p, k->name, v,
				    "a mapping of User-Agent substrings to terminal types");
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key), *vn = cfg_node(p, pr->value);
		struct term_pattern *tp;
		const char *match;

		if (kn->type != YAML_SCALAR_NODE || cfg_is_null(kn))
			return cfg_fail_at(
			    p, kn,
			    "'calls.terminal_user_agents' keys must be User-Agent substrings");
		match = cfg_str(kn);
		if (!match[0] || strlen(match) >= sizeof(tp->match))
			return cfg_fail_at(
			    p, kn,
			    "'calls.terminal_user_agents' substrings must be 1 to %zu characters",
			    sizeof(tp->match) - 1);
		if (c->nterminal_ua >= CFG_MAX_TERMINAL_UA)
			return cfg_fail_at(p, kn,
					   "'calls.terminal_user_agents' has more than %d entries",
					   CFG_MAX_TERMINAL_UA);
		tp = &c->terminal_ua[c->nterminal_ua];
		if (vn->type != YAML_SCALAR_NODE || term_parse(cfg_sv(vn), &tp->type))
			return cfg_fail_at(
			    p, vn, "terminal type for '%.64s' must be desk, pc, mobile or other",
			    match);
		strcpy(tp->match, match);
		c->nterminal_ua++;
	}
	return 0;
}

static int cfg_redirect_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct cfg *c = p->c;
	char norm[CFG_FIELD_SIZE(redirect_domains[0])];

	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'calls.redirect_domains'", item,
				     "a domain name or \"*\"");
	if (c->nredirect_domains >= CFG_MAX_DOMAINS)
		return cfg_fail_at(p, item, "'calls.redirect_domains' has more than %d entries",
				   CFG_MAX_DOMAINS);
	if (strcmp(cfg_str(item), "*") == 0)
		strcpy(norm, "*");
	else if (cfg_domain_norm(cfg_str(item), norm, sizeof(norm)))
		return cfg_fail_at(
		    p, item,
		    "'calls.redirect_domains': '%.64s' is not a valid host name or IP address",
		    cfg_str(item));
	strcpy(c->redirect_domains[c->nredirect_domains++], norm);
	return 0;
}

static int cfg_set_redirect(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	p->c->nredirect_domains = 0;
	return cfg_each_item(p, k, v, cfg_redirect_item);
}

static int cfg_prefix_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct lists_prefixes *l = (struct lists_prefixes *)((char *)p->c + p->key->off);
	char path[64];

	cfg_path(p, p->key->name, path, sizeof(path));
	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'lists'", item, "a number or user prefix");
	if (!lists_prefix_ok(cfg_sv(item)))
		return cfg_fail_at(p, item,
				   "'%s': '%.64s' is not a prefix (1 to %d characters, no spaces, "
				   "commas, '@', ':', '<', '>' or quotes)",
				   path, cfg_str(item), LISTS_PREFIX_MAX - 1);
	if (l->n >= LISTS_MAX)
		return cfg_fail_at(p, item, "'%s' has more than %d entries", path, LISTS_MAX);
	strcpy(l->v[l->n++], cfg_str(item));
	return 0;
}

static int cfg_cidr_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct lists_nets *l = (struct lists_nets *)((char *)p->c + p->key->off);
	char path[64];

	cfg_path(p, p->key->name, path, sizeof(path));
	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'lists'", item, "an IP address or network");
	if (l->n >= LISTS_MAX)
		return cfg_fail_at(p, item, "'%s' has more than %d entries", path, LISTS_MAX);
	if (lists_cidr_parse(cfg_sv(item), &l->v[l->n]))
		return cfg_fail_at(p, item,
				   "'%s': '%.64s' is not an IP address or network (ADDRESS/BITS)",
				   path, cfg_str(item));
	l->n++;
	return 0;
}

static int cfg_set_list(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	int rc;

	if (k->kind == CFG_K_PREFIXES)
		((struct lists_prefixes *)((char *)p->c + k->off))->n = 0;
	else
		((struct lists_nets *)((char *)p->c + k->off))->n = 0;
	p->key = k;
	rc = cfg_each_item(p, k, v, k->kind == CFG_K_PREFIXES ? cfg_prefix_item : cfg_cidr_item);
	p->key = NULL;
	return rc;
}

/* barring.classes: a mapping "name: [prefix, ...]", e.g. international: ["00"]. */
static int cfg_set_bar_classes(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	struct lists_barring *b = &p->c->barring;

	b->nclasses = 0;
	if (cfg_is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return cfg_fail_key(p, k->name, v, "a mapping of class names to lists of prefixes");
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key), *vn = cfg_node(p, pr->value);
		struct lists_bar_class *c;

		if (kn->type != YAML_SCALAR_NODE || !lists_bar_name_ok(cfg_sv(kn)))
			return cfg_fail_at(
			    p, kn,
			    "'barring.classes' names must be 1 to %d letters, digits, "
			    "'-' or '_'",
			    LISTS_BAR_NAME_MAX - 1);
		if (lists_bar_class_find(b, cfg_sv(kn)))
			return cfg_fail_at(p, kn, "'barring.classes': '%.31s' appears twice",
					   cfg_str(kn));
		if (b->nclasses >= LISTS_BAR_CLASSES)
			return cfg_fail_at(p, kn, "'barring.classes' has more than %d classes",
					   LISTS_BAR_CLASSES);
		c = &b->classes[b->nclasses];
		memset(c, 0, sizeof(*c));
		strcpy(c->name, cfg_str(kn));
		if (vn->type != YAML_SEQUENCE_NODE)
			return cfg_fail_at(p, vn, "'barring.classes.%s' must be a list of prefixes",
					   c->name);
		for (yaml_node_item_t *it = vn->data.sequence.items.start;
		     it < vn->data.sequence.items.top; it++) {
			const yaml_node_t *item = cfg_node(p, *it);
			if (item->type != YAML_SCALAR_NODE || !lists_prefix_ok(cfg_sv(item)))
				return cfg_fail_at(
				    p, item,
				    "'barring.classes.%s': '%.64s' is not a prefix (1 "
				    "to %d characters, no spaces, commas, '@', ':', "
				    "'<', '>' or quotes)",
				    c->name, item->type == YAML_SCALAR_NODE ? cfg_str(item) : "?",
				    LISTS_PREFIX_MAX - 1);
			if (c->n >= LISTS_BAR_PREFIXES)
				return cfg_fail_at(p, item,
						   "'barring.classes.%s' has more than %d prefixes",
						   c->name, LISTS_BAR_PREFIXES);
			strcpy(c->v[c->n++], cfg_str(item));
		}
		b->nclasses++;
	}
	return 0;
}

/* ------------------------------------------------- gateways and dialplan */

static bool cfg_key_repeated(struct cfg_parse *p, const yaml_node_t *map,
			     const yaml_node_pair_t *at);

/* A scalar copied into out (1..size-1 bytes, no control characters). */
static int cfg_entry_str(struct cfg_parse *p, const char *what, const yaml_node_t *v, char *out,
			 size_t size)
{
	if (v->type != YAML_SCALAR_NODE || cfg_is_null(v))
		return cfg_fail_want(p, what, v, "a string");
	if (cfg_sv(v).len >= size || cfg_has_ctl(cfg_sv(v)))
		return cfg_fail_at(p, v, "%s must be 1 to %zu characters, no control characters",
				   what, size - 1);
	strcpy(out, cfg_str(v));
	return 0;
}

static int cfg_entry_uint(struct cfg_parse *p, const char *what, const yaml_node_t *v, unsigned lo,
			  unsigned hi, unsigned *out)
{
	uint32_t n;
	char want[64];

	snprintf(want, sizeof(want), "an integer from %u to %u", lo, hi);
	if (v->type != YAML_SCALAR_NODE || sv_to_u32(cfg_sv(v), &n) || n < lo || n > hi)
		return cfg_fail_want(p, what, v, want);
	*out = n;
	return 0;
}

static int cfg_entry_bool(struct cfg_parse *p, const char *what, const yaml_node_t *v, bool *out)
{
	if (v->type != YAML_SCALAR_NODE || cfg_bool_parse(cfg_str(v), out))
		return cfg_fail_want(p, what, v, "true or false");
	return 0;
}

/* Every key of an entry mapping goes to fn; unknown keys are errors. */
static int cfg_entry_walk(struct cfg_parse *p, const char *what, const yaml_node_t *map, void *obj,
			  int (*fn)(struct cfg_parse *p, const char *key, const yaml_node_t *v,
				    void *obj))
{
	int rc;

	if (map->type != YAML_MAPPING_NODE)
		return cfg_fail_want(p, what, map, "a mapping");
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key);
		if (kn->type != YAML_SCALAR_NODE)
			return cfg_fail_at(p, kn, "keys must be plain names");
		if (cfg_key_repeated(p, map, pr))
			return cfg_fail_at(p, kn, "duplicate key '%.64s' in %s", cfg_str(kn), what);
		rc = fn(p, cfg_str(kn), cfg_node(p, pr->value), obj);
		if (rc == ENOENT)
			return cfg_fail_at(p, kn, "unknown key '%.64s' in %s", cfg_str(kn), what);
		if (rc)
			return rc;
	}
	return 0;
}

/* A gateway being read: its password is hashed once user and realm are known. */
struct cfg_gateway_entry {
	struct dp_gateway *g;
	char password[128];
};

static int cfg_gateway_cred_key(struct cfg_parse *p, const char *key, const yaml_node_t *v,
				struct cfg_gateway_entry *e)
{
	struct dp_cred *c = &e->g->cred;
	char err[128] = "";

	if (strcmp(key, "auth_user") == 0)
		return cfg_entry_str(p, "a gateway's 'auth_user'", v, c->user, sizeof(c->user));
	if (strcmp(key, "auth_realm") == 0)
		return cfg_entry_str(p, "a gateway's 'auth_realm'", v, c->realm, sizeof(c->realm));
	if (strcmp(key, "auth_password") == 0)
		return cfg_entry_str(p, "a gateway's 'auth_password'", v, e->password,
				     sizeof(e->password));
	if (strcmp(key, "auth_ha1") == 0 || strcmp(key, "auth_ha1_sha256") == 0) {
		if (v->type != YAML_SCALAR_NODE ||
		    dp_gateway_set(e->g, sv_cstr(key + 5), cfg_sv(v), err, sizeof(err)))
			return cfg_fail_at(p, v, "a gateway's '%s': %s", key,
					   err[0] ? err : "hex digits");
		return 0;
	}
	return ENOENT;
}

static int cfg_gateway_key(struct cfg_parse *p, const char *key, const yaml_node_t *v, void *obj)
{
	struct cfg_gateway_entry *e = obj;
	struct dp_gateway *g = e->g;
	unsigned port;
	int rc;

	if (strcmp(key, "name") == 0)
		return cfg_entry_str(p, "a gateway's 'name'", v, g->name, sizeof(g->name));
	if (strcmp(key, "address") == 0) {
		rc = cfg_entry_str(p, "a gateway's 'address'", v, g->host, sizeof(g->host));
		if (!rc && !cfg_hostname_ok(cfg_sv(v)) && !cfg_ip_ok(AF_INET, cfg_sv(v)) &&
		    !cfg_ip_ok(AF_INET6, cfg_sv(v)))
			return cfg_fail_at(
			    p, v, "gateway address '%.64s' is not a host name or IP address",
			    cfg_str(v));
		return rc;
	}
	if (strcmp(key, "port") == 0) {
		rc = cfg_entry_uint(p, "a gateway's 'port'", v, 1, 65535, &port);
		g->port = (uint16_t)port;
		return rc;
	}
	if (strcmp(key, "transport") == 0) {
		if (v->type == YAML_SCALAR_NODE && strcasecmp(cfg_str(v), "udp") == 0)
			g->tcp = false;
		else if (v->type == YAML_SCALAR_NODE && strcasecmp(cfg_str(v), "tcp") == 0)
			g->tcp = true;
		else
			return cfg_fail_want(p, "a gateway's 'transport'", v, "udp or tcp");
		return 0;
	}
	if (strcmp(key, "probe") == 0)
		return cfg_entry_bool(p, "a gateway's 'probe'", v, &g->probe);
	if (strcmp(key, "timeout") == 0 || strcmp(key, "ring_timeout") == 0) {
		char err[200];
		if (v->type != YAML_SCALAR_NODE || cfg_is_null(v))
			return cfg_fail_want(p, "a gateway's timeout", v,
					     "a duration (3, 1500ms, 0 or off)");
		if (dp_gateway_set(g, sv_cstr(key), cfg_sv(v), err, sizeof(err)))
			return cfg_fail_at(p, v, "gateway: %s", err);
		return 0;
	}
	return cfg_gateway_cred_key(p, key, v, e);
}

static int cfg_gateway_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct dp_config *d = &p->c->dialplan;
	struct cfg_gateway_entry e = {0};
	struct dp_gateway *g;
	int rc;

	if (d->ngw >= DP_MAX_GATEWAYS)
		return cfg_fail_at(p, item, "more than %d gateways", DP_MAX_GATEWAYS);
	g = &d->gw[d->ngw];
	memset(g, 0, sizeof(*g));
	g->probe = true;
	g->line = cfg_line(item);
	e.g = g;
	rc = cfg_entry_walk(p, "a gateway", item, &e, cfg_gateway_key);
	if (rc)
		goto out;
	rc = EINVAL;
	if (!g->name[0] || !g->host[0]) {
		cfg_fail_at(p, item, "a gateway needs a 'name' and an 'address'");
		goto out;
	}
	if (!g->cred.user[0] != !g->cred.realm[0] ||
	    (g->cred.user[0] && !e.password[0] && !g->cred.ha1_md5[0] && !g->cred.ha1_sha256[0]) ||
	    (!g->cred.user[0] && (e.password[0] || g->cred.ha1_md5[0] || g->cred.ha1_sha256[0]))) {
		cfg_fail_at(p, item,
			    "gateway '%s': credentials need 'auth_user', 'auth_realm' and "
			    "'auth_password' (or 'auth_ha1' / 'auth_ha1_sha256')",
			    g->name);
		goto out;
	}
	if (e.password[0])
		dp_cred_hash(&g->cred, sv_cstr(e.password));
	d->ngw++;
	rc = 0;
out:
	explicit_bzero(e.password, sizeof(e.password));
	return rc;
}

static int cfg_member_key(struct cfg_parse *p, const char *key, const yaml_node_t *v, void *obj)
{
	struct dp_member *m = obj;

	if (strcmp(key, "gateway") == 0)
		return cfg_entry_str(p, "a member's 'gateway'", v, m->name, sizeof(m->name));
	if (strcmp(key, "priority") == 0)
		return cfg_entry_uint(p, "a member's 'priority'", v, 0, 1000, &m->priority);
	if (strcmp(key, "weight") == 0)
		return cfg_entry_uint(p, "a member's 'weight'", v, 1, 1000, &m->weight);
	return ENOENT;
}

static int cfg_group_key(struct cfg_parse *p, const char *key, const yaml_node_t *v, void *obj)
{
	struct dp_group *g = obj;
	int rc;

	if (strcmp(key, "name") == 0)
		return cfg_entry_str(p, "a gateway group's 'name'", v, g->name, sizeof(g->name));
	if (strcmp(key, "gateways") != 0)
		return ENOENT;
	if (v->type != YAML_SEQUENCE_NODE)
		return cfg_fail_want(p, "a gateway group's 'gateways'", v, "a list");
	for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		const yaml_node_t *item = cfg_node(p, *it);
		struct dp_member *m;
		if (g->n >= DP_MAX_MEMBERS)
			return cfg_fail_at(p, item, "a gateway group has more than %d gateways",
					   DP_MAX_MEMBERS);
		m = &g->m[g->n];
		memset(m, 0, sizeof(*m));
		m->weight = 1;
		m->line = cfg_line(item);
		if (item->type == YAML_SCALAR_NODE) /* just a name */
			rc = cfg_entry_str(p, "a gateway group member", item, m->name,
					   sizeof(m->name));
		else
			rc = cfg_entry_walk(p, "a gateway group member", item, m, cfg_member_key);
		if (rc)
			return rc;
		if (!m->name[0])
			return cfg_fail_at(p, item, "a gateway group member needs 'gateway'");
		g->n++;
	}
	return 0;
}

static int cfg_group_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct dp_config *d = &p->c->dialplan;
	struct dp_group *g;
	int rc;

	if (d->ngrp >= DP_MAX_GROUPS)
		return cfg_fail_at(p, item, "more than %d gateway groups", DP_MAX_GROUPS);
	g = &d->grp[d->ngrp];
	memset(g, 0, sizeof(*g));
	g->line = cfg_line(item);
	rc = cfg_entry_walk(p, "a gateway group", item, g, cfg_group_key);
	if (rc)
		return rc;
	if (!g->name[0] || g->n == 0)
		return cfg_fail_at(p, item, "a gateway group needs a 'name' and 'gateways'");
	d->ngrp++;
	return 0;
}

static int cfg_op_key(struct cfg_parse *p, const char *key, const yaml_node_t *v, void *obj)
{
	struct dp_op *op = obj;
	int rc;

	if (strcmp(key, "strip") == 0) {
		op->kind = DP_OP_STRIP;
		return cfg_entry_uint(p, "'strip'", v, 1, DP_CALLEE_DIGITS_MAX, &op->count);
	}
	if (strcmp(key, "prefix") == 0) {
		op->kind = DP_OP_PREFIX;
		rc = cfg_entry_str(p, "'prefix'", v, op->text, sizeof(op->text));
		if (!rc && !dp_digits_ok(cfg_sv(v), true))
			return cfg_fail_at(p, v,
					   "'%.32s' is not digits (with an optional leading '+')",
					   cfg_str(v));
		return rc;
	}
	if (strcmp(key, "digits") == 0) {
		rc = cfg_entry_str(p, "'digits'", v, op->text, sizeof(op->text));
		if (!rc && !dp_digits_ok(cfg_sv(v), false))
			return cfg_fail_at(p, v, "'%.32s' is not digits", cfg_str(v));
		return rc;
	}
	if (strcmp(key, "with") == 0) {
		if (v->type == YAML_SCALAR_NODE && cfg_is_null(v)) {
			op->text[0] = '\0'; /* replace with nothing */
			return 0;
		}
		return cfg_entry_str(p, "'with'", v, op->text, sizeof(op->text));
	}
	if (strcmp(key, "insert") == 0 || strcmp(key, "delete") == 0) {
		op->kind = key[0] == 'i' ? DP_OP_INSERT : DP_OP_DELETE;
		return cfg_entry_uint(p, "the position", v, 0, DP_CALLEE_DIGITS_MAX, &op->at);
	}
	if (strcmp(key, "count") == 0)
		return cfg_entry_uint(p, "'count'", v, 1, DP_CALLEE_DIGITS_MAX, &op->count);
	if (strcmp(key, "replace") == 0) {
		op->kind = DP_OP_REPLACE;
		return cfg_entry_str(p, "'replace'", v, op->regex, sizeof(op->regex));
	}
	return ENOENT;
}

static int cfg_rule_key(struct cfg_parse *p, const char *key, const yaml_node_t *v, void *obj)
{
	struct dp_rule *r = obj;
	int rc;

	if (strcmp(key, "prefix") == 0) {
		rc = cfg_entry_str(p, "a rule's 'prefix'", v, r->prefix, sizeof(r->prefix));
		if (!rc && !dp_digits_ok(cfg_sv(v), true))
			return cfg_fail_at(
			    p, v, "prefix '%.32s' is not digits (with an optional leading '+')",
			    cfg_str(v));
		return rc;
	}
	if (strcmp(key, "regex") == 0)
		return cfg_entry_str(p, "a rule's 'regex'", v, r->regex, sizeof(r->regex));
	if (strcmp(key, "redirect") == 0)
		return cfg_entry_bool(p, "a rule's 'redirect'", v, &r->redirect);
	if (strcmp(key, "route") == 0) {
		if (v->type == YAML_SCALAR_NODE && !cfg_is_null(v)) {
			r->nroute = 1;
			return cfg_entry_str(p, "a rule's 'route'", v, r->route_names[0],
					     DP_NAME_MAX);
		}
		if (v->type != YAML_SEQUENCE_NODE)
			return cfg_fail_want(p, "a rule's 'route'", v, "a list of gateway groups");
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     it < v->data.sequence.items.top; it++) {
			if (r->nroute >= DP_MAX_ROUTE)
				return cfg_fail_at(p, v, "a rule routes to at most %d groups",
						   DP_MAX_ROUTE);
			rc = cfg_entry_str(p, "a gateway group name", cfg_node(p, *it),
					   r->route_names[r->nroute], DP_NAME_MAX);
			if (rc)
				return rc;
			r->nroute++;
		}
		return 0;
	}
	if (strcmp(key, "transform") == 0) {
		if (v->type != YAML_SEQUENCE_NODE)
			return cfg_fail_want(p, "a rule's 'transform'", v, "a list of steps");
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     it < v->data.sequence.items.top; it++) {
			const yaml_node_t *item = cfg_node(p, *it);
			struct dp_op *op;
			if (r->nops >= DP_MAX_OPS)
				return cfg_fail_at(p, item, "a rule has at most %d transform steps",
						   DP_MAX_OPS);
			op = &r->ops[r->nops];
			memset(op, 0, sizeof(*op));
			op->kind = DP_OP_UNSET;
			rc = cfg_entry_walk(p, "a transform step", item, op, cfg_op_key);
			if (rc)
				return rc;
			if (op->kind == DP_OP_UNSET ||
			    ((op->kind == DP_OP_INSERT || op->kind == DP_OP_PREFIX) &&
			     !op->text[0]) ||
			    (op->kind == DP_OP_DELETE && !op->count))
				return cfg_fail_at(
				    p, item,
				    "a transform step is one of {strip: N}, {prefix: DIGITS}, "
				    "{insert: POS, digits: DIGITS}, {delete: POS, count: N}, "
				    "{replace: REGEX, with: TEXT}");
			r->nops++;
		}
		return 0;
	}
	return ENOENT;
}

static int cfg_rule_item(struct cfg_parse *p, const yaml_node_t *item)
{
	struct dp_config *d = &p->c->dialplan;
	struct dp_rule *r;
	int rc;

	if (d->nrules >= DP_MAX_RULES)
		return cfg_fail_at(p, item, "more than %d dialplan rules", DP_MAX_RULES);
	r = &d->rules[d->nrules];
	memset(r, 0, sizeof(*r));
	r->line = cfg_line(item);
	rc = cfg_entry_walk(p, "a dialplan rule", item, r, cfg_rule_key);
	if (rc)
		return rc;
	if (!r->prefix[0] == !r->regex[0])
		return cfg_fail_at(p, item,
				   "a dialplan rule needs exactly one of 'prefix' and 'regex'");
	d->nrules++;
	return 0;
}

static int cfg_domain_item(struct cfg_parse *p, const yaml_node_t *item)
{
	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'domains'", item, "a domain name");
	return cfg_place(cfg_add_domain(p->c, cfg_str(item), p->err), p, item);
}

static int cfg_set_domains(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	p->c->ndomains = 0;
	return cfg_each_item(p, k, v, cfg_domain_item);
}

/* The parts of a { proto, address, port, advertise } listen entry. */
struct cfg_listen_map {
	const yaml_node_t *proto, *address, *port, *advertise;
};

static const yaml_node_t **cfg_listen_slot(struct cfg_listen_map *m, const char *key)
{
	if (strcmp(key, "proto") == 0)
		return &m->proto;
	if (strcmp(key, "address") == 0)
		return &m->address;
	if (strcmp(key, "port") == 0)
		return &m->port;
	if (strcmp(key, "advertise") == 0)
		return &m->advertise;
	return NULL;
}

static int cfg_listen_collect(struct cfg_parse *p, const yaml_node_t *map, struct cfg_listen_map *m)
{
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key), *vn = cfg_node(p, pr->value);
		const yaml_node_t **slot;

		if (kn->type != YAML_SCALAR_NODE)
			return cfg_fail_at(p, kn, "keys must be plain names in a 'listen' entry");
		slot = cfg_listen_slot(m, cfg_str(kn));
		if (!slot)
			return cfg_fail_at(p, kn, "unknown key '%.64s' in a 'listen' entry",
					   cfg_str(kn));
		if (*slot)
			return cfg_fail_at(p, kn, "duplicate key '%s' in a 'listen' entry",
					   cfg_str(kn));
		if (vn->type != YAML_SCALAR_NODE || cfg_is_null(vn))
			return cfg_fail_at(p, vn, "'listen' entry key '%s' must be a plain value",
					   cfg_str(kn));
		*slot = vn;
	}
	if (!m->proto)
		return cfg_fail_at(p, map, "'listen' entry has no 'proto' (udp or tcp)");
	if (!m->address)
		return cfg_fail_at(p, map, "'listen' entry has no 'address'");
	return 0;
}

static int cfg_advertise(struct cfg_parse *p, const char *spec, const yaml_node_t *adv)
{
	struct cfg_listen *l = &p->c->listen[p->c->nlisten - 1];
	sv_t a = cfg_sv(adv);

	if (!cfg_hostport_ok(a) || sv_copy(a, l->advertise, sizeof(l->advertise)))
		return cfg_fail_at(p, adv,
				   "listen entry '%.64s': invalid advertise address '%.64s'", spec,
				   cfg_str(adv));
	return 0;
}

static int cfg_listen_mapping(struct cfg_parse *p, const yaml_node_t *map)
{
	struct cfg_listen_map m = {0};
	enum cfg_listen_part part;
	const char *addr;
	char spec[256];
	bool bracket;
	int rc;

	rc = cfg_listen_collect(p, map, &m);
	if (rc)
		return rc;
	addr = cfg_str(m.address);
	bracket = strchr(addr, ':') && addr[0] != '[';
	snprintf(spec, sizeof(spec), "%.16s:%s%.80s%s:%.16s", cfg_str(m.proto), bracket ? "[" : "",
		 addr, bracket ? "]" : "", m.port ? cfg_str(m.port) : "5060");
	rc = cfg_listen_add_part(p->c, spec, p->err, &part);
	if (rc) {
		const yaml_node_t *at = part == CFG_LP_PROTO		? m.proto
					: part == CFG_LP_ADDRESS	? m.address
					: part == CFG_LP_PORT && m.port ? m.port
									: map;
		return cfg_place(rc, p, at);
	}
	return m.advertise ? cfg_advertise(p, spec, m.advertise) : 0;
}

/*
 * "- udp:1.2.3.4:" and "- udp:1.2.3.4: 5060" are YAML for one-key mappings;
 * read them back as the string that was meant, so the error (or success)
 * speaks of the listen entry and not of an unknown key.
 */
static bool cfg_listen_as_text(struct cfg_parse *p, const yaml_node_t *m, char *out, size_t size)
{
	const yaml_node_pair_t *pr = m->data.mapping.pairs.start;
	const yaml_node_t *k, *v;

	if (m->data.mapping.pairs.top - pr != 1)
		return false;
	k = cfg_node(p, pr->key);
	v = cfg_node(p, pr->value);
	if (k->type != YAML_SCALAR_NODE || !strchr(cfg_str(k), ':') || v->type != YAML_SCALAR_NODE)
		return false;
	snprintf(out, size, "%.100s:%.32s", cfg_str(k), cfg_is_null(v) ? "" : cfg_str(v));
	return true;
}

static int cfg_listen_item(struct cfg_parse *p, const yaml_node_t *item)
{
	char spec[160];

	if (item->type == YAML_MAPPING_NODE && cfg_listen_as_text(p, item, spec, sizeof(spec)))
		return cfg_place(cfg_add_listen(p->c, spec, p->err), p, item);
	if (item->type == YAML_MAPPING_NODE)
		return cfg_listen_mapping(p, item);
	if (item->type != YAML_SCALAR_NODE || cfg_is_null(item))
		return cfg_fail_want(p, "entries of 'listen'", item,
				     "\"proto:address:port\" or a mapping");
	return cfg_place(cfg_add_listen(p->c, cfg_str(item), p->err), p, item);
}

static int cfg_set_listen(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	p->c->nlisten = 0;
	return cfg_each_item(p, k, v, cfg_listen_item);
}

/* --------------------------------------------------------------- mappings */

static int cfg_walk_map(struct cfg_parse *p, const yaml_node_t *map, const struct cfg_key *keys);

static int cfg_set_section(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	int rc;

	if (cfg_is_null(v))
		return 0;
	if (v->type != YAML_MAPPING_NODE)
		return cfg_fail_key(p, k->name, v, "a mapping");
	p->section = k->name;
	rc = cfg_walk_map(p, v, k->sub);
	p->section = NULL;
	return rc;
}

static int cfg_apply(struct cfg_parse *p, const struct cfg_key *k, const yaml_node_t *v)
{
	switch (k->kind) {
	case CFG_K_SECTION:
		return cfg_set_section(p, k, v);
	case CFG_K_UINT:
		return cfg_set_uint(p, k, v);
	case CFG_K_BOOL:
		return cfg_set_bool(p, k, v);
	case CFG_K_STR:
		return cfg_set_str(p, k, v);
	case CFG_K_LOG_LEVEL:
		return cfg_set_log_level(p, k, v);
	case CFG_K_PROXY_MODE:
		return cfg_set_proxy_mode(p, k, v);
	case CFG_K_DIALOG_PORT:
		return cfg_set_dialog_port(p, k, v);
	case CFG_K_MEDIA_MODE:
		return cfg_set_media_mode(p, k, v);
	case CFG_K_ALGS:
		return cfg_set_algs(p, k, v);
	case CFG_K_DOMAINS:
		return cfg_set_domains(p, k, v);
	case CFG_K_MD5_ONLY:
		return cfg_set_md5_only(p, k, v);
	case CFG_K_LISTEN:
		return cfg_set_listen(p, k, v);
	case CFG_K_TERMINALS:
		return cfg_set_terminals(p, k, v);
	case CFG_K_REDIRECT:
		return cfg_set_redirect(p, k, v);
	case CFG_K_PREFIXES:
	case CFG_K_CIDRS:
		return cfg_set_list(p, k, v);
	case CFG_K_FWD_HEADER:
		return cfg_set_fwd_header(p, k, v);
	case CFG_K_FEATURES:
		return cfg_set_features(p, k, v);
	case CFG_K_GATEWAYS:
		p->c->dialplan.ngw = 0;
		return cfg_each_item(p, k, v, cfg_gateway_item);
	case CFG_K_GROUPS:
		p->c->dialplan.ngrp = 0;
		return cfg_each_item(p, k, v, cfg_group_item);
	case CFG_K_RULES:
		p->c->dialplan.nrules = 0;
		return cfg_each_item(p, k, v, cfg_rule_item);
	case CFG_K_BAR_CLASSES:
		return cfg_set_bar_classes(p, k, v);
	case CFG_K_DP_TIMEOUT:
		return cfg_set_dp_timeout(p, k, v);
	}
	return EINVAL;
}

static const struct cfg_key *cfg_find_key(const struct cfg_key *keys, const char *name)
{
	for (; keys->name; keys++) {
		if (strcmp(keys->name, name) == 0)
			return keys;
	}
	return NULL;
}

static bool cfg_key_repeated(struct cfg_parse *p, const yaml_node_t *map,
			     const yaml_node_pair_t *at)
{
	const char *name = cfg_str(cfg_node(p, at->key));

	for (const yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < at; pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key);
		if (kn->type == YAML_SCALAR_NODE && strcmp(cfg_str(kn), name) == 0)
			return true;
	}
	return false;
}

static int cfg_bad_key(struct cfg_parse *p, const yaml_node_t *kn, const char *what)
{
	if (p->section)
		return cfg_fail_at(p, kn, "%s '%.64s' in '%s'", what, cfg_str(kn), p->section);
	return cfg_fail_at(p, kn, "%s '%.64s'", what, cfg_str(kn));
}

static int cfg_walk_map(struct cfg_parse *p, const yaml_node_t *map, const struct cfg_key *keys)
{
	int rc;

	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *kn = cfg_node(p, pr->key);
		const struct cfg_key *k;

		if (kn->type != YAML_SCALAR_NODE)
			return cfg_fail_at(p, kn, "keys must be plain names, not %s",
					   cfg_type_name(kn));
		if (cfg_key_repeated(p, map, pr))
			return cfg_bad_key(p, kn, "duplicate key");
		k = cfg_find_key(keys, cfg_str(kn));
		if (!k)
			return cfg_bad_key(p, kn, "unknown key");
		rc = cfg_apply(p, k, cfg_node(p, pr->value));
		if (rc)
			return rc;
	}
	return 0;
}

/* A cross-field error points at whichever of the two keys the file set last. */
static int cfg_cross_at_line(struct cfg_parse *p)
{
	const struct cfg_rule *r = cfg_cross_check(p->c);
	const struct cfg_seen *lo, *hi, *at;

	if (!r)
		return 0;
	lo = cfg_find_seen(p, r->lo);
	hi = cfg_find_seen(p, r->hi);
	at = !lo ? hi : !hi ? lo : lo->line > hi->line ? lo : hi;
	return cfg_cross_fail(p->c, r, p->err, at ? at->line : 0, at ? at->column : 0);
}

static int cfg_apply_doc(struct cfg_parse *p)
{
	const yaml_node_t *root = yaml_document_get_root_node(p->doc);
	int rc;

	if (!root || cfg_is_null(root))
		return 0;
	if (root->type != YAML_MAPPING_NODE)
		return cfg_fail_at(p, root, "expected a mapping at the top level");
	rc = cfg_walk_map(p, root, cfg_top_keys);
	if (!rc)
		rc = cfg_cross_at_line(p);
	return rc;
}

/* ------------------------------------------------------------ YAML errors */

static void cfg_offset_pos(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static int cfg_yaml_error(const yaml_parser_t *y, const char *text, size_t len,
			  struct cfg_error *err)
{
	unsigned line = (unsigned)y->problem_mark.line + 1;
	unsigned col = (unsigned)y->problem_mark.column + 1;
	const char *problem = y->problem ? y->problem : "unknown error";

	if (y->error == YAML_MEMORY_ERROR) {
		cfg_fail(err, 0, 0, "out of memory");
		return ENOMEM;
	}
	if (y->error == YAML_READER_ERROR) {
		cfg_offset_pos(text, len, y->problem_offset, &line, &col);
		return cfg_fail(err, line, col, "invalid text: %s", problem);
	}
	if (y->context)
		return cfg_fail(err, line, col, "YAML syntax error: %s (%s at line %u)", problem,
				y->context, (unsigned)y->context_mark.line + 1);
	return cfg_fail(err, line, col, "YAML syntax error: %s", problem);
}

/* A second document in the file would be silently ignored: refuse it. */
static int cfg_only_document(yaml_parser_t *y, const char *text, size_t len, struct cfg_error *err)
{
	yaml_document_t doc;
	const yaml_node_t *root;
	int rc = 0;

	if (!yaml_parser_load(y, &doc))
		return cfg_yaml_error(y, text, len, err);
	root = yaml_document_get_root_node(&doc);
	if (root)
		rc = cfg_fail(err, cfg_line(root), cfg_col(root),
			      "only one YAML document is allowed in the configuration");
	yaml_document_delete(&doc);
	return rc;
}

static int cfg_parse_into(struct cfg *c, const char *text, size_t len, struct cfg_error *err)
{
	yaml_parser_t y;
	yaml_document_t doc;
	struct cfg_parse p = {.doc = &doc, .c = c, .err = err};
	int rc;

	if (!yaml_parser_initialize(&y)) {
		cfg_fail(err, 0, 0, "out of memory");
		return ENOMEM;
	}
	yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
	if (!yaml_parser_load(&y, &doc)) {
		rc = cfg_yaml_error(&y, text, len, err);
		goto out;
	}
	rc = cfg_apply_doc(&p);
	yaml_document_delete(&doc);
	if (!rc)
		rc = cfg_only_document(&y, text, len, err);
out:
	yaml_parser_delete(&y);
	return rc;
}

int cfg_load_string(struct cfg *c, const char *yaml, size_t len, struct cfg_error *err)
{
	struct cfg_error scratch;
	struct cfg *tmp;
	int rc;

	err = cfg_err_or(err, &scratch);
	*err = (struct cfg_error){0};
	tmp = malloc(sizeof(*tmp));
	if (!tmp) {
		cfg_fail(err, 0, 0, "out of memory");
		return ENOMEM;
	}
	*tmp = *c;
	rc = cfg_parse_into(tmp, yaml, len, err);
	if (!rc)
		*c = *tmp;
	free(tmp);
	return rc;
}

/* ------------------------------------------------------------------ files */

static int cfg_read_all(FILE *f, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0, n;
	char *text = NULL, *grown;
	int rc = 0;

	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			grown = realloc(text, cap);
			if (!grown) {
				rc = ENOMEM;
				goto out;
			}
			text = grown;
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
		if (len > CFG_FILE_MAX) {
			rc = EFBIG;
			goto out;
		}
	} while (n > 0);
	if (ferror(f))
		rc = errno ? errno : EIO;
out:
	if (rc) {
		free(text);
		return rc;
	}
	*out = text;
	*outlen = len;
	return 0;
}

static int cfg_read_fail(int rc, struct cfg_error *err)
{
	if (rc == ENOENT) {
		cfg_fail(err, 0, 0, "file not found");
		return ENOENT;
	}
	if (rc == EFBIG)
		return cfg_fail(err, 0, 0, "file is too large (more than %d bytes)", CFG_FILE_MAX);
	if (rc == ENOMEM) {
		cfg_fail(err, 0, 0, "out of memory");
		return ENOMEM;
	}
	cfg_fail(err, 0, 0, "cannot read file: %s", strerror(rc));
	return EIO;
}

int cfg_load_file(struct cfg *c, const char *path, struct cfg_error *err)
{
	struct cfg_error scratch;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	err = cfg_err_or(err, &scratch);
	*err = (struct cfg_error){0};
	f = fopen(path, "r");
	if (!f)
		return cfg_read_fail(errno, err);
	errno = 0;
	rc = cfg_read_all(f, &text, &len);
	fclose(f);
	if (rc)
		return cfg_read_fail(rc, err);
	rc = cfg_load_string(c, text, len, err);
	free(text);
	return rc;
}
