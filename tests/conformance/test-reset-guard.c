/* SPDX-License-Identifier: MIT */
/*
 * MEM_RESET, PAGE_GUARD, the cache modifiers, MEM_WRITE_WATCH and
 * MEM_TOP_DOWN (win32-vm-semantics.md #8, #19, #59-#66, cited as "#n").
 */
#include "conformance.h"

#include <string.h>
#include <sys/mman.h>

static HRESULT reset(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD protect, void **out)
{
	*out = SENTINEL_PTR;
	return IHostMemoryManager_VirtualAlloc(mm, addr, size, MEM_RESET, protect, eTaskCritical,
					       out);
}

/* #59 */
static void test_reset_keeps_state(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	void *out;

	memset(addr, 0x3c, 4 * page);
	assert_hr(S_OK, reset(mm, addr, page, PAGE_NOACCESS, &out));
	assert_ptr_equal(out, addr);
	/* The data is either preserved or zero. */
	assert_true(addr[0] == 0x3c || addr[0] == 0);
	assert_true(addr[page - 1] == 0x3c || addr[page - 1] == 0);
	assert_int_equal(addr[page], 0x3c);
	/* flProtect is ignored: the pages stay committed read-write. */
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 4 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	addr[0] = 0x11;
	assert_int_equal(addr[0], 0x11);

	/* Other protections are kept as well. */
	assert_int_equal(protect_ok(mm, addr + page, 2 * page, PAGE_READONLY), PAGE_READWRITE);
	assert_hr(S_OK, reset(mm, addr, 4 * page, PAGE_EXECUTE_READWRITE, &out));
	assert_ptr_equal(out, addr);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT,
		    PAGE_READONLY, MEM_PRIVATE);
	check_access(addr + page, PAGE_READONLY);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #60 */
static void test_reset_reserved(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE, PAGE_NOACCESS);
	void *out;

	assert_hr(S_OK, reset(mm, addr, 16 * page, PAGE_NOACCESS, &out));
	assert_ptr_equal(out, addr);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 16 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READWRITE);
	assert_hr(S_OK, reset(mm, addr, 16 * page, PAGE_READWRITE, &out));
	assert_ptr_equal(out, addr);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_NOACCESS, 15 * page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_access(addr + page, 0);
	check_maps(mm, addr, 16 * page);
	release_ok(mm, addr);
}

/* #61, #69 */
static void test_reset_range(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 16 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	void *out;

	assert_hr(HR_INVALID_ADDRESS, reset(mm, addr + 15 * page, 2 * page, PAGE_NOACCESS, &out));
	assert_null(out);
	assert_hr(HR_INVALID_ADDRESS, reset(mm, addr, 16 * page + 1, PAGE_NOACCESS, &out));
	assert_null(out);
	/* An unaligned range covers every page it touches, and reports its first page. */
	assert_hr(S_OK, reset(mm, addr + 2 * page - 1, 2, PAGE_READWRITE, &out));
	assert_ptr_equal(out, addr + page);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 16 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #62, #35: memory that is not the manager's. */
static void test_reset_unallocated(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	char *foreign;
	void *out;

	/* The unused rest of the reservation's 64 KiB. */
	assert_hr(HR_INVALID_ADDRESS, reset(mm, addr + page, page, PAGE_READWRITE, &out));
	assert_null(out);
	release_ok(mm, addr);
	assert_hr(HR_INVALID_ADDRESS, reset(mm, addr, page, PAGE_READWRITE, &out));
	assert_null(out);
	foreign = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(foreign != MAP_FAILED);
	foreign[0] = 0x21;
	assert_hr(HR_INVALID_ADDRESS, reset(mm, foreign, page, PAGE_READWRITE, &out));
	assert_null(out);
	assert_int_equal(foreign[0], 0x21);
	assert_int_equal(munmap(foreign, page), 0);
}

/*
 * #62. Intended deviation from Wine: MEM_RESET combined with any other
 * allocation-type bit, MEM_RESET with a NULL address, and MEM_RESET with an
 * invalid flProtect are ERROR_INVALID_PARAMETER (Microsoft's contract).
 */
static void test_reset_flag_rules(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	static const DWORD others[] = {
		MEM_COMMIT, MEM_RESERVE, MEM_RESERVE | MEM_COMMIT, MEM_TOP_DOWN, MEM_WRITE_WATCH,
		MEM_RESET_UNDO, MEM_LARGE_PAGES, MEM_PHYSICAL,
	};
	static const DWORD bad_protect[] = {
		0,
		PAGE_WRITECOPY,
		PAGE_EXECUTE_WRITECOPY,
		PAGE_READONLY | PAGE_READWRITE,
		PAGE_NOACCESS | PAGE_GUARD,
		PAGE_READWRITE | PAGE_NOCACHE | PAGE_GUARD,
		0x800 | PAGE_READWRITE,
	};
	size_t i;
	void *out;

	/* Wine accepts most of these (and resets), and MEM_RESET at NULL too. */
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		UNLESS_WINE(alloc_fails(mm, addr, page, MEM_RESET | others[i], PAGE_READWRITE,
					HR_INVALID_PARAMETER));
	}
	for (i = 0; i < sizeof(bad_protect) / sizeof(bad_protect[0]); i++) {
		UNLESS_WINE(alloc_fails(mm, addr, page, MEM_RESET, bad_protect[i],
					HR_INVALID_PARAMETER));
	}
	UNLESS_WINE(alloc_fails(mm, NULL, page, MEM_RESET, PAGE_READWRITE, HR_INVALID_PARAMETER));
	alloc_fails(mm, addr, 0, MEM_RESET, PAGE_READWRITE, HR_INVALID_PARAMETER);
	/* Valid protections with modifiers are fine. */
	assert_hr(S_OK, reset(mm, addr, page, PAGE_READWRITE | PAGE_GUARD, &out));
	assert_ptr_equal(out, addr);
	assert_hr(S_OK, reset(mm, addr, page, PAGE_READONLY | PAGE_TARGETS_INVALID, &out));
	assert_ptr_equal(out, addr);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/*
 * #63. Intended deviation from Windows: the library installs no signal
 * handler (DESIGN.md), so a guard page is inaccessible until its protection
 * changes; an access faults every time instead of raising
 * STATUS_GUARD_PAGE_VIOLATION once and then proceeding.
 */
static void test_guard_alloc(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT,
			      PAGE_READWRITE | PAGE_GUARD);

	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, page, MEM_COMMIT,
		    PAGE_READWRITE | PAGE_GUARD, MEM_PRIVATE);
	check_maps(mm, addr, page);
