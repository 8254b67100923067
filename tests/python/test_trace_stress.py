# SPDX-License-Identifier: MIT
"""The tracing path under concurrency: sessions come and go while many threads hammer the library.

tests/stress/trace-stress-host runs 8 worker threads over 3 managers (each with shared heaps,
replaced by a new manager now and then) making a realistic mix of calls, each worker checking
every answer about its own memory. While it runs, test_sessions_come_and_go_while_threads_hammer
creates, starts, stops, restarts, snapshots and destroys LTTng sessions of several kinds, several
at once: all events with `statedump_request`, with per-process or per-user buffers; all events
without it; subsets of the events; tiny buffers that lose events; a snapshot (flight-recorder)
session. Every session records only the host (vpid tracker), so other programs tracing on the
same daemon stay out of it. What must hold:

- the host exits 0 within a bounded time (on a timeout its threads' stacks are printed, from gdb
  or /proc, and it is killed), with no sanitizer report when the build has sanitizers;
- every trace recorded (each snapshot too) is read by babeltrace2 without error, and passes
  `clrmemtrace check`: no traced VirtualQuery contradicts the reconstruction;
- a trace that lost events (by LTTng's counters or Babeltrace's notices) is flagged incomplete;
- a session of all the events whose every window was due a dump of its own has, in each window,
  a whole dump of every manager that existed before it, and no manager stays unknown to the end
  of its trace: from each dump on, the reconstruction is exact. A window is due its dump when no
  other session recorded the dump events as it started, or when it enables `statedump_request`
  and no other session had that enabled (dumps are decided per process: EVENTS.md, "State
  dumps"). Events of a manager may come before its dump (queries never trigger one, and calls
  under way as the session started are recorded); the analysis observes such a manager from
  its dump on (analysis/README.md, "Managers first seen before their dump"), so a session of
  one such window is complete, but for the managers released before the dump reached them;
- sessions that cannot be exact say so rather than being wrong: one started deliberately while
  another records the dump events, without `statedump_request` (it gets no dump), one that
  leaves out `virtual_protect` (sequence gaps), one without any dump events;
- the last session, started near the end with `statedump_request` and kept recording until the
  host is done, rebuilds the host's final state exactly: `clrmemtrace map` at the trace's end
  lists, per live manager, the runs of pages of the host's own VirtualQuery walk, and its live
  heap blocks and bytes.

test_sessions_started_mid_call_get_whole_dumps starts and stops sessions one after the other
while the host runs in ways that make two races likely, and checks every dump of every trace,
and that the analysis finds each trace complete (but for managers released before their dump).

The host runs for CLRMEMTRACE_STRESS_SECONDS (default 12) seconds at a bounded rate, so that the
whole file takes under a minute; set it higher (with CLRMEMTRACE_STRESS_RATE, operations per
second per thread, default 1500, and CLRMEMTRACE_STRESS_SEED for other choices) for a longer
run. With CLRMEMTRACE_BUILD_DIR=build-asan the host and the library run under AddressSanitizer
and UndefinedBehaviorSanitizer, and the analysis loads the sanitized plugin with the ASan runtime
preloaded.

Sessions started elsewhere on the same daemon that record this host's dump events (no vpid
tracker) would take its dumps away; when one is active as a window starts, the expectations
that depend on dumps are dropped for that session, with a warning.
"""

import json
import os
import random
import select
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import CLRMEMTRACE_EVENTS, STATEDUMP_REQUEST, Event, process_traces, read_trace

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "analysis" / "python"))

from clrmemtrace import lttng as ct_lttng  # noqa: E402

PYTHON = "/usr/bin/python3"  # the interpreter Debian's bt2 is built for
CLI = REPO / "analysis" / "clrmemtrace"

