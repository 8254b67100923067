/* SPDX-License-Identifier: MIT */
/*
 * The ETW backend (src/win32/trace_etw.c): the provider registers, every
 * event of the manifest can be written (Wine's EventWrite is a stub that
 * succeeds; EventWriteEx, which Wine does not implement, is never used),
 * the per-event flags follow the level and keywords sessions ask for, and a
 * capture-state request dumps the state. Sessions are simulated by calling
 * the provider's enable callback as ETW would.
 */
#include "trace.h"

#include <evntrace.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define ALL_KEYWORDS 0ull

static void session(ULONG control, UCHAR level, ULONGLONG any, ULONGLONG all)
{
	clrmemtrace__etw_enable_callback(NULL, control, level, any, all, NULL, NULL);
}

static void no_session(void)
{
	session(EVENT_CONTROL_CODE_DISABLE_PROVIDER, 0, 0, 0);
}

/* The first manager registers the provider. */
static void test_etw_registers(void **state)
{
	IHostMemoryManager *mm = NULL;

	(void)state;
	assert_int_equal(clrmemtrace_create(NULL, &mm), S_OK);
	assert_true(clrmemtrace__tracing);
	assert_true(clrmemtrace__etw_handle != 0);
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
}

/* Every descriptor of the generated header can be written, with no data and with its own. */
static void test_etw_every_event_writes(void **state)
{
	unsigned i;

	(void)state;
	for (i = 0; i < CLRMEMTRACE_ETW_COUNT; i++) {
		const EVENT_DESCRIPTOR *d = &clrmemtrace__etw_desc[i];

		assert_int_equal(EventWrite(clrmemtrace__etw_handle, d, 0, NULL), ERROR_SUCCESS);
		assert_int_equal(clrmemtrace__etw_desc[i].Id, i + 1);
		assert_int_equal(clrmemtrace__etw_desc[i].Level, 4);
		assert_true(clrmemtrace__etw_desc[i].Keyword != 0);
	}
}

/* CLRMEMTRACE_TRACE_ON follows the sessions' level and keywords, as EventEnabled would. */
static void test_etw_flags_follow_sessions(void **state)
{
	(void)state;
	no_session();
	assert_false(CLRMEMTRACE_TRACE_ON(virtual_alloc));
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 4, CLRMEMTRACE_ETW_KEYWORD_VIRTUAL_MEMORY, 0);
	assert_true(CLRMEMTRACE_TRACE_ON(virtual_alloc));
	assert_true(CLRMEMTRACE_TRACE_ON(virtual_query));
	assert_false(CLRMEMTRACE_TRACE_ON(malloc_alloc));
	assert_false(CLRMEMTRACE_TRACE_ON(statedump_begin));
	/* Below the events' level (informational): nothing. */
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 3, ALL_KEYWORDS, 0);
	assert_false(CLRMEMTRACE_TRACE_ON(virtual_alloc));
	/* Level 0 and MatchAnyKeyword 0: everything. */
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 0, ALL_KEYWORDS, 0);
	assert_true(CLRMEMTRACE_TRACE_ON(virtual_alloc));
	assert_true(CLRMEMTRACE_TRACE_ON(malloc_free));
	assert_true(CLRMEMTRACE_TRACE_ON(statedump_request));
	/* MatchAllKeyword: an event needs every bit, and each has one. */
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 5, ALL_KEYWORDS,
		CLRMEMTRACE_ETW_KEYWORD_HEAP | CLRMEMTRACE_ETW_KEYWORD_VIRTUAL_MEMORY);
	assert_false(CLRMEMTRACE_TRACE_ON(malloc_alloc));
	assert_false(CLRMEMTRACE_TRACE_ON(virtual_alloc));
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 5,
		CLRMEMTRACE_ETW_KEYWORD_HEAP | CLRMEMTRACE_ETW_KEYWORD_STATE_DUMP, 0);
	assert_true(CLRMEMTRACE_TRACE_ON(malloc_alloc));
	assert_true(CLRMEMTRACE_TRACE_ON(statedump_block));
	assert_false(CLRMEMTRACE_TRACE_ON(manager_create));
	no_session();
	assert_false(CLRMEMTRACE_TRACE_ON(malloc_alloc));
	assert_false(CLRMEMTRACE_TRACE_ON(statedump_block));
}

