/* SPDX-License-Identifier: MIT */
/*
 * Reservations (analysis/README.md, "Virtual memory", "Sequence numbers",
 * "State dumps"): each manager keeps its live reservations in an AVL tree
 * keyed by allocation base, each pointing at its current version, and the
 * versions its last CMT_HISTORY changes replaced, newest last, so a query
 * can be checked against the states between its seq_before and seq_after.
 *
 * A successful change that cannot be applied to a known state (a commit no
 * reservation holds, a reservation over another) proves the reconstruction
 * wrong: the manager's state becomes unknown until its next dump.
 */
#include "os.h"
#include "state.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DUMP_REGIONS (UINT64_C(1) << 24)

uint64_t cmt_page_size(const struct cmt_manager *m)
{
	return UINT64_C(1) << m->shift;
}

static uint64_t page_down(const struct cmt_manager *m, uint64_t a)
{
	return a & ~(cmt_page_size(m) - 1);
}

/* a + size rounded up to a page; false on overflow. */
static bool page_end(const struct cmt_manager *m, uint64_t a, uint64_t size, uint64_t *end)
{
	uint64_t e;

	if (__builtin_add_overflow(a, size, &e) ||
	    __builtin_add_overflow(e, cmt_page_size(m) - 1, &e)) {
		return false;
	}
	*end = e & ~(cmt_page_size(m) - 1);
	return true;
}

uint32_t cmt_protect_key(const struct cmt_resv *r, uint32_t state)
{
	return cmt_resv_protect(r, state) & (CMT_PROTECT_KEYS - 1);
}

struct cmt_region *cmt_vm_holder(struct cmt_manager *m, uint64_t addr)
{
	struct cmt_tnode *n = cmt_tree_find_le(&m->tree, addr);
	struct cmt_region *r;

	if (!n) {
		return NULL;
	}
	r = container_of(n, struct cmt_region, node);
	return addr < r->cur->end ? r : NULL;
}

static uint64_t resv_bytes(const struct cmt_resv *r)
{
	return sizeof(*r) + (uint64_t)r->nruns * sizeof(struct cmt_run);
}

/* ---------- History ---------- */

static void history_evict(struct cmt_manager *m)
{
	struct cmt_history *h = &m->hist;
	struct cmt_hentry *old = &h->ring[h->head];

	if (old->old) {
		h->bytes -= resv_bytes(old->old);
		free(old->old);
	}
	if (old->seq > m->floor) {
		m->floor = old->seq;
	}
	h->head = (h->head + 1) % h->cap;
	h->count--;
}

void cmt_vm_history_clear(struct cmt_manager *m)
{
	while (m->hist.count) {
		history_evict(m);
	}
	m->hist.head = 0;
	m->hist.bytes = 0;
}

/*
 * Records change `seq`: `old` (owned from now on) was replaced by `new`.
 * Without memory, the history is dropped: older states can no longer be
 * checked, which only makes queries unverifiable.
 */
static void history_push(struct cmt_engine *e, struct cmt_manager *m, uint64_t seq,
			 struct cmt_resv *old, const struct cmt_resv *new, bool nop)
{
	struct cmt_history *h = &m->hist;
	struct cmt_hentry *slot;

	if (h->count == h->cap && h->cap < CMT_HISTORY) {
		uint32_t cap = h->cap ? h->cap * 2 : 8, i;
		struct cmt_hentry *ring;

		if (cap > CMT_HISTORY) {
			cap = CMT_HISTORY;
		}
		ring = malloc(cap * sizeof(*ring));
		if (!ring) {
			cmt_fail(e);
			cmt_vm_history_clear(m);
			m->floor = seq;
			free(old);
			return;
		}
		for (i = 0; i < h->count; i++) {
			ring[i] = h->ring[(h->head + i) % h->cap];
		}
		free(h->ring);
		h->ring = ring;
		h->cap = cap;
		h->head = 0;
	}
	if (h->count == h->cap) {
		history_evict(m);
	}
	slot = &h->ring[(h->head + h->count) % h->cap];
	slot->seq = seq;
	slot->old = old;
	slot->new = new;
	slot->nop = nop;
	h->count++;
	if (old) {
		h->bytes += resv_bytes(old);
	}
	while (h->bytes > CMT_HISTORY_BYTES && h->count > 1) {
		history_evict(m);
	}
}

