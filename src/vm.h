/* SPDX-License-Identifier: MIT */
/*
 * The virtual-memory backend: one `struct vm` per memory manager.
 *
 * POSIX (src/posix/vm_posix.c) reproduces the Win32 VirtualAlloc family on the
 * mmap family with a page-state map; Windows (src/win32/) forwards to the real
 * functions. Both follow the same contract:
 *
 * - Every function returns 0 or a Win32 error code, and on failure changes
 *   neither the process nor the backend's state.
 * - clrmemtrace__vm_alloc/free/protect must be called with the writer lock
 *   held (clrmemtrace__vm_lock), so the caller can emit its trace event in the
 *   same critical section and the trace records state changes in the order
 *   they happened.
 * - clrmemtrace__vm_query takes no lock and never blocks on a writer, even
 *   one suspended inside an OS call; it may run concurrently with writers.
 * - Each successful reserve, commit, decommit, protect and release increments
 *   the manager's sequence number (clrmemtrace__vm_seq), which queries report
 *   alongside their answer, also one that finds no page to change; MEM_RESET
 *   and failed calls leave it.
 */
#ifndef CLRMEMTRACE_VM_H
#define CLRMEMTRACE_VM_H

#include "internal.h"

struct vm;
struct policy;

struct vm_stats {
	uint64_t reserved_bytes;  /* address space held by live reservations */
	uint64_t committed_bytes; /* committed part of it */
	uint64_t regions;         /* live reservations */
};

/* One run of pages with equal state, as VirtualQuery would report it. */
struct vm_run {
	uintptr_t base;
	uintptr_t allocation_base;
	size_t size;
	uint32_t state;            /* MEM_COMMIT or MEM_RESERVE */
	uint32_t protect;          /* 0 for reserved pages */
	uint32_t allocation_protect;
};

/*
 * policy (may be NULL) is charged before memory is committed or reserved,
 * and uncharged after it is decommitted or released; a refused charge fails
 * the call with the policy's error and changes nothing.
 */
int clrmemtrace__vm_create(struct policy *policy, struct vm **out);
/* Frees the bookkeeping. Reservations stay mapped: they belong to the process. */
void clrmemtrace__vm_destroy(struct vm *vm);

void clrmemtrace__vm_lock(struct vm *vm);
void clrmemtrace__vm_unlock(struct vm *vm);

/* Lock held. *out is the start of the affected range on success. level: EMemoryCriticalLevel. */
int clrmemtrace__vm_alloc(struct vm *vm, void *address, size_t size, uint32_t type,
			  uint32_t protect, int level, void **out);
/* Lock held. */
int clrmemtrace__vm_free(struct vm *vm, void *address, size_t size, uint32_t type);
/* Lock held. *old_protect receives the first page's previous protection. */
int clrmemtrace__vm_protect(struct vm *vm, void *address, size_t size, uint32_t protect,
			    uint32_t *old_protect);

/*
 * No lock. Fills *mbi for any address of the process. *seq_before and
 * *seq_after bracket the state changes the answer may reflect: when equal,
 * the answer is exactly the state after change number *seq_before.
 */
int clrmemtrace__vm_query(struct vm *vm, const void *address, MEMORY_BASIC_INFORMATION *mbi,
			  uint64_t *seq_before, uint64_t *seq_after);

/* Current sequence number (number of state changes so far). */
uint64_t clrmemtrace__vm_seq(struct vm *vm);

/* Lock held. Totals of the manager's own reservations. */
void clrmemtrace__vm_stats(struct vm *vm, struct vm_stats *stats);

/*
 * Lock held. Calls fn for every run of every live reservation in address
 * order; stops early and returns fn's value if it is non-zero.
 */
typedef int (*vm_run_fn)(void *ctx, const struct vm_run *run);
int clrmemtrace__vm_foreach_run(struct vm *vm, vm_run_fn fn, void *ctx);

/* ---------- Argument checks both backends make ---------- */

static inline uintptr_t page_mask(void)
{
	return clrmemtrace__sys.page_size - 1;
}

static inline uintptr_t page_down(uintptr_t a)
{
	return a & ~page_mask();
}

/* Rounds a + size up to a page; false on overflow. */
static inline bool page_end(uintptr_t a, size_t size, uintptr_t *end)
{
	uintptr_t e;

	if (__builtin_add_overflow(a, size, &e) || __builtin_add_overflow(e, page_mask(), &e)) {
		return false;
	}
	*end = e & ~page_mask();
	return true;
}

/*
 * VirtualFree's checks before it looks at the address: MEM_RELEASE takes no
 * size, and the type is exactly MEM_DECOMMIT or MEM_RELEASE (#27-#30).
 */
static inline bool free_type_valid(size_t size, uint32_t type)
{
	return type == MEM_DECOMMIT || (type == MEM_RELEASE && size == 0);
}

#endif /* CLRMEMTRACE_VM_H */
