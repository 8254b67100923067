/* SPDX-License-Identifier: MIT */
/*
 * IUnknown on every object the library hands out: QueryInterface, AddRef,
 * Release (COM rules; interface identifiers from clr-hosting-api.md §1.2).
 */
#include "conformance.h"

#include <string.h>
#include <time.h>

/* An interface nobody implements. */
static const IID IID_Unsupported = {
	0x12345678, 0x9abc, 0xdef0, { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef }
};
/*
 * IHostControl (§1.2): a real hosting interface these objects do not
 * implement. (Not named IID_IHostControl: on Windows the SDK's mscoree.h,
 * which clrmemtrace.h includes there, declares that one.)
 */
static const IID iid_host_control = {
	0x02CA073C, 0x7079, 0x4860, { 0x88, 0x0A, 0xC2, 0xF7, 0xA4, 0x49, 0xC9, 0x91 }
};

static void check_iid(const IID *iid, uint32_t d1, uint16_t d2, uint16_t d3,
		      const uint8_t d4[8])
{
	assert_int_equal(iid->Data1, d1);
	assert_int_equal(iid->Data2, d2);
	assert_int_equal(iid->Data3, d3);
	assert_memory_equal(iid->Data4, d4, 8);
}

/* The exported identifiers have the values of the hosting IDL. */
static void test_unknown_iids(void **state)
{
	static const uint8_t unk[8] = { 0xC0, 0, 0, 0, 0, 0, 0, 0x46 };
	static const uint8_t hmm[8] = { 0x9C, 0xDE, 0xD0, 0x42, 0x48, 0xE9, 0xFA, 0x25 };
	static const uint8_t hma[8] = { 0xB2, 0x18, 0x04, 0xE9, 0x10, 0x44, 0x64, 0x79 };
	static const uint8_t cb[8] = { 0xAF, 0x76, 0x6F, 0x42, 0xFC, 0xFC, 0x26, 0x49 };

	(void)state;
	check_iid(&IID_IUnknown, 0x00000000, 0x0000, 0x0000, unk);
	check_iid(&IID_IHostMemoryManager, 0x7BC698D1, 0xF9E3, 0x4460, hmm);
	check_iid(&IID_IHostMalloc, 0x1831991C, 0xCC53, 0x4A31, hma);
	check_iid(&IID_ICLRMemoryNotificationCallback, 0x47EB8E57, 0x0846, 0x4546, cb);
	assert_int_equal(sizeof(GUID), 16);
}

/* IHostMemoryManager::QueryInterface follows the COM rules. */
static void test_unknown_manager_query_interface(void **state)
{
	IHostMemoryManager *mm = *state;
	const IID *refused[] = {
		&IID_IHostMalloc,
		&IID_ICLRMemoryNotificationCallback,
		&iid_host_control,
		&IID_Unsupported,
	};
	void *unk = SENTINEL_PTR, *self = SENTINEL_PTR;
	IID copy;
	size_t i;

	assert_hr(S_OK, IHostMemoryManager_QueryInterface(mm, &IID_IUnknown, &unk));
	assert_ptr_equal(unk, mm);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 3);
	assert_int_equal(IHostMemoryManager_Release(mm), 2);
	assert_hr(S_OK, IHostMemoryManager_QueryInterface(mm, &IID_IHostMemoryManager, &self));
	assert_ptr_equal(self, mm);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 4);
	assert_int_equal(IHostMemoryManager_Release(mm), 3);
	/* Identifiers compare by value, not by address. */
	memcpy(&copy, &IID_IHostMemoryManager, sizeof(copy));
	self = SENTINEL_PTR;
	assert_hr(S_OK, IHostMemoryManager_QueryInterface(mm, &copy, &self));
	assert_ptr_equal(self, mm);
	assert_int_equal(IHostMemoryManager_Release(mm), 3);
	assert_int_equal(IHostMemoryManager_Release(mm), 2);
	assert_int_equal(IHostMemoryManager_Release(mm), 1);

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		void *pv = SENTINEL_PTR;

		assert_hr(E_NOINTERFACE, IHostMemoryManager_QueryInterface(mm, refused[i], &pv));
		assert_null(pv);
	}
	assert_hr(E_POINTER, IHostMemoryManager_QueryInterface(mm, &IID_IUnknown, NULL));
	unk = SENTINEL_PTR;
	assert_hr(E_INVALIDARG, IHostMemoryManager_QueryInterface(mm, NULL, &unk));
	assert_null(unk);
	/* None of the failures took a reference. */
	assert_int_equal(IHostMemoryManager_AddRef(mm), 2);
	assert_int_equal(IHostMemoryManager_Release(mm), 1);
}

