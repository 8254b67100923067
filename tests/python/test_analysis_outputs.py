# SPDX-License-Identifier: MIT
"""The analysis commands that write files: ``plot``, ``report`` and ``export``.

They run in this process on the fixture traces (tests/data/traces), with the Babeltrace2
plugin from $CLRMEMTRACE_BUILD_DIR (default build-test) and, where the output comes from
the engine alone, with the pure-Python oracle too. Images are checked by their PNG
signature and by the text of the SVG, the report by parsing its HTML, the exports
against the series and summary documents of the same trace.
"""

import csv
import html.parser
import io
import json
import os
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "analysis", "python"))

import cases  # noqa: E402
from clrmemtrace import engine, export, plot, progress  # noqa: E402

PLUGIN = cases.find_plugin()
needs_plugin = pytest.mark.skipif(not PLUGIN, reason=f"no plugin in {cases.plugin_dir()}")
ENGINES = ["oracle", pytest.param("plugin", marks=needs_plugin)]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
BAD = [(name, status) for name, status in cases.BAD_INPUTS.items() if name != "truncated-metadata"]


@pytest.fixture
def plugin_engine(monkeypatch):
    """Run ``engine`` functions called from the test itself with the build's plugin."""
    monkeypatch.setenv("CLRMEMTRACE_PLUGIN_PATH", PLUGIN or "")


def trace_path(name):
    return os.path.join(cases.REPO, cases.trace_path(name))


def run_ok(argv, engine_name="plugin"):
    status, out, err = cases.run(argv, engine_name)
    assert status == 0, err
    assert all(line.startswith("WARNING: incomplete trace:") for line in err.splitlines()), err
    return out, err


def summary_document(trace, engine_name="plugin"):
    out, _ = run_ok(["summary", "--json", cases.trace_path(trace)], engine_name)
    return json.loads(out)


def assert_one_line_error(argv, status, got, out, err):
    assert got == status, f"{argv}: {err}"
    assert len(err.splitlines()) == 1, f"{argv}: {err!r}"
    assert err.startswith(f"clrmemtrace {argv[0]}: "), err
    assert "Traceback" not in err
    assert out == ""


def png_size(path):
    """(width, height) from a PNG file's IHDR chunk; fails unless it is a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def svg_texts(path):
    """Every text of an SVG file's <text> elements (the file must parse as XML)."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]


# plot


@needs_plugin
@pytest.mark.parametrize("trace", cases.TRACES)
def test_plot_png_and_svg(trace, tmp_path):
    png, svg = tmp_path / "plot.png", tmp_path / "plot.SVG"
    run_ok(["plot", cases.trace_path(trace), "-o", str(png)])
    width, height = png_size(png)
    assert width > 1000 and height > 700
    run_ok(["plot", cases.trace_path(trace), "-o", str(svg)])
    texts = svg_texts(svg)
    for title in (plot.MEMORY_TITLE, plot.HEAP_TITLE, plot.ADDRESS_TITLE, plot.ADDRESS_LABEL):
        assert title in texts
    assert any(t.startswith(plot.TIME_LABEL + " (") for t in texts)
    assert any(t.startswith("bytes (") for t in texts)
    title = next(t for t in texts if t.startswith("clrmemtrace: "))
    assert cases.trace_path(trace) in title
    summary = summary_document(trace)
    incomplete = any(t.startswith("INCOMPLETE TRACE: ") for t in texts)
    assert incomplete == (not summary["complete"])
    windows = [w for p in summary["processes"] for m in p["managers"] for w in m["unknown_windows"]]
    assert ("a manager's state unknown" in texts) == bool(windows)
    for name in summary["virtual"]["committed_by_protect"]:
        assert name in texts and f"committed {name}" in texts
    assert sorted(os.listdir(tmp_path)) == ["plot.SVG", "plot.png"]


