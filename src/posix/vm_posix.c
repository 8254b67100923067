/* SPDX-License-Identifier: MIT */
/*
 * The Win32 VirtualAlloc family on the mmap family, following Windows as
 * Wine's conformance tests pin it (../shared/docs/win32-vm-semantics.md, cited
 * below as "#n"), and Microsoft's documented contract where Wine is laxer.
 *
 * Bookkeeping follows Wine's two levels: one `struct region` per reservation
 * (Wine's file_view), found through the RCU granule map, and per reservation a
 * run array of page states (pagemap.h). A region carries two small run
 * buffers: a change is written into the one readers are not given and then
 * published, and a version counter bumped around each rewrite lets a reader
 * that was still on the older buffer notice and retry, so the common change
 * allocates nothing and readers still never wait. Maps with more runs than a
 * buffer holds live in heap arrays replaced under RCU. Reserve maps PROT_NONE, commit and
 * protect mprotect the whole range at once, decommit maps fresh PROT_NONE
 * pages over the range (so recommitted memory reads zero), MEM_RESET
 * madvises, release unmaps.
 *
 * Writers hold vm->lock across the OS call and the map update, and build
 * whatever the update needs before the OS call, so a failure at any step
 * leaves both the process and the map as they were. Readers (VirtualQuery)
 * take no lock: they read the region map and the run arrays under RCU, and
 * read the kernel's view for memory the manager does not own. A thread the
 * runtime suspends in the middle of a write therefore never blocks a query.
 */
#include "vm.h"

#include "addrmap.h"
#include "os_posix.h"
#include "pagemap.h"
#include "policy.h"
#include "procmaps.h"
#include "rcu.h"
#include "reclaim.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(sizeof(struct retired) <= sizeof(((struct pm_runs *)0)->owner),
	       "pm_runs has room for a retirement record");

#define INLINE_RUNS 6u
#define INLINE_WORDS (PM_RUNS_BYTES(INLINE_RUNS) / sizeof(uint64_t))

struct region {
	struct retired retired;
	uintptr_t base; /* granule-aligned; immutable */
	uintptr_t end;  /* page-aligned; immutable */
	uint32_t allocation_protect;
	uint32_t cache;       /* PAGE_NOCACHE / PAGE_WRITECOMBINE of the whole reservation */
	uint32_t version;     /* bumped before a buffer is rewritten and after a publish */
	struct pm_runs *runs; /* the published map: an inline buffer or a heap array */
	uint64_t committed;   /* committed pages; writers only */
	uint64_t inline_buf[2][INLINE_WORDS];
};

struct vm {
	uint32_t lock; /* the writers' lock: 0 free, 1 held, 2 held and maybe waited for */
	struct addrmap map;
	uint64_t seq; /* state changes so far; written under lock, read without */
	struct vm_stats stats;
	struct reclaimer rc;
	struct policy *policy; /* may be NULL */
	struct retired *spare; /* released regions to reuse; writers only */
	struct region *last;   /* the reservation writers found last, or NULL; writers only */
};

/* Where the next NULL-address reservation is tried first (top-down, like the kernel). */
static uintptr_t placement_hint;

/* ---------- Helpers ---------- */

static uint64_t to_pages(uintptr_t bytes)
{
	return bytes >> clrmemtrace__sys.page_shift;
}

static void runs_dtor(struct retired *r)
{
	clrmemtrace__pm_free((struct pm_runs *)((char *)r - offsetof(struct pm_runs, owner)));
}

static struct pm_runs *inline_runs(struct region *r, unsigned k)
{
	return (struct pm_runs *)r->inline_buf[k];
}

static bool is_inline(struct region *r, const struct pm_runs *runs)
{
	return runs == inline_runs(r, 0) || runs == inline_runs(r, 1);
}

static void region_free(struct region *r)
{
	if (!is_inline(r, r->runs)) {
		clrmemtrace__pm_free(r->runs);
	}
	free(r);
}

