/* SPDX-License-Identifier: MIT */
/*
 * The RCU granule map (src/posix/addrmap.c) alone: insert, lookup, next,
 * prev and remove, single granules to 256 GiB ranges, ranges crossing the
 * tree's level boundaries (2^10 and 2^20 granules) and ending mid-granule, a
 * random walk against a naive sorted-list model, and the memory a huge
 * entry costs.
 *
 * Overlapping inserts are outside the contract (addrmap.h: "the granules
 * must be unmapped"); the manager never makes them, so they are not tested.
 *
 * The executable is linked with --wrap=calloc and --wrap=free, so the
 * bytes the map's nodes occupy can be counted exactly, whatever allocator
 * (glibc's or a sanitizer's) is underneath. Nodes the map unlinks are freed
 * by liburcu's call_rcu thread: urcu_bp_barrier() waits for them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-bp.h>

#include "addrmap.h"
#include "internal.h"

#define G ((uintptr_t)1 << 16) /* bytes per granule */

/* ---------- Counting allocations ---------- */

void *__real_calloc(size_t n, size_t size);
void __real_free(void *p);
void *__wrap_calloc(size_t n, size_t size);
void __wrap_free(void *p);

#define TRACK_MAX 16384

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *p;
	size_t size;
} tracked[TRACK_MAX];
static size_t ntracked;
static size_t live_bytes;
static bool track_overflow;

void *__wrap_calloc(size_t n, size_t size)
{
	void *p = __real_calloc(n, size);

	if (p) {
		pthread_mutex_lock(&track_lock);
		if (ntracked < TRACK_MAX) {
			tracked[ntracked].p = p;
			tracked[ntracked].size = n * size;
			ntracked++;
			live_bytes += n * size;
		} else {
			track_overflow = true;
		}
		pthread_mutex_unlock(&track_lock);
	}
	return p;
}

void __wrap_free(void *p)
{
	size_t i;

	pthread_mutex_lock(&track_lock);
	for (i = ntracked; i-- > 0;) {
		if (tracked[i].p == p) {
			live_bytes -= tracked[i].size;
			tracked[i] = tracked[--ntracked];
			break;
		}
	}
	pthread_mutex_unlock(&track_lock);
	__real_free(p);
}

/* Bytes calloc'd by the map and not yet freed, once deferred frees have run. */
static size_t settled_bytes(void)
{
	size_t n;

	urcu_bp_barrier();
	pthread_mutex_lock(&track_lock);
	n = live_bytes;
	assert_false(track_overflow);
	pthread_mutex_unlock(&track_lock);
	return n;
}

/* ---------- Helpers ---------- */

/* Distinct, 8-byte aligned objects to map to. */
static uint64_t objs[256];

static void *obj(unsigned i)
{
	return &objs[i];
}

static uintptr_t total_granules(void)
{
	uintptr_t last = (clrmemtrace__sys.user_limit - 1) / G;
	uintptr_t n = 1;

	while (n <= last) {
		n <<= 1;
	}
	return n;
}

static int setup(void **state)
{
	struct addrmap *m = calloc(1, sizeof(*m));

	if (!m || clrmemtrace__init() != 0 || clrmemtrace__addrmap_init(m) != 0) {
		free(m);
		return -1;
	}
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	struct addrmap *m = *state;

	clrmemtrace__addrmap_fini(m);
	free(m);
	return 0;
}

/* Readers must be inside a read-side critical section. */
static void *lookup(struct addrmap *m, uintptr_t a)
{
	void *v;

	urcu_bp_read_lock();
	v = clrmemtrace__addrmap_lookup(m, a);
	urcu_bp_read_unlock();
	return v;
}

static void *next(struct addrmap *m, uintptr_t a)
{
	void *v;

	urcu_bp_read_lock();
	v = clrmemtrace__addrmap_next(m, a);
	urcu_bp_read_unlock();
	return v;
}

static void *prev(struct addrmap *m, uintptr_t a)
{
	void *v;

	urcu_bp_read_lock();
	v = clrmemtrace__addrmap_prev(m, a);
	urcu_bp_read_unlock();
	return v;
}

