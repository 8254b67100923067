# SPDX-License-Identifier: MIT
"""Fixtures shared by the Python suites: the build, a session daemon, and sessions.

- ``build``: the build directory (``$CLRMEMTRACE_BUILD_DIR``, default ``build-test``, relative
  to the repository), set up with meson if missing and brought up to date with ninja.
- ``lttng``: a reachable LTTng session daemon. An existing one is used as it is; otherwise the
  fixture starts a private one (the root daemon when running as root, else a per-user daemon
  whose ``LTTNG_HOME`` is a temporary folder) and, at the end, stops exactly the daemon it
  started, by PID.
- ``sessions``: makes uniquely named sessions that enable explicit event names (never ``-a``)
  with the ``vpid``, ``vtid`` and ``procname`` contexts, and destroys them after the test.
  Their channel has per-process buffers, so other programs tracing on the same machine cannot
  make a test's process lose events. ``Session.read(pids=[...])`` stops the session and returns
  the events of those processes, failing if their traces report any loss (see read_trace).

Events are read back with Babeltrace2's Python bindings (``bt2``), which Debian ships only for
``/usr/bin/python3``.
"""

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

sys.path.insert(0, str(REPO / "analysis" / "python"))

# Every event of the clrmemtrace provider (tracepoints/EVENTS.md; test_record checks the list
# against the provider's header), and the control event only sessions asking for a dump enable.
from clrmemtrace.events import EVENTS as CLRMEMTRACE_EVENTS  # noqa: E402
from clrmemtrace.events import STATEDUMP_REQUEST  # noqa: E402

# How long an lttng command or a daemon start may take before the test fails.
COMMAND_TIMEOUT = 60
DAEMON_START_TIMEOUT = 20

_session_numbers = itertools.count(1)


class Build:
    """The build directory and the artifacts the suites run."""

    def __init__(self, path):
        self.path = path
        self.library = path / "src" / "libclrmemtrace.so.0"
        self.provider = path / "src" / "libclrmemtrace-lttng.so"
        self.trace_host = path / "tests" / "trace" / "trace-host"


@pytest.fixture(scope="session")
def build():
    """The build directory from $CLRMEMTRACE_BUILD_DIR, set up and built when needed."""
    path = Path(os.environ.get("CLRMEMTRACE_BUILD_DIR", "build-test"))
    if not path.is_absolute():
        path = REPO / path
    if not (path / "build.ninja").exists():
        _run_or_fail(["meson", "setup", str(path)], cwd=REPO, what="meson setup")
    b = Build(path)
    targets = [str(p.relative_to(path)) for p in (b.trace_host, b.provider)]
    _run_or_fail(["ninja", "-C", str(path), *targets], cwd=REPO, what="ninja")
    return b


def _run_or_fail(argv, what, **kwargs):
    """Runs a build command; fails the test with its output's tail when it fails."""
    proc = subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
    )
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


