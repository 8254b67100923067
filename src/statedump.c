/* SPDX-License-Identifier: MIT */
/*
 * State dumps: what existed before a session started, so the session's own
 * events rebuild the state exactly (EVENTS.md, "State dumps").
 *
 * A manager's dump runs under its vm lock, so its reservations cannot change
 * between statedump_begin and statedump_end, and it carries the manager's
 * sequence number. Heap blocks are read while other threads may allocate and
 * free: an alloc or free event inside the dump window supersedes what the
 * dump says about that block (each block's own events are in order).
 *
 * A decorating manager holds no state of its own: its reservations are read
 * back from the inner manager, with no lock of ours held while it runs, so
 * its dump is as of the moment each run was read.
 */
#include "heap.h"
#include "hostmem.h"
#include "trace.h"
#include "vm.h"
#include "vmwrap.h"

#include <stdlib.h>

int clrmemtrace__dump_seen;
int clrmemtrace__request_seen;

static clrmemtrace_mutex registry_lock = CLRMEMTRACE_MUTEX_INIT;
static struct hostmem *registry;

void clrmemtrace__registry_add(struct hostmem *m)
{
	clrmemtrace_mutex_lock(&registry_lock);
	m->reg_prev = NULL;
	m->reg_next = registry;
	if (registry) {
		registry->reg_prev = m;
	}
	registry = m;
	clrmemtrace_mutex_unlock(&registry_lock);
}

void clrmemtrace__registry_remove(struct hostmem *m)
{
	clrmemtrace_mutex_lock(&registry_lock);
	if (m->reg_prev) {
		m->reg_prev->reg_next = m->reg_next;
	} else if (registry == m) {
		registry = m->reg_next;
	}
	if (m->reg_next) {
		m->reg_next->reg_prev = m->reg_prev;
	}
	m->reg_next = m->reg_prev = NULL;
	clrmemtrace_mutex_unlock(&registry_lock);
}

struct dump_ctx {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t regions;
};

static int count_run(void *ctx, const struct vm_run *run)
{
	(void)run;
	((struct dump_ctx *)ctx)->regions++;
	return 0;
}

static int emit_run(void *ctx, const struct vm_run *run)
{
	struct ctev_statedump_region ev = {
		.manager_id = ((struct dump_ctx *)ctx)->manager_id,
		.base = run->base,
		.allocation_base = run->allocation_base,
		.size = run->size,
		.state = run->state,
		.protect = run->protect,
		.allocation_protect = run->allocation_protect,
	};

	CLRMEMTRACE_TRACE(statedump_region, &ev);
	return 0;
}

static int count_block(void *ctx, void *ptr, size_t size)
{
	struct ctev_statedump_heap *ev = ctx;

	(void)ptr;
	ev->live_blocks++;
	ev->live_bytes += size;
	return 0;
}

static int emit_block(void *ctx, void *ptr, size_t size)
{
	const struct dump_ctx *d = ctx;
	struct ctev_statedump_block ev = {
		.manager_id = d->manager_id,
		.heap_id = d->heap_id,
		.ptr = (uintptr_t)ptr,
		.size = size,
	};

	CLRMEMTRACE_TRACE(statedump_block, &ev);
	return 0;
}

static int emit_wrapped_block(void *ctx, void *ptr, size_t size)
{
	return emit_block(ctx, ptr, size);
}

/* A decorating manager's runs, read back once from its inner manager. */
struct run_list {
	struct vm_run *runs;
	size_t count, capacity;
};

static int keep_run(void *ctx, const struct vm_run *run)
{
	struct run_list *l = ctx;

	if (l->count == l->capacity) {
		size_t c = l->capacity ? l->capacity * 2 : 64;
		struct vm_run *r = realloc(l->runs, c * sizeof(*r));

		if (!r) {
			return 1;
		}
		l->runs = r;
		l->capacity = c;
	}
	l->runs[l->count++] = *run;
	return 0;
}

/*
 * Dumps one manager; the caller holds a reference on it and no lock. The
 * manager's lock is held from the counts statedump_begin announces to the
 * last heap, so that heaps created or released meanwhile cannot make the
 * events that follow differ from them.
 */