#if defined(_WIN32)
	/*
	 * The Windows backend is Windows: the first access raises the guard
	 * exception once and turns the guard off; the page is then plain
	 * read-write, and is guarded again below for the rest of the test.
	 */
	assert_false(probe_readable(addr));
	assert_true(probe_readable(addr));
	assert_true(probe_writable(addr));
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE | PAGE_GUARD), PAGE_READWRITE);
#else
	assert_false(probe_readable(addr));
	assert_false(probe_readable(addr));
	assert_false(probe_writable(addr));
#endif
	/* The page is still a guard page after the faults. */
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, page, MEM_COMMIT,
		    PAGE_READWRITE | PAGE_GUARD, MEM_PRIVATE);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE), PAGE_READWRITE | PAGE_GUARD);
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	check_maps(mm, addr, page);
	release_ok(mm, addr);
}

/* #63, §1.11 MarkPageAsGuard: VirtualProtect(page, 1, PAGE_READWRITE | PAGE_GUARD). */
static void test_guard_protect(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	static const DWORD bases[] = {
		PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE, PAGE_EXECUTE_READ,
		PAGE_EXECUTE_READWRITE,
	};
	size_t i;

	addr[page] = 0x42;
	assert_int_equal(protect_ok(mm, addr + page, 1, PAGE_READWRITE | PAGE_GUARD),
			 PAGE_READWRITE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE | PAGE_GUARD, MEM_PRIVATE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr + page, PAGE_READWRITE | PAGE_GUARD);
	check_access(addr, PAGE_READWRITE);
	check_maps(mm, addr, 4 * page);
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		DWORD old = protect_ok(mm, addr + page, page, bases[i] | PAGE_GUARD);

		assert_true(old & PAGE_GUARD);
		check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, page, MEM_COMMIT,
			    bases[i] | PAGE_GUARD, MEM_PRIVATE);
		check_access(addr + page, bases[i] | PAGE_GUARD);
	}
	assert_int_equal(protect_ok(mm, addr + page, page, PAGE_READWRITE),
			 PAGE_EXECUTE_READWRITE | PAGE_GUARD);
	/* Guarding kept the contents. */
	assert_int_equal(addr[page], 0x42);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, 4 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/*
 * #65. Intended deviation from Wine (which accepts some of these): the
 * modifier combinations Microsoft documents as invalid are
 * ERROR_INVALID_PARAMETER.
 */
