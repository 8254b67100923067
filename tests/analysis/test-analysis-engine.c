/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the analysis engine (analysis/plugin), driven with decoded
 * events, no trace and no Babeltrace2: reservation run updates, the AVL
 * tree, latency histograms, checking queries with the history look-back
 * and waiting, heaps and dumps, and the output writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "os.h"
#include "state.h"

#define PAGE 4096u
#define MGR 7u

/* ---------- Event builders ---------- */

static int64_t clock_ns = 1000;

static struct cmt_event make(enum cmt_ev_type type)
{
	const struct cmt_event_desc *d = &cmt_events[type];
	struct cmt_event ev;
	unsigned int i;

	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.time_ns = clock_ns;
	clock_ns += 10;
	ev.has_time = true;
	ev.vpid = 42;
	ev.has_vpid = true;
	ev.tid = 43;
	ev.procname = "unit";
	for (i = 0; i < d->nmembers; i++) {
		if (d->members[i].kind == CMT_KIND_INT) {
			ev.present |= UINT64_C(1) << d->members[i].slot;
		} else {
			ev.spresent |= 1u << d->members[i].slot;
			ev.s[d->members[i].slot] = "";
		}
	}
	ev.f[CMT_F_MANAGER_ID] = MGR;
	return ev;
}

static void create(struct cmt_engine *e)
{
	struct cmt_event ev = make(CMT_EV_MANAGER_CREATE);

	ev.f[CMT_F_PAGE_SIZE] = PAGE;
	ev.s[CMT_S_NAME] = "unit";
	cmt_engine_event(e, &ev);
}

static void ev_alloc(struct cmt_engine *e, uint64_t addr, uint64_t size, uint32_t type,
		   uint32_t protect, uint64_t result, int32_t hr, uint64_t seq)
{
	struct cmt_event ev = make(CMT_EV_VIRTUAL_ALLOC);

	ev.f[CMT_F_ADDRESS] = addr;
	ev.f[CMT_F_SIZE] = size;
	ev.f[CMT_F_TYPE] = type;
	ev.f[CMT_F_PROTECT] = protect;
	ev.f[CMT_F_RESULT] = result;
	ev.f[CMT_F_HR] = (uint64_t)(int64_t)hr;
	ev.f[CMT_F_SEQ] = seq;
	ev.f[CMT_F_DURATION] = 100;
	cmt_engine_event(e, &ev);
}

static void ev_free(struct cmt_engine *e, uint64_t addr, uint64_t size, uint32_t type, int32_t hr,
		  uint64_t seq)
{
	struct cmt_event ev = make(CMT_EV_VIRTUAL_FREE);

	ev.f[CMT_F_ADDRESS] = addr;
	ev.f[CMT_F_SIZE] = size;
	ev.f[CMT_F_TYPE] = type;
	ev.f[CMT_F_HR] = (uint64_t)(int64_t)hr;
	ev.f[CMT_F_SEQ] = seq;
	cmt_engine_event(e, &ev);
}

static void ev_protect(struct cmt_engine *e, uint64_t addr, uint64_t size, uint32_t protect,
		     uint32_t old, uint64_t seq)
{
	struct cmt_event ev = make(CMT_EV_VIRTUAL_PROTECT);

	ev.f[CMT_F_ADDRESS] = addr;
	ev.f[CMT_F_SIZE] = size;
	ev.f[CMT_F_PROTECT] = protect;
	ev.f[CMT_F_OLD_PROTECT] = old;
	ev.f[CMT_F_SEQ] = seq;
	cmt_engine_event(e, &ev);
}

static void ev_query(struct cmt_engine *e, uint64_t addr, uint64_t before, uint64_t after,
		   const struct cmt_mbi *got)
{
	struct cmt_event ev = make(CMT_EV_VIRTUAL_QUERY);

	ev.f[CMT_F_ADDRESS] = addr;
	ev.f[CMT_F_LENGTH] = 48;
	ev.f[CMT_F_RESULT] = 48;
	ev.f[CMT_F_BASE] = got->base;
	ev.f[CMT_F_ALLOCATION_BASE] = got->allocation_base;
	ev.f[CMT_F_ALLOCATION_PROTECT] = got->allocation_protect;
	ev.f[CMT_F_REGION_SIZE] = got->region_size;
	ev.f[CMT_F_STATE] = got->state;
	ev.f[CMT_F_PROTECT] = got->protect;
	ev.f[CMT_F_MEM_TYPE] = got->mem_type;
	ev.f[CMT_F_SEQ_BEFORE] = before;
	ev.f[CMT_F_SEQ_AFTER] = after;
	cmt_engine_event(e, &ev);
}

static void heap_op(struct cmt_engine *e, enum cmt_ev_type type, uint64_t heap, uint64_t ptr,
		    uint64_t size, int32_t hr)
{
	struct cmt_event ev = make(type);

	ev.f[CMT_F_HEAP_ID] = heap;
	ev.f[CMT_F_PTR] = ptr;
	ev.f[CMT_F_SIZE] = size;
	ev.f[CMT_F_HR] = (uint64_t)(int64_t)hr;
	cmt_engine_event(e, &ev);
}

static struct cmt_mbi mbi(uint64_t base, uint64_t ab, uint32_t ap, uint64_t size, uint32_t state,
			  uint32_t protect)
{
	struct cmt_mbi m = { base, ab, size, ap, state, protect, CMT_MEM_PRIVATE };

	return m;
}

static char out_path[256];
static struct cmt_out out;

static struct cmt_engine *engine(enum cmt_mode mode)
{
	struct cmt_config cfg = { mode, 0, 100, 100 };
	struct cmt_engine *e;

	snprintf(out_path, sizeof(out_path), "/tmp/test-analysis-engine-%d.out", (int)getpid());
	assert_int_equal(cmt_out_open(&out, out_path), 0);
	e = cmt_engine_create(&cfg, &out);
	assert_non_null(e);
	return e;
}

static void done(struct cmt_engine *e)
{
	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	assert_int_equal(cmt_out_commit(&out), 0);
	cmt_engine_destroy(e);
	unlink(out_path);
}

static struct cmt_manager *manager(struct cmt_engine *e)
{
	struct cmt_process *p = cmt_map_get(&e->procs, 42);

	assert_non_null(p);
	return cmt_map_get(&p->managers, MGR);
}

/* ---------- Reservation runs ---------- */

struct ended {
	int count;
	uint64_t start[8], end[8];
};

static void on_ended(void *ctx, const struct cmt_resv *r, const struct cmt_run *run,
		     uint64_t end_page, int64_t end_ns)
{
	struct ended *x = ctx;

	(void)r;
	(void)end_ns;
	if (x->count < 8) {
		x->start[x->count] = run->start;
		x->end[x->count] = end_page;
	}
	x->count++;
}

#define RW (CMT_RUN_COMMITTED | CMT_PAGE_READWRITE)
#define RO (CMT_RUN_COMMITTED | CMT_PAGE_READONLY)

static void test_resv_commit_splits_and_merges(void **state)
{
	struct ended x = { 0 };
	struct cmt_span_sink sink = { on_ended, &x };
	struct cmt_resv *r0 = cmt_resv_create(0x10000, 0x10000 + 16 * PAGE, CMT_PAGE_READWRITE, 0,
					      12, 5);
	struct cmt_resv *r1, *r2, *r3, *r4;

	(void)state;
	assert_int_equal(r0->nruns, 1);
	assert_int_equal(cmt_resv_npages(r0), 16);
	assert_int_equal(r0->committed, 0);

	/* Commit pages 4..8: reserved, committed, reserved. */
	r1 = cmt_resv_set(r0, 4, 8, RW, 10, &sink);
	assert_int_equal(r1->nruns, 3);
	assert_int_equal(r1->runs[1].start, 4);
	assert_int_equal(r1->runs[1].state, RW);
	assert_int_equal(r1->runs[2].start, 8);
	assert_int_equal(r1->committed, 4 * PAGE);
	assert_int_equal(x.count, 1); /* the single reserved run ended */
	assert_int_equal(r1->runs[1].begin_ns, 10);

	/* Commit 8..12 with the same protection: the committed run grows. */
	r2 = cmt_resv_set(r1, 8, 12, RW, 20, NULL);
	assert_int_equal(r2->nruns, 3);
	assert_int_equal(r2->runs[1].start, 4);
	assert_int_equal(r2->runs[2].start, 12);
	assert_int_equal(r2->committed, 8 * PAGE);

	/* Protect one page in the middle: five runs. */
	r3 = cmt_resv_set(r2, 6, 7, RO, 30, NULL);
	assert_int_equal(r3->nruns, 5);
	assert_int_equal(cmt_resv_find(r3, 6), 2);
	assert_int_equal(cmt_resv_run_end(r3, 2), 7);
	assert_int_equal(r3->committed, 8 * PAGE);
	/* Runs the change did not touch keep their begin time. */
	assert_int_equal(r3->runs[0].begin_ns, r2->runs[0].begin_ns);
	assert_int_equal(r3->runs[4].begin_ns, r2->runs[2].begin_ns);

	/* Decommit everything: one reserved run again. */
	r4 = cmt_resv_set(r3, 0, 16, 0, 40, NULL);
	assert_int_equal(r4->nruns, 1);
	assert_int_equal(r4->committed, 0);

	/* Setting what is already there changes nothing, begin times included. */
	x.count = 0;
	free(r1);
	r1 = cmt_resv_set(r3, 6, 7, RO, 50, &sink);
	assert_true(cmt_resv_same(r1, r3));
	assert_int_equal(x.count, 0);
	assert_int_equal(r1->runs[2].begin_ns, r3->runs[2].begin_ns);

	free(r0);
	free(r1);
	free(r2);
	free(r3);
	free(r4);
}

