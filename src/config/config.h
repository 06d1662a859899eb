/*
 * config.h - the server's configuration: one YAML file, plus command-line
 * overrides, turned into one immutable struct before any worker starts.
 *
 * Every setting has a default, so the server runs with no file at all.
 * cfg_load() reports the first error with the line it is on, which is what
 * `switchboard check-config` prints.
 */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "services/dialplan.h"
#include "services/lists.h"
#include "services/terminal.h"
#include "sip/sip.h"

#define CFG_MAX_LISTEN	    16
#define CFG_MAX_DOMAINS	    64
#define CFG_MAX_ALGOS	    2
#define CFG_MAX_QUIRKS	    16
#define CFG_MAX_TERMINAL_UA 64

/* When a call's media is anchored on the relay (media.mode). */
enum cfg_media_mode {
	CFG_MEDIA_NEVER = 0, /* signalling only: bodies forwarded byte for byte */
	CFG_MEDIA_ALWAYS,    /* every call the proxy record-routes */
	CFG_MEDIA_NAT,	     /* when the caller looks behind NAT (services/mediasvc.h) */
};

struct cfg_listen {
	enum sip_proto proto; /* SIP_PROTO_UDP or SIP_PROTO_TCP */
	char host[64];	      /* numeric IPv4 or IPv6 address (no brackets), or "0.0.0.0" / "::" */
	uint16_t port;
	char advertise[128]; /* host[:port] put in Via/Record-Route instead, "" = host:port */
};

enum cfg_proxy_mode { CFG_PROXY_STATEFUL = 0, CFG_PROXY_STATELESS };

/* Feature codes, in this order: forward_always_on/off, forward_busy_on/off,
 * forward_noanswer_on/off, forward_unregistered_on/off. */
#define CFG_FEATURE_COUNT 8

/* What a forwarded INVITE says about its forwarding (bits). */
enum cfg_fwd_header { CFG_FWD_DIVERSION = 1, CFG_FWD_HISTORY_INFO = 2 };

enum cfg_auth_alg { CFG_ALG_MD5 = 0, CFG_ALG_SHA256 };

/* udp.dialog_port: auto (the listen port + 1) */
#define CFG_DIALOG_PORT_AUTO 65536u

struct cfg {
	/* general */
	enum log_level log_level;
	unsigned workers;     /* 0 = one per online CPU */
	char server_name[64]; /* Server / User-Agent header value */

	char domains[CFG_MAX_DOMAINS][128];
	size_t ndomains; /* 0 = the server's own addresses are its domain */

	struct cfg_listen listen[CFG_MAX_LISTEN];
	size_t nlisten; /* 0 = udp and tcp on 127.0.0.1:5060 */

	/* database */
	char db_path[512];

	/* RFC 3261 timers, milliseconds */
	unsigned t1_ms;	    /* 500 */
	unsigned t2_ms;	    /* 4000 */
	unsigned t4_ms;	    /* 5000 */
	unsigned timer_c_s; /* INVITE proxy Timer C, seconds: 180 */

	/* registrar */
	unsigned min_expires;	  /* 60; below it: 423 */
	unsigned max_expires;	  /* 3600; above it: lowered */
	unsigned default_expires; /* 3600 */
	unsigned max_contacts;	  /* per AOR, 0 = unlimited; 10 */

	/* authentication */
	bool auth_enabled; /* true */
	bool auth_preload; /* load every subscriber into the cache at start: true */
	/* issue 11 hole 4 (sec-txn): the digest uri must be the Request-URI, else 400: true */
	bool auth_check_uri;
	enum cfg_auth_alg algorithms[CFG_MAX_ALGOS]; /* offered in this order */
	size_t nalgorithms;   /* default: MD5 then SHA-256 (see config/switchboard.yaml) */
	unsigned nonce_ttl_s; /* 300 */
	/* User-Agents (substrings) offered only MD5: clients that give up on a SHA-256 challenge */
	char md5_only_ua[CFG_MAX_QUIRKS][64];
	size_t nmd5_only_ua; /* default: "baresip v0.", "baresip v1." (libre < 2) */
	char secret[129];    /* hex or text; "" = random per start */

	/* proxy */
	enum cfg_proxy_mode proxy_mode;
	bool record_route; /* true */

	/* NAT (docs/nat.md): a Contact that is not where its message came from gets a signed
	 * alias naming the real source, where in-dialog requests then go */
	bool nat_contact_alias; /* true */
	unsigned
	    nat_keepalive_interval_s; /* 25; OPTIONS to registered contacts behind NAT, 0 = off */
	unsigned nat_keepalive_max;   /* 2000: per round and in flight */

