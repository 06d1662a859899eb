/*
 * media.h - the media module: an SDP parser and rewriter (sdp_, RFC 4566 and
 * RFC 3264) and an in-process RTP relay for one worker (rtp_).
 *
 * It exists so that two phones behind NAT can talk through the server: the
 * dialog layer hands the offer and answer bodies of a call to a relay
 * session, which opens a socket pair per leg and stream, fills a rewrite
 * plan with the relay's addresses, and sdp_rewrite() produces the body that
 * is forwarded instead. Packets then flow A -> relay -> B and back, latched
 * to the real sources (strict, RTP Bleed safe) and counted per direction.
 *
 * The SDP parser is zero-copy like the SIP parser: every field is a view
 * into the body, nothing is allocated, every limit that is hit is an error
 * with the line that hit it. The relay allocates at signalling time only
 * (a session, its streams and sockets); forwarding a packet allocates
 * nothing and copies nothing (the send iovec points into the receive buffer).
 *
 * Layering: media depends on core only (and libevent). The dialog layer is
 * its only user: it creates a session on the offer, updates it with every
 * SDP of either side (answer, 183, re-INVITE, UPDATE), reads its counters
 * for the billing record and the media timeout, and frees it when the call
 * ends. A session belongs to the worker whose engine created it.
 */
#ifndef SB_MEDIA_H
#define SB_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/sv.h"

/* ------------------------------------------------------------------ SDP */

#define SDP_MAX_BODY	   65535 /* a body (or a rewritten body) larger than this is an error */
#define SDP_MAX_MEDIA	   16	 /* m= sections */
#define SDP_MAX_FORMATS	   64	 /* formats on one m= line */
#define SDP_MAX_ATTRS	   256	 /* a= lines in one section (session or media) */
#define SDP_MAX_CANDIDATES 64	 /* a=candidate lines in one section */
#define SDP_MAX_BANDWIDTH  8	 /* b= lines in one section */
#define SDP_IP_STRLEN	   46	 /* INET6_ADDRSTRLEN */

/* An IP address; family 0 when the text was a host name (RFC 4566 allows FQDNs). */
struct sdp_ip {
	int family; /* AF_INET, AF_INET6 or 0 */
	uint8_t a[16];
};

enum sdp_ip_kind {
	SDP_IP_PUBLIC = 0,
	SDP_IP_UNSPECIFIED, /* 0.0.0.0, :: (the old way of putting a call on hold) */
	SDP_IP_PRIVATE,	    /* RFC 1918 */
	SDP_IP_SHARED,	    /* 100.64.0.0/10, carrier-grade NAT (RFC 6598) */
	SDP_IP_LOOPBACK,
	SDP_IP_LINK_LOCAL, /* 169.254/16, fe80::/10 */
	SDP_IP_ULA,	   /* fc00::/7 */
	SDP_IP_MULTICAST,
	SDP_IP_RESERVED, /* 0/8, 240/4, broadcast, documentation ranges */
	SDP_IP_NAME,	 /* not an address: a host name */
};

enum sdp_dir { SDP_DIR_UNSET = 0, SDP_SENDRECV, SDP_SENDONLY, SDP_RECVONLY, SDP_INACTIVE };

/* A c= line (or the address of an a=rtcp line). */
struct sdp_conn {
	bool present;
	sv_t line;     /* the whole line with its end of line */
	sv_t addrtype; /* "IP4" or "IP6" */
	sv_t addr;     /* the address, without a multicast /ttl suffix */
	struct sdp_ip ip;
};

