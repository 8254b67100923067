# SPDX-License-Identifier: MIT
"""``clrmemtrace plot TRACE -o FILE.png|svg [--kind KIND]``: memory over time, and by address.

The figure's panels share one time axis (time since the trace's first event):

- *memory*: committed bytes stacked by protection, topped by the reserved bytes that are
  not committed (the stack's height is the reserved total); the reserved and committed
  totals as lines that also rise to each time slice's peak; failed calls as red crosses on
  the time axis; memory notifications as vertical lines; the windows in which a manager's
  state was unknown shaded;
- *heap*: the live bytes of heap blocks (the sizes callers asked for) and failed heap calls;
- *addresses*: the runs of pages of the series' ``spans`` (the ``--points`` largest by
  size × duration), each a rectangle over its life and its address range, grey while
  reserved, in its protection's colour while committed. The address axis is cut into
  bands, one per contiguous range of addresses used (per process), labelled with their
  start and size; each band is linear, small bands are drawn taller than their share.

``--kind all`` (the default) draws the three panels in one figure, ``memory`` the first
two, ``addresses`` the last. The figures are built from the summary and series documents,
so ``report`` draws the same ones. Plots use matplotlib's Agg canvas, never a display.
"""

import argparse
import bisect
import collections
import io
import re
import zlib

from clrmemtrace import engine, outfile
from clrmemtrace.cli import EXIT_USAGE, UserError
from clrmemtrace.progress import Progress
from clrmemtrace.summary import add_trace_argument, load_summary, warn_if_incomplete
from clrmemtrace.timefmt import format_address, format_bytes, format_duration

KINDS = ("all", "memory", "addresses")
FORMATS = {".png": "png", ".svg": "svg"}
DEFAULT_POINTS = 2000
# The figures list at most this many reasons a trace is incomplete.
SUMMARY_DETAILS = 10
# The memory panel's stack is drawn with at most this many steps.
STACK_TIMES = 4000
# Legends with more entries take two columns.
LEGEND_ROWS = 12
MAX_POINTS = 1_000_000

# Panel titles and axis labels (the tests look for them in the SVG output).
MEMORY_TITLE = "Committed memory by protection, and reserved memory"
HEAP_TITLE = "Heap blocks: live bytes"
ADDRESS_TITLE = "Reservations over address and time, by state"
ADDRESS_LABEL = "address (bands: ranges in use)"
TIME_LABEL = "time since the first event"

RESERVED_COLOUR = "#c7c7c7"
UNKNOWN_COLOUR = "#9e9e9e"
FAILURE_COLOUR = "#d62728"
PROTECTION_COLOURS = {
    "PAGE_READWRITE": "#4c72b0",
    "PAGE_READONLY": "#55a868",
    "PAGE_EXECUTE_READ": "#dd8452",
    "PAGE_EXECUTE_READWRITE": "#c44e52",
    "PAGE_EXECUTE": "#8172b3",
    "PAGE_WRITECOPY": "#64b5cd",
    "PAGE_EXECUTE_WRITECOPY": "#937860",
    "PAGE_NOACCESS": "#8c8c8c",
}
OTHER_COLOURS = ("#da8bc3", "#ccb974", "#17becf", "#bcbd22", "#9467bd", "#8c564b")
MODIFIER_HATCHES = {"PAGE_GUARD": "//", "PAGE_NOCACHE": "..", "PAGE_WRITECOMBINE": "xx"}
LEVEL_COLOURS = {
    "eMemoryAvailableLow": "#d62728",
    "eMemoryAvailableNeutral": "#7f7f7f",
    "eMemoryAvailableHigh": "#2ca02c",
}

# matplotlib settings for every figure: SVG text stays text (searchable, no embedded glyphs).
RC = {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold"}

Band = collections.namedtuple("Band", "vpid start end y height")
Band.__doc__ = """A contiguous address range [start, end) of process vpid, drawn at y..y+height."""


def register(subparsers):
    parser = subparsers.add_parser(
        "plot",
        help="memory over time by protection, heap bytes, failures, notifications; "
        "reservations over address and time (PNG or SVG)",
        description="Draw committed and reserved memory over time (stacked by protection, "
        "with failed calls, memory notifications and unknown-state windows), heap live "
        "bytes, and the reservations' pages over address and time, coloured by state.",
    )
    add_trace_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the image to write: FILE.png or FILE.svg",
    )
    add_kind_argument(parser)
    add_points_argument(parser)
    parser.set_defaults(func=run)


