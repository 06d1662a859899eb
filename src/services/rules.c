/*
 * rules.c - the routing rules in force: the file's dialplan and lists with
 * the CLI's changes from the store, and the snapshot the workers share.
 *
 * Each change is one record, so two administrators editing different
 * entries never overwrite each other, and the file can still be edited: its
 * entries that the CLI did not touch follow it.
 */
#include "services/rules.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/socket.h>

#include "store/store.h"

#define RULES_DELETED "deleted"

struct rules {
	atomic_uint refs;
	uint64_t gen;
	struct dp *dp;
	struct lists_global lists;
	char (*redirect_domains)[128];
	size_t nredirect;
	struct term_pattern *terminal_ua;
	size_t nterminal_ua;
};

struct rules_slot {
	pthread_mutex_t lock;
	struct rules *cur;
	atomic_uint_fast64_t gen;
};

/* What a store record callback works on. */
struct rules_load {
	struct rules_conf *c;
	char *err;
	size_t errlen;
};

int rules_find_rule(const struct dp_config *d, const char *key)
{
	char k[DP_REGEX_MAX + 2];

	for (size_t i = 0; i < d->nrules; i++) {
		dp_rule_key(&d->rules[i], k, sizeof(k));
		if (strcmp(k, key) == 0)
			return (int)i;
	}
	return -1;
}

static bool is_deleted(const struct store_record *rec)
{
	return strcmp(rec->meta, RULES_DELETED) == 0;
}

static int load_fail(struct rules_load *l, const char *what, const char *key, const char *why)
{
	snprintf(l->err, l->errlen, "%s '%s' set from the CLI: %s", what, key, why);
	return EINVAL;
}

static int load_gateway(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct dp_config *d = &l->c->dp;
	int i = dp_config_find_gateway(d, rec->key);
	struct dp_gateway g;
	char why[160];

	memset(&g, 0, sizeof(g)); /* padding too: equal rules compare equal (dbq.c) */
	g.probe = true;
	if (is_deleted(rec)) {
		if (i >= 0) {
			memmove(&d->gw[i], &d->gw[i + 1], (d->ngw - (size_t)i - 1) * sizeof(g));
			d->ngw--;
		}
		return 0;
	}
	if (strlen(rec->key) >= sizeof(g.name))
		return load_fail(l, "gateway", rec->key, "name too long");
	strcpy(g.name, rec->key);
	if (dp_gateway_parse(&g, sv_cstr(rec->meta), why, sizeof(why)))
		return load_fail(l, "gateway", rec->key, why);
	if (!g.host[0])
		return load_fail(l, "gateway", rec->key, "no address");
	if (i < 0 && d->ngw >= DP_MAX_GATEWAYS)
		return load_fail(l, "gateway", rec->key, "more than 64 gateways");
	d->gw[i < 0 ? d->ngw++ : (size_t)i] = g;
	return 0;
}

static int load_group(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct dp_config *d = &l->c->dp;
	int i = dp_config_find_group(d, rec->key);
	struct dp_group g;
	char why[160];

	memset(&g, 0, sizeof(g));
	if (is_deleted(rec)) {
		if (i >= 0) {
			memmove(&d->grp[i], &d->grp[i + 1], (d->ngrp - (size_t)i - 1) * sizeof(g));
			d->ngrp--;
		}
		return 0;
	}
	if (strlen(rec->key) >= sizeof(g.name))
		return load_fail(l, "gateway group", rec->key, "name too long");
	strcpy(g.name, rec->key);
	if (dp_group_parse(&g, sv_cstr(rec->meta), why, sizeof(why)))
		return load_fail(l, "gateway group", rec->key, why);
	if (!g.n)
		return load_fail(l, "gateway group", rec->key, "no gateways");
	if (i < 0 && d->ngrp >= DP_MAX_GROUPS)
		return load_fail(l, "gateway group", rec->key, "more than 32 groups");
	d->grp[i < 0 ? d->ngrp++ : (size_t)i] = g;
	return 0;
}

