/* SPDX-License-Identifier: MIT */
/*
 * The virtual-memory backend on Windows: every call goes to the real
 * VirtualAlloc, VirtualFree, VirtualProtect and VirtualQuery, which are the
 * reference the POSIX backend reproduces; nothing is emulated. Errors are
 * the GetLastError() of the failing call.
 *
 * What this file adds is the manager's side of the vm.h contract:
 *
 * - The reservations made through the manager are remembered (a sorted
 *   array, under the writer lock), as the decorator does in vmwrap.c, so
 *   state dumps can read their runs back with VirtualQuery, and so the
 *   manager refuses, with ERROR_INVALID_ADDRESS as the POSIX backend does,
 *   to commit, protect or free memory someone else allocated.
 * - Policy charges: the bytes a commit adds are counted with VirtualQuery
 *   before the call, charged, and given back if the call fails; decommits
 *   and releases uncharge what they took away.
 * - Sequence numbers and statistics, as in the POSIX backend.
 *
 * A request at an address that is not the manager's is still forwarded
 * when the address is free: the OS then fails it with its own error code
 * (nothing is there to change), which keeps the error precedence Windows'
 * own. Memory another thread maps there between the check and the call
 * could then be affected, but only a caller freeing or committing memory
 * it does not own can get there.
 *
 * VirtualQuery takes no lock: the OS answers for the whole process and
 * never waits on a writer.
 */
#include "vm.h"

#include "os_win32.h"
#include "policy.h"

#include <stdlib.h>
#include <string.h>

struct resv {
	uintptr_t base; /* the allocation base */
	uintptr_t end;  /* page-aligned */
};

struct vm {
	SRWLOCK lock;
	uint64_t seq; /* state changes so far; written under lock, read without */
	struct vm_stats stats;
	struct policy *policy; /* may be NULL */
	struct resv *resv;     /* sorted by base; under lock */
	size_t count, capacity;
};

/* ---------- Helpers ---------- */

static void bump_seq(struct vm *vm)
{
	__atomic_store_n(&vm->seq, vm->seq + 1, __ATOMIC_RELEASE);
}

static int charge(struct vm *vm, uint64_t commit, uint64_t reserve, int level)
{
	return vm->policy ? clrmemtrace__policy_charge(vm->policy, commit, reserve, level) : 0;
}

static void uncharge(struct vm *vm, uint64_t commit, uint64_t reserve)
{
	if (vm->policy && (commit || reserve)) {
		clrmemtrace__policy_uncharge(vm->policy, commit, reserve);
	}
}

/* Accounts memory the OS has handed out already: never refused, even beyond a budget. */
static void account(struct vm *vm, uint64_t commit, uint64_t reserve)
{
	if (vm->policy) {
		__atomic_add_fetch(&vm->policy->committed, commit, __ATOMIC_RELAXED);
		__atomic_add_fetch(&vm->policy->reserved, reserve, __ATOMIC_RELAXED);
	}
}

static bool os_query(uintptr_t addr, MEMORY_BASIC_INFORMATION *m)
{
	return VirtualQuery((LPCVOID)addr, m, sizeof(*m)) == sizeof(*m);
}

/*
 * Whether addr is free address space (or cannot be queried at all): a call
 * there fails in the OS by itself and changes nothing.
 */
static bool os_free_at(uintptr_t addr)
{
	MEMORY_BASIC_INFORMATION m;

	return !os_query(addr, &m) || m.State == MEM_FREE;
}

/* Committed bytes of [base, end), which lies in the reservation at allocation_base. */
static uint64_t committed_in(uintptr_t allocation_base, uintptr_t base, uintptr_t end)
{
	uint64_t bytes = 0;
	uintptr_t a = base;

	while (a < end) {
		MEMORY_BASIC_INFORMATION m;
		uintptr_t run_end;

		if (!os_query(a, &m) || (uintptr_t)m.AllocationBase != allocation_base ||
		    m.State == MEM_FREE || m.RegionSize == 0) {
			break;
		}
		run_end = (uintptr_t)m.BaseAddress + m.RegionSize;
		if (run_end > end) {
			run_end = end;
		}
		if (m.State == MEM_COMMIT) {
			bytes += run_end - a;
		}
		a = run_end;
	}
	return bytes;
}