/* ---------- Applying changes ---------- */

void cmt_vm_account(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_resv *r,
		    bool add)
{
	uint32_t i;

	for (i = 0; i < r->nruns; i++) {
		if (r->runs[i].state & CMT_RUN_COMMITTED) {
			uint64_t b = cmt_resv_bytes(r, r->runs[i].start, cmt_resv_run_end(r, i));

			if (add) {
				cmt_add_committed(e, m, cmt_protect_key(r, r->runs[i].state), b);
			} else {
				cmt_sub_committed(e, m, cmt_protect_key(r, r->runs[i].state), b);
			}
		}
	}
}

static void released_add(struct cmt_engine *e, struct cmt_manager *m, uint64_t base)
{
	if (m->released.count >= CMT_FREED_MEMORY) {
		cmt_map_fini(&m->released);
	}
	if (cmt_map_put(&m->released, base, (void *)1) != 0) {
		cmt_fail(e);
	}
}

struct cmt_region *cmt_vm_link(struct cmt_engine *e, struct cmt_manager *m, struct cmt_resv *r,
			       uint64_t tid)
{
	struct cmt_region *reg = calloc(1, sizeof(*reg));

	if (!reg) {
		cmt_fail(e);
		free(r);
		return NULL;
	}
	reg->node.key = r->base;
	reg->cur = r;
	reg->time_ns = e->now;
	reg->tid = tid;
	if (cmt_tree_insert(&m->tree, &reg->node) != 0) {
		free(reg);
		free(r);
		return NULL;
	}
	m->v.regions++;
	e->regions++;
	cmt_add_reserved(e, m, r->end - r->base);
	cmt_vm_account(e, m, r, true);
	return reg;
}

static struct cmt_region *insert_region(struct cmt_engine *e, struct cmt_manager *m,
					struct cmt_resv *r, uint64_t tid, bool has_level,
					int64_t level)
{
	struct cmt_region *reg = cmt_vm_link(e, m, r, tid);

	if (!reg) {
		return NULL;
	}
	reg->level = level;
	reg->level_known = has_level;
	cmt_map_remove(&m->released, r->base);
	/* The manager's reservation: no longer the mmap view's pages. */
	cmt_os_claim(e, m, r->base, r->end, tid);
	if (e->cfg.mode == CMT_MODE_PERFETTO) {
		cmt_perfetto_begin(e, m, reg, e->now);
	}
	return reg;
}

/* Takes region out of the state; returns its current version, now the caller's. */
static struct cmt_resv *remove_region(struct cmt_engine *e, struct cmt_manager *m,
				      struct cmt_region *reg)
{
	struct cmt_resv *r = reg->cur;

	cmt_tree_remove(&m->tree, &reg->node);
	m->v.regions--;
	e->regions--;
	cmt_sub_reserved(e, m, r->end - r->base);
	cmt_vm_account(e, m, r, false);
	e->span_m = m;
	cmt_resv_end_all(r, e->now, e->sinkp);
	if (e->cfg.mode == CMT_MODE_PERFETTO) {
		cmt_perfetto_end(e, m, reg, e->now);
	}
	free(reg);
	return r;
}

/* Drops every reservation (a new lifetime of the manager); no history. */
void cmt_vm_drop_all(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_tnode *n;

	while ((n = cmt_tree_first(&m->tree)) != NULL) {
		free(remove_region(e, m, container_of(n, struct cmt_region, node)));
	}
}

void cmt_vm_fini(struct cmt_manager *m)
{
	struct cmt_tnode *n;

	while ((n = cmt_tree_first(&m->tree)) != NULL) {
		struct cmt_region *reg = container_of(n, struct cmt_region, node);

		cmt_tree_remove(&m->tree, n);
		free(reg->cur);
		free(reg);
	}
	cmt_vm_history_clear(m);
	free(m->hist.ring);
	m->hist.ring = NULL;
	m->hist.cap = 0;
}

