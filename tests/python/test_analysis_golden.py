# SPDX-License-Identifier: MIT
"""Every analysis subcommand on every fixture trace, against tests/data/expect/.

Each case runs the clrmemtrace command in this process with each engine (the pure-Python
oracle, and the Babeltrace2 plugin from $CLRMEMTRACE_BUILD_DIR, default build-test) and
compares what it prints with the expected file: text and CSV exactly, JSON as parsed
documents (key order aside). tests/data/README.md says how the files are made.

One thing is normalised: the wording of the reasons a trace is incomplete, which the
README leaves to each engine ("their wording may change"). JSON ``incomplete_reasons``
lists are compared on being empty or not, and text WARNING lines up to their colon.
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))

import cases  # noqa: E402

# Cases where a plugin built from an older source is known to disagree with the expected
# output, and why: they are expected failures only when the outputs differ.
PLUGIN_DIFFERENCES = {
    "leaks.summary.json": "plugin reads an empty string's stale text: Alloc blocks grouped under "
    "an earlier DebugAlloc's file (Babeltrace2 2.0 bug; tests/data/README.md)",
    "leaks.summary.txt": "same as leaks.summary.json",
    "leaks.leaks.json": "same as leaks.summary.json",
    "leaks.leaks.txt": "same as leaks.summary.json",
    "leaks--two-processes.diff.json": "same as leaks.summary.json",
    "leaks--two-processes.diff.txt": "same as leaks.summary.json",
}


def plugin_available():
    return bool(cases.find_plugin())


ENGINES = [
    "oracle",
    pytest.param(
        "plugin",
        marks=pytest.mark.skipif(
            not plugin_available(), reason=f"no analysis plugin in {cases.plugin_dir()}"
        ),
    ),
]


def expected(name):
    with open(os.path.join(cases.REPO, cases.EXPECT_DIR, name), encoding="utf-8") as f:
        return f.read()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "name,argv,status", cases.all_cases(), ids=[c[0] for c in cases.all_cases()]
)
def test_golden(engine, name, argv, status):
    got_status, out, err = cases.run(argv, engine)
    assert got_status == status, err
    want = expected(name)
    if name.endswith(".json"):
        same = cases.normalised(json.loads(out)) == cases.normalised(json.loads(want))
    else:
        same = cases.normalised_text(out) == cases.normalised_text(want)
    if not same and engine == "plugin" and name in PLUGIN_DIFFERENCES:
        pytest.xfail(PLUGIN_DIFFERENCES[name])
    if name.endswith(".json"):
        assert cases.normalised(json.loads(out)) == cases.normalised(json.loads(want))
    else:
        assert cases.normalised_text(out) == cases.normalised_text(want)
    # Machine-readable output keeps stderr for the warning of an incomplete trace.
    assert all(line.startswith(("WARNING:", "A: WARNING:", "B: WARNING:")) for line in
               err.splitlines())  # fmt: skip


@pytest.mark.parametrize("trace", cases.TRACES)
def test_expected_files_exist(trace):
    for argv, suffix, _ in cases.commands(trace):
        assert os.path.isfile(os.path.join(cases.REPO, cases.EXPECT_DIR, f"{trace}.{suffix}"))
