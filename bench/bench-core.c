/* SPDX-License-Identifier: MIT */
/*
 * Core benchmarks, each a ratio of two variants measured side by side in one
 * run: the variants alternate in short rounds, and the ratio reported is the
 * median of the per-round ratios, so drift in machine load affects both.
 * Times are the process's CPU time (system calls and the library's own
 * threads included), so that other programs on a busy machine do not decide
 * the result.
 *
 *   vm-cycle      reserve -> commit -> protect -> decommit -> release through
 *                 the manager vs the same mmap/mprotect/mmap/munmap calls made
 *                 directly (target <= 1.10)
 *   malloc        IHostMalloc Alloc + Free vs malloc + free, same sizes and
 *                 order, 1024 blocks kept alive (target <= 1.25)
 *   query-scale   VirtualQuery of 10 reservations while 100,000 are live vs
 *                 while only those 10 are (target <= 2.00)
 *
 * Output: one line per benchmark, "name ratio target verdict", then details.
 * Options: --quick (fewer rounds), --json (machine-readable lines).
 */
#include <clrmemtrace.h>

#include "bench-common.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static bool quick;
static bool json;

static void die(const char *what, HRESULT hr)
{
	fprintf(stderr, "bench-core: %s failed: %s\n", what, clrmemtrace_hresult_name(hr));
	exit(1);
}

/* ---------- vm-cycle ---------- */

#define RESERVE_SIZE ((size_t)1 << 20)
#define COMMIT_SIZE ((size_t)64 << 10)
#define PROTECT_SIZE ((size_t)16 << 10)

/* Where the manager placed its last reservation: the raw cycle uses the same spot,
 * so both see the same neighbouring mappings (the kernel merges and splits them). */
static uintptr_t last_base;

static void cycle_manager(IHostMemoryManager *mm, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		void *p = NULL, *c = NULL;
		DWORD old;
		HRESULT hr;

		hr = IHostMemoryManager_VirtualAlloc(mm, NULL, RESERVE_SIZE, MEM_RESERVE, PAGE_NOACCESS,
						     eTaskCritical, &p);
		if (hr != S_OK) {
			die("reserve", hr);
		}
		hr = IHostMemoryManager_VirtualAlloc(mm, p, COMMIT_SIZE, MEM_COMMIT, PAGE_READWRITE,
						     eTaskCritical, &c);
		if (hr != S_OK) {
			die("commit", hr);
		}
		hr = IHostMemoryManager_VirtualProtect(mm, p, PROTECT_SIZE, PAGE_READONLY, &old);
		if (hr != S_OK) {
			die("protect", hr);
		}
		hr = IHostMemoryManager_VirtualFree(mm, p, COMMIT_SIZE, MEM_DECOMMIT);
		if (hr != S_OK) {
			die("decommit", hr);
		}
		hr = IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE);
		if (hr != S_OK) {
			die("release", hr);
		}
		last_base = (uintptr_t)p;
	}
}

/*
 * The same effect with the system calls alone: a 64 KiB-aligned PROT_NONE
 * reservation (at the manager's last address, which is free again), mprotect
 * to commit and protect, a fresh PROT_NONE mapping to decommit, munmap.
 */
