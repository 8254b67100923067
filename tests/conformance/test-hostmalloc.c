/* SPDX-License-Identifier: MIT */
/*
 * IHostMalloc: the heaps IHostMemoryManager::CreateMalloc hands to the
 * runtime (clr-hosting-api.md §1.4, §1.7, §1.10-1.11, DESIGN.md).
 */
#include "conformance.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static IHostMalloc *create_heap(IHostMemoryManager *mm, DWORD type)
{
	IHostMalloc *heap = SENTINEL_PTR;

	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, type, &heap));
	assert_non_null(heap);
	assert_true(heap != SENTINEL_PTR);
	return heap;
}

static void *heap_alloc(IHostMalloc *heap, SIZE_T size)
{
	void *p = SENTINEL_PTR;

	assert_hr(S_OK, IHostMalloc_Alloc(heap, size, eTaskCritical, &p));
	assert_non_null(p);
	assert_true(p != SENTINEL_PTR);
	return p;
}

static void release_heap(IHostMalloc *heap)
{
	assert_int_equal(IHostMalloc_Release(heap), 0);
}

/* CreateMalloc accepts MALLOC_THREADSAFE and MALLOC_EXECUTABLE, nothing else. */
static void test_malloc_create_arguments(void **state)
{
	IHostMemoryManager *mm = *state;
	static const DWORD bad[] = { 0x4, 0x8, 0x100, 0x80000000u, MALLOC_THREADSAFE | 0x10 };
	DWORD type;
	size_t i;

	assert_hr(E_POINTER, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		IHostMalloc *heap = SENTINEL_PTR;

		assert_hr(E_INVALIDARG, IHostMemoryManager_CreateMalloc(mm, bad[i], &heap));
		assert_null(heap);
	}
	for (type = 0; type <= (MALLOC_THREADSAFE | MALLOC_EXECUTABLE); type++) {
		IHostMalloc *heap = create_heap(mm, type);
		void *p = heap_alloc(heap, 64);

		assert_hr(S_OK, IHostMalloc_Free(heap, p));
		release_heap(heap);
	}
}

/* Blocks are 16-byte aligned, hold what was asked for, and do not overlap. */
static void test_malloc_alignment_and_sizes(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	static const size_t sizes[] = {
		1,    7,    15,	  16,	17,   31,    32,    48,	   100,	  255,	 256,	257,
		500,  1000, 1024, 1025, 2047, 4095,  4096,  4097,  8191,  8192,	 10000, 16383,
		16384, 16385, 20000, 65535, 65536, 100000, 1 << 20,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]), COPIES = 3 };
	unsigned char *blocks[N][COPIES];
	size_t i, j, k;

	for (i = 0; i < N; i++) {
		for (j = 0; j < COPIES; j++) {
			blocks[i][j] = heap_alloc(heap, sizes[i]);
			assert_int_equal((uintptr_t)blocks[i][j] % 16, 0);
			memset(blocks[i][j], (int)(i * COPIES + j + 1), sizes[i]);
		}
	}
	for (i = 0; i < N; i++) {
		for (j = 0; j < COPIES; j++) {
			unsigned char want = (unsigned char)(i * COPIES + j + 1);

			for (k = 0; k < sizes[i]; k += sizes[i] > 4096 ? 61 : 1) {
				assert_int_equal(blocks[i][j][k], want);
			}
			assert_int_equal(blocks[i][j][sizes[i] - 1], want);
		}
	}
	for (i = 0; i < N; i++) {
		for (j = 0; j < COPIES; j++) {
			assert_hr(S_OK, IHostMalloc_Free(heap, blocks[i][j]));
		}
	}
	release_heap(heap);
}

/* Alloc(0) gives a unique pointer that Free accepts once. */
static void test_malloc_zero_size(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, 0);
	void *a = heap_alloc(heap, 0);
	void *b = heap_alloc(heap, 0);

	assert_true(a != b);
	assert_int_equal((uintptr_t)a % 16, 0);
	assert_hr(S_OK, IHostMalloc_Free(heap, a));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, a));
	assert_hr(S_OK, IHostMalloc_Free(heap, b));
	release_heap(heap);
}

