# SPDX-License-Identifier: MIT
"""``clrmemtrace latency TRACE [--json]``: per-call latency percentiles and histograms."""

import sys

from clrmemtrace import tables
from clrmemtrace.summary import add_trace_argument, load_summary, print_json
from clrmemtrace.timefmt import format_duration


def register(subparsers):
    parser = subparsers.add_parser(
        "latency",
        help="per-operation latency percentiles and histograms",
        description="Percentiles of every call's duration (within 6.25%% of the exact "
        "values; minimum and maximum are exact), and one text histogram per call.",
    )
    add_trace_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the latency document (JSON)")
    parser.set_defaults(func=run)


def latency_document(summary):
    """The latency document: the summary's latency section."""
    return {"format": "clrmemtrace-latency", "version": 1, "latency": summary["latency"]}


def run(args):
    summary = load_summary(args.trace)
    if args.json:
        print_json(latency_document(summary))
    else:
        sys.stdout.write(format_latency(summary["latency"]))
    return 0


def format_latency(latency):
    """The percentile table and one histogram per call."""
    if not latency:
        return "No call with a measured duration in the trace.\n"
    rows = [
        [
            name,
            stats["count"],
            format_duration(stats["min_ns"]),
            format_duration(stats["p50_ns"]),
            format_duration(stats["p90_ns"]),
            format_duration(stats["p99_ns"]),
            format_duration(stats["max_ns"]),
            format_duration(stats["mean_ns"]),
        ]
        for name, stats in sorted(latency.items())
    ]
    out = [
        tables.table(
            ["call", "count", "min", "p50", "p90", "p99", "max", "mean"],
            rows,
            align="<>>>>>>>",
        )
    ]
    for name, stats in sorted(latency.items()):
        out.append(f"\n{name} ({stats['count']} calls):\n")
        out.append(
            tables.histogram(by_power_of_two(stats["histogram"]), format_duration, indent="  ")
        )
    return "".join(out)


def by_power_of_two(histogram):
    """Merge a histogram's buckets into one per power of two (bounds 2^k - 1)."""
    merged = {}
    for bound, count in histogram:
        top = (1 << int(bound).bit_length()) - 1
        merged[top] = merged.get(top, 0) + count
    return sorted(merged.items())
