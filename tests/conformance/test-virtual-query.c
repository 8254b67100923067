/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager::VirtualQuery against the Win32 contract, for the
 * manager's own memory and for the rest of the process
 * (win32-vm-semantics.md #50-#58, cited as "#n").
 */
#include "conformance.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

/*
 * A free, 64 KiB-aligned block of address space with nothing mapped in it,
 * for mappings whose neighbours the test must control (the kernel merges
 * adjacent anonymous mappings of equal protection).
 */
static char *free_granule(IHostMemoryManager *mm)
{
	char *g = alloc_ok(mm, NULL, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);

	release_ok(mm, g);
	return g;
}

/* mmap at exactly addr, or fail the test. */
static char *map_at(void *addr, size_t len, int prot, int flags, int fd)
{
	char *p = mmap(addr, len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);

	assert_true(p != MAP_FAILED);
	assert_ptr_equal(p, addr);
	return p;
}

/* #50 */
static void test_query_base_rounding(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	check_query(mm, addr + page + 17, addr + page, addr, PAGE_READWRITE, 3 * page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, addr + 4 * page - 1, addr + 3 * page, addr, PAGE_READWRITE, page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	/* A run ends where State or Protect changes. */
	assert_int_equal(protect_ok(mm, addr + 2 * page, page, PAGE_READWRITE | PAGE_GUARD),
			 PAGE_READWRITE);
	check_query(mm, addr + 1, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, addr + 2 * page + 1, addr + 2 * page, addr, PAGE_READWRITE, page,
		    MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD, MEM_PRIVATE);
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(mm, addr + 3 * page, page, MEM_DECOMMIT));
	check_query(mm, addr + 3 * page + 1, addr + 3 * page, addr, PAGE_READWRITE, page,
		    MEM_RESERVE, 0, MEM_PRIVATE);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);
}

