/* SPDX-License-Identifier: MIT */
/*
 * IHostMemoryManager: argument checks, locking, and the calls into the
 * virtual-memory backend (vm.h) and the heaps (hostmalloc.c).
 *
 * Every method validates its out-pointers first and clears them, so a
 * failing call leaves NULL/0 behind, and returns exactly S_OK on success.
 */
#include "hostmem.h"

#include "heap.h"
#include "monitor.h"
#include "trace.h"
#include "unknown.h"
#include "vm.h"
#include "vmwrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether m records event `ev` now. */
#define TRACE_ON_M(m, ev) ((m)->trace && CLRMEMTRACE_TRACE_ON(ev))

/* A call's start time, read only when its event is recorded. */
static inline uint64_t trace_start(bool on)
{
	return on ? clrmemtrace__now_ns() : 0;
}

/* The call's duration; 0 when recording started during the call. */
static inline uint64_t trace_elapsed(uint64_t t0)
{
	return t0 ? clrmemtrace__now_ns() - t0 : 0;
}

static uint64_t last_id;

uint64_t clrmemtrace__next_id(void)
{
	return __atomic_add_fetch(&last_id, 1, __ATOMIC_RELAXED);
}

static bool valid_level(EMemoryCriticalLevel level)
{
	return (unsigned)level <= (unsigned)eProcessCritical;
}

/* ---------- Decorating: the notification relay ---------- */

/*
 * The callback a decorating manager registers with the inner manager. The
 * inner manager holds references on it, so it outlives the decorator; once
 * the decorator is gone it drops notifications.
 */
struct relay {
	ICLRMemoryNotificationCallback iface;
	uint32_t refs;
	clrmemtrace_mutex lock; /* guards m */
	struct hostmem *m;
};

static ICLRMemoryNotificationCallback *relay_iface(struct relay *r)
{
	return &r->iface;
}

static HRESULT STDMETHODCALLTYPE relay_QueryInterface(ICLRMemoryNotificationCallback *iface,
						      REFIID riid, void **ppv)
{
	struct relay *r = container_of(iface, struct relay, iface);

	return clrmemtrace__unknown_query(iface, &r->refs, &IID_ICLRMemoryNotificationCallback,
					  riid, ppv);
}

static ULONG STDMETHODCALLTYPE relay_AddRef(ICLRMemoryNotificationCallback *iface)
{
	struct relay *r = container_of(iface, struct relay, iface);

	return clrmemtrace__unknown_addref(&r->refs);
}

static ULONG STDMETHODCALLTYPE relay_Release(ICLRMemoryNotificationCallback *iface)
{
	struct relay *r = container_of(iface, struct relay, iface);
	ULONG left;

	if (clrmemtrace__unknown_release(&r->refs, &left)) {
		clrmemtrace_mutex_destroy(&r->lock);
		free(r);
	}
	return left;
}

/* Passes the inner manager's notification on to the runtime's callback, traced. */
static HRESULT STDMETHODCALLTYPE relay_OnMemoryNotification(ICLRMemoryNotificationCallback *iface,
							    EMemoryAvailable level)
{
	struct relay *r = container_of(iface, struct relay, iface);
	ICLRMemoryNotificationCallback *cb = NULL;
	bool trace = false;
	uint64_t id = 0, t0;
	HRESULT hr;

	clrmemtrace_mutex_lock(&r->lock);
	if (r->m) {
		clrmemtrace_mutex_lock(&r->m->lock);
		cb = r->m->callback;
		if (cb) {
			cb->lpVtbl->AddRef(cb);
		}
		clrmemtrace_mutex_unlock(&r->m->lock);
		trace = r->m->trace;
		id = r->m->id;
	}
	clrmemtrace_mutex_unlock(&r->lock);
	if (!cb) {
		return S_OK;
	}
	t0 = clrmemtrace__now_ns();
	hr = cb->lpVtbl->OnMemoryNotification(cb, level);
	if (trace && CLRMEMTRACE_TRACE_ON(memory_notification)) {
		struct ctev_memory_notification ev = {
			.manager_id = id,
			.callback = (uintptr_t)cb,
			.level = (int32_t)level,
			.hr = hr,
			.duration_ns = clrmemtrace__now_ns() - t0,
			.reason = "from the wrapped manager",
		};

		CLRMEMTRACE_TRACE(memory_notification, &ev);
	}
	cb->lpVtbl->Release(cb);
	return hr;
}

