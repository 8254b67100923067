/* SPDX-License-Identifier: MIT */
/*
 * The virtual-memory side of a decorating manager (clrmemtrace_wrap): every
 * call goes to another host's IHostMemoryManager, unchanged, and its HRESULT
 * comes back unchanged. No lock is held while the inner manager runs.
 *
 * The inner manager keeps the state; this side only remembers which
 * reservations it saw made (for state dumps, which read their runs back
 * with the inner VirtualQuery) and numbers the successful changes in the
 * order they returned.
 */
#ifndef CLRMEMTRACE_VMWRAP_H
#define CLRMEMTRACE_VMWRAP_H

#include "vm.h"

struct vmwrap;

int clrmemtrace__vmwrap_create(IHostMemoryManager *inner, struct vmwrap **out);
void clrmemtrace__vmwrap_destroy(struct vmwrap *w);

HRESULT clrmemtrace__vmwrap_alloc(struct vmwrap *w, void *address, SIZE_T size, DWORD type,
				  DWORD protect, EMemoryCriticalLevel level, void **out);
HRESULT clrmemtrace__vmwrap_free(struct vmwrap *w, void *address, SIZE_T size, DWORD type);
HRESULT clrmemtrace__vmwrap_protect(struct vmwrap *w, void *address, SIZE_T size, DWORD protect,
				    DWORD *old_protect);
HRESULT clrmemtrace__vmwrap_query(struct vmwrap *w, void *address, void *buffer, SIZE_T length,
				  SIZE_T *result, uint64_t *seq_before, uint64_t *seq_after);
uint64_t clrmemtrace__vmwrap_seq(struct vmwrap *w);
void clrmemtrace__vmwrap_stats(struct vmwrap *w, struct vm_stats *stats);

/*
 * Calls fn for every run of every reservation seen, as the inner manager
 * reports it now. Takes no lock while the inner manager runs.
 */
int clrmemtrace__vmwrap_foreach_run(struct vmwrap *w, vm_run_fn fn, void *ctx);

#endif /* CLRMEMTRACE_VMWRAP_H */
