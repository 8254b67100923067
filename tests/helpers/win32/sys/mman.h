/* SPDX-License-Identifier: MIT */
/*
 * The anonymous-memory part of <sys/mman.h> for the Windows build of the
 * tests, on the OS's VirtualAlloc (not the manager's): the conformance tests
 * map "foreign" memory with it, memory the manager did not allocate.
 *
 * Windows places allocations on 64 KiB boundaries and frees them whole, so
 * only what maps onto that works: mmap at NULL or at a 64 KiB-aligned
 * address, munmap of a whole mapping, mprotect of any committed range.
 * Anything else, file mappings included, fails with errno set, and the tests
 * that need it are POSIX-only (conformance.h).
 */
#ifndef CLRMEMTRACE_TEST_WIN32_SYS_MMAN_H
#define CLRMEMTRACE_TEST_WIN32_SYS_MMAN_H

#include <windows.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROT_NONE 0x0
#define PROT_READ 0x1
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4

#define MAP_SHARED 0x01
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_NORESERVE 0x4000
#define MAP_FIXED_NOREPLACE 0x100000
#define MAP_FAILED ((void *)-1)

static inline DWORD test_win32_protect(int prot)
{
	switch (prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) {
	case PROT_NONE:
		return PAGE_NOACCESS;
	case PROT_READ:
		return PAGE_READONLY;
	case PROT_READ | PROT_WRITE:
	case PROT_WRITE:
		return PAGE_READWRITE;
	case PROT_EXEC:
		return PAGE_EXECUTE;
	case PROT_READ | PROT_EXEC:
		return PAGE_EXECUTE_READ;
	default:
		return PAGE_EXECUTE_READWRITE;
	}
}

static inline void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p;

	(void)off;
	if (fd != -1 || !(flags & MAP_ANONYMOUS) || ((uintptr_t)addr & 0xffff)) {
		errno = ENOSYS;
		return MAP_FAILED;
	}
	p = VirtualAlloc((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) ? addr : NULL, len,
			 MEM_RESERVE | MEM_COMMIT, test_win32_protect(prot));
	if (!p) {
		errno = GetLastError() == ERROR_INVALID_ADDRESS ? EEXIST : ENOMEM;
		return MAP_FAILED;
	}
	return p;
}

static inline int munmap(void *addr, size_t len)
{
	MEMORY_BASIC_INFORMATION m;

	/* Only a whole mapping: Windows frees allocations whole. */
	if (!VirtualQuery(addr, &m, sizeof(m)) || m.AllocationBase != addr ||
	    m.RegionSize < len || !VirtualFree(addr, 0, MEM_RELEASE)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static inline int mprotect(void *addr, size_t len, int prot)
{
	DWORD old;

	if (!VirtualProtect(addr, len, test_win32_protect(prot), &old)) {
		errno = EACCES;
		return -1;
	}
	return 0;
}

#endif /* CLRMEMTRACE_TEST_WIN32_SYS_MMAN_H */