def add_kind_argument(parser):
    """Add ``--kind``: which panels to draw."""
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="all",
        help="all: every panel in one figure (default); memory: memory and heap over time; "
        "addresses: reservations over address and time",
    )


def points_value(text):
    """``--points``'s value: an integer from 1 to MAX_POINTS (an argparse ``type``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_POINTS:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: 1 to {MAX_POINTS}")
    return value


def add_points_argument(parser):
    """Add ``--points``: at most this many samples per counter, and spans."""
    parser.add_argument(
        "--points",
        type=points_value,
        default=DEFAULT_POINTS,
        metavar="N",
        help=f"at most N samples per counter and N runs of pages (default {DEFAULT_POINTS})",
    )


def output_format(path):
    """The image format of the output file ``path``, from its extension."""
    extension = re.search(r"\.[^./]*$", path)
    fmt = FORMATS.get(extension.group(0).lower()) if extension else None
    if fmt is None:
        raise UserError(f"{path}: unknown image type (name it FILE.png or FILE.svg)", EXIT_USAGE)
    return fmt


def load_documents(trace, points, progress):
    """The summary and series documents of ``trace``, for the figures."""
    with progress.step("reading the trace"):
        summary = load_summary(trace, max_details=SUMMARY_DETAILS)
    with progress.step("sampling the counters"):
        series = engine.series(trace, points=points)
    return summary, series


def run(args):
    fmt = output_format(args.output)
    outfile.check_file(args.output)
    progress = Progress("plot")
    summary, series = load_documents(args.trace, args.points, progress)
    warn_if_incomplete(summary)
    with progress.step("drawing"):
        figure = build_figure(series, summary, args.kind, args.trace, points=args.points)
        with outfile.replacing(args.output) as temporary:
            try:
                save(figure, temporary, fmt)
            except OSError as e:
                raise UserError(f"{args.output}: cannot write: {e.strerror or e}") from None
    return 0


def matplotlib_module():
    """matplotlib with its Agg canvas, or explain how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise UserError(
            "matplotlib is missing: install python3-matplotlib and run with /usr/bin/python3"
        ) from None
    return matplotlib


