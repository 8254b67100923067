# SPDX-License-Identifier: MIT
"""LAMI 1.0 analyses: the summary, leaks and latency results for Trace Compass.

LAMI (the LTTng analyses machine interface, version 1.0) is how Trace Compass runs an
external analysis: one program per analysis, started with one of

- ``--mi-version``: prints the LAMI version it speaks, ``1.0``;
- ``--metadata``: prints a JSON object describing the analysis and its table classes;
- ``--test-compatibility TRACE``: exits 0, printing nothing, when it can analyse TRACE;
- ``[--begin TS] [--end TS] [--limit N|unlimited] [--output-progress] TRACE``: prints
  ``{"results": [...]}``, one result table per table of the analysis.

Times are ns since the clock's origin (the epoch, for LTTng traces), as Trace Compass
passes them. Only the events between ``--begin`` and ``--end`` (both included) are analysed,
as if the trace held nothing else (``engine.summary``'s time range); a manager created
before ``--begin`` is then unknown until its next state dump, and the results say the
trace is incomplete. ``--limit`` caps the rows of every table.

On an error the program prints a LAMI error object on stdout, one line on stderr, and
exits with the status the ``clrmemtrace`` command would (2 bad command line, 3 the trace
cannot be analysed, 4 it holds no clrmemtrace events).

The launchers ``clrmemtrace-lami-summary``, ``clrmemtrace-lami-leaks`` and
``clrmemtrace-lami-latency`` call ``main`` with their analysis' name: Trace Compass asks
the first word of an analysis' command for its ``--mi-version``, so each analysis is a
program of its own.
"""

import argparse
import json
import sys

from clrmemtrace import __version__, engine
from clrmemtrace.cli import EXIT_USAGE, UserError
from clrmemtrace.latency import latency_document
from clrmemtrace.leaks import leaks_document

MI_VERSION = {"major": 1, "minor": 0}

# The rows a table may hold when --limit is `unlimited`: the plugin's largest max-details.
UNLIMITED = 10_000_000

# Incomplete-trace reasons shown in the WARNING line and the totals: a consumer may not read
# stderr until the program ends, so what is written there stays short.
REASONS_SHOWN = 10

AUTHORS = ["The clrmemtrace authors"]
TAGS = ["clrmemtrace", "clr", "memory", "lttng-ust"]


# ---------- Data objects ----------


def number(value):
    return {"class": "number", "value": value}


def size(value):
    return {"class": "size", "value": value}


def duration(value):
    return {"class": "duration", "value": value}


def duration_range(low, high):
    """A duration known to lie in [low, high]."""
    return {"class": "duration", "low": low, "high": high}


def timestamp(value):
    return {"class": "timestamp", "value": value}


def ratio(value):
    return {"class": "ratio", "value": value}


def string(value):
    return {"class": "string", "value": value}


def boolean(value):
    return {"class": "bool", "value": bool(value)}


def process(pid, name="", tid=0):
    """A process object: the pid, and the name and thread when known."""
    obj = {"class": "process", "pid": pid}
    if name:
        obj["name"] = name
    if tid:
        obj["tid"] = tid
    return obj


def time_range(begin, end):
    return {"class": "time-range", "begin": timestamp(begin), "end": timestamp(end)}


def address(value):
    """Addresses are strings (LAMI has no address class), hexadecimal as everywhere else."""
    return string(f"0x{value:x}")


def column(title, data_class, unit=None):
    """A column description."""
    description = {"title": title, "class": data_class}
    if unit:
        description["unit"] = unit
    return description


# ---------- Analyses ----------


class Analysis:
    """One LAMI analysis: its metadata and how it turns a summary document into tables.

    ``tables(summary, limit)`` returns a list of (table class, rows): the class is the name
    of one of ``table_classes`` or a table class object (a title of its own).
    """

    def __init__(self, name, title, description, table_classes, tables):
        self.name = name
        self.title = title
        self.description = description
        self.table_classes = table_classes
        self.tables = tables

    def metadata(self):
        return {
            "mi-version": MI_VERSION,
            "version": _version_object(__version__),
            "title": self.title,
            "authors": AUTHORS,
            "description": self.description,
            "tags": TAGS + [self.name],
            "table-classes": self.table_classes,
        }


