/* SPDX-License-Identifier: MIT */
/*
 * The page-state map alone (src/posix/pagemap.c): run splitting and merging,
 * boundaries, count and find, random operations against a naive per-page
 * model, the Win32 protection converters, and what a huge reservation costs.
 * No syscalls are made.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "pagemap.h"

#define RW (PM_COMMITTED | PM_PROT_READWRITE)
#define RO (PM_COMMITTED | PM_PROT_READONLY)
#define NA (PM_COMMITTED | PM_PROT_NOACCESS)
#define RWG (PM_COMMITTED | PM_PROT_READWRITE | PM_GUARD)

/* Fails the test unless the run array keeps its documented invariants. */
static void check_invariants(const struct pm_runs *r, const char *ctx)
{
	uint32_t i;

	if (r->count < 1) {
		fail_msg("%s: no runs", ctx);
	}
	if (pm_run_start(r, 0) != 0) {
		fail_msg("%s: first run starts at page %" PRIu64, ctx, pm_run_start(r, 0));
	}
	for (i = 0; i + 1 < r->count; i++) {
		if (pm_run_start(r, i) >= pm_run_start(r, i + 1)) {
			fail_msg("%s: run %u starts at %" PRIu64 ", run %u at %" PRIu64, ctx, i,
				 pm_run_start(r, i), i + 1, pm_run_start(r, i + 1));
		}
		if (pm_run_state(r, i) == pm_run_state(r, i + 1)) {
			fail_msg("%s: runs %u and %u both have state %#x (not maximal)", ctx, i, i + 1,
				 pm_run_state(r, i));
		}
	}
	if (pm_run_start(r, r->count - 1) >= r->pages) {
		fail_msg("%s: last run starts at %" PRIu64 " of %" PRIu64 " pages", ctx,
			 pm_run_start(r, r->count - 1), r->pages);
	}
}

/* Replaces *r by pm_set(*r, ...), checking the result and freeing the old map. */
static void set(struct pm_runs **r, uint64_t first, uint64_t end, uint8_t state)
{
	struct pm_runs *n = clrmemtrace__pm_set(*r, first, end, state);

	assert_non_null(n);
	assert_int_equal(n->pages, (*r)->pages);
	check_invariants(n, "pm_set");
	clrmemtrace__pm_free(*r);
	*r = n;
}

static uint8_t state_at(const struct pm_runs *r, uint64_t page)
{
	return pm_run_state(r, clrmemtrace__pm_find(r, page));
}

/* ---------- Split and merge ---------- */

