/* SPDX-License-Identifier: MIT */
/*
 * The engine's state, shared by its files: engine.c (dispatch, processes,
 * managers, counters, lists), vm.c (reservations and their history),
 * check.c (queries), heap.c (heaps and blocks), series.c (counters over
 * time, spans, Perfetto slices) and report.c (the documents).
 *
 * Memory follows the live state, not the trace's length: reservations and
 * heap blocks that exist, at most CMT_HISTORY changes per manager to look
 * back, at most CMT_MAX_PENDING queries waiting per manager, lists capped at
 * max-details entries, series capped at `points` samples per counter.
 */
#ifndef CLRMEMTRACE_ANALYSIS_STATE_H
#define CLRMEMTRACE_ANALYSIS_STATE_H

#include "engine.h"
#include "hist.h"
#include "map.h"
#include "names.h"
#include "resv.h"
#include "tree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Changes each manager keeps to look back (analysis/README.md, "Checking queries"). */
#define CMT_HISTORY 256u
/* Bytes of old versions a manager's history may hold before it forgets early. */
#define CMT_HISTORY_BYTES (UINT64_C(4) << 20)
/* Queries a manager keeps waiting for changes not yet seen. */
#define CMT_MAX_PENDING 4096u
/* Freed pointers (or released bases) remembered beyond the live ones. */
#define CMT_FREED_MEMORY 65536u
/* Distinct (file, line) pairs interned. */
#define CMT_MAX_SITES (1u << 20)
/* Protection keys: a run's protection bits plus the reservation's cache bits. */
#define CMT_PROTECT_KEYS 2048u
/* Protection keys one event may move before all are sampled again. */
#define CMT_TOUCHED_KEYS 16u

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Why a manager's results are incomplete (bits of cmt_manager.reasons). */
enum {
	CMT_R_FIRST_SEEN_LATE = 1u << 0,
	CMT_R_SEQ_GAP = 1u << 1,
	CMT_R_SEQ_REGRESSION = 1u << 2,
	CMT_R_DISCARDED = 1u << 3,
	CMT_R_INCONSISTENT = 1u << 4,
	CMT_R_DUMP_UNFINISHED = 1u << 5,
	CMT_R_HEAP_UNKNOWN = 1u << 6,
	CMT_R_HEAP_INCONSISTENT = 1u << 7,
	CMT_R_TOTALS = 1u << 8, /* its heap's live bytes left [0, 2^64 - 1] */
	CMT_R_COUNT = 9,
};

enum cmt_anomaly_kind {
	CMT_A_RWX_COMMIT,
	CMT_A_W_TO_X_FLIP,
	CMT_A_FREE_UNKNOWN,
	CMT_A_DOUBLE_FREE,
	CMT_A_COMMIT_OUTSIDE,
	CMT_A_PROTECT_UNCOMMITTED,
	CMT_A_SEQ_REGRESSION,
	CMT_A_COUNT,
};

extern const char *const cmt_anomaly_names[CMT_A_COUNT];

/* The seven MEMORY_BASIC_INFORMATION fields a query returns. */
struct cmt_mbi {
	uint64_t base;
	uint64_t allocation_base;
	uint64_t region_size;
	uint32_t allocation_protect;
	uint32_t state;
	uint32_t protect;
	uint32_t mem_type;
};

/* ---------- Lists capped at max-details ---------- */

struct cmt_vec {
	void *v;
	size_t n;
	size_t cap;
	size_t elem;
};

/* A slot for a new element, or NULL when the list is full (or memory ran out). */
void *cmt_vec_push(struct cmt_engine *e, struct cmt_vec *v, size_t limit);
void cmt_vec_free(struct cmt_vec *v);

struct cmt_anomaly {
	int64_t time_ns;
	uint64_t vpid;
	uint64_t tid;
	uint64_t manager_id;
	uint64_t addr;
	uint64_t size;
	uint32_t kind;
	char detail[100];
};

