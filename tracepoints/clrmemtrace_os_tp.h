/* SPDX-License-Identifier: MIT */
/*
 * The LTTng-UST provider "clrmemtrace_os": the mmap family as an unmodified
 * process calls it, recorded by the LD_PRELOAD interposer
 * (src/preload/interpose.c). Raw data, no interpretation: every argument,
 * the result and errno. Field meanings: EVENTS.md, "Interposed OS calls".
 *
 * Event names, field names and enumeration values are append-only.
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER clrmemtrace_os

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "clrmemtrace_os_tp.h"

#if !defined(CLRMEMTRACE_OS_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define CLRMEMTRACE_OS_TP_H

#include <lttng/tracepoint.h>
#include <stdint.h>

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, mmap,
	LTTNG_UST_TP_ARGS(uint64_t, addr, uint64_t, length, int, prot, int, flags, int, fd,
			  int64_t, offset, uint64_t, result, int, err, const char *, path),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, addr, addr)
		lttng_ust_field_integer(uint64_t, length, length)
		lttng_ust_field_integer_hex(int32_t, prot, prot)
		lttng_ust_field_integer_hex(int32_t, flags, flags)
		lttng_ust_field_integer(int32_t, fd, fd)
		lttng_ust_field_integer(int64_t, offset, offset)
		lttng_ust_field_integer_hex(uint64_t, result, result)
		lttng_ust_field_integer(int32_t, errnum, err)
		lttng_ust_field_string(path, path)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, munmap,
	LTTNG_UST_TP_ARGS(uint64_t, addr, uint64_t, length, int, result, int, err),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, addr, addr)
		lttng_ust_field_integer(uint64_t, length, length)
		lttng_ust_field_integer(int32_t, result, result)
		lttng_ust_field_integer(int32_t, errnum, err)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, mprotect,
	LTTNG_UST_TP_ARGS(uint64_t, addr, uint64_t, length, int, prot, int, result, int, err),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, addr, addr)
		lttng_ust_field_integer(uint64_t, length, length)
		lttng_ust_field_integer_hex(int32_t, prot, prot)
		lttng_ust_field_integer(int32_t, result, result)
		lttng_ust_field_integer(int32_t, errnum, err)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, madvise,
	LTTNG_UST_TP_ARGS(uint64_t, addr, uint64_t, length, int, advice, int, result, int, err),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, addr, addr)
		lttng_ust_field_integer(uint64_t, length, length)
		lttng_ust_field_integer(int32_t, advice, advice)
		lttng_ust_field_integer(int32_t, result, result)
		lttng_ust_field_integer(int32_t, errnum, err)
	)
)

/* posix_madvise reports its error as its result and leaves errno alone. */
LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, posix_madvise,
	LTTNG_UST_TP_ARGS(uint64_t, addr, uint64_t, length, int, advice, int, result),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, addr, addr)
		lttng_ust_field_integer(uint64_t, length, length)
		lttng_ust_field_integer(int32_t, advice, advice)
		lttng_ust_field_integer(int32_t, result, result)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, mremap,
	LTTNG_UST_TP_ARGS(uint64_t, old_addr, uint64_t, old_length, uint64_t, new_length, int, flags,
			  uint64_t, new_addr, uint64_t, result, int, err),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, old_addr, old_addr)
		lttng_ust_field_integer(uint64_t, old_length, old_length)
		lttng_ust_field_integer(uint64_t, new_length, new_length)
		lttng_ust_field_integer_hex(int32_t, flags, flags)
		lttng_ust_field_integer_hex(uint64_t, new_addr, new_addr)
		lttng_ust_field_integer_hex(uint64_t, result, result)
		lttng_ust_field_integer(int32_t, errnum, err)
	)
)

/* State dump of /proc/self/maps: maps_begin, one maps_mapping per line, maps_end. */
LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, maps_begin,
	LTTNG_UST_TP_ARGS(uint64_t, page_size),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, page_size, page_size)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, maps_mapping,
	LTTNG_UST_TP_ARGS(uint64_t, start, uint64_t, end, int, prot, int, shared, uint64_t, offset,
			  uint32_t, major, uint32_t, minor, uint64_t, inode, const char *, path,
			  size_t, path_len),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer_hex(uint64_t, start, start)
		lttng_ust_field_integer_hex(uint64_t, end, end)
		lttng_ust_field_integer_hex(int32_t, prot, prot)
		lttng_ust_field_integer(int32_t, shared, shared)
		lttng_ust_field_integer_hex(uint64_t, offset, offset)
		lttng_ust_field_integer(uint32_t, major, major)
		lttng_ust_field_integer(uint32_t, minor, minor)
		lttng_ust_field_integer(uint64_t, inode, inode)
		lttng_ust_field_sequence_text(char, path, path, size_t, path_len)
	)
)

LTTNG_UST_TRACEPOINT_EVENT(clrmemtrace_os, maps_end,
	LTTNG_UST_TP_ARGS(uint64_t, mappings),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, mappings, mappings)
	)
)

#endif /* CLRMEMTRACE_OS_TP_H */

#include <lttng/tracepoint-event.h>
