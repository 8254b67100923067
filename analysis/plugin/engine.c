/* SPDX-License-Identifier: MIT */
/*
 * The engine: dispatches decoded events to the files that rebuild the
 * state, and keeps what every event adds to the results (calls, failures,
 * latency, lists) and the totals every change moves.
 */
#include "os.h"
#include "state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cmt_anomaly_names[CMT_A_COUNT] = {
	[CMT_A_RWX_COMMIT] = "rwx_commit",
	[CMT_A_W_TO_X_FLIP] = "w_to_x_flip",
	[CMT_A_FREE_UNKNOWN] = "free_unknown",
	[CMT_A_DOUBLE_FREE] = "double_free",
	[CMT_A_COMMIT_OUTSIDE] = "commit_outside_reservation",
	[CMT_A_PROTECT_UNCOMMITTED] = "protect_uncommitted",
	[CMT_A_SEQ_REGRESSION] = "seq_regression",
};

/* ---------- Helpers ---------- */

void cmt_fail(struct cmt_engine *e)
{
	e->failed = true;
}

void *cmt_vec_push(struct cmt_engine *e, struct cmt_vec *v, size_t limit)
{
	if (v->n >= limit) {
		return NULL;
	}
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void *p;

		if (cap > limit) {
			cap = limit;
		}
		p = realloc(v->v, cap * v->elem);
		if (!p) {
			cmt_fail(e);
			return NULL;
		}
		v->v = p;
		v->cap = cap;
	}
	return (char *)v->v + v->elem * v->n++;
}

void cmt_vec_free(struct cmt_vec *v)
{
	free(v->v);
	v->v = NULL;
	v->n = v->cap = 0;
}

static char *copy_string(const char *s, size_t max)
{
	size_t n;
	char *c;

	if (!s) {
		s = "";
	}
	n = strnlen(s, max);
	c = malloc(n + 1);
	if (c) {
		memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

void cmt_anomaly(struct cmt_engine *e, enum cmt_anomaly_kind kind, struct cmt_manager *m,
		 const struct cmt_event *ev, uint64_t addr, uint64_t size, const char *fmt, ...)
{
	struct cmt_anomaly *a;
	va_list ap;

	e->anomaly_counts[kind]++;
	a = cmt_vec_push(e, &e->anomalies, e->cfg.max_details);
	if (!a) {
		return;
	}
	a->kind = kind;
	a->time_ns = e->now;
	a->vpid = m->proc->vpid;
	a->tid = ev->tid;
	a->manager_id = m->id;
	a->addr = addr;
	a->size = size;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof(a->detail), fmt, ap);
	va_end(ap);
}

/* ---------- Sites ---------- */

static uint64_t site_hash(const char *file, int64_t line)
{
	uint64_t h = cmt_fnv1a(file, strlen(file)) ^ (uint64_t)line * UINT64_C(0x9E3779B97F4A7C15);

	return h ? h : 1;
}

struct site_key {
	const struct cmt_sites *s;
	const char *file;
	int64_t line;
};

static bool same_site(const void *ctx, uint32_t id)
{
	const struct site_key *k = ctx;
	const struct cmt_site *site = &k->s->v[id];

	return site->line == k->line && strcmp(site->file, k->file) == 0;
}

/*
 * The site id of (file, line): 0 for ("", 0) and whenever the table is full
 * or memory runs out.
 */
uint32_t cmt_site_intern(struct cmt_engine *e, const char *file, int64_t line)
{
	struct cmt_sites *s = &e->sites;
	struct site_key key;
	uint64_t h;
	uint32_t i;
	bool found;

	if (!file) {
		file = "";
	}
	if (!*file && line == 0) {
		return 0;
	}
	if (cmt_hindex_room(&s->index, s->n, 1024) != 0) {
		cmt_fail(e);
		return 0;
	}
	key = (struct site_key){ s, file, line };
	h = site_hash(file, line);
	i = cmt_hindex_find(&s->index, h, same_site, &key, &found);
	if (found) {
		return s->index.ids[i];
	}
	if (s->n >= CMT_MAX_SITES) {
		return 0;
	}
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 64;
		struct cmt_site *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			cmt_fail(e);
			return 0;
		}
		s->v = v;
		s->cap = cap;
	}
	if (s->n == 0) {
		/* Site 0 is ("", 0). */
		s->v[0].file = copy_string("", 1);
		s->v[0].line = 0;
		if (!s->v[0].file) {
			cmt_fail(e);
			return 0;
		}
		s->n = 1;
	}
	s->v[s->n].file = copy_string(file, 4096);
	s->v[s->n].line = line;
	if (!s->v[s->n].file) {
		cmt_fail(e);
		return 0;
	}
	cmt_hindex_set(&s->index, i, h, s->n);
	return s->n++;
}