struct cmt_failure {
	int64_t time_ns;
	uint64_t vpid;
	uint64_t tid;
	uint64_t manager_id;
	uint64_t addr;
	uint64_t size;
	int32_t hr;
	uint32_t type;
};

struct cmt_memload {
	int64_t time_ns;
	uint64_t vpid;
	uint64_t load;
	uint64_t available;
};

struct cmt_notification {
	int64_t time_ns;
	uint64_t vpid;
	uint64_t manager_id;
	uint64_t load;
	int64_t level;
	int32_t hr;
	char *reason;
};

struct cmt_mismatch {
	int64_t time_ns;
	uint64_t vpid;
	uint64_t manager_id;
	uint64_t address;
	uint64_t seq_before;
	uint64_t seq_after;
	struct cmt_mbi got;
	struct cmt_mbi expected;
	bool has_expected;
	uint64_t overlaps; /* a reservation the answer overlapped, when !has_expected */
};

/* ---------- Reservations and history ---------- */

struct cmt_region {
	struct cmt_tnode node; /* key: allocation base */
	struct cmt_resv *cur;
	int64_t time_ns; /* reserved, or first seen in a dump */
	uint64_t tid;
	int64_t level;
	bool level_known;
};

struct cmt_hentry {
	uint64_t seq;
	struct cmt_resv *old;       /* owned; NULL when the change made the reservation */
	const struct cmt_resv *new; /* NULL when the change released it */
	bool nop;                   /* the change left everything as it was */
};

struct cmt_history {
	struct cmt_hentry *ring;
	uint32_t cap;
	uint32_t head; /* the oldest entry */
	uint32_t count;
	uint64_t bytes;
};

struct cmt_query {
	int64_t time_ns;
	uint64_t tid;
	uint64_t address;
	uint64_t seq_before;
	uint64_t seq_after;
	struct cmt_mbi got;
};

/* ---------- Heaps ---------- */

enum {
	CMT_B_LIVE = 1u,
	CMT_B_FREED = 2u,
	CMT_B_STATE = 3u,
	CMT_B_TOUCHED = 4u,   /* an alloc or free during the current dump */
	CMT_B_CONFIRMED = 8u, /* listed by the current dump */
	CMT_B_UNSEEN = 16u,   /* live: made live by a dump listing it; no event of it since */
	CMT_B_DROPPED = 32u,  /* freed: by a dump not listing it, not by a malloc_free */
	CMT_B_GEN_SHIFT = 6,
};

struct cmt_block {
	uint64_t ptr;
	uint64_t size;
	uint32_t site;
	uint32_t meta; /* state, marks, dump generation */
};

struct cmt_heap {
	uint64_t id;
	struct cmt_manager *m;
	struct cmt_block *tab;
	uint32_t cap;
	uint32_t used; /* live + freed entries */
	uint32_t live;
	uint32_t freed;
	uint64_t live_bytes;
	uint32_t dump_gen;   /* the manager's dump that last listed it */
	uint32_t known_epoch; /* contents known while this is the manager's heap_epoch */
	uint32_t marked_gen;  /* the dump generation marked_live counts for */
	uint32_t marked_live; /* live blocks listed or touched during that dump */
	uint32_t created_gen; /* the manager's dump during which its malloc_create came */
	uint32_t listed_gen;  /* the dump whose listing made it, while no call of it came */
	int64_t live_hi;      /* carries of live_bytes: the exact value is live_hi * 2^64 + live_bytes */
	bool known;
	bool dumped; /* a dump of its manager listed it */
};

/* ---------- Counters over time (series, perfetto) ---------- */

struct cmt_sample {
	uint64_t slice;
	int64_t t;
	uint64_t last;
	uint64_t max;
};

struct cmt_sampler {
	struct cmt_sample *s;
	uint32_t n;
	uint32_t cap;
	uint64_t value;
	uint32_t index; /* in the series' list of samplers */
};

