# SPDX-License-Identifier: MIT
"""Runs the reconstruction on a trace and hands back its documents.

Two engines produce the same documents (analysis/README.md, "The plugin's output"):

- ``plugin``: the Babeltrace2 C component ``sink.clrmemtrace.analysis``, run in a graph
  ``source.ctf.fs`` -> ``filter.utils.muxer`` -> ``sink.clrmemtrace.analysis``;
- ``oracle``: the pure-Python reference reconstruction of ``oracle.py`` (slow, for tests).

The engine is chosen by the ``engine`` argument of each function, else by the
``CLRMEMTRACE_ENGINE`` environment variable, else ``plugin``.

``summary`` can analyse part of a trace: given a ``time_range`` (begin and end in ns from
the clock's origin, inclusive, either None for no bound), a ``filter.utils.trimmer`` between
the muxer and the plugin drops every message outside it, so the plugin sees the events of
the range as if the trace held nothing else (only the plugin engine does this).

The plugin is looked up in ``$CLRMEMTRACE_PLUGIN_PATH`` (a directory), else in the
``build*/analysis/plugin`` directories of the source tree holding this package (the most
recently built first), else among the installed Babeltrace2 plugins.

Every failure the user can act on is raised as ``UserError`` with the documented exit
status: 3 when the input cannot be analysed, 4 when it holds no ``clrmemtrace`` events.
"""

import collections
import csv
import glob
import io
import json
import os
import struct
import tempfile

from clrmemtrace.cli import UserError
from clrmemtrace.paths import installed_dir, repository_root

EXIT_CANNOT_ANALYSE = 3
EXIT_NO_EVENTS = 4

ENGINES = ("plugin", "oracle")
ENGINE_ENV = "CLRMEMTRACE_ENGINE"
PLUGIN_PATH_ENV = "CLRMEMTRACE_PLUGIN_PATH"
PLUGIN_NAME = "clrmemtrace"
SINK_NAME = "analysis"
PROVIDER = "clrmemtrace"
# The interposer's provider (libclrmemtrace-preload.so): its events are analysed too.
OS_PROVIDER = "clrmemtrace_os"
PROVIDER_PREFIXES = (PROVIDER + ":", OS_PROVIDER + ":")

TIMELINE_COLUMNS = (
    "time_ns",
    "vpid",
    "tid",
    "manager_id",
    "op",
    "allocation_base",
    "address",
    "size",
    "protect",
    "old_protect",
    "level",
    "hr",
    "seq",
)

# Timeline columns holding integers; the addresses among them are written 0x...
TIMELINE_INT_COLUMNS = (
    "time_ns",
    "vpid",
    "tid",
    "manager_id",
    "allocation_base",
    "address",
    "size",
    "seq",
)
TIMELINE_ADDRESS_COLUMNS = ("allocation_base", "address")

TraceInfo = collections.namedtuple("TraceInfo", "path first_ns")
TraceInfo.__doc__ = """A trace that can be analysed: its path and its first event's time (ns)."""


def import_bt2():
    """Import Babeltrace2's Python bindings, or explain how to get them."""
    try:
        import bt2
    except ImportError:
        raise UserError(
            "Babeltrace2's Python bindings (bt2) are missing: install python3-bt2 and run "
            "with /usr/bin/python3",
            EXIT_CANNOT_ANALYSE,
        ) from None
    return bt2


def engine_name(engine=None):
    """The engine to use: ``engine`` if given, else $CLRMEMTRACE_ENGINE, else ``plugin``."""
    name = engine or os.environ.get(ENGINE_ENV) or "plugin"
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r} (choose plugin or oracle)", EXIT_CANNOT_ANALYSE)
    return name


def bt2_error_message(error):
    """The root cause of a bt2 error, on one line."""
    for cause in error:
        message = " ".join(str(cause.message).split())
        if message:
            return message
    return " ".join(str(error).split()[:40]) or "Babeltrace2 failed"


def _plugin_in_directory(bt2, directory):
    """The clrmemtrace plugin found in ``directory``, or None."""
    if not os.path.isdir(directory):
        return None
    try:
        plugins = bt2.find_plugins_in_path(directory, recurse=False, fail_on_load_error=False)
    except bt2._Error:
        return None
    for plugin in plugins or ():
        if plugin.name == PLUGIN_NAME and SINK_NAME in plugin.sink_component_classes:
            return plugin
    return None