static void sites_fini(struct cmt_sites *s)
{
	uint32_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].file);
	}
	free(s->v);
	cmt_hindex_fini(&s->index);
	memset(s, 0, sizeof(*s));
}

/* ---------- Totals ---------- */

/*
 * Totals move as a change is applied; peaks and samples are taken once the
 * whole event is (settle()), so the steps inside an event never show.
 */
void cmt_add_reserved(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes)
{
	m->v.reserved += bytes;
	e->carried |= cmt_total_add(&m->proc->reserved, &m->proc->reserved_hi, bytes) |
		      cmt_total_add(&e->reserved, &e->reserved_hi, bytes);
}

void cmt_sub_reserved(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes)
{
	m->v.reserved -= bytes;
	e->carried |= cmt_total_sub(&m->proc->reserved, &m->proc->reserved_hi, bytes) |
		      cmt_total_sub(&e->reserved, &e->reserved_hi, bytes);
}

/* A manager's bytes of one protection: disjoint ranges, within 64 bits. */
static void manager_protect_move(struct cmt_engine *e, struct cmt_manager *m, uint32_t key,
				 uint64_t bytes, bool sub)
{
	uint32_t i;

	for (i = 0; i < m->nby_protect; i++) {
		if (m->by_protect[i].key == key) {
			if (sub) {
				m->by_protect[i].bytes -= bytes;
			} else {
				m->by_protect[i].bytes += bytes;
			}
			return;
		}
	}
	if (m->nby_protect == m->cap_by_protect) {
		uint32_t cap = m->cap_by_protect ? m->cap_by_protect * 2 : 4;
		struct cmt_protect_bytes *v = realloc(m->by_protect, cap * sizeof(*v));

		if (!v) {
			cmt_fail(e);
			return;
		}
		m->by_protect = v;
		m->cap_by_protect = cap;
	}
	m->by_protect[m->nby_protect].key = key;
	m->by_protect[m->nby_protect].bytes = sub ? 0 - bytes : bytes;
	m->nby_protect++;
}

static void committed_move(struct cmt_engine *e, struct cmt_manager *m, uint32_t key,
			   uint64_t bytes, bool sub)
{
	struct cmt_process *p = m->proc;
	uint32_t i;

	if (bytes == 0) {
		return;
	}
	key &= CMT_PROTECT_KEYS - 1;
	manager_protect_move(e, m, key, bytes, sub);
	if (sub) {
		m->v.committed -= bytes;
		e->carried |= cmt_total_sub(&p->committed, &p->committed_hi, bytes) |
			      cmt_total_sub(&e->committed, &e->committed_hi, bytes) |
			      cmt_total_sub(&e->by_protect[key], &e->by_protect_hi[key], bytes);
	} else {
		m->v.committed += bytes;
		e->carried |= cmt_total_add(&p->committed, &p->committed_hi, bytes) |
			      cmt_total_add(&e->committed, &e->committed_hi, bytes) |
			      cmt_total_add(&e->by_protect[key], &e->by_protect_hi[key], bytes);
	}
	if (!e->series || e->touched_all) {
		return;
	}
	for (i = 0; i < e->ntouched; i++) {
		if (e->touched[i] == key) {
			return;
		}
	}
	if (e->ntouched == CMT_TOUCHED_KEYS) {
		e->touched_all = true;
		return;
	}
	e->touched[e->ntouched++] = key;
}

void cmt_add_committed(struct cmt_engine *e, struct cmt_manager *m, uint32_t key, uint64_t bytes)
{
	committed_move(e, m, key, bytes, false);
}

void cmt_sub_committed(struct cmt_engine *e, struct cmt_manager *m, uint32_t key, uint64_t bytes)
{
	committed_move(e, m, key, bytes, true);
}