/* Checks lookup at both ends of [gb, ge) granules and just outside. */
static void check_range(struct addrmap *m, uintptr_t gb, uintptr_t ge, void *v)
{
	assert_ptr_equal(lookup(m, gb * G), v);
	assert_ptr_equal(lookup(m, gb * G + G - 1), v);
	assert_ptr_equal(lookup(m, (ge - 1) * G), v);
	assert_ptr_equal(lookup(m, ge * G - 1), v);
	assert_ptr_equal(next(m, gb * G), v);
	assert_ptr_equal(next(m, (ge - 1) * G), v);
	assert_ptr_equal(prev(m, ge * G), v);
	assert_ptr_equal(prev(m, (gb + 1) * G), v);
}

/* ---------- Basic operations ---------- */

static void test_addrmap_empty(void **state)
{
	struct addrmap *m = *state;
	uintptr_t top = clrmemtrace__sys.user_limit;

	assert_null(lookup(m, 0));
	assert_null(lookup(m, 0x7f0000000000u));
	assert_null(lookup(m, top - 1));
	assert_null(lookup(m, top));
	assert_null(lookup(m, UINTPTR_MAX));
	assert_null(next(m, 0));
	assert_null(next(m, UINTPTR_MAX));
	assert_null(prev(m, 0));
	assert_null(prev(m, top));
	assert_null(prev(m, UINTPTR_MAX));
}

static void test_addrmap_single_granule(void **state)
{
	struct addrmap *m = *state;
	uintptr_t g = 12345;

	assert_int_equal(clrmemtrace__addrmap_insert(m, g * G, g * G + G, obj(1)), 0);
	check_range(m, g, g + 1, obj(1));
	assert_null(lookup(m, g * G - 1));
	assert_null(lookup(m, (g + 1) * G));
	/* next is "at or above", prev "strictly below" the address's granule. */
	assert_ptr_equal(next(m, 0), obj(1));
	assert_ptr_equal(next(m, g * G + 100), obj(1));
	assert_null(next(m, (g + 1) * G));
	assert_null(prev(m, g * G + G - 1));
	assert_ptr_equal(prev(m, (g + 1) * G), obj(1));
	assert_ptr_equal(prev(m, UINTPTR_MAX), obj(1));
	clrmemtrace__addrmap_remove(m, g * G, g * G + G);
	assert_null(lookup(m, g * G));
	assert_null(next(m, 0));
	assert_null(prev(m, UINTPTR_MAX));
}

static void test_addrmap_range_ending_mid_granule(void **state)
{
	struct addrmap *m = *state;
	uintptr_t base = 0x10000000u, end = base + 3 * G + 0x1000;

	assert_int_equal(clrmemtrace__addrmap_insert(m, base, end, obj(2)), 0);
	/* The partly used last granule belongs to the object too. */
	assert_ptr_equal(lookup(m, end), obj(2));
	assert_ptr_equal(lookup(m, base + 4 * G - 1), obj(2));
	assert_null(lookup(m, base + 4 * G));
	assert_ptr_equal(prev(m, base + 4 * G), obj(2));
	/* A neighbour may start in the very next granule. */
	assert_int_equal(clrmemtrace__addrmap_insert(m, base + 4 * G, base + 5 * G, obj(3)), 0);
	assert_ptr_equal(lookup(m, base + 4 * G - 1), obj(2));
	assert_ptr_equal(lookup(m, base + 4 * G), obj(3));
	/* Removing with the same unaligned end clears the last granule. */
	clrmemtrace__addrmap_remove(m, base, end);
	assert_null(lookup(m, end));
	assert_null(lookup(m, base));
	assert_ptr_equal(lookup(m, base + 4 * G), obj(3));
	clrmemtrace__addrmap_remove(m, base + 4 * G, base + 5 * G);
	assert_null(next(m, 0));
}

static void test_addrmap_adjacent_ranges(void **state)
{
	struct addrmap *m = *state;
	uintptr_t a = 5000, b = 5003, c = 5010;

	assert_int_equal(clrmemtrace__addrmap_insert(m, a * G, b * G, obj(4)), 0);
	assert_int_equal(clrmemtrace__addrmap_insert(m, b * G, c * G, obj(5)), 0);
	check_range(m, a, b, obj(4));
	check_range(m, b, c, obj(5));
	assert_ptr_equal(prev(m, b * G), obj(4));
	assert_ptr_equal(next(m, b * G), obj(5));
	clrmemtrace__addrmap_remove(m, a * G, b * G);
	assert_null(lookup(m, a * G));
	assert_null(prev(m, b * G));
	check_range(m, b, c, obj(5));
	clrmemtrace__addrmap_remove(m, b * G, c * G);
	assert_null(lookup(m, b * G));
}

