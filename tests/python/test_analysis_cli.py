# SPDX-License-Identifier: MIT
"""The analysis subcommands as users meet them: exit statuses, one-line errors, warnings.

Bad input (not a trace, a file, a missing path, truncated or corrupt CTF, a trace without
clrmemtrace events) must end every subcommand with the documented exit status and a single
line on stderr, never a traceback; an incomplete trace is analysed and flagged. Most cases
run the command in this process; the entry point (analysis/clrmemtrace) runs as a program.
"""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))

import cases  # noqa: E402

PLUGIN = cases.find_plugin()
ENGINES = [
    "oracle",
    pytest.param(
        "plugin", marks=pytest.mark.skipif(not PLUGIN, reason=f"no plugin in {cases.plugin_dir()}")
    ),
]
ENTRY_POINT = os.path.join(cases.REPO, "analysis", "clrmemtrace")


def subcommands(trace):
    """A command line of every analysis subcommand on ``trace``."""
    return [
        ["summary", trace],
        ["summary", "--json", trace],
        ["timeline", trace],
        ["timeline", "--csv", trace],
        ["map", "--at", "1ms", trace],
        ["leaks", trace],
        ["check", trace],
        ["latency", trace],
        ["diff", trace, cases.trace_path("rwx")],
        ["diff", cases.trace_path("rwx"), trace],
    ]


def assert_one_line_error(argv, status, got, out, err):
    assert got == status, f"{argv}: {err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{argv}: {err!r}"
    assert lines[0].startswith(f"clrmemtrace {argv[0]}: "), lines[0]
    assert "Traceback" not in err
    assert out == ""


