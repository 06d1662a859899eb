/*
 * store.c - the backend-independent half of the store: picks the backend
 * from the location string, and validates, normalises and hashes everything
 * before a backend sees it.
 *
 * Doing the checks here means every backend stores the same thing: domains in
 * lowercase (SIP compares host names case-insensitively, so one user must
 * not exist twice as Example.com and example.com), user names exactly as
 * given, and only HA1 hashes, never a password.
 */
#include "store/backend.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct store_backend {
	const char *prefix;
	/* NULL: a backend that is planned but not built yet. */
	int (*open)(const char *location, struct store **out, char *err, size_t errlen);
	bool strip; /* open gets the location without the prefix */
};

static const struct store_backend store_backends[] = {
    {"sqlite:", store_sqlite_open, true},
    {"postgres://", NULL, false},
    {"postgresql://", NULL, false},
    {"redis://", NULL, false},
};

int store_fail(struct store *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

static int store_open_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int store_open_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int store_open_backend(const char *location, struct store **out, char *err, size_t errlen);

/* ---------------------------------------------------- additions' sentinel */

#define STORE_SENTINEL_MAX 4096 /* bytes before the sentinel starts again */

/* "<path>-users" for a file database; false for anything else. */
static bool store_sentinel_path(const char *location, char *out, size_t len)
{
	int n;

	if (!location)
		return false;
	if (strncasecmp(location, "sqlite:", 7) == 0)
		location += 7;
	if (!*location || strstr(location, "://") || strcmp(location, ":memory:") == 0 ||
	    strncmp(location, "file:", 5) == 0)
		return false;
	n = snprintf(out, len, "%s-users", location);
	return n > 0 && (size_t)n < len;
}

int store_users_stamp(const char *location, struct store_stamp *out)
{
	char path[STORE_SENTINEL_MAX];
	struct stat st;

	*out = (struct store_stamp){0};
	if (!store_sentinel_path(location, path, sizeof(path)))
		return ENOTSUP;
	if (stat(path, &st) != 0)
		return 0; /* none yet: nobody added a subscriber since the file was made */
	out->exists = true;
	out->ino = (uint64_t)st.st_ino;
	out->size = (uint64_t)st.st_size;
	out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	out->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	return 0;
}

bool store_stamp_eq(const struct store_stamp *a, const struct store_stamp *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/*
 * Subscribers were added and committed: the sentinel changes (one byte more,
 * or emptied when long: its size and times differ from any stamp before).
 */
static void store_users_touch(struct store *s)
{
	struct stat st;
	int fd;

	s->users_added = false;
	if (!s->users_sentinel[0])
		return;
	fd = open(s->users_sentinel, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return; /* a server then learns of it at its next poll, as before */
	if (fstat(fd, &st) == 0 && st.st_size >= STORE_SENTINEL_MAX)
		(void)!ftruncate(fd, 0);
	else
		(void)!write(fd, "+", 1);
	close(fd);
}

int store_open(const char *location, struct store **out, char *err, size_t errlen)
{
	int rc = store_open_backend(location, out, err, errlen);

	if (!rc &&
	    !store_sentinel_path(location, (*out)->users_sentinel, sizeof((*out)->users_sentinel)))
		(*out)->users_sentinel[0] = '\0';
	return rc;
}

static int store_open_backend(const char *location, struct store **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!location || !*location)
		return store_open_fail(err, errlen, EINVAL, "no database location given");
	for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
		const struct store_backend *b = &store_backends[i];
		size_t n = strlen(b->prefix);

		if (strncasecmp(location, b->prefix, n) != 0)
			continue;
		if (!b->open)
			return store_open_fail(err, errlen, ENOTSUP, "backend not built yet");
		return b->open(b->strip ? location + n : location, out, err, errlen);
	}
	if (strstr(location, "://"))
		return store_open_fail(err, errlen, EINVAL, "unknown database backend in '%.200s'",
				       location);
	return store_sqlite_open(location, out, err, errlen);
}

static void store_hasher_free(struct store_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md5);
	EVP_MD_free(h->sha256);
	*h = (struct store_hasher){0};
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_hasher_free(&s->hasher);
	s->ops->close(s);
}

const char *store_errmsg(struct store *s)
{
	return s ? s->errmsg : "no store";
}

