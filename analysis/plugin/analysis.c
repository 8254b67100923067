/* SPDX-License-Identifier: MIT */
/*
 * sink.clrmemtrace.analysis: parameters, the message loop, and the decoding
 * of events into struct cmt_event for the engine.
 */
#define BT_LOG_TAG "PLUGIN/SINK.CLRMEMTRACE.ANALYSIS"
#include "log.h"

#include "analysis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define IN_PORT "in"
#define MAX_POINTS UINT64_C(1000000)
#define MAX_DETAILS UINT64_C(10000000)
#define DEFAULT_POINTS 2000
#define DEFAULT_MAX_DETAILS 1000

/* ---------- Parameters ---------- */

enum param_kind {
	PARAM_STRING,
	PARAM_INTEGER,
};

struct param_desc {
	const char *name;
	enum param_kind kind;
};

static const struct param_desc param_table[] = {
	{ "mode", PARAM_STRING },
	{ "output", PARAM_STRING },
	{ "at", PARAM_INTEGER },
	{ "points", PARAM_INTEGER },
	{ "max-details", PARAM_INTEGER },
};

static const char *const mode_names[] = {
	[CMT_MODE_SUMMARY] = "summary",   [CMT_MODE_TIMELINE] = "timeline",
	[CMT_MODE_MAP] = "map",           [CMT_MODE_SERIES] = "series",
	[CMT_MODE_PERFETTO] = "perfetto",
};

struct param_check {
	struct analysis *a;
	bool ok;
};

static const struct param_desc *find_param(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(param_table) / sizeof(param_table[0]); i++) {
		if (strcmp(param_table[i].name, key) == 0) {
			return &param_table[i];
		}
	}
	return NULL;
}

static bt_value_map_foreach_entry_const_func_status check_entry(const char *key,
								const bt_value *value, void *data)
{
	struct param_check *c = data;
	const struct param_desc *d = find_param(key);
	bt_value_type type = bt_value_get_type(value);

	if (!d) {
		CMT_LOGE_APPEND_CAUSE(c->a,
				      "Unknown parameter: name=\"%s\" (expected mode, output, at, "
				      "points or max-details)",
				      key);
		c->ok = false;
	} else if (d->kind == PARAM_STRING && type != BT_VALUE_TYPE_STRING) {
		CMT_LOGE_APPEND_CAUSE(c->a, "Parameter `%s` must be a string.", key);
		c->ok = false;
	} else if (d->kind == PARAM_INTEGER && type != BT_VALUE_TYPE_SIGNED_INTEGER &&
		   type != BT_VALUE_TYPE_UNSIGNED_INTEGER) {
		CMT_LOGE_APPEND_CAUSE(c->a, "Parameter `%s` must be an integer.", key);
		c->ok = false;
	}
	/* An error cause appended here must come with an error status. */
	return c->ok ? BT_VALUE_MAP_FOREACH_ENTRY_CONST_FUNC_STATUS_OK
		     : BT_VALUE_MAP_FOREACH_ENTRY_CONST_FUNC_STATUS_ERROR;
}

/* Reads integer parameter `key` into *out, within [min, max]; false on a bad value. */
static bool integer_param(struct analysis *a, const bt_value *params, const char *key,
			  int64_t min, uint64_t max, bool *given, uint64_t *out, int64_t *sout)
{
	const bt_value *v = bt_value_map_borrow_entry_value_const(params, key);
	int64_t s;
	uint64_t u;

	*given = v != NULL;
	if (!v) {
		return true;
	}
	if (bt_value_get_type(v) == BT_VALUE_TYPE_SIGNED_INTEGER) {
		s = bt_value_integer_signed_get(v);
		if (s < min || (s >= 0 && (uint64_t)s > max)) {
			goto range;
		}
		*sout = s;
		*out = (uint64_t)s;
		return true;
	}
	u = bt_value_integer_unsigned_get(v);
	if (u > max || (min > 0 && u < (uint64_t)min)) {
		goto range;
	}
	*out = u;
	*sout = (int64_t)u;
	return true;
range:
	CMT_LOGE_APPEND_CAUSE(
		a, "Parameter `%s` is out of range: expected %" PRId64 " to %" PRIu64 ".", key, min,
		max);
	return false;
}

