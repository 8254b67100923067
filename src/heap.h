/* SPDX-License-Identifier: MIT */
/*
 * The heap backend behind IHostMalloc: one `struct heap` per heap object.
 *
 * Contract (both backends):
 * - Blocks are 16-byte aligned; a zero-byte request gets a unique block.
 * - heap_free recognises exactly the live blocks of this heap: a pointer that
 *   is not one (freed already, from another heap, interior, foreign) is
 *   refused with ERROR_INVALID_ADDRESS and nothing changes.
 * - Every function is thread-safe. The optional callback of alloc/free runs
 *   once the block is allocated or freed (a state dump reading the heap before
 *   that sees the block as it was) and before any other thread can be handed
 *   it, so a trace emitted from it records a block's allocation before its
 *   free.
 * - A heap never touches the process's global malloc.
 * - heap_destroy returns all of the heap's memory to the OS.
 */
#ifndef CLRMEMTRACE_HEAP_H
#define CLRMEMTRACE_HEAP_H

#include "internal.h"

struct heap;

struct heap_stats {
	uint64_t live_blocks;
	uint64_t live_bytes; /* sizes the callers asked for */
	uint64_t os_bytes;   /* memory obtained from the OS */
};

typedef void (*heap_block_fn)(void *ctx, void *ptr, size_t size);

struct policy;

/*
 * malloc_type: MALLOC_THREADSAFE and/or MALLOC_EXECUTABLE (validated by the
 * caller). policy (may be NULL) is charged for the memory the heap takes
 * from the OS, before it takes it.
 */
int clrmemtrace__heap_create(uint32_t malloc_type, struct policy *policy, struct heap **out);
void clrmemtrace__heap_destroy(struct heap *h);

/*
 * 0, ERROR_NOT_ENOUGH_MEMORY (impossible sizes included) or the policy's
 * refusal when new OS memory is needed for a request at critical `level`
 * (an EMemoryCriticalLevel). fn may be NULL.
 */
int clrmemtrace__heap_alloc(struct heap *h, size_t size, int level, void **out, heap_block_fn fn,
			    void *ctx);

/* 0 or ERROR_INVALID_ADDRESS. ptr is non-NULL. fn may be NULL. */
int clrmemtrace__heap_free(struct heap *h, void *ptr, heap_block_fn fn, void *ctx);

/*
 * Stops every operation on the heap until heap_unlock_all, so a state dump
 * sees one consistent moment.
 */
void clrmemtrace__heap_lock_all(struct heap *h);
void clrmemtrace__heap_unlock_all(struct heap *h);

/*
 * Heap locked (lock_all). Counts the live blocks by walking the heap (the
 * fast paths keep no counters), so it costs time proportional to the heap.
 */
void clrmemtrace__heap_stats_locked(struct heap *h, struct heap_stats *stats);

/* Heap locked: calls fn for each live block; stops when fn returns non-zero. */
typedef int (*heap_live_fn)(void *ctx, void *ptr, size_t size);
int clrmemtrace__heap_foreach_live_locked(struct heap *h, heap_live_fn fn, void *ctx);

/* Convenience: lock_all + stats_locked + unlock_all. */
void clrmemtrace__heap_stats(struct heap *h, struct heap_stats *stats);

#endif /* CLRMEMTRACE_HEAP_H */