static const ICLRMemoryNotificationCallbackVtbl relay_vtbl = {
	relay_QueryInterface,
	relay_AddRef,
	relay_Release,
	relay_OnMemoryNotification,
};

static struct relay *relay_new(struct hostmem *m)
{
	struct relay *r = calloc(1, sizeof(*r));

	if (r) {
		r->iface.lpVtbl = &relay_vtbl;
		r->refs = 1;
		r->m = m;
		clrmemtrace_mutex_init(&r->lock);
	}
	return r;
}

/* The decorator is going: later notifications are dropped. */
static void relay_detach(struct relay *r)
{
	clrmemtrace_mutex_lock(&r->lock);
	r->m = NULL;
	clrmemtrace_mutex_unlock(&r->lock);
	relay_Release(&r->iface);
}

/* ---------- IUnknown ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_QueryInterface(IHostMemoryManager *iface, REFIID riid,
							void **ppv)
{
	return clrmemtrace__unknown_query(iface, &impl_from_IHostMemoryManager(iface)->refs,
					  &IID_IHostMemoryManager, riid, ppv);
}

static ULONG STDMETHODCALLTYPE hostmem_AddRef(IHostMemoryManager *iface)
{
	return clrmemtrace__unknown_addref(&impl_from_IHostMemoryManager(iface)->refs);
}

static void hostmem_destroy(struct hostmem *m)
{
	clrmemtrace__monitor_stop(m);
	clrmemtrace__registry_remove(m);
	if (TRACE_ON_M(m, manager_destroy)) {
		struct vm_stats stats;
		struct ctev_manager_destroy ev = { .manager_id = m->id };

		if (m->wrap) {
			/* A decorator has no vm: what it saw reserved through it. */
			clrmemtrace__vmwrap_stats(m->wrap, &stats);
		} else {
			clrmemtrace__vm_lock(m->vm);
			clrmemtrace__vm_stats(m->vm, &stats);
			clrmemtrace__vm_unlock(m->vm);
		}
		ev.regions = stats.regions;
		ev.reserved_bytes = stats.reserved_bytes;
		ev.committed_bytes = stats.committed_bytes;
		CLRMEMTRACE_TRACE(manager_destroy, &ev);
	}
	if (m->relay) {
		relay_detach(m->relay);
	}
	if (m->callback) {
		m->callback->lpVtbl->Release(m->callback);
	}
	clrmemtrace__vm_destroy(m->vm);
	clrmemtrace__vmwrap_destroy(m->wrap);
	clrmemtrace_mutex_destroy(&m->lock);
	free(m->vas);
	free(m->name);
	free(m);
}

static ULONG STDMETHODCALLTYPE hostmem_Release(IHostMemoryManager *iface)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	ULONG left;

	/*
	 * Before the count drops: a session that just started must get its dump
	 * while this may still be a live manager (dumps skip managers on their
	 * way out), or its manager_destroy would name a manager it never saw.
	 */
	clrmemtrace__trace_sync();
	if (clrmemtrace__unknown_release(&m->refs, &left)) {
		hostmem_destroy(m);
	}
	return left;
}

/* ---------- Heaps ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_CreateMalloc(IHostMemoryManager *iface, DWORD type,
						      IHostMalloc **ppMalloc)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint64_t t0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, malloc_create));
	if (m->inner) {
		hr = clrmemtrace__hostmalloc_wrap(m, type, ppMalloc);
	} else if (!ppMalloc) {
		hr = E_POINTER;
	} else {
		*ppMalloc = NULL;
		if (type & ~(DWORD)(MALLOC_THREADSAFE | MALLOC_EXECUTABLE)) {
			hr = E_INVALIDARG;
		} else {
			hr = clrmemtrace__hostmalloc_create(m, type, ppMalloc);
		}
	}
	if (TRACE_ON_M(m, malloc_create)) {
		struct ctev_malloc_create ev = {
			.manager_id = m->id,
			.malloc_type = type,
			.hr = hr,
		};

		/* A heap handed out is always ours (a decorator wraps the inner one). */
		if (SUCCEEDED(hr) && ppMalloc && *ppMalloc) {
			struct hostmalloc *h = container_of(*ppMalloc, struct hostmalloc,
							    IHostMalloc_iface);

			ev.heap_id = h->id;
			ev.heap = (uintptr_t)*ppMalloc;
		}
		ev.duration_ns = trace_elapsed(t0);
		CLRMEMTRACE_TRACE(malloc_create, &ev);
	}
	return hr;
}