RUN_SECONDS = float(os.environ.get("CLRMEMTRACE_STRESS_SECONDS", "12"))
RATE = int(os.environ.get("CLRMEMTRACE_STRESS_RATE", "1500"))
SEED = int(os.environ.get("CLRMEMTRACE_STRESS_SEED", "7"))
THREADS = 8
SLOTS = 3
REPLACE_EVERY = 3000
# The last session records this long before the host is told to stop.
FINAL_SECONDS = 2.0
# Beyond its run, how long the host may take to stop and write its final state.
HOST_GRACE = 60
ANALYSIS_TIMEOUT = 120
MAX_LIVE_SESSIONS = 3

DUMP_EVENTS = tuple(e for e in CLRMEMTRACE_EVENTS if e.startswith("statedump_"))
VM_EVENTS = ("virtual_alloc", "virtual_free", "virtual_protect", "virtual_query")
HEAP_EVENTS = ("malloc_create", "malloc_alloc", "malloc_free", "malloc_destroy")
LIFETIME_EVENTS = ("manager_create", "manager_destroy")

STATES = {0x1000: "MEM_COMMIT", 0x2000: "MEM_RESERVE"}
PROTECTIONS = {
    0x01: "PAGE_NOACCESS",
    0x02: "PAGE_READONLY",
    0x04: "PAGE_READWRITE",
    0x20: "PAGE_EXECUTE_READ",
    0x40: "PAGE_EXECUTE_READWRITE",
}


def protection_name(value):
    """A protection as the analysis names it (README: 'Names')."""
    if value == 0:
        return "0"
    name = PROTECTIONS[value & 0xFF]
    return name + ("|PAGE_GUARD" if value & 0x100 else "")


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


# ---------- The analysis ----------


def asan_runtime():
    """The ASan runtime the compiler links against, to preload into Python."""
    for cc in ("cc", "gcc"):
        if shutil.which(cc):
            path = subprocess.run(
                [cc, "-print-file-name=libasan.so"], stdout=subprocess.PIPE, text=True
            ).stdout.strip()
            if os.path.isabs(path) and os.path.exists(path):
                return path
    return None