/*
 * Released regions past their grace period, kept for new reservations: a
 * stack that region_dtor pushes and region_new takes whole into its vm's
 * spares. Without it every reservation would take malloc's slow path and
 * every release free's: reclamation hands regions back in bursts (a grace
 * period covers many batches), far more than malloc's per-thread cache
 * holds. region_dtor runs in whichever writer reclaims, hence the atomics:
 * the push's release and the take's acquire also order a region's new
 * tenant after its grace period, and so after its old readers (rcu.h).
 * The bound keeps what a burst of releases leaves behind small.
 */
#define REGION_CACHE_MAX 1024u
static struct retired *region_cache;
static unsigned region_cache_count; /* about how many: a bound, not an exact count */

static void region_dtor(struct retired *ret)
{
	struct region *r = container_of(ret, struct region, retired);

	if (__atomic_load_n(&region_cache_count, __ATOMIC_RELAXED) >= REGION_CACHE_MAX) {
		region_free(r);
		return;
	}
	if (!is_inline(r, r->runs)) {
		clrmemtrace__pm_free(r->runs);
	}
	__atomic_add_fetch(&region_cache_count, 1, __ATOMIC_RELAXED);
	ret->next = __atomic_load_n(&region_cache, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&region_cache, &ret->next, ret, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED)) {
	}
}

/* Writers: a region to fill in, from the vm's spares, the cache or calloc. */
static struct region *region_new(struct vm *vm)
{
	struct retired *ret = vm->spare;

	if (!ret) {
		ret = __atomic_exchange_n(&region_cache, NULL, __ATOMIC_ACQUIRE);
		if (!ret) {
			return calloc(1, sizeof(struct region));
		}
		__atomic_store_n(&region_cache_count, 0, __ATOMIC_RELAXED);
	}
	vm->spare = ret->next;
	return container_of(ret, struct region, retired);
}

/* Writers: gives back a region from region_new that no reader has seen. */
static void region_unused(struct vm *vm, struct region *r)
{
	r->retired.next = vm->spare;
	vm->spare = &r->retired;
}

/*
 * Builds the map of r with pages [first, last) in `state`, unpublished:
 * into the inline buffer readers are not given when it has room (after
 * bumping the version, so a reader still on it retries), else into a new
 * heap array. NULL when that allocation fails. Either way *committed
 * receives how many of those pages r has committed now.
 */
