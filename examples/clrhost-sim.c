/* SPDX-License-Identifier: MIT */
/*
 * clrhost-sim: a host that drives an IHostMemoryManager the way the .NET
 * Framework CLR does (../shared/docs/clr-hosting-api.md §1.10-1.11), so the
 * shim can be traced and analysed on a machine without that runtime.
 *
 * - Start-up, before the runtime "starts" (process-critical requests):
 *   CreateMalloc(MALLOC_THREADSAFE), RegisterMemoryNotificationCallback with
 *   our own ICLRMemoryNotificationCallback, the MEM_WRITE_WATCH probe, the
 *   card table reservation.
 * - Per worker thread (a GC heap and an app domain each, as server GC has a
 *   heap per core): GC segments (reserve 256 MiB workstation / 4 GiB server,
 *   commit the first pages, grow by at least 16 pages, decommit beyond a
 *   100-page slack keeping 32, MEM_RESET of large free spans, release of
 *   empty segments, mark-array pieces), loader heaps (reserve no-access,
 *   commit read-write or execute-read-write pieces), JIT patching
 *   (VirtualProtect to execute-read-write and back), stack probing,
 *   ClrVirtualAllocWithinRange walks, mapped views reported through the
 *   address-space callbacks, and native heap churn with DebugAlloc file:line,
 *   Free(NULL) and a leak rate.
 * - Critical levels follow the CLR's rules: process-critical before start-up,
 *   while a lock is held app-domain-critical (process-critical in the default
 *   domain), task-critical otherwise.
 *
 * Every choice comes from a per-thread random generator seeded from --seed,
 * so the same seed replays the same calls on each thread (a collection the
 * machine's low memory asks for apart: it runs on whichever thread sees the
 * request first). Virtual-memory calls are serialized with the simulator's
 * own accounting, so the peak committed bytes it prints are those a trace of
 * the run must show.
 */
#include <clrmemtrace.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define GRANULARITY ((uint64_t)64 << 10)
#define MAX_THREADS 64
#define MAX_SEGMENTS 16
#define MAX_BLOCKS 4096
#define LOW_MEMORY_GC_INTERVAL_MS 8192 /* 0x2000 ms of GetTickCount in the CLR */

struct options {
	uint64_t ops;          /* operations per worker thread */
	double duration;       /* seconds, when ops == 0 */
	unsigned threads;
	uint64_t seed;
	bool server;
	double leak_rate;
	bool json;
	bool quiet;
};

/* What the simulator counts itself, to compare with an analysis of its trace. */
struct counts {
	uint64_t reserves, commits, decommits, resets, releases, protects, queries;
	uint64_t failed_vm_calls;
	uint64_t allocs, debug_allocs, frees, null_frees, leaked_blocks, leaked_bytes;
	uint64_t gcs, low_memory_gcs, notifications;
	uint64_t vas_acquired, walks;
};

struct sim {
	struct options opt;
	IHostMemoryManager *mm;
	IHostMalloc *heap;
	size_t page;
	bool started;             /* the runtime's start-up is over */
	bool concurrent_gc;       /* the write-watch probe succeeded */
	pthread_mutex_t vm_lock;  /* orders VM calls with the accounting below (recursive) */
	uint64_t committed, peak_committed, reserved, peak_reserved;
	pthread_mutex_t counts_lock;
	struct counts counts;
	/* Memory notifications (our ICLRMemoryNotificationCallback). */
	uint64_t sim_time_ms;     /* simulated clock: 1 ms per operation */
	uint64_t last_low_gc_ms;
	int low_memory_pending;
	bool low_memory_seen;
	void *card_table;
	uint64_t card_table_size;
};

static struct sim S;

/* ---------- Utilities ---------- */

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "clrhost-sim: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64: good enough, and identical everywhere. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
	return n ? rng_next(s) % n : 0;
}

static bool rng_chance(uint64_t *s, double p)
{
	return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0) < p;
}

static uint64_t page_up(uint64_t v)
{
	return (v + S.page - 1) & ~(uint64_t)(S.page - 1);
}

static void count(uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&S.counts_lock);
	*field += n;
	pthread_mutex_unlock(&S.counts_lock);
}

/* ---------- Critical levels ---------- */

struct thread_state;
static EMemoryCriticalLevel level_of(const struct thread_state *t);

/* ---------- Virtual memory, with the simulator's own accounting ---------- */

/*
 * The committed bytes a range holds, per the simulator's own knowledge: the
 * callers below keep exact per-range state, so they pass the delta.
 */
static void account(int64_t committed_delta, int64_t reserved_delta)
{
	S.committed += (uint64_t)committed_delta;
	S.reserved += (uint64_t)reserved_delta;
	if (S.committed > S.peak_committed) {
		S.peak_committed = S.committed;
	}
	if (S.reserved > S.peak_reserved) {
		S.peak_reserved = S.reserved;
	}
}

