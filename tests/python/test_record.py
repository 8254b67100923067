# SPDX-License-Identifier: MIT
"""End-to-end tests of `clrmemtrace record`: normal, snapshot, live and relay modes.

The traced programs are the example host `examples/addrspace-map` (a manager, reservations,
1000 heap blocks allocated and freed) and `gated`, a small host compiled here that makes a
number of heap calls, says it is ready, waits for a file to appear, then makes more: it lets a
test act (take a snapshot, attach a live viewer) at a known point of the program.

Other processes on the machine may record or emit clrmemtrace events at the same time (the
root session daemon is shared), so events are always selected by the traced program's pid.
Every daemon a test starts is stopped by its PID; record stops the ones it starts.
"""

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "analysis" / "clrmemtrace"
PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import events as ct_events  # noqa: E402
from clrmemtrace import lttng as ct_lttng  # noqa: E402

RECORD_TIMEOUT = 60
WAIT_TIMEOUT = 30
HEAP_BLOCKS = 1000  # what addrspace-map allocates and frees

GATED_SOURCE = r"""
#include <clrmemtrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static IHostMemoryManager *mm;
static IHostMalloc *heap;

static void calls(long n)
{
    if (n > 0 && !mm) {
        clrmemtrace_options o = { sizeof(o), 0, "gated" };
        if (clrmemtrace_create(&o, &mm) != S_OK ||
            IHostMemoryManager_CreateMalloc(mm, MALLOC_THREADSAFE, &heap) != S_OK)
            exit(10);
    }
    for (long i = 0; i < n; i++) {
        void *p;
        if (IHostMalloc_Alloc(heap, 32, eTaskCritical, &p) != S_OK ||
            IHostMalloc_Free(heap, p) != S_OK)
            exit(11);
    }
}

/* Usage: gated READY GO BEFORE AFTER */
int main(int argc, char **argv)
{
    struct timespec tick = { 0, 10 * 1000 * 1000 };
    FILE *f;
    int i;

    if (argc != 5)
        return 2;
    calls(atol(argv[3]));
    if (!(f = fopen(argv[1], "w")))
        return 12;
    fclose(f);
    for (i = 0; access(argv[2], F_OK) != 0; i++) {
        if (i == 6000)
            return 13;
        nanosleep(&tick, NULL);
    }
    calls(atol(argv[4]));
    if (heap)
        IHostMalloc_Release(heap);
    if (mm)
        IHostMemoryManager_Release(mm);
    return 0;
}
"""


# ---------- Build and tools ----------


def _run_or_fail(argv, what, **kwargs):
    proc = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def tools():
    """Skips the module when the LTTng tools or Babeltrace2's Python bindings are missing."""
    for tool in ("lttng", "lttng-sessiond", "lttng-relayd", "babeltrace2"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages lttng-tools, babeltrace2)")
    try:
        import bt2  # noqa: F401
    except ImportError:
        pytest.skip(f"bt2 is not importable by {sys.executable} (Debian package python3-bt2)")


class Build:
    """The library build the traced programs run against."""

    def __init__(self, path):
        self.path = path
        self.lib_dir = path / "src"
        self.provider = self.lib_dir / "libclrmemtrace-lttng.so"
        self.example = path / "examples" / "addrspace-map"


@pytest.fixture(scope="module")
def build(tools):
    """$CLRMEMTRACE_BUILD_DIR (default build-test), set up and built when something is missing."""
    path = Path(os.environ.get("CLRMEMTRACE_BUILD_DIR", "build-test"))
    if not path.is_absolute():
        path = REPO / path
    if not (path / "build.ninja").exists():
        _run_or_fail(["meson", "setup", str(path)], cwd=REPO, what="meson setup")
    b = Build(path)
    if not (b.provider.exists() and b.example.exists()):
        targets = [str(p.relative_to(path)) for p in (b.provider, b.example)]
        _run_or_fail(["ninja", "-C", str(path), *targets], cwd=REPO, what="ninja")
    return b


