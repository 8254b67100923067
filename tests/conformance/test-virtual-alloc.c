/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager::VirtualAlloc against the Win32 contract: argument
 * validation, reservation and address choice, commit
 * (win32-vm-semantics.md #1-#25, cited as "#n").
 */
#include "conformance.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static const DWORD valid_protections[] = {
	PAGE_NOACCESS, PAGE_READONLY,	  PAGE_READWRITE,
	PAGE_EXECUTE,  PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE,
};

static bool is_valid_protection(DWORD p)
{
	size_t i;

	for (i = 0; i < sizeof(valid_protections) / sizeof(valid_protections[0]); i++) {
		if (valid_protections[i] == p) {
			return true;
		}
	}
	return false;
}

/* #1 */
static void test_alloc_zero_size(void **state)
{
	IHostMemoryManager *mm = *state;

	alloc_fails(mm, NULL, 0, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, 0, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, 0, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_PARAMETER);
}

/* #2 */
static void test_alloc_protection_zero(void **state)
{
	IHostMemoryManager *mm = *state;
	char *base;

	alloc_fails(mm, NULL, page, MEM_RESERVE, 0, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_COMMIT, 0, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, 0, HR_INVALID_PARAMETER);

	/* Also when committing inside an existing reservation, which stays untouched. */
	base = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);
	alloc_fails(mm, base, page, MEM_COMMIT, 0, HR_INVALID_PARAMETER);
	check_query(mm, base, base, base, PAGE_NOACCESS, 4 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	release_ok(mm, base);
}

/* #3, #5: of all combinations of the eight base bits only six protections are valid. */
static void test_alloc_protection_combinations(void **state)
{
	IHostMemoryManager *mm = *state;
	DWORD p;
	int successes = 0;

	for (p = 1; p <= 0xff; p++) {
		if (is_valid_protection(p)) {
			char *addr = alloc_ok(mm, NULL, page, MEM_COMMIT, p);

			check_query(mm, addr, addr, addr, p, page, MEM_COMMIT, p, MEM_PRIVATE);
			release_ok(mm, addr);
			addr = alloc_ok(mm, NULL, page, MEM_RESERVE, p);
			check_query(mm, addr, addr, addr, p, page, MEM_RESERVE, 0, MEM_PRIVATE);
			release_ok(mm, addr);
			successes++;
		} else {
			alloc_fails(mm, NULL, page, MEM_COMMIT, p, HR_INVALID_PARAMETER);
			alloc_fails(mm, NULL, page, MEM_RESERVE, p, HR_INVALID_PARAMETER);
		}
	}
	assert_int_equal(successes, 6);
}

/* #4 */
static void test_alloc_writecopy_rejected(void **state)
{
	IHostMemoryManager *mm = *state;
	char *base;

	alloc_fails(mm, NULL, page, MEM_COMMIT, PAGE_WRITECOPY, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_COMMIT, PAGE_EXECUTE_WRITECOPY, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_RESERVE, PAGE_WRITECOPY, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_RESERVE, PAGE_EXECUTE_WRITECOPY, HR_INVALID_PARAMETER);

	base = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, PAGE_NOACCESS);
	alloc_fails(mm, base, page, MEM_COMMIT, PAGE_WRITECOPY, HR_INVALID_PARAMETER);
	alloc_fails(mm, base, page, MEM_COMMIT, PAGE_EXECUTE_WRITECOPY, HR_INVALID_PARAMETER);
	check_query(mm, base, base, base, PAGE_NOACCESS, 2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_maps(mm, base, 2 * page);
	release_ok(mm, base);
}

/* #5: what a one-page commit reports, and that it really grants that access. */
static void test_alloc_commit_reports_protection(void **state)
{
	IHostMemoryManager *mm = *state;
	size_t i;

	for (i = 0; i < sizeof(valid_protections) / sizeof(valid_protections[0]); i++) {
		DWORD p = valid_protections[i];
		char *addr = alloc_ok(mm, NULL, page, MEM_COMMIT, p);
		char *again;

		check_query(mm, addr, addr, addr, p, page, MEM_COMMIT, p, MEM_PRIVATE);
		check_access(addr, p);
		if (p == PAGE_READWRITE || p == PAGE_EXECUTE_READWRITE) {
			/* Writing does not change the reported protection. */
			addr[0] = 0x55;
			check_query(mm, addr, addr, addr, p, page, MEM_COMMIT, p, MEM_PRIVATE);
		}
		again = alloc_ok(mm, addr, page, MEM_COMMIT, p);
		assert_ptr_equal(again, addr);
		check_query(mm, addr, addr, addr, p, page, MEM_COMMIT, p, MEM_PRIVATE);
		check_maps(mm, addr, page);
		release_ok(mm, addr);
	}
}

