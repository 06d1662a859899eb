/*
 * internal.h - helpers shared by the sip module's files, not part of its API.
 */
#ifndef SB_SIP_INTERNAL_H
#define SB_SIP_INTERNAL_H

#include "sip/sip.h"

/* host [":" port], host may be an IPv6 reference; lws_ok allows LWS around ':'. */
int sip_hostport_take(sv_t *v, sv_t *host, bool *v6, uint16_t *port, bool lws_ok);

bool sip_version_is_2_0(sv_t v);

#endif
