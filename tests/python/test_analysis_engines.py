# SPDX-License-Identifier: MIT
"""The Babeltrace2 plugin against the pure-Python oracle, document by document.

On every fixture trace both engines must produce the same summary (the wording of
``incomplete_reasons`` aside), the same map at a series of moments (before the first
event, at the first and last events, and in between), the same timeline rows, and the
same series and Perfetto documents. The plugin comes from $CLRMEMTRACE_BUILD_DIR (default
build-test); without it these tests are skipped.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "analysis", "python"))  # fmt: skip

import cases  # noqa: E402
from clrmemtrace import engine  # noqa: E402

PLUGIN = cases.find_plugin()
pytestmark = pytest.mark.skipif(not PLUGIN, reason=f"no analysis plugin in {cases.plugin_dir()}")

# Where the plugin is known to disagree with the oracle (and with the README), and why.
SERIES_SAMPLES = (
    "plugin samples a counter in slices where only the state changed, not the counter's value "
    "(README: 'a sample for each slice in which its value changed')"
)
DUMP_SPANS = (
    "plugin starts the spans of a dumped state at statedump_begin, its reservations (and the "
    "Perfetto slices) at statedump_end; the oracle starts both at statedump_end"
)
HEAP_DUMP_TIME = (
    "plugin counts a dumped heap's blocks as the statedump_block events come, the oracle at "
    "statedump_end, where the dump replaces the live set"
)
KNOWN = {
    ("leaks", "summary"): "plugin reads an empty string's stale text: Alloc blocks grouped "
    "under an earlier DebugAlloc's file (Babeltrace2 2.0 bug; tests/data/README.md)",
}
for _trace in ("rwx", "check-altered", "seq-gap", "seq-regression", "addrspace-map",
               "threads", "two-managers", "two-processes", "leaks", "refused"):  # fmt: skip
    KNOWN[(_trace, "series")] = SERIES_SAMPLES
    KNOWN[(_trace, "perfetto")] = SERIES_SAMPLES
for _trace in ("late-start", "late-query", "discarded"):
    KNOWN[(_trace, "series")] = f"{SERIES_SAMPLES}; {DUMP_SPANS}; {HEAP_DUMP_TIME}"
    KNOWN[(_trace, "perfetto")] = f"{SERIES_SAMPLES}; {HEAP_DUMP_TIME}"


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.setenv("CLRMEMTRACE_PLUGIN_PATH", PLUGIN or "")


def path(trace):
    return os.path.join(cases.REPO, cases.trace_path(trace))


def check_known(trace, what, oracle, plugin):
    """Compare, turning a known difference into an expected failure."""
    if oracle != plugin and (trace, what) in KNOWN:
        pytest.xfail(KNOWN[(trace, what)])
    assert plugin == oracle


def without_reasons(document):
    document = dict(document)
    document["incomplete_reasons"] = bool(document["incomplete_reasons"])
    return document


@pytest.mark.parametrize("trace", cases.TRACES)
def test_summary(trace):
    oracle = engine.summary(path(trace), engine="oracle")
    plugin = engine.summary(path(trace), engine="plugin")
    check_known(trace, "summary", without_reasons(oracle), without_reasons(plugin))


@pytest.mark.parametrize("trace", cases.TRACES)
def test_summary_with_few_details(trace):
    oracle = engine.summary(path(trace), max_details=2, engine="oracle")
    plugin = engine.summary(path(trace), max_details=2, engine="plugin")
    for document in (oracle, plugin):
        for key in ("anomalies", "failures", "notifications"):
            assert len(document[key]) <= 2
    check_known(trace, "summary", without_reasons(oracle), without_reasons(plugin))


def moments(trace):
    """Times to take the map at: around, at and between the trace's events."""
    summary = engine.summary(path(trace), engine="oracle")
    begin, end = summary["begin_ns"], summary["end_ns"]
    times = [begin - 1, begin, end, end + 1_000_000_000]
    times += [begin + (end - begin) * k // 7 for k in range(1, 7)]
    rows = engine.timeline(path(trace), engine="oracle")
    times += sorted({row["time_ns"] for row in rows})[:: max(1, len(rows) // 8)]
    return times


@pytest.mark.parametrize("trace", cases.TRACES)
def test_map(trace):
    for at in moments(trace):
        oracle = engine.map_at(path(trace), at, engine="oracle")
        plugin = engine.map_at(path(trace), at, engine="plugin")
        assert plugin == oracle, f"map at {at}"


@pytest.mark.parametrize("trace", cases.TRACES)
def test_timeline(trace):
    oracle = engine.timeline(path(trace), engine="oracle")
    plugin = engine.timeline(path(trace), engine="plugin")
    assert plugin == oracle


@pytest.mark.parametrize("points", [3, 50, 2000])
@pytest.mark.parametrize("trace", cases.TRACES)
def test_series(trace, points):
    oracle = engine.series(path(trace), points=points, engine="oracle")
    plugin = engine.series(path(trace), points=points, engine="plugin")
    check_known(trace, "series", oracle, plugin)


def perfetto_events(trace, engine_name, tmp_path):
    out = tmp_path / f"{engine_name}.json"
    engine.perfetto(path(trace), str(out), points=50, engine=engine_name)
    with open(out, encoding="utf-8") as f:
        events = json.load(f)
    return sorted(events, key=lambda e: json.dumps(e, sort_keys=True))


@pytest.mark.parametrize("trace", cases.TRACES)
def test_perfetto(trace, tmp_path):
    oracle = perfetto_events(trace, "oracle", tmp_path)
    plugin = perfetto_events(trace, "plugin", tmp_path)
    check_known(trace, "perfetto", oracle, plugin)
