/* SPDX-License-Identifier: MIT */
/*
 * VirtualQuery for memory a manager does not own, from the kernel's view of
 * the process (/proc/self/maps).
 *
 * Linux does not remember which mmap call created a mapping, so allocations
 * are rebuilt from the mappings with these rules:
 * - consecutive mappings of the same file form one allocation (a loaded
 *   object and its PROT_NONE gaps); it is MEM_IMAGE if any of them is
 *   executable, MEM_MAPPED otherwise;
 * - an anonymous PROT_NONE mapping directly followed by an accessible
 *   anonymous one is a guard below a stack: one allocation, based at the
 *   guard, which is what the CLR reads as a thread's stack bound;
 * - any other anonymous mapping is its own MEM_PRIVATE allocation;
 *   anonymous PROT_NONE memory is reported as reserved (Protect 0);
 * - addresses in no mapping are MEM_FREE up to the next mapping.
 *
 * The reader takes no lock, calls no malloc and uses only open/read/close,
 * so it cannot deadlock against a thread suspended inside the allocator or
 * inside the library.
 */
#ifndef CLRMEMTRACE_PROCMAPS_H
#define CLRMEMTRACE_PROCMAPS_H

#include "internal.h"

/*
 * Fills *mbi for addr, seeing only [lo, hi): the parts of the address space
 * outside that window belong to the manager's own reservations and act as
 * boundaries. lo <= addr < hi. Returns 0 or a Win32 error code.
 */
int clrmemtrace__procmaps_query(uintptr_t addr, uintptr_t lo, uintptr_t hi,
				MEMORY_BASIC_INFORMATION *mbi);

#endif /* CLRMEMTRACE_PROCMAPS_H */
