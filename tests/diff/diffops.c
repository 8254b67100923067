/* SPDX-License-Identifier: MIT */
/*
 * The differential test's program: from a seed, a pseudo-random sequence of
 * IHostMemoryManager calls, valid and invalid, run through the manager, with
 * one normalised line per call on standard output.
 *
 *   diffops SEED COUNT
 *
 * The same program runs on the POSIX backend natively and on the Windows
 * backend under Wine (tests/diff/compare.py diffs the two). Everything that
 * depends on where the OS placed memory is normalised: addresses are
 * printed as offsets from the reservation ("slot") they belong to, and the
 * size of a free region (the distance to whatever the process mapped next)
 * is left out. The sequence depends only on the seed and on the HRESULTs
 * (a reservation that failed is not used afterwards), so while the two
 * backends agree they run the same calls.
 *
 * Each line starts with the call's index and its kind; compare.py's
 * normalisation rules name kinds. After every call that may change a
 * reservation, the reservation's runs are queried from its base to its end
 * ("run" lines), so every state difference shows.
 */
#include <clrmemtrace.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 8
#define PAGE ((size_t)4096)
#define GRANULE ((size_t)65536)
#define MAX_PAGES 40

struct slot {
	char *base; /* NULL: empty */
	size_t size;
};

static IHostMemoryManager *mm;
static struct slot slots[SLOTS];
static uint64_t rng;
static unsigned long index_;

/* splitmix64: the same numbers on every platform. */
static uint64_t next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned pick(unsigned n)
{
	return (unsigned)(next() % n);
}

static const DWORD protections[] = {
	PAGE_NOACCESS, PAGE_READONLY, PAGE_READWRITE, PAGE_EXECUTE, PAGE_EXECUTE_READ,
	PAGE_EXECUTE_READWRITE,
	/* Valid with modifiers. */
	PAGE_READWRITE | PAGE_GUARD, PAGE_READONLY | PAGE_GUARD, PAGE_READWRITE | PAGE_NOCACHE,
	PAGE_EXECUTE_READ | PAGE_WRITECOMBINE,
	/* Invalid everywhere. */
	0, PAGE_WRITECOPY, PAGE_EXECUTE_WRITECOPY, PAGE_READONLY | PAGE_READWRITE, PAGE_GUARD,
	PAGE_NOCACHE,
};

/*
 * Invalid by Microsoft's documentation (so on Windows and the POSIX
 * backend) but accepted by Wine: used only by op_bad_protection, on a
 * scratch reservation, so Wine's acceptance cannot change what the rest of
 * the sequence sees.
 */
static const DWORD wine_accepts[] = {
	PAGE_NOACCESS | PAGE_GUARD, PAGE_READWRITE | PAGE_GUARD | PAGE_NOCACHE,
	PAGE_NOACCESS | PAGE_NOCACHE, PAGE_READWRITE | PAGE_NOCACHE | PAGE_WRITECOMBINE,
	PAGE_READWRITE | 0x800, PAGE_READWRITE | 0x80000000u,
};

/* Mostly valid protections, sometimes a modifier, sometimes an invalid one. */
static DWORD some_protection(void)
{
	unsigned r = pick(100);

	if (r < 75) {
		return protections[pick(6)];
	}
	if (r < 88) {
		return protections[6 + pick(4)];
	}
	return protections[10 + pick(6)];
}

/* ---------- Output ---------- */

