/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared by the library's files. Nothing here is installed.
 *
 * Naming: clrmemtrace_ is public, clrmemtrace__ is internal and shared across
 * files, statics carry no prefix. Internal functions return int: 0 on
 * success or a Win32 error code (ERROR_*); the COM layer turns that into an
 * HRESULT in exactly one place, clrmemtrace__hresult().
 */
#ifndef CLRMEMTRACE_INTERNAL_H
#define CLRMEMTRACE_INTERNAL_H

#include "clrmemtrace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#else
#define likely(x) (x)
#define unlikely(x) (x)
#endif

/* PE has no symbol visibility: there the DLL exports what clrmemtrace.def names. */
#if defined(__GNUC__) && !defined(_WIN32)
#define CLRMEMTRACE_HIDDEN __attribute__((visibility("hidden")))
#else
#define CLRMEMTRACE_HIDDEN
#endif

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Windows reserves address space in units of 64 KiB. */
#define CLRMEMTRACE_GRANULARITY ((uintptr_t)0x10000)

/* ---------- Errors ---------- */

/*
 * The one place where an internal error (0 or a Win32 error code) becomes the
 * HRESULT an interface method returns: out-of-memory conditions become
 * E_OUTOFMEMORY, everything else HRESULT_FROM_WIN32(err).
 */
HRESULT clrmemtrace__hresult_slow(int err);

static inline HRESULT clrmemtrace__hresult(int err)
{
	return likely(err == 0) ? S_OK : clrmemtrace__hresult_slow(err);
}

/* ---------- Process-wide facts ---------- */

struct clrmemtrace_sysinfo {
	size_t page_size;
	unsigned page_shift;
	/* First address above the user-space range (exclusive limit). */
	uintptr_t user_limit;
	/* Lowest address a reservation may use (Windows keeps the low 64 KiB free). */
	uintptr_t user_min;
};

/* Filled once by the OS backend; valid after clrmemtrace__init(). */
extern struct clrmemtrace_sysinfo clrmemtrace__sys;

/* Library start-up (idempotent, thread-safe). Returns 0 or a Win32 error. */
int clrmemtrace__init(void);

/* Monotonic clock in nanoseconds. */
uint64_t clrmemtrace__now_ns(void);

/* Memory load: percent of memory in use and bytes available, honouring cgroup limits. */
int clrmemtrace__memory_status(uint32_t *load_percent, uint64_t *available_bytes,
			       uint64_t *total_bytes);

/* ---------- GUIDs ---------- */

bool clrmemtrace__iid_equal(const IID *a, const IID *b);

#endif /* CLRMEMTRACE_INTERNAL_H */
