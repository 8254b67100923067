/* SPDX-License-Identifier: MIT */
/*
 * Memory notifications: once a runtime registers its
 * ICLRMemoryNotificationCallback, a monitor thread per manager delivers
 * eMemoryAvailableLow / Neutral / High on transitions (thresholds and
 * hysteresis from the policy), driven immediately by the commit budget and
 * by system pressure: pressure-stall triggers where the kernel has them, the
 * cgroup-aware memory load otherwise. The callback is called with no lock
 * held; each delivery is traced (memory_notification).
 *
 * OS primitives (src/posix/pressure.c, src/win32/): a wake-up channel with
 * pressure triggers, and threads.
 */
#ifndef CLRMEMTRACE_MONITOR_H
#define CLRMEMTRACE_MONITOR_H

#include "internal.h"

struct hostmem;
struct monitor;

/* Starts the monitor of m if it has none; 0 or a Win32 error. */
int clrmemtrace__monitor_start(struct hostmem *m);

/* Wakes the monitor to re-evaluate now (budget moved, new callback). Any thread, any lock. */
void clrmemtrace__monitor_kick(struct hostmem *m);

/*
 * Stops the monitor and waits for its thread. Called from the thread itself
 * (a callback released the manager), it returns at once and the thread
 * cleans up when the callback returns, touching the manager no more.
 */
void clrmemtrace__monitor_stop(struct hostmem *m);

/* ---------- OS primitives ---------- */

struct clrmemtrace_pressure;

int clrmemtrace__pressure_open(struct clrmemtrace_pressure **out);
/* What drives pressure detection: a trigger file's name, or "polling". */
const char *clrmemtrace__pressure_source(const struct clrmemtrace_pressure *p);
void clrmemtrace__pressure_kick(struct clrmemtrace_pressure *p);
/* Waits for a kick, a pressure stall (*stall = true) or the timeout. */
int clrmemtrace__pressure_wait(struct clrmemtrace_pressure *p, uint32_t timeout_ms, bool *stall);
void clrmemtrace__pressure_close(struct clrmemtrace_pressure *p);

struct clrmemtrace_thread;

int clrmemtrace__thread_start(void *(*fn)(void *), void *arg, struct clrmemtrace_thread **out);
bool clrmemtrace__thread_is_current(const struct clrmemtrace_thread *t);
/* Waits for the thread to end and frees t. */
void clrmemtrace__thread_join(struct clrmemtrace_thread *t);
/* Lets the thread end on its own and frees t. */
void clrmemtrace__thread_detach(struct clrmemtrace_thread *t);
/* Names the calling thread (for ps, top, and the procname context of traces). */
void clrmemtrace__thread_name(const char *name);

#endif /* CLRMEMTRACE_MONITOR_H */
