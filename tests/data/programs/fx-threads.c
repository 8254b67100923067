/* SPDX-License-Identifier: MIT */
/*
 * Four threads share one manager and one heap: each reserves, commits,
 * protects, decommits and releases its own regions and allocates and frees
 * blocks, while querying its own and the other threads' regions (queries take
 * no lock, so some answers span several changes). The threads run on
 * different CPUs, so their events are in several streams of the trace.
 */
#include "fixture.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 40

static IHostMemoryManager *mm;
static IHostMalloc *heap;
static char *volatile current[THREADS];

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg, i;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t one;

	/* One CPU per thread, so that the events come from several per-CPU streams. */
	if (cpus > 1) {
		CPU_ZERO(&one);
		CPU_SET(self % cpus, &one);
		pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	}

	for (i = 0; i < ROUNDS; i++) {
		MEMORY_BASIC_INFORMATION m;
		char *r = fx_reserve(mm, 256 * KiB, MEM_RESERVE, PAGE_NOACCESS), *other;
		void *block;
		SIZE_T res;
		DWORD old;

		fx_commit(mm, r, (SIZE_T)(1 + i % 7) * PAGE, PAGE_READWRITE);
		current[self] = r;
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(heap, 32 + (SIZE_T)self, eTaskCritical,
							   (char *)"worker.c", 30 + self, &block));
		fx_ok("VirtualProtect",
		      IHostMemoryManager_VirtualProtect(mm, r, PAGE, PAGE_READONLY, &old));
		fx_ok("VirtualQuery", IHostMemoryManager_VirtualQuery(mm, r + PAGE, &m, sizeof(m),
								       &res));
		other = current[(self + 1) % THREADS];
		if (other) {
			fx_ok("VirtualQuery", IHostMemoryManager_VirtualQuery(mm, other, &m,
									       sizeof(m), &res));
		}
		fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, r, PAGE, MEM_DECOMMIT));
		fx_ok("Free", IHostMalloc_Free(heap, block));
		current[self] = NULL;
		fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(mm, r, 0, MEM_RELEASE));
	}
	return NULL;
}

int main(void)
{
	pthread_t threads[THREADS];
	int i;

	mm = fx_manager("threads");
	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	for (i = 0; i < THREADS; i++) {
		if (pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i)) {
			return 1;
		}
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
	}
	IHostMalloc_Release(heap);
	IHostMemoryManager_Release(mm);
	return 0;
}
