/* SPDX-License-Identifier: MIT */
/*
 * IHostMalloc: a heap handed out by IHostMemoryManager::CreateMalloc, on the
 * heap backend (heap.h). The heap keeps a reference on its manager and sits
 * on the manager's list of heaps, which state dumps walk.
 *
 * Events of successful allocations and frees are emitted by the backend's
 * callback while the calling thread still owns the block, so a block's
 * malloc_alloc always precedes its malloc_free in the trace.
 */
#include "heap.h"
#include "hostmem.h"
#include "policy.h"
#include "trace.h"
#include "unknown.h"

#include <stdlib.h>

static inline struct hostmalloc *impl_from_IHostMalloc(IHostMalloc *iface)
{
	return container_of(iface, struct hostmalloc, IHostMalloc_iface);
}

static bool tracing(const struct hostmalloc *h)
{
	return h->trace;
}

static HRESULT STDMETHODCALLTYPE hostmalloc_QueryInterface(IHostMalloc *iface, REFIID riid,
							   void **ppv)
{
	return clrmemtrace__unknown_query(iface, &impl_from_IHostMalloc(iface)->refs,
					  &IID_IHostMalloc, riid, ppv);
}

static ULONG STDMETHODCALLTYPE hostmalloc_AddRef(IHostMalloc *iface)
{
	return clrmemtrace__unknown_addref(&impl_from_IHostMalloc(iface)->refs);
}

static int count_block(void *ctx, void *ptr, size_t size)
{
	struct ctev_malloc_destroy *ev = ctx;

	(void)ptr;
	ev->live_blocks++;
	ev->live_bytes += size;
	return 0;
}

static void blockset_free(struct blockset *b);
static void blockset_add(struct blockset *b, void *ptr, uint64_t size);
static bool blockset_take(struct blockset *b, void *ptr, uint64_t *size,
			  void (*then)(void *ctx, uint64_t size), void *ctx);

static ULONG STDMETHODCALLTYPE hostmalloc_Release(IHostMalloc *iface)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);
	struct hostmem *m = h->manager;
	ULONG left;

	if (!clrmemtrace__unknown_release(&h->refs, &left)) {
		return left;
	}
	clrmemtrace__trace_sync();
	clrmemtrace_mutex_lock(&m->lock);
	if (h->prev) {
		h->prev->next = h->next;
	} else {
		m->heaps = h->next;
	}
	if (h->next) {
		h->next->prev = h->prev;
	}
	clrmemtrace_mutex_unlock(&m->lock);
	if (tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_destroy)) {
		struct ctev_malloc_destroy ev = { .manager_id = m->id, .heap_id = h->id };

		if (h->inner) {
			clrmemtrace__blockset_foreach(h, count_block, &ev);
		} else {
			struct heap_stats stats;

			clrmemtrace__heap_stats(h->heap, &stats);
			ev.live_blocks = stats.live_blocks;
			ev.live_bytes = stats.live_bytes;
		}
		CLRMEMTRACE_TRACE(malloc_destroy, &ev);
	}
	if (h->inner) {
		h->inner->lpVtbl->Release(h->inner);
		blockset_free(h->live);
	} else {
		clrmemtrace__heap_destroy(h->heap);
	}
	free(h);
	m->IHostMemoryManager_iface.lpVtbl->Release(&m->IHostMemoryManager_iface);
	return 0;
}

/* The event of a traced call, filled in step by step. */
struct alloc_trace {
	struct ctev_malloc_alloc ev;
	uint64_t t0;
};

static void emit_alloc(struct alloc_trace *t)
{
	t->ev.duration_ns = t->t0 ? clrmemtrace__now_ns() - t->t0 : 0;
	CLRMEMTRACE_TRACE(malloc_alloc, &t->ev);
}

/* Backend callback: the block is allocated and not yet returned to the caller. */
static void on_alloc(void *ctx, void *ptr, size_t size)
{
	struct alloc_trace *t = ctx;

	(void)size;
	t->ev.ptr = (uintptr_t)ptr;
	t->ev.hr = S_OK;
	emit_alloc(t);
}

