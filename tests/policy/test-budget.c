/* SPDX-License-Identifier: MIT */
/*
 * Budgets (README.md, "Host policy"): the commit budget, the address-space
 * budget and the emergency reserve, set in clrmemtrace_options or in the
 * environment, and the accounting they are checked against.
 *
 * The accounting is read back exactly through the interface itself: with a
 * commit budget, GetMemoryLoad's available bytes are budget - committed, and
 * NeedsVirtualAddressSpace answers S_OK for a size exactly when it still
 * fits the address-space budget, so a search over sizes finds the room left.
 *
 * Heaps take memory from the OS 64 KiB at a time (a span per size class) or
 * one mapping per large block (the block plus a 256-byte header, rounded to
 * pages), and are charged for exactly that, not per block.
 */
#include "policy-common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(POLICY_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

/* What a large heap block takes from the OS (heap_posix.c: header + block, in pages). */
#define LARGE_HEADER ((size_t)256)
#define SPAN ((SIZE_T)0x10000)

static size_t large_charge(size_t size)
{
	return (LARGE_HEADER + size + page - 1) & ~(page - 1);
}

/* ---------- Reading the accounting back ---------- */

/* budget - committed, from GetMemoryLoad; the load is checked against it. */
static SIZE_T available_(IHostMemoryManager *mm, uint64_t budget, const char *file, int line)
{
	DWORD load = 0xdeadbeef;
	SIZE_T avail = (SIZE_T)0xdeadbeef;
	uint64_t committed;

	memory_load_(mm, &load, &avail, file, line);
	_assert_true(avail <= budget, "available <= budget", file, line);
	committed = budget - avail;
	_assert_int_equal(load, committed * 100 / budget, file, line);
	return avail;
}
#define available(mm, budget) available_((mm), (budget), __FILE__, __LINE__)

/*
 * The address space left under the budget: the largest size
 * NeedsVirtualAddressSpace accepts (it charges nothing, so it can be asked
 * again and again).
 */
static uint64_t room_(IHostMemoryManager *mm, uint64_t budget, const char *file, int line)
{
	uint64_t lo = 0, hi = budget + 1;

	check_hr_(E_OUTOFMEMORY,
		  IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, (SIZE_T)(budget + 1)),
		  "NeedsVirtualAddressSpace(mm, NULL, budget + 1)", file, line);
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		HRESULT hr = IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, (SIZE_T)mid);

		if (hr != S_OK && hr != E_OUTOFMEMORY) {
			check_hr_(E_OUTOFMEMORY, hr, "NeedsVirtualAddressSpace(mm, NULL, mid)", file,
				  line);
		}
		if (hr == S_OK) {
			lo = mid;
		} else {
			hi = mid;
		}
	}
	return lo;
}
#define room(mm, budget) room_((mm), (budget), __FILE__, __LINE__)

static DWORD state_of(IHostMemoryManager *mm, void *p)
{
	MEMORY_BASIC_INFORMATION m;
	SIZE_T got = 0;

	assert_hr(S_OK, IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &got));
	assert_int_equal(got, sizeof(m));
	return m.State;
}

static void decommit(IHostMemoryManager *mm, void *p, SIZE_T size)
{
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, p, size, MEM_DECOMMIT));
}

static void release(IHostMemoryManager *mm, void *p)
{
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE));
}

static char *at(void *base, size_t off)
{
	return (char *)base + off;
}

/* ---------- The commit budget ---------- */

/* eTaskCritical requests fail at the budget; reservations and recommits cost nothing. */
static void test_commit_budget_task_critical(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *a, *r, *r2;
	DWORD load;
	SIZE_T avail;

	(void)state;
	o.commit_budget = 1 * MiB;
	mm = create_ok(&o);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 0);
	assert_int_equal(avail, 1 * MiB);

	a = alloc_ok(mm, NULL, 768 * KiB, MEM_RESERVE | MEM_COMMIT, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 256 * KiB);
	/* Would cross the budget: refused whole, and nothing is charged for it. */
	alloc_fails(mm, NULL, 512 * KiB, MEM_RESERVE | MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	assert_int_equal(available(mm, 1 * MiB), 256 * KiB);

	/* A reservation commits nothing. */
	r = alloc_ok(mm, NULL, 4 * MiB, MEM_RESERVE, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 256 * KiB);
	/* Up to the budget exactly, through MEM_COMMIT in a reservation. */
	assert_ptr_equal(alloc_ok(mm, r, 256 * KiB, MEM_COMMIT, eTaskCritical), r);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 100);
	assert_int_equal(avail, 0);
	/* Not one page more, and the refused pages stay reserved. */
	alloc_fails(mm, at(r, 256 * KiB), 64 * KiB, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	alloc_fails(mm, at(r, 256 * KiB), page, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	assert_int_equal(state_of(mm, at(r, 256 * KiB)), MEM_RESERVE);
	/* At the budget: committing committed pages again, or reserving, needs nothing new. */
	assert_ptr_equal(alloc_ok(mm, r, 256 * KiB, MEM_COMMIT, eTaskCritical), r);
	r2 = alloc_ok(mm, NULL, 64 * KiB, MEM_RESERVE, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 0);

	release(mm, r2);
	release(mm, r);
	assert_int_equal(available(mm, 1 * MiB), 256 * KiB);
	release(mm, a);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);
	release_last(mm);
}

