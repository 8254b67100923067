/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager::VirtualFree against the Win32 contract: free types,
 * decommit and release ranges, unallocated addresses
 * (win32-vm-semantics.md #27-#39, #69, cited as "#n").
 */
#include "conformance.h"

#include <string.h>
#include <sys/mman.h>

static HRESULT vfree(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type)
{
	return IHostMemoryManager_VirtualFree(mm, addr, size, type);
}

/* #27 */
static void test_free_type_zero(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, GRANULARITY, 0));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 0, 0));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #28 */
static void test_free_mem_free_type(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);
	static const DWORD bad[] = {
		MEM_FREE,
		MEM_COMMIT,
		MEM_RESERVE,
		MEM_RESET,
		MEM_DECOMMIT | MEM_COALESCE_PLACEHOLDERS,
		MEM_RELEASE | MEM_PRESERVE_PLACEHOLDER,
		MEM_RELEASE | MEM_COALESCE_PLACEHOLDERS,
		MEM_DECOMMIT | MEM_FREE,
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 0, bad[i]));
	}
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #29 */
static void test_free_release_nonzero_size(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);

	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 1, MEM_RELEASE));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, GRANULARITY, MEM_RELEASE));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_hr(S_OK, vfree(mm, addr, 0, MEM_RELEASE));
	check_free(mm, addr);
}

/* #30 */
static void test_free_decommit_and_release(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	addr[0] = 1;
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 0, MEM_DECOMMIT | MEM_RELEASE));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, page, MEM_DECOMMIT | MEM_RELEASE));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	assert_int_equal(addr[0], 1);
	release_ok(mm, addr);
}

/* #31 */
static void test_free_decommit_partially_committed(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE, PAGE_NOACCESS);

	/* Decommitting a pure reservation succeeds. */
	assert_hr(S_OK, vfree(mm, addr, 16 * page, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 16 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	/*
	 * So does decommitting when only the first page is committed. Wine
	 * ends a reserved run where the pages' former protections differ;
	 * reserved pages compare equal whatever their history (DESIGN.md).
	 */
	assert_ptr_equal(alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READWRITE), addr);
	assert_hr(S_OK, vfree(mm, addr, 16 * page, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, WINE_DIFFERS(page, 16 * page),
		    MEM_RESERVE, 0, MEM_PRIVATE);
	/* And with committed pages between reserved ones. */
	assert_ptr_equal(alloc_ok(mm, addr + 3 * page, 2 * page, MEM_COMMIT, PAGE_READONLY),
			 addr + 3 * page);
	assert_ptr_equal(alloc_ok(mm, addr + 9 * page, page, MEM_COMMIT, PAGE_EXECUTE_READWRITE),
			 addr + 9 * page);
	assert_hr(S_OK, vfree(mm, addr + page, 10 * page, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, WINE_DIFFERS(page, 16 * page),
		    MEM_RESERVE, 0, MEM_PRIVATE);
	check_access(addr + 3 * page, 0);
	check_access(addr + 9 * page, 0);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);
}

/* #32, #69 */
static void test_free_decommit_rounding(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	/* Two bytes straddling the boundary of pages 1 and 2 decommit both. */
	assert_hr(S_OK, vfree(mm, addr + 2 * page - 1, 2, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, 2 * page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	check_access(addr + page, 0);
	check_access(addr + 2 * page, 0);
	check_access(addr + 3 * page, PAGE_READWRITE);
	check_maps(mm, addr, 4 * page);

	/* One byte in the middle of a page decommits that page. */
	assert_hr(S_OK, vfree(mm, addr + 3 * page + page / 2, 1, MEM_DECOMMIT));
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, 3 * page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #33 */
static void test_free_decommit_size_zero(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	/* Size 0 means "the whole allocation", so the address must be in its first page. */
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, addr + page + 1, 0, MEM_DECOMMIT));
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, addr + page, 0, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 16 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	assert_hr(S_OK, vfree(mm, addr + page - 2, 0, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 16 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_access(addr, 0);
	check_access(addr + 15 * page, 0);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);
}

/* #34 */
static void test_free_release_interior(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE, PAGE_NOACCESS);

	assert_hr(HR_INVALID_ADDRESS, vfree(mm, addr + page + 1, 0, MEM_RELEASE));
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, addr + 15 * page, 0, MEM_RELEASE));
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 16 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	/* An address in the first page releases the whole allocation. */
	assert_hr(S_OK, vfree(mm, addr + page - 1, 0, MEM_RELEASE));
	check_free(mm, addr);
	assert_false(vma_find((uintptr_t)addr + 15 * page, &(struct vma_info){ 0 }));
}

/*
 * #35. Intended deviation from Wine: releasing an address that is not
 * allocated, a second release included, is ERROR_INVALID_ADDRESS (DESIGN.md).
 */