static int load_rule(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct dp_config *d = &l->c->dp;
	int i = rules_find_rule(d, rec->key);
	struct dp_rule *r;
	char why[160];

	if (is_deleted(rec)) {
		if (i >= 0) {
			memmove(&d->rules[i], &d->rules[i + 1],
				(d->nrules - (size_t)i - 1) * sizeof(*r));
			d->nrules--;
		}
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return ENOMEM;
	if (dp_rule_match_parse(sv_cstr(rec->key), r, why, sizeof(why)))
		goto bad;
	if (dp_rule_parse(r, sv_cstr(rec->meta), why, sizeof(why)))
		goto bad;
	if (i < 0 && d->nrules >= DP_MAX_RULES) {
		snprintf(why, sizeof(why), "more than %d rules", DP_MAX_RULES);
		goto bad;
	}
	d->rules[i < 0 ? d->nrules++ : (size_t)i] = *r;
	free(r);
	return 0;
bad:
	free(r);
	return load_fail(l, "dialplan rule", rec->key, why);
}

static int load_list_item(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct lists_global *g = &l->c->lists;
	sv_t key = sv_cstr(rec->key);
	ptrdiff_t sp = sv_find(key, ' ');
	sv_t name = sp < 0 ? key : sv_sub(key, 0, (size_t)sp);
	sv_t value = sp < 0 ? SV_NULL : sv_sub(key, (size_t)sp + 1, key.len);
	struct lists_prefixes *pl = lists_global_prefixes(g, name);
	struct lists_nets *nl = lists_global_nets(g, name);
	bool del = is_deleted(rec);
	uint32_t st;

	if (sv_eq(name, SV("block_status"))) {
		if (sv_to_u32(sv_cstr(rec->meta), &st) || (st != 403 && st != 603))
			return load_fail(l, "list setting", rec->key, "403 or 603");
		g->block_status = st;
		return 0;
	}
	if (pl) {
		size_t i = 0;
		if (!lists_prefix_ok(value))
			return load_fail(l, "list entry", rec->key, "not a prefix");
		while (i < pl->n && !sv_eq(sv_cstr(pl->v[i]), value))
			i++;
		if (del && i < pl->n)
			memmove(pl->v[i], pl->v[i + 1], (pl->n-- - i - 1) * sizeof(pl->v[0]));
		else if (!del && i == pl->n && pl->n < LISTS_MAX) {
			if (sv_copy(value, pl->v[pl->n], sizeof(pl->v[0])))
				return load_fail(l, "list entry", rec->key, "too long");
			pl->n++;
		}
		return 0;
	}
	if (nl) {
		struct lists_cidr c;
		size_t i = 0;
		if (lists_cidr_parse(value, &c))
			return load_fail(l, "list entry", rec->key, "not an address or network");
		while (i < nl->n && !lists_cidr_equal(&nl->v[i], &c))
			i++;
		if (del && i < nl->n)
			memmove(&nl->v[i], &nl->v[i + 1], (nl->n-- - i - 1) * sizeof(c));
		else if (!del && i == nl->n && nl->n < LISTS_MAX)
			nl->v[nl->n++] = c;
		return 0;
	}
	return load_fail(l, "list entry", rec->key, "no such list");
}

int rules_find_redirect(const struct rules_conf *c, const char *domain)
{
	for (size_t i = 0; i < c->nredirect; i++) {
		if (strcmp(c->redirect_domains[i], domain) == 0)
			return (int)i;
	}
	return -1;
}

int rules_find_terminal(const struct rules_conf *c, const char *match)
{
	for (size_t i = 0; i < c->nterminal_ua; i++) {
		if (strcmp(c->terminal_ua[i].match, match) == 0)
			return (int)i;
	}
	return -1;
}

static int load_redirect(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct rules_conf *c = l->c;
	int i = rules_find_redirect(c, rec->key);

	if (is_deleted(rec)) {
		if (i >= 0)
			memmove(c->redirect_domains[i], c->redirect_domains[i + 1],
				(c->nredirect-- - (size_t)i - 1) * sizeof(c->redirect_domains[0]));
		return 0;
	}
	if (strlen(rec->key) >= sizeof(c->redirect_domains[0]))
		return load_fail(l, "redirect domain", rec->key, "too long");
	if (i < 0 && c->nredirect < CFG_MAX_DOMAINS)
		strcpy(c->redirect_domains[c->nredirect++], rec->key);
	return 0;
}

static int load_terminal(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	struct rules_conf *c = l->c;
	int i = rules_find_terminal(c, rec->key);
	struct term_pattern p;

	if (is_deleted(rec)) {
		if (i >= 0)
			memmove(&c->terminal_ua[i], &c->terminal_ua[i + 1],
				(c->nterminal_ua-- - (size_t)i - 1) * sizeof(p));
		return 0;
	}
	memset(&p, 0, sizeof(p));
	if (strlen(rec->key) >= sizeof(p.match) || term_parse(sv_cstr(rec->meta), &p.type))
		return load_fail(l, "terminal pattern", rec->key, "bad pattern or type");
	strcpy(p.match, rec->key);
	if (i >= 0)
		c->terminal_ua[i] = p;
	else if (c->nterminal_ua < CFG_MAX_TERMINAL_UA)
		c->terminal_ua[c->nterminal_ua++] = p;
	return 0;
}

static int load_dp_setting(void *arg, const struct store_record *rec)
{
	struct rules_load *l = arg;
	char why[200];

	if (is_deleted(rec))
		return 0; /* the file's value stands */
	if (dp_config_set(&l->c->dp, sv_cstr(rec->key), sv_cstr(rec->meta), why, sizeof(why)))
		return load_fail(l, "dialplan setting", rec->key, why);
	return 0;
}

void rules_conf_from_cfg(struct rules_conf *out, const struct cfg *c)
{
	memset(out, 0, sizeof(*out));
	out->dp = c->dialplan;
	out->lists = c->lists;
	memcpy(out->redirect_domains, c->redirect_domains, sizeof(out->redirect_domains));
	out->nredirect = c->nredirect_domains;
	memcpy(out->terminal_ua, c->terminal_ua, sizeof(out->terminal_ua));
	out->nterminal_ua = c->nterminal_ua;
}

int rules_conf_load(struct store *st, const struct rules_conf *base, struct rules_conf *out,
		    char *err, size_t errlen)
{
	struct rules_load l = {out, err, errlen};
	unsigned line = 0;
	char why[200];
	int rc;

	err[0] = '\0';
	if (out != base)
		*out = *base;
	if ((rc = store_record_list(st, STORE_REC_GATEWAY, NULL, load_gateway, &l)) ||
	    (rc = store_record_list(st, STORE_REC_GWGROUP, NULL, load_group, &l)) ||
	    (rc = store_record_list(st, STORE_REC_DPRULE, NULL, load_rule, &l)) ||
	    (rc = store_record_list(st, STORE_REC_LISTITEM, NULL, load_list_item, &l)) ||
	    (rc = store_record_list(st, STORE_REC_REDIRECT, NULL, load_redirect, &l)) ||
	    (rc = store_record_list(st, STORE_REC_TERMINAL, NULL, load_terminal, &l)) ||
	    (rc = store_record_list(st, STORE_REC_DPSETTING, NULL, load_dp_setting, &l)))
		goto out;
	rc = dp_config_resolve(&out->dp, why, sizeof(why), &line);
	if (rc) {
		if (line)
			snprintf(err, errlen,
				 "line %u of the configuration file: %s (with the "
				 "changes made by `switchboard route`)",
				 line, why);
		else
			snprintf(err, errlen, "%s (set from the CLI)", why);
	}
out:
	if (rc && !err[0])
		snprintf(err, errlen, "%s", store_errmsg(st));
	return rc;
}

/*
 * The CLI's side: one record per entry
 */

/* The seq an entry keeps (its place among the regex rules), or the next one for a new entry. */
struct seq_find {
	const char *key;
	int64_t found, max;
};

static int seq_row(void *arg, const char *key, int64_t seq)
{
	struct seq_find *f = arg;

	if (strcmp(key, f->key) == 0)
		f->found = seq;
	if (seq > f->max)
		f->max = seq;
	return 0;
}

static int save(struct store *st, int kind, const char *key, const char *meta)
{
	struct store_record rec = {.kind = kind, .meta = meta};
	struct seq_find f = {key, -1, 0};
	struct timespec ts;
	int rc;

	if (strlen(key) >= sizeof(rec.key))
		return ENAMETOOLONG;
	strcpy(rec.key, key);
	/* the order of creation, kept on a change: regex rules are tried in it */
	rc = store_record_keys(st, kind, seq_row, &f);
	if (rc)
		return rc;
	clock_gettime(CLOCK_REALTIME, &ts);
	rec.seq = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (f.found >= 0)
		rec.seq = f.found;
	else if (rec.seq <= f.max)
		rec.seq = f.max + 1;
	return store_record_put(st, &rec);
}

int rules_save_gateway(struct store *st, const struct dp_gateway *g)
{
	char meta[512];
	int rc = dp_gateway_print(g, meta, sizeof(meta));

	return rc ? rc : save(st, STORE_REC_GATEWAY, g->name, meta);
}

int rules_save_group(struct store *st, const struct dp_group *g)
{
	char meta[1024];
	int rc = dp_group_print(g, meta, sizeof(meta));

	return rc ? rc : save(st, STORE_REC_GWGROUP, g->name, meta);
}

int rules_save_rule(struct store *st, const struct dp_rule *r)
{
	char meta[4096], key[DP_REGEX_MAX + 2];
	int rc = dp_rule_print(r, meta, sizeof(meta));

	dp_rule_key(r, key, sizeof(key));
	return rc ? rc : save(st, STORE_REC_DPRULE, key, meta);
}

int rules_save_list_item(struct store *st, const char *list, const char *value)
{
	char key[STORE_KEY_MAX];

	snprintf(key, sizeof(key), "%s %s", list, value);
	return save(st, STORE_REC_LISTITEM, key, "");
}

int rules_save_block_status(struct store *st, unsigned status)
{
	char meta[8];

	snprintf(meta, sizeof(meta), "%u", status);
	return save(st, STORE_REC_LISTITEM, "block_status", meta);
}

int rules_save_redirect(struct store *st, const char *domain)
{
	return save(st, STORE_REC_REDIRECT, domain, "");
}

int rules_save_terminal(struct store *st, const struct term_pattern *p)
{
	return save(st, STORE_REC_TERMINAL, p->match, term_name(p->type));
}

int rules_save_dp_setting(struct store *st, const struct dp_config *c, const char *key)
{
	char meta[32];
	int rc = dp_config_print(c, key, meta, sizeof(meta));

	return rc ? rc : save(st, STORE_REC_DPSETTING, key, meta);
}

int rules_forget(struct store *st, int kind, const char *key, bool in_file)
{
	int rc;

	if (in_file)
		return save(st, kind, key, RULES_DELETED);
	rc = store_record_del(st, kind, key);
	return rc == ENOENT ? 0 : rc;
}

/*
 * The snapshot in force
 */

static void rules_put(struct rules *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		dp_destroy(r->dp);
		free(r->redirect_domains);
		free(r->terminal_ua);
		free(r);
	}
}