void cmt_vm_recount(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_resv *old,
		    uint64_t first, uint64_t last, uint32_t state)
{
	uint32_t i;

	for (i = cmt_resv_find(old, first); i < old->nruns && old->runs[i].start < last; i++) {
		if (old->runs[i].state & CMT_RUN_COMMITTED) {
			uint64_t s = old->runs[i].start, end = cmt_resv_run_end(old, i);

			cmt_sub_committed(e, m, cmt_protect_key(old, old->runs[i].state),
					  cmt_resv_bytes(old, s > first ? s : first,
							 end < last ? end : last));
		}
	}
	if (state & CMT_RUN_COMMITTED) {
		cmt_add_committed(e, m, cmt_protect_key(old, state),
				  cmt_resv_bytes(old, first, last));
	}
}

/* Sets pages [first, last) of reg to `state` as change `seq`. */
static bool change_range(struct cmt_engine *e, struct cmt_manager *m, struct cmt_region *reg,
			 uint64_t first, uint64_t last, uint32_t state, uint64_t seq)
{
	struct cmt_resv *old = reg->cur, *new;

	if (first >= last) {
		history_push(e, m, seq, NULL, NULL, true);
		return true;
	}
	e->span_m = m;
	new = cmt_resv_set(old, first, last, state, e->now, e->sinkp);
	if (!new) {
		cmt_fail(e);
		return false;
	}
	if (cmt_resv_same(old, new)) {
		free(new);
		history_push(e, m, seq, NULL, NULL, true);
		return true;
	}
	cmt_vm_recount(e, m, old, first, last, state);
	reg->cur = new;
	history_push(e, m, seq, old, new, false);
	return true;
}

enum { SEQ_SKIP, SEQ_SAME, SEQ_NEXT };

/* What a successful change event numbered seq does to m's known state. */
static int seq_check(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev,
		     uint64_t seq)
{
	if (!m->known) {
		return SEQ_SKIP;
	}
	if (seq == m->seq) {
		return SEQ_SAME;
	}
	if (seq == m->seq + 1) {
		return SEQ_NEXT;
	}
	if (seq > m->seq) {
		cmt_set_unknown(e, m, e->now, CMT_R_SEQ_GAP);
		return SEQ_SKIP;
	}
	cmt_anomaly(e, CMT_A_SEQ_REGRESSION, m, ev, ev->f[CMT_F_ADDRESS], ev->f[CMT_F_SIZE],
		    "%s seq %llu after %llu", cmt_event_name(ev->type), (unsigned long long)seq,
		    (unsigned long long)m->seq);
	cmt_set_unknown(e, m, e->now, CMT_R_SEQ_REGRESSION);
	return SEQ_SKIP;
}

/* After applying change `seq` (how = seq_check's answer), or failing to. */
static void seq_done(struct cmt_engine *e, struct cmt_manager *m, int how, uint64_t seq, bool ok)
{
	if (!ok) {
		cmt_set_unknown(e, m, e->now, CMT_R_INCONSISTENT);
		return;
	}
	if (how == SEQ_NEXT) {
		m->seq = seq;
		cmt_check_resolve(e, m);
	}
}

/* The page range [first, last) of reg that [lo, hi) covers; false if it leaves reg. */
static bool page_range(const struct cmt_region *reg, uint64_t lo, uint64_t hi, uint64_t *first,
		       uint64_t *last)
{
	const struct cmt_resv *r = reg->cur;
	uint64_t npages = cmt_resv_npages(r), len;

	if (lo < r->base || hi > r->end || hi < lo) {
		return false;
	}
	*first = (lo - r->base) >> r->shift;
	len = hi - r->base;
	*last = (len >> r->shift) + ((len & ((UINT64_C(1) << r->shift) - 1)) != 0);
	if (*last > npages) {
		*last = npages;
	}
	return true;
}

static uint32_t committed_state(uint64_t protect)
{
	return CMT_RUN_COMMITTED | ((uint32_t)protect & CMT_RUN_PROTECT);
}

