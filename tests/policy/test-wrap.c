/* SPDX-License-Identifier: MIT */
/*
 * Decorator mode (clrmemtrace_wrap, README.md "Wrapping another host's
 * manager"): every call, heap calls included, goes to the inner manager
 * unchanged and its result comes back unchanged; the decorator keeps a
 * reference on the inner manager, answers QueryInterface for itself, relays
 * the inner manager's notifications to the runtime's callback, and applies
 * no budget.
 *
 * The inner manager and its heap are written here: they record every call
 * with its arguments, and answer what the test scripted, odd HRESULTs
 * (S_FALSE, HOST_E_TIMEOUT) and out-parameters written or left alone
 * included. Each decorator call must reach them exactly once, with the same
 * arguments, out-pointers included, and nothing else may reach them.
 *
 * Run with CLRMEMTRACE_TRACE=0 (meson.build): a state dump started by some
 * other program's session would add VirtualQuery calls of its own. The
 * trace of a decorator is tests/python/test_policy_trace.py's business.
 */
#include "policy-common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(POLICY_HAVE_URCU_BP)
#include <urcu/urcu-bp.h>
#endif

enum method {
	M_QUERYINTERFACE = 1,
	M_CREATEMALLOC,
	M_VIRTUALALLOC,
	M_VIRTUALFREE,
	M_VIRTUALQUERY,
	M_VIRTUALPROTECT,
	M_GETMEMORYLOAD,
	M_REGISTER,
	M_NEEDS,
	M_ACQUIRED,
	M_RELEASED,
	H_QUERYINTERFACE,
	H_ALLOC,
	H_DEBUGALLOC,
	H_FREE,
};

static const char *method_name(int m)
{
	static const char *const names[] = {
		"?",           "QueryInterface", "CreateMalloc",  "VirtualAlloc",
		"VirtualFree", "VirtualQuery",   "VirtualProtect", "GetMemoryLoad",
		"RegisterMemoryNotificationCallback", "NeedsVirtualAddressSpace",
		"AcquiredVirtualAddressSpace", "ReleasedVirtualAddressSpace",
		"IHostMalloc::QueryInterface", "IHostMalloc::Alloc", "IHostMalloc::DebugAlloc",
		"IHostMalloc::Free",
	};

	return m > 0 && (size_t)m < sizeof(names) / sizeof(names[0]) ? names[m] : "?";
}

#define MAX_ARGS 6
#define MAX_CALLS 128

struct call {
	int method;
	const void *self;
	uintptr_t arg[MAX_ARGS];
};

/* What the next call answers, and what it writes to its out-parameters. */
struct script {
	HRESULT hr;
	bool write;      /* write the out-parameters (else leave them alone) */
	uintptr_t out;   /* pointer / first value written */
	uint64_t out2;   /* second value written (GetMemoryLoad's bytes) */
};

struct fake_heap;

struct fake {
	IHostMemoryManager iface;
	uint32_t refs; /* atomic */
	pthread_mutex_t lock;
	struct call calls[MAX_CALLS];
	unsigned ncalls;
	struct script next;
	ICLRMemoryNotificationCallback *registered; /* a reference, as a host keeps it */
	struct fake_heap *heap;                     /* what CreateMalloc hands out */
};

struct fake_heap {
	IHostMalloc iface;
	uint32_t refs; /* atomic */
	struct fake *owner;
};

static void log_call(struct fake *f, int method, const void *self, uintptr_t a0, uintptr_t a1,
		     uintptr_t a2, uintptr_t a3, uintptr_t a4, uintptr_t a5, struct script *s)
{
	pthread_mutex_lock(&f->lock);
	if (f->ncalls < MAX_CALLS) {
		struct call *c = &f->calls[f->ncalls];

		c->method = method;
		c->self = self;
		c->arg[0] = a0;
		c->arg[1] = a1;
		c->arg[2] = a2;
		c->arg[3] = a3;
		c->arg[4] = a4;
		c->arg[5] = a5;
	}
	f->ncalls++;
	*s = f->next;
	/* A script is good for one call: the next one fails loudly unless scripted. */
	f->next.hr = E_UNEXPECTED;
	f->next.write = false;
	pthread_mutex_unlock(&f->lock);
}

#define LOG(f, m, self, a0, a1, a2, a3, a4, a5, s)                                           \
	log_call((f), (m), (self), (uintptr_t)(a0), (uintptr_t)(a1), (uintptr_t)(a2),         \
		 (uintptr_t)(a3), (uintptr_t)(a4), (uintptr_t)(a5), (s))

static struct fake *fake_of(IHostMemoryManager *iface)
{
	return (struct fake *)((char *)iface - offsetof(struct fake, iface));
}

