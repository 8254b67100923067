/* SPDX-License-Identifier: MIT */
/*
 * A scripted host for the trace tests (tests/python/test_trace_events.py).
 * Through the public API only, it calls every method of every interface in
 * a fixed order, failing calls included, and writes a log of what it called
 * and what it got back: one JSON object per line, so the tests can compare
 * the trace with what really happened, event by event.
 *
 * Usage: trace-host [--log FILE] [--mode script|statedump] [--no-trace-flag]
 *                   [--control] [--statedump yes|no|any]
 *
 *   --log FILE       where the log goes (default: standard output)
 *   --mode script    the whole scripted sequence, then exit (default)
 *   --mode statedump allocate state, print "ready" on standard output, then
 *                    obey commands read from standard input, one a line:
 *                    "step" (a call, a walk of every region held, a few
 *                    changes, another walk; answers "done") and "exit"
 *   --no-trace-flag  the script's managers that take options have
 *                    CLRMEMTRACE_FLAG_NO_TRACE
 *   --control        after the script, another, traced manager makes one
 *                    reservation and releases it (so a test that expects
 *                    no events of the script can tell tracing was on)
 *   --statedump yes  a session records the state-dump events, so the
 *                    script's clrmemtrace_statedump() must return S_OK;
 *                    "no" (the default): S_FALSE; "any": either
 *
 * In state-dump mode the host first asks for a dump itself: if a session
 * already records the state-dump events (another program's, on the same
 * session daemon), a session started later gets no dump of its own, and the
 * host says "ready busy" instead of "ready".
 *
 * Log records: {"n", "call", "this", "args": {...}, "out": {...}, "hr",
 * "expect"}, plus "changes" (1 when the call changed the manager's
 * reservations, so its sequence number moved) on VirtualAlloc, VirtualFree
 * and VirtualProtect, and "refusal" ("commit" or "address-space") on calls
 * the host policy must refuse. "OnMemoryNotification" records what the
 * host's callbacks received (level, thread, what they answered), logged by
 * the main thread after the fact. Pointers and sizes are unsigned decimal
 * integers, HRESULTs signed. Markers: "start" (pid, tid, procname, and
 * LTTNG_UST_REGISTER_TIMEOUT as the program sees it), "walk_begin" and
 * "walk_end" around the queries of every region a manager holds, "step",
 * "maps" (which tracing objects the process has loaded) and "end"
 * (failures: results that differed from the script's expectations).
 *
 * Exit status: 0 when every call returned what the script expects, 1
 * otherwise, 2 for a bad command line.
 */
#include <clrmemtrace.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KiB ((SIZE_T)1 << 10)
#define MiB ((SIZE_T)1 << 20)

static FILE *log_file;
static unsigned long record_count;
static int failures;

/* Set for the next call the host policy must refuse: "commit" or "address-space". */
static const char *refusal;

/* ---------- The JSON log ---------- */

/* One log line, built member by member. */
struct rec {
	char buf[4096];
	size_t len;
	bool first; /* no member yet in the innermost open object */
};

static void put(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len >= sizeof(r->buf)) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, sizeof(r->buf) - r->len, fmt, ap);
	va_end(ap);
	if (n > 0) {
		r->len += (size_t)n;
	}
}

static void key(struct rec *r, const char *k)
{
	put(r, "%s\"%s\": ", r->first ? "" : ", ", k);
	r->first = false;
}

static void kv_u(struct rec *r, const char *k, uint64_t v)
{
	key(r, k);
	put(r, "%" PRIu64, v);
}

static void kv_i(struct rec *r, const char *k, int64_t v)
{
	key(r, k);
	put(r, "%" PRId64, v);
}

static void kv_p(struct rec *r, const char *k, const void *p)
{
	kv_u(r, k, (uintptr_t)p);
}

/* A string, or null for NULL. */
static void kv_s(struct rec *r, const char *k, const char *s)
{
	key(r, k);
	if (!s) {
		put(r, "null");
		return;
	}
	put(r, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			put(r, "\\%c", c);
		} else if (c < 0x20) {
			put(r, "\\u%04x", c);
		} else {
			put(r, "%c", c);
		}
	}
	put(r, "\"");
}

static void obj_open(struct rec *r, const char *k)
{
	key(r, k);
	put(r, "{");
	r->first = true;
}

static void obj_close(struct rec *r)
{
	put(r, "}");
	r->first = false;
}

/* Starts a record of a call on object `self`; the "args" object is open. */
static void rec_begin(struct rec *r, const char *call, const void *self)
{
	r->len = 0;
	r->first = true;
	put(r, "{");
	kv_u(r, "n", ++record_count);
	kv_s(r, "call", call);
	kv_p(r, "this", self);
	obj_open(r, "args");
}

/* Closes "args" and opens "out". */
static void rec_out(struct rec *r)
{
	obj_close(r);
	obj_open(r, "out");
}

static void rec_write(struct rec *r)
{
	put(r, "}\n");
	if (r->len >= sizeof(r->buf)) {
		fprintf(stderr, "trace-host: log record too long\n");
		exit(1);
	}
	fputs(r->buf, log_file);
	fflush(log_file);
}

/*
 * Closes "out", adds `changes` (unless negative), the HRESULT and what the
 * script expected, and writes the line.
 */
static void rec_finish(struct rec *r, const char *call, HRESULT hr, HRESULT expect, int changes)
{
	obj_close(r);
	if (changes >= 0) {
		kv_u(r, "changes", (uint64_t)changes);
	}
	if (refusal) {
		kv_s(r, "refusal", refusal);
		refusal = NULL;
	}
	kv_i(r, "hr", hr);
	kv_i(r, "expect", expect);
	rec_write(r);
	if (hr != expect) {
		fprintf(stderr, "trace-host: #%lu %s returned %s, expected %s\n", record_count,
			call, clrmemtrace_hresult_name(hr), clrmemtrace_hresult_name(expect));
		failures++;
	}
}

static void rec_end(struct rec *r, const char *call, HRESULT hr, HRESULT expect)
{
	rec_finish(r, call, hr, expect, -1);
}