def _needs_sanitizer_runtime(shared_object):
    """Whether a shared object was built with a sanitizer that must load first.

    Loading such a plugin into a Python not started with the sanitizer's runtime preloaded
    ends the process, so the search of build directories skips it.
    """
    if any(name in os.environ.get("LD_PRELOAD", "") for name in ("libasan", "libtsan")):
        return False
    try:
        with open(shared_object, "rb") as f:
            data = f.read()
    except OSError:
        return True
    return b"libasan.so" in data or b"libtsan.so" in data


def build_plugin_directories():
    """The ``build*/analysis/plugin`` directories of the source tree, newest build first.

    Builds with AddressSanitizer or ThreadSanitizer are left out (see
    ``_needs_sanitizer_runtime``).
    """
    found = []
    for directory in glob.glob(os.path.join(repository_root(), "build*", "analysis", "plugin")):
        objects = glob.glob(os.path.join(directory, "*.so"))
        if objects and not any(_needs_sanitizer_runtime(o) for o in objects):
            found.append((max(os.path.getmtime(o) for o in objects), directory))
    return [directory for _, directory in sorted(found, reverse=True)]


def _installed_plugin_directories():
    """The plugin directory this package was installed with, when it was installed."""
    directory = installed_dir("PLUGINDIR")
    return [directory] if directory else []


def find_plugin():
    """The Babeltrace2 plugin holding ``sink.clrmemtrace.analysis``."""
    bt2 = import_bt2()
    explicit = os.environ.get(PLUGIN_PATH_ENV)
    if explicit:
        plugin = _plugin_in_directory(bt2, explicit)
        if plugin is None:
            raise UserError(
                f"{PLUGIN_PATH_ENV}={explicit}: no clrmemtrace Babeltrace2 plugin there",
                EXIT_CANNOT_ANALYSE,
            )
        return plugin
    for directory in build_plugin_directories() + _installed_plugin_directories():
        plugin = _plugin_in_directory(bt2, directory)
        if plugin is not None:
            return plugin
    try:
        plugin = bt2.find_plugin(PLUGIN_NAME)
    except bt2._Error:
        plugin = None
    if plugin is not None and SINK_NAME in plugin.sink_component_classes:
        return plugin
    raise UserError(
        "the clrmemtrace Babeltrace2 plugin is not installed: build it "
        "(meson setup build && ninja -C build, which needs libbabeltrace2-dev) or install it, "
        f"or set {PLUGIN_PATH_ENV} to the directory holding it",
        EXIT_CANNOT_ANALYSE,
    )


METADATA_MAGIC = 0x75D11D57
METADATA_HEADER = 37  # magic, uuid, checksum, content and packet sizes, five schemes/versions


def check_metadata(trace_dir):
    """Raise ``UserError`` (3) when a packetized metadata file is cut inside a packet.

    Babeltrace2 2.0 loops forever on such a file (a metadata packet whose content runs past
    the end of the file) instead of failing, so this is checked before it reads the trace.
    Text metadata, and metadata that is complete, pass.
    """
    path = os.path.join(trace_dir, "metadata")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"{path}: {e.strerror}", EXIT_CANNOT_ANALYSE) from None
    if len(data) < 4:
        raise UserError(f"{path}: the metadata file is empty or cut short", EXIT_CANNOT_ANALYSE)
    for order in ("<", ">"):
        if struct.unpack(order + "I", data[:4])[0] == METADATA_MAGIC:
            break
    else:
        return
    offset = 0
    while offset < len(data):
        header = data[offset : offset + METADATA_HEADER]
        if len(header) < METADATA_HEADER:
            break_reason = "a packet header is cut short"
        else:
            magic, content_bits, packet_bits = struct.unpack(order + "I20xII", header[:32])
            break_reason = None
            if magic != METADATA_MAGIC:
                break_reason = f"no packet magic number at byte {offset}"
            elif not METADATA_HEADER * 8 <= content_bits <= packet_bits or packet_bits % 8:
                break_reason = f"invalid packet sizes at byte {offset}"
            elif offset + content_bits // 8 > len(data):
                break_reason = f"the packet at byte {offset} is cut short"
        if break_reason:
            raise UserError(f"{path}: corrupt metadata ({break_reason})", EXIT_CANNOT_ANALYSE)
        offset += packet_bits // 8