@needs_plugin
def test_plot_shows_the_fixture(tmp_path):
    svg = tmp_path / "rwx.svg"
    run_ok(["plot", cases.trace_path("rwx"), "-o", str(svg)])
    texts = svg_texts(svg)
    # One band: the trace's reservations are contiguous, 1.4 MiB from 0x7fd74a480000.
    assert "0x7fd74a480000 (1.4 MiB)" in texts
    assert "+256 KiB" in texts
    assert "bytes (KiB)" in texts
    assert f"{plot.TIME_LABEL} (µs)" in texts
    assert "48 events, 0 discarded, over 369 us" in " ".join(texts)
    assert "no heap block in the trace" in texts
    assert not any(t.startswith("failed call") for t in texts)

    run_ok(["plot", cases.trace_path("refused"), "-o", str(svg), "--kind", "memory"])
    texts = svg_texts(svg)
    # 10 refused calls: 8 of the manager's, 2 of the heap's (double free, unknown pointer).
    assert "failed call (8)" in texts and "failed call (2)" in texts
    assert plot.ADDRESS_TITLE not in texts and plot.MEMORY_TITLE in texts

    run_ok(["plot", cases.trace_path("two-processes"), "-o", str(svg), "--kind", "addresses"])
    texts = svg_texts(svg)
    assert plot.MEMORY_TITLE not in texts and plot.HEAP_TITLE not in texts
    assert {t.split()[1] for t in texts if t.startswith("pid ")} == {"313", "314"}

    out, err = run_ok(["plot", cases.trace_path("discarded"), "-o", str(svg)])
    assert out == "" and err.startswith("WARNING: incomplete trace: events discarded")
    texts = svg_texts(svg)
    assert "a manager's state unknown" in texts
    assert any("INCOMPLETE TRACE: events discarded by the tracer" in t for t in texts)


