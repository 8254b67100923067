/* SPDX-License-Identifier: MIT */
/*
 * Heap blocks from DebugAlloc (file:line) and Alloc, some freed and some not,
 * in two heaps; reservations, some released and some not. The program exits
 * without releasing anything, so the leaks are live at the end of the trace.
 */
#include "fixture.h"

int main(void)
{
	IHostMemoryManager *mm = fx_manager("leaks");
	IHostMalloc *a, *b;
	void *p[16], *keep, *gone, *code;
	int i;

	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &a));
	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, 0, &b));

	/* gc.cpp:120: five blocks, two freed. */
	for (i = 0; i < 5; i++) {
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(a, 100, eTaskCritical, (char *)"gc.cpp", 120, &p[i]));
	}
	fx_ok("Free", IHostMalloc_Free(a, p[1]));
	fx_ok("Free", IHostMalloc_Free(a, p[3]));
	/* loader.cpp:77: two pages, never freed. */
	for (i = 5; i < 7; i++) {
		fx_ok("DebugAlloc",
		      IHostMalloc_DebugAlloc(a, 4096, eAppDomainCritical, (char *)"loader.cpp", 77, &p[i]));
	}
	/* Alloc: four blocks, one freed. */
	for (i = 7; i < 11; i++) {
		fx_ok("Alloc", IHostMalloc_Alloc(a, 48, eTaskCritical, &p[i]));
	}
	fx_ok("Free", IHostMalloc_Free(a, p[8]));
	/* The second heap: jit.cpp:9 leaks one block, jit.cpp:10's are all freed. */
	fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(b, 640, eProcessCritical, (char *)"jit.cpp", 9, &p[11]));
	for (i = 12; i < 15; i++) {
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(b, 32, eTaskCritical, (char *)"jit.cpp", 10, &p[i]));
	}
	for (i = 12; i < 15; i++) {
		fx_ok("Free", IHostMalloc_Free(b, p[i]));
	}

	/* A 1 MiB reservation with 64 KiB committed, kept. */
	keep = fx_reserve(mm, 1 * MiB, MEM_RESERVE, PAGE_READWRITE);
	fx_commit(mm, keep, 64 * KiB, PAGE_READWRITE);
	/* A reservation released: not a leak. */
	gone = fx_reserve(mm, 256 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, gone, 0, MEM_RELEASE));
	/* 2 MiB no-access with two read-only pages, kept. */
	code = fx_reserve(mm, 2 * MiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(mm, (char *)code + 16 * PAGE, 2 * PAGE, PAGE_READONLY);
	fx_walk(mm, keep);
	fx_walk(mm, code);
	return 0;
}