class Lttng:
    """Runs lttng commands against one session daemon, in one environment."""

    def __init__(self, env, home):
        self.env = env
        self.home = home
        self.daemon = None

    def run(self, *args, check=True):
        """Runs `lttng --no-sessiond ARGS` (never spawning a daemon of its own)."""
        proc = subprocess.run(
            ["lttng", "--no-sessiond", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"lttng {' '.join(args)} failed:\n{proc.stdout}")
        return proc

    def reachable(self):
        """Whether a session daemon answers."""
        try:
            return self.run("list", check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start_daemon(self, log_path):
        """Starts a private session daemon in the foreground of a child process."""
        log = open(log_path, "w")
        self.daemon = subprocess.Popen(
            ["lttng-sessiond", "--no-kernel"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise AssertionError(
                    f"lttng-sessiond exited ({self.daemon.returncode}):\n{log_path.read_text()}"
                )
            if self.reachable():
                return
            time.sleep(0.1)
        self.stop_daemon()
        raise AssertionError(f"lttng-sessiond did not answer within {DAEMON_START_TIMEOUT} s")

    def stop_daemon(self):
        """Stops the daemon this object started (by its PID), and nothing else."""
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            os.kill(self.daemon.pid, signal.SIGTERM)
            try:
                self.daemon.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait()
        self.daemon = None


@pytest.fixture(scope="session")
def lttng(tmp_path_factory):
    """A reachable session daemon: an existing one, else a private one stopped at the end."""
    for tool in ("lttng", "lttng-sessiond"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package lttng-tools)")
    env = dict(os.environ)
    home = Path(env["LTTNG_HOME"]) if env.get("LTTNG_HOME") else Path.home()
    ctl = Lttng(env, home)
    if not ctl.reachable():
        if os.geteuid() != 0:
            # A per-user daemon, private to this run.
            home = tmp_path_factory.mktemp("lttng-home")
            env["LTTNG_HOME"] = str(home)
            ctl = Lttng(env, home)
        ctl.start_daemon(tmp_path_factory.mktemp("sessiond") / "lttng-sessiond.log")
    try:
        yield ctl
    finally:
        ctl.stop_daemon()


class Session:
    """One LTTng session: its unique name, output folder, and events."""

    def __init__(self, ctl, name, output, events):
        self.ctl = ctl
        self.name = name
        self.output = output
        self.events = events
        self.started = False
        self.destroyed = False

    def start(self):
        self.ctl.run("start", self.name)
        self.started = True

    def stop(self):
        """Stops the session; its buffers are flushed when this returns."""
        if self.started:
            self.ctl.run("stop", self.name)
            self.started = False

    def destroy(self):
        if not self.destroyed:
            self.ctl.run("destroy", self.name, check=False)
            self.destroyed = True

    def read(self, pids=None):
        """Stops the session and returns its events (see read_trace)."""
        self.stop()
        return read_trace(self.output, pids)


class Sessions:
    """Makes sessions for one test; destroys them all afterwards."""

    ALL_EVENTS = CLRMEMTRACE_EVENTS
    STATEDUMP_REQUEST = STATEDUMP_REQUEST
    CHANNEL = "clrmemtrace"

    def __init__(self, ctl, tmp_path):
        self.ctl = ctl
        self.tmp_path = tmp_path
        self.made = []

    def create(self, events=CLRMEMTRACE_EVENTS, start=True):
        """A new session recording `clrmemtrace:EVENT` for each of `events`, started by default."""
        number = next(_session_numbers)
        name = f"clrmemtrace-pytest-{os.getpid()}-{number}-{uuid.uuid4().hex[:8]}"
        output = self.tmp_path / f"trace-{number}"
        session = Session(self.ctl, name, output, tuple(events))
        self.ctl.run("create", name, f"--output={output}")
        self.made.append(session)
        where = ["--userspace", f"--session={name}", f"--channel={self.CHANNEL}"]
        self.ctl.run(
            "enable-channel", *where[:2], "--buffers-pid", "--subbuf-size=1M", self.CHANNEL
        )
        names = ",".join(f"clrmemtrace:{e}" for e in events)
        self.ctl.run("enable-event", *where, names)
        self.ctl.run("add-context", *where, "--type=vpid", "--type=vtid", "--type=procname")
        if start:
            session.start()
        return session

    def destroy_all(self):
        for session in self.made:
            session.destroy()


@pytest.fixture
def sessions(lttng, tmp_path):
    """Creates sessions on the daemon of `lttng`; destroys them when the test ends."""
    made = Sessions(lttng, tmp_path)
    try:
        yield made
    finally:
        made.destroy_all()


class Event:
    """One event read from a trace: its name (without the provider), payload and contexts."""

    __slots__ = ("name", "fields", "context", "ns")

    def __init__(self, name, fields, context, ns):
        self.name = name
        self.fields = fields
        self.context = context
        self.ns = ns

    def __repr__(self):
        return f"Event({self.name!r}, {self.fields!r}, {self.context!r})"


def _value(field):
    import bt2

    if isinstance(field, bt2._StringFieldConst):
        return str(field)
    return int(field)


def process_traces(path):
    """The trace folders under a session's output, with the process id each is of.

    With per-process buffers each process has its own trace, `ust/pid/NAME-PID-DATE-TIME`;
    anything else is one trace of unknown processes (None).
    """
    per_pid = Path(path) / "ust" / "pid"
    if not per_pid.is_dir():
        return [(Path(path), None)]
    found = []
    for folder in sorted(per_pid.iterdir()):
        name = folder.name.rsplit("-", 2)[0]
        pid = name.rpartition("-")[2]
        found.append((folder, int(pid) if pid.isdigit() else None))
    return found


def read_trace(path, pids=None):
    """The events under a session's output `path`, in timestamp order, as Event objects.

    Sessions record every process on the machine that traces clrmemtrace, other programs' too,
    and one killed while it wrote leaves a trace Babeltrace cannot read. So each process's
    trace is read on its own, and `pids` chooses which: those of the processes listed, each of
    which must be readable and have lost nothing (no discarded events or packets). With `pids`
    None, every trace is read; one that cannot be read is skipped, and losses only warn.
    """
    import bt2

    events = []
    for folder, pid in process_traces(path):
        if pids is not None and pid not in pids:
            continue
        try:
            events += _read_one_trace(bt2, folder, strict=pids is not None)
        except bt2._Error as e:
            if pids is not None:
                raise
            warnings.warn(f"cannot read the trace in {folder}: {str(e).splitlines()[0]}")
    events.sort(key=lambda e: e.ns)
    return events


def _read_one_trace(bt2, path, strict):
    """Every event of one trace; when it lost any, fails if `strict`, else warns."""
    events = []
    lost = (bt2._DiscardedEventsMessageConst, bt2._DiscardedPacketsMessageConst)
    # Babeltrace 2.0's CTF reader leaves an empty string field holding the value it had in the
    # last event of the same class when it recycles event objects (fixed upstream by
    # review.lttng.org/c/babeltrace/+/4528, not in Debian 12's 2.0.4). Keeping every message
    # alive until the end stops the recycling, so "" reads as "".
    held = []
    for msg in bt2.TraceCollectionMessageIterator(str(path)):
        held.append(msg)
        if isinstance(msg, lost):
            what = f"the trace in {path} lost data: {msg.count} (events or packets)"
            if strict:
                raise AssertionError(what)
            warnings.warn(what)
        if not isinstance(msg, bt2._EventMessageConst):
            continue
        ev = msg.event
        provider, _, name = ev.name.partition(":")
        fields = {k: _value(v) for k, v in ev.payload_field.items()}
        context = {}
        if ev.common_context_field is not None:
            context = {k: _value(v) for k, v in ev.common_context_field.items()}
        events.append(
            Event(
                name if provider == "clrmemtrace" else ev.name,
                fields,
                context,
                msg.default_clock_snapshot.ns_from_origin,
            )
        )
    return events