static bool has_level(const struct cmt_event *ev)
{
	return (ev->present & (UINT64_C(1) << CMT_F_LEVEL)) != 0;
}

void cmt_vm_alloc(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t addr = ev->f[CMT_F_ADDRESS], size = ev->f[CMT_F_SIZE], seq = ev->f[CMT_F_SEQ];
	uint32_t type = (uint32_t)ev->f[CMT_F_TYPE], protect = (uint32_t)ev->f[CMT_F_PROTECT];
	bool reset = type & CMT_MEM_RESET, commit = (type & CMT_MEM_COMMIT) && !reset;
	bool reserve = !reset && ((type & CMT_MEM_RESERVE) || addr == 0);
	struct cmt_region *reg;
	uint64_t base, end, first, last;
	char pname[CMT_NAME_MAX];
	bool ok = false;
	int how;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		if (commit && !reserve && (int32_t)ev->f[CMT_F_HR] == CMT_HR_INVALID_ADDRESS) {
			cmt_anomaly(e, CMT_A_COMMIT_OUTSIDE, m, ev, addr, size,
				    "commit of %llu bytes outside any reservation",
				    (unsigned long long)size);
		}
		return;
	}
	if (reserve) {
		base = ev->f[CMT_F_RESULT];
		if (addr) {
			ok = page_end(m, addr, size, &end);
		} else {
			ok = page_end(m, 0, size, &end) && !__builtin_add_overflow(base, end, &end);
		}
		ok = ok && base != 0 && end > base;
	} else {
		base = page_down(m, addr);
		ok = page_end(m, addr, size, &end);
	}
	if (!ok) {
		base = page_down(m, addr);
		end = base;
	}
	if (commit && (protect & 0xff) == CMT_PAGE_EXECUTE_READWRITE) {
		cmt_anomaly(e, CMT_A_RWX_COMMIT, m, ev, base, end - base,
			    "%s of %llu bytes with %s", reserve ? "reserve and commit" : "commit",
			    (unsigned long long)(end - base), cmt_protect_name(protect, pname));
	}
	if (e->cfg.mode == CMT_MODE_TIMELINE) {
		struct cmt_region *h = (!reserve && m->known) ? cmt_vm_holder(m, base) : NULL;

		cmt_timeline_row(e, ev, m,
				 reset ? "reset" : reserve ? (commit ? "reserve_commit" : "reserve")
							   : "commit",
				 reserve || h, reserve ? base : h ? h->cur->base : 0, base,
				 end - base, seq);
	}
	how = seq_check(e, m, ev, seq);
	if (how == SEQ_SKIP) {
		return;
	}
	if (reset) {
		/*
		 * MEM_RESET changes no state and takes no number: one carrying the
		 * next number came after a change whose event is missing.
		 */
		if (how == SEQ_NEXT) {
			cmt_set_unknown(e, m, e->now, CMT_R_SEQ_GAP);
		}
		return;
	}
	if (!ok) {
		seq_done(e, m, how, seq, false);
		return;
	}
	if (reserve) {
		struct cmt_tnode *n = cmt_tree_find_le(&m->tree, end - 1);
		struct cmt_resv *r;

		ok = !n || container_of(n, struct cmt_region, node)->cur->end <= base;
		if (ok) {
			r = cmt_resv_create(base, end, protect & ~CMT_PAGE_TARGETS_INVALID,
					    commit ? committed_state(protect) : 0, m->shift,
					    e->now);
			if (!r) {
				cmt_fail(e);
				return;
			}
			reg = insert_region(e, m, r, ev->tid, has_level(ev),
					    (int64_t)ev->f[CMT_F_LEVEL]);
			ok = reg != NULL;
			if (ok) {
				history_push(e, m, seq, NULL, reg->cur, false);
			}
		}
		seq_done(e, m, how, seq, ok);
		return;
	}
	reg = cmt_vm_holder(m, base);
	ok = reg && page_range(reg, base, end, &first, &last) &&
	     change_range(e, m, reg, first, last, committed_state(protect), seq);
	seq_done(e, m, how, seq, ok);
}