def test_plot_needs_no_display(tmp_path):
    # Run as a program, with a display backend asked for and no display to use.
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(CLRMEMTRACE_ENGINE="oracle", MPLBACKEND="TkAgg")
    image = tmp_path / "x.png"
    proc = subprocess.run(
        [
            os.path.join(cases.REPO, "analysis", "clrmemtrace"),
            "plot",
            cases.trace_path("leaks"),
            "-o",
            str(image),
        ],
        cwd=cases.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert png_size(image)[0] > 1000


@needs_plugin
def test_plot_points_limit_spans(tmp_path):
    svg = tmp_path / "threads.svg"
    run_ok(["plot", cases.trace_path("threads"), "-o", str(svg), "--points", "5"])
    assert f"{plot.ADDRESS_TITLE} (the 5 largest runs of pages)" in svg_texts(svg)


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("name,status", BAD, ids=[b[0] for b in BAD])
def test_bad_input(engine_name, name, status, tmp_path):
    trace = cases.trace_path(name)
    for argv in (
        ["plot", trace, "-o", str(tmp_path / "x.png")],
        ["report", trace, "-o", str(tmp_path / "report")],
        ["export", trace, "-o", str(tmp_path / "x.csv")],
        ["export", trace, "--format", "perfetto", "-o", str(tmp_path / "x")],
    ):
        assert_one_line_error(argv, status, *cases.run(argv, engine_name))
    assert os.listdir(tmp_path) == []


def test_bad_output(tmp_path):
    trace = cases.trace_path("rwx")
    existing = tmp_path / "file"
    existing.write_text("kept\n")
    for argv, status, words in (
        (["plot", trace, "-o", str(tmp_path / "x.gif")], 2, "unknown image type"),
        (["plot", trace, "-o", str(tmp_path / "x")], 2, "unknown image type"),
        (["plot", trace, "-o", str(tmp_path / "none" / "x.png")], 3, "no directory"),
        (["plot", trace, "-o", str(tmp_path)], 2, "unknown image type"),
        (["plot", trace, "-o", str(tmp_path / "d.svg")], 3, "is a directory"),
        (["export", trace, "-o", str(tmp_path / "x.txt")], 2, "unknown file type"),
        (["export", trace, "-o", "-"], 2, "--format is required"),
        (["export", trace, "-o", str(existing / "x.csv")], 3, "no directory"),
        (["report", trace, "-o", str(existing)], 3, "not a directory"),
        (["report", trace, "-o", str(existing / "sub")], 3, "not a directory"),
    ):
        (tmp_path / "d.svg").mkdir(exist_ok=True)
        got = cases.run(argv, "oracle")
        assert_one_line_error(argv, status, *got)
        assert words in got[2]
    assert existing.read_text() == "kept\n"
    assert sorted(os.listdir(tmp_path)) == ["d.svg", "file"]


@pytest.mark.parametrize(
    "argv",
    [
        ["plot", "--kind", "pie"],
        ["plot", "--points", "0"],
        ["export", "--format", "xml"],
        ["export", "--points", "many"],
        ["report", "--max", "-1"],
    ],
)
def test_bad_options(argv, tmp_path):
    output = str(tmp_path / ("x.png" if argv[0] == "plot" else "x.csv"))
    status, out, err = cases.run(argv + [cases.trace_path("rwx"), "-o", output], "oracle")
    assert status == 2 and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_failed_plot_leaves_the_file(tmp_path):
    image = tmp_path / "x.svg"
    image.write_text("old\n")
    argv = ["plot", cases.trace_path("not-a-trace"), "-o", str(image)]
    assert_one_line_error(argv, 3, *cases.run(argv, "oracle"))
    assert image.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["x.svg"]


# report


class Page(html.parser.HTMLParser):
    """What the tests need of an HTML page: tags, attributes, figures, ids, text by id."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.figures = {}
        self.ids = []
        self.text = []
        self.open_ids = []
        self.by_id = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if "data-key" in attributes:
            self.figures[attributes["data-key"]] = attributes.get("data-value")
        if tag in ("code", "div", "section") and "id" in attributes:
            self.open_ids.append((tag, attributes["id"]))
            self.by_id[attributes["id"]] = ""
        elif tag in ("code", "div", "section"):
            self.open_ids.append((tag, None))

    def handle_endtag(self, tag):
        if tag in ("code", "div", "section") and self.open_ids:
            self.open_ids.pop()

    def handle_data(self, data):
        self.text.append(data)
        for _, ident in self.open_ids:
            if ident:
                self.by_id[ident] += data


def parse_page(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page.feed(text)
    page.close()
    return page, text


def summary_figures(summary):
    """The figures the report's data-key cells must show, keyed as the report keys them."""
    figures = {"events": summary["events"], "discarded_events": summary["discarded_events"]}
    for section in ("virtual", "malloc", "check"):
        for key, value in summary[section].items():
            if isinstance(value, int):
                figures[f"{section}.{key}"] = value
    for key in ("committed_by_protect", "calls"):
        for name, value in summary["virtual"][key].items():
            if value:
                figures[f"virtual.{key}.{name}"] = value
    for kind, value in summary["anomaly_counts"].items():
        if value:
            figures[f"anomaly_counts.{kind}"] = value
    return figures


def assert_self_contained(page, text):
    for tag, attributes in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed", "img"), tag
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            assert value == "" or value.startswith("#"), (tag, name, value)
    lowered = text.lower()
    for needle in ('src="http', "<script", "<link", "@import", "url(http", "url('http"):
        assert needle not in lowered


@needs_plugin
@pytest.mark.parametrize("trace", ["rwx", "refused", "leaks", "two-processes", "discarded"])
def test_report(trace, tmp_path):
    directory = tmp_path / "out" / trace
    out, err = run_ok(["report", cases.trace_path(trace), "-o", str(directory)])
    files = {
        name: directory / name
        for name in ("index.html", "memory.svg", "addresses.svg", "summary.json")
    }
    assert out.splitlines() == [
        f"Report: {files['index.html']}",
        f"Plots: {files['memory.svg']} {files['addresses.svg']}",
        f"Summary: {files['summary.json']}",
    ]
    assert sorted(os.listdir(directory)) == sorted(files)
    page, text = parse_page(files["index.html"])
    assert_self_contained(page, text)
    assert len(page.ids) == len(set(page.ids)), "duplicate ids"
    assert page.by_id["trace-path"] == trace_path(trace)
    assert f"<title>clrmemtrace report: {trace_path(trace)}</title>" in text

    summary = summary_document(trace)
    with open(files["summary.json"], encoding="utf-8") as f:
        assert cases.normalised(json.load(f)) == cases.normalised(summary)
    want = summary_figures(summary)
    got = {key: int(value) for key, value in page.figures.items() if key in want}
    assert got == want
    assert page.figures["trace"] is None  # a path, not a number

    banner = next(a for tag, a in page.tags if a.get("id") == "completeness")
    assert banner["data-complete"] == str(summary["complete"]).lower()
    if summary["complete"]:
        assert page.by_id["completeness"].startswith("Complete trace:")
        assert not err
    else:
        assert page.by_id["completeness"].startswith("Incomplete trace:")
        for reason in summary["incomplete_reasons"]:
            assert reason in page.by_id["completeness"]

    for kind in ("memory", "addresses"):
        assert any(t == "svg" for t, _ in page.tags)
        assert plot.MEMORY_TITLE in page.by_id[f"plot-{kind}"] or kind == "addresses"
        texts = svg_texts(files[f"{kind}.svg"])
        assert (plot.ADDRESS_TITLE in texts) == (kind == "addresses")


@needs_plugin
def test_report_tables(tmp_path):
    run_ok(["report", cases.trace_path("leaks"), "-o", str(tmp_path)])
    page, text = parse_page(tmp_path / "index.html")
    summary = summary_document("leaks")
    leaks_text = page.by_id["leaks"]
    regions = summary["leaks"]["regions"]
    assert f"Reservations never released: {len(regions)} " in leaks_text
    # Largest first, as leaks lists them.
    start = text.index('<section id="leaks">')
    positions = [text.index(f'data-value="{r["base"]}">0x{r["base"]:012x}', start) for r in regions]
    assert positions == sorted(positions)
    for group in summary["leaks"]["blocks"]:
        if group["file"]:
            assert f"{group['file']}:{group['line']}" in leaks_text
    assert "gc.cpp:120" in leaks_text
    latency = page.by_id["latency"]
    for name, stats in summary["latency"].items():
        assert f"{name}: {stats['count']} calls" in latency
        assert f'data-value="{stats["p99_ns"]}"' in text
    assert "Queries checked:" in page.by_id["check"]

    run_ok(["report", cases.trace_path("refused"), "-o", str(tmp_path)])
    page, text = parse_page(tmp_path / "index.html")
    summary = summary_document("refused")
    failures = page.by_id["failures"]
    assert summary["virtual"]["failed_calls"] == 10
    for failure in summary["failures"]:
        assert failure["hr"] in failures
    anomalies = page.by_id["anomalies"]
    for kind, count in summary["anomaly_counts"].items():
        if count:
            assert kind in anomalies
    assert "double_free" in anomalies


@needs_plugin
def test_report_incomplete(tmp_path):
    out, err = run_ok(["report", cases.trace_path("discarded"), "-o", str(tmp_path)])
    assert err.startswith("WARNING: incomplete trace: ")
    page, text = parse_page(tmp_path / "index.html")
    banner = page.by_id["completeness"]
    assert "Incomplete trace: 5707 events discarded." in banner
    assert "process 536, manager 1: state unknown from" in banner
    assert 'class="banner incomplete"' in text
    assert page.figures["discarded_events"] == "5707"


def test_report_replaces_its_files(tmp_path):
    (tmp_path / "index.html").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    run_ok(["report", cases.trace_path("rwx"), "-o", str(tmp_path)], "oracle")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(tmp_path)) == [
        "addresses.svg",
        "index.html",
        "memory.svg",
        "notes.txt",
        "summary.json",
    ]


