# SPDX-License-Identifier: MIT
"""The interposer and the mmap view on a scripted program (tests/data/programs/fx-mmap.c).

fx-mmap makes every call the interposer traces, with each flag and protection runtimes use and
calls the kernel refuses, and logs each call with the members of the event it must produce,
then, at checkpoints, what /proc/self/maps says. Recorded with `clrmemtrace record --preload`:

- the trace holds exactly the logged calls of fx-mmap's thread, in order, field by field
  (arguments, result, errno, the mapped file's path), after a /proc/self/maps dump;
- the mmap view rebuilt by both engines at each checkpoint is what the kernel said there, page
  by page, over every range fx-mmap mapped: mapped or not, protection, private anonymous
  memory or not, file;
- the summary counts the calls, lists the failed ones by errno, flags the RWX mappings and the
  W->X flip, and the trace is complete; `check` and `plot` work on it.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

LAUNCHER = REPO / "analysis" / "clrmemtrace"
PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
RECORD_TIMEOUT = 180
CALLS = ("mmap", "munmap", "mprotect", "madvise", "posix_madvise", "mremap")

sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import engine  # noqa: E402

# The reconstructed protection as /proc/self/maps writes it (write implies read on x86-64).
PERMS = {
    "0": "---",
    "PAGE_NOACCESS": "---",
    "PAGE_READONLY": "r--",
    "PAGE_READWRITE": "rw-",
    "PAGE_WRITECOPY": "rw-",
    "PAGE_EXECUTE": "--x",
    "PAGE_EXECUTE_READ": "r-x",
    "PAGE_EXECUTE_READWRITE": "rwx",
    "PAGE_EXECUTE_WRITECOPY": "rwx",
}


@pytest.fixture(scope="module")
def programs(build):
    targets = [
        "tests/data/programs/fx-mmap",
        "src/libclrmemtrace-preload.so",
        "src/libclrmemtrace-os-lttng.so",
        "analysis/plugin/babeltrace-plugin-clrmemtrace.so",
    ]
    proc = subprocess.run(["ninja", "-C", str(build.path), *targets], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"ninja failed:\n{proc.stdout[-4000:]}")
    try:
        import bt2  # noqa: F401
    except ImportError:
        pytest.skip(f"bt2 is not importable by {sys.executable} (Debian package python3-bt2)")
    return build


def record_preload(lttng, build, out, argv, extra_env=None):
    """`clrmemtrace record --preload -o OUT -- ARGV`; returns record's stdout."""
    env = dict(lttng.env)
    env["CLRMEMTRACE_PRELOAD"] = str(build.path / "src" / "libclrmemtrace-preload.so")
    env["CLRMEMTRACE_PLUGIN_PATH"] = str(build.path / "analysis" / "plugin")
    env.pop("CLRMEMTRACE_TRACE", None)
    env.update(extra_env or {})
    proc = subprocess.run(
        [PYTHON, str(LAUNCHER), "record", "--preload", "-o", str(out), "--", *map(str, argv)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, timeout=RECORD_TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, f"record failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    assert "\n0 events discarded" in "\n" + proc.stdout, proc.stdout
    return proc.stdout


def parse_log(path):
    """(tid, calls, checkpoints): the calls as (name, fields), checkpoints as (index, maps)."""
    tid, calls, checkpoints = None, [], []
    for line in path.read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word == "tid":
            tid = int(rest)
        elif word == "call":
            name, _, args = rest.partition(" ")
            fields = {}
            head, sep, path_value = args.partition(" path=")
            for item in head.split():
                key, _, value = item.partition("=")
                fields[key] = int(value, 0)
            if sep:
                fields["path"] = path_value
            elif args.startswith("path="):
                fields["path"] = args[5:]
            calls.append((name, fields))
        elif word == "checkpoint":
            checkpoints.append((len(calls), []))
        elif word == "maps":
            checkpoints[-1][1].append(rest)
    return tid, calls, checkpoints


def trace_events(trace):
    """Every clrmemtrace_os event of the trace: (name, fields, vpid, vtid, ns)."""
    import bt2

    found = []
    for msg in bt2.TraceCollectionMessageIterator(str(trace)):
        if type(msg) is not bt2._EventMessageConst:
            continue
        name = str(msg.event.name)
        if not name.startswith("clrmemtrace_os:"):
            continue
        fields = {}
        for key, field in msg.event.payload_field.items():
            if isinstance(field, bt2._StringFieldConst):
                # Babeltrace2 2.0 may give an empty string an earlier event's text: its length
                # is right (tests/data/README.md).
                fields[key] = str(field) if len(field) else ""
            else:
                fields[key] = int(field)
        ctx = msg.event.common_context_field
        found.append((name.split(":", 1)[1], fields, int(ctx["vpid"]), int(ctx["vtid"]),
                      msg.default_clock_snapshot.ns_from_origin))  # fmt: skip
    return found


def unsigned(value, bits):
    return value & ((1 << bits) - 1)


def same_value(key, logged, traced):
    if key == "path":
        return logged == traced
    # The log writes C's values; the trace has hex fields as unsigned or signed integers.
    return unsigned(logged, 64) == unsigned(traced, 64) or unsigned(logged, 32) == unsigned(
        traced, 32
    )


def page_up(x):
    return (x + 4095) & ~4095


def touched_ranges(calls):
    """The ranges the successful calls mapped, merged."""
    ranges = []
    for name, f in calls:
        if name == "mmap" and f["result"] != unsigned(-1, 64):
            ranges.append((f["result"], page_up(f["result"] + f["length"])))
        elif name == "mremap" and f["result"] != unsigned(-1, 64):
            ranges.append((f["result"], f["result"] + page_up(f["new_length"])))
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def kernel_pages(maps_lines):
    """(lo, hi, value) of each /proc/self/maps line; value is (perms, file, anonymous private)."""
    out = []
    for line in maps_lines:
        parts = line.split(None, 5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        perms, inode = parts[1], int(parts[4])
        path = parts[5] if len(parts) > 5 else ""
        rwx = perms[:3]
        if rwx[1] == "w":
            rwx = "r" + rwx[1:]
        file = path if inode and not path.startswith("/dev/zero") else ""
        anonymous_private = perms[3] == "p" and not path
        out.append((lo, hi, (rwx, file, anonymous_private)))
    return out


def view_pages(map_document, vpid):
    """(lo, hi, value) of each run of the mmap view of process vpid in a map document."""
    out = []
    for process in map_document["processes"]:
        if process["vpid"] != vpid:
            continue
        for manager in process["managers"]:
            if manager["manager_id"] != 0:
                continue
            for r in manager["regions"]:
                rwx = PERMS[r["protect"]] if r["state"] == "MEM_COMMIT" else "---"
                value = (rwx, r["path"], r["mem_type"] == "MEM_PRIVATE")
                out.append((r["base"], r["base"] + r["size"], value))
    return out


def clipped(intervals, ranges):
    """Intervals cut to ranges, unmapped parts as None, equal neighbours merged."""
    out = []
    for lo, hi in ranges:
        cursor = lo
        pieces = sorted((max(a, lo), min(b, hi), v) for a, b, v in intervals if a < hi and b > lo)
        for a, b, v in pieces:
            if a > cursor:
                out.append((cursor, a, None))
            out.append((a, b, v))
            cursor = b
        if cursor < hi:
            out.append((cursor, hi, None))
    merged = []
    for a, b, v in out:
        if merged and merged[-1][1] == a and merged[-1][2] == v:
            merged[-1] = (merged[-1][0], b, v)
        else:
            merged.append((a, b, v))
    return merged


@pytest.fixture(scope="module")
def scripted(programs, lttng, tmp_path_factory):
    work = tmp_path_factory.mktemp("fx-mmap")
    log = work / "fx-mmap.log"
    trace = work / "trace"
    record_preload(lttng, programs, trace, [programs.path / "tests/data/programs/fx-mmap", log])
    tid, calls, checkpoints = parse_log(log)
    return trace, tid, calls, checkpoints, trace_events(trace)


def test_trace_holds_every_call(scripted):
    trace, tid, calls, checkpoints, events = scripted
    mine = [e for e in events if e[2] == tid]
    assert mine and mine[0][0] == "maps_begin", "the trace starts with the maps dump"
    names = [e[0] for e in mine]
    end = names.index("maps_end")
    assert mine[end][1]["mappings"] == names.count("maps_mapping") > 10
    traced = [e for e in mine if e[0] in CALLS and e[3] == tid]
    assert [e[0] for e in traced] == [name for name, _ in calls]
    for (name, logged), (_, fields, *_) in zip(calls, traced):
        for key, value in logged.items():
            assert key in fields, f"{name}: no {key} in {fields}"
            assert same_value(key, value, fields[key]), f"{name} {key}: {logged} vs {fields}"
    # Every call and every flag the script means to cover is there.
    assert set(names) >= set(CALLS) | {"maps_begin", "maps_mapping", "maps_end"}
    flags = {f["flags"] for n, f in calls if n == "mmap"}
    for flag in (0x01, 0x02, 0x10, 0x20, 0x40, 0x4000, 0x100000):
        assert any(f & flag for f in flags), hex(flag)
    remaps = {f["flags"] for n, f in calls if n == "mremap"}
    assert {0, 1, 3, 5} <= remaps
    assert {f["errnum"] for n, f in calls if "errnum" in f} >= {0, 9, 12, 13, 14, 17, 22}


@pytest.mark.parametrize("engine_name", ["plugin", "oracle"])
def test_view_matches_the_kernel(scripted, engine_name, monkeypatch, programs):
    trace, tid, calls, checkpoints, events = scripted
    monkeypatch.setenv("CLRMEMTRACE_PLUGIN_PATH", str(programs.path / "analysis" / "plugin"))
    markers = [e for e in events if e[0] == "madvise" and e[3] == tid and e[1]["length"] == 0]
    assert len(markers) == len(checkpoints) >= 5
    for (done, maps_lines), marker in zip(checkpoints, markers):
        ranges = touched_ranges(calls[:done])
        document = engine.map_at(str(trace), marker[4], engine=engine_name)
        kernel = clipped(kernel_pages(maps_lines), ranges)
        view = clipped(view_pages(document, tid), ranges)
        assert view == kernel, f"checkpoint after {done} calls"


def test_summary(scripted, programs, monkeypatch):
    trace, tid, calls, checkpoints, events = scripted
    monkeypatch.setenv("CLRMEMTRACE_PLUGIN_PATH", str(programs.path / "analysis" / "plugin"))
    summary = engine.summary(str(trace), engine="plugin")
    assert summary["complete"], summary["incomplete_reasons"]
    process = next(p for p in summary["processes"] if p["vpid"] == tid)
    view = next(m for m in process["managers"] if m["manager_id"] == 0)
    assert view["name"] == "mmap" and view["complete"]
    for name in CALLS:
        mine = sum(1 for n, _ in calls if n == name)
        assert view["virtual"]["calls"][name] >= mine > 0
    failed = [(n, f) for n, f in calls
              if f["result"] == unsigned(-1, 64) or (n != "mmap" and n != "mremap"
                                                      and f["result"] != 0)]  # fmt: skip
    listed = [f for f in summary["failures"] if f["vpid"] == tid and f["tid"] == tid]
    assert [(f["event"], f["hr"]) for f in listed] == [
        (n, errno_name(f.get("errnum", f["result"]))) for n, f in failed
    ]
    counts = summary["anomaly_counts"]
    assert counts["rwx_commit"] >= 4 and counts["w_to_x_flip"] >= 1
    assert view["virtual"]["peak_reserved_bytes"] > 0
    oracle = engine.summary(str(trace), engine="oracle")
    oracle["incomplete_reasons"] = summary["incomplete_reasons"]
    assert oracle == summary


def errno_name(value):
    import errno

    names = {11: "EAGAIN", 35: "EDEADLK", 95: "EOPNOTSUPP"}
    return names.get(value) or errno.errorcode.get(value, str(value))


def test_commands(scripted, programs, tmp_path):
    trace = scripted[0]
    env = dict(os.environ, CLRMEMTRACE_PLUGIN_PATH=str(programs.path / "analysis" / "plugin"))
    for argv in (["check"], ["timeline"], ["leaks"], ["latency"], ["map", "--at", "1s"],
                 ["export", "--format", "csv", "-o", str(tmp_path / "c.csv")],
                 ["plot", "-o", str(tmp_path / "p.svg")]):  # fmt: skip
        proc = subprocess.run([PYTHON, str(LAUNCHER), *argv[:1], str(trace), *argv[1:]],
                              env=env, capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    assert (tmp_path / "p.svg").stat().st_size > 1000
    timeline = json.loads(json.dumps(engine.timeline(str(trace), engine="plugin")))
    ops = {row["op"] for row in timeline if row["manager_id"] == 0}
    assert ops >= {"statedump", "reserve", "reserve_commit", "commit", "protect", "decommit",
                   "release", "reset", "remap"}  # fmt: skip