static bool read_params(struct analysis *a, const bt_value *params, const char **output)
{
	struct param_check c = { a, true };
	const bt_value *v;
	bool given;
	uint64_t u;
	int64_t s;
	size_t i;

	a->cfg.mode = CMT_MODE_SUMMARY;
	a->cfg.points = DEFAULT_POINTS;
	a->cfg.max_details = DEFAULT_MAX_DETAILS;
	*output = NULL;
	if (!params || bt_value_get_type(params) != BT_VALUE_TYPE_MAP) {
		CMT_LOGE_APPEND_CAUSE(a, "Parameters must be a map.");
		return false;
	}
	if (bt_value_map_foreach_entry_const(params, check_entry, &c) !=
		    BT_VALUE_MAP_FOREACH_ENTRY_CONST_STATUS_OK ||
	    !c.ok) {
		return false;
	}
	v = bt_value_map_borrow_entry_value_const(params, "mode");
	if (v) {
		const char *mode = bt_value_string_get(v);

		for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
			if (strcmp(mode, mode_names[i]) == 0) {
				break;
			}
		}
		if (i == sizeof(mode_names) / sizeof(mode_names[0])) {
			CMT_LOGE_APPEND_CAUSE(a,
					      "Invalid `mode` parameter: \"%s\" (expected summary, "
					      "timeline, map, series or perfetto).",
					      mode);
			return false;
		}
		a->cfg.mode = (enum cmt_mode)i;
	}
	v = bt_value_map_borrow_entry_value_const(params, "output");
	if (!v || !*bt_value_string_get(v)) {
		CMT_LOGE_APPEND_CAUSE(a, "Missing `output` parameter: the file to write.");
		return false;
	}
	*output = bt_value_string_get(v);
	if (!integer_param(a, params, "at", INT64_MIN, INT64_MAX, &given, &u, &s)) {
		return false;
	}
	a->cfg.at_ns = s;
	if (a->cfg.mode == CMT_MODE_MAP && !given) {
		CMT_LOGE_APPEND_CAUSE(a, "Missing `at` parameter: map mode needs a time (ns).");
		return false;
	}
	if (!integer_param(a, params, "points", 1, MAX_POINTS, &given, &u, &s)) {
		return false;
	}
	if (given) {
		a->cfg.points = u;
	}
	if (!integer_param(a, params, "max-details", 0, MAX_DETAILS, &given, &u, &s)) {
		return false;
	}
	if (given) {
		a->cfg.max_details = u;
	}
	return true;
}

/* ---------- Event classes ---------- */

static bool read_kind(const bt_field_class *fc, bool want_string, uint8_t *read)
{
	bt_field_class_type t = bt_field_class_get_type(fc);

	if (want_string) {
		if (t != BT_FIELD_CLASS_TYPE_STRING) {
			return false;
		}
		*read = READ_STRING;
		return true;
	}
	if (bt_field_class_type_is(t, BT_FIELD_CLASS_TYPE_UNSIGNED_INTEGER)) {
		*read = READ_UNSIGNED;
		return true;
	}
	if (bt_field_class_type_is(t, BT_FIELD_CLASS_TYPE_SIGNED_INTEGER)) {
		*read = READ_SIGNED;
		return true;
	}
	return false;
}

/* The index of member `name` of structure class fc, or -1. */
static int64_t member_index(const bt_field_class *fc, const char *name,
			    const bt_field_class **member_fc)
{
	uint64_t i, n;

	if (!fc || bt_field_class_get_type(fc) != BT_FIELD_CLASS_TYPE_STRUCTURE) {
		return -1;
	}
	n = bt_field_class_structure_get_member_count(fc);
	for (i = 0; i < n && i < INT32_MAX; i++) {
		const bt_field_class_structure_member *m =
			bt_field_class_structure_borrow_member_by_index_const(fc, i);

		if (strcmp(bt_field_class_structure_member_get_name(m), name) == 0) {
			*member_fc = bt_field_class_structure_member_borrow_field_class_const(m);
			return (int64_t)i;
		}
	}
	return -1;
}

