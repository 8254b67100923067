/* SPDX-License-Identifier: MIT */
/*
 * IUnknown's QueryInterface and Release, shared by the library's COM objects.
 */
#include "unknown.h"

HRESULT clrmemtrace__unknown_query(void *iface, uint32_t *refs, const IID *iid, REFIID riid,
				   void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (!riid) {
		return E_INVALIDARG;
	}
	if (clrmemtrace__iid_equal(riid, &IID_IUnknown) || clrmemtrace__iid_equal(riid, iid)) {
		clrmemtrace__unknown_addref(refs);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

bool clrmemtrace__unknown_release(uint32_t *refs, ULONG *left)
{
	uint32_t n = __atomic_load_n(refs, __ATOMIC_RELAXED);

	do {
		if (n == 0) {
			*left = 0;
			return false;
		}
	} while (!__atomic_compare_exchange_n(refs, &n, n - 1, true, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	*left = n - 1;
	return n == 1;
}