BAD = [(name, status) for name, status in cases.BAD_INPUTS.items() if name != "truncated-metadata"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name,status", BAD, ids=[b[0] for b in BAD])
def test_bad_input(engine, name, status):
    for argv in subcommands(cases.trace_path(name)):
        assert_one_line_error(argv, status, *cases.run(argv, engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_truncated_metadata_fails_fast(engine):
    # Babeltrace2 2.0.4 spins forever on metadata cut inside a packet: run as a program,
    # with a time limit, so that a regression fails instead of hanging the suite.
    env = dict(os.environ, CLRMEMTRACE_ENGINE=engine, CLRMEMTRACE_PLUGIN_PATH=PLUGIN or "")
    for argv in subcommands(cases.trace_path("truncated-metadata")):
        proc = subprocess.run(
            [sys.executable, ENTRY_POINT] + argv,
            cwd=cases.REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_one_line_error(argv, 3, proc.returncode, proc.stdout, proc.stderr)
        assert "metadata" in proc.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_corrupt_stream_fails_after_the_first_events(engine):
    # The trace opens (its first events read fine); the analysis fails on the way.
    sys.path.insert(0, os.path.join(cases.REPO, "analysis", "python"))
    from clrmemtrace import engine as analysis

    info = analysis.open_trace_check(os.path.join(cases.REPO, cases.trace_path("corrupt-stream")))
    assert info.first_ns > 0
    argv = ["summary", cases.trace_path("corrupt-stream")]
    assert_one_line_error(argv, 3, *cases.run(argv, engine))


@pytest.mark.parametrize("engine", ENGINES)
def test_incomplete_trace_is_flagged(engine):
    trace = cases.trace_path("discarded")
    status, out, err = cases.run(["summary", trace], engine)
    assert status == 0
    assert out.splitlines()[1].startswith("WARNING: incomplete trace: ")
    status, out, err = cases.run(["summary", "--json", trace], engine)
    assert status == 0
    document = json.loads(out)
    assert document["complete"] is False
    assert document["discarded_events"] > 0
    assert document["incomplete_reasons"]
    assert err.startswith("WARNING: incomplete trace: ") and len(err.splitlines()) == 1
    (manager,) = document["processes"][0]["managers"]
    assert manager["complete"] is False
    assert len(manager["unknown_windows"]) == 1


def before_dumps(trace):
    """Of the events of ``trace``: the names of those of each manager before its first dump
    began, and of the heap calls between its statedump_begin and its heap's statedump_heap."""
    from conftest import read_trace

    begun, heaps, before, between = set(), set(), set(), set()
    for e in read_trace(os.path.join(cases.REPO, cases.trace_path(trace))):
        m = e.fields["manager_id"]
        if e.name == "statedump_begin":
            begun.add(m)
        elif e.name == "statedump_heap":
            heaps.add((m, e.fields["heap_id"]))
        elif m not in begun:
            before.add(e.name)
        elif e.name.startswith("malloc_") and (m, e.fields["heap_id"]) not in heaps:
            between.add(e.name)
    return before, between


@pytest.mark.parametrize("engine", ENGINES)
def test_events_before_a_dump_leave_the_trace_complete(engine):
    # Recorded while calls were under way on other threads: each manager's events before its
    # dump, and heap calls inside it before its heap's listing, change nothing the dump does
    # not say (analysis/README.md, "Managers first seen before their dump").
    trace = cases.trace_path("late-inflight")
    before, between = before_dumps("late-inflight")
    assert {"virtual_alloc", "virtual_free", "virtual_query", "malloc_alloc"} <= before
    assert "malloc_alloc" in between
    status, out, err = cases.run(["summary", "--json", trace], engine)
    assert status == 0 and not err
    document = json.loads(out)
    assert document["complete"] is True and document["incomplete_reasons"] == []
    for process in document["processes"]:
        for manager in process["managers"]:
            assert manager["complete"] is True and manager["unknown_windows"] == []
    check = document["check"]
    assert check["mismatches"] == 0 and check["queries_checked"] > 0
    assert check["unverifiable"] == check["unverifiable_before_dump"] > 0
    status, out, err = cases.run(["check", trace], engine)
    assert status == 0 and not err
    assert "made before their manager's first state dump" in out


@pytest.mark.parametrize("engine", ENGINES)
def test_a_manager_never_dumped_leaves_the_trace_incomplete(engine):
    # The session recorded no dump events: the managers' state is never known.
    trace = cases.trace_path("late-nodump")
    assert before_dumps("late-nodump")[0] >= {"virtual_alloc", "virtual_query", "malloc_alloc"}
    status, out, err = cases.run(["summary", "--json", trace], engine)
    assert status == 0
    document = json.loads(out)
    assert document["complete"] is False and document["incomplete_reasons"]
    assert err.startswith("WARNING: incomplete trace: ")
    (process,) = document["processes"]
    assert len(process["managers"]) == 2
    for manager in process["managers"]:
        assert manager["complete"] is False
        assert len(manager["unknown_windows"]) == 1
        assert manager["unknown_windows"][0][1] == document["end_ns"]
        assert manager["virtual"]["peak_reserved_bytes"] == 0
    check = document["check"]
    assert check["queries_checked"] == 0
    assert check["unverifiable"] == check["unverifiable_before_dump"] > 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("trace", cases.TRACES)
def test_check(engine, trace):
    status, out, err = cases.run(["check", cases.trace_path(trace)], engine)
    if trace in cases.CHECK_FAILS:
        assert status == 1
        assert "Mismatches:      1\n" in out
    else:
        assert status == 0, out
        assert "Mismatches:      0\n" in out


@pytest.mark.parametrize("engine", ENGINES)
def test_map_times(engine):
    trace = cases.trace_path("rwx")
    _, summary, _ = cases.run(["summary", "--json", trace], engine)
    begin = json.loads(summary)["begin_ns"]
    relative = cases.run(["map", "--json", "--at", "250us", trace], engine)
    for at in ("250000", "250000ns", "0.25ms", ".25ms", "0.00025s", f"@{begin + 250000}"):
        assert cases.run(["map", "--json", "--at", at, trace], engine) == relative, at
    assert json.loads(relative[1])["at_ns"] == begin + 250000


@pytest.mark.parametrize("at", ["", "1.5x", "-1", "@1.5s", "1.0000000001s", "ms", "@"])
def test_map_bad_time(at):
    status, out, err = cases.run(["map", "--at", at, cases.trace_path("rwx")], "oracle")
    assert status == 2
    assert "invalid time" in err


def test_missing_plugin(tmp_path):
    argv = ["summary", cases.trace_path("rwx")]
    status, out, err = cases.run(argv, "plugin", plugin_path=str(tmp_path))
    assert_one_line_error(argv, 3, status, out, err)
    assert "CLRMEMTRACE_PLUGIN_PATH" in err


def test_unknown_engine():
    argv = ["summary", cases.trace_path("rwx")]
    assert_one_line_error(argv, 3, *cases.run(argv, "fortran"))


def program(*argv, engine="oracle"):
    env = dict(os.environ, CLRMEMTRACE_ENGINE=engine, CLRMEMTRACE_PLUGIN_PATH=PLUGIN or "")
    return subprocess.run(
        [ENTRY_POINT] + list(argv), cwd=cases.REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
def test_entry_point(engine):
    for argv, suffix, status in cases.commands("late-query"):
        proc = program(*argv, engine=engine)
        assert proc.returncode == status, proc.stderr
        with open(os.path.join(cases.REPO, cases.EXPECT_DIR, f"late-query.{suffix}")) as f:
            want = f.read()
        if suffix.endswith(".json"):
            assert cases.normalised(json.loads(proc.stdout)) == cases.normalised(json.loads(want))
        else:
            assert cases.normalised_text(proc.stdout) == cases.normalised_text(want)


def test_entry_point_usage():
    proc = program("--help")
    assert proc.returncode == 0
    for name in (
        "summary",
        "timeline",
        "map",
        "leaks",
        "check",
        "latency",
        "plot",
        "report",
        "export",
        "diff",
    ):
        assert f"    {name} " in proc.stdout
    assert program().returncode == 2
    assert program("map", cases.trace_path("rwx")).returncode == 2  # --at is required
    assert program("diff", cases.trace_path("rwx")).returncode == 2
    proc = program("summary", cases.trace_path("not-a-trace"))
    assert proc.returncode == 3 and len(proc.stderr.splitlines()) == 1
    proc = program("summary", cases.trace_path("other-provider"))
    assert proc.returncode == 4 and "no clrmemtrace events" in proc.stderr
