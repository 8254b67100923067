/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the conformance suite: exact HRESULT and
 * MEMORY_BASIC_INFORMATION checks in the style of Wine's kernel32 tests, a
 * per-test manager fixture, and small views of the kernel's memory map.
 *
 * Every check reports the caller's file and line, so a failure points at the
 * statement in the test, not at this helper.
 */
#ifndef CLRMEMTRACE_CONFORMANCE_H
#define CLRMEMTRACE_CONFORMANCE_H

#include <clrmemtrace.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "maps.h"
#include "probe.h"

/* The page size, set by conformance_init(). */
extern size_t page;

/* Windows reserves address space in units of 64 KiB (the allocation granularity). */
#define GRANULARITY ((size_t)0x10000)

/* The first address above user space, as the library defines it. */
#if defined(_WIN32) && defined(__x86_64__)
/* Windows x64 and Wine (conformance_init checks GetSystemInfo agrees). */
#define USER_LIMIT ((uintptr_t)0x7fffffff0000)
#elif defined(__x86_64__)
#define USER_LIMIT ((uintptr_t)0x7ffffffff000)
#elif defined(__aarch64__)
#define USER_LIMIT ((uintptr_t)1 << 48)
#elif UINTPTR_MAX > 0xffffffffu
#define USER_LIMIT (((uintptr_t)1 << 47) - page)
#else
#define USER_LIMIT ((uintptr_t)0xffff0000u)
#endif

/* Sentinels written into out-parameters before a call expected to fail. */
#define SENTINEL_PTR ((void *)(uintptr_t)0xdeadbeef)
#define SENTINEL_DWORD ((DWORD)0xdeadbeef)
#define SENTINEL_SIZE ((SIZE_T)0xdeadbeef)

#define HR_INVALID_PARAMETER HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER)
#define HR_INVALID_ADDRESS HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)
#define HR_NOACCESS HRESULT_FROM_WIN32(ERROR_NOACCESS)
#define HR_BAD_LENGTH HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)

/* Sets the page size; call first in main(). */
void conformance_init(void);

/*
 * Waits until the library's deferred frees have run. The library frees the
 * bookkeeping of released memory after an RCU grace period, on liburcu's
 * call_rcu thread; under a sanitizer those frees may map memory (the first
 * time the sanitizer sees a call stack), at kernel-chosen addresses such as
 * a hole the test has just released. Waiting keeps the address space still
 * while a test looks at it.
 */
void conformance_settle(void);

/*
 * Returns rc once the library's deferred frees have run, so that
 * LeakSanitizer, which checks at exit, reports only real leaks. Use as
 * `return conformance_done(rc);`.
 */
int conformance_done(int rc);

/* ---------- Windows, Wine and POSIX ---------- */

/* Whether the tests run under Wine (never on POSIX). */
bool conformance_on_wine(void);

/*
 * What a check expects where Wine differs from Windows' documented
 * behaviour, which Windows and the POSIX backend follow (DESIGN.md): `wine`
 * under Wine, `windows` everywhere else. Each use says what differs.
 */
#define WINE_DIFFERS(wine, windows) (conformance_on_wine() ? (wine) : (windows))

/*
 * A check Wine would fail because it accepts what Windows and the POSIX
 * backend refuse (Wine's own tests mark such checks todo_wine): run
 * everywhere but under Wine. Each use says what Wine accepts.
 */
#define UNLESS_WINE(stmt)                      \
	do {                                   \
		if (!conformance_on_wine()) {  \
			stmt;                  \
		}                              \
	} while (0)

/*
 * What VirtualFree and VirtualProtect of unallocated (free) memory fail
 * with: ERROR_INVALID_ADDRESS, as on Windows (DESIGN.md); Wine answers
 * ERROR_INVALID_PARAMETER (no view holds the address).
 */
#define HR_UNALLOCATED WINE_DIFFERS(HR_INVALID_PARAMETER, HR_INVALID_ADDRESS)

