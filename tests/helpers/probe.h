/* SPDX-License-Identifier: MIT */
/*
 * Checks what a page really allows, by touching it under a temporary
 * SIGSEGV/SIGBUS handler (cmocka would report the fault as a failure); on
 * Windows under a vectored exception handler, where touching a guard page
 * counts as a fault (and, as on Windows, turns the guard off).
 */
#ifndef CLRMEMTRACE_TEST_PROBE_H
#define CLRMEMTRACE_TEST_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/* Reading one byte at p succeeds. */
bool probe_readable(const void *p);
/* Writing one byte at p succeeds (the byte's value is preserved). */
bool probe_writable(void *p);
/* Calling p (where code is already written) returns instead of faulting. */
bool probe_call(const void *p);
/* Code written at p (which must be writable) runs: x86-64 and arm64 only. */
bool probe_executable_after_write(void *p);

#endif