static HRESULT STDMETHODCALLTYPE fake_QueryInterface(IHostMemoryManager *iface, REFIID riid,
						     void **ppv)
{
	struct script s;

	LOG(fake_of(iface), M_QUERYINTERFACE, iface, riid, ppv, 0, 0, 0, 0, &s);
	if (ppv) {
		*ppv = NULL;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE fake_AddRef(IHostMemoryManager *iface)
{
	return __atomic_add_fetch(&fake_of(iface)->refs, 1, __ATOMIC_ACQ_REL);
}

/* Drops a reference of a fake; one Release too many ends the test. */
static ULONG release_ref(uint32_t *refs, const char *what)
{
	uint32_t left = __atomic_sub_fetch(refs, 1, __ATOMIC_ACQ_REL);

	if (left == UINT32_MAX) {
		fprintf(stderr, "FATAL: the inner %s was released more often than referenced\n", what);
		abort();
	}
	return left;
}

static ULONG STDMETHODCALLTYPE fake_Release(IHostMemoryManager *iface)
{
	return release_ref(&fake_of(iface)->refs, "manager");
}

static HRESULT STDMETHODCALLTYPE fake_CreateMalloc(IHostMemoryManager *iface, DWORD type,
						   IHostMalloc **pp)
{
	struct fake *f = fake_of(iface);
	struct script s;

	LOG(f, M_CREATEMALLOC, iface, type, pp, 0, 0, 0, 0, &s);
	if (pp && s.write) {
		*pp = (IHostMalloc *)s.out;
		if (*pp) {
			IHostMalloc_AddRef(*pp);
		}
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_VirtualAlloc(IHostMemoryManager *iface, void *addr,
						   SIZE_T size, DWORD type, DWORD protect,
						   EMemoryCriticalLevel level, void **pp)
{
	struct script s;

	LOG(fake_of(iface), M_VIRTUALALLOC, iface, addr, size, type, protect, level, pp, &s);
	if (pp && s.write) {
		*pp = (void *)s.out;
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_VirtualFree(IHostMemoryManager *iface, LPVOID addr,
						  SIZE_T size, DWORD type)
{
	struct script s;

	LOG(fake_of(iface), M_VIRTUALFREE, iface, addr, size, type, 0, 0, 0, &s);
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_VirtualQuery(IHostMemoryManager *iface, void *addr,
						   void *buf, SIZE_T len, SIZE_T *result)
{
	struct script s;

	LOG(fake_of(iface), M_VIRTUALQUERY, iface, addr, buf, len, result, 0, 0, &s);
	if (s.write) {
		if (buf) {
			memset(buf, (int)(s.out & 0xff), len);
		}
		if (result) {
			*result = (SIZE_T)s.out2;
		}
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_VirtualProtect(IHostMemoryManager *iface, void *addr,
						     SIZE_T size, DWORD protect, DWORD *old)
{
	struct script s;

	LOG(fake_of(iface), M_VIRTUALPROTECT, iface, addr, size, protect, old, 0, 0, &s);
	if (old && s.write) {
		*old = (DWORD)s.out;
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_GetMemoryLoad(IHostMemoryManager *iface, DWORD *load,
						    SIZE_T *avail)
{
	struct script s;

	LOG(fake_of(iface), M_GETMEMORYLOAD, iface, load, avail, 0, 0, 0, 0, &s);
	if (s.write) {
		if (load) {
			*load = (DWORD)s.out;
		}
		if (avail) {
			*avail = (SIZE_T)s.out2;
		}
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_Register(IHostMemoryManager *iface,
					       ICLRMemoryNotificationCallback *cb)
{
	struct fake *f = fake_of(iface);
	ICLRMemoryNotificationCallback *old;
	struct script s;

	LOG(f, M_REGISTER, iface, cb, 0, 0, 0, 0, 0, &s);
	if (SUCCEEDED(s.hr) && cb) {
		/* As a host does: keep the new one, release the one before. */
		cb->lpVtbl->AddRef(cb);
		pthread_mutex_lock(&f->lock);
		old = f->registered;
		f->registered = cb;
		pthread_mutex_unlock(&f->lock);
		if (old) {
			old->lpVtbl->Release(old);
		}
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_Needs(IHostMemoryManager *iface, LPVOID addr, SIZE_T size)
{
	struct script s;

	LOG(fake_of(iface), M_NEEDS, iface, addr, size, 0, 0, 0, 0, &s);
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_Acquired(IHostMemoryManager *iface, LPVOID addr,
					       SIZE_T size)
{
	struct script s;

	LOG(fake_of(iface), M_ACQUIRED, iface, addr, size, 0, 0, 0, 0, &s);
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fake_Released(IHostMemoryManager *iface, LPVOID addr)
{
	struct script s;

	LOG(fake_of(iface), M_RELEASED, iface, addr, 0, 0, 0, 0, 0, &s);
	return s.hr;
}

static const IHostMemoryManagerVtbl fake_vtbl = {
	fake_QueryInterface, fake_AddRef,         fake_Release,       fake_CreateMalloc,
	fake_VirtualAlloc,   fake_VirtualFree,    fake_VirtualQuery,  fake_VirtualProtect,
	fake_GetMemoryLoad,  fake_Register,       fake_Needs,         fake_Acquired,
	fake_Released,
};

/* ---------- The inner heap ---------- */

static struct fake_heap *heap_of(IHostMalloc *iface)
{
	return (struct fake_heap *)((char *)iface - offsetof(struct fake_heap, iface));
}

static HRESULT STDMETHODCALLTYPE fheap_QueryInterface(IHostMalloc *iface, REFIID riid, void **ppv)
{
	struct script s;

	LOG(heap_of(iface)->owner, H_QUERYINTERFACE, iface, riid, ppv, 0, 0, 0, 0, &s);
	if (ppv) {
		*ppv = NULL;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE fheap_AddRef(IHostMalloc *iface)
{
	return __atomic_add_fetch(&heap_of(iface)->refs, 1, __ATOMIC_ACQ_REL);
}

static ULONG STDMETHODCALLTYPE fheap_Release(IHostMalloc *iface)
{
	return release_ref(&heap_of(iface)->refs, "heap");
}

static HRESULT STDMETHODCALLTYPE fheap_Alloc(IHostMalloc *iface, SIZE_T size,
					     EMemoryCriticalLevel level, void **pp)
{
	struct script s;

	LOG(heap_of(iface)->owner, H_ALLOC, iface, size, level, pp, 0, 0, 0, &s);
	if (pp && s.write) {
		*pp = (void *)s.out;
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fheap_DebugAlloc(IHostMalloc *iface, SIZE_T size,
						  EMemoryCriticalLevel level, char *file, int line,
						  void **pp)
{
	struct script s;

	LOG(heap_of(iface)->owner, H_DEBUGALLOC, iface, size, level, file, (intptr_t)line, pp, 0,
	    &s);
	if (pp && s.write) {
		*pp = (void *)s.out;
	}
	return s.hr;
}

static HRESULT STDMETHODCALLTYPE fheap_Free(IHostMalloc *iface, void *p)
{
	struct script s;

	LOG(heap_of(iface)->owner, H_FREE, iface, p, 0, 0, 0, 0, 0, &s);
	return s.hr;
}

static const IHostMallocVtbl fheap_vtbl = {
	fheap_QueryInterface, fheap_AddRef,     fheap_Release,
	fheap_Alloc,          fheap_DebugAlloc, fheap_Free,
};

/* ---------- Fixture ---------- */

struct wrap_fixture {
	struct fake inner;
	struct fake_heap heap;
	IHostMemoryManager *mm; /* the decorator */
	struct test_cb cb[2];
};

static int wrap_setup(void **state)
{
	struct wrap_fixture *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->inner.iface.lpVtbl = &fake_vtbl;
	w->inner.refs = 1;
	w->inner.next.hr = E_UNEXPECTED;
	pthread_mutex_init(&w->inner.lock, NULL);
	w->heap.iface.lpVtbl = &fheap_vtbl;
	w->heap.refs = 1;
	w->heap.owner = &w->inner;
	test_cb_init(&w->cb[0]);
	test_cb_init(&w->cb[1]);
	*state = w;
	return 0;
}

static int wrap_teardown(void **state)
{
	struct wrap_fixture *w = *state;

	if (w->mm) {
		release_last(w->mm);
	}
	/* The inner manager lets go of what it was given, as a host does when it ends. */
	if (w->inner.registered) {
		w->inner.registered->lpVtbl->Release(w->inner.registered);
		w->inner.registered = NULL;
	}
	assert_int_equal(w->inner.refs, 1);
	assert_int_equal(w->heap.refs, 1);
	test_cb_fini(&w->cb[0]);
	test_cb_fini(&w->cb[1]);
	pthread_mutex_destroy(&w->inner.lock);
	free(w);
	return 0;
}

static void wrap_ok(struct wrap_fixture *w, const clrmemtrace_options *opts)
{
	assert_hr(S_OK, clrmemtrace_wrap(&w->inner.iface, opts, &w->mm));
	assert_non_null(w->mm);
	assert_ptr_not_equal(w->mm, &w->inner.iface);
}

static void script(struct wrap_fixture *w, HRESULT hr, bool write, uintptr_t out, uint64_t out2)
{
	w->inner.next.hr = hr;
	w->inner.next.write = write;
	w->inner.next.out = out;
	w->inner.next.out2 = out2;
}

/*
 * The inner manager got exactly one more call, the one described. Arguments
 * past `nargs` are not compared.
 */
static void expect_call_(struct wrap_fixture *w, unsigned *seen, int method, const void *self,
			 unsigned nargs, const uintptr_t *args, const char *file, int line)
{
	unsigned n = w->inner.ncalls, i;
	const struct call *c;

	if (n != *seen + 1) {
		print_error("the inner manager got %d calls, expected one (%s)\n", (int)(n - *seen),
			    method_name(method));
		for (i = *seen; i < n && i < MAX_CALLS; i++) {
			print_error("  %s\n", method_name(w->inner.calls[i].method));
		}
		_fail(file, line);
	}
	c = &w->inner.calls[*seen];
	*seen = n;
	if (c->method != method || c->self != self) {
		print_error("the inner manager got %s on %p, expected %s on %p\n",
			    method_name(c->method), c->self, method_name(method), self);
		_fail(file, line);
	}
	for (i = 0; i < nargs; i++) {
		if (c->arg[i] != args[i]) {
			print_error("%s: argument %u is %#jx, expected %#jx\n", method_name(method),
				    i + 1, (uintmax_t)c->arg[i], (uintmax_t)args[i]);
			_fail(file, line);
		}
	}
}

#define expect_call(w, seen, method, self, ...)                                             \
	do {                                                                               \
		const uintptr_t args_[] = { __VA_ARGS__ };                                 \
		expect_call_((w), (seen), (method), (self), sizeof(args_) / sizeof(args_[0]), \
			     args_, __FILE__, __LINE__);                                   \
	} while (0)

/* A call whose arguments are checked apart (or not at all). */
#define expect_call0(w, seen, method, self) \
	expect_call_((w), (seen), (method), (self), 0, NULL, __FILE__, __LINE__)

#define U(x) ((uintptr_t)(x))

static void expect_no_calls_(struct wrap_fixture *w, unsigned seen, const char *file, int line)
{
	if (w->inner.ncalls != seen) {
		print_error("the inner manager got %s, expected nothing\n",
			    method_name(w->inner.calls[seen].method));
		_fail(file, line);
	}
}
#define expect_no_calls(w, seen) expect_no_calls_((w), (seen), __FILE__, __LINE__)

/* ---------- Creation, identity, references ---------- */

static void test_wrap_arguments(void **state)
{
	struct wrap_fixture *w = *state;
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *out = (IHostMemoryManager *)(uintptr_t)0xdeadbeef;
	IHostMemoryManager broken = { NULL };

	assert_hr(E_INVALIDARG, clrmemtrace_wrap(NULL, NULL, &out));
	assert_null(out);
	out = (IHostMemoryManager *)(uintptr_t)0xdeadbeef;
	assert_hr(E_INVALIDARG, clrmemtrace_wrap(&broken, NULL, &out));
	assert_null(out);
	assert_hr(E_POINTER, clrmemtrace_wrap(&w->inner.iface, NULL, NULL));
	/* Bad options, and an environment the policy cannot read, fail with no reference kept. */
	o.flags = 0x100;
	out = (IHostMemoryManager *)(uintptr_t)0xdeadbeef;
	assert_hr(E_INVALIDARG, clrmemtrace_wrap(&w->inner.iface, &o, &out));
	assert_null(out);
	setenv("CLRMEMTRACE_COMMIT_BUDGET", "lots", 1);
	assert_hr(E_INVALIDARG, clrmemtrace_wrap(&w->inner.iface, NULL, &out));
	policy_env_clear(NULL);
	assert_null(out);
	assert_int_equal(w->inner.refs, 1);
	expect_no_calls(w, 0);
}

static void test_wrap_identity_and_references(void **state)
{
	struct wrap_fixture *w = *state;
	void *ppv = (void *)(uintptr_t)0xdeadbeef;

	wrap_ok(w, NULL);
	/* One reference on the inner manager, and no call to it. */
	assert_int_equal(w->inner.refs, 2);
	expect_no_calls(w, 0);

	/* The decorator is its own COM object. */
	assert_hr(S_OK, IHostMemoryManager_QueryInterface(w->mm, &IID_IHostMemoryManager, &ppv));
	assert_ptr_equal(ppv, w->mm);
	assert_int_equal(IHostMemoryManager_Release(w->mm), 1);
	assert_hr(S_OK, IHostMemoryManager_QueryInterface(w->mm, &IID_IUnknown, &ppv));
	assert_ptr_equal(ppv, w->mm);
	assert_int_equal(IHostMemoryManager_Release(w->mm), 1);
	ppv = (void *)(uintptr_t)0xdeadbeef;
	assert_hr(E_NOINTERFACE, IHostMemoryManager_QueryInterface(w->mm, &IID_IHostMalloc, &ppv));
	assert_null(ppv);
	assert_hr(E_POINTER, IHostMemoryManager_QueryInterface(w->mm, &IID_IUnknown, NULL));
	assert_int_equal(IHostMemoryManager_AddRef(w->mm), 2);
	assert_int_equal(IHostMemoryManager_AddRef(w->mm), 3);
	assert_int_equal(IHostMemoryManager_Release(w->mm), 2);
	assert_int_equal(IHostMemoryManager_Release(w->mm), 1);
	/* Its own count: the inner manager's did not move. */
	assert_int_equal(w->inner.refs, 2);
	expect_no_calls(w, 0);

	release_last(w->mm);
	w->mm = NULL;
	assert_int_equal(w->inner.refs, 1);
	expect_no_calls(w, 0);
}

/* ---------- Virtual memory ---------- */

static void test_wrap_virtual_alloc(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	void *p = NULL, *addr = (void *)(uintptr_t)0x7e0000010000ull;
	unsigned seen = 0;

	wrap_ok(w, NULL);
	script(w, S_OK, true, 0x7e0000010000ull, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualAlloc(w->mm, addr, 12345,
							MEM_RESERVE | MEM_TOP_DOWN,
							PAGE_EXECUTE_READWRITE, eProcessCritical, &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, U(addr), 12345, MEM_RESERVE | MEM_TOP_DOWN,
		    PAGE_EXECUTE_READWRITE, eProcessCritical, U(&p));
	assert_ptr_equal(p, addr);

	/* S_FALSE comes back as it is, with what the inner manager wrote. */
	script(w, S_FALSE, true, 0x1234, 0);
	assert_hr(S_FALSE, IHostMemoryManager_VirtualAlloc(w->mm, NULL, 1, MEM_COMMIT,
							   PAGE_READONLY, eTaskCritical, &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, 0, 1, MEM_COMMIT, PAGE_READONLY, eTaskCritical,
		    U(&p));
	assert_ptr_equal(p, (void *)0x1234);

	/* A failure the inner manager leaves *ppMem alone for: so does the decorator. */
	p = (void *)(uintptr_t)0xfeedface;
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_VirtualAlloc(w->mm, addr, 65536, MEM_COMMIT,
								  PAGE_READWRITE,
								  eAppDomainCritical, &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, U(addr), 65536, MEM_COMMIT, PAGE_READWRITE,
		    eAppDomainCritical, U(&p));
	assert_ptr_equal(p, (void *)(uintptr_t)0xfeedface);
	script(w, E_OUTOFMEMORY, true, 0, 0);
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_VirtualAlloc(w->mm, NULL, 1 << 20,
								 MEM_RESERVE | MEM_COMMIT,
								 PAGE_READWRITE, eTaskCritical,
								 &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, 0, 1 << 20, MEM_RESERVE | MEM_COMMIT,
		    PAGE_READWRITE, eTaskCritical, U(&p));
	assert_null(p);

	/* Nothing is validated on the way: what the library would refuse goes through. */
	script(w, E_POINTER, false, 0, 0);
	assert_hr(E_POINTER, IHostMemoryManager_VirtualAlloc(w->mm, NULL, 0, 0xffffffffu, 0x7777,
							     (EMemoryCriticalLevel)7, NULL));
	expect_call(w, &seen, M_VIRTUALALLOC, in, 0, 0, 0xffffffffu, 0x7777, 7, 0);
	script(w, S_OK, true, 0x7e0000020000ull, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualAlloc(w->mm, NULL, 0, MEM_RESET, 0,
							(EMemoryCriticalLevel)-1, &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, 0, 0, MEM_RESET, 0, U((EMemoryCriticalLevel)-1),
		    U(&p));
	expect_no_calls(w, seen);
}

static void test_wrap_virtual_free_protect_query(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	void *addr = (void *)(uintptr_t)0x7e0000010000ull;
	MEMORY_BASIC_INFORMATION mbi;
	unsigned char odd[7];
	SIZE_T got = 0;
	DWORD old = 0;
	unsigned seen = 0, i;

	wrap_ok(w, NULL);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualFree(w->mm, addr, 0, MEM_RELEASE));
	expect_call(w, &seen, M_VIRTUALFREE, in, U(addr), 0, MEM_RELEASE);
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_VirtualFree(w->mm, addr, 4096, MEM_DECOMMIT));
	expect_call(w, &seen, M_VIRTUALFREE, in, U(addr), 4096, MEM_DECOMMIT);
	script(w, S_FALSE, false, 0, 0);
	assert_hr(S_FALSE, IHostMemoryManager_VirtualFree(w->mm, NULL, 1, 0x12345678));
	expect_call(w, &seen, M_VIRTUALFREE, in, 0, 1, 0x12345678);

	script(w, S_OK, true, PAGE_EXECUTE_READ, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualProtect(w->mm, addr, 8192, PAGE_READONLY, &old));
	expect_call(w, &seen, M_VIRTUALPROTECT, in, U(addr), 8192, PAGE_READONLY, U(&old));
	assert_int_equal(old, PAGE_EXECUTE_READ);
	script(w, S_FALSE, true, PAGE_NOACCESS, 0);
	assert_hr(S_FALSE, IHostMemoryManager_VirtualProtect(w->mm, addr, 1, 0xdead, &old));
	expect_call(w, &seen, M_VIRTUALPROTECT, in, U(addr), 1, 0xdead, U(&old));
	assert_int_equal(old, PAGE_NOACCESS);
	old = 0x5555;
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_VirtualProtect(w->mm, addr, 1, PAGE_READWRITE,
								    &old));
	expect_call(w, &seen, M_VIRTUALPROTECT, in, U(addr), 1, PAGE_READWRITE, U(&old));
	assert_int_equal(old, 0x5555);
	script(w, E_POINTER, false, 0, 0);
	assert_hr(E_POINTER, IHostMemoryManager_VirtualProtect(w->mm, addr, 1, PAGE_READWRITE,
							       NULL));
	expect_call(w, &seen, M_VIRTUALPROTECT, in, U(addr), 1, PAGE_READWRITE, 0);

	/* The caller's buffer and result pointer are the ones the inner manager fills. */
	script(w, S_OK, true, 0xab, sizeof(mbi));
	assert_hr(S_OK, IHostMemoryManager_VirtualQuery(w->mm, addr, &mbi, sizeof(mbi), &got));
	expect_call(w, &seen, M_VIRTUALQUERY, in, U(addr), U(&mbi), sizeof(mbi), U(&got));
	assert_int_equal(got, sizeof(mbi));
	for (i = 0; i < sizeof(mbi); i++) {
		assert_int_equal(((unsigned char *)&mbi)[i], 0xab);
	}
	script(w, S_FALSE, true, 0x11, 3);
	assert_hr(S_FALSE, IHostMemoryManager_VirtualQuery(w->mm, addr, odd, sizeof(odd), &got));
	expect_call(w, &seen, M_VIRTUALQUERY, in, U(addr), U(odd), sizeof(odd), U(&got));
	assert_int_equal(got, 3);
	assert_int_equal(odd[6], 0x11);
	got = 77;
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_VirtualQuery(w->mm, NULL, NULL, 0, &got));
	expect_call(w, &seen, M_VIRTUALQUERY, in, 0, 0, 0, U(&got));
	assert_int_equal(got, 77);
	script(w, E_POINTER, false, 0, 0);
	assert_hr(E_POINTER, IHostMemoryManager_VirtualQuery(w->mm, addr, &mbi, sizeof(mbi), NULL));
	expect_call(w, &seen, M_VIRTUALQUERY, in, U(addr), U(&mbi), sizeof(mbi), 0);
	expect_no_calls(w, seen);
}

static void test_wrap_memory_load_and_address_space(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	void *addr = (void *)(uintptr_t)0x7e0000010000ull;
	DWORD load = 0;
	SIZE_T avail = 0;
	unsigned seen = 0;

	wrap_ok(w, NULL);
	script(w, S_OK, true, 42, 0x123456789ull);
	assert_hr(S_OK, IHostMemoryManager_GetMemoryLoad(w->mm, &load, &avail));
	expect_call(w, &seen, M_GETMEMORYLOAD, in, U(&load), U(&avail));
	assert_int_equal(load, 42);
	assert_int_equal(avail, 0x123456789ull);
	script(w, S_FALSE, true, 101, 7);
	assert_hr(S_FALSE, IHostMemoryManager_GetMemoryLoad(w->mm, &load, &avail));
	expect_call(w, &seen, M_GETMEMORYLOAD, in, U(&load), U(&avail));
	assert_int_equal(load, 101);
	assert_int_equal(avail, 7);
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_GetMemoryLoad(w->mm, NULL, NULL));
	expect_call(w, &seen, M_GETMEMORYLOAD, in, 0, 0);

	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(w->mm, addr, 1 << 20));
	expect_call(w, &seen, M_NEEDS, in, U(addr), 1 << 20);
	script(w, E_OUTOFMEMORY, false, 0, 0);
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_NeedsVirtualAddressSpace(w->mm, NULL, 0));
	expect_call(w, &seen, M_NEEDS, in, 0, 0);
	script(w, S_FALSE, false, 0, 0);
	assert_hr(S_FALSE, IHostMemoryManager_AcquiredVirtualAddressSpace(w->mm, addr, 65536));
	expect_call(w, &seen, M_ACQUIRED, in, U(addr), 65536);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(w->mm, addr, 65536));
	expect_call(w, &seen, M_ACQUIRED, in, U(addr), 65536);
	/* Twice, and NULL: the inner manager decides. */
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(w->mm, addr, 65536));
	expect_call(w, &seen, M_ACQUIRED, in, U(addr), 65536);
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_AcquiredVirtualAddressSpace(w->mm, NULL, 0));
	expect_call(w, &seen, M_ACQUIRED, in, 0, 0);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(w->mm, addr));
	expect_call(w, &seen, M_RELEASED, in, U(addr));
	script(w, S_FALSE, false, 0, 0);
	assert_hr(S_FALSE, IHostMemoryManager_ReleasedVirtualAddressSpace(w->mm, addr));
	expect_call(w, &seen, M_RELEASED, in, U(addr));
	script(w, HOST_E_INVALIDOPERATION, false, 0, 0);
	assert_hr(HOST_E_INVALIDOPERATION,
		  IHostMemoryManager_ReleasedVirtualAddressSpace(w->mm, (void *)0x1000));
	expect_call(w, &seen, M_RELEASED, in, 0x1000);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(w->mm, NULL));
	expect_call(w, &seen, M_RELEASED, in, 0);
	expect_no_calls(w, seen);
}

/* The options' budgets, and the environment's, are for the inner manager to apply. */
static void test_wrap_no_budgets(void **state)
{
	struct wrap_fixture *w = *state;
	clrmemtrace_options o = policy_options();
	IHostMemoryManager *in = &w->inner.iface;
	IHostMalloc *heap = NULL;
	void *p = NULL;
	DWORD load = 0;
	SIZE_T avail = 0;
	unsigned seen = 0;
	int tasks;

	o.address_space_budget = 65536;
	setenv("CLRMEMTRACE_COMMIT_BUDGET", "64K", 1);
	wrap_ok(w, &o);
	policy_env_clear(NULL);
	tasks = count_tasks();

	script(w, S_OK, true, 0x7e0000000000ull, 0);
	assert_hr(S_OK, IHostMemoryManager_VirtualAlloc(w->mm, NULL, (SIZE_T)1 << 30,
							MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
							eTaskCritical, &p));
	expect_call(w, &seen, M_VIRTUALALLOC, in, 0, (SIZE_T)1 << 30, MEM_RESERVE | MEM_COMMIT,
		    PAGE_READWRITE, eTaskCritical, U(&p));
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(w->mm, NULL, (SIZE_T)1 << 40));
	expect_call(w, &seen, M_NEEDS, in, 0, (SIZE_T)1 << 40);
	/* The load is the inner manager's, not the budget's. */
	script(w, S_OK, true, 3, 0x7777777);
	assert_hr(S_OK, IHostMemoryManager_GetMemoryLoad(w->mm, &load, &avail));
	expect_call(w, &seen, M_GETMEMORYLOAD, in, U(&load), U(&avail));
	assert_int_equal(load, 3);
	assert_int_equal(avail, 0x7777777);
	script(w, S_OK, true, U(&w->heap.iface), 0);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(w->mm, 0, &heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, 0, U(&heap));
	script(w, S_OK, true, 0x7e0000100000ull, 0);
	assert_hr(S_OK, IHostMalloc_Alloc(heap, (SIZE_T)1 << 30, eTaskCritical, &p));
	expect_call(w, &seen, H_ALLOC, &w->heap.iface, (SIZE_T)1 << 30, eTaskCritical, U(&p));
	assert_int_equal(IHostMalloc_Release(heap), 0);
	/* No monitor of its own: the inner manager reports memory. */
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(w->mm,
									      &w->cb[0].iface));
	expect_call0(w, &seen, M_REGISTER, in);
	assert_int_equal(count_tasks(), tasks);
	expect_no_calls(w, seen);
}

/* ---------- Heaps ---------- */

static void test_wrap_heap_forwarded(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	IHostMalloc *fh = &w->heap.iface, *heap = NULL, *again = NULL;
	static char file[] = "gc.cpp";
	void *p = NULL, *ppv = NULL;
	unsigned seen = 0;

	wrap_ok(w, NULL);
	script(w, S_OK, true, U(fh), 0);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(w->mm, MALLOC_THREADSAFE | MALLOC_EXECUTABLE,
							&heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, MALLOC_THREADSAFE | MALLOC_EXECUTABLE, U(&heap));
	/* A heap of the decorator's, holding the inner heap's reference and one on the decorator. */
	assert_non_null(heap);
	assert_ptr_not_equal(heap, fh);
	assert_int_equal(w->heap.refs, 2);
	assert_int_equal(IHostMemoryManager_AddRef(w->mm), 3);
	assert_int_equal(IHostMemoryManager_Release(w->mm), 2);

	script(w, S_OK, true, 0x7e0000100010ull, 0);
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 100, eAppDomainCritical, &p));
	expect_call(w, &seen, H_ALLOC, fh, 100, eAppDomainCritical, U(&p));
	assert_ptr_equal(p, (void *)0x7e0000100010ull);
	script(w, S_FALSE, true, 0x7e0000100020ull, 0);
	assert_hr(S_FALSE, IHostMalloc_DebugAlloc(heap, 0, eProcessCritical, file, 4242, &p));
	expect_call(w, &seen, H_DEBUGALLOC, fh, 0, eProcessCritical, U(file), 4242, U(&p));
	assert_ptr_equal(p, (void *)0x7e0000100020ull);
	p = (void *)(uintptr_t)0xfeedface;
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMalloc_Alloc(heap, (SIZE_T)-1, (EMemoryCriticalLevel)9, &p));
	expect_call(w, &seen, H_ALLOC, fh, (SIZE_T)-1, 9, U(&p));
	assert_ptr_equal(p, (void *)(uintptr_t)0xfeedface);
	script(w, E_OUTOFMEMORY, true, 0, 0);
	assert_hr(E_OUTOFMEMORY, IHostMalloc_DebugAlloc(heap, 64, eTaskCritical, NULL, -1, &p));
	expect_call(w, &seen, H_DEBUGALLOC, fh, 64, eTaskCritical, 0, U(-1), U(&p));
	assert_null(p);
	script(w, E_POINTER, false, 0, 0);
	assert_hr(E_POINTER, IHostMalloc_Alloc(heap, 16, eTaskCritical, NULL));
	expect_call(w, &seen, H_ALLOC, fh, 16, eTaskCritical, 0);

	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMalloc_Free(heap, (void *)0x7e0000100010ull));
	expect_call(w, &seen, H_FREE, fh, 0x7e0000100010ull);
	/* Freed twice, never allocated, NULL: the inner heap's answers, unchanged. */
	script(w, HOST_E_INVALIDOPERATION, false, 0, 0);
	assert_hr(HOST_E_INVALIDOPERATION, IHostMalloc_Free(heap, (void *)0x7e0000100010ull));
	expect_call(w, &seen, H_FREE, fh, 0x7e0000100010ull);
	script(w, S_FALSE, false, 0, 0);
	assert_hr(S_FALSE, IHostMalloc_Free(heap, (void *)0x1234));
	expect_call(w, &seen, H_FREE, fh, 0x1234);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMalloc_Free(heap, NULL));
	expect_call(w, &seen, H_FREE, fh, 0);
	/* A block the inner heap refused to free is still the caller's: its Free goes through. */
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMalloc_Free(heap, (void *)0x7e0000100020ull));
	expect_call(w, &seen, H_FREE, fh, 0x7e0000100020ull);
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMalloc_Free(heap, (void *)0x7e0000100020ull));
	expect_call(w, &seen, H_FREE, fh, 0x7e0000100020ull);

	/* The wrapped heap answers QueryInterface and counts references itself. */
	assert_hr(S_OK, IHostMalloc_QueryInterface(heap, &IID_IHostMalloc, (void **)&again));
	assert_ptr_equal(again, heap);
	assert_hr(S_OK, IHostMalloc_QueryInterface(heap, &IID_IUnknown, &ppv));
	assert_ptr_equal(ppv, heap);
	ppv = (void *)(uintptr_t)0xdeadbeef;
	assert_hr(E_NOINTERFACE, IHostMalloc_QueryInterface(heap, &IID_IHostMemoryManager, &ppv));
	assert_null(ppv);
	assert_int_equal(IHostMalloc_Release(heap), 2);
	assert_int_equal(IHostMalloc_Release(heap), 1);
	assert_int_equal(w->heap.refs, 2);
	expect_no_calls(w, seen);

	/* The heap keeps the decorator alive after the runtime's own reference is gone. */
	assert_int_equal(IHostMemoryManager_Release(w->mm), 1);
	w->mm = NULL;
	assert_int_equal(w->inner.refs, 2);
	script(w, S_OK, true, 0x7e0000100030ull, 0);
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 8, eTaskCritical, &p));
	expect_call(w, &seen, H_ALLOC, fh, 8, eTaskCritical, U(&p));
	/* The last release lets go of the inner heap, then of the decorator and the inner manager. */
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(w->heap.refs, 1);
	assert_int_equal(w->inner.refs, 1);
	expect_no_calls(w, seen);
}

static void test_wrap_create_malloc_results(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	IHostMalloc *fh = &w->heap.iface, *heap;
	void *p = NULL;
	unsigned seen = 0;

	wrap_ok(w, NULL);
	/* A failure with the out-parameter written, and one with it left alone. */
	heap = (IHostMalloc *)(uintptr_t)0xdeadbeef;
	script(w, E_OUTOFMEMORY, true, 0, 0);
	assert_hr(E_OUTOFMEMORY, IHostMemoryManager_CreateMalloc(w->mm, 0, &heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, 0, U(&heap));
	assert_null(heap);
	heap = (IHostMalloc *)(uintptr_t)0xdeadbeef;
	script(w, HOST_E_TIMEOUT, false, 0, 0);
	assert_hr(HOST_E_TIMEOUT, IHostMemoryManager_CreateMalloc(w->mm, 0x80, &heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, 0x80, U(&heap));
	assert_ptr_equal(heap, (void *)(uintptr_t)0xdeadbeef);
	/* NULL goes through as NULL. */
	script(w, E_POINTER, false, 0, 0);
	assert_hr(E_POINTER, IHostMemoryManager_CreateMalloc(w->mm, 1, NULL));
	expect_call(w, &seen, M_CREATEMALLOC, in, 1, 0);
	/* Success with no heap: nothing to wrap, and nothing made up. */
	heap = (IHostMalloc *)(uintptr_t)0xdeadbeef;
	script(w, S_OK, true, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(w->mm, 0, &heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, 0, U(&heap));
	assert_null(heap);
	/* S_FALSE is success too: the heap is wrapped, so its calls are traced like the others. */
	script(w, S_FALSE, true, U(fh), 0);
	assert_hr(S_FALSE, IHostMemoryManager_CreateMalloc(w->mm, 0, &heap));
	expect_call(w, &seen, M_CREATEMALLOC, in, 0, U(&heap));
	assert_non_null(heap);
	assert_ptr_not_equal(heap, fh);
	script(w, S_OK, true, 0x7e0000100040ull, 0);
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 24, eTaskCritical, &p));
	expect_call(w, &seen, H_ALLOC, fh, 24, eTaskCritical, U(&p));
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(w->heap.refs, 1);
	expect_no_calls(w, seen);
}

/* ---------- Notifications ---------- */

static ICLRMemoryNotificationCallback *registered(struct wrap_fixture *w)
{
	ICLRMemoryNotificationCallback *r;

	pthread_mutex_lock(&w->inner.lock);
	r = w->inner.registered;
	pthread_mutex_unlock(&w->inner.lock);
	return r;
}

struct notifier {
	ICLRMemoryNotificationCallback *relay;
	EMemoryAvailable level;
	HRESULT hr;
	pid_t tid;
};

/* The inner manager notifies from a thread of its own, as a host's monitor would. */
static void *notify_thread(void *arg)
{
	struct notifier *n = arg;

	n->tid = current_tid();
	n->hr = n->relay->lpVtbl->OnMemoryNotification(n->relay, n->level);
	return NULL;
}

static HRESULT notify_from_thread(ICLRMemoryNotificationCallback *relay, EMemoryAvailable level,
				  pid_t *tid)
{
	struct notifier n = { .relay = relay, .level = level };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, notify_thread, &n), 0);
	pthread_join(t, NULL);
	if (tid) {
		*tid = n.tid;
	}
	return n.hr;
}

