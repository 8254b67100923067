/* SPDX-License-Identifier: MIT */
/*
 * Replaces the interposer's tracepoints with recorders, so its hooks can be
 * tested without a session daemon: compiled into test-preload with
 * CLRMEMTRACE_PRELOAD_TESTING.
 */
#ifndef CLRMEMTRACE_PRELOAD_TESTING_H
#define CLRMEMTRACE_PRELOAD_TESTING_H

/* Whether events are "enabled". */
extern int test_trace_enabled;

/* Records an event by name; its first argument is kept for checks. */
void test_record(const char *event, unsigned long long first, ...);

#define lttng_ust_tracepoint_enabled(provider, name) (test_trace_enabled)
#define lttng_ust_do_tracepoint(provider, name, ...) test_record(#name, __VA_ARGS__)
#define lttng_ust_tracepoint(provider, name, ...)               \
	do {                                                    \
		if (test_trace_enabled) {                       \
			test_record(#name, __VA_ARGS__);        \
		}                                               \
	} while (0)

#endif