struct sdp_media {
	sv_t line;	/* the m= line with its end of line */
	sv_t section;	/* from the m= line to the next one (or the end) */
	sv_t media;	/* audio, video, image, application... */
	sv_t port_span; /* "port[/number]" as written */
	uint16_t port;	/* 0: a rejected or disabled stream (RFC 3264 6) */
	uint16_t nports;
	sv_t proto; /* RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, udptl... */
	bool rtp;   /* the proto is RTP-based: formats are payload types 0..127 */
	sv_t fmts;  /* the formats, as written */
	uint16_t nfmt;
	struct sdp_conn conn; /* media-level c= */
	enum sdp_dir dir;     /* SDP_DIR_UNSET: inherits the session's */
	bool rtcp_mux;
	bool has_rtcp; /* a=rtcp (RFC 3605) */
	uint16_t rtcp_port;
	struct sdp_conn rtcp_conn; /* its optional address */
	uint32_t ptime;		   /* ms, 0 when absent */
	uint16_t nattr, nrtpmap, nfmtp, ncand, nbw;
	bool end_of_candidates;
	sv_t ice_ufrag, ice_pwd;
};

struct sdp_session {
	sv_t body;
	sv_t origin; /* o= value */
	sv_t name;   /* s= value */
	struct sdp_conn conn;
	enum sdp_dir dir;
	sv_t ice_ufrag, ice_pwd;
	bool ice_lite;
	uint16_t nattr, nbw;
	unsigned nmedia;
	struct sdp_media media[SDP_MAX_MEDIA];
};

/* Why a body was refused: the 1-based line (0: the body as a whole) and a reason. */
struct sdp_error {
	unsigned line;
	const char *why;
};

/*
 * Parses an SDP body. 0, or EINVAL (malformed), E2BIG (a limit above was
 * hit) or EMSGSIZE (body too large), with err saying where and why. The
 * session points into body.
 */
int sdp_parse(sv_t body, struct sdp_session *s, struct sdp_error *err);

/* The c= that applies to a media section (its own, else the session's); NULL when none. */
const struct sdp_conn *sdp_media_conn(const struct sdp_session *s, const struct sdp_media *m);
/* The direction of a media section, defaulting to the session's, then to sendrecv. */
enum sdp_dir sdp_media_dir(const struct sdp_session *s, const struct sdp_media *m);
/* On hold: sendonly, inactive, or a 0.0.0.0 / :: connection address (RFC 3264 8.4). */
bool sdp_media_held(const struct sdp_session *s, const struct sdp_media *m);

struct sdp_rtpmap {
	unsigned pt;
	sv_t encoding; /* PCMU, opus, ... */
	uint32_t clock;
	sv_t channels; /* empty when absent */
};
/*
 * The rtpmap of payload type pt in a media section, falling back on the
 * static payload types of RFC 3551 (0 PCMU, 8 PCMA, 9 G722, 18 G729...):
 * 0 or ENOENT.
 */
int sdp_rtpmap_find(const struct sdp_media *m, unsigned pt, struct sdp_rtpmap *out);
/* The fmtp parameters of a format: 0 or ENOENT. */
int sdp_fmtp_find(const struct sdp_media *m, sv_t fmt, sv_t *params);

/* IP addresses: text to address (0 or EINVAL), address to text (NUL-terminated). */
int sdp_ip_parse(sv_t text, struct sdp_ip *ip);
void sdp_ip_format(const struct sdp_ip *ip, char out[SDP_IP_STRLEN]);
bool sdp_ip_eq(const struct sdp_ip *a, const struct sdp_ip *b);
enum sdp_ip_kind sdp_ip_kind(const struct sdp_ip *ip);
/* Not a public unicast address: private, shared, loopback, link-local, ULA, unspecified... */
bool sdp_ip_is_private(const struct sdp_ip *ip);
int sdp_ip_from_sockaddr(const struct sockaddr *sa, struct sdp_ip *ip, uint16_t *port);
/* Fills ss; returns the length to pass to sendto/bind, 0 when the family is not an IP one. */
socklen_t sdp_ip_to_sockaddr(const struct sdp_ip *ip, uint16_t port, struct sockaddr_storage *ss);

/*
 * A rewrite plan: for each media section, the address and ports the other
 * side must send to. Everything not named here is copied byte for byte.
 */