static void line(const char *fmt, ...)
{
	va_list ap;

	printf("%lu ", index_);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* An address as slot+offset, or one of the fixed addresses the sequence uses. */
static void describe(const void *p, char *out, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	int i;

	if (!p) {
		snprintf(out, len, "null");
		return;
	}
	for (i = 0; i < SLOTS; i++) {
		uintptr_t b = (uintptr_t)slots[i].base;

		if (b && a >= b && a < b + GRANULE * ((slots[i].size + GRANULE - 1) / GRANULE)) {
			snprintf(out, len, "s%d+%#" PRIxPTR, i, a - b);
			return;
		}
	}
	snprintf(out, len, "other");
}

static void print_query(const char *kind, const void *addr)
{
	MEMORY_BASIC_INFORMATION m;
	SIZE_T got = 0;
	HRESULT hr = IHostMemoryManager_VirtualQuery(mm, (void *)addr, &m, sizeof(m), &got);
	char a[48], base[48], abase[48];

	describe(addr, a, sizeof(a));
	if (hr != S_OK) {
		line("%s %s hr=%s got=%zu", kind, a, clrmemtrace_hresult_name(hr), (size_t)got);
		return;
	}
	describe(m.BaseAddress, base, sizeof(base));
	describe(m.AllocationBase, abase, sizeof(abase));
	if (m.State == MEM_FREE) {
		/* How far the free space reaches depends on what else the process mapped. */
		line("%s %s hr=S_OK base=%s free abase=%s aprot=%#lx prot=%#lx type=%#lx", kind, a,
		     base, abase, (unsigned long)m.AllocationProtect, (unsigned long)m.Protect,
		     (unsigned long)m.Type);
		return;
	}
	line("%s %s hr=S_OK base=%s abase=%s aprot=%#lx size=%#zx state=%#lx prot=%#lx type=%#lx",
	     kind, a, base, abase, (unsigned long)m.AllocationProtect, (size_t)m.RegionSize,
	     (unsigned long)m.State, (unsigned long)m.Protect, (unsigned long)m.Type);
}

/* Every run of slot i, as VirtualQuery reports it. */
static void print_runs(int i)
{
	char *a = slots[i].base, *end;

	if (!a) {
		return;
	}
	end = a + slots[i].size;
	while (a < end) {
		MEMORY_BASIC_INFORMATION m;
		SIZE_T got = 0;

		print_query("run", a);
		if (IHostMemoryManager_VirtualQuery(mm, a, &m, sizeof(m), &got) != S_OK ||
		    m.RegionSize == 0 || m.State == MEM_FREE) {
			break;
		}
		a = (char *)m.BaseAddress + m.RegionSize;
	}
}

static int live_slot(void)
{
	int start = (int)pick(SLOTS), i;

	for (i = 0; i < SLOTS; i++) {
		int s = (start + i) % SLOTS;

		if (slots[s].base) {
			return s;
		}
	}
	return -1;
}

static int empty_slot(void)
{
	int i;

	for (i = 0; i < SLOTS; i++) {
		if (!slots[i].base) {
			return i;
		}
	}
	return -1;
}

/* Pages between the end of slot s and the end of its last 64 KiB. */
static size_t tail_pages(int s)
{
	return (GRANULE - slots[s].size % GRANULE) % GRANULE / PAGE;
}

/* An offset and a length of whole and partial pages, mostly inside slot s. */
static void some_range(int s, size_t *off, size_t *len)
{
	size_t pages = slots[s].size / PAGE;
	size_t first = pick((unsigned)pages);
	unsigned r = pick(100);

	*off = first * PAGE;
	*len = (1 + pick((unsigned)(pages - first))) * PAGE;
	if (r < 10) {
		*off += pick((unsigned)PAGE); /* unaligned start */
	} else if (r < 15) {
		/* Past the end, into the free rest of its last 64 KiB (never a neighbour). */
		*len += PAGE * pick((unsigned)(tail_pages(s) + 1));
	} else if (r < 20) {
		*len = 1 + pick((unsigned)PAGE); /* a partial page */
	} else if (r < 23) {
		*len = 0;
	}
}

/* ---------- Operations ---------- */

static void op_reserve(void)
{
	static const DWORD types[] = {
		MEM_RESERVE,
		MEM_RESERVE,
		MEM_RESERVE | MEM_COMMIT,
		MEM_COMMIT,
		MEM_RESERVE | MEM_TOP_DOWN,
		/* Invalid. */
		0,
		MEM_RESERVE | MEM_LARGE_PAGES,
		MEM_RESERVE | MEM_DECOMMIT,
		MEM_COMMIT | MEM_RELEASE,
		MEM_RESERVE | 0x40000000u,
		MEM_RESERVE | MEM_PHYSICAL,
	};
	int s = empty_slot();
	DWORD type = types[pick(sizeof(types) / sizeof(types[0]))];
	DWORD protect = some_protection();
	size_t size = (1 + pick(MAX_PAGES)) * PAGE;
	void *p = NULL;
	HRESULT hr;
	char out[48];

	if (s < 0) {
		return;
	}
	if (pick(8) == 0) {
		size -= 1 + pick((unsigned)PAGE - 1); /* not a whole number of pages */
	}
	if (pick(30) == 0) {
		size = 0;
	}
	hr = IHostMemoryManager_VirtualAlloc(mm, NULL, size, type, protect, eTaskCritical, &p);
	if (hr == S_OK) {
		slots[s].base = p;
		slots[s].size = (size + PAGE - 1) / PAGE * PAGE;
	}
	describe(p, out, sizeof(out));
	line("reserve size=%#zx type=%#lx prot=%#lx hr=%s out=%s", size, (unsigned long)type,
	     (unsigned long)protect, clrmemtrace_hresult_name(hr), out);
	if (hr == S_OK) {
		print_runs(s);
	}
}

/* Write-watch memory: forwarded on Windows, refused on POSIX (DESIGN.md). */
static void op_write_watch(void)
{
	void *p = NULL;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, NULL, GRANULE,
						     MEM_RESERVE | MEM_WRITE_WATCH, PAGE_READWRITE,
						     eTaskCritical, &p);

	line("write_watch hr=%s out=%s", clrmemtrace_hresult_name(hr), p ? "new" : "null");
	if (hr == S_OK) {
		IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE);
	}
}