static void test_pagemap_new_is_one_run(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(16, PM_RESERVED);

	(void)state;
	assert_non_null(r);
	assert_int_equal(r->pages, 16);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_start(r, 0), 0);
	assert_int_equal(pm_run_state(r, 0), PM_RESERVED);
	assert_int_equal(pm_run_end(r, 0), 16);
	check_invariants(r, "new");
	clrmemtrace__pm_free(r);

	r = clrmemtrace__pm_new(3, RW);
	assert_non_null(r);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), RW);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_middle_splits_and_merges_back(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(16, PM_RESERVED);

	(void)state;
	set(&r, 4, 8, RW);
	assert_int_equal(r->count, 3);
	assert_int_equal(pm_run_start(r, 1), 4);
	assert_int_equal(pm_run_end(r, 1), 8);
	assert_int_equal(pm_run_state(r, 0), PM_RESERVED);
	assert_int_equal(pm_run_state(r, 1), RW);
	assert_int_equal(pm_run_state(r, 2), PM_RESERVED);

	/* A different state in the middle of the middle: five runs. */
	set(&r, 5, 7, RO);
	assert_int_equal(r->count, 5);
	assert_int_equal(state_at(r, 4), RW);
	assert_int_equal(state_at(r, 5), RO);
	assert_int_equal(state_at(r, 6), RO);
	assert_int_equal(state_at(r, 7), RW);

	/* Setting it back merges with both neighbours. */
	set(&r, 5, 7, RW);
	assert_int_equal(r->count, 3);
	set(&r, 4, 8, PM_RESERVED);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), PM_RESERVED);
	assert_int_equal(pm_run_end(r, 0), 16);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_adjacent_ranges_merge(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(32, PM_RESERVED);

	(void)state;
	set(&r, 0, 4, RW);
	set(&r, 8, 12, RW);
	assert_int_equal(r->count, 4);
	/* Filling the gap joins the two committed runs into one. */
	set(&r, 4, 8, RW);
	assert_int_equal(r->count, 2);
	assert_int_equal(pm_run_end(r, 0), 12);
	/* A range overlapping the end of a run and the start of the next. */
	set(&r, 10, 20, RO);
	assert_int_equal(r->count, 3);
	assert_int_equal(pm_run_end(r, 0), 10);
	assert_int_equal(pm_run_end(r, 1), 20);
	/* A range covering several runs entirely collapses them. */
	set(&r, 0, 32, NA);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), NA);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_same_state_changes_nothing(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(16, PM_RESERVED);

	(void)state;
	set(&r, 2, 6, RW);
	set(&r, 3, 5, RW);
	assert_int_equal(r->count, 3);
	set(&r, 8, 16, PM_RESERVED);
	assert_int_equal(r->count, 3);
	assert_int_equal(pm_run_start(r, 2), 6);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_set_leaves_source_untouched(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(16, PM_RESERVED);
	struct pm_runs *n;

	(void)state;
	set(&r, 4, 8, RW);
	n = clrmemtrace__pm_set(r, 0, 16, RO);
	assert_non_null(n);
	/* Readers may still hold the old array: it must not have changed. */
	assert_int_equal(r->count, 3);
	assert_int_equal(state_at(r, 5), RW);
	assert_int_equal(n->count, 1);
	clrmemtrace__pm_free(n);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_empty_range_changes_nothing(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(16, PM_RESERVED);
	uint64_t at[] = { 0, 4, 6, 8, 16 };
	size_t i;

	(void)state;
	set(&r, 4, 8, RW);
	for (i = 0; i < ARRAY_SIZE(at); i++) {
		struct pm_runs *n = clrmemtrace__pm_set(r, at[i], at[i], RO);
		uint32_t j;

		assert_non_null(n);
		check_invariants(n, "empty range");
		assert_int_equal(n->count, r->count);
		for (j = 0; j < r->count; j++) {
			assert_int_equal(n->run[j], r->run[j]);
		}
		clrmemtrace__pm_free(n);
	}
	clrmemtrace__pm_free(r);
}

/* ---------- Boundaries ---------- */

static void test_pagemap_first_and_last_page(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(10, PM_RESERVED);

	(void)state;
	set(&r, 0, 1, RW);
	assert_int_equal(r->count, 2);
	assert_int_equal(pm_run_end(r, 0), 1);
	assert_int_equal(state_at(r, 0), RW);
	assert_int_equal(state_at(r, 1), PM_RESERVED);

	set(&r, 9, 10, RO);
	assert_int_equal(r->count, 3);
	assert_int_equal(pm_run_start(r, 2), 9);
	assert_int_equal(pm_run_end(r, 2), 10);
	assert_int_equal(state_at(r, 9), RO);
	assert_int_equal(state_at(r, 8), PM_RESERVED);

	/* Undoing both ends restores a single run. */
	set(&r, 0, 1, PM_RESERVED);
	set(&r, 9, 10, PM_RESERVED);
	assert_int_equal(r->count, 1);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_whole_map(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(64, PM_RESERVED);

	(void)state;
	set(&r, 1, 2, RW);
	set(&r, 10, 30, RO);
	set(&r, 40, 64, RWG);
	assert_int_equal(r->count, 6);
	set(&r, 0, 64, RW);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), RW);
	assert_int_equal(pm_run_end(r, 0), 64);
	set(&r, 0, 64, PM_RESERVED);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), PM_RESERVED);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_single_page_map(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(1, PM_RESERVED);

	(void)state;
	assert_int_equal(clrmemtrace__pm_find(r, 0), 0);
	set(&r, 0, 1, RW);
	assert_int_equal(r->count, 1);
	assert_int_equal(pm_run_state(r, 0), RW);
	assert_int_equal(pm_run_end(r, 0), 1);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 1, PM_COMMITTED, PM_COMMITTED), 1);
	set(&r, 0, 1, PM_RESERVED);
	assert_int_equal(r->count, 1);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 1, PM_COMMITTED, PM_COMMITTED), 0);
	clrmemtrace__pm_free(r);
}

