/* SPDX-License-Identifier: MIT */
/*
 * Resource limits: a manager and a heap when the process runs out of
 * address space, under RLIMIT_AS (filled by reservations, then by heap
 * blocks) and, without any limit, with every hole of the address space
 * filled by the manager's own reservations.
 *
 * In every case the test proves that
 * - every refused call returns E_OUTOFMEMORY, the same error each time the
 *   same condition is met, with its out-pointer NULL, and nothing crashes;
 * - what needs no new address space still works: commits, protection
 *   changes, decommits and queries in existing reservations, heap blocks
 *   from memory the heap already has;
 * - the manager stays consistent: VirtualQuery describes every reservation
 *   exactly, /proc/self/maps agrees, heap blocks keep their contents;
 * - it recovers: once memory is released, reservations and heap blocks of
 *   every kind succeed again, and everything can be released.
 *
 * Each scenario runs in a forked child, so a crash fails that scenario and
 * the limit dies with the child. While memory is exhausted the test itself
 * calls no malloc (static buffers, write(2), open/read for the kernel's
 * map). Under AddressSanitizer or ThreadSanitizer the test is skipped: their
 * runtimes map memory of their own at any time and die when they cannot.
 */
#include <clrmemtrace.h>

#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(LIMITS_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LIMITS_SKIP 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define LIMITS_SKIP 1
#endif
#endif

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define TIB ((size_t)1 << 40)
#define GRANULE ((size_t)0x10000)
#define MAX_RES 8192
#define NBLOCKS 8
#define SMALL_BLOCK 48
#define SENTINEL ((void *)(uintptr_t)0xdeadbeef)

static size_t page;
static IHostMemoryManager *mm;
static IHostMalloc *heap;

/* The reservations the scenario holds; the first `committed` bytes of each are read-write. */
static struct res {
	uintptr_t base;
	size_t size;
	size_t committed;
} res[MAX_RES];
static int nres;

static void *blocks[NBLOCKS];

/* ---------- Output without malloc ---------- */

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	static char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(2, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1) < 0) {
		_exit(3);
	}
}

#define die(...)                                             \
	do {                                                 \
		say("test-limits:%d: FAILED: ", __LINE__);   \
		say(__VA_ARGS__);                            \
		say("\n");                                   \
		_exit(1);                                    \
	} while (0)

#define expect_hr(got, want, what)                                                     \
	do {                                                                           \
		HRESULT got_ = (got), want_ = (want);                                   \
		if (got_ != want_) {                                                   \
			die("%s returned %s (%#x), expected %s", (what),               \
			    clrmemtrace_hresult_name(got_), (unsigned)got_,            \
			    clrmemtrace_hresult_name(want_));                          \
		}                                                                      \
	} while (0)

/* ---------- The kernel's map, without malloc ---------- */

static char maps_text[4 << 20];
static struct kvma {
	uintptr_t start, end;
	char perms[4];
} kv[65536];
static int nkv;

static void read_maps(void)
{
	size_t len = 0;
	char *line;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		die("open /proc/self/maps: %s", strerror(errno));
	}
	for (;;) {
		ssize_t n = read(fd, maps_text + len, sizeof(maps_text) - 1 - len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
		if (len == sizeof(maps_text) - 1) {
			die("/proc/self/maps is too large");
		}
	}
	close(fd);
	maps_text[len] = '\0';
	nkv = 0;
	for (line = maps_text; *line && nkv < (int)(sizeof(kv) / sizeof(kv[0]));) {
		char *end, *nl = strchr(line, '\n');

		kv[nkv].start = (uintptr_t)strtoull(line, &end, 16);
		if (*end == '-') {
			kv[nkv].end = (uintptr_t)strtoull(end + 1, &end, 16);
			if (*end == ' ' && strlen(end) > 4) {
				memcpy(kv[nkv].perms, end + 1, 3);
				kv[nkv].perms[3] = '\0';
				nkv++;
			}
		}
		if (!nl) {
			break;
		}
		line = nl + 1;
	}
}

