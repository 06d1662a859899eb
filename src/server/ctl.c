/*
 * ctl.c - the local control socket (see ctl.h): why it exists is that live
 * state (calls in progress) is in the running server's memory, not in the
 * store, and the CLI and the HTTP API need it. A unix socket only its owner
 * may open (mode 0600), one request line, one JSON answer.
 */
#include "server/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "core/log.h"
#include "dialog/dialog.h"
#include "server/server.h"
#include "services/cdr.h"
#include "services/mediasvc.h"

#define CTL_IDLE_S	5
#define CTL_MAX_CLIENTS 32

struct ctl {
	struct server *srv;
	struct evconnlistener *lev;
	char path[108];
	unsigned clients;
	struct bufferevent *client[CTL_MAX_CLIENTS]; /* open ones, freed at stop */
};

int ctl_parse(sv_t line, struct ctl_req *out, const char **why)
{
	sv_t word, rest;
	ptrdiff_t sp;

	while (line.len && (line.p[line.len - 1] == '\n' || line.p[line.len - 1] == '\r'))
		line.len--;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < line.len; i++) {
		unsigned char c = (unsigned char)line.p[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "control characters in the request";
			return EINVAL;
		}
	}
	sp = sv_find(line, ' ');
	word = sp < 0 ? line : sv_sub(line, 0, (size_t)sp);
	rest = sp < 0 ? SV_NULL : sv_trim(sv_sub(line, (size_t)sp + 1, line.len));
	if (sv_eq(word, SV("calls")) && !rest.len) {
		out->verb = CTL_CALLS;
		return 0;
	}
	if (sv_eq(word, SV("stats")) && !rest.len) {
		out->verb = CTL_STATS;
		return 0;
	}
	if (sv_eq(word, SV("call"))) {
		if (!rest.len || sv_find(rest, ' ') >= 0) {
			*why = "usage: call CALL-ID";
			return EINVAL;
		}
		out->verb = CTL_CALL;
		out->arg = rest;
		return 0;
	}
	*why = "unknown request (calls, call CALL-ID, stats)";
	return EINVAL;
}

int ctl_path(const char *configured, const char *db_path, char *out, size_t len)
{
	size_t n;
	int r;

	if (configured && configured[0]) {
		r = snprintf(out, len, "%s", configured);
	} else {
		n = strlen(db_path);
		if (n > 3 && strcmp(db_path + n - 3, ".db") == 0)
			r = snprintf(out, len, "%.*s.ctl", (int)(n - 3), db_path);
		else
			r = snprintf(out, len, "%s.ctl", db_path);
	}
	if (r < 0 || (size_t)r >= len || (size_t)r >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return ENAMETOOLONG;
	return 0;
}

/* "sip:alice@example.com" out of a name-addr, or the text as it is. */
static json_t *uri_of(const char *naddr)
{
	struct sip_naddr na;

	if (naddr && sip_naddr_parse(sv_cstr(naddr), &na, NULL) == 0)
		return json_stringn(na.uri.p, na.uri.len);
	return json_string(naddr ? naddr : "");
}

static json_t *dlg_json(const struct dlg *d, bool full, int64_t now_ms)
{
	int64_t until = d->end_ms ? d->end_ms : now_ms;
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "callid", json_string(d->callid));
	json_object_set_new(o, "state", json_string(dlg_state_name(d->state)));
	json_object_set_new(o, "caller", uri_of(d->caller.naddr));
	json_object_set_new(o, "callee", uri_of(d->callee.naddr));
	json_object_set_new(o, "start", json_integer(d->start_ms / 1000));
	json_object_set_new(o, "answer", json_integer(d->answer_ms / 1000));
	json_object_set_new(o, "duration",
			    json_integer(d->answer_ms ? (until - d->answer_ms) / 1000 : 0));
	json_object_set_new(o, "gateway", json_string(d->gateway));
	json_object_set_new(o, "status", json_integer(d->status));
	json_object_set_new(o, "session_expires", json_integer(d->session_expires));
	json_object_set_new(o, "expires_in",
			    json_integer(d->expires_ms ? (d->expires_ms - now_ms) / 1000 : 0));
	if (!full)
		return o;
	json_object_set_new(o, "from_tag", json_string(d->caller.tag ? d->caller.tag : ""));
	json_object_set_new(o, "to_tag", json_string(d->callee.tag ? d->callee.tag : ""));
	json_object_set_new(o, "caller_contact",
			    json_string(d->caller.contact ? d->caller.contact : ""));
	json_object_set_new(o, "callee_contact",
			    json_string(d->callee.contact ? d->callee.contact : ""));
	json_object_set_new(o, "caller_route", json_string(d->caller.route ? d->caller.route : ""));
	json_object_set_new(o, "callee_route", json_string(d->callee.route ? d->callee.route : ""));
	json_object_set_new(o, "caller_cseq", json_integer(d->caller.cseq));
	json_object_set_new(o, "callee_cseq", json_integer(d->callee.cseq));
	json_object_set_new(o, "refresher", json_string(d->refresher_uas ? "uas" : "uac"));
	json_object_set_new(o, "owner", json_integer(d->owner));
	if (d->media.relayed) { /* what the relay saw (services/mediasvc.h), per direction */
		const struct dlg_media_dir *dir[2] = {&d->media.from_caller, &d->media.from_callee};
		static const char *const who[2] = {"media_from_caller", "media_from_callee"};
		for (int i = 0; i < 2; i++) {
			char k[64];
			snprintf(k, sizeof(k), "%s_packets", who[i]);
			json_object_set_new(o, k, json_integer((json_int_t)dir[i]->packets));
			snprintf(k, sizeof(k), "%s_bytes", who[i]);
			json_object_set_new(o, k, json_integer((json_int_t)dir[i]->bytes));
			snprintf(k, sizeof(k), "%s_lost", who[i]);
			json_object_set_new(o, k, json_integer((json_int_t)dir[i]->lost));
			snprintf(k, sizeof(k), "%s_jitter_us", who[i]);
			json_object_set_new(o, k, json_integer(dir[i]->jitter_us));
			snprintf(k, sizeof(k), "%s_codec", who[i]);
			json_object_set_new(o, k, json_string(dir[i]->codec));
		}
		json_object_set_new(o, "media_last_rtp", json_integer(d->media.last_rtp_ms / 1000));
	}
	json_object_set_new(o, "media_relayed", json_string(d->media.relayed ? "yes" : "no"));
	json_object_set_new(o, "caller_sdp", json_string(d->caller.sdp ? d->caller.sdp : ""));
	json_object_set_new(o, "callee_sdp", json_string(d->callee.sdp ? d->callee.sdp : ""));
	return o;
}