/*
 * eAppDomainCritical and eProcessCritical (*state) go on into the emergency
 * reserve and fail beyond it; eTaskCritical never uses it. Over the budget,
 * requests that commit nothing new still succeed at every level.
 */
static void test_commit_reserve(void **state)
{
	const int level = *(const int *)*state;
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *a, *r;
	DWORD load;
	SIZE_T avail;

	o.commit_budget = 512 * KiB;
	o.emergency_reserve = 256 * KiB;
	mm = create_ok(&o);
	a = alloc_ok(mm, NULL, 1 * MiB, MEM_RESERVE, eTaskCritical);

	alloc_ok(mm, a, 512 * KiB, MEM_COMMIT, eTaskCritical);
	alloc_fails(mm, at(a, 512 * KiB), 64 * KiB, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	/* Into the reserve, up to its end exactly. */
	alloc_ok(mm, at(a, 512 * KiB), 128 * KiB, MEM_COMMIT, level);
	alloc_ok(mm, at(a, 640 * KiB), 128 * KiB, MEM_COMMIT, level);
	alloc_fails(mm, at(a, 768 * KiB), 64 * KiB, MEM_COMMIT, level, E_OUTOFMEMORY);
	alloc_fails(mm, at(a, 768 * KiB), page, MEM_COMMIT, eProcessCritical, E_OUTOFMEMORY);
	alloc_fails(mm, at(a, 768 * KiB), page, MEM_COMMIT, eAppDomainCritical, E_OUTOFMEMORY);
	alloc_fails(mm, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, level, E_OUTOFMEMORY);
	assert_int_equal(state_of(mm, at(a, 768 * KiB)), MEM_RESERVE);
	/* Over the budget the load stays at 100 with nothing available. */
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 100);
	assert_int_equal(avail, 0);

	/* Nothing new to commit: allowed even for eTaskCritical, even in the reserve. */
	r = alloc_ok(mm, NULL, 64 * KiB, MEM_RESERVE, eTaskCritical);
	assert_ptr_equal(alloc_ok(mm, a, 64 * KiB, MEM_COMMIT, eTaskCritical), a);
	assert_ptr_equal(alloc_ok(mm, at(a, 640 * KiB), 64 * KiB, MEM_COMMIT, eTaskCritical),
			 at(a, 640 * KiB));
	release(mm, r);

	/* Decommitting gives back the reserve first: at the budget, still nothing left. */
	decommit(mm, at(a, 512 * KiB), 256 * KiB);
	assert_int_equal(available(mm, 512 * KiB), 0);
	alloc_fails(mm, at(a, 512 * KiB), 64 * KiB, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	decommit(mm, at(a, 448 * KiB), 64 * KiB);
	assert_int_equal(available(mm, 512 * KiB), 64 * KiB);
	alloc_ok(mm, at(a, 448 * KiB), 64 * KiB, MEM_COMMIT, eTaskCritical);
	assert_int_equal(available(mm, 512 * KiB), 0);
	/* One request from under the budget into the reserve. */
	decommit(mm, at(a, 384 * KiB), 128 * KiB);
	alloc_ok(mm, at(a, 384 * KiB), 384 * KiB, MEM_COMMIT, level);
	alloc_fails(mm, at(a, 768 * KiB), page, MEM_COMMIT, level, E_OUTOFMEMORY);

	release(mm, a);
	assert_int_equal(available(mm, 512 * KiB), 512 * KiB);
	release_last(mm);
}

/* Without a reserve, no level gets past the budget. */
static void test_commit_no_reserve(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *a;

	(void)state;
	o.commit_budget = 256 * KiB;
	mm = create_ok(&o);
	a = alloc_ok(mm, NULL, 512 * KiB, MEM_RESERVE, eTaskCritical);
	alloc_ok(mm, a, 256 * KiB, MEM_COMMIT, eProcessCritical);
	alloc_fails(mm, at(a, 256 * KiB), page, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	alloc_fails(mm, at(a, 256 * KiB), page, MEM_COMMIT, eAppDomainCritical, E_OUTOFMEMORY);
	alloc_fails(mm, at(a, 256 * KiB), page, MEM_COMMIT, eProcessCritical, E_OUTOFMEMORY);
	release(mm, a);
	assert_int_equal(available(mm, 256 * KiB), 256 * KiB);
	release_last(mm);
}

/* ---------- Heaps ---------- */

static void *heap_alloc_ok(IHostMalloc *heap, SIZE_T size, int level)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;

	assert_hr(S_OK, IHostMalloc_Alloc(heap, size, (EMemoryCriticalLevel)level, &p));
	assert_non_null(p);
	return p;
}

static void heap_alloc_fails(IHostMalloc *heap, SIZE_T size, int level)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;

	assert_hr(E_OUTOFMEMORY, IHostMalloc_Alloc(heap, size, (EMemoryCriticalLevel)level, &p));
	assert_null(p);
}