/* A record with no arguments or results of its own. */
static void marker(const char *call, const void *self)
{
	struct rec r;

	rec_begin(&r, call, self);
	obj_close(&r);
	rec_write(&r);
}

/* ---------- Reservations the host holds, per manager ---------- */

#define MAX_HELD 32

struct held {
	IHostMemoryManager *mm;
	uintptr_t base, end;
};

static struct held held[MAX_HELD];

/* A reservation made at `base`, asked for as `size` bytes from `address`. */
static void hold(IHostMemoryManager *mm, void *base, void *address, size_t size)
{
	const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = address ? (uintptr_t)address : (uintptr_t)base;
	int i;

	for (i = 0; i < MAX_HELD; i++) {
		if (!held[i].mm) {
			held[i].mm = mm;
			held[i].base = (uintptr_t)base;
			held[i].end = (from + size + page - 1) & ~(page - 1);
			return;
		}
	}
	fprintf(stderr, "trace-host: too many reservations\n");
	exit(1);
}

static void unhold(IHostMemoryManager *mm, void *base)
{
	int i;

	for (i = 0; i < MAX_HELD; i++) {
		if (held[i].mm == mm && held[i].base == (uintptr_t)base) {
			held[i].mm = NULL;
		}
	}
}

/* ---------- IHostMemoryManager ---------- */

/* clrmemtrace_create with `opts` (NULL for none), logging the options passed. */
static HRESULT create_with(const clrmemtrace_options *opts, HRESULT expect,
			   IHostMemoryManager **out)
{
	struct rec r;
	HRESULT hr;

	*out = NULL;
	hr = clrmemtrace_create(opts, out);
	rec_begin(&r, "clrmemtrace_create", NULL);
	kv_u(&r, "options", opts != NULL);
	kv_u(&r, "flags", opts ? opts->flags : 0);
	kv_s(&r, "name", opts ? opts->name : NULL);
	if (opts) {
		kv_u(&r, "commit_budget", opts->commit_budget);
		kv_u(&r, "address_space_budget", opts->address_space_budget);
		kv_u(&r, "emergency_reserve", opts->emergency_reserve);
		kv_u(&r, "low_memory_percent", opts->low_memory_percent);
		kv_u(&r, "high_memory_percent", opts->high_memory_percent);
		kv_u(&r, "hysteresis_percent", opts->hysteresis_percent);
	}
	rec_out(&r);
	kv_p(&r, "manager", *out);
	rec_end(&r, "clrmemtrace_create", hr, expect);
	return hr;
}

static HRESULT create(const char *name, uint32_t flags, bool with_options, HRESULT expect,
		      IHostMemoryManager **out)
{
	clrmemtrace_options opts = { .size = sizeof(opts), .flags = flags, .name = name };

	return create_with(with_options ? &opts : NULL, expect, out);
}

static void mm_query_interface(IHostMemoryManager *mm, const IID *iid, const char *iid_name,
			       HRESULT expect)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_QueryInterface(mm, iid, &p);
	rec_begin(&r, "QueryInterface", mm);
	kv_s(&r, "riid", iid_name);
	rec_out(&r);
	kv_p(&r, "ppv", p);
	rec_end(&r, "QueryInterface", hr, expect);
	if (hr == S_OK) {
		if (p != mm) {
			fprintf(stderr, "trace-host: QueryInterface returned another pointer\n");
			failures++;
		}
		IHostMemoryManager_Release(mm);
	}
}

/* AddRef or Release (of either interface): logs the count returned. */
static void refcount(const char *call, const void *self, ULONG refs, ULONG expect)
{
	struct rec r;

	rec_begin(&r, call, self);
	rec_out(&r);
	kv_u(&r, "refs", refs);
	obj_close(&r);
	kv_u(&r, "expect_refs", expect);
	rec_write(&r);
	if (refs != expect) {
		fprintf(stderr, "trace-host: #%lu %s returned %lu, expected %lu\n", record_count,
			call, (unsigned long)refs, (unsigned long)expect);
		failures++;
	}
}

static void mm_addref(IHostMemoryManager *mm, ULONG expect)
{
	refcount("AddRef", mm, IHostMemoryManager_AddRef(mm), expect);
}

static void mm_release(IHostMemoryManager *mm, ULONG expect)
{
	ULONG refs = IHostMemoryManager_Release(mm);

	refcount("Release", mm, refs, expect);
	if (refs == 0) {
		int i;

		for (i = 0; i < MAX_HELD; i++) {
			if (held[i].mm == mm) {
				held[i].mm = NULL;
			}
		}
	}
}

/*
 * VirtualAlloc. `changes`: whether a successful call changes the manager's
 * reservations (MEM_RESET does not). `no_out` passes NULL for ppMem.
 */
static void *vm_alloc(IHostMemoryManager *mm, void *address, SIZE_T size, DWORD type, DWORD protect,
		      int level, bool no_out, int changes, HRESULT expect)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_VirtualAlloc(mm, address, size, type, protect,
					     (EMemoryCriticalLevel)level, no_out ? NULL : &p);
	if (no_out) {
		p = NULL;
	}
	rec_begin(&r, "VirtualAlloc", mm);
	kv_p(&r, "pAddress", address);
	kv_u(&r, "dwSize", size);
	kv_u(&r, "flAllocationType", type);
	kv_u(&r, "flProtect", protect);
	kv_i(&r, "eCriticalLevel", level);
	kv_u(&r, "null_ppMem", no_out);
	rec_out(&r);
	kv_p(&r, "ppMem", p);
	rec_finish(&r, "VirtualAlloc", hr, expect, hr == S_OK ? changes : 0);
	if (hr == S_OK && (type & MEM_RESERVE)) {
		hold(mm, p, address, size);
	}
	return hr == S_OK ? p : NULL;
}

static void vm_free(IHostMemoryManager *mm, void *address, SIZE_T size, DWORD type, int changes,
		    HRESULT expect)
{
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_VirtualFree(mm, address, size, type);
	rec_begin(&r, "VirtualFree", mm);
	kv_p(&r, "lpAddress", address);
	kv_u(&r, "dwSize", size);
	kv_u(&r, "dwFreeType", type);
	rec_out(&r);
	rec_finish(&r, "VirtualFree", hr, expect, hr == S_OK ? changes : 0);
	if (hr == S_OK && type == MEM_RELEASE) {
		unhold(mm, address);
	}
}

