/*
 * sip.h - the SIP message model, its zero-copy parser and its printer.
 *
 * A message is one buffer. sip_parse() splits it into a start line and an
 * index of header lines, each a view into the buffer, and frames the body by
 * Content-Length; nothing else is decoded until somebody asks. The typed
 * accessors (sip_msg_via1, sip_msg_from, ...) parse one header on first use
 * and remember the result in the message. Everything a struct sip_msg holds
 * points into the buffer it was parsed from: it is valid exactly as long as
 * that buffer is, and code that keeps a value longer must copy it.
 *
 * Parsers here are pure: they never allocate except for the header index of
 * an unusually long message, never do I/O, and report "need more bytes"
 * (EAGAIN) on a stream instead of blocking.
 */
#ifndef SB_SIP_H
#define SB_SIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/sv.h"

/* Largest message accepted on any transport. */
#define SIP_MAX_MSG 65535
/* Header lines indexed inside struct sip_msg before the index spills to the heap. */
#define SIP_HDR_INLINE	32
#define SIP_MAX_HEADERS 1024

enum sip_method {
	SIP_METHOD_OTHER = 0,
	SIP_INVITE,
	SIP_ACK,
	SIP_BYE,
	SIP_CANCEL,
	SIP_OPTIONS,
	SIP_REGISTER,
	SIP_PRACK,
	SIP_SUBSCRIBE,
	SIP_NOTIFY,
	SIP_PUBLISH,
	SIP_INFO,
	SIP_REFER,
	SIP_MESSAGE,
	SIP_UPDATE,
	SIP_METHOD_COUNT
};

/* Headers the server acts on; everything else is SIP_H_OTHER and passes through. */
enum sip_hdr_id {
	SIP_H_OTHER = 0,
	SIP_H_VIA,
	SIP_H_FROM,
	SIP_H_TO,
	SIP_H_CALL_ID,
	SIP_H_CSEQ,
	SIP_H_MAX_FORWARDS,
	SIP_H_CONTENT_LENGTH,
	SIP_H_CONTENT_TYPE,
	SIP_H_EXPIRES,
	SIP_H_MIN_EXPIRES,
	/* From..Min-Expires are single-valued: a second occurrence is an error */
	SIP_H_CONTACT,
	SIP_H_ROUTE,
	SIP_H_RECORD_ROUTE,
	SIP_H_AUTHORIZATION,
	SIP_H_PROXY_AUTHORIZATION,
	SIP_H_WWW_AUTHENTICATE,
	SIP_H_PROXY_AUTHENTICATE,
	SIP_H_REQUIRE,
	SIP_H_PROXY_REQUIRE,
	SIP_H_SUPPORTED,
	SIP_H_UNSUPPORTED,
	SIP_H_ALLOW,
	SIP_H_ACCEPT,
	SIP_H_USER_AGENT,
	SIP_H_SERVER,
	SIP_H_PATH,
	SIP_H_EVENT,
	SIP_H_ALLOW_EVENTS,
	SIP_H_SUBSCRIPTION_STATE,
	SIP_H_DATE,
	SIP_H_CONTENT_ENCODING,
	SIP_H_REFER_TO,
	SIP_H_SIP_ETAG,
	SIP_H_SIP_IF_MATCH,
	SIP_H_DIVERSION,
	SIP_H_HISTORY_INFO,
	SIP_H_RETRY_AFTER,
	SIP_H_REASON,
	SIP_H_SUBJECT,
	SIP_H_ACCEPT_CONTACT,
	SIP_H_COUNT
};
#define SIP_H_FIRST_SINGLE SIP_H_FROM
#define SIP_H_LAST_SINGLE  SIP_H_MIN_EXPIRES

enum sip_scheme { SIP_SCHEME_OTHER = 0, SIP_SCHEME_SIP, SIP_SCHEME_SIPS, SIP_SCHEME_TEL };

enum sip_proto {
	SIP_PROTO_NONE = 0,
	SIP_PROTO_UDP,
	SIP_PROTO_TCP,
	SIP_PROTO_TLS,
	SIP_PROTO_WS,
	SIP_PROTO_WSS,
	SIP_PROTO_SCTP,
	SIP_PROTO_OTHER
};

struct sip_hdr {
	sv_t name;
	sv_t value; /* trimmed; a folded value keeps its CRLF SP inside */
	sv_t raw;   /* the whole line(s), through the final CRLF */
	uint16_t id;
	uint16_t next; /* index + 1 of the next header with this id; 0 = none */
};