/* Small blocks are charged a 64 KiB span at a time, with the budget's levels. */
static void test_heap_spans_charged(void **state)
{
	clrmemtrace_options o = policy_options();
	static char file[] = "test-budget.c";
	IHostMemoryManager *mm;
	IHostMalloc *heap = NULL;
	void *blocks[110], *p;
	unsigned n = 0, i;

	(void)state;
	o.commit_budget = 2 * SPAN;
	o.emergency_reserve = SPAN;
	mm = create_ok(&o);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	/* A heap takes nothing until its first block. */
	assert_int_equal(available(mm, 2 * SPAN), 2 * SPAN);

	blocks[n++] = heap_alloc_ok(heap, 16, eTaskCritical);
	assert_int_equal(available(mm, 2 * SPAN), SPAN);
	/* The same span holds many more blocks of its class. */
	for (i = 0; i < 100; i++) {
		blocks[n++] = heap_alloc_ok(heap, 16, eTaskCritical);
	}
	assert_int_equal(available(mm, 2 * SPAN), SPAN);
	/* Another size class needs a span of its own: the budget is used up. */
	blocks[n++] = heap_alloc_ok(heap, 1000, eTaskCritical);
	assert_int_equal(available(mm, 2 * SPAN), 0);

	heap_alloc_fails(heap, 4000, eTaskCritical);
	p = (void *)(uintptr_t)0xdeadbeef;
	assert_hr(E_OUTOFMEMORY, IHostMalloc_DebugAlloc(heap, 4000, eTaskCritical, file, __LINE__,
							&p));
	assert_null(p);
	/* The reserve serves one more span, then nothing. */
	blocks[n++] = heap_alloc_ok(heap, 4000, eAppDomainCritical);
	heap_alloc_fails(heap, 8000, eProcessCritical);
	/* VirtualAlloc and the heaps share the budget. */
	alloc_fails(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, eProcessCritical, E_OUTOFMEMORY);
	/* Blocks in spans the heap already has still come. */
	blocks[n++] = heap_alloc_ok(heap, 16, eTaskCritical);
	blocks[n++] = heap_alloc_ok(heap, 1000, eTaskCritical);

	for (i = 0; i < n; i++) {
		assert_hr(S_OK, IHostMalloc_Free(heap, blocks[i]));
	}
	/* Releasing the heap gives all its memory back to the budget. */
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(available(mm, 2 * SPAN), 2 * SPAN);
	release_last(mm);
}

/* A large block is charged its own mapping, and given back when it is freed. */
static void test_heap_large_blocks_charged(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	IHostMalloc *heap = NULL;
	void *p;

	(void)state;
	o.commit_budget = 1 * MiB;
	mm = create_ok(&o);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, 0, &heap));

	p = heap_alloc_ok(heap, 300000, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB - large_charge(300000));
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);

	/* A block whose mapping is the budget exactly, and one a byte larger. */
	p = heap_alloc_ok(heap, 1 * MiB - LARGE_HEADER, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 0);
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	heap_alloc_fails(heap, 1 * MiB - LARGE_HEADER + 1, eTaskCritical);
	heap_alloc_fails(heap, 2 * MiB, eProcessCritical);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);

	assert_int_equal(IHostMalloc_Release(heap), 0);
	release_last(mm);
}

/* ---------- Accounting as memory goes back ---------- */

