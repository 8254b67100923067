/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager::VirtualProtect against the Win32 contract
 * (win32-vm-semantics.md #4, #40-#47, #49a, cited as "#n").
 */
#include "conformance.h"

#include <string.h>
#include <sys/mman.h>

static const DWORD valid_protections[] = {
	PAGE_NOACCESS, PAGE_READONLY,	  PAGE_READWRITE,
	PAGE_EXECUTE,  PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE,
};

#define N_VALID (sizeof(valid_protections) / sizeof(valid_protections[0]))

static bool is_valid_protection(DWORD p)
{
	size_t i;

	for (i = 0; i < N_VALID; i++) {
		if (valid_protections[i] == p) {
			return true;
		}
	}
	return false;
}

/* #40 */
static void test_protect_reserved(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);

	protect_fails(mm, addr, page, PAGE_READONLY, HR_INVALID_ADDRESS);
	protect_fails(mm, addr + page, 3 * page, PAGE_READWRITE, HR_INVALID_ADDRESS);
	/* Also with an invalid protection: the range is checked first, as on Wine. */
	protect_fails(mm, addr, page, 0, HR_INVALID_ADDRESS);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	check_access(addr, 0);
	check_maps(mm, addr, GRANULARITY);
	release_ok(mm, addr);
}

/* #41 */
static void test_protect_partly_committed(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);

	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READWRITE), addr);
	protect_fails(mm, addr, GRANULARITY - 4, PAGE_READONLY, HR_INVALID_ADDRESS);
	protect_fails(mm, addr, page + 1, PAGE_READONLY, HR_INVALID_ADDRESS);
	/* Reserved first page, committed later pages. */
	assert_ptr_equal(alloc_ok(mm, addr + 3 * page, page, MEM_COMMIT, PAGE_READWRITE),
			 addr + 3 * page);
	protect_fails(mm, addr + 2 * page, 2 * page, PAGE_READONLY, HR_INVALID_ADDRESS);
	/* Nothing changed. */
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_NOACCESS, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	check_access(addr + 3 * page, PAGE_READWRITE);
	check_maps(mm, addr, GRANULARITY);
	release_ok(mm, addr);
}

/* #42 */
static void test_protect_returns_old(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_NOACCESS);

	assert_int_equal(protect_ok(mm, addr, page, PAGE_READONLY), PAGE_NOACCESS);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_NOACCESS, 3 * page, MEM_COMMIT,
		    PAGE_NOACCESS, MEM_PRIVATE);
	check_access(addr, PAGE_READONLY);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE), PAGE_READONLY);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	check_access(addr + page, PAGE_NOACCESS);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #43 */
static void test_protect_old_is_first_page(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	assert_int_equal(protect_ok(mm, addr + page, page, PAGE_EXECUTE_READ), PAGE_READWRITE);
	assert_int_equal(protect_ok(mm, addr + 2 * page, page, PAGE_READONLY), PAGE_READWRITE);
	/* Pages: RW, ER, RO, RW; the old value is that of the range's first page. */
	assert_int_equal(protect_ok(mm, addr + page, 3 * page, PAGE_NOACCESS), PAGE_EXECUTE_READ);
	assert_int_equal(protect_ok(mm, addr, 4 * page, PAGE_READONLY), PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 4 * page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	/* An unaligned address counts from its page. */
	assert_int_equal(protect_ok(mm, addr + 2 * page + 7, 1, PAGE_READWRITE), PAGE_READONLY);
	assert_int_equal(protect_ok(mm, addr + page + 7, 2 * page, PAGE_EXECUTE_READWRITE),
			 PAGE_READONLY);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, 3 * page, MEM_COMMIT,
		    PAGE_EXECUTE_READWRITE, MEM_PRIVATE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/*
 * #44. pflOldProtect NULL is ERROR_NOACCESS and changes nothing (the library
 * reports it as HRESULT_FROM_WIN32(ERROR_NOACCESS), DESIGN.md).
 */
static void test_protect_null_old(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	assert_hr(HR_NOACCESS,
		  IHostMemoryManager_VirtualProtect(mm, addr, page, PAGE_READONLY, NULL));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READONLY), PAGE_READWRITE);
	release_ok(mm, addr);
}

/* #45 */
static void test_protect_invalid_values(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	protect_fails(mm, addr, 2 * page - 4, 0, HR_INVALID_PARAMETER);
	protect_fails(mm, addr, page, PAGE_READWRITE | PAGE_EXECUTE_WRITECOPY,
		      HR_INVALID_PARAMETER);
	protect_fails(mm, addr, page, PAGE_READONLY | PAGE_READWRITE, HR_INVALID_PARAMETER);
	/* Wine ignores bits above the modifiers. */
	UNLESS_WINE(protect_fails(mm, addr, page, PAGE_READWRITE | 0x800, HR_INVALID_PARAMETER));
	UNLESS_WINE(protect_fails(mm, addr, page, PAGE_READWRITE | 0x80000000u,
				  HR_INVALID_PARAMETER));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	release_ok(mm, addr);
}