void cmt_add_heap_live(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes)
{
	e->carried |= cmt_total_add(&m->h.live_bytes, &m->h.live_hi, bytes) |
		      cmt_total_add(&m->proc->heap_live, &m->proc->heap_live_hi, bytes) |
		      cmt_total_add(&e->heap_live, &e->heap_live_hi, bytes);
}

void cmt_sub_heap_live(struct cmt_engine *e, struct cmt_manager *m, uint64_t bytes, int64_t hi)
{
	e->carried |= cmt_total_sub(&m->h.live_bytes, &m->h.live_hi, bytes) |
		      cmt_total_sub(&m->proc->heap_live, &m->proc->heap_live_hi, bytes) |
		      cmt_total_sub(&e->heap_live, &e->heap_live_hi, bytes);
	if (hi) {
		m->h.live_hi -= hi;
		m->proc->heap_live_hi -= hi;
		e->heap_live_hi -= hi;
		e->carried = true;
	}
}

/*
 * A manager's reserved and committed bytes always fit; its heap's live bytes,
 * its process's sums and the trace's may not. The trace's totals bound every
 * other (committed bytes by protection included), so when they fit, all do.
 */
void cmt_check_totals(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_process *p = m->proc;

	if (m->h.live_hi) {
		m->reasons |= CMT_R_TOTALS;
	}
	if (p->reserved_hi || p->committed_hi || p->heap_live_hi) {
		p->totals_out = true;
	}
	if (e->reserved_hi || e->committed_hi || e->heap_live_hi) {
		e->totals_out = true;
	}
}

static void peak(uint64_t *peak, uint64_t value)
{
	if (value > *peak) {
		*peak = value;
	}
}

static void sample_protect(struct cmt_engine *e, uint32_t key)
{
	struct cmt_series *s = e->series;
	uint64_t bytes = cmt_total_shown(e->by_protect[key], e->by_protect_hi[key]);

	if (!s->by_protect[key]) {
		if (!bytes) {
			return;
		}
		s->by_protect[key] = cmt_sampler_new(e);
		if (!s->by_protect[key]) {
			return;
		}
	}
	cmt_sampler_set(e, s->by_protect[key], bytes);
}

/* After an event of m: the peaks, and the counters' samples. */
static void settle(struct cmt_engine *e, struct cmt_manager *m)
{
	struct cmt_process *p = m->proc;
	uint64_t reserved = cmt_total_shown(e->reserved, e->reserved_hi);
	uint64_t committed = cmt_total_shown(e->committed, e->committed_hi);
	uint64_t heap_live = cmt_total_shown(e->heap_live, e->heap_live_hi);
	uint32_t i;

	if (e->carried) {
		cmt_check_totals(e, m);
	}
	peak(&m->v.peak_reserved, m->v.reserved);
	peak(&m->v.peak_committed, m->v.committed);
	peak(&m->h.peak_live_bytes, cmt_total_shown(m->h.live_bytes, m->h.live_hi));
	peak(&e->peak_reserved, reserved);
	peak(&e->peak_committed, committed);
	peak(&e->peak_heap_live, heap_live);
	if (e->series) {
		cmt_sampler_set(e, &e->series->reserved, reserved);
		cmt_sampler_set(e, &e->series->committed, committed);
		cmt_sampler_set(e, &e->series->heap, heap_live);
		if (e->touched_all) {
			for (i = 0; i < CMT_PROTECT_KEYS; i++) {
				sample_protect(e, i);
			}
		} else {
			for (i = 0; i < e->ntouched; i++) {
				sample_protect(e, e->touched[i]);
			}
		}
		e->ntouched = 0;
		e->touched_all = false;
	}
	if (p->s_reserved) {
		cmt_sampler_set(e, p->s_reserved, cmt_total_shown(p->reserved, p->reserved_hi));
	}
	if (p->s_committed) {
		cmt_sampler_set(e, p->s_committed, cmt_total_shown(p->committed, p->committed_hi));
	}
	if (p->s_heap) {
		cmt_sampler_set(e, p->s_heap, cmt_total_shown(p->heap_live, p->heap_live_hi));
	}
}

/* ---------- Known and unknown states ---------- */

