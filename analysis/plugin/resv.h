/* SPDX-License-Identifier: MIT */
/*
 * One reservation as it was between two changes: its extent, allocation
 * protection and the runs of pages with equal state, sorted, merged, as
 * VirtualQuery reports them.
 *
 * A version is never modified once built: a change builds the next version
 * and the manager's history keeps the previous one, so queries can look at
 * the states before the last changes without any undo log. Building costs
 * one copy of the run array, which a change to a sorted array costs anyway.
 */
#ifndef CLRMEMTRACE_ANALYSIS_RESV_H
#define CLRMEMTRACE_ANALYSIS_RESV_H

#include <stdbool.h>
#include <stdint.h>

/* A run's state: 0 for reserved pages, else this bit plus the page protection. */
#define CMT_RUN_COMMITTED 0x8000u
/* The bits of a committed page's protection a run keeps (base and PAGE_GUARD). */
#define CMT_RUN_PROTECT 0x1ffu
/* The modifiers a reservation's allocation protection gives its committed pages. */
#define CMT_CACHE_BITS 0x600u

struct cmt_run {
	uint64_t start;   /* first page, from the reservation's base */
	int64_t begin_ns; /* when the run took this extent and state */
	uint32_t state;
	uint32_t unused;
};

struct cmt_resv {
	uint64_t base;
	uint64_t end;
	uint64_t committed; /* bytes */
	uint32_t alloc_protect;
	uint32_t nruns;
	uint32_t shift; /* log2 of the page size */
	uint32_t tag;   /* the mmap view's memory type and path (os.c); 0 for a manager's */
	struct cmt_run runs[];
};

/* Called for each run a change ends (spans, series mode). */
struct cmt_span_sink {
	void (*ended)(void *ctx, const struct cmt_resv *r, const struct cmt_run *run,
		      uint64_t end_page, int64_t end_ns);
	void *ctx;
};

/* The number of pages of r (the last one may be partial). */
uint64_t cmt_resv_npages(const struct cmt_resv *r);

/* The page after run i. */
static inline uint64_t cmt_resv_run_end(const struct cmt_resv *r, uint32_t i)
{
	return i + 1 < r->nruns ? r->runs[i + 1].start : cmt_resv_npages(r);
}

/* The index of the run holding page (page < npages). */
uint32_t cmt_resv_find(const struct cmt_resv *r, uint64_t page);

/* Bytes of pages [first, last) of r, the partial last page clipped. */
uint64_t cmt_resv_bytes(const struct cmt_resv *r, uint64_t first, uint64_t last);

/* The protection a query reports for state `state` in r (0 for reserved pages). */
static inline uint32_t cmt_resv_protect(const struct cmt_resv *r, uint32_t state)
{
	return (state & CMT_RUN_COMMITTED)
		       ? (state & CMT_RUN_PROTECT) | (r->alloc_protect & CMT_CACHE_BITS)
		       : 0;
}

/* A reservation of [base, end) whose pages all have `state`. NULL without memory. */
struct cmt_resv *cmt_resv_create(uint64_t base, uint64_t end, uint32_t alloc_protect,
				 uint32_t state, uint32_t shift, int64_t now);

/*
 * The version after pages [first, last) of old took `state` (first < last
 * <= npages). Runs the change ends are reported to sink (may be NULL); runs
 * it does not touch keep their begin time, new ones begin at now.
 */
struct cmt_resv *cmt_resv_set(const struct cmt_resv *old, uint64_t first, uint64_t last,
			      uint32_t state, int64_t now, const struct cmt_span_sink *sink);

/* A piece of a reservation described by a state dump. */
struct cmt_piece {
	uint64_t first;
	uint64_t last;
	uint32_t state;
};

/*
 * A reservation of [base, end) built from pieces sorted by first page;
 * pages no piece covers are reserved, overlaps go to the earlier piece.
 */
struct cmt_resv *cmt_resv_build(uint64_t base, uint64_t end, uint32_t alloc_protect,
				uint32_t shift, const struct cmt_piece *pieces, uint32_t n,
				int64_t now);

/* Whether a and b describe the same extent, protection and runs. */
bool cmt_resv_same(const struct cmt_resv *a, const struct cmt_resv *b);

/* Reports every run of r as ended at now. */
void cmt_resv_end_all(const struct cmt_resv *r, int64_t now, const struct cmt_span_sink *sink);

#endif /* CLRMEMTRACE_ANALYSIS_RESV_H */
