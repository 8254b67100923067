/* SPDX-License-Identifier: MIT */
/*
 * The COM objects: the memory manager (hostmem.c) and its heaps
 * (hostmalloc.c), and what the state dump (statedump.c) reads of them.
 *
 * Lock order: the manager registry (statedump.c), a manager's vm lock, its
 * `lock`, a heap's lock. No lock is held while calling into the host.
 */
#ifndef CLRMEMTRACE_HOSTMEM_H
#define CLRMEMTRACE_HOSTMEM_H

#include "internal.h"
#include "mutex.h"
#include "policy.h"

struct vm;
struct vmwrap;
struct heap;
struct monitor;
struct relay;

/* Address space the runtime took directly from the OS (Acquired/ReleasedVirtualAddressSpace). */
struct vas_range {
	uintptr_t start;
	size_t size;
};

struct hostmalloc {
	IHostMalloc IHostMalloc_iface;
	uint32_t refs;
	uint64_t id;
	uint32_t type;
	struct hostmem *manager;
	struct heap *heap;
	struct hostmalloc *next, *prev; /* the manager's heaps, under manager->lock */
	bool trace;                     /* manager->trace, read on every call */
	IHostMalloc *inner;             /* decorating: the heap calls go here */
	struct blockset *live;          /* decorating: live blocks and their sizes */
};

struct hostmem {
	IHostMemoryManager IHostMemoryManager_iface;
	uint32_t refs;
	uint64_t id; /* unique in the process, never reused */
	uint32_t flags;
	bool trace;  /* events on for this manager (CLRMEMTRACE_FLAG_NO_TRACE, environment) */
	char *name;
	struct vm *vm;            /* the library's own backend, or NULL when decorating */
	IHostMemoryManager *inner;/* decorating: every call goes to this manager */
	struct vmwrap *wrap;      /* decorating: its virtual-memory side */
	struct relay *relay;      /* decorating: our callback, registered with the inner manager */
	struct policy policy;     /* budgets and the accounting checked against them */
	struct monitor *monitor;  /* memory notifications, once a callback is registered */
	struct hostmem *reg_next, *reg_prev; /* registry of live managers (statedump.c) */

	/* Guards the fields below; never held while calling into the host. */
	clrmemtrace_mutex lock;
	ICLRMemoryNotificationCallback *callback;
	struct vas_range *vas;
	size_t vas_count, vas_capacity;
	uint64_t vas_bytes;
	struct hostmalloc *heaps;
};

static inline struct hostmem *impl_from_IHostMemoryManager(IHostMemoryManager *iface)
{
	return container_of(iface, struct hostmem, IHostMemoryManager_iface);
}

/* Creates a heap object for the manager (which it keeps a reference on). */
HRESULT clrmemtrace__hostmalloc_create(struct hostmem *mgr, uint32_t malloc_type, IHostMalloc **out);

/*
 * Decorating: forwards CreateMalloc to the inner manager and wraps the heap
 * any success returns (*out is left as the inner manager left it when that
 * fails or hands out no heap).
 */
HRESULT clrmemtrace__hostmalloc_wrap(struct hostmem *mgr, DWORD malloc_type, IHostMalloc **out);

/* Decorating heaps: the live blocks, under a heap's own lock (statedump.c). */
typedef int (*blockset_fn)(void *ctx, void *ptr, size_t size);
void clrmemtrace__blockset_foreach(struct hostmalloc *h, blockset_fn fn, void *ctx);

/* A fresh process-unique object id. */
uint64_t clrmemtrace__next_id(void);

/* The registry of live managers, which state dumps walk. */
void clrmemtrace__registry_add(struct hostmem *m);
void clrmemtrace__registry_remove(struct hostmem *m);

#endif /* CLRMEMTRACE_HOSTMEM_H */
