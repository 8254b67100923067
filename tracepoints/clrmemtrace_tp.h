/* SPDX-License-Identifier: MIT */
/*
 * The LTTng-UST provider "clrmemtrace": one event per entry-point call and
 * the state-dump events. Field meanings and units: EVENTS.md. Payloads are
 * the structs of clrmemtrace_events.h.
 *
 * This header has the shape LTTng-UST requires (it is read several times):
 * the library includes it with LTTNG_UST_TRACEPOINT_DEFINE and
 * LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE (src/posix/trace_lttng.c), the
 * provider object with LTTNG_UST_TRACEPOINT_CREATE_PROBES (clrmemtrace_tp.c).
 *
 * Event names, field names and enumeration values are append-only.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER clrmemtrace

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "clrmemtrace_tp.h"

#if !defined(CLRMEMTRACE_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define CLRMEMTRACE_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

#include "clrmemtrace_events.h"

/* Page protections, alone and with their modifiers (bit flags, shown by name). */
LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, protect,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("0", 0)
		lttng_ust_field_enum_value("PAGE_NOACCESS", 0x1)
		lttng_ust_field_enum_value("PAGE_READONLY", 0x2)
		lttng_ust_field_enum_value("PAGE_READWRITE", 0x4)
		lttng_ust_field_enum_value("PAGE_WRITECOPY", 0x8)
		lttng_ust_field_enum_value("PAGE_EXECUTE", 0x10)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READ", 0x20)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READWRITE", 0x40)
		lttng_ust_field_enum_value("PAGE_EXECUTE_WRITECOPY", 0x80)
		lttng_ust_field_enum_value("PAGE_NOACCESS|PAGE_GUARD", 0x101)
		lttng_ust_field_enum_value("PAGE_READONLY|PAGE_GUARD", 0x102)
		lttng_ust_field_enum_value("PAGE_READWRITE|PAGE_GUARD", 0x104)
		lttng_ust_field_enum_value("PAGE_WRITECOPY|PAGE_GUARD", 0x108)
		lttng_ust_field_enum_value("PAGE_EXECUTE|PAGE_GUARD", 0x110)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READ|PAGE_GUARD", 0x120)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READWRITE|PAGE_GUARD", 0x140)
		lttng_ust_field_enum_value("PAGE_EXECUTE_WRITECOPY|PAGE_GUARD", 0x180)
		lttng_ust_field_enum_value("PAGE_NOACCESS|PAGE_NOCACHE", 0x201)
		lttng_ust_field_enum_value("PAGE_READONLY|PAGE_NOCACHE", 0x202)
		lttng_ust_field_enum_value("PAGE_READWRITE|PAGE_NOCACHE", 0x204)
		lttng_ust_field_enum_value("PAGE_WRITECOPY|PAGE_NOCACHE", 0x208)
		lttng_ust_field_enum_value("PAGE_EXECUTE|PAGE_NOCACHE", 0x210)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READ|PAGE_NOCACHE", 0x220)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READWRITE|PAGE_NOCACHE", 0x240)
		lttng_ust_field_enum_value("PAGE_EXECUTE_WRITECOPY|PAGE_NOCACHE", 0x280)
		lttng_ust_field_enum_value("PAGE_NOACCESS|PAGE_WRITECOMBINE", 0x401)
		lttng_ust_field_enum_value("PAGE_READONLY|PAGE_WRITECOMBINE", 0x402)
		lttng_ust_field_enum_value("PAGE_READWRITE|PAGE_WRITECOMBINE", 0x404)
		lttng_ust_field_enum_value("PAGE_WRITECOPY|PAGE_WRITECOMBINE", 0x408)
		lttng_ust_field_enum_value("PAGE_EXECUTE|PAGE_WRITECOMBINE", 0x410)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READ|PAGE_WRITECOMBINE", 0x420)
		lttng_ust_field_enum_value("PAGE_EXECUTE_READWRITE|PAGE_WRITECOMBINE", 0x440)
		lttng_ust_field_enum_value("PAGE_EXECUTE_WRITECOPY|PAGE_WRITECOMBINE", 0x480)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, state,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("0", 0)
		lttng_ust_field_enum_value("MEM_COMMIT", 0x1000)
		lttng_ust_field_enum_value("MEM_RESERVE", 0x2000)
		lttng_ust_field_enum_value("MEM_FREE", 0x10000)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, mem_type,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("0", 0)
		lttng_ust_field_enum_value("MEM_PRIVATE", 0x20000)
		lttng_ust_field_enum_value("MEM_MAPPED", 0x40000)
		lttng_ust_field_enum_value("MEM_IMAGE", 0x1000000)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, free_type,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("MEM_DECOMMIT", 0x4000)
		lttng_ust_field_enum_value("MEM_RELEASE", 0x8000)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, critical_level,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("eTaskCritical", 0)
		lttng_ust_field_enum_value("eAppDomainCritical", 1)
		lttng_ust_field_enum_value("eProcessCritical", 2)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, memory_available,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("eMemoryAvailableLow", 1)
		lttng_ust_field_enum_value("eMemoryAvailableNeutral", 2)
		lttng_ust_field_enum_value("eMemoryAvailableHigh", 3)
	)
)