static void open_window(struct cmt_engine *e, struct cmt_manager *m, int64_t t)
{
	m->window_open = true;
	if (m->nwindows >= e->cfg.max_details) {
		return;
	}
	if (m->nwindows == m->cap_windows) {
		uint32_t cap = m->cap_windows ? m->cap_windows * 2 : 2;
		struct cmt_window *w = realloc(m->windows, cap * sizeof(*w));

		if (!w) {
			cmt_fail(e);
			return;
		}
		m->windows = w;
		m->cap_windows = cap;
	}
	m->windows[m->nwindows].begin_ns = t;
	m->windows[m->nwindows].end_ns = INT64_MIN;
	m->nwindows++;
}

static void close_window(struct cmt_manager *m, int64_t t)
{
	if (!m->window_open) {
		return;
	}
	m->window_open = false;
	if (m->nwindows && m->windows[m->nwindows - 1].end_ns == INT64_MIN) {
		struct cmt_window *w = &m->windows[m->nwindows - 1];

		/* A notice can be later than the events after it (or without time). */
		w->end_ns = t < w->begin_ns ? w->begin_ns : t;
	}
}

static void drop_dump(struct cmt_manager *m)
{
	m->dump.active = false;
	m->dump.n = 0;
	m->dump.nblocks = 0;
	cmt_heap_dump_dropped(m);
}

void cmt_set_unknown(struct cmt_engine *e, struct cmt_manager *m, int64_t t, uint32_t reason)
{
	m->reasons |= reason;
	if (reason & (CMT_R_DISCARDED | CMT_R_SEQ_GAP)) {
		/* Heap events may have been lost too. */
		cmt_heap_mark_unknown(m);
	}
	if ((reason & CMT_R_DISCARDED) && m->dump.active) {
		/* The dump itself may have lost events: wait for the next one. */
		drop_dump(m);
	}
	if (m->known) {
		m->known = false;
		cmt_vm_history_clear(m);
		cmt_check_abandon(e, m);
	}
	if (!m->window_open) {
		open_window(e, m, t);
	}
}

void cmt_expose(struct cmt_engine *e, struct cmt_manager *m)
{
	if (!m->exposed) {
		m->exposed = true;
		m->exposed_next = e->exposed;
		e->exposed = m;
	}
}

void cmt_set_known(struct cmt_engine *e, struct cmt_manager *m, int64_t t)
{
	m->known = true;
	close_window(m, t);
	cmt_expose(e, m);
}

/* ---------- Processes and managers ---------- */

static struct cmt_process *get_process(struct cmt_engine *e, const struct cmt_event *ev)
{
	uint64_t vpid = ev->has_vpid ? ev->vpid : 0;
	struct cmt_process *p = e->last_proc;

	if (p && p->vpid == vpid) {
		goto found;
	}
	p = cmt_map_get(&e->procs, vpid);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			cmt_fail(e);
			return NULL;
		}
		p->vpid = vpid;
		if (cmt_map_put(&e->procs, vpid, p) != 0) {
			free(p);
			cmt_fail(e);
			return NULL;
		}
		if (e->cfg.mode == CMT_MODE_PERFETTO) {
			p->s_reserved = cmt_sampler_new(e);
			p->s_committed = cmt_sampler_new(e);
			p->s_heap = cmt_sampler_new(e);
		}
	}
	e->last_proc = p;
found:
	if (!ev->has_vpid) {
		p->no_vpid = true;
	}
	if (!p->procname && ev->procname) {
		p->procname = copy_string(ev->procname, 256);
	}
	return p;
}

static struct cmt_manager *get_manager(struct cmt_engine *e, struct cmt_process *p,
				       const struct cmt_event *ev)
{
	uint64_t id = ev->f[CMT_F_MANAGER_ID];
	struct cmt_manager *m = p->last;

	if (m && m->id == id) {
		return m;
	}
	m = cmt_map_get(&p->managers, id);
	if (m) {
		p->last = m;
		return m;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		cmt_fail(e);
		return NULL;
	}
	m->id = id;
	m->proc = p;
	m->shift = 12;
	m->order = e->nmanagers++;
	if (cmt_map_put(&p->managers, id, m) != 0) {
		free(m);
		cmt_fail(e);
		return NULL;
	}
	p->nmanagers++;
	p->last = m;
	if (ev->type != CMT_EV_MANAGER_CREATE) {
		/*
		 * Not seen from its creation: it is observed from its first dump on
		 * (analysis/README.md, "Managers first seen before their dump"). A
		 * lost-events notice before then still concerns it.
		 */
		m->awaiting = true;
		m->late = ev->type != CMT_EV_STATEDUMP_BEGIN;
		m->first_ns = e->now;
		cmt_expose(e, m);
	}
	return m;
}