def build_figure(series, summary, kind, title, points=None):
    """The figure of ``kind`` (``KINDS``) for a series and a summary document.

    ``title`` names the trace; ``points`` is the limit the series was made with.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    matplotlib = matplotlib_module()
    from matplotlib.figure import Figure

    panels = {"all": ("memory", "heap", "addresses"), "memory": ("memory", "heap")}
    panels = panels.get(kind, ("addresses",))
    ratios = {"memory": 3.0, "heap": 1.6, "addresses": 3.0}
    with matplotlib.rc_context(RC):
        figure = Figure(
            figsize=(12, 1.2 + 2.6 * sum(ratios[p] for p in panels) / 3), layout="constrained"
        )
        axes = figure.subplots(
            len(panels),
            1,
            sharex=True,
            squeeze=False,
            gridspec_kw={"height_ratios": [ratios[p] for p in panels]},
        )[:, 0]
        clock = TimeAxis(series)
        windows = unknown_windows(summary)
        failed = summary.get("virtual", {}).get("failed_calls", 0)
        capped = len(series.get("failures", [])) < failed
        for number, (panel, ax) in enumerate(zip(panels, axes)):
            shade_unknown(ax, clock, windows, label=number == 0)
            if panel == "memory":
                draw_memory(ax, series, clock, capped)
            elif panel == "heap":
                draw_heap(ax, series, clock, capped)
            else:
                draw_addresses(ax, series, clock, points=points)
            ax.set_xlim(0, clock.limit)
            entries = len(ax.get_legend_handles_labels()[0])
            if entries:
                ax.legend(
                    loc="upper left",
                    bbox_to_anchor=(1.005, 1.0),
                    frameon=False,
                    fontsize=8,
                    ncol=1 if entries <= LEGEND_ROWS else 2,
                )
        axes[-1].set_xlabel(f"{TIME_LABEL} ({clock.unit})")
        set_title(figure, summary, title)
    return figure


def save(figure, target, fmt):
    """Write ``figure`` as ``fmt`` (png, svg) to the path or binary file ``target``.

    The same figure gives the same file: no date is written, and SVG element ids are
    derived from the content with a fixed salt.
    """
    matplotlib = matplotlib_module()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context(dict(RC, **{"svg.hashsalt": "clrmemtrace"})):
        figure.savefig(target, format=fmt, dpi=110, metadata=metadata)


def svg_text(figure):
    """The SVG document of ``figure``."""
    buffer = io.BytesIO()
    save(figure, buffer, "svg")
    return buffer.getvalue().decode("utf-8")


def inline_svg(document, prefix):
    """The ``<svg>`` element of an SVG document, for an HTML page.

    Its metadata is left out, and its element ids (and the references to them) start with
    ``prefix-``, so that several plots can share a page.
    """
    element = document[document.index("<svg") :]
    element = re.sub(r"<metadata>.*?</metadata>\s*", "", element, flags=re.S)
    element = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', element)
    return re.sub(r'(href="#|url\(#)([^")]+)', rf"\1{prefix}-\2", element)


def set_title(figure, summary, title):
    """The figure's title: the trace, its size, and whether it is complete."""
    events = summary.get("events", 0)
    line = f"{events} events, {summary.get('discarded_events', 0)} discarded"
    begin, end = summary.get("begin_ns"), summary.get("end_ns")
    if begin is not None and end is not None:
        line += f", over {format_duration(end - begin)}"
    colour = "black"
    if not summary.get("complete", True):
        reasons = summary.get("incomplete_reasons") or ["no reason given"]
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        first = reasons[0] if len(reasons[0]) <= 100 else reasons[0][:99] + "…"
        line = f"INCOMPLETE TRACE: {first}{more}"
        colour = FAILURE_COLOUR
    figure.suptitle(f"clrmemtrace: {title}\n{line}", color=colour, fontsize=11)


class TimeAxis:
    """Maps absolute times (ns) to the plots' x axis: a unit from the trace's first event."""

    def __init__(self, series):
        self.begin = series.get("begin_ns") or 0
        self.end = series.get("end_ns") or self.begin
        self.divisor, self.unit = time_scale(self.end - self.begin)
        self.limit = self.x(self.end) if self.end > self.begin else 1.0

    def x(self, ns):
        """The x coordinate of the absolute time ``ns``."""
        return (ns - self.begin) / self.divisor


def time_scale(duration_ns):
    """(divisor, unit) that show ``duration_ns`` with readable numbers."""
    if duration_ns < 2_000_000:
        return 1e3, "µs"
    if duration_ns < 2_000_000_000:
        return 1e6, "ms"
    return 1e9, "s"


def byte_scale(largest):
    """(divisor, unit) for a byte axis reaching ``largest``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if largest >= 2 * size:
            return size, unit
    return 1, "B"


def sample_parts(sample):
    """(time, value after it, peak in its slice) of a counter sample ``[t, last(, max)]``."""
    return sample[0], sample[1], sample[2] if len(sample) > 2 else sample[1]


def step_points(samples, begin, end):
    """The vertices of a counter's step line from ``begin`` to ``end`` (absolute ns).

    The counter is 0 until its first sample. A sample whose slice peaked above its last
    value rises to the peak at its time, then falls to the value.
    """
    times, values = [begin], [0]
    for sample in samples:
        t, last, peak = sample_parts(sample)
        if peak != last:
            times.append(t)
            values.append(peak)
        times.append(t)
        values.append(last)
    times.append(max(end, times[-1]))
    values.append(values[-1])
    return times, values


def values_at(samples, times):
    """A counter's value after each of the sorted ``times`` (0 before its first sample)."""
    values, index, current = [], 0, 0
    for t in times:
        while index < len(samples) and samples[index][0] <= t:
            current = samples[index][1]
            index += 1
        values.append(current)
    return values