/* ---------- Virtual memory ---------- */

static void trace_virtual_alloc(struct hostmem *m, void *address, SIZE_T size, DWORD type,
				DWORD protect, EMemoryCriticalLevel level, void *result, HRESULT hr,
				int err, uint64_t t0)
{
	struct ctev_virtual_alloc ev = {
		.manager_id = m->id,
		.address = (uintptr_t)address,
		.size = size,
		.type = type,
		.protect = protect,
		.level = (int32_t)level,
		.hr = hr,
		.result = (uintptr_t)result,
		.seq = m->wrap ? clrmemtrace__vmwrap_seq(m->wrap) : clrmemtrace__vm_seq(m->vm),
		.duration_ns = trace_elapsed(t0),
		.reason = clrmemtrace__policy_reason(err),
	};

	CLRMEMTRACE_TRACE(virtual_alloc, &ev);
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualAlloc(IHostMemoryManager *iface, void *pAddress,
						      SIZE_T dwSize, DWORD flAllocationType,
						      DWORD flProtect,
						      EMemoryCriticalLevel eCriticalLevel,
						      void **ppMem)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	void *result = NULL;
	uint64_t t0;
	HRESULT hr;
	int err;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, virtual_alloc));
	if (m->wrap) {
		/* Forwarded as it came: the inner manager validates. */
		hr = clrmemtrace__vmwrap_alloc(m->wrap, pAddress, dwSize, flAllocationType, flProtect,
					       eCriticalLevel, ppMem);
		if (TRACE_ON_M(m, virtual_alloc)) {
			trace_virtual_alloc(m, pAddress, dwSize, flAllocationType, flProtect,
					    eCriticalLevel, hr == S_OK && ppMem ? *ppMem : NULL, hr, 0,
					    t0);
		}
		return hr;
	}
	if (!ppMem) {
		hr = E_POINTER;
	} else if ((*ppMem = NULL, !valid_level(eCriticalLevel))) {
		hr = E_INVALIDARG;
	} else {
		clrmemtrace__vm_lock(m->vm);
		err = clrmemtrace__vm_alloc(m->vm, pAddress, dwSize, flAllocationType, flProtect,
					    (int)eCriticalLevel, &result);
		hr = clrmemtrace__hresult(err);
		/* Traced under the lock, so the trace has state changes in their order. */
		if (TRACE_ON_M(m, virtual_alloc)) {
			trace_virtual_alloc(m, pAddress, dwSize, flAllocationType, flProtect,
					    eCriticalLevel, result, hr, err, t0);
		}
		clrmemtrace__vm_unlock(m->vm);
		*ppMem = result;
		return hr;
	}
	if (TRACE_ON_M(m, virtual_alloc)) {
		trace_virtual_alloc(m, pAddress, dwSize, flAllocationType, flProtect, eCriticalLevel,
				    NULL, hr, 0, t0);
	}
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualFree(IHostMemoryManager *iface, LPVOID lpAddress,
						     SIZE_T dwSize, DWORD dwFreeType)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint64_t t0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, virtual_free));
	if (m->wrap) {
		hr = clrmemtrace__vmwrap_free(m->wrap, lpAddress, dwSize, dwFreeType);
	} else {
		clrmemtrace__vm_lock(m->vm);
		hr = clrmemtrace__hresult(clrmemtrace__vm_free(m->vm, lpAddress, dwSize, dwFreeType));
	}
	if (TRACE_ON_M(m, virtual_free)) {
		struct ctev_virtual_free ev = {
			.manager_id = m->id,
			.address = (uintptr_t)lpAddress,
			.size = dwSize,
			.type = dwFreeType,
			.hr = hr,
			.seq = m->wrap ? clrmemtrace__vmwrap_seq(m->wrap) : clrmemtrace__vm_seq(m->vm),
			.duration_ns = trace_elapsed(t0),
		};

		CLRMEMTRACE_TRACE(virtual_free, &ev);
	}
	if (!m->wrap) {
		clrmemtrace__vm_unlock(m->vm);
	}
	return hr;
}