LTTNG_UST_TRACEPOINT_ENUM(clrmemtrace, hresult,
	LTTNG_UST_TP_ENUM_VALUES(
		lttng_ust_field_enum_value("S_OK", (int32_t)0x0u)
		lttng_ust_field_enum_value("S_FALSE", (int32_t)0x1u)
		lttng_ust_field_enum_value("E_NOTIMPL", (int32_t)0x80004001u)
		lttng_ust_field_enum_value("E_NOINTERFACE", (int32_t)0x80004002u)
		lttng_ust_field_enum_value("E_POINTER", (int32_t)0x80004003u)
		lttng_ust_field_enum_value("E_ABORT", (int32_t)0x80004004u)
		lttng_ust_field_enum_value("E_FAIL", (int32_t)0x80004005u)
		lttng_ust_field_enum_value("E_UNEXPECTED", (int32_t)0x8000FFFFu)
		lttng_ust_field_enum_value("E_ACCESSDENIED", (int32_t)0x80070005u)
		lttng_ust_field_enum_value("E_HANDLE", (int32_t)0x80070006u)
		lttng_ust_field_enum_value("E_OUTOFMEMORY", (int32_t)0x8007000Eu)
		lttng_ust_field_enum_value("E_INVALIDARG", (int32_t)0x80070057u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY)", (int32_t)0x80070008u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_INVALID_ACCESS)", (int32_t)0x8007000Cu)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_BAD_LENGTH)", (int32_t)0x80070018u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)", (int32_t)0x80070032u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_PARTIAL_COPY)", (int32_t)0x8007012Bu)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_INVALID_ADDRESS)", (int32_t)0x800701E7u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_NOACCESS)", (int32_t)0x800703E6u)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_INTERNAL_ERROR)", (int32_t)0x8007054Fu)
		lttng_ust_field_enum_value("HRESULT_FROM_WIN32(ERROR_COMMITMENT_LIMIT)", (int32_t)0x800705AFu)
		lttng_ust_field_enum_value("HOST_E_DEADLOCK", (int32_t)0x80131020u)
		lttng_ust_field_enum_value("HOST_E_INTERRUPTED", (int32_t)0x80131021u)
		lttng_ust_field_enum_value("HOST_E_INVALIDOPERATION", (int32_t)0x80131022u)
		lttng_ust_field_enum_value("HOST_E_CLRNOTAVAILABLE", (int32_t)0x80131023u)
		lttng_ust_field_enum_value("HOST_E_TIMEOUT", (int32_t)0x80131024u)
		lttng_ust_field_enum_value("HOST_E_NOT_OWNER", (int32_t)0x80131025u)
		lttng_ust_field_enum_value("HOST_E_ABANDONED", (int32_t)0x80131026u)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, manager_create,
	LTTNG_UST_TP_ARGS(const struct ctev_manager_create *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, manager, e->manager)
		lttng_ust_field_integer_hex(uint32_t, flags, e->flags)
		lttng_ust_field_integer(uint32_t, page_size, e->page_size)
		lttng_ust_field_string(name, e->name)
		lttng_ust_field_string(version, e->version)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, manager_destroy,
	LTTNG_UST_TP_ARGS(const struct ctev_manager_destroy *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, regions, e->regions)
		lttng_ust_field_integer(uint64_t, reserved_bytes, e->reserved_bytes)
		lttng_ust_field_integer(uint64_t, committed_bytes, e->committed_bytes)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, virtual_alloc,
	LTTNG_UST_TP_ARGS(const struct ctev_virtual_alloc *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_integer_hex(uint32_t, type, e->type)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, protect, e->protect)
		lttng_ust_field_enum(clrmemtrace, critical_level, int32_t, level, e->level)
		lttng_ust_field_integer_hex(uint64_t, result, e->result)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
		lttng_ust_field_string(reason, e->reason)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, virtual_free,
	LTTNG_UST_TP_ARGS(const struct ctev_virtual_free *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, free_type, uint32_t, type, e->type)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, virtual_protect,
	LTTNG_UST_TP_ARGS(const struct ctev_virtual_protect *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, protect, e->protect)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, old_protect, e->old_protect)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, virtual_query,
	LTTNG_UST_TP_ARGS(const struct ctev_virtual_query *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, length, e->length)
		lttng_ust_field_integer(uint64_t, result, e->result)
		lttng_ust_field_integer_hex(uint64_t, base, e->base)
		lttng_ust_field_integer_hex(uint64_t, allocation_base, e->allocation_base)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, allocation_protect,
				     e->allocation_protect)
		lttng_ust_field_integer(uint64_t, region_size, e->region_size)
		lttng_ust_field_enum(clrmemtrace, state, uint32_t, state, e->state)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, protect, e->protect)
		lttng_ust_field_enum(clrmemtrace, mem_type, uint32_t, mem_type, e->mem_type)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, seq_before, e->seq_before)
		lttng_ust_field_integer(uint64_t, seq_after, e->seq_after)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, memory_load,
	LTTNG_UST_TP_ARGS(const struct ctev_memory_load *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint32_t, load, e->load)
		lttng_ust_field_integer(uint64_t, available, e->available)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, notification_register,
	LTTNG_UST_TP_ARGS(const struct ctev_notification_register *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, callback, e->callback)
		lttng_ust_field_integer_hex(uint64_t, previous, e->previous)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, memory_notification,
	LTTNG_UST_TP_ARGS(const struct ctev_memory_notification *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, callback, e->callback)
		lttng_ust_field_enum(clrmemtrace, memory_available, int32_t, level, e->level)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint32_t, load, e->load)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
		lttng_ust_field_string(reason, e->reason)
	)
)