/* [a, b) is mapped without gaps with perms ("rw-"); read_maps() first. */
static void check_kernel(uintptr_t a, uintptr_t b, const char *perms)
{
	uintptr_t x = a;
	int i;

	for (i = 0; i < nkv && x < b; i++) {
		if (kv[i].end <= x) {
			continue;
		}
		if (kv[i].start > x) {
			break;
		}
		if (strcmp(kv[i].perms, perms) != 0) {
			die("the kernel maps %#" PRIxPTR " %s, the manager says %s", x, kv[i].perms,
			    perms);
		}
		x = kv[i].end;
	}
	if (x < b) {
		die("%#" PRIxPTR " is not mapped, the manager says %s", x, perms);
	}
}

static bool kernel_free(uintptr_t a, uintptr_t b)
{
	int i;

	read_maps();
	for (i = 0; i < nkv; i++) {
		if (kv[i].start < b && kv[i].end > a) {
			return false;
		}
	}
	return true;
}

/* ---------- Checks ---------- */

static void check_query_aprot(uintptr_t addr, uintptr_t base, uintptr_t alloc, DWORD aprot,
			      size_t size, DWORD state, DWORD protect)
{
	MEMORY_BASIC_INFORMATION m;
	SIZE_T got = 0;

	expect_hr(IHostMemoryManager_VirtualQuery(mm, (void *)addr, &m, sizeof(m), &got), S_OK,
		  "VirtualQuery");
	if (got != sizeof(m) || (uintptr_t)m.BaseAddress != base ||
	    (uintptr_t)m.AllocationBase != alloc || m.AllocationProtect != aprot ||
	    m.RegionSize != size || m.State != state || m.Protect != protect ||
	    m.Type != MEM_PRIVATE) {
		die("VirtualQuery(%#" PRIxPTR ") = {%p, %p, %#x, %#zx, %#x, %#x, %#x}, expected "
		    "{%#" PRIxPTR ", %#" PRIxPTR ", %#x, %#zx, %#x, %#x, 0x20000}",
		    addr, m.BaseAddress, m.AllocationBase, (unsigned)m.AllocationProtect,
		    (size_t)m.RegionSize, (unsigned)m.State, (unsigned)m.Protect, (unsigned)m.Type,
		    base, alloc, (unsigned)aprot, size, (unsigned)state, (unsigned)protect);
	}
}

/* The same for the scenarios' reservations, all made PAGE_NOACCESS. */
static void check_query(uintptr_t addr, uintptr_t base, uintptr_t alloc, size_t size,
			DWORD state, DWORD protect)
{
	check_query_aprot(addr, base, alloc, PAGE_NOACCESS, size, state, protect);
}

/* Every reservation, through VirtualQuery and against /proc/self/maps. */
static void check_all(void)
{
	int i;

	read_maps();
	for (i = 0; i < nres; i++) {
		const struct res *r = &res[i];

		if (r->committed) {
			check_query(r->base, r->base, r->base, r->committed, MEM_COMMIT,
				    PAGE_READWRITE);
			check_kernel(r->base, r->base + r->committed, "rw-");
		}
		if (r->committed < r->size) {
			check_query(r->base + r->committed, r->base + r->committed, r->base,
				    r->size - r->committed, MEM_RESERVE, 0);
			check_kernel(r->base + r->committed, r->base + r->size, "---");
		}
	}
}

static uint8_t pattern(uintptr_t p, size_t j)
{
	return (uint8_t)((p >> 4) * 31u + j * 7u + 1u);
}

static void fill(void *p, size_t n)
{
	size_t j;

	for (j = 0; j < n; j++) {
		((uint8_t *)p)[j] = pattern((uintptr_t)p, j);
	}
}

static void check_fill(const void *p, size_t n)
{
	size_t j;

	for (j = 0; j < n; j++) {
		if (((const uint8_t *)p)[j] != pattern((uintptr_t)p, j)) {
			die("the block at %p was overwritten at offset %zu", p, j);
		}
	}
}

/* ---------- Calls ---------- */

static HRESULT reserve(size_t size)
{
	void *p = SENTINEL;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, NULL, size, MEM_RESERVE, PAGE_NOACCESS,
						     eTaskCritical, &p);

	if (hr != S_OK) {
		if (p != NULL) {
			die("a refused VirtualAlloc left *ppMem %p", p);
		}
		return hr;
	}
	if (nres == MAX_RES) {
		die("more than %d reservations", MAX_RES);
	}
	res[nres].base = (uintptr_t)p;
	res[nres].size = (size + page - 1) & ~(page - 1);
	res[nres].committed = 0;
	nres++;
	return hr;
}

