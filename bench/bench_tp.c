/* SPDX-License-Identifier: MIT */
/*
 * The probes and tracepoint definitions of bench-trace's bare tracepoint
 * (bench_tp.h), linked into bench-trace with liblttng-ust.
 */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "bench_tp.h"
