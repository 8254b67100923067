/* SPDX-License-Identifier: MIT */
/*
 * Cross-checks a manager's page-state map against the kernel's view
 * (/proc/self/maps): every page VirtualQuery reports in [base, base+size)
 * must be mapped with the matching Unix protection (committed, not guard:
 * its access bits; reserved or guard: no access). On Windows the kernel's
 * view is the OS's VirtualQuery, and every field must match it.
 */
#ifndef CLRMEMTRACE_TEST_MAPS_H
#define CLRMEMTRACE_TEST_MAPS_H

#include <clrmemtrace.h>
#include <stdbool.h>
#include <stddef.h>

/* true when they agree; otherwise writes the first difference into why. */
bool maps_agree(IHostMemoryManager *mm, void *base, size_t size, char *why, size_t why_len);

/* The kernel's protection string ("rw-p" etc.) for the page holding p, or false if unmapped. */
bool maps_prot_of(const void *p, char perms[5]);

#endif