static struct pm_runs *region_prepare(struct region *r, uint64_t first, uint64_t last,
				      uint8_t state, uint64_t *committed)
{
	struct pm_runs *spare = r->runs == inline_runs(r, 0) ? inline_runs(r, 1) : inline_runs(r, 0);

	if (pm_count_runs(r->runs) + 2 <= INLINE_RUNS) {
		__atomic_store_n(&r->version, r->version + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		if (spare->capacity != INLINE_RUNS) {
			spare->capacity = INLINE_RUNS; /* first use: no reader has seen it */
		}
		clrmemtrace__pm_set_into(spare, r->runs, first, last, state, committed);
		return spare;
	}
	*committed = clrmemtrace__pm_count(r->runs, first, last, PM_COMMITTED, PM_COMMITTED);
	return clrmemtrace__pm_set(r->runs, first, last, state);
}

/* Forgets a map region_prepare built (the change failed). */
static void region_abandon(struct region *r, struct pm_runs *next)
{
	if (!is_inline(r, next)) {
		clrmemtrace__pm_free(next);
	}
}

static void bump_seq(struct vm *vm)
{
	__atomic_store_n(&vm->seq, vm->seq + 1, __ATOMIC_RELEASE);
}

/*
 * Writers only: the reservation holding addr, or NULL. A host works on one
 * reservation for several calls in a row (reserve, commit, protect, ...),
 * so the last one found is tried before the map.
 */
static struct region *find_region(struct vm *vm, uintptr_t addr)
{
	struct region *r = vm->last;

	if (r && addr >= r->base && addr < r->end) {
		return r;
	}
	r = clrmemtrace__addrmap_lookup(&vm->map, addr);
	if (!r || addr < r->base || addr >= r->end) {
		return NULL;
	}
	vm->last = r;
	return r;
}

/*
 * Publishes `next` (from region_prepare), in which pages [first, last), of
 * which `before` were committed, took `state`. A replaced heap array is
 * freed once readers are done with it; a replaced inline buffer becomes the
 * spare.
 */
static void region_publish(struct vm *vm, struct region *r, struct pm_runs *next, uint64_t first,
			   uint64_t last, uint8_t state, uint64_t before)
{
	struct pm_runs *old = r->runs;
	uint64_t after = (state & PM_COMMITTED) ? last - first : 0;

	rcu_publish(r->runs, next);
	__atomic_store_n(&r->version, r->version + 1, __ATOMIC_RELEASE);
	if (!is_inline(r, old)) {
		clrmemtrace__retire(&vm->rc, (struct retired *)old->owner, runs_dtor);
	}
	r->committed = r->committed - before + after;
	vm->stats.committed_bytes = vm->stats.committed_bytes - (before << clrmemtrace__sys.page_shift) +
				    (after << clrmemtrace__sys.page_shift);
	bump_seq(vm);
}

/* Best effort after a failed mprotect that may have changed part of a range. */
static void restore_protections(struct region *r, uint64_t first, uint64_t end)
{
	const struct pm_runs *runs = r->runs;
	uint32_t i;

	for (i = clrmemtrace__pm_find(runs, first); i < pm_count_runs(runs); i++) {
		uint64_t s = pm_run_start(runs, i), e = pm_run_end(runs, i);

		if (s >= end) {
			break;
		}
		s = s > first ? s : first;
		e = e < end ? e : end;
		clrmemtrace__os_protect(r->base + (s << clrmemtrace__sys.page_shift),
					(e - s) << clrmemtrace__sys.page_shift,
					clrmemtrace__pm_to_unix(pm_run_state(runs, i)));
	}
}

/* ---------- Lifetime ---------- */

static int charge(struct vm *vm, uint64_t commit, uint64_t reserve, int level)
{
	return vm->policy ? clrmemtrace__policy_charge(vm->policy, commit, reserve, level) : 0;
}

static void uncharge(struct vm *vm, uint64_t commit, uint64_t reserve)
{
	if (vm->policy) {
		clrmemtrace__policy_uncharge(vm->policy, commit, reserve);
	}
}

int clrmemtrace__vm_create(struct policy *policy, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	int err;

	if (!vm) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	err = clrmemtrace__addrmap_init(&vm->map);
	if (err) {
		free(vm);
		return err;
	}
	vm->policy = policy;
	*out = vm;
	return 0;
}

void clrmemtrace__vm_destroy(struct vm *vm)
{
	uintptr_t at = 0;
	struct region *r;

	if (!vm) {
		return;
	}
	/* The manager is gone, so no reader can remain: free at once. */
	clrmemtrace__retire_now(&vm->rc);
	while ((r = clrmemtrace__addrmap_next(&vm->map, at)) != NULL) {
		at = (r->end + CLRMEMTRACE_GRANULARITY - 1) & ~(CLRMEMTRACE_GRANULARITY - 1);
		region_free(r);
	}
	while (vm->spare) {
		struct retired *next = vm->spare->next;

		free(container_of(vm->spare, struct region, retired));
		vm->spare = next;
	}
	clrmemtrace__addrmap_fini(&vm->map);
	free(vm);
}

/*
 * The writers' lock is a futex (Drepper's "Futexes Are Tricky", mutex 2):
 * uncontended, one atomic instruction takes it and one gives it back, with
 * no call into libc, where a pthread mutex costs some fifty instructions a
 * pair and a cycle from reserve to release takes the lock five times.
 * Waiters sleep in the kernel, as on a mutex.
 */
static void lock_wait(uint32_t *lock)
{
	while (__atomic_exchange_n(lock, 2, __ATOMIC_ACQUIRE) != 0) {
		syscall(SYS_futex, lock, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
	}
}

void clrmemtrace__vm_lock(struct vm *vm)
{
	uint32_t unlocked = 0;

	if (!__atomic_compare_exchange_n(&vm->lock, &unlocked, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED)) {
		lock_wait(&vm->lock);
	}
	clrmemtrace__reclaim();
}

void clrmemtrace__vm_unlock(struct vm *vm)
{
	if (__atomic_exchange_n(&vm->lock, 0, __ATOMIC_RELEASE) == 2) {
		syscall(SYS_futex, &vm->lock, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
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

/* A new reservation of [base, base+len) (base 0: anywhere), committed when `state` is. */
static int reserve(struct vm *vm, uintptr_t base, size_t len, uint8_t state, uint32_t protect,
		   uint32_t cache, bool top_down, int level, void **out)
{
	uint64_t committed_bytes = (state & PM_COMMITTED) ? len : 0;
	int prot = clrmemtrace__pm_to_unix(state);
	struct region *r;
	int err;

	err = charge(vm, committed_bytes, len, level);
	if (err) {
		return err;
	}
	r = region_new(vm);
	if (!r) {
		uncharge(vm, committed_bytes, len);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	/* A reused region keeps its last tenant's values: all that readers use is set below. */
	r->runs = inline_runs(r, 0);
	clrmemtrace__pm_init(r->runs, INLINE_RUNS, to_pages(len), state);
	if (base) {
		err = clrmemtrace__os_map_fixed_noreplace(base, len, prot);
	} else {
		uintptr_t h = __atomic_load_n(&placement_hint, __ATOMIC_RELAXED), hint = 0;
		void *p = NULL;

		if (!top_down && h > len && h - len >= clrmemtrace__sys.user_min) {
			hint = (h - len) & ~(CLRMEMTRACE_GRANULARITY - 1);
		}
		err = clrmemtrace__os_map_aligned(len, CLRMEMTRACE_GRANULARITY, prot, hint, &p);
		base = (uintptr_t)p;
	}
	if (err) {
		region_unused(vm, r);
		uncharge(vm, committed_bytes, len);
		return err;
	}
	r->base = base;
	r->end = base + len;
	r->allocation_protect = protect;
	r->cache = cache;
	r->committed = (state & PM_COMMITTED) ? to_pages(len) : 0;
	err = clrmemtrace__addrmap_insert(&vm->map, r->base, r->end, r);
	if (err) {
		clrmemtrace__os_unmap(r->base, len);
		clrmemtrace__retire(&vm->rc, &r->retired, region_dtor);
		uncharge(vm, committed_bytes, len);
		return err;
	}
	__atomic_store_n(&placement_hint, base, __ATOMIC_RELAXED);
	vm->last = r;
	vm->stats.regions++;
	vm->stats.reserved_bytes += len;
	vm->stats.committed_bytes += r->committed << clrmemtrace__sys.page_shift;
	bump_seq(vm);
	*out = (void *)base;
	return 0;
}

/* Commits [base, end), which must lie in one reservation (#17, #20-25). */
static int commit(struct vm *vm, uintptr_t base, uintptr_t end, uint32_t protect, int level,
		  void **out)
{
	struct region *r = find_region(vm, base);
	struct pm_runs *next;
	uint64_t first, last, before, added;
	uint32_t cache;
	uint8_t state;
	int err;

	if (!r || end > r->end) {
		return ERROR_INVALID_ADDRESS;
	}
	/* Wine checks the range before the protection. */
	err = clrmemtrace__pm_from_win32(protect, &state, &cache);
	if (err) {
		return err;
	}
	first = to_pages(base - r->base);
	last = to_pages(end - r->base);
	next = region_prepare(r, first, last, state, &before);
	added = (last - first - before) << clrmemtrace__sys.page_shift;
	err = charge(vm, added, 0, level);
	if (err) {
		if (next) {
			region_abandon(r, next);
		}
		return err;
	}
	if (!next) {
		uncharge(vm, added, 0);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	err = clrmemtrace__os_protect(base, end - base, clrmemtrace__pm_to_unix(state));
	if (err) {
		restore_protections(r, first, last);
		region_abandon(r, next);
		uncharge(vm, added, 0);
		return err;
	}
	region_publish(vm, r, next, first, last, state, before);
	*out = (void *)base;
	return 0;
}

/* MEM_RESET: the pages keep their state; their contents may be dropped (#59-61). */
static int reset(struct vm *vm, uintptr_t base, uintptr_t end, void **out)
{
	struct region *r = find_region(vm, base);
	uint64_t first, last;
	int err;

	if (!r || end > r->end) {
		return ERROR_INVALID_ADDRESS;
	}
	first = to_pages(base - r->base);
	last = to_pages(end - r->base);
	if (clrmemtrace__pm_count(r->runs, first, last, PM_COMMITTED, PM_COMMITTED)) {
		err = clrmemtrace__os_reset(base, end - base);
		if (err) {
			return err;
		}
	}
	*out = (void *)base;
	return 0;
}

int clrmemtrace__vm_alloc(struct vm *vm, void *address, size_t size, uint32_t type,
			  uint32_t protect, int level, void **out)
{
	const uint32_t known = MEM_COMMIT | MEM_RESERVE | MEM_RESET | MEM_TOP_DOWN | MEM_WRITE_WATCH;
	uintptr_t addr = (uintptr_t)address, base = 0, end = 0;
	uint32_t cache;
	uint8_t state;
	int err;

	*out = NULL;
	/* Wine's order of checks (NtAllocateVirtualMemory, allocate_virtual_memory). */
	if (size == 0) {
		return ERROR_INVALID_PARAMETER; /* #1 */
	}
	if (type & ~known) {
		return ERROR_INVALID_PARAMETER; /* #6, #7: AT_ROUND_TO_PAGE, LARGE_PAGES, ... */
	}
	if (size >= clrmemtrace__sys.user_limit) {
		return ERROR_INVALID_PARAMETER; /* beyond the address space (#10, Wine) */
	}
	if (addr) {
		/* #13: reservations round down to 64 KiB, commits to a page; #14: whole pages. */
		base = (type & MEM_RESERVE) ? addr & ~(CLRMEMTRACE_GRANULARITY - 1) : page_down(addr);
		if (!page_end(addr, size, &end) || base < clrmemtrace__sys.user_min ||
		    end > clrmemtrace__sys.user_limit) {
			return ERROR_INVALID_PARAMETER; /* #9 */
		}
	}
	if (!(type & (MEM_COMMIT | MEM_RESERVE | MEM_RESET))) {
		return ERROR_INVALID_PARAMETER; /* #7 */
	}
	if (type & MEM_RESET) {
		/* #62: MEM_RESET stands alone, applies to existing pages, and flProtect must be valid. */
		if (type != MEM_RESET || !addr) {
			return ERROR_INVALID_PARAMETER;
		}
		err = clrmemtrace__pm_from_win32(protect, &state, &cache);
		if (err) {
			return err;
		}
		return reset(vm, base, end, out);
	}
	if (type & MEM_WRITE_WATCH) {
		/*
		 * #8: needs MEM_RESERVE. And the interfaces carry no GetWriteWatch, so a
		 * runtime that got write-watch memory here would call the OS's GetWriteWatch
		 * on it: refuse, and the CLR turns concurrent GC off (DESIGN.md).
		 */
		return ERROR_INVALID_PARAMETER;
	}
	if ((type & MEM_RESERVE) || !addr) {
		uint8_t initial;

		err = clrmemtrace__pm_from_win32(protect, &state, &cache); /* #2-4 */
		if (err) {
			return err;
		}
		initial = (type & MEM_COMMIT) ? state : PM_RESERVED; /* #16 */
		if (!addr) {
			if (!page_end(0, size, &end)) {
				return ERROR_INVALID_PARAMETER;
			}
			return reserve(vm, 0, end, initial, protect & 0x7ff, cache,
				       (type & MEM_TOP_DOWN) != 0, level, out);
		}
		return reserve(vm, base, end - base, initial, protect & 0x7ff, cache, false, level,
			       out);
	}
	return commit(vm, base, end, protect, level, out);
}

/* ---------- VirtualFree ---------- */

static int decommit(struct vm *vm, struct region *r, uintptr_t base, uintptr_t end)
{
	uint64_t first = to_pages(base - r->base), last = to_pages(end - r->base), committed;
	struct pm_runs *next = region_prepare(r, first, last, PM_RESERVED, &committed);
	int err;

	if (!committed) {
		if (next) {
			region_abandon(r, next);
		}
		/*
		 * #31: nothing committed, nothing to do. Still a successful decommit:
		 * it takes a number (as under Windows and a wrapping manager), or its
		 * event, carrying the last change's, would pass for the next one.
		 */
		bump_seq(vm);
		return 0;
	}
	if (!next) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	err = clrmemtrace__os_map_fresh(base, end - base);
	if (err) {
		/*
		 * Kernels before 6.12 may already have unmapped the range when a
		 * MAP_FIXED mmap fails. Put a reservation back: then the pages are
		 * decommitted after all, and the map says so.
		 */
		if (clrmemtrace__os_is_mapped(base, end - base) ||
		    clrmemtrace__os_map_fixed_noreplace(base, end - base, PROT_NONE) != 0) {
			region_abandon(r, next);
			return err;
		}
	}
	region_publish(vm, r, next, first, last, PM_RESERVED, committed);
	uncharge(vm, committed << clrmemtrace__sys.page_shift, 0);
	return 0;
}

static int release(struct vm *vm, struct region *r)
{
	size_t len = r->end - r->base;
	int err = clrmemtrace__os_unmap(r->base, len);

	if (err) {
		return err;
	}
	clrmemtrace__addrmap_remove(&vm->map, r->base, r->end);
	if (vm->last == r) {
		vm->last = NULL;
	}
	vm->stats.regions--;
	vm->stats.reserved_bytes -= len;
	vm->stats.committed_bytes -= r->committed << clrmemtrace__sys.page_shift;
	uncharge(vm, r->committed << clrmemtrace__sys.page_shift, len);
	__atomic_store_n(&placement_hint, r->end, __ATOMIC_RELAXED);
	bump_seq(vm);
	clrmemtrace__retire(&vm->rc, &r->retired, region_dtor);
	return 0;
}

int clrmemtrace__vm_free(struct vm *vm, void *address, size_t size, uint32_t type)
{
	uintptr_t addr = (uintptr_t)address, base, end = 0;
	struct region *r;

	/* kernelbase's VirtualFreeEx, then NtFreeVirtualMemory's order of checks. */
	if (!free_type_valid(size, type)) {
		return ERROR_INVALID_PARAMETER; /* #27-#30: checked before the address */
	}
	base = page_down(addr);
	if (size && !page_end(addr, size, &end)) {
		return ERROR_INVALID_PARAMETER;
	}
	if (!base) {
		return ERROR_INVALID_PARAMETER; /* #35 */
	}
	if (base >= clrmemtrace__sys.user_limit || end > clrmemtrace__sys.user_limit) {
		return ERROR_INVALID_PARAMETER; /* beyond user space: Windows' first check, and Wine's */
	}
	r = find_region(vm, base);
	if (!r) {
		return ERROR_INVALID_ADDRESS; /* #35: not allocated, including a second release */
	}
	if (!size) {
		if (base != r->base) {
			return ERROR_INVALID_ADDRESS; /* #33, #34: not at the allocation base */
		}
		end = r->end;
	}
	if (end > r->end) {
		return ERROR_INVALID_PARAMETER; /* #36 */
	}
	switch (type) {
	case MEM_DECOMMIT:
		return decommit(vm, r, base, end);
	case MEM_RELEASE:
		return release(vm, r); /* #38: whatever its pages' states */
	default:
		return ERROR_INVALID_PARAMETER; /* #27, #28, #30 */
	}
}

/* ---------- VirtualProtect ---------- */

int clrmemtrace__vm_protect(struct vm *vm, void *address, size_t size, uint32_t protect,
			    uint32_t *old_protect)
{
	uintptr_t addr = (uintptr_t)address, base = page_down(addr), end;
	struct pm_runs *next;
	struct region *r;
	uint64_t first, last, replaced;
	uint32_t cache;
	uint8_t state, first_state;
	int err;

	*old_protect = 0;
	if (!page_end(addr, size, &end)) {
		return ERROR_INVALID_PARAMETER;
	}
	if (base >= clrmemtrace__sys.user_limit || end > clrmemtrace__sys.user_limit) {
		return ERROR_INVALID_PARAMETER; /* beyond user space: Windows' first check, and Wine's */
	}
	r = find_region(vm, base);
	if (!r) {
		/*
		 * Wine answers 87 here (no view holds the range); Windows reports
		 * unallocated memory as ERROR_INVALID_ADDRESS, as VirtualFree does.
		 */
		return ERROR_INVALID_ADDRESS;
	}
	if (end > r->end) {
		return ERROR_INVALID_PARAMETER; /* #49a: the range leaves the reservation */
	}
	first = to_pages(base - r->base);
	last = to_pages(end - r->base);
	first_state = pm_run_state(r->runs, clrmemtrace__pm_find(r->runs, first));
	if (!(first_state & PM_COMMITTED) ||
	    clrmemtrace__pm_count(r->runs, first, last, PM_COMMITTED, PM_COMMITTED) != last - first) {
		return ERROR_INVALID_ADDRESS; /* #40, #41 */
	}
	err = clrmemtrace__pm_from_win32(protect, &state, &cache); /* #45, #46 */
	if (err) {
		return err;
	}
	/* #43, #66: the first page's protection, with the reservation's cache modifier. */
	*old_protect = clrmemtrace__pm_to_win32(first_state) | r->cache;
	if (first == last) {
		bump_seq(vm); /* changes nothing, but numbered as any successful protect (#31) */
		return 0;
	}
	next = region_prepare(r, first, last, state, &replaced); /* all committed, as checked */
	if (!next) {
		*old_protect = 0;
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	err = clrmemtrace__os_protect(base, end - base, clrmemtrace__pm_to_unix(state));
	if (err) {
		restore_protections(r, first, last);
		region_abandon(r, next);
		*old_protect = 0;
		return err;
	}
	region_publish(vm, r, next, first, last, state, last - first);
	return 0;
}

/* ---------- VirtualQuery ---------- */

/*
 * RCU read side held. Reads the run holding `page`, retrying if the buffer
 * it read was rewritten meanwhile (the version moved); never waits.
 */
static void fill_owned(const struct region *r, uintptr_t page, MEMORY_BASIC_INFORMATION *mbi)
{
	uint64_t p = to_pages(page - r->base), end;
	uint32_t v;
	uint8_t state;

	for (;;) {
		const struct pm_runs *runs;
		uint32_t i;

		v = __atomic_load_n(&r->version, __ATOMIC_ACQUIRE);
		runs = rcu_load(r->runs);
		i = clrmemtrace__pm_find(runs, p);
		state = pm_run_state(runs, i);
		end = pm_run_end(runs, i);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&r->version, __ATOMIC_RELAXED) == v && end > p) {
			break;
		}
	}
	memset(mbi, 0, sizeof(*mbi));
	mbi->BaseAddress = (void *)page;
	mbi->AllocationBase = (void *)r->base;
	mbi->AllocationProtect = r->allocation_protect;
	mbi->RegionSize = (size_t)(end - p) << clrmemtrace__sys.page_shift;
	if (state & PM_COMMITTED) {
		mbi->State = MEM_COMMIT;
		mbi->Protect = clrmemtrace__pm_to_win32(state) | r->cache; /* #53, #66 */
	} else {
		mbi->State = MEM_RESERVE;
		mbi->Protect = 0; /* #15 */
	}
	mbi->Type = MEM_PRIVATE;
}

int clrmemtrace__vm_query(struct vm *vm, const void *address, MEMORY_BASIC_INFORMATION *mbi,
			  uint64_t *seq_before, uint64_t *seq_after)
{
	uintptr_t addr = (uintptr_t)address, page = page_down(addr), lo, hi;
	const struct region *r, *near;
	int err = 0;

	if (addr >= clrmemtrace__sys.user_limit) {
		return ERROR_INVALID_PARAMETER; /* #56 */
	}
	*seq_before = __atomic_load_n(&vm->seq, __ATOMIC_ACQUIRE);
	do {
		rcu_lock();
		r = clrmemtrace__addrmap_lookup(&vm->map, addr);
		if (r && addr >= r->base && addr < r->end) {
			fill_owned(r, page, mbi);
			rcu_unlock();
			goto end;
		}
		/* Not ours: the kernel's view, bounded by our neighbouring reservations. */
		if (r) {
			lo = r->end; /* addr is in the unused tail of r's last granule */
		} else {
			near = clrmemtrace__addrmap_prev(&vm->map, addr);
			lo = near ? near->end : 0;
		}
		near = clrmemtrace__addrmap_next(&vm->map,
						 (addr | (CLRMEMTRACE_GRANULARITY - 1)) + 1);
		hi = near ? near->base : clrmemtrace__sys.user_limit;
		rcu_unlock();
		/*
		 * A reservation made around addr after the lookup shows up as a
		 * neighbour that covers addr: look again, addr is ours now.
		 */
	} while (lo > addr || hi <= addr);
	err = clrmemtrace__procmaps_query(addr, lo, hi, mbi);
end:
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*seq_after = __atomic_load_n(&vm->seq, __ATOMIC_RELAXED);
	return err;
}

/* ---------- State dump ---------- */

int clrmemtrace__vm_foreach_run(struct vm *vm, vm_run_fn fn, void *ctx)
{
	uintptr_t at = 0;
	struct region *r;

	while ((r = clrmemtrace__addrmap_next(&vm->map, at)) != NULL) {
		const struct pm_runs *runs = r->runs;
		uint32_t i;

		for (i = 0; i < pm_count_runs(runs); i++) {
			uint8_t state = pm_run_state(runs, i);
			struct vm_run run = {
				.base = r->base + (pm_run_start(runs, i) << clrmemtrace__sys.page_shift),
				.allocation_base = r->base,
				.size = (size_t)(pm_run_end(runs, i) - pm_run_start(runs, i))
					<< clrmemtrace__sys.page_shift,
				.state = (state & PM_COMMITTED) ? MEM_COMMIT : MEM_RESERVE,
				.protect = (state & PM_COMMITTED)
						   ? clrmemtrace__pm_to_win32(state) | r->cache
						   : 0,
				.allocation_protect = r->allocation_protect,
			};
			int ret = fn(ctx, &run);

			if (ret) {
				return ret;
			}
		}
		at = (r->end + CLRMEMTRACE_GRANULARITY - 1) & ~(CLRMEMTRACE_GRANULARITY - 1);
	}
	return 0;
}