/* Reserves `size` bytes at a time until refused; the refusal must be E_OUTOFMEMORY. */
static int fill_with(size_t size)
{
	int n = 0;
	HRESULT hr;

	while ((hr = reserve(size)) == S_OK) {
		n++;
	}
	expect_hr(hr, E_OUTOFMEMORY, "VirtualAlloc(MEM_RESERVE) with no room left");
	return n;
}

static void release_res(int i)
{
	expect_hr(IHostMemoryManager_VirtualFree(mm, (void *)res[i].base, 0, MEM_RELEASE), S_OK,
		  "VirtualFree(MEM_RELEASE)");
	res[i] = res[--nres];
}

static void commit(int i, size_t bytes)
{
	void *p = NULL;

	expect_hr(IHostMemoryManager_VirtualAlloc(mm, (void *)res[i].base, bytes, MEM_COMMIT,
						  PAGE_READWRITE, eTaskCritical, &p),
		  S_OK, "VirtualAlloc(MEM_COMMIT) in a reservation");
	if ((uintptr_t)p != res[i].base) {
		die("the commit returned %p, not %#" PRIxPTR, p, res[i].base);
	}
	if (bytes > res[i].committed) {
		res[i].committed = bytes;
	}
}

/* The refusals an exhausted process must give, each twice, all E_OUTOFMEMORY. */
static void check_refusals(uintptr_t free_addr)
{
	static const size_t sizes[] = { 4096, GRANULE, MIB, GIB };
	size_t i;
	int k;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			void *p = SENTINEL;

			expect_hr(reserve(sizes[i]), E_OUTOFMEMORY, "VirtualAlloc(NULL, MEM_RESERVE)");
			expect_hr(IHostMemoryManager_VirtualAlloc(mm, NULL, sizes[i],
								  MEM_RESERVE | MEM_COMMIT,
								  PAGE_READWRITE, eProcessCritical,
								  &p),
				  E_OUTOFMEMORY, "VirtualAlloc(NULL, MEM_RESERVE | MEM_COMMIT)");
			if (p) {
				die("a refused VirtualAlloc left *ppMem %p", p);
			}
			p = SENTINEL;
			expect_hr(IHostMalloc_Alloc(heap, sizes[i] * 4, eTaskCritical, &p),
				  E_OUTOFMEMORY, "a heap block that needs new memory");
			if (p) {
				die("a refused Alloc left *ppMem %p", p);
			}
		}
		if (free_addr) {
			void *p = SENTINEL;

			expect_hr(IHostMemoryManager_VirtualAlloc(mm, (void *)free_addr, MIB,
								  MEM_RESERVE, PAGE_NOACCESS,
								  eTaskCritical, &p),
				  E_OUTOFMEMORY, "VirtualAlloc at a free address");
		}
	}
}

/* What needs no new address space: commits, protection, decommit, queries, known heap memory. */
static void check_still_working(int i)
{
	DWORD old = 0;
	int k;

	commit(i, 4 * page);
	fill((void *)res[i].base, 4 * page);
	expect_hr(IHostMemoryManager_VirtualProtect(mm, (void *)(res[i].base + page), page,
						    PAGE_READONLY, &old),
		  S_OK, "VirtualProtect");
	check_query(res[i].base + page, res[i].base + page, res[i].base, page, MEM_COMMIT,
		    PAGE_READONLY);
	expect_hr(IHostMemoryManager_VirtualProtect(mm, (void *)(res[i].base + page), page,
						    PAGE_READWRITE, &old),
		  S_OK, "VirtualProtect");
	check_fill((void *)res[i].base, 4 * page);
	expect_hr(IHostMemoryManager_VirtualFree(mm, (void *)(res[i].base + 2 * page), 2 * page,
						 MEM_DECOMMIT),
		  S_OK, "VirtualFree(MEM_DECOMMIT)");
	res[i].committed = 2 * page;
	check_fill((void *)res[i].base, 2 * page);
	/* Memory the manager does not own is still described. */
	{
		MEMORY_BASIC_INFORMATION m;
		SIZE_T got = 0;
		int local = 0;

		expect_hr(IHostMemoryManager_VirtualQuery(mm, &local, &m, sizeof(m), &got), S_OK,
			  "VirtualQuery of the stack");
		if (m.State != MEM_COMMIT || m.Protect != PAGE_READWRITE) {
			die("VirtualQuery of the stack: state %#x, protect %#x", (unsigned)m.State,
			    (unsigned)m.Protect);
		}
	}
	/* The heap's blocks keep their contents; its free blocks are still handed out. */
	for (k = 0; k < NBLOCKS; k++) {
		check_fill(blocks[k], SMALL_BLOCK);
		expect_hr(IHostMalloc_Free(heap, blocks[k]), S_OK, "Free");
	}
	for (k = 0; k < NBLOCKS; k++) {
		blocks[k] = NULL;
		expect_hr(IHostMalloc_Alloc(heap, SMALL_BLOCK, eTaskCritical, &blocks[k]), S_OK,
			  "Alloc from memory the heap has");
		fill(blocks[k], SMALL_BLOCK);
	}
	expect_hr(IHostMalloc_Free(heap, NULL), S_OK, "Free(NULL)");
	expect_hr(IHostMalloc_Free(heap, (void *)res[i].base), HOST_E_INVALIDOPERATION,
		  "Free of a foreign pointer");
}