static void test_addrmap_level_boundaries(void **state)
{
	struct addrmap *m = *state;
	static const struct {
		uintptr_t gb, ge;
	} r[] = {
		{ (1u << 10) - 2, (1u << 10) + 2 },                 /* two leaves */
		{ 5u << 10, 6u << 10 },                             /* exactly one mid entry */
		{ (1u << 20) - 3, (1u << 20) + 5 },                 /* two root entries */
		{ 2u << 20, 3u << 20 },                             /* exactly one root entry */
		{ (4u << 20) - 1, (6u << 20) + (1u << 10) + 1 },    /* partial, whole, partial */
		{ (7u << 20) + 1, (9u << 20) - 1 },                 /* both ends inside root entries */
	};
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(r); i++) {
		assert_int_equal(clrmemtrace__addrmap_insert(m, r[i].gb * G, r[i].ge * G, obj(10 + i)),
				 0);
	}
	for (i = 0; i < ARRAY_SIZE(r); i++) {
		check_range(m, r[i].gb, r[i].ge, obj(10 + i));
		assert_ptr_not_equal(lookup(m, r[i].gb * G - 1), obj(10 + i));
		assert_ptr_not_equal(lookup(m, r[i].ge * G), obj(10 + i));
		/* Between this range and the next one, next and prev find the neighbours. */
		if (i + 1 < ARRAY_SIZE(r) && r[i].ge < r[i + 1].gb) {
			assert_null(lookup(m, r[i].ge * G));
			assert_ptr_equal(next(m, r[i].ge * G), obj(10 + i + 1));
			assert_ptr_equal(prev(m, r[i + 1].gb * G), obj(10 + i));
		}
	}
	/* Remove every other range; the rest is intact. */
	for (i = 0; i < ARRAY_SIZE(r); i += 2) {
		clrmemtrace__addrmap_remove(m, r[i].gb * G, r[i].ge * G);
	}
	for (i = 0; i < ARRAY_SIZE(r); i++) {
		if (i % 2 == 0) {
			assert_null(lookup(m, r[i].gb * G));
			assert_null(lookup(m, (r[i].ge - 1) * G));
		} else {
			check_range(m, r[i].gb, r[i].ge, obj(10 + i));
		}
	}
	for (i = 1; i < ARRAY_SIZE(r); i += 2) {
		clrmemtrace__addrmap_remove(m, r[i].gb * G, r[i].ge * G);
	}
	for (j = 0; j < ARRAY_SIZE(r); j++) {
		assert_null(lookup(m, r[j].gb * G));
	}
	assert_null(next(m, 0));
}

static void test_addrmap_huge_range(void **state)
{
	struct addrmap *m = *state;
	/* 256 GiB at a base that is aligned to no level of the tree. */
	uintptr_t base = ((uintptr_t)1 << 44) + 3 * G, end = base + ((uintptr_t)1 << 38);
	uintptr_t a;

	assert_int_equal(clrmemtrace__addrmap_insert(m, base, end, obj(20)), 0);
	check_range(m, base / G, end / G, obj(20));
	for (a = base; a < end; a += ((uintptr_t)1 << 30) + 7 * G) {
		assert_ptr_equal(lookup(m, a), obj(20));
	}
	assert_null(lookup(m, base - 1));
	assert_null(lookup(m, end));
	assert_ptr_equal(next(m, 0), obj(20));
	assert_ptr_equal(prev(m, UINTPTR_MAX), obj(20));
	assert_null(next(m, end));
	assert_null(prev(m, base));
	clrmemtrace__addrmap_remove(m, base, end);
	for (a = base; a < end; a += ((uintptr_t)1 << 30) + 7 * G) {
		assert_null(lookup(m, a));
	}
	assert_null(next(m, 0));
}

static void test_addrmap_top_of_address_space(void **state)
{
	struct addrmap *m = *state;
	uintptr_t top = total_granules() * G;
	uintptr_t base = top - ((uintptr_t)1 << 30) - G;

	/* The last granule the map covers, and a range ending exactly there. */
	assert_int_equal(clrmemtrace__addrmap_insert(m, base, top, obj(30)), 0);
	check_range(m, base / G, top / G, obj(30));
	assert_ptr_equal(lookup(m, clrmemtrace__sys.user_limit - 1), obj(30));
	assert_ptr_equal(next(m, 0), obj(30));
	assert_ptr_equal(prev(m, UINTPTR_MAX), obj(30));
	assert_null(lookup(m, top));
	clrmemtrace__addrmap_remove(m, base, top);
	assert_null(lookup(m, top - 1));
}

