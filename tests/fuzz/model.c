/* SPDX-License-Identifier: MIT */
/*
 * The fuzzer's reference model: see model.h. Rule numbers ("#n") are those
 * of win32-vm-semantics.md; "decision" marks a choice DESIGN.md or the
 * backend's documentation makes where the sources leave it open.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#define GRANULE ((uintptr_t)0x10000)

static HRESULT win32(uint32_t err)
{
	return HRESULT_FROM_WIN32(err);
}

static void fail(struct pred *p, HRESULT hr, const char *why)
{
	p->kind = P_FAIL;
	p->hr = hr;
	p->why = why;
}

static void succeed(struct pred *p, enum pred_kind kind, const char *why)
{
	p->kind = kind;
	p->hr = S_OK;
	p->why = why;
}

static uintptr_t page_down(const struct model *m, uintptr_t a)
{
	return a & ~(uintptr_t)(m->page_size - 1);
}

/* The end of the last page [a, a + size) touches (#14, #69); false when it wraps. */
static bool range_end(const struct model *m, uintptr_t a, size_t size, uintptr_t *end)
{
	uintptr_t e;

	if (a > UINTPTR_MAX - size) {
		return false;
	}
	e = a + size;
	if (e > UINTPTR_MAX - (m->page_size - 1)) {
		return false;
	}
	*end = page_down(m, e + m->page_size - 1);
	return true;
}

static size_t page_index(const struct model *m, const struct mres *r, uintptr_t a)
{
	return (a - r->base) / m->page_size;
}

void model_init(struct model *m, size_t page_size, uintptr_t user_min, uintptr_t user_limit)
{
	memset(m, 0, sizeof(*m));
	m->page_size = page_size;
	m->user_min = user_min;
	m->user_limit = user_limit;
	/*
	 * An executable, its libraries and the stack split user space: no hole
	 * is ever 7/8 of it (the conformance suite's test_alloc_huge_sizes).
	 */
	m->no_hole = (user_limit / 8 * 7) & ~(GRANULE - 1);
	m->manager_refs = 1;
}

void model_clear(struct model *m)
{
	int i;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		free(m->res[i].page);
	}
	model_init(m, m->page_size, m->user_min, m->user_limit);
}

bool model_protect_valid(uint32_t protect, uint16_t *prot, uint32_t *cache)
{
	/* Decision: Control Flow Guard is not emulated, PAGE_TARGETS_INVALID is dropped. */
	uint32_t p = protect & ~(uint32_t)PAGE_TARGETS_INVALID;
	uint32_t modifiers = p & ~(uint32_t)0xff;
	bool guard = (p & PAGE_GUARD) != 0;
	bool nocache = (p & PAGE_NOCACHE) != 0;
	bool combine = (p & PAGE_WRITECOMBINE) != 0;

	if (modifiers & ~(uint32_t)(PAGE_GUARD | PAGE_NOCACHE | PAGE_WRITECOMBINE)) {
		return false;
	}
	/* #3, #4: exactly one base value, and no copy-on-write for private memory. */
	switch (p & 0xff) {
	case PAGE_NOACCESS:
	case PAGE_READONLY:
	case PAGE_READWRITE:
	case PAGE_EXECUTE:
	case PAGE_EXECUTE_READ:
	case PAGE_EXECUTE_READWRITE:
		break;
	default:
		return false;
	}
	/* #65 and the decision to follow Microsoft's documented contract. */
	if (guard && (nocache || combine)) {
		return false;
	}
	if (nocache && combine) {
		return false;
	}
	if ((p & 0xff) == PAGE_NOACCESS && (guard || nocache || combine)) {
		return false;
	}
	*prot = (uint16_t)((p & 0xff) | (guard ? PAGE_GUARD : 0));
	*cache = p & (PAGE_NOCACHE | PAGE_WRITECOMBINE);
	return true;
}

int model_find(const struct model *m, uintptr_t addr)
{
	int i;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		const struct mres *r = &m->res[i];

		if (r->live && addr >= r->base && addr < r->end) {
			return i;
		}
	}
	return -1;
}

