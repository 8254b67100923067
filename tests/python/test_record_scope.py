# SPDX-License-Identifier: MIT
"""Which processes `clrmemtrace record` records: the program and its descendants only, or
every process with --all-processes.

The programs are `trace-host` (outside record, as an unrelated process tracing at the same
time) and `fork-host` (tests/trace/fork-host.c), a host that forks a child which, without
exec, waits for a file before it uses what it inherited, or which execs another program.
A test waits until record has added the child to the session's vpid tracker before letting
it go, so the child is known to be tracked after the fork: its events must begin with state
dumps (the library's, and the interposer's with --preload).
"""

import re
import subprocess
import sys
import time

import pytest

from conftest import REPO, read_trace

LAUNCHER = REPO / "analysis" / "clrmemtrace"
PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import lttng as ct_lttng  # noqa: E402

RECORD_TIMEOUT = 120
WAIT_TIMEOUT = 30

# What fork-host's manager holds when it forks (tests/trace/fork-host.c).
FORK_HOST_REGIONS = 3  # read-write, read-only, reserved
FORK_HOST_BLOCKS = 8


@pytest.fixture(scope="module")
def hosts(build):
    """The build's fork-host, preload interposer and providers, built when needed."""
    targets = [
        "tests/trace/fork-host",
        "src/libclrmemtrace-preload.so",
        "src/libclrmemtrace-os-lttng.so",
        "src/libclrmemtrace-lttng.so",
    ]
    proc = subprocess.run(
        ["ninja", "-C", str(build.path), *targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"ninja failed:\n{proc.stdout[-4000:]}")
    try:
        import bt2  # noqa: F401
    except ImportError:
        pytest.skip(f"bt2 is not importable by {sys.executable} (Debian package python3-bt2)")
    return build


def host_env(lttng, build):
    env = dict(lttng.env)
    env["LD_LIBRARY_PATH"] = str(build.path / "src")
    env["CLRMEMTRACE_PRELOAD"] = str(build.path / "src" / "libclrmemtrace-preload.so")
    env.pop("CLRMEMTRACE_TRACE", None)
    return env


class Record:
    """`clrmemtrace record ARGS` in the background; its stderr read line by line."""

    def __init__(self, env, *args):
        self.proc = subprocess.Popen(
            [PYTHON, str(LAUNCHER), "record", *map(str, args)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err_lines = []
        self.ctl = ct_lttng.Lttng(env)

    def wait_line(self, pattern):
        regex = re.compile(pattern)
        while True:
            line = self.proc.stderr.readline()
            if not line:
                self.kill()
                pytest.fail(f"record printed no {pattern!r}:\n{''.join(self.err_lines)}")
            self.err_lines.append(line)
            m = regex.search(line)
            if m:
                return m

    def wait_tracked(self, session, pids=(), count=0):
        """Waits until the session's tracker holds every one of `pids`, and `count` pids."""
        deadline = time.monotonic() + WAIT_TIMEOUT
        while True:
            tracked = ct_lttng.Session(self.ctl, session).tracked_vpids()
            if tracked is not None and set(pids) <= tracked and len(tracked) >= count:
                return tracked
            assert self.proc.poll() is None, "record ended early"
            assert time.monotonic() < deadline, f"tracked: {tracked}, expected {pids}, {count}"
            time.sleep(0.05)

    def finish(self):
        """Waits for the end; returns (status, stdout, all of stderr)."""
        try:
            out, err = self.proc.communicate(timeout=RECORD_TIMEOUT)
        finally:
            self.kill()
        return self.proc.returncode, out, "".join(self.err_lines) + err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def wait_for_file(path, rec):
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not path.exists():
        assert rec.proc.poll() is None, "record ended early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def by_pid(events):
    """The events of each vpid, in order."""
    pids = {}
    for ev in events:
        pids.setdefault(ev.context["vpid"], []).append(ev)
    return pids


def library_events(events):
    return [ev for ev in events if ":" not in ev.name]


def os_events(events):
    return [ev for ev in events if ev.name.startswith("clrmemtrace_os:")]


def check_trace(env, trace):
    """`clrmemtrace check TRACE`: passes, and checked some queries; returns the count."""
    proc = subprocess.run(
        [PYTHON, str(LAUNCHER), "check", str(trace)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=RECORD_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^Mismatches:\s+0$", proc.stdout, re.M), proc.stdout
    return int(re.search(r"^Queries checked:\s+(\d+)$", proc.stdout, re.M).group(1))


def check_child_dump(events):
    """The library events of fork-host's child begin with a dump of what it inherited."""
    names = [ev.name for ev in events]
    assert names[0] == "statedump_begin", names[:5]
    begin = events[0]
    assert begin.fields["regions"] == FORK_HOST_REGIONS and begin.fields["heaps"] == 1
    end = names.index("statedump_end")
    assert names[1:end].count("statedump_region") == FORK_HOST_REGIONS
    heap = next(ev for ev in events[:end] if ev.name == "statedump_heap")
    assert heap.fields["live_blocks"] == FORK_HOST_BLOCKS
    assert names[end + 1 :].count("virtual_query") == 5
    assert names[-1] == "manager_destroy"


class Unrelated:
    """A trace-host that records clrmemtrace events on request, outside record."""

    def __init__(self, build, env, tmp_path):
        self.proc = subprocess.Popen(
            [
                str(build.trace_host),
                "--log",
                str(tmp_path / "unrelated.log"),
                "--mode",
                "statedump",
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().startswith("ready")

    def step(self):
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=WAIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.mark.parametrize("all_processes", [False, True], ids=["scoped", "all-processes"])
def test_unrelated_processes(lttng, hosts, tmp_path, all_processes):
    """Another process tracing meanwhile is recorded only with --all-processes."""
    env = host_env(lttng, hosts)
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    other = Unrelated(hosts, env, tmp_path)
    try:
        options = ["--all-processes"] if all_processes else []
        fork_host = hosts.path / "tests" / "trace" / "fork-host"
        rec = Record(env, *options, "-o", out, "--", fork_host, "fork", ready, go)
        session = rec.wait_line(r"session (\S+) recording").group(1)
        program = int(rec.wait_line(r"running .* \(pid (\d+)\)").group(1))
        wait_for_file(ready, rec)
        child = int(ready.read_text())
        if not all_processes:
            rec.wait_tracked(session, [program, child])
        other.step()
        other.step()
        go.touch()
        status, stdout, stderr = rec.finish()
    finally:
        other.stop()
    assert status == 0, stderr
    assert re.search(r"^0 events discarded$", stdout, re.M), stdout
    pids = by_pid(read_trace(out))
    assert program in pids and child in pids
    if all_processes:
        assert other.proc.pid in pids, sorted(pids)
        assert "recording the events of every process" in stderr
        assert "descendant process" not in stderr
    else:
        assert set(pids) == {program, child}
        assert "followed 1 descendant process of " in stderr
    check_trace(env, out)


@pytest.mark.parametrize("preload", [False, True], ids=["library", "preload"])
def test_forked_child_tracked_late_starts_with_dumps(lttng, hosts, tmp_path, preload):
    """A child of fork without exec, tracked after the fork, dumps what it inherited."""
    env = host_env(lttng, hosts)
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    options = ["--preload"] if preload else []
    fork_host = hosts.path / "tests" / "trace" / "fork-host"
    rec = Record(env, *options, "-o", out, "--", fork_host, "fork", ready, go)
    session = rec.wait_line(r"session (\S+) recording").group(1)
    program = int(rec.wait_line(r"running .* \(pid (\d+)\)").group(1))
    wait_for_file(ready, rec)
    child = int(ready.read_text())
    rec.wait_tracked(session, [program, child])
    go.touch()
    status, stdout, stderr = rec.finish()
    assert status == 0, stderr
    assert re.search(r"^0 events discarded$", stdout, re.M), stdout
    assert "followed 1 descendant process of " in stderr

    pids = by_pid(read_trace(out))
    assert set(pids) == {program, child}
    parent = library_events(pids[program])
    assert parent[0].name == "manager_create" and parent[0].fields["name"] == "fork-host"
    assert parent[-1].name == "manager_destroy"
    check_child_dump(library_events(pids[child]))
    if preload:
        assert os_events(pids[program])[0].name == "clrmemtrace_os:maps_begin"
        assert os_events(pids[child])[0].name == "clrmemtrace_os:maps_begin"
    else:
        assert not os_events(pids[program] + pids[child])
    # The parent's queries after the fork, and every one of the child's, are checked.
    assert check_trace(env, out) >= 1 + 2 + 5


def test_exec_child_and_grandchild(lttng, hosts, tmp_path):
    """fork-host execs another fork-host, which forks: all three are recorded."""
    env = host_env(lttng, hosts)
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    fork_host = hosts.path / "tests" / "trace" / "fork-host"
    rec = Record(env, "-o", out, "--", fork_host, "exec", fork_host, "fork", ready, go)
    session = rec.wait_line(r"session (\S+) recording").group(1)
    program = int(rec.wait_line(r"running .* \(pid (\d+)\)").group(1))
    wait_for_file(ready, rec)
    grandchild = int(ready.read_text())
    tracked = rec.wait_tracked(session, [program, grandchild], count=3)
    go.touch()
    status, stdout, stderr = rec.finish()
    assert status == 0, stderr
    assert "followed 2 descendant processes of " in stderr

    pids = by_pid(read_trace(out))
    assert set(pids) == tracked and len(pids) == 3
    (child,) = set(pids) - {program, grandchild}
    assert library_events(pids[program])[0].name == "manager_create"
    # Tracked before its first call, or after: then it dumps at its next call (queries,
    # which never wait, do not dump and come first); either way, exact.
    first = next(ev for ev in library_events(pids[child]) if ev.name != "virtual_query")
    assert first.name in ("manager_create", "statedump_begin"), first
    assert first.fields["manager_id"] == 1
    check_child_dump(library_events(pids[grandchild]))
    assert check_trace(env, out) >= 5


def test_child_status_and_program_not_found(lttng, hosts, tmp_path):
    """The gate changes nothing about exit statuses."""
    env = host_env(lttng, hosts)
    fork_host = hosts.path / "tests" / "trace" / "fork-host"
    rec = Record(env, "-o", tmp_path / "t1", "--", fork_host, "exec", "sh", "-c", "exit 5")
    status, _, stderr = rec.finish()
    assert status == 5, stderr
    # sh may be gone before record looks: a descendant that short may not be followed.
    assert re.search(r"followed [01] descendant process(es)? of ", stderr), stderr

    rec = Record(env, "-o", tmp_path / "t2", "--", tmp_path / "missing")
    status, _, stderr = rec.finish()
    assert status == 127 and stderr.strip().endswith("missing: command not found"), stderr
    assert not (tmp_path / "t2").exists()
    assert "Traceback" not in stderr