/* Finds the vpid, vtid and procname context members in fc; false if fc has none. */
static bool find_context(struct ev_handler *h, const bt_field_class *fc)
{
	const bt_field_class *mfc;
	uint8_t read;
	int64_t i;

	h->vpid_index = h->vtid_index = h->procname_index = -1;
	i = member_index(fc, "vpid", &mfc);
	if (i >= 0 && read_kind(mfc, false, &read)) {
		h->vpid_index = i;
		h->vpid_signed = read == READ_SIGNED;
	}
	i = member_index(fc, "vtid", &mfc);
	if (i >= 0 && read_kind(mfc, false, &read)) {
		h->vtid_index = i;
		h->vtid_signed = read == READ_SIGNED;
	}
	i = member_index(fc, "procname", &mfc);
	if (i >= 0 && read_kind(mfc, true, &read)) {
		h->procname_index = i;
	}
	return h->vpid_index >= 0 || h->vtid_index >= 0 || h->procname_index >= 0;
}

static struct ev_handler *build_handler(struct analysis *a, const bt_event_class *ec)
{
	struct ev_handler *h = calloc(1, sizeof(*h));
	const bt_stream_class *sc = bt_event_class_borrow_stream_class_const(ec);
	const struct cmt_event_desc *d;
	const bt_field_class *payload;
	unsigned int i;

	if (!h) {
		return NULL;
	}
	h->event_class = ec;
	bt_event_class_get_ref(ec);
	h->type = cmt_event_type_from_name(bt_event_class_get_name(ec));
	h->has_clock = bt_stream_class_borrow_default_clock_class_const(sc) != NULL;
	h->vpid_index = h->vtid_index = h->procname_index = -1;
	if (h->type == CMT_EV_FOREIGN || h->type == CMT_EV_UNKNOWN) {
		return h;
	}
	h->context_common = true;
	if (!find_context(h, bt_stream_class_borrow_event_common_context_field_class_const(sc))) {
		h->context_common = false;
		find_context(h, bt_event_class_borrow_specific_context_field_class_const(ec));
	}
	d = &cmt_events[h->type];
	payload = bt_event_class_borrow_payload_field_class_const(ec);
	for (i = 0; i < d->nmembers; i++) {
		const struct cmt_member *m = &d->members[i];
		const bt_field_class *mfc;
		int64_t index = member_index(payload, m->name, &mfc);
		uint8_t read;

		if (index >= 0 && read_kind(mfc, m->kind == CMT_KIND_STRING, &read)) {
			struct member_reader *r = &h->readers[h->nreaders++];

			r->index = (uint32_t)index;
			r->slot = m->slot;
			r->read = read;
			if (m->kind == CMT_KIND_STRING) {
				h->spresent |= 1u << m->slot;
			} else {
				h->present |= UINT64_C(1) << m->slot;
			}
		} else {
			if (m->required) {
				CMT_LOGW(a,
					 "Event class lacks a member or has it with another type: "
					 "event-class-name=\"%s\", member-name=\"%s\"",
					 bt_event_class_get_name(ec), m->name);
			}
			if (m->kind == CMT_KIND_INT) {
				h->zero[h->nzero++] = m->slot;
			}
		}
	}
	return h;
}

static void free_handlers(struct analysis *a)
{
	uint32_t i;

	for (i = 0; i < a->handlers.cap; i++) {
		struct ev_handler *h = a->handlers.slots[i].val;

		if (h) {
			bt_event_class_put_ref(h->event_class);
			free(h);
		}
	}
	cmt_map_fini(&a->handlers);
	a->last_class = NULL;
	a->last_handler = NULL;
}

static struct ev_handler *get_handler(struct analysis *a, const bt_event_class *ec)
{
	struct ev_handler *h;

	if (ec == a->last_class) {
		return a->last_handler;
	}
	h = cmt_map_get(&a->handlers, (uint64_t)(uintptr_t)ec);
	if (!h) {
		h = build_handler(a, ec);
		if (!h) {
			return NULL;
		}
		if (cmt_map_put(&a->handlers, (uint64_t)(uintptr_t)ec, h) != 0) {
			bt_event_class_put_ref(h->event_class);
			free(h);
			return NULL;
		}
	}
	a->last_class = ec;
	a->last_handler = h;
	return h;
}

/* ---------- Messages ---------- */

/*
 * A clock snapshot's time in ns from its clock's origin; false when it does
 * not fit in 64 bits. Babeltrace2 then also sets an error on the current
 * thread, which must not outlive this call: the library aborts at the next
 * API call made with an error set (the source's next packet, say).
 */
