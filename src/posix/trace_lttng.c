/* SPDX-License-Identifier: MIT */
/*
 * The LTTng-UST backend: the library defines its tracepoints with dynamic
 * provider linkage (so it links no LTTng library at all) and, at start-up,
 * loads the provider object libclrmemtrace-lttng.so from its own directory
 * when it is installed there. Without it, or without LTTng on the machine,
 * every tracepoint stays off and costs one load.
 *
 * Environment:
 *   CLRMEMTRACE_TRACE=0               never load the provider; no events
 *   CLRMEMTRACE_LTTNG_PROVIDER=PATH   load the provider from PATH instead
 *   LTTNG_UST_REGISTER_TIMEOUT        LTTng-UST waits this long (ms) at
 *                                     start-up for a session daemon; when it
 *                                     is unset the library makes it 0, so
 *                                     start-up never waits (events before the
 *                                     registration completes are lost, and the
 *                                     state dump covers them).
 *                                     `clrmemtrace record` sets it so that a
 *                                     recorded program loses nothing.
 */
#define LTTNG_UST_TRACEPOINT_DEFINE
#define LTTNG_UST_TRACEPOINT_PROBE_DYNAMIC_LINKAGE
#include "trace.h"

#include <lttng/ust-events.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define PROVIDER_NAME "libclrmemtrace-lttng.so"

bool clrmemtrace__tracing = true;

static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static bool env_says_off(const char *name)
{
	const char *v = getenv(name);

	return v && (strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 ||
		     strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0);
}

/* The provider's path: beside this library, unless the environment names one. */
static bool provider_path(char *path, size_t len)
{
	const char *override = getenv("CLRMEMTRACE_LTTNG_PROVIDER");
	Dl_info info;
	const char *slash;

	if (override && *override) {
		return (size_t)snprintf(path, len, "%s", override) < len;
	}
	if (!dladdr((void *)&clrmemtrace_create, &info) || !info.dli_fname) {
		return false;
	}
	slash = strrchr(info.dli_fname, '/');
	if (!slash) {
		return (size_t)snprintf(path, len, "%s", PROVIDER_NAME) < len;
	}
	return (size_t)snprintf(path, len, "%.*s/%s", (int)(slash - info.dli_fname),
				info.dli_fname, PROVIDER_NAME) < len;
}

static void load_provider(void)
{
	char path[PATH_MAX];
	bool set_timeout;

	if (env_says_off("CLRMEMTRACE_TRACE")) {
		clrmemtrace__tracing = false;
		return;
	}
	if (!provider_path(path, sizeof(path)) || access(path, R_OK) != 0) {
		return; /* not installed: run unchanged */
	}
	set_timeout = getenv("LTTNG_UST_REGISTER_TIMEOUT") == NULL;
	if (set_timeout) {
		setenv("LTTNG_UST_REGISTER_TIMEOUT", "0", 0);
	}
	/* Never closed: probes stay registered for the life of the process. */
	if (!dlopen(path, RTLD_NOW | RTLD_LOCAL) && getenv("CLRMEMTRACE_DEBUG")) {
		fprintf(stderr, "clrmemtrace: tracing off, cannot load %s: %s\n", path, dlerror());
	}
	if (set_timeout) {
		unsetenv("LTTNG_UST_REGISTER_TIMEOUT");
	}
}

void clrmemtrace__trace_init(void)
{
	pthread_once(&trace_once, load_provider);
}

/* At start-up, while the process is most likely still single-threaded (setenv). */
__attribute__((constructor)) static void trace_constructor(void)
{
	clrmemtrace__trace_init();
}

/*
 * Whether a session that has started records the event of `tp`. A session's
 * tracepoints are enabled (their probes registered) before LTTng-UST makes
 * the session active, and a probe drops what is emitted in between: the
 * same tests as the probes', on each probe registered, as they read them
 * (under LTTng-UST's RCU read lock, with the structures of the public
 * lttng/ust-events.h).
 */
bool clrmemtrace__lttng_recording(struct lttng_ust_tracepoint *tp)
{
	struct lttng_ust_tracepoint_probe *probe;
	bool recording = false;

	if (!LTTNG_UST_TP_RCU_LINK_TEST()) {
		return false;
	}
	lttng_ust_tp_rcu_read_lock();
	for (probe = lttng_ust_tp_rcu_dereference(tp->probes); probe && probe->func && !recording;
	     probe++) {
		const struct lttng_ust_event_common *ev = probe->data;
		const struct lttng_ust_event_recorder *rec;
		const struct lttng_ust_channel_common *chan;

		if (ev->type != LTTNG_UST_EVENT_TYPE_RECORDER ||
		    !__atomic_load_n(&ev->enabled, __ATOMIC_RELAXED)) {
			continue;
		}
		rec = ev->child;
		chan = rec->chan->parent;
		recording = __atomic_load_n(&chan->session->active, __ATOMIC_RELAXED) &&
			    __atomic_load_n(&chan->enabled, __ATOMIC_RELAXED);
	}
	lttng_ust_tp_rcu_read_unlock();
	return recording;
}
