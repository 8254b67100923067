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

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))

import cases  # noqa: E402
from hostile import driver, gen, verify  # noqa: E402

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