struct sdp_rw_media {
	bool keep;	    /* leave this section exactly as it is */
	struct sdp_ip addr; /* AF_INET or AF_INET6 */
	uint16_t port;	    /* 0 rejects the stream */
	uint16_t rtcp_port; /* for a=rtcp; 0 = port + 1 */
};
struct sdp_rewrite {
	unsigned nmedia; /* must equal the session's */
	struct sdp_rw_media media[SDP_MAX_MEDIA];
	bool strip_ice; /* drop candidates, ufrag/pwd, ice-options, ice-lite... */
};

/*
 * Appends to out the body s was parsed from with, per media section that is
 * not kept and was not rejected (port 0): the m= port, the c= address
 * (inserting a media-level c= when the session-level one no longer fits),
 * a=rtcp, and ICE attributes removed when asked. A 0.0.0.0 / :: hold
 * address stays unspecified (in the new family); a rejected stream is left
 * as it is. 0, EINVAL (a plan that does not fit the session) or EMSGSIZE
 * (the result would exceed SDP_MAX_BODY or out's own limit).
 */
int sdp_rewrite(const struct sdp_session *s, const struct sdp_rewrite *rw, struct buf *out,
		struct sdp_error *err);

/*
 * Message bodies: application/sdp, or multipart/mixed (or /alternative,
 * /related, nested up to 3 deep) with an application/sdp part (RFC 2046,
 * RFC 5621). Finds the SDP: 0, ENOENT (no SDP in this body), EINVAL
 * (malformed multipart) or ENOTSUP (an SDP part with a Content-Length or a
 * transfer encoding we would have to change).
 */
int sdp_body_find(sv_t content_type, sv_t body, sv_t *sdp, struct sdp_error *err);
/*
 * Appends to out the whole body with the SDP part (s, parsed from a view
 * that sdp_body_find returned for this body) rewritten in place.
 */
int sdp_body_rewrite(sv_t body, const struct sdp_session *s, const struct sdp_rewrite *rw,
		     struct buf *out, struct sdp_error *err);

/* ------------------------------------------------------------ RTP relay */

struct event_base;
struct rtp_engine;
struct rtp_session;

/*
 * The port pool of one engine: RTP on even ports, RTCP on the next odd one.
 * Pairs are kept in a FIFO in the order they were released: allocation
 * takes the head, which is the pair that has rested longest, so it is O(1)
 * and a pair in quarantine (released less than quarantine_ms ago, so late
 * packets of the old call might still arrive) is never handed out: if the
 * head is in quarantine, all are, and allocation fails with EAGAIN; with no
 * pair free at all, ENOSPC. Each worker has its own pool over its own
 * sub-range (rtp_pool_subrange), so workers never share a port and never lock.
 */
struct rtp_pool {
	uint16_t lo;   /* first (even) RTP port */
	uint32_t n;    /* pairs */
	uint32_t head; /* FIFO of free pairs */
	uint32_t count;
	uint32_t *fifo;
	uint64_t *released_ms; /* per pair: when it was released (0: never used) */
	uint8_t *used;	       /* per pair: 1 while allocated */
	uint32_t quarantine_ms;
	uint64_t exhausted, quarantined; /* allocations refused, counted */
};
int rtp_pool_init(struct rtp_pool *p, uint16_t lo, uint16_t hi, uint32_t quarantine_ms);
void rtp_pool_free(struct rtp_pool *p);
/* 0 with *rtp_port set (RTCP is +1), EAGAIN (every free pair in quarantine) or ENOSPC. */
int rtp_pool_get(struct rtp_pool *p, uint64_t now_ms, uint16_t *rtp_port);
/* 0, or EINVAL for a port that is not the pool's or not allocated. */
int rtp_pool_put(struct rtp_pool *p, uint16_t rtp_port, uint64_t now_ms);
/* Worker idx's share of [lo, hi] among n workers (even-aligned); EINVAL when too small. */
int rtp_pool_subrange(uint16_t lo, uint16_t hi, unsigned n, unsigned idx, uint16_t *sub_lo,
		      uint16_t *sub_hi);

/*
 * RFC 3550 receive statistics of one direction: sequence tracking with
 * wrap-around (A.1, A.3) and interarrival jitter (6.4.1, A.8).
 */