struct cmt_span {
	uint64_t vpid;
	uint64_t manager_id;
	uint64_t base;
	uint64_t size;
	int64_t begin_ns;
	int64_t end_ns;
	uint32_t state;
	uint32_t protect;
	double weight;
};

struct cmt_series {
	uint64_t points;
	int64_t begin_ns;
	bool begun;
	uint32_t wshift; /* slices are 2^wshift ns wide (0 to 64) */
	struct cmt_sampler **all;
	uint32_t nall;
	uint32_t capall;
	struct cmt_sampler reserved;
	struct cmt_sampler committed;
	struct cmt_sampler heap;
	struct cmt_sampler *by_protect[CMT_PROTECT_KEYS];
	/* Spans: a min-heap of the `points` largest. */
	struct cmt_span *spans;
	uint32_t nspans;
};

/* ---------- Managers and processes ---------- */

struct cmt_protect_bytes {
	uint32_t key;
	uint64_t bytes;
};

struct cmt_vstats {
	uint64_t reserved;
	uint64_t committed;
	uint64_t peak_reserved;
	uint64_t peak_committed;
	uint64_t regions;
	uint64_t failed;
	uint64_t calls[CMT_EV_COUNT];
};

struct cmt_mstats {
	uint64_t heaps;
	uint64_t allocs;
	uint64_t frees;
	uint64_t live_bytes;
	int64_t live_hi; /* carries of live_bytes (see cmt_total_shown) */
	uint64_t peak_live_bytes;
	uint64_t live_blocks;
};

struct cmt_window {
	int64_t begin_ns;
	int64_t end_ns;
};

struct cmt_dregion {
	uint64_t base;
	uint64_t allocation_base;
	uint64_t size;
	uint32_t state;
	uint32_t protect;
	uint32_t allocation_protect;
};

struct cmt_dblock {
	uint64_t heap_id;
	uint64_t ptr;
	uint64_t size;
};

/* A state dump under way: what it listed, applied at its statedump_end. */
struct cmt_dump {
	bool active;
	uint64_t seq;
	int64_t time_ns;
	uint64_t tid;
	struct cmt_dregion *regions;
	size_t n;
	size_t cap;
	struct cmt_dblock *blocks;
	size_t nblocks;
	size_t cap_blocks;
};

struct cmt_process;
struct cmt_os;

struct cmt_manager {
	uint64_t id;
	struct cmt_process *proc;
	char *name;
	uint32_t shift;
	bool known;
	bool window_open;
	bool destroyed;
	/*
	 * Seen neither from its manager_create nor from a whole dump yet: its
	 * events count as calls and change nothing until its first dump.
	 */
	bool awaiting;
	bool late;   /* first seen through another event than manager_create or a dump */
	bool dumped; /* a dump of it ended: heaps it did not list were gone */
	int64_t first_ns;
	uint32_t reasons;
	uint64_t seq;
	uint64_t floor; /* the oldest state queries can still be checked against */
	struct cmt_tree tree;
	struct cmt_history hist;
	struct cmt_query *pending; /* a min-heap by seq_after */
	uint32_t npending;
	uint32_t cap_pending;
	struct cmt_vstats v;
	struct cmt_protect_bytes *by_protect;
	uint32_t nby_protect;
	uint32_t cap_by_protect;
	struct cmt_mstats h;
	struct cmt_map heaps; /* heaps not destroyed */
	struct cmt_heap *last_heap;
	uint32_t heap_epoch; /* bumped when events of its heaps may have been lost */
	struct cmt_map released; /* bases released, for double releases */
	struct cmt_window *windows;
	uint32_t nwindows;
	uint32_t cap_windows;
	struct cmt_dump dump;
	uint32_t dump_gen;
	struct cmt_map dump_destroyed; /* heaps whose malloc_destroy came during the dump */
	/* While awaiting its first dump: pointer -> heap id freed, not handed out since. */
	struct cmt_map awaiting_freed;
	uint32_t order; /* first appearance */
	/* On the engine's list of managers a lost-events notice has something to take. */
	bool exposed;
	struct cmt_manager *exposed_next;
	/* The mmap view's own state (os.c); NULL for a manager. */
	struct cmt_os *os;
};

