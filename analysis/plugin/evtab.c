/* SPDX-License-Identifier: MIT */
/*
 * The event table: names and members from tracepoints/clrmemtrace_tp.h
 * and tracepoints/clrmemtrace_os_tp.h.
 */
#include "evtab.h"

#include <string.h>

#define I(n, s, r) { #n, CMT_KIND_INT, CMT_F_##s, r }
#define S(n, s, r) { #n, CMT_KIND_STRING, CMT_S_##s, r }
#define REQ true
#define OPT false

/* The members every call event ends with. */
#define CALL_TAIL I(hr, HR, REQ), I(duration_ns, DURATION, OPT)

const struct cmt_event_desc cmt_events[CMT_EV_COUNT] = {
	[CMT_EV_MANAGER_CREATE] = { "manager_create", false, 6, {
		I(manager_id, MANAGER_ID, REQ), I(manager, MANAGER, OPT), I(flags, FLAGS, OPT),
		I(page_size, PAGE_SIZE, OPT), S(name, NAME, OPT), S(version, VERSION, OPT) } },
	[CMT_EV_MANAGER_DESTROY] = { "manager_destroy", false, 4, {
		I(manager_id, MANAGER_ID, REQ), I(regions, REGIONS, OPT),
		I(reserved_bytes, RESERVED_BYTES, OPT),
		I(committed_bytes, COMMITTED_BYTES, OPT) } },
	[CMT_EV_VIRTUAL_ALLOC] = { "virtual_alloc", true, 10, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, REQ), I(size, SIZE, REQ),
		I(type, TYPE, REQ), I(protect, PROTECT, REQ), I(level, LEVEL, OPT),
		I(result, RESULT, REQ), I(seq, SEQ, REQ), CALL_TAIL } },
	[CMT_EV_VIRTUAL_FREE] = { "virtual_free", true, 7, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, REQ), I(size, SIZE, REQ),
		I(type, TYPE, REQ), I(seq, SEQ, REQ), CALL_TAIL } },
	[CMT_EV_VIRTUAL_PROTECT] = { "virtual_protect", true, 8, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, REQ), I(size, SIZE, REQ),
		I(protect, PROTECT, REQ), I(old_protect, OLD_PROTECT, REQ), I(seq, SEQ, REQ),
		CALL_TAIL } },
	[CMT_EV_VIRTUAL_QUERY] = { "virtual_query", true, 15, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, REQ), I(length, LENGTH, OPT),
		I(result, RESULT, OPT), I(base, BASE, REQ),
		I(allocation_base, ALLOCATION_BASE, REQ),
		I(allocation_protect, ALLOCATION_PROTECT, REQ), I(region_size, REGION_SIZE, REQ),
		I(state, STATE, REQ), I(protect, PROTECT, REQ), I(mem_type, MEM_TYPE, REQ),
		I(seq_before, SEQ_BEFORE, REQ), I(seq_after, SEQ_AFTER, REQ), CALL_TAIL } },
	[CMT_EV_MEMORY_LOAD] = { "memory_load", true, 5, {
		I(manager_id, MANAGER_ID, REQ), I(load, LOAD, OPT), I(available, AVAILABLE, OPT),
		CALL_TAIL } },
	[CMT_EV_NOTIFICATION_REGISTER] = { "notification_register", true, 5, {
		I(manager_id, MANAGER_ID, REQ), I(callback, CALLBACK, OPT),
		I(previous, PREVIOUS, OPT), CALL_TAIL } },
	[CMT_EV_MEMORY_NOTIFICATION] = { "memory_notification", true, 7, {
		I(manager_id, MANAGER_ID, REQ), I(callback, CALLBACK, OPT), I(level, LEVEL, OPT),
		I(load, LOAD, OPT), S(reason, REASON, OPT), CALL_TAIL } },
	[CMT_EV_VAS_NEEDS] = { "vas_needs", true, 6, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, OPT), I(size, SIZE, OPT),
		I(total, TOTAL, OPT), CALL_TAIL } },
	[CMT_EV_VAS_ACQUIRED] = { "vas_acquired", true, 6, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, OPT), I(size, SIZE, OPT),
		I(total, TOTAL, OPT), CALL_TAIL } },
	[CMT_EV_VAS_RELEASED] = { "vas_released", true, 6, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, OPT), I(size, SIZE, OPT),
		I(total, TOTAL, OPT), CALL_TAIL } },
	[CMT_EV_MALLOC_CREATE] = { "malloc_create", true, 6, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ), I(heap, HEAP, OPT),
		I(malloc_type, MALLOC_TYPE, OPT), CALL_TAIL } },
	[CMT_EV_MALLOC_ALLOC] = { "malloc_alloc", true, 9, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ), I(size, SIZE, REQ),
		I(level, LEVEL, OPT), I(ptr, PTR, REQ), S(file, FILE, OPT), I(line, LINE, OPT),
		CALL_TAIL } },
	[CMT_EV_MALLOC_FREE] = { "malloc_free", true, 6, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ), I(ptr, PTR, REQ),
		I(size, SIZE, OPT), CALL_TAIL } },
	[CMT_EV_MALLOC_DESTROY] = { "malloc_destroy", false, 4, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ),
		I(live_blocks, LIVE_BLOCKS, OPT), I(live_bytes, LIVE_BYTES, OPT) } },
	[CMT_EV_STATEDUMP_BEGIN] = { "statedump_begin", false, 6, {
		I(manager_id, MANAGER_ID, REQ), I(manager, MANAGER, OPT), I(seq, SEQ, REQ),
		I(regions, REGIONS, OPT), I(heaps, HEAPS, OPT), S(name, NAME, OPT) } },
	[CMT_EV_STATEDUMP_REGION] = { "statedump_region", false, 7, {
		I(manager_id, MANAGER_ID, REQ), I(base, BASE, REQ),
		I(allocation_base, ALLOCATION_BASE, REQ), I(size, SIZE, REQ), I(state, STATE, REQ),
		I(protect, PROTECT, REQ), I(allocation_protect, ALLOCATION_PROTECT, REQ) } },
	[CMT_EV_STATEDUMP_VAS] = { "statedump_vas", false, 3, {
		I(manager_id, MANAGER_ID, REQ), I(address, ADDRESS, OPT), I(size, SIZE, OPT) } },
	[CMT_EV_STATEDUMP_HEAP] = { "statedump_heap", false, 6, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ), I(heap, HEAP, OPT),
		I(malloc_type, MALLOC_TYPE, OPT), I(live_blocks, LIVE_BLOCKS, OPT),
		I(live_bytes, LIVE_BYTES, OPT) } },
	[CMT_EV_STATEDUMP_BLOCK] = { "statedump_block", false, 4, {
		I(manager_id, MANAGER_ID, REQ), I(heap_id, HEAP_ID, REQ), I(ptr, PTR, REQ),
		I(size, SIZE, REQ) } },
	[CMT_EV_STATEDUMP_END] = { "statedump_end", false, 2, {
		I(manager_id, MANAGER_ID, REQ), I(seq, SEQ, REQ) } },
	[CMT_EV_OS_MMAP] = { "mmap", false, 9, {
		I(addr, ADDRESS, REQ), I(length, LENGTH, REQ), I(prot, PROT, REQ),
		I(flags, FLAGS, REQ), I(fd, FD, OPT), I(offset, OFFSET, OPT), I(result, RESULT, REQ),
		I(errnum, ERRNUM, REQ), S(path, PATH, OPT) } },
	[CMT_EV_OS_MUNMAP] = { "munmap", false, 4, {
		I(addr, ADDRESS, REQ), I(length, LENGTH, REQ), I(result, RESULT, REQ),
		I(errnum, ERRNUM, REQ) } },
	[CMT_EV_OS_MPROTECT] = { "mprotect", false, 5, {
		I(addr, ADDRESS, REQ), I(length, LENGTH, REQ), I(prot, PROT, REQ),
		I(result, RESULT, REQ), I(errnum, ERRNUM, REQ) } },
	[CMT_EV_OS_MADVISE] = { "madvise", false, 5, {
		I(addr, ADDRESS, REQ), I(length, LENGTH, REQ), I(advice, ADVICE, REQ),
		I(result, RESULT, REQ), I(errnum, ERRNUM, REQ) } },
	[CMT_EV_OS_POSIX_MADVISE] = { "posix_madvise", false, 4, {
		I(addr, ADDRESS, REQ), I(length, LENGTH, REQ), I(advice, ADVICE, REQ),
		I(result, RESULT, REQ) } },
	[CMT_EV_OS_MREMAP] = { "mremap", false, 7, {
		I(old_addr, ADDRESS, REQ), I(old_length, LENGTH, REQ), I(new_length, NEW_LENGTH, REQ),
		I(flags, FLAGS, REQ), I(new_addr, NEW_ADDR, OPT), I(result, RESULT, REQ),
		I(errnum, ERRNUM, REQ) } },
	[CMT_EV_OS_MAPS_BEGIN] = { "maps_begin", false, 1, {
		I(page_size, PAGE_SIZE, OPT) } },
	[CMT_EV_OS_MAPS_MAPPING] = { "maps_mapping", false, 9, {
		I(start, BASE, REQ), I(end, END, REQ), I(prot, PROT, REQ), I(shared, SHARED, REQ),
		I(offset, OFFSET, OPT), I(major, MAJOR, OPT), I(minor, MINOR, OPT),
		I(inode, INODE, OPT), S(path, PATH, OPT) } },
	[CMT_EV_OS_MAPS_END] = { "maps_end", false, 1, {
		I(mappings, MAPPINGS, OPT) } },
};