/*
 * Takes no lock and triggers no state dump: VirtualQuery must never wait
 * (queries made before a session's first dump are simply not checkable).
 */
static HRESULT STDMETHODCALLTYPE hostmem_VirtualQuery(IHostMemoryManager *iface, void *lpAddress,
						      void *lpBuffer, SIZE_T dwLength,
						      SIZE_T *pResult)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	MEMORY_BASIC_INFORMATION mbi;
	uint64_t seq_before = 0, seq_after = 0, t0;
	HRESULT hr;

	t0 = trace_start(TRACE_ON_M(m, virtual_query));
	memset(&mbi, 0, sizeof(mbi));
	if (m->wrap) {
		hr = clrmemtrace__vmwrap_query(m->wrap, lpAddress, lpBuffer, dwLength, pResult,
					       &seq_before, &seq_after);
		if (hr == S_OK && lpBuffer && dwLength >= sizeof(mbi)) {
			memcpy(&mbi, lpBuffer, sizeof(mbi));
		}
	} else if (!pResult) {
		hr = E_POINTER;
	} else if ((*pResult = 0, dwLength < sizeof(MEMORY_BASIC_INFORMATION))) {
		hr = HRESULT_FROM_WIN32(ERROR_BAD_LENGTH); /* #55 */
	} else if (!lpBuffer) {
		hr = HRESULT_FROM_WIN32(ERROR_NOACCESS);
	} else {
		hr = clrmemtrace__hresult(
			clrmemtrace__vm_query(m->vm, lpAddress, &mbi, &seq_before, &seq_after));
		if (hr == S_OK) {
			memcpy(lpBuffer, &mbi, sizeof(mbi));
			*pResult = sizeof(mbi);
		} else {
			memset(&mbi, 0, sizeof(mbi));
		}
	}
	if (TRACE_ON_M(m, virtual_query)) {
		struct ctev_virtual_query ev = {
			.manager_id = m->id,
			.address = (uintptr_t)lpAddress,
			.length = dwLength,
			.result = hr == S_OK && pResult ? *pResult : 0,
			.base = (uintptr_t)mbi.BaseAddress,
			.allocation_base = (uintptr_t)mbi.AllocationBase,
			.allocation_protect = mbi.AllocationProtect,
			.state = mbi.State,
			.region_size = mbi.RegionSize,
			.protect = mbi.Protect,
			.mem_type = mbi.Type,
			.hr = hr,
			.seq_before = seq_before,
			.seq_after = seq_after,
			.duration_ns = trace_elapsed(t0),
		};

		CLRMEMTRACE_TRACE(virtual_query, &ev);
	}
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmem_VirtualProtect(IHostMemoryManager *iface, void *lpAddress,
							SIZE_T dwSize, DWORD flNewProtect,
							DWORD *pflOldProtect)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint32_t old = 0;
	uint64_t t0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, virtual_protect));
	if (m->wrap) {
		hr = clrmemtrace__vmwrap_protect(m->wrap, lpAddress, dwSize, flNewProtect,
						 pflOldProtect);
		old = hr == S_OK && pflOldProtect ? *pflOldProtect : 0;
		goto trace;
	}
	if (pflOldProtect) {
		*pflOldProtect = 0;
	}
	clrmemtrace__vm_lock(m->vm);
	if (!pflOldProtect) {
		hr = HRESULT_FROM_WIN32(ERROR_NOACCESS); /* #44 */
	} else {
		hr = clrmemtrace__hresult(
			clrmemtrace__vm_protect(m->vm, lpAddress, dwSize, flNewProtect, &old));
		if (hr != S_OK) {
			old = 0;
		}
		*pflOldProtect = old;
	}
trace:
	if (TRACE_ON_M(m, virtual_protect)) {
		struct ctev_virtual_protect ev = {
			.manager_id = m->id,
			.address = (uintptr_t)lpAddress,
			.size = dwSize,
			.protect = flNewProtect,
			.old_protect = old,
			.hr = hr,
			.seq = m->wrap ? clrmemtrace__vmwrap_seq(m->wrap) : clrmemtrace__vm_seq(m->vm),
			.duration_ns = trace_elapsed(t0),
		};

		CLRMEMTRACE_TRACE(virtual_protect, &ev);
	}
	if (!m->wrap) {
		clrmemtrace__vm_unlock(m->vm);
	}
	return hr;
}