def _version_object(text):
    """A LAMI version object from a version string such as ``0.1.0`` or ``0.2.0-dev``."""
    numbers, _, extra = text.partition("-")
    obj = {}
    for key, part in zip(("major", "minor", "patch"), numbers.split(".")):
        if not part.isdigit():
            break
        obj[key] = int(part)
    if extra:
        obj["extra"] = extra
    return obj


def incomplete_because(summary):
    """Why the trace is incomplete, on one line: its first reasons ("" when complete)."""
    reasons = summary["incomplete_reasons"]
    if not summary["complete"] and not reasons:
        return "no reason given"
    text = "; ".join(reasons[:REASONS_SHOWN])
    if len(reasons) > REASONS_SHOWN:
        text += f"; and {len(reasons) - REASONS_SHOWN} more"
    return text


def _process_names(summary):
    return {p["vpid"]: p["procname"] for p in summary["processes"]}


MEMORY_COLUMNS = [
    column("Peak reserved", "size"),
    column("Peak committed", "size"),
    column("Final reserved", "size"),
    column("Final committed", "size"),
    column("Live reservations", "number", "reservations"),
    column("Heaps", "number", "heaps"),
    column("Heap allocations", "number", "calls"),
    column("Heap frees", "number", "calls"),
    column("Heap peak", "size"),
    column("Heap final", "size"),
    column("Live blocks", "number", "blocks"),
    column("Calls", "number", "calls"),
    column("Failed calls", "number", "calls"),
]


def _memory_cells(virtual, malloc):
    return [
        size(virtual["peak_reserved_bytes"]),
        size(virtual["peak_committed_bytes"]),
        size(virtual["final_reserved_bytes"]),
        size(virtual["final_committed_bytes"]),
        number(virtual["live_regions"]),
        number(malloc["heaps"]),
        number(malloc["allocs"]),
        number(malloc["frees"]),
        size(malloc["peak_live_bytes"]),
        size(malloc["final_live_bytes"]),
        number(malloc["live_blocks"]),
        number(sum(virtual["calls"].values())),
        number(virtual["failed_calls"]),
    ]


SUMMARY_TABLES = {
    "totals": {
        "title": "Totals over all processes",
        "column-descriptions": [
            column("Events", "number", "events"),
            column("Discarded events", "number", "events"),
            column("Complete", "bool"),
            *MEMORY_COLUMNS,
            column("Queries checked", "number", "queries"),
            column("Mismatches", "number", "queries"),
            column("Unverifiable", "number", "queries"),
            column("Anomalies", "number", "anomalies"),
            column("Incomplete because", "string"),
        ],
    },
    "managers": {
        "title": "Memory per manager",
        "column-descriptions": [
            column("Process", "process"),
            column("Manager", "number"),
            column("Name", "string"),
            column("Complete", "bool"),
            *MEMORY_COLUMNS,
        ],
    },
    "calls": {
        "title": "Calls by entry point",
        "column-descriptions": [column("Call", "string"), column("Count", "number", "calls")],
    },
    "committed-by-protection": {
        "title": "Committed at the end, by protection",
        "column-descriptions": [column("Protection", "string"), column("Committed", "size")],
    },
    "failures": {
        "title": "Failed calls",
        "column-descriptions": [
            column("Time", "timestamp"),
            column("Process", "process"),
            column("Manager", "number"),
            column("Call", "string"),
            column("Result", "string"),
            column("Address", "string"),
            column("Size", "size"),
        ],
    },
    "anomalies": {
        "title": "Anomalies",
        "column-descriptions": [
            column("Time", "timestamp"),
            column("Process", "process"),
            column("Manager", "number"),
            column("Kind", "string"),
            column("Address", "string"),
            column("Size", "size"),
            column("Detail", "string"),
        ],
    },
    "notifications": {
        "title": "Memory notifications",
        "column-descriptions": [
            column("Time", "timestamp"),
            column("Process", "process"),
            column("Manager", "number"),
            column("Level", "string"),
            column("Load", "ratio"),
            column("Callback result", "string"),
            column("Reason", "string"),
        ],
    },
}