static void vm_protect(IHostMemoryManager *mm, void *address, SIZE_T size, DWORD protect,
		       bool no_out, HRESULT expect)
{
	DWORD old = 0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_VirtualProtect(mm, address, size, protect, no_out ? NULL : &old);
	rec_begin(&r, "VirtualProtect", mm);
	kv_p(&r, "lpAddress", address);
	kv_u(&r, "dwSize", size);
	kv_u(&r, "flNewProtect", protect);
	kv_u(&r, "null_pflOldProtect", no_out);
	rec_out(&r);
	kv_u(&r, "pflOldProtect", no_out ? 0 : old);
	rec_finish(&r, "VirtualProtect", hr, expect, hr == S_OK && size ? 1 : 0);
}

/*
 * VirtualQuery into a buffer prefilled with 0xcc. `buffer` false passes a
 * NULL lpBuffer, `no_result` a NULL pResult. Returns the answer (zeros when
 * the call failed).
 */
static MEMORY_BASIC_INFORMATION vm_query(IHostMemoryManager *mm, const void *address, SIZE_T length,
					 bool buffer, bool no_result, HRESULT expect)
{
	MEMORY_BASIC_INFORMATION mbi;
	SIZE_T result = 0xdeadbeef;
	struct rec r;
	HRESULT hr;

	memset(&mbi, 0xcc, sizeof(mbi));
	hr = IHostMemoryManager_VirtualQuery(mm, (void *)address, buffer ? &mbi : NULL, length,
					     no_result ? NULL : &result);
	rec_begin(&r, "VirtualQuery", mm);
	kv_p(&r, "lpAddress", address);
	kv_u(&r, "dwLength", length);
	kv_u(&r, "null_lpBuffer", !buffer);
	kv_u(&r, "null_pResult", no_result);
	rec_out(&r);
	kv_u(&r, "pResult", no_result ? 0 : result);
	if (hr == S_OK) {
		kv_p(&r, "BaseAddress", mbi.BaseAddress);
		kv_p(&r, "AllocationBase", mbi.AllocationBase);
		kv_u(&r, "AllocationProtect", mbi.AllocationProtect);
		kv_u(&r, "RegionSize", mbi.RegionSize);
		kv_u(&r, "State", mbi.State);
		kv_u(&r, "Protect", mbi.Protect);
		kv_u(&r, "Type", mbi.Type);
	} else {
		memset(&mbi, 0, sizeof(mbi));
	}
	rec_end(&r, "VirtualQuery", hr, expect);
	return mbi;
}

/* Queries every run of every reservation `mm` holds, bracketed by walk markers. */
static void walk(IHostMemoryManager *mm)
{
	int i;

	marker("walk_begin", mm);
	for (i = 0; i < MAX_HELD; i++) {
		uintptr_t p;

		if (held[i].mm != mm) {
			continue;
		}
		for (p = held[i].base; p < held[i].end;) {
			MEMORY_BASIC_INFORMATION mbi = vm_query(mm, (void *)p, sizeof(mbi), true,
								false, S_OK);

			if ((uintptr_t)mbi.AllocationBase != held[i].base || mbi.RegionSize == 0) {
				break;
			}
			p += mbi.RegionSize;
		}
	}
	marker("walk_end", mm);
}

static void memory_load(IHostMemoryManager *mm, bool null_load, HRESULT expect)
{
	SIZE_T avail = 0xdeadbeef;
	DWORD load = 0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_GetMemoryLoad(mm, null_load ? NULL : &load, &avail);
	rec_begin(&r, "GetMemoryLoad", mm);
	kv_u(&r, "null_pMemoryLoad", null_load);
	rec_out(&r);
	kv_u(&r, "pMemoryLoad", null_load ? 0 : load);
	kv_u(&r, "pAvailableBytes", avail);
	rec_end(&r, "GetMemoryLoad", hr, expect);
}

/*
 * The host's ICLRMemoryNotificationCallback, as a runtime implements it. It
 * answers `answer`, and records every notification (they come from the
 * library's monitor thread) for the main thread to log.
 */
struct callback {
	ICLRMemoryNotificationCallback iface;
	ULONG refs;
	HRESULT answer;
};

struct notification {
	const void *callback;
	int level;
	uint64_t tid;
	HRESULT answer;
};

#define MAX_NOTIFICATIONS 256

static pthread_mutex_t notes_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notes_cond = PTHREAD_COND_INITIALIZER;
static struct notification notes[MAX_NOTIFICATIONS];
static int notes_count, notes_logged;

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *This,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	if (memcmp(riid, &IID_IUnknown, sizeof(IID)) == 0 ||
	    memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof(IID)) == 0) {
		*ppv = This;
		This->lpVtbl->AddRef(This);
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *This)
{
	return __atomic_add_fetch(&((struct callback *)This)->refs, 1, __ATOMIC_RELAXED);
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *This)
{
	return __atomic_sub_fetch(&((struct callback *)This)->refs, 1, __ATOMIC_RELAXED);
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *This,
							 EMemoryAvailable level)
{
	HRESULT answer = ((struct callback *)This)->answer;

	pthread_mutex_lock(&notes_lock);
	if (notes_count < MAX_NOTIFICATIONS) {
		notes[notes_count].callback = This;
		notes[notes_count].level = (int)level;
		notes[notes_count].tid = (uint64_t)syscall(SYS_gettid);
		notes[notes_count].answer = answer;
		notes_count++;
	}
	pthread_cond_broadcast(&notes_cond);
	pthread_mutex_unlock(&notes_lock);
	return answer;
}

/* Logs the notifications received since the last call, in the order they came. */
static void log_notifications(void)
{
	pthread_mutex_lock(&notes_lock);
	for (; notes_logged < notes_count; notes_logged++) {
		const struct notification *n = &notes[notes_logged];
		struct rec r;

		rec_begin(&r, "OnMemoryNotification", n->callback);
		kv_i(&r, "eMemoryAvailable", n->level);
		obj_close(&r);
		kv_u(&r, "tid", n->tid);
		kv_i(&r, "returned", n->answer);
		rec_write(&r);
	}
	pthread_mutex_unlock(&notes_lock);
}