static void test_addrmap_insert_rejects_bad_arguments(void **state)
{
	struct addrmap *m = *state;
	uintptr_t top = total_granules() * G;

	/* A value with bit 0 set would read as a child node. */
	assert_int_equal(clrmemtrace__addrmap_insert(m, 0x100000, 0x110000, (char *)obj(1) + 1),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__addrmap_insert(m, 0x100000, 0x100000, obj(1)),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__addrmap_insert(m, 0x200000, 0x100000, obj(1)),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__addrmap_insert(m, top - G, top + G, obj(1)),
			 ERROR_INVALID_PARAMETER);
	assert_null(lookup(m, 0x100000));
	assert_null(lookup(m, top - G));
	assert_null(next(m, 0));
}

/* ---------- Random operations against a sorted-list model ---------- */

struct range {
	uintptr_t gb, ge;
	void *v;
};

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

static uint64_t seed_from_env(uint64_t fallback)
{
	const char *s = getenv("CLRMEMTRACE_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : fallback;
}

static void *model_lookup(const struct range *r, size_t n, uintptr_t g)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (g >= r[i].gb && g < r[i].ge) {
			return r[i].v;
		}
	}
	return NULL;
}

/* The model is sorted by gb and its ranges are disjoint. */
static void *model_next(const struct range *r, size_t n, uintptr_t g)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].ge > g) {
			return r[i].v;
		}
	}
	return NULL;
}

static void *model_prev(const struct range *r, size_t n, uintptr_t g)
{
	size_t i;

	for (i = n; i-- > 0;) {
		if (r[i].gb < g) {
			return r[i].v;
		}
	}
	return NULL;
}

static void check_against_model(struct addrmap *m, const struct range *r, size_t n, uintptr_t g,
				uint64_t seed, int op)
{
	uintptr_t a = g * G + (uintptr_t)rng_below(G);
	void *got, *want;

	got = lookup(m, a);
	want = model_lookup(r, n, g);
	if (got != want) {
		fail_msg("seed %#" PRIx64 " op %d: lookup(%#" PRIxPTR ") = %p, model %p", seed, op, a,
			 got, want);
	}
	got = next(m, a);
	want = model_next(r, n, g);
	if (got != want) {
		fail_msg("seed %#" PRIx64 " op %d: next(%#" PRIxPTR ") = %p, model %p", seed, op, a,
			 got, want);
	}
	got = prev(m, a);
	want = model_prev(r, n, g);
	if (got != want) {
		fail_msg("seed %#" PRIx64 " op %d: prev(%#" PRIxPTR ") = %p, model %p", seed, op, a,
			 got, want);
	}
}

