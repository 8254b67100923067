# SPDX-License-Identifier: MIT
"""A Babeltrace2 source component, written in Python, that plays a case's messages.

A *case* is a JSON-able dict describing a trace message by message, so that anything a
trace can hold, well-formed or not, reaches ``sink.clrmemtrace.analysis`` exactly as
written, with no CTF file in between:

``streams``: one dict per stream, each with a stream class of its own (keys optional):

- ``clock``: true (default: 1 GHz, origin at the epoch), false (no clock: events without
  timestamps), or ``{"frequency": HZ, "offset_s": S, "offset_cycles": C}``;
- ``packets``: whether the stream has packets (default true); ``discarded_events`` (default
  true) and ``discarded_packets`` (default false): whether it can say it lost some;
- ``context``: the ``[member, kind]`` pairs of the events' context (default LTTng's
  ``vpid``, ``vtid``, ``procname``; ``[]`` for none) and ``context_place``, ``common``
  (default: the stream class' common context) or ``specific`` (each event class' own);
- ``classes``: ``{event name: [[member, kind]...]}`` replacing the payload schema.py gives
  an event (kinds: schema.INTEGER_KINDS and schema.OTHER_KINDS);
- ``vpid``, ``vtid``, ``procname``: the context of its events unless an event says otherwise.

``messages``: in order,

- ``["ev", STREAM, NAME, TIME, {member: value}, {context member: value}]``: an event (TIME
  in clock cycles; null in a stream without a clock). Integers are wrapped into their
  member's type, so ``hr`` may be written ``0x80070057``; members left out are 0 or "";
- ``["disc", STREAM, COUNT, BEGIN, END]`` and ``["dpkt", ...]``: discarded events or
  packets (COUNT null: unknown; BEGIN and END are used when the stream class has clock
  snapshots for them);
- ``["pb", STREAM, TIME]``, ``["pe", STREAM, TIME]``: packet beginning and end (an event
  outside a packet of a stream with packets opens one);
- ``["se", STREAM]``: the stream's end;
- ``["raise", TEXT]``: the source fails there.

``end_streams`` (default true): end every open packet and stream after the last message;
false stops the iteration right there, streams left open.
"""

import bt2
from bt2 import message as bt2_message
from bt2 import native_bt

from . import schema

DEFAULT_CONTEXT = [list(m) for m in schema.CONTEXT]


def _field_class(tc, kind):
    if kind in schema.INTEGER_KINDS:
        signed, bits = schema.INTEGER_KINDS[kind]
        if kind.startswith("e"):
            if signed:
                fc = tc.create_signed_enumeration_field_class(bits)
                fc.add_mapping("S_OK", bt2.SignedIntegerRangeSet([(0, 0)]))
            else:
                fc = tc.create_unsigned_enumeration_field_class(bits)
                fc.add_mapping("ZERO", bt2.UnsignedIntegerRangeSet([(0, 0)]))
            return fc
        if signed:
            return tc.create_signed_integer_field_class(bits)
        return tc.create_unsigned_integer_field_class(bits)
    if kind == "str":
        return tc.create_string_field_class()
    if kind == "real":
        return tc.create_double_precision_real_field_class()
    if kind == "bool":
        return tc.create_bool_field_class()
    if kind == "array":
        return tc.create_static_array_field_class(tc.create_unsigned_integer_field_class(64), 2)
    if kind == "struct":
        fc = tc.create_structure_field_class()
        fc.append_member("value", tc.create_unsigned_integer_field_class(64))
        return fc
    if kind == "bits":
        return tc.create_bit_array_field_class(64)
    raise ValueError(f"unknown field kind {kind!r}")


def _structure(tc, members):
    fc = tc.create_structure_field_class()
    for name, kind in members:
        fc.append_member(name, _field_class(tc, kind))
    return fc


def _set(field, kind, value):
    """Sets ``field`` (of kind ``kind``) from a JSON value, converted as the kind needs."""
    if kind in schema.INTEGER_KINDS:
        field.value = schema.fit(kind, value if isinstance(value, int) else 0)
    elif kind == "str":
        field.value = value if isinstance(value, str) else str(value)
    elif kind == "real":
        field.value = float(value) if isinstance(value, (int, float)) else 0.0
    elif kind == "bool":
        field.value = bool(value)
    elif kind == "array":
        v = value if isinstance(value, int) else 0
        field[0] = v & (2**64 - 1)
        field[1] = 0
    elif kind == "struct":
        field["value"] = (value if isinstance(value, int) else 0) & (2**64 - 1)
    elif kind == "bits":
        field.value_as_integer = (value if isinstance(value, int) else 0) & (2**64 - 1)


