/*
 * buf.h - a growable byte buffer for building messages and rows.
 *
 * Appends either succeed or leave the buffer marked failed (b->err), so a
 * builder can append a dozen pieces and check for ENOMEM once at the end.
 */
#ifndef SB_CORE_BUF_H
#define SB_CORE_BUF_H

#include <stddef.h>

#include "core/sv.h"

struct buf {
	char *p;
	size_t len;
	size_t cap;
	int err;    /* first error (ENOMEM, EMSGSIZE) or 0 */
	size_t max; /* 0 = unlimited */
	int fixed;  /* p is caller storage: never realloc'd or freed */
};

void buf_init(struct buf *b, size_t max);
/* Use caller-provided storage; appends past cap fail with EMSGSIZE. */
void buf_init_fixed(struct buf *b, char *storage, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_sv(struct buf *b, sv_t v);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_append_u32(struct buf *b, unsigned long v);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ensure p[len] == '\0' (not counted in len). */
const char *buf_cstr(struct buf *b);
static inline sv_t buf_sv(const struct buf *b)
{
	return sv_make(b->p, b->len);
}

#endif