void cmt_vm_free(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t addr = ev->f[CMT_F_ADDRESS], size = ev->f[CMT_F_SIZE], seq = ev->f[CMT_F_SEQ];
	uint32_t type = (uint32_t)ev->f[CMT_F_TYPE];
	uint64_t base = page_down(m, addr), end = base, first = 0, last = 0;
	struct cmt_region *reg = m->known ? cmt_vm_holder(m, base) : NULL;
	bool ok;
	int how;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		if (type == CMT_MEM_RELEASE && m->known && !reg) {
			if (cmt_map_get(&m->released, base)) {
				cmt_anomaly(e, CMT_A_DOUBLE_FREE, m, ev, addr, size,
					    "MEM_RELEASE of a reservation already released");
			} else {
				cmt_anomaly(e, CMT_A_FREE_UNKNOWN, m, ev, addr, size,
					    "MEM_RELEASE of an address never reserved");
			}
		}
		return;
	}
	if (type != CMT_MEM_DECOMMIT && type != CMT_MEM_RELEASE) {
		/* Not a change the library can make: ignored. */
		return;
	}
	ok = size == 0 || page_end(m, addr, size, &end);
	if (e->cfg.mode == CMT_MODE_TIMELINE) {
		if (type == CMT_MEM_RELEASE || size == 0) {
			cmt_timeline_row(e, ev, m, type == CMT_MEM_RELEASE ? "release" : "decommit",
					 reg != NULL, reg ? reg->cur->base : 0,
					 reg ? reg->cur->base : base,
					 reg ? reg->cur->end - reg->cur->base : 0, seq);
		} else {
			cmt_timeline_row(e, ev, m, "decommit", reg != NULL,
					 reg ? reg->cur->base : 0, base, ok ? end - base : 0, seq);
		}
	}
	how = seq_check(e, m, ev, seq);
	if (how == SEQ_SKIP) {
		return;
	}
	if (!reg) {
		seq_done(e, m, how, seq, false);
		return;
	}
	if (type == CMT_MEM_RELEASE) {
		struct cmt_resv *r;

		if (reg->cur->base != base) {
			seq_done(e, m, how, seq, false);
			return;
		}
		r = remove_region(e, m, reg);
		history_push(e, m, seq, r, NULL, false);
		released_add(e, m, base);
		seq_done(e, m, how, seq, true);
		return;
	}
	if (size == 0) {
		first = 0;
		last = cmt_resv_npages(reg->cur);
	} else {
		ok = ok && page_range(reg, base, end, &first, &last);
	}
	ok = ok && change_range(e, m, reg, first, last, 0, seq);
	seq_done(e, m, how, seq, ok);
}

void cmt_vm_protect(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	uint64_t addr = ev->f[CMT_F_ADDRESS], size = ev->f[CMT_F_SIZE], seq = ev->f[CMT_F_SEQ];
	uint32_t protect = (uint32_t)ev->f[CMT_F_PROTECT];
	uint32_t old = (uint32_t)ev->f[CMT_F_OLD_PROTECT];
	uint64_t base = page_down(m, addr), end = base, first, last;
	struct cmt_region *reg = m->known ? cmt_vm_holder(m, base) : NULL;
	char a[CMT_NAME_MAX], b[CMT_NAME_MAX];
	bool ok;
	int how;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		if ((int32_t)ev->f[CMT_F_HR] == CMT_HR_INVALID_ADDRESS && reg) {
			cmt_anomaly(e, CMT_A_PROTECT_UNCOMMITTED, m, ev, addr, size,
				    "protect of %llu bytes of uncommitted pages",
				    (unsigned long long)size);
		}
		return;
	}
	if (cmt_protect_writable(old & 0xff) && !cmt_protect_executable(old & 0xff) &&
	    cmt_protect_executable(protect & 0xff)) {
		cmt_anomaly(e, CMT_A_W_TO_X_FLIP, m, ev, addr, size, "%s to %s",
			    cmt_protect_name(old, a), cmt_protect_name(protect, b));
	}
	ok = page_end(m, addr, size, &end);
	if (e->cfg.mode == CMT_MODE_TIMELINE) {
		cmt_timeline_row(e, ev, m, "protect", reg != NULL, reg ? reg->cur->base : 0, base,
				 ok ? end - base : 0, seq);
	}
	how = seq_check(e, m, ev, seq);
	if (how == SEQ_SKIP) {
		return;
	}
	if (ok && end == base) {
		/* A zero-length range at a page boundary changes nothing. */
		seq_done(e, m, how, seq, true);
		return;
	}
	ok = ok && reg && page_range(reg, base, end, &first, &last) &&
	     change_range(e, m, reg, first, last, committed_state(protect), seq);
	seq_done(e, m, how, seq, ok);
}