static void test_accounting_decommit_release(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *a, *b;

	(void)state;
	o.commit_budget = 1 * MiB;
	o.address_space_budget = 4 * MiB;
	mm = create_ok(&o);

	a = alloc_ok(mm, NULL, 1 * MiB, MEM_RESERVE, eTaskCritical);
	assert_int_equal(room(mm, 4 * MiB), 3 * MiB);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);
	alloc_ok(mm, a, 512 * KiB, MEM_COMMIT, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 512 * KiB);
	/* Committing takes no address space: the reservation already has it. */
	assert_int_equal(room(mm, 4 * MiB), 3 * MiB);

	decommit(mm, at(a, 128 * KiB), 128 * KiB);
	assert_int_equal(available(mm, 1 * MiB), 640 * KiB);
	/* Decommitting decommitted pages gives nothing back twice. */
	decommit(mm, at(a, 128 * KiB), 128 * KiB);
	assert_int_equal(available(mm, 1 * MiB), 640 * KiB);
	/* A range half committed gives back only its committed half. */
	decommit(mm, at(a, 64 * KiB), 128 * KiB);
	assert_int_equal(available(mm, 1 * MiB), 704 * KiB);
	/* Single pages count exactly. */
	alloc_ok(mm, at(a, 128 * KiB), page, MEM_COMMIT, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 704 * KiB - page);
	decommit(mm, at(a, 128 * KiB), page);
	assert_int_equal(available(mm, 1 * MiB), 704 * KiB);
	assert_int_equal(room(mm, 4 * MiB), 3 * MiB);

	/* Releasing a reservation gives back its commits and its address space. */
	release(mm, a);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);
	assert_int_equal(room(mm, 4 * MiB), 4 * MiB);

	b = alloc_ok(mm, NULL, 768 * KiB, MEM_RESERVE | MEM_COMMIT, eTaskCritical);
	assert_int_equal(available(mm, 1 * MiB), 256 * KiB);
	assert_int_equal(room(mm, 4 * MiB), 4 * MiB - 768 * KiB);
	decommit(mm, b, 768 * KiB);
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);
	assert_int_equal(room(mm, 4 * MiB), 4 * MiB - 768 * KiB);
	release(mm, b);
	assert_int_equal(room(mm, 4 * MiB), 4 * MiB);
	release_last(mm);
}

/* ---------- The address-space budget ---------- */

static void test_address_space_budget(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	IHostMalloc *heap = NULL;
	char *a, *b;
	void *p;

	(void)state;
	o.address_space_budget = 1 * MiB;
	o.emergency_reserve = 128 * KiB;
	mm = create_ok(&o);
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);

	a = alloc_ok(mm, NULL, 1 * MiB, MEM_RESERVE, eTaskCritical);
	assert_int_equal(room(mm, 1 * MiB), 0);
	alloc_fails(mm, NULL, 64 * KiB, MEM_RESERVE, eTaskCritical, E_OUTOFMEMORY);
	alloc_fails(mm, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, page));
	/* No commit budget: commits are free, and take no address space. */
	assert_ptr_equal(alloc_ok(mm, a, 1 * MiB, MEM_COMMIT, eTaskCritical), a);
	/* Critical reservations may use the reserve, and no more. */
	b = alloc_ok(mm, NULL, 128 * KiB, MEM_RESERVE, eProcessCritical);
	alloc_fails(mm, NULL, 64 * KiB, MEM_RESERVE, eAppDomainCritical, E_OUTOFMEMORY);
	release(mm, b);
	b = alloc_ok(mm, NULL, 64 * KiB, MEM_RESERVE, eAppDomainCritical);
	release(mm, b);
	release(mm, a);
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);

	/* Heap memory is address space too. */
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	p = heap_alloc_ok(heap, 16, eTaskCritical);
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB - SPAN);
	heap_alloc_fails(heap, 1 * MiB, eTaskCritical);
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);
	release_last(mm);
}

/* NeedsVirtualAddressSpace asks; Acquired/Released account what the runtime took itself. */
static void test_needs_acquired_released(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *r;
	/* Ranges the "runtime" mapped itself: the manager only keeps account of them. */
	void *v1 = (void *)(uintptr_t)0x7e0000000000ull, *v2 = (void *)(uintptr_t)0x7e0010000000ull;
	void *v3 = (void *)(uintptr_t)0x7e0020000000ull;

	(void)state;
	o.address_space_budget = 1 * MiB;
	o.commit_budget = 1 * MiB;
	mm = create_ok(&o);

	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 1 * MiB));
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 1 * MiB + 1));
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, v1, 1 * MiB));
	/* Asking charges nothing. */
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, v1, 1 * MiB));
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);
	/* Ranges that are no ranges. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_NeedsVirtualAddressSpace(mm, v1, 0));
	assert_hr(E_INVALIDARG, IHostMemoryManager_NeedsVirtualAddressSpace(
					 mm, (void *)(UINTPTR_MAX - page + 1), 2 * page));

	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v1, 512 * KiB));
	assert_int_equal(room(mm, 1 * MiB), 512 * KiB);
	/* It counts against reservations too... */
	alloc_fails(mm, NULL, 576 * KiB, MEM_RESERVE, eTaskCritical, E_OUTOFMEMORY);
	r = alloc_ok(mm, NULL, 512 * KiB, MEM_RESERVE, eTaskCritical);
	assert_int_equal(room(mm, 1 * MiB), 0);
	/* ...but not against the commit budget. */
	assert_int_equal(available(mm, 1 * MiB), 1 * MiB);
	/* Already taken: accounted even beyond the budget (Needs is where it is refused). */
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v2, 256 * KiB));
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, page));
	/* A start already acquired, and ranges that are no ranges, change nothing. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v1, 64 * KiB));
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, NULL, 64 * KiB));
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v3, 0));

	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v2));
	assert_int_equal(room(mm, 1 * MiB), 0);
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v1));
	assert_int_equal(room(mm, 1 * MiB), 512 * KiB);
	/* Released twice, never acquired, or NULL: refused, nothing changes. */
	assert_hr(HOST_E_INVALIDOPERATION, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v1));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v3));
	assert_hr(E_INVALIDARG, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, NULL));
	assert_int_equal(room(mm, 1 * MiB), 512 * KiB);

	release(mm, r);
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);
	/* A released start may be acquired again. */
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v1, 1 * MiB));
	assert_int_equal(room(mm, 1 * MiB), 0);
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v1));
	assert_int_equal(room(mm, 1 * MiB), 1 * MiB);
	release_last(mm);
}