/*
 * A manager whose first dump never came (before the trace ended at `t`, or a
 * new lifetime began): its state was unknown all along.
 */
static void never_dumped(struct cmt_engine *e, struct cmt_manager *m, int64_t t, bool ended)
{
	m->awaiting = false;
	cmt_heap_awaited(m);
	m->reasons |= m->late ? CMT_R_FIRST_SEEN_LATE : CMT_R_DUMP_UNFINISHED;
	open_window(e, m, m->first_ns);
	if (!ended) {
		close_window(m, t);
	}
}

/* Events of a manager awaiting its first dump were lost: its calls may be missing. */
static void awaiting_lost(struct cmt_engine *e, struct cmt_manager *m)
{
	m->reasons |= CMT_R_DISCARDED;
	if (m->dump.active) {
		drop_dump(m);
	}
	/* All it held were the heaps its dropped dump's events made. */
	cmt_heap_destroy_all(e, m);
	/* The frees it remembered may have been followed by lost allocs. */
	cmt_heap_awaited(m);
}

static void manager_destroy(struct cmt_engine *e, struct cmt_manager *m)
{
	cmt_os_fini(m);
	cmt_vm_fini(m);
	cmt_check_fini(m);
	cmt_heap_fini(m);
	cmt_map_fini(&m->released);
	cmt_map_fini(&m->dump_destroyed);
	free(m->by_protect);
	free(m->windows);
	free(m->dump.regions);
	free(m->dump.blocks);
	free(m->name);
	(void)e;
	free(m);
}

static uint32_t page_shift(uint64_t page_size)
{
	if (page_size < 512 || page_size > (UINT64_C(1) << 30) ||
	    (page_size & (page_size - 1)) != 0) {
		return 12;
	}
	return (uint32_t)__builtin_ctzll(page_size);
}

static void on_manager_create(struct cmt_engine *e, struct cmt_manager *m,
			      const struct cmt_event *ev)
{
	if (m->awaiting) {
		/* Events of an earlier lifetime (the process ran exec), never dumped. */
		never_dumped(e, m, e->now, false);
	}
	if (m->known || m->v.regions || m->heaps.count || m->window_open || m->dump.active) {
		/* A new lifetime with the same id (the process ran exec): start over. */
		cmt_vm_drop_all(e, m);
		cmt_heap_destroy_all(e, m);
		cmt_check_abandon(e, m);
		cmt_vm_history_clear(m);
		drop_dump(m);
	}
	m->destroyed = false;
	m->shift = (ev->present & (UINT64_C(1) << CMT_F_PAGE_SIZE))
			   ? page_shift(ev->f[CMT_F_PAGE_SIZE])
			   : 12;
	if (ev->spresent & (1u << CMT_S_NAME)) {
		char *name = copy_string(ev->s[CMT_S_NAME], 256);

		if (name) {
			free(m->name);
			m->name = name;
		}
	}
	m->seq = 0;
	m->floor = 0;
	cmt_set_known(e, m, e->now);
}

/*
 * The manager's last Release reports what the runtime left mapped: a known
 * state that disagrees was rebuilt wrong.
 */
static void on_manager_destroy(struct cmt_manager *m, const struct cmt_event *ev)
{
	const uint64_t all = (UINT64_C(1) << CMT_F_REGIONS) |
			     (UINT64_C(1) << CMT_F_RESERVED_BYTES) |
			     (UINT64_C(1) << CMT_F_COMMITTED_BYTES);

	m->destroyed = true;
	if (m->known && !m->dump.active && (ev->present & all) == all &&
	    (ev->f[CMT_F_REGIONS] != m->v.regions || ev->f[CMT_F_RESERVED_BYTES] != m->v.reserved ||
	     ev->f[CMT_F_COMMITTED_BYTES] != m->v.committed)) {
		m->reasons |= CMT_R_INCONSISTENT;
	}
}

/* ---------- Calls ---------- */

