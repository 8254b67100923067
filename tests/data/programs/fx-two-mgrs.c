/* SPDX-License-Identifier: MIT */
/*
 * Two managers in one process, each with reservations and a heap, plus the
 * calls that change nothing: memory load, a notification callback, and the
 * address-space notifications. The second manager is released with a
 * reservation still mapped; the first lives until the process exits.
 */
#include "fixture.h"

static HRESULT STDMETHODCALLTYPE cb_query(ICLRMemoryNotificationCallback *self, REFIID riid,
					   void **out)
{
	(void)riid;
	*out = self;
	return S_OK;
}

static ULONG STDMETHODCALLTYPE cb_addref(ICLRMemoryNotificationCallback *self)
{
	(void)self;
	return 2;
}

static ULONG STDMETHODCALLTYPE cb_release(ICLRMemoryNotificationCallback *self)
{
	(void)self;
	return 1;
}

static HRESULT STDMETHODCALLTYPE cb_notify(ICLRMemoryNotificationCallback *self,
					    EMemoryAvailable level)
{
	(void)self;
	(void)level;
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_query, cb_addref, cb_release, cb_notify,
};
static ICLRMemoryNotificationCallback callback = { &cb_vtbl };

int main(void)
{
	IHostMemoryManager *gc = fx_manager("gc"), *loader = fx_manager("loader");
	IHostMalloc *gc_heap, *loader_heap;
	char *seg, *seg2, *lh;
	void *blocks[6];
	SIZE_T avail;
	DWORD load;
	int i;

	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(gc, MALLOC_THREADSAFE, &gc_heap));
	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(loader, MALLOC_EXECUTABLE,
							      &loader_heap));
	fx_ok("RegisterMemoryNotificationCallback",
	      IHostMemoryManager_RegisterMemoryNotificationCallback(gc, &callback));
	fx_ok("GetMemoryLoad", IHostMemoryManager_GetMemoryLoad(gc, &load, &avail));

	seg = fx_reserve(gc, 16 * MiB, MEM_RESERVE, PAGE_READWRITE);
	fx_commit(gc, seg, 256 * KiB, PAGE_READWRITE);
	seg2 = fx_reserve(gc, 16 * MiB, MEM_RESERVE, PAGE_READWRITE);
	fx_commit(gc, seg2, 128 * KiB, PAGE_READWRITE);
	lh = fx_reserve(loader, 4 * MiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(loader, lh, 64 * KiB, PAGE_READWRITE);
	fx_commit(loader, lh + 64 * KiB, 32 * KiB, PAGE_EXECUTE_READ);

	fx_ok("NeedsVirtualAddressSpace",
	      IHostMemoryManager_NeedsVirtualAddressSpace(gc, seg, 16 * MiB));
	fx_ok("AcquiredVirtualAddressSpace",
	      IHostMemoryManager_AcquiredVirtualAddressSpace(gc, seg, 16 * MiB));

	for (i = 0; i < 3; i++) {
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(gc_heap, 1000, eTaskCritical, (char *)"gc.cpp",
							   200 + i, &blocks[i]));
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(loader_heap, 200, eTaskCritical,
							   (char *)"loader.cpp", 40, &blocks[3 + i]));
	}
	fx_walk(gc, seg);
	fx_walk(gc, seg2);
	fx_walk(loader, lh);
	fx_ok("GetMemoryLoad", IHostMemoryManager_GetMemoryLoad(loader, &load, &avail));

	/* The GC gives a segment back. */
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(gc, seg2, 0, MEM_RELEASE));
	/* Never acquired: refused, and recorded as a failure. */
	fx_fails("ReleasedVirtualAddressSpace",
		 IHostMemoryManager_ReleasedVirtualAddressSpace(gc, seg2), HOST_E_INVALIDOPERATION);
	for (i = 0; i < 3; i++) {
		fx_ok("Free", IHostMalloc_Free(gc_heap, blocks[i]));
	}
	/* The loader goes away with its heap's blocks and its reservation still there. */
	IHostMalloc_Release(loader_heap);
	IHostMemoryManager_Release(loader);
	fx_walk(gc, seg);
	return 0;
}