struct sip_uri {
	sv_t raw;
	sv_t scheme;
	enum sip_scheme kind;
	sv_t user; /* may hold ;params of a telephone-subscriber user part */
	sv_t password;
	sv_t host;     /* IPv6 references without their brackets */
	uint16_t port; /* 0 when absent */
	bool host_v6;
	sv_t params;  /* after the first ';', before '?' */
	sv_t headers; /* after '?' */
	/* well-known params, found while parsing */
	sv_t transport;
	sv_t maddr;
	sv_t user_param;
	bool lr;
};

struct sip_via {
	sv_t raw;     /* this via-parm, without the separating comma */
	sv_t version; /* "2.0" */
	sv_t transport;
	enum sip_proto proto;
	sv_t host;
	bool host_v6;
	uint16_t port;
	sv_t params;
	sv_t branch;
	sv_t received;
	sv_t rport;	 /* value, empty when the parameter has none */
	sv_t rport_span; /* ";rport[=value]" as written, for replacing it */
	bool has_rport;
	bool has_branch;
	sv_t maddr;
};

/*
 * RFC 7339 overload control parameters of one Via: "oc" (bare in a request
 * from a client that supports it, oc=N in a response from an overloaded
 * server), oc-algo, oc-validity and oc-seq. Each span is the parameter as
 * written with its leading ';', so a reply can replace them; empty when absent.
 */
enum sip_oc_span { SIP_OC_OC = 0, SIP_OC_ALGO, SIP_OC_VALIDITY, SIP_OC_SEQ, SIP_OC_NSPANS };
struct sip_via_oc {
	bool present;	   /* the oc parameter is there (with or without a value) */
	bool has_value;	   /* oc=N */
	unsigned value;	   /* 0..100: the percentage of requests to drop */
	bool loss;	   /* oc-algo names "loss" (or is absent: loss is the default) */
	bool has_validity; /* oc-validity=ms */
	uint32_t validity_ms;
	bool has_seq; /* oc-seq=seconds.fraction */
	uint64_t seq; /* seconds * 100000 + the fraction scaled to five digits */
	sv_t span[SIP_OC_NSPANS];
};
/*
 * Finds the oc parameters of a parsed Via. 0 (oc->present says whether they
 * are there), or EINVAL when one is malformed (a value out of range or not a
 * number): the parameters must then be ignored.
 */
int sip_via_oc_parse(const struct sip_via *via, struct sip_via_oc *oc);
/*
 * May the Via text (its parameters, or a whole Via header value) hold an oc
 * parameter (with a value when value is true)? A scan for ";oc" that is
 * never wrong when it says no, so the parse above runs only when it says yes.
 */
bool sip_oc_maybe(sv_t text, bool value);

/* name-addr or addr-spec with its header parameters (From, To, Contact, Route...). */
struct sip_naddr {
	sv_t raw;
	sv_t display;
	sv_t uri;
	bool bracketed;
	sv_t params; /* header params, after the first ';', raw */
	sv_t tag;
	bool has_tag;
};

struct sip_cseq {
	uint32_t num;
	sv_t method_name;
	enum sip_method method;
};

enum sip_parsed_bits {
	SIP_P_VIA1 = 1u << 0,
	SIP_P_FROM = 1u << 1,
	SIP_P_TO = 1u << 2,
	SIP_P_CSEQ = 1u << 3,
	SIP_P_RURI = 1u << 4,
	SIP_P_MAXFWD = 1u << 5,
	SIP_P_EXPIRES = 1u << 6,
};

struct sip_msg {
	const char *buf;
	size_t len; /* bytes of this message (a stream may hold more after it) */
	bool request;

	/* request line */
	enum sip_method method;
	sv_t method_name;
	sv_t ruri_raw;
	sv_t version;
	/* status line */
	unsigned status;
	sv_t reason;

	sv_t start_line; /* without its CRLF */
	sv_t headers;	 /* from the first header line through the empty line */
	sv_t body;
	bool has_clen;
	uint32_t clen;

	struct sip_hdr *hdrs;
	uint16_t nhdrs;
	uint16_t hcap;
	uint16_t first[SIP_H_COUNT]; /* index + 1 of the first header with that id */
	uint32_t dup_single;	     /* bit per single-valued id seen more than once */

	/* lazily parsed, see sip_parsed_bits */
	uint32_t parsed;
	uint32_t parse_failed;
	struct sip_via via1;
	struct sip_naddr from;
	struct sip_naddr to;
	struct sip_cseq cseq;
	struct sip_uri ruri;
	int64_t max_forwards; /* -1 when absent */
	int64_t expires;      /* -1 when absent */

