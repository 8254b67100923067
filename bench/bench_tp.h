/* SPDX-License-Identifier: MIT */
/*
 * The bare tracepoint bench-trace compares clrmemtrace's virtual_alloc event
 * with: ten integer fields of the same types, filled from a struct as the
 * library's events are, and nothing else. Compiled into bench-trace itself
 * (bench_tp.c), so it is a plain, statically linked LTTng-UST provider.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER clrmemtrace_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./bench_tp.h"

#if !defined(BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define BENCH_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

/* virtual_alloc's integer fields, in its order and with its types (read once). */
#ifndef BENCH_TP_STRUCTS
#define BENCH_TP_STRUCTS
struct bench_bare10 {
	uint64_t manager_id;
	uint64_t address;
	uint64_t size;
	uint32_t type;
	uint32_t protect;
	int32_t level;
	int32_t hr;
	uint64_t result;
	uint64_t seq;
	uint64_t duration_ns;
};
#endif

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_bench, bare10,
	LTTNG_UST_TP_ARGS(const struct bench_bare10 *, e),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, manager_id, e->manager_id)
		lttng_ust_field_integer_hex(uint64_t, address, e->address)
		lttng_ust_field_integer(uint64_t, size, e->size)
		lttng_ust_field_integer_hex(uint32_t, type, e->type)
		lttng_ust_field_integer(uint32_t, protect, e->protect)
		lttng_ust_field_integer(int32_t, level, e->level)
		lttng_ust_field_integer_hex(uint64_t, result, e->result)
		lttng_ust_field_integer(int32_t, hr, e->hr)
		lttng_ust_field_integer(uint64_t, seq, e->seq)
		lttng_ust_field_integer(uint64_t, duration_ns, e->duration_ns)
	)
)

#endif /* BENCH_TP_H */

#include <lttng/tracepoint-event.h>
