# SPDX-License-Identifier: MIT
"""examples/clrhost-sim under `clrmemtrace record`: a seed replays its calls, and the analysis
agrees with what the simulator counted.

- Two runs with the same seed make the same calls on each thread: every thread's sequence of
  events (names and fields) is the same, threads matched by the names the simulator gives
  them (`sim-main`, `sim-worker-N`, the `procname` context). Left out of the comparison is
  what no seed decides: addresses and pointers (where the kernel maps things), durations,
  sequence numbers (they interleave the threads' changes), the machine's memory load and
  available bytes (`memory_load`), the size of the areas queries describe (`region_size`:
  what else is mapped around them), the address space all threads hold (`total` of the
  `vas_*` events), state dumps (another session starting on the daemon asks for one at
  any call) and the library's notification thread. A run whose machine was low on memory
  is inconclusive: the collection that asks for runs on whichever thread sees it first.
  A different seed makes different calls.
- A recorded run passes `clrmemtrace check`, and the summary's peak committed bytes and final
  live heap bytes of the simulator's process are those it printed with --json.

The session daemon comes from conftest.py's `lttng` fixture; `clrmemtrace record` uses it.
Other programs tracing at the same time land in the same trace, so everything is selected
by the simulator's pid.
"""

import collections
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import read_trace

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "analysis" / "clrmemtrace"
PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
RUN_TIMEOUT = 180

THREADS = 3
OPS = 400  # per worker: every kind of operation comes up, in a second or two
SEEDS = (5, 6)

# Fields no seed decides (see the module's docstring).
UNSEEDED = {
    "address", "result", "base", "allocation_base", "ptr", "manager", "heap", "callback",
    "previous", "duration_ns", "seq", "seq_before", "seq_after", "load", "available",
    "region_size", "total",
}  # fmt: skip
SIM_THREAD = re.compile(r"sim-main|sim-worker-\d+")