static void test_resv_partial_last_page_and_build(void **state)
{
	struct cmt_piece pieces[] = { { 0, 2, RW }, { 2, 3, RW }, { 5, 6, RO } };
	struct cmt_resv *r = cmt_resv_create(0x20000, 0x20000 + 3 * PAGE + 100, 0, RW, 12, 0);
	struct cmt_resv *b;

	(void)state;
	assert_int_equal(cmt_resv_npages(r), 4);
	assert_int_equal(r->committed, 3 * PAGE + 100);
	assert_int_equal(cmt_resv_bytes(r, 3, 4), 100);
	free(r);

	b = cmt_resv_build(0x20000, 0x20000 + 8 * PAGE, CMT_PAGE_NOCACHE | CMT_PAGE_READWRITE, 12,
			   pieces, 3, 0);
	assert_int_equal(b->nruns, 4); /* RW 0..3, reserved 3..5, RO 5..6, reserved 6..8 */
	assert_int_equal(b->runs[1].start, 3);
	assert_int_equal(b->runs[2].start, 5);
	assert_int_equal(b->runs[3].start, 6);
	assert_int_equal(b->committed, 4 * PAGE);
	/* A committed page reports the reservation's cache modifier. */
	assert_int_equal(cmt_resv_protect(b, RW), CMT_PAGE_READWRITE | CMT_PAGE_NOCACHE);
	assert_int_equal(cmt_resv_protect(b, 0), 0);
	free(b);
}

/* ---------- The AVL tree ---------- */

static void test_tree_random_against_sorted_array(void **state)
{
	enum { N = 2000 };
	struct cmt_tnode *nodes = calloc(N, sizeof(*nodes));
	bool *in = calloc(N, sizeof(*in));
	struct cmt_tree t = { 0 };
	uint32_t rnd = 12345;
	int round, i;

	(void)state;
	for (round = 0; round < 20000; round++) {
		rnd = rnd * 1103515245u + 12345u;
		i = (int)((rnd >> 8) % N);
		if (in[i]) {
			cmt_tree_remove(&t, &nodes[i]);
			in[i] = false;
		} else {
			nodes[i].key = (uint64_t)i * 0x10000;
			assert_int_equal(cmt_tree_insert(&t, &nodes[i]), 0);
			in[i] = true;
		}
		if (round % 997 == 0) {
			struct cmt_tnode *n = cmt_tree_first(&t);
			size_t count = 0;
			int j;

			for (j = 0; j < N; j++) {
				if (in[j]) {
					assert_ptr_equal(n, &nodes[j]);
					n = cmt_tree_next(n);
					count++;
				}
			}
			assert_null(n);
			assert_int_equal(count, t.count);
			assert_true(t.root == NULL || t.root->height <= 16);
		}
	}
	/* Predecessor search. */
	for (i = 0; i < N; i++) {
		struct cmt_tnode *n = cmt_tree_find_le(&t, (uint64_t)i * 0x10000 + 5);
		int j = i;

		while (j >= 0 && !in[j]) {
			j--;
		}
		if (j < 0) {
			assert_null(n);
		} else {
			assert_ptr_equal(n, &nodes[j]);
		}
	}
	free(nodes);
	free(in);
}

/* ---------- Histograms ---------- */

static void test_hist_buckets_and_percentiles(void **state)
{
	struct cmt_hist *h = malloc(sizeof(*h));
	uint64_t v;
	unsigned int b;

	(void)state;
	for (v = 0; v < 16; v++) {
		assert_int_equal(cmt_hist_bucket(v), v);
		assert_int_equal(cmt_hist_upper((unsigned int)v), v);
	}
	assert_int_equal(cmt_hist_bucket(16), 16);
	assert_int_equal(cmt_hist_upper(16), 16);
	assert_int_equal(cmt_hist_bucket(32), 32);
	assert_int_equal(cmt_hist_upper(32), 33);
	assert_int_equal(cmt_hist_bucket(UINT64_MAX), CMT_HIST_BUCKETS - 1);
	assert_true(cmt_hist_upper(CMT_HIST_BUCKETS - 1) == UINT64_MAX);
	/* Every value lies in its bucket, whose bound is within 6.25% above it. */
	for (v = 1; v < (UINT64_C(1) << 40); v = v * 3 + 1) {
		b = cmt_hist_bucket(v);
		assert_true(cmt_hist_upper(b) >= v);
		assert_true(b == 0 || cmt_hist_upper(b - 1) < v);
		assert_true((double)cmt_hist_upper(b) <= (double)v * 1.0625 + 1);
	}

	cmt_hist_init(h);
	assert_int_equal(cmt_hist_percentile(h, 500), 0);
	cmt_hist_add(h, 0); /* unmeasured: left out */
	assert_int_equal(h->count, 0);
	for (v = 1; v <= 1000; v++) {
		cmt_hist_add(h, v);
	}
	assert_int_equal(h->count, 1000);
	assert_int_equal(h->min, 1);
	assert_int_equal(h->max, 1000);
	assert_true(cmt_hist_mean(h) > 500.49 && cmt_hist_mean(h) < 500.51);
	/* p50 = 500, p90 = 900, p99 = 990, read as their buckets' upper bounds. */
	assert_int_equal(cmt_hist_percentile(h, 500), cmt_hist_upper(cmt_hist_bucket(500)));
	assert_int_equal(cmt_hist_percentile(h, 900), cmt_hist_upper(cmt_hist_bucket(900)));
	assert_int_equal(cmt_hist_percentile(h, 990), 991);
	assert_true(cmt_hist_percentile(h, 990) <= 990 * 1.0625);
	/* Capped at the maximum. */
	assert_int_equal(cmt_hist_percentile(h, 1000), 1000);
	free(h);
}

/* ---------- Queries and the history ---------- */

#define BASE 0x7f0000000000u

static void test_query_look_back_and_wait(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_mbi reserved =
		mbi(BASE, BASE, CMT_PAGE_READWRITE, 16 * PAGE, CMT_MEM_RESERVE, 0);
	struct cmt_mbi committed = mbi(BASE, BASE, CMT_PAGE_READWRITE, 4 * PAGE, CMT_MEM_COMMIT,
				       CMT_PAGE_READWRITE);
	struct cmt_mbi readonly = mbi(BASE, BASE, CMT_PAGE_READWRITE, PAGE, CMT_MEM_COMMIT,
				      CMT_PAGE_READONLY);
	struct cmt_mbi free_mbi = mbi(BASE, 0, 0, 16 * PAGE, CMT_MEM_FREE, 0);

	(void)state;
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, BASE, 0, 1);
	ev_alloc(e, BASE, 4 * PAGE, CMT_MEM_COMMIT, CMT_PAGE_READWRITE, BASE, 0, 2);
	ev_protect(e, BASE, PAGE, CMT_PAGE_READONLY, CMT_PAGE_READWRITE, 3);

	/* The state after change 1, 2 and 3: each matches its own range only. */
	ev_query(e, BASE + 5, 1, 1, &reserved);
	ev_query(e, BASE, 2, 2, &committed);
	ev_query(e, BASE, 3, 3, &readonly);
	assert_int_equal(e->q_checked, 3);
	assert_int_equal(e->q_mismatches, 0);
	ev_query(e, BASE, 3, 3, &reserved);
	assert_int_equal(e->q_mismatches, 1);
	/* A range matches if any of its states does. */
	ev_query(e, BASE, 0, 3, &committed);
	assert_int_equal(e->q_mismatches, 1);
	assert_int_equal(e->q_checked, 5);
	/* Before change 1 nothing was reserved: a free answer over the range matches. */
	ev_query(e, BASE, 0, 0, &free_mbi);
	assert_int_equal(e->q_mismatches, 1);
	ev_query(e, BASE, 1, 1, &free_mbi);
	assert_int_equal(e->q_mismatches, 2);

	/* A query of change 4, not seen yet, waits for it. */
	ev_query(e, BASE + 2 * PAGE, 4, 4,
		 &(struct cmt_mbi){ BASE + 2 * PAGE, BASE, 14 * PAGE, CMT_PAGE_READWRITE,
				    CMT_MEM_RESERVE, 0, CMT_MEM_PRIVATE });
	assert_int_equal(manager(e)->npending, 1);
	ev_free(e, BASE + PAGE, 3 * PAGE, CMT_MEM_DECOMMIT, 0, 4);
	assert_int_equal(manager(e)->npending, 0);
	assert_int_equal(e->q_mismatches, 2);
	assert_int_equal(e->q_checked, 8);

	/* Release, then 300 changes elsewhere: the states before are forgotten. */
	ev_free(e, BASE, 0, CMT_MEM_RELEASE, 0, 5);
	{
		uint64_t seq = 5;
		int i;

		ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, BASE + 0x100000, 0,
			 ++seq);
		for (i = 0; i < 300; i++) {
			ev_alloc(e, BASE + 0x100000, PAGE, CMT_MEM_COMMIT,
				 i % 2 ? CMT_PAGE_READONLY : CMT_PAGE_READWRITE, 0, 0, ++seq);
		}
		ev_query(e, BASE, 3, 3, &readonly);
		assert_int_equal(e->q_unverifiable, 1);
		/* Still within the history: 200 changes back. */
		ev_query(
			e, BASE + 0x100000, seq - 200, seq - 200,
			&(struct cmt_mbi){ BASE + 0x100000, BASE + 0x100000, PAGE,
					   CMT_PAGE_READWRITE, CMT_MEM_COMMIT,
					   (seq - 200) % 2 ? CMT_PAGE_READWRITE : CMT_PAGE_READONLY,
					   CMT_MEM_PRIVATE });
		assert_int_equal(e->q_unverifiable, 1);
		assert_int_equal(e->q_mismatches, 2);
	}
	/* A query still waiting at the end cannot be checked. */
	ev_query(e, BASE, 1000, 1000, &readonly);
	done(e);
}