/* After some memory came back, everything works again. */
static void check_recovered(void)
{
	void *big = NULL, *other = NULL;
	char why[256];
	int i;

	expect_hr(reserve(16 * MIB), S_OK, "VirtualAlloc(MEM_RESERVE) after memory came back");
	commit(nres - 1, 4 * page);
	expect_hr(IHostMalloc_Alloc(heap, 256 * KIB, eTaskCritical, &big), S_OK,
		  "a large heap block after memory came back");
	fill(big, 256 * KIB);
	expect_hr(IHostMalloc_Alloc(heap, 3000, eTaskCritical, &other), S_OK,
		  "a heap block of a new size class after memory came back");
	fill(other, 3000);
	check_all();
	for (i = 0; i < nres; i++) {
		if (res[i].committed && res[i].size <= 64 * MIB &&
		    !maps_agree(mm, (void *)res[i].base, res[i].size, why, sizeof(why))) {
			die("maps_agree: %s", why);
		}
	}
	check_fill(big, 256 * KIB);
	check_fill(other, 3000);
	expect_hr(IHostMalloc_Free(heap, big), S_OK, "Free");
	expect_hr(IHostMalloc_Free(heap, other), S_OK, "Free");
	for (i = 0; i < NBLOCKS; i++) {
		check_fill(blocks[i], SMALL_BLOCK);
	}
}

/* ---------- Set-up and tear-down ---------- */

/* Touches stack the rest of the scenario may need: it cannot grow once memory is gone. */
static void __attribute__((noinline)) prefault_stack(void)
{
	volatile char buf[1 << 20];
	size_t i;

	for (i = 0; i < sizeof(buf); i += 1024) {
		buf[i] = (char)i;
	}
}

/*
 * Waits until the library's deferred frees have run: a heap's emptied span is
 * unmapped after an RCU grace period, on liburcu's thread, and address space
 * coming back in the middle of a scenario would make its refusals a race.
 */
static void settle(void)
{
#if defined(LIMITS_HAVE_URCU_BP)
	urcu_bp_barrier();
#else
	usleep(200000);
#endif
}

/*
 * Takes every path that needs a helper first (liburcu's call_rcu thread,
 * its reader registry, the stdio buffers), so none is created while memory
 * is exhausted.
 */
static void setup(void)
{
	void *p = NULL;
	int i;

	expect_hr(clrmemtrace_create(NULL, &mm), S_OK, "clrmemtrace_create");
	expect_hr(IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap), S_OK,
		  "CreateMalloc");
	for (i = 0; i < 80; i++) {
		expect_hr(reserve(4 * page), S_OK, "VirtualAlloc");
		commit(nres - 1, page);
		check_all();
		release_res(nres - 1);
	}
	expect_hr(IHostMalloc_Alloc(heap, MIB, eTaskCritical, &p), S_OK, "Alloc");
	expect_hr(IHostMalloc_Free(heap, p), S_OK, "Free");
	for (i = 0; i < NBLOCKS; i++) {
		expect_hr(IHostMalloc_Alloc(heap, SMALL_BLOCK, eTaskCritical, &blocks[i]), S_OK,
			  "Alloc");
		fill(blocks[i], SMALL_BLOCK);
	}
	prefault_stack();
	settle();
}