def ctf_inputs(path):
    """The CTF trace directories at or under ``path`` (those holding a ``metadata`` file).

    An LTTng session's output directory holds one trace per buffer owner (for example
    ``ust/uid/0/64-bit``); they are all read together.
    """
    found = []
    if os.path.isfile(os.path.join(path, "metadata")):
        found.append(path)
    else:
        for directory, subdirectories, files in os.walk(path):
            subdirectories.sort()
            if "metadata" in files:
                found.append(directory)
                subdirectories[:] = []
    if not found:
        raise UserError(
            f"{path}: not a trace (no CTF metadata file in it or below it)", EXIT_CANNOT_ANALYSE
        )
    for directory in found:
        check_metadata(directory)
    return found


def ctf_source_spec(bt2, path):
    """A ``source.ctf.fs`` component reading the trace(s) under ``path``."""
    return bt2.ComponentSpec.from_named_plugin_and_component_class(
        "ctf", "fs", {"inputs": ctf_inputs(path)}
    )


def open_trace_check(path):
    """Check that ``path`` is a CTF trace holding clrmemtrace events.

    Returns a ``TraceInfo``: the path, and the time of the trace's first event of the
    ``clrmemtrace`` or ``clrmemtrace_os`` provider in ns since the clock's origin (what
    relative TIME arguments count from). Raises ``UserError`` with status 3 when the input
    cannot be read as a trace, 4 when it holds no event of either.
    """
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory", EXIT_CANNOT_ANALYSE)
    if not os.path.isdir(path):
        raise UserError(
            f"{path}: not a trace (a CTF trace is a directory holding a metadata file)",
            EXIT_CANNOT_ANALYSE,
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"{path}: permission denied", EXIT_CANNOT_ANALYSE)
    bt2 = import_bt2()
    try:
        iterator = bt2.TraceCollectionMessageIterator([ctf_source_spec(bt2, path)])
        for message in iterator:
            if type(message) is not bt2._EventMessageConst:
                continue
            if str(message.event.name).startswith(PROVIDER_PREFIXES):
                return TraceInfo(path, message.default_clock_snapshot.ns_from_origin)
    except bt2._Error as e:
        raise UserError(f"{path}: {bt2_error_message(e)}", EXIT_CANNOT_ANALYSE) from None
    raise UserError(f"{path}: the trace holds no clrmemtrace events", EXIT_NO_EVENTS)


def _plugin_params(mode, output_path, params):
    bt2 = import_bt2()
    values = {"mode": mode, "output": output_path}
    for key, value in params.items():
        if value is None:
            continue
        key = key.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, int):
            values[key] = value
        elif key == "at":
            values[key] = bt2.SignedIntegerValue(value)
        else:
            values[key] = bt2.UnsignedIntegerValue(value)
    return values


def trimmer_time(ns):
    """A time in ns from the clock's origin as ``filter.utils.trimmer`` takes it.

    The trimmer reads an integer parameter as seconds, so the time is given as the string
    ``[-]SEC.NANO``.
    """
    seconds, nanoseconds = divmod(abs(ns), 1_000_000_000)
    return f"{'-' if ns < 0 else ''}{seconds}.{nanoseconds:09d}"


def _bounded(time_range):
    """Whether ``time_range`` (None, or a (begin, end) pair) bounds anything."""
    return time_range is not None and any(t is not None for t in time_range)


def _trimmer_params(time_range):
    begin, end = time_range
    params = {}
    if begin is not None:
        params["begin"] = trimmer_time(begin)
    if end is not None:
        params["end"] = trimmer_time(end)
    return params


def run_plugin(trace_path, mode, output_path, time_range=None, **params):
    """Run ``sink.clrmemtrace.analysis`` in ``mode`` on the trace, writing ``output_path``.

    ``params`` are the component's other parameters (``at``, ``points``, ``max_details``;
    underscores stand for dashes). ``time_range``, a (begin, end) pair of ns from the
    clock's origin (None for no bound), keeps the plugin to the messages of that range.
    Babeltrace2 errors become ``UserError`` (status 3) carrying the root cause.
    """
    bt2 = import_bt2()
    plugin = find_plugin()
    try:
        graph = bt2.Graph()
        source = graph.add_component(
            bt2.find_plugin("ctf").source_component_classes["fs"],
            "source",
            {"inputs": ctf_inputs(trace_path)},
        )
        muxer = graph.add_component(
            bt2.find_plugin("utils").filter_component_classes["muxer"], "muxer"
        )
        sink = graph.add_component(
            plugin.sink_component_classes[SINK_NAME],
            "analysis",
            _plugin_params(mode, output_path, params),
        )
        for port in list(source.output_ports.values()):
            free = next(p for p in muxer.input_ports.values() if not p.is_connected)
            graph.connect_ports(port, free)
        upstream = next(iter(muxer.output_ports.values()))
        if _bounded(time_range):
            trimmer = graph.add_component(
                bt2.find_plugin("utils").filter_component_classes["trimmer"],
                "trimmer",
                _trimmer_params(time_range),
            )
            graph.connect_ports(upstream, next(iter(trimmer.input_ports.values())))
            upstream = next(iter(trimmer.output_ports.values()))
        graph.connect_ports(upstream, next(iter(sink.input_ports.values())))
        graph.run()
    except bt2._Error as e:
        raise UserError(f"{trace_path}: {bt2_error_message(e)}", EXIT_CANNOT_ANALYSE) from None