struct cmt_process {
	uint64_t vpid;
	char *procname;
	bool no_vpid; /* the bucket of events without the vpid context */
	struct cmt_map managers;
	struct cmt_manager *last;
	/* Its mmap view (os.c): also in `managers`, as manager 0. NULL until an interposer event. */
	struct cmt_manager *os;
	uint32_t nmanagers;
	uint64_t reserved;
	uint64_t committed;
	uint64_t heap_live;
	/* Carries of the three sums (see cmt_total_shown); totals_out: one left [0, 2^64 - 1]. */
	int64_t reserved_hi;
	int64_t committed_hi;
	int64_t heap_live_hi;
	bool totals_out;
	struct cmt_sampler *s_reserved;
	struct cmt_sampler *s_committed;
	struct cmt_sampler *s_heap;
};

/* ---------- Interned (file, line) pairs ---------- */

struct cmt_site {
	char *file;
	int64_t line;
};

struct cmt_sites {
	struct cmt_site *v;
	uint32_t n;
	uint32_t cap;
	struct cmt_hindex index;
};

/* ---------- The engine ---------- */

struct cmt_engine {
	struct cmt_config cfg;
	struct cmt_out *out;
	bool failed;
	bool done;

	uint64_t events;
	bool have_time;
	int64_t begin_ns;
	int64_t end_ns;
	int64_t now; /* the time of the event being applied */

	/* The members each event type needs (evtab.c), looked up once. */
	uint64_t required[CMT_EV_COUNT];
	uint32_t srequired[CMT_EV_COUNT];

	struct cmt_map procs;
	struct cmt_process *last_proc;
	uint32_t nmanagers;
	/* Managers with a known state, a dump under way or known heaps. */
	struct cmt_manager *exposed;

	/* Totals over every process, at the same instant. */
	uint64_t reserved;
	uint64_t committed;
	uint64_t peak_reserved;
	uint64_t peak_committed;
	uint64_t regions;
	uint64_t heap_live;
	uint64_t peak_heap_live;
	uint64_t live_blocks;
	uint64_t heaps;
	uint64_t allocs;
	uint64_t frees;
	uint64_t failed_calls;
	uint64_t calls[CMT_EV_COUNT];
	uint64_t by_protect[CMT_PROTECT_KEYS];
	/*
	 * Carries of the sums above that can pass 2^64 - 1 (see cmt_total_shown).
	 * carried: some carry moved since the start (the slow path of settle());
	 * totals_out: a total of the trace left [0, 2^64 - 1] after an event.
	 */
	int64_t reserved_hi;
	int64_t committed_hi;
	int64_t heap_live_hi;
	int64_t by_protect_hi[CMT_PROTECT_KEYS];
	bool carried;
	bool totals_out;
	/* Protection keys the event being applied moved (series mode). */
	uint32_t touched[CMT_TOUCHED_KEYS];
	uint32_t ntouched;
	bool touched_all;

	struct cmt_hist *latency[CMT_EV_COUNT];

	uint64_t q_checked;
	uint64_t q_mismatches;
	uint64_t q_unverifiable;
	uint64_t q_before_dump; /* of the unverifiable: made before their manager's first dump */
	struct cmt_vec mismatches;

	uint64_t anomaly_counts[CMT_A_COUNT];
	struct cmt_vec anomalies;
	struct cmt_vec failures;
	struct cmt_vec memloads;
	struct cmt_vec notifications;