static void test_guard_modifier_combinations(void **state)
{
	IHostMemoryManager *mm = *state;
	static const DWORD bad[] = {
		PAGE_NOACCESS | PAGE_GUARD,
		PAGE_READWRITE | PAGE_NOCACHE | PAGE_GUARD,
		PAGE_NOACCESS | PAGE_NOCACHE,
		PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE,
		PAGE_READWRITE | PAGE_WRITECOMBINE | PAGE_GUARD,
		PAGE_NOACCESS | PAGE_WRITECOMBINE,
		PAGE_GUARD,
		PAGE_NOCACHE,
		PAGE_WRITECOMBINE,
	};
	static const DWORD good[] = {
		PAGE_READONLY | PAGE_GUARD,
		PAGE_READWRITE | PAGE_NOCACHE,
		PAGE_EXECUTE_READ | PAGE_NOCACHE,
		PAGE_READWRITE | PAGE_WRITECOMBINE,
		PAGE_EXECUTE_READWRITE | PAGE_GUARD,
	};
	char *addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Wine accepts the combinations that have a base protection. */
		if (conformance_on_wine() && (bad[i] & 0xff)) {
			continue;
		}
		alloc_fails(mm, NULL, page, MEM_RESERVE, bad[i], HR_INVALID_PARAMETER);
		alloc_fails(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, bad[i], HR_INVALID_PARAMETER);
		alloc_fails(mm, addr, page, MEM_COMMIT, bad[i], HR_INVALID_PARAMETER);
		protect_fails(mm, addr, page, bad[i], HR_INVALID_PARAMETER);
	}
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	release_ok(mm, addr);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		/* Wine drops PAGE_WRITECOMBINE. */
		DWORD shown = WINE_DIFFERS(good[i] & ~(DWORD)PAGE_WRITECOMBINE, good[i]);

		addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT, good[i]);
		check_query(mm, addr, addr, addr, shown, page, MEM_COMMIT, shown, MEM_PRIVATE);
		check_access(addr, good[i]);
		release_ok(mm, addr);
	}
}

/* #66: PAGE_NOCACHE and PAGE_WRITECOMBINE given at allocation hold for the whole allocation. */
static void test_cache_allocation_wide(void **state)
{
	IHostMemoryManager *mm = *state;
	static const DWORD modifiers[] = { PAGE_NOCACHE, PAGE_WRITECOMBINE };
	size_t i;

	for (i = 0; i < sizeof(modifiers) / sizeof(modifiers[0]); i++) {
		/* Wine drops PAGE_WRITECOMBINE: what queries show of the modifier. */
		DWORD mod = WINE_DIFFERS(modifiers[i] & ~(DWORD)PAGE_WRITECOMBINE, modifiers[i]);
		char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT,
				      PAGE_READWRITE | modifiers[i]);

		check_query(mm, addr, addr, addr, PAGE_READWRITE | mod, 2 * page, MEM_COMMIT,
			    PAGE_READWRITE | mod, MEM_PRIVATE);
		assert_int_equal(protect_ok(mm, addr, page, PAGE_READWRITE), PAGE_READWRITE | mod);
		check_query(mm, addr, addr, addr, PAGE_READWRITE | mod, 2 * page, MEM_COMMIT,
			    PAGE_READWRITE | mod, MEM_PRIVATE);
		assert_int_equal(protect_ok(mm, addr, page, PAGE_READONLY), PAGE_READWRITE | mod);
		check_query(mm, addr, addr, addr, PAGE_READWRITE | mod, page, MEM_COMMIT,
			    PAGE_READONLY | mod, MEM_PRIVATE);
		check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE | mod, page,
			    MEM_COMMIT, PAGE_READWRITE | mod, MEM_PRIVATE);
		check_access(addr, PAGE_READONLY);
		check_access(addr + page, PAGE_READWRITE);
		check_maps(mm, addr, 2 * page);
		/* Decommitted and recommitted pages get the modifier back. */
		assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, addr, page, MEM_DECOMMIT));
		check_query(mm, addr, addr, addr, PAGE_READWRITE | mod, page, MEM_RESERVE, 0,
			    MEM_PRIVATE);
		alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_EXECUTE_READ);
		check_query(mm, addr, addr, addr, PAGE_READWRITE | mod, page, MEM_COMMIT,
			    PAGE_EXECUTE_READ | mod, MEM_PRIVATE);
		release_ok(mm, addr);
	}
}

/*
 * #8. Intended deviation from Wine: MEM_WRITE_WATCH is rejected on POSIX,
 * with MEM_RESERVE too, because the interfaces carry no GetWriteWatch and a
 * CLR turns concurrent GC off when the probe fails (DESIGN.md, §1.11).
 */
/*
 * The Windows backend forwards MEM_WRITE_WATCH (DESIGN.md): a reservation
 * with it succeeds there (#8), whatever its protection.
 */
