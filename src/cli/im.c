/*
 * im.c - `switchboard msg`, `presence`, `topic` and `mwi`: what the
 * messaging and presence services hold, read from the store, and the parts
 * an administrator changes (topics and their members, mailbox summaries).
 * A running server notices a change within a second (it watches the
 * database for other writers) and applies it without a restart.
 */
#include "cli/internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sv.h"
#include "store/store.h"

static void cli_im_usage(FILE *to)
{
	fprintf(to,
		"usage: switchboard msg list [USER@DOMAIN]      stored (offline) messages\n"
		"       switchboard msg del ID                  drop a stored message\n"
		"       switchboard presence list [USER@DOMAIN] subscriptions and publications\n"
		"       switchboard topic list                  broker topics\n"
		"       switchboard topic create|delete TOPIC\n"
		"       switchboard topic members TOPIC\n"
		"       switchboard topic add|remove TOPIC USER@DOMAIN\n"
		"       switchboard mwi set USER@DOMAIN NEW OLD  mailbox summary (RFC 3842)\n"
		"       switchboard mwi list\n"
		"TOPIC is name@topic-domain or sip:name@topic-domain.\n"
		"Each takes -c FILE or --db PATH to find the database.\n");
}

/* "sip:Alice@Example.COM" -> "Alice@example.com"; EINVAL without user@domain. */
static int cli_aor(const char *in, char *out, size_t len)
{
	const char *p = in, *at;
	size_t n;

	if (strncasecmp(p, "sip:", 4) == 0)
		p += 4;
	at = strchr(p, '@');
	n = strlen(p);
	if (!at || at == p || !at[1] || n >= len || strpbrk(p, " \t<>;,\"") != NULL)
		return EINVAL;
	memcpy(out, p, n + 1);
	for (char *d = out + (at - p) + 1; *d; d++)
		*d = (char)tolower((unsigned char)*d);
	return 0;
}

static void cli_left(int64_t expires, char *out, size_t len)
{
	int64_t left = expires - (int64_t)time(NULL);

	if (!expires)
		snprintf(out, len, "never");
	else if (left <= 0)
		snprintf(out, len, "expired");
	else
		snprintf(out, len, "%" PRId64 "s", left);
}

static void cli_meta(const char *meta, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = meta;

	snprintf(out, len, "-");
	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t l = eol ? (size_t)(eol - p) : strlen(p);
		if (l > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			snprintf(out, len, "%.*s", (int)(l - (size_t)(v - p)), v);
			return;
		}
		p = eol ? eol + 2 : NULL;
	}
}

struct cli_im_count {
	size_t n;
	const char *filter;
};

static int cli_msg_row(void *arg, const struct store_record *r)
{
	struct cli_im_count *c = arg;
	char from[160], date[64], ct[64], left[32];

	cli_meta(r->meta, "From", from, sizeof(from));
	cli_meta(r->meta, "Date", date, sizeof(date));
	cli_meta(r->meta, "Content-Type", ct, sizeof(ct));
	cli_left(r->expires, left, sizeof(left));
	if (c->n++ == 0)
		printf("%-20s  %-28s  %-40s  %-29s  %-24s  %6s  %s\n", "ID", "TO", "FROM", "DATE",
		       "TYPE", "BYTES", "EXPIRES");
	printf("%-20s  %-28s  %-40s  %-29s  %-24s  %6zu  %s\n", r->key, r->owner, from, date, ct,
	       r->body_len, left);
	return 0;
}

