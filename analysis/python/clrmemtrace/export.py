# SPDX-License-Identifier: MIT
"""``clrmemtrace export TRACE [--format perfetto|csv] -o FILE``: the trace for other tools.

- ``perfetto``: the plugin's Perfetto document, a Chrome trace-event JSON array that
  Perfetto's UI and ``chrome://tracing`` open (counters per process, one slice per
  reservation).
- ``csv``: the series' counters, one row per sample, ordered by time:
  ``time_ns,counter,protect,value,slice_max``.

Without ``--format`` the format follows the output's extension (``.json``, ``.csv``).
``-o -`` writes to stdout (``--format`` is then required).
"""

import csv
import io
import os
import re
import shutil
import sys
import tempfile

from clrmemtrace import engine, outfile
from clrmemtrace.cli import EXIT_USAGE, UserError
from clrmemtrace.plot import SUMMARY_DETAILS, add_points_argument
from clrmemtrace.progress import Progress
from clrmemtrace.summary import add_trace_argument, load_summary, warn_if_incomplete

FORMATS = ("perfetto", "csv")
EXTENSIONS = {".json": "perfetto", ".csv": "csv"}
CSV_COLUMNS = ("time_ns", "counter", "protect", "value", "slice_max")
STDOUT = "-"


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="Chrome trace-event JSON for Perfetto's UI, or the counters over time as CSV",
        description="Write the trace for other tools: 'perfetto' is a Chrome trace-event "
        "JSON array (memory counters per process, one slice per reservation) that "
        "Perfetto's UI opens; 'csv' holds the reserved, committed (in total and by "
        "protection) and heap live bytes over time, one row per sample.",
    )
    add_trace_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the file to write ('-': stdout)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="perfetto or csv (default: from FILE's extension, .json or .csv)",
    )
    add_points_argument(parser)
    parser.set_defaults(func=run)


def export_format(fmt, output):
    """The format to write: ``fmt`` if given, else the one ``output``'s extension names."""
    if fmt:
        return fmt
    if output == STDOUT:
        raise UserError("--format is required when writing to stdout", EXIT_USAGE)
    extension = re.search(r"\.[^./]*$", output)
    fmt = EXTENSIONS.get(extension.group(0).lower()) if extension else None
    if fmt is None:
        raise UserError(
            f"{output}: unknown file type: give --format, or name it FILE.json (perfetto) "
            "or FILE.csv (csv)",
            EXIT_USAGE,
        )
    return fmt


def counter_rows(series):
    """The CSV rows of a series document's counters, ordered by time.

    Each is ``(time_ns, counter, protect, value, slice_max)``: ``protect`` names the
    protection of ``committed_by_protect`` samples and is empty for the other counters;
    ``slice_max`` is the largest value in the sample's time slice (at least ``value``).
    Samples of the same time keep the order reserved, committed, committed by protection
    (by name), heap.
    """
    counters = series["counters"]
    named = [("reserved_bytes", "", counters["reserved_bytes"])]
    named.append(("committed_bytes", "", counters["committed_bytes"]))
    for protect in sorted(counters["committed_by_protect"]):
        named.append(("committed_by_protect", protect, counters["committed_by_protect"][protect]))
    named.append(("heap_live_bytes", "", counters["heap_live_bytes"]))
    rows = []
    for counter, protect, samples in named:
        for sample in samples:
            value = sample[1]
            rows.append(
                (sample[0], counter, protect, value, sample[2] if len(sample) > 2 else value)
            )
    rows.sort(key=lambda row: row[0])
    return rows


def counters_csv(series):
    """The CSV text of a series document's counters (a header row, then ``counter_rows``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(counter_rows(series))
    return out.getvalue()


def write_perfetto(path, output, points):
    """Write the Perfetto document of the trace at ``path`` to ``output`` (a file or '-')."""
    if output != STDOUT:
        with outfile.replacing(output) as temporary:
            engine.perfetto(path, temporary, points=points)
        return
    with tempfile.TemporaryDirectory(prefix="clrmemtrace-") as tmp:
        document = os.path.join(tmp, "perfetto.json")
        engine.perfetto(path, document, points=points)
        with open(document, encoding="utf-8") as f:
            shutil.copyfileobj(f, sys.stdout)


def write_csv(path, output, points):
    """Write the counters CSV of the trace at ``path`` to ``output`` (a file or '-')."""
    text = counters_csv(engine.series(path, points=points))
    if output == STDOUT:
        sys.stdout.write(text)
    else:
        outfile.write_text(output, text)


def run(args):
    fmt = export_format(args.format, args.output)
    if args.output != STDOUT:
        outfile.check_file(args.output)
    progress = Progress("export")
    with progress.step("reading the trace"):
        summary = load_summary(args.trace, max_details=SUMMARY_DETAILS)
    warn_if_incomplete(summary)
    with progress.step(f"writing the {fmt} export"):
        if fmt == "perfetto":
            write_perfetto(args.trace, args.output, args.points)
        else:
            write_csv(args.trace, args.output, args.points)
    return 0