/* #51 */
static void test_query_run_bounded_by_allocation(void **state)
{
	IHostMemoryManager *mm = *state;
	char *lo, *hi;

	reserve_adjacent(mm, GRANULARITY, PAGE_READWRITE, &lo, &hi);
	check_query(mm, lo, lo, lo, PAGE_READWRITE, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, hi, hi, hi, PAGE_READWRITE, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_ptr_equal(alloc_ok(mm, lo, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), lo);
	assert_ptr_equal(alloc_ok(mm, hi, GRANULARITY, MEM_COMMIT, PAGE_READWRITE), hi);
	check_query(mm, lo + page, lo + page, lo, PAGE_READWRITE, GRANULARITY - page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, hi, hi, hi, PAGE_READWRITE, GRANULARITY, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	check_maps(mm, lo, 2 * GRANULARITY);
	release_ok(mm, lo);
	release_ok(mm, hi);
}

/* #51, #52: the rest of a reservation's last 64 KiB is free, not part of it. */
static void test_query_granule_tail(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 3 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	check_query(mm, addr + 3 * page - 1, addr + 2 * page, addr, PAGE_READWRITE, page,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_free(mm, addr + 3 * page);
	check_free(mm, addr + GRANULARITY - 1);
	release_ok(mm, addr);
}

/* #52: a one-page hole between two mappings. */
static void test_query_free_hole(void **state)
{
	IHostMemoryManager *mm = *state;
	char *g = free_granule(mm);
	char *m = map_at(g + page, 3 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	assert_int_equal(munmap(m + page, page), 0);
	/* The hole is one page, measured from the queried page up to the next mapping. */
	assert_int_equal(vma_next_start((uintptr_t)m + page), (uintptr_t)m + 2 * page);
	check_free(mm, m + page);
	check_free(mm, m + 2 * page - 1);
	check_free(mm, g);
	assert_int_equal(munmap(m, page), 0);
	assert_int_equal(munmap(m + 2 * page, page), 0);
}

/* #52: a free gap ends at the manager's next reservation. */
static void test_query_free_gap_bounded_by_reservation(void **state)
{
	IHostMemoryManager *mm = *state;
	char *g = alloc_ok(mm, NULL, 3 * GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);
	char *r, *m;

	release_ok(mm, g);
	r = alloc_ok(mm, g + 2 * GRANULARITY, GRANULARITY, MEM_RESERVE, PAGE_NOACCESS);
	assert_ptr_equal(r, g + 2 * GRANULARITY);
	/* A page above g, so that the kernel cannot merge it with whatever lies below g. */
	m = map_at(g + page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	/* Free space up to r: the kernel lists r, and the library stops at its own reservation. */
	assert_int_equal(vma_next_start((uintptr_t)m + page), (uintptr_t)r);
	check_free(mm, m + page);
	check_free(mm, g + GRANULARITY);
	/* The foreign mapping itself. */
	check_query(mm, m, m, m, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, r, r, r, PAGE_NOACCESS, GRANULARITY, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_int_equal(munmap(m, page), 0);
	release_ok(mm, r);
}

/* #53 */
static void test_query_protect_fields(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_READWRITE | PAGE_GUARD);

	/* AllocationProtect keeps the reservation's modifiers; reserved pages have none. */
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, 4 * page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READONLY);
	alloc_ok(mm, addr + page, page, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD);
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_GUARD, page, MEM_COMMIT,
		    PAGE_READONLY, MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE | PAGE_GUARD, page,
		    MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD, MEM_PRIVATE);
	check_query(mm, addr + 2 * page, addr + 2 * page, addr, PAGE_READWRITE | PAGE_GUARD,
		    2 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_access(addr, PAGE_READONLY);
	check_access(addr + page, PAGE_READWRITE | PAGE_GUARD);
	check_maps(mm, addr, 4 * page);
	release_ok(mm, addr);

	/* A cache modifier given at reservation holds for every committed page (#66). */
	addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE, PAGE_READWRITE | PAGE_NOCACHE);
	alloc_ok(mm, addr, page, MEM_COMMIT, PAGE_READONLY);
	check_query(mm, addr, addr, addr, PAGE_READWRITE | PAGE_NOCACHE, page, MEM_COMMIT,
		    PAGE_READONLY | PAGE_NOCACHE, MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE | PAGE_NOCACHE, page,
		    MEM_RESERVE, 0, MEM_PRIVATE);
	release_ok(mm, addr);
}

/* #54 */
static void test_query_type_private(void **state)
{
	IHostMemoryManager *mm = *state;
	char *a = alloc_ok(mm, NULL, page, MEM_RESERVE, PAGE_NOACCESS);
	char *b = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_EXECUTE_READ);

	check_query(mm, a, a, a, PAGE_NOACCESS, page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, b, b, b, PAGE_EXECUTE_READ, page, MEM_COMMIT, PAGE_EXECUTE_READ,
		    MEM_PRIVATE);
	release_ok(mm, a);
	release_ok(mm, b);
}

/*
 * #55. The library's choices for the interface's own pointers (DESIGN.md):
 * a short buffer is ERROR_BAD_LENGTH, a NULL buffer ERROR_NOACCESS, a NULL
 * pResult E_POINTER; pResult is 0 after a failure.
 */
static void test_query_length_and_pointers(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	MEMORY_BASIC_INFORMATION m;
	unsigned char big[sizeof(m) + 16];
	SIZE_T got;

	memset(&m, 0xcc, sizeof(m));
	got = SENTINEL_SIZE;
	assert_hr(HR_BAD_LENGTH,
		  IHostMemoryManager_VirtualQuery(mm, addr, &m, sizeof(m) - 1, &got));
	assert_int_equal(got, 0);
	got = SENTINEL_SIZE;
	assert_hr(HR_BAD_LENGTH, IHostMemoryManager_VirtualQuery(mm, addr, &m, 0, &got));
	assert_int_equal(got, 0);
	/* The buffer was not written. */
	assert_int_equal(((unsigned char *)&m)[0], 0xcc);
	assert_int_equal(((unsigned char *)&m)[sizeof(m) - 1], 0xcc);
	got = SENTINEL_SIZE;
	assert_hr(HR_NOACCESS,
		  IHostMemoryManager_VirtualQuery(mm, addr, NULL, sizeof(m), &got));
	assert_int_equal(got, 0);
	assert_hr(E_POINTER, IHostMemoryManager_VirtualQuery(mm, addr, &m, sizeof(m), NULL));
	assert_int_equal(((unsigned char *)&m)[0], 0xcc);

	/* A larger buffer gets sizeof(MEMORY_BASIC_INFORMATION) bytes, the rest untouched. */
	memset(big, 0xcc, sizeof(big));
	got = SENTINEL_SIZE;
	assert_hr(S_OK, IHostMemoryManager_VirtualQuery(mm, addr, big, sizeof(big), &got));
	assert_int_equal(got, sizeof(m));
	assert_int_equal(big[sizeof(m)], 0xcc);
	memcpy(&m, big, sizeof(m));
	check_mbi(&m, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	assert_int_equal(sizeof(MEMORY_BASIC_INFORMATION), sizeof(void *) == 8 ? 48 : 28);
	release_ok(mm, addr);
}

/* #56 */
static void test_query_beyond_user_limit(void **state)
{
	IHostMemoryManager *mm = *state;
	static const uintptr_t bad[] = {
		USER_LIMIT,
		USER_LIMIT + 1,
		(uintptr_t)1 << 47,
		(uintptr_t)0xffffffffff600000ull,
		UINTPTR_MAX,
	};
	MEMORY_BASIC_INFORMATION m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		SIZE_T got = SENTINEL_SIZE;

		assert_hr(HR_INVALID_PARAMETER,
			  IHostMemoryManager_VirtualQuery(mm, (void *)bad[i], &m, sizeof(m), &got));
		assert_int_equal(got, 0);
	}
	/* The last page below the limit answers, and its region stays below the limit. */
	query(mm, (void *)(USER_LIMIT - 1), &m);
	assert_ptr_equal(m.BaseAddress, (void *)(USER_LIMIT - page));
	assert_true((uintptr_t)m.BaseAddress + m.RegionSize <= USER_LIMIT);
	assert_true(m.RegionSize >= page);
}

/* #57 */
static void test_query_nocache_not_per_page(void **state)
{
	IHostMemoryManager *mm = *state;
	char *addr = alloc_ok(mm, NULL, 2 * page, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);

	check_query(mm, addr, addr, addr, PAGE_READWRITE, 2 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_PRIVATE);
	assert_int_equal(protect_ok(mm, addr, page, PAGE_READONLY | PAGE_NOCACHE),
			 PAGE_READWRITE);
	check_query(mm, addr, addr, addr, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	check_query(mm, addr + page, addr + page, addr, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_access(addr, PAGE_READONLY);
	release_ok(mm, addr);
}

/*
 * #52, #58: walking the whole address space region by region tiles it,
 * including the manager's reservations and everything else in the process.
 */
static void test_query_walk_address_space(void **state)
{
	IHostMemoryManager *mm = *state;
	char *r = alloc_ok(mm, NULL, 8 * page, MEM_RESERVE, PAGE_NOACCESS);
	uintptr_t at = 0;
	unsigned regions = 0;
	bool seen_r = false;

	alloc_ok(mm, r + 2 * page, 2 * page, MEM_COMMIT, PAGE_READWRITE);
	while (at < USER_LIMIT) {
		MEMORY_BASIC_INFORMATION m;

		query(mm, (void *)at, &m);
		assert_ptr_equal(m.BaseAddress, (void *)at);
		assert_true(m.RegionSize > 0);
		assert_int_equal(m.RegionSize % page, 0);
		assert_true(m.RegionSize <= USER_LIMIT - at);
		if (m.State == MEM_FREE) {
			check_mbi(&m, at, NULL, 0, m.RegionSize, MEM_FREE, PAGE_NOACCESS, 0);
		} else {
			assert_true(m.State == MEM_COMMIT || m.State == MEM_RESERVE);
			assert_non_null(m.AllocationBase);
			assert_true((uintptr_t)m.AllocationBase <= at);
			assert_true(m.Type == MEM_PRIVATE || m.Type == MEM_MAPPED ||
				    m.Type == MEM_IMAGE);
			if (m.State == MEM_RESERVE) {
				assert_int_equal(m.Protect, 0);
			}
		}
		if (at == (uintptr_t)r + 2 * page) {
			check_mbi(&m, at, r, PAGE_NOACCESS, 2 * page, MEM_COMMIT, PAGE_READWRITE,
				  MEM_PRIVATE);
			seen_r = true;
		}
		at += m.RegionSize;
		regions++;
		assert_true(regions < 1000000);
	}
	assert_int_equal(at, USER_LIMIT);
	assert_true(seen_r);
	release_ok(mm, r);
}

/* #58: the calling thread's own stack. */
static void test_query_own_stack(void **state)
{
	IHostMemoryManager *mm = *state;
	volatile char local = 0;
	uintptr_t page_of = (uintptr_t)&local & ~(uintptr_t)(page - 1);
	struct vma_info v;

	assert_true(vma_find((uintptr_t)&local, &v));
	assert_string_equal(v.perms, "rw-p");
	check_query(mm, (const void *)&local, page_of, v.start, PAGE_READWRITE, v.end - page_of,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);
	assert_int_equal(local, 0);
}

struct thread_stack {
	pthread_barrier_t ready, done;
	int err; /* non-zero if the thread could not read its attributes */
	void *local;
	void *low; /* lowest usable address */
	size_t size, guard;
};

static void *stack_thread(void *arg)
{
	struct thread_stack *ts = arg;
	volatile char local = 1;
	pthread_attr_t attr;

	/* cmocka's checks must stay on the main thread: report through ts->err. */
	ts->err = pthread_getattr_np(pthread_self(), &attr);
	if (!ts->err) {
		ts->err = pthread_attr_getstack(&attr, &ts->low, &ts->size) ||
			  pthread_attr_getguardsize(&attr, &ts->guard);
		pthread_attr_destroy(&attr);
	}
	ts->local = (void *)&local;
	pthread_barrier_wait(&ts->ready);
	pthread_barrier_wait(&ts->done);
	return NULL;
}

/* #58: another thread's stack: AllocationBase is the bottom of its guard page. */
static void test_query_thread_stack(void **state)
{
	IHostMemoryManager *mm = *state;
	struct thread_stack ts;
	pthread_attr_t attr;
	pthread_t t;
	uintptr_t page_of, top, guard;
	struct vma_info v;

	memset(&ts, 0, sizeof(ts));
	pthread_barrier_init(&ts.ready, NULL, 2);
	pthread_barrier_init(&ts.done, NULL, 2);
	pthread_attr_init(&attr);
	pthread_attr_setguardsize(&attr, 2 * page);
	assert_int_equal(pthread_create(&t, &attr, stack_thread, &ts), 0);
	pthread_attr_destroy(&attr);
	pthread_barrier_wait(&ts.ready);
	assert_int_equal(ts.err, 0);

	page_of = (uintptr_t)ts.local & ~(uintptr_t)(page - 1);
	top = (uintptr_t)ts.low + ts.size;
	guard = (uintptr_t)ts.low - ts.guard;
	assert_int_equal(ts.guard, 2 * page);
	/* The kernel shows the guard as its own inaccessible mapping right below the stack. */
	assert_true(vma_find(guard, &v));
	assert_string_equal(v.perms, "---p");
	assert_int_equal(v.end, (uintptr_t)ts.low);
	assert_true(vma_find(page_of, &v));
	assert_int_equal(v.end, top);

	check_query(mm, ts.local, page_of, guard, PAGE_NOACCESS, top - page_of, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, guard, guard, guard, PAGE_NOACCESS, ts.guard, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_query(mm, ts.low, ts.low, guard, PAGE_NOACCESS, top - (uintptr_t)ts.low,
		    MEM_COMMIT, PAGE_READWRITE, MEM_PRIVATE);

	pthread_barrier_wait(&ts.done);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_barrier_destroy(&ts.ready);
	pthread_barrier_destroy(&ts.done);
}

/* Win32 protection of a mapping as the kernel lists it. */
static DWORD protect_of_perms(const char *perms)
{
	bool r = perms[0] == 'r', w = perms[1] == 'w', x = perms[2] == 'x';
	bool cow = perms[3] == 'p';

	if (x) {
		return w ? (cow ? PAGE_EXECUTE_WRITECOPY : PAGE_EXECUTE_READWRITE)
			 : PAGE_EXECUTE_READ;
	}
	if (w) {
		return cow ? PAGE_WRITECOPY : PAGE_READWRITE;
	}
	return r ? PAGE_READONLY : PAGE_NOACCESS;
}

/* #54, #58: a loaded shared object is MEM_IMAGE, based at its first mapping. */
static void test_query_image(void **state)
{
	IHostMemoryManager *mm = *state;
	void *fn = dlsym(RTLD_DEFAULT, "getpid");
	uintptr_t code, base;
	struct vma_info code_vma, first_vma;
	Dl_info info;

	assert_non_null(fn);
	assert_true(dladdr(fn, &info) != 0);
	assert_non_null(info.dli_fbase);
	code = (uintptr_t)fn & ~(uintptr_t)(page - 1);
	base = (uintptr_t)info.dli_fbase;
	assert_true(vma_find(code, &code_vma));
	assert_true(vma_find(base, &first_vma));
	assert_int_equal(code_vma.perms[2], 'x');
	assert_int_equal(first_vma.start, base);

	check_query(mm, fn, code, base, protect_of_perms(first_vma.perms), code_vma.end - code,
		    MEM_COMMIT, PAGE_EXECUTE_READ, MEM_IMAGE);
	check_query(mm, (void *)base, base, base, protect_of_perms(first_vma.perms),
		    first_vma.end - base, MEM_COMMIT, protect_of_perms(first_vma.perms),
		    MEM_IMAGE);
}

/* A temporary file of `pages` pages, already unlinked. */
static int temp_file(size_t pages)
{
	char name[] = "/tmp/clrmemtrace-query-XXXXXX";
	int fd = mkstemp(name);

	assert_true(fd >= 0);
	assert_int_equal(unlink(name), 0);
	assert_int_equal(ftruncate(fd, (off_t)(pages * page)), 0);
	return fd;
}

/* #54: a MAP_SHARED file mapping is MEM_MAPPED, one allocation whatever its protections. */
static void test_query_shared_file_mapping(void **state)
{
	IHostMemoryManager *mm = *state;
	int fd = temp_file(3);
	char *g = free_granule(mm);
	char *m = map_at(g + page, 3 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd);

	m[0] = 1;
	check_query(mm, m + 5, m, m, PAGE_READWRITE, 3 * page, MEM_COMMIT, PAGE_READWRITE,
		    MEM_MAPPED);
	assert_int_equal(mprotect(m + page, page, PROT_READ), 0);
	check_query(mm, m, m, m, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READWRITE, MEM_MAPPED);
	check_query(mm, m + page, m + page, m, PAGE_READWRITE, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_MAPPED);
	check_query(mm, m + 2 * page, m + 2 * page, m, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_MAPPED);
	assert_int_equal(mprotect(m + 2 * page, page, PROT_NONE), 0);
	check_query(mm, m + 2 * page, m + 2 * page, m, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_NOACCESS, MEM_MAPPED);
	/* Free on both sides. */
	check_free(mm, g);
	check_free(mm, m + 3 * page);
	assert_int_equal(munmap(m, 3 * page), 0);
	close(fd);
}

/* #54: a private writable file mapping is copy-on-write. */
static void test_query_private_file_mapping(void **state)
{
	IHostMemoryManager *mm = *state;
	int fd = temp_file(2);
	char *g = free_granule(mm);
	char *m = map_at(g + 2 * page, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);

	check_query(mm, m, m, m, PAGE_WRITECOPY, 2 * page, MEM_COMMIT, PAGE_WRITECOPY,
		    MEM_MAPPED);
	assert_int_equal(mprotect(m + page, page, PROT_READ), 0);
	check_query(mm, m + page, m + page, m, PAGE_WRITECOPY, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_MAPPED);
	assert_int_equal(munmap(m, 2 * page), 0);

	/* A file with an executable mapping is an image. */
	m = map_at(g + 2 * page, 2 * page, PROT_READ, MAP_PRIVATE, fd);
	assert_int_equal(mprotect(m + page, page, PROT_READ | PROT_EXEC), 0);
	check_query(mm, m, m, m, PAGE_READONLY, page, MEM_COMMIT, PAGE_READONLY, MEM_IMAGE);
	check_query(mm, m + page, m + page, m, PAGE_READONLY, page, MEM_COMMIT,
		    PAGE_EXECUTE_READ, MEM_IMAGE);
	assert_int_equal(munmap(m, 2 * page), 0);
	close(fd);
}

/* Anonymous memory the manager did not allocate is MEM_PRIVATE; PROT_NONE reads as reserved. */
static void test_query_foreign_anonymous(void **state)
{
	IHostMemoryManager *mm = *state;
	char *g = free_granule(mm);
	char *rw = map_at(g + page, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1);
	char *none = map_at(g + 8 * page, 3 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	check_query(mm, rw + page, rw + page, rw, PAGE_READWRITE, page, MEM_COMMIT,
		    PAGE_READWRITE, MEM_PRIVATE);
	check_query(mm, none, none, none, PAGE_NOACCESS, 3 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	/*
	 * An inaccessible mapping directly below an accessible one reads as a
	 * guard and the memory it protects: one allocation, as for a thread's
	 * stack (procmaps.h).
	 */
	assert_int_equal(mprotect(none + 2 * page, page, PROT_READ | PROT_EXEC), 0);
	check_query(mm, none + 2 * page, none + 2 * page, none, PAGE_NOACCESS, page, MEM_COMMIT,
		    PAGE_EXECUTE_READ, MEM_PRIVATE);
	check_query(mm, none + page, none + page, none, PAGE_NOACCESS, page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	assert_int_equal(mprotect(rw, page, PROT_NONE), 0);
	assert_int_equal(mprotect(rw + page, page, PROT_READ), 0);
	check_query(mm, rw + page, rw + page, rw, PAGE_NOACCESS, page, MEM_COMMIT, PAGE_READONLY,
		    MEM_PRIVATE);
	/* An accessible mapping directly below an inaccessible one is its own allocation. */
	assert_int_equal(mprotect(rw, page, PROT_READ), 0);
	assert_int_equal(mprotect(rw + page, page, PROT_NONE), 0);
	check_query(mm, rw, rw, rw, PAGE_READONLY, page, MEM_COMMIT, PAGE_READONLY, MEM_PRIVATE);
	check_query(mm, rw + page, rw + page, rw + page, PAGE_NOACCESS, page, MEM_RESERVE, 0,
		    MEM_PRIVATE);
	check_free(mm, rw + 2 * page);
	assert_int_equal(munmap(rw, 2 * page), 0);
	assert_int_equal(munmap(none, 3 * page), 0);
}

/* #52: address 0 is free up to the first mapping. */
static void test_query_null_address(void **state)
{
	IHostMemoryManager *mm = *state;

	check_free(mm, NULL);
	check_free(mm, (void *)(uintptr_t)(page + 1));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_query_base_rounding),
		TEST(test_query_run_bounded_by_allocation),
		TEST(test_query_granule_tail),
		TEST(test_query_free_hole),
		TEST(test_query_free_gap_bounded_by_reservation),
		TEST(test_query_protect_fields),
		TEST(test_query_type_private),
		TEST(test_query_length_and_pointers),
		TEST(test_query_beyond_user_limit),
		TEST(test_query_nocache_not_per_page),
		TEST(test_query_walk_address_space),
		TEST(test_query_own_stack),
		TEST(test_query_thread_stack),
		TEST(test_query_image),
		TEST(test_query_shared_file_mapping),
		TEST(test_query_private_file_mapping),
		TEST(test_query_foreign_anonymous),
		TEST(test_query_null_address),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