# export


def perfetto_events(trace, engine_name, tmp_path, *options):
    output = tmp_path / f"{engine_name}.json"
    run_ok(["export", cases.trace_path(trace), "-o", str(output), *options], engine_name)
    with open(output, encoding="utf-8") as f:
        return json.load(f)


def assert_paired_slices(events):
    """Every "b" has one "e" of the same process, category and id, not earlier; and no stray
    "e"."""
    open_slices = {}
    for event in sorted(events, key=lambda e: (e["ts"], e["ph"] != "b")):
        key = (event.get("pid"), event.get("cat"), event.get("id"))
        if event["ph"] == "b":
            assert key not in open_slices
            open_slices[key] = event["ts"]
        elif event["ph"] == "e":
            assert key in open_slices, key
            assert event["ts"] >= open_slices.pop(key)
    assert open_slices == {}


@pytest.mark.parametrize("trace", cases.TRACES)
def test_export_perfetto(trace, tmp_path):
    events = perfetto_events(trace, "oracle", tmp_path)
    assert isinstance(events, list)
    phases = {event["ph"] for event in events}
    assert "M" in phases
    assert_paired_slices([e for e in events if e["ph"] in "be"])
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters <= {"reserved_bytes", "committed_bytes", "heap_live_bytes"}
    if summary_document(trace, "oracle")["virtual"]["peak_reserved_bytes"]:
        assert {"C", "b", "e"} <= phases
        assert "reserved_bytes" in counters
    else:
        # Nothing known was ever reserved (late-nodump): the process is named, no more.
        assert phases == {"M"}
    if PLUGIN:
        # The engines may order the events differently (the format does not care).
        plugin = perfetto_events(trace, "plugin", tmp_path)
        assert sorted_events(plugin) == sorted_events(events)


def sorted_events(events):
    return sorted(events, key=lambda e: json.dumps(e, sort_keys=True))


