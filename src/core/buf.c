/*
 * buf.c - growable byte buffer.
 */
#include "core/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void buf_init(struct buf *b, size_t max)
{
	*b = (struct buf){.max = max};
}

void buf_init_fixed(struct buf *b, char *storage, size_t cap)
{
	*b = (struct buf){.p = storage, .cap = cap, .max = cap, .fixed = 1};
}

void buf_free(struct buf *b)
{
	if (!b->fixed)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, ncap;
	char *np;

	if (b->err)
		return b->err;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	if (b->fixed || (b->max && need > b->max + 1)) {
		b->err = EMSGSIZE;
		return b->err;
	}
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	np = realloc(b->p, ncap);
	if (!np) {
		b->err = ENOMEM;
		return b->err;
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	if (len == 0 || buf_reserve(b, len))
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

void buf_append_sv(struct buf *b, sv_t v)
{
	buf_append(b, v.p, v.len);
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_char(struct buf *b, char c)
{
	if (buf_reserve(b, 1))
		return;
	b->p[b->len++] = c;
}

void buf_append_u32(struct buf *b, unsigned long v)
{
	char tmp[24];
	size_t n = sizeof(tmp);

	do {
		tmp[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_append(b, tmp + n, sizeof(tmp) - n);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = EINVAL;
		return;
	}
	if (b->p && (size_t)n < b->cap - b->len) {
		b->len += (size_t)n;
		return;
	}
	if (buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *buf_cstr(struct buf *b)
{
	if (buf_reserve(b, 0))
		return "";
	b->p[b->len] = '\0';
	return b->p;
}