static void teardown(void)
{
	int i;

	while (nres) {
		release_res(nres - 1);
	}
	for (i = 0; i < NBLOCKS; i++) {
		check_fill(blocks[i], SMALL_BLOCK);
		expect_hr(IHostMalloc_Free(heap, blocks[i]), S_OK, "Free");
	}
	if (IHostMalloc_Release(heap) != 0 || IHostMemoryManager_Release(mm) != 0) {
		die("a reference was left");
	}
}

/* ---------- Scenarios ---------- */

static size_t vm_size(void)
{
	static char buf[8192];
	ssize_t n;
	char *p;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		die("open /proc/self/status: %s", strerror(errno));
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	p = strstr(buf, "VmSize:");
	if (!p) {
		die("no VmSize in /proc/self/status");
	}
	return (size_t)strtoull(p + 7, NULL, 10) * KIB;
}

/* An address far from everything, free now (checked), for a reservation at an address. */
static uintptr_t free_address(void)
{
	static const uintptr_t candidates[] = { 0x100000000000ull, 0x200000000000ull,
						0x300000000000ull, 0x10000000000ull };
	size_t i;

	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (kernel_free(candidates[i], candidates[i] + MIB)) {
			return candidates[i];
		}
	}
	return 0;
}

/*
 * RLIMIT_AS a little above what the process uses: reservations fill it,
 * then every kind of request that needs address space is refused.
 */
static void scenario_rlimit(void)
{
	struct rlimit old, lim;
	size_t size;
	int n, i;

	setup();
	if (getrlimit(RLIMIT_AS, &old) != 0) {
		die("getrlimit: %s", strerror(errno));
	}
	lim = old;
	lim.rlim_cur = vm_size() + 256 * MIB;
	if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur) {
		lim.rlim_cur = old.rlim_cur;
	}
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	n = fill_with(4 * MIB);
	if (n < 16) {
		die("only %d reservations of 4 MiB under a 256 MiB limit", n);
	}
	/* Then the last holes the limit leaves, down to a page. */
	for (size = 2 * MIB; size >= page; size /= 2) {
		fill_with(size);
	}
	say("  rlimit: %d reservations fill RLIMIT_AS\n", nres);
	check_refusals(free_address());
	check_all();
	check_still_working(0);
	check_all();
	check_refusals(0);
	/* Memory comes back: half of the reservations go. */
	for (i = nres - 1; i >= 0; i -= 2) {
		release_res(i);
	}
	check_recovered();
	if (setrlimit(RLIMIT_AS, &old) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	teardown();
}

/*
 * RLIMIT_AS again, filled by heap blocks this time: blocks of 16 KiB until
 * the heap cannot add a span, with a reservation made before the limit
 * still usable.
 */