/* Every page its own run: the worst case for splitting. */
static void test_pagemap_alternating_pages(void **state)
{
	const uint64_t pages = 257;
	struct pm_runs *r = clrmemtrace__pm_new(pages, PM_RESERVED);
	uint64_t p;

	(void)state;
	for (p = 1; p < pages; p += 2) {
		set(&r, p, p + 1, RW);
	}
	assert_int_equal(r->count, pages);
	for (p = 0; p < pages; p++) {
		assert_int_equal(clrmemtrace__pm_find(r, p), p);
	}
	assert_int_equal(clrmemtrace__pm_count(r, 0, pages, PM_COMMITTED, PM_COMMITTED), pages / 2);
	for (p = 1; p < pages; p += 2) {
		set(&r, p, p + 1, PM_RESERVED);
	}
	assert_int_equal(r->count, 1);
	clrmemtrace__pm_free(r);
}

/* ---------- count and find ---------- */

static void test_pagemap_count(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(20, PM_RESERVED);

	(void)state;
	set(&r, 2, 6, RW);   /* 2..5 */
	set(&r, 8, 10, RWG); /* 8..9 */
	set(&r, 12, 20, RO); /* 12..19 */
	assert_int_equal(clrmemtrace__pm_count(r, 0, 20, PM_COMMITTED, PM_COMMITTED), 14);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 20, PM_COMMITTED, 0), 6);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 20, 0xff, RW), 4);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 20, PM_GUARD, PM_GUARD), 2);
	assert_int_equal(clrmemtrace__pm_count(r, 0, 20, PM_PROT_MASK, PM_PROT_READWRITE), 6);
	/* Partial overlap with runs at both ends of the range. */
	assert_int_equal(clrmemtrace__pm_count(r, 3, 13, PM_COMMITTED, PM_COMMITTED), 3 + 2 + 1);
	assert_int_equal(clrmemtrace__pm_count(r, 3, 13, PM_COMMITTED, 0), 4);
	/* Inside one run, and empty ranges. */
	assert_int_equal(clrmemtrace__pm_count(r, 13, 15, 0xff, RO), 2);
	assert_int_equal(clrmemtrace__pm_count(r, 5, 5, 0, 0), 0);
	assert_int_equal(clrmemtrace__pm_count(r, 7, 3, 0, 0), 0);
	/* The last page alone. */
	assert_int_equal(clrmemtrace__pm_count(r, 19, 20, 0xff, RO), 1);
	clrmemtrace__pm_free(r);
}