def test_export_perfetto_values(tmp_path):
    events = perfetto_events("two-managers", "oracle", tmp_path)
    begins = [e for e in events if e["ph"] == "b"]
    assert [(e["id"], e["args"]["size"]) for e in begins] == [
        ("0x7f98417c0000", 16 << 20),
        ("0x7f98407c0000", 16 << 20),
        ("0x7f98403c0000", 4 << 20),
    ]
    assert {e["args"]["name"] for e in events if e["ph"] == "M"} == {"fx-two-mgrs"}
    reserved = [e["args"]["value"] for e in events if e.get("name") == "reserved_bytes"]
    assert (
        max(reserved)
        == summary_document("two-managers", "oracle")["virtual"]["peak_reserved_bytes"]
    )


def read_counters_csv(text):
    """The series counters rebuilt from the export's CSV."""
    counters = {
        "reserved_bytes": [],
        "committed_bytes": [],
        "committed_by_protect": {},
        "heap_live_bytes": [],
    }
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        value, peak = int(row["value"]), int(row["slice_max"])
        sample = [int(row["time_ns"]), value] + ([peak] if peak != value else [])
        if row["counter"] == "committed_by_protect":
            counters["committed_by_protect"].setdefault(row["protect"], []).append(sample)
        else:
            assert row["protect"] == ""
            counters[row["counter"]].append(sample)
    return rows, counters


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("trace", cases.TRACES)
def test_export_csv(engine_name, trace, tmp_path, plugin_engine):
    output = tmp_path / "counters.csv"
    run_ok(["export", cases.trace_path(trace), "-o", str(output)], engine_name)
    text = output.read_text()
    assert text.splitlines()[0] == ",".join(export.CSV_COLUMNS)
    rows, counters = read_counters_csv(text)
    assert [int(r["time_ns"]) for r in rows] == sorted(int(r["time_ns"]) for r in rows)
    series = engine.series(trace_path(trace), points=plot.DEFAULT_POINTS, engine=engine_name)
    assert counters == series["counters"]
    if engine_name == "plugin":
        oracle = tmp_path / "oracle.csv"
        run_ok(["export", cases.trace_path(trace), "-o", str(oracle)], "oracle")
        assert oracle.read_text() == text


def test_export_csv_values(tmp_path):
    out, _ = run_ok(["export", cases.trace_path("refused"), "--format", "csv", "-o", "-"], "oracle")
    lines = out.splitlines()
    assert lines[:4] == [
        "time_ns,counter,protect,value,slice_max",
        "1795626653023904271,heap_live_bytes,,64,64",
        "1795626653023918517,heap_live_bytes,,0,64",
        "1795626653023940769,reserved_bytes,,262144,262144",
    ]
    out, _ = run_ok(
        ["export", cases.trace_path("threads"), "--points", "3", "--format", "csv", "-o", "-"],
        "oracle",
    )
    rows, counters = read_counters_csv(out)
    assert 0 < len(counters["reserved_bytes"]) <= 3
    assert all(len(samples) <= 3 for samples in counters["committed_by_protect"].values())
    assert any(int(r["slice_max"]) > int(r["value"]) for r in rows)


def test_export_to_stdout(tmp_path):
    out, _ = run_ok(
        ["export", cases.trace_path("rwx"), "--format", "perfetto", "-o", "-"], "oracle"
    )
    assert json.loads(out) == perfetto_events("rwx", "oracle", tmp_path)


def test_export_incomplete_warns(tmp_path):
    out, err = run_ok(
        ["export", cases.trace_path("seq-gap"), "-o", str(tmp_path / "x.csv")], "oracle"
    )
    assert out == ""
    assert err.startswith("WARNING: incomplete trace: ") and len(err.splitlines()) == 1


# units


def test_address_bands():
    spans = [
        {"vpid": 1, "base": 0x10000, "size": 0x20000},
        {"vpid": 1, "base": 0x30000, "size": 0x10000},  # touches the first: same band
        {"vpid": 1, "base": 0x7F0000000000, "size": 0x10000},
        {"vpid": 2, "base": 0x10000, "size": 0x400000},
    ]
    bands = plot.address_bands(spans)
    assert [(b.vpid, b.start, b.end) for b in bands] == [
        (1, 0x10000, 0x40000),
        (1, 0x7F0000000000, 0x7F0000010000),
        (2, 0x10000, 0x410000),
    ]
    total = 0x30000 + 0x10000 + 0x400000
    assert bands[1].height == total / 12  # small bands get a quarter of the average
    assert bands[2].height == 0x400000
    assert all(a.y + a.height < b.y for a, b in zip(bands, bands[1:]))
    axis = plot.AddressAxis(bands)
    assert axis.y(1, 0x10000) == bands[0].y
    assert axis.y(2, 0x210000) == bands[2].y + 0x200000
    assert plot.address_bands([]) == []


