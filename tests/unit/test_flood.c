/*
 * test_flood.c - the flood protection's budgets, bans and store mirror, with
 * a fake clock (every call takes `now`), no network.
 *
 * Covered: source keys (IPv4, IPv6 by /64, mapped addresses, bad text); the
 * unauthenticated budget and its ban, which leaves credentials and in-dialog
 * requests alone; refill; ban doubling up to ban_max and its reset; wrong
 * credentials counting heavily; the authenticated and in-dialog budgets
 * dropping without a ban; the office behind one NAT that re-registers after
 * an outage (with trust earned before, and with the defaults and no history);
 * the bounded table and its evictions; lifting; the store mirror (written,
 * lifted when deleted, deleted when ended, loaded at start). The last test
 * prints what one check costs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "services/flood.h"
#include "store/store.h"

#define T0  1000000 /* a fixed monotonic "now", ms */
#define S   1000LL
#define MIN (60 * S)

static struct flood_conf conf(unsigned unauth, unsigned auth, unsigned dialog)
{
	return (struct flood_conf){.enabled = true,
				   .window_s = 10,
				   .unauth_limit = unauth,
				   .auth_limit = auth,
				   .dialog_limit = dialog,
				   .ban_time_s = 60,
				   .ban_max_s = 3600,
				   .table_size = 4096};
}

static struct flood *mk(struct flood_conf c)
{
	struct flood *f = NULL;

	assert_int_equal(flood_create(&c, &f), 0);
	assert_non_null(f);
	return f;
}

static struct flood_key K(const char *text) {
	struct flood_key k;

	assert_int_equal(flood_key_parse(text, &k), 0);
	return k;
}

/* n requests of cls from k at now; how many passed */
static unsigned
send_n(struct flood *f, const struct flood_key *k, enum flood_class cls, unsigned n, int64_t now)
{
	unsigned pass = 0;

	for (unsigned i = 0; i < n; i++)
		pass += flood_account(f, k, cls, now) == FLOOD_PASS;
	return pass;
}

static void test_keys(void **state)
{
	struct flood_key k, k2;
	char t[FLOOD_KEY_TEXT];
	struct sockaddr_in6 in6;
	struct sockaddr_in in;

	(void)state;
	k = K("192.0.2.1");
	flood_key_format(&k, t);
	assert_string_equal(t, "192.0.2.1");
	k = K("2001:db8:1:2:3:4:5:6");
	flood_key_format(&k, t);
	assert_string_equal(t, "2001:db8:1:2::/64");
	k2 = K("2001:db8:1:2::/64");
	assert_memory_equal(&k, &k2, sizeof(k));
	k2 = K("[2001:db8:1:2::99]");
	assert_memory_equal(&k, &k2, sizeof(k));
	k = K("::ffff:192.0.2.7");
	flood_key_format(&k, t);
	assert_string_equal(t, "192.0.2.7");
	assert_int_equal(flood_key_parse("", &k), EINVAL);
	assert_int_equal(flood_key_parse("192.0.2.1/24", &k), EINVAL);
	assert_int_equal(flood_key_parse("2001:db8::/48", &k), EINVAL);
	assert_int_equal(flood_key_parse("example.com", &k), EINVAL);
	assert_int_equal(flood_key_parse("[::1", &k), EINVAL);
	assert_int_equal(flood_key_parse("all", &k), EINVAL);

	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2:aaaa::1", &in6.sin6_addr);
	assert_int_equal(flood_key_from_sa((struct sockaddr *)&in6, &k), 0);
	flood_key_format(&k, t);
	assert_string_equal(t, "2001:db8:1:2::/64"); /* one /64, one source */
	inet_pton(AF_INET6, "::ffff:198.51.100.1", &in6.sin6_addr);
	assert_int_equal(flood_key_from_sa((struct sockaddr *)&in6, &k), 0);
	flood_key_format(&k, t);
	assert_string_equal(t, "198.51.100.1");
	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.1", &in.sin_addr);
	assert_int_equal(flood_key_from_sa((struct sockaddr *)&in, &k2), 0);
	assert_memory_equal(&k, &k2, sizeof(k));
}

