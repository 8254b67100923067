/* SPDX-License-Identifier: MIT */
/*
 * Value names, from the enumerations of tracepoints/clrmemtrace_tp.h.
 */
#include "names.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct name {
	int64_t value;
	const char *name;
};

static const char *find(const struct name *names, size_t n, int64_t value)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (names[i].value == value) {
			return names[i].name;
		}
	}
	return NULL;
}

static const char *number(int64_t value, char buf[CMT_NAME_MAX])
{
	snprintf(buf, CMT_NAME_MAX, "%" PRId64, value);
	return buf;
}

static const char *unsigned_number(uint64_t value, char buf[CMT_NAME_MAX])
{
	snprintf(buf, CMT_NAME_MAX, "%" PRIu64, value);
	return buf;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct name protections[] = {
	{ CMT_PAGE_NOACCESS, "PAGE_NOACCESS" },
	{ CMT_PAGE_READONLY, "PAGE_READONLY" },
	{ CMT_PAGE_READWRITE, "PAGE_READWRITE" },
	{ CMT_PAGE_WRITECOPY, "PAGE_WRITECOPY" },
	{ CMT_PAGE_EXECUTE, "PAGE_EXECUTE" },
	{ CMT_PAGE_EXECUTE_READ, "PAGE_EXECUTE_READ" },
	{ CMT_PAGE_EXECUTE_READWRITE, "PAGE_EXECUTE_READWRITE" },
	{ CMT_PAGE_EXECUTE_WRITECOPY, "PAGE_EXECUTE_WRITECOPY" },
};

const char *cmt_protect_name(uint32_t p, char buf[CMT_NAME_MAX])
{
	const char *base;

	if (p == 0) {
		return "0";
	}
	if (p & ~0x7ffu) {
		return unsigned_number(p, buf);
	}
	base = find(protections, N(protections), p & 0xff);
	if (!base) {
		return unsigned_number(p, buf);
	}
	snprintf(buf, CMT_NAME_MAX, "%s%s%s%s", base, (p & CMT_PAGE_GUARD) ? "|PAGE_GUARD" : "",
		 (p & CMT_PAGE_NOCACHE) ? "|PAGE_NOCACHE" : "",
		 (p & CMT_PAGE_WRITECOMBINE) ? "|PAGE_WRITECOMBINE" : "");
	return buf;
}

static const struct name states[] = {
	{ CMT_MEM_COMMIT, "MEM_COMMIT" },
	{ CMT_MEM_RESERVE, "MEM_RESERVE" },
	{ CMT_MEM_FREE, "MEM_FREE" },
};

const char *cmt_state_name(uint32_t s, char buf[CMT_NAME_MAX])
{
	const char *n = find(states, N(states), s);

	return n ? n : unsigned_number(s, buf);
}

static const struct name mem_types[] = {
	{ 0x20000, "MEM_PRIVATE" },
	{ 0x40000, "MEM_MAPPED" },
	{ 0x1000000, "MEM_IMAGE" },
};

const char *cmt_mem_type_name(uint32_t t, char buf[CMT_NAME_MAX])
{
	const char *n = find(mem_types, N(mem_types), t);

	return n ? n : unsigned_number(t, buf);
}

static const struct name levels[] = {
	{ 0, "eTaskCritical" },
	{ 1, "eAppDomainCritical" },
	{ 2, "eProcessCritical" },
};

const char *cmt_level_name(int64_t level, char buf[CMT_NAME_MAX])
{
	const char *n = find(levels, N(levels), level);

	return n ? n : number(level, buf);
}

static const struct name availability[] = {
	{ 1, "eMemoryAvailableLow" },
	{ 2, "eMemoryAvailableNeutral" },
	{ 3, "eMemoryAvailableHigh" },
};

const char *cmt_available_name(int64_t level, char buf[CMT_NAME_MAX])
{
	const char *n = find(availability, N(availability), level);

	return n ? n : number(level, buf);
}

#define HR(v) ((int32_t)(v))

static const struct name hresults[] = {
	{ HR(0x0u), "S_OK" },
	{ HR(0x1u), "S_FALSE" },
	{ HR(0x80004001u), "E_NOTIMPL" },
	{ HR(0x80004002u), "E_NOINTERFACE" },
	{ HR(0x80004003u), "E_POINTER" },
	{ HR(0x80004004u), "E_ABORT" },
	{ HR(0x80004005u), "E_FAIL" },
	{ HR(0x8000FFFFu), "E_UNEXPECTED" },
	{ HR(0x80070005u), "E_ACCESSDENIED" },
	{ HR(0x80070006u), "E_HANDLE" },
	{ HR(0x8007000Eu), "E_OUTOFMEMORY" },
	{ HR(0x80070057u), "E_INVALIDARG" },
	{ HR(0x80070008u), "HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY)" },
	{ HR(0x8007000Cu), "HRESULT_FROM_WIN32(ERROR_INVALID_ACCESS)" },
	{ HR(0x80070018u), "HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)" },
	{ HR(0x80070032u), "HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)" },
	{ HR(0x8007012Bu), "HRESULT_FROM_WIN32(ERROR_PARTIAL_COPY)" },
	{ HR(0x800701E7u), "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)" },
	{ HR(0x800703E6u), "HRESULT_FROM_WIN32(ERROR_NOACCESS)" },
	{ HR(0x8007054Fu), "HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)" },
	{ HR(0x800705AFu), "HRESULT_FROM_WIN32(ERROR_COMMITMENT_LIMIT)" },
	{ HR(0x80131020u), "HOST_E_DEADLOCK" },
	{ HR(0x80131021u), "HOST_E_INTERRUPTED" },
	{ HR(0x80131022u), "HOST_E_INVALIDOPERATION" },
	{ HR(0x80131023u), "HOST_E_CLRNOTAVAILABLE" },
	{ HR(0x80131024u), "HOST_E_TIMEOUT" },
	{ HR(0x80131025u), "HOST_E_NOT_OWNER" },
	{ HR(0x80131026u), "HOST_E_ABANDONED" },
};

const char *cmt_hr_name(int32_t hr, char buf[CMT_NAME_MAX])
{
	const char *n = find(hresults, N(hresults), hr);

	return n ? n : number(hr, buf);
}

int cmt_protect_executable(uint32_t p)
{
	return (p & (CMT_PAGE_EXECUTE | CMT_PAGE_EXECUTE_READ | CMT_PAGE_EXECUTE_READWRITE |
		     CMT_PAGE_EXECUTE_WRITECOPY)) != 0;
}

int cmt_protect_writable(uint32_t p)
{
	return (p & (CMT_PAGE_READWRITE | CMT_PAGE_WRITECOPY | CMT_PAGE_EXECUTE_READWRITE |
		     CMT_PAGE_EXECUTE_WRITECOPY)) != 0;
}