struct rtp_rx_stats {
	uint64_t packets, bytes;
	uint32_t ssrc;
	bool have_ssrc;
	uint16_t max_seq;
	uint32_t cycles; /* shifted count of sequence number cycles */
	uint32_t base_seq;
	uint32_t bad_seq;
	uint32_t probation;
	uint64_t received;  /* packets counted for loss (since the source was valid) */
	int64_t lost_prior; /* loss of the previous sources (SSRC changes) */
	uint64_t dup_or_late;
	int64_t transit;
	bool have_transit;
	uint32_t jitter_q4;  /* jitter in timestamp units, times 16 (A.8) */
	uint32_t clock;	     /* timestamp rate used for jitter, 0 = unknown */
	uint64_t pt_seen[2]; /* bitmap of the payload types seen (0..127) */
	uint64_t last_ms;    /* time of the last packet, 0 = none */
};
/* Counts one RTP packet (already checked as RTP v2) arriving at arrival_ns. */
void rtp_stats_update(struct rtp_rx_stats *st, const uint8_t *pkt, size_t len, uint64_t arrival_ns);
/* Packets lost so far (expected - received, never negative). */
uint64_t rtp_stats_lost(const struct rtp_rx_stats *st);
/* Interarrival jitter in microseconds (0 when the clock rate is unknown). */
uint32_t rtp_stats_jitter_us(const struct rtp_rx_stats *st);
/* Is this datagram RTCP rather than RTP (RFC 5761 4)? */
bool rtp_is_rtcp(const uint8_t *pkt, size_t len);

/*
 * Latching (RTP Bleed, CVE-2017-14114): a leg's socket only accepts packets
 * from its own phone. The state machine per socket:
 *   RTP_LATCH_IDLE     no SDP from that side yet: everything is dropped
 *   RTP_LATCH_OPEN     an SDP arrived (offer, answer, re-INVITE): until the
 *                      window ends, the first packet from the signalled
 *                      address, or from the signalling source's IP (the
 *                      NAT's public side), latches that source; the
 *                      source latched before the SDP keeps flowing
 *                      meanwhile (a re-INVITE does not cut the audio)
 *   RTP_LATCH_LOCKED   only the latched source is accepted (strict); when
 *                      the window ended with nothing latched, the signalled
 *                      address is the one latched
 * Everything else is dropped and counted; nothing but a new SDP from the
 * same side through the dialog (an authenticated signalling path) reopens
 * the window.
 */
enum rtp_latch_state { RTP_LATCH_IDLE = 0, RTP_LATCH_OPEN, RTP_LATCH_LOCKED };
enum rtp_verdict { RTP_ACCEPT = 0, RTP_ACCEPT_LATCHED, RTP_DROP_FOREIGN, RTP_DROP_IDLE };
struct rtp_latch {
	enum rtp_latch_state state;
	struct sockaddr_storage signalled; /* from the SDP; family 0 = on hold / unknown */
	struct sdp_ip sig_src;		   /* the signalling source IP, family 0 = none */
	struct sockaddr_storage peer;	   /* latched source; family 0 = none */
	uint64_t window_end_ms;
};
/* A new SDP from this side: (re)opens the window. signalled or sig_src may be NULL. */
void rtp_latch_signal(struct rtp_latch *l, const struct sockaddr_storage *signalled,
		      const struct sdp_ip *sig_src, uint64_t now_ms, uint32_t window_ms);
/* May a packet from src enter? Moves OPEN to LOCKED as described above. */
enum rtp_verdict rtp_latch_check(struct rtp_latch *l, const struct sockaddr_storage *src,
				 uint64_t now_ms);
/* Where packets for this side go: the latched source, else the signalled address; NULL: none. */
const struct sockaddr_storage *rtp_latch_dest(const struct rtp_latch *l);

