/* SPDX-License-Identifier: MIT */
/*
 * Checking queries (analysis/README.md, "Checking queries"). A successful
 * virtual_query answered from one of the states seq_before ... seq_after of
 * its manager. States up to the manager's current one are rebuilt for the
 * queried page only, walking the history back from the current state:
 * undoing a change means following the version it replaced, so a state k
 * changes are old costs O(k), without copying anything.
 *
 * A query whose seq_after the manager has not reached yet waits in a
 * min-heap by seq_after and is checked as soon as that change is applied.
 */
#include "state.h"

#include <stdlib.h>
#include <string.h>

/* How many reservations overlapping an answer are worth counting (see walk()). */
#define OVERLAP_CAP (2 * CMT_HISTORY)

static bool overlaps(const struct cmt_resv *r, uint64_t lo, uint64_t hi)
{
	return r && r->base < hi && lo < r->end;
}

static bool contains(const struct cmt_resv *r, uint64_t p)
{
	return r && p >= r->base && p < r->end;
}

/* What a query of page p in reservation version r must answer. */
static void expected_mbi(const struct cmt_resv *r, uint64_t p, struct cmt_mbi *x)
{
	uint64_t page = (p - r->base) >> r->shift;
	uint32_t i = cmt_resv_find(r, page);
	uint64_t run_end = cmt_resv_run_end(r, i);
	uint32_t state = r->runs[i].state;

	x->base = p;
	x->allocation_base = r->base;
	x->allocation_protect = r->alloc_protect;
	x->region_size = cmt_resv_bytes(r, 0, run_end) - (p - r->base);
	x->state = (state & CMT_RUN_COMMITTED) ? CMT_MEM_COMMIT : CMT_MEM_RESERVE;
	x->protect = cmt_resv_protect(r, state);
	x->mem_type = CMT_MEM_PRIVATE;
}

static bool same_mbi(const struct cmt_mbi *a, const struct cmt_mbi *b)
{
	return a->base == b->base && a->allocation_base == b->allocation_base &&
	       a->allocation_protect == b->allocation_protect &&
	       a->region_size == b->region_size && a->state == b->state &&
	       a->protect == b->protect && a->mem_type == b->mem_type;
}

struct verdict {
	bool matched;
	/* The expectation in the newest state of the range, for mismatch details. */
	bool has_expected;
	struct cmt_mbi expected;
	uint64_t overlaps;
};

/*
 * Checks q against the states lo ... hi of m (floor <= lo <= hi <= seq),
 * newest first.
 */
static void walk(struct cmt_manager *m, const struct cmt_query *q, uint64_t lo, uint64_t hi,
		 struct verdict *v)
{
	const struct cmt_history *h = &m->hist;
	uint64_t p = q->address & ~(cmt_page_size(m) - 1);
	uint64_t qlo = q->got.base, qhi;
	struct cmt_region *holder_reg = cmt_vm_holder(m, p);
	const struct cmt_resv *holder = holder_reg ? holder_reg->cur : NULL;
	struct cmt_tnode *n;
	uint64_t overlap = 0, first_overlap = 0;
	int64_t idx = (int64_t)h->count - 1;
	bool first = true;

	if (__builtin_add_overflow(qlo, q->got.region_size, &qhi)) {
		qhi = UINT64_MAX;
	}
	/*
	 * Reservations overlapping the answer now. Each change undone adds or
	 * removes at most one, so beyond OVERLAP_CAP the count never reaches 0.
	 */
	n = cmt_tree_find_le(&m->tree, qlo);
	if (!n) {
		n = cmt_tree_first(&m->tree);
	}
	for (; n && overlap < OVERLAP_CAP; n = cmt_tree_next(n)) {
		const struct cmt_resv *r = container_of(n, struct cmt_region, node)->cur;

		if (r->base >= qhi) {
			break;
		}
		if (overlaps(r, qlo, qhi)) {
			if (!overlap) {
				first_overlap = r->base;
			}
			overlap++;
		}
	}
	memset(v, 0, sizeof(*v));
	for (;;) {
		const struct cmt_hentry *en = NULL;
		uint64_t low = lo;

		/*
		 * Every state from the newest change not undone yet (or lo) up to k
		 * is the state at hand: check it once for all of them.
		 */
		if (idx >= 0) {
			en = &h->ring[(h->head + (uint32_t)idx) % h->cap];
			if (en->seq > low) {
				low = en->seq;
			}
		}
		if (low <= hi) {
			bool match;

			if (holder) {
				struct cmt_mbi x;

				expected_mbi(holder, p, &x);
				match = same_mbi(&x, &q->got);
				if (first) {
					v->has_expected = true;
					v->expected = x;
				}
			} else {
				match = overlap == 0;
				if (first) {
					v->overlaps = first_overlap;
				}
			}
			first = false;
			if (match) {
				v->matched = true;
				return;
			}
		}
		if (low <= lo || !en) {
			return;
		}
		/* The state before change `low`: undo every change numbered low. */
		while (idx >= 0) {
			en = &h->ring[(h->head + (uint32_t)idx) % h->cap];
			if (en->seq < low) {
				break;
			}
			idx--;
			if (en->nop) {
				continue;
			}
			if (en->new && holder == en->new) {
				holder = contains(en->old, p) ? en->old : NULL;
			} else if (!en->new && !holder && contains(en->old, p)) {
				holder = en->old;
			}
			if (overlaps(en->new, qlo, qhi) && overlap > 0 && overlap < OVERLAP_CAP) {
				overlap--;
			}
			if (overlaps(en->old, qlo, qhi) && overlap < OVERLAP_CAP) {
				if (!overlap) {
					first_overlap = en->old->base;
				}
				overlap++;
			}
		}
	}
}