/* VirtualAlloc of `type` over a range of live slot s (none when s < 0), and what came of it. */
static void alloc_in_slot(const char *name, int s, DWORD type, DWORD protect)
{
	size_t off, len;
	void *p = NULL;
	HRESULT hr;
	char at[48], out[48];

	if (s < 0) {
		return;
	}
	some_range(s, &off, &len);
	hr = IHostMemoryManager_VirtualAlloc(mm, slots[s].base + off, len, type, protect,
					     eTaskCritical, &p);
	describe(slots[s].base + off, at, sizeof(at));
	describe(p, out, sizeof(out));
	line("%s at=%s len=%#zx type=%#lx prot=%#lx hr=%s out=%s", name, at, len,
	     (unsigned long)type, (unsigned long)protect, clrmemtrace_hresult_name(hr), out);
	print_runs(s);
}

static void op_commit(void)
{
	int s = live_slot();
	DWORD protect = some_protection();
	DWORD type = pick(12) ? MEM_COMMIT : MEM_COMMIT | MEM_RESERVE;

	alloc_in_slot("commit", s, type, protect);
}

static void op_decommit(void)
{
	int s = live_slot();
	size_t off, len;
	HRESULT hr;
	char at[48];

	if (s < 0) {
		return;
	}
	some_range(s, &off, &len);
	hr = IHostMemoryManager_VirtualFree(mm, slots[s].base + off, len, MEM_DECOMMIT);
	describe(slots[s].base + off, at, sizeof(at));
	line("decommit at=%s len=%#zx hr=%s", at, len, clrmemtrace_hresult_name(hr));
	print_runs(s);
}

static void op_protect(void)
{
	int s = live_slot();
	DWORD protect = some_protection(), old = 0xdeadbeef;
	size_t off, len;
	HRESULT hr;
	char at[48];

	if (s < 0) {
		return;
	}
	some_range(s, &off, &len);
	hr = IHostMemoryManager_VirtualProtect(mm, slots[s].base + off, len, protect, &old);
	describe(slots[s].base + off, at, sizeof(at));
	line("protect at=%s len=%#zx prot=%#lx hr=%s old=%#lx", at, len, (unsigned long)protect,
	     clrmemtrace_hresult_name(hr), (unsigned long)old);
	print_runs(s);
}