static HRESULT vm_alloc(void *addr, uint64_t size, DWORD type, DWORD prot, EMemoryCriticalLevel level,
			void **out, int64_t committed_delta, int64_t reserved_delta)
{
	HRESULT hr;

	pthread_mutex_lock(&S.vm_lock);
	hr = IHostMemoryManager_VirtualAlloc(S.mm, addr, size, type, prot, level, out);
	if (hr == S_OK) {
		account(committed_delta, reserved_delta);
	}
	pthread_mutex_unlock(&S.vm_lock);
	if (hr != S_OK) {
		count(&S.counts.failed_vm_calls, 1);
	}
	if (type & MEM_RESERVE) {
		count(&S.counts.reserves, 1);
	} else if (type & MEM_RESET) {
		count(&S.counts.resets, 1);
	} else {
		count(&S.counts.commits, 1);
	}
	return hr;
}

static HRESULT vm_free(void *addr, uint64_t size, DWORD type, int64_t committed_delta,
		       int64_t reserved_delta)
{
	HRESULT hr;

	pthread_mutex_lock(&S.vm_lock);
	hr = IHostMemoryManager_VirtualFree(S.mm, addr, size, type);
	if (hr == S_OK) {
		account(committed_delta, reserved_delta);
	}
	pthread_mutex_unlock(&S.vm_lock);
	if (hr != S_OK) {
		count(&S.counts.failed_vm_calls, 1);
	}
	count(type == MEM_RELEASE ? &S.counts.releases : &S.counts.decommits, 1);
	return hr;
}

static HRESULT vm_protect(void *addr, uint64_t size, DWORD prot, DWORD *old)
{
	HRESULT hr;

	pthread_mutex_lock(&S.vm_lock);
	hr = IHostMemoryManager_VirtualProtect(S.mm, addr, size, prot, old);
	pthread_mutex_unlock(&S.vm_lock);
	count(&S.counts.protects, 1);
	if (hr != S_OK) {
		count(&S.counts.failed_vm_calls, 1);
	}
	return hr;
}

static void vm_query(const void *addr, MEMORY_BASIC_INFORMATION *m)
{
	SIZE_T res;
	HRESULT hr = IHostMemoryManager_VirtualQuery(S.mm, (void *)addr, m, sizeof(*m), &res);

	count(&S.counts.queries, 1);
	if (hr != S_OK || res != sizeof(*m)) {
		fail("VirtualQuery(%p) failed: %s", addr, clrmemtrace_hresult_name(hr));
	}
}

/* ---------- ICLRMemoryNotificationCallback ---------- */

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *This,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	if (memcmp(riid, &IID_IUnknown, sizeof(IID)) == 0 ||
	    memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof(IID)) == 0) {
		*ppv = This;
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}

/* Like the CLR's CCLRMemoryNotificationCallback: a static object, counts are constant. */
static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *This)
{
	(void)This;
	return 1;
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *This)
{
	(void)This;
	return 1;
}

/*
 * Never blocks: "low" asks for a collection at most once per 8.192 s of
 * (simulated) time, anything else clears the request.
 */
static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *This,
							 EMemoryAvailable level)
{
	uint64_t now = __atomic_load_n(&S.sim_time_ms, __ATOMIC_RELAXED);

	(void)This;
	count(&S.counts.notifications, 1);
	if (!S.started) {
		return S_OK;
	}
	if (level == eMemoryAvailableLow) {
		S.low_memory_seen = true;
		if (now - __atomic_load_n(&S.last_low_gc_ms, __ATOMIC_RELAXED) >=
		    LOW_MEMORY_GC_INTERVAL_MS) {
			__atomic_store_n(&S.last_low_gc_ms, now, __ATOMIC_RELAXED);
			__atomic_store_n(&S.low_memory_pending, 1, __ATOMIC_RELEASE);
		}
	} else {
		S.low_memory_seen = false;
	}
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_QueryInterface, cb_AddRef, cb_Release, cb_OnMemoryNotification,
};

static ICLRMemoryNotificationCallback notification_callback = { &cb_vtbl };

/* ---------- A worker: one GC heap, one app domain ---------- */

struct segment {
	char *base;
	uint64_t reserved;
	uint64_t committed;  /* committed bytes from base */
	uint64_t allocated;  /* bytes handed to objects from base */
	uint64_t mark_array; /* bytes of mark array committed for it */
	unsigned mark_slot;  /* its piece of the mark array */
};

struct loader_heap {
	char *base;
	uint64_t reserved;
	uint64_t committed;
	DWORD prot;
};

struct block {
	void *p;
	size_t size;
};