/* #4 */
static void test_protect_writecopy(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	protect_fails(mm, addr, page, PAGE_WRITECOPY, HR_INVALID_PARAMETER);
	protect_fails(mm, addr, page, PAGE_EXECUTE_WRITECOPY, HR_INVALID_PARAMETER);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #46: every base-bit combination from a read-write page. */
static void test_protect_combinations(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	DWORD p;
	int successes = 0;

	for (p = 1; p <= 0xff; p++) {
		if (is_valid_protection(p)) {
			assert_int_equal(protect_ok(mm, addr, page, p), PAGE_READWRITE);
			check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, p,
				    MEM_PRIVATE);
			assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE), p);
			successes++;
		} else {
			protect_fails(mm, addr, page, p, HR_INVALID_PARAMETER);
			check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT,
				    PAGE_READWRITE, MEM_PRIVATE);
		}
	}
	assert_int_equal(successes, 6);
	release_ok(mm, addr);
}

/* #46: the cross product of the valid protections, with their real effects. */
static void test_protect_transitions(void **state)
{
	IHostMemoryManager *mm = *state;
	size_t i, j;

	for (i = 0; i < N_VALID; i++) {
		for (j = 0; j < N_VALID; j++) {
			DWORD from = valid_protections[i], to = valid_protections[j];
			char *addr = alloc_ok(mm, NULL, page, MEM_COMMIT, from);

			assert_int_equal(protect_ok(mm, addr, page, to), from);
			check_query(mm, addr, addr, addr, from, page, MEM_COMMIT, to, MEM_PRIVATE);
			check_access(addr, to);
			check_maps(mm, addr, page);
			release_ok(mm, addr);
		}
	}
}

/* #42, #5: read-only pages refuse writes, executable ones run code (x86-64, arm64). */
static void test_protect_execute(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 3 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	if (!can_probe_execution()) {
		release_ok(mm, addr);
		skip();
	}
	write_return(addr);
	write_return(addr + page);
	write_return(addr + 2 * page);
	assert_false(probe_callable(addr));
	assert_int_equal(protect_ok(mm, addr, page, PAGE_EXECUTE_READ), PAGE_READWRITE);
	assert_int_equal(protect_ok(mm, addr + page, page, PAGE_EXECUTE), PAGE_READWRITE);
	assert_int_equal(protect_ok(mm, addr + 2 * page, page, PAGE_READONLY), PAGE_READWRITE);
	assert_true(probe_callable(addr));
	assert_true(probe_callable(addr + page));
	assert_false(probe_callable(addr + 2 * page));
	assert_false(probe_writable(addr));
	assert_false(probe_writable(addr + page));
	assert_false(probe_writable(addr + 2 * page));
	check_maps(mm, addr, 3 * page);
	release_ok(mm, addr);
}