static void test_addrmap_random_against_model(void **state)
{
	struct addrmap *m = *state;
	const uint64_t seed = seed_from_env(0x5eed0002u);
	/* Granules 0 .. 4 root entries: every level boundary is crossed many times. */
	const uintptr_t universe = (uintptr_t)4 << 20;
	struct range r[64];
	size_t n = 0, i, inserts = 0, removes = 0;
	int op;

	rng_state = seed;
	for (op = 0; op < 4000; op++) {
		if (n < ARRAY_SIZE(r) && (n == 0 || rng_below(3) != 0)) {
			uintptr_t len, gb, ge;
			unsigned kind = (unsigned)rng_below(10);
			bool overlap = false;

			/* Mostly small ranges, some the size of a leaf or a mid node, or larger. */
			len = kind < 6 ? rng_below(8) + 1
			      : kind < 9 ? rng_below(3u << 10) + 1
					 : rng_below(3u << 20) + 1;
			gb = rng_below(universe - len);
			ge = gb + len;
			for (i = 0; i < n; i++) {
				overlap |= gb < r[i].ge && r[i].gb < ge;
			}
			if (overlap) {
				continue;
			}
			/* The object's end may fall anywhere in its last granule. */
			if (clrmemtrace__addrmap_insert(m, gb * G, ge * G - (uintptr_t)rng_below(G),
							obj((unsigned)(100 + op % 150))) != 0) {
				fail_msg("seed %#" PRIx64 " op %d: insert failed", seed, op);
			}
			for (i = n; i > 0 && r[i - 1].gb > gb; i--) {
				r[i] = r[i - 1];
			}
			r[i].gb = gb;
			r[i].ge = ge;
			r[i].v = obj((unsigned)(100 + op % 150));
			n++;
			inserts++;
		} else {
			size_t k = (size_t)rng_below(n);

			clrmemtrace__addrmap_remove(m, r[k].gb * G, r[k].ge * G);
			memmove(&r[k], &r[k + 1], (n - k - 1) * sizeof(r[0]));
			n--;
			removes++;
		}
		for (i = 0; i < 8; i++) {
			check_against_model(m, r, n, (uintptr_t)rng_below(universe + 16), seed, op);
		}
		/* Edges of the ranges are where off-by-one errors live. */
		for (i = 0; i < n; i++) {
			check_against_model(m, r, n, r[i].gb, seed, op);
			check_against_model(m, r, n, r[i].ge - 1, seed, op);
			check_against_model(m, r, n, r[i].ge, seed, op);
			if (r[i].gb) {
				check_against_model(m, r, n, r[i].gb - 1, seed, op);
			}
		}
	}
	assert_true(inserts > 1000 && removes > 1000);
	for (i = 0; i < n; i++) {
		clrmemtrace__addrmap_remove(m, r[i].gb * G, r[i].ge * G);
	}
	assert_null(next(m, 0));
}

/* ---------- Memory cost ---------- */

static void test_addrmap_huge_entry_costs_kilobytes(void **state)
{
	struct addrmap *m = *state;
	uintptr_t base = ((uintptr_t)1 << 44) + 3 * G, end = base + ((uintptr_t)1 << 38) - 0x1000;
	size_t before, cost;

	before = settled_bytes();
	assert_int_equal(clrmemtrace__addrmap_insert(m, base, end, obj(40)), 0);
	cost = settled_bytes() - before;
	/*
	 * A granule per slot would take 32 MiB for 2^22 granules. The tree needs
	 * at most a mid node and a leaf at each unaligned end: four nodes of
	 * 1024 slots.
	 */
	print_message("a 256 GiB entry costs %zu bytes\n", cost);
	assert_true(cost > 0);
	assert_true(cost <= 4 * (1024 * sizeof(uintptr_t) + 64));
	clrmemtrace__addrmap_remove(m, base, end);
	assert_null(lookup(m, base));
}

static void test_addrmap_churn_is_bounded_and_fini_frees_all(void **state)
{
	struct addrmap *m;
	size_t before, during = 0, k;

	(void)state;
	before = settled_bytes();
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	assert_int_equal(clrmemtrace__addrmap_init(m), 0);
	/*
	 * Reserve/release churn all over the address space: each insert needs up
	 * to four fresh nodes. Nodes emptied by removals must be given back
	 * (at once or in batches), or memory grows with every cycle.
	 */
	rng_state = 0x5eed0003u;
	for (k = 0; k < 3000; k++) {
		uintptr_t gb = (uintptr_t)rng_below(total_granules() - 64);
		uintptr_t ge = gb + 1 + (uintptr_t)rng_below(40);
		size_t now;

		assert_int_equal(clrmemtrace__addrmap_insert(m, gb * G, ge * G, obj(50)), 0);
		assert_ptr_equal(lookup(m, gb * G), obj(50));
		clrmemtrace__addrmap_remove(m, gb * G, ge * G);
		if (k % 500 == 499) {
			now = settled_bytes() - before;
			during = now > during ? now : during;
		}
	}
	print_message("at most %zu bytes held during churn\n", during);
	assert_true(during < ((size_t)2 << 20));
	clrmemtrace__addrmap_fini(m);
	free(m);
	assert_int_equal(settled_bytes(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_addrmap_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_single_granule, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_range_ending_mid_granule, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_adjacent_ranges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_level_boundaries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_huge_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_top_of_address_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_insert_rejects_bad_arguments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_random_against_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_addrmap_huge_entry_costs_kilobytes, setup,
						teardown),
		cmocka_unit_test(test_addrmap_churn_is_bounded_and_fini_frees_all),
	};

	return cmocka_run_group_tests_name("addrmap", tests, NULL, NULL);
}
