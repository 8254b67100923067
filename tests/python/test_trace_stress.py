# SPDX-License-Identifier: MIT
"""The tracing path under concurrency: sessions started while many threads call the library.

tests/stress/trace-stress-host runs worker threads over managers with heaps, making a realistic
mix of calls, each worker checking every answer about its own memory.
test_sessions_started_mid_call_get_whole_dumps starts and stops sessions one after the other
while it runs, and checks every state dump of every trace: each must come whole, between its
manager's statedump_begin and statedump_end and in the numbers statedump_begin announces, and
every manager that existed before a session started must be dumped for it.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import CLRMEMTRACE_EVENTS, STATEDUMP_REQUEST, read_trace

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import lttng as ct_lttng  # noqa: E402

RUN_SECONDS = 12
RATE = 1500
SEED = 7
THREADS = 8
SLOTS = 3
REPLACE_EVERY = 3000
# Beyond its run, how long the host may take to stop and write its final state.
HOST_GRACE = 60

DUMP_EVENTS = tuple(e for e in CLRMEMTRACE_EVENTS if e.startswith("statedump_"))
VM_EVENTS = ("virtual_alloc", "virtual_free", "virtual_protect", "virtual_query")
HEAP_EVENTS = ("malloc_create", "malloc_alloc", "malloc_free", "malloc_destroy")
LIFETIME_EVENTS = ("manager_create", "manager_destroy")


@dataclass(frozen=True)
class Kind:
    """A kind of session: what it records and how."""

    events: tuple
    request: bool  # enables statedump_request
    buffers: str = "pid"  # "pid" or "uid"
    snapshot: bool = False
    subbuf_size: int = 1 << 20
    num_subbuf: int = 4
    # What the analysis must say of it when it lost nothing: "exact" (complete when every
    # window got its dump), "incomplete" (it cannot be exact), or None (only `check` counts).
    expect: str = "exact"

    @property
    def dumps(self):
        return "statedump_begin" in self.events


ALL = CLRMEMTRACE_EVENTS
KINDS = {
    "all-pid": Kind(ALL, request=True),
    "all-uid": Kind(ALL, request=True, buffers="uid"),
    "all-norequest": Kind(ALL, request=False),
    # Sequence gaps: each unrecorded protect leaves one.
    "no-protect": Kind(
        tuple(e for e in ALL if e != "virtual_protect"), request=True, expect="incomplete"
    ),
    # No dump events at all: the managers that existed before it are never known.
    "no-dumps": Kind(
        VM_EVENTS + LIFETIME_EVENTS + HEAP_EVENTS, request=False, buffers="uid",
        expect="incomplete",
    ),
    # The heaps only: nothing to check queries against.
    "heaps-only": Kind(HEAP_EVENTS + LIFETIME_EVENTS + DUMP_EVENTS, request=True, expect=None),
    # Two 4 KiB sub-buffers per CPU: events are lost, and the trace must say so.
    "tiny": Kind(ALL, request=True, buffers="uid", subbuf_size=4096, num_subbuf=2),
    "snapshot": Kind(ALL, request=True, buffers="uid", snapshot=True, expect=None),
}  # fmt: skip


@dataclass
class Window:
    """One start → stop of a session, and whether it should have begun with its own dump."""

    start_ns: int
    stop_ns: int = None
    dump: bool = True
    interference: list = field(default_factory=list)


class StressSession:
    """One session of this test: an lttng.py Session plus what the test expects of it."""

    def __init__(self, ctl, kind_name, output, pid):
        self.kind_name = kind_name
        self.kind = KINDS[kind_name]
        self.output = output
        self.name = f"clrmemtrace-stress-{os.getpid()}-{kind_name}-{output.name}"
        self.session = ct_lttng.Session(ctl, self.name)
        self.ctl = ctl
        self.windows = []
        self.snapshots = 0
        self.losses = None
        self.destroyed = False
        self.session.create(output=output, snapshot=self.kind.snapshot)
        try:
            self._configure(ctl, pid)
        except BaseException:
            self.session.destroy()
            raise

    def _configure(self, ctl, pid):
        k = self.kind
        where = ["--userspace", f"--session={self.name}"]
        channel = [
            "enable-channel", *where, f"--buffers-{k.buffers}",
            f"--subbuf-size={k.subbuf_size}", f"--num-subbuf={k.num_subbuf}",
            "--overwrite" if k.snapshot else "--discard", "chan",
        ]  # fmt: skip
        ctl.run(*channel)
        events = k.events + ((STATEDUMP_REQUEST,) if k.request else ())
        self.session.enable_events("chan", [f"clrmemtrace:{e}" for e in events])
        self.session.add_contexts("chan", ["vpid", "vtid", "procname"])
        # Only the host: other programs on the daemon stay out of this session's trace.
        ctl.run("untrack", *where, "--all", "--vpid")
        ctl.run("track", *where, f"--vpid={pid}")

    @property
    def active(self):
        return self.session.active

    def start(self, others, interference):
        """Starts a window; `others` are the test's other sessions (for the dump prediction)."""
        recording = [s for s in others if s is not self and s.active]
        dump = self.kind.dumps and (
            not any(s.kind.dumps for s in recording)
            or (self.kind.request and not any(s.kind.request for s in recording))
        )
        self.windows.append(Window(time.monotonic_ns(), dump=dump, interference=interference))
        self.session.start()

    def stop(self):
        if self.active:
            if self.kind.snapshot:
                self.snapshot()  # what the flight recorder holds as the window ends
            self.session.stop()
            self.windows[-1].stop_ns = time.monotonic_ns()

    def snapshot(self):
        self.session.snapshot_record()
        self.snapshots += 1

    def finish(self):
        """Stops it, reads its loss counters, destroys it (writing the rest of the trace)."""
        if self.destroyed:
            return
        try:
            self.stop()
            self.losses = self.session.losses()
        finally:
            self.destroyed = True
            self.session.destroy()

    def traces(self):
        """The trace folders to analyse: the session's output, or each snapshot."""
        if not self.kind.snapshot:
            return [self.output]
        if not self.output.is_dir():
            return []
        return sorted(p for p in self.output.iterdir() if p.name.startswith("snapshot-"))


