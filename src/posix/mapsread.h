/* SPDX-License-Identifier: MIT */
/*
 * A reader of /proc/self/maps that takes no lock and calls no malloc, only
 * open/read/close, so it is safe where another thread may be suspended
 * inside the allocator: in VirtualQuery (procmaps.c) and in the LD_PRELOAD
 * interposer's state dump.
 */
#ifndef CLRMEMTRACE_MAPSREAD_H
#define CLRMEMTRACE_MAPSREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vma {
	uintptr_t start, end;
	int prot;       /* PROT_* */
	bool shared;    /* 's' rather than 'p' */
	bool file;      /* inode != 0 */
	uint64_t offset;
	uint32_t major, minor;
	uint64_t ino;
	uint64_t dev;   /* (major << 32) | minor */
	const char *path; /* into the reader's buffer, valid until the next call; "" if none */
	size_t path_len;
};

struct maps_reader {
	int fd;
	size_t len, pos;
	bool eof;
	bool discard; /* dropping the rest of an over-long line */
	char buf[8192];
};

/* Returns 0, or -1 when /proc/self/maps cannot be opened. */
int clrmemtrace__maps_open(struct maps_reader *r);
void clrmemtrace__maps_close(struct maps_reader *r);

/* Reads the next mapping; false at the end of the file. */
bool clrmemtrace__maps_next(struct maps_reader *r, struct vma *v);

#endif /* CLRMEMTRACE_MAPSREAD_H */
