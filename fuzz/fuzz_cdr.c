/*
 * fuzz_cdr.c - libFuzzer target for what the billing records read back: a
 * stored record's "name: value" text (cdr_rec_parse, as the CLI reads the
 * store, which another process may have written) and the dates the CLI
 * takes (cdr_parse_time); every record parsed is written again as store
 * text, CSV and JSON, and the store text parsed once more. Input: the
 * first line is a date, the rest a record's text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "services/cdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *nl, why[200];
	struct cdr_rec *r = malloc(sizeof(*r)), *again = malloc(sizeof(*again));
	struct buf b;
	int64_t ms;

	if (!text || !r || !again)
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';
	nl = strchr(text, '\n');
	if (nl)
		*nl = '\0';
	cdr_parse_time(text, &ms, why, sizeof(why));
	if (!nl)
		goto out;
	if (cdr_rec_parse("00000000000000ff", nl + 1, r))
		goto out;
	buf_init(&b, 0);
	cdr_csv_row(r, &b);
	buf_reset(&b);
	cdr_json(r, &b);
	buf_reset(&b);
	if (cdr_rec_meta(r, &b) == 0)
		cdr_rec_parse("00000000000000ff", b.p, again);
	buf_free(&b);
out:
	free(text);
	free(r);
	free(again);
	return 0;
}
