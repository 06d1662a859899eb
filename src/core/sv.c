/*
 * sv.c - the few string-view helpers that are too long to inline.
 */
#include "core/sv.h"

#include <errno.h>
#include <stdlib.h>

bool sv_ieq(sv_t a, sv_t b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++) {
		if (sv_lower_char(a.p[i]) != sv_lower_char(b.p[i]))
			return false;
	}
	return true;
}

bool sv_istarts(sv_t v, sv_t prefix)
{
	return v.len >= prefix.len && sv_ieq(sv_make(v.p, prefix.len), prefix);
}

int sv_to_u32(sv_t v, uint32_t *out)
{
	uint64_t n = 0;

	if (v.len == 0)
		return EINVAL;
	for (size_t i = 0; i < v.len; i++) {
		char c = v.p[i];
		if (c < '0' || c > '9')
			return EINVAL;
		n = n * 10 + (uint64_t)(c - '0');
		if (n > UINT32_MAX)
			return ERANGE;
	}
	*out = (uint32_t)n;
	return 0;
}

char *sv_dup(sv_t v)
{
	char *s = malloc(v.len + 1);

	if (!s)
		return NULL;
	if (v.len)
		memcpy(s, v.p, v.len);
	s[v.len] = '\0';
	return s;
}

int sv_copy(sv_t v, char *dst, size_t size)
{
	if (size == 0)
		return ENOSPC;
	if (v.len >= size) {
		dst[0] = '\0';
		return ENOSPC;
	}
	if (v.len)
		memcpy(dst, v.p, v.len);
	dst[v.len] = '\0';
	return 0;
}