static void dump_manager(struct hostmem *m)
{
	struct dump_ctx d = { .manager_id = m->id };
	struct ctev_statedump_begin begin = {
		.manager_id = m->id,
		.manager = (uintptr_t)&m->IHostMemoryManager_iface,
		.name = m->name ? m->name : "",
	};
	struct ctev_statedump_end end = { .manager_id = m->id };
	struct run_list wrapped = { 0 };
	struct hostmalloc *h;
	size_t i;

	if (!m->trace) {
		return;
	}
	if (m->wrap) {
		/*
		 * Read from the inner manager with no lock of ours held, once, so
		 * that the runs counted are the runs emitted. Without memory for
		 * them, no dump: the session sees the manager as unknown rather
		 * than wrong.
		 */
		if (clrmemtrace__vmwrap_foreach_run(m->wrap, keep_run, &wrapped)) {
			free(wrapped.runs);
			return;
		}
		d.regions = wrapped.count;
	} else {
		clrmemtrace__vm_lock(m->vm);
		clrmemtrace__vm_foreach_run(m->vm, count_run, &d);
	}
	clrmemtrace_mutex_lock(&m->lock);
	for (h = m->heaps; h; h = h->next) {
		begin.heaps++;
	}
	begin.seq = m->wrap ? clrmemtrace__vmwrap_seq(m->wrap) : clrmemtrace__vm_seq(m->vm);
	begin.regions = d.regions;
	CLRMEMTRACE_TRACE(statedump_begin, &begin);
	if (m->wrap) {
		for (i = 0; i < wrapped.count; i++) {
			emit_run(&d, &wrapped.runs[i]);
		}
	} else {
		clrmemtrace__vm_foreach_run(m->vm, emit_run, &d);
	}
	for (i = 0; i < m->vas_count; i++) {
		struct ctev_statedump_vas ev = {
			.manager_id = m->id,
			.address = m->vas[i].start,
			.size = m->vas[i].size,
		};

		CLRMEMTRACE_TRACE(statedump_vas, &ev);
	}
	for (h = m->heaps; h; h = h->next) {
		struct ctev_statedump_heap ev = {
			.manager_id = m->id,
			.heap_id = h->id,
			.heap = (uintptr_t)&h->IHostMalloc_iface,
			.malloc_type = h->type,
		};

		d.heap_id = h->id;
		if (h->inner) {
			clrmemtrace__blockset_foreach(h, count_block, &ev);
			CLRMEMTRACE_TRACE(statedump_heap, &ev);
			clrmemtrace__blockset_foreach(h, emit_wrapped_block, &d);
		} else {
			struct heap_stats stats;

			clrmemtrace__heap_lock_all(h->heap);
			clrmemtrace__heap_stats_locked(h->heap, &stats);
			ev.live_blocks = stats.live_blocks;
			ev.live_bytes = stats.live_bytes;
			CLRMEMTRACE_TRACE(statedump_heap, &ev);
			clrmemtrace__heap_foreach_live_locked(h->heap, emit_block, &d);
			clrmemtrace__heap_unlock_all(h->heap);
		}
	}
	clrmemtrace_mutex_unlock(&m->lock);
	end.seq = m->wrap ? clrmemtrace__vmwrap_seq(m->wrap) : clrmemtrace__vm_seq(m->vm);
	CLRMEMTRACE_TRACE(statedump_end, &end);
	if (!m->wrap) {
		clrmemtrace__vm_unlock(m->vm);
	}
	free(wrapped.runs);
}

/*
 * Dumps every live manager. The registry lock is held only to take a
 * reference on each: dumps run without it, so a decorating manager's inner
 * manager is never called with one of our locks held.
 */
static void dump_all(void)
{
	struct hostmem **list = NULL, *m;
	size_t n = 0, cap = 0, i;

	clrmemtrace_mutex_lock(&registry_lock);
	for (m = registry; m; m = m->reg_next) {
		uint32_t refs = __atomic_load_n(&m->refs, __ATOMIC_RELAXED);

		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct hostmem **l = realloc(list, c * sizeof(*l));

			if (!l) {
				break;
			}
			list = l;
			cap = c;
		}
		/* A manager whose last reference is gone is on its way out: skip it. */
		while (refs && !__atomic_compare_exchange_n(&m->refs, &refs, refs + 1, true,
							    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
		}
		if (refs) {
			list[n++] = m;
		}
	}
	clrmemtrace_mutex_unlock(&registry_lock);
	for (i = 0; i < n; i++) {
		dump_manager(list[i]);
		list[i]->IHostMemoryManager_iface.lpVtbl->Release(&list[i]->IHostMemoryManager_iface);
	}
	free(list);
}

/*
 * Serializes the decision to dump, so two threads seeing the same transition
 * dump once. The dump itself runs after it is released: a decorating
 * manager's inner manager must not be called with a lock of ours held.
 */
static clrmemtrace_mutex dump_lock = CLRMEMTRACE_MUTEX_INIT;

void clrmemtrace__statedump_transition(void)
{
	int dump = CLRMEMTRACE_TRACE_RECORDING(statedump_begin) ? 1 : 0;
	int request = CLRMEMTRACE_TRACE_RECORDING(statedump_request) ? 1 : 0;
	bool run;

	/*
	 * Enabled by a session that has not started yet: its dump waits until
	 * it has (emitted now, it would be dropped), and meanwhile calls get
	 * here without taking the lock.
	 */
	if (dump == __atomic_load_n(&clrmemtrace__dump_seen, __ATOMIC_RELAXED) &&
	    request == __atomic_load_n(&clrmemtrace__request_seen, __ATOMIC_RELAXED)) {
		return;
	}
	clrmemtrace_mutex_lock(&dump_lock);
	dump = CLRMEMTRACE_TRACE_RECORDING(statedump_begin) ? 1 : 0;
	request = CLRMEMTRACE_TRACE_RECORDING(statedump_request) ? 1 : 0;
	run = clrmemtrace__tracing && dump &&
	      (!clrmemtrace__dump_seen || (request && !clrmemtrace__request_seen));
	__atomic_store_n(&clrmemtrace__dump_seen, dump, __ATOMIC_RELAXED);
	__atomic_store_n(&clrmemtrace__request_seen, request, __ATOMIC_RELAXED);
	clrmemtrace_mutex_unlock(&dump_lock);
	if (run) {
		dump_all();
	}
}

HRESULT clrmemtrace_statedump(void)
{
	if (!clrmemtrace__tracing || !CLRMEMTRACE_TRACE_RECORDING(statedump_begin)) {
		return S_FALSE;
	}
	__atomic_store_n(&clrmemtrace__dump_seen, 1, __ATOMIC_RELAXED);
	dump_all();
	return S_OK;
}