static void scenario_rlimit_heap(void)
{
	static void *hb[65536];
	struct rlimit old, lim;
	int n = 0, i, k;
	size_t size;
	HRESULT hr;

	setup();
	expect_hr(reserve(MIB), S_OK, "VirtualAlloc");
	if (getrlimit(RLIMIT_AS, &old) != 0) {
		die("getrlimit: %s", strerror(errno));
	}
	lim = old;
	lim.rlim_cur = vm_size() + 128 * MIB;
	if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur) {
		lim.rlim_cur = old.rlim_cur;
	}
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	for (;;) {
		void *p = SENTINEL;

		hr = IHostMalloc_Alloc(heap, 16 * KIB, eTaskCritical, &p);
		if (hr != S_OK) {
			if (p) {
				die("a refused Alloc left *ppMem %p", p);
			}
			break;
		}
		if (n == (int)(sizeof(hb) / sizeof(hb[0]))) {
			die("more than %d blocks under a 128 MiB limit", n);
		}
		hb[n++] = p;
		fill(p, 64);
	}
	expect_hr(hr, E_OUTOFMEMORY, "Alloc with no room left");
	if (n < 1000) {
		die("only %d blocks of 16 KiB under a 128 MiB limit", n);
	}
	/* What is left is less than a span: reservations take it. */
	for (size = 2 * MIB; size >= page; size /= 2) {
		fill_with(size);
	}
	say("  rlimit-heap: %d blocks of 16 KiB and %d reservations fill RLIMIT_AS\n", n,
	    nres - 1);
	check_refusals(free_address());
	check_all();
	check_still_working(0);
	check_all();
	/* Freed blocks are handed out again without new memory. */
	for (i = 0; i < n; i += 2) {
		check_fill(hb[i], 64);
		expect_hr(IHostMalloc_Free(heap, hb[i]), S_OK, "Free");
	}
	for (i = 0; i < n; i += 2) {
		hb[i] = NULL;
		expect_hr(IHostMalloc_Alloc(heap, 16 * KIB, eTaskCritical, &hb[i]), S_OK,
			  "Alloc of a block freed under the limit");
		fill(hb[i], 64);
	}
	check_refusals(0);
	/* Memory comes back once the emptied spans are unmapped, after a grace period. */
	while (nres > 1) {
		release_res(nres - 1);
	}
	for (i = 0; i < n; i++) {
		check_fill(hb[i], 64);
		expect_hr(IHostMalloc_Free(heap, hb[i]), S_OK, "Free");
	}
	for (k = 0; k < 200 && (hr = reserve(16 * MIB)) != S_OK; k++) {
		expect_hr(hr, E_OUTOFMEMORY, "VirtualAlloc while the heap gives memory back");
		usleep(10000);
	}
	expect_hr(hr, S_OK, "VirtualAlloc two seconds after the heap's blocks were freed");
	say("  rlimit-heap: the heap's memory came back within %d ms\n", (k + 1) * 10);
	release_res(nres - 1);
	check_recovered();
	if (setrlimit(RLIMIT_AS, &old) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	teardown();
}

/* ---------- A second thread ---------- */

enum { HELPER_IDLE, HELPER_FREE, HELPER_ALLOC, HELPER_DONE, HELPER_QUIT };

static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_cond = PTHREAD_COND_INITIALIZER;
static int helper_state;
static void *helper_ptr;
static HRESULT helper_hr;

/* Frees or allocates on request, on a thread that has never used the heap before. */
static void *helper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&helper_lock);
	for (;;) {
		while (helper_state == HELPER_IDLE || helper_state == HELPER_DONE) {
			pthread_cond_wait(&helper_cond, &helper_lock);
		}
		if (helper_state == HELPER_QUIT) {
			break;
		}
		if (helper_state == HELPER_FREE) {
			helper_hr = IHostMalloc_Free(heap, helper_ptr);
		} else {
			helper_ptr = SENTINEL;
			helper_hr = IHostMalloc_Alloc(heap, SMALL_BLOCK, eTaskCritical, &helper_ptr);
		}
		helper_state = HELPER_DONE;
		pthread_cond_broadcast(&helper_cond);
	}
	pthread_mutex_unlock(&helper_lock);
	return NULL;
}

static HRESULT on_helper(int what, void **p)
{
	HRESULT hr;

	pthread_mutex_lock(&helper_lock);
	helper_ptr = *p;
	helper_state = what;
	pthread_cond_broadcast(&helper_cond);
	while (what != HELPER_QUIT && helper_state != HELPER_DONE) {
		pthread_cond_wait(&helper_cond, &helper_lock);
	}
	hr = helper_hr;
	*p = helper_ptr;
	helper_state = what == HELPER_QUIT ? HELPER_QUIT : HELPER_IDLE;
	pthread_mutex_unlock(&helper_lock);
	return hr;
}

/* A reservation whose pages alternate read-write and read-only: too many runs to keep inline. */
#define STRIPES 32

static uintptr_t striped;

static DWORD stripe_protect(size_t k)
{
	return (k & 1) ? PAGE_READONLY : PAGE_READWRITE;
}

static void make_striped(void)
{
	void *p = NULL;
	DWORD old;
	size_t k;

	expect_hr(IHostMemoryManager_VirtualAlloc(mm, NULL, STRIPES * page,
						  MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
						  eTaskCritical, &p),
		  S_OK, "VirtualAlloc");
	striped = (uintptr_t)p;
	for (k = 1; k < STRIPES; k += 2) {
		expect_hr(IHostMemoryManager_VirtualProtect(mm, (void *)(striped + k * page), page,
							    PAGE_READONLY, &old),
			  S_OK, "VirtualProtect");
	}
}

