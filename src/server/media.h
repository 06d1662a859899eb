/*
 * media.h - the media relay's place in the server (server/media.c): made
 * from the configuration, its hooks on the pipeline, an engine per worker.
 */
#ifndef SB_SERVER_MEDIA_H
#define SB_SERVER_MEDIA_H

#include <stddef.h>

struct server;
struct worker;

/* After the pipeline and the dialog table exist; nothing when media is off. 0 or an errno. */
int server_media_create(struct server *s, char *err, size_t errlen);
/* Before w's thread starts. */
int server_media_attach(struct server *s, struct worker *w, char *err, size_t errlen);
/* After w's thread stopped, before it is destroyed. */
void server_media_detach(struct server *s, struct worker *w);
/* After the workers are destroyed. */
void server_media_destroy(struct server *s);

#endif