static bool ns_from_origin(const bt_clock_snapshot *cs, int64_t *ns)
{
	if (bt_clock_snapshot_get_ns_from_origin(cs, ns) ==
	    BT_CLOCK_SNAPSHOT_GET_NS_FROM_ORIGIN_STATUS_OK) {
		return true;
	}
	bt_current_thread_clear_error();
	return false;
}

static uint64_t read_uint(const bt_field *f, bool is_signed)
{
	return is_signed ? (uint64_t)bt_field_integer_signed_get_value(f)
			 : bt_field_integer_unsigned_get_value(f);
}

/*
 * A string field's value. Babeltrace2 2.0's CTF source recycles events and
 * clears an empty string by its length only, so the text it returns for
 * one may be an earlier event's: the length says it is empty.
 */
static const char *string_value(const bt_field *f)
{
	return bt_field_string_get_length(f) ? bt_field_string_get_value(f) : "";
}

/* Returns 0, or -1 when memory ran out. */
static int handle_event(struct analysis *a, const bt_message *msg)
{
	const bt_event *event = bt_message_event_borrow_event_const(msg);
	struct ev_handler *h = get_handler(a, bt_event_borrow_class_const(event));
	struct cmt_event *ev = &a->event;
	unsigned int i;

	if (!h) {
		return -1;
	}
	if (h->type == CMT_EV_FOREIGN) {
		return 0;
	}
	ev->type = h->type;
	ev->has_time = false;
	if (h->has_clock) {
		const bt_clock_snapshot *cs =
			bt_message_event_borrow_default_clock_snapshot_const(msg);
		int64_t ns;

		if (ns_from_origin(cs, &ns)) {
			ev->time_ns = ns;
			ev->has_time = true;
		}
	}
	ev->present = h->present;
	ev->spresent = h->spresent;
	ev->has_vpid = false;
	ev->vpid = 0;
	ev->tid = 0;
	ev->procname = NULL;
	if (h->type != CMT_EV_UNKNOWN) {
		const bt_field *payload = h->nreaders ? bt_event_borrow_payload_field_const(event)
						      : NULL;
		const bt_field *ctx;

		for (i = 0; payload && i < h->nreaders; i++) {
			const struct member_reader *r = &h->readers[i];
			const bt_field *f = bt_field_structure_borrow_member_field_by_index_const(
				payload, r->index);

			switch (r->read) {
			case READ_UNSIGNED:
				ev->f[r->slot] = bt_field_integer_unsigned_get_value(f);
				break;
			case READ_SIGNED:
				ev->f[r->slot] = (uint64_t)bt_field_integer_signed_get_value(f);
				break;
			default:
				ev->s[r->slot] = string_value(f);
				break;
			}
		}
		for (i = 0; i < h->nzero; i++) {
			ev->f[h->zero[i]] = 0;
		}
		ctx = h->context_common ? bt_event_borrow_common_context_field_const(event)
					: bt_event_borrow_specific_context_field_const(event);
		if (ctx) {
			if (h->vpid_index >= 0) {
				ev->vpid = read_uint(
					bt_field_structure_borrow_member_field_by_index_const(
						ctx, (uint64_t)h->vpid_index),
					h->vpid_signed);
				ev->has_vpid = true;
			}
			if (h->vtid_index >= 0) {
				ev->tid = read_uint(
					bt_field_structure_borrow_member_field_by_index_const(
						ctx, (uint64_t)h->vtid_index),
					h->vtid_signed);
			}
			if (h->procname_index >= 0) {
				ev->procname = string_value(
					bt_field_structure_borrow_member_field_by_index_const(
						ctx, (uint64_t)h->procname_index));
			}
		}
	}
	cmt_engine_event(a->engine, ev);
	return 0;
}

static const bt_clock_snapshot *beginning_of_events(const bt_message *msg)
{
	return bt_message_discarded_events_borrow_beginning_default_clock_snapshot_const(msg);
}

static const bt_clock_snapshot *beginning_of_packets(const bt_message *msg)
{
	return bt_message_discarded_packets_borrow_beginning_default_clock_snapshot_const(msg);
}