struct ctl_list {
	json_t *arr;
	sv_t callid; /* CTL_CALL: only this one */
	bool full;
	int64_t now_ms;
};

static int ctl_list_one(void *arg, const struct dlg *d)
{
	struct ctl_list *l = arg;
	json_t *o;

	if (d->state == DLG_TRYING && d->forked)
		return 0; /* its early dialogs stand for it */
	if (l->callid.p && !sv_eq(l->callid, sv_cstr(d->callid)))
		return 0;
	o = dlg_json(d, l->full, l->now_ms);
	if (o)
		json_array_append_new(l->arr, o);
	return 0;
}

static json_t *ctl_answer(struct ctl *c, const struct ctl_req *rq)
{
	struct ctl_list l = {.now_ms = dlg_now_ms()};
	json_t *res = json_object();

	if (!res)
		return NULL;
	if (!c->srv->dlg) {
		json_object_set_new(res, "error", json_string("dialogs are not tracked"));
		return res;
	}
	if (rq->verb == CTL_STATS) {
		struct dlg_stats st;
		dlg_stats_get(c->srv->dlg, &st);
		json_object_set_new(
		    res, "dialogs",
		    json_pack(
			"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "live", (json_int_t)st.live, "created",
			(json_int_t)st.created, "confirmed", (json_int_t)st.confirmed, "terminated",
			(json_int_t)st.terminated, "cap_hits", (json_int_t)st.cap_hits, "too_long",
			(json_int_t)st.too_long, "session_expired", (json_int_t)st.session_expired,
			"timed_out", (json_int_t)st.timed_out));
		if (c->srv->cdr) {
			struct cdr_stats cs;
			cdr_stats_get(c->srv->cdr, &cs);
			json_object_set_new(
			    res, "cdr",
			    json_pack(
				"{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "written", (json_int_t)cs.written,
				"queued", (json_int_t)cs.queued, "dropped", (json_int_t)cs.dropped,
				"calls", (json_int_t)cs.calls, "calls_capped",
				(json_int_t)cs.calls_capped, "truncated", (json_int_t)cs.truncated,
				"crash_records", (json_int_t)cs.crash_records));
		}
		if (c->srv->msvc) {
			struct msvc_stats ms;
			msvc_stats_get(c->srv->msvc, &ms);
			json_object_set_new(
			    res, "media",
			    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "sessions",
				      (json_int_t)ms.sessions, "ports_in_use",
				      (json_int_t)ms.ports_in_use, "created",
				      (json_int_t)ms.created, "forwarded", (json_int_t)ms.forwarded,
				      "dropped", (json_int_t)ms.dropped, "drop_foreign",
				      (json_int_t)ms.drop_foreign, "media_timeouts",
				      (json_int_t)ms.media_timeouts, "errors",
				      (json_int_t)ms.errors, "remote_updates",
				      (json_int_t)ms.remote_updates));
		}
		return res;
	}
	l.arr = json_array();
	if (!l.arr) {
		json_decref(res);
		return NULL;
	}
	if (rq->verb == CTL_CALL) {
		l.callid = rq->arg;
		l.full = true;
	}
	dlg_foreach(c->srv->dlg, ctl_list_one, &l);
	if (rq->verb == CTL_CALLS) {
		json_object_set_new(res, "calls", l.arr);
	} else if (json_array_size(l.arr) == 0) {
		json_decref(l.arr);
		json_object_set_new(res, "error", json_string("no such call"));
	} else {
		json_object_set_new(res, "call", l.arr); /* every dialog of it (a fork: several) */
	}
	return res;
}