LTTNG_UST_TRACEPOINT_EVENT_CLASS(clrmemtrace, vas_class,
	LTTNG_UST_TP_ARGS(const struct ctev_vas *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, total, e->total)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
		lttng_ust_field_string(reason, e->reason)
	)
)

LTTNG_UST_TRACEPOINT_EVENT_INSTANCE(clrmemtrace, vas_class, clrmemtrace, vas_needs,
	LTTNG_UST_TP_ARGS(const struct ctev_vas *, e))
LTTNG_UST_TRACEPOINT_EVENT_INSTANCE(clrmemtrace, vas_class, clrmemtrace, vas_acquired,
	LTTNG_UST_TP_ARGS(const struct ctev_vas *, e))
LTTNG_UST_TRACEPOINT_EVENT_INSTANCE(clrmemtrace, vas_class, clrmemtrace, vas_released,
	LTTNG_UST_TP_ARGS(const struct ctev_vas *, e))

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, malloc_create,
	LTTNG_UST_TP_ARGS(const struct ctev_malloc_create *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer_hex(uint64_t, heap, e->heap)
		lttng_ust_field_integer_hex(uint32_t, malloc_type, e->malloc_type)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, malloc_alloc,
	LTTNG_UST_TP_ARGS(const struct ctev_malloc_alloc *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, critical_level, int32_t, level, e->level)
		lttng_ust_field_integer_hex(uint64_t, ptr, e->ptr)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_string(file, e->file)
		lttng_ust_field_integer(int32_t, line, e->line)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
		lttng_ust_field_string(reason, e->reason)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, malloc_free,
	LTTNG_UST_TP_ARGS(const struct ctev_malloc_free *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer_hex(uint64_t, ptr, e->ptr)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, hresult, int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, malloc_destroy,
	LTTNG_UST_TP_ARGS(const struct ctev_malloc_destroy *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer(uint64_t, live_blocks, e->live_blocks)
		lttng_ust_field_integer(uint64_t, live_bytes, e->live_bytes)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_begin,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_begin *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, manager, e->manager)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
		lttng_ust_field_integer(uint64_t, regions, e->regions)
		lttng_ust_field_integer(uint64_t, heaps, e->heaps)
		lttng_ust_field_string(name, e->name)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_region,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_region *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, base, e->base)
		lttng_ust_field_integer_hex(uint64_t, allocation_base, e->allocation_base)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_enum(clrmemtrace, state, uint32_t, state, e->state)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, protect, e->protect)
		lttng_ust_field_enum(clrmemtrace, protect, uint32_t, allocation_protect,
				     e->allocation_protect)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_vas,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_vas *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_heap,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_heap *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer_hex(uint64_t, heap, e->heap)
		lttng_ust_field_integer_hex(uint32_t, malloc_type, e->malloc_type)
		lttng_ust_field_integer(uint64_t, live_blocks, e->live_blocks)
		lttng_ust_field_integer(uint64_t, live_bytes, e->live_bytes)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_block,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_block *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, heap_id, e->heap_id)
		lttng_ust_field_integer_hex(uint64_t, ptr, e->ptr)
		lttng_ust_field_integer(uint64_t, size, e->size)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_end,
	LTTNG_UST_TP_ARGS(const struct ctev_statedump_end *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
	)
)

/* A control event: enabling it in a session asks for a state dump (EVENTS.md). */
LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace, statedump_request,
	LTTNG_UST_TP_ARGS(int, unused),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(int32_t, requested, unused)
	)
)

#endif /* CLRMEMTRACE_TP_H */

#include <lttng/tracepoint-event.h>
