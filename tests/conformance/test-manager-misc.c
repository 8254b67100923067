/* SPDX-License-Identifier: MIT */
/*
 * The rest of IHostMemoryManager (GetMemoryLoad, the notification callback,
 * the address-space notifications; clr-hosting-api.md §1.3, §1.11) and the
 * library's factory and helpers (DESIGN.md, include/clrmemtrace.h).
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---------- A notification callback that counts its references ---------- */

struct test_callback {
	ICLRMemoryNotificationCallback iface;
	ULONG refs;
	int notifications;
};

static struct test_callback *impl_from_callback(ICLRMemoryNotificationCallback *iface)
{
	return (struct test_callback *)((char *)iface - offsetof(struct test_callback, iface));
}

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *iface,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (memcmp(riid, &IID_IUnknown, sizeof(IID)) == 0 ||
	    memcmp(riid, &IID_ICLRMemoryNotificationCallback, sizeof(IID)) == 0) {
		iface->lpVtbl->AddRef(iface);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *iface)
{
	return ++impl_from_callback(iface)->refs;
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *iface)
{
	return --impl_from_callback(iface)->refs;
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *iface,
							 EMemoryAvailable level)
{
	(void)level;
	impl_from_callback(iface)->notifications++;
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl callback_vtbl = {
	cb_QueryInterface,
	cb_AddRef,
	cb_Release,
	cb_OnMemoryNotification,
};

static void callback_init(struct test_callback *cb)
{
	cb->iface.lpVtbl = &callback_vtbl;
	cb->refs = 1;
	cb->notifications = 0;
}

/* ---------- GetMemoryLoad ---------- */

#if defined(_WIN32)
/* The OS's own figure (Wine happens to let /proc/meminfo be opened; Windows does not). */
static uint64_t mem_total_bytes(void)
{
	MEMORYSTATUSEX ms = { .dwLength = sizeof(ms) };

	assert_true(GlobalMemoryStatusEx(&ms));
	return ms.ullTotalPhys;
}
#else
static uint64_t mem_total_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long long kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
			break;
		}
	}
	fclose(f);
	assert_true(kb > 0);
	return (uint64_t)kb * 1024;
}
#endif

static void test_misc_memory_load(void **state)
{
	IHostMemoryManager *mm = *state;
	DWORD load = SENTINEL_DWORD;
	SIZE_T avail = SENTINEL_SIZE;
	int i;

	for (i = 0; i < 3; i++) {
		load = SENTINEL_DWORD;
		avail = SENTINEL_SIZE;
		assert_hr(S_OK, IHostMemoryManager_GetMemoryLoad(mm, &load, &avail));
		assert_true(load <= 100);
		assert_true(avail > 0);
		assert_true(avail != SENTINEL_SIZE);
		assert_true((uint64_t)avail <= mem_total_bytes());
	}
	load = SENTINEL_DWORD;
	assert_hr(E_POINTER, IHostMemoryManager_GetMemoryLoad(mm, &load, NULL));
	assert_int_equal(load, 0);
	avail = SENTINEL_SIZE;
	assert_hr(E_POINTER, IHostMemoryManager_GetMemoryLoad(mm, NULL, &avail));
	assert_int_equal(avail, 0);
	assert_hr(E_POINTER, IHostMemoryManager_GetMemoryLoad(mm, NULL, NULL));
}

/* ---------- RegisterMemoryNotificationCallback ---------- */

static void test_misc_callback_null(void **state)
{
	IHostMemoryManager *mm = *state;

	assert_hr(E_INVALIDARG, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, NULL));
}

/* The manager holds one reference on the registered callback, and drops a replaced one. */
static void test_misc_callback_references(void **state)
{
	IHostMemoryManager *mm = NULL;
	struct test_callback a, b;

	(void)state;
	callback_init(&a);
	callback_init(&b);
	assert_hr(S_OK, clrmemtrace_create(NULL, &mm));
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &a.iface));
	assert_int_equal(a.refs, 2);
	/* A failed registration keeps the current callback. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, NULL));
	assert_int_equal(a.refs, 2);
	/* Registering another callback replaces the first one. */
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &b.iface));
	assert_int_equal(a.refs, 1);
	assert_int_equal(b.refs, 2);
	/* Registering the same callback again keeps exactly one reference. */
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &b.iface));
	assert_int_equal(b.refs, 2);
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &a.iface));
	assert_int_equal(a.refs, 2);
	assert_int_equal(b.refs, 1);
	/* Other references on the manager keep the callback registered. */
	assert_int_equal(IHostMemoryManager_AddRef(mm), 2);
	assert_int_equal(IHostMemoryManager_Release(mm), 1);
	assert_int_equal(a.refs, 2);
	/* The manager's destruction releases it. */
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
	assert_int_equal(a.refs, 1);
	assert_int_equal(b.refs, 1);
}

