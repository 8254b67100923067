/* SPDX-License-Identifier: MIT */
/*
 * sink.clrmemtrace.analysis: reads clrmemtrace events in timestamp order and
 * writes one document (analysis/README.md, "The plugin's output").
 */
#ifndef CLRMEMTRACE_ANALYSIS_ANALYSIS_H
#define CLRMEMTRACE_ANALYSIS_ANALYSIS_H

#include "engine.h"
#include "evtab.h"
#include "map.h"
#include "output.h"

#include <babeltrace2/babeltrace.h>
#include <stdbool.h>
#include <stdint.h>

/* How to read one payload or context member of an event class. */
enum member_read {
	READ_UNSIGNED,
	READ_SIGNED,
	READ_STRING,
};

struct member_reader {
	uint32_t index;
	uint8_t slot;
	uint8_t read; /* enum member_read */
};

/*
 * What the analysis knows of one event class, found once: its type and the
 * indexes of the members it reads, so an event costs a few index lookups.
 */
struct ev_handler {
	const bt_event_class *event_class; /* a reference is held */
	enum cmt_ev_type type;
	bool has_clock;
	uint8_t nreaders;
	struct member_reader readers[CMT_MAX_MEMBERS];
	uint8_t nzero; /* the type's members this class lacks, left 0 */
	uint8_t zero[CMT_MAX_MEMBERS];
	uint64_t present;
	uint32_t spresent;
	/* Context members: -1 when absent; common (stream) or specific context. */
	int64_t vpid_index;
	int64_t vtid_index;
	int64_t procname_index;
	bool vpid_signed;
	bool vtid_signed;
	bool context_common;
};

struct analysis {
	bt_logging_level log_level;
	bt_self_component *self_comp;
	bt_message_iterator *iterator;
	struct cmt_config cfg;
	struct cmt_out out;
	bool out_open;
	struct cmt_engine *engine;
	bool ended;
	/* Event class -> handler, and the last one used. */
	struct cmt_map handlers;
	const bt_event_class *last_class;
	struct ev_handler *last_handler;
	struct cmt_event event;
};

bt_component_class_initialize_method_status
analysis_init(bt_self_component_sink *self_comp, bt_self_component_sink_configuration *config,
	      const bt_value *params, void *init_data);

void analysis_finalize(bt_self_component_sink *self_comp);

bt_component_class_sink_graph_is_configured_method_status
analysis_graph_is_configured(bt_self_component_sink *self_comp);

bt_component_class_sink_consume_method_status analysis_consume(bt_self_component_sink *self_comp);

#endif /* CLRMEMTRACE_ANALYSIS_ANALYSIS_H */