/* ---------- The reservations made through the manager (lock held) ---------- */

/* The index of the first reservation whose end is above addr. */
static size_t resv_search(const struct vm *vm, uintptr_t addr)
{
	size_t lo = 0, hi = vm->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (vm->resv[mid].end <= addr) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

static struct resv *resv_find(struct vm *vm, uintptr_t addr)
{
	size_t i = resv_search(vm, addr);

	return i < vm->count && vm->resv[i].base <= addr ? &vm->resv[i] : NULL;
}

/* Room for one more; 0 or ERROR_NOT_ENOUGH_MEMORY. */
static int resv_reserve_slot(struct vm *vm)
{
	struct resv *n;
	size_t cap;

	if (vm->count < vm->capacity) {
		return 0;
	}
	cap = vm->capacity ? vm->capacity * 2 : 64;
	n = realloc(vm->resv, cap * sizeof(*n));
	if (!n) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	vm->resv = n;
	vm->capacity = cap;
	return 0;
}

/* Records the reservation at base (a slot is free: resv_reserve_slot). */
static void resv_insert(struct vm *vm, uintptr_t base, uintptr_t end)
{
	size_t i = resv_search(vm, base);

	memmove(&vm->resv[i + 1], &vm->resv[i], (vm->count - i) * sizeof(vm->resv[0]));
	vm->resv[i].base = base;
	vm->resv[i].end = end;
	vm->count++;
	vm->stats.regions++;
	vm->stats.reserved_bytes += end - base;
}

static void resv_remove(struct vm *vm, struct resv *r)
{
	size_t i = (size_t)(r - vm->resv);

	vm->stats.regions--;
	vm->stats.reserved_bytes -= r->end - r->base;
	memmove(&vm->resv[i], &vm->resv[i + 1], (vm->count - i - 1) * sizeof(vm->resv[0]));
	vm->count--;
}

/* The extent of the allocation holding addr, as the OS reports it; false if there is none. */
static bool os_allocation(uintptr_t addr, uintptr_t *base, uintptr_t *end)
{
	MEMORY_BASIC_INFORMATION m;
	uintptr_t a;

	if (!os_query(addr, &m) || m.State == MEM_FREE) {
		return false;
	}
	*base = (uintptr_t)m.AllocationBase;
	a = *base;
	while (os_query(a, &m) && m.State != MEM_FREE && (uintptr_t)m.AllocationBase == *base &&
	       m.RegionSize != 0) {
		a = (uintptr_t)m.BaseAddress + m.RegionSize;
	}
	*end = a;
	return true;
}

/* ---------- Lifetime ---------- */

int clrmemtrace__vm_create(struct policy *policy, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));

	if (!vm) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	InitializeSRWLock(&vm->lock);
	vm->policy = policy;
	*out = vm;
	return 0;
}

void clrmemtrace__vm_destroy(struct vm *vm)
{
	if (!vm) {
		return;
	}
	free(vm->resv);
	free(vm);
}

void clrmemtrace__vm_lock(struct vm *vm)
{
	AcquireSRWLockExclusive(&vm->lock);
}

void clrmemtrace__vm_unlock(struct vm *vm)
{
	ReleaseSRWLockExclusive(&vm->lock);
}

uint64_t clrmemtrace__vm_seq(struct vm *vm)
{
	return __atomic_load_n(&vm->seq, __ATOMIC_ACQUIRE);
}

void clrmemtrace__vm_stats(struct vm *vm, struct vm_stats *stats)
{
	*stats = vm->stats;
}

/* ---------- VirtualAlloc ---------- */

/*
 * The size of the reservation a MEM_RESERVE request makes, by Windows' rules
 * (explicit addresses round down to 64 KiB, sizes up to pages): what the
 * policy is charged before the call. 0 when the request is invalid anyway
 * (the OS refuses it before anything is charged for).
 */