struct thread_state {
	unsigned index;
	uint64_t rng;
	int domain;           /* app domain; 1 is the default domain */
	int locks_held;       /* a simulated lock in the current domain */
	struct segment seg[MAX_SEGMENTS];
	unsigned nseg;
	uint32_t mark_slots; /* mark-array pieces in use, one bit each */
	uint64_t since_gc;
	struct loader_heap code, data, stubs;
	struct block blocks[MAX_BLOCKS];
	unsigned nblocks;
	struct counts mine;
};

static EMemoryCriticalLevel level_of(const struct thread_state *t)
{
	if (!S.started) {
		return eProcessCritical;
	}
	if (t && t->locks_held) {
		return t->domain == 1 ? eProcessCritical : eAppDomainCritical;
	}
	return eTaskCritical;
}

static uint64_t segment_size(void)
{
	return S.opt.server ? 4 * GiB : 256 * MiB;
}

/* Mark-array bytes for a segment (1 bit per 8-byte word of it, per the GC's layout). */
static uint64_t mark_array_bytes(uint64_t segment_bytes)
{
	return page_up(segment_bytes / 64 / 8 / 8);
}

/* The mark-array piece `slot` of thread t, in the upper half of the card table reservation. */
static char *mark_piece(const struct thread_state *t, unsigned slot)
{
	uint64_t mark = mark_array_bytes(segment_size());

	return (char *)S.card_table + S.card_table_size / 2 +
	       ((uint64_t)t->index * MAX_SEGMENTS + slot) * mark;
}

static bool new_segment(struct thread_state *t)
{
	struct segment *s;
	uint64_t initial = (S.concurrent_gc ? 2 : 1) * S.page; /* SEGMENT_INITIAL_COMMIT */
	void *p = NULL, *q;
	uint64_t mark;

	if (t->nseg == MAX_SEGMENTS) {
		return false;
	}
	s = &t->seg[t->nseg];
	memset(s, 0, sizeof(*s));
	if (vm_alloc(NULL, segment_size(), MEM_RESERVE, PAGE_READWRITE, level_of(t), &p, 0,
		     (int64_t)segment_size()) != S_OK) {
		return false;
	}
	s->base = p;
	s->reserved = segment_size();
	if (vm_alloc(p, initial, MEM_COMMIT, PAGE_READWRITE, level_of(t), &q, (int64_t)initial, 0) !=
	    S_OK) {
		vm_free(p, 0, MEM_RELEASE, 0, -(int64_t)segment_size());
		return false;
	}
	s->committed = initial;
	/* The segment's piece of the mark array, inside the card table reservation. */
	mark = mark_array_bytes(segment_size());
	s->mark_slot = (unsigned)__builtin_ctz(~t->mark_slots);
	if (S.card_table && vm_alloc(mark_piece(t, s->mark_slot), mark, MEM_COMMIT, PAGE_READWRITE,
				     level_of(t), &q, (int64_t)mark, 0) == S_OK) {
		s->mark_array = mark;
		t->mark_slots |= 1u << s->mark_slot;
	}
	t->nseg++;
	return true;
}

static void release_segment(struct thread_state *t, unsigned i)
{
	struct segment *s = &t->seg[i];

	if (s->mark_array) {
		vm_free(mark_piece(t, s->mark_slot), s->mark_array, MEM_DECOMMIT,
			-(int64_t)s->mark_array, 0);
		t->mark_slots &= ~(1u << s->mark_slot);
	}
	vm_free(s->base, 0, MEM_RELEASE, -(int64_t)s->committed, -(int64_t)s->reserved);
	t->seg[i] = t->seg[--t->nseg];
}

/* grow_heap_segment: commit from the committed end, at least 16 pages, capped at the end. */
static bool grow(struct thread_state *t, struct segment *s, uint64_t need_end)
{
	uint64_t grow_by = page_up(need_end - s->committed);
	void *q;

	if (grow_by < 16 * S.page) {
		grow_by = 16 * S.page;
	}
	if (s->committed + grow_by > s->reserved) {
		grow_by = s->reserved - s->committed;
	}
	if (!grow_by || vm_alloc(s->base + s->committed, grow_by, MEM_COMMIT, PAGE_READWRITE,
				 level_of(t), &q, (int64_t)grow_by, 0) != S_OK) {
		return false;
	}
	s->committed += grow_by;
	return s->committed >= need_end;
}

/* A managed allocation of `bytes` in the thread's GC heap. */
static void gc_allocate(struct thread_state *t, uint64_t bytes)
{
	struct segment *s;

	if (!t->nseg && !new_segment(t)) {
		return;
	}
	s = &t->seg[t->nseg - 1];
	if (s->allocated + bytes > s->reserved) {
		if (!new_segment(t)) {
			return;
		}
		s = &t->seg[t->nseg - 1];
	}
	if (s->allocated + bytes > s->committed && !grow(t, s, s->allocated + bytes)) {
		return;
	}
	s->allocated += bytes;
	t->since_gc += bytes;
}