static void test_seq_gap_and_regression(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_manager *m;

	(void)state;
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE | CMT_MEM_COMMIT, CMT_PAGE_EXECUTE_READWRITE,
		 BASE, 0, 1);
	assert_int_equal(e->anomaly_counts[CMT_A_RWX_COMMIT], 1);
	assert_int_equal(e->committed, 16 * PAGE);
	m = manager(e);
	assert_true(m->known);
	/* Same seq: applied (idempotent). */
	ev_free(e, BASE, 0, CMT_MEM_DECOMMIT, 0, 2);
	ev_free(e, BASE, 0, CMT_MEM_DECOMMIT, 0, 2);
	assert_int_equal(e->committed, 0);
	/* Skipped numbers: unknown until a dump; nothing is applied meanwhile. */
	ev_alloc(e, BASE, PAGE, CMT_MEM_COMMIT, CMT_PAGE_READWRITE, BASE, 0, 5);
	assert_false(m->known);
	assert_int_equal(e->committed, 0);
	assert_true(m->reasons & CMT_R_SEQ_GAP);
	done(e);

	e = engine(CMT_MODE_SUMMARY);
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, BASE, 0, 1);
	ev_alloc(e, BASE, PAGE, CMT_MEM_COMMIT, CMT_PAGE_READWRITE, BASE, 0, 2);
	ev_free(e, BASE, PAGE, CMT_MEM_DECOMMIT, 0, 1);
	assert_int_equal(e->anomaly_counts[CMT_A_SEQ_REGRESSION], 1);
	assert_false(manager(e)->known);
	done(e);
}

/*
 * MEM_RESET takes no number (EVENTS.md, "Sequence numbers"): one carrying the
 * next number came after a change whose event is missing (here a protect, as
 * in a session without virtual_protect), so a query at that number cannot be
 * checked; taken for that change, the query would be a mismatch.
 */
static void test_reset_takes_no_number(void **state)
{
	const struct cmt_mbi protected_end = { BASE + PAGE, BASE, 13 * PAGE, CMT_PAGE_READONLY,
					       CMT_MEM_COMMIT, CMT_PAGE_READONLY,
					       CMT_MEM_PRIVATE };
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_manager *m;

	(void)state;
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE | CMT_MEM_COMMIT, CMT_PAGE_READONLY, BASE, 0, 1);
	m = manager(e);
	/* Carrying the last change's number: nothing missing. */
	ev_alloc(e, BASE, PAGE, CMT_MEM_RESET, CMT_PAGE_READWRITE, BASE, 0, 1);
	assert_true(m->known);
	/* Change 2 (a protect of the last three pages) unrecorded. */
	ev_alloc(e, BASE, PAGE, CMT_MEM_RESET, CMT_PAGE_READWRITE, BASE, 0, 2);
	assert_false(m->known);
	assert_true(m->reasons & CMT_R_SEQ_GAP);
	ev_query(e, BASE + PAGE, 2, 2, &protected_end);
	assert_int_equal(e->q_mismatches, 0);
	assert_int_equal(e->q_unverifiable, 1);
	done(e);
}

static void test_release_anomalies(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);

	(void)state;
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, BASE, 0, 1);
	ev_free(e, BASE, 0, CMT_MEM_RELEASE, 0, 2);
	ev_free(e, BASE, 0, CMT_MEM_RELEASE, CMT_HR_INVALID_ADDRESS, 2);
	ev_free(e, BASE + 0x100000, 0, CMT_MEM_RELEASE, CMT_HR_INVALID_ADDRESS, 2);
	assert_int_equal(e->anomaly_counts[CMT_A_DOUBLE_FREE], 1);
	assert_int_equal(e->anomaly_counts[CMT_A_FREE_UNKNOWN], 1);
	ev_alloc(e, BASE + 0x200000, PAGE, CMT_MEM_COMMIT, CMT_PAGE_READWRITE, 0,
		 CMT_HR_INVALID_ADDRESS, 2);
	assert_int_equal(e->anomaly_counts[CMT_A_COMMIT_OUTSIDE], 1);
	assert_int_equal(e->failed_calls, 3);
	assert_int_equal(e->reserved, 0);
	assert_int_equal(e->peak_reserved, 16 * PAGE);
	done(e);
}

/* ---------- Byte totals past 2^64 - 1 ---------- */

/* The document written so far, for a search (the engine is finished). */
static char *finished_text(struct cmt_engine *e)
{
	static char buf[1 << 16];
	FILE *f;
	size_t n;

	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	assert_int_equal(cmt_out_commit(&out), 0);
	f = fopen(out_path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cmt_engine_destroy(e);
	unlink(out_path);
	return buf;
}

static void test_totals_past_2_64(void **state)
{
	const uint64_t size = (UINT64_C(1) << 63) - 0x10000;
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_process *p;
	struct cmt_event ev;
	uint64_t id;
	char *text;

	(void)state;
	/* Six managers each reserving and committing 2^63 - 64 KiB. */
	for (id = 1; id <= 6; id++) {
		ev = make(CMT_EV_MANAGER_CREATE);
		ev.f[CMT_F_MANAGER_ID] = id;
		ev.f[CMT_F_PAGE_SIZE] = PAGE;
		cmt_engine_event(e, &ev);
		ev = make(CMT_EV_VIRTUAL_ALLOC);
		ev.f[CMT_F_MANAGER_ID] = id;
		ev.f[CMT_F_SIZE] = size;
		ev.f[CMT_F_TYPE] = CMT_MEM_RESERVE | CMT_MEM_COMMIT;
		ev.f[CMT_F_PROTECT] = CMT_PAGE_READWRITE;
		ev.f[CMT_F_RESULT] = 0x10000;
		ev.f[CMT_F_SEQ] = 1;
		cmt_engine_event(e, &ev);
		if (id == 2) {
			assert_false(e->totals_out);
			assert_int_equal(e->reserved, 2 * size);
		}
	}
	p = cmt_map_get(&e->procs, 42);
	assert_true(e->totals_out);
	assert_true(p->totals_out);
	assert_int_equal(e->peak_reserved, UINT64_MAX);
	assert_int_equal(e->peak_committed, UINT64_MAX);
	assert_int_equal(cmt_total_shown(e->committed, e->committed_hi), UINT64_MAX);
	/* A manager's own bytes fit: it stays complete. */
	assert_int_equal(((struct cmt_manager *)cmt_map_get(&p->managers, 6))->reasons, 0);
	assert_int_equal(((struct cmt_manager *)cmt_map_get(&p->managers, 6))->v.reserved, size);
	/* Released again, the exact totals come back; the flags stay. */
	for (id = 1; id <= 6; id++) {
		ev = make(CMT_EV_VIRTUAL_FREE);
		ev.f[CMT_F_MANAGER_ID] = id;
		ev.f[CMT_F_ADDRESS] = 0x10000;
		ev.f[CMT_F_TYPE] = CMT_MEM_RELEASE;
		ev.f[CMT_F_SEQ] = 2;
		cmt_engine_event(e, &ev);
	}
	assert_int_equal(e->reserved, 0);
	assert_int_equal(e->reserved_hi, 0);
	assert_int_equal(e->committed_hi, 0);
	assert_int_equal(e->by_protect_hi[CMT_PAGE_READWRITE], 0);

	/* Overlapping heap blocks of 2^63 bytes: a manager's own total passes 2^64 - 1. */
	create(e);
	heap_op(e, CMT_EV_MALLOC_CREATE, 9, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, UINT64_C(1) << 63, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x2000, UINT64_C(1) << 63, 0);
	assert_true(manager(e)->reasons & CMT_R_TOTALS);
	assert_int_equal(manager(e)->h.peak_live_bytes, UINT64_MAX);
	assert_int_equal(e->peak_heap_live, UINT64_MAX);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x3000, 5, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 0, 0);
	assert_int_equal(e->heap_live, (UINT64_C(1) << 63) + 5);
	assert_int_equal(e->heap_live_hi, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x4000, UINT64_MAX, 0);
	assert_int_equal(cmt_total_shown(manager(e)->h.live_bytes, manager(e)->h.live_hi),
			 UINT64_MAX);
	/* The heap goes with more than 2^64 - 1 bytes: every total is exact again. */
	ev = make(CMT_EV_MALLOC_DESTROY);
	ev.f[CMT_F_HEAP_ID] = 9;
	ev.present &= ~((UINT64_C(1) << CMT_F_LIVE_BLOCKS) | (UINT64_C(1) << CMT_F_LIVE_BYTES));
	cmt_engine_event(e, &ev);
	assert_int_equal(e->heap_live, 0);
	assert_int_equal(e->heap_live_hi, 0);
	assert_int_equal(manager(e)->h.live_hi, 0);
	assert_int_equal(p->heap_live_hi, 0);
	text = finished_text(e);
	assert_non_null(strstr(text, "\"complete\":false"));
	assert_non_null(strstr(text, "\"byte totals exceed 2^64 - 1: totals are not exact\""));
	assert_non_null(strstr(text, "process 42: byte totals exceed 2^64 - 1"));
	assert_non_null(strstr(text, "process 42, manager 7: byte totals exceed 2^64 - 1"));
	assert_non_null(strstr(text, "\"peak_live_bytes\":18446744073709551615"));
	assert_null(strstr(text, "process 42, manager 6: byte totals"));
}

