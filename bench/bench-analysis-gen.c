/* SPDX-License-Identifier: MIT */
/*
 * The workload bench-analysis records: about EVENTS calls into the library,
 * each one clrmemtrace event, in the mix a runtime makes. Each round frees
 * and allocates two heap blocks (1024 stay live), queries a live
 * reservation, and every other round releases the oldest of 256 live
 * reservations and reserves and commits a new one; every 16th round
 * protects a page of one.
 *
 * Usage: bench-analysis-gen EVENTS [--wait] [--live N]
 * With --wait, reads a line from standard input before the first call (so
 * the recording session can track this process first). With --live N, it
 * then reserves N more 64 KiB regions and exits holding them (N live
 * regions at the end of the trace). Prints the number of events the calls
 * emit.
 */
#include <clrmemtrace.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCKS 1024
#define RESERVATIONS 256
#define PAGE 4096

static void check(const char *what, HRESULT hr)
{
	if (hr != S_OK) {
		fprintf(stderr, "bench-analysis-gen: %s failed: %s\n", what,
			clrmemtrace_hresult_name(hr));
		exit(1);
	}
}

static uint32_t next_random(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

int main(int argc, char **argv)
{
	clrmemtrace_options opts = { sizeof(opts), 0, "bench-analysis" };
	static void *blocks[BLOCKS];
	static char *resv[RESERVATIONS];
	IHostMemoryManager *mm;
	IHostMalloc *heap;
	uint64_t target, calls = 0, round, live = 0;
	uint32_t rnd = 2463534242u;
	bool wait = false, usage = argc < 2;
	unsigned int i;
	int a;

	target = usage ? 0 : strtoull(argv[1], NULL, 10);
	for (a = 2; a < argc && !usage; a++) {
		if (strcmp(argv[a], "--wait") == 0) {
			wait = true;
		} else if (strcmp(argv[a], "--live") == 0 && a + 1 < argc) {
			live = strtoull(argv[++a], NULL, 10);
		} else {
			usage = true;
		}
	}
	if (usage || target == 0) {
		fprintf(stderr, "usage: bench-analysis-gen EVENTS [--wait] [--live N]\n");
		return 2;
	}
	if (wait) {
		char line[16];

		if (!fgets(line, sizeof(line), stdin)) {
			return 1;
		}
	}
	check("clrmemtrace_create", clrmemtrace_create(&opts, &mm));
	check("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	calls += 2;
	for (round = 0; calls < target; round++) {
		MEMORY_BASIC_INFORMATION mbi;
		SIZE_T res;
		unsigned int b;

		for (i = 0; i < 2; i++) {
			b = next_random(&rnd) % BLOCKS;
			if (blocks[b]) {
				check("Free", IHostMalloc_Free(heap, blocks[b]));
				calls++;
			}
			check("Alloc", IHostMalloc_Alloc(heap, 16 + next_random(&rnd) % 2048,
							 eTaskCritical, &blocks[b]));
			calls++;
		}
		if (round % 2 == 0) {
			unsigned int r = (unsigned int)(round / 2) % RESERVATIONS;
			void *piece;

			if (resv[r]) {
				check("VirtualFree", IHostMemoryManager_VirtualFree(mm, resv[r], 0,
										    MEM_RELEASE));
				calls++;
			}
			check("reserve", IHostMemoryManager_VirtualAlloc(
						 mm, NULL, 16 * PAGE * 4, MEM_RESERVE,
						 PAGE_READWRITE, eTaskCritical, (void **)&resv[r]));
			check("commit", IHostMemoryManager_VirtualAlloc(mm, resv[r], 4 * PAGE,
									MEM_COMMIT, PAGE_READWRITE,
									eTaskCritical, &piece));
			calls += 2;
		}
		if (round % 16 == 0) {
			DWORD old;

			check("VirtualProtect",
			      IHostMemoryManager_VirtualProtect(mm, resv[0], PAGE,
								round % 32 ? PAGE_READONLY
									   : PAGE_READWRITE,
								&old));
			calls++;
		}
		i = (unsigned int)(next_random(&rnd) % RESERVATIONS);
		if (resv[i]) {
			check("VirtualQuery", IHostMemoryManager_VirtualQuery(
						      mm, resv[i] + (next_random(&rnd) % 16) * PAGE,
						      &mbi, sizeof(mbi), &res));
			calls++;
		}
	}
	for (i = 0; i < BLOCKS; i++) {
		if (blocks[i]) {
			IHostMalloc_Free(heap, blocks[i]);
			calls++;
		}
	}
	for (i = 0; i < RESERVATIONS; i++) {
		if (resv[i]) {
			IHostMemoryManager_VirtualFree(mm, resv[i], 0, MEM_RELEASE);
			calls++;
		}
	}
	for (round = 0; round < live; round++) {
		void *p;

		check("reserve", IHostMemoryManager_VirtualAlloc(mm, NULL, 16 * PAGE, MEM_RESERVE,
								 PAGE_READWRITE, eTaskCritical, &p));
		calls++;
	}
	if (live) {
		/* The regions stay: the manager is not released. */
		IHostMalloc_Release(heap);
		printf("%llu\n", (unsigned long long)calls + 1);
		return 0;
	}
	/* Each last Release emits one event (malloc_destroy, manager_destroy). */
	IHostMalloc_Release(heap);
	IHostMemoryManager_Release(mm);
	calls += 2;
	printf("%llu\n", (unsigned long long)calls);
	return 0;
}