/* ---------------------------------------------------------------- hashing */

static void store_hex(const unsigned char *bin, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

/* out gets the hex digest, or "" if the algorithm is unavailable (FIPS). */
static int store_ha1(EVP_MD_CTX *ctx, const EVP_MD *md, sv_t user, sv_t realm, sv_t password,
		     char *out)
{
	unsigned char bin[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	int ok;

	out[0] = '\0';
	ok = ctx && md && EVP_DigestInit_ex2(ctx, md, NULL) &&
	     EVP_DigestUpdate(ctx, user.p, user.len) && EVP_DigestUpdate(ctx, ":", 1) &&
	     EVP_DigestUpdate(ctx, realm.p, realm.len) && EVP_DigestUpdate(ctx, ":", 1) &&
	     EVP_DigestUpdate(ctx, password.p, password.len) && EVP_DigestFinal_ex(ctx, bin, &len);
	if (!ok)
		return EIO;
	store_hex(bin, len, out);
	return 0;
}

static void store_ha1_once(const EVP_MD *md, sv_t user, sv_t realm, sv_t password, char *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	store_ha1(ctx, md, user, realm, password, out);
	EVP_MD_CTX_free(ctx);
}

void store_ha1_md5(sv_t user, sv_t realm, sv_t password, char out[33])
{
	store_ha1_once(EVP_md5(), user, realm, password, out);
}

void store_ha1_sha256(sv_t user, sv_t realm, sv_t password, char out[65])
{
	store_ha1_once(EVP_sha256(), user, realm, password, out);
}

static int store_hasher_ready(struct store *s)
{
	struct store_hasher *h = &s->hasher;

	if (h->ctx)
		return 0;
	h->ctx = EVP_MD_CTX_new();
	h->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
	h->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	if (h->ctx && h->md5 && h->sha256)
		return 0;
	store_hasher_free(h);
	return store_fail(s, EIO, "MD5 and SHA-256 digests are not available from OpenSSL");
}

/* ------------------------------------------------------------- validation */

static bool store_label_ok(sv_t label)
{
	if (label.len == 0)
		return false;
	for (size_t i = 0; i < label.len; i++) {
		char c = label.p[i];
		if (!isalnum((unsigned char)c) && c != '-')
			return false;
	}
	return true;
}

/* Plausible, not strict: name labels, IPv4 (which passes as labels), or [IPv6]. */
static bool store_domain_ok(sv_t d)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	ptrdiff_t dot;

	if (d.len >= 2 && d.p[0] == '[' && d.p[d.len - 1] == ']') {
		if (sv_copy(sv_sub(d, 1, d.len - 2), tmp, sizeof(tmp)))
			return false;
		return inet_pton(AF_INET6, tmp, bin) == 1;
	}
	while ((dot = sv_find(d, '.')) >= 0) {
		if (!store_label_ok(sv_sub(d, 0, (size_t)dot)))
			return false;
		d = sv_sub(d, (size_t)dot + 1, d.len);
	}
	return store_label_ok(d);
}

static int store_check_user(struct store *s, sv_t user)
{
	if (user.len == 0)
		return store_fail(s, EINVAL, "user name is empty");
	if (user.len >= STORE_USER_MAX)
		return store_fail(s, EINVAL, "user name is too long (at most %d bytes)",
				  STORE_USER_MAX - 1);
	for (size_t i = 0; i < user.len; i++) {
		unsigned char c = (unsigned char)user.p[i];
		if (isspace(c))
			return store_fail(s, EINVAL, "user name '%.*s' contains whitespace",
					  SV_ARG(user));
		if (c < 0x20 || c == 0x7f)
			return store_fail(s, EINVAL, "user name contains control characters");
		if (c == ':' || c == '@')
			return store_fail(s, EINVAL, "user name '%.*s' must not contain '%c'",
					  SV_ARG(user), c);
	}
	return 0;
}

/* Checks domain and writes its lowercase form to out[STORE_DOMAIN_MAX]. */
static int store_norm_domain(struct store *s, sv_t domain, char *out)
{
	if (domain.len == 0)
		return store_fail(s, EINVAL, "domain is empty");
	if (domain.len >= STORE_DOMAIN_MAX)
		return store_fail(s, EINVAL, "domain is too long (at most %d bytes)",
				  STORE_DOMAIN_MAX - 1);
	if (!store_domain_ok(domain))
		return store_fail(s, EINVAL, "domain '%.*s' is not a valid host name or IP address",
				  SV_ARG(domain));
	for (size_t i = 0; i < domain.len; i++)
		out[i] = sv_lower_char(domain.p[i]);
	out[domain.len] = '\0';
	return 0;
}

static int store_key(struct store *s, sv_t user, sv_t domain, struct store_user *u)
{
	int rc;

	*u = (struct store_user){0};
	rc = store_check_user(s, user);
	if (!rc)
		rc = store_norm_domain(s, domain, u->domain);
	if (!rc && sv_copy(user, u->user, sizeof(u->user)))
		rc = store_fail(s, EINVAL, "user name is too long (at most %d bytes)",
				STORE_USER_MAX - 1);
	return rc;
}

/* A complete subscriber row: checked key and both HA1s; realm = lowercase domain. */
static int store_make_user(struct store *s, sv_t user, sv_t domain, sv_t password,
			   struct store_user *u)
{
	struct store_hasher *h = &s->hasher;
	sv_t realm;
	int rc;

	rc = store_key(s, user, domain, u);
	if (rc)
		return rc;
	if (password.len == 0)
		return store_fail(s, EINVAL, "password is empty");
	rc = store_hasher_ready(s);
	if (rc)
		return rc;
	realm = sv_cstr(u->domain);
	user = sv_cstr(u->user);
	if (store_ha1(h->ctx, h->md5, user, realm, password, u->ha1_md5) ||
	    store_ha1(h->ctx, h->sha256, user, realm, password, u->ha1_sha256))
		return store_fail(s, EIO, "hashing the password failed");
	return 0;
}

/* ------------------------------------------------------------ subscribers */

int store_user_add(struct store *s, sv_t user, sv_t domain, sv_t password)
{
	struct store_user u;
	int rc = store_make_user(s, user, domain, password, &u);

	if (!rc)
		rc = s->ops->user_add(s, &u, (int64_t)time(NULL));
	if (!rc)
		store_users_touch(s); /* in a transaction: again at its commit */
	s->users_added = !rc;
	return rc;
}

int store_user_passwd(struct store *s, sv_t user, sv_t domain, sv_t password)
{
	struct store_user u;
	int rc = store_make_user(s, user, domain, password, &u);

	return rc ? rc : s->ops->user_passwd(s, &u, (int64_t)time(NULL));
}

int store_user_del(struct store *s, sv_t user, sv_t domain)
{
	struct store_user u;
	int rc = store_key(s, user, domain, &u);

	return rc ? rc : s->ops->user_del(s, u.user, u.domain);
}

int store_user_get(struct store *s, sv_t user, sv_t domain, struct store_user *out)
{
	struct store_user u;
	int rc = store_key(s, user, domain, &u);

	return rc ? rc : s->ops->user_get(s, u.user, u.domain, out);
}

int store_user_settings(struct store *s, sv_t user, sv_t domain, sv_t settings)
{
	struct store_user u;
	int rc = store_key(s, user, domain, &u);

	if (rc)
		return rc;
	for (size_t i = 0; i < settings.len; i++) {
		if ((unsigned char)settings.p[i] < 0x20 || settings.p[i] == 0x7f)
			return store_fail(s, EINVAL, "settings contain a control character");
	}
	if (sv_copy(settings, u.settings, sizeof(u.settings)))
		return store_fail(s, EINVAL, "settings longer than %zu characters",
				  sizeof(u.settings) - 1);
	return s->ops->user_settings(s, u.user, u.domain, u.settings, (int64_t)time(NULL));
}

int store_user_list(struct store *s, sv_t domain, store_user_fn fn, void *arg)
{
	char d[STORE_DOMAIN_MAX] = "";
	int rc;

	if (domain.len) {
		rc = store_norm_domain(s, domain, d);
		if (rc)
			return rc;
	}
	return s->ops->user_list(s, d, fn, arg);
}

/* ------------------------------------------------------------- CSV import */

/* Import progress: the header may only be the first line with content. */
struct store_csv {
	size_t line;
	size_t imported;
	bool seen_content;
};

static sv_t store_trim_blanks(sv_t v)
{
	while (v.len && (v.p[0] == ' ' || v.p[0] == '\t'))
		v = sv_sub(v, 1, v.len);
	while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
		v.len--;
	return v;
}

static bool store_csv_is_header(sv_t f[3])
{
	return sv_ieq(store_trim_blanks(f[0]), SV("user")) &&
	       sv_ieq(store_trim_blanks(f[1]), SV("domain")) &&
	       sv_ieq(store_trim_blanks(f[2]), SV("password"));
}

/* Splits at the first two commas; a third comma is an error (passwords cannot hold one). */
static int store_csv_split(struct store *s, sv_t line, sv_t f[3])
{
	size_t nfields = 1;
	ptrdiff_t c;

	for (size_t i = 0; i < line.len; i++)
		nfields += line.p[i] == ',';
	if (nfields != 3)
		return store_fail(s, EINVAL,
				  "expected 3 fields (user,domain,password), found %zu%s", nfields,
				  nfields > 3 ? " (a password cannot contain ',')" : "");
	c = sv_find(line, ',');
	f[0] = sv_sub(line, 0, (size_t)c);
	line = sv_sub(line, (size_t)c + 1, line.len);
	c = sv_find(line, ',');
	f[1] = sv_sub(line, 0, (size_t)c);
	f[2] = sv_sub(line, (size_t)c + 1, line.len);
	return 0;
}

static int store_csv_line(struct store *s, struct store_csv *st, sv_t line)
{
	struct store_user u;
	sv_t f[3];
	int rc;

	if (line.len && line.p[line.len - 1] == '\n')
		line.len--;
	if (line.len && line.p[line.len - 1] == '\r')
		line.len--;
	if (store_trim_blanks(line).len == 0 || store_trim_blanks(line).p[0] == '#')
		return 0;
	rc = store_csv_split(s, line, f);
	if (rc)
		return rc;
	if (!st->seen_content) {
		st->seen_content = true;
		if (store_csv_is_header(f))
			return 0;
	}
	rc = store_make_user(s, store_trim_blanks(f[0]), store_trim_blanks(f[1]), f[2], &u);
	if (!rc)
		rc = s->ops->user_put(s, &u, (int64_t)time(NULL));
	if (!rc)
		st->imported++;
	return rc;
}

static int store_csv_read(struct store *s, FILE *in, struct store_csv *st)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while ((n = getline(&line, &cap, in)) >= 0) {
		st->line++;
		rc = store_csv_line(s, st, sv_make(line, (size_t)n));
		if (rc)
			goto out;
	}
	st->line = 0;
	if (ferror(in))
		rc = store_fail(s, EIO, "read error: %s", strerror(errno ? errno : EIO));
out:
	free(line);
	return rc;
}