/* #6 */
static void test_alloc_at_round_to_page(void **state)
{
	IHostMemoryManager *mm = *state;
	const DWORD at_round_to_page = 0x40000000;

	alloc_fails(mm, NULL, page, MEM_RESERVE | at_round_to_page, PAGE_NOACCESS,
		    HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, page, MEM_COMMIT | MEM_RESERVE | at_round_to_page, PAGE_READWRITE,
		    HR_INVALID_PARAMETER);
}

/* #7 */
static void test_alloc_type_validation(void **state)
{
	IHostMemoryManager *mm = *state;
	static const DWORD bad[] = {
		0,
		MEM_TOP_DOWN,
		MEM_DECOMMIT,
		MEM_RELEASE,
		MEM_FREE,
		MEM_RESERVE | MEM_DECOMMIT,
		MEM_RESERVE | MEM_RELEASE,
		MEM_RESERVE | MEM_PHYSICAL,
		MEM_RESERVE | MEM_LARGE_PAGES,
		MEM_COMMIT | MEM_RESERVE | MEM_LARGE_PAGES,
		MEM_RESERVE | MEM_RESET_UNDO,
		MEM_RESERVE | MEM_ROTATE,
		MEM_RESERVE | MEM_4MB_PAGES,
		MEM_RESERVE | MEM_RESERVE_PLACEHOLDER,
		MEM_RESERVE | MEM_COALESCE_PLACEHOLDERS,
		MEM_RESERVE | MEM_PRESERVE_PLACEHOLDER,
		MEM_COMMIT | MEM_PRIVATE,
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		alloc_fails(mm, NULL, page, bad[i], PAGE_READWRITE, HR_INVALID_PARAMETER);
	}
}

/* #9 */
static void test_alloc_address_limits(void **state)
{
	IHostMemoryManager *mm = *state;
	uintptr_t top = USER_LIMIT & ~(uintptr_t)(GRANULARITY - 1);

	/* The low 64 KiB are never available. */
	alloc_fails(mm, (void *)(uintptr_t)page, page, MEM_RESERVE, PAGE_NOACCESS,
		    HR_INVALID_PARAMETER);
	alloc_fails(mm, (void *)(GRANULARITY - page), page, MEM_RESERVE | MEM_COMMIT,
		    PAGE_READWRITE, HR_INVALID_PARAMETER);
	alloc_fails(mm, (void *)(uintptr_t)page, page, MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_PARAMETER);
	/* A range may not wrap around the top of the address space. */
	alloc_fails(mm, (void *)top, SIZE_MAX - 2 * page, MEM_RESERVE, PAGE_NOACCESS,
		    HR_INVALID_PARAMETER);
	alloc_fails(mm, (void *)(UINTPTR_MAX & ~(uintptr_t)(GRANULARITY - 1)), 2 * GRANULARITY,
		    MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_PARAMETER);
	/* Nor lie beyond the user-space limit, or run over it. */
	alloc_fails(mm, (void *)(top + GRANULARITY), GRANULARITY, MEM_RESERVE, PAGE_NOACCESS,
		    HR_INVALID_PARAMETER);
	alloc_fails(mm, (void *)(top - GRANULARITY), 2 * GRANULARITY, MEM_RESERVE,
		    PAGE_NOACCESS, HR_INVALID_PARAMETER);
	alloc_fails(mm, (void *)(top - GRANULARITY), 2 * GRANULARITY, MEM_RESERVE | MEM_COMMIT,
		    PAGE_READWRITE, HR_INVALID_PARAMETER);
}

/*
 * #10: an unsatisfiable size fails. Intended deviation from Wine: sizes at or
 * above the user-space limit are invalid parameters (87); a size that fits
 * the address space but cannot be placed is E_OUTOFMEMORY (DESIGN.md).
 */
