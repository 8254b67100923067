/* SPDX-License-Identifier: MIT */
/*
 * Windows start-up and system facts: the page size and the user address
 * range from GetSystemInfo, a monotonic clock from the performance counter,
 * and the memory load from GlobalMemoryStatusEx.
 */
#include "os_win32.h"

struct clrmemtrace_sysinfo clrmemtrace__sys;

static INIT_ONCE init_once = INIT_ONCE_STATIC_INIT;
static int init_error;
static uint64_t qpc_frequency;

static BOOL CALLBACK do_init(PINIT_ONCE once, PVOID param, PVOID *context)
{
	struct clrmemtrace_sysinfo *s = &clrmemtrace__sys;
	LARGE_INTEGER freq;
	SYSTEM_INFO si;

	(void)once;
	(void)param;
	(void)context;
	GetSystemInfo(&si);
	if (si.dwPageSize == 0 || (si.dwPageSize & (si.dwPageSize - 1)) != 0) {
		init_error = ERROR_NOT_SUPPORTED;
		return TRUE;
	}
	s->page_size = si.dwPageSize;
	s->page_shift = (unsigned)__builtin_ctz(si.dwPageSize);
	/* lpMaximumApplicationAddress is the last usable byte (0x7ffffffeffff on x64). */
	s->user_limit = (uintptr_t)si.lpMaximumApplicationAddress + 1;
	s->user_min = (uintptr_t)si.lpMinimumApplicationAddress;
	if (!QueryPerformanceFrequency(&freq) || freq.QuadPart <= 0) {
		init_error = ERROR_NOT_SUPPORTED;
		return TRUE;
	}
	qpc_frequency = (uint64_t)freq.QuadPart;
	return TRUE;
}

int clrmemtrace__init(void)
{
	if (!InitOnceExecuteOnce(&init_once, do_init, NULL, NULL)) {
		return ERROR_INTERNAL_ERROR;
	}
	return init_error;
}

uint64_t clrmemtrace__now_ns(void)
{
	LARGE_INTEGER now;
	uint64_t ticks, freq = qpc_frequency;

	QueryPerformanceCounter(&now);
	ticks = (uint64_t)now.QuadPart;
	if (freq == 0) {
		return 0;
	}
	/* Whole seconds and the remainder apart, so the product cannot overflow. */
	return ticks / freq * 1000000000u + ticks % freq * 1000000000u / freq;
}

int clrmemtrace__memory_status(uint32_t *load_percent, uint64_t *available_bytes,
			       uint64_t *total_bytes)
{
	MEMORYSTATUSEX ms = { .dwLength = sizeof(ms) };

	if (!GlobalMemoryStatusEx(&ms)) {
		return clrmemtrace__last_error();
	}
	*load_percent = ms.dwMemoryLoad;
	*available_bytes = ms.ullAvailPhys;
	if (total_bytes) {
		*total_bytes = ms.ullTotalPhys;
	}
	return 0;
}
