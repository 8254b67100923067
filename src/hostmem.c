/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager: argument checks, locking, and the calls into the
 * virtual-memory backend (vm.h) and the heaps (hostmalloc.c).
 *
 * Every method validates its out-pointers first and clears them, so a
 * failing call leaves NULL/0 behind, and returns exactly S_OK on success.
 */
#include "hostmem.h"

#include "vm.h"

#include <stdlib.h>
#include <string.h>

static uint64_t last_id;

uint64_t clrmemtrace__next_id(void)
{
	return __atomic_add_fetch(&last_id, 1, __ATOMIC_RELAXED);
}

static bool valid_level(EMemoryCriticalLevel level)
{
	return (unsigned)level <= (unsigned)eProcessCritical;
}

/* ---------- IUnknown ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_QueryInterface(IHostMemoryManager *iface, REFIID riid,
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
	    clrmemtrace__iid_equal(riid, &IID_IHostMemoryManager)) {
		iface->lpVtbl->AddRef(iface);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE hostmem_AddRef(IHostMemoryManager *iface)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);

	return __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

static void hostmem_destroy(struct hostmem *m)
{
	if (m->callback) {
		m->callback->lpVtbl->Release(m->callback);
	}
	clrmemtrace__vm_destroy(m->vm);
	clrmemtrace_mutex_destroy(&m->lock);
	free(m->vas);
	free(m->name);
	free(m);
}

static ULONG STDMETHODCALLTYPE hostmem_Release(IHostMemoryManager *iface)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint32_t refs = __atomic_load_n(&m->refs, __ATOMIC_RELAXED);

	/* A Release past zero is the caller's bug; never free twice. */
	do {
		if (refs == 0) {
			return 0;
		}
	} while (!__atomic_compare_exchange_n(&m->refs, &refs, refs - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	if (refs == 1) {
		hostmem_destroy(m);
	}
	return refs - 1;
}

/* ---------- Heaps ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_CreateMalloc(IHostMemoryManager *iface, DWORD type,
						      IHostMalloc **ppMalloc)
{
	if (!ppMalloc) {
		return E_POINTER;
	}
	*ppMalloc = NULL;
	if (type & ~(DWORD)(MALLOC_THREADSAFE | MALLOC_EXECUTABLE)) {
		return E_INVALIDARG;
	}
	return clrmemtrace__hostmalloc_create(impl_from_IHostMemoryManager(iface), type, ppMalloc);
}

/* ---------- Virtual memory ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_VirtualAlloc(IHostMemoryManager *iface, void *pAddress,
						      SIZE_T dwSize, DWORD flAllocationType,
						      DWORD flProtect,
						      EMemoryCriticalLevel eCriticalLevel,
						      void **ppMem)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	int err;

	if (!ppMem) {
		return E_POINTER;
	}
	*ppMem = NULL;
	if (!valid_level(eCriticalLevel)) {
		return E_INVALIDARG;
	}
	clrmemtrace__vm_lock(m->vm);
	err = clrmemtrace__vm_alloc(m->vm, pAddress, dwSize, flAllocationType, flProtect, ppMem);
	clrmemtrace__vm_unlock(m->vm);
	return clrmemtrace__hresult(err);
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualFree(IHostMemoryManager *iface, LPVOID lpAddress,
						     SIZE_T dwSize, DWORD dwFreeType)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	int err;

	clrmemtrace__vm_lock(m->vm);
	err = clrmemtrace__vm_free(m->vm, lpAddress, dwSize, dwFreeType);
	clrmemtrace__vm_unlock(m->vm);
	return clrmemtrace__hresult(err);
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualQuery(IHostMemoryManager *iface, void *lpAddress,
						      void *lpBuffer, SIZE_T dwLength,
						      SIZE_T *pResult)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	MEMORY_BASIC_INFORMATION mbi;
	uint64_t seq_before, seq_after;
	int err;

	if (!pResult) {
		return E_POINTER;
	}
	*pResult = 0;
	if (dwLength < sizeof(MEMORY_BASIC_INFORMATION)) {
		return HRESULT_FROM_WIN32(ERROR_BAD_LENGTH); /* #55 */
	}
	if (!lpBuffer) {
		return HRESULT_FROM_WIN32(ERROR_NOACCESS);
	}
	err = clrmemtrace__vm_query(m->vm, lpAddress, &mbi, &seq_before, &seq_after);
	if (err) {
		return clrmemtrace__hresult(err);
	}
	memcpy(lpBuffer, &mbi, sizeof(mbi));
	*pResult = sizeof(mbi);
	return S_OK;
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualProtect(IHostMemoryManager *iface, void *lpAddress,
							SIZE_T dwSize, DWORD flNewProtect,
							DWORD *pflOldProtect)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint32_t old = 0;
	int err;

	if (!pflOldProtect) {
		return HRESULT_FROM_WIN32(ERROR_NOACCESS); /* #44 */
	}
	*pflOldProtect = 0;
	clrmemtrace__vm_lock(m->vm);
	err = clrmemtrace__vm_protect(m->vm, lpAddress, dwSize, flNewProtect, &old);
	clrmemtrace__vm_unlock(m->vm);
	*pflOldProtect = err ? 0 : old;
	return clrmemtrace__hresult(err);
}

