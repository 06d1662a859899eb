/*
 * cdr_cost.c - what a billing record costs per call: N answered calls (INVITE,
 * 180, 200, BYE) through the dialog module, with and without the cdr hooks,
 * the queue written to a SQLite store by dlg_flush every `batch` calls (the
 * write-behind: 100 ms at 1,000 calls/s is 100 calls). Prints CPU µs per call
 * for the worker side (the SIP events) and the database side (dlg_flush).
 * Build and run (docs/billing.md):
 *   cc -O2 -Isrc bench/cdr_cost.c build/libsbcore.a $(pkg-config --libs libevent_core \
 *      libevent_pthreads libevent_extra libcares sqlite3 yaml-0.1 openssl jansson libxml-2.0) \
 *      -lpthread -lm -o build/cdr_cost && build/cdr_cost 20000 100
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dialog/dialog.h"
#include "services/cdr.h"
#include "sip/sip.h"
#include "store/store.h"

static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void feed(struct dlg_table *t, char *buf, size_t cap, const char *head, int i, int kind,
		 const struct tp_src *src, const struct tp_dest *dst, int64_t now)
{
	struct sip_msg m;
	size_t n = (size_t)snprintf(buf, cap, head, i, i, i);

	memset(&m, 0, sizeof(m));
	if (sip_parse(&m, buf, n, 0))
		abort();
	if (kind == 0)
		dlg_on_invite(t, &m, src, 0, "alice@example.com", now);
	else if (kind == 1)
		dlg_on_response(t, &m, dst, NULL, now);
	else
		dlg_on_request(t, &m, now);
	sip_msg_release(&m);
}

static const char *INV =
    "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d\r\n"
    "From: <sip:alice@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>\r\nCall-ID: c%d\r\n"
    "CSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\nContent-Length: 0\r\n\r\n";
static const char *R180 =
    "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d\r\n"
    "From: <sip:alice@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>;tag=b\r\n"
    "Call-ID: c%d\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@198.51.100.2>\r\nContent-Length: "
    "0\r\n\r\n";
static const char *R200 =
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK%d\r\n"
    "From: <sip:alice@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>;tag=b\r\n"
    "Call-ID: c%d\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@198.51.100.2>\r\nContent-Length: "
    "0\r\n\r\n";
static const char *BYE =
    "BYE sip:bob@198.51.100.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb%d\r\n"
    "From: <sip:alice@example.com>;tag=f%d\r\nTo: <sip:bob@example.com>;tag=b\r\n"
    "Call-ID: c%d\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

static void run(int n, int batch, bool with_cdr, const char *path)
{
	struct dlg_conf dc = {.max = 1000000, .sdp_max = 1024};
	struct cdr_conf cc = {0};
	struct dlg_table *t;
	struct cdr *c = NULL;
	struct store *st;
	char err[256], buf[1024];
	struct tp_src src;
	struct tp_dest dst;
	double w = 0, d = 0, t0;

	unlink(path);
	if (store_open(path, &st, err, sizeof(err)) || dlg_table_create(&dc, &t))
		abort();
	if (with_cdr && (cdr_create(&cc, &c) || cdr_attach(c, t)))
		abort();
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	tp_addr_from_str("192.0.2.1", 5060, SIP_PROTO_UDP, &src.peer);
	tp_addr_from_str("198.51.100.2", 5060, SIP_PROTO_UDP, &dst.peer);
	/* the calls overlap: each BYE comes `batch` calls after its INVITE, so every dialog is
	 * written (confirmed) in one flush and deleted in a later one, as in real traffic */
	for (int i = 0; i < n + batch; i++) {
		int64_t now = 1700000000000LL + i;
		t0 = cpu_us();
		if (i < n) {
			feed(t, buf, sizeof(buf), INV, i, 0, &src, &dst, now);
			feed(t, buf, sizeof(buf), R180, i, 1, &src, &dst, now);
			feed(t, buf, sizeof(buf), R200, i, 1, &src, &dst, now);
		}
		if (i >= batch)
			feed(t, buf, sizeof(buf), BYE, i - batch, 2, &src, &dst, now);
		w += cpu_us() - t0;
		if (i % batch == batch - 1) {
			t0 = cpu_us();
			dlg_flush(t, st);
			d += cpu_us() - t0;
		}
	}
	t0 = cpu_us();
	dlg_flush(t, st);
	d += cpu_us() - t0;
	printf("%-12s worker %6.2f us/call  database %6.2f us/call\n",
	       with_cdr ? "with cdr" : "without cdr", w / n, d / n);
	cdr_destroy(c);
	dlg_table_destroy(t);
	store_close(st);
	unlink(path);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000, batch = argc > 2 ? atoi(argv[2]) : 100;
	char path[] = "/tmp/cdr_cost.db";

	for (int k = 0; k < 2; k++) {
		run(n, batch, false, path);
		run(n, batch, true, path);
	}
	return 0;
}