static void test_unauth_ban_spares_credentials_and_dialogs(void **state)
{
	struct flood *f = mk(conf(100, 50, 50));
	struct flood_key a = K("203.0.113.5"), b = K("203.0.113.6");
	struct flood_stats st;

	(void)state;
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 100, T0), 100);
	assert_false(flood_banned(f, &a, T0));
	assert_int_equal(flood_account(f, &a, FLOOD_UNAUTH, T0), FLOOD_DROP_BANNED);
	assert_true(flood_banned(f, &a, T0));
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 1000, T0 + 1), 0);
	/* credentials are still checked, in-dialog requests still pass */
	assert_int_equal(flood_account(f, &a, FLOOD_AUTH, T0 + 2), FLOOD_PASS);
	assert_int_equal(flood_account(f, &a, FLOOD_DIALOG, T0 + 2), FLOOD_PASS);
	/* another source is not concerned */
	assert_int_equal(send_n(f, &b, FLOOD_UNAUTH, 100, T0 + 2), 100);
	/* the ban ends after ban_time */
	assert_true(flood_banned(f, &a, T0 + 60 * S - 1));
	assert_false(flood_banned(f, &a, T0 + 60 * S));
	assert_int_equal(flood_account(f, &a, FLOOD_UNAUTH, T0 + 60 * S), FLOOD_PASS);
	flood_stats_get(f, &st);
	assert_int_equal(st.bans, 1);
	assert_int_equal(st.dropped_banned, 1001);
	flood_destroy(f);
}

static void test_refill(void **state)
{
	struct flood *f = mk(conf(100, 100, 100));
	struct flood_key a = K("203.0.113.5");

	(void)state;
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 100, T0), 100);
	/* half a window gives half the budget back, exactly */
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 50, T0 + 5 * S), 50);
	/* 10/s sustained never bans */
	for (int i = 1; i <= 600; i++)
		assert_int_equal(flood_account(f, &a, FLOOD_UNAUTH, T0 + 5 * S + i * 100),
				 FLOOD_PASS);
	assert_false(flood_banned(f, &a, T0 + 70 * S));
	flood_destroy(f);
}

static int64_t ban_len(struct flood *f, const struct flood_key *k, int64_t now)
{
	int64_t t = now;

	while (send_n(f, k, FLOOD_UNAUTH, 1, t) == 1)
		;
	assert_true(flood_banned(f, k, t));
	while (flood_banned(f, k, t))
		t += S;
	return (t - now) / S;
}

static void test_ban_doubles_up_to_max_then_resets(void **state)
{
	struct flood_conf c = conf(10, 10, 10);
	struct flood *f;
	struct flood_key a = K("2001:db8::1");
	int64_t t = T0;

	(void)state;
	c.ban_time_s = 60;
	c.ban_max_s = 300;
	f = mk(c);
	assert_int_equal(ban_len(f, &a, t), 60);
	t += 60 * S;
	assert_int_equal(ban_len(f, &a, t), 120);
	t += 120 * S;
	assert_int_equal(ban_len(f, &a, t), 240);
	t += 240 * S;
	assert_int_equal(ban_len(f, &a, t), 300);
	t += 300 * S;
	assert_int_equal(ban_len(f, &a, t), 300);
	t += 300 * S;
	/* quiet for twice ban_max: back to the first length */
	t += 601 * S;
	assert_int_equal(ban_len(f, &a, t), 60);
	flood_destroy(f);
}

static void test_wrong_credentials(void **state)
{
	struct flood *f = mk(conf(100, 1000, 100));
	struct flood_key a = K("198.51.100.9");
	unsigned answered = 0;

	(void)state;
	/* a password guesser: a REGISTER without credentials, then one with wrong ones */
	for (int i = 0; i < 100; i++) {
		if (flood_account(f, &a, FLOOD_UNAUTH, T0 + i) != FLOOD_PASS)
			continue;
		if (flood_account(f, &a, FLOOD_AUTH, T0 + i) == FLOOD_PASS &&
		    !flood_auth_failed(f, &a, T0 + i))
			answered++;
	}
	/* each guess costs 21 of the 100: the fifth is not answered */
	assert_int_equal(answered, 4);
	assert_true(flood_banned(f, &a, T0 + 100));
	/* the guesses that come with credentials are checked, and not answered either */
	assert_int_equal(flood_account(f, &a, FLOOD_AUTH, T0 + 200), FLOOD_PASS);
	assert_true(flood_auth_failed(f, &a, T0 + 200));
	flood_destroy(f);
}

