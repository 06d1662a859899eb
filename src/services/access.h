/*
 * access.h - the access phase's handlers (lists, the caller's call barring)
 * and the refusal of a blocked call, for the pipeline to register.
 */
#ifndef SB_SERVICES_ACCESS_H
#define SB_SERVICES_ACCESS_H

#include "request/request.h"

/* The global black and white lists (calls and messages out of dialog). */
enum proxy_step access_lists_handle(struct preq *r, void *arg);
/* Reads the caller's outgoing call barring into r->caller_bar (may wait for the cache);
 * arg: the auth.enabled flag (const bool *). */
enum proxy_step access_caller_handle(struct preq *r, void *arg);
/* The routing rules in force for request r: its worker's view of them. */
struct rules *rules_of_request(struct preq *r);
/* Refuses a call a list blocks: lists.block_status, counted and logged. */
void access_reply_blocked(struct preq *r, const char *why);

#endif
