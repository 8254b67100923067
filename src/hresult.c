/* SPDX-License-Identifier: MIT */
/*
 * HRESULTs: the single translation from internal errors, and their names.
 */
#include "internal.h"

HRESULT clrmemtrace__hresult_slow(int err)
{
	switch (err) {
	case 0:
		return S_OK;
	case ERROR_NOT_ENOUGH_MEMORY:
	case ERROR_OUTOFMEMORY:
	case ERROR_COMMITMENT_LIMIT:
		return E_OUTOFMEMORY;
	default:
		return HRESULT_FROM_WIN32((uint32_t)err);
	}
}

/* Every HRESULT the library returns, plus the hosting ones a caller may meet. */
#define CLRMEMTRACE_HRESULT_MAP(XX)                                          \
	XX(S_OK, "S_OK")                                                     \
	XX(S_FALSE, "S_FALSE")                                               \
	XX(E_NOTIMPL, "E_NOTIMPL")                                           \
	XX(E_NOINTERFACE, "E_NOINTERFACE")                                   \
	XX(E_POINTER, "E_POINTER")                                           \
	XX(E_ABORT, "E_ABORT")                                               \
	XX(E_FAIL, "E_FAIL")                                                 \
	XX(E_UNEXPECTED, "E_UNEXPECTED")                                     \
	XX(E_ACCESSDENIED, "E_ACCESSDENIED")                                 \
	XX(E_HANDLE, "E_HANDLE")                                             \
	XX(E_OUTOFMEMORY, "E_OUTOFMEMORY")                                   \
	XX(E_INVALIDARG, "E_INVALIDARG")                                     \
	XX(HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY),                      \
	   "HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY)")                    \
	XX(HRESULT_FROM_WIN32(ERROR_INVALID_ACCESS),                         \
	   "HRESULT_FROM_WIN32(ERROR_INVALID_ACCESS)")                       \
	XX(HRESULT_FROM_WIN32(ERROR_BAD_LENGTH), "HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)") \
	XX(HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED),                          \
	   "HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)")                        \
	XX(HRESULT_FROM_WIN32(ERROR_PARTIAL_COPY),                           \
	   "HRESULT_FROM_WIN32(ERROR_PARTIAL_COPY)")                         \
	XX(HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS),                        \
	   "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)")                      \
	XX(HRESULT_FROM_WIN32(ERROR_NOACCESS), "HRESULT_FROM_WIN32(ERROR_NOACCESS)") \
	XX(HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR),                         \
	   "HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)")                       \
	XX(HRESULT_FROM_WIN32(ERROR_COMMITMENT_LIMIT),                       \
	   "HRESULT_FROM_WIN32(ERROR_COMMITMENT_LIMIT)")                     \
	XX(HOST_E_DEADLOCK, "HOST_E_DEADLOCK")                               \
	XX(HOST_E_INTERRUPTED, "HOST_E_INTERRUPTED")                         \
	XX(HOST_E_INVALIDOPERATION, "HOST_E_INVALIDOPERATION")               \
	XX(HOST_E_CLRNOTAVAILABLE, "HOST_E_CLRNOTAVAILABLE")                 \
	XX(HOST_E_TIMEOUT, "HOST_E_TIMEOUT")                                 \
	XX(HOST_E_NOT_OWNER, "HOST_E_NOT_OWNER")                             \
	XX(HOST_E_ABANDONED, "HOST_E_ABANDONED")                             \
	XX(HOST_E_EXITPROCESS_THREADABORT, "HOST_E_EXITPROCESS_THREADABORT") \
	XX(HOST_E_EXITPROCESS_ADUNLOAD, "HOST_E_EXITPROCESS_ADUNLOAD")       \
	XX(HOST_E_EXITPROCESS_TIMEOUT, "HOST_E_EXITPROCESS_TIMEOUT")         \
	XX(HOST_E_EXITPROCESS_OUTOFMEMORY, "HOST_E_EXITPROCESS_OUTOFMEMORY") \
	XX(HOST_E_EXITPROCESS_STACKOVERFLOW, "HOST_E_EXITPROCESS_STACKOVERFLOW")

const char *clrmemtrace_hresult_name(HRESULT hr)
{
#define XX(value, name)              \
	if (hr == (HRESULT)(value)) { \
		return name;         \
	}
	CLRMEMTRACE_HRESULT_MAP(XX)
#undef XX
	return "UNKNOWN";
}

const char *clrmemtrace_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
	return STR(CLRMEMTRACE_VERSION_MAJOR) "." STR(CLRMEMTRACE_VERSION_MINOR) "." STR(
		CLRMEMTRACE_VERSION_PATCH);
#undef STR
#undef STR2
}