bool model_overlaps(const struct model *m, uintptr_t lo, uintptr_t hi)
{
	int i;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		const struct mres *r = &m->res[i];

		if (r->live && lo < r->end && hi > r->base) {
			return true;
		}
	}
	return false;
}

int model_live_reservations(const struct model *m)
{
	int i, n = 0;

	for (i = 0; i < MODEL_MAX_RES; i++) {
		n += m->res[i].live;
	}
	return n;
}

/* ---------- VirtualAlloc ---------- */

void model_virtual_alloc(const struct model *m, uintptr_t addr, size_t size, uint32_t type,
			 uint32_t protect, int level, bool out_null, struct pred *p)
{
	const uint32_t known = MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_TOP_DOWN | MEM_WRITE_WATCH;
	uintptr_t base = 0, end = 0;
	const struct mres *r;
	uint32_t cache = 0;
	uint16_t prot = 0;
	bool valid;
	int i;

	memset(p, 0, sizeof(*p));
	p->res = -1;
	/* The interface's own arguments come first (DESIGN.md: out-pointers, then levels). */
	if (out_null) {
		return fail(p, E_POINTER, "ppMem is NULL");
	}
	if ((unsigned)level > (unsigned)eProcessCritical) {
		return fail(p, E_INVALIDARG, "not an EMemoryCriticalLevel");
	}
	/* Then Wine's order of checks (NtAllocateVirtualMemory, allocate_virtual_memory). */
	if (size == 0) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#1 size 0");
	}
	if (type & ~known) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#6/#7 unknown allocation type bits");
	}
	if (size >= m->user_limit) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#10 decision: size beyond user space");
	}
	if (addr) {
		/* #13: reservations round down to 64 KiB, everything else to a page. */
		base = (type & MEM_RESERVE) ? addr & ~(GRANULE - 1) : page_down(m, addr);
		if (!range_end(m, addr, size, &end) || base < m->user_min || end > m->user_limit) {
			return fail(p, win32(ERROR_INVALID_PARAMETER),
				    "#9 low 64 KiB, wrap-around or beyond user space");
		}
	}
	if (!(type & (MEM_COMMIT | MEM_RESERVE | MEM_RESET))) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#7 no COMMIT, RESERVE or RESET");
	}
	valid = model_protect_valid(protect, &prot, &cache);
	if (type & MEM_RESET) {
		/* #62 and the decision: MEM_RESET alone, on existing pages, valid flProtect. */
		if (type != MEM_RESET) {
			return fail(p, win32(ERROR_INVALID_PARAMETER), "#62 MEM_RESET with other bits");
		}
		if (!addr) {
			return fail(p, win32(ERROR_INVALID_PARAMETER), "#62 MEM_RESET at NULL");
		}
		if (!valid) {
			return fail(p, win32(ERROR_INVALID_PARAMETER), "#62 MEM_RESET, bad flProtect");
		}
		i = model_find(m, base);
		if (i < 0 || end > m->res[i].end) {
			return fail(p, win32(ERROR_INVALID_ADDRESS), "#61 MEM_RESET outside a reservation");
		}
		r = &m->res[i];
		p->res = i;
		p->base = base;
		p->first = page_index(m, r, base);
		p->last = page_index(m, r, end);
		return succeed(p, P_RESET, "#59/#60 MEM_RESET");
	}
	if (type & MEM_WRITE_WATCH) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#8 decision: MEM_WRITE_WATCH refused");
	}
	if ((type & MEM_RESERVE) || !addr) {
		if (!valid) {
			return fail(p, win32(ERROR_INVALID_PARAMETER), "#2-#4 bad protection");
		}
		p->prot = (type & MEM_COMMIT) ? prot : MODEL_RESERVED; /* #16 */
		p->alloc_protect = protect & ~(uint32_t)PAGE_TARGETS_INVALID;
		p->cache = cache;
		if (!addr) {
			range_end(m, 0, size, &end);
			p->len = end;
			if (p->len >= m->no_hole) {
				return fail(p, E_OUTOFMEMORY, "#10 no hole that large");
			}
			return succeed(p, P_RESERVE, "#11/#14/#16 new reservation");
		}
		p->base = base;
		p->len = end - base;
		if (model_overlaps(m, base, end)) {
			return fail(p, win32(ERROR_INVALID_ADDRESS), "#13/#18 conflicting addresses");
		}
		return succeed(p, P_RESERVE_AT, "#12/#13 reservation at an address");
	}
	/* #17: a commit must lie inside one reservation; Wine checks this before the protection. */
	i = model_find(m, base);
	if (i < 0 || end > m->res[i].end) {
		return fail(p, win32(ERROR_INVALID_ADDRESS), "#17 commit outside a reservation");
	}
	if (!valid) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#2-#4 bad protection");
	}
	r = &m->res[i];
	p->res = i;
	p->base = base;
	p->first = page_index(m, r, base);
	p->last = page_index(m, r, end);
	p->prot = prot;
	return succeed(p, P_COMMIT, "#20-#25 commit");
}