def stack_layers(counters, begin, end, max_times=STACK_TIMES):
    """(times, [(protection or None, values)]) of the memory panel's stack.

    The layers are the committed bytes of each protection, largest peak first (then by
    name), then (``None``) the reserved bytes that are not committed. They are evaluated
    at the times of the counters' samples, or, when those are more than ``max_times``, at
    the last of them in each of ``max_times`` equal slices of the trace.
    """
    by_protect = counters.get("committed_by_protect", {})
    times = {begin, end}
    for samples in list(by_protect.values()) + [
        counters.get("reserved_bytes", []),
        counters.get("committed_bytes", []),
    ]:
        times.update(sample[0] for sample in samples)
    times = coarsen(sorted(times), begin, end, max_times)
    order = sorted(
        by_protect, key=lambda name: (-max(sample_parts(s)[2] for s in by_protect[name]), name)
    )
    layers = [(name, values_at(by_protect[name], times)) for name in order]
    reserved = values_at(counters.get("reserved_bytes", []), times)
    committed = values_at(counters.get("committed_bytes", []), times)
    layers.append((None, [max(0, r - c) for r, c in zip(reserved, committed)]))
    return times, layers


def coarsen(times, begin, end, count):
    """The sorted ``times``, keeping only the last in each of ``count`` slices of the trace."""
    if len(times) <= count or end <= begin:
        return times
    kept = []
    for t in times:
        if len(kept) > 1 and _slice(kept[-1], begin, end, count) == _slice(t, begin, end, count):
            kept[-1] = t
        else:
            kept.append(t)
    return kept


def _slice(t, begin, end, count):
    return (t - begin) * count // (end - begin)


def largest_value(samples):
    """The largest value, peaks included, of a counter's samples (0 without any)."""
    return max((sample_parts(s)[2] for s in samples), default=0)


def protection_style(name):
    """(colour, hatch) of a protection name such as ``PAGE_READWRITE|PAGE_GUARD``."""
    base, *modifiers = name.split("|")
    colour = PROTECTION_COLOURS.get(base)
    if colour is None:
        colour = OTHER_COLOURS[zlib.crc32(base.encode()) % len(OTHER_COLOURS)]
    hatch = "".join(MODIFIER_HATCHES.get(m, "") for m in modifiers) or None
    return colour, hatch


def unknown_windows(summary):
    """The merged [begin, end] windows in which some manager's state was unknown."""
    windows = sorted(
        tuple(window)
        for process in summary.get("processes", [])
        for manager in process["managers"]
        for window in manager["unknown_windows"]
    )
    merged = []
    for begin, end in windows:
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    return merged


def shade_unknown(ax, clock, windows, label):
    """Shade the unknown-state windows (legend entry when ``label``)."""
    for number, (begin, end) in enumerate(windows):
        ax.axvspan(
            clock.x(begin),
            clock.x(end),
            facecolor=UNKNOWN_COLOUR,
            alpha=0.3,
            hatch="\\\\",
            edgecolor=UNKNOWN_COLOUR,
            linewidth=0,
            zorder=3,
            label="a manager's state unknown" if label and number == 0 else None,
        )


def mark_failures(ax, clock, failures, capped=False):
    """Red crosses on the time axis at the failed calls ``[t, event, hr]``.

    ``capped`` says the series listed only the first failures of the trace.
    """
    if not failures:
        return
    from matplotlib.transforms import blended_transform_factory

    ax.plot(
        [clock.x(f[0]) for f in failures],
        [0.0] * len(failures),
        linestyle="none",
        marker="x",
        markersize=6,
        color=FAILURE_COLOUR,
        transform=blended_transform_factory(ax.transData, ax.transAxes),
        clip_on=False,
        zorder=5,
        label=f"failed call ({len(failures)}{', list capped' if capped else ''})",
    )


def mark_notifications(ax, clock, notifications):
    """A vertical line at each memory notification ``[t, level]``, coloured by level."""
    labelled = set()
    for t, level in notifications:
        short = level.replace("eMemoryAvailable", "")
        ax.axvline(
            clock.x(t),
            color=LEVEL_COLOURS.get(level, "black"),
            linestyle=":",
            linewidth=1.2,
            zorder=4,
            label=None if level in labelled else f"notification: {short}",
        )
        labelled.add(level)


def _is_heap_call(event):
    return event.startswith("malloc_")