def summary_tables(summary, limit):
    """The summary analysis' tables."""
    names = _process_names(summary)
    virtual, malloc, check = summary["virtual"], summary["malloc"], summary["check"]
    totals = [
        number(summary["events"]),
        number(summary["discarded_events"]),
        boolean(summary["complete"]),
        *_memory_cells(virtual, malloc),
        number(check["queries_checked"]),
        number(check["mismatches"]),
        number(check["unverifiable"]),
        number(sum(summary["anomaly_counts"].values())),
        string(incomplete_because(summary)),
    ]
    managers = [
        [
            process(p["vpid"], p["procname"]),
            number(m["manager_id"]),
            string(m["name"]),
            boolean(m["complete"]),
            *_memory_cells(m["virtual"], m["malloc"]),
        ]
        for p in summary["processes"]
        for m in p["managers"]
    ]
    calls = [
        [string(name), number(count)] for name, count in sorted(virtual["calls"].items()) if count
    ]
    protections = [
        [string(name), size(value)]
        for name, value in sorted(
            virtual["committed_by_protect"].items(), key=lambda kv: (-kv[1], kv[0])
        )
    ]
    failures = [
        [
            timestamp(f["time_ns"]),
            process(f["vpid"], names.get(f["vpid"], ""), f["tid"]),
            number(f["manager_id"]),
            string(f["event"]),
            string(f["hr"]),
            address(f["addr"]),
            size(f["size"]),
        ]
        for f in summary["failures"]
    ]
    anomalies = [
        [
            timestamp(a["time_ns"]),
            process(a["vpid"], names.get(a["vpid"], ""), a["tid"]),
            number(a["manager_id"]),
            string(a["kind"]),
            address(a["addr"]),
            size(a["size"]),
            string(a["detail"]),
        ]
        for a in summary["anomalies"]
    ]
    notifications = [
        [
            timestamp(n["time_ns"]),
            process(n["vpid"], names.get(n["vpid"], "")),
            number(n["manager_id"]),
            string(n["level"]),
            ratio(n["load"] / 100),
            string(n["hr"]),
            string(n["reason"]),
        ]
        for n in summary["notifications"]
    ]
    return [
        ("totals", [totals]),
        ("managers", managers),
        ("calls", calls),
        ("committed-by-protection", protections),
        ("failures", failures),
        ("anomalies", anomalies),
        ("notifications", notifications),
    ]


LEAKS_TABLES = {
    "leaked-reservations": {
        "title": "Reservations never released",
        "column-descriptions": [
            column("Process", "process"),
            column("Manager", "number"),
            column("Base", "string"),
            column("Size", "size"),
            column("Committed", "size"),
            column("Allocation protection", "string"),
            column("Reserved at", "timestamp"),
            column("Level", "string"),
        ],
    },
    "leaked-blocks": {
        "title": "Heap blocks never freed, by heap and file:line",
        "column-descriptions": [
            column("Process", "process"),
            column("Manager", "number"),
            column("Heap", "number"),
            column("Allocated at", "string"),
            column("Blocks", "number", "blocks"),
            column("Bytes", "size"),
            column("Largest", "size"),
        ],
    },
    "leak-totals": {
        "title": "Leak totals",
        "column-descriptions": [
            column("Reservations", "number", "reservations"),
            column("Reserved", "size"),
            column("Committed", "size"),
            column("Blocks", "number", "blocks"),
            column("Block bytes", "size"),
            column("Complete", "bool"),
            column("Lists cut at the limit", "bool"),
        ],
    },
}