/* A heap keeps the manager, and so its callback, alive. */
static void test_misc_callback_outlives_manager_reference(void **state)
{
	IHostMemoryManager *mm = NULL;
	IHostMalloc *heap = NULL;
	struct test_callback cb;

	(void)state;
	callback_init(&cb);
	assert_hr(S_OK, clrmemtrace_create(NULL, &mm));
	assert_hr(S_OK, IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface));
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	assert_int_equal(IHostMemoryManager_Release(mm), 1);
	assert_int_equal(cb.refs, 2);
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(cb.refs, 1);
}

/* ---------- Address space the runtime maps itself ---------- */

static void test_misc_needs_address_space(void **state)
{
	IHostMemoryManager *mm = *state;

	/* The runtime may want a mapping anywhere. */
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 1 << 20));
	assert_hr(S_OK, IHostMemoryManager_NeedsVirtualAddressSpace(mm, (void *)0x10000000, page));
	assert_hr(E_INVALIDARG, IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 0));
	assert_hr(E_INVALIDARG,
		  IHostMemoryManager_NeedsVirtualAddressSpace(mm, (void *)(UINTPTR_MAX - page),
							      2 * page));
}

static void test_misc_acquired_released_address_space(void **state)
{
	IHostMemoryManager *mm = *state;
	char *view = mmap(NULL, 4 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *many[40];
	size_t i;

	assert_true(view != MAP_FAILED);
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, NULL, page));
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, view, 0));
	assert_hr(E_INVALIDARG,
		  IHostMemoryManager_AcquiredVirtualAddressSpace(mm, (void *)(UINTPTR_MAX - page),
								 2 * page));
	assert_hr(HOST_E_INVALIDOPERATION,
		  IHostMemoryManager_ReleasedVirtualAddressSpace(mm, view));
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, view, 4 * page));
	/* The same start again, before its release. */
	assert_hr(E_INVALIDARG, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, view, page));
	assert_hr(E_INVALIDARG, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, NULL));
	assert_hr(HOST_E_INVALIDOPERATION,
		  IHostMemoryManager_ReleasedVirtualAddressSpace(mm, view + page));
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, view));
	assert_hr(HOST_E_INVALIDOPERATION,
		  IHostMemoryManager_ReleasedVirtualAddressSpace(mm, view));
	/* Acquired again after its release. */
	assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, view, 4 * page));
	assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, view));

	/* Many ranges at once, released in another order. */
	for (i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
		many[i] = (char *)0x100000000ull + i * GRANULARITY;
		assert_hr(S_OK, IHostMemoryManager_AcquiredVirtualAddressSpace(mm, many[i],
									       GRANULARITY));
	}
	for (i = 0; i < sizeof(many) / sizeof(many[0]); i += 2) {
		assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, many[i]));
	}
	for (i = 1; i < sizeof(many) / sizeof(many[0]); i += 2) {
		assert_hr(S_OK, IHostMemoryManager_ReleasedVirtualAddressSpace(mm, many[i]));
	}
	for (i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
		assert_hr(HOST_E_INVALIDOPERATION,
			  IHostMemoryManager_ReleasedVirtualAddressSpace(mm, many[i]));
	}
	assert_int_equal(munmap(view, 4 * page), 0);
}

/* ---------- clrmemtrace_create ---------- */

union options_buffer {
	clrmemtrace_options o;
	unsigned char bytes[4097];
};

static void create_ok(const clrmemtrace_options *o)
{
	IHostMemoryManager *mm = SENTINEL_PTR;

	assert_hr(S_OK, clrmemtrace_create(o, &mm));
	assert_non_null(mm);
	assert_true(mm != SENTINEL_PTR);
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
}

