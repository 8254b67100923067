/* SPDX-License-Identifier: MIT */
/*
 * The tracing backend of a build without LTTng-UST: every event is off.
 */
#include "trace.h"

bool clrmemtrace__tracing = false;

void clrmemtrace__trace_init(void)
{
}
