# SPDX-License-Identifier: MIT
"""``clrmemtrace summary TRACE [--json]``: totals, peaks, calls, heaps, check, anomalies.

Also the helpers the other analysis subcommands share: the TRACE argument, loading the
summary document, and the warning printed for an incomplete trace.
"""

import json
import sys

from clrmemtrace import engine, tables
from clrmemtrace.timefmt import format_bytes, format_clock, format_duration


def add_trace_argument(parser, name="trace", metavar="TRACE"):
    """Add a trace path argument."""
    parser.add_argument(
        name,
        metavar=metavar,
        help="a CTF trace directory (an LTTng session's output, or any directory above it)",
    )


def load_summary(path, max_details=1000):
    """Check the trace at ``path`` and return its summary document."""
    info = engine.open_trace_check(path)
    return engine.summary(info.path, max_details=max_details)


def warning_line(document):
    """The WARNING line for an incomplete trace, or None."""
    if document.get("complete", True):
        return None
    reasons = "; ".join(document.get("incomplete_reasons") or ["no reason given"])
    return f"WARNING: incomplete trace: {reasons}"


def warn_if_incomplete(document, label="", stream=None):
    """Print the WARNING line on ``stream`` (stderr by default) if the trace is incomplete."""
    line = warning_line(document)
    if line:
        print(f"{label}{line}", file=stream or sys.stderr)


def print_json(document):
    """Write a JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def register(subparsers):
    parser = subparsers.add_parser(
        "summary",
        help="totals, peaks, calls, failures, heap use, consistency check, anomalies",
        description="Summarise what every manager of the trace did with memory.",
    )
    add_trace_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the summary document (JSON)")
    parser.set_defaults(func=run)


def run(args):
    document = load_summary(args.trace)
    if args.json:
        warn_if_incomplete(document)
        print_json(document)
    else:
        sys.stdout.write(format_summary(document))
    return 0


def _peaks_table(virtual, malloc):
    return tables.table(
        ["", "peak", "final"],
        [
            [
                "reserved",
                format_bytes(virtual["peak_reserved_bytes"]),
                format_bytes(virtual["final_reserved_bytes"]),
            ],
            [
                "committed",
                format_bytes(virtual["peak_committed_bytes"]),
                format_bytes(virtual["final_committed_bytes"]),
            ],
            [
                "heap blocks",
                format_bytes(malloc["peak_live_bytes"]),
                format_bytes(malloc["final_live_bytes"]),
            ],
        ],
        align="<>>",
        indent="  ",
    )


def format_summary(document):
    """The human summary of a summary document."""
    out = []
    begin, end = document["begin_ns"], document["end_ns"]
    span = f", {format_duration(end - begin)} from {format_clock(begin)}" if begin else ""
    out.append(
        f"Trace: {document['events']} events, {document['discarded_events']} discarded{span}\n"
    )
    line = warning_line(document)
    if line:
        out.append(line + "\n")
    virtual, malloc = document["virtual"], document["malloc"]
    out.append("\nMemory (all processes):\n")
    out.append(_peaks_table(virtual, malloc))
    out.append(
        f"  reservations live at the end: {virtual['live_regions']}; heaps: {malloc['heaps']}, "
        f"allocations: {malloc['allocs']}, frees: {malloc['frees']}, "
        f"blocks live at the end: {malloc['live_blocks']}\n"
    )
    if virtual["committed_by_protect"]:
        out.append("\nCommitted at the end, by protection:\n")
        rows = sorted(virtual["committed_by_protect"].items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(
            tables.table(
                ["protection", "bytes"],
                [[name, format_bytes(value)] for name, value in rows],
                align="<>",
                indent="  ",
            )
        )
    out.append("\nProcesses and managers:\n")
    rows = []
    for process in document["processes"]:
        for manager in process["managers"]:
            mv, mm = manager["virtual"], manager["malloc"]
            rows.append(
                [
                    process["vpid"],
                    process["procname"] or "-",
                    manager["manager_id"],
                    manager["name"] or "-",
                    "yes" if manager["complete"] else "NO",
                    format_bytes(mv["peak_reserved_bytes"]),
                    format_bytes(mv["peak_committed_bytes"]),
                    format_bytes(mv["final_reserved_bytes"]),
                    format_bytes(mv["final_committed_bytes"]),
                    format_bytes(mm["peak_live_bytes"]),
                    format_bytes(mm["final_live_bytes"]),
                    sum(mv["calls"].values()),
                    mv["failed_calls"],
                ]
            )
    out.append(
        tables.table(
            [
                "vpid",
                "process",
                "manager",
                "name",
                "complete",
                "peak rsv",
                "peak cmt",
                "final rsv",
                "final cmt",
                "heap peak",
                "heap final",
                "calls",
                "failed",
            ],
            rows,
            align="<<><<>>>>>>>>",
            indent="  ",
        )
    )
    for process in document["processes"]:
        for manager in process["managers"]:
            for begin_ns, end_ns in manager["unknown_windows"]:
                out.append(
                    f"  process {process['vpid']} manager {manager['manager_id']}: state "
                    f"unknown from {format_clock(begin_ns)} "
                    f"for {format_duration(end_ns - begin_ns)}\n"
                )
    calls = virtual["calls"]
    if any(calls.values()):
        out.append("\nCalls:\n")
        out.append(
            tables.table(
                ["call", "count"],
                [[name, count] for name, count in sorted(calls.items()) if count],
                indent="  ",
            )
        )
        out.append(f"  failed: {virtual['failed_calls']}\n")
        if document["failures"]:
            by_kind = {}
            for failure in document["failures"]:
                key = (failure["event"], failure["hr"])
                by_kind[key] = by_kind.get(key, 0) + 1
            out.append(
                tables.table(
                    ["failed call", "result", "count"],
                    [[e, hr, n] for (e, hr), n in sorted(by_kind.items())],
                    indent="  ",
                )
            )
            if len(document["failures"]) < virtual["failed_calls"]:
                out.append(f"  (the first {len(document['failures'])} failures listed)\n")
    check = document["check"]
    out.append(
        f"\nCheck: {check['queries_checked']} queries checked, {check['mismatches']} "
        f"mismatches, {check['unverifiable']} unverifiable\n"
    )
    counts = document["anomaly_counts"]
    total = sum(counts.values())
    listed = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()) if n)
    out.append(f"Anomalies: {total}" + (f" ({listed})" if listed else "") + "\n")
    leaks = document["leaks"]
    out.append(
        f"Leaks: {len(leaks['regions'])} reservations never released "
        f"({format_bytes(sum(r['size'] for r in leaks['regions']))}), "
        f"{sum(b['blocks'] for b in leaks['blocks'])} heap blocks never freed "
        f"({format_bytes(sum(b['bytes'] for b in leaks['blocks']))})\n"
    )
    if document["notifications"]:
        out.append(f"Memory notifications: {len(document['notifications'])}\n")
    return "".join(out)