static int cli_msg(const struct cli_opts *o, struct store *s, const char *sub)
{
	char aor[STORE_URI_MAX];
	struct cli_im_count c = {0};
	int rc;

	if (strcmp(sub, "list") == 0) {
		if (cli_want_args(o, 0, 1, "msg list"))
			return CLI_EXIT_USAGE;
		if (o->npos && cli_aor(o->pos[0], aor, sizeof(aor))) {
			fprintf(stderr, "msg list: '%s' is not USER@DOMAIN\n", o->pos[0]);
			return CLI_EXIT_USAGE;
		}
		rc = store_record_list(s, STORE_REC_MESSAGE, o->npos ? aor : NULL, cli_msg_row, &c);
		if (rc) {
			fprintf(stderr, "msg list: %s\n", store_errmsg(s));
			return cli_exit_for(rc);
		}
		if (!c.n)
			printf("no stored messages\n");
		return CLI_EXIT_OK;
	}
	if (strcmp(sub, "del") == 0) {
		if (cli_want_args(o, 1, 1, "msg del"))
			return CLI_EXIT_USAGE;
		rc = store_record_del(s, STORE_REC_MESSAGE, o->pos[0]);
		if (rc) {
			fprintf(stderr, "msg del: %s: %s\n", o->pos[0],
				rc == ENOENT ? "no such message" : store_errmsg(s));
			return cli_exit_for(rc);
		}
		printf("message %s deleted\n", o->pos[0]);
		return CLI_EXIT_OK;
	}
	fprintf(stderr, "msg: unknown command '%s' (try --help)\n", sub);
	return CLI_EXIT_USAGE;
}

static int cli_sub_row(void *arg, const struct store_record *r)
{
	struct cli_im_count *c = arg;
	char ev[32], watcher[160], state[8], left[32];
	static const char *const states[] = {"pending", "active", "ended"};
	unsigned st;

	cli_meta(r->meta, "Event", ev, sizeof(ev));
	cli_meta(r->meta, "Watcher", watcher, sizeof(watcher));
	cli_meta(r->meta, "State", state, sizeof(state));
	st = (unsigned)atoi(state);
	cli_left(r->expires, left, sizeof(left));
	if (c->filter && strcmp(c->filter, r->owner) != 0 && strcmp(c->filter, watcher) != 0)
		return 0;
	if (c->n++ == 0)
		printf("%-6s  %-16s  %-32s  %-32s  %-8s  %s\n", "ID", "EVENT", "RESOURCE",
		       "WATCHER", "STATE", "EXPIRES");
	printf("%-6s  %-16s  %-32s  %-32s  %-8s  %s\n", r->key, ev, r->owner, watcher,
	       st < 3 ? states[st] : "?", left);
	return 0;
}

static int cli_pub_row(void *arg, const struct store_record *r)
{
	struct cli_im_count *c = arg;
	char left[32];

	if (c->filter && strcmp(c->filter, r->owner) != 0)
		return 0;
	cli_left(r->expires, left, sizeof(left));
	if (c->n++ == 0)
		printf("%-18s  %-32s  %6s  %s\n", "ETAG", "PRESENTITY", "BYTES", "EXPIRES");
	printf("%-18s  %-32s  %6zu  %s\n", r->key, r->owner, r->body_len, left);
	return 0;
}

static int cli_presence(const struct cli_opts *o, struct store *s, const char *sub)
{
	char aor[STORE_URI_MAX];
	struct cli_im_count c = {0};
	int rc;

	if (strcmp(sub, "list") != 0) {
		fprintf(stderr, "presence: unknown command '%s' (try --help)\n", sub);
		return CLI_EXIT_USAGE;
	}
	if (cli_want_args(o, 0, 1, "presence list"))
		return CLI_EXIT_USAGE;
	if (o->npos) {
		if (cli_aor(o->pos[0], aor, sizeof(aor))) {
			fprintf(stderr, "presence list: '%s' is not USER@DOMAIN\n", o->pos[0]);
			return CLI_EXIT_USAGE;
		}
		c.filter = aor;
	}
	printf("subscriptions:\n");
	rc = store_record_list(s, STORE_REC_SUBSCRIPTION, NULL, cli_sub_row, &c);
	if (!rc && !c.n)
		printf("  none\n");
	c.n = 0;
	printf("publications:\n");
	if (!rc)
		rc = store_record_list(s, STORE_REC_PUBLICATION, NULL, cli_pub_row, &c);
	if (!rc && !c.n)
		printf("  none\n");
	if (rc) {
		fprintf(stderr, "presence list: %s\n", store_errmsg(s));
		return cli_exit_for(rc);
	}
	return CLI_EXIT_OK;
}

static int cli_topic_row(void *arg, const struct store_record *r)
{
	struct cli_im_count *c = arg;

	if (c->filter) {
		const char *sp = strchr(r->key, ' ');
		if (sp) {
			printf("%s\n", sp + 1);
			c->n++;
		}
		return 0;
	}
	if (c->n++ == 0)
		printf("TOPIC\n");
	printf("sip:%s\n", r->key);
	return 0;
}