/* ---------- State dumps ---------- */

void cmt_vm_dump_begin(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	if (m->dump.active) {
		m->reasons |= CMT_R_DUMP_UNFINISHED;
	}
	m->dump.active = true;
	m->dump.seq = ev->f[CMT_F_SEQ];
	m->dump.time_ns = e->now;
	m->dump.tid = ev->tid;
	m->dump.n = 0;
	m->dump.nblocks = 0;
	m->dump_gen++;
	cmt_heap_dump_dropped(m);
	cmt_expose(e, m);
	if ((ev->spresent & (1u << CMT_S_NAME)) && !m->name) {
		size_t n = strnlen(ev->s[CMT_S_NAME], 256);

		m->name = malloc(n + 1);
		if (m->name) {
			memcpy(m->name, ev->s[CMT_S_NAME], n);
			m->name[n] = '\0';
		}
	}
}

void cmt_vm_dump_region(struct cmt_engine *e, struct cmt_manager *m,
			const struct cmt_event *ev)
{
	struct cmt_dump *d = &m->dump;
	struct cmt_dregion *r;

	if (e->cfg.mode == CMT_MODE_TIMELINE) {
		cmt_timeline_row(e, ev, m, "statedump", true, ev->f[CMT_F_ALLOCATION_BASE],
				 ev->f[CMT_F_BASE], ev->f[CMT_F_SIZE], d->active ? d->seq : 0);
	}
	if (!d->active) {
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct cmt_dregion *v;

		if (cap > MAX_DUMP_REGIONS) {
			m->reasons |= CMT_R_INCONSISTENT;
			d->active = false;
			return;
		}
		v = realloc(d->regions, cap * sizeof(*v));
		if (!v) {
			cmt_fail(e);
			d->active = false;
			return;
		}
		d->regions = v;
		d->cap = cap;
	}
	r = &d->regions[d->n++];
	r->base = ev->f[CMT_F_BASE];
	r->allocation_base = ev->f[CMT_F_ALLOCATION_BASE];
	r->size = ev->f[CMT_F_SIZE];
	r->state = (uint32_t)ev->f[CMT_F_STATE];
	r->protect = (uint32_t)ev->f[CMT_F_PROTECT];
	r->allocation_protect = (uint32_t)ev->f[CMT_F_ALLOCATION_PROTECT];
}

static int dregion_cmp(const void *a, const void *b)
{
	const struct cmt_dregion *x = a, *y = b;

	if (x->allocation_base != y->allocation_base) {
		return x->allocation_base < y->allocation_base ? -1 : 1;
	}
	if (x->base != y->base) {
		return x->base < y->base ? -1 : 1;
	}
	return 0;
}

/* The reservations a dump describes, sorted by base; NULL entries were unusable. */
static struct cmt_resv **dump_build(struct cmt_engine *e, struct cmt_manager *m, size_t *count)
{
	struct cmt_dump *d = &m->dump;
	struct cmt_resv **out = NULL;
	struct cmt_piece *pieces = NULL;
	uint64_t prev_end = 0;
	size_t i = 0, n = 0;

