# SPDX-License-Identifier: MIT
"""``clrmemtrace report TRACE -o DIR``: one self-contained HTML page with plots and tables.

``DIR/index.html`` needs nothing else: its style is inline, its plots are inline SVG, and
it loads no script, font, image or style sheet. Next to it go the same plots as SVG files
(``memory.svg``, ``addresses.svg``) and the summary document its tables show
(``summary.json``). The tables come from the summary document through the data functions
of ``leaks``, ``latency`` and ``check``; the plots are ``plot``'s.

Every figure with a machine value carries it in ``data-value`` (bytes, counts); the
summary's figures also carry their path in the summary document in ``data-key``
(``virtual.peak_reserved_bytes``).
"""

import html
import json
import os

from clrmemtrace import __version__, engine, outfile, plot, tables
from clrmemtrace.check import format_check
from clrmemtrace.latency import by_power_of_two, latency_document
from clrmemtrace.leaks import leaks_document
from clrmemtrace.progress import Progress
from clrmemtrace.summary import add_trace_argument, load_summary, warn_if_incomplete
from clrmemtrace.timefmt import (
    format_address,
    format_bytes,
    format_clock,
    format_duration,
    format_offset,
)

PAGE = "index.html"
PLOTS = (("memory", "memory.svg"), ("addresses", "addresses.svg"))
SUMMARY = "summary.json"
DEFAULT_MAX = 1000

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 78em; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
h3 { font-size: 1em; }
code { font-family: monospace; background: #f3f3f3; padding: 0 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.banner { padding: 0.6em 1em; border-radius: 4px; margin: 1em 0; }
.banner.complete { background: #e7f4e4; border: 1px solid #7bb56f; }
.banner.incomplete { background: #fde8e8; border: 2px solid #c62828; color: #8e0000; }
.plot svg { max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
nav a { margin-right: 0.8em; }
"""

SECTIONS = (
    ("plots", "Plots"),
    ("totals", "Totals"),
    ("protection", "Committed by protection"),
    ("managers", "Processes and managers"),
    ("calls", "Calls"),
    ("failures", "Failed calls"),
    ("check", "Query check"),
    ("anomalies", "Anomalies"),
    ("leaks", "Leaks"),
    ("latency", "Latency"),
    ("notifications", "Memory notifications"),
)


def register(subparsers):
    parser = subparsers.add_parser(
        "report",
        help="a self-contained HTML page with the plots and tables",
        description="Write DIR/index.html, a page that needs no network or other file: "
        "the plots of 'plot', totals, committed memory by protection, calls and failed "
        "calls, the query check, anomalies, leaks, latency percentiles, notifications and "
        "whether the trace is complete. DIR also gets the plots as SVG and the summary "
        "document (summary.json).",
    )
    add_trace_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="the directory to write to (made if missing; the report's files are replaced)",
    )
    plot.add_points_argument(parser)
    parser.add_argument(
        "--max",
        type=plot.points_value,
        default=DEFAULT_MAX,
        metavar="N",
        help=f"list at most N failures, anomalies, leaks and notifications (default "
        f"{DEFAULT_MAX}; counts stay exact)",
    )
    parser.set_defaults(func=run)


def run(args):
    outfile.check_directory(args.output)
    progress = Progress("report")
    with progress.step("reading the trace"):
        summary = load_summary(args.trace, max_details=args.max)
    with progress.step("sampling the counters"):
        series = engine.series(args.trace, points=args.points, max_details=args.max)
    warn_if_incomplete(summary)
    with progress.step("drawing"):
        svgs = {}
        for kind, _ in PLOTS:
            figure = plot.build_figure(series, summary, kind, args.trace, points=args.points)
            svgs[kind] = plot.svg_text(figure)
    page = render_page(os.path.abspath(args.trace), summary, svgs, args.max)
    outfile.make_directory(args.output)
    written = [os.path.join(args.output, PAGE)]
    outfile.write_text(written[0], page)
    for kind, name in PLOTS:
        written.append(os.path.join(args.output, name))
        outfile.write_text(written[-1], svgs[kind])
    written.append(os.path.join(args.output, SUMMARY))
    outfile.write_text(written[-1], json.dumps(summary, indent=2) + "\n")
    print(f"Report: {written[0]}")
    print(f"Plots: {written[1]} {written[2]}")
    print(f"Summary: {written[3]}")
    return 0


class Cell:
    """A table cell: its text, and optionally a machine value, a summary key and a tooltip."""

    def __init__(self, text, value=None, key=None, title=None, numeric=None):
        self.text = str(text)
        self.value = value
        self.key = key
        self.title = title
        self.numeric = isinstance(value, (int, float)) if numeric is None else numeric

    def html(self, tag="td"):
        attributes = ' class="num"' if self.numeric else ""
        for name, value in (
            ("data-key", self.key),
            ("data-value", self.value),
            ("title", self.title),
        ):
            if value is not None:
                attributes += f' {name}="{escape(value)}"'
        return f"<{tag}{attributes}>{escape(self.text)}</{tag}>"


def escape(value):
    """``value`` as HTML text (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def count_cell(value, key=None):
    """A cell holding a count."""
    return Cell(value, value=value, key=key)


def bytes_cell(value, key=None):
    """A cell holding a byte count, written for people, exact in its tooltip."""
    return Cell(format_bytes(value), value=value, key=key, title=f"{value:,} bytes")


def html_table(headers, rows):
    """An HTML table; cells are ``Cell``s or plain values (numbers are right-aligned).

    Without ``headers`` (None) the table has no header row.
    """
    out = ["<table>"]
    if headers is not None:
        out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>")
    for row in rows:
        cells = []
        for cell in row:
            if not isinstance(cell, Cell):
                cell = Cell(cell, value=cell if isinstance(cell, int) else None)
            cells.append(cell.html())
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


def section(anchor, title, body):
    """An ``<h2>``-headed section."""
    return f'<section id="{anchor}">\n<h2>{escape(title)}</h2>\n{body}</section>\n'


def paragraph(text, cls=None):
    """A paragraph of plain text."""
    attribute = f' class="{cls}"' if cls else ""
    return f"<p{attribute}>{escape(text)}</p>\n"


def listed_note(listed, total, what):
    """A note saying a list shows only its first entries, or ''."""
    if listed >= total:
        return ""
    return paragraph(f"The first {listed} of {total} {what} are listed.", "note")


def render_page(trace, summary, svgs, limit):
    """The whole HTML page for the trace at (absolute) path ``trace``."""
    first = summary["begin_ns"] or 0
    parts = [
        header(trace, summary),
        completeness(summary),
        "<nav>" + "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in SECTIONS) + "</nav>\n",
        section("plots", "Plots", plots(svgs)),
        section("totals", "Totals", totals(summary)),
        section("protection", "Committed at the end, by protection", by_protection(summary)),
        section("managers", "Processes and managers", managers(summary)),
        section("calls", "Calls", calls(summary)),
        section("failures", "Failed calls", failures(summary, first)),
        section("check", "Query check", query_check(summary)),
        section("anomalies", "Anomalies", anomalies(summary, first)),
        section("leaks", "Leaks", leaks(summary, first, limit)),
        section("latency", "Latency", latency(summary)),
        section("notifications", "Memory notifications", notifications(summary, first)),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>clrmemtrace report: {escape(trace)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        + "".join(parts)
        + f'<footer class="note">Made by clrmemtrace {escape(__version__)}.</footer>\n'
        + "</body>\n</html>\n"
    )


def header(trace, summary):
    """The title, the trace's path and its extent."""
    begin, end = summary["begin_ns"], summary["end_ns"]
    managers_count = sum(len(p["managers"]) for p in summary["processes"])
    rows = [
        ["trace", Cell(trace, key="trace")],
        ["events", count_cell(summary["events"], "events")],
        ["discarded events", count_cell(summary["discarded_events"], "discarded_events")],
        ["first event", format_clock(begin) if begin is not None else "-"],
        ["duration", format_duration(end - begin) if begin is not None else "-"],
        ["processes", count_cell(len(summary["processes"]))],
        ["managers", count_cell(managers_count)],
    ]
    return (
        "<header>\n<h1>clrmemtrace report</h1>\n"
        f'<p>Trace: <code id="trace-path">{escape(trace)}</code></p>\n'
        + html_table(None, rows)
        + "</header>\n"
    )


def completeness(summary):
    """The banner saying whether the trace is complete, and why not."""
    if summary["complete"]:
        return (
            '<div id="completeness" class="banner complete" data-complete="true">'
            "<strong>Complete trace:</strong> no event was lost and every manager's state "
            "was known throughout.</div>\n"
        )
    reasons = summary["incomplete_reasons"] or ["no reason given"]
    windows = [
        f"process {p['vpid']}, manager {m['manager_id']}: state unknown from "
        f"{format_clock(b)} for {format_duration(e - b)}"
        for p in summary["processes"]
        for m in p["managers"]
        for b, e in m["unknown_windows"]
    ]
    items = "".join(f"<li>{escape(text)}</li>" for text in reasons + windows)
    return (
        '<div id="completeness" class="banner incomplete" data-complete="false">'
        f"<strong>Incomplete trace:</strong> {summary['discarded_events']} events discarded. "
        "The figures below cover what the trace holds; while a manager's state was unknown "
        f"its figures kept their last known values.<ul>{items}</ul></div>\n"
    )


def plots(svgs):
    """The plots, inline."""
    titles = {
        "memory": "Memory over time",
        "addresses": "Reservations over address and time",
    }
    return "".join(
        f'<h3>{escape(titles[kind])}</h3>\n<div class="plot" id="plot-{kind}">\n'
        f"{plot.inline_svg(svgs[kind], kind)}\n</div>\n"
        for kind, _ in PLOTS
    )


def totals(summary):
    """The summary's totals over every process and manager."""
    virtual, malloc, check = summary["virtual"], summary["malloc"], summary["check"]

    def figure(label, section_name, key, is_bytes=False):
        values = {"virtual": virtual, "malloc": malloc, "check": check}[section_name]
        make = bytes_cell if is_bytes else count_cell
        return [label, make(values[key], f"{section_name}.{key}")]

    rows = [
        figure("peak reserved", "virtual", "peak_reserved_bytes", True),
        figure("peak committed", "virtual", "peak_committed_bytes", True),
        figure("reserved at the end", "virtual", "final_reserved_bytes", True),
        figure("committed at the end", "virtual", "final_committed_bytes", True),
        figure("reservations live at the end", "virtual", "live_regions"),
        figure("failed calls", "virtual", "failed_calls"),
        figure("heaps", "malloc", "heaps"),
        figure("heap allocations", "malloc", "allocs"),
        figure("heap frees", "malloc", "frees"),
        figure("peak heap live bytes", "malloc", "peak_live_bytes", True),
        figure("heap live bytes at the end", "malloc", "final_live_bytes", True),
        figure("heap blocks live at the end", "malloc", "live_blocks"),
        figure("queries checked", "check", "queries_checked"),
        figure("query mismatches", "check", "mismatches"),
        figure("queries unverifiable", "check", "unverifiable"),
        figure("of which made before their manager's first dump", "check", "unverifiable_before_dump"),
    ]
    note = paragraph(
        "Byte figures are totals over every process and manager at the same instant; heap "
        "bytes are the sizes callers asked for.",
        "note",
    )
    return html_table(["figure", "value"], rows) + note


def by_protection(summary):
    """Committed bytes at the end of the trace, by protection, largest first."""
    by_protect = summary["virtual"]["committed_by_protect"]
    if not by_protect:
        return paragraph("Nothing committed at the end of the trace.")
    rows = [
        [name, bytes_cell(value, f"virtual.committed_by_protect.{name}")]
        for name, value in sorted(by_protect.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return html_table(["protection", "committed"], rows)


def managers(summary):
    """One row per manager, with its own figures and whether its state is complete."""
    rows = []
    for process in summary["processes"]:
        for manager in process["managers"]:
            mv, mm = manager["virtual"], manager["malloc"]
            rows.append(
                [
                    count_cell(process["vpid"]),
                    process["procname"] or "-",
                    count_cell(manager["manager_id"]),
                    manager["name"] or "-",
                    Cell(
                        "yes" if manager["complete"] else "NO",
                        value=str(manager["complete"]).lower(),
                    ),
                    count_cell(len(manager["unknown_windows"])),
                    bytes_cell(mv["peak_reserved_bytes"]),
                    bytes_cell(mv["peak_committed_bytes"]),
                    bytes_cell(mv["final_reserved_bytes"]),
                    bytes_cell(mv["final_committed_bytes"]),
                    bytes_cell(mm["peak_live_bytes"]),
                    bytes_cell(mm["final_live_bytes"]),
                    count_cell(sum(mv["calls"].values())),
                    count_cell(mv["failed_calls"]),
                ]
            )
    headers = [
        "vpid",
        "process",
        "manager",
        "name",
        "complete",
        "unknown windows",
        "peak reserved",
        "peak committed",
        "final reserved",
        "final committed",
        "heap peak",
        "heap final",
        "calls",
        "failed",
    ]
    return html_table(headers, rows)


def calls(summary):
    """Calls by name, and the listed failures grouped by call and result."""
    virtual = summary["virtual"]
    made = sorted((name, count) for name, count in virtual["calls"].items() if count)
    if not made:
        return paragraph("No call in the trace.")
    out = html_table(
        ["call", "count"], [[name, count_cell(n, f"virtual.calls.{name}")] for name, n in made]
    )
    out += paragraph(f"Failed: {virtual['failed_calls']} (any result other than S_OK).")
    groups = {}
    for failure in summary["failures"]:
        key = (failure["event"], failure["hr"])
        groups[key] = groups.get(key, 0) + 1
    if groups:
        out += html_table(
            ["failed call", "result", "count"],
            [[e, hr, count_cell(n)] for (e, hr), n in sorted(groups.items())],
        )
        out += listed_note(len(summary["failures"]), virtual["failed_calls"], "failures")
    return out


def failures(summary, first):
    """Every listed failed call, in time order."""
    listed = summary["failures"]
    if not listed:
        return paragraph("No failed call.")
    rows = [
        [
            format_offset(f["time_ns"], first),
            count_cell(f["vpid"]),
            count_cell(f["tid"]),
            count_cell(f["manager_id"]),
            f["event"],
            f["hr"],
            Cell(format_address(f["addr"]), value=f["addr"], numeric=False),
            bytes_cell(f["size"]),
        ]
        for f in listed
    ]
    out = html_table(
        ["time (s)", "vpid", "tid", "manager", "call", "result", "address", "size"], rows
    )
    return out + listed_note(len(listed), summary["virtual"]["failed_calls"], "failures")


def query_check(summary):
    """The replay of the traced queries: ``check``'s report."""
    text, _ = format_check(summary)
    return f"<pre>{escape(text)}</pre>\n"


def anomalies(summary, first):
    """Anomaly counts by kind, and the listed anomalies."""
    counts = summary["anomaly_counts"]
    found = sorted((kind, n) for kind, n in counts.items() if n)
    if not found:
        return paragraph("No anomaly.")
    out = html_table(
        ["kind", "count"], [[kind, count_cell(n, f"anomaly_counts.{kind}")] for kind, n in found]
    )
    rows = [
        [
            a["kind"],
            format_offset(a["time_ns"], first),
            count_cell(a["vpid"]),
            count_cell(a["tid"]),
            count_cell(a["manager_id"]),
            Cell(format_address(a["addr"]), value=a["addr"], numeric=False),
            bytes_cell(a["size"]),
            a["detail"],
        ]
        for a in summary["anomalies"]
    ]
    out += html_table(
        ["kind", "time (s)", "vpid", "tid", "manager", "address", "size", "detail"], rows
    )
    return out + listed_note(len(rows), sum(counts.values()), "anomalies")


def leaks(summary, first, limit):
    """Reservations never released and heap blocks never freed, largest first."""
    document = leaks_document(summary, limit)
    totals_ = document["totals"]
    out = paragraph(
        f"Reservations never released: {totals_['regions']} "
        f"({format_bytes(totals_['reserved_bytes'])} reserved, "
        f"{format_bytes(totals_['committed_bytes'])} committed)."
    )
    if document["regions"]:
        rows = [
            [
                count_cell(r["vpid"]),
                count_cell(r["manager_id"]),
                Cell(format_address(r["base"]), value=r["base"], numeric=False),
                bytes_cell(r["size"]),
                bytes_cell(r["committed_bytes"]),
                r["allocation_protect"],
                format_offset(r["time_ns"], first),
                r["tid"] or "-",
                r["level"] or "-",
            ]
            for r in document["regions"]
        ]
        out += html_table(
            [
                "vpid",
                "manager",
                "base",
                "size",
                "committed",
                "allocation protect",
                "reserved at (s)",
                "tid",
                "level",
            ],
            rows,
        )
    out += paragraph(
        f"Heap blocks never freed: {totals_['blocks']} ({format_bytes(totals_['block_bytes'])})."
    )
    if document["blocks"]:
        rows = [
            [
                count_cell(b["vpid"]),
                count_cell(b["manager_id"]),
                count_cell(b["heap_id"]),
                f"{b['file']}:{b['line']}" if b["file"] or b["line"] else "-",
                count_cell(b["blocks"]),
                bytes_cell(b["bytes"]),
                bytes_cell(b["largest"]),
            ]
            for b in document["blocks"]
        ]
        out += html_table(
            ["vpid", "manager", "heap", "file:line", "blocks", "bytes", "largest"], rows
        )
    if document["truncated"]:
        out += paragraph(
            "The lists were cut at --max entries: the totals cover the listed entries only.",
            "note",
        )
    return out


def latency(summary):
    """Percentiles of every call's duration, and its histogram."""
    stats_by_call = latency_document(summary)["latency"]
    if not stats_by_call:
        return paragraph("No call with a measured duration in the trace.")
    rows = []
    for name, stats in sorted(stats_by_call.items()):
        rows.append(
            [name, count_cell(stats["count"])]
            + [
                Cell(format_duration(stats[key]), value=stats[key])
                for key in ("min_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns")
            ]
        )
    out = html_table(["call", "count", "min", "p50", "p90", "p99", "max", "mean"], rows)
    out += paragraph(
        "Percentiles are within 6.25% of the exact values; minimum and maximum are exact.",
        "note",
    )
    for name, stats in sorted(stats_by_call.items()):
        histogram = tables.histogram(by_power_of_two(stats["histogram"]), format_duration)
        out += (
            f"<details><summary>{escape(name)}: {stats['count']} calls</summary>"
            f"<pre>{escape(histogram)}</pre></details>\n"
        )
    return out


def notifications(summary, first):
    """The memory notifications delivered to the runtime."""
    listed = summary["notifications"]
    if not listed:
        return paragraph("No memory notification.")
    rows = [
        [
            format_offset(n["time_ns"], first),
            count_cell(n["vpid"]),
            count_cell(n["manager_id"]),
            n["level"],
            n["hr"],
            count_cell(n["load"]),
            n["reason"],
        ]
        for n in listed
    ]
    return html_table(["time (s)", "vpid", "manager", "level", "result", "load", "reason"], rows)