static int cli_count_row(void *arg, const struct store_record *r)
{
	(void)r;
	(*(size_t *)arg)++;
	return 0;
}

static int cli_topic_exists(struct store *s, const char *key, bool *exists)
{
	size_t n = 0;
	int rc = store_record_list(s, STORE_REC_TOPIC, key, cli_count_row, &n);

	*exists = n > 0;
	return rc;
}

static int cli_topic_member_del(void *arg, const struct store_record *r)
{
	store_record_del(arg, STORE_REC_MEMBER, r->key);
	return 0;
}

static int cli_topic(const struct cli_opts *o, struct store *s, const char *sub)
{
	char topic[STORE_USER_MAX + STORE_DOMAIN_MAX + 2],
	    member[STORE_USER_MAX + STORE_DOMAIN_MAX + 2];
	struct store_record rec = {0};
	struct cli_im_count c = {0};
	bool exists = false;
	int rc = 0;

	if (strcmp(sub, "list") == 0) {
		if (cli_want_args(o, 0, 0, "topic list"))
			return CLI_EXIT_USAGE;
		rc = store_record_list(s, STORE_REC_TOPIC, NULL, cli_topic_row, &c);
		if (!rc && !c.n)
			printf("no topics\n");
		goto out;
	}
	if (o->npos < 1 || cli_aor(o->pos[0], topic, sizeof(topic))) {
		fprintf(stderr, "topic %s: give the topic as name@topic-domain\n", sub);
		return CLI_EXIT_USAGE;
	}
	rc = cli_topic_exists(s, topic, &exists);
	if (rc)
		goto out;
	if (strcmp(sub, "create") == 0) {
		if (cli_want_args(o, 1, 1, "topic create"))
			return CLI_EXIT_USAGE;
		if (exists) {
			fprintf(stderr, "topic create: sip:%s exists already\n", topic);
			return CLI_EXIT_EXISTS;
		}
		rec.kind = STORE_REC_TOPIC;
		snprintf(rec.key, sizeof(rec.key), "%s", topic);
		snprintf(rec.owner, sizeof(rec.owner), "%s", topic);
		rec.seq = (int64_t)time(NULL);
		rec.meta = "";
		rc = store_record_put(s, &rec);
		if (!rc)
			printf("topic sip:%s created\n", topic);
		goto out;
	}
	if (!exists) {
		fprintf(stderr, "topic %s: no topic sip:%s\n", sub, topic);
		return CLI_EXIT_NOT_FOUND;
	}
	if (strcmp(sub, "delete") == 0) {
		if (cli_want_args(o, 1, 1, "topic delete"))
			return CLI_EXIT_USAGE;
		rc = store_begin(s);
		if (!rc)
			rc = store_record_list(s, STORE_REC_MEMBER, topic, cli_topic_member_del, s);
		if (!rc)
			rc = store_record_del(s, STORE_REC_TOPIC, topic);
		rc = rc ? (store_rollback(s), rc) : store_commit(s);
		if (!rc)
			printf("topic sip:%s deleted\n", topic);
		goto out;
	}
	if (strcmp(sub, "members") == 0) {
		if (cli_want_args(o, 1, 1, "topic members"))
			return CLI_EXIT_USAGE;
		c.filter = topic;
		rc = store_record_list(s, STORE_REC_MEMBER, topic, cli_topic_row, &c);
		if (!rc && !c.n)
			printf("no members\n");
		goto out;
	}
	if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) {
		if (cli_want_args(o, 2, 2, strcmp(sub, "add") == 0 ? "topic add" : "topic remove"))
			return CLI_EXIT_USAGE;
		if (cli_aor(o->pos[1], member, sizeof(member))) {
			fprintf(stderr, "topic %s: '%s' is not USER@DOMAIN\n", sub, o->pos[1]);
			return CLI_EXIT_USAGE;
		}
		rec.kind = STORE_REC_MEMBER;
		snprintf(rec.key, sizeof(rec.key), "%s %s", topic, member);
		if (strcmp(sub, "remove") == 0) {
			rc = store_record_del(s, STORE_REC_MEMBER, rec.key);
			if (rc == ENOENT) {
				fprintf(stderr, "topic remove: %s is not a member of sip:%s\n",
					member, topic);
				return CLI_EXIT_NOT_FOUND;
			}
		} else {
			snprintf(rec.owner, sizeof(rec.owner), "%s", topic);
			rec.meta = "";
			rc = store_record_put(s, &rec);
		}
		if (!rc)
			printf("%s %s sip:%s\n", member, sub[0] == 'a' ? "joined" : "left", topic);
		goto out;
	}
	fprintf(stderr, "topic: unknown command '%s' (try --help)\n", sub);
	return CLI_EXIT_USAGE;