static void test_auth_and_dialog_budgets_drop_without_ban(void **state)
{
	struct flood *f = mk(conf(100, 20, 30));
	struct flood_key a = K("198.51.100.10");
	struct flood_stats st;

	(void)state;
	assert_int_equal(send_n(f, &a, FLOOD_AUTH, 25, T0), 20);
	assert_int_equal(send_n(f, &a, FLOOD_DIALOG, 35, T0), 30);
	assert_int_equal(flood_account(f, &a, FLOOD_AUTH, T0), FLOOD_DROP_BUDGET);
	assert_false(flood_banned(f, &a, T0));
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 10, T0), 10);
	flood_stats_get(f, &st);
	assert_int_equal(st.bans, 0);
	assert_int_equal(st.dropped_budget, 11);
	flood_destroy(f);
}

/* 500 phones behind one address: 401 then REGISTER with credentials, one after another */
static void office_registers(struct flood *f, const struct flood_key *k, int64_t t, int phones)
{
	for (int i = 0; i < phones; i++) {
		assert_int_equal(flood_account(f, k, FLOOD_UNAUTH, t + i * 20), FLOOD_PASS);
		assert_int_equal(flood_account(f, k, FLOOD_AUTH, t + i * 20 + 5), FLOOD_PASS);
		flood_auth_ok(f, k, t + i * 20 + 5);
	}
}

static void test_office_behind_nat_after_outage(void **state)
{
	struct flood *f = mk(conf(100, 2000, 5000));
	struct flood_key office = K("192.0.2.50"), stranger = K("192.0.2.66");
	int64_t t = T0;

	(void)state;
	/* a morning: each phone registers (its budget grows with each valid credential) */
	office_registers(f, &office, t, 500);
	/* a 30 minute outage, then every phone at once: 500 REGISTERs without credentials,
	 * then 500 with */
	t += 40 * MIN;
	assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 500, t), 500);
	assert_int_equal(send_n(f, &office, FLOOD_AUTH, 500, t + 50), 500);
	for (int i = 0; i < 500; i++)
		flood_auth_ok(f, &office, t + 50);
	assert_false(flood_banned(f, &office, t + 100));
	/* and it keeps working: a stranger at the same rate is banned at its 101st */
	assert_int_equal(send_n(f, &stranger, FLOOD_UNAUTH, 500, t), 100);
	assert_true(flood_banned(f, &stranger, t));
	/* trust fades: a day later the office is a stranger again */
	t += 24 * 60 * MIN;
	assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 500, t), 100);
	flood_destroy(f);
}

static void test_credentials_are_credited_at_once(void **state)
{
	struct flood *f = mk(conf(100, 2000, 5000));
	struct flood_key office = K("192.0.2.50");

	(void)state;
	/* 500 phones, one after another within the same millisecond: no refill at all */
	for (int i = 0; i < 500; i++) {
		assert_int_equal(flood_account(f, &office, FLOOD_UNAUTH, T0), FLOOD_PASS);
		assert_int_equal(flood_account(f, &office, FLOOD_AUTH, T0), FLOOD_PASS);
		flood_auth_ok(f, &office, T0);
	}
	assert_false(flood_banned(f, &office, T0));
	/* a window later: 100 + 2 for each of the 500 credentials */
	assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 5000, T0 + 10 * S), 1100);
	/* earned allowance is capped at 16 times the base: 100 + 1600 */
	for (int i = 0; i < 1000; i++)
		flood_auth_ok(f, &office, T0 + 200 * S);
	assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 5000, T0 + 210 * S), 1700);
	flood_destroy(f);
}