	/* why the last parse or check failed, for the error response */
	const char *error;

	struct sip_hdr inline_hdrs[SIP_HDR_INLINE];
};

#define SIP_PARSE_STREAM 1u

/*
 * Parse one message from buf. On a datagram (flags 0) the message is the whole
 * buffer: a missing Content-Length means the body runs to the end, trailing
 * octets past Content-Length are ignored. On a stream (SIP_PARSE_STREAM) the
 * message ends after Content-Length octets of body and m->len tells how much
 * was consumed.
 * Returns 0; EAGAIN (stream: incomplete, call again with more bytes); EBADMSG
 * (malformed, m->error says why; on a stream the framing is lost);
 * EMSGSIZE (larger than SIP_MAX_MSG); ENOMEM.
 * Leading CRLFs (keep-alives) are skipped; a buffer of only CRLFs is EAGAIN on
 * a stream with m->len set to the CRLFs consumed.
 */
int sip_parse(struct sip_msg *m, const char *buf, size_t len, unsigned flags);
/* Frees the spilled header index, if any. The buffer is the caller's. */
void sip_msg_release(struct sip_msg *m);

enum sip_method sip_method_from_name(sv_t name);
sv_t sip_method_name(enum sip_method m);
enum sip_proto sip_proto_from_name(sv_t name);
const char *sip_proto_name(enum sip_proto p); /* "UDP", "TCP"... */
const char *sip_reason_phrase(unsigned status);

/* Header access */
struct sip_hdr *sip_msg_hdr(const struct sip_msg *m, enum sip_hdr_id id);
struct sip_hdr *sip_msg_hdr_next(const struct sip_msg *m, const struct sip_hdr *h);
struct sip_hdr *sip_msg_hdr_by_name(const struct sip_msg *m, sv_t name);
unsigned sip_msg_hdr_count(const struct sip_msg *m, enum sip_hdr_id id);
static inline sv_t sip_msg_value(const struct sip_msg *m, enum sip_hdr_id id)
{
	struct sip_hdr *h = sip_msg_hdr(m, id);
	return h ? h->value : SV_NULL;
}

/* Typed accessors: parse on first use; NULL (or -1) when absent or malformed. */
const struct sip_via *sip_msg_via1(struct sip_msg *m);
const struct sip_naddr *sip_msg_from(struct sip_msg *m);
const struct sip_naddr *sip_msg_to(struct sip_msg *m);
const struct sip_cseq *sip_msg_cseq(struct sip_msg *m);
const struct sip_uri *sip_msg_ruri(struct sip_msg *m);
sv_t sip_msg_callid(const struct sip_msg *m);
int64_t sip_msg_max_forwards(struct sip_msg *m);
int64_t sip_msg_expires(struct sip_msg *m);

/*
 * Check a parsed request the way a proxy or registrar must before acting on
 * it. Returns 0, or the status to answer with (400, 416, 420, 505...);
 * m->error then names the problem for the reason phrase.
 */
unsigned sip_request_check(struct sip_msg *m);
/* Same for a response: 0, or non-zero when it must be dropped. */
int sip_response_check(struct sip_msg *m);

/* Element parsers, usable on any header value. */
int sip_uri_parse(sv_t raw, struct sip_uri *u);
/* Compares per RFC 3261 19.1.4 (user and password case-sensitively after unescaping,
 * host case-insensitively, ports and the transport/user/maddr params). */
bool sip_uri_equal(const struct sip_uri *a, const struct sip_uri *b);
/* Parses one via-parm; *rest gets what follows the separating comma (or empty). */
int sip_via_parse(sv_t value, struct sip_via *via, sv_t *rest);
/* Parses one name-addr / addr-spec with params; *rest as above. */
int sip_naddr_parse(sv_t value, struct sip_naddr *na, sv_t *rest);

/* ;name=value parameter lists (URI params or header params, LWS tolerated). */
struct sip_param {
	sv_t name;
	sv_t value;
	bool has_value;
};
/* Iterates params in *cursor (which starts after a ';' or at the first name).
 * Returns 1 with the next param, 0 at the end, -1 on a syntax error. */
int sip_param_next(sv_t *cursor, struct sip_param *p);
/* Finds a parameter by case-insensitive name; returns true when present. */
bool sip_param_find(sv_t params, sv_t name, sv_t *value);