static void test_pagemap_find(void **state)
{
	struct pm_runs *r = clrmemtrace__pm_new(100, PM_RESERVED);

	(void)state;
	set(&r, 10, 20, RW);
	set(&r, 50, 51, RO);
	set(&r, 99, 100, NA);
	/* Runs: [0,10) [10,20) [20,50) [50,51) [51,99) [99,100). */
	assert_int_equal(r->count, 6);
	assert_int_equal(clrmemtrace__pm_find(r, 0), 0);
	assert_int_equal(clrmemtrace__pm_find(r, 9), 0);
	assert_int_equal(clrmemtrace__pm_find(r, 10), 1);
	assert_int_equal(clrmemtrace__pm_find(r, 19), 1);
	assert_int_equal(clrmemtrace__pm_find(r, 20), 2);
	assert_int_equal(clrmemtrace__pm_find(r, 49), 2);
	assert_int_equal(clrmemtrace__pm_find(r, 50), 3);
	assert_int_equal(clrmemtrace__pm_find(r, 51), 4);
	assert_int_equal(clrmemtrace__pm_find(r, 98), 4);
	assert_int_equal(clrmemtrace__pm_find(r, 99), 5);
	clrmemtrace__pm_free(r);
}

/* ---------- Random operations against a per-page model ---------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* xorshift64*: a fixed seed gives the same sequence on every run. */
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

static const uint8_t random_states[] = {
	PM_RESERVED,
	PM_COMMITTED | PM_PROT_NOACCESS,
	PM_COMMITTED | PM_PROT_READONLY,
	PM_COMMITTED | PM_PROT_READWRITE,
	PM_COMMITTED | PM_PROT_EXECUTE,
	PM_COMMITTED | PM_PROT_EXECUTE_READ,
	PM_COMMITTED | PM_PROT_EXECUTE_READWRITE,
	PM_COMMITTED | PM_PROT_READWRITE | PM_GUARD,
};

/* Compares r with the model page by page, and checks find and count. */
static void compare_with_model(const struct pm_runs *r, const uint8_t *model, uint64_t pages,
			       uint64_t seed, int op)
{
	uint64_t p = 0;
	uint32_t i;
	int k;

	for (i = 0; i < r->count; i++) {
		uint64_t s = pm_run_start(r, i), e = pm_run_end(r, i);

		for (p = s; p < e; p++) {
			if (model[p] != pm_run_state(r, i)) {
				fail_msg("seed %#" PRIx64 " op %d: page %" PRIu64
					 " is %#x in the map, %#x in the model",
					 seed, op, p, pm_run_state(r, i), model[p]);
			}
		}
		/* Maximal runs: the model differs at each run boundary. */
		if (s > 0 && model[s - 1] == model[s]) {
			fail_msg("seed %#" PRIx64 " op %d: boundary at page %" PRIu64 " is not a change",
				 seed, op, s);
		}
	}
	if (p != pages) {
		fail_msg("seed %#" PRIx64 " op %d: runs cover %" PRIu64 " of %" PRIu64 " pages", seed,
			 op, p, pages);
	}
	for (k = 0; k < 8; k++) {
		uint64_t a = rng_below(pages), b = rng_below(pages + 1), q, want = 0;
		uint8_t mask = (uint8_t)rng_next(), value = (uint8_t)(random_states[rng_below(8)] & mask);
		uint32_t f = clrmemtrace__pm_find(r, a);

		if (pm_run_start(r, f) > a || pm_run_end(r, f) <= a) {
			fail_msg("seed %#" PRIx64 " op %d: find(%" PRIu64 ") = run %u [%" PRIu64
				 ", %" PRIu64 ")",
				 seed, op, a, f, pm_run_start(r, f), pm_run_end(r, f));
		}
		for (q = a; q < b; q++) {
			want += (model[q] & mask) == value;
		}
		if (clrmemtrace__pm_count(r, a, b, mask, value) != want) {
			fail_msg("seed %#" PRIx64 " op %d: count(%" PRIu64 ", %" PRIu64
				 ", %#x, %#x) = %" PRIu64 ", model says %" PRIu64,
				 seed, op, a, b, mask, value, clrmemtrace__pm_count(r, a, b, mask, value),
				 want);
		}
	}
}

