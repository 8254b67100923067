/* SPDX-License-Identifier: MIT */
/*
 * The host tests/python/test_policy_trace.py runs under an LTTng session:
 * it makes the library take policy decisions and logs, one JSON object a
 * line on stdout, every call it made and what came back, so the test can
 * hold the trace against it.
 *
 * - "budget": a manager whose commit and address-space budgets refuse
 *   VirtualAlloc, NeedsVirtualAddressSpace and heap allocations.
 * - "notify": a manager whose commit budget crosses the notification
 *   thresholds, Low and back to High.
 * - "wrap": a decorator over an untraced manager of the library's own,
 *   which governs (its budget refuses, its monitor notifies through the
 *   decorator's relay).
 *
 * Public API only. Exits 0 unless the library did something this host did
 * not expect (the log's last line then says what). Which notifications come
 * is the test's to judge: memory stalls elsewhere on the machine bring Low
 * too, so each scenario logs how long the system stalled meanwhile.
 */
#include <clrmemtrace.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KiB ((SIZE_T)1024)
#define MiB (1024 * KiB)
#define UNIT ((SIZE_T)0x10000)
#define WAIT_MS 5000

static int failures;

static void check(bool ok, const char *what)
{
	if (!ok) {
		printf("{\"call\": \"failure\", \"what\": \"%s\"}\n", what);
		failures++;
	}
}

