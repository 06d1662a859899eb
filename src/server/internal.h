/*
 * internal.h - what the server's own files share: the registration of each
 * module's database chores (chores.c), called by the assembly (server.c).
 */
#ifndef SB_SERVER_INTERNAL_H
#define SB_SERVER_INTERNAL_H

struct server;
struct srv_chores;

/* Registers every module's chores with s->dbq (before dbq_start); keeps their state in s->chores.
 */
int srv_chores_register(struct server *s);
void srv_chores_destroy(struct srv_chores *c);

#endif
