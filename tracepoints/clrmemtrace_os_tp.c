/* SPDX-License-Identifier: MIT */
/*
 * The probes of the clrmemtrace_os provider, in their own shared object
 * (libclrmemtrace-os-lttng.so) linked with liblttng-ust; the LD_PRELOAD
 * interposer loads it from its own directory.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "clrmemtrace_os_tp.h"