def test_steps_and_stack():
    t0 = 1000
    assert plot.step_points([[1100, 5], [1200, 2, 9]], t0, 1300) == (
        [1000, 1100, 1200, 1200, 1300],
        [0, 5, 9, 2, 2],
    )
    counters = {
        "reserved_bytes": [[1100, 100], [1300, 50]],
        "committed_bytes": [[1200, 30]],
        "committed_by_protect": {"PAGE_READONLY": [[1200, 10]], "PAGE_READWRITE": [[1200, 20]]},
    }
    times, layers = plot.stack_layers(counters, t0, 1400)
    assert times == [1000, 1100, 1200, 1300, 1400]
    assert layers == [
        ("PAGE_READWRITE", [0, 0, 20, 20, 20]),
        ("PAGE_READONLY", [0, 0, 10, 10, 10]),
        (None, [0, 100, 70, 20, 20]),
    ]
    assert plot.coarsen(list(range(0, 100)), 0, 100, 10) == [0] + list(range(9, 100, 10))
    assert plot.protection_style("PAGE_READWRITE|PAGE_GUARD") == ("#4c72b0", "//")
    assert plot.protection_style("1234") == plot.protection_style("1234")


def test_plot_notifications_and_capped_failures(tmp_path):
    # No fixture has a memory notification: a made-up series shows how they are drawn.
    t0 = 1_700_000_000_000_000_000
    series = {
        "begin_ns": t0,
        "end_ns": t0 + 10_000_000,
        "counters": {
            "reserved_bytes": [[t0 + 1_000, 1 << 20]],
            "committed_bytes": [[t0 + 2_000, 1 << 16]],
            "committed_by_protect": {"PAGE_READWRITE": [[t0 + 2_000, 1 << 16]]},
            "heap_live_bytes": [],
        },
        "failures": [[t0 + 5_000, "virtual_alloc", "E_OUTOFMEMORY"]],
        "notifications": [
            [t0 + 3_000_000, "eMemoryAvailableLow"],
            [t0 + 6_000_000, "eMemoryAvailableHigh"],
            [t0 + 7_000_000, "eMemoryAvailableLow"],
        ],
        "spans": [],
    }
    summary = {
        "events": 9,
        "discarded_events": 0,
        "complete": True,
        "begin_ns": t0,
        "end_ns": t0 + 10_000_000,
        "processes": [],
        "virtual": {"failed_calls": 4},
    }
    plot.save(plot.build_figure(series, summary, "all", "made-up"), str(tmp_path / "x.svg"), "svg")
    texts = svg_texts(tmp_path / "x.svg")
    assert texts.count("notification: Low") == 1 and "notification: High" in texts
    assert "failed call (1, list capped)" in texts
    assert "no reservation in the trace" in texts
    assert f"{plot.TIME_LABEL} (ms)" in texts and "bytes (KiB)" in texts


def test_counter_rows():
    series = {
        "counters": {
            "reserved_bytes": [[5, 1], [9, 2, 7]],
            "committed_bytes": [[5, 1]],
            "committed_by_protect": {"PAGE_READWRITE|PAGE_GUARD": [[5, 1]]},
            "heap_live_bytes": [[1, 3]],
        }
    }
    assert export.counter_rows(series) == [
        (1, "heap_live_bytes", "", 3, 3),
        (5, "reserved_bytes", "", 1, 1),
        (5, "committed_bytes", "", 1, 1),
        (5, "committed_by_protect", "PAGE_READWRITE|PAGE_GUARD", 1, 1),
        (9, "reserved_bytes", "", 2, 7),
    ]


def test_progress(capsys):
    slow = progress.Progress("plot", delay=0.05, enabled=True)
    with slow.step("reading the trace"):
        time.sleep(0.3)
    with slow.step("drawing"):
        pass
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "clrmemtrace plot: reading the trace..."
    assert lines[1].startswith("clrmemtrace plot: reading the trace: done in ")
    assert len(lines) == 2
    with pytest.raises(KeyError):
        with slow.step("failing"):
            time.sleep(0.3)
            raise KeyError
    assert capsys.readouterr().err == "clrmemtrace plot: failing...\n"
    quiet = progress.Progress("plot", delay=0.05, enabled=False)
    with quiet.step("reading the trace"):
        time.sleep(0.2)
    assert capsys.readouterr().err == ""