/* ---------- Heaps and dumps ---------- */

static void test_heap_frees_and_dump(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_event ev;

	(void)state;
	create(e);
	heap_op(e, CMT_EV_MALLOC_CREATE, 9, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x2000, 40, 0);
	assert_int_equal(e->heap_live, 64);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 24, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 0, (int32_t)0x80131022u);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x3000, 0, (int32_t)0x80131022u);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0, 0, 0); /* Free(NULL): nothing */
	assert_int_equal(e->anomaly_counts[CMT_A_DOUBLE_FREE], 1);
	assert_int_equal(e->anomaly_counts[CMT_A_FREE_UNKNOWN], 1);
	assert_int_equal(e->frees, 1);
	assert_int_equal(e->heap_live, 40);

	/* A dump: 0x2000 gone, 0x4000 listed, 0x5000 allocated during the dump. */
	ev = make(CMT_EV_STATEDUMP_BEGIN);
	ev.f[CMT_F_SEQ] = 0;
	cmt_engine_event(e, &ev);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x5000, 8, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x6000, 16, 0);
	ev = make(CMT_EV_STATEDUMP_HEAP);
	ev.f[CMT_F_HEAP_ID] = 9;
	cmt_engine_event(e, &ev);
	ev = make(CMT_EV_STATEDUMP_BLOCK);
	ev.f[CMT_F_HEAP_ID] = 9;
	ev.f[CMT_F_PTR] = 0x4000;
	ev.f[CMT_F_SIZE] = 100;
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_PTR] = 0x6000; /* freed during the dump: the free wins */
	ev.f[CMT_F_SIZE] = 16;
	cmt_engine_event(e, &ev);
	ev = make(CMT_EV_STATEDUMP_END);
	ev.f[CMT_F_SEQ] = 0;
	cmt_engine_event(e, &ev);
	assert_int_equal(e->heap_live, 108);
	assert_int_equal(e->live_blocks, 2);
	assert_int_equal(manager(e)->reasons, 0);
	done(e);
}

static void test_discarded_then_dump(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_mbi committed = mbi(BASE, BASE, CMT_PAGE_READWRITE, 2 * PAGE, CMT_MEM_COMMIT,
				       CMT_PAGE_READWRITE);
	struct cmt_event ev;
	struct cmt_manager *m;

	(void)state;
	create(e);
	ev_alloc(e, 0, 16 * PAGE, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, BASE, 0, 1);
	cmt_engine_discarded(e, false, true, 10, true, clock_ns);
	m = manager(e);
	assert_false(m->known);
	ev_query(e, BASE, 1, 1, &committed);
	assert_int_equal(e->q_unverifiable, 1);
	/* The dump brings the state back: two committed pages at the base. */
	ev = make(CMT_EV_STATEDUMP_BEGIN);
	ev.f[CMT_F_SEQ] = 7;
	cmt_engine_event(e, &ev);
	ev = make(CMT_EV_STATEDUMP_REGION);
	ev.f[CMT_F_BASE] = BASE;
	ev.f[CMT_F_ALLOCATION_BASE] = BASE;
	ev.f[CMT_F_SIZE] = 2 * PAGE;
	ev.f[CMT_F_STATE] = CMT_MEM_COMMIT;
	ev.f[CMT_F_PROTECT] = CMT_PAGE_READWRITE;
	ev.f[CMT_F_ALLOCATION_PROTECT] = CMT_PAGE_READWRITE;
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_BASE] = BASE + 2 * PAGE;
	ev.f[CMT_F_SIZE] = 14 * PAGE;
	ev.f[CMT_F_STATE] = CMT_MEM_RESERVE;
	ev.f[CMT_F_PROTECT] = 0;
	cmt_engine_event(e, &ev);
	ev = make(CMT_EV_STATEDUMP_END);
	ev.f[CMT_F_SEQ] = 7;
	cmt_engine_event(e, &ev);
	assert_true(m->known);
	assert_int_equal(m->seq, 7);
	assert_int_equal(e->committed, 2 * PAGE);
	assert_int_equal(m->nwindows, 1);
	ev_query(e, BASE, 7, 7, &committed);
	assert_int_equal(e->q_checked, 1);
	assert_int_equal(e->q_mismatches, 0);
	assert_true(m->reasons & CMT_R_DISCARDED);
	done(e);
}

/* A dump event of the manager: begin and end with `seq`, a heap, a block, a region. */
static void dump_ev(struct cmt_engine *e, enum cmt_ev_type type, uint64_t a, uint64_t b,
		    uint64_t c)
{
	struct cmt_event ev = make(type);

	switch (type) {
	case CMT_EV_STATEDUMP_BEGIN:
	case CMT_EV_STATEDUMP_END:
		ev.f[CMT_F_SEQ] = a;
		break;
	case CMT_EV_STATEDUMP_HEAP:
		ev.f[CMT_F_HEAP_ID] = a;
		break;
	case CMT_EV_STATEDUMP_BLOCK:
		ev.f[CMT_F_HEAP_ID] = a;
		ev.f[CMT_F_PTR] = b;
		ev.f[CMT_F_SIZE] = c;
		break;
	default: /* a committed read-write region [a, a + b) of the reservation at a */
		ev.f[CMT_F_BASE] = a;
		ev.f[CMT_F_ALLOCATION_BASE] = a;
		ev.f[CMT_F_SIZE] = b;
		ev.f[CMT_F_STATE] = CMT_MEM_COMMIT;
		ev.f[CMT_F_PROTECT] = CMT_PAGE_READWRITE;
		ev.f[CMT_F_ALLOCATION_PROTECT] = CMT_PAGE_READWRITE;
		break;
	}
	cmt_engine_event(e, &ev);
}

static const struct cmt_heap *heap_of(struct cmt_manager *m, uint64_t id)
{
	return cmt_map_get(&m->heaps, id);
}

/*
 * A manager first seen through its calls: they count and change nothing,
 * the dump gives the state, and nothing is incomplete. Heaps come and go
 * during the dump.
 */
static void test_events_before_the_first_dump(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_mbi got = mbi(BASE, BASE, CMT_PAGE_READWRITE, 2 * PAGE, CMT_MEM_COMMIT,
				 CMT_PAGE_READWRITE);
	struct cmt_manager *m;

	(void)state;
	/* Calls under way as the session started. */
	ev_alloc(e, 0, 2 * PAGE, CMT_MEM_RESERVE | CMT_MEM_COMMIT, CMT_PAGE_READWRITE, BASE, 0, 5);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x2000, 8, 0);
	heap_op(e, CMT_EV_MALLOC_DESTROY, 12, 0, 0, 0);
	ev_query(e, BASE, 5, 5, &got);
	m = manager(e);
	assert_true(m->awaiting);
	assert_false(m->known);
	assert_int_equal(m->reasons, 0);
	assert_int_equal(m->nwindows, 0);
	assert_int_equal(e->reserved, 0);
	assert_int_equal(e->heap_live, 0);
	assert_int_equal(m->heaps.count, 0);
	assert_int_equal(e->allocs, 1);
	assert_int_equal(e->frees, 1);
	assert_int_equal(e->calls[CMT_EV_VIRTUAL_ALLOC], 1);
	assert_int_equal(e->q_unverifiable, 1);
	assert_int_equal(e->q_before_dump, 1);

	/*
	 * The dump: heap 9 gets a block allocated before its listing, heap 11 is
	 * made after the heaps were listed, heap 10 is listed and then released.
	 */
	dump_ev(e, CMT_EV_STATEDUMP_BEGIN, 5, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_REGION, BASE, 2 * PAGE, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x3000, 16, 0);
	dump_ev(e, CMT_EV_STATEDUMP_HEAP, 10, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 10, 0x9000, 50);
	dump_ev(e, CMT_EV_STATEDUMP_HEAP, 9, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x1000, 24);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x3000, 16);
	heap_op(e, CMT_EV_MALLOC_CREATE, 11, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_DESTROY, 10, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 11, 0x4000, 32, 0);
	assert_int_equal(m->reasons, 0);
	dump_ev(e, CMT_EV_STATEDUMP_END, 5, 0, 0);
	assert_true(m->known);
	assert_false(m->awaiting);
	assert_int_equal(m->reasons, 0);
	assert_int_equal(e->committed, 2 * PAGE);
	assert_non_null(heap_of(m, 9));
	assert_int_equal(heap_of(m, 9)->live, 2);
	assert_null(heap_of(m, 10));
	assert_non_null(heap_of(m, 11));
	assert_int_equal(heap_of(m, 11)->live, 1);
	assert_int_equal(e->heap_live, 24 + 16 + 32);

	/* Heap 12's release, traced after the dump that did not list it: nothing. */
	heap_op(e, CMT_EV_MALLOC_DESTROY, 12, 0, 0, 0);
	ev_query(e, BASE, 5, 5, &got);
	assert_int_equal(e->q_checked, 1);
	cmt_engine_finish(e);
	assert_int_equal(m->reasons, 0);
	assert_false(m->window_open);
	assert_int_equal(m->nwindows, 0);
	done(e);
}

