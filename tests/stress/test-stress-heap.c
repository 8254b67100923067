/* SPDX-License-Identifier: MIT */
/*
 * Several threads allocating from and freeing into one MALLOC_THREADSAFE
 * heap. Every block is filled with a pattern naming it, and checked whole
 * before it is freed: two blocks handed out over each other, or a block
 * reused while live, show up as a wrong pattern. Blocks go through a shared
 * pool, so most are freed by another thread than the one that allocated
 * them. At the end the heap's own counts must match the pool exactly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include <urcu/urcu-bp.h>

#include "heap.h"
#include "internal.h"
#include "stress.h"

#define THREADS 4
#define OPS 40000
#define POOL_MAX 4096

struct block {
	unsigned char *p;
	size_t size;
	uint64_t tag;
};

static struct heap *heap;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block pool[POOL_MAX];
static size_t pool_n;
static uint64_t base_seed;
static uint64_t cross_thread_frees;

/* Small blocks mostly, medium ones often, large (own mapping) ones now and then. */
static size_t random_size(struct rng *r)
{
	unsigned d = (unsigned)rng_below(r, 100);

	if (d < 70) {
		return (size_t)rng_below(r, 257);
	}
	if (d < 97) {
		return 257 + (size_t)rng_below(r, 16384 - 256);
	}
	return 16385 + (size_t)rng_below(r, 150000);
}

/* The pattern: the tag in the first bytes, then bytes derived from it. */
static void fill(const struct block *b)
{
	size_t i;

	if (b->size >= sizeof(b->tag)) {
		memcpy(b->p, &b->tag, sizeof(b->tag));
	}
	for (i = b->size >= sizeof(b->tag) ? sizeof(b->tag) : 0; i < b->size; i++) {
		b->p[i] = (unsigned char)(b->tag + i);
	}
}

static bool intact(const struct block *b)
{
	size_t i;

	if (b->size >= sizeof(b->tag) && memcmp(b->p, &b->tag, sizeof(b->tag)) != 0) {
		return false;
	}
	for (i = b->size >= sizeof(b->tag) ? sizeof(b->tag) : 0; i < b->size; i++) {
		if (b->p[i] != (unsigned char)(b->tag + i)) {
			return false;
		}
	}
	return true;
}

static void *worker_main(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	uint64_t seed = base_seed + index, op;
	struct rng r;

	rng_seed(&r, seed);
	for (op = 0; op < OPS && !stress_stopped(); op++) {
		struct block b;
		bool have = false;
		int err;

		pthread_mutex_lock(&pool_lock);
		if (pool_n > 0 && (pool_n >= POOL_MAX || rng_below(&r, 100) < 45)) {
			size_t k = (size_t)rng_below(&r, pool_n);

			b = pool[k];
			pool[k] = pool[--pool_n];
			have = true;
		}
		pthread_mutex_unlock(&pool_lock);

		if (have) {
			/* The block is ours alone now. */
			if (!intact(&b)) {
				stress_fail("seed %#" PRIx64 " thread %u op %" PRIu64
					    ": block %p (%zu bytes, tag %#" PRIx64 ") was overwritten",
					    seed, index, op, (void *)b.p, b.size, b.tag);
				break;
			}
			if ((b.tag >> 56) != index) {
				__atomic_fetch_add(&cross_thread_frees, 1, __ATOMIC_RELAXED);
			}
			if (b.size && rng_below(&r, 16) == 0 &&
			    clrmemtrace__heap_free(heap, b.p + 1, NULL, NULL) != ERROR_INVALID_ADDRESS) {
				stress_fail("seed %#" PRIx64 " thread %u: freeing %p, inside a live block, "
					    "was not refused",
					    seed, index, (void *)(b.p + 1));
				break;
			}
			err = clrmemtrace__heap_free(heap, b.p, NULL, NULL);
			if (err) {
				stress_fail("seed %#" PRIx64 " thread %u op %" PRIu64
					    ": free(%p) = %d",
					    seed, index, op, (void *)b.p, err);
				break;
			}
			continue;
		}
		b.size = random_size(&r);
		b.tag = ((uint64_t)index << 56) | (op << 8) | (rng_next(&r) & 0xff);
		err = clrmemtrace__heap_alloc(heap, b.size, eTaskCritical, (void **)&b.p, NULL, NULL);
		if (err || !b.p || ((uintptr_t)b.p & 15)) {
			stress_fail("seed %#" PRIx64 " thread %u op %" PRIu64
				    ": alloc(%zu) = %d, %p",
				    seed, index, op, b.size, err, (void *)b.p);
			break;
		}
		fill(&b);
		pthread_mutex_lock(&pool_lock);
		have = pool_n < POOL_MAX;
		if (have) {
			pool[pool_n++] = b;
		}
		pthread_mutex_unlock(&pool_lock);
		/* Other threads filled the pool meanwhile: this block goes back at once. */
		if (!have && (!intact(&b) || clrmemtrace__heap_free(heap, b.p, NULL, NULL) != 0)) {
			stress_fail("seed %#" PRIx64 " thread %u op %" PRIu64
				    ": block %p (%zu bytes) overwritten or not freed",
				    seed, index, op, (void *)b.p, b.size);
			break;
		}
	}
	return NULL;
}