	/* security (docs/security.md): sources trusted like an authenticated user (a carrier's
	 * SBC, a PBX): they may call numbers the dialplan routes to gateways, and relay */
	struct lists_nets trusted_peers;

	/* tcp */
	unsigned tcp_max_connections; /* 4096 */
	unsigned tcp_idle_timeout_s;  /* 600 */
	/* issue 11: connections that never carried an authenticated request (sec-tcp) */
	unsigned tcp_max_per_source;	    /* per source address (IPv6: /64); 0 = no limit: 64 */
	unsigned tcp_unauth_idle_timeout_s; /* their idle timeout: 30 */

	/* udp (issue 13): each worker also listens on a port of its own per UDP address and
	 * writes it in the Via of the requests it forwards, so their responses come back to
	 * the worker that owns the transaction (no hop); off by default: a firewall must
	 * let responses in to those ports */
	bool udp_worker_ports;	       /* false */
	unsigned udp_worker_port_base; /* 0 = a port the kernel picks per worker */
	/*
	 * udp (issue 11): the dialog port, a second UDP socket per UDP listen address that
	 * our Record-Route and the Via of what we forward name, so established calls'
	 * requests and the responses to what we forward never queue behind new INVITEs
	 * (transport/udp.c). 0 = off, 1..65535 = that port, CFG_DIALOG_PORT_AUTO = the
	 * listen port + 1.
	 */
	unsigned udp_dialog_port; /* 0 */
	/* receive buffer of the main UDP sockets in bytes (SO_RCVBUF; the kernel doubles it
	 * and caps it at net.core.rmem_max); 0 = 8 MiB */
	unsigned udp_main_rcvbuf; /* 0 */

	/* dns */
	unsigned dns_cache_ttl_s; /* 60 */

	/* call services: defaults for users who set nothing (services/settings.h) */
	unsigned ring_time_s;	   /* one step of sequential / q-value ringing: 20 */
	unsigned noanswer_after_s; /* parallel ringing before forwarding on no answer: 20 */
	bool stop_on_busy;	   /* a busy terminal ends a sequential search: false */
	unsigned max_forward_hops; /* Diversion entries before forwarding stops (loop cut): 5 */
	unsigned forward_header;   /* enum cfg_fwd_header bits: Diversion (RFC 5806) by default */
	char feature_codes[CFG_FEATURE_COUNT]
			  [8]; /* "" = disabled; defaults *72, *73, *90, *91, *92, *93, *94, *95 */
	/* domains answered as a redirect server (302 with the contacts); "*" = all */
	char redirect_domains[CFG_MAX_DOMAINS][128];
	size_t nredirect_domains;
	/* User-Agent substrings checked before the built-in table */
	struct term_pattern terminal_ua[CFG_MAX_TERMINAL_UA];
	size_t nterminal_ua;

	/* black and white lists (INVITE and MESSAGE out of dialog); `switchboard list`
	 * changes them on a running server (services/rules.h) */
	struct lists_global lists;
	/* outgoing call barring (issue 12): classes users are barred from by name
	 * (`user set bob bar=international`), and free numbers never barred */
	struct lists_barring barring;

	/* PSTN: gateways, gateway groups, number analysis (services/dialplan.h) */
	struct dp_config dialplan;

	/* messaging (RFC 3428): store-and-forward for users who are offline */
	unsigned msg_max_size;	   /* body bytes; a larger MESSAGE gets 413: 16384 */
	unsigned msg_store_time_s; /* how long a stored message waits: 7 days */
	unsigned msg_max_stored;   /* per recipient; beyond it 480: 100 */

	/* presence (RFC 3903, RFC 6665) */
	unsigned pres_min_expires;     /* 60; below it: 423 */
	unsigned pres_max_expires;     /* 3600; above it: lowered */
	unsigned pres_default_expires; /* 3600 */
	unsigned pres_max_body;	       /* PIDF bytes in a PUBLISH: 65536 */

	/* IM broker: topics are sip:NAME@broker_domain; "" = no broker */
	char broker_domain[128];
	bool broker_auto_create;     /* a SUBSCRIBE to an unknown topic creates it: true */
	unsigned broker_max_members; /* per topic: 10000 */