/* ---------- Memory pressure ---------- */

static HRESULT STDMETHODCALLTYPE hostmem_GetMemoryLoad(IHostMemoryManager *iface,
						       DWORD *pMemoryLoad,
						       SIZE_T *pAvailableBytes)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint64_t avail = 0, t0;
	uint32_t load = 0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, memory_load));
	if (m->inner) {
		hr = m->inner->lpVtbl->GetMemoryLoad(m->inner, pMemoryLoad, pAvailableBytes);
		load = hr == S_OK && pMemoryLoad ? *pMemoryLoad : 0;
		avail = hr == S_OK && pAvailableBytes ? *pAvailableBytes : 0;
		goto trace;
	}
	if (pMemoryLoad) {
		*pMemoryLoad = 0;
	}
	if (pAvailableBytes) {
		*pAvailableBytes = 0;
	}
	if (!pMemoryLoad || !pAvailableBytes) {
		hr = E_POINTER;
	} else if (m->policy.commit_budget) {
		/* Under a budget the load is the budget's. */
		load = clrmemtrace__policy_budget_load(&m->policy, &avail);
		*pMemoryLoad = load;
		*pAvailableBytes = avail > SIZE_MAX ? SIZE_MAX : (SIZE_T)avail;
		hr = S_OK;
	} else {
		hr = clrmemtrace__hresult(clrmemtrace__memory_status(&load, &avail, NULL));
		if (hr == S_OK) {
			*pMemoryLoad = load;
			*pAvailableBytes = avail > SIZE_MAX ? SIZE_MAX : (SIZE_T)avail;
		} else {
			load = 0;
			avail = 0;
		}
	}
trace:
	if (TRACE_ON_M(m, memory_load)) {
		struct ctev_memory_load ev = {
			.manager_id = m->id,
			.load = load,
			.hr = hr,
			.available = avail,
			.duration_ns = trace_elapsed(t0),
		};

		CLRMEMTRACE_TRACE(memory_load, &ev);
	}
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmem_RegisterMemoryNotificationCallback(
	IHostMemoryManager *iface, ICLRMemoryNotificationCallback *pCallback)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	ICLRMemoryNotificationCallback *old = NULL;
	uint64_t t0;
	HRESULT hr = S_OK;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, notification_register));
	if (!pCallback) {
		hr = E_INVALIDARG;
	} else {
		pCallback->lpVtbl->AddRef(pCallback);
		clrmemtrace_mutex_lock(&m->lock);
		old = m->callback;
		m->callback = pCallback;
		clrmemtrace_mutex_unlock(&m->lock);
		if (m->inner) {
			/* The inner manager notifies our relay, which traces and passes on. */
			hr = m->inner->lpVtbl->RegisterMemoryNotificationCallback(m->inner,
										  relay_iface(m->relay));
		} else {
			/* From now on the host, not the runtime, reports memory pressure. */
			hr = clrmemtrace__hresult(clrmemtrace__monitor_start(m));
		}
	}
	if (TRACE_ON_M(m, notification_register)) {
		struct ctev_notification_register ev = {
			.manager_id = m->id,
			.callback = (uintptr_t)pCallback,
			.previous = (uintptr_t)old,
			.hr = hr,
			.duration_ns = trace_elapsed(t0),
		};

		CLRMEMTRACE_TRACE(notification_register, &ev);
	}
	/* Released outside the lock: it calls into the runtime. */
	if (old) {
		old->lpVtbl->Release(old);
	}
	return hr;
}

/* ---------- Address space taken directly from the OS ---------- */

static bool valid_range(LPVOID start, SIZE_T size)
{
	uintptr_t end;

	return size != 0 && !__builtin_add_overflow((uintptr_t)start, size, &end);
}

static void trace_vas(struct hostmem *m, int which, LPVOID address, SIZE_T size, HRESULT hr,
		      const char *reason, uint64_t t0)
{
	struct ctev_vas ev = {
		.manager_id = m->id,
		.address = (uintptr_t)address,
		.size = size,
		.hr = hr,
		.total = __atomic_load_n(&m->vas_bytes, __ATOMIC_RELAXED),
		.duration_ns = trace_elapsed(t0),
		.reason = reason,
	};

	if (which == 0) {
		CLRMEMTRACE_TRACE(vas_needs, &ev);
	} else if (which == 1) {
		CLRMEMTRACE_TRACE(vas_acquired, &ev);
	} else {
		CLRMEMTRACE_TRACE(vas_released, &ev);
	}
}

