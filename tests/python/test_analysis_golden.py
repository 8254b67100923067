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