int model_add_reservation(struct model *m, const struct pred *p, uintptr_t base)
{
	struct mres *r = NULL;
	size_t i;
	int k;

	for (k = 0; k < MODEL_MAX_RES; k++) {
		if (!m->res[k].live) {
			r = &m->res[k];
			break;
		}
	}
	if (!r) {
		return -1;
	}
	free(r->page);
	memset(r, 0, sizeof(*r));
	r->pages = p->len / m->page_size;
	r->page = calloc(r->pages, sizeof(*r->page));
	if (!r->page) {
		return -1;
	}
	r->live = true;
	r->base = base;
	r->end = base + p->len;
	r->alloc_protect = p->alloc_protect;
	r->cache = p->cache;
	for (i = 0; i < r->pages; i++) {
		r->page[i].prot = p->prot; /* #22: new pages read as zero */
	}
	return k;
}

/* ---------- VirtualFree ---------- */

void model_virtual_free(const struct model *m, uintptr_t addr, size_t size, uint32_t type,
			struct pred *p)
{
	uintptr_t base = page_down(m, addr), end = 0;
	const struct mres *r;
	int i;

	memset(p, 0, sizeof(*p));
	p->res = -1;
	/*
	 * kernelbase's VirtualFreeEx, then NtFreeVirtualMemory, which checks the
	 * free type and the user-space limit before it looks the address up
	 * (found by the differential test against Wine, pinned by
	 * test-virtual-free.c): each of these is an invalid parameter.
	 */
	if (type == MEM_RELEASE && size) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#29 MEM_RELEASE with a size");
	}
	if (type != MEM_DECOMMIT && type != MEM_RELEASE) {
		return fail(p, win32(ERROR_INVALID_PARAMETER),
			    "#27/#28/#30 bad free type, before the address");
	}
	if (size && !range_end(m, addr, size, &end)) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "range wraps around");
	}
	if (!base) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#35 NULL address");
	}
	if (base >= m->user_limit || (size && end > m->user_limit)) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#9/#56 beyond user space");
	}
	i = model_find(m, base);
	if (i < 0) {
		return fail(p, win32(ERROR_INVALID_ADDRESS), "#35 decision: not allocated");
	}
	r = &m->res[i];
	if (!size) {
		if (base != r->base) {
			return fail(p, win32(ERROR_INVALID_ADDRESS), "#33/#34 size 0 not at the base");
		}
		end = r->end;
	}
	if (end > r->end) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#36 range runs past the allocation");
	}
	p->res = i;
	p->base = base;
	p->first = page_index(m, r, base);
	p->last = page_index(m, r, end);
	if (type == MEM_DECOMMIT) {
		return succeed(p, P_DECOMMIT, "#31-#33 decommit");
	}
	return succeed(p, P_RELEASE, "#34/#38 release");
}

/* ---------- VirtualProtect ---------- */

