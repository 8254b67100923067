/* SPDX-License-Identifier: MIT */
/*
 * A burst of heap calls meant to overflow a session's tiny buffers (so the
 * tracer discards events), then changes and an explicit state dump that makes
 * the analysis know the state again, then a few more changes and queries.
 *
 * Usage: fx-burst [PAIRS]   (alloc/free pairs in the burst, default 20000)
 */
#include "fixture.h"

#include <time.h>

int main(int argc, char **argv)
{
	IHostMemoryManager *mm = fx_manager("burst");
	IHostMalloc *heap;
	struct timespec pause = { 0, 200 * 1000 * 1000 };
	char *r, *r2;
	void *block, *kept;
	long i, pairs = argc > 1 ? atol(argv[1]) : 20000;

	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	r = fx_reserve(mm, 1 * MiB, MEM_RESERVE, PAGE_NOACCESS);
	fx_commit(mm, r, 4 * PAGE, PAGE_READWRITE);
	fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(heap, 512, eTaskCritical, (char *)"burst.c", 1, &kept));
	for (i = 0; i < pairs; i++) {
		fx_ok("Alloc", IHostMalloc_Alloc(heap, 16 + (SIZE_T)(i % 64), eTaskCritical, &block));
		fx_ok("Free", IHostMalloc_Free(heap, block));
	}
	fx_commit(mm, r + 4 * PAGE, 4 * PAGE, PAGE_READWRITE);
	/* Let the consumer drain the buffers before the dump. */
	nanosleep(&pause, NULL);
	/* S_FALSE when no session records the dump (a run without tracing). */
	if (FAILED(clrmemtrace_statedump())) {
		return 1;
	}
	r2 = fx_reserve(mm, 256 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
	fx_walk(mm, r);
	fx_walk(mm, r2);
	fx_ok("Free", IHostMalloc_Free(heap, kept));
	return 0;
}