struct live_check {
	size_t found, unknown;
};

static int count_live(void *ctx, void *ptr, size_t size)
{
	struct live_check *c = ctx;
	size_t i;

	for (i = 0; i < pool_n; i++) {
		if (pool[i].p == ptr) {
			c->found += pool[i].size == size;
			return 0;
		}
	}
	c->unknown++;
	return 0;
}

static void test_stress_heap_threads(void **state)
{
	pthread_t threads[THREADS];
	struct heap_stats st;
	struct live_check lc = { 0 };
	uint64_t bytes = 0;
	double t0 = stress_now();
	unsigned i;

	(void)state;
	base_seed = stress_seed(0x5eed0005u);
	assert_int_equal(clrmemtrace__init(), 0);
	assert_int_equal(clrmemtrace__heap_create(MALLOC_THREADSAFE, NULL, &heap), 0);
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_create(&threads[i], NULL, worker_main, (void *)(uintptr_t)i),
				 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
	}
	print_message("seed %#" PRIx64 ": %u threads x %u ops, %zu blocks live, %" PRIu64
		      " freed by another thread, %.2f s\n",
		      base_seed, THREADS, OPS, pool_n, cross_thread_frees, stress_now() - t0);
	if (stress_failure[0]) {
		fail_msg("%s", stress_failure);
	}
	assert_true(cross_thread_frees > 1000);

	/* The heap's view of what is live equals the pool, block for block. */
	for (i = 0; i < pool_n; i++) {
		bytes += pool[i].size;
	}
	clrmemtrace__heap_stats(heap, &st);
	assert_int_equal(st.live_blocks, pool_n);
	assert_int_equal(st.live_bytes, bytes);
	assert_true(st.os_bytes >= bytes);
	clrmemtrace__heap_lock_all(heap);
	clrmemtrace__heap_foreach_live_locked(heap, count_live, &lc);
	clrmemtrace__heap_unlock_all(heap);
	assert_int_equal(lc.found, pool_n);
	assert_int_equal(lc.unknown, 0);

	/* Free the rest from this thread, checking each one last time. */
	while (pool_n > 0) {
		struct block b = pool[--pool_n];

		if (!intact(&b)) {
			fail_msg("seed %#" PRIx64 ": block %p (%zu bytes) was overwritten", base_seed,
				 (void *)b.p, b.size);
		}
		assert_int_equal(clrmemtrace__heap_free(heap, b.p, NULL, NULL), 0);
		/* A second free of the same block is refused. */
		assert_int_equal(clrmemtrace__heap_free(heap, b.p, NULL, NULL), ERROR_INVALID_ADDRESS);
	}
	clrmemtrace__heap_stats(heap, &st);
	assert_int_equal(st.live_blocks, 0);
	assert_int_equal(st.live_bytes, 0);
	clrmemtrace__heap_destroy(heap);
	urcu_bp_barrier();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_heap_threads),
	};

	return cmocka_run_group_tests_name("stress-heap", tests, NULL, NULL);
}
