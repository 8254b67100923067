/* SPDX-License-Identifier: MIT */
/*
 * Many threads driving one memory manager at once, checked against a
 * per-page model.
 *
 * Each worker owns a few reservations of its own (which it reserves,
 * changes and releases) and a sub-range of pages of one reservation shared
 * by all workers, so every outcome is deterministic. Each of those "slots"
 * has exactly one writer, the worker, which publishes the page states of
 * its slot like a sequence lock: it writes the states an operation will
 * produce into a small history ring, makes the version odd, calls the
 * manager, and makes the version even. The manager serializes the writers
 * under its own lock; a slot's states change in the same order as the
 * manager's, because only one thread writes them.
 *
 * Query threads meanwhile call VirtualQuery on random pages of every slot
 * and on foreign memory, without any lock. Every answer must be
 * self-consistent, and for a slot whose reservation stayed in place, the
 * state and protection must be one the page held at some moment between
 * the versions read before and after the query. The workers also check
 * their own pages exactly, and read and write them: data must survive
 * protection changes and read zero after decommit and recommit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "internal.h"
#include "maps.h"
#include "stress.h"

#define PAGE ((uintptr_t)4096)
#define WORKERS 4
#define QUERIERS 2
#define OPS 30000
#define OWN_SLOTS 3
#define SHARED_PAGES 16
#define MAX_PAGES 48
#define HIST 8
#define FREE_STATE 0xffffu
#define UNKNOWN 0x100u

struct slot {
	/* Written by the owner only; read by anyone. */
	uint64_t ver;                     /* 2n: n operations done; odd: operation n+1 running */
	uintptr_t base;                   /* first page of the slot, 0 when free */
	uint32_t npages;
	uintptr_t alloc_base, res_end;    /* the reservation holding the slot */
	uint32_t alloc_protect;
	bool whole;                       /* the slot is its whole reservation */
	uint16_t hist[HIST][MAX_PAGES];   /* Protect of each page after operation n (0: reserved) */
	uint8_t structural[HIST];         /* operation n reserved or released the slot */
	/* Owner only. */
	uint16_t content[MAX_PAGES];      /* first byte of each page, or UNKNOWN */
};

struct worker {
	pthread_t thread;
	unsigned index;
	uint64_t seed;
	struct slot own[OWN_SLOTS];
	struct slot shared;
	uint64_t ops_done;
};

static IHostMemoryManager *mm;
static struct worker workers[WORKERS];
static uint64_t base_seed;
static uint64_t queries_checked, queries_exact;

static const DWORD protections[] = {
	PAGE_READWRITE, PAGE_READONLY, PAGE_NOACCESS, PAGE_EXECUTE_READ, PAGE_READWRITE | PAGE_GUARD,
};

/* ---------- The model ---------- */

static uint64_t ops_of(const struct slot *s)
{
	return __atomic_load_n(&s->ver, __ATOMIC_RELAXED) / 2;
}

static uint16_t *current(struct slot *s)
{
	return s->hist[ops_of(s) % HIST];
}

/* Starts operation n+1: its result goes into the next history entry. */
static uint16_t *begin(struct slot *s, bool structural)
{
	uint64_t n = ops_of(s);
	uint16_t *next = s->hist[(n + 1) % HIST];
	uint32_t i;

	for (i = 0; i < MAX_PAGES; i++) {
		__atomic_store_n(&next[i], s->hist[n % HIST][i], __ATOMIC_RELAXED);
	}
	__atomic_store_n(&s->structural[(n + 1) % HIST], structural, __ATOMIC_RELAXED);
	return next;
}

static void set_states(uint16_t *st, uint32_t first, uint32_t len, uint16_t v)
{
	uint32_t i;

	for (i = first; i < first + len; i++) {
		__atomic_store_n(&st[i], v, __ATOMIC_RELAXED);
	}
}

/* The history entry is complete: readers may consider it. */
static void publish(struct slot *s)
{
	__atomic_store_n(&s->ver, s->ver + 1, __ATOMIC_RELEASE);
}