void model_virtual_protect(const struct model *m, uintptr_t addr, size_t size, uint32_t protect,
			   bool old_null, struct pred *p)
{
	uintptr_t base = page_down(m, addr), end;
	const struct mres *r;
	uint32_t cache;
	uint16_t prot;
	size_t k;
	int i;

	memset(p, 0, sizeof(*p));
	p->res = -1;
	if (old_null) {
		return fail(p, win32(ERROR_NOACCESS), "#44 lpflOldProtect NULL");
	}
	if (!range_end(m, addr, size, &end)) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "range wraps around");
	}
	/* NtProtectVirtualMemory's first check, as for the other calls (test-virtual-protect.c). */
	if (base >= m->user_limit || end > m->user_limit) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#9/#56 beyond user space");
	}
	i = model_find(m, base);
	if (i < 0) {
		return fail(p, win32(ERROR_INVALID_ADDRESS), "decision: not the manager's memory");
	}
	r = &m->res[i];
	if (end > r->end) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#49a range leaves the reservation");
	}
	p->res = i;
	p->first = page_index(m, r, base);
	p->last = page_index(m, r, end);
	/* #40, #41: every page, and at least the first, committed. */
	if (r->page[p->first].prot == MODEL_RESERVED) {
		return fail(p, win32(ERROR_INVALID_ADDRESS), "#40 first page not committed");
	}
	for (k = p->first; k < p->last; k++) {
		if (r->page[k].prot == MODEL_RESERVED) {
			return fail(p, win32(ERROR_INVALID_ADDRESS), "#41 a page is not committed");
		}
	}
	if (!model_protect_valid(protect, &prot, &cache)) {
		return fail(p, win32(ERROR_INVALID_PARAMETER), "#45/#46 bad protection");
	}
	/* #43 the first page's protection; #66 the reservation's cache modifier. */
	p->old = r->page[p->first].prot | r->cache;
	p->prot = prot;
	p->base = base;
	return succeed(p, P_PROTECT, "#42/#47 protect");
}

void model_apply(struct model *m, const struct pred *p)
{
	struct mres *r = &m->res[p->res];
	size_t k;

	switch (p->kind) {
	case P_COMMIT:
		for (k = p->first; k < p->last; k++) {
			if (r->page[k].prot == MODEL_RESERVED) {
				/* #22: a newly committed page reads as zero. */
				r->page[k].tag = 0;
				r->page[k].maybe_reset = 0;
			}
			/* #21, #24: committed pages keep their contents, take the new protection. */
			r->page[k].prot = p->prot;
		}
		break;
	case P_RESET:
		for (k = p->first; k < p->last; k++) {
			if (r->page[k].prot != MODEL_RESERVED && r->page[k].tag) {
				r->page[k].maybe_reset = 1; /* #59: preserved or zero */
			}
		}
		break;
	case P_DECOMMIT:
		for (k = p->first; k < p->last; k++) {
			r->page[k].prot = MODEL_RESERVED;
			r->page[k].tag = 0;
			r->page[k].maybe_reset = 0;
		}
		break;
	case P_RELEASE:
		free(r->page);
		memset(r, 0, sizeof(*r));
		break;
	case P_PROTECT:
		for (k = p->first; k < p->last; k++) {
			r->page[k].prot = p->prot;
		}
		break;
	default:
		break;
	}
}

/* ---------- VirtualQuery ---------- */

enum qkind model_virtual_query(const struct model *m, uintptr_t addr, bool buf_null, size_t len,
			       bool result_null, HRESULT *hr, MEMORY_BASIC_INFORMATION *mbi)
{
	uintptr_t page = page_down(m, addr);
	const struct mres *r;
	size_t k, run;
	uint16_t prot;
	int i;

	*hr = S_OK;
	memset(mbi, 0, sizeof(*mbi));
	/* #55 and the decisions pinned by the conformance suite for the interface's pointers. */
	if (result_null) {
		*hr = E_POINTER;
		return Q_FAIL;
	}
	if (len < sizeof(MEMORY_BASIC_INFORMATION)) {
		*hr = win32(ERROR_BAD_LENGTH);
		return Q_FAIL;
	}
	if (buf_null) {
		*hr = win32(ERROR_NOACCESS);
		return Q_FAIL;
	}
	if (addr >= m->user_limit) {
		*hr = win32(ERROR_INVALID_PARAMETER); /* #56 */
		return Q_FAIL;
	}
	i = model_find(m, addr);
	if (i < 0) {
		return Q_FOREIGN;
	}
	r = &m->res[i];
	k = page_index(m, r, page);
	prot = r->page[k].prot;
	/*
	 * #50, #51: the run of pages with the same state and protection, within
	 * the allocation; reserved pages compare equal whatever their history
	 * (decision).
	 */
	for (run = k; run < r->pages && r->page[run].prot == prot; run++) {
	}
	mbi->BaseAddress = (void *)page;
	mbi->AllocationBase = (void *)r->base;
	mbi->AllocationProtect = r->alloc_protect;
	mbi->RegionSize = (run - k) * m->page_size;
	if (prot == MODEL_RESERVED) {
		mbi->State = MEM_RESERVE;
		mbi->Protect = 0; /* #15 */
	} else {
		mbi->State = MEM_COMMIT;
		mbi->Protect = prot | r->cache; /* #53, #66 */
	}
	mbi->Type = MEM_PRIVATE; /* #54 */
	return Q_OWNED;
}

