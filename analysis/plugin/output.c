/* SPDX-License-Identifier: MIT */
/*
 * Output files and the JSON writer.
 */
#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUFFER (1u << 20)

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

int cmt_out_open(struct cmt_out *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	o->path = concat(path, "");
	o->tmp = concat(path, ".tmp");
	o->buf = malloc(OUT_BUFFER);
	if (!o->path || !o->tmp || !o->buf) {
		cmt_out_abandon(o);
		return ENOMEM;
	}
	o->f = fopen(o->tmp, "w");
	if (!o->f) {
		int err = errno ? errno : EIO;

		cmt_out_abandon(o);
		return err;
	}
	setvbuf(o->f, o->buf, _IOFBF, OUT_BUFFER);
	return 0;
}

static void release(struct cmt_out *o)
{
	free(o->path);
	free(o->tmp);
	free(o->buf);
	o->path = NULL;
	o->tmp = NULL;
	o->buf = NULL;
}

int cmt_out_commit(struct cmt_out *o)
{
	int err = o->err;

	if (!o->f) {
		err = err ? err : EBADF;
		goto fail;
	}
	if (fflush(o->f) != 0 && !err) {
		err = errno ? errno : EIO;
	}
	if (ferror(o->f) && !err) {
		err = EIO;
	}
	if (fclose(o->f) != 0 && !err) {
		err = errno ? errno : EIO;
	}
	o->f = NULL;
	if (err) {
		goto fail;
	}
	if (rename(o->tmp, o->path) != 0) {
		err = errno ? errno : EIO;
		goto fail;
	}
	release(o);
	return 0;
fail:
	if (o->f) {
		fclose(o->f);
		o->f = NULL;
	}
	if (o->tmp) {
		unlink(o->tmp);
	}
	release(o);
	return err;
}

void cmt_out_abandon(struct cmt_out *o)
{
	if (o->f) {
		fclose(o->f);
		o->f = NULL;
		if (o->tmp) {
			unlink(o->tmp);
		}
	}
	release(o);
}

void cmt_out_write(struct cmt_out *o, const char *s, size_t n)
{
	if (!o->f || o->err || n == 0) {
		return;
	}
	if (fwrite(s, 1, n, o->f) != n) {
		o->err = errno ? errno : EIO;
	}
}

void cmt_out_puts(struct cmt_out *o, const char *s)
{
	cmt_out_write(o, s, strlen(s));
}

void cmt_out_putc(struct cmt_out *o, char c)
{
	if (!o->f || o->err) {
		return;
	}
	if (putc(c, o->f) == EOF) {
		o->err = errno ? errno : EIO;
	}
}

void cmt_out_u64(struct cmt_out *o, uint64_t v)
{
	char buf[24];
	char *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	cmt_out_write(o, p, (size_t)(buf + sizeof(buf) - p));
}

void cmt_out_i64(struct cmt_out *o, int64_t v)
{
	if (v < 0) {
		cmt_out_putc(o, '-');
		cmt_out_u64(o, (uint64_t)0 - (uint64_t)v);
	} else {
		cmt_out_u64(o, (uint64_t)v);
	}
}

void cmt_out_hex(struct cmt_out *o, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char buf[20];
	char *p = buf + sizeof(buf);

	do {
		*--p = digits[v & 15];
		v >>= 4;
	} while (v);
	*--p = 'x';
	*--p = '0';
	cmt_out_write(o, p, (size_t)(buf + sizeof(buf) - p));
}

