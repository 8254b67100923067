/* SPDX-License-Identifier: MIT */
/*
 * The payload of every clrmemtrace event, as plain C structs shared by the
 * library (which fills them), the LTTng-UST provider (clrmemtrace_tp.h) and
 * the ETW provider. Field meanings and units are in EVENTS.md.
 *
 * Append-only: fields may be added at the end of a struct, never removed or
 * reordered, and enumeration values never change.
 */
#ifndef CLRMEMTRACE_EVENTS_H
#define CLRMEMTRACE_EVENTS_H

#include <stdint.h>

struct ctev_manager_create {
	uint64_t manager_id;
	uint64_t manager;      /* the IHostMemoryManager pointer */
	uint32_t flags;
	uint32_t page_size;
	const char *name;      /* never NULL ("" when none) */
	const char *version;
};

struct ctev_manager_destroy {
	uint64_t manager_id;
	uint64_t regions;         /* reservations left mapped */
	uint64_t reserved_bytes;
	uint64_t committed_bytes;
};

struct ctev_virtual_alloc {
	uint64_t manager_id;
	uint64_t address;    /* pAddress */
	uint64_t size;       /* dwSize */
	uint32_t type;       /* flAllocationType */
	uint32_t protect;    /* flProtect */
	int32_t level;       /* eCriticalLevel */
	int32_t hr;
	uint64_t result;     /* *ppMem */
	uint64_t seq;        /* the manager's state changes after the call */
	uint64_t duration_ns;
	const char *reason;  /* why the host policy refused it, "" otherwise */
};

struct ctev_virtual_free {
	uint64_t manager_id;
	uint64_t address;
	uint64_t size;
	uint32_t type;       /* dwFreeType */
	int32_t hr;
	uint64_t seq;
	uint64_t duration_ns;
};

struct ctev_virtual_protect {
	uint64_t manager_id;
	uint64_t address;
	uint64_t size;
	uint32_t protect;     /* flNewProtect */
	uint32_t old_protect; /* *pflOldProtect */
	int32_t hr;
	uint32_t pad;
	uint64_t seq;
	uint64_t duration_ns;
};

struct ctev_virtual_query {
	uint64_t manager_id;
	uint64_t address;        /* lpAddress */
	uint64_t length;         /* dwLength */
	uint64_t result;         /* *pResult */
	uint64_t base;           /* the MEMORY_BASIC_INFORMATION returned */
	uint64_t allocation_base;
	uint32_t allocation_protect;
	uint32_t state;
	uint64_t region_size;
	uint32_t protect;
	uint32_t mem_type;
	int32_t hr;
	uint32_t pad;
	uint64_t seq_before;     /* the answer is the state after a change in */
	uint64_t seq_after;      /* [seq_before, seq_after] */
	uint64_t duration_ns;
};

struct ctev_memory_load {
	uint64_t manager_id;
	uint32_t load;           /* *pMemoryLoad, percent */
	int32_t hr;
	uint64_t available;      /* *pAvailableBytes */
	uint64_t duration_ns;
};

struct ctev_notification_register {
	uint64_t manager_id;
	uint64_t callback;       /* the ICLRMemoryNotificationCallback pointer */
	uint64_t previous;       /* the callback it replaces (0 for none) */
	int32_t hr;
	uint32_t pad;
	uint64_t duration_ns;
};

struct ctev_memory_notification {
	uint64_t manager_id;
	uint64_t callback;
	int32_t level;           /* EMemoryAvailable delivered */
	int32_t hr;              /* what OnMemoryNotification returned */
	uint32_t load;           /* the load that caused it, percent */
	uint32_t pad;
	uint64_t duration_ns;    /* time spent in the callback */
	const char *reason;
};

struct ctev_vas {
	uint64_t manager_id;
	uint64_t address;
	uint64_t size;
	int32_t hr;
	uint32_t pad;
	uint64_t total;          /* address space the runtime holds after the call */
	uint64_t duration_ns;
	const char *reason;      /* why the host policy refused it, "" otherwise */
};

struct ctev_malloc_create {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t heap;           /* the IHostMalloc pointer (0 on failure) */
	uint32_t malloc_type;    /* dwMallocType */
	int32_t hr;
	uint64_t duration_ns;
};

struct ctev_malloc_alloc {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t size;           /* cbSize */
	int32_t level;
	int32_t hr;
	uint64_t ptr;            /* *ppMem */
	const char *file;        /* DebugAlloc's file, "" for Alloc */
	int32_t line;            /* DebugAlloc's line, 0 for Alloc */
	uint32_t pad;
	uint64_t duration_ns;
	const char *reason;      /* why the host policy refused it, "" otherwise */
};

struct ctev_malloc_free {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t ptr;
	uint64_t size;           /* the block's requested size, 0 when refused */
	int32_t hr;
	uint32_t pad;
	uint64_t duration_ns;
};

struct ctev_malloc_destroy {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t live_blocks;    /* blocks never freed, returned to the OS with the heap */
	uint64_t live_bytes;
};

struct ctev_statedump_begin {
	uint64_t manager_id;
	uint64_t manager;
	uint64_t seq;       /* the manager's state changes so far */
	uint64_t regions;   /* statedump_region events that follow */
	uint64_t heaps;     /* statedump_heap events that follow */
	const char *name;
};

struct ctev_statedump_region {
	uint64_t manager_id;
	uint64_t base;
	uint64_t allocation_base;
	uint64_t size;
	uint32_t state;
	uint32_t protect;
	uint32_t allocation_protect;
	uint32_t pad;
};

struct ctev_statedump_vas {
	uint64_t manager_id;
	uint64_t address;
	uint64_t size;
};

struct ctev_statedump_heap {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t heap;
	uint32_t malloc_type;
	uint32_t pad;
	uint64_t live_blocks;
	uint64_t live_bytes;
};

struct ctev_statedump_block {
	uint64_t manager_id;
	uint64_t heap_id;
	uint64_t ptr;
	uint64_t size;
};

struct ctev_statedump_end {
	uint64_t manager_id;
	uint64_t seq;
};

#endif /* CLRMEMTRACE_EVENTS_H */
