/*
 * sv.h - string views: a pointer and a length into somebody else's buffer.
 *
 * The whole server reads SIP without copying: a parsed header, URI part or
 * parameter is an sv_t that points into the message buffer. A view never owns
 * its bytes and never outlives the buffer it points into; code that must keep
 * a value longer copies it (sv_dup, or into its own arena).
 */
#ifndef SB_CORE_SV_H
#define SB_CORE_SV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sv {
	const char *p;
	size_t len;
} sv_t;

#define SV(lit) ((sv_t){(lit), sizeof(lit) - 1})
#define SV_NULL ((sv_t){NULL, 0})
/* printf("%.*s", SV_ARG(v)) */
#define SV_ARG(v) (int)(v).len, (v).p

static inline sv_t sv_make(const char *p, size_t len)
{
	return (sv_t){p, len};
}

static inline sv_t sv_cstr(const char *s)
{
	return (sv_t){s, s ? strlen(s) : 0};
}

static inline bool sv_empty(sv_t v)
{
	return v.len == 0;
}

static inline bool sv_eq(sv_t a, sv_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline char sv_lower_char(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Writes v as 16 lower-case hex digits (no terminator). */
static inline void sv_hex64(char out[16], uint64_t v)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = digits[v & 15];
}

/* Writes v in decimal (no terminator); returns the number of digits (<= 10). */
static inline size_t sv_put_u32(char *out, uint32_t v)
{
	char tmp[10];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Writes v in lower-case hex without leading zeros; returns the number of digits (<= 8). */
static inline size_t sv_put_hex32(char *out, uint32_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[8];
	size_t n = 0;

	do {
		tmp[n++] = digits[v & 15];
		v >>= 4;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* ASCII case-insensitive equality, as SIP compares tokens and host names. */
bool sv_ieq(sv_t a, sv_t b);
bool sv_istarts(sv_t v, sv_t prefix);

/* v without leading and trailing spaces, tabs, CRs and LFs (inline: on every parse path). */
static inline sv_t sv_trim(sv_t v)
{
	while (v.len && (v.p[0] == ' ' || v.p[0] == '\t' || v.p[0] == '\r' || v.p[0] == '\n')) {
		v.p++;
		v.len--;
	}
	while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t' ||
			 v.p[v.len - 1] == '\r' || v.p[v.len - 1] == '\n'))
		v.len--;
	return v;
}

/* Index of c in v, or -1. */
static inline ptrdiff_t sv_find(sv_t v, char c)
{
	const char *hit = v.len ? (const char *)memchr(v.p, c, v.len) : NULL;
	return hit ? hit - v.p : -1;
}

/* At most len bytes of v from `from` (clamped to v; empty past its end). */
static inline sv_t sv_sub(sv_t v, size_t from, size_t len)
{
	if (!v.p)
		return SV_NULL;
	if (from > v.len)
		return sv_make(v.p + v.len, 0);
	if (len > v.len - from)
		len = v.len - from;
	return sv_make(v.p + from, len);
}

/* Decimal digits only, no sign, no overflow past UINT32_MAX: 0, EINVAL, ERANGE. */
int sv_to_u32(sv_t v, uint32_t *out);

/* malloc'd NUL-terminated copy; NULL on allocation failure. */
char *sv_dup(sv_t v);
/*
 * Copy into a fixed buffer, always NUL-terminated; returns 0 or ENOSPC (then
 * dst is ""). The result must be checked: a value that does not fit is an
 * error for the caller to answer or log, never a silently emptied string.
 */
__attribute__((warn_unused_result)) int sv_copy(sv_t v, char *dst, size_t size);

#endif