/* With every event on, each entry point writes its event (Wine's stub takes them all). */
static void test_etw_traced_calls(void **state)
{
	IHostMemoryManager *mm = NULL;
	IHostMalloc *heap = NULL;
	MEMORY_BASIC_INFORMATION m;
	void *p = NULL, *block = NULL;
	SIZE_T got = 0, avail = 0;
	DWORD old = 0, load = 0;

	(void)state;
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 5, ALL_KEYWORDS, 0);
	assert_int_equal(clrmemtrace_create(NULL, &mm), S_OK);
	assert_int_equal(IHostMemoryManager_VirtualAlloc(mm, NULL, 0x10000, MEM_RESERVE,
							 PAGE_NOACCESS, eTaskCritical, &p),
			 S_OK);
	assert_int_equal(IHostMemoryManager_VirtualAlloc(mm, p, 0x2000, MEM_COMMIT, PAGE_READWRITE,
							 eTaskCritical, &p),
			 S_OK);
	assert_int_equal(IHostMemoryManager_VirtualProtect(mm, p, 0x1000, PAGE_READONLY, &old),
			 S_OK);
	assert_int_equal(IHostMemoryManager_VirtualQuery(mm, p, &m, sizeof(m), &got), S_OK);
	assert_int_equal(IHostMemoryManager_GetMemoryLoad(mm, &load, &avail), S_OK);
	assert_true(load <= 100 && avail > 0);
	assert_int_equal(IHostMemoryManager_NeedsVirtualAddressSpace(mm, NULL, 0x10000), S_OK);
	assert_int_equal(IHostMemoryManager_AcquiredVirtualAddressSpace(mm, (void *)0x10000000,
									0x10000),
			 S_OK);
	assert_int_equal(IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap), S_OK);
	assert_int_equal(IHostMalloc_Alloc(heap, 100, eTaskCritical, &block), S_OK);
	/* A dump while all of it is live: regions, acquired ranges, heaps, blocks. */
	assert_int_equal(clrmemtrace_statedump(), S_OK);
	assert_int_equal(IHostMalloc_Free(heap, block), S_OK);
	assert_int_equal(IHostMalloc_Free(heap, block), HOST_E_INVALIDOPERATION);
	assert_int_equal(IHostMalloc_Release(heap), 0);
	assert_int_equal(IHostMemoryManager_ReleasedVirtualAddressSpace(mm, (void *)0x10000000),
			 S_OK);
	assert_int_equal(IHostMemoryManager_VirtualFree(mm, p, 0x1000, MEM_DECOMMIT), S_OK);
	assert_int_equal(IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE), S_OK);
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
	no_session();
}

/*
 * A capture-state request dumps at once when the StateDump keyword is
 * recorded, and not otherwise; clrmemtrace_statedump() says which.
 */
static void test_etw_capture_state(void **state)
{
	IHostMemoryManager *mm = NULL;

	(void)state;
	no_session();
	assert_int_equal(clrmemtrace_create(NULL, &mm), S_OK);
	assert_int_equal(clrmemtrace_statedump(), S_FALSE);
	__atomic_store_n(&clrmemtrace__dump_seen, 0, __ATOMIC_RELAXED);
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 4, CLRMEMTRACE_ETW_KEYWORD_VIRTUAL_MEMORY, 0);
	session(EVENT_CONTROL_CODE_CAPTURE_STATE, 4, CLRMEMTRACE_ETW_KEYWORD_VIRTUAL_MEMORY, 0);
	assert_int_equal(__atomic_load_n(&clrmemtrace__dump_seen, __ATOMIC_RELAXED), 0);
	session(EVENT_CONTROL_CODE_ENABLE_PROVIDER, 4, CLRMEMTRACE_ETW_KEYWORD_STATE_DUMP, 0);
	session(EVENT_CONTROL_CODE_CAPTURE_STATE, 4, CLRMEMTRACE_ETW_KEYWORD_STATE_DUMP, 0);
	assert_int_equal(__atomic_load_n(&clrmemtrace__dump_seen, __ATOMIC_RELAXED), 1);
	assert_int_equal(clrmemtrace_statedump(), S_OK);
	no_session();
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_etw_registers),
		cmocka_unit_test(test_etw_every_event_writes),
		cmocka_unit_test(test_etw_flags_follow_sessions),
		cmocka_unit_test(test_etw_traced_calls),
		cmocka_unit_test(test_etw_capture_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