@pytest.fixture(scope="module")
def sim(build):
    """The simulator and the analysis plugin, built."""
    targets = ["examples/clrhost-sim", "analysis/plugin/babeltrace-plugin-clrmemtrace.so"]
    proc = subprocess.run(
        ["ninja", "-C", str(build.path), *targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, f"building clrhost-sim failed:\n{proc.stdout[-4000:]}"
    return build.path / "examples" / "clrhost-sim"


class Run:
    """One recorded run: its trace, the simulator's pid and what it printed (--json)."""

    def __init__(self, trace, pid, report):
        self.trace = trace
        self.pid = pid
        self.report = report


def environment(build, lttng):
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    env["LD_LIBRARY_PATH"] = str(build.path / "src")
    env["CLRMEMTRACE_PLUGIN_PATH"] = str(build.path / "analysis" / "plugin")
    return env


def record(build, lttng, sim, trace, seed):
    """Runs `clrmemtrace record -o TRACE -- clrhost-sim ... --seed SEED --json`."""
    proc = subprocess.run(
        [PYTHON, str(CLI), "record", "-o", str(trace), "--", str(sim),
         "--ops", str(OPS), "--threads", str(THREADS), "--seed", str(seed), "--json"],
        env=environment(build, lttng),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, f"record failed ({proc.returncode}):\n{proc.stderr}"
    assert re.search(r"^0 events discarded$", proc.stdout, re.M), proc.stdout
    pid = re.search(r"running .* \(pid (\d+)\)", proc.stderr)
    assert pid, proc.stderr
    report, _ = json.JSONDecoder().raw_decode(proc.stdout, proc.stdout.index("{"))
    assert report["seed"] == seed and report["threads"] == THREADS
    return Run(trace, int(pid.group(1)), report)


def analyse(build, lttng, command, run, *args):
    return subprocess.run(
        [PYTHON, str(CLI), command, *args, str(run.trace)],
        env=environment(build, lttng),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=RUN_TIMEOUT,
    )


@pytest.fixture(scope="module")
def runs(build, lttng, sim, tmp_path_factory):
    """Two runs with the first seed, one with the second."""
    folder = tmp_path_factory.mktemp("clrhost-sim")
    first, second = SEEDS
    return {
        "a": record(build, lttng, sim, folder / "a", first),
        "b": record(build, lttng, sim, folder / "b", first),
        "other": record(build, lttng, sim, folder / "other", second),
    }


def calls_by_thread(run):
    """{thread name: [(event, seeded fields)...]} of the simulator's own threads."""
    threads = collections.defaultdict(list)
    for event in read_trace(run.trace):
        if event.context.get("vpid") != run.pid or event.name.startswith("statedump_"):
            continue
        thread = event.context.get("procname", "")
        if not SIM_THREAD.fullmatch(thread):
            continue
        seeded = tuple(sorted((k, v) for k, v in event.fields.items() if k not in UNSEEDED))
        threads[thread].append((event.name, seeded))
    return dict(threads)


def expected_threads():
    return {"sim-main"} | {f"sim-worker-{i}" for i in range(THREADS)}


def skip_if_low_memory(*runs):
    for run in runs:
        if run.report["low_memory_gcs"]:
            pytest.skip(
                "the machine was low on memory: a collection ran on whichever thread saw it"
            )


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"call {i}: {x} != {y}"
    return f"lengths {len(a)} and {len(b)}"


def test_same_seed_same_calls_on_each_thread(runs):
    skip_if_low_memory(runs["a"], runs["b"])
    a, b = calls_by_thread(runs["a"]), calls_by_thread(runs["b"])
    assert set(a) == set(b) == expected_threads()
    for thread in sorted(a):
        assert len(a[thread]) > 10, thread
        assert a[thread] == b[thread], f"{thread}: {first_difference(a[thread], b[thread])}"
    # Every kind of call the simulator makes came up.
    names = {name for calls in a.values() for name, _ in calls}
    assert names >= {
        "manager_create", "malloc_create", "notification_register", "virtual_alloc",
        "virtual_free", "virtual_protect", "virtual_query", "memory_load", "vas_acquired",
        "vas_released", "malloc_alloc", "malloc_free",
    }  # fmt: skip


def test_another_seed_other_calls(runs):
    a, other = calls_by_thread(runs["a"]), calls_by_thread(runs["other"])
    assert set(other) == expected_threads()
    workers = sorted(expected_threads() - {"sim-main"})
    assert any(a[w] != other[w] for w in workers)


@pytest.mark.parametrize("name", ["a", "other"])
def test_trace_passes_check(build, lttng, runs, name):
    proc = analyse(build, lttng, "check", runs[name])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Mismatches:      0\n" in proc.stdout


@pytest.mark.parametrize("name", ["a", "other"])
def test_summary_agrees_with_the_simulator(build, lttng, runs, name):
    run = runs[name]
    proc = analyse(build, lttng, "summary", run, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    (process,) = [p for p in summary["processes"] if p["vpid"] == run.pid]
    (manager,) = process["managers"]
    assert manager["name"] == "clrhost-sim"
    assert manager["complete"], summary["incomplete_reasons"]
    report = run.report
    assert manager["virtual"]["peak_committed_bytes"] == report["peak_committed_bytes"]
    assert manager["malloc"]["final_live_bytes"] == report["final_live_heap_bytes"]
    assert manager["virtual"]["final_committed_bytes"] == report["final_committed_bytes"]
    assert manager["virtual"]["peak_reserved_bytes"] == report["peak_reserved_bytes"]
    assert manager["virtual"]["final_reserved_bytes"] == report["final_reserved_bytes"]
    if len(summary["processes"]) == 1:
        # The trace holds the simulator alone: the totals are its figures.
        assert summary["virtual"]["peak_committed_bytes"] == report["peak_committed_bytes"]
        assert summary["malloc"]["final_live_bytes"] == report["final_live_heap_bytes"]