/* The Windows backend (on Windows or Wine), which forwards to the OS. */
#if defined(_WIN32)
#define WINDOWS_BACKEND 1
#else
#define WINDOWS_BACKEND 0
#endif

/*
 * A check that rests on the POSIX process layout, run with the POSIX
 * backend only. Each use says why it does not hold on Windows.
 */
#define UNLESS_WINDOWS(stmt)                 \
	do {                                 \
		if (!WINDOWS_BACKEND) {      \
			stmt;                \
		}                            \
	} while (0)

/*
 * What a check expects where the POSIX backend intentionally differs from
 * Windows (DESIGN.md: write watch, guard pages): `posix` there, `windows`
 * with the Windows backend. Each use says why.
 */
#define POSIX_DIFFERS(posix, windows) (WINDOWS_BACKEND ? (windows) : (posix))

/*
 * Registers a test of the POSIX backend's own machinery: how it reads the
 * kernel's view of memory it does not own (/proc/self/maps: foreign and
 * file mappings at page granularity, thread stacks, shared objects) and how
 * queries behave while a signal parks a writer. On Windows the OS answers
 * for that memory itself and none of it exists, so the test is reported as
 * skipped there with its reason (and its code is not built).
 */
#if defined(_WIN32)
void conformance_posix_only(void **state);
#define POSIX_ONLY_TEST(f, reason) \
	{ #f, conformance_posix_only, NULL, NULL, (void *)(uintptr_t)(reason) }
#else
#define POSIX_ONLY_TEST(f, reason) \
	cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)
#endif

/* ---------- Exact results ---------- */

void check_hr_(HRESULT expected, HRESULT actual, const char *expr, const char *file, int line);

/* Compares HRESULTs exactly and names both on a mismatch. */
#define assert_hr(expected, expr) check_hr_((expected), (expr), #expr, __FILE__, __LINE__)

void check_mbi_(const MEMORY_BASIC_INFORMATION *m, const void *base, const void *allocation_base,
		DWORD allocation_protect, SIZE_T region_size, DWORD state, DWORD protect,
		DWORD type, const char *file, int line);

/* Checks all seven fields of a MEMORY_BASIC_INFORMATION. */
#define check_mbi(m, base, abase, aprot, size, state, prot, type)                              \
	check_mbi_((m), (const void *)(base), (const void *)(abase), (aprot), (size), (state), \
		   (prot), (type), __FILE__, __LINE__)

void check_query_(IHostMemoryManager *mm, const void *addr, const void *base,
		  const void *allocation_base, DWORD allocation_protect, SIZE_T region_size,
		  DWORD state, DWORD protect, DWORD type, const char *file, int line);

/* VirtualQuery(addr) succeeds, returns sizeof(MEMORY_BASIC_INFORMATION), and matches. */
#define check_query(mm, addr, base, abase, aprot, size, state, prot, type)                       \
	check_query_((mm), (const void *)(addr), (const void *)(base), (const void *)(abase),      \
		     (aprot), (size), (state), (prot), (type), __FILE__, __LINE__)

/* Queries addr, failing the test unless the call succeeds. */
void query_(IHostMemoryManager *mm, const void *addr, MEMORY_BASIC_INFORMATION *m,
	    const char *file, int line);
#define query(mm, addr, m) query_((mm), (const void *)(addr), (m), __FILE__, __LINE__)

/*
 * VirtualQuery(addr) reports free memory (AllocationBase NULL, Protect
 * PAGE_NOACCESS, Type 0) from addr's page up to the next mapping the kernel
 * lists: the manager's own reservations and everything else. The kernel's
 * list is read before and after the query, and the check repeats until both
 * reads agree.
 */
void check_free_(IHostMemoryManager *mm, const void *addr, const char *file, int line);
#define check_free(mm, addr) check_free_((mm), (const void *)(addr), __FILE__, __LINE__)

