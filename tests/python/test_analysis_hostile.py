# SPDX-License-Identifier: MIT
"""Hostile traces: generated event sequences played straight into the C plugin.

A Babeltrace2 source written in Python (hostile/source.py) emits each case's messages into
``sink.clrmemtrace.analysis``, no CTF in between; hostile/driver.py runs the cases in child
processes, each with a time limit, and hostile/verify.py holds every outcome against what
must hold (hostile/check.py: the documents' shape and invariants; hostile/gen.py: the exact
figures of clean runs, and which reasons and managers an incomplete one must show). A
crash, a hang, memory lost (under AddressSanitizer), a malformed document or a trace not
flagged incomplete where the plugin cannot be sure fails the test, naming the cases.

The plugin is ``$CLRMEMTRACE_PLUGIN_PATH``, else the build's (``$CLRMEMTRACE_BUILD_DIR``).
When it was built with AddressSanitizer, the children run it under the sanitizer with
LeakSanitizer on. ``CLRMEMTRACE_HOSTILE_CASES`` (default 300) is how many random hostile
cases to run, from seed ``CLRMEMTRACE_HOSTILE_SEED`` (default 0) on.
"""

import json
import os
import sys
import types

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "analysis", "python"))

import cases  # noqa: E402
from clrmemtrace import oracle  # noqa: E402
from hostile import driver, gen, schema, verify  # noqa: E402

CASES = int(os.environ.get("CLRMEMTRACE_HOSTILE_CASES", "300"))
FIRST_SEED = int(os.environ.get("CLRMEMTRACE_HOSTILE_SEED", "0"))
# Per case, far above what any case takes (a second or two under the sanitizer).
TIME_LIMIT = 120.0


def plugin_directory():
    explicit = os.environ.get("CLRMEMTRACE_PLUGIN_PATH")
    if explicit:
        return explicit if os.path.isdir(explicit) else None
    return cases.find_plugin()


PLUGIN = plugin_directory()
pytestmark = pytest.mark.skipif(not PLUGIN, reason="no analysis plugin built")


def sanitized(directory):
    """Whether the plugin in ``directory`` was built with AddressSanitizer."""
    for name in os.listdir(directory):
        if name.endswith(".so"):
            with open(os.path.join(directory, name), "rb") as f:
                if b"libasan.so" in f.read():
                    return True
    return False


def run_and_verify(pairs, workdir):
    """Runs the cases; the list of failures, one text per failing case."""
    results = driver.run(PLUGIN, [c for c, _ in pairs], str(workdir), timeout=TIME_LIMIT,
                         sanitizer=sanitized(PLUGIN))
    failures = []
    for index, (case, exp) in enumerate(pairs):
        result = results.get(index, {"status": "not run"})
        problems = verify.verify(case, exp, result, driver.output_path(str(workdir), index))
        if problems:
            what = case.get("name", index)
            how = f"mode {case.get('mode', 'summary')} {case.get('params', {})}"
            if case.get("mutations"):
                how += f", mutations {case['mutations']}"
            failures.append(f"case {what} ({how}):\n  " + "\n  ".join(p[:3000] for p in problems))
    return failures


def assert_none(failures, total):
    assert not failures, f"{len(failures)} of {total} cases failed:\n" + "\n".join(failures[:15])


def test_clean_runs_are_exact(tmp_path):
    """Plausible runs, nothing hostile: the summary is exact and the trace complete."""
    pairs = [gen.clean(seed) for seed in range(FIRST_SEED, FIRST_SEED + 20)]
    assert_none(run_and_verify(pairs, tmp_path), len(pairs))


def test_directed_extremes(tmp_path):
    """Addresses, sizes, counts and timestamps at the ends of their ranges, every mode."""
    pairs = gen.directed()
    assert_none(run_and_verify(pairs, tmp_path), len(pairs))


def test_hostile_runs(tmp_path):
    """Random runs with hostile changes: out-of-order and dropped events, unknown addresses,
    double frees, huge sizes, missing and cut state dumps, discarded events and packets,
    truncated streams, broken clocks and types, in every mode."""
    pairs = [gen.hostile(seed) for seed in range(FIRST_SEED, FIRST_SEED + CASES)]
    assert_none(run_and_verify(pairs, tmp_path), len(pairs))


def oracle_replay(case, monkeypatch, points):
    """The oracle (analysis/python/clrmemtrace/oracle.py) fed a directed case's events as
    plain values: one stream on the default clock, nanoseconds as its cycles."""
    monkeypatch.setattr(oracle, "_plain", lambda value: value)
    r = oracle.Reconstruction(series_points=points)
    for m in case["messages"]:
        assert m[0] == "ev" and m[1] == 0
        # Members the case leaves out are 0 or "", as hostile/source.py emits them.
        payload = {member: schema.fit(kind, m[4].get(member, 0)) if kind != "str"
                   else m[4].get(member, "") for member, kind in schema.EVENTS[m[2]]}
        r.on_event(types.SimpleNamespace(name=m[2], payload_field=payload,
                                         common_context_field=m[5]), m[3])
    r.finish()
    return r


@pytest.mark.parametrize("name", ["heap-extremes", "totals-by-protect", "totals-heap-overlap",
                                  "totals-many-managers"])
def test_totals_past_2_64_engines_agree(name, tmp_path, monkeypatch):
    """Byte totals past 2^64 - 1: the plugin and the oracle flag the same and show the same
    saturated figures, in the summary and in the series."""
    pairs = [(c, e) for c, e in gen.directed() if c["name"].split("/")[0] == name and
             c["mode"] in ("summary", "series") and not c["params"]]
    assert_none(run_and_verify(pairs, tmp_path), len(pairs))
    r = oracle_replay(pairs[0][0], monkeypatch, 2000)
    for index, (case, _) in enumerate(pairs):
        with open(driver.output_path(str(tmp_path), index), encoding="utf-8") as f:
            plugin = json.load(f)
        if case["mode"] == "summary":
            expected = r.summary_document()
            assert plugin["complete"] is False
            assert gen.TOTALS_OUT in plugin["incomplete_reasons"]
            plugin["incomplete_reasons"] = expected["incomplete_reasons"] = None
        else:
            expected = r.series.document(r)
        assert plugin == json.loads(json.dumps(expected))
