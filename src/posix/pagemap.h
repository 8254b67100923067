/* SPDX-License-Identifier: MIT */
/*
 * The page-state map of one reservation: a sorted array of runs of pages in
 * equal state. Pure data structure: no syscalls, no locks.
 *
 * A run array is immutable once built. Changing a range builds a new array
 * (pagemap_set), which the caller publishes with RCU; readers keep using the
 * old one until they leave their read-side critical section. Memory is
 * proportional to the number of runs, never to the size of the reservation.
 */
#ifndef CLRMEMTRACE_PAGEMAP_H
#define CLRMEMTRACE_PAGEMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Page state, one byte. 0 means reserved (not committed). A committed page
 * has PM_COMMITTED, one protection index and optionally PM_GUARD. Cache
 * modifiers (PAGE_NOCACHE, PAGE_WRITECOMBINE) belong to the whole
 * reservation, as on current Windows, and are not stored per page.
 */
#define PM_PROT_MASK 0x07u
#define PM_PROT_NOACCESS 1u
#define PM_PROT_READONLY 2u
#define PM_PROT_READWRITE 3u
#define PM_PROT_EXECUTE 4u
#define PM_PROT_EXECUTE_READ 5u
#define PM_PROT_EXECUTE_READWRITE 6u
#define PM_GUARD 0x08u
#define PM_COMMITTED 0x10u
#define PM_RESERVED 0x00u

/*
 * Each run packs its first page (relative to the reservation) and its state.
 * Entries are read and written with relaxed atomics: an owner may rewrite a
 * buffer that a slow reader still looks at, and the reader then detects the
 * change and retries (vm_posix.c), so every read must stay in bounds even
 * when the contents are torn.
 */
struct pm_runs {
	void *owner[2];    /* room for the owner's deferred-free record */
	uint64_t pages;    /* pages in the reservation */
	uint32_t count;    /* runs, at least 1 */
	uint32_t capacity; /* room in run[] */
	uint64_t run[];    /* (first_page << 8) | state, ascending, adjacent states differ */
};

/* Bytes of a map with room for `capacity` runs. */
#define PM_RUNS_BYTES(capacity) (sizeof(struct pm_runs) + (size_t)(capacity) * sizeof(uint64_t))

static inline uint32_t pm_count_runs(const struct pm_runs *r)
{
	uint32_t n = __atomic_load_n(&r->count, __ATOMIC_RELAXED);

	return n == 0 ? 1 : (n > r->capacity ? r->capacity : n);
}

static inline uint64_t pm_run_raw(const struct pm_runs *r, uint32_t i)
{
	return __atomic_load_n(&r->run[i], __ATOMIC_RELAXED);
}

static inline uint64_t pm_run_start(const struct pm_runs *r, uint32_t i)
{
	return pm_run_raw(r, i) >> 8;
}

static inline uint8_t pm_run_state(const struct pm_runs *r, uint32_t i)
{
	return (uint8_t)(pm_run_raw(r, i) & 0xff);
}

static inline uint64_t pm_run_end(const struct pm_runs *r, uint32_t i)
{
	return i + 1 < pm_count_runs(r) ? pm_run_start(r, i + 1) : r->pages;
}

/* Makes buf (with room for `capacity` >= 1 runs) a map of `pages` pages in `state`. */
void clrmemtrace__pm_init(struct pm_runs *buf, uint32_t capacity, uint64_t pages, uint8_t state);

/*
 * Writes into dst the map `r` with pages [first, end) set to `state`, if dst
 * has room for r's runs plus two; returns false (dst untouched) otherwise.
 * dst and r must be different buffers. *committed receives the number of
 * pages of [first, end) that r has committed, which the change replaces.
 */
bool clrmemtrace__pm_set_into(struct pm_runs *dst, const struct pm_runs *r, uint64_t first,
			      uint64_t end, uint8_t state, uint64_t *committed);

/* A map of `pages` pages all in `state`; NULL when out of memory. */
struct pm_runs *clrmemtrace__pm_new(uint64_t pages, uint8_t state);

/* The index of the run containing `page` (page < r->pages). O(log runs); in bounds even on torn contents. */
uint32_t clrmemtrace__pm_find(const struct pm_runs *r, uint64_t page);

/*
 * A new map equal to `r` with pages [first, end) set to `state`; runs stay
 * maximal. NULL when out of memory (r is untouched either way).
 */
struct pm_runs *clrmemtrace__pm_set(const struct pm_runs *r, uint64_t first, uint64_t end,
				    uint8_t state);

/* Pages in [first, end) whose (state & mask) == value. */
uint64_t clrmemtrace__pm_count(const struct pm_runs *r, uint64_t first, uint64_t end, uint8_t mask,
			       uint8_t value);

/* Bytes a heap-allocated map occupies. */
size_t clrmemtrace__pm_bytes(const struct pm_runs *r);

void clrmemtrace__pm_free(struct pm_runs *r);

/* ---------- Conversions between Win32 protections and page states ---------- */

/*
 * Validates a Win32 protection for private memory and converts it to a
 * committed page state (PM_COMMITTED | index | PM_GUARD). Returns 0 or
 * ERROR_INVALID_PARAMETER. *cache receives PAGE_NOCACHE / PAGE_WRITECOMBINE.
 */
int clrmemtrace__pm_from_win32(uint32_t protect, uint8_t *state, uint32_t *cache);

/* The Win32 protection of a page state (0 for reserved pages), without cache bits. */
uint32_t clrmemtrace__pm_to_win32(uint8_t state);

/* PROT_* for a page state: PROT_NONE unless committed and not a guard page. */
int clrmemtrace__pm_to_unix(uint8_t state);

#endif /* CLRMEMTRACE_PAGEMAP_H */