static bool is_readable(uint16_t p)
{
	return p != FREE_STATE && !(p & PAGE_GUARD) &&
	       (p == PAGE_READONLY || p == PAGE_READWRITE || p == PAGE_EXECUTE_READ);
}

/* ---------- Checking answers ---------- */

/* Checks what must hold of any VirtualQuery answer. Returns false and reports if not. */
static bool self_consistent(const void *addr, const MEMORY_BASIC_INFORMATION *m, const char *who)
{
	uintptr_t page = (uintptr_t)addr & ~(PAGE - 1);
	DWORD base = m->Protect & 0xff;
	const char *bad = NULL;

	if ((uintptr_t)m->BaseAddress != page) {
		bad = "BaseAddress is not the queried page";
	} else if (m->RegionSize == 0 || m->RegionSize % PAGE != 0) {
		bad = "RegionSize is zero or not whole pages";
	} else if (m->State == MEM_FREE) {
		if (m->AllocationBase || m->AllocationProtect || m->Type ||
		    m->Protect != PAGE_NOACCESS) {
			bad = "free memory with allocation fields";
		}
	} else if (m->State == MEM_RESERVE || m->State == MEM_COMMIT) {
		if (!m->AllocationBase || (uintptr_t)m->AllocationBase > page) {
			bad = "AllocationBase missing or above the page";
		} else if (m->Type != MEM_PRIVATE && m->Type != MEM_MAPPED && m->Type != MEM_IMAGE) {
			bad = "no Type";
		} else if (m->State == MEM_RESERVE && m->Protect != 0) {
			bad = "reserved memory with a protection";
		} else if (m->State == MEM_COMMIT && (base == 0 || (base & (base - 1)) != 0)) {
			bad = "committed memory without exactly one base protection";
		}
	} else {
		bad = "unknown State";
	}
	if (bad) {
		stress_fail("%s: VirtualQuery(%p): %s (base %p size %#zx state %#x protect %#x "
			    "alloc %p/%#x type %#x)",
			    who, addr, bad, m->BaseAddress, (size_t)m->RegionSize, (unsigned)m->State,
			    (unsigned)m->Protect, m->AllocationBase, (unsigned)m->AllocationProtect,
			    (unsigned)m->Type);
		return false;
	}
	return true;
}

static bool query(const void *addr, MEMORY_BASIC_INFORMATION *m, const char *who)
{
	SIZE_T len = 0;
	HRESULT hr = IHostMemoryManager_VirtualQuery(mm, (void *)addr, m, sizeof(*m), &len);

	if (hr != S_OK || len != sizeof(*m)) {
		stress_fail("%s: VirtualQuery(%p) returned %s", who, addr, clrmemtrace_hresult_name(hr));
		return false;
	}
	return self_consistent(addr, m, who);
}

static bool matches(const MEMORY_BASIC_INFORMATION *m, uint16_t st)
{
	if (st == 0) {
		return m->State == MEM_RESERVE && m->Protect == 0;
	}
	return m->State == MEM_COMMIT && m->Protect == st;
}

/* The owner's exact check of page i of its slot. */
static void check_page_exact(struct worker *w, struct slot *s, uint32_t i)
{
	const uint16_t *st = current(s);
	uintptr_t a = s->base + i * PAGE;
	MEMORY_BASIC_INFORMATION m;
	uint32_t j = i;
	size_t run;

	if (!query((void *)(a + 123), &m, "owner")) {
		return;
	}
	while (j < s->npages && st[j] == st[i]) {
		j++;
	}
	run = (j - i) * PAGE;
	if (!matches(&m, st[i]) || (uintptr_t)m.AllocationBase != s->alloc_base ||
	    m.AllocationProtect != s->alloc_protect || m.Type != MEM_PRIVATE ||
	    a + m.RegionSize > s->res_end ||
	    (j < s->npages || s->whole ? m.RegionSize != run : m.RegionSize < run)) {
		stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64
			    ": page %u of slot %#" PRIxPTR " is state %#x protect %#x size %#zx "
			    "alloc %p/%#x, model says protect %#x size %#zx",
			    w->seed, w->index, w->ops_done, i, s->base, (unsigned)m.State,
			    (unsigned)m.Protect, (size_t)m.RegionSize, m.AllocationBase,
			    (unsigned)m.AllocationProtect, st[i], run);
	}
}