/* A collection: survivors compacted, then decommit, reset and release as the GC does. */
static void gc_collect(struct thread_state *t, bool low_memory)
{
	unsigned i;

	t->mine.gcs++;
	if (low_memory) {
		t->mine.low_memory_gcs++;
	}
	t->since_gc = 0;
	for (i = 0; i < t->nseg; i++) {
		struct segment *s = &t->seg[i];
		uint64_t survivors = s->allocated * (10 + rng_below(&t->rng, 40)) / 100;
		uint64_t used_end = page_up(survivors), slack, keep;
		void *q;

		if (low_memory) {
			survivors /= 2;
			used_end = page_up(survivors);
		}
		/* reset_memory: free spans over 128 KiB lose their contents. */
		if (s->allocated - survivors > 128 * KiB && s->committed > used_end + S.page) {
			uint64_t span = (s->committed < page_up(s->allocated) ? s->committed
									       : page_up(s->allocated)) -
					used_end;

			if (span >= S.page) {
				vm_alloc(s->base + used_end, span, MEM_RESET, PAGE_READWRITE, level_of(t),
					 &q, 0, 0);
			}
		}
		s->allocated = survivors;
		/* decommit_heap_segment_pages: beyond 100 pages of slack, keep 32. */
		slack = s->committed > used_end ? s->committed - used_end : 0;
		keep = 32 * S.page;
		if (slack >= 100 * S.page) {
			uint64_t from = used_end + keep, len = s->committed - from;

			if (vm_free(s->base + from, len, MEM_DECOMMIT, -(int64_t)len, 0) == S_OK) {
				s->committed = from;
			}
		}
	}
	/* Empty segments other than the first go back to the OS. */
	for (i = t->nseg; i-- > 1;) {
		if (t->seg[i].allocated == 0) {
			release_segment(t, i);
		}
	}
}

static bool loader_heap_init(struct thread_state *t, struct loader_heap *h, uint64_t size,
			     DWORD prot)
{
	void *p = NULL;

	memset(h, 0, sizeof(*h));
	if (vm_alloc(NULL, size, MEM_RESERVE, PAGE_NOACCESS, level_of(t), &p, 0, (int64_t)size) !=
	    S_OK) {
		return false;
	}
	h->base = p;
	h->reserved = size;
	h->prot = prot;
	return true;
}

/* Loader heap growth: the next pieces, committed with the heap's protection. */
static char *loader_heap_grow(struct thread_state *t, struct loader_heap *h, uint64_t bytes)
{
	uint64_t len = page_up(bytes);
	void *q;

	if (!h->base || h->committed + len > h->reserved) {
		return NULL;
	}
	if (vm_alloc(h->base + h->committed, len, MEM_COMMIT, h->prot, level_of(t), &q,
		     (int64_t)len, 0) != S_OK) {
		return NULL;
	}
	h->committed += len;
	return q;
}

static void loader_heap_release(struct thread_state *t, struct loader_heap *h)
{
	(void)t;
	if (h->base) {
		vm_free(h->base, 0, MEM_RELEASE, -(int64_t)h->committed, -(int64_t)h->reserved);
		h->base = NULL;
	}
}

/* JIT: commit code, and patch a page (execute-read-write, then the old protection back). */
static void jit(struct thread_state *t)
{
	char *code = loader_heap_grow(t, &t->code, 1 + rng_below(&t->rng, 3 * S.page));
	DWORD old = 0, ignored;

	if (!code && t->code.committed) {
		code = t->code.base + rng_below(&t->rng, t->code.committed / S.page) * S.page;
	}
	if (code && vm_protect(code, S.page, PAGE_EXECUTE_READWRITE, &old) == S_OK) {
		vm_protect(code, S.page, old, &ignored);
	}
	/* Stubs are written read-write, then made execute-read. */
	code = loader_heap_grow(t, &t->stubs, S.page);
	if (code) {
		vm_protect(code, S.page, PAGE_EXECUTE_READ, &old);
	}
}

/* Thread::GetStackLowerBound: the allocation base of this thread's stack. */
static void probe_stack(void)
{
	MEMORY_BASIC_INFORMATION m;
	volatile char local = 0;

	vm_query((const void *)&local, &m);
	if (m.State != MEM_COMMIT || !m.AllocationBase || (char *)m.AllocationBase > (char *)&local) {
		fail("stack probe: VirtualQuery gave no usable allocation base");
	}
}

/*
 * ClrVirtualAllocWithinRange: from `start`, VirtualQuery in 64 KiB steps for
 * free space of `size`, reserve it at that exact address, and go on if
 * another thread took it first.
 */
