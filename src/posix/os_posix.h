/* SPDX-License-Identifier: MIT */
/*
 * POSIX primitives shared by the POSIX backend's files.
 *
 * Every function returns 0 or a Win32 error code; errno is translated in one
 * place, clrmemtrace__win32_from_errno(). Addresses and sizes are
 * page-aligned and sizes non-zero unless stated otherwise.
 */
#ifndef CLRMEMTRACE_OS_POSIX_H
#define CLRMEMTRACE_OS_POSIX_H

#include "internal.h"

/* The Win32 error Windows would report for the condition errno describes. */
int clrmemtrace__win32_from_errno(int err);

/*
 * Maps len bytes of anonymous private memory with protection prot at an
 * address aligned to `align` (a power of two, at least a page), placed near
 * `hint` when it is non-zero and free. MAP_NORESERVE: commit charge follows
 * the protection, not the mapping.
 */
int clrmemtrace__os_map_aligned(size_t len, size_t align, int prot, uintptr_t hint, void **out);

/* Maps at exactly addr, failing with ERROR_INVALID_ADDRESS if anything is there. */
int clrmemtrace__os_map_fixed_noreplace(uintptr_t addr, size_t len, int prot);

/* Replaces [addr, addr+len) by fresh zero PROT_NONE pages (Wine's decommit). */
int clrmemtrace__os_map_fresh(uintptr_t addr, size_t len);

int clrmemtrace__os_unmap(uintptr_t addr, size_t len);
int clrmemtrace__os_protect(uintptr_t addr, size_t len, int prot);
/* Lets the kernel drop the pages' contents (MADV_FREE, else MADV_DONTNEED). */
int clrmemtrace__os_reset(uintptr_t addr, size_t len);
/* Whether every page of [addr, addr+len) is mapped. */
bool clrmemtrace__os_is_mapped(uintptr_t addr, size_t len);

#endif /* CLRMEMTRACE_OS_POSIX_H */