# ---------- The host ----------


def sanitized(build):
    """Whether the build under test was configured with sanitizers."""
    try:
        options = json.loads((build.path / "meson-info" / "intro-buildoptions.json").read_text())
    except (OSError, ValueError):
        return False
    return any(o["name"] == "b_sanitize" and o["value"] not in ("none", "") for o in options)


SANITIZER_REPORTS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
)


def host_env(build, lttng):
    """The host's environment: the daemon's, without clrmemtrace settings."""
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    # Registered with the session daemon before main(), so the first session sees every call.
    env["LTTNG_UST_REGISTER_TIMEOUT"] = "10000"
    if sanitized(build):
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        # As the C suites run (tests/unit/meson.build): liburcu's known misalignment is suppressed.
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:suppressions=" + str(
            REPO / "tests/unit/ubsan.supp"
        )
    return env


class Host:
    """trace-stress-host, driven through its standard input."""

    def __init__(
        self,
        path,
        env,
        final,
        stderr_path,
        threads=THREADS,
        rate=RATE,
        replace_every=REPLACE_EVERY,
        heap_churn=1,
        slots=SLOTS,
        regions=10,
    ):
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen(
            [str(path), "--wait", "--stdin", "--threads", str(threads), "--slots", str(slots),
             "--rate", str(rate), "--replace-every", str(replace_every),
             "--heap-churn", str(heap_churn), "--regions", str(regions), "--seed", str(SEED),
             "--seconds", str(RUN_SECONDS * 3 + HOST_GRACE), "--final", str(final)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            bufsize=1,
        )  # fmt: skip
        self.pid = self.proc.pid

    def expect(self, line, timeout):
        """Waits for the host to print `line`; fails (with its stacks) on anything else."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                got = self.proc.stdout.readline().strip()
                if got == line:
                    return
                if got:
                    pytest.fail(f"trace-stress-host said {got!r}, expected {line!r}")
            self.check_alive()
        self.fail_stuck(f"trace-stress-host did not say {line!r} within {timeout} s")

    def say(self, line):
        self.check_alive()
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def check_alive(self):
        """Fails when the host has exited before it was told to."""
        if self.proc.poll() is not None:
            pytest.fail(f"trace-stress-host exited ({self.proc.returncode}):\n{self.errors()}")

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail_stuck(f"trace-stress-host did not exit within {timeout} s")

    def finish(self):
        """Tells the host to stop; it must write its final state and exit 0, without reports."""
        self.say("stop")
        self.expect("done", HOST_GRACE)
        status = self.wait(HOST_GRACE)
        errors = self.errors()
        assert status == 0, f"trace-stress-host failed ({status}):\n{errors}"
        reports = [
            line for line in errors.splitlines() if any(r in line for r in SANITIZER_REPORTS)
        ]
        assert not reports, f"sanitizer reports:\n{errors}"

    def fail_stuck(self, what):
        stacks = thread_stacks(self.pid)
        self.kill()
        pytest.fail(f"{what} (deadlock?); its threads:\n{stacks}")

    def errors(self):
        self.stderr.flush()
        return Path(self.stderr_path).read_text(errors="replace")[-8000:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                f.close()
            except OSError:
                pass


def thread_stacks(pid):
    """Every thread's stack of process `pid`: gdb's backtraces, else the kernel's."""
    if shutil.which("gdb"):
        try:
            proc = subprocess.run(
                ["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=60,
            )
            return proc.stdout[-20000:]
        except subprocess.TimeoutExpired:
            pass
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            comm = (task / "comm").read_text().strip()
            stack = (task / "stack").read_text()
        except OSError as e:
            stack = f"({e})"
            comm = "?"
        out.append(f"--- thread {task.name} ({comm})\n{stack}")
    return "\n".join(out)[-20000:]


# ---------- Whole dumps ----------


def dump_problems(events):
    """What is wrong with the state dumps among one window's events (conftest.Event objects).

    Every dump event must come between its manager's statedump_begin and statedump_end, in the
    numbers statedump_begin announces; and every manager the window has events of must be
    dumped in it, unless it was created in it or goes away in it. Events of a manager before its
    dump are allowed: queries never trigger a dump, and calls already under way when the
    session started may be recorded before the dump reaches their manager.
    """
    problems = []
    open_dumps = {}  # manager id -> [statedump_begin, regions, heaps]
    known, seen, gone = set(), {}, set()
    for e in events:
        m = e.fields.get("manager_id")
        if m is None:
            continue
        if e.name == "statedump_begin":
            if m in open_dumps:
                problems.append(f"manager {m}: a dump began inside another")
            open_dumps[m] = [e, 0, 0]
        elif e.name.startswith("statedump_") and e.name != "statedump_end":
            if m not in open_dumps:
                problems.append(f"manager {m}: {e.name} outside a dump")
                continue
            open_dumps[m][1] += e.name == "statedump_region"
            open_dumps[m][2] += e.name == "statedump_heap"
        elif e.name == "statedump_end":
            begin = open_dumps.pop(m, None)
            if begin is None:
                problems.append(f"manager {m}: statedump_end outside a dump")
                continue
            b, regions, heaps = begin
            if (regions, heaps) != (b.fields["regions"], b.fields["heaps"]):
                problems.append(
                    f"manager {m}: statedump_begin announced {b.fields['regions']} regions and "
                    f"{b.fields['heaps']} heaps, the dump has {regions} and {heaps}"
                )
            if e.fields["seq"] != b.fields["seq"]:
                problems.append(
                    f"manager {m}: the dump's seq moved from {b.fields['seq']} "
                    f"to {e.fields['seq']}"
                )
            known.add(m)
        elif e.name == "manager_create":
            known.add(m)
        elif e.name == "manager_destroy":
            gone.add(m)
        else:
            seen.setdefault(m, e.name)
    for m in open_dumps:
        problems.append(f"manager {m}: a dump never ended")
    for m, first in seen.items():
        if m not in known and m not in gone:
            problems.append(f"manager {m}: never dumped (its first event: {first})")
    return problems


# How the host runs for each race a session's start can lose: many calls on several managers as
# sessions start; many heaps created and released on one manager holding many runs of pages, as
# its dump lists them.
WHOLE_DUMP_HOSTS = {
    "calls": {"threads": 2, "rate": 5000},
    "heap-churn": {"threads": 4, "rate": 4000, "slots": 1, "regions": 48, "heap_churn": 80},
}


@pytest.mark.parametrize("how", sorted(WHOLE_DUMP_HOSTS))
def test_sessions_started_mid_call_get_whole_dumps(build, lttng, tmp_path, how):
    """Each session started while threads keep calling gets a whole dump of every manager.

    Races this catches: LTTng-UST enables a session's tracepoints before it makes the session
    active (it first registers the channels with the session daemon), and drops what is emitted
    in between, so a dump decided as soon as statedump_begin is enabled loses its beginning, or
    all of it; and a dump must list the heaps statedump_begin announces, while other threads
    create and release heaps.
    """
    proc = subprocess.run(
        ["ninja", "-C", str(build.path), "tests/stress/trace-stress-host"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, f"building failed:\n{proc.stdout[-4000:]}"
    ctl = ct_lttng.Lttng(lttng.env)
    host = Host(
        build.path / "tests" / "stress" / "trace-stress-host",
        host_env(build, lttng),
        tmp_path / "final.json",
        tmp_path / "host.stderr",
        replace_every=0,
        **WHOLE_DUMP_HOSTS[how],
    )
    made = []
    try:
        host.expect("ready", 30)
        host.say("go")
        # Per-process buffers: registering their channels makes the window before the start long.
        for i in range(8):
            s = StressSession(ctl, "all-pid", tmp_path / f"s{i}", host.pid)
            made.append(s)
            s.start(made, [])
            time.sleep(0.1)
            s.finish()
        host.finish()
    finally:
        host.kill()
        for s in made:
            s.finish()
    problems = []
    for s in made:
        problems += [
            f"{s.output.name}: {p}" for p in dump_problems(read_trace(s.output, [host.pid]))
        ]
    assert not problems, "\n".join(problems)