static void *alloc_within_range(struct thread_state *t, char *start, uint64_t size, uint64_t range)
{
	char *try_addr = (char *)(((uintptr_t)start + GRANULARITY - 1) & ~(uintptr_t)(GRANULARITY - 1));

	t->mine.walks++;
	while ((uint64_t)(try_addr - start) < range) {
		MEMORY_BASIC_INFORMATION m;
		void *p = NULL;

		vm_query(try_addr, &m);
		if (m.State == MEM_FREE && m.RegionSize >= size) {
			if (vm_alloc(try_addr, size, MEM_RESERVE, PAGE_NOACCESS, level_of(t), &p, 0,
				     (int64_t)size) == S_OK) {
				return p;
			}
		}
		try_addr += GRANULARITY;
	}
	return NULL;
}

/*
 * The walk holds the VM lock throughout: otherwise another worker's
 * reservation could take the room just released before the walk finds it,
 * and the number of queries the walk makes would depend on the timing of
 * other threads instead of the seed.
 */
static void range_walk(struct thread_state *t)
{
	void *area = NULL, *p;
	uint64_t size = 1 * MiB;

	pthread_mutex_lock(&S.vm_lock);
	/* Make room first, as a runtime near its own image would find it. */
	if (vm_alloc(NULL, 4 * MiB, MEM_RESERVE, PAGE_NOACCESS, level_of(t), &area, 0,
		     (int64_t)(4 * MiB)) == S_OK) {
		vm_free(area, 0, MEM_RELEASE, 0, -(int64_t)(4 * MiB));
		p = alloc_within_range(t, area, size, 64 * MiB);
		if (p) {
			vm_free(p, 0, MEM_RELEASE, 0, -(int64_t)size);
		}
	}
	pthread_mutex_unlock(&S.vm_lock);
}

/* CLRMapViewOfFileEx / CLRUnmapViewOfFile: a view of a file, reported to the host. */
static void map_view(struct thread_state *t, int fd, uint64_t file_size)
{
	void *v;

	(void)t;
	if (fd < 0 || !file_size) {
		return;
	}
	v = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (v == MAP_FAILED) {
		if (IHostMemoryManager_NeedsVirtualAddressSpace(S.mm, NULL, file_size) != S_OK) {
			return;
		}
		v = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (v == MAP_FAILED) {
			return;
		}
	}
	if (IHostMemoryManager_AcquiredVirtualAddressSpace(S.mm, v, file_size) == S_OK) {
		t->mine.vas_acquired++;
		munmap(v, file_size);
		IHostMemoryManager_ReleasedVirtualAddressSpace(S.mm, v);
	} else {
		munmap(v, file_size);
	}
}

/* Native heap churn through the IHostMalloc, a share with DebugAlloc. */
static void native_alloc(struct thread_state *t)
{
	size_t size = 8 + (size_t)rng_below(&t->rng, 2040);
	void *p = NULL;
	HRESULT hr;
	bool debug = rng_chance(&t->rng, 0.25);

	if (rng_chance(&t->rng, 0.02)) {
		size = 16 * KiB + (size_t)rng_below(&t->rng, 64 * KiB); /* an occasional large one */
	}
	if (debug) {
		hr = IHostMalloc_DebugAlloc(S.heap, size, level_of(t), (char *)__FILE__, __LINE__ + t->index % 4,
					    &p);
		t->mine.debug_allocs++;
	} else {
		hr = IHostMalloc_Alloc(S.heap, size, level_of(t), &p);
	}
	t->mine.allocs++;
	if (hr != S_OK) {
		return;
	}
	memset(p, 0x5a, size < 64 ? size : 64);
	if (rng_chance(&t->rng, S.opt.leak_rate)) {
		t->mine.leaked_blocks++;
		t->mine.leaked_bytes += size;
		return;
	}
	if (t->nblocks == MAX_BLOCKS) {
		IHostMalloc_Free(S.heap, t->blocks[0].p);
		t->mine.frees++;
		t->blocks[0] = t->blocks[--t->nblocks];
	}
	t->blocks[t->nblocks].p = p;
	t->blocks[t->nblocks].size = size;
	t->nblocks++;
}

static void native_free(struct thread_state *t)
{
	unsigned i;

	if (!t->nblocks || rng_chance(&t->rng, 0.05)) {
		IHostMalloc_Free(S.heap, NULL); /* EEHeapFree(NULL) still calls the host */
		t->mine.null_frees++;
		return;
	}
	i = (unsigned)rng_below(&t->rng, t->nblocks);
	IHostMalloc_Free(S.heap, t->blocks[i].p);
	t->mine.frees++;
	t->blocks[i] = t->blocks[--t->nblocks];
}