/* Sizes no heap can hold are E_OUTOFMEMORY with *ppMem NULL. */
static void test_malloc_impossible_size(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	static const SIZE_T sizes[] = { SIZE_MAX, SIZE_MAX - 15, SIZE_MAX / 2, USER_LIMIT };
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = SENTINEL_PTR;

		assert_hr(E_OUTOFMEMORY, IHostMalloc_Alloc(heap, sizes[i], eTaskCritical, &p));
		assert_null(p);
		p = SENTINEL_PTR;
		assert_hr(E_OUTOFMEMORY, IHostMalloc_DebugAlloc(heap, sizes[i], eProcessCritical,
								(char *)"x.c", 1, &p));
		assert_null(p);
	}
	/* The heap still works afterwards. */
	assert_hr(S_OK, IHostMalloc_Free(heap, heap_alloc(heap, 32)));
	release_heap(heap);
}

/* The interface's own arguments are checked. */
static void test_malloc_arguments(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	void *p;

	assert_hr(E_POINTER, IHostMalloc_Alloc(heap, 16, eTaskCritical, NULL));
	assert_hr(E_POINTER, IHostMalloc_DebugAlloc(heap, 16, eTaskCritical, NULL, 0, NULL));
	p = SENTINEL_PTR;
	assert_hr(E_INVALIDARG, IHostMalloc_Alloc(heap, 16, (EMemoryCriticalLevel)3, &p));
	assert_null(p);
	p = SENTINEL_PTR;
	assert_hr(E_INVALIDARG, IHostMalloc_Alloc(heap, 16, (EMemoryCriticalLevel)-1, &p));
	assert_null(p);
	p = SENTINEL_PTR;
	assert_hr(E_INVALIDARG,
		  IHostMalloc_DebugAlloc(heap, 16, (EMemoryCriticalLevel)3, (char *)"x.c", 1, &p));
	assert_null(p);
	/* Every documented level works, and DebugAlloc blocks are ordinary blocks. */
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 16, eAppDomainCritical, &p));
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 16, eProcessCritical, &p));
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMalloc_DebugAlloc(heap, 40, eTaskCritical, (char *)__FILE__, __LINE__,
					       &p));
	assert_int_equal((uintptr_t)p % 16, 0);
	memset(p, 0xee, 40);
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	p = SENTINEL_PTR;
	assert_hr(S_OK, IHostMalloc_DebugAlloc(heap, 40, eTaskCritical, NULL, 0, &p));
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	/* The CLR frees NULL (§1.11). */
	assert_hr(S_OK, IHostMalloc_Free(heap, NULL));
	release_heap(heap);
}

/* Double frees, of small and of large blocks, are refused. */
static void test_malloc_double_free(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	void *small = heap_alloc(heap, 24);
	void *keep = heap_alloc(heap, 24);
	void *large = heap_alloc(heap, 200000);

	assert_hr(S_OK, IHostMalloc_Free(heap, small));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, small));
	assert_hr(S_OK, IHostMalloc_Free(heap, large));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, large));
	/* The refusals changed nothing: the neighbour is still live, once. */
	assert_hr(S_OK, IHostMalloc_Free(heap, keep));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, keep));
	release_heap(heap);
}

/* Pointers that are not live blocks of this heap are refused and change nothing. */
static void test_malloc_foreign_pointers(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	IHostMalloc *other = create_heap(mm, MALLOC_THREADSAFE);
	IHostMemoryManager *mm2 = NULL;
	IHostMalloc *third;
	char *p = heap_alloc(heap, 64);
	char *large = heap_alloc(heap, 100000);
	char *q = heap_alloc(other, 64);
	char *r, *v;
	void *m = malloc(64);
	int local = 0;

	assert_hr(S_OK, clrmemtrace_create(NULL, &mm2));
	third = create_heap(mm2, 0);
	r = heap_alloc(third, 64);
	v = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	assert_non_null(m);

	/* Blocks of another heap of the same manager, or of another manager, are refused. */
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, q));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(other, p));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, r));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(third, p));
	/* So are interior pointers. */
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, p + 1));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, p + 16));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, large + 16));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, large - 16));
	/* The next block's start, never handed out. */
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, p + 64));
	/* So is memory from anywhere else. */
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, &local));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, m));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, v));
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, (void *)(uintptr_t)page));

	/* Everything is still live exactly once. */
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	assert_hr(S_OK, IHostMalloc_Free(heap, large));
	assert_hr(S_OK, IHostMalloc_Free(other, q));
	assert_hr(S_OK, IHostMalloc_Free(third, r));
	free(m);
	release_ok(mm, v);
	release_heap(third);
	assert_int_equal(IHostMemoryManager_Release(mm2), 0);
	release_heap(other);
	release_heap(heap);
}

