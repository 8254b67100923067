# SPDX-License-Identifier: MIT
"""``clrmemtrace check TRACE``: replay every traced VirtualQuery against the reconstruction.

Exit status 0 when no query contradicts the reconstruction (including when none could be
checked), 1 when some do.
"""

import sys

from clrmemtrace import tables
from clrmemtrace.summary import add_trace_argument, load_summary, warn_if_incomplete
from clrmemtrace.timefmt import format_offset

EXIT_MISMATCH = 1

# The MEMORY_BASIC_INFORMATION fields a query answer is compared on.
QUERY_FIELDS = (
    "base",
    "allocation_base",
    "allocation_protect",
    "region_size",
    "state",
    "protect",
    "mem_type",
)


def register(subparsers):
    parser = subparsers.add_parser(
        "check",
        help="replay every traced virtual_query against the reconstruction (exit 1 on mismatch)",
        description="Compare every successful VirtualQuery answer in the trace with the "
        "state the reconstruction holds for its manager. Exit status 0 when none "
        "contradicts it, 1 otherwise.",
    )
    add_trace_argument(parser)
    parser.set_defaults(func=run)


def _value(value):
    if isinstance(value, int):
        return f"0x{value:x}"
    return str(value)


def format_check(summary):
    """The check report, and the exit status it calls for."""
    check = summary["check"]
    before_dump = check["unverifiable_before_dump"]
    out = [
        f"Queries checked: {check['queries_checked']}\n",
        f"Mismatches:      {check['mismatches']}\n",
        f"Unverifiable:    {check['unverifiable']}"
        + (f" ({before_dump} made before their manager's first state dump)" if before_dump else "")
        + "\n",
    ]
    if check["queries_checked"] == 0:
        out.append(
            "Note: no query could be checked (the trace holds no successful virtual_query "
            "whose manager's state was known).\n"
        )
    details = check["mismatch_details"]
    if details:
        rows = []
        for mismatch in details:
            got, expected = mismatch["got"], mismatch["expected"]
            head = [
                format_offset(mismatch["time_ns"], summary["begin_ns"]),
                mismatch["vpid"],
                mismatch["manager_id"],
                f"0x{mismatch['address']:x}",
                f"{mismatch.get('seq_before', '?')}-{mismatch.get('seq_after', '?')}",
            ]
            if expected is None:
                overlaps = mismatch.get("overlaps")
                where = f"reservation 0x{overlaps:x}" if overlaps is not None else "a reservation"
                rows.append(
                    head
                    + [
                        "base+region_size",
                        f"0x{got['base']:x}+0x{got['region_size']:x}",
                        f"not owned: must not overlap {where}",
                    ]
                )
                continue
            differing = [f for f in QUERY_FIELDS if got.get(f) != expected.get(f)] or ["-"]
            for number, field in enumerate(differing):
                rows.append(
                    (head if number == 0 else [""] * len(head))
                    + [
                        field,
                        _value(got.get(field, "-")) if field != "-" else "-",
                        _value(expected.get(field, "-")) if field != "-" else "-",
                    ]
                )
        out.append("\n")
        out.append(
            tables.table(
                ["time (s)", "vpid", "mgr", "address", "seq", "field", "traced answer", "expected"],
                rows,
                align=">>><<<<<",
            )
        )
        if len(details) < check["mismatches"]:
            out.append(f"(the first {len(details)} mismatches listed)\n")
    status = EXIT_MISMATCH if check["mismatches"] else 0
    return "".join(out), status


def run(args):
    summary = load_summary(args.trace)
    warn_if_incomplete(summary, stream=sys.stdout)
    text, status = format_check(summary)
    sys.stdout.write(text)
    return status