static void test_alloc_huge_sizes(void **state)
{
	IHostMemoryManager *mm = *state;
	const SIZE_T pal_test22 = (SIZE_T)2147483647000000ull;
	/* Larger than any hole: the executable and the libraries split the address space. */
	const SIZE_T no_hole = (SIZE_T)(USER_LIMIT / 8 * 7) & ~(SIZE_T)(GRANULARITY - 1);

	alloc_fails(mm, NULL, pal_test22, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, pal_test22, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, SIZE_MAX, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_PARAMETER);
	alloc_fails(mm, NULL, SIZE_MAX - page + 2, MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_PARAMETER);
	/* Wine: ERROR_NOT_ENOUGH_MEMORY for a size of exactly the limit. */
	alloc_fails(mm, NULL, USER_LIMIT, MEM_RESERVE, PAGE_NOACCESS,
		    WINE_DIFFERS(E_OUTOFMEMORY, HR_INVALID_PARAMETER));
	/*
	 * Linux's layout has no such hole; Windows' may (the executable sits low,
	 * the system libraries at the top), and Wine keeps a byte per page of a
	 * reservation, so trying there exhausts the machine's memory.
	 */
	UNLESS_WINDOWS(alloc_fails(mm, NULL, no_hole, MEM_RESERVE, PAGE_NOACCESS, E_OUTOFMEMORY));
	UNLESS_WINDOWS(alloc_fails(mm, NULL, no_hole, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
				   E_OUTOFMEMORY));
	UNLESS_WINDOWS(alloc_fails(mm, NULL, no_hole, MEM_COMMIT, PAGE_READWRITE, E_OUTOFMEMORY));
}

/* #11 */
static void test_alloc_null_address_alignment(void **state)
{
	IHostMemoryManager *mm = *state;
	static const size_t pages[] = { 1, 2, 3, 16, 17, 100 };
	char *addr[sizeof(pages) / sizeof(pages[0])];
	size_t i;

	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		addr[i] = alloc_ok(mm, NULL, pages[i] * page, MEM_RESERVE | MEM_COMMIT,
				   PAGE_EXECUTE_READWRITE);
		assert_int_equal((uintptr_t)addr[i] & (GRANULARITY - 1), 0);
		check_query(mm, addr[i], addr[i], addr[i], PAGE_EXECUTE_READWRITE, pages[i] * page,
			    MEM_COMMIT, PAGE_EXECUTE_READWRITE, MEM_PRIVATE);
	}
	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		release_ok(mm, addr[i]);
	}
	for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		addr[i] = alloc_ok(mm, NULL, pages[i] * page, MEM_RESERVE, PAGE_NOACCESS);
		assert_int_equal((uintptr_t)addr[i] & (GRANULARITY - 1), 0);
		addr[i] = alloc_ok(mm, addr[i], page, MEM_COMMIT, PAGE_READWRITE);
		assert_int_equal((uintptr_t)addr[i] & (GRANULARITY - 1), 0);
		release_ok(mm, addr[i]);
		addr[i] = alloc_ok(mm, NULL, pages[i] * page, MEM_COMMIT, PAGE_READONLY);
		assert_int_equal((uintptr_t)addr[i] & (GRANULARITY - 1), 0);
		release_ok(mm, addr[i]);
	}
}

/* #12 */
static void test_alloc_same_address_after_release(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
	char *again;

	release_ok(mm, addr);
	again = alloc_ok(mm, addr, page, MEM_RESERVE | MEM_COMMIT, PAGE_EXECUTE_READWRITE);
	assert_ptr_equal(again, addr);
	check_query(mm, addr, addr, addr, PAGE_EXECUTE_READWRITE, page, MEM_COMMIT,
		    PAGE_EXECUTE_READWRITE, MEM_PRIVATE);
	check_maps(mm, addr, page);
	release_ok(mm, addr);
}

