/*
 * pidf.h - presence documents (RFC 3863 PIDF): checking what a PUBLISH
 * carries, and composing one document for a presentity from all of its
 * publications (RFC 3903 section 4 leaves composition to the server).
 *
 * Pure functions over byte ranges (libxml2 underneath, with no network and
 * no entity expansion), so the fuzzer drives them directly.
 */
#ifndef SB_SERVICES_PIDF_H
#define SB_SERVICES_PIDF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/sv.h"

#define PIDF_NS "urn:ietf:params:xml:ns:pidf"

/* Once per process, before threads use the parser. */
void pidf_init(void);

/*
 * 0 when body is a PIDF document: well-formed, a <presence> root in the
 * PIDF namespace with an entity, every <tuple> with an id and a <status>.
 * EINVAL otherwise, with the reason in why.
 */
int pidf_check(sv_t body, char *why, size_t whylen);

/*
 * One document for entity from the publications' documents (each already
 * checked): their tuples, notes and extensions side by side, the tuples
 * made unique by id (a later publication's tuple replaces an earlier one
 * with the same id). Appends to out; 0, ENOMEM or EINVAL.
 */
int pidf_compose(const char *entity, const sv_t *docs, size_t n, struct buf *out);

/* The document of a presentity that publishes nothing: open or closed, from its registrations. */
int pidf_basic(const char *entity, bool open, const char *contact, const char *note,
	       struct buf *out);

/* XML-escapes s into out (for text and attribute values). */
void pidf_escape(struct buf *out, sv_t s);

#endif