static void cycle_raw(int n)
{
	uintptr_t hint = last_base;
	int i;

	for (i = 0; i < n; i++) {
		const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
		char *p = mmap((void *)hint, RESERVE_SIZE, PROT_NONE, flags, -1, 0);

		if (p == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		if ((uintptr_t)p & 0xffff) {
			/* Not aligned: over-map and trim, as an aligned reservation must. */
			munmap(p, RESERVE_SIZE);
			p = mmap(NULL, RESERVE_SIZE + 0x10000, PROT_NONE, flags, -1, 0);
			uintptr_t a = ((uintptr_t)p + 0xffff) & ~(uintptr_t)0xffff;
			if (a > (uintptr_t)p) {
				munmap(p, a - (uintptr_t)p);
			}
			munmap((void *)(a + RESERVE_SIZE), (uintptr_t)p + 0x10000 - a);
			p = (char *)a;
		}
		hint = (uintptr_t)p;
		mprotect(p, COMMIT_SIZE, PROT_READ | PROT_WRITE);
		mprotect(p, PROTECT_SIZE, PROT_READ);
		mmap(p, COMMIT_SIZE, PROT_NONE, flags | MAP_FIXED, -1, 0);
		munmap(p, RESERVE_SIZE);
	}
}

static void bench_vm_cycle(IHostMemoryManager *mm)
{
	int rounds = quick ? 15 : 41, per = 2000, r;
	double ratios[64], t_mgr = 0, t_raw = 0;
	char detail[160];

	cycle_manager(mm, per / 4);
	cycle_raw(per / 4);
	for (r = 0; r < rounds; r++) {
		uint64_t a = now_ns(), b, c;

		cycle_manager(mm, per);
		b = now_ns();
		cycle_raw(per);
		c = now_ns();
		ratios[r] = (double)(b - a) / (double)(c - b);
		t_mgr += (double)(b - a);
		t_raw += (double)(c - b);
	}
	snprintf(detail, sizeof(detail), "%.0f ns vs %.0f ns per cycle",
		 t_mgr / rounds / per, t_raw / rounds / per);
	report(json, "vm-cycle", median(ratios, rounds), 1.10, detail);
}

/* ---------- malloc ---------- */

#define WINDOW 1024

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void churn_host(IHostMalloc *heap, void **slot, int n, uint64_t seed)
{
	int i;

	for (i = 0; i < n; i++) {
		uint64_t x = xorshift(&seed);
		int s = (int)(x % WINDOW);
		size_t size = 16 + (size_t)((x >> 32) % 496);

		if (slot[s]) {
			IHostMalloc_Free(heap, slot[s]);
		}
		if (IHostMalloc_Alloc(heap, size, eTaskCritical, &slot[s]) != S_OK) {
			die("Alloc", E_OUTOFMEMORY);
		}
	}
}

static void churn_libc(void **slot, int n, uint64_t seed)
{
	int i;

	for (i = 0; i < n; i++) {
		uint64_t x = xorshift(&seed);
		int s = (int)(x % WINDOW);
		size_t size = 16 + (size_t)((x >> 32) % 496);

		free(slot[s]);
		slot[s] = malloc(size);
		if (!slot[s]) {
			die("malloc", E_OUTOFMEMORY);
		}
	}
}

static void bench_malloc(IHostMemoryManager *mm)
{
	static void *host_slot[WINDOW], *libc_slot[WINDOW];
	int rounds = quick ? 15 : 41, per = 200000, r, i;
	double ratios[64], t_host = 0, t_libc = 0;
	IHostMalloc *heap;
	char detail[160];
	HRESULT hr;

	hr = IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap);
	if (hr != S_OK) {
		die("CreateMalloc", hr);
	}
	churn_host(heap, host_slot, per, 1);
	churn_libc(libc_slot, per, 1);
	for (r = 0; r < rounds; r++) {
		uint64_t a = now_ns(), b, c;

		churn_host(heap, host_slot, per, (uint64_t)r + 7);
		b = now_ns();
		churn_libc(libc_slot, per, (uint64_t)r + 7);
		c = now_ns();
		ratios[r] = (double)(b - a) / (double)(c - b);
		t_host += (double)(b - a);
		t_libc += (double)(c - b);
	}
	for (i = 0; i < WINDOW; i++) {
		IHostMalloc_Free(heap, host_slot[i]);
		free(libc_slot[i]);
	}
	IHostMalloc_Release(heap);
	snprintf(detail, sizeof(detail), "%.1f ns vs %.1f ns per free+alloc",
		 t_host / rounds / per, t_libc / rounds / per);
	report(json, "malloc", median(ratios, rounds), 1.25, detail);
}

/* ---------- query-scale ---------- */

#define QUERY_TARGETS 10
#define QUERY_MANY 100000
#define REGION ((size_t)64 << 10)