/*
 * The runtime is about to map a view of a file outside the manager: refused
 * when it would take the address space over its budget.
 */
static HRESULT STDMETHODCALLTYPE hostmem_NeedsVirtualAddressSpace(IHostMemoryManager *iface,
								  LPVOID startAddress, SIZE_T size)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	const char *reason = "";
	uint64_t t0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, vas_needs));
	/* startAddress may be NULL: the runtime wants a mapping anywhere. */
	if (m->inner) {
		hr = m->inner->lpVtbl->NeedsVirtualAddressSpace(m->inner, startAddress, size);
	} else if (!valid_range(startAddress, size)) {
		hr = E_INVALIDARG;
	} else if (!clrmemtrace__policy_address_space_fits(&m->policy, size)) {
		hr = E_OUTOFMEMORY;
		reason = clrmemtrace__policy_reason(ERROR_OUTOFMEMORY);
	} else {
		hr = S_OK;
	}
	if (TRACE_ON_M(m, vas_needs)) {
		trace_vas(m, 0, startAddress, size, hr, reason, t0);
	}
	return hr;
}

/* Adds a range the runtime took from the OS; m->lock held. 0, or why not. */
static HRESULT vas_add(struct hostmem *m, LPVOID start, SIZE_T size)
{
	size_t i;

	for (i = 0; i < m->vas_count; i++) {
		if (m->vas[i].start == (uintptr_t)start) {
			return E_INVALIDARG; /* already acquired and not released */
		}
	}
	if (m->vas_count == m->vas_capacity) {
		size_t cap = m->vas_capacity ? m->vas_capacity * 2 : 16;
		struct vas_range *v = realloc(m->vas, cap * sizeof(*v));

		if (!v) {
			return E_OUTOFMEMORY;
		}
		m->vas = v;
		m->vas_capacity = cap;
	}
	m->vas[m->vas_count].start = (uintptr_t)start;
	m->vas[m->vas_count].size = size;
	m->vas_count++;
	m->vas_bytes += size;
	return S_OK;
}

static HRESULT STDMETHODCALLTYPE hostmem_AcquiredVirtualAddressSpace(IHostMemoryManager *iface,
								     LPVOID startAddress,
								     SIZE_T size)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	uint64_t t0;
	HRESULT hr;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, vas_acquired));
	if (m->inner) {
		hr = m->inner->lpVtbl->AcquiredVirtualAddressSpace(m->inner, startAddress, size);
		clrmemtrace_mutex_lock(&m->lock);
		if (hr == S_OK && startAddress && valid_range(startAddress, size)) {
			/* Remembered for state dumps; the inner manager's answer stands. */
			(void)vas_add(m, startAddress, size);
		}
	} else {
		clrmemtrace_mutex_lock(&m->lock);
		hr = startAddress && valid_range(startAddress, size) ? vas_add(m, startAddress, size)
								     : E_INVALIDARG;
		if (hr == S_OK) {
			/* Taken already: accounted even beyond the budget (Needs is where it is refused). */
			__atomic_add_fetch(&m->policy.reserved, size, __ATOMIC_RELAXED);
		}
	}
	if (TRACE_ON_M(m, vas_acquired)) {
		trace_vas(m, 1, startAddress, size, hr, "", t0);
	}
	clrmemtrace_mutex_unlock(&m->lock);
	return hr;
}