static void create_fails(const clrmemtrace_options *o, HRESULT hr)
{
	IHostMemoryManager *mm = SENTINEL_PTR;

	assert_hr(hr, clrmemtrace_create(o, &mm));
	assert_null(mm);
}

static void test_misc_create_defaults(void **state)
{
	clrmemtrace_options o;
	IHostMemoryManager *mm = NULL;
	void *p;

	(void)state;
	assert_hr(E_POINTER, clrmemtrace_create(NULL, NULL));
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	assert_hr(E_POINTER, clrmemtrace_create(&o, NULL));
	create_ok(NULL);
	create_ok(&o);
	/* A manager from defaults works. */
	assert_hr(S_OK, clrmemtrace_create(NULL, &mm));
	p = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	release_ok(mm, p);
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
}

static void test_misc_create_size(void **state)
{
	static union options_buffer buf;

	(void)state;
	memset(&buf, 0, sizeof(buf));
	buf.o.size = 0;
	create_fails(&buf.o, E_INVALIDARG);
	buf.o.size = sizeof(size_t) - 1;
	create_fails(&buf.o, E_INVALIDARG);
	buf.o.size = 4097;
	create_fails(&buf.o, E_INVALIDARG);
	buf.o.size = (size_t)-1;
	create_fails(&buf.o, E_INVALIDARG);
	/* Fields past `size` take their defaults, whatever the bytes there. */
	buf.o.size = sizeof(size_t);
	buf.o.flags = 0xffffffffu;
	buf.o.name = (const char *)(uintptr_t)1;
	create_ok(&buf.o);
	buf.o.size = offsetof(clrmemtrace_options, flags) + sizeof(buf.o.flags);
	buf.o.flags = CLRMEMTRACE_FLAG_NO_TRACE;
	create_ok(&buf.o);
	buf.o.flags = 0x80u;
	create_fails(&buf.o, E_INVALIDARG);
	/* A newer caller's larger struct: fine while the unknown bytes are zero. */
	memset(&buf, 0, sizeof(buf));
	buf.o.size = 4096;
	create_ok(&buf.o);
	buf.o.size = sizeof(clrmemtrace_options) + 8;
	create_ok(&buf.o);
	buf.bytes[sizeof(clrmemtrace_options) + 7] = 1;
	create_fails(&buf.o, E_INVALIDARG);
	buf.o.size = sizeof(clrmemtrace_options) + 7;
	create_ok(&buf.o);
	buf.bytes[sizeof(clrmemtrace_options) + 7] = 0;
	buf.bytes[4095] = 0x80;
	buf.o.size = 4096;
	create_fails(&buf.o, E_INVALIDARG);
}

static void test_misc_create_flags_and_name(void **state)
{
	clrmemtrace_options o;
	char name[300];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.flags = CLRMEMTRACE_FLAG_NO_TRACE;
	create_ok(&o);
	o.flags = CLRMEMTRACE_FLAG_NO_TRACE | 0x2;
	create_fails(&o, E_INVALIDARG);
	o.flags = 0x80000000u;
	create_fails(&o, E_INVALIDARG);
	o.flags = 0;
	o.name = "";
	create_ok(&o);
	o.name = "conformance";
	create_ok(&o);
	memset(name, 'n', sizeof(name));
	name[255] = '\0';
	o.name = name;
	create_ok(&o);
	name[255] = 'n';
	name[256] = '\0';
	create_fails(&o, E_INVALIDARG);
	name[299] = '\0';
	create_fails(&o, E_INVALIDARG);
}

/* The name is copied: the caller's buffer may go away. */
static void test_misc_create_name_copied(void **state)
{
	clrmemtrace_options o;
	IHostMemoryManager *mm = NULL;
	char *name = strdup("transient");
	void *p;

	(void)state;
	assert_non_null(name);
	memset(&o, 0, sizeof(o));
	o.size = sizeof(o);
	o.name = name;
	assert_hr(S_OK, clrmemtrace_create(&o, &mm));
	memset(name, 'x', strlen(name));
	free(name);
	p = alloc_ok(mm, NULL, page, MEM_COMMIT, PAGE_READWRITE);
	release_ok(mm, p);
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
}

