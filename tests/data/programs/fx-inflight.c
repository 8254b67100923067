/* SPDX-License-Identifier: MIT */
/*
 * Recorded by a session started while the program runs, with calls under way
 * on other threads as the library dumps the state: their events come before
 * their manager's dump, and heap calls come between the manager's
 * statedump_begin and its heap's statedump_heap, as they do under any load.
 *
 * Two managers, each with a few dozen runs of pages and a big heap (one live
 * block left in every few thousand: the dump walks them all, which takes a
 * millisecond or two, and lists a few hundred): "inflight-a", created first
 * (the library dumps the newest manager first, so it is dumped last), with a
 * small heap too, and "inflight-b". The program prints "ready" and waits for
 * a line on its standard input (sent once the session has started). Then two
 * workers call on manager a, one allocating and freeing blocks of its small
 * heap, the other committing, querying and decommitting pages, while the main
 * thread makes the call that dumps the state; they stop a moment after it
 * returns. The workers sleep about 20 us between calls, so the trace stays
 * small.
 */
#include "fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <time.h>

#define RESERVATIONS 6
#define BLOCKS 8
#define ROUNDS_MAX 2000
#define BIG_BLOCKS 400000 /* of 16 bytes: about 100 spans of 64 KiB */
#define BIG_KEEP 4000     /* one block in BIG_KEEP stays live */

static IHostMemoryManager *a, *b;
static IHostMalloc *small, *big_a, *big_b;
static char *work; /* a reservation of a the VM worker commits and decommits in */
static atomic_int phase; /* 0 wait, 1 run, 2 stop */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t started = PTHREAD_COND_INITIALIZER;

static void pause_ns(long ns)
{
	struct timespec t = { 0, ns };

	nanosleep(&t, NULL);
}

static void wait_run(void)
{
	/* Sleeps of microseconds, not the default 50 us of timer slack. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	pthread_mutex_lock(&lock);
	while (atomic_load(&phase) == 0) {
		pthread_cond_wait(&started, &lock);
	}
	pthread_mutex_unlock(&lock);
}

/* A heap with BIG_BLOCKS / BIG_KEEP live blocks spread over all the spans it took. */
static IHostMalloc *big_heap(IHostMemoryManager *mm)
{
	void **blocks = malloc(BIG_BLOCKS * sizeof(*blocks));
	IHostMalloc *h;
	int i;

	if (!blocks) {
		exit(1);
	}
	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &h));
	for (i = 0; i < BIG_BLOCKS; i++) {
		fx_ok("Alloc", IHostMalloc_Alloc(h, 16, eTaskCritical, &blocks[i]));
	}
	for (i = 0; i < BIG_BLOCKS; i++) {
		if (i % BIG_KEEP) {
			fx_ok("Free", IHostMalloc_Free(h, blocks[i]));
		}
	}
	free(blocks);
	return h;
}

static void *heap_worker(void *arg)
{
	void *live[BLOCKS] = { 0 };
	int i;

	(void)arg;
	wait_run();
	for (i = 0; i < ROUNDS_MAX && atomic_load(&phase) == 1; i++) {
		void **slot = &live[i % BLOCKS];

		if (*slot) {
			fx_ok("Free", IHostMalloc_Free(small, *slot));
		}
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(small, 48 + (SIZE_T)(i % 5) * 16,
							   eTaskCritical, (char *)"inflight.c", 40,
							   slot));
		pause_ns(20000);
	}
	return NULL;
}

static void *vm_worker(void *arg)
{
	int i;

	(void)arg;
	wait_run();
	for (i = 0; i < ROUNDS_MAX && atomic_load(&phase) == 1; i++) {
		char *p = work + (SIZE_T)(i % 8) * PAGE;
		MEMORY_BASIC_INFORMATION m;
		SIZE_T res;

		fx_commit(a, p, PAGE, PAGE_READWRITE);
		fx_ok("VirtualQuery", IHostMemoryManager_VirtualQuery(a, p, &m, sizeof(m), &res));
		fx_ok("VirtualFree", IHostMemoryManager_VirtualFree(a, p, PAGE, MEM_DECOMMIT));
		pause_ns(20000);
	}
	return NULL;
}

/* A reservation with every other page committed: PAGES / 2 + 1 runs. */
static char *striped(IHostMemoryManager *mm, int pages)
{
	char *r = fx_reserve(mm, (SIZE_T)pages * PAGE, MEM_RESERVE, PAGE_NOACCESS);
	int i;

	for (i = 1; i < pages; i += 2) {
		fx_commit(mm, r + (SIZE_T)i * PAGE, PAGE, i % 4 == 1 ? PAGE_READWRITE
								 : PAGE_READONLY);
	}
	return r;
}

int main(void)
{
	pthread_t heap_thread, vm_thread;
	void *blocks[BLOCKS];
	char line[16], *rb = NULL;
	int i;

	a = fx_manager("inflight-a");
	b = fx_manager("inflight-b");
	/* Dumped newest first: a's big heap, then its small one, which the worker uses. */
	fx_ok("CreateMalloc", IHostMemoryManager_CreateMalloc(a, MALLOC_THREADSAFE, &small));
	big_a = big_heap(a);
	big_b = big_heap(b);
	for (i = 0; i < RESERVATIONS; i++) {
		striped(a, 8);
		rb = striped(b, 8);
	}
	work = fx_reserve(a, 64 * KiB, MEM_RESERVE, PAGE_NOACCESS);
	for (i = 0; i < BLOCKS; i++) {
		fx_ok("DebugAlloc", IHostMalloc_DebugAlloc(small, 100 + (SIZE_T)i, eTaskCritical,
							   (char *)"early.c", 20, &blocks[i]));
	}
	if (pthread_create(&heap_thread, NULL, heap_worker, NULL) ||
	    pthread_create(&vm_thread, NULL, vm_worker, NULL)) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		return 1;
	}

	pthread_mutex_lock(&lock);
	atomic_store(&phase, 1);
	pthread_cond_broadcast(&started);
	pthread_mutex_unlock(&lock);
	/* The first call after the session started: the library dumps every manager first. */
	fx_commit(b, rb, PAGE, PAGE_READWRITE);
	pause_ns(300000);
	atomic_store(&phase, 2);
	pthread_join(heap_thread, NULL);
	pthread_join(vm_thread, NULL);
	fx_ok("Free", IHostMalloc_Free(small, blocks[0]));
	return 0;
}
