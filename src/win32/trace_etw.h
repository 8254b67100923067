/* SPDX-License-Identifier: MIT */
/*
 * The ETW backend of trace.h: the provider "clrmemtrace" of
 * tracepoints/etw/clrmemtrace.man, written with EventWrite (never
 * EventWriteEx, which Wine does not implement).
 *
 * CLRMEMTRACE_TRACE_ON(event) is one byte load: the enable callback works
 * out, from the level and keywords the sessions ask for, which events are
 * on and stores one flag per event, so nothing is computed for an event no
 * session records.
 */
#ifndef CLRMEMTRACE_TRACE_ETW_H
#define CLRMEMTRACE_TRACE_ETW_H

#include "trace_etw_events.h"

#include <stdint.h>

/* Per event: non-zero while some session records it. Written by the enable callback. */
extern uint8_t clrmemtrace__etw_on[CLRMEMTRACE_ETW_COUNT];
extern REGHANDLE clrmemtrace__etw_handle;

/*
 * The provider's enable callback (EventRegister): keeps clrmemtrace__etw_on
 * up to date and answers capture-state requests with a state dump.
 */
void NTAPI clrmemtrace__etw_enable_callback(LPCGUID source, ULONG control, UCHAR level,
					     ULONGLONG any, ULONGLONG all,
					     PEVENT_FILTER_DESCRIPTOR filter, PVOID ctx);

#define CLRMEMTRACE_TRACE_ON(event) \
	__atomic_load_n(&clrmemtrace__etw_on[CLRMEMTRACE_ETW_##event], __ATOMIC_RELAXED)
#define CLRMEMTRACE_TRACE(event, payload) \
	clrmemtrace__etw_write_##event(clrmemtrace__etw_handle, payload)

#endif /* CLRMEMTRACE_TRACE_ETW_H */