/*
 * Waits up to `ms` for a notification of `level` (0: any) from `cb` after
 * the first `after` ones; returns whether one came. Logs what came.
 */
static bool wait_notification(const struct callback *cb, int level, int after, int ms)
{
	struct timespec deadline;
	bool found = false;
	int i;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&notes_lock);
	for (;;) {
		for (i = after; i < notes_count && !found; i++) {
			found = notes[i].callback == &cb->iface &&
				(!level || notes[i].level == level);
		}
		if (found ||
		    pthread_cond_timedwait(&notes_cond, &notes_lock, &deadline) == ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&notes_lock);
	log_notifications();
	return found;
}

static int notifications_so_far(void)
{
	int n;

	pthread_mutex_lock(&notes_lock);
	n = notes_count;
	pthread_mutex_unlock(&notes_lock);
	return n;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_QueryInterface,
	cb_AddRef,
	cb_Release,
	cb_OnMemoryNotification,
};

static void register_callback(IHostMemoryManager *mm, struct callback *cb, HRESULT expect)
{
	ICLRMemoryNotificationCallback *iface = cb ? &cb->iface : NULL;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_RegisterMemoryNotificationCallback(mm, iface);
	rec_begin(&r, "RegisterMemoryNotificationCallback", mm);
	kv_p(&r, "pCallback", iface);
	rec_out(&r);
	rec_end(&r, "RegisterMemoryNotificationCallback", hr, expect);
}

/* NeedsVirtualAddressSpace and AcquiredVirtualAddressSpace. */
static void vas(IHostMemoryManager *mm, bool acquired, void *address, SIZE_T size, HRESULT expect)
{
	const char *call = acquired ? "AcquiredVirtualAddressSpace" : "NeedsVirtualAddressSpace";
	struct rec r;
	HRESULT hr;

	if (acquired) {
		hr = IHostMemoryManager_AcquiredVirtualAddressSpace(mm, address, size);
	} else {
		hr = IHostMemoryManager_NeedsVirtualAddressSpace(mm, address, size);
	}
	rec_begin(&r, call, mm);
	kv_p(&r, "startAddress", address);
	kv_u(&r, "size", size);
	rec_out(&r);
	rec_end(&r, call, hr, expect);
}

static void vas_released(IHostMemoryManager *mm, void *address, HRESULT expect)
{
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_ReleasedVirtualAddressSpace(mm, address);
	rec_begin(&r, "ReleasedVirtualAddressSpace", mm);
	kv_p(&r, "startAddress", address);
	rec_out(&r);
	rec_end(&r, "ReleasedVirtualAddressSpace", hr, expect);
}

/* ---------- IHostMalloc ---------- */

static IHostMalloc *create_malloc(IHostMemoryManager *mm, DWORD type, bool no_out, HRESULT expect)
{
	IHostMalloc *heap = (IHostMalloc *)(uintptr_t)0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMemoryManager_CreateMalloc(mm, type, no_out ? NULL : &heap);
	if (no_out) {
		heap = NULL;
	}
	rec_begin(&r, "CreateMalloc", mm);
	kv_u(&r, "dwMallocType", type);
	kv_u(&r, "null_ppMalloc", no_out);
	rec_out(&r);
	kv_p(&r, "ppMalloc", heap);
	rec_end(&r, "CreateMalloc", hr, expect);
	return hr == S_OK ? heap : NULL;
}

static void heap_query_interface(IHostMalloc *heap, const IID *iid, const char *iid_name,
				 HRESULT expect)
{
	void *p = (void *)(uintptr_t)0xdeadbeef;
	struct rec r;
	HRESULT hr;

	hr = IHostMalloc_QueryInterface(heap, iid, &p);
	rec_begin(&r, "QueryInterface", heap);
	kv_s(&r, "riid", iid_name);
	rec_out(&r);
	kv_p(&r, "ppv", p);
	rec_end(&r, "QueryInterface", hr, expect);
	if (hr == S_OK) {
		IHostMalloc_Release(heap);
	}
}

/* Alloc, or DebugAlloc when `debug`. */
static void *heap_alloc(IHostMalloc *heap, SIZE_T size, int level, bool debug, char *file, int line,
			bool no_out, HRESULT expect)
{
	const char *call = debug ? "DebugAlloc" : "Alloc";
	void *p = (void *)(uintptr_t)0xdeadbeef;
	struct rec r;
	HRESULT hr;

	if (debug) {
		hr = IHostMalloc_DebugAlloc(heap, size, (EMemoryCriticalLevel)level, file, line,
					    no_out ? NULL : &p);
	} else {
		hr = IHostMalloc_Alloc(heap, size, (EMemoryCriticalLevel)level, no_out ? NULL : &p);
	}
	if (no_out) {
		p = NULL;
	}
	rec_begin(&r, call, heap);
	kv_u(&r, "cbSize", size);
	kv_i(&r, "eCriticalLevel", level);
	if (debug) {
		kv_s(&r, "pszFileName", file);
		kv_i(&r, "iLineNo", line);
	}
	kv_u(&r, "null_ppMem", no_out);
	rec_out(&r);
	kv_p(&r, "ppMem", p);
	rec_end(&r, call, hr, expect);
	if (hr == S_OK) {
		memset(p, 0x5a, size < 64 ? size : 64);
	}
	return hr == S_OK ? p : NULL;
}

static void heap_free(IHostMalloc *heap, void *p, HRESULT expect)
{
	struct rec r;
	HRESULT hr;

	hr = IHostMalloc_Free(heap, p);
	rec_begin(&r, "Free", heap);
	kv_p(&r, "pMem", p);
	rec_out(&r);
	rec_end(&r, "Free", hr, expect);
}

/* ---------- Markers ---------- */