/* A heap's malloc_destroy, with what the library counted live. */
static void heap_destroy(struct cmt_engine *e, uint64_t heap, uint64_t blocks, uint64_t bytes)
{
	struct cmt_event ev = make(CMT_EV_MALLOC_DESTROY);

	ev.f[CMT_F_HEAP_ID] = heap;
	ev.f[CMT_F_LIVE_BLOCKS] = blocks;
	ev.f[CMT_F_LIVE_BYTES] = bytes;
	cmt_engine_event(e, &ev);
}

/*
 * A block's event just outside a dump (EVENTS.md, "State dumps"): an alloc
 * traced after statedump_end of a block the dump lists, a free traced after
 * it of a block the dump does not list, and (as earlier versions of the
 * library traced frees before the block's word was cleared) a free traced
 * before statedump_begin of a block the dump still lists. None contradicts
 * the state, and the heap ends as the library counts it.
 */
static void test_block_events_just_outside_the_dump(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_manager *m;

	(void)state;
	create(e);
	m = manager(e);
	heap_op(e, CMT_EV_MALLOC_CREATE, 9, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x2000, 40, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x5000, 8, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x5000, 8, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x6000, 32, 0);
	/* Freed, its word still set when the dump reads it. */
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 24, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BEGIN, 0, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_HEAP, 9, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x1000, 24);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x2000, 40);
	/* Handed out again, and a new block: their allocs come after the dump. */
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x5000, 16);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x3000, 16);
	dump_ev(e, CMT_EV_STATEDUMP_END, 0, 0, 0);
	assert_int_equal(m->reasons, 0);
	assert_int_equal(heap_of(m, 9)->live, 2);
	assert_int_equal(e->heap_live, 40 + 16);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x3000, 16, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x5000, 16, 0);
	/* Freed before the dump read the heap, traced after it. */
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x6000, 32, 0);
	assert_int_equal(m->reasons, 0);
	assert_int_equal(heap_of(m, 9)->live, 3);
	assert_int_equal(e->heap_live, 40 + 16 + 16);
	heap_destroy(e, 9, 3, 40 + 16 + 16);
	assert_int_equal(m->reasons, 0);
	done(e);

	/* The same for a manager awaiting its first dump, whose calls change nothing. */
	e = engine(CMT_MODE_SUMMARY);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 24, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x2000, 40, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x2000, 40, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 10, 0x4000, 8, 0);
	m = manager(e);
	assert_true(m->awaiting);
	dump_ev(e, CMT_EV_STATEDUMP_BEGIN, 0, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_HEAP, 9, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x1000, 24);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x2000, 40);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x3000, 16);
	/* Freed from heap 10, handed out by heap 9: the dump is right. */
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x4000, 8);
	dump_ev(e, CMT_EV_STATEDUMP_END, 0, 0, 0);
	assert_false(m->awaiting);
	assert_int_equal(heap_of(m, 9)->live, 3);
	assert_int_equal(e->heap_live, 40 + 16 + 8);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x3000, 16, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x2000, 40, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 24, (int32_t)0x80131022u);
	/* Freed just before the dump read the heap, by a call traced as it returned. */
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x7000, 0, 0);
	assert_int_equal(m->reasons, 0);
	assert_int_equal(e->anomaly_counts[CMT_A_DOUBLE_FREE], 1);
	heap_destroy(e, 9, 2, 16 + 8);
	cmt_engine_finish(e);
	assert_int_equal(m->reasons, 0);
	done(e);

	/* A block the state held before the dump and handed out again is a contradiction. */
	e = engine(CMT_MODE_SUMMARY);
	create(e);
	m = manager(e);
	heap_op(e, CMT_EV_MALLOC_CREATE, 9, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BEGIN, 0, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_HEAP, 9, 0, 0);
	dump_ev(e, CMT_EV_STATEDUMP_BLOCK, 9, 0x1000, 24);
	dump_ev(e, CMT_EV_STATEDUMP_END, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	assert_true(m->reasons & CMT_R_HEAP_INCONSISTENT);
	done(e);

	/* So is a free of a block a heap no dump listed never held. */
	e = engine(CMT_MODE_SUMMARY);
	create(e);
	m = manager(e);
	heap_op(e, CMT_EV_MALLOC_CREATE, 9, 0, 0, 0);
	heap_op(e, CMT_EV_MALLOC_FREE, 9, 0x1000, 24, 0);
	assert_true(m->reasons & CMT_R_HEAP_INCONSISTENT);
	done(e);
}

/* A manager whose dump never comes was unknown all along; lost events make it incomplete. */
static void test_never_dumped(void **state)
{
	struct cmt_engine *e = engine(CMT_MODE_SUMMARY);
	struct cmt_manager *m;
	int64_t first = clock_ns;

	(void)state;
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x1000, 24, 0);
	m = manager(e);
	assert_true(m->awaiting);
	/* A dump under way when events are lost is dropped, with what its events made. */
	dump_ev(e, CMT_EV_STATEDUMP_BEGIN, 3, 0, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x2000, 24, 0);
	assert_int_equal(e->heap_live, 24);
	cmt_engine_discarded(e, false, true, 3, true, clock_ns);
	assert_true(m->reasons & CMT_R_DISCARDED);
	assert_false(m->dump.active);
	assert_int_equal(e->heap_live, 0);
	assert_int_equal(m->nwindows, 0);
	heap_op(e, CMT_EV_MALLOC_ALLOC, 9, 0x3000, 24, 0);
	assert_int_equal(e->heap_live, 0);
	cmt_engine_finish(e);
	assert_true(m->reasons & CMT_R_FIRST_SEEN_LATE);
	assert_int_equal(m->nwindows, 1);
	assert_int_equal(m->windows[0].begin_ns, first);
	assert_true(m->window_open);
	done(e);
}

/* ---------- Output ---------- */