/* ---------- Memory pressure ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_GetMemoryLoad(IHostMemoryManager *iface,
						       DWORD *pMemoryLoad,
						       SIZE_T *pAvailableBytes)
{
	uint64_t avail = 0;
	uint32_t load = 0;
	int err;

	(void)iface;
	if (pMemoryLoad) {
		*pMemoryLoad = 0;
	}
	if (pAvailableBytes) {
		*pAvailableBytes = 0;
	}
	if (!pMemoryLoad || !pAvailableBytes) {
		return E_POINTER;
	}
	err = clrmemtrace__memory_status(&load, &avail, NULL);
	if (err) {
		return clrmemtrace__hresult(err);
	}
	*pMemoryLoad = load;
	*pAvailableBytes = avail > SIZE_MAX ? SIZE_MAX : (SIZE_T)avail;
	return S_OK;
}

static HRESULT STDMETHODCALLTYPE hostmem_RegisterMemoryNotificationCallback(
	IHostMemoryManager *iface, ICLRMemoryNotificationCallback *pCallback)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	ICLRMemoryNotificationCallback *old;

	if (!pCallback) {
		return E_INVALIDARG;
	}
	pCallback->lpVtbl->AddRef(pCallback);
	clrmemtrace_mutex_lock(&m->lock);
	old = m->callback;
	m->callback = pCallback;
	clrmemtrace_mutex_unlock(&m->lock);
	if (old) {
		old->lpVtbl->Release(old);
	}
	return S_OK;
}

/* ---------- Address space taken directly from the OS ---------- */

static bool valid_range(LPVOID start, SIZE_T size)
{
	uintptr_t end;

	return size != 0 && !__builtin_add_overflow((uintptr_t)start, size, &end);
}

static HRESULT STDMETHODCALLTYPE hostmem_NeedsVirtualAddressSpace(IHostMemoryManager *iface,
								  LPVOID startAddress, SIZE_T size)
{
	(void)iface;
	/* startAddress may be NULL: the runtime wants a mapping anywhere. */
	if (!valid_range(startAddress, size)) {
		return E_INVALIDARG;
	}
	return S_OK;
}

static HRESULT STDMETHODCALLTYPE hostmem_AcquiredVirtualAddressSpace(IHostMemoryManager *iface,
								     LPVOID startAddress,
								     SIZE_T size)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	HRESULT hr = S_OK;
	size_t i;

	if (!startAddress || !valid_range(startAddress, size)) {
		return E_INVALIDARG;
	}
	clrmemtrace_mutex_lock(&m->lock);
	for (i = 0; i < m->vas_count; i++) {
		if (m->vas[i].start == (uintptr_t)startAddress) {
			hr = E_INVALIDARG; /* already acquired and not released */
			goto end;
		}
	}
	if (m->vas_count == m->vas_capacity) {
		size_t cap = m->vas_capacity ? m->vas_capacity * 2 : 16;
		struct vas_range *v = realloc(m->vas, cap * sizeof(*v));

		if (!v) {
			hr = E_OUTOFMEMORY;
			goto end;
		}
		m->vas = v;
		m->vas_capacity = cap;
	}
	m->vas[m->vas_count].start = (uintptr_t)startAddress;
	m->vas[m->vas_count].size = size;
	m->vas_count++;
	m->vas_bytes += size;