/*
 * MEM_RESET, alone and with other flags (which Wine accepts or reports
 * otherwise: compare.py's rule "reset-flags"); it never changes a state.
 */
static void op_reset(void)
{
	static const DWORD extra[] = { 0, 0, 0, 0, 0, MEM_COMMIT, MEM_RESERVE, MEM_TOP_DOWN };
	int s = live_slot();
	DWORD type = MEM_RESET | extra[pick(sizeof(extra) / sizeof(extra[0]))];
	DWORD protect = some_protection();

	alloc_in_slot("reset", s, type, protect);
}

static void op_release(void)
{
	static const DWORD types[] = {
		MEM_RELEASE, MEM_RELEASE, MEM_RELEASE, MEM_RELEASE, 0, MEM_DECOMMIT | MEM_RELEASE,
		MEM_RELEASE | MEM_FREE, 0x1234,
	};
	int s = live_slot();
	DWORD type = types[pick(sizeof(types) / sizeof(types[0]))];
	size_t off = 0, size = 0, old_size;
	unsigned r = pick(100);
	char *base;
	HRESULT hr;
	char at[48];

	if (s < 0) {
		return;
	}
	if (r < 10) {
		off = PAGE * (1 + pick(3)); /* not the allocation base */
	} else if (r < 20) {
		off = 1 + pick((unsigned)PAGE - 1); /* inside the first page */
	} else if (r < 30) {
		size = PAGE * (1 + pick(3)); /* a size with MEM_RELEASE */
	}
	base = slots[s].base;
	old_size = slots[s].size;
	describe(base + off, at, sizeof(at));
	hr = IHostMemoryManager_VirtualFree(mm, base + off, size, type);
	/* inside=0: the address is past the reservation, in unallocated memory. */
	line("release at=%s inside=%d size=%#zx type=%#lx hr=%s", at, off < old_size, size,
	     (unsigned long)type, clrmemtrace_hresult_name(hr));
	if (hr == S_OK && (type & MEM_RELEASE)) {
		slots[s].base = NULL;
		/* The same call again: the address is free now. */
		hr = IHostMemoryManager_VirtualFree(mm, base, 0, MEM_RELEASE);
		line("release_again hr=%s", clrmemtrace_hresult_name(hr));
		/* Operations on the freed range. */
		hr = IHostMemoryManager_VirtualProtect(mm, base, PAGE, PAGE_READWRITE,
						       &(DWORD){ 0 });
		line("protect_free hr=%s", clrmemtrace_hresult_name(hr));
		hr = IHostMemoryManager_VirtualFree(mm, base, PAGE, MEM_DECOMMIT);
		line("decommit_free hr=%s", clrmemtrace_hresult_name(hr));
		hr = IHostMemoryManager_VirtualAlloc(mm, base, PAGE, MEM_COMMIT, PAGE_READWRITE,
						     eTaskCritical, &(void *){ NULL });
		line("commit_free hr=%s", clrmemtrace_hresult_name(hr));
		hr = IHostMemoryManager_VirtualAlloc(mm, base, PAGE, MEM_RESET, PAGE_READWRITE,
						     eTaskCritical, &(void *){ NULL });
		line("reset_free hr=%s", clrmemtrace_hresult_name(hr));
		/* Reserving the same place again, at once, is deterministic. */
		if (pick(2)) {
			/*
			 * Within the pages it had: nothing else can be there yet (the
			 * rest of its last 64 KiB may hold other mappings on Linux).
			 */
			size_t shift = old_size > PAGE ? pick(2) * PAGE : 0;
			char *where = base + shift;
			size_t again = (1 + pick((unsigned)((old_size - shift) / PAGE))) * PAGE;
			void *p = NULL;

			/* At a page above the old base it still starts there (64 KiB rounding). */
			hr = IHostMemoryManager_VirtualAlloc(mm, where, again, MEM_RESERVE,
							     PAGE_NOACCESS, eTaskCritical, &p);
			if (hr == S_OK) {
				slots[s].base = p;
				slots[s].size = (size_t)(where - (char *)p) + again;
			}
			line("reserve_at size=%#zx hr=%s same=%d", again,
			     clrmemtrace_hresult_name(hr), p == base);
			if (hr == S_OK) {
				print_runs(s);
			}
		}
	}
	print_runs(s);
}

