/* SPDX-License-Identifier: MIT */
/*
 * IUnknown for the library's COM objects (the manager, its heaps, the
 * decorator's notification relay): each object has one interface besides
 * IUnknown and a reference count that any thread may change.
 */
#ifndef CLRMEMTRACE_UNKNOWN_H
#define CLRMEMTRACE_UNKNOWN_H

#include "internal.h"

/*
 * QueryInterface of the object whose interface `iface` is `iid`: IUnknown
 * and iid give iface, with a reference added to *refs; any other IID gives
 * E_NOINTERFACE. *ppv is NULL on every failure; a NULL ppv is E_POINTER and
 * a NULL riid E_INVALIDARG.
 */
CLRMEMTRACE_HIDDEN HRESULT clrmemtrace__unknown_query(void *iface, uint32_t *refs, const IID *iid,
						       REFIID riid, void **ppv);

/* AddRef: the new count. */
static inline ULONG clrmemtrace__unknown_addref(uint32_t *refs)
{
	return __atomic_add_fetch(refs, 1, __ATOMIC_RELAXED);
}

/*
 * Release: drops one reference and sets *left to the count that remains.
 * True when that was the last one, and the caller destroys the object. A
 * Release past zero is the caller's bug: it changes nothing and returns
 * false, so an object is never destroyed twice.
 */
CLRMEMTRACE_HIDDEN bool clrmemtrace__unknown_release(uint32_t *refs, ULONG *left);

#endif /* CLRMEMTRACE_UNKNOWN_H */
