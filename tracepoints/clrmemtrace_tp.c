/* SPDX-License-Identifier: MIT */
/*
 * The probes of the clrmemtrace provider, built into their own shared object
 * (libclrmemtrace-lttng.so) linked with liblttng-ust. The library loads it at
 * start-up when it is installed beside it.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#include "clrmemtrace_tp.h"