static void test_output_escaping_and_atomic_write(void **state)
{
	struct cmt_out o;
	char path[256], tmp[300], buf[256];
	FILE *f;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-analysis-output-%d.json", (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(cmt_out_open(&o, path), 0);
	assert_int_equal(access(tmp, F_OK), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	cmt_json_begin_object(&o);
	cmt_json_key(&o, "s");
	cmt_json_string(&o, "a\"b\\c\n\x01\xff\xc3\xa9");
	cmt_json_key(&o, "n");
	cmt_json_begin_array(&o);
	cmt_json_i64(&o, -5);
	cmt_json_u64(&o, UINT64_MAX);
	cmt_json_end_array(&o);
	cmt_json_end_object(&o);
	assert_int_equal(cmt_out_commit(&o), 0);
	assert_int_not_equal(access(tmp, F_OK), 0);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	assert_string_equal(buf, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\","
				 "\"n\":[-5,18446744073709551615]}");
	unlink(path);

	/* An abandoned output leaves nothing behind. */
	assert_int_equal(cmt_out_open(&o, path), 0);
	cmt_out_puts(&o, "partial");
	cmt_out_abandon(&o);
	assert_int_not_equal(access(tmp, F_OK), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	/* A directory that does not exist is an error. */
	assert_int_not_equal(cmt_out_open(&o, "/nonexistent-dir/x.json"), 0);
}

static void test_names(void **state)
{
	char buf[CMT_NAME_MAX];

	(void)state;
	assert_string_equal(cmt_protect_name(0, buf), "0");
	assert_string_equal(cmt_protect_name(0x104, buf), "PAGE_READWRITE|PAGE_GUARD");
	assert_string_equal(cmt_protect_name(0x220, buf), "PAGE_EXECUTE_READ|PAGE_NOCACHE");
	assert_string_equal(cmt_protect_name(0x6, buf), "6");
	assert_string_equal(cmt_hr_name((int32_t)0x80070057u, buf), "E_INVALIDARG");
	assert_string_equal(cmt_hr_name(0x1234, buf), "4660");
	assert_string_equal(cmt_state_name(0x2000, buf), "MEM_RESERVE");
	assert_string_equal(cmt_level_name(-1, buf), "-1");
	assert_int_equal(cmt_event_type_from_name("clrmemtrace:virtual_query"),
			 CMT_EV_VIRTUAL_QUERY);
	assert_int_equal(cmt_event_type_from_name("clrmemtrace:future_event"), CMT_EV_UNKNOWN);
	assert_int_equal(cmt_event_type_from_name("lttng_ust_statedump:start"), CMT_EV_FOREIGN);
}


/* ---------- Hostile input ---------- */

static uint64_t fuzz_state = 88172645463325252ull;

static uint64_t fuzz(void)
{
	fuzz_state ^= fuzz_state << 13;
	fuzz_state ^= fuzz_state >> 7;
	fuzz_state ^= fuzz_state << 17;
	return fuzz_state;
}

static uint64_t pick(const uint64_t *v, size_t n)
{
	return v[fuzz() % n];
}

#define PICK(a) pick(a, sizeof(a) / sizeof((a)[0]))

/*
 * Random events of every type with values chosen to collide: a few
 * managers and heaps, addresses on and off reservations, sizes from 0 to
 * 2^64 - 1, sequence numbers mostly right and sometimes not, failures,
 * dumps cut short, discarded-events notices, events without vpid or time.
 * The engine must neither crash nor leak (the ASan build checks), and its
 * totals must stay consistent with its reservations.
 */
static void run_random(enum cmt_mode mode, unsigned int events)
{
	static const uint64_t addrs[] = { 0, BASE, BASE + PAGE, BASE + 3 * PAGE + 5, BASE + 0x10000,
					  BASE + 0x20000, BASE + 0x30000 - 1, UINT64_MAX - 100,
					  UINT64_MAX, 0x1000 };
	static const uint64_t sizes[] = { 0, 1, PAGE, 3 * PAGE, 0x10000, 0x20000, UINT64_MAX,
					  UINT64_C(1) << 63 };
	static const uint64_t types[] = { CMT_MEM_RESERVE, CMT_MEM_COMMIT,
					  CMT_MEM_RESERVE | CMT_MEM_COMMIT, CMT_MEM_RESET,
					  CMT_MEM_DECOMMIT, CMT_MEM_RELEASE, 0, 0xffffffff };
	static const uint64_t protects[] = { CMT_PAGE_READWRITE, CMT_PAGE_READONLY,
					     CMT_PAGE_EXECUTE_READWRITE, CMT_PAGE_NOACCESS | 0x100,
					     0x204, 0x404, 0, 0x7ff, 0xffffffff };
	static const uint64_t hrs[] = { 0, 0, 0, 0, (uint64_t)(int64_t)CMT_HR_INVALID_ADDRESS,
					(uint64_t)(int64_t)(int32_t)0x80131022u, 1 };
	struct cmt_config cfg = { mode, 0, 7, 5 };
	uint64_t seq[4] = { 0 };
	struct cmt_engine *e;
	struct cmt_out o;
	char path[256];
	unsigned int i;

	cfg.at_ns = clock_ns + (int64_t)events * 5;
	snprintf(path, sizeof(path), "/tmp/test-analysis-fuzz-%d.out", (int)getpid());
	assert_int_equal(cmt_out_open(&o, path), 0);
	e = cmt_engine_create(&cfg, &o);
	assert_non_null(e);
	for (i = 0; i < events; i++) {
		enum cmt_ev_type type = (enum cmt_ev_type)(fuzz() % (CMT_EV_COUNT + 2));
		uint64_t mgr = 1 + fuzz() % 3;
		struct cmt_event ev;
		unsigned int k;

		if (type == CMT_EV_COUNT + 1) {
			cmt_engine_discarded(e, fuzz() % 2, fuzz() % 2, fuzz() % 100, fuzz() % 2,
					     clock_ns);
			continue;
		}
		if (type == CMT_EV_COUNT) {
			/* Allocation-heavy: reserve, commit or query the common addresses. */
			static const enum cmt_ev_type common[] = { CMT_EV_VIRTUAL_ALLOC,
								   CMT_EV_VIRTUAL_FREE,
								   CMT_EV_VIRTUAL_QUERY,
								   CMT_EV_MALLOC_ALLOC };

			type = common[fuzz() % 4];
		}
		ev = make(type);
		ev.f[CMT_F_MANAGER_ID] = mgr;
		for (k = 0; k < CMT_F_COUNT; k++) {
			ev.f[k] = fuzz() % 4 ? ev.f[k] : fuzz();
		}
		ev.f[CMT_F_MANAGER_ID] = mgr;
		ev.f[CMT_F_ADDRESS] = PICK(addrs);
		ev.f[CMT_F_RESULT] = fuzz() % 4 ? ev.f[CMT_F_ADDRESS] & ~UINT64_C(0xffff)
						 : PICK(addrs);
		if (ev.f[CMT_F_RESULT] == 0 && fuzz() % 2) {
			ev.f[CMT_F_RESULT] = BASE + (fuzz() % 4) * 0x10000;
		}
		ev.f[CMT_F_SIZE] = PICK(sizes);
		ev.f[CMT_F_TYPE] = PICK(types);
		ev.f[CMT_F_PROTECT] = PICK(protects);
		ev.f[CMT_F_OLD_PROTECT] = PICK(protects);
		ev.f[CMT_F_HR] = PICK(hrs);
		ev.f[CMT_F_PAGE_SIZE] = fuzz() % 8 ? PAGE : fuzz();
		ev.f[CMT_F_HEAP_ID] = 100 + fuzz() % 3;
		ev.f[CMT_F_PTR] = fuzz() % 8 ? 0x1000 * (fuzz() % 32) : fuzz();
		ev.f[CMT_F_BASE] = PICK(addrs);
		ev.f[CMT_F_ALLOCATION_BASE] = fuzz() % 2 ? ev.f[CMT_F_BASE] & ~UINT64_C(0xffff)
							 : PICK(addrs);
		ev.f[CMT_F_REGION_SIZE] = PICK(sizes);
		ev.f[CMT_F_STATE] = fuzz() % 2 ? CMT_MEM_COMMIT : CMT_MEM_RESERVE;
		ev.f[CMT_F_ALLOCATION_PROTECT] = PICK(protects);
		ev.f[CMT_F_MEM_TYPE] = CMT_MEM_PRIVATE;
		/* Sequence numbers: changes mostly take the next one, else the same or anything. */
		switch (fuzz() % 16) {
		case 0:
			ev.f[CMT_F_SEQ] = fuzz() % 1000;
			break;
		case 1:
		case 2:
			ev.f[CMT_F_SEQ] = seq[mgr];
			break;
		default:
			if (type == CMT_EV_VIRTUAL_ALLOC || type == CMT_EV_VIRTUAL_FREE ||
			    type == CMT_EV_VIRTUAL_PROTECT) {
				ev.f[CMT_F_SEQ] = ++seq[mgr];
			} else {
				ev.f[CMT_F_SEQ] = seq[mgr];
			}
			break;
		}
		ev.f[CMT_F_SEQ_AFTER] = fuzz() % 8 ? seq[mgr] : seq[mgr] + fuzz() % 3;
		ev.f[CMT_F_SEQ_BEFORE] = fuzz() % 8 ? ev.f[CMT_F_SEQ_AFTER] - fuzz() % 3 : fuzz();
		ev.f[CMT_F_LINE] = fuzz() % 4;
		ev.s[CMT_S_FILE] = fuzz() % 2 ? "" : "file\"with\\odd\x01\xffname.c";
		ev.s[CMT_S_NAME] = "m\n";
		ev.s[CMT_S_REASON] = "r";
		if (fuzz() % 64 == 0) {
			ev.present &= ~(UINT64_C(1) << (fuzz() % CMT_F_COUNT));
		}
		if (fuzz() % 64 == 0) {
			ev.has_vpid = false;
		}
		if (fuzz() % 128 == 0) {
			ev.has_time = false;
		}
		if (type == CMT_EV_STATEDUMP_END || type == CMT_EV_STATEDUMP_BEGIN) {
			seq[mgr] = ev.f[CMT_F_SEQ];
		}
		cmt_engine_event(e, &ev);
		if (cmt_engine_done(e)) {
			break;
		}
	}
	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	/* The totals are the sums over the reservations that remain. */
	{
		uint64_t reserved = 0, committed = 0, regions = 0;
		uint32_t p, q;

		for (p = 0; p < e->procs.cap; p++) {
			struct cmt_process *proc = e->procs.slots[p].val;

			for (q = 0; proc && q < proc->managers.cap; q++) {
				struct cmt_manager *m = proc->managers.slots[q].val;
				struct cmt_tnode *n;

				for (n = m ? cmt_tree_first(&m->tree) : NULL; n;
				     n = cmt_tree_next(n)) {
					const struct cmt_resv *r =
						container_of(n, struct cmt_region, node)->cur;

					reserved += r->end - r->base;
					committed += r->committed;
					regions++;
				}
			}
		}
		assert_int_equal(reserved, e->reserved);
		assert_int_equal(committed, e->committed);
		assert_int_equal(regions, e->regions);
	}
	assert_int_equal(cmt_out_commit(&o), 0);
	cmt_engine_destroy(e);
	unlink(path);
}

static void test_random_events_every_mode(void **state)
{
	(void)state;
	run_random(CMT_MODE_SUMMARY, 200000);
	run_random(CMT_MODE_TIMELINE, 50000);
	run_random(CMT_MODE_SERIES, 50000);
	run_random(CMT_MODE_PERFETTO, 50000);
	run_random(CMT_MODE_MAP, 50000);
}

/* ---------- Series over the whole clock range ---------- */

/* The text of the file at path (the caller frees it). */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * Events 2^63 ns or more apart with one point: a single slice of 2^64 ns,
 * so each counter keeps one sample (the slice width once stopped at 2^63,
 * leaving two).
 */
static void test_series_whole_clock_range(void **state)
{
	struct cmt_config cfg = { CMT_MODE_SERIES, 0, 1, 10 };
	struct cmt_engine *e;
	struct cmt_out o;
	char path[256], *text;
	const char *samples;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-analysis-series-%d.json", (int)getpid());
	assert_int_equal(cmt_out_open(&o, path), 0);
	e = cmt_engine_create(&cfg, &o);
	assert_non_null(e);
	clock_ns = INT64_MIN + 1000;
	create(e);
	ev_alloc(e, 0, 0x10000, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, 0x10000, CMT_S_OK, 1);
	clock_ns = INT64_MAX - 1000;
	ev_alloc(e, 0, 0x20000, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, 0x20000, CMT_S_OK, 2);
	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	assert_int_equal(cmt_out_commit(&o), 0);
	cmt_engine_destroy(e);
	text = read_text(path);
	assert_non_null(strstr(text, "\"slice_ns\":18446744073709551616"));
	samples = strstr(text, "\"reserved_bytes\":");
	assert_non_null(samples);
	assert_int_equal(strncmp(samples, "\"reserved_bytes\":[[9223372036854774807,196608]]",
				 strlen("\"reserved_bytes\":[[9223372036854774807,196608]]")), 0);
	free(text);
	unlink(path);
	clock_ns = 1000;
}

/* ---------- The mmap view against a page array ---------- */

#define VIEW_BASE UINT64_C(0x10000000)
#define VIEW_PAGES 192

static struct cmt_event os_event(enum cmt_ev_type type)
{
	struct cmt_event ev = make(type);

	ev.f[CMT_F_MANAGER_ID] = 0;
	ev.f[CMT_F_FD] = (uint64_t)-1;
	return ev;
}

static void os_mmap(struct cmt_engine *e, int lo, int n, uint32_t prot, uint32_t flags)
{
	struct cmt_event ev = os_event(CMT_EV_OS_MMAP);

	ev.f[CMT_F_ADDRESS] = (flags & 0x10) ? VIEW_BASE + (uint64_t)lo * PAGE : 0;
	ev.f[CMT_F_LENGTH] = (uint64_t)n * PAGE - (fuzz() % 2 ? 100 : 0);
	ev.f[CMT_F_PROT] = prot;
	ev.f[CMT_F_FLAGS] = flags;
	ev.f[CMT_F_RESULT] = VIEW_BASE + (uint64_t)lo * PAGE;
	cmt_engine_event(e, &ev);
}

static void os_range_call(struct cmt_engine *e, enum cmt_ev_type type, int lo, int n,
			  uint32_t arg, bool ok)
{
	struct cmt_event ev = os_event(type);

	ev.f[CMT_F_ADDRESS] = VIEW_BASE + (uint64_t)lo * PAGE;
	ev.f[CMT_F_LENGTH] = (uint64_t)n * PAGE;
	ev.f[CMT_F_PROT] = arg;
	ev.f[CMT_F_ADVICE] = arg;
	ev.f[CMT_F_RESULT] = ok ? 0 : (uint64_t)-1;
	ev.f[CMT_F_ERRNUM] = ok ? 0 : 12;
	cmt_engine_event(e, &ev);
}

static void os_mremap(struct cmt_engine *e, int old, int old_n, int new_n, int to, uint32_t flags)
{
	struct cmt_event ev = os_event(CMT_EV_OS_MREMAP);

	ev.f[CMT_F_ADDRESS] = VIEW_BASE + (uint64_t)old * PAGE;
	ev.f[CMT_F_LENGTH] = (uint64_t)old_n * PAGE;
	ev.f[CMT_F_NEW_LENGTH] = (uint64_t)new_n * PAGE;
	ev.f[CMT_F_FLAGS] = flags;
	ev.f[CMT_F_RESULT] = VIEW_BASE + (uint64_t)to * PAGE;
	cmt_engine_event(e, &ev);
}

/* The view's pages: -1 unmapped, else the state of the run holding it. */
static void view_pages(struct cmt_engine *e, int64_t *pages, uint64_t *reserved,
		       uint64_t *committed)
{
	struct cmt_process *p = cmt_map_get(&e->procs, 42);
	struct cmt_manager *m = p ? p->os : NULL;
	struct cmt_tnode *n;
	int i;

	for (i = 0; i < VIEW_PAGES; i++) {
		pages[i] = -1;
	}
	*reserved = *committed = 0;
	for (n = m ? cmt_tree_first(&m->tree) : NULL; n; n = cmt_tree_next(n)) {
		const struct cmt_resv *r = container_of(n, struct cmt_region, node)->cur;
		uint64_t k;

		*reserved += r->end - r->base;
		*committed += r->committed;
		for (k = 0; k < cmt_resv_npages(r); k++) {
			uint64_t page = (r->base - VIEW_BASE) / PAGE + k;

			assert_true(page < VIEW_PAGES);
			assert_int_equal(pages[page], -1);
			pages[page] = r->runs[cmt_resv_find(r, k)].state;
		}
	}
}

static uint32_t expected_state(int prot)
{
	static const uint32_t win32[8] = { 0, CMT_PAGE_READONLY, CMT_PAGE_READWRITE,
					   CMT_PAGE_READWRITE, CMT_PAGE_EXECUTE,
					   CMT_PAGE_EXECUTE_READ, CMT_PAGE_EXECUTE_READWRITE,
					   CMT_PAGE_EXECUTE_READWRITE };

	return prot ? CMT_RUN_COMMITTED | win32[prot] : 0;
}

/* A free run of n pages, or -1. */
static int free_run(const int *model, int n)
{
	int start = (int)(fuzz() % VIEW_PAGES), i, k;

	for (i = 0; i < VIEW_PAGES; i++) {
		int lo = (start + i) % VIEW_PAGES;

		if (lo + n > VIEW_PAGES) {
			continue;
		}
		for (k = 0; k < n && model[lo + k] < 0; k++) {
		}
		if (k == n) {
			return lo;
		}
	}
	return -1;
}

/*
 * Random mmap, munmap, mprotect, madvise and mremap calls of anonymous
 * private memory in a window of pages, each as the kernel would answer it:
 * after each, the mmap view holds exactly the pages of a page array
 * updated by the same rules, with the same protections, and the totals are
 * its sums.
 */
static void test_os_view_against_pages(void **state)
{
	struct cmt_config cfg = { CMT_MODE_SERIES, 0, 50, 10 };
	int model[VIEW_PAGES], copy[VIEW_PAGES], i, k, step;
	int64_t pages[VIEW_PAGES];
	struct cmt_engine *e;
	struct cmt_event ev;
	struct cmt_out o;
	char path[256];

	(void)state;
	for (i = 0; i < VIEW_PAGES; i++) {
		model[i] = -1;
	}
	snprintf(path, sizeof(path), "/tmp/test-analysis-view-%d.out", (int)getpid());
	assert_int_equal(cmt_out_open(&o, path), 0);
	e = cmt_engine_create(&cfg, &o);
	assert_non_null(e);
	ev = os_event(CMT_EV_OS_MAPS_BEGIN);
	ev.f[CMT_F_PAGE_SIZE] = PAGE;
	cmt_engine_event(e, &ev);
	ev = os_event(CMT_EV_OS_MAPS_END);
	ev.f[CMT_F_MAPPINGS] = 0;
	cmt_engine_event(e, &ev);
	for (step = 0; step < 20000; step++) {
		int lo = (int)(fuzz() % VIEW_PAGES), n = 1 + (int)(fuzz() % 16), prot = (int)(fuzz() % 8);
		uint64_t reserved, committed, want_r = 0, want_c = 0;

		if (lo + n > VIEW_PAGES) {
			n = VIEW_PAGES - lo;
		}
		switch (fuzz() % 7) {
		case 0: /* kernel-placed */
			lo = free_run(model, n);
			if (lo < 0) {
				break;
			}
			os_mmap(e, lo, n, (uint32_t)prot, 0x22);
			for (k = 0; k < n; k++) {
				model[lo + k] = prot;
			}
			break;
		case 1: /* MAP_FIXED */
			os_mmap(e, lo, n, (uint32_t)prot, 0x32);
			for (k = 0; k < n; k++) {
				model[lo + k] = prot;
			}
			break;
		case 2:
			os_range_call(e, CMT_EV_OS_MUNMAP, lo, n, 0, true);
			for (k = 0; k < n; k++) {
				model[lo + k] = -1;
			}
			break;
		case 3: { /* mprotect: fails with ENOMEM where a page is not mapped */
			bool ok = true;

			for (k = 0; k < n; k++) {
				ok = ok && model[lo + k] >= 0;
			}
			os_range_call(e, CMT_EV_OS_MPROTECT, lo, n, (uint32_t)prot, ok);
			for (k = 0; ok && k < n; k++) {
				model[lo + k] = prot;
			}
			break;
		}
		case 4:
			os_range_call(e, CMT_EV_OS_MADVISE, lo, n, 4, fuzz() % 2);
			break;
		case 5: { /* mremap of a mapped range: in place, or moved */
			int new_n = 1 + (int)(fuzz() % 16), to, last;
			bool mapped = true, room = true;

			for (k = 0; k < n; k++) {
				mapped = mapped && model[lo + k] >= 0;
			}
			if (!mapped) {
				break;
			}
			last = model[lo + n - 1];
			for (k = n; k < new_n; k++) {
				room = room && lo + k < VIEW_PAGES && model[lo + k] < 0;
			}
			if (room) {
				os_mremap(e, lo, n, new_n, lo, 1);
				for (k = new_n; k < n; k++) {
					model[lo + k] = -1;
				}
				for (k = n; k < new_n; k++) {
					model[lo + k] = last;
				}
				break;
			}
			memcpy(copy, model, sizeof(copy));
			for (k = 0; k < n; k++) {
				model[lo + k] = -1;
			}
			to = free_run(model, new_n);
			if (to < 0) {
				memcpy(model, copy, sizeof(copy));
				break;
			}
			os_mremap(e, lo, n, new_n, to, 1);
			for (k = 0; k < new_n; k++) {
				model[to + k] = k < n ? copy[lo + k] : last;
			}
			break;
		}
		default: { /* a failed mmap: nothing changes */
			ev = os_event(CMT_EV_OS_MMAP);
			ev.f[CMT_F_LENGTH] = PAGE;
			ev.f[CMT_F_FLAGS] = 0x22;
			ev.f[CMT_F_RESULT] = UINT64_MAX;
			ev.f[CMT_F_ERRNUM] = 12;
			cmt_engine_event(e, &ev);
			break;
		}
		}
		view_pages(e, pages, &reserved, &committed);
		for (i = 0; i < VIEW_PAGES; i++) {
			int64_t want = model[i] < 0 ? -1 : (int64_t)expected_state(model[i]);

			if (pages[i] != want) {
				fail_msg("step %d, page %d: view %lld, model %lld", step, i,
					 (long long)pages[i], (long long)want);
			}
			want_r += model[i] >= 0 ? PAGE : 0;
			want_c += model[i] > 0 ? PAGE : 0;
		}
		assert_int_equal(reserved, want_r);
		assert_int_equal(committed, want_c);
		assert_int_equal(e->reserved, want_r);
		assert_int_equal(e->committed, want_c);
	}
	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	assert_int_equal(cmt_out_commit(&o), 0);
	cmt_engine_destroy(e);
	unlink(path);
}

/*
 * Hostile interposer events: overflowing ranges, dumps out of order or
 * overlapping, a manager 0 of the library, huge lengths. Nothing crashes;
 * the view is flagged where it must be.
 */
static void test_os_view_hostile(void **state)
{
	struct cmt_config cfg = { CMT_MODE_SUMMARY, 0, 50, 10 };
	struct cmt_process *p;
	struct cmt_manager *m;
	struct cmt_engine *e;
	struct cmt_event ev;
	struct cmt_out o;
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test-analysis-hostile-%d.out", (int)getpid());
	assert_int_equal(cmt_out_open(&o, path), 0);
	e = cmt_engine_create(&cfg, &o);
	assert_non_null(e);
	/* A call before any dump: the view starts unknown. */
	os_mmap(e, 0, 4, 3, 0x22);
	p = cmt_map_get(&e->procs, 42);
	assert_non_null(p);
	m = p->os;
	assert_non_null(m);
	assert_false(m->known);
	assert_true(m->reasons & CMT_R_FIRST_SEEN_LATE);
	/* A dump: end without begin, lines outside it, overlapping and inverted lines. */
	ev = os_event(CMT_EV_OS_MAPS_END);
	cmt_engine_event(e, &ev);
	assert_true(m->reasons & CMT_R_INCONSISTENT);
	ev = os_event(CMT_EV_OS_MAPS_BEGIN);
	ev.f[CMT_F_PAGE_SIZE] = 12345;
	cmt_engine_event(e, &ev);
	ev = os_event(CMT_EV_OS_MAPS_MAPPING);
	ev.f[CMT_F_BASE] = VIEW_BASE;
	ev.f[CMT_F_END] = VIEW_BASE + 8 * PAGE;
	ev.f[CMT_F_PROT] = 5;
	ev.f[CMT_F_INODE] = 77;
	ev.s[CMT_S_PATH] = "/lib/x.so";
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_BASE] = VIEW_BASE + 4 * PAGE; /* overlaps the line before */
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_BASE] = UINT64_MAX - PAGE;
	ev.f[CMT_F_END] = 5; /* inverted */
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_BASE] = UINT64_MAX - 2 * PAGE;
	ev.f[CMT_F_END] = UINT64_MAX;
	ev.f[CMT_F_PROT] = 0xffffffff;
	ev.s[CMT_S_PATH] = "[stack]";
	cmt_engine_event(e, &ev);
	ev = os_event(CMT_EV_OS_MAPS_END);
	ev.f[CMT_F_MAPPINGS] = 4;
	cmt_engine_event(e, &ev);
	assert_true(m->known);
	assert_int_equal(m->v.regions, 2);
	/* Calls with ranges that overflow or make no sense. */
	os_range_call(e, CMT_EV_OS_MUNMAP, 0, 0, 0, true);
	ev = os_event(CMT_EV_OS_MMAP);
	ev.f[CMT_F_LENGTH] = UINT64_MAX;
	ev.f[CMT_F_RESULT] = UINT64_MAX - PAGE;
	ev.f[CMT_F_FLAGS] = 0x22;
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_LENGTH] = 0;
	cmt_engine_event(e, &ev);
	ev = os_event(CMT_EV_OS_MPROTECT);
	ev.f[CMT_F_ADDRESS] = UINT64_MAX - PAGE + 3;
	ev.f[CMT_F_LENGTH] = UINT64_MAX;
	cmt_engine_event(e, &ev);
	ev = os_event(CMT_EV_OS_MREMAP);
	ev.f[CMT_F_ADDRESS] = VIEW_BASE;
	ev.f[CMT_F_LENGTH] = 0;
	ev.f[CMT_F_NEW_LENGTH] = UINT64_MAX - 10;
	ev.f[CMT_F_RESULT] = VIEW_BASE + 64 * PAGE;
	cmt_engine_event(e, &ev);
	ev.f[CMT_F_NEW_LENGTH] = 4 * PAGE;
	ev.f[CMT_F_RESULT] = UINT64_MAX - PAGE;
	cmt_engine_event(e, &ev);
	/* The library never numbers a manager 0: such events are ignored. */
	ev = make(CMT_EV_MANAGER_CREATE);
	ev.f[CMT_F_MANAGER_ID] = 0;
	cmt_engine_event(e, &ev);
	assert_int_equal(e->malformed[CMT_EV_MANAGER_CREATE], 1);
	assert_string_equal(m->name, "mmap");
	/* A manager's reservation takes its pages from the view. */
	create(e);
	ev_alloc(e, 0, 0x10000, CMT_MEM_RESERVE, CMT_PAGE_READWRITE, VIEW_BASE, 0, 1);
	assert_null(cmt_vm_holder(m, VIEW_BASE));
	os_range_call(e, CMT_EV_OS_MPROTECT, 0, 4, 3, true);
	assert_null(cmt_vm_holder(m, VIEW_BASE));
	cmt_engine_finish(e);
	assert_false(cmt_engine_failed(e));
	assert_int_equal(cmt_out_commit(&o), 0);
	cmt_engine_destroy(e);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resv_commit_splits_and_merges),
		cmocka_unit_test(test_resv_partial_last_page_and_build),
		cmocka_unit_test(test_tree_random_against_sorted_array),
		cmocka_unit_test(test_hist_buckets_and_percentiles),
		cmocka_unit_test(test_query_look_back_and_wait),
		cmocka_unit_test(test_seq_gap_and_regression),
		cmocka_unit_test(test_reset_takes_no_number),
		cmocka_unit_test(test_release_anomalies),
		cmocka_unit_test(test_totals_past_2_64),
		cmocka_unit_test(test_heap_frees_and_dump),
		cmocka_unit_test(test_discarded_then_dump),
		cmocka_unit_test(test_events_before_the_first_dump),
		cmocka_unit_test(test_never_dumped),
		cmocka_unit_test(test_block_events_just_outside_the_dump),
		cmocka_unit_test(test_output_escaping_and_atomic_write),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_random_events_every_mode),
		cmocka_unit_test(test_series_whole_clock_range),
		cmocka_unit_test(test_os_view_against_pages),
		cmocka_unit_test(test_os_view_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