/* Iterates the comma-separated elements of all headers with one id. */
struct sip_hdr_iter {
	const struct sip_msg *m;
	const struct sip_hdr *h;
	sv_t rest;
};
void sip_hdr_iter_init(struct sip_hdr_iter *it, const struct sip_msg *m, enum sip_hdr_id id);
/* How many comma-separated values all headers with this id hold (Route, Diversion...). */
unsigned sip_hdr_count(const struct sip_msg *m, enum sip_hdr_id id);
/* All values of the headers with this id, comma-joined into out; EMSGSIZE when they do not fit. */
int sip_hdr_join(const struct sip_msg *m, enum sip_hdr_id id, char *out, size_t len);
/* 1 = *elem holds the next element, 0 = done. Commas inside quotes and <> do not split. */
int sip_hdr_iter_next(struct sip_hdr_iter *it, sv_t *elem);
/* Splits one comma-separated element off the front of v (quote- and <>-aware). */
sv_t sip_list_split(sv_t *v);

/* Percent-decoding into dst (dst capacity >= src.len); returns decoded length. */
size_t sip_unescape(sv_t src, char *dst);

/* Tokens and quoted strings */
bool sip_is_token_char(unsigned char c);
bool sip_is_token(sv_t v);
/* Strips the quotes and backslash escapes of a quoted-string into dst; returns
 * the decoded length or -1 when v is not a quoted-string. */
long sip_unquote(sv_t v, char *dst, size_t dstsize);
/* Skips LWS (SP, HTAB and folded line breaks) at the front of v. */
sv_t sip_skip_lws(sv_t v);

/*
 * Printing
 */

/* Address of the top Via's response target is patched in a response by the
 * caller; these helpers only copy and edit bytes. */
struct sip_edit {
	const char *at; /* position in the source message */
	size_t del;	/* bytes to drop at that position */
	sv_t ins;	/* bytes to insert there (before what follows) */
};

/*
 * Copies m->buf[0..m->len) into out applying edits, sorted by position. An
 * edit outside the message, or one that starts inside the bytes the one
 * before it drops (overlapping, or not sorted), is an error (EINVAL, out
 * left partial): never skipped, never a message with an edit missing.
 * Content-Length is not touched. 0, EINVAL or out's ENOMEM.
 */
int sip_apply_edits(struct buf *out, const struct sip_msg *m, const struct sip_edit *edits,
		    size_t n);

/*
 * The edits to make to one message, in any order. There is room for
 * SIP_MAX_EDITS; one more is an error kept in the list (E2BIG, like a buf's
 * err) and returned by sip_edits_apply, so that the callers need not check
 * each sip_edit_add. Zero-initialise it ({0}) before use.
 */
#define SIP_MAX_EDITS 16
struct sip_edit_list {
	struct sip_edit e[SIP_MAX_EDITS];
	unsigned n;
	int err; /* the first error: E2BIG when more than SIP_MAX_EDITS were added */
};

/* Adds an edit (at: a position in the message it applies to); 0 or E2BIG. */
int sip_edit_add(struct sip_edit_list *l, const char *at, size_t del, sv_t ins);
/*
 * Sorts l's edits by position (edits at the same position keep the order
 * they were added in) and applies them to m into out (reset first). 0, the
 * list's error (E2BIG), EINVAL for overlapping edits or one outside m, or
 * ENOMEM.
 */
int sip_edits_apply(struct buf *out, const struct sip_msg *m, struct sip_edit_list *l);

/* What a response generated here for a request carries besides the request's
 * Via/From/To/Call-ID/CSeq. */
struct sip_reply {
	unsigned status;
	sv_t reason;	     /* empty: the standard phrase */
	sv_t to_tag;	     /* added to To when the request had none (not for 100) */
	sv_t via_params;     /* appended to the top Via (";received=...;rport=...") */
	bool via_drop_rport; /* via_params fills in rport: drop the bare ";rport" */
	/* spans of the top Via (inside it, as sip_via_oc_parse gives them) to drop; the
	 * replacement is in via_params (RFC 7339 oc parameters) */
	const sv_t *via_drop;
	size_t nvia_drop;
	sv_t headers; /* extra header lines, each ending in CRLF */
	sv_t content_type;
	sv_t body;
	sv_t server; /* Server header value, empty = none */
};

/*
 * Copies header line h, whose via-parm via is one of, into out without the
 * spans in drop (inside via, any order, empty ones ignored) and with append
 * added at the end of via.
 */
void sip_via_line_edit(struct buf *out, const struct sip_hdr *h, const struct sip_via *via,
		       const sv_t *drop, size_t ndrop, sv_t append);

/* Builds a response to request m in out. Returns 0 or errno (out->err). */
int sip_build_reply(struct buf *out, struct sip_msg *m, const struct sip_reply *r);

#endif
