/* SPDX-License-Identifier: MIT */
/*
 * A program written only against the installed header and pkg-config file:
 * creates a manager and calls every method of every interface once. Built
 * and run by scripts/test from a staged install; exits non-zero on the first
 * unexpected result.
 */
#include <clrmemtrace.h>

#include <stdio.h>
#include <string.h>

static int failures;

#define EXPECT(call, want)                                                               \
	do {                                                                             \
		HRESULT got_ = (call);                                                   \
		if (got_ != (want)) {                                                    \
			fprintf(stderr, "consumer: %s returned %s, expected %s\n", #call, \
				clrmemtrace_hresult_name(got_), clrmemtrace_hresult_name(want)); \
			failures++;                                                      \
		}                                                                        \
	} while (0)

/* A minimal ICLRMemoryNotificationCallback, as a runtime would implement it. */
struct callback {
	ICLRMemoryNotificationCallback iface;
	ULONG refs;
};

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *This,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	if (memcmp(riid, &IID_IUnknown, sizeof(IID)) == 0 ||
	    memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof(IID)) == 0) {
		*ppv = This;
		This->lpVtbl->AddRef(This);
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *This)
{
	return ++((struct callback *)This)->refs;
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *This)
{
	return --((struct callback *)This)->refs;
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *This,
							 EMemoryAvailable level)
{
	(void)This;
	(void)level;
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_QueryInterface, cb_AddRef, cb_Release, cb_OnMemoryNotification,
};

int main(void)
{
	clrmemtrace_options opts = { .size = sizeof(opts), .name = "consumer" };
	struct callback cb = { { &cb_vtbl }, 1 };
	IHostMemoryManager *mm = NULL, *again = NULL;
	IHostMalloc *heap = NULL;
	MEMORY_BASIC_INFORMATION mbi;
	void *p = NULL, *c = NULL, *b = NULL;
	SIZE_T result = 0, avail = 0;
	DWORD old = 0, load = 0;

	EXPECT(clrmemtrace_create(&opts, &mm), S_OK);
	if (!mm) {
		return 1;
	}
	EXPECT(IHostMemoryManager_QueryInterface(mm, &IID_IHostMemoryManager, (void **)&again), S_OK);
	if (IHostMemoryManager_AddRef(mm) != 3 || IHostMemoryManager_Release(mm) != 2 ||
	    IHostMemoryManager_Release(again) != 1) {
		fprintf(stderr, "consumer: unexpected reference counts\n");
		failures++;
	}

	EXPECT(IHostMemoryManager_VirtualAlloc(mm, NULL, 1 << 20, MEM_RESERVE, PAGE_NOACCESS,
					       eProcessCritical, &p),
	       S_OK);
	EXPECT(IHostMemoryManager_VirtualAlloc(mm, p, 8192, MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
					       &c),
	       S_OK);
	if (c) {
		memset(c, 0x5a, 8192);
	}
	EXPECT(IHostMemoryManager_VirtualProtect(mm, p, 4096, PAGE_READONLY, &old), S_OK);
	EXPECT(IHostMemoryManager_VirtualQuery(mm, p, &mbi, sizeof(mbi), &result), S_OK);
	if (result != sizeof(mbi) || mbi.State != MEM_COMMIT || mbi.Protect != PAGE_READONLY ||
	    old != PAGE_READWRITE || mbi.AllocationBase != p) {
		fprintf(stderr, "consumer: VirtualQuery/VirtualProtect results are wrong\n");
		failures++;
	}
	EXPECT(IHostMemoryManager_VirtualFree(mm, p, 8192, MEM_DECOMMIT), S_OK);
	EXPECT(IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE), S_OK);
	EXPECT(IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE),
	       HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));

	EXPECT(IHostMemoryManager_GetMemoryLoad(mm, &load, &avail), S_OK);
	if (load > 100 || avail == 0) {
		fprintf(stderr, "consumer: implausible memory load %lu%%, %zu bytes available\n",
			(unsigned long)load, (size_t)avail);
		failures++;
	}
	EXPECT(IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface), S_OK);
	EXPECT(IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 1 << 16), S_OK);
	EXPECT(IHostMemoryManager_AcquiredVirtualAddressSpace(mm, (void *)0x10000000, 1 << 16), S_OK);
	EXPECT(IHostMemoryManager_ReleasedVirtualAddressSpace(mm, (void *)0x10000000), S_OK);

	EXPECT(IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap), S_OK);
	if (heap) {
		IHostMalloc *same = NULL;

		EXPECT(IHostMalloc_QueryInterface(heap, &IID_IHostMalloc, (void **)&same), S_OK);
		if (same) {
			IHostMalloc_Release(same);
		}
		EXPECT(IHostMalloc_Alloc(heap, 100, eTaskCritical, &b), S_OK);
		EXPECT(IHostMalloc_Free(heap, b), S_OK);
		EXPECT(IHostMalloc_DebugAlloc(heap, 40, eAppDomainCritical, (char *)__FILE__, __LINE__,
					      &b),
		       S_OK);
		EXPECT(IHostMalloc_Free(heap, b), S_OK);
		EXPECT(IHostMalloc_Free(heap, b), HOST_E_INVALIDOPERATION);
		EXPECT(IHostMalloc_Free(heap, NULL), S_OK);
		IHostMalloc_AddRef(heap);
		IHostMalloc_Release(heap);
		IHostMalloc_Release(heap);
	}
	if (IHostMemoryManager_Release(mm) != 0 || cb.refs != 1) {
		fprintf(stderr, "consumer: the manager did not release everything it held\n");
		failures++;
	}
	if (failures == 0) {
		printf("consumer: every method of clrmemtrace %s works through the installed API\n",
		       clrmemtrace_version());
	}
	return failures != 0;
}
