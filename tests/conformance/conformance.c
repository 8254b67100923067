/* SPDX-License-Identifier: MIT */
#include "conformance.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(_WIN32)
#include <windows.h>
#else
#include <signal.h>
#include <unistd.h>
#endif

#if defined(CONFORMANCE_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

size_t page;

/*
 * Takes every path that frees memory later (a replaced page-state map, a
 * released reservation, an emptied heap) once and waits for the frees, so a
 * sanitizer records their call stacks before the tests start looking at the
 * address space (see conformance_settle).
 */
static void warm_up(void)
{
	IHostMemoryManager *mm = NULL;
	IHostMalloc *heap = NULL;
	MEMORY_BASIC_INFORMATION m;
	void *p = NULL, *block = NULL;
	DWORD old;
	SIZE_T got;

	if (clrmemtrace_create(NULL, &mm) != S_OK) {
		return;
	}
	if (IHostMemoryManager_VirtualAlloc(mm, NULL, 4 * page, MEM_RESERVE | MEM_COMMIT,
					    PAGE_READWRITE, eTaskCritical, &p) == S_OK) {
		IHostMemoryManager_VirtualProtect(mm, p, page, PAGE_READONLY, &old);
		IHostMemoryManager_VirtualFree(mm, (char *)p + page, page, MEM_DECOMMIT);
		IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &got);
		IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE);
	}
	if (IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap) == S_OK) {
		if (IHostMalloc_Alloc(heap, 100000, eTaskCritical, &block) == S_OK) {
			IHostMalloc_Free(heap, block);
		}
		if (IHostMalloc_Alloc(heap, 16, eTaskCritical, &block) == S_OK) {
			IHostMalloc_Free(heap, block);
		}
		IHostMalloc_Release(heap);
	}
	IHostMemoryManager_Release(mm);
	conformance_settle();
}

#if defined(_WIN32)
void conformance_init(void)
{
	SYSTEM_INFO si;

	GetSystemInfo(&si);
	page = si.dwPageSize;
	if ((uintptr_t)si.lpMaximumApplicationAddress + 1 != USER_LIMIT) {
		fprintf(stderr, "the user-space limit is %p, not %#jx\n",
			(void *)((uintptr_t)si.lpMaximumApplicationAddress + 1),
			(uintmax_t)USER_LIMIT);
		exit(1);
	}
	warm_up();
}