def _default(kind):
    return "" if kind == "str" else 0


def _fill(msg, context, struct, members, values, defaults):
    """Sets the members of structure field ``struct`` (a native pointer) from ``values``.

    Integers and strings are set through Babeltrace2's C functions directly (the Python
    field objects cost about ten times more); other kinds through the field objects.
    """
    for index, (member, kind) in enumerate(members):
        value = values.get(member, defaults.get(member, _default(kind)))
        field = native_bt.field_structure_borrow_member_field_by_index(struct, index)
        integer = schema.INTEGER_KINDS.get(kind)
        if integer is not None:
            value = schema.fit(kind, value if isinstance(value, int) else 0)
            if integer[0]:
                native_bt.field_integer_signed_set_value(field, value)
            else:
                native_bt.field_integer_unsigned_set_value(field, value)
        elif kind == "str":
            status = native_bt.field_string_set_value(
                field, value if isinstance(value, str) else str(value))
            if status != 0:
                raise MemoryError("cannot set a string field")
        else:
            event = msg.event
            parent = event.common_context_field if context else event.payload_field
            if context and parent is None:
                parent = event.specific_context_field
            _set(parent[member], kind, value)


class _Stream:
    """One stream of the case: its class, its event classes, and where it is."""

    def __init__(self, comp, tc, spec, names):
        clock = spec.get("clock", True)
        self.has_clock = clock is not False
        cc = None
        if self.has_clock:
            clock = clock if isinstance(clock, dict) else {}
            cc = comp._create_clock_class(
                frequency=clock.get("frequency", 1_000_000_000),
                offset=bt2.ClockClassOffset(clock.get("offset_s", 0),
                                            clock.get("offset_cycles", 0)),
                origin_is_unix_epoch=True,
            )
        self.packets = spec.get("packets", True)
        context = spec.get("context", DEFAULT_CONTEXT)
        self.context_kinds = dict((m, k) for m, k in context)
        self.context_members = [tuple(m) for m in context]
        self.specific = spec.get("context_place", "common") == "specific"
        common = _structure(tc, context) if context and not self.specific else None
        discarded_events = spec.get("discarded_events", True)
        discarded_packets = self.packets and spec.get("discarded_packets", False)
        self.sc = tc.create_stream_class(
            default_clock_class=cc,
            event_common_context_field_class=common,
            supports_packets=self.packets,
            packets_have_beginning_default_clock_snapshot=self.packets and self.has_clock,
            packets_have_end_default_clock_snapshot=self.packets and self.has_clock,
            supports_discarded_events=discarded_events,
            discarded_events_have_default_clock_snapshots=discarded_events and self.has_clock,
            supports_discarded_packets=discarded_packets,
            discarded_packets_have_default_clock_snapshots=discarded_packets and self.has_clock,
        )
        overrides = spec.get("classes", {})
        self.classes = {}
        for name in names:
            members = overrides.get(name, schema.EVENTS.get(name, ()))
            members = [tuple(m) for m in members]
            specific = _structure(tc, context) if context and self.specific else None
            ec = self.sc.create_event_class(
                name=name,
                payload_field_class=_structure(tc, members),
                specific_context_field_class=specific,
            )
            self.classes[name] = (ec, members)
        self.context_defaults = {
            "vpid": spec.get("vpid", 1000),
            "vtid": spec.get("vtid", spec.get("vpid", 1000)),
            "procname": spec.get("procname", "hostile"),
        }
        self.stream = None
        self.packet = None
        self.begun = False
        self.ended = False
        self.last = 0


class _Iterator(bt2._UserMessageIterator):
    def __init__(self, config, port):
        self._messages = port.user_data.play(self)

    def __next__(self):
        return next(self._messages)


