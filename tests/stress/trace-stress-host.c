/* SPDX-License-Identifier: MIT */
/*
 * A host that hammers the library from many threads, for the stress test of
 * the tracing path (tests/python/test_trace_stress.py, which starts and
 * stops LTTng sessions while it runs) and, on its own, for the stress suite.
 * Public API only.
 *
 * Every worker thread works on every manager "slot": a slot holds one
 * manager (named "stress-SLOT-GENERATION") with two shared heaps. A worker
 * owns its reservations and heap blocks, so it knows their exact state: it
 * reserves, commits, protects, decommits and releases, queries its own pages
 * and checks every answer, allocates and frees blocks (Alloc and
 * DebugAlloc) in the shared heaps and in heaps of its own that it creates
 * and releases, and now and then calls GetMemoryLoad and the address-space
 * methods. Now and then a worker replaces a slot's manager: with every other
 * worker kept out of the slot, it releases every reservation and heap of the
 * slot, releases the manager and creates the next one.
 *
 * Usage: trace-stress-host [--threads N] [--slots N] [--seconds S]
 *            [--ops N] [--rate N] [--replace-every N] [--regions N]
 *            [--heap-churn P] [--seed N] [--wait] [--stdin] [--final FILE]
 *
 *   --threads N        worker threads (default 8)
 *   --slots N          managers alive at once (default 3)
 *   --seconds S        stop after S seconds at most (default 5)
 *   --ops N            stop when each worker made N operations (default: no limit)
 *   --rate N           at most N operations per second per worker (default: no limit)
 *   --replace-every N  a worker replaces a manager once every N operations
 *                      on average (default 4000; 0 never)
 *   --regions N        reservations a worker holds at most in a slot
 *                      (default 10, at most 64)
 *   --heap-churn P     P% of the operations create or release a heap
 *                      (default 1)
 *   --seed N           the workers' random seed (default 1)
 *   --wait             print "ready" on standard output and wait for a line on
 *                      standard input before creating anything
 *   --stdin            also stop when standard input says "stop" or ends
 *   --final FILE       when the workers are done, write the final state as
 *                      JSON to FILE (see write_final), then print "done"
 *
 * Nothing is released at the end: the final state stays as written, for a
 * session that still records to compare with.
 *
 * Exit status: 0 when every call returned what it had to, 1 otherwise (the
 * first difference is printed on standard error), 2 for a bad command line.
 */
#include <clrmemtrace.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_SLOTS 16
#define MAX_REGIONS 64   /* per worker and slot */
#define MAX_PAGES 64     /* per reservation */
#define MAX_BLOCKS 48    /* per worker and slot */
#define MAX_OWN_HEAPS 2  /* per worker and slot */
#define SHARED_HEAPS 2
#define MAX_RELEASED 4096

/* ---------- Options and failures ---------- */

