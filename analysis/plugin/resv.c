/* SPDX-License-Identifier: MIT */
/*
 * Reservation versions.
 */
#include "resv.h"

#include <stdlib.h>
#include <string.h>

uint64_t cmt_resv_npages(const struct cmt_resv *r)
{
	uint64_t len = r->end - r->base;
	uint64_t mask = (UINT64_C(1) << r->shift) - 1;

	return (len >> r->shift) + ((len & mask) != 0);
}

uint32_t cmt_resv_find(const struct cmt_resv *r, uint64_t page)
{
	uint32_t lo = 0, hi = r->nruns;

	/* The last run starting at or before page. */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (r->runs[mid].start <= page) {
			lo = mid;
		} else {
			hi = mid;
		}
	}
	return lo;
}

/* Byte offset of page p from the base, clipped to the reservation's length. */
static uint64_t page_offset(const struct cmt_resv *r, uint64_t p)
{
	uint64_t len = r->end - r->base;

	if (p >= cmt_resv_npages(r)) {
		return len;
	}
	return p << r->shift;
}

uint64_t cmt_resv_bytes(const struct cmt_resv *r, uint64_t first, uint64_t last)
{
	if (last <= first) {
		return 0;
	}
	return page_offset(r, last) - page_offset(r, first);
}

static struct cmt_resv *alloc_resv(uint64_t nruns)
{
	if (nruns > (UINT32_MAX / 2)) {
		return NULL;
	}
	return malloc(sizeof(struct cmt_resv) + nruns * sizeof(struct cmt_run));
}

static uint64_t committed_bytes(const struct cmt_resv *r)
{
	uint64_t total = 0;
	uint32_t i;

	for (i = 0; i < r->nruns; i++) {
		if (r->runs[i].state & CMT_RUN_COMMITTED) {
			total += cmt_resv_bytes(r, r->runs[i].start, cmt_resv_run_end(r, i));
		}
	}
	return total;
}

struct cmt_resv *cmt_resv_create(uint64_t base, uint64_t end, uint32_t alloc_protect,
				 uint32_t state, uint32_t shift, int64_t now)
{
	struct cmt_resv *r = alloc_resv(1);

	if (!r) {
		return NULL;
	}
	r->base = base;
	r->end = end;
	r->alloc_protect = alloc_protect;
	r->shift = shift;
	r->tag = 0;
	r->nruns = 1;
	r->runs[0].start = 0;
	r->runs[0].begin_ns = now;
	r->runs[0].state = state;
	r->runs[0].unused = 0;
	r->committed = (state & CMT_RUN_COMMITTED) ? end - base : 0;
	return r;
}

static void put_run(struct cmt_resv *r, uint32_t *k, uint64_t start, uint32_t state,
		    int64_t begin)
{
	struct cmt_run *run = &r->runs[*k];

	run->start = start;
	run->state = state;
	run->begin_ns = begin;
	run->unused = 0;
	(*k)++;
}