def draw_memory(ax, series, clock, capped=False):
    """The memory panel: committed by protection, reserved, totals, failures, notifications.

    ``capped`` says the series lists only the first failures.
    """
    counters = series["counters"]
    times, layers = stack_layers(counters, clock.begin, clock.end)
    largest = max(
        largest_value(counters.get("reserved_bytes", [])),
        largest_value(counters.get("committed_bytes", [])),
    )
    divisor, unit = byte_scale(largest)
    xs = [clock.x(t) for t in times]
    bottoms, bottom = [], [0] * len(times)
    for _, values in layers:
        bottoms.append(bottom)
        bottom = [b + v for b, v in zip(bottom, values)]
    # Drawn from the top layer down, so that the legend lists them as they are stacked.
    for (name, values), bottom in reversed(list(zip(layers, bottoms))):
        colour, hatch = protection_style(name) if name else (RESERVED_COLOUR, None)
        ax.fill_between(
            xs,
            [b / divisor for b in bottom],
            [(b + v) / divisor for b, v in zip(bottom, values)],
            step="post",
            facecolor=colour,
            edgecolor="#333333" if hatch else colour,
            hatch=hatch,
            linewidth=0,
            label=name or "reserved, not committed",
        )
    for key, label, style in (
        ("reserved_bytes", "reserved (total)", "--"),
        ("committed_bytes", "committed (total)", "-"),
    ):
        t, v = step_points(counters.get(key, []), clock.begin, clock.end)
        ax.plot(
            [clock.x(x) for x in t],
            [y / divisor for y in v],
            style,
            color="black",
            linewidth=0.9,
            drawstyle="steps-post",
            label=label,
        )
    failures = [f for f in series.get("failures", []) if not _is_heap_call(f[1])]
    mark_failures(ax, clock, failures, capped)
    mark_notifications(ax, clock, series.get("notifications", []))
    ax.set_title(MEMORY_TITLE, loc="left")
    ax.set_ylabel(f"bytes ({unit})")
    ax.set_ylim(0, max(largest / divisor * 1.05, 1))


def draw_heap(ax, series, clock, capped=False):
    """The heap panel: live bytes of heap blocks, failed heap calls (``capped`` as for
    ``draw_memory``)."""
    samples = series["counters"].get("heap_live_bytes", [])
    divisor, unit = byte_scale(largest_value(samples))
    if samples:
        t, v = step_points(samples, clock.begin, clock.end)
        xs, ys = [clock.x(x) for x in t], [y / divisor for y in v]
        ax.fill_between(xs, ys, step="post", color="#8fb9d9", linewidth=0)
        ax.plot(
            xs, ys, color="#2b6a99", linewidth=0.9, drawstyle="steps-post", label="heap live bytes"
        )
        ax.set_ylim(0, max(largest_value(samples) / divisor * 1.05, 1))
    else:
        ax.text(
            0.5,
            0.5,
            "no heap block in the trace",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#555555",
        )
        ax.set_yticks([])
    failures = [f for f in series.get("failures", []) if _is_heap_call(f[1])]
    mark_failures(ax, clock, failures, capped)
    ax.set_title(HEAP_TITLE, loc="left")
    ax.set_ylabel(f"bytes ({unit})")


def address_bands(spans):
    """The bands of the address axis: the contiguous ranges the spans cover, per process.

    Bands are ordered by process, then address, from the bottom. Each is at least a quarter
    of the average band's height tall, and a tenth of the axis is left for the gaps between
    them.
    """
    ranges = []
    for span in sorted(spans, key=lambda s: (s["vpid"], s["base"])):
        start, end = span["base"], span["base"] + span["size"]
        last = ranges[-1] if ranges else None
        if last and last[0] == span["vpid"] and start <= last[2]:
            last[2] = max(last[2], end)
        else:
            ranges.append([span["vpid"], start, end])
    if not ranges:
        return []
    total = sum(end - start for _, start, end in ranges)
    smallest = total / (4 * len(ranges))
    heights = [max(end - start, smallest) for _, start, end in ranges]
    gap = 0.1 * sum(heights) / len(ranges) if len(ranges) > 1 else 0
    bands, y = [], 0.0
    for (vpid, start, end), height in zip(ranges, heights):
        bands.append(Band(vpid, start, end, y, height))
        y += height + gap
    return bands