static void call_addr_size(const struct cmt_event *ev, uint64_t *addr, uint64_t *size)
{
	*addr = 0;
	*size = 0;
	switch (ev->type) {
	case CMT_EV_VIRTUAL_ALLOC:
	case CMT_EV_VIRTUAL_FREE:
	case CMT_EV_VIRTUAL_PROTECT:
	case CMT_EV_VAS_NEEDS:
	case CMT_EV_VAS_ACQUIRED:
	case CMT_EV_VAS_RELEASED:
		*addr = ev->f[CMT_F_ADDRESS];
		*size = ev->f[CMT_F_SIZE];
		break;
	case CMT_EV_VIRTUAL_QUERY:
		*addr = ev->f[CMT_F_ADDRESS];
		*size = ev->f[CMT_F_LENGTH];
		break;
	case CMT_EV_MALLOC_ALLOC:
	case CMT_EV_MALLOC_FREE:
		*addr = ev->f[CMT_F_PTR];
		*size = ev->f[CMT_F_SIZE];
		break;
	default:
		break;
	}
}

void cmt_failed_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev,
		     int32_t err, uint64_t addr, uint64_t size)
{
	struct cmt_failure *f;

	e->failed_calls++;
	m->v.failed++;
	f = cmt_vec_push(e, &e->failures, e->cfg.max_details);
	if (f) {
		f->time_ns = e->now;
		f->vpid = m->proc->vpid;
		f->tid = ev->tid;
		f->manager_id = m->id;
		f->hr = err;
		f->type = ev->type;
		f->addr = addr;
		f->size = size;
	}
}

static void on_call(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev)
{
	int32_t hr = (int32_t)ev->f[CMT_F_HR];
	struct cmt_hist *h = e->latency[ev->type];

	e->calls[ev->type]++;
	m->v.calls[ev->type]++;
	if (ev->f[CMT_F_DURATION]) {
		if (!h) {
			h = e->latency[ev->type] = malloc(sizeof(*h));
			if (h) {
				cmt_hist_init(h);
			} else {
				cmt_fail(e);
			}
		}
		if (h) {
			cmt_hist_add(h, ev->f[CMT_F_DURATION]);
		}
	}
	if (hr != CMT_S_OK) {
		uint64_t addr, size;

		call_addr_size(ev, &addr, &size);
		cmt_failed_call(e, m, ev, hr, addr, size);
	}
}

static void on_memory_load(struct cmt_engine *e, struct cmt_manager *m,
			   const struct cmt_event *ev)
{
	struct cmt_memload *l;

	if ((int32_t)ev->f[CMT_F_HR] != CMT_S_OK) {
		return;
	}
	l = cmt_vec_push(e, &e->memloads, e->cfg.max_details);
	if (l) {
		l->time_ns = e->now;
		l->vpid = m->proc->vpid;
		l->load = ev->f[CMT_F_LOAD];
		l->available = ev->f[CMT_F_AVAILABLE];
	}
}

static void on_notification(struct cmt_engine *e, struct cmt_manager *m,
			    const struct cmt_event *ev)
{
	struct cmt_notification *n = cmt_vec_push(e, &e->notifications, e->cfg.max_details);

	if (!n) {
		return;
	}
	n->time_ns = e->now;
	n->vpid = m->proc->vpid;
	n->manager_id = m->id;
	n->load = ev->f[CMT_F_LOAD];
	n->level = (int64_t)ev->f[CMT_F_LEVEL];
	n->hr = (int32_t)ev->f[CMT_F_HR];
	n->reason = copy_string((ev->spresent & (1u << CMT_S_REASON)) ? ev->s[CMT_S_REASON] : "",
				1024);
	if (!n->reason) {
		cmt_fail(e);
		e->notifications.n--;
	}
}

/* ---------- The engine ---------- */

struct cmt_engine *cmt_engine_create(const struct cmt_config *cfg, struct cmt_out *out)
{
	struct cmt_engine *e = calloc(1, sizeof(*e));
	int i;

