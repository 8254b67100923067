/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the programs recorded as the analysis' fixture traces
 * (tests/data/README.md): a call that must succeed, a call that must fail
 * with a given HRESULT, and a manager with a name.
 */
#ifndef FIXTURE_H
#define FIXTURE_H

#include <clrmemtrace.h>

#include <stdio.h>
#include <stdlib.h>

#define KiB ((SIZE_T)1 << 10)
#define MiB ((SIZE_T)1 << 20)
#define PAGE ((SIZE_T)4096)

static inline void fx_ok(const char *what, HRESULT hr)
{
	if (hr != S_OK) {
		fprintf(stderr, "%s failed: %s\n", what, clrmemtrace_hresult_name(hr));
		exit(1);
	}
}

static inline void fx_fails(const char *what, HRESULT hr, HRESULT expected)
{
	if (hr != expected) {
		fprintf(stderr, "%s returned %s, not %s\n", what, clrmemtrace_hresult_name(hr),
			clrmemtrace_hresult_name(expected));
		exit(1);
	}
}

/* Every manager gets a name: Babeltrace2 2.0 may show an empty string field with an
 * earlier event's value (tests/data/README.md). */
static inline IHostMemoryManager *fx_manager(const char *name)
{
	clrmemtrace_options opts = { sizeof(opts), 0, name };
	IHostMemoryManager *mm;

	fx_ok("clrmemtrace_create", clrmemtrace_create(&opts, &mm));
	return mm;
}

/* Queries every run of the reservation at base, as a walker of the address space would. */
static inline void fx_walk(IHostMemoryManager *mm, void *base)
{
	char *p = base;

	for (;;) {
		MEMORY_BASIC_INFORMATION m;
		SIZE_T res;

		fx_ok("VirtualQuery", IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &res));
		if (m.AllocationBase != base) {
			return;
		}
		p += m.RegionSize;
	}
}

static inline void *fx_reserve(IHostMemoryManager *mm, SIZE_T size, DWORD type, DWORD protect)
{
	void *p;

	fx_ok("VirtualAlloc", IHostMemoryManager_VirtualAlloc(mm, NULL, size, type, protect,
							      eTaskCritical, &p));
	return p;
}

static inline void fx_commit(IHostMemoryManager *mm, void *at, SIZE_T size, DWORD protect)
{
	void *p;

	fx_ok("VirtualAlloc(MEM_COMMIT)",
	      IHostMemoryManager_VirtualAlloc(mm, at, size, MEM_COMMIT, protect, eTaskCritical, &p));
}

#endif
