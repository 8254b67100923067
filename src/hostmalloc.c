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

#include <stdlib.h>

static inline struct hostmalloc *impl_from_IHostMalloc(IHostMalloc *iface)
{
	return container_of(iface, struct hostmalloc, IHostMalloc_iface);
}

static bool tracing(const struct hostmalloc *h)
{
	return h->manager->trace;
}

static HRESULT STDMETHODCALLTYPE hostmalloc_QueryInterface(IHostMalloc *iface, REFIID riid,
							   void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (!riid) {
		return E_INVALIDARG;
	}
	if (clrmemtrace__iid_equal(riid, &IID_IUnknown) ||
	    clrmemtrace__iid_equal(riid, &IID_IHostMalloc)) {
		iface->lpVtbl->AddRef(iface);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE hostmalloc_AddRef(IHostMalloc *iface)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);

	return __atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
}

static ULONG STDMETHODCALLTYPE hostmalloc_Release(IHostMalloc *iface)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);
	uint32_t refs = __atomic_load_n(&h->refs, __ATOMIC_RELAXED);
	struct hostmem *m = h->manager;

	do {
		if (refs == 0) {
			return 0;
		}
	} while (!__atomic_compare_exchange_n(&h->refs, &refs, refs - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	if (refs > 1) {
		return refs - 1;
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
		struct heap_stats stats;
		struct ctev_malloc_destroy ev = { .manager_id = m->id, .heap_id = h->id };

		clrmemtrace__heap_stats(h->heap, &stats);
		ev.live_blocks = stats.live_blocks;
		ev.live_bytes = stats.live_bytes;
		CLRMEMTRACE_TRACE(malloc_destroy, &ev);
	}
	clrmemtrace__heap_destroy(h->heap);
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

static HRESULT do_alloc(struct hostmalloc *h, SIZE_T cbSize, EMemoryCriticalLevel level,
			const char *file, int line, void **ppMem)
{
	struct alloc_trace t;
	HRESULT hr;

	clrmemtrace__trace_sync();
	if (likely(!tracing(h) || !CLRMEMTRACE_TRACE_ON(malloc_alloc))) {
		if (!ppMem) {
			return E_POINTER;
		}
		*ppMem = NULL;
		if ((unsigned)level > (unsigned)eProcessCritical) {
			return E_INVALIDARG;
		}
		return clrmemtrace__hresult(
			clrmemtrace__heap_alloc(h->heap, cbSize, (int)level, ppMem, NULL, NULL));
	}
	t.t0 = clrmemtrace__now_ns();
	t.ev = (struct ctev_malloc_alloc){
		.manager_id = h->manager->id,
		.heap_id = h->id,
		.size = cbSize,
		.level = (int32_t)level,
		.file = file ? file : "",
		.line = line,
		.reason = "",
	};
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
	return do_alloc(impl_from_IHostMalloc(iface), cbSize, eCriticalLevel, pszFileName, iLineNo,
			ppMem);
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

static HRESULT STDMETHODCALLTYPE hostmalloc_Free(IHostMalloc *iface, void *pMem)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);
	struct free_trace t;
	int err;

	clrmemtrace__trace_sync();
	if (likely(!tracing(h) || !CLRMEMTRACE_TRACE_ON(malloc_free))) {
		if (!pMem) {
			return S_OK; /* the CLR frees NULL (clr-hosting-api.md §1.11) */
		}
		/* Not a live block of this heap: refused, nothing changed. */
		return clrmemtrace__heap_free(h->heap, pMem, NULL, NULL) ? HOST_E_INVALIDOPERATION
									: S_OK;
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