/* ---------- The worker loop ---------- */

struct worker_args {
	unsigned index;
	struct thread_state *t;
	int view_fd;
	uint64_t view_size;
	double deadline;
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *worker(void *arg)
{
	struct worker_args *w = arg;
	struct thread_state *t = w->t;
	char name[16];
	uint64_t i;

	snprintf(name, sizeof(name), "sim-worker-%u", w->index);
	pthread_setname_np(pthread_self(), name);
	probe_stack();
	loader_heap_init(t, &t->code, 4 * MiB, PAGE_EXECUTE_READWRITE);
	loader_heap_init(t, &t->data, 2 * MiB, PAGE_READWRITE);
	loader_heap_init(t, &t->stubs, 1 * MiB, PAGE_READWRITE);
	new_segment(t);
	for (i = 0; S.opt.ops ? i < S.opt.ops : now_seconds() < w->deadline; i++) {
		uint64_t r = rng_below(&t->rng, 1000);

		__atomic_add_fetch(&S.sim_time_ms, 1, __ATOMIC_RELAXED);
		/* A lock in the current domain is held for a stretch of operations. */
		if (rng_chance(&t->rng, 0.02)) {
			t->locks_held = !t->locks_held;
			t->domain = 1 + (int)rng_below(&t->rng, 3);
		}
		if (__atomic_exchange_n(&S.low_memory_pending, 0, __ATOMIC_ACQ_REL)) {
			gc_collect(t, true);
		}
		if (r < 300) {
			native_alloc(t);
		} else if (r < 560) {
			native_free(t);
		} else if (r < 800) {
			gc_allocate(t, 256 + rng_below(&t->rng, 64 * KiB));
			if (t->since_gc > 8 * MiB) {
				gc_collect(t, false);
			}
		} else if (r < 880) {
			jit(t);
		} else if (r < 930) {
			loader_heap_grow(t, &t->data, 1 + rng_below(&t->rng, 2 * S.page));
		} else if (r < 960) {
			probe_stack();
		} else if (r < 970) {
			range_walk(t);
		} else if (r < 985) {
			DWORD load;
			SIZE_T avail;

			IHostMemoryManager_GetMemoryLoad(S.mm, &load, &avail);
		} else if (r < 990) {
			map_view(t, w->view_fd, w->view_size);
		} else {
			/* An app domain unloads: its loader heaps go, a new one loads. */
			loader_heap_release(t, &t->data);
			loader_heap_init(t, &t->data, 2 * MiB, PAGE_READWRITE);
		}
	}
	/* Shutdown: the runtime frees what it still tracks; leaked blocks stay. */
	while (t->nblocks) {
		IHostMalloc_Free(S.heap, t->blocks[--t->nblocks].p);
		t->mine.frees++;
	}
	loader_heap_release(t, &t->stubs);
	return NULL;
}

/* ---------- Start-up ---------- */

static void startup(void)
{
	void *probe = NULL, *q;
	HRESULT hr;

	/* SetHostControl: the heap first, then the notification callback (result ignored). */
	hr = IHostMemoryManager_CreateMalloc(S.mm, MALLOC_THREADSAFE, &S.heap);
	if (hr != S_OK) {
		fail("CreateMalloc failed: %s", clrmemtrace_hresult_name(hr));
	}
	IHostMemoryManager_RegisterMemoryNotificationCallback(S.mm, &notification_callback);

	/* The GC's write-watch probe: success would turn concurrent GC on. */
	hr = vm_alloc(NULL, GRANULARITY, MEM_WRITE_WATCH | MEM_RESERVE, PAGE_READWRITE,
		      eProcessCritical, &probe, 0, (int64_t)GRANULARITY);
	S.concurrent_gc = hr == S_OK;
	if (hr == S_OK) {
		vm_free(probe, 0, MEM_RELEASE, 0, -(int64_t)GRANULARITY);
	}

	/* Card table, brick table, card bundles and mark array: one reservation. */
	S.card_table_size = 2 * (uint64_t)S.opt.threads * MAX_SEGMENTS * mark_array_bytes(segment_size());
	if (vm_alloc(NULL, S.card_table_size, MEM_RESERVE, PAGE_READWRITE, eProcessCritical,
		     &S.card_table, 0, (int64_t)S.card_table_size) == S_OK) {
		/* Everything but the mark array (the upper half) is committed at once. */
		if (vm_alloc(S.card_table, S.card_table_size / 2, MEM_COMMIT, PAGE_READWRITE,
			     eProcessCritical, &q, (int64_t)(S.card_table_size / 2), 0) != S_OK) {
			fail("cannot commit the card table");
		}
	} else {
		S.card_table = NULL;
	}
	/* Start-up allocations of the runtime itself, process-critical. */
	for (int i = 0; i < 64; i++) {
		void *p;

		if (IHostMalloc_DebugAlloc(S.heap, 64 + (size_t)i * 8, eProcessCritical,
					   (char *)"ceemain.cpp", 100 + i, &p) == S_OK) {
			IHostMalloc_Free(S.heap, p);
		}
	}
	S.started = true;
}

/* ---------- Command line ---------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: clrhost-sim [--ops N | --duration SECONDS] [--threads N] [--seed N]\n"
		"                   [--server | --workstation] [--leak-rate FRACTION] [--json] [--quiet]\n"
		"\n"
		"Drives the clrmemtrace memory manager the way the .NET Framework CLR does.\n"
		"  --ops N          operations per worker thread (default 20000)\n"
		"  --duration S     run for S seconds instead of a number of operations\n"
		"  --threads N      worker threads, each with its own GC heap (default 4, max %d)\n"
		"  --seed N         same seed, same calls on each thread (default 1)\n"
		"  --server         4 GiB GC segments (default: workstation, 256 MiB)\n"
		"  --leak-rate F    fraction of native heap blocks never freed (default 0.01)\n"
		"  --json           print the summary as JSON\n"
		"  --quiet          print nothing but errors\n",
		MAX_THREADS);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return *s && !*end && errno == 0 && s[0] != '-';
}

static void parse_args(int argc, char **argv, struct options *o)
{
	int i;

	o->ops = 20000;
	o->duration = 0;
	o->threads = 4;
	o->seed = 1;
	o->leak_rate = 0.01;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		uint64_t n;
		char *end;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--server") == 0) {
			o->server = true;
		} else if (strcmp(a, "--workstation") == 0) {
			o->server = false;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else if (strcmp(a, "--quiet") == 0) {
			o->quiet = true;
		} else if (!v) {
			fprintf(stderr, "clrhost-sim: %s needs a value\n", a);
			usage(stderr);
			exit(2);
		} else if (strcmp(a, "--ops") == 0 && parse_u64(v, &n) && n > 0) {
			o->ops = n;
			o->duration = 0;
			i++;
		} else if (strcmp(a, "--duration") == 0 && (o->duration = strtod(v, &end)) > 0 &&
			   !*end) {
			o->ops = 0;
			i++;
		} else if (strcmp(a, "--threads") == 0 && parse_u64(v, &n) && n >= 1 &&
			   n <= MAX_THREADS) {
			o->threads = (unsigned)n;
			i++;
		} else if (strcmp(a, "--seed") == 0 && parse_u64(v, &n)) {
			o->seed = n;
			i++;
		} else if (strcmp(a, "--leak-rate") == 0 && (o->leak_rate = strtod(v, &end)) >= 0 &&
			   o->leak_rate <= 1 && !*end) {
			i++;
		} else {
			fprintf(stderr, "clrhost-sim: bad option or value: %s %s\n", a, v);
			usage(stderr);
			exit(2);
		}
	}
}

static void add_counts(struct counts *to, const struct counts *from)
{
	const uint64_t *f = (const uint64_t *)from;
	uint64_t *t = (uint64_t *)to;
	size_t i;

	for (i = 0; i < sizeof(*to) / sizeof(uint64_t); i++) {
		t[i] += f[i];
	}
}

int main(int argc, char **argv)
{
	clrmemtrace_options mo = { .size = sizeof(mo), .name = "clrhost-sim" };
	pthread_mutexattr_t lock_attr;
	pthread_t th[MAX_THREADS];
	struct worker_args args[MAX_THREADS];
	struct thread_state *states;
	struct counts total;
	char self[4096];
	struct stat st;
	int view_fd = -1;
	unsigned i;
	HRESULT hr;

	parse_args(argc, argv, &S.opt);
	S.page = (size_t)sysconf(_SC_PAGESIZE);
	pthread_mutexattr_init(&lock_attr);
	pthread_mutexattr_settype(&lock_attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&S.vm_lock, &lock_attr);
	pthread_mutexattr_destroy(&lock_attr);
	pthread_mutex_init(&S.counts_lock, NULL);
	pthread_setname_np(pthread_self(), "sim-main");
	hr = clrmemtrace_create(&mo, &S.mm);
	if (hr != S_OK) {
		fail("clrmemtrace_create failed: %s", clrmemtrace_hresult_name(hr));
	}
	startup();

	/* An assembly to map: this program's own file. */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		view_fd = open(self, O_RDONLY | O_CLOEXEC);
	}
	if (view_fd >= 0 && (fstat(view_fd, &st) != 0 || st.st_size <= 0)) {
		close(view_fd);
		view_fd = -1;
	}

	states = calloc(S.opt.threads, sizeof(*states));
	if (!states) {
		fail("out of memory");
	}
	for (i = 0; i < S.opt.threads; i++) {
		states[i].index = i;
		states[i].rng = S.opt.seed * 1000003u + i;
		states[i].domain = 1;
		args[i] = (struct worker_args){
			.index = i,
			.t = &states[i],
			.view_fd = view_fd,
			.view_size = view_fd >= 0 ? (uint64_t)st.st_size : 0,
			.deadline = now_seconds() + S.opt.duration,
		};
		if (pthread_create(&th[i], NULL, worker, &args[i]) != 0) {
			fail("cannot start worker %u", i);
		}
	}
	for (i = 0; i < S.opt.threads; i++) {
		pthread_join(th[i], NULL);
	}
	if (view_fd >= 0) {
		close(view_fd);
	}

	total = S.counts;
	for (i = 0; i < S.opt.threads; i++) {
		add_counts(&total, &states[i].mine);
	}
	if (S.opt.json) {
		printf("{\"seed\": %" PRIu64 ", \"threads\": %u, \"server\": %s, \"ops_per_thread\": %" PRIu64
		       ", \"concurrent_gc\": %s,\n"
		       " \"peak_committed_bytes\": %" PRIu64 ", \"final_committed_bytes\": %" PRIu64
		       ", \"peak_reserved_bytes\": %" PRIu64 ", \"final_reserved_bytes\": %" PRIu64 ",\n"
		       " \"reserves\": %" PRIu64 ", \"commits\": %" PRIu64 ", \"decommits\": %" PRIu64
		       ", \"resets\": %" PRIu64 ", \"releases\": %" PRIu64 ", \"protects\": %" PRIu64
		       ", \"queries\": %" PRIu64 ", \"failed_vm_calls\": %" PRIu64 ",\n"
		       " \"allocs\": %" PRIu64 ", \"debug_allocs\": %" PRIu64 ", \"frees\": %" PRIu64
		       ", \"null_frees\": %" PRIu64 ", \"leaked_blocks\": %" PRIu64
		       ", \"final_live_heap_bytes\": %" PRIu64 ",\n"
		       " \"gcs\": %" PRIu64 ", \"low_memory_gcs\": %" PRIu64 ", \"notifications\": %" PRIu64
		       ", \"walks\": %" PRIu64 ", \"views\": %" PRIu64 "}\n",
		       S.opt.seed, S.opt.threads, S.opt.server ? "true" : "false", S.opt.ops,
		       S.concurrent_gc ? "true" : "false", S.peak_committed, S.committed,
		       S.peak_reserved, S.reserved, total.reserves, total.commits, total.decommits,
		       total.resets, total.releases, total.protects, total.queries,
		       total.failed_vm_calls, total.allocs, total.debug_allocs, total.frees,
		       total.null_frees, total.leaked_blocks, total.leaked_bytes, total.gcs,
		       total.low_memory_gcs, total.notifications, total.walks, total.vas_acquired);
	} else if (!S.opt.quiet) {
		printf("clrhost-sim: %u threads, %s GC, seed %" PRIu64 ", concurrent GC %s\n",
		       S.opt.threads, S.opt.server ? "server" : "workstation", S.opt.seed,
		       S.concurrent_gc ? "on" : "off (the host refused MEM_WRITE_WATCH)");
		printf("  virtual memory: %" PRIu64 " reserves, %" PRIu64 " commits, %" PRIu64
		       " decommits, %" PRIu64 " resets, %" PRIu64 " releases, %" PRIu64
		       " protects, %" PRIu64 " queries (%" PRIu64 " calls failed)\n",
		       total.reserves, total.commits, total.decommits, total.resets, total.releases,
		       total.protects, total.queries, total.failed_vm_calls);
		printf("  peak committed %" PRIu64 " bytes, peak reserved %" PRIu64
		       " bytes; at exit %" PRIu64 " committed, %" PRIu64 " reserved\n",
		       S.peak_committed, S.peak_reserved, S.committed, S.reserved);
		printf("  native heap: %" PRIu64 " allocations (%" PRIu64 " with file:line), %" PRIu64
		       " frees, %" PRIu64 " Free(NULL); %" PRIu64 " blocks (%" PRIu64
		       " bytes) never freed\n",
		       total.allocs, total.debug_allocs, total.frees, total.null_frees,
		       total.leaked_blocks, total.leaked_bytes);
		printf("  %" PRIu64 " collections (%" PRIu64 " for low memory), %" PRIu64
		       " memory notifications, %" PRIu64 " range walks, %" PRIu64 " mapped views\n",
		       total.gcs, total.low_memory_gcs, total.notifications, total.walks,
		       total.vas_acquired);
	}
	free(states);
	/* The CLR never releases its host managers; the heap and manager stay. */
	return 0;
}
