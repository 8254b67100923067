/* SPDX-License-Identifier: MIT */
/*
 * Page-state map: see pagemap.h. Runs are kept maximal, so the run holding a
 * page is exactly the region VirtualQuery reports for it.
 */
#include "pagemap.h"

#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>

/*
 * Small maps all get room for 8 runs: one malloc size class serves the
 * arrays a manager replaces.
 */
#define MIN_CAPACITY 8u

static struct pm_runs *runs_alloc(uint64_t pages, uint32_t capacity)
{
	struct pm_runs *r;

	if (capacity < MIN_CAPACITY) {
		capacity = MIN_CAPACITY;
	}
	r = malloc(PM_RUNS_BYTES(capacity));
	if (!r) {
		return NULL;
	}
	r->pages = pages;
	r->count = 0;
	r->capacity = capacity;
	return r;
}

/* Appends a run (first_page << 8 | state) unless it continues the state of the last one, *last. */
static inline void runs_append(struct pm_runs *r, uint32_t *count, int *last, uint64_t raw)
{
	if ((uint8_t)raw == *last) {
		return;
	}
	__atomic_store_n(&r->run[*count], raw, __ATOMIC_RELAXED);
	(*count)++;
	*last = (uint8_t)raw;
}

void clrmemtrace__pm_init(struct pm_runs *buf, uint32_t capacity, uint64_t pages, uint8_t state)
{
	buf->pages = pages;
	buf->capacity = capacity;
	__atomic_store_n(&buf->run[0], (uint64_t)state, __ATOMIC_RELAXED);
	__atomic_store_n(&buf->count, 1, __ATOMIC_RELAXED);
}

struct pm_runs *clrmemtrace__pm_new(uint64_t pages, uint8_t state)
{
	struct pm_runs *r = runs_alloc(pages, 1);

	if (r) {
		clrmemtrace__pm_init(r, r->capacity, pages, state);
	}
	return r;
}

uint32_t clrmemtrace__pm_find(const struct pm_runs *r, uint64_t page)
{
	uint32_t lo = 0, hi = pm_count_runs(r) - 1;

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

bool clrmemtrace__pm_set_into(struct pm_runs *dst, const struct pm_runs *r, uint64_t first,
			      uint64_t end, uint8_t state, uint64_t *committed)
{
	uint32_t i, n = 0, count = pm_count_runs(r);
	uint64_t pages = r->pages, replaced = 0;
	int last = -1; /* the state of the run written last, -1 before the first */

	/* At most one run splits into two around [first, end), plus the new run. */
	if (dst->capacity < count + 2) {
		return false;
	}
	/* A buffer readers may still look at keeps its size: write it only if it differs. */
	if (dst->pages != pages) {
		dst->pages = pages;
	}
	/*
	 * One pass over the runs, each [s, e): the part before first, the new
	 * run once, the part from end on. An empty range changes nothing: a
	 * zero-length run would break the invariants.
	 */
	for (i = 0; i < count; i++) {
		uint64_t raw = pm_run_raw(r, i), s = raw >> 8;
		uint64_t e = i + 1 < count ? pm_run_start(r, i + 1) : pages;
		uint8_t st = (uint8_t)raw;

		if (first >= end || e <= first || s >= end) {
			runs_append(dst, &n, &last, raw);
			continue;
		}
		if (st & PM_COMMITTED) {
			replaced += (e < end ? e : end) - (s > first ? s : first);
		}
		if (s < first) {
			runs_append(dst, &n, &last, raw);
		}
		if (s <= first) {
			runs_append(dst, &n, &last, (first << 8) | state);
		}
		if (e > end) {
			runs_append(dst, &n, &last, (end << 8) | st);
		}
	}
	__atomic_store_n(&dst->count, n, __ATOMIC_RELAXED);
	*committed = replaced;
	return true;
}

struct pm_runs *clrmemtrace__pm_set(const struct pm_runs *r, uint64_t first, uint64_t end,
				    uint8_t state)
{
	struct pm_runs *n = runs_alloc(r->pages, pm_count_runs(r) + 2);
	uint64_t committed;

	if (n) {
		clrmemtrace__pm_set_into(n, r, first, end, state, &committed);
	}
	return n;
}

uint64_t clrmemtrace__pm_count(const struct pm_runs *r, uint64_t first, uint64_t end, uint8_t mask,
			       uint8_t value)
{
	uint32_t i, count = pm_count_runs(r);
	uint64_t total = 0;

	if (first >= end) {
		return 0;
	}
	/* Short maps (the usual case) are cheaper to scan than to search. */
	for (i = count > 8 ? clrmemtrace__pm_find(r, first) : 0; i < count; i++) {
		uint64_t raw = pm_run_raw(r, i), s = raw >> 8;
		uint64_t e = i + 1 < count ? pm_run_start(r, i + 1) : r->pages;

		if (s >= end) {
			break;
		}
		if (e > first && ((uint8_t)raw & mask) == value) {
			total += (e < end ? e : end) - (s > first ? s : first);
		}
	}
	return total;
}

size_t clrmemtrace__pm_bytes(const struct pm_runs *r)
{
	return PM_RUNS_BYTES(r->capacity);
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

/* The protection index of each single base bit, by bit number; 0 for the copy-on-write values. */
static const uint8_t bit_to_index[8] = {
	PM_PROT_NOACCESS,     PM_PROT_READONLY,     PM_PROT_READWRITE,         0,
	PM_PROT_EXECUTE,      PM_PROT_EXECUTE_READ, PM_PROT_EXECUTE_READWRITE, 0,
};

int clrmemtrace__pm_from_win32(uint32_t protect, uint8_t *state, uint32_t *cache)
{
	const uint32_t modifiers = PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE;
	uint32_t base, mods;
	uint8_t index;

	/* Control Flow Guard is not emulated: its flag is accepted and dropped, as Wine does. */
	protect &= ~(uint32_t)PAGE_TARGETS_INVALID;
	base = protect & 0xff;
	if (protect & ~(0xffu | modifiers)) {
		return ERROR_INVALID_PARAMETER;
	}
	/* 0, several base bits, and the copy-on-write values (private memory has none). */
	if (base == 0 || (base & (base - 1)) != 0) {
		return ERROR_INVALID_PARAMETER;
	}
	index = bit_to_index[__builtin_ctz(base)];
	if (index == 0) {
		return ERROR_INVALID_PARAMETER;
	}
	mods = protect & modifiers;
	if (mods) {
		/* Microsoft's documented contract: these modifiers exclude one another and NOACCESS. */
		if ((mods & PAGE_GUARD) && (mods & (PAGE_NOCACHE | PAGE_WRITECOMBINE))) {
			return ERROR_INVALID_PARAMETER;
		}
		if ((mods & PAGE_NOCACHE) && (mods & PAGE_WRITECOMBINE)) {
			return ERROR_INVALID_PARAMETER;
		}
		if (base == PAGE_NOACCESS) {
			return ERROR_INVALID_PARAMETER;
		}
	}
	*state = (uint8_t)(PM_COMMITTED | index | ((mods & PAGE_GUARD) ? PM_GUARD : 0));
	*cache = mods & (PAGE_NOCACHE | PAGE_WRITECOMBINE);
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