static void record_mismatch(struct cmt_engine *e, struct cmt_manager *m,
			    const struct cmt_query *q, const struct verdict *v)
{
	struct cmt_mismatch *x;

	e->q_mismatches++;
	x = cmt_vec_push(e, &e->mismatches, e->cfg.max_details);
	if (!x) {
		return;
	}
	x->time_ns = q->time_ns;
	x->vpid = m->proc->vpid;
	x->manager_id = m->id;
	x->address = q->address;
	x->seq_before = q->seq_before;
	x->seq_after = q->seq_after;
	x->got = q->got;
	x->has_expected = v->has_expected;
	x->expected = v->expected;
	x->overlaps = v->overlaps;
}

/* Checks q now: its seq_after is at most the manager's current seq. */
static void evaluate(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_query *q)
{
	struct verdict v;
	uint64_t lo;

	if (!m->known || q->seq_after < m->floor || q->seq_after > m->seq) {
		e->q_unverifiable++;
		return;
	}
	lo = q->seq_before > m->floor ? q->seq_before : m->floor;
	walk(m, q, lo, q->seq_after, &v);
	if (v.matched) {
		e->q_checked++;
	} else if (q->seq_before < m->floor) {
		/* The states it might describe are older than the history kept. */
		e->q_unverifiable++;
	} else {
		e->q_checked++;
		record_mismatch(e, m, q, &v);
	}
}

/* ---------- Queries waiting for their changes ---------- */

static void heap_up(struct cmt_query *a, uint32_t i)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		struct cmt_query tmp;

		if (a[parent].seq_after <= a[i].seq_after) {
			break;
		}
		tmp = a[parent];
		a[parent] = a[i];
		a[i] = tmp;
		i = parent;
	}
}

static void heap_down(struct cmt_query *a, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, s = i;
		struct cmt_query tmp;

		if (l < n && a[l].seq_after < a[s].seq_after) {
			s = l;
		}
		if (r < n && a[r].seq_after < a[s].seq_after) {
			s = r;
		}
		if (s == i) {
			break;
		}
		tmp = a[s];
		a[s] = a[i];
		a[i] = tmp;
		i = s;
	}
}

static bool pending_push(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_query *q)
{
	if (m->npending == CMT_MAX_PENDING) {
		return false;
	}
	if (m->npending == m->cap_pending) {
		uint32_t cap = m->cap_pending ? m->cap_pending * 2 : 4;
		struct cmt_query *v = realloc(m->pending, cap * sizeof(*v));

		if (!v) {
			cmt_fail(e);
			return false;
		}
		m->pending = v;
		m->cap_pending = cap;
	}
	m->pending[m->npending] = *q;
	heap_up(m->pending, m->npending);
	m->npending++;
	return true;
}

void cmt_check_resolve(struct cmt_engine *e, struct cmt_manager *m)
{
	while (m->npending && m->pending[0].seq_after <= m->seq) {
		struct cmt_query q = m->pending[0];

		m->pending[0] = m->pending[--m->npending];
		heap_down(m->pending, m->npending, 0);
		evaluate(e, m, &q);
	}
}

void cmt_check_abandon(struct cmt_engine *e, struct cmt_manager *m)
{
	e->q_unverifiable += m->npending;
	m->npending = 0;
}

void cmt_check_fini(struct cmt_manager *m)
{
	free(m->pending);
	m->pending = NULL;
	m->npending = m->cap_pending = 0;
}

void cmt_check_query(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	struct cmt_query q;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		return;
	}
	q.time_ns = e->now;
	q.tid = ev->tid;
	q.address = ev->f[CMT_F_ADDRESS];
	q.seq_before = ev->f[CMT_F_SEQ_BEFORE];
	q.seq_after = ev->f[CMT_F_SEQ_AFTER];
	q.got.base = ev->f[CMT_F_BASE];
	q.got.allocation_base = ev->f[CMT_F_ALLOCATION_BASE];
	q.got.allocation_protect = (uint32_t)ev->f[CMT_F_ALLOCATION_PROTECT];
	q.got.region_size = ev->f[CMT_F_REGION_SIZE];
	q.got.state = (uint32_t)ev->f[CMT_F_STATE];
	q.got.protect = (uint32_t)ev->f[CMT_F_PROTECT];
	q.got.mem_type = (uint32_t)ev->f[CMT_F_MEM_TYPE];
	if (!m->known || q.seq_before > q.seq_after) {
		e->q_unverifiable++;
		if (m->awaiting) {
			e->q_before_dump++;
		}
		return;
	}
	if (q.seq_after > m->seq) {
		if (!pending_push(e, m, &q)) {
			e->q_unverifiable++;
		}
		return;
	}
	evaluate(e, m, &q);
}