static void ctl_client_close(struct ctl *c, struct bufferevent *bev)
{
	for (unsigned i = 0; i < c->clients; i++) {
		if (c->client[i] == bev) {
			c->client[i] = c->client[--c->clients];
			break;
		}
	}
	bufferevent_free(bev);
}

static void ctl_on_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ctl_client_close(arg, bev);
}

static void ctl_reply(struct ctl *c, struct bufferevent *bev, json_t *doc)
{
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

	json_decref(doc);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, ctl_on_written, NULL, c);
	if (text) {
		bufferevent_write(bev, text, strlen(text));
		free(text);
	} else {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		bufferevent_write(bev, oom, sizeof(oom) - 1);
	}
	bufferevent_write(bev, "\n", 1);
}

static void ctl_on_read(struct bufferevent *bev, void *arg)
{
	struct ctl *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = 0;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	struct ctl_req rq;
	const char *why = NULL;
	json_t *doc;

	if (!line) {
		if (evbuffer_get_length(in) > CTL_LINE_MAX) {
			doc = json_pack("{s:s}", "error", "request line too long");
			ctl_reply(c, bev, doc);
		}
		return;
	}
	if (n > CTL_LINE_MAX || ctl_parse(sv_make(line, n), &rq, &why)) {
		doc = json_pack("{s:s}", "error", why ? why : "request line too long");
	} else {
		doc = ctl_answer(c, &rq);
	}
	free(line);
	ctl_reply(c, bev, doc);
}

static void ctl_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what; /* EOF, error or the idle timeout: the client is gone */
	ctl_client_close(arg, bev);
}

static void ctl_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
			  int salen, void *arg)
{
	struct ctl *c = arg;
	struct timeval idle = {CTL_IDLE_S, 0};
	struct bufferevent *bev;

	(void)lev;
	(void)sa;
	(void)salen;
	if (c->clients >= CTL_MAX_CLIENTS) {
		log_warn("control socket: %u clients already, one refused", c->clients);
		evutil_closesocket(fd);
		return;
	}
	bev = bufferevent_socket_new(c->srv->main_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	c->client[c->clients++] = bev;
	bufferevent_setcb(bev, ctl_on_read, NULL, ctl_on_event, c);
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_enable(bev, EV_READ);
}

/* A socket file left by a server that is gone is removed; one that answers is in use. */
static int ctl_clear_stale(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return EEXIST;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0)
		return EADDRINUSE;
	return unlink(path) == 0 ? 0 : errno;
}

int ctl_start(struct server *s, struct ctl **out, char *err, size_t errlen)
{
	struct ctl *c = calloc(1, sizeof(*c));
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	mode_t old;
	int rc;

	if (!c)
		return ENOMEM;
	c->srv = s;
	rc = ctl_path(s->cfg.ctl_socket, s->cfg.db_path, c->path, sizeof(c->path));
	if (rc) {
		snprintf(err, errlen, "control socket path too long (control.socket)");
		free(c);
		return rc;
	}
	rc = ctl_clear_stale(c->path);
	if (rc) {
		snprintf(err, errlen, "control socket %s: %s", c->path,
			 rc == EADDRINUSE ? "another server is running there"
			 : rc == EEXIST	  ? "a file that is not a socket is in the way"
					  : strerror(rc));
		free(c);
		return rc;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->path);
	old = umask(0177); /* the socket file is created 0600: only its owner talks to it */
	c->lev = evconnlistener_new_bind(s->main_base, ctl_on_accept, c,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
					 (struct sockaddr *)&sun, sizeof(sun));
	rc = errno;
	umask(old);
	if (!c->lev) {
		snprintf(err, errlen, "control socket %s: %s", c->path, strerror(rc));
		free(c);
		return rc ? rc : EIO;
	}
	chmod(c->path, 0600);
	log_info("control socket %s", c->path);
	*out = c;
	return 0;
}

void ctl_stop(struct ctl *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->clients; i++)
		bufferevent_free(c->client[i]);
	evconnlistener_free(c->lev);
	unlink(c->path);
	free(c);
}