struct rtp_config {
	uint16_t port_lo, port_hi; /* this engine's range (see rtp_pool_subrange) */
	uint32_t quarantine_ms;	   /* a released port rests this long; default 10 s */
	uint32_t latch_window_ms;  /* default 5 s */
	const char *bind_v4;	   /* address the sockets bind to, NULL = no IPv4 */
	const char *bind_v6;	   /* NULL = no IPv6 */
	const char *advertise_v4;  /* written in the SDP, NULL = bind_v4 */
	const char *advertise_v6;
	/* the clock, in ms; NULL = CLOCK_MONOTONIC (tests inject their own) */
	uint64_t (*now_ms)(void *arg);
	void *now_arg;
};

/* The two sides of a call. */
enum rtp_side { RTP_CALLER = 0, RTP_CALLEE = 1 };

/* Counters of one side of one stream: what its phone sent us, what we sent it. */
struct rtp_dir_stats {
	struct rtp_rx_stats rx;	       /* from this side's phone (RTP) */
	uint64_t rtcp_rx;	       /* RTCP packets from it */
	uint64_t tx_packets, tx_bytes; /* forwarded to it (RTP and RTCP) */
	uint64_t tx_errors;	       /* sendmmsg refused them */
	uint64_t drop_foreign;	       /* from a source that is not its phone */
	uint64_t drop_no_dest;	       /* for it, but no address to send to yet (or on hold) */
	uint64_t drop_malformed;       /* not RTP/RTCP v2, or truncated */
};

struct rtp_engine_stats {
	uint64_t forwarded, dropped, batches;
	uint32_t sessions, sockets;
};

/* An engine per worker, on that worker's event base. 0 or an errno. */
int rtp_engine_new(struct event_base *base, const struct rtp_config *cfg, struct rtp_engine **out);
/* Frees every session still open, then the engine. */
void rtp_engine_free(struct rtp_engine *e);
void rtp_engine_stats(const struct rtp_engine *e, struct rtp_engine_stats *st);
struct rtp_pool *rtp_engine_pool(struct rtp_engine *e);

/* A call's media: created on the offer (before any SDP is applied). */
int rtp_session_new(struct rtp_engine *e, struct rtp_session **out);
/* Closes its sockets and releases its ports (into quarantine). Never from a relay callback. */
void rtp_session_free(struct rtp_session *s);

/*
 * Applies an SDP that side `from` sent (offer, answer, 183, re-INVITE,
 * UPDATE, PRACK/ACK with SDP): one stream per m= section, opened on first
 * sight (a socket pair towards each side), closed when the m= port is 0;
 * `from`'s leg learns its signalled addresses and its latching window
 * reopens (sig_src: the address the SIP message came from, for NAT). Fills
 * rw with the relay addresses the OTHER side must send to, to rewrite this
 * body with sdp_rewrite before it is forwarded. 0, or an errno (ENOSPC /
 * EAGAIN when the pool is dry, EAFNOSUPPORT when no address of the needed
 * family is configured, E2BIG for more streams than SDP_MAX_MEDIA).
 */
int rtp_session_update(struct rtp_session *s, enum rtp_side from, const struct sdp_session *sdp,
		       const struct sockaddr *sig_src, struct sdp_rewrite *rw);
unsigned rtp_session_nstreams(const struct rtp_session *s);
/*
 * The relay address and ports of stream i's leg that faces `side` (where
 * that side's phone sends): what an SDP from the other side is rewritten
 * with. 0, or ENOENT when the stream is not open.
 */
int rtp_session_local(const struct rtp_session *s, unsigned i, enum rtp_side side,
		      struct sdp_rw_media *out);
/* Counters of stream i, side `side` (0 or ENOENT). */
int rtp_session_stats(const struct rtp_session *s, unsigned i, enum rtp_side side,
		      struct rtp_dir_stats *out);
/* The latching state of stream i's RTP socket on `side` (for tests and `call list`). */
enum rtp_latch_state rtp_session_latch(const struct rtp_session *s, unsigned i, enum rtp_side side);
/*
 * Media timeout: true when no packet came from either side of any active
 * stream for timeout_ms (counted from the last SDP when nothing ever came).
 * A call whose streams are all on hold never times out.
 */
bool rtp_session_timed_out(const struct rtp_session *s, uint64_t now_ms, uint32_t timeout_ms);

#endif