static unsigned n_threads = 8, n_slots = 3, max_regions = 10;
static double max_seconds = 5;
static uint64_t max_ops, rate, replace_every = 4000, heap_churn = 1, seed = 1;
static bool wait_go, watch_stdin;
static const char *final_path;

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char failure[1024];
static int stop_flag;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (!failure[0]) {
		va_start(ap, fmt);
		vsnprintf(failure, sizeof(failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_lock);
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
}

static bool stopped(void)
{
	return __atomic_load_n(&stop_flag, __ATOMIC_ACQUIRE) != 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rng {
	uint64_t s;
};

static void rng_seed(struct rng *r, uint64_t s)
{
	uint64_t z = s + 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	r->s = (z ^ (z >> 31)) | 1;
}

static uint64_t rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* ---------- State ---------- */

/* One reservation a worker holds: each page's protection, 0 when reserved. */
struct region {
	uintptr_t base;
	unsigned npages;
	DWORD alloc_protect;
	DWORD prot[MAX_PAGES];
};

struct block {
	IHostMalloc *heap;
	unsigned char *ptr;
	size_t size;
	unsigned char tag;
};

/* What one worker holds in one slot; touched by others only under the slot's write lock. */
struct holding {
	struct region regions[MAX_REGIONS];
	unsigned nregions;
	IHostMalloc *heaps[MAX_OWN_HEAPS];
	unsigned nheaps;
	struct block blocks[MAX_BLOCKS];
	unsigned nblocks;
};

struct slot {
	pthread_rwlock_t lock;
	IHostMemoryManager *mm;
	unsigned generation;
	char name[32];
	IHostMalloc *shared[SHARED_HEAPS];
};

struct worker {
	pthread_t thread;
	unsigned index;
	struct rng rng;
	uint64_t ops, queries, replaced;
	struct holding held[MAX_SLOTS];
};

static struct slot slots[MAX_SLOTS];
static struct worker workers[MAX_THREADS];
static size_t page;
static double deadline;

static pthread_mutex_t released_lock = PTHREAD_MUTEX_INITIALIZER;
static char released[MAX_RELEASED][32];
static unsigned n_released;

static const DWORD protections[] = {
	PAGE_READWRITE,    PAGE_READONLY,          PAGE_NOACCESS,
	PAGE_EXECUTE_READ, PAGE_EXECUTE_READWRITE, PAGE_READWRITE | PAGE_GUARD,
};
#define N_PROTECTIONS (sizeof(protections) / sizeof(protections[0]))

static DWORD any_protection(struct rng *r)
{
	return protections[below(r, N_PROTECTIONS)];
}

/* ---------- Managers ---------- */

static const char *hr_name(HRESULT hr)
{
	return clrmemtrace_hresult_name(hr);
}

/* Creates slot s's next manager and its shared heaps; false (and a failure) if it cannot. */
static bool slot_open(struct slot *s, unsigned index)
{
	clrmemtrace_options opts = { .size = sizeof(opts) };
	HRESULT hr;
	unsigned i;

	snprintf(s->name, sizeof(s->name), "stress-%u-%u", index, s->generation);
	opts.name = s->name;
	hr = clrmemtrace_create(&opts, &s->mm);
	if (hr != S_OK) {
		fail("clrmemtrace_create(%s): %s", s->name, hr_name(hr));
		s->mm = NULL;
		return false;
	}
	for (i = 0; i < SHARED_HEAPS; i++) {
		DWORD type = MALLOC_THREADSAFE | (i == 1 ? MALLOC_EXECUTABLE : 0);

		hr = IHostMemoryManager_CreateMalloc(s->mm, type, &s->shared[i]);
		if (hr != S_OK) {
			fail("CreateMalloc(%s): %s", s->name, hr_name(hr));
			return false;
		}
	}
	return true;
}

/* Frees every block of `heap` that worker w holds in slot si (the heap goes away). */
static void forget_blocks(struct holding *h, IHostMalloc *heap)
{
	unsigned i = 0;

	while (i < h->nblocks) {
		if (h->blocks[i].heap == heap) {
			h->blocks[i] = h->blocks[--h->nblocks];
		} else {
			i++;
		}
	}
}

/*
 * Releases everything of slot si, then the manager, and opens the next one.
 * The caller holds the slot's write lock: no worker is inside it.
 */
static void slot_replace(unsigned si, struct rng *r)
{
	struct slot *s = &slots[si];
	unsigned w, i;
	HRESULT hr;

	for (w = 0; w < n_threads; w++) {
		struct holding *h = &workers[w].held[si];

		for (i = 0; i < h->nregions; i++) {
			hr = IHostMemoryManager_VirtualFree(s->mm, (void *)h->regions[i].base, 0,
							    MEM_RELEASE);
			if (hr != S_OK) {
				fail("%s: release of %#" PRIxPTR " at replacement: %s", s->name,
				     h->regions[i].base, hr_name(hr));
			}
		}
		h->nregions = 0;
		/* Some blocks freed one by one, the rest go with their heap. */
		for (i = 0; i < h->nblocks; i++) {
			if (below(r, 2)) {
				hr = IHostMalloc_Free(h->blocks[i].heap, h->blocks[i].ptr);
				if (hr != S_OK) {
					fail("%s: Free at replacement: %s", s->name, hr_name(hr));
				}
			}
		}
		h->nblocks = 0;
		for (i = 0; i < h->nheaps; i++) {
			IHostMalloc_Release(h->heaps[i]);
		}
		h->nheaps = 0;
	}
	for (i = 0; i < SHARED_HEAPS; i++) {
		IHostMalloc_Release(s->shared[i]);
		s->shared[i] = NULL;
	}
	pthread_mutex_lock(&released_lock);
	if (n_released < MAX_RELEASED) {
		memcpy(released[n_released++], s->name, sizeof(s->name));
	}
	pthread_mutex_unlock(&released_lock);
	IHostMemoryManager_Release(s->mm);
	s->mm = NULL;
	s->generation++;
	slot_open(s, si);
}

/* ---------- The checks of one worker's own memory ---------- */

/* The run of pages of r holding page i, as VirtualQuery must report it. */
static void expected_run(const struct region *r, unsigned i, MEMORY_BASIC_INFORMATION *want)
{
	unsigned j = i;

	while (j < r->npages && r->prot[j] == r->prot[i]) {
		j++;
	}
	memset(want, 0, sizeof(*want));
	want->BaseAddress = (void *)(r->base + i * page);
	want->AllocationBase = (void *)r->base;
	want->AllocationProtect = r->alloc_protect;
	want->RegionSize = (j - i) * page;
	want->State = r->prot[i] ? MEM_COMMIT : MEM_RESERVE;
	want->Protect = r->prot[i];
	want->Type = MEM_PRIVATE;
}

static bool same_mbi(const MEMORY_BASIC_INFORMATION *a, const MEMORY_BASIC_INFORMATION *b)
{
	return a->BaseAddress == b->BaseAddress && a->AllocationBase == b->AllocationBase &&
	       a->AllocationProtect == b->AllocationProtect && a->RegionSize == b->RegionSize &&
	       a->State == b->State && a->Protect == b->Protect && a->Type == b->Type;
}

static void check_query(const struct slot *s, const struct region *r, unsigned i)
{
	MEMORY_BASIC_INFORMATION got, want;
	SIZE_T n = 0;
	HRESULT hr;

	/* Anywhere inside the page: the answer starts at the page. */
	hr = IHostMemoryManager_VirtualQuery(s->mm, (void *)(r->base + i * page + (i * 97) % page),
					     &got, sizeof(got), &n);
	if (hr != S_OK || n != sizeof(got)) {
		fail("%s: VirtualQuery(%#" PRIxPTR "): %s, %zu bytes", s->name, r->base + i * page,
		     hr_name(hr), (size_t)n);
		return;
	}
	expected_run(r, i, &want);
	if (!same_mbi(&got, &want)) {
		fail("%s: VirtualQuery(%#" PRIxPTR "): base %p alloc %p/%#x size %#zx state %#x "
		     "protect %#x type %#x; expected base %p alloc %p/%#x size %#zx state %#x "
		     "protect %#x",
		     s->name, r->base + i * page, got.BaseAddress, got.AllocationBase,
		     (unsigned)got.AllocationProtect, (size_t)got.RegionSize, (unsigned)got.State,
		     (unsigned)got.Protect, (unsigned)got.Type, want.BaseAddress, want.AllocationBase,
		     (unsigned)want.AllocationProtect, (size_t)want.RegionSize, (unsigned)want.State,
		     (unsigned)want.Protect);
	}
}

/* ---------- Operations ---------- */

static void op_reserve(struct worker *w, struct slot *s, struct holding *h)
{
	struct region *r;
	unsigned npages = 16 + (unsigned)below(&w->rng, MAX_PAGES - 15), i;
	DWORD protect = any_protection(&w->rng);
	bool commit = below(&w->rng, 3) == 0;
	void *p = NULL;
	HRESULT hr;

	if (h->nregions == max_regions) {
		return;
	}
	hr = IHostMemoryManager_VirtualAlloc(s->mm, NULL, npages * page,
					     MEM_RESERVE | (commit ? MEM_COMMIT : 0), protect,
					     eTaskCritical, &p);
	if (hr != S_OK || !p) {
		fail("%s: VirtualAlloc(reserve %u pages): %s", s->name, npages, hr_name(hr));
		return;
	}
	r = &h->regions[h->nregions++];
	r->base = (uintptr_t)p;
	r->npages = npages;
	r->alloc_protect = protect;
	for (i = 0; i < npages; i++) {
		r->prot[i] = commit ? protect : 0;
	}
}

/* A random range [*first, *first + *count) of region r. */
static void any_range(struct rng *g, const struct region *r, unsigned *first, unsigned *count)
{
	*first = (unsigned)below(g, r->npages);
	*count = 1 + (unsigned)below(g, r->npages - *first < 8 ? r->npages - *first : 8);
}

static void op_commit(struct worker *w, struct slot *s, struct region *r)
{
	unsigned first, count, i;
	DWORD protect = any_protection(&w->rng);
	void *p = NULL;
	HRESULT hr;

	any_range(&w->rng, r, &first, &count);
	hr = IHostMemoryManager_VirtualAlloc(s->mm, (void *)(r->base + first * page), count * page,
					     MEM_COMMIT, protect, eAppDomainCritical, &p);
	if (hr != S_OK || p != (void *)(r->base + first * page)) {
		fail("%s: VirtualAlloc(commit %#" PRIxPTR "): %s", s->name, r->base + first * page,
		     hr_name(hr));
		return;
	}
	for (i = first; i < first + count; i++) {
		r->prot[i] = protect;
	}
}

static void op_protect(struct worker *w, struct slot *s, struct region *r)
{
	unsigned first = (unsigned)below(&w->rng, r->npages), count = 0, i;
	DWORD protect = any_protection(&w->rng), old = 0;
	HRESULT hr;

	while (first < r->npages && !r->prot[first]) {
		first++;
	}
	if (first == r->npages) {
		return;
	}
	while (first + count < r->npages && r->prot[first + count] && count < 6) {
		count++;
	}
	count = 1 + (unsigned)below(&w->rng, count);
	hr = IHostMemoryManager_VirtualProtect(s->mm, (void *)(r->base + first * page), count * page,
					       protect, &old);
	if (hr != S_OK || old != r->prot[first]) {
		fail("%s: VirtualProtect(%#" PRIxPTR "): %s, old %#x, expected %#x", s->name,
		     r->base + first * page, hr_name(hr), (unsigned)old, (unsigned)r->prot[first]);
		return;
	}
	for (i = first; i < first + count; i++) {
		r->prot[i] = protect;
	}
}

static void op_decommit(struct worker *w, struct slot *s, struct region *r)
{
	unsigned first, count, i;
	HRESULT hr;

	any_range(&w->rng, r, &first, &count);
	hr = IHostMemoryManager_VirtualFree(s->mm, (void *)(r->base + first * page), count * page,
					    MEM_DECOMMIT);
	if (hr != S_OK) {
		fail("%s: VirtualFree(decommit %#" PRIxPTR "): %s", s->name, r->base + first * page,
		     hr_name(hr));
		return;
	}
	for (i = first; i < first + count; i++) {
		r->prot[i] = 0;
	}
}

static void op_release(struct slot *s, struct holding *h, unsigned i)
{
	HRESULT hr = IHostMemoryManager_VirtualFree(s->mm, (void *)h->regions[i].base, 0,
						    MEM_RELEASE);

	if (hr != S_OK) {
		fail("%s: VirtualFree(release %#" PRIxPTR "): %s", s->name, h->regions[i].base,
		     hr_name(hr));
		return;
	}
	h->regions[i] = h->regions[--h->nregions];
}

static size_t any_block_size(struct rng *g)
{
	uint64_t k = below(g, 100);

	if (k < 80) {
		return 1 + (size_t)below(g, 512);
	}
	if (k < 98) {
		return 512 + (size_t)below(g, 16384);
	}
	return 65536 + (size_t)below(g, 262144); /* a mapping of its own */
}

static void op_alloc(struct worker *w, struct slot *s, struct holding *h)
{
	unsigned n = SHARED_HEAPS + h->nheaps;
	unsigned k = (unsigned)below(&w->rng, n);
	IHostMalloc *heap = k < SHARED_HEAPS ? s->shared[k] : h->heaps[k - SHARED_HEAPS];
	size_t size = any_block_size(&w->rng);
	struct block *b;
	void *p = NULL;
	HRESULT hr;

	if (h->nblocks == MAX_BLOCKS) {
		return;
	}
	if (below(&w->rng, 2)) {
		hr = IHostMalloc_DebugAlloc(heap, size, eTaskCritical, (char *)__FILE__,
					    (int)(__LINE__ + w->index), &p);
	} else {
		hr = IHostMalloc_Alloc(heap, size, eTaskCritical, &p);
	}
	if (hr != S_OK || !p || ((uintptr_t)p & 15)) {
		fail("%s: Alloc(%zu): %s, %p", s->name, size, hr_name(hr), p);
		return;
	}
	b = &h->blocks[h->nblocks++];
	b->heap = heap;
	b->ptr = p;
	b->size = size;
	b->tag = (unsigned char)rng_next(&w->rng);
	b->ptr[size - 1] = (unsigned char)~b->tag;
	b->ptr[0] = b->tag;
}

static void op_free(struct worker *w, struct slot *s, struct holding *h)
{
	unsigned i = (unsigned)below(&w->rng, h->nblocks);
	struct block *b = &h->blocks[i];
	HRESULT hr;

	if (b->ptr[0] != b->tag || (b->size > 1 && b->ptr[b->size - 1] != (unsigned char)~b->tag)) {
		fail("%s: block %p of %zu bytes was overwritten", s->name, (void *)b->ptr, b->size);
		return;
	}
	hr = IHostMalloc_Free(b->heap, b->ptr);
	if (hr != S_OK) {
		fail("%s: Free(%p): %s", s->name, (void *)b->ptr, hr_name(hr));
		return;
	}
	*b = h->blocks[--h->nblocks];
}

static void op_heap(struct worker *w, struct slot *s, struct holding *h)
{
	HRESULT hr;

	if (h->nheaps && (h->nheaps == MAX_OWN_HEAPS || below(&w->rng, 2))) {
		unsigned i = (unsigned)below(&w->rng, h->nheaps);
		IHostMalloc *heap = h->heaps[i];

		/* Released with whatever blocks it still has. */
		forget_blocks(h, heap);
		h->heaps[i] = h->heaps[--h->nheaps];
		IHostMalloc_Release(heap);
		return;
	}
	hr = IHostMemoryManager_CreateMalloc(s->mm, below(&w->rng, 4) ? MALLOC_THREADSAFE : 0,
					     &h->heaps[h->nheaps]);
	if (hr != S_OK) {
		fail("%s: CreateMalloc: %s", s->name, hr_name(hr));
		return;
	}
	h->nheaps++;
}

static void op_misc(struct worker *w, struct slot *s, struct holding *h)
{
	MEMORY_BASIC_INFORMATION mbi;
	SIZE_T n, avail = 0;
	DWORD load = 0;
	HRESULT hr;

	switch (below(&w->rng, 3)) {
	case 0:
		hr = IHostMemoryManager_GetMemoryLoad(s->mm, &load, &avail);
		if (hr != S_OK || load > 100) {
			fail("%s: GetMemoryLoad: %s, %u%%", s->name, hr_name(hr), (unsigned)load);
		}
		break;
	case 1:
		/* Memory the manager does not own: this thread's stack. */
		hr = IHostMemoryManager_VirtualQuery(s->mm, &mbi, &mbi, sizeof(mbi), &n);
		if (hr != S_OK || mbi.State != MEM_COMMIT) {
			fail("%s: VirtualQuery(stack): %s, state %#x", s->name, hr_name(hr),
			     (unsigned)mbi.State);
		}
		break;
	default:
		if (h->nregions) {
			/* The runtime reports address space it mapped itself, then gives it back. */
			const struct region *r = &h->regions[below(&w->rng, h->nregions)];
			void *at = (void *)(r->base + r->npages * page);

			hr = IHostMemoryManager_NeedsVirtualAddressSpace(s->mm, at, 65536);
			if (hr == S_OK) {
				hr = IHostMemoryManager_AcquiredVirtualAddressSpace(s->mm, at, 65536);
			}
			if (hr == S_OK) {
				hr = IHostMemoryManager_ReleasedVirtualAddressSpace(s->mm, at);
			}
			if (hr != S_OK) {
				fail("%s: address-space calls: %s", s->name, hr_name(hr));
			}
		}
		break;
	}
}

/* One operation on slot si, under its read lock. */
static void one_op(struct worker *w, unsigned si)
{
	struct slot *s = &slots[si];
	struct holding *h = &w->held[si];
	uint64_t k = below(&w->rng, 100);
	struct region *r = h->nregions ? &h->regions[below(&w->rng, h->nregions)] : NULL;

	if (below(&w->rng, 100) < heap_churn) {
		op_heap(w, s, h);
	} else if (k < 12 || !r) {
		op_reserve(w, s, h);
	} else if (k < 24) {
		op_commit(w, s, r);
	} else if (k < 33) {
		op_protect(w, s, r);
	} else if (k < 42) {
		op_decommit(w, s, r);
	} else if (k < 47) {
		op_release(s, h, (unsigned)(r - h->regions));
	} else if (k < 65) {
		check_query(s, r, (unsigned)below(&w->rng, r->npages));
		w->queries++;
	} else if (k < 82) {
		op_alloc(w, s, h);
	} else if (k < 98) {
		if (h->nblocks) {
			op_free(w, s, h);
		}
	} else {
		op_misc(w, s, h);
	}
}

static void pace(struct worker *w, double start)
{
	double ahead;

	if (!rate || w->ops % 16) {
		return;
	}
	ahead = start + (double)w->ops / (double)rate - now();
	if (ahead > 0) {
		struct timespec ts = { (time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9) };

		nanosleep(&ts, NULL);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	double start = now();

	while (!stopped() && (!max_ops || w->ops < max_ops)) {
		unsigned si = (unsigned)below(&w->rng, n_slots);

		if ((w->ops & 255) == 0 && now() > deadline) {
			break;
		}
		if (replace_every && below(&w->rng, replace_every) == 0) {
			pthread_rwlock_wrlock(&slots[si].lock);
			if (slots[si].mm) {
				slot_replace(si, &w->rng);
			}
			pthread_rwlock_unlock(&slots[si].lock);
			w->replaced++;
		} else {
			pthread_rwlock_rdlock(&slots[si].lock);
			if (slots[si].mm) {
				one_op(w, si);
			}
			pthread_rwlock_unlock(&slots[si].lock);
		}
		w->ops++;
		pace(w, start);
	}
	return NULL;
}

/* ---------- The final state ---------- */

static int cmp_region(const void *a, const void *b)
{
	uintptr_t x = (*(const struct region *const *)a)->base;
	uintptr_t y = (*(const struct region *const *)b)->base;

	return x < y ? -1 : x > y;
}

/* Live blocks and bytes of one heap, from what the workers hold. */
static void heap_figures(unsigned si, IHostMalloc *heap, uint64_t *blocks, uint64_t *bytes)
{
	unsigned w, i;

	*blocks = *bytes = 0;
	for (w = 0; w < n_threads; w++) {
		const struct holding *h = &workers[w].held[si];

		for (i = 0; i < h->nblocks; i++) {
			if (h->blocks[i].heap == heap) {
				(*blocks)++;
				*bytes += h->blocks[i].size;
			}
		}
	}
}

static void write_heap(FILE *f, unsigned si, IHostMalloc *heap, bool *first)
{
	uint64_t blocks, bytes;

	heap_figures(si, heap, &blocks, &bytes);
	fprintf(f, "%s{\"live_blocks\": %" PRIu64 ", \"live_bytes\": %" PRIu64 "}",
		*first ? "" : ", ", blocks, bytes);
	*first = false;
}

/*
 * The final state, after the workers are done: {"pid", "ops", "managers":
 * [{"name", "regions": [{"base", "allocation_base", "size", "state",
 * "protect", "allocation_protect"}...], "heaps": [{"live_blocks",
 * "live_bytes"}...]}...], "released": [names of the managers released]}.
 * Regions are a VirtualQuery walk of every reservation, in address order
 * (each answer also checked against what the workers did); heap figures are
 * the sizes the workers asked for, per live heap.
 */
static bool write_final(const char *path)
{
	FILE *f = fopen(path, "w");
	static const struct region *sorted[MAX_THREADS * MAX_REGIONS];
	uint64_t ops = 0;
	unsigned si, w, i, n;

	if (!f) {
		fprintf(stderr, "trace-stress-host: %s: %s\n", path, strerror(errno));
		return false;
	}
	for (w = 0; w < n_threads; w++) {
		ops += workers[w].ops;
	}
	fprintf(f, "{\"pid\": %ld, \"ops\": %" PRIu64 ", \"managers\": [", (long)getpid(), ops);
	for (si = 0; si < n_slots; si++) {
		struct slot *s = &slots[si];
		bool first = true;

		if (!s->mm) {
			continue;
		}
		n = 0;
		for (w = 0; w < n_threads; w++) {
			for (i = 0; i < workers[w].held[si].nregions; i++) {
				sorted[n++] = &workers[w].held[si].regions[i];
			}
		}
		qsort(sorted, n, sizeof(sorted[0]), cmp_region);
		fprintf(f, "%s{\"name\": \"%s\", \"regions\": [", si ? ", " : "", s->name);
		for (i = 0; i < n; i++) {
			const struct region *r = sorted[i];
			unsigned p = 0;

			while (p < r->npages) {
				MEMORY_BASIC_INFORMATION got, want;
				SIZE_T len = 0;
				HRESULT hr = IHostMemoryManager_VirtualQuery(
					s->mm, (void *)(r->base + p * page), &got, sizeof(got), &len);

				expected_run(r, p, &want);
				if (hr != S_OK || !same_mbi(&got, &want)) {
					fail("%s: final walk at %#" PRIxPTR ": %s, or not as expected",
					     s->name, r->base + p * page, hr_name(hr));
					got = want;
				}
				fprintf(f,
					"%s{\"base\": %" PRIuPTR ", \"allocation_base\": %" PRIuPTR
					", \"size\": %zu, \"state\": %u, \"protect\": %u, "
					"\"allocation_protect\": %u}",
					first ? "" : ", ", (uintptr_t)got.BaseAddress,
					(uintptr_t)got.AllocationBase, (size_t)got.RegionSize,
					(unsigned)got.State, (unsigned)got.Protect,
					(unsigned)got.AllocationProtect);
				first = false;
				p += (unsigned)(got.RegionSize / page);
			}
		}
		fprintf(f, "], \"heaps\": [");
		first = true;
		for (i = 0; i < SHARED_HEAPS; i++) {
			write_heap(f, si, s->shared[i], &first);
		}
		for (w = 0; w < n_threads; w++) {
			for (i = 0; i < workers[w].held[si].nheaps; i++) {
				write_heap(f, si, workers[w].held[si].heaps[i], &first);
			}
		}
		fprintf(f, "]}");
	}
	fprintf(f, "], \"released\": [");
	for (i = 0; i < n_released; i++) {
		fprintf(f, "%s\"%s\"", i ? ", " : "", released[i]);
	}
	fprintf(f, "]}\n");
	if (fclose(f) != 0) {
		fprintf(stderr, "trace-stress-host: %s: %s\n", path, strerror(errno));
		return false;
	}
	return true;
}

/* ---------- Main ---------- */

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

static int usage(void)
{
	fprintf(stderr, "usage: trace-stress-host [--threads N] [--slots N] [--seconds S] "
			"[--ops N] [--rate N] [--replace-every N] [--regions N] [--heap-churn P] "
			"[--seed N] [--wait] [--stdin] [--final FILE]\n");
	return 2;
}

/* Waits until standard input says "stop" or ends, the deadline passes, or the workers stop. */
static void watch_input(void)
{
	char line[64];
	size_t len = 0;

	while (!stopped() && now() < deadline) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		ssize_t got;

		if (poll(&pfd, 1, 100) <= 0) {
			continue;
		}
		got = read(0, line + len, sizeof(line) - 1 - len);
		if (got <= 0) {
			return;
		}
		len += (size_t)got;
		line[len] = 0;
		if (strstr(line, "stop")) {
			return;
		}
		if (len == sizeof(line) - 1) {
			len = 0;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t v;
	unsigned i;
	int k;

	for (k = 1; k < argc; k++) {
		const char *a = argv[k], *val = k + 1 < argc ? argv[k + 1] : NULL;

		if (!strcmp(a, "--wait")) {
			wait_go = true;
			continue;
		}
		if (!strcmp(a, "--stdin")) {
			watch_stdin = true;
			continue;
		}
		if (!val) {
			return usage();
		}
		k++;
		if (!strcmp(a, "--final")) {
			final_path = val;
		} else if (!strcmp(a, "--seconds")) {
			char *end;

			max_seconds = strtod(val, &end);
			if (end == val || *end || max_seconds <= 0) {
				return usage();
			}
		} else if (!parse_u64(val, &v)) {
			return usage();
		} else if (!strcmp(a, "--threads") && v >= 1 && v <= MAX_THREADS) {
			n_threads = (unsigned)v;
		} else if (!strcmp(a, "--slots") && v >= 1 && v <= MAX_SLOTS) {
			n_slots = (unsigned)v;
		} else if (!strcmp(a, "--ops")) {
			max_ops = v;
		} else if (!strcmp(a, "--rate")) {
			rate = v;
		} else if (!strcmp(a, "--replace-every")) {
			replace_every = v;
		} else if (!strcmp(a, "--regions") && v >= 1 && v <= MAX_REGIONS) {
			max_regions = (unsigned)v;
		} else if (!strcmp(a, "--heap-churn") && v <= 100) {
			heap_churn = v;
		} else if (!strcmp(a, "--seed")) {
			seed = v;
		} else {
			return usage();
		}
	}
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (wait_go) {
		char line[64];

		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin)) {
			return 2;
		}
	}
	for (i = 0; i < n_slots; i++) {
		pthread_rwlockattr_t attr;

		pthread_rwlockattr_init(&attr);
		/* Replacing a manager must not starve behind the readers. */
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&slots[i].lock, &attr);
		pthread_rwlockattr_destroy(&attr);
		if (!slot_open(&slots[i], i)) {
			break;
		}
	}
	deadline = now() + max_seconds;
	for (i = 0; i < n_threads && !stopped(); i++) {
		workers[i].index = i;
		rng_seed(&workers[i].rng, seed * 1000003u + i);
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) {
			fail("pthread_create failed");
			n_threads = i;
		}
	}
	if (watch_stdin) {
		watch_input();
		__atomic_store_n(&stop_flag, 1, __ATOMIC_RELEASE);
	}
	for (i = 0; i < n_threads; i++) {
		pthread_join(workers[i].thread, NULL);
	}
	if (!failure[0] && final_path) {
		if (!write_final(final_path)) {
			return 1;
		}
		printf("done\n");
		fflush(stdout);
	}
	{
		uint64_t ops = 0, queries = 0, replaced = 0;

		for (i = 0; i < n_threads; i++) {
			ops += workers[i].ops;
			queries += workers[i].queries;
			replaced += workers[i].replaced;
		}
		fprintf(stderr,
			"trace-stress-host: %u threads, %" PRIu64 " operations (%" PRIu64
			" checked queries, %" PRIu64 " managers replaced)\n",
			n_threads, ops, queries, replaced);
	}
	if (failure[0]) {
		fprintf(stderr, "trace-stress-host: %s\n", failure);
		return 1;
	}
	return 0;
}