/* Without an address-space budget nothing is refused, and acquired ranges are still tracked. */
static void test_needs_without_budget(void **state)
{
	IHostMemoryManager *mm;
	void *v1 = (void *)(uintptr_t)0x7e0000000000ull;

	(void)state;
	mm = create_ok(NULL);
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, (SIZE_T)1 << 46));
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, v1, (SIZE_T)1 << 40));
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, (SIZE_T)1 << 46));
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v1));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, v1));
	release_last(mm);
}

/* ---------- GetMemoryLoad ---------- */

static void test_memory_load_with_budget(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	DWORD load = 0xdeadbeef;
	SIZE_T avail = (SIZE_T)0xdeadbeef;
	char *a;

	(void)state;
	o.commit_budget = 1 * MiB;
	o.emergency_reserve = 1 * MiB;
	mm = create_ok(&o);
	a = alloc_ok(mm, NULL, 2 * MiB, MEM_RESERVE, eTaskCritical);

	memory_load(mm, &load, &avail);
	assert_int_equal(load, 0);
	assert_int_equal(avail, 1 * MiB);
	alloc_ok(mm, a, 256 * KiB, MEM_COMMIT, eTaskCritical);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 25);
	assert_int_equal(avail, 768 * KiB);
	/* 62.5 %: the load is rounded down. */
	alloc_ok(mm, at(a, 256 * KiB), 384 * KiB, MEM_COMMIT, eTaskCritical);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 62);
	assert_int_equal(avail, 384 * KiB);
	alloc_ok(mm, at(a, 640 * KiB), 384 * KiB, MEM_COMMIT, eTaskCritical);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 100);
	assert_int_equal(avail, 0);
	/* In the reserve: still 100 with nothing available, never more. */
	alloc_ok(mm, at(a, 1 * MiB), 512 * KiB, MEM_COMMIT, eProcessCritical);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 100);
	assert_int_equal(avail, 0);

	/* Out-pointers are checked, and both cleared on failure. */
	load = 0xdeadbeef;
	avail = (SIZE_T)0xdeadbeef;
	assert_hr(E_POINTER, IHostMemoryManager_GetMemoryLoad(mm, NULL, &avail));
	assert_int_equal(avail, 0);
	assert_hr(E_POINTER, IHostMemoryManager_GetMemoryLoad(mm, &load, NULL));
	assert_int_equal(load, 0);

	release(mm, a);
	memory_load(mm, &load, &avail);
	assert_int_equal(load, 0);
	assert_int_equal(avail, 1 * MiB);
	release_last(mm);
}

static uint64_t meminfo_kib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long long v = 0;
	size_t n = strlen(key);

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			sscanf(line + n + 1, "%llu", &v);
			break;
		}
	}
	fclose(f);
	return v;
}

/* Without a commit budget the load is the system's, an address-space budget or not. */
static void test_memory_load_without_budget(void **state)
{
	clrmemtrace_options o = policy_options();
	uint64_t total = meminfo_kib("MemTotal") * 1024;
	IHostMemoryManager *mm;
	DWORD load = 0xdeadbeef;
	SIZE_T avail = 0;

	(void)state;
	o.address_space_budget = 1 * MiB;
	mm = create_ok(&o);
	memory_load(mm, &load, &avail);
	assert_in_range(load, 0, 100);
	assert_true(avail > 0);
	/* Not the address-space budget's figures: what the machine (or its cgroup) has. */
	assert_true(avail <= total);
	assert_true(avail > 1 * MiB);
	release_last(mm);
}