struct cmt_resv *cmt_resv_set(const struct cmt_resv *old, uint64_t first, uint64_t last,
			      uint32_t state, int64_t now, const struct cmt_span_sink *sink)
{
	uint32_t n = old->nruns, i0 = cmt_resv_find(old, first), i1 = cmt_resv_find(old, last - 1);
	uint32_t ow_lo = i0 > 0 ? i0 - 1 : 0, ow_hi = i1 + 1 < n ? i1 + 1 : n - 1;
	uint32_t k, w_lo, w_hi, out, r, nw_hi, oi, i;
	uint64_t removed = 0, window_end;
	struct cmt_resv *nr = alloc_resv((uint64_t)n + 2);

	if (!nr) {
		return NULL;
	}
	memcpy(nr, old, sizeof(*nr));
	/* Runs before the change, then the change itself, then runs after it. */
	memcpy(nr->runs, old->runs, (size_t)i0 * sizeof(struct cmt_run));
	k = i0;
	if (old->runs[i0].start < first) {
		put_run(nr, &k, old->runs[i0].start, old->runs[i0].state, now);
	}
	put_run(nr, &k, first, state, now);
	w_hi = k;
	if (cmt_resv_run_end(old, i1) > last) {
		put_run(nr, &k, last, old->runs[i1].state, now);
		w_hi = k;
	}
	memcpy(nr->runs + k, old->runs + i1 + 1, (size_t)(n - i1 - 1) * sizeof(struct cmt_run));
	k += n - i1 - 1;

	/* Merge equal neighbours around the change; the rest was merged already. */
	w_lo = i0 > 0 ? i0 - 1 : 0;
	if (w_hi > k - 1) {
		w_hi = k - 1;
	}
	out = w_lo;
	for (r = w_lo + 1; r < k; r++) {
		if (r <= w_hi && nr->runs[r].state == nr->runs[out].state) {
			continue;
		}
		nr->runs[++out] = nr->runs[r];
	}
	nr->nruns = out + 1;

	/* Committed bytes: what the range held before, and what it holds now. */
	for (i = i0; i <= i1; i++) {
		if (old->runs[i].state & CMT_RUN_COMMITTED) {
			uint64_t s = old->runs[i].start, e = cmt_resv_run_end(old, i);

			removed += cmt_resv_bytes(old, s > first ? s : first, e < last ? e : last);
		}
	}
	nr->committed = old->committed - removed +
			((state & CMT_RUN_COMMITTED) ? cmt_resv_bytes(old, first, last) : 0);

	/*
	 * Begin times: a run of the window with the same extent and state as
	 * before keeps its own; the window's other old runs ended now.
	 */
	window_end = cmt_resv_run_end(old, ow_hi);
	nw_hi = w_lo;
	while (nw_hi + 1 < nr->nruns && nr->runs[nw_hi + 1].start < window_end) {
		nw_hi++;
	}
	oi = ow_lo;
	for (i = w_lo; i <= nw_hi; i++) {
		struct cmt_run *nrun = &nr->runs[i];

		nrun->begin_ns = now;
		while (oi <= ow_hi && old->runs[oi].start < nrun->start) {
			if (sink) {
				sink->ended(sink->ctx, old, &old->runs[oi],
					    cmt_resv_run_end(old, oi), now);
			}
			oi++;
		}
		if (oi <= ow_hi && old->runs[oi].start == nrun->start) {
			if (old->runs[oi].state == nrun->state &&
			    cmt_resv_run_end(old, oi) == cmt_resv_run_end(nr, i)) {
				nrun->begin_ns = old->runs[oi].begin_ns;
			} else if (sink) {
				sink->ended(sink->ctx, old, &old->runs[oi],
					    cmt_resv_run_end(old, oi), now);
			}
			oi++;
		}
	}
	for (; oi <= ow_hi; oi++) {
		if (sink) {
			sink->ended(sink->ctx, old, &old->runs[oi], cmt_resv_run_end(old, oi), now);
		}
	}
	return nr;
}

struct cmt_resv *cmt_resv_build(uint64_t base, uint64_t end, uint32_t alloc_protect,
				uint32_t shift, const struct cmt_piece *pieces, uint32_t n,
				int64_t now)
{
	struct cmt_resv *r = alloc_resv((uint64_t)n * 2 + 1);
	uint64_t cur = 0, npages;
	uint32_t k = 0, i;

	if (!r) {
		return NULL;
	}
	r->base = base;
	r->end = end;
	r->alloc_protect = alloc_protect;
	r->shift = shift;
	r->tag = 0;
	r->nruns = 0;
	npages = cmt_resv_npages(r);
	for (i = 0; i < n; i++) {
		uint64_t first = pieces[i].first > cur ? pieces[i].first : cur;
		uint64_t last = pieces[i].last < npages ? pieces[i].last : npages;

		if (first >= last) {
			continue;
		}
		if (first > cur) {
			if (k == 0 || r->runs[k - 1].state != 0) {
				put_run(r, &k, cur, 0, now);
			}
		}
		if (k == 0 || r->runs[k - 1].state != pieces[i].state) {
			put_run(r, &k, first, pieces[i].state, now);
		}
		cur = last;
	}
	if (cur < npages || k == 0) {
		if (k == 0 || r->runs[k - 1].state != 0) {
			put_run(r, &k, cur, 0, now);
		}
	}
	r->nruns = k;
	r->committed = committed_bytes(r);
	return r;
}

bool cmt_resv_same(const struct cmt_resv *a, const struct cmt_resv *b)
{
	uint32_t i;

	if (a->base != b->base || a->end != b->end || a->alloc_protect != b->alloc_protect ||
	    a->shift != b->shift || a->nruns != b->nruns) {
		return false;
	}
	for (i = 0; i < a->nruns; i++) {
		if (a->runs[i].start != b->runs[i].start || a->runs[i].state != b->runs[i].state) {
			return false;
		}
	}
	return true;
}

void cmt_resv_end_all(const struct cmt_resv *r, int64_t now, const struct cmt_span_sink *sink)
{
	uint32_t i;

	if (!sink) {
		return;
	}
	for (i = 0; i < r->nruns; i++) {
		sink->ended(sink->ctx, r, &r->runs[i], cmt_resv_run_end(r, i), now);
	}
}