static void handle_discarded(struct analysis *a, const bt_message *msg, bool packets)
{
	const bt_stream *stream = packets ? bt_message_discarded_packets_borrow_stream_const(msg)
					  : bt_message_discarded_events_borrow_stream_const(msg);
	const bt_stream_class *sc = bt_stream_borrow_class_const(stream);
	const bt_clock_snapshot *cs = NULL;
	bt_property_availability avail;
	bool has_time = false;
	uint64_t count = 0;
	int64_t ns = 0;

	if (packets) {
		if (bt_stream_class_discarded_packets_have_default_clock_snapshots(sc)) {
			cs = beginning_of_packets(msg);
		}
		avail = bt_message_discarded_packets_get_count(msg, &count);
	} else {
		if (bt_stream_class_discarded_events_have_default_clock_snapshots(sc)) {
			cs = beginning_of_events(msg);
		}
		avail = bt_message_discarded_events_get_count(msg, &count);
	}
	if (cs && ns_from_origin(cs, &ns)) {
		has_time = true;
	}
	CMT_LOGI(a, "Discarded %s: count=%" PRIu64 ", count-known=%d, begin-ns=%" PRId64,
		 packets ? "packets" : "events", count, avail == BT_PROPERTY_AVAILABILITY_AVAILABLE,
		 ns);
	cmt_engine_discarded(a->engine, packets, avail == BT_PROPERTY_AVAILABILITY_AVAILABLE, count,
			     has_time, ns);
}

/* Finishes the document and moves it into place. Returns false on failure. */
static bool finish(struct analysis *a)
{
	int err;

	a->ended = true;
	cmt_engine_finish(a->engine);
	if (cmt_engine_failed(a->engine)) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot complete the analysis: out of memory.");
		return false;
	}
	err = cmt_out_commit(&a->out);
	a->out_open = false;
	if (err) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot write the output file: %s", strerror(err));
		return false;
	}
	return true;
}

/* ---------- Methods ---------- */

static void destroy(struct analysis *a)
{
	if (!a) {
		return;
	}
	bt_message_iterator_put_ref(a->iterator);
	cmt_engine_destroy(a->engine);
	if (a->out_open) {
		cmt_out_abandon(&a->out);
	}
	free_handlers(a);
	free(a);
}

bt_component_class_initialize_method_status
analysis_init(bt_self_component_sink *self_comp, bt_self_component_sink_configuration *config,
	      const bt_value *params, void *init_data)
{
	bt_component_class_initialize_method_status status;
	struct analysis *a = calloc(1, sizeof(*a));
	const char *output;
	int err;

	(void)config;
	(void)init_data;
	if (!a) {
		BT_CURRENT_THREAD_ERROR_APPEND_CAUSE_FROM_COMPONENT(
			bt_self_component_sink_as_self_component(self_comp),
			"Cannot allocate the component's private data.");
		return BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_MEMORY_ERROR;
	}
	a->self_comp = bt_self_component_sink_as_self_component(self_comp);
	a->log_level = bt_component_get_logging_level(bt_self_component_as_component(a->self_comp));
	if (bt_self_component_sink_add_input_port(self_comp, IN_PORT, NULL, NULL) !=
	    BT_SELF_COMPONENT_ADD_PORT_STATUS_OK) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot add the input port: port-name=\"%s\"", IN_PORT);
		status = BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_ERROR;
		goto error;
	}
	if (!read_params(a, params, &output)) {
		status = BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_ERROR;
		goto error;
	}
	err = cmt_out_open(&a->out, output);
	if (err) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot open the output file: path=\"%s.tmp\": %s", output,
				      strerror(err));
		status = err == ENOMEM ? BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_MEMORY_ERROR
				       : BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_ERROR;
		goto error;
	}
	a->out_open = true;
	a->engine = cmt_engine_create(&a->cfg, &a->out);
	if (!a->engine) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot create the analysis engine.");
		status = BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_MEMORY_ERROR;
		goto error;
	}
	CMT_LOGI(a, "Created the analysis: mode=%s, output=\"%s\"", mode_names[a->cfg.mode],
		 output);
	bt_self_component_set_data(a->self_comp, a);
	status = BT_COMPONENT_CLASS_INITIALIZE_METHOD_STATUS_OK;
	goto end;
error:
	destroy(a);
end:
	return status;
}

void analysis_finalize(bt_self_component_sink *self_comp)
{
	struct analysis *a =
		bt_self_component_get_data(bt_self_component_sink_as_self_component(self_comp));

	destroy(a);
}