/* ---------- Options ---------- */

static void test_options_thresholds_checked(void **state)
{
	static const struct {
		uint32_t low, high, hysteresis;
		HRESULT hr;
	} cases[] = {
		{ 101, 0, 0, E_INVALIDARG },  /* low over 100 */
		{ 50, 60, 0, E_INVALIDARG },  /* high above low */
		{ 50, 50, 0, E_INVALIDARG },  /* high equal to low */
		{ 0, 95, 0, E_INVALIDARG },   /* high above the default low (90) */
		{ 0, 0, 51, E_INVALIDARG },   /* hysteresis over 50 */
		{ 100, 99, 50, S_OK },
		{ 50, 1, 0, S_OK },
		{ 0, 0, 0, S_OK },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clrmemtrace_options o = policy_options();
		IHostMemoryManager *mm = (IHostMemoryManager *)(uintptr_t)0xdeadbeef;

		o.low_memory_percent = cases[i].low;
		o.high_memory_percent = cases[i].high;
		o.hysteresis_percent = cases[i].hysteresis;
		assert_hr(cases[i].hr, clrmemtrace_create(&o, &mm));
		if (cases[i].hr == S_OK) {
			release_last(mm);
		} else {
			assert_null(mm);
		}
	}
}

/* ---------- The environment ---------- */