/* A MALLOC_EXECUTABLE heap hands out memory code can run from; others do not. */
static void test_malloc_executable(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *exec = create_heap(mm, MALLOC_THREADSAFE | MALLOC_EXECUTABLE);
	IHostMalloc *plain = create_heap(mm, MALLOC_THREADSAFE);
	void *code = heap_alloc(exec, 64);
	void *large = heap_alloc(exec, 100000);
	void *data = heap_alloc(plain, 64);

	if (can_probe_execution()) {
		assert_true(probe_executable_after_write(code));
		assert_true(probe_executable_after_write(large));
		assert_false(probe_executable_after_write(data));
	}
	assert_true(probe_writable(code));
	assert_true(probe_writable(data));
	assert_hr(S_OK, IHostMalloc_Free(exec, code));
	assert_hr(S_OK, IHostMalloc_Free(exec, large));
	assert_hr(S_OK, IHostMalloc_Free(plain, data));
	release_heap(exec);
	release_heap(plain);
}

struct worker {
	IHostMalloc *heap;
	void **handoff; /* blocks this worker leaves for the main thread to free */
	size_t handoff_count;
	unsigned seed;
	int errors;
};

static void *malloc_worker(void *arg)
{
	struct worker *w = arg;
	void *live[64] = { 0 };
	size_t i;

	/* cmocka's checks must stay on the main thread: count errors instead. */
	for (i = 0; i < 20000; i++) {
		size_t slot = (size_t)rand_r(&w->seed) % 64;
		size_t size = (size_t)rand_r(&w->seed) % 3000;

		if (live[slot]) {
			if (*(unsigned char *)live[slot] != (unsigned char)slot ||
			    IHostMalloc_Free(w->heap, live[slot]) != S_OK) {
				w->errors++;
			}
			live[slot] = NULL;
		} else {
			HRESULT hr = IHostMalloc_Alloc(w->heap, size + 1, eTaskCritical,
						       &live[slot]);

			if (hr != S_OK || ((uintptr_t)live[slot] & 15) != 0) {
				w->errors++;
				live[slot] = NULL;
				continue;
			}
			memset(live[slot], (int)slot, size + 1);
		}
	}
	for (i = 0; i < 64 && w->handoff_count < 64; i++) {
		if (live[i]) {
			w->handoff[w->handoff_count++] = live[i];
		}
	}
	return NULL;
}

/* A MALLOC_THREADSAFE heap serves several threads; a block may be freed by another thread. */
static void test_malloc_threadsafe(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	enum { THREADS = 4 };
	struct worker w[THREADS];
	void *handoff[THREADS][64];
	pthread_t t[THREADS];
	size_t i, j;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){
			.heap = heap,
			.handoff = handoff[i],
			.seed = (unsigned)i + 1,
		};
		assert_int_equal(pthread_create(&t[i], NULL, malloc_worker, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
	}
	for (i = 0; i < THREADS; i++) {
		for (j = 0; j < w[i].handoff_count; j++) {
			assert_hr(S_OK, IHostMalloc_Free(heap, handoff[i][j]));
		}
	}
	release_heap(heap);
}

/* One thread using more heaps than it keeps caches for: every heap stays exact. */
static void test_malloc_many_heaps(void **state)
{
	IHostMemoryManager *mm = *state;
	enum { HEAPS = 7, BLOCKS = 40 };
	IHostMalloc *heaps[HEAPS];
	unsigned char *blocks[HEAPS][BLOCKS];
	size_t h, b, round;

	for (h = 0; h < HEAPS; h++) {
		heaps[h] = create_heap(mm, h % 2 ? MALLOC_THREADSAFE : 0);
	}
	for (round = 0; round < 3; round++) {
		for (b = 0; b < BLOCKS; b++) {
			for (h = 0; h < HEAPS; h++) {
				size_t size = 8 + ((b * 37 + h * 11) % 300);

				blocks[h][b] = heap_alloc(heaps[h], size);
				memset(blocks[h][b], (int)(h * BLOCKS + b), 8);
			}
		}
		for (h = 0; h < HEAPS; h++) {
			for (b = 0; b < BLOCKS; b++) {
				assert_int_equal(blocks[h][b][7], (unsigned char)(h * BLOCKS + b));
				/* A block of one heap is refused by the next one. */
				assert_hr(HOST_E_INVALIDOPERATION,
					  IHostMalloc_Free(heaps[(h + 1) % HEAPS], blocks[h][b]));
			}
		}
		for (b = 0; b < BLOCKS; b++) {
			for (h = 0; h < HEAPS; h++) {
				assert_hr(S_OK, IHostMalloc_Free(heaps[h], blocks[h][b]));
			}
		}
		for (h = 0; h < HEAPS; h++) {
			assert_hr(HOST_E_INVALIDOPERATION,
				  IHostMalloc_Free(heaps[h], blocks[h][0]));
		}
	}
	/* Release in an order unlike creation. */
	for (h = 0; h < HEAPS; h++) {
		release_heap(heaps[(h * 3) % HEAPS]);
	}
}