out:
	if (rc) {
		fprintf(stderr, "topic %s: %s\n", sub, store_errmsg(s));
		return cli_exit_for(rc);
	}
	return CLI_EXIT_OK;
}

static int cli_mwi_row(void *arg, const struct store_record *r)
{
	struct cli_im_count *c = arg;
	unsigned nw = 0, old = 0;

	sscanf(r->meta, "%u %u", &nw, &old);
	if (c->n++ == 0)
		printf("%-32s  %5s  %5s\n", "MAILBOX", "NEW", "OLD");
	printf("%-32s  %5u  %5u\n", r->owner, nw, old);
	return 0;
}

static int cli_count(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 1000000 || s[0] == '-')
		return EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int cli_mwi(const struct cli_opts *o, struct store *s, const char *sub)
{
	struct store_record rec = {.kind = STORE_REC_MAILBOX};
	struct cli_im_count c = {0};
	char meta[32];
	unsigned nw, old;
	int rc;

	if (strcmp(sub, "list") == 0) {
		if (cli_want_args(o, 0, 0, "mwi list"))
			return CLI_EXIT_USAGE;
		rc = store_record_list(s, STORE_REC_MAILBOX, NULL, cli_mwi_row, &c);
		if (!rc && !c.n)
			printf("no mailboxes\n");
	} else if (strcmp(sub, "set") == 0) {
		if (cli_want_args(o, 3, 3, "mwi set"))
			return CLI_EXIT_USAGE;
		if (cli_aor(o->pos[0], rec.owner, STORE_USER_MAX + STORE_DOMAIN_MAX + 2)) {
			fprintf(stderr, "mwi set: '%s' is not USER@DOMAIN\n", o->pos[0]);
			return CLI_EXIT_USAGE;
		}
		if (cli_count(o->pos[1], &nw) || cli_count(o->pos[2], &old)) {
			fprintf(stderr, "mwi set: NEW and OLD are message counts (0-1000000)\n");
			return CLI_EXIT_USAGE;
		}
		memcpy(rec.key, rec.owner, strlen(rec.owner) + 1);
		snprintf(meta, sizeof(meta), "%u %u", nw, old);
		rec.meta = meta;
		rc = store_record_put(s, &rec);
		if (!rc)
			printf("mailbox %s: %u new, %u old\n", rec.key, nw, old);
	} else {
		fprintf(stderr, "mwi: unknown command '%s' (try --help)\n", sub);
		return CLI_EXIT_USAGE;
	}
	if (rc) {
		fprintf(stderr, "mwi %s: %s\n", sub, store_errmsg(s));
		return cli_exit_for(rc);
	}
	return CLI_EXIT_OK;
}

int cli_im(const char *group, int argc, char **argv)
{
	char cmd[64];
	struct cli_opts o;
	struct store *s = NULL;
	int ex;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		cli_im_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	snprintf(cmd, sizeof(cmd), "%s %s", group, argv[1]);
	ex = cli_parse(argc - 1, argv + 1, cmd, CLI_OPT_STORE, &o);
	if (!ex && o.help) {
		cli_im_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (ex)
		return ex;
	ex = cli_open_store(o.config, o.db, &s);
	if (ex)
		return ex;
	if (strcmp(group, "msg") == 0)
		ex = cli_msg(&o, s, argv[1]);
	else if (strcmp(group, "presence") == 0)
		ex = cli_presence(&o, s, argv[1]);
	else if (strcmp(group, "topic") == 0)
		ex = cli_topic(&o, s, argv[1]);
	else
		ex = cli_mwi(&o, s, argv[1]);
	store_close(s);
	return ex;
}
