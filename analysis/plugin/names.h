/* SPDX-License-Identifier: MIT */
/*
 * Names of the Win32 values the analysis writes: protections, page states,
 * memory types, critical levels, memory-availability levels and HRESULTs.
 * A value without a name is written as its decimal number, as Babeltrace2
 * shows an enumeration value no label covers.
 */
#ifndef CLRMEMTRACE_ANALYSIS_NAMES_H
#define CLRMEMTRACE_ANALYSIS_NAMES_H

#include <stdint.h>

#define CMT_PAGE_NOACCESS 0x01u
#define CMT_PAGE_READONLY 0x02u
#define CMT_PAGE_READWRITE 0x04u
#define CMT_PAGE_WRITECOPY 0x08u
#define CMT_PAGE_EXECUTE 0x10u
#define CMT_PAGE_EXECUTE_READ 0x20u
#define CMT_PAGE_EXECUTE_READWRITE 0x40u
#define CMT_PAGE_EXECUTE_WRITECOPY 0x80u
#define CMT_PAGE_GUARD 0x100u
#define CMT_PAGE_NOCACHE 0x200u
#define CMT_PAGE_WRITECOMBINE 0x400u
#define CMT_PAGE_TARGETS_INVALID 0x40000000u

#define CMT_MEM_COMMIT 0x1000u
#define CMT_MEM_RESERVE 0x2000u
#define CMT_MEM_DECOMMIT 0x4000u
#define CMT_MEM_RELEASE 0x8000u
#define CMT_MEM_FREE 0x10000u
#define CMT_MEM_PRIVATE 0x20000u
#define CMT_MEM_RESET 0x80000u

#define CMT_S_OK 0
#define CMT_HR_INVALID_ADDRESS ((int32_t)0x800701E7u)

/* Large enough for any name below, or a decimal 64-bit number. */
#define CMT_NAME_MAX 64

/*
 * `p` by name: the base protection's name followed by "|PAGE_GUARD",
 * "|PAGE_NOCACHE" and "|PAGE_WRITECOMBINE" for the modifiers it carries;
 * "0" for 0; the decimal number when the base is not one protection or
 * unknown bits are set. Returns buf.
 */
const char *cmt_protect_name(uint32_t p, char buf[CMT_NAME_MAX]);
const char *cmt_state_name(uint32_t s, char buf[CMT_NAME_MAX]);
const char *cmt_mem_type_name(uint32_t t, char buf[CMT_NAME_MAX]);
const char *cmt_level_name(int64_t level, char buf[CMT_NAME_MAX]);
const char *cmt_available_name(int64_t level, char buf[CMT_NAME_MAX]);
const char *cmt_hr_name(int32_t hr, char buf[CMT_NAME_MAX]);

/* Whether protection `p` lets code run, and lets it be written. */
int cmt_protect_executable(uint32_t p);
int cmt_protect_writable(uint32_t p);

#endif /* CLRMEMTRACE_ANALYSIS_NAMES_H */