/* ---------- Worker ---------- */

static void range(struct rng *r, const struct slot *s, uint32_t *first, uint32_t *len)
{
	*first = (uint32_t)rng_below(r, s->npages);
	*len = 1 + (uint32_t)rng_below(r, rng_below(r, 4) ? 6 : s->npages - *first);
	if (*first + *len > s->npages) {
		*len = s->npages - *first;
	}
}

static void do_reserve(struct worker *w, struct rng *r, struct slot *s)
{
	uint32_t np = 1 + (uint32_t)rng_below(r, MAX_PAGES);
	bool commit = rng_below(r, 3) == 0;
	DWORD prot = commit ? protections[rng_below(r, ARRAY_SIZE(protections))]
			    : (rng_below(r, 2) ? PAGE_NOACCESS : PAGE_READWRITE);
	uint16_t *next = begin(s, true);
	void *p = NULL;
	HRESULT hr;
	uint32_t i;

	publish(s);
	hr = IHostMemoryManager_VirtualAlloc(mm, NULL, np * PAGE,
					     MEM_RESERVE | (commit ? MEM_COMMIT : 0), prot,
					     eTaskCritical, &p);
	if (hr != S_OK || !p || ((uintptr_t)p & 0xffff)) {
		stress_fail("seed %#" PRIx64 " worker %u: reserve of %u pages: %s at %p", w->seed,
			    w->index, np, clrmemtrace_hresult_name(hr), p);
		return;
	}
	set_states(next, 0, MAX_PAGES, FREE_STATE);
	set_states(next, 0, np, commit ? (uint16_t)prot : 0);
	for (i = 0; i < np; i++) {
		s->content[i] = 0;
	}
	__atomic_store_n(&s->npages, np, __ATOMIC_RELAXED);
	__atomic_store_n(&s->alloc_base, (uintptr_t)p, __ATOMIC_RELAXED);
	s->res_end = (uintptr_t)p + np * PAGE;
	s->alloc_protect = prot;
	s->whole = true;
	__atomic_store_n(&s->base, (uintptr_t)p, __ATOMIC_RELAXED);
	publish(s);
}

static void do_release(struct worker *w, struct slot *s)
{
	uint16_t *next = begin(s, true);
	HRESULT hr;

	set_states(next, 0, MAX_PAGES, FREE_STATE);
	publish(s);
	hr = IHostMemoryManager_VirtualFree(mm, (void *)s->base, 0, MEM_RELEASE);
	if (hr != S_OK) {
		stress_fail("seed %#" PRIx64 " worker %u: release of %#" PRIxPTR ": %s", w->seed,
			    w->index, s->base, clrmemtrace_hresult_name(hr));
	}
	__atomic_store_n(&s->base, 0, __ATOMIC_RELAXED);
	publish(s);
}

static void touch(struct worker *w, struct rng *r, struct slot *s, uint32_t first, uint32_t len)
{
	const uint16_t *st = current(s);
	uint32_t i;

	for (i = first; i < first + len; i++) {
		volatile unsigned char *b = (volatile unsigned char *)(s->base + i * PAGE);

		if (!is_readable(st[i])) {
			continue;
		}
		if (s->content[i] != UNKNOWN && *b != s->content[i]) {
			stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64
				    ": page %u of %#" PRIxPTR " holds %#x, want %#x",
				    w->seed, w->index, w->ops_done, i, s->base, *b, s->content[i]);
			return;
		}
		if (st[i] == PAGE_READWRITE) {
			unsigned char v = (unsigned char)rng_next(r);

			*b = v;
			s->content[i] = v;
		}
	}
}

