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

/* Each run packs its first page (relative to the reservation) and its state. */
struct pm_runs {
	void *owner[2];  /* room for the owner's deferred-free record (an RCU head) */
	uint64_t pages; /* pages in the reservation */
	uint32_t count; /* runs, at least 1 */
	uint32_t pad;
	uint64_t run[]; /* (first_page << 8) | state, ascending, adjacent states differ */
};

static inline uint64_t pm_run_start(const struct pm_runs *r, uint32_t i)
{
	return r->run[i] >> 8;
}

static inline uint8_t pm_run_state(const struct pm_runs *r, uint32_t i)
{
	return (uint8_t)(r->run[i] & 0xff);
}

static inline uint64_t pm_run_end(const struct pm_runs *r, uint32_t i)
{
	return i + 1 < r->count ? pm_run_start(r, i + 1) : r->pages;
}

/* A map of `pages` pages all in `state`; NULL when out of memory. */
struct pm_runs *clrmemtrace__pm_new(uint64_t pages, uint8_t state);

/* The index of the run containing `page` (page < r->pages). O(log runs). */
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

/* Bytes a map occupies. */
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
