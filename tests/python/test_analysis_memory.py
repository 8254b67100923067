# SPDX-License-Identifier: MIT
"""The analysis on a trace holding a million live regions stays within its memory target.

bench/bench-analysis-gen (the workload bench/bench-analysis records) makes a short run of
calls and then reserves a million 64 KiB regions it never releases; an LTTng session in
blocking mode records it without losing an event. `clrmemtrace summary --json` (the
command, with the C plugin) then reads the trace in a child of a fresh Python process,
which reports the peak resident set of its children: it must stay below 300 MB, the
target bench/README.md gives for analysis-memory. This is a memory measure, not a timing.
"""

import json
import os
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data"))

import cases  # noqa: E402

LIVE = 1_000_000
TARGET_MB = 300
EVENTS = ",".join("clrmemtrace:" + e for e in (
    "manager_create", "manager_destroy", "virtual_alloc", "virtual_free", "virtual_protect",
    "virtual_query", "malloc_create", "malloc_alloc", "malloc_free", "malloc_destroy"))
COMMAND = os.path.join(cases.REPO, "analysis", "clrmemtrace")

# Runs argv[1:] and prints the peak resident set (KiB) of the largest process of its tree.
PEAK_RSS = """
import resource, subprocess, sys
status = subprocess.run(sys.argv[1:], stdout=open(sys.argv[0] + ".out", "w")).returncode
print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.fixture(scope="module")
def trace(build, lttng, tmp_path_factory):
    """A trace of bench-analysis-gen holding LIVE live regions at its end."""
    work = tmp_path_factory.mktemp("memory")
    gen = work / "bench-analysis-gen"
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Werror",
                    "-I", os.path.join(cases.REPO, "include"),
                    os.path.join(cases.REPO, "bench", "bench-analysis-gen.c"),
                    "-L", str(build.path / "src"), "-lclrmemtrace",
                    "-Wl,-rpath," + str(build.path / "src"), "-o", str(gen)], check=True)
    subprocess.run(["ninja", "-C", str(build.path), "src/libclrmemtrace-lttng.so"],
                   check=True, capture_output=True)
    name = f"clrmemtrace-memory-{uuid.uuid4().hex[:8]}"
    out = work / "trace"
    lttng.run("create", name, f"--output={out}")
    try:
        lttng.run("enable-channel", "-u", "-s", name, "--subbuf-size=8M", "--num-subbuf=4",
                  "--blocking-timeout=inf", "mem")
        lttng.run("enable-event", "-u", "-s", name, "-c", "mem", EVENTS)
        lttng.run("add-context", "-u", "-s", name, "-c", "mem", "-t", "vpid", "-t", "vtid",
                  "-t", "procname")
        env = dict(lttng.env, LTTNG_UST_REGISTER_TIMEOUT="10000", LTTNG_UST_ALLOW_BLOCKING="1")
        proc = subprocess.Popen([str(gen), "100000", "--wait", "--live", str(LIVE)], env=env,
                                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            lttng.run("untrack", "-u", "-s", name, "--vpid", "--all")
            lttng.run("track", "-u", "-s", name, f"--vpid={proc.pid}")
            lttng.run("start", name)
            calls, _ = proc.communicate("go\n", timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, "bench-analysis-gen failed"
        lttng.run("stop", name)
    finally:
        lttng.run("destroy", name, check=False)
    return out, int(calls)


def test_a_million_live_regions_within_300_mb(trace, build, tmp_path):
    path, calls = trace
    script = tmp_path / "peak.py"
    script.write_text(PEAK_RSS)
    env = dict(os.environ, CLRMEMTRACE_PLUGIN_PATH=str(build.path / "analysis" / "plugin"),
               CLRMEMTRACE_ENGINE="plugin")
    ninja = subprocess.run(["ninja", "-C", str(build.path),
                            "analysis/plugin/babeltrace-plugin-clrmemtrace.so"],
                           capture_output=True, text=True)
    assert ninja.returncode == 0, ninja.stdout[-2000:]
    proc = subprocess.run(["/usr/bin/python3", str(script), "/usr/bin/python3", COMMAND,
                           "summary", "--json", str(path)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status, peak_kib = (int(x) for x in proc.stdout.split())
    assert status == 0, proc.stderr[-2000:]
    with open(str(script) + ".out") as f:
        doc = json.load(f)
    assert doc["complete"], doc["incomplete_reasons"]
    assert doc["events"] == calls
    assert doc["virtual"]["live_regions"] == LIVE
    assert doc["virtual"]["final_reserved_bytes"] == LIVE * 65536
    peak_mb = peak_kib / 1024
    print(f"peak RSS of clrmemtrace summary on {LIVE} live regions: {peak_mb:.1f} MB")
    assert peak_mb < TARGET_MB, f"peak RSS {peak_mb:.1f} MB, target < {TARGET_MB} MB"