def leaks_tables(summary, limit):
    """The leaks analysis' tables: ``clrmemtrace leaks``' document as tables."""
    names = _process_names(summary)
    document = leaks_document(summary, limit)
    regions = [
        [
            process(r["vpid"], names.get(r["vpid"], ""), r["tid"]),
            number(r["manager_id"]),
            address(r["base"]),
            size(r["size"]),
            size(r["committed_bytes"]),
            string(r["allocation_protect"]),
            timestamp(r["time_ns"]),
            string(r["level"]),
        ]
        for r in document["regions"]
    ]
    blocks = [
        [
            process(b["vpid"], names.get(b["vpid"], "")),
            number(b["manager_id"]),
            number(b["heap_id"]),
            string(f"{b['file']}:{b['line']}" if b["file"] or b["line"] else ""),
            number(b["blocks"]),
            size(b["bytes"]),
            size(b["largest"]),
        ]
        for b in document["blocks"]
    ]
    totals = document["totals"]
    total_row = [
        number(totals["regions"]),
        size(totals["reserved_bytes"]),
        size(totals["committed_bytes"]),
        number(totals["blocks"]),
        size(totals["block_bytes"]),
        boolean(document["complete"]),
        boolean(document["truncated"]),
    ]
    return [
        ("leaked-reservations", regions),
        ("leaked-blocks", blocks),
        ("leak-totals", [total_row]),
    ]


LATENCY_TABLES = {
    "latency": {
        "title": "Call latency",
        "column-descriptions": [
            column("Call", "string"),
            column("Count", "number", "calls"),
            column("Minimum", "duration"),
            column("Median", "duration"),
            column("90th percentile", "duration"),
            column("99th percentile", "duration"),
            column("Maximum", "duration"),
            column("Mean", "duration"),
        ],
    },
    "latency-histogram": {
        "title": "Latency histogram",
        "column-descriptions": [column("Duration", "duration"), column("Calls", "number", "calls")],
    },
}


def bucket_lower_bound(upper):
    """The smallest duration of the latency histogram bucket whose upper bound is ``upper``.

    Buckets (analysis/README.md, "Latency"): one per value below 16, then 16 per power of
    two, so a bucket of exponent e (e >= 4) is 2^(e-4) ns wide.
    """
    if upper < 16:
        return upper
    top = upper + 1
    shift = top.bit_length() - 5
    if top & (top - 1) == 0:
        shift -= 1
    return top - (1 << shift)


def latency_tables(summary, limit):
    """The latency analysis' tables: percentiles, then one histogram per call."""
    latency = latency_document(summary)["latency"]
    rows = [
        [
            string(name),
            number(stats["count"]),
            duration(stats["min_ns"]),
            duration(stats["p50_ns"]),
            duration(stats["p90_ns"]),
            duration(stats["p99_ns"]),
            duration(stats["max_ns"]),
            duration(stats["mean_ns"]),
        ]
        for name, stats in sorted(latency.items())
    ]
    tables = [("latency", rows)]
    for name, stats in sorted(latency.items()):
        histogram = [
            [duration_range(bucket_lower_bound(upper), upper), number(count)]
            for upper, count in stats["histogram"]
        ]
        title = f"Latency histogram: {name}"
        tables.append(({"inherit": "latency-histogram", "title": title}, histogram))
    return tables


ANALYSES = {
    "summary": Analysis(
        "summary",
        "clrmemtrace: memory summary",
        "What every CLR hosting memory manager of the trace did: reserved and committed "
        "bytes, heap use, calls, failed calls, anomalies, the check of every traced "
        "VirtualQuery against the reconstruction, and memory notifications.",
        SUMMARY_TABLES,
        summary_tables,
    ),
    "leaks": Analysis(
        "leaks",
        "clrmemtrace: leaks",
        "Reservations never released and heap blocks never freed, grouped by heap and "
        "file:line, largest first.",
        LEAKS_TABLES,
        leaks_tables,
    ),
    "latency": Analysis(
        "latency",
        "clrmemtrace: call latency",
        "Per entry point of the CLR hosting memory interfaces: the number of calls and "
        "the percentiles of their durations (within 6.25% of the exact values; minimum "
        "and maximum are exact), and one histogram per call.",
        LATENCY_TABLES,
        latency_tables,
    ),
}