def analysis_env(build, lttng):
    env = {k: v for k, v in lttng.env.items() if not k.startswith("CLRMEMTRACE_")}
    plugin = build.path / "analysis" / "plugin"
    env["CLRMEMTRACE_PLUGIN_PATH"] = str(plugin)
    so = next(plugin.glob("*.so"), None)
    if so is not None and b"libasan.so" in so.read_bytes():
        # A sanitized plugin loads only into a process that has the runtime from the start.
        runtime = asan_runtime()
        if runtime is None:
            pytest.skip("the plugin is built with ASan but its runtime cannot be found")
        env["LD_PRELOAD"] = runtime
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def analyse(env, *args):
    return subprocess.run(
        [PYTHON, str(CLI), *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=ANALYSIS_TIMEOUT,
    )


def babeltrace_reads(trace):
    """None when babeltrace2 reads the whole trace, else its error output."""
    proc = subprocess.run(
        ["babeltrace2", "--omit-home-plugin-path", str(trace), "-o", "dummy"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=ANALYSIS_TIMEOUT,
    )
    return None if proc.returncode == 0 else proc.stdout[-3000:]


# Event rules of a session that make a process dump its state for it.
DUMP_RECORDING = {"clrmemtrace:*", "clrmemtrace:statedump_begin", "clrmemtrace:statedump_request"}


def foreign_recorders(ctl, mine, pid):
    """Active sessions of others that record this host's dump events (they take its dumps)."""
    try:
        root = ctl.mi("list")
    except ct_lttng.LttngError:
        return []
    found = []
    for session in root.iter("session"):
        name = session.findtext("name")
        if name in mine or session.findtext("enabled") != "true":
            continue
        try:
            detail = ctl.mi("list", name)
        except ct_lttng.LttngError:
            continue
        for domain in detail.iter("domain"):
            if domain.findtext("type") != "UST":
                continue
            tracker = domain.find("process_attr_trackers/vpid_process_attr_tracker")
            values = tracker.find("process_attr_values") if tracker is not None else None
            ids = {v.text for v in values.iter("id")} if values is not None else None
            if ids is not None and str(pid) not in ids:
                continue
            events = {
                e.findtext("name") for e in domain.iter("event") if e.findtext("enabled") == "true"
            }
            if events & DUMP_RECORDING:
                found.append(name)
    return found


# ---------- The test ----------


def drive_sessions(ctl, host, tmp_path, made, rng):
    """Creates, starts, stops, restarts, snapshots and destroys sessions while the host runs."""
    numbers = iter(range(1, 1000))

    def new(kind_name):
        s = StressSession(ctl, kind_name, tmp_path / f"s{next(numbers)}", host.pid)
        made.append(s)
        return s

    def start(s):
        s.start(made, foreign_recorders(ctl, {m.name for m in made}, host.pid))

    # From the host's first call: nothing exists yet, so no dump is needed.
    origin = new("all-norequest")
    start(origin)
    host.say("go")
    begin = time.monotonic()
    time.sleep(0.5)
    # Deliberately while `origin` records the dump events: no dump of its own.
    late = new("all-norequest")
    start(late)
    time.sleep(0.5)
    late.finish()
    origin.finish()

    # Every kind comes up once (those that lose events or snapshot first), then any; up to
    # MAX_LIVE_SESSIONS at once.
    pending = [k for k in KINDS if k not in ("all-norequest", "tiny", "snapshot")]
    rng.shuffle(pending)
    pending += ["snapshot", "tiny"]
    churn_until = begin + RUN_SECONDS - FINAL_SECONDS - 1.0
    while time.monotonic() < churn_until:
        time.sleep(rng.uniform(0.05, 0.3))
        host.check_alive()
        live = [s for s in made if not s.destroyed]
        choice = rng.random()
        if len(live) < MAX_LIVE_SESSIONS and (pending or choice < 0.3 or not live):
            s = new(pending.pop() if pending else rng.choice(list(KINDS)))
            start(s)
            continue
        s = rng.choice(live)
        if s.kind.snapshot and s.active and s.snapshots < 2 and choice < 0.5:
            s.snapshot()
        elif s.active:
            s.stop()
        elif choice < 0.4 and len(s.windows) < 2:
            start(s)
        else:
            s.finish()

    # Every session stops; the last one starts with statedump_request, so it gets a dump.
    for s in made:
        s.stop()
    final = new("all-uid")
    start(final)
    time.sleep(FINAL_SECONDS)
    return final


def test_sessions_come_and_go_while_threads_hammer(build, lttng, tmp_path):
    targets = ["tests/stress/trace-stress-host", "analysis/plugin/babeltrace-plugin-clrmemtrace.so"]
    proc = subprocess.run(
        ["ninja", "-C", str(build.path), *targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, f"building failed:\n{proc.stdout[-4000:]}"
    if shutil.which("babeltrace2") is None:
        pytest.skip("babeltrace2 is not installed")

    ctl = ct_lttng.Lttng(lttng.env)
    final_state = tmp_path / "final.json"
    rng = random.Random(SEED)
    made = []
    host = Host(
        build.path / "tests" / "stress" / "trace-stress-host",
        host_env(build, lttng),
        final_state,
        tmp_path / "host.stderr",
    )
    try:
        host.expect("ready", 30)
        final = drive_sessions(ctl, host, tmp_path, made, rng)
        host.finish()
        for s in made:
            s.finish()
    finally:
        host.kill()
        for s in made:
            try:
                s.finish()
            except ct_lttng.LttngError as e:
                warnings.warn(f"cleaning up {s.name}: {e}")

    check_traces(build, lttng, made, final, json.loads(final_state.read_text()))


def check_traces(build, lttng, made, final, host_final):
    env = analysis_env(build, lttng)
    problems = []
    for s in made:
        traces = s.traces()
        if s.kind.snapshot and not traces:
            problems.append(f"{s.name}: no snapshot was written")
        for trace in traces:
            what = f"{s.kind_name} session {trace.name}"
            error = babeltrace_reads(trace)
            if error:
                problems.append(f"{what}: babeltrace2 cannot read it:\n{error}")
                continue
            check = analyse(env, "check", trace)
            if check.returncode != 0:
                problems.append(
                    f"{what}: check failed ({check.returncode}):\n"
                    f"{check.stdout[-3000:]}{check.stderr[-2000:]}"
                )
            summary = analyse(env, "summary", "--json", trace)
            if summary.returncode != 0:
                problems.append(f"{what}: summary failed:\n{summary.stderr[-2000:]}")
                continue
            doc = json.loads(summary.stdout)
            c = doc["check"]
            # Shown when the test fails: what each session was and what the analysis made of it.
            print(
                f"{what}: windows {[w.dump for w in s.windows]}, {doc['events']} events, "
                f"{doc['discarded_events']} discarded ({s.losses}), complete {doc['complete']}, "
                f"queries {c['queries_checked']} checked, {c['unverifiable']} unverifiable"
            )
            problems += expectations(s, what, doc, trace)
            if s is final:
                problems += compare_final(env, final, doc, host_final)
    assert not problems, "\n\n".join(problems)


def expectations(s, what, doc, trace):
    """What the analysis must say of session `s`'s trace (summary `doc`)."""
    lost = doc["discarded_events"] or (
        s.losses and (s.losses.discarded_events or s.losses.lost_packets)
    )
    if lost:
        if doc["complete"]:
            return [f"{what}: lost events ({s.losses}) yet the trace claims to be complete"]
        return []
    windows = ", ".join(
        ("dump" if w.dump else "no dump")
        + (f" ({' '.join(w.interference)})" if w.interference else "")
        for w in s.windows
    )
    if any(w.interference for w in s.windows):
        warnings.warn(f"{what}: sessions of others recorded the host's dumps: {windows}")
        return []
    if s.kind.expect == "exact" and all(w.dump for w in s.windows):
        return exact_expectations(what, doc, s.windows, trace)
    if s.kind.expect is not None and doc["complete"]:
        return [f"{what} (windows: {windows}) cannot be exact, yet claims to be"]
    return []


def exact_expectations(what, doc, windows, trace):
    """A session whose every window began with a dump of its own: exact from each dump on.

    Every window must dump every manager it sees that existed before it, whole, and no manager
    may stay unknown to the end. Events of a manager may come before its dump in a window
    (queries, which never trigger a dump; calls under way as the session started or as other
    managers were dumped): they leave a session of one window complete. A second window misses
    what happened since the first one stopped: its managers' first events there may show a gap.
    """
    problems = []
    events = read_events(trace)
    for i, w in enumerate(windows):
        mine = [e for e in events if w.start_ns <= e.ns <= w.stop_ns]
        problems += [f"{what}, window {i + 1}: {p}" for p in dump_problems(mine)]
    for process in doc["processes"]:
        for m in process["managers"]:
            if any(end >= doc["end_ns"] for _, end in m["unknown_windows"]):
                problems.append(
                    f"{what}: manager {m['manager_id']} ({m['name']}) stays unknown "
                    f"to the end of the trace"
                )
    if len(windows) == 1:
        problems += completeness_problems(what, doc, events)
    return problems


def completeness_problems(what, doc, events):
    """One window that began with its own dump, nothing lost: every manager created or dumped in
    it is complete, and so is the trace unless some manager went away before its dump came."""
    observed = {e.fields["manager_id"] for e in events
                if e.name in ("manager_create", "statedump_end")}  # fmt: skip
    problems, undumped = [], []
    for process in doc["processes"]:
        for m in process["managers"]:
            if m["manager_id"] not in observed:
                undumped.append(m["manager_id"])
            elif not m["complete"]:
                problems.append(f"{what}: manager {m['manager_id']} ({m['name']}) is incomplete")
    if not undumped and not doc["complete"]:
        problems.append(
            f"{what}: every manager was created or dumped, yet the trace is incomplete: "
            f"{doc['incomplete_reasons'][:5]}"
        )
    return problems


def read_events(path):
    """Every clrmemtrace event under a session's output, with its time on CLOCK_MONOTONIC.

    LTTng-UST timestamps events with CLOCK_MONOTONIC, which is also Python's time.monotonic:
    the events of a window lie between the times its start and stop were asked for.
    """
    import bt2

    events = []
    for folder, _ in process_traces(path):
        for msg in bt2.TraceCollectionMessageIterator(str(folder)):
            if not isinstance(msg, bt2._EventMessageConst):
                continue
            ev = msg.event
            provider, _, name = ev.name.partition(":")
            if provider != "clrmemtrace":
                continue
            fields = {
                k: int(v)
                for k, v in ev.payload_field.items()
                if not isinstance(v, bt2._StringFieldConst)
            }
            events.append(Event(name, fields, {}, msg.default_clock_snapshot.value))
    events.sort(key=lambda e: e.ns)
    return events


def compare_final(env, final, doc, host_final):
    """The last session's map at its end against the host's final state."""
    mapped = analyse(env, "map", "--json", "--at", f"@{doc['end_ns']}", final.output)
    if mapped.returncode != 0:
        return [f"the last session: map failed:\n{mapped.stderr[-2000:]}"]
    document = json.loads(mapped.stdout)
    processes = [p for p in document["processes"] if p["vpid"] == host_final["pid"]]
    if len(processes) != 1:
        return [f"the last session's map has {len(processes)} processes of pid {host_final['pid']}"]
    problems = []
    by_name = {m["name"]: m for m in processes[0]["managers"]}
    for want in host_final["managers"]:
        name = want["name"]
        got = by_name.pop(name, None)
        if got is None:
            problems.append(f"the last session's map has no manager {name}")
            continue
        if not got["known"]:
            problems.append(f"the last session does not know manager {name}'s state at its end")
            continue
        regions = [
            {
                "base": r["base"],
                "allocation_base": r["allocation_base"],
                "size": r["size"],
                "state": STATES[r["state"]],
                "protect": protection_name(r["protect"]),
                "allocation_protect": protection_name(r["allocation_protect"]),
            }
            for r in want["regions"]
        ]
        keys = ("base", "allocation_base", "size", "state", "protect", "allocation_protect")
        got_regions = [{k: r[k] for k in keys} for r in got["regions"]]
        if got_regions != regions:
            diff = first_difference(got_regions, regions)
            problems.append(
                f"manager {name}: the map's regions differ from the host's walk: {diff}"
            )
        heaps = sorted((h["live_blocks"], h["live_bytes"]) for h in got["heaps"])
        want_heaps = sorted((h["live_blocks"], h["live_bytes"]) for h in want["heaps"])
        if heaps != want_heaps:
            problems.append(
                f"manager {name}: heaps (blocks, bytes) {heaps}, the host's {want_heaps}"
            )
    # Managers released before the end hold nothing: the host released their memory first.
    for name, m in by_name.items():
        if name not in host_final["released"]:
            problems.append(f"the last session's map has a manager {name!r} the host never had")
        elif m["regions"] or m["heaps"]:
            problems.append(f"manager {name}, released, still holds memory in the map")
    return problems


def first_difference(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"run {i}: map {a}, host {b}"
    return f"{len(got)} runs in the map, {len(want)} in the host's walk"


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
    targets = ["tests/stress/trace-stress-host", "analysis/plugin/babeltrace-plugin-clrmemtrace.so"]
    proc = subprocess.run(
        ["ninja", "-C", str(build.path), *targets],
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
    env = analysis_env(build, lttng)
    for s in made:
        events = read_trace(s.output, [host.pid])
        problems += [f"{s.output.name}: {p}" for p in dump_problems(events)]
        summary = analyse(env, "summary", "--json", s.output)
        if summary.returncode != 0:
            problems.append(f"{s.output.name}: summary failed:\n{summary.stderr[-2000:]}")
            continue
        doc = json.loads(summary.stdout)
        if not (doc["discarded_events"] or s.losses.discarded_events or s.losses.lost_packets):
            problems += completeness_problems(s.output.name, doc, events)
    assert not problems, "\n".join(problems)