static void start_marker(void)
{
	char comm[64] = "";
	FILE *f = fopen("/proc/self/comm", "r");
	struct rec r;

	if (f) {
		if (fgets(comm, sizeof(comm), f)) {
			comm[strcspn(comm, "\n")] = '\0';
		}
		fclose(f);
	}
	rec_begin(&r, "start", NULL);
	obj_close(&r);
	kv_u(&r, "pid", (uint64_t)getpid());
	kv_u(&r, "tid", (uint64_t)syscall(SYS_gettid));
	kv_s(&r, "procname", comm);
	kv_s(&r, "version", clrmemtrace_version());
	kv_u(&r, "page_size", (uint64_t)sysconf(_SC_PAGESIZE));
	/* The library sets it while it loads the provider, and must leave it as it was. */
	kv_s(&r, "register_timeout", getenv("LTTNG_UST_REGISTER_TIMEOUT"));
	rec_write(&r);
}

/* Which tracing objects the process has mapped, and the library's file. */
static void maps_marker(void)
{
	char line[4096], library[4096] = "";
	bool provider = false, ust = false;
	FILE *f = fopen("/proc/self/maps", "r");
	struct rec r;

	while (f && fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/');

		if (!path) {
			continue;
		}
		path[strcspn(path, "\n")] = '\0';
		if (strstr(path, "/libclrmemtrace-lttng.so")) {
			provider = true;
		} else if (strstr(path, "/liblttng-ust.so")) {
			ust = true;
		} else if (strstr(path, "/libclrmemtrace.so")) {
			snprintf(library, sizeof(library), "%s", path);
		}
	}
	if (f) {
		fclose(f);
	}
	rec_begin(&r, "maps", NULL);
	obj_close(&r);
	kv_u(&r, "provider", provider);
	kv_u(&r, "lttng_ust", ust);
	kv_s(&r, "library", library);
	rec_write(&r);
}

/* What clrmemtrace_statedump() must return (--statedump), or -1 for either result. */
static HRESULT statedump_expect = S_FALSE;

static HRESULT statedump_call(HRESULT expect)
{
	struct rec r;
	HRESULT hr = clrmemtrace_statedump();

	rec_begin(&r, "clrmemtrace_statedump", NULL);
	rec_out(&r);
	rec_end(&r, "clrmemtrace_statedump", hr, expect == -1 ? hr : expect);
	return hr;
}

/* ---------- The script ---------- */

/* Memory the "runtime" maps directly from the OS, for the address-space calls. */
static void *os_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("trace-host: mmap");
		exit(1);
	}
	return p;
}

