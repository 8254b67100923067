/* SPDX-License-Identifier: MIT */
/*
 * Tracing behind two macros, the backend chosen at build time (as mimalloc's
 * track.h does), so call sites carry no #if:
 *
 *   CLRMEMTRACE_TRACE_ON(event)          does any session record this event?
 *                                        One load when nothing traces.
 *   CLRMEMTRACE_TRACE(event, &payload)   emits it; payload is the
 *                                        struct ctev_<event> of
 *                                        tracepoints/clrmemtrace_events.h.
 *
 * and, for the state dumps only, CLRMEMTRACE_TRACE_RECORDING(event): does a
 * session that has started record it (slower; TRACE_ON where the backend
 * cannot tell the difference).
 *
 * Backends: LTTng-UST with the provider loaded at run time
 * (CLRMEMTRACE_TRACE_LTTNG, src/posix/trace_lttng.c), ETW
 * (CLRMEMTRACE_TRACE_ETW), or none (CLRMEMTRACE_TRACE_NONE).
 */
#ifndef CLRMEMTRACE_TRACE_H
#define CLRMEMTRACE_TRACE_H

#include "internal.h"

#include "clrmemtrace_events.h"

#if defined(CLRMEMTRACE_TRACE_LTTNG)
#include "clrmemtrace_tp.h"
#define CLRMEMTRACE_TRACE_ON(event) lttng_ust_tracepoint_enabled(clrmemtrace, event)
#define CLRMEMTRACE_TRACE(event, payload) lttng_ust_do_tracepoint(clrmemtrace, event, payload)
/*
 * LTTng-UST enables a session's tracepoints before it makes the session
 * active, and drops what is emitted in between: whether a started session
 * records the event (src/posix/trace_lttng.c).
 */
bool clrmemtrace__lttng_recording(struct lttng_ust_tracepoint *tp);
#define CLRMEMTRACE_TRACE_RECORDING(event) \
	(CLRMEMTRACE_TRACE_ON(event) &&    \
	 clrmemtrace__lttng_recording(&lttng_ust_tracepoint_clrmemtrace___##event))
#elif defined(CLRMEMTRACE_TRACE_ETW)
#include "win32/trace_etw.h"
#elif defined(CLRMEMTRACE_TRACE_NONE)
#define CLRMEMTRACE_TRACE_ON(event) 0
#define CLRMEMTRACE_TRACE(event, payload) ((void)(payload))
#else
#error "No tracing backend selected: define CLRMEMTRACE_TRACE_LTTNG, _ETW or _NONE."
#endif

/* Does a started session record this event? (State dumps must not start before it is.) */
#ifndef CLRMEMTRACE_TRACE_RECORDING
#define CLRMEMTRACE_TRACE_RECORDING(event) CLRMEMTRACE_TRACE_ON(event)
#endif

/*
 * Whether tracing is on for this process: false when the environment says
 * CLRMEMTRACE_TRACE=0 (or "off"/"no"/"false"). Set once at start-up.
 */
extern bool clrmemtrace__tracing;

/* Loads the tracing backend (the LTTng provider beside the library). Idempotent. */
void clrmemtrace__trace_init(void);

/* ---------- State dumps (src/statedump.c) ---------- */

/* Whether statedump_begin and statedump_request were last seen recording. */
extern int clrmemtrace__dump_seen;
extern int clrmemtrace__request_seen;

void clrmemtrace__statedump_transition(void);

/*
 * Called at the start of every entry point, before any lock is taken: when
 * a session has just started recording the state-dump events (or asks for a
 * dump with statedump_request), dumps every manager's state first, so the
 * session can rebuild the state exactly from its own events.
 */
static inline void clrmemtrace__trace_sync(void)
{
	int dump = CLRMEMTRACE_TRACE_ON(statedump_begin) ? 1 : 0;
	int request = CLRMEMTRACE_TRACE_ON(statedump_request) ? 1 : 0;

	if (unlikely(dump != __atomic_load_n(&clrmemtrace__dump_seen, __ATOMIC_RELAXED) ||
		     request != __atomic_load_n(&clrmemtrace__request_seen, __ATOMIC_RELAXED))) {
		clrmemtrace__statedump_transition();
	}
}

#endif /* CLRMEMTRACE_TRACE_H */
