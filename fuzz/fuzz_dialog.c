/*
 * fuzz_dialog.c - libFuzzer target for what the dialog layer reads from the
 * outside: the control socket's request line (ctl_parse), and SIP messages
 * fed to the dialog state machine as an INVITE, a response to it (with a To
 * tag, as a fork, as a 2xx with a Session-Expires) and an in-dialog request;
 * the dialogs that result are swept with a clock past every expiry, which
 * builds their BYEs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "dialog/dialog.h"
#include "server/ctl.h"
#include "sip/sip.h"

static void bye_both(void *arg, const struct dlg *d)
{
	struct buf *b = arg;
	struct tp_dest dest;

	dlg_build_bye(d, true, SV("Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKf\r\n"), b, &dest);
	dlg_build_bye(d, false, SV("Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKf\r\n"), b, &dest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dlg_conf conf = {
	    .max = 8, .timeout_s = 10, .session_expires = 1800, .min_se = 90, .sdp_max = 512};
	struct dlg_table *t;
	struct ctl_req rq;
	const char *why;
	struct sip_msg m;
	struct tp_src src;
	struct tp_dest dest;
	struct buf b;
	char line[64];
	char *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	log_set_level(LOG_ERROR);
	memcpy(copy, data, size);
	ctl_parse(sv_make(copy, size), &rq, &why);
	if (dlg_table_create(&conf, &t)) {
		free(copy);
		return 0;
	}
	memset(&m, 0, sizeof(m));
	memset(&src, 0, sizeof(src));
	memset(&dest, 0, sizeof(dest));
	if (sip_parse(&m, copy, size, 0) == 0) {
		int64_t now = 1700000000000LL;
		dlg_session_expires_line(t, &m, line, sizeof(line));
		if (m.request) {
			/* as the INVITE that starts it, and as a request inside it */
			dlg_on_invite(t, &m, &src, 0, "", now);
			dlg_on_request(t, &m, now + 1);
		}
		/* as a provisional, a 2xx and a failure of the INVITE */
		m.status = 180;
		dlg_on_response(t, &m, &dest, "gw", now + 2);
		m.status = 200;
		dlg_on_response(t, &m, &dest, NULL, now + 3);
		dlg_on_response(t, &m, &dest, NULL, now + 4);
		m.status = 486;
		dlg_on_response(t, &m, &dest, NULL, now + 5);
		if (m.request)
			dlg_on_request(t, &m, now + 6);
		buf_init(&b, 0);
		dlg_sweep(t, now + 100000000LL, bye_both, &b);
		buf_free(&b);
	}
	sip_msg_release(&m); /* a failed parse may have grown the header index too */
	dlg_table_destroy(t);
	free(copy);
	return 0;
}
