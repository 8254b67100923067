/* SPDX-License-Identifier: MIT */
/*
 * Kernel view of foreign memory: see procmaps.h for the rules.
 */
#include "procmaps.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct vma {
	uintptr_t start, end;
	int prot;
	bool shared;
	bool file;
	uint64_t dev, ino;
};

struct maps_reader {
	int fd;
	size_t len, pos;
	bool eof;
	bool discard; /* dropping the rest of an over-long line */
	char buf[8192];
};

static int reader_open(struct maps_reader *r)
{
	do {
		r->fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	} while (r->fd < 0 && errno == EINTR);
	r->len = r->pos = 0;
	r->eof = false;
	r->discard = false;
	return r->fd < 0 ? ERROR_NOT_SUPPORTED : 0;
}

static void reader_close(struct maps_reader *r)
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
static bool reader_next(struct maps_reader *r, struct vma *v)
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
		(void)parse_hex(&p, nl); /* offset */
		skip_spaces(&p, nl);
		major = parse_hex(&p, nl);
		if (p < nl && *p == ':') {
			p++;
		}
		minor = parse_hex(&p, nl);
		skip_spaces(&p, nl);
		v->ino = parse_dec(&p, nl);
		v->dev = (major << 32) | minor;
		v->file = v->ino != 0;
		if (v->end > v->start) {
			return true;
		}
	}
	return false;
}

/* State and protection the way Windows would show such a mapping. */
static void vma_attrs(const struct vma *v, uint32_t *state, uint32_t *protect)
{
	bool cow = v->file && !v->shared;

	if (v->prot == PROT_NONE) {
		if (v->file) {
			*state = MEM_COMMIT;
			*protect = PAGE_NOACCESS;
		} else {
			*state = MEM_RESERVE;
			*protect = 0;
		}
		return;
	}
	*state = MEM_COMMIT;
	if (v->prot & PROT_EXEC) {
		if (v->prot & PROT_WRITE) {
			*protect = cow ? PAGE_EXECUTE_WRITECOPY : PAGE_EXECUTE_READWRITE;
		} else if (v->prot & PROT_READ) {
			*protect = PAGE_EXECUTE_READ;
		} else {
			*protect = PAGE_EXECUTE;
		}
	} else if (v->prot & PROT_WRITE) {
		*protect = cow ? PAGE_WRITECOPY : PAGE_READWRITE;
	} else {
		*protect = PAGE_READONLY;
	}
}

static uint32_t vma_allocation_protect(const struct vma *v)
{
	uint32_t state, protect;

	vma_attrs(v, &state, &protect);
	return protect ? protect : PAGE_NOACCESS;
}

/* Does v continue the allocation that prev (adjacent) belongs to? */
static bool same_allocation(const struct vma *prev, const struct vma *v, uintptr_t group_start)
{
	if (prev->end != v->start) {
		return false;
	}
	if (prev->file || v->file) {
		return prev->file && v->file && prev->dev == v->dev && prev->ino == v->ino;
	}
	/* Anonymous: only a lone guard mapping directly below an accessible one. */
	return prev->prot == PROT_NONE && prev->start == group_start && v->prot != PROT_NONE;
}

static void fill_free(MEMORY_BASIC_INFORMATION *mbi, uintptr_t page, uintptr_t next)
{
	memset(mbi, 0, sizeof(*mbi));
	mbi->BaseAddress = (void *)page;
	mbi->RegionSize = next - page;
	mbi->State = MEM_FREE;
	mbi->Protect = PAGE_NOACCESS;
}

int clrmemtrace__procmaps_query(uintptr_t addr, uintptr_t lo, uintptr_t hi,
				MEMORY_BASIC_INFORMATION *mbi)
{
	struct maps_reader reader;
	struct vma v, prev = { 0 };
	uintptr_t page = addr & ~(uintptr_t)(clrmemtrace__sys.page_size - 1);
	uintptr_t group_start = 0, run_end = 0, next = hi;
	uint32_t group_alloc_protect = 0, run_state = 0, run_protect = 0;
	bool have_prev = false, found = false, run_open = false;
	bool group_file = false, group_exec = false;
	int err;

	err = reader_open(&reader);
	if (err) {
		return err;
	}
	while (reader_next(&reader, &v)) {
		bool join;

		if (v.end <= lo) {
			continue;
		}
		if (v.start >= hi) {
			break;
		}
		if (v.start < lo) {
			v.start = lo;
		}
		if (v.end > hi) {
			v.end = hi;
		}
		join = have_prev && same_allocation(&prev, &v, group_start);
		if (!join) {
			if (found) {
				break;
			}
			group_start = v.start;
			group_file = v.file;
			group_exec = false;
			group_alloc_protect = vma_allocation_protect(&v);
		}
		group_exec |= (v.prot & PROT_EXEC) != 0;
		if (!found) {
			if (v.end <= page) {
				prev = v;
				have_prev = true;
				continue;
			}
			if (v.start > page) {
				next = v.start;
				break;
			}
			found = true;
			run_open = true;
			run_end = v.end;
			vma_attrs(&v, &run_state, &run_protect);
		} else if (run_open) {
			uint32_t s, p;

			vma_attrs(&v, &s, &p);
			if (v.start == run_end && s == run_state && p == run_protect) {
				run_end = v.end;
			} else {
				run_open = false;
			}
		}
		prev = v;
		have_prev = true;
	}
	reader_close(&reader);

	if (!found) {
		fill_free(mbi, page, next);
		return 0;
	}
	memset(mbi, 0, sizeof(*mbi));
	mbi->BaseAddress = (void *)page;
	mbi->AllocationBase = (void *)group_start;
	mbi->AllocationProtect = group_alloc_protect;
	mbi->RegionSize = run_end - page;
	mbi->State = run_state;
	mbi->Protect = run_protect;
	mbi->Type = group_file ? (group_exec ? MEM_IMAGE : MEM_MAPPED) : MEM_PRIVATE;
	return 0;
}