	uint64_t discarded_events;
	uint64_t discarded_notices;
	uint64_t discarded_uncounted;
	uint64_t discarded_packets;
	uint64_t no_vpid;
	uint64_t no_time;
	uint64_t malformed[CMT_EV_COUNT];
	uint64_t unknown_events;

	struct cmt_sites sites;
	struct cmt_series *series;
	bool perfetto_any; /* an element of the Perfetto array was written */

	/* The manager a reservation change belongs to, for the span sink. */
	struct cmt_manager *span_m;
	struct cmt_span_sink sink;
	const struct cmt_span_sink *sinkp;
};

/* engine.c */
void cmt_fail(struct cmt_engine *e);
void cmt_anomaly(struct cmt_engine *e, enum cmt_anomaly_kind kind, struct cmt_manager *m,
		 const struct cmt_event *ev, uint64_t addr, uint64_t size, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
void cmt_set_unknown(struct cmt_engine *e, struct cmt_manager *m, int64_t t, uint32_t reason);
void cmt_set_known(struct cmt_engine *e, struct cmt_manager *m, int64_t t);
void cmt_expose(struct cmt_engine *e, struct cmt_manager *m);
/*
 * Byte totals. A manager's reserved and committed bytes are sums over disjoint
 * address ranges and always fit in 64 bits; the sums over managers and
 * processes, committed bytes by protection and heap live bytes (sizes are only
 * numbers) may not. Those keep a count of carries beside the value, so the
 * exact total is hi * 2^64 + value whatever the order of the steps; after an
 * event, a total outside [0, 2^64 - 1] flags what holds it incomplete and is
 * shown saturated (analysis/README.md, "Completeness").
 */
static inline uint64_t cmt_total_shown(uint64_t value, int64_t hi)
{
	return hi == 0 ? value : hi > 0 ? UINT64_MAX : 0;
}

/* value (and its carries) moved by bytes; true when a carry moved. */
static inline bool cmt_total_add(uint64_t *value, int64_t *hi, uint64_t bytes)
{
	if (__builtin_add_overflow(*value, bytes, value)) {
		(*hi)++;
		return true;
	}
	return false;
}

static inline bool cmt_total_sub(uint64_t *value, int64_t *hi, uint64_t bytes)
{
	if (__builtin_sub_overflow(*value, bytes, value)) {
		(*hi)--;
		return true;
	}
	return false;
}

/* Counts a failed call of m and lists it (up to max-details) with its error, address and size. */
void cmt_failed_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev,
		     int32_t err, uint64_t addr, uint64_t size);
void cmt_add_reserved(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes);
void cmt_sub_reserved(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes);
void cmt_add_committed(struct cmt_engine *e, struct cmt_manager *m, uint32_t key, uint64_t bytes);
void cmt_sub_committed(struct cmt_engine *e, struct cmt_manager *m, uint32_t key, uint64_t bytes);
void cmt_add_heap_live(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes);
/* Takes away hi * 2^64 + bytes: all a heap held. */
void cmt_sub_heap_live(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes, int64_t hi);
/* Flags the totals left outside [0, 2^64 - 1] (settle(), and at the end of the trace). */
void cmt_check_totals(struct cmt_engine *e, struct cmt_manager *m);
uint32_t cmt_site_intern(struct cmt_engine *e, const char *file, int64_t line);