static void one_op(struct worker *w, struct rng *r, struct slot *s, bool own)
{
	uint32_t first, len, i;
	unsigned dice = (unsigned)rng_below(r, 100);
	DWORD prot = protections[rng_below(r, ARRAY_SIZE(protections))];
	void *at, *out = NULL;
	uint16_t *next, *st;
	HRESULT hr;

	if (own && !s->base) {
		do_reserve(w, r, s);
		return;
	}
	range(r, s, &first, &len);
	at = (void *)(s->base + first * PAGE + rng_below(r, PAGE));
	st = current(s);
	if (dice < 25) {
		next = begin(s, false);
		set_states(next, first, len, (uint16_t)prot);
		publish(s);
		hr = IHostMemoryManager_VirtualAlloc(mm, at, len * PAGE - ((uintptr_t)at & (PAGE - 1)),
						     MEM_COMMIT, prot, eTaskCritical, &out);
		if (hr != S_OK || out != (void *)(s->base + first * PAGE)) {
			stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64
				    ": commit: %s, %p",
				    w->seed, w->index, w->ops_done, clrmemtrace_hresult_name(hr), out);
		}
		for (i = first; i < first + len; i++) {
			if (st[i] == 0) {
				s->content[i] = 0; /* fresh pages read zero */
			}
		}
		publish(s);
	} else if (dice < 40) {
		next = begin(s, false);
		set_states(next, first, len, 0);
		publish(s);
		hr = IHostMemoryManager_VirtualFree(mm, (void *)(s->base + first * PAGE), len * PAGE,
						    MEM_DECOMMIT);
		if (hr != S_OK) {
			stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64 ": decommit: %s",
				    w->seed, w->index, w->ops_done, clrmemtrace_hresult_name(hr));
		}
		publish(s);
	} else if (dice < 60) {
		bool all = true;
		DWORD old = 0xdeadbeef;

		for (i = first; i < first + len; i++) {
			all &= st[i] != 0;
		}
		if (!all) {
			/* Partly reserved: must fail and change nothing (#40, #41). */
			hr = IHostMemoryManager_VirtualProtect(mm, at, len * PAGE -
									     ((uintptr_t)at & (PAGE - 1)),
							       prot, &old);
			if (hr != HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS) || old != 0) {
				stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64
					    ": protect over reserved pages: %s, old %#x",
					    w->seed, w->index, w->ops_done,
					    clrmemtrace_hresult_name(hr), (unsigned)old);
			}
			return;
		}
		next = begin(s, false);
		set_states(next, first, len, (uint16_t)prot);
		publish(s);
		hr = IHostMemoryManager_VirtualProtect(mm, at, len * PAGE - ((uintptr_t)at & (PAGE - 1)),
						       prot, &old);
		if (hr != S_OK || old != st[first]) {
			stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64
				    ": protect: %s, old %#x, want %#x",
				    w->seed, w->index, w->ops_done, clrmemtrace_hresult_name(hr),
				    (unsigned)old, st[first]);
		}
		publish(s);
	} else if (dice < 66) {
		hr = IHostMemoryManager_VirtualAlloc(mm, at, len * PAGE - ((uintptr_t)at & (PAGE - 1)),
						     MEM_RESET, PAGE_NOACCESS, eTaskCritical, &out);
		if (hr != S_OK) {
			stress_fail("seed %#" PRIx64 " worker %u op %" PRIu64 ": reset: %s", w->seed,
				    w->index, w->ops_done, clrmemtrace_hresult_name(hr));
		}
		for (i = first; i < first + len; i++) {
			s->content[i] = st[i] ? UNKNOWN : s->content[i];
		}
	} else if (dice < 82) {
		touch(w, r, s, first, len);
	} else if (dice < 98 || !own) {
		for (i = first; i < first + len; i++) {
			check_page_exact(w, s, i);
		}
	} else {
		do_release(w, s);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rng r;
	unsigned k;

	rng_seed(&r, w->seed);
	for (w->ops_done = 0; w->ops_done < OPS && !stress_stopped(); w->ops_done++) {
		k = (unsigned)rng_below(&r, OWN_SLOTS + 1);
		one_op(w, &r, k < OWN_SLOTS ? &w->own[k] : &w->shared, k < OWN_SLOTS);
	}
	return NULL;
}