static void test_defaults_spare_an_office_of_1000_with_no_history(void **state)
{
	struct cfg c;
	struct flood_conf fc;
	struct flood *f;
	struct flood_key office = K("192.0.2.50"), attacker = K("192.0.2.66");
	int64_t t = T0;

	(void)state;
	cfg_defaults(&c);
	flood_conf_from_cfg(&fc, &c);
	assert_true(fc.enabled);
	f = mk(fc);
	/* the server restarted, nothing is known: 1000 phones, 1000 + 1000 requests */
	assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 1000, t), 1000);
	assert_int_equal(send_n(f, &office, FLOOD_AUTH, 1000, t + 100), 1000);
	for (int i = 0; i < 1000; i++)
		flood_auth_ok(f, &office, t + 100);
	/* their keep-alive OPTIONS every 30 s and hourly re-registrations, for an hour */
	for (int s = 1; s <= 3600; s++) {
		int64_t now = t + s * S;
		assert_int_equal(send_n(f, &office, FLOOD_UNAUTH, 34, now), 34);
		if (s % 4 == 0) {
			assert_int_equal(send_n(f, &office, FLOOD_AUTH, 1, now), 1);
			flood_auth_ok(f, &office, now);
		}
	}
	assert_false(flood_banned(f, &office, t + 3600 * S));
	/* an attacker at 10,000/s is banned within a fifth of a second */
	for (int ms = 0; ms < 200; ms++)
		send_n(f, &attacker, FLOOD_UNAUTH, 10, t + ms);
	assert_true(flood_banned(f, &attacker, t + 200));
	flood_destroy(f);
}

static void test_config_block(void **state)
{
	static const char yaml[] = "flood:\n  enabled: false\n  window: 30\n  unauth_limit: 7\n"
				   "  auth_limit: 8\n  dialog_limit: 9\n  ban_time: 11\n"
				   "  ban_max: 12\n  table_size: 4096\n";
	static const char bad[] = "flood:\n  ban_time: 600\n  ban_max: 60\n";
	static const char zero[] = "flood: {unauth_limit: 0}\n";
	struct cfg c;
	struct cfg_error err;
	struct flood_conf fc;

	(void)state;
	cfg_defaults(&c);
	assert_int_equal(cfg_load_string(&c, yaml, sizeof(yaml) - 1, &err), 0);
	assert_int_equal(cfg_finish(&c, &err), 0);
	flood_conf_from_cfg(&fc, &c);
	assert_false(fc.enabled);
	assert_int_equal(fc.window_s, 30);
	assert_int_equal(fc.unauth_limit, 7);
	assert_int_equal(fc.auth_limit, 8);
	assert_int_equal(fc.dialog_limit, 9);
	assert_int_equal(fc.ban_time_s, 11);
	assert_int_equal(fc.ban_max_s, 12);
	assert_int_equal(fc.table_size, 4096);
	cfg_defaults(&c);
	assert_int_equal(cfg_load_string(&c, bad, sizeof(bad) - 1, &err), EINVAL);
	assert_string_equal(err.msg, "'flood.ban_time' (600) must not be greater than "
				     "'flood.ban_max' (60)");
	cfg_defaults(&c);
	assert_int_equal(cfg_load_string(&c, zero, sizeof(zero) - 1, &err), EINVAL);
	assert_int_equal(err.line, 1);
}

static void test_table_is_bounded_and_evicts_idle_not_banned(void **state)
{
	struct flood_conf c = conf(5, 5, 5);
	struct flood *f;
	struct flood_key bad = K("203.0.113.1"), k;
	struct flood_stats st;
	char ip[32];

	(void)state;
	c.table_size = 64;
	f = mk(c);
	assert_int_equal(send_n(f, &bad, FLOOD_UNAUTH, 6, T0), 5);
	assert_true(flood_banned(f, &bad, T0));
	/* 10,000 spoofed sources go through a table of 64 */
	for (int i = 0; i < 10000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		k = K(ip);
		flood_account(f, &k, FLOOD_UNAUTH, T0 + 1 + i);
	}
	flood_stats_get(f, &st);
	assert_true(st.evictions >= 10000 - 64);
	/* the ban stays: the idle unbanned ones went first */
	assert_true(flood_banned(f, &bad, T0 + 10001));
	flood_destroy(f);
}