int store_user_import_csv(struct store *s, FILE *in, size_t *count, size_t *bad_line)
{
	struct store_csv st = {0};
	char msg[sizeof(s->errmsg)];
	int rc;

	*count = 0;
	*bad_line = 0;
	rc = s->ops->begin(s);
	if (rc)
		return rc;
	errno = 0;
	rc = store_csv_read(s, in, &st);
	if (!rc)
		rc = s->ops->commit(s);
	if (rc)
		goto out;
	store_users_touch(s);
	*count = st.imported;
out:
	if (rc) {
		/* the reason is the line's, not whatever the rollback says */
		memcpy(msg, s->errmsg, sizeof(msg));
		s->ops->rollback(s);
		memcpy(s->errmsg, msg, sizeof(msg));
		*bad_line = st.line;
	}
	return rc;
}

/* --------------------------------------------------------------- bindings */

static bool store_terminated(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

/* Copies aor to out with its domain (after the last '@') lowercased. */
static int store_norm_aor(struct store *s, const char *aor, char *out, size_t size)
{
	char *at;

	if (!aor || !*aor)
		return store_fail(s, EINVAL, "address of record is empty");
	if (strlen(aor) >= size)
		return store_fail(s, EINVAL, "address of record is too long");
	strcpy(out, aor);
	at = strrchr(out, '@');
	for (char *p = at ? at + 1 : out + strlen(out); *p; p++)
		*p = sv_lower_char(*p);
	return 0;
}

static int store_check_binding(struct store *s, const struct store_binding *b)
{
	bool ok = store_terminated(b->aor, sizeof(b->aor)) &&
		  store_terminated(b->contact, sizeof(b->contact)) &&
		  store_terminated(b->received, sizeof(b->received)) &&
		  store_terminated(b->path, sizeof(b->path)) &&
		  store_terminated(b->instance, sizeof(b->instance)) &&
		  store_terminated(b->user_agent, sizeof(b->user_agent)) &&
		  store_terminated(b->callid, sizeof(b->callid));

	if (!ok)
		return store_fail(s, EINVAL, "binding has a field without its terminating NUL");
	if (!b->contact[0])
		return store_fail(s, EINVAL, "binding has an empty contact");
	if (b->q > 1000)
		return store_fail(s, EINVAL, "binding q-value %u is above 1000", b->q);
	return 0;
}

int store_binding_put(struct store *s, const struct store_binding *b)
{
	struct store_binding *nb;
	int rc;

	rc = store_check_binding(s, b);
	if (rc)
		return rc;
	nb = malloc(sizeof(*nb));
	if (!nb)
		return store_fail(s, ENOMEM, "out of memory");
	*nb = *b;
	rc = store_norm_aor(s, b->aor, nb->aor, sizeof(nb->aor));
	if (!rc && nb->updated == 0)
		nb->updated = (int64_t)time(NULL);
	if (!rc)
		rc = s->ops->binding_put(s, nb);
	free(nb);
	return rc;
}

int store_binding_del(struct store *s, const char *aor, const char *contact)
{
	char a[sizeof(((struct store_binding *)0)->aor)];
	int rc = store_norm_aor(s, aor, a, sizeof(a));

	if (!rc && (!contact || !*contact))
		rc = store_fail(s, EINVAL, "contact is empty");
	return rc ? rc : s->ops->binding_del(s, a, contact);
}

int store_binding_del_aor(struct store *s, const char *aor)
{
	char a[sizeof(((struct store_binding *)0)->aor)];
	int rc = store_norm_aor(s, aor, a, sizeof(a));

	return rc ? rc : s->ops->binding_del_aor(s, a);
}

int store_binding_list(struct store *s, const char *aor, store_binding_fn fn, void *arg)
{
	char a[sizeof(((struct store_binding *)0)->aor)];
	int rc;

	if (!aor)
		return s->ops->binding_list(s, NULL, fn, arg);
	rc = store_norm_aor(s, aor, a, sizeof(a));
	return rc ? rc : s->ops->binding_list(s, a, fn, arg);
}

int store_record_put(struct store *s, const struct store_record *r)
{
	if (r->kind < STORE_REC_MESSAGE || r->kind > STORE_REC_LAST)
		return store_fail(s, EINVAL, "unknown record kind %d", r->kind);
	if (!r->key[0] || memchr(r->key, '\0', sizeof(r->key)) == NULL)
		return store_fail(s, EINVAL, "record key missing or too long");
	if (r->body_len > STORE_BODY_MAX)
		return store_fail(s, E2BIG, "record body of %zu bytes is over %d", r->body_len,
				  STORE_BODY_MAX);
	return s->ops->record_put(s, r);
}

int store_record_del(struct store *s, int kind, const char *key)
{
	return s->ops->record_del(s, kind, key);
}

int store_record_list(struct store *s, int kind, const char *owner, store_record_fn fn, void *arg)
{
	return s->ops->record_list(s, kind, owner, fn, arg);
}

int store_record_keys(struct store *s, int kind, store_record_key_fn fn, void *arg)
{
	return s->ops->record_keys(s, kind, fn, arg);
}

int store_record_purge(struct store *s, int64_t now, size_t *purged)
{
	return s->ops->record_purge(s, now, purged);
}

int store_binding_purge(struct store *s, int64_t now, size_t *purged)
{
	*purged = 0;
	return s->ops->binding_purge(s, now, purged);
}

/* ---------------------------------------------------- transactions, misc */

int store_begin(struct store *s)
{
	return s->ops->begin(s);
}

int store_commit(struct store *s)
{
	int rc = s->ops->commit(s);

	if (!rc && s->users_added)
		store_users_touch(s);
	return rc;
}

int store_rollback(struct store *s)
{
	return s->ops->rollback(s);
}

int store_data_version(struct store *s, uint64_t *version)
{
	return s->ops->data_version(s, version);
}
