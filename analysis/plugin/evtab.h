/* SPDX-License-Identifier: MIT */
/*
 * The clrmemtrace events the analysis knows (tracepoints/clrmemtrace_tp.h,
 * EVENTS.md): their names, and for each the payload members it reads, where
 * it keeps them in a decoded event, and which of them it cannot do without.
 *
 * This table is the only place that knows member names: the Babeltrace2
 * side resolves them to member indexes once per event class, and the engine
 * works on decoded events (struct cmt_event) only.
 */
#ifndef CLRMEMTRACE_ANALYSIS_EVTAB_H
#define CLRMEMTRACE_ANALYSIS_EVTAB_H

#include <stdbool.h>
#include <stdint.h>

enum cmt_ev_type {
	CMT_EV_MANAGER_CREATE,
	CMT_EV_MANAGER_DESTROY,
	CMT_EV_VIRTUAL_ALLOC,
	CMT_EV_VIRTUAL_FREE,
	CMT_EV_VIRTUAL_PROTECT,
	CMT_EV_VIRTUAL_QUERY,
	CMT_EV_MEMORY_LOAD,
	CMT_EV_NOTIFICATION_REGISTER,
	CMT_EV_MEMORY_NOTIFICATION,
	CMT_EV_VAS_NEEDS,
	CMT_EV_VAS_ACQUIRED,
	CMT_EV_VAS_RELEASED,
	CMT_EV_MALLOC_CREATE,
	CMT_EV_MALLOC_ALLOC,
	CMT_EV_MALLOC_FREE,
	CMT_EV_MALLOC_DESTROY,
	CMT_EV_STATEDUMP_BEGIN,
	CMT_EV_STATEDUMP_REGION,
	CMT_EV_STATEDUMP_VAS,
	CMT_EV_STATEDUMP_HEAP,
	CMT_EV_STATEDUMP_BLOCK,
	CMT_EV_STATEDUMP_END,
	/* The interposer's events (provider clrmemtrace_os), from here to CMT_EV_COUNT. */
	CMT_EV_OS_MMAP,
	CMT_EV_OS_MUNMAP,
	CMT_EV_OS_MPROTECT,
	CMT_EV_OS_MADVISE,
	CMT_EV_OS_POSIX_MADVISE,
	CMT_EV_OS_MREMAP,
	CMT_EV_OS_MAPS_BEGIN,
	CMT_EV_OS_MAPS_MAPPING,
	CMT_EV_OS_MAPS_END,
	CMT_EV_COUNT,
	CMT_EV_OS_FIRST = CMT_EV_OS_MMAP,
	/* A clrmemtrace event this version does not know (names are append-only). */
	CMT_EV_UNKNOWN = CMT_EV_COUNT,
	/* An event of another provider. */
	CMT_EV_FOREIGN,
};

/* Where a decoded event keeps each numeric member. */
enum cmt_field {
	CMT_F_MANAGER_ID,
	CMT_F_MANAGER,
	CMT_F_FLAGS,
	CMT_F_PAGE_SIZE,
	CMT_F_ADDRESS,
	CMT_F_SIZE,
	CMT_F_TYPE,
	CMT_F_PROTECT,
	CMT_F_OLD_PROTECT,
	CMT_F_LEVEL,
	CMT_F_RESULT,
	CMT_F_HR,
	CMT_F_SEQ,
	CMT_F_DURATION,
	CMT_F_LENGTH,
	CMT_F_BASE,
	CMT_F_ALLOCATION_BASE,
	CMT_F_ALLOCATION_PROTECT,
	CMT_F_REGION_SIZE,
	CMT_F_STATE,
	CMT_F_MEM_TYPE,
	CMT_F_SEQ_BEFORE,
	CMT_F_SEQ_AFTER,
	CMT_F_LOAD,
	CMT_F_AVAILABLE,
	CMT_F_CALLBACK,
	CMT_F_PREVIOUS,
	CMT_F_TOTAL,
	CMT_F_HEAP_ID,
	CMT_F_HEAP,
	CMT_F_MALLOC_TYPE,
	CMT_F_PTR,
	CMT_F_LINE,
	CMT_F_LIVE_BLOCKS,
	CMT_F_LIVE_BYTES,
	CMT_F_REGIONS,
	CMT_F_HEAPS,
	CMT_F_RESERVED_BYTES,
	CMT_F_COMMITTED_BYTES,
	/* Members of the clrmemtrace_os events that no clrmemtrace event has. */
	CMT_F_PROT,
	CMT_F_FD,
	CMT_F_OFFSET,
	CMT_F_ERRNUM,
	CMT_F_NEW_LENGTH,
	CMT_F_NEW_ADDR,
	CMT_F_ADVICE,
	CMT_F_END,
	CMT_F_SHARED,
	CMT_F_MAJOR,
	CMT_F_MINOR,
	CMT_F_INODE,
	CMT_F_MAPPINGS,
	CMT_F_COUNT,
};