static void test_lift(void **state)
{
	struct flood *f = mk(conf(5, 5, 5));
	struct flood_key a = K("203.0.113.1");

	(void)state;
	assert_int_equal(flood_lift(f, &a), ENOENT);
	send_n(f, &a, FLOOD_UNAUTH, 6, T0);
	assert_true(flood_banned(f, &a, T0));
	assert_int_equal(flood_lift(f, &a), 0);
	assert_false(flood_banned(f, &a, T0));
	assert_int_equal(send_n(f, &a, FLOOD_UNAUTH, 5, T0), 5); /* a full budget again */
	assert_int_equal(flood_lift(f, &a), ENOENT);
	flood_destroy(f);
}

struct fx {
	char dir[64];
	char path[96];
	struct store *st;
};

static int st_setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char err[256];

	strcpy(x->dir, "/tmp/sb-test-flood-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	snprintf(x->path, sizeof(x->path), "%s/sb.db", x->dir);
	if (store_open(x->path, &x->st, err, sizeof(err)))
		return -1;
	*state = x;
	return 0;
}

static int st_teardown(void **state)
{
	struct fx *x = *state;

	store_close(x->st);
	unlink(x->path);
	rmdir(x->dir);
	free(x);
	return 0;
}

struct recs {
	char keys[8][FLOOD_KEY_TEXT];
	int64_t expires[8];
	char meta[8][32];
	int n;
};

static int rec_cb(void *arg, const struct store_record *r)
{
	struct recs *rs = arg;

	if (rs->n < 8) {
		snprintf(rs->keys[rs->n], FLOOD_KEY_TEXT, "%.47s", r->key);
		snprintf(rs->meta[rs->n], 32, "%.31s", r->meta);
		rs->expires[rs->n++] = r->expires;
	}
	return 0;
}

static struct recs bans_in(struct store *st)
{
	struct recs rs = {0};

	assert_int_equal(store_record_list(st, STORE_REC_BAN, NULL, rec_cb, &rs), 0);
	return rs;
}

static void test_store_mirror(void **state)
{
	struct fx *x = *state;
	struct flood *f = mk(conf(5, 5, 5)), *f2;
	struct flood_key a = K("203.0.113.1"), b = K("2001:db8:7::1");
	int64_t now_unix = (int64_t)time(NULL);
	struct recs rs;

	assert_false(flood_dirty(f));
	send_n(f, &a, FLOOD_UNAUTH, 6, T0);
	send_n(f, &b, FLOOD_UNAUTH, 6, T0);
	assert_true(flood_dirty(f));
	assert_int_equal(flood_sync(f, x->st, T0, now_unix), 0);
	assert_false(flood_dirty(f));
	rs = bans_in(x->st);
	assert_int_equal(rs.n, 2);
	assert_string_equal(rs.keys[0], "2001:db8:7::/64");
	assert_string_equal(rs.keys[1], "203.0.113.1");
	assert_true(rs.expires[1] >= now_unix + 60 && rs.expires[1] <= now_unix + 61);
	assert_string_equal(rs.meta[1], "level=1");
	/* an unchanged sync changes nothing */
	assert_int_equal(flood_sync(f, x->st, T0 + 10, now_unix), 0);
	assert_int_equal(bans_in(x->st).n, 2);

	/* `switchboard ban del 203.0.113.1`: the record goes, the ban is lifted */
	assert_int_equal(store_record_del(x->st, STORE_REC_BAN, "203.0.113.1"), 0);
	assert_int_equal(flood_sync(f, x->st, T0 + 20, now_unix), 0);
	assert_false(flood_banned(f, &a, T0 + 20));
	assert_true(flood_banned(f, &b, T0 + 20));
	rs = bans_in(x->st);
	assert_int_equal(rs.n, 1);

	/* a restart keeps the ban in force */
	f2 = mk(conf(5, 5, 5));
	assert_int_equal(flood_load(f2, x->st, 5 * T0, now_unix), 0);
	assert_true(flood_banned(f2, &b, 5 * T0));
	assert_false(flood_banned(f2, &b, 5 * T0 + 61 * S));
	flood_destroy(f2);

	/* the ban ends: its record goes at the next sync */
	assert_int_equal(flood_sync(f, x->st, T0 + 60 * S, now_unix + 60), 0);
	assert_int_equal(bans_in(x->st).n, 0);
	flood_destroy(f);
}

