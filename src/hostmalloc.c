/* SPDX-License-Identifier: MIT */
/*
 * IHostMalloc: a heap handed out by IHostMemoryManager::CreateMalloc, on the
 * heap backend (heap.h). The heap keeps a reference on its manager.
 */
#include "heap.h"
#include "hostmem.h"

#include <stdlib.h>

struct hostmalloc {
	IHostMalloc IHostMalloc_iface;
	uint32_t refs;
	uint64_t id;
	uint32_t type;
	struct hostmem *manager;
	struct heap *heap;
};

static inline struct hostmalloc *impl_from_IHostMalloc(IHostMalloc *iface)
{
	return container_of(iface, struct hostmalloc, IHostMalloc_iface);
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
	IHostMemoryManager *mgr;

	do {
		if (refs == 0) {
			return 0;
		}
	} while (!__atomic_compare_exchange_n(&h->refs, &refs, refs - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	if (refs > 1) {
		return refs - 1;
	}
	mgr = &h->manager->IHostMemoryManager_iface;
	clrmemtrace__heap_destroy(h->heap);
	free(h);
	mgr->lpVtbl->Release(mgr);
	return 0;
}

static HRESULT do_alloc(struct hostmalloc *h, SIZE_T cbSize, EMemoryCriticalLevel level,
			void **ppMem)
{
	if (!ppMem) {
		return E_POINTER;
	}
	*ppMem = NULL;
	if ((unsigned)level > (unsigned)eProcessCritical) {
		return E_INVALIDARG;
	}
	return clrmemtrace__hresult(clrmemtrace__heap_alloc(h->heap, cbSize, ppMem, NULL, NULL));
}

static HRESULT STDMETHODCALLTYPE hostmalloc_Alloc(IHostMalloc *iface, SIZE_T cbSize,
						  EMemoryCriticalLevel eCriticalLevel, void **ppMem)
{
	return do_alloc(impl_from_IHostMalloc(iface), cbSize, eCriticalLevel, ppMem);
}

static HRESULT STDMETHODCALLTYPE hostmalloc_DebugAlloc(IHostMalloc *iface, SIZE_T cbSize,
						       EMemoryCriticalLevel eCriticalLevel,
						       char *pszFileName, int iLineNo,
						       void **ppMem)
{
	(void)pszFileName;
	(void)iLineNo;
	return do_alloc(impl_from_IHostMalloc(iface), cbSize, eCriticalLevel, ppMem);
}

static HRESULT STDMETHODCALLTYPE hostmalloc_Free(IHostMalloc *iface, void *pMem)
{
	struct hostmalloc *h = impl_from_IHostMalloc(iface);

	if (!pMem) {
		return S_OK; /* the CLR frees NULL (clr-hosting-api.md §1.11) */
	}
	if (clrmemtrace__heap_free(h->heap, pMem, NULL, NULL) != 0) {
		return HOST_E_INVALIDOPERATION; /* not a live block of this heap */
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
	err = clrmemtrace__heap_create(malloc_type, &h->heap);
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
	*out = &h->IHostMalloc_iface;
	return S_OK;
}
