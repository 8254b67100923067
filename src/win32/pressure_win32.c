/* SPDX-License-Identifier: MIT */
/*
 * What the notification monitor waits on (monitor.h), on Windows:
 * - an auto-reset event, set when a budget crosses a threshold or the
 *   monitor must stop;
 * - the system's low-memory resource notification
 *   (CreateMemoryResourceNotification(LowMemoryResourceNotification)), which
 *   stays signalled while memory is low: after it fires, the monitor holds
 *   the level at Low for a while (STALL_HOLD in monitor.c) and the next
 *   waits leave it out for as long, so a lasting low-memory condition does
 *   not spin the thread;
 * - a timeout, for polling the memory load (GlobalMemoryStatusEx) when the
 *   notification object cannot be created.
 *
 * Threads are CRT threads (_beginthreadex), since the monitor formats text.
 */
#include "monitor.h"

#include "os_win32.h"

#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a fired low-memory notification is left out of the waits. */
#define LOW_QUIET_MS 1000u

struct clrmemtrace_pressure {
	HANDLE wake;
	HANDLE low; /* NULL when the system offers none */
	ULONGLONG low_quiet_until;
	char source[64];
};

struct clrmemtrace_thread {
	HANDLE handle;
	DWORD id;
	void *(*fn)(void *);
	void *arg;
};

int clrmemtrace__pressure_open(struct clrmemtrace_pressure **out)
{
	struct clrmemtrace_pressure *p = calloc(1, sizeof(*p));

	if (!p) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	p->wake = CreateEventW(NULL, FALSE, FALSE, NULL);
	if (!p->wake) {
		int err = clrmemtrace__last_error();

		free(p);
		return err;
	}
	p->low = CreateMemoryResourceNotification(LowMemoryResourceNotification);
	snprintf(p->source, sizeof(p->source), "%s",
		 p->low ? "low-memory resource notification" : "polling");
	*out = p;
	return 0;
}

const char *clrmemtrace__pressure_source(const struct clrmemtrace_pressure *p)
{
	return p->source;
}

void clrmemtrace__pressure_kick(struct clrmemtrace_pressure *p)
{
	SetEvent(p->wake);
}

int clrmemtrace__pressure_wait(struct clrmemtrace_pressure *p, uint32_t timeout_ms, bool *stall)
{
	HANDLE handles[2] = { p->wake, p->low };
	DWORD n = 1, r;

	*stall = false;
	if (p->low && GetTickCount64() >= p->low_quiet_until) {
		n = 2;
	}
	r = WaitForMultipleObjects(n, handles, FALSE, timeout_ms);
	if (r == WAIT_FAILED) {
		return clrmemtrace__last_error();
	}
	if (r == WAIT_OBJECT_0 + 1) {
		*stall = true;
		p->low_quiet_until = GetTickCount64() + LOW_QUIET_MS;
	}
	return 0;
}

void clrmemtrace__pressure_close(struct clrmemtrace_pressure *p)
{
	if (!p) {
		return;
	}
	CloseHandle(p->wake);
	if (p->low) {
		CloseHandle(p->low);
	}
	free(p);
}

/* ---------- Threads ---------- */

static unsigned __stdcall thread_main(void *arg)
{
	struct clrmemtrace_thread *t = arg;
	void *(*fn)(void *) = t->fn;
	void *fn_arg = t->arg;

	/* t may be freed (detached) while fn runs: nothing of it is read afterwards. */
	fn(fn_arg);
	return 0;
}

int clrmemtrace__thread_start(void *(*fn)(void *), void *arg, struct clrmemtrace_thread **out)
{
	struct clrmemtrace_thread *t = calloc(1, sizeof(*t));
	unsigned id = 0;
	uintptr_t h;

	if (!t) {
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	t->fn = fn;
	t->arg = arg;
	/* Started suspended, so t->id is set before the thread can ask whether it is t. */
	h = _beginthreadex(NULL, 0, thread_main, t, CREATE_SUSPENDED, &id);
	if (!h) {
		free(t);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	t->handle = (HANDLE)h;
	t->id = id;
	*out = t;
	ResumeThread(t->handle);
	return 0;
}

bool clrmemtrace__thread_is_current(const struct clrmemtrace_thread *t)
{
	return t->id == GetCurrentThreadId();
}

void clrmemtrace__thread_join(struct clrmemtrace_thread *t)
{
	WaitForSingleObject(t->handle, INFINITE);
	CloseHandle(t->handle);
	free(t);
}

void clrmemtrace__thread_detach(struct clrmemtrace_thread *t)
{
	CloseHandle(t->handle);
	free(t);
}

typedef HRESULT(WINAPI *set_description_fn)(HANDLE, PCWSTR);

void clrmemtrace__thread_name(const char *name)
{
	HMODULE kernel32 = GetModuleHandleW(L"kernel32.dll");
	set_description_fn set = NULL;
	WCHAR wide[64];
	FARPROC proc;

	/* SetThreadDescription exists from Windows 10 1607 on: look it up. */
	proc = kernel32 ? GetProcAddress(kernel32, "SetThreadDescription") : NULL;
	if (!proc || !MultiByteToWideChar(CP_UTF8, 0, name, -1, wide, ARRAY_SIZE(wide))) {
		return;
	}
	memcpy(&set, &proc, sizeof(set));
	set(GetCurrentThread(), wide);
}
