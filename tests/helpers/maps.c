/* SPDX-License-Identifier: MIT */
#include "maps.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(_WIN32)
/*
 * Windows has no /proc: the kernel's view is the OS's own VirtualQuery,
 * which the manager's answers must match field for field (with the Windows
 * backend they come from it; what is checked is that nothing in between
 * changes them).
 */
static void perms_of(const MEMORY_BASIC_INFORMATION *m, char perms[5])
{
	DWORD p = m->Protect & 0xff;

	strcpy(perms, "---p");
	if (m->State != MEM_COMMIT || (m->Protect & PAGE_GUARD) || p == PAGE_NOACCESS) {
		return;
	}
	if (p != PAGE_EXECUTE) {
		perms[0] = 'r';
	}
	if (p == PAGE_READWRITE || p == PAGE_WRITECOPY || p == PAGE_EXECUTE_READWRITE ||
	    p == PAGE_EXECUTE_WRITECOPY) {
		perms[1] = 'w';
	}
	if (p == PAGE_EXECUTE || p == PAGE_EXECUTE_READ || p == PAGE_EXECUTE_READWRITE ||
	    p == PAGE_EXECUTE_WRITECOPY) {
		perms[2] = 'x';
	}
	if (m->Type == MEM_MAPPED && (p == PAGE_READWRITE || p == PAGE_EXECUTE_READWRITE)) {
		perms[3] = 's';
	}
}

bool maps_prot_of(const void *p, char perms[5])
{
	MEMORY_BASIC_INFORMATION m;

	if (VirtualQuery(p, &m, sizeof(m)) != sizeof(m) || m.State == MEM_FREE) {
		return false;
	}
	perms_of(&m, perms);
	return true;
}

bool maps_agree(IHostMemoryManager *mm, void *base, size_t size, char *why, size_t why_len)
{
	uintptr_t a = (uintptr_t)base, end = a + size;

	while (a < end) {
		MEMORY_BASIC_INFORMATION m, os;
		SIZE_T r = 0;
		HRESULT hr = IHostMemoryManager_VirtualQuery(mm, (void *)a, &m, sizeof(m), &r);

		if (hr != S_OK || m.RegionSize == 0) {
			snprintf(why, why_len, "VirtualQuery(%#" PRIxPTR ") failed: %s", a,
				 clrmemtrace_hresult_name(hr));
			return false;
		}
		if (VirtualQuery((void *)a, &os, sizeof(os)) != sizeof(os)) {
			snprintf(why, why_len, "the OS's VirtualQuery(%#" PRIxPTR ") failed: %lu",
				 a, GetLastError());
			return false;
		}
		if (m.BaseAddress != os.BaseAddress || m.AllocationBase != os.AllocationBase ||
		    m.AllocationProtect != os.AllocationProtect || m.RegionSize != os.RegionSize ||
		    m.State != os.State || m.Protect != os.Protect || m.Type != os.Type) {
			snprintf(why, why_len,
				 "%#" PRIxPTR ": the manager says %#lx+%#zx state %#lx "
				 "protect %#lx, the OS %#lx+%#zx state %#lx protect %#lx",
				 a, (unsigned long)(uintptr_t)m.BaseAddress, (size_t)m.RegionSize,
				 m.State, m.Protect, (unsigned long)(uintptr_t)os.BaseAddress,
				 (size_t)os.RegionSize, os.State, os.Protect);
			return false;
		}
		a = (uintptr_t)m.BaseAddress + m.RegionSize;
	}
	return true;
}

#else /* !_WIN32 */
bool maps_prot_of(const void *p, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	if (!f) {
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		uintptr_t s, e;
		char pr[5];

		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s", &s, &e, pr) == 3 &&
		    (uintptr_t)p >= s && (uintptr_t)p < e) {
			memcpy(perms, pr, 5);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static void expected_perms(const MEMORY_BASIC_INFORMATION *m, char out[4])
{
	DWORD p = m->Protect & 0xff;

	strcpy(out, "---");
	if (m->State != MEM_COMMIT || (m->Protect & PAGE_GUARD) || p == PAGE_NOACCESS) {
		return;
	}
	if (p == PAGE_READONLY || p == PAGE_READWRITE || p == PAGE_EXECUTE ||
	    p == PAGE_EXECUTE_READ || p == PAGE_EXECUTE_READWRITE) {
		out[0] = 'r';
	}
	if (p == PAGE_READWRITE || p == PAGE_EXECUTE_READWRITE) {
		out[1] = 'w';
	}
	if (p == PAGE_EXECUTE || p == PAGE_EXECUTE_READ || p == PAGE_EXECUTE_READWRITE) {
		out[2] = 'x';
	}
}

bool maps_agree(IHostMemoryManager *mm, void *base, size_t size, char *why, size_t why_len)
{
	uintptr_t a = (uintptr_t)base, end = a + size;

	while (a < end) {
		MEMORY_BASIC_INFORMATION m;
		SIZE_T r = 0;
		HRESULT hr = IHostMemoryManager_VirtualQuery(mm, (void *)a, &m, sizeof(m), &r);
		char want[4], got[5];
		uintptr_t q;

		if (hr != S_OK || m.RegionSize == 0) {
			snprintf(why, why_len, "VirtualQuery(%#" PRIxPTR ") failed: %s", a,
				 clrmemtrace_hresult_name(hr));
			return false;
		}
		expected_perms(&m, want);
		for (q = a; q < a + m.RegionSize && q < end; q += 4096) {
			bool mapped = maps_prot_of((void *)q, got);

			if (m.State == MEM_FREE) {
				continue;
			}
			if (!mapped) {
				snprintf(why, why_len, "%#" PRIxPTR " is %s in the map but unmapped", q,
					 m.State == MEM_COMMIT ? "committed" : "reserved");
				return false;
			}
			if (strncmp(got, want, 3) != 0) {
				snprintf(why, why_len, "%#" PRIxPTR ": map says %.3s, kernel says %.3s", q,
					 want, got);
				return false;
			}
		}
		a += m.RegionSize;
	}
	return true;
}

#endif /* !_WIN32 */
