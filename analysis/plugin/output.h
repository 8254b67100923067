/* SPDX-License-Identifier: MIT */
/*
 * Output files: written to PATH.tmp, renamed to PATH once complete, so a
 * reader never sees half a document; and a small JSON writer that escapes
 * strings (control characters, quotes, invalid UTF-8) and places commas.
 */
#ifndef CLRMEMTRACE_ANALYSIS_OUTPUT_H
#define CLRMEMTRACE_ANALYSIS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cmt_out {
	FILE *f;
	char *path;
	char *tmp;
	int err;         /* the first errno a write met, 0 if none */
	char *buf;       /* stdio's buffer */
	/* JSON nesting: bit d of `first` set while level d has no element yet. */
	unsigned int depth;
	uint64_t first;
	bool after_key;
};

/* Opens PATH.tmp for writing. Returns 0 or an errno value. */
int cmt_out_open(struct cmt_out *o, const char *path);

/*
 * Flushes, closes and renames PATH.tmp to PATH. Returns 0 or the errno of
 * the first failure (of any earlier write too); the temporary file is
 * removed on failure.
 */
int cmt_out_commit(struct cmt_out *o);

/* Closes and removes PATH.tmp, if still open. */
void cmt_out_abandon(struct cmt_out *o);

/* Raw output. */
void cmt_out_write(struct cmt_out *o, const char *s, size_t n);
void cmt_out_puts(struct cmt_out *o, const char *s);
void cmt_out_putc(struct cmt_out *o, char c);
void cmt_out_u64(struct cmt_out *o, uint64_t v);
void cmt_out_i64(struct cmt_out *o, int64_t v);
void cmt_out_hex(struct cmt_out *o, uint64_t v); /* 0x... */

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
void cmt_out_csv_field(struct cmt_out *o, const char *s);

/* JSON. Keys and string values are escaped; every call places its comma. */
void cmt_json_begin_object(struct cmt_out *o);
void cmt_json_end_object(struct cmt_out *o);
void cmt_json_begin_array(struct cmt_out *o);
void cmt_json_end_array(struct cmt_out *o);
void cmt_json_key(struct cmt_out *o, const char *key);
void cmt_json_string(struct cmt_out *o, const char *s);
void cmt_json_u64(struct cmt_out *o, uint64_t v);
void cmt_json_i64(struct cmt_out *o, int64_t v);
void cmt_json_double(struct cmt_out *o, double v, int decimals);
void cmt_json_bool(struct cmt_out *o, bool v);
void cmt_json_null(struct cmt_out *o);
/* A number given by its decimal digits (for values beyond 64 bits). */
void cmt_json_digits(struct cmt_out *o, const char *digits);
/* A line break between elements, for readability of large documents. */
void cmt_json_newline(struct cmt_out *o);

/* Writes the JSON string literal of s (quotes included), escaped. */
void cmt_out_json_escaped(struct cmt_out *o, const char *s);

#endif /* CLRMEMTRACE_ANALYSIS_OUTPUT_H */