# ---------- Command line ----------


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ``UserError`` (status 2), reported as LAMI errors."""

    def error(self, message):
        raise UserError(message, EXIT_USAGE)


def _time(text):
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time in ns: {text!r}") from None


def _limit(text):
    if text == "unlimited":
        return None
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive row count or 'unlimited': {text!r}")
    return value


def build_parser(analysis):
    parser = _Parser(
        prog=f"clrmemtrace-lami-{analysis.name}",
        description=f"{analysis.title} (LAMI 1.0, for Trace Compass). {analysis.description}",
    )
    phase = parser.add_mutually_exclusive_group()
    phase.add_argument("--mi-version", action="store_true", help="print the LAMI version")
    phase.add_argument("--metadata", action="store_true", help="print the analysis' metadata")
    phase.add_argument(
        "--test-compatibility",
        action="store_true",
        help="exit 0 if TRACE can be analysed, else print why and exit non-zero",
    )
    parser.add_argument(
        "--begin", type=_time, metavar="TS", help="analyse from TS (ns since the origin)"
    )
    parser.add_argument("--end", type=_time, metavar="TS", help="analyse up to TS (included)")
    parser.add_argument(
        "--limit",
        type=_limit,
        metavar="COUNT",
        help="at most COUNT rows per table ('unlimited', the default)",
    )
    parser.add_argument(
        "--output-progress", action="store_true", help="print progress lines before the results"
    )
    parser.add_argument("trace", nargs="?", metavar="TRACE", help="a CTF trace directory")
    return parser


def _span(begin, end, summary, first_ns):
    """The time range the tables cover: the bounds asked for, else those of the events."""
    first = begin if begin is not None else summary["begin_ns"]
    last = end if end is not None else summary["end_ns"]
    if first is None:  # no event in a range without a beginning
        first = last if last is not None else first_ns
    if last is None:
        last = first
    return time_range(first, last)


def results(analysis, trace, begin=None, end=None, limit=None):
    """The analysis results object of ``analysis`` on the trace, between ``begin`` and ``end``.

    Returns it with the summary document it comes from.
    """
    info = engine.open_trace_check(trace)
    details = min(limit, UNLIMITED) if limit else UNLIMITED
    summary = engine.summary(info.path, max_details=details, time_range=(begin, end))
    span = _span(begin, end, summary, info.first_ns)
    tables = []
    for table_class, rows in analysis.tables(summary, details):
        tables.append({"time-range": span, "class": table_class, "data": rows[:details]})
    return {"results": tables}, summary


def _print_json(document):
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def _progress(fraction, message):
    sys.stdout.write(f"{fraction} {message}\n")
    sys.stdout.flush()


def run(analysis, argv):
    args = build_parser(analysis).parse_args(argv)
    if args.mi_version:
        print(f"{MI_VERSION['major']}.{MI_VERSION['minor']}")
        return 0
    if args.metadata:
        _print_json(analysis.metadata())
        return 0
    if not args.trace:
        raise UserError("a TRACE argument is required", EXIT_USAGE)
    if args.test_compatibility:
        engine.open_trace_check(args.trace)
        return 0
    if args.begin is not None and args.end is not None and args.begin > args.end:
        raise UserError(f"--begin {args.begin} is after --end {args.end}", EXIT_USAGE)
    if args.output_progress:
        _progress(0, f"Analysing {args.trace}")
    document, summary = results(analysis, args.trace, args.begin, args.end, args.limit)
    if not summary["complete"]:
        print(f"WARNING: incomplete trace: {incomplete_because(summary)}", file=sys.stderr)
    if args.output_progress:
        _progress(1, "Done")
    _print_json(document)
    return 0


def main(name, argv=None):
    """Run the LAMI analysis ``name`` (``summary``, ``leaks``, ``latency``); the exit status."""
    analysis = ANALYSES[name]
    try:
        return run(analysis, sys.argv[1:] if argv is None else argv)
    except UserError as e:
        message = " ".join(str(e).split())
        _print_json({"error-message": message, "error-code": e.status})
        print(f"clrmemtrace-lami-{name}: {message}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print(f"clrmemtrace-lami-{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