static void test_wrap_notification_relay(void **state)
{
	struct wrap_fixture *w = *state;
	IHostMemoryManager *in = &w->inner.iface;
	struct test_cb *cb = &w->cb[0], *cb2 = &w->cb[1];
	ICLRMemoryNotificationCallback *relay, *again = NULL;
	void *ppv = NULL;
	unsigned seen = 0;
	pid_t tid = 0;
	int tasks;

	wrap_ok(w, NULL);
	tasks = count_tasks();
	/* The inner manager is given the decorator's relay, and its answer comes back. */
	script(w, S_FALSE, false, 0, 0);
	assert_hr(S_FALSE, IHostMemoryManager_RegisterMemoryNotificationCallback(w->mm, &cb->iface));
	expect_call0(w, &seen, M_REGISTER, in);
	relay = registered(w);
	assert_non_null(relay);
	assert_int_equal(w->inner.calls[0].arg[0], U(relay));
	assert_ptr_not_equal(relay, &cb->iface);
	assert_true(test_cb_refs(cb) >= 2);
	/* No thread of the decorator's own. */
	assert_int_equal(count_tasks(), tasks);

	/* The relay is a COM object of its own. */
	assert_hr(S_OK, relay->lpVtbl->QueryInterface(relay, &IID_ICLRMemoryNotificationCallback,
						      (void **)&again));
	assert_ptr_equal(again, relay);
	again->lpVtbl->Release(again);
	assert_hr(S_OK, relay->lpVtbl->QueryInterface(relay, &IID_IUnknown, &ppv));
	assert_ptr_equal(ppv, relay);
	relay->lpVtbl->Release(relay);
	ppv = (void *)(uintptr_t)0xdeadbeef;
	assert_hr(E_NOINTERFACE, relay->lpVtbl->QueryInterface(relay, &IID_IHostMemoryManager, &ppv));
	assert_null(ppv);

	/* A notification from the inner manager reaches the runtime's callback, on its thread. */
	cb->answer = S_FALSE;
	assert_hr(S_FALSE, notify_from_thread(relay, eMemoryAvailableLow, &tid));
	test_cb_expect(cb, eMemoryAvailableLow);
	assert_int_equal(test_cb_get(cb, 0).tid, tid);
	cb->answer = HOST_E_TIMEOUT;
	assert_hr(HOST_E_TIMEOUT, relay->lpVtbl->OnMemoryNotification(relay,
								      eMemoryAvailableHigh));
	test_cb_expect(cb, eMemoryAvailableLow, eMemoryAvailableHigh);

	/* A second registration replaces the first and releases it. */
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(w->mm, &cb2->iface));
	expect_call(w, &seen, M_REGISTER, in, U(relay));
	assert_ptr_equal(registered(w), relay);
	assert_int_equal(test_cb_refs(cb), 1);
	assert_hr(S_OK, notify_from_thread(relay, eMemoryAvailableNeutral, NULL));
	test_cb_expect(cb2, eMemoryAvailableNeutral);
	test_cb_expect(cb, eMemoryAvailableLow, eMemoryAvailableHigh);
	/* NULL is refused by the decorator and changes nothing. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_RegisterMemoryNotificationCallback(w->mm, NULL));
	expect_no_calls(w, seen);
	assert_hr(S_OK, notify_from_thread(relay, eMemoryAvailableLow, NULL));
	test_cb_expect(cb2, eMemoryAvailableNeutral, eMemoryAvailableLow);

	/* Once the decorator is gone, the relay the inner manager holds drops notifications. */
	release_last(w->mm);
	w->mm = NULL;
	assert_int_equal(test_cb_refs(cb2), 1);
	assert_int_equal(w->inner.refs, 1);
	assert_hr(S_OK, notify_from_thread(relay, eMemoryAvailableHigh, NULL));
	test_cb_expect(cb2, eMemoryAvailableNeutral, eMemoryAvailableLow);
	expect_no_calls(w, seen);
	/* The teardown has the inner manager release the relay: LeakSanitizer sees it freed. */
}