class AddressAxis:
    """Maps (vpid, address) to the address panel's y axis, through its bands."""

    def __init__(self, bands):
        self.bands = collections.defaultdict(list)
        for band in bands:
            self.bands[band.vpid].append(band)
        self.starts = {vpid: [b.start for b in bs] for vpid, bs in self.bands.items()}

    def y(self, vpid, address):
        """The y coordinate of ``address`` in process ``vpid`` (it must lie in a band)."""
        bands = self.bands[vpid]
        band = bands[max(0, bisect.bisect_right(self.starts[vpid], address) - 1)]
        return band.y + (address - band.start) * band.height / (band.end - band.start)


def span_groups(spans):
    """The spans grouped by what colours them: None (reserved) or their protection name."""
    groups = collections.defaultdict(list)
    for span in spans:
        groups[span["protect"] if span["state"] == "MEM_COMMIT" else None].append(span)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")))


def draw_addresses(ax, series, clock, points=None, labelled_bands=24):
    """The address panel: every span as a rectangle over its life and address range.

    ``points`` is the series' limit on spans: reaching it, the title says some are left out.
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.transforms import blended_transform_factory

    spans = series.get("spans", [])
    bands = address_bands(spans)
    title = ADDRESS_TITLE
    if points is not None and len(spans) >= points:
        title += f" (the {len(spans)} largest runs of pages)"
    ax.set_title(title, loc="left")
    ax.set_ylabel(ADDRESS_LABEL)
    if not bands:
        ax.text(
            0.5,
            0.5,
            "no reservation in the trace",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#555555",
        )
        ax.set_yticks([])
        return
    axis = AddressAxis(bands)
    ax.add_collection(
        PolyCollection(
            [[(0, b.y), (1, b.y), (1, b.y + b.height), (0, b.y + b.height)] for b in bands],
            facecolors="#f3f3f3",
            linewidths=0,
            zorder=0,
            transform=blended_transform_factory(ax.transAxes, ax.transData),
        ),
        autolim=False,
    )
    for protect, members in span_groups(spans).items():
        colour, hatch = protection_style(protect) if protect else (RESERVED_COLOUR, None)
        boxes = []
        for span in members:
            x0, x1 = clock.x(span["begin_ns"]), clock.x(span["end_ns"])
            y0 = axis.y(span["vpid"], span["base"])
            y1 = axis.y(span["vpid"], span["base"] + span["size"])
            boxes.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        ax.add_collection(
            PolyCollection(
                boxes,
                facecolors=colour,
                edgecolors="#333333" if hatch else colour,
                linewidths=0.4,
                hatch=hatch,
                label=f"committed {protect}" if protect else "reserved",
                zorder=2,
            )
        )
    top = bands[-1].y + bands[-1].height
    ax.set_yticks(*address_ticks(bands, top, labelled_bands), fontsize=7)
    ax.set_ylim(0, top)


def address_ticks(bands, top, labelled):
    """(positions, labels) of the address axis: at most ``labelled`` ticks, a 1/labelled
    of the axis apart at least.

    Band starts come first, tallest band first (the address and the band's size, with the
    process when there are several); then round offsets in the bands (``+256 KiB``).
    """
    several = len({band.vpid for band in bands}) > 1
    candidates = []
    for band in sorted(bands, key=lambda b: (-b.height, b.y)):
        candidates.append(
            (
                band.y,
                (f"pid {band.vpid} " if several else "")
                + f"{format_address(band.start)} ({format_bytes(band.end - band.start)})",
            )
        )
    for band in bands:
        size = band.end - band.start
        if size < 4:
            continue
        step = 1 << ((size // 4).bit_length() - 1)
        for offset in range(step, size, step):
            candidates.append((band.y + offset * band.height / size, f"+{format_bytes(offset)}"))
    chosen = []
    for position, label in candidates:
        if len(chosen) == labelled:
            break
        if all(abs(position - p) >= top / labelled for p, _ in chosen):
            chosen.append((position, label))
    chosen.sort()
    return [p for p, _ in chosen], [label for _, label in chosen]