	if (!e) {
		return NULL;
	}
	e->cfg = *cfg;
	if (e->cfg.points == 0) {
		e->cfg.points = 1;
	}
	e->out = out;
	e->mismatches.elem = sizeof(struct cmt_mismatch);
	e->anomalies.elem = sizeof(struct cmt_anomaly);
	e->failures.elem = sizeof(struct cmt_failure);
	e->memloads.elem = sizeof(struct cmt_memload);
	e->notifications.elem = sizeof(struct cmt_notification);
	for (i = 0; i < CMT_EV_COUNT; i++) {
		e->required[i] = cmt_event_required_mask((enum cmt_ev_type)i);
		e->srequired[i] = cmt_event_required_smask((enum cmt_ev_type)i);
	}
	if (cfg->mode == CMT_MODE_SERIES || cfg->mode == CMT_MODE_PERFETTO) {
		e->series = cmt_series_create(e->cfg.points);
		if (!e->series) {
			free(e);
			return NULL;
		}
	}
	if (cfg->mode == CMT_MODE_SERIES) {
		e->sink.ended = cmt_span_ended;
		e->sink.ctx = e;
		e->sinkp = &e->sink;
	}
	if (cfg->mode == CMT_MODE_TIMELINE) {
		cmt_timeline_header(e);
	} else if (cfg->mode == CMT_MODE_PERFETTO) {
		cmt_perfetto_head(e);
	}
	return e;
}

bool cmt_engine_done(const struct cmt_engine *e)
{
	return e->done;
}

bool cmt_engine_failed(const struct cmt_engine *e)
{
	return e->failed;
}

void cmt_engine_event(struct cmt_engine *e, const struct cmt_event *ev)
{
	struct cmt_process *p;
	struct cmt_manager *m;
	int64_t t;

	if (ev->type == CMT_EV_FOREIGN || e->done) {
		return;
	}
	e->events++;
	if (ev->has_time) {
		t = ev->time_ns;
	} else {
		e->no_time++;
		t = e->have_time ? e->end_ns : 0;
	}
	if (e->cfg.mode == CMT_MODE_MAP && t > e->cfg.at_ns) {
		/* The map describes the state after every event up to `at`. */
		cmt_write_map(e);
		e->done = true;
		return;
	}
	if (!e->have_time) {
		e->have_time = true;
		e->begin_ns = t;
		e->end_ns = t;
	}
	if (t > e->end_ns) {
		e->end_ns = t;
	}
	e->now = t > e->end_ns ? e->end_ns : t;
	if (ev->type == CMT_EV_UNKNOWN) {
		e->unknown_events++;
		return;
	}
	if ((ev->present & e->required[ev->type]) != e->required[ev->type] ||
	    (ev->spresent & e->srequired[ev->type]) != e->srequired[ev->type] ||
	    (!cmt_event_is_os(ev->type) && ev->f[CMT_F_MANAGER_ID] == CMT_OS_MANAGER_ID)) {
		/* Manager 0 is the mmap view's: the library never numbers a manager 0. */
		e->malformed[ev->type]++;
		return;
	}
	if (e->series) {
		cmt_series_advance(e, t);
	}
	if (!ev->has_vpid) {
		e->no_vpid++;
	}
	p = get_process(e, ev);
	if (!p) {
		return;
	}
	if (cmt_event_is_os(ev->type)) {
		m = cmt_os_manager(e, p, ev);
		if (m) {
			cmt_os_event(e, m, ev);
			settle(e, m);
		}
		return;
	}
	m = get_manager(e, p, ev);
	if (!m) {
		return;
	}
	if (cmt_events[ev->type].call) {
		on_call(e, m, ev);
	}
	switch (ev->type) {
	case CMT_EV_MANAGER_CREATE:
		on_manager_create(e, m, ev);
		break;
	case CMT_EV_MANAGER_DESTROY:
		on_manager_destroy(m, ev);
		break;
	case CMT_EV_VIRTUAL_ALLOC:
		cmt_vm_alloc(e, m, ev);
		break;
	case CMT_EV_VIRTUAL_FREE:
		cmt_vm_free(e, m, ev);
		break;
	case CMT_EV_VIRTUAL_PROTECT:
		cmt_vm_protect(e, m, ev);
		break;
	case CMT_EV_VIRTUAL_QUERY:
		cmt_check_query(e, m, ev);
		break;
	case CMT_EV_MEMORY_LOAD:
		on_memory_load(e, m, ev);
		break;
	case CMT_EV_MEMORY_NOTIFICATION:
		on_notification(e, m, ev);
		break;
	case CMT_EV_MALLOC_CREATE:
	case CMT_EV_MALLOC_ALLOC:
	case CMT_EV_MALLOC_FREE:
	case CMT_EV_MALLOC_DESTROY:
	case CMT_EV_STATEDUMP_HEAP:
	case CMT_EV_STATEDUMP_BLOCK:
		cmt_heap_event(e, m, ev);
		break;
	case CMT_EV_STATEDUMP_BEGIN:
		cmt_vm_dump_begin(e, m, ev);
		break;
	case CMT_EV_STATEDUMP_REGION:
		cmt_vm_dump_region(e, m, ev);
		break;
	case CMT_EV_STATEDUMP_END:
		cmt_vm_dump_end(e, m, ev);
		break;
	default:
		/* Calls that change no state: counted above. */
		break;
	}
	settle(e, m);
}