static uint64_t reserve_size(uintptr_t addr, size_t size)
{
	uintptr_t base = addr & ~(CLRMEMTRACE_GRANULARITY - 1), end;

	if (size == 0 || size >= clrmemtrace__sys.user_limit || !page_end(addr, size, &end) ||
	    (addr && (base < clrmemtrace__sys.user_min || end > clrmemtrace__sys.user_limit))) {
		return 0;
	}
	return end - base;
}

/* A new reservation (MEM_RESERVE, or MEM_COMMIT at NULL). */
static int alloc_reserve(struct vm *vm, void *address, size_t size, uint32_t type,
			 uint32_t protect, int level, void **out)
{
	uint64_t reserve = reserve_size((uintptr_t)address, size);
	uint64_t commit = (type & MEM_COMMIT) ? reserve : 0, committed;
	uintptr_t base, end;
	void *p;
	int err;

	err = resv_reserve_slot(vm);
	if (err) {
		return err;
	}
	err = charge(vm, commit, reserve, level);
	if (err) {
		return err;
	}
	p = VirtualAlloc(address, size, type, protect);
	if (!p) {
		err = clrmemtrace__last_error();
		uncharge(vm, commit, reserve);
		return err;
	}
	if (!os_allocation((uintptr_t)p, &base, &end) || resv_find(vm, base)) {
		/* Not a new reservation after all (a flag combination the OS took differently). */
		uncharge(vm, commit, reserve);
		*out = p;
		bump_seq(vm);
		return 0;
	}
	resv_insert(vm, base, end);
	committed = committed_in(base, base, end);
	if (end - base != reserve || committed != commit) {
		/* Charged for what the OS really did, should it differ from the rules. */
		uncharge(vm, commit, reserve);
		account(vm, committed, end - base);
	}
	vm->stats.committed_bytes += committed;
	bump_seq(vm);
	*out = p;
	return 0;
}

/* MEM_COMMIT inside an existing reservation. */
static int alloc_commit(struct vm *vm, void *address, size_t size, uint32_t type,
			uint32_t protect, int level, void **out)
{
	uintptr_t addr = (uintptr_t)address, base = page_down(addr), end = base;
	struct resv *r = resv_find(vm, base);
	uint64_t before = 0, after, added = 0;
	void *p;
	int err;

	if (!r && !os_free_at(base)) {
		return ERROR_INVALID_ADDRESS; /* someone else's memory */
	}
	if (r && size && page_end(addr, size, &end) && end <= r->end) {
		before = committed_in(r->base, base, end);
		added = end - base - before;
	}
	err = charge(vm, added, 0, level);
	if (err) {
		return err;
	}
	p = VirtualAlloc(address, size, type, protect);
	if (!p) {
		err = clrmemtrace__last_error();
		uncharge(vm, added, 0);
		return err;
	}
	if (r && added) {
		after = committed_in(r->base, base, end);
		if (after - before != added) {
			uncharge(vm, added, 0);
			account(vm, after - before, 0);
		}
		vm->stats.committed_bytes += after - before;
	}
	bump_seq(vm);
	*out = p;
	return 0;
}

/* MEM_RESET (alone or not: the OS decides): the pages keep their state. */
static int alloc_reset(struct vm *vm, void *address, size_t size, uint32_t type,
		       uint32_t protect, void **out)
{
	uintptr_t base = page_down((uintptr_t)address);
	void *p;

	if (address && !resv_find(vm, base) && !os_free_at(base)) {
		return ERROR_INVALID_ADDRESS;
	}
	p = VirtualAlloc(address, size, type, protect);
	if (!p) {
		return clrmemtrace__last_error();
	}
	*out = p;
	return 0;
}

int clrmemtrace__vm_alloc(struct vm *vm, void *address, size_t size, uint32_t type,
			  uint32_t protect, int level, void **out)
{
	*out = NULL;
	if (type & MEM_RESET) {
		return alloc_reset(vm, address, size, type, protect, out);
	}
	if ((type & MEM_RESERVE) || !address) {
		return alloc_reserve(vm, address, size, type, protect, level, out);
	}
	return alloc_commit(vm, address, size, type, protect, level, out);
}

/* ---------- VirtualFree ---------- */

