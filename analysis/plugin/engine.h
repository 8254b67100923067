/* SPDX-License-Identifier: MIT */
/*
 * The reconstruction engine (analysis/README.md, "How the state is
 * rebuilt"): it takes decoded events in timestamp order and writes the
 * document of the chosen mode. It knows nothing of Babeltrace2, so the
 * unit tests drive it directly.
 */
#ifndef CLRMEMTRACE_ANALYSIS_ENGINE_H
#define CLRMEMTRACE_ANALYSIS_ENGINE_H

#include "evtab.h"
#include "output.h"

#include <stdbool.h>
#include <stdint.h>

enum cmt_mode {
	CMT_MODE_SUMMARY,
	CMT_MODE_TIMELINE,
	CMT_MODE_MAP,
	CMT_MODE_SERIES,
	CMT_MODE_PERFETTO,
};

struct cmt_config {
	enum cmt_mode mode;
	int64_t at_ns;        /* map */
	uint64_t points;      /* series, perfetto */
	uint64_t max_details; /* list caps */
};

struct cmt_engine;

/*
 * A new engine writing to `out` (already open; the engine writes the
 * streaming parts of timeline and perfetto documents as events come, and
 * everything else at the end). NULL without memory.
 */
struct cmt_engine *cmt_engine_create(const struct cmt_config *cfg, struct cmt_out *out);

/* Applies one event (any type, foreign ones included). */
void cmt_engine_event(struct cmt_engine *e, const struct cmt_event *ev);

/*
 * A discarded-events (`packets` false) or discarded-packets notice: every
 * manager's state is unknown from `begin_ns` until its next state dump.
 */
void cmt_engine_discarded(struct cmt_engine *e, bool packets, bool has_count, uint64_t count,
			  bool has_time, int64_t begin_ns);

/* Whether the engine needs no more events (map mode, once past `at`). */
bool cmt_engine_done(const struct cmt_engine *e);

/* Whether memory ran out at some point (the results cannot be trusted). */
bool cmt_engine_failed(const struct cmt_engine *e);

/* The end of the trace: writes what remains of the document. */
void cmt_engine_finish(struct cmt_engine *e);

void cmt_engine_destroy(struct cmt_engine *e);

#endif /* CLRMEMTRACE_ANALYSIS_ENGINE_H */