static void script_vm(IHostMemoryManager *mm)
{
	const SIZE_T page = (SIZE_T)sysconf(_SC_PAGESIZE);
	char *a, *b, *t, *c, *x;
	int on_stack = 0;

	/* Reserve, then commit part of it. */
	a = vm_alloc(mm, NULL, 1 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	vm_alloc(mm, a, 64 * KiB, MEM_COMMIT, PAGE_READWRITE, eAppDomainCritical, false, 1, S_OK);
	vm_alloc(mm, a + 128 * KiB, 8 * KiB, MEM_COMMIT, PAGE_EXECUTE_READ, eProcessCritical, false,
		 1, S_OK);
	/* Reserve and commit at once; top-down. */
	b = vm_alloc(mm, NULL, 256 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		     false, 1, S_OK);
	t = vm_alloc(mm, NULL, 128 * KiB, MEM_RESERVE | MEM_TOP_DOWN, PAGE_NOACCESS, eTaskCritical,
		     false, 1, S_OK);
	/* At an explicit address: one just released, then one rounded down to 64 KiB. */
	c = vm_alloc(mm, NULL, 512 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 1,
		     S_OK);
	vm_free(mm, c, 0, MEM_RELEASE, 1, S_OK);
	x = vm_alloc(mm, c, 128 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	vm_alloc(mm, c + 256 * KiB + 0x1234, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY,
		 eTaskCritical, false, 1, S_OK);
	/* MEM_RESET keeps the pages' state: no change. */
	vm_alloc(mm, a, 64 * KiB, MEM_RESET, PAGE_READWRITE, eTaskCritical, false, 0, S_OK);

	/* Failing allocations. */
	vm_alloc(mm, NULL, 0, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 0, E_INVALIDARG);
	vm_alloc(mm, NULL, 64 * KiB, MEM_RESERVE, 0x12345, eTaskCritical, false, 0, E_INVALIDARG);
	vm_alloc(mm, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, 7, false, 0, E_INVALIDARG);
	vm_alloc(mm, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, true, 0,
		 E_POINTER);
	vm_alloc(mm, a + 1 * MiB - page, 2 * page, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, false,
		 0, HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));
	vm_alloc(mm, x, 64 * KiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 0,
		 HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));

	/* Protections: ok, on reserved pages, a bad value, a guard page, no out-pointer. */
	vm_protect(mm, a, 16 * KiB, PAGE_READONLY, false, S_OK);
	vm_protect(mm, a + 64 * KiB, page, PAGE_READWRITE, false,
		   HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));
	vm_protect(mm, a, page, 0x12345, false, E_INVALIDARG);
	vm_protect(mm, a + 32 * KiB, page, PAGE_READWRITE | PAGE_GUARD, false, S_OK);
	vm_protect(mm, a, page, PAGE_READWRITE, true, HRESULT_FROM_WIN32(ERROR_NOACCESS));
	vm_protect(mm, b + 4 * KiB, 8 * KiB, PAGE_EXECUTE_READWRITE, false, S_OK);

	/* Queries: own memory, the stack, free memory, bad arguments. */
	vm_query(mm, a, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_query(mm, a + 32 * KiB + 7, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_query(mm, a + 200 * KiB, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_query(mm, t, sizeof(MEMORY_BASIC_INFORMATION) + 16, true, false, S_OK);
	vm_query(mm, &on_stack, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_query(mm, c + 128 * KiB, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_query(mm, a, 16, true, false, HRESULT_FROM_WIN32(ERROR_BAD_LENGTH));
	vm_query(mm, a, sizeof(MEMORY_BASIC_INFORMATION), false, false,
		 HRESULT_FROM_WIN32(ERROR_NOACCESS));
	vm_query(mm, a, sizeof(MEMORY_BASIC_INFORMATION), true, true, E_POINTER);
	walk(mm);

	/* The library's own state dump, then a walk of exactly the state it describes. */
	statedump_call(statedump_expect);
	walk(mm);

	/*
	 * Decommit, and the failing and no-op cases of VirtualFree: a decommit of
	 * pages none of which is committed changes nothing but is numbered.
	 */
	vm_free(mm, a, 64 * KiB, MEM_DECOMMIT, 1, S_OK);
	vm_free(mm, a + 256 * KiB, 64 * KiB, MEM_DECOMMIT, 1, S_OK);
	vm_free(mm, a, 64 * KiB, MEM_RELEASE, 0, E_INVALIDARG);
	vm_free(mm, a + 64 * KiB, 0, MEM_RELEASE, 0, HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));
	vm_free(mm, a, 0, 0x1234, 0, E_INVALIDARG);
	vm_free(mm, a, 0, MEM_RELEASE, 1, S_OK);
	vm_free(mm, a, 0, MEM_RELEASE, 0, HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));
	vm_query(mm, a, sizeof(MEMORY_BASIC_INFORMATION), true, false, S_OK);
	vm_protect(mm, a, page, PAGE_READWRITE, false, HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS));
	(void)b;
}

static void script_misc(IHostMemoryManager *mm)
{
	static struct callback cb1 = { { &cb_vtbl }, 1, S_OK }, cb2 = { { &cb_vtbl }, 1, S_OK };
	char *v = os_map(2 * MiB), *w = os_map(1 * MiB);

	memory_load(mm, false, S_OK);
	memory_load(mm, true, E_POINTER);

	register_callback(mm, &cb1, S_OK);
	register_callback(mm, &cb2, S_OK);
	register_callback(mm, NULL, E_INVALIDARG);

	vas(mm, false, NULL, 4 * MiB, S_OK);
	vas(mm, false, v, 0, E_INVALIDARG);
	vas(mm, true, v, 2 * MiB, S_OK);
	vas(mm, true, w, 1 * MiB, S_OK);
	vas(mm, true, v, 2 * MiB, E_INVALIDARG);
	vas(mm, true, NULL, 1 * MiB, E_INVALIDARG);
	vas_released(mm, v, S_OK);
	vas_released(mm, v, HOST_E_INVALIDOPERATION);
	vas_released(mm, NULL, E_INVALIDARG);
	vas_released(mm, w, S_OK);
	munmap(v, 2 * MiB);
	munmap(w, 1 * MiB);
}

static void script_heaps(IHostMemoryManager *mm)
{
	static char file[] = "trace-host.c";
	IHostMalloc *h1, *h2;
	void *p1, *p2, *p3, *big;
	int on_stack = 0;

	h1 = create_malloc(mm, MALLOC_THREADSAFE, false, S_OK);
	h2 = create_malloc(mm, MALLOC_THREADSAFE | MALLOC_EXECUTABLE, false, S_OK);
	create_malloc(mm, 0x100, false, E_INVALIDARG);
	create_malloc(mm, 0, true, E_POINTER);
	if (!h1 || !h2) {
		return;
	}

	heap_query_interface(h1, &IID_IHostMalloc, "IID_IHostMalloc", S_OK);
	heap_query_interface(h1, &IID_IHostMemoryManager, "IID_IHostMemoryManager", E_NOINTERFACE);
	refcount("AddRef", h1, IHostMalloc_AddRef(h1), 2);
	refcount("Release", h1, IHostMalloc_Release(h1), 1);

	p1 = heap_alloc(h1, 100, eTaskCritical, false, NULL, 0, false, S_OK);
	p2 = heap_alloc(h1, 1, eAppDomainCritical, false, NULL, 0, false, S_OK);
	p3 = heap_alloc(h1, 200, eProcessCritical, true, file, __LINE__, false, S_OK);
	heap_alloc(h1, 40, eTaskCritical, true, NULL, 0, false, S_OK);
	big = heap_alloc(h1, 3 * MiB + 5, eTaskCritical, false, NULL, 0, false, S_OK);
	heap_alloc(h1, 16, 9, false, NULL, 0, false, E_INVALIDARG);
	heap_alloc(h1, 16, eTaskCritical, false, NULL, 0, true, E_POINTER);
	heap_alloc(h1, 16, eTaskCritical, true, file, __LINE__, true, E_POINTER);
	heap_alloc(h1, SIZE_MAX, eTaskCritical, false, NULL, 0, false, E_OUTOFMEMORY);
	heap_alloc(h1, SIZE_MAX / 2, eProcessCritical, true, file, __LINE__, false, E_OUTOFMEMORY);
	heap_alloc(h2, 64, eTaskCritical, false, NULL, 0, false, S_OK);
	heap_alloc(h2, 4096, eTaskCritical, true, file, __LINE__, false, S_OK);

	heap_free(h1, p1, S_OK);
	heap_free(h1, NULL, S_OK);
	heap_free(h1, p1, HOST_E_INVALIDOPERATION);
	heap_free(h1, &on_stack, HOST_E_INVALIDOPERATION);
	heap_free(h2, p2, HOST_E_INVALIDOPERATION);
	heap_free(h1, big, S_OK);
	heap_free(h1, p2, S_OK);
	(void)p3;

	/* Blocks left live go back to the OS with their heap (malloc_destroy counts them). */
	refcount("Release", h1, IHostMalloc_Release(h1), 0);
	refcount("Release", h2, IHostMalloc_Release(h2), 0);
}

/*
 * A manager under a commit budget: its refusals (with their reason), the
 * emergency reserve, the budget's load, and the notifications the library's
 * monitor delivers to the callback as the load crosses the thresholds.
 */
static void script_policy(uint32_t flags)
{
	static struct callback cb = { { &cb_vtbl }, 1, S_FALSE };
	clrmemtrace_options opts = {
		.size = sizeof(opts),
		.flags = flags,
		.name = "budget",
		.commit_budget = 1 * MiB,
		.address_space_budget = 4 * MiB,
		.emergency_reserve = 256 * KiB,
		.low_memory_percent = 80,
		.high_memory_percent = 40,
		.hysteresis_percent = 5,
	};
	IHostMemoryManager *mm;
	IHostMalloc *heap;
	char *r;
	int seen;

	if (create_with(&opts, S_OK, &mm) != S_OK) {
		return;
	}
	seen = notifications_so_far();
	register_callback(mm, &cb, S_OK);
	memory_load(mm, false, S_OK);
	r = vm_alloc(mm, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	/* 900 KiB of the 1 MiB budget: a load of 87%, over the Low threshold. */
	vm_alloc(mm, r, 900 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	if (!wait_notification(&cb, eMemoryAvailableLow, seen, 10000)) {
		fprintf(stderr, "trace-host: no eMemoryAvailableLow notification\n");
		failures++;
	}
	memory_load(mm, false, S_OK);
	refusal = "commit";
	vm_alloc(mm, r + 1 * MiB, 256 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, false, 1,
		 E_OUTOFMEMORY);
	/* A process-critical request may go on into the emergency reserve. */
	vm_alloc(mm, r + 1 * MiB, 128 * KiB, MEM_COMMIT, PAGE_READWRITE, eProcessCritical, false, 1,
		 S_OK);
	refusal = "address-space";
	vas(mm, false, NULL, 8 * MiB, E_OUTOFMEMORY);
	heap = create_malloc(mm, MALLOC_THREADSAFE, false, S_OK);
	if (heap) {
		refusal = "commit";
		heap_alloc(heap, 512 * KiB, eTaskCritical, false, NULL, 0, false, E_OUTOFMEMORY);
		refcount("Release", heap, IHostMalloc_Release(heap), 0);
	}
	/* Back under the budget, the level leaves Low (for which one depends on the system). */
	seen = notifications_so_far();
	vm_free(mm, r, 0, MEM_RELEASE, 1, S_OK);
	wait_notification(&cb, 0, seen, 3000);
	walk(mm);
	mm_release(mm, 0);
	log_notifications();
}

static int run_script(bool no_trace_flag, bool control)
{
	IHostMemoryManager *mm, *other, *bad;
	uint32_t flags = no_trace_flag ? CLRMEMTRACE_FLAG_NO_TRACE : 0;

	if (create("trace-host", flags, true, S_OK, &mm) != S_OK) {
		return 1;
	}
	create("bad flags", 0x80, true, E_INVALIDARG, &bad);
	mm_query_interface(mm, &IID_IHostMemoryManager, "IID_IHostMemoryManager", S_OK);
	mm_query_interface(mm, &IID_IUnknown, "IID_IUnknown", S_OK);
	mm_query_interface(mm, &IID_IHostMalloc, "IID_IHostMalloc", E_NOINTERFACE);
	mm_addref(mm, 2);
	mm_release(mm, 1);

	script_vm(mm);
	script_misc(mm);
	script_heaps(mm);
	script_policy(flags);

	/* A second manager, created without options; then both go, with what they still hold. */
	if (create(NULL, flags, false, S_OK, &other) == S_OK) {
		vm_alloc(other, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
			 eTaskCritical, false, 1, S_OK);
		walk(other);
		mm_release(other, 0);
	}
	walk(mm);
	mm_release(mm, 0);
	log_notifications();

	if (control && create("control", 0, true, S_OK, &other) == S_OK) {
		void *p = vm_alloc(other, NULL, 64 * KiB, MEM_RESERVE, PAGE_READWRITE,
				   eTaskCritical, false, 1, S_OK);

		vm_free(other, p, 0, MEM_RELEASE, 1, S_OK);
		walk(other);
		mm_release(other, 0);
	}
	statedump_call(statedump_expect);
	return 0;
}

/* ---------- State-dump mode ---------- */

struct dump_state {
	IHostMemoryManager *a, *b, *quiet, *spare;
	IHostMalloc *h1, *h2, *hq;
	char *r1, *r2;
	void *blocks[8];
	void *vas;
	int steps;
};

/* State a session started later must learn from a dump. */
static void dump_setup(struct dump_state *s)
{
	static char file[] = "statedump.c";
	const SIZE_T page = (SIZE_T)sysconf(_SC_PAGESIZE);
	char *r3, *w;

	create("dump-a", 0, true, S_OK, &s->a);
	create("dump-b", 0, true, S_OK, &s->b);
	create("dump-quiet", CLRMEMTRACE_FLAG_NO_TRACE, true, S_OK, &s->quiet);
	create("dump-spare", 0, true, S_OK, &s->spare);
	if (!s->a || !s->b || !s->quiet || !s->spare) {
		exit(1);
	}
	/* A reservation of several runs: committed, protected, guarded, executable, reserved. */
	s->r1 = vm_alloc(s->a, NULL, 2 * MiB, MEM_RESERVE, PAGE_READWRITE, eTaskCritical, false, 1,
			 S_OK);
	vm_alloc(s->a, s->r1, 64 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	vm_protect(s->a, s->r1 + 16 * KiB, 16 * KiB, PAGE_READONLY, false, S_OK);
	vm_alloc(s->a, s->r1 + 128 * KiB, 3 * page, MEM_COMMIT, PAGE_EXECUTE_READ, eTaskCritical,
		 false, 1, S_OK);
	vm_alloc(s->a, s->r1 + 256 * KiB, page, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD,
		 eTaskCritical, false, 1, S_OK);
	vm_alloc(s->a, s->r1 + 1 * MiB, 256 * KiB, MEM_COMMIT, PAGE_READWRITE, eTaskCritical, false,
		 1, S_OK);
	vm_free(s->a, s->r1 + 1 * MiB + 64 * KiB, 64 * KiB, MEM_DECOMMIT, 1, S_OK);
	/* Committed at once, top-down; and one released again. */
	s->r2 = vm_alloc(s->a, NULL, 192 * KiB, MEM_RESERVE | MEM_COMMIT | MEM_TOP_DOWN,
			 PAGE_EXECUTE_READWRITE, eTaskCritical, false, 1, S_OK);
	r3 = vm_alloc(s->a, NULL, 64 * KiB, MEM_RESERVE, PAGE_NOACCESS, eTaskCritical, false, 1,
		      S_OK);
	vm_free(s->a, r3, 0, MEM_RELEASE, 1, S_OK);

	s->h1 = create_malloc(s->a, MALLOC_THREADSAFE, false, S_OK);
	s->h2 = create_malloc(s->a, MALLOC_THREADSAFE | MALLOC_EXECUTABLE, false, S_OK);
	s->blocks[0] = heap_alloc(s->h1, 24, eTaskCritical, false, NULL, 0, false, S_OK);
	s->blocks[1] = heap_alloc(s->h1, 1000, eTaskCritical, false, NULL, 0, false, S_OK);
	s->blocks[2] = heap_alloc(s->h1, 77, eTaskCritical, true, file, 42, false, S_OK);
	s->blocks[3] = heap_alloc(s->h1, 2 * MiB, eTaskCritical, false, NULL, 0, false, S_OK);
	s->blocks[4] = heap_alloc(s->h1, 8, eTaskCritical, false, NULL, 0, false, S_OK);
	heap_free(s->h1, s->blocks[1], S_OK);
	heap_free(s->h1, s->blocks[4], S_OK);
	s->blocks[5] = heap_alloc(s->h2, 300, eTaskCritical, false, NULL, 0, false, S_OK);

	s->vas = os_map(2 * MiB);
	w = os_map(1 * MiB);
	vas(s->a, true, s->vas, 2 * MiB, S_OK);
	vas(s->a, true, w, 1 * MiB, S_OK);
	vas_released(s->a, w, S_OK);
	munmap(w, 1 * MiB);

	/* The second manager: one reservation and an empty heap. */
	vm_alloc(s->b, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READONLY, eTaskCritical,
		 false, 1, S_OK);
	create_malloc(s->b, 0, false, S_OK);

	/* A manager whose final Release is the first call of the second step. */
	vm_alloc(s->spare, NULL, 64 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		 false, 1, S_OK);
	walk(s->spare);

	/* The untraced manager holds memory too, which no dump may show. */
	vm_alloc(s->quiet, NULL, 128 * KiB, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE, eTaskCritical,
		 false, 1, S_OK);
	s->hq = create_malloc(s->quiet, 0, false, S_OK);
	heap_alloc(s->hq, 48, eTaskCritical, false, NULL, 0, false, S_OK);
}

/*
 * One step: a call (which dumps, if a session just started), a walk of
 * every region of both traced managers, a few changes, and another walk.
 * The second step's first call is instead the spare manager's last Release,
 * which must dump too before it reports the manager gone.
 */
static void dump_step(struct dump_state *s)
{
	void *p;

	s->steps++;
	marker("step", NULL);
	if (s->steps == 2) {
		mm_release(s->spare, 0);
		s->spare = NULL;
	}
	memory_load(s->a, false, S_OK);
	walk(s->a);
	walk(s->b);
	p = heap_alloc(s->h1, 64 + (SIZE_T)s->steps, eTaskCritical, false, NULL, 0, false, S_OK);
	heap_free(s->h1, s->blocks[0], S_OK);
	s->blocks[0] = p;
	vm_alloc(s->a, s->r1 + 512 * KiB + (SIZE_T)s->steps * 64 * KiB, 64 * KiB, MEM_COMMIT,
		 PAGE_READWRITE, eTaskCritical, false, 1, S_OK);
	vm_protect(s->a, s->r2, 64 * KiB, PAGE_READONLY, false, S_OK);
	walk(s->a);
}

static void dump_exit(struct dump_state *s)
{
	refcount("Release", s->h1, IHostMalloc_Release(s->h1), 0);
	refcount("Release", s->h2, IHostMalloc_Release(s->h2), 0);
	refcount("Release", s->hq, IHostMalloc_Release(s->hq), 0);
	/* b's empty heap still holds a reference on b: b goes when the heap does. */
	mm_release(s->b, 1);
	walk(s->a);
	mm_release(s->a, 0);
	mm_release(s->quiet, 0);
	if (s->spare) {
		mm_release(s->spare, 0);
	}
	munmap(s->vas, 2 * MiB);
}

static int run_statedump(void)
{
	struct dump_state s;
	char line[64];

	memset(&s, 0, sizeof(s));
	dump_setup(&s);
	printf(statedump_call(-1) == S_OK ? "ready busy\n" : "ready\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "step") == 0) {
			dump_step(&s);
			printf("done\n");
			fflush(stdout);
		} else if (strcmp(line, "exit") == 0) {
			break;
		} else {
			fprintf(stderr, "trace-host: unknown command \"%s\"\n", line);
			failures++;
		}
	}
	dump_exit(&s);
	return 0;
}

int main(int argc, char **argv)
{
	bool dump_mode = false, no_trace_flag = false, control = false;
	const char *log_path = NULL;
	struct rec r;
	int i, status;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
			log_path = argv[++i];
		} else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "statedump") == 0) {
				dump_mode = true;
			} else if (strcmp(argv[i], "script") != 0) {
				fprintf(stderr, "trace-host: unknown mode %s\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--no-trace-flag") == 0) {
			no_trace_flag = true;
		} else if (strcmp(argv[i], "--control") == 0) {
			control = true;
		} else if (strcmp(argv[i], "--statedump") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "yes") == 0) {
				statedump_expect = S_OK;
			} else if (strcmp(argv[i], "any") == 0) {
				statedump_expect = -1;
			} else if (strcmp(argv[i], "no") != 0) {
				fprintf(stderr, "trace-host: --statedump yes, no or any\n");
				return 2;
			}
		} else {
			fprintf(stderr,
				"usage: %s [--log FILE] [--mode script|statedump]\n"
				"       [--no-trace-flag] [--control] [--statedump yes|no|any]\n",
				argv[0]);
			return 2;
		}
	}
	log_file = log_path ? fopen(log_path, "w") : stdout;
	if (!log_file) {
		perror("trace-host: log");
		return 2;
	}
	start_marker();
	status = dump_mode ? run_statedump() : run_script(no_trace_flag, control);
	maps_marker();
	rec_begin(&r, "end", NULL);
	obj_close(&r);
	kv_i(&r, "failures", failures);
	rec_write(&r);
	if (log_file != stdout) {
		fclose(log_file);
	}
	return status || failures ? 1 : 0;
}