/* Two managers are independent: each treats the other's memory as foreign. */
static void test_misc_managers_independent(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMemoryManager *mm2 = NULL;
	char *addr = alloc_ok(mm, NULL, 4 * page, MEM_RESERVE, PAGE_NOACCESS);
	MEMORY_BASIC_INFORMATION m;

	assert_hr(S_OK, clrmemtrace_create(NULL, &mm2));
	assert_hr(HR_INVALID_ADDRESS, IHostMemoryManager_VirtualFree(mm2, addr, 0, MEM_RELEASE));
	alloc_fails(mm2, addr, page, MEM_COMMIT, PAGE_READWRITE, HR_INVALID_ADDRESS);
	protect_fails(mm2, addr, page, PAGE_READWRITE, HR_INVALID_ADDRESS);
	/* Foreign PROT_NONE anonymous memory reads as reserved. */
	query(mm2, addr, &m);
	check_mbi(&m, addr, addr, PAGE_NOACCESS, 4 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	check_query(mm, addr, addr, addr, PAGE_NOACCESS, 4 * page, MEM_RESERVE, 0, MEM_PRIVATE);
	assert_int_equal(IHostMemoryManager_Release(mm2), 0);
	release_ok(mm, addr);
}

/* ---------- Names and version ---------- */

static void test_misc_hresult_names(void **state)
{
	(void)state;
	assert_string_equal(clrmemtrace_hresult_name(S_OK), "S_OK");
	assert_string_equal(clrmemtrace_hresult_name(E_OUTOFMEMORY), "E_OUTOFMEMORY");
	assert_string_equal(clrmemtrace_hresult_name(E_POINTER), "E_POINTER");
	assert_string_equal(clrmemtrace_hresult_name(E_NOINTERFACE), "E_NOINTERFACE");
	/* HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER) is E_INVALIDARG. */
	assert_int_equal((uint32_t)HR_INVALID_PARAMETER, (uint32_t)E_INVALIDARG);
	assert_string_equal(clrmemtrace_hresult_name(HR_INVALID_PARAMETER), "E_INVALIDARG");
	assert_string_equal(clrmemtrace_hresult_name(HR_INVALID_ADDRESS),
			    "HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)");
	assert_string_equal(clrmemtrace_hresult_name(HR_NOACCESS),
			    "HRESULT_FROM_WIN32(ERROR_NOACCESS)");
	assert_string_equal(clrmemtrace_hresult_name(HR_BAD_LENGTH),
			    "HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)");
	assert_string_equal(clrmemtrace_hresult_name(HOST_E_INVALIDOPERATION),
			    "HOST_E_INVALIDOPERATION");
	assert_string_equal(clrmemtrace_hresult_name(HOST_E_CLRNOTAVAILABLE),
			    "HOST_E_CLRNOTAVAILABLE");
	assert_string_equal(clrmemtrace_hresult_name((HRESULT)0x80041234u), "UNKNOWN");
	assert_string_equal(clrmemtrace_hresult_name((HRESULT)2), "UNKNOWN");
	/* The name is static: the same pointer each time. */
	assert_ptr_equal(clrmemtrace_hresult_name(S_OK), clrmemtrace_hresult_name(S_OK));
}

static void test_misc_version(void **state)
{
	char want[32];

	(void)state;
	snprintf(want, sizeof(want), "%d.%d.%d", CLRMEMTRACE_VERSION_MAJOR,
		 CLRMEMTRACE_VERSION_MINOR, CLRMEMTRACE_VERSION_PATCH);
	assert_string_equal(clrmemtrace_version(), want);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_misc_memory_load),
		TEST(test_misc_callback_null),
		cmocka_unit_test(test_misc_callback_references),
		cmocka_unit_test(test_misc_callback_outlives_manager_reference),
		TEST(test_misc_needs_address_space),
		TEST(test_misc_acquired_released_address_space),
		cmocka_unit_test(test_misc_create_defaults),
		cmocka_unit_test(test_misc_create_size),
		cmocka_unit_test(test_misc_create_flags_and_name),
		cmocka_unit_test(test_misc_create_name_copied),
		TEST(test_misc_managers_independent),
		cmocka_unit_test(test_misc_hresult_names),
		cmocka_unit_test(test_misc_version),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
