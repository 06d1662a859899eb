/*
 * pidf.c - PIDF checking and composition with libxml2.
 *
 * Documents come from the network: they are read with XML_PARSE_NONET and
 * without entity substitution, so a PUBLISH cannot make the server fetch
 * anything or expand a billion laughs.
 */
#include "services/pidf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#define PIDF_PARSE_OPTS                                                                            \
	(XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

static void pidf_silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

void pidf_init(void)
{
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, pidf_silent);
}

static bool pidf_is(const xmlNode *n, const char *name)
{
	return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
	       strcmp((const char *)n->ns->href, PIDF_NS) == 0 &&
	       strcmp((const char *)n->name, name) == 0;
}

static xmlDoc *pidf_read(sv_t body)
{
	if (body.len == 0 || body.len > 1024 * 1024)
		return NULL;
	return xmlReadMemory(body.p, (int)body.len, "pidf.xml", NULL, PIDF_PARSE_OPTS);
}

static int pidf_check_tuple(const xmlNode *t, char *why, size_t whylen)
{
	xmlChar *id = xmlGetProp(t, (const xmlChar *)"id");
	bool has_status = false;

	if (!id || !id[0]) {
		xmlFree(id);
		snprintf(why, whylen, "a <tuple> without an id");
		return EINVAL;
	}
	xmlFree(id);
	for (const xmlNode *c = t->children; c; c = c->next)
		has_status |= pidf_is(c, "status");
	if (!has_status) {
		snprintf(why, whylen, "a <tuple> without a <status>");
		return EINVAL;
	}
	return 0;
}

int pidf_check(sv_t body, char *why, size_t whylen)
{
	xmlDoc *doc = pidf_read(body);
	xmlNode *root;
	xmlChar *entity = NULL;
	int err = EINVAL;

	if (!doc) {
		const xmlError *e = xmlGetLastError();
		snprintf(why, whylen, "not well-formed XML%s%.80s", e && e->message ? ": " : "",
			 e && e->message ? e->message : "");
		/* libxml2's messages end in a newline */
		for (char *p = why; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = '\0';
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!pidf_is(root, "presence")) {
		snprintf(why, whylen, "the root element is not <presence> in namespace " PIDF_NS);
		goto out;
	}
	entity = xmlGetProp(root, (const xmlChar *)"entity");
	if (!entity || !entity[0]) {
		snprintf(why, whylen, "<presence> has no entity attribute");
		goto out;
	}
	for (const xmlNode *c = root->children; c; c = c->next) {
		if (pidf_is(c, "tuple") && pidf_check_tuple(c, why, whylen))
			goto out;
	}
	err = 0;
out:
	xmlFree(entity);
	if (doc)
		xmlFreeDoc(doc);
	return err;
}

/* Is there already a tuple with this id among root's children? Then it is dropped. */
static xmlNode *pidf_tuple_by_id(xmlNode *root, const xmlChar *id)
{
	for (xmlNode *c = root->children; c; c = c->next) {
		xmlChar *cid;
		bool same;
		if (!pidf_is(c, "tuple"))
			continue;
		cid = xmlGetProp(c, (const xmlChar *)"id");
		same = cid && xmlStrEqual(cid, id);
		xmlFree(cid);
		if (same)
			return c;
	}
	return NULL;
}

static int pidf_merge(xmlDoc *out, xmlNode *root, xmlNode *src_root)
{
	for (xmlNode *c = src_root->children; c; c = c->next) {
		xmlNode *copy, *old = NULL;
		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (pidf_is(c, "tuple")) {
			xmlChar *id = xmlGetProp(c, (const xmlChar *)"id");
			old = id ? pidf_tuple_by_id(root, id) : NULL;
			xmlFree(id);
		}
		copy = xmlDocCopyNode(c, out, 1);
		if (!copy)
			return ENOMEM;
		if (old) {
			xmlReplaceNode(old, copy);
			xmlFreeNode(old);
		} else if (!xmlAddChild(root, copy)) {
			xmlFreeNode(copy);
			return ENOMEM;
		}
	}
	return 0;
}

int pidf_compose(const char *entity, const sv_t *docs, size_t n, struct buf *out)
{
	xmlDoc *doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNode *root = doc ? xmlNewNode(NULL, (const xmlChar *)"presence") : NULL;
	xmlChar *text = NULL;
	int len = 0, err = ENOMEM;

	if (!root)
		goto out;
	xmlDocSetRootElement(doc, root);
	xmlSetNs(root, xmlNewNs(root, (const xmlChar *)PIDF_NS, NULL));
	xmlNewProp(root, (const xmlChar *)"entity", (const xmlChar *)entity);
	for (size_t i = 0; i < n; i++) {
		xmlDoc *src = pidf_read(docs[i]);
		xmlNode *sr = src ? xmlDocGetRootElement(src) : NULL;
		if (!pidf_is(sr, "presence")) {
			if (src)
				xmlFreeDoc(src);
			continue; /* checked when published: cannot happen, but never trust it */
		}
		err = pidf_merge(doc, root, sr);
		xmlFreeDoc(src);
		if (err)
			goto out;
	}
	xmlReconciliateNs(doc, root);
	xmlDocDumpFormatMemoryEnc(doc, &text, &len, "UTF-8", 0);
	if (!text)
		goto out;
	buf_append(out, (const char *)text, (size_t)len);
	err = out->err ? ENOMEM : 0;
out:
	xmlFree(text);
	if (doc)
		xmlFreeDoc(doc);
	return err;
}

void pidf_escape(struct buf *out, sv_t s)
{
	for (size_t i = 0; i < s.len; i++) {
		switch (s.p[i]) {
		case '<':
			buf_append_str(out, "&lt;");
			break;
		case '>':
			buf_append_str(out, "&gt;");
			break;
		case '&':
			buf_append_str(out, "&amp;");
			break;
		case '"':
			buf_append_str(out, "&quot;");
			break;
		case '\'':
			buf_append_str(out, "&apos;");
			break;
		default:
			buf_append(out, &s.p[i], 1);
		}
	}
}

int pidf_basic(const char *entity, bool open, const char *contact, const char *note,
	       struct buf *out)
{
	buf_append_str(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			    "<presence xmlns=\"" PIDF_NS "\" entity=\"");
	pidf_escape(out, sv_cstr(entity));
	buf_append_str(out, "\">\n<tuple id=\"registration\"><status><basic>");
	buf_append_str(out, open ? "open" : "closed");
	buf_append_str(out, "</basic></status>");
	if (contact && contact[0]) {
		buf_append_str(out, "<contact>");
		pidf_escape(out, sv_cstr(contact));
		buf_append_str(out, "</contact>");
	}
	if (note && note[0]) {
		buf_append_str(out, "<note>");
		pidf_escape(out, sv_cstr(note));
		buf_append_str(out, "</note>");
	}
	buf_append_str(out, "</tuple>\n</presence>\n");
	return out->err ? ENOMEM : 0;
}