static void test_pagemap_random_against_model(void **state)
{
	const uint64_t seed = seed_from_env(0x5eed0001u);
	const uint64_t pages = 300;
	const int ops = 5000;
	uint8_t *model = calloc(pages, 1);
	struct pm_runs *r = clrmemtrace__pm_new(pages, PM_RESERVED);
	uint32_t max_count = 0;
	int op;

	(void)state;
	assert_non_null(model);
	assert_non_null(r);
	rng_state = seed;
	for (op = 0; op < ops; op++) {
		uint64_t first, end, len;
		uint8_t st = random_states[rng_below(ARRAY_SIZE(random_states))];
		struct pm_runs *n;

		/* Mostly short ranges, so that many runs build up; sometimes long ones. */
		len = rng_below(8) == 0 ? rng_below(pages) + 1 : rng_below(6) + 1;
		first = rng_below(pages);
		end = first + len > pages ? pages : first + len;
		n = clrmemtrace__pm_set(r, first, end, st);
		if (!n) {
			fail_msg("seed %#" PRIx64 " op %d: pm_set returned NULL", seed, op);
		}
		check_invariants(n, "random");
		memset(model + first, st, end - first);
		clrmemtrace__pm_free(r);
		r = n;
		if (r->count > max_count) {
			max_count = r->count;
		}
		compare_with_model(r, model, pages, seed, op);
	}
	/* The walk must have produced fragmented maps, or it tested little. */
	assert_true(max_count > 50);
	clrmemtrace__pm_free(r);
	free(model);
}

/* ---------- Conversions ---------- */

static const uint32_t valid_bases[] = {
	PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE, PAGE_EXECUTE_READ,
	PAGE_EXECUTE_READWRITE,
};

static void test_pagemap_from_win32_base_values(void **state)
{
	uint32_t p, accepted = 0;

	(void)state;
	/* Of the 255 combinations of the eight base bits, only six single bits are valid (#3, #4). */
	for (p = 0; p <= 0xff; p++) {
		uint8_t st = 0xee;
		uint32_t cache = 0xeeee;
		int err = clrmemtrace__pm_from_win32(p, &st, &cache);
		bool valid = p == PAGE_NOACCESS || p == PAGE_READONLY || p == PAGE_READWRITE ||
			     p == PAGE_EXECUTE || p == PAGE_EXECUTE_READ || p == PAGE_EXECUTE_READWRITE;

		if (!valid) {
			if (err != ERROR_INVALID_PARAMETER) {
				fail_msg("protection %#x: got %d, want ERROR_INVALID_PARAMETER", p, err);
			}
			/* A rejected value writes nothing. */
			assert_int_equal(st, 0xee);
			assert_int_equal(cache, 0xeeee);
			continue;
		}
		accepted++;
		if (err != 0) {
			fail_msg("protection %#x: rejected with %d", p, err);
		}
		assert_true(st & PM_COMMITTED);
		assert_false(st & PM_GUARD);
		assert_int_equal(cache, 0);
		assert_int_equal(clrmemtrace__pm_to_win32(st), p);
	}
	assert_int_equal(accepted, 6);
	/* The two copy-on-write values are rejected for private memory (#4). */
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_WRITECOPY, &(uint8_t){ 0 }, &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_EXECUTE_WRITECOPY, &(uint8_t){ 0 },
						    &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
}

static void test_pagemap_from_win32_distinct_states(void **state)
{
	uint8_t seen[ARRAY_SIZE(valid_bases)];
	size_t i, j;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(valid_bases); i++) {
		uint32_t cache;

		assert_int_equal(clrmemtrace__pm_from_win32(valid_bases[i], &seen[i], &cache), 0);
		for (j = 0; j < i; j++) {
			assert_int_not_equal(seen[i], seen[j]);
		}
	}
}