class _Trace:
    """The case's trace class, streams and message generator."""

    def __init__(self, comp, case):
        self.case = case
        tc = comp._create_trace_class()
        names = {}
        for m in case["messages"]:
            if m[0] == "ev":
                names.setdefault(m[1], []).append(m[2])
        self.streams = []
        for i, spec in enumerate(case["streams"]):
            wanted = list(dict.fromkeys(names.get(i, [])))
            self.streams.append(_Stream(comp, tc, spec, wanted))
        trace = tc()
        for s in self.streams:
            s.stream = trace.create_stream(s.sc)

    def play(self, it):
        for m in self.case["messages"]:
            kind = m[0]
            if kind == "raise":
                raise RuntimeError(f"the hostile source fails here: {m[1]}")
            s = self.streams[m[1]]
            if s.ended:
                continue
            if not s.begun:
                s.begun = True
                yield it._create_stream_beginning_message(s.stream)
            if kind == "ev":
                yield from self._event(it, s, m)
            elif kind in ("disc", "dpkt"):
                yield self._discarded(it, s, kind, m)
            elif kind == "pb" and s.packets:
                if s.packet is not None:
                    yield self._packet_end(it, s, m[2])
                yield self._packet_begin(it, s, m[2])
            elif kind == "pe" and s.packets and s.packet is not None:
                yield self._packet_end(it, s, m[2])
            elif kind == "se":
                if s.packet is not None:
                    yield self._packet_end(it, s, s.last)
                s.ended = True
                yield it._create_stream_end_message(s.stream)
        if self.case.get("end_streams", True):
            for s in self.streams:
                if s.begun and not s.ended:
                    if s.packet is not None:
                        yield self._packet_end(it, s, s.last)
                    s.ended = True
                    yield it._create_stream_end_message(s.stream)

    def _time(self, s, t):
        if t is None:
            return s.last
        s.last = t
        return t

    def _packet_begin(self, it, s, t):
        s.packet = s.stream.create_packet()
        if s.has_clock:
            return it._create_packet_beginning_message(s.packet, self._time(s, t))
        return it._create_packet_beginning_message(s.packet)

    def _packet_end(self, it, s, t):
        packet, s.packet = s.packet, None
        if s.has_clock:
            return it._create_packet_end_message(packet, self._time(s, t))
        return it._create_packet_end_message(packet)

    def _event(self, it, s, m):
        _, _, name, t, payload = m[:5]
        context = m[5] if len(m) > 5 else {}
        if s.packets and s.packet is None:
            yield self._packet_begin(it, s, t)
        ec, members = s.classes[name]
        parent = s.packet if s.packets else s.stream
        # As _create_event_message does, less its checks of what this module knows.
        if s.has_clock:
            t = self._time(s, t)
            if not 0 <= t < 2**64:
                raise ValueError(f"a clock snapshot out of range: {t}")
            create = (native_bt.message_event_create_with_packet_and_default_clock_snapshot
                      if s.packets else native_bt.message_event_create_with_default_clock_snapshot)
            ptr = create(it._bt_ptr, ec._ptr, parent._ptr, t)
        else:
            create = native_bt.message_event_create_with_packet if s.packets \
                else native_bt.message_event_create
            ptr = create(it._bt_ptr, ec._ptr, parent._ptr)
        if ptr is None:
            raise MemoryError("cannot create an event message")
        msg = bt2_message._EventMessage(ptr)
        event = native_bt.message_event_borrow_event(ptr)
        _fill(msg, False, native_bt.event_borrow_payload_field(event), members, payload, {})
        if s.context_kinds:
            ptr = (native_bt.event_borrow_specific_context_field(event) if s.specific
                   else native_bt.event_borrow_common_context_field(event))
            _fill(msg, True, ptr, s.context_members, context, s.context_defaults)
        yield msg

    def _discarded(self, it, s, kind, m):
        _, _, count, begin, end = m
        if kind == "disc":
            create = it._create_discarded_events_message
            timed = s.sc.discarded_events_have_default_clock_snapshots
        else:
            create = it._create_discarded_packets_message
            timed = s.sc.discarded_packets_have_default_clock_snapshots
        if timed:
            begin = self._time(s, begin)
            end = self._time(s, end if end is not None else begin)
            return create(s.stream, count, begin, end)
        return create(s.stream, count)


class Source(bt2._UserSourceComponent, message_iterator_class=_Iterator):
    """``obj``: the case (see the module's documentation)."""

    def __init__(self, config, params, obj):
        self._add_output_port("out", _Trace(self, obj))