/* The runtime's callback may release the last reference to the decorator while relayed to. */
static void release_decorator_hook(struct test_cb *cb, int level)
{
	IHostMemoryManager **mm = cb->ctx;

	(void)level;
	if (*mm) {
		assert_int_equal(IHostMemoryManager_Release(*mm), 0);
		*mm = NULL;
	}
}

static void test_wrap_callback_releases_decorator(void **state)
{
	struct wrap_fixture *w = *state;
	struct test_cb *cb = &w->cb[0];
	ICLRMemoryNotificationCallback *relay;

	wrap_ok(w, NULL);
	cb->hook = release_decorator_hook;
	cb->ctx = &w->mm;
	script(w, S_OK, false, 0, 0);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(w->mm, &cb->iface));
	relay = registered(w);
	assert_non_null(relay);
	assert_hr(S_OK, notify_from_thread(relay, eMemoryAvailableLow, NULL));
	assert_null(w->mm);
	assert_int_equal(w->inner.refs, 1);
	assert_hr(S_OK, notify_from_thread(relay, eMemoryAvailableLow, NULL));
	test_cb_expect(cb, eMemoryAvailableLow);
}

#define WRAP(fn) cmocka_unit_test_setup_teardown(fn, wrap_setup, wrap_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		WRAP(test_wrap_arguments),
		WRAP(test_wrap_identity_and_references),
		WRAP(test_wrap_virtual_alloc),
		WRAP(test_wrap_virtual_free_protect_query),
		WRAP(test_wrap_memory_load_and_address_space),
		WRAP(test_wrap_no_budgets),
		WRAP(test_wrap_heap_forwarded),
		WRAP(test_wrap_create_malloc_results),
		WRAP(test_wrap_notification_relay),
		WRAP(test_wrap_callback_releases_decorator),
	};
	int rc;

	policy_init();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
#if defined(POLICY_HAVE_URCU_BP)
	urcu_bp_barrier();
#endif
	return rc;
}
