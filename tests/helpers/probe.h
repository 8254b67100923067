/* SPDX-License-Identifier: MIT */
/*
 * Checks what a page really allows, by touching it under a temporary
 * SIGSEGV/SIGBUS handler (cmocka would report the fault as a failure).
 */
#ifndef CLRMEMTRACE_TEST_PROBE_H
#define CLRMEMTRACE_TEST_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* Reading one byte at p succeeds. */
bool probe_readable(const void *p);
/* Writing one byte at p succeeds (the byte's value is preserved). */
bool probe_writable(void *p);
/* Code written at p (which must be writable) runs: x86-64 and arm64 only. */
bool probe_executable_after_write(void *p);

#endif