@pytest.fixture(scope="module")
def gated(build, tmp_path_factory):
    """The `gated` host, compiled against the build's library."""
    folder = tmp_path_factory.mktemp("gated")
    source = folder / "gated.c"
    source.write_text(GATED_SOURCE)
    binary = folder / "gated"
    _run_or_fail(
        [
            "cc",
            "-o",
            str(binary),
            str(source),
            f"-I{REPO / 'include'}",
            f"-L{build.lib_dir}",
            "-lclrmemtrace",
        ],
        what="compiling gated.c",
    )
    return binary


# ---------- Running record ----------


def record_env(build):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = str(build.lib_dir)
    env.pop("CLRMEMTRACE_TRACE", None)
    return env


def record(build, *args, env=None, timeout=RECORD_TIMEOUT):
    """Runs `clrmemtrace record ARGS` to completion; returns the CompletedProcess."""
    return subprocess.run(
        [PYTHON, str(LAUNCHER), "record", *map(str, args)],
        env=env or record_env(build),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )


class Background:
    """`clrmemtrace record` running in the background, its stderr read line by line."""

    def __init__(self, build, *args, env=None):
        self.proc = subprocess.Popen(
            [PYTHON, str(LAUNCHER), "record", *map(str, args)],
            env=env or record_env(build),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err_lines = []

    def wait_line(self, pattern, timeout=WAIT_TIMEOUT):
        """Reads stderr until a line matches `pattern`; returns the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.err_lines.append(line)
            m = regex.search(line)
            if m:
                return m
        self.kill()
        pytest.fail(f"no line matching {pattern!r} from record; stderr:\n{''.join(self.err_lines)}")

    def finish(self, timeout=RECORD_TIMEOUT):
        """Waits for the end; returns (status, stdout, all of stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, "".join(self.err_lines) + err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def program_pid(stderr):
    m = re.search(r"running .* \(pid (\d+)\)", stderr)
    assert m, stderr
    return int(m.group(1))


def summary_value(stdout, key):
    m = re.search(rf"^{key}: (.*)$", stdout, re.M)
    assert m, stdout
    return m.group(1)


def wait_for_file(path, proc=None, timeout=WAIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        assert proc is None or proc.poll() is None, "record ended early"
        time.sleep(0.02)


# ---------- Reading traces ----------


class Trace:
    """The events of one pid in a trace, and what the trace says it lost.

    Only non-empty strings are read: Babeltrace 2.0.4 may show an empty string field with the
    value of an earlier event when it recycles event objects.
    """

    def __init__(self, path, pid, contexts=True):
        import bt2

        self.counts = collections.Counter()
        self.contexts = []
        self.manager_names = []
        self.discarded = 0
        for msg in bt2.TraceCollectionMessageIterator(str(path)):
            if type(msg) is bt2._DiscardedEventsMessageConst:
                self.discarded += msg.count or 0
            if type(msg) is not bt2._EventMessageConst:
                continue
            ev = msg.event
            ctx = ev.common_context_field
            if ctx is None or int(ctx["vpid"]) != pid:
                continue
            provider, _, name = ev.name.partition(":")
            assert provider == "clrmemtrace"
            self.counts[name] += 1
            if contexts:
                self.contexts.append((int(ctx["vtid"]), str(ctx["procname"])))
            if name == "manager_create":
                self.manager_names.append(str(ev.payload_field["name"]))

    def count(self, name):
        return self.counts[name]

    @property
    def total(self):
        return sum(self.counts.values())


def check_example_trace(trace):
    """What addrspace-map's events must be."""
    assert trace.count("manager_create") == 1
    assert trace.manager_names == ["addrspace-map"]
    assert trace.count("malloc_alloc") == HEAP_BLOCKS
    assert trace.count("malloc_free") == HEAP_BLOCKS
    assert trace.count("malloc_create") == 1
    assert trace.count("manager_destroy") == 1
    assert trace.count("virtual_alloc") >= 5
    assert trace.discarded == 0
    assert trace.contexts
    for vtid, procname in trace.contexts:
        assert vtid > 0 and procname == "addrspace-map"


def start_relayd(output, log):
    """A relay daemon of the test's own, on free loopback ports."""
    relayd = ct_lttng.RelayDaemon(output)
    relayd.start(log)
    return relayd


# ---------- Tests ----------


def test_event_list_matches_the_provider():
    header = (REPO / "tracepoints" / "clrmemtrace_tp.h").read_text()
    declared = re.findall(
        r"LTTNG_UST_TRACEPOINT_EVENT(?:_INSTANCE)?\(\s*clrmemtrace,\s*(?:\w+,\s*clrmemtrace,\s*)?"
        r"(\w+),",
        header,
    )
    assert declared == [*ct_events.EVENTS, ct_events.STATEDUMP_REQUEST]
    assert ct_events.record_names()[-1] == "clrmemtrace:statedump_request"
    assert all(name.startswith("clrmemtrace:") for name in ct_events.record_names())


def test_normal_mode(build, tmp_path):
    out = tmp_path / "trace"
    proc = record(build, "-o", out, "--", build.example)
    assert proc.returncode == 0, proc.stderr
    assert summary_value(proc.stdout, "Trace") == str(out)
    assert re.search(r"^0 events discarded$", proc.stdout, re.M), proc.stdout
    assert "Traceback" not in proc.stderr
    check_example_trace(Trace(out, program_pid(proc.stderr)))


def test_exit_status_is_the_programs(build, tmp_path):
    proc = record(build, "-o", tmp_path / "t1", "--", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc.stderr
    assert re.search(r"^0 events discarded$", proc.stdout, re.M), proc.stdout

    proc = record(build, "-o", tmp_path / "t2", "--", "sh", "-c", "kill -KILL $$")
    assert proc.returncode == 128 + signal.SIGKILL, proc.stderr
    assert "killed by SIGKILL" in proc.stderr


def test_program_that_cannot_run(build, tmp_path):
    out = tmp_path / "never"
    proc = record(build, "-o", out, "--", tmp_path / "no-such-program")
    assert proc.returncode == 127
    assert proc.stderr.strip().splitlines()[-1].endswith("no-such-program: command not found")
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_lttng_tools(build, tmp_path):
    env = record_env(build)
    env["PATH"] = str(tmp_path)  # no lttng there
    proc = record(build, "--", "true", env=env)
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        "clrmemtrace record: lttng not found: install the LTTng tools (Debian package lttng-tools)"
    )


def test_usage_errors(build, tmp_path):
    proc = record(build)
    assert proc.returncode == 2 and "no program to run" in proc.stderr

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    proc = record(build, "-o", busy, "--", "true")
    assert proc.returncode == 3 and "is not empty" in proc.stderr
    proc = record(build, "-o", busy, "--force", "--", "true")
    assert proc.returncode == 3 and "holds no trace" in proc.stderr
    assert (busy / "notes.txt").read_text() == "mine"

    proc = record(build, "--snapshot", "--live", "--", "true")
    assert proc.returncode == 2 and "cannot be combined" in proc.stderr
    proc = record(build, "--url", "http://x", "--", "true")
    assert proc.returncode == 2 and "--url takes" in proc.stderr


def test_force_replaces_a_trace(build, tmp_path):
    out = tmp_path / "trace"
    assert record(build, "-o", out, "--", build.example).returncode == 0
    proc = record(build, "-o", out, "--", build.example)
    assert proc.returncode == 3 and "--force" in proc.stderr
    proc = record(build, "-o", out, "--force", "--", build.example)
    assert proc.returncode == 0, proc.stderr
    check_example_trace(Trace(out, program_pid(proc.stderr)))


def _gated_run(build, gated, tmp_path, blocks, *options):
    """Records `gated` making `blocks` heap calls of each kind; returns (proc, trace)."""
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    go.touch()
    proc = record(build, *options, "-o", out, "--", gated, ready, go, blocks, 0)
    assert proc.returncode == 0, proc.stderr
    return proc, Trace(out, program_pid(proc.stderr), contexts=False)


def test_defaults_lose_nothing(build, gated, tmp_path):
    """200,000 events as fast as the host can make them: blocking mode keeps every one."""
    blocks = 100_000
    proc, trace = _gated_run(build, gated, tmp_path, blocks)
    assert re.search(r"^0 events discarded$", proc.stdout, re.M), proc.stdout
    assert trace.count("malloc_alloc") == blocks
    assert trace.count("malloc_free") == blocks
    assert trace.count("manager_destroy") == 1


def test_losses_are_reported(build, gated, tmp_path):
    """With small buffers and no blocking, events are lost, and record says how many."""
    blocks = 100_000
    options = ("--subbuf-size=4k", "--num-subbuf=2", "--blocking-timeout=0")
    proc, trace = _gated_run(build, gated, tmp_path, blocks, *options)
    m = re.search(r"^(\d+) events discarded$", proc.stdout, re.M)
    assert m, proc.stdout
    discarded = int(m.group(1))
    expected = 2 * blocks + 4  # manager and heap creation and destruction
    assert trace.total < expected
    # Other processes tracing at the same time may lose events in the same buffers.
    assert trace.total + discarded >= expected, proc.stdout
    assert "events were lost" in proc.stderr


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_signals_are_forwarded(build, tmp_path, signo):
    ready = tmp_path / "ready"
    name = signal.Signals(signo).name[3:]
    script = f"trap 'exit 7' {name}; touch {ready}; while :; do sleep 0.05; done"
    rec = Background(build, "-o", tmp_path / "trace", "--", "sh", "-c", script)
    rec.wait_line(r"running ")
    wait_for_file(ready, rec.proc)
    rec.proc.send_signal(signo)
    status, out, err = rec.finish()
    assert status == 7, err
    assert re.search(r"^0 events discarded$", out, re.M), out


def test_snapshot_mode(build, gated, tmp_path):
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    rec = Background(build, "--snapshot", "-o", out, "--", gated, ready, go, 100, 50)
    pid = int(rec.wait_line(r"running .* \(pid (\d+)\)").group(1))
    wait_for_file(ready, rec.proc)
    rec.proc.send_signal(signal.SIGUSR1)
    first = Path(rec.wait_line(r"snapshot on SIGUSR1 recorded: (\S+)").group(1))
    go.touch()
    status, stdout, err = rec.finish()
    assert status == 0, err
    assert re.search(r"^0 events discarded$", stdout, re.M), stdout
    snapshots = [Path(p) for p in re.findall(r"^Snapshot: (.*)$", stdout, re.M)]
    assert len(snapshots) == 2 and snapshots[0] == first, stdout
    assert all(p.parent == out and p.name.startswith("snapshot-") for p in snapshots)

    during, at_exit = Trace(snapshots[0], pid), Trace(snapshots[1], pid)
    assert during.count("manager_create") == 1 and during.manager_names == ["gated"]
    assert during.count("malloc_alloc") == 100
    assert during.count("manager_destroy") == 0
    assert at_exit.count("malloc_alloc") == 150
    assert at_exit.count("manager_destroy") == 1
    assert {procname for _, procname in at_exit.contexts} == {"gated"}


def _viewer_attached(live_port):
    """Whether some client is connected to the live port (the viewer, once it attached)."""
    return any(
        port == live_port and state == ct_lttng.TCP_ESTABLISHED
        for port, state, _ in ct_lttng._tcp_sockets()
    )


def test_live_mode(build, gated, tmp_path):
    out, ready, go = tmp_path / "trace", tmp_path / "ready", tmp_path / "go"
    rec = Background(build, "--live", "-o", out, "--", gated, ready, go, 0, HEAP_BLOCKS)
    live_url = rec.wait_line(r"lttng-live (net://\S+)").group(1)
    pid = int(rec.wait_line(r"running .* \(pid (\d+)\)").group(1))
    host = socket.gethostname()
    m = re.fullmatch(
        rf"net://127\.0\.0\.1:(\d+)/host/{re.escape(host)}/(clrmemtrace-\S+)", live_url
    )
    assert m, live_url
    live_port, session = int(m.group(1)), m.group(2)

    # The relay daemon lists the session under the printed URL.
    listing = subprocess.run(
        ["babeltrace2", "--input-format=lttng-live", f"net://127.0.0.1:{live_port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=WAIT_TIMEOUT,
    )
    assert live_url in listing.stdout, listing.stdout

    # A live viewer attached before the program's first call sees every event.
    viewer = subprocess.Popen(
        [
            PYTHON,
            "-c",
            LIVE_VIEWER,
            live_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_TIMEOUT
        while not _viewer_attached(live_port):
            assert viewer.poll() is None, viewer.communicate()
            assert time.monotonic() < deadline, "the live viewer did not connect"
            time.sleep(0.05)
        time.sleep(1)  # attach, then receive the session's streams
        go.touch()
        status, stdout, err = rec.finish()
        viewed, viewer_err = viewer.communicate(timeout=WAIT_TIMEOUT)
    finally:
        rec.kill()
        if viewer.poll() is None:
            viewer.kill()
    assert status == 0, err
    assert viewer.returncode == 0, f"{viewer_err}\nrecord:\n{err}"
    counts = dict(line.split() for line in viewed.splitlines())
    assert counts.get(str(pid)) == str(HEAP_BLOCKS), viewed
    assert re.search(r"^0 events discarded$", stdout, re.M), stdout
    assert summary_value(stdout, "Live") == live_url

    # The relay daemon wrote the whole trace where the summary says.
    stored = Path(summary_value(stdout, "Trace").split(" (")[0])
    assert stored == out / host / session
    trace = Trace(stored, pid)
    assert trace.count("malloc_alloc") == HEAP_BLOCKS
    assert trace.count("manager_create") == 1 and trace.manager_names == ["gated"]
    assert trace.discarded == 0


# Reads a live session to its end with bt2; prints "PID MALLOC_ALLOCS" for each process.
LIVE_VIEWER = r"""
import collections, sys, time, bt2
src = bt2.find_plugin("ctf").source_component_classes["lttng-live"]
params = {"inputs": [sys.argv[1]], "session-not-found-action": "end"}
it = bt2.TraceCollectionMessageIterator(bt2.ComponentSpec(src, params))
counts = collections.Counter()
while True:
    try:
        msg = next(it)
    except StopIteration:
        break
    except bt2.TryAgain:
        time.sleep(0.02)
        continue
    if type(msg) is bt2._EventMessageConst and msg.event.name == "clrmemtrace:malloc_alloc":
        counts[int(msg.event.common_context_field["vpid"])] += 1
for pid, n in counts.items():
    print(pid, n)
"""


def test_relay_mode(build, tmp_path):
    relay_out = tmp_path / "relayd"
    relayd = start_relayd(relay_out, tmp_path / "relayd.log")
    try:
        proc = record(build, "--url", relayd.url, "--", build.example)
    finally:
        relayd.stop()
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^0 events discarded$", proc.stdout, re.M), proc.stdout
    stores = r"^Trace: sent to (\S+); the relay daemon stores it in <its output directory>/(\S+)$"
    m = re.search(stores, proc.stdout, re.M)
    assert m, proc.stdout
    assert m.group(1).startswith(relayd.url + "/clrmemtrace-trace-")
    stored = relay_out / m.group(2)
    assert stored.is_dir(), list(relay_out.rglob("*"))
    check_example_trace(Trace(stored, program_pid(proc.stderr)))


def test_relay_snapshot_mode(build, tmp_path):
    relay_out = tmp_path / "relayd"
    relayd = start_relayd(relay_out, tmp_path / "relayd.log")
    try:
        proc = record(build, "--snapshot", "--url", f"{relayd.url}/snaps", "--", build.example)
    finally:
        relayd.stop()
    assert proc.returncode == 0, proc.stderr
    snapshots = list((relay_out / socket.gethostname() / "snaps").glob("snapshot-*"))
    assert len(snapshots) == 1, list(relay_out.rglob("*"))
    check_example_trace(Trace(snapshots[0], program_pid(proc.stderr)))


def test_private_session_daemon(build):
    """As a user with no session daemon, record starts one, and stops it at the end."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run record as another user")
    nobody = 65534
    home = Path(tempfile.mkdtemp(prefix="clrmemtrace-test-home-"))
    try:
        home.chmod(0o755)
        os.chown(home, nobody, nobody)
        env = record_env(build)
        env.update(HOME=str(home), LTTNG_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
        out = home / "trace"
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={nobody}",
                f"--regid={nobody}",
                "--clear-groups",
                PYTHON,
                str(LAUNCHER),
                "record",
                "-o",
                str(out),
                "--",
                str(build.example),
            ],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=RECORD_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
        m = re.search(r"started a session daemon \(pid (\d+)\)", proc.stderr)
        assert m, proc.stderr
        comm = Path(f"/proc/{m.group(1)}/comm")
        assert not comm.exists() or comm.read_text().strip() != "lttng-sessiond"
        check_example_trace(Trace(out, program_pid(proc.stderr)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