/* IHostMalloc::QueryInterface follows them too, for every kind of heap. */
static void test_unknown_heap_query_interface(void **state)
{
	IHostMemoryManager *mm = *state;
	const IID *refused[] = {
		&IID_IHostMemoryManager,
		&IID_ICLRMemoryNotificationCallback,
		&iid_host_control,
		&IID_Unsupported,
	};
	DWORD type;

	for (type = 0; type <= (MALLOC_THREADSAFE | MALLOC_EXECUTABLE); type++) {
		IHostMalloc *heap = NULL;
		void *unk = SENTINEL_PTR, *self = SENTINEL_PTR;
		size_t i;

		assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, type, &heap));
		assert_hr(S_OK, IHostMalloc_QueryInterface(heap, &IID_IUnknown, &unk));
		assert_ptr_equal(unk, heap);
		assert_hr(S_OK, IHostMalloc_QueryInterface(heap, &IID_IHostMalloc, &self));
		assert_ptr_equal(self, heap);
		assert_int_equal(IHostMalloc_AddRef(heap), 4);
		assert_int_equal(IHostMalloc_Release(heap), 3);
		assert_int_equal(IHostMalloc_Release(heap), 2);
		assert_int_equal(IHostMalloc_Release(heap), 1);
		for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
			void *pv = SENTINEL_PTR;

			assert_hr(E_NOINTERFACE, IHostMalloc_QueryInterface(heap, refused[i], &pv));
			assert_null(pv);
		}
		assert_hr(E_POINTER, IHostMalloc_QueryInterface(heap, &IID_IHostMalloc, NULL));
		unk = SENTINEL_PTR;
		assert_hr(E_INVALIDARG, IHostMalloc_QueryInterface(heap, NULL, &unk));
		assert_null(unk);
		assert_int_equal(IHostMalloc_AddRef(heap), 2);
		assert_int_equal(IHostMalloc_Release(heap), 1);
		assert_int_equal(IHostMalloc_Release(heap), 0);
	}
}

/* AddRef and Release return the new count; each heap holds one reference on its manager. */
static void test_unknown_reference_counts(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *a = NULL, *b = NULL;
	ULONG i;

	for (i = 2; i < 10; i++) {
		assert_int_equal(IHostMemoryManager_AddRef(mm), i);
	}
	for (i = 8; i >= 1; i--) {
		assert_int_equal(IHostMemoryManager_Release(mm), i);
	}
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &a));
	assert_int_equal(IHostMemoryManager_AddRef(mm), 3);
	assert_int_equal(IHostMemoryManager_Release(mm), 2);
	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, 0, &b));
	assert_int_equal(IHostMemoryManager_AddRef(mm), 4);
	assert_int_equal(IHostMemoryManager_Release(mm), 3);
	/* A heap's own references do not touch its manager's. */
	assert_int_equal(IHostMalloc_AddRef(a), 2);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 4);
	assert_int_equal(IHostMemoryManager_Release(mm), 3);
	assert_int_equal(IHostMalloc_Release(a), 1);
	/* The heap's last Release drops its reference on the manager. */
	assert_int_equal(IHostMalloc_Release(a), 0);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 3);
	assert_int_equal(IHostMemoryManager_Release(mm), 2);
	assert_int_equal(IHostMalloc_Release(b), 0);
	assert_int_equal(IHostMemoryManager_AddRef(mm), 2);
	assert_int_equal(IHostMemoryManager_Release(mm), 1);
}

/* A heap's last Release gives its memory back to the system. */
static void test_unknown_heap_last_release_frees(void **state)
{
	IHostMemoryManager *mm = *state;
	IHostMalloc *heap = NULL;
	void *large = SENTINEL_PTR, *small = SENTINEL_PTR;
	char perms[5];
	int i;

	assert_hr(S_OK, IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap));
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 1 << 20, eTaskCritical, &large));
	assert_hr(S_OK, IHostMalloc_Alloc(heap, 48, eTaskCritical, &small));
	assert_true(maps_prot_of(large, perms));
	assert_true(maps_prot_of(small, perms));
	assert_int_equal(IHostMalloc_Release(heap), 0);
	/* The mappings go after a grace period, on another thread: wait up to five seconds. */
	for (i = 0; i < 500 && (maps_prot_of(large, perms) || maps_prot_of(small, perms)); i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	assert_false(maps_prot_of(large, perms));
	assert_false(maps_prot_of(small, perms));
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, manager_setup, manager_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_iids),
		TEST(test_unknown_manager_query_interface),
		TEST(test_unknown_heap_query_interface),
		TEST(test_unknown_reference_counts),
		TEST(test_unknown_heap_last_release_frees),
	};

	conformance_init();
	return conformance_done(cmocka_run_group_tests(tests, NULL, NULL));
}
