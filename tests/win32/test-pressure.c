/* SPDX-License-Identifier: MIT */
/*
 * Memory notifications on Windows (src/win32/pressure_win32.c under
 * monitor.c): the monitor thread waits on the low-memory resource
 * notification and its wake-up event, and delivers eMemoryAvailableLow and
 * eMemoryAvailableHigh as a commit budget fills and empties.
 */
#include <clrmemtrace.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct callback {
	ICLRMemoryNotificationCallback iface;
	LONG refs;
	volatile LONG deliveries[4]; /* by EMemoryAvailable */
};

static struct callback *impl(ICLRMemoryNotificationCallback *iface)
{
	return (struct callback *)((char *)iface - offsetof(struct callback, iface));
}

static HRESULT STDMETHODCALLTYPE cb_QueryInterface(ICLRMemoryNotificationCallback *iface,
						   REFIID riid, void **ppv)
{
	if (!ppv) {
		return E_POINTER;
	}
	*ppv = NULL;
	if (IsEqualIID(riid, &IID_IUnknown) ||
	    IsEqualIID(riid, &IID_ICLRMemoryNotificationCallback)) {
		InterlockedIncrement(&impl(iface)->refs);
		*ppv = iface;
		return S_OK;
	}
	return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_AddRef(ICLRMemoryNotificationCallback *iface)
{
	return (ULONG)InterlockedIncrement(&impl(iface)->refs);
}

static ULONG STDMETHODCALLTYPE cb_Release(ICLRMemoryNotificationCallback *iface)
{
	return (ULONG)InterlockedDecrement(&impl(iface)->refs);
}

static HRESULT STDMETHODCALLTYPE cb_OnMemoryNotification(ICLRMemoryNotificationCallback *iface,
							 EMemoryAvailable level)
{
	if ((unsigned)level < 4) {
		InterlockedIncrement(&impl(iface)->deliveries[level]);
	}
	return S_OK;
}

static const ICLRMemoryNotificationCallbackVtbl cb_vtbl = {
	cb_QueryInterface,
	cb_AddRef,
	cb_Release,
	cb_OnMemoryNotification,
};

/* Waits up to five seconds for a delivery of `level`. */
static bool delivered(struct callback *cb, EMemoryAvailable level)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (cb->deliveries[level] > 0) {
			return true;
		}
		Sleep(10);
	}
	return false;
}

/* The system's notification object exists, under Wine too. */
static void test_pressure_resource_notification(void **state)
{
	HANDLE low = CreateMemoryResourceNotification(LowMemoryResourceNotification);
	BOOL is_low = TRUE;

	(void)state;
	assert_non_null(low);
	assert_true(QueryMemoryResourceNotification(low, &is_low));
	CloseHandle(low);
}

/* A commit budget filling and emptying: Low, then High, from the monitor thread. */
static void test_pressure_budget_notifications(void **state)
{
	clrmemtrace_options opts = {
		.size = sizeof(opts),
		.commit_budget = 1 << 20,
		.low_memory_percent = 50,
		.high_memory_percent = 10,
		.poll_interval_ms = 50,
	};
	struct callback cb = { .iface = { &cb_vtbl }, .refs = 1 };
	IHostMemoryManager *mm = NULL;
	void *p = NULL;

	(void)state;
	assert_int_equal(clrmemtrace_create(&opts, &mm), S_OK);
	assert_int_equal(IHostMemoryManager_RegisterMemoryNotificationCallback(mm, &cb.iface),
			 S_OK);
	assert_int_equal(IHostMemoryManager_VirtualAlloc(mm, NULL, 768 << 10,
							 MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE,
							 eTaskCritical, &p),
			 S_OK);
	assert_true(delivered(&cb, eMemoryAvailableLow));
	/* Over the budget: a task-critical commit is refused. */
	assert_int_equal(IHostMemoryManager_VirtualAlloc(mm, NULL, 512 << 10, MEM_COMMIT,
							 PAGE_READWRITE, eTaskCritical,
							 &(void *){ NULL }),
			 E_OUTOFMEMORY);
	assert_int_equal(IHostMemoryManager_VirtualFree(mm, p, 0, MEM_RELEASE), S_OK);
	assert_true(delivered(&cb, eMemoryAvailableHigh));
	/* The last Release stops the monitor and drops its reference on the callback. */
	assert_int_equal(IHostMemoryManager_Release(mm), 0);
	assert_int_equal(cb.refs, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pressure_resource_notification),
		cmocka_unit_test(test_pressure_budget_notifications),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
