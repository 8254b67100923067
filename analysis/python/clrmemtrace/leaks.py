# SPDX-License-Identifier: MIT
"""``clrmemtrace leaks TRACE [--json]``: what was never released or freed.

Reservations never released (still held at the end of the trace, those of a manager
released while holding them included) and heap blocks never freed (blocks a heap's last
Release gave back with the heap are not leaks), grouped by process, manager, heap and
file:line, largest first.
"""

import sys

from clrmemtrace import tables
from clrmemtrace.cli import UserError
from clrmemtrace.summary import add_trace_argument, load_summary, print_json, warn_if_incomplete
from clrmemtrace.timefmt import format_address, format_bytes, format_offset


def register(subparsers):
    parser = subparsers.add_parser(
        "leaks",
        help="reservations never released and heap blocks never freed, by heap and file:line",
        description="List the reservations never released and the heap blocks never freed, "
        "largest first. Blocks from Alloc (no file) show as '-'.",
    )
    add_trace_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the leaks document (JSON)")
    parser.add_argument(
        "--max",
        type=int,
        default=1000,
        metavar="N",
        help="list at most N reservations and N block groups (default 1000)",
    )
    parser.set_defaults(func=run)


def leaks_document(summary, limit):
    """The leaks document: the summary's leaks, their totals (over the listed entries)."""
    leaks = summary["leaks"]
    return {
        "format": "clrmemtrace-leaks",
        "version": 1,
        "complete": summary["complete"],
        "incomplete_reasons": summary["incomplete_reasons"],
        "truncated": len(leaks["regions"]) >= limit or len(leaks["blocks"]) >= limit,
        "regions": leaks["regions"],
        "blocks": leaks["blocks"],
        "totals": {
            "regions": len(leaks["regions"]),
            "reserved_bytes": sum(r["size"] for r in leaks["regions"]),
            "committed_bytes": sum(r["committed_bytes"] for r in leaks["regions"]),
            "blocks": sum(b["blocks"] for b in leaks["blocks"]),
            "block_bytes": sum(b["bytes"] for b in leaks["blocks"]),
        },
    }


def run(args):
    if args.max < 1:
        raise UserError("--max must be at least 1", 2)
    summary = load_summary(args.trace, max_details=args.max)
    document = leaks_document(summary, args.max)
    if args.json:
        warn_if_incomplete(summary)
        print_json(document)
    else:
        warn_if_incomplete(summary, stream=sys.stdout)
        sys.stdout.write(format_leaks(document, summary["begin_ns"]))
    return 0


def format_leaks(document, first_ns):
    """The human leak report."""
    totals = document["totals"]
    out = [
        f"Reservations never released: {totals['regions']} "
        f"({format_bytes(totals['reserved_bytes'])} reserved, "
        f"{format_bytes(totals['committed_bytes'])} committed)\n"
    ]
    if document["regions"]:
        rows = [
            [
                r["vpid"],
                r["manager_id"],
                format_address(r["base"]),
                r["size"],
                r["committed_bytes"],
                r["allocation_protect"],
                format_offset(r["time_ns"], first_ns),
                r["tid"] or "-",
                r["level"] or "-",
            ]
            for r in document["regions"]
        ]
        out.append(
            tables.table(
                [
                    "vpid",
                    "mgr",
                    "base",
                    "size",
                    "committed",
                    "allocation protect",
                    "reserved at (s)",
                    "tid",
                    "level",
                ],
                rows,
                align=">><>><>><",
                indent="  ",
            )
        )
    out.append(
        f"\nHeap blocks never freed: {totals['blocks']} "
        f"({format_bytes(totals['block_bytes'])})\n"
    )
    if document["blocks"]:
        rows = [
            [
                b["vpid"],
                b["manager_id"],
                b["heap_id"],
                f"{b['file']}:{b['line']}" if b["file"] or b["line"] else "-",
                b["blocks"],
                b["bytes"],
                b["largest"],
            ]
            for b in document["blocks"]
        ]
        out.append(
            tables.table(
                ["vpid", "mgr", "heap", "file:line", "blocks", "bytes", "largest"],
                rows,
                align=">>><>>>",
                indent="  ",
            )
        )
    if document["truncated"]:
        out.append("\n(lists cut at --max entries: the totals cover the listed entries only)\n")
    return "".join(out)