int rules_slot_create(struct rules_slot **out)
{
	struct rules_slot *s = calloc(1, sizeof(*s));

	if (!s)
		return ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->gen, 0);
	*out = s;
	return 0;
}

void rules_slot_destroy(struct rules_slot *s)
{
	if (!s)
		return;
	rules_put(s->cur);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int rules_publish(struct rules_slot *s, const struct rules_conf *c)
{
	struct rules *r = calloc(1, sizeof(*r)), *old;
	int rc = 0;

	if (!r)
		return ENOMEM;
	atomic_init(&r->refs, 1);
	r->lists = c->lists;
	/* copies of their used length only: a snapshot stays small */
	r->nredirect = c->nredirect;
	r->nterminal_ua = c->nterminal_ua;
	r->redirect_domains = malloc(sizeof(*r->redirect_domains) * (c->nredirect + 1));
	r->terminal_ua = malloc(sizeof(*r->terminal_ua) * (c->nterminal_ua + 1));
	if (!r->redirect_domains || !r->terminal_ua) {
		free(r->redirect_domains);
		free(r->terminal_ua);
		free(r);
		return ENOMEM;
	}
	memcpy(r->redirect_domains, c->redirect_domains,
	       sizeof(*r->redirect_domains) * c->nredirect);
	memcpy(r->terminal_ua, c->terminal_ua, sizeof(*r->terminal_ua) * c->nterminal_ua);
	/* only this thread publishes: s->cur cannot go away under us */
	if (c->dp.nrules || c->dp.ngw)
		rc = dp_create(&c->dp, s->cur ? s->cur->dp : NULL, &r->dp);
	if (rc) {
		free(r->redirect_domains);
		free(r->terminal_ua);
		free(r);
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	old = s->cur;
	r->gen = (old ? old->gen : 0) + 1;
	s->cur = r;
	atomic_store_explicit(&s->gen, r->gen, memory_order_release);
	pthread_mutex_unlock(&s->lock);
	rules_put(old);
	return 0;
}

struct rules *rules_view_get(struct rules_view *v, struct rules_slot *s)
{
	struct rules *r;

	if (atomic_load_explicit(&s->gen, memory_order_acquire) == v->gen && v->r)
		return v->r;
	pthread_mutex_lock(&s->lock);
	r = s->cur;
	if (r)
		atomic_fetch_add(&r->refs, 1);
	pthread_mutex_unlock(&s->lock);
	rules_put(v->r);
	v->r = r;
	v->gen = r ? r->gen : 0;
	return r;
}

void rules_view_release(struct rules_view *v)
{
	rules_put(v->r);
	v->r = NULL;
	v->gen = 0;
}

struct dp *rules_dp(const struct rules *r)
{
	return r ? r->dp : NULL;
}

const struct lists_global *rules_lists(const struct rules *r)
{
	return &r->lists;
}

bool rules_redirects(const struct rules *r, const char *domain)
{
	for (size_t i = 0; r && i < r->nredirect; i++) {
		if (strcmp(r->redirect_domains[i], "*") == 0 ||
		    strcasecmp(r->redirect_domains[i], domain) == 0)
			return true;
	}
	return false;
}

const struct term_pattern *rules_terminal_patterns(const struct rules *r, size_t *n)
{
	*n = r ? r->nterminal_ua : 0;
	return r ? r->terminal_ua : NULL;
}

uint64_t rules_gen(const struct rules *r)
{
	return r ? r->gen : 0;
}