static void write_watch_reservation(IHostMemoryManager *mm, SIZE_T size, DWORD type,
				    DWORD protect)
{
	char *addr;

	if (!WINDOWS_BACKEND) {
		alloc_fails(mm, NULL, size, type, protect, HR_INVALID_PARAMETER);
		return;
	}
	addr = alloc_ok(mm, NULL, size, type, protect);
	if (type & MEM_COMMIT) {
		check_query(mm, addr, addr, addr, protect, size, MEM_COMMIT, protect, MEM_PRIVATE);
	} else {
		check_query(mm, addr, addr, addr, protect, size, MEM_RESERVE, 0, MEM_PRIVATE);
	}
	release_ok(mm, addr);
}

static void test_write_watch_rejected(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr;

	alloc_fails(mm, NULL, page, MEM_WRITE_WATCH, PAGE_READWRITE, HR_INVALID_PARAMETER);
	/* Without MEM_RESERVE, Wine commits and ignores the flag. */
	UNLESS_WINE(alloc_fails(mm, NULL, page, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE,
				HR_INVALID_PARAMETER));
	write_watch_reservation(mm, GRANULARITY, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE);
	write_watch_reservation(mm, GRANULARITY, MEM_RESERVE | MEM_WRITE_WATCH, PAGE_NOACCESS);
	write_watch_reservation(mm, page, MEM_RESERVE | MEM_COMMIT | MEM_WRITE_WATCH,
				PAGE_READWRITE);
	/* Nor is it accepted when committing in an existing reservation. */
	addr = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_READWRITE);
	UNLESS_WINE(alloc_fails(mm, addr, page, MEM_COMMIT | MEM_WRITE_WATCH, PAGE_READWRITE,
				HR_INVALID_PARAMETER));
	check_query(mm, addr, addr, addr, PAGE_READWRITE, GRANULARITY, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	release_ok(mm, addr);
}

/*
 * #19: MEM_TOP_DOWN places a reservation as high as possible. Between it and
 * the loaded objects above (the top of the mmap area) no free gap could have
 * held it with 64 KiB alignment.
 */
static void test_top_down(void **state)
{
	IHostMemoryManager *mm = *state;
	const size_t size = 4 * GRANULARITY;
	char *addr = alloc_ok(mm, NULL, size, MEM_RESERVE | MEM_TOP_DOWN, PAGE_NOACCESS);
	uintptr_t at = (uintptr_t)addr + size;
	bool reached_image = false;
	char *other;

	assert_int_equal((uintptr_t)addr & (GRANULARITY - 1), 0);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, size, MEM_RESERVE, 0, MEM_PRIVATE);
	while (at < USER_LIMIT) {
		MEMORY_BASIC_INFORMATION m;

		query(mm, (void *)at, &m);
		if (m.Type == MEM_IMAGE) {
			reached_image = true;
			break;
		}
		/* Wine keeps the top 2.25 MiB of user space to itself. */
		if (m.State == MEM_FREE && m.RegionSize >= size + GRANULARITY - page &&
		    !(conformance_on_wine() && at + m.RegionSize == USER_LIMIT)) {
			print_error("a free gap of %#zx bytes at %p lies above %p\n",
				    (size_t)m.RegionSize, m.BaseAddress, (void *)addr);
			fail();
		}
		at += m.RegionSize;
	}
	/* On Windows nothing need lie above: the walk may end at the limit. */
	assert_true(reached_image || WINDOWS_BACKEND);
	release_ok(mm, addr);

	/* With a commit, and with a commit alone (PAL tests VirtualAlloc/test13-19). */
	addr = alloc_ok(mm, NULL, page, MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN, PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_access(addr, PAGE_READWRITE);
	other = alloc_ok(mm, NULL, page, MEM_COMMIT | MEM_TOP_DOWN, PAGE_EXECUTE_READWRITE);
	check_query(mm, other, other, other, PAGE_EXECUTE_READWRITE, page, MEM_COMMIT,
		    PAGE_EXECUTE_READWRITE, MEM_PRIVATE);
	release_ok(mm, other);
	/* An explicit address wins over the flag. */
	release_ok(mm, addr);
	other = alloc_ok(mm, addr, page, MEM_RESERVE | MEM_TOP_DOWN, PAGE_NOACCESS);
	assert_ptr_equal(other, addr);
	release_ok(mm, other);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_reset_keeps_state),
		TEST(test_reset_reserved),
		TEST(test_reset_range),
		TEST(test_reset_unallocated),
		TEST(test_reset_flag_rules),
		TEST(test_guard_alloc),
		TEST(test_guard_protect),
		TEST(test_guard_modifier_combinations),
		TEST(test_cache_allocation_wide),
		TEST(test_write_watch_rejected),
		TEST(test_top_down),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
