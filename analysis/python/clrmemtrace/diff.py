# SPDX-License-Identifier: MIT
"""``clrmemtrace diff TRACE_A TRACE_B [--json]``: two summaries side by side with deltas."""

import sys

from clrmemtrace import tables
from clrmemtrace.summary import add_trace_argument, load_summary, print_json, warning_line
from clrmemtrace.timefmt import format_bytes, format_delta_bytes


def register(subparsers):
    parser = subparsers.add_parser(
        "diff",
        help="two summaries side by side with deltas",
        description="Compare the summaries of two traces: figures of A, of B, and B - A.",
    )
    add_trace_argument(parser, "trace_a", "TRACE_A")
    add_trace_argument(parser, "trace_b", "TRACE_B")
    parser.add_argument("--json", action="store_true", help="print the diff document (JSON)")
    parser.set_defaults(func=run)


def _figures(summary):
    """(name, value, is_bytes) of every figure compared, in display order."""
    virtual, malloc, check = summary["virtual"], summary["malloc"], summary["check"]
    figures = [
        ("events", summary["events"], False),
        ("discarded_events", summary["discarded_events"], False),
        ("processes", len(summary["processes"]), False),
        ("managers", sum(len(p["managers"]) for p in summary["processes"]), False),
        ("virtual.peak_reserved_bytes", virtual["peak_reserved_bytes"], True),
        ("virtual.peak_committed_bytes", virtual["peak_committed_bytes"], True),
        ("virtual.final_reserved_bytes", virtual["final_reserved_bytes"], True),
        ("virtual.final_committed_bytes", virtual["final_committed_bytes"], True),
        ("virtual.live_regions", virtual["live_regions"], False),
        ("virtual.failed_calls", virtual["failed_calls"], False),
        ("malloc.heaps", malloc["heaps"], False),
        ("malloc.allocs", malloc["allocs"], False),
        ("malloc.frees", malloc["frees"], False),
        ("malloc.peak_live_bytes", malloc["peak_live_bytes"], True),
        ("malloc.final_live_bytes", malloc["final_live_bytes"], True),
        ("malloc.live_blocks", malloc["live_blocks"], False),
        ("check.queries_checked", check["queries_checked"], False),
        ("check.mismatches", check["mismatches"], False),
        ("check.unverifiable", check["unverifiable"], False),
        ("leaks.regions", len(summary["leaks"]["regions"]), False),
        ("leaks.blocks", sum(b["blocks"] for b in summary["leaks"]["blocks"]), False),
    ]
    return figures


def _keyed(summary, section, prefix, is_bytes):
    return {f"{prefix}.{k}": (v, is_bytes) for k, v in section.items()}


def diff_document(path_a, a, path_b, b):
    """The diff document: one row per figure, with the values of A and B and B - A."""
    rows = []
    figures_a = {name: (value, is_bytes) for name, value, is_bytes in _figures(a)}
    figures_b = {name: (value, is_bytes) for name, value, is_bytes in _figures(b)}
    order = [name for name, _, _ in _figures(a)]
    for section, prefix, is_bytes in (
        (("virtual", "committed_by_protect"), "committed_by_protect", True),
        (("virtual", "calls"), "calls", False),
        (("anomaly_counts",), "anomalies", False),
    ):
        values_a, values_b = a, b
        for key in section:
            values_a, values_b = values_a[key], values_b[key]
        extra_a = _keyed(a, values_a, prefix, is_bytes)
        extra_b = _keyed(b, values_b, prefix, is_bytes)
        figures_a.update(extra_a)
        figures_b.update(extra_b)
        order.extend(sorted(set(extra_a) | set(extra_b)))
    for name in order:
        value_a, is_bytes = figures_a.get(name, (0, False))
        value_b, is_bytes_b = figures_b.get(name, (0, False))
        rows.append(
            {
                "name": name,
                "a": value_a,
                "b": value_b,
                "delta": value_b - value_a,
                "bytes": is_bytes or is_bytes_b,
            }
        )
    return {
        "format": "clrmemtrace-diff",
        "version": 1,
        "a": {"trace": path_a, "complete": a["complete"]},
        "b": {"trace": path_b, "complete": b["complete"]},
        "rows": rows,
    }


def format_diff(document):
    """The side-by-side table."""
    rows = []
    for row in document["rows"]:
        if row["bytes"]:
            cells = [
                format_bytes(row["a"]),
                format_bytes(row["b"]),
                format_delta_bytes(row["delta"]),
            ]
        else:
            delta = row["delta"]
            cells = [row["a"], row["b"], f"{delta:+d}" if delta else "0"]
        rows.append([row["name"]] + cells)
    out = [
        f"A: {document['a']['trace']}\n",
        f"B: {document['b']['trace']}\n\n",
        tables.table(["", "A", "B", "B - A"], rows, align="<>>>"),
    ]
    return "".join(out)


def run(args):
    a = load_summary(args.trace_a)
    b = load_summary(args.trace_b)
    for label, summary in (("A: ", a), ("B: ", b)):
        line = warning_line(summary)
        if line:
            print(label + line, file=sys.stderr if args.json else sys.stdout)
    document = diff_document(args.trace_a, a, args.trace_b, b)
    if args.json:
        print_json(document)
    else:
        sys.stdout.write(format_diff(document))
    return 0