/* ---------- Query threads ---------- */

static int local_global;

/* Checks a lock-free answer for a page of slot s against the states it went through. */
static void check_slot_answer(struct slot *s, struct rng *r)
{
	MEMORY_BASIC_INFORMATION m;
	uint64_t v1, v2, v3, n1, n2, k;
	uintptr_t base, alloc_base, a;
	uint32_t np, i;
	bool ok = false;

	/* What the slot was at version v1; valid if no reserve or release follows in the window. */
	v1 = __atomic_load_n(&s->ver, __ATOMIC_ACQUIRE);
	base = __atomic_load_n(&s->base, __ATOMIC_RELAXED);
	np = __atomic_load_n(&s->npages, __ATOMIC_RELAXED);
	alloc_base = __atomic_load_n(&s->alloc_base, __ATOMIC_RELAXED);
	if (!base || !np) {
		return;
	}
	i = (uint32_t)(rng_next(r) % np);
	a = base + i * PAGE;
	if (!query((void *)a, &m, "querier")) {
		return;
	}
	v2 = __atomic_load_n(&s->ver, __ATOMIC_ACQUIRE);
	n1 = v1 / 2;
	n2 = (v2 + 1) / 2;
	if (n2 - n1 >= HIST - 1) {
		return; /* too much happened to tell */
	}
	for (k = n1; k <= n2; k++) {
		uint16_t st = __atomic_load_n(&s->hist[k % HIST][i], __ATOMIC_RELAXED);

		if (__atomic_load_n(&s->structural[k % HIST], __ATOMIC_RELAXED) && k > n1) {
			return; /* the reservation moved in the meantime */
		}
		ok |= st != FREE_STATE && matches(&m, st);
	}
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	v3 = __atomic_load_n(&s->ver, __ATOMIC_RELAXED);
	if (v3 >= 2 * (n1 + HIST - 1) || __atomic_load_n(&s->base, __ATOMIC_RELAXED) != base) {
		return; /* the history was overwritten while being read */
	}
	__atomic_fetch_add(&queries_checked, 1, __ATOMIC_RELAXED);
	if (v1 == v2 && !(v1 & 1)) {
		__atomic_fetch_add(&queries_exact, 1, __ATOMIC_RELAXED);
	}
	if (!ok || (uintptr_t)m.AllocationBase != alloc_base) {
		stress_fail("seed %#" PRIx64 ": concurrent VirtualQuery(%#" PRIxPTR
			    ") = state %#x protect %#x alloc %p, a state the page never had "
			    "between versions %" PRIu64 " and %" PRIu64 " (reservation %#" PRIxPTR ")",
			    base_seed, a, (unsigned)m.State, (unsigned)m.Protect, m.AllocationBase, v1,
			    v2, alloc_base);
	}
}

static void *querier_main(void *arg)
{
	uint64_t n = 0;
	struct rng r;
	void *heap = malloc(64);

	rng_seed(&r, (uintptr_t)arg);
	while (!stress_stopped() && heap) {
		struct worker *w = &workers[rng_below(&r, WORKERS)];
		unsigned k = (unsigned)rng_below(&r, OWN_SLOTS + 1);
		MEMORY_BASIC_INFORMATION m;

		check_slot_answer(k < OWN_SLOTS ? &w->own[k] : &w->shared, &r);
		/* Foreign memory reads /proc/self/maps: now and then. */
		if (++n % 64 == 0) {
			const void *foreign[] = { &m, &local_global, heap, (void *)(uintptr_t)0x10000,
						  (void *)querier_main };

			query(foreign[rng_below(&r, ARRAY_SIZE(foreign))], &m, "querier (foreign)");
		}
		if (__atomic_load_n(&stress_stop, __ATOMIC_ACQUIRE) == 2) {
			break;
		}
	}
	free(heap);
	return NULL;
}

