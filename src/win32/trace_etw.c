/* SPDX-License-Identifier: MIT */
/*
 * The ETW backend: registers the provider "clrmemtrace"
 * ({678C4D34-5A8B-483E-8051-872BB8947FD2}, tracepoints/etw/clrmemtrace.man)
 * at the first manager's creation, and keeps the per-event flags that
 * CLRMEMTRACE_TRACE_ON reads up to date from its enable callback.
 *
 * State dumps (EVENTS.md, "State dumps"):
 * - a session that enables the StateDump keyword gets a dump at the next
 *   call into the library, as with LTTng (trace.h, clrmemtrace__trace_sync);
 * - enabling the StateDumpRequest keyword asks for another one, like
 *   LTTng's statedump_request;
 * - a capture-state request (EVENT_CONTROL_CODE_CAPTURE_STATE: `wpr
 *   -capturestateondemand`, xperf -capturestate, or a profile's
 *   CaptureStateOnSave) dumps at once, from the callback's thread.
 *
 * Environment: CLRMEMTRACE_TRACE=0 (or off, no, false) registers nothing.
 */
#define CLRMEMTRACE_ETW_DEFINE_DESCRIPTORS
#include "trace.h"

#include <evntrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool clrmemtrace__tracing = true;
uint8_t clrmemtrace__etw_on[CLRMEMTRACE_ETW_COUNT];
REGHANDLE clrmemtrace__etw_handle;

static const GUID provider_guid = CLRMEMTRACE_ETW_PROVIDER_GUID;
static INIT_ONCE trace_once = INIT_ONCE_STATIC_INIT;
static bool registered;

static bool env_says_off(const char *name)
{
	const char *v = getenv(name);

	return v && (strcmp(v, "0") == 0 || _stricmp(v, "off") == 0 || _stricmp(v, "no") == 0 ||
		     _stricmp(v, "false") == 0);
}

/*
 * Which events the sessions' combined level and keywords enable, by the
 * rule EventEnabled applies: the level at or below the sessions' (0: any),
 * and a keyword in MatchAnyKeyword (0: all) with every MatchAllKeyword bit.
 */
static void update_flags(bool enabled, UCHAR level, ULONGLONG any, ULONGLONG all)
{
	size_t i;

	if (any == 0) {
		any = ~0ull;
	}
	for (i = 0; i < CLRMEMTRACE_ETW_COUNT; i++) {
		const EVENT_DESCRIPTOR *d = &clrmemtrace__etw_desc[i];
		bool on = enabled && (level == 0 || d->Level <= level) &&
			  (d->Keyword == 0 || ((d->Keyword & any) && (d->Keyword & all) == all));

		__atomic_store_n(&clrmemtrace__etw_on[i], on ? 1 : 0, __ATOMIC_RELAXED);
	}
}

void NTAPI clrmemtrace__etw_enable_callback(LPCGUID source, ULONG control, UCHAR level,
					     ULONGLONG any, ULONGLONG all,
					     PEVENT_FILTER_DESCRIPTOR filter, PVOID ctx)
{
	(void)source;
	(void)filter;
	(void)ctx;
	switch (control) {
	case EVENT_CONTROL_CODE_ENABLE_PROVIDER:
		update_flags(true, level, any, all);
		break;
	case EVENT_CONTROL_CODE_DISABLE_PROVIDER:
		update_flags(false, 0, 0, 0);
		break;
	case EVENT_CONTROL_CODE_CAPTURE_STATE:
		/* Takes the managers' locks, never ETW's: safe from the callback. */
		clrmemtrace_statedump();
		break;
	default:
		break;
	}
}

static BOOL CALLBACK register_provider(PINIT_ONCE once, PVOID param, PVOID *context)
{
	(void)once;
	(void)param;
	(void)context;
	if (env_says_off("CLRMEMTRACE_TRACE")) {
		clrmemtrace__tracing = false;
		return TRUE;
	}
	registered = EventRegister(&provider_guid, clrmemtrace__etw_enable_callback, NULL,
				   &clrmemtrace__etw_handle) == ERROR_SUCCESS;
	if (!registered) {
		clrmemtrace__etw_handle = 0;
		if (getenv("CLRMEMTRACE_DEBUG")) {
			fprintf(stderr, "clrmemtrace: tracing off, EventRegister failed\n");
		}
	}
	return TRUE;
}

void clrmemtrace__trace_init(void)
{
	InitOnceExecuteOnce(&trace_once, register_provider, NULL, NULL);
}

/*
 * When the DLL is unloaded (not at process exit), the provider goes first:
 * its callback must not outlive the code.
 */
BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved);

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
	(void)instance;
	if (reason == DLL_PROCESS_DETACH && reserved == NULL && registered) {
		update_flags(false, 0, 0, 0);
		EventUnregister(clrmemtrace__etw_handle);
		registered = false;
	}
	return TRUE;
}
