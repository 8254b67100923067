# SPDX-License-Identifier: MIT
"""``clrmemtrace map TRACE --at TIME [--json]``: the address-space map at a moment.

Every manager's reservations as VirtualQuery would walk them (one row per run of pages
with the same state and protection), and its heaps' live blocks; for a process traced with
the interposer, its mmap view's mappings too, with their memory type and file.
"""

import sys

from clrmemtrace import engine, tables
from clrmemtrace.summary import add_trace_argument, print_json
from clrmemtrace.timefmt import argparse_time, format_address, format_clock, format_offset

# The manager id of a process's mmap view (analysis/README.md, "The mmap view").
MMAP_VIEW_ID = 0


def register(subparsers):
    parser = subparsers.add_parser(
        "map",
        help="the address-space map at TIME, as VirtualQuery walked over every reservation",
        description="Print every manager's reservations and heaps as they were at TIME "
        "(after every event at or before it).",
    )
    add_trace_argument(parser)
    parser.add_argument(
        "--at",
        required=True,
        type=argparse_time,
        metavar="TIME",
        help="ns from the first event (1500000000), with a unit (1.5s, 250ms, 40us), or "
        "absolute ns since the epoch (@1700000000123456789)",
    )
    parser.add_argument("--json", action="store_true", help="print the map document (JSON)")
    parser.set_defaults(func=run)


def run(args):
    info = engine.open_trace_check(args.trace)
    at_ns = args.at.resolve(info.first_ns)
    document = engine.map_at(info.path, at_ns)
    if args.json:
        print_json(document)
    else:
        sys.stdout.write(format_map(document, info.first_ns))
    return 0


def _size(size):
    if size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def format_map(document, first_ns):
    """The human map: per manager, a VirtualQuery-style table and its heaps."""
    at_ns = document["at_ns"]
    out = [f"Map at {format_offset(at_ns, first_ns)} s ({format_clock(at_ns)})\n"]
    if not document["processes"]:
        out.append("\nNo manager existed at that time.\n")
    for process in document["processes"]:
        for manager in process["managers"]:
            name = f' "{manager["name"]}"' if manager["name"] else ""
            out.append(
                f"\nProcess {process['vpid']} ({process['procname'] or '?'}), "
                f"manager {manager['manager_id']}{name}\n"
            )
            if not manager["known"]:
                out.append(
                    "  state unknown at that time (events lost, or no state dump yet); "
                    "the regions below are the last known ones\n"
                )
            # The mmap view (manager 0) lists mappings, some of files.
            mappings = manager["manager_id"] == MMAP_VIEW_ID
            if not manager["regions"]:
                out.append("  no mapping\n" if mappings else "  no reservation\n")
            else:
                files = any(
                    r.get("path") or r.get("mem_type", "MEM_PRIVATE") != "MEM_PRIVATE"
                    for r in manager["regions"]
                )
                rows = [
                    [
                        format_address(r["base"]),
                        format_address(r["allocation_base"]),
                        _size(r["size"]),
                        r["state"],
                        r["protect"],
                        r["allocation_protect"],
                    ]
                    + ([r.get("mem_type", ""), r.get("path", "")] if files else [])
                    for r in manager["regions"]
                ]
                out.append(
                    tables.table(
                        [
                            "BaseAddress",
                            "AllocationBase",
                            "RegionSize",
                            "State",
                            "Protect",
                            "AllocationProtect",
                        ]
                        + (["Type", "File"] if files else []),
                        rows,
                        align="<<><<<" + ("<<" if files else ""),
                        indent="  ",
                    )
                )
                reserved = sum(r["size"] for r in manager["regions"])
                committed = sum(r["size"] for r in manager["regions"] if r["state"] == "MEM_COMMIT")
                reservations = len({r["allocation_base"] for r in manager["regions"]})
                out.append(
                    f"  {reservations} {'mappings' if mappings else 'reservations'}, "
                    f"{_size(reserved)} reserved, {_size(committed)} committed\n"
                )
            for heap in manager["heaps"]:
                out.append(
                    f"  heap {heap['heap_id']}: {heap['live_blocks']} live blocks, "
                    f"{heap['live_bytes']} bytes\n"
                )
    return "".join(out)
