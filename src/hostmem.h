/* SPDX-License-Identifier: MIT */
/*
 * The COM objects: the memory manager (hostmem.c) and its heaps
 * (hostmalloc.c).
 */
#ifndef CLRMEMTRACE_HOSTMEM_H
#define CLRMEMTRACE_HOSTMEM_H

#include "internal.h"
#include "mutex.h"

struct vm;

/* Address space the runtime took directly from the OS (Acquired/ReleasedVirtualAddressSpace). */
struct vas_range {
	uintptr_t start;
	size_t size;
};

struct hostmem {
	IHostMemoryManager IHostMemoryManager_iface;
	uint32_t refs;
	uint64_t id; /* unique in the process, never reused */
	uint32_t flags;
	char *name;
	struct vm *vm;

	/* Guards the fields below; never held while calling into the host. */
	clrmemtrace_mutex lock;
	ICLRMemoryNotificationCallback *callback;
	struct vas_range *vas;
	size_t vas_count, vas_capacity;
	uint64_t vas_bytes;
};

static inline struct hostmem *impl_from_IHostMemoryManager(IHostMemoryManager *iface)
{
	return container_of(iface, struct hostmem, IHostMemoryManager_iface);
}

/* Creates a heap object for the manager (which it keeps a reference on). */
HRESULT clrmemtrace__hostmalloc_create(struct hostmem *mgr, uint32_t malloc_type, IHostMalloc **out);

/* A fresh process-unique object id. */
uint64_t clrmemtrace__next_id(void);

#endif /* CLRMEMTRACE_HOSTMEM_H */