static void test_pagemap_from_win32_modifiers(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(valid_bases); i++) {
		uint32_t b = valid_bases[i], cache;
		uint8_t st, plain;
		int want_mod = b == PAGE_NOACCESS ? ERROR_INVALID_PARAMETER : 0;

		assert_int_equal(clrmemtrace__pm_from_win32(b, &plain, &cache), 0);

		/* PAGE_GUARD: stored per page, reported back, never with NOACCESS (#65). */
		assert_int_equal(clrmemtrace__pm_from_win32(b | PAGE_GUARD, &st, &cache), want_mod);
		if (!want_mod) {
			assert_int_equal(st, plain | PM_GUARD);
			assert_int_equal(cache, 0);
			assert_int_equal(clrmemtrace__pm_to_win32(st), b | PAGE_GUARD);
		}
		/* Cache modifiers: returned separately, not stored in the page state (#66). */
		assert_int_equal(clrmemtrace__pm_from_win32(b | PAGE_NOCACHE, &st, &cache), want_mod);
		if (!want_mod) {
			assert_int_equal(st, plain);
			assert_int_equal(cache, PAGE_NOCACHE);
		}
		assert_int_equal(clrmemtrace__pm_from_win32(b | PAGE_WRITECOMBINE, &st, &cache),
				 want_mod);
		if (!want_mod) {
			assert_int_equal(st, plain);
			assert_int_equal(cache, PAGE_WRITECOMBINE);
		}
		/* The modifiers exclude one another (Microsoft's contract, DESIGN.md). */
		assert_int_equal(clrmemtrace__pm_from_win32(b | PAGE_GUARD | PAGE_NOCACHE, &st, &cache),
				 ERROR_INVALID_PARAMETER);
		assert_int_equal(
			clrmemtrace__pm_from_win32(b | PAGE_GUARD | PAGE_WRITECOMBINE, &st, &cache),
			ERROR_INVALID_PARAMETER);
		assert_int_equal(
			clrmemtrace__pm_from_win32(b | PAGE_NOCACHE | PAGE_WRITECOMBINE, &st, &cache),
			ERROR_INVALID_PARAMETER);
		/* Control Flow Guard's flag is accepted and dropped. */
		assert_int_equal(clrmemtrace__pm_from_win32(b | PAGE_TARGETS_INVALID, &st, &cache), 0);
		assert_int_equal(st, plain);
		assert_int_equal(cache, 0);
	}
	/* Modifiers without a base value, and unknown bits, are rejected. */
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_GUARD, &(uint8_t){ 0 }, &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_NOCACHE, &(uint8_t){ 0 }, &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_READWRITE | 0x800, &(uint8_t){ 0 },
						    &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
	assert_int_equal(clrmemtrace__pm_from_win32(PAGE_READWRITE | 0x80000000u, &(uint8_t){ 0 },
						    &(uint32_t){ 0 }),
			 ERROR_INVALID_PARAMETER);
}

static void test_pagemap_to_win32_and_unix(void **state)
{
	static const struct {
		uint32_t win32;
		int unix_prot;
	} table[] = {
		{ PAGE_NOACCESS, PROT_NONE },
		{ PAGE_READONLY, PROT_READ },
		{ PAGE_READWRITE, PROT_READ | PROT_WRITE },
		{ PAGE_EXECUTE, PROT_READ | PROT_EXEC },
		{ PAGE_EXECUTE_READ, PROT_READ | PROT_EXEC },
		{ PAGE_EXECUTE_READWRITE, PROT_READ | PROT_WRITE | PROT_EXEC },
	};
	size_t i;

	(void)state;
	/* Reserved pages: no protection and no access, whatever else the byte holds. */
	assert_int_equal(clrmemtrace__pm_to_win32(PM_RESERVED), 0);
	assert_int_equal(clrmemtrace__pm_to_unix(PM_RESERVED), PROT_NONE);
	assert_int_equal(clrmemtrace__pm_to_unix(PM_PROT_READWRITE), PROT_NONE);
	for (i = 0; i < ARRAY_SIZE(table); i++) {
		uint8_t st;
		uint32_t cache;

		assert_int_equal(clrmemtrace__pm_from_win32(table[i].win32, &st, &cache), 0);
		assert_int_equal(clrmemtrace__pm_to_win32(st), table[i].win32);
		assert_int_equal(clrmemtrace__pm_to_unix(st), table[i].unix_prot);
		if (table[i].win32 != PAGE_NOACCESS) {
			/* A guard page has no access until its first touch. */
			assert_int_equal(clrmemtrace__pm_from_win32(table[i].win32 | PAGE_GUARD, &st,
								    &cache),
					 0);
			assert_int_equal(clrmemtrace__pm_to_unix(st), PROT_NONE);
			assert_int_equal(clrmemtrace__pm_to_win32(st), table[i].win32 | PAGE_GUARD);
		}
	}
}

