/* SPDX-License-Identifier: MIT */
/*
 * The virtual-memory side of a decorating manager: see vmwrap.h.
 */
#include "vmwrap.h"

#include "mutex.h"

#include <stdlib.h>
#include <string.h>

struct seen {
	uintptr_t base;
	uint64_t size;
};

struct vmwrap {
	IHostMemoryManager *inner;
	uint64_t seq; /* atomic */
	clrmemtrace_mutex lock; /* the reservations seen; never held during an inner call */
	struct seen *seen;
	size_t count, capacity;
	uint64_t reserved_bytes;
};

int clrmemtrace__vmwrap_create(IHostMemoryManager *inner, struct vmwrap **out)
{
	struct vmwrap *w = calloc(1, sizeof(*w));

	if (!w) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	w->inner = inner;
	inner->lpVtbl->AddRef(inner);
	clrmemtrace_mutex_init(&w->lock);
	*out = w;
	return 0;
}

void clrmemtrace__vmwrap_destroy(struct vmwrap *w)
{
	if (!w) {
		return;
	}
	w->inner->lpVtbl->Release(w->inner);
	clrmemtrace_mutex_destroy(&w->lock);
	free(w->seen);
	free(w);
}

static void bump(struct vmwrap *w)
{
	__atomic_add_fetch(&w->seq, 1, __ATOMIC_ACQ_REL);
}

static uint64_t page_up(uint64_t v)
{
	uint64_t mask = clrmemtrace__sys.page_size - 1;

	return (v + mask) & ~mask;
}

/* Remembers a reservation made through us (the rules of analysis/README.md). */
static void remember(struct vmwrap *w, uintptr_t base, uint64_t size)
{
	clrmemtrace_mutex_lock(&w->lock);
	if (w->count == w->capacity) {
		size_t cap = w->capacity ? w->capacity * 2 : 64;
		struct seen *s = realloc(w->seen, cap * sizeof(*s));

		if (!s) {
			/* Only the state dump loses it; the calls themselves are unaffected. */
			clrmemtrace_mutex_unlock(&w->lock);
			return;
		}
		w->seen = s;
		w->capacity = cap;
	}
	w->seen[w->count].base = base;
	w->seen[w->count].size = size;
	w->count++;
	w->reserved_bytes += size;
	clrmemtrace_mutex_unlock(&w->lock);
}

static void forget(struct vmwrap *w, uintptr_t base)
{
	size_t i;

	clrmemtrace_mutex_lock(&w->lock);
	for (i = 0; i < w->count; i++) {
		if (w->seen[i].base == base) {
			w->reserved_bytes -= w->seen[i].size;
			w->seen[i] = w->seen[--w->count];
			break;
		}
	}
	clrmemtrace_mutex_unlock(&w->lock);
}

HRESULT clrmemtrace__vmwrap_alloc(struct vmwrap *w, void *address, SIZE_T size, DWORD type,
				  DWORD protect, EMemoryCriticalLevel level, void **out)
{
	HRESULT hr = w->inner->lpVtbl->VirtualAlloc(w->inner, address, size, type, protect, level,
						     out);

	if (hr != S_OK || !out || (type & MEM_RESET)) {
		return hr;
	}
	if ((type & MEM_RESERVE) || !address) {
		uintptr_t base = (uintptr_t)*out;
		uint64_t end = address ? page_up((uintptr_t)address + size) : base + page_up(size);

		remember(w, base, end - base);
	}
	bump(w);
	return hr;
}

HRESULT clrmemtrace__vmwrap_free(struct vmwrap *w, void *address, SIZE_T size, DWORD type)
{
	HRESULT hr = w->inner->lpVtbl->VirtualFree(w->inner, address, size, type);

	if (hr == S_OK) {
		if (type == MEM_RELEASE) {
			forget(w, (uintptr_t)address & ~(uintptr_t)(clrmemtrace__sys.page_size - 1));
		}
		bump(w);
	}
	return hr;
}

HRESULT clrmemtrace__vmwrap_protect(struct vmwrap *w, void *address, SIZE_T size, DWORD protect,
				    DWORD *old_protect)
{
	HRESULT hr = w->inner->lpVtbl->VirtualProtect(w->inner, address, size, protect, old_protect);

	if (hr == S_OK) {
		bump(w);
	}
	return hr;
}

HRESULT clrmemtrace__vmwrap_query(struct vmwrap *w, void *address, void *buffer, SIZE_T length,
				  SIZE_T *result, uint64_t *seq_before, uint64_t *seq_after)
{
	HRESULT hr;

	*seq_before = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
	hr = w->inner->lpVtbl->VirtualQuery(w->inner, address, buffer, length, result);
	*seq_after = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
	return hr;
}

uint64_t clrmemtrace__vmwrap_seq(struct vmwrap *w)
{
	return __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
}

void clrmemtrace__vmwrap_stats(struct vmwrap *w, struct vm_stats *stats)
{
	clrmemtrace_mutex_lock(&w->lock);
	memset(stats, 0, sizeof(*stats));
	stats->regions = w->count;
	stats->reserved_bytes = w->reserved_bytes;
	clrmemtrace_mutex_unlock(&w->lock);
}

int clrmemtrace__vmwrap_foreach_run(struct vmwrap *w, vm_run_fn fn, void *ctx)
{
	struct seen *copy;
	size_t n, i;
	int ret = 0;

	clrmemtrace_mutex_lock(&w->lock);
	n = w->count;
	copy = n ? malloc(n * sizeof(*copy)) : NULL;
	if (copy) {
		memcpy(copy, w->seen, n * sizeof(*copy));
	}
	clrmemtrace_mutex_unlock(&w->lock);
	if (n && !copy) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	for (i = 0; i < n && !ret; i++) {
		uintptr_t a = copy[i].base, end = copy[i].base + copy[i].size;

		while (a < end && !ret) {
			MEMORY_BASIC_INFORMATION m;
			SIZE_T res = 0;
			struct vm_run run;

			if (w->inner->lpVtbl->VirtualQuery(w->inner, (void *)a, &m, sizeof(m), &res) !=
				    S_OK ||
			    res < sizeof(m) || m.RegionSize == 0 ||
			    (uintptr_t)m.AllocationBase != copy[i].base) {
				break;
			}
			run.base = (uintptr_t)m.BaseAddress;
			run.allocation_base = (uintptr_t)m.AllocationBase;
			run.size = m.RegionSize;
			run.state = m.State;
			run.protect = m.Protect;
			run.allocation_protect = m.AllocationProtect;
			ret = fn(ctx, &run);
			a = (uintptr_t)m.BaseAddress + m.RegionSize;
		}
	}
	free(copy);
	return ret;
}
