/*
 * ctl.h - the local control socket: a unix stream socket (mode 0600, next to
 * the database unless control.socket names one) through which the CLI, and
 * later the HTTP API, ask the running server about live state.
 *
 * Protocol: the client sends one request line; the server answers one JSON
 * document and a newline, and closes. Requests:
 *   calls             -> {"calls": [ {...}, ... ]}   the live dialogs
 *   call CALL-ID      -> {"call": {...}} or {"error": "..."}
 *   stats             -> {"dialogs": {...}}
 * It is served on the main thread's event loop: no worker ever waits for it.
 */
#ifndef SB_SERVER_CTL_H
#define SB_SERVER_CTL_H

#include <stddef.h>

#include "core/sv.h"

struct server;
struct ctl;

#define CTL_LINE_MAX 1024

enum ctl_verb {
	CTL_CALLS = 1, /* list the live dialogs */
	CTL_CALL,      /* one call by its Call-ID */
	CTL_STATS,
};

struct ctl_req {
	enum ctl_verb verb;
	sv_t arg; /* CTL_CALL: the Call-ID (a view into the line) */
};

/*
 * Parses one request line (without or with its CRLF/LF): 0, or EINVAL with
 * a reason in *why (a static string).
 */
int ctl_parse(sv_t line, struct ctl_req *out, const char **why);

/* The socket's path: configured, else the database's path with ".ctl" for ".db". ENAMETOOLONG. */
int ctl_path(const char *configured, const char *db_path, char *out, size_t len);

/* Binds the socket and serves it on s->main_base. err gets the reason. */
int ctl_start(struct server *s, struct ctl **out, char *err, size_t errlen);
/* Closes it and removes the file. */
void ctl_stop(struct ctl *c);

#endif