/* ---------- Memory cost ---------- */

static void test_pagemap_huge_reservation_costs_kilobytes(void **state)
{
	/* 256 GiB of 4 KiB pages. */
	const uint64_t pages = (uint64_t)1 << 26;
	struct pm_runs *r = clrmemtrace__pm_new(pages, PM_RESERVED);
	size_t empty;

	(void)state;
	assert_non_null(r);
	empty = clrmemtrace__pm_bytes(r);
	assert_true(empty < 256);
	/* A handful of committed runs spread over the whole reservation. */
	set(&r, 0, 16, RW);
	set(&r, 1u << 20, (1u << 20) + 4096, RW);
	set(&r, (uint64_t)1 << 25, ((uint64_t)1 << 25) + 1, RO);
	set(&r, pages - (1u << 22), pages - 7, RWG);
	set(&r, pages - 1, pages, NA);
	assert_int_equal(r->count, 9);
	assert_true(clrmemtrace__pm_bytes(r) < 1024);
	assert_int_equal(clrmemtrace__pm_count(r, 0, pages, PM_COMMITTED, PM_COMMITTED),
			 16 + 4096 + 1 + ((1u << 22) - 7) + 1);
	assert_int_equal(state_at(r, pages - 2), PM_RESERVED);
	assert_int_equal(state_at(r, pages - 8), RWG);
	/* Committing everything collapses it to a single run again. */
	set(&r, 0, pages, RW);
	assert_int_equal(r->count, 1);
	/* The array is sized for the map it replaced (runs + 2), never for the pages. */
	assert_true(clrmemtrace__pm_bytes(r) <= PM_RUNS_BYTES(9 + 2));
	assert_true(clrmemtrace__pm_bytes(r) >= empty);
	clrmemtrace__pm_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pagemap_new_is_one_run),
		cmocka_unit_test(test_pagemap_middle_splits_and_merges_back),
		cmocka_unit_test(test_pagemap_adjacent_ranges_merge),
		cmocka_unit_test(test_pagemap_same_state_changes_nothing),
		cmocka_unit_test(test_pagemap_set_leaves_source_untouched),
		cmocka_unit_test(test_pagemap_empty_range_changes_nothing),
		cmocka_unit_test(test_pagemap_first_and_last_page),
		cmocka_unit_test(test_pagemap_whole_map),
		cmocka_unit_test(test_pagemap_single_page_map),
		cmocka_unit_test(test_pagemap_alternating_pages),
		cmocka_unit_test(test_pagemap_count),
		cmocka_unit_test(test_pagemap_find),
		cmocka_unit_test(test_pagemap_random_against_model),
		cmocka_unit_test(test_pagemap_from_win32_base_values),
		cmocka_unit_test(test_pagemap_from_win32_distinct_states),
		cmocka_unit_test(test_pagemap_from_win32_modifiers),
		cmocka_unit_test(test_pagemap_to_win32_and_unix),
		cmocka_unit_test(test_pagemap_huge_reservation_costs_kilobytes),
	};

	return cmocka_run_group_tests_name("pagemap", tests, NULL, NULL);
}
