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


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.setenv("CLRMEMTRACE_PLUGIN_PATH", PLUGIN or "")


def path(trace):
    return os.path.join(cases.REPO, cases.trace_path(trace))


def without_reasons(document):
    document = dict(document)
    document["incomplete_reasons"] = bool(document["incomplete_reasons"])
    return document


@pytest.mark.parametrize("trace", cases.TRACES)
def test_summary(trace):
    oracle = engine.summary(path(trace), engine="oracle")
    plugin = engine.summary(path(trace), engine="plugin")
    assert without_reasons(plugin) == without_reasons(oracle)


@pytest.mark.parametrize("trace", cases.TRACES)
def test_summary_with_few_details(trace):
    oracle = engine.summary(path(trace), max_details=2, engine="oracle")
    plugin = engine.summary(path(trace), max_details=2, engine="plugin")
    for document in (oracle, plugin):
        for key in ("anomalies", "failures", "notifications"):
            assert len(document[key]) <= 2
    assert without_reasons(plugin) == without_reasons(oracle)


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
    assert plugin == oracle


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
    assert plugin == oracle