/*
 * The protections only Wine accepts, each tried by VirtualAlloc (reserve,
 * and commit in a reservation) and VirtualProtect on a scratch reservation
 * that is released at once.
 */
static void op_bad_protection(void)
{
	DWORD protect = wine_accepts[pick(sizeof(wine_accepts) / sizeof(wine_accepts[0]))];
	void *scratch = NULL, *p = NULL;
	DWORD old = 0;
	HRESULT hr;

	if (IHostMemoryManager_VirtualAlloc(mm, NULL, 2 * PAGE, MEM_RESERVE | MEM_COMMIT,
					    PAGE_READWRITE, eTaskCritical, &scratch) != S_OK) {
		line("bad_protection scratch failed");
		return;
	}
	switch (pick(3)) {
	case 0:
		hr = IHostMemoryManager_VirtualAlloc(mm, NULL, PAGE, MEM_RESERVE, protect,
						     eTaskCritical, &p);
		line("bad_protection reserve prot=%#lx hr=%s", (unsigned long)protect,
		     clrmemtrace_hresult_name(hr));
		if (hr == S_OK) {
			IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE);
		}
		break;
	case 1:
		hr = IHostMemoryManager_VirtualAlloc(mm, scratch, PAGE, MEM_COMMIT, protect,
						     eTaskCritical, &p);
		line("bad_protection commit prot=%#lx hr=%s", (unsigned long)protect,
		     clrmemtrace_hresult_name(hr));
		break;
	default:
		hr = IHostMemoryManager_VirtualProtect(mm, scratch, PAGE, protect, &old);
		line("bad_protection protect prot=%#lx hr=%s", (unsigned long)protect,
		     clrmemtrace_hresult_name(hr));
		break;
	}
	IHostMemoryManager_VirtualFree(mm, scratch, 0, MEM_RELEASE);
}

static void op_query(void)
{
	int s = live_slot();
	size_t off;

	if (s < 0) {
		return;
	}
	/*
	 * Inside the reservation only: on Linux the rest of its last 64 KiB is
	 * ordinary free address space, where other mappings may appear.
	 */
	off = pick((unsigned)slots[s].size);
	print_query("query", slots[s].base + off);
}