/* Every page of the striped reservation as make_striped left it, in the map and the kernel. */
static void check_striped(void)
{
	size_t k;

	read_maps();
	for (k = 0; k < STRIPES; k++) {
		uintptr_t a = striped + k * page;

		check_query_aprot(a, a, striped, PAGE_READWRITE, page, MEM_COMMIT, stripe_protect(k));
		check_kernel(a, a + page, (k & 1) ? "r--" : "rw-");
	}
}

/*
 * Changes of a map too large to keep inline need a new run array: with
 * malloc exhausted they may be refused, with E_OUTOFMEMORY, and then nothing
 * may have changed. Releasing needs no memory.
 */
static void check_striped_changes(void)
{
	DWORD old = 0;
	HRESULT hr;

	hr = IHostMemoryManager_VirtualProtect(mm, (void *)(striped + 2 * page), page,
					       PAGE_EXECUTE_READ, &old);
	if (hr == S_OK) {
		expect_hr(IHostMemoryManager_VirtualProtect(mm, (void *)(striped + 2 * page), page,
							    PAGE_READWRITE, &old),
			  S_OK, "VirtualProtect back");
	} else {
		expect_hr(hr, E_OUTOFMEMORY, "VirtualProtect with malloc exhausted");
		if (old != 0) {
			die("a refused VirtualProtect left *lpflOldProtect %#x", (unsigned)old);
		}
	}
	check_striped();
	hr = IHostMemoryManager_VirtualFree(mm, (void *)(striped + 4 * page), page, MEM_DECOMMIT);
	if (hr == S_OK) {
		void *p = NULL;

		expect_hr(IHostMemoryManager_VirtualAlloc(mm, (void *)(striped + 4 * page), page,
							  MEM_COMMIT, PAGE_READWRITE,
							  eTaskCritical, &p),
			  S_OK, "VirtualAlloc(MEM_COMMIT) back");
	} else {
		expect_hr(hr, E_OUTOFMEMORY, "VirtualFree(MEM_DECOMMIT) with malloc exhausted");
	}
	check_striped();
	say("  rlimit-other-thread: protect and decommit of a long map: %s\n",
	    hr == S_OK ? "done" : "refused, nothing changed");
}

/*
 * RLIMIT_AS with malloc drained too, and a thread that has never used the
 * heap: it cannot get a thread cache, yet a Free of a live block is still a
 * valid Free, and anything else is still refused as before.
 */
static void scenario_rlimit_other_thread(void)
{
	static void *drained[1 << 16];
	struct rlimit old, lim;
	pthread_t thread;
	size_t size;
	void *p;
	int nd = 0, i;
	HRESULT hr;

	setup();
	make_striped();
	if (pthread_create(&thread, NULL, helper_main, NULL) != 0) {
		die("pthread_create");
	}
	if (getrlimit(RLIMIT_AS, &old) != 0) {
		die("getrlimit: %s", strerror(errno));
	}
	lim = old;
	lim.rlim_cur = vm_size() + 64 * MIB;
	if (old.rlim_cur != RLIM_INFINITY && lim.rlim_cur > old.rlim_cur) {
		lim.rlim_cur = old.rlim_cur;
	}
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	for (size = 4 * MIB; size >= page; size /= 2) {
		fill_with(size);
	}
	/* Whatever malloc still has, the test takes. */
	for (size = 64 * KIB; size >= 16; size /= 4) {
		while (nd < (int)(sizeof(drained) / sizeof(drained[0])) &&
		       (drained[nd] = malloc(size)) != NULL) {
			nd++;
		}
	}
	say("  rlimit-other-thread: %d reservations and %d malloc blocks fill RLIMIT_AS\n", nres,
	    nd);
	/* Allocated here, freed there. */
	p = blocks[0];
	expect_hr(on_helper(HELPER_FREE, &p), S_OK,
		  "Free of a live block by a thread that cannot get a thread cache");
	p = blocks[0];
	expect_hr(on_helper(HELPER_FREE, &p), HOST_E_INVALIDOPERATION,
		  "a second Free of that block");
	p = NULL;
	hr = on_helper(HELPER_ALLOC, &p);
	if (hr != E_OUTOFMEMORY && hr != S_OK) {
		die("Alloc by the other thread returned %s", clrmemtrace_hresult_name(hr));
	}
	if (hr == S_OK) {
		expect_hr(on_helper(HELPER_FREE, &p), S_OK, "Free by the other thread");
	}
	blocks[0] = NULL;
	expect_hr(IHostMalloc_Alloc(heap, SMALL_BLOCK, eTaskCritical, &blocks[0]), S_OK,
		  "Alloc from the heap's memory");
	fill(blocks[0], SMALL_BLOCK);
	check_all();
	check_striped_changes();
	expect_hr(IHostMemoryManager_VirtualFree(mm, (void *)striped, 0, MEM_RELEASE), S_OK,
		  "VirtualFree(MEM_RELEASE) with malloc exhausted");
	/* Memory comes back: the other thread works as any other. */
	for (i = 0; i < nd; i++) {
		free(drained[i]);
	}
	for (i = nres - 1; i >= 0; i -= 2) {
		release_res(i);
	}
	p = NULL;
	expect_hr(on_helper(HELPER_ALLOC, &p), S_OK, "Alloc by the other thread after recovery");
	fill(p, SMALL_BLOCK);
	expect_hr(on_helper(HELPER_FREE, &p), S_OK, "Free by the other thread after recovery");
	check_recovered();
	p = NULL;
	on_helper(HELPER_QUIT, &p);
	pthread_join(thread, NULL);
	if (setrlimit(RLIMIT_AS, &old) != 0) {
		die("setrlimit: %s", strerror(errno));
	}
	teardown();
}