end:
	clrmemtrace_mutex_unlock(&m->lock);
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmem_ReleasedVirtualAddressSpace(IHostMemoryManager *iface,
								     LPVOID startAddress)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	HRESULT hr = HOST_E_INVALIDOPERATION;
	size_t i;

	if (!startAddress) {
		return E_INVALIDARG;
	}
	clrmemtrace_mutex_lock(&m->lock);
	for (i = 0; i < m->vas_count; i++) {
		if (m->vas[i].start == (uintptr_t)startAddress) {
			m->vas_bytes -= m->vas[i].size;
			m->vas[i] = m->vas[--m->vas_count];
			hr = S_OK;
			break;
		}
	}
	clrmemtrace_mutex_unlock(&m->lock);
	return hr;
}

static const IHostMemoryManagerVtbl hostmem_vtbl = {
	hostmem_QueryInterface,
	hostmem_AddRef,
	hostmem_Release,
	hostmem_CreateMalloc,
	hostmem_VirtualAlloc,
	hostmem_VirtualFree,
	hostmem_VirtualQuery,
	hostmem_VirtualProtect,
	hostmem_GetMemoryLoad,
	hostmem_RegisterMemoryNotificationCallback,
	hostmem_NeedsVirtualAddressSpace,
	hostmem_AcquiredVirtualAddressSpace,
	hostmem_ReleasedVirtualAddressSpace,
};

/* ---------- Factory ---------- */

#define OPTIONS_MAX_SIZE 4096
#define NAME_MAX_LEN 255

/* Copies the caller's options into *opts, defaults for whatever it did not pass. */
static HRESULT read_options(const clrmemtrace_options *in, clrmemtrace_options *opts)
{
	size_t i;

	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	if (!in) {
		return S_OK;
	}
	if (in->size < sizeof(in->size) || in->size > OPTIONS_MAX_SIZE) {
		return E_INVALIDARG;
	}
	/* A newer caller's struct may be larger, as long as what we do not know is zero. */
	for (i = sizeof(*opts); i < in->size; i++) {
		if (((const unsigned char *)in)[i] != 0) {
			return E_INVALIDARG;
		}
	}
	memcpy(opts, in, in->size < sizeof(*opts) ? in->size : sizeof(*opts));
	opts->size = sizeof(*opts);
	if (opts->flags & ~(uint32_t)CLRMEMTRACE_FLAG_NO_TRACE) {
		return E_INVALIDARG;
	}
	if (opts->name && strnlen(opts->name, NAME_MAX_LEN + 1) > NAME_MAX_LEN) {
		return E_INVALIDARG;
	}
	return S_OK;
}

HRESULT clrmemtrace_create(const clrmemtrace_options *options, IHostMemoryManager **out)
{
	clrmemtrace_options opts;
	struct hostmem *m;
	HRESULT hr;
	int err;

	if (!out) {
		return E_POINTER;
	}
	*out = NULL;
	hr = read_options(options, &opts);
	if (FAILED(hr)) {
		return hr;
	}
	err = clrmemtrace__init();
	if (err) {
		return clrmemtrace__hresult(err);
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		return E_OUTOFMEMORY;
	}
	m->IHostMemoryManager_iface.lpVtbl = &hostmem_vtbl;
	m->refs = 1;
	m->id = clrmemtrace__next_id();
	m->flags = opts.flags;
	if (opts.name) {
		m->name = strdup(opts.name);
		if (!m->name) {
			free(m);
			return E_OUTOFMEMORY;
		}
	}
	err = clrmemtrace__vm_create(&m->vm);
	if (err) {
		free(m->name);
		free(m);
		return clrmemtrace__hresult(err);
	}
	clrmemtrace_mutex_init(&m->lock);
	*out = &m->IHostMemoryManager_iface;
	return S_OK;
}
