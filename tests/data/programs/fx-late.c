/* SPDX-License-Identifier: MIT */
/*
 * Recorded by a session started while the program runs: it sets up two
 * managers, prints "ready" and waits for a line on its standard input (sent
 * once the session has started), then goes on. Its first call after that
 * makes the library dump the state, which the analysis starts from.
 *
 * Usage: fx-late [query-first]
 *   query-first: query the second manager before any other call, so the
 *   session sees that manager before its dump (it stays unknown until then).
 */
#include "fixture.h"

#include <string.h>

int main(int argc, char **argv)
{
	IHostMemoryManager *a = fx_manager("early-a"), *b = fx_manager("early-b");
	IHostMalloc *heap;
	MEMORY_BASIC_INFORMATION m;
	char *ra, *rb, line[16];
	void *blocks[4], *more;
	SIZE_T res;
	DWORD old;
	int i;

	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(a, MALLOC_THREADSAFE, &heap));
	ra = fx_reserve(a, 1 * MiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(a, ra, 8 * PAGE, PAGE_READWRITE);
	fx_commit(a, ra + 16 * PAGE, 2 * PAGE, PAGE_EXECUTE_READ);
	rb = fx_reserve(b, 512 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(b, rb + 64 * PAGE, 64 * PAGE,
							    MEM_DECOMMIT));
	for (i = 0; i < 4; i++) {
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(heap, 256 * (SIZE_T)(i + 1),
							   eTaskCritical, (char *)"early.c", 10 + i,
							   &blocks[i]));
	}

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		return 1;
	}

	if (argc > 1 && strcmp(argv[1], "query-first") == 0) {
		fx_ok("VirtualQuery", IHostMemoryManager_VirtualQuery(b, rb, &m, sizeof(m), &res));
	}
	/* The first call that may dump: every manager's state is recorded before it. */
	fx_commit(a, ra + 8 * PAGE, 4 * PAGE, PAGE_READWRITE);
	fx_ok("VirtualProtect",
	      IHostMemoryManager_VirtualProtect(a, ra + 16 * PAGE, PAGE, PAGE_READONLY, &old));
	fx_ok("Free", IHostMalloc_Free(heap, blocks[1]));
	fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(heap, 4000, eTaskCritical, (char *)"late.c", 50,
						   &more));
	fx_walk(a, ra);
	fx_walk(b, rb);
	fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(b, rb, 0, MEM_RELEASE));
	return 0;
}