/*
 * No limit: the manager's reservations take every hole of the address
 * space, 1 TiB at a time and then halving down to a page.
 */
static void scenario_address_space(void)
{
	size_t size, total = 0;
	int i, n1;

	setup();
	n1 = fill_with(TIB);
	for (size = TIB / 2; size >= page; size /= 2) {
		fill_with(size);
	}
	for (i = 0; i < nres; i++) {
		total += res[i].size;
	}
	say("  address space: %d reservations (%d of 1 TiB) hold %zu GiB\n", nres, n1,
	    total / GIB);
	if (total < 32 * TIB) {
		die("only %zu GiB could be reserved", total / GIB);
	}
	check_refusals(0);
	{
		void *p = SENTINEL;

		/* An address the manager already holds is a conflict, not a lack of memory (#18). */
		expect_hr(IHostMemoryManager_VirtualAlloc(mm, (void *)res[0].base, MIB,
							  MEM_RESERVE, PAGE_NOACCESS,
							  eTaskCritical, &p),
			  HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS),
			  "VirtualAlloc at a reserved address");
	}
	check_all();
	/* The smallest reservation that holds four pages. */
	for (i = nres - 1; i >= 0 && res[i].size < 4 * page; i--) {
	}
	if (i < 0) {
		die("no reservation of four pages");
	}
	check_still_working(i);
	check_all();
	check_refusals(0);
	/* Address space comes back: every other reservation of 1 TiB goes. */
	for (i = n1 - 1; i >= 0; i -= 2) {
		release_res(i);
	}
	check_recovered();
	teardown();
}

static const struct scenario {
	const char *name;
	void (*run)(void);
} scenarios[] = {
	{ "rlimit", scenario_rlimit },
	{ "rlimit-heap", scenario_rlimit_heap },
	{ "rlimit-other-thread", scenario_rlimit_other_thread },
	{ "address-space", scenario_address_space },
};

int main(void)
{
	int failed = 0;
	size_t i;

#if defined(LIMITS_SKIP)
	printf("test-limits: skipped under a sanitizer that needs memory of its own\n");
	return 77;
#endif
	page = (size_t)sysconf(_SC_PAGESIZE);
	printf("1..%zu\n", sizeof(scenarios) / sizeof(scenarios[0]));
	fflush(stdout);
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		int status = 0;
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			alarm(100);
			scenarios[i].run();
			_exit(0);
		}
		if (waitpid(pid, &status, 0) != pid) {
			perror("waitpid");
			return 1;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok %zu - %s\n", i + 1, scenarios[i].name);
		} else {
			failed = 1;
			if (WIFSIGNALED(status)) {
				printf("not ok %zu - %s (signal %d)\n", i + 1, scenarios[i].name,
				       WTERMSIG(status));
			} else {
				printf("not ok %zu - %s (exit %d)\n", i + 1, scenarios[i].name,
				       WEXITSTATUS(status));
			}
		}
		fflush(stdout);
	}
	return failed;
}