struct handover {
	IHostMalloc *heap;
	void *block;
	HRESULT hr, again;
	pthread_barrier_t cached, before_exit; /* used when `wait` is set */
	bool wait;
};

static void *free_elsewhere(void *arg)
{
	struct handover *ho = arg;
	size_t i;

	ho->hr = IHostMalloc_Free(ho->heap, ho->block);
	ho->again = IHostMalloc_Free(ho->heap, ho->block);
	/* Leave blocks in this thread's cache. */
	for (i = 0; i < 10; i++) {
		void *p = NULL;

		if (IHostMalloc_Alloc(ho->heap, 48, eTaskCritical, &p) == S_OK) {
			IHostMalloc_Free(ho->heap, p);
		}
	}
	if (ho->wait) {
		/* The heap is released between these two. */
		pthread_barrier_wait(&ho->cached);
		pthread_barrier_wait(&ho->before_exit);
	}
	return NULL;
}

/*
 * A block may be freed by another thread, once; a thread that exits with
 * blocks cached for a heap gives them back, also when the heap is already
 * gone by then.
 */
static void test_malloc_free_from_other_thread(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = create_heap(mm, MALLOC_THREADSAFE);
	struct handover ho = { .heap = heap };
	pthread_t t;
	void *p;

	ho.block = heap_alloc(heap, 48);
	assert_int_equal(pthread_create(&t, NULL, free_elsewhere, &ho), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_hr(S_OK, ho.hr);
	assert_hr(HOST_E_INVALIDOPERATION, ho.again);
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, ho.block));
	p = heap_alloc(heap, 48);
	assert_hr(S_OK, IHostMalloc_Free(heap, p));

	/* The heap goes away while the thread still caches blocks for it. */
	ho.block = heap_alloc(heap, 48);
	ho.wait = true;
	pthread_barrier_init(&ho.cached, NULL, 2);
	pthread_barrier_init(&ho.before_exit, NULL, 2);
	assert_int_equal(pthread_create(&t, NULL, free_elsewhere, &ho), 0);
	pthread_barrier_wait(&ho.cached);
	release_heap(heap);
	pthread_barrier_wait(&ho.before_exit);
	assert_int_equal(pthread_join(t, NULL), 0);
	pthread_barrier_destroy(&ho.cached);
	pthread_barrier_destroy(&ho.before_exit);
	assert_hr(S_OK, ho.hr);
	assert_hr(HOST_E_INVALIDOPERATION, ho.again);
}

/* A heap keeps its manager alive; the manager's last reference may go first. */
static void test_malloc_keeps_manager(void **state)
{
	IHostMemoryManager *mm = NULL;
	IHostMalloc *heap;
	void *p;

	(void)state;
	assert_hr(S_OK, clrmemtrace_create(NULL, &mm));
	heap = create_heap(mm, MALLOC_THREADSAFE);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 3);
	assert_int_equal(IHostMemoryManager_Release(mm), 2);
	assert_int_equal(IHostMemoryManager_Release(mm), 1);
	p = heap_alloc(heap, 128);
	memset(p, 1, 128);
	assert_hr(S_OK, IHostMalloc_Free(heap, p));
	release_heap(heap);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_malloc_create_arguments),
		TEST(test_malloc_alignment_and_sizes),
		TEST(test_malloc_zero_size),
		TEST(test_malloc_impossible_size),
		TEST(test_malloc_arguments),
		TEST(test_malloc_double_free),
		TEST(test_malloc_foreign_pointers),
		TEST(test_malloc_executable),
		TEST(test_malloc_threadsafe),
		TEST(test_malloc_many_heaps),
		TEST(test_malloc_free_from_other_thread),
		cmocka_unit_test(test_malloc_keeps_manager),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
