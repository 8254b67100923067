# SPDX-License-Identifier: MIT
"""``clrmemtrace timeline TRACE [--csv]``: one row per state change of every reservation."""

import os
import shutil
import sys
import tempfile

from clrmemtrace import engine, tables
from clrmemtrace.summary import add_trace_argument
from clrmemtrace.timefmt import format_address, format_offset


def register(subparsers):
    parser = subparsers.add_parser(
        "timeline",
        help="one row per state change of every reservation",
        description="List every reserve, commit, decommit, protect, reset, release and state "
        "dump, in time order. Times are seconds from the trace's first event.",
    )
    add_trace_argument(parser)
    parser.add_argument(
        "--csv", action="store_true", help="print the CSV document (absolute times in ns)"
    )
    parser.set_defaults(func=run)


def run(args):
    info = engine.open_trace_check(args.trace)
    if args.csv:
        with tempfile.TemporaryDirectory(prefix="clrmemtrace-") as tmp:
            output = os.path.join(tmp, "timeline.csv")
            engine.timeline_csv(info.path, output)
            with open(output, encoding="utf-8") as f:
                shutil.copyfileobj(f, sys.stdout)
        return 0
    rows = engine.timeline(info.path)
    sys.stdout.write(format_timeline(rows, info.first_ns))
    return 0


def format_timeline(rows, first_ns):
    """The human table of timeline rows; times relative to ``first_ns``."""
    if not rows:
        return "No state change in the trace.\n"
    table_rows = []
    for row in rows:
        table_rows.append(
            [
                format_offset(row["time_ns"], first_ns),
                row["vpid"],
                row["tid"],
                row["manager_id"],
                row["op"],
                format_address(row["allocation_base"])
                if row["allocation_base"] is not None
                else "-",
                format_address(row["address"]),
                row["size"],
                row["protect"] or "-",
                row["old_protect"] or "-",
                row["level"] or "-",
                row["hr"] or "-",
                row["seq"],
            ]
        )
    return tables.table(
        [
            "time (s)",
            "vpid",
            "tid",
            "mgr",
            "op",
            "allocation base",
            "address",
            "size",
            "protect",
            "old protect",
            "level",
            "hr",
            "seq",
        ],
        table_rows,
        align=">>>><<<><<<<>",
    )
