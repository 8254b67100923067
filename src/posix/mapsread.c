/* SPDX-License-Identifier: MIT */
/*
 * The /proc/self/maps reader: see mapsread.h.
 */
#include "mapsread.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int clrmemtrace__maps_open(struct maps_reader *r)
{
	do {
		r->fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	} while (r->fd < 0 && errno == EINTR);
	r->len = r->pos = 0;
	r->eof = false;
	r->discard = false;
	return r->fd < 0 ? -1 : 0;
}

void clrmemtrace__maps_close(struct maps_reader *r)
{
	close(r->fd);
}

/*
 * Makes at least one full line (or the rest of the file) available; false at
 * the end. A line longer than the buffer (a very long path) keeps its first
 * part, which holds every field the reader uses, and the rest is dropped.
 */
static bool reader_fill(struct maps_reader *r)
{
	for (;;) {
		size_t old;
		ssize_t n;

		if (!r->discard && r->pos < r->len && memchr(r->buf + r->pos, '\n', r->len - r->pos)) {
			return true;
		}
		if (r->eof) {
			return !r->discard && r->pos < r->len;
		}
		if (r->pos > 0) {
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = 0;
		}
		if (!r->discard && r->len == sizeof(r->buf)) {
			r->len = 256;
			r->buf[r->len - 1] = '\n';
			r->discard = true;
			return true;
		}
		old = r->len;
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			r->eof = true;
			continue;
		}
		r->len += (size_t)n;
		if (r->discard) {
			char *nl = memchr(r->buf + old, '\n', r->len - old);

			if (!nl) {
				r->len = old;
				continue;
			}
			memmove(r->buf + old, nl + 1, (size_t)(r->buf + r->len - (nl + 1)));
			r->len -= (size_t)(nl + 1 - (r->buf + old));
			r->discard = false;
		}
	}
}

static uint64_t parse_hex(const char **p, const char *end)
{
	uint64_t v = 0;

	for (; *p < end; (*p)++) {
		char c = **p;
		unsigned d;

		if (c >= '0' && c <= '9') {
			d = (unsigned)(c - '0');
		} else if (c >= 'a' && c <= 'f') {
			d = (unsigned)(c - 'a' + 10);
		} else if (c >= 'A' && c <= 'F') {
			d = (unsigned)(c - 'A' + 10);
		} else {
			break;
		}
		v = (v << 4) | d;
	}
	return v;
}

static uint64_t parse_dec(const char **p, const char *end)
{
	uint64_t v = 0;

	for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
		v = v * 10 + (uint64_t)(**p - '0');
	}
	return v;
}

static void skip_spaces(const char **p, const char *end)
{
	while (*p < end && **p == ' ') {
		(*p)++;
	}
}

/* Reads the next mapping; false at the end of the file. */
bool clrmemtrace__maps_next(struct maps_reader *r, struct vma *v)
{
	while (reader_fill(r)) {
		const char *line = r->buf + r->pos, *end = r->buf + r->len;
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		const char *p = line;
		uint64_t major, minor;

		if (!nl) {
			nl = end;
		}
		r->pos = (size_t)(nl - r->buf) + (nl < end ? 1 : 0);
		v->start = (uintptr_t)parse_hex(&p, nl);
		if (p >= nl || *p != '-') {
			continue;
		}
		p++;
		v->end = (uintptr_t)parse_hex(&p, nl);
		skip_spaces(&p, nl);
		if (nl - p < 4) {
			continue;
		}
		v->prot = (p[0] == 'r' ? PROT_READ : 0) | (p[1] == 'w' ? PROT_WRITE : 0) |
			  (p[2] == 'x' ? PROT_EXEC : 0);
		v->shared = p[3] == 's';
		p += 4;
		skip_spaces(&p, nl);
		v->offset = parse_hex(&p, nl);
		skip_spaces(&p, nl);
		major = parse_hex(&p, nl);
		if (p < nl && *p == ':') {
			p++;
		}
		minor = parse_hex(&p, nl);
		skip_spaces(&p, nl);
		v->ino = parse_dec(&p, nl);
		v->major = (uint32_t)major;
		v->minor = (uint32_t)minor;
		v->dev = (major << 32) | minor;
		v->file = v->ino != 0;
		skip_spaces(&p, nl);
		v->path = p < nl ? p : "";
		v->path_len = p < nl ? (size_t)(nl - p) : 0;
		if (v->end > v->start) {
			return true;
		}
	}
	return false;
}