	/* dialogs (dialog/dialog.h) and the control socket (server/ctl.h) */
	unsigned dlg_max;	/* dialogs tracked at most: 100000 */
	unsigned dlg_timeout_s; /* no in-dialog request for this long ends one: 43200; 0 = off */
	unsigned dlg_session_expires; /* RFC 4028 interval asked for; 0 = off: 1800 */
	unsigned dlg_min_se;	      /* smallest interval accepted (Min-SE): 90 */
	unsigned dlg_sdp_max;	      /* SDP bytes kept per side: 8192 */
	/* TEST ONLY: lets dialog.min_se go below RFC 4028's floor of 90 s (integration tests) */
	bool dlg_test_short_timers;
	char ctl_socket[108]; /* the control socket's path; "" = next to the database */
	/* billing records (services/cdr.h, docs/billing.md) */
	bool cdr_enabled;	/* one record per call attempt: true */
	unsigned cdr_keep_days; /* records older than this are purged; 0 = forever: 0 */

	/* the media relay (services/mediasvc.h, docs/media.md) */
	enum cfg_media_mode media_mode; /* when calls' media go through us: never */
	unsigned media_port_lo;		/* RTP/RTCP port range, split among the workers: 30000 */
	unsigned media_port_hi;		/* 39999 */
	char media_bind[64];		/* IPv4 the relay's sockets bind to; "" = the listen host */
	char media_advertise[64];	/* IPv4 written in SDP; "" = media_bind */
	unsigned media_latch_window_ms; /* latching window after each SDP: 5000 */
	unsigned media_quarantine_ms;	/* a released port rests this long: 10000 */
	unsigned media_timeout_s;	/* no RTP either way for this long ends the call; 0 = off */
	bool media_gateways;		/* calls to PSTN gateways always relayed: false */

	/* flood protection per source address (services/flood.h) */
	bool flood_enabled;	     /* true */
	unsigned flood_window_s;     /* budgets refill over this many seconds: 10 */
	unsigned flood_unauth_limit; /* requests without valid credentials per window: 1000 */
	unsigned flood_auth_limit;   /* requests carrying credentials per window: 2000 */
	unsigned flood_dialog_limit; /* in-dialog requests on our signed routes per window: 5000 */
	unsigned flood_ban_time_s;   /* first ban, doubling on repeat: 60 */
	unsigned flood_ban_max_s;    /* longest ban: 3600 */
	unsigned flood_table_size;   /* sources remembered: 65536 */
	/* state strangers (unauthenticated senders) may create, per source address and in
	 * total (issue 11 hole 8); a cap that is hit is answered, counted and logged */
	unsigned str_subs_per_source; /* presence subscriptions per source address: 16 */
	unsigned str_subs;	      /* ... from all strangers: 4096 */
	unsigned str_msgs_per_source; /* stored messages per source address: 32 */
	unsigned str_msgs_per_sender; /* ... per sender identity (From): 16 */
	unsigned str_msgs;	      /* ... from all strangers: 4096 */
	unsigned msgs_total;	      /* every stored message, from anyone: 200000 */
	unsigned lookups_per_source;  /* subscriber lookups waiting for the database: 256 */
	unsigned lookups;	      /* ... in total: 4096 */
	unsigned negative_cache;      /* names known not to exist kept in the cache: 8192 */
	/* overload control (RFC 7339, proxy/overload.h) */
	bool ovl_enabled;	  /* true */
	unsigned ovl_delay_ms;	  /* queueing delay above which new requests are shed: 50 */
	unsigned ovl_retry_after; /* Retry-After of the 503 sent to a shed request, seconds: 2 */
	unsigned ovl_validity_ms; /* oc-validity advertised upstream while overloaded: 500 */
};

struct cfg_error {
	unsigned line; /* 1-based; 0 when the error has no position (e.g. file missing) */
	unsigned column;
	char msg[256];
};

/* All defaults, no listeners, no domains. */
void cfg_defaults(struct cfg *c);
/* Loads a YAML file over the defaults already in c. 0, or EINVAL / ENOENT / EIO with *err filled.
 */
int cfg_load_file(struct cfg *c, const char *path, struct cfg_error *err);
/* Same, from a string (tests). */
int cfg_load_string(struct cfg *c, const char *yaml, size_t len, struct cfg_error *err);
/* "udp:IP:PORT", "tcp:[::1]:5060"; 0 or EINVAL with err->msg. */
int cfg_add_listen(struct cfg *c, const char *spec, struct cfg_error *err);
int cfg_add_domain(struct cfg *c, const char *domain, struct cfg_error *err);
/* A domain as the server compares it (lower case, IPv6 in brackets); EINVAL, ENAMETOOLONG. */
int cfg_domain_norm(const char *domain, char *out, size_t size);
/* Fills what is still unset (listen on 127.0.0.1:5060 udp+tcp) and checks cross-field rules. */
int cfg_finish(struct cfg *c, struct cfg_error *err);

#endif