	*count = 0;
	if (d->n == 0) {
		return NULL;
	}
	qsort(d->regions, d->n, sizeof(*d->regions), dregion_cmp);
	out = calloc(d->n, sizeof(*out));
	pieces = malloc(d->n * sizeof(*pieces));
	if (!out || !pieces) {
		cmt_fail(e);
		free(out);
		free(pieces);
		return NULL;
	}
	while (i < d->n) {
		uint64_t ab = d->regions[i].allocation_base, end = ab;
		uint32_t ap = d->regions[i].allocation_protect, np = 0;
		bool bad = false;
		size_t j;

		for (j = i; j < d->n && d->regions[j].allocation_base == ab; j++) {
			const struct cmt_dregion *r = &d->regions[j];
			uint64_t rend, off;

			if (r->base < ab || __builtin_add_overflow(r->base, r->size, &rend)) {
				bad = true;
				continue;
			}
			if (rend > end) {
				end = rend;
			}
			off = rend - ab;
			pieces[np].first = (r->base - ab) >> m->shift;
			pieces[np].last = (off >> m->shift) +
					  ((off & (cmt_page_size(m) - 1)) != 0);
			pieces[np].state =
				r->state == CMT_MEM_COMMIT ? committed_state(r->protect) : 0;
			np++;
		}
		if (bad || end <= ab || ab == 0 || (n > 0 && ab < prev_end)) {
			m->reasons |= CMT_R_INCONSISTENT;
		} else {
			out[n] = cmt_resv_build(ab, end, ap, m->shift, pieces, np, e->now);
			if (!out[n]) {
				cmt_fail(e);
			} else {
				prev_end = end;
				n++;
			}
		}
		i = j;
	}
	free(pieces);
	*count = n;
	return out;
}

void cmt_vm_dump_end(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	struct cmt_resv **built;
	struct cmt_tnode *node;
	size_t n, i;

	if (!m->dump.active) {
		m->reasons |= CMT_R_INCONSISTENT;
		return;
	}
	built = dump_build(e, m, &n);
	if (e->failed) {
		for (i = 0; i < n; i++) {
			free(built[i]);
		}
		free(built);
		m->dump.active = false;
		return;
	}
	cmt_vm_history_clear(m);
	e->span_m = m;

	/* Reservations the dump no longer lists, or lists with another extent, went away. */
	i = 0;
	node = cmt_tree_first(&m->tree);
	while (node) {
		struct cmt_region *reg = container_of(node, struct cmt_region, node);
		struct cmt_tnode *next = cmt_tree_next(node);

		while (i < n && built[i]->base < reg->cur->base) {
			i++;
		}
		if (i < n && built[i]->base == reg->cur->base && built[i]->end == reg->cur->end &&
		    built[i]->alloc_protect == reg->cur->alloc_protect) {
			if (cmt_resv_same(reg->cur, built[i])) {
				/* Unchanged: keep the version (its runs' begin times). */
				free(built[i]);
				built[i] = NULL;
			} else {
				struct cmt_resv *old = reg->cur;

				cmt_vm_account(e, m, old, false);
				cmt_resv_end_all(old, e->now, e->sinkp);
				reg->cur = built[i];
				built[i] = NULL;
				cmt_vm_account(e, m, reg->cur, true);
				free(old);
			}
			i++;
		} else {
			free(remove_region(e, m, reg));
		}
		node = next;
	}
	for (i = 0; i < n; i++) {
		if (built[i] && !insert_region(e, m, built[i], m->dump.tid, false, 0)) {
			m->reasons |= CMT_R_INCONSISTENT;
		}
	}
	free(built);

	cmt_heap_dump_end(e, m);
	m->seq = ev->f[CMT_F_SEQ];
	m->floor = m->seq;
	m->awaiting = false;
	m->dumped = true;
	m->dump.active = false;
	m->dump.n = 0;
	m->dump.nblocks = 0;
	if (m->dump.cap > 1024) {
		free(m->dump.regions);
		m->dump.regions = NULL;
		m->dump.cap = 0;
	}
	if (m->dump.cap_blocks > 1024) {
		free(m->dump.blocks);
		m->dump.blocks = NULL;
		m->dump.cap_blocks = 0;
	}
	cmt_set_known(e, m, e->now);
	cmt_check_resolve(e, m);
}
