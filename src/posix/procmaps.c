/* SPDX-License-Identifier: MIT */
/*
 * Kernel view of foreign memory: see procmaps.h for the rules.
 */
#include "procmaps.h"

#include "mapsread.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

	if (clrmemtrace__maps_open(&reader) != 0) {
		return ERROR_NOT_SUPPORTED;
	}
	while (clrmemtrace__maps_next(&reader, &v)) {
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
	clrmemtrace__maps_close(&reader);

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