bt_component_class_sink_graph_is_configured_method_status
analysis_graph_is_configured(bt_self_component_sink *self_comp)
{
	struct analysis *a =
		bt_self_component_get_data(bt_self_component_sink_as_self_component(self_comp));
	bt_self_component_port_input *port =
		bt_self_component_sink_borrow_input_port_by_name(self_comp, IN_PORT);
	bt_message_iterator_create_from_sink_component_status status;

	if (!bt_port_is_connected(bt_self_component_port_as_port(
		    bt_self_component_port_input_as_self_component_port(port)))) {
		CMT_LOGE_APPEND_CAUSE(a, "The input port is not connected: port-name=\"%s\"",
				      IN_PORT);
		return BT_COMPONENT_CLASS_SINK_GRAPH_IS_CONFIGURED_METHOD_STATUS_ERROR;
	}
	status = bt_message_iterator_create_from_sink_component(self_comp, port, &a->iterator);
	if (status == BT_MESSAGE_ITERATOR_CREATE_FROM_SINK_COMPONENT_STATUS_MEMORY_ERROR) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot create the input message iterator: no memory.");
		return BT_COMPONENT_CLASS_SINK_GRAPH_IS_CONFIGURED_METHOD_STATUS_MEMORY_ERROR;
	}
	if (status != BT_MESSAGE_ITERATOR_CREATE_FROM_SINK_COMPONENT_STATUS_OK) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot create the input message iterator.");
		return BT_COMPONENT_CLASS_SINK_GRAPH_IS_CONFIGURED_METHOD_STATUS_ERROR;
	}
	return BT_COMPONENT_CLASS_SINK_GRAPH_IS_CONFIGURED_METHOD_STATUS_OK;
}

bt_component_class_sink_consume_method_status analysis_consume(bt_self_component_sink *self_comp)
{
	struct analysis *a =
		bt_self_component_get_data(bt_self_component_sink_as_self_component(self_comp));
	bt_component_class_sink_consume_method_status status;
	bt_message_iterator_next_status next;
	bt_message_array_const msgs;
	uint64_t count, i;
	bool oom = false;

	if (a->ended) {
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_END;
	}
	next = bt_message_iterator_next(a->iterator, &msgs, &count);
	switch (next) {
	case BT_MESSAGE_ITERATOR_NEXT_STATUS_OK:
		break;
	case BT_MESSAGE_ITERATOR_NEXT_STATUS_AGAIN:
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_AGAIN;
	case BT_MESSAGE_ITERATOR_NEXT_STATUS_END:
		if (!finish(a)) {
			return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_ERROR;
		}
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_END;
	case BT_MESSAGE_ITERATOR_NEXT_STATUS_MEMORY_ERROR:
		CMT_LOGE_APPEND_CAUSE(a, "Cannot read the trace: out of memory upstream.");
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_MEMORY_ERROR;
	default:
		CMT_LOGE_APPEND_CAUSE(a, "Cannot read the trace: its source failed.");
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_ERROR;
	}
	for (i = 0; i < count; i++) {
		const bt_message *msg = msgs[i];

		if (!oom && !cmt_engine_done(a->engine)) {
			switch (bt_message_get_type(msg)) {
			case BT_MESSAGE_TYPE_EVENT:
				oom = handle_event(a, msg) != 0;
				break;
			case BT_MESSAGE_TYPE_DISCARDED_EVENTS:
				handle_discarded(a, msg, false);
				break;
			case BT_MESSAGE_TYPE_DISCARDED_PACKETS:
				handle_discarded(a, msg, true);
				break;
			default:
				/* Stream and packet boundaries, inactivity: nothing to rebuild. */
				break;
			}
		}
		bt_message_put_ref(msg);
	}
	if (oom || cmt_engine_failed(a->engine)) {
		CMT_LOGE_APPEND_CAUSE(a, "Cannot continue the analysis: out of memory.");
		return BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_MEMORY_ERROR;
	}
	status = BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_OK;
	if (cmt_engine_done(a->engine)) {
		/* Map mode went past `at`: the document is written, the rest is not needed. */
		status = finish(a) ? BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_END
				   : BT_COMPONENT_CLASS_SINK_CONSUME_METHOD_STATUS_ERROR;
	}
	return status;
}