void cmt_engine_discarded(struct cmt_engine *e, bool packets, bool has_count, uint64_t count,
			  bool has_time, int64_t begin_ns)
{
	int64_t t = has_time ? begin_ns : (e->have_time ? e->end_ns : 0);
	struct cmt_manager *m, *next;

	if (e->done) {
		return;
	}
	if (packets) {
		e->discarded_packets++;
	} else {
		e->discarded_notices++;
		if (has_count) {
			e->discarded_events += count;
		} else {
			e->discarded_uncounted++;
		}
	}
	/*
	 * Only managers with something known can lose it: the others are
	 * already unknown and incomplete. Each is on the list once until a
	 * notice empties it, so a notice costs what the events since the last
	 * one made known.
	 */
	for (m = e->exposed; m; m = next) {
		next = m->exposed_next;
		m->exposed = false;
		m->exposed_next = NULL;
		if (m->awaiting) {
			awaiting_lost(e, m);
		} else {
			cmt_set_unknown(e, m, t, CMT_R_DISCARDED);
		}
	}
	e->exposed = NULL;
}

void cmt_engine_finish(struct cmt_engine *e)
{
	uint32_t i, j;

	if (e->done) {
		return;
	}
	/* Queries still waiting for their changes cannot be checked now. */
	for (i = 0; i < e->procs.cap; i++) {
		struct cmt_process *p = e->procs.slots[i].val;

		if (!p) {
			continue;
		}
		for (j = 0; j < p->managers.cap; j++) {
			struct cmt_manager *m = p->managers.slots[j].val;

			if (!m) {
				continue;
			}
			cmt_check_abandon(e, m);
			if (m->dump.active) {
				m->reasons |= CMT_R_DUMP_UNFINISHED;
				m->dump.active = false;
			}
			if (m->awaiting) {
				never_dumped(e, m, e->end_ns, true);
			}
			cmt_check_totals(e, m);
		}
	}
	switch (e->cfg.mode) {
	case CMT_MODE_SUMMARY:
		cmt_write_summary(e);
		break;
	case CMT_MODE_TIMELINE:
		break;
	case CMT_MODE_MAP:
		cmt_write_map(e);
		break;
	case CMT_MODE_SERIES:
		cmt_series_advance(e, e->end_ns);
		cmt_write_series(e);
		break;
	case CMT_MODE_PERFETTO:
		cmt_series_advance(e, e->end_ns);
		cmt_write_perfetto_tail(e);
		break;
	}
	e->done = true;
}

void cmt_engine_destroy(struct cmt_engine *e)
{
	uint32_t i, j;
	size_t k;

	if (!e) {
		return;
	}
	for (i = 0; i < e->procs.cap; i++) {
		struct cmt_process *p = e->procs.slots[i].val;

		if (!p) {
			continue;
		}
		for (j = 0; j < p->managers.cap; j++) {
			struct cmt_manager *m = p->managers.slots[j].val;

			if (m) {
				manager_destroy(e, m);
			}
		}
		cmt_map_fini(&p->managers);
		free(p->procname);
		free(p);
	}
	cmt_map_fini(&e->procs);
	for (i = 0; i < CMT_EV_COUNT; i++) {
		free(e->latency[i]);
	}
	for (k = 0; k < e->notifications.n; k++) {
		free(((struct cmt_notification *)e->notifications.v)[k].reason);
	}
	cmt_vec_free(&e->mismatches);
	cmt_vec_free(&e->anomalies);
	cmt_vec_free(&e->failures);
	cmt_vec_free(&e->memloads);
	cmt_vec_free(&e->notifications);
	sites_fini(&e->sites);
	cmt_series_destroy(e->series);
	free(e);
}