/* The event of an allocation, but for its outcome (ptr, hr, reason). */
static struct ctev_malloc_alloc alloc_event(const struct hostmalloc *h, SIZE_T cbSize,
					    EMemoryCriticalLevel level, const char *file, int line)
{
	return (struct ctev_malloc_alloc){
		.manager_id = h->manager->id,
		.heap_id = h->id,
		.size = cbSize,
		.level = (int32_t)level,
		.file = file ? file : "",
		.line = line,
		.reason = "",
	};
}

/* Decorating: the inner heap allocates; the block is remembered with its size. */
static HRESULT wrapped_alloc(struct hostmalloc *h, SIZE_T cbSize, EMemoryCriticalLevel level,
			     const char *file, int line, bool debug, void **ppMem)
{
	struct alloc_trace t;
	HRESULT hr;

	t.t0 = tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_alloc) ? clrmemtrace__now_ns() : 0;
	if (debug) {
		hr = h->inner->lpVtbl->DebugAlloc(h->inner, cbSize, level, (char *)file, line, ppMem);
	} else {
		hr = h->inner->lpVtbl->Alloc(h->inner, cbSize, level, ppMem);
	}
	if (hr == S_OK && ppMem && *ppMem) {
		blockset_add(h->live, *ppMem, cbSize);
	}
	if (tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_alloc)) {
		t.ev = alloc_event(h, cbSize, level, file, line);
		t.ev.hr = hr;
		t.ev.ptr = hr == S_OK && ppMem ? (uintptr_t)*ppMem : 0;
		emit_alloc(&t);
	}
	return hr;
}

/* An allocation whose event is recorded, or any allocation of a decorating heap. */
static __attribute__((noinline, cold)) HRESULT alloc_traced(struct hostmalloc *h, SIZE_T cbSize,
							  EMemoryCriticalLevel level,
							  const char *file, int line,
							  void **ppMem)
{
	struct alloc_trace t;
	HRESULT hr;

	if (h->inner) {
		return wrapped_alloc(h, cbSize, level, file, line, false, ppMem);
	}
	t.t0 = clrmemtrace__now_ns();
	t.ev = alloc_event(h, cbSize, level, file, line);
	if (!ppMem) {
		hr = E_POINTER;
	} else if ((*ppMem = NULL, (unsigned)level > (unsigned)eProcessCritical)) {
		hr = E_INVALIDARG;
	} else {
		int err = clrmemtrace__heap_alloc(h->heap, cbSize, (int)level, ppMem, on_alloc, &t);

		hr = clrmemtrace__hresult(err);
		if (hr == S_OK) {
			return hr; /* on_alloc emitted the event */
		}
		t.ev.reason = clrmemtrace__policy_reason(err);
	}
	t.ev.hr = hr;
	emit_alloc(&t);
	return hr;
}

/*
 * An untraced allocation during which recording started: traced now, after
 * the block is allocated and before it is returned, with duration_ns 0. A
 * session's state dump may have read the heap before or after the block
 * was taken; either way the event follows what the dump saw.
 */
static __attribute__((noinline, cold)) void alloc_late(struct hostmalloc *h, SIZE_T cbSize,
						       EMemoryCriticalLevel level, const char *file,
						       int line, void *ptr, int err)
{
	struct alloc_trace t = { .t0 = 0 };

	t.ev = alloc_event(h, cbSize, level, file, line);
	t.ev.ptr = (uintptr_t)ptr;
	t.ev.hr = clrmemtrace__hresult(err);
	t.ev.reason = err ? clrmemtrace__policy_reason(err) : "";
	emit_alloc(&t);
}

/*
 * The common case, an untraced allocation from our own heap, takes no lock
 * and reads no clock: everything else is in alloc_traced and alloc_late.
 */
static inline HRESULT do_alloc(struct hostmalloc *h, SIZE_T cbSize, EMemoryCriticalLevel level,
			       const char *file, int line, void **ppMem)
{
	int err;

	clrmemtrace__trace_sync();
	if (unlikely(h->inner != NULL) || unlikely(tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_alloc))) {
		return alloc_traced(h, cbSize, level, file, line, ppMem);
	}
	if (!ppMem) {
		return E_POINTER;
	}
	*ppMem = NULL;
	if ((unsigned)level > (unsigned)eProcessCritical) {
		return E_INVALIDARG;
	}
	err = clrmemtrace__heap_alloc(h->heap, cbSize, (int)level, ppMem, NULL, NULL);
	if (unlikely(tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_alloc))) {
		alloc_late(h, cbSize, level, file, line, *ppMem, err);
	}
	return clrmemtrace__hresult(err);
}