/* Where a decoded event keeps each string member. */
enum cmt_string {
	CMT_S_NAME,
	CMT_S_VERSION,
	CMT_S_FILE,
	CMT_S_REASON,
	CMT_S_PATH,
	CMT_S_COUNT,
};

enum cmt_member_kind {
	CMT_KIND_INT,    /* any integer or enumeration, signed or not */
	CMT_KIND_STRING, /* a string */
};

struct cmt_member {
	const char *name;
	uint8_t kind;     /* enum cmt_member_kind */
	uint8_t slot;     /* enum cmt_field or enum cmt_string, by kind */
	bool required;    /* without it the event is ignored */
};

#define CMT_MAX_MEMBERS 16

struct cmt_event_desc {
	const char *name; /* without the provider's prefix */
	bool call;        /* an entry point's call: has hr and duration_ns */
	uint8_t nmembers;
	struct cmt_member members[CMT_MAX_MEMBERS];
};

#define CMT_PROVIDER_PREFIX "clrmemtrace:"
#define CMT_OS_PROVIDER_PREFIX "clrmemtrace_os:"

extern const struct cmt_event_desc cmt_events[CMT_EV_COUNT];

/*
 * The type of the event named `name` (a full event class name such as
 * "clrmemtrace:virtual_alloc" or "clrmemtrace_os:mmap"): CMT_EV_FOREIGN for
 * another provider, CMT_EV_UNKNOWN for an event of either provider this
 * table lacks.
 */
enum cmt_ev_type cmt_event_type_from_name(const char *name);

/* Whether `type` is an event of the interposer (clrmemtrace_os). */
static inline bool cmt_event_is_os(enum cmt_ev_type type)
{
	return type >= CMT_EV_OS_FIRST && type < CMT_EV_COUNT;
}

/* Whether `type` is one of the interposed calls (mmap ... mremap). */
static inline bool cmt_event_is_os_call(enum cmt_ev_type type)
{
	return type >= CMT_EV_OS_MMAP && type <= CMT_EV_OS_MREMAP;
}

/* "virtual_alloc" for CMT_EV_VIRTUAL_ALLOC, "mmap" for CMT_EV_OS_MMAP; "?" out of range. */
const char *cmt_event_name(enum cmt_ev_type type);

/*
 * A decoded event. Only the members of its type are meaningful; `present`
 * has bit (1 << slot) for each numeric member read, `spresent` likewise for
 * strings. Strings are borrowed for the duration of the call only.
 */
struct cmt_event {
	enum cmt_ev_type type;
	int64_t time_ns;
	uint64_t vpid;
	uint64_t tid;
	bool has_vpid;
	bool has_time;
	const char *procname;
	uint64_t present;
	uint32_t spresent;
	uint64_t f[CMT_F_COUNT];
	const char *s[CMT_S_COUNT];
};

/* The bits of `present` an event of type `type` needs to be applied. */
uint64_t cmt_event_required_mask(enum cmt_ev_type type);
uint32_t cmt_event_required_smask(enum cmt_ev_type type);

#endif /* CLRMEMTRACE_ANALYSIS_EVTAB_H */