/* The library's page-state map agrees with /proc/self/maps over [base, base+size). */
void check_maps_(IHostMemoryManager *mm, const void *base, size_t size, const char *file,
		 int line);
#define check_maps(mm, base, size) \
	check_maps_((mm), (const void *)(base), (size), __FILE__, __LINE__)

/* ---------- Calls with sentinels ---------- */

/* VirtualAlloc expected to succeed; returns the address. */
void *alloc_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, DWORD protect,
		const char *file, int line);
#define alloc_ok(mm, addr, size, type, prot) \
	alloc_ok_((mm), (void *)(addr), (size), (type), (prot), __FILE__, __LINE__)

/* VirtualAlloc expected to fail with hr, leaving *ppMem NULL. */
void alloc_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, DWORD protect,
		  HRESULT hr, const char *file, int line);
#define alloc_fails(mm, addr, size, type, prot, hr) \
	alloc_fails_((mm), (void *)(addr), (size), (type), (prot), (hr), __FILE__, __LINE__)

/* VirtualProtect expected to succeed; returns the old protection. */
DWORD protect_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD protect,
		  const char *file, int line);
#define protect_ok(mm, addr, size, prot) \
	protect_ok_((mm), (void *)(addr), (size), (prot), __FILE__, __LINE__)

/* VirtualProtect expected to fail with hr, leaving the old protection 0. */
void protect_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD protect, HRESULT hr,
		    const char *file, int line);
#define protect_fails(mm, addr, size, prot, hr) \
	protect_fails_((mm), (void *)(addr), (size), (prot), (hr), __FILE__, __LINE__)

/* MEM_RELEASE of a whole reservation, then conformance_settle(). */
#define release_ok(mm, addr)                                                                   \
	do {                                                                                   \
		assert_hr(S_OK,                                                                \
			  IHostMemoryManager_VirtualFree((mm), (void *)(addr), 0, MEM_RELEASE)); \
		conformance_settle();                                                          \
	} while (0)

/*
 * Two adjacent reservations of `size` bytes each (a multiple of 64 KiB), *a
 * directly below *b. Address space is found by reserving and releasing a
 * double-size block, so the test depends on no fixed address.
 */
void reserve_adjacent_(IHostMemoryManager *mm, size_t size, DWORD protect, char **a, char **b,
		       const char *file, int line);
#define reserve_adjacent(mm, size, prot, a, b) \
	reserve_adjacent_((mm), (size), (prot), (a), (b), __FILE__, __LINE__)

/* ---------- Fixture ---------- */

/*
 * cmocka setup and teardown: *state is a fresh IHostMemoryManager, whose
 * last reference the teardown releases (a test that leaks one fails).
 */
int manager_setup(void **state);
int manager_teardown(void **state);

/* ---------- Effects ---------- */

/*
 * Calls a function whose code is at p (already written there) and reports
 * whether it ran: for pages that must execute without being writable.
 */
bool probe_callable(const void *p);

/* Writes a function that returns at once to p (which must be writable). */
void write_return(void *p);

/* Whether this machine's faults can prove that a page is not executable. */
bool can_probe_execution(void);

/*
 * The page at p allows exactly what `protect` grants (0 for a reserved page):
 * reads, writes, and on x86-64/arm64 for writable pages, execution. The
 * byte at p is preserved.
 */
void check_access_(void *p, DWORD protect, const char *file, int line);
#define check_access(p, prot) check_access_((void *)(p), (prot), __FILE__, __LINE__)

/* ---------- The kernel's view ---------- */

struct vma_info {
	uintptr_t start, end;
	char perms[5];
	unsigned long long inode;
	char path[256];
};

/* The mapping holding addr, from /proc/self/maps; false if addr is unmapped. */
bool vma_find(uintptr_t addr, struct vma_info *out);

/* The start of the first mapping above addr, or USER_LIMIT if there is none. */
uintptr_t vma_next_start(uintptr_t addr);

#endif /* CLRMEMTRACE_CONFORMANCE_H */