/* #13 */
static void test_alloc_explicit_address_rounding(void **state)
{
	IHostMemoryManager *mm = *state;
	char *base = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);
	char *addr;

	/* Rounded down to 64 KiB, so it lands on the existing allocation. */
	alloc_fails(mm, base + page, page, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_ADDRESS);
	alloc_fails(mm, base + page, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_ADDRESS);
	alloc_fails(mm, base + GRANULARITY - 1, 1, MEM_RESERVE, PAGE_NOACCESS,
		    HR_INVALID_ADDRESS);
	check_query(mm, base, base, base, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	release_ok(mm, base);

	/* On free address space the reservation starts at the 64 KiB boundary below. */
	addr = alloc_ok(mm, base + page + page / 2, page, MEM_RESERVE, PAGE_READWRITE);
	assert_ptr_equal(addr, base);
	check_query(mm, base, base, base, PAGE_READWRITE, 3 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_maps(mm, base, 3 * page);
	release_ok(mm, base);

	/* A commit-only request rounds down to its page (#25). */
	base = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);
	addr = alloc_ok(mm, base + page + page / 2, page, MEM_COMMIT, PAGE_READWRITE);
	assert_ptr_equal(addr, base + page);
	check_query(mm, base + page, base + page, base, PAGE_NOACCESS, 2 * page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	release_ok(mm, base);
}

/* #14, #69 */
static void test_alloc_region_covers_touched_pages(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY - 4, MEM_RESERVE, PAGE_NOACCESS);
	char *again;

	check_query(mm, addr, addr, addr, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	release_ok(mm, addr);

	/* Two bytes straddling a page boundary take both pages. */
	again = alloc_ok(mm, addr + page - 1, 2, MEM_RESERVE, PAGE_READONLY);
	assert_ptr_equal(again, addr);
	check_query(mm, addr, addr, addr, PAGE_READONLY, 2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	release_ok(mm, addr);

	/* A one-byte request is a page. */
	addr = alloc_ok(mm, NULL, 1, MEM_COMMIT, PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #15 */
static void test_alloc_reserved_protect_zero(void **state)
{
	IHostMemoryManager *mm = *state;
	size_t i;

	for (i = 0; i < sizeof(valid_protections) / sizeof(valid_protections[0]); i++) {
		DWORD p = valid_protections[i];
		char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, p);

		check_query(mm, addr + page, addr + page, addr, p, page, MEM_RESERVE, 0,
			    MEM_PRIVATE);
		check_access(addr, 0);
		check_access(addr + page, 0);
		check_maps(mm, addr, 2 * page);
		release_ok(mm, addr);
	}
}

/* #16 */
static void test_alloc_commit_without_reserve(void **state)
{
	IHostMemoryManager *mm = *state;
	size_t i;

	for (i = 0; i < sizeof(valid_protections) / sizeof(valid_protections[0]); i++) {
		DWORD p = valid_protections[i];
		char *addr = alloc_ok(mm, NULL, 1024, MEM_COMMIT, p);

		check_query(mm, addr + 1000, addr, addr, p, page, MEM_COMMIT, p, MEM_PRIVATE);
		check_access(addr, p);
		check_maps(mm, addr, page);
		release_ok(mm, addr);
	}
}

/* #17 */
static void test_alloc_commit_outside_reservation(void **state)
{
	IHostMemoryManager *mm = *state;
	char *base = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);
	char *freed = alloc_ok(mm, NULL, page, MEM_RESERVE, PAGE_NOACCESS);
	void *foreign;

	release_ok(mm, freed);
	/* Free address space cannot be committed. */
	alloc_fails(mm, freed, page, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	/* Running past the end of the reservation; nothing is committed. */
	alloc_fails(mm, base + 3 * page, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_ADDRESS);
	alloc_fails(mm, base, 4 * page + 1, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	check_query(mm, base, base, base, PAGE_NOACCESS, 4 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	/* The unused rest of the reservation's last 64 KiB is not part of it. */
	alloc_fails(mm, base + 4 * page, page, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	check_maps(mm, base, 4 * page);
	release_ok(mm, base);

	/* Nor can memory the manager did not allocate. */
	foreign = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(foreign != MAP_FAILED);
	alloc_fails(mm, foreign, page, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	check_access(foreign, 0);
	assert_int_equal(munmap(foreign, page), 0);
}

/* #18 */
static void test_alloc_reserve_over_reserved(void **state)
{
	IHostMemoryManager *mm = *state;
	char *lo, *hi;

	reserve_adjacent(mm, GRANULARITY, PAGE_NOACCESS, &lo, &hi);
	release_ok(mm, lo);
	/* Half free, half reserved: fails, and the free half stays free. */
	alloc_fails(mm, lo, 2 * GRANULARITY, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_ADDRESS);
	alloc_fails(mm, lo, 2 * GRANULARITY, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_ADDRESS);
	check_free(mm, lo);
	/* A request wholly over the existing reservation fails too. */
	alloc_fails(mm, hi, GRANULARITY, MEM_RESERVE, PAGE_READWRITE, HR_INVALID_ADDRESS);
	alloc_fails(mm, hi, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	check_query(mm, hi, hi, hi, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	check_maps(mm, hi, GRANULARITY);
	release_ok(mm, hi);
}

/* #20 */
static void test_alloc_commit_first_page(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE, PAGE_NOACCESS);
	char *addr1;

	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 16 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	addr1 = alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READONLY);
	assert_ptr_equal(addr1, addr);
	check_query(mm, addr1, addr1, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	check_query(mm, addr1 + page, addr1 + page, addr, PAGE_NOACCESS, 15 * page, MEM_RESERVE,
		    0, MEM_PRIVATE);
	check_access(addr1, PAGE_READONLY);
	check_access(addr1 + page, 0);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);
}

/* #21 */
static void test_alloc_commit_keeps_contents(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);
	char *p;

	p = alloc_ok(mm, addr + page, page, MEM_COMMIT, PAGE_READWRITE);
	memset(p, 0x5a, page);
	/* Committing again, and committing a larger range around it, keep the data. */
	assert_ptr_equal(alloc_ok(mm, p, page, MEM_COMMIT, PAGE_READWRITE), p);
	assert_ptr_equal(alloc_ok(mm, addr, 4 * page, MEM_COMMIT, PAGE_READWRITE), addr);
	assert_int_equal((unsigned char)p[0], 0x5a);
	assert_int_equal((unsigned char)p[page - 1], 0x5a);
	assert_int_equal(addr[0], 0);
	assert_int_equal(addr[3 * page], 0);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 4 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #22 */
static void test_alloc_commit_reads_zero(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, PAGE_NOACCESS);
	char *p = alloc_ok(mm, addr, 2 * page, MEM_COMMIT, PAGE_READWRITE);
	size_t i;

	for (i = 0; i < 2 * page; i++) {
		assert_int_equal(p[i], 0);
	}
	memset(p, 0xa5, 2 * page);
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, p, 2 * page, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_access(addr, 0);
	p = alloc_ok(mm, addr, 2 * page, MEM_COMMIT, PAGE_READWRITE);
	for (i = 0; i < 2 * page; i++) {
		assert_int_equal(p[i], 0);
	}
	check_maps(mm, addr, 2 * page);
	release_ok(mm, addr);
}

/* #23 */
static void test_alloc_commit_protection_differs(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);

	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READWRITE), addr);
	assert_ptr_equal(alloc_ok(mm, addr + 2 * page, page, MEM_COMMIT, PAGE_EXECUTE_READWRITE),
			 addr + 2 * page);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_NOACCESS, page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_query(mm, addr + 2 * page, addr + 2 * page, addr, PAGE_NOACCESS, page, MEM_COMMIT,
		    PAGE_EXECUTE_READWRITE, MEM_PRIVATE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_NOACCESS, page, MEM_RESERVE,
		    0, MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	check_access(addr + page, 0);
	check_access(addr + 2 * page, PAGE_EXECUTE_READWRITE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #24 */
static void test_alloc_recommit_changes_protection(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	addr[0] = 0x11;
	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READONLY), addr);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	assert_int_equal(addr[0], 0x11);
	check_access(addr, PAGE_READONLY);
	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_NOACCESS), addr);
	check_access(addr, PAGE_NOACCESS);
	assert_ptr_equal(alloc_ok(mm, addr, 2 * page, MEM_COMMIT, PAGE_EXECUTE_READ), addr);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT,
		    PAGE_EXECUTE_READ, MEM_PRIVATE);
	assert_int_equal(addr[0], 0x11);
	check_access(addr, PAGE_EXECUTE_READ);
	check_maps(mm, addr, 2 * page);
	release_ok(mm, addr);
}

/* #25 */
static void test_alloc_commit_returns_page_start(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 8 * page, MEM_RESERVE, PAGE_NOACCESS);
	char *p;

	p = alloc_ok(mm, addr + 2 * page + 123, page, MEM_COMMIT, PAGE_READWRITE);
	assert_ptr_equal(p, addr + 2 * page);
	/* The range [addr+2p+123, addr+3p+123) touches two pages. */
	check_query(mm, p, p, addr, PAGE_NOACCESS, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	p = alloc_ok(mm, addr + 6 * page - 1, 1, MEM_COMMIT, PAGE_READONLY);
	assert_ptr_equal(p, addr + 5 * page);
	check_query(mm, p, p, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READONLY, MEM_PRIVATE);
	check_maps(mm, addr, 8 * page);
	release_ok(mm, addr);
}

#if !defined(_WIN32) /* POSIX backend only: see POSIX_ONLY_TEST. */
/* #18: an explicit reservation over memory someone else mapped fails and maps nothing. */
static void test_alloc_reserve_over_foreign(void **state)
{
	IHostMemoryManager *mm = *state;
	char *g = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);
	char *foreign;
	void *code = dlsym(RTLD_DEFAULT, "getpid");
	int local = 0;

	release_ok(mm, g);
	foreign = mmap(g + 2 * page, page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	assert_ptr_equal(foreign, g + 2 * page);
	foreign[0] = 0x5c;
	alloc_fails(mm, g, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_ADDRESS);
	alloc_fails(mm, g + page, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_ADDRESS);
	/* The foreign page is untouched and nothing was mapped around it. */
	assert_int_equal(foreign[0], 0x5c);
	check_access(foreign, PAGE_READWRITE);
	check_free(mm, g);
	check_free(mm, g + 3 * page);
	assert_int_equal(munmap(foreign, page), 0);
	/* The same holds over a loaded image and over a stack. */
	assert_non_null(code);
	alloc_fails(mm, code, page, MEM_RESERVE, PAGE_NOACCESS, HR_INVALID_ADDRESS);
	alloc_fails(mm, &local, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_ADDRESS);
	assert_true(probe_readable(code));
}

#endif

/* #9: the highest reservation, ending exactly at the user-space limit, is allowed. */
static void test_alloc_top_of_user_space(void **state)
{
	IHostMemoryManager *mm = *state;
	uintptr_t top = USER_LIMIT & ~(uintptr_t)(GRANULARITY - 1);
	size_t size = USER_LIMIT - top;
	struct vma_info v;
	char *addr;

	if (size == 0 || vma_find(top, &v) || vma_next_start(top) < USER_LIMIT) {
		/* Something (a stack without address randomisation) lives there. */
		alloc_fails(mm, (void *)top, size ? size : GRANULARITY, MEM_RESERVE, PAGE_NOACCESS,
			    size ? HR_INVALID_ADDRESS : HR_INVALID_PARAMETER);
		return;
	}
	addr = alloc_ok(mm, (void *)top, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	assert_ptr_equal(addr, (void *)top);
	addr[size - 1] = 1;
	check_query(mm, addr + size - 1, addr + size - page, addr, PAGE_READWRITE, page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, size, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	/* One more page would leave user space. */
	alloc_fails(mm, addr + size - page, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    HR_INVALID_PARAMETER);
	protect_fails(mm, addr + size - page, 2 * page, PAGE_READONLY, HR_INVALID_PARAMETER);
	release_ok(mm, addr);
	check_free(mm, addr);
}

/* #14, #20, #50: a reservation far larger than memory, as a GC heap makes one. */
static void test_alloc_large_reservation(void **state)
{
	IHostMemoryManager *mm = *state;
	const size_t size = (size_t)16 << 30;
	char *addr = alloc_ok(mm, NULL, size, MEM_RESERVE, PAGE_READWRITE);
	char *last = addr + size - page;

	assert_int_equal((uintptr_t)addr & (GRANULARITY - 1), 0);
	check_query(mm, addr + size / 2, addr + size / 2, addr, PAGE_READWRITE, size / 2,
		    MEM_RESERVE, 0, MEM_PRIVATE);
	assert_ptr_equal(alloc_ok(mm, addr, 2 * page, MEM_COMMIT, PAGE_READWRITE), addr);
	assert_ptr_equal(alloc_ok(mm, last, page, MEM_COMMIT, PAGE_READWRITE), last);
	last[page - 1] = 0x7f;
	addr[0] = 0x7e;
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, addr + 2 * page, addr + 2 * page, addr, PAGE_READWRITE,
		    size - 3 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, last + 5, last, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr + size / 2, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, last, page, MEM_DECOMMIT));
	check_query(mm, addr + 2 * page, addr + 2 * page, addr, PAGE_READWRITE,
		    size - 2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_int_equal(addr[0], 0x7e);
	release_ok(mm, addr);
	check_free(mm, addr);
}

/* The hosting interface's own arguments (clr-hosting-api.md §1.3, §1.7). */
static void test_alloc_interface_arguments(void **state)
{
	IHostMemoryManager *mm = *state;
	void *p = SENTINEL_PTR;

	assert_hr(E_POINTER, IHostMemoryManager_VirtualAlloc(mm, NULL, page, MEM_COMMIT,
							     PAGE_READWRITE, eTaskCritical, NULL));
	assert_hr(E_INVALIDARG,
		  IHostMemoryManager_VirtualAlloc(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE,
						  (EMemoryCriticalLevel)3, &p));
	assert_null(p);
	p = SENTINEL_PTR;
	assert_hr(E_INVALIDARG,
		  IHostMemoryManager_VirtualAlloc(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE,
						  (EMemoryCriticalLevel)-1, &p));
	assert_null(p);
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMemoryManager_VirtualAlloc(mm, NULL, page, MEM_COMMIT,
							PAGE_READWRITE, eProcessCritical, &p));
	assert_non_null(p);
	release_ok(mm, p);
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMemoryManager_VirtualAlloc(mm, NULL, page, MEM_COMMIT,
							PAGE_READWRITE, eAppDomainCritical, &p));
	assert_non_null(p);
	release_ok(mm, p);
}

