/* SPDX-License-Identifier: MIT */
/*
 * Logging for the plugin. Babeltrace2's own logging macros are internal to
 * its source tree, so this header keeps their shape: each file defines
 * BT_LOG_TAG before including it, and a component's log level and
 * self-component come from the private structure `a`.
 */
#ifndef CLRMEMTRACE_ANALYSIS_LOG_H
#define CLRMEMTRACE_ANALYSIS_LOG_H

#include <babeltrace2/babeltrace.h>
#include <stdio.h>

#ifndef BT_LOG_TAG
#error "Define BT_LOG_TAG before including log.h."
#endif

#define CMT_LOG(_a, _level, _letter, _fmt, ...)                                             \
	do {                                                                                  \
		if ((_a)->log_level <= (_level)) {                                            \
			fprintf(stderr, _letter " " BT_LOG_TAG ": " _fmt "\n", ##__VA_ARGS__); \
		}                                                                             \
	} while (0)

#define CMT_LOGD(_a, _fmt, ...) CMT_LOG(_a, BT_LOGGING_LEVEL_DEBUG, "D", _fmt, ##__VA_ARGS__)
#define CMT_LOGI(_a, _fmt, ...) CMT_LOG(_a, BT_LOGGING_LEVEL_INFO, "I", _fmt, ##__VA_ARGS__)
#define CMT_LOGW(_a, _fmt, ...) CMT_LOG(_a, BT_LOGGING_LEVEL_WARNING, "W", _fmt, ##__VA_ARGS__)
#define CMT_LOGE(_a, _fmt, ...) CMT_LOG(_a, BT_LOGGING_LEVEL_ERROR, "E", _fmt, ##__VA_ARGS__)

/* Logs an error and appends it to the current thread's error as a cause. */
#define CMT_LOGE_APPEND_CAUSE(_a, _fmt, ...)                                              \
	do {                                                                               \
		CMT_LOGE(_a, _fmt, ##__VA_ARGS__);                                         \
		(void)BT_CURRENT_THREAD_ERROR_APPEND_CAUSE_FROM_COMPONENT((_a)->self_comp, \
									  _fmt,            \
									  ##__VA_ARGS__);  \
	} while (0)

#endif /* CLRMEMTRACE_ANALYSIS_LOG_H */