static void test_free_unallocated(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	void *foreign;

	/* The unused rest of the reservation's 64 KiB. */
	assert_hr(HR_UNALLOCATED, vfree(mm, addr + page, 0, MEM_RELEASE));
	assert_hr(HR_UNALLOCATED, vfree(mm, addr + page, page, MEM_DECOMMIT));
	release_ok(mm, addr);
	/* A second release, and a decommit of what was released. */
	assert_hr(HR_UNALLOCATED, vfree(mm, addr, 0, MEM_RELEASE));
	assert_hr(HR_UNALLOCATED, vfree(mm, addr, page, MEM_DECOMMIT));
	assert_hr(HR_UNALLOCATED, vfree(mm, addr, 0, MEM_DECOMMIT));
	/* A bad free type is refused before the address is looked at (#27, #30). */
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 0, 0));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 0, MEM_DECOMMIT | MEM_RELEASE));
	/* NULL is an invalid parameter, as on Wine. */
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, NULL, 0, MEM_RELEASE));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, NULL, page, MEM_DECOMMIT));
	/* So is an address beyond user space, as for VirtualAlloc and VirtualQuery (#9, #56). */
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, (void *)USER_LIMIT, 0, MEM_RELEASE));
	assert_hr(HR_INVALID_PARAMETER,
		  vfree(mm, (void *)(uintptr_t)0xffffffffff600000ull, page, MEM_DECOMMIT));
	/* Memory the manager did not allocate is left alone. */
	foreign = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(foreign != MAP_FAILED);
	memset(foreign, 0x42, page);
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, foreign, 0, MEM_RELEASE));
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, foreign, page, MEM_DECOMMIT));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, foreign, 0, 0));
	check_access(foreign, PAGE_READWRITE);
	assert_int_equal(((unsigned char *)foreign)[page - 1], 0x42);
	assert_int_equal(munmap(foreign, page), 0);
	/* Nor is a stack address. */
	assert_hr(HR_INVALID_ADDRESS, vfree(mm, &foreign, 0, MEM_RELEASE));
}

/* #36 */
static void test_free_past_end(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	char *lo, *hi;

	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr + 15 * page, 2 * page, MEM_DECOMMIT));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, 16 * page + 1, MEM_DECOMMIT));
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, addr, SIZE_MAX - page, MEM_DECOMMIT));
	/* Nothing was decommitted by the failures. */
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 16 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);

	/* Also when the range runs on into the next reservation. */
	reserve_adjacent(mm, GRANULARITY, PAGE_READWRITE, &lo, &hi);
	assert_ptr_equal(alloc_ok(mm, lo, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), lo);
	assert_ptr_equal(alloc_ok(mm, hi, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), hi);
	assert_hr(HR_INVALID_PARAMETER, vfree(mm, hi - page, 2 * page, MEM_DECOMMIT));
	check_query(mm, lo, lo, lo, PAGE_READWRITE, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, hi, hi, hi, PAGE_READWRITE, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, lo);
	release_ok(mm, hi);
}

/* #38 */
static void test_free_release_mixed(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 8 * page, MEM_RESERVE, PAGE_NOACCESS);

	alloc_ok(mm, addr + page, page, MEM_COMMIT, PAGE_READWRITE);
	alloc_ok(mm, addr + 3 * page, 2 * page, MEM_COMMIT, PAGE_EXECUTE_READ);
	alloc_ok(mm, addr + 7 * page, page, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
	assert_hr(S_OK, vfree(mm, addr, 0, MEM_RELEASE));
	check_free(mm, addr);
	check_free(mm, addr + 3 * page);
	assert_false(vma_find((uintptr_t)addr + page, &(struct vma_info){ 0 }));
	assert_false(vma_find((uintptr_t)addr + 7 * page, &(struct vma_info){ 0 }));
}

/* #39 */
static void test_free_query_after_release(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 3 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	release_ok(mm, addr);
	check_free(mm, addr);
	check_free(mm, addr + page + 5);
	check_free(mm, addr + 3 * page - 1);
}

/*
 * Intended deviation from Wine: reserved pages compare equal whatever their
 * history, so one query run spans decommitted and never-committed pages.
 */
static void test_free_decommitted_merge_with_reserved(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 8 * page, MEM_RESERVE, PAGE_READWRITE);

	alloc_ok(mm, addr + 2 * page, 2 * page, MEM_COMMIT, PAGE_READWRITE);
	alloc_ok(mm, addr + 6 * page, page, MEM_COMMIT, PAGE_READONLY);
	assert_hr(S_OK, vfree(mm, addr + 2 * page, 2 * page, MEM_DECOMMIT));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 6 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, addr + 3 * page, addr + 3 * page, addr, PAGE_READWRITE, 3 * page,
		    MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, addr + 6 * page, addr + 6 * page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READONLY, MEM_PRIVATE);
	check_query(mm, addr + 7 * page, addr + 7 * page, addr, PAGE_READWRITE, page,
		    MEM_RESERVE, 0, MEM_PRIVATE);
	check_maps(mm, addr, 8 * page);
	release_ok(mm, addr);
}

/* #22: decommit drops the contents, a later commit reads zero. */
static void test_free_decommit_drops_contents(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 3 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	memset(addr, 0x77, 3 * page);
	assert_hr(S_OK, vfree(mm, addr + page, page, MEM_DECOMMIT));
	assert_ptr_equal(alloc_ok(mm, addr + page, page, MEM_COMMIT, PAGE_READWRITE), addr + page);
	assert_int_equal(addr[page], 0);
	assert_int_equal(addr[2 * page - 1], 0);
	/* The neighbours keep theirs. */
	assert_int_equal((unsigned char)addr[page - 1], 0x77);
	assert_int_equal((unsigned char)addr[2 * page], 0x77);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 3 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 3 * page);
	release_ok(mm, addr);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_free_type_zero),
		TEST(test_free_mem_free_type),
		TEST(test_free_release_nonzero_size),
		TEST(test_free_decommit_and_release),
		TEST(test_free_decommit_partially_committed),
		TEST(test_free_decommit_rounding),
		TEST(test_free_decommit_size_zero),
		TEST(test_free_release_interior),
		TEST(test_free_unallocated),
		TEST(test_free_past_end),
		TEST(test_free_release_mixed),
		TEST(test_free_query_after_release),
		TEST(test_free_decommitted_merge_with_reserved),
		TEST(test_free_decommit_drops_contents),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