static HRESULT STDMETHODCALLTYPE hostmalloc_Alloc(IHostMalloc *iface, SIZE_T cbSize,
						  EMemoryCriticalLevel eCriticalLevel, void **ppMem)
{
	return do_alloc(impl_from_IHostMalloc(iface), cbSize, eCriticalLevel, NULL, 0, ppMem);
}

static HRESULT STDMETHODCALLTYPE hostmalloc_DebugAlloc(IHostMalloc *iface, SIZE_T cbSize,
						       EMemoryCriticalLevel eCriticalLevel,
						       char *pszFileName, int iLineNo,
						       void **ppMem)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);

	if (h->inner) {
		clrmemtrace__trace_sync();
		return wrapped_alloc(h, cbSize, eCriticalLevel, pszFileName, iLineNo, true, ppMem);
	}
	return do_alloc(h, cbSize, eCriticalLevel, pszFileName, iLineNo, ppMem);
}

struct free_trace {
	struct ctev_malloc_free ev;
	uint64_t t0;
};

static void emit_free(struct free_trace *t)
{
	t->ev.duration_ns = t->t0 ? clrmemtrace__now_ns() - t->t0 : 0;
	CLRMEMTRACE_TRACE(malloc_free, &t->ev);
}

/* Backend callback: the block is still this thread's, about to be freed. */
static void on_free(void *ctx, void *ptr, size_t size)
{
	struct free_trace *t = ctx;

	(void)ptr;
	t->ev.size = size;
	t->ev.hr = S_OK;
	emit_free(t);
}

/* The free of a block of the set, traced as it leaves the set (under the set's lock). */
static void on_taken(void *ctx, uint64_t size)
{
	struct free_trace *t = ctx;

	t->ev.size = size;
	t->ev.hr = S_OK;
	emit_free(t);
}

/*
 * Decorating: a block this heap handed out is traced as freed before the
 * inner heap frees it (once freed, another thread may get it again, and its
 * new allocation must come after this free in the trace), and as it leaves
 * the set of live blocks, under the set's lock: a state dump, which lists the
 * set under that lock, lists it with its free still to come or not at all,
 * never missing a block whose free comes after statedump_end. Should the
 * inner heap refuse after all, a second event says so. Anything else is
 * traced with the inner heap's answer.
 */
static HRESULT wrapped_free(struct hostmalloc *h, void *pMem)
{
	bool traced = tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_free);
	struct free_trace t = {
		.t0 = traced ? clrmemtrace__now_ns() : 0,
		.ev = { .manager_id = h->manager->id, .heap_id = h->id, .ptr = (uintptr_t)pMem },
	};
	uint64_t size = 0;
	bool known = pMem && blockset_take(h->live, pMem, &size, traced ? on_taken : NULL, &t);
	HRESULT hr;

	hr = h->inner->lpVtbl->Free(h->inner, pMem);
	if (known && hr != S_OK) {
		blockset_add(h->live, pMem, size);
	}
	if (traced && (!known || hr != S_OK)) {
		t.ev.size = 0;
		t.ev.hr = hr;
		emit_free(&t);
	}
	return hr;
}

/* A free whose event is recorded, or any free of a decorating heap. */
static __attribute__((noinline, cold)) HRESULT free_traced(struct hostmalloc *h, void *pMem)
{
	struct free_trace t;
	int err;

	if (h->inner) {
		return wrapped_free(h, pMem);
	}
	t.t0 = clrmemtrace__now_ns();
	t.ev = (struct ctev_malloc_free){
		.manager_id = h->manager->id,
		.heap_id = h->id,
		.ptr = (uintptr_t)pMem,
	};
	if (!pMem) {
		t.ev.hr = S_OK;
		emit_free(&t);
		return S_OK;
	}
	err = clrmemtrace__heap_free(h->heap, pMem, on_free, &t);
	if (err) {
		t.ev.hr = HOST_E_INVALIDOPERATION;
		emit_free(&t);
		return HOST_E_INVALIDOPERATION;
	}
	return S_OK;
}

/*
 * An untraced free during which recording started: traced now, once the
 * block is freed, with duration_ns 0 and size 0 (the block's size is gone
 * with it). A session's state dump may have read the heap before or after
 * the block was freed; either way the event follows what the dump saw. A
 * small block of the POSIX heap is still in this thread's cache, which no
 * other thread takes from; a block given straight back (a large one, one
 * freed without a cache, the Windows heap's) may be handed out again first.
 */