bool conformance_on_wine(void)
{
	HMODULE ntdll = GetModuleHandleA("ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

void conformance_posix_only(void **state)
{
	print_message("[  SKIPPED ] POSIX backend only: %s\n", (const char *)*state);
	skip();
}
#else
void conformance_init(void)
{
	long ps = sysconf(_SC_PAGESIZE);

	if (ps <= 0) {
		fprintf(stderr, "sysconf(_SC_PAGESIZE) failed\n");
		_exit(1);
	}
	page = (size_t)ps;
	warm_up();
}

bool conformance_on_wine(void)
{
	return false;
}
#endif

void conformance_settle(void)
{
#if defined(CONFORMANCE_HAVE_URCU_BP)
	urcu_bp_barrier();
#endif
}

int conformance_done(int rc)
{
	conformance_settle();
	return rc;
}

/* ---------- Exact results ---------- */

void check_hr_(HRESULT expected, HRESULT actual, const char *expr, const char *file, int line)
{
	if (actual != expected) {
		print_error("%s returned %s (0x%08" PRIx32 "), expected %s (0x%08" PRIx32 ")\n",
			    expr, clrmemtrace_hresult_name(actual), (uint32_t)actual,
			    clrmemtrace_hresult_name(expected), (uint32_t)expected);
	}
	_assert_int_equal((uint32_t)actual, (uint32_t)expected, file, line);
}

static void field_mismatch(const char *field, uintmax_t got, uintmax_t want, bool *ok)
{
	print_error("MEMORY_BASIC_INFORMATION.%s is %#jx, expected %#jx\n", field, got, want);
	*ok = false;
}

void check_mbi_(const MEMORY_BASIC_INFORMATION *m, const void *base, const void *allocation_base,
		DWORD allocation_protect, SIZE_T region_size, DWORD state, DWORD protect,
		DWORD type, const char *file, int line)
{
	bool ok = true;

	if (m->BaseAddress != base) {
		field_mismatch("BaseAddress", (uintptr_t)m->BaseAddress, (uintptr_t)base, &ok);
	}
	if (m->AllocationBase != allocation_base) {
		field_mismatch("AllocationBase", (uintptr_t)m->AllocationBase,
			       (uintptr_t)allocation_base, &ok);
	}
	if (m->AllocationProtect != allocation_protect) {
		field_mismatch("AllocationProtect", m->AllocationProtect, allocation_protect, &ok);
	}
	if (m->RegionSize != region_size) {
		field_mismatch("RegionSize", m->RegionSize, region_size, &ok);
	}
	if (m->State != state) {
		field_mismatch("State", m->State, state, &ok);
	}
	if (m->Protect != protect) {
		field_mismatch("Protect", m->Protect, protect, &ok);
	}
	if (m->Type != type) {
		field_mismatch("Type", m->Type, type, &ok);
	}
	if (!ok) {
		_fail(file, line);
	}
}

void query_(IHostMemoryManager *mm, const void *addr, MEMORY_BASIC_INFORMATION *m,
	    const char *file, int line)
{
	SIZE_T got = SENTINEL_SIZE;
	HRESULT hr;

	memset(m, 0xcc, sizeof(*m));
	hr = IHostMemoryManager_VirtualQuery(mm, (void *)addr, m, sizeof(*m), &got);
	if (hr != S_OK) {
		print_error("VirtualQuery(%p) returned %s\n", addr, clrmemtrace_hresult_name(hr));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)S_OK, file, line);
	_assert_int_equal(got, sizeof(*m), file, line);
}

void check_query_(IHostMemoryManager *mm, const void *addr, const void *base,
		  const void *allocation_base, DWORD allocation_protect, SIZE_T region_size,
		  DWORD state, DWORD protect, DWORD type, const char *file, int line)
{
	MEMORY_BASIC_INFORMATION m;

	query_(mm, addr, &m, file, line);
	check_mbi_(&m, base, allocation_base, allocation_protect, region_size, state, protect, type,
		   file, line);
}

void check_free_(IHostMemoryManager *mm, const void *addr, const char *file, int line)
{
	uintptr_t base = (uintptr_t)addr & ~(uintptr_t)(page - 1);
	int attempt;

	conformance_settle();
	for (attempt = 0; attempt < 16; attempt++) {
		MEMORY_BASIC_INFORMATION m;
		struct vma_info v;
		uintptr_t next = vma_next_start(base);
		bool mapped = vma_find(base, &v);

		query_(mm, addr, &m, file, line);
		if (vma_next_start(base) != next || vma_find(base, &v) != mapped) {
			continue; /* the address space changed around the query: look again */
		}
		if (mapped) {
			print_error("%p should be free, but the kernel maps %#" PRIxPTR
				    "-%#" PRIxPTR " %s there\n",
				    addr, v.start, v.end, v.perms);
			_fail(file, line);
		}
		check_mbi_(&m, (void *)base, NULL, 0, next - base, MEM_FREE, PAGE_NOACCESS, 0, file,
			   line);
		return;
	}
	print_error("the address space kept changing around %p\n", addr);
	_fail(file, line);
}

void check_maps_(IHostMemoryManager *mm, const void *base, size_t size, const char *file,
		 int line)
{
	char why[256];

	if (!maps_agree(mm, (void *)base, size, why, sizeof(why))) {
		print_error("page map and /proc/self/maps disagree: %s\n", why);
		_fail(file, line);
	}
}

/* ---------- Calls with sentinels ---------- */

void *alloc_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, DWORD protect,
		const char *file, int line)
{
	void *p = SENTINEL_PTR;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, addr, size, type, protect, eTaskCritical,
						     &p);

	if (hr != S_OK) {
		print_error("VirtualAlloc(%p, %#zx, %#" PRIx32 ", %#" PRIx32 ") returned %s\n",
			    addr, (size_t)size, (uint32_t)type, (uint32_t)protect,
			    clrmemtrace_hresult_name(hr));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)S_OK, file, line);
	_assert_true(p != NULL && p != SENTINEL_PTR, "VirtualAlloc result", file, line);
	return p;
}

void alloc_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD type, DWORD protect,
		  HRESULT expected, const char *file, int line)
{
	void *p = SENTINEL_PTR;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, addr, size, type, protect, eTaskCritical,
						     &p);

	if (hr != expected) {
		print_error("VirtualAlloc(%p, %#zx, %#" PRIx32 ", %#" PRIx32
			    ") returned %s, expected %s\n",
			    addr, (size_t)size, (uint32_t)type, (uint32_t)protect,
			    clrmemtrace_hresult_name(hr),
			    clrmemtrace_hresult_name(expected));
		if (hr == S_OK && p != NULL && p != SENTINEL_PTR) {
			/* Do not leak what an unexpected success reserved. */
			IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE);
		}
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)expected, file, line);
	_assert_true(p == NULL, "*ppMem is NULL after a failed VirtualAlloc", file, line);
}