/* ---------- Heaps ---------- */

HRESULT model_create_malloc(const struct model *m, uint32_t type, bool out_null)
{
	(void)m;
	if (out_null) {
		return E_POINTER;
	}
	if (type & ~(uint32_t)(MALLOC_THREADSAFE | MALLOC_EXECUTABLE)) {
		return E_INVALIDARG;
	}
	return S_OK;
}

HRESULT model_heap_alloc(const struct model *m, size_t size, int level, bool out_null)
{
	if (out_null) {
		return E_POINTER;
	}
	if ((unsigned)level > (unsigned)eProcessCritical) {
		return E_INVALIDARG;
	}
	/* No hole holds it: the same bound as for reservations (#10). */
	if (size >= m->no_hole) {
		return E_OUTOFMEMORY;
	}
	return S_OK;
}

HRESULT model_heap_free(const struct model *m, int heap, const void *ptr, int *block)
{
	int i;

	*block = -1;
	if (!ptr) {
		return S_OK; /* clr-hosting-api.md §1.11: the CLR frees NULL */
	}
	/* Exactly the live blocks of this heap; anything else is refused (README). */
	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		if (m->block[i].live && m->block[i].heap == heap && m->block[i].ptr == ptr) {
			*block = i;
			return S_OK;
		}
	}
	return HOST_E_INVALIDOPERATION;
}

int model_block_overlapping(const struct model *m, uintptr_t p, size_t n)
{
	int i;

	if (n == 0) {
		n = 1;
	}
	for (i = 0; i < MODEL_MAX_BLOCKS; i++) {
		const struct mblock *b = &m->block[i];
		uintptr_t s = (uintptr_t)b->ptr, e = s + (b->size ? b->size : 1);

		if (b->live && p < e && p + n > s) {
			return i;
		}
	}
	return -1;
}

/* ---------- Address space the runtime maps itself (pinned by test-manager-misc.c) ---------- */

static bool vas_range_valid(uintptr_t start, size_t size)
{
	return size != 0 && start <= UINTPTR_MAX - size;
}

HRESULT model_needs_vas(const struct model *m, uintptr_t start, size_t size)
{
	(void)m;
	/* No budget: any sensible range fits; NULL means "anywhere". */
	return vas_range_valid(start, size) ? S_OK : E_INVALIDARG;
}

HRESULT model_acquired_vas(const struct model *m, uintptr_t start, size_t size, int *slot)
{
	int i;

	*slot = -1;
	if (!start || !vas_range_valid(start, size)) {
		return E_INVALIDARG;
	}
	for (i = 0; i < MODEL_MAX_VAS; i++) {
		if (m->vas[i].live && m->vas[i].start == start) {
			*slot = i;
			return E_INVALIDARG; /* acquired already and not released */
		}
	}
	for (i = 0; i < MODEL_MAX_VAS; i++) {
		if (!m->vas[i].live) {
			*slot = i;
			break;
		}
	}
	return S_OK;
}

HRESULT model_released_vas(const struct model *m, uintptr_t start, int *slot)
{
	int i;

	*slot = -1;
	if (!start) {
		return E_INVALIDARG;
	}
	for (i = 0; i < MODEL_MAX_VAS; i++) {
		if (m->vas[i].live && m->vas[i].start == start) {
			*slot = i;
			return S_OK;
		}
	}
	return HOST_E_INVALIDOPERATION;
}