static double time_queries(IHostMemoryManager *mm, void *const *targets, int ntargets, int n)
{
	MEMORY_BASIC_INFORMATION m;
	uint64_t seed = 12345, t;
	SIZE_T res;
	int i;

	t = now_ns();
	for (i = 0; i < n; i++) {
		uint64_t x = xorshift(&seed);
		char *p = (char *)targets[x % (uint64_t)ntargets] + ((x >> 32) % REGION);

		if (IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &res) != S_OK) {
			die("VirtualQuery", E_FAIL);
		}
	}
	return (double)(now_ns() - t);
}

/*
 * One reservation, committed read-write. Committed like this, neighbouring
 * reservations merge into one kernel mapping, so 100,000 of them stay under
 * the kernel's limit on mappings per process (vm.max_map_count, 65530).
 */
static void *reserve_commit(IHostMemoryManager *mm)
{
	void *p = NULL;
	HRESULT hr;

	hr = IHostMemoryManager_VirtualAlloc(mm, NULL, REGION, MEM_RESERVE | MEM_COMMIT,
					     PAGE_READWRITE, eTaskCritical, &p);
	if (hr != S_OK) {
		die("reserve", hr);
	}
	return p;
}

static void bench_query_scale(void)
{
	IHostMemoryManager *few, *many;
	void *targets[QUERY_TARGETS], **all;
	int rounds = quick ? 9 : 21, per = 200000, r, i;
	double ratios[64], ratios_spread[64], t_few = 0, t_many = 0;
	char detail[200];
	HRESULT hr;

	hr = clrmemtrace_create(NULL, &few);
	if (hr != S_OK) {
		die("create", hr);
	}
	hr = clrmemtrace_create(NULL, &many);
	if (hr != S_OK) {
		die("create", hr);
	}
	all = malloc(sizeof(*all) * QUERY_MANY);
	for (i = 0; i < QUERY_TARGETS; i++) {
		targets[i] = reserve_commit(few);
	}
	/* In the big manager, the queried ten are spread among all the others. */
	for (i = 0; i < QUERY_MANY; i++) {
		all[i] = reserve_commit(many);
	}
	void *many_targets[QUERY_TARGETS];
	for (i = 0; i < QUERY_TARGETS; i++) {
		many_targets[i] = all[(size_t)i * (QUERY_MANY / QUERY_TARGETS) + 17];
	}
	time_queries(few, targets, QUERY_TARGETS, per);
	time_queries(many, many_targets, QUERY_TARGETS, per);
	for (r = 0; r < rounds; r++) {
		double a = time_queries(few, targets, QUERY_TARGETS, per);
		double b = time_queries(many, many_targets, QUERY_TARGETS, per);
		double c = time_queries(many, all, QUERY_MANY, per);

		ratios[r] = b / a;
		ratios_spread[r] = c / a;
		t_few += a;
		t_many += b;
	}
	snprintf(detail, sizeof(detail),
		 "%.1f ns vs %.1f ns per query; querying all 100,000 at random: %.2fx",
		 t_many / rounds / per, t_few / rounds / per, median(ratios_spread, rounds));
	report(json, "query-scale", median(ratios, rounds), 2.00, detail);
	for (i = 0; i < QUERY_MANY; i++) {
		IHostMemoryManager_VirtualFree(many, all[i], 0, MEM_RELEASE);
	}
	for (i = 0; i < QUERY_TARGETS; i++) {
		IHostMemoryManager_VirtualFree(few, targets[i], 0, MEM_RELEASE);
	}
	free(all);
	IHostMemoryManager_Release(many);
	IHostMemoryManager_Release(few);
}

int main(int argc, char **argv)
{
	IHostMemoryManager *mm;
	HRESULT hr;

	if (!bench_options(argc, argv, &quick, &json)) {
		return 2;
	}
	hr = clrmemtrace_create(NULL, &mm);
	if (hr != S_OK) {
		die("clrmemtrace_create", hr);
	}
	bench_vm_cycle(mm);
	bench_malloc(mm);
	IHostMemoryManager_Release(mm);
	bench_query_scale();
	return 0;
}