void cmt_out_csv_field(struct cmt_out *o, const char *s)
{
	const char *c;

	if (!s) {
		return;
	}
	if (!strpbrk(s, ",\"\r\n")) {
		cmt_out_puts(o, s);
		return;
	}
	cmt_out_putc(o, '"');
	for (c = s; *c; c++) {
		if (*c == '"') {
			cmt_out_putc(o, '"');
		}
		cmt_out_putc(o, *c);
	}
	cmt_out_putc(o, '"');
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_length(const unsigned char *s)
{
	unsigned char c = s[0];

	if (c >= 0xc2 && c <= 0xdf) {
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	}
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;

		return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
				       (s[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

void cmt_out_json_escaped(struct cmt_out *o, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	const unsigned char *run = s;

	cmt_out_putc(o, '"');
	while (*s) {
		unsigned char c = *s;
		size_t len;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			s++;
			continue;
		}
		if (c >= 0x80) {
			len = utf8_length(s);
			if (len) {
				s += len;
				continue;
			}
		}
		cmt_out_write(o, (const char *)run, (size_t)(s - run));
		switch (c) {
		case '"':
			cmt_out_puts(o, "\\\"");
			break;
		case '\\':
			cmt_out_puts(o, "\\\\");
			break;
		case '\n':
			cmt_out_puts(o, "\\n");
			break;
		case '\r':
			cmt_out_puts(o, "\\r");
			break;
		case '\t':
			cmt_out_puts(o, "\\t");
			break;
		default:
			if (c < 0x20) {
				char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

				cmt_out_write(o, esc, sizeof(esc));
			} else {
				/* A byte that starts no valid UTF-8 sequence. */
				cmt_out_puts(o, "\\ufffd");
			}
			break;
		}
		s++;
		run = s;
	}
	cmt_out_write(o, (const char *)run, (size_t)(s - run));
	cmt_out_putc(o, '"');
}

/* Places the comma an element needs, unless it follows its key. */
static void element(struct cmt_out *o)
{
	uint64_t bit;

	if (o->after_key) {
		o->after_key = false;
		return;
	}
	if (o->depth == 0 || o->depth > 64) {
		return;
	}
	bit = UINT64_C(1) << (o->depth - 1);
	if (o->first & bit) {
		o->first &= ~bit;
	} else {
		cmt_out_putc(o, ',');
	}
}

static void open_level(struct cmt_out *o, char c)
{
	element(o);
	cmt_out_putc(o, c);
	o->depth++;
	if (o->depth <= 64) {
		o->first |= UINT64_C(1) << (o->depth - 1);
	}
}

static void close_level(struct cmt_out *o, char c)
{
	if (o->depth > 0) {
		o->depth--;
	}
	o->after_key = false;
	cmt_out_putc(o, c);
}

void cmt_json_begin_object(struct cmt_out *o)
{
	open_level(o, '{');
}

void cmt_json_end_object(struct cmt_out *o)
{
	close_level(o, '}');
}

void cmt_json_begin_array(struct cmt_out *o)
{
	open_level(o, '[');
}

void cmt_json_end_array(struct cmt_out *o)
{
	close_level(o, ']');
}

void cmt_json_key(struct cmt_out *o, const char *key)
{
	element(o);
	cmt_out_json_escaped(o, key);
	cmt_out_putc(o, ':');
	o->after_key = true;
}

void cmt_json_string(struct cmt_out *o, const char *s)
{
	element(o);
	cmt_out_json_escaped(o, s);
}

void cmt_json_u64(struct cmt_out *o, uint64_t v)
{
	element(o);
	cmt_out_u64(o, v);
}

void cmt_json_i64(struct cmt_out *o, int64_t v)
{
	element(o);
	cmt_out_i64(o, v);
}

void cmt_json_double(struct cmt_out *o, double v, int decimals)
{
	char buf[64];

	element(o);
	if (v != v || v > 1e300 || v < -1e300) {
		cmt_out_puts(o, "0");
		return;
	}
	snprintf(buf, sizeof(buf), "%.*f", decimals, v);
	cmt_out_puts(o, buf);
}

void cmt_json_bool(struct cmt_out *o, bool v)
{
	element(o);
	cmt_out_puts(o, v ? "true" : "false");
}

void cmt_json_null(struct cmt_out *o)
{
	element(o);
	cmt_out_puts(o, "null");
}

void cmt_json_digits(struct cmt_out *o, const char *digits)
{
	element(o);
	cmt_out_puts(o, digits);
}

void cmt_json_newline(struct cmt_out *o)
{
	cmt_out_putc(o, '\n');
}
