/* SPDX-License-Identifier: MIT */
/*
 * Host policy: a manager's budgets and the accounting they are checked
 * against, as a host such as SQL Server governs the CLR.
 *
 * - Committed bytes: memory committed through VirtualAlloc plus the memory
 *   the manager's heaps took from the OS.
 * - Address space: live reservations, heap memory, and ranges the runtime
 *   reported with AcquiredVirtualAddressSpace.
 * - Over a budget, task-critical requests fail; app-domain- and
 *   process-critical ones may go on into the emergency reserve.
 *
 * Counters are updated with atomics, so the backends charge and uncharge
 * under their own locks without any lock here; a charge that would cross
 * a notification threshold wakes the monitor (monitor.c).
 */
#ifndef CLRMEMTRACE_POLICY_H
#define CLRMEMTRACE_POLICY_H

#include "internal.h"

struct policy {
	uint64_t commit_budget;        /* 0: none */
	uint64_t address_space_budget; /* 0: none */
	uint64_t emergency_reserve;
	uint32_t low_percent;          /* eMemoryAvailableLow at or above this load */
	uint32_t high_percent;         /* eMemoryAvailableHigh at or below this load */
	uint32_t hysteresis_percent;
	uint32_t poll_interval_ms;

	uint64_t committed;            /* atomic */
	uint64_t reserved;             /* atomic */
	uint32_t last_zone;            /* atomic: notification zone at the last charge */
	void (*kick)(void *ctx);       /* wakes the monitor; may be NULL */
	void *kick_ctx;
};

/*
 * Fills *p from the options, taking each budget or threshold the options
 * leave at 0 from the environment (CLRMEMTRACE_COMMIT_BUDGET, ...; see the
 * README). Returns 0, or ERROR_INVALID_PARAMETER for a value that cannot be
 * understood or thresholds that contradict each other; *what then names it.
 */
int clrmemtrace__policy_init(struct policy *p, const clrmemtrace_options *opts, const char **what);

/*
 * Charges `commit` committed bytes and `reserve` bytes of address space for
 * a request at critical `level`. Returns 0, ERROR_COMMITMENT_LIMIT (over the
 * commit budget) or ERROR_OUTOFMEMORY (over the address-space budget), with
 * nothing charged on failure.
 */
int clrmemtrace__policy_charge(struct policy *p, uint64_t commit, uint64_t reserve, int level);
void clrmemtrace__policy_uncharge(struct policy *p, uint64_t commit, uint64_t reserve);

/* Whether `reserve` more bytes of address space fit the budget (NeedsVirtualAddressSpace). */
bool clrmemtrace__policy_address_space_fits(struct policy *p, uint64_t reserve);

/* With a commit budget: the load in percent and the bytes left. */
uint32_t clrmemtrace__policy_budget_load(struct policy *p, uint64_t *available);

/* The reason text of a charge failure. */
const char *clrmemtrace__policy_reason(int err);

/*
 * The notification level (an EMemoryAvailable) a load moves `current` to,
 * with the thresholds and hysteresis of p; current 0 means none yet.
 */
int clrmemtrace__policy_level(const struct policy *p, int current, uint32_t load);

/* Parses a size such as "512M" or "2g" (K, M, G, T: powers of 1024). */
bool clrmemtrace__parse_size(const char *s, uint64_t *out);

#endif /* CLRMEMTRACE_POLICY_H */
