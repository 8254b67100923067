# SPDX-License-Identifier: MIT
"""A real CLR traced unmodified: Mono (Debian's mono-runtime) under `clrmemtrace record --preload`.

tests/data/programs/gc-churn.cs, compiled with mcs, makes Mono's garbage collector grow its
heap and give memory back, then reads /proc/self/maps between two marker calls (madvise of 0
bytes at 1 MiB and 2 MiB, made through the interposer) and writes what it read to a file.

- The trace holds the mmap, munmap and mprotect calls Mono made (its JIT's 32-bit RWX code
  chunk among them), after a /proc/self/maps dump, and lost nothing.
- `clrmemtrace summary` shows the mmap view's figures: reserved and committed bytes that grew
  and came down again, the calls counted; the trace is complete.
- The view at the first marker agrees with what Mono read there, over every range a traced
  mmap or mremap made (glibc's own mappings, and the dynamic loader's, bypass the
  interposer: ENVIRONMENT.md): every page the view holds there is mapped with the same
  protection, and every other anonymous page of /proc/self/maps there lies in pages the view
  knows traced calls freed (mapped since out of sight); those are few.
- `check`, `timeline`, `map`, `leaks` and `plot` work on the trace.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from test_preload_scripted import (
    PERMS,
    PYTHON,
    LAUNCHER,
    record_preload,
    touched_ranges,
    trace_events,
)

sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import engine  # noqa: E402

SOURCE = REPO / "tests" / "data" / "programs" / "gc-churn.cs"
MiB = 1 << 20
MAP_32BIT = 0x40


@pytest.fixture(scope="module")
def mono_trace(build, lttng, tmp_path_factory):
    for tool in ("mono", "mcs"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages mono-runtime, mono-mcs)")
    try:
        import bt2  # noqa: F401
    except ImportError:
        pytest.skip(f"bt2 is not importable by {sys.executable} (Debian package python3-bt2)")
    targets = [
        "src/libclrmemtrace-preload.so",
        "src/libclrmemtrace-os-lttng.so",
        "analysis/plugin/babeltrace-plugin-clrmemtrace.so",
    ]
    proc = subprocess.run(["ninja", "-C", str(build.path), *targets], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"ninja failed:\n{proc.stdout[-4000:]}")
    work = tmp_path_factory.mktemp("mono")
    exe = work / "gc-churn.exe"
    proc = subprocess.run(["mcs", str(SOURCE), f"-out:{exe}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    maps = work / "maps.txt"
    trace = work / "trace"
    record_preload(lttng, build, trace, ["mono", exe, maps])
    os.environ["CLRMEMTRACE_PLUGIN_PATH"] = str(build.path / "analysis" / "plugin")
    return trace, maps.read_text().splitlines(), trace_events(trace)


def mono_pid(events):
    markers = [e for e in events if e[0] == "madvise" and e[1]["length"] == 0
               and e[1]["addr"] in (MiB, 2 * MiB)]  # fmt: skip
    assert [m[1]["addr"] for m in markers] == [MiB, 2 * MiB], "the two markers"
    return markers[0][2], markers


def test_trace_has_monos_calls(mono_trace):
    trace, maps, events = mono_trace
    vpid, _ = mono_pid(events)
    mine = [e for e in events if e[2] == vpid]
    assert mine[0][0] == "maps_begin"
    calls = {}
    for e in mine:
        calls[e[0]] = calls.get(e[0], 0) + 1
    assert calls.get("mmap", 0) >= 50 and calls.get("munmap", 0) >= 50, calls
    assert calls.get("mprotect", 0) >= 1, calls
    # The JIT's code: RWX memory below 4 GiB.
    assert any(e[0] == "mmap" and e[1]["flags"] & MAP_32BIT and e[1]["prot"] & 7 == 7
               for e in mine), "Mono's MAP_32BIT RWX code chunk"  # fmt: skip
    # The GC maps sections of 1 MiB and more.
    assert any(e[0] == "mmap" and e[1]["length"] >= MiB and e[1]["fd"] == -1 for e in mine)


def test_summary_shows_the_gc(mono_trace):
    trace, maps, events = mono_trace
    vpid, _ = mono_pid(events)
    summary = engine.summary(str(trace))
    assert summary["complete"], summary["incomplete_reasons"]
    process = next(p for p in summary["processes"] if p["vpid"] == vpid)
    assert process["procname"] == "mono"
    view = next(m for m in process["managers"] if m["manager_id"] == 0)
    figures = view["virtual"]
    assert view["name"] == "mmap"
    # The collector grew the heap by tens of MiB and gave memory back.
    assert figures["peak_committed_bytes"] - figures["final_committed_bytes"] >= 16 * MiB
    assert figures["peak_reserved_bytes"] - figures["final_reserved_bytes"] >= 16 * MiB
    assert figures["final_committed_bytes"] > 0
    assert 0 < figures["final_committed_bytes"] <= figures["final_reserved_bytes"]
    assert figures["calls"]["mmap"] >= 50 and figures["calls"]["munmap"] >= 50
    assert figures["committed_by_protect"].get("PAGE_READWRITE", 0) > 0
    assert summary["anomaly_counts"]["rwx_commit"] >= 1


def proc_lines(maps):
    """(lo, hi, perms, path, inode) of each line of /proc/self/maps."""
    out = []
    for line in maps:
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        perms = parts[1][:3]
        if perms[1] == "w":
            perms = "r" + perms[1:]
        out.append((lo, hi, perms, parts[5] if len(parts) > 5 else "", int(parts[4])))
    return out


def view_runs(document, vpid):
    for process in document["processes"]:
        if process["vpid"] != vpid:
            continue
        for manager in process["managers"]:
            if manager["manager_id"] == 0:
                return [(r["base"], r["base"] + r["size"],
                         PERMS[r["protect"]] if r["state"] == "MEM_COMMIT" else "---")
                        for r in manager["regions"]]  # fmt: skip
    return []


def overlap(lo, hi, ranges):
    """The parts of [lo, hi) inside ranges."""
    return [(max(lo, a), min(hi, b)) for a, b in ranges if a < hi and b > lo]


def test_view_agrees_with_proc_maps(mono_trace):
    trace, maps, events = mono_trace
    vpid, markers = mono_pid(events)
    first = events.index(markers[0])
    between = [e for e in events[first + 1 : events.index(markers[1])] if e[2] == vpid]
    assert not between, f"mappings changed while Mono read /proc/self/maps: {between}"
    traced = touched_ranges([(e[0], e[1]) for e in events[:first] if e[2] == vpid])
    assert traced
    view = view_runs(engine.map_at(str(trace), markers[0][4]), vpid)
    kernel = proc_lines(maps)

    def kernel_perms(page):
        for lo, hi, perms, _, _ in kernel:
            if lo <= page < hi:
                return perms
        return None

    # Every page the view holds in a traced range is mapped, with the same protection.
    checked = 0
    for lo, hi, perms in view:
        for a, b in overlap(lo, hi, traced):
            for page in range(a, b, 4096):
                assert kernel_perms(page) == perms, f"{page:#x}: view {perms}"
                checked += 1
    assert checked >= 256, "the view holds Mono's memory"

    # Every anonymous page there is the view's (same protection, checked above), or lies in
    # pages the view knows traced calls freed: mapped since out of the interposer's sight
    # (the kernel merges such a mapping with a seen neighbour of the same protection).
    viewed = [(lo, hi) for lo, hi, _ in view]
    seen = unseen = 0
    for lo, hi, perms, path, inode in kernel:
        if inode or (path and not path.startswith("[")):
            continue  # a file: the dynamic loader maps them out of the interposer's sight
        for a, b in overlap(lo, hi, traced):
            inside = sum(y - x for x, y in overlap(a, b, viewed))
            seen += inside
            unseen += (b - a) - inside
    assert seen >= 256 * 4096
    assert unseen <= seen // 4, f"{unseen} bytes of anonymous memory out of the view's sight"


def test_commands(mono_trace, tmp_path):
    trace = mono_trace[0]
    for argv in (["check"], ["timeline", "--csv"], ["leaks"], ["map", "--at", "100ms"],
                 ["plot", "-o", str(tmp_path / "mono.png")]):  # fmt: skip
        proc = subprocess.run([PYTHON, str(LAUNCHER), *argv[:1], str(trace), *argv[1:]],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    assert (tmp_path / "mono.png").stat().st_size > 10000