DWORD protect_ok_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD protect,
		  const char *file, int line)
{
	DWORD old = SENTINEL_DWORD;
	HRESULT hr = IHostMemoryManager_VirtualProtect(mm, addr, size, protect, &old);

	if (hr != S_OK) {
		print_error("VirtualProtect(%p, %#zx, %#" PRIx32 ") returned %s\n", addr,
			    (size_t)size, (uint32_t)protect, clrmemtrace_hresult_name(hr));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)S_OK, file, line);
	_assert_true(old != SENTINEL_DWORD, "old protection written", file, line);
	return old;
}

void protect_fails_(IHostMemoryManager *mm, void *addr, SIZE_T size, DWORD protect,
		    HRESULT expected, const char *file, int line)
{
	DWORD old = SENTINEL_DWORD;
	HRESULT hr = IHostMemoryManager_VirtualProtect(mm, addr, size, protect, &old);

	if (hr != expected) {
		print_error("VirtualProtect(%p, %#zx, %#" PRIx32 ") returned %s, expected %s\n",
			    addr, (size_t)size, (uint32_t)protect, clrmemtrace_hresult_name(hr),
			    clrmemtrace_hresult_name(expected));
	}
	_assert_int_equal((uint32_t)hr, (uint32_t)expected, file, line);
	_assert_int_equal(old, 0, file, line);
}

void reserve_adjacent_(IHostMemoryManager *mm, size_t size, DWORD protect, char **a, char **b,
		       const char *file, int line)
{
	int attempt;

	for (attempt = 0; attempt < 32; attempt++) {
		char *both = alloc_ok_(mm, NULL, 2 * size, MEM_RESERVE, PAGE_NOACCESS, file, line);
		void *lo = NULL, *hi = NULL;
		HRESULT hr = IHostMemoryManager_VirtualFree(mm, both, 0, MEM_RELEASE);

		_assert_int_equal((uint32_t)hr, (uint32_t)S_OK, file, line);
		conformance_settle();
		/* Something else may take the hole between the two calls: then try again. */
		if (IHostMemoryManager_VirtualAlloc(mm, both, size, MEM_RESERVE, protect,
						    eTaskCritical, &lo) != S_OK) {
			continue;
		}
		if (IHostMemoryManager_VirtualAlloc(mm, both + size, size, MEM_RESERVE, protect,
						    eTaskCritical, &hi) != S_OK) {
			IHostMemoryManager_VirtualFree(mm, lo, 0, MEM_RELEASE);
			continue;
		}
		_assert_true(lo == both && hi == both + size, "adjacent reservations", file, line);
		*a = lo;
		*b = hi;
		return;
	}
	print_error("could not place two adjacent reservations\n");
	_fail(file, line);
}

/* ---------- Fixture ---------- */

int manager_setup(void **state)
{
	IHostMemoryManager *mm = SENTINEL_PTR;

	assert_hr(S_OK, clrmemtrace_create(NULL, &mm));
	assert_non_null(mm);
	*state = mm;
	return 0;
}

int manager_teardown(void **state)
{
	IHostMemoryManager *mm = *state;

	/* A test that leaked a reference (a heap, a QueryInterface) leaves more than one. */
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
	return 0;
}

/* ---------- Effects ---------- */

#if !defined(_WIN32)
static sigjmp_buf call_env;
static volatile sig_atomic_t call_armed;

static void on_call_fault(int sig)
{
	(void)sig;
	if (call_armed) {
		call_armed = 0;
		siglongjmp(call_env, 1);
	}
}

#endif

bool can_probe_execution(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
	return true;
#else
	return false;
#endif
}

void write_return(void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	static const unsigned char ret[] = { 0xc3 };
#elif defined(__aarch64__)
	static const unsigned char ret[] = { 0xc0, 0x03, 0x5f, 0xd6 };
#else
	static const unsigned char ret[] = { 0 };
#endif

	memcpy(p, ret, sizeof(ret));
	__builtin___clear_cache((char *)p, (char *)p + sizeof(ret));
}

#if defined(_WIN32)
bool probe_callable(const void *p)
{
	return probe_call(p);
}
#else
bool probe_callable(const void *p)
{
	struct sigaction sa, old_segv, old_bus;
	volatile bool ok = false;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_call_fault;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
	if (sigsetjmp(call_env, 1) == 0) {
		void (*fn)(void);

		call_armed = 1;
		memcpy(&fn, &p, sizeof(fn));
		fn();
		call_armed = 0;
		ok = true;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGBUS, &old_bus, NULL);
	return ok;
}
#endif

