/* SPDX-License-Identifier: MIT */
/*
 * The mmap view (analysis/README.md, "The mmap view"): the clrmemtrace_os
 * events of the interposer, read as Win32-style state. Each process that
 * has such events gets a pseudo-manager, manager 0 named "mmap", whose
 * regions are the process's mappings: PROT_NONE pages are reserved,
 * accessible pages committed with the matching PAGE_* protection. Pages a
 * manager of the process holds are that manager's, not the view's.
 */
#ifndef CLRMEMTRACE_ANALYSIS_OS_H
#define CLRMEMTRACE_ANALYSIS_OS_H

#include "state.h"

#include <stdint.h>

/* The view's identity in the documents; the library numbers its managers from 1. */
#define CMT_OS_MANAGER_ID 0
#define CMT_OS_NAME "mmap"

#define CMT_MEM_MAPPED 0x40000u
#define CMT_MEM_IMAGE 0x1000000u

/* The process's view, made on its first interposer event. NULL without memory. */
struct cmt_manager *cmt_os_manager(struct cmt_engine *e, struct cmt_process *p,
				   const struct cmt_event *ev);

/* Applies one clrmemtrace_os event to the view m. */
void cmt_os_event(struct cmt_engine *e, struct cmt_manager *m, const struct cmt_event *ev);

/*
 * Manager m (not the view) took [base, end) as a reservation, for thread
 * tid: the view of its process gives those pages up (and the rwx_commit of
 * the mmap that made them, which the manager reports).
 */
void cmt_os_claim(struct cmt_engine *e, struct cmt_manager *m, uint64_t base, uint64_t end,
		  uint64_t tid);

/* Frees the view's own state (m->os). */
void cmt_os_fini(struct cmt_manager *m);

/* The memory type (MEM_PRIVATE, MEM_MAPPED, MEM_IMAGE) and file of region version r of m. */
uint32_t cmt_os_mem_type(const struct cmt_resv *r);
const char *cmt_os_path(const struct cmt_manager *m, const struct cmt_resv *r);

/* An errno value by name ("ENOMEM"), else its decimal number. Returns buf or a constant. */
const char *cmt_errno_name(int32_t err, char buf[CMT_NAME_MAX]);

/* The name of a failed call's result: its errno for the view's calls, else its HRESULT. */
const char *cmt_failure_result_name(const struct cmt_failure *f, char buf[CMT_NAME_MAX]);

/* Why the view is incomplete, for reason bit k (a CMT_R_* index); NULL for the managers' text. */
const char *cmt_os_reason_text(int k);

#endif /* CLRMEMTRACE_ANALYSIS_OS_H */