/* Arguments that are wrong whatever the state. */
static void op_invalid(void)
{
	static const uintptr_t far_away[] = {
		(uintptr_t)0x1000, (uintptr_t)0xffff, UINTPTR_MAX & ~(uintptr_t)0xfff,
		(uintptr_t)0xffffffffff600000ull, (uintptr_t)1 << 62,
	};
	uintptr_t a = far_away[pick(sizeof(far_away) / sizeof(far_away[0]))];
	MEMORY_BASIC_INFORMATION m;
	SIZE_T got = 0;
	void *p = NULL;
	HRESULT hr;
	DWORD old = 0;

	switch (pick(7)) {
	case 0:
		hr = IHostMemoryManager_VirtualAlloc(mm, (void *)a, PAGE, MEM_RESERVE,
						     PAGE_READWRITE, eTaskCritical, &p);
		line("invalid reserve at=%#" PRIxPTR " hr=%s", a, clrmemtrace_hresult_name(hr));
		break;
	case 1:
		hr = IHostMemoryManager_VirtualAlloc(mm, (void *)a, PAGE, MEM_COMMIT,
						     PAGE_READWRITE, eTaskCritical, &p);
		line("invalid commit at=%#" PRIxPTR " hr=%s", a, clrmemtrace_hresult_name(hr));
		break;
	case 2:
		hr = IHostMemoryManager_VirtualFree(mm, (void *)a, 0, MEM_RELEASE);
		line("invalid release at=%#" PRIxPTR " hr=%s", a, clrmemtrace_hresult_name(hr));
		break;
	case 3:
		hr = IHostMemoryManager_VirtualProtect(mm, (void *)a, PAGE, PAGE_READONLY, &old);
		line("invalid protect at=%#" PRIxPTR " hr=%s", a, clrmemtrace_hresult_name(hr));
		break;
	case 4:
		hr = IHostMemoryManager_VirtualQuery(mm, (void *)a, &m, sizeof(m), &got);
		if (a < GRANULE) {
			line("invalid query at=%#" PRIxPTR " hr=%s state=%#lx", a,
			     clrmemtrace_hresult_name(hr),
			     hr == S_OK ? (unsigned long)m.State : 0ul);
		} else {
			line("invalid query at=%#" PRIxPTR " hr=%s", a,
			     clrmemtrace_hresult_name(hr));
		}
		break;
	case 5:
		hr = IHostMemoryManager_VirtualFree(mm, NULL, 0,
						    pick(2) ? MEM_RELEASE : MEM_DECOMMIT);
		line("invalid free_null hr=%s", clrmemtrace_hresult_name(hr));
		break;
	default:
		hr = IHostMemoryManager_VirtualAlloc(mm, NULL, PAGE, MEM_RESET, PAGE_READWRITE,
						     eTaskCritical, &p);
		line("invalid reset_null hr=%s", clrmemtrace_hresult_name(hr));
		break;
	}
}

/*
 * The library starts helper threads on first need (the POSIX backend's
 * deferred frees go to liburcu's call_rcu thread after 64 releases); a new
 * thread's stack could land in address space the sequence just released
 * and means to reserve again. A throw-away manager's releases start them
 * before the sequence does; none of this is printed.
 */
static void warm_up(void)
{
	IHostMemoryManager *w;
	int i;

	if (clrmemtrace_create(NULL, &w) != S_OK) {
		return;
	}
	for (i = 0; i < 200; i++) {
		void *p = NULL;

		if (IHostMemoryManager_VirtualAlloc(w, NULL, PAGE, MEM_RESERVE | MEM_COMMIT,
						    PAGE_READWRITE, eTaskCritical, &p) == S_OK) {
			IHostMemoryManager_VirtualFree(w, p, 0, MEM_RELEASE);
		}
	}
	IHostMemoryManager_Release(w);
}

int main(int argc, char **argv)
{
	unsigned long count, i;
	int s;

	if (argc != 3) {
		fprintf(stderr, "usage: %s SEED COUNT\n", argv[0]);
		return 2;
	}
	rng = strtoull(argv[1], NULL, 0);
	count = strtoul(argv[2], NULL, 0);
	warm_up();
	if (clrmemtrace_create(NULL, &mm) != S_OK) {
		fprintf(stderr, "clrmemtrace_create failed\n");
		return 1;
	}
	for (i = 0; i < count; i++) {
		unsigned r = pick(100);

		index_ = i;
		if (r < 14) {
			op_reserve();
		} else if (r < 30) {
			op_commit();
		} else if (r < 42) {
			op_decommit();
		} else if (r < 57) {
			op_protect();
		} else if (r < 64) {
			op_reset();
		} else if (r < 74) {
			op_release();
		} else if (r < 88) {
			op_query();
		} else if (r < 90) {
			op_write_watch();
		} else if (r < 92) {
			op_bad_protection();
		} else {
			op_invalid();
		}
	}
	for (s = 0; s < SLOTS; s++) {
		if (slots[s].base) {
			IHostMemoryManager_VirtualFree(mm, slots[s].base, 0, MEM_RELEASE);
		}
	}
	IHostMemoryManager_Release(mm);
	return 0;
}