/*
 * Intended deviation from Windows: PAGE_TARGETS_INVALID is accepted and
 * dropped, as in Wine, because Control Flow Guard is not emulated.
 */
static void test_alloc_targets_invalid(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_EXECUTE_READ | PAGE_TARGETS_INVALID);

	check_query(mm, addr, addr, addr, PAGE_EXECUTE_READ, page, MEM_COMMIT, PAGE_EXECUTE_READ,
		    MEM_PRIVATE);
	release_ok(mm, addr);
	addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, PAGE_READWRITE | PAGE_TARGETS_INVALID);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT,
				  PAGE_EXECUTE_READWRITE | PAGE_TARGETS_INVALID),
			 addr);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_EXECUTE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 2 * page);
	release_ok(mm, addr);
	/* Any other high bit is still invalid (Wine ignores bits above the modifiers). */
	UNLESS_WINE(alloc_fails(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE | 0x80000000u,
				HR_INVALID_PARAMETER));
	UNLESS_WINE(alloc_fails(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE | 0x800,
				HR_INVALID_PARAMETER));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_alloc_zero_size),
		TEST(test_alloc_protection_zero),
		TEST(test_alloc_protection_combinations),
		TEST(test_alloc_writecopy_rejected),
		TEST(test_alloc_commit_reports_protection),
		TEST(test_alloc_at_round_to_page),
		TEST(test_alloc_type_validation),
		TEST(test_alloc_address_limits),
		TEST(test_alloc_huge_sizes),
		TEST(test_alloc_null_address_alignment),
		TEST(test_alloc_same_address_after_release),
		TEST(test_alloc_explicit_address_rounding),
		TEST(test_alloc_region_covers_touched_pages),
		TEST(test_alloc_reserved_protect_zero),
		TEST(test_alloc_commit_without_reserve),
		TEST(test_alloc_commit_outside_reservation),
		TEST(test_alloc_reserve_over_reserved),
		TEST(test_alloc_commit_first_page),
		TEST(test_alloc_commit_keeps_contents),
		TEST(test_alloc_commit_reads_zero),
		TEST(test_alloc_commit_protection_differs),
		TEST(test_alloc_recommit_changes_protection),
		TEST(test_alloc_commit_returns_page_start),
		TEST(test_alloc_large_reservation),
		POSIX_ONLY_TEST(test_alloc_reserve_over_foreign,
				"foreign mappings at page boundaries"),
		TEST(test_alloc_top_of_user_space),
		TEST(test_alloc_interface_arguments),
		TEST(test_alloc_targets_invalid),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