int clrmemtrace__vm_free(struct vm *vm, void *address, size_t size, uint32_t type)
{
	uintptr_t addr = (uintptr_t)address, base = page_down(addr), end, rbase, rend;
	struct resv *r = addr ? resv_find(vm, base) : NULL;
	uint64_t before, after, all;

	if (!r) {
		if (addr && !os_free_at(base)) {
			/*
			 * Someone else's memory: refused as the POSIX backend does, once
			 * the checks Windows makes before looking at the address pass.
			 */
			if (!free_type_valid(size, type)) {
				return ERROR_INVALID_PARAMETER; /* #27-#30 */
			}
			return ERROR_INVALID_ADDRESS;
		}
		/* Free address space: the OS reports the error. */
		if (!VirtualFree(address, size, type)) {
			return clrmemtrace__last_error();
		}
		return 0;
	}
	rbase = r->base;
	rend = r->end;
	if (!size || !page_end(addr, size, &end) || end > rend) {
		end = rend;
	}
	before = committed_in(rbase, base, end);
	all = (type & MEM_RELEASE) ? committed_in(rbase, rbase, rend) : before;
	if (!VirtualFree(address, size, type)) {
		return clrmemtrace__last_error();
	}
	if (type & MEM_RELEASE) {
		/*
		 * Released (a successful MEM_RELEASE frees the whole allocation;
		 * another thread may already have something new there).
		 */
		vm->stats.committed_bytes -= all;
		uncharge(vm, all, rend - rbase);
		resv_remove(vm, r);
	} else {
		after = committed_in(rbase, base, end);
		vm->stats.committed_bytes -= before - after;
		uncharge(vm, before - after, 0);
	}
	bump_seq(vm);
	return 0;
}

/* ---------- VirtualProtect ---------- */

int clrmemtrace__vm_protect(struct vm *vm, void *address, size_t size, uint32_t protect,
			    uint32_t *old_protect)
{
	uintptr_t base = page_down((uintptr_t)address);
	DWORD old = 0;

	*old_protect = 0;
	if (!resv_find(vm, base) && !os_free_at(base)) {
		return ERROR_INVALID_ADDRESS; /* someone else's memory */
	}
	if (!VirtualProtect(address, size, protect, &old)) {
		return clrmemtrace__last_error();
	}
	*old_protect = old;
	bump_seq(vm);
	return 0;
}

/* ---------- VirtualQuery ---------- */

int clrmemtrace__vm_query(struct vm *vm, const void *address, MEMORY_BASIC_INFORMATION *mbi,
			  uint64_t *seq_before, uint64_t *seq_after)
{
	int err = 0;

	*seq_before = __atomic_load_n(&vm->seq, __ATOMIC_ACQUIRE);
	if (VirtualQuery(address, mbi, sizeof(*mbi)) != sizeof(*mbi)) {
		err = clrmemtrace__last_error();
	}
	*seq_after = __atomic_load_n(&vm->seq, __ATOMIC_ACQUIRE);
	return err;
}

/* ---------- State dump ---------- */

int clrmemtrace__vm_foreach_run(struct vm *vm, vm_run_fn fn, void *ctx)
{
	size_t i;

	for (i = 0; i < vm->count; i++) {
		uintptr_t a = vm->resv[i].base, end = vm->resv[i].end;

		while (a < end) {
			MEMORY_BASIC_INFORMATION m;
			struct vm_run run;
			int ret;

			if (!os_query(a, &m) || m.State == MEM_FREE || m.RegionSize == 0 ||
			    (uintptr_t)m.AllocationBase != vm->resv[i].base) {
				break;
			}
			run.base = (uintptr_t)m.BaseAddress;
			run.allocation_base = (uintptr_t)m.AllocationBase;
			run.size = m.RegionSize;
			if (run.base + run.size > end) {
				run.size = end - run.base;
			}
			run.state = m.State;
			run.protect = m.Protect;
			run.allocation_protect = m.AllocationProtect;
			ret = fn(ctx, &run);
			if (ret) {
				return ret;
			}
			a = run.base + run.size;
		}
	}
	return 0;
}