void check_access_(void *p, DWORD protect, const char *file, int line)
{
	DWORD base = protect & 0xff;
	bool guard = (protect & PAGE_GUARD) != 0;
	bool readable = !guard && base != 0 && base != PAGE_NOACCESS;
	bool writable = !guard && (base == PAGE_READWRITE || base == PAGE_EXECUTE_READWRITE);
	bool ok = true;

#if defined(_WIN32)
	if (guard) {
		DWORD old;

		/*
		 * Windows raises STATUS_GUARD_PAGE_VIOLATION once and turns the
		 * guard off (#63): the read must fault, and the guard is then put
		 * back on the page the probe consumed it from, leaving the state
		 * the manager reported.
		 */
		if (probe_readable(p)) {
			print_error("%p: a read succeeds on a guard page\n", p);
			_fail(file, line);
		}
		VirtualProtect(p, 1, protect, &old);
		return;
	}
#endif
	if (probe_readable(p) != readable) {
		print_error("%p: a read %s, but the protection is %#" PRIx32 "\n", p,
			    readable ? "faults" : "succeeds", (uint32_t)protect);
		ok = false;
	}
	if (probe_writable(p) != writable) {
		print_error("%p: a write %s, but the protection is %#" PRIx32 "\n", p,
			    writable ? "faults" : "succeeds", (uint32_t)protect);
		ok = false;
	}
	if (ok && writable && can_probe_execution()) {
		bool executable = base == PAGE_EXECUTE_READWRITE;
		unsigned char saved[4];

		memcpy(saved, p, sizeof(saved));
		if (probe_executable_after_write(p) != executable) {
			print_error("%p: code %s, but the protection is %#" PRIx32 "\n", p,
				    executable ? "does not run" : "runs", (uint32_t)protect);
			ok = false;
		}
		memcpy(p, saved, sizeof(saved));
	}
	if (!ok) {
		_fail(file, line);
	}
}

/* ---------- The kernel's view ---------- */

#if defined(_WIN32)
/* Windows: the OS's VirtualQuery; a "mapping" is a run of pages it reports. */
bool vma_find(uintptr_t addr, struct vma_info *out)
{
	MEMORY_BASIC_INFORMATION m;

	if (VirtualQuery((void *)addr, &m, sizeof(m)) != sizeof(m) || m.State == MEM_FREE) {
		return false;
	}
	memset(out, 0, sizeof(*out));
	out->start = (uintptr_t)m.BaseAddress;
	out->end = out->start + m.RegionSize;
	if (!maps_prot_of((void *)addr, out->perms)) {
		return false;
	}
	return true;
}

/*
 * For a free address, the end of its free run as the OS reports it (Wine
 * also ends free runs at its own internal reservations); for a mapped one,
 * the start of the next mapped run above it.
 */
uintptr_t vma_next_start(uintptr_t addr)
{
	MEMORY_BASIC_INFORMATION m;
	uintptr_t at;

	if (VirtualQuery((void *)addr, &m, sizeof(m)) != sizeof(m) || m.RegionSize == 0) {
		return USER_LIMIT;
	}
	at = (uintptr_t)m.BaseAddress + m.RegionSize;
	if (m.State != MEM_FREE) {
		while (at < USER_LIMIT && VirtualQuery((void *)at, &m, sizeof(m)) == sizeof(m) &&
		       m.State == MEM_FREE && m.RegionSize != 0) {
			at += m.RegionSize;
		}
	}
	return at < USER_LIMIT ? at : USER_LIMIT;
}
#else

static bool parse_line(const char *line, struct vma_info *v)
{
	unsigned long long off;
	char dev[32];
	int n = 0;

	memset(v, 0, sizeof(*v));
	if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %4s %llx %31s %llu %n", &v->start, &v->end,
		   v->perms, &off, dev, &v->inode, &n) < 6) {
		return false;
	}
	if (n > 0) {
		size_t len;

		snprintf(v->path, sizeof(v->path), "%s", line + n);
		len = strlen(v->path);
		while (len > 0 && (v->path[len - 1] == '\n' || v->path[len - 1] == ' ')) {
			v->path[--len] = '\0';
		}
	}
	return true;
}

bool vma_find(uintptr_t addr, struct vma_info *out)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	bool found = false;

	if (!f) {
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		struct vma_info v;

		if (parse_line(line, &v) && addr >= v.start && addr < v.end) {
			*out = v;
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

uintptr_t vma_next_start(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	uintptr_t next = USER_LIMIT;

	if (!f) {
		return next;
	}
	while (fgets(line, sizeof(line), f)) {
		struct vma_info v;

		if (parse_line(line, &v) && v.start > addr) {
			next = v.start < next ? v.start : next;
			break;
		}
	}
	fclose(f);
	return next;
}
#endif