def _run_to_document(trace_path, mode, time_range=None, **params):
    """Run the plugin in a JSON mode and return the parsed document."""
    with tempfile.TemporaryDirectory(prefix="clrmemtrace-") as tmp:
        output = os.path.join(tmp, f"{mode}.json")
        run_plugin(trace_path, mode, output, time_range=time_range, **params)
        try:
            with open(output, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(
                f"{trace_path}: the analysis plugin wrote no valid {mode} document ({e})",
                EXIT_CANNOT_ANALYSE,
            ) from None


def _oracle():
    from clrmemtrace import oracle

    return oracle


def summary(path, max_details=1000, engine=None, time_range=None):
    """The summary document of the trace at ``path``.

    ``time_range``: (begin, end) in ns from the clock's origin, None for no bound; only the
    events in that range are analysed (plugin engine only).
    """
    if engine_name(engine) == "oracle":
        if _bounded(time_range):
            raise UserError(
                "the oracle engine analyses whole traces: it takes no time range",
                EXIT_CANNOT_ANALYSE,
            )
        return _oracle().summary(path, max_details=max_details)
    return _run_to_document(path, "summary", time_range=time_range, max_details=max_details)


def series(path, points=2000, engine=None, max_details=1000):
    """The series document (counters over time, spans) of the trace at ``path``."""
    if engine_name(engine) == "oracle":
        return _oracle().series(path, points=points, max_details=max_details)
    return _run_to_document(path, "series", points=points, max_details=max_details)


def map_at(path, at_ns, engine=None):
    """The map document: every manager's regions and heaps at absolute time ``at_ns``."""
    if engine_name(engine) == "oracle":
        return _oracle().map_at(path, at_ns)
    return _run_to_document(path, "map", at=at_ns)


def write_timeline_rows(rows, out):
    """Write timeline rows (dicts keyed by ``TIMELINE_COLUMNS``) as CSV to file ``out``.

    Addresses are written ``0x...``; None (an unknown reservation) as an empty cell.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TIMELINE_COLUMNS)
    for row in rows:
        writer.writerow(
            [_csv_cell(row[c], c in TIMELINE_ADDRESS_COLUMNS) for c in TIMELINE_COLUMNS]
        )


def _csv_cell(value, address):
    if value is None:
        return ""
    return f"0x{value:x}" if address else value


def timeline_csv(path, out, engine=None):
    """Write the timeline CSV of the trace at ``path`` to the file ``out``."""
    if engine_name(engine) == "oracle":
        rows = _oracle().timeline_rows(path)
        with open(out, "w", encoding="utf-8", newline="") as f:
            write_timeline_rows(rows, f)
        return
    run_plugin(path, "timeline", out)


def parse_timeline_csv(text):
    """Timeline rows (dicts, integers and addresses converted) from the CSV text ``text``."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        for column in TIMELINE_INT_COLUMNS:
            value = row.get(column)
            row[column] = int(value, 0) if value not in (None, "") else None
        rows.append(row)
    return rows


def timeline(path, engine=None):
    """The timeline of the trace at ``path``, as a list of dicts."""
    if engine_name(engine) == "oracle":
        return _oracle().timeline_rows(path)
    with tempfile.TemporaryDirectory(prefix="clrmemtrace-") as tmp:
        output = os.path.join(tmp, "timeline.csv")
        run_plugin(path, "timeline", output)
        with open(output, encoding="utf-8") as f:
            return parse_timeline_csv(f.read())


def perfetto(path, out, points=2000, engine=None):
    """Write the Perfetto (Chrome trace-event JSON) document of the trace to the file ``out``."""
    if engine_name(engine) == "oracle":
        document = _oracle().perfetto(path, points=points)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(document, f)
        return
    run_plugin(path, "perfetto", out, points=points)
