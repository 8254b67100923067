/* SPDX-License-Identifier: MIT */
/*
 * Page-state map: see pagemap.h. Runs are kept maximal, so the run holding a
 * page is exactly the region VirtualQuery reports for it.
 */
#include "pagemap.h"

#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>

static size_t runs_bytes(uint32_t count)
{
	return sizeof(struct pm_runs) + (size_t)count * sizeof(uint64_t);
}

static struct pm_runs *runs_alloc(uint64_t pages, uint32_t capacity)
{
	struct pm_runs *r = malloc(runs_bytes(capacity));

	if (!r) {
		return NULL;
	}
	r->pages = pages;
	r->count = 0;
	r->pad = 0;
	return r;
}

/* Appends a run unless it continues the previous one's state. */
static void runs_append(struct pm_runs *r, uint64_t first, uint8_t state)
{
	if (r->count > 0 && pm_run_state(r, r->count - 1) == state) {
		return;
	}
	r->run[r->count++] = (first << 8) | state;
}

struct pm_runs *clrmemtrace__pm_new(uint64_t pages, uint8_t state)
{
	struct pm_runs *r = runs_alloc(pages, 1);

	if (r) {
		runs_append(r, 0, state);
	}
	return r;
}

uint32_t clrmemtrace__pm_find(const struct pm_runs *r, uint64_t page)
{
	uint32_t lo = 0, hi = r->count - 1;

	/* Largest i with start(i) <= page; start(0) == 0. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo + 1) / 2;

		if (pm_run_start(r, mid) <= page) {
			lo = mid;
		} else {
			hi = mid - 1;
		}
	}
	return lo;
}

struct pm_runs *clrmemtrace__pm_set(const struct pm_runs *r, uint64_t first, uint64_t end,
				    uint8_t state)
{
	struct pm_runs *n;
	uint32_t i, ifirst, iend;
	uint8_t end_state;

	/* At most one run splits into two around [first, end), plus the new run. */
	n = runs_alloc(r->pages, r->count + 2);
	if (!n) {
		return NULL;
	}
	if (first >= end) {
		/* An empty range changes nothing; a zero-length run would break the invariants. */
		for (i = 0; i < r->count; i++) {
			runs_append(n, pm_run_start(r, i), pm_run_state(r, i));
		}
		return n;
	}
	ifirst = clrmemtrace__pm_find(r, first);
	for (i = 0; i < ifirst; i++) {
		runs_append(n, pm_run_start(r, i), pm_run_state(r, i));
	}
	if (pm_run_start(r, ifirst) < first) {
		runs_append(n, pm_run_start(r, ifirst), pm_run_state(r, ifirst));
	}
	runs_append(n, first, state);
	if (end < r->pages) {
		iend = clrmemtrace__pm_find(r, end);
		end_state = pm_run_state(r, iend);
		runs_append(n, end, end_state);
		for (i = iend + 1; i < r->count; i++) {
			runs_append(n, pm_run_start(r, i), pm_run_state(r, i));
		}
	}
	return n;
}

uint64_t clrmemtrace__pm_count(const struct pm_runs *r, uint64_t first, uint64_t end, uint8_t mask,
			       uint8_t value)
{
	uint64_t total = 0;
	uint32_t i;

	if (first >= end) {
		return 0;
	}
	for (i = clrmemtrace__pm_find(r, first); i < r->count; i++) {
		uint64_t s = pm_run_start(r, i), e = pm_run_end(r, i);

		if (s >= end) {
			break;
		}
		if ((pm_run_state(r, i) & mask) == value) {
			total += (e < end ? e : end) - (s > first ? s : first);
		}
	}
	return total;
}

size_t clrmemtrace__pm_bytes(const struct pm_runs *r)
{
	return runs_bytes(r->count);
}

void clrmemtrace__pm_free(struct pm_runs *r)
{
	free(r);
}

/* ---------- Conversions ---------- */

static const uint32_t index_to_win32[8] = {
	0,
	PAGE_NOACCESS,
	PAGE_READONLY,
	PAGE_READWRITE,
	PAGE_EXECUTE,
	PAGE_EXECUTE_READ,
	PAGE_EXECUTE_READWRITE,
	0,
};

int clrmemtrace__pm_from_win32(uint32_t protect, uint8_t *state, uint32_t *cache)
{
	const uint32_t modifiers = PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE;
	uint32_t base;
	uint8_t index;

	/* Control Flow Guard is not emulated: its flag is accepted and dropped, as Wine does. */
	protect &= ~(uint32_t)PAGE_TARGETS_INVALID;
	base = protect & 0xff;
	if (protect & ~(0xffu | modifiers)) {
		return ERROR_INVALID_PARAMETER;
	}
	switch (base) {
	case PAGE_NOACCESS:
		index = PM_PROT_NOACCESS;
		break;
	case PAGE_READONLY:
		index = PM_PROT_READONLY;
		break;
	case PAGE_READWRITE:
		index = PM_PROT_READWRITE;
		break;
	case PAGE_EXECUTE:
		index = PM_PROT_EXECUTE;
		break;
	case PAGE_EXECUTE_READ:
		index = PM_PROT_EXECUTE_READ;
		break;
	case PAGE_EXECUTE_READWRITE:
		index = PM_PROT_EXECUTE_READWRITE;
		break;
	default:
		/* 0, several base bits, and the copy-on-write values (private memory has none). */
		return ERROR_INVALID_PARAMETER;
	}
	/* Microsoft's documented contract: these modifiers exclude one another and NOACCESS. */
	if ((protect & PAGE_GUARD) && (protect & (PAGE_NOCACHE | PAGE_WRITECOMBINE))) {
		return ERROR_INVALID_PARAMETER;
	}
	if ((protect & PAGE_NOCACHE) && (protect & PAGE_WRITECOMBINE)) {
		return ERROR_INVALID_PARAMETER;
	}
	if ((protect & modifiers) && base == PAGE_NOACCESS) {
		return ERROR_INVALID_PARAMETER;
	}
	*state = (uint8_t)(PM_COMMITTED | index | ((protect & PAGE_GUARD) ? PM_GUARD : 0));
	*cache = protect & (PAGE_NOCACHE | PAGE_WRITECOMBINE);
	return 0;
}

uint32_t clrmemtrace__pm_to_win32(uint8_t state)
{
	if (!(state & PM_COMMITTED)) {
		return 0;
	}
	return index_to_win32[state & PM_PROT_MASK] | ((state & PM_GUARD) ? PAGE_GUARD : 0);
}

int clrmemtrace__pm_to_unix(uint8_t state)
{
	if (!(state & PM_COMMITTED) || (state & PM_GUARD)) {
		return PROT_NONE;
	}
	switch (state & PM_PROT_MASK) {
	case PM_PROT_READONLY:
		return PROT_READ;
	case PM_PROT_READWRITE:
		return PROT_READ | PROT_WRITE;
	case PM_PROT_EXECUTE:
	case PM_PROT_EXECUTE_READ:
		/* Like Wine: x86 and arm64 Linux have no portable execute-only mapping. */
		return PROT_READ | PROT_EXEC;
	case PM_PROT_EXECUTE_READWRITE:
		return PROT_READ | PROT_WRITE | PROT_EXEC;
	default:
		return PROT_NONE;
	}
}