static __attribute__((noinline, cold)) HRESULT free_late(struct hostmalloc *h, void *pMem,
							 HRESULT hr)
{
	struct free_trace t = {
		.ev = { .manager_id = h->manager->id, .heap_id = h->id, .ptr = (uintptr_t)pMem,
			.hr = hr },
	};

	emit_free(&t);
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmalloc_Free(IHostMalloc *iface, void *pMem)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);
	HRESULT hr;

	clrmemtrace__trace_sync();
	if (unlikely(h->inner != NULL) || unlikely(tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_free))) {
		return free_traced(h, pMem);
	}
	/* The CLR frees NULL (clr-hosting-api.md §1.11); not a live block of this heap: refused. */
	hr = pMem && clrmemtrace__heap_free(h->heap, pMem, NULL, NULL) ? HOST_E_INVALIDOPERATION
								       : S_OK;
	if (unlikely(tracing(h) && CLRMEMTRACE_TRACE_ON(malloc_free))) {
		return free_late(h, pMem, hr);
	}
	return hr;
}

/* ---------- Decorating: the live blocks of a wrapped heap ---------- */

/*
 * An open-addressing set of the blocks a wrapped heap handed out, with their
 * sizes: the inner heap keeps no record we can read, and a trace needs the
 * size of each freed block and, in a state dump, the live ones.
 */
struct blockset {
	clrmemtrace_mutex lock;
	size_t capacity, count, used; /* used: count plus tombstones */
	struct slot {
		uintptr_t ptr; /* 0 empty, 1 deleted */
		uint64_t size;
	} *slots;
};

#define SLOT_DELETED ((uintptr_t)1)