/* vm.c */
void cmt_vm_alloc(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
void cmt_vm_free(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
void cmt_vm_protect(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
/* Adds (or, without `add`, takes away) the committed bytes of r's runs to the totals. */
void cmt_vm_account(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_resv *r,
		    bool add);
/*
 * Region r (owned) joins m's state, made now by thread tid, counted in the
 * reserved and committed totals; NULL when memory runs out or a region of m
 * starts there already (r is freed then).
 */
struct cmt_region *cmt_vm_link(struct cmt_engine *e, struct cmt_manager *m, struct cmt_resv *r,
			       uint64_t tid);
/*
 * The committed totals as pages [first, last) of old take `state`: what
 * old's runs committed there is taken away, what `state` commits is added.
 */
void cmt_vm_recount(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_resv *old,
		    uint64_t first, uint64_t last, uint32_t state);
void cmt_vm_dump_begin(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
void cmt_vm_dump_region(struct cmt_engine *e, struct cmt_manager *m,
			const struct cmt_event *ev);
void cmt_vm_dump_end(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
struct cmt_region *cmt_vm_holder(struct cmt_manager *m, uint64_t addr);
void cmt_vm_history_clear(struct cmt_manager *m);
void cmt_vm_drop_all(struct cmt_engine *e, struct cmt_manager *m);
void cmt_vm_fini(struct cmt_manager *m);
uint64_t cmt_page_size(const struct cmt_manager *m);
uint32_t cmt_protect_key(const struct cmt_resv *r, uint32_t state);

/* check.c */
void cmt_check_query(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
void cmt_check_resolve(struct cmt_engine *e, struct cmt_manager *m);
void cmt_check_abandon(struct cmt_engine *e, struct cmt_manager *m);
void cmt_check_fini(struct cmt_manager *m);

/* heap.c */
void cmt_heap_event(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);
void cmt_heap_dump_end(struct cmt_engine *e, struct cmt_manager *m);
void cmt_heap_mark_unknown(struct cmt_manager *m);
void cmt_heap_dump_dropped(struct cmt_manager *m);
/* The manager awaits its first dump no more: what it remembered for it goes. */
void cmt_heap_awaited(struct cmt_manager *m);
bool cmt_heap_shown(const struct cmt_heap *h);
void cmt_heap_destroy_all(struct cmt_engine *e, struct cmt_manager *m);
void cmt_heap_fini(struct cmt_manager *m);
/* Calls fn for each live block of h. */
void cmt_heap_foreach_live(const struct cmt_heap *h,
			   void (*fn)(void *ctx, const struct cmt_block *b), void *ctx);

/* series.c */
struct cmt_series *cmt_series_create(uint64_t points);
void cmt_series_destroy(struct cmt_series *s);
void cmt_series_advance(struct cmt_engine *e, int64_t t);
struct cmt_sampler *cmt_sampler_new(struct cmt_engine *e);
void cmt_sampler_set(struct cmt_engine *e, struct cmt_sampler *s, uint64_t value);
void cmt_span_ended(void *ctx, const struct cmt_resv *r, const struct cmt_run *run,
		    uint64_t end_page, int64_t end_ns);
void cmt_perfetto_begin(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_region *r,
			int64_t t);
void cmt_perfetto_end(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_region *r,
		      int64_t t);

/* report.c */
void cmt_timeline_header(struct cmt_engine *e);
/* A timeline row's columns up to size, each followed by its comma. */
void cmt_timeline_row_start(struct cmt_engine *e, const struct cmt_event *ev,
			    struct cmt_manager *m, const char *op, bool has_base,
			    uint64_t allocation_base, uint64_t address, uint64_t size);
void cmt_timeline_row(struct cmt_engine *e, const struct cmt_event *ev, struct cmt_manager *m,
		      const char *op, bool has_base, uint64_t allocation_base, uint64_t address,
		      uint64_t size, uint64_t seq);
void cmt_write_summary(struct cmt_engine *e);
void cmt_write_map(struct cmt_engine *e);
void cmt_write_series(struct cmt_engine *e);
void cmt_write_perfetto_tail(struct cmt_engine *e);
void cmt_perfetto_head(struct cmt_engine *e);

/* Sorted views for the documents (report.c). */
struct cmt_process **cmt_sorted_processes(struct cmt_engine *e, size_t *n);
struct cmt_manager **cmt_sorted_managers(struct cmt_engine *e, struct cmt_process *p, size_t *n);

#endif /* CLRMEMTRACE_ANALYSIS_STATE_H */