static void test_env_budgets(void **state)
{
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *mm;
	char *a;

	(void)state;
	/* Each budget from its variable, with options left at 0. */
	setenv("CLRMEMTRACE_COMMIT_BUDGET", "512K", 1);
	setenv("CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "2M", 1);
	setenv("CLRMEMTRACE_EMERGENCY_RESERVE", "128K", 1);
	mm = create_ok(NULL);
	policy_env_clear(NULL);
	assert_int_equal(available(mm, 512 * KiB), 512 * KiB);
	assert_int_equal(room(mm, 2 * MiB), 2 * MiB);
	a = alloc_ok(mm, NULL, 1 * MiB, MEM_RESERVE, eTaskCritical);
	alloc_ok(mm, a, 512 * KiB, MEM_COMMIT, eTaskCritical);
	alloc_fails(mm, at(a, 512 * KiB), page, MEM_COMMIT, eTaskCritical, E_OUTOFMEMORY);
	alloc_ok(mm, at(a, 512 * KiB), 128 * KiB, MEM_COMMIT, eProcessCritical);
	alloc_fails(mm, at(a, 640 * KiB), page, MEM_COMMIT, eProcessCritical, E_OUTOFMEMORY);
	release(mm, a);
	release_last(mm);

	/* A field the options set wins over its variable; the others still come from theirs. */
	setenv("CLRMEMTRACE_COMMIT_BUDGET", "1M", 1);
	setenv("CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "3M", 1);
	o.commit_budget = 2 * MiB;
	mm = create_ok(&o);
	policy_env_clear(NULL);
	assert_int_equal(available(mm, 2 * MiB), 2 * MiB);
	assert_int_equal(room(mm, 3 * MiB), 3 * MiB);
	release_last(mm);

	/* The environment is read when a manager is made, not later. */
	mm = create_ok(NULL);
	setenv("CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "64K", 1);
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 1 * MiB));
	policy_env_clear(NULL);
	release_last(mm);
}

/* Sizes: decimal bytes, with K, M, G or T (powers of 1024), optionally followed by B. */
static void test_env_size_syntax(void **state)
{
	static const struct {
		const char *text;
		uint64_t bytes;
	} cases[] = {
		{ "1048576", 1 * MiB }, { "1024k", 1 * MiB }, { "1024K", 1 * MiB },
		{ "1m", 1 * MiB },      { "1M", 1 * MiB },    { "1MB", 1 * MiB },
		{ "1mb", 1 * MiB },     { "3G", 3072 * MiB }, { "2T", 2048 * 1024 * MiB },
		{ "4096", 4096 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		IHostMemoryManager *mm;

		setenv("CLRMEMTRACE_COMMIT_BUDGET", cases[i].text, 1);
		mm = create_ok(NULL);
		if (available(mm, cases[i].bytes) != cases[i].bytes) {
			fail_msg("CLRMEMTRACE_COMMIT_BUDGET=%s is not %" PRIu64 " bytes",
				 cases[i].text, cases[i].bytes);
		}
		release_last(mm);
	}
	/* An empty variable is no variable. */
	setenv("CLRMEMTRACE_COMMIT_BUDGET", "", 1);
	setenv("CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "", 1);
	{
		IHostMemoryManager *mm = create_ok(NULL);

		assert_hr(S_OK,
			  IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, (SIZE_T)1 << 46));
		release_last(mm);
	}
	policy_env_clear(NULL);
}

/* A value that cannot be understood fails the manager instead of running without it. */
static void test_env_invalid(void **state)
{
	static const struct {
		const char *name, *value;
	} cases[] = {
		{ "CLRMEMTRACE_COMMIT_BUDGET", "abc" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "-1" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "1X" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "1MiB" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "1M " },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "12.5M" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "1KK" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "K" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "0x100000" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "99999999999999999999" },
		{ "CLRMEMTRACE_COMMIT_BUDGET", "17179869184G" },
		{ "CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "2Q" },
		{ "CLRMEMTRACE_ADDRESS_SPACE_BUDGET", "lots" },
		{ "CLRMEMTRACE_EMERGENCY_RESERVE", "-5" },
		{ "CLRMEMTRACE_EMERGENCY_RESERVE", "64KiB" },
		{ "CLRMEMTRACE_LOW_MEMORY_PERCENT", "101" },
		{ "CLRMEMTRACE_LOW_MEMORY_PERCENT", "10K" },
		{ "CLRMEMTRACE_LOW_MEMORY_PERCENT", "50%" },
		{ "CLRMEMTRACE_HIGH_MEMORY_PERCENT", "-1" },
		{ "CLRMEMTRACE_HIGH_MEMORY_PERCENT", "95" }, /* above the default low, 90 */
		{ "CLRMEMTRACE_HYSTERESIS_PERCENT", "51" },
		{ "CLRMEMTRACE_POLL_MS", "3600001" },
		{ "CLRMEMTRACE_POLL_MS", "1s" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		IHostMemoryManager *mm = (IHostMemoryManager *)(uintptr_t)0xdeadbeef;
		HRESULT hr;

		setenv(cases[i].name, cases[i].value, 1);
		hr = clrmemtrace_create(NULL, &mm);
		unsetenv(cases[i].name);
		if (hr != E_INVALIDARG) {
			fail_msg("%s=\"%s\": clrmemtrace_create returned %s, expected E_INVALIDARG",
				 cases[i].name, cases[i].value, clrmemtrace_hresult_name(hr));
		}
		assert_null(mm);
	}
	/* Thresholds that contradict each other, from variables and options together. */
	setenv("CLRMEMTRACE_LOW_MEMORY_PERCENT", "50", 1);
	setenv("CLRMEMTRACE_HIGH_MEMORY_PERCENT", "60", 1);
	{
		IHostMemoryManager *mm = NULL;
		clrmemtrace_options o = policy_options();

		assert_hr(E_INVALIDARG, clrmemtrace_create(NULL, &mm));
		assert_null(mm);
		o.high_memory_percent = 40;
		mm = create_ok(&o);
		release_last(mm);
		o.high_memory_percent = 0;
		o.low_memory_percent = 70;
		mm = create_ok(&o);
		release_last(mm);
	}
	policy_env_clear(NULL);
	/* Good values of every threshold. */
	setenv("CLRMEMTRACE_LOW_MEMORY_PERCENT", "100", 1);
	setenv("CLRMEMTRACE_HIGH_MEMORY_PERCENT", "0", 1);
	setenv("CLRMEMTRACE_HYSTERESIS_PERCENT", "50", 1);
	setenv("CLRMEMTRACE_POLL_MS", "3600000", 1);
	{
		IHostMemoryManager *mm = create_ok(NULL);

		release_last(mm);
	}
	policy_env_clear(NULL);
}

/*
 * An unchanged host binary configured from outside: this program run again
 * (ENV_CHILD) with a budget in its environment and nothing in its options.
 */
#define ENV_CHILD "--env-child"

static int env_child(void)
{
	IHostMemoryManager *mm = NULL;
	DWORD load = 0;
	SIZE_T avail = 0;
	void *r = NULL, *p = NULL;
	HRESULT hr = clrmemtrace_create(NULL, &mm);

	printf("create=%s\n", clrmemtrace_hresult_name(hr));
	if (hr != S_OK) {
		return 0;
	}
	hr = IHostMemoryManager_GetMemoryLoad(mm, &load, &avail);
	printf("load=%s %u %zu\n", clrmemtrace_hresult_name(hr), (unsigned)load, (size_t)avail);
	hr = IHostMemoryManager_VirtualAlloc(mm, NULL, 4 * MiB, MEM_RESERVE, PAGE_READWRITE,
					     eTaskCritical, &r);
	printf("reserve=%s\n", clrmemtrace_hresult_name(hr));
	if (hr == S_OK) {
		hr = IHostMemoryManager_VirtualAlloc(mm, r, 3 * MiB, MEM_COMMIT, PAGE_READWRITE,
						     eTaskCritical, &p);
		printf("commit=%s\n", clrmemtrace_hresult_name(hr));
		hr = IHostMemoryManager_VirtualAlloc(mm, (char *)r + 3 * MiB, 64 * KiB, MEM_COMMIT,
						     PAGE_READWRITE, eTaskCritical, &p);
		printf("task=%s\n", clrmemtrace_hresult_name(hr));
		hr = IHostMemoryManager_VirtualAlloc(mm, (char *)r + 3 * MiB, 64 * KiB, MEM_COMMIT,
						     PAGE_READWRITE, eProcessCritical, &p);
		printf("process=%s\n", clrmemtrace_hresult_name(hr));
		IHostMemoryManager_VirtualFree(mm, r, 0, MEM_RELEASE);
	}
	IHostMemoryManager_Release(mm);
	fflush(stdout);
	return 0;
}

/* Runs this program with ENV_CHILD and `extra` added to the environment; its output. */
static void run_env_child(const char *const *extra, char *out, size_t len)
{
	extern char **environ;
	char *argv[] = { NULL, (char *)ENV_CHILD, NULL };
	char exe[4096], *envp[256];
	size_t n = 0, got = 0, i;
	int fds[2], status = 0;
	ssize_t r;
	pid_t pid;

	r = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(r > 0);
	exe[r] = '\0';
	argv[0] = exe;
	for (i = 0; environ[i] && n < 200; i++) {
		envp[n++] = environ[i];
	}
	for (i = 0; extra[i]; i++) {
		envp[n++] = (char *)extra[i];
	}
	envp[n] = NULL;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execve(exe, argv, envp);
		_exit(127);
	}
	close(fds[1]);
	while (got + 1 < len && (r = read(fds[0], out + got, len - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR) {
			continue;
		}
		assert_true(r > 0);
		got += (size_t)r;
	}
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail_msg("the child exited with status %#x:\n%s", status, out);
	}
}

static void expect_line(const char *out, const char *line)
{
	if (!strstr(out, line)) {
		fail_msg("expected \"%s\" in the child's output:\n%s", line, out);
	}
}

static void test_env_configures_unchanged_binary(void **state)
{
	static const char *const good[] = { "CLRMEMTRACE_COMMIT_BUDGET=3M",
					     "CLRMEMTRACE_EMERGENCY_RESERVE=64K", NULL };
	static const char *const bad[] = { "CLRMEMTRACE_COMMIT_BUDGET=3Q", "CLRMEMTRACE_DEBUG=1",
					    NULL };
	char out[8192], want[128];

	(void)state;
	run_env_child(good, out, sizeof(out));
	expect_line(out, "create=S_OK\n");
	snprintf(want, sizeof(want), "load=S_OK 0 %zu\n", (size_t)(3 * MiB));
	expect_line(out, want);
	expect_line(out, "reserve=S_OK\n");
	expect_line(out, "commit=S_OK\n");
	expect_line(out, "task=E_OUTOFMEMORY\n");
	expect_line(out, "process=S_OK\n");

	run_env_child(bad, out, sizeof(out));
	expect_line(out, "create=E_INVALIDARG\n");
	/* CLRMEMTRACE_DEBUG names the culprit. */
	expect_line(out, "CLRMEMTRACE_COMMIT_BUDGET");
}

static const int level_app_domain = eAppDomainCritical;
static const int level_process = eProcessCritical;

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_budget_task_critical),
		cmocka_unit_test_prestate(test_commit_reserve, (void *)&level_app_domain),
		cmocka_unit_test_prestate(test_commit_reserve, (void *)&level_process),
		cmocka_unit_test(test_commit_no_reserve),
		cmocka_unit_test(test_heap_spans_charged),
		cmocka_unit_test(test_heap_large_blocks_charged),
		cmocka_unit_test(test_accounting_decommit_release),
		cmocka_unit_test(test_address_space_budget),
		cmocka_unit_test(test_needs_acquired_released),
		cmocka_unit_test(test_needs_without_budget),
		cmocka_unit_test(test_memory_load_with_budget),
		cmocka_unit_test(test_memory_load_without_budget),
		cmocka_unit_test(test_options_thresholds_checked),
		cmocka_unit_test_teardown(test_env_budgets, policy_env_clear),
		cmocka_unit_test_teardown(test_env_size_syntax, policy_env_clear),
		cmocka_unit_test_teardown(test_env_invalid, policy_env_clear),
		cmocka_unit_test(test_env_configures_unchanged_binary),
	};
	int rc;

	if (argc > 1 && strcmp(argv[1], ENV_CHILD) == 0) {
		page = (size_t)sysconf(_SC_PAGESIZE);
		return env_child();
	}
	policy_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
#if defined(POLICY_HAVE_URCU_BP)
	/* The library's deferred frees, so LeakSanitizer sees only real leaks. */
	urcu_bp_barrier();
#endif
	return rc;
}