static HRESULT STDMETHODCALLTYPE hostmem_ReleasedVirtualAddressSpace(IHostMemoryManager *iface,
								     LPVOID startAddress)
{
	struct hostmem *m = impl_from_IHostMemoryManager(iface);
	HRESULT hr = HOST_E_INVALIDOPERATION;
	size_t i, size = 0;
	uint64_t t0;

	clrmemtrace__trace_sync();
	t0 = trace_start(TRACE_ON_M(m, vas_released));
	if (m->inner) {
		HRESULT inner_hr = m->inner->lpVtbl->ReleasedVirtualAddressSpace(m->inner,
										 startAddress);

		/* The ranges this decorator tracks follow; the inner manager decides the result. */
		clrmemtrace_mutex_lock(&m->lock);
		for (i = 0; i < m->vas_count; i++) {
			if (m->vas[i].start == (uintptr_t)startAddress) {
				size = m->vas[i].size;
				m->vas_bytes -= size;
				m->vas[i] = m->vas[--m->vas_count];
				break;
			}
		}
		hr = inner_hr;
		goto end;
	}
	clrmemtrace_mutex_lock(&m->lock);
	if (!startAddress) {
		hr = E_INVALIDARG;
	} else {
		for (i = 0; i < m->vas_count; i++) {
			if (m->vas[i].start == (uintptr_t)startAddress) {
				size = m->vas[i].size;
				m->vas_bytes -= size;
				m->vas[i] = m->vas[--m->vas_count];
				clrmemtrace__policy_uncharge(&m->policy, 0, size);
				hr = S_OK;
				break;
			}
		}
	}
end:
	if (TRACE_ON_M(m, vas_released)) {
		trace_vas(m, 2, startAddress, size, hr, "", t0);
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

/* The policy's budget crossed a notification threshold. */
static void policy_kick(void *ctx)
{
	clrmemtrace__monitor_kick(ctx);
}

/* In manager_create's flags: this manager decorates another (clrmemtrace_wrap). */
#define TRACE_FLAG_WRAPPED 0x80000000u

static HRESULT create_manager(const clrmemtrace_options *options, IHostMemoryManager *inner,
			      IHostMemoryManager **out)
{
	clrmemtrace_options opts;
	const char *what = NULL;
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
	clrmemtrace__trace_init();
	m = calloc(1, sizeof(*m));
	if (!m) {
		return E_OUTOFMEMORY;
	}
	m->IHostMemoryManager_iface.lpVtbl = &hostmem_vtbl;
	m->refs = 1;
	m->id = clrmemtrace__next_id();
	m->flags = opts.flags;
	m->trace = clrmemtrace__tracing && !(opts.flags & CLRMEMTRACE_FLAG_NO_TRACE);
	if (opts.name) {
		m->name = strdup(opts.name);
		if (!m->name) {
			free(m);
			return E_OUTOFMEMORY;
		}
	}
	err = clrmemtrace__policy_init(&m->policy, &opts, &what);
	if (err) {
		if (getenv("CLRMEMTRACE_DEBUG")) {
			fprintf(stderr, "clrmemtrace: cannot create a manager: bad %s\n", what);
		}
		free(m->name);
		free(m);
		return E_INVALIDARG;
	}
	m->policy.kick = policy_kick;
	m->policy.kick_ctx = m;
	if (inner) {
		m->inner = inner;
		err = clrmemtrace__vmwrap_create(inner, &m->wrap);
		if (!err) {
			m->relay = relay_new(m);
			if (!m->relay) {
				clrmemtrace__vmwrap_destroy(m->wrap);
				err = ERROR_NOT_ENOUGH_MEMORY;
			}
		}
	} else {
		err = clrmemtrace__vm_create(&m->policy, &m->vm);
	}
	if (err) {
		free(m->name);
		free(m);
		return clrmemtrace__hresult(err);
	}
	clrmemtrace_mutex_init(&m->lock);
	clrmemtrace__trace_sync();
	clrmemtrace__registry_add(m);
	if (TRACE_ON_M(m, manager_create)) {
		struct ctev_manager_create ev = {
			.manager_id = m->id,
			.manager = (uintptr_t)&m->IHostMemoryManager_iface,
			.flags = m->flags | (inner ? TRACE_FLAG_WRAPPED : 0),
			.page_size = (uint32_t)clrmemtrace__sys.page_size,
			.name = m->name ? m->name : "",
			.version = clrmemtrace_version(),
		};

		CLRMEMTRACE_TRACE(manager_create, &ev);
	}
	*out = &m->IHostMemoryManager_iface;
	return S_OK;
}

HRESULT clrmemtrace_create(const clrmemtrace_options *options, IHostMemoryManager **out)
{
	return create_manager(options, NULL, out);
}

HRESULT clrmemtrace_wrap(IHostMemoryManager *inner, const clrmemtrace_options *options,
			 IHostMemoryManager **out)
{
	if (out) {
		*out = NULL;
	}
	if (!inner || !inner->lpVtbl) {
		return E_INVALIDARG;
	}
	return create_manager(options, inner, out);
}