/* #47 */
static void test_protect_split_and_merge(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	assert_int_equal(protect_ok(mm, addr, 3 * page, PAGE_READONLY), PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 3 * page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_READWRITE, 13 * page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_maps(mm, addr, 16 * page);
	/* A hole in the middle splits in three. */
	assert_int_equal(protect_ok(mm, addr + 8 * page, page, PAGE_NOACCESS), PAGE_READWRITE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_READWRITE, 5 * page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, addr + 8 * page, addr + 8 * page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_NOACCESS, MEM_PRIVATE);
	check_query(mm, addr + 9 * page, addr + 9 * page, addr, PAGE_READWRITE, 7 * page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_maps(mm, addr, 16 * page);
	/* Restoring merges the runs again. */
	assert_int_equal(protect_ok(mm, addr, 3 * page, PAGE_READWRITE), PAGE_READONLY);
	assert_int_equal(protect_ok(mm, addr + 8 * page, page, PAGE_READWRITE), PAGE_NOACCESS);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 16 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);
}

/*
 * #49a: a range spanning two adjacent reservations fails and changes nothing.
 * A range that leaves its reservation is ERROR_INVALID_PARAMETER (Wine's
 * STATUS_INVALID_PARAMETER when no view holds the range).
 */
static void test_protect_spanning_reservations(void **state)
{
	IHostMemoryManager *mm = *state;
	char *lo, *hi;

	reserve_adjacent(mm, GRANULARITY, PAGE_NOACCESS, &lo, &hi);
	assert_ptr_equal(alloc_ok(mm, lo, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), lo);
	assert_ptr_equal(alloc_ok(mm, hi, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), hi);
	protect_fails(mm, hi - page, 2 * page, PAGE_READONLY, HR_INVALID_PARAMETER);
	protect_fails(mm, lo, 2 * GRANULARITY, PAGE_READONLY, HR_INVALID_PARAMETER);
	check_query(mm, lo, lo, lo, PAGE_NOACCESS, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, hi, hi, hi, PAGE_NOACCESS, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(hi - page, PAGE_READWRITE);
	check_access(hi, PAGE_READWRITE);
	check_maps(mm, lo, 2 * GRANULARITY);
	release_ok(mm, lo);
	release_ok(mm, hi);
}

/* #49a: a range running from a reservation into free address space. */
static void test_protect_range_leaves_reservation(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	protect_fails(mm, addr + page, 2 * page, PAGE_READONLY, HR_INVALID_PARAMETER);
	protect_fails(mm, addr, SIZE_MAX - page, PAGE_READONLY, HR_INVALID_PARAMETER);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr + page, PAGE_READWRITE);
	release_ok(mm, addr);
}

/*
 * Intended deviation from Wine: memory the manager did not allocate is
 * ERROR_INVALID_ADDRESS (Wine answers ERROR_INVALID_PARAMETER because no view
 * holds it); the mapping is left alone.
 */
static void test_protect_foreign_memory(void **state)
{
	IHostMemoryManager *mm = *state;
	char *foreign = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	char *freed;
	int local = 0;

	assert_true(foreign != MAP_FAILED);
	protect_fails(mm, foreign, page, PAGE_READONLY, HR_INVALID_ADDRESS);
	check_access(foreign, PAGE_READWRITE);
	assert_int_equal(munmap(foreign, 2 * page), 0);
	protect_fails(mm, &local, sizeof(local), PAGE_READONLY, HR_INVALID_ADDRESS);
	/* Beyond user space: an invalid parameter, as for VirtualAlloc and VirtualQuery (#9, #56). */
	protect_fails(mm, (void *)USER_LIMIT, page, PAGE_READONLY, HR_INVALID_PARAMETER);
	protect_fails(mm, (void *)(uintptr_t)0xffffffffff600000ull, page, PAGE_READONLY,
		      HR_INVALID_PARAMETER);
	/* Released memory. */
	freed = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	release_ok(mm, freed);
	protect_fails(mm, freed, page, PAGE_READWRITE, HR_UNALLOCATED);
	/* The unused rest of a reservation's 64 KiB. */
	freed = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	protect_fails(mm, freed + page, page, PAGE_READWRITE, HR_UNALLOCATED);
	release_ok(mm, freed);
}

/*
 * A zero-length range at a page-aligned committed address succeeds, changes
 * nothing and reports the page's protection (DESIGN.md).
 */
static void test_protect_zero_size(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, PAGE_NOACCESS);

	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_EXECUTE_READ), addr);
	assert_int_equal(protect_ok(mm, addr, 0, PAGE_READWRITE), PAGE_EXECUTE_READ);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_EXECUTE_READ,
		    MEM_PRIVATE);
	check_access(addr, PAGE_EXECUTE_READ);
	/* A reserved page is still not committed. */
	protect_fails(mm, addr + page, 0, PAGE_READWRITE, HR_INVALID_ADDRESS);
	check_maps(mm, addr, 2 * page);
	release_ok(mm, addr);
}

/*
 * Intended deviation from Windows: PAGE_TARGETS_INVALID is accepted and
 * dropped, as in Wine, because Control Flow Guard is not emulated.
 */
static void test_protect_targets_invalid(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	assert_int_equal(protect_ok(mm, addr, page, PAGE_EXECUTE_READ | PAGE_TARGETS_INVALID),
			 PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_EXECUTE_READ,
		    MEM_PRIVATE);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE), PAGE_EXECUTE_READ);
	release_ok(mm, addr);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_protect_reserved),
		TEST(test_protect_partly_committed),
		TEST(test_protect_returns_old),
		TEST(test_protect_old_is_first_page),
		TEST(test_protect_null_old),
		TEST(test_protect_invalid_values),
		TEST(test_protect_writecopy),
		TEST(test_protect_combinations),
		TEST(test_protect_transitions),
		TEST(test_protect_execute),
		TEST(test_protect_split_and_merge),
		TEST(test_protect_spanning_reservations),
		TEST(test_protect_range_leaves_reservation),
		TEST(test_protect_foreign_memory),
		TEST(test_protect_zero_size),
		TEST(test_protect_targets_invalid),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