static size_t slot_of(const struct blockset *b, uintptr_t p)
{
	return (size_t)(((uint64_t)(p >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (b->capacity - 1);
}

/* Lock held. */
static bool blockset_grow(struct blockset *b)
{
	size_t cap = b->capacity ? b->capacity * 2 : 256, i;
	struct slot *old = b->slots, *n = calloc(cap, sizeof(*n));
	size_t old_cap = b->capacity;

	if (!n) {
		return false;
	}
	b->slots = n;
	b->capacity = cap;
	b->count = b->used = 0;
	for (i = 0; i < old_cap; i++) {
		if (old[i].ptr > SLOT_DELETED) {
			size_t j = slot_of(b, old[i].ptr);

			while (n[j].ptr) {
				j = (j + 1) & (cap - 1);
			}
			n[j] = old[i];
			b->count++;
			b->used++;
		}
	}
	free(old);
	return true;
}

static void blockset_add(struct blockset *b, void *ptr, uint64_t size)
{
	uintptr_t p = (uintptr_t)ptr;
	size_t i;

	if (p <= SLOT_DELETED) {
		return;
	}
	clrmemtrace_mutex_lock(&b->lock);
	if ((b->used + 1) * 4 > b->capacity * 3 && !blockset_grow(b)) {
		clrmemtrace_mutex_unlock(&b->lock);
		return; /* only the trace's sizes suffer */
	}
	for (i = slot_of(b, p); b->slots[i].ptr > SLOT_DELETED && b->slots[i].ptr != p;
	     i = (i + 1) & (b->capacity - 1)) {
	}
	if (b->slots[i].ptr != p) {
		b->used += b->slots[i].ptr == 0;
		b->count++;
	}
	b->slots[i].ptr = p;
	b->slots[i].size = size;
	clrmemtrace_mutex_unlock(&b->lock);
}

/*
 * Removes ptr; its size, or false when it is not in the set. `then`, unless
 * NULL, is called with the size under the set's lock once ptr is out of it.
 */
static bool blockset_take(struct blockset *b, void *ptr, uint64_t *size,
			  void (*then)(void *ctx, uint64_t size), void *ctx)
{
	uintptr_t p = (uintptr_t)ptr;
	bool found = false;
	size_t i;

	clrmemtrace_mutex_lock(&b->lock);
	if (b->capacity && p > SLOT_DELETED) {
		for (i = slot_of(b, p); b->slots[i].ptr; i = (i + 1) & (b->capacity - 1)) {
			if (b->slots[i].ptr == p) {
				*size = b->slots[i].size;
				b->slots[i].ptr = SLOT_DELETED;
				b->count--;
				found = true;
				break;
			}
		}
	}
	if (found && then) {
		then(ctx, *size);
	}
	clrmemtrace_mutex_unlock(&b->lock);
	return found;
}

void clrmemtrace__blockset_foreach(struct hostmalloc *h, blockset_fn fn, void *ctx)
{
	struct blockset *b = h->live;
	size_t i;

	clrmemtrace_mutex_lock(&b->lock);
	for (i = 0; i < b->capacity; i++) {
		if (b->slots[i].ptr > SLOT_DELETED && fn(ctx, (void *)b->slots[i].ptr, b->slots[i].size)) {
			break;
		}
	}
	clrmemtrace_mutex_unlock(&b->lock);
}

static void blockset_free(struct blockset *b)
{
	if (b) {
		clrmemtrace_mutex_destroy(&b->lock);
		free(b->slots);
		free(b);
	}
}

static const IHostMallocVtbl hostmalloc_vtbl = {
	hostmalloc_QueryInterface,
	hostmalloc_AddRef,
	hostmalloc_Release,
	hostmalloc_Alloc,
	hostmalloc_DebugAlloc,
	hostmalloc_Free,
};

HRESULT clrmemtrace__hostmalloc_create(struct hostmem *mgr, uint32_t malloc_type, IHostMalloc **out)
{
	struct hostmalloc *h = calloc(1, sizeof(*h));
	int err;

	if (!h) {
		return E_OUTOFMEMORY;
	}
	err = clrmemtrace__heap_create(malloc_type, &mgr->policy, &h->heap);
	if (err) {
		free(h);
		return clrmemtrace__hresult(err);
	}
	h->IHostMalloc_iface.lpVtbl = &hostmalloc_vtbl;
	h->refs = 1;
	h->id = clrmemtrace__next_id();
	h->type = malloc_type;
	h->manager = mgr;
	h->trace = mgr->trace;
	mgr->IHostMemoryManager_iface.lpVtbl->AddRef(&mgr->IHostMemoryManager_iface);
	clrmemtrace_mutex_lock(&mgr->lock);
	h->next = mgr->heaps;
	if (mgr->heaps) {
		mgr->heaps->prev = h;
	}
	mgr->heaps = h;
	clrmemtrace_mutex_unlock(&mgr->lock);
	*out = &h->IHostMalloc_iface;
	return S_OK;
}

HRESULT clrmemtrace__hostmalloc_wrap(struct hostmem *mgr, DWORD malloc_type, IHostMalloc **out)
{
	IHostMalloc *inner;
	struct hostmalloc *h;
	HRESULT hr;

	/*
	 * The caller's out-pointer goes to the inner manager as it came, so a
	 * failure leaves it exactly as the inner manager did. Any success that
	 * handed out a heap (S_FALSE too) is wrapped, or its calls would bypass
	 * the decorator; a success without one has nothing to wrap.
	 */
	hr = mgr->inner->lpVtbl->CreateMalloc(mgr->inner, malloc_type, out);
	if (FAILED(hr) || !out || !*out) {
		return hr;
	}
	inner = *out;
	h = calloc(1, sizeof(*h));
	if (h) {
		h->live = calloc(1, sizeof(*h->live));
	}
	if (!h || !h->live) {
		free(h);
		inner->lpVtbl->Release(inner);
		*out = NULL;
		return E_OUTOFMEMORY;
	}
	clrmemtrace_mutex_init(&h->live->lock);
	h->IHostMalloc_iface.lpVtbl = &hostmalloc_vtbl;
	h->refs = 1;
	h->id = clrmemtrace__next_id();
	h->type = malloc_type;
	h->manager = mgr;
	h->trace = mgr->trace;
	h->inner = inner;
	mgr->IHostMemoryManager_iface.lpVtbl->AddRef(&mgr->IHostMemoryManager_iface);
	clrmemtrace_mutex_lock(&mgr->lock);
	h->next = mgr->heaps;
	if (mgr->heaps) {
		mgr->heaps->prev = h;
	}
	mgr->heaps = h;
	clrmemtrace_mutex_unlock(&mgr->lock);
	*out = &h->IHostMalloc_iface;
	return hr;
}
