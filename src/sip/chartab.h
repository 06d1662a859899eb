/*
 * chartab.h - character classes of the SIP grammar (RFC 3261 section 25) as
 * one table, so the parser tests a byte with one load instead of a strchr().
 * Generated once from the grammar's character lists; it is read-only data.
 */
#ifndef SB_SIP_CHARTAB_H
#define SB_SIP_CHARTAB_H

#include <stdbool.h>
#include <stdint.h>

enum { SIP_CC_TOKEN = 1, SIP_CC_USER = 2, SIP_CC_PARAM = 4, SIP_CC_HOST = 8 };

/* token: alphanum and -.!%*_+`'~  user: alphanum and -_.!~*'()&=+$,;?/%
 * paramchar: alphanum and -_.!~*'()[]/:&+$%  host: alphanum and -._ */
static const uint8_t sip_chartab[256] = {
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	7,  0,	0,  6,	7,  6,	7,  6,	6,  7,	7,  2,	15, 15, 6,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 4,	2,  0,	2,  0,	2,  0,	15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 4,  0,	4,  0,	15,
    1,	15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 0,  0,	0,  7,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
    0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,  0,	0,
};

static inline bool sip_cc(unsigned char c, unsigned cls)
{
	return sip_chartab[c] & cls;
}

#endif
