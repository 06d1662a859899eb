/*
 * registrar.h - the REGISTER service (RFC 3261 section 10, RFC 3327 Path).
 */
#ifndef SB_SERVICES_REGISTRAR_H
#define SB_SERVICES_REGISTRAR_H

#include "request/request.h"

/* Handles a REGISTER whose Request-URI names one of our domains. */
enum proxy_step reg_handle(struct preq *r);

#endif