struct hammer {
	struct flood *f;
	unsigned seed;
	uint64_t passed;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	struct flood_key k;
	char ip[32];

	for (int i = 0; i < 100000; i++) {
		unsigned r = (unsigned)rand_r(&h->seed);
		snprintf(ip, sizeof(ip), "10.1.%u.%u", (r >> 8) & 1, r & 255);
		k = K(ip);
		switch ((r >> 12) % 5) {
		case 0:
			flood_auth_ok(h->f, &k, T0 + i / 10);
			break;
		case 1:
			flood_auth_failed(h->f, &k, T0 + i / 10);
			break;
		default:
			h->passed += flood_account(h->f, &k, (enum flood_class)((r >> 16) % 3),
						   T0 + i / 10) == FLOOD_PASS;
			break;
		}
	}
	return NULL;
}

/* Two workers and the database thread at once (for ASan/UBSan, and no deadlock). */
static void test_threads(void **state)
{
	struct fx *x = *state;
	struct flood_conf c = conf(20, 20, 20);
	struct hammer h[2];
	pthread_t t[2];
	struct flood_stats st;
	struct flood *f;

	c.table_size = 256; /* 512 sources: evictions too */
	f = mk(c);
	for (int i = 0; i < 2; i++) {
		h[i] = (struct hammer){.f = f, .seed = 7u + (unsigned)i};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int i = 0; i < 50; i++) {
		assert_int_equal(flood_sync(f, x->st, T0 + i * 100, (int64_t)time(NULL)), 0);
		if (i == 25) /* `switchboard ban del all` meanwhile */
			assert_int_equal(store_record_purge(x->st, INT64_MAX, &(size_t){0}), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	flood_stats_get(f, &st);
	assert_true(st.bans > 0);
	assert_true(st.evictions > 0);
	assert_true(h[0].passed + h[1].passed > 0);
	assert_int_equal(flood_sync(f, x->st, T0 + 100000, (int64_t)time(NULL)), 0);
	flood_destroy(f);
}

static void test_cost(void **state)
{
	struct flood_conf c = conf(1000000, 1000000, 1000000);
	struct flood *f;
	struct flood_key keys[1024];
	struct timespec a, b;
	const int n = 2000000;
	char ip[32];
	double ns;

	(void)state;
	c.table_size = 65536;
	f = mk(c);
	for (int i = 0; i < 1024; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i >> 8, i & 255);
		keys[i] = K(ip);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++)
		flood_account(f, &keys[i & 1023], FLOOD_UNAUTH, T0 + i / 1000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
	print_message("flood_account: %.1f ns per request (1024 sources, one thread)\n", ns);
	flood_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_unauth_ban_spares_credentials_and_dialogs),
	    cmocka_unit_test(test_refill),
	    cmocka_unit_test(test_ban_doubles_up_to_max_then_resets),
	    cmocka_unit_test(test_wrong_credentials),
	    cmocka_unit_test(test_auth_and_dialog_budgets_drop_without_ban),
	    cmocka_unit_test(test_office_behind_nat_after_outage),
	    cmocka_unit_test(test_credentials_are_credited_at_once),
	    cmocka_unit_test(test_defaults_spare_an_office_of_1000_with_no_history),
	    cmocka_unit_test(test_config_block),
	    cmocka_unit_test(test_table_is_bounded_and_evicts_idle_not_banned),
	    cmocka_unit_test(test_lift),
	    cmocka_unit_test_setup_teardown(test_store_mirror, st_setup, st_teardown),
	    cmocka_unit_test_setup_teardown(test_threads, st_setup, st_teardown),
	    cmocka_unit_test(test_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