/* One line of the log. */
static void record(const char *mgr, const char *step, const char *call, HRESULT hr,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void record(const char *mgr, const char *step, const char *call, HRESULT hr,
		   const char *fmt, ...)
{
	va_list ap;

	printf("{\"manager\": \"%s\", \"step\": \"%s\", \"call\": \"%s\", \"hr\": %" PRId32, mgr,
	       step, call, (int32_t)hr);
	if (fmt) {
		printf(", ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
	}
	printf("}\n");
	fflush(stdout);
}

/* Microseconds some task of the system stalled on memory (PSI); 0 without PSI. */
static unsigned long long memory_stall_us(void)
{
	FILE *f = fopen("/proc/pressure/memory", "r");
	unsigned long long total = 0;
	char line[256];

	if (!f) {
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		char *t = strstr(line, "total=");

		if (strncmp(line, "some", 4) == 0 && t) {
			total = strtoull(t + 6, NULL, 10);
		}
	}
	fclose(f);
	return total;
}

static void log_stall(const char *mgr, unsigned long long since)
{
	printf("{\"manager\": \"%s\", \"call\": \"stall\", \"us\": %llu}\n", mgr,
	       memory_stall_us() - since);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* ---------- A callback that remembers the levels it was told ---------- */

struct callback {
	ICLRMemoryNotificationCallback iface;
	uint32_t refs;
	int levels[16];
	unsigned count; /* atomic */
};

static struct callback *cb_of(ICLRMemoryNotificationCallback *iface)
{
	return (struct callback *)((char *)iface - offsetof(struct callback, iface));
}

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *iface,
						   REFIID riid, void **ppv)
{
	(void)riid;
	(void)iface;
	if (ppv) {
		*ppv = NULL;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *iface)
{
	return __atomic_add_fetch(&cb_of(iface)->refs, 1, __ATOMIC_ACQ_REL);
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *iface)
{
	return __atomic_sub_fetch(&cb_of(iface)->refs, 1, __ATOMIC_ACQ_REL);
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *iface,
							 EMemoryAvailable level)
{
	struct callback *cb = cb_of(iface);
	unsigned n = __atomic_load_n(&cb->count, __ATOMIC_ACQUIRE);

	if (n < 16) {
		cb->levels[n] = (int)level;
	}
	__atomic_store_n(&cb->count, n + 1, __ATOMIC_RELEASE);
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_QueryInterface,
	cb_AddRef,
	cb_Release,
	cb_OnMemoryNotification,
};

/* Waits for delivery number `n` (from 1) and logs it; its level, or 0 if none came. */
static int wait_notification(const char *mgr, const char *step, struct callback *cb, unsigned n)
{
	unsigned waited = 0;
	int level;

	while (__atomic_load_n(&cb->count, __ATOMIC_ACQUIRE) < n && waited < WAIT_MS) {
		sleep_ms(5);
		waited += 5;
	}
	if (__atomic_load_n(&cb->count, __ATOMIC_ACQUIRE) < n) {
		return 0;
	}
	level = cb->levels[n - 1];
	record(mgr, step, "OnMemoryNotification", S_OK, "\"callback\": %" PRIuPTR ", \"level\": %d",
	       (uintptr_t)&cb->iface, level);
	return level;
}

/* ---------- Calls, logged ---------- */

static void *vm_alloc(const char *mgr, const char *step, IHostMemoryManager *mm, void *addr,
		      SIZE_T size, DWORD type, DWORD protect, EMemoryCriticalLevel level,
		      HRESULT want)
{
	void *p = NULL;
	HRESULT hr = IHostMemoryManager_VirtualAlloc(mm, addr, size, type, protect, level, &p);

	record(mgr, step, "VirtualAlloc", hr,
	       "\"address\": %" PRIuPTR ", \"size\": %zu, \"type\": %u, \"protect\": %u, "
	       "\"level\": %d, \"result\": %" PRIuPTR,
	       (uintptr_t)addr, (size_t)size, (unsigned)type, (unsigned)protect, (int)level,
	       (uintptr_t)p);
	check(hr == want, step);
	return p;
}

static void vfree(const char *mgr, const char *step, IHostMemoryManager *mm, void *addr,
		  SIZE_T size, DWORD type)
{
	HRESULT hr = IHostMemoryManager_VirtualFree(mm, addr, size, type);

	record(mgr, step, "VirtualFree", hr,
	       "\"address\": %" PRIuPTR ", \"size\": %zu, \"type\": %u", (uintptr_t)addr,
	       (size_t)size, (unsigned)type);
	check(hr == S_OK, step);
}

static void vas(const char *mgr, const char *step, IHostMemoryManager *mm, int which, void *addr,
		SIZE_T size, HRESULT want)
{
	static const char *const calls[] = { "NeedsVirtualAddressSpace",
					     "AcquiredVirtualAddressSpace",
					     "ReleasedVirtualAddressSpace" };
	HRESULT hr = which == 0 ? IHostMemoryManager_NeedsVirtualAddressSpace(mm, addr, size)
		   : which == 1 ? IHostMemoryManager_AcquiredVirtualAddressSpace(mm, addr, size)
				: IHostMemoryManager_ReleasedVirtualAddressSpace(mm, addr);

	record(mgr, step, calls[which], hr, "\"address\": %" PRIuPTR ", \"size\": %zu",
	       (uintptr_t)addr, (size_t)size);
	check(hr == want, step);
}

static void *halloc(const char *mgr, const char *step, IHostMalloc *heap, SIZE_T size,
		    EMemoryCriticalLevel level, char *file, int line, HRESULT want)
{
	void *p = NULL;
	HRESULT hr = file ? IHostMalloc_DebugAlloc(heap, size, level, file, line, &p)
			  : IHostMalloc_Alloc(heap, size, level, &p);

	record(mgr, step, file ? "DebugAlloc" : "Alloc", hr,
	       "\"heap\": %" PRIuPTR ", \"size\": %zu, \"level\": %d, \"file\": \"%s\", "
	       "\"line\": %d, \"ptr\": %" PRIuPTR,
	       (uintptr_t)heap, (size_t)size, (int)level, file ? file : "", line, (uintptr_t)p);
	check(hr == want, step);
	return p;
}

static void hfree(const char *mgr, const char *step, IHostMalloc *heap, void *p)
{
	HRESULT hr = IHostMalloc_Free(heap, p);

	record(mgr, step, "Free", hr, "\"heap\": %" PRIuPTR ", \"ptr\": %" PRIuPTR,
	       (uintptr_t)heap, (uintptr_t)p);
	check(hr == S_OK, step);
}

static IHostMemoryManager *create(const char *mgr, const clrmemtrace_options *o)
{
	IHostMemoryManager *mm = NULL;
	HRESULT hr = clrmemtrace_create(o, &mm);

	record(mgr, "create", "clrmemtrace_create", hr,
	       "\"object\": %" PRIuPTR ", \"name\": \"%s\"", (uintptr_t)mm,
	       o->name ? o->name : "");
	if (hr != S_OK) {
		printf("{\"call\": \"failure\", \"what\": \"clrmemtrace_create\"}\n");
		exit(1);
	}
	return mm;
}

static clrmemtrace_options options(const char *name)
{
	clrmemtrace_options o;

	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.name = name;
	return o;
}

/* The system's load as the library sees it: the notify scenarios need it low. */
static DWORD system_load(void)
{
	clrmemtrace_options o = options("policy-probe");
	IHostMemoryManager *mm = NULL;
	DWORD load = 100;
	SIZE_T avail;

	o.flags = CLRMEMTRACE_FLAG_NO_TRACE;
	if (clrmemtrace_create(&o, &mm) == S_OK) {
		IHostMemoryManager_GetMemoryLoad(mm, &load, &avail);
		IHostMemoryManager_Release(mm);
	}
	return load;
}

/* ---------- Scenarios ---------- */

static void budget(void)
{
	static char file[] = "policy-trace-host.c";
	clrmemtrace_options o = options("policy-budget");
	IHostMemoryManager *mm;
	IHostMalloc *heap = NULL;
	char *r;
	void *p, *q;
	HRESULT hr;

	o.commit_budget = 1 * MiB;
	o.address_space_budget = 2 * MiB;
	mm = create("budget", &o);
	r = vm_alloc("budget", "reserve", mm, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE,
		     eTaskCritical, S_OK);
	vm_alloc("budget", "commit", mm, r, 1 * MiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		 S_OK);
	vm_alloc("budget", "commit-refused", mm, r + 1 * MiB, UNIT, MEM_COMMIT, PAGE_READWRITE,
		 eProcessCritical, E_OUTOFMEMORY);
	vm_alloc("budget", "reserve-refused", mm, NULL, UNIT, MEM_RESERVE, PAGE_READWRITE,
		 eTaskCritical, E_OUTOFMEMORY);
	vas("budget", "needs-refused", mm, 0, NULL, UNIT, E_OUTOFMEMORY);
	hr = IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap);
	record("budget", "heap", "CreateMalloc", hr, "\"heap\": %" PRIuPTR, (uintptr_t)heap);
	if (hr != S_OK) {
		check(false, "CreateMalloc");
		return;
	}
	halloc("budget", "alloc-refused", heap, 16, eTaskCritical, NULL, 0, E_OUTOFMEMORY);
	halloc("budget", "debugalloc-refused", heap, 100000, eAppDomainCritical, file, 4242,
	       E_OUTOFMEMORY);
	vfree("budget", "release", mm, r, 0, MEM_RELEASE);
	vas("budget", "needs", mm, 0, NULL, UNIT, S_OK);
	p = halloc("budget", "alloc", heap, 16, eTaskCritical, NULL, 0, S_OK);
	q = halloc("budget", "debugalloc", heap, 100000, eTaskCritical, file, 4243, S_OK);
	hfree("budget", "free", heap, p);
	hfree("budget", "free", heap, q);
	IHostMalloc_Release(heap);
	IHostMemoryManager_Release(mm);
}

static void notify(bool quiet)
{
	unsigned long long stall = memory_stall_us();
	static struct callback cb = { .iface = { &cb_vtbl }, .refs = 1 };
	clrmemtrace_options o = options("policy-notify");
	IHostMemoryManager *mm;
	HRESULT hr;
	char *r;

	o.commit_budget = 100 * UNIT;
	o.low_memory_percent = 80;
	o.high_memory_percent = 40;
	o.hysteresis_percent = 5;
	o.poll_interval_ms = 600000;
	mm = create("notify", &o);
	r = vm_alloc("notify", "reserve", mm, NULL, 100 * UNIT, MEM_RESERVE, PAGE_READWRITE,
		     eTaskCritical, S_OK);
	hr = IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface);
	record("notify", "register", "RegisterMemoryNotificationCallback", hr,
	       "\"callback\": %" PRIuPTR, (uintptr_t)&cb.iface);
	vm_alloc("notify", "commit", mm, r, 85 * UNIT, MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		 S_OK);
	wait_notification("notify", "low", &cb, 1);
	vfree("notify", "decommit", mm, r, 85 * UNIT, MEM_DECOMMIT);
	if (quiet) {
		wait_notification("notify", "high", &cb, 2);
	}
	vfree("notify", "release", mm, r, 0, MEM_RELEASE);
	IHostMemoryManager_Release(mm);
	log_stall("notify", stall);
}

static void wrap(bool quiet)
{
	unsigned long long stall = memory_stall_us();
	static struct callback cb = { .iface = { &cb_vtbl }, .refs = 1 };
	static char file[] = "policy.c";
	clrmemtrace_options io = options("policy-inner"), o = options("policy-wrap");
	IHostMemoryManager *inner = NULL, *mm = NULL;
	IHostMalloc *heap = NULL;
	MEMORY_BASIC_INFORMATION mbi;
	void *p, *q, *v = (void *)(uintptr_t)0x7e0000000000ull;
	SIZE_T got = 0, avail = 0;
	DWORD old = 0, load = 0;
	HRESULT hr;
	char *r;

	/* The inner manager governs, untraced: its budget and monitor, not the decorator's. */
	io.flags = CLRMEMTRACE_FLAG_NO_TRACE;
	io.commit_budget = 100 * UNIT;
	io.low_memory_percent = 80;
	io.high_memory_percent = 40;
	io.hysteresis_percent = 5;
	io.poll_interval_ms = 600000;
	inner = create("inner", &io);
	o.commit_budget = UNIT; /* not applied: a decorator forwards */
	hr = clrmemtrace_wrap(inner, &o, &mm);
	record("wrap", "create", "clrmemtrace_wrap", hr, "\"object\": %" PRIuPTR, (uintptr_t)mm);
	if (hr != S_OK) {
		check(false, "clrmemtrace_wrap");
		IHostMemoryManager_Release(inner);
		return;
	}
	hr = IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface);
	record("wrap", "register", "RegisterMemoryNotificationCallback", hr,
	       "\"callback\": %" PRIuPTR, (uintptr_t)&cb.iface);
	r = vm_alloc("wrap", "reserve", mm, NULL, 120 * UNIT, MEM_RESERVE, PAGE_READWRITE,
		     eTaskCritical, S_OK);
	vm_alloc("wrap", "commit", mm, r, 85 * UNIT, MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		 S_OK);
	wait_notification("wrap", "low", &cb, 1);
	/* The inner manager's budget refuses; the decorator has no reason of its own to give. */
	vm_alloc("wrap", "commit-refused", mm, r + 85 * UNIT, 20 * UNIT, MEM_COMMIT, PAGE_READWRITE,
		 eTaskCritical, E_OUTOFMEMORY);
	hr = IHostMemoryManager_VirtualQuery(mm, r, &mbi, sizeof(mbi), &got);
	record("wrap", "query", "VirtualQuery", hr,
	       "\"address\": %" PRIuPTR ", \"result\": %zu, \"state\": %u, \"region_size\": %zu",
	       (uintptr_t)r, (size_t)got, (unsigned)mbi.State, (size_t)mbi.RegionSize);
	check(hr == S_OK, "query");
	hr = IHostMemoryManager_VirtualProtect(mm, r, UNIT, PAGE_READONLY, &old);
	record("wrap", "protect", "VirtualProtect", hr,
	       "\"address\": %" PRIuPTR ", \"size\": %zu, \"protect\": %u, \"old_protect\": %u",
	       (uintptr_t)r, (size_t)UNIT, (unsigned)PAGE_READONLY, (unsigned)old);
	check(hr == S_OK, "protect");
	hr = IHostMemoryManager_GetMemoryLoad(mm, &load, &avail);
	record("wrap", "load", "GetMemoryLoad", hr, "\"load\": %u, \"available\": %zu",
	       (unsigned)load, (size_t)avail);
	check(hr == S_OK && load == 85, "load");
	vas("wrap", "needs", mm, 0, v, UNIT, S_OK);
	vas("wrap", "acquired", mm, 1, v, UNIT, S_OK);
	vas("wrap", "released", mm, 2, v, 0, S_OK);
	hr = IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap);
	record("wrap", "heap", "CreateMalloc", hr, "\"heap\": %" PRIuPTR, (uintptr_t)heap);
	if (hr == S_OK) {
		p = halloc("wrap", "alloc", heap, 100, eTaskCritical, NULL, 0, S_OK);
		q = halloc("wrap", "debugalloc", heap, 200, eProcessCritical, file, 7, S_OK);
		hfree("wrap", "free", heap, p);
		hfree("wrap", "free", heap, q);
		IHostMalloc_Release(heap);
	} else {
		check(false, "CreateMalloc");
	}
	vfree("wrap", "decommit", mm, r, 85 * UNIT, MEM_DECOMMIT);
	if (quiet) {
		wait_notification("wrap", "high", &cb, 2);
	}
	vfree("wrap", "release", mm, r, 0, MEM_RELEASE);
	IHostMemoryManager_Release(mm);
	IHostMemoryManager_Release(inner);
	log_stall("wrap", stall);
}

int main(void)
{
	/* High needs the system's own load under the High threshold (40 %). */
	bool quiet = system_load() < 30;

	printf("{\"call\": \"start\", \"quiet\": %s}\n", quiet ? "true" : "false");
	budget();
	notify(quiet);
	wrap(quiet);
	printf("{\"call\": \"end\", \"failures\": %d}\n", failures);
	return failures ? 1 : 0;
}
