/*
 * calls.h - the server's side of dialog tracking (dialog/dialog.h): it builds
 * the dialog table from the configuration, runs its timers once a second on
 * the main thread, sends the BYEs of a dialog that expired through the worker
 * that owns it, and gives the database thread the dialogs' load and
 * write-behind chores.
 */
#ifndef SB_SERVER_CALLS_H
#define SB_SERVER_CALLS_H

#include <stdbool.h>

struct server;
struct store;
struct dlg;

/* The dialog table (s->dlg) from s->cfg. */
int calls_create(struct server *s);
void calls_destroy(struct server *s);
/* Once a second, on the main thread: session timers and dialog.timeout. */
void calls_tick(struct server *s);
/*
 * A BYE to each side of d, sent by its owner worker (any thread; arg is the
 * server): dlg_sweep's end(), and the media timeout's (server/media.c).
 */
void calls_send_byes(void *arg, const struct dlg *d);
/* Registers the two below with the database thread (between dbq_create and dbq_start). */
int calls_chores(struct server *s);
/* Database thread: the stored dialogs into the table, at start (an error fails the start). */
int calls_db_load(void *arg, struct store *st);
/* Database thread, periodically: the dialogs' write-behind. */
void calls_db_flush(void *arg, struct store *st, bool stopping);

#endif