/* ---------- The test ---------- */

static void test_stress_vm_concurrent(void **state)
{
	pthread_t queriers[QUERIERS];
	void *shared = NULL;
	double t0 = stress_now();
	unsigned i, k;
	char why[256];

	(void)state;
	base_seed = stress_seed(0x5eed0004u);
	assert_int_equal(clrmemtrace_create(NULL, &mm), S_OK);
	assert_int_equal(IHostMemoryManager_VirtualAlloc(mm, NULL, WORKERS * SHARED_PAGES * PAGE,
							 MEM_RESERVE, PAGE_NOACCESS, eTaskCritical,
							 &shared),
			 S_OK);
	memset(workers, 0, sizeof(workers));
	for (i = 0; i < WORKERS; i++) {
		struct slot *s = &workers[i].shared;

		workers[i].index = i;
		workers[i].seed = base_seed + i;
		s->base = (uintptr_t)shared + i * SHARED_PAGES * PAGE;
		s->npages = SHARED_PAGES;
		s->alloc_base = (uintptr_t)shared;
		s->res_end = (uintptr_t)shared + WORKERS * SHARED_PAGES * PAGE;
		s->alloc_protect = PAGE_NOACCESS;
		for (k = 0; k < HIST; k++) {
			set_states(s->hist[k], SHARED_PAGES, MAX_PAGES - SHARED_PAGES, FREE_STATE);
		}
	}
	for (i = 0; i < QUERIERS; i++) {
		assert_int_equal(pthread_create(&queriers[i], NULL, querier_main,
						(void *)(uintptr_t)(base_seed + 100 + i)),
				 0);
	}
	for (i = 0; i < WORKERS; i++) {
		assert_int_equal(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]),
				 0);
	}
	for (i = 0; i < WORKERS; i++) {
		pthread_join(workers[i].thread, NULL);
	}
	if (!stress_stopped()) {
		__atomic_store_n(&stress_stop, 2, __ATOMIC_RELEASE);
	}
	for (i = 0; i < QUERIERS; i++) {
		pthread_join(queriers[i], NULL);
	}
	print_message("seed %#" PRIx64 ": %u workers x %u ops, %" PRIu64
		      " concurrent answers checked (%" PRIu64 " with no writer in between), %.2f s\n",
		      base_seed, WORKERS, OPS, queries_checked, queries_exact, stress_now() - t0);
	if (stress_failure[0]) {
		fail_msg("%s", stress_failure);
	}
	/* Enough concurrent answers were checked against the model to mean something. */
	assert_true(queries_checked > 1000);

	/* Quiescent now: the kernel agrees with the manager everywhere. */
	for (i = 0; i < WORKERS; i++) {
		for (k = 0; k < OWN_SLOTS; k++) {
			struct slot *s = &workers[i].own[k];

			if (!s->base) {
				continue;
			}
			if (!maps_agree(mm, (void *)s->base, s->npages * PAGE, why, sizeof(why))) {
				fail_msg("seed %#" PRIx64 ": %s", base_seed, why);
			}
			for (unsigned p = 0; p < s->npages; p++) {
				check_page_exact(&workers[i], s, p);
			}
			assert_int_equal(IHostMemoryManager_VirtualFree(mm, (void *)s->base, 0,
									MEM_RELEASE),
					 S_OK);
		}
	}
	if (!maps_agree(mm, shared, WORKERS * SHARED_PAGES * PAGE, why, sizeof(why))) {
		fail_msg("seed %#" PRIx64 ": %s", base_seed, why);
	}
	if (stress_failure[0]) {
		fail_msg("%s", stress_failure);
	}
	assert_int_equal(IHostMemoryManager_VirtualFree(mm, shared, 0, MEM_RELEASE), S_OK);
	IHostMemoryManager_Release(mm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_vm_concurrent),
	};

	return cmocka_run_group_tests_name("stress-vm", tests, NULL, NULL);
}