enum cmt_ev_type cmt_event_type_from_name(const char *name)
{
	size_t plen = sizeof(CMT_PROVIDER_PREFIX) - 1, oslen = sizeof(CMT_OS_PROVIDER_PREFIX) - 1;
	int i, first = 0, last = CMT_EV_OS_FIRST;

	if (!name) {
		return CMT_EV_FOREIGN;
	}
	if (strncmp(name, CMT_OS_PROVIDER_PREFIX, oslen) == 0) {
		plen = oslen;
		first = CMT_EV_OS_FIRST;
		last = CMT_EV_COUNT;
	} else if (strncmp(name, CMT_PROVIDER_PREFIX, plen) != 0) {
		return CMT_EV_FOREIGN;
	}
	for (i = first; i < last; i++) {
		if (strcmp(name + plen, cmt_events[i].name) == 0) {
			return (enum cmt_ev_type)i;
		}
	}
	return CMT_EV_UNKNOWN;
}

const char *cmt_event_name(enum cmt_ev_type type)
{
	if ((unsigned int)type >= CMT_EV_COUNT) {
		return "?";
	}
	return cmt_events[type].name;
}

uint64_t cmt_event_required_mask(enum cmt_ev_type type)
{
	const struct cmt_event_desc *d;
	uint64_t mask = 0;
	unsigned int i;

	if ((unsigned int)type >= CMT_EV_COUNT) {
		return 0;
	}
	d = &cmt_events[type];
	for (i = 0; i < d->nmembers; i++) {
		if (d->members[i].required && d->members[i].kind == CMT_KIND_INT) {
			mask |= UINT64_C(1) << d->members[i].slot;
		}
	}
	return mask;
}

uint32_t cmt_event_required_smask(enum cmt_ev_type type)
{
	const struct cmt_event_desc *d;
	uint32_t mask = 0;
	unsigned int i;

	if ((unsigned int)type >= CMT_EV_COUNT) {
		return 0;
	}
	d = &cmt_events[type];
	for (i = 0; i < d->nmembers; i++) {
		if (d->members[i].required && d->members[i].kind == CMT_KIND_STRING) {
			mask |= UINT32_C(1) << d->members[i].slot;
		}
	}
	return mask;
}
