/* SPDX-License-Identifier: MIT */
/*
 * The clrmemtrace Babeltrace2 plugin: its component classes, nothing else.
 */
#include "analysis.h"

#include <babeltrace2/babeltrace.h>

BT_PLUGIN_MODULE();

BT_PLUGIN(clrmemtrace);
BT_PLUGIN_DESCRIPTION("Rebuilds the state of clrmemtrace's memory managers from its traces.");
BT_PLUGIN_AUTHOR("The clrmemtrace authors");
BT_PLUGIN_LICENSE("MIT");

/* sink.clrmemtrace.analysis */
BT_PLUGIN_SINK_COMPONENT_CLASS(analysis, analysis_consume);
BT_PLUGIN_SINK_COMPONENT_CLASS_INITIALIZE_METHOD(analysis, analysis_init);
BT_PLUGIN_SINK_COMPONENT_CLASS_FINALIZE_METHOD(analysis, analysis_finalize);
BT_PLUGIN_SINK_COMPONENT_CLASS_GRAPH_IS_CONFIGURED_METHOD(analysis, analysis_graph_is_configured);
BT_PLUGIN_SINK_COMPONENT_CLASS_DESCRIPTION(analysis,
	"Rebuild every manager's reservations and heaps from clrmemtrace events and write a "
	"summary, timeline, map, series or Perfetto document.");
BT_PLUGIN_SINK_COMPONENT_CLASS_HELP(analysis,
	"Parameters: mode (summary, timeline, map, series or perfetto; default summary), "
	"output (the file to write, required), at (map mode: absolute time in ns), "
	"points (series and perfetto modes: samples per counter, default 2000), "
	"max-details (list entries, default 1000). See analysis/README.md.");
